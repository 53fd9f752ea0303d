//! Wide-area emulation for real nodes without kernel netem: every validator runs in its own
//! network namespace that holds nothing but loopback, and the only way between namespaces is
//! this process's relay, which holds every byte for the one-way delay between the two regions.
//!
//! Addressing stays plain loopback. Validator i listens on port `P_i` inside its namespace; in
//! every other namespace j the relay listens on `127.0.0.1:P_i` and forwards to namespace i,
//! delaying j -> i bytes by `WAN[r_j][r_i]` and the answers by `WAN[r_i][r_j]`. So a bootnode
//! address, or any address a peer learns from identify, means the same validator in every
//! namespace and always crosses the relay. Clients (this bench, in the root namespace) reach a
//! validator's RPC through a relay listener on the same port in the root namespace; they sit next
//! to the validator they talk to (no delay), as a client in that validator's region would.
//!
//! Latency only: bandwidth, loss and jitter are not emulated (TCP would hide loss as delay
//! anyway). Needs iproute2's `ip netns` and CAP_SYS_ADMIN: as root directly, otherwise
//! [`enter_user_namespace`] re-runs the bench as root of its own user and mount namespace
//! (`unshare`), where the kernel allows unprivileged user namespaces.

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::process::Command;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// One-way base latencies (ms) between the five regions: the simulator's WAN model, so real-node
/// and simulated figures share their inputs.
pub const REGION_MS: [[u64; 5]; 5] = bsmr_sim::sim::WAN;

/// Regions of Alice, Bob, Charlie and Dave: four of the five regions, with near and far pairs.
/// Dave is first in the canonical validator order, so he is the baseline's leader; he sits in r2,
/// the region with the smallest total distance to the others, where an operator would put a
/// leader. Charlie (r4) is the farthest from him (120 ms one way).
pub const VALIDATOR_REGIONS: [usize; 4] = [0, 1, 4, 2];

/// Set on the bench when it re-runs itself inside its own user namespace.
const IN_USER_NAMESPACE: &str = "BSMR_BENCH_IN_USER_NAMESPACE";

/// The `unshare` arguments that give an unprivileged user a user namespace in which it is root,
/// with a private mount namespace and network namespace of its own: `/run` is replaced there by
/// an empty tmpfs so that `ip netns` can create `/run/netns` (the real `/run` belongs to the
/// real root), and the bench's own network namespace (where its clients and relay run, on
/// loopback) belongs to the new user namespace, so `ip netns` may switch back into it.
const UNSHARE: [&str; 6] = [
    "--user",
    "--map-root-user",
    "--mount",
    "--net",
    "--propagation",
    "private",
];
const SET_UP: &str = "mount -t tmpfs bsmr-wan /run && ip link set lo up";

/// Can this process create network namespaces itself (it is root)?
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Re-run this bench with the same arguments as root of a fresh user and mount namespace, where
/// `ip netns` works without privileges on the machine. Returns only on failure, with a message
/// saying what is missing; call it before any thread starts.
pub fn enter_user_namespace() -> String {
    if std::env::var_os(IN_USER_NAMESPACE).is_some() {
        return "--wan: inside the bench's own user namespace and still not root".to_string();
    }
    let probe = Command::new("unshare")
        .args(UNSHARE)
        .args(["sh", "-c", SET_UP])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            return format!(
                "--wan needs network namespaces: run as root, or allow unprivileged user \
                 namespaces (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces \
                 > 0); `unshare --user --map-root-user --mount --net` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )
        }
        Err(e) => return format!("--wan needs root or util-linux's unshare: {e}"),
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return format!("--wan: cannot find the bench's own binary: {e}"),
    };
    use std::os::unix::process::CommandExt;
    let err = Command::new("unshare")
        .args(UNSHARE)
        .args(["sh", "-c", &format!("{SET_UP} && exec \"$0\" \"$@\"")])
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(IN_USER_NAMESPACE, "1")
        .exec();
    format!("--wan: running unshare failed: {err}")
}

/// A named network namespace with loopback up, deleted on drop.
pub struct Namespace {
    name: String,
}

