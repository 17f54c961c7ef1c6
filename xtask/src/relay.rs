//! The relay figures' load client, `xtask bench-hop`: one player on the origin and, when an
//! edge is given, one player on the edge, both in this process on one thread (a tokio
//! `current_thread` runtime), for one window.
//!
//! Each player keeps, for every video picture that arrives from the window's start on, its
//! RTMP timestamp, its payload (a reference-counted `Bytes`, so nothing is copied or hashed
//! while frames arrive) and when its bytes reached the player's socket (the kernel's receive
//! timestamp, so that which of the two players this one thread reads first does not count).
//! After the window the two lists are matched: by timestamp (the relay keeps it), a pair
//! counting only when the payloads are identical too; when fewer than half of the frames found
//! by payload have the same timestamp at both players (a relay that rewrites timestamps), by
//! payload instead.
//! Added delay of a frame = edge arrival − origin arrival. The origin's (and edge's) CPU % over
//! the window comes from the per-thread nanosecond counters of `/proc/PID/task/TID/schedstat`
//! when every thread lived through the window, else from the clock ticks of `/proc/PID/stat`
//! (both are in the JSON).
//!
//! Every loop is bounded in count and every connection in time: the process ends by itself.

use crate::load::{note_error, picture, runtime, url_for, ArrivalClock, Quantiles};
use crate::procfs::{status_kb, CpuSnapshot, ThreadCpuSnapshot};
use anyhow::{bail, Context, Result};
use ascend_client::{RtmpClient, RtmpUrl};
use ascend_rtmp::ClientEvent;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::{sleep_until, timeout_at, Instant};

/// At most this many events per player.
const MAX_EVENTS: usize = 2_000_000;
/// The players keep receiving this long after the window, so that a frame the origin player
/// got just before the window's end can still be found at the edge.
const GRACE: Duration = Duration::from_millis(500);

/// Arguments of `xtask bench-hop`.
#[derive(Debug, Clone, clap::Args)]
pub struct HopArgs {
    /// The origin's port on 127.0.0.1.
    #[arg(long)]
    pub origin_port: u16,
    /// The application the origin player plays from.
    #[arg(long)]
    pub origin_app: String,
    /// The edge's port on 127.0.0.1 (none: the origin player alone, for the plain baseline).
    #[arg(long)]
    pub edge_port: Option<u16>,
    /// The application the edge player plays from.
    #[arg(long, default_value = "live")]
    pub edge_app: String,
    /// Stream name, the same on both.
    #[arg(long, default_value = "hop")]
    pub stream: String,
    /// Measurement window, seconds.
    #[arg(long)]
    pub seconds: f64,
    /// Time from the players' connects to the window's start, milliseconds.
    #[arg(long, default_value_t = 3000)]
    pub warmup_ms: u64,
    /// The origin's process id (CPU and memory).
    #[arg(long)]
    pub origin_pid: u32,
    /// The edge's process id (CPU).
    #[arg(long)]
    pub edge_pid: Option<u32>,
}

