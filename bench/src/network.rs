//! A local network started by the bench (bsmr-node, or the reference chain's node): n validators
//! (`--chain local`: Alice..Dave) on loopback, each in its own temporary base path, killed and
//! removed on drop. With `wan`, each validator runs in its own network namespace in a region of
//! the WAN matrix, reachable only through the bench's delaying relay (see [`crate::wan`]).

use crate::wan::{self, Namespace, Target, REGION_MS, VALIDATOR_REGIONS};
use std::collections::BTreeSet;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NAMES: [&str; 4] = ["alice", "bob", "charlie", "dave"];

/// The index (in `alice, bob, charlie, dave` order) of the validator that comes first in the
/// canonical validator order (by account; the membership pallet sorts the set): bsmr's
/// leader-based baseline makes it the primary, and the bench's crash and far-client scenarios
/// are defined by it, for the reference chain (which has no fixed leader) too.
pub fn first_of_set() -> usize {
    use sp_keyring::Sr25519Keyring::{Alice, Bob, Charlie, Dave};
    (0..NAMES.len())
        .min_by_key(|&i| [Alice, Bob, Charlie, Dave][i].public().0)
        .expect("four names; qed")
}

/// A free port of this namespace not in `taken` (the namespaces share the port plan).
fn free_port(taken: &mut BTreeSet<u16>) -> Result<u16, String> {
    for _ in 0..100 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| format!("no free port: {e}"))?;
        if taken.insert(port) {
            return Ok(port);
        }
    }
    Err("no free port".into())
}

/// One validator process.
pub struct Validator {
    /// Name (alice, ...).
    pub name: &'static str,
    /// RPC port.
    pub rpc: u16,
    /// WAN region (index into the region matrix), when the network emulates one.
    pub region: Option<usize>,
    p2p: u16,
    node_key: String,
    peer_id: String,
    base: PathBuf,
    child: Option<Child>,
    /// Its own CPU budget (`--cpu-quota`); dropped after the network, once the node is gone.
    quota: Option<crate::cgroup::CpuQuota>,
}

/// A running local network.
pub struct LocalNet {
    node: PathBuf,
    dir: PathBuf,
    /// Log file prefix (folder plus run label).
    logs: PathBuf,
    extra: Vec<String>,
    /// The validators.
    pub validators: Vec<Validator>,
    /// Namespaces and relays of a WAN network.
    wan: Option<Wan>,
    /// Bytes per second of each WAN link direction.
    link_rate: Option<u64>,
}

/// How far apart the validators of a network are.
#[derive(Clone, Copy, Debug, Default)]
pub struct Isolation {
    /// Each validator in its own namespace and region, linked through delaying relays.
    pub wan: bool,
    /// With `wan`: each direction of each validator link sends at most this many bytes per
    /// second.
    pub link_rate: Option<u64>,
    /// Each validator in its own cgroup of this many cores (needs root).
    pub cpu_quota: Option<f64>,
}

/// A WAN network's namespaces (one per validator, same order) and relay tasks.
struct Wan {
    namespaces: Vec<Namespace>,
    relays: Vec<tokio::task::JoinHandle<()>>,
}

