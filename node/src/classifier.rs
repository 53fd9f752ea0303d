//! What each extrinsic touches, for the engine's conflict detection (protocol.md, "Commands and
//! conflicts"): a balances transfer touches its signer and its destination; any other signed call
//! touches its signer plus the GLOBAL key (it conflicts with everything), because the node cannot
//! tell what it reads or writes. Unsigned extrinsics are never proposed.

use bsmr_consensus_core::{AccountId, GLOBAL};
use bsmr_runtime::{BalancesCall, RuntimeCall, UncheckedExtrinsic};
use codec::DecodeLimit;
use sc_consensus_bsmr::{TxClassifier, TxInfo};
use sp_runtime::{generic::Preamble, MultiAddress};

/// Nesting limit when decoding untrusted extrinsics (the runtime's own limit).
const MAX_EXTRINSIC_DEPTH: u32 = 256;

/// Classifies extrinsics of the bsmr runtime.
#[derive(Clone, Copy, Default)]
pub struct RuntimeClassifier;

impl TxClassifier for RuntimeClassifier {
    fn classify(&self, encoded: &[u8]) -> Option<TxInfo> {
        let mut input = encoded;
        let xt =
            UncheckedExtrinsic::decode_with_depth_limit(MAX_EXTRINSIC_DEPTH, &mut input).ok()?;
        if !input.is_empty() {
            return None;
        }
        let sender: AccountId = match &xt.preamble {
            Preamble::Signed(MultiAddress::Id(who), _, _) => *who.as_ref(),
            _ => return None,
        };
        let mut access = vec![sender];
        match &xt.function {
            RuntimeCall::Balances(
                BalancesCall::transfer_allow_death {
                    dest: MultiAddress::Id(to),
                    ..
                }
                | BalancesCall::transfer_keep_alive {
                    dest: MultiAddress::Id(to),
                    ..
                }
                | BalancesCall::transfer_all {
                    dest: MultiAddress::Id(to),
                    ..
                },
            ) => access.push(*to.as_ref()),
            _ => access.push(GLOBAL),
        }
        access.sort();
        access.dedup();
        Some(TxInfo { sender, access })
    }
}
