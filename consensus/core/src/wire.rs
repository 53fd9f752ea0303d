//! Wire messages (SCALE) and bounded decoding of untrusted bytes.
//!
//! Every transferable item (batch header, reply, vote, view change, pre-prepare) is signed on
//! its own (see [`crate::crypto`]); the envelope [`Message`] relies on authenticated links for
//! the sender and is therefore unsigned. [`decode_message`] never panics and never allocates
//! more than a constant factor of its input (about 80: a pre-prepare's proof names each
//! dependency by a one-byte index, [`preprepare`]): the input length is capped at
//! [`MAX_MESSAGE_BYTES`], nesting depth at [`MAX_DEPTH`], and all bytes must be consumed.

use crate::crypto::{Signable, Signed};
use crate::rotation::Rotation;
use crate::types::*;
use alloc::vec::Vec;
use codec::{Decode, DecodeLimit, Encode};

pub mod preprepare;
pub use preprepare::MAX_PROOF_DEP_REFS;

/// Maximum encoded size of one message.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;
/// Maximum SCALE nesting depth.
pub const MAX_DEPTH: u32 = 16;

/// A batch with its payload; the header is signed by the proposer.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct SignedBatch {
    /// Signed header.
    pub header: Signed<BatchHeader>,
    /// Transactions (empty for checkpoint candidates).
    pub txs: Txs,
}

impl SignedBatch {
    /// Command id.
    pub fn id(&self) -> CommandId {
        self.header.body.id()
    }
}

impl Signable for BatchHeader {
    const TAG: &'static [u8] = b"batch";
    fn epoch(&self) -> Epoch {
        self.epoch
    }
}

/// A dependency reply {c, pos, R, fence}. Cached and resent verbatim: never recomputed.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug, Encode, Decode)]
pub struct ReplyBody {
    /// Epoch.
    pub epoch: Epoch,
    /// The command replied to.
    pub cmd: DepRef,
    /// Replier's log position for it (strictly increasing per replier).
    pub pos: u64,
    /// Conflicting commands in the replier's log, sorted.
    pub deps: Vec<DepRef>,
    /// Replier's fence when replying (non-decreasing).
    pub fence: BlockIndex,
}

impl Signable for ReplyBody {
    const TAG: &'static [u8] = b"reply";
    fn epoch(&self) -> Epoch {
        self.epoch
    }
}

/// PBFT vote phase.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Encode, Decode)]
pub enum Phase {
    /// Prepare.
    Prepare,
    /// Commit.
    Commit,
}

/// A vote on a value digest.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug, Encode, Decode)]
pub struct VoteBody {
    /// Epoch.
    pub epoch: Epoch,
    /// Instance.
    pub inst: InstanceId,
    /// View.
    pub view: View,
    /// Phase.
    pub phase: Phase,
    /// Digest of the [`Value`].
    pub value: Digest,
}

impl Signable for VoteBody {
    const TAG: &'static [u8] = b"vote";
    fn epoch(&self) -> Epoch {
        self.epoch
    }
}

/// q prepare votes for one (instance, view, value).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug, Encode, Decode)]
pub struct PreparedCert {
    /// View in which it prepared.
    pub view: View,
    /// The prepared value.
    pub value: Value,
    /// q signed Prepare votes.
    pub votes: Vec<Signed<VoteBody>>,
}

/// A view change request for `inst` to move to `new_view`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug, Encode, Decode)]
pub struct ViewChangeBody {
    /// Epoch.
    pub epoch: Epoch,
    /// Instance.
    pub inst: InstanceId,
    /// The view asked for.
    pub new_view: View,
    /// Highest prepared certificate held.
    pub prepared: Option<PreparedCert>,
    /// Does the sender hold the payload?
    pub has_payload: bool,
}

impl Signable for ViewChangeBody {
    const TAG: &'static [u8] = b"viewchange";
    fn epoch(&self) -> Epoch {
        self.epoch
    }
}

