//! Unit tests: every call, every error, and enactment at epoch boundaries.

use crate::{
    mock::*, CurrentEpoch, Error, Event, MemberChange, Members, MinMembers, PendingChanges,
};
use frame_support::{assert_noop, assert_ok};
use sp_runtime::DispatchError;

fn root() -> RuntimeOrigin {
    RuntimeOrigin::root()
}

fn member_accounts() -> Vec<u64> {
    Members::<Test>::get().iter().map(|(a, _)| *a).collect()
}

#[test]
fn genesis_sets_members_sorted_epoch_zero_and_thresholds() {
    new_test_ext_with(vec![(3, key(3)), (1, key(1)), (2, key(2)), (4, key(4))], 4).execute_with(
        || {
            assert_eq!(member_accounts(), vec![1, 2, 3, 4]);
            assert_eq!(CurrentEpoch::<Test>::get(), 0);
            assert_eq!(MinMembers::<Test>::get(), 4);
            assert_eq!(Membership::fault_tolerance(), 1);
            assert_eq!(Membership::quorum(), 3);
            let set = Membership::validator_set();
            assert_eq!(set.epoch, 0);
            assert_eq!(set.validators, vec![key(1), key(2), key(3), key(4)]);
            assert_eq!(Membership::next_validator_set(), None);
        },
    );
}

#[test]
#[should_panic(expected = "duplicate key in genesis")]
fn genesis_rejects_duplicate_keys() {
    new_test_ext_with(vec![(1, key(1)), (2, key(1))], 1);
}

#[test]
#[should_panic(expected = "fewer than min_members")]
fn genesis_rejects_too_few_members() {
    new_test_ext_with(vec![(1, key(1))], 4);
}

#[test]
fn calls_require_root() {
    new_test_ext().execute_with(|| {
        let signed = RuntimeOrigin::signed(1);
        assert_noop!(
            Membership::add_member(signed.clone(), 5, key(5)),
            DispatchError::BadOrigin
        );
        assert_noop!(
            Membership::remove_member(signed.clone(), 1),
            DispatchError::BadOrigin
        );
        assert_noop!(
            Membership::rotate_key(signed.clone(), 1, key(9)),
            DispatchError::BadOrigin
        );
        assert_noop!(
            Membership::set_min_members(signed, 1),
            DispatchError::BadOrigin
        );
    });
}

#[test]
fn add_member_is_queued_until_the_epoch_boundary() {
    new_test_ext().execute_with(|| {
        assert_ok!(Membership::add_member(root(), 5, key(5)));
        System::assert_last_event(
            Event::MemberAdditionScheduled {
                who: 5,
                key: key(5),
            }
            .into(),
        );
        assert_eq!(
            PendingChanges::<Test>::get().get(&5),
            Some(&MemberChange::Add(key(5)))
        );
        // Not enacted mid-epoch.
        run_to_block(9);
        assert_eq!(member_accounts(), vec![1, 2, 3, 4]);
        let next = Membership::next_validator_set().expect("a change is pending");
        assert_eq!(next.epoch, 1);
        assert_eq!(
            next.validators,
            vec![key(1), key(2), key(3), key(4), key(5)]
        );
        // Enacted in block 10, the first multiple of EpochLength.
        run_to_block(10);
        assert_eq!(member_accounts(), vec![1, 2, 3, 4, 5]);
        assert_eq!(CurrentEpoch::<Test>::get(), 1);
        assert!(PendingChanges::<Test>::get().is_empty());
        System::assert_last_event(
            Event::NewEpoch {
                epoch: 1,
                members: 5,
            }
            .into(),
        );
        assert_eq!(Membership::validator_set().epoch, 1);
        assert_eq!(Membership::next_validator_set(), None);
    });
}

#[test]
fn a_boundary_without_changes_keeps_the_epoch() {
    new_test_ext().execute_with(|| {
        run_to_block(30);
        assert_eq!(CurrentEpoch::<Test>::get(), 0);
        assert_eq!(member_accounts(), vec![1, 2, 3, 4]);
    });
}

