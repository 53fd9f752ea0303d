//! What the bench's end-to-end tests share: the binaries under test and reading a run's summary.

// Not every test binary that includes `common` starts a dev node.
#[allow(dead_code)]
pub mod dev_node;

use std::path::{Path, PathBuf};
use std::process::Output;

/// The bench binary cargo built for this test.
pub fn bench() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bsmr-bench"))
}

/// The node cargo built in the same target directory.
pub fn node() -> PathBuf {
    sibling("bsmr-node")
}

/// The reference chain's node (`aura-grandpa-node`), built in the same target directory by
/// `cargo test --workspace`.
#[allow(dead_code)] // each test file compiles this module; only smoke.rs runs the reference chain
pub fn reference_node() -> PathBuf {
    sibling("aura-grandpa-node")
}

fn sibling(binary: &str) -> PathBuf {
    bench()
        .parent()
        .expect("the binary has a directory")
        .join(binary)
}

/// Assert the run succeeded; its stdout and stderr.
pub fn succeeded(run: &Output) -> (String, String) {
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(
        run.status.success(),
        "bsmr-bench failed:\n{stdout}\n{stderr}"
    );
    (stdout, stderr)
}

/// The summary `<out>/<label>.json` with its finalized and dropped counts.
pub fn summary(out: &Path, label: &str) -> (serde_json::Value, u64, u64) {
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join(format!("{label}.json"))).unwrap()).unwrap();
    let finalized = summary["finalized"].as_u64().unwrap();
    let dropped = summary["dropped"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    (summary, finalized, dropped)
}
