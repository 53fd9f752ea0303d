//! The deterministic discrete-event simulator.
//!
//! One ChaCha8 RNG seeded from a `u64` drives everything (latencies, loss, duplication,
//! partitions, workload, crash times, adversary choices); virtual time is a (time, seq) event
//! heap in microseconds; every collection that is iterated is a BTreeMap/Vec. A run is therefore
//! a pure function of its [`SimConfig`]: a failing run prints its seed and replays exactly.

use crate::adversary::{Adversary, Behaviour};
use crate::checker::Checker;
use crate::crypto::{Sr25519Signer, Sr25519Verifier};
use crate::ledger::{Ledger, Transfer};
use bsmr_consensus_core::*;
use codec::Decode;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

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
    /// A crash strikes in the middle of a step: after the replica's first `Persist` that is
    /// followed by a `Send`, before that send (and the rest of the step's output) leaves.
    pub crash_between_persist_and_send: bool,
    /// A validator-set change enacted in this block (b*): the highest-indexed validator (a
    /// Byzantine one if any) leaves, and epoch 1 starts at block b* + 2 with the engine's
    /// handover rule (protocol.md, "Epochs"): each node switches to a new replica once block
    /// b* + 1 is built or in its chain, void batches' transactions are proposed again, and the
    /// leaving validator's clients' transactions go to a member (as its pool would gossip them).
    pub epoch_change_at: Option<BlockIndex>,
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
    /// (`(f + 5) Δ`); then a block period and two retransmission periods for what was lost
    /// before GST.
    pub fn liveness_bound_ms(&self) -> u64 {
        let f = self.n.saturating_sub(1) / 3;
        let t = self.core_timeouts();
        let back_off = (1u64 << (f + 1)) - 1;
        let rounds = (f as u64 + 5) * self.max_delay_ms();
        (t.recovery_ms * back_off + rounds)
            + (t.ckpt_ms * back_off + rounds)
            + self.block_ms
            + 2 * t.resend_ms
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
        }
    }
}

/// Summary of a run.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Seed.
    pub seed: u64,
    /// Invariant and liveness violations.
    pub violations: Vec<String>,
    /// Distinct decided instances.
    pub decisions: u64,
    /// Txs commands committed (non-Noop) at validator 0's view of the checker.
    pub committed_batches: u64,
    /// Transactions included in blocks (at the most advanced correct validator).
    pub txs_in_blocks: u64,
    /// Transactions submitted.
    pub txs_submitted: u64,
    /// Lowest height among live correct validators.
    pub min_height: u64,
    /// Highest height.
    pub max_height: u64,
    /// Virtual end time (ms).
    pub virtual_ms: u64,
    /// Events processed.
    pub events: u64,
    /// Messages delivered.
    pub messages: u64,
    /// Commit latency samples (ms): proposer's first announce to its own commit.
    pub commit_latency_ms: Vec<u64>,
    /// Message delay samples (ms).
    pub msg_delay_ms: Vec<u64>,
    /// Client-observed latency (ms) per region: a transaction's submission at a validator to
    /// that validator executing the block that contains it.
    pub client_latency_ms: BTreeMap<usize, Vec<u64>>,
    /// Leader-based baseline: the primary's region.
    pub primary_region: Option<usize>,
    /// Proofs per convicted validator index.
    pub proofs: BTreeMap<usize, usize>,
    /// Max DDS log size seen at the end among correct validators.
    pub max_log: usize,
    /// Validator 0's blocks: (index, view in which K_b was announced, virtual ms when built).
    pub checkpoint_views: Vec<(u64, u32, u64)>,
    /// Virtual ms of each crash.
    pub crashes_ms: Vec<u64>,
    /// Rejoins from the chain: (node, block before, chain block after).
    pub rejoins: Vec<(usize, u64, u64)>,
    /// Blocks each node built itself (not taken from the chain), by node index.
    pub blocks_built: BTreeMap<usize, u64>,
    /// The last block each node built itself, by node index.
    pub last_built: BTreeMap<usize, u64>,
    /// Committed commands void by their block's agreed floor: (proposer's node index, seq).
    pub voided: Vec<(usize, u64)>,
    /// The highest agreed floor of any proposer in a block a correct validator built.
    pub max_floor: u64,
    /// Mutation operators the Byzantine validators applied (behaviour `mutate`).
    pub mutations: BTreeMap<&'static str, u64>,
    /// Nodes that switched to epoch 1 (a validator-set change).
    pub epoch_switches: usize,
}

impl Report {
    /// Percentile of a sample.
    pub fn pct(v: &[u64], p: f64) -> u64 {
        if v.is_empty() {
            return 0;
        }
        let mut s = v.to_vec();
        s.sort_unstable();
        s[((s.len() - 1) as f64 * p) as usize]
    }
}

#[derive(Clone, Debug)]
enum Ev {
    Deliver {
        to: usize,
        from: usize,
        /// Boxed: the event queue holds many small timers next to few large messages.
        msg: Box<Message>,
    },
    Timer {
        node: usize,
        inc: u32,
        id: TimerId,
        /// For the second replica of a Twins validator.
        twin: bool,
    },
    Load {
        node: usize,
    },
    /// A client batch forwarded to the primary (leader-based baseline).
    Forward {
        to: usize,
        txs: Vec<Tx>,
    },
    Due {
        node: usize,
    },
    Crash {
        node: usize,
    },
    Restart {
        node: usize,
    },
    AdvTick {
        node: usize,
    },
}

struct Node {
    id: ValidatorId,
    signer: Sr25519Signer,
    replica: Option<Replica>,
    storage: MemStorage,
    ledger: Ledger,
    adv: Option<Adversary>,
    inc: u32,
    crashed_for_good: bool,
    skew_ms: u64,
    next_tx: u64,
    submitted: Vec<u64>,
    /// Client batches lost in a crash before they were proposed, submitted again on restart.
    resubmit: Vec<Vec<Tx>>,
    /// Position of the last block built (what the chain's header and state would say).
    last_position: Option<ChainPosition>,
    /// Chain blocks fed to this node's replica, with the ledger state after each (what block
    /// sync would have brought): taken over when the replica rejoins at one of them.
    fed_chain: BTreeMap<u64, Ledger>,
    /// A crash is due at this node's next `Persist` followed by a `Send`.
    crash_pending: bool,
    /// Twins: the second honest replica run with this validator's key, and the node indices
    /// it talks to before GST (the first replica talks to the others).
    twin: Option<Twin>,
    /// The epoch its replica runs.
    epoch: Epoch,
    /// Left the validator set at an epoch change (a follower from then on).
    retired: bool,
    /// Every transaction its clients submitted (what void batches' re-proposal draws on).
    sent: BTreeMap<u64, Tx>,
}

