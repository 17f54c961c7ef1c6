//! Reading a process's CPU time and memory from `/proc`: user+system ticks from
//! `/proc/PID/stat` (all threads) and `VmRSS` / `VmHWM` from `/proc/PID/status`.

use anyhow::{anyhow, Context, Result};
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
