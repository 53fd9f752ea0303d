//! Benchmarks of pallet-bsmr-membership (run with `--features runtime-benchmarks`).

use super::*;
use alloc::vec::Vec;
use bsmr_primitives::AuthorityId;
use frame_benchmarking::v2::*;
use frame_support::{traits::Hooks, BoundedVec};
use frame_system::{pallet_prelude::BlockNumberFor, RawOrigin};
use sp_runtime::traits::{Get, Zero};

use bsmr_consensus_core::{
    crypto::{Signed, Signer},
    types::{InstanceId, Value},
    wire::{Phase, PrePrepareBody, PreparedCert, ViewChangeBody, VoteBody},
    Proof,
};
use bsmr_primitives::KEY_TYPE;
use sp_core::sr25519;

/// Signs with a key held in the keystore extension the benchmark CLI (and the mock) provides.
struct KeystoreSigner(sr25519::Public);

impl Signer for KeystoreSigner {
    fn public(&self) -> [u8; 32] {
        self.0 .0
    }
    fn sign(&self, digest: &[u8; 32]) -> [u8; 64] {
        sp_io::crypto::sr25519_sign(KEY_TYPE, &self.0, digest)
            .expect("the key was generated in this keystore")
            .0
    }
}

/// Fill the set with `n` members whose keys live in the keystore, so their signatures are real.
fn fill_with_signers<T: Config>(n: u32) -> Vec<KeystoreSigner> {
    let signers: Vec<KeystoreSigner> = (0..n)
        .map(|_| KeystoreSigner(sp_io::crypto::sr25519_generate(KEY_TYPE, None)))
        .collect();
    fill_with::<T>(n, |i| AuthorityId::from(signers[i as usize].0));
    signers
}

/// The most expensive proof per byte a reporter can submit: a checkpoint leader's pre-prepare
/// in view 1 whose q view changes carry `certs` prepared certificates of q Prepare votes each
/// (every signature is verified), proposing Noop, which no checkpoint instance may decide, so it
/// convicts only after every check. Votes on a checkpoint instance are the smallest signed
/// items (150 bytes), so no proof of the same length makes the runtime verify more signatures.
fn costliest_proof<T: Config>(signers: &[KeystoreSigner], certs: u32) -> Vec<u8> {
    let genesis: [u8; 32] = frame_system::Pallet::<T>::block_hash(BlockNumberFor::<T>::zero())
        .as_ref()
        .try_into()
        .expect("32-byte block hashes");
    let epoch = CurrentEpoch::<T>::get();
    let q = bsmr_primitives::quorum_size(signers.len() as u32) as usize;
    let inst = InstanceId::Ckpt(1);
    let prepared = Value::Deps {
        cmd: [7; 32],
        deps: Vec::new(),
        after: 0,
    };
    let cert = PreparedCert {
        view: 0,
        value: prepared.clone(),
        votes: signers[..q]
            .iter()
            .map(|s| {
                let vote = VoteBody {
                    epoch,
                    inst,
                    view: 0,
                    phase: Phase::Prepare,
                    value: prepared.digest(),
                };
                Signed::sign(vote, &genesis, s)
            })
            .collect(),
    };
    let new_view = signers[..q]
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let vc = ViewChangeBody {
                epoch,
                inst,
                new_view: 1,
                prepared: ((i as u32) < certs).then(|| cert.clone()),
                has_payload: true,
            };
            Signed::sign(vc, &genesis, s)
        })
        .collect();
    let pp = PrePrepareBody {
        epoch,
        inst,
        view: 1,
        value: Value::Noop,
        proof: Vec::new(),
        new_view,
    };
    Proof::InvalidProposal(Signed::sign(pp, &genesis, &signers[0]), None).encode()
}

/// A deterministic, distinct consensus key for benchmark member `i`.
fn key(i: u32) -> AuthorityId {
    let mut raw = [0u8; 32];
    raw[..4].copy_from_slice(&i.to_le_bytes());
    raw[31] = 0xbe;
    AuthorityId::from(sp_runtime::app_crypto::sr25519::Public::from_raw(raw))
}

/// Fill the set with `n` members (accounts `account("member", i, 0)`).
fn fill<T: Config>(n: u32) -> Vec<T::AccountId> {
    fill_with::<T>(n, key)
}

/// Make the set `n` members, `account("member", i, 0)` holding `key(i)`, sorted by account as
/// the pallet keeps them, with a minimum of 1; returns the accounts in that order.
fn fill_with<T: Config>(n: u32, key: impl Fn(u32) -> AuthorityId) -> Vec<T::AccountId> {
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

    /// `report_misbehaviour` of the costliest proof with `c` prepared certificates (see
    /// [`costliest_proof`]) against the largest set; the call's weight maps a proof's length to
    /// the `c` that covers as many signatures (`Pallet::report_weight`).
    #[benchmark]
    fn report_misbehaviour(c: Linear<0, MAX_BENCHMARKED_CERTS>) {
        let signers = fill_with_signers::<T>(T::MaxMembers::get());
        let proof = costliest_proof::<T>(&signers, c);
        let proof: ProofBytes = BoundedVec::try_from(proof).expect("fits the proof bound");
        #[extrinsic_call]
        _(RawOrigin::None, proof);
        assert_eq!(Offences::<T>::iter().count(), 1);
    }

    impl_benchmark_test_suite!(Pallet, crate::mock::new_bench_ext(), crate::mock::Test);
}
