//! Checkpoint-leader rotation that skips validators which missed their turn (protocol.md,
//! "Checkpoints", leader rotation; docs/consensus.md, "Checkpoint leaders skip a validator that
//! missed its turn").
//!
//! With a plain rotation, leader(b, v) = V[(b + v) mod n], a crashed validator still gets the
//! view-0 turn of every n-th block, and every such block waits for a full checkpoint view change.
//! The rotation here suspends a validator from view-0 turns after it missed one: block b's
//! checkpoint K_b was announced in view v > 0, so the view-0 leader of b did not get a candidate
//! decided. Only the view-0 leader is charged: after a stall (more than f validators down) the
//! leaders of the views in between were often correct and merely without a quorum, and charging
//! them all would hand every checkpoint to one validator for a while; a dead validator is
//! charged anyway when its own view-0 turn comes. Each consecutive miss doubles the suspension (exponential back-off, as
//! leader-reputation schemes do: Carousel, Cohen et al., FC 2022); leading a decided candidate
//! clears the record. In the fixed-leader baseline the same rule gives a sticky primary: the
//! first validator not suspended leads every block.
//!
//! Invariants:
//! - The rotation in force for block b + 1 is a pure function of the rotation for b and the view
//!   of the candidate that K_b's consensus decided (part of the agreed value), so every correct
//!   replica computes the same leaders; blocks carry it so that replicas that adopt a block or
//!   start from the chain learn it too.
//! - Views above 0 rotate through every validator from the view-0 leader, suspended or not, so a
//!   view change still reaches a correct leader after at most f + 1 views.

use crate::membership::Membership;
use crate::types::{BlockIndex, Epoch, ValidatorId, View};
use alloc::collections::BTreeMap;
use codec::{Decode, Encode};

/// Suspension length after the first miss, in rounds of n blocks; doubles with each consecutive
/// miss. Each retry of a validator that is still down costs one checkpoint view change, so the
/// first retry comes only after 8 of its turns (32 blocks, about half a minute, at n = 4): over
/// real nodes 2 rounds brought the crashed validator back within 10 s and spoiled the recovery.
/// Being skipped costs a correct validator nothing but its view-0 checkpoint turns.
pub const FIRST_SUSPENSION_ROUNDS: u64 = 8;
/// Cap on the doubling (a validator that never comes back is retried every n * 8 * 2^16 blocks).
pub const MAX_DOUBLINGS: u8 = 16;

/// One validator's record of missed checkpoint turns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Suspension {
    /// Consecutive turns missed.
    pub misses: u8,
    /// Skipped for view 0 of every block up to and including this index.
    pub through: BlockIndex,
}

/// The checkpoint-leader rotation in force for one block index of one epoch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct Rotation {
    /// The epoch whose validator order the indices below refer to.
    pub epoch: Epoch,
    /// Validators (by rotation index) with missed turns on record.
    pub suspended: BTreeMap<u32, Suspension>,
}

impl Rotation {
    /// A rotation with nobody suspended.
    pub fn fresh(epoch: Epoch) -> Self {
        Rotation {
            epoch,
            suspended: BTreeMap::new(),
        }
    }

    /// Rotation index of the view-0 leader of block `b`: the first validator, from the plain
    /// rotation's (from V[0] with a fixed checkpoint leader), that is not suspended at `b`.
    fn first(&self, m: &Membership, b: BlockIndex) -> usize {
        let n = m.n();
        let base = if m.fixed_checkpoint_leader() {
            0
        } else {
            (b % n as u64) as usize
        };
        (0..n)
            .map(|k| (base + k) % n)
            .find(|i| !self.is_suspended(*i, b))
            .unwrap_or(base)
    }

    fn is_suspended(&self, i: usize, b: BlockIndex) -> bool {
        self.suspended
            .get(&(i as u32))
            .map(|s| b <= s.through)
            .unwrap_or(false)
    }

    /// leader(b, v): the view-0 leader, then every validator in rotation order.
    pub fn leader(&self, m: &Membership, b: BlockIndex, view: View) -> ValidatorId {
        let n = m.n();
        let i = (self.first(m, b) + (view as u64 % n as u64) as usize) % n;
        m.validators()[i]
    }

