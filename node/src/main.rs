//! `bsmr-node`: a Substrate node whose blocks are ordered and finalized by Byzantine leaderless
//! state-machine replication.

#![warn(missing_docs)]

mod chain_spec;
mod classifier;
mod cli;
mod command;
mod rpc;
mod service;

fn main() -> sc_cli::Result<()> {
    command::run()
}
