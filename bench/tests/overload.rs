//! Sustained overload loses nothing: a 4-validator network offered twice what this machine
//! finalizes, for 30 s (24,000 transfers of the real trace at 800 tx/s), finalizes every
//! transfer, and no validator closes a connection because a peer's notification queue filled.
//! Before transaction gossip was bounded (`sc-consensus-bsmr`, `client_txs.rs`), litep2p closed
//! every validator's connections, consensus stream included, and the chain halted after
//! 3,000-6,500 transfers (docs/performance.md, "Sustained overload"). Its own test binary, so it
//! does not share the machine with the other network tests.

mod common;

use common::{bench, node, succeeded, summary};
use std::process::Command;

#[test]
fn a_network_offered_more_than_it_finalizes_for_30_s_loses_nothing() {
    let out = std::env::temp_dir().join(format!("bsmr-bench-overload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let logs = out.join("logs");
    let run = Command::new(bench())
        .args(["network", "--modes", "leaderless", "--scenario", "trace"])
        .args(["--limit", "24000", "--rate", "800"])
        .args(["--quiet", "--label", "overload", "--node"])
        .arg(node())
        .arg("--logs")
        .arg(&logs)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    succeeded(&run);
    let (summary, finalized, dropped) = summary(&out, "overload-trace-leaderless");
    assert_eq!((finalized, dropped), (24_000, 0), "{summary}");
    let mut checked = 0;
    for entry in std::fs::read_dir(&logs).unwrap() {
        let path = entry.unwrap().path();
        let log = std::fs::read_to_string(&path).unwrap();
        assert!(
            !log.contains("clogged"),
            "{} closed a connection whose notification queue was full",
            path.display()
        );
        checked += 1;
    }
    assert_eq!(checked, 4, "one log per validator");
    let _ = std::fs::remove_dir_all(&out);
}
