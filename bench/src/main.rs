//! `bsmr-bench`: replay real transaction traces against bsmr, a leader-based baseline inside the
//! same engine, and a plain Substrate reference chain (Aura + GRANDPA, `bench/aura-grandpa/`).
//!
//! Modes (see `bsmr-bench <mode> --help`):
//! - `replay`: submit a trace to running nodes and measure every transaction end to end;
//! - `network`: start a local 4-validator network per consensus mode, replay, tear down, and
//!   report the modes side by side (scenarios: uniform, trace, crash, far-client);
//! - `sim`: protocol-only figures from the deterministic simulator at up to 100 validators;
//! - `scale`: sustained throughput against the number of validators in the simulator, with each
//!   node's CPU and uplink modelled.

mod accounts;
mod cgroup;
mod chain;
mod network;
mod prepare;
mod replay;
mod report;
mod scenarios;
mod sim_mode;
mod sim_scale;
mod trace;
mod wan;

use clap::{Parser, Subcommand, ValueEnum};
use jsonrpsee::{core::client::ClientT, rpc_params};
use prepare::prepare;
use scenarios::network_mode;
use sim_mode::sim_mode;
use sim_scale::{scale_mode, ScaleArgs};
use sp_core::{crypto::AccountId32, H256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Replay real transaction traces against bsmr (and a leader-based baseline) and measure
/// submit -> included -> finalized latency, sustained throughput and drops.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Replay a trace against running nodes (any bsmr network, e.g. `make run`).
    Replay {
        /// WebSocket RPC endpoints of the validators (comma-separated); a sender's transactions
        /// always go to the same endpoint.
        #[arg(long, value_delimiter = ',', default_value = "ws://127.0.0.1:9944")]
        endpoints: Vec<String>,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Start a local 4-validator network per consensus mode, replay, tear down, compare.
    Network {
        #[command(flatten)]
        net: NetworkArgs,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Protocol-only figures from the deterministic simulator: the real consensus core with real
    /// signatures, in virtual time over a 5-region WAN latency matrix (validator i in region
    /// i mod 5), no loss. Clients submit at every validator; the latency of a transaction is
    /// from its submission at a validator to that validator executing its block, reported per
    /// region. In the leader-based baseline every validator forwards its clients' batches to the
    /// primary, so regions far from the primary pay the distance twice.
    Sim {
        /// Validators (1..=100).
        #[arg(long, default_value_t = 31)]
        validators: usize,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Which consensus modes to run (side by side when `both`).
        #[arg(long, value_enum, default_value_t = Modes::Both)]
        modes: Modes,
        /// Seconds of client load (virtual time).
        #[arg(long, default_value_t = 5)]
        load_secs: u64,
    },
    /// Sustained throughput against the number of validators, leaderless and the leader
    /// baseline, in the simulator with each node's CPU (signatures made and checked,
    /// transactions executed; sr25519 costs measured on this machine at start) and uplink
    /// modelled: where the primary's uplink and CPU bound the baseline and where the
    /// leaderless mode's all-to-all votes bound it. Writes scale.json and scale.svg.
    Scale(ScaleArgs),
}

/// How `network` starts its local networks.
#[derive(clap::Args, Debug, Clone)]
struct NetworkArgs {
    /// The bsmr-node binary.
    #[arg(long, default_value_os_t = default_binary("bsmr-node"))]
    node: PathBuf,
    /// Which networks to run, one after the other, reported side by side: bsmr `leaderless`,
    /// bsmr `leader` (the baseline inside the same engine), `both` of them, `aura-grandpa` (the
    /// reference chain: a plain Substrate node, Aura blocks every 6 s and GRANDPA finality, see
    /// --reference-node), or `all` three.
    #[arg(long, value_enum, default_value_t = NetModes::Both)]
    modes: NetModes,
    /// The reference chain's node binary (`cargo build --release -p aura-grandpa-node`), for
    /// `--modes aura-grandpa` or `all`.
    #[arg(long, default_value_os_t = default_binary("aura-grandpa-node"))]
    reference_node: PathBuf,
    /// Scenario: `uniform` (synthetic, every account equally likely), `trace` (the trace with
    /// its hot accounts), `crash` (the trace; the first validator, the leader of the baseline,
    /// is killed halfway; the latency spike and recovery time are reported), `far-client` (the
    /// trace, all of it submitted by a client next to the validator farthest from the baseline's
    /// leader; implies --wan).
    #[arg(long, value_enum, default_value_t = Scenario::Trace)]
    scenario: Scenario,
    /// Emulate a wide-area network: each validator in its own network namespace in one of the
    /// simulator's five regions (Alice r0, Bob r1, Charlie r4, Dave r2 where the baseline's
    /// leader sits best; one-way delays 40-150 ms), connected only through the bench's delaying
    /// relay. Needs iproute2, and root or unprivileged user namespaces (without root the bench
    /// re-runs itself with `unshare --user --map-root-user --mount --net`). Results then include finality per submission endpoint
    /// (region) and a per-region plot.
    #[arg(long)]
    wan: bool,
    /// Block time of the bsmr networks (ms; the reference chain's is fixed by its runtime).
    #[arg(long, default_value_t = 1000)]
    block_time_ms: u64,
    /// Extra argument for every bsmr-node (repeat it), e.g. `--node-arg=-ltxpool=debug`; not
    /// given to the reference chain's nodes.
    #[arg(long = "node-arg", allow_hyphen_values = true)]
    node_args: Vec<String>,
    /// Keep every node's log in this folder (`<label>-<mode>-<name>.log`); by default logs are
    /// deleted with the network.
    #[arg(long)]
    logs: Option<PathBuf>,
    /// Give each validator its own CPU budget of this many cores (e.g. 0.3), as on separate
    /// machines: one cgroup per node process (cgroup v1 cpu controller at /sys/fs/cgroup/cpu).
    /// Needs root; without it the bench refuses the flag before starting anything.
    #[arg(long)]
    cpu_quota: Option<f64>,
    /// Bandwidth of each emulated WAN link, in Mbit/s, each direction of each validator pair
    /// (a relay queues at most 1 s of sending, then pushes back on the sender's TCP); implies
    /// --wan.
    #[arg(long)]
    bandwidth_mbit: Option<f64>,
}

impl NetworkArgs {
    /// Does this run emulate the WAN (asked for, or implied by the far-client scenario)?
    fn needs_wan(&self) -> bool {
        self.wan || self.scenario == Scenario::FarClient || self.bandwidth_mbit.is_some()
    }
}

#[derive(clap::Args, Debug, Clone)]
struct LoadArgs {
    /// Trace CSV (`from,to,amount[,timestamp]` or the Ethereum export's columns). Default: the
    /// Ethereum mainnet trace shipped in the repository's `traces/` folder, looked up in the
    /// checkout this binary was built from, then in the current directory and its parents.
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Use at most this many transfers of the trace (0 = all).
    #[arg(long, default_value_t = 2000)]
    limit: usize,
    /// Open-loop submission rate (transactions per second).
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Replay the trace's own inter-arrival times, this many times faster (instead of --rate).
    #[arg(long)]
    trace_speedup: Option<f64>,
    /// Funded bench accounts the trace's addresses are mapped onto.
    #[arg(long, default_value_t = 256)]
    accounts: usize,
    /// Endpoints each sender's transactions take turns on (a client behind a load-balanced RPC
    /// address): 1 sends all of a sender's transactions to one endpoint, 2 alternates between
    /// two, so consecutive nonces arrive at different validators.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    endpoints_per_sender: u16,
    /// Secret URI of the account that funds the bench accounts (a dev chain's //Alice by
    /// default; any chain works whose metadata has pallet-balances).
    #[arg(long, default_value = "//Alice")]
    faucet: String,
    /// A transaction not finalized this many seconds after the last progress is dropped.
    #[arg(long, default_value_t = 60)]
    settle_secs: u64,
    /// Results folder (JSON, CSV, SVG plots).
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// Label of this run in the results folder.
    #[arg(long, default_value = "replay")]
    label: String,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Modes {
    Leaderless,
    Leader,
    Both,
}

/// The networks `network` can start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum NetModes {
    Leaderless,
    Leader,
    Both,
    AuraGrandpa,
    All,
}

/// The label of the reference chain's runs.
const REFERENCE: &str = "aura-grandpa";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Uniform,
    Trace,
    Crash,
    FarClient,
}

/// `binary` in the release folder of the target directory the bench uses by default.
fn default_binary(binary: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/bsmr-target")
        });
    target.join("release").join(binary)
}