/// The second replica of a Twins validator.
struct Twin {
    replica: Replica,
    storage: MemStorage,
    side: BTreeSet<usize>,
}

/// A simulation.
pub struct Sim {
    cfg: SimConfig,
    rng: ChaCha8Rng,
    now_us: u64,
    seq: u64,
    heap: BinaryHeap<Reverse<(u64, u64)>>,
    events: BTreeMap<u64, Ev>,
    nodes: Vec<Node>,
    membership: Membership,
    core_cfg: Config,
    verifier: Sr25519Verifier,
    checker: Checker,
    partitioned: BTreeSet<usize>,
    region: Vec<usize>,
    /// Leader-based baseline: the primary's node index.
    primary: Option<usize>,
    /// Submission time (us) per transaction id, until its origin validator executes it.
    submitted_at: BTreeMap<u64, u64>,
    /// Leader-based baseline: transactions forwarded to the primary, proposed with its next batch
    /// (as the engine's primary batches its whole pool).
    forwarded: Vec<Tx>,
    report: Report,
    first_announce: BTreeMap<CommandId, u64>,
    payloads: BTreeMap<CommandId, SignedBatch>,
    height_at_gst: BTreeMap<usize, u64>,
    /// The set and core configuration of epoch 1 when a set change is configured.
    next_epoch: Option<(Membership, Config)>,
    /// The chain at block s - 1 (ledger and position), once a correct node built it: what block
    /// sync gives a node that switches epochs while behind.
    handover_chain: Option<(Ledger, ChainPosition)>,
}

impl Sim {
    /// Set up a run.
    pub fn new(cfg: SimConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let signers: Vec<Sr25519Signer> = (0..cfg.n).map(Sr25519Signer::for_validator).collect();
        let ids: Vec<ValidatorId> = signers.iter().map(|s| s.public()).collect();
        let mut genesis = [0u8; 32];
        genesis[..8].copy_from_slice(&cfg.seed.to_le_bytes());
        let mut membership = Membership::new(genesis, 0, ids.clone());
        if cfg.leader_based {
            membership = membership.with_fixed_checkpoint_leader();
        }
        let primary = cfg.leader_based.then(|| {
            let p = membership.validators()[0];
            ids.iter()
                .position(|v| *v == p)
                .expect("the primary is a validator; qed")
        });
        let mut core_cfg = Config::new(membership.clone());
        core_cfg.window = cfg.window;
        core_cfg.retain_sync_blocks = cfg.retain_sync_blocks;
        let t = cfg.core_timeouts();
        core_cfg.recovery_timeout_ms = t.recovery_ms;
        core_cfg.ckpt_timeout_ms = t.ckpt_ms;
        core_cfg.resend_ms = t.resend_ms;
        let verifier = Sr25519Verifier::default();
        let byz_start = cfg.n - cfg.byzantine;
        let byz: BTreeSet<ValidatorId> = ids[byz_start..].iter().copied().collect();
        let supply = cfg.accounts as u64 * 1_000;
        let checker = Checker::new(
            membership.clone(),
            Box::new(verifier.clone()),
            cfg.window,
            byz,
            supply,
        );
        let mut nodes = Vec::new();
        for (i, s) in signers.into_iter().enumerate() {
            let is_byz = i >= byz_start;
            let adv = if is_byz {
                Some(Adversary::new(
                    cfg.behaviour,
                    std::sync::Arc::new(s.clone()),
                    &membership,
                    cfg.window,
                    &mut rng,
                ))
            } else {
                None
            };
            let skew_ms = if is_byz && cfg.behaviour == Behaviour::TimestampAhead {
                600_000
            } else {
                0
            };
            nodes.push(Node {
                id: s.public(),
                signer: s,
                replica: None,
                storage: MemStorage::default(),
                ledger: Ledger::genesis(cfg.accounts, 1_000),
                adv,
                inc: 0,
                crashed_for_good: false,
                resubmit: Vec::new(),
                last_position: None,
                fed_chain: BTreeMap::new(),
                twin: None,
                crash_pending: false,
                skew_ms,
                next_tx: 0,
                submitted: vec![],
                epoch: 0,
                retired: false,
                sent: BTreeMap::new(),
            });
        }
        let region = (0..cfg.n).map(|i| i % 5).collect();
        let mut partitioned = BTreeSet::new();
        if cfg.partition && cfg.n >= 4 && cfg.gst_ms > 0 {
            let k = rng.gen_range(1..=membership.f().max(1));
            while partitioned.len() < k {
                partitioned.insert(rng.gen_range(0..cfg.n));
            }
        }
        let mut sim = Sim {
            cfg: cfg.clone(),
            rng,
            now_us: 0,
            seq: 0,
            heap: BinaryHeap::new(),
            events: BTreeMap::new(),
            nodes,
            membership,
            core_cfg,
            verifier,
            checker,
            partitioned,
            region,
            report: Report {
                seed: cfg.seed,
                primary_region: primary.map(|p| p % 5),
                ..Default::default()
            },
            first_announce: BTreeMap::new(),
            payloads: BTreeMap::new(),
            height_at_gst: BTreeMap::new(),
            primary,
            submitted_at: BTreeMap::new(),
            forwarded: vec![],
            next_epoch: None,
            handover_chain: None,
        };
        if let Some(b_star) = cfg.epoch_change_at {
            let leaving = ids[cfg.n - 1];
            let staying: Vec<ValidatorId> = ids.iter().copied().filter(|v| *v != leaving).collect();
            let m1 = Membership::new(genesis, 1, staying);
            let mut c1 = sim.core_cfg.clone();
            c1.membership = m1.clone();
            let start = epoch::next_epoch_start(b_star);
            sim.checker.begin_epoch(m1.clone(), start);
            sim.next_epoch = Some((m1, c1));
        }
        // Crash schedule among correct validators (lowest indices first after 0 stays up).
        let (count, restart) = match cfg.crash {
            CrashMode::None => (0, false),
            CrashMode::Crash(c) => (c, false),
            CrashMode::CrashRestart(c) => (c, true),
        };
        let correct = cfg.n - cfg.byzantine;
        for k in 0..count.min(correct.saturating_sub(1)) {
            let node = correct - 1 - k;
            let at = sim
                .rng
                .gen_range(cfg.load_ms / 4..cfg.load_ms.max(cfg.load_ms / 4 + 1));
            let at = cfg.crash_at_ms.unwrap_or(at);
            sim.schedule(at * 1000, Ev::Crash { node });
            if restart {
                let down = sim.rng.gen_range(200..MAX_OUTAGE_MS);
                let down = cfg.outage_ms.unwrap_or(down);
                sim.schedule((at + down) * 1000, Ev::Restart { node });
            } else {
                sim.nodes[node].crashed_for_good = true;
            }
        }
        if cfg.behaviour == Behaviour::Twins {
            for i in byz_start..cfg.n {
                let mut others: Vec<usize> = (0..cfg.n).filter(|k| *k != i).collect();
                for k in (1..others.len()).rev() {
                    let j = sim.rng.gen_range(0..=k);
                    others.swap(k, j);
                }
                let side: BTreeSet<usize> = others[..others.len() / 2].iter().copied().collect();
                let node = &sim.nodes[i];
                let replica = Replica::new(
                    sim.core_cfg.clone(),
                    &MemStorage::default(),
                    Box::new(node.signer.clone()),
                    Box::new(sim.verifier.clone()),
                );
                sim.nodes[i].twin = Some(Twin {
                    replica,
                    storage: MemStorage::default(),
                    side,
                });
            }
        }
        for i in 0..cfg.n {
            sim.boot(i);
            if sim.nodes[i].twin.is_some() {
                let now = sim.now_us / 1000;
                let outs = sim.nodes[i]
                    .twin
                    .as_mut()
                    .expect("checked; qed")
                    .replica
                    .start(now);
                sim.apply_twin(i, outs);
            }
            let off = sim.rng.gen_range(0..cfg.batch_interval_ms.max(1));
            sim.schedule(off * 1000, Ev::Load { node: i });
            let off = sim.rng.gen_range(0..50);
            sim.schedule((cfg.block_ms + off) * 1000, Ev::Due { node: i });
            if sim.nodes[i].adv.is_some() {
                sim.schedule(300_000, Ev::AdvTick { node: i });
            }
        }
        sim
    }

