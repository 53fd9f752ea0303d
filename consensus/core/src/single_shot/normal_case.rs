//! The normal case (Castro-Liskov): accept a valid pre-prepare, vote, and follow the votes to
//! prepared and decided.

use super::progress::{step, Step};
use super::*;
use crate::discovery::collect::Proposal;
use crate::misbehaviour::Proof;
use crate::outbox::Outbox;
use crate::storage::{Key, Record, StorageOp};
use crate::validity::{self, check_preprepare};
use crate::wire::{Message, Phase, PrePrepareBody};

/// Most pre-prepares one instance holds back until what they need arrives.
const MAX_PARKED: usize = 8;

impl SingleShot {
    /// The door of a pre-prepare: is it for an instance decided here, out of reach, the one we
    /// accepted already (no signature check for a retransmission), or not validly signed by a
    /// possible leader of this epoch? Nothing is created, parked or fetched for a pre-prepare
    /// that does not pass: its payload may be stored only once this says [`Door::Open`].
    pub fn preprepare_door(&self, ctx: &Ctx, pp: &Signed<PrePrepareBody>) -> Door {
        let inst = pp.body.inst;
        if ctx.is_decided_inst(&inst) {
            return Door::Decided;
        }
        if !ctx.in_reach(&inst, 4) {
            return Door::Drop;
        }
        let accepted = self
            .insts
            .get(&inst)
            .and_then(|st| st.accepted.get(&pp.body.view));
        if accepted == Some(pp) {
            return Door::Drop;
        }
        let leader_ok = match inst {
            InstanceId::Cmd { proposer, .. } => {
                pp.signer == ctx.membership.leader_cmd(&proposer, pp.body.view)
            }
            InstanceId::Ckpt(_) => ctx.membership.contains(&pp.signer),
        };
        if pp.body.epoch != ctx.membership.epoch
            || !leader_ok
            || !pp.verify(&ctx.genesis(), ctx.verifier)
        {
            return Door::Drop;
        }
        Door::Open
    }

