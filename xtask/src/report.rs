//! The benchmark's report: the table printed at the end, the JSON written to
//! `target/bench/results.json` (with the date, `uname -a`, `nproc` and the command), the
//! Ascend / nginx-rtmp ratios, Ascend's script figures, the relay hop and the memory per idle
//! connection (with the project's targets beside them, not asserted), and the hand-written SVG
//! plot of CPU % and peak RSS against N.

use crate::bench::{TARGET_IDLE_KIB, TARGET_RELAY_P50_MS, TARGET_RELAY_P99_MS};
use crate::idle::IdleResult;
use crate::load::{LoadResult, Quantiles, ScriptResult, SetupResult};
use crate::relay::HopResult;
use crate::repeat::RepeatReport;
use crate::scale::ScaleReport;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// Everything measured for one server.
#[derive(Debug, Clone, Serialize)]
pub struct ServerResult {
    /// `ascend` or `nginx-rtmp`.
    pub name: String,
    /// Seconds from starting the publisher to a player receiving video.
    pub live_after_s: f64,
    /// The server's VmHWM at the end, MB.
    pub hwm_mb: Option<f64>,
    /// One per N.
    pub runs: Vec<LoadResult>,
    /// Connection setups at concurrency 10 and 100.
    pub setup: Vec<SetupResult>,
}

/// Ascend / nginx-rtmp for one N (None where a ratio means nothing: zero or negative).
#[derive(Debug, Clone, Serialize)]
pub struct RatioRow {
    /// N.
    pub subscribers: usize,
    /// Server CPU %.
    pub cpu: Option<f64>,
    /// Peak RSS.
    pub rss: Option<f64>,
    /// Delivered Mbit/s.
    pub mbit_per_s: Option<f64>,
    /// Players that kept up.
    pub kept_up: Option<f64>,
    /// First video frame p50.
    pub first_frame_p50: Option<f64>,
    /// First video frame p99.
    pub first_frame_p99: Option<f64>,
    /// First keyframe p50.
    pub first_keyframe_p50: Option<f64>,
    /// CPU per delivered Gbit/s.
    pub cpu_per_gbit: Option<f64>,
    /// Lag over each player's smallest, p50.
    pub lag_p50: Option<f64>,
    /// Lag over each player's smallest, p99.
    pub lag_p99: Option<f64>,
    /// The same, video frames only.
    pub video_lag_p99: Option<f64>,
    /// The same, audio frames only.
    pub audio_lag_p99: Option<f64>,
}

/// Ascend / nginx-rtmp for the connection setups at one concurrency.
#[derive(Debug, Clone, Serialize)]
pub struct SetupRatio {
    /// Concurrency.
    pub concurrency: usize,
    /// Setup time p50.
    pub setup_p50: Option<f64>,
    /// Setup time p99.
    pub setup_p99: Option<f64>,
    /// Setups per second.
    pub setups_per_s: Option<f64>,
    /// Ascend's full setups into the scripted application (script figures, `play`) against
    /// nginx-rtmp's setups (no script), p50.
    pub scripted_setup_p50: Option<f64>,
    /// The same, p99.
    pub scripted_setup_p99: Option<f64>,
    /// The same, setups per second.
    pub scripted_setups_per_s: Option<f64>,
}

/// Ascend / nginx-rtmp for the relay hop.
#[derive(Debug, Clone, Serialize)]
pub struct RelayRatio {
    /// Added delay p50.
    pub added_p50: Option<f64>,
    /// Added delay p99.
    pub added_p99: Option<f64>,
    /// The origin's CPU % per relayed stream.
    pub cpu_per_relayed_stream: Option<f64>,
}

/// Ascend / nginx-rtmp, per figure.
#[derive(Debug, Clone, Serialize)]
pub struct Ratios {
    /// Per N.
    pub per_n: Vec<RatioRow>,
    /// Per setup concurrency.
    pub setup: Vec<SetupRatio>,
    /// The relay hop.
    pub relay: Option<RelayRatio>,
    /// Memory per idle connection.
    pub idle_kib_per_connection: Option<f64>,
    /// Largest N with every player kept up (scale part).
    pub scale_kept_up_to: Option<f64>,
}

/// One server's relay hop, as written to `results.json` (`relay.servers`).
#[derive(Debug, Clone, Serialize)]
pub struct RelayServer {
    /// `ascend` or `nginx-rtmp`.
    pub name: String,
    /// Origin frames (video pictures received in the window) found at the edge.
    pub matched: usize,
    /// `timestamp` or `payload` (see `relay.notes`).
    pub matched_by: String,
    /// Edge arrival − origin arrival per matched frame, ms (p50, p99 to 0.01 ms).
    pub added_ms: Quantiles,
    /// The origin's CPU % with the relay running (publisher in, one local player, the relay
    /// out).
    pub origin_cpu_relay_pct: f64,
    /// The origin's CPU % with a plain publish and one local player.
    pub origin_cpu_plain_pct: f64,
    /// The difference: CPU % per relayed stream.
    pub cpu_per_relayed_stream_pct: f64,
    /// Where the three CPU figures come from: `schedstat` (per-thread ns) when both runs had
    /// it, else `ticks` for both.
    pub cpu_source: String,
    /// The edge's CPU % with the relay running (its player and the relayed publish).
    pub edge_cpu_pct: Option<f64>,
    /// Whether the added delay p50 is within the target (None: nothing matched).
    pub meets_p50_target: Option<bool>,
    /// Whether the added delay p99 is within the target.
    pub meets_p99_target: Option<bool>,
    /// The relayed run as measured.
    pub relayed: HopResult,
    /// The plain run as measured.
    pub plain: HopResult,
    /// The relay hop again with players of the relayed stream loading the origin, if asked.
    pub busy_origin: Option<BusyOriginHop>,
}

/// The relay hop measured while many players of the relayed stream load the origin
/// (`relay.servers[].busy_origin` in `results.json`).
#[derive(Debug, Clone, Serialize)]
pub struct BusyOriginHop {
    /// Players of the relayed stream on the origin besides the measuring one.
    pub local_players: usize,
    /// Of them, how many kept up.
    pub local_kept_up: usize,
    /// The origin's CPU % over the load's window.
    pub origin_cpu_pct: f64,
    /// Whether the load client was the bottleneck.
    pub load_client_saturated: bool,
    /// Origin frames (video pictures in the window) found at the edge.
    pub matched: usize,
    /// Of how many.
    pub origin_frames: usize,
    /// Edge arrival − arrival at the origin's measuring player (which joined before the load).
    pub added_ms: Quantiles,
}