const SHIPPED_TRACE: &str = "traces/ethereum-mainnet-2015-11.csv";

/// The shipped trace: in the checkout this binary was built from or, when that checkout is gone
/// or elsewhere (a binary copied, or a target folder shared by two clones), in the current
/// directory or one of its parents.
fn default_trace() -> Result<PathBuf, String> {
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(SHIPPED_TRACE);
    let mut tried = vec![built_from.clone()];
    if built_from.is_file() {
        return Ok(built_from);
    }
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            let candidate = dir.join(SHIPPED_TRACE);
            if candidate.is_file() {
                return Ok(candidate);
            }
            tried.push(candidate);
        }
    }
    Err(format!(
        "no --trace given and the shipped trace was not found; looked at: {}",
        tried
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

fn main() {
    let cli = Cli::parse();
    if let Mode::Network { net, .. } = &cli.mode {
        if net.needs_wan() && !wan::is_root() {
            // Network namespaces need CAP_SYS_ADMIN: get it in a user namespace of our own.
            eprintln!("bsmr-bench: {}", wan::enter_user_namespace());
            std::process::exit(1);
        }
    }
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let result = match cli.mode {
        Mode::Replay { endpoints, load } => rt
            .block_on(replay_mode(&endpoints, &load, false))
            .map(|s| vec![s]),
        Mode::Network { net, load } => {
            // Before any node starts: the signature figures price checks at this machine's
            // idle speed.
            let _ = sim_scale::sr25519_costs();
            rt.block_on(network_mode(&net, &load))
        }
        Mode::Sim {
            validators,
            seed,
            modes,
            load_secs,
        } => sim_mode(validators, seed, modes, load_secs).map(|_| vec![]),
        Mode::Scale(a) => scale_mode(&a).map(|_| vec![]),
    };
    match result {
        Ok(_) => {}
        Err(e) => {
            eprintln!("bsmr-bench: {e}");
            std::process::exit(1);
        }
    }
}

fn load_trace(load: &LoadArgs, uniform: bool) -> Result<trace::Trace, String> {
    let mut t = if uniform {
        trace::uniform(
            if load.limit == 0 { 2000 } else { load.limit },
            load.accounts,
        )
    } else {
        let path = match &load.trace {
            Some(p) => p.clone(),
            None => default_trace()?,
        };
        trace::load(&path).map_err(|e| e.to_string())?
    };
    if !t.skipped.is_empty() {
        eprintln!(
            "trace: {} rows skipped (contract creations, no receiver)",
            t.skipped.len()
        );
    }
    if load.limit > 0 {
        t.txs.truncate(load.limit);
    }
    Ok(t)
}

async fn replay_mode(
    endpoints: &[String],
    load: &LoadArgs,
    uniform: bool,
) -> Result<report::Summary, String> {
    if endpoints.is_empty() {
        return Err("no --endpoints".into());
    }
    let t = load_trace(load, uniform)?;
    let plan = prepare(endpoints, load, &t).await?;
    let (summary, _) = measure(endpoints, endpoints, load, &load.label, plan, None, None).await?;
    Ok(summary)
}

/// Replay `plan` against `endpoints` (named `names` in the per-endpoint figures), write the
/// results, print the summary; `on_half` runs once half of the plan is submitted.
async fn measure(
    endpoints: &[String],
    names: &[String],
    load: &LoadArgs,
    label: &str,
    plan: Vec<replay::Planned>,
    on_half: Option<Box<dyn FnOnce() + Send>>,
    cpu_seconds: Option<&(dyn Fn() -> f64 + Sync)>,
) -> Result<(report::Summary, replay::Outcome), String> {
    let runtime = chain::spec_name(&replay::connect(&endpoints[0]).await?).await?;
    let cpu_before = cpu_seconds.map(|f| f());
    let sigs_before = engine_counts(endpoints).await;
    let total = plan.len();
    let bar = if load.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(total as u64)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:40}] {pos}/{len} finalized ({msg})",
        )
        .expect("a valid template; qed")
        .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    let outcome = replay::run(
        endpoints,
        plan,
        Duration::from_secs(load.settle_secs),
        |sub, fin| {
            bar.set_position(fin as u64);
            bar.set_message(format!("{sub} submitted"));
        },
        on_half,
    )
    .await?;
    bar.finish_and_clear();
    let mut summary = report::summarize(label, &runtime, &outcome, names);
    if let (Some(f), Some(before)) = (cpu_seconds, cpu_before) {
        summary.cpu_ms_per_tx = Some((f() - before) * 1000.0 / summary.finalized.max(1) as f64);
    }
    if let (Some(c0), Some(c1)) = (sigs_before, engine_counts(endpoints).await) {
        let ((v0, m0), (v1, m1)) = ((c0[0], c0[1]), (c1[0], c1[1]));
        let per = |d: u64| d as f64 / summary.finalized.max(1) as f64;
        // A node restarted during the run starts its counters again: never below zero.
        let delta = |k: usize| per(c1[k].saturating_sub(c0[k]));
        summary.block_building = Some(report::BlockBuildingFigures {
            offered_per_tx: delta(2),
            refused_per_tx: delta(3),
            blocks_from_sync: c1[4].saturating_sub(c0[4]),
            refused_stale_per_tx: delta(5),
            refused_future_per_tx: delta(6),
            proposed_own_per_tx: delta(7),
            proposed_others_per_tx: delta(8),
        });
        let (sign_us, verify_us) = sim_scale::sr25519_costs();
        // A node restarted during the run starts its counters again: never below zero.
        let (verified_per_tx, made_per_tx) =
            (per(v1.saturating_sub(v0)), per(m1.saturating_sub(m0)));
        summary.signatures = Some(report::SignatureFigures {
            verified_per_tx,
            made_per_tx,
            verify_us,
            sign_us,
            cpu_ms_per_tx: (verified_per_tx * verify_us as f64 + made_per_tx * sign_us as f64)
                / 1000.0,
        });
    }
    report::write(&load.out, &summary, &outcome)?;
    print_summary(&summary);
    Ok((summary, outcome))
}

