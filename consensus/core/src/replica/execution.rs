//! Execution: advance the checkpoint chain, cut decided checkpoints into blocks, finish them.

use super::*;

impl Replica {
    pub(super) fn advance_ckpts(&mut self) {
        let passed = self.chain.advance(&self.cfg.membership);
        let advanced = !passed.is_empty();
        for b in passed {
            // Losing candidates for b are decided Noop.
            let winner = self.chain.id(b).expect("passed indexes are known; qed");
            let losers: Vec<CommandId> = self
                .dds
                .entries()
                .filter(|e| {
                    matches!(e.dep.kind, DepKind::Ckpt { index, .. } if index == b)
                        && e.dep.id != winner
                })
                .map(|e| e.dep.id)
                .collect();
            let mut ops = vec![];
            for id in losers {
                self.dds.remove(&id);
                self.payloads.remove(&id);
                ops.push(StorageOp::Delete(Key::Reply(id)));
            }
            self.persist(ops);
            self.proposer.checkpoint_decided(b);
        }
        if !advanced {
            return;
        }
        let next = self.chain.next();
        self.arm_view_timer(InstanceId::Ckpt(next));
        for (from, b) in self.headers.take_early(next) {
            self.outbox.receive(from, Message::Announce(b));
        }
        for i in self.single_shot.instances().with_parked() {
            self.recheck_parked(i);
        }
        for r in self.proposer.take_parked() {
            self.on_reply(r);
        }
        self.maybe_announce_candidate();
    }

    pub(super) fn try_build_blocks(&mut self) {
        while let Some(block) = self.execution.next_block(&ctx!(self)) {
            self.finish_block(block);
        }
    }

    pub(super) fn finish_block(&mut self, block: FinishedBlock) {
        let write = self.outbox.begin_write();
        self.finish_block_with(block, write);
    }

    /// Finish a block; every write since `write` began, the block meta included, goes
    /// out as one `Persist`.
    pub(super) fn finish_block_with(&mut self, block: FinishedBlock, write: WriteMark) {
        let b = block.index;
        // Our own batches this block voids (built or adopted alike) are proposed again.
        let own_voided = self.execution.finished(&block, &self.me, self.now);
        self.chain
            .built(b, block.checkpoint, block.timestamp_ms, &block.floors);
        self.proposer.requeue(own_voided);
        for (h, _) in &block.batches {
            self.proposer.cover_landed(&h.id());
        }
        // The decided record's floors are the agreed floors of the last block taken.
        let ops = self.take_floors(&block.floors);
        self.persist(ops);
        self.collect_below_floors(b);
        self.recovery.block_finished(&block);
        self.outbox.emit(Output::BlockReady(block));
        self.gc(b);
        let meta = self.meta();
        self.persist(vec![meta]);
        self.outbox.end_write(write);
        self.try_propose_own();
    }
}