impl LocalNet {
    /// Start the four `--chain local` validators of `node` (bsmr-node, or any Substrate node with
    /// a `local` chain of Alice..Dave) with `extra` args; `mode` names the run.
    /// Node logs go to `logs` (named `<log_prefix>-<name>.log`, kept) or to the network's
    /// temporary folder (deleted with it). With `wan`, validator i runs in its own namespace in
    /// region `VALIDATOR_REGIONS[i]` (needs root, iproute2, and a tokio runtime for the relays).
    /// `isolation` says how far validators are apart: WAN, link rate, CPU quota.
    pub fn start(
        node: &Path,
        mode: &str,
        extra: &[String],
        logs: Option<&Path>,
        log_prefix: &str,
        isolation: &Isolation,
    ) -> Result<LocalNet, String> {
        let Isolation {
            wan,
            link_rate,
            cpu_quota,
        } = *isolation;
        let dir = std::env::temp_dir().join(format!("bsmr-bench-{}-{mode}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        if cpu_quota.is_some() {
            crate::cgroup::remove_stale_groups();
        }
        let mut validators = vec![];
        let mut ports = BTreeSet::new();
        for (i, name) in NAMES.iter().enumerate() {
            let node_key = format!("{:064x}", i + 1);
            let key_file = dir.join(format!("{name}.key"));
            std::fs::write(&key_file, &node_key).map_err(|e| e.to_string())?;
            let out = Command::new(node)
                .args(["key", "inspect-node-key", "--file"])
                .arg(&key_file)
                .output()
                .map_err(|e| format!("running {}: {e}", node.display()))?;
            if !out.status.success() {
                return Err(format!(
                    "{} key inspect-node-key failed: {}",
                    node.display(),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            validators.push(Validator {
                name,
                rpc: free_port(&mut ports)?,
                region: wan.then_some(VALIDATOR_REGIONS[i]),
                p2p: free_port(&mut ports)?,
                node_key,
                peer_id: String::from_utf8_lossy(&out.stdout).trim().to_string(),
                base: dir.join(name),
                child: None,
                quota: cpu_quota
                    .map(|cores| {
                        let prefix = crate::cgroup::GROUP_PREFIX;
                        let group = format!("{prefix}{}-{mode}-{name}", std::process::id());
                        crate::cgroup::CpuQuota::create(&group, cores)
                    })
                    .transpose()?,
            });
        }
        let logs = match logs {
            Some(l) => {
                std::fs::create_dir_all(l).map_err(|e| format!("{}: {e}", l.display()))?;
                l.join(log_prefix)
            }
            None => dir.join(log_prefix),
        };
        let mut net = LocalNet {
            node: node.to_path_buf(),
            dir,
            logs,
            extra: extra.to_vec(),
            validators,
            wan: None,
            link_rate,
        };
        if wan {
            net.wan = Some(net.start_wan()?);
        }
        for i in 0..net.validators.len() {
            let _ = std::fs::remove_file(net.log_path(i));
            net.spawn(i)?;
        }
        for i in 0..net.validators.len() {
            net.wait_rpc(i, Duration::from_secs(120))?;
        }
        Ok(net)
    }

    /// One namespace per validator; in namespace j a relay per other validator i on i's p2p
    /// port (delays from the region matrix, each direction its own); in this namespace a relay per
    /// validator on its RPC port (no delay: the client sits next to the validator it uses).
    fn start_wan(&self) -> Result<Wan, String> {
        let io = |e: std::io::Error| format!("WAN relay: {e}");
        wan::remove_stale_namespaces();
        let namespaces = (0..self.validators.len())
            .map(|i| Namespace::create(&format!("bsmr{}-{i}", std::process::id())))
            .collect::<Result<Vec<_>, _>>()?;
        let mut relays = vec![];
        for j in 0..self.validators.len() {
            for (i, to) in self.validators.iter().enumerate() {
                if i == j {
                    continue;
                }
                let (rj, ri) = (VALIDATOR_REGIONS[j], VALIDATOR_REGIONS[i]);
                let listener = wan::listen(Some(&namespaces[j]), to.p2p).map_err(io)?;
                let target = Target {
                    netns: Some(namespaces[i].path()),
                    port: to.p2p,
                };
                let shape = wan::Shape {
                    forward: Duration::from_millis(REGION_MS[rj][ri]),
                    backward: Duration::from_millis(REGION_MS[ri][rj]),
                    rate: self.link_rate,
                };
                relays.push(wan::relay(listener, target, shape).map_err(io)?);
            }
        }
        for (i, v) in self.validators.iter().enumerate() {
            let listener = wan::listen(None, v.rpc).map_err(io)?;
            let target = Target {
                netns: Some(namespaces[i].path()),
                port: v.rpc,
            };
            relays.push(wan::relay(listener, target, wan::Shape::DIRECT).map_err(io)?);
        }
        Ok(Wan { namespaces, relays })
    }

    /// Name of validator `i` with its region when the network emulates a WAN (`alice@r0`).
    pub fn label(&self, i: usize) -> String {
        let v = &self.validators[i];
        match v.region {
            Some(r) => format!("{}@r{r}", v.name),
            None => v.name.to_string(),
        }
    }

    fn spawn(&mut self, i: usize) -> Result<(), String> {
        // Over the emulated WAN a validator dials only those before it: two validators dialling
        // each other at once over a 100+ ms link can each close the other's connection (litep2p),
        // leaving the pair apart for a minute of back-off. One direction per pair avoids it.
        let wan = self.wan.is_some();
        let boot: Vec<String> = self
            .validators
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i && (!wan || *j < i))
            .map(|(_, v)| format!("/ip4/127.0.0.1/tcp/{}/p2p/{}", v.p2p, v.peer_id))
            .collect();
        let v = &self.validators[i];
        let path = self.log_path(i);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let mut command = match &self.wan {
            Some(w) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", w.namespaces[i].name()])
                    .arg(&self.node);
                c
            }
            None => Command::new(&self.node),
        };
        command
            .args(["--chain", "local", &format!("--{}", v.name), "--base-path"])
            .arg(&v.base)
            .args([
                "--node-key",
                &v.node_key,
                "--port",
                &v.p2p.to_string(),
                "--rpc-port",
                &v.rpc.to_string(),
            ])
            .args(quiet_flags(&self.extra))
            .args([
                "--no-telemetry",
                "--no-mdns",
                "--rpc-max-connections",
                "10000",
            ])
            // The same transaction pool for every chain: bsmr-node's default (docs/consensus.md,
            // "Transaction pool": stable2609's fork-aware pool drops future transactions).
            .args(["--pool-type", "single-state"])
            .args(["--pool-limit", "65536", "--pool-kbytes", "1048576"])
            .args(&self.extra);
        if !boot.is_empty() {
            command.arg("--bootnodes").args(boot);
        }
        // A node must not outlive the bench (killed or crashed): the kernel sends it SIGKILL
        // when the bench goes away.
        // SAFETY: the closure only makes one async-signal-safe system call.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, || {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", self.node.display()))?;
        if let Some(q) = &self.validators[i].quota {
            if let Err(e) = q.add(child.id()) {
                let mut child = child;
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("putting {} in its CPU quota: {e}", v.name));
            }
        }
        self.validators[i].child = Some(child);
        Ok(())
    }

    /// Where validator `i` logs (appended across restarts).
    fn log_path(&self, i: usize) -> PathBuf {
        PathBuf::from(format!(
            "{}-{}.log",
            self.logs.display(),
            self.validators[i].name
        ))
    }

    /// Wait until validator `i` accepts RPC connections. A node that exits first, or never
    /// opens its port, fails the start with the end of its log in the error (the log may sit in
    /// the run's temporary folder, which is removed with the network).
    fn wait_rpc(&mut self, i: usize, timeout: Duration) -> Result<(), String> {
        let start = Instant::now();
        let port = self.validators[i].rpc;
        loop {
            let up = match &self.wan {
                // The relay in this namespace always accepts; ask inside the validator's namespace.
                Some(w) => w.namespaces[i].is_listening(port),
                None => std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
            };
            if up {
                return Ok(());
            }
            let exited = self.validators[i]
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                return Err(self.start_failure(i, &format!("exited ({status}) before opening RPC")));
            }
            if start.elapsed() > timeout {
                return Err(self.start_failure(i, &format!("did not open RPC within {timeout:?}")));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Why validator `i` did not start, with the last lines of its log.
    fn start_failure(&self, i: usize, what: &str) -> String {
        let path = self.log_path(i);
        let tail = std::fs::read_to_string(&path)
            .map(|log| last_lines(&log, START_LOG_LINES))
            .unwrap_or_else(|e| format!("(unreadable: {e})"));
        format!(
            "{} {what}; the last lines of its log ({}):\n{tail}",
            self.validators[i].name,
            path.display()
        )
    }

    /// WebSocket endpoints of the validators that run.
    pub fn endpoints(&self) -> Vec<String> {
        self.validators
            .iter()
            .filter(|v| v.child.is_some())
            .map(|v| format!("ws://127.0.0.1:{}", v.rpc))
            .collect()
    }

    /// CPU seconds (user and system, all threads) the running validators have used so far,
    /// from `/proc/<pid>/stat`; a killed validator counts no more.
    pub fn cpu_seconds(&self) -> f64 {
        self.validators
            .iter()
            .filter_map(|v| v.child.as_ref())
            .filter_map(|c| std::fs::read_to_string(format!("/proc/{}/stat", c.id())).ok())
            .filter_map(|stat| cpu_ticks(&stat))
            .sum::<u64>() as f64
            / USER_HZ
    }

    /// Seconds the validators spent throttled by their CPU quotas so far (0 without quotas).
    pub fn throttled_seconds(&self) -> f64 {
        self.validators
            .iter()
            .filter_map(|v| v.quota.as_ref()?.throttled())
            .map(|(_, secs)| secs)
            .sum()
    }

    /// SIGKILL validator `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.validators[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `--no-prometheus` unless an extra argument sets up Prometheus (`--node-arg=--prometheus-port=N`:
/// each validator has its own network namespace under `--wan`, so one port serves all four, read
/// with `ip netns exec`).
fn quiet_flags(extra: &[String]) -> Vec<&'static str> {
    if extra.iter().any(|a| a.starts_with("--prometheus")) {
        vec![]
    } else {
        vec!["--no-prometheus"]
    }
}

/// How many lines of a validator's log a failed start quotes.
const START_LOG_LINES: usize = 12;

/// The last `n` lines of `text`, each indented.
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("  {l}\n"))
        .collect()
}

/// The unit of `/proc/<pid>/stat`'s times (USER_HZ, fixed at 100 by the Linux ABI on the
/// platforms this runs on).
const USER_HZ: f64 = 100.0;

/// utime + stime of a `/proc/<pid>/stat` line, in USER_HZ ticks (fields 14 and 15; the command
/// name in field 2 may hold spaces, so fields are counted after its closing parenthesis).
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (the state).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

impl Drop for LocalNet {
    fn drop(&mut self) {
        for i in 0..self.validators.len() {
            self.kill(i);
        }
        if let Some(w) = &self.wan {
            for r in &w.relays {
                r.abort();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_stays_off_unless_an_extra_argument_asks_for_it() {
        assert_eq!(quiet_flags(&[]), ["--no-prometheus"]);
        assert_eq!(quiet_flags(&["-lbsmr=debug".into()]), ["--no-prometheus"]);
        assert!(quiet_flags(&["--prometheus-port=9615".into()]).is_empty());
    }

    #[test]
    fn a_node_that_exits_at_start_fails_the_start_at_once_with_its_log() {
        use std::os::unix::fs::PermissionsExt;
        // A stand-in node: answers the key query, then refuses its flags as a real node would.
        let dir = std::env::temp_dir().join(format!("bsmr-bench-test-exit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let node = dir.join("node");
        std::fs::write(
            &node,
            "#!/bin/sh\nif [ \"$1\" = key ]; then echo 12D3KooWFake; exit 0; fi\n\
             echo 'starting' >&2\necho 'Error: unexpected argument --bogus' >&2\nexit 2\n",
        )
        .unwrap();
        std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = LocalNet::start(&node, "test", &[], None, "t", &Isolation::default())
            .err()
            .expect("a node that exits cannot start a network");
        let _ = std::fs::remove_dir_all(&dir);
        // Seen while waiting for RPC, not after the 120 s timeout.
        assert!(err.contains("alice exited"), "{err}");
        assert!(err.contains("Error: unexpected argument --bogus"), "{err}");
    }

    #[test]
    fn last_lines_keeps_the_end() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "  b\n  c\n");
        assert_eq!(last_lines("a", 5), "  a\n");
        assert_eq!(last_lines("", 5), "");
    }

    #[test]
    fn cpu_ticks_are_utime_plus_stime_even_with_spaces_in_the_name() {
        let stat =
            "4242 (bsmr node) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 567 0 0 20 0 9 0 100";
        assert_eq!(cpu_ticks(stat), Some(1234 + 567));
        assert_eq!(cpu_ticks("garbage"), None);
        let own = std::fs::read_to_string("/proc/self/stat").expect("Linux; qed");
        assert!(cpu_ticks(&own).is_some(), "{own}");
    }

    #[test]
    fn dave_comes_first_in_the_validator_order() {
        // wan::VALIDATOR_REGIONS places the baseline's primary by this.
        assert_eq!(NAMES[first_of_set()], "dave");
    }
}
