//! `cargo xtask bench`: Ascend against nginx-rtmp on loopback, measured in the same run.
//!
//! For each server: start it, publish `target/bench/media.flv` to it with ffmpeg (`-c copy`,
//! no encoding), wait until a player receives video, then for each N run the load client
//! (`xtask bench-load`, an optimised build of this crate, one thread) and the connection
//! setup runs (`xtask bench-setup`), and stop everything. For Ascend alone (nginx-rtmp has no
//! application scripts) it then publishes the clip a second time, into the application
//! `scripted` whose `main.asc` decides each connect, and runs `xtask bench-script`: setups into
//! `livestreams` (no script) against setups into `scripted`, and the start of never-used
//! instances.
//!
//! Then, for each server, the relay hop: an edge and an origin process whose application
//! `relay` republishes every stream to the edge (Ascend: [`RELAY_SCRIPT`]; nginx-rtmp:
//! `push`); the clip is published to `ORIGIN/relay/hop` and `xtask bench-hop` plays it on
//! the origin and on the edge at once, measuring the delay the hop adds per frame and the
//! origin's CPU, against a plain publish into the origin's `livestreams` with one local player.
//! Last, for each server, the memory per idle connection on a fresh process: `xtask
//! bench-idle` opens 1000 connections (handshake + connect, nothing more) and reads the
//! server's VmRSS before and after. The report (table, JSON, SVG) is made by
//! [`crate::report`].

use crate::idle::IdleResult;
use crate::load::{wait_live, LoadResult, ScriptResult, SetupResult, SCRIPT};
use crate::relay::HopResult;
use crate::repeat::{RepeatReport, RepeatServer};
use crate::report::{
    self, IdleReport, IdleServer, Measured, RelayReport, RelayServer, Report, ScriptReport,
    ServerResult,
};
use crate::scale::{climb_on, ScaleReport, ScaleServer};
use crate::tools::{
    cargo, ensure_ffmpeg, ensure_nginx_rtmp, free_port, output, run, target_dir, wait_for_port,
    with_raised_nofile, ChildGuard, NGINX, NGINX_RTMP_MODULE,
};
use anyhow::{bail, Context, Result};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The application and stream the bench publishes and plays.
const APP: &str = "livestreams";
/// Ascend's application with a `main.asc` ([`SCRIPT`]), for the script figures.
const SCRIPTED_APP: &str = "scripted";
const STREAM: &str = "bench";
/// The origin's relaying application, the edge's application and the relayed stream.
const RELAY_APP: &str = "relay";
const EDGE_APP: &str = "live";
const HOP_STREAM: &str = "hop";
/// The origin's `relay/main.asc`: republish every published stream to `application.config.edge`.
pub const RELAY_SCRIPT: &str = r#"application.onPublish = function (client, stream) {
    var nc = new NetConnection();
    nc.onStatus = function (info) {
        if (info.code == "NetConnection.Connect.Success") {
            var ns = new NetStream(nc);
            ns.attach(stream);
            ns.publish(stream.name, "live");
        }
    };
    nc.connect(application.config.edge);
};
"#;
/// Targets the project aims at (printed beside the figures, not asserted).
pub const TARGET_RELAY_P50_MS: f64 = 0.1;
/// See [`TARGET_RELAY_P50_MS`].
pub const TARGET_RELAY_P99_MS: f64 = 1.0;
/// See [`TARGET_RELAY_P50_MS`].
pub const TARGET_IDLE_KIB: f64 = 16.0;
/// Ascend's configuration for the bench (all players come from one address).
pub const ASCEND_CONFIG: &str = "[limits]\nmax_connections_per_ip = 100000\n";

/// Arguments of `cargo xtask bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Fast smoke run: N = 10,100 and 5 s each (unless given).
    #[arg(long)]
    pub quick: bool,
    /// Numbers of subscribers, comma separated [default: 10,100,500,1000].
    #[arg(long, value_delimiter = ',')]
    pub subscribers: Option<Vec<usize>>,
    /// Measurement window per N, seconds [default: 20].
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Benchmark Ascend alone.
    #[arg(long)]
    pub skip_nginx: bool,
    /// Benchmark one server only.
    #[arg(long, value_enum)]
    pub only: Option<ServerKind>,
    /// Connection setups per concurrency level (10 and 100).
    #[arg(long, default_value_t = 200)]
    pub setups: usize,
    /// Ascend's script figures: setups per application, kind and concurrency [default: 1000,
    /// 200 with --quick].
    #[arg(long)]
    pub script_setups: Option<usize>,
    /// Ascend's script figures: connects to never-used instances per application.
    #[arg(long, default_value_t = 20)]
    pub instance_samples: usize,
    /// What to measure, comma separated: core (fan-out, first frame, lag, setup, scripts),
    /// repeat (the largest N again in alternating rounds, for medians), relay (relay hop
    /// latency and CPU), idle (memory per idle connection), scale (players kept up as N grows)
    /// [default: all].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub parts: Option<Vec<Part>>,
    /// Repeat part: rounds of the largest N, each server once per round, in turn [default: 5,
    /// 2 with --quick].
    #[arg(long)]
    pub repeats: Option<usize>,
    /// Repeat part: publish through a tap that notes when each frame entered the server, for
    /// the time each frame spent in the server. Costs Ascend about 3 points of CPU at N = 1000
    /// (through the tap the frames come a little less bunched and the audio hold saves fewer
    /// writes), so the CPU figures of tapped rounds are not the fan-out target's.
    #[arg(long)]
    pub tap_publisher: bool,
    /// Relay hop window, seconds [default: 20, 5 with --quick].
    #[arg(long)]
    pub relay_seconds: Option<f64>,
    /// Relay part: players of the relayed stream on the origin during a second hop window, to
    /// see whether the edge's players fall behind when the origin is busy (0: no such window)
    /// [default: 1000, 100 with --quick].
    #[arg(long)]
    pub relay_local_players: Option<usize>,
    /// Idle connections per server (at most 4000).
    #[arg(long, default_value_t = 1000)]
    pub idle_connections: usize,
    /// Scale part: the Ns to climb through, comma separated [default: 1000,1500,...,4000].
    #[arg(long, value_delimiter = ',')]
    pub scale_steps: Option<Vec<usize>>,
    /// Scale part: window per step, seconds [default: 10, 5 with --quick].
    #[arg(long)]
    pub scale_seconds: Option<f64>,
    /// Write every lag sample of every fan-out window to `DIR/lags-pidPID-nN-K.csv` (the
    /// server's pid as printed, N players, K-th window of that server), for looking at which
    /// frames and players make a tail (`docs/bench/lag_tail.py` reads them; BENCHMARKS.md, "Where
    /// Ascend's audio tail comes from").
    #[arg(long, value_name = "DIR")]
    pub dump_lags: Option<PathBuf>,
    /// Time frames when the load client reads them instead of by the kernel's receive
    /// timestamps (how the bench measured lag before 2026-12-06; also shows what switching
    /// the kernel's timestamping on costs the servers). Fan-out windows only: the relay hop
    /// always uses the stamps.
    #[arg(long)]
    pub read_time_arrivals: bool,
    /// Lines added to Ascend's config file after the bench's own (to try a setting, such as
    /// `--ascend-config-extra $'[hub]\nfanout_shard_size = 512'`); the report's notes quote
    /// the whole file.
    #[arg(long, value_name = "TOML")]
    pub ascend_config_extra: Option<String>,
    /// Use target/release/ascend as it is, without building it first.
    #[arg(long)]
    pub no_build_ascend: bool,
    /// Where to write results.json and cpu_rss.svg [default: target/bench].
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
}

