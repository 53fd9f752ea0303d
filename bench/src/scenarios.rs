//! `bsmr-bench network`: start local networks of each mode, run the scenario (steady, crash,
//! partition, WAN), replay the trace against them and compare the modes side by side.

use super::*;
use crate::measure::{load_trace, measure};

pub(crate) async fn network_mode(
    opts: &NetworkArgs,
    load: &LoadArgs,
) -> Result<Vec<report::Summary>, String> {
    let NetworkArgs {
        node,
        modes,
        reference_node,
        scenario,
        block_time_ms,
        node_args,
        logs,
        wan: _,
        cpu_quota,
        bandwidth_mbit,
    } = opts;
    if let Some(m) = bandwidth_mbit {
        if !(m.is_finite() && *m > 0.0) {
            return Err(format!("--bandwidth-mbit {m}: must be a positive number"));
        }
    }
    if let Some(cores) = cpu_quota {
        cgroup::quota_us(*cores)?;
        if let Some(why) = cgroup::unavailable() {
            return Err(why);
        }
    }
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
        let net = network::LocalNet::start(
            binary,
            mode,
            &args,
            logs.as_deref(),
            &log_prefix,
            &network::Isolation {
                wan,
                link_rate: bandwidth_mbit.map(|m| (m * 1e6 / 8.0) as u64),
                cpu_quota: *cpu_quota,
            },
        )?;
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
        let cpu = {
            let net = net.clone();
            move || net.lock().expect("no panics while held; qed").cpu_seconds()
        };
        let (summary, outcome) =
            measure(&endpoints, &names, load, &label, plan, killer, Some(&cpu)).await?;
        if let Some(cores) = cpu_quota {
            let net = net.lock().expect("no panics while held; qed");
            println!(
                "    each validator in {cores} cores: throttled {:.1} s in total",
                net.throttled_seconds()
            );
        }
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
        // A node that has just opened its RPC port can still reset the first WebSocket
        // handshake (seen once in `make test`): ask again until the timeout.
        let client = loop {
            match replay::connect(e).await {
                Ok(c) => break c,
                Err(err) if start.elapsed() > timeout => return Err(err),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        clients.push(client);
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
