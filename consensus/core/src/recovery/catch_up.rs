//! Catching up through peers: the finished blocks kept to serve laggards, the blocks laggards
//! are offered with who vouches for each, and the finalized chain blocks the engine reports
//! above our position (docs/consensus.md, "Catching up").
//!
//! A block is adopted once f+1 validators sent the same one for the next index: at least one
//! correct validator built it. Each sender counts once per index (its latest), so what a peer
//! sends never grows the offers past n blocks per index.

use crate::io::ChainPosition;
use crate::types::*;
use crate::wire::FinishedBlock;
use std::collections::{BTreeMap, BTreeSet};

/// How many blocks one sync request asks for, and how far above our position offers are taken.
pub const SYNC_BATCH: u64 = 16;

/// Finalized chain blocks remembered above our position.
const CHAIN_BLOCKS_KEPT: usize = 8;

/// The catch-up state of one replica.
#[derive(Debug, Default)]
pub struct CatchUp {
    /// Finished blocks kept for laggards.
    recent: BTreeMap<BlockIndex, FinishedBlock>,
    /// Blocks offered by peers above our position, by index and digest, with their senders.
    offers: BTreeMap<BlockIndex, BTreeMap<Digest, (FinishedBlock, BTreeSet<ValidatorId>)>>,
    /// Finalized chain blocks above our position (the last few fed by the engine).
    finalized: BTreeMap<BlockIndex, ChainPosition>,
}

impl CatchUp {
    /// Block `block.index` was finished (built or adopted): keep it for laggards; chain blocks
    /// up to it are no longer ahead.
    pub fn block_finished(&mut self, block: &FinishedBlock) {
        self.recent.insert(block.index, block.clone());
        self.finalized = self.finalized.split_off(&(block.index + 1));
    }

    /// The blocks to send for a request from index `b` on.
    pub fn serve(&self, b: BlockIndex) -> Vec<FinishedBlock> {
        self.recent
            .range(b..b.saturating_add(SYNC_BATCH))
            .map(|(_, x)| x.clone())
            .collect()
    }

    /// `from` offers `blk`; taken (true) only for the next [`SYNC_BATCH`] indexes above
    /// `built`.
    pub fn offer(&mut self, from: ValidatorId, blk: FinishedBlock, built: BlockIndex) -> bool {
        if blk.index <= built || blk.index > built + SYNC_BATCH {
            return false;
        }
        let d = blk.digest();
        let offers = self.offers.entry(blk.index).or_default();
        for (_, senders) in offers.values_mut() {
            senders.remove(&from);
        }
        offers.retain(|_, (_, senders)| !senders.is_empty());
        offers
            .entry(d)
            .or_insert_with(|| (blk, BTreeSet::new()))
            .1
            .insert(from);
        true
    }

    /// A block for index `b` that at least `vouchers` validators offered.
    pub fn vouched(&self, b: BlockIndex, vouchers: usize) -> Option<FinishedBlock> {
        self.offers
            .get(&b)
            .and_then(|m| m.values().find(|(_, s)| s.len() >= vouchers))
            .map(|(blk, _)| blk.clone())
    }

    /// The engine saw finalized chain block `pos`: remember the last few above our position.
    pub fn chain_block(&mut self, pos: ChainPosition, built: BlockIndex) {
        if pos.index <= built {
            return;
        }
        self.finalized.insert(pos.index, pos);
        while self.finalized.len() > CHAIN_BLOCKS_KEPT {
            self.finalized.pop_first();
        }
    }

    /// The highest finalized chain block known above our position.
    pub fn chain_head(&self) -> Option<&ChainPosition> {
        self.finalized.values().next_back()
    }

    /// Whether the chain is more than `by` blocks past `built`.
    pub fn chain_ahead_by(&self, built: BlockIndex, by: u64) -> bool {
        self.chain_head().is_some_and(|c| c.index > built + by)
    }

    /// Block `b` is built: drop offers up to it and kept blocks older than `keep` back.
    pub fn trim(&mut self, b: BlockIndex, keep: u64) {
        self.recent = self.recent.split_off(&b.saturating_sub(keep));
        self.offers = self.offers.split_off(&(b + 1));
    }

    /// We continue from chain block `c`: offers and chain blocks up to it are moot.
    pub fn rejoined(&mut self, c: BlockIndex) {
        self.offers = self.offers.split_off(&(c + 1));
        self.finalized = self.finalized.split_off(&(c + 1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rotation::Rotation;

    fn block(index: BlockIndex, ts: u64) -> FinishedBlock {
        FinishedBlock {
            index,
            timestamp_ms: ts,
            checkpoint_view: 0,
            next_rotation: Rotation::fresh(1),
            floors: vec![],
            checkpoint: [index as u8; 32],
            batches: vec![],
        }
    }

    #[test]
    fn a_block_is_vouched_for_by_distinct_senders_of_the_same_one() {
        let mut c = CatchUp::default();
        c.offer([1; 32], block(3, 1), 2);
        c.offer([1; 32], block(3, 1), 2);
        assert!(c.vouched(3, 2).is_none(), "one sender counts once");
        c.offer([2; 32], block(3, 2), 2);
        assert!(c.vouched(3, 2).is_none(), "two different blocks");
        c.offer([3; 32], block(3, 1), 2);
        assert_eq!(c.vouched(3, 2), Some(block(3, 1)));
    }

    #[test]
    fn a_sender_that_changes_its_offer_moves_its_vote() {
        let mut c = CatchUp::default();
        for ts in 0..100 {
            c.offer([1; 32], block(3, ts), 2);
        }
        assert_eq!(c.offers[&3].len(), 1, "one offer per sender and index");
    }

    #[test]
    fn offers_outside_the_next_sync_batch_are_ignored() {
        let mut c = CatchUp::default();
        c.offer([1; 32], block(2, 0), 2);
        c.offer([1; 32], block(2 + SYNC_BATCH + 1, 0), 2);
        assert!(c.offers.is_empty());
        c.offer([1; 32], block(2 + SYNC_BATCH, 0), 2);
        assert_eq!(c.offers.len(), 1);
    }

    #[test]
    fn serves_kept_blocks_and_trims_them() {
        let mut c = CatchUp::default();
        for b in 1..=40 {
            c.block_finished(&block(b, b));
        }
        let served: Vec<BlockIndex> = c.serve(5).iter().map(|b| b.index).collect();
        assert!(
            c.serve(u64::MAX - 3).is_empty(),
            "a request at the top of the range"
        );
        assert_eq!(served, (5..21).collect::<Vec<_>>());
        c.trim(40, 10);
        assert_eq!(c.serve(25).first().map(|b| b.index), Some(30));
    }

    #[test]
    fn chain_blocks_above_our_position_only_the_last_few() {
        let mut c = CatchUp::default();
        c.chain_block(
            ChainPosition {
                index: 1,
                checkpoint: [0; 32],
                timestamp_ms: 0,
                next_rotation: Rotation::fresh(1),
                floors: vec![],
            },
            1,
        );
        assert!(c.chain_head().is_none());
        for i in 2..20 {
            let pos = ChainPosition {
                index: i,
                checkpoint: [0; 32],
                timestamp_ms: 0,
                next_rotation: Rotation::fresh(1),
                floors: vec![],
            };
            c.chain_block(pos, 1);
        }
        assert_eq!(c.finalized.len(), CHAIN_BLOCKS_KEPT);
        assert!(c.chain_ahead_by(1, 17) && !c.chain_ahead_by(1, 18));
        c.block_finished(&block(19, 0));
        assert!(c.chain_head().is_none());
    }
}
