//! One measured run: the trace loaded, the plan replayed against running nodes, the figures
//! (finality, throughput, validators' CPU, engine counters per finalized transaction) written
//! and printed.

use crate::prepare::prepare;
use crate::{chain, replay, report, sim_scale, trace, LoadArgs};
use jsonrpsee::{core::client::ClientT, rpc_params};
use std::path::{Path, PathBuf};
use std::time::Duration;

const SHIPPED_TRACE: &str = "traces/ethereum-mainnet-2015-11.csv";

/// The shipped trace: in the checkout this binary was built from or, when that checkout is gone
/// or elsewhere (a binary copied, or a target folder shared by two clones), in the current
/// directory or one of its parents.
pub(crate) fn default_trace() -> Result<PathBuf, String> {
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

pub(crate) fn load_trace(load: &LoadArgs, uniform: bool) -> Result<trace::Trace, String> {
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

pub(crate) async fn replay_mode(
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
pub(crate) async fn measure(
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
            proposed_carried_per_tx: delta(9),
            covered_per_tx: delta(11),
            blocks_executed_twice: c1[10].saturating_sub(c0[10]),
        });
        summary.pool_imports = Some(report::PoolImportFigures {
            from_peers_per_tx: delta(12),
            adopted_per_tx: delta(13),
            gossiped_at_once_per_tx: delta(14),
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
    report::print(&summary);
    Ok((summary, outcome))
}

/// Engine counters summed over the validators behind `endpoints` (`bsmr_status`, published
/// every 200 ms): consensus signatures checked and made, transactions offered to the runtime in
/// block building and offers refused, blocks that came by sync first. None when a node has no
/// bsmr engine.
async fn engine_counts(endpoints: &[String]) -> Option<[u64; 15]> {
    const KEYS: [&str; 15] = [
        "signaturesVerified",
        "signaturesMade",
        "blockTxsOffered",
        "blockTxsRefused",
        "blocksFromSync",
        "blockTxsRefusedStale",
        "blockTxsRefusedFuture",
        "txsProposedOwn",
        "txsProposedOthers",
        "txsProposedCarried",
        "blocksExecutedTwice",
        "txsCovered",
        "txsFromPeers",
        "txsAdopted",
        "clientTxsGossiped",
    ];
    let mut sum = [0u64; 15];
    for e in endpoints {
        let client = replay::connect(e).await.ok()?;
        let s: serde_json::Value = client.request("bsmr_status", rpc_params![]).await.ok()?;
        // The signature counts are there in every bsmr node; the block-building and proposal
        // ones only in newer nodes (an older node reports them as 0).
        sum[0] += s[KEYS[0]].as_u64()?;
        sum[1] += s[KEYS[1]].as_u64()?;
        for (k, key) in KEYS.iter().enumerate().skip(2) {
            sum[k] += s[key].as_u64().unwrap_or(0);
        }
    }
    Some(sum)
}
