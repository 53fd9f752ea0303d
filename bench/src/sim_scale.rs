//! `bsmr-bench scale`: sustained throughput against the number of validators, leaderless and the
//! leader baseline, in the simulator with every node's CPU and uplink modelled
//! (`bsmr_sim::sim::Resources`): how the two designs scale past this machine (issue 20).

use super::*;
use bsmr_consensus_core::{Signer, Verifier};
use bsmr_sim::crypto::{Sr25519Signer, Sr25519Verifier};
use bsmr_sim::sim::Resources;
use std::time::Instant;

/// The scale sweep's settings.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct ScaleArgs {
    /// Validator counts to run (comma-separated; each within 4..=100).
    #[arg(long, value_delimiter = ',', default_value = "4,10,31")]
    validators: Vec<usize>,
    /// Which consensus modes to run at each count.
    #[arg(long, value_enum, default_value_t = Modes::Both)]
    modes: Modes,
    /// Transactions per second the clients offer, over all validators (each validator's
    /// clients offer their share; the leader baseline's validators forward it to the primary).
    #[arg(long, default_value_t = 4_000)]
    offered: u64,
    /// Seconds of client load (virtual time); throughput is measured over its last 80%, between
    /// the first and the last of validator 0's blocks in that span. At n = 31 blocks come
    /// seconds apart under overload, so a shorter load measures one or two blocks.
    #[arg(long, default_value_t = 12)]
    load_secs: u64,
    /// How often each validator's clients hand it a batch (ms).
    #[arg(long, default_value_t = 500)]
    batch_interval_ms: u64,
    /// Accounts the transfers draw from.
    #[arg(long, default_value_t = 1_000)]
    accounts: u32,
    /// CPU µs per signature made (default: measured now on this machine, sr25519).
    #[arg(long)]
    sign_us: Option<u64>,
    /// CPU µs per signature checked (default: measured now on this machine, sr25519).
    #[arg(long)]
    verify_us: Option<u64>,
    /// CPU µs per transaction executed (default: the check of its sr25519 signature, measured
    /// now, plus 40 µs for the balances transfer itself: the order of polkadot-sdk's benchmarked
    /// `transfer_keep_alive` weight on reference hardware).
    #[arg(long)]
    exec_us: Option<u64>,
    /// CPU µs per message, timer or client batch handled.
    #[arg(long, default_value_t = 5)]
    event_us: u64,
    /// Each validator's uplink in Mbit/s (0: unlimited).
    #[arg(long, default_value_t = 100)]
    uplink_mbit: u64,
    /// The core's pacing target in ms, as the node's --pacing-target-ms (0: own batches never
    /// paced).
    #[arg(long, default_value_t = bsmr_consensus_core::discovery::pacing::DEFAULT_TARGET_MS)]
    pacing_target_ms: u64,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where the JSON rows and the SVG curve go.
    #[arg(long, default_value = "results/scale")]
    out: PathBuf,
}

/// Transactions in each validator's client batch so that `n` validators, each handed a batch
/// every `interval_ms`, are offered `offered` a second in all (at least one per batch).
fn txs_per_batch(offered: u64, n: usize, interval_ms: u64) -> usize {
    (offered.saturating_mul(interval_ms) / 1000 / n as u64).max(1) as usize
}

/// Time sr25519 signing and checking on this machine: (sign µs, verify µs), each the mean of
/// 2,000 operations on distinct messages.
/// sr25519 sign and verify times on this machine (µs each), measured once, on first use: the
/// network modes take it before they start any node, so that busy nodes do not inflate it.
pub fn sr25519_costs() -> (u64, u64) {
    static COSTS: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();
    *COSTS.get_or_init(calibrate)
}

/// sr25519 sign and verify times on this machine (µs each, mean of 2,000).
fn calibrate() -> (u64, u64) {
    const N: u64 = 2_000;
    let key = Sr25519Signer::for_validator(1);
    let digests: Vec<[u8; 32]> = (0..N)
        .map(|k| {
            let mut d = [0u8; 32];
            d[..8].copy_from_slice(&k.to_le_bytes());
            d
        })
        .collect();
    let t = Instant::now();
    let sigs: Vec<_> = digests.iter().map(|d| key.sign(d)).collect();
    let sign_us = t.elapsed().as_micros() as u64 / N;
    let verifier = Sr25519Verifier::default();
    let public = key.public();
    let t = Instant::now();
    let ok = digests
        .iter()
        .zip(&sigs)
        .filter(|(d, s)| verifier.verify(&public, d, s))
        .count();
    let verify_us = t.elapsed().as_micros() as u64 / N;
    assert_eq!(ok as u64, N, "every calibration signature checks");
    (sign_us.max(1), verify_us.max(1))
}

/// One point of the sweep.
struct Point {
    mode: &'static str,
    n: usize,
    tps: f64,
    p50_ms: u64,
    busiest_cpu: f64,
    busiest_uplink: f64,
    uplink_dropped: u64,
    backlog: bool,
}