impl BusyOriginHop {
    /// From the hop measured during `load`.
    pub fn new(hop: &HopResult, load: &LoadResult) -> BusyOriginHop {
        BusyOriginHop {
            local_players: load.subscribers,
            local_kept_up: load.kept_up,
            origin_cpu_pct: load.server_cpu_pct,
            load_client_saturated: load.client_saturated,
            matched: hop.matched,
            origin_frames: hop.origin_frames,
            added_ms: hop.added_ms,
        }
    }
}

impl RelayServer {
    /// Puts the plain, relayed and busy-origin runs together.
    pub fn new(
        name: &str,
        plain: HopResult,
        relayed: HopResult,
        busy_origin: Option<BusyOriginHop>,
    ) -> RelayServer {
        // Both runs from the same source, so that the difference means something.
        let precise = plain.cpu_source == "schedstat" && relayed.cpu_source == "schedstat";
        let (relay_cpu, plain_cpu) = if precise {
            (relayed.origin_cpu_pct, plain.origin_cpu_pct)
        } else {
            (relayed.origin_cpu_ticks_pct, plain.origin_cpu_ticks_pct)
        };
        RelayServer {
            name: name.to_string(),
            matched: relayed.matched,
            matched_by: relayed.matched_by.clone(),
            added_ms: relayed.added_ms,
            origin_cpu_relay_pct: relay_cpu,
            origin_cpu_plain_pct: plain_cpu,
            cpu_per_relayed_stream_pct: relay_cpu - plain_cpu,
            cpu_source: if precise { "schedstat" } else { "ticks" }.to_string(),
            edge_cpu_pct: relayed.edge_cpu_pct,
            meets_p50_target: relayed.added_ms.p50.map(|v| v <= TARGET_RELAY_P50_MS),
            meets_p99_target: relayed.added_ms.p99.map(|v| v <= TARGET_RELAY_P99_MS),
            relayed,
            plain,
            busy_origin,
        }
    }
}

/// The relay hop, as written to `results.json` (`relay`).
#[derive(Debug, Clone, Serialize)]
pub struct RelayReport {
    /// Window of each run, seconds.
    pub seconds: f64,
    /// Target for the added delay p50, ms (not asserted).
    pub target_added_p50_ms: f64,
    /// Target for the added delay p99, ms (not asserted).
    pub target_added_p99_ms: f64,
    /// Ascend's origin `applications/relay/main.asc`.
    pub relay_script: String,
    /// How it was measured.
    pub notes: Vec<String>,
    /// One per server.
    pub servers: Vec<RelayServer>,
}

impl RelayReport {
    /// An empty section for windows of `seconds`.
    pub fn new(seconds: f64) -> RelayReport {
        RelayReport {
            seconds,
            target_added_p50_ms: TARGET_RELAY_P50_MS,
            target_added_p99_ms: TARGET_RELAY_P99_MS,
            relay_script: crate::bench::RELAY_SCRIPT.to_string(),
            notes: vec![
                "two processes per server on 127.0.0.1, an origin and an edge; ascend's origin \
                 has applications/relay/main.asc (`relay_script`) with app.toml [config] edge = \
                 \"rtmp://127.0.0.1:EDGEPORT/live\" and the edge an empty applications/live/; \
                 nginx-rtmp's origin has `application relay { live on; push \
                 rtmp://127.0.0.1:EDGEPORT/live; }`, the edge `application live { live on; }`"
                    .to_string(),
                "the clip is published with ffmpeg -re -stream_loop -1 -c copy to \
                 ORIGIN/relay/hop; one load-client process (one thread) plays relay/hop on the \
                 origin and live/hop on the edge; after a 3 s warm-up, every video picture the \
                 origin player receives in the window is looked for among the edge player's \
                 (until 0.5 s after the window)"
                    .to_string(),
                "busy_origin: the hop again while another load-client process plays the \
                 relayed stream on the origin with --relay-local-players players (ramp 1.5 s); \
                 the hop's players connect half a second before them, so the measuring origin \
                 player is not behind them in the origin's fan-out, and its window starts once \
                 they all play"
                    .to_string(),
                "frames are paired by RTMP timestamp, a pair counting only when both payloads \
                 are identical; if fewer than half of the frames found by payload have the same \
                 timestamp at both players (the relay rewrote them), they are paired by payload \
                 (matched_by = payload); timestamps or payloads seen twice by one player are \
                 left out"
                    .to_string(),
                "added delay = edge arrival - origin arrival (instants taken when the client \
                 returns the whole message), p50 / p99 nearest rank, rounded to 0.01 ms"
                    .to_string(),
                "CPU per relayed stream = origin CPU % over the window with the relay running \
                 (publisher in, the origin player, the relay out) - origin CPU % over a window \
                 of the same length with the clip published into the origin's livestreams \
                 (not relayed) and one local player, the plain run first; CPU summed over the \
                 process's threads from /proc/PID/task/TID/schedstat (ns) when every thread \
                 lived through both windows (cpu_source = schedstat), else from /proc/PID/stat \
                 clock ticks (cpu_source = ticks, each figure good to about 100 / (CLK_TCK x \
                 window) %); the tick figures are in the JSON (relayed, plain) either way"
                    .to_string(),
            ],
            servers: Vec::new(),
        }
    }
}

/// One server's idle connections, as written to `results.json` (`idle_memory.servers`).
#[derive(Debug, Clone, Serialize)]
pub struct IdleServer {
    /// `ascend` or `nginx-rtmp`.
    pub name: String,
    /// Whether `kib_per_connection` is under the target.
    pub meets_target: bool,
    /// The figures.
    #[serde(flatten)]
    pub result: IdleResult,
}

impl IdleServer {
    /// Wraps the load client's figures.
    pub fn new(name: &str, result: IdleResult) -> IdleServer {
        IdleServer {
            name: name.to_string(),
            meets_target: result.kib_per_connection < TARGET_IDLE_KIB,
            result,
        }
    }
}

/// Memory per idle connection, as written to `results.json` (`idle_memory`).
#[derive(Debug, Clone, Serialize)]
pub struct IdleReport {
    /// Connections opened per server.
    pub connections: usize,
    /// Target: under this many KiB per idle connection (not asserted).
    pub target_kib_per_connection: f64,
    /// How it was measured.
    pub notes: Vec<String>,
    /// One per server.
    pub servers: Vec<IdleServer>,
}