/// A part of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// Fan-out at N subscribers, first frame, lag, connection setup, Ascend's script figures.
    Core,
    /// The largest N again in rounds, the servers taking turns, each run in a fresh server:
    /// medians for the figures that move from run to run.
    Repeat,
    /// Relay hop: added latency per frame and the origin's CPU per relayed stream.
    Relay,
    /// Memory per idle connection.
    Idle,
    /// N climbing until players fall behind (or the load client saturates).
    Scale,
}

/// A server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServerKind {
    /// Ascend (`target/release/ascend`).
    Ascend,
    /// nginx with the RTMP module.
    Nginx,
}

impl ServerKind {
    /// The name in the report.
    pub fn label(self) -> &'static str {
        match self {
            ServerKind::Ascend => "ascend",
            ServerKind::Nginx => "nginx-rtmp",
        }
    }
}

/// What a server process is for: the bench's main server, the relay's origin or edge, or the
/// idle-memory server. Each has its own folder (`target/bench/ascend{suffix}`, ...).
#[derive(Debug, Clone, Copy)]
enum Role {
    Main,
    RelayOrigin { edge_port: u16 },
    RelayEdge,
    Idle,
}

impl Role {
    fn suffix(self) -> &'static str {
        match self {
            Role::Main => "",
            Role::RelayOrigin { .. } => "-origin",
            Role::RelayEdge => "-edge",
            Role::Idle => "-idle",
        }
    }
}

/// The application the idle connections connect to.
fn idle_app(kind: ServerKind) -> &'static str {
    match kind {
        ServerKind::Ascend => APP,
        ServerKind::Nginx => EDGE_APP,
    }
}

struct Plan {
    dir: PathBuf,
    load_client: PathBuf,
    ascend: PathBuf,
    media: PathBuf,
    subscribers: Vec<usize>,
    seconds: f64,
    setups: usize,
    script_setups: usize,
    instance_samples: usize,
    relay_seconds: f64,
    relay_local_players: usize,
    dump_lags: Option<PathBuf>,
    idle_connections: usize,
    scale_steps: Vec<usize>,
    scale_seconds: f64,
    tap_publisher: bool,
    /// What Ascend's config file holds: [`ASCEND_CONFIG`] and `--ascend-config-extra`.
    ascend_config: String,
    /// `--read-time-arrivals`.
    read_time_arrivals: bool,
}