/// A leader's proposal in a view. View 0 carries the reply proof; later views carry the q view
/// changes (NewView) and, when not re-proposing a prepared value, a reply proof too. Encoded with
/// each dependency of the proof once ([`preprepare`]).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct PrePrepareBody {
    /// Epoch.
    pub epoch: Epoch,
    /// Instance.
    pub inst: InstanceId,
    /// View.
    pub view: View,
    /// Proposed value.
    pub value: Value,
    /// q signed replies for the command (empty for Noop and for re-proposals).
    pub proof: Vec<Signed<ReplyBody>>,
    /// q signed view changes (empty in view 0).
    pub new_view: Vec<Signed<ViewChangeBody>>,
}

impl Signable for PrePrepareBody {
    const TAG: &'static [u8] = b"preprepare";
    fn epoch(&self) -> Epoch {
        self.epoch
    }
}

/// What a validator signs after executing block `number` (protocol.md, "Execution and blocks",
/// Finality); q of them for one block are its certificate. Two different votes of one validator
/// for one height are a finality equivocation.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Encode, Decode)]
pub struct FinalityVote {
    /// Epoch of the signer's validator set.
    pub epoch: Epoch,
    /// Block number (= checkpoint index b).
    pub number: u64,
    /// Block hash.
    pub hash: Digest,
    /// State root after executing the block.
    pub state_root: Digest,
}

impl Signable for FinalityVote {
    const TAG: &'static [u8] = b"finality";
    fn epoch(&self) -> Epoch {
        self.epoch
    }
}

/// q commit votes for a value: the decision, checkable by anyone.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct Decision {
    /// Instance.
    pub inst: InstanceId,
    /// Decided value.
    pub value: Value,
    /// q signed Commit votes on `value`.
    pub cert: Vec<Signed<VoteBody>>,
}

/// A finished block: what the engine builds. (`Default`: an empty block at index 0, for tests.)
#[derive(Clone, PartialEq, Eq, Debug, Default, Encode, Decode)]
pub struct FinishedBlock {
    /// Block index b.
    pub index: BlockIndex,
    /// K_b's timestamp (the engine uses max(prev + 1, this)).
    pub timestamp_ms: u64,
    /// K_b's id.
    pub checkpoint: CommandId,
    /// The view in which K_b was announced (0 unless its turn's leader missed it).
    pub checkpoint_view: View,
    /// The checkpoint-leader rotation in force for block b + 1 (derived from the rotation for b
    /// and `checkpoint_view`; carried so that replicas adopting the block, and nodes starting
    /// from the chain, learn it).
    pub next_rotation: Rotation,
    /// K_b's agreed floors (what this block voided, and what a replica adopting the block
    /// counts as decided).
    pub floors: Floors,
    /// Txs batches in canonical order: (command id, header, transactions).
    pub batches: Vec<(BatchHeader, Txs)>,
}

impl FinishedBlock {
    /// A digest of the block body (the simulator's stand-in for a block hash).
    pub fn digest(&self) -> Digest {
        hash(&self.encode())
    }
}

/// Every message exchanged between validators.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub enum Message {
    /// A batch or checkpoint candidate (first sent by its proposer; also re-announced by recovery
    /// leaders and sent in answer to [`Message::Fetch`]).
    Announce(SignedBatch),
    /// A dependency reply.
    Reply(Signed<ReplyBody>),
    /// A proposal; carries the payload when the receiver may lack it (view > 0).
    PrePrepare(Signed<PrePrepareBody>, Option<SignedBatch>),
    /// A Prepare or Commit vote.
    Vote(Signed<VoteBody>),
    /// A view change.
    ViewChange(Signed<ViewChangeBody>),
    /// A decision certificate, with the payload when it is a Txs command or a candidate.
    Decided(Decision, Option<SignedBatch>),
    /// Ask for the payload / decision of an instance.
    Fetch(InstanceId),
    /// Ask for finished blocks from this index on.
    SyncRequest(BlockIndex),
    /// A finished block (accepted once f+1 validators sent the same one).
    SyncBlock(FinishedBlock),
    /// Ask what is settled at block `at` of `epoch` (sent by a replica too far behind for
    /// `SyncBlock`s, which knows block `at` from the certified chain).
    SettledRequest {
        /// Epoch of the asking replica.
        epoch: Epoch,
        /// A finalized block index.
        at: BlockIndex,
    },
    /// The answer: per proposer, the seqs the sender knows settled at block `at`. Taken as true
    /// only when f+1 validators vouch for it (docs/consensus.md, "Rejoining from the chain").
    Settled {
        /// Epoch of the answering replica.
        epoch: Epoch,
        /// The block index asked about.
        at: BlockIndex,
        /// One entry per proposer with something settled.
        proposers: Vec<SettledSeqs>,
    },
    /// The signed header of a decided command, sent with a [`Message::Decided`] that carries no
    /// payload: it shows a replica that decided the command without ever seeing it that the
    /// command was real, so its decision counts for the proposer's watermark.
    Header(Signed<BatchHeader>),
}