impl IdleReport {
    /// An empty section for `connections` connections.
    pub fn new(connections: usize) -> IdleReport {
        IdleReport {
            connections,
            target_kib_per_connection: TARGET_IDLE_KIB,
            notes: vec![
                "a fresh server process per server (nothing published), started 0.5 s before; \
                 ascend's connections go to livestreams (no script), nginx-rtmp's to live"
                    .to_string(),
                "each connection: TCP connect -> handshake -> connect -> \
                 NetConnection.Connect.Success, then nothing (no createStream, no play); 50 in \
                 flight at once, 10 s limit each, 60 s for all; one unmeasured connect, opened \
                 and closed 0.3 s before rss_before, keeps one-time work (ascend's application \
                 instance start) out of the figure"
                    .to_string(),
                "kib_per_connection = (VmRSS after - VmRSS before) / connections attempted, \
                 VmRSS from /proc/PID/status, read 2 s after the last connect while all are \
                 still open; then all are closed"
                    .to_string(),
            ],
            servers: Vec::new(),
        }
    }
}

/// What the runs measured, for [`Report::new`].
#[derive(Debug, Default)]
pub struct Measured {
    /// Fan-out and setups, per server.
    pub servers: Vec<ServerResult>,
    /// Ascend's script figures.
    pub script: Option<ScriptReport>,
    /// The relay hop.
    pub relay: Option<RelayReport>,
    /// Memory per idle connection.
    pub idle_memory: Option<IdleReport>,
    /// Players kept up as N grows.
    pub scale: Option<ScaleReport>,
    /// The largest N again, in alternating rounds.
    pub repeat: Option<RepeatReport>,
    /// Parts that failed (reported as notes).
    pub failures: Vec<String>,
    /// What Ascend's config file held.
    pub ascend_config: String,
}

/// Ascend's script figures, as written to `results.json` (`script`).
#[derive(Debug, Clone, Serialize)]
pub struct ScriptReport {
    /// Always `ascend`.
    pub server: String,
    /// How they were measured.
    pub notes: Vec<String>,
    /// The figures.
    #[serde(flatten)]
    pub result: ScriptResult,
}

impl ScriptReport {
    /// Wraps the load client's figures with how they were measured.
    pub fn new(result: ScriptResult) -> ScriptReport {
        ScriptReport {
            server: "ascend".to_string(),
            notes: vec![
                "Ascend only: nginx-rtmp has no application scripts".to_string(),
                "livestreams has no script; scripted has main.asc = `script`; the clip is \
                 published into the default instance of both (two ffmpeg publishers) while these \
                 run"
                .to_string(),
                "connect = TCP connect -> handshake -> connect -> NetConnection.Connect.Success; \
                 play = connect, then createStream -> play bench -> NetStream.Play.Start; each \
                 setup closes its connection at once"
                    .to_string(),
                "plain and scripted setups run in alternating batches of `concurrency` (plain, \
                 scripted, plain, ...); setups_per_s divides by each side's own batch time"
                    .to_string(),
                "cost = (scripted - plain) / plain; cost_rate = plain setups/s / scripted \
                 setups/s - 1 (extra wall time per setup)"
                    .to_string(),
                "script_thread_us = on-CPU time of the server's script threads (schedstat) \
                 during a row, per scripted setup (onConnect and onDisconnect of each)"
                    .to_string(),
                "instance start: one connect at a time, to APP/newPIDxI (never used) then to the \
                 running default instance, alternating, 20 ms apart; time = TCP connect -> \
                 NetConnection.Connect.Success; RSS and threads read from /proc before the \
                 first and 500 ms after the last"
                    .to_string(),
            ],
            result,
        }
    }
}

/// The test clip.
#[derive(Debug, Clone, Serialize)]
pub struct MediaInfo {
    /// Where it is.
    pub path: String,
    /// Its overall bit rate (what one player should receive), Mbit/s.
    pub mbit_per_s: f64,
}

/// The whole report, as written to `results.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// UTC date and time of the run.
    pub date: String,
    /// `uname -a`.
    pub uname: String,
    /// `nproc`.
    pub nproc: String,
    /// The CPU's model name, from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// `MemTotal` from `/proc/meminfo`, MB.
    pub mem_total_mb: Option<f64>,
    /// The command as typed.
    pub command: String,
    /// `--quick`.
    pub quick: bool,
    /// Window per N, seconds.
    pub seconds: f64,
    /// The Ns.
    pub subscribers: Vec<usize>,
    /// The test clip.
    pub media: MediaInfo,
    /// One per server.
    pub servers: Vec<ServerResult>,
    /// Ascend's script figures (Ascend only: nginx-rtmp has no scripts).
    pub script: Option<ScriptReport>,
    /// The relay hop, per server.
    pub relay: Option<RelayReport>,
    /// Memory per idle connection, per server.
    pub idle_memory: Option<IdleReport>,
    /// Players kept up as N grows, per server.
    pub scale: Option<ScaleReport>,
    /// The largest N again, in alternating rounds, per server.
    pub repeat: Option<RepeatReport>,
    /// Parts that failed.
    pub failures: Vec<String>,
    /// What Ascend's config file held (`--config`).
    pub ascend_config: String,
    /// Ascend / nginx-rtmp, when both ran.
    pub ratios: Option<Ratios>,
    /// What to keep in mind when reading the figures.
    pub notes: Vec<String>,
}

fn shell(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Server CPU % per delivered Gbit/s.
pub(crate) fn cpu_per_gbit(run: &LoadResult) -> Option<f64> {
    (run.mbit_per_s > 0.0).then(|| run.server_cpu_pct / (run.mbit_per_s / 1000.0))
}

/// `a / b` when both are meaningful (b > 0, a >= 0).
pub(crate) fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if a.is_finite() && b.is_finite() && a >= 0.0 && b > 0.0 => Some(a / b),
        _ => None,
    }
}

