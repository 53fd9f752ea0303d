//! # bsmr-sim: a deterministic simulator that attacks the consensus core
//!
//! Seeded RNG, virtual time, per-link latency (LAN/WAN matrices), loss, duplication, reordering
//! and partitions before GST; Byzantine behaviours ([`adversary::Behaviour`]) for up to f
//! validators, crash and crash-restart from persisted state; a toy balances ledger; invariant
//! checkers S1-S12 after every step and liveness checks after GST. See docs/consensus.md, "Testing
//! like an attacker".
#![warn(missing_docs)]

pub mod adversary;
pub mod checker;
pub mod crypto;
pub mod fuzz;
pub mod ledger;
pub mod mutator;
pub mod sim;

pub use adversary::Behaviour;
pub use sim::{run, CrashMode, NetKind, Report, SetChange, Sim, SimConfig};
