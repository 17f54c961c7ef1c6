//! The benchmark's load client: many RTMP players in one process on one thread (a tokio
//! `current_thread` runtime, so the server under test gets the other core), built on the
//! project's own client. `cargo xtask bench` runs it as a separate, optimised process
//! (`xtask bench-load`, `xtask bench-setup`) and reads one JSON line from its stdout.
//!
//! Every loop is bounded in count and every connection in time: the process ends by itself.

use crate::procfs::{named_threads_cpu_ns, status_kb, CpuSnapshot};
use anyhow::{bail, Context, Result};
use ascend_client::{RtmpClient, RtmpUrl};
use ascend_rtmp::ClientEvent;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::{sleep_until, timeout, timeout_at, Instant};

/// At most this many events per subscriber (far above 30 fps video + audio for minutes).
const MAX_EVENTS: usize = 2_000_000;
/// "Kept up" needs video in this last part of the window.
const RECENT: Duration = Duration::from_secs(2);
/// "Kept up" allows the lag to grow this much (ms) from the window's start to its end.
const LAG_GROWTH_MS: f64 = 500.0;
/// Above this CPU % of its one core, the load client is the bottleneck.
pub const SATURATED_PCT: f64 = 90.0;

/// Arguments of `xtask bench-load`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// Server port on 127.0.0.1.
    #[arg(long)]
    pub port: u16,
    /// Application.
    #[arg(long, default_value = "livestreams")]
    pub app: String,
    /// Stream name.
    #[arg(long, default_value = "bench")]
    pub stream: String,
    /// Number of players.
    #[arg(long)]
    pub subscribers: usize,
    /// Measurement window, seconds.
    #[arg(long)]
    pub seconds: f64,
    /// The players' connects are spread over this many milliseconds.
    #[arg(long, default_value_t = 1500)]
    pub ramp_ms: u64,
    /// Time after the ramp before the window starts, milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub warmup_ms: u64,
    /// The server's process id, to sample its CPU and memory.
    #[arg(long)]
    pub server_pid: u32,
    /// A publisher tap's log (see `tap.rs`): with it, the result has the time each frame
    /// spent in the server.
    #[arg(long)]
    pub tap_log: Option<std::path::PathBuf>,
    /// Time frames when this process reads them, not by the kernel's receive timestamps.
    #[arg(long)]
    pub read_time_arrivals: bool,
    /// Writes every lag sample of the window to this CSV file (player, kind, RTMP timestamp,
    /// payload bytes, arrival ms into the window, lag ms, lag+ ms), to see which frames make
    /// a tail.
    #[arg(long)]
    pub dump_lags: Option<std::path::PathBuf>,
}

/// Arguments of `xtask bench-setup`.
#[derive(Debug, Clone, clap::Args)]
pub struct SetupArgs {
    /// Server port on 127.0.0.1.
    #[arg(long)]
    pub port: u16,
    /// Application.
    #[arg(long, default_value = "livestreams")]
    pub app: String,
    /// Stream name.
    #[arg(long, default_value = "bench")]
    pub stream: String,
    /// Setups in flight at once (each batch waits for the previous one).
    #[arg(long)]
    pub concurrency: usize,
    /// Setups in all.
    #[arg(long, default_value_t = 200)]
    pub count: usize,
}

/// Arguments of `xtask bench-script` (Ascend only: application scripts).
#[derive(Debug, Clone, clap::Args)]
pub struct ScriptArgs {
    /// Server port on 127.0.0.1.
    #[arg(long)]
    pub port: u16,
    /// The application without a script.
    #[arg(long, default_value = "livestreams")]
    pub plain_app: String,
    /// The application with a `main.asc`.
    #[arg(long, default_value = "scripted")]
    pub scripted_app: String,
    /// Stream name (published in the default instance of both applications).
    #[arg(long, default_value = "bench")]
    pub stream: String,
    /// Concurrency levels, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "10,100")]
    pub concurrency: Vec<usize>,
    /// Setups per application, kind and concurrency.
    #[arg(long, default_value_t = 1000)]
    pub count: usize,
    /// Connects to never-used instances (and as many to a running one) per application.
    #[arg(long, default_value_t = 20)]
    pub instance_samples: usize,
    /// The server's process id, to read its memory and threads.
    #[arg(long)]
    pub server_pid: u32,
}

/// p50 and p99 of a set of values (None when it is empty).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Quantiles {
    /// Median.
    pub p50: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// How many values.
    pub count: usize,
}

impl Quantiles {
    /// Nearest-rank p50 and p99 of `values`.
    pub fn of(mut values: Vec<f64>) -> Quantiles {
        values.retain(|v| v.is_finite());
        values.sort_by(f64::total_cmp);
        Quantiles {
            p50: percentile(&values, 50.0),
            p99: percentile(&values, 99.0),
            count: values.len(),
        }
    }
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

pub(crate) fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    percentile(values, 50.0)
}

