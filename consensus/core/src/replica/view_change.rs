//! Single-shot consensus, view change: ask for the next view, join at f+1, and lead a new view
//! (re-propose the highest prepared value, or collect, or Noop).

use super::*;

impl Replica {
    /// The leader of `inst` in `view` is proven Byzantine (we just reported its proposal): if
    /// that is our current view, ask for the next one now rather than when its timer runs out.
    /// Its leader cannot be correct, so the wait would only delay; with doubling timers and f
    /// Byzantine leaders in a row it is most of the time an instance can take after GST. Asking
    /// for a view change is always safe; the others join once f+1 of us ask.
    pub(super) fn leave_faulty_view(&mut self, inst: InstanceId, view: View) {
        if self.ctx().is_decided_inst(&inst) {
            return;
        }
        if self.insts.get(&inst).is_some_and(|st| st.view == view) {
            self.start_view_change(inst, view + 1);
        }
    }

    pub(super) fn start_view_change(&mut self, inst: InstanceId, nv: View) {
        let has_payload = match inst {
            InstanceId::Cmd { id, .. } => {
                self.payloads.contains(&id) && !self.ctx().misnamed(&inst)
            }
            InstanceId::Ckpt(_) => false,
        };
        let st = self.insts.entry(inst);
        if nv < st.view || (nv == st.view && st.in_view_change && st.my_vcs.contains_key(&nv)) {
            return;
        }
        st.enter_view(nv, self.now);
        st.in_view_change = true;
        st.timer_armed = false;
        let vc = match st.my_vcs.get(&nv) {
            Some(vc) => vc.clone(),
            None => {
                let body = ViewChangeBody {
                    epoch: self.cfg.membership.epoch,
                    inst,
                    new_view: nv,
                    prepared: st.prepared.clone(),
                    has_payload,
                };
                let vc = Signed::sign(body, &self.cfg.membership.genesis, &*self.signer);
                st.my_vcs.insert(nv, vc.clone());
                self.persist(vec![StorageOp::Put(
                    Key::ViewChange(inst, nv),
                    Record::ViewChange(vc.clone()),
                )]);
                vc
            }
        };
        self.broadcast(Message::ViewChange(vc));
        self.arm_view_timer(inst);
    }

    pub(super) fn on_view_change(&mut self, from: ValidatorId, vc: Signed<ViewChangeBody>) {
        let inst = vc.body.inst;
        if self.ctx().is_decided_inst(&inst) {
            self.send_decided(from, inst);
            return;
        }
        // Below the watermark an undecided id (equivocation, fake dependency) still needs a
        // decision (Noop): only pruned seqs are ignored. A checkpoint's view changes count only
        // for the one being decided.
        let taken = match inst {
            InstanceId::Cmd { proposer, .. } => {
                self.membership().contains(&proposer) && self.ctx().in_reach(&inst, 1)
            }
            InstanceId::Ckpt(b) => b == self.chain.next(),
        };
        if !taken {
            return;
        }
        let nv = vc.body.new_view;
        if nv > MAX_VIEW {
            return;
        }
        if let Some(st) = self.insts.get(&inst) {
            if st
                .vcs
                .get(&nv)
                .map(|m| m.contains_key(&vc.signer))
                .unwrap_or(false)
            {
                return;
            }
        }
        if !check_view_change(self.membership(), &*self.verifier, &vc)
            || !self.admit(&inst, &vc.signer)
        {
            return;
        }
        let f1 = self.membership().one_correct();
        let q = self.membership().q();
        let signer = vc.signer;
        let st = self.insts.entry(inst);
        st.vcs.entry(nv).or_default().insert(signer, vc);
        // Join: f+1 validators ask for views above ours.
        let higher = st.higher_vcs(st.view);
        let join = if higher.len() >= f1 {
            let mut views: Vec<View> = higher.values().copied().collect();
            views.sort_unstable_by(|a, b| b.cmp(a));
            Some(views[f1 - 1])
        } else {
            None
        };
        let enough = st.vcs.get(&nv).map(|m| m.len() >= q).unwrap_or(false)
            && !st.led.contains(&nv)
            && nv >= st.view;
        if self.vouched(&inst, &signer) {
            self.arm_view_timer(inst);
        }
        if let Some(target) = join {
            self.start_view_change(inst, target);
        }
        // q asked for the view we are changing to, or later: its timer counts from now (it
        // did not while fewer asked, see `on_timer`), whatever our own reason to be here.
        let quorum_now = self
            .insts
            .get(&inst)
            .is_some_and(|st| st.in_view_change && !st.timer_armed && !st.waiting_for_quorum(q));
        if quorum_now {
            self.arm_view_timer(inst);
        }
        let leader = self.leader_of(&inst, nv);
        if enough && leader == Some(self.me) {
            self.lead_new_view(inst, nv);
        }
    }

