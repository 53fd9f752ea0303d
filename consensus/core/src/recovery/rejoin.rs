//! Rejoining from the certified chain: settled claims and how f+1 of them are combined
//! (docs/consensus.md, "Rejoining from the chain").
//!
//! A replica further behind than its peers keep finished blocks takes its block position from a
//! finalized chain block `c` (certified by q signatures) and raises its decided record to what
//! validators claim is *settled* at `c`: a command is settled at c when it is decided and, if it
//! committed, it is in block c or earlier.
//!
//! Invariants:
//! - a correct claim lists only settled commands: below its decided-record floor (where every
//!   correct replica already counts every reference as decided) and not waiting for a block
//!   after c, and above it exact (seq, id) marks of real commands that are not waiting either;
//!   never a whole seq (a Byzantine proposer can get two ids of one seq decided);
//! - the combination takes, per proposer, the (f+1)-th highest floor and the commands f+1 claims
//!   vouch for, so at least one correct validator vouches for everything it returns, whatever f
//!   Byzantine claims say;
//! - claims are bounded: one entry per member, at most [`MAX_SETTLED_MARKS`] commands each.

use crate::decided::DecidedRecord;
use crate::membership::Membership;
use crate::types::{CommandId, Seq, ValidatorId};
use crate::wire::{SettledSeqs, MAX_SETTLED_MARKS};
use std::collections::{BTreeMap, BTreeSet};

/// Commands decided but not settled at the block asked about (waiting for a block, or in a
/// finished block after it).
#[derive(Default)]
pub struct Unsettled {
    /// Their ids.
    pub ids: BTreeSet<CommandId>,
    /// The lowest of their seqs, per proposer.
    pub lowest: BTreeMap<ValidatorId, Seq>,
}

impl Unsettled {
    /// Note one.
    pub fn add(&mut self, proposer: ValidatorId, seq: Seq, id: CommandId) {
        self.ids.insert(id);
        let l = self.lowest.entry(proposer).or_insert(seq);
        *l = (*l).min(seq);
    }
}

/// Our claim.
pub fn claim(
    membership: &Membership,
    record: &DecidedRecord,
    unsettled: &Unsettled,
) -> Vec<SettledSeqs> {
    membership
        .validators()
        .iter()
        .filter_map(|p| {
            let floor = record
                .floor(p)
                .min(unsettled.lowest.get(p).copied().unwrap_or(Seq::MAX));
            let decided: Vec<(Seq, CommandId)> = record
                .counted_marks(p)
                .filter(|(s, id)| *s >= floor && !unsettled.ids.contains(id))
                .take(MAX_SETTLED_MARKS)
                .collect();
            (floor > 0 || !decided.is_empty()).then_some(SettledSeqs {
                proposer: *p,
                floor,
                decided,
            })
        })
        .collect()
}

/// Whether a received claim is within bounds: members only, each once, bounded lists.
pub fn well_formed(proposers: &[SettledSeqs], membership: &Membership) -> bool {
    let mut seen = BTreeSet::new();
    proposers.len() <= membership.n()
        && proposers.iter().all(|s| {
            membership.contains(&s.proposer)
                && seen.insert(s.proposer)
                && s.decided.len() <= MAX_SETTLED_MARKS
        })
}

/// A command of a known proposer: (seq, id).
pub type Mark = (Seq, CommandId);

/// What the claims establish about one proposer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Combined {
    /// The (f+1)-th highest floor.
    pub floor: Seq,
    /// Commands at or above it that f+1 claims count as settled.
    pub decided: Vec<(Seq, CommandId)>,
    /// The lowest few commands some claim lists but fewer than f+1 vouch for (a proposer's two
    /// ids of one seq, each held by different validators): their decisions are worth fetching,
    /// each comes with its own certificate.
    pub unvouched: Vec<(Seq, CommandId)>,
    /// Seqs at or above the floor that f+1 claims show decided with some command, though not
    /// f+1 with the same one (a Byzantine proposer's two ids, each counted by different
    /// validators), or that the proposer's own claim lists. One of the f+1 is correct and
    /// counted a real command there; a correct proposer lists only its one command of that seq
    /// once decided. Either way the seq is decided for the watermark (which needs some decided
    /// command per seq, not a given id); no id is taken as decided on this ground, and a
    /// Byzantine proposer's claim can only move the watermark over its own commands.
    pub seqs: Vec<Seq>,
}

