//! The repeat part of the bench: the fan-out at its largest N again, in several rounds, the
//! servers taking turns, each run against a fresh server and a fresh publisher.
//!
//! Why: at N = 1000 on a 2-vCPU machine one 20 s window's lag p99 moves by 10–20 % from run
//! to run (nginx-rtmp's the most: its load client is near saturation there), more than the
//! difference the fan-out target asks about. One window cannot say whether a server's lag is
//! "no worse"; the medians of several alternating rounds can, and every round is printed
//! beside them so the spread stays in sight.

use serde::Serialize;

use crate::load::{median, LoadResult};
use crate::report::{cpu_per_gbit, ratio};

/// The medians of one server's rounds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepeatMedians {
    /// Server CPU %.
    pub cpu_pct: Option<f64>,
    /// Delivered Mbit/s.
    pub mbit_per_s: Option<f64>,
    /// Server CPU % per delivered Gbit/s.
    pub cpu_per_gbit: Option<f64>,
    /// Lag+ p99 of all frames, ms.
    pub lag_p99_ms: Option<f64>,
    /// Lag+ p99 of video frames, ms.
    pub video_lag_p99_ms: Option<f64>,
    /// Lag+ p99 of audio frames, ms.
    pub audio_lag_p99_ms: Option<f64>,
    /// Lag p99 on the stream's one clock, all frames, ms.
    pub stream_clock_lag_p99_ms: Option<f64>,
    /// The same, audio frames.
    pub audio_stream_clock_lag_p99_ms: Option<f64>,
    /// The later kind's stream-clock lag p99 ([`later_kind_lag_p99`]), ms.
    pub later_kind_lag_p99_ms: Option<f64>,
    /// Time in the server (publisher tap to player) p50, all frames, ms.
    pub server_delay_p50_ms: Option<f64>,
    /// Time in the server p99, all frames, ms.
    pub server_delay_p99_ms: Option<f64>,
    /// Time in the server p99, audio frames, ms.
    pub audio_server_delay_p99_ms: Option<f64>,
}

impl RepeatMedians {
    fn of(runs: &[LoadResult]) -> RepeatMedians {
        let median_of = |value: &dyn Fn(&LoadResult) -> Option<f64>| {
            let mut values: Vec<f64> = runs.iter().filter_map(value).collect();
            median(&mut values)
        };
        RepeatMedians {
            cpu_pct: median_of(&|run| Some(run.server_cpu_pct)),
            mbit_per_s: median_of(&|run| Some(run.mbit_per_s)),
            cpu_per_gbit: median_of(&cpu_per_gbit),
            lag_p99_ms: median_of(&|run| run.lag_over_min_ms.p99),
            video_lag_p99_ms: median_of(&|run| run.video_lag_over_min_ms.p99),
            audio_lag_p99_ms: median_of(&|run| run.audio_lag_over_min_ms.p99),
            stream_clock_lag_p99_ms: median_of(&|run| run.stream_clock_lag_ms.p99),
            audio_stream_clock_lag_p99_ms: median_of(&|run| run.audio_stream_clock_lag_ms.p99),
            later_kind_lag_p99_ms: median_of(&later_kind_lag_p99),
            server_delay_p50_ms: median_of(&|run| run.server_delay_ms.p50),
            server_delay_p99_ms: median_of(&|run| run.server_delay_ms.p99),
            audio_server_delay_p99_ms: median_of(&|run| run.audio_server_delay_ms.p99),
        }
    }
}

/// The stream-clock lag p99 of whichever kind, audio or video, has the larger one: what a
/// player's buffer must cover for neither its sound nor its picture to stall, since it
/// presents both on one clock (ms; None when either is missing).
pub fn later_kind_lag_p99(run: &LoadResult) -> Option<f64> {
    Some(
        run.video_stream_clock_lag_ms
            .p99?
            .max(run.audio_stream_clock_lag_ms.p99?),
    )
}

/// One server's rounds.
#[derive(Debug, Clone, Serialize)]
pub struct RepeatServer {
    /// Server name.
    pub name: String,
    /// One run per round, in order.
    pub runs: Vec<LoadResult>,
    /// Rounds in which every player kept up and none failed.
    pub rounds_all_kept_up: usize,
    /// Medians over the rounds.
    pub medians: RepeatMedians,
}

impl RepeatServer {
    /// Summarises a server's rounds.
    pub fn new(name: &str, runs: Vec<LoadResult>) -> RepeatServer {
        RepeatServer {
            name: name.to_string(),
            rounds_all_kept_up: runs
                .iter()
                .filter(|run| run.failed == 0 && run.kept_up == run.subscribers)
                .count(),
            medians: RepeatMedians::of(&runs),
            runs,
        }
    }
}

