//! Fuzz cases at CI scale: each seed draws a whole scenario (n in {4, 5, 7, 10, 13}, scripted,
//! mutation or Twins adversaries, crashes also between a persist and its send, Byzantine faults
//! next to crashes, small windows and retention, LAN/WAN, GST and partitions, a validator-set
//! change in one case in four); zero violations allowed. A failure prints
//! `bsmr-sim --fuzz-case SEED --ci-scale`, which replays it exactly.
//! Each part also checks that the scenarios it claims to cover did occur. Total: 2,600 runs.

use bsmr_sim::fuzz::{self, Scale, Soak};
use bsmr_sim::mutator::OPERATORS;
use std::time::Duration;

fn part(seeds: std::ops::Range<u64>) -> Soak {
    let count = seeds.end - seeds.start;
    let soak = fuzz::soak(
        seeds.start,
        count,
        Duration::from_secs(3_600),
        Scale::Ci,
        1,
        |_, _, _| {},
    );
    eprintln!("{}", soak.summary());
    let failures: Vec<String> = soak
        .failures
        .iter()
        .map(|(seed, v)| {
            format!(
                "seed {seed}: {}\n  {}\n  replay: bsmr-sim --fuzz-case {seed} --ci-scale",
                fuzz::describe(&fuzz::case_at(*seed, Scale::Ci)),
                v.join("; ")
            )
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} failing fuzz cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(soak.runs, count, "every case ran");
    soak
}

fn covers(soak: &Soak) {
    for n in [4, 5, 7, 10, 13] {
        assert!(
            soak.by_n.get(&n).copied().unwrap_or(0) > 0,
            "no run with n = {n}"
        );
    }
    for b in ["mutate", "twins"] {
        assert!(
            soak.by_behaviour.get(b).copied().unwrap_or(0) > 10,
            "few {b} runs"
        );
    }
    assert!(soak.floors_above_zero > 0, "no run reached a floor above 0");
    assert!(soak.epoch_changed > 0, "no run changed the validator set");
    assert!(
        soak.joined > 0,
        "no run added a validator that built blocks"
    );
    assert!(
        soak.byzantine_and_crash > 0,
        "no run combined Byzantine faults and a crash"
    );
    assert!(soak.rejoined > 0, "no run rejoined from the chain");
    assert!(
        soak.lost_writes > 0,
        "no crash struck between two writes of one step"
    );
}

#[test]
fn fuzz_cases_first_half() {
    covers(&part(0..1_300));
}

#[test]
fn fuzz_cases_second_half() {
    let soak = part(1_300..2_600);
    covers(&soak);
    // Every mutation operator ran, so none is dead code.
    for op in OPERATORS {
        assert!(
            soak.mutations.get(op).copied().unwrap_or(0) > 0,
            "operator {op} never applied"
        );
    }
}
