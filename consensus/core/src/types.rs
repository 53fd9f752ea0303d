//! Basic identifiers and the command (batch) model.
//!
//! A command is a batch proposed by one validator (protocol.md, "Commands and conflicts").
//! Its identity is `blake2_256(SCALE(header))`. Two commands conflict iff either is a
//! checkpoint candidate or their access sets intersect; [`GLOBAL`] conflicts with everything.

use alloc::vec::Vec;
use codec::{Decode, Encode};

/// A validator identity: its sr25519 public key.
pub type ValidatorId = [u8; 32];
/// A 32-byte blake2 digest.
pub type Digest = [u8; 32];
/// An sr25519 signature.
pub type Signature = [u8; 64];
/// Epoch number (one validator set per epoch).
pub type Epoch = u64;
/// Per-proposer, gap-free batch sequence number.
pub type Seq = u64;
/// Per-proposer floors (see [`crate::floors`]): sorted by validator, zero entries left out.
pub type Floors = Vec<(ValidatorId, Seq)>;
/// Block / checkpoint index (block 0 is genesis; the first cut block is 1).
pub type BlockIndex = u64;
/// PBFT view of one single-shot instance.
pub type View = u32;
/// An account key in an access set.
pub type AccountId = [u8; 32];
/// The command id: blake2_256 of the SCALE-encoded header.
pub type CommandId = Digest;

/// The access key that conflicts with every other key (calls the runtime does not understand).
pub const GLOBAL: AccountId = [0xff; 32];

/// blake2_256 helper.
pub fn hash(bytes: &[u8]) -> Digest {
    sp_crypto_hashing::blake2_256(bytes)
}

/// An opaque transaction plus its declared, sorted access set. The core never interprets `data`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug, Encode, Decode)]
pub struct Tx {
    /// Sorted, deduplicated accounts the transaction touches (may contain [`GLOBAL`]).
    pub access: Vec<AccountId>,
    /// Opaque bytes (an extrinsic for the engine, a toy transfer for the simulator).
    pub data: Vec<u8>,
}

/// A batch's transactions, shared by everything that holds the batch. A batch is immutable once
/// its header is signed, so the copies a replica keeps (the batch, the message it came in, its
/// stored record, the block it ends in) share one list instead of each owning a copy: cloning a
/// batch costs a reference count, not an allocation per transaction. The wire encoding is the
/// list's own.
pub type Txs = alloc::sync::Arc<Vec<Tx>>;

/// What a batch carries.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug, Encode, Decode)]
pub enum BatchKind {
    /// Ordinary transactions.
    Txs,
    /// A checkpoint candidate for block `index`, announced by leader(index, view).
    Checkpoint {
        /// Block index the candidate would close.
        index: BlockIndex,
        /// View of CONS_ckpt(index) in which it was announced.
        view: View,
        /// Proposed chain time.
        timestamp_ms: u64,
        /// Agreed floors from this block on: a Txs command of p with a seq below p's floor
        /// that has not landed yet never lands ([`crate::floors`]).
        floors: Floors,
    },
}

/// The signed part of a batch. Identity = blake2_256(SCALE(header)).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug, Encode, Decode)]
pub struct BatchHeader {
    /// Epoch the batch belongs to.
    pub epoch: Epoch,
    /// Proposer (for a checkpoint candidate: the checkpoint leader).
    pub proposer: ValidatorId,
    /// Gap-free per proposer for `Txs`; 0 for checkpoint candidates (they do not consume seqs).
    pub seq: Seq,
    /// Txs: digest of the last checkpoint the proposer saw committed. Candidate: digest of K_(b-1).
    pub base: Digest,
    /// Txs or checkpoint candidate.
    pub kind: BatchKind,
    /// Sorted union of the transactions' access sets (empty for candidates).
    pub access: Vec<AccountId>,
    /// blake2_256(SCALE(txs)).
    pub txs_root: Digest,
    /// Sum of the encoded transaction sizes (a stand-in for runtime weight).
    pub weight: u64,
}

impl BatchHeader {
    /// The command id.
    pub fn id(&self) -> CommandId {
        hash(&self.encode())
    }
    /// Is this a checkpoint candidate?
    pub fn is_checkpoint(&self) -> bool {
        matches!(self.kind, BatchKind::Checkpoint { .. })
    }
    /// The reference naming this command in dependency sets.
    pub fn dep_ref(&self) -> DepRef {
        let kind = match self.kind {
            BatchKind::Txs => DepKind::Txs { seq: self.seq },
            BatchKind::Checkpoint { index, view, .. } => DepKind::Ckpt { index, view },
        };
        DepRef {
            proposer: self.proposer,
            kind,
            id: self.id(),
        }
    }
}