/// Runs the benchmark.
pub fn bench(args: BenchArgs) -> Result<()> {
    let subscribers = args.subscribers.clone().unwrap_or_else(|| {
        if args.quick {
            vec![10, 100]
        } else {
            vec![10, 100, 500, 1000]
        }
    });
    let seconds = args.seconds.unwrap_or(if args.quick { 5.0 } else { 20.0 });
    if subscribers.is_empty() || subscribers.contains(&0) {
        bail!("--subscribers needs positive numbers");
    }
    if !(4.0..=3600.0).contains(&seconds) {
        bail!("--seconds must be between 4 and 3600 (kept-up compares the first and last 2 s)");
    }
    let relay_seconds = args
        .relay_seconds
        .unwrap_or(if args.quick { 5.0 } else { 20.0 });
    if !(1.0..=3600.0).contains(&relay_seconds) {
        bail!("--relay-seconds must be between 1 and 3600");
    }
    // nginx-rtmp runs with worker_connections 4096.
    if !(1..=4000).contains(&args.idle_connections) {
        bail!("--idle-connections must be between 1 and 4000");
    }
    let parts = args.parts.clone().unwrap_or_else(|| {
        vec![
            Part::Core,
            Part::Repeat,
            Part::Relay,
            Part::Idle,
            Part::Scale,
        ]
    });
    let repeats = args.repeats.unwrap_or(if args.quick { 2 } else { 5 });
    if !(1..=50).contains(&repeats) {
        bail!("--repeats must be between 1 and 50");
    }
    let scale_steps = args
        .scale_steps
        .clone()
        .unwrap_or_else(|| vec![1000, 1500, 2000, 2500, 3000, 3500, 4000]);
    let scale_seconds = args
        .scale_seconds
        .unwrap_or(if args.quick { 5.0 } else { 10.0 });
    // nginx-rtmp runs with worker_connections 4096 (the publisher needs one too).
    if scale_steps.is_empty() || scale_steps.iter().any(|&n| n == 0 || n > 4000) {
        bail!("--scale-steps needs numbers between 1 and 4000");
    }
    if !(4.0..=3600.0).contains(&scale_seconds) {
        bail!("--scale-seconds must be between 4 and 3600");
    }
    let servers: Vec<ServerKind> = match args.only {
        Some(kind) => vec![kind],
        None if args.skip_nginx => vec![ServerKind::Ascend],
        None => vec![ServerKind::Ascend, ServerKind::Nginx],
    };

    let dir = target_dir().join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let out_dir = args.out_dir.clone().unwrap_or_else(|| dir.clone());
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    ensure_ffmpeg()?;
    if servers.contains(&ServerKind::Nginx) {
        ensure_nginx_rtmp()?;
    }

    println!("==> building the load client (release)");
    run(cargo().args(["build", "--release", "-p", "xtask"])).context("building the load client")?;
    let release = target_dir().join("release");
    let load_client = release.join("xtask");
    let ascend = release.join("ascend");
    if servers.contains(&ServerKind::Ascend) {
        if args.no_build_ascend {
            println!(
                "==> using {} as it is (--no-build-ascend)",
                ascend.display()
            );
        } else {
            println!("==> building ascend (release)");
            run(cargo().args(["build", "--release", "-p", "ascend"])).context("building ascend")?;
        }
        if !ascend.exists() {
            bail!("{} is missing", ascend.display());
        }
    }

    let media = dir.join("media.flv");
    ensure_media(&media)?;
    let media_mbit = media_bitrate(&media).unwrap_or(0.0);
    println!(
        "media: {} ({media_mbit:.2} Mbit/s); parts {parts:?}; N = {subscribers:?}, {seconds} s each; relay {relay_seconds} s windows; {} idle connections",
        media.display(),
        args.idle_connections
    );

    let context = Plan {
        dir: dir.clone(),
        load_client,
        ascend,
        media: media.clone(),
        subscribers: subscribers.clone(),
        seconds,
        setups: args.setups,
        script_setups: args
            .script_setups
            .unwrap_or(if args.quick { 200 } else { 1000 })
            .max(1),
        instance_samples: args.instance_samples.max(1),
        relay_seconds,
        relay_local_players: args.relay_local_players.unwrap_or(if args.quick {
            100
        } else {
            1000
        }),
        dump_lags: args.dump_lags.clone(),
        idle_connections: args.idle_connections,
        scale_steps,
        scale_seconds,
        tap_publisher: args.tap_publisher,
        read_time_arrivals: args.read_time_arrivals,
        ascend_config: match &args.ascend_config_extra {
            Some(extra) => format!("{ASCEND_CONFIG}{extra}\n"),
            None => ASCEND_CONFIG.to_string(),
        },
    };
    let mut measured = Measured {
        ascend_config: context.ascend_config.clone(),
        ..Measured::default()
    };
    if parts.contains(&Part::Core) {
        for &kind in &servers {
            let (result, script_result) = bench_server(kind, &context)
                .with_context(|| format!("benchmarking {}", kind.label()))?;
            measured.servers.push(result);
            measured.script = measured.script.or(script_result.map(ScriptReport::new));
        }
    }
    // The other parts come after the core figures: a failure there is reported (table,
    // notes, JSON) instead of losing what was already measured.
    if parts.contains(&Part::Repeat) {
        let n = subscribers.iter().copied().max().unwrap_or(1);
        let mut runs: Vec<(ServerKind, Vec<LoadResult>)> =
            servers.iter().map(|&kind| (kind, Vec::new())).collect();
        for round in 1..=repeats {
            for (kind, kind_runs) in &mut runs {
                match bench_repeat_round(*kind, &context, n, round) {
                    Ok(result) => kind_runs.push(result),
                    Err(error) => {
                        let text = format!(
                            "repeat round {round} for {} failed: {error:#}",
                            kind.label()
                        );
                        eprintln!("{text}");
                        measured.failures.push(text);
                    }
                }
            }
        }
        let servers = runs
            .into_iter()
            .map(|(kind, runs)| RepeatServer::new(kind.label(), runs))
            .collect();
        measured.repeat = Some(RepeatReport::new(
            n,
            seconds,
            repeats,
            context.tap_publisher,
            servers,
        ));
    }
    if parts.contains(&Part::Relay) {
        let mut relay = RelayReport::new(relay_seconds);
        relay.servers = each_server(&servers, "relay hop", &mut measured.failures, |kind| {
            bench_relay(kind, &context)
        });
        measured.relay = Some(relay);
    }
    if parts.contains(&Part::Idle) {
        let mut idle = IdleReport::new(args.idle_connections);
        idle.servers = each_server(&servers, "idle memory", &mut measured.failures, |kind| {
            bench_idle_memory(kind, &context).map(|result| IdleServer::new(kind.label(), result))
        });
        measured.idle_memory = Some(idle);
    }
    if parts.contains(&Part::Scale) {
        measured.scale = Some(ScaleReport {
            steps: context.scale_steps.clone(),
            seconds: context.scale_seconds,
            servers: each_server(&servers, "scale climb", &mut measured.failures, |kind| {
                bench_scale(kind, &context)
            }),
        });
    }

    let core = parts.contains(&Part::Core);
    let report = Report::new(
        measured,
        if core { subscribers } else { Vec::new() },
        seconds,
        args.quick,
        media_mbit,
        &media,
    );
    report::print(&report);
    let json = out_dir.join("results.json");
    std::fs::write(&json, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", json.display()))?;
    let svg = out_dir.join("cpu_rss.svg");
    std::fs::write(&svg, report::svg(&report))
        .with_context(|| format!("writing {}", svg.display()))?;
    println!("\nwrote {} and {}", json.display(), svg.display());
    Ok(())
}

/// Runs one part for each server; a server's failure becomes a line in `failures` (and the
/// report) instead of ending the run.
fn each_server<T>(
    servers: &[ServerKind],
    part: &str,
    failures: &mut Vec<String>,
    mut run: impl FnMut(ServerKind) -> Result<T>,
) -> Vec<T> {
    let mut results = Vec::new();
    for &kind in servers {
        match run(kind) {
            Ok(result) => results.push(result),
            Err(error) => {
                let text = format!("{part} for {} failed: {error:#}", kind.label());
                eprintln!("{text}");
                failures.push(text);
            }
        }
    }
    results
}

/// Makes the 30 s CBR test clip when it is missing.
fn ensure_media(media: &Path) -> Result<()> {
    if media.exists() {
        return Ok(());
    }
    println!("==> making {} with ffmpeg", media.display());
    let partial = media.with_extension("partial.flv");
    let mut command = Command::new("ffmpeg");
    command
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440"])
        .args(["-t", "30"])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        ])
        .args(["-b:v", "2500k", "-minrate", "2500k", "-maxrate", "2500k"])
        .args(["-bufsize", "2500k", "-x264-params", "nal-hrd=cbr"])
        .args(["-g", "60", "-keyint_min", "60", "-sc_threshold", "0"])
        .args(["-c:a", "aac", "-b:a", "128k", "-ar", "44100"])
        .args(["-f", "flv"])
        .arg(&partial);
    run(&mut command).context("making the test media")?;
    std::fs::rename(&partial, media)?;
    Ok(())
}

