//! Overload on thin uplinks: validators offered far more than their uplinks carry for a while
//! must carry what they can and drain the rest once the burst ends, not collapse under their own
//! retransmissions and view changes (docs/consensus.md, "Pacing own batches").
use bsmr_sim::{run, sim::Resources, Report, SimConfig};

/// 800 transactions a second for 20 s over four validators, each with a 50 kB/s uplink: about
/// four times what the links carry (the same run finalized 6,400 of 16,000 in 540 s, its links
/// full of resends and view changes, before own batches were paced).
fn burst(seed: u64) -> Report {
    let mut c = SimConfig::reliable(4, seed);
    c.load_ms = 20_000;
    c.end_ms = 300_000;
    c.batch_interval_ms = 100;
    c.txs_per_batch = 20;
    c.max_events = 30_000_000;
    c.resources = Some(Resources {
        sign_us: 50,
        verify_us: 50,
        exec_us: 10,
        event_us: 10,
        uplink_bytes_per_s: 50_000,
    });
    run(c)
}

#[test]
fn a_twenty_second_overload_on_thin_uplinks_drains_within_five_minutes() {
    for seed in [1, 2, 3] {
        let r = burst(seed);
        assert!(r.violations.is_empty(), "SEED={seed}: {:?}", r.violations);
        assert_eq!(
            r.txs_in_blocks, r.txs_submitted,
            "SEED={seed}: every transaction in a block"
        );
        let drained = r.block_txs.last().map_or(0, |(at, _)| *at);
        assert!(
            drained <= 300_000,
            "SEED={seed}: drained at {drained} ms; bytes by kind {:?}",
            r.bytes_by_kind
        );
    }
}
