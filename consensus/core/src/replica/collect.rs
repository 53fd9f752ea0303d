//! Garbage collection after a block: commands in it or below the agreed floors, checkpoint
//! instances up to it, and what the services keep for laggards.

use super::*;
use crate::gc;

impl Replica {
    /// Collect every command the agreed floors decided without a block ([`gc::below_floors`]);
    /// then our own go back to the pool, lowest seq first.
    pub(super) fn collect_below_floors(&mut self, b: BlockIndex) {
        let refs = gc::below_floors(&self.ctx(), self.single_shot.instances().ids());
        let requeue = gc::own_to_requeue(&self.ctx(), &refs);
        for (proposer, seq, id) in refs {
            let inst = InstanceId::Cmd { proposer, seq, id };
            // A real id under another member's name is not the real command: that one may
            // still land.
            let misnamed = self.ctx().misnamed(&inst);
            self.collect_garbage_cmd(inst, b);
            if !misnamed {
                // Void: our copies it carried go back (the caller proposes them).
                self.proposer.uncover(&id, None, self.now, &mut self.outbox);
            }
        }
        self.proposer.requeue(requeue);
    }

    /// Collect command instance `inst`: each service forgets what it holds for it.
    pub(super) fn collect_garbage_cmd(&mut self, inst: InstanceId, at_block: BlockIndex) {
        let Some(garbage) = gc::command_garbage(&self.ctx(), &inst) else {
            return;
        };
        let (id, owns_id) = (garbage.id, garbage.owns_id);
        // A Noop decision keeps the command's batch too: it shows a replica that decided the
        // command without it that the command was real (docs/consensus.md, "Headers of
        // decided commands travel with their decision").
        let payloads = &self.payloads;
        let (_, mut ops) = self.single_shot.retire(inst, at_block, |v| match v {
            Value::Noop if owns_id => payloads.get(&id).cloned(),
            _ => payloads.of_value(v),
        });
        if owns_id {
            ops.push(StorageOp::Delete(Key::Reply(id)));
            if let Some(seq) = garbage.own_batch_seq {
                ops.push(StorageOp::Delete(Key::OwnBatch(seq)));
            }
            self.dds.remove(&id);
            self.payloads.remove(&id);
            self.execution.forget(&id);
            self.proposer.forget(&id);
        }
        self.persist(ops);
    }

    /// Collect what block `b` lets go: the commands it and the blocks before it hold, the
    /// checkpoint instances up to it (with our candidates for them), and what is kept for
    /// laggards older than `retain_blocks`.
    pub(super) fn gc(&mut self, b: BlockIndex) {
        for inst in self.execution.committed().landed_before(b) {
            self.collect_garbage_cmd(inst, b);
        }
        // Checkpoint instances up to b.
        let mut ops = vec![];
        for inst in self.single_shot.instances().checkpoints_upto(b) {
            let InstanceId::Ckpt(i) = inst else { continue };
            let payloads = &self.payloads;
            let (view, deletes) = self.single_shot.retire(inst, b, |v| payloads.of_value(v));
            ops.extend(deletes);
            // Our own candidates for it, in every view it reached.
            for (v, id) in self.proposer.retire_candidates(i, view.unwrap_or(0)) {
                ops.push(StorageOp::Delete(Key::OwnCandidate(i, v)));
                self.payloads.remove(&id);
            }
        }
        let keep_from = gc::keep_from(b, self.cfg.retain_blocks);
        if let Some(k) = self.chain.trim(b, keep_from) {
            let kid = k.header.id();
            self.dds.remove(&kid);
            self.payloads.remove(&kid);
            ops.push(StorageOp::Delete(Key::Reply(kid)));
        }
        self.persist(ops);
        self.single_shot.trim_collected(keep_from);
        self.recovery.trim(b);
        let record = &self.record;
        self.headers.trim(b, |p| record.floor(p));
        self.proposer.trim_candidates(b);
    }
}
