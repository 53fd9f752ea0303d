//! The decided record: which commands are known decided, compactly (protocol.md, "Garbage
//! collection"). Every rule reads it and only its own methods change it; [`DecidedRecord::record`]
//! and [`DecidedRecord::take_floors`] return the storage operations that persist what they change.
//!
//! Invariants:
//! - an entry leaves the log only once known decided (a Noop, a losing candidate, or a command
//!   with `after(c) < b` once block `b` is final);
//! - per proposer, `watermark(p)` is the smallest seq for which no decided command is known; every
//!   seq below it has a decided command. An announce at or below the watermark, or of any command
//!   recorded as decided, is answered with `Decided`, never with a fresh reply: a replayed
//!   announce after GC cannot make a correct replica equivocate its reply;
//! - exact `(proposer, seq, id)` marks are kept down to the floor, and below it every reference
//!   counts as decided. The floor is agreed state, never local progress: it is the floor of the
//!   last block built, adopted or rejoined at ([`crate::floors`]), raised by the replica when it
//!   takes that block. It only rises; after a restart it comes back from the block meta, and the
//!   watermark starts from it (the marks below it are gone);
//! - a checkpoint leader proposes `watermark - retain` as the next floor (the margin covers
//!   commands still in flight: correct replicas reply only W seqs above a proposer's lowest
//!   undecided one);
//! - above the floor, decidedness is per command id: a Byzantine proposer may get two commands
//!   with one seq decided (one Noop, one committed), so a seq is never "decided" as a whole.

use crate::storage::{Key, Record, StorageOp};
use crate::types::{CommandId, Floors, Seq, ValidatorId};
use std::collections::{BTreeMap, BTreeSet};

/// The decided record.
#[derive(Clone, Debug, Default)]
pub struct DecidedRecord {
    /// Exact marks; the value says whether the command counts for the watermark.
    marks: BTreeMap<(ValidatorId, Seq, CommandId), bool>,
    decided_seqs: BTreeMap<ValidatorId, BTreeSet<Seq>>,
    watermark: BTreeMap<ValidatorId, Seq>,
    floor: BTreeMap<ValidatorId, Seq>,
    retain: u64,
}