    /// A pre-prepare that passed [`Self::preprepare_door`] (and whose payload, if any, was
    /// stored): create the instance if the message may, then judge the proposal, vote for it,
    /// or hold it until its payload, its rotation or its checkpoint arrives.
    pub fn on_preprepare(
        &mut self,
        ctx: &Ctx,
        out: &mut Outbox,
        from: ValidatorId,
        pp: Signed<PrePrepareBody>,
    ) -> Vec<Event> {
        let mut events = vec![];
        let inst = pp.body.inst;
        if !self.admit(ctx, &inst, &pp.signer) {
            return events;
        }
        let view = pp.body.view;
        let st = self.insts.entry(inst);
        if view < st.view {
            return events;
        }
        if let Some(acc) = st.accepted.get(&view) {
            // Only another value is an equivocation (what `Proof::check` convicts): the same
            // value with another proof or view-change set is a retransmission.
            if acc.body.value != pp.body.value && acc.signer == pp.signer {
                let p = Proof::PrePrepareEquivocation(acc.clone(), pp);
                out.report(ctx, p);
                self.leave_faulty_view(ctx, out, inst, view);
            }
            return events;
        }
        // The command the value names.
        let cmd_header: Option<Signed<BatchHeader>> = match &pp.body.value {
            Value::Deps { cmd, .. } => ctx.payloads.get(cmd).map(|b| b.header.clone()),
            Value::Noop => None,
        };
        let cmd_ref = match inst {
            InstanceId::Cmd { .. } => inst.txs_ref(),
            InstanceId::Ckpt(_) => cmd_header.as_ref().map(|h| h.body.dep_ref()),
        };
        let needs_payload = matches!(pp.body.value, Value::Deps { .. });
        if needs_payload && cmd_header.is_none() {
            // Fetch the payload first; judge later.
            self.park(inst, from, pp);
            // The leader may not hold it either (a re-proposed prepared value): ask everyone.
            out.ask_others(Message::Fetch(inst));
            // A signed proposal names a real instance: if the payload never comes, its timer
            // takes it to a view change (and a Noop) like any other.
            self.arm_view_timer(ctx, out, inst);
            return events;
        }
        if let InstanceId::Ckpt(b) = inst {
            if b != ctx.chain.next() {
                // Its leader depends on the rotation for b, known once K_(b-1) commits.
                self.park(inst, from, pp);
                return events;
            }
        }
        let ckpt_leader = match inst {
            InstanceId::Ckpt(_) => Self::leader_of(ctx, &inst, view),
            InstanceId::Cmd { .. } => None,
        };
        if let Err(e) = check_preprepare(
            ctx.membership,
            ctx.verifier,
            ctx.window,
            &pp,
            cmd_ref.as_ref(),
            ckpt_leader.as_ref(),
        ) {
            if !matches!(
                e,
                validity::Invalid::NotLeader | validity::Invalid::Signature
            ) {
                out.report(ctx, Proof::InvalidProposal(pp, cmd_header));
                self.leave_faulty_view(ctx, out, inst, view);
            }
            return events;
        }
        // Local-state checks.
        if let Value::Deps { after, .. } = &pp.body.value {
            if *after > ctx.chain.next() {
                self.park(inst, from, pp);
                return events;
            }
        }
        if let (InstanceId::Ckpt(b), Some(h)) = (inst, &cmd_header) {
            // b = last_ckpt + 1 here: later indexes were parked above.
            let drift = self.timing.drift_ms;
            if !ctx
                .chain
                .extended_by(&h.body, b, ctx.membership, ctx.now, drift)
            {
                return events;
            }
        }
        // Accept.
        let now = ctx.now;
        let st = self.insts.get_mut(&inst).expect("inserted above; qed");
        if view > st.view || (view == st.view && st.in_view_change) {
            st.enter_view(view, now);
            st.in_view_change = false;
            st.timer_armed = false;
        }
        st.last_progress_ms = now;
        let digest = pp.body.value.digest();
        st.values.insert(digest, pp.body.value.clone());
        st.accepted.insert(view, pp);
        st.accepted_digest.insert(view, digest);
        let voted = st.my_votes.get(&(view, Phase::Prepare)).cloned();
        self.arm_view_timer(ctx, out, inst);
        match voted {
            Some(v) if v.body.value == digest => out.broadcast(Message::Vote(v)),
            Some(_) => {}
            None => self.vote(ctx, out, inst, view, Phase::Prepare, digest),
        }
        self.check_progress(ctx, out, inst, view, digest, &mut events);
        events
    }

    /// Hold a pre-prepare of `inst` (created) until what it needs arrives.
    fn park(&mut self, inst: InstanceId, from: ValidatorId, pp: Signed<PrePrepareBody>) {
        let st = self.insts.get_mut(&inst).expect("callers create it; qed");
        if st.parked.len() < MAX_PARKED {
            st.parked.push((from, pp));
        }
    }

    /// The pre-prepares held for `inst`, to judge again (its payload, rotation or checkpoint
    /// arrived).
    pub fn take_parked(&mut self, inst: &InstanceId) -> Vec<(ValidatorId, Signed<PrePrepareBody>)> {
        self.insts
            .get_mut(inst)
            .map(|st| std::mem::take(&mut st.parked))
            .unwrap_or_default()
    }

    /// Sign, persist and broadcast our vote of `phase` for `digest` in `view`.
    fn vote(
        &mut self,
        ctx: &Ctx,
        out: &mut Outbox,
        inst: InstanceId,
        view: View,
        phase: Phase,
        digest: Digest,
    ) {
        let body = VoteBody {
            epoch: ctx.membership.epoch,
            inst,
            view,
            phase,
            value: digest,
        };
        let v = Signed::sign(body, &ctx.genesis(), ctx.signer);
        self.insts
            .get_mut(&inst)
            .expect("callers create the instance; qed")
            .my_votes
            .insert((view, phase), v.clone());
        out.persist(vec![StorageOp::Put(
            Key::Vote(inst, view, phase),
            Record::Vote(v.clone()),
        )]);
        out.broadcast(Message::Vote(v));
    }