pub(crate) fn scale_mode(a: &ScaleArgs) -> Result<(), String> {
    if let Some(n) = a.validators.iter().find(|n| !(4..=100).contains(*n)) {
        return Err(format!("--validators: {n} is not within 4..=100"));
    }
    if a.load_secs == 0 || a.load_secs > 60 || a.batch_interval_ms == 0 || a.offered == 0 {
        return Err(
            "--load-secs must be within 1..=60, --batch-interval-ms and --offered above 0".into(),
        );
    }
    let (sign_m, verify_m) = sr25519_costs();
    let sign_us = a.sign_us.unwrap_or(sign_m);
    let verify_us = a.verify_us.unwrap_or(verify_m);
    let res = Resources {
        sign_us,
        verify_us,
        exec_us: a.exec_us.unwrap_or(verify_m + 40),
        event_us: a.event_us,
        uplink_bytes_per_s: a.uplink_mbit * 1_000_000 / 8,
    };
    eprintln!("measured here: sr25519 sign {sign_m} µs, verify {verify_m} µs; model: {res:?}");
    let modes: Vec<bool> = match a.modes {
        Modes::Leaderless => vec![false],
        Modes::Leader => vec![true],
        Modes::Both => vec![false, true],
    };
    let mut points = vec![];
    for &n in &a.validators {
        for &leader_based in &modes {
            let mode = if leader_based { "leader" } else { "leaderless" };
            let mut cfg = bsmr_sim::SimConfig::reliable(n, a.seed);
            cfg.hot = 0.0;
            cfg.global = 0.0;
            cfg.accounts = a.accounts;
            cfg.batch_interval_ms = a.batch_interval_ms;
            cfg.txs_per_batch = txs_per_batch(a.offered, n, a.batch_interval_ms);
            cfg.load_ms = a.load_secs * 1000;
            cfg.end_ms = cfg.load_ms + 10_000;
            cfg.max_events = 200_000_000;
            cfg.leader_based = leader_based;
            // The engine's batch limit (a primary cuts its pool into batches of this many).
            cfg.max_batch_txs = 512;
            cfg.pacing_target_ms = a.pacing_target_ms;
            cfg.resources = Some(res);
            let started = Instant::now();
            let r = bsmr_sim::run(cfg.clone());
            let safety: Vec<&String> = r
                .violations
                .iter()
                .filter(|v| !v.starts_with("liveness"))
                .collect();
            if !safety.is_empty() {
                return Err(format!(
                    "{mode} at n = {n}: invariant violations: {safety:?}"
                ));
            }
            let secs = r.virtual_ms.max(1) as f64 / 1000.0;
            let busiest_cpu = r.cpu_used_us.iter().copied().max().unwrap_or(0) as f64 / 1e6 / secs;
            let busiest_uplink = match res.uplink_bytes_per_s {
                0 => 0.0,
                bw => r.bytes_sent.iter().copied().max().unwrap_or(0) as f64 / secs / bw as f64,
            };
            let p = Point {
                mode,
                n,
                tps: r.sustained_tps(cfg.load_ms / 5, cfg.load_ms),
                p50_ms: Report::pct(
                    &r.client_latency_ms
                        .values()
                        .flatten()
                        .copied()
                        .collect::<Vec<_>>(),
                    0.5,
                ),
                busiest_cpu,
                busiest_uplink,
                uplink_dropped: r.uplink_dropped.iter().sum(),
                backlog: !r.violations.is_empty(),
            };
            eprintln!(
                "n {n:>3} {mode:<10} sustained {:>8.0} tx/s  p50 {:>6} ms  busiest CPU {:>4.0}%  busiest uplink {:>4.0}% ({} dropped at full queues){}  ({:.0} s here)",
                p.tps,
                p.p50_ms,
                100.0 * p.busiest_cpu,
                100.0 * p.busiest_uplink,
                p.uplink_dropped,
                if p.backlog { "  backlog left at the end" } else { "" },
                started.elapsed().as_secs_f64()
            );
            points.push(p);
        }
    }
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let rows: Vec<serde_json::Value> = points
        .iter()
        .map(|p| {
            serde_json::json!({
                "mode": p.mode, "validators": p.n, "sustained_tps": p.tps, "p50_ms": p.p50_ms,
                "busiest_cpu": p.busiest_cpu, "busiest_uplink": p.busiest_uplink,
                "uplink_dropped": p.uplink_dropped,
                "backlog_at_end": p.backlog, "offered_tps": a.offered,
                "model": { "sign_us": res.sign_us, "verify_us": res.verify_us,
                    "exec_us": res.exec_us, "event_us": res.event_us,
                    "uplink_bytes_per_s": res.uplink_bytes_per_s },
            })
        })
        .collect();
    let json = a.out.join("scale.json");
    std::fs::write(&json, serde_json::Value::Array(rows).to_string())
        .map_err(|e| format!("{}: {e}", json.display()))?;
    let series: Vec<(String, Vec<(f64, f64)>)> = ["leaderless", "leader"]
        .iter()
        .map(|m| {
            (
                m.to_string(),
                points
                    .iter()
                    .filter(|p| p.mode == *m)
                    .map(|p| (p.n as f64, p.tps))
                    .collect::<Vec<_>>(),
            )
        })
        .filter(|(_, c)| !c.is_empty())
        .collect();
    let x_max = a.validators.iter().copied().max().unwrap_or(4) as f64 * 1.05;
    let y_max = points.iter().map(|p| p.tps).fold(1.0, f64::max) * 1.1;
    let svg = a.out.join("scale.svg");
    report::draw_lines(
        &svg,
        "Sustained throughput against validators (simulated CPU and uplink)",
        ("validators", "tx/s"),
        (x_max, y_max),
        series,
    )?;
    eprintln!("wrote {} and {}", json.display(), svg.display());
    Ok(())
}

use bsmr_sim::sim::Report;

#[cfg(test)]
mod tests {
    use super::txs_per_batch;

    #[test]
    fn the_offered_load_holds_for_any_batch_interval() {
        // 4,000 tx/s over 100 validators is 40 a second each: 20 per batch every 500 ms, 160
        // every 4 s; an interval that does not divide a second still offers the whole load.
        assert_eq!(txs_per_batch(4_000, 100, 500), 20);
        assert_eq!(txs_per_batch(4_000, 100, 4_000), 160);
        assert_eq!(txs_per_batch(16_000, 31, 300), 154);
        assert_eq!(txs_per_batch(10, 100, 100), 1);
    }
}