impl Report {
    /// Gathers the results and the machine's description.
    pub fn new(
        measured: Measured,
        subscribers: Vec<usize>,
        seconds: f64,
        quick: bool,
        media_mbit: f64,
        media: &Path,
    ) -> Report {
        let Measured {
            servers,
            script,
            relay,
            idle_memory,
            scale,
            repeat,
            failures,
            ascend_config,
        } = measured;
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut report = Report {
            date: shell("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
            uname: shell("uname", &["-a"]),
            nproc: shell("nproc", &[]),
            cpu_model: std::fs::read_to_string("/proc/cpuinfo")
                .ok()
                .and_then(|text| {
                    text.lines()
                        .find_map(|line| line.strip_prefix("model name")?.split_once(':'))
                        .map(|(_, name)| name.trim().to_string())
                })
                .unwrap_or_default(),
            mem_total_mb: std::fs::read_to_string("/proc/meminfo")
                .ok()
                .and_then(|text| {
                    text.lines()
                        .find_map(|line| line.strip_prefix("MemTotal:"))
                        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
                })
                .map(|kb| kb / 1024.0),
            command: format!("cargo xtask {}", args.join(" ")),
            quick,
            seconds,
            subscribers,
            media: MediaInfo {
                path: media.display().to_string(),
                mbit_per_s: media_mbit,
            },
            servers,
            script,
            relay,
            idle_memory,
            scale,
            repeat,
            failures,
            ascend_config,
            ratios: None,
            notes: Vec::new(),
        };
        report.ratios = report.compute_ratios();
        report.notes = report.compute_notes();
        report
    }

    fn server(&self, name: &str) -> Option<&ServerResult> {
        self.servers.iter().find(|s| s.name == name)
    }

    fn relay_server(&self, name: &str) -> Option<&RelayServer> {
        self.relay.as_ref()?.servers.iter().find(|s| s.name == name)
    }

    fn idle_server(&self, name: &str) -> Option<&IdleServer> {
        self.idle_memory
            .as_ref()?
            .servers
            .iter()
            .find(|s| s.name == name)
    }

    fn compute_ratios(&self) -> Option<Ratios> {
        let (per_n, setup) = match (self.server("ascend"), self.server("nginx-rtmp")) {
            (Some(a), Some(b)) => self.core_ratios(a, b),
            _ => (Vec::new(), Vec::new()),
        };
        let relay = match (self.relay_server("ascend"), self.relay_server("nginx-rtmp")) {
            (Some(a), Some(b)) => Some(RelayRatio {
                added_p50: ratio(a.added_ms.p50, b.added_ms.p50),
                added_p99: ratio(a.added_ms.p99, b.added_ms.p99),
                cpu_per_relayed_stream: ratio(
                    Some(a.cpu_per_relayed_stream_pct),
                    Some(b.cpu_per_relayed_stream_pct),
                ),
            }),
            _ => None,
        };
        let idle_kib_per_connection =
            match (self.idle_server("ascend"), self.idle_server("nginx-rtmp")) {
                (Some(a), Some(b)) => ratio(
                    Some(a.result.kib_per_connection),
                    Some(b.result.kib_per_connection),
                ),
                _ => None,
            };
        let both_idle =
            self.idle_server("ascend").is_some() && self.idle_server("nginx-rtmp").is_some();
        let scale_limit = |name: &str| {
            self.scale
                .as_ref()?
                .servers
                .iter()
                .find(|s| s.name == name)?
                .all_kept_up_to
                .map(|n| n as f64)
        };
        let scale_kept_up_to = ratio(scale_limit("ascend"), scale_limit("nginx-rtmp"));
        if per_n.is_empty()
            && setup.is_empty()
            && relay.is_none()
            && !both_idle
            && scale_kept_up_to.is_none()
        {
            return None;
        }
        Some(Ratios {
            per_n,
            setup,
            relay,
            idle_kib_per_connection,
            scale_kept_up_to,
        })
    }

    fn core_ratios(&self, a: &ServerResult, b: &ServerResult) -> (Vec<RatioRow>, Vec<SetupRatio>) {
        let per_n = a
            .runs
            .iter()
            .filter_map(|x| {
                let y = b.runs.iter().find(|y| y.subscribers == x.subscribers)?;
                Some(RatioRow {
                    subscribers: x.subscribers,
                    cpu: ratio(Some(x.server_cpu_pct), Some(y.server_cpu_pct)),
                    rss: ratio(Some(x.server_rss_peak_mb), Some(y.server_rss_peak_mb)),
                    mbit_per_s: ratio(Some(x.mbit_per_s), Some(y.mbit_per_s)),
                    kept_up: ratio(Some(x.kept_up as f64), Some(y.kept_up as f64)),
                    first_frame_p50: ratio(x.first_frame_ms.p50, y.first_frame_ms.p50),
                    first_frame_p99: ratio(x.first_frame_ms.p99, y.first_frame_ms.p99),
                    first_keyframe_p50: ratio(x.first_keyframe_ms.p50, y.first_keyframe_ms.p50),
                    cpu_per_gbit: ratio(cpu_per_gbit(x), cpu_per_gbit(y)),
                    lag_p50: ratio(x.lag_over_min_ms.p50, y.lag_over_min_ms.p50),
                    lag_p99: ratio(x.lag_over_min_ms.p99, y.lag_over_min_ms.p99),
                    video_lag_p99: ratio(x.video_lag_over_min_ms.p99, y.video_lag_over_min_ms.p99),
                    audio_lag_p99: ratio(x.audio_lag_over_min_ms.p99, y.audio_lag_over_min_ms.p99),
                })
            })
            .collect();
        let setup = a
            .setup
            .iter()
            .filter_map(|x| {
                let y = b.setup.iter().find(|y| y.concurrency == x.concurrency)?;
                let scripted = self.script.as_ref().and_then(|s| {
                    s.result
                        .setups
                        .iter()
                        .find(|r| r.kind == "play" && r.concurrency == x.concurrency)
                        .map(|r| &r.scripted)
                });
                Some(SetupRatio {
                    concurrency: x.concurrency,
                    setup_p50: ratio(x.setup_ms.p50, y.setup_ms.p50),
                    setup_p99: ratio(x.setup_ms.p99, y.setup_ms.p99),
                    setups_per_s: ratio(Some(x.setups_per_s), Some(y.setups_per_s)),
                    scripted_setup_p50: ratio(scripted.and_then(|s| s.ms.p50), y.setup_ms.p50),
                    scripted_setup_p99: ratio(scripted.and_then(|s| s.ms.p99), y.setup_ms.p99),
                    scripted_setups_per_s: ratio(
                        scripted.map(|s| s.setups_per_s),
                        Some(y.setups_per_s),
                    ),
                })
            })
            .collect();
        (per_n, setup)
    }

    fn compute_notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        for server in &self.servers {
            for run in &server.runs {
                if run.client_saturated {
                    notes.push(format!(
                        "load client saturated for {} at N={} ({:.0} % of its core): these figures measure the client, not the server",
                        server.name, run.subscribers, run.client_cpu_pct
                    ));
                }
                if run.failed > 0 {
                    notes.push(format!(
                        "{} at N={}: {} players failed: {}",
                        server.name,
                        run.subscribers,
                        run.failed,
                        run.errors.join(" | ")
                    ));
                }
            }
        }
        if !self.servers.is_empty() {
            notes.push(
                "lag = (wall clock since a player's first video frame) - (timestamp - first \
                 timestamp), over audio and video frames; a server that starts players with a \
                 cached keyframe group sends old frames in a burst, so its raw lag (lag_ms) is \
                 negative by about the age of that keyframe; the tables and ratios show \
                 lag_over_min_ms, each player's lag less its smallest"
                    .to_string(),
            );
            notes.push(
                "spread = when a player got a frame less when the first player got it (the \
                 fan-out, and this client reading 1000 sockets); *_first_arrival_lag_ms in the \
                 JSON is the rest: the publisher's own jitter and the server's delay before its \
                 fan-out starts"
                    .to_string(),
            );
            notes.push(
                "stream-clock lag (JSON stream_clock_lag_ms, repeat table) = when a player got \
                 a frame less the frame's timestamp, on one clock for the whole stream, less the \
                 best first arrival of any frame: unlike lag+ it keeps each player's place in \
                 the fan-out and does not move with each player's own best frame"
                    .to_string(),
            );
        }
        let nginx_slow_setup = self.server("nginx-rtmp").is_some_and(|s| {
            s.setup
                .iter()
                .any(|x| x.concurrency == 10 && x.setup_ms.p50.is_some_and(|p| p >= 40.0))
        });
        if nginx_slow_setup {
            notes.push(
                "nginx-rtmp's setup time is mostly Nagle: it answers connect in four small \
                 writes without TCP_NODELAY, so the _result waits for the client's delayed ACK \
                 (~40 ms, seen with strace); real players see the same"
                    .to_string(),
            );
        }
        let ascend_ran = self.server("ascend").is_some()
            || self.relay_server("ascend").is_some()
            || self.idle_server("ascend").is_some();
        if ascend_ran {
            notes.push(format!(
                "ascend ran with --config holding {:?} (its default per-IP limit of 1000 would refuse the 1000th player, as the publisher shares 127.0.0.1; the relay's and the idle-memory processes too)",
                self.ascend_config
            ));
        }
        if let Some(script) = &self.script {
            for row in &script.result.setups {
                if row.cost_p50.is_some_and(|c| c > 0.10) {
                    notes.push(format!(
                        "ascend: a script adds {} to the p50 {} setup at concurrency {} ({:.2} -> {:.2} ms), above the 10 % target",
                        pct(row.cost_p50),
                        row.kind,
                        row.concurrency,
                        row.plain.ms.p50.unwrap_or(f64::NAN),
                        row.scripted.ms.p50.unwrap_or(f64::NAN),
                    ));
                }
            }
        } else if self.server("ascend").is_some() {
            notes.push("no script figures were measured".to_string());
        }
        if !self.servers.is_empty() {
            notes.push(
                "bytes and Mbit/s count media payload (audio and video tag bodies), not RTMP \
                 chunk headers"
                    .to_string(),
            );
        }
        if self.repeat.as_ref().is_some_and(|repeat| repeat.tapped) {
            notes.push(
                "time in the server (repeat part, --tap-publisher) = when a player got a frame \
                 less when the frame wholly passed a tap between the publisher and the server \
                 (both on the wall clock): no publisher lateness in it and no reference frame; \
                 through the tap the frames come a little less bunched, so Ascend's audio hold \
                 saves fewer writes (a few points of CPU): those rounds' CPU figures are not the \
                 fan-out target's"
                    .to_string(),
            );
        }
        self.relay_notes(&mut notes);
        self.idle_notes(&mut notes);
        for failure in &self.failures {
            notes.push(failure.clone());
        }
        notes
    }