    /// A member's vote: checked at the door (epoch, member, reach, a repeat, view bounds, then
    /// the signature, then whether it may create state), counted, and followed.
    pub fn on_vote(&mut self, ctx: &Ctx, out: &mut Outbox, v: Signed<VoteBody>) -> Vec<Event> {
        let mut events = vec![];
        let inst = v.body.inst;
        if ctx.is_decided_inst(&inst)
            || v.body.epoch != ctx.membership.epoch
            || !ctx.membership.contains(&v.signer)
        {
            return events;
        }
        if !ctx.in_reach(&inst, 4) {
            return events;
        }
        if let Some(st) = self.insts.get(&inst) {
            if let Some(old) = st
                .votes
                .get(&(v.body.view, v.body.phase))
                .and_then(|m| m.get(&v.signer))
            {
                if *old == v {
                    return events;
                }
            }
            if v.body.view + 16 < st.view {
                return events;
            }
        }
        if v.body.view > MAX_VIEW
            || !v.verify(&ctx.genesis(), ctx.verifier)
            || !self.admit(ctx, &inst, &v.signer)
        {
            return events;
        }
        let now = ctx.now;
        let st = self.insts.entry(inst);
        let (view, digest) = (v.body.view, v.body.value);
        let new = !st
            .votes
            .get(&(view, v.body.phase))
            .is_some_and(|m| m.contains_key(&v.signer));
        let conflict = st.add_vote(v.clone());
        if new && conflict.is_none() && !st.in_view_change && view == st.view {
            // Only a vote not held before, for the view we are in, is progress; none is while
            // we change views (the pre-prepare of the new view is): a Byzantine member's
            // fresh, future or replayed votes would otherwise keep `stalled_messages` from
            // resending our messages and recovery from fetching the decision.
            st.last_progress_ms = now;
        }
        if let Some(old) = conflict {
            out.report(ctx, Proof::VoteEquivocation(old, v));
            return events;
        }
        if Self::vouched(ctx, &inst, &v.signer) {
            self.arm_view_timer(ctx, out, inst);
        }
        self.check_progress(ctx, out, inst, view, digest, &mut events);
        events
    }

    /// Follow what the votes of `view` for `digest` lead to: prepared (persist the certificate,
    /// vote commit), decided (an [`Event::Decided`]), or fetching the payload a voter holds.
    fn check_progress(
        &mut self,
        ctx: &Ctx,
        out: &mut Outbox,
        inst: InstanceId,
        view: View,
        digest: Digest,
        events: &mut Vec<Event>,
    ) {
        let Some(st) = self.insts.get(&inst) else {
            return;
        };
        match step(st, view, &digest, ctx.membership.q(), |c| {
            ctx.payloads.contains(c)
        }) {
            Step::Decide { value, cert } => events.push(Event::Decided { inst, value, cert }),
            Step::Fetch(voter) if voter != ctx.me => out.send(voter, Message::Fetch(inst)),
            Step::Prepared { cert, commit } => {
                if let Some(cert) = cert {
                    self.insts.entry(inst).note_prepared(cert.clone());
                    out.persist(vec![StorageOp::Put(
                        Key::Prepared(inst),
                        Record::Prepared(cert),
                    )]);
                }
                if commit {
                    self.vote(ctx, out, inst, view, Phase::Commit, digest);
                }
            }
            Step::Fetch(_) | Step::Wait => {}
        }
    }

    /// As the leader of its view, sign our pre-prepare of a proposal (once per view), persist
    /// it, then send it with the batch voters may lack.
    pub fn propose(&mut self, ctx: &Ctx, out: &mut Outbox, p: Proposal) {
        let st = self.insts.entry(p.inst);
        if st.my_preprepares.contains_key(&p.view) {
            return;
        }
        let (inst, view) = (p.inst, p.view);
        let body = PrePrepareBody {
            epoch: ctx.membership.epoch,
            inst,
            view,
            value: p.value,
            proof: p.proof,
            new_view: p.new_view,
        };
        let pp = Signed::sign(body, &ctx.genesis(), ctx.signer);
        st.my_preprepares.insert(view, pp.clone());
        out.persist(vec![StorageOp::Put(
            Key::PrePrepare(inst, view),
            Record::PrePrepare(pp.clone()),
        )]);
        out.broadcast(Message::PrePrepare(pp, p.payload));
    }
}
