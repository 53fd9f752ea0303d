//! The bench's reference chain: the classic Substrate recipe of Aura block production and GRANDPA
//! finality, with the same balances, fee and sudo configuration as the bsmr runtime, so that
//! `bsmr-bench` can replay one trace against both and compare finality on the same machine.
//!
//! It is not part of bsmr: nothing here reaches a bsmr block. It also proves the bench's claim
//! that a replay works against any Substrate chain with pallet-balances (another runtime,
//! another metadata, another consensus).

#![cfg_attr(not(feature = "std"), no_std)]
// `frame_support::runtime` expands to code that trips this lint.
#![allow(clippy::large_enum_variant)]

#[cfg(feature = "std")]
include!(concat!(env!("OUT_DIR"), "/wasm_binary.rs"));

extern crate alloc;

use alloc::vec::Vec;

pub mod apis;
pub mod configs;
pub mod genesis;

use sp_runtime::{
    generic, impl_opaque_keys,
    traits::{BlakeTwo256, IdentifyAccount, Verify},
    MultiAddress, MultiSignature,
};
use sp_version::RuntimeVersion;

/// Opaque types for the node, which knows blocks and extrinsics only as bytes.
pub mod opaque {
    use super::*;

    pub use sp_runtime::OpaqueExtrinsic as UncheckedExtrinsic;

    /// Opaque block header type.
    pub type Header = generic::Header<BlockNumber, BlakeTwo256>;
    /// Opaque block type.
    pub type Block = generic::Block<Header, UncheckedExtrinsic>;
}

impl_opaque_keys! {
    /// A validator's session keys: its Aura (authoring) and GRANDPA (finality) keys.
    pub struct SessionKeys {
        pub aura: Aura,
        pub grandpa: Grandpa,
    }
}

/// The runtime's version.
#[sp_version::runtime_version]
pub const VERSION: RuntimeVersion = RuntimeVersion {
    spec_name: alloc::borrow::Cow::Borrowed("aura-grandpa-reference"),
    impl_name: alloc::borrow::Cow::Borrowed("aura-grandpa-node"),
    authoring_version: 1,
    spec_version: 1,
    impl_version: 1,
    apis: apis::RUNTIME_API_VERSIONS,
    transaction_version: 1,
    system_version: 1,
};

/// Aura's slot: one block every 6 seconds, Substrate's usual setting (its solochain and
/// parachain templates, Polkadot's relay chain).
pub const SLOT_DURATION_MS: u64 = 6_000;

/// One whole token (12 decimals, like bsmr).
pub const UNIT: Balance = 1_000_000_000_000;
/// The minimum balance an account must keep to exist (as in bsmr).
pub const EXISTENTIAL_DEPOSIT: Balance = UNIT / 1_000;

/// Signature of a transaction.
pub type Signature = MultiSignature;
/// An account id: the public key of the signature scheme.
pub type AccountId = <<Signature as Verify>::Signer as IdentifyAccount>::AccountId;
/// Balance of an account.
pub type Balance = u128;
/// Index of a transaction of an account.
pub type Nonce = u32;
/// A block hash.
pub type Hash = sp_core::H256;
/// A block number.
pub type BlockNumber = u32;
/// The address format of transfers.
pub type Address = MultiAddress<AccountId, ()>;
/// Block header type.
pub type Header = generic::Header<BlockNumber, BlakeTwo256>;
/// Block type.
pub type Block = generic::Block<Header, UncheckedExtrinsic>;

/// The transaction extensions, the same as bsmr's.
pub type TxExtension = (
    frame_system::CheckNonZeroSender<Runtime>,
    frame_system::CheckSpecVersion<Runtime>,
    frame_system::CheckTxVersion<Runtime>,
    frame_system::CheckGenesis<Runtime>,
    frame_system::CheckEra<Runtime>,
    frame_system::CheckNonce<Runtime>,
    frame_system::CheckWeight<Runtime>,
    pallet_transaction_payment::ChargeTransactionPayment<Runtime>,
    frame_system::WeightReclaim<Runtime>,
);

/// Unchecked extrinsic type.
pub type UncheckedExtrinsic =
    generic::UncheckedExtrinsic<Address, RuntimeCall, Signature, TxExtension>;

/// Executive: dispatches to the pallets.
pub type Executive = frame_executive::Executive<
    Runtime,
    Block,
    frame_system::ChainContext<Runtime>,
    Runtime,
    AllPalletsWithSystem,
>;

#[frame_support::runtime]
mod runtime {
    #[runtime::runtime]
    #[runtime::derive(
        RuntimeCall,
        RuntimeEvent,
        RuntimeError,
        RuntimeOrigin,
        RuntimeFreezeReason,
        RuntimeHoldReason,
        RuntimeSlashReason,
        RuntimeLockId,
        RuntimeTask,
        RuntimeViewFunction
    )]
    pub struct Runtime;

    #[runtime::pallet_index(0)]
    pub type System = frame_system;

    #[runtime::pallet_index(1)]
    pub type Timestamp = pallet_timestamp;

    #[runtime::pallet_index(2)]
    pub type Aura = pallet_aura;

    #[runtime::pallet_index(3)]
    pub type Grandpa = pallet_grandpa;

    #[runtime::pallet_index(4)]
    pub type Balances = pallet_balances;

    #[runtime::pallet_index(5)]
    pub type TransactionPayment = pallet_transaction_payment;

    #[runtime::pallet_index(6)]
    pub type Sudo = pallet_sudo;
}
