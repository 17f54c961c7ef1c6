//! Reading a process's CPU time and memory from `/proc`: user+system ticks from
//! `/proc/PID/stat` (all threads), per-thread nanoseconds from `/proc/PID/task/TID/schedstat`,
//! and `VmRSS` / `VmHWM` from `/proc/PID/status`.

use anyhow::{anyhow, Context, Result};
use std::collections::HashMap;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

/// Clock ticks per second (`getconf CLK_TCK`, 100 when that fails).
pub fn clk_tck() -> f64 {
    static TCK: OnceLock<f64> = OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
            .filter(|tck: &f64| *tck > 0.0)
            .unwrap_or(100.0)
    })
}

fn proc_dir(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("/proc/{pid}"),
        None => "/proc/self".to_string(),
    }
}

/// utime + stime of `pid` (or of this process), in clock ticks.
pub fn cpu_ticks(pid: Option<u32>) -> Result<u64> {
    let path = format!("{}/stat", proc_dir(pid));
    let stat = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {path} (has the process exited?)"))?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow!("{path}: no ')'"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
    let field = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .ok_or_else(|| anyhow!("{path}: too few fields"))?
            .parse()
            .with_context(|| format!("{path}: field {}", i + 3))
    };
    Ok(field(11)? + field(12)?)
}

/// A `kB` line of `/proc/PID/status` (`VmRSS`, `VmHWM`...), in kB.
pub fn status_kb(pid: Option<u32>, key: &str) -> Result<u64> {
    let path = format!("{}/status", proc_dir(pid));
    let status = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {path} (has the process exited?)"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| anyhow!("{path}: no {key} (has the process exited?)"))
}

/// CPU time of a process at one moment.
#[derive(Debug, Clone, Copy)]
pub struct CpuSnapshot {
    ticks: u64,
    at: Instant,
}

impl CpuSnapshot {
    /// Reads `pid` (or this process) now.
    pub fn take(pid: Option<u32>) -> Result<CpuSnapshot> {
        Ok(CpuSnapshot {
            ticks: cpu_ticks(pid)?,
            at: Instant::now(),
        })
    }

    /// CPU % (100 = one core) between `self` and a later snapshot.
    pub fn percent_until(&self, later: &CpuSnapshot) -> f64 {
        let wall = later.at.duration_since(self.at).as_secs_f64();
        if wall <= 0.0 {
            return 0.0;
        }
        let cpu = later.ticks.saturating_sub(self.ticks) as f64 / clk_tck();
        cpu / wall * 100.0
    }
}

/// On-CPU time of each thread of `pid`, in ns, from `/proc/PID/task/TID/schedstat` (first
/// field). A thread that exits between the listing and the read is left out.
pub fn thread_cpu_ns(pid: u32) -> Result<HashMap<u32, u64>> {
    let dir = format!("/proc/{pid}/task");
    let mut threads = HashMap::new();
    let entries =
        std::fs::read_dir(&dir).with_context(|| format!("listing {dir} (has it exited?)"))?;
    for entry in entries.take(100_000) {
        let entry = entry?;
        let Ok(tid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(entry.path().join("schedstat")) else {
            continue;
        };
        if let Some(ns) = text.split_whitespace().next().and_then(|v| v.parse().ok()) {
            threads.insert(tid, ns);
        }
    }
    Ok(threads)
}

/// On-CPU time, in ns, of the threads of `pid` whose name starts with `prefix` (Ascend names
/// an instance's script thread `script APP/INSTANCE`, cut to 15 bytes by the kernel), summed.
pub fn named_threads_cpu_ns(pid: u32, prefix: &str) -> Result<u64> {
    let named = |tid: &u32| {
        std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
            .is_ok_and(|name| name.starts_with(prefix))
    };
    Ok(thread_cpu_ns(pid)?
        .iter()
        .filter(|(tid, _)| named(tid))
        .map(|(_, ns)| ns)
        .sum())
}

/// Per-thread CPU time of a process at one moment, to the nanosecond (where the kernel keeps
/// `schedstat`), for figures too small for clock ticks.
#[derive(Debug, Clone)]
pub struct ThreadCpuSnapshot {
    threads: HashMap<u32, u64>,
    at: Instant,
}

impl ThreadCpuSnapshot {
    /// Reads `pid` now.
    pub fn take(pid: u32) -> Result<ThreadCpuSnapshot> {
        Ok(ThreadCpuSnapshot {
            threads: thread_cpu_ns(pid)?,
            at: Instant::now(),
        })
    }

    /// CPU % (100 = one core) between `self` and a later snapshot; None when a thread of
    /// `self` is gone from `later` (its time since `self` is lost) or when the counters are
    /// all zero (no schedstat).
    pub fn percent_until(&self, later: &ThreadCpuSnapshot) -> Option<f64> {
        let wall = later.at.duration_since(self.at).as_secs_f64();
        if wall <= 0.0
            || self
                .threads
                .keys()
                .any(|tid| !later.threads.contains_key(tid))
            || later.threads.values().all(|&ns| ns == 0)
        {
            return None;
        }
        // A thread started meanwhile counts from zero: all its time is in between.
        let ns: u64 = later
            .threads
            .iter()
            .map(|(tid, &ns)| ns.saturating_sub(self.threads.get(tid).copied().unwrap_or(0)))
            .sum();
        Some(ns as f64 / 1e9 / wall * 100.0)
    }
}
