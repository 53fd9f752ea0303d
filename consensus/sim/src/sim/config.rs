//! What a run is: the network, the faults, the load, the core's timeouts; and the bounds the
//! liveness check holds a run to.

use super::*;
use bsmr_consensus_core::backoff::Backoff;

/// Network latency model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetKind {
    /// One data centre: 0.2-1 ms one way.
    Lan,
    /// Five regions, 1-150 ms one way, jitter 10%.
    Wan,
}

/// One-way WAN base latencies between 5 regions (ms); validator i sits in region i mod 5.
pub const WAN: [[u64; 5]; 5] = [
    [1, 40, 75, 110, 150],
    [40, 1, 60, 95, 140],
    [75, 60, 1, 70, 120],
    [110, 95, 70, 1, 90],
    [150, 140, 120, 90, 1],
];

/// The longest outage of a crash-restart when the scenario does not fix it.
pub const MAX_OUTAGE_MS: u64 = 3_000;

/// Who the validator-set change of [`SimConfig::epoch_change_at`] moves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SetChange {
    /// The highest-indexed validator (a Byzantine one if any) leaves.
    #[default]
    Remove,
    /// A new validator (a node that was not in the first set, correct) joins: it starts its
    /// replica at the handover block from the chain, as a synced full node would.
    Add,
    /// The highest-indexed validator leaves and a new one joins.
    Replace,
}

impl SetChange {
    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            SetChange::Remove => "remove",
            SetChange::Add => "add",
            SetChange::Replace => "replace",
        }
    }

    /// Whether the highest-indexed validator leaves.
    pub fn removes(self) -> bool {
        matches!(self, SetChange::Remove | SetChange::Replace)
    }

    /// Whether a new validator joins.
    pub fn adds(self) -> bool {
        matches!(self, SetChange::Add | SetChange::Replace)
    }
}

impl std::str::FromStr for SetChange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [SetChange::Remove, SetChange::Add, SetChange::Replace]
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown set change {s:?} (remove, add or replace)"))
    }
}

/// Crash faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// No crashes.
    None,
    /// `count` validators crash for good.
    Crash(usize),
    /// `count` validators crash and restart from persisted state.
    CrashRestart(usize),
}

/// Parameters of one run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Validators.
    pub n: usize,
    /// Byzantine validators (the last `byzantine` indices).
    pub byzantine: usize,
    /// Their behaviour.
    pub behaviour: Behaviour,
    /// Crash faults among correct validators.
    pub crash: CrashMode,
    /// Seed.
    pub seed: u64,
    /// Latency model.
    pub net: NetKind,
    /// Global stabilization time (ms): before it, loss, duplication, long delays, partitions.
    pub gst_ms: u64,
    /// Client load stops at this time (ms).
    pub load_ms: u64,
    /// Hard end of the run (ms).
    pub end_ms: u64,
    /// Each validator receives one client batch every this many ms.
    pub batch_interval_ms: u64,
    /// Transactions per client batch.
    pub txs_per_batch: usize,
    /// Accounts in the toy ledger.
    pub accounts: u32,
    /// Probability a transaction touches the hot account 0.
    pub hot: f64,
    /// Probability a transaction has GLOBAL access.
    pub global: f64,
    /// CheckpointDue period (ms).
    pub block_ms: u64,
    /// Loss probability before GST.
    pub loss: f64,
    /// Duplication probability before GST.
    pub dup: f64,
    /// Isolate a random minority until GST.
    pub partition: bool,
    /// Stop after this many events (safety net).
    pub max_events: u64,
    /// Core tunables: window.
    pub window: u64,
    /// The leader-based baseline: validator 0 of the canonical order (the primary) leads every
    /// checkpoint, and every other validator forwards its clients' batches to it (paying the
    /// WAN latency) instead of proposing them.
    pub leader_based: bool,
    /// Core tunable: finished blocks a replica keeps for laggards' `SyncRequest`s.
    pub retain_sync_blocks: u64,
    /// Crash-restart: how long a crashed validator stays down (random 0.2-3 s when None).
    pub outage_ms: Option<u64>,
    /// When crashes happen (random during the load when None).
    pub crash_at_ms: Option<u64>,
    /// A crash strikes in the middle of a step: in the first step that writes and sends,
    /// right after one of its writes drawn at random, so that the rest of the step (later
    /// writes and events, and every message, which the outbox puts after the writes) is lost.
    /// Half of the crash-restarts wait for a step with two writes or more and strike before
    /// its last.
    pub crash_between_persist_and_send: bool,
    /// A validator-set change enacted in this block (b*) (who leaves or joins:
    /// [`SimConfig::set_change`]), and epoch 1 starts at block b* + 2 with the engine's
    /// handover rule (protocol.md, "Epochs"): each node switches to a new replica once block
    /// b* + 1 is built or in its chain, void batches' transactions are proposed again, and the
    /// leaving validator's clients' transactions go to a member (as its pool would gossip them).
    pub epoch_change_at: Option<BlockIndex>,
    /// Who that change moves: a validator leaves, a new one joins, or both.
    pub set_change: SetChange,
    /// Transactions per batch at most (the core cuts larger client batches).
    pub max_batch_txs: usize,
    /// The core's pacing target (`Config::pacing_target_ms`; 0: own batches never paced).
    pub pacing_target_ms: u64,
    /// Each node's CPU and uplink, modelled (`None`: a node handles every event at once and
    /// sends at no cost, as the correctness runs assume).
    pub resources: Option<Resources>,
}

