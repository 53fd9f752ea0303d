//! Agreed floors (docs/consensus.md, "Agreed floors").
//!
//! Every checkpoint K_b carries, per proposer p, a floor F_p(b): a Txs command of p with a seq
//! below F_p(b) that has not landed in a block before b never lands; it is void and executes
//! nothing, like a Noop. Because the floors are part of the agreed checkpoint, every replica
//! applies the same cut-off to the same block, whatever it knows locally. A replica's own
//! decided record counts references below F_p(K_built) as decided and prunes its marks there,
//! and nowhere else: a floor derived from local progress alone (the watermark minus a margin)
//! could pass a seq on one replica while another of that seq's commands still commits on others
//! (a Byzantine proposer's second id), and the two would then build different blocks.
//!
//! Invariants:
//! - floors never go down from one checkpoint to the next (a correct replica replies only to a
//!   candidate whose floors extend those of K_(b-1));
//! - a floor is at most what a correct replica knows decided: a correct replica replies only
//!   to a candidate whose floor for p is at most max(its watermark of p, F_p(b-1)), so among the
//!   q replies of K_b at least one correct replica knew every seq below F_p(b) decided;
//! - floors are well formed: members only, sorted by validator, each once, no zero entries.

use crate::membership::Membership;
pub use crate::types::Floors;
use crate::types::{DepKind, DepRef, Seq, ValidatorId};

/// The floor of `p` (0 if absent).
pub fn floor_of(floors: &[(ValidatorId, Seq)], p: &ValidatorId) -> Seq {
    floors
        .binary_search_by(|(v, _)| v.cmp(p))
        .map(|i| floors[i].1)
        .unwrap_or(0)
}

/// Whether a dependency is a Txs command below its proposer's floor: void in the block these
/// floors belong to (nothing to wait or recover for).
pub fn voids(floors: &[(ValidatorId, Seq)], d: &DepRef) -> bool {
    match d.kind {
        DepKind::Txs { seq } => seq < floor_of(floors, &d.proposer),
        DepKind::Ckpt { .. } => false,
    }
}

/// Members only, strictly sorted, no zero entries.
pub fn well_formed(floors: &[(ValidatorId, Seq)], membership: &Membership) -> bool {
    floors.len() <= membership.n()
        && floors.windows(2).all(|w| w[0].0 < w[1].0)
        && floors.iter().all(|(p, s)| *s > 0 && membership.contains(p))
}

/// No proposer's floor is below its floor in `prev`.
pub fn extends(floors: &[(ValidatorId, Seq)], prev: &[(ValidatorId, Seq)]) -> bool {
    prev.iter().all(|(p, s)| floor_of(floors, p) >= *s)
}

/// Floors a checkpoint leader proposes: per member, `proposed(p)` (its watermark minus the
/// retention margin), never below `prev`.
pub fn propose(
    membership: &Membership,
    prev: &[(ValidatorId, Seq)],
    proposed: impl Fn(&ValidatorId) -> Seq,
) -> Floors {
    let mut floors: Floors = membership
        .validators()
        .iter()
        .map(|p| (*p, proposed(p).max(floor_of(prev, p))))
        .filter(|(_, s)| *s > 0)
        .collect();
    floors.sort_unstable();
    floors
}

/// Whether a candidate's floors are acceptable to a replica whose watermarks are `watermark`:
/// well formed, extending `prev`, and each at most max(watermark, previous floor).
pub fn acceptable(
    floors: &[(ValidatorId, Seq)],
    prev: &[(ValidatorId, Seq)],
    membership: &Membership,
    watermark: impl Fn(&ValidatorId) -> Seq,
) -> bool {
    well_formed(floors, membership)
        && extends(floors, prev)
        && floors
            .iter()
            .all(|(p, s)| *s <= watermark(p).max(floor_of(prev, p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members() -> Membership {
        Membership::new([0; 32], 0, vec![[1; 32], [2; 32], [3; 32], [4; 32]])
    }

    #[test]
    fn a_proposal_never_goes_below_the_previous_floors_and_leaves_zeros_out() {
        let m = members();
        let prev = vec![([2; 32], 10)];
        let f = propose(&m, &prev, |p| if *p == [1; 32] { 7 } else { 0 });
        assert_eq!(f, vec![([1; 32], 7), ([2; 32], 10)]);
        assert!(well_formed(&f, &m));
        assert!(extends(&f, &prev));
        assert_eq!(floor_of(&f, &[3; 32]), 0);
    }

    #[test]
    fn a_replica_refuses_floors_that_go_down_are_malformed_or_pass_what_it_knows() {
        let m = members();
        let prev = vec![([2; 32], 10)];
        let wm = |p: &ValidatorId| if *p == [1; 32] { 20 } else { 5 };
        assert!(acceptable(&[([1; 32], 20), ([2; 32], 10)], &prev, &m, wm));
        assert!(
            !acceptable(&[([1; 32], 21), ([2; 32], 10)], &prev, &m, wm),
            "above the watermark"
        );
        assert!(
            !acceptable(&[([1; 32], 20)], &prev, &m, wm),
            "drops p2's floor"
        );
        assert!(
            !acceptable(&[([2; 32], 10), ([1; 32], 20)], &prev, &m, wm),
            "unsorted"
        );
        assert!(
            !acceptable(&[([9; 32], 1), ([2; 32], 10)], &prev, &m, wm),
            "not a member"
        );
        assert!(
            !acceptable(&[([1; 32], 0), ([2; 32], 10)], &prev, &m, wm),
            "zero entry"
        );
        assert!(
            acceptable(&prev, &prev, &m, |_| 0),
            "keeping the previous floors is fine even for a replica behind them"
        );
    }
}