    /// The core configuration of the epoch node `i` runs.
    fn core_cfg_of(&self, i: usize) -> Config {
        match &self.next_epoch {
            Some((_, c1)) if self.nodes[i].epoch == 1 => c1.clone(),
            _ => self.core_cfg.clone(),
        }
    }

    /// The block index epoch 1 starts at, when a set change is configured.
    fn epoch_start(&self) -> Option<BlockIndex> {
        self.cfg.epoch_change_at.map(epoch::next_epoch_start)
    }

    /// Replace node `i`'s epoch-0 replica by one for epoch 1 (as the engine's `switch_epoch`),
    /// taking the chain at block s - 1 if it is behind it.
    fn switch_epoch(&mut self, i: usize) {
        let (Some(s), Some((m1, _)), Some((chain, pos))) = (
            self.epoch_start(),
            self.next_epoch.clone(),
            self.handover_chain.clone(),
        ) else {
            return;
        };
        let node = &mut self.nodes[i];
        if node.epoch > 0 || node.replica.is_none() {
            return;
        }
        node.epoch = 1;
        self.report.epoch_switches += 1;
        self.checker.node_in_epoch(i, 1);
        node.fed_chain.clear();
        if node.ledger.height < s - 1 {
            node.ledger = chain;
            node.last_position = Some(pos.clone());
        }
        let again: Vec<(u64, Tx)> = node
            .sent
            .iter()
            .filter(|(id, _)| !node.ledger.included.contains(id))
            .map(|(id, t)| (*id, t.clone()))
            .collect();
        if !m1.contains(&node.id) {
            node.retired = true;
            node.replica = None;
            node.adv = None;
            // Its pool's transactions reach a member of the new set, which proposes them.
            let to = (0..self.cfg.n)
                .find(|k| {
                    *k != i
                        && self.is_correct(*k)
                        && !self.nodes[*k].crashed_for_good
                        && m1.contains(&self.nodes[*k].id)
                })
                .expect("a correct member stays; qed");
            for (id, t) in &again {
                self.nodes[to].sent.insert(*id, t.clone());
            }
            if self.nodes[to].epoch == 1 {
                self.propose_again(to, again);
            }
            return;
        }
        let mut storage = MemStorage::default();
        storage.apply(&[StorageOp::Put(
            Key::Meta,
            Record::Meta(storage::Meta {
                fence: s - 1,
                next_pos: 0,
                built: s - 1,
                built_ckpt: pos.checkpoint,
                built_ts: pos.timestamp_ms,
                next_rotation: pos.next_rotation.clone(),
                built_floors: pos.floors.clone(),
            }),
        )]);
        node.storage = storage;
        node.twin = None;
        if node.adv.is_some() {
            node.adv = Some(Adversary::new(
                self.cfg.behaviour,
                std::sync::Arc::new(node.signer.clone()),
                &m1,
                self.cfg.window,
                &mut self.rng,
            ));
        }
        // Epoch 1's configuration and the storage just seeded.
        self.boot(i);
        self.propose_again(i, again);
    }

    /// Hand transactions to node `i`'s replica again, a client batch at a time.
    fn propose_again(&mut self, i: usize, txs: Vec<(u64, Tx)>) {
        let txs: Vec<Tx> = txs.into_iter().map(|(_, t)| t).collect();
        for chunk in txs.chunks(self.cfg.txs_per_batch.max(1)) {
            self.feed(i, Input::ClientBatch(chunk.to_vec()));
        }
    }

