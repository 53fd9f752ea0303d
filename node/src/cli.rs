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

    /// Options of the bsmr consensus engine.
    #[clap(flatten)]
    pub engine: EngineArgs,

    /// How the transaction pool re-checks the ready transactions it holds: `light` (all of them
    /// at once every 20 blocks or 60 s) or `full` (Substrate's default: after every block all
    /// of them are queued and re-checked a quarter at a time every 200 ms). bsmr cuts blocks
    /// several times a second, so under load `full` re-checks each pending transaction several
    /// times before its block (12% more CPU per transfer at saturation, docs/performance.md).
    /// `light` needs the single-state pool (bsmr's default `--pool-type`); that pool also prunes
    /// a new block's transactions it does not hold by the nonce in their bytes instead of
    /// validating each again (`full` keeps Substrate's pool as it is).
    #[arg(long, value_enum, default_value_t = PoolRevalidation::Light)]
    pub pool_revalidation: PoolRevalidation,
}

/// `--pool-revalidation` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PoolRevalidation {
    /// After every block, a quarter of the ready set every 200 ms (Substrate's default).
    Full,
    /// The whole ready set every 20 blocks or 60 s.
    Light,
}

/// Tunables of the leaderless engine (every validator of a network should use the same values).
#[derive(Debug, Clone, clap::Args)]
pub struct EngineArgs {
    /// Block time in milliseconds: how often each validator may cut a block. Validators take
    /// turns leading the cut, so blocks come up to n times as often, as fast as the checkpoint
    /// consensus allows; the checkpoint view timeout is at least this plus 2 s.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(50..=60_000))]
    pub block_time_ms: u64,

    /// How often, in milliseconds, a validator cuts the transactions in its pool into a batch.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(10..=10_000))]
    pub batch_interval_ms: u64,

    /// Most transactions in one batch.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub max_batch_txs: u64,

    /// Most own batches in consensus at once (0 = no limit). Under load, transactions wait for a
    /// decision and go out in fewer, larger batches, so the consensus instances keep pace with
    /// what the validators can decide; at low load it changes nothing. In the leader baseline
    /// the primary proposes for everyone and may have n times as many.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(0..=1024))]
    pub max_inflight_batches: u64,

