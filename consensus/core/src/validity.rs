//! External validity of proposals (protocol.md, normal case step 4 and "View change").
//!
//! Everything here is self-contained: it depends only on the membership and the signed
//! material, never on local state, so a failing check can be shown to anyone as an
//! invalid-proposal proof. Local-state checks (fence claims, timestamps, payload held) live in
//! the replica and only block the vote.

use crate::crypto::{Signed, Verifier};
use crate::membership::Membership;
use crate::types::*;
use crate::wire::{Phase, PrePrepareBody, PreparedCert, ReplyBody, ViewChangeBody, VoteBody};
use alloc::{collections::BTreeSet, vec::Vec};

/// W, the per-proposer window above the decided watermark that every node runs with
/// ([`crate::replica::Config`]'s default). The runtime checks reported proofs with it, so a node
/// must not run a larger window than the chain judges by.
pub const DEFAULT_WINDOW: u64 = 16;

/// Max checkpoint-candidate references in one reply.
pub const MAX_CKPT_REFS: usize = 64;

/// Why a proposal is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// Bad signature or non-member signer.
    #[error("bad signature or signer")]
    Signature,
    /// Not enough distinct signers.
    #[error("not a quorum")]
    NotQuorum,
    /// A reply is for another command or epoch.
    #[error("reply for another command")]
    WrongCommand,
    /// A reply lists too many entries.
    #[error("reply too large")]
    TooManyDeps,
    /// A reply names a command of a proposer outside the validator set.
    #[error("dependency on a proposer outside the set")]
    UnknownProposer,
    /// A reply names a candidate beyond its fence.
    #[error("candidate reference beyond fence")]
    CkptBeyondFence,
    /// D is not the union of the replies, or `after` is not the max fence.
    #[error("value does not match the proof")]
    ValueMismatch,
    /// Value not allowed for this instance/view.
    #[error("value not allowed")]
    BadValue,
    /// Signed by someone who is not the leader.
    #[error("not the leader")]
    NotLeader,
    /// View-change set malformed.
    #[error("bad view changes")]
    BadViewChanges,
}

/// Check one reply's shape (not its signature): every entry names a member as its proposer, at
/// most `window` Txs entries per proposer, at most [`MAX_CKPT_REFS`] candidate entries, none
/// beyond the reply's fence. A correct replier only lists commands whose signed header it holds,
/// and only members' headers verify, so a reply failing this is proof of its signer's fault.
pub fn check_reply_shape(r: &ReplyBody, window: u64, m: &Membership) -> Result<(), Invalid> {
    let sorted;
    let deps: &[DepRef] = if r.deps.windows(2).all(|w| w[0] <= w[1]) {
        &r.deps
    } else {
        let mut v = r.deps.clone();
        v.sort_unstable();
        sorted = v;
        &sorted
    };
    let mut ck = 0usize;
    let mut run: (Option<ValidatorId>, u64) = (None, 0);
    for d in deps {
        if !m.contains(&d.proposer) {
            return Err(Invalid::UnknownProposer);
        }
        match d.kind {
            DepKind::Txs { .. } => {
                if run.0 == Some(d.proposer) {
                    run.1 += 1;
                } else {
                    run = (Some(d.proposer), 1);
                }
                if run.1 > window {
                    return Err(Invalid::TooManyDeps);
                }
            }
            DepKind::Ckpt { index, .. } => {
                ck += 1;
                if ck > MAX_CKPT_REFS {
                    return Err(Invalid::TooManyDeps);
                }
                if index > r.fence {
                    return Err(Invalid::CkptBeyondFence);
                }
            }
        }
    }
    Ok(())
}

/// The value a quorum of replies determines: D = union(R_i) minus c, after = max fence.
pub fn value_from_replies(cmd: &DepRef, replies: &[Signed<ReplyBody>]) -> Value {
    let mut deps: Vec<DepRef> = Vec::with_capacity(replies.iter().map(|r| r.body.deps.len()).sum());
    let mut after = 0;
    for r in replies {
        deps.extend(r.body.deps.iter().copied());
        after = after.max(r.body.fence);
    }
    deps.sort_unstable();
    deps.dedup();
    deps.retain(|d| d.id != cmd.id);
    Value::Deps {
        cmd: cmd.id,
        deps,
        after,
    }
}

/// Check a reply proof for `value` (q distinct members, all for `cmd`, D == union, after == max).
pub fn check_reply_proof(
    m: &Membership,
    verifier: &dyn Verifier,
    window: u64,
    cmd: &DepRef,
    value: &Value,
    proof: &[Signed<ReplyBody>],
) -> Result<(), Invalid> {
    let mut signers = BTreeSet::new();
    for r in proof {
        if r.body.cmd != *cmd || r.body.epoch != m.epoch {
            return Err(Invalid::WrongCommand);
        }
        if !m.contains(&r.signer) || !signers.insert(r.signer) {
            return Err(Invalid::Signature);
        }
        check_reply_shape(&r.body, window, m)?;
    }
    if signers.len() != m.q() {
        return Err(Invalid::NotQuorum);
    }
    if value_from_replies(cmd, proof) != *value {
        return Err(Invalid::ValueMismatch);
    }
    // Signatures last: they are the expensive part.
    if proof.iter().any(|r| !r.verify(&m.genesis, verifier)) {
        return Err(Invalid::Signature);
    }
    Ok(())
}

