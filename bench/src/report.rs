//! Figures of a run (latency percentiles, sustained TPS, drops) and the files they go to:
//! `<label>.json` (summary), `<label>.csv` (one row per transaction), and SVG plots (latency
//! CDF, finalized throughput over time).

use crate::replay::{Outcome, TxRecord};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Summary of one run.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Run label (scenario and mode).
    pub label: String,
    /// The chain's runtime (`specName` of its runtime version), e.g. `bsmr`.
    pub runtime: String,
    /// Transactions planned and submitted.
    pub submitted: usize,
    /// Finalized.
    pub finalized: usize,
    /// Dropped, by reason.
    pub dropped: BTreeMap<String, usize>,
    /// Transactions a node refused as busy (RPC error 1016) at least once, and all such
    /// refusals (the replay asks again, for as long as the settle window).
    pub busy_refused: usize,
    /// See `busy_refused`.
    pub busy_refusals: u64,
    /// Submit -> finalized latency percentiles (ms): p50, p95, p99.
    pub finality_ms: [u64; 3],
    /// Submit -> in a block latency percentiles (ms).
    pub inclusion_ms: [u64; 3],
    /// Finalized transactions per second between the first and last finalization.
    pub sustained_tps: f64,
    /// Wall time (ms).
    pub elapsed_ms: u64,
    /// Blocks finalized while the run was watched.
    pub blocks_finalized: usize,
    /// Per submission endpoint (named, e.g. `alice@r2`): finalized count and finality
    /// percentiles as that endpoint's clients saw them.
    pub per_endpoint: Vec<EndpointFigures>,
    /// The injected fault's effect (crash scenario).
    pub fault: Option<FaultFigures>,
    /// CPU milliseconds the validators used per finalized transaction while the load ran and
    /// settled (all validators together, from /proc; runs that start the nodes only).
    pub cpu_ms_per_tx: Option<f64>,
    /// Consensus signatures the validators checked and made per finalized transaction (all
    /// validators together, from `bsmr_status`; bsmr modes only), and what they cost at the
    /// sr25519 timings measured at the bench's start.
    pub signatures: Option<SignatureFigures>,
    /// What building blocks cost per finalized transaction (all validators together).
    pub block_building: Option<BlockBuildingFigures>,
    /// How transactions reached the pools besides their clients (bsmr nodes only).
    pub pool_imports: Option<PoolImportFigures>,
}

/// The consensus share of the sr25519 work (transaction signatures are the runtime's).
#[derive(Clone, Debug, Serialize)]
pub struct SignatureFigures {
    /// Checked per finalized transaction.
    pub verified_per_tx: f64,
    /// Made per finalized transaction.
    pub made_per_tx: f64,
    /// One check on this machine (µs, mean of 2,000).
    pub verify_us: u64,
    /// One signature on this machine (µs, mean of 2,000).
    pub sign_us: u64,
    /// Their CPU per finalized transaction (ms, all validators together).
    pub cpu_ms_per_tx: f64,
}

/// Block building per finalized transaction (all validators together): each runtime offer
/// executes the transaction and checks its signature; the ideal is one per validator.
#[derive(Clone, Debug, Serialize)]
pub struct BlockBuildingFigures {
    /// Offers made to the runtime.
    pub offered_per_tx: f64,
    /// Offers refused (a bad nonce offered again later in the block, or never applied).
    pub refused_per_tx: f64,
    /// Blocks that came by sync before their validator built them (all validators).
    pub blocks_from_sync: u64,
    /// Offers refused for a used nonce (copies of a transaction already applied).
    pub refused_stale_per_tx: f64,
    /// Offers refused for a nonce ahead of the sender's.
    pub refused_future_per_tx: f64,
    /// Transactions put in a batch by the validator they were submitted to.
    pub proposed_own_per_tx: f64,
    /// Transactions put in a batch by another validator (taken over or carried).
    pub proposed_others_per_tx: f64,
    /// Of those, the ones carried in front of a later transaction of their sender.
    pub proposed_carried_per_tx: f64,
    /// Of all those, the ones a validator's core took back out of its queue, unproposed,
    /// because another validator's batch carried them.
    pub covered_per_tx: f64,
    /// Blocks a validator built that were executed a second time, by sync or by the engine
    /// (all validators; a lower bound).
    pub blocks_executed_twice: u64,
}

