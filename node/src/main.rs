//! `bsmr-node`: a Substrate node whose blocks are ordered and finalized by Byzantine leaderless
//! state-machine replication.

#![warn(missing_docs)]
// `sc_cli::Error` and `sc_service::Error` are polkadot-sdk's types, returned as they are.
#![allow(clippy::result_large_err)]

mod chain_spec;
mod classifier;
mod cli;
mod command;
mod pool_api;
mod rpc;
mod service;

/// jemalloc, as Polkadot's node uses (polkadot-sdk `polkadot/src/main.rs`): under load glibc's
/// malloc and the page faults and TLB shootdowns of its trimming took about a sixth of a
/// validator's CPU (docs/performance.md, "The allocator").
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> sc_cli::Result<()> {
    command::run()
}
