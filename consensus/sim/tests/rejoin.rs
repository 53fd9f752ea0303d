//! A validator down for longer than its peers keep finished blocks rejoins from the certified
//! chain (docs/consensus.md, "Rejoining from the chain"): it takes the position of a finalized
//! block and what f+1 validators vouch is settled there, then replies, proposes and builds again.
use bsmr_sim::{run, CrashMode, Report, SimConfig};

fn long_outage(n: usize, seed: u64, retain: u64) -> SimConfig {
    let mut c = SimConfig::small(n, seed);
    c.crash = CrashMode::CrashRestart(1);
    c.retain_sync_blocks = retain;
    // 500 ms blocks, 12 s down: 24 blocks missed, three times what peers keep.
    c.crash_at_ms = Some(8_000);
    c.outage_ms = Some(12_000);
    c.load_ms = 30_000;
    c.end_ms = 150_000;
    c
}

fn check(r: &Report, crashed: usize) {
    eprintln!(
        "rejoins {:?} crashes {:?} end {} ms heights {}..{} last built {:?} voided {:?}",
        r.rejoins, r.crashes_ms, r.virtual_ms, r.min_height, r.max_height, r.last_built, r.voided
    );
    // Violations include the liveness check: every correct proposer's transactions are in the
    // blocks of every live correct validator, the rejoined one included.
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert!(
        r.max_height - r.min_height <= 2,
        "live validators at {}..{}",
        r.min_height,
        r.max_height
    );
    let (_, _, to) = *r
        .rejoins
        .iter()
        .find(|(i, _, _)| *i == crashed)
        .unwrap_or_else(|| {
            panic!(
                "validator {crashed} rejoined from the chain: {:?}",
                r.rejoins
            )
        });
    assert!(
        r.last_built[&crashed] > to,
        "it built blocks itself after rejoining at {to} (last {})",
        r.last_built[&crashed]
    );
}

#[test]
fn a_validator_down_longer_than_the_retention_rejoins_from_the_chain() {
    for seed in [1, 2, 3] {
        let r = run(long_outage(4, seed, 8));
        check(&r, 3);
    }
}

#[test]
fn rejoining_holds_with_seven_validators_and_a_byzantine_one() {
    // Seed 12: its validator 5 misses enough blocks to rejoin (seed 11's has caught up by
    // sync blocks since retransmission backs off; `check` fails a run with no rejoin).
    let mut c = long_outage(7, 12, 8);
    c.byzantine = 1;
    c.behaviour = bsmr_sim::Behaviour::Equivocate;
    let r = run(c);
    // Validator 6 is Byzantine, so the crashed one is 5.
    check(&r, 5);
}

#[test]
fn a_byzantine_validator_claiming_too_much_settled_cannot_mislead_a_rejoin() {
    for seed in [21, 22] {
        let mut c = long_outage(7, seed, 8);
        c.byzantine = 1;
        c.behaviour = bsmr_sim::Behaviour::LieSettled;
        let r = run(c);
        check(&r, 5);
    }
}