/// The clip's overall bit rate in Mbit/s, from ffprobe.
fn media_bitrate(media: &Path) -> Result<f64> {
    let text = output(
        Command::new("ffprobe")
            .args(["-v", "error", "-show_entries", "format=bit_rate"])
            .args(["-of", "default=noprint_wrappers=1:nokey=1"])
            .arg(media),
    )?;
    Ok(text.parse::<f64>().context("ffprobe bit_rate")? / 1e6)
}

fn log_file(path: &Path) -> Result<(Stdio, Stdio)> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    Ok((Stdio::from(file.try_clone()?), Stdio::from(file)))
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Ascend's applications for `role`, in `apps`.
fn ascend_apps(apps: &Path, role: Role) -> Result<()> {
    match role {
        Role::Main => {
            std::fs::create_dir_all(apps.join(APP))?;
            std::fs::create_dir_all(apps.join(SCRIPTED_APP))?;
            write_file(&apps.join(SCRIPTED_APP).join("main.asc"), SCRIPT)
        }
        Role::RelayOrigin { edge_port } => {
            std::fs::create_dir_all(apps.join(APP))?;
            let relay = apps.join(RELAY_APP);
            std::fs::create_dir_all(&relay)?;
            write_file(&relay.join("main.asc"), RELAY_SCRIPT)?;
            write_file(
                &relay.join("app.toml"),
                &format!("[config]\nedge = \"rtmp://127.0.0.1:{edge_port}/{EDGE_APP}\"\n"),
            )
        }
        Role::RelayEdge => Ok(std::fs::create_dir_all(apps.join(EDGE_APP))?),
        Role::Idle => Ok(std::fs::create_dir_all(
            apps.join(idle_app(ServerKind::Ascend)),
        )?),
    }
}

/// nginx-rtmp's `application` blocks for `role`.
fn nginx_apps(role: Role) -> String {
    match role {
        Role::Main => format!("application {APP} {{ live on; }}"),
        Role::RelayOrigin { edge_port } => format!(
            "application {RELAY_APP} {{ live on; push rtmp://127.0.0.1:{edge_port}/{EDGE_APP}; }}\n        \
             application {APP} {{ live on; }}"
        ),
        Role::RelayEdge => format!("application {EDGE_APP} {{ live on; }}"),
        Role::Idle => format!("application {} {{ live on; }}", idle_app(ServerKind::Nginx)),
    }
}

fn start_server(
    kind: ServerKind,
    port: u16,
    context: &Plan,
    role: Role,
) -> Result<(ChildGuard, PathBuf)> {
    let suffix = role.suffix();
    match kind {
        ServerKind::Ascend => {
            let base = context.dir.join(format!("ascend{suffix}"));
            let apps = base.join("apps");
            let logs = base.join("logs");
            std::fs::create_dir_all(&logs)?;
            ascend_apps(&apps, role)?;
            // Every player comes from 127.0.0.1: lift the per-IP limit (a public server's
            // default of 1000) the way an operator would, as nginx-rtmp has none.
            let config = base.join("ascend.toml");
            std::fs::write(&config, &context.ascend_config)
                .with_context(|| format!("writing {}", config.display()))?;
            let log = context.dir.join(format!("ascend{suffix}.stderr.log"));
            let (out, err) = log_file(&log)?;
            let args = [
                "--listen".to_string(),
                format!("127.0.0.1:{port}"),
                "--apps".to_string(),
                apps.display().to_string(),
                "--logs".to_string(),
                logs.display().to_string(),
                "--config".to_string(),
                config.display().to_string(),
            ];
            let mut command = with_raised_nofile(&context.ascend, &args);
            command.stdin(Stdio::null()).stdout(out).stderr(err);
            Ok((
                ChildGuard::spawn(&format!("ascend{suffix}"), &mut command)?,
                log,
            ))
        }
        ServerKind::Nginx => {
            let base = context.dir.join(format!("nginx{suffix}"));
            std::fs::create_dir_all(base.join("logs"))?;
            let conf = base.join("nginx.conf");
            let error_log = base.join("error.log");
            write_file(&conf, &nginx_conf(&base, port, &nginx_apps(role)))?;
            let log = base.join("stderr.log");
            let (out, err) = log_file(&log)?;
            let args = [
                "-c".to_string(),
                conf.display().to_string(),
                "-p".to_string(),
                format!("{}/", base.display()),
                "-e".to_string(),
                error_log.display().to_string(),
            ];
            let mut command = with_raised_nofile(Path::new(NGINX), &args);
            command.stdin(Stdio::null()).stdout(out).stderr(err);
            Ok((
                ChildGuard::spawn(&format!("nginx{suffix}"), &mut command)?,
                error_log,
            ))
        }
    }
}

fn nginx_conf(dir: &Path, port: u16, applications: &str) -> String {
    let dir = dir.display();
    format!(
        "load_module {NGINX_RTMP_MODULE};\n\
         worker_processes 1;\n\
         daemon off;\n\
         master_process off;\n\
         error_log {dir}/error.log;\n\
         pid {dir}/nginx.pid;\n\
         events {{ worker_connections 4096; }}\n\
         rtmp {{\n    server {{\n        listen 127.0.0.1:{port};\n        chunk_size 4096;\n        \
         {applications}\n    }}\n}}\n"
    )
}

/// Publishes the clip with ffmpeg (`-re`, looped, `-c copy`) to `app/STREAM`.
fn start_publisher(port: u16, app: &str, log: &Path, context: &Plan) -> Result<ChildGuard> {
    start_publisher_to(port, app, STREAM, log, context)
}