/// What one `bench-load` run measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LoadResult {
    /// Players started.
    pub subscribers: usize,
    /// Players that got NetStream.Play.Start.
    pub connected: usize,
    /// Players that failed or never finished their setup.
    pub failed: usize,
    /// A few of the failures, distinct.
    pub errors: Vec<String>,
    /// Players that received video in the window's last 2 s with a lag that did not grow.
    pub kept_up: usize,
    /// Measurement window, seconds (wall time between the CPU snapshots).
    pub window_s: f64,
    /// Media payload bytes (audio + video tag bodies) all players received in the window.
    pub bytes_total: u64,
    /// Per player bytes received in the window.
    pub bytes_per_subscriber: Quantiles,
    /// Delivered Mbit/s: bytes_total * 8 / window.
    pub mbit_per_s: f64,
    /// Time from the play request (createStream + play) to the first video frame, ms.
    pub first_frame_ms: Quantiles,
    /// Time from the play request to the first video keyframe, ms.
    pub first_keyframe_ms: Quantiles,
    /// (wall clock since the first video frame) − (timestamp − its timestamp), every audio and
    /// video frame in the window of every player, ms.
    pub lag_ms: Quantiles,
    /// The same lag less each player's smallest lag (delay beyond its best frame), ms.
    pub lag_over_min_ms: Quantiles,
    /// `lag_over_min_ms` of video frames only.
    pub video_lag_over_min_ms: Quantiles,
    /// `lag_over_min_ms` of audio frames only.
    pub audio_lag_over_min_ms: Quantiles,
    /// Audio lag less video lag, per player, medians (how late a server sends audio next to
    /// video), ms.
    pub audio_minus_video_lag_ms: Quantiles,
    /// Fan-out spread of video frames: when a player got a frame less when the first player got
    /// it, over every player and frame, ms. Separates the server's fan-out (and this client's
    /// reading) from what comes before it (the publisher, the server's intake).
    pub video_fanout_spread_ms: Quantiles,
    /// The same for audio frames.
    pub audio_fanout_spread_ms: Quantiles,
    /// Lag of each video frame's first arrival at any player, less the smallest such lag, ms:
    /// the publisher's own jitter plus the server's delay before its fan-out starts.
    pub video_first_arrival_lag_ms: Quantiles,
    /// The same for audio frames.
    pub audio_first_arrival_lag_ms: Quantiles,
    /// Lag on one clock for the whole stream: when a player got a frame less the frame's
    /// timestamp, less the smallest such difference of any frame's first arrival (audio or
    /// video), every player and frame, ms. Unlike `lag_over_min_ms` it keeps what is the same
    /// for every frame of one player (its place in the fan-out round) and does not move with
    /// a server's best frame of each player: the end-to-end delay beyond the best the run saw.
    pub stream_clock_lag_ms: Quantiles,
    /// `stream_clock_lag_ms` of video frames only.
    pub video_stream_clock_lag_ms: Quantiles,
    /// `stream_clock_lag_ms` of audio frames only.
    pub audio_stream_clock_lag_ms: Quantiles,
    /// Time in the server: when a player got a frame less when the frame wholly passed the
    /// publisher's tap on its way in, every player and frame, ms (empty without a tap). Free
    /// of the publisher's own lateness and of any reference frame.
    pub server_delay_ms: Quantiles,
    /// `server_delay_ms` of video frames only.
    pub video_server_delay_ms: Quantiles,
    /// `server_delay_ms` of audio frames only.
    pub audio_server_delay_ms: Quantiles,
    /// Frames received in the window that the tap's log did not have (a server that rewrites
    /// timestamps would show here).
    pub server_delay_unmatched: usize,
    /// Server CPU % over the window (100 = one core).
    pub server_cpu_pct: f64,
    /// Largest VmRSS sampled from the first connect to the window's end, MB.
    pub server_rss_peak_mb: f64,
    /// The server's VmHWM (peak RSS over its life) at the window's end, MB.
    pub server_hwm_mb: f64,
    /// This load client's CPU % over the window (100 = its one core).
    pub client_cpu_pct: f64,
    /// Whether the load client was above ~90 % of its core (figures then measure the client).
    pub client_saturated: bool,
    /// How long after a frame's bytes reached its player's socket this client's task got to
    /// it, ms: the load client's own delay. Lag and arrival figures leave it out, since they
    /// time frames by the kernel's receive timestamps (`SO_TIMESTAMPNS`).
    #[serde(default)]
    pub client_read_delay_ms: Quantiles,
}

impl LoadResult {
    /// What a printed row ends with: a warning when the load client was saturated.
    pub fn saturation_mark(&self) -> &'static str {
        if self.client_saturated {
            "  load client saturated"
        } else {
            ""
        }
    }
}

/// What one `bench-setup` run measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SetupResult {
    /// Setups in flight at once.
    pub concurrency: usize,
    /// Setups tried.
    pub attempted: usize,
    /// Setups that reached NetStream.Play.Start.
    pub succeeded: usize,
    /// A few of the failures, distinct.
    pub errors: Vec<String>,
    /// Wall time for all of them, seconds.
    pub elapsed_s: f64,
    /// Successful setups per second.
    pub setups_per_s: f64,
    /// TCP connect → handshake → connect → createStream → play → Play.Start, ms.
    pub setup_ms: Quantiles,
    /// The first part of it: TCP connect → handshake → connect → `_result`, ms.
    pub connect_ms: Quantiles,
    /// This client's CPU % meanwhile.
    pub client_cpu_pct: f64,
}

/// One application's side of a plain-versus-scripted comparison.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScriptSide {
    /// The application path connected to.
    pub app: String,
    /// Setups tried.
    pub attempted: usize,
    /// Setups that finished.
    pub succeeded: usize,
    /// A few of the failures, distinct.
    pub errors: Vec<String>,
    /// Wall time of this side's batches only, seconds.
    pub busy_s: f64,
    /// Successful setups per second of `busy_s`.
    pub setups_per_s: f64,
    /// Time per setup, ms.
    pub ms: Quantiles,
}

/// Setups into the application without a script and the one with a script, at one
/// concurrency, in alternating batches (plain, scripted, plain, ...) so drift hits both alike.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScriptSetup {
    /// `connect`: TCP connect → handshake → connect → NetConnection.Connect.Success;
    /// `play`: the same, then createStream → play → NetStream.Play.Start.
    pub kind: String,
    /// Setups in flight at once.
    pub concurrency: usize,
    /// Into the application without a script.
    pub plain: ScriptSide,
    /// Into the application whose `main.asc` decides the connect.
    pub scripted: ScriptSide,
    /// (scripted p50 − plain p50) / plain p50.
    pub cost_p50: Option<f64>,
    /// (scripted p99 − plain p99) / plain p99.
    pub cost_p99: Option<f64>,
    /// (plain setups/s − scripted setups/s) / scripted setups/s: the extra wall time per
    /// setup (positive: the script costs).
    pub cost_rate: Option<f64>,
    /// This load client's CPU % over both sides' batches (100 = its one core).
    pub client_cpu_pct: f64,
    /// On-CPU time of the server's script threads per scripted setup, µs: the script host's
    /// own cost (the `Client` object, `onConnect`, `onDisconnect`, the thread's wake-ups),
    /// which every connect of an instance waits behind.
    #[serde(default)]
    pub script_thread_us: Option<f64>,
}

/// Connects to never-used instances against connects to a running one.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct InstanceStartSide {
    /// The application.
    pub app: String,
    /// Whether it has a script.
    pub scripted: bool,
    /// TCP connect → NetConnection.Connect.Success, each to a fresh instance `APP/newPIDxI`.
    pub new_instance_ms: Quantiles,
    /// The same to the running default instance, alternating with the above.
    pub running_instance_ms: Quantiles,
    /// (new p50 − running p50) / running p50.
    pub cost_p50: Option<f64>,
    /// The server's VmRSS before the first new instance, MB.
    pub rss_before_mb: f64,
    /// The server's VmRSS after the last one, MB.
    pub rss_after_mb: f64,
    /// (after − before) / new instances started, kB.
    pub rss_per_instance_kb: f64,
    /// The server's threads before the first new instance.
    pub threads_before: u64,
    /// The server's threads after the last one.
    pub threads_after: u64,
    /// A few of the failures, distinct.
    pub errors: Vec<String>,
}

