//! Dependency discovery, proposer side: announce our batches and checkpoint candidates,
//! collect q replies, propose the value with its proof.

use super::*;

impl Replica {
    pub(super) fn try_propose_own(&mut self) {
        let window_end = self.ctx().window_end(&self.me);
        while let Some((seq, txs)) = self.own.next(window_end) {
            let access = union_access(txs.iter().map(|t| &t.access[..]));
            let weight = txs.iter().map(|t| t.encoded_size() as u64).sum();
            let header = BatchHeader {
                epoch: self.membership().epoch,
                proposer: self.me,
                seq,
                base: self.chain.id(self.chain.last()).unwrap_or([0; 32]),
                kind: BatchKind::Txs,
                access,
                txs_root: hash(&txs.encode()),
                weight,
            };
            let batch = SignedBatch {
                header: Signed::sign(header, &self.genesis(), &*self.signer),
                txs,
            };
            self.persist(vec![StorageOp::Put(
                Key::OwnBatch(seq),
                Record::Batch(batch.clone()),
            )]);
            self.payloads.insert(batch.clone());
            let inst = batch.header.body.dep_ref().instance();
            self.collector.open(batch.clone(), inst, 0, vec![]);
            self.outbox.emit(Output::Proposed {
                id: batch.id(),
                txs: batch.txs.clone(),
            });
            self.broadcast(Message::Announce(batch));
        }
    }

    pub(super) fn maybe_announce_candidate(&mut self) {
        let b = self.chain.next();
        if !self.ckpt_due
            || self.ckpt_leader(b, 0) != Some(self.me)
            || self.announced.contains_key(&(b, 0))
        {
            return;
        }
        let in_vc = self
            .insts
            .get(&InstanceId::Ckpt(b))
            .map(|s| s.view > 0)
            .unwrap_or(false);
        if in_vc {
            return;
        }
        self.ckpt_due = false;
        self.announce_candidate(b, 0, vec![]);
    }

    pub(super) fn announce_candidate(
        &mut self,
        b: BlockIndex,
        view: View,
        new_view: Vec<Signed<ViewChangeBody>>,
    ) {
        let Some((base, prev_ts)) = self.chain.id_and_time(b - 1) else {
            return;
        };
        let batch = match self
            .announced
            .get(&(b, view))
            .and_then(|id| self.payloads.get(id))
        {
            Some(c) => c.clone(),
            None => {
                let header = BatchHeader {
                    epoch: self.membership().epoch,
                    proposer: self.me,
                    seq: 0,
                    base,
                    kind: BatchKind::Checkpoint {
                        index: b,
                        view,
                        timestamp_ms: self.now.max(prev_ts + 1),
                        floors: crate::floors::propose(
                            self.membership(),
                            self.chain.floors(b - 1),
                            |p| self.record.proposed_floor(p),
                        ),
                    },
                    access: vec![],
                    txs_root: hash(&Vec::<Tx>::new().encode()),
                    weight: 0,
                };
                let c = SignedBatch {
                    header: Signed::sign(header, &self.genesis(), &*self.signer),
                    txs: vec![],
                };
                self.persist(vec![StorageOp::Put(
                    Key::OwnCandidate(b, view),
                    Record::Batch(c.clone()),
                )]);
                self.announced.insert((b, view), c.id());
                self.payloads.insert(c.clone());
                c
            }
        };
        let id = batch.id();
        self.collector
            .open(batch.clone(), InstanceId::Ckpt(b), view, new_view);
        self.broadcast(Message::Announce(batch));
        self.try_collect(id);
    }

    pub(super) fn on_reply(&mut self, r: Signed<ReplyBody>) {
        let id = r.body.cmd.id;
        let (record, window) = (&self.record, self.cfg.window);
        let limits = ReplyLimits {
            membership: &self.cfg.membership,
            verifier: &*self.verifier,
            window,
            last_checkpoint: self.chain.last(),
            within_reach: &|d| within_reach(record, window, d),
        };
        match self.collector.on_reply(r, &limits) {
            ReplyOutcome::Counted => self.try_collect(id),
            ReplyOutcome::Equivocation(old, new) => {
                self.report(Proof::ReplyEquivocation(*old, *new))
            }
            ReplyOutcome::Dropped | ReplyOutcome::Parked => {}
        }
    }

    /// Propose for `id` once a quorum replied.
    pub(super) fn try_collect(&mut self, id: CommandId) {
        if let Some(p) = self.collector.ready(&id, self.membership().q()) {
            self.propose(p.inst, p.view, p.value, p.proof, p.new_view, p.payload);
        }
    }

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