    fn relay_notes(&self, notes: &mut Vec<String>) {
        let Some(relay) = &self.relay else {
            return;
        };
        for server in &relay.servers {
            let added = &server.added_ms;
            if server.meets_p50_target == Some(false) || server.meets_p99_target == Some(false) {
                notes.push(format!(
                    "{}: the relay hop adds p50 {} / p99 {} ms, above the targets (p50 <= {} ms, p99 <= {} ms)",
                    server.name,
                    fmt_opt(added.p50, 2),
                    fmt_opt(added.p99, 2),
                    TARGET_RELAY_P50_MS,
                    TARGET_RELAY_P99_MS
                ));
            }
            if server.matched == 0 {
                notes.push(format!(
                    "{}: no relayed frame was matched ({} origin, {} edge frames){}",
                    server.name,
                    server.relayed.origin_frames,
                    server.relayed.edge_frames,
                    if server.relayed.errors.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", server.relayed.errors.join(" | "))
                    }
                ));
            } else if server.matched_by == "payload" {
                notes.push(format!(
                    "{}: the relay did not keep the RTMP timestamps (only {} of {} frames had the same timestamp at both players), so frames were matched by payload",
                    server.name, server.relayed.same_timestamp, server.relayed.matched_by_payload
                ));
            }
            if server.relayed.client_cpu_pct > crate::load::SATURATED_PCT {
                notes.push(format!(
                    "{}: the load client was saturated during the relay run ({:.0} %)",
                    server.name, server.relayed.client_cpu_pct
                ));
            }
        }
    }

    fn idle_notes(&self, notes: &mut Vec<String>) {
        let Some(idle) = &self.idle_memory else {
            return;
        };
        for server in &idle.servers {
            let result = &server.result;
            if !server.meets_target {
                notes.push(format!(
                    "{}: {:.2} KiB per idle connection, not under the {} KiB target",
                    server.name, result.kib_per_connection, TARGET_IDLE_KIB
                ));
            }
            if result.succeeded < result.attempted {
                notes.push(format!(
                    "{}: only {}/{} idle connections succeeded (the figure still divides by {}): {}",
                    server.name,
                    result.succeeded,
                    result.attempted,
                    result.attempted,
                    result.errors.join(" | ")
                ));
            }
        }
    }
}

