//! The idle-memory load client, `xtask bench-idle`: opens many RTMP connections that each do
//! the handshake and `connect` (to NetConnection.Connect.Success) and then nothing else (no
//! createStream, no play), holds them, and reads the server's `VmRSS` from
//! `/proc/PID/status` before and after.
//!
//! One unmeasured connect (opened and closed) comes first, so a server's one-time work for the
//! application (Ascend starts the application instance on its first connect) is not counted
//! per connection. Every loop is bounded in count and time.

use crate::load::{note_error, runtime, url_for};
use crate::procfs::status_kb;
use anyhow::{bail, Context, Result};
use ascend_client::RtmpClient;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::time::{sleep, timeout_at, Instant};

/// Longest wait for one connection (handshake + connect).
const CONNECT_LIMIT: Duration = Duration::from_secs(10);

/// Arguments of `xtask bench-idle`.
#[derive(Debug, Clone, clap::Args)]
pub struct IdleArgs {
    /// Server port on 127.0.0.1.
    #[arg(long)]
    pub port: u16,
    /// Application to connect to.
    #[arg(long)]
    pub app: String,
    /// Connections to open.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Connects in flight at once.
    #[arg(long, default_value_t = 50)]
    pub concurrency: usize,
    /// How long to hold them all before reading the RSS again, milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub hold_ms: u64,
    /// Give up opening connections after this many seconds.
    #[arg(long, default_value_t = 60)]
    pub deadline_s: u64,
    /// The server's process id.
    #[arg(long)]
    pub server_pid: u32,
}

/// What one `bench-idle` run measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IdleResult {
    /// The application connected to.
    pub app: String,
    /// Connections tried.
    pub attempted: usize,
    /// Connections that reached NetConnection.Connect.Success.
    pub succeeded: usize,
    /// A few of the failures, distinct.
    pub errors: Vec<String>,
    /// Time to open them all, seconds.
    pub connect_s: f64,
    /// The server's VmRSS before the first connection (after the unmeasured one), KiB.
    pub rss_before_kib: u64,
    /// Its VmRSS after all were open and held for `hold_s`, KiB.
    pub rss_after_kib: u64,
    /// Its VmRSS 1 s after they were all closed, KiB.
    pub rss_after_close_kib: u64,
    /// (rss_after − rss_before) / attempted, KiB.
    pub kib_per_connection: f64,
    /// How long they were held before `rss_after`, seconds.
    pub hold_s: f64,
    /// The server's open file descriptors before and after opening them (a check that the
    /// connections were still open when the RSS was read).
    pub server_fds_before: Option<usize>,
    /// See `server_fds_before`.
    pub server_fds_after: Option<usize>,
    /// The server's threads before and after.
    pub server_threads_before: Option<u64>,
    /// See `server_threads_before`.
    pub server_threads_after: Option<u64>,
}

/// `xtask bench-idle`: prints one JSON [`IdleResult`].
pub fn bench_idle(args: IdleArgs) -> Result<()> {
    let result = runtime()?.block_on(idle(args))?;
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

/// Open file descriptors of `pid` (bounded: /proc lists at most what the process has).
fn fd_count(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|dir| dir.take(1_000_000).count())
}

async fn idle(args: IdleArgs) -> Result<IdleResult> {
    if args.connections == 0 {
        bail!("--connections must be positive");
    }
    let url = url_for(args.port, &args.app)?;
    let pid = Some(args.server_pid);
    let concurrency = args.concurrency.max(1);

    // The unmeasured first connect.
    let warm = timeout_at(
        Instant::now() + CONNECT_LIMIT,
        RtmpClient::connect(&url, vec![]),
    )
    .await;
    match warm {
        Ok(Ok(client)) => drop(client),
        Ok(Err(error)) => bail!("the first connect to {} failed: {error}", url.app),
        Err(_) => bail!("the first connect to {} took more than 10 s", url.app),
    }
    sleep(Duration::from_millis(300)).await;

    let mut result = IdleResult {
        app: args.app.clone(),
        attempted: args.connections,
        rss_before_kib: status_kb(pid, "VmRSS")?,
        server_fds_before: fd_count(args.server_pid),
        server_threads_before: status_kb(pid, "Threads").ok(),
        ..IdleResult::default()
    };
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.deadline_s.max(1));
    let mut clients: Vec<RtmpClient> = Vec::with_capacity(args.connections);
    let mut remaining = args.connections;
    while remaining > 0 {
        let batch = remaining.min(concurrency);
        remaining -= batch;
        if Instant::now() >= deadline {
            note_error(
                &mut result.errors,
                format!("not all tried within {} s", args.deadline_s),
            );
            break;
        }
        let limit = (Instant::now() + CONNECT_LIMIT).min(deadline);
        let handles: Vec<_> = (0..batch)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move {
                    match timeout_at(limit, RtmpClient::connect(&url, vec![])).await {
                        Ok(Ok(client)) => Ok(client),
                        Ok(Err(error)) => Err(format!("{error}")),
                        Err(_) => Err("connect did not finish in time".to_string()),
                    }
                })
            })
            .collect();
        for handle in handles {
            match handle.await.context("a connect task panicked")? {
                Ok(client) => clients.push(client),
                Err(error) => note_error(&mut result.errors, error),
            }
        }
    }
    result.connect_s = started.elapsed().as_secs_f64();
    result.succeeded = clients.len();

    let hold = Duration::from_millis(args.hold_ms);
    let held_from = Instant::now();
    sleep(hold).await;
    result.rss_after_kib = status_kb(pid, "VmRSS")?;
    result.hold_s = held_from.elapsed().as_secs_f64();
    result.server_fds_after = fd_count(args.server_pid);
    result.server_threads_after = status_kb(pid, "Threads").ok();
    result.kib_per_connection =
        (result.rss_after_kib as f64 - result.rss_before_kib as f64) / result.attempted as f64;

    drop(clients);
    sleep(Duration::from_secs(1)).await;
    result.rss_after_close_kib = status_kb(pid, "VmRSS")?;
    Ok(result)
}