/// Pool imports per finalized transaction besides the client's (all validators together): each
/// one is a pool validation, a runtime call with a signature check.
#[derive(Clone, Debug, Serialize)]
pub struct PoolImportFigures {
    /// Transactions peers gossiped that a pool imported.
    pub from_peers_per_tx: f64,
    /// Transactions of another validator's batch a pool imported (for a later nonce waiting).
    pub adopted_per_tx: f64,
    /// Client transactions a validator gossiped at once.
    pub gossiped_at_once_per_tx: f64,
}

/// What an injected fault did to latency.
#[derive(Clone, Debug, Serialize)]
pub struct FaultFigures {
    /// When it ran (ms since start).
    pub at_ms: u64,
    /// Median finality of the transactions submitted before it.
    pub before_p50_ms: u64,
    /// Worst finality of a transaction submitted after it.
    pub spike_ms: u64,
    /// From the fault until the start of the first one-second submission window from which every
    /// window's median finality is within twice `before_p50_ms` (none: not by the end of the run).
    pub recovery_ms: Option<u64>,
}

/// Latency spike and recovery time around a fault at `at_ms` (windows by submission time).
pub fn fault_figures(records: &[TxRecord], at_ms: u64) -> FaultFigures {
    let latency = |r: &TxRecord| r.finalized_ms.map(|f| f.saturating_sub(r.submitted_ms));
    let before: Vec<u64> = records
        .iter()
        .filter(|r| r.submitted_ms < at_ms)
        .filter_map(latency)
        .collect();
    let before_p50_ms = percentiles(before)[0];
    let after: Vec<&TxRecord> = records.iter().filter(|r| r.submitted_ms >= at_ms).collect();
    let spike_ms = after.iter().filter_map(|r| latency(r)).max().unwrap_or(0);
    // Per one-second window after the fault: the median finality (a dropped transaction counts
    // as never finalized, i.e. above any bound).
    let mut windows: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for r in &after {
        windows
            .entry((r.submitted_ms - at_ms) / 1000)
            .or_default()
            .push(latency(r).unwrap_or(u64::MAX));
    }
    let healthy = |v: &Vec<u64>| {
        let mut v = v.clone();
        v.sort_unstable();
        v[(v.len() - 1) / 2] <= 2 * before_p50_ms.max(1)
    };
    // The earliest window that starts an all-healthy suffix.
    let mut recovered = None;
    for (w, v) in windows.iter().rev() {
        if !healthy(v) {
            break;
        }
        recovered = Some(*w * 1000);
    }
    FaultFigures {
        at_ms,
        before_p50_ms,
        spike_ms,
        recovery_ms: recovered,
    }
}

/// Figures of the transactions submitted to one endpoint.
#[derive(Clone, Debug, Serialize)]
pub struct EndpointFigures {
    /// Endpoint name.
    pub endpoint: String,
    /// Transactions finalized.
    pub finalized: usize,
    /// Submit -> finalized latency percentiles (ms): p50, p95, p99.
    pub finality_ms: [u64; 3],
}

/// p50, p95 and p99 (nearest rank) of `v`; zeros when empty.
pub fn percentiles(mut v: Vec<u64>) -> [u64; 3] {
    if v.is_empty() {
        return [0; 3];
    }
    v.sort_unstable();
    // Nearest-rank percentile: the smallest value with at least p of the samples at or below it.
    let at = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    [at(0.50), at(0.95), at(0.99)]
}