/// Most unvouched commands returned per proposer.
pub const MAX_UNVOUCHED: usize = 8;

/// Combine the claims of at least f+1 distinct validators: per proposer, the (f+1)-th highest
/// floor, and the commands at or above it that f+1 claims count as settled (listed, or below the
/// claimer's own floor).
pub fn combine(
    membership: &Membership,
    claims: &BTreeMap<ValidatorId, Vec<SettledSeqs>>,
) -> BTreeMap<ValidatorId, Combined> {
    let need = membership.f() + 1;
    let mut out = BTreeMap::new();
    if claims.len() < need {
        return out;
    }
    for p in membership.validators() {
        let of_p: Vec<(Seq, BTreeSet<(Seq, CommandId)>)> = claims
            .values()
            .map(|c| match c.iter().find(|s| s.proposer == *p) {
                Some(s) => (s.floor, s.decided.iter().copied().collect()),
                None => (0, BTreeSet::new()),
            })
            .collect();
        let mut floors: Vec<Seq> = of_p.iter().map(|(f, _)| *f).collect();
        floors.sort_unstable_by(|a, b| b.cmp(a));
        let floor = floors[need - 1];
        let candidates: BTreeSet<(Seq, CommandId)> = of_p
            .iter()
            .flat_map(|(_, d)| d.iter().copied())
            .filter(|(s, _)| *s >= floor)
            .collect();
        let (decided, unvouched): (Vec<Mark>, Vec<Mark>) = candidates.into_iter().partition(|c| {
            of_p.iter()
                .filter(|(their_floor, listed)| c.0 < *their_floor || listed.contains(c))
                .count()
                >= need
        });
        let decided_seqs: BTreeSet<Seq> = decided.iter().map(|(s, _)| *s).collect();
        let listed_seqs: BTreeSet<Seq> = unvouched.iter().map(|(s, _)| *s).collect();
        // The proposer's own claim about its own seqs: a correct proposer counts only commands
        // it signed and knows decided, and has one command per seq.
        let own: BTreeSet<Seq> = claims
            .get(p)
            .and_then(|c| c.iter().find(|s| s.proposer == *p))
            .map(|s| s.decided.iter().map(|(seq, _)| *seq).collect())
            .unwrap_or_default();
        let seqs: Vec<Seq> = listed_seqs
            .into_iter()
            .filter(|s| !decided_seqs.contains(s))
            .filter(|s| {
                own.contains(s)
                    || of_p
                        .iter()
                        .filter(|(their_floor, listed)| {
                            *s < *their_floor || listed.iter().any(|(ls, _)| ls == s)
                        })
                        .count()
                        >= need
            })
            .collect();
        let unvouched: Vec<(Seq, CommandId)> = unvouched.into_iter().take(MAX_UNVOUCHED).collect();
        if floor > 0 || !decided.is_empty() || !unvouched.is_empty() || !seqs.is_empty() {
            out.insert(
                *p,
                Combined {
                    floor,
                    decided,
                    unvouched,
                    seqs,
                },
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members() -> Membership {
        Membership::new([0; 32], 0, (1..=4u8).map(|i| [i; 32]).collect())
    }
    fn settled(p: u8, floor: Seq, decided: &[(Seq, u8)]) -> SettledSeqs {
        SettledSeqs {
            proposer: [p; 32],
            floor,
            decided: decided.iter().map(|(s, i)| (*s, [*i; 32])).collect(),
        }
    }

    #[test]
    fn a_claim_lists_counted_marks_and_stops_below_what_waits_for_a_block() {
        let m = members();
        let mut r = DecidedRecord::new(2);
        let p = [1; 32];
        for seq in [0u64, 1, 2, 3, 5, 7] {
            r.mark(p, seq, [seq as u8; 32], true);
        }
        r.mark(p, 6, [66; 32], false);
        // Watermark 4; the block taken last agreed on floor 2.
        r.raise_floor(p, 2);
        let mut waiting = Unsettled::default();
        waiting.add(p, 5, [5; 32]);
        let c = claim(&m, &r, &waiting);
        assert_eq!(c, vec![settled(1, 2, &[(2, 2), (3, 3), (7, 7)])]);
        let mut waiting = Unsettled::default();
        waiting.add(p, 1, [1; 32]);
        assert_eq!(
            claim(&m, &r, &waiting),
            vec![settled(1, 1, &[(2, 2), (3, 3), (5, 5), (7, 7)])],
            "the floor drops below a command still waiting"
        );
    }

    #[test]
    fn a_seq_two_claims_list_under_different_ids_is_settled_but_neither_id_is() {
        let m = members();
        // f = 1. Proposer 4 equivocated at seq 13: validator 1 counted id 1, validator 2 id 2.
        let claims = BTreeMap::from([
            ([1; 32], vec![settled(4, 10, &[(13, 1), (14, 5)])]),
            ([2; 32], vec![settled(4, 10, &[(13, 2), (14, 5)])]),
        ]);
        let c = &combine(&m, &claims)[&[4; 32]];
        assert_eq!(c.decided, vec![(14, [5; 32])]);
        assert_eq!(
            c.seqs,
            vec![13],
            "f+1 show seq 13 decided with some command"
        );
        assert_eq!(c.unvouched, vec![(13, [1; 32]), (13, [2; 32])]);
        // The proposer's own claim moves the watermark over its own seq (its command was
        // decided Noop while nobody else held its header).
        let claims = BTreeMap::from([
            ([4; 32], vec![settled(4, 10, &[(13, 1)])]),
            ([2; 32], vec![settled(4, 10, &[])]),
        ]);
        assert_eq!(combine(&m, &claims)[&[4; 32]].seqs, vec![13]);
        // One claim alone (possibly Byzantine) settles nothing.
        let claims = BTreeMap::from([
            ([1; 32], vec![settled(4, 10, &[(13, 1)])]),
            ([2; 32], vec![settled(4, 10, &[])]),
        ]);
        assert!(combine(&m, &claims)[&[4; 32]].seqs.is_empty());
    }

    #[test]
    fn f_byzantine_claims_cannot_raise_what_is_taken_as_settled() {
        let m = members();
        // f = 1: validators 1 and 2 correct, 3 lies high.
        let claims = BTreeMap::from([
            (
                [1; 32],
                vec![settled(1, 10, &[(12, 12)]), settled(2, 4, &[])],
            ),
            ([2; 32], vec![settled(1, 11, &[(12, 12), (13, 13)])]),
            (
                [3; 32],
                vec![
                    settled(1, 500, &[(600, 1)]),
                    settled(2, 900, &[]),
                    settled(4, 70, &[(80, 8)]),
                ],
            ),
        ]);
        let c = combine(&m, &claims);
        // Proposer 1: floors 500, 11, 10 -> 11; (12) vouched by all three, (13) by two.
        assert_eq!(c[&[1; 32]].floor, 11);
        assert_eq!(c[&[1; 32]].decided, vec![(12, [12; 32]), (13, [13; 32])]);
        assert_eq!(c[&[1; 32]].unvouched, vec![(600, [1; 32])]);
        // Proposer 2: floors 900, 4, 0 -> 4.
        assert_eq!(c[&[2; 32]].floor, 4);
        assert!(c[&[2; 32]].decided.is_empty());
        // Proposer 4: only the liar -> nothing settled, one command worth asking about.
        assert_eq!(c[&[4; 32]].floor, 0);
        assert!(c[&[4; 32]].decided.is_empty());
        let one = BTreeMap::from([([3; 32], vec![settled(1, 500, &[])])]);
        assert!(combine(&m, &one).is_empty(), "f claims are not enough");
    }

    #[test]
    fn another_id_of_a_settled_seq_is_not_settled() {
        let m = members();
        let claims = BTreeMap::from([
            ([1; 32], vec![settled(1, 0, &[(5, 1)])]),
            ([2; 32], vec![settled(1, 0, &[(5, 1)])]),
            ([3; 32], vec![settled(1, 0, &[(5, 2)])]),
        ]);
        let c = &combine(&m, &claims)[&[1; 32]];
        assert_eq!(c.decided, vec![(5, [1; 32])]);
        assert_eq!(
            c.unvouched,
            vec![(5, [2; 32])],
            "its decision is fetched instead"
        );
    }

    #[test]
    fn malformed_claims_are_refused() {
        let m = members();
        assert!(well_formed(&[settled(1, 3, &[(4, 4)])], &m));
        assert!(!well_formed(&[settled(1, 3, &[]), settled(1, 4, &[])], &m));
        assert!(!well_formed(&[settled(9, 3, &[])], &m));
        let many: Vec<(Seq, u8)> = (0..=MAX_SETTLED_MARKS as u64).map(|i| (i, 1)).collect();
        assert!(!well_formed(&[settled(1, 3, &many)], &m));
    }
}
