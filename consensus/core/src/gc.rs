//! Garbage collection bookkeeping: the compact decided record (protocol.md, "Garbage collection").
//!
//! Invariants:
//! - an entry leaves the log only once known decided (a Noop, a losing candidate, or a command
//!   with `after(c) < b` once block `b` is final);
//! - per proposer, `watermark(p)` is the smallest seq for which no decided command is known; every
//!   seq below it has a decided command. An announce at or below the watermark, or of any command
//!   recorded as decided, is answered with `Decided`, never with a fresh reply: a replayed
//!   announce after GC cannot make a correct replica equivocate its reply;
//! - exact `(proposer, seq, id)` marks are kept until `seq + retain < watermark`; below that floor
//!   every reference is treated as decided (see docs/consensus.md, "Decided record floor");
//! - a replica rejoining from the chain ([`DecidedRecord::settle`]) may also learn whole seqs as
//!   settled without their ids: every reference to such a seq counts as decided, like one below
//!   the floor.

use crate::types::{CommandId, Seq, ValidatorId};
use std::collections::{BTreeMap, BTreeSet};

/// The decided record.
#[derive(Clone, Debug, Default)]
pub struct DecidedRecord {
    marks: BTreeSet<(ValidatorId, Seq, CommandId)>,
    decided_seqs: BTreeMap<ValidatorId, BTreeSet<Seq>>,
    watermark: BTreeMap<ValidatorId, Seq>,
    floor: BTreeMap<ValidatorId, Seq>,
    settled: BTreeMap<ValidatorId, BTreeSet<Seq>>,
    retain: u64,
}