/// What a node's CPU and uplink cost, so that a run's throughput is bounded as a deployment's
/// is: a node handles one event at a time, and each event takes the CPU time of the signatures
/// it made and checked and the transactions it executed; a node's messages leave one after the
/// other at its uplink's rate. Constants measured on this machine are in docs/performance.md
/// ("Scaling past this machine").
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Resources {
    /// CPU microseconds per signature made.
    pub sign_us: u64,
    /// CPU microseconds per signature checked (each node pays for what it checks, although the
    /// simulator checks each distinct signature once for all of them).
    pub verify_us: u64,
    /// CPU microseconds per transaction executed in a block.
    pub exec_us: u64,
    /// CPU microseconds per message, timer or client batch handled (decoding, bookkeeping).
    pub event_us: u64,
    /// Each node's uplink, bytes per second (0: unlimited).
    pub uplink_bytes_per_s: u64,
}

/// The core's timers in a scenario.
#[derive(Clone, Copy, Debug)]
pub struct CoreTimeouts {
    /// Base view timeout of a command instance.
    pub recovery_ms: u64,
    /// Base view timeout of a checkpoint instance.
    pub ckpt_ms: u64,
    /// Retransmission period.
    pub resend_ms: u64,
}

impl SimConfig {
    /// The core's timers: its defaults on the WAN, shorter on the LAN, and as the engine does
    /// (with its own margin) a checkpoint timer above the block time, which would otherwise
    /// charge correct leaders (half a block covers the simulated checkpoint consensus).
    pub fn core_timeouts(&self) -> CoreTimeouts {
        let mut c = Config::new(Membership::new([0; 32], 0, vec![[0; 32]]));
        if self.net == NetKind::Lan {
            c.recovery_timeout_ms = 600;
            c.ckpt_timeout_ms = 900;
            c.resend_ms = 500;
        }
        c.fit_block_time(self.block_ms, self.block_ms / 2);
        CoreTimeouts {
            recovery_ms: c.recovery_timeout_ms,
            ckpt_ms: c.ckpt_timeout_ms,
            resend_ms: c.resend_ms,
        }
    }