/// Summarize an outcome; `endpoints` names the submission endpoints by index.
pub fn summarize(label: &str, runtime: &str, o: &Outcome, endpoints: &[String]) -> Summary {
    let fin: Vec<&TxRecord> = o
        .records
        .iter()
        .filter(|r| r.finalized_ms.is_some())
        .collect();
    let mut dropped = BTreeMap::new();
    for r in &o.records {
        if let Some(d) = &r.dropped {
            // Group by the reason's first clause so similar errors count together.
            let key = d.split(':').take(2).collect::<Vec<_>>().join(":");
            *dropped.entry(key).or_insert(0) += 1;
        }
    }
    let latency = |r: &TxRecord| r.finalized_ms.unwrap_or(0).saturating_sub(r.submitted_ms);
    let finality = fin.iter().map(|r| latency(r)).collect();
    let per_endpoint = endpoints
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mine: Vec<u64> = fin
                .iter()
                .filter(|r| r.endpoint == i)
                .map(|r| latency(r))
                .collect();
            EndpointFigures {
                endpoint: name.clone(),
                finalized: mine.len(),
                finality_ms: percentiles(mine),
            }
        })
        .collect();
    let inclusion = fin
        .iter()
        .map(|r| r.included_ms.unwrap_or(0).saturating_sub(r.submitted_ms))
        .collect();
    let first = fin.iter().filter_map(|r| r.finalized_ms).min().unwrap_or(0);
    let last = fin.iter().filter_map(|r| r.finalized_ms).max().unwrap_or(0);
    let span = (last.saturating_sub(first)).max(1) as f64 / 1000.0;
    Summary {
        label: label.to_string(),
        runtime: runtime.to_string(),
        submitted: o.records.len(),
        finalized: fin.len(),
        dropped,
        busy_refused: o.records.iter().filter(|r| r.busy_refusals > 0).count(),
        busy_refusals: o.records.iter().map(|r| r.busy_refusals as u64).sum(),
        finality_ms: percentiles(finality),
        inclusion_ms: percentiles(inclusion),
        sustained_tps: if fin.len() > 1 {
            fin.len() as f64 / span
        } else {
            0.0
        },
        elapsed_ms: o.elapsed_ms,
        blocks_finalized: o.blocks.len(),
        per_endpoint,
        fault: o.fault_ms.map(|at| fault_figures(&o.records, at)),
        cpu_ms_per_tx: None,
        signatures: None,
        block_building: None,
        pool_imports: None,
    }
}

/// Write `<label>.json`, `<label>.csv`, `<label>-latency-cdf.svg`, `<label>-throughput.svg`.
pub fn write(dir: &Path, s: &Summary, o: &Outcome) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let json = serde_json::to_string_pretty(s).map_err(|e| e.to_string())?;
    std::fs::write(dir.join(format!("{}.json", s.label)), json).map_err(|e| e.to_string())?;
    let mut csv = String::from(
        "hash,endpoint,submitted_ms,included_ms,finalized_ms,block,dropped,busy_refusals\n",
    );
    for r in &o.records {
        let opt = |x: Option<u64>| x.map(|v| v.to_string()).unwrap_or_default();
        csv.push_str(&format!(
            "{:?},{},{},{},{},{},{},{}\n",
            r.hash,
            r.endpoint,
            r.submitted_ms,
            opt(r.included_ms),
            opt(r.finalized_ms),
            opt(r.block),
            r.dropped.as_deref().unwrap_or("").replace(',', ";"),
            r.busy_refusals
        ));
    }
    std::fs::write(dir.join(format!("{}.csv", s.label)), csv).map_err(|e| e.to_string())?;
    plot_cdf(
        &dir.join(format!("{}-latency-cdf.svg", s.label)),
        &[(s.label.clone(), o)],
    )?;
    plot_throughput(
        &dir.join(format!("{}-throughput.svg", s.label)),
        &[(s.label.clone(), o)],
    )
}