#[test]
fn several_changes_are_enacted_together() {
    new_test_ext().execute_with(|| {
        assert_ok!(Membership::add_member(root(), 6, key(6)));
        assert_ok!(Membership::add_member(root(), 5, key(5)));
        assert_ok!(Membership::remove_member(root(), 2));
        assert_ok!(Membership::rotate_key(root(), 3, key(33)));
        assert_ok!(Membership::do_try_state());
        run_to_block(10);
        assert_ok!(Membership::do_try_state());
        assert_eq!(member_accounts(), vec![1, 3, 4, 5, 6]);
        assert_eq!(
            Membership::validator_keys(),
            vec![key(1), key(33), key(4), key(5), key(6)]
        );
        assert_eq!(CurrentEpoch::<Test>::get(), 1);
        assert_eq!(Membership::fault_tolerance(), 1);
        assert_eq!(Membership::quorum(), 4);
    });
}

#[test]
fn add_member_errors() {
    new_test_ext().execute_with(|| {
        assert_noop!(
            Membership::add_member(root(), 1, key(9)),
            Error::<Test>::AlreadyMember
        );
        assert_noop!(
            Membership::add_member(root(), 5, key(1)),
            Error::<Test>::DuplicateKey
        );
        assert_ok!(Membership::add_member(root(), 5, key(5)));
        // Scheduled already.
        assert_noop!(
            Membership::add_member(root(), 5, key(6)),
            Error::<Test>::AlreadyMember
        );
        // Key named by a pending change.
        assert_noop!(
            Membership::add_member(root(), 6, key(5)),
            Error::<Test>::DuplicateKey
        );
        assert_ok!(Membership::add_member(root(), 6, key(6)));
        assert_ok!(Membership::add_member(root(), 7, key(7)));
        assert_ok!(Membership::add_member(root(), 8, key(8)));
        // MaxMembers = 8.
        assert_noop!(
            Membership::add_member(root(), 9, key(9)),
            Error::<Test>::TooManyMembers
        );
    });
}

#[test]
fn remove_member_errors() {
    new_test_ext().execute_with(|| {
        assert_noop!(
            Membership::remove_member(root(), 9),
            Error::<Test>::NotMember
        );
        // MinMembers = 4 and the set has 4.
        assert_noop!(
            Membership::remove_member(root(), 1),
            Error::<Test>::TooFewMembers
        );
        assert_ok!(Membership::add_member(root(), 5, key(5)));
        assert_ok!(Membership::remove_member(root(), 1));
        System::assert_last_event(Event::MemberRemovalScheduled { who: 1 }.into());
        assert_noop!(
            Membership::remove_member(root(), 1),
            Error::<Test>::ChangeAlreadyPending
        );
        // Would go below 4 once both pending changes are counted.
        assert_noop!(
            Membership::remove_member(root(), 2),
            Error::<Test>::TooFewMembers
        );
        // A pending add is not yet a member.
        assert_noop!(
            Membership::remove_member(root(), 5),
            Error::<Test>::NotMember
        );
    });
}

#[test]
fn rotate_key_errors() {
    new_test_ext().execute_with(|| {
        assert_noop!(
            Membership::rotate_key(root(), 9, key(9)),
            Error::<Test>::NotMember
        );
        assert_noop!(
            Membership::rotate_key(root(), 1, key(2)),
            Error::<Test>::DuplicateKey
        );
        assert_noop!(
            Membership::rotate_key(root(), 1, key(1)),
            Error::<Test>::DuplicateKey
        );
        assert_ok!(Membership::rotate_key(root(), 1, key(11)));
        System::assert_last_event(
            Event::KeyRotationScheduled {
                who: 1,
                key: key(11),
            }
            .into(),
        );
        assert_noop!(
            Membership::rotate_key(root(), 1, key(12)),
            Error::<Test>::ChangeAlreadyPending
        );
        assert_noop!(
            Membership::rotate_key(root(), 2, key(11)),
            Error::<Test>::DuplicateKey
        );
        assert_noop!(
            Membership::remove_member(root(), 1),
            Error::<Test>::ChangeAlreadyPending
        );
        // Until the boundary the old key stays in force.
        assert_eq!(Membership::validator_keys()[0], key(1));
        run_to_block(10);
        assert_eq!(Membership::validator_keys()[0], key(11));
        // After enactment the old key is free again.
        assert_ok!(Membership::rotate_key(root(), 2, key(1)));
    });
}