/// Engine counters summed over the validators behind `endpoints` (`bsmr_status`, published
/// every 200 ms): consensus signatures checked and made, transactions offered to the runtime in
/// block building and offers refused, blocks that came by sync first. None when a node has no
/// bsmr engine.
async fn engine_counts(endpoints: &[String]) -> Option<[u64; 9]> {
    const KEYS: [&str; 9] = [
        "signaturesVerified",
        "signaturesMade",
        "blockTxsOffered",
        "blockTxsRefused",
        "blocksFromSync",
        "blockTxsRefusedStale",
        "blockTxsRefusedFuture",
        "txsProposedOwn",
        "txsProposedOthers",
    ];
    let mut sum = [0u64; 9];
    for e in endpoints {
        let client = replay::connect(e).await.ok()?;
        let s: serde_json::Value = client.request("bsmr_status", rpc_params![]).await.ok()?;
        // The signature counts are there in every bsmr node; the block-building ones since
        // 2026-12-05 (an older node reports them as 0).
        sum[0] += s[KEYS[0]].as_u64()?;
        sum[1] += s[KEYS[1]].as_u64()?;
        for (k, key) in KEYS.iter().enumerate().skip(2) {
            sum[k] += s[key].as_u64().unwrap_or(0);
        }
    }
    Some(sum)
}

