//! Client transactions held back from gossip, and those due to go.
//!
//! A leaderless validator holds its clients' transactions from gossip while its own batches
//! carry them (`client_txs.rs`). [`Held`] keeps them by when their hold ends, follows the hold
//! in force when it shrinks (the stretch lapsed or fell), and drops what is ordered while it is
//! half full. [`Outbox`] keeps what is due until the pace ([`super::gossip::Pace`]) lets it go,
//! so a release of thousands at once (a lapse) never stops the stream's task from holding new
//! imports.

use std::{
    collections::{BTreeSet, VecDeque},
    time::{Duration, Instant},
};

/// Client transactions held back from gossip at most at once; beyond, they are gossiped at once.
/// The hold lasts up to 11 s under load (`client_txs.rs`), so ordered ones are let go early
/// while the set is half full ([`PURGE_HELD_EVERY`]).
pub(super) const MAX_HELD: usize = 16_384;
/// How often, at most, the held set drops what is ordered or no longer in the pool.
const PURGE_HELD_EVERY: Duration = Duration::from_secs(1);
/// When the hold in force falls this much below the longest the held set was keyed with (the
/// stretch lapsed, or shrank), every held transaction's end is brought forward to it.
const REKEY_HELD_WHEN_SHORTER: Duration = Duration::from_secs(1);
/// Due transactions waiting for the pace at most; beyond, the newest are left to the periodic
/// gossip round (as a notification the pool's full channel drops would be).
pub(super) const MAX_OUTBOX: usize = MAX_HELD;

/// Held transactions by when their hold ends.
#[derive(Debug)]
pub(super) struct Held<H> {
    by_end: BTreeSet<(Instant, H)>,
    /// The longest hold the ends were computed with since they were last brought forward.
    keyed_for: Duration,
    /// When ordered entries were last dropped.
    purged: Instant,
}

impl<H: Ord + Clone> Held<H> {
    /// Nothing held, as of `now`.
    pub(super) fn new(now: Instant) -> Self {
        Held {
            by_end: BTreeSet::new(),
            keyed_for: Duration::ZERO,
            purged: now,
        }
    }

    /// How many are held.
    pub(super) fn len(&self) -> usize {
        self.by_end.len()
    }

    /// Whether no more may be held (a fresh one is gossiped at once).
    pub(super) fn is_full(&self) -> bool {
        self.len() >= MAX_HELD
    }

    /// Hold `hash` until `end`, computed with the hold `hold`.
    pub(super) fn hold(&mut self, hash: H, end: Instant, hold: Duration) {
        self.keyed_for = self.keyed_for.max(hold);
        self.by_end.insert((end, hash));
    }

    /// At `now`, with the hold in force `hold_now`: drops, at most once per
    /// [`PURGE_HELD_EVERY`] and only while more than half full, what `keep` refuses (ordered,
    /// or gone from the pool); and if `hold_now` is [`REKEY_HELD_WHEN_SHORTER`] or more below
    /// the longest hold the ends were computed with, brings every end forward to `end_of` (a
    /// hash it does not know keeps its end). Returns whether the ends were brought forward.
    pub(super) fn follow(
        &mut self,
        now: Instant,
        hold_now: Duration,
        keep: impl Fn(&H) -> bool,
        end_of: impl Fn(&H) -> Option<Instant>,
    ) -> bool {
        if self.len() > MAX_HELD / 2
            && now.saturating_duration_since(self.purged) >= PURGE_HELD_EVERY
        {
            self.purged = now;
            self.by_end.retain(|(_, h)| keep(h));
        }
        let rekey = hold_now + REKEY_HELD_WHEN_SHORTER <= self.keyed_for;
        if rekey {
            self.by_end = std::mem::take(&mut self.by_end)
                .into_iter()
                .map(|(end, h)| (end_of(&h).map_or(end, |e| e.min(end)), h))
                .collect();
            self.keyed_for = hold_now;
        }
        self.keyed_for = self.keyed_for.max(hold_now);
        rekey
    }

    /// The next held transaction whose hold ended by `now`, if any (taken out).
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<H> {
        if self.by_end.first().is_some_and(|(end, _)| *end <= now) {
            self.by_end.pop_first().map(|(_, h)| h)
        } else {
            None
        }
    }
}

/// Due transactions not gossiped yet, oldest first; each with whether it comes from the hold
/// (it then goes only if still not ordered when its turn comes).
#[derive(Debug)]
pub(super) struct Outbox<H> {
    queue: VecDeque<(H, bool)>,
}

impl<H> Default for Outbox<H> {
    fn default() -> Self {
        Outbox {
            queue: VecDeque::new(),
        }
    }
}

