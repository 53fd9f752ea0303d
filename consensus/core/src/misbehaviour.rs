//! Self-contained misbehaviour proofs (protocol.md, "Misbehaviour").
//!
//! A proof is two signed statements that cannot both come from a correct validator, or one signed
//! proposal whose self-contained validity check fails. [`Proof::check`] re-verifies a proof
//! against a membership and returns the culprit. A correct validator is never the subject of a
//! valid proof (the simulator checks this as S12).

use crate::crypto::{signing_digest, Signable, Signed, Verifier};
use crate::membership::Membership;
use crate::types::*;
use crate::validity::check_preprepare;
use crate::wire::{preprepare, FinalityVote, PrePrepareBody, ReplyBody, VoteBody};
use alloc::vec::Vec;
use codec::{Decode, Encode};

/// A misbehaviour proof. Its variants' indices are fixed: reports travel on chain, and
/// [`ReportedProof`] finds the pre-prepares in a report by them.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub enum Proof {
    /// Two different batch headers in one slot: same (epoch, proposer, seq) for Txs, or same
    /// (epoch, index, view) for checkpoint candidates.
    #[codec(index = 0)]
    BatchEquivocation(Signed<BatchHeader>, Signed<BatchHeader>),
    /// Two different replies of one validator to one command.
    #[codec(index = 1)]
    ReplyEquivocation(Signed<ReplyBody>, Signed<ReplyBody>),
    /// Two votes with the same instance, view and phase on different values.
    #[codec(index = 2)]
    VoteEquivocation(Signed<VoteBody>, Signed<VoteBody>),
    /// Two different pre-prepares of one leader in one (instance, view).
    #[codec(index = 3)]
    PrePrepareEquivocation(Signed<PrePrepareBody>, Signed<PrePrepareBody>),
    /// A signed pre-prepare whose self-contained check fails. The optional header is the command
    /// the value names (needed to check a checkpoint proposal).
    #[codec(index = 4)]
    InvalidProposal(Signed<PrePrepareBody>, Option<Signed<BatchHeader>>),
    /// Two different finality votes of one validator for one height.
    #[codec(index = 5)]
    FinalityEquivocation(Signed<FinalityVote>, Signed<FinalityVote>),
}

/// Largest encoded proof accepted from outside (a reported proof, on chain or off).
pub const MAX_PROOF_LEN: usize = 256 * 1024;

fn slot(h: &BatchHeader) -> (Epoch, ValidatorId, Seq, Option<(BlockIndex, View)>) {
    match h.kind {
        BatchKind::Txs => (h.epoch, h.proposer, h.seq, None),
        BatchKind::Checkpoint { index, view, .. } => (h.epoch, h.proposer, 0, Some((index, view))),
    }
}

/// A proof reported from outside (on chain, by anyone, unsigned), read as far as it can be
/// without expanding a pre-prepare.
///
/// A pre-prepare's reply proof names each dependency once and its replies index into that table
/// (`wire/preprepare.rs`), so decoding it can take up to about 80 times its encoded size in
/// memory. Over the network only a member can send one; a report is open to anyone. So the
/// pre-prepares of a report are walked in place (every check of decoding, nothing built), and
/// only a report that can convict is expanded: [`ReportedProof::read`] refuses a pre-prepare
/// equivocation whose two statements differ in signer or slot or agree in value, and anything
/// after the proof; [`ReportedProof::expand`] checks each pre-prepare's signature, by a member,
/// over the bytes walked, before the proof is decoded.
#[derive(Debug)]
pub struct ReportedProof<'a> {
    bytes: &'a [u8],
    epoch: Epoch,
    accused: ValidatorId,
    /// The reported pre-prepares, unexpanded (none for other kinds of proof).
    preprepares: Vec<RawPrePrepare<'a>>,
}

/// A signed pre-prepare as it was encoded: the body walked, not decoded.
#[derive(Debug)]
struct RawPrePrepare<'a> {
    body: preprepare::WalkedBody<'a>,
    signer: ValidatorId,
    sig: Signature,
}

/// Why a report was refused before it was checked.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReportRefusal {
    /// Longer than [`MAX_PROOF_LEN`], or not exactly a proof's encoding.
    Malformed,
    /// Two pre-prepares that cannot convict: different signers, epochs, instances or views, or
    /// one value.
    NoOffence,
    /// A pre-prepare in it is not signed by a member of the set given.
    NotSigned,
}