/// Check q distinct member votes on (inst, view, phase, digest).
pub fn check_votes(
    m: &Membership,
    verifier: &dyn Verifier,
    inst: &InstanceId,
    view: View,
    phase: Phase,
    digest: &Digest,
    votes: &[Signed<VoteBody>],
) -> bool {
    let mut signers = BTreeSet::new();
    for v in votes {
        let b = &v.body;
        if b.inst != *inst
            || b.view != view
            || b.phase != phase
            || b.value != *digest
            || b.epoch != m.epoch
        {
            return false;
        }
        if !m.contains(&v.signer) || !signers.insert(v.signer) {
            return false;
        }
    }
    signers.len() >= m.q() && votes.iter().all(|v| v.verify(&m.genesis, verifier))
}

/// Check a prepared certificate for `inst` below `below_view`.
pub fn check_prepared(
    m: &Membership,
    verifier: &dyn Verifier,
    inst: &InstanceId,
    below_view: View,
    c: &PreparedCert,
) -> bool {
    c.view < below_view
        && check_votes(
            m,
            verifier,
            inst,
            c.view,
            Phase::Prepare,
            &c.value.digest(),
            &c.votes,
        )
}

/// Check a view-change message (signature, member, prepared certificate).
pub fn check_view_change(
    m: &Membership,
    verifier: &dyn Verifier,
    vc: &Signed<ViewChangeBody>,
) -> bool {
    m.contains(&vc.signer)
        && vc.body.epoch == m.epoch
        && vc.body.new_view > 0
        && vc
            .body
            .prepared
            .as_ref()
            .map(|c| check_prepared(m, verifier, &vc.body.inst, vc.body.new_view, c))
            .unwrap_or(true)
        && vc.verify(&m.genesis, verifier)
}

/// What a NewView justifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Justified {
    /// The value must be this prepared value.
    Reproposal(Value),
    /// No prepared value reported: any externally valid value (Noop allowed for commands).
    Free,
}

/// Check the q view changes of a pre-prepare for view > 0.
pub fn check_new_view(
    m: &Membership,
    verifier: &dyn Verifier,
    pp: &PrePrepareBody,
) -> Result<Justified, Invalid> {
    let mut signers = BTreeSet::new();
    let mut best: Option<&PreparedCert> = None;
    for vc in &pp.new_view {
        if vc.body.inst != pp.inst || vc.body.new_view != pp.view || !signers.insert(vc.signer) {
            return Err(Invalid::BadViewChanges);
        }
        if let Some(c) = &vc.body.prepared {
            if best.map(|b| c.view > b.view).unwrap_or(true) {
                best = Some(c);
            }
        }
    }
    if signers.len() != m.q() {
        return Err(Invalid::NotQuorum);
    }
    if !pp
        .new_view
        .iter()
        .all(|vc| check_view_change(m, verifier, vc))
    {
        return Err(Invalid::Signature);
    }
    Ok(match best {
        Some(c) => Justified::Reproposal(c.value.clone()),
        None => Justified::Free,
    })
}

