//! The per-node CPU and uplink model ([`Resources`]): a node handles events one at a time in
//! arrival order, each for the CPU time of the signatures it made and checked and the
//! transactions it executed, and its messages leave one after the other at its uplink's rate.
//! The replica takes each event at once, at the node's clock (when its CPU is free); only what
//! it sends, and what its clients observe, wait for the CPU. Without `SimConfig::resources`
//! every cost is zero and nothing here changes a run.

use super::*;
use std::sync::atomic::Ordering;

/// A node's CPU and uplink over virtual time.
#[derive(Clone, Debug, Default)]
pub(super) struct Usage {
    /// Its CPU is busy until then (virtual µs).
    cpu_free_us: u64,
    /// Its uplink is busy until then.
    uplink_free_us: u64,
    /// CPU time spent so far.
    pub cpu_used_us: u64,
    /// Bytes sent so far.
    pub bytes_sent: u64,
    /// Messages dropped at a full uplink queue.
    pub dropped: u64,
    /// Bytes sent so far by message kind ([`Message::kind`]).
    pub bytes_by_kind: BTreeMap<&'static str, u64>,
}

/// The most sending time a node's uplink queues: a message that would wait longer is dropped.
pub(super) const UPLINK_QUEUE_US: u64 = 1_000_000;

/// Work counters of one node: (signatures made, signatures checked).
pub(super) type Work = (u64, u64);

impl Node {
    /// What this node's replica has signed and checked so far.
    pub(super) fn work_done(&self) -> Work {
        (
            self.signer.signs.load(Ordering::Relaxed),
            self.verifier.calls.load(Ordering::Relaxed),
        )
    }
}

impl Sim {
    /// Node `i`'s clock: now, or when its CPU is done with the events before (a node handles
    /// one event at a time, in arrival order; what an event sends leaves when it is done).
    pub(super) fn node_clock_us(&self, i: usize) -> u64 {
        self.now_us.max(self.nodes[i].usage.cpu_free_us)
    }

    /// Charge node `i` for one event its replica just handled, given its counters before.
    pub(super) fn charge_handling(&mut self, i: usize, before: Work) {
        let Some(r) = self.cfg.resources else {
            return;
        };
        let (signs, checks) = self.nodes[i].work_done();
        let cost = r.event_us + (signs - before.0) * r.sign_us + (checks - before.1) * r.verify_us;
        self.charge(i, cost);
    }

    /// Charge node `i` for executing `txs` transactions of a block.
    pub(super) fn charge_execution(&mut self, i: usize, txs: u64) {
        if let Some(r) = self.cfg.resources {
            self.charge(i, txs * r.exec_us);
        }
    }

    fn charge(&mut self, i: usize, cost_us: u64) {
        let u = &mut self.nodes[i].usage;
        u.cpu_free_us = u.cpu_free_us.max(self.now_us) + cost_us;
        u.cpu_used_us += cost_us;
    }

    /// When a message node `from` sends now leaves it: once the event that sent it is done, and
    /// after the messages queued before it on its uplink. `None`: the uplink's queue holds more
    /// than [`UPLINK_QUEUE_US`] of sending already and the message is dropped, as a bounded
    /// send buffer drops (retransmission recovers what matters).
    pub(super) fn departure_us(&mut self, from: usize, msg: &Message) -> Option<u64> {
        let Some(r) = self.cfg.resources else {
            return Some(self.now_us);
        };
        let now = self.now_us;
        let u = &mut self.nodes[from].usage;
        let ready = now.max(u.cpu_free_us);
        if r.uplink_bytes_per_s == 0 {
            return Some(ready);
        }
        let start = ready.max(u.uplink_free_us);
        if start - ready > UPLINK_QUEUE_US {
            u.dropped += 1;
            return None;
        }
        let bytes = codec::Encode::encoded_size(msg) as u64;
        u.uplink_free_us = start + bytes * 1_000_000 / r.uplink_bytes_per_s;
        u.bytes_sent += bytes;
        *u.bytes_by_kind.entry(msg.kind()).or_default() += bytes;
        Some(u.uplink_free_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_with(resources: Option<Resources>, leader_based: bool) -> Report {
        let mut c = SimConfig::reliable(4, 7);
        c.load_ms = 2_000;
        c.end_ms = 20_000;
        c.leader_based = leader_based;
        c.resources = resources;
        run(c)
    }

    #[test]
    fn a_busy_cpu_and_a_slow_uplink_delay_commits_and_are_accounted() {
        let free = run_with(None, false);
        let costly = Resources {
            sign_us: 2_000,
            verify_us: 2_000,
            exec_us: 500,
            event_us: 100,
            uplink_bytes_per_s: 200_000,
        };
        let slow = run_with(Some(costly), false);
        assert!(free.violations.is_empty(), "{:?}", free.violations);
        assert!(slow.violations.is_empty(), "{:?}", slow.violations);
        assert!(
            free.cpu_used_us.iter().all(|c| *c == 0),
            "no model, no cost"
        );
        assert!(slow.cpu_used_us.iter().all(|c| *c > 0));
        assert!(slow.bytes_sent.iter().all(|b| *b > 0));
        let p50 = |r: &Report| Report::pct(&r.commit_latency_ms, 0.5);
        assert!(
            p50(&slow) > p50(&free),
            "commits wait for the CPU and the uplink: {} vs {} ms",
            p50(&slow),
            p50(&free)
        );
    }

    #[test]
    fn the_leader_baselines_primary_sends_most() {
        let r = Resources {
            sign_us: 50,
            verify_us: 50,
            exec_us: 10,
            event_us: 10,
            uplink_bytes_per_s: 10_000_000,
        };
        let leader = run_with(Some(r), true);
        let primary = leader.primary.expect("leader-based; qed");
        let top = (0..4)
            .max_by_key(|i| leader.bytes_sent[*i])
            .expect("4 nodes; qed");
        assert_eq!(top, primary, "bytes sent per node: {:?}", leader.bytes_sent);
    }
}
