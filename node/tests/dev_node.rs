//! End-to-end tests of a real `bsmr-node --dev` process over HTTP and WebSocket RPC:
//! a signed balances transfer is included and finalized, both balances change as they must,
//! and bad input (a corrupt chain spec, malformed RPC calls) gets clear errors while the node
//! keeps running.

mod common;

use std::{process::Command, time::Duration};

use bsmr_runtime::Runtime;
use codec::Decode;
use common::{node_binary, signed_transfer, AccountInfo, Node};
use jsonrpsee::{
    core::client::{ClientT, Subscription, SubscriptionClientT},
    http_client::HttpClientBuilder,
    rpc_params,
    ws_client::WsClientBuilder,
};
use sp_core::H256;
use sp_keyring::Sr25519Keyring;

/// The free balance of `who` at block `at` (None = best), read through `state_getStorage`.
async fn free_balance(client: &impl ClientT, who: Sr25519Keyring, at: Option<H256>) -> u128 {
    let key = frame_system::Account::<Runtime>::hashed_key_for(who.to_account_id());
    let raw: Option<sp_core::Bytes> = client
        .request("state_getStorage", rpc_params![sp_core::Bytes(key), at])
        .await
        .expect("state_getStorage answers");
    let raw = raw.expect("the account exists");
    AccountInfo::decode(&mut &raw[..])
        .expect("AccountInfo decodes")
        .data
        .free
}

