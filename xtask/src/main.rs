//! The project's own automation, run as `cargo xtask <task>`:
//!
//! - `ci`: what CI runs (ffmpeg present, fmt check, clippy and docs with warnings denied, build, tests);
//! - `fuzz`: the cargo-fuzz targets of `fuzz/` for a while each, with a table and
//!   `target/fuzz-report.json` (executions, coverage, crashes);
//! - `bench`: Ascend against nginx-rtmp on loopback, with a table, JSON and an SVG plot in
//!   `target/bench/`, plus Ascend's application-script figures (nginx-rtmp has no scripts), the
//!   latency and CPU of a relay hop (origin -> edge) and the memory per idle connection.
//!
//! `bench-load`, `bench-setup`, `bench-script`, `bench-hop` and `bench-idle` are the benchmark's
//! load client, which `bench` runs as a separate optimised process.

mod bench;
mod ci;
mod fuzz;
mod idle;
mod load;
mod procfs;
mod relay;
mod repeat;
mod report;
mod scale;
mod tap;
mod tools;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Ascend's automation.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "Ascend's automation: ci, bench, fuzz")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// The whole check CI runs: ffmpeg, fmt, clippy, docs, build, tests.
    Ci,
    /// Benchmark Ascend against nginx-rtmp on loopback.
    Bench(bench::BenchArgs),
    /// Run the cargo-fuzz targets of fuzz/ (stable toolchain, no sanitizer) and report.
    Fuzz(fuzz::FuzzArgs),
    /// (internal) The load client: N players for a window, JSON on stdout.
    #[command(hide = true)]
    BenchLoad(load::LoadArgs),
    /// (internal) Connection setups at a concurrency, JSON on stdout.
    #[command(hide = true)]
    BenchSetup(load::SetupArgs),
    /// (internal) Ascend's script figures: plain against scripted setups, instance start.
    #[command(hide = true)]
    BenchScript(load::ScriptArgs),
    /// (internal) Relay hop: a player on the origin and one on the edge, JSON on stdout.
    #[command(hide = true)]
    BenchHop(relay::HopArgs),
    /// (internal) Idle connections and the server's memory, JSON on stdout.
    #[command(hide = true)]
    BenchIdle(idle::IdleArgs),
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Ci => ci::ci(),
        Task::Bench(args) => bench::bench(args),
        Task::Fuzz(args) => fuzz::fuzz(args),
        Task::BenchLoad(args) => load::bench_load(args),
        Task::BenchSetup(args) => load::bench_setup(args),
        Task::BenchScript(args) => load::bench_script(args),
        Task::BenchHop(args) => relay::bench_hop(args),
        Task::BenchIdle(args) => idle::bench_idle(args),
    }
}
