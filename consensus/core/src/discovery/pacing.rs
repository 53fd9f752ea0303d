//! How much of our own batches may be in flight: a congestion window in bytes, paced by the
//! queueing delay our batches' replies show (delay-based, as LEDBAT paces a background flow,
//! RFC 6817, with TCP's slow start, additive increase and multiplicative decrease, RFC 5681).
//!
//! Every batch we announce makes work for every member: replies, a pre-prepare, votes, and, if
//! anything is late, view changes and recovery leaders' copies of the payload. Offered more than
//! its links carry, a replica that announced whatever the seq window allowed filled its uplink
//! with a minute of queue; every protocol timer shorter than that queue then fired and sent more,
//! and the chain stopped (docs/performance.md, "Thin links: where the bytes go"). The window here
//! keeps the queue short instead.
//!
//! **The signal.** Each member's reply to our batch is timed from our first announcement and
//! compared with the lowest such time that member lately showed (its base, over one to two
//! minutes): the difference is that member's queueing delay. Once a quorum replied, the
//! (f+1)-th smallest of the other members' delays is the batch's queueing. If it exceeds the
//! target, at least one correct member (or our own uplink) is queued: the window halves, at most
//! once per round trip. Below half the target the window grows by the batch's bytes (doubling per
//! round trip), between half the target and the target by one [`GROWTH_UNIT`] per window.
//!
//! **Byzantine members.** Each member is compared only with itself, so a member far away is
//! not read as congestion, and a member that replies fast early and slowly later changes only
//! its own delay: f of them cannot make the (f+1)-th smallest large while the correct members
//! are not queued, nor small while they all are (then only Byzantine delays are small, and
//! there are at most f). Our own reply, never queued, does not count.
//!
//! The client batches the window holds back wait in our queue, where they merge into larger
//! batches up to the room the window leaves (see [`crate::discovery::own`]). One batch always
//! goes when none of ours is in flight, so a replica always makes progress.

use crate::types::ValidatorId;
use std::collections::BTreeMap;

/// The smallest window (bytes).
pub const MIN_WINDOW_BYTES: u64 = 8 * 1024;
/// What the window grows by per window of replies near the target (bytes).
pub const GROWTH_UNIT: u64 = 4 * 1024;
/// How long one bucket of the lowest round trip lasts (ms): the base round trip is the lowest
/// of the current and the previous bucket, so a path that got slower for good is learned within
/// two buckets (RFC 6817 keeps minutes of base-delay history for the same reason).
const BASE_BUCKET_MS: u64 = 60_000;
/// The default queueing target: half the core's default command view timer (3 s), so queues
/// are kept short of what would fire a view change. A quarter (750 ms) paces thin links twice as
/// well but reads the reply queueing of CPU-bound validators as congestion too
/// (docs/performance.md, "Pacing on thin links").
pub const DEFAULT_TARGET_MS: u64 = 1_500;

/// The congestion window of our own batches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pacing {
    /// The window (bytes); `None` until the first congestion signal: only the seq window
    /// limits until then.
    window: Option<u64>,
    /// Queueing delay above a member's base that counts as congestion (ms); 0: never paced.
    target_ms: u64,
    /// Each member's base: the lowest reply time it showed lately.
    bases: BTreeMap<ValidatorId, Base>,
    /// No further decrease before this time (one round trip after the last).
    hold_until: u64,
}

/// One member's lowest reply times: of the current bucket (and when it started), and of the
/// previous one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Base {
    current: u64,
    since: u64,
    previous: Option<u64>,
}

impl Base {
    /// Take a reply time at `now`; the base after it.
    fn sample(&mut self, rtt: u64, now: u64) -> u64 {
        if now.saturating_sub(self.since) >= BASE_BUCKET_MS {
            self.previous = Some(self.current);
            self.current = rtt;
            self.since = now;
        } else {
            self.current = self.current.min(rtt);
        }
        self.value()
    }

    /// The base: the lower of the two buckets' lowest.
    fn value(&self) -> u64 {
        self.previous.map_or(self.current, |p| p.min(self.current))
    }
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing::new(DEFAULT_TARGET_MS)
    }
}

