//! Quick end-to-end runs (honest, lossy network before GST).
use bsmr_sim::{run, SimConfig};

#[test]
fn honest_runs_pass() {
    for n in [1, 4, 7] {
        for seed in 0..3 {
            let r = run(SimConfig::small(n, seed));
            assert!(
                r.violations.is_empty(),
                "SEED={seed} n={n}: {:?}",
                r.violations
            );
            assert!(r.min_height > 0);
        }
    }
}