#[test]
fn set_min_members_bounds() {
    new_test_ext().execute_with(|| {
        assert_noop!(
            Membership::set_min_members(root(), 0),
            Error::<Test>::InvalidMinimum
        );
        assert_noop!(
            Membership::set_min_members(root(), 5),
            Error::<Test>::InvalidMinimum
        );
        assert_ok!(Membership::set_min_members(root(), 3));
        System::assert_last_event(Event::MinMembersSet { min_members: 3 }.into());
        assert_ok!(Membership::remove_member(root(), 1));
        assert_noop!(
            Membership::remove_member(root(), 2),
            Error::<Test>::TooFewMembers
        );
    });
}

#[test]
fn dev_chain_minimum_of_one_allows_a_single_validator() {
    new_test_ext_with(vec![(1, key(1))], 1).execute_with(|| {
        assert_eq!(Membership::fault_tolerance(), 0);
        assert_eq!(Membership::quorum(), 1);
        assert_noop!(
            Membership::remove_member(root(), 1),
            Error::<Test>::TooFewMembers
        );
        assert_ok!(Membership::add_member(root(), 2, key(2)));
        run_to_block(10);
        assert_eq!(member_accounts(), vec![1, 2]);
        assert_ok!(Membership::remove_member(root(), 1));
        run_to_block(20);
        assert_eq!(member_accounts(), vec![2]);
        assert_eq!(CurrentEpoch::<Test>::get(), 2);
    });
}

// ---------------------------------------------------------------- misbehaviour reports

mod misbehaviour {
    use super::*;
    use crate::{MisbehaviourKind, Offences};
    use bsmr_consensus_core::{
        wire::{FinalityVote, Phase, PrePrepareBody, ReplyBody, VoteBody},
        DepKind, DepRef, InstanceId, Proof, Signed, Signer, Value,
    };
    use codec::Encode;
    use frame_support::pallet_prelude::*;
    use sp_core::{sr25519, Pair};
    #[allow(deprecated)]
    use sp_runtime::traits::ValidateUnsigned;

    /// A member's real sr25519 key pair (the proofs carry real signatures).
    fn pair(i: u8) -> sr25519::Pair {
        sr25519::Pair::from_seed(&[i; 32])
    }

    struct KeySigner(sr25519::Pair);
    impl Signer for KeySigner {
        fn public(&self) -> [u8; 32] {
            self.0.public().0
        }
        fn sign(&self, digest: &[u8; 32]) -> [u8; 64] {
            self.0.sign(digest).0
        }
    }

    /// Members 1..=4 holding the keys of `pair(1..=4)`.
    fn ext() -> sp_io::TestExternalities {
        new_test_ext_with(
            (1..=4u8)
                .map(|i| {
                    (
                        i as u64,
                        bsmr_primitives::AuthorityId::from(pair(i).public()),
                    )
                })
                .collect(),
            4,
        )
    }

    fn genesis() -> [u8; 32] {
        System::block_hash(0).0
    }

    fn finality_vote(i: u8, epoch: u64, number: u64, hash: u8) -> Signed<FinalityVote> {
        let body = FinalityVote {
            epoch,
            number,
            hash: [hash; 32],
            state_root: [0; 32],
        };
        Signed::sign(body, &genesis(), &KeySigner(pair(i)))
    }

    fn consensus_vote(i: u8, view: u32, value: u8) -> Signed<VoteBody> {
        let body = VoteBody {
            epoch: 0,
            inst: InstanceId::Ckpt(3),
            view,
            phase: Phase::Commit,
            value: [value; 32],
        };
        Signed::sign(body, &genesis(), &KeySigner(pair(i)))
    }

    fn bytes(p: &Proof) -> crate::ProofBytes {
        p.encode().try_into().unwrap()
    }

    fn report(p: &Proof) -> DispatchResult {
        Membership::report_misbehaviour(RuntimeOrigin::none(), bytes(p))
    }

    #[allow(deprecated)]
    fn validate(p: &Proof) -> TransactionValidity {
        Membership::validate_unsigned(
            TransactionSource::External,
            &crate::Call::report_misbehaviour { proof: bytes(p) },
        )
    }

