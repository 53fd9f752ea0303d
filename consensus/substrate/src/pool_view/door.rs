//! Admission of client transactions at a validator's RPC door.
//!
//! Refused (`ImmediatelyDropped`, RPC error 1016, which clients retry) while the pool's ready
//! backlog, plus the submissions still being validated, is at the limit. A validator offered more
//! than the chain finalizes sheds the excess at once instead of accepting transactions that
//! would wait ever longer, and that other validators' takeover clocks (30 s at most) would then
//! propose again (docs/performance.md, "Admission at the door").

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use super::lock;

/// How often refusals are logged (with how many there were).
const LOG_EVERY: Duration = Duration::from_secs(10);
/// How long a read of the pool's ready count is reused: the pool's `status` takes its lock and
/// walks the future queue, too much for every submission at saturation.
const READY_COUNT_FOR: Duration = Duration::from_millis(20);

/// The door: a backlog limit (0: none), the last ready count read, and the refusals not yet
/// logged.
#[derive(Debug)]
pub(super) struct Door {
    limit: usize,
    ready: Mutex<Option<(Instant, usize)>>,
    refused: Mutex<(u64, Option<Instant>)>,
}

impl Door {
    pub(super) fn new(limit: usize) -> Self {
        Door {
            limit,
            ready: Mutex::new(None),
            refused: Mutex::new((0, None)),
        }
    }

    /// Whether a client transaction may enter now, with `in_flight` client submissions being
    /// validated and the pool's ready count from `ready` (read at most every
    /// [`READY_COUNT_FOR`]).
    pub(super) fn admits(
        &self,
        in_flight: usize,
        ready: impl FnOnce() -> usize,
        now: Instant,
    ) -> bool {
        if self.limit == 0 {
            return true;
        }
        let ready = {
            let mut cached = lock(&self.ready);
            match *cached {
                Some((at, n)) if now.saturating_duration_since(at) < READY_COUNT_FOR => n,
                _ => {
                    let n = ready();
                    *cached = Some((now, n));
                    n
                }
            }
        };
        if ready + in_flight < self.limit {
            return true;
        }
        let mut r = lock(&self.refused);
        r.0 += 1;
        if r.1
            .is_none_or(|at| now.saturating_duration_since(at) >= LOG_EVERY)
        {
            log::info!(
                target: crate::LOG,
                "🚪 refused {} client transaction(s): the pool holds {ready} ready and \
                 {in_flight} are being submitted, at least --rpc-backlog-limit {} (clients get \
                 error 1016 and retry)",
                r.0,
                self.limit
            );
            *r = (0, Some(now));
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_at_the_limit_counting_submissions_in_flight() {
        let t0 = Instant::now();
        let later = |ms| t0 + Duration::from_millis(ms);
        let door = Door::new(100);
        assert!(door.admits(0, || 0, t0));
        assert!(door.admits(0, || 99, later(20)));
        assert!(!door.admits(1, || 99, later(40)), "99 ready + 1 in flight");
        assert!(!door.admits(0, || 100, later(60)), "at the limit");
        assert!(
            door.admits(0, || 99, later(80)),
            "open again once it drains"
        );
        assert!(
            Door::new(0).admits(usize::MAX, || usize::MAX, t0),
            "0: no limit"
        );
    }

    #[test]
    fn the_ready_count_is_read_at_most_every_20_ms() {
        let t0 = Instant::now();
        let door = Door::new(100);
        assert!(!door.admits(0, || 500, t0));
        assert!(
            !door.admits(0, || 0, t0 + Duration::from_millis(19)),
            "the count read at t0 is reused"
        );
        assert!(door.admits(0, || 0, t0 + READY_COUNT_FOR), "read again");
    }
}
