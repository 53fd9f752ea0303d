//! The replier's memory of what proposers announced: the first header replied to per slot (a
//! proposer's seq, or a checkpoint index and view), which a second, different header for the
//! same slot convicts of equivocation; and checkpoint candidates that came before their turn,
//! held (a few per signer) until the previous checkpoint is decided.

use crate::crypto::Signed;
use crate::misbehaviour::Proof;
use crate::types::*;
use crate::wire::SignedBatch;
use std::collections::BTreeMap;

/// What a proposer may announce once: one batch per seq, one candidate per (index, view).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Slot {
    /// A proposer's seq.
    Seq(ValidatorId, Seq),
    /// A checkpoint index and view.
    Ckpt(BlockIndex, View),
}

impl Slot {
    /// The slot a header takes.
    pub fn of(h: &BatchHeader) -> Slot {
        match h.kind {
            BatchKind::Txs => Slot::Seq(h.proposer, h.seq),
            BatchKind::Checkpoint { index, view, .. } => Slot::Ckpt(index, view),
        }
    }
}

/// First headers and early candidates.
#[derive(Debug, Default)]
pub struct Headers {
    first: BTreeMap<Slot, Signed<BatchHeader>>,
    early: BTreeMap<BlockIndex, Vec<(ValidatorId, SignedBatch)>>,
}

impl Headers {
    /// The first header replied to in `slot`.
    pub fn first(&self, slot: &Slot) -> Option<&Signed<BatchHeader>> {
        self.first.get(slot)
    }

    /// The equivocation `h` proves, if another header was replied to in its slot first.
    pub fn conflict(&self, h: &Signed<BatchHeader>) -> Option<Proof> {
        let first = self.first.get(&Slot::of(&h.body))?;
        (first.body != h.body).then(|| Proof::BatchEquivocation(first.clone(), h.clone()))
    }

    /// We reply to `h` (the first in its slot, or the same again).
    pub fn replied(&mut self, h: &Signed<BatchHeader>) {
        self.first
            .entry(Slot::of(&h.body))
            .or_insert_with(|| h.clone());
    }

    /// Hold candidate `b` from `from` until its index's turn: at most `per_signer` per signer
    /// and `per_signer * n` in all per index, so that no member crowds out the others'.
    pub fn hold_early(
        &mut self,
        index: BlockIndex,
        from: ValidatorId,
        b: SignedBatch,
        per_signer: usize,
        n: usize,
    ) {
        let held = self.early.entry(index).or_default();
        let signer = b.header.body.proposer;
        let of_signer = held
            .iter()
            .filter(|(_, x)| x.header.body.proposer == signer)
            .count();
        if held.len() < per_signer * n
            && of_signer < per_signer
            && !held.iter().any(|(_, x)| x.id() == b.id())
        {
            held.push((from, b));
        }
    }

    /// The candidates held for `next` (its turn came); those for earlier indexes are dropped.
    pub fn take_early(&mut self, next: BlockIndex) -> Vec<(ValidatorId, SignedBatch)> {
        self.early = self.early.split_off(&next);
        self.early.remove(&next).unwrap_or_default()
    }

    /// Block `b` is built: forget checkpoint slots up to it, and seqs below each proposer's
    /// `floor`.
    pub fn trim(&mut self, b: BlockIndex, floor: impl Fn(&ValidatorId) -> Seq) {
        self.first.retain(|s, _| match s {
            Slot::Seq(p, seq) => *seq >= floor(p),
            Slot::Ckpt(i, _) => *i > b,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::InsecureTestCrypto;

    fn header(p: u8, seq: Seq, root: u8) -> Signed<BatchHeader> {
        let h = BatchHeader {
            epoch: 0,
            proposer: [p; 32],
            seq,
            base: [0; 32],
            kind: BatchKind::Txs,
            access: vec![],
            txs_root: [root; 32],
            weight: 0,
        };
        Signed::sign(h, &[0; 32], &InsecureTestCrypto([p; 32]))
    }

    fn candidate(p: u8, index: BlockIndex, view: View) -> SignedBatch {
        let h = BatchHeader {
            epoch: 0,
            proposer: [p; 32],
            seq: 0,
            base: [0; 32],
            kind: BatchKind::Checkpoint {
                index,
                view,
                timestamp_ms: 0,
                floors: vec![],
            },
            access: vec![],
            txs_root: [0; 32],
            weight: 0,
        };
        SignedBatch {
            header: Signed::sign(h, &[0; 32], &InsecureTestCrypto([p; 32])),
            txs: Txs::default(),
        }
    }

    #[test]
    fn a_second_header_for_a_slot_is_an_equivocation() {
        let mut h = Headers::default();
        let (a, b) = (header(1, 3, 1), header(1, 3, 2));
        assert!(h.conflict(&b).is_none());
        h.replied(&a);
        h.replied(&b);
        assert_eq!(h.first(&Slot::Seq([1; 32], 3)), Some(&a), "the first stays");
        assert!(h.conflict(&a).is_none());
        assert!(matches!(h.conflict(&b), Some(Proof::BatchEquivocation(..))));
        h.trim(0, |_| 3);
        assert!(h.first(&Slot::Seq([1; 32], 3)).is_some());
        h.trim(0, |_| 4);
        assert!(h.first(&Slot::Seq([1; 32], 3)).is_none());
    }

    #[test]
    fn early_candidates_are_bounded_per_signer_and_dropped_when_stale() {
        let mut h = Headers::default();
        for view in 0..5 {
            h.hold_early(3, [2; 32], candidate(2, 3, view), 2, 4);
        }
        h.hold_early(3, [2; 32], candidate(3, 3, 0), 2, 4);
        h.hold_early(3, [2; 32], candidate(3, 3, 0), 2, 4);
        h.hold_early(2, [2; 32], candidate(3, 2, 0), 2, 4);
        assert_eq!(h.take_early(3).len(), 3, "two of signer 2, one of signer 3");
        assert!(
            h.take_early(2).is_empty(),
            "index 2 went with index 3's turn"
        );
    }
}
