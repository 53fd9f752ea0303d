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

/// A validator restarted after every proposer went more than 4W seqs (the decided record keeps
/// exact marks only that far below the watermark) must restore its watermarks, not rebuild them
/// from seq 0: otherwise it neither replies to current batches nor proposes its own again.
#[test]
fn a_validator_restarted_late_in_a_long_run_proposes_and_replies_again() {
    let mut c = SimConfig::small(4, 7);
    c.crash = CrashMode::CrashRestart(1);
    // 250 ms batches: about 120 seqs per proposer before the crash, against 4W = 64.
    c.crash_at_ms = Some(30_000);
    c.outage_ms = Some(1_000);
    c.load_ms = 45_000;
    c.end_ms = 150_000;
    let r = run(c);
    // Liveness includes the transactions clients submitted to the restarted validator.
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert_eq!(r.crashes_ms, vec![30_000]);
}
