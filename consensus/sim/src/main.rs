//! `bsmr-sim` command line: run seeded simulations and print throughput, latency and violations.

use bsmr_sim::{fuzz, run, Behaviour, CrashMode, NetKind, Report, SimConfig};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "bsmr-sim",
    about = "Deterministic simulator for the bsmr consensus core"
)]
struct Args {
    /// Number of validators.
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Number of Byzantine validators (the last indices).
    #[arg(long, default_value_t = 0)]
    byzantine: usize,
    /// Byzantine behaviour (honest, silent, equivocate, omit-deps, fake-deps, inflate-fence,
    /// lower-fence, reply-equivocate, subset-announce, withhold-payload, invalid-proof,
    /// conflicting-preprepare, double-vote, withhold-votes, vc-spam, dup-checkpoint,
    /// silent-checkpoint, timestamp-ahead, replay-announce, duplicate-tx, lie-settled,
    /// bad-floors, far-deps, outsider-deps, misnamed-deps, mutate, twins, cover-pending).
    /// `mutate` is mutation fuzzing (every message, per recipient, passed on, mutated in one
    /// field and re-signed, sent twice, replaced by a replay, or dropped); `twins` runs the key
    /// as two honest replicas in different partitions; `cover-pending` copies each validator's
    /// fresh client transactions into its own batches, a different batch per recipient, and
    /// never collects replies for them.
    #[arg(long, default_value = "honest")]
    behaviour: String,
    /// Seed (a failing run prints it; the same seed replays exactly).
    #[arg(long, env = "SEED", default_value_t = 1)]
    seed: u64,
    /// Number of consecutive seeds to run.
    #[arg(long, default_value_t = 1)]
    runs: u64,
    /// Correct validators that crash for good.
    #[arg(long, default_value_t = 0)]
    crash: usize,
    /// Correct validators that crash and restart from persisted state.
    #[arg(long, default_value_t = 0)]
    crash_restart: usize,
    /// lan or wan.
    #[arg(long, default_value = "wan")]
    net: String,
    /// GST in virtual ms (0 = synchronous from the start).
    #[arg(long, default_value_t = 1000)]
    gst_ms: u64,
    /// Client load duration in virtual ms.
    #[arg(long, default_value_t = 3000)]
    load_ms: u64,
    /// Hard end in virtual ms (default: the later of 60 s and the liveness deadline: GST, the end
    /// of the load or the last restart, whichever is latest, plus the liveness bound of
    /// docs/consensus.md; a run stops early once every transaction is in a block). Also applies
    /// to `--fuzz-case`.
    #[arg(long)]
    end_ms: Option<u64>,
    /// One client batch per validator every this many ms.
    #[arg(long, default_value_t = 250)]
    batch_interval_ms: u64,
    /// Transactions per batch.
    #[arg(long, default_value_t = 4)]
    txs_per_batch: usize,
    /// CheckpointDue period (ms).
    #[arg(long, default_value_t = 500)]
    block_ms: u64,
    /// Hot-account probability.
    #[arg(long, default_value_t = 0.25)]
    hot: f64,
    /// Loss probability before GST.
    #[arg(long, default_value_t = 0.05)]
    loss: f64,
    /// A validator-set change enacted in this block (who it moves: `--set-change`); epoch 1
    /// starts two blocks later (the engine's handover rule).
    #[arg(long, value_name = "BLOCK")]
    set_change_at: Option<u64>,
    /// Who the set change moves: `remove` (the highest-indexed validator leaves), `add` (a new
    /// validator joins from the chain) or `replace` (both).
    #[arg(long, value_name = "KIND", default_value = "remove")]
    set_change: bsmr_sim::SetChange,
    /// Crashes strike in the middle of a step: right after one of its writes (drawn at
    /// random), before the rest of its writes and all of its messages; half of the
    /// crash-restarts between two writes of a step that has several.
    #[arg(long)]
    crash_mid_step: bool,
    /// Soak mode: run fuzz cases from `--seed` on (each seed draws its own scenario: n, faults,
    /// adversary, network, load, window, retention) until `--budget-secs` or `--runs` is spent;
    /// prints each failing seed's replay command and a summary. The other scenario flags are
    /// ignored.
    #[arg(long)]
    fuzz: bool,
    /// Soak mode's time budget in seconds.
    #[arg(long, default_value_t = 60)]
    budget_secs: u64,
    /// Soak mode's worker threads (default: the machine's cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// With `--fuzz` or `--fuzz-case`: the lighter workload `make test` runs the fuzz cases at.
    #[arg(long)]
    ci_scale: bool,
    /// Replay the fuzz case of this seed (as `--fuzz` printed it), with its full report.
    #[arg(long, value_name = "SEED")]
    fuzz_case: Option<u64>,
}

