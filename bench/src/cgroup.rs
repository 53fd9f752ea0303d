//! A CPU quota per validator: one cgroup (v1 `cpu` controller) per node process, so that in a
//! comparison each validator's CPU is its own, as on separate machines, and a leader cannot
//! borrow the idle cycles of its followers. Needs root (writing under `/sys/fs/cgroup/cpu`); the
//! bench refuses `--cpu-quota` without it, before starting anything.

use std::path::{Path, PathBuf};

/// Where the cgroup v1 cpu controller is mounted.
pub const CPU_CONTROLLER: &str = "/sys/fs/cgroup/cpu";
/// The CFS period the quota is a share of (100 ms, the kernel's default).
const PERIOD_US: u64 = 100_000;

/// Why `--cpu-quota` cannot run here, if it cannot: not root, or no cpu controller.
pub fn unavailable() -> Option<String> {
    if !crate::wan::is_root() {
        return Some(format!(
            "--cpu-quota needs root (it creates cgroups under {CPU_CONTROLLER})"
        ));
    }
    if !Path::new(CPU_CONTROLLER).join("cpu.cfs_quota_us").exists() {
        return Some(format!(
            "--cpu-quota needs the cgroup v1 cpu controller at {CPU_CONTROLLER}"
        ));
    }
    None
}

/// The `cpu.cfs_quota_us` value that gives `cores` cores per [`PERIOD_US`]; an error for a
/// quota that is not a positive number of cores.
pub fn quota_us(cores: f64) -> Result<u64, String> {
    if !cores.is_finite() || cores <= 0.0 {
        return Err(format!(
            "--cpu-quota {cores}: must be a positive number of cores"
        ));
    }
    // The kernel refuses quotas under 1 ms.
    Ok(((cores * PERIOD_US as f64).round() as u64).max(1_000))
}

/// The prefix of every group a bench makes: `bsmr-bench-<pid>-...` (see `network.rs`).
pub const GROUP_PREFIX: &str = "bsmr-bench-";

/// Delete the groups earlier benches left behind (those of a process that is gone, e.g. killed
/// by a signal before its groups were dropped), as `wan::remove_stale_namespaces` does for
/// namespaces. Their nodes die with the bench, so the groups are empty.
pub fn remove_stale_groups() {
    remove_stale_groups_in(Path::new(CPU_CONTROLLER))
}

/// [`remove_stale_groups`] under `root`: `bsmr-bench-<pid>-*` folders whose process is gone.
fn remove_stale_groups_in(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_str().unwrap_or("");
        if crate::wan::left_by_a_gone_process(name, GROUP_PREFIX) {
            // Fails, harmlessly, for a group that still holds a process.
            let _ = std::fs::remove_dir(entry.path());
        }
    }
}

/// One cgroup with a CPU quota, removed when dropped (once its processes are gone).
pub struct CpuQuota {
    dir: PathBuf,
}

impl CpuQuota {
    /// Create cgroup `name` limited to `cores` cores.
    pub fn create(name: &str, cores: f64) -> Result<CpuQuota, String> {
        let quota = quota_us(cores)?;
        let dir = Path::new(CPU_CONTROLLER).join(name);
        let io = |what: &str, e: std::io::Error| format!("{what} {}: {e}", dir.display());
        if dir.exists() {
            // A stale group of an earlier run with this name: empty by now, or this fails.
            std::fs::remove_dir(&dir).map_err(|e| io("removing stale", e))?;
        }
        std::fs::create_dir(&dir).map_err(|e| io("creating", e))?;
        let group = CpuQuota { dir };
        group.write("cpu.cfs_period_us", PERIOD_US)?;
        group.write("cpu.cfs_quota_us", quota)?;
        Ok(group)
    }

    /// Move process `pid` (all its threads) into the group.
    pub fn add(&self, pid: u32) -> Result<(), String> {
        self.write("cgroup.procs", u64::from(pid))
    }

    /// Throttled periods and throttled time so far (`cpu.stat`), if readable.
    pub fn throttled(&self) -> Option<(u64, f64)> {
        let stat = std::fs::read_to_string(self.dir.join("cpu.stat")).ok()?;
        let field = |name: &str| {
            stat.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
        };
        Some((
            field("nr_throttled")?,
            field("throttled_time")? as f64 / 1e9,
        ))
    }

    fn write(&self, file: &str, value: u64) -> Result<(), String> {
        let path = self.dir.join(file);
        std::fs::write(&path, value.to_string())
            .map_err(|e| format!("writing {value} to {}: {e}", path.display()))
    }
}

impl Drop for CpuQuota {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_is_a_share_of_the_period_and_must_be_positive() {
        assert_eq!(quota_us(0.3), Ok(30_000));
        assert_eq!(quota_us(2.0), Ok(200_000));
        assert_eq!(quota_us(0.001), Ok(1_000), "the kernel's minimum");
        assert!(quota_us(0.0).is_err());
        assert!(quota_us(-1.0).is_err());
        assert!(quota_us(f64::NAN).unwrap_err().contains("positive"));
    }

    #[test]
    fn groups_of_benches_that_are_gone_are_removed_and_no_others() {
        let root = std::env::temp_dir().join(format!("bsmr-cgroup-sweep-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let mut exited = std::process::Command::new("true").spawn().unwrap();
        let gone = exited.id();
        exited.wait().unwrap();
        let me = std::process::id();
        let stale = root.join(format!("{GROUP_PREFIX}{gone}-leaderless-alice"));
        let live = root.join(format!("{GROUP_PREFIX}{me}-leader-bob"));
        let other = root.join(format!("not-a-bench-{gone}"));
        let garbled = root.join(format!("{GROUP_PREFIX}x{gone}-dave"));
        for d in [&stale, &live, &other, &garbled] {
            std::fs::create_dir_all(d).unwrap();
        }
        remove_stale_groups_in(&root);
        assert!(!stale.exists(), "the group of a process that is gone goes");
        assert!(live.exists(), "a running bench's group stays");
        assert!(
            other.exists() && garbled.exists(),
            "what is not a bench's group stays"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// As root with the controller mounted, a busy process in a 0.2-core group is throttled;
    /// elsewhere the bench refuses the flag, which this checks instead.
    #[test]
    fn a_busy_process_in_a_group_is_throttled_or_the_flag_is_refused() {
        if let Some(why) = unavailable() {
            assert!(why.contains("--cpu-quota"), "{why}");
            eprintln!("skipped: {why}");
            return;
        }
        let group = CpuQuota::create(&format!("bsmr-bench-test-{}", std::process::id()), 0.2)
            .expect("root with the cpu controller");
        let mut busy = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap();
        group.add(busy.id()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(600));
        let (periods, _) = group.throttled().expect("cpu.stat");
        let _ = busy.kill();
        let _ = busy.wait();
        assert!(
            periods > 0,
            "a spinning process over its quota is throttled"
        );
    }
}
