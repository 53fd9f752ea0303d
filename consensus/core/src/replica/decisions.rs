//! Decisions: record one (ours or a peer's certificate), hand it to execution and the decided
//! record, and send it to whoever still asks.

use super::*;

impl Replica {
    /// Send our decision of `inst`, with its payload when we still hold it. A decided command
    /// whose payload (or whose old decision) is gone is answered with the header we replied
    /// to, while the floor has not passed it: a replica that decided the command without ever
    /// seeing it learns it was real ([`Message::Header`]).
    pub(super) fn send_decided(&mut self, to: ValidatorId, inst: InstanceId) {
        if to == self.me {
            return;
        }
        let found = if let Some(d) = self.insts.get(&inst).and_then(|s| s.decided.clone()) {
            let payload = match (&d.value, inst) {
                (Value::Deps { cmd, .. }, _) => self.payloads.get(cmd).cloned(),
                (Value::Noop, InstanceId::Cmd { id, .. }) => self.payloads.get(&id).cloned(),
                (Value::Noop, InstanceId::Ckpt(_)) => None,
            };
            Some((d, payload))
        } else {
            self.insts.old_decision(&inst)
        };
        let with_payload = matches!(found, Some((_, Some(_))));
        if let Some((d, p)) = found {
            self.send(to, Message::Decided(d, p));
        }
        let header = match inst {
            InstanceId::Cmd { proposer, seq, id } if !with_payload => self
                .headers
                .first(&Slot::Seq(proposer, seq))
                .filter(|h| h.body.id() == id)
                .cloned(),
            _ => None,
        };
        if let Some(h) = header {
            self.send(to, Message::Header(h));
        }
    }

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
        } else if let Some(st) = self.insts.get(&inst) {
            // Re-send our accepted proposal with its payload.
            if let Some((_, pp)) = st.accepted.iter().next_back() {
                let pp = pp.clone();
                let payload = self.payloads.of_value(&pp.body.value);
                self.send(from, Message::PrePrepare(pp, payload));
            }
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
        let decision = Decision {
            inst,
            value: value.clone(),
            cert,
        };
        let payload = self.payloads.of_value(&value);
        let st = self.insts.entry(inst);
        st.decided = Some(decision.clone());
        st.parked.clear();
        st.votes.clear();
        st.vcs.clear();
        let mut ops = vec![StorageOp::Put(
            Key::Decision(inst),
            Record::Decision(decision, payload),
        )];
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
                match value {
                    Value::Deps { deps, after, .. } => {
                        let batch = self
                            .payloads
                            .get(&id)
                            .cloned()
                            .expect("decide is only called with the payload held; qed");
                        if after < self.built {
                            // Would land in no block: the S11 checker reports it.
                            self.collect_garbage_cmd(inst, self.built);
                        } else {
                            self.committed.insert(batch, deps, after);
                        }
                    }
                    Value::Noop => {
                        if proposer == self.me && !misnamed {
                            if let Some(b) = self.payloads.get(&id) {
                                self.proposer.requeue(vec![(seq, b.txs.clone())]);
                            }
                        }
                        self.collect_garbage_cmd(inst, self.built);
                    }
                }
                if proposer == self.me {
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
                    let inst = d.instance();
                    let view0 = self
                        .insts
                        .get(&inst)
                        .is_none_or(|st| st.view == 0 && !st.in_view_change);
                    if !self.ctx().is_decided_inst(&inst) && view0 {
                        self.start_view_change(inst, 1);
                    }
                }
            }
        }
        self.try_build_blocks();
    }
}
