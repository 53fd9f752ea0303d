//! View change: ask for the next view, join at f+1, and lead a new view (re-propose the
//! highest prepared value, or collect anew, or Noop).

use super::timers::backed_off;
use super::*;
use crate::discovery::collect::Proposal;
use crate::io::TimerId;
use crate::outbox::Outbox;
use crate::storage::{Key, Record, StorageOp};
use crate::validity::check_view_change;
use crate::wire::Message;

impl SingleShot {
    /// The leader of `inst` in `view` is proven Byzantine (we just reported its proposal): if
    /// that is our current view, ask for the next one now rather than when its timer runs out.
    /// Its leader cannot be correct, so the wait would only delay; with doubling timers and f
    /// Byzantine leaders in a row it is most of the time an instance can take after GST. Asking
    /// for a view change is always safe; the others join once f+1 of us ask.
    pub(super) fn leave_faulty_view(
        &mut self,
        ctx: &Ctx,
        out: &mut Outbox,
        inst: InstanceId,
        view: View,
    ) {
        if ctx.is_decided_inst(&inst) {
            return;
        }
        if self.insts.get(&inst).is_some_and(|st| st.view == view) {
            self.start_view_change(ctx, out, inst, view + 1);
        }
    }

    /// A decided checkpoint names two ids of `inst`'s (proposer, seq): its proposer
    /// equivocated, so an undecided one still in view 0 goes to a view change at once instead
    /// of holding the block for a whole view-0 timeout.
    pub fn leave_equivocated(&mut self, ctx: &Ctx, out: &mut Outbox, inst: InstanceId) {
        let view0 = self
            .insts
            .get(&inst)
            .is_none_or(|st| st.view == 0 && !st.in_view_change);
        if !ctx.is_decided_inst(&inst) && view0 {
            self.start_view_change(ctx, out, inst, 1);
        }
    }

    /// Ask for view `nv` of `inst`: sign (once), persist and broadcast our view change.
    pub(super) fn start_view_change(
        &mut self,
        ctx: &Ctx,
        out: &mut Outbox,
        inst: InstanceId,
        nv: View,
    ) {
        let has_payload = match inst {
            InstanceId::Cmd { id, .. } => ctx.payloads.contains(&id) && !ctx.misnamed(&inst),
            InstanceId::Ckpt(_) => false,
        };
        let st = self.insts.entry(inst);
        if nv < st.view || (nv == st.view && st.in_view_change && st.my_vcs.contains_key(&nv)) {
            return;
        }
        st.enter_view(nv, ctx.now);
        st.in_view_change = true;
        st.timer_armed = false;
        let vc = match st.my_vcs.get(&nv) {
            Some(vc) => vc.clone(),
            None => {
                let body = ViewChangeBody {
                    epoch: ctx.membership.epoch,
                    inst,
                    new_view: nv,
                    prepared: st.prepared.clone(),
                    has_payload,
                };
                let vc = Signed::sign(body, &ctx.genesis(), ctx.signer);
                st.my_vcs.insert(nv, vc.clone());
                out.persist(vec![StorageOp::Put(
                    Key::ViewChange(inst, nv),
                    Record::ViewChange(vc.clone()),
                )]);
                vc
            }
        };
        out.broadcast(Message::ViewChange(vc));
        self.arm_view_timer(ctx, out, inst);
    }