    #[test]
    fn an_equivocation_is_recorded_once_per_epoch() {
        ext().execute_with(|| {
            let proof =
                Proof::FinalityEquivocation(finality_vote(2, 0, 7, 1), finality_vote(2, 0, 7, 2));
            let offender = bsmr_primitives::AuthorityId::from(pair(2).public());
            assert!(validate(&proof).is_ok());
            assert_ok!(report(&proof));
            assert_eq!(
                Offences::<Test>::get(0, &offender),
                Some(MisbehaviourKind::FinalityEquivocation)
            );
            System::assert_last_event(
                Event::MisbehaviourReported {
                    epoch: 0,
                    offender: offender.clone(),
                    kind: MisbehaviourKind::FinalityEquivocation,
                }
                .into(),
            );
            // Another proof against the same member in the same epoch adds nothing.
            let again = Proof::VoteEquivocation(consensus_vote(2, 0, 1), consensus_vote(2, 0, 2));
            assert_noop!(report(&again), Error::<Test>::AlreadyReported);
            assert_eq!(validate(&again), Err(InvalidTransaction::Stale.into()));
            // A proof against another member is its own record.
            let other = Proof::VoteEquivocation(consensus_vote(3, 0, 1), consensus_vote(3, 0, 2));
            assert_ok!(report(&other));
            assert_eq!(
                Offences::<Test>::get(0, bsmr_primitives::AuthorityId::from(pair(3).public())),
                Some(MisbehaviourKind::VoteEquivocation)
            );
        });
    }

    /// A view-0 pre-prepare of validator 1 for its batch 9, whose reply (by validator 2) names
    /// `dep` `times` times; `after` tells two of them apart.
    fn preprepare(after: u64, times: usize) -> PrePrepareBody {
        let dep = |p: u8, seq| DepRef {
            proposer: pair(p).public().0,
            kind: DepKind::Txs { seq },
            id: [p + seq as u8; 32],
        };
        let cmd = dep(1, 9);
        let reply = ReplyBody {
            epoch: 0,
            cmd,
            pos: 1,
            deps: vec![dep(2, 0); times],
            fence: 0,
        };
        PrePrepareBody {
            epoch: 0,
            inst: cmd.instance(),
            view: 0,
            value: Value::Deps {
                cmd: cmd.id,
                deps: vec![dep(2, 0)],
                after,
            },
            proof: vec![Signed::sign(reply, &genesis(), &KeySigner(pair(2)))],
            new_view: vec![],
        }
    }

    #[test]
    fn a_pre_prepare_equivocation_convicts_and_a_large_forged_one_is_refused() {
        ext().execute_with(|| {
            let leader = |body| Signed::sign(body, &genesis(), &KeySigner(pair(1)));
            let proof =
                Proof::PrePrepareEquivocation(leader(preprepare(0, 3)), leader(preprepare(1, 3)));
            assert!(validate(&proof).is_ok());
            assert_ok!(report(&proof));
            assert_eq!(
                Offences::<Test>::get(0, bsmr_primitives::AuthorityId::from(pair(1).public())),
                Some(MisbehaviourKind::PrePrepareEquivocation)
            );

            // About 200 kB whose one reply names one dependency 200,000 times (16 MB decoded),
            // signed by validator 3 in validator 4's name: refused on its signature (the core's
            // `ReportedProof` tests show that this comes before decoding).
            let forged = |after, times| {
                let mut pp =
                    Signed::sign(preprepare(after, times), &genesis(), &KeySigner(pair(3)));
                pp.signer = pair(4).public().0;
                pp
            };
            let big = Proof::PrePrepareEquivocation(forged(0, 200_000), forged(1, 1));
            assert!(big.encode().len() > 200_000);
            assert_eq!(validate(&big), Err(InvalidTransaction::BadProof.into()));
            assert_noop!(report(&big), Error::<Test>::InvalidProof);
        });
    }

    #[test]
    fn what_a_correct_validator_signs_convicts_nobody() {
        ext().execute_with(|| {
            // One vote per height, and votes in two views: both are what correct validators do.
            for proof in [
                Proof::FinalityEquivocation(finality_vote(1, 0, 7, 1), finality_vote(1, 0, 8, 2)),
                Proof::FinalityEquivocation(finality_vote(1, 0, 7, 1), finality_vote(1, 0, 7, 1)),
                Proof::VoteEquivocation(consensus_vote(1, 0, 1), consensus_vote(1, 1, 2)),
            ] {
                assert_noop!(report(&proof), Error::<Test>::InvalidProof);
                assert_eq!(validate(&proof), Err(InvalidTransaction::BadProof.into()));
            }
        });
    }

