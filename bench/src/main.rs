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
mod measure;
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
use std::path::PathBuf;
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
    /// given to the reference chain's nodes. `--node-arg=--prometheus-port=N` turns each node's
    /// Prometheus endpoint on (off otherwise).
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
            .block_on(measure::replay_mode(&endpoints, &load, false))
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
