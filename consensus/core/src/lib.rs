//! # bsmr consensus core
//!
//! Byzantine leaderless state-machine replication (protocol.md, Profile A, n >= 3f+1) as a
//! deterministic, sans-io state machine: dependency discovery + one single-shot PBFT instance per
//! command + execution from the dependency graph, with blocks cut by checkpoint fences.
//!
//! Drive a [`Replica`] with [`Replica::handle`]`(now_ms, Input) -> Vec<Output>`; apply every
//! [`Output::Persist`] before any later [`Output::Send`] of the same batch. See
//! `docs/consensus.md` for the design and the papers it follows.
//!
//! Without the default `std` feature only the message formats and the misbehaviour-proof check
//! are built (`no_std` + `alloc`): the runtime's membership pallet verifies reported proofs with
//! the same code that produces them.
#![warn(missing_docs)]
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod backoff;
#[cfg(feature = "std")]
pub mod chain;
#[cfg(feature = "std")]
pub mod checkpoint;
pub mod crypto;
#[cfg(feature = "std")]
pub mod ctx;
#[cfg(feature = "std")]
pub mod dds;
#[cfg(feature = "std")]
pub mod decided;
#[cfg(feature = "std")]
pub mod discovery;
#[cfg(feature = "std")]
pub mod epoch;
#[cfg(feature = "std")]
pub mod execution;
pub mod floors;
#[cfg(feature = "std")]
pub mod gc;
#[cfg(feature = "std")]
pub mod io;
pub mod membership;
pub mod misbehaviour;
#[cfg(feature = "std")]
pub mod outbox;
#[cfg(feature = "std")]
pub mod recovery;
#[cfg(feature = "std")]
pub mod replica;
pub mod rotation;
#[cfg(feature = "std")]
pub mod single_shot;
#[cfg(feature = "std")]
pub mod storage;
#[cfg(test)]
mod testkit;
pub mod types;
pub mod validity;
pub mod wire;

pub use crypto::{InsecureTestCrypto, Signed, Signer, Verifier};
#[cfg(feature = "std")]
pub use io::{ChainPosition, Config, Input, Output, Stats, TimerId};
pub use membership::Membership;
pub use misbehaviour::Proof;
#[cfg(feature = "std")]
pub use replica::Replica;
pub use rotation::Rotation;
#[cfg(feature = "std")]
pub use storage::{Key, MemStorage, Record, Storage, StorageOp};
pub use types::*;
pub use wire::{decode_message, encode_message, FinishedBlock, Message, SignedBatch};