/// What one `bench-hop` run measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HopResult {
    /// Whether an edge player ran (the relay run) or not (the plain baseline).
    pub relayed: bool,
    /// Measurement window, seconds (wall time between the CPU snapshots).
    pub window_s: f64,
    /// Video pictures the origin player received in the window.
    pub origin_frames: usize,
    /// Video pictures the edge player received from the window's start to 0.5 s after its end.
    pub edge_frames: usize,
    /// Origin frames found at the edge.
    pub matched: usize,
    /// `timestamp` (same RTMP timestamp and payload at both players) or `payload` (same
    /// payload; used when the relay did not keep the timestamps); empty without an edge.
    pub matched_by: String,
    /// Frames found by payload at both players.
    pub matched_by_payload: usize,
    /// Of those, how many had the same RTMP timestamp at both players.
    pub same_timestamp: usize,
    /// Timestamps seen once at both players with different payloads (not counted).
    pub timestamp_payload_mismatch: usize,
    /// Edge arrival − origin arrival per matched frame, ms (p50 and p99 rounded to 0.01 ms).
    pub added_ms: Quantiles,
    /// The smallest and largest added delay, ms (0.01 ms).
    pub added_min_ms: Option<f64>,
    /// See `added_min_ms`.
    pub added_max_ms: Option<f64>,
    /// The origin's CPU % over the window (100 = one core), from `cpu_source`.
    pub origin_cpu_pct: f64,
    /// The edge's CPU % over the window (schedstat where it held, else ticks).
    pub edge_cpu_pct: Option<f64>,
    /// `schedstat` (per-thread ns) or `ticks` (`/proc/PID/stat`, 1 / CLK_TCK s each): where
    /// `origin_cpu_pct` comes from.
    pub cpu_source: String,
    /// The origin's CPU % from clock ticks.
    pub origin_cpu_ticks_pct: f64,
    /// The edge's CPU % from clock ticks.
    pub edge_cpu_ticks_pct: Option<f64>,
    /// The origin's VmRSS at the window's end, MB.
    pub origin_rss_mb: f64,
    /// This client's CPU % over the window (100 = its one core).
    pub client_cpu_pct: f64,
    /// A few of the failures, distinct.
    pub errors: Vec<String>,
}

