//! Dependency discovery, replier side: answer an announced batch with our conflicts and fence
//! (once per slot, inside the window), or with its decision.

use super::*;

impl Replica {
    pub(super) fn on_announce(&mut self, from: ValidatorId, b: SignedBatch) {
        let id = b.id();
        let h = b.header.body.clone();
        if !self.payloads.contains(&id) && !self.verify_batch(&b) {
            return;
        }
        match h.kind {
            BatchKind::Txs => {
                let inst = InstanceId::Cmd {
                    proposer: h.proposer,
                    seq: h.seq,
                    id,
                };
                if self.ctx().is_decided_inst(&inst) {
                    // The batch is checked: a decision of it we could not count now counts.
                    if self.record.uncounted(&h.proposer, h.seq, &id) {
                        self.count_decided(h.proposer, h.seq, id);
                    }
                    self.send_decided(from, inst);
                    return;
                }
                // A payload we were waiting for (to vote, or to lead a recovery).
                if self.insts.contains(&inst) && !self.payloads.contains(&id) {
                    self.payloads.insert(b.clone());
                    // Its header makes it ours to drive (it may have been made by others'
                    // votes only, with no timer).
                    self.arm_view_timer(inst);
                    self.resume_lead(inst);
                    self.recheck_parked(inst);
                }
                if let Some(r) = self.dds.cached(&id).cloned() {
                    self.payloads.insert(b);
                    self.send(from, Message::Reply(r));
                    self.resume_lead(inst);
                    return;
                }
                if let Some(p) = self.headers.conflict(&b.header) {
                    self.report(p);
                    return;
                }
                if h.seq < self.record.watermark(&h.proposer)
                    || h.seq >= self.ctx().window_end(&h.proposer)
                {
                    return;
                }
                self.headers.replied(&b.header);
                self.payloads.insert(b.clone());
                self.reply_to(from, &b.header);
                self.arm_view_timer(inst);
                self.resume_lead(inst);
                self.recheck_parked(inst);
            }
            BatchKind::Checkpoint { index, .. } => {
                let inst = InstanceId::Ckpt(index);
                if index <= self.chain.last() {
                    self.send_decided(from, inst);
                    return;
                }
                if let Some(r) = self.dds.cached(&id).cloned() {
                    self.payloads.insert(b);
                    self.send(from, Message::Reply(r));
                    return;
                }
                let cur = self.insts.get(&inst).map(|s| s.view).unwrap_or(0);
                let k_prev = self.chain.id(self.chain.last()).unwrap_or([0; 32]);
                let rotation = self.chain.rotation(self.chain.next());
                match checkpoint::classify(
                    self.membership(),
                    &h,
                    self.chain.last(),
                    &k_prev,
                    cur,
                    &rotation,
                ) {
                    CandidateAction::Ignore => {}
                    CandidateAction::Buffer => {
                        // Judged when K_(index-1) commits; at most a few per signer, so that no
                        // member can crowd out the others' candidates.
                        let per_signer = checkpoint::MAX_VIEW_AHEAD as usize + 1;
                        let n = self.membership().n();
                        self.headers.hold_early(index, from, b, per_signer, n);
                    }
                    CandidateAction::Reply => {
                        if let Some(p) = self.headers.conflict(&b.header) {
                            self.report(p);
                            return;
                        }
                        // Floors that go down, or past what we know decided: no reply (the
                        // leader re-announces; a later view's leader proposes its own). The
                        // header is not recorded, so a second one for this view is judged
                        // afresh.
                        let BatchKind::Checkpoint { floors, .. } = &h.kind else {
                            return;
                        };
                        let prev = self.chain.floors(self.chain.last());
                        if !crate::floors::acceptable(floors, prev, self.membership(), |p| {
                            self.record.watermark(p)
                        }) {
                            if crate::floors::well_formed(floors, self.membership())
                                && crate::floors::extends(floors, prev)
                            {
                                // Only our watermark is short: our record has a gap that
                                // peers' settled marks fill.
                                self.settled.note_floor_gap();
                            }
                            return;
                        }
                        self.headers.replied(&b.header);
                        self.payloads.insert(b.clone());
                        self.reply_to(from, &b.header);
                    }
                }
            }
        }
    }

    pub(super) fn reply_to(&mut self, to: ValidatorId, header: &Signed<BatchHeader>) {
        let g = self.genesis();
        let r = self.dds.reply(&header.body, &g, &*self.signer);
        let id = header.body.id();
        let meta = self.meta();
        self.persist(vec![
            StorageOp::Put(Key::Reply(id), Record::Reply(r.clone(), header.clone())),
            meta,
        ]);
        self.send(to, Message::Reply(r));
    }
}
