//! The scale part of the bench: how many players of one stream a server keeps up with.
//!
//! N grows step by step (1000, 1500, 2000, ... by default) against one server and one
//! publisher; the climb stops at the first step where a player fell behind or failed (that
//! step is the server's limit) or where the load client itself was saturated (then the
//! figure says how far the load client could follow, not the server).

use serde::Serialize;

use crate::load::LoadResult;

/// Why the climb ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleStop {
    /// Some players fell behind or failed at the last step: the server's limit.
    PlayersFellBehind,
    /// The load client used its whole core: the limit measured is the client's.
    LoadClientSaturated,
    /// Every step kept every player up.
    AllStepsKeptUp,
}

impl ScaleStop {
    /// Words for the table.
    pub fn text(self) -> &'static str {
        match self {
            ScaleStop::PlayersFellBehind => "players fell behind",
            ScaleStop::LoadClientSaturated => "load client saturated",
            ScaleStop::AllStepsKeptUp => "every step kept up",
        }
    }
}

/// One server's climb.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleServer {
    /// Server name.
    pub name: String,
    /// One run per step reached, in order.
    pub runs: Vec<LoadResult>,
    /// The largest N at which every player kept up (None: not even the first step).
    pub all_kept_up_to: Option<usize>,
    /// Why the climb ended.
    pub stopped_by: ScaleStop,
}

impl ScaleServer {
    /// Judges a climb from its runs (the last run is the step it stopped at).
    pub fn new(name: &str, runs: Vec<LoadResult>) -> ScaleServer {
        let all_kept_up_to = runs
            .iter()
            .take_while(|run| fully_kept_up(run))
            .map(|run| run.subscribers)
            .last();
        let stopped_by = match runs.last() {
            Some(last) if !fully_kept_up(last) => ScaleStop::PlayersFellBehind,
            Some(last) if last.client_saturated => ScaleStop::LoadClientSaturated,
            _ => ScaleStop::AllStepsKeptUp,
        };
        ScaleServer {
            name: name.to_string(),
            runs,
            all_kept_up_to,
            stopped_by,
        }
    }
}

/// Whether the climb goes on after `run`.
pub fn climb_on(run: &LoadResult) -> bool {
    fully_kept_up(run) && !run.client_saturated
}

fn fully_kept_up(run: &LoadResult) -> bool {
    run.failed == 0 && run.kept_up == run.subscribers
}

/// The scale part of `results.json`.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleReport {
    /// The steps tried, in order.
    pub steps: Vec<usize>,
    /// Window per step, seconds.
    pub seconds: f64,
    /// One climb per server.
    pub servers: Vec<ScaleServer>,
}

/// Prints the climbs.
pub fn print(report: &ScaleReport) {
    println!();
    println!(
        "scale: players of one stream, N = {:?}, {} s each, until a player falls behind or the load client saturates",
        report.steps, report.seconds
    );
    println!(
        "{:<11} {:>5} {:>11} {:>7} {:>8} {:>9} {:>16}",
        "server", "N", "kept up", "CPU %", "RSS MB", "client %", "lag+ p50/p99 ms"
    );
    for server in &report.servers {
        for run in &server.runs {
            println!(
                "{:<11} {:>5} {:>11} {:>7.1} {:>8.1} {:>9.0} {:>16}{}",
                server.name,
                run.subscribers,
                format!("{}/{}", run.kept_up, run.subscribers),
                run.server_cpu_pct,
                run.server_rss_peak_mb,
                run.client_cpu_pct,
                crate::report::pair(run.lag_over_min_ms.p50, run.lag_over_min_ms.p99, 0),
                run.saturation_mark(),
            );
        }
    }
    for server in &report.servers {
        println!(
            "{}: every player kept up to N = {}; stopped: {}",
            server.name,
            server
                .all_kept_up_to
                .map_or("none".to_string(), |n| n.to_string()),
            server.stopped_by.text()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(subscribers: usize, kept_up: usize, client_saturated: bool) -> LoadResult {
        LoadResult {
            subscribers,
            connected: subscribers,
            kept_up,
            client_saturated,
            ..LoadResult::default()
        }
    }

    #[test]
    fn a_climb_ends_at_the_first_step_with_a_player_behind() {
        let server = ScaleServer::new("s", vec![run(1000, 1000, false), run(1500, 1499, false)]);
        assert_eq!(server.all_kept_up_to, Some(1000));
        assert_eq!(server.stopped_by, ScaleStop::PlayersFellBehind);
        assert!(!climb_on(&server.runs[1]));
    }

    #[test]
    fn a_saturated_load_client_is_named_as_the_limit() {
        let server = ScaleServer::new("s", vec![run(1000, 1000, true)]);
        assert_eq!(server.all_kept_up_to, Some(1000));
        assert_eq!(server.stopped_by, ScaleStop::LoadClientSaturated);
        let server = ScaleServer::new("s", vec![run(1000, 1000, false), run(1500, 1500, false)]);
        assert_eq!(server.stopped_by, ScaleStop::AllStepsKeptUp);
        assert_eq!(server.all_kept_up_to, Some(1500));
    }
}
