//! `cargo xtask ci`: the whole check CI runs, failing fast. It makes sure ffmpeg and nginx-rtmp
//! are there (the interop tests need them), then checks formatting, runs clippy with warnings denied,
//! builds the documentation with warnings denied, builds the binaries and runs every test, printing each step's name and duration, and
//! last a plain `ci: N passed, N failed, N skipped` line summed over the test binaries.

use crate::tools::{cargo, describe, ensure_ffmpeg, ensure_nginx_rtmp, secs, status};
use anyhow::{Context, Result};
use std::io::{BufRead, BufReader};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Runs the CI steps in order; on the first failure exits with that step's status.
pub fn ci() -> Result<()> {
    let started = Instant::now();
    let mut done: Vec<(String, Duration)> = Vec::new();

    let step_start = Instant::now();
    println!("==> ffmpeg and ffprobe on PATH");
    if let Err(error) = ensure_ffmpeg() {
        eprintln!("ci: step `ffmpeg and ffprobe on PATH` failed: {error:#}");
        std::process::exit(1);
    }
    finish("ffmpeg and ffprobe on PATH", step_start, &mut done);

    // The interop tests relay into and out of nginx-rtmp, a server we did not write.
    let step_start = Instant::now();
    println!("==> nginx with the RTMP module");
    if let Err(error) = ensure_nginx_rtmp() {
        eprintln!("ci: step `nginx with the RTMP module` failed: {error:#}");
        std::process::exit(1);
    }
    finish("nginx with the RTMP module", step_start, &mut done);

    let steps: Vec<(&str, Vec<&str>)> = vec![
        ("format", vec!["fmt", "--all", "--", "--check"]),
        (
            "clippy",
            vec![
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
        ("docs", vec!["doc", "--workspace", "--no-deps"]),
        ("build", vec!["build", "--workspace", "--bins"]),
        ("test", vec!["test", "--workspace"]),
    ];
    let mut tally = Tally::default();
    for (name, args) in steps {
        let mut command = cargo();
        command.args(&args);
        if name == "docs" {
            // Broken or private intra-doc links fail the step, like clippy's warnings.
            command.env("RUSTDOCFLAGS", "-D warnings");
        }
        let counted = (name == "test").then_some(&mut tally);
        run_step(name, &mut command, &mut done, counted)?;
    }

    println!();
    for (name, duration) in &done {
        println!("  {name:<28} {}", secs(*duration));
    }
    println!("ci: all steps passed in {}", secs(started.elapsed()));
    // The plain closing line a CI log reader understands, last.
    println!("{}", tally.line());
    Ok(())
}

/// Test counts summed over every `test result:` line of `cargo test`.
#[derive(Debug, Default)]
struct Tally {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl Tally {
    /// Adds the counts of one `test result: ok. 3 passed; 0 failed; 1 ignored; ...` line.
    fn add(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result:") else {
            return;
        };
        for part in rest.split([';', '.']) {
            let mut words = part.split_whitespace();
            if let (Some(count), Some(what)) = (words.next(), words.next()) {
                if let Ok(count) = count.parse::<u64>() {
                    match what {
                        "passed" => self.passed += count,
                        "failed" => self.failed += count,
                        "ignored" => self.ignored += count,
                        _ => {}
                    }
                }
            }
        }
    }

    fn line(&self) -> String {
        format!(
            "ci: {} passed, {} failed, {} skipped",
            self.passed, self.failed, self.ignored
        )
    }
}

fn run_step(
    name: &str,
    command: &mut Command,
    done: &mut Vec<(String, Duration)>,
    tally: Option<&mut Tally>,
) -> Result<()> {
    println!("==> {name}: {}", describe(command));
    let step_start = Instant::now();
    let exit = match tally {
        None => status(command)?,
        Some(tally) => {
            let exit = run_counting(command, tally)?;
            if !exit.success() {
                println!("{}", tally.line());
            }
            exit
        }
    };
    if !exit.success() {
        eprintln!(
            "ci: step `{name}` failed after {} ({exit}): `{}`",
            secs(step_start.elapsed()),
            describe(command)
        );
        std::process::exit(exit.code().unwrap_or(1));
    }
    finish(name, step_start, done);
    Ok(())
}

/// Runs `command`, echoing its stdout line by line and counting test results.
fn run_counting(command: &mut Command, tally: &mut Tally) -> Result<ExitStatus> {
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start `{}`", describe(command)))?;
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line.context("reading the test output")?;
            println!("{line}");
            tally.add(&line);
        }
    }
    Ok(child.wait()?)
}

fn finish(name: &str, step_start: Instant, done: &mut Vec<(String, Duration)>) {
    let elapsed = step_start.elapsed();
    println!("<== {name}: ok in {}", secs(elapsed));
    done.push((name.to_string(), elapsed));
}

#[cfg(test)]
mod tests {
    use super::Tally;

    #[test]
    fn tally_sums_cargo_test_result_lines() {
        let mut tally = Tally::default();
        tally.add("test result: ok. 36 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.15s");
        tally.add("test result: FAILED. 5 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out");
        tally.add("running 3 tests");
        assert_eq!(tally.line(), "ci: 41 passed, 1 failed, 2 skipped");
    }
}