/// `xtask bench-hop`: prints one JSON [`HopResult`].
pub fn bench_hop(args: HopArgs) -> Result<()> {
    let result = runtime()?.block_on(hop(args))?;
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

/// One video picture as a player received it.
#[derive(Debug, Clone)]
struct Arrival {
    timestamp: u32,
    payload: Bytes,
    at: Instant,
}

#[derive(Debug, Default)]
struct PlayerLog {
    arrivals: Vec<Arrival>,
    error: Option<String>,
}

/// Plays `stream` from `url` and keeps every picture arriving in `[from, until)`.
async fn player(url: RtmpUrl, stream: String, from: Instant, until: Instant) -> PlayerLog {
    let mut log = PlayerLog::default();
    let outcome = timeout_at(until, async {
        let mut client = RtmpClient::connect(&url, vec![]).await.context("connect")?;
        client.stamp_arrivals().context("SO_TIMESTAMPNS")?;
        client.play(&stream).await.context("play")?;
        let clock = ArrivalClock::now();
        for _ in 0..MAX_EVENTS {
            let event = client.next_event().await?;
            let at = clock.arrival(&client, Instant::now());
            match event {
                ClientEvent::Video {
                    timestamp, payload, ..
                } if at >= from && picture(&payload).is_some() => {
                    log.arrivals.push(Arrival {
                        timestamp,
                        payload,
                        at,
                    });
                }
                ClientEvent::Status { info, .. } if info.get_str("level") == Some("error") => {
                    bail!("error status: {info:?}");
                }
                _ => {}
            }
        }
        anyhow::Ok(())
    })
    .await;
    match outcome {
        Ok(Ok(())) | Err(_) => {}
        Ok(Err(error)) => log.error = Some(format!("{}: {error:#}", url.app)),
    }
    if log.arrivals.is_empty() && log.error.is_none() {
        log.error = Some(format!("{}: no video in the window", url.app));
    }
    log
}

/// `b − a` in ms, negative when `b` came first.
fn signed_ms(a: Instant, b: Instant) -> f64 {
    if b >= a {
        b.duration_since(a).as_secs_f64() * 1000.0
    } else {
        -(a.duration_since(b).as_secs_f64() * 1000.0)
    }
}

/// To 0.01 ms.
fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// Keyed arrivals, with keys seen more than once dropped (they cannot be matched safely).
fn unique_by<K: std::hash::Hash + Eq>(
    arrivals: &[Arrival],
    key: impl Fn(&Arrival) -> K,
) -> HashMap<K, &Arrival> {
    let mut seen: HashMap<K, Option<&Arrival>> = HashMap::with_capacity(arrivals.len());
    for arrival in arrivals {
        seen.entry(key(arrival))
            .and_modify(|slot| *slot = None)
            .or_insert(Some(arrival));
    }
    seen.into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
}

/// How the origin's and the edge's frames were paired.
#[derive(Debug, Default, PartialEq)]
struct Matching {
    by: &'static str,
    added_ms: Vec<f64>,
    by_payload: usize,
    same_timestamp: usize,
    mismatch: usize,
}

fn match_frames(origin: &[Arrival], edge: &[Arrival]) -> Matching {
    let origin_ts = unique_by(origin, |a| a.timestamp);
    let edge_ts = unique_by(edge, |a| a.timestamp);
    let mut by_timestamp = Vec::new();
    let mut mismatch = 0;
    for (ts, a) in &origin_ts {
        if let Some(b) = edge_ts.get(ts) {
            if a.payload == b.payload {
                by_timestamp.push(signed_ms(a.at, b.at));
            } else {
                mismatch += 1;
            }
        }
    }
    let origin_payload = unique_by(origin, |a| a.payload.clone());
    let edge_payload = unique_by(edge, |a| a.payload.clone());
    let mut by_payload = Vec::new();
    let mut same_timestamp = 0;
    for (payload, a) in &origin_payload {
        if let Some(b) = edge_payload.get(payload) {
            by_payload.push(signed_ms(a.at, b.at));
            if a.timestamp == b.timestamp {
                same_timestamp += 1;
            }
        }
    }
    let payload_count = by_payload.len();
    let (by, added_ms) = if by_timestamp.len() * 2 >= payload_count {
        ("timestamp", by_timestamp)
    } else {
        ("payload", by_payload)
    };
    Matching {
        by,
        added_ms,
        by_payload: payload_count,
        same_timestamp,
        mismatch,
    }
}

/// A server's CPU time at one moment, both ways.
struct ProcessCpu {
    ticks: CpuSnapshot,
    threads: ThreadCpuSnapshot,
}

impl ProcessCpu {
    fn take(pid: u32) -> Result<ProcessCpu> {
        Ok(ProcessCpu {
            ticks: CpuSnapshot::take(Some(pid))?,
            threads: ThreadCpuSnapshot::take(pid)?,
        })
    }

    /// (per-thread ns figure where it holds, clock-tick figure), CPU %.
    fn percent_until(&self, later: &ProcessCpu) -> (Option<f64>, f64) {
        (
            self.threads.percent_until(&later.threads),
            self.ticks.percent_until(&later.ticks),
        )
    }
}

async fn hop(args: HopArgs) -> Result<HopResult> {
    if !(args.seconds > 0.0 && args.seconds <= 3600.0) {
        bail!("--seconds must be in (0, 3600]");
    }
    let t0 = Instant::now();
    let start = t0 + Duration::from_millis(args.warmup_ms);
    let end = start + Duration::from_secs_f64(args.seconds);
    let origin_task = tokio::spawn(player(
        url_for(args.origin_port, &args.origin_app)?,
        args.stream.clone(),
        start,
        end + GRACE,
    ));
    let edge_task = match args.edge_port {
        Some(port) => Some(tokio::spawn(player(
            url_for(port, &args.edge_app)?,
            args.stream.clone(),
            start,
            end + GRACE,
        ))),
        None => None,
    };
    let origin_pid = Some(args.origin_pid);
    let edge_pid = args.edge_pid.filter(|_| args.edge_port.is_some());
    sleep_until(start).await;
    let origin_start = ProcessCpu::take(args.origin_pid)?;
    let edge_start = edge_pid.map(ProcessCpu::take).transpose()?;
    let client_start = CpuSnapshot::take(None)?;
    sleep_until(end).await;
    let origin_end = ProcessCpu::take(args.origin_pid)?;
    let edge_end = edge_pid.map(ProcessCpu::take).transpose()?;
    let client_end = CpuSnapshot::take(None)?;
    let origin_rss_kb = status_kb(origin_pid, "VmRSS")?;
    let window_s = end.duration_since(start).as_secs_f64();

    let (origin_precise, origin_ticks) = origin_start.percent_until(&origin_end);
    let edge = match (&edge_start, &edge_end) {
        (Some(a), Some(b)) => Some(a.percent_until(b)),
        _ => None,
    };
    let mut result = HopResult {
        relayed: edge_task.is_some(),
        window_s,
        origin_cpu_pct: origin_precise.unwrap_or(origin_ticks),
        edge_cpu_pct: edge.map(|(precise, ticks)| precise.unwrap_or(ticks)),
        cpu_source: if origin_precise.is_some() {
            "schedstat"
        } else {
            "ticks"
        }
        .to_string(),
        origin_cpu_ticks_pct: origin_ticks,
        edge_cpu_ticks_pct: edge.map(|(_, ticks)| ticks),
        origin_rss_mb: origin_rss_kb as f64 / 1024.0,
        client_cpu_pct: client_start.percent_until(&client_end),
        ..HopResult::default()
    };
    let mut origin = origin_task.await.context("the origin player panicked")?;
    if let Some(error) = origin.error.take() {
        note_error(&mut result.errors, error);
    }
    // The origin's frames are those of the window; the edge's may come up to GRACE later.
    origin.arrivals.retain(|a| a.at < end);
    result.origin_frames = origin.arrivals.len();
    if let Some(task) = edge_task {
        let mut edge = task.await.context("the edge player panicked")?;
        if let Some(error) = edge.error.take() {
            note_error(&mut result.errors, error);
        }
        result.edge_frames = edge.arrivals.len();
        let matching = match_frames(&origin.arrivals, &edge.arrivals);
        result.matched = matching.added_ms.len();
        result.matched_by = matching.by.to_string();
        result.matched_by_payload = matching.by_payload;
        result.same_timestamp = matching.same_timestamp;
        result.timestamp_payload_mismatch = matching.mismatch;
        result.added_min_ms = matching
            .added_ms
            .iter()
            .copied()
            .reduce(f64::min)
            .map(round2);
        result.added_max_ms = matching
            .added_ms
            .iter()
            .copied()
            .reduce(f64::max)
            .map(round2);
        let mut added = Quantiles::of(matching.added_ms);
        added.p50 = added.p50.map(round2);
        added.p99 = added.p99.map(round2);
        result.added_ms = added;
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::{match_frames, round2, Arrival};
    use bytes::Bytes;
    use std::time::Duration;
    use tokio::time::Instant;

    fn frames(base: Instant, delay_us: u64, ts_offset: u32) -> Vec<Arrival> {
        (0..10u32)
            .map(|i| Arrival {
                timestamp: i * 33 + ts_offset,
                payload: Bytes::from(vec![0x27, 1, i as u8]),
                at: base
                    + Duration::from_millis(u64::from(i) * 33)
                    + Duration::from_micros(delay_us),
            })
            .collect()
    }

    #[test]
    fn frames_match_by_timestamp_when_kept() {
        let base = Instant::now();
        let m = match_frames(&frames(base, 0, 0), &frames(base, 250, 0));
        assert_eq!(
            (m.by, m.added_ms.len(), m.same_timestamp),
            ("timestamp", 10, 10)
        );
        assert!(m.added_ms.iter().all(|d| (d - 0.25).abs() < 1e-9));
    }

    #[test]
    fn frames_match_by_payload_when_timestamps_are_rewritten() {
        let base = Instant::now();
        let m = match_frames(&frames(base, 0, 0), &frames(base, 1000, 5000));
        assert_eq!(
            (m.by, m.added_ms.len(), m.same_timestamp),
            ("payload", 10, 0)
        );
        assert!(m.added_ms.iter().all(|d| (d - 1.0).abs() < 1e-9));
    }

    #[test]
    fn rounding_is_to_a_hundredth() {
        assert_eq!(round2(0.123_4), 0.12);
        assert_eq!(round2(-0.005_1), -0.01);
    }
}