impl<'a> RawPrePrepare<'a> {
    fn read(input: &mut &'a [u8]) -> Result<Self, ReportRefusal> {
        let body = preprepare::walk_body(input).map_err(|_| ReportRefusal::Malformed)?;
        Ok(RawPrePrepare {
            body,
            signer: ValidatorId::decode(input).map_err(|_| ReportRefusal::Malformed)?,
            sig: Signature::decode(input).map_err(|_| ReportRefusal::Malformed)?,
        })
    }

    fn signed_by_member(&self, m: &Membership, verifier: &dyn Verifier) -> bool {
        let b = &self.body;
        let d = signing_digest(&m.genesis, b.epoch, PrePrepareBody::TAG, b.bytes);
        m.contains(&self.signer) && verifier.verify(&self.signer, &d, &self.sig)
    }
}

impl<'a> ReportedProof<'a> {
    /// Read a report's kind, epoch and accused. A proof without a pre-prepare is decoded whole
    /// here (derived SCALE, about its own size); pre-prepares are only walked.
    pub fn read(bytes: &'a [u8]) -> Result<Self, ReportRefusal> {
        use ReportRefusal::*;
        if bytes.len() > MAX_PROOF_LEN {
            return Err(Malformed);
        }
        let mut input = bytes;
        let preprepares = match u8::decode(&mut input).map_err(|_| Malformed)? {
            PRE_PREPARE_EQUIVOCATION => {
                let a = RawPrePrepare::read(&mut input)?;
                let b = RawPrePrepare::read(&mut input)?;
                // What `Proof::check` asks of the pair, on the encodings (SCALE is canonical).
                let (x, y) = (&a.body, &b.body);
                if a.signer != b.signer
                    || (x.epoch, x.slot) != (y.epoch, y.slot)
                    || x.value == y.value
                {
                    return Err(NoOffence);
                }
                alloc::vec![a, b]
            }
            INVALID_PROPOSAL => {
                let pp = RawPrePrepare::read(&mut input)?;
                Option::<Signed<BatchHeader>>::decode(&mut input).map_err(|_| Malformed)?;
                alloc::vec![pp]
            }
            _ => Vec::new(),
        };
        let (epoch, accused) = match preprepares.first() {
            Some(p) if input.is_empty() => (p.body.epoch, p.signer),
            Some(_) => return Err(Malformed),
            None => {
                let p = Proof::decode_untrusted(bytes).ok_or(Malformed)?;
                (p.epoch(), p.accused())
            }
        };
        Ok(ReportedProof {
            bytes,
            epoch,
            accused,
            preprepares,
        })
    }

    /// The epoch the proof claims (of its first statement).
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The validator the proof accuses (the signer of its first statement).
    pub fn accused(&self) -> ValidatorId {
        self.accused
    }

    /// Decode the proof, after checking that every pre-prepare in it is signed by a member of
    /// `m`. [`Proof::check`] still judges what this returns.
    pub fn expand(&self, m: &Membership, verifier: &dyn Verifier) -> Result<Proof, ReportRefusal> {
        if !self
            .preprepares
            .iter()
            .all(|p| p.signed_by_member(m, verifier))
        {
            return Err(ReportRefusal::NotSigned);
        }
        Proof::decode_untrusted(self.bytes).ok_or(ReportRefusal::Malformed)
    }
}

/// The indices of [`Proof::PrePrepareEquivocation`] and [`Proof::InvalidProposal`].
const PRE_PREPARE_EQUIVOCATION: u8 = 3;
const INVALID_PROPOSAL: u8 = 4;

impl Proof {
    /// The epoch of the (first) statement: the validator set the proof must be checked against.
    pub fn epoch(&self) -> Epoch {
        match self {
            Proof::BatchEquivocation(a, _) => a.body.epoch,
            Proof::ReplyEquivocation(a, _) => a.body.epoch,
            Proof::VoteEquivocation(a, _) => a.body.epoch,
            Proof::PrePrepareEquivocation(a, _) => a.body.epoch,
            Proof::InvalidProposal(pp, _) => pp.body.epoch,
            Proof::FinalityEquivocation(a, _) => a.body.epoch,
        }
    }

