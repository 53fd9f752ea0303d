//! Rejoining from the certified chain: settled claims and how f+1 of them are combined
//! (docs/consensus.md, "Rejoining from the chain").
//!
//! A replica further behind than its peers keep finished blocks takes its block position from a
//! finalized chain block `c` (certified by q signatures) and its per-proposer decided record from
//! what validators claim is *settled* at `c`: a seq of proposer p is settled at c when every
//! command of p with that seq is decided and, if it committed, is in block c or earlier.
//!
//! Invariants:
//! - a correct claim only lists settled seqs: below `min(watermark, lowest seq still waiting for
//!   a block)`, or decided above that and not waiting for a block after c;
//! - the combination takes, per proposer, the (f+1)-th highest floor and the seqs f+1 claims
//!   vouch for, so at least one correct validator vouches for everything it returns, whatever
//!   f Byzantine claims say;
//! - claims are bounded: one entry per member, at most [`MAX_SETTLED_ABOVE`] seqs each.

use crate::gc::DecidedRecord;
use crate::membership::Membership;
use crate::types::{Seq, ValidatorId};
use crate::wire::{SettledSeqs, MAX_SETTLED_ABOVE};
use std::collections::{BTreeMap, BTreeSet};

/// Our claim at block c. `unsettled` holds, per proposer, the seqs of commands decided but
/// landing after c (waiting for a block, or in a block after c).
pub fn claim(
    membership: &Membership,
    record: &DecidedRecord,
    unsettled: &BTreeMap<ValidatorId, BTreeSet<Seq>>,
) -> Vec<SettledSeqs> {
    let none = BTreeSet::new();
    membership
        .validators()
        .iter()
        .filter_map(|p| {
            let waiting = unsettled.get(p).unwrap_or(&none);
            let wm = record.watermark(p);
            let floor = waiting.first().map_or(wm, |s| (*s).min(wm));
            let above: Vec<Seq> = (floor..wm)
                .chain(record.decided_above_watermark(p))
                .filter(|s| *s > floor && !waiting.contains(s))
                .take(MAX_SETTLED_ABOVE)
                .collect();
            (floor > 0 || !above.is_empty()).then_some(SettledSeqs {
                proposer: *p,
                floor,
                above,
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
                && s.above.len() <= MAX_SETTLED_ABOVE
        })
}

/// Combine the claims of at least f+1 distinct validators: per proposer, the (f+1)-th highest
/// floor and the seqs above it that f+1 claims count as settled (below their own floor or
/// listed), searched up to [`MAX_SETTLED_ABOVE`] seqs above the combined floor.
pub fn combine(
    membership: &Membership,
    claims: &BTreeMap<ValidatorId, Vec<SettledSeqs>>,
) -> BTreeMap<ValidatorId, (Seq, BTreeSet<Seq>)> {
    let need = membership.f() + 1;
    let mut out = BTreeMap::new();
    if claims.len() < need {
        return out;
    }
    for p in membership.validators() {
        let of_p: Vec<Option<&SettledSeqs>> = claims
            .values()
            .map(|c| c.iter().find(|s| s.proposer == *p))
            .collect();
        let mut floors: Vec<Seq> = of_p.iter().map(|s| s.map_or(0, |s| s.floor)).collect();
        floors.sort_unstable_by(|a, b| b.cmp(a));
        let floor = floors[need - 1];
        let mut counts: BTreeMap<Seq, usize> = BTreeMap::new();
        let end = floor.saturating_add(MAX_SETTLED_ABOVE as Seq);
        for s in of_p.iter().flatten() {
            let listed: BTreeSet<Seq> = s.above.iter().copied().collect();
            let below_own = floor..s.floor.min(end);
            for seq in below_own.chain(listed.into_iter().filter(|x| *x >= s.floor)) {
                if seq >= floor && seq < end {
                    *counts.entry(seq).or_default() += 1;
                }
            }
        }
        let above: BTreeSet<Seq> = counts
            .into_iter()
            .filter(|(_, c)| *c >= need)
            .map(|(s, _)| s)
            .collect();
        if floor > 0 || !above.is_empty() {
            out.insert(*p, (floor, above));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m() -> Membership {
        Membership::new([0; 32], 0, (1..=4u8).map(|i| [i; 32]).collect())
    }
    fn s(p: u8, floor: Seq, above: &[Seq]) -> SettledSeqs {
        SettledSeqs {
            proposer: [p; 32],
            floor,
            above: above.to_vec(),
        }
    }

    #[test]
    fn a_claim_stops_at_the_first_seq_still_waiting_for_a_block() {
        let m = m();
        let mut r = DecidedRecord::new(64);
        let p = [1; 32];
        for seq in [0, 1, 2, 3, 5, 7] {
            r.mark(p, seq, [seq as u8; 32], true);
        }
        let waiting = BTreeMap::from([(p, BTreeSet::from([2]))]);
        let c = claim(&m, &r, &waiting);
        assert_eq!(c, vec![s(1, 2, &[3, 5, 7])]);
        assert_eq!(claim(&m, &r, &BTreeMap::new()), vec![s(1, 4, &[5, 7])]);
    }

    #[test]
    fn f_byzantine_claims_cannot_raise_what_is_taken_as_settled() {
        let m = m();
        // f = 1: validators 1 and 2 correct, 3 lies high.
        let claims = BTreeMap::from([
            ([1; 32], vec![s(1, 10, &[12]), s(2, 4, &[])]),
            ([2; 32], vec![s(1, 11, &[12, 13])]),
            ([3; 32], vec![s(1, 500, &[]), s(2, 900, &[]), s(4, 70, &[])]),
        ]);
        let c = combine(&m, &claims);
        // Proposer 1: floors 500, 11, 10 -> 11; 12 vouched by three, 13 by two.
        assert_eq!(c[&[1; 32]], (11, BTreeSet::from([12, 13])));
        // Proposer 2: floors 900, 4, 0 -> 4.
        assert_eq!(c[&[2; 32]].0, 4);
        // Proposer 4: only the liar -> nothing.
        assert!(!c.contains_key(&[4; 32]));
        let one = BTreeMap::from([([3; 32], vec![s(1, 500, &[])])]);
        assert!(combine(&m, &one).is_empty(), "f claims are not enough");
    }

    #[test]
    fn malformed_claims_are_refused() {
        let m = m();
        assert!(well_formed(&[s(1, 3, &[4])], &m));
        assert!(!well_formed(&[s(1, 3, &[]), s(1, 4, &[])], &m));
        assert!(!well_formed(&[s(9, 3, &[])], &m));
        assert!(!well_formed(
            &[s(1, 3, &vec![7; MAX_SETTLED_ABOVE + 1])],
            &m
        ));
    }
}
