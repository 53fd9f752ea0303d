//! A validator that crashes loses the client batches it had not proposed yet (they are held in
//! memory only, like a node's transaction pool); their clients submit them again once it is
//! back. Found by a long run: seed 100 crashed validator 9 with two batches waiting for a free
//! seq, and the liveness check then missed their 8 transactions.
use bsmr_sim::{run, CrashMode, SimConfig};

#[test]
fn batches_lost_in_a_crash_are_submitted_again_and_ordered() {
    let mut c = SimConfig::small(10, 100);
    c.crash = CrashMode::CrashRestart(3);
    c.load_ms = 15_000;
    c.end_ms = 120_000;
    let r = run(c);
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert_eq!(r.txs_in_blocks, r.txs_submitted);
}