    fn schedule(&mut self, at_us: u64, ev: Ev) {
        self.seq += 1;
        self.heap.push(Reverse((at_us, self.seq)));
        self.events.insert(self.seq, ev);
    }

    fn boot(&mut self, i: usize) {
        let cfg = self.core_cfg_of(i);
        let node = &mut self.nodes[i];
        node.inc += 1;
        let replica = Replica::new(
            cfg,
            &node.storage,
            Box::new(node.signer.clone()),
            Box::new(self.verifier.clone()),
        );
        node.replica = Some(replica);
        let now = self.now_us / 1000 + self.nodes[i].skew_ms;
        let outs = self.nodes[i]
            .replica
            .as_mut()
            .expect("just set; qed")
            .start(now);
        self.apply(i, outs);
    }

    /// Schedule timer `id` of node `i` (of its Twins replica if `twin`) in `after_ms`.
    fn schedule_timer(&mut self, i: usize, id: TimerId, after_ms: u64, twin: bool) {
        let inc = self.nodes[i].inc;
        self.schedule(
            self.now_us + after_ms * 1000,
            Ev::Timer {
                node: i,
                inc,
                id,
                twin,
            },
        );
    }

    /// Feed the second replica of Twins validator `i`.
    fn feed_twin(&mut self, i: usize, input: Input) {
        let now = self.now_us / 1000;
        let Some(t) = self.nodes[i].twin.as_mut() else {
            return;
        };
        let outs = t.replica.handle(now, input);
        self.apply_twin(i, outs);
    }

    /// What the second replica of a Twins validator does: it persists to its own storage, and
    /// before GST talks only to its side.
    fn apply_twin(&mut self, i: usize, outs: Vec<Output>) {
        let before_gst = self.now_us < self.cfg.gst_ms * 1000;
        let mut sends = vec![];
        for o in outs {
            match o {
                Output::Persist(ops) => {
                    if let Some(t) = self.nodes[i].twin.as_mut() {
                        t.storage.apply(&ops);
                    }
                }
                Output::Send { to, msg } => {
                    self.note_payloads(&msg);
                    sends.push((to, msg));
                }
                Output::SetTimer { id, after_ms } => self.schedule_timer(i, id, after_ms, true),
                _ => {}
            }
        }
        let side = self.nodes[i]
            .twin
            .as_ref()
            .map(|t| t.side.clone())
            .unwrap_or_default();
        let ids: Vec<ValidatorId> = self.membership.validators().to_vec();
        for (to, msg) in sends {
            for (k, v) in ids.iter().enumerate() {
                let addressed = to.map(|t| t == *v).unwrap_or(true);
                if k != i && addressed && (!before_gst || side.contains(&k)) {
                    self.transmit(i, k, msg.clone());
                }
            }
        }
    }

    /// Which replicas of node `to` a message from `from` reaches: (first, twin). Before GST a
    /// Twins validator's replicas each hear only their own side.
    fn reaches(&self, from: usize, to: usize) -> (bool, bool) {
        match &self.nodes[to].twin {
            None => (true, false),
            Some(_) if self.now_us >= self.cfg.gst_ms * 1000 => (true, true),
            Some(t) => {
                let twin_side = t.side.contains(&from);
                (!twin_side, twin_side)
            }
        }
    }

    fn latency_us(&mut self, from: usize, to: usize) -> u64 {
        let base = match self.cfg.net {
            NetKind::Lan => self.rng.gen_range(200..1_000),
            NetKind::Wan => {
                let b = WAN[self.region[from]][self.region[to]] * 1000;
                b + self.rng.gen_range(0..=b / 10 + 100)
            }
        };
        if self.now_us < self.cfg.gst_ms * 1000 && self.rng.gen_bool(0.2) {
            base + self.rng.gen_range(0..2_000_000)
        } else {
            base
        }
    }

    fn is_correct(&self, i: usize) -> bool {
        self.nodes[i].adv.is_none()
    }

    fn transmit(&mut self, from: usize, to: usize, msg: Message) {
        if from == to {
            return;
        }
        let before_gst = self.now_us < self.cfg.gst_ms * 1000;
        if before_gst {
            if self.partitioned.contains(&from) != self.partitioned.contains(&to) {
                return;
            }
            if self.rng.gen_bool(self.cfg.loss) {
                return;
            }
            if self.rng.gen_bool(self.cfg.dup) {
                let l = self.latency_us(from, to);
                self.schedule(
                    self.now_us + l,
                    Ev::Deliver {
                        to,
                        from,
                        msg: Box::new(msg.clone()),
                    },
                );
            }
        }
        let l = self.latency_us(from, to);
        self.report.msg_delay_ms.push(l / 1000);
        self.schedule(
            self.now_us + l,
            Ev::Deliver {
                to,
                from,
                msg: Box::new(msg),
            },
        );
    }

