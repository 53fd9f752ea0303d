//! `aura-grandpa-node`: the bench's reference chain, a plain Substrate node with Aura block
//! production and GRANDPA finality. `bsmr-bench network --modes aura-grandpa` starts a network
//! of these to measure leader-based Substrate consensus next to bsmr on the same machine and
//! trace; it is not part of bsmr.

#![warn(missing_docs)]
// `sc_cli::Error` and `sc_service::Error` are polkadot-sdk's types, returned as they are.
#![allow(clippy::result_large_err)]

mod chain_spec;
mod service;

/// The same allocator as bsmr-node's, so the comparison is of consensus, not of malloc.
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use aura_grandpa_runtime::opaque::Block;
use sc_cli::SubstrateCli;

/// Subcommands besides running the node.
#[derive(Debug, clap::Subcommand)]
#[allow(clippy::large_enum_variant)]
enum Subcommand {
    /// Key management: generate, inspect, insert (Aura `aura` and GRANDPA `gran` keys).
    #[command(subcommand)]
    Key(sc_cli::KeySubcommand),
    /// Build a chain specification.
    BuildSpec(sc_cli::BuildSpecCmd),
    /// Remove the whole chain database.
    PurgeChain(sc_cli::PurgeChainCmd),
}

/// The `aura-grandpa-node` command line.
#[derive(Debug, clap::Parser)]
#[command(
    propagate_version = true,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Chains: `--dev` (Alice alone) or `--chain local` (Alice, Bob, Charlie, Dave; \
                  start each with `--alice` ... `--dave`), or a chain spec JSON file. \
                  Blocks every 6 s (Aura), finality by GRANDPA."
)]
struct Cli {
    #[command(subcommand)]
    subcommand: Option<Subcommand>,
    #[clap(flatten)]
    run: sc_cli::RunCmd,
}

impl SubstrateCli for Cli {
    fn impl_name() -> String {
        "Aura+GRANDPA reference node".into()
    }
    fn impl_version() -> String {
        env!("SUBSTRATE_CLI_IMPL_VERSION").into()
    }
    fn description() -> String {
        env!("CARGO_PKG_DESCRIPTION").into()
    }
    fn author() -> String {
        env!("CARGO_PKG_AUTHORS").into()
    }
    fn support_url() -> String {
        "the bsmr project's issue tracker".into()
    }
    fn copyright_start_year() -> i32 {
        2026
    }
    fn load_spec(&self, id: &str) -> Result<Box<dyn sc_service::ChainSpec>, String> {
        Ok(Box::new(chain_spec::load(id)?))
    }
}

fn main() -> sc_cli::Result<()> {
    let cli = Cli::from_args();
    match &cli.subcommand {
        Some(Subcommand::Key(cmd)) => cmd.run(&cli),
        Some(Subcommand::BuildSpec(cmd)) => {
            let runner = cli.create_runner(cmd)?;
            runner.sync_run(|config| cmd.run(config.chain_spec, config.network))
        }
        Some(Subcommand::PurgeChain(cmd)) => {
            let runner = cli.create_runner(cmd)?;
            runner.sync_run(|config| cmd.run(config.database))
        }
        None => {
            let runner = cli.create_runner(&cli.run)?;
            runner.run_node_until_exit(|config| async move {
                match config.network.network_backend {
                    sc_network::config::NetworkBackendType::Libp2p => service::new_full::<
                        sc_network::NetworkWorker<
                            Block,
                            <Block as sp_runtime::traits::Block>::Hash,
                        >,
                    >(config)
                    .map_err(sc_cli::Error::Service),
                    sc_network::config::NetworkBackendType::Litep2p => {
                        service::new_full::<sc_network::Litep2pNetworkBackend>(config)
                            .map_err(sc_cli::Error::Service)
                    }
                }
            })
        }
    }
}
