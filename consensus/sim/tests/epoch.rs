//! Validator-set changes mid-run with the engine's handover rule (protocol.md, "Epochs"): a
//! change enacted in block b* starts epoch 1 at s = b* + 2; every node replaces its replica once
//! block s - 1 is built or in its chain, void batches' transactions are proposed again, and the
//! validator that leaves hands its clients' transactions to a member.

use bsmr_sim::{run, Behaviour, SetChange, SimConfig};

fn change(n: usize, byzantine: usize, behaviour: Behaviour, at: u64, seed: u64) -> SimConfig {
    let mut c = SimConfig::small(n, seed);
    c.byzantine = byzantine;
    c.behaviour = behaviour;
    c.load_ms = 4_000;
    c.batch_interval_ms = 100;
    c.end_ms = c.liveness_deadline_ms().max(60_000);
    c.epoch_change_at = Some(at);
    c
}

#[test]
fn a_correct_validator_leaves_mid_load_and_nothing_is_lost() {
    for seed in 1..=4 {
        let r = run(change(5, 0, Behaviour::Honest, 3, seed));
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        assert_eq!(r.epoch_switches, 5, "seed {seed}: every node switched");
        assert_eq!(r.txs_in_blocks, r.txs_submitted, "seed {seed}");
    }
}

#[test]
fn a_byzantine_validator_is_removed_mid_load_under_attack() {
    for (behaviour, seed) in [
        (Behaviour::Equivocate, 11),
        (Behaviour::Mutate, 12),
        (Behaviour::FakeDeps, 13),
        (Behaviour::BadFloors, 14),
    ] {
        let r = run(change(7, 2, behaviour, 4, seed));
        assert!(
            r.violations.is_empty(),
            "{} seed {seed}: {:?}",
            behaviour.name(),
            r.violations
        );
        assert_eq!(r.epoch_switches, 7, "{} seed {seed}", behaviour.name());
    }
}

#[test]
fn a_new_validator_joins_mid_load_and_its_clients_transactions_land() {
    for seed in 1..=3 {
        let mut c = change(4, 0, Behaviour::Honest, 3, seed);
        c.set_change = SetChange::Add;
        let r = run(c);
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        assert_eq!(r.epoch_switches, 5, "seed {seed}: the four and the new one");
        assert_eq!(r.joined, 1, "seed {seed}: the new validator built blocks");
        assert_eq!(r.txs_in_blocks, r.txs_submitted, "seed {seed}");
    }
}

#[test]
fn a_byzantine_validator_is_replaced_by_a_new_one_under_attack() {
    for (behaviour, seed) in [
        (Behaviour::Mutate, 31),
        (Behaviour::Equivocate, 32),
        (Behaviour::Twins, 33),
    ] {
        let mut c = change(7, 2, behaviour, 4, seed);
        c.set_change = SetChange::Replace;
        let r = run(c);
        assert!(
            r.violations.is_empty(),
            "{} seed {seed}: {:?}",
            behaviour.name(),
            r.violations
        );
        assert_eq!(r.joined, 1, "{} seed {seed}", behaviour.name());
    }
}

#[test]
fn the_new_epoch_check_fails_when_the_run_never_reaches_it() {
    let mut c = change(4, 0, Behaviour::Honest, 500, 3);
    c.end_ms = c.load_ms + 5_000;
    let r = run(c);
    assert!(
        r.violations
            .iter()
            .any(|v| v.contains("built a block of the new epoch")),
        "{:?}",
        r.violations
    );
}

/// Soak seed 501371 (n = 4, the leaving validator crash-restarts): it left the set, then
/// crashed and came back; it used to boot a replica of the new epoch it is not a member of and
/// hand its clients' transactions to it. It now comes back as a follower.
#[test]
fn a_validator_that_left_and_then_crashed_comes_back_as_a_follower() {
    let mut c = bsmr_sim::fuzz::case(501_371);
    assert!(c.epoch_change_at.is_some());
    // Drawn before joins existed: its validator leaves.
    c.set_change = SetChange::Remove;
    let r = run(c);
    assert!(r.violations.is_empty(), "{:?}", r.violations);
}

/// Soak seeds 601495 and 601597 (n = 13 and 10, `mutate`): a Byzantine validator of the new
/// epoch names an old epoch's command id under its old (proposer, seq); the new epoch's
/// replicas hold no such header and decide that instance Noop. It is another instance than the
/// old epoch's (every message carries its epoch), so the checker keys instances by epoch; it
/// used to report the Noop as a locking violation (S9) against the old epoch's decision.
#[test]
fn an_old_epochs_id_named_in_the_new_epoch_is_another_instance() {
    for seed in [601_495, 601_597] {
        let mut c = bsmr_sim::fuzz::case(seed);
        assert!(c.epoch_change_at.is_some());
        c.set_change = SetChange::Remove;
        let r = run(c);
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
    }
}

/// Twins across a set change: two Twins validators (one leaves, one stays; the one that stays
/// runs two honest epoch-1 replicas with one key, each on its own side before GST) while
/// validator 6 leaves. Nothing is lost and no invariant breaks; before, the simulator never
/// drew a set change with Twins.
#[test]
fn twins_validators_stay_twins_across_the_set_change() {
    for seed in [21, 22, 23] {
        let r = run(change(7, 2, Behaviour::Twins, 3, seed));
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        assert_eq!(r.epoch_switches, 7, "seed {seed}");
        assert_eq!(
            r.twin_epoch_switches, 1,
            "seed {seed}: the Twins validator that stays"
        );
        assert_eq!(r.txs_in_blocks, r.txs_submitted, "seed {seed}");
    }
    // And in the fuzz cases that draw both (n = 13, three Twins validators).
    let r = run(bsmr_sim::fuzz::case(900_064));
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert!(r.twin_epoch_switches >= 1);
}