#[test]
fn transfer_is_included_and_finalized_and_balances_change() {
    let node = Node::start(&["--dev", "--tmp"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = HttpClientBuilder::default().build(node.http_url()).unwrap();
        let ws = WsClientBuilder::default()
            .build(node.ws_url())
            .await
            .unwrap();

        // Chain properties as polkadot.js reads them.
        let props: serde_json::Value = http
            .request("system_properties", rpc_params![])
            .await
            .unwrap();
        assert_eq!(props["ss58Format"], 42);
        assert_eq!(props["tokenSymbol"], "BSMR");
        assert_eq!(props["tokenDecimals"], 12);

        let genesis: H256 = http
            .request("chain_getBlockHash", rpc_params![0])
            .await
            .unwrap();
        let nonce: u32 = http
            .request(
                "system_accountNextIndex",
                rpc_params![Sr25519Keyring::Alice.to_account_id().to_string()],
            )
            .await
            .unwrap();
        assert_eq!(nonce, 0);
        let alice_before = free_balance(&http, Sr25519Keyring::Alice, None).await;
        let bob_before = free_balance(&http, Sr25519Keyring::Bob, None).await;

        let amount = 1_000_000_000_000u128; // one token
        let xt = signed_transfer(
            &Sr25519Keyring::Alice.pair(),
            Sr25519Keyring::Bob.to_account_id(),
            amount,
            nonce,
            genesis,
        );
        let mut watch: Subscription<serde_json::Value> = ws
            .subscribe(
                "author_submitAndWatchExtrinsic",
                rpc_params![sp_core::Bytes(xt)],
                "author_unwatchExtrinsic",
            )
            .await
            .expect("the transfer is accepted into the pool");

        let mut in_block = None;
        let finalized: H256 = loop {
            let status = tokio::time::timeout(Duration::from_secs(60), watch.next())
                .await
                .expect("a status within 60 s")
                .expect("the subscription stays open")
                .expect("a well-formed status");
            if let Some(hash) = status.get("inBlock") {
                in_block = Some(hash.clone());
            }
            if let Some(hash) = status.get("finalized") {
                break serde_json::from_value(hash.clone()).unwrap();
            }
            assert!(
                !["invalid", "dropped", "usurped"]
                    .iter()
                    .any(|bad| status.get(bad).is_some() || status == *bad),
                "transfer failed: {status}"
            );
        };
        assert!(
            in_block.is_some(),
            "the transfer was reported in a block before finality"
        );

        // The chain's finalized head is at least that block.
        let head: H256 = http
            .request("chain_getFinalizedHead", rpc_params![])
            .await
            .unwrap();
        let head_header: serde_json::Value = http
            .request("chain_getHeader", rpc_params![head])
            .await
            .unwrap();
        let block_header: serde_json::Value = http
            .request("chain_getHeader", rpc_params![finalized])
            .await
            .unwrap();
        let number = |h: &serde_json::Value| {
            u64::from_str_radix(h["number"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
        };
        assert!(number(&head_header) >= number(&block_header));
        assert!(number(&block_header) >= 1);

        let alice_after = free_balance(&http, Sr25519Keyring::Alice, Some(finalized)).await;
        let bob_after = free_balance(&http, Sr25519Keyring::Bob, Some(finalized)).await;
        assert_eq!(
            bob_after,
            bob_before + amount,
            "Bob receives exactly the amount"
        );
        let fee = alice_before - amount - alice_after;
        assert!(fee > 0, "Alice pays a fee");
        assert!(fee < amount / 100, "the fee is small: {fee}");

        let nonce: u32 = http
            .request(
                "system_accountNextIndex",
                rpc_params![Sr25519Keyring::Alice.to_account_id().to_string()],
            )
            .await
            .unwrap();
        assert_eq!(nonce, 1);
    });
}

#[test]
fn malformed_rpc_calls_get_errors_and_the_node_keeps_running() {
    let mut node = Node::start(&["--dev", "--tmp"]);

    // Not JSON at all: a JSON-RPC parse error.
    let response = node.raw_post(b"{ this is not json");
    assert!(
        response.contains("-32700"),
        "parse error expected, got: {response}"
    );

    // Unknown method.
    let response =
        node.raw_post(br#"{"jsonrpc":"2.0","id":1,"method":"no_such_method","params":[]}"#);
    assert!(
        response.contains("-32601"),
        "method-not-found expected, got: {response}"
    );

    // Bad params: a block hash that is not hex, and an extrinsic that is garbage.
    let response = node.raw_post(
        br#"{"jsonrpc":"2.0","id":2,"method":"chain_getHeader","params":["not-a-hash"]}"#,
    );
    assert!(
        response.contains("-32602"),
        "invalid-params expected, got: {response}"
    );
    let response = node.raw_post(
        br#"{"jsonrpc":"2.0","id":3,"method":"author_submitExtrinsic","params":["0xdeadbeef"]}"#,
    );
    assert!(
        response.contains("\"error\""),
        "a bad extrinsic is rejected, got: {response}"
    );

    // The node still runs and answers.
    assert!(
        node.is_running(),
        "node died after malformed input; log:\n{}",
        node.log()
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let health: serde_json::Value = rt.block_on(async {
        let http = HttpClientBuilder::default().build(node.http_url()).unwrap();
        http.request("system_health", rpc_params![]).await.unwrap()
    });
    assert_eq!(health["isSyncing"], false);
}

#[test]
fn corrupt_chain_spec_is_rejected_with_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("bsmr-bad-spec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad-spec.json");
    std::fs::write(&bad, b"{ \"name\": \"broken\", \"genesis\": ").unwrap();

    let output = Command::new(node_binary())
        .args(["build-spec", "--chain"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!output.status.success(), "a corrupt chain spec must fail");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("invalid chain spec"),
        "unclear error: {stderr}"
    );
    assert!(
        stderr.contains("bad-spec.json"),
        "the error names the file: {stderr}"
    );

    let output = Command::new(node_binary())
        .args(["build-spec", "--chain", "/nonexistent/spec.json"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not found"), "unclear error: {stderr}");

    // A good spec still builds, raw too, and carries the chain properties.
    let output = Command::new(node_binary())
        .args(["build-spec", "--chain", "local", "--raw"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let spec: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(spec["id"], "bsmr_local");
    assert_eq!(spec["properties"]["tokenSymbol"], "BSMR");
    assert!(spec["genesis"]["raw"]["top"].is_object());
    let _ = std::fs::remove_dir_all(&dir);
}
