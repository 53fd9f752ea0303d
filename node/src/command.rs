//! Dispatch of the command line: run the node or one of the subcommands.

use crate::{
    chain_spec,
    cli::{Cli, PoolRevalidation, Subcommand},
    service,
};
use bsmr_runtime::opaque::Block;
use sc_cli::SubstrateCli;
use sc_service::PartialComponents;

/// Parse `args` like [`SubstrateCli::from_iter`], with bsmr's defaults for the transaction pool;
/// prints the error and exits on bad arguments.
pub fn parse_cli<I>(args: I) -> Cli
where
    I: IntoIterator,
    I::Item: Into<std::ffi::OsString> + Clone,
{
    use clap::FromArgMatches;
    let matches = command()
        .try_get_matches_from(args)
        .unwrap_or_else(|e| e.exit());
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// The command line with bsmr's defaults for Substrate's pool flags.
fn command() -> clap::Command {
    use clap::CommandFactory;
    Cli::setup_command(Cli::command())
        .mut_arg("pool_type", |a| a.default_value(DEFAULT_POOL_TYPE))
        .mut_arg("tx_ban_seconds", |a| {
            a.help(TX_BAN_HELP).long_help(TX_BAN_HELP)
        })
}

impl SubstrateCli for Cli {
    fn impl_name() -> String {
        "bsmr node".into()
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
        "the project's issue tracker".into()
    }

    fn copyright_start_year() -> i32 {
        2026
    }

    fn load_spec(&self, id: &str) -> Result<Box<dyn sc_service::ChainSpec>, String> {
        Ok(match id {
            "dev" => Box::new(chain_spec::development_chain_spec()?),
            "" | "local" => Box::new(chain_spec::local_chain_spec()?),
            path => Box::new(chain_spec::from_json_file(path)?),
        })
    }
}

/// The transaction pool bsmr-node uses unless `--pool-type` says otherwise.
///
/// bsmr imports every block already final, so the chain never forks and the fork-aware pool's
/// per-fork views buy nothing. They also cost transactions: the fork-aware pool of stable2609
/// drops a *future* transaction (e.g. nonce n+1 arriving before n) that is submitted while a
/// new block's view is being built, because the transaction reaches only the old view, which is
/// then removed (see docs/consensus.md, "Transaction pool"). The single-state pool has no views.
pub const DEFAULT_POOL_TYPE: &str = "single-state";

/// How long the single-state pool bans a transaction unless `--tx-ban-seconds` says otherwise.
///
/// The pool bans every transaction a block included (so that a peer still gossiping it is not
/// validated again) and every invalid one, in a map that stable2609's single-state pool caps
/// at 4,096 entries: past that it drops bans in hash-map order down to 2,048, also bans it made
/// a moment ago. With Substrate's 30 minutes the map is full after some 4,000 included
/// transactions; from then on each block's import (its `prune`) finds a random part of the
/// block's own transactions unbanned, validates them again (each answers `Stale`), and peers'
/// gossip of included transactions is validated again too: at saturation that was a third of
/// a validator's pool validations (docs/performance.md, "Bans the pool forgot"). A ban only
/// has to outlast the moment a block's transactions leave every pool, a second or two; the
/// map then holds about ban time x throughput + one block, under the cap up to ~800 tx/s.
pub const LIGHT_POOL_BAN_TIME: std::time::Duration = std::time::Duration::from_secs(3);

const TX_BAN_HELP: &str = "How long a transaction is banned for after a block included it or \
     it was found invalid. bsmr's single-state pool: 3 s by default (0 with --dev), kept short \
     because the pool remembers at most 4,096 bans and forgets them at random past that (see \
     LIGHT_POOL_BAN_TIME in node/src/command.rs); with --pool-revalidation full, Substrate's \
     1800 s.";

/// The options of a single-state pool with light revalidation, if `--pool-revalidation light`
/// (the default) asks for one; an error if the fork-aware pool was asked for too.
fn light_pool(cli: &Cli) -> sc_cli::Result<Option<sc_transaction_pool::Options>> {
    match cli.pool_revalidation {
        PoolRevalidation::Full => Ok(None),
        PoolRevalidation::Light => {
            if matches!(
                cli.run.pool_config.pool_type,
                sc_cli::TransactionPoolType::ForkAware
            ) {
                return Err(sc_cli::Error::Input(
                    "--pool-revalidation light needs the single-state pool: with --pool-type \
                     fork-aware, also pass --pool-revalidation full"
                        .into(),
                ));
            }
            Ok(Some(light_pool_options(
                &cli.run.pool_config,
                cli.run.shared_params.is_dev(),
            )))
        }
    }
}

/// The pool limits `--pool-limit`, `--pool-kbytes` and `--tx-ban-seconds` set, as
/// `sc_cli`'s `TransactionPoolOptions::new_with_params` sets them (its options are private,
/// so a pool built outside its `Builder` needs them again): the future queue gets a tenth.
/// The ban time defaults to [`LIGHT_POOL_BAN_TIME`] rather than Substrate's 30 minutes.
fn light_pool_options(
    p: &sc_cli::TransactionPoolParams,
    is_dev: bool,
) -> sc_transaction_pool::Options {
    let mut options = sc_transaction_pool::Options::default();
    options.ready.count = p.pool_limit;
    options.ready.total_bytes = p.pool_kbytes * 1024;
    options.future.count = p.pool_limit / 10;
    options.future.total_bytes = p.pool_kbytes * 1024 / 10;
    options.ban_time = match (p.tx_ban_seconds, is_dev) {
        (Some(s), _) => std::time::Duration::from_secs(s),
        (None, true) => std::time::Duration::ZERO,
        (None, false) => LIGHT_POOL_BAN_TIME,
    };
    options
}

/// Parse the command line (with bsmr's defaults) and run it.
pub fn run() -> sc_cli::Result<()> {
    let cli = parse_cli(std::env::args_os());

    match &cli.subcommand {
        Some(Subcommand::Key(cmd)) => cmd.run(&cli),
        Some(Subcommand::BuildSpec(cmd)) => {
            let runner = cli.create_runner(cmd)?;
            runner.sync_run(|config| cmd.run(config.chain_spec, config.network))
        }
        Some(Subcommand::ExportChainSpec(cmd)) => {
            let chain_spec = cli.load_spec(&cmd.chain)?;
            cmd.run(chain_spec)
        }
        Some(Subcommand::CheckBlock(cmd)) => {
            let runner = cli.create_runner(cmd)?;
            runner.async_run(|config| {
                let PartialComponents {
                    client,
                    task_manager,
                    import_queue,
                    ..
                } = service::new_partial(&config)?;
                Ok((cmd.run(client, import_queue), task_manager))
            })
        }
        Some(Subcommand::ExportBlocks(cmd)) => {
            let runner = cli.create_runner(cmd)?;
            runner.async_run(|config| {
                let PartialComponents {
                    client,
                    task_manager,
                    ..
                } = service::new_partial(&config)?;
                Ok((cmd.run(client, config.database), task_manager))
            })
        }
        Some(Subcommand::ExportState(cmd)) => {
            let runner = cli.create_runner(cmd)?;
            runner.async_run(|config| {
                let PartialComponents {
                    client,
                    task_manager,
                    ..
                } = service::new_partial(&config)?;
                Ok((cmd.run(client, config.chain_spec), task_manager))
            })
        }
        Some(Subcommand::ImportBlocks(cmd)) => {
            let runner = cli.create_runner(cmd)?;
            runner.async_run(|config| {
                let PartialComponents {
                    client,
                    task_manager,
                    import_queue,
                    ..
                } = service::new_partial(&config)?;
                Ok((cmd.run(client, import_queue), task_manager))
            })
        }
        Some(Subcommand::PurgeChain(cmd)) => {
            let runner = cli.create_runner(cmd)?;
            runner.sync_run(|config| cmd.run(config.database))
        }
        Some(Subcommand::Revert(cmd)) => {
            let runner = cli.create_runner(cmd)?;
            runner.async_run(|config| {
                let PartialComponents {
                    client,
                    task_manager,
                    backend,
                    ..
                } = service::new_partial(&config)?;
                Ok((cmd.run(client, backend, None), task_manager))
            })
        }
        #[cfg(feature = "runtime-benchmarks")]
        Some(Subcommand::Benchmark(cmd)) => {
            use frame_benchmarking_cli::{BenchmarkCmd, SUBSTRATE_REFERENCE_HARDWARE};
            let runner = cli.create_runner(cmd)?;
            runner.sync_run(|config| {
                match cmd {
                BenchmarkCmd::Pallet(cmd) => cmd
                    .run_with_spec::<sp_runtime::traits::HashingFor<Block>, ()>(Some(
                        config.chain_spec,
                    )),
                BenchmarkCmd::Block(cmd) => {
                    let PartialComponents { client, .. } = service::new_partial(&config)?;
                    cmd.run(client)
                }
                BenchmarkCmd::Storage(cmd) => {
                    let PartialComponents {
                        client, backend, ..
                    } = service::new_partial(&config)?;
                    let db = backend.expose_db();
                    let storage = backend.expose_storage();
                    let shared_cache = backend.expose_shared_trie_cache();
                    cmd.run(config, client, db, storage, shared_cache)
                }
                BenchmarkCmd::Machine(cmd) => {
                    cmd.run(&config, SUBSTRATE_REFERENCE_HARDWARE.clone())
                }
                BenchmarkCmd::Overhead(_) | BenchmarkCmd::Extrinsic(_) => Err(
                    "`benchmark overhead` and `benchmark extrinsic` are not supported by bsmr-node \
                     yet; use `benchmark pallet`, `block`, `storage` or `machine`"
                        .into(),
                ),
            }
            })
        }
        Some(Subcommand::ChainInfo(cmd)) => {
            let runner = cli.create_runner(cmd)?;
            runner.sync_run(|config| cmd.run::<Block>(&config))
        }
        None => {
            let runner = cli.create_runner(&cli.run)?;
            if matches!(
                cli.run.pool_config.pool_type,
                sc_cli::TransactionPoolType::ForkAware
            ) {
                log::warn!(
                    "--pool-type fork-aware: this pool drops future transactions submitted while \
                     a block is imported (see docs/consensus.md); bsmr's default is {DEFAULT_POOL_TYPE}"
                );
            }
            let engine = cli.engine.config();
            let light_pool = light_pool(&cli)?;
            runner.run_node_until_exit(|config| async move {
                match config.network.network_backend {
                    sc_network::config::NetworkBackendType::Libp2p => {
                        service::new_full::<
                            sc_network::NetworkWorker<
                                Block,
                                <Block as sp_runtime::traits::Block>::Hash,
                            >,
                        >(config, engine, light_pool)
                        .map_err(sc_cli::Error::Service)
                    }
                    sc_network::config::NetworkBackendType::Litep2p => {
                        service::new_full::<sc_network::Litep2pNetworkBackend>(
                            config, engine, light_pool,
                        )
                        .map_err(sc_cli::Error::Service)
                    }
                }
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn light_revalidation_is_the_default_and_keeps_the_pool_limits() {
        let cli = parse_cli(["bsmr-node", "--pool-limit", "1000", "--pool-kbytes", "2000"]);
        let options = light_pool(&cli).unwrap().expect("light by default");
        assert_eq!(options.ready.count, 1000);
        assert_eq!(options.ready.total_bytes, 2000 * 1024);
        assert_eq!(options.future.count, 100);
        assert_eq!(
            options.ban_time, LIGHT_POOL_BAN_TIME,
            "short, so the pool's bounded ban map is not overrun"
        );
        assert!(LIGHT_POOL_BAN_TIME < std::time::Duration::from_secs(10));
        let help = command()
            .get_arguments()
            .find(|a| a.get_id() == "tx_ban_seconds")
            .and_then(|a| a.get_long_help())
            .map(|h| h.to_string())
            .expect("--tx-ban-seconds has a help text");
        assert!(
            help.contains(&format!("{} s by default", LIGHT_POOL_BAN_TIME.as_secs())),
            "--help states bsmr's default: {help}"
        );
        let chosen = parse_cli(["bsmr-node", "--tx-ban-seconds", "60"]);
        let options = light_pool(&chosen).unwrap().expect("light by default");
        assert_eq!(options.ban_time, std::time::Duration::from_secs(60));
        let dev = parse_cli(["bsmr-node", "--dev"]);
        let options = light_pool(&dev).unwrap().expect("light by default");
        assert_eq!(
            options.ban_time,
            std::time::Duration::ZERO,
            "as Substrate's --dev"
        );
        let full = parse_cli(["bsmr-node", "--pool-revalidation", "full"]);
        assert!(light_pool(&full).unwrap().is_none());
    }

    #[test]
    fn light_revalidation_with_the_fork_aware_pool_is_refused() {
        let cli = parse_cli(["bsmr-node", "--pool-type", "fork-aware"]);
        let err = light_pool(&cli).unwrap_err().to_string();
        assert!(err.contains("--pool-revalidation full"), "{err}");
        let cli = parse_cli([
            "bsmr-node",
            "--pool-type",
            "fork-aware",
            "--pool-revalidation",
            "full",
        ]);
        assert!(light_pool(&cli).unwrap().is_none());
    }

    #[test]
    fn single_state_pool_is_the_default_and_can_be_overridden() {
        let cli = parse_cli(["bsmr-node", "--dev"]);
        assert!(matches!(
            cli.run.pool_config.pool_type,
            sc_cli::TransactionPoolType::SingleState
        ));
        let cli = parse_cli(["bsmr-node", "--dev", "--pool-type", "fork-aware"]);
        assert!(matches!(
            cli.run.pool_config.pool_type,
            sc_cli::TransactionPoolType::ForkAware
        ));
    }

    #[test]
    fn subcommands_still_parse_without_the_run_flags() {
        let cli = parse_cli(["bsmr-node", "key", "generate"]);
        assert!(matches!(cli.subcommand, Some(Subcommand::Key(_))));
    }
}
