//! End-to-end check of `bsmr-bench network --scenario far-client`: four real `bsmr-node`
//! processes, each in its own network namespace, connected only through the bench's delaying
//! relay; both consensus modes; exact accounting; per-region figures and plot; and no namespace
//! left behind. Needs iproute2 (`make test` installs it) and either root or unprivileged user
//! namespaces (the bench then runs in its own); where neither is available the test says so in
//! one line and skips.

mod common;

use common::{bench, node, succeeded, summary};
use std::process::Command;

fn namespaces() -> String {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Why this machine cannot create network namespaces for the bench, if it cannot.
fn no_namespaces() -> Option<String> {
    if nix::unistd::geteuid().is_root() {
        return None;
    }
    let probe = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "--net"])
        .args([
            "sh",
            "-c",
            "mount -t tmpfs bsmr-wan /run && ip link set lo up",
        ])
        .output();
    match probe {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        Err(e) => Some(format!("no unshare: {e}")),
    }
}

#[test]
fn far_client_run_over_the_emulated_wan_reports_the_far_region() {
    if let Some(why) = no_namespaces() {
        eprintln!(
            "SKIPPED far_client_run_over_the_emulated_wan: not root and no unprivileged user \
             namespaces ({why})"
        );
        return;
    }
    let out = std::env::temp_dir().join(format!("bsmr-bench-wan-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let child = Command::new(bench())
        .args(["network", "--scenario", "far-client", "--limit", "60"])
        .args(["--rate", "20", "--settle-secs", "60", "--quiet"])
        .args(["--label", "wan", "--node"])
        .arg(node())
        .arg("--out")
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let run = child.wait_with_output().unwrap();
    let (_, stderr) = succeeded(&run);
    assert!(
        stderr.contains("far client: next to charlie@r4"),
        "the far client sits next to the validator farthest from the leader:\n{stderr}"
    );
    for mode in ["leaderless", "leader"] {
        let (summary, finalized, dropped) = summary(&out, &format!("wan-farclient-{mode}"));
        assert_eq!(
            finalized + dropped,
            60,
            "every transaction accounted for: {summary}"
        );
        assert!(finalized > 0, "{summary}");
        let regions = summary["per_endpoint"].as_array().unwrap();
        assert_eq!(regions.len(), 1, "one client region: {summary}");
        assert_eq!(regions[0]["endpoint"], "charlie@r4");
        assert_eq!(regions[0]["finalized"].as_u64().unwrap(), finalized);
    }
    let plot = std::fs::read_to_string(out.join("wan-farclient-compare-per-region.svg")).unwrap();
    assert!(
        plot.contains("charlie@r4"),
        "per-region plot names the region"
    );
    assert!(
        !namespaces().contains(&format!("bsmr{pid}-")),
        "the bench removed its namespaces:\n{}",
        namespaces()
    );
    let _ = std::fs::remove_dir_all(&out);
}
