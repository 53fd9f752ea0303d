//! View timers: how long an instance stays in a view before asking for the next one
//! (docs/consensus.md, "Silent leaders" and "Liveness bound").
//!
//! A view's base timeout doubles per view (capped at 2^8): a capped timer would let a slow
//! view-change round cycle through views forever. Two rules shorten it when the view's leader is
//! known to be silent: view 0 ends no later than its leader has been unheard for
//! `silent_after_ms`; a later view is left after [`SILENT_VIEW_MS`] when its leader had been
//! unheard that long already when the view before began here, and f+1 replicas asked for the
//! view. [`Silence`] owns when each member was last heard from.
//!
//! The service's timer handlers are here too: what a view timer or a recovery leader's
//! deadline does when it runs out, and when an instance's view timer is armed (only for what
//! this replica has its own reason to drive; docs/consensus.md, "Made-up ids get no consensus
//! round").

use super::instance::Instance;
use super::{Event, SingleShot};
use crate::ctx::Ctx;
use crate::discovery::collect::Proposal;
use crate::io::TimerId;
use crate::outbox::Outbox;
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

impl SingleShot {
    /// The view timer of `inst` for view `v` ran out: ask for view `v + 1`, unless the
    /// instance moved on, is decided, or waits for a quorum to ask for `v` first.
    pub fn on_view_timer(&mut self, ctx: &Ctx, out: &mut Outbox, inst: InstanceId, v: View) {
        if ctx.is_decided_inst(&inst) {
            return;
        }
        if let InstanceId::Ckpt(b) = inst {
            if b != ctx.chain.next() {
                // Not the current checkpoint yet (a vote for it came early): disarm, so that
                // `arm_view_timer` arms it afresh when K_(b-1) commits. Left armed, no timer
                // would ever run for it, and a replica that missed its decision would wait for
                // it forever.
                if let Some(st) = self.insts.get_mut(&inst) {
                    if st.view == v {
                        st.timer_armed = false;
                    }
                }
                return;
            }
        }
        let q = ctx.membership.q();
        let Some(st) = self.insts.get_mut(&inst) else {
            return;
        };
        if st.view != v || !st.timer_armed {
            return;
        }
        st.timer_armed = false;
        if st.waiting_for_quorum(q) {
            // Castro-Liskov's rule: the timer of view v counts only once q replicas asked for
            // v (or later). A replica that moved on alone would race through views the others
            // never reach, and be in a later one when they arrive. The q-th re-arms the timer;
            // until then resend repeats our view change.
            return;
        }
        self.start_view_change(ctx, out, inst, v + 1);
    }

    /// The collection we lead for view `v` of command `inst` got no quorum in time: when no
    /// view change binds us to a prepared value, propose Noop (and stop collecting).
    pub fn on_deadline(
        &mut self,
        ctx: &Ctx,
        out: &mut Outbox,
        inst: InstanceId,
        v: View,
    ) -> Vec<Event> {
        let InstanceId::Cmd { id, .. } = inst else {
            return vec![];
        };
        if ctx.is_decided_inst(&inst) {
            return vec![];
        }
        let Some(st) = self.insts.get(&inst) else {
            return vec![];
        };
        if st.my_preprepares.contains_key(&v) {
            return vec![];
        }
        let Some(new_view) = st.lead_vcs.get(&v).cloned() else {
            return vec![];
        };
        if new_view.len() != ctx.membership.q()
            || new_view.iter().any(|vc| vc.body.prepared.is_some())
        {
            return vec![];
        }
        let payload = if ctx.misnamed(&inst) {
            None
        } else {
            ctx.payloads.get(&id).cloned()
        };
        let noop = Proposal {
            inst,
            view: v,
            value: Value::Noop,
            proof: vec![],
            new_view,
            payload,
        };
        self.propose(ctx, out, noop);
        vec![Event::Abandon { id, inst }]
    }

    /// Arm the view timer of an instance we know of and have not seen decided, unless we are
    /// in a view change fewer than q members asked for: that timer starts when the q-th asks
    /// (`on_view_change`), whichever message made us want to arm it now (a vote, a parked
    /// pre-prepare, our own view change).
    pub fn arm_view_timer(&mut self, ctx: &Ctx, out: &mut Outbox, inst: InstanceId) {
        if ctx.is_decided_inst(&inst) {
            return;
        }
        let now = ctx.now;
        let q = ctx.membership.q();
        let st = self.insts.entry(inst);
        if st.timer_armed || st.waiting_for_quorum(q) {
            return;
        }
        st.timer_armed = true;
        if st.last_progress_ms == 0 {
            st.last_progress_ms = now;
        }
        st.view_began_ms.get_or_insert(now);
        let v = st.view;
        let leader = Self::leader_of(ctx, &inst, v);
        let base = self.base_timeout(&inst);
        let join = ctx.membership.one_correct();
        let st = self.insts.get(&inst).expect("armed above; qed");
        let t = self.silence.view_timer(st, leader, base, now, join);
        out.set_timer(TimerId::View(inst, v), t);
    }

    /// Arm the view timers of every live instance not known decided (a start).
    pub fn arm_undecided(&mut self, ctx: &Ctx, out: &mut Outbox) {
        let undecided: Vec<InstanceId> = self
            .insts
            .ids()
            .copied()
            .filter(|i| !ctx.is_decided_inst(i))
            .collect();
        for i in undecided {
            self.arm_view_timer(ctx, out, i);
        }
    }

    /// Whether a vote or view change `signer` sent about `inst` makes us drive it: we have our
    /// own reason ([`Ctx::grounded`]) or the signer proposed the slot it names.
    pub(super) fn vouched(ctx: &Ctx, inst: &InstanceId, signer: &ValidatorId) -> bool {
        ctx.grounded(inst) || matches!(inst, InstanceId::Cmd { proposer, .. } if proposer == signer)
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
