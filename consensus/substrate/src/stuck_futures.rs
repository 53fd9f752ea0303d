//! Future transactions the pool will never promote, found so they can be proposed anyway.
//!
//! The single-state pool validates a submission against the state of one block and imports the
//! result later. If the transaction's predecessor (nonce n - 1) was pruned by a block import in
//! between, the import sees the requirement as met only if that prune was one of the last two
//! (sc-transaction-pool 48, `graph/base_pool.rs`, `RECENTLY_PRUNED_TAGS = 2`). bsmr imports
//! several blocks a second under load, so a submission validated three imports ago lands in the
//! future queue waiting for a tag no transaction will provide again, with every later nonce of
//! its sender behind it; the pool revalidates only ready transactions, so they stay there. The
//! saturation run of 2026-12-04 lost 124 of 12,000 transfers this way (docs/consensus.md,
//! "Transaction pool").
//!
//! Pure: the engine hands it the pool's future transactions (hash, requires, provides), the time
//! and a check against the latest state (the runtime's `validate_transaction`: does it need
//! nothing more?); it returns the chains to offer the proposal policy, each in dependency order.
//! A chain that is really waiting for a predecessor on its way is not offered.

use sp_core::H256;
use std::collections::{BTreeMap, BTreeSet};

/// A future transaction as the pool reports it.
pub struct Future<'a> {
    /// Its hash.
    pub hash: H256,
    /// Tags it needs (a nonce-checked transaction: its sender's previous nonce).
    pub requires: &'a [Vec<u8>],
    /// Tags it provides (its own sender and nonce).
    pub provides: &'a [Vec<u8>],
}

/// How often a waiting chain's first transaction is checked against the latest state.
pub const RECHECK_MS: u64 = 1_000;

/// When each future transaction was first seen waiting with nothing in the pool to provide what
/// it needs, and when the state last said whether it can apply now.
#[derive(Debug, Default)]
pub struct StuckFutures {
    since: BTreeMap<H256, u64>,
    checked: BTreeMap<H256, (u64, bool)>,
}

