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
        run_to_block(10);
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