/// What one `bench-script` run measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScriptResult {
    /// The script of the scripted application.
    pub script: String,
    /// The server's VmRSS when these figures started, MB.
    pub server_rss_start_mb: f64,
    /// The server's VmRSS after the setups (before the instance starts), MB.
    pub server_rss_after_setups_mb: f64,
    /// Per kind and concurrency.
    pub setups: Vec<ScriptSetup>,
    /// Instance start, for the scripted application then the plain one (one at a time).
    pub instance_start: Vec<InstanceStartSide>,
}

/// `(a - b) / b` when both are there and b > 0.
fn relative(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if a.is_finite() && b.is_finite() && b > 0.0 => Some((a - b) / b),
        _ => None,
    }
}

pub(crate) fn url_for(port: u16, app: &str) -> Result<RtmpUrl> {
    Ok(RtmpUrl::parse(&format!("rtmp://127.0.0.1:{port}/{app}"))?)
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")
}

pub(crate) fn note_error(errors: &mut Vec<String>, error: String) {
    if errors.len() < 5 && !errors.contains(&error) {
        errors.push(error);
    }
}

/// `xtask bench-load`: prints one JSON [`LoadResult`].
pub fn bench_load(args: LoadArgs) -> Result<()> {
    let result = runtime()?.block_on(load(args))?;
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

/// `xtask bench-setup`: prints one JSON [`SetupResult`].
pub fn bench_setup(args: SetupArgs) -> Result<()> {
    let result = runtime()?.block_on(setups(args))?;
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

/// `xtask bench-script`: prints one JSON [`ScriptResult`].
pub fn bench_script(args: ScriptArgs) -> Result<()> {
    let result = runtime()?.block_on(script_figures(args))?;
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

#[derive(Debug)]
struct Window {
    start: Instant,
    end: Instant,
    /// None with `--read-time-arrivals`.
    clock: Option<ArrivalClock>,
}

/// Places the kernel's receive timestamps (`RtmpClient::stamp_arrivals`, on the wall clock) on
/// the monotonic clock the load clients measure with: one moment read on both clocks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ArrivalClock {
    wall: std::time::SystemTime,
    monotonic: Instant,
}

impl ArrivalClock {
    /// Reads both clocks now.
    pub(crate) fn now() -> ArrivalClock {
        ArrivalClock {
            wall: std::time::SystemTime::now(),
            monotonic: Instant::now(),
        }
    }

    /// When the bytes of `client`'s last read reached its socket: the kernel's timestamp,
    /// never later than `read_at` (when this process got to them), or `read_at` itself when
    /// the read came without a timestamp.
    pub(crate) fn arrival(&self, client: &RtmpClient, read_at: Instant) -> Instant {
        self.place(client.last_arrival(), read_at)
    }

    /// [`ArrivalClock::arrival`] for a stamp `wall` (None: the read had none).
    fn place(&self, wall: Option<std::time::SystemTime>, read_at: Instant) -> Instant {
        let Some(wall) = wall else {
            return read_at;
        };
        let at = match wall.duration_since(self.wall) {
            Ok(after) => self.monotonic + after,
            Err(before) => self
                .monotonic
                .checked_sub(before.duration())
                .unwrap_or(self.monotonic),
        };
        at.min(read_at)
    }
}

#[derive(Debug, Default)]
struct SubStats {
    connected: bool,
    error: Option<String>,
    first_frame_ms: Option<f64>,
    first_keyframe_ms: Option<f64>,
    last_video: Option<Instant>,
    bytes: u64,
    /// For each frame in the window, how long after its bytes reached the socket this
    /// client's task got to it (ms): the load client's own delay, left out of the lag.
    read_delays: Vec<f64>,
    /// One per audio and video frame in the window.
    lags: Vec<LagSample>,
    min_lag: Option<f64>,
}

/// For a video message that carries a picture, whether it is a keyframe; None for what
/// carries none (sequence headers, end of sequence, metadata, command frames), whose
/// timestamps say nothing about when the picture was live.
pub(crate) fn picture(payload: &[u8]) -> Option<bool> {
    let first = *payload.first()?;
    // FLV video tag: frame type in bits 4-6 (bit 7 flags enhanced RTMP), 1 = key frame,
    // 5 = video info / command frame.
    let frame_type = (first >> 4) & 0x7;
    if frame_type == 5 {
        return None;
    }
    if first & 0x80 != 0 {
        // Enhanced RTMP: packet type in the low nibble; 0 SequenceStart, 2 SequenceEnd,
        // 4 Metadata carry no picture.
        if matches!(first & 0x0f, 0 | 2 | 4) {
            return None;
        }
    } else if matches!(first & 0x0f, 7 | 12) && payload.get(1) != Some(&1) {
        // AVC / HEVC: packet type 0 is the sequence header, 2 the end of sequence.
        return None;
    }
    Some(frame_type == 1)
}

async fn subscriber(
    url: RtmpUrl,
    stream: String,
    start: Instant,
    window: std::sync::Arc<Window>,
) -> SubStats {
    sleep_until(start).await;
    let mut stats = SubStats::default();
    let outcome = timeout_at(
        window.end,
        play_and_count(&url, &stream, &window, &mut stats),
    )
    .await;
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(error)) => stats.error = Some(format!("{error:#}")),
        Err(_) if !stats.connected => {
            stats.error = Some("setup did not finish before the window ended".to_string())
        }
        Err(_) => {}
    }
    stats
}

