//! How much of the pool this node gossips, and how fast.
//!
//! Substrate's transactions protocol (`sc-network-transactions` 0.59) sends one notification per
//! transaction and peer (RFC 56) into a per-peer queue of 2,048 notifications. A full queue
//! closes the peer's substream (libp2p, `sc-network` 0.60 `protocol/notifications/handler.rs`)
//! or, with litep2p (the default backend), the whole connection, the bsmr consensus stream with
//! it (litep2p 0.15, `protocol/notification/handle.rs`, `send_sync_notification`; polkadot-sdk
//! issue #12111 reports the same warning on Kusama). Two habits of the protocol filled that queue
//! under sustained overload, and every reconnection filled it again at once, so the chain halted
//! (docs/performance.md, "Sustained overload"):
//! - every ready transaction a node imported, from a client, a peer, or another validator's batch,
//!   was relayed at once to each peer not known to have it. Between validators, which all connect
//!   to each other, a relay repeats what the transaction's receiver already sent. The RPC view's
//!   import stream, which `sc_service::spawn_tasks` gossips at once, now yields only this node's
//!   client transactions, at most [`AT_ONCE_PER_SEC`] a second ([`Pace`]);
//! - the periodic round (every 2.9 s) offered each peer the whole ready pool, minus the last
//!   10,240 transactions it knew the peer had: thousands of notifications at once under a backlog,
//!   and to every peer that had just reconnected. The network view's `ready`, whose only use is
//!   that round, yields at most [`GOSSIP_ROUND_LIMIT`], not offered in the last [`REOFFER_AFTER`]
//!   ([`Round`]), so successive rounds walk the whole pool.
//!
//! Consensus does not depend on gossip: a batch carries its transactions to every validator.
//! Gossip serves takeovers (another validator proposes what a silent receiver did not), the
//! leader baseline (transactions reach the primary), and nodes not connected to the receiver.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

/// The most ready transactions one periodic round offers each peer: a quarter of a peer's
/// queue, leaving the rest for client transactions gossiped at once between rounds.
pub const GOSSIP_ROUND_LIMIT: usize = 512;
/// A transaction offered by a round is offered again after this long (a peer may have connected
/// since, or dropped it).
pub const REOFFER_AFTER: Duration = Duration::from_secs(30);
/// Offers remembered at most (about 11 rounds of [`GOSSIP_ROUND_LIMIT`] fit in [`REOFFER_AFTER`]).
const MAX_OFFERED: usize = 16_384;
/// Client transactions gossiped at once, per second, at most ...
pub const AT_ONCE_PER_SEC: f64 = 1_024.0;
/// ... and in one burst. With a round that fills at most a peer's queue to 1,024, the queue is
/// full only if the peer drains fewer than about a thousand a second for a second or more.
pub const AT_ONCE_BURST: f64 = 512.0;

/// What the periodic rounds offered lately.
#[derive(Debug)]
pub(super) struct Round<H> {
    offered: BTreeMap<H, Instant>,
}

impl<H> Default for Round<H> {
    fn default() -> Self {
        Round {
            offered: BTreeMap::new(),
        }
    }
}

impl<H: Ord + Clone> Round<H> {
    /// This round's transactions: the first [`GOSSIP_ROUND_LIMIT`] of `ready` (in the pool's
    /// order) that are `propagable` and not offered in the last [`REOFFER_AFTER`]; they are
    /// remembered as offered.
    pub(super) fn pick<T>(
        &mut self,
        ready: impl Iterator<Item = T>,
        hash: impl Fn(&T) -> H,
        propagable: impl Fn(&T) -> bool,
        now: Instant,
    ) -> Vec<T> {
        self.offered
            .retain(|_, at| now.saturating_duration_since(*at) < REOFFER_AFTER);
        let mut picked = Vec::new();
        for tx in ready {
            if picked.len() == GOSSIP_ROUND_LIMIT {
                break;
            }
            if !propagable(&tx) {
                continue;
            }
            let h = hash(&tx);
            if self.offered.contains_key(&h) {
                continue;
            }
            self.offered.insert(h, now);
            picked.push(tx);
        }
        if self.offered.len() > MAX_OFFERED {
            // Rounds far more often than every 2.9 s: forget the oldest offers first.
            let mut by_age: Vec<(Instant, H)> = self
                .offered
                .iter()
                .map(|(h, at)| (*at, h.clone()))
                .collect();
            by_age.sort();
            for (_, h) in by_age.into_iter().take(self.offered.len() - MAX_OFFERED) {
                self.offered.remove(&h);
            }
        }
        picked
    }