/// Latency CDFs of several runs in one plot.
pub fn plot_cdf(path: &Path, runs: &[(String, &Outcome)]) -> Result<(), String> {
    let curves: Vec<(String, Vec<(f64, f64)>)> = runs
        .iter()
        .map(|(l, o)| {
            let mut v: Vec<f64> = o
                .records
                .iter()
                .filter_map(|r| {
                    r.finalized_ms
                        .map(|f| f.saturating_sub(r.submitted_ms) as f64 / 1000.0)
                })
                .collect();
            v.sort_by(|a, b| a.total_cmp(b));
            let n = v.len().max(1) as f64;
            (
                l.clone(),
                v.iter()
                    .enumerate()
                    .map(|(i, x)| (*x, (i + 1) as f64 / n))
                    .collect(),
            )
        })
        .collect();
    let xmax = curves
        .iter()
        .flat_map(|(_, c)| c.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    draw_lines(
        path,
        "Finality latency CDF",
        ("seconds from submit to finalized", "fraction"),
        (xmax * 1.05, 1.0),
        curves,
    )
}

/// Finalized transactions per second over time, one line per run.
pub fn plot_throughput(path: &Path, runs: &[(String, &Outcome)]) -> Result<(), String> {
    let series: Vec<(String, Vec<(f64, f64)>)> = runs
        .iter()
        .map(|(l, o)| {
            let mut per_s: BTreeMap<u64, f64> = BTreeMap::new();
            for r in &o.records {
                if let Some(f) = r.finalized_ms {
                    *per_s.entry(f / 1000).or_default() += 1.0;
                }
            }
            let end = per_s.keys().last().copied().unwrap_or(0);
            (
                l.clone(),
                (0..=end)
                    .map(|s| (s as f64, per_s.get(&s).copied().unwrap_or(0.0)))
                    .collect(),
            )
        })
        .collect();
    let xmax = series
        .iter()
        .flat_map(|(_, c)| c.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let ymax = series
        .iter()
        .flat_map(|(_, c)| c.iter().map(|p| p.1))
        .fold(1.0, f64::max);
    draw_lines(
        path,
        "Finalized throughput",
        ("seconds since start", "tx/s"),
        (xmax + 1.0, ymax * 1.1),
        series,
    )
}

/// Finality per submission endpoint (region) for several runs: a bar per run for p50, a cross
/// on it for p99, grouped by endpoint name (runs may have loaded different endpoints).
pub fn plot_per_endpoint(path: &Path, runs: &[&Summary]) -> Result<(), String> {
    let mut names: Vec<String> = vec![];
    for e in runs.iter().flat_map(|s| &s.per_endpoint) {
        if !names.contains(&e.endpoint) {
            names.push(e.endpoint.clone());
        }
    }
    let y_max = runs
        .iter()
        .flat_map(|s| {
            s.per_endpoint
                .iter()
                .map(|e| e.finality_ms[2] as f64 / 1000.0)
        })
        .fold(0.5, f64::max)
        * 1.15;
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    let mut chart = new_chart(
        &root,
        "Finality by submission endpoint (bar p50, cross p99)",
        (names.len().max(1) as f64, y_max),
    )?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|_| String::new())
        .y_desc("seconds from submit to finalized")
        .draw()
        .map_err(|e| e.to_string())?;
    // Endpoint names above their group of bars.
    chart
        .draw_series(names.iter().enumerate().map(|(k, name)| {
            Text::new(
                name.clone(),
                (k as f64 + 0.1, y_max * 0.97),
                ("sans-serif", 15),
            )
        }))
        .map_err(|e| e.to_string())?;
    let width = 0.8 / runs.len().max(1) as f64;
    for (r, s) in runs.iter().enumerate() {
        let color = Palette99::pick(r).to_rgba();
        let bars: Vec<(f64, f64, f64)> = s
            .per_endpoint
            .iter()
            .map(|e| {
                let k = names
                    .iter()
                    .position(|n| *n == e.endpoint)
                    .expect("every endpoint is named; qed");
                let x0 = k as f64 + 0.1 + r as f64 * width;
                (
                    x0,
                    e.finality_ms[0] as f64 / 1000.0,
                    e.finality_ms[2] as f64 / 1000.0,
                )
            })
            .collect();
        chart
            .draw_series(bars.iter().map(|&(x0, p50, _)| {
                Rectangle::new([(x0, 0.0), (x0 + width * 0.9, p50)], color.filled())
            }))
            .map_err(|e| e.to_string())?
            .label(s.label.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], color.filled()));
        chart
            .draw_series(
                bars.iter()
                    .map(|&(x0, _, p99)| Cross::new((x0 + width * 0.45, p99), 6, BLACK)),
            )
            .map_err(|e| e.to_string())?;
    }
    finish_chart(chart, &root)
}

/// An SVG chart with f64 axes.
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A white 800x500 chart with `caption`, axes from 0 to `(x_max, y_max)`.
fn new_chart<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    caption: &str,
    (x_max, y_max): (f64, f64),
) -> Result<Chart<'a, 'b>, String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(|e| e.to_string())
}

