//! A `bsmr-node --dev --tmp` process for client tests: started on free ports, its log kept to
//! explain failures, killed when dropped.

use std::fmt::Display;
use std::future::Future;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How much of the node's log a failure shows.
const LOG_TAIL_LINES: usize = 40;

/// A `bsmr-node --dev --tmp` process on free ports, killed when dropped. Its stderr (the log) is
/// kept to explain failures.
pub struct DevNode {
    child: Child,
    rpc_port: u16,
    log: Arc<Mutex<String>>,
}

impl DevNode {
    pub fn start() -> DevNode {
        let binary = super::node();
        assert!(
            binary.exists(),
            "bsmr-node is built next to bsmr-bench: {}",
            binary.display()
        );
        let (rpc_port, p2p_port) = free_ports();
        let mut child = Command::new(&binary)
            .args(["--dev", "--tmp"])
            .args(["--rpc-port", &rpc_port.to_string()])
            .args(["--port", &p2p_port.to_string()])
            .args(["--no-prometheus", "--no-telemetry", "--no-mdns"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let log = Arc::new(Mutex::new(String::new()));
        keep_log(child.stderr.take().expect("stderr is piped"), log.clone());
        DevNode {
            child,
            rpc_port,
            log,
        }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.rpc_port)
    }

    /// How the process ended, if it has.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .try_wait()
            .expect("the node process can be polled")
    }

    /// The last lines of the node's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = self
            .log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
        format!("last {LOG_TAIL_LINES} lines of the node's log:\n{tail}")
    }

    /// Await `work`; fail the test, showing the node's log, if it errs or takes over `limit`.
    pub async fn within<T, E: Display>(
        &self,
        what: &str,
        limit: Duration,
        work: impl Future<Output = Result<T, E>>,
    ) -> T {
        match tokio::time::timeout(limit, work).await {
            Ok(Ok(value)) => value,
            Ok(Err(e)) => panic!("{what} failed: {e}\n{}", self.log_tail()),
            Err(_) => panic!("{what}: nothing within {limit:?}\n{}", self.log_tail()),
        }
    }
}

impl Drop for DevNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two distinct ports nobody listens on now (both are held while they are read).
fn free_ports() -> (u16, u16) {
    let rpc = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let p2p = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = |listener: &TcpListener| listener.local_addr().expect("a bound port").port();
    (port(&rpc), port(&p2p))
}

/// Append every line `stream` yields to `log`, on a thread of its own.
fn keep_log(stream: impl Read + Send + 'static, log: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            let mut log = log.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            log.push_str(&line);
            log.push('\n');
        }
    });
}
