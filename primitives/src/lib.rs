//! Primitives shared by the bsmr node and runtime.
//!
//! - [`BSMR_ENGINE_ID`]: the consensus engine id under which finality certificates (justifications)
//!   are stored.
//! - [`KEY_TYPE`] and the [`crypto`] module: the sr25519 application key every validator signs
//!   consensus messages with.
//! - [`ValidatorSet`] and the [`BsmrApi`] runtime API through which the engine reads the membership
//!   set, its epoch and the next scheduled set, and builds misbehaviour reports.
//! - [`BsmrBlockBuilderApi`]: a block's transactions applied many to one runtime call.
//! - [`fault_tolerance`] and [`quorum_size`]: the thresholds of the protocol (Profile A, n >= 3f+1).

#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

use alloc::vec::Vec;
use codec::{Decode, DecodeWithMemTracking, Encode};
use scale_info::TypeInfo;
use sp_runtime::{ConsensusEngineId, KeyTypeId};

/// The consensus engine id of bsmr: justifications are stored under it.
pub const BSMR_ENGINE_ID: ConsensusEngineId = *b"BSMR";

/// The key type of the validators' consensus key (`bsmr`).
pub const KEY_TYPE: KeyTypeId = KeyTypeId(*b"bsmr");

/// The sr25519 application crypto of the `bsmr` key type.
pub mod crypto {
    use super::KEY_TYPE;
    use sp_application_crypto::sr25519;
    sp_application_crypto::app_crypto!(sr25519, KEY_TYPE);
}

/// A validator's public consensus key.
pub type AuthorityId = crypto::Public;
/// A signature made with a validator's consensus key.
pub type AuthoritySignature = crypto::Signature;
/// The key pair (available with `std` only).
#[cfg(feature = "std")]
pub type AuthorityPair = crypto::Pair;

/// Index of an epoch: the span of blocks during which one validator set is in force.
pub type EpochIndex = u64;

/// The largest number of Byzantine validators a set of `n` tolerates: `f = floor((n - 1) / 3)`.
///
/// Returns 0 for an empty set.
pub const fn fault_tolerance(n: u32) -> u32 {
    if n == 0 {
        0
    } else {
        (n - 1) / 3
    }
}

/// The quorum size for a set of `n`: `q = ceil((n + f + 1) / 2)` (2f+1 when n = 3f+1).
///
/// Any two quorums intersect in at least f+1 validators, so in at least one correct one.
pub const fn quorum_size(n: u32) -> u32 {
    let f = fault_tolerance(n);
    (n + f + 1).div_ceil(2)
}

/// A validator set as the engine sees it: the epoch it belongs to and the members' keys in the
/// canonical order (the order of the membership pallet's storage, sorted by account).
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo)]
pub struct ValidatorSet {
    /// The epoch this set is in force for.
    pub epoch: EpochIndex,
    /// The members' consensus keys.
    pub validators: Vec<AuthorityId>,
}

impl ValidatorSet {
    /// Number of validators, `n`.
    pub fn len(&self) -> u32 {
        self.validators.len() as u32
    }

    /// Whether the set has no validators.
    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }

    /// `f`, the number of Byzantine validators tolerated.
    pub fn fault_tolerance(&self) -> u32 {
        fault_tolerance(self.len())
    }

    /// `q`, the quorum size.
    pub fn quorum(&self) -> u32 {
        quorum_size(self.len())
    }
}

sp_api::decl_runtime_apis! {
    /// What the bsmr engine reads from the runtime, always at a given block.
    pub trait BsmrApi {
        /// The validator set in force after this block, with its epoch index.
        fn validator_set() -> ValidatorSet;
        /// The set the next epoch will have, if a change is scheduled.
        fn next_validator_set() -> Option<ValidatorSet>;
        /// Length of an epoch in blocks: changes are enacted only at multiples of it.
        fn epoch_length() -> u32;
        /// The unsigned extrinsic that reports an encoded misbehaviour proof of the consensus
        /// core on chain, or `None` if the bytes are too long to be one. The proof is checked
        /// when the extrinsic is validated, not here.
        fn misbehaviour_report(proof: Vec<u8>) -> Option<<Block as sp_runtime::traits::Block>::Extrinsic>;
    }

    /// Block building, many transactions to one runtime call. Each runtime call gets a fresh
    /// wasm instance whose memory is reset when the call ends, which cost more than applying a
    /// transfer; every validator builds every block, so one call per transaction was that cost
    /// once per validator and transaction (docs/performance.md, "Many transactions to one
    /// runtime call").
    pub trait BsmrBlockBuilderApi {
        /// Apply `extrinsics` in order, each as `BlockBuilder::apply_extrinsic` and each in its
        /// own storage transaction, kept when it applied and rolled back when it was refused:
        /// the same state and answers as one `apply_extrinsic` call each, in one call.
        fn apply_extrinsics(
            extrinsics: Vec<<Block as sp_runtime::traits::Block>::Extrinsic>,
        ) -> Vec<sp_runtime::ApplyExtrinsicResult>;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_match_the_protocol_examples() {
        // protocol.md, "Quorums": n=1 -> q=1, n=4 -> q=3, n=7 -> q=5, n=100 -> q=67.
        assert_eq!((fault_tolerance(1), quorum_size(1)), (0, 1));
        assert_eq!((fault_tolerance(4), quorum_size(4)), (1, 3));
        assert_eq!((fault_tolerance(7), quorum_size(7)), (2, 5));
        assert_eq!((fault_tolerance(100), quorum_size(100)), (33, 67));
        assert_eq!(fault_tolerance(0), 0);
    }

    #[test]
    fn any_two_quorums_share_a_correct_validator() {
        for n in 1..=200u32 {
            let (f, q) = (fault_tolerance(n), quorum_size(n));
            assert!(3 * f < n, "n={n}");
            assert!(q <= n - f, "quorum must be reachable with f silent, n={n}");
            assert!(2 * q > n + f, "intersection >= f+1, n={n}");
        }
    }
}