/// Draw the legend and write the file.
fn finish_chart<'a, 'b>(
    mut chart: Chart<'a, 'b>,
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

/// One SVG line chart: a line per (label, points) series, axes from 0 to `max`.
pub(crate) fn draw_lines(
    path: &Path,
    caption: &str,
    (x_desc, y_desc): (&str, &str),
    (x_max, y_max): (f64, f64),
    series: Vec<(String, Vec<(f64, f64)>)>,
) -> Result<(), String> {
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    let mut chart = new_chart(&root, caption, (x_max, y_max))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (label, c)) in series.into_iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(c, color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    finish_chart(chart, &root)
}

/// Print a run's summary: the headline figures, then the engine's counters and what was
/// dropped, per endpoint when several were used.
pub fn print(s: &Summary) {
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
    if s.busy_refused > 0 {
        println!(
            "    refused as busy (RPC error 1016) at least once: {} transfers, {} refusals in all",
            s.busy_refused, s.busy_refusals
        );
    }
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
             blocks came by sync before their validator built them, {} built blocks were \
             executed a second time",
            b.offered_per_tx,
            b.refused_per_tx,
            b.refused_stale_per_tx,
            b.refused_future_per_tx,
            b.blocks_from_sync,
            b.blocks_executed_twice
        );
        println!(
            "    proposed per finalized transaction: {:.2} by the validator a client submitted \
             it to, {:.2} by another ({:.2} carried with a later transaction of their sender, \
             the rest taken over); of all these, {:.2} taken back out of the core's queue \
             unproposed, another validator's batch carrying them",
            b.proposed_own_per_tx,
            b.proposed_others_per_tx,
            b.proposed_carried_per_tx,
            b.covered_per_tx
        );
    }
    if let Some(p) = &s.pool_imports {
        println!(
            "    pool imports per finalized transaction besides the client's: {:.2} gossiped by \
             peers, {:.2} adopted from batches (all validators); {:.2} client transactions \
             gossiped at once",
            p.from_peers_per_tx, p.adopted_per_tx, p.gossiped_at_once_per_tx
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

#[cfg(test)]
mod tests {
    use super::*;
    use sp_core::H256;

    fn rec(sub: u64, fin: Option<u64>, dropped: Option<&str>) -> TxRecord {
        TxRecord {
            hash: H256::random(),
            endpoint: 0,
            submitted_ms: sub,
            included_ms: fin,
            finalized_ms: fin,
            block: fin.map(|_| 1),
            dropped: dropped.map(|s| s.to_string()),
            busy_refusals: 0,
        }
    }

    /// A fault that stalls finality for the windows after it: spike and recovery are read from
    /// the records; a run that never gets back under twice the old median reports no recovery.
    #[test]
    fn fault_figures_find_the_spike_and_the_recovery() {
        let mut records = vec![];
        for t in 0..10_000u64 {
            if t % 100 != 0 {
                continue;
            }
            // Before the fault at 5 s: 1 s finality; in the 2 s after it: 6 s; then 1.5 s.
            let lat = if t < 5_000 {
                1_000
            } else if t < 7_000 {
                6_000
            } else {
                1_500
            };
            records.push(rec(t, Some(t + lat), None));
        }
        let f = fault_figures(&records, 5_000);
        assert_eq!(f.before_p50_ms, 1_000);
        assert_eq!(f.spike_ms, 6_000);
        assert_eq!(f.recovery_ms, Some(2_000));
        // Dropped transactions in the last window: never recovered.
        records.push(rec(9_950, None, Some("not finalized")));
        records.push(rec(9_960, None, Some("not finalized")));
        records.retain(|r| r.submitted_ms < 9_000 || r.finalized_ms.is_none());
        let f = fault_figures(&records, 5_000);
        assert_eq!(f.recovery_ms, None);
    }

    #[test]
    fn summary_accounts_for_every_transaction() {
        let mut busy_twice = rec(0, Some(3000), None);
        busy_twice.busy_refusals = 2;
        let o = Outcome {
            records: vec![
                rec(0, Some(1000), None),
                busy_twice,
                rec(0, None, Some("rejected at submission: x")),
            ],
            elapsed_ms: 4000,
            blocks: vec![],
            fault_ms: None,
        };
        let s = summarize(
            "t",
            "bsmr",
            &o,
            &["alice@r0".to_string(), "bob@r1".to_string()],
        );
        assert_eq!(s.submitted, 3);
        assert_eq!(s.finalized + s.dropped.values().sum::<usize>(), 3);
        assert_eq!(s.finality_ms[0], 1000);
        assert_eq!(s.finality_ms[2], 3000);
        assert!((s.sustained_tps - 1.0).abs() < 1e-9);
        assert!(s.fault.is_none(), "no fault injected");
        assert_eq!(
            s.per_endpoint[0].finalized, 2,
            "both finalized went to endpoint 0"
        );
        assert_eq!(s.per_endpoint[0].finality_ms[2], 3000);
        assert_eq!(s.per_endpoint[1].finalized, 0);
        assert_eq!((s.busy_refused, s.busy_refusals), (1, 2));
        let dir = std::env::temp_dir().join(format!("bsmr-bench-report-{}", std::process::id()));
        write(&dir, &s, &o).unwrap();
        assert!(std::fs::read_to_string(dir.join("t-latency-cdf.svg"))
            .unwrap()
            .contains("<svg"));
        plot_per_endpoint(&dir.join("t-per-endpoint.svg"), &[&s]).unwrap();
        assert!(std::fs::read_to_string(dir.join("t-per-endpoint.svg"))
            .unwrap()
            .contains("alice@r0"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
