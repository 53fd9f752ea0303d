//! Timers: what each one fires, and when a replica arms an instance's view timer (only for
//! what it has its own reason to drive; see docs/consensus.md, "Made-up ids get no consensus
//! round").

use super::*;

impl Replica {
    pub(super) fn on_timer(&mut self, t: TimerId) {
        match t {
            TimerId::Resend => {
                self.resend();
                self.set_timer(TimerId::Resend, self.cfg.resend_ms);
            }
            TimerId::View(inst, v) => {
                if self.ctx().is_decided_inst(&inst) {
                    return;
                }
                if let InstanceId::Ckpt(b) = inst {
                    if b != self.chain.next() {
                        // Not the current checkpoint yet (a vote for it came early): disarm, so
                        // that `arm_view_timer` arms it afresh when K_(b-1) commits. Left armed, no timer
                        // would ever run for it, and a replica that missed its decision would
                        // wait for it forever.
                        if let Some(st) = self.insts.get_mut(&inst) {
                            if st.view == v {
                                st.timer_armed = false;
                            }
                        }
                        return;
                    }
                }
                let q = self.membership().q();
                let Some(st) = self.insts.get_mut(&inst) else {
                    return;
                };
                if st.view != v || !st.timer_armed {
                    return;
                }
                st.timer_armed = false;
                if st.waiting_for_quorum(q) {
                    // Castro-Liskov's rule: the timer of view v counts only once q replicas
                    // asked for v (or later). A replica that moved on alone would race through
                    // views the others never reach, and be in a later one when they arrive.
                    // The q-th re-arms the timer; until then resend repeats our view change.
                    return;
                }
                self.start_view_change(inst, v + 1);
            }
            TimerId::Deadline(inst, v) => {
                if self.ctx().is_decided_inst(&inst) {
                    return;
                }
                if let InstanceId::Cmd { id, .. } = inst {
                    let already = self
                        .insts
                        .get(&inst)
                        .map(|s| s.my_preprepares.contains_key(&v))
                        .unwrap_or(false);
                    let new_view = self
                        .insts
                        .get(&inst)
                        .and_then(|s| s.lead_vcs.get(&v))
                        .cloned();
                    if !already {
                        if let Some(nv) = new_view {
                            if nv.len() == self.membership().q()
                                && nv.iter().all(|vc| vc.body.prepared.is_none())
                            {
                                self.proposer.stop(&id, &inst);
                                let p = if self.ctx().misnamed(&inst) {
                                    None
                                } else {
                                    self.payloads.get(&id).cloned()
                                };
                                self.propose(inst, v, Value::Noop, vec![], nv, p);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Arm the view timer of an instance we know of and have not seen decided, unless we are
    /// in a view change fewer than q members asked for: that timer starts when the q-th asks
    /// (`on_view_change`), whichever message made us want to arm it now (a vote, a parked
    /// pre-prepare, our own view change).
    pub(super) fn arm_view_timer(&mut self, inst: InstanceId) {
        if self.ctx().is_decided_inst(&inst) {
            return;
        }
        let now = self.now;
        let q = self.membership().q();
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
        let st = self.insts.get(&inst).expect("armed above; qed");
        let (leader, base, join) = (
            self.leader_of(&inst, v),
            self.base_timeout(&inst),
            self.membership().one_correct(),
        );
        let t = self.silence.view_timer(st, leader, base, now, join);
        self.set_timer(TimerId::View(inst, v), t);
    }

    /// Whether a vote or view change `signer` sent about `inst` makes us drive it: we have our
    /// own reason ([`Ctx::grounded`]) or the signer proposed the slot it names.
    pub(super) fn vouched(&self, inst: &InstanceId, signer: &ValidatorId) -> bool {
        self.ctx().grounded(inst)
            || matches!(inst, InstanceId::Cmd { proposer, .. } if proposer == signer)
    }
}