    fn apply(&mut self, i: usize, outs: Vec<Output>) {
        let correct = self.is_correct(i);
        let me = self.nodes[i].id;
        let mut sends: Vec<(ValidatorId, Message)> = vec![];
        let ids: Vec<ValidatorId> = match &self.next_epoch {
            Some((m1, _)) if self.nodes[i].epoch == 1 => m1.validators().to_vec(),
            _ => self.membership.validators().to_vec(),
        };
        let epoch = self.nodes[i].epoch;
        let mut switch = false;
        let mut persisted = false;
        let mut crash_here = false;
        // Own batches the crash kept from being written: their clients submit them again.
        let mut unwritten: Vec<Vec<Tx>> = vec![];
        let mut outs = outs.into_iter();
        while let Some(o) = outs.next() {
            if self.nodes[i].crash_pending && persisted && matches!(o, Output::Send { .. }) {
                // The crash strikes between the write and the send that depends on it: what
                // was persisted and sent before stays, this send and the rest of the step are
                // lost.
                self.nodes[i].crash_pending = false;
                crash_here = true;
                for rest in outs.by_ref() {
                    if let Output::Persist(ops) = rest {
                        for op in ops {
                            if let StorageOp::Put(Key::OwnBatch(_), Record::Batch(b)) = op {
                                unwritten.push(b.txs);
                            }
                        }
                    }
                }
                break;
            }
            persisted |= matches!(o, Output::Persist(_));
            match o {
                Output::Persist(ops) => {
                    if correct {
                        for op in &ops {
                            if let StorageOp::Put(Key::Reply(_), Record::Reply(r, _)) = op {
                                self.checker.on_reply_created(i, me, &r.body);
                            }
                        }
                    }
                    self.nodes[i].storage.apply(&ops)
                }
                Output::Send { to, msg } => {
                    if correct {
                        self.checker.on_send(i, me, &msg);
                    }
                    match to {
                        Some(t) => sends.push((t, msg)),
                        None => {
                            for t in &ids {
                                if *t != me {
                                    sends.push((*t, msg.clone()));
                                }
                            }
                        }
                    }
                }
                Output::SetTimer { id, after_ms } => self.schedule_timer(i, id, after_ms, false),
                Output::Proposed { id, .. } => {
                    if correct {
                        self.first_announce.entry(id).or_insert(self.now_us);
                    }
                }
                Output::Committed { inst, value, view } => {
                    if correct && !self.checker.superseded(epoch, &inst) {
                        let payload = match (&inst, &value) {
                            (InstanceId::Cmd { id, .. }, Value::Deps { .. }) => {
                                self.find_payload(i, id)
                            }
                            _ => None,
                        };
                        self.checker
                            .on_commit(i, inst, &value, view, payload.as_ref());
                        if let (InstanceId::Cmd { proposer, id, .. }, Value::Deps { .. }) =
                            (inst, &value)
                        {
                            if proposer == me {
                                self.report.committed_batches += 1;
                                if let Some(t) = self.first_announce.get(&id) {
                                    self.report.commit_latency_ms.push((self.now_us - t) / 1000);
                                }
                            }
                        }
                    }
                }
                Output::BlockReady(b)
                    if epoch == 0 && self.epoch_start().is_some_and(|s| b.index >= s) =>
                {
                    // Void: the old epoch's replica is replaced before it could build here.
                }
                Output::BlockReady(b) => {
                    let handover = epoch == 0 && self.epoch_start() == Some(b.index + 1);
                    let node = &mut self.nodes[i];
                    *self.report.blocks_built.entry(i).or_default() += 1;
                    self.report.last_built.insert(i, b.index);
                    let executed = node.ledger.execute(&b);
                    if executed.is_ok() {
                        node.last_position = Some(ChainPosition {
                            index: b.index,
                            checkpoint: b.checkpoint,
                            timestamp_ms: node.ledger.time_ms,
                            next_rotation: b.next_rotation.clone(),
                            floors: b.floors.clone(),
                        });
                    }
                    if let Err(e) = executed {
                        if correct {
                            self.checker.violations.push(format!("node {i}: {e}"));
                        }
                    } else if correct {
                        if i == 0 {
                            self.report.checkpoint_views.push((
                                b.index,
                                b.checkpoint_view,
                                self.now_us / 1000,
                            ));
                        }
                        let top = b.floors.iter().map(|(_, f)| *f).max().unwrap_or(0);
                        self.report.max_floor = self.report.max_floor.max(top);
                        let l = self.nodes[i].ledger.clone();
                        self.checker.on_block(i, &b, &l);
                        self.note_client_latency(i, &b);
                        if handover && self.handover_chain.is_none() {
                            let pos = self.nodes[i].last_position.clone();
                            self.handover_chain = pos.map(|p| (l, p));
                        }
                    }
                    switch |= handover;
                }
                Output::Misbehaviour(p) => {
                    if correct {
                        self.checker.on_proof(i, &p);
                    }
                }
                Output::Rejoined { from, to } => {
                    self.report.rejoins.push((i, from, to));
                    let node = &mut self.nodes[i];
                    match node.fed_chain.remove(&to) {
                        Some(l) => {
                            node.ledger = l;
                            node.fed_chain = node.fed_chain.split_off(&(to + 1));
                        }
                        None => self
                            .checker
                            .violations
                            .push(format!("node {i} rejoined at block {to}, never fed")),
                    }
                }
            }
        }
        if let Some(adv) = self.nodes[i].adv.as_mut() {
            sends = adv.rewrite(sends, &mut self.rng);
        }
        let pos: BTreeMap<ValidatorId, usize> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| ids.contains(&n.id))
            .map(|(k, n)| (n.id, k))
            .collect();
        let twin_side = match &self.nodes[i].twin {
            Some(t) if self.now_us < self.cfg.gst_ms * 1000 => t.side.clone(),
            _ => BTreeSet::new(),
        };
        for (to, msg) in sends {
            if let Some(&t) = pos.get(&to) {
                if !twin_side.contains(&t) {
                    self.transmit(i, t, msg);
                }
            }
        }
        if crash_here {
            self.crash_now(i);
            let pending = std::mem::take(&mut self.nodes[i].resubmit);
            self.nodes[i].resubmit = unwritten.into_iter().chain(pending).collect();
        } else if switch {
            self.switch_epoch(i);
        }
    }

    /// Record the latency of the transactions of `b` that clients submitted at validator `i`.
    fn note_client_latency(&mut self, i: usize, b: &FinishedBlock) {
        for (_, txs) in &b.batches {
            for tx in txs {
                let Ok(t) = Transfer::decode(&mut &tx.data[..]) else {
                    continue;
                };
                if (t.id >> 40) as usize != i {
                    continue;
                }
                if let Some(at) = self.submitted_at.remove(&t.id) {
                    self.report
                        .client_latency_ms
                        .entry(self.region[i])
                        .or_default()
                        .push((self.now_us - at) / 1000);
                }
            }
        }
    }

    fn find_payload(&self, _i: usize, id: &CommandId) -> Option<SignedBatch> {
        self.payloads.get(id).cloned()
    }

    fn note_payloads(&mut self, msg: &Message) {
        let b = match msg {
            Message::Announce(b) => Some(b),
            Message::PrePrepare(_, Some(b)) => Some(b),
            Message::Decided(_, Some(b)) => Some(b),
            _ => None,
        };
        if let Some(b) = b {
            if !b.header.body.is_checkpoint() {
                self.payloads.entry(b.id()).or_insert_with(|| b.clone());
            }
        }
    }

    fn feed(&mut self, i: usize, input: Input) {
        let now = self.now_us / 1000 + self.nodes[i].skew_ms;
        let Some(r) = self.nodes[i].replica.as_mut() else {
            return;
        };
        let outs = r.handle(now, input);
        // Payloads of own batches are also needed by the checker.
        for o in &outs {
            if let Output::Send { msg, .. } = o {
                self.note_payloads(msg);
            }
        }
        self.apply(i, outs);
    }

    fn make_txs(&mut self, i: usize) -> Vec<Tx> {
        let mut txs = vec![];
        for _ in 0..self.cfg.txs_per_batch {
            let node = &mut self.nodes[i];
            let id = ((i as u64) << 40) | node.next_tx;
            node.next_tx += 1;
            let a = self.cfg.accounts;
            let from = if self.rng.gen_bool(self.cfg.hot) {
                0
            } else {
                self.rng.gen_range(0..a)
            };
            let to = self.rng.gen_range(0..a);
            let global = self.rng.gen_bool(self.cfg.global);
            let t = Transfer {
                id,
                from,
                to,
                amount: self.rng.gen_range(1..20),
                global,
            };
            self.nodes[i].submitted.push(id);
            self.submitted_at.insert(id, self.now_us);
            let tx = t.to_tx();
            if self.cfg.epoch_change_at.is_some() {
                self.nodes[i].sent.insert(id, tx.clone());
            }
            txs.push(tx);
        }
        txs
    }

    fn step(&mut self, ev: Ev) {
        match ev {
            Ev::Deliver { to, from, msg } => {
                self.report.messages += 1;
                self.note_payloads(&msg);
                let from_id = self.nodes[from].id;
                if let Some(adv) = self.nodes[to].adv.as_mut() {
                    adv.observe(&msg, &mut self.rng);
                }
                let (first, twin) = self.reaches(from, to);
                if twin {
                    self.feed_twin(
                        to,
                        Input::Message {
                            from: from_id,
                            msg: (*msg).clone(),
                        },
                    );
                }
                if !first {
                    return;
                }
                if self.is_correct(to) {
                    self.checker.on_deliver(&msg);
                }
                let bytes = if self.rng.gen_bool(0.01) {
                    Some(encode_message(&msg))
                } else {
                    None
                };
                match bytes {
                    // Exercise the untrusted-bytes path now and then.
                    Some(b) => self.feed(
                        to,
                        Input::Bytes {
                            from: from_id,
                            bytes: b,
                        },
                    ),
                    None => self.feed(
                        to,
                        Input::Message {
                            from: from_id,
                            msg: *msg,
                        },
                    ),
                }
            }
            Ev::Timer {
                node,
                inc,
                id,
                twin: false,
            } => {
                if self.nodes[node].inc == inc {
                    self.feed(node, Input::Timer(id));
                }
            }
            Ev::Timer { node, id, .. } => self.feed_twin(node, Input::Timer(id)),
            Ev::Load { node } => {
                if self.now_us < self.cfg.load_ms * 1000 {
                    if self.nodes[node].replica.is_some() {
                        let txs = self.make_txs(node);
                        let dup = self.nodes[node]
                            .adv
                            .as_ref()
                            .map(|a| a.behaviour == Behaviour::DuplicateTx)
                            .unwrap_or(false);
                        match self.primary {
                            Some(p) if p != node => {
                                let l = self.latency_us(node, p);
                                self.schedule(self.now_us + l, Ev::Forward { to: p, txs });
                            }
                            _ => {
                                let mut txs = txs;
                                txs.append(&mut self.forwarded);
                                if dup {
                                    self.feed(node, Input::ClientBatch(txs.clone()));
                                }
                                if self.nodes[node].twin.is_some() {
                                    self.feed_twin(node, Input::ClientBatch(txs.clone()));
                                }
                                self.feed(node, Input::ClientBatch(txs));
                            }
                        }
                    }
                    self.schedule(
                        self.now_us + self.cfg.batch_interval_ms * 1000,
                        Ev::Load { node },
                    );
                }
            }
            Ev::Forward { to, mut txs } => {
                if self.nodes[to].replica.is_some() {
                    self.forwarded.append(&mut txs);
                    // After the load ends the primary has no batch of its own to join.
                    if self.now_us >= self.cfg.load_ms * 1000 {
                        let txs = std::mem::take(&mut self.forwarded);
                        self.feed(to, Input::ClientBatch(txs));
                    }
                }
            }
            Ev::Due { node } => {
                self.feed_chain(node);
                self.feed(node, Input::CheckpointDue);
                self.feed_twin(node, Input::CheckpointDue);
                self.schedule(self.now_us + self.cfg.block_ms * 1000, Ev::Due { node });
            }
            Ev::Crash { node } => {
                if self.cfg.crash_between_persist_and_send && self.nodes[node].replica.is_some() {
                    self.nodes[node].crash_pending = true;
                } else {
                    self.crash_now(node);
                }
            }
            Ev::Restart { node } => {
                if std::mem::take(&mut self.nodes[node].crash_pending) {
                    // No persist-then-send step came: it crashes here, as a plain crash.
                    self.crash_now(node);
                }
                if self.nodes[node].retired {
                    // It left the validator set while down: it comes back as a follower, its
                    // clients' transactions already handed to a member.
                    return;
                }
                self.boot(node);
                for txs in std::mem::take(&mut self.nodes[node].resubmit) {
                    self.feed(node, Input::ClientBatch(txs));
                }
            }
            Ev::AdvTick { node } => {
                self.adv_tick(node);
            }
        }
    }

    /// Crash node `node` now: its replica and unproposed client batches are gone, its storage
    /// stays.
    fn crash_now(&mut self, node: usize) {
        self.report.crashes_ms.push(self.now_us / 1000);
        // Client batches the replica held but had not proposed die with it; their clients
        // submit them again once it is back (at restart).
        let lost: Vec<Vec<Tx>> = self.nodes[node]
            .replica
            .as_ref()
            .map(|r| r.unproposed().cloned().collect())
            .unwrap_or_default();
        self.nodes[node].resubmit = lost;
        self.nodes[node].replica = None;
        self.nodes[node].inc += 1;
    }

    /// A Byzantine validator's own periodic messages.
    fn adv_tick(&mut self, node: usize) {
        let last = self.nodes[node]
            .replica
            .as_ref()
            .map(|r| r.stats().last_ckpt)
            .unwrap_or(0);
        let msgs = match self.nodes[node].adv.as_mut() {
            Some(a) => a.tick(last, &mut self.rng),
            None => vec![],
        };
        for (to, msg) in msgs {
            for t in 0..self.cfg.n {
                if t != node && to.map(|x| x == self.nodes[t].id).unwrap_or(true) {
                    self.transmit(node, t, msg.clone());
                }
            }
        }
        self.schedule(self.now_us + 300_000, Ev::AdvTick { node });
    }

    /// What the engine does once a second: hand a replica that is behind the finalized chain
    /// the chain's head. The most advanced correct node's last block stands for it (every
    /// correct node builds the same block, and q of them certify it).
    fn feed_chain(&mut self, i: usize) {
        if self.nodes[i].epoch == 0 && self.handover_chain.is_some() {
            // The chain passed the handover block: sync brings it, and the node switches.
            self.switch_epoch(i);
        }
        if !self.is_correct(i) || self.nodes[i].replica.is_none() {
            return;
        }
        let height = self.nodes[i].ledger.height;
        let Some(j) = self
            .live_correct()
            .into_iter()
            .filter(|j| self.nodes[*j].replica.is_some())
            .max_by_key(|j| (self.nodes[*j].ledger.height, Reverse(*j)))
        else {
            return;
        };
        if self.nodes[j].ledger.height < height + 2 {
            return;
        }
        let Some(pos) = self.nodes[j].last_position.clone() else {
            return;
        };
        let ledger = self.nodes[j].ledger.clone();
        let node = &mut self.nodes[i];
        node.fed_chain.insert(pos.index, ledger);
        while node.fed_chain.len() > 8 {
            node.fed_chain.pop_first();
        }
        self.feed(i, Input::ChainBlock(pos));
    }

    fn live_correct(&self) -> Vec<usize> {
        (0..self.cfg.n)
            .filter(|i| {
                self.is_correct(*i) && !self.nodes[*i].crashed_for_good && !self.nodes[*i].retired
            })
            .collect()
    }

    /// Correct validators whose clients' transactions must land: the live ones and those that
    /// left the set at an epoch change.
    fn origins(&self) -> Vec<usize> {
        (0..self.cfg.n)
            .filter(|i| self.is_correct(*i) && !self.nodes[*i].crashed_for_good)
            .collect()
    }

    fn all_included(&self) -> bool {
        let live = self.live_correct();
        let origins = self.origins();
        live.iter().all(|i| {
            let l = &self.nodes[*i].ledger;
            origins.iter().all(|p| {
                self.nodes[*p]
                    .submitted
                    .iter()
                    .all(|t| l.included.contains(t))
            })
        })
    }

    /// With a validator-set change: every live correct validator built a block of epoch 1.
    fn in_last_epoch(&self) -> bool {
        let Some(s) = self.epoch_start() else {
            return true;
        };
        self.live_correct()
            .iter()
            .all(|i| self.nodes[*i].epoch == 1 && self.nodes[*i].ledger.height >= s)
    }

    /// Live correct validators are within two blocks of each other.
    fn heights_close(&self) -> bool {
        let heights: Vec<u64> = self
            .live_correct()
            .iter()
            .map(|i| self.nodes[*i].ledger.height)
            .collect();
        let (lo, hi) = (heights.iter().min(), heights.iter().max());
        lo.zip(hi).is_none_or(|(lo, hi)| hi - lo <= 2)
    }

    /// Run to completion and check liveness.
    pub fn run(mut self) -> Report {
        let mut n_events = 0u64;
        let mut last_check_us = 0u64;
        let gst_us = self.cfg.gst_ms * 1000;
        while let Some(Reverse((t, s))) = self.heap.pop() {
            let ev = self
                .events
                .remove(&s)
                .expect("every heap entry has an event; qed");
            if t > self.cfg.end_ms * 1000 {
                break;
            }
            if self.now_us < gst_us && t >= gst_us {
                for i in 0..self.cfg.n {
                    let h = self.nodes[i].ledger.height;
                    self.height_at_gst.insert(i, h);
                }
            }
            self.now_us = t;
            self.step(ev);
            n_events += 1;
            if n_events >= self.cfg.max_events {
                self.checker
                    .violations
                    .push("liveness: event budget exhausted".into());
                break;
            }
            if !self.checker.violations.is_empty() {
                break;
            }
            // Early stop: load over, past GST, everything included everywhere, a few blocks
            // later, and no live validator more than two blocks behind (a laggard catching up
            // is not stopped mid-way).
            if t > (self.cfg.load_ms.max(self.cfg.gst_ms) + 2 * self.cfg.block_ms) * 1000
                && t - last_check_us > 200_000
            {
                last_check_us = t;
                if self.all_included() && self.heights_close() && self.in_last_epoch() {
                    break;
                }
            }
        }
        self.report.events = n_events;
        self.report.virtual_ms = self.now_us / 1000;
        let live = self.live_correct();
        let heights: Vec<u64> = live.iter().map(|i| self.nodes[*i].ledger.height).collect();
        self.report.min_height = heights.iter().copied().min().unwrap_or(0);
        self.report.max_height = heights.iter().copied().max().unwrap_or(0);
        self.checker.final_check(self.report.min_height);
        if std::env::var("BSMR_DEBUG").is_ok() {
            for (i, n) in self.nodes.iter().enumerate() {
                eprintln!(
                    "node {i} byz={} height={} stats={:?} pending={:?} partitioned={}",
                    n.adv.is_some(),
                    n.ledger.height,
                    n.replica.as_ref().map(|r| r.stats()),
                    n.replica.as_ref().map(|r| r.pending_batches()),
                    self.partitioned.contains(&i)
                );
                if let Some(r) = &n.replica {
                    let wms: Vec<(u8, u64, u64)> = r
                        .watermarks()
                        .iter()
                        .map(|(p, w, f)| (p[0], *w, *f))
                        .collect();
                    eprintln!("   watermarks (proposer, watermark, floor) {wms:?}");
                    for u in r.undecided().iter().take(6) {
                        eprintln!("   undecided {:?}", u);
                    }
                }
            }
        }
        let mut violations = std::mem::take(&mut self.checker.violations);
        if violations.is_empty() {
            // Liveness after GST.
            if !self.all_included() {
                let mut missing = 0;
                let mut origins: BTreeMap<usize, usize> = BTreeMap::new();
                for i in &live {
                    for p in &self.origins() {
                        let lost = self.nodes[*p]
                            .submitted
                            .iter()
                            .filter(|t| !self.nodes[*i].ledger.included.contains(t))
                            .count();
                        missing += lost;
                        *origins.entry(*p).or_default() += lost;
                    }
                }
                origins.retain(|_, k| *k > 0);
                violations.push(format!(
                    "liveness: {missing} (validator, tx) pairs of correct proposers not in blocks by {} ms (liveness deadline {} ms; heights {:?}; by submitting node {origins:?})",
                    self.report.virtual_ms, self.cfg.liveness_deadline_ms(), heights
                ));
            }
            if !self.in_last_epoch() {
                violations.push(format!(
                    "liveness: not every live correct validator built a block of the new epoch (heights {heights:?})"
                ));
            }
            for i in &live {
                let h0 = self.height_at_gst.get(i).copied().unwrap_or(0);
                if self.nodes[*i].ledger.height <= h0
                    && self.report.virtual_ms > self.cfg.gst_ms + 10 * self.cfg.block_ms
                {
                    violations.push(format!("liveness: node {i} built no block after GST"));
                }
                if let Some(r) = &self.nodes[*i].replica {
                    let st = r.stats();
                    self.report.max_log = self.report.max_log.max(st.log);
                    let bound = self.cfg.n * self.cfg.window as usize * 4 + 256;
                    if st.log > bound || st.instances > bound * 2 || st.payloads > bound * 2 {
                        violations.push(format!("liveness: node {i} memory not bounded: {st:?}"));
                    }
                }
            }
        }
        if !violations.is_empty() && std::env::var_os("BSMR_SIM_DUMP").is_some() {
            let mut last = 0;
            for (b, v, at) in &self.report.checkpoint_views {
                if at - last > 1_000 || *v > 0 {
                    eprintln!(
                        "block {b} built at {at} ms (K_b in view {v}), {} ms after the previous",
                        at - last
                    );
                }
                last = *at;
            }
            self.dump_state();
        }
        self.report.violations = violations;
        self.report.decisions = self.checker.decisions;
        let ids: Vec<ValidatorId> = self.membership.validators().to_vec();
        for (v, c) in &self.checker.proofs {
            if let Some(k) = ids.iter().position(|x| x == v) {
                self.report.proofs.insert(k, *c);
            }
        }
        for (v, seq) in self.checker.voided() {
            if let Some(k) = ids.iter().position(|x| *x == v) {
                self.report.voided.push((k, seq));
            }
        }
        for node in &self.nodes {
            if let Some(m) = node.adv.as_ref().and_then(|a| a.mutator.as_ref()) {
                for (op, k) in &m.applied {
                    *self.report.mutations.entry(op).or_default() += k;
                }
            }
        }
        self.report.txs_submitted = self.nodes.iter().map(|n| n.submitted.len() as u64).sum();
        self.report.txs_in_blocks = live
            .iter()
            .map(|i| self.nodes[*i].ledger.included.len() as u64)
            .max()
            .unwrap_or(0);
        self.report
    }
}

