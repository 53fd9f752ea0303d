//! What each extrinsic touches, for the engine's conflict detection (protocol.md, "Commands and
//! conflicts"): a balances transfer touches its signer and its destination; any other signed call
//! touches its signer plus the GLOBAL key (it conflicts with everything), because the node cannot
//! tell what it reads or writes. Of unsigned extrinsics only misbehaviour reports are proposed
//! (as GLOBAL: they conflict with everything); inherents are the block builder's.

use bsmr_consensus_core::{AccountId, GLOBAL};
use bsmr_runtime::{BalancesCall, MembershipCall, RuntimeCall, TimestampCall, UncheckedExtrinsic};
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
            Preamble::Bare(_)
                if matches!(
                    xt.function,
                    RuntimeCall::Membership(MembershipCall::report_misbehaviour { .. })
                ) =>
            {
                return Some(TxInfo {
                    sender: GLOBAL,
                    access: vec![GLOBAL],
                })
            }
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

    fn is_inherent(&self, encoded: &[u8]) -> bool {
        let mut input = encoded;
        let Ok(xt) = UncheckedExtrinsic::decode_with_depth_limit(MAX_EXTRINSIC_DEPTH, &mut input)
        else {
            return false;
        };
        // The runtime's only inherent is the timestamp (the block builder's, from K_b).
        input.is_empty()
            && matches!(xt.preamble, Preamble::Bare(_))
            && matches!(
                xt.function,
                RuntimeCall::Timestamp(TimestampCall::set { .. })
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bsmr_runtime::{MembershipCall, RuntimeCall};
    use codec::Encode;

    #[test]
    fn reports_are_global_and_inherents_are_not_proposed() {
        let report = UncheckedExtrinsic::new_bare(RuntimeCall::Membership(
            MembershipCall::report_misbehaviour {
                proof: vec![1, 2, 3].try_into().unwrap(),
            },
        ));
        let info = RuntimeClassifier.classify(&report.encode()).unwrap();
        assert_eq!((info.sender, info.access), (GLOBAL, vec![GLOBAL]));
        let inherent =
            UncheckedExtrinsic::new_bare(RuntimeCall::Timestamp(TimestampCall::set { now: 5 }));
        assert!(RuntimeClassifier.classify(&inherent.encode()).is_none());
        assert!(RuntimeClassifier.is_inherent(&inherent.encode()));
        assert!(
            !RuntimeClassifier.is_inherent(&report.encode()),
            "a report is a transaction"
        );
        let mut trailing = report.encode();
        trailing.push(0);
        assert!(RuntimeClassifier.classify(&trailing).is_none());
    }
}