async fn play_and_count(
    url: &RtmpUrl,
    stream: &str,
    window: &Window,
    stats: &mut SubStats,
) -> Result<()> {
    let mut client = RtmpClient::connect(url, vec![]).await.context("connect")?;
    // Frames are timed when their bytes reached this player's socket (the kernel's receive
    // timestamp), not when this one thread, busy with a thousand players, got round to them.
    if window.clock.is_some() {
        client.stamp_arrivals().context("SO_TIMESTAMPNS")?;
    }
    let requested = Instant::now();
    client.play(stream).await.context("play")?;
    stats.connected = true;
    let mut first: Option<(Instant, u32)> = None;
    for _ in 0..MAX_EVENTS {
        let event = client.next_event().await?;
        let read_at = Instant::now();
        let now = window
            .clock
            .map_or(read_at, |clock| clock.arrival(&client, read_at));
        let in_window = now >= window.start && now < window.end;
        if in_window && matches!(event, ClientEvent::Video { .. } | ClientEvent::Audio { .. }) {
            stats
                .read_delays
                .push(read_at.duration_since(now).as_secs_f64() * 1000.0);
        }
        match event {
            ClientEvent::Video {
                timestamp, payload, ..
            } => {
                if in_window {
                    stats.bytes += payload.len() as u64;
                }
                let Some(keyframe) = picture(&payload) else {
                    continue;
                };
                let since_request = now.duration_since(requested).as_secs_f64() * 1000.0;
                let (t0, ts0) = *first.get_or_insert((now, timestamp));
                stats.first_frame_ms.get_or_insert(since_request);
                if keyframe && stats.first_keyframe_ms.is_none() {
                    stats.first_keyframe_ms = Some(since_request);
                }
                record_lag(
                    stats,
                    window,
                    now,
                    (t0, ts0),
                    (timestamp, false, payload.len()),
                );
                stats.last_video = Some(now);
            }
            ClientEvent::Audio {
                timestamp, payload, ..
            } => {
                if in_window {
                    stats.bytes += payload.len() as u64;
                }
                // Audio counts too: a server may hold audio back to batch writes. Sequence
                // headers (AAC packet type 0) carry no sound and are skipped.
                let sound = payload.len() > 2 && !(payload[0] >> 4 == 10 && payload[1] == 0);
                if let (Some(anchor), true) = (first, sound) {
                    record_lag(stats, window, now, anchor, (timestamp, true, payload.len()));
                }
            }
            ClientEvent::Status { info, .. } if info.get_str("level") == Some("error") => {
                bail!("error status: {info:?}");
            }
            _ => {}
        }
    }
    Ok(())
}

/// The lag of one frame a player received in the window.
#[derive(Debug, Clone, Copy)]
struct LagSample {
    /// Received this long after the window's start, ms.
    at_ms: f64,
    /// Lag, ms (see [`record_lag`]).
    lag_ms: f64,
    audio: bool,
    /// The frame's payload length.
    bytes: u32,
    /// The frame's RTMP timestamp (with `audio`, it names the frame across players).
    timestamp: u32,
}

/// Records the lag of a frame with `timestamp` received at `now`, against the player's first
/// video frame `anchor` (wall clock, timestamp).
fn record_lag(
    stats: &mut SubStats,
    window: &Window,
    now: Instant,
    anchor: (Instant, u32),
    (timestamp, audio, bytes): (u32, bool, usize),
) {
    let (t0, ts0) = anchor;
    let lag =
        now.duration_since(t0).as_secs_f64() * 1000.0 - (f64::from(timestamp) - f64::from(ts0));
    stats.min_lag = Some(stats.min_lag.map_or(lag, |m: f64| m.min(lag)));
    if now >= window.start && now < window.end {
        let at = now.duration_since(window.start).as_secs_f64() * 1000.0;
        stats.lags.push(LagSample {
            at_ms: at,
            lag_ms: lag,
            audio,
            bytes: u32::try_from(bytes).unwrap_or(u32::MAX),
            timestamp,
        });
    }
}

/// Whether a player kept up: video in the last 2 s, and the lag in the last 2 s not more than
/// 500 ms above the lag in the first 2 s of the window.
fn kept_up(stats: &SubStats, window: &Window) -> bool {
    let Some(last) = stats.last_video else {
        return false;
    };
    if last + RECENT < window.end {
        return false;
    }
    let window_ms = window.end.duration_since(window.start).as_secs_f64() * 1000.0;
    let recent_ms = RECENT.as_secs_f64() * 1000.0;
    let mut early: Vec<f64> = stats
        .lags
        .iter()
        .filter(|sample| sample.at_ms < recent_ms)
        .map(|sample| sample.lag_ms)
        .collect();
    if early.is_empty() {
        early = stats
            .lags
            .iter()
            .take(30)
            .map(|sample| sample.lag_ms)
            .collect();
    }
    let mut late: Vec<f64> = stats
        .lags
        .iter()
        .filter(|sample| sample.at_ms >= window_ms - recent_ms)
        .map(|sample| sample.lag_ms)
        .collect();
    match (median(&mut early), median(&mut late)) {
        (Some(early), Some(late)) => late - early <= LAG_GROWTH_MS,
        _ => false,
    }
}

struct ServerSample {
    server_cpu_pct: f64,
    client_cpu_pct: f64,
    rss_peak_kb: u64,
    hwm_kb: u64,
    window_s: f64,
}

/// Samples the server's RSS every 250 ms until the window ends, and both processes' CPU
/// time at the window's start and end.
async fn sample_server(pid: u32, window: std::sync::Arc<Window>) -> Result<ServerSample> {
    let step = Duration::from_millis(250);
    let total = window.end.saturating_duration_since(Instant::now());
    let iterations = (total.as_millis() / step.as_millis()) as usize + 20;
    let mut rss_peak_kb = 0;
    let mut started = None;
    for _ in 0..iterations {
        let now = Instant::now();
        rss_peak_kb = rss_peak_kb.max(status_kb(Some(pid), "VmRSS")?);
        if started.is_none() && now >= window.start {
            started = Some((CpuSnapshot::take(Some(pid))?, CpuSnapshot::take(None)?));
        }
        if now >= window.end {
            break;
        }
        let limit = if started.is_none() {
            window.start
        } else {
            window.end
        };
        sleep_until((now + step).min(limit)).await;
    }
    let (server_start, client_start) = match started {
        Some(s) => s,
        None => bail!("the sampler never reached the window"),
    };
    let server_end = CpuSnapshot::take(Some(pid))?;
    let client_end = CpuSnapshot::take(None)?;
    rss_peak_kb = rss_peak_kb.max(status_kb(Some(pid), "VmRSS")?);
    Ok(ServerSample {
        server_cpu_pct: server_start.percent_until(&server_end),
        client_cpu_pct: client_start.percent_until(&client_end),
        rss_peak_kb,
        hwm_kb: status_kb(Some(pid), "VmHWM")?,
        window_s: window.end.duration_since(window.start).as_secs_f64(),
    })
}

