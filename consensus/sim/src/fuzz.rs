//! Randomized soak testing: each seed picks a whole scenario (n, faults, adversary, network,
//! load, window, retention) and runs it; a failing seed is replayed exactly with
//! `bsmr-sim --fuzz-case SEED`.
//!
//! The scenario space is wider than the seeded matrix's on purpose: n in {4, 5, 7, 10, 13}; up to
//! f Byzantine validators, half the time under mutation fuzzing or Twins; crashes and
//! crash-restarts of correct validators (also in the middle of a step, between a `Persist` and
//! the `Send` after it) next to Byzantine ones, never more than f faults in all; small windows and
//! short retention so that agreed floors rise above 0, old commands are voided and laggards
//! rejoin from the chain; LAN or WAN; GST at 0 or up to 1.5 s with loss, duplication and a
//! partition before it.

use crate::adversary::Behaviour;
use crate::sim::{run, CrashMode, NetKind, Report, SetChange, SimConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Validator counts the soak draws from (small ones more often: they are cheaper).
const SIZES: [usize; 10] = [4, 4, 4, 4, 5, 5, 5, 7, 10, 13];

/// How big a fuzz case's workload is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// The soak's: loads of 0.8-3 s (0.8-2 s for n >= 10).
    Soak,
    /// `make test`'s: the same scenarios with a lighter load (0.6-1.5 s, a batch every 400 ms),
    /// so thousands run in a few minutes.
    Ci,
}

/// The scenario of fuzz case `seed` at `scale`.
pub fn case_at(seed: u64, scale: Scale) -> SimConfig {
    let mut c = case(seed);
    if scale == Scale::Ci {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xc1_0000);
        c.load_ms = rng.gen_range(600..1_500);
        c.batch_interval_ms = 400;
        c.txs_per_batch = c.txs_per_batch.min(2);
        // One small case in eight runs long enough, with the smallest window, for proposers to
        // pass 4 windows of decided seqs: agreed floors rise above 0 (floor GC, voiding).
        if c.n <= 5 && rng.gen_range(0..8) == 0 {
            c.window = 4;
            c.batch_interval_ms = 100;
            c.load_ms = rng.gen_range(2_500..3_500);
        }
    }
    c
}

/// The scenario of fuzz case `seed` (soak scale).
pub fn case(seed: u64) -> SimConfig {
    // A stream of its own: the run's seed drives the run, this one the scenario.
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_f022_0000_0000);
    let n = SIZES[rng.gen_range(0..SIZES.len())];
    let f = (n - 1) / 3;
    let mut c = SimConfig::ci(n, seed);
    c.byzantine = rng.gen_range(0..=f);
    if c.byzantine > 0 {
        c.behaviour = match rng.gen_range(0..4) {
            0 => Behaviour::Mutate,
            1 => Behaviour::Twins,
            _ => Behaviour::ALL[rng.gen_range(0..Behaviour::ALL.len())],
        };
    }
    let spare = f - c.byzantine;
    if spare > 0 && rng.gen_bool(0.4) {
        let k = rng.gen_range(1..=spare);
        c.crash = if rng.gen_bool(0.7) {
            CrashMode::CrashRestart(k)
        } else {
            CrashMode::Crash(k)
        };
        c.crash_between_persist_and_send = rng.gen_bool(0.5);
    }
    c.net = if rng.gen_bool(0.3) {
        NetKind::Lan
    } else {
        NetKind::Wan
    };
    c.gst_ms = if rng.gen_bool(0.2) {
        0
    } else {
        rng.gen_range(200..1_500)
    };
    c.partition = c.gst_ms > 0;
    c.loss = if c.gst_ms > 0 { 0.05 } else { 0.0 };
    c.dup = if c.gst_ms > 0 { 0.05 } else { 0.0 };
    // Large sets verify many more signatures per message: their runs are kept shorter so a
    // soak's time goes to many scenarios rather than a few long ones.
    if n >= 10 {
        c.load_ms = rng.gen_range(800..2_000);
        c.batch_interval_ms = 400;
    } else {
        c.load_ms = rng.gen_range(800..3_000);
        c.batch_interval_ms = [100, 200, 400][rng.gen_range(0..3)];
    }
    c.txs_per_batch = rng.gen_range(1..4);
    c.block_ms = [250, 500][rng.gen_range(0..2)];
    c.window = [4, 8, 16][rng.gen_range(0..3)];
    c.retain_sync_blocks = [4, 8, 64][rng.gen_range(0..3)];
    c.hot = [0.0, 0.25, 0.9][rng.gen_range(0..3)];
    // A validator-set change in one case in four (with Twins too: a Twins validator that stays
    // gets a second epoch-1 replica): drawn from a stream of its own, so that the other draws,
    // and the scenario of a seed without one, stay what they were.
    let mut erng = ChaCha8Rng::seed_from_u64(seed ^ 0xe90c_0000_0000);
    if erng.gen_range(0..4) == 0 {
        c.epoch_change_at = Some(erng.gen_range(1..5));
        // Who leaves or joins, from a third stream (seeds drawn before joins existed keep
        // everything else).
        let mut krng = ChaCha8Rng::seed_from_u64(seed ^ 0x5e7c_0000_0000);
        c.set_change =
            [SetChange::Remove, SetChange::Add, SetChange::Replace][krng.gen_range(0..3)];
    }
    // The liveness check is the stated bound: the run lasts until it has run out (at least the
    // 60 s the cases always had), and stops early once everything is in blocks.
    c.end_ms = c.liveness_deadline_ms().max(60_000);
    c
}

