//! `bsmr-node`: a Substrate node whose blocks are ordered and finalized by Byzantine leaderless
//! state-machine replication.

#![warn(missing_docs)]
// `sc_cli::Error` and `sc_service::Error` are polkadot-sdk's types, returned as they are.
#![allow(clippy::result_large_err)]

mod chain_spec;
mod classifier;
mod cli;
mod command;
mod rpc;
mod service;

fn main() -> sc_cli::Result<()> {
    command::run()
}