    #[test]
    fn forged_foreign_stale_and_malformed_proofs_are_rejected() {
        ext().execute_with(|| {
            // Validator 3 cannot sign a vote in validator 1's name.
            let mut forged = finality_vote(3, 0, 7, 2);
            forged.signer = pair(1).public().0;
            let proof = Proof::FinalityEquivocation(finality_vote(1, 0, 7, 1), forged);
            assert_noop!(report(&proof), Error::<Test>::InvalidProof);
            // A key that is not a member convicts nobody.
            let outsider =
                Proof::FinalityEquivocation(finality_vote(9, 0, 7, 1), finality_vote(9, 0, 7, 2));
            assert_noop!(report(&outsider), Error::<Test>::InvalidProof);
            // Signed for another chain (genesis) does not verify here.
            let other_chain = |hash: u8| {
                let body = FinalityVote {
                    epoch: 0,
                    number: 7,
                    hash: [hash; 32],
                    state_root: [0; 32],
                };
                Signed::sign(body, &[42; 32], &KeySigner(pair(1)))
            };
            let replayed = Proof::FinalityEquivocation(other_chain(1), other_chain(2));
            assert_noop!(report(&replayed), Error::<Test>::InvalidProof);
            // A proof of another epoch is stale.
            let stale =
                Proof::FinalityEquivocation(finality_vote(1, 5, 7, 1), finality_vote(1, 5, 7, 2));
            assert_noop!(report(&stale), Error::<Test>::StaleProof);
            // Bytes that are no proof.
            assert_noop!(
                Membership::report_misbehaviour(
                    RuntimeOrigin::none(),
                    vec![0xff; 50].try_into().unwrap()
                ),
                Error::<Test>::InvalidProof
            );
            // The call is unsigned only.
            let good =
                Proof::FinalityEquivocation(finality_vote(1, 0, 7, 1), finality_vote(1, 0, 7, 2));
            assert_noop!(
                Membership::report_misbehaviour(RuntimeOrigin::signed(1), bytes(&good)),
                DispatchError::BadOrigin
            );
            let _ = Membership::on_initialize(2);
            assert_eq!(Offences::<Test>::iter().count(), 0);
        });
    }
}

#[test]
fn the_state_check_fails_on_each_broken_invariant() {
    use frame_support::BoundedVec;
    type Breaks = (&'static str, Box<dyn Fn()>);
    let broken: Vec<Breaks> = vec![
        (
            "unsorted members",
            Box::new(|| {
                Members::<Test>::put(BoundedVec::truncate_from(vec![(2, key(2)), (1, key(1))]))
            }),
        ),
        (
            "a key held twice",
            Box::new(|| {
                Members::<Test>::mutate(|m| m[1].1 = key(1));
            }),
        ),
        (
            "fewer members than the minimum",
            Box::new(|| MinMembers::<Test>::put(5)),
        ),
        ("a minimum of 0", Box::new(|| MinMembers::<Test>::put(0))),
        (
            "a pending add of a member",
            Box::new(|| {
                PendingChanges::<Test>::mutate(|p| {
                    p.try_insert(1, MemberChange::Add(key(9))).unwrap();
                })
            }),
        ),
        (
            "a pending rotation to a member's key",
            Box::new(|| {
                PendingChanges::<Test>::mutate(|p| {
                    p.try_insert(1, MemberChange::RotateKey(key(2))).unwrap();
                })
            }),
        ),
        (
            "pending removals below the minimum",
            Box::new(|| {
                PendingChanges::<Test>::mutate(|p| {
                    p.try_insert(1, MemberChange::Remove).unwrap();
                })
            }),
        ),
    ];
    for (what, break_it) in broken {
        new_test_ext().execute_with(|| {
            assert_ok!(Membership::do_try_state());
            break_it();
            assert!(
                Membership::do_try_state().is_err(),
                "the state check accepts {what}"
            );
        });
    }
}