impl DecidedRecord {
    /// A record whose proposed floors stay `retain` seqs below the watermark.
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
    /// The floor of `p` this replica would propose in a checkpoint: `retain` below the watermark.
    pub fn proposed_floor(&self, p: &ValidatorId) -> Seq {
        self.watermark(p).saturating_sub(self.retain)
    }
    /// Is this exact command known decided?
    pub fn is_decided(&self, p: &ValidatorId, seq: Seq, id: &CommandId) -> bool {
        seq < self.floor(p) || self.marks.contains_key(&(*p, seq, *id))
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
    /// Decided seqs of `p` above its watermark.
    pub fn decided_above_watermark(&self, p: &ValidatorId) -> usize {
        self.decided_seqs.get(p).map_or(0, |s| s.len())
    }
    /// Whether the exact mark of this command counts for the watermark (false if absent).
    pub fn counts(&self, p: &ValidatorId, seq: Seq, id: &CommandId) -> bool {
        self.marks.get(&(*p, seq, *id)).copied().unwrap_or(false)
    }
    /// Whether this exact command is marked decided without counting (its header unseen).
    pub fn uncounted(&self, p: &ValidatorId, seq: Seq, id: &CommandId) -> bool {
        self.marks.get(&(*p, seq, *id)) == Some(&false)
    }
    /// The marks of `p` that count (real commands, their header held), in seq order.
    pub fn counted_marks(&self, p: &ValidatorId) -> impl Iterator<Item = (Seq, CommandId)> + '_ {
        self.marks
            .range((*p, 0, [0u8; 32])..=(*p, Seq::MAX, [0xff; 32]))
            .filter(|(_, counts)| **counts)
            .map(|((_, s, id), _)| (*s, *id))
    }
    /// Record a decision. `counts` says whether the command is known to be real (its header,
    /// signed by the proposer, is held): only real commands advance the watermark, so a fake
    /// dependency id decided Noop can never push the watermark over a real, undecided command.
    /// Below the floor nothing is recorded.
    pub fn mark(&mut self, p: ValidatorId, seq: Seq, id: CommandId, counts: bool) {
        if seq < self.floor(&p) {
            return;
        }
        let c = self.marks.entry((p, seq, id)).or_insert(false);
        *c |= counts;
        if counts {
            self.seq_decided_now(p, seq);
        }
    }
    /// Some real command of `p` at `seq` is decided: the watermark moves over every seq decided
    /// without a gap.
    fn seq_decided_now(&mut self, p: ValidatorId, seq: Seq) {
        let seqs = self.decided_seqs.entry(p).or_default();
        seqs.insert(seq);
        let wm = self.watermark.entry(p).or_insert(0);
        while seqs.remove(wm) {
            *wm += 1;
        }
    }
    /// Record a decision and return the write that persists it (with whether it counts so far);
    /// nothing below the floor.
    pub fn record(
        &mut self,
        p: ValidatorId,
        seq: Seq,
        id: CommandId,
        counts: bool,
    ) -> Option<StorageOp> {
        if seq < self.floor(&p) {
            return None;
        }
        self.mark(p, seq, id, counts);
        let counts = self.counts(&p, seq, &id);
        Some(StorageOp::Put(
            Key::Decided(p, seq, id),
            Record::Marked(counts),
        ))
    }
    /// Raise every floor to a taken block's agreed floors; returns the writes deleting the marks
    /// pruned under them (the floors themselves are stored with the block meta).
    pub fn take_floors(&mut self, floors: &Floors) -> Vec<StorageOp> {
        let mut ops = vec![];
        for (p, floor) in floors {
            ops.extend(
                self.raise_floor(*p, *floor)
                    .into_iter()
                    .map(|(p, s, i)| StorageOp::Delete(Key::Decided(p, s, i))),
            );
        }
        ops
    }
    /// Record that some real command of `p` with this seq is decided, without knowing which id
    /// (f+1 validators vouch for the seq, each with a counted decision there, but not all for
    /// the same id: a Byzantine proposer's two commands). Advances the watermark like a counted
    /// mark; is_decided stays per id.
    pub fn mark_seq(&mut self, p: ValidatorId, seq: Seq) {
        if seq < self.floor(&p) || seq < self.watermark(&p) {
            return;
        }
        self.seq_decided_now(p, seq);
    }
    /// Raise the floor of `p` (never lowers it): marks below are dropped and the watermark moves
    /// up to at least the floor. Used when a block is built or adopted, on restart and when
    /// rejoining from the chain, always with that block's agreed floor. Returns the marks pruned.
    pub fn raise_floor(
        &mut self,
        p: ValidatorId,
        floor: Seq,
    ) -> Vec<(ValidatorId, Seq, CommandId)> {
        let fl = self.floor.entry(p).or_insert(0);
        if floor <= *fl {
            return vec![];
        }
        let lo = (p, *fl, [0u8; 32]);
        let hi = (p, floor, [0u8; 32]);
        let pruned: Vec<_> = self.marks.range(lo..hi).map(|(k, _)| *k).collect();
        for m in &pruned {
            self.marks.remove(m);
        }
        *fl = floor;
        let seqs = self.decided_seqs.entry(p).or_default();
        let wm = self.watermark.entry(p).or_insert(0);
        *wm = (*wm).max(floor);
        seqs.retain(|s| *s >= *wm);
        while seqs.remove(wm) {
            *wm += 1;
        }
        pruned
    }
    /// The marks of `p` in the `span` seqs from its watermark on whose seq has no counted
    /// decision: commands decided here without their header, which hold the watermark back
    /// until some peer shows the header (see [`Message::Header`](crate::wire::Message)).
    pub fn uncounted_from_watermark(&self, p: &ValidatorId, span: u64) -> Vec<(Seq, CommandId)> {
        let wm = self.watermark(p);
        let decided = self.decided_seqs.get(p);
        self.marks
            .range((*p, wm, [0u8; 32])..(*p, wm.saturating_add(span), [0u8; 32]))
            .filter(|((_, s, _), _)| !decided.is_some_and(|d| d.contains(s)))
            .map(|((_, s, id), _)| (*s, *id))
            .collect()
    }
    /// The ids decided at (p, seq) that this record still marks.
    pub fn ids_in_slot(&self, p: &ValidatorId, seq: Seq) -> impl Iterator<Item = CommandId> + '_ {
        self.marks
            .range((*p, seq, [0u8; 32])..=(*p, seq, [0xff; 32]))
            .map(|((_, _, id), _)| *id)
    }
    /// The exact marks of `p`: (seq, id, counts for the watermark).
    pub fn marks_of(&self, p: &ValidatorId) -> Vec<(Seq, CommandId, bool)> {
        self.marks
            .range((*p, 0, [0u8; 32])..=(*p, Seq::MAX, [0xff; 32]))
            .map(|((_, s, id), c)| (*s, *id, *c))
            .collect()
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
        r.mark(p, 2, [2; 32], true);
        assert_eq!(r.watermark(&p), 3);
        assert_eq!(
            r.floor(&p),
            0,
            "local progress alone never raises the floor"
        );
        assert_eq!(r.proposed_floor(&p), 1);
        let pruned = r.raise_floor(p, r.proposed_floor(&p));
        assert_eq!(r.floor(&p), 1);
        assert_eq!(pruned, vec![(p, 0, [0; 32]), (p, 0, [7; 32])]);
        assert!(
            r.is_decided(&p, 0, &[9; 32]),
            "below the floor everything counts as decided"
        );
        assert!(r.seq_decided(&p, 2));
    }

    #[test]
    fn only_seqs_without_a_counted_decision_wait_for_a_header() {
        let mut r = DecidedRecord::new(2);
        let p = [1; 32];
        r.mark(p, 0, [0; 32], true);
        r.mark(p, 1, [7; 32], false);
        r.mark(p, 1, [8; 32], false);
        r.mark(p, 2, [9; 32], false);
        r.mark(p, 2, [2; 32], true);
        r.mark(p, 3, [3; 32], false);
        r.mark(p, 9, [4; 32], false);
        assert_eq!(
            r.uncounted_from_watermark(&p, 3),
            vec![(1, [7; 32]), (1, [8; 32]), (3, [3; 32])],
            "seq 2 has a counted decision; seq 9 is beyond the span"
        );
        r.mark(p, 1, [8; 32], true);
        assert_eq!(r.watermark(&p), 3, "the header of one id at seq 1 suffices");
        assert_eq!(r.uncounted_from_watermark(&p, 3), vec![(3, [3; 32])]);
    }

    #[test]
    fn a_vouched_seq_advances_the_watermark_without_deciding_an_id() {
        let mut r = DecidedRecord::new(2);
        let p = [1; 32];
        r.mark(p, 0, [0; 32], true);
        r.mark(p, 1, [7; 32], false);
        r.mark(p, 2, [2; 32], true);
        assert_eq!(r.watermark(&p), 1, "seq 1 holds only an uncounted mark");
        r.mark_seq(p, 1);
        assert_eq!(r.watermark(&p), 3);
        assert!(
            !r.is_decided(&p, 1, &[8; 32]),
            "no id at seq 1 became decided"
        );
        assert!(r.is_decided(&p, 1, &[7; 32]));
    }

    #[test]
    fn a_raised_floor_restores_the_watermark_and_marks_stay_per_id() {
        let mut r = DecidedRecord::new(64);
        let p = [1; 32];
        r.mark(p, 0, [0; 32], true);
        r.mark(p, 12, [12; 32], true);
        r.mark(p, 11, [99; 32], false);
        let pruned = r.raise_floor(p, 10);
        assert_eq!(pruned, vec![(p, 0, [0; 32])]);
        assert_eq!(r.floor(&p), 10);
        assert_eq!(
            r.watermark(&p),
            10,
            "seq 10 is neither below the floor nor marked"
        );
        assert!(r.is_decided(&p, 9, &[7; 32]), "below the floor");
        assert!(
            !r.is_decided(&p, 12, &[7; 32]),
            "above it, a mark counts only for its id"
        );
        assert_eq!(
            r.counted_marks(&p).collect::<Vec<_>>(),
            vec![(12, [12; 32])],
            "a fake id decided Noop does not count"
        );
        r.mark(p, 10, [10; 32], true);
        r.mark(p, 11, [11; 32], true);
        assert_eq!(r.watermark(&p), 13);
        assert!(r.raise_floor(p, 5).is_empty(), "a floor never goes down");
        assert_eq!(r.floor(&p), 10);
    }
}