async fn load(args: LoadArgs) -> Result<LoadResult> {
    let url = url_for(args.port, &args.app)?;
    let n = args.subscribers;
    let t0 = Instant::now();
    let t0_wall_us = crate::tap::wall_us();
    let ramp = Duration::from_millis(args.ramp_ms);
    let start = t0 + ramp + Duration::from_millis(args.warmup_ms);
    let window = std::sync::Arc::new(Window {
        start,
        end: start + Duration::from_secs_f64(args.seconds),
        clock: (!args.read_time_arrivals).then(ArrivalClock::now),
    });
    let sampler = tokio::spawn(sample_server(args.server_pid, window.clone()));
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let at = t0 + ramp.mul_f64(i as f64 / n.max(1) as f64);
        handles.push(tokio::spawn(subscriber(
            url.clone(),
            args.stream.clone(),
            at,
            window.clone(),
        )));
    }
    let mut all = Vec::with_capacity(n);
    for handle in handles {
        all.push(handle.await.context("a subscriber task panicked")?);
    }
    let sample = sampler.await.context("the sampler panicked")??;

    let mut result = LoadResult {
        subscribers: n,
        window_s: sample.window_s,
        server_cpu_pct: sample.server_cpu_pct,
        server_rss_peak_mb: sample.rss_peak_kb as f64 / 1024.0,
        server_hwm_mb: sample.hwm_kb as f64 / 1024.0,
        client_cpu_pct: sample.client_cpu_pct,
        client_saturated: sample.client_cpu_pct > SATURATED_PCT,
        ..LoadResult::default()
    };
    let (mut first, mut key, mut lags, mut over_min, mut bytes) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut video_over_min, mut audio_over_min, mut audio_minus_video) = (vec![], vec![], vec![]);
    let mut read_delays = vec![];
    for stats in &all {
        if stats.connected {
            result.connected += 1;
        }
        if let Some(error) = &stats.error {
            note_error(&mut result.errors, error.clone());
        }
        if kept_up(stats, &window) {
            result.kept_up += 1;
        }
        result.bytes_total += stats.bytes;
        read_delays.extend_from_slice(&stats.read_delays);
        bytes.push(stats.bytes as f64);
        first.extend(stats.first_frame_ms);
        key.extend(stats.first_keyframe_ms);
        let min = stats.min_lag.unwrap_or(0.0);
        let (mut player_audio, mut player_video) = (vec![], vec![]);
        for sample in &stats.lags {
            let (lag, over) = (sample.lag_ms, sample.lag_ms - min);
            lags.push(lag);
            over_min.push(over);
            if sample.audio {
                player_audio.push(lag);
                audio_over_min.push(over);
            } else {
                player_video.push(lag);
                video_over_min.push(over);
            }
        }
        if let (Some(a), Some(v)) = (median(&mut player_audio), median(&mut player_video)) {
            audio_minus_video.push(a - v);
        }
    }
    result.failed = n - result.connected;
    result.mbit_per_s = if result.window_s > 0.0 {
        result.bytes_total as f64 * 8.0 / result.window_s / 1e6
    } else {
        0.0
    };
    result.bytes_per_subscriber = Quantiles::of(bytes);
    result.first_frame_ms = Quantiles::of(first);
    result.first_keyframe_ms = Quantiles::of(key);
    result.lag_ms = Quantiles::of(lags);
    result.client_read_delay_ms = Quantiles::of(read_delays);
    result.lag_over_min_ms = Quantiles::of(over_min);
    result.video_lag_over_min_ms = Quantiles::of(video_over_min);
    result.audio_lag_over_min_ms = Quantiles::of(audio_over_min);
    result.audio_minus_video_lag_ms = Quantiles::of(audio_minus_video);
    let fanout = FanoutFigures::of(&all);
    result.video_fanout_spread_ms = fanout.video_spread;
    result.audio_fanout_spread_ms = fanout.audio_spread;
    result.video_first_arrival_lag_ms = fanout.video_first_arrival;
    result.audio_first_arrival_lag_ms = fanout.audio_first_arrival;
    result.stream_clock_lag_ms = fanout.stream_clock_lag;
    result.video_stream_clock_lag_ms = fanout.video_stream_clock_lag;
    result.audio_stream_clock_lag_ms = fanout.audio_stream_clock_lag;
    if let Some(path) = &args.dump_lags {
        dump_lags(path, &all).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(log) = &args.tap_log {
        let passages = crate::tap::read_passages(log)?;
        // The window's start on the wall clock, in µs.
        let window_start_us =
            t0_wall_us as f64 + window.start.duration_since(t0).as_secs_f64() * 1e6;
        let samples: Vec<&LagSample> = all.iter().flat_map(|stats| &stats.lags).collect();
        let delays: Vec<(bool, f64)> = samples
            .iter()
            .filter_map(|sample| {
                let passed_us = *passages.get(&(sample.audio, sample.timestamp))?;
                let delay_ms =
                    (window_start_us + sample.at_ms * 1000.0 - passed_us as f64) / 1000.0;
                Some((sample.audio, delay_ms))
            })
            .collect();
        result.server_delay_unmatched = samples.len() - delays.len();
        (
            result.server_delay_ms,
            result.video_server_delay_ms,
            result.audio_server_delay_ms,
        ) = quantiles_by_kind(delays);
    }
    Ok(result)
}

