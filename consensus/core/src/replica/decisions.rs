//! Decisions: record one (ours or a peer's certificate) with single-shot consensus, and hand it
//! to the decided record, execution and the checkpoint chain; answer what peers ask about one.

use super::*;

impl Replica {
    /// A header a peer shows for a command we decided without it: once it is the proposer's,
    /// signed for this epoch, the decision counts for the watermark. Nothing is created: a
    /// header naming no uncounted decision of ours is dropped before its signature is checked.
    pub(super) fn on_header(&mut self, h: Signed<BatchHeader>) {
        let b = &h.body;
        let (p, seq, id) = (b.proposer, b.seq, b.id());
        let m = self.membership();
        if b.is_checkpoint()
            || b.epoch != m.epoch
            || h.signer != p
            || !self.record.uncounted(&p, seq, &id)
            || !h.verify(&m.genesis, &*self.verifier)
        {
            return;
        }
        self.count_decided(p, seq, id);
    }

    /// Make the decision of a command now known to be real count for its proposer's watermark.
    pub(super) fn count_decided(&mut self, p: ValidatorId, seq: Seq, id: CommandId) {
        let ops = self.record_decided(p, seq, id, true);
        self.persist(ops);
        self.try_build_blocks();
    }

    pub(super) fn on_fetch(&mut self, from: ValidatorId, inst: InstanceId) {
        if self.ctx().is_decided_inst(&inst) {
            self.send_decided(from, inst);
            return;
        }
        if let InstanceId::Cmd { id, .. } = inst {
            if let Some(b) = self.payloads.get(&id).cloned() {
                self.send(from, Message::Announce(b));
            }
        } else {
            self.single_shot
                .resend_accepted(&ctx!(self), &mut self.outbox, from, inst);
        }
    }

    pub(super) fn on_decided(&mut self, d: Decision, payload: Option<SignedBatch>) {
        let inst = d.inst;
        if self.ctx().is_decided_inst(&inst) {
            if let (InstanceId::Cmd { id, .. }, Some(p)) = (inst, payload) {
                if p.id() == id {
                    self.on_header(p.header);
                }
            }
            return;
        }
        let Some(first) = d.cert.first() else { return };
        let view = first.body.view;
        if !check_votes(
            self.membership(),
            &*self.verifier,
            &inst,
            view,
            Phase::Commit,
            &d.value.digest(),
            &d.cert,
        ) {
            return;
        }
        match (&inst, &d.value) {
            (InstanceId::Ckpt(_), Value::Noop) => return,
            (InstanceId::Cmd { id, .. }, Value::Noop) => {
                // The header (when sent) tells that the command was real: it advances the watermark.
                if let Some(p) = payload.as_ref().filter(|p| p.id() == *id) {
                    self.accept_payload(p);
                }
            }
            (_, Value::Deps { cmd, .. }) => {
                let ok = payload
                    .as_ref()
                    .map(|p| p.id() == *cmd && self.accept_payload(p))
                    .unwrap_or(false);
                if !ok && !self.payloads.contains(cmd) {
                    return;
                }
                if let InstanceId::Cmd { id, .. } = inst {
                    if id != *cmd {
                        return;
                    }
                }
            }
        }
        self.decide(inst, d.value, d.cert);
    }

    pub(super) fn decide(&mut self, inst: InstanceId, value: Value, cert: Vec<Signed<VoteBody>>) {
        let view = cert.first().map(|v| v.body.view).unwrap_or(0);
        let payload = self.payloads.of_value(&value);
        let mut ops = vec![self
            .single_shot
            .record_decision(inst, value.clone(), cert, payload)];
        self.outbox.emit(Output::Committed {
            inst,
            value: value.clone(),
            view,
        });
        match inst {
            InstanceId::Cmd { proposer, seq, id } => {
                let misnamed = self.ctx().misnamed(&inst);
                let counts = !misnamed
                    && (self.payloads.contains(&id)
                        || self
                            .headers
                            .first(&Slot::Seq(proposer, seq))
                            .map(|h| h.body.id() == id)
                            .unwrap_or(false));
                ops.extend(self.record_decided(proposer, seq, id, counts));
                self.persist(ops);
                if !misnamed {
                    self.proposer.forget(&id);
                }
                // Our copies another validator's batch carried go back if it lands nowhere.
                let mut uncovered = false;
                match value {
                    Value::Deps { deps, after, .. } => {
                        let batch = self
                            .payloads
                            .get(&id)
                            .cloned()
                            .expect("decide is only called with the payload held; qed");
                        let built = self.execution.built();
                        if after < built {
                            // Would land in no block: the S11 checker reports it.
                            self.collect_garbage_cmd(inst, built);
                            uncovered = !misnamed
                                && self.proposer.uncover(
                                    &id,
                                    Some(after),
                                    self.now,
                                    &mut self.outbox,
                                );
                        } else {
                            self.execution.commit(batch, deps, after);
                        }
                    }
                    Value::Noop => {
                        uncovered = !misnamed
                            && self.proposer.uncover(&id, None, self.now, &mut self.outbox);
                        if proposer == self.me && !misnamed {
                            if let Some(b) = self.payloads.get(&id) {
                                self.proposer.requeue(vec![(seq, b.txs.to_vec())]);
                            }
                        }
                        self.collect_garbage_cmd(inst, self.execution.built());
                    }
                }
                if proposer == self.me || uncovered {
                    self.try_propose_own();
                }
            }
            InstanceId::Ckpt(b) => {
                self.persist(ops);
                let Value::Deps { cmd, deps, .. } = value else {
                    return;
                };
                let Some(h) = self.payloads.get(&cmd).map(|p| p.header.body.clone()) else {
                    return;
                };
                if !h.is_checkpoint() {
                    return;
                }
                let k = DecidedCheckpoint { header: h, deps };
                self.chain.decide(b, k.header.clone(), k.deps.clone());
                self.advance_ckpts();
                // Dependencies below K_b's floors are void: nothing to wait or recover for.
                for d in k.waits_for() {
                    self.arm_view_timer(d.instance());
                }
                // Two ids of one (proposer, seq) in K_b prove that proposer equivocated (every
                // replica sees the same K_b): its undecided ones go to a view change at once
                // instead of holding block b for a whole view-0 timeout.
                for d in k.equivocations() {
                    self.single_shot
                        .leave_equivocated(&ctx!(self), &mut self.outbox, d.instance());
                }
            }
        }
        self.try_build_blocks();
    }
}
