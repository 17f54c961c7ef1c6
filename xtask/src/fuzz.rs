//! `cargo xtask fuzz [--time SECONDS] [--target NAME]...`: runs the cargo-fuzz targets of
//! `fuzz/` one after the other, each for `--time` seconds (libFuzzer's `-max_total_time`), and
//! reports per target the executions, the coverage reached (libFuzzer's `cov:` edges and `ft:`
//! features), the corpus and the crashes found, as a table and as `target/fuzz-report.json`.
//!
//! On the machine's stable toolchain, cargo-fuzz's default AddressSanitizer build is refused
//! (`-Zsanitizer` is a nightly flag), so everything here builds and runs with
//! `--sanitizer none`: the coverage instrumentation (`-Cpasses=sancov-module` and its
//! `-Cllvm-args`) is stable, as are the debug assertions and overflow checks cargo-fuzz turns
//! on. Nothing needs a nightly compiler nor `RUSTC_BOOTSTRAP`. The project forbids `unsafe`,
//! so a sanitizer would mostly watch dependencies; panics, overflows, out-of-memory (`-rss_limit_mb`)
//! and hangs (`-timeout`) are all caught without one.
//!
//! cargo-fuzz is installed from crates.io when missing. Each target starts from its own corpus
//! in `fuzz/corpus/TARGET` (kept between runs, ignored by git) plus the hand-made inputs of
//! `tests/corpus/KIND`, read only. A crash leaves its input in `fuzz/artifacts/TARGET/`; the
//! log of each run is `target/fuzz/TARGET.log`. The command fails when a project target crashed
//! or could not run; `rml_chunk_deserializer` fuzzes `rml_rtmp`'s deserializer, which the
//! project does not use, and its crashes are reported as upstream findings only.

use crate::tools::{cargo, describe, target_dir, workspace_root};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::collections::BTreeSet;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A fuzz target: its name, the `tests/corpus/` folder that seeds it, and whether it fuzzes
/// upstream code the project does not use.
struct Target {
    name: &'static str,
    seeds: &'static str,
    upstream: bool,
}

const TARGETS: &[Target] = &[
    Target {
        name: "handshake",
        seeds: "handshake",
        upstream: false,
    },
    Target {
        name: "chunk_decoder",
        seeds: "chunk",
        upstream: false,
    },
    Target {
        name: "server_session",
        seeds: "chunk",
        upstream: false,
    },
    Target {
        name: "amf",
        seeds: "amf",
        upstream: false,
    },
    Target {
        name: "message_parse",
        seeds: "message",
        upstream: false,
    },
    Target {
        name: "flv_classify",
        seeds: "flv",
        upstream: false,
    },
    Target {
        name: "amf_to_js",
        seeds: "amf",
        upstream: false,
    },
    Target {
        name: "rml_chunk_deserializer",
        seeds: "chunk",
        upstream: true,
    },
];

/// The cargo-fuzz build everything here uses: see the module documentation.
const SANITIZER: &str = "none";
/// Seconds one input may run before libFuzzer calls it a hang (a crash, `timeout-*`).
const INPUT_TIMEOUT_SECS: u64 = 10;
/// Resident memory beyond which libFuzzer calls it out-of-memory (a crash, `oom-*`).
const RSS_LIMIT_MB: u64 = 2048;
/// Artifact name prefixes that are crashes (libFuzzer also writes `slow-unit-*`, which are not).
const CRASH_PREFIXES: &[&str] = &["crash-", "oom-", "timeout-", "leak-"];

/// Options of `cargo xtask fuzz`.
#[derive(Debug, clap::Args)]
pub struct FuzzArgs {
    /// Seconds to fuzz each target (libFuzzer's -max_total_time).
    #[arg(long, default_value_t = 60)]
    time: u64,
    /// Fuzz only this target (repeat for several); default: all of them.
    #[arg(long = "target", value_name = "NAME")]
    targets: Vec<String>,
}