    /// A validator proposes the transactions clients submit to it at once; a transaction
    /// submitted elsewhere is proposed by its sender's partition owner after it has been pending
    /// this many milliseconds (covers slow or Byzantine receivers and RPC-only nodes).
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(0..=86_400_000))]
    pub owner_delay_ms: u64,

    /// ... and by any validator after this many milliseconds (at least --owner-delay-ms); also
    /// how long a proposer waits before proposing a still-pending transaction again.
    #[arg(long, default_value_t = 6_000, value_parser = clap::value_parser!(u64).range(100..=86_400_000))]
    pub anyone_delay_ms: u64,

    /// A leaderless validator proposes its clients' transactions itself, and its batches carry
    /// them to every validator; it gossips one only if it is not ordered yet (its batch decided,
    /// or its block finished) this many milliseconds after it arrived, for a takeover should
    /// this validator fail to propose it or crash first. Under load the hold grows by twice the
    /// time its clients' transactions lately took until its batch carrying them was decided, by
    /// at most 10 s, while one of its batches was decided in the last 5 s (an idle or stuck
    /// validator holds for this plain hold). A crash inside the hold loses what was not
    /// gossiped. 0 gossips at once, as RPC nodes and the leader baseline always do.
    #[arg(long, default_value_t = sc_consensus_bsmr::config::DEFAULT_GOSSIP_HOLD_MS,
          value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub gossip_hold_ms: u64,

    /// Refuse client transactions (RPC error 1016 "Immediately Dropped", which clients retry)
    /// while the transaction pool holds this many ready ones: a validator offered more than the
    /// chain finalizes sheds the excess at its door instead of accepting transactions that would
    /// wait ever longer. 0: no limit (the pool's own --pool-limit still applies).
    #[arg(long, default_value_t = sc_consensus_bsmr::config::DEFAULT_RPC_BACKLOG_LIMIT as u64,
          value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    pub rpc_backlog_limit: u64,

    /// Pace this validator's own batches when the replies to them come this many milliseconds
    /// later than each peer's usual: a congestion window over the bytes in flight halves, and
    /// waiting transactions go out in fewer, larger batches, so a link offered more than it
    /// carries queues in the pool instead of on the wire. 0 turns pacing off (only the
    /// protocol's window of 16 batches limits).
    #[arg(long, default_value_t = bsmr_consensus_core::discovery::pacing::DEFAULT_TARGET_MS,
          value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub pacing_target_ms: u64,

    /// Finished blocks a validator keeps (in memory) to serve peers that fell behind. A validator
    /// further behind than its peers keep rejoins from the certified chain instead, which is
    /// slower to set up; more costs memory (about 45 KB per block at 300 tx/s).
    #[arg(long, default_value_t = bsmr_consensus_core::replica::DEFAULT_RETAIN_SYNC_BLOCKS,
          value_parser = clap::value_parser!(u64).range(8..=1_000_000))]
    pub retain_sync_blocks: u64,

    /// Ordering mode: `leaderless` (bsmr) or `leader`, a benchmark baseline in which the first
    /// validator proposes every batch and leads every checkpoint. All validators must agree.
    #[arg(long, value_enum, default_value_t = ConsensusMode::Leaderless)]
    pub consensus_mode: ConsensusMode,

    /// TESTING ONLY: make this validator Byzantine. With every finality vote it also signs and
    /// sends a conflicting one, which its peers prove and report on chain. Hidden from --help.
    #[arg(long, hide = true)]
    pub unsafe_equivocate_finality_votes: bool,

    /// TESTING ONLY: make this validator Byzantine: every consensus message it sends goes
    /// through the simulator's adversary with this behaviour (`mutate` for mutation fuzzing, or
    /// a scripted one such as `equivocate`, `fake-deps`, `double-vote`; see `bsmr-sim --help`),
    /// re-signed with its key. Hidden from --help.
    #[arg(long, hide = true, value_name = "BEHAVIOUR", value_parser = parse_behaviour)]
    pub unsafe_byzantine: Option<bsmr_sim::Behaviour>,
}

fn parse_behaviour(s: &str) -> Result<bsmr_sim::Behaviour, String> {
    match bsmr_sim::Behaviour::parse(s) {
        Some(bsmr_sim::Behaviour::Twins) => Err(
            "twins needs two processes with one key: run two nodes with the same key instead"
                .into(),
        ),
        Some(b) => Ok(b),
        None => Err(format!(
            "unknown behaviour `{s}`; one of: {}",
            bsmr_sim::Behaviour::ALL
                .iter()
                .filter(|b| **b != bsmr_sim::Behaviour::Twins)
                .map(|b| b.name())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// `--consensus-mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConsensusMode {
    /// Every validator proposes; checkpoint leadership rotates (bsmr).
    Leaderless,
    /// Primary-based baseline for benchmarks.
    Leader,
}

impl EngineArgs {
    /// The engine configuration these arguments describe.
    pub fn config(&self) -> sc_consensus_bsmr::EngineConfig {
        sc_consensus_bsmr::EngineConfig {
            block_time_ms: self.block_time_ms,
            batch_interval_ms: self.batch_interval_ms,
            max_batch_txs: self.max_batch_txs as usize,
            max_inflight_batches: self.max_inflight_batches as usize,
            retain_sync_blocks: self.retain_sync_blocks,
            owner_delay_ms: self.owner_delay_ms,
            anyone_delay_ms: self.anyone_delay_ms.max(self.owner_delay_ms),
            gossip_hold_ms: self.gossip_hold_ms,
            rpc_backlog_limit: self.rpc_backlog_limit as usize,
            pacing_target_ms: self.pacing_target_ms,
            mode: match self.consensus_mode {
                ConsensusMode::Leaderless => sc_consensus_bsmr::Mode::Leaderless,
                ConsensusMode::Leader => sc_consensus_bsmr::Mode::Leader,
            },
            equivocate_finality_votes: self.unsafe_equivocate_finality_votes,
            byzantine: self.unsafe_byzantine,
        }
    }
}