/// A number with `decimals` decimals, or `-`.
pub fn fmt_opt(value: Option<f64>, decimals: usize) -> String {
    match value {
        Some(v) if v.is_finite() => {
            let text = format!("{v:.decimals$}");
            // -0.3 with no decimals reads "-0": print it as 0.
            if text
                .trim_start_matches('-')
                .chars()
                .all(|c| c == '0' || c == '.')
            {
                text.trim_start_matches('-').to_string()
            } else {
                text
            }
        }
        _ => "-".to_string(),
    }
}

/// A relative change as a signed percentage (`+12.3 %`), or `-`.
pub fn pct(value: Option<f64>) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{:+.1} %", v * 100.0),
        _ => "-".to_string(),
    }
}

pub(crate) fn pair(a: Option<f64>, b: Option<f64>, decimals: usize) -> String {
    format!("{} / {}", fmt_opt(a, decimals), fmt_opt(b, decimals))
}

fn ratio_text(value: Option<f64>) -> String {
    match value {
        Some(v) if v < 0.001 => "<0.001x".to_string(),
        Some(v) if v < 0.1 => format!("{v:.3}x"),
        Some(v) => format!("{v:.2}x"),
        None => "n/a".to_string(),
    }
}

/// Prints the tables.
pub fn print(report: &Report) {
    if !report.servers.is_empty() {
        print_core(report);
    }
    print_script(report);
    print_relay(report);
    print_idle(report);
    if let Some(repeat) = &report.repeat {
        crate::repeat::print(repeat);
    }
    if let Some(scale) = &report.scale {
        crate::scale::print(scale);
    }
    print_ratios(report);
    if !report.notes.is_empty() {
        println!();
        for note in &report.notes {
            println!("note: {note}");
        }
    }
}

/// Prints the fan-out and setup tables.
fn print_core(report: &Report) {
    println!();
    println!(
        "{:<11} {:>5} {:>7} {:>8} {:>8} {:>11} {:>17} {:>15} {:>15} {:>15} {:>17} {:>9} {:>11}",
        "server",
        "N",
        "CPU %",
        "RSS MB",
        "Mbit/s",
        "kept up",
        "first p50/p99 ms",
        "key p50/p99 ms",
        "lag+ p50/p99 ms",
        "p99 video/audio",
        "spread video/audio",
        "client %",
        "read p99 ms"
    );
    for server in &report.servers {
        for run in &server.runs {
            println!(
                "{:<11} {:>5} {:>7.1} {:>8.1} {:>8.1} {:>11} {:>17} {:>15} {:>15} {:>15} {:>17} {:>8.0} {:>11}{}",
                server.name,
                run.subscribers,
                run.server_cpu_pct,
                run.server_rss_peak_mb,
                run.mbit_per_s,
                format!("{}/{}", run.kept_up, run.subscribers),
                pair(run.first_frame_ms.p50, run.first_frame_ms.p99, 1),
                pair(run.first_keyframe_ms.p50, run.first_keyframe_ms.p99, 1),
                pair(run.lag_over_min_ms.p50, run.lag_over_min_ms.p99, 0),
                pair(
                    run.video_lag_over_min_ms.p99,
                    run.audio_lag_over_min_ms.p99,
                    0
                ),
                pair(
                    run.video_fanout_spread_ms.p99,
                    run.audio_fanout_spread_ms.p99,
                    0
                ),
                run.client_cpu_pct,
                fmt_opt(run.client_read_delay_ms.p99, 1),
                run.saturation_mark(),
            );
        }
    }
    if report.media.mbit_per_s > 0.0 {
        println!(
            "(the clip is {:.2} Mbit/s: N players should receive about N x that)",
            report.media.mbit_per_s
        );
    }

    println!();
    println!(
        "{:<11} {:>12} {:>17} {:>10} {:>9}",
        "server", "concurrency", "setup p50/p99 ms", "setups/s", "ok"
    );
    for server in &report.servers {
        for setup in &server.setup {
            println!(
                "{:<11} {:>12} {:>17} {:>10.0} {:>9}",
                server.name,
                setup.concurrency,
                format!(
                    "{} / {}",
                    fmt_opt(setup.setup_ms.p50, 1),
                    fmt_opt(setup.setup_ms.p99, 1)
                ),
                setup.setups_per_s,
                format!("{}/{}", setup.succeeded, setup.attempted),
            );
        }
    }
}

/// Prints Ascend / nginx-rtmp.
fn print_ratios(report: &Report) {
    if let Some(ratios) = &report.ratios {
        println!("\nascend / nginx-rtmp (below 1 is better for CPU, RSS, times; above 1 for Mbit/s, kept up, setups/s)");
        if !ratios.per_n.is_empty() {
            println!(
                "{:>5} {:>7} {:>9} {:>7} {:>7} {:>8} {:>10} {:>10} {:>9} {:>8} {:>8} {:>10} {:>10}",
                "N",
                "CPU",
                "CPU/Gbit",
                "RSS",
                "Mbit/s",
                "kept up",
                "first p50",
                "first p99",
                "key p50",
                "lag p50",
                "lag p99",
                "video p99",
                "audio p99"
            );
        }
        for row in &ratios.per_n {
            println!(
                "{:>5} {:>7} {:>9} {:>7} {:>7} {:>8} {:>10} {:>10} {:>9} {:>8} {:>8} {:>10} {:>10}",
                row.subscribers,
                ratio_text(row.cpu),
                ratio_text(row.cpu_per_gbit),
                ratio_text(row.rss),
                ratio_text(row.mbit_per_s),
                ratio_text(row.kept_up),
                ratio_text(row.first_frame_p50),
                ratio_text(row.first_frame_p99),
                ratio_text(row.first_keyframe_p50),
                ratio_text(row.lag_p50),
                ratio_text(row.lag_p99),
                ratio_text(row.video_lag_p99),
                ratio_text(row.audio_lag_p99),
            );
        }
        for row in &ratios.setup {
            println!(
                "setup at concurrency {:>3}: p50 {}  p99 {}  setups/s {}   ascend scripted / nginx-rtmp: p50 {}  p99 {}  setups/s {}",
                row.concurrency,
                ratio_text(row.setup_p50),
                ratio_text(row.setup_p99),
                ratio_text(row.setups_per_s),
                ratio_text(row.scripted_setup_p50),
                ratio_text(row.scripted_setup_p99),
                ratio_text(row.scripted_setups_per_s),
            );
        }
        if let Some(relay) = &ratios.relay {
            println!(
                "relay hop: added p50 {}  added p99 {}  CPU per relayed stream {}",
                ratio_text(relay.added_p50),
                ratio_text(relay.added_p99),
                ratio_text(relay.cpu_per_relayed_stream),
            );
        }
        if report.idle_server("ascend").is_some() && report.idle_server("nginx-rtmp").is_some() {
            println!(
                "memory per idle connection: {}",
                ratio_text(ratios.idle_kib_per_connection)
            );
        }
        if ratios.scale_kept_up_to.is_some() {
            println!(
                "scale, largest N with every player kept up: {} (see the scale table for what stopped each climb)",
                ratio_text(ratios.scale_kept_up_to)
            );
        }
    }
}

