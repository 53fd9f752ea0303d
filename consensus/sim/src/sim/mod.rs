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

mod config;
mod end;
mod epochs;
mod network;
mod outputs;
mod report;
mod resources;
mod setup;
mod twins;

pub use config::{
    CoreTimeouts, CrashMode, NetKind, Resources, SetChange, SimConfig, MAX_OUTAGE_MS, WAN,
};
pub use report::Report;
use resources::Usage;

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
    /// Its own handle on the shared verifier (its checks are counted for the CPU model).
    verifier: Sr25519Verifier,
    /// Its CPU and uplink over virtual time ([`Resources`]).
    usage: Usage,
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
    /// A crash is due in the middle of this node's next step that writes and sends.
    crash_pending: bool,
    /// ... and only in a step with two writes or more, between two of them.
    crash_between_writes: bool,
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
    /// Its incarnation: timers of a replaced twin (epoch change) are dropped.
    inc: u32,
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
    /// When each batch was first proposed (its commit latency runs from there).
    first_proposed: BTreeMap<CommandId, u64>,
    /// When a correct validator first proposed each transaction (in a batch with a seq): the
    /// liveness bound runs from there for a transaction that waited for the proposer's window.
    proposed_at: BTreeMap<u64, u64>,
    payloads: BTreeMap<CommandId, SignedBatch>,
    height_at_gst: BTreeMap<usize, u64>,
    /// The set and core configuration of epoch 1 when a set change is configured.
    next_epoch: Option<(Membership, Config)>,
    /// The chain at block s - 1 (ledger and position), once a correct node built it: what block
    /// sync gives a node that switches epochs while behind.
    handover_chain: Option<(Ledger, ChainPosition)>,
}
impl Sim {
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
            Box::new(node.verifier.clone()),
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
        let inc = match &self.nodes[i].twin {
            Some(t) if twin => t.inc,
            _ => self.nodes[i].inc,
        };
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

    fn feed(&mut self, i: usize, input: Input) {
        // With the CPU model, a node busy with earlier events takes this one when it is free.
        let now = self.node_clock_us(i) / 1000 + self.nodes[i].skew_ms;
        let before = self.nodes[i].work_done();
        let Some(r) = self.nodes[i].replica.as_mut() else {
            if let Input::ClientBatch(txs) = input {
                // The node went down earlier in this step (a crash between a persist and its
                // send, while transactions were handed to it one batch after another): the
                // client's submission fails, and it submits again once the node is back.
                self.nodes[i].resubmit.push(txs);
            }
            return;
        };
        let outs = r.handle(now, input);
        self.charge_handling(i, before);
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
            Ev::Timer { node, inc, id, .. } => {
                if self.nodes[node].twin.as_ref().is_some_and(|t| t.inc == inc) {
                    self.feed_twin(node, Input::Timer(id));
                }
            }
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
                                self.gossip_to_adversaries(node, &txs);
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
                    // Half of those that restart wait for a step that writes twice (a write
                    // before a decision or a finished block, and one after) and fall between
                    // two writes. A crash for good strikes in the first step it can (nothing
                    // would turn a crash still pending into a plain one).
                    let between = self.rng.gen_bool(0.5);
                    self.nodes[node].crash_between_writes =
                        between && !self.nodes[node].crashed_for_good;
                } else {
                    self.crash_now(node);
                }
            }
            Ev::Restart { node } => {
                if std::mem::take(&mut self.nodes[node].crash_pending) {
                    // No step it could strike in came: it crashes here, as a plain crash.
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

    /// Client transactions submitted to `node` reach every validator by gossip: the
    /// adversaries that copy them see them as they are submitted.
    fn gossip_to_adversaries(&mut self, node: usize, txs: &[Tx]) {
        let to = self.nodes[node].id;
        for n in self.nodes.iter_mut() {
            if let Some(a) = n.adv.as_mut() {
                a.observe_client(to, txs);
            }
        }
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
            for t in 0..self.nodes.len() {
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

    /// Run to completion and check liveness.
    pub fn run(mut self) -> Report {
        let mut n_events = 0u64;
        let mut last_check_us = 0u64;
        let gst_us = self.cfg.gst_ms * 1000;
        let mut end_us = self.cfg.end_ms * 1000;
        let mut extended = false;
        while let Some(Reverse((t, s))) = self.heap.pop() {
            let ev = self
                .events
                .remove(&s)
                .expect("every heap entry has an event; qed");
            if t > end_us {
                if extended {
                    break;
                }
                // A transaction that waited for its proposer's window gets the bound from its
                // proposal: run on to the last such deadline (at most the hard end).
                extended = true;
                end_us = self.extended_end_us();
                if t > end_us {
                    break;
                }
            }
            if self.now_us < gst_us && t >= gst_us {
                for i in 0..self.nodes.len() {
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
        self.report.primary = self.primary;
        self.report.cpu_used_us = self.nodes.iter().map(|n| n.usage.cpu_used_us).collect();
        self.report.bytes_sent = self.nodes.iter().map(|n| n.usage.bytes_sent).collect();
        self.report.uplink_dropped = self.nodes.iter().map(|n| n.usage.dropped).collect();
        for n in &self.nodes {
            for (kind, bytes) in &n.usage.bytes_by_kind {
                *self.report.bytes_by_kind.entry(kind).or_default() += bytes;
            }
        }
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
                    "liveness: {missing} (validator, tx) pairs of correct proposers not in blocks by {} ms (liveness deadline {} ms, or the bound from each one's proposal; heights {:?}; by submitting node {origins:?})",
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
                    let bound = self.nodes.len() * self.cfg.window as usize * 4 + 256;
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

/// Convenience: build and run.
pub fn run(cfg: SimConfig) -> Report {
    Sim::new(cfg).run()
}
