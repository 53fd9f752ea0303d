//! Command-line interface of `bsmr-node`.

/// Subcommands besides running the node.
#[derive(Debug, clap::Subcommand)]
#[allow(clippy::large_enum_variant)]
pub enum Subcommand {
    /// Key management: generate, inspect, insert (e.g. a validator's `bsmr` key) and more.
    #[command(subcommand)]
    Key(sc_cli::KeySubcommand),

    /// Build a chain specification (`--raw` for the form other nodes and zombienet load).
    BuildSpec(sc_cli::BuildSpecCmd),

    /// Export the chain specification of a chain (`--chain`).
    ExportChainSpec(sc_cli::ExportChainSpecCmd),

    /// Validate blocks.
    CheckBlock(sc_cli::CheckBlockCmd),

    /// Export blocks.
    ExportBlocks(sc_cli::ExportBlocksCmd),

    /// Export the state of a given block into a chain spec.
    ExportState(sc_cli::ExportStateCmd),

    /// Import blocks.
    ImportBlocks(sc_cli::ImportBlocksCmd),

    /// Remove the whole chain database.
    PurgeChain(sc_cli::PurgeChainCmd),

    /// Revert the chain to a previous state.
    Revert(sc_cli::RevertCmd),

    /// Runtime and machine benchmarks (build with `--features runtime-benchmarks`).
    #[cfg(feature = "runtime-benchmarks")]
    #[command(subcommand)]
    Benchmark(frame_benchmarking_cli::BenchmarkCmd),

    /// Database meta columns information.
    ChainInfo(sc_cli::ChainInfoCmd),
}

/// The `bsmr-node` command line.
#[derive(Debug, clap::Parser)]
#[command(
    propagate_version = true,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Chains: `--dev` (Alice alone, n = 1), `--chain local` (Alice, Bob, Charlie, Dave), \
                  or `--chain <path to a chain spec JSON>`."
)]
pub struct Cli {
    /// A subcommand; without one the node runs.
    #[command(subcommand)]
    pub subcommand: Option<Subcommand>,

    /// Options of the running node.
    #[clap(flatten)]
    pub run: sc_cli::RunCmd,
}
