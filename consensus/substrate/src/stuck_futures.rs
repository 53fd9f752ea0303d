//! Future transactions the pool will never promote, found so they can be proposed anyway.
//!
//! The single-state pool validates a submission against the state of one block and imports the
//! result later. If the transaction's predecessor (nonce n - 1) was pruned by a block import in
//! between, the import sees the requirement as met only if that prune was one of the last two
//! (sc-transaction-pool 48, `graph/base_pool.rs`, `RECENTLY_PRUNED_TAGS = 2`). bsmr imports
//! several blocks a second under load, so a submission validated three imports ago lands in the
//! future queue waiting for a tag no transaction will provide again, with every later nonce of
//! its sender behind it; the pool revalidates only ready transactions, so they stay there. At
//! saturation about 1% of transfers were lost this way (docs/consensus.md, "Transaction pool").
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

/// What the latest state says of a waiting chain's first transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It applies as it is: its predecessor is on chain and the pool missed it.
    Applies,
    /// It still needs something (a predecessor on its way), or cannot apply for another reason.
    Waits,
    /// Its nonce is used already (a copy the pool kept in its future queue after the block that
    /// included it): it never applies, and what waits on it is looked at in its place.
    Used,
}

/// What [`StuckFutures::stuck`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Found {
    /// The chains to offer for proposal, each in dependency order.
    pub offer: Vec<H256>,
    /// Used transactions nothing waits on: for the pool to drop.
    pub used: Vec<H256>,
}

/// When each future transaction was first seen waiting with nothing in the pool to provide what
/// it needs, and when the state last said what of it.
#[derive(Debug, Default)]
pub struct StuckFutures {
    since: BTreeMap<H256, u64>,
    checked: BTreeMap<H256, (u64, Verdict)>,
}