/// The kind part of a [`DepRef`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Encode, Decode)]
pub enum DepKind {
    /// A transaction batch with its sequence number.
    Txs {
        /// Proposer's seq.
        seq: Seq,
    },
    /// A checkpoint candidate for `index` announced in `view`.
    Ckpt {
        /// Block index.
        index: BlockIndex,
        /// View.
        view: View,
    },
}

/// A dependency entry: names its proposer, so even an id nobody has seen has a recovery leader.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Encode, Decode)]
pub struct DepRef {
    /// Proposer of the command.
    pub proposer: ValidatorId,
    /// Txs seq or candidate slot.
    pub kind: DepKind,
    /// Command id.
    pub id: CommandId,
}

impl DepRef {
    /// The consensus instance that decides this command.
    pub fn instance(&self) -> InstanceId {
        match self.kind {
            DepKind::Txs { seq } => InstanceId::Cmd {
                proposer: self.proposer,
                seq,
                id: self.id,
            },
            DepKind::Ckpt { index, .. } => InstanceId::Ckpt(index),
        }
    }
}

/// Canonical key (epoch, proposer, seq, digest) used to break ties inside strongly connected
/// components and to key the Kahn min-heap.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Encode, Decode)]
pub struct CanonicalKey {
    /// Epoch.
    pub epoch: Epoch,
    /// Proposer.
    pub proposer: ValidatorId,
    /// Seq (0 for candidates).
    pub seq: Seq,
    /// Command id.
    pub id: CommandId,
}

impl BatchHeader {
    /// The canonical key of this command.
    pub fn canonical_key(&self) -> CanonicalKey {
        CanonicalKey {
            epoch: self.epoch,
            proposer: self.proposer,
            seq: self.seq,
            id: self.id(),
        }
    }
}

/// One single-shot consensus instance: one per Txs command, one per block index.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Encode, Decode)]
pub enum InstanceId {
    /// CONS_c for a Txs command.
    Cmd {
        /// Proposer (view-0 leader, and base of the recovery rotation).
        proposer: ValidatorId,
        /// Proposer's seq.
        seq: Seq,
        /// Command id.
        id: CommandId,
    },
    /// CONS_ckpt(b).
    Ckpt(BlockIndex),
}

impl InstanceId {
    /// The dependency reference naming the Txs command this instance decides (the inverse of
    /// [`DepRef::instance`]); `None` for a checkpoint instance, whose candidate the id alone
    /// does not name.
    pub fn txs_ref(&self) -> Option<DepRef> {
        match *self {
            InstanceId::Cmd { proposer, seq, id } => Some(DepRef {
                proposer,
                kind: DepKind::Txs { seq },
                id,
            }),
            InstanceId::Ckpt(_) => None,
        }
    }
}

/// The value a consensus instance decides.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug, Encode, Decode)]
pub enum Value {
    /// The command commits with these dependencies and this fence.
    Deps {
        /// The command (for CONS_ckpt(b): the winning candidate).
        cmd: CommandId,
        /// Sorted, deduplicated dependencies (the command itself excluded).
        deps: Vec<DepRef>,
        /// after(c) = max of the fences of the reply quorum.
        after: BlockIndex,
    },
    /// The command is decided as nothing (never valid for CONS_ckpt).
    Noop,
}

impl Value {
    /// Digest voted on.
    pub fn digest(&self) -> Digest {
        hash(&self.encode())
    }
}

/// Merge sorted access sets.
pub fn union_access<'a>(sets: impl IntoIterator<Item = &'a [AccountId]>) -> Vec<AccountId> {
    let mut all: Vec<AccountId> = sets.into_iter().flat_map(|s| s.iter().copied()).collect();
    all.sort();
    all.dedup();
    all
}

/// Do two sorted access sets conflict? ([`GLOBAL`] conflicts with everything.)
pub fn access_conflicts(a: &[AccountId], b: &[AccountId]) -> bool {
    if a.last() == Some(&GLOBAL) || b.last() == Some(&GLOBAL) {
        return true;
    }
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            core::cmp::Ordering::Less => i += 1,
            core::cmp::Ordering::Greater => j += 1,
            core::cmp::Ordering::Equal => return true,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts() {
        let a = [[1u8; 32], [3u8; 32]];
        let b = [[2u8; 32], [3u8; 32]];
        let c = [[4u8; 32]];
        assert!(access_conflicts(&a, &b));
        assert!(!access_conflicts(&a, &c));
        assert!(access_conflicts(&a, &[GLOBAL]));
        assert!(access_conflicts(&[GLOBAL], &[]));
        assert!(!access_conflicts(&[], &c));
    }

    #[test]
    fn global_sorts_last() {
        let u = union_access([&[GLOBAL][..], &[[7u8; 32]][..]]);
        assert_eq!(u.last(), Some(&GLOBAL));
    }
}