/// Publishes the clip with ffmpeg (`-re`, looped, `-c copy`) to `app/stream`.
fn start_publisher_to(
    port: u16,
    app: &str,
    stream: &str,
    log: &Path,
    context: &Plan,
) -> Result<ChildGuard> {
    let (out, err) = log_file(log)?;
    ChildGuard::spawn(
        "ffmpeg publisher",
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"])
            .args(["-stream_loop", "-1", "-i"])
            .arg(&context.media)
            .args(["-c", "copy", "-f", "flv"])
            .arg(format!("rtmp://127.0.0.1:{port}/{app}/{stream}"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err),
    )
}

fn bench_server(kind: ServerKind, context: &Plan) -> Result<(ServerResult, Option<ScriptResult>)> {
    let name = kind.label();
    println!("\n==> {name}");
    let LiveServer {
        port,
        mut server,
        log,
        mut publisher,
        publisher_log,
        live_after,
        tap: _,
    } = LiveServer::start(kind, context, &format!("publisher-{name}.log"), false)?;
    println!(
        "{name}: pid {} on 127.0.0.1:{port}, log {}; stream live after {:.2} s",
        server.pid(),
        log.display(),
        live_after.as_secs_f64()
    );

    let mut runs = Vec::new();
    for &n in &context.subscribers {
        let started = Instant::now();
        let result = run_load(
            context,
            (port, APP, STREAM),
            server.pid(),
            n,
            context.seconds,
            None,
        )
        .inspect_err(|_| {
            // A dead server or publisher is the likelier cause: say so first.
            let _ = server
                .check_running()
                .and_then(|()| publisher.check_running())
                .map_err(|e| {
                    eprintln!(
                        "{name}: {e:#} (see {} and {})",
                        log.display(),
                        publisher_log.display()
                    )
                });
        })?;
        println!(
            "{name}: N={n:<5} CPU {:>6.1} %  RSS {:>7.1} MB  {:>8.1} Mbit/s  kept up {}/{n}  client CPU {:.0} %{}  ({:.1} s)",
            result.server_cpu_pct,
            result.server_rss_peak_mb,
            result.mbit_per_s,
            result.kept_up,
            result.client_cpu_pct,
            result.saturation_mark(),
            started.elapsed().as_secs_f64(),
        );
        if !result.errors.is_empty() {
            println!(
                "{name}:   failures ({}): {}",
                result.failed,
                result.errors.join(" | ")
            );
        }
        runs.push(result);
        server.check_running()?;
        publisher.check_running()?;
        std::thread::sleep(Duration::from_secs(1));
    }

    let mut setup = Vec::new();
    for concurrency in [10, 100] {
        let result = run_setup(context, port, concurrency).inspect_err(|_| {
            let _ = server
                .check_running()
                .map_err(|e| eprintln!("{name}: {e:#} (see {})", log.display()));
        })?;
        println!(
            "{name}: setup at concurrency {concurrency}: {}/{} ok, {:.0} setups/s, p50 {} ms, p99 {} ms",
            result.succeeded,
            result.attempted,
            result.setups_per_s,
            report::fmt_opt(result.setup_ms.p50, 1),
            report::fmt_opt(result.setup_ms.p99, 1),
        );
        if !result.errors.is_empty() {
            println!("{name}:   failures: {}", result.errors.join(" | "));
        }
        setup.push(result);
        server.check_running()?;
    }
    // VmHWM before the script figures, which start extra instances of their own.
    let hwm_mb = crate::procfs::status_kb(Some(server.pid()), "VmHWM")
        .map(|kb| kb as f64 / 1024.0)
        .ok();

    let script = if kind == ServerKind::Ascend {
        let script_log = context
            .dir
            .join(format!("publisher-{name}-{SCRIPTED_APP}.log"));
        let mut second = start_publisher(port, SCRIPTED_APP, &script_log, context)?;
        let scripted_live = crate::load::runtime()?.block_on(wait_live(
            port,
            SCRIPTED_APP,
            STREAM,
            Duration::from_secs(30),
        ));
        if let Err(error) = scripted_live {
            bail!(
                "{error:#} (see {} and {})",
                log.display(),
                script_log.display()
            );
        }
        let result = run_script(context, port, server.pid()).inspect_err(|_| {
            let _ = server
                .check_running()
                .map_err(|e| eprintln!("{name}: {e:#} (see {})", log.display()));
        })?;
        for row in &result.setups {
            println!(
                "{name}: script, {} setups at concurrency {}: plain p50 {} p99 {} ms {:.0}/s, scripted p50 {} p99 {} ms {:.0}/s; script cost p50 {} p99 {} rate {}; script thread {} µs per scripted setup",
                row.kind,
                row.concurrency,
                report::fmt_opt(row.plain.ms.p50, 2),
                report::fmt_opt(row.plain.ms.p99, 2),
                row.plain.setups_per_s,
                report::fmt_opt(row.scripted.ms.p50, 2),
                report::fmt_opt(row.scripted.ms.p99, 2),
                row.scripted.setups_per_s,
                report::pct(row.cost_p50),
                report::pct(row.cost_p99),
                report::pct(row.cost_rate),
                report::fmt_opt(row.script_thread_us, 1),
            );
            for side in [&row.plain, &row.scripted] {
                if !side.errors.is_empty() {
                    println!(
                        "{name}:   failures ({}): {}",
                        side.app,
                        side.errors.join(" | ")
                    );
                }
            }
        }
        for side in &result.instance_start {
            println!(
                "{name}: instance start ({}): new p50 {} p99 {} ms, running p50 {} p99 {} ms; RSS {:.1} -> {:.1} MB, threads {} -> {}",
                side.app,
                report::fmt_opt(side.new_instance_ms.p50, 2),
                report::fmt_opt(side.new_instance_ms.p99, 2),
                report::fmt_opt(side.running_instance_ms.p50, 2),
                report::fmt_opt(side.running_instance_ms.p99, 2),
                side.rss_before_mb,
                side.rss_after_mb,
                side.threads_before,
                side.threads_after,
            );
            if !side.errors.is_empty() {
                println!(
                    "{name}:   failures ({}): {}",
                    side.app,
                    side.errors.join(" | ")
                );
            }
        }
        second.stop();
        Some(result)
    } else {
        println!("{name}: no script figures (nginx-rtmp has no application scripts)");
        None
    };
    publisher.stop();
    server.stop();
    Ok((
        ServerResult {
            name: name.to_string(),
            live_after_s: live_after.as_secs_f64(),
            hwm_mb,
            runs,
            setup,
        },
        script,
    ))
}

/// A main server with the clip published to it and live.
struct LiveServer {
    port: u16,
    server: ChildGuard,
    log: PathBuf,
    publisher: ChildGuard,
    publisher_log: PathBuf,
    /// From the publisher's start until the stream played.
    live_after: Duration,
    /// The tap the publisher goes through, if asked for.
    tap: Option<crate::tap::Tap>,
}

impl LiveServer {
    /// Starts `kind` and the publisher (logging to `publisher_log` in the bench folder),
    /// through a tap when `tapped`, and waits until the stream plays.
    fn start(
        kind: ServerKind,
        context: &Plan,
        publisher_log: &str,
        tapped: bool,
    ) -> Result<LiveServer> {
        let name = kind.label();
        let port = free_port()?;
        let (mut server, log) = start_server(kind, port, context, Role::Main)?;
        wait_for_port(port, Duration::from_secs(20), &mut server)
            .with_context(|| format!("starting {name} (see {})", log.display()))?;
        let publisher_log = context.dir.join(publisher_log);
        let tap = if tapped {
            let log = context.dir.join(format!("tap-{name}.log"));
            Some(crate::tap::start(port, &log)?)
        } else {
            None
        };
        let publish_port = tap.as_ref().map_or(port, |tap| tap.port);
        let mut publisher = start_publisher(publish_port, APP, &publisher_log, context)?;
        let live_after = match crate::load::runtime()?.block_on(wait_live(
            port,
            APP,
            STREAM,
            Duration::from_secs(30),
        )) {
            Ok(after) => after,
            Err(error) => {
                // A publisher that died is the likelier cause: say so.
                let publisher_state = publisher
                    .check_running()
                    .err()
                    .map(|e| format!("; {e:#}"))
                    .unwrap_or_default();
                bail!(
                    "{error:#}{publisher_state} (see {} and {})",
                    log.display(),
                    publisher_log.display()
                );
            }
        };
        Ok(LiveServer {
            port,
            server,
            log,
            publisher,
            publisher_log,
            live_after,
            tap,
        })
    }

    /// One load window of `n` players of this server's stream (time in the server too when
    /// the publisher goes through a tap).
    fn load(&self, context: &Plan, n: usize, seconds: f64) -> Result<LoadResult> {
        let tap_log = self.tap.as_ref().map(|tap| tap.log.as_path());
        run_load(
            context,
            (self.port, APP, STREAM),
            self.server.pid(),
            n,
            seconds,
            tap_log,
        )
        .with_context(|| format!("N={n} (see {})", self.log.display()))
    }

    fn stop(mut self) {
        self.publisher.stop();
        self.server.stop();
    }
}

/// One round of the repeat part for `kind`: a fresh server and publisher, one window at N.
fn bench_repeat_round(
    kind: ServerKind,
    context: &Plan,
    n: usize,
    round: usize,
) -> Result<LoadResult> {
    let name = kind.label();
    let live = LiveServer::start(
        kind,
        context,
        &format!("publisher-{name}-repeat.log"),
        context.tap_publisher,
    )?;
    let result = live.load(context, n, context.seconds)?;
    println!(
        "{name}: repeat {round} N={n:<5} CPU {:.1} %  {:.0} Mbit/s  kept up {}/{n}  lag+ p99 {} ms (audio {})  in server p99 {} ms (audio {})  client CPU {:.0} %{}",
        result.server_cpu_pct,
        result.mbit_per_s,
        result.kept_up,
        report::fmt_opt(result.lag_over_min_ms.p99, 0),
        report::fmt_opt(result.audio_lag_over_min_ms.p99, 0),
        report::fmt_opt(result.server_delay_ms.p99, 1),
        report::fmt_opt(result.audio_server_delay_ms.p99, 1),
        result.client_cpu_pct,
        result.saturation_mark(),
    );
    live.stop();
    Ok(result)
}

/// The scale part for one server: its own process and publisher, N climbing through the steps.
fn bench_scale(kind: ServerKind, context: &Plan) -> Result<ScaleServer> {
    let name = kind.label();
    println!("\n==> {name}: scale");
    let mut live = LiveServer::start(kind, context, &format!("publisher-{name}-scale.log"), false)?;
    let mut runs = Vec::new();
    for &n in &context.scale_steps {
        let result = live.load(context, n, context.scale_seconds)?;
        println!(
            "{name}: scale N={n:<5} kept up {}/{n}  CPU {:.1} %  client CPU {:.0} %{}",
            result.kept_up,
            result.server_cpu_pct,
            result.client_cpu_pct,
            result.saturation_mark(),
        );
        let go_on = climb_on(&result);
        runs.push(result);
        live.server.check_running()?;
        live.publisher.check_running()?;
        if !go_on {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    live.stop();
    Ok(ScaleServer::new(name, runs))
}

/// Runs `xtask bench-script` and parses its JSON.
fn run_script(context: &Plan, port: u16, pid: u32) -> Result<ScriptResult> {
    let args = vec![
        "bench-script".to_string(),
        "--port".to_string(),
        port.to_string(),
        "--plain-app".to_string(),
        APP.to_string(),
        "--scripted-app".to_string(),
        SCRIPTED_APP.to_string(),
        "--stream".to_string(),
        STREAM.to_string(),
        "--concurrency".to_string(),
        "10,100".to_string(),
        "--count".to_string(),
        context.script_setups.to_string(),
        "--instance-samples".to_string(),
        context.instance_samples.to_string(),
        "--server-pid".to_string(),
        pid.to_string(),
    ];
    run_json(&context.load_client, &args)
}

/// Runs `xtask bench-load` (release build, open-files limit raised) and parses its JSON.
fn run_load(
    context: &Plan,
    (port, app, stream): (u16, &str, &str),
    pid: u32,
    n: usize,
    seconds: f64,
    tap_log: Option<&Path>,
) -> Result<LoadResult> {
    let mut args = vec![
        "bench-load".to_string(),
        "--port".to_string(),
        port.to_string(),
        "--app".to_string(),
        app.to_string(),
        "--stream".to_string(),
        stream.to_string(),
        "--subscribers".to_string(),
        n.to_string(),
        "--seconds".to_string(),
        seconds.to_string(),
        "--ramp-ms".to_string(),
        if n <= 10 { "1000" } else { "1500" }.to_string(),
        "--server-pid".to_string(),
        pid.to_string(),
    ];
    if context.read_time_arrivals {
        args.push("--read-time-arrivals".to_string());
    }
    if let Some(log) = tap_log {
        args.push("--tap-log".to_string());
        args.push(log.display().to_string());
    }
    if let Some(dir) = &context.dump_lags {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = (1..)
            .map(|k| dir.join(format!("lags-pid{pid}-n{n}-{k}.csv")))
            .find(|path| !path.exists())
            .context("no free dump file name")?;
        println!("lag samples of this window: {}", path.display());
        args.push("--dump-lags".to_string());
        args.push(path.display().to_string());
    }
    run_json(&context.load_client, &args)
}

/// Runs `xtask bench-setup` and parses its JSON.
fn run_setup(context: &Plan, port: u16, concurrency: usize) -> Result<SetupResult> {
    let args = vec![
        "bench-setup".to_string(),
        "--port".to_string(),
        port.to_string(),
        "--app".to_string(),
        APP.to_string(),
        "--stream".to_string(),
        STREAM.to_string(),
        "--concurrency".to_string(),
        concurrency.to_string(),
        "--count".to_string(),
        context.setups.to_string(),
    ];
    run_json(&context.load_client, &args)
}

fn run_json<T: serde::de::DeserializeOwned>(program: &Path, args: &[String]) -> Result<T> {
    let mut command = with_raised_nofile(program, args);
    command.stdin(Stdio::null()).stderr(Stdio::inherit());
    let out = command
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    if !out.status.success() {
        bail!(
            "the load client `{}` failed ({})",
            args.join(" "),
            out.status
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|line| line.starts_with('{'))
        .context("the load client printed no JSON")?;
    serde_json::from_str(line).context("parsing the load client's JSON")
}

/// "; NAME exited unexpectedly (...)" for each of `children` that is no longer running.
fn dead_note(children: &mut [&mut ChildGuard]) -> String {
    children
        .iter_mut()
        .filter_map(|child| child.check_running().err())
        .map(|error| format!("; {error:#}"))
        .collect()
}

/// The relay hop for one server: an edge, an origin that relays `relay/*` to it, a plain
/// publish into the origin's `livestreams` with one local player (the baseline), then the
/// publish into `relay/hop` with a player on the origin and one on the edge.
fn bench_relay(kind: ServerKind, context: &Plan) -> Result<RelayServer> {
    let name = kind.label();
    println!(
        "\n==> {name}: relay hop ({} s windows)",
        context.relay_seconds
    );
    let runtime = crate::load::runtime()?;
    let edge_port = free_port()?;
    let (mut edge, edge_log) = start_server(kind, edge_port, context, Role::RelayEdge)?;
    wait_for_port(edge_port, Duration::from_secs(20), &mut edge)
        .with_context(|| format!("starting the edge (see {})", edge_log.display()))?;
    let origin_port = free_port()?;
    let (mut origin, origin_log) =
        start_server(kind, origin_port, context, Role::RelayOrigin { edge_port })?;
    wait_for_port(origin_port, Duration::from_secs(20), &mut origin)
        .with_context(|| format!("starting the origin (see {})", origin_log.display()))?;
    println!(
        "{name}: origin pid {} on 127.0.0.1:{origin_port} (log {}), edge pid {} on 127.0.0.1:{edge_port} (log {})",
        origin.pid(),
        origin_log.display(),
        edge.pid(),
        edge_log.display()
    );
    let logs = format!("see {} and {}", origin_log.display(), edge_log.display());

    // The baseline: the same clip into the origin, not relayed, one local player.
    let plain_log = context.dir.join(format!("publisher-{name}-plain-hop.log"));
    let mut publisher = start_publisher_to(origin_port, APP, HOP_STREAM, &plain_log, context)?;
    if let Err(error) = runtime.block_on(wait_live(
        origin_port,
        APP,
        HOP_STREAM,
        Duration::from_secs(30),
    )) {
        let dead = dead_note(&mut [&mut origin, &mut publisher]);
        bail!(
            "plain publish: {error:#}{dead} ({logs}, {})",
            plain_log.display()
        );
    }
    let plain = match run_hop(
        context,
        origin_port,
        APP,
        None,
        origin.pid(),
        None,
        HOP_WARMUP,
    ) {
        Ok(result) => result,
        Err(error) => {
            let dead = dead_note(&mut [&mut origin, &mut publisher]);
            bail!("plain run: {error:#}{dead} ({logs})");
        }
    };
    publisher.stop();
    println!(
        "{name}: plain publish, one local player: origin CPU {:.2} %{}",
        plain.origin_cpu_pct,
        if plain.errors.is_empty() {
            String::new()
        } else {
            format!("; failures: {}", plain.errors.join(" | "))
        }
    );
    origin.check_running()?;
    std::thread::sleep(Duration::from_secs(1));

    // The relay: the clip into relay/hop, which the origin republishes to the edge's live/hop.
    let relay_log = context.dir.join(format!("publisher-{name}-relay-hop.log"));
    let mut publisher =
        start_publisher_to(origin_port, RELAY_APP, HOP_STREAM, &relay_log, context)?;
    for (port, app, side) in [
        (origin_port, RELAY_APP, "origin"),
        (edge_port, EDGE_APP, "edge"),
    ] {
        match runtime.block_on(wait_live(port, app, HOP_STREAM, Duration::from_secs(30))) {
            Ok(after) => println!(
                "{name}: {app}/{HOP_STREAM} live on the {side} after {:.2} s",
                after.as_secs_f64()
            ),
            Err(error) => {
                let dead = dead_note(&mut [&mut origin, &mut edge, &mut publisher]);
                bail!(
                    "relayed publish, {side}: {error:#}{dead} ({logs}, {})",
                    relay_log.display()
                );
            }
        }
    }
    let relayed = match run_hop(
        context,
        origin_port,
        RELAY_APP,
        Some(edge_port),
        origin.pid(),
        Some(edge.pid()),
        HOP_WARMUP,
    ) {
        Ok(result) => result,
        Err(error) => {
            let dead = dead_note(&mut [&mut origin, &mut edge, &mut publisher]);
            bail!("relayed run: {error:#}{dead} ({logs})");
        }
    };
    let loaded = if context.relay_local_players > 0 {
        match busy_origin_hop(
            context,
            (origin_port, origin.pid()),
            (edge_port, edge.pid()),
        ) {
            Ok(loaded) => Some(loaded),
            Err(error) => {
                let dead = dead_note(&mut [&mut origin, &mut edge, &mut publisher]);
                bail!("relayed run with local players: {error:#}{dead} ({logs})");
            }
        }
    } else {
        None
    };
    publisher.stop();
    origin.check_running()?;
    edge.check_running()?;
    origin.stop();
    edge.stop();

    let server = RelayServer::new(name, plain, relayed, loaded);
    println!(
        "{name}: relay hop: {}/{} origin frames matched at the edge (by {}), added p50 {} p99 {} ms (targets <= {TARGET_RELAY_P50_MS} / <= {TARGET_RELAY_P99_MS} ms); origin CPU {:.2} % relaying, {:.2} % plain: {:+.2} % per relayed stream; edge CPU {} %{}",
        server.matched,
        server.relayed.origin_frames,
        server.matched_by,
        report::fmt_opt(server.added_ms.p50, 2),
        report::fmt_opt(server.added_ms.p99, 2),
        server.origin_cpu_relay_pct,
        server.origin_cpu_plain_pct,
        server.cpu_per_relayed_stream_pct,
        report::fmt_opt(server.edge_cpu_pct, 2),
        if server.relayed.errors.is_empty() {
            String::new()
        } else {
            format!("; failures: {}", server.relayed.errors.join(" | "))
        }
    );
    Ok(server)
}

/// Memory per idle connection, on a fresh server process.
fn bench_idle_memory(kind: ServerKind, context: &Plan) -> Result<IdleResult> {
    let name = kind.label();
    let app = idle_app(kind);
    println!(
        "\n==> {name}: memory per idle connection ({} connections to {app}, fresh process)",
        context.idle_connections
    );
    let port = free_port()?;
    let (mut server, log) = start_server(kind, port, context, Role::Idle)?;
    wait_for_port(port, Duration::from_secs(20), &mut server)
        .with_context(|| format!("starting {name} (see {})", log.display()))?;
    // Let the fresh process finish starting up before its RSS is read.
    std::thread::sleep(Duration::from_millis(500));
    let result = match run_idle(context, port, app, server.pid()) {
        Ok(result) => result,
        Err(error) => {
            let dead = dead_note(&mut [&mut server]);
            bail!("{error:#}{dead} (see {})", log.display());
        }
    };
    server.check_running()?;
    server.stop();
    println!(
        "{name}: idle: {}/{} connected in {:.1} s; RSS {:.1} -> {:.1} MB: {:.2} KiB per connection (target < {TARGET_IDLE_KIB} KiB); {:.1} MB 1 s after closing them{}",
        result.succeeded,
        result.attempted,
        result.connect_s,
        result.rss_before_kib as f64 / 1024.0,
        result.rss_after_kib as f64 / 1024.0,
        result.kib_per_connection,
        result.rss_after_close_kib as f64 / 1024.0,
        if result.errors.is_empty() {
            String::new()
        } else {
            format!("; failures: {}", result.errors.join(" | "))
        }
    );
    Ok(result)
}

/// Runs `xtask bench-hop` and parses its JSON.
fn run_hop(
    context: &Plan,
    origin_port: u16,
    origin_app: &str,
    edge_port: Option<u16>,
    origin_pid: u32,
    edge_pid: Option<u32>,
    warmup: Duration,
) -> Result<HopResult> {
    let mut args = vec![
        "bench-hop".to_string(),
        "--origin-port".to_string(),
        origin_port.to_string(),
        "--origin-app".to_string(),
        origin_app.to_string(),
        "--edge-app".to_string(),
        EDGE_APP.to_string(),
        "--stream".to_string(),
        HOP_STREAM.to_string(),
        "--seconds".to_string(),
        context.relay_seconds.to_string(),
        "--origin-pid".to_string(),
        origin_pid.to_string(),
        "--warmup-ms".to_string(),
        warmup.as_millis().to_string(),
    ];
    if let Some(port) = edge_port {
        args.extend(["--edge-port".to_string(), port.to_string()]);
    }
    if let Some(pid) = edge_pid {
        args.extend(["--edge-pid".to_string(), pid.to_string()]);
    }
    run_json(&context.load_client, &args)
}

/// The hop measurement's warm-up: from the players' connects to the window's start.
const HOP_WARMUP: Duration = Duration::from_secs(3);

/// The relay hop again while `context.relay_local_players` players of the relayed stream load
/// the origin. The hop's players connect first (so the origin's measuring player is not behind
/// the others in the origin's fan-out), the load's half a second later; the hop's window starts
/// once the load's players are all playing and ends before they leave.
fn busy_origin_hop(
    context: &Plan,
    (origin_port, origin_pid): (u16, u32),
    (edge_port, edge_pid): (u16, u32),
) -> Result<crate::report::BusyOriginHop> {
    let head_start = Duration::from_millis(500);
    // The load's ramp (1.5 s) and warm-up (2 s), and a second to spare.
    let warmup = head_start + Duration::from_millis(4500);
    std::thread::scope(|scope| {
        let hop = scope.spawn(|| {
            run_hop(
                context,
                origin_port,
                RELAY_APP,
                Some(edge_port),
                origin_pid,
                Some(edge_pid),
                warmup,
            )
        });
        std::thread::sleep(head_start);
        let load = run_load(
            context,
            (origin_port, RELAY_APP, HOP_STREAM),
            origin_pid,
            context.relay_local_players,
            context.relay_seconds + 2.0,
            None,
        );
        let hop = hop
            .join()
            .map_err(|_| anyhow::anyhow!("the hop thread panicked"))??;
        let load = load?;
        Ok(crate::report::BusyOriginHop::new(&hop, &load))
    })
}

/// Runs `xtask bench-idle` and parses its JSON.
fn run_idle(context: &Plan, port: u16, app: &str, pid: u32) -> Result<IdleResult> {
    let args = vec![
        "bench-idle".to_string(),
        "--port".to_string(),
        port.to_string(),
        "--app".to_string(),
        app.to_string(),
        "--connections".to_string(),
        context.idle_connections.to_string(),
        "--server-pid".to_string(),
        pid.to_string(),
    ];
    run_json(&context.load_client, &args)
}
