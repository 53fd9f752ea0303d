//! Persisted state behind a small read-only trait (raft-rs style): writes leave the core as
//! [`crate::Output::Persist`] and must be applied, in order, before any later `Send` of the same
//! output batch. On restart the replica is rebuilt from [`Storage::load`].
//!
//! What is persisted (and why it prevents equivocation after a restart): own batches (never reuse
//! a seq), own candidates per (b, v) and pre-prepares per (instance, view) (never two proposals in
//! one slot), cached replies with the command header (never a second reply; fence and positions
//! rebuilt), votes (never a second vote in one (instance, view, phase)), view changes, decisions,
//! decided marks and per-proposer floors (below a floor the marks are gone: the watermark restarts
//! there, not at seq 0), and the block meta. The next own seq is rebuilt from own batches, own
//! decided marks and the own floor, so a seq is never reused even after every own batch was
//! collected.

use crate::crypto::Signed;
use crate::rotation::Rotation;
use crate::types::*;
use crate::wire::{
    Decision, Phase, PrePrepareBody, PreparedCert, ReplyBody, SignedBatch, ViewChangeBody, VoteBody,
};
use codec::{Decode, Encode};
use std::collections::BTreeMap;

/// Storage keys.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug, Encode, Decode)]
pub enum Key {
    /// Block/fence meta.
    Meta,
    /// One of our own batches.
    OwnBatch(Seq),
    /// One of our own checkpoint candidates.
    OwnCandidate(BlockIndex, View),
    /// Our cached reply to a command (with its header).
    Reply(CommandId),
    /// Our vote.
    Vote(InstanceId, View, Phase),
    /// Our view change.
    ViewChange(InstanceId, View),
    /// Our pre-prepare as a leader.
    PrePrepare(InstanceId, View),
    /// A decision (with payload).
    Decision(InstanceId),
    /// A decided mark.
    Decided(ValidatorId, Seq, CommandId),
    /// Our highest prepared certificate of an instance (PBFT locking survives restarts).
    Prepared(InstanceId),
}

/// Block and fence meta.
#[derive(Clone, PartialEq, Eq, Debug, Default, Encode, Decode)]
pub struct Meta {
    /// Our fence (highest b we replied to a candidate for).
    pub fence: BlockIndex,
    /// Next reply position.
    pub next_pos: u64,
    /// Last block built and handed to the engine.
    pub built: BlockIndex,
    /// Digest of K_built.
    pub built_ckpt: CommandId,
    /// Timestamp of K_built.
    pub built_ts: u64,
    /// The checkpoint-leader rotation in force for block built + 1.
    pub next_rotation: Rotation,
    /// K_built's agreed floors (the decided record's floors after a restart).
    pub built_floors: Floors,
}

/// Stored values.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub enum Record {
    /// Meta.
    Meta(Meta),
    /// Own batch or candidate.
    Batch(SignedBatch),
    /// Cached reply and the header it answers.
    Reply(Signed<ReplyBody>, Signed<BatchHeader>),
    /// A vote.
    Vote(Signed<VoteBody>),
    /// A view change.
    ViewChange(Signed<ViewChangeBody>),
    /// A pre-prepare.
    PrePrepare(Signed<PrePrepareBody>),
    /// A decision.
    Decision(Decision, Option<SignedBatch>),
    /// A decided mark (does it count for the watermark?).
    Marked(bool),
    /// A prepared certificate.
    Prepared(PreparedCert),
}

/// One write.
// Writes are applied right after they are produced; `Put` is the common case, so boxing it
// would only add an allocation per write.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum StorageOp {
    /// Insert or overwrite.
    Put(Key, Record),
    /// Remove.
    Delete(Key),
}

impl StorageOp {
    /// The key written.
    pub fn key(&self) -> &Key {
        match self {
            StorageOp::Put(k, _) | StorageOp::Delete(k) => k,
        }
    }
}

/// Read-only access to persisted state.
pub trait Storage {
    /// Every stored (key, record), in key order.
    fn load(&self) -> Vec<(Key, Record)>;
}

/// In-memory storage for tests and the simulator (survives a simulated crash).
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    map: BTreeMap<Key, Record>,
}

impl MemStorage {
    /// Apply writes in order.
    pub fn apply(&mut self, ops: &[StorageOp]) {
        for op in ops {
            match op {
                StorageOp::Put(k, v) => {
                    self.map.insert(k.clone(), v.clone());
                }
                StorageOp::Delete(k) => {
                    self.map.remove(k);
                }
            }
        }
    }
    /// Number of stored records.
    pub fn len(&self) -> usize {
        self.map.len()
    }
    /// Is it empty?
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl Storage for MemStorage {
    fn load(&self) -> Vec<(Key, Record)> {
        self.map
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_delete() {
        let mut s = MemStorage::default();
        s.apply(&[StorageOp::Put(Key::Meta, Record::Meta(Meta::default()))]);
        assert_eq!(s.len(), 1);
        s.apply(&[StorageOp::Delete(Key::Meta)]);
        assert!(s.is_empty());
    }
}