impl Pacing {
    /// A window that counts a queueing delay above `target_ms` as congestion (0: a window that
    /// never closes).
    pub fn new(target_ms: u64) -> Self {
        Pacing {
            window: None,
            target_ms,
            bases: BTreeMap::new(),
            hold_until: 0,
        }
    }

    /// The window (bytes), `None` while open.
    pub fn window(&self) -> Option<u64> {
        self.window
    }

    /// Bytes that may still go with `in_flight` bytes of ours in flight.
    pub fn room(&self, in_flight: u64) -> u64 {
        self.window
            .map_or(u64::MAX, |w| w.saturating_sub(in_flight))
    }

    /// The lowest reply time member `v` lately showed (ms), if any.
    pub fn base(&self, v: &ValidatorId) -> Option<u64> {
        self.bases.get(v).map(Base::value)
    }

    /// A quorum replied to one of our batches, of `bytes`: `replies` holds each other member's
    /// reply time (ms from our first announcement), `f` is how many members may be Byzantine,
    /// `in_flight` the bytes of ours in flight, at `now`.
    pub fn on_quorum(
        &mut self,
        replies: &[(ValidatorId, u64)],
        f: usize,
        bytes: u64,
        now: u64,
        in_flight: u64,
    ) {
        if self.target_ms == 0 {
            return;
        }
        let mut delays: Vec<u64> = replies
            .iter()
            .map(|(v, rtt)| {
                let base = self
                    .bases
                    .entry(*v)
                    .or_insert(Base {
                        current: *rtt,
                        since: now,
                        previous: None,
                    })
                    .sample(*rtt, now);
                rtt.saturating_sub(base)
            })
            .collect();
        delays.sort_unstable();
        let Some(queueing) = delays.get(f).copied() else {
            return;
        };
        let round_trip = replies.iter().map(|(_, rtt)| *rtt).max().unwrap_or(0);
        if queueing > self.target_ms {
            return self.congested(now, round_trip, in_flight);
        }
        let Some(w) = self.window else {
            return;
        };
        let grown = if 2 * queueing < self.target_ms {
            w.saturating_add(bytes)
        } else {
            w.saturating_add(GROWTH_UNIT.saturating_mul(bytes.max(1)) / w.max(1))
        };
        self.window = Some(grown);
    }