/// Writes every player's lag samples as CSV (see [`LoadArgs::dump_lags`]).
fn dump_lags(path: &std::path::Path, players: &[SubStats]) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "player,kind,timestamp,bytes,at_ms,lag_ms,lag_plus_ms")?;
    for (player, stats) in players.iter().enumerate() {
        let min = stats.min_lag.unwrap_or(0.0);
        for sample in &stats.lags {
            writeln!(
                out,
                "{player},{},{},{},{:.3},{:.3},{:.3}",
                if sample.audio { "audio" } else { "video" },
                sample.timestamp,
                sample.bytes,
                sample.at_ms,
                sample.lag_ms,
                sample.lag_ms - min
            )?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Quantiles of `(audio, value)` pairs: of all values, of video's, of audio's.
fn quantiles_by_kind(
    values: impl IntoIterator<Item = (bool, f64)>,
) -> (Quantiles, Quantiles, Quantiles) {
    let (mut video, mut audio) = (vec![], vec![]);
    for (is_audio, value) in values {
        if is_audio { &mut audio } else { &mut video }.push(value);
    }
    let all = video.iter().chain(&audio).copied().collect();
    (
        Quantiles::of(all),
        Quantiles::of(video),
        Quantiles::of(audio),
    )
}

/// What the per-frame view of every player's samples shows: how long one frame takes to reach
/// every player (spread), when it first reaches any (first arrival), and each arrival on the
/// stream's one clock.
#[derive(Default)]
struct FanoutFigures {
    video_spread: Quantiles,
    audio_spread: Quantiles,
    video_first_arrival: Quantiles,
    audio_first_arrival: Quantiles,
    stream_clock_lag: Quantiles,
    video_stream_clock_lag: Quantiles,
    audio_stream_clock_lag: Quantiles,
}

impl FanoutFigures {
    /// A frame is named by its kind and RTMP timestamp. Frames fewer than half the players got
    /// in the window (the window's edges, or a server that rewrites timestamps per player) are
    /// left out; with no frame left, every figure stays empty.
    fn of(players: &[SubStats]) -> Self {
        // (audio, timestamp) -> (earliest arrival in the window ms, players that got it)
        let mut frames: HashMap<(bool, u32), (f64, usize)> = HashMap::new();
        for sample in players.iter().flat_map(|stats| &stats.lags) {
            let entry = frames
                .entry((sample.audio, sample.timestamp))
                .or_insert((f64::INFINITY, 0));
            entry.0 = entry.0.min(sample.at_ms);
            entry.1 += 1;
        }
        let enough = players.len().div_ceil(2).max(1);
        frames.retain(|_, (_, count)| *count >= enough);
        let mut figures = FanoutFigures::default();
        // The best first arrival of any frame against its timestamp: the stream clock's zero.
        let best = frames
            .iter()
            .map(|((_, timestamp), (first, _))| first - f64::from(*timestamp))
            .fold(f64::INFINITY, f64::min);
        (
            figures.stream_clock_lag,
            figures.video_stream_clock_lag,
            figures.audio_stream_clock_lag,
        ) = quantiles_by_kind(
            players
                .iter()
                .flat_map(|stats| &stats.lags)
                .filter(|sample| frames.contains_key(&(sample.audio, sample.timestamp)))
                .map(|sample| {
                    (
                        sample.audio,
                        sample.at_ms - f64::from(sample.timestamp) - best,
                    )
                }),
        );
        for audio in [false, true] {
            let spread: Vec<f64> = players
                .iter()
                .flat_map(|stats| &stats.lags)
                .filter(|sample| sample.audio == audio)
                .filter_map(|sample| {
                    let (first, _) = frames.get(&(audio, sample.timestamp))?;
                    Some(sample.at_ms - first)
                })
                .collect();
            // First arrival against the timestamp, on one clock for the whole stream.
            let offsets: Vec<f64> = frames
                .iter()
                .filter(|((kind, _), _)| *kind == audio)
                .map(|((_, timestamp), (first, _))| first - f64::from(*timestamp))
                .collect();
            let smallest = offsets.iter().copied().fold(f64::INFINITY, f64::min);
            let first_arrival = offsets.iter().map(|offset| offset - smallest).collect();
            if audio {
                figures.audio_spread = Quantiles::of(spread);
                figures.audio_first_arrival = Quantiles::of(first_arrival);
            } else {
                figures.video_spread = Quantiles::of(spread);
                figures.video_first_arrival = Quantiles::of(first_arrival);
            }
        }
        figures
    }
}

/// One full setup: TCP connect → handshake → connect → createStream → play → Play.Start.
/// Returns (whole setup, connect part) in ms.
async fn one_setup(url: &RtmpUrl, stream: &str) -> Result<(f64, f64)> {
    let started = Instant::now();
    let mut client = RtmpClient::connect(url, vec![]).await.context("connect")?;
    let connect_ms = started.elapsed().as_secs_f64() * 1000.0;
    client.play(stream).await.context("play")?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    drop(client);
    Ok((ms, connect_ms))
}

async fn setups(args: SetupArgs) -> Result<SetupResult> {
    let url = url_for(args.port, &args.app)?;
    let concurrency = args.concurrency.max(1);
    let cpu_start = CpuSnapshot::take(None)?;
    let started = Instant::now();
    let mut result = SetupResult {
        concurrency,
        attempted: args.count,
        ..SetupResult::default()
    };
    let mut times = Vec::with_capacity(args.count);
    let mut connects = Vec::with_capacity(args.count);
    let mut remaining = args.count;
    while remaining > 0 {
        let batch = remaining.min(concurrency);
        remaining -= batch;
        let handles: Vec<_> = (0..batch)
            .map(|_| {
                let url = url.clone();
                let stream = args.stream.clone();
                tokio::spawn(async move {
                    match timeout(Duration::from_secs(10), one_setup(&url, &stream)).await {
                        Ok(result) => result,
                        Err(_) => bail!("setup took more than 10 s"),
                    }
                })
            })
            .collect();
        for handle in handles {
            match handle.await.context("a setup task panicked")? {
                Ok((ms, connect_ms)) => {
                    times.push(ms);
                    connects.push(connect_ms);
                }
                Err(error) => note_error(&mut result.errors, format!("{error:#}")),
            }
        }
    }
    result.elapsed_s = started.elapsed().as_secs_f64();
    result.client_cpu_pct = cpu_start.percent_until(&CpuSnapshot::take(None)?);
    result.succeeded = times.len();
    result.setups_per_s = if result.elapsed_s > 0.0 {
        result.succeeded as f64 / result.elapsed_s
    } else {
        0.0
    };
    result.setup_ms = Quantiles::of(times);
    result.connect_ms = Quantiles::of(connects);
    Ok(result)
}

/// TCP connect → handshake → connect → NetConnection.Connect.Success, in ms.
async fn one_connect(url: &RtmpUrl) -> Result<f64> {
    let started = Instant::now();
    let client = RtmpClient::connect(url, vec![]).await.context("connect")?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    drop(client);
    Ok(ms)
}

/// `n` setups in flight at once (a full setup with `stream`, connect only without); the
/// times of those that finished, and the batch's wall time.
async fn timed_batch(
    url: &RtmpUrl,
    stream: Option<&str>,
    n: usize,
    errors: &mut Vec<String>,
) -> Result<(Vec<f64>, Duration)> {
    let started = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let url = url.clone();
            let stream = stream.map(str::to_string);
            tokio::spawn(async move {
                let attempt = async {
                    match &stream {
                        Some(stream) => one_setup(&url, stream).await.map(|(ms, _)| ms),
                        None => one_connect(&url).await,
                    }
                };
                match timeout(Duration::from_secs(10), attempt).await {
                    Ok(result) => result,
                    Err(_) => bail!("setup took more than 10 s"),
                }
            })
        })
        .collect();
    let mut times = Vec::with_capacity(n);
    for handle in handles {
        match handle.await.context("a setup task panicked")? {
            Ok(ms) => times.push(ms),
            Err(error) => note_error(errors, format!("{error:#}")),
        }
    }
    Ok((times, started.elapsed()))
}

