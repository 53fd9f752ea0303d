//! The checkpoint chain: per block index, what the decided checkpoint K_b fixes for everyone
//! (its id and timestamp, its agreed floors, the leader rotation in force for the next index)
//! and, until block b is built, the decided checkpoint itself with its dependencies.
//!
//! One owner with one trim rule: a checkpoint decided
//! here, a block built, adopted from peers or taken from the certified chain all write the same
//! entries (docs/consensus.md, "Checkpoints and blocks").

use crate::io::ChainPosition;
use crate::membership::Membership;
use crate::rotation::Rotation;
use crate::types::*;
use std::collections::BTreeMap;

/// A decided checkpoint whose block is not built yet.
#[derive(Clone, Debug)]
pub struct DecidedCheckpoint {
    /// K_b's header (its kind is `Checkpoint`).
    pub header: BatchHeader,
    /// The dependencies the decision fixed: what block b waits for.
    pub deps: Vec<DepRef>,
}

impl DecidedCheckpoint {
    /// K_b's agreed floors.
    pub fn floors(&self) -> &[(ValidatorId, Seq)] {
        match &self.header.kind {
            BatchKind::Checkpoint { floors, .. } => floors,
            BatchKind::Txs => &[],
        }
    }
    /// The view K_b was proposed in (it moves the rotation).
    pub fn view(&self) -> View {
        match self.header.kind {
            BatchKind::Checkpoint { view, .. } => view,
            BatchKind::Txs => 0,
        }
    }
    /// The commands block b waits for: its Txs dependencies above the floors (those below are
    /// void).
    pub fn waits_for(&self) -> impl Iterator<Item = &DepRef> {
        self.deps.iter().filter(|d| {
            matches!(d.kind, DepKind::Txs { .. }) && !crate::floors::voids(self.floors(), d)
        })
    }
    /// Dependencies that share a proposer's seq with another above the floors: every replica
    /// sees the same K_b, so they prove that proposer equivocated (the deps are sorted).
    pub fn equivocations(&self) -> Vec<DepRef> {
        let mut out: Vec<DepRef> = vec![];
        for w in self.deps.windows(2) {
            let same_slot = w[0].proposer == w[1].proposer
                && matches!((w[0].kind, w[1].kind),
                    (DepKind::Txs { seq: a }, DepKind::Txs { seq: c }) if a == c);
            if same_slot && !crate::floors::voids(self.floors(), &w[0]) {
                for d in w {
                    if !out.contains(d) {
                        out.push(*d);
                    }
                }
            }
        }
        out
    }
}

/// The checkpoint chain of one epoch as this replica knows it.
#[derive(Clone, Debug)]
pub struct CheckpointChain {
    epoch: Epoch,
    /// Every K_b up to here is decided (or taken from a block).
    last: BlockIndex,
    /// K_b's id and timestamp.
    ids: BTreeMap<BlockIndex, (CommandId, u64)>,
    /// K_b's agreed floors, for the same indexes as `ids`.
    floors: BTreeMap<BlockIndex, Floors>,
    /// The checkpoint-leader rotation in force for each index (known up to `last + 1`).
    rotations: BTreeMap<BlockIndex, Rotation>,
    /// Decided checkpoints whose blocks are not built yet.
    unbuilt: BTreeMap<BlockIndex, DecidedCheckpoint>,
}

impl CheckpointChain {
    /// The chain at genesis: K_0 is the all-zero id with no floors; block 1's rotation is fresh.
    pub fn new(epoch: Epoch) -> Self {
        CheckpointChain {
            epoch,
            last: 0,
            ids: BTreeMap::from([(0, ([0; 32], 0))]),
            floors: BTreeMap::from([(0, Floors::new())]),
            rotations: BTreeMap::from([(1, Rotation::fresh(epoch))]),
            unbuilt: BTreeMap::new(),
        }
    }