impl DecidedRecord {
    /// A record keeping exact marks `retain` seqs below the watermark.
    pub fn new(retain: u64) -> Self {
        DecidedRecord {
            retain,
            ..Default::default()
        }
    }
    /// Next seq of `p` not known decided.
    pub fn watermark(&self, p: &ValidatorId) -> Seq {
        self.watermark.get(p).copied().unwrap_or(0)
    }
    /// Below this seq every reference of `p` counts as decided.
    pub fn floor(&self, p: &ValidatorId) -> Seq {
        self.floor.get(p).copied().unwrap_or(0)
    }
    /// Is this exact command known decided?
    pub fn is_decided(&self, p: &ValidatorId, seq: Seq, id: &CommandId) -> bool {
        seq < self.floor(p) || self.marks.contains(&(*p, seq, *id)) || self.is_settled(p, seq)
    }
    /// Was this whole seq learnt as settled (see [`DecidedRecord::settle`])?
    fn is_settled(&self, p: &ValidatorId, seq: Seq) -> bool {
        self.settled.get(p).is_some_and(|s| s.contains(&seq))
    }
    /// Seqs of `p` above the watermark known decided (for a settled-state claim).
    pub fn decided_above_watermark(&self, p: &ValidatorId) -> impl Iterator<Item = Seq> + '_ {
        self.decided_seqs.get(p).into_iter().flatten().copied()
    }
    /// Raise the floor of `p` to `floor` and count every seq in `above` as decided, whatever the
    /// command id: what a replica rejoining from the chain learns from f+1 validators' settled
    /// claims (docs/consensus.md, "Rejoining from the chain"). Returns the marks pruned.
    pub fn settle(
        &mut self,
        p: ValidatorId,
        floor: Seq,
        above: &BTreeSet<Seq>,
    ) -> Vec<(ValidatorId, Seq, CommandId)> {
        let fl = self.floor.entry(p).or_insert(0);
        let mut pruned = Vec::new();
        if floor > *fl {
            let lo = (p, *fl, [0u8; 32]);
            let hi = (p, floor, [0u8; 32]);
            pruned = self.marks.range(lo..hi).copied().collect();
            for m in &pruned {
                self.marks.remove(m);
            }
            *fl = floor;
        }
        let fl = *fl;
        let settled = self.settled.entry(p).or_default();
        settled.extend(above.iter().copied().filter(|s| *s >= fl));
        let seqs = self.decided_seqs.entry(p).or_default();
        seqs.extend(settled.iter().copied());
        let wm = self.watermark.entry(p).or_insert(0);
        *wm = (*wm).max(fl);
        seqs.retain(|s| *s >= *wm);
        while seqs.remove(wm) {
            *wm += 1;
        }
        settled.retain(|s| *s >= fl);
        pruned
    }
    /// Has any command with this (proposer, seq) been decided?
    pub fn seq_decided(&self, p: &ValidatorId, seq: Seq) -> bool {
        seq < self.watermark(p)
            || self
                .decided_seqs
                .get(p)
                .map(|s| s.contains(&seq))
                .unwrap_or(false)
    }
    /// Record a decision. `counts` says whether the command is known to be real (its header,
    /// signed by the proposer, is held): only real commands advance the watermark, so a fake
    /// dependency id decided Noop can never push the watermark over a real, undecided command.
    /// Returns the marks pruned below the new floor (to delete from storage).
    pub fn mark(
        &mut self,
        p: ValidatorId,
        seq: Seq,
        id: CommandId,
        counts: bool,
    ) -> Vec<(ValidatorId, Seq, CommandId)> {
        if seq < self.floor(&p) {
            return vec![];
        }
        self.marks.insert((p, seq, id));
        if !counts {
            return vec![];
        }
        let seqs = self.decided_seqs.entry(p).or_default();
        seqs.insert(seq);
        let wm = self.watermark.entry(p).or_insert(0);
        while seqs.remove(wm) {
            *wm += 1;
        }
        let new_floor = wm.saturating_sub(self.retain);
        let fl = self.floor.entry(p).or_insert(0);
        let mut pruned = Vec::new();
        if new_floor > *fl {
            let lo = (p, *fl, [0u8; 32]);
            let hi = (p, new_floor, [0u8; 32]);
            pruned = self.marks.range(lo..hi).copied().collect();
            for m in &pruned {
                self.marks.remove(m);
            }
            *fl = new_floor;
            if let Some(s) = self.settled.get_mut(&p) {
                s.retain(|x| *x >= new_floor);
            }
        }
        pruned
    }
    /// Number of exact marks held (memory check).
    pub fn len(&self) -> usize {
        self.marks.len()
    }
    /// Is the record empty?
    pub fn is_empty(&self) -> bool {
        self.marks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_advances_over_gaps_only_when_filled() {
        let mut r = DecidedRecord::new(2);
        let p = [1; 32];
        r.mark(p, 1, [1; 32], true);
        r.mark(p, 0, [7; 32], false);
        assert_eq!(
            r.watermark(&p),
            0,
            "a fake id does not advance the watermark"
        );
        assert_eq!(r.watermark(&p), 0);
        assert!(r.is_decided(&p, 1, &[1; 32]));
        assert!(!r.is_decided(&p, 1, &[2; 32]));
        r.mark(p, 0, [0; 32], true);
        assert_eq!(r.watermark(&p), 2);
        assert_eq!(r.floor(&p), 0);
        let pruned = r.mark(p, 2, [2; 32], true);
        assert_eq!(r.watermark(&p), 3);
        assert_eq!(r.floor(&p), 1);
        assert_eq!(pruned, vec![(p, 0, [0; 32]), (p, 0, [7; 32])]);
        assert!(
            r.is_decided(&p, 0, &[9; 32]),
            "below the floor everything counts as decided"
        );
        assert!(r.seq_decided(&p, 2));
    }

    #[test]
    fn settling_raises_floor_and_watermark_and_counts_whole_seqs() {
        let mut r = DecidedRecord::new(64);
        let p = [1; 32];
        r.mark(p, 0, [0; 32], true);
        r.mark(p, 12, [12; 32], true);
        let pruned = r.settle(p, 10, &[11, 13, 20].into_iter().collect());
        assert_eq!(pruned, vec![(p, 0, [0; 32])]);
        assert_eq!(r.floor(&p), 10);
        assert_eq!(
            r.watermark(&p),
            10,
            "seq 10 is neither below the floor nor settled"
        );
        assert!(r.is_decided(&p, 9, &[7; 32]), "below the floor");
        assert!(
            r.is_decided(&p, 11, &[7; 32]),
            "a settled seq counts for any id"
        );
        assert!(!r.is_decided(&p, 10, &[7; 32]));
        assert!(
            !r.is_decided(&p, 12, &[7; 32]),
            "an exact mark counts only for its id"
        );
        r.mark(p, 10, [10; 32], true);
        assert_eq!(
            r.watermark(&p),
            14,
            "10 decided, 11 settled, 12 marked, 13 settled"
        );
        assert!(r.seq_decided(&p, 20));
        assert!(
            r.settle(p, 5, &Default::default()).is_empty(),
            "a floor never goes down"
        );
        assert_eq!(r.floor(&p), 10);
    }
}
