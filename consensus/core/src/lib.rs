//! # bsmr consensus core
//!
//! Byzantine leaderless state-machine replication (protocol.md, Profile A, n >= 3f+1) as a
//! deterministic, sans-io state machine: dependency discovery + one single-shot PBFT instance per
//! command + execution from the dependency graph, with blocks cut by checkpoint fences.
//!
//! Drive a [`Replica`] with [`Replica::handle`]`(now_ms, Input) -> Vec<Output>`; apply every
//! [`Output::Persist`] before any later [`Output::Send`] of the same batch. See
//! `docs/consensus.md` for the design and the papers it follows.
#![warn(missing_docs)]

pub mod checkpoint;
pub mod crypto;
pub mod dds;
pub mod epoch;
pub mod executor;
pub mod gc;
pub mod instance;
pub mod membership;
pub mod misbehaviour;
pub mod replica;
pub mod rotation;
pub mod storage;
pub mod types;
pub mod validity;
pub mod wire;

pub use crypto::{InsecureTestCrypto, Signed, Signer, Verifier};
pub use membership::Membership;
pub use misbehaviour::Proof;
pub use replica::{Config, Input, Output, Replica, Stats, TimerId};
pub use rotation::Rotation;
pub use storage::{Key, MemStorage, Record, Storage, StorageOp};
pub use types::*;
pub use wire::{decode_message, encode_message, FinishedBlock, Message, SignedBatch};