/// Full self-contained check of a signed pre-prepare. `cmd` is the command a `Deps` value names
/// (for CONS_ckpt the candidate's reference, which the caller obtains from the payload).
/// `ckpt_leader` is leader(b, view) of CONS_ckpt(b) under the rotation in force for b; without it
/// (a third party judging a proof, who does not hold the rotation) any member may have signed.
pub fn check_preprepare(
    m: &Membership,
    verifier: &dyn Verifier,
    window: u64,
    pp: &Signed<PrePrepareBody>,
    cmd: Option<&DepRef>,
    ckpt_leader: Option<&ValidatorId>,
) -> Result<(), Invalid> {
    let b = &pp.body;
    let is_leader = match b.inst {
        InstanceId::Cmd { proposer, .. } => pp.signer == m.leader_cmd(&proposer, b.view),
        InstanceId::Ckpt(_) => ckpt_leader.map_or(m.contains(&pp.signer), |l| pp.signer == *l),
    };
    if !is_leader || b.epoch != m.epoch {
        return Err(Invalid::NotLeader);
    }
    if !pp.verify(&m.genesis, verifier) {
        return Err(Invalid::Signature);
    }
    let justified = if b.view == 0 {
        if !b.new_view.is_empty() {
            return Err(Invalid::BadViewChanges);
        }
        Justified::Free
    } else {
        check_new_view(m, verifier, b)?
    };
    match (&justified, &b.value) {
        (Justified::Reproposal(v), value) => {
            if v != value {
                return Err(Invalid::BadValue);
            }
            if !b.proof.is_empty() {
                return Err(Invalid::BadValue);
            }
            Ok(())
        }
        (Justified::Free, Value::Noop) => match b.inst {
            InstanceId::Cmd { .. } if b.view > 0 && b.proof.is_empty() => Ok(()),
            _ => Err(Invalid::BadValue),
        },
        (Justified::Free, Value::Deps { cmd: c, .. }) => {
            let Some(r) = cmd else {
                return Err(Invalid::BadValue);
            };
            if r.id != *c {
                return Err(Invalid::BadValue);
            }
            match (b.inst, r.kind) {
                (InstanceId::Cmd { proposer, seq, id }, DepKind::Txs { seq: s }) => {
                    if proposer != r.proposer || seq != s || id != r.id {
                        return Err(Invalid::BadValue);
                    }
                }
                (InstanceId::Ckpt(i), DepKind::Ckpt { index, view }) => {
                    // A fresh candidate must be the leader's own for this very view.
                    if index != i || view != b.view || r.proposer != pp.signer {
                        return Err(Invalid::BadValue);
                    }
                }
                _ => return Err(Invalid::BadValue),
            }
            check_reply_proof(m, verifier, window, r, &b.value, &b.proof)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::InsecureTestCrypto;
    use crate::testkit::txs_dep as dep;

    fn setup() -> (Membership, Vec<InsecureTestCrypto>) {
        let keys: Vec<InsecureTestCrypto> =
            (1..=4u8).map(|i| InsecureTestCrypto([i; 32])).collect();
        (
            Membership::new([9; 32], 0, keys.iter().map(|k| k.0).collect()),
            keys,
        )
    }

    fn reply(
        m: &Membership,
        k: &InsecureTestCrypto,
        cmd: DepRef,
        deps: Vec<DepRef>,
        fence: u64,
    ) -> Signed<ReplyBody> {
        Signed::sign(
            ReplyBody {
                epoch: m.epoch,
                cmd,
                pos: 0,
                deps,
                fence,
            },
            &m.genesis,
            k,
        )
    }

    #[test]
    fn a_quorum_proof_determines_union_and_max_fence() {
        let (m, k) = setup();
        let c = dep(1, 0);
        let proof = vec![
            reply(&m, &k[0], c, vec![dep(2, 0)], 3),
            reply(&m, &k[1], c, vec![dep(3, 0), c], 5),
            reply(&m, &k[2], c, vec![dep(2, 0)], 4),
        ];
        let v = value_from_replies(&c, &proof);
        assert_eq!(
            v,
            Value::Deps {
                cmd: c.id,
                deps: vec![dep(2, 0), dep(3, 0)],
                after: 5
            },
            "union minus c, max fence"
        );
        assert_eq!(check_reply_proof(&m, &k[0], 16, &c, &v, &proof), Ok(()));
        // Fewer than q, a duplicated signer, a different value, a forged signature: all rejected.
        assert_eq!(
            check_reply_proof(&m, &k[0], 16, &c, &v, &proof[..2]),
            Err(Invalid::NotQuorum)
        );
        let dup = vec![proof[0].clone(), proof[0].clone(), proof[1].clone()];
        assert_eq!(
            check_reply_proof(&m, &k[0], 16, &c, &v, &dup),
            Err(Invalid::Signature)
        );
        let other = Value::Deps {
            cmd: c.id,
            deps: vec![dep(2, 0)],
            after: 5,
        };
        assert_eq!(
            check_reply_proof(&m, &k[0], 16, &c, &other, &proof),
            Err(Invalid::ValueMismatch)
        );
        let mut forged = proof.clone();
        forged[2].sig = [0; 64];
        assert_eq!(
            check_reply_proof(&m, &k[0], 16, &c, &v, &forged),
            Err(Invalid::Signature)
        );
    }

    #[test]
    fn reply_shape_bounds_entries_per_proposer() {
        let (m, k) = setup();
        let c = dep(1, 0);
        let many: Vec<DepRef> = (0..3).map(|s| dep(2, s)).collect();
        assert!(check_reply_shape(&reply(&m, &k[0], c, many.clone(), 0).body, 3, &m).is_ok());
        assert_eq!(
            check_reply_shape(&reply(&m, &k[0], c, many, 0).body, 2, &m),
            Err(Invalid::TooManyDeps)
        );
    }

    #[test]
    fn reply_naming_a_proposer_outside_the_set_is_invalid() {
        let (m, k) = setup();
        let c = dep(1, 0);
        let outsider = dep(7, 0);
        assert_eq!(
            check_reply_shape(
                &reply(&m, &k[0], c, vec![dep(2, 0), outsider], 0).body,
                16,
                &m
            ),
            Err(Invalid::UnknownProposer)
        );
        // In a proof it convicts: the value the proof determines cannot be proposed.
        let proof = vec![
            reply(&m, &k[0], c, vec![outsider], 0),
            reply(&m, &k[1], c, vec![], 0),
            reply(&m, &k[2], c, vec![], 0),
        ];
        let v = value_from_replies(&c, &proof);
        assert_eq!(
            check_reply_proof(&m, &k[0], 16, &c, &v, &proof),
            Err(Invalid::UnknownProposer)
        );
    }
}
