//! `bsmr-bench sim`: the same comparison in the deterministic simulator.

use super::*;

pub(crate) fn sim_mode(
    validators: usize,
    seed: u64,
    modes: Modes,
    load_secs: u64,
) -> Result<(), String> {
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
        let mut cfg = bsmr_sim::SimConfig::reliable(validators, seed);
        // Good conditions: the figures are about latency, not recovery.
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