impl StuckFutures {
    /// The future transactions to offer for proposal: every chain whose first transaction has
    /// waited at least `after_ms` for a tag no other future transaction provides and that
    /// `check` says the latest state would take as it is, the first one then each transaction
    /// after the one whose tag it needs; and the first transactions whose nonce is used, for
    /// the pool to drop (what waits on such a copy is a first transaction once it is gone, and
    /// counts as waiting since the copy did).
    ///
    /// `check` is asked at most once per [`RECHECK_MS`] per transaction (never again once it
    /// said `Used`: nonces only grow) and at most `max_checks` times per call, least recently
    /// asked first, so a queue with many waiting chains cannot starve some of them. A used copy
    /// still present is handed out again once per [`RECHECK_MS`]. Forgets what is gone.
    pub fn stuck(
        &mut self,
        futures: &[Future],
        now: u64,
        after_ms: u64,
        max_checks: usize,
        mut check: impl FnMut(&H256) -> Verdict,
    ) -> Found {
        let mut provider: BTreeMap<&[u8], usize> = BTreeMap::new();
        for (i, f) in futures.iter().enumerate() {
            for tag in f.provides {
                provider.insert(tag, i);
            }
        }
        let mut needing: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
        let mut roots = vec![];
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
                // Least recently checked first (never checked before any), then by hash.
                let h = f.hash;
                roots.push((self.checked.get(&h).map(|(at, _)| *at), h, i));
            }
        }
        roots.sort();
        let present: BTreeSet<H256> = futures.iter().map(|f| f.hash).collect();
        self.since.retain(|h, _| present.contains(h));
        self.checked.retain(|h, _| present.contains(h));
        let mut found = Found::default();
        let mut taken = BTreeSet::new();
        let mut checks_left = max_checks;
        for (_, hash, i) in roots {
            let since = *self.since.entry(hash).or_insert(now);
            if now.saturating_sub(since) < after_ms {
                continue;
            }
            let verdict = match self.checked.get(&hash).copied() {
                Some((at, Verdict::Used)) => {
                    if now.saturating_sub(at) >= RECHECK_MS {
                        self.checked.insert(hash, (now, Verdict::Used));
                        found.used.push(hash);
                    }
                    continue;
                }
                Some((at, verdict)) if now.saturating_sub(at) < RECHECK_MS => verdict,
                _ if checks_left == 0 => continue,
                _ => {
                    checks_left -= 1;
                    let verdict = check(&hash);
                    self.checked.insert(hash, (now, verdict));
                    verdict
                }
            };
            match verdict {
                Verdict::Waits => {}
                Verdict::Used => {
                    found.used.push(hash);
                    for j in needing.get(&i).into_iter().flatten() {
                        let waiting = self.since.entry(futures[*j].hash).or_insert(since);
                        *waiting = (*waiting).min(since);
                    }
                }
                Verdict::Applies => {
                    // The chain behind it, each after what it needs (a cycle is cut where it
                    // closes).
                    let mut stack = vec![i];
                    while let Some(j) = stack.pop() {
                        if !taken.insert(j) {
                            continue;
                        }
                        found.offer.push(futures[j].hash);
                        if let Some(next) = needing.get(&j) {
                            stack.extend(next.iter().rev());
                        }
                    }
                }
            }
        }
        found
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

    /// Run `stuck` over sender/nonce pairs with a verdict per transaction.
    fn stuck_with(
        t: &mut StuckFutures,
        txs: &[(u8, u8)],
        now: u64,
        max_checks: usize,
        verdict: impl Fn(&H256) -> Verdict,
    ) -> Found {
        let tags: Vec<_> = txs.iter().map(|(s, n)| tags(*s, *n)).collect();
        let hashes: Vec<H256> = txs.iter().map(|(s, n)| hash(*s, *n)).collect();
        let futures: Vec<Future> = hashes
            .iter()
            .zip(&tags)
            .map(|(h, (r, p))| Future {
                hash: *h,
                requires: r,
                provides: p,
            })
            .collect();
        t.stuck(&futures, now, 2_000, max_checks, verdict)
    }

    fn stuck_at(t: &mut StuckFutures, txs: &[(u8, u8)], now: u64) -> Vec<H256> {
        stuck_with(t, txs, now, 16, |_| Verdict::Applies).offer
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
        let asked = std::cell::Cell::new(0);
        let ask = |verdict: Verdict| {
            let asked = &asked;
            move |_: &H256| {
                asked.set(asked.get() + 1);
                verdict
            }
        };
        let txs = [(1, 5)];
        assert!(stuck_with(&mut t, &txs, 0, 16, ask(Verdict::Waits))
            .offer
            .is_empty());
        assert!(stuck_with(&mut t, &txs, 2_000, 16, ask(Verdict::Waits))
            .offer
            .is_empty());
        assert!(
            stuck_with(&mut t, &txs, 2_500, 16, ask(Verdict::Applies))
                .offer
                .is_empty(),
            "the verdict holds for a while"
        );
        assert_eq!(
            stuck_with(&mut t, &txs, 3_000, 16, ask(Verdict::Applies)).offer,
            vec![hash(1, 5)]
        );
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

    #[test]
    fn a_used_copy_is_handed_to_the_pool_and_what_waited_on_it_goes_at_once() {
        let mut t = StuckFutures::default();
        // Nonce 4 of sender 1 is on chain, but the pool kept a copy in its future queue; nonces
        // 5 and 6 wait on that copy. Sender 2's nonce 2 is a used copy with nothing behind it.
        let used: BTreeSet<H256> = [hash(1, 4), hash(2, 2)].into();
        let asked = std::cell::Cell::new(0);
        let verdict = |h: &H256| {
            asked.set(asked.get() + 1);
            if used.contains(h) {
                Verdict::Used
            } else {
                Verdict::Applies
            }
        };
        let all = [(1, 4), (1, 5), (1, 6), (2, 2)];
        assert_eq!(stuck_with(&mut t, &all, 0, 16, verdict), Found::default());
        assert_eq!(
            stuck_with(&mut t, &all, 2_000, 16, verdict),
            Found {
                offer: vec![],
                used: vec![hash(1, 4), hash(2, 2)],
            }
        );
        // Still there a moment later: not asked again, not handed out again yet.
        assert_eq!(
            stuck_with(&mut t, &all, 2_500, 16, verdict),
            Found::default()
        );
        assert_eq!(asked.get(), 2);
        // The pool dropped both copies: 5 and 6 go at once (they waited since the copy did).
        assert_eq!(
            stuck_with(&mut t, &[(1, 5), (1, 6)], 2_600, 16, verdict).offer,
            vec![hash(1, 5), hash(1, 6)]
        );
        // A copy the pool kept is handed out again after a while, with no runtime call.
        let mut u = StuckFutures::default();
        stuck_with(&mut u, &[(2, 2)], 0, 16, verdict);
        stuck_with(&mut u, &[(2, 2)], 2_000, 16, verdict);
        let before = asked.get();
        assert_eq!(
            stuck_with(&mut u, &[(2, 2)], 3_000, 16, verdict).used,
            vec![hash(2, 2)]
        );
        assert_eq!(asked.get(), before, "a used verdict is never asked again");
    }

    #[test]
    fn many_waiting_chains_are_checked_in_turn_not_by_hash() {
        let mut t = StuckFutures::default();
        // Ten senders' chains wait; the state says sender 9's applies, the others wait. Two
        // checks per call: every chain is asked within five rounds.
        let txs: Vec<(u8, u8)> = (0..10u8).map(|s| (s, 1)).collect();
        let verdict = |h: &H256| {
            if *h == hash(9, 1) {
                Verdict::Applies
            } else {
                Verdict::Waits
            }
        };
        stuck_with(&mut t, &txs, 0, 2, verdict);
        let mut offered_at = None;
        for round in 0..5u64 {
            let now = 2_000 + round * RECHECK_MS;
            if stuck_with(&mut t, &txs, now, 2, verdict).offer == vec![hash(9, 1)] {
                offered_at = Some(round);
                break;
            }
        }
        assert!(
            offered_at.is_some(),
            "sender 9's chain was never asked about"
        );
    }
}