    /// The validators skipped for view-0 turns at block `b`, in rotation order.
    pub fn skipped<'a>(
        &'a self,
        m: &'a Membership,
        b: BlockIndex,
    ) -> impl Iterator<Item = &'a ValidatorId> + 'a {
        m.validators()
            .iter()
            .enumerate()
            .filter(move |(i, _)| self.is_suspended(*i, b))
            .map(|(_, v)| v)
    }

    /// The rotation in force for block `b + 1`, given that K_b is the candidate announced in
    /// `decided_view` (by leader(b, decided_view) under this rotation).
    pub fn after(&self, m: &Membership, b: BlockIndex, decided_view: View) -> Rotation {
        let n = m.n();
        let mut next = self.clone();
        next.epoch = m.epoch;
        let first = self.first(m, b);
        let winner = (first + (decided_view as u64 % n as u64) as usize) % n;
        if decided_view > 0 && first != winner {
            let i = first;
            let misses = next
                .suspended
                .get(&(i as u32))
                .map(|s| s.misses)
                .unwrap_or(0)
                .saturating_add(1);
            let rounds = FIRST_SUSPENSION_ROUNDS << (misses - 1).min(MAX_DOUBLINGS);
            next.suspended.insert(
                i as u32,
                Suspension {
                    misses,
                    through: b.saturating_add(rounds.saturating_mul(n as u64)),
                },
            );
        }
        next.suspended.remove(&(winner as u32));
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_of(n: u8) -> Membership {
        Membership::for_tests(n)
    }

    #[test]
    fn plain_rotation_without_misses() {
        let mm = set_of(4);
        let r = Rotation::fresh(0);
        assert_eq!(r.leader(&mm, 5, 0), [1; 32]);
        assert_eq!(r.leader(&mm, 5, 1), [2; 32]);
        assert_eq!(r.leader(&mm, 5, 7), [0; 32]);
        let fixed = set_of(4).with_fixed_checkpoint_leader();
        assert_eq!(r.leader(&fixed, 5, 0), [0; 32]);
        assert_eq!(r.leader(&fixed, 9, 1), [1; 32]);
        assert_eq!(r.after(&mm, 5, 0), r, "a view-0 decision changes nothing");
    }

    #[test]
    fn a_missed_turn_is_skipped_and_backs_off() {
        let mm = set_of(4);
        // Block 5: V1 silent, V2 leads view 1.
        let r = Rotation::fresh(0).after(&mm, 5, 1);
        assert_eq!(r.skipped(&mm, 6).collect::<Vec<_>>(), vec![&[1; 32]]);
        // Its next turn (block 9) goes to the next validator in view 0.
        assert_eq!(r.leader(&mm, 9, 0), [2; 32]);
        assert_eq!(r.leader(&mm, 9, 1), [3; 32]);
        // Suspended for FIRST_SUSPENSION_ROUNDS rounds of 4 blocks, then tried again.
        let back = 5 + FIRST_SUSPENSION_ROUNDS * 4;
        assert_eq!(r.skipped(&mm, back).count(), 1);
        assert_eq!(r.leader(&mm, back, 0), [2; 32]);
        assert_eq!(r.leader(&mm, back + 4, 0), [1; 32]);
        // A second miss doubles the suspension.
        let r2 = r.after(&mm, back + 4, 1);
        assert_eq!(r2.suspended[&1].misses, 2);
        assert_eq!(
            r2.suspended[&1].through,
            back + 4 + 2 * FIRST_SUSPENSION_ROUNDS * 4
        );
        // Leading a decided candidate clears the record.
        let later = back + 4 + 2 * FIRST_SUSPENSION_ROUNDS * 4 + 4;
        let r3 = r2.after(&mm, later, 0);
        assert_eq!(r3.leader(&mm, later, 0), [1; 32]);
        assert!(!r3.suspended.contains_key(&1));
    }

    #[test]
    fn only_the_view_0_leader_is_charged() {
        let mm = set_of(4);
        // Block 5 decided in view 2: V1 missed its turn; V2 (view 1) may just have lacked a
        // quorum, as after a stall.
        let r = Rotation::fresh(0).after(&mm, 5, 2);
        assert_eq!(r.suspended.keys().copied().collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn fixed_leader_becomes_sticky_after_a_miss() {
        let mm = set_of(4).with_fixed_checkpoint_leader();
        let r = Rotation::fresh(0).after(&mm, 3, 1);
        let back = 3 + FIRST_SUSPENSION_ROUNDS * 4;
        for b in 4..=back {
            assert_eq!(r.leader(&mm, b, 0), [1; 32], "block {b}");
        }
        assert_eq!(
            r.leader(&mm, back + 1, 0),
            [0; 32],
            "the old primary is retried"
        );
    }

    #[test]
    fn every_view_above_zero_reaches_every_validator() {
        let mm = set_of(7);
        let mut r = Rotation::fresh(0);
        for b in 1..5 {
            r = r.after(&mm, b, 1);
        }
        let leaders: std::collections::BTreeSet<_> = (0..7).map(|v| r.leader(&mm, 5, v)).collect();
        assert_eq!(leaders.len(), 7);
    }

    #[test]
    fn everyone_suspended_falls_back_to_plain_rotation() {
        let mm = set_of(4);
        let all = Rotation {
            epoch: 0,
            suspended: (0..4)
                .map(|i| {
                    (
                        i,
                        Suspension {
                            misses: 1,
                            through: 10,
                        },
                    )
                })
                .collect(),
        };
        assert_eq!(all.leader(&mm, 2, 0), Rotation::fresh(0).leader(&mm, 2, 0));
        assert_eq!(all.leader(&mm, 2, 1), Rotation::fresh(0).leader(&mm, 2, 1));
    }
}