impl Message {
    /// A short name of the message's kind, for metrics and logs (a pre-prepare or decision that
    /// carries its payload is named apart: it is what a thin link feels).
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Announce(_) => "announce",
            Message::Reply(_) => "reply",
            Message::PrePrepare(_, None) => "preprepare",
            Message::PrePrepare(_, Some(_)) => "preprepare_payload",
            Message::Vote(_) => "vote",
            Message::ViewChange(_) => "view_change",
            Message::Decided(_, None) => "decided",
            Message::Decided(_, Some(_)) => "decided_payload",
            Message::Fetch(_) => "fetch",
            Message::SyncRequest(_) => "sync_request",
            Message::SyncBlock(_) => "sync_block",
            Message::SettledRequest { .. } => "settled_request",
            Message::Settled { .. } => "settled",
            Message::Header(_) => "header",
        }
    }
}

/// What is settled at a block for one proposer: every command of `proposer` with a seq below
/// `floor`, and every listed command, is decided, and if it committed, it is in that block or an
/// earlier one.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct SettledSeqs {
    /// The proposer.
    pub proposer: ValidatorId,
    /// Every command with a lower seq is settled (the sender's decided-record floor, or lower).
    pub floor: Seq,
    /// Settled commands at or above `floor`, as (seq, id) (at most [`MAX_SETTLED_MARKS`]).
    pub decided: Vec<(Seq, CommandId)>,
}

/// Most commands above the floor one [`SettledSeqs`] may list.
pub const MAX_SETTLED_MARKS: usize = 256;

/// Why untrusted bytes were rejected.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Larger than [`MAX_MESSAGE_BYTES`].
    #[error("message too large: {0} bytes")]
    TooLarge(usize),
    /// Not valid SCALE for [`Message`] (or too deep).
    #[error("malformed message")]
    Malformed,
    /// Trailing bytes after the message.
    #[error("trailing bytes")]
    Trailing,
}

/// Decode an untrusted message: bounded size and depth, all input consumed, never panics.
pub fn decode_message(bytes: &[u8]) -> Result<Message, DecodeError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::TooLarge(bytes.len()));
    }
    let mut input = bytes;
    let m = Message::decode_with_depth_limit(MAX_DEPTH, &mut input)
        .map_err(|_| DecodeError::Malformed)?;
    if !input.is_empty() {
        return Err(DecodeError::Trailing);
    }
    Ok(m)
}

/// Encode a message.
pub fn encode_message(m: &Message) -> Vec<u8> {
    m.encode()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn roundtrip() {
        let m = Message::Fetch(InstanceId::Ckpt(3));
        assert_eq!(decode_message(&encode_message(&m)), Ok(m));
        let mut b = encode_message(&Message::SyncRequest(9));
        b.push(0);
        assert_eq!(decode_message(&b), Err(DecodeError::Trailing));
    }

    #[test]
    fn huge_length_prefix_does_not_allocate() {
        // Variant 1 (Reply) ... then a compact length claiming 2^30 deps.
        let mut b = vec![1u8];
        b.extend_from_slice(&0u64.encode());
        b.extend_from_slice(&[0u8; 32]);
        b.push(0);
        b.extend_from_slice(&0u64.encode());
        b.extend_from_slice(&[0u8; 32]);
        b.extend_from_slice(&0u64.encode());
        b.extend_from_slice(&codec::Compact(1u32 << 30).encode());
        assert!(decode_message(&b).is_err());
    }

    proptest! {
        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_message(&bytes);
        }
    }
}