fn main() {
    let a = Args::parse();
    if a.fuzz {
        soak(&a);
    }
    if let Some(seed) = a.fuzz_case {
        let mut c = fuzz::case_at(seed, scale(&a));
        if let Some(end) = a.end_ms {
            // A longer replay shows whether a liveness failure is slow or stopped.
            c.end_ms = end;
        }
        println!("fuzz case {seed}: {}", fuzz::describe(&c));
        let wall = std::time::Instant::now();
        let r = run(c);
        print(&r, wall.elapsed().as_secs_f64());
        std::process::exit(if r.violations.is_empty() { 0 } else { 1 });
    }
    let Some(behaviour) = Behaviour::parse(&a.behaviour) else {
        eprintln!("unknown behaviour {}", a.behaviour);
        std::process::exit(2);
    };
    let mut failed = 0;
    for seed in a.seed..a.seed + a.runs {
        let mut c = SimConfig::small(a.validators, seed);
        c.byzantine = a.byzantine;
        c.behaviour = behaviour;
        c.crash = if a.crash_restart > 0 {
            CrashMode::CrashRestart(a.crash_restart)
        } else if a.crash > 0 {
            CrashMode::Crash(a.crash)
        } else {
            CrashMode::None
        };
        c.net = if a.net == "lan" {
            NetKind::Lan
        } else {
            NetKind::Wan
        };
        c.gst_ms = a.gst_ms;
        c.partition = a.gst_ms > 0;
        c.loss = if a.gst_ms > 0 { a.loss } else { 0.0 };
        c.dup = if a.gst_ms > 0 { 0.05 } else { 0.0 };
        c.load_ms = a.load_ms;
        c.batch_interval_ms = a.batch_interval_ms;
        c.txs_per_batch = a.txs_per_batch;
        c.block_ms = a.block_ms;
        c.hot = a.hot;
        c.crash_between_persist_and_send = a.crash_mid_step;
        c.epoch_change_at = a.set_change_at;
        c.set_change = a.set_change;
        c.end_ms = a
            .end_ms
            .unwrap_or_else(|| c.liveness_deadline_ms().max(60_000))
            .max(a.load_ms + 5_000);
        let wall = std::time::Instant::now();
        let r = run(c);
        let secs = wall.elapsed().as_secs_f64();
        print(&r, secs);
        if !r.violations.is_empty() {
            failed += 1;
        }
    }
    if failed > 0 {
        eprintln!("{failed} run(s) with violations");
        std::process::exit(1);
    }
}

fn scale(a: &Args) -> fuzz::Scale {
    if a.ci_scale {
        fuzz::Scale::Ci
    } else {
        fuzz::Scale::Soak
    }
}

/// `--fuzz`: run fuzz cases until the budget is spent; exit 1 if any failed.
fn soak(a: &Args) -> ! {
    let runs = if a.runs > 1 { a.runs } else { u64::MAX };
    println!(
        "soak: fuzz cases from seed {} for up to {} s{}",
        a.seed,
        a.budget_secs,
        if runs < u64::MAX {
            format!(" or {runs} runs")
        } else {
            String::new()
        }
    );
    let result = fuzz::soak(
        a.seed,
        runs,
        std::time::Duration::from_secs(a.budget_secs),
        scale(a),
        a.jobs.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }),
        |seed, c, r| {
            println!(
                "FAIL seed {seed}: {}\n  {}\n  replay: bsmr-sim --fuzz-case {seed}{}",
                fuzz::describe(c),
                r.violations.join("; "),
                if a.ci_scale { " --ci-scale" } else { "" }
            );
        },
    );
    println!("{}", result.summary());
    std::process::exit(if result.failures.is_empty() { 0 } else { 1 });
}

fn print(r: &Report, wall_s: f64) {
    let v = r.virtual_ms.max(1) as f64 / 1000.0;
    println!(
        "SEED={} virtual_ms={} events={} messages={} wall_s={:.2}",
        r.seed, r.virtual_ms, r.events, r.messages, wall_s
    );
    println!(
        "  batches committed (own, at proposers)={} commits/s(virtual)={:.1} decisions={} txs submitted={} txs in blocks={}",
        r.committed_batches,
        r.committed_batches as f64 / v,
        r.decisions,
        r.txs_submitted,
        r.txs_in_blocks
    );
    println!(
        "  commit latency ms: p50={} p90={} p99={} max={}  message delay ms: p50={} p99={}",
        Report::pct(&r.commit_latency_ms, 0.5),
        Report::pct(&r.commit_latency_ms, 0.9),
        Report::pct(&r.commit_latency_ms, 0.99),
        Report::pct(&r.commit_latency_ms, 1.0),
        Report::pct(&r.msg_delay_ms, 0.5),
        Report::pct(&r.msg_delay_ms, 0.99)
    );
    println!(
        "  blocks: min height={} max height={}  max log={}  proofs={:?}  voided commands={}  highest floor={}",
        r.min_height,
        r.max_height,
        r.max_log,
        r.proofs,
        r.voided.len(),
        r.max_floor
    );
    if r.epoch_switches > 0 {
        println!(
            "  set change: {} nodes switched to epoch 1, {} new validator(s) built blocks",
            r.epoch_switches, r.joined
        );
    }
    if r.violations.is_empty() {
        println!("  violations: none");
    } else {
        println!("  VIOLATIONS (replay with --seed {}):", r.seed);
        for x in &r.violations {
            println!("    {x}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_help_names_every_behaviour() {
        let help = Args::command().render_long_help().to_string();
        for b in Behaviour::ALL {
            assert!(help.contains(b.name()), "--help lacks {}", b.name());
        }
    }
}
