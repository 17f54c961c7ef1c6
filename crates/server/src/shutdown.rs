//! Graceful shutdown (SIGTERM, Ctrl-C) and reload (SIGHUP).
//!
//! Shutdown runs in phases, each bounded in time, so the process always exits within
//! [`SHUTDOWN_BUDGET`]: the listener stops accepting; every connection unpublishes what it
//! publishes (players get `NetStream.Play.UnpublishNotify`, relays unpublish remotely);
//! every instance script gets `onAppStop` (`Application.Shutdown`) and ends; every connection
//! closes after sending what it has queued. Instance logs are written line by line, so nothing
//! waits in a buffer.

use crate::ServerContext;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Longest a shutdown may take before the process exits anyway.
pub const SHUTDOWN_BUDGET: Duration = Duration::from_secs(5);

/// Where a shutdown stands; connections watch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownPhase {
    /// Serving.
    Running,
    /// Stop publishing: players and relays learn the streams ended.
    Unpublish,
    /// Close every connection.
    Close,
}

/// Runs the phases after the listener stopped accepting.
pub async fn shut_down(context: Arc<ServerContext>) {
    let started = Instant::now();
    info!("shutdown: unpublishing every stream");
    context.shutdown.send_replace(ShutdownPhase::Unpublish);
    // Time for writers to send UnpublishNotify and relays to unpublish remotely.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let instances = context.applications.all_instances();
    info!(
        instances = instances.len(),
        "shutdown: stopping application instances"
    );
    let scripts: Vec<_> = instances
        .iter()
        .filter_map(|instance| {
            let script = instance
                .script
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            script.map(|s| (instance.full_name(), s))
        })
        .collect();
    let budget = SHUTDOWN_BUDGET.saturating_sub(Duration::from_secs(2));
    let stopped = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + budget;
        for (name, script) in scripts {
            let left = deadline.saturating_duration_since(Instant::now());
            if !script.shut_down("Application.Shutdown", left) {
                warn!(instance = %name, "onAppStop did not finish in time; its script is abandoned");
            }
        }
    });
    let _ = stopped.await;

    info!("shutdown: closing connections");
    context.shutdown.send_replace(ShutdownPhase::Close);
    let deadline = started + SHUTDOWN_BUDGET;
    while context.open_connections() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    info!(
        seconds = started.elapsed().as_secs_f32(),
        left_open = context.open_connections(),
        "shutdown complete"
    );
}

/// SIGHUP: read the configuration file again (new limits apply to connections accepted from
/// now on; `listen`, `apps`, `logs` and `[hub]` changes need a restart and are reported) and
/// reload the scripts of every running instance.
pub fn reload(context: &ServerContext) {
    if let Some(args) = &context.args {
        match crate::config::ServerConfig::from_args(args) {
            Ok(fresh) => {
                let current = &context.config;
                if fresh.listen != current.listen
                    || fresh.apps_dir != current.apps_dir
                    || fresh.logs_dir != current.logs_dir
                {
                    warn!(
                        "SIGHUP: listen, apps and logs changes need a restart; kept as they were"
                    );
                }
                *context.limits.write().unwrap_or_else(|p| p.into_inner()) =
                    std::sync::Arc::new(fresh.limits);
                info!("SIGHUP: configuration reloaded; new limits apply to new connections");
            }
            Err(error) => {
                warn!(error = %format!("{error:#}"), "SIGHUP: configuration not reloaded, the old one stays");
            }
        }
    }
    reload_scripts(context);
}

/// Reloads the scripts of every running instance.
pub fn reload_scripts(context: &ServerContext) {
    for instance in context.applications.all_instances() {
        if instance.script_event(ascend_script::ScriptEvent::Reload) {
            info!(instance = %instance.full_name(), "SIGHUP: reloading script");
        }
    }
}
