//! End-to-end check of `bsmr-bench`: a short `network` run (a 60-transfer slice of the real
//! trace) against real node processes, with exact accounting: every submitted transaction is
//! finalized or reported dropped with a reason. It runs both bsmr consensus modes and the
//! reference chain (`aura-grandpa-node`: another runtime, another consensus), which shows that a
//! replay signs for whatever chain it is pointed at. Bad traces are refused with an error naming
//! the file and line.

mod common;

use common::{bench, node, reference_node, succeeded, summary};
use std::process::Command;

#[test]
fn network_run_accounts_for_every_transaction_in_every_mode_and_on_the_reference_chain() {
    let out = std::env::temp_dir().join(format!("bsmr-bench-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    assert!(
        node().exists(),
        "bsmr-node is built next to bsmr-bench: {}",
        node().display()
    );
    assert!(
        reference_node().exists(),
        "aura-grandpa-node is built next to bsmr-bench: {}",
        reference_node().display()
    );
    let run = Command::new(bench())
        .args([
            "network",
            "--modes",
            "all",
            "--scenario",
            "trace",
            "--limit",
            "60",
            "--rate",
            "20",
        ])
        .args([
            "--settle-secs",
            "60",
            "--quiet",
            "--label",
            "smoke",
            "--node",
        ])
        .arg(node())
        .arg("--reference-node")
        .arg(reference_node())
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let (stdout, _) = succeeded(&run);
    for other in ["leader", "aura-grandpa"] {
        assert!(
            stdout.contains(&format!("{other} / leaderless: finality p50 x")),
            "side-by-side ratios printed:\n{stdout}"
        );
    }
    for mode in ["leaderless", "leader", "aura-grandpa"] {
        let label = format!("smoke-trace-{mode}");
        let (summary, finalized, dropped) = summary(&out, &label);
        let submitted = summary["submitted"].as_u64().unwrap();
        let runtime = if mode == "aura-grandpa" {
            "aura-grandpa-reference"
        } else {
            "bsmr"
        };
        assert_eq!(summary["runtime"], runtime, "the run measured its chain");
        assert_eq!(submitted, 60, "{summary}");
        assert_eq!(
            finalized + dropped,
            submitted,
            "every transaction accounted for: {summary}"
        );
        assert!(finalized > 0, "some transfers finalized: {summary}");
        // Nothing makes a transfer fail: a validator that accepted one must finalize it, in
        // every mode (the same pool and limits on every chain).
        assert_eq!(dropped, 0, "{summary}");
        let csv = std::fs::read_to_string(out.join(format!("{label}.csv"))).unwrap();
        let rows: Vec<&str> = csv.lines().skip(1).collect();
        assert_eq!(rows.len(), 60);
        for row in rows {
            let cols: Vec<&str> = row.split(',').collect();
            let (finalized_ms, reason) = (cols[4], cols[6]);
            assert!(
                !finalized_ms.is_empty() ^ !reason.is_empty(),
                "a row is either finalized or dropped with a reason: {row}"
            );
        }
        assert!(
            std::fs::read_to_string(out.join(format!("{label}-latency-cdf.svg")))
                .unwrap()
                .contains("<svg")
        );
    }
    assert!(out.join("smoke-trace-compare.json").exists());
    let _ = std::fs::remove_dir_all(&out);
}

/// A client that spreads each sender's nonces over two validators (a load-balanced RPC address)
/// loses nothing: every transfer is finalized (`--endpoints-per-sender 2` sends a sender's
/// nonces to two validators in turn).
#[test]
fn a_sender_spread_over_two_validators_loses_nothing() {
    let out = std::env::temp_dir().join(format!("bsmr-bench-spread-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = Command::new(bench())
        .args(["network", "--modes", "leaderless", "--scenario", "trace"])
        .args(["--accounts", "4", "--endpoints-per-sender", "2"])
        .args(["--limit", "80", "--rate", "40", "--settle-secs", "60"])
        .args(["--quiet", "--label", "spread", "--node"])
        .arg(node())
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    succeeded(&run);
    let (summary, finalized, dropped) = summary(&out, "spread-trace-leaderless");
    assert_eq!((finalized, dropped), (80, 0), "{summary}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn bad_trace_files_get_clear_errors() {
    let dir = std::env::temp_dir().join(format!("bsmr-bench-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "from,to,amount\n0xa,0xb,12\n0xa,0xb,twelve\n").unwrap();
    let run = Command::new(bench())
        .args(["replay", "--endpoints", "ws://127.0.0.1:1", "--trace"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("bad.csv") && err.contains("line 3"),
        "unclear error: {err}"
    );
    let run = Command::new(bench())
        .args(["network", "--rate", "fast"])
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("--rate"),
        "clap names the bad flag"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
