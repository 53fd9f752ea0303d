//! What the engine is configured with: the ordering mode and its tunables (the node's CLI maps
//! its flags onto [`EngineConfig`]).

/// Which ordering the engine runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Every validator proposes batches and checkpoint leadership rotates per block (bsmr).
    #[default]
    Leaderless,
    /// Baseline for benchmarks: the first validator proposes every batch and leads every
    /// checkpoint in view 0 (classic primary-based SMR); everything else is unchanged.
    Leader,
}

impl Mode {
    /// The name `bsmr_status` reports.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Leaderless => "leaderless",
            Mode::Leader => "leader",
        }
    }
}

/// Engine tunables.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Period of "checkpoint due": the target block time.
    pub block_time_ms: u64,
    /// How often pool transactions are cut into a batch.
    pub batch_interval_ms: u64,
    /// Transactions per batch at most.
    pub max_batch_txs: usize,
    /// Own batches whose consensus has not decided yet, at most (0 = no limit). Under load the
    /// pool's transactions then wait for a decision and travel in fewer, larger batches, so the
    /// number of consensus instances follows what the validators can decide instead of the
    /// batch clock (Nagle-style batching); at low load it changes nothing. The baseline's
    /// primary, which proposes for everyone, may have n times as many.
    pub max_inflight_batches: usize,
    /// Finished blocks the core keeps to serve validators that fell behind.
    pub retain_sync_blocks: u64,
    /// A transaction a client submitted to another node is proposed by its sender's partition
    /// owner once it has been pending here this long (the receiver may be slow or Byzantine).
    pub owner_delay_ms: u64,
    /// ... and by any validator once pending this long; also how long a proposer waits before
    /// proposing a still-pending transaction again.
    pub anyone_delay_ms: u64,
    /// A leaderless validator gossips a client's transaction only if it is not ordered (a batch
    /// of ours carrying it decided, or a block holding it finished) this long after it arrived
    /// (ms; 0: at once), stretched under load by the time to order while our batches keep
    /// being decided (`client_txs.rs`). Its
    /// batches carry its clients' transactions to every validator; gossip serves takeovers.
    pub gossip_hold_ms: u64,
    /// Queueing delay (ms) of the replies to our batches above which our own batches are paced
    /// by a congestion window (docs/consensus.md, "Pacing own batches"); 0: never paced.
    pub pacing_target_ms: u64,
    /// Leaderless (bsmr) or the leader-based baseline.
    pub mode: Mode,
    /// Client transactions are refused (RPC error 1016, retriable) while the pool holds this
    /// many ready transactions; 0: no limit (`pool_view/door.rs`).
    pub rpc_backlog_limit: usize,
    /// TESTING ONLY: a Byzantine validator that sends a second, conflicting finality vote for
    /// every block (the process tests' misbehaviour reporter check).
    pub equivocate_finality_votes: bool,
    /// TESTING ONLY: a Byzantine validator whose outgoing core messages go through the
    /// simulator's adversary with this behaviour (scripted, or `mutate` for mutation fuzzing),
    /// re-signed with its real key.
    pub byzantine: Option<bsmr_sim::Behaviour>,
}

/// The default `rpc_backlog_limit`: about 9 s of what 4 validators on this project's 2-core test
/// machine finalize at saturation (~450 tx/s), well inside the pool's own limit (8,192) and the
/// 30 s caps of the proposal policy (docs/performance.md, "Admission at the door").
pub const DEFAULT_RPC_BACKLOG_LIMIT: usize = 4_096;

/// The default `gossip_hold_ms`: about what a client's transaction takes to be ordered at
/// saturation on this project's test machine, and half the takeover delay (docs/performance.md, "Gossip a batch
/// carries").
pub const DEFAULT_GOSSIP_HOLD_MS: u64 = 1_000;

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            block_time_ms: 1_000,
            batch_interval_ms: 100,
            max_batch_txs: 512,
            max_inflight_batches: 3,
            retain_sync_blocks: bsmr_consensus_core::replica::DEFAULT_RETAIN_SYNC_BLOCKS,
            owner_delay_ms: 2_000,
            anyone_delay_ms: 6_000,
            gossip_hold_ms: DEFAULT_GOSSIP_HOLD_MS,
            pacing_target_ms: bsmr_consensus_core::discovery::pacing::DEFAULT_TARGET_MS,
            mode: Mode::Leaderless,
            rpc_backlog_limit: DEFAULT_RPC_BACKLOG_LIMIT,
            equivocate_finality_votes: false,
            byzantine: None,
        }
    }
}
