//! Helpers for the process tests: start the real `bsmr-node`, find free ports, talk JSON-RPC,
//! sign transfers, read storage.

#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use codec::Decode;
use jsonrpsee::{core::client::ClientT, http_client::HttpClientBuilder, rpc_params};
use sp_core::{crypto::AccountId32, H256};

/// An account as frame-system stores it.
pub type AccountInfo = frame_system::AccountInfo<u32, pallet_balances::AccountData<u128>>;

// Not every test crate uses both.
#[allow(unused_imports)]
pub use bsmr_runtime::signing::{signed_call, signed_transfer};
use bsmr_runtime::Runtime;

/// Read `who`'s account at block `at` (None = best) through `state_getStorage`.
pub async fn account(client: &impl ClientT, who: &AccountId32, at: Option<H256>) -> AccountInfo {
    let key = frame_system::Account::<Runtime>::hashed_key_for(who);
    let raw: Option<sp_core::Bytes> = client
        .request("state_getStorage", rpc_params![sp_core::Bytes(key), at])
        .await
        .expect("state_getStorage answers");
    raw.map(|r| AccountInfo::decode(&mut &r[..]).expect("AccountInfo decodes"))
        .unwrap_or_default()
}

/// Balances' total issuance at `at`.
pub async fn total_issuance(client: &impl ClientT, at: H256) -> u128 {
    let key = pallet_balances::TotalIssuance::<Runtime>::hashed_key().to_vec();
    let raw: Option<sp_core::Bytes> = client
        .request(
            "state_getStorage",
            rpc_params![sp_core::Bytes(key), Some(at)],
        )
        .await
        .expect("answers");
    u128::decode(&mut &raw.expect("total issuance is set")[..]).unwrap()
}

/// Parse a hex block number from a header.
pub fn header_number(h: &serde_json::Value) -> u64 {
    u64::from_str_radix(
        h["number"]
            .as_str()
            .expect("a header has a number")
            .trim_start_matches("0x"),
        16,
    )
    .unwrap()
}

/// Path of the node binary cargo built for these tests.
pub fn node_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bsmr-node"))
}

/// `n` distinct ports nobody listens on right now (all held while they are chosen, so no two
/// are the same).
pub fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// A running `bsmr-node`, killed when dropped. Its log is kept for assertions.
pub struct Node {
    child: Child,
    /// The node's JSON-RPC port (HTTP and WebSocket).
    pub rpc_port: u16,
    log: Arc<Mutex<String>>,
}

impl Node {
    /// Start `bsmr-node` with `args` plus the ports it needs, and wait until RPC answers.
    pub fn start(args: &[&str]) -> Node {
        let ports = free_ports(2);
        Self::start_on(args, ports[0], ports[1])
    }

    /// Start `bsmr-node` with `args` on the given RPC and p2p ports, and wait until RPC answers.
    pub fn start_on(args: &[&str], rpc_port: u16, p2p_port: u16) -> Node {
        let mut child = Command::new(node_binary())
            .args(args)
            .args(["--rpc-port", &rpc_port.to_string()])
            .args(["--port", &p2p_port.to_string()])
            .args(["--no-prometheus", "--no-telemetry", "--no-mdns"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("bsmr-node starts");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let node = Node {
            child,
            rpc_port,
            log,
        };
        node.wait_for_rpc(Duration::from_secs(120));
        node
    }

    /// The node's log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// HTTP URL of the RPC endpoint.
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.rpc_port)
    }

    /// WebSocket URL of the RPC endpoint.
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.rpc_port)
    }

    /// SIGKILL the process (no clean shutdown) and wait for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn wait_for_rpc(&self, timeout: Duration) {
        let started = Instant::now();
        let rt = tokio::runtime::Runtime::new().unwrap();
        loop {
            let ok = rt.block_on(async {
                let client = HttpClientBuilder::default().build(self.http_url()).ok()?;
                client
                    .request::<serde_json::Value, _>("system_health", rpc_params![])
                    .await
                    .ok()
            });
            if ok.is_some() {
                return;
            }
            assert!(
                started.elapsed() < timeout,
                "bsmr-node did not answer RPC within {timeout:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Send raw bytes as an HTTP POST body to the RPC port and return the response body.
    pub fn raw_post(&self, body: &[u8]) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.rpc_port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let head = format!(
            "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
