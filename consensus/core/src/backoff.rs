//! Exponential backoff of retransmissions. A message resent on every retransmission tick while
//! the network is slower than the tick multiplies the traffic that slows it: on a saturated link
//! (docs/performance.md, "Thin links: where the bytes go") every tick queued another copy of
//! every stalled instance's pre-prepare and payload behind the copies still waiting, and the
//! chain stopped. Each resent thing therefore waits twice as long after each resend without
//! progress, up to [`MAX_DOUBLINGS`] doublings of the period, and starts again when it
//! progresses (as TCP's retransmission timer does, RFC 6298 5.5 and 5.7).
//!
//! The first wait is the retransmission period or, when the network is slower, the round trip
//! measured ([`RoundTrip`], RFC 6298 section 2): a copy is not sent again while the first may
//! still be on its way. Both stay within [`MAX_DOUBLINGS`] doublings of the period, which bounds
//! how long a message lost before GST waits.

/// Doublings of the retransmission period at most: after three resends without progress a thing
/// is resent every eight periods (12 s with the default 1.5 s), which bounds how long a message
/// lost before GST waits (docs/consensus.md, "Liveness bound").
pub const MAX_DOUBLINGS: u32 = 3;

/// When one thing was last resent, and how many times since its last progress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backoff {
    /// What progress looked like at the last resend (a time or a count the owner picks).
    progress: u64,
    /// Resends since that progress.
    resends: u32,
    /// When the last of them (or the progress, which starts the wait) happened.
    last_ms: u64,
}

impl Backoff {
    /// Whether a resend is due at `now` on a retransmission tick of `period`, and if so count
    /// it. `progress` changes whenever the thing progresses (the wait then starts again from
    /// `since`, at `first`); otherwise the wait doubles with each resend.
    ///
    /// `first`: the first wait ([`RoundTrip::first_wait`]; the period itself if no slower).
    pub fn due(&mut self, now: u64, progress: u64, since: u64, period: u64, first: u64) -> bool {
        if progress != self.progress || self.resends == 0 && self.last_ms == 0 {
            *self = Backoff {
                progress,
                resends: 0,
                last_ms: since,
            };
        }
        let longest = Self::longest_wait(period);
        let wait = (first.max(period) << self.resends.min(MAX_DOUBLINGS)).min(longest);
        if now.saturating_sub(self.last_ms) < wait {
            return false;
        }
        self.resends += 1;
        self.last_ms = now;
        true
    }

    /// The longest a thing waits between two resends without progress.
    pub fn longest_wait(period: u64) -> u64 {
        period << MAX_DOUBLINGS
    }

    /// Whether it was resent since its last progress (a round trip measured over a resend
    /// cannot tell which copy was answered: Karn's rule leaves it out).
    pub fn resent(&self) -> bool {
        self.resends > 0
    }
}

/// A smoothed round-trip estimate (RFC 6298 section 2, in ms): the time from announcing our own
/// batch to holding a quorum of replies for it. A quorum's time is what progress waits for,
/// and the f slowest members, Byzantine ones included, cannot lengthen it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoundTrip {
    /// Smoothed round trip; `None` before the first sample.
    srtt: Option<u64>,
    /// Its smoothed mean deviation.
    rttvar: u64,
}

impl RoundTrip {
    /// Take one measured round trip.
    pub fn sample(&mut self, rtt: u64) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                self.rttvar = (3 * self.rttvar + srtt.abs_diff(rtt)) / 4;
                self.srtt = Some((7 * srtt + rtt) / 8);
            }
        }
    }

    /// The first wait before a resend on a retransmission tick of `period`: the retransmission
    /// timeout `srtt + 4 rttvar` when it is longer than the period, within
    /// [`Backoff::longest_wait`].
    pub fn first_wait(&self, period: u64) -> u64 {
        self.timeout()
            .max(period)
            .min(Backoff::longest_wait(period))
    }

    /// The retransmission timeout `srtt + 4 rttvar` (0 before the first sample).
    pub fn timeout(&self) -> u64 {
        self.srtt
            .map_or(0, |s| s.saturating_add(self.rttvar.saturating_mul(4)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_without_progress_up_to_eight_periods_and_restarts_on_progress() {
        let mut b = Backoff::default();
        let p = 1_000;
        // Progress at 500: the first resend is due one period later.
        assert!(!b.due(1_000, 7, 500, p, p));
        assert!(b.due(1_500, 7, 500, p, p));
        // Then after 2, 4, 8, 8 periods.
        let mut at = 1_500;
        for wait in [2_000, 4_000, 8_000, 8_000, 8_000] {
            assert!(!b.due(at + wait - 1, 7, 500, p, p), "not before {wait}");
            assert!(b.due(at + wait, 7, 500, p, p), "{wait} after");
            at += wait;
        }
        // Progress (a new marker) restarts at one period from its time.
        assert!(!b.due(at + 100, 8, at, p, p));
        assert!(b.due(at + 1_000, 8, at, p, p));
        assert!(!b.due(at + 2_000, 8, at, p, p), "then two periods again");
    }

    #[test]
    fn a_slow_round_trip_lengthens_the_first_wait_within_the_longest() {
        let p = 1_000;
        let mut rt = RoundTrip::default();
        assert_eq!(rt.first_wait(p), p, "no sample: the period");
        rt.sample(200);
        assert_eq!(rt.first_wait(p), p, "a fast network: the period");
        let mut rt = RoundTrip::default();
        rt.sample(3_000);
        // srtt 3,000 + 4 * 1,500.
        assert_eq!(
            rt.first_wait(p),
            Backoff::longest_wait(p),
            "capped at eight periods"
        );
        for _ in 0..40 {
            rt.sample(2_000);
        }
        let w = rt.first_wait(p);
        assert!(
            (2_000..2_200).contains(&w),
            "converges on a steady 2 s: {w}"
        );
        // Resends start from it and double within the longest wait.
        let mut b = Backoff::default();
        assert!(!b.due(w - 1, 1, 0, p, w));
        assert!(b.due(w, 1, 0, p, w));
        assert!(!b.due(w + 2 * w - 1, 1, 0, p, w));
        assert!(b.due(3 * w, 1, 0, p, w));
        assert!(b.resent());
        assert!(
            !b.due(3 * w + 8 * p - 1, 1, 0, p, w),
            "4w > 8 periods: capped"
        );
        assert!(b.due(3 * w + 8 * p, 1, 0, p, w));
    }

    #[test]
    fn a_fresh_backoff_with_no_progress_yet_is_due_at_once() {
        let mut b = Backoff::default();
        assert!(b.due(1_500, 0, 0, 1_500, 1_500));
        assert!(!b.due(3_000, 0, 0, 1_500, 1_500));
        assert!(b.due(4_500, 0, 0, 1_500, 1_500));
    }
}
