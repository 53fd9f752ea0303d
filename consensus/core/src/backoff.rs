//! Exponential backoff of retransmissions. A message resent on every retransmission tick while
//! the network is slower than the tick multiplies the traffic that slows it: on a saturated link
//! (docs/performance.md, "Congestion") every tick queued another copy of every stalled instance's
//! pre-prepare and payload behind the copies still waiting, and the chain stopped for good. Each
//! resent thing therefore waits twice as long after each resend without progress, up to
//! [`MAX_DOUBLINGS`] doublings of the period, and starts again at one period when it progresses
//! (as TCP's retransmission timer does, RFC 6298 5.5 and 5.7).

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
    /// `since`, one period); otherwise the wait doubles with each resend.
    pub fn due(&mut self, now: u64, progress: u64, since: u64, period: u64) -> bool {
        if progress != self.progress || self.resends == 0 && self.last_ms == 0 {
            *self = Backoff {
                progress,
                resends: 0,
                last_ms: since,
            };
        }
        let wait = period << self.resends.min(MAX_DOUBLINGS);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_without_progress_up_to_eight_periods_and_restarts_on_progress() {
        let mut b = Backoff::default();
        let p = 1_000;
        // Progress at 500: the first resend is due one period later.
        assert!(!b.due(1_000, 7, 500, p));
        assert!(b.due(1_500, 7, 500, p));
        // Then after 2, 4, 8, 8 periods.
        let mut at = 1_500;
        for wait in [2_000, 4_000, 8_000, 8_000, 8_000] {
            assert!(!b.due(at + wait - 1, 7, 500, p), "not before {wait}");
            assert!(b.due(at + wait, 7, 500, p), "{wait} after");
            at += wait;
        }
        // Progress (a new marker) restarts at one period from its time.
        assert!(!b.due(at + 100, 8, at, p));
        assert!(b.due(at + 1_000, 8, at, p));
        assert!(!b.due(at + 2_000, 8, at, p), "then two periods again");
    }

    #[test]
    fn a_fresh_backoff_with_no_progress_yet_is_due_at_once() {
        let mut b = Backoff::default();
        assert!(b.due(1_500, 0, 0, 1_500));
        assert!(!b.due(3_000, 0, 0, 1_500));
        assert!(b.due(4_500, 0, 0, 1_500));
    }
}
