//! Execution: committed commands wait for the block their fence names ([`blocks`]); block b is
//! cut once its checkpoint is decided and every dependency above its floors is decided here,
//! and its members are ordered by the dependency graph ([`order`]).
//!
//! [`Execution`] is the service: it owns the committed commands and how far blocks are built.
//! Its rules that read the other services take the read-only [`Ctx`] and change nothing
//! ([`Execution::next_block`]); the ones that change its state take no `Ctx`, so the replica
//! can lend the committed commands to every other rule meanwhile.

pub mod blocks;
pub mod order;

use crate::ctx::Ctx;
use crate::types::*;
use crate::wire::{FinishedBlock, SignedBatch};
use blocks::Committed;

/// The execution service.
#[derive(Debug, Default)]
pub struct Execution {
    committed: Committed,
    built: BlockIndex,
    last_build_ms: u64,
}

impl Execution {
    /// Commands decided with their dependencies, waiting for their blocks.
    pub fn committed(&self) -> &Committed {
        &self.committed
    }

    /// The last block built (or adopted, or rejoined at).
    pub fn built(&self) -> BlockIndex {
        self.built
    }

    /// When the last block was built here (virtual ms).
    pub fn last_build_ms(&self) -> u64 {
        self.last_build_ms
    }

    /// Restart at block `built` (from the persisted meta).
    pub fn restore(&mut self, built: BlockIndex) {
        self.built = built;
    }

    /// Command `batch` was decided with `deps`, after block `after`: it waits for its block.
    pub fn commit(&mut self, batch: SignedBatch, deps: Vec<DepRef>, after: BlockIndex) {
        self.committed.insert(batch, deps, after);
    }

    /// Command `id` is in a block or collected.
    pub fn forget(&mut self, id: &CommandId) {
        self.committed.remove(id);
    }

    /// The next block, once its checkpoint is decided and every dependency above its floors is
    /// decided here: the same cut and order on every correct replica.
    pub fn next_block(&self, ctx: &Ctx) -> Option<FinishedBlock> {
        let b = self.built + 1;
        let k = ctx.chain.decided(b)?;
        let next_rotation = ctx.chain.rotation(b + 1);
        self.committed
            .block(b, k, |d| ctx.dep_decided(d), next_rotation)
    }

    /// Block `block` is finished (built or adopted) at `now`. Returns `me`'s commands it voids
    /// (their fence names it, their seq is below our floor in it), whose transactions are
    /// proposed again, lowest first.
    pub fn finished(
        &mut self,
        block: &FinishedBlock,
        me: &ValidatorId,
        now: u64,
    ) -> Vec<(Seq, Vec<Tx>)> {
        let b = block.index;
        self.built = b;
        self.last_build_ms = now;
        let own_floor = crate::floors::floor_of(&block.floors, me);
        self.committed.voided_own(me, own_floor, b)
    }

    /// Rejoined from the certified chain at block `at`, at `now`.
    pub fn rejoined(&mut self, at: BlockIndex, now: u64) {
        self.built = at;
        self.last_build_ms = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctx::testing::{command, World};

    #[test]
    fn no_block_before_its_checkpoint_is_decided() {
        let w = World::new();
        let mut e = Execution::default();
        e.commit(command(2, 0, 1), vec![], 0);
        assert_eq!(e.next_block(&w.ctx()), None);
        assert_eq!((e.built(), e.committed().len()), (0, 1));
    }

    #[test]
    fn the_next_block_waits_for_its_checkpoints_dependencies_and_changes_nothing() {
        let mut w = World::new();
        let mut e = Execution::default();
        let c = command(2, 0, 1);
        e.commit(c.clone(), vec![], 0);
        let header = BatchHeader {
            epoch: 0,
            proposer: [1; 32],
            seq: 0,
            base: [0; 32],
            kind: BatchKind::Checkpoint {
                index: 1,
                view: 0,
                timestamp_ms: 7,
                floors: vec![],
            },
            access: vec![],
            txs_root: [0; 32],
            weight: 0,
        };
        w.chain.decide(1, header, vec![c.header.body.dep_ref()]);
        assert_eq!(
            e.next_block(&w.ctx()),
            None,
            "its dependency is not decided here"
        );
        w.record.mark([2; 32], 0, c.id(), true);
        let block = e.next_block(&w.ctx()).expect("every dependency decided");
        assert_eq!((block.index, block.timestamp_ms), (1, 7));
        assert_eq!(block.batches, vec![(c.header.body.clone(), c.txs.clone())]);
        assert_eq!(
            (e.built(), e.committed().len()),
            (0, 1),
            "reading changes nothing"
        );
    }

    #[test]
    fn a_finished_block_moves_the_height_and_hands_back_our_voided_batches() {
        let me = [1; 32];
        let mut e = Execution::default();
        let (ours, theirs, later) = (command(1, 0, 1), command(2, 0, 2), command(1, 1, 3));
        e.commit(ours.clone(), vec![], 0);
        e.commit(theirs, vec![], 0);
        e.commit(later, vec![], 1);
        let block = FinishedBlock {
            index: 1,
            floors: vec![(me, 1), ([2; 32], 1)],
            ..Default::default()
        };
        let voided = e.finished(&block, &me, 4_200);
        assert_eq!(
            voided,
            vec![(0, ours.txs.to_vec())],
            "ours below our floor with fence 0; not another's, not one fenced later"
        );
        assert_eq!((e.built(), e.last_build_ms()), (1, 4_200));
        e.forget(&ours.id());
        assert!(!e.committed().contains(&ours.id()));
        e.rejoined(9, 5_000);
        assert_eq!((e.built(), e.last_build_ms()), (9, 5_000));
    }
}