/// Plain against scripted setups of one kind at one concurrency, in alternating batches.
async fn compare_setups(args: &ScriptArgs, kind: &str, concurrency: usize) -> Result<ScriptSetup> {
    let stream = (kind == "play").then_some(args.stream.as_str());
    let urls = [
        url_for(args.port, &args.plain_app)?,
        url_for(args.port, &args.scripted_app)?,
    ];
    let mut sides = [ScriptSide::default(), ScriptSide::default()];
    let mut times: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut busy = [Duration::ZERO; 2];
    for (side, url) in sides.iter_mut().zip(&urls) {
        side.app = url.app.clone();
        side.attempted = args.count;
    }
    let cpu_start = CpuSnapshot::take(None)?;
    let script_ns_start = named_threads_cpu_ns(args.server_pid, "script ")?;
    let mut remaining = args.count;
    while remaining > 0 {
        let batch = remaining.min(concurrency);
        remaining -= batch;
        for i in 0..2 {
            let (got, took) = timed_batch(&urls[i], stream, batch, &mut sides[i].errors).await?;
            times[i].extend(got);
            busy[i] += took;
        }
    }
    let client_cpu_pct = cpu_start.percent_until(&CpuSnapshot::take(None)?);
    // The last setups' disconnects reach the script thread after their connections close.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let script_ns =
        named_threads_cpu_ns(args.server_pid, "script ")?.saturating_sub(script_ns_start);
    let script_thread_us = (!times[1].is_empty() && script_ns > 0)
        .then(|| script_ns as f64 / 1000.0 / times[1].len() as f64);
    for i in 0..2 {
        let side = &mut sides[i];
        side.succeeded = times[i].len();
        side.busy_s = busy[i].as_secs_f64();
        side.setups_per_s = if side.busy_s > 0.0 {
            side.succeeded as f64 / side.busy_s
        } else {
            0.0
        };
        side.ms = Quantiles::of(std::mem::take(&mut times[i]));
    }
    let [plain, scripted] = sides;
    Ok(ScriptSetup {
        kind: kind.to_string(),
        concurrency,
        cost_p50: relative(scripted.ms.p50, plain.ms.p50),
        cost_p99: relative(scripted.ms.p99, plain.ms.p99),
        cost_rate: relative(Some(plain.setups_per_s), Some(scripted.setups_per_s)),
        client_cpu_pct,
        script_thread_us,
        plain,
        scripted,
    })
}

