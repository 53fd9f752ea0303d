//! How much of our own batches may be in flight: a congestion window in bytes, paced by the
//! queueing delay our batches' round trips show (delay-based, as LEDBAT paces a background flow,
//! RFC 6817, with TCP's slow start, additive increase and multiplicative decrease, RFC 5681).
//!
//! Every batch we announce makes work for every member: replies, a pre-prepare, votes, and, if
//! anything is late, view changes and recovery leaders' copies of the payload. Offered more than
//! its links carry, a replica that announced whatever the seq window allowed filled its uplink
//! with a minute of queue; every protocol timer shorter than that queue then fired and sent more,
//! and the chain stopped (docs/performance.md, "Thin links: where the bytes go"). The window here
//! keeps the queue short instead. When a round trip to a quorum of replies exceeds the lowest one
//! lately seen by more than the queueing target, or a batch of ours must be announced again (no
//! quorum within the retransmission timeout), the window halves, at most once per round trip.
//! Below half the target it grows by the bytes each reply acknowledges (doubling per round trip);
//! between half the target and the target by one [`GROWTH_UNIT`] per window. The client batches
//! it holds back wait in our queue, where they merge into larger batches up to the room the
//! window leaves (see [`crate::discovery::own`]), so a slower network carries fewer, larger
//! batches, none larger than the window, rather than more copies.
//!
//! The f slowest members cannot lengthen a quorum's round trip, so a Byzantine minority cannot
//! shrink the window below what the correct members' links impose; at worst, by replying fast,
//! it keeps the window open, which is how every batch was sent before. One batch always goes
//! when none is in flight, so a replica always makes progress.

/// The smallest window (bytes).
pub const MIN_WINDOW_BYTES: u64 = 8 * 1024;
/// What the window grows by per window of replies near the target (bytes).
pub const GROWTH_UNIT: u64 = 4 * 1024;
/// How long one bucket of the lowest round trip lasts (ms): the base round trip is the lowest
/// of the current and the previous bucket, so a path that got slower for good is learned within
/// two buckets (RFC 6817 keeps minutes of base-delay history for the same reason).
const BASE_BUCKET_MS: u64 = 60_000;
/// The queueing target with the core's default view timer (a quarter of it).
pub const DEFAULT_TARGET_MS: u64 = 750;

/// The congestion window of our own batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pacing {
    /// The window (bytes); `None` until the first congestion signal: only the seq window
    /// limits until then.
    window: Option<u64>,
    /// Queueing delay above the base round trip that counts as congestion (ms).
    target_ms: u64,
    /// The lowest round trip of the current bucket and the start of that bucket.
    current: Option<(u64, u64)>,
    /// The lowest round trip of the previous bucket.
    previous: Option<u64>,
    /// No further decrease before this time (one round trip after the last).
    hold_until: u64,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing::new(DEFAULT_TARGET_MS)
    }
}

