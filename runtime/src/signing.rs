//! Building signed extrinsics for this runtime off chain (std only): what tests, the benchmark
//! CLI and tools need to submit transactions without a metadata-driven client. It sits next to
//! [`crate::TxExtension`] so that the two cannot drift apart.

use crate::{
    BalancesCall, Runtime, RuntimeCall, SignedPayload, TxExtension, UncheckedExtrinsic, VERSION,
};
use codec::Encode;
use sp_core::{crypto::AccountId32, sr25519, Pair, H256};
use sp_runtime::{generic::Era, MultiAddress, MultiSignature};

/// The extensions of an immortal, tip-free transaction at `nonce`.
pub fn tx_extension(nonce: u32) -> TxExtension {
    (
        frame_system::CheckNonZeroSender::<Runtime>::new(),
        frame_system::CheckSpecVersion::<Runtime>::new(),
        frame_system::CheckTxVersion::<Runtime>::new(),
        frame_system::CheckGenesis::<Runtime>::new(),
        frame_system::CheckEra::<Runtime>::from(Era::Immortal),
        frame_system::CheckNonce::<Runtime>::from(nonce),
        frame_system::CheckWeight::<Runtime>::new(),
        pallet_transaction_payment::ChargeTransactionPayment::<Runtime>::from(0),
        frame_system::WeightReclaim::<Runtime>::new(),
    )
}

/// What the sender signs for `call` with `tx_ext` on the chain whose genesis hash is `genesis`
/// (an immortal transaction).
pub fn signed_payload(call: RuntimeCall, tx_ext: TxExtension, genesis: H256) -> SignedPayload {
    // What the extensions add to the signed payload without carrying it in the extrinsic:
    // spec and transaction version, genesis hash, and the era's birth block (genesis: immortal).
    let implicit = (
        (),
        VERSION.spec_version,
        VERSION.transaction_version,
        genesis,
        genesis,
        (),
        (),
        (),
        (),
    );
    SignedPayload::from_raw(call, tx_ext, implicit)
}

/// `call` signed by `from` with `nonce`, immortal, no tip, valid on the chain whose genesis hash
/// is `genesis`; SCALE-encoded as `author_submitExtrinsic` takes it.
pub fn signed_call(from: &sr25519::Pair, call: RuntimeCall, nonce: u32, genesis: H256) -> Vec<u8> {
    let tx_ext = tx_extension(nonce);
    let payload = signed_payload(call.clone(), tx_ext.clone(), genesis);
    let signature = payload.using_encoded(|bytes| from.sign(bytes));
    UncheckedExtrinsic::new_signed(
        call,
        MultiAddress::Id(AccountId32::from(from.public())),
        MultiSignature::Sr25519(signature),
        tx_ext,
    )
    .encode()
}

/// A signed `transfer_keep_alive` of `amount` from `from` to `to` (see [`signed_call`]).
pub fn signed_transfer(
    from: &sr25519::Pair,
    to: AccountId32,
    amount: u128,
    nonce: u32,
    genesis: H256,
) -> Vec<u8> {
    let call = RuntimeCall::Balances(BalancesCall::transfer_keep_alive {
        dest: MultiAddress::Id(to),
        value: amount,
    });
    signed_call(from, call, nonce, genesis)
}

/// The tags the runtime's transaction validation says a signed extrinsic `provides`, read from
/// its bytes without executing or verifying it: `CheckNonce` is the only extension of
/// [`TxExtension`] that provides tags, and it provides `(signer, nonce)`.
///
/// For a transaction already in a block this is what validating it at the block's parent would
/// say (every included signed extrinsic used its nonce), which is all the transaction pool
/// needs from such a validation: the tags to prune its own copies by. `None` for anything but
/// a signed extrinsic of this runtime (undecodable, trailing bytes, bare), whose tags only the
/// runtime can tell.
pub fn provided_tags(encoded: &[u8]) -> Option<Vec<Vec<u8>>> {
    use codec::DecodeLimit;
    let mut input = encoded;
    let xt =
        UncheckedExtrinsic::decode_with_depth_limit(frame_support::MAX_EXTRINSIC_DEPTH, &mut input)
            .ok()?;
    if !input.is_empty() {
        return None;
    }
    let sp_runtime::generic::Preamble::Signed(MultiAddress::Id(who), _, ext) = xt.preamble else {
        return None;
    };
    let nonce: crate::Nonce = ext.5 .0;
    Some(vec![(who, nonce).encode()])
}
