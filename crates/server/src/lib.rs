//! The Ascend server: everything that runs. It joins the protocol crate (`ascend-rtmp`), the
//! stream hub (`ascend-media`) and the script host (`ascend-script`) around tokio sockets.
//!
//! - [`config`]: flags, configuration file, limits.
//! - [`listener`]: accepting connections under the connection limits.
//! - [`connection`]: one task per client: handshake, session events, publish and play.
//! - [`writer`]: the one writer of each socket (commands and frames, vectored writes).
//! - [`applications`]: which applications exist, running instances, their hubs and clients.
//! - [`scripting`]: instance scripts: `app.toml`, the command router, watchdog, idle unload,
//!   hot reload.
//! - [`relay`]: multipoint publishing: server-side NetConnection / NetStream / Stream.play.
//! - [`shutdown`]: graceful shutdown in bounded phases, SIGHUP reload.
//! - [`logging`]: `tracing` set-up (`RUST_LOG` filter).
//! - [`cli`]: the `ascend` command.

pub mod applications;
pub mod cli;
pub mod config;
pub mod connection;
pub mod listener;
pub mod logging;
pub mod relay;
pub mod scripting;
pub mod shutdown;
pub mod writer;

pub use config::ServerConfig;

/// What every connection task shares.
pub struct ServerContext {
    /// The configuration in force.
    pub config: ServerConfig,
    /// Applications and their running instances.
    pub applications: applications::Applications,
    /// The shutdown phase, watched by every connection.
    pub shutdown: tokio::sync::watch::Sender<shutdown::ShutdownPhase>,
    /// Connections open right now.
    pub connections: std::sync::atomic::AtomicUsize,
    /// The limits in force (SIGHUP reloads them from the configuration file).
    pub limits: std::sync::RwLock<std::sync::Arc<config::Limits>>,
    /// The command line, to read the configuration file again on SIGHUP.
    pub args: Option<config::Args>,
}

impl ServerContext {
    /// The limits in force now; a connection keeps the ones it started with.
    pub fn limits(&self) -> std::sync::Arc<config::Limits> {
        self.limits
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Connections open right now.
    pub fn open_connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::Relaxed)
    }
}