    /// The validator the proof accuses (the signer of its first statement); [`Proof::check`]
    /// decides whether it convicts.
    pub fn accused(&self) -> ValidatorId {
        match self {
            Proof::BatchEquivocation(a, _) => a.signer,
            Proof::ReplyEquivocation(a, _) => a.signer,
            Proof::VoteEquivocation(a, _) => a.signer,
            Proof::PrePrepareEquivocation(a, _) => a.signer,
            Proof::InvalidProposal(pp, _) => pp.signer,
            Proof::FinalityEquivocation(a, _) => a.signer,
        }
    }

    /// A short name of the kind of misbehaviour.
    pub fn kind(&self) -> &'static str {
        match self {
            Proof::BatchEquivocation(..) => "batch equivocation",
            Proof::ReplyEquivocation(..) => "reply equivocation",
            Proof::VoteEquivocation(..) => "vote equivocation",
            Proof::PrePrepareEquivocation(..) => "pre-prepare equivocation",
            Proof::InvalidProposal(..) => "invalid proposal",
            Proof::FinalityEquivocation(..) => "finality equivocation",
        }
    }

    /// Decode a proof from untrusted bytes (bounded depth and length).
    pub fn decode_untrusted(bytes: &[u8]) -> Option<Proof> {
        if bytes.len() > MAX_PROOF_LEN {
            return None;
        }
        let mut input = bytes;
        let proof = <Proof as codec::DecodeLimit>::decode_with_depth_limit(16, &mut input).ok()?;
        input.is_empty().then_some(proof)
    }

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
            Proof::FinalityEquivocation(a, b) => (a.signer == b.signer
                && m.contains(&a.signer)
                && (a.body.epoch, a.body.number) == (b.body.epoch, b.body.number)
                && a.body != b.body
                && a.verify(g, verifier)
                && b.verify(g, verifier))
            .then_some(a.signer),
            Proof::InvalidProposal(pp, header) => {
                if !m.contains(&pp.signer) || !pp.verify(g, verifier) {
                    return None;
                }
                let cmd = match (pp.body.inst, header) {
                    (InstanceId::Cmd { .. }, _) => pp.body.inst.txs_ref(),
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
                        if matches!(pp.body.value, Value::Deps { .. }) {
                            // A candidate proposal cannot be judged without the candidate's
                            // header, in any view: a correct leader's fresh candidate in a view
                            // above 0 fails the header-less check, and the signature does not
                            // cover the header, so anyone holding the pre-prepare could drop
                            // it and frame the leader (reports are open to anyone on chain).
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
    use crate::crypto::{InsecureTestCrypto, Signer};
    use crate::testkit::txs_dep as dep;
    use crate::wire::ViewChangeBody;

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

    #[test]
    fn a_checkpoint_candidate_without_its_header_convicts_nobody() {
        // A correct leader's fresh candidate in view 1: q view changes without a prepared
        // certificate and a candidate value. Without the candidate's header it cannot be judged.
        let m = Membership::new([0; 32], 0, vec![[1; 32], [2; 32], [3; 32], [4; 32]]);
        let vc = |k: u8| {
            Signed::sign(
                ViewChangeBody {
                    epoch: 0,
                    inst: InstanceId::Ckpt(3),
                    new_view: 1,
                    prepared: None,
                    has_payload: true,
                },
                &m.genesis,
                &InsecureTestCrypto([k; 32]),
            )
        };
        let pp = Signed::sign(
            PrePrepareBody {
                epoch: 0,
                inst: InstanceId::Ckpt(3),
                view: 1,
                value: Value::Deps {
                    cmd: [5; 32],
                    deps: vec![],
                    after: 2,
                },
                proof: vec![],
                new_view: vec![vc(1), vc(2), vc(3)],
            },
            &m.genesis,
            &InsecureTestCrypto([2; 32]),
        );
        let k = InsecureTestCrypto([0; 32]);
        assert_eq!(Proof::InvalidProposal(pp, None).check(&m, &k, 8), None);
    }

    fn members() -> Membership {
        Membership::new([0; 32], 0, vec![[1; 32], [2; 32], [3; 32], [4; 32]])
    }

    /// A view-0 pre-prepare body of leader 1 whose three replies share dependencies (encoded
    /// once per body, wire/preprepare.rs); `after` tells two of them apart.
    fn preprepare_body(m: &Membership, after: u64) -> PrePrepareBody {
        let cmd = dep(1, 9);
        let shared = vec![dep(2, 0), dep(3, 0), dep(4, 1)];
        let reply = |k: u8| {
            Signed::sign(
                crate::wire::ReplyBody {
                    epoch: 0,
                    cmd,
                    pos: 1,
                    deps: shared.clone(),
                    fence: 0,
                },
                &m.genesis,
                &InsecureTestCrypto([k; 32]),
            )
        };
        PrePrepareBody {
            epoch: 0,
            inst: cmd.instance(),
            view: 0,
            value: Value::Deps {
                cmd: cmd.id,
                deps: shared.clone(),
                after,
            },
            proof: (1..=3).map(reply).collect(),
            new_view: vec![],
        }
    }

    fn leader_signs(m: &Membership, body: PrePrepareBody) -> Signed<PrePrepareBody> {
        Signed::sign(body, &m.genesis, &InsecureTestCrypto([1; 32]))
    }

    #[test]
    fn a_pre_prepare_equivocation_with_reply_proofs_decodes_from_a_report_and_convicts() {
        let m = members();
        let pp = |after| leader_signs(&m, preprepare_body(&m, after));
        let proof = Proof::PrePrepareEquivocation(pp(0), pp(1));
        let bytes = proof.encode();
        let decoded = Proof::decode_untrusted(&bytes).expect("a report decodes");
        assert_eq!(decoded, proof);
        let k = InsecureTestCrypto([0; 32]);
        assert_eq!(decoded.check(&m, &k, 8), Some([1; 32]));
        // The runtime's path: read without expanding, then expand once the leader's signatures
        // are checked.
        let reported = ReportedProof::read(&bytes).expect("a report reads");
        assert_eq!((reported.epoch(), reported.accused()), (0, [1; 32]));
        assert_eq!(reported.expand(&m, &k), Ok(proof));
        assert_eq!(
            Proof::PrePrepareEquivocation(pp(0), pp(0)).check(&m, &k, 8),
            None,
            "one pre-prepare twice is no equivocation"
        );
    }

    #[test]
    fn a_reported_pre_prepare_is_expanded_only_once_a_member_signed_it() {
        let m = members();
        let k = InsecureTestCrypto([0; 32]);
        let pp = |after| leader_signs(&m, preprepare_body(&m, after));
        // The kinds that carry pre-prepares are found by their first byte.
        assert_eq!(
            Proof::PrePrepareEquivocation(pp(0), pp(1)).encode()[0],
            PRE_PREPARE_EQUIVOCATION
        );
        assert_eq!(
            Proof::InvalidProposal(pp(0), None).encode()[0],
            INVALID_PROPOSAL
        );

        // Either statement signed with another member's key, or by a key outside the set.
        let mut forged = pp(1);
        forged.sig = InsecureTestCrypto([2; 32]).sign(&[7; 32]);
        let outsider = |after| {
            Signed::sign(
                preprepare_body(&m, after),
                &m.genesis,
                &InsecureTestCrypto([9; 32]),
            )
        };
        for (why, proof) in [
            (
                "first forged",
                Proof::PrePrepareEquivocation(forged.clone(), pp(0)),
            ),
            (
                "second forged",
                Proof::PrePrepareEquivocation(pp(0), forged.clone()),
            ),
            ("proposal forged", Proof::InvalidProposal(forged, None)),
            (
                "not a member",
                Proof::PrePrepareEquivocation(outsider(0), outsider(1)),
            ),
        ] {
            let bytes = proof.encode();
            let reported = ReportedProof::read(&bytes).expect("reads");
            assert_eq!(
                reported.expand(&m, &k),
                Err(ReportRefusal::NotSigned),
                "{why}"
            );
        }

        // Pairs that cannot convict are refused when read, signed or not.
        let other_view = {
            let mut b = preprepare_body(&m, 1);
            b.view = 1;
            leader_signs(&m, b)
        };
        let other_leader = Signed::sign(
            preprepare_body(&m, 1),
            &m.genesis,
            &InsecureTestCrypto([2; 32]),
        );
        for (why, a, b) in [
            ("one value", pp(0), pp(0)),
            ("two views", pp(0), other_view),
            ("two signers", pp(0), other_leader),
        ] {
            let bytes = Proof::PrePrepareEquivocation(a, b).encode();
            assert_eq!(
                ReportedProof::read(&bytes).err(),
                Some(ReportRefusal::NoOffence),
                "{why}"
            );
        }

        // A body the decoder refuses (its table's first two entries swapped) is refused when
        // walked, before its signature, even one over exactly those bytes.
        let body = preprepare_body(&m, 0);
        let mut raw = body.encode();
        let table_at = (body.epoch, body.inst, body.view, &body.value)
            .encode()
            .len()
            + 1;
        let (a, b) = (dep(2, 0).encode(), dep(3, 0).encode());
        assert_eq!(&raw[table_at..table_at + a.len()], &a[..]);
        raw[table_at..table_at + b.len()].copy_from_slice(&b);
        raw[table_at + b.len()..table_at + b.len() + a.len()].copy_from_slice(&a);
        let d = signing_digest(&m.genesis, 0, PrePrepareBody::TAG, &raw);
        let mut bytes = vec![INVALID_PROPOSAL];
        bytes.extend_from_slice(&raw);
        bytes.extend_from_slice(&[1; 32]);
        bytes.extend_from_slice(&InsecureTestCrypto([1; 32]).sign(&d));
        None::<Signed<BatchHeader>>.encode_to(&mut bytes);
        assert_eq!(
            ReportedProof::read(&bytes).err(),
            Some(ReportRefusal::Malformed)
        );

        // Truncated or trailing reports do not read.
        let whole = Proof::PrePrepareEquivocation(pp(0), pp(1)).encode();
        assert!(ReportedProof::read(&whole[..whole.len() - 1]).is_err());
        let mut trailing = whole.clone();
        trailing.push(0);
        assert_eq!(
            ReportedProof::read(&trailing).err(),
            Some(ReportRefusal::Malformed)
        );
        let mut trailing = Proof::InvalidProposal(pp(0), None).encode();
        trailing.push(0);
        assert_eq!(
            ReportedProof::read(&trailing).err(),
            Some(ReportRefusal::Malformed)
        );

        // A pre-prepare whose replies name as many references as one may (2^18, a byte each)
        // is longer than a report may be: refused for its length alone.
        let mut big = preprepare_body(&m, 0);
        big.proof.truncate(1);
        big.proof[0].body.deps = vec![dep(2, 0); crate::wire::MAX_PROOF_DEP_REFS];
        let big = Proof::InvalidProposal(leader_signs(&m, big), None).encode();
        assert!(big.len() > MAX_PROOF_LEN);
        let mut input = &big[1..];
        assert!(
            RawPrePrepare::read(&mut input).is_ok(),
            "the body alone walks"
        );
        assert_eq!(
            ReportedProof::read(&big).err(),
            Some(ReportRefusal::Malformed)
        );
    }

    #[test]
    fn finality_equivocation_needs_one_height_and_two_bodies() {
        let m = Membership::new([0; 32], 0, vec![[1; 32], [2; 32], [3; 32], [4; 32]]);
        let k = InsecureTestCrypto([2; 32]);
        let v = |number: u64, d: u8| {
            Signed::sign(
                FinalityVote {
                    epoch: 0,
                    number,
                    hash: [d; 32],
                    state_root: [0; 32],
                },
                &m.genesis,
                &k,
            )
        };
        let proof = Proof::FinalityEquivocation(v(7, 1), v(7, 2));
        assert_eq!(proof.check(&m, &k, 8), Some([2; 32]));
        assert_eq!(
            Proof::decode_untrusted(&proof.encode()),
            Some(proof.clone())
        );
        // Without a pre-prepare a report is decoded when read.
        let bytes = proof.encode();
        let reported = ReportedProof::read(&bytes).expect("reads");
        assert_eq!((reported.epoch(), reported.accused()), (0, [2; 32]));
        assert_eq!(reported.expand(&m, &k), Ok(proof));
        // Votes for two heights are what a correct validator sends.
        assert_eq!(
            Proof::FinalityEquivocation(v(7, 1), v(8, 2)).check(&m, &k, 8),
            None
        );
        // Someone else's key cannot sign for validator 2.
        let mut forged = v(7, 2);
        forged.sig = InsecureTestCrypto([3; 32]).sign(&[9; 32]);
        assert_eq!(
            Proof::FinalityEquivocation(v(7, 1), forged).check(&m, &k, 8),
            None
        );
        // Trailing bytes and garbage do not decode.
        let mut bytes = Proof::FinalityEquivocation(v(7, 1), v(7, 2)).encode();
        bytes.push(0);
        assert_eq!(Proof::decode_untrusted(&bytes), None);
        assert_eq!(Proof::decode_untrusted(&[0xff; 40]), None);
    }
}