impl Namespace {
    /// Create `name` (removing a stale one of the same name first).
    pub fn create(name: &str) -> Result<Namespace, String> {
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        ip(&["netns", "add", name]).map_err(|e| {
            format!("--wan needs iproute2 and CAP_SYS_ADMIN (`ip netns add {name}` failed: {e})")
        })?;
        let ns = Namespace {
            name: name.to_string(),
        };
        ip(&["-n", name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name (for `ip netns exec`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's file (what `setns` enters).
    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// Run `f` on a fresh thread that has entered this namespace; sockets it creates stay in the
    /// namespace for their whole life, whichever thread uses them later.
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        in_netns(self.path(), f)
    }

    /// Is something listening on `127.0.0.1:port` inside the namespace?
    pub fn is_listening(&self, port: u16) -> bool {
        self.run(move || StdStream::connect(("127.0.0.1", port)).map(|_| ()))
            .is_ok()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Delete the namespaces earlier benches left behind (`bsmr<pid>-<i>` of a process that is gone,
/// e.g. killed before it could clean up).
pub fn remove_stale_namespaces() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        if left_by_a_gone_process(name, "bsmr") {
            let _ = Command::new("ip").args(["netns", "del", name]).output();
        }
    }
}

/// Whether `name` is `<prefix><pid>-...` and process `pid` is gone: what a bench that was killed
/// before it could clean up left behind.
pub fn left_by_a_gone_process(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|rest| rest.split('-').next())
        .and_then(|pid| pid.parse::<u32>().ok())
        .is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("running ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Where a relay forwards to: a port inside a namespace.
#[derive(Clone)]
pub struct Target {
    /// Namespace path of the destination (`/run/netns/<name>`); `None`: this process's own
    /// namespace (entering a namespace needs CAP_SYS_ADMIN even when it is the current one).
    pub netns: Option<String>,
    /// Destination port on the namespace's loopback.
    pub port: u16,
}

/// How long a relay keeps trying to reach a target that refuses connections.
pub const CONNECT_PATIENCE: Duration = Duration::from_secs(5);

/// One link's shape: one-way delays each way, and a rate (bytes per second, each direction of
/// each connection; `None`: unlimited).
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Delay of bytes towards the target.
    pub forward: Duration,
    /// Delay of bytes back.
    pub backward: Duration,
    /// Bytes per second each way.
    pub rate: Option<u64>,
}

impl Shape {
    /// No delay, no rate limit.
    pub const DIRECT: Shape = Shape {
        forward: Duration::ZERO,
        backward: Duration::ZERO,
        rate: None,
    };
}

/// One relay: connections accepted on `listener` are forwarded to `target`, shaped by `shape`.
/// Runs until the handle is aborted.
pub fn relay(listener: StdListener, target: Target, shape: Shape) -> io::Result<JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    Ok(tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                // The target may still be booting: keep trying for a while, so an early dial
                // is slow rather than accepted-then-closed (which libp2p punishes with a long
                // back-off). A target that stays down closes the inbound connection.
                let give_up = Instant::now() + CONNECT_PATIENCE;
                loop {
                    match connect_in(&target).await {
                        Ok(outbound) => {
                            splice(inbound, outbound, shape).await;
                            return;
                        }
                        Err(_) if Instant::now() < give_up => {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(_) => return,
                    }
                }
            });
        }
    }))
}

/// Bind `127.0.0.1:port` inside `ns`, or in this process's namespace when `ns` is `None`.
pub fn listen(ns: Option<&Namespace>, port: u16) -> io::Result<StdListener> {
    let bind = move || StdListener::bind(SocketAddr::from(([127, 0, 0, 1], port)));
    match ns {
        Some(ns) => ns.run(bind),
        None => bind(),
    }
}

/// Run `f` on a fresh thread that has entered the network namespace at `path` (entering is per
/// thread, so no shared or pooled thread ever changes namespace).
fn in_netns<T: Send + 'static>(
    path: String,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    std::thread::spawn(move || {
        let file = File::open(&path)?;
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        f()
    })
    .join()
    .map_err(|_| io::Error::other("namespace thread panicked"))?
}

async fn connect_in(target: &Target) -> io::Result<TcpStream> {
    let (path, port) = (target.netns.clone(), target.port);
    let connect = move || StdStream::connect(("127.0.0.1", port));
    let stream = tokio::task::spawn_blocking(move || match path {
        Some(path) => in_netns(path, connect),
        None => connect(),
    })
    .await
    .map_err(io::Error::other)??;
    stream.set_nonblocking(true)?;
    stream.set_nodelay(true)?;
    TcpStream::from_std(stream)
}

/// Pump both directions of a connection pair with their shape until either side closes.
async fn splice(a: TcpStream, b: TcpStream, shape: Shape) {
    let _ = a.set_nodelay(true);
    let (ar, aw) = a.into_split();
    let (br, bw) = b.into_split();
    tokio::join!(
        delayed_copy(ar, bw, shape.forward, shape.rate),
        delayed_copy(br, aw, shape.backward, shape.rate)
    );
}