/// Prints Ascend's script figures (or why there are none).
fn print_script(report: &Report) {
    let Some(script) = &report.script else {
        if report.server("nginx-rtmp").is_some() {
            println!();
            println!(
                "script figures: none (nginx-rtmp has no application scripts; Ascend did not run)"
            );
        }
        return;
    };
    println!();
    println!(
        "script figures, ascend only (nginx-rtmp has no application scripts); main.asc: {}",
        script.result.script.trim()
    );
    println!(
        "{:<8} {:>5} {:>19} {:>21} {:>8} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "setup",
        "conc",
        "plain p50/p99 ms",
        "scripted p50/p99 ms",
        "plain/s",
        "script/s",
        "cost p50",
        "cost p99",
        "cost /s",
        "script µs",
        "client %"
    );
    for row in &script.result.setups {
        println!(
            "{:<8} {:>5} {:>19} {:>21} {:>8.0} {:>10.0} {:>9} {:>9} {:>9} {:>9} {:>9.0}",
            row.kind,
            row.concurrency,
            pair(row.plain.ms.p50, row.plain.ms.p99, 2),
            pair(row.scripted.ms.p50, row.scripted.ms.p99, 2),
            row.plain.setups_per_s,
            row.scripted.setups_per_s,
            pct(row.cost_p50),
            pct(row.cost_p99),
            pct(row.cost_rate),
            fmt_opt(row.script_thread_us, 1),
            row.client_cpu_pct,
        );
    }
    println!("(connect: TCP -> handshake -> connect -> Connect.Success; play: then createStream -> play -> Play.Start; cost = (scripted - plain) / plain, target < +10 %; script µs = the script thread's CPU per scripted setup)");
    println!(
        "{:<13} {:>21} {:>25} {:>9} {:>15} {:>9}",
        "instance of", "new p50/p99 ms", "running p50/p99 ms", "cost p50", "RSS MB", "threads"
    );
    for side in &script.result.instance_start {
        println!(
            "{:<13} {:>21} {:>25} {:>9} {:>15} {:>9}",
            side.app,
            format!(
                "{} ({})",
                pair(side.new_instance_ms.p50, side.new_instance_ms.p99, 2),
                side.new_instance_ms.count
            ),
            format!(
                "{} ({})",
                pair(
                    side.running_instance_ms.p50,
                    side.running_instance_ms.p99,
                    2
                ),
                side.running_instance_ms.count
            ),
            pct(side.cost_p50),
            format!("{:.1} -> {:.1}", side.rss_before_mb, side.rss_after_mb),
            format!("{} -> {}", side.threads_before, side.threads_after),
        );
    }
    println!("(TCP -> Connect.Success, one connect at a time: to a never-used instance APP/newPIDxI, alternating with the running default instance)");
    println!(
        "ascend RSS: {:.1} MB when the script figures started, {:.1} MB after their setups",
        script.result.server_rss_start_mb, script.result.server_rss_after_setups_mb
    );
}

/// "met" or "MISSED" against a target, "-" without a figure.
fn target_text(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "-",
    }
}

/// Prints the relay hop.
fn print_relay(report: &Report) {
    let Some(relay) = &report.relay else {
        return;
    };
    println!();
    println!(
        "relay hop: origin relay/hop -> edge live/hop, one player on each, {} s window; targets (not asserted): added p50 <= {} ms, p99 <= {} ms",
        relay.seconds, relay.target_added_p50_ms, relay.target_added_p99_ms
    );
    println!(
        "{:<11} {:>11} {:>9} {:>17} {:>11} {:>15} {:>14} {:>10} {:>9} {:>8}",
        "server",
        "matched",
        "by",
        "added p50/p99 ms",
        "targets",
        "origin CPU %",
        "CPU %/relayed",
        "edge CPU %",
        "CPU from",
        "client %"
    );
    for server in &relay.servers {
        println!(
            "{:<11} {:>11} {:>9} {:>17} {:>11} {:>15} {:>14} {:>10} {:>9} {:>8.0}",
            server.name,
            format!("{}/{}", server.matched, server.relayed.origin_frames),
            server.matched_by,
            pair(server.added_ms.p50, server.added_ms.p99, 2),
            format!(
                "{}/{}",
                target_text(server.meets_p50_target),
                target_text(server.meets_p99_target)
            ),
            format!(
                "{:.2} / {:.2}",
                server.origin_cpu_relay_pct, server.origin_cpu_plain_pct
            ),
            format!("{:+.2}", server.cpu_per_relayed_stream_pct),
            fmt_opt(server.edge_cpu_pct, 2),
            server.cpu_source,
            server.relayed.client_cpu_pct,
        );
    }
    println!("(matched = origin frames found at the edge; added = edge arrival - origin arrival; targets = p50/p99 met or MISSED; origin CPU % = relaying / plain publish with one local player; CPU %/relayed = the difference; CPU from schedstat = per-thread ns, ticks = /proc/PID/stat)");
    if relay.servers.is_empty() {
        println!("(no server finished the relay hop: see the notes)");
    }
    let busy: Vec<(&str, &BusyOriginHop)> = relay
        .servers
        .iter()
        .filter_map(|server| Some((server.name.as_str(), server.busy_origin.as_ref()?)))
        .collect();
    if busy.is_empty() {
        return;
    }
    println!();
    println!("relay hop with players of the relayed stream on the origin (the measuring origin player joined before them)");
    println!(
        "{:<11} {:>14} {:>11} {:>17} {:>13}",
        "server", "local kept up", "matched", "added p50/p99 ms", "origin CPU %"
    );
    for (name, hop) in busy {
        println!(
            "{:<11} {:>14} {:>11} {:>17} {:>13}",
            name,
            format!("{}/{}", hop.local_kept_up, hop.local_players),
            format!("{}/{}", hop.matched, hop.origin_frames),
            pair(hop.added_ms.p50, hop.added_ms.p99, 2),
            format!(
                "{:.1}{}",
                hop.origin_cpu_pct,
                if hop.load_client_saturated {
                    " (client saturated)"
                } else {
                    ""
                }
            ),
        );
    }
}