impl Pacing {
    /// A window that counts a round trip longer than the base by more than `target_ms` as
    /// congestion.
    pub fn new(target_ms: u64) -> Self {
        Pacing {
            window: None,
            target_ms: target_ms.max(1),
            current: None,
            previous: None,
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

    /// The lowest round trip lately seen (ms), if any.
    pub fn base(&self) -> Option<u64> {
        let current = self.current.map(|(rtt, _)| rtt);
        match (current, self.previous) {
            (Some(c), Some(p)) => Some(c.min(p)),
            (c, p) => c.or(p),
        }
    }

    /// One of our batches, of `bytes`, gathered a quorum of replies `rtt` ms after its first
    /// announcement, at `now`, with `in_flight` bytes of ours in flight.
    pub fn on_round_trip(&mut self, rtt: u64, bytes: u64, now: u64, in_flight: u64) {
        match self.current {
            Some((_, start)) if now.saturating_sub(start) >= BASE_BUCKET_MS => {
                self.previous = self.current.map(|(r, _)| r);
                self.current = Some((rtt, now));
            }
            Some((low, start)) => self.current = Some((low.min(rtt), start)),
            None => self.current = Some((rtt, now)),
        }
        let queueing = rtt.saturating_sub(self.base().unwrap_or(rtt));
        let Some(w) = self.window else {
            if queueing > self.target_ms {
                self.congested(now, rtt, in_flight);
            }
            return;
        };
        let grown = if queueing > self.target_ms {
            return self.congested(now, rtt, in_flight);
        } else if 2 * queueing < self.target_ms {
            w.saturating_add(bytes)
        } else {
            w.saturating_add(GROWTH_UNIT.saturating_mul(bytes.max(1)) / w.max(1))
        };
        self.window = Some(grown);
    }

    /// A batch of ours got no quorum within the retransmission timeout `rto` and is announced
    /// again at `now`, with `in_flight` bytes of ours in flight: congestion, as a timeout is to
    /// TCP.
    pub fn on_resend(&mut self, now: u64, rto: u64, in_flight: u64) {
        self.congested(now, rto, in_flight);
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

    #[test]
    fn the_window_stays_open_until_a_round_trip_shows_queueing() {
        let mut p = Pacing::new(500);
        for t in 0..20 {
            p.on_round_trip(200 + t % 3 * 100, 10 * KB, t * 1_000, 100 * KB);
        }
        assert_eq!(p.window(), None, "within the target: open");
        assert_eq!(p.room(u64::MAX / 2), u64::MAX);
        assert_eq!(p.base(), Some(200));
    }

    #[test]
    fn queueing_halves_the_window_once_per_round_trip_then_it_grows_back() {
        let mut p = Pacing::new(500);
        p.on_round_trip(200, 10 * KB, 0, 100 * KB);
        p.on_round_trip(1_000, 10 * KB, 1_000, 100 * KB);
        assert_eq!(
            p.window(),
            Some(50 * KB),
            "800 ms above the base: half in flight"
        );
        assert_eq!(p.room(30 * KB), 20 * KB);
        p.on_round_trip(1_000, 10 * KB, 1_500, 100 * KB);
        assert_eq!(p.window(), Some(50 * KB), "once per round trip");
        p.on_round_trip(1_000, 10 * KB, 2_000, 100 * KB);
        assert_eq!(p.window(), Some(25 * KB), "a round trip later, again");
        for t in 0..10 {
            p.on_round_trip(3_000, 10 * KB, 3_000 + t * 5_000, 100 * KB);
        }
        assert_eq!(p.window(), Some(MIN_WINDOW_BYTES), "never below the floor");
        // Far below the target: each reply's bytes (doubling per round trip).
        p.on_round_trip(250, 8 * KB, 60_000, 8 * KB);
        assert_eq!(p.window(), Some(16 * KB));
        // Between half the target and the target: one unit per window.
        p.on_round_trip(500, 8 * KB, 60_100, 8 * KB);
        assert_eq!(
            p.window(),
            Some(16 * KB + 2 * KB),
            "8 of 16 KB acknowledged: half a unit"
        );
    }

    #[test]
    fn a_resend_is_congestion() {
        let mut p = Pacing::new(500);
        p.on_resend(10_000, 4_000, 64 * KB);
        assert_eq!(p.window(), Some(32 * KB));
        p.on_resend(12_000, 4_000, 64 * KB);
        assert_eq!(
            p.window(),
            Some(32 * KB),
            "within the round trip of the last decrease"
        );
        p.on_resend(14_000, 4_000, 64 * KB);
        assert_eq!(p.window(), Some(16 * KB));
    }

    #[test]
    fn the_base_round_trip_forgets_a_path_that_got_slower_within_two_buckets() {
        let mut p = Pacing::new(500);
        p.on_round_trip(100, KB, 0, KB);
        p.on_round_trip(2_000, KB, BASE_BUCKET_MS, KB);
        assert_eq!(p.base(), Some(100), "the previous bucket still counts");
        p.on_round_trip(2_000, KB, 2 * BASE_BUCKET_MS, KB);
        assert_eq!(p.base(), Some(2_000), "the fast bucket aged out");
    }
}
