//! The summary of a run.

use std::collections::BTreeMap;

/// Summary of a run.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Seed.
    pub seed: u64,
    /// Invariant and liveness violations.
    pub violations: Vec<String>,
    /// Distinct decided instances.
    pub decisions: u64,
    /// Txs commands committed (non-Noop) at validator 0's view of the checker.
    pub committed_batches: u64,
    /// Transactions included in blocks (at the most advanced correct validator).
    pub txs_in_blocks: u64,
    /// Transactions submitted.
    pub txs_submitted: u64,
    /// Lowest height among live correct validators.
    pub min_height: u64,
    /// Highest height.
    pub max_height: u64,
    /// Virtual end time (ms).
    pub virtual_ms: u64,
    /// Events processed.
    pub events: u64,
    /// Messages delivered.
    pub messages: u64,
    /// Commit latency samples (ms): proposer's first announce to its own commit.
    pub commit_latency_ms: Vec<u64>,
    /// Message delay samples (ms).
    pub msg_delay_ms: Vec<u64>,
    /// Client-observed latency (ms) per region: a transaction's submission at a validator to
    /// that validator executing the block that contains it.
    pub client_latency_ms: BTreeMap<usize, Vec<u64>>,
    /// Leader-based baseline: the primary's region.
    pub primary_region: Option<usize>,
    /// Proofs per convicted validator index.
    pub proofs: BTreeMap<usize, usize>,
    /// Max DDS log size seen at the end among correct validators.
    pub max_log: usize,
    /// Validator 0's blocks: (index, view in which K_b was announced, virtual ms when built).
    pub checkpoint_views: Vec<(u64, u32, u64)>,
    /// Virtual ms of each crash.
    pub crashes_ms: Vec<u64>,
    /// Rejoins from the chain: (node, block before, chain block after).
    pub rejoins: Vec<(usize, u64, u64)>,
    /// Blocks each node built itself (not taken from the chain), by node index.
    pub blocks_built: BTreeMap<usize, u64>,
    /// The last block each node built itself, by node index.
    pub last_built: BTreeMap<usize, u64>,
    /// Committed commands void by their block's agreed floor: (proposer's node index, seq).
    pub voided: Vec<(usize, u64)>,
    /// The highest agreed floor of any proposer in a block a correct validator built.
    pub max_floor: u64,
    /// Mutation operators the Byzantine validators applied (behaviour `mutate`).
    pub mutations: BTreeMap<&'static str, u64>,
    /// Nodes that switched to epoch 1 (a validator-set change).
    pub epoch_switches: usize,
    /// Validators that joined at the set change and built a block of epoch 1.
    pub joined: usize,
    /// Crashes that struck in the middle of a step before its last write (so that a later
    /// write of that step was lost).
    pub lost_writes: usize,
    /// Waiting transactions correct validators took out of their queues because another
    /// validator's checked batch carried them (`Output::Checked`).
    pub covered_txs: u64,
    /// Twins validators that stayed in the set and got a second epoch-1 replica too.
    pub twin_epoch_switches: usize,
    /// Validator 0's blocks: (virtual ms when executed, transactions in it).
    pub block_txs: Vec<(u64, u64)>,
    /// Leader-based baseline: the primary's node index.
    pub primary: Option<usize>,
    /// CPU µs each node spent, by node index (zero without the resource model).
    pub cpu_used_us: Vec<u64>,
    /// Bytes each node sent, by node index (counted with the resource model's uplink only).
    pub bytes_sent: Vec<u64>,
    /// Messages each node's full uplink queue dropped, by node index.
    pub uplink_dropped: Vec<u64>,
    /// Bytes all nodes sent, by message kind (with the resource model's uplink only).
    pub bytes_by_kind: BTreeMap<&'static str, u64>,
}

impl Report {
    /// Transactions per second validator 0 executed in blocks from `from_ms` to `to_ms`
    /// (virtual time): the sustained throughput over that span. Measured between the span's
    /// first and last block (the transactions of every block after the first, over the time
    /// between them), so that a large block just inside or outside the span does not move the
    /// figure; with fewer than two blocks in the span, over the whole span.
    pub fn sustained_tps(&self, from_ms: u64, to_ms: u64) -> f64 {
        let inside: Vec<(u64, u64)> = self
            .block_txs
            .iter()
            .copied()
            .filter(|(at, _)| (from_ms..to_ms).contains(at))
            .collect();
        match (inside.first(), inside.last()) {
            (Some(&(first, _)), Some(&(last, _))) if last > first => {
                let txs: u64 = inside[1..].iter().map(|(_, t)| t).sum();
                txs as f64 * 1000.0 / (last - first) as f64
            }
            _ => {
                let txs: u64 = inside.iter().map(|(_, t)| t).sum();
                txs as f64 * 1000.0 / to_ms.saturating_sub(from_ms).max(1) as f64
            }
        }
    }
    /// Percentile of a sample.
    pub fn pct(v: &[u64], p: f64) -> u64 {
        if v.is_empty() {
            return 0;
        }
        let mut s = v.to_vec();
        s.sort_unstable();
        s[((s.len() - 1) as f64 * p) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(block_txs: Vec<(u64, u64)>) -> Report {
        Report {
            block_txs,
            ..Report::default()
        }
    }

    #[test]
    fn sustained_throughput_does_not_jump_with_a_block_at_the_span_edge() {
        // 1,000 transactions a second, in one block a second.
        let r = blocks((1..=6).map(|s| (s * 1000, 1000)).collect());
        // The span [900, 3100) holds three blocks in 2.2 s: counting them over the span says
        // 1,364; between its first and last block it is the rate they came at.
        assert_eq!(r.sustained_tps(900, 3100), 1000.0);
        assert_eq!(r.sustained_tps(500, 5500), 1000.0);
        // A burst: the block at 4 s carries 4,000.
        let r = blocks(vec![(1000, 1000), (2000, 1000), (4000, 4000)]);
        assert_eq!(r.sustained_tps(0, 10_000), 5000.0 / 3.0);
        // One block in the span: over the span.
        assert_eq!(r.sustained_tps(3000, 5000), 2000.0);
        assert_eq!(r.sustained_tps(5000, 6000), 0.0);
    }
}