    pub(super) fn lead_new_view(&mut self, inst: InstanceId, v: View) {
        let q = self.membership().q();
        let st = self
            .insts
            .get_mut(&inst)
            .expect("caller holds q view changes; qed");
        st.led.insert(v);
        let vcs: Vec<Signed<ViewChangeBody>> = st.vcs[&v].values().take(q).cloned().collect();
        st.lead_vcs.insert(v, vcs.clone());
        let best = vcs
            .iter()
            .filter_map(|vc| vc.body.prepared.as_ref())
            .max_by_key(|c| c.view)
            .cloned();
        if let Some(cert) = best {
            let payload = self.payloads.of_value(&cert.value);
            if payload.is_none() && matches!(cert.value, Value::Deps { .. }) {
                // Voters fetch it from the holders; so do we, to attach it when retransmitting.
                self.outbox.ask_others(Message::Fetch(inst));
            }
            self.propose(inst, v, cert.value, vec![], vcs, payload);
            return;
        }
        match inst {
            InstanceId::Cmd { .. }
                if self.ctx().misnamed(&inst) || self.ctx().equivocated(&inst) =>
            {
                // No command has this name, or its proposer signed two for this seq: nothing
                // worth collecting for (no prepared value binds us, see above).
                self.propose(inst, v, Value::Noop, vec![], vcs, None);
            }
            InstanceId::Cmd { id, .. } => {
                if let Some(batch) = self.payloads.get(&id).cloned() {
                    self.proposer.lead(&mut self.outbox, inst, batch, v, vcs);
                    let t = backed_off(self.base_timeout(&inst), v) / 2;
                    self.set_timer(TimerId::Deadline(inst, v), t);
                    self.try_collect(id);
                } else if vcs.iter().any(|vc| vc.body.has_payload) {
                    let holders: Vec<ValidatorId> = vcs
                        .iter()
                        .filter(|vc| vc.body.has_payload)
                        .map(|vc| vc.signer)
                        .collect();
                    for h in holders {
                        self.send(h, Message::Fetch(inst));
                    }
                    let t = backed_off(self.base_timeout(&inst), v) / 2;
                    self.set_timer(TimerId::Deadline(inst, v), t);
                } else {
                    self.propose(inst, v, Value::Noop, vec![], vcs, None);
                }
            }
            InstanceId::Ckpt(b) => {
                if b == self.chain.next() {
                    self.announce_candidate(b, v, vcs);
                }
            }
        }
    }

    /// A recovery leader that was waiting for the payload got it: re-announce and collect.
    pub(super) fn resume_lead(&mut self, inst: InstanceId) {
        let InstanceId::Cmd { id, .. } = inst else {
            return;
        };
        if self.ctx().misnamed(&inst) {
            return;
        }
        let Some(st) = self.insts.get(&inst) else {
            return;
        };
        let Some(&v) = st.led.iter().next_back() else {
            return;
        };
        if st.my_preprepares.contains_key(&v) || self.proposer.collecting(&id, v) {
            return;
        }
        let Some(batch) = self.payloads.get(&id).cloned() else {
            return;
        };
        let vcs: Vec<Signed<ViewChangeBody>> = st.lead_vcs.get(&v).cloned().unwrap_or_default();
        self.proposer.lead(&mut self.outbox, inst, batch, v, vcs);
        self.try_collect(id);
    }
}