    /// The highest index up to which every checkpoint is decided.
    pub fn last(&self) -> BlockIndex {
        self.last
    }
    /// The checkpoint instance being decided now.
    pub fn next(&self) -> BlockIndex {
        self.last + 1
    }
    /// K_b's id, if known.
    pub fn id(&self, b: BlockIndex) -> Option<CommandId> {
        self.ids.get(&b).map(|x| x.0)
    }
    /// K_b's id and timestamp, if known.
    pub fn id_and_time(&self, b: BlockIndex) -> Option<(CommandId, u64)> {
        self.ids.get(&b).copied()
    }
    /// K_b's agreed floors (none if unknown).
    pub fn floors(&self, b: BlockIndex) -> &[(ValidatorId, Seq)] {
        self.floors.get(&b).map_or(&[][..], |f| &f[..])
    }
    /// The rotation in force for block `b` (fresh if not known).
    pub fn rotation(&self, b: BlockIndex) -> Rotation {
        self.rotations
            .get(&b)
            .cloned()
            .unwrap_or_else(|| Rotation::fresh(self.epoch))
    }
    /// leader(b, view) of CONS_ckpt(b), once the rotation for b is known.
    pub fn leader(&self, m: &Membership, b: BlockIndex, view: View) -> Option<ValidatorId> {
        self.rotations.get(&b).map(|r| r.leader(m, b, view))
    }
    /// The decided checkpoint of an unbuilt block.
    pub fn decided(&self, b: BlockIndex) -> Option<&DecidedCheckpoint> {
        self.unbuilt.get(&b)
    }
    /// The decided checkpoints of unbuilt blocks from `b` on.
    pub fn decided_from(&self, b: BlockIndex) -> impl Iterator<Item = &DecidedCheckpoint> {
        self.unbuilt.range(b..).map(|(_, k)| k)
    }
    /// Where block `b` leaves the chain, if its checkpoint is known.
    pub fn position(&self, b: BlockIndex) -> Option<ChainPosition> {
        let (checkpoint, timestamp_ms) = *self.ids.get(&b)?;
        Some(ChainPosition {
            index: b,
            checkpoint,
            timestamp_ms,
            next_rotation: self.rotation(b + 1),
            floors: self.floors.get(&b).cloned().unwrap_or_default(),
        })
    }

    /// Whether candidate `h` for index `b` extends this chain: it is for `b`, names K_(b-1) as
    /// its base, its timestamp is after K_(b-1)'s and at most `drift_ms` ahead of `now`, and its
    /// floors are well formed and not below K_(b-1)'s.
    pub fn extended_by(
        &self,
        h: &BatchHeader,
        b: BlockIndex,
        m: &Membership,
        now: u64,
        drift_ms: u64,
    ) -> bool {
        let BatchKind::Checkpoint {
            index,
            timestamp_ms,
            ref floors,
            ..
        } = h.kind
        else {
            return false;
        };
        let (k_prev, prev_ts) = self.id_and_time(b - 1).unwrap_or(([0; 32], 0));
        index == b
            && h.base == k_prev
            && crate::checkpoint::timestamp_ok(prev_ts, timestamp_ms, now, drift_ms)
            && crate::floors::well_formed(floors, m)
            && crate::floors::extends(floors, self.floors(b - 1))
    }

    /// Consensus decided K_b (`header`, a checkpoint, with `deps`).
    pub fn decide(&mut self, b: BlockIndex, header: BatchHeader, deps: Vec<DepRef>) {
        let BatchKind::Checkpoint {
            timestamp_ms,
            ref floors,
            ..
        } = header.kind
        else {
            return;
        };
        self.ids.insert(b, (header.id(), timestamp_ms));
        self.floors.insert(b, floors.clone());
        self.unbuilt.insert(b, DecidedCheckpoint { header, deps });
    }

    /// Move `last` over every consecutive known checkpoint, deriving the next index's rotation
    /// from the view each was decided in; returns the indexes passed, in order.
    pub fn advance(&mut self, m: &Membership) -> Vec<BlockIndex> {
        let mut passed = vec![];
        while self.ids.contains_key(&(self.last + 1)) {
            self.last += 1;
            let b = self.last;
            passed.push(b);
            if !self.rotations.contains_key(&(b + 1)) {
                let view = self.unbuilt.get(&b).map_or(0, |k| k.view());
                let next = self.rotation(b).after(m, b, view);
                self.rotations.insert(b + 1, next);
            }
        }
        passed
    }

