//! Membership view of one epoch: validators, f, quorums, leaders.
//!
//! Invariants (protocol.md, "Quorums"): `f = floor((n-1)/3)`, `q = ceil((n+f+1)/2)`, so any two
//! quorums intersect in at least `f+1` validators, hence in at least one correct one. The
//! view-change join threshold is `f+1`.

use crate::types::{Digest, Epoch, ValidatorId, View};
use alloc::{
    collections::{btree_map::Entry, BTreeMap},
    vec::Vec,
};

/// The validator set of one epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    /// Chain genesis hash (domain separation).
    pub genesis: Digest,
    /// Epoch number.
    pub epoch: Epoch,
    validators: Vec<ValidatorId>,
    index: BTreeMap<ValidatorId, usize>,
    fixed_checkpoint_leader: bool,
}

impl Membership {
    /// Build a membership view. `validators` order is the leader rotation order; duplicates are
    /// removed keeping the first occurrence.
    pub fn new(genesis: Digest, epoch: Epoch, validators: Vec<ValidatorId>) -> Self {
        let mut index = BTreeMap::new();
        let mut vs = Vec::new();
        for v in validators {
            if let Entry::Vacant(e) = index.entry(v) {
                e.insert(vs.len());
                vs.push(v);
            }
        }
        assert!(!vs.is_empty(), "a validator set is never empty; qed");
        Membership {
            genesis,
            epoch,
            validators: vs,
            index,
            fixed_checkpoint_leader: false,
        }
    }
    /// Number of validators.
    pub fn n(&self) -> usize {
        self.validators.len()
    }
    /// Max Byzantine validators tolerated.
    pub fn f(&self) -> usize {
        (self.n() - 1) / 3
    }
    /// Quorum size ceil((n+f+1)/2).
    pub fn q(&self) -> usize {
        (self.n() + self.f() + 2) / 2
    }
    /// f + 1: any this many validators include a correct one (the view-change join threshold,
    /// and how many must vouch for a block or a settled claim).
    pub fn one_correct(&self) -> usize {
        self.f() + 1
    }
    /// Validators in rotation order.
    pub fn validators(&self) -> &[ValidatorId] {
        &self.validators
    }
    /// Is `v` a member?
    pub fn contains(&self, v: &ValidatorId) -> bool {
        self.index.contains_key(v)
    }
    /// Index of a member.
    pub fn index_of(&self, v: &ValidatorId) -> Option<usize> {
        self.index.get(v).copied()
    }
    /// leader(c, v) = V[(index(proposer) + v) mod n]; a non-member proposer rotates from 0.
    pub fn leader_cmd(&self, proposer: &ValidatorId, view: View) -> ValidatorId {
        let base = self.index_of(proposer).unwrap_or(0);
        self.validators[(base + view as usize) % self.n()]
    }
    /// The leader-based baseline (benchmarks only): the first validator leads every checkpoint
    /// in view 0, as a classic PBFT primary does (see [`crate::rotation::Rotation`]); view changes
    /// still rotate. Every validator of
    /// a network must use the same setting.
    pub fn with_fixed_checkpoint_leader(mut self) -> Self {
        self.fixed_checkpoint_leader = true;
        self
    }
    /// Whether [`Membership::with_fixed_checkpoint_leader`] is in force.
    pub fn fixed_checkpoint_leader(&self) -> bool {
        self.fixed_checkpoint_leader
    }
    /// n validators [0; 32], [1; 32], ... of epoch 0 (unit tests).
    #[cfg(test)]
    pub(crate) fn for_tests(n: u8) -> Self {
        Membership::new([0; 32], 0, (0..n).map(|i| [i; 32]).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_of(n: u8) -> Membership {
        Membership::for_tests(n)
    }

    #[test]
    fn quorum_examples_from_design() {
        for (n, f, q) in [
            (1, 0, 1),
            (4, 1, 3),
            (7, 2, 5),
            (10, 3, 7),
            (100, 33, 67),
            (31, 10, 21),
        ] {
            let mm = set_of(n);
            assert_eq!((mm.f(), mm.q()), (f, q), "n={n}");
        }
    }

    #[test]
    fn quorums_intersect_in_f_plus_one() {
        for n in 1..=60u8 {
            let mm = set_of(n);
            assert!(2 * mm.q() > mm.n() + mm.f(), "n={n}");
            assert!(
                mm.q() <= mm.n() - mm.f(),
                "n={n}: a quorum of correct validators exists"
            );
        }
    }

    #[test]
    fn leaders_rotate() {
        let mm = set_of(4);
        assert_eq!(mm.leader_cmd(&[2; 32], 0), [2; 32]);
        assert_eq!(mm.leader_cmd(&[2; 32], 3), [1; 32]);
    }
}