/// Connects, one at a time, to never-used instances of `app` alternating with connects to its
/// running default instance.
async fn instance_start(args: &ScriptArgs, app: &str, scripted: bool) -> Result<InstanceStartSide> {
    let pid = Some(args.server_pid);
    let running = url_for(args.port, app)?;
    let mut side = InstanceStartSide {
        app: app.to_string(),
        scripted,
        rss_before_mb: status_kb(pid, "VmRSS")? as f64 / 1024.0,
        threads_before: status_kb(pid, "Threads")?,
        ..InstanceStartSide::default()
    };
    let (mut fresh, mut warm) = (Vec::new(), Vec::new());
    for i in 0..args.instance_samples {
        let url = url_for(args.port, &format!("{app}/new{}x{i}", std::process::id()))?;
        for (url, times) in [(&url, &mut fresh), (&running, &mut warm)] {
            match timeout(Duration::from_secs(10), one_connect(url)).await {
                Ok(Ok(ms)) => times.push(ms),
                Ok(Err(error)) => note_error(&mut side.errors, format!("{error:#}")),
                Err(_) => note_error(&mut side.errors, "connect took more than 10 s".into()),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Let the server finish what the last disconnects started.
    tokio::time::sleep(Duration::from_millis(500)).await;
    side.rss_after_mb = status_kb(pid, "VmRSS")? as f64 / 1024.0;
    side.threads_after = status_kb(pid, "Threads")?;
    side.rss_per_instance_kb = if fresh.is_empty() {
        0.0
    } else {
        (side.rss_after_mb - side.rss_before_mb) * 1024.0 / fresh.len() as f64
    };
    side.new_instance_ms = Quantiles::of(fresh);
    side.running_instance_ms = Quantiles::of(warm);
    side.cost_p50 = relative(side.new_instance_ms.p50, side.running_instance_ms.p50);
    Ok(side)
}

async fn script_figures(args: ScriptArgs) -> Result<ScriptResult> {
    let pid = Some(args.server_pid);
    let mut result = ScriptResult {
        script: SCRIPT.to_string(),
        server_rss_start_mb: status_kb(pid, "VmRSS")? as f64 / 1024.0,
        ..ScriptResult::default()
    };
    // One unmeasured setup into each, so neither side pays a first-use cost.
    for app in [&args.plain_app, &args.scripted_app] {
        let mut errors = Vec::new();
        timed_batch(
            &url_for(args.port, app)?,
            Some(&args.stream),
            1,
            &mut errors,
        )
        .await?;
        if let Some(error) = errors.first() {
            bail!("warm-up setup into {app} failed: {error}");
        }
    }
    for kind in ["connect", "play"] {
        for &concurrency in &args.concurrency {
            result
                .setups
                .push(compare_setups(&args, kind, concurrency.max(1)).await?);
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    result.server_rss_after_setups_mb = status_kb(pid, "VmRSS")? as f64 / 1024.0;
    result
        .instance_start
        .push(instance_start(&args, &args.scripted_app, true).await?);
    result
        .instance_start
        .push(instance_start(&args, &args.plain_app, false).await?);
    Ok(result)
}

/// The scripted application's `main.asc`.
pub const SCRIPT: &str =
    "application.onConnect = function(client, user) { client.user = user; return true; };\n";

/// Waits until `stream` is live: a player gets NetStream.Play.Start and then a video frame.
/// Retries (the publisher may still be connecting) until `limit`.
pub async fn wait_live(port: u16, app: &str, stream: &str, limit: Duration) -> Result<Duration> {
    let url = url_for(port, app)?;
    let started = Instant::now();
    let deadline = started + limit;
    let mut last_error = String::from("no attempt");
    for _ in 0..1000 {
        if Instant::now() >= deadline {
            break;
        }
        let attempt = timeout_at(deadline, async {
            let mut client = RtmpClient::connect(&url, vec![]).await?;
            client.play(stream).await?;
            for _ in 0..MAX_EVENTS {
                if let ClientEvent::Video { .. } = client.next_event().await? {
                    return Ok(());
                }
            }
            bail!("no video after {MAX_EVENTS} events")
        })
        .await;
        match attempt {
            Ok(Ok(())) => return Ok(started.elapsed()),
            Ok(Err(error)) => last_error = format!("{error:#}"),
            Err(_) => last_error = "timed out waiting for video".to_string(),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bail!("stream {stream} on 127.0.0.1:{port} did not go live within {limit:?}: {last_error}")
}

#[cfg(test)]
mod tests {
    use super::{
        dump_lags, percentile, picture, ArrivalClock, FanoutFigures, LagSample, Quantiles, SubStats,
    };
    use std::time::Duration;

    #[test]
    fn arrival_stamps_are_placed_on_the_monotonic_clock_never_after_the_read() {
        let clock = ArrivalClock::now();
        let ms = Duration::from_millis;
        let read_at = clock.monotonic + ms(50);
        // A stamp 20 ms after the anchor, read 30 ms later: 20 ms after the anchor.
        assert_eq!(
            clock.place(Some(clock.wall + ms(20)), read_at),
            clock.monotonic + ms(20)
        );
        // Before the anchor (a frame that arrived before the clocks were read).
        let early = clock.place(Some(clock.wall - ms(5)), read_at);
        assert_eq!(clock.monotonic.duration_since(early), ms(5));
        // A stamp after the read (the wall clock stepped): the read time.
        assert_eq!(clock.place(Some(clock.wall + ms(80)), read_at), read_at);
        // No stamp: the read time.
        assert_eq!(clock.place(None, read_at), read_at);
    }

    /// A player that got each `(audio, timestamp)` frame at `at_ms`.
    fn player(frames: &[(bool, u32, f64)]) -> SubStats {
        SubStats {
            lags: frames
                .iter()
                .map(|&(audio, timestamp, at_ms)| LagSample {
                    at_ms,
                    lag_ms: 0.0,
                    audio,
                    bytes: 0,
                    timestamp,
                })
                .collect(),
            ..SubStats::default()
        }
    }

    #[test]
    fn lag_dump_has_a_row_per_sample_with_lag_over_the_players_own_smallest() {
        let mut first = player(&[(false, 0, 10.0), (true, 23, 40.5)]);
        first.lags[0].lag_ms = 2.0;
        first.lags[0].bytes = 9000;
        first.lags[1].lag_ms = 7.5;
        first.lags[1].bytes = 380;
        first.min_lag = Some(1.0);
        let second = player(&[]);
        let path = std::env::temp_dir().join(format!("lag-dump-{}.csv", std::process::id()));
        dump_lags(&path, &[first, second]).expect("dump");
        let text = std::fs::read_to_string(&path).expect("read back");
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            [
                "player,kind,timestamp,bytes,at_ms,lag_ms,lag_plus_ms",
                "0,video,0,9000,10.000,2.000,1.000",
                "0,audio,23,380,40.500,7.500,6.500",
            ]
        );
    }

    #[test]
    fn fanout_figures_split_the_spread_from_the_first_arrival() {
        let players = [
            // Video 0 on time for the first player, 40 ten ms late; audio 20.
            player(&[(false, 0, 100.0), (true, 20, 130.0), (false, 40, 150.0)]),
            // The second gets everything 6 ms after the first, plus a frame no other player got
            // (one of three: left out).
            player(&[
                (false, 0, 106.0),
                (true, 20, 136.0),
                (false, 40, 156.0),
                (false, 80, 190.0),
            ]),
            player(&[(false, 0, 103.0), (true, 20, 133.0), (false, 40, 153.0)]),
        ];
        let figures = FanoutFigures::of(&players);
        assert_eq!(
            figures.video_spread.count, 6,
            "the lonely frame is left out"
        );
        assert_eq!(figures.video_spread.p50, Some(3.0));
        assert_eq!(figures.video_spread.p99, Some(6.0));
        assert_eq!(figures.audio_spread.p99, Some(6.0));
        // Video 40 first arrived 10 ms later than video 0 did, against their timestamps.
        assert_eq!(figures.video_first_arrival.count, 2);
        assert_eq!(figures.video_first_arrival.p50, Some(0.0));
        assert_eq!(figures.video_first_arrival.p99, Some(10.0));
        assert_eq!(figures.audio_first_arrival.count, 1);
        // On the stream's one clock (zero: video 0's first arrival, the best of any frame),
        // each player keeps its own place: the third is 3 ms late on everything, the second 6,
        // and audio 20 and video 40 came 10 ms later than video 0 for all.
        assert_eq!(figures.stream_clock_lag.count, 9);
        assert_eq!(figures.video_stream_clock_lag.p50, Some(6.0));
        assert_eq!(figures.video_stream_clock_lag.p99, Some(16.0));
        assert_eq!(figures.audio_stream_clock_lag.p50, Some(13.0));
        assert_eq!(figures.audio_stream_clock_lag.p99, Some(16.0));

        let lonely = [
            player(&[(false, 0, 100.0)]),
            player(&[(false, 40, 140.0)]),
            player(&[(false, 80, 180.0)]),
        ];
        let figures = FanoutFigures::of(&lonely);
        assert_eq!(
            figures.video_spread.count, 0,
            "no frame reached two of three players"
        );
        assert_eq!(figures.video_first_arrival.p50, None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), Some(50.0));
        assert_eq!(percentile(&values, 99.0), Some(99.0));
        assert_eq!(percentile(&[], 50.0), None);
        let q = Quantiles::of(vec![3.0, f64::NAN, 1.0, 2.0]);
        assert_eq!((q.p50, q.p99, q.count), (Some(2.0), Some(3.0), 3));
    }

    #[test]
    fn only_pictures_count_as_frames() {
        assert_eq!(picture(&[0x17, 0x00]), None, "AVC sequence header");
        assert_eq!(picture(&[0x17, 0x01]), Some(true), "AVC keyframe");
        assert_eq!(picture(&[0x27, 0x01]), Some(false), "AVC inter frame");
        assert_eq!(picture(&[0x17, 0x02]), None, "AVC end of sequence");
        assert_eq!(picture(&[0x52]), None, "command frame");
        assert_eq!(picture(&[0x90]), None, "enhanced SequenceStart");
        assert_eq!(
            picture(&[0x91]),
            Some(true),
            "enhanced CodedFrames keyframe"
        );
        assert_eq!(picture(&[0x22]), Some(false), "Sorenson inter frame");
        assert_eq!(picture(&[]), None);
    }
}