    /// Block `pos.index` was built here: its checkpoint and floors are final.
    pub fn built(&mut self, b: BlockIndex, checkpoint: CommandId, ts: u64, floors: &Floors) {
        self.ids.insert(b, (checkpoint, ts));
        self.floors.insert(b, floors.clone());
    }

    /// Block `pos.index` was taken from outside (f+1 peers' finished block, the certified
    /// chain, or the persisted position of the last block built): take its checkpoint, floors
    /// and next rotation unless our own decisions already passed it.
    pub fn take(&mut self, pos: &ChainPosition) {
        let b = pos.index;
        if self.last < b {
            self.ids.insert(b, (pos.checkpoint, pos.timestamp_ms));
            self.floors.insert(b, pos.floors.clone());
            self.unbuilt.remove(&b);
            self.rotations.insert(b + 1, pos.next_rotation.clone());
        }
    }

    /// Restart from the persisted position of the last block built.
    pub fn restore(&mut self, pos: &ChainPosition) {
        self.take(pos);
        self.last = self.last.max(pos.index);
    }

    /// Continue from block `c` of the certified chain: every decided checkpoint up to it is
    /// dropped, and if ours were behind, K_c becomes the next to pass (`advance` moves to it).
    pub fn rejoin_at(&mut self, pos: &ChainPosition) {
        let c = pos.index;
        self.unbuilt = self.unbuilt.split_off(&(c + 1));
        if self.last < c {
            self.take(pos);
            self.last = c - 1;
        }
    }

