//! View timers: how long an instance stays in a view before asking for the next one
//! (docs/consensus.md, "Silent leaders" and "Liveness bound").
//!
//! A view's base timeout doubles per view (capped at 2^8): a capped timer would let a slow
//! view-change round cycle through views forever. Two rules shorten it when the view's leader is
//! known to be silent: view 0 ends no later than its leader has been unheard for
//! `silent_after_ms`; a later view is left after [`SILENT_VIEW_MS`] when its leader had been
//! unheard that long already when the view before began here, and f+1 replicas asked for the
//! view. [`Silence`] owns when each member was last heard from.

use super::instance::Instance;
use crate::types::*;
use std::collections::BTreeMap;

/// How long a view whose leader is already silent is kept (long enough for the view changes
/// of the replicas that moved to it first to arrive).
pub const SILENT_VIEW_MS: u64 = 100;

/// The base timeout `base` doubled per view, up to 2^8 times.
pub fn backed_off(base: u64, view: View) -> u64 {
    base << view.min(8)
}

/// When each member was last heard from.
#[derive(Debug)]
pub struct Silence {
    me: ValidatorId,
    /// How long unheard makes a member silent.
    silent_after_ms: u64,
    last_heard: BTreeMap<ValidatorId, u64>,
    /// When the replica started: in views above 0, a member never heard from counts as heard
    /// then.
    started_ms: u64,
}

impl Silence {
    /// For validator `me`: a member unheard for `silent_after_ms` is silent.
    pub fn new(me: ValidatorId, silent_after_ms: u64) -> Self {
        Silence {
            me,
            silent_after_ms,
            last_heard: BTreeMap::new(),
            started_ms: 0,
        }
    }

    /// The replica started at `now`.
    pub fn started(&mut self, now: u64) {
        self.started_ms = now;
    }

    /// A member's message arrived at `now`.
    pub fn heard(&mut self, from: ValidatorId, now: u64) {
        self.last_heard.insert(from, now);
    }

    /// How long from `now` until `leader` has been unheard for `silent_after_ms` (at least
    /// [`SILENT_VIEW_MS`]; unbounded for ourselves or a member never heard from: at a network's
    /// start it may not be up, connected or caught up yet, and validators started one after
    /// another would cut the latecomers' first turns short).
    pub fn until_silent(&self, leader: Option<ValidatorId>, now: u64) -> u64 {
        let Some(heard) = leader
            .filter(|l| *l != self.me)
            .and_then(|l| self.last_heard.get(&l).copied())
        else {
            return u64::MAX;
        };
        (heard + self.silent_after_ms)
            .saturating_sub(now)
            .max(SILENT_VIEW_MS)
    }

    /// Whether the current view (above 0) of `st`, led by `leader`, may be left after
    /// [`SILENT_VIEW_MS`]: the leader had said nothing for `silent_after_ms` already when the
    /// view before began here, nor since, and `join` (f+1) replicas, us included, asked for
    /// this view. Silence is judged from before the previous view began because a correct
    /// member can be quiet for a whole view at low load; the f+1 view changes keep a replica
    /// cut off from the others (before GST) from racing through views alone.
    pub fn silent_view(
        &self,
        st: &Instance,
        leader: Option<ValidatorId>,
        now: u64,
        join: usize,
    ) -> bool {
        let Some(l) = leader.filter(|l| *l != self.me) else {
            return false;
        };
        let heard = self.last_heard.get(&l).copied().unwrap_or(self.started_ms);
        let began = st.prev_view_began_ms.unwrap_or(now);
        st.view > 0 && heard + self.silent_after_ms <= began && st.vcs_for(st.view) >= join
    }

    /// The timer for the current view of `st`, led by `leader`, with base timeout `base`.
    pub fn view_timer(
        &self,
        st: &Instance,
        leader: Option<ValidatorId>,
        base: u64,
        now: u64,
        join: usize,
    ) -> u64 {
        if st.view == 0 {
            backed_off(base, 0).min(self.until_silent(leader, now))
        } else if self.silent_view(st, leader, now, join) {
            SILENT_VIEW_MS
        } else {
            backed_off(base, st.view)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{InsecureTestCrypto, Signed};
    use crate::wire::ViewChangeBody;

    const ME: ValidatorId = [1; 32];
    const L: ValidatorId = [2; 32];

    fn in_view(view: View, prev_began: u64, asked: &[u8]) -> Instance {
        let mut st = Instance {
            view,
            prev_view_began_ms: Some(prev_began),
            ..Default::default()
        };
        for who in asked {
            let body = ViewChangeBody {
                epoch: 0,
                inst: InstanceId::Ckpt(1),
                new_view: view,
                prepared: None,
                has_payload: false,
            };
            let vc = Signed::sign(body, &[0; 32], &InsecureTestCrypto([*who; 32]));
            st.vcs.entry(view).or_default().insert([*who; 32], vc);
        }
        st
    }

    #[test]
    fn view_0_ends_when_its_leader_falls_silent() {
        let mut s = Silence::new(ME, 4_000);
        let st = Instance::default();
        assert_eq!(
            s.view_timer(&st, Some(L), 3_000, 0, 2),
            3_000,
            "never heard"
        );
        s.heard(L, 1_000);
        assert_eq!(s.view_timer(&st, Some(L), 9_000, 2_000, 2), 3_000);
        assert_eq!(s.view_timer(&st, Some(L), 9_000, 6_000, 2), SILENT_VIEW_MS);
        assert_eq!(
            s.view_timer(&st, Some(ME), 9_000, 6_000, 2),
            9_000,
            "ourselves"
        );
    }

    #[test]
    fn a_later_view_is_left_early_only_if_silent_before_the_view_before_and_f_plus_1_asked() {
        let mut s = Silence::new(ME, 4_000);
        s.started(0);
        s.heard(L, 1_000);
        let quiet_long = in_view(2, 5_000, &[1, 3]);
        assert!(s.silent_view(&quiet_long, Some(L), 9_000, 2));
        assert_eq!(
            s.view_timer(&quiet_long, Some(L), 3_000, 9_000, 2),
            SILENT_VIEW_MS
        );
        let quiet_only_lately = in_view(2, 4_000, &[1, 3]);
        assert!(!s.silent_view(&quiet_only_lately, Some(L), 9_000, 2));
        assert_eq!(
            s.view_timer(&quiet_only_lately, Some(L), 3_000, 9_000, 2),
            12_000,
            "doubled per view"
        );
        let alone = in_view(2, 5_000, &[1]);
        assert!(!s.silent_view(&alone, Some(L), 9_000, 2), "f+1 must ask");
    }

    #[test]
    fn a_member_never_heard_counts_from_the_start_in_later_views() {
        let mut s = Silence::new(ME, 4_000);
        s.started(2_000);
        assert!(!s.silent_view(&in_view(1, 5_000, &[1, 3]), Some(L), 9_000, 2));
        assert!(s.silent_view(&in_view(1, 6_000, &[1, 3]), Some(L), 9_000, 2));
        assert_eq!(backed_off(1, 20), 256);
    }
}