    /// A member's view change: checked at the door (reach, view bound, a repeat, then its
    /// signature and prepared certificate, then whether it may create state), then join at
    /// f+1, start the view's timer at q, and lead the view at q if it is ours.
    pub fn on_view_change(
        &mut self,
        ctx: &Ctx,
        out: &mut Outbox,
        from: ValidatorId,
        vc: Signed<ViewChangeBody>,
    ) -> Vec<Event> {
        let mut events = vec![];
        let inst = vc.body.inst;
        if ctx.is_decided_inst(&inst) {
            self.send_decided(ctx, out, from, inst);
            return events;
        }
        // Below the watermark an undecided id (equivocation, fake dependency) still needs a
        // decision (Noop): only pruned seqs are ignored. A checkpoint's view changes count only
        // for the one being decided.
        let taken = match inst {
            InstanceId::Cmd { proposer, .. } => {
                ctx.membership.contains(&proposer) && ctx.in_reach(&inst, 1)
            }
            InstanceId::Ckpt(b) => b == ctx.chain.next(),
        };
        if !taken {
            return events;
        }
        let nv = vc.body.new_view;
        if nv > MAX_VIEW {
            return events;
        }
        if let Some(st) = self.insts.get(&inst) {
            if st
                .vcs
                .get(&nv)
                .map(|m| m.contains_key(&vc.signer))
                .unwrap_or(false)
            {
                return events;
            }
        }
        if !check_view_change(ctx.membership, ctx.verifier, &vc)
            || !self.admit(ctx, &inst, &vc.signer)
        {
            return events;
        }
        let f1 = ctx.membership.one_correct();
        let q = ctx.membership.q();
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
        if Self::vouched(ctx, &inst, &signer) {
            self.arm_view_timer(ctx, out, inst);
        }
        if let Some(target) = join {
            self.start_view_change(ctx, out, inst, target);
        }
        // q asked for the view we are changing to, or later: its timer counts from now (it
        // did not while fewer asked, see `on_view_timer`), whatever our own reason to be here.
        let quorum_now = self
            .insts
            .get(&inst)
            .is_some_and(|st| st.in_view_change && !st.timer_armed && !st.waiting_for_quorum(q));
        if quorum_now {
            self.arm_view_timer(ctx, out, inst);
        }
        if enough && Self::leader_of(ctx, &inst, nv) == Some(ctx.me) {
            self.lead_new_view(ctx, out, inst, nv, &mut events);
        }
        events
    }

    /// Lead view `v` of `inst` with the q view changes held for it: re-propose the highest
    /// prepared value; else Noop for a misnamed or equivocated command; else collect anew for a
    /// command whose batch we hold ([`Event::Collect`]) or fetch it from those who do; for a
    /// checkpoint, a candidate of our own ([`Event::Candidate`]).
    fn lead_new_view(
        &mut self,
        ctx: &Ctx,
        out: &mut Outbox,
        inst: InstanceId,
        v: View,
        events: &mut Vec<Event>,
    ) {
        let q = ctx.membership.q();
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
        let proposal = |value, new_view, payload| Proposal {
            inst,
            view: v,
            value,
            proof: vec![],
            new_view,
            payload,
        };
        if let Some(cert) = best {
            let payload = ctx.payloads.of_value(&cert.value);
            if payload.is_none() && matches!(cert.value, Value::Deps { .. }) {
                // Voters fetch it from the holders; so do we, to attach it when retransmitting.
                out.ask_others(Message::Fetch(inst));
            }
            self.propose(ctx, out, proposal(cert.value, vcs, payload));
            return;
        }
        let deadline_ms = backed_off(self.base_timeout(&inst), v) / 2;
        match inst {
            InstanceId::Cmd { .. } if ctx.misnamed(&inst) || ctx.equivocated(&inst) => {
                // No command has this name, or its proposer signed two for this seq: nothing
                // worth collecting for (no prepared value binds us, see above).
                self.propose(ctx, out, proposal(Value::Noop, vcs, None));
            }
            InstanceId::Cmd { id, .. } => {
                if let Some(batch) = ctx.payloads.get(&id).cloned() {
                    events.push(Event::Collect(Box::new(Collect {
                        inst,
                        view: v,
                        batch,
                        new_view: vcs,
                        deadline_ms,
                    })));
                } else if vcs.iter().any(|vc| vc.body.has_payload) {
                    for vc in vcs.iter().filter(|vc| vc.body.has_payload) {
                        out.send(vc.signer, Message::Fetch(inst));
                    }
                    out.set_timer(TimerId::Deadline(inst, v), deadline_ms);
                } else {
                    self.propose(ctx, out, proposal(Value::Noop, vcs, None));
                }
            }
            InstanceId::Ckpt(index) => {
                if index == ctx.chain.next() {
                    events.push(Event::Candidate {
                        index,
                        view: v,
                        new_view: vcs,
                    });
                }
            }
        }
    }

    /// A recovery leader that was waiting for the payload of `inst` got it: the view it leads
    /// and its view changes, if it has not proposed there yet (the caller re-announces and
    /// collects unless it already does).
    pub fn lead_to_resume(
        &self,
        ctx: &Ctx,
        inst: &InstanceId,
    ) -> Option<(View, Vec<Signed<ViewChangeBody>>)> {
        if !matches!(inst, InstanceId::Cmd { .. }) || ctx.misnamed(inst) {
            return None;
        }
        let st = self.insts.get(inst)?;
        let &v = st.led.iter().next_back()?;
        if st.my_preprepares.contains_key(&v) {
            return None;
        }
        Some((v, st.lead_vcs.get(&v).cloned().unwrap_or_default()))
    }
}
