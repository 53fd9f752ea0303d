//! Multi-node tests of the leaderless engine: real `bsmr-node` processes (Alice, Bob, Charlie,
//! Dave on `--chain local`, n = 4, f = 1, q = 3) talking over loopback, driven over RPC.
//!
//! - 500 transfers from 20 accounts, submitted round-robin to all validators, are all finalized;
//!   every node has the same block hash and state root at every height, every block carries a
//!   BSMR certificate, and no balance is created (sum of balances == total issuance);
//! - a validator killed with SIGKILL does not stop the other three; restarted without block-sync
//!   peers, it catches up through the `/bsmr/fetch/2` request-response protocol alone (finished
//!   blocks for its core, then the certificates of the blocks it builds);
//! - a full node started late syncs from genesis, verifying every certificate;
//! - a Byzantine validator's conflicting finality votes are caught, reported with an unsigned
//!   extrinsic and recorded on chain against it alone;
//! - the validator a client submitted a transaction to is the one that proposes it;
//! - with two validators down (more than f) finality stops and nothing forks; when one returns,
//!   finality resumes (two validators on litep2p, two on libp2p).
//!
//! The tests share the machine's two cores, so they run one at a time.

mod common;

use bsmr_runtime::{MembershipCall, RuntimeCall};
use common::{
    account, free_ports, header_number, node_binary, signed_call, signed_transfer, total_issuance,
    Node,
};
use jsonrpsee::{
    core::client::ClientT, http_client::HttpClient, http_client::HttpClientBuilder, rpc_params,
};
use sp_core::{crypto::AccountId32, sr25519, Pair, H256};
use sp_keyring::Sr25519Keyring;
use std::{
    path::PathBuf,
    process::Command,
    sync::Mutex,
    time::{Duration, Instant},
};

static SERIAL: Mutex<()> = Mutex::new(());

const NAMES: [&str; 5] = ["alice", "bob", "charlie", "dave", "eve"];

/// One validator's fixed identity and ports, so it can be killed and restarted.
struct Slot {
    name: &'static str,
    base: PathBuf,
    rpc: u16,
    p2p: u16,
    node_key: String,
    peer_id: String,
}

struct Net {
    /// Extra arguments for every node.
    extra: Vec<String>,
    slots: Vec<Slot>,
    nodes: Vec<Option<Node>>,
    rt: tokio::runtime::Runtime,
    dir: PathBuf,
}

