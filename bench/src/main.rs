//! `bsmr-bench`: replay real transaction traces against bsmr, a leader-based baseline inside the
//! same engine, and a plain Substrate reference chain (Aura + GRANDPA, `bench/aura-grandpa/`).
//!
//! Modes (see `bsmr-bench <mode> --help`):
//! - `replay`: submit a trace to running nodes and measure every transaction end to end;
//! - `network`: start a local 4-validator network per consensus mode, replay, tear down, and
//!   report the modes side by side (scenarios: uniform, trace, crash, far-client);
//! - `sim`: protocol-only figures from the deterministic simulator at up to 100 validators.

mod accounts;
mod chain;
mod network;
mod replay;
mod report;
mod trace;
mod wan;

use clap::{Parser, Subcommand, ValueEnum};
use jsonrpsee::{core::client::ClientT, rpc_params};
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
}

impl NetworkArgs {
    /// Does this run emulate the WAN (asked for, or implied by the far-client scenario)?
    fn needs_wan(&self) -> bool {
        self.wan || self.scenario == Scenario::FarClient
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
        Mode::Network { net, load } => rt.block_on(network_mode(&net, &load)),
        Mode::Sim {
            validators,
            seed,
            modes,
            load_secs,
        } => sim_mode(validators, seed, modes, load_secs).map(|_| vec![]),
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

/// Fund the bench accounts the plan uses from //Alice, then sign the plan.
async fn prepare(
    endpoints: &[String],
    load: &LoadArgs,
    t: &trace::Trace,
) -> Result<Vec<replay::Planned>, String> {
    let rate_ok = load.rate.is_finite() && load.rate > 0.0;
    if !rate_ok && load.trace_speedup.is_none() {
        return Err("--rate must be positive".into());
    }
    let client = replay::connect(&endpoints[0]).await?;
    let chain = chain::Chain::fetch(&client).await?;
    let used: std::collections::BTreeSet<usize> = t
        .txs
        .iter()
        .flat_map(|x| {
            [
                accounts::map_address(&x.from, load.accounts),
                accounts::map_address(&x.to, load.accounts),
            ]
        })
        .collect();
    // Funding: one transfer from Alice to each used account (all to one endpoint, in nonce order).
    let alice = <sp_core::sr25519::Pair as sp_core::Pair>::from_string(&load.faucet, None)
        .map_err(|e| format!("--faucet {}: not a secret URI ({e:?})", load.faucet))?;
    let alice_id: AccountId32 = accounts::account_of(&alice);
    let mut nonce: u32 = client
        .request("system_accountNextIndex", rpc_params![alice_id.to_string()])
        .await
        .map_err(|e| e.to_string())?;
    let funding: Vec<replay::Planned> = used
        .iter()
        .enumerate()
        .map(|(k, i)| {
            let xt = chain.transfer(
                &alice,
                &accounts::account_of(&accounts::bench_pair(*i)),
                1_000_000_000_000_000,
                nonce,
            )?;
            nonce += 1;
            Ok(replay::Planned {
                xt,
                sender: 0,
                at_ms: k as u64 * 2,
            })
        })
        .collect::<Result<_, String>>()?;
    eprintln!(
        "funding {} bench accounts from {} ...",
        funding.len(),
        load.faucet
    );
    let outcome = replay::run(
        &endpoints[..1],
        funding,
        Duration::from_secs(load.settle_secs),
        |_, _| {},
        None,
    )
    .await?;
    let failed = outcome
        .records
        .iter()
        .filter(|r| r.dropped.is_some())
        .count();
    if failed > 0 {
        return Err(format!(
            "{failed} funding transfers were not finalized: {:?}",
            outcome.records.iter().find_map(|r| r.dropped.clone())
        ));
    }
    // Sign the plan with each account's next nonce.
    let mut nonces: BTreeMap<usize, u32> = BTreeMap::new();
    for i in &used {
        let who = accounts::account_of(&accounts::bench_pair(*i));
        let n: u32 = client
            .request("system_accountNextIndex", rpc_params![who.to_string()])
            .await
            .map_err(|e| e.to_string())?;
        nonces.insert(*i, n);
    }
    let pairs: BTreeMap<usize, sp_core::sr25519::Pair> = used
        .iter()
        .map(|i| (*i, accounts::bench_pair(*i)))
        .collect();
    let plan = t
        .txs
        .iter()
        .enumerate()
        .map(|(k, x)| {
            let from = accounts::map_address(&x.from, load.accounts);
            let to = accounts::map_address(&x.to, load.accounts);
            let n = nonces
                .get_mut(&from)
                .expect("every used account has a nonce; qed");
            let amount = 1_000_000 + x.amount % 1_000_000_000;
            let xt = chain.transfer(
                &pairs[&from],
                &accounts::account_of(&pairs[&to]),
                amount,
                *n,
            )?;
            *n += 1;
            let at_ms = match load.trace_speedup {
                Some(s) => (x.at_s as f64 * 1000.0 / s) as u64,
                None => (k as f64 * 1000.0 / load.rate) as u64,
            };
            Ok(replay::Planned {
                xt,
                sender: from,
                at_ms,
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(plan)
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
    let (summary, _) = measure(endpoints, endpoints, load, &load.label, plan, None).await?;
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
) -> Result<(report::Summary, replay::Outcome), String> {
    let runtime = chain::spec_name(&replay::connect(&endpoints[0]).await?).await?;
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
    let summary = report::summarize(label, &runtime, &outcome, names);
    report::write(&load.out, &summary, &outcome)?;
    print_summary(&summary);
    Ok((summary, outcome))
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

async fn network_mode(opts: &NetworkArgs, load: &LoadArgs) -> Result<Vec<report::Summary>, String> {
    let NetworkArgs {
        node,
        modes,
        reference_node,
        scenario,
        block_time_ms,
        node_args,
        logs,
        wan: _,
    } = opts;
    let wan = opts.needs_wan();
    let (modes, scenario, block_time_ms) = (*modes, *scenario, *block_time_ms);
    let list: Vec<&str> = match modes {
        NetModes::Leaderless => vec!["leaderless"],
        NetModes::Leader => vec!["leader"],
        NetModes::Both => vec!["leaderless", "leader"],
        NetModes::AuraGrandpa => vec![REFERENCE],
        NetModes::All => vec!["leaderless", "leader", REFERENCE],
    };
    if list.iter().any(|m| *m != REFERENCE) && !node.exists() {
        return Err(format!(
            "bsmr-node not found at {} (build it with `make build`, or pass --node)",
            node.display()
        ));
    }
    if list.contains(&REFERENCE) && !reference_node.exists() {
        return Err(format!(
            "aura-grandpa-node not found at {} (build it with `cargo build --release -p \
             aura-grandpa-node`, or pass --reference-node)",
            reference_node.display()
        ));
    }
    let t = load_trace(load, scenario == Scenario::Uniform)?;
    let scen = format!("{scenario:?}").to_lowercase();
    let mut results = vec![];
    for &mode in &list {
        eprintln!(
            "starting a 4-validator network{}, consensus mode {mode} ...",
            if wan { " (WAN emulation)" } else { "" }
        );
        let reference = mode == REFERENCE;
        let args: Vec<String> = if reference {
            vec![]
        } else {
            let mut args = vec![
                "--consensus-mode".to_string(),
                mode.to_string(),
                "--block-time-ms".to_string(),
                block_time_ms.to_string(),
            ];
            args.extend(node_args.iter().cloned());
            args
        };
        let binary = if reference { reference_node } else { node };
        let log_prefix = format!("{}-{mode}", load.label);
        let net = network::LocalNet::start(binary, mode, &args, logs.as_deref(), &log_prefix, wan)?;
        let all = net.endpoints();
        wait_connected(&all, Duration::from_secs(120)).await?;
        wait_finalized(&all, 3, Duration::from_secs(120)).await?;
        // The baseline's primary: the first validator of the set, as its node reports it. The
        // reference chain has no fixed leader (Aura rotates authors by slot); its runs single
        // out the same validator, so that every mode loses (or is far from) the same one.
        let primary = if !reference && matches!(scenario, Scenario::Crash | Scenario::FarClient) {
            primary_index(&all).await?
        } else {
            network::first_of_set()
        };
        // Crash: the victim is the primary; the load goes to the other three, and the victim is
        // killed halfway through.
        let victim = (scenario == Scenario::Crash).then_some(primary);
        // Far client: the validator whose region is farthest from the baseline's leader.
        let far = if scenario == Scenario::FarClient {
            let region = |i: usize| net.validators[i].region.unwrap_or(0);
            let far = (0..all.len())
                .max_by_key(|&i| wan::REGION_MS[region(primary)][region(i)])
                .expect("four validators; qed");
            eprintln!(
                "far client: next to {}, {} ms one way from the baseline's leader {}",
                net.label(far),
                wan::REGION_MS[region(primary)][region(far)],
                net.label(primary)
            );
            Some(far)
        } else {
            None
        };
        let chosen: Vec<usize> = (0..all.len())
            .filter(|i| Some(*i) != victim && far.is_none_or(|f| f == *i))
            .collect();
        let endpoints: Vec<String> = chosen.iter().map(|&i| all[i].clone()).collect();
        let names: Vec<String> = chosen.iter().map(|&i| net.label(i)).collect();
        let plan = prepare(&endpoints, load, &t).await?;
        let net = std::sync::Arc::new(std::sync::Mutex::new(net));
        let killer: Option<Box<dyn FnOnce() + Send>> = if scenario == Scenario::Crash {
            let net = net.clone();
            let victim = victim.expect("set for the crash scenario; qed");
            Some(Box::new(move || {
                let mut net = net.lock().expect("no panics while held; qed");
                eprintln!(
                    "killing {} (the first validator of the set, the baseline's leader) ...",
                    net.validators[victim].name
                );
                net.kill(victim);
            }))
        } else {
            None
        };
        let label = format!("{}-{scen}-{mode}", load.label);
        let (summary, outcome) = measure(&endpoints, &names, load, &label, plan, killer).await?;
        results.push((summary, outcome));
        drop(net);
    }
    if results.len() >= 2 {
        let summaries: Vec<&report::Summary> = results.iter().map(|(s, _)| s).collect();
        print_ratios(&list, &summaries, block_time_ms);
        let runs: Vec<(String, &replay::Outcome)> =
            results.iter().map(|(s, o)| (s.label.clone(), o)).collect();
        report::plot_cdf(
            &load
                .out
                .join(format!("{}-{scen}-compare-latency-cdf.svg", load.label)),
            &runs,
        )?;
        report::plot_throughput(
            &load
                .out
                .join(format!("{}-{scen}-compare-throughput.svg", load.label)),
            &runs,
        )?;
        if wan {
            report::plot_per_endpoint(
                &load
                    .out
                    .join(format!("{}-{scen}-compare-per-region.svg", load.label)),
                &summaries,
            )?;
        }
        let json =
            serde_json::to_string_pretty(&results.iter().map(|(s, _)| s).collect::<Vec<_>>())
                .map_err(|e| e.to_string())?;
        std::fs::write(
            load.out.join(format!("{}-{scen}-compare.json", load.label)),
            json,
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(results.into_iter().map(|(s, _)| s).collect())
}

/// Each mode's finality against the first mode's (leaderless), as ratios, with the block times
/// when the reference chain ran.
fn print_ratios(list: &[&str], summaries: &[&report::Summary], block_time_ms: u64) {
    let ratio = |x: u64, y: u64| {
        if x == 0 {
            f64::NAN
        } else {
            y as f64 / x as f64
        }
    };
    let (first, first_mode) = (summaries[0], list[0]);
    for (other, mode) in summaries.iter().zip(list).skip(1) {
        // The reference chain finalizes in bursts of 6 s blocks: its first-to-last
        // finalization span, hence its sustained TPS, says little at bench lengths.
        let tps = if *mode == REFERENCE {
            "sustained TPS not compared (finalized in bursts of 6 s blocks)".to_string()
        } else {
            format!(
                "sustained TPS {first_mode}/{mode} x{:.2}",
                if other.sustained_tps > 0.0 {
                    first.sustained_tps / other.sustained_tps
                } else {
                    f64::NAN
                }
            )
        };
        println!(
            "{mode} / {first_mode}: finality p50 x{:.2}, p99 x{:.2}; {tps}",
            ratio(first.finality_ms[0], other.finality_ms[0]),
            ratio(first.finality_ms[2], other.finality_ms[2]),
        );
    }
    if list.contains(&REFERENCE) {
        println!(
            "block times: bsmr {block_time_ms} ms per validator (leaders take turns); \
             aura-grandpa one block per 6 s slot, GRANDPA votes 2 blocks behind the best \
             block (Substrate's default voting rules)"
        );
    }
}

/// Index of the endpoint whose validator key is the first of the set (the baseline's primary).
async fn primary_index(endpoints: &[String]) -> Result<usize, String> {
    for (i, e) in endpoints.iter().enumerate() {
        let client = replay::connect(e).await?;
        let s: serde_json::Value = client
            .request("bsmr_status", rpc_params![])
            .await
            .map_err(|err| err.to_string())?;
        if s["localValidator"].is_string() && s["localValidator"] == s["validators"][0] {
            return Ok(i);
        }
    }
    Err("no node holds the first validator key".into())
}

/// Wait until every validator has a connection to every other one, seen on all of them at once
/// in three checks in a row, so that a run never starts on a partly connected network (its
/// figures would measure the reconnection back-off).
async fn wait_connected(endpoints: &[String], timeout: Duration) -> Result<(), String> {
    let start = std::time::Instant::now();
    let want = endpoints.len().saturating_sub(1) as u64;
    let mut clients = vec![];
    for e in endpoints {
        clients.push(replay::connect(e).await?);
    }
    let mut streak = 0;
    while streak < 3 {
        let mut short = None;
        for (e, client) in endpoints.iter().zip(&clients) {
            let health: serde_json::Value = client
                .request("system_health", rpc_params![])
                .await
                .map_err(|err| err.to_string())?;
            let peers = health["peers"].as_u64().unwrap_or(0);
            if peers < want {
                short = Some((e, peers));
            }
        }
        match short {
            None => streak += 1,
            Some((e, peers)) => {
                streak = 0;
                if start.elapsed() > timeout {
                    return Err(format!(
                        "{e} has {peers} of {want} peers after {timeout:?}: the network did not connect"
                    ));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

/// Wait until every endpoint has finalized `height` (the network is connected and producing).
async fn wait_finalized(
    endpoints: &[String],
    height: u64,
    timeout: Duration,
) -> Result<(), String> {
    let start = std::time::Instant::now();
    for e in endpoints {
        let client = replay::connect(e).await?;
        loop {
            let head: H256 = client
                .request("chain_getFinalizedHead", rpc_params![])
                .await
                .map_err(|err| err.to_string())?;
            let h: serde_json::Value = client
                .request("chain_getHeader", rpc_params![head])
                .await
                .map_err(|err| err.to_string())?;
            if replay::header_number(&h) >= height {
                break;
            }
            if start.elapsed() > timeout {
                return Err(format!(
                    "{e} did not finalize block #{height} within {timeout:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    Ok(())
}

fn sim_mode(validators: usize, seed: u64, modes: Modes, load_secs: u64) -> Result<(), String> {
    if validators == 0 || validators > 100 {
        return Err("--validators must be within 1..=100".into());
    }
    if load_secs == 0 || load_secs > 600 {
        return Err("--load-secs must be within 1..=600".into());
    }
    let list: Vec<bool> = match modes {
        Modes::Leaderless => vec![false],
        Modes::Leader => vec![true],
        Modes::Both => vec![false, true],
    };
    let mut rows = vec![];
    for leader_based in list {
        let mode = if leader_based { "leader" } else { "leaderless" };
        let mut cfg = bsmr_sim::SimConfig::small(validators, seed);
        // Good conditions: the figures are about latency, not recovery.
        cfg.gst_ms = 0;
        cfg.loss = 0.0;
        cfg.dup = 0.0;
        cfg.partition = false;
        cfg.load_ms = load_secs * 1000;
        cfg.end_ms = cfg.load_ms + 30_000;
        cfg.leader_based = leader_based;
        eprintln!("simulating {validators} validators, {mode} ...");
        let r = bsmr_sim::run(cfg);
        if !r.violations.is_empty() {
            return Err(format!("{mode}: invariant violations: {:?}", r.violations));
        }
        let all: Vec<u64> = r.client_latency_ms.values().flatten().copied().collect();
        let per_region: serde_json::Map<String, serde_json::Value> = r
            .client_latency_ms
            .iter()
            .map(|(region, v)| {
                let [p50, p95, p99] = report::percentiles(v.clone());
                (
                    region.to_string(),
                    serde_json::json!({ "txs": v.len(), "p50_ms": p50, "p95_ms": p95, "p99_ms": p99 }),
                )
            })
            .collect();
        let [p50, p95, p99] = report::percentiles(all.clone());
        eprintln!(
            "{mode:<11} txs {:>6}  client latency p50/p95/p99 {p50:>5}/{p95:>5}/{p99:>5} ms{}",
            all.len(),
            r.primary_region
                .map(|p| format!("  (primary in region {p})"))
                .unwrap_or_default()
        );
        for (region, v) in &r.client_latency_ms {
            let [a, b, c] = report::percentiles(v.clone());
            eprintln!(
                "    region {region}: {:>6} txs  p50/p95/p99 {a:>5}/{b:>5}/{c:>5} ms",
                v.len()
            );
        }
        rows.push(serde_json::json!({
            "mode": mode,
            "validators": validators,
            "seed": seed,
            "decisions": r.decisions,
            "messages": r.messages,
            "txs_submitted": r.txs_submitted,
            "txs_measured": all.len(),
            "client_latency_ms": { "p50": p50, "p95": p95, "p99": p99 },
            "client_latency_by_region_ms": per_region,
            "primary_region": r.primary_region,
            "min_height": r.min_height,
            "max_height": r.max_height,
        }));
    }
    println!("{}", serde_json::Value::Array(rows));
    Ok(())
}