    /// Halve the window (an open one from what is in flight), once per round trip `rtt`.
    fn congested(&mut self, now: u64, rtt: u64, in_flight: u64) {
        if now < self.hold_until {
            return;
        }
        let w = self.window.unwrap_or(in_flight);
        self.window = Some((w / 2).max(MIN_WINDOW_BYTES));
        self.hold_until = now.saturating_add(rtt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KB: u64 = 1024;
    const F: usize = 1;

    fn v(i: u8) -> ValidatorId {
        [i; 32]
    }

    /// Replies of members 1, 2 and 3 after these times.
    fn replies(times: [u64; 3]) -> Vec<(ValidatorId, u64)> {
        (1..=3).zip(times).map(|(i, t)| (v(i), t)).collect()
    }

    #[test]
    fn the_window_stays_open_while_no_member_shows_queueing() {
        let mut p = Pacing::new(500);
        for t in 0..20 {
            // Member 3 is far away: slow, but always as slow.
            p.on_quorum(
                &replies([200 + t % 3 * 100, 250, 3_000]),
                F,
                10 * KB,
                t * 1_000,
                0,
            );
        }
        assert_eq!(p.window(), None, "within the target: open");
        assert_eq!(p.room(u64::MAX / 2), u64::MAX);
        assert_eq!((p.base(&v(1)), p.base(&v(3))), (Some(200), Some(3_000)));
    }

    #[test]
    fn queueing_at_the_f_plus_first_member_halves_the_window_once_per_round_trip() {
        let mut p = Pacing::new(500);
        p.on_quorum(&replies([200, 200, 200]), F, 10 * KB, 0, 100 * KB);
        p.on_quorum(&replies([1_000, 200, 200]), F, 10 * KB, 1_000, 100 * KB);
        assert_eq!(
            p.window(),
            None,
            "one member queued: f of them could be lying"
        );
        p.on_quorum(&replies([1_000, 1_000, 200]), F, 10 * KB, 2_000, 100 * KB);
        assert_eq!(
            p.window(),
            Some(50 * KB),
            "two: one is correct; half what is in flight"
        );
        assert_eq!(p.room(30 * KB), 20 * KB);
        p.on_quorum(&replies([1_000, 1_000, 200]), F, 10 * KB, 2_500, 100 * KB);
        assert_eq!(p.window(), Some(50 * KB), "once per round trip");
        p.on_quorum(&replies([1_000, 1_000, 200]), F, 10 * KB, 3_000, 100 * KB);
        assert_eq!(p.window(), Some(25 * KB), "a round trip later, again");
        for t in 0..10 {
            p.on_quorum(
                &replies([3_000, 3_000, 200]),
                F,
                10 * KB,
                4_000 + t * 5_000,
                100 * KB,
            );
        }
        assert_eq!(p.window(), Some(MIN_WINDOW_BYTES), "never below the floor");
        // Far below the target: the batch's bytes (doubling per round trip).
        p.on_quorum(&replies([250, 250, 250]), F, 8 * KB, 60_000, 8 * KB);
        assert_eq!(p.window(), Some(16 * KB));
        // Between half the target and the target: one unit per window.
        p.on_quorum(&replies([500, 500, 200]), F, 8 * KB, 60_100, 8 * KB);
        assert_eq!(
            p.window(),
            Some(16 * KB + 2 * KB),
            "8 of 16 KB acknowledged: half a unit"
        );
    }

    #[test]
    fn a_member_fast_early_and_slow_later_moves_only_its_own_delay() {
        let mut p = Pacing::new(500);
        // Member 1 (Byzantine) replies at once to the first batch, then as late as it can; the
        // others are steady, member 3 far away.
        p.on_quorum(&replies([0, 300, 2_000]), F, 10 * KB, 0, 100 * KB);
        for t in 1..30 {
            p.on_quorum(
                &replies([5_000, 300, 2_000]),
                F,
                10 * KB,
                t * 1_000,
                100 * KB,
            );
        }
        assert_eq!(p.window(), None, "the correct members are not queued");
        // Our uplink queues: every correct member's reply comes 1 s later; the Byzantine one
        // now replies at once.
        p.on_quorum(&replies([0, 1_300, 3_000]), F, 10 * KB, 40_000, 100 * KB);
        assert_eq!(
            p.window(),
            Some(50 * KB),
            "at most f small delays cannot hide it"
        );
    }

    #[test]
    fn a_zero_target_never_paces() {
        let mut p = Pacing::new(0);
        p.on_quorum(&replies([100, 100, 100]), F, KB, 0, KB);
        p.on_quorum(&replies([9_000, 9_000, 9_000]), F, KB, 1_000, KB);
        assert_eq!(p.window(), None);
    }

    #[test]
    fn with_fewer_other_replies_than_f_plus_one_nothing_changes() {
        let mut p = Pacing::new(500);
        p.on_quorum(&[(v(1), 100)], F, KB, 0, KB);
        p.on_quorum(&[(v(1), 5_000)], F, KB, 1_000, KB);
        assert_eq!(p.window(), None);
    }

    #[test]
    fn a_members_base_forgets_a_path_that_got_slower_within_two_buckets() {
        let mut p = Pacing::new(500);
        p.on_quorum(&replies([100, 100, 100]), F, KB, 0, KB);
        p.on_quorum(&replies([2_000, 100, 100]), F, KB, BASE_BUCKET_MS, KB);
        assert_eq!(p.base(&v(1)), Some(100), "the previous bucket still counts");
        p.on_quorum(&replies([2_000, 100, 100]), F, KB, 2 * BASE_BUCKET_MS, KB);
        assert_eq!(p.base(&v(1)), Some(2_000), "the fast bucket aged out");
    }
}