/// What one target's run found, as written to `target/fuzz-report.json`.
#[derive(Debug, Serialize)]
struct TargetReport {
    name: String,
    /// Fuzzes rml_rtmp, not project code: its crashes do not fail the run.
    upstream: bool,
    /// How the run ended: `ok`, `crashed` or `failed to run`.
    outcome: String,
    seconds: f64,
    executions: u64,
    executions_per_second: u64,
    /// Coverage edges (`cov:`) at the end of the run.
    coverage: u64,
    /// Coverage features (`ft:`) at the end of the run.
    features: u64,
    /// Inputs in the corpus at the end of the run.
    corpus: u64,
    /// Crash inputs (`crash-`, `oom-`, `timeout-`, `leak-`) this run left in the artifacts.
    crashes: Vec<String>,
    /// The first lines of the crash report (a panic message, usually), when there was one.
    crash_summary: Option<String>,
    /// libFuzzer's log of the run.
    log: String,
}

/// The whole run, as written to `target/fuzz-report.json`.
#[derive(Debug, Serialize)]
struct FuzzReport {
    seconds_per_target: u64,
    sanitizer: &'static str,
    cargo_fuzz: String,
    targets: Vec<TargetReport>,
}

/// Runs `cargo xtask fuzz`.
pub fn fuzz(args: FuzzArgs) -> Result<()> {
    let selected: Vec<&Target> = if args.targets.is_empty() {
        TARGETS.iter().collect()
    } else {
        let mut selected = Vec::new();
        for name in &args.targets {
            match TARGETS.iter().find(|t| t.name == name.as_str()) {
                Some(target) => selected.push(target),
                None => bail!(
                    "no fuzz target {name:?}; the targets are: {}",
                    TARGETS
                        .iter()
                        .map(|t| t.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
        selected
    };
    if args.time == 0 {
        bail!("--time must be at least 1 second");
    }
    let root = workspace_root();
    let version = ensure_cargo_fuzz()?;
    println!("==> {version}, sanitizer {SANITIZER} (stable toolchain)");

    // One build for all the selected targets; `cargo fuzz run` then finds them up to date.
    let mut build = cargo_fuzz();
    build.args(["build", "--sanitizer", SANITIZER]);
    if selected.len() == 1 {
        build.arg(selected[0].name);
    }
    println!("==> {}", describe(&build));
    let status = build.status().context("running cargo fuzz build")?;
    if !status.success() {
        bail!("`{}` failed ({status})", describe(&build));
    }

    let logs = target_dir().join("fuzz");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let mut reports = Vec::new();
    for target in &selected {
        println!("==> fuzzing {} for {} s", target.name, args.time);
        let report = run_target(&root, &logs, target, args.time)?;
        println!(
            "    {}: {} executions, cov {}, ft {}, {} crash(es)",
            report.outcome,
            report.executions,
            report.coverage,
            report.features,
            report.crashes.len()
        );
        reports.push(report);
    }

    print_table(&reports);
    let report = FuzzReport {
        seconds_per_target: args.time,
        sanitizer: SANITIZER,
        cargo_fuzz: version,
        targets: reports,
    };
    let json = target_dir().join("fuzz-report.json");
    std::fs::write(&json, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", json.display()))?;
    println!("wrote {}", json.display());

    let mut failed = Vec::new();
    for target in &report.targets {
        if target.upstream {
            if !target.crashes.is_empty() {
                println!(
                    "note: {} crashed: an upstream finding in rml_rtmp, not a project crash",
                    target.name
                );
            }
        } else if target.outcome != "ok" {
            failed.push(format!("{} ({})", target.name, target.outcome));
        }
    }
    if !failed.is_empty() {
        bail!(
            "project fuzz targets failed: {}; inputs in fuzz/artifacts/, logs in {}",
            failed.join(", "),
            logs.display()
        );
    }
    Ok(())
}

/// `cargo fuzz` in the workspace root (where cargo-fuzz finds `fuzz/`).
fn cargo_fuzz() -> Command {
    let mut command = cargo();
    command.arg("fuzz");
    command
}

/// cargo-fuzz's version, installing it from crates.io first when it is missing.
fn ensure_cargo_fuzz() -> Result<String> {
    let version = || {
        cargo_fuzz()
            .arg("--version")
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    if let Some(version) = version() {
        return Ok(version);
    }
    let mut install = cargo();
    install.args(["install", "cargo-fuzz", "--locked"]);
    println!("==> cargo-fuzz is missing: {}", describe(&install));
    let status = install.status().context("running cargo install")?;
    if !status.success() {
        bail!("`{}` failed ({status})", describe(&install));
    }
    version().context("cargo-fuzz installed but `cargo fuzz --version` fails")
}

/// Fuzzes one target for `seconds` and reads what it found.
fn run_target(root: &Path, logs: &Path, target: &Target, seconds: u64) -> Result<TargetReport> {
    let corpus = root.join("fuzz/corpus").join(target.name);
    let artifacts = root.join("fuzz/artifacts").join(target.name);
    for dir in [&corpus, &artifacts] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let before = artifact_names(&artifacts)?;
    let log_path = logs.join(format!("{}.log", target.name));
    let log =
        File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;

    let mut command = cargo_fuzz();
    command
        .args(["run", "--sanitizer", SANITIZER, target.name])
        .arg(&corpus)
        .arg(root.join("tests/corpus").join(target.seeds))
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={INPUT_TIMEOUT_SECS}"))
        .arg(format!("-rss_limit_mb={RSS_LIMIT_MB}"))
        .arg("-print_final_stats=1")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group, so a run that overstays is stopped with its fuzzer.
        .process_group(0);
    let started = Instant::now();
    let status = wait_bounded(&mut command, Duration::from_secs(seconds + 300))?;
    let elapsed = started.elapsed().as_secs_f64();

    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let stats = Stats::parse(&text);
    let crashes: Vec<String> = artifact_names(&artifacts)?
        .difference(&before)
        .filter(|name| CRASH_PREFIXES.iter().any(|p| name.starts_with(p)))
        .map(|name| format!("fuzz/artifacts/{}/{name}", target.name))
        .collect();
    let outcome = match status {
        Some(status) if status.success() && crashes.is_empty() && stats.done => "ok",
        _ if !crashes.is_empty() => "crashed",
        None => "hung",
        Some(_) if stats.executions > 0 => "crashed",
        Some(_) => "failed to run",
    };
    Ok(TargetReport {
        name: target.name.to_string(),
        upstream: target.upstream,
        outcome: outcome.to_string(),
        seconds: (elapsed * 10.0).round() / 10.0,
        executions: stats.executions,
        executions_per_second: if elapsed > 0.0 {
            (stats.executions as f64 / elapsed) as u64
        } else {
            0
        },
        coverage: stats.coverage,
        features: stats.features,
        corpus: stats.corpus,
        crashes,
        crash_summary: crash_summary(&text),
        log: log_path.display().to_string(),
    })
}

/// Runs `command` (in its own process group), killing the group after `limit`. `None` when it
/// had to be killed.
fn wait_bounded(command: &mut Command, limit: Duration) -> Result<Option<ExitStatus>> {
    let mut child = command
        .spawn()
        .with_context(|| format!("could not start `{}`", describe(command)))?;
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() > deadline {
            // The group id is the child's pid (process_group(0)).
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(format!("-{}", child.id()))
                .status();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// File names in an artifacts folder.
fn artifact_names(dir: &Path) -> Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        names.insert(entry?.file_name().to_string_lossy().into_owned());
    }
    Ok(names)
}

/// Figures from a libFuzzer log.
#[derive(Debug, Default, PartialEq)]
struct Stats {
    executions: u64,
    coverage: u64,
    features: u64,
    corpus: u64,
    /// The run reached `-max_total_time` (libFuzzer's `DONE` line).
    done: bool,
}

impl Stats {
    /// Reads the last status line (`#N  NEW|REDUCE|pulse|DONE  cov: C ft: F corp: K/...`) and the
    /// final `stat::number_of_executed_units`, which a crash report prints too.
    fn parse(log: &str) -> Stats {
        let mut stats = Stats::default();
        for line in log.lines() {
            let line = line.trim();
            if let Some(count) = line.strip_prefix("stat::number_of_executed_units:") {
                if let Ok(count) = count.trim().parse() {
                    stats.executions = count;
                }
                continue;
            }
            let Some(rest) = line.strip_prefix('#') else {
                continue;
            };
            let mut words = rest.split_whitespace();
            let Some(Ok(count)) = words.next().map(str::parse::<u64>) else {
                continue;
            };
            stats.executions = stats.executions.max(count);
            let words: Vec<&str> = words.collect();
            if words.first() == Some(&"DONE") {
                stats.done = true;
            }
            let after = |label: &str| {
                words
                    .iter()
                    .position(|w| *w == label)
                    .and_then(|i| words.get(i + 1))
                    .map(|w| w.split('/').next().unwrap_or(w))
                    .and_then(|w| w.parse::<u64>().ok())
            };
            if let Some(coverage) = after("cov:") {
                stats.coverage = coverage;
            }
            if let Some(features) = after("ft:") {
                stats.features = features;
            }
            if let Some(corpus) = after("corp:") {
                stats.corpus = corpus;
            }
        }
        stats
    }
}

/// The panic message or libFuzzer error of a crashed run: up to three lines from the first
/// `panicked at` or `ERROR: libFuzzer`.
fn crash_summary(log: &str) -> Option<String> {
    let lines: Vec<&str> = log.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.contains("panicked at"))
        .or_else(|| lines.iter().position(|l| l.contains("ERROR: libFuzzer")))?;
    Some(
        lines[start..lines.len().min(start + 3)]
            .iter()
            .map(|l| l.trim())
            .collect::<Vec<_>>()
            .join(" | "),
    )
}

fn print_table(reports: &[TargetReport]) {
    println!();
    println!(
        "{:<24} {:>8} {:>12} {:>9} {:>6} {:>7} {:>7} {:>8}  outcome",
        "target", "seconds", "executions", "exec/s", "cov", "ft", "corpus", "crashes"
    );
    for r in reports {
        let outcome = if r.upstream && !r.crashes.is_empty() {
            format!("{} (upstream: rml_rtmp, not project code)", r.outcome)
        } else {
            r.outcome.clone()
        };
        println!(
            "{:<24} {:>8.1} {:>12} {:>9} {:>6} {:>7} {:>7} {:>8}  {outcome}",
            r.name,
            r.seconds,
            r.executions,
            r.executions_per_second,
            r.coverage,
            r.features,
            r.corpus,
            r.crashes.len()
        );
        if let Some(summary) = &r.crash_summary {
            println!("    {summary}");
        }
        for crash in &r.crashes {
            println!("    {crash}");
        }
    }
    println!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_final_status_line_and_stats() {
        let log = "\
INFO: Seed: 1\n\
#2\tINITED cov: 120 ft: 130 corp: 12/2048b exec/s: 0 rss: 40Mb\n\
#4096\tpulse  cov: 300 ft: 512 corp: 40/4Kb lim: 43 exec/s: 2048 rss: 45Mb\n\
#123456\tDONE   cov: 345 ft: 678 corp: 77/9Kb lim: 4096 exec/s: 2057 rss: 60Mb\n\
Done 123456 runs in 61 second(s)\n\
stat::number_of_executed_units: 123457\n";
        assert_eq!(
            Stats::parse(log),
            Stats {
                executions: 123_457,
                coverage: 345,
                features: 678,
                corpus: 77,
                done: true
            }
        );
    }

    #[test]
    fn a_crash_has_no_done_line_and_a_summary() {
        let log = "\
#900\tNEW    cov: 50 ft: 60 corp: 5/100b lim: 4 exec/s: 0 rss: 30Mb L: 3/3 MS: 1 ChangeBit-\n\
thread '<unnamed>' panicked at src/chunk.rs:10:5:\n\
attempt to subtract with overflow\n\
==1== ERROR: libFuzzer: deadly signal\n\
stat::number_of_executed_units: 901\n";
        let stats = Stats::parse(log);
        assert!(!stats.done);
        assert_eq!((stats.executions, stats.coverage), (901, 50));
        assert_eq!(
            crash_summary(log).as_deref(),
            Some("thread '<unnamed>' panicked at src/chunk.rs:10:5: | attempt to subtract with overflow | ==1== ERROR: libFuzzer: deadly signal")
        );
    }
}
