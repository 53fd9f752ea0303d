//! Single-shot consensus, normal case: accept a valid pre-prepare, vote, and follow the votes
//! to prepared and decided (Castro-Liskov).

use super::*;

impl Replica {
    pub(super) fn on_preprepare(
        &mut self,
        from: ValidatorId,
        pp: Signed<PrePrepareBody>,
        payload: Option<SignedBatch>,
    ) {
        let inst = pp.body.inst;
        if self.ctx().is_decided_inst(&inst) {
            self.send_decided(from, inst);
            return;
        }
        if !self.ctx().in_reach(&inst, 4) {
            return;
        }
        // A retransmission of the pre-prepare we accepted costs no signature check.
        if self
            .insts
            .get(&inst)
            .and_then(|st| st.accepted.get(&pp.body.view))
            == Some(&pp)
        {
            return;
        }
        // Signature before any state: an unsigned or outsider's pre-prepare creates no
        // instance, parks nothing and makes us fetch nothing.
        let leader_ok = match inst {
            InstanceId::Cmd { proposer, .. } => {
                pp.signer == self.membership().leader_cmd(&proposer, pp.body.view)
            }
            InstanceId::Ckpt(_) => self.membership().contains(&pp.signer),
        };
        if pp.body.epoch != self.membership().epoch
            || !leader_ok
            || !pp.verify(&self.cfg.membership.genesis, &*self.verifier)
        {
            return;
        }
        if let Some(p) = &payload {
            self.accept_payload(p);
        }
        if !self.admit(&inst, &pp.signer) {
            return;
        }
        let view = pp.body.view;
        let st = self.insts.entry(inst);
        if view < st.view {
            return;
        }
        if let Some(acc) = st.accepted.get(&view) {
            // Only another value is an equivocation (what `Proof::check` convicts): the same
            // value with another proof or view-change set is a retransmission.
            if acc.body.value != pp.body.value && acc.signer == pp.signer {
                let p = Proof::PrePrepareEquivocation(acc.clone(), pp);
                self.report(p);
                self.leave_faulty_view(inst, view);
            }
            return;
        }
        // The command the value names.
        let cmd_header: Option<Signed<BatchHeader>> = match &pp.body.value {
            Value::Deps { cmd, .. } => self.payloads.get(cmd).map(|b| b.header.clone()),
            Value::Noop => None,
        };
        let cmd_ref = match inst {
            InstanceId::Cmd { .. } => inst.txs_ref(),
            InstanceId::Ckpt(_) => cmd_header.as_ref().map(|h| h.body.dep_ref()),
        };
        let needs_payload = matches!(pp.body.value, Value::Deps { .. });
        if needs_payload && cmd_header.is_none() {
            // Fetch the payload first; judge later.
            let st = self.insts.get_mut(&inst).expect("inserted above; qed");
            if st.parked.len() < 8 {
                st.parked.push((from, pp));
            }
            // The leader may not hold it either (a re-proposed prepared value): ask everyone.
            self.outbox.ask_others(Message::Fetch(inst));
            // A signed proposal names a real instance: if the payload never comes, its timer
            // takes it to a view change (and a Noop) like any other.
            self.arm_view_timer(inst);
            return;
        }
        if let InstanceId::Ckpt(b) = inst {
            if b != self.chain.next() {
                // Its leader depends on the rotation for b, known once K_(b-1) commits.
                let st = self.insts.get_mut(&inst).expect("inserted above; qed");
                if st.parked.len() < 8 {
                    st.parked.push((from, pp));
                }
                return;
            }
        }
        let ckpt_leader = match inst {
            InstanceId::Ckpt(b) => self.ckpt_leader(b, pp.body.view),
            InstanceId::Cmd { .. } => None,
        };
        if let Err(e) = check_preprepare(
            self.membership(),
            &*self.verifier,
            self.cfg.window,
            &pp,
            cmd_ref.as_ref(),
            ckpt_leader.as_ref(),
        ) {
            if !matches!(
                e,
                validity::Invalid::NotLeader | validity::Invalid::Signature
            ) {
                self.report(Proof::InvalidProposal(pp, cmd_header));
                self.leave_faulty_view(inst, view);
            }
            return;
        }
        // Local-state checks.
        if let Value::Deps { after, .. } = &pp.body.value {
            if *after > self.chain.next() {
                let st = self.insts.get_mut(&inst).expect("inserted above; qed");
                if st.parked.len() < 8 {
                    st.parked.push((from, pp));
                }
                return;
            }
        }
        if let (InstanceId::Ckpt(b), Some(h)) = (inst, &cmd_header) {
            // b = last_ckpt + 1 here: later indexes were parked above.
            let (m, drift) = (&self.cfg.membership, self.cfg.drift_ms);
            if !self.chain.extended_by(&h.body, b, m, self.now, drift) {
                return;
            }
        }
        // Accept.
        let now = self.now;
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
        self.arm_view_timer(inst);
        match voted {
            Some(v) if v.body.value == digest => self.broadcast(Message::Vote(v)),
            Some(_) => {}
            None => self.vote(inst, view, Phase::Prepare, digest),
        }
        self.check_progress(inst, view, digest);
    }