fn peer_id_of(node_key: &str, dir: &std::path::Path) -> String {
    let file = dir.join(format!("key-{node_key}"));
    std::fs::write(&file, node_key).unwrap();
    let out = Command::new(node_binary())
        .args(["key", "inspect-node-key", "--file"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

impl Net {
    fn new(tag: &str) -> Net {
        Net::with_args(tag, &[])
    }

    fn with_args(tag: &str, extra: &[&str]) -> Net {
        let dir = std::env::temp_dir().join(format!("bsmr-net-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ports = free_ports(10);
        let slots = (0..5)
            .map(|i| {
                let node_key = format!("{:064x}", i + 1);
                Slot {
                    name: NAMES[i],
                    base: dir.join(format!("node{i}")),
                    rpc: ports[2 * i],
                    p2p: ports[2 * i + 1],
                    peer_id: peer_id_of(&node_key, &dir),
                    node_key,
                }
            })
            .collect();
        Net {
            extra: extra.iter().map(|a| a.to_string()).collect(),
            slots,
            nodes: (0..5).map(|_| None).collect(),
            rt: tokio::runtime::Runtime::new().unwrap(),
            dir,
        }
    }

    fn bootnodes(&self, except: usize) -> Vec<String> {
        (0..4)
            .filter(|i| *i != except)
            .map(|i| {
                format!(
                    "/ip4/127.0.0.1/tcp/{}/p2p/{}",
                    self.slots[i].p2p, self.slots[i].peer_id
                )
            })
            .collect()
    }

    /// Start validator `i` (0..4) or, for i = 4, a full node.
    fn start(&mut self, i: usize) {
        self.start_with_key(i, if i < 4 { Some(NAMES[i]) } else { None })
    }

    /// Start node `i` as `--validator` with the dev key of `key` (e.g. "eve"), or as a full node.
    fn start_with_key(&mut self, i: usize, key: Option<&str>) {
        self.start_with(i, key, &[])
    }

    /// Start node `i` like `start_with_key`, with extra arguments for this start only.
    fn start_with(&mut self, i: usize, key: Option<&str>, extra: &[&str]) {
        let s = &self.slots[i];
        let mut args: Vec<String> = vec![
            "--chain".into(),
            "local".into(),
            "--base-path".into(),
            s.base.display().to_string(),
            "--node-key".into(),
            s.node_key.clone(),
            "--name".into(),
            s.name.into(),
        ];
        if let Some(key) = key {
            args.push(format!("--{key}"));
        }
        args.extend(self.extra.iter().cloned());
        args.extend(extra.iter().map(|a| a.to_string()));
        args.push("--bootnodes".into());
        args.extend(self.bootnodes(i));
        let refs: Vec<&str> = args.iter().map(|a| a.as_str()).collect();
        self.nodes[i] = Some(Node::start_on(&refs, s.rpc, s.p2p));
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut n) = self.nodes[i].take() {
            n.kill();
        }
    }

    fn http(&self, i: usize) -> HttpClient {
        HttpClientBuilder::default()
            .request_timeout(Duration::from_secs(30))
            .build(format!("http://127.0.0.1:{}", self.slots[i].rpc))
            .unwrap()
    }

    fn finalized(&self, i: usize) -> (u64, H256) {
        self.rt.block_on(async {
            let c = self.http(i);
            let head: H256 = c
                .request("chain_getFinalizedHead", rpc_params![])
                .await
                .unwrap();
            let h: serde_json::Value = c
                .request("chain_getHeader", rpc_params![head])
                .await
                .unwrap();
            (header_number(&h), head)
        })
    }

    fn wait_finalized(&self, nodes: &[usize], at_least: u64, timeout: Duration) {
        let start = Instant::now();
        loop {
            let heights: Vec<u64> = nodes.iter().map(|i| self.finalized(*i).0).collect();
            if heights.iter().all(|h| *h >= at_least) {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "finalized heights {heights:?} of nodes {nodes:?} did not reach {at_least}\n{}",
                self.logs(nodes)
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Fail if any of these nodes' logs shows a panic or a halted engine.
    fn assert_no_panic_or_halt(&self, nodes: impl IntoIterator<Item = usize>) {
        for i in nodes {
            let log = self.nodes[i].as_ref().unwrap().log();
            assert!(
                !log.contains("panicked"),
                "{} panicked:\n{log}",
                self.slots[i].name
            );
            assert!(
                !log.contains("bsmr engine halted"),
                "{} halted:\n{log}",
                self.slots[i].name
            );
        }
    }

    fn logs(&self, nodes: &[usize]) -> String {
        nodes
            .iter()
            .filter_map(|i| self.nodes[*i].as_ref().map(|n| (i, n)))
            .map(|(i, n)| {
                let log = n.log();
                let tail: Vec<&str> = log
                    .lines()
                    .rev()
                    .take(40)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                format!(
                    "---- {} log tail\n{}\n",
                    self.slots[*i].name,
                    tail.join("\n")
                )
            })
            .collect()
    }

    fn genesis(&self) -> H256 {
        self.rt.block_on(async {
            self.http(0)
                .request("chain_getBlockHash", rpc_params![0])
                .await
                .unwrap()
        })
    }

    fn submit(&self, i: usize, xt: Vec<u8>) {
        self.rt.block_on(async {
            let r: Result<H256, _> = self
                .http(i)
                .request("author_submitExtrinsic", rpc_params![sp_core::Bytes(xt)])
                .await;
            r.expect("the transfer enters the pool");
        });
    }

    /// Every node in `nodes` has the same hash and state root at heights 1..=upto, and every
    /// block carries a BSMR justification.
    fn assert_same_chain(&self, nodes: &[usize], upto: u64) {
        self.rt.block_on(async {
            for n in 1..=upto {
                let mut seen: Option<(H256, String)> = None;
                for i in nodes {
                    let (hash, block) = block_at(&self.http(*i), n).await;
                    let root = block["block"]["header"]["stateRoot"]
                        .as_str()
                        .unwrap()
                        .to_string();
                    let just = &block["justifications"];
                    let engine = just[0][0].as_array().map(|a| {
                        a.iter()
                            .map(|b| b.as_u64().unwrap() as u8)
                            .collect::<Vec<u8>>()
                    });
                    let engine_ok = engine.as_deref() == Some(b"BSMR")
                        || just[0][0] == serde_json::json!("0x42534d52");
                    assert!(
                        engine_ok,
                        "block #{n} on {} has no BSMR justification: {just}",
                        self.slots[*i].name
                    );
                    match &seen {
                        None => seen = Some((hash, root)),
                        Some(s) => assert_eq!(
                            *s,
                            (hash, root),
                            "block #{n} differs on {}",
                            self.slots[*i].name
                        ),
                    }
                }
            }
        });
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // `BSMR_TEST_LOGS=<dir>` keeps every node's log (for debugging a failed run).
        if let Ok(dir) = std::env::var("BSMR_TEST_LOGS") {
            let dir = PathBuf::from(dir);
            let _ = std::fs::create_dir_all(&dir);
            let tag = self
                .dir
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            for (slot, node) in self.slots.iter().zip(&self.nodes) {
                if let Some(n) = node {
                    let _ = std::fs::write(dir.join(format!("{tag}-{}.log", slot.name)), n.log());
                }
            }
        }
        for i in 0..5 {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn user(i: usize) -> sr25519::Pair {
    sr25519::Pair::from_string(&format!("//bsmr-test-user/{i}"), None).unwrap()
}

fn account_of(p: &sr25519::Pair) -> AccountId32 {
    AccountId32::from(p.public())
}

/// The nonce of `who` in the finalized state of node `i`.
/// Who the test transfers pay: the senders themselves and the dev accounts.
fn sinks_of(users: &[sr25519::Pair]) -> Vec<AccountId32> {
    users
        .iter()
        .map(account_of)
        .chain(Sr25519Keyring::well_known().map(|k| k.to_account_id()))
        .collect()
}

/// 500 transfers: 20 senders x 25, to `sinks` round-robin, submitted to nodes `0..nodes` in turn.
/// Returns the nonce each sender reaches once all are finalized.
fn submit_500_transfers(
    net: &Net,
    users: &[sr25519::Pair],
    sinks: &[AccountId32],
    nodes: usize,
    genesis: H256,
) -> Vec<(AccountId32, u32)> {
    assert_eq!(users.len(), 20, "20 senders");
    let mut k = 0usize;
    for nonce in 0..25u32 {
        for (j, u) in users.iter().enumerate() {
            let to = sinks[(j * 7 + nonce as usize * 3 + 1) % sinks.len()].clone();
            net.submit(
                k % nodes,
                signed_transfer(u, to, 1_000_000_000 + k as u128, nonce, genesis),
            );
            k += 1;
        }
    }
    assert_eq!(k, 500);
    users.iter().map(|u| (account_of(u), 25)).collect()
}

fn finalized_nonce(net: &Net, i: usize, who: &AccountId32) -> u32 {
    let (_, head) = net.finalized(i);
    net.rt
        .block_on(async { account(&net.http(i), who, Some(head)).await.nonce })
}

fn wait_nonces(net: &Net, nodes: &[usize], expect: &[(AccountId32, u32)], timeout: Duration) {
    let start = Instant::now();
    for i in nodes {
        for (who, n) in expect {
            loop {
                let got = finalized_nonce(net, *i, who);
                if got >= *n {
                    assert_eq!(got, *n, "{who} sent more transactions than submitted");
                    break;
                }
                assert!(
                    start.elapsed() < timeout,
                    "{}: {who} has finalized nonce {got}, expected {n}\n{}",
                    net.slots[*i].name,
                    net.logs(nodes)
                );
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    }
}

/// Alice funds `users` (her nonces 0..users.len()) through the four validators in turn and
/// waits until node 0 has finalized it.
fn fund_from_alice(net: &Net, users: &[sr25519::Pair], genesis: H256) {
    let alice = Sr25519Keyring::Alice;
    for (k, u) in users.iter().enumerate() {
        let xt = signed_transfer(
            &alice.pair(),
            account_of(u),
            1_000_000_000_000_000,
            k as u32,
            genesis,
        );
        net.submit(k % 4, xt);
    }
    wait_nonces(
        net,
        &[0],
        &[(alice.to_account_id(), users.len() as u32)],
        Duration::from_secs(120),
    );
}

#[test]
fn four_validators_finalize_500_transfers_survive_a_crash_and_serve_a_late_full_node() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut net = Net::new("main");
    for i in 0..4 {
        net.start(i);
    }
    net.wait_finalized(&[0, 1, 2, 3], 2, Duration::from_secs(120));
    let genesis = net.genesis();

    // Fund 20 senders from Alice, through all four nodes.
    let users: Vec<sr25519::Pair> = (0..20).map(user).collect();
    fund_from_alice(&net, &users, genesis);
    let alice = Sr25519Keyring::Alice;

    // 500 transfers: 20 senders x 25, to one another and to the dev accounts, round-robin.
    let sinks = sinks_of(&users);
    let expect = submit_500_transfers(&net, &users, &sinks, 4, genesis);
    wait_nonces(&net, &[0, 1, 2, 3], &expect, Duration::from_secs(300));

    // Same chain everywhere, certified; no balance created.
    let upto = (0..4).map(|i| net.finalized(i).0).min().unwrap();
    net.assert_same_chain(&[0, 1, 2, 3], upto);
    net.rt.block_on(async {
        let c = net.http(1);
        let head: H256 = c
            .request("chain_getBlockHash", rpc_params![upto])
            .await
            .unwrap();
        let mut sum = 0u128;
        for who in &sinks {
            let a = account(&c, who, Some(head)).await;
            sum += a.data.free + a.data.reserved;
        }
        assert_eq!(
            sum,
            total_issuance(&c, head).await,
            "balances are conserved (fees burned from issuance)"
        );
        let status: serde_json::Value = c.request("bsmr_status", rpc_params![]).await.unwrap();
        assert_eq!(
            (
                status["n"].as_u64(),
                status["f"].as_u64(),
                status["quorum"].as_u64()
            ),
            (Some(4), Some(1), Some(3))
        );
        assert!(
            status["committedCommands"].as_u64().unwrap() > 0,
            "{status}"
        );
        // Every validator checks its peers' replies and votes and signs its own.
        assert!(
            status["signaturesVerified"].as_u64().unwrap() > 0
                && status["signaturesMade"].as_u64().unwrap() > 0,
            "{status}"
        );
    });

    // SIGKILL Dave: the other three keep finalizing transfers.
    let dave_key = status_of(&net, 3)["localValidator"].clone();
    assert!(dave_key.is_string(), "dave is a validator");
    net.kill(3);
    let (before, _) = net.finalized(0);
    let bob = Sr25519Keyring::Bob;
    for n in 0..10u32 {
        net.submit(
            (n % 3) as usize,
            signed_transfer(&bob.pair(), alice.to_account_id(), 1_000_000, n, genesis),
        );
    }
    wait_nonces(
        &net,
        &[0, 1, 2],
        &[(bob.to_account_id(), 10)],
        Duration::from_secs(120),
    );
    net.wait_finalized(&[0, 1, 2], before + 3, Duration::from_secs(60));
    // Dave misses his next checkpoint turn; from then on the rotation skips him (so his turns
    // stop costing view changes), and every finalized header says so.
    let start = Instant::now();
    loop {
        let status = status_of(&net, 0);
        let skipped = status["skippedCheckpointLeaders"].as_array().unwrap();
        if skipped.contains(&dave_key) {
            assert_ne!(status["nextCheckpointLeader"], dave_key, "{status}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "dave's missed checkpoint turn is not on record: {status}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // Dave restarts from its database and catches up. He gets no block-sync peers (the
    // default peer set has no slots; the bsmr protocol has its own), so Substrate sync cannot
    // bring him the blocks he missed: his core fetches the finished blocks over the
    // request-response protocol, he builds them himself, and since their votes went out while
    // he was down he fetches their certificates over the same protocol.
    net.start_with(3, Some("dave"), &["--in-peers", "0", "--out-peers", "0"]);
    let (target, _) = net.finalized(0);
    net.wait_finalized(&[3], target, Duration::from_secs(120));
    net.assert_same_chain(&[0, 3], target);
    // `bsmr_status` is a snapshot the engine refreshes every 200 ms: wait until it shows the
    // caught-up chain before reading its counters.
    eventually(
        Duration::from_secs(10),
        || {
            let s = status_of(&net, 3);
            s["lastFinalized"].as_u64().unwrap_or(0) >= target
                && s["fetchesAnswered"].as_u64().unwrap_or(0) > 0
                && s["certificatesFetched"].as_u64().unwrap_or(0) > 0
        },
        || {
            format!(
                "dave caught up without fetching finished blocks and certificates: {}\n\
                 dave's log since his restart:\n{}",
                status_of(&net, 3),
                net.nodes[3].as_ref().map(|n| n.log()).unwrap_or_default()
            )
        },
    );

    // A full node started late syncs from genesis; it imports only certified blocks.
    net.start(4);
    let (target, _) = net.finalized(0);
    net.wait_finalized(&[4], target, Duration::from_secs(120));
    net.assert_same_chain(&[0, 4], target);
    net.rt.block_on(async {
        let status: serde_json::Value = net
            .http(4)
            .request("bsmr_status", rpc_params![])
            .await
            .unwrap();
        assert!(
            status["localValidator"].is_null(),
            "the follower is not a validator: {status}"
        );
    });
    net.assert_no_panic_or_halt(0..5);
}

/// The proposal rule: the validator a client submitted a transaction to proposes it. With the
/// partition-owner and anyone fallbacks pushed an hour out, a transaction reaches a block only if
/// its receiver proposes it, and each validator proposes exactly what was submitted to it.
#[test]
fn each_transaction_is_proposed_by_the_validator_a_client_submitted_it_to() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let hour = "3600000";
    let mut net = Net::with_args(
        "receiver",
        &["--owner-delay-ms", hour, "--anyone-delay-ms", hour],
    );
    for i in 0..4 {
        net.start(i);
    }
    net.wait_finalized(&[0, 1, 2, 3], 2, Duration::from_secs(120));
    let genesis = net.genesis();

    // Alice funds 8 users through all four nodes. (A receiver may propose one of these twice: a
    // later nonce ordered before an earlier one is skipped and proposed again.)
    let users: Vec<sr25519::Pair> = (100..108).map(user).collect();
    let alice = Sr25519Keyring::Alice;
    fund_from_alice(&net, &users, genesis);
    wait_nonces(
        &net,
        &[1, 2, 3],
        &[(alice.to_account_id(), 8)],
        Duration::from_secs(60),
    );

    // Then each user sends one independent transfer through node j % 4: two per node. Each is
    // proposed exactly once, by the node it was submitted to.
    let proposed = |net: &Net, i: usize| -> u64 {
        let status: serde_json::Value = net
            .rt
            .block_on(net.http(i).request("bsmr_status", rpc_params![]))
            .unwrap();
        status["proposedTxs"]
            .as_u64()
            .expect("bsmr_status reports proposedTxs")
    };
    // A funding transfer skipped by one block (a later nonce ordered first) and applied in a
    // later one as another validator's carried copy may still be proposed again by its
    // receiver a grace period after that block is final, if its pool has not dropped it yet:
    // count from when no node's proposals have moved for 3 s.
    let mut before: Vec<u64> = (0..4).map(|i| proposed(&net, i)).collect();
    let mut still_since = Instant::now();
    eventually(
        Duration::from_secs(60),
        || {
            let now: Vec<u64> = (0..4).map(|i| proposed(&net, i)).collect();
            if now != before {
                before = now;
                still_since = Instant::now();
            }
            still_since.elapsed() >= Duration::from_secs(3)
        },
        || "the funding transfers' proposals never settled".to_string(),
    );
    for (j, u) in users.iter().enumerate() {
        let xt = signed_transfer(u, alice.to_account_id(), 1_000_000_000, 0, genesis);
        net.submit(j % 4, xt);
    }
    let expect: Vec<(AccountId32, u32)> = users.iter().map(|u| (account_of(u), 1)).collect();
    wait_nonces(&net, &[0, 1, 2, 3], &expect, Duration::from_secs(120));
    for (i, b) in before.iter().enumerate() {
        assert_eq!(
            proposed(&net, i) - b,
            2,
            "{} proposes exactly the two transfers submitted to it",
            net.slots[i].name
        );
    }
}

#[test]
fn more_than_f_validators_down_stops_finality_without_forking_then_resumes_on_mixed_backends() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Mixed network backends: Alice and Bob on litep2p (the default), Charlie and Dave on
    // libp2p, so the bsmr notification and fetch protocols must work on both and across them
    // (no quorum of three without cross-backend traffic).
    let mut net = Net::new("quorum");
    net.start(0);
    net.start(1);
    net.extra = vec!["--network-backend".into(), "libp2p".into()];
    net.start(2);
    net.start(3);
    net.wait_finalized(&[0, 1, 2, 3], 3, Duration::from_secs(120));

    net.kill(2);
    net.kill(3);
    // Blocks whose votes were cast before the kill may still finalize (a missed certificate is
    // fetched after 4 s): wait until both heights have stood still for 10 s. With finality
    // going on with two of four, they never do.
    let mut last = (net.finalized(0).0, net.finalized(1).0);
    let mut still_since = Instant::now();
    eventually(
        Duration::from_secs(60),
        || {
            let now = (net.finalized(0).0, net.finalized(1).0);
            if now != last {
                (last, still_since) = (now, Instant::now());
            }
            still_since.elapsed() >= Duration::from_secs(10)
        },
        || {
            format!(
                "two of four validators down: finality did not stop\n{}",
                net.logs(&[0, 1])
            )
        },
    );
    let (a, _) = net.finalized(0);
    let (b, _) = net.finalized(1);
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(
        net.finalized(0).0,
        a,
        "two of four validators down: finality must stop"
    );
    assert_eq!(net.finalized(1).0, b);
    net.assert_same_chain(&[0, 1], a.min(b));

    net.start(2);
    net.wait_finalized(&[0, 1, 2], a.max(b) + 2, Duration::from_secs(120));
    let upto = (0..3).map(|i| net.finalized(i).0).min().unwrap();
    net.assert_same_chain(&[0, 1, 2], upto);
}

#[test]
fn a_validator_added_through_sudo_joins_at_the_epoch_boundary_and_signs() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut net = Net::new("epoch");
    for i in 0..4 {
        net.start(i);
    }
    // Eve runs from genesis with her key, following until she is a member.
    net.start_with_key(4, Some("eve"));
    net.wait_finalized(&[0, 1, 2, 3, 4], 2, Duration::from_secs(120));
    let genesis = net.genesis();
    let status = |i: usize| status_of(&net, i);
    assert!(
        status(4)["localValidator"].is_null(),
        "Eve is not a member yet"
    );

    let eve = Sr25519Keyring::Eve;
    let add = RuntimeCall::Sudo(pallet_sudo::Call::sudo {
        call: Box::new(RuntimeCall::Membership(MembershipCall::add_member {
            who: eve.to_account_id(),
            key: eve.public().into(),
        })),
    });
    net.submit(
        1,
        signed_call(&Sr25519Keyring::Alice.pair(), add, 0, genesis),
    );

    // The epoch boundary is block 20 (epoch length 20): epoch 1 takes over at block 22.
    eventually(
        Duration::from_secs(180),
        || status(0)["epoch"].as_u64() == Some(1),
        || format!("no epoch change: {}\n{}", status(0), net.logs(&[0, 4])),
    );
    let s = status(0);
    assert_eq!(
        (s["n"].as_u64(), s["f"].as_u64(), s["quorum"].as_u64()),
        (Some(5), Some(1), Some(4)),
        "{s}"
    );
    let (switched_at, _) = net.finalized(0);
    net.wait_finalized(&[0, 1, 2, 3, 4], switched_at + 4, Duration::from_secs(120));
    // Eve is a validator now: her replica finishes blocks and transfers keep finalizing.
    eventually(
        Duration::from_secs(60),
        || status(4)["epoch"].as_u64() == Some(1),
        || {
            format!(
                "Eve's engine stays in epoch 0: {}\n{}",
                status(4),
                net.logs(&[4])
            )
        },
    );
    let s = status(4);
    assert!(!s["localValidator"].is_null(), "Eve signs in epoch 1: {s}");
    let bob = Sr25519Keyring::Bob;
    net.submit(
        4,
        signed_transfer(&bob.pair(), eve.to_account_id(), 5_000_000, 0, genesis),
    );
    wait_nonces(
        &net,
        &[0, 4],
        &[(bob.to_account_id(), 1)],
        Duration::from_secs(120),
    );
    let from = status(4)["lastBlock"].as_u64().unwrap();
    eventually(
        Duration::from_secs(60),
        || status(4)["lastBlock"].as_u64().unwrap() >= from + 2,
        || format!("Eve's replica does not finish blocks\n{}", net.logs(&[4])),
    );
    let upto = (0..5).map(|i| net.finalized(i).0).min().unwrap();
    net.assert_same_chain(&[0, 1, 2, 3, 4], upto);
    // Eve votes: certificates since her epoch began carry her signature (a node's certificate
    // holds the votes it had when it finalized, so look at every node's).
    assert!(
        signs_recent_certificates(
            &net,
            &[0, 1, 2, 3, 4],
            eve.public().0,
            upto,
            upto.saturating_sub(switched_at)
        ),
        "no certificate since epoch 1 carries Eve's signature\n{}",
        net.logs(&[4])
    );
}

/// Dave is Byzantine: with each finality vote he signs a conflicting one. The other validators
/// catch the equivocation, their engines report the proof with an unsigned extrinsic, one of them
/// proposes it, and the runtime records the offence against Dave (and nobody else) while the
/// chain keeps finalizing.
#[test]
fn a_validator_that_equivocates_its_finality_votes_is_reported_on_chain() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut net = Net::new("equivocation");
    for i in 0..3 {
        net.start(i);
    }
    net.start_with(3, Some("dave"), &["--unsafe-equivocate-finality-votes"]);
    net.wait_finalized(&[0, 1, 2], 2, Duration::from_secs(120));
    let keys: Vec<[u8; 32]> = (0..4).map(|i| validator_key(&net, i)).collect();
    let start = Instant::now();
    loop {
        if let Some(kind) = offence_against(&net, 0, &keys[3]) {
            // MisbehaviourKind::FinalityEquivocation is variant 5.
            assert_eq!(kind, "0x05", "the offence is a finality equivocation");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no offence recorded against dave: {}",
            net.logs(&[0])
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let (height, _) = net.finalized(0);
    net.wait_finalized(&[0, 1, 2], height + 3, Duration::from_secs(60));
    let (height, _) = net.finalized(0);
    net.assert_same_chain(&[0, 1, 2], height);
    for (key, slot) in keys.iter().zip(&net.slots).take(3) {
        assert_eq!(
            offence_against(&net, 0, key),
            None,
            "{} is correct and must not be convicted",
            slot.name
        );
    }
    // A validator that already finalized a height ignores later votes for it, so not every
    // validator sees both of Dave's votes; some do.
    let caught = misbehaviour_proofs(&net, 0..3);
    assert!(caught > 0, "no validator counted the equivocation");
    assert!(
        (0..3).any(|i| net.nodes[i]
            .as_ref()
            .unwrap()
            .log()
            .contains("reported finality equivocation")),
        "an engine submitted the report"
    );
}

/// The local validator key of node `i` (from `bsmr_status`).
fn validator_key(net: &Net, i: usize) -> [u8; 32] {
    let key = status_of(net, i)["localValidator"]
        .as_str()
        .expect("a validator")
        .to_string();
    hex::decode(key.trim_start_matches("0x"))
        .expect("hex")
        .try_into()
        .expect("32 bytes")
}

/// Misbehaviour proofs these nodes' engines produced, summed (`bsmr_status`).
fn misbehaviour_proofs(net: &Net, nodes: impl IntoIterator<Item = usize>) -> u64 {
    nodes
        .into_iter()
        .map(|i| {
            status_of(net, i)["misbehaviourProofs"]
                .as_u64()
                .unwrap_or(0)
        })
        .sum()
}

/// The finalized `Membership::Offences(epoch 0, key)` entry at node `i`, if any.
fn offence_against(net: &Net, i: usize, key: &[u8; 32]) -> Option<String> {
    // Twox64Concat epoch, Blake2_128Concat key.
    let mut k = sp_io::hashing::twox_128(b"Membership").to_vec();
    k.extend(sp_io::hashing::twox_128(b"Offences"));
    k.extend(sp_io::hashing::twox_64(&0u64.to_le_bytes()));
    k.extend(0u64.to_le_bytes());
    k.extend(sp_io::hashing::blake2_128(key));
    k.extend(key);
    let (_, hash) = net.finalized(i);
    net.rt
        .block_on(net.http(i).request(
            "state_getStorage",
            rpc_params![format!("0x{}", hex::encode(k)), hash],
        ))
        .unwrap()
}

/// Dave runs the simulator's mutation adversary over every consensus message he sends
/// (`--unsafe-byzantine mutate`: per recipient, messages passed on, mutated in one field and
/// re-signed, sent twice, replaced by replays, or dropped). 500 transfers submitted to the three
/// correct validators are all finalized, with the same blocks on the three, no correct validator
/// has an offence on chain, and none panics or halts.
#[test]
fn a_validator_under_mutation_fuzzing_cannot_stop_or_split_the_correct_ones() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut net = Net::new("mutate");
    for i in 0..3 {
        net.start(i);
    }
    net.start_with(3, Some("dave"), &["--unsafe-byzantine", "mutate"]);
    net.wait_finalized(&[0, 1, 2], 2, Duration::from_secs(120));
    let genesis = net.genesis();
    let users: Vec<sr25519::Pair> = (100..120).map(user).collect();
    fund_from_alice(&net, &users, genesis);
    let sinks = sinks_of(&users);
    let expect = submit_500_transfers(&net, &users, &sinks, 3, genesis);
    wait_nonces(&net, &[0, 1, 2], &expect, Duration::from_secs(400));
    let upto = (0..3).map(|i| net.finalized(i).0).min().unwrap();
    net.assert_same_chain(&[0, 1, 2], upto);
    let dave_log = net.nodes[3].as_ref().unwrap().log();
    assert!(
        dave_log.contains("--unsafe-byzantine mutate is set"),
        "dave ran the adversary"
    );
    for i in 0..3 {
        let key = validator_key(&net, i);
        assert_eq!(
            offence_against(&net, 0, &key),
            None,
            "{} is correct and must not be convicted",
            net.slots[i].name
        );
    }
    net.assert_no_panic_or_halt(0..3);
    // Dave's variants did reach them: conflicting signed messages were proven.
    let proofs = misbehaviour_proofs(&net, 0..3);
    assert!(
        proofs > 0,
        "no correct validator proved dave's mutated messages"
    );
    // The correct validators keep finalizing after the load.
    let (height, _) = net.finalized(0);
    net.wait_finalized(&[0, 1, 2], height + 3, Duration::from_secs(120));
}

/// A leaderless validator holds its clients' transactions back from gossip
/// (`--gossip-hold-ms`) and gossips only those not ordered when the hold ends, unless their
/// sender is seen in another member's batch too. Alice, Bob and Charlie hold for 30 s: their
/// batches order what their clients send long before, so they gossip none of it. Dave holds for
/// 1 s and takes part in no consensus (`--unsafe-byzantine silent`), so nothing submitted to
/// him is ever ordered: after the hold he gossips it, and the others take it over and propose
/// it themselves.
#[test]
fn a_receiver_gossips_only_what_its_batches_did_not_order_within_the_hold() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut net = Net::with_args(
        "hold",
        &["--owner-delay-ms", "500", "--anyone-delay-ms", "1000"],
    );
    for (i, name) in NAMES.iter().enumerate().take(3) {
        net.start_with(i, Some(name), &["--gossip-hold-ms", "30000"]);
    }
    net.start_with(
        3,
        Some("dave"),
        &["--unsafe-byzantine", "silent", "--gossip-hold-ms", "1000"],
    );
    net.wait_finalized(&[0, 1, 2], 2, Duration::from_secs(120));
    let genesis = net.genesis();
    let users: Vec<sr25519::Pair> = (200..216).map(user).collect();
    fund_from_alice(&net, &users, genesis);
    let (to_dave, to_others) = users.split_at(8);
    let counts = |net: &Net, key: &str| -> Vec<u64> {
        (0..4)
            .map(|i| status_of(net, i)[key].as_u64().unwrap_or(0))
            .collect()
    };
    let alice = Sr25519Keyring::Alice.to_account_id();
    let sent = |users: &[sr25519::Pair]| -> Vec<(AccountId32, u32)> {
        users.iter().map(|u| (account_of(u), 1)).collect()
    };

    // Eight transfers through Dave: gossiped after his hold, taken over by the others.
    let (gossiped, from_peers) = (
        counts(&net, "clientTxsGossiped"),
        counts(&net, "txsFromPeers"),
    );
    for u in to_dave {
        net.submit(3, signed_transfer(u, alice.clone(), 1_000_000, 0, genesis));
    }
    wait_nonces(&net, &[0, 1, 2], &sent(to_dave), Duration::from_secs(120));
    // `bsmr_status` is refreshed every 200 ms.
    eventually(
        Duration::from_secs(10),
        || {
            let (g, p) = (
                counts(&net, "clientTxsGossiped"),
                counts(&net, "txsFromPeers"),
            );
            let received: u64 = (0..3).map(|i| p[i] - from_peers[i]).sum();
            g[3] - gossiped[3] >= to_dave.len() as u64 && received >= to_dave.len() as u64
        },
        || {
            format!(
                "dave gossiped {:?} (before: {gossiped:?}), the others imported {:?} from peers \
                 (before: {from_peers:?})",
                counts(&net, "clientTxsGossiped"),
                counts(&net, "txsFromPeers")
            )
        },
    );

    // Eight through Alice, Bob and Charlie, from senders no other validator saw: ordered by
    // their receivers' batches, gossiped by none.
    let gossiped = counts(&net, "clientTxsGossiped");
    for (j, u) in to_others.iter().enumerate() {
        net.submit(
            j % 3,
            signed_transfer(u, alice.clone(), 1_000_000, 0, genesis),
        );
    }
    wait_nonces(&net, &[0, 1, 2], &sent(to_others), Duration::from_secs(120));
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        counts(&net, "clientTxsGossiped")[..3],
        gossiped[..3],
        "the correct validators' batches ordered their clients' transactions: none gossiped"
    );
    net.assert_no_panic_or_halt(0..3);
}

/// Dave is down for longer than his peers keep finished blocks (`--retain-sync-blocks 16`, 250 ms
/// blocks, 60+ blocks missed): Substrate sync brings his chain up to date, and his consensus
/// state rejoins from the certified chain (the finalized head's position plus what f+1 peers
/// vouch is settled there). He then builds and signs blocks and proposes transactions again.
#[test]
fn a_validator_down_longer_than_peers_keep_blocks_rejoins_from_the_chain() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let hour = "3600000";
    // Only the validator a client submits to proposes a transaction: one that reaches a block
    // through Dave shows that he proposes again.
    let mut net = Net::with_args(
        "rejoin",
        &[
            "--block-time-ms",
            "250",
            "--retain-sync-blocks",
            "16",
            "--owner-delay-ms",
            hour,
            "--anyone-delay-ms",
            hour,
        ],
    );
    for i in 0..4 {
        net.start(i);
    }
    net.wait_finalized(&[0, 1, 2, 3], 3, Duration::from_secs(120));
    let genesis = net.genesis();
    let dave = Sr25519Keyring::Dave;
    net.submit(
        3,
        signed_transfer(
            &dave.pair(),
            account_of(&user(200)),
            1_000_000_000,
            0,
            genesis,
        ),
    );
    wait_nonces(
        &net,
        &[0, 3],
        &[(dave.to_account_id(), 1)],
        Duration::from_secs(60),
    );
    net.kill(3);
    let (down_at, _) = net.finalized(0);
    net.wait_finalized(&[0, 1, 2], down_at + 64, Duration::from_secs(120));
    net.start(3);
    let status = |i: usize| status_of(&net, i);
    eventually(
        Duration::from_secs(120),
        || {
            // The log line may reach the captured output a moment after the status counter.
            let logged = net.nodes[3]
                .as_ref()
                .unwrap()
                .log()
                .contains("rejoined from the certified chain");
            status(3)["rejoins"].as_u64().unwrap_or(0) >= 1 && logged
        },
        || format!("Dave did not rejoin: {}\n{}", status(3), net.logs(&[3])),
    );
    // His consensus state keeps pace with the network afterwards.
    let from = status(3)["lastBlock"].as_u64().unwrap();
    net.wait_finalized(&[0, 1, 2, 3], from + 20, Duration::from_secs(60));
    let (chain, _) = net.finalized(0);
    eventually(
        Duration::from_secs(30),
        || status(3)["lastBlock"].as_u64().unwrap() >= chain,
        || {
            format!(
                "Dave's consensus state is at #{}, the chain was at #{chain}\n{}",
                status(3)["lastBlock"],
                net.logs(&[3])
            )
        },
    );
    // He proposes again: a transfer submitted only to him is finalized.
    net.submit(
        3,
        signed_transfer(
            &dave.pair(),
            account_of(&user(200)),
            1_000_000_000,
            1,
            genesis,
        ),
    );
    wait_nonces(
        &net,
        &[0, 1, 2, 3],
        &[(dave.to_account_id(), 2)],
        Duration::from_secs(60),
    );
    // He builds and votes: certificates since he caught up carry his signature.
    let upto = (0..4).map(|i| net.finalized(i).0).min().unwrap();
    net.assert_same_chain(&[0, 1, 2, 3], upto);
    assert!(
        signs_recent_certificates(
            &net,
            &[0, 1, 2, 3],
            dave.public().0,
            upto,
            upto.saturating_sub(chain)
        ),
        "no certificate since Dave caught up carries his signature\n{}",
        net.logs(&[3])
    );
}

/// A block time longer than the default checkpoint view timeout (4 s): a leader announces its
/// cut when its own due tick comes, so the view timer must outlast a block time. Before the
/// engine raised it, most blocks needed a view change and correct validators were suspended
/// from checkpoint turns. The count starts once the network is whole: validators started one
/// after another may miss their first turns while they connect and catch up.
#[test]
fn a_long_block_time_needs_no_view_changes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut net = Net::with_args("long-blocks", &["--block-time-ms", "6000"]);
    for i in 0..4 {
        net.start(i);
    }
    net.wait_finalized(&[0, 1, 2, 3], 2, Duration::from_secs(120));
    eventually(
        Duration::from_secs(60),
        || (0..4).all(|i| status_of(&net, i)["connectedValidators"].as_u64() == Some(3)),
        || {
            format!(
                "the validators did not all connect\n{}",
                net.logs(&[0, 1, 2, 3])
            )
        },
    );
    // One rotation of checkpoint turns after everyone connected: each validator has caught up.
    let (connected_at, _) = net.finalized(0);
    net.wait_finalized(&[0, 1, 2, 3], connected_at + 4, Duration::from_secs(120));
    let view_changes = |net: &Net| -> Vec<u64> {
        (0..4)
            .map(|i| status_of(net, i)["viewChanges"].as_u64().unwrap())
            .collect()
    };
    let before = view_changes(&net);
    let (from, _) = net.finalized(0);
    net.wait_finalized(&[0, 1, 2, 3], from + 12, Duration::from_secs(120));
    assert_eq!(
        view_changes(&net),
        before,
        "view changes on a healthy network with 6 s blocks\n{}",
        net.logs(&[0])
    );
}

/// The hash of block `n` and the block with its justifications, as `c`'s node has them.
async fn block_at(c: &HttpClient, n: u64) -> (H256, serde_json::Value) {
    let hash: H256 = c
        .request("chain_getBlockHash", rpc_params![n])
        .await
        .unwrap();
    let block: serde_json::Value = c
        .request("chain_getBlock", rpc_params![hash])
        .await
        .unwrap();
    (hash, block)
}

/// The BSMR certificate of block `n` as node `i` stores it.
fn certificate(
    net: &Net,
    i: usize,
    n: u64,
) -> sc_consensus_bsmr::justification::FinalityCertificate {
    net.rt.block_on(async {
        let (_, block) = block_at(&net.http(i), n).await;
        let j = &block["justifications"][0][1];
        let raw: Vec<u8> = match j.as_str() {
            Some(hex_bytes) => hex::decode(hex_bytes.trim_start_matches("0x")).unwrap(),
            None => j
                .as_array()
                .expect("a justification")
                .iter()
                .map(|b| b.as_u64().unwrap() as u8)
                .collect(),
        };
        sc_consensus_bsmr::justification::FinalityCertificate::decode_untrusted(&raw)
            .expect("a BSMR certificate")
    })
}

/// Whether one of the certificates of blocks `upto - depth ..= upto`, as one of `nodes` stores
/// it, carries `key`'s signature (a node's certificate holds the votes it had when it finalized,
/// so a slow voter's signature may be only in some nodes' copies).
fn signs_recent_certificates(
    net: &Net,
    nodes: &[usize],
    key: [u8; 32],
    upto: u64,
    depth: u64,
) -> bool {
    (upto.saturating_sub(depth)..=upto).any(|n| {
        nodes.iter().any(|i| {
            certificate(net, *i, n)
                .signatures
                .iter()
                .any(|(who, _)| *who == key)
        })
    })
}

/// Poll `holds` every 250 ms until it is true; fail with `what()` after `timeout`.
fn eventually(timeout: Duration, mut holds: impl FnMut() -> bool, what: impl Fn() -> String) {
    let start = Instant::now();
    while !holds() {
        assert!(start.elapsed() < timeout, "{}", what());
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `bsmr_status` of node `i`.
fn status_of(net: &Net, i: usize) -> serde_json::Value {
    net.rt
        .block_on(net.http(i).request("bsmr_status", rpc_params![]))
        .unwrap()
}