fn print_summary(s: &report::Summary) {
    println!(
        "{:<28} submitted {:>6}  finalized {:>6}  dropped {:>5}  finality p50/p95/p99 {:>6}/{:>6}/{:>6} ms  sustained {:>7.1} tx/s",
        s.label,
        s.submitted,
        s.finalized,
        s.dropped.values().sum::<usize>(),
        s.finality_ms[0],
        s.finality_ms[1],
        s.finality_ms[2],
        s.sustained_tps
    );
    if let Some(c) = s.cpu_ms_per_tx {
        println!("    validators' CPU per finalized transaction: {c:.2} ms (all four together)");
    }
    if let Some(g) = &s.signatures {
        println!(
            "    consensus signatures per finalized transaction: {:.2} checked, {:.2} made (all \
             validators); at {} µs per check and {} µs per signature here: {:.3} ms of CPU",
            g.verified_per_tx, g.made_per_tx, g.verify_us, g.sign_us, g.cpu_ms_per_tx
        );
    }
    if let Some(b) = &s.block_building {
        println!(
            "    block building per finalized transaction: {:.2} runtime offers, {:.2} of them \
             refused ({:.2} for a used nonce, {:.2} for a nonce ahead; all validators); {} \
             blocks came by sync before their validator built them",
            b.offered_per_tx,
            b.refused_per_tx,
            b.refused_stale_per_tx,
            b.refused_future_per_tx,
            b.blocks_from_sync
        );
        println!(
            "    proposed per finalized transaction: {:.2} by the validator a client submitted \
             it to, {:.2} by another (taken over or carried)",
            b.proposed_own_per_tx, b.proposed_others_per_tx
        );
    }
    for (why, n) in &s.dropped {
        println!("    dropped {n}: {why}");
    }
    if let Some(f) = &s.fault {
        println!(
            "    fault at {} ms: worst finality after it {} ms; {}",
            f.at_ms,
            f.spike_ms,
            match f.recovery_ms {
                Some(r) => format!(
                    "recovered {r} ms after it (from then on, every second's submissions have a median finality within 2x the {} ms before)",
                    f.before_p50_ms
                ),
                None => "not recovered by the end of the run".to_string(),
            }
        );
    }
    if s.per_endpoint.len() > 1 || s.per_endpoint.iter().any(|e| e.endpoint.contains('@')) {
        for e in &s.per_endpoint {
            println!(
                "    submitted to {:<12} finalized {:>6}  finality p50/p95/p99 {:>6}/{:>6}/{:>6} ms",
                e.endpoint, e.finalized, e.finality_ms[0], e.finality_ms[1], e.finality_ms[2]
            );
        }
    }
}
