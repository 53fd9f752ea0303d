//! Benchmarks of pallet-bsmr-membership (run with `--features runtime-benchmarks`).

use super::*;
use alloc::vec::Vec;
use bsmr_primitives::AuthorityId;
use frame_benchmarking::v2::*;
use frame_support::traits::Hooks;
use frame_system::{pallet_prelude::BlockNumberFor, RawOrigin};
use sp_runtime::traits::{Get, Zero};

/// A deterministic, distinct consensus key for benchmark member `i`.
fn key(i: u32) -> AuthorityId {
    let mut raw = [0u8; 32];
    raw[..4].copy_from_slice(&i.to_le_bytes());
    raw[31] = 0xbe;
    AuthorityId::from(sp_runtime::app_crypto::sr25519::Public::from_raw(raw))
}

/// Fill the set with `n` members (accounts `account("member", i, 0)`).
fn fill<T: Config>(n: u32) -> Vec<T::AccountId> {
    let mut members: Vec<(T::AccountId, AuthorityId)> =
        (0..n).map(|i| (account("member", i, 0), key(i))).collect();
    members.sort_by(|a, b| a.0.cmp(&b.0));
    let accounts = members.iter().map(|(a, _)| a.clone()).collect();
    Members::<T>::put(BoundedVec::truncate_from(members));
    MinMembers::<T>::put(1);
    accounts
}

#[benchmarks]
mod benchmarks {
    use super::*;

    #[benchmark]
    fn add_member() {
        let n = T::MaxMembers::get() - 1;
        fill::<T>(n);
        let who: T::AccountId = account("new", 0, 0);
        #[extrinsic_call]
        _(RawOrigin::Root, who.clone(), key(n + 1));
        assert!(PendingChanges::<T>::get().contains_key(&who));
    }

    #[benchmark]
    fn remove_member() {
        let accounts = fill::<T>(T::MaxMembers::get());
        let who = accounts[0].clone();
        #[extrinsic_call]
        _(RawOrigin::Root, who.clone());
        assert!(PendingChanges::<T>::get().contains_key(&who));
    }

    #[benchmark]
    fn rotate_key() {
        let n = T::MaxMembers::get();
        let accounts = fill::<T>(n);
        let who = accounts[0].clone();
        #[extrinsic_call]
        _(RawOrigin::Root, who.clone(), key(n + 1));
        assert!(PendingChanges::<T>::get().contains_key(&who));
    }

    #[benchmark]
    fn set_min_members() {
        fill::<T>(T::MaxMembers::get());
        #[extrinsic_call]
        _(RawOrigin::Root, 2);
        assert_eq!(MinMembers::<T>::get(), 2);
    }

    #[benchmark]
    fn enact_changes(c: Linear<1, { T::MaxMembers::get() / 2 }>) {
        let accounts = fill::<T>(T::MaxMembers::get() / 2);
        for (i, who) in accounts.iter().take(c as usize).enumerate() {
            Pallet::<T>::rotate_key(RawOrigin::Root.into(), who.clone(), key(10_000 + i as u32))
                .expect("a fresh key for a member without pending change");
        }
        let boundary: BlockNumberFor<T> = T::EpochLength::get();
        assert!(!boundary.is_zero());
        #[block]
        {
            Pallet::<T>::on_initialize(boundary);
        }
        assert!(PendingChanges::<T>::get().is_empty());
    }

    impl_benchmark_test_suite!(Pallet, crate::mock::new_test_ext(), crate::mock::Test);
}
