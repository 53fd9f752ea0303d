//! Leader rotation after a crash: a validator that misses its checkpoint turn is skipped
//! (consensus/core/src/rotation.rs), so a crashed validator costs a few checkpoint view changes,
//! not one every n blocks for as long as it is down.
use bsmr_consensus_core::rotation::FIRST_SUSPENSION_ROUNDS;
use bsmr_sim::{run, CrashMode, NetKind, SimConfig};

#[test]
fn a_crashed_validator_stops_costing_view_changes() {
    let mut c = SimConfig::reliable(4, 11);
    c.net = NetKind::Lan;
    c.load_ms = 40_000;
    c.end_ms = 80_000;
    c.block_ms = 200;
    c.crash = CrashMode::Crash(1);
    let r = run(c);
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    let crash = *r.crashes_ms.first().expect("one validator crashed");
    let after: Vec<_> = r
        .checkpoint_views
        .iter()
        .filter(|(_, _, at)| *at > crash)
        .collect();
    let view_changed = after.iter().filter(|(_, v, _)| *v > 0).count();
    // Without skipping, every 4th block after the crash would need a view change.
    assert!(
        after.len() >= 40,
        "only {} blocks after the crash at {crash} ms",
        after.len()
    );
    // Each consecutive miss doubles the suspension (R n, 2 R n, 4 R n... blocks), so k misses
    // span about R n (2^k - 1) blocks.
    let rn = 4.0 * FIRST_SUSPENSION_ROUNDS as f64;
    let bound = ((after.len() as f64 / rn + 1.0).log2().floor() as usize) + 1;
    let at: Vec<u64> = after
        .iter()
        .filter(|(_, v, _)| *v > 0)
        .map(|(b, _, _)| *b)
        .collect();
    assert!(
        (1..=bound).contains(&view_changed),
        "{view_changed} of {} blocks after the crash needed a checkpoint view change (at {at:?}; \
         bound {bound}, plain rotation about {})",
        after.len(),
        after.len() / 4
    );
    eprintln!(
        "{} blocks after the crash; view changes at {at:?}",
        after.len()
    );
}