    #[cfg(test)]
    pub(super) fn remembered(&self) -> usize {
        self.offered.len()
    }
}

/// A token bucket for gossip at once: [`AT_ONCE_PER_SEC`], bursts of [`AT_ONCE_BURST`].
#[derive(Debug, Default)]
pub(super) struct Pace {
    tokens: f64,
    at: Option<Instant>,
}

impl Pace {
    /// Take a token at `now`: `None` if one was there (send now), else how long to wait before
    /// asking again.
    pub(super) fn take(&mut self, now: Instant) -> Option<Duration> {
        let refill = match self.at {
            Some(at) => now.saturating_duration_since(at).as_secs_f64() * AT_ONCE_PER_SEC,
            None => AT_ONCE_BURST,
        };
        self.tokens = (self.tokens + refill).min(AT_ONCE_BURST);
        self.at = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            None
        } else {
            Some(Duration::from_secs_f64(
                (1.0 - self.tokens) / AT_ONCE_PER_SEC,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(round: &mut Round<u32>, ready: std::ops::Range<u32>, now: Instant) -> Vec<u32> {
        round.pick(ready, |t| *t, |t| t % 10 != 9, now)
    }

    #[test]
    fn rounds_walk_the_pool_skipping_what_cannot_be_propagated() {
        let t0 = Instant::now();
        let mut round = Round::default();
        let first = pick(&mut round, 0..5_000, t0);
        assert_eq!(first.len(), GOSSIP_ROUND_LIMIT);
        assert!(first.iter().all(|t| t % 10 != 9), "not propagable: skipped");
        assert_eq!(first[0], 0);
        let second = pick(&mut round, 0..5_000, t0 + Duration::from_millis(2_900));
        assert_eq!(second.len(), GOSSIP_ROUND_LIMIT);
        assert!(
            second[0] > *first.last().unwrap(),
            "the next round goes on where the last stopped"
        );
        let small = pick(&mut round, 0..10, t0 + Duration::from_millis(5_800));
        assert!(small.is_empty(), "all offered lately");
        let again = pick(&mut round, 0..10, t0 + REOFFER_AFTER);
        assert_eq!(again.len(), 9, "offered again after REOFFER_AFTER");
    }

    #[test]
    fn offers_remembered_are_bounded() {
        let t0 = Instant::now();
        let mut round = Round::default();
        for i in 0..100u32 {
            let start = i * 1_000;
            pick(
                &mut round,
                start..start + 1_000,
                t0 + Duration::from_millis(i as u64),
            );
        }
        assert_eq!(round.remembered(), MAX_OFFERED);
        let now = t0 + Duration::from_millis(200);
        assert!(
            pick(&mut round, 99_000..99_100, now).is_empty(),
            "the newest offers are kept"
        );
        assert_eq!(
            pick(&mut round, 0..100, now).len(),
            90,
            "the oldest forgotten"
        );
    }

    #[test]
    fn the_pace_allows_a_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut pace = Pace::default();
        for _ in 0..AT_ONCE_BURST as usize {
            assert_eq!(pace.take(t0), None);
        }
        let wait = pace.take(t0).expect("the burst is spent");
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(1));
        let later = t0 + Duration::from_millis(100);
        let sent = (0..1_000)
            .take_while(|_| pace.take(later).is_none())
            .count();
        assert!(
            (100..=104).contains(&sent),
            "about AT_ONCE_PER_SEC / 10 in 100 ms: {sent}"
        );
    }
}
