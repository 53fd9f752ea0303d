//! Garbage collection after a block: commands in it or below the agreed floors, checkpoint
//! instances up to it, and what the services keep for laggards.

use super::*;

impl Replica {
    /// Commands below the agreed floors that are not committed (so in no block, now or later)
    /// are decided by the floor: nothing decides them any more (every message about them is
    /// dropped). Our own go back to the pool, lowest first (a copy already in a block is skipped
    /// by every builder), and every one is collected, so that no log entry below a floor pins
    /// the proposer's window.
    pub(super) fn collect_below_floors(&mut self, b: BlockIndex) {
        let below = |r: &Self, p: &ValidatorId, seq: Seq, id: &CommandId| {
            seq < r.record.floor(p) && !r.execution.committed().contains(id)
        };
        let mut refs: BTreeSet<(ValidatorId, Seq, CommandId)> = BTreeSet::new();
        for inst in self.single_shot.instances().ids() {
            if let InstanceId::Cmd { proposer, seq, id } = inst {
                if below(self, proposer, *seq, id) {
                    refs.insert((*proposer, *seq, *id));
                }
            }
        }
        for e in self.dds.entries() {
            if let DepKind::Txs { seq } = e.dep.kind {
                if below(self, &e.dep.proposer, seq, &e.dep.id) {
                    refs.insert((e.dep.proposer, seq, e.dep.id));
                }
            }
        }
        for (id, batch) in self.payloads.iter() {
            let h = &batch.header.body;
            if !h.is_checkpoint() && below(self, &h.proposer, h.seq, id) {
                refs.insert((h.proposer, h.seq, *id));
            }
        }
        let mut requeue: Vec<(Seq, Vec<Tx>)> = vec![];
        for (proposer, seq, id) in refs {
            if proposer == self.me {
                if let Some(batch) = self.payloads.get(&id) {
                    let h = &batch.header.body;
                    if h.proposer == self.me && h.seq == seq {
                        requeue.push((seq, batch.txs.clone()));
                    }
                }
            }
            self.collect_garbage_cmd(InstanceId::Cmd { proposer, seq, id }, b);
        }
        self.proposer.requeue(requeue);
    }

    pub(super) fn collect_garbage_cmd(&mut self, inst: InstanceId, at_block: BlockIndex) {
        let InstanceId::Cmd { id, .. } = inst else {
            return;
        };
        // A misnamed instance owns only its own consensus state, never what is keyed by the id
        // of the real command it borrowed.
        let owns_id = !self.ctx().misnamed(&inst);
        // A Noop decision keeps the command's batch too: it shows a replica that decided the
        // command without it that the command was real (docs/consensus.md, "Headers of
        // decided commands travel with their decision").
        let payloads = &self.payloads;
        let (_, mut ops) = self
            .single_shot
            .instances_mut()
            .retire(inst, at_block, |v| match v {
                Value::Noop if owns_id => payloads.get(&id).cloned(),
                _ => payloads.of_value(v),
            });
        if owns_id {
            ops.push(StorageOp::Delete(Key::Reply(id)));
            // Our own batch record goes only with our own batch: an instance naming our seq
            // with an id we never proposed (a Byzantine validator's invention) must not delete
            // the record of the real batch at that seq, or a restart would reuse the seq.
            let own_batch = self
                .ctx()
                .held_ref(&id)
                .is_some_and(|r| r.proposer == self.me && r.instance() == inst);
            if own_batch {
                if let InstanceId::Cmd { seq, .. } = inst {
                    ops.push(StorageOp::Delete(Key::OwnBatch(seq)));
                }
            }
            self.dds.remove(&id);
            self.payloads.remove(&id);
            self.execution.forget(&id);
            self.proposer.forget(&id);
        }
        self.persist(ops);
    }

    pub(super) fn gc(&mut self, b: BlockIndex) {
        for inst in self.execution.committed().landed_before(b) {
            self.collect_garbage_cmd(inst, b);
        }
        // Checkpoint instances up to b.
        let mut ops = vec![];
        for inst in self.single_shot.instances().checkpoints_upto(b) {
            let InstanceId::Ckpt(i) = inst else { continue };
            let payloads = &self.payloads;
            let (view, deletes) = self
                .single_shot
                .instances_mut()
                .retire(inst, b, |v| payloads.of_value(v));
            ops.extend(deletes);
            // Our own candidates for it, in every view it reached.
            for (v, id) in self.proposer.retire_candidates(i, view.unwrap_or(0)) {
                ops.push(StorageOp::Delete(Key::OwnCandidate(i, v)));
                self.payloads.remove(&id);
            }
        }
        let keep_from = b.saturating_sub(self.cfg.retain_blocks);
        if let Some(k) = self.chain.trim(b, keep_from) {
            let kid = k.header.id();
            self.dds.remove(&kid);
            self.payloads.remove(&kid);
            ops.push(StorageOp::Delete(Key::Reply(kid)));
        }
        self.persist(ops);
        self.single_shot.instances_mut().trim_old(keep_from);
        self.recovery.trim(b);
        let record = &self.record;
        self.headers.trim(b, |p| record.floor(p));
        self.proposer.trim_candidates(b);
    }
}