/// Ascend / nginx-rtmp over the rounds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepeatRatios {
    /// Ratio of the medians of CPU % per Gbit/s.
    pub cpu_per_gbit: Option<f64>,
    /// Ratio of the medians of lag+ p99, all frames.
    pub lag_p99: Option<f64>,
    /// The same, video frames.
    pub video_lag_p99: Option<f64>,
    /// The same, audio frames.
    pub audio_lag_p99: Option<f64>,
    /// Ratio of the medians of the stream-clock lag p99, all frames.
    pub stream_clock_lag_p99: Option<f64>,
    /// The same, audio frames.
    pub audio_stream_clock_lag_p99: Option<f64>,
    /// Ratio of the medians of the later kind's stream-clock lag p99.
    pub later_kind_lag_p99: Option<f64>,
    /// Ratio of the medians of the time in the server p99, all frames.
    pub server_delay_p99: Option<f64>,
    /// The same, audio frames.
    pub audio_server_delay_p99: Option<f64>,
    /// Rounds both servers ran.
    pub rounds: usize,
    /// Rounds in which Ascend's lag+ p99 (all frames) was at most nginx-rtmp's.
    pub rounds_lag_no_worse: usize,
    /// Rounds in which Ascend's audio lag+ p99 was at most nginx-rtmp's.
    pub rounds_audio_lag_no_worse: usize,
    /// Rounds in which Ascend's later kind's stream-clock lag p99 was at most nginx-rtmp's.
    pub rounds_later_kind_lag_no_worse: usize,
}

impl RepeatRatios {
    fn new(a: &RepeatServer, b: &RepeatServer) -> RepeatRatios {
        let rounds: Vec<(&LoadResult, &LoadResult)> = a.runs.iter().zip(&b.runs).collect();
        let no_worse = |p99: fn(&LoadResult) -> Option<f64>| {
            rounds
                .iter()
                .filter(|(x, y)| matches!((p99(x), p99(y)), (Some(x), Some(y)) if x <= y))
                .count()
        };
        RepeatRatios {
            cpu_per_gbit: ratio(a.medians.cpu_per_gbit, b.medians.cpu_per_gbit),
            lag_p99: ratio(a.medians.lag_p99_ms, b.medians.lag_p99_ms),
            video_lag_p99: ratio(a.medians.video_lag_p99_ms, b.medians.video_lag_p99_ms),
            audio_lag_p99: ratio(a.medians.audio_lag_p99_ms, b.medians.audio_lag_p99_ms),
            stream_clock_lag_p99: ratio(
                a.medians.stream_clock_lag_p99_ms,
                b.medians.stream_clock_lag_p99_ms,
            ),
            audio_stream_clock_lag_p99: ratio(
                a.medians.audio_stream_clock_lag_p99_ms,
                b.medians.audio_stream_clock_lag_p99_ms,
            ),
            later_kind_lag_p99: ratio(
                a.medians.later_kind_lag_p99_ms,
                b.medians.later_kind_lag_p99_ms,
            ),
            server_delay_p99: ratio(a.medians.server_delay_p99_ms, b.medians.server_delay_p99_ms),
            audio_server_delay_p99: ratio(
                a.medians.audio_server_delay_p99_ms,
                b.medians.audio_server_delay_p99_ms,
            ),
            rounds: rounds.len(),
            rounds_lag_no_worse: no_worse(|run| run.lag_over_min_ms.p99),
            rounds_audio_lag_no_worse: no_worse(|run| run.audio_lag_over_min_ms.p99),
            rounds_later_kind_lag_no_worse: no_worse(later_kind_lag_p99),
        }
    }
}

/// The repeat part of `results.json`.
#[derive(Debug, Clone, Serialize)]
pub struct RepeatReport {
    /// N.
    pub subscribers: usize,
    /// Window per run, seconds.
    pub seconds: f64,
    /// Rounds asked for.
    pub rounds: usize,
    /// The publisher went through a tap (`--tap-publisher`): the time-in-server figures are
    /// there, and the CPU figures are a few points high for Ascend.
    pub tapped: bool,
    /// One entry per server.
    pub servers: Vec<RepeatServer>,
    /// Ascend / nginx-rtmp, when both ran.
    pub ratios: Option<RepeatRatios>,
}