impl<H> Outbox<H> {
    /// Queue `hash` (`from_hold`: it was held); false if the outbox is full (left to the
    /// periodic round).
    pub(super) fn push(&mut self, hash: H, from_hold: bool) -> bool {
        if self.queue.len() >= MAX_OUTBOX {
            return false;
        }
        self.queue.push_back((hash, from_hold));
        true
    }

    /// The next to go while `may_go` allows: one that came from the hold and is now `ordered`
    /// is dropped without asking `may_go` (the periodic round offers it if it is unordered
    /// again).
    pub(super) fn next(
        &mut self,
        ordered: impl Fn(&H) -> bool,
        mut may_go: impl FnMut() -> bool,
    ) -> Option<H> {
        while let Some((hash, from_hold)) = self.queue.front() {
            if *from_hold && ordered(hash) {
                self.queue.pop_front();
                continue;
            }
            if !may_go() {
                return None;
            }
            return self.queue.pop_front().map(|(h, _)| h);
        }
        None
    }

    /// How many wait.
    pub(super) fn len(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shorter_hold_brings_ends_forward_and_never_back() {
        let t = Instant::now();
        let s = Duration::from_secs;
        let mut held = Held::new(t);
        held.hold(1u8, t + s(10), s(10));
        held.hold(2, t + s(2), s(10));
        held.hold(3, t + s(9), s(10));
        let now_ends = |h: &u8| match h {
            1 => Some(t + s(3)),
            2 => Some(t + s(5)),
            _ => None,
        };
        let keep_all = |_: &u8| true;
        assert!(
            !held.follow(t, s(9) + Duration::from_millis(1), keep_all, now_ends),
            "less than a second shorter: the ends stay"
        );
        assert_eq!(held.pop_due(t + s(8)), Some(2));
        assert!(held.follow(t, s(9), keep_all, now_ends), "a second shorter");
        assert_eq!(held.pop_due(t + s(2)), None);
        assert_eq!(held.pop_due(t + s(3)), Some(1), "brought forward");
        assert_eq!(held.pop_due(t + s(8)), None, "an unknown one keeps its end");
        assert_eq!(held.pop_due(t + s(9)), Some(3));
        // Keyed for 9 s now: falling to 8.5 s is no re-key, to 8 s is; a longer hold raises it.
        held.hold(4, t + s(20), s(9));
        assert!(!held.follow(t, s(8) + Duration::from_millis(500), keep_all, |_| None));
        held.hold(5, t + s(30), s(12));
        assert!(!held.follow(t, s(11) + Duration::from_millis(1), keep_all, |_| None));
        assert!(held.follow(t, s(11), keep_all, |_| Some(t)));
        assert_eq!(held.pop_due(t), Some(4));
        assert_eq!(held.pop_due(t), Some(5));
        assert_eq!(held.len(), 0);
    }

    #[test]
    fn ordered_ones_are_purged_only_when_half_full_and_once_a_second() {
        let t = Instant::now();
        let mut held = Held::new(t);
        for h in 0..=MAX_HELD / 2 {
            held.hold(h, t + Duration::from_secs(10), Duration::from_secs(10));
        }
        let even_kept = |h: &usize| h.is_multiple_of(2);
        held.follow(t, Duration::from_secs(10), even_kept, |_| None);
        assert_eq!(held.len(), MAX_HELD / 2 + 1, "not a second since the start");
        let later = t + PURGE_HELD_EVERY;
        held.follow(later, Duration::from_secs(10), even_kept, |_| None);
        assert_eq!(held.len(), MAX_HELD / 4 + 1, "odd ones dropped");
        held.follow(later, Duration::from_secs(10), |_| false, |_| None);
        assert_eq!(
            held.len(),
            MAX_HELD / 4 + 1,
            "no longer more than half full"
        );
        assert!(!held.is_full());
    }

    #[test]
    fn the_outbox_drops_ordered_held_ones_and_waits_for_the_pace() {
        let mut out = Outbox::default();
        assert!(out.push(1u32, true));
        assert!(out.push(2, false));
        assert!(out.push(3, true));
        let ordered = |h: &u32| *h != 3;
        let mut tokens = 1;
        let mut take = || {
            let ok = tokens > 0;
            tokens -= i32::from(ok);
            ok
        };
        assert_eq!(
            out.next(ordered, &mut take),
            Some(2),
            "1 was held and is ordered now: dropped; 2 was never held: goes even if ordered"
        );
        assert_eq!(out.next(ordered, &mut take), None, "no token left");
        assert_eq!(out.len(), 1);
        assert_eq!(out.next(ordered, || true), Some(3));
        for h in 0..MAX_OUTBOX as u32 {
            out.push(h, false);
        }
        assert!(!out.push(0, false), "full: left to the periodic round");
    }
}