    pub(super) fn recheck_parked(&mut self, inst: InstanceId) {
        let Some(st) = self.insts.get_mut(&inst) else {
            return;
        };
        let parked = std::mem::take(&mut st.parked);
        for (from, pp) in parked {
            self.on_preprepare(from, pp, None);
        }
    }

    pub(super) fn vote(&mut self, inst: InstanceId, view: View, phase: Phase, digest: Digest) {
        let body = VoteBody {
            epoch: self.membership().epoch,
            inst,
            view,
            phase,
            value: digest,
        };
        let v = Signed::sign(body, &self.genesis(), &*self.signer);
        self.insts
            .get_mut(&inst)
            .expect("callers create the instance; qed")
            .my_votes
            .insert((view, phase), v.clone());
        self.persist(vec![StorageOp::Put(
            Key::Vote(inst, view, phase),
            Record::Vote(v.clone()),
        )]);
        self.broadcast(Message::Vote(v));
    }

    pub(super) fn on_vote(&mut self, _from: ValidatorId, v: Signed<VoteBody>) {
        let inst = v.body.inst;
        if self.ctx().is_decided_inst(&inst)
            || v.body.epoch != self.membership().epoch
            || !self.membership().contains(&v.signer)
        {
            return;
        }
        if !self.ctx().in_reach(&inst, 4) {
            return;
        }
        if let Some(st) = self.insts.get(&inst) {
            if let Some(old) = st
                .votes
                .get(&(v.body.view, v.body.phase))
                .and_then(|m| m.get(&v.signer))
            {
                if *old == v {
                    return;
                }
            }
            if v.body.view + 16 < st.view {
                return;
            }
        }
        if v.body.view > MAX_VIEW
            || !v.verify(&self.genesis(), &*self.verifier)
            || !self.admit(&inst, &v.signer)
        {
            return;
        }
        let now = self.now;
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
            self.report(Proof::VoteEquivocation(old, v));
            return;
        }
        if self.vouched(&inst, &v.signer) {
            self.arm_view_timer(inst);
        }
        self.check_progress(inst, view, digest);
    }

    pub(super) fn check_progress(&mut self, inst: InstanceId, view: View, digest: Digest) {
        let Some(st) = self.insts.get(&inst) else {
            return;
        };
        match step(st, view, &digest, self.membership().q(), |c| {
            self.payloads.contains(c)
        }) {
            Step::Decide { value, cert } => self.decide(inst, value, cert),
            Step::Fetch(voter) if voter != self.me => self.send(voter, Message::Fetch(inst)),
            Step::Prepared { cert, commit } => {
                if let Some(cert) = cert {
                    self.insts.entry(inst).note_prepared(cert.clone());
                    self.persist(vec![StorageOp::Put(
                        Key::Prepared(inst),
                        Record::Prepared(cert),
                    )]);
                }
                if commit {
                    self.vote(inst, view, Phase::Commit, digest);
                }
            }
            Step::Fetch(_) | Step::Wait => {}
        }
    }

    /// As the leader of `view`, sign our pre-prepare of `value` for `inst` (once per view),
    /// persist it, then send it with the batch voters may lack.
    pub(super) fn propose(
        &mut self,
        inst: InstanceId,
        view: View,
        value: Value,
        proof: Vec<Signed<ReplyBody>>,
        new_view: Vec<Signed<ViewChangeBody>>,
        payload: Option<SignedBatch>,
    ) {
        let st = self.insts.entry(inst);
        if st.my_preprepares.contains_key(&view) {
            return;
        }
        let body = PrePrepareBody {
            epoch: self.membership().epoch,
            inst,
            view,
            value,
            proof,
            new_view,
        };
        let pp = Signed::sign(body, &self.genesis(), &*self.signer);
        self.insts
            .get_mut(&inst)
            .expect("inserted above; qed")
            .my_preprepares
            .insert(view, pp.clone());
        self.persist(vec![StorageOp::Put(
            Key::PrePrepare(inst, view),
            Record::PrePrepare(pp.clone()),
        )]);
        self.broadcast(Message::PrePrepare(pp, payload));
    }
}