/// How much sending time a rate-limited link queues before it stops reading (then the sender's
/// TCP window fills and it slows down, as behind a real bottleneck).
pub const MAX_QUEUED: Duration = Duration::from_secs(1);

/// When a chunk of `len` bytes that arrives at `now` on a link of `rate` bytes per second, busy
/// until `free_at`, has been sent: the link sends one chunk after the other.
pub fn sent_at(now: Instant, free_at: Instant, len: usize, rate: u64) -> Instant {
    let start = free_at.max(now);
    start + Duration::from_secs_f64(len as f64 / rate.max(1) as f64)
}

/// Copy `from` to `to`, each chunk written `delay` after it was read (and, with a `rate` in
/// bytes per second, after the link has sent the chunks before it), in order. The delay is a
/// pure latency: reading goes on while earlier chunks wait, so throughput is not capped at one
/// buffer per delay.
pub async fn delayed_copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
    rate: Option<u64>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut free_at = Instant::now();
        loop {
            if free_at > Instant::now() + MAX_QUEUED {
                tokio::time::sleep_until(free_at - MAX_QUEUED).await;
            }
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let now = Instant::now();
                    let sent = match rate {
                        Some(rate) => {
                            free_at = sent_at(now, free_at, n, rate);
                            free_at
                        }
                        None => now,
                    };
                    if tx.send((sent + delay, buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
        // Dropping `tx` tells the writer to finish once everything queued is out.
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_limited_link_sends_one_chunk_after_the_other() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // 1,000 bytes at 10,000 B/s take 100 ms; an idle link starts at once.
        assert_eq!(sent_at(t0, t0, 1_000, 10_000), t0 + ms(100));
        // A busy link starts when the chunk before is out.
        assert_eq!(sent_at(t0, t0 + ms(300), 1_000, 10_000), t0 + ms(400));
        // A link that went idle starts at the arrival.
        assert_eq!(
            sent_at(t0 + ms(500), t0 + ms(300), 500, 10_000),
            t0 + ms(550)
        );
    }

    /// Bytes cross a relay intact and in order, and never before the configured delay (a lower
    /// bound only: a slow machine may add time, never remove it).
    #[tokio::test]
    async fn relay_delivers_everything_in_order_after_the_delay() {
        let server = StdListener::bind("127.0.0.1:0").unwrap();
        let server_port = server.local_addr().unwrap().port();
        server.set_nonblocking(true).unwrap();
        let server = TcpListener::from_std(server).unwrap();
        let front = StdListener::bind("127.0.0.1:0").unwrap();
        let front_port = front.local_addr().unwrap().port();
        let target = Target {
            netns: None,
            port: server_port,
        };
        let delay = Duration::from_millis(120);
        let shape = Shape {
            forward: delay,
            backward: delay,
            rate: None,
        };
        let handle = relay(front, target, shape).unwrap();
        // The server echoes what it reads.
        tokio::spawn(async move {
            let (mut s, _) = server.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            loop {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                s.write_all(&buf[..n]).await.unwrap();
            }
        });
        let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut c = TcpStream::connect(("127.0.0.1", front_port)).await.unwrap();
        let started = Instant::now();
        let (mut r, mut w) = c.split();
        let send = async {
            w.write_all(&payload).await.unwrap();
        };
        let mut echoed = Vec::new();
        let recv = async {
            let mut buf = vec![0u8; 8192];
            while echoed.len() < payload.len() {
                let n = r.read(&mut buf).await.unwrap();
                assert!(n > 0, "relay closed early");
                echoed.extend_from_slice(&buf[..n]);
            }
        };
        tokio::join!(send, recv);
        assert!(
            started.elapsed() >= 2 * delay,
            "a round trip waits both ways"
        );
        assert_eq!(echoed, payload);
        handle.abort();
    }

    /// A relay whose target stays down closes the client's connection (after
    /// [`CONNECT_PATIENCE`]) instead of hanging.
    #[tokio::test]
    async fn relay_to_a_closed_port_closes_the_connection() {
        let closed = StdListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let front = StdListener::bind("127.0.0.1:0").unwrap();
        let front_port = front.local_addr().unwrap().port();
        let target = Target { netns: None, port };
        let handle = relay(front, target, Shape::DIRECT).unwrap();
        let mut c = TcpStream::connect(("127.0.0.1", front_port)).await.unwrap();
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(CONNECT_PATIENCE * 3, c.read(&mut buf))
            .await
            .expect("closed, not hanging")
            .unwrap_or(0);
        assert_eq!(n, 0);
        handle.abort();
    }
}
