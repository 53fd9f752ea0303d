//! Routes the replier side of dependency discovery ([`crate::discovery::replier`]): its
//! answer to an announced batch becomes a signed, persisted reply, a decision sent back, a
//! misbehaviour proof, or a candidate held for later.

use super::*;
use crate::discovery::replier::{self, Answer, HELD_CANDIDATES_PER_SIGNER};

impl Replica {
    pub(super) fn on_announce(&mut self, from: ValidatorId, b: SignedBatch) {
        let id = b.id();
        if !self.payloads.contains(&id) && !self.verify_batch(&b) {
            return;
        }
        let h = &b.header.body;
        let inst = match h.kind {
            BatchKind::Txs => h.dep_ref().instance(),
            BatchKind::Checkpoint { index, .. } => InstanceId::Ckpt(index),
        };
        if let Some(count) = replier::decided(&self.ctx(), &b) {
            if count {
                self.count_decided(h.proposer, h.seq, id);
            }
            self.send_decided(from, inst);
            return;
        }
        let is_command = !h.is_checkpoint();
        let live = self.single_shot.instances().contains(&inst);
        if replier::awaited(&self.ctx(), &b, live) {
            // Its header makes it ours to drive (it may have been made by others' votes only,
            // with no timer).
            self.payloads.insert(b.clone());
            self.arm_view_timer(inst);
            self.resume_lead(inst);
            self.recheck_parked(inst);
        }
        let view = self.single_shot.view_of(&inst);
        match replier::answer(&self.ctx(), &b, view) {
            Answer::Again(r) => {
                self.payloads.insert(b);
                self.send(from, Message::Reply(*r));
                if is_command {
                    self.resume_lead(inst);
                }
            }
            Answer::Conflict(p) => self.report(*p),
            Answer::Outside | Answer::Ignore | Answer::Floors { gap: false } => {}
            Answer::Floors { gap: true } => self.recovery.note_floor_gap(),
            Answer::Hold(index) => {
                let n = self.membership().n();
                self.headers
                    .hold_early(index, from, b, HELD_CANDIDATES_PER_SIGNER, n);
            }
            Answer::Reply => {
                self.headers.replied(&b.header);
                self.payloads.insert(b.clone());
                self.reply_to(from, &b.header);
                if is_command {
                    self.proposer.cover(&ctx!(self), &b, &mut self.outbox);
                    self.arm_view_timer(inst);
                    self.resume_lead(inst);
                    self.recheck_parked(inst);
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