/// One line naming the scenario of a config (what `--fuzz-case` runs).
pub fn describe(c: &SimConfig) -> String {
    let crash = match c.crash {
        CrashMode::None => String::new(),
        CrashMode::Crash(k) => format!(" crash={k}"),
        CrashMode::CrashRestart(k) => format!(" crash-restart={k}"),
    };
    let epoch = match c.epoch_change_at {
        Some(b) => format!(" set-change-at={b} set-change={}", c.set_change.name()),
        None => String::new(),
    };
    let mid = if c.crash_between_persist_and_send {
        " (between persist and send)"
    } else {
        ""
    };
    format!(
        "n={} byzantine={} behaviour={}{crash}{mid}{epoch} net={:?} gst={}ms load={}ms interval={}ms txs/batch={} block={}ms window={} retain={} hot={}",
        c.n,
        c.byzantine,
        c.behaviour.name(),
        c.net,
        c.gst_ms,
        c.load_ms,
        c.batch_interval_ms,
        c.txs_per_batch,
        c.block_ms,
        c.window,
        c.retain_sync_blocks,
        c.hot
    )
}

/// What a soak found.
#[derive(Debug, Default)]
pub struct Soak {
    /// Runs completed.
    pub runs: u64,
    /// Failing seeds with their violations.
    pub failures: Vec<(u64, Vec<String>)>,
    /// Runs by behaviour name.
    pub by_behaviour: BTreeMap<&'static str, u64>,
    /// Runs by n.
    pub by_n: BTreeMap<usize, u64>,
    /// Runs in which some block's agreed floor was above 0.
    pub floors_above_zero: u64,
    /// Runs in which a correct validator's committed command was voided by a floor.
    pub voided: u64,
    /// Runs in which a validator rejoined from the chain.
    pub rejoined: u64,
    /// Runs with a crash.
    pub crashed: u64,
    /// Runs in which the validator set changed (epoch 1 started on the live validators).
    pub epoch_changed: u64,
    /// Runs in which a new validator joined at the set change and built blocks.
    pub joined: u64,
    /// Runs with Byzantine validators and a crash.
    pub byzantine_and_crash: u64,
    /// Runs in which a crash struck between two writes of one step.
    pub lost_writes: u64,
    /// Mutation operators applied, summed over runs.
    pub mutations: BTreeMap<&'static str, u64>,
    /// Wall time.
    pub elapsed: Duration,
}

impl Soak {
    fn note(&mut self, c: &SimConfig, r: &Report) {
        self.runs += 1;
        *self.by_behaviour.entry(c.behaviour.name()).or_default() += 1;
        *self.by_n.entry(c.n).or_default() += 1;
        self.floors_above_zero += u64::from(r.max_floor > 0);
        self.voided += u64::from(!r.voided.is_empty());
        self.rejoined += u64::from(!r.rejoins.is_empty());
        self.crashed += u64::from(!r.crashes_ms.is_empty());
        self.epoch_changed += u64::from(r.epoch_switches > 0);
        self.joined += u64::from(r.joined > 0);
        self.byzantine_and_crash += u64::from(!r.crashes_ms.is_empty() && c.byzantine > 0);
        self.lost_writes += u64::from(r.lost_writes > 0);
        for (op, k) in &r.mutations {
            *self.mutations.entry(op).or_default() += k;
        }
        if !r.violations.is_empty() {
            self.failures.push((r.seed, r.violations.clone()));
        }
    }

    /// A few lines summing up the soak.
    pub fn summary(&self) -> String {
        format!(
            "{} runs in {:.0} s, {} failing\n  by n: {:?}\n  by behaviour: {:?}\n  floors above 0 in {} runs, voided commands in {}, rejoins in {}, crashes in {} ({} with Byzantine validators, {} between two writes of a step), set changes in {} (a validator joined in {})",
            self.runs,
            self.elapsed.as_secs_f64(),
            self.failures.len(),
            self.by_n,
            self.by_behaviour,
            self.floors_above_zero,
            self.voided,
            self.rejoined,
            self.crashed,
            self.byzantine_and_crash,
            self.lost_writes,
            self.epoch_changed,
            self.joined
        )
    }
}

/// Run fuzz cases `first..`, at most `max_runs` of them, until `budget` is spent, on `jobs`
/// threads (each run is deterministic in its seed whatever thread runs it). `on_failure` is
/// called with each failing seed as it is found.
pub fn soak(
    first: u64,
    max_runs: u64,
    budget: Duration,
    scale: Scale,
    jobs: usize,
    on_failure: impl Fn(u64, &SimConfig, &Report) + Sync,
) -> Soak {
    let started = Instant::now();
    let next = AtomicU64::new(first);
    let end = first.saturating_add(max_runs);
    let total = Mutex::new(Soak::default());
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| loop {
                if started.elapsed() >= budget {
                    break;
                }
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= end {
                    break;
                }
                let c = case_at(seed, scale);
                let r = run(c.clone());
                if !r.violations.is_empty() {
                    on_failure(seed, &c, &r);
                }
                total
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .note(&c, &r);
            });
        }
    });
    let mut soak = total
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    soak.failures.sort();
    soak.elapsed = started.elapsed();
    soak
}
