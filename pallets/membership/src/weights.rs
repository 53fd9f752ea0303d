//! Weights of pallet-bsmr-membership.
//!
//! NOTE: these figures are an estimate from each call's storage accesses (reads/writes priced by
//! the runtime's `DbWeight`) plus a fixed execution cost; they have not yet been produced by
//! `bsmr-node benchmark pallet` (build with `--features runtime-benchmarks`). The benchmarks in
//! `benchmarking.rs` are the ones to run to regenerate this file:
//!
//! ```text
//! bsmr-node benchmark pallet --chain dev --pallet pallet_bsmr_membership --extrinsic '*' \
//!   --steps 50 --repeat 20 --output pallets/membership/src/weights.rs
//! ```

#![allow(unused_parens, unused_imports)]

use core::marker::PhantomData;
use frame_support::{
    traits::Get,
    weights::{constants::RocksDbWeight, Weight},
};

/// Weight functions needed by pallet-bsmr-membership.
pub trait WeightInfo {
    /// `add_member`.
    fn add_member() -> Weight;
    /// `remove_member`.
    fn remove_member() -> Weight;
    /// `rotate_key`.
    fn rotate_key() -> Weight;
    /// `set_min_members`.
    fn set_min_members() -> Weight;
    /// Enacting `c` queued changes at an epoch boundary.
    fn enact_changes(c: u32) -> Weight;
    /// `report_misbehaviour` with a proof of `len` bytes.
    fn report_misbehaviour(len: u32) -> Weight;
}

/// Weights priced with the runtime's database weights.
pub struct SubstrateWeight<T>(PhantomData<T>);
impl<T: frame_system::Config> WeightInfo for SubstrateWeight<T> {
    fn add_member() -> Weight {
        // Reads Members, PendingChanges, MaxMembers-bounded scan; writes PendingChanges.
        Weight::from_parts(25_000_000, 8_000)
            .saturating_add(T::DbWeight::get().reads(2))
            .saturating_add(T::DbWeight::get().writes(1))
    }
    fn remove_member() -> Weight {
        // Reads Members, PendingChanges, MinMembers; writes PendingChanges.
        Weight::from_parts(20_000_000, 8_000)
            .saturating_add(T::DbWeight::get().reads(3))
            .saturating_add(T::DbWeight::get().writes(1))
    }
    fn rotate_key() -> Weight {
        // Reads Members, PendingChanges; writes PendingChanges.
        Weight::from_parts(25_000_000, 8_000)
            .saturating_add(T::DbWeight::get().reads(2))
            .saturating_add(T::DbWeight::get().writes(1))
    }
    fn set_min_members() -> Weight {
        // Reads Members, PendingChanges; writes MinMembers.
        Weight::from_parts(12_000_000, 4_000)
            .saturating_add(T::DbWeight::get().reads(2))
            .saturating_add(T::DbWeight::get().writes(1))
    }
    fn enact_changes(c: u32) -> Weight {
        // Takes PendingChanges, rewrites Members and CurrentEpoch; linear in the changes applied.
        Weight::from_parts(15_000_000, 8_000)
            .saturating_add(Weight::from_parts(2_000_000, 0).saturating_mul(c.into()))
            .saturating_add(T::DbWeight::get().reads(3))
            .saturating_add(T::DbWeight::get().writes(3))
    }
    fn report_misbehaviour(len: u32) -> Weight {
        // Reads CurrentEpoch, Offences, Members, BlockHash(0); writes Offences. Signature checks
        // dominate, and a block checks the proof twice (`pre_dispatch` runs the unsigned
        // validation, then the call): every signature in a proof takes at least 96 bytes (signer
        // and signature), so 1.2M ps per byte covers two sr25519 verifications (about 50 us
        // each) per 96 bytes.
        Weight::from_parts(200_000_000, 8_000)
            .saturating_add(Weight::from_parts(1_200_000, 1).saturating_mul(len.into()))
            .saturating_add(T::DbWeight::get().reads(4))
            .saturating_add(T::DbWeight::get().writes(1))
    }
}

/// The same estimates priced with the reference RocksDB weights, for tests.
impl WeightInfo for () {
    fn add_member() -> Weight {
        Weight::from_parts(25_000_000, 8_000)
            .saturating_add(RocksDbWeight::get().reads(2))
            .saturating_add(RocksDbWeight::get().writes(1))
    }
    fn remove_member() -> Weight {
        Weight::from_parts(20_000_000, 8_000)
            .saturating_add(RocksDbWeight::get().reads(3))
            .saturating_add(RocksDbWeight::get().writes(1))
    }
    fn rotate_key() -> Weight {
        Weight::from_parts(25_000_000, 8_000)
            .saturating_add(RocksDbWeight::get().reads(2))
            .saturating_add(RocksDbWeight::get().writes(1))
    }
    fn set_min_members() -> Weight {
        Weight::from_parts(12_000_000, 4_000)
            .saturating_add(RocksDbWeight::get().reads(2))
            .saturating_add(RocksDbWeight::get().writes(1))
    }
    fn enact_changes(c: u32) -> Weight {
        Weight::from_parts(15_000_000, 8_000)
            .saturating_add(Weight::from_parts(2_000_000, 0).saturating_mul(c.into()))
            .saturating_add(RocksDbWeight::get().reads(3))
            .saturating_add(RocksDbWeight::get().writes(3))
    }
    fn report_misbehaviour(len: u32) -> Weight {
        Weight::from_parts(200_000_000, 8_000)
            .saturating_add(Weight::from_parts(1_200_000, 1).saturating_mul(len.into()))
            .saturating_add(RocksDbWeight::get().reads(4))
            .saturating_add(RocksDbWeight::get().writes(1))
    }
}