impl RepeatReport {
    /// Summarises the rounds and, when both servers ran, compares them.
    pub fn new(
        subscribers: usize,
        seconds: f64,
        rounds: usize,
        tapped: bool,
        servers: Vec<RepeatServer>,
    ) -> RepeatReport {
        let find = |name: &str| servers.iter().find(|server| server.name == name);
        let ratios = match (find("ascend"), find("nginx-rtmp")) {
            (Some(a), Some(b)) => Some(RepeatRatios::new(a, b)),
            _ => None,
        };
        RepeatReport {
            subscribers,
            seconds,
            rounds,
            tapped,
            servers,
            ratios,
        }
    }
}

/// "a / b / c" with one decimal ("-" for what is missing).
fn triple(a: Option<f64>, b: Option<f64>, c: Option<f64>) -> String {
    use crate::report::fmt_opt;
    format!("{} / {} / {}", fmt_opt(a, 1), fmt_opt(b, 1), fmt_opt(c, 1))
}

/// Prints every round, the medians and the ratios.
pub fn print(report: &RepeatReport) {
    use crate::report::{fmt_opt, pair};
    println!();
    println!(
        "repeat: N = {} again, {} rounds of {} s, the servers taking turns, each run a fresh server and publisher{}",
        report.subscribers,
        report.rounds,
        report.seconds,
        if report.tapped {
            " (through a publisher tap: time in the server measured, CPU a few points high)"
        } else {
            ""
        }
    );
    println!(
        "{:<11} {:>5} {:>7} {:>8} {:>11} {:>9} {:>9} {:>12} {:>18} {:>8} {:>22} {:>9} {:>11}",
        "server",
        "round",
        "CPU %",
        "Mbit/s",
        "kept up",
        "CPU/Gbit",
        "lag+ p99",
        "video/audio",
        "clock p99 all/aud.",
        "later kind",
        "in server p50/p99/aud.",
        "client %",
        "read p99 ms"
    );
    for server in &report.servers {
        for (round, run) in server.runs.iter().enumerate() {
            println!(
                "{:<11} {:>5} {:>7.1} {:>8.1} {:>11} {:>9} {:>9} {:>12} {:>18} {:>8} {:>22} {:>9.0} {:>11}{}",
                server.name,
                round + 1,
                run.server_cpu_pct,
                run.mbit_per_s,
                format!("{}/{}", run.kept_up, run.subscribers),
                fmt_opt(cpu_per_gbit(run), 1),
                fmt_opt(run.lag_over_min_ms.p99, 0),
                pair(
                    run.video_lag_over_min_ms.p99,
                    run.audio_lag_over_min_ms.p99,
                    0
                ),
                pair(
                    run.stream_clock_lag_ms.p99,
                    run.audio_stream_clock_lag_ms.p99,
                    0
                ),
                fmt_opt(later_kind_lag_p99(run), 0),
                triple(
                    run.server_delay_ms.p50,
                    run.server_delay_ms.p99,
                    run.audio_server_delay_ms.p99
                ),
                run.client_cpu_pct,
                fmt_opt(run.client_read_delay_ms.p99, 1),
                run.saturation_mark(),
            );
        }
        let m = &server.medians;
        println!(
            "{:<11} {:>5} {:>7} {:>8} {:>11} {:>9} {:>9} {:>12} {:>18} {:>8} {:>22}",
            server.name,
            "med.",
            fmt_opt(m.cpu_pct, 1),
            fmt_opt(m.mbit_per_s, 1),
            format!("{}/{} rounds", server.rounds_all_kept_up, server.runs.len()),
            fmt_opt(m.cpu_per_gbit, 1),
            fmt_opt(m.lag_p99_ms, 0),
            pair(m.video_lag_p99_ms, m.audio_lag_p99_ms, 0),
            pair(
                m.stream_clock_lag_p99_ms,
                m.audio_stream_clock_lag_p99_ms,
                0
            ),
            fmt_opt(m.later_kind_lag_p99_ms, 0),
            triple(
                m.server_delay_p50_ms,
                m.server_delay_p99_ms,
                m.audio_server_delay_p99_ms
            ),
        );
    }
    if let Some(r) = &report.ratios {
        println!(
            "ascend / nginx-rtmp, medians: CPU per Gbit/s {}, lag+ p99 {} (video {}, audio {}), \
             stream-clock lag p99 {} (audio {}, the later kind {}), time in the server p99 {} \
             (audio {}); lag+ p99 no worse in {}/{} rounds, audio in {}/{}, the later kind on \
             the stream clock in {}/{}",
            fmt_opt(r.cpu_per_gbit, 2),
            fmt_opt(r.lag_p99, 2),
            fmt_opt(r.video_lag_p99, 2),
            fmt_opt(r.audio_lag_p99, 2),
            fmt_opt(r.stream_clock_lag_p99, 2),
            fmt_opt(r.audio_stream_clock_lag_p99, 2),
            fmt_opt(r.later_kind_lag_p99, 2),
            fmt_opt(r.server_delay_p99, 2),
            fmt_opt(r.audio_server_delay_p99, 2),
            r.rounds_lag_no_worse,
            r.rounds,
            r.rounds_audio_lag_no_worse,
            r.rounds,
            r.rounds_later_kind_lag_no_worse,
            r.rounds,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Quantiles;

    fn run(cpu: f64, lag_p99: f64, audio_p99: f64) -> LoadResult {
        let p99 = |value: f64| Quantiles {
            p50: Some(value / 2.0),
            p99: Some(value),
            count: 1,
        };
        LoadResult {
            subscribers: 1000,
            kept_up: 1000,
            server_cpu_pct: cpu,
            mbit_per_s: 2000.0,
            lag_over_min_ms: p99(lag_p99),
            video_lag_over_min_ms: p99(lag_p99 / 2.0),
            audio_lag_over_min_ms: p99(audio_p99),
            ..LoadResult::default()
        }
    }

    #[test]
    fn medians_and_rounds_no_worse_are_counted_per_round() {
        let ascend = RepeatServer::new(
            "ascend",
            vec![
                run(30.0, 40.0, 41.0),
                run(34.0, 39.0, 45.0),
                run(32.0, 41.0, 40.0),
            ],
        );
        let nginx = RepeatServer::new(
            "nginx-rtmp",
            vec![
                run(50.0, 50.0, 50.0),
                run(48.0, 36.0, 36.0),
                run(52.0, 43.0, 39.0),
            ],
        );
        assert_eq!(ascend.medians.cpu_pct, Some(32.0));
        assert_eq!(ascend.medians.cpu_per_gbit, Some(16.0));
        assert_eq!(ascend.medians.lag_p99_ms, Some(40.0));
        assert_eq!(ascend.rounds_all_kept_up, 3);
        let report = RepeatReport::new(1000, 20.0, 3, false, vec![ascend, nginx]);
        let ratios = report.ratios.as_ref().map(|r| {
            (
                r.cpu_per_gbit,
                r.lag_p99,
                r.rounds_lag_no_worse,
                r.rounds_audio_lag_no_worse,
            )
        });
        // Medians: CPU 32 / 50 -> 16 / 25 per Gbit/s; lag 40 / 43; round by round, lag no
        // worse in rounds 1 and 3, audio in round 1 only.
        assert_eq!(ratios, Some((Some(0.64), Some(40.0 / 43.0), 2, 1)));
    }

    #[test]
    fn the_later_kind_is_whichever_of_audio_and_video_lags_more() {
        let clock = |video: f64, audio: f64| {
            let mut result = run(30.0, 40.0, 40.0);
            result.video_stream_clock_lag_ms.p99 = Some(video);
            result.audio_stream_clock_lag_ms.p99 = Some(audio);
            result
        };
        assert_eq!(later_kind_lag_p99(&clock(20.0, 42.0)), Some(42.0));
        assert_eq!(later_kind_lag_p99(&LoadResult::default()), None);
        let ascend = RepeatServer::new(
            "ascend",
            vec![clock(20.0, 42.0), clock(21.0, 43.0), clock(19.0, 40.0)],
        );
        let nginx = RepeatServer::new(
            "nginx-rtmp",
            vec![clock(47.0, 39.0), clock(41.0, 38.0), clock(45.0, 36.0)],
        );
        let report = RepeatReport::new(1000, 20.0, 3, false, vec![ascend, nginx]);
        let ratios = report.ratios.expect("both servers ran");
        // Medians 42 (audio) against 45 (video); round by round 42 <= 47, 43 > 41, 40 <= 45.
        assert_eq!(ratios.later_kind_lag_p99, Some(42.0 / 45.0));
        assert_eq!(ratios.rounds_later_kind_lag_no_worse, 2);
    }

    #[test]
    fn one_server_alone_has_no_ratios() {
        let ascend = RepeatServer::new("ascend", vec![run(30.0, 40.0, 41.0)]);
        assert!(RepeatReport::new(1000, 20.0, 1, false, vec![ascend])
            .ratios
            .is_none());
    }
}