    /// Block `b` is built: drop its decided checkpoint (returned) and every entry older than
    /// `keep_from`, always keeping b - 1 and b (the base and floors of the next candidates).
    pub fn trim(&mut self, b: BlockIndex, keep_from: BlockIndex) -> Option<DecidedCheckpoint> {
        let k = self.unbuilt.remove(&b);
        let from = keep_from.min(b.saturating_sub(1));
        self.ids = self.ids.split_off(&from);
        self.floors = self.floors.split_off(&from);
        self.rotations = self.rotations.split_off(&keep_from.min(b));
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members() -> Membership {
        Membership::new([0; 32], 1, (1..=4u8).map(|i| [i; 32]).collect())
    }

    fn checkpoint(b: BlockIndex, view: View, floors: Floors) -> BatchHeader {
        BatchHeader {
            epoch: 1,
            proposer: [1; 32],
            seq: 0,
            base: [0; 32],
            kind: BatchKind::Checkpoint {
                index: b,
                view,
                timestamp_ms: 100 * b,
                floors,
            },
            access: vec![],
            txs_root: [0; 32],
            weight: 0,
        }
    }

    #[test]
    fn genesis_is_index_0_with_a_fresh_rotation_for_block_1() {
        let c = CheckpointChain::new(1);
        assert_eq!((c.last(), c.next()), (0, 1));
        assert_eq!(c.id(0), Some([0; 32]));
        assert!(c.floors(0).is_empty());
        assert_eq!(c.rotation(1), Rotation::fresh(1));
        assert!(c.leader(&members(), 1, 0).is_some());
        assert!(c.leader(&members(), 2, 0).is_none());
    }

    #[test]
    fn advance_passes_only_consecutive_decisions() {
        let m = members();
        let mut c = CheckpointChain::new(1);
        let k2 = checkpoint(2, 0, vec![]);
        c.decide(2, k2.clone(), vec![]);
        assert_eq!(c.advance(&m), Vec::<BlockIndex>::new());
        assert_eq!(c.last(), 0);
        c.decide(1, checkpoint(1, 0, vec![]), vec![]);
        assert_eq!(c.advance(&m), vec![1, 2]);
        assert_eq!(c.last(), 2);
        assert_eq!(c.id_and_time(2), Some((k2.id(), 200)));
        assert!(c.leader(&m, 3, 0).is_some());
    }

    #[test]
    fn the_decided_view_moves_the_next_rotation() {
        let m = members();
        let (mut a, mut b) = (CheckpointChain::new(1), CheckpointChain::new(1));
        a.decide(1, checkpoint(1, 0, vec![]), vec![]);
        b.decide(1, checkpoint(1, 2, vec![]), vec![]);
        a.advance(&m);
        b.advance(&m);
        let view0 = Rotation::fresh(1).after(&m, 1, 0);
        let view2 = Rotation::fresh(1).after(&m, 1, 2);
        assert_eq!(a.rotation(2), view0);
        assert_eq!(b.rotation(2), view2);
    }

    #[test]
    fn trim_keeps_the_last_two_indexes_and_returns_the_built_checkpoint() {
        let m = members();
        let mut c = CheckpointChain::new(1);
        for b in 1..=5 {
            c.decide(b, checkpoint(b, 0, vec![([1; 32], b)]), vec![]);
        }
        c.advance(&m);
        let k = c.trim(5, 10).expect("decided");
        assert_eq!(k.floors(), &[([1; 32], 5)]);
        assert!(c.decided(5).is_none());
        assert_eq!(c.id(3), None);
        assert!(c.id(4).is_some() && c.id(5).is_some());
        assert_eq!(c.floors(4), &[([1; 32], 4)]);
        assert!(c.decided(4).is_some(), "unbuilt blocks are not trimmed");
    }

    #[test]
    fn a_candidate_extends_the_chain_only_from_its_last_checkpoint() {
        let m = members();
        let mut c = CheckpointChain::new(1);
        let k1 = checkpoint(1, 0, vec![([1; 32], 2)]);
        c.decide(1, k1.clone(), vec![]);
        c.advance(&m);
        let mut next = checkpoint(2, 0, vec![([1; 32], 2)]);
        assert!(
            !c.extended_by(&next, 2, &m, 1_000, 0),
            "names K_0 as its base"
        );
        next.base = k1.id();
        assert!(c.extended_by(&next, 2, &m, 1_000, 0));
        assert!(
            !c.extended_by(&next, 2, &m, 150, 0),
            "a timestamp ahead of now"
        );
        assert!(!c.extended_by(&next, 3, &m, 1_000, 0), "another index");
        let mut lower = next.clone();
        lower.kind = checkpoint(2, 0, vec![([1; 32], 1)]).kind;
        assert!(
            !c.extended_by(&lower, 2, &m, 1_000, 0),
            "floors that go down"
        );
    }

    #[test]
    fn two_ids_of_one_seq_above_the_floor_are_an_equivocation() {
        let r = |p: u8, seq: Seq, id: u8| DepRef {
            proposer: [p; 32],
            kind: DepKind::Txs { seq },
            id: [id; 32],
        };
        let mut deps = vec![
            r(1, 0, 1),
            r(1, 0, 2),
            r(1, 1, 3),
            r(2, 4, 4),
            r(2, 4, 5),
            r(2, 4, 6),
        ];
        deps.sort();
        let k = DecidedCheckpoint {
            header: checkpoint(1, 0, vec![([1; 32], 1)]),
            deps,
        };
        assert_eq!(k.equivocations(), vec![r(2, 4, 4), r(2, 4, 5), r(2, 4, 6)]);
        assert_eq!(
            k.waits_for().count(),
            4,
            "seq 0 of proposer 1 is below its floor"
        );
    }

    #[test]
    fn a_taken_block_does_not_overwrite_own_decisions() {
        let m = members();
        let mut c = CheckpointChain::new(1);
        let k1 = checkpoint(1, 0, vec![]);
        c.decide(1, k1.clone(), vec![]);
        c.advance(&m);
        let other = ChainPosition {
            index: 1,
            checkpoint: [9; 32],
            timestamp_ms: 1,
            next_rotation: Rotation::fresh(1),
            floors: vec![],
        };
        c.take(&other);
        assert_eq!(c.id(1), Some(k1.id()));
        let later = ChainPosition { index: 3, ..other };
        c.rejoin_at(&later);
        assert_eq!(c.last(), 2, "K_3 becomes the next to pass");
        assert_eq!(c.advance(&m), vec![3]);
        assert_eq!(c.id(3), Some([9; 32]));
    }
}