    /// Δ: the longest message delay after GST (the farthest WAN pair with its jitter).
    pub fn max_delay_ms(&self) -> u64 {
        match self.net {
            NetKind::Lan => 1,
            NetKind::Wan => {
                let b = WAN.iter().flatten().copied().max().unwrap_or(0);
                b + b / 10 + 101
            }
        }
    }

    /// The liveness bound (docs/consensus.md, "Liveness bound"): once GST has passed, the load
    /// has ended and every crashed validator that restarts is back, every correct proposer's
    /// transaction is in a block on every live correct replica within this. Its command's
    /// instance and then the checkpoint that cuts it each meet at most f faulty leaders in a
    /// row; the worst of them stay live and withhold, so each pays its doubled view timer
    /// (`base * (2^(f+1) - 1)`) plus the rounds of f + 1 view changes and the deciding view
    /// (`(f + 5) Δ`); then a block period and, for what was lost before GST, the longest wait
    /// between two resends of a thing that made no progress plus one retransmission tick.
    pub fn liveness_bound_ms(&self) -> u64 {
        let f = self.n.saturating_sub(1) / 3;
        let t = self.core_timeouts();
        let back_off = (1u64 << (f + 1)) - 1;
        let rounds = (f as u64 + 5) * self.max_delay_ms();
        (t.recovery_ms * back_off + rounds)
            + (t.ckpt_ms * back_off + rounds)
            + self.block_ms
            + t.resend_ms
            + Backoff::longest_wait(t.resend_ms)
    }

    /// When the liveness bound has run out: from the latest of GST, the end of the load and the
    /// last restart, plus the bound.
    pub fn liveness_deadline_ms(&self) -> u64 {
        let restart = match self.crash {
            CrashMode::CrashRestart(_) => {
                self.crash_at_ms.unwrap_or(self.load_ms) + self.outage_ms.unwrap_or(MAX_OUTAGE_MS)
            }
            _ => 0,
        };
        self.gst_ms.max(self.load_ms).max(restart) + self.liveness_bound_ms()
    }

    /// The small workload of the seeded CI matrix: short load, lossy and partitioned before GST.
    pub fn ci(n: usize, seed: u64) -> Self {
        let mut c = Self::small(n, seed);
        c.load_ms = 1_500;
        c.gst_ms = 800;
        c.batch_interval_ms = 400;
        c.txs_per_batch = 2;
        c.end_ms = 60_000;
        c
    }

    /// A small default run.
    pub fn small(n: usize, seed: u64) -> Self {
        SimConfig {
            n,
            byzantine: 0,
            behaviour: Behaviour::Honest,
            crash: CrashMode::None,
            seed,
            net: NetKind::Wan,
            gst_ms: 1_000,
            load_ms: 3_000,
            end_ms: 40_000,
            batch_interval_ms: 250,
            txs_per_batch: 4,
            accounts: 16,
            hot: 0.25,
            global: 0.02,
            block_ms: 500,
            loss: 0.05,
            dup: 0.05,
            partition: true,
            max_events: 3_000_000,
            window: 16,
            leader_based: false,
            retain_sync_blocks: bsmr_consensus_core::replica::DEFAULT_RETAIN_SYNC_BLOCKS,
            outage_ms: None,
            crash_at_ms: None,
            crash_between_persist_and_send: false,
            epoch_change_at: None,
            set_change: SetChange::Remove,
            max_batch_txs: Config::new(Membership::new([0; 32], 0, vec![[0; 32]])).max_batch_txs,
            pacing_target_ms: bsmr_consensus_core::discovery::pacing::DEFAULT_TARGET_MS,
            resources: None,
        }
    }

    /// A small run on a network that behaves from the start: no GST, loss, duplication or
    /// partition. For runs about throughput, resources or timers rather than recovery.
    pub fn reliable(n: usize, seed: u64) -> Self {
        SimConfig {
            gst_ms: 0,
            loss: 0.0,
            dup: 0.0,
            partition: false,
            ..SimConfig::small(n, seed)
        }
    }
}