/// Prints the memory per idle connection.
fn print_idle(report: &Report) {
    let Some(idle) = &report.idle_memory else {
        return;
    };
    println!();
    println!(
        "memory per idle connection: {} connections (handshake + connect, then idle) to a fresh process, held 2 s; target (not asserted): under {} KiB each",
        idle.connections, idle.target_kib_per_connection
    );
    println!(
        "{:<11} {:<12} {:>11} {:>15} {:>15} {:>10} {:>7} {:>15} {:>13}",
        "server",
        "app",
        "ok",
        "RSS before MB",
        "RSS after MB",
        "KiB/conn",
        "target",
        "after close MB",
        "server fds"
    );
    for server in &idle.servers {
        let r = &server.result;
        println!(
            "{:<11} {:<12} {:>11} {:>15.1} {:>15.1} {:>10.2} {:>7} {:>15.1} {:>13}",
            server.name,
            r.app,
            format!("{}/{}", r.succeeded, r.attempted),
            r.rss_before_kib as f64 / 1024.0,
            r.rss_after_kib as f64 / 1024.0,
            r.kib_per_connection,
            target_text(Some(server.meets_target)),
            r.rss_after_close_kib as f64 / 1024.0,
            match (r.server_fds_before, r.server_fds_after) {
                (Some(a), Some(b)) => format!("{a} -> {b}"),
                _ => "-".to_string(),
            },
        );
    }
    println!("(KiB/conn = (RSS after - RSS before) / connections attempted)");
    if idle.servers.is_empty() {
        println!("(no server finished the idle-memory run: see the notes)");
    }
}

const COLORS: [&str; 4] = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd"];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A "nice" axis maximum at or above `value`.
fn nice_max(value: f64) -> f64 {
    if !(value.is_finite() && value > 0.0) {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if step * magnitude >= value {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

/// The plot: two panels (server CPU % and peak RSS MB against N, N on a log scale), one
/// polyline per server.
pub fn svg(report: &Report) -> String {
    let (width, height) = (960.0, 420.0);
    let (panel_w, panel_h) = (370.0, 270.0);
    let top = 70.0;
    let lefts = [80.0, 560.0];
    let mut ns: Vec<usize> = report
        .servers
        .iter()
        .flat_map(|s| s.runs.iter().map(|r| r.subscribers))
        .collect();
    ns.sort_unstable();
    ns.dedup();
    let (lo, hi) = match (ns.first(), ns.last()) {
        (Some(&lo), Some(&hi)) => ((lo as f64).log10(), (hi as f64).log10()),
        _ => (0.0, 1.0),
    };
    let x_of = |left: f64, n: usize| {
        if hi > lo {
            left + 20.0 + ((n as f64).log10() - lo) / (hi - lo) * (panel_w - 40.0)
        } else {
            left + panel_w / 2.0
        }
    };

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        out,
        r##"<rect width="100%" height="100%" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="16">RTMP fan-out on loopback: server CPU and memory against subscribers ({} s windows, {})</text>"#,
        width / 2.0,
        report.seconds,
        escape(&report.date)
    );

    type Metric = fn(&LoadResult) -> f64;
    let panels: [(&str, Metric); 2] = [
        ("server CPU % (100 = one core)", |r| r.server_cpu_pct),
        ("server peak RSS, MB", |r| r.server_rss_peak_mb),
    ];
    for (panel, (title, metric)) in panels.iter().enumerate() {
        let left = lefts[panel];
        let max = report
            .servers
            .iter()
            .flat_map(|s| s.runs.iter().map(metric))
            .fold(0.0, f64::max);
        let y_max = nice_max(max * 1.05);
        let y_of = |v: f64| top + panel_h - (v / y_max).clamp(0.0, 1.0) * panel_h;
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle" font-size="14">{}</text>"#,
            left + panel_w / 2.0,
            top - 12.0,
            escape(title)
        );
        let _ = writeln!(
            out,
            r##"<rect x="{left}" y="{top}" width="{panel_w}" height="{panel_h}" fill="none" stroke="#444"/>"##
        );
        for i in 0..=5 {
            let v = y_max * f64::from(i) / 5.0;
            let y = y_of(v);
            let _ = writeln!(
                out,
                r##"<line x1="{left}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                left + panel_w,
                left - 6.0,
                y + 4.0,
                trim_number(v)
            );
        }
        for &n in &ns {
            let x = x_of(left, n);
            let _ = writeln!(
                out,
                r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{}" stroke="#eee"/><text x="{x:.1}" y="{}" text-anchor="middle">{n}</text>"##,
                top + panel_h,
                top + panel_h + 18.0
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle">subscribers (N, log scale)</text>"#,
            left + panel_w / 2.0,
            top + panel_h + 38.0
        );
        for (i, server) in report.servers.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let points: Vec<String> = server
                .runs
                .iter()
                .map(|r| format!("{:.1},{:.1}", x_of(left, r.subscribers), y_of(metric(r))))
                .collect();
            let _ = writeln!(
                out,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
                points.join(" ")
            );
            for r in &server.runs {
                let _ = writeln!(
                    out,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{color}"><title>{} N={}: {:.1}</title></circle>"#,
                    x_of(left, r.subscribers),
                    y_of(metric(r)),
                    escape(&server.name),
                    r.subscribers,
                    metric(r)
                );
            }
        }
    }
    for (i, server) in report.servers.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let x = 80.0 + 160.0 * i as f64;
        let y = height - 20.0;
        let _ = writeln!(
            out,
            r#"<line x1="{x}" y1="{}" x2="{}" y2="{}" stroke="{color}" stroke-width="3"/><text x="{}" y="{y}">{}</text>"#,
            y - 4.0,
            x + 24.0,
            y - 4.0,
            x + 30.0,
            escape(&server.name)
        );
    }
    out.push_str("</svg>\n");
    out
}

fn trim_number(v: f64) -> String {
    if v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}
