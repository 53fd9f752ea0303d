//! try-runtime over a live chain's state, as `try-runtime on-runtime-upgrade` does it: a dev node
//! runs a few blocks, `bsmr-node export-state` snapshots its best state (every key, the way the
//! node stores it), and the runtime built with `--features try-runtime` runs its migrations with
//! pre- and post-upgrade checks and every pallet's `try_state` invariants over that snapshot.
//! The same checks must refuse a snapshot whose validator set was corrupted.
//!
//! Run by `scripts/test.sh`: `cargo test --release -p bsmr-runtime --features try-runtime
//! --test try_runtime` (after the node is built; the wasm is not needed, so SKIP_WASM_BUILD=1).

#![cfg(feature = "try-runtime")]

use bsmr_runtime::{Executive, Runtime};
use frame_try_runtime::UpgradeCheckSelect;
use sp_core::storage::{Storage, StorageChild};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Blocks the dev node imports before its state is snapshotted.
const BLOCKS: u32 = 3;

/// `bsmr-node`, built in the same target directory as this test (`target/release/deps/..`).
fn node() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let release = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary sits in <target>/release/deps");
    let node = release.join("bsmr-node");
    assert!(
        node.exists(),
        "{} is missing: build it first (cargo build --release -p bsmr-node)",
        node.display()
    );
    node
}

/// Run `bsmr-node --dev` in `base` until it has imported `BLOCKS` blocks, then stop it.
fn run_dev_chain(node: &Path, base: &Path) {
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("a bound port")
            .port()
            .to_string()
    };
    let mut child = Command::new(node)
        .args(["--dev", "--base-path"])
        .arg(base)
        .args(["--rpc-port", &free(), "--port", &free()])
        .args(["--no-prometheus", "--no-telemetry", "--no-mdns"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("bsmr-node starts");
    let started = Instant::now();
    let mut log = Vec::new();
    let target = format!("Imported #{BLOCKS} ");
    for line in BufReader::new(child.stderr.take().expect("piped")).lines() {
        let line = line.expect("the node's log is text");
        let done = line.contains(&target);
        log.push(line);
        if done || started.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        log.iter().any(|l| l.contains(&target)),
        "the dev node did not import block #{BLOCKS} within 60 s; its log:\n{}",
        log.join("\n")
    );
}

/// The storage of the best block, from `bsmr-node export-state` (a raw chain spec).
fn export_state(node: &Path, base: &Path) -> Storage {
    let out = Command::new(node)
        .args(["export-state", "--dev", "--base-path"])
        .arg(base)
        .output()
        .expect("bsmr-node export-state runs");
    assert!(
        out.status.success(),
        "export-state failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spec: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("export-state prints a JSON chain spec");
    let raw = &spec["genesis"]["raw"];
    let pairs = |map: &serde_json::Value| -> BTreeMap<Vec<u8>, Vec<u8>> {
        map.as_object()
            .expect("a map of hex keys to hex values")
            .iter()
            .map(|(k, v)| (unhex(k), unhex(v.as_str().expect("a hex value"))))
            .collect()
    };
    let children_default: Vec<(Vec<u8>, StorageChild)> = raw["childrenDefault"]
        .as_object()
        .map(|children| {
            children
                .iter()
                .map(|(k, data)| {
                    let key = unhex(k);
                    let child = StorageChild {
                        data: pairs(data),
                        child_info: sp_core::storage::ChildInfo::new_default(&key),
                    };
                    (key, child)
                })
                .collect()
        })
        .unwrap_or_default();
    Storage {
        top: pairs(&raw["top"]),
        children_default: children_default.into_iter().collect(),
    }
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s.trim_start_matches("0x")).expect("hex")
}

#[test]
fn a_live_chain_state_passes_the_upgrade_checks_and_a_corrupted_one_does_not() {
    let node = node();
    let base = std::env::temp_dir().join(format!("bsmr-try-runtime-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    run_dev_chain(&node, &base);
    let state = export_state(&node, &base);
    let _ = std::fs::remove_dir_all(&base);

    let mut ext = sp_io::TestExternalities::new(state.clone());
    ext.execute_with(|| {
        let number = frame_system::Pallet::<Runtime>::block_number();
        assert!(number >= BLOCKS, "the snapshot is of block #{number}");
        assert!(
            !pallet_bsmr_membership::Members::<Runtime>::get().is_empty(),
            "the snapshot holds the validator set"
        );
        Executive::try_runtime_upgrade(UpgradeCheckSelect::All)
            .unwrap_or_else(|e| panic!("the upgrade checks refuse a live chain's state: {e:?}"));
    });

    // The same checks catch a validator set the pallet could never have written: two members
    // with one consensus key.
    let mut ext = sp_io::TestExternalities::new(state);
    ext.execute_with(|| {
        pallet_bsmr_membership::Members::<Runtime>::mutate(|members| {
            let first = members[0].clone();
            let twin = (bsmr_runtime::AccountId::new([0xee; 32]), first.1.clone());
            members.try_push(twin).expect("room for one more member");
            members.sort_by(|a, b| a.0.cmp(&b.0));
        });
        assert!(
            Executive::try_runtime_upgrade(UpgradeCheckSelect::All).is_err(),
            "the upgrade checks accept two members with one key"
        );
    });
}