impl StuckFutures {
    /// The future transactions to offer for proposal: every chain whose first transaction has
    /// waited at least `after_ms` for a tag no other future transaction provides and that
    /// `applies_now` says the latest state would take as it is (its predecessor is on chain: the
    /// pool missed it), the first one then each transaction after the one whose tag it needs.
    /// `applies_now` is asked at most once per [`RECHECK_MS`] per chain. Forgets what is gone.
    pub fn stuck(
        &mut self,
        futures: &[Future],
        now: u64,
        after_ms: u64,
        mut applies_now: impl FnMut(&H256) -> bool,
    ) -> Vec<H256> {
        let mut provider: BTreeMap<&[u8], usize> = BTreeMap::new();
        for (i, f) in futures.iter().enumerate() {
            for tag in f.provides {
                provider.insert(tag, i);
            }
        }
        let mut needing: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
        let mut roots = BTreeSet::new();
        for (i, f) in futures.iter().enumerate() {
            let mut waits_on_pool = false;
            for tag in f.requires {
                if let Some(&p) = provider.get(&tag[..]) {
                    if p != i {
                        waits_on_pool = true;
                        needing.entry(p).or_default().insert(i);
                    }
                }
            }
            if !waits_on_pool {
                roots.insert((f.hash, i));
            }
        }
        let root_hashes: BTreeSet<H256> = roots.iter().map(|(h, _)| *h).collect();
        self.since.retain(|h, _| root_hashes.contains(h));
        self.checked.retain(|h, _| root_hashes.contains(h));
        let mut out = vec![];
        let mut taken = BTreeSet::new();
        for (hash, i) in roots {
            let since = *self.since.entry(hash).or_insert(now);
            if now.saturating_sub(since) < after_ms {
                continue;
            }
            let verdict = match self.checked.get(&hash) {
                Some((at, verdict)) if now.saturating_sub(*at) < RECHECK_MS => *verdict,
                _ => {
                    let verdict = applies_now(&hash);
                    self.checked.insert(hash, (now, verdict));
                    verdict
                }
            };
            if !verdict {
                continue;
            }
            // The chain behind it, each after what it needs (a cycle is cut where it closes).
            let mut stack = vec![i];
            while let Some(j) = stack.pop() {
                if !taken.insert(j) {
                    continue;
                }
                out.push(futures[j].hash);
                if let Some(next) = needing.get(&j) {
                    stack.extend(next.iter().rev());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sender `s`'s transaction with nonce `n`: provides (s, n), requires (s, n - 1).
    fn tags(s: u8, n: u8) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let requires = if n == 0 { vec![] } else { vec![vec![s, n - 1]] };
        (requires, vec![vec![s, n]])
    }

    fn hash(s: u8, n: u8) -> H256 {
        H256([s * 16 + n; 32])
    }

    fn stuck_at(t: &mut StuckFutures, txs: &[(u8, u8)], now: u64) -> Vec<H256> {
        let tags: Vec<_> = txs.iter().map(|(s, n)| tags(*s, *n)).collect();
        let futures: Vec<Future> = txs
            .iter()
            .zip(&tags)
            .map(|((s, n), (r, p))| Future {
                hash: hash(*s, *n),
                requires: r,
                provides: p,
            })
            .collect();
        t.stuck(&futures, now, 2_000, |_| true)
    }

    #[test]
    fn a_chain_waiting_on_no_pool_transaction_is_offered_in_order_after_a_while() {
        let mut t = StuckFutures::default();
        // Sender 1's nonces 5, 7, 6 wait on nonce 4 (no longer anywhere); sender 2's nonce 3
        // waits too.
        let txs = [(1, 7), (2, 3), (1, 5), (1, 6)];
        assert!(stuck_at(&mut t, &txs, 0).is_empty(), "not for long yet");
        assert_eq!(
            stuck_at(&mut t, &txs, 2_000),
            vec![hash(1, 5), hash(1, 6), hash(1, 7), hash(2, 3)]
        );
    }

    #[test]
    fn a_chain_the_state_would_not_take_yet_is_not_offered_and_asked_again_after_a_while() {
        let mut t = StuckFutures::default();
        let (r, p) = tags(1, 5);
        let futures = [Future {
            hash: hash(1, 5),
            requires: &r,
            provides: &p,
        }];
        let asked = std::cell::Cell::new(0);
        let ask = |verdict: bool| {
            let asked = &asked;
            move |_: &H256| {
                asked.set(asked.get() + 1);
                verdict
            }
        };
        assert!(t.stuck(&futures, 0, 2_000, ask(false)).is_empty());
        assert!(t.stuck(&futures, 2_000, 2_000, ask(false)).is_empty());
        assert!(
            t.stuck(&futures, 2_500, 2_000, ask(true)).is_empty(),
            "the verdict holds for a while"
        );
        assert_eq!(t.stuck(&futures, 3_000, 2_000, ask(true)), vec![hash(1, 5)]);
        assert_eq!(asked.get(), 2, "once at 2,000 and once at 3,000");
    }

    #[test]
    fn a_transaction_whose_predecessor_is_in_the_queue_is_not_a_root_and_gone_ones_are_forgotten() {
        let mut t = StuckFutures::default();
        assert!(stuck_at(&mut t, &[(1, 5)], 0).is_empty());
        // Nonce 5 was promoted (gone); 6 arrived and waits on nothing now: its clock starts.
        assert!(stuck_at(&mut t, &[(1, 6)], 1_000).is_empty());
        assert!(stuck_at(&mut t, &[(1, 6)], 2_500).is_empty());
        assert_eq!(stuck_at(&mut t, &[(1, 6)], 3_000), vec![hash(1, 6)]);
        assert_eq!(t.since.len(), 1);
        assert!(stuck_at(&mut t, &[], 4_000).is_empty());
        assert!(t.since.is_empty(), "forgotten once gone");
    }
}