impl Sim {
    /// What each live replica holds at the end of a failing run (`BSMR_SIM_DUMP=1`): the first
    /// place to look when shrinking a failing seed.
    fn dump_state(&self) {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let short = |v: &ValidatorId| hex(&v[..3]);
        for (i, node) in self.nodes.iter().enumerate() {
            let Some(r) = &node.replica else {
                eprintln!("node {i}: down");
                continue;
            };
            let byz = node.adv.is_some();
            eprintln!(
                "node {i} ({}){}: {:?} pending batches {}",
                short(&node.id),
                if byz { " (byzantine)" } else { "" },
                r.stats(),
                r.pending_batches()
            );
            let marks: Vec<String> = r
                .watermarks()
                .iter()
                .map(|(p, wm, fl)| format!("{}: wm {wm} floor {fl}", short(p)))
                .collect();
            eprintln!("  watermarks: {}", marks.join(", "));
            for (p, wm, _) in r.watermarks() {
                let near: Vec<String> = r
                    .marks_of(&p)
                    .into_iter()
                    .filter(|(s, _, _)| *s + 2 >= wm && *s <= wm + 2)
                    .map(|(s, id, c)| {
                        format!(
                            "{s}:{}{}",
                            hex(&id[..2]),
                            if c { "" } else { "(not counted)" }
                        )
                    })
                    .collect();
                eprintln!(
                    "    marks of {} near wm {wm}: {}",
                    short(&p),
                    near.join(" ")
                );
            }
            for d in r.next_block_waits_for() {
                let name = match d.kind {
                    DepKind::Txs { seq } => {
                        format!("cmd {}#{seq} {}", short(&d.proposer), hex(&d.id[..3]))
                    }
                    DepKind::Ckpt { index, view } => format!("ckpt {index} view {view}"),
                };
                eprintln!("  block {} waits for {name}", r.stats().built + 1);
            }
            let mut undecided = r.undecided();
            // Checkpoints first: block building waits on them.
            undecided.sort_by_key(|(inst, ..)| !matches!(inst, InstanceId::Ckpt(_)));
            for (inst, view, in_vc, vcs) in undecided.iter().take(12) {
                let name = match inst {
                    InstanceId::Cmd { proposer, seq, id } => {
                        format!("cmd {}#{seq} {}", short(proposer), hex(&id[..3]))
                    }
                    InstanceId::Ckpt(b) => format!("ckpt {b}"),
                };
                eprintln!("  undecided {name} view {view} in view change {in_vc} vcs {vcs}");
            }
        }
    }
}

/// Convenience: build and run.
pub fn run(cfg: SimConfig) -> Report {
    Sim::new(cfg).run()
}
