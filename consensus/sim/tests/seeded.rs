//! The seeded simulation matrix: n in {1, 4, 7, 10}, every Byzantine behaviour at f, crash and
//! crash-restart faults; zero invariant or liveness violations allowed. A failure prints the
//! exact CLI command that replays it. Total: 2,730 runs (with tests/fuzz.rs's 2,600 fuzz cases,
//! over 5,000 seeded runs).
use bsmr_sim::{run, Behaviour, CrashMode, SimConfig};
use std::time::Instant;

#[derive(Clone, Copy, Debug)]
enum Scenario {
    Honest,
    Byz(Behaviour),
    Crash,
    CrashRestart,
}

fn scenarios() -> Vec<Scenario> {
    let mut v = vec![Scenario::Honest, Scenario::Crash, Scenario::CrashRestart];
    v.extend(Behaviour::ALL.iter().map(|b| Scenario::Byz(*b)));
    v
}

fn config(n: usize, s: Scenario, seed: u64) -> SimConfig {
    let mut c = SimConfig::ci(n, seed);
    let f = (n - 1) / 3;
    match s {
        Scenario::Honest => {}
        Scenario::Byz(b) => {
            c.byzantine = f;
            c.behaviour = b;
        }
        Scenario::Crash => c.crash = CrashMode::Crash(f),
        Scenario::CrashRestart => c.crash = CrashMode::CrashRestart(f.max(1)),
    }
    c
}

fn cli(n: usize, s: Scenario, seed: u64) -> String {
    let f = (n - 1) / 3;
    let extra = match s {
        Scenario::Honest => String::new(),
        Scenario::Byz(b) => format!(" --byzantine {f} --behaviour {}", b.name()),
        Scenario::Crash => format!(" --crash {f}"),
        Scenario::CrashRestart => format!(" --crash-restart {}", f.max(1)),
    };
    format!("cargo run --release -p bsmr-sim -- --validators {n}{extra} --seed {seed} --gst-ms 800 --load-ms 1500 --batch-interval-ms 400 --txs-per-batch 2")
}

fn matrix(n: usize, seeds: std::ops::Range<u64>, only: Option<&[usize]>) -> usize {
    let t = Instant::now();
    let mut runs = 0;
    let mut failures = vec![];
    for (k, s) in scenarios().into_iter().enumerate() {
        if only.map(|o| !o.contains(&k)).unwrap_or(false) {
            continue;
        }
        if n < 4 && !matches!(s, Scenario::Honest | Scenario::CrashRestart) {
            continue;
        }
        for seed in seeds.clone() {
            let r = run(config(n, s, seed));
            runs += 1;
            if !r.violations.is_empty() {
                failures.push(format!(
                    "SEED={seed} n={n} {s:?}: {:?}\n  replay: {}",
                    r.violations,
                    cli(n, s, seed)
                ));
            }
        }
    }
    eprintln!("n={n}: {runs} runs in {:.1}s", t.elapsed().as_secs_f64());
    assert!(
        failures.is_empty(),
        "{} failing runs:\n{}",
        failures.len(),
        failures.join("\n")
    );
    runs
}

#[test]
fn n1_honest_and_restart() {
    // f = 0: honest runs and crash-restart of the only validator.
    assert_eq!(matrix(1, 0..60, None), 120);
}

#[test]
fn n4_first_half() {
    assert_eq!(matrix(4, 0..50, Some(&(0..11).collect::<Vec<_>>())), 550);
}

#[test]
fn n4_second_half() {
    assert_eq!(matrix(4, 0..50, Some(&(11..22).collect::<Vec<_>>())), 550);
}

/// The behaviours after the first 22 scenarios (lie-settled, bad-floors, far-deps,
/// outsider-deps, misnamed-deps, mutate, twins, cover-pending).
fn rest() -> Vec<usize> {
    (22..scenarios().len()).collect()
}

#[test]
fn n4_rest() {
    assert_eq!(matrix(4, 0..50, Some(&rest())), 50 * rest().len());
}

#[test]
fn n7_first_half() {
    assert_eq!(matrix(7, 100..125, Some(&(0..11).collect::<Vec<_>>())), 275);
}

#[test]
fn n7_second_half() {
    assert_eq!(
        matrix(7, 100..125, Some(&(11..22).collect::<Vec<_>>())),
        275
    );
}

#[test]
fn n7_rest() {
    assert_eq!(matrix(7, 100..125, Some(&rest())), 25 * rest().len());
}

#[test]
fn n10_first_half() {
    assert_eq!(
        matrix(10, 200..212, Some(&(0..11).collect::<Vec<_>>())),
        132
    );
}

#[test]
fn n10_second_half() {
    assert_eq!(
        matrix(10, 200..212, Some(&(11..22).collect::<Vec<_>>())),
        132
    );
}

#[test]
fn n10_rest() {
    assert_eq!(matrix(10, 200..212, Some(&rest())), 12 * rest().len());
}
