//! Self-contained misbehaviour proofs (protocol.md, "Misbehaviour").
//!
//! A proof is two signed statements that cannot both come from a correct validator, or one signed
//! proposal whose self-contained validity check fails. [`Proof::check`] re-verifies a proof
//! against a membership and returns the culprit. A correct validator is never the subject of a
//! valid proof (the simulator checks this as S12).

use crate::crypto::{Signed, Verifier};
use crate::membership::Membership;
use crate::types::*;
use crate::validity::check_preprepare;
use crate::wire::{PrePrepareBody, ReplyBody, VoteBody};
use codec::{Decode, Encode};

/// A misbehaviour proof.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub enum Proof {
    /// Two different batch headers in one slot: same (epoch, proposer, seq) for Txs, or same
    /// (epoch, index, view) for checkpoint candidates.
    BatchEquivocation(Signed<BatchHeader>, Signed<BatchHeader>),
    /// Two different replies of one validator to one command.
    ReplyEquivocation(Signed<ReplyBody>, Signed<ReplyBody>),
    /// Two votes with the same instance, view and phase on different values.
    VoteEquivocation(Signed<VoteBody>, Signed<VoteBody>),
    /// Two different pre-prepares of one leader in one (instance, view).
    PrePrepareEquivocation(Signed<PrePrepareBody>, Signed<PrePrepareBody>),
    /// A signed pre-prepare whose self-contained check fails. The optional header is the command
    /// the value names (needed to check a checkpoint proposal).
    InvalidProposal(Signed<PrePrepareBody>, Option<Signed<BatchHeader>>),
}

fn slot(h: &BatchHeader) -> (Epoch, ValidatorId, Seq, Option<(BlockIndex, View)>) {
    match h.kind {
        BatchKind::Txs => (h.epoch, h.proposer, h.seq, None),
        BatchKind::Checkpoint { index, view, .. } => (h.epoch, h.proposer, 0, Some((index, view))),
    }
}

impl Proof {
    /// Verify the proof; returns the validator it convicts.
    pub fn check(
        &self,
        m: &Membership,
        verifier: &dyn Verifier,
        window: u64,
    ) -> Option<ValidatorId> {
        let g = &m.genesis;
        match self {
            Proof::BatchEquivocation(a, b) => (a.signer == b.signer
                && a.signer == a.body.proposer
                && m.contains(&a.signer)
                && slot(&a.body) == slot(&b.body)
                && a.body != b.body
                && a.verify(g, verifier)
                && b.verify(g, verifier))
            .then_some(a.signer),
            Proof::ReplyEquivocation(a, b) => (a.signer == b.signer
                && m.contains(&a.signer)
                && a.body.cmd == b.body.cmd
                && a.body != b.body
                && a.verify(g, verifier)
                && b.verify(g, verifier))
            .then_some(a.signer),
            Proof::VoteEquivocation(a, b) => (a.signer == b.signer
                && m.contains(&a.signer)
                && (a.body.epoch, a.body.inst, a.body.view, a.body.phase)
                    == (b.body.epoch, b.body.inst, b.body.view, b.body.phase)
                && a.body.value != b.body.value
                && a.verify(g, verifier)
                && b.verify(g, verifier))
            .then_some(a.signer),
            Proof::PrePrepareEquivocation(a, b) => (a.signer == b.signer
                && m.contains(&a.signer)
                && (a.body.epoch, a.body.inst, a.body.view)
                    == (b.body.epoch, b.body.inst, b.body.view)
                && a.body.value != b.body.value
                && a.verify(g, verifier)
                && b.verify(g, verifier))
            .then_some(a.signer),
            Proof::InvalidProposal(pp, header) => {
                if !m.contains(&pp.signer) || !pp.verify(g, verifier) {
                    return None;
                }
                let cmd = match (pp.body.inst, header) {
                    (InstanceId::Cmd { proposer, seq, id }, _) => Some(DepRef {
                        proposer,
                        kind: DepKind::Txs { seq },
                        id,
                    }),
                    (InstanceId::Ckpt(_), Some(h)) => {
                        if !h.verify(g, verifier) {
                            return None;
                        }
                        if let Value::Deps { cmd, .. } = &pp.body.value {
                            if *cmd != h.body.id() {
                                return None;
                            }
                        }
                        Some(h.body.dep_ref())
                    }
                    (InstanceId::Ckpt(_), None) => {
                        if matches!(pp.body.value, Value::Deps { .. }) && pp.body.view == 0 {
                            // Cannot judge a fresh candidate proposal without its header.
                            return None;
                        }
                        None
                    }
                };
                // Only a leader's own signed proposal can convict it.
                check_preprepare(m, verifier, window, pp, cmd.as_ref(), None)
                    .is_err()
                    .then_some(pp.signer)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::InsecureTestCrypto;

    #[test]
    fn vote_equivocation_convicts_and_same_vote_does_not() {
        let m = Membership::new([0; 32], 0, vec![[1; 32], [2; 32], [3; 32], [4; 32]]);
        let k = InsecureTestCrypto([1; 32]);
        let v = |d: u8| {
            Signed::sign(
                VoteBody {
                    epoch: 0,
                    inst: InstanceId::Ckpt(1),
                    view: 0,
                    phase: crate::wire::Phase::Prepare,
                    value: [d; 32],
                },
                &m.genesis,
                &k,
            )
        };
        assert_eq!(
            Proof::VoteEquivocation(v(1), v(2)).check(&m, &k, 8),
            Some([1; 32])
        );
        assert_eq!(Proof::VoteEquivocation(v(1), v(1)).check(&m, &k, 8), None);
    }
}
