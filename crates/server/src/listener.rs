//! Accepting connections: one task per client, under the total and per-address limits.
//!
//! A connection over a limit is closed at once with a log line naming the limit; the accept
//! loop itself never stops on a client's error.

use crate::applications::Applications;
use crate::{connection, ServerConfig, ServerContext};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tracing::{error, info, warn};

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    context: Arc<ServerContext>,
}

/// Open connections, total and per address.
#[derive(Default)]
struct ConnectionCounts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Releases a connection's place in the counts when its task ends.
struct ConnectionSlot {
    counts: Arc<Mutex<ConnectionCounts>>,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.total -= 1;
        if let Some(n) = counts.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.per_ip.remove(&self.ip);
            }
        }
    }
}

impl Server {
    /// Binds the listen address and prepares the applications folder and logs folder.
    pub async fn bind(config: ServerConfig) -> anyhow::Result<Server> {
        Self::bind_with_args(config, None).await
    }

    /// Like [`Server::bind`], remembering the command line so SIGHUP can read the
    /// configuration file again.
    pub async fn bind_with_args(
        config: ServerConfig,
        args: Option<crate::config::Args>,
    ) -> anyhow::Result<Server> {
        use anyhow::Context;
        if let Err(error) = std::fs::create_dir_all(&config.logs_dir) {
            // Instance logs will fail to open and say so; the server itself runs on.
            warn!(logs = %config.logs_dir.display(), %error, "cannot create the logs folder: instance logs go to the server log only");
        }
        if !config.apps_dir.is_dir() {
            warn!(apps = %config.apps_dir.display(), "applications folder does not exist: every connect will be refused until it does");
        }
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listening on {}", config.listen))?;
        let applications = Applications::new(
            config.apps_dir.clone(),
            config.logs_dir.clone(),
            config.hub.hub_config(),
        );
        if let Ok(address) = listener.local_addr() {
            applications.set_own_port(address.port());
        }
        let context = Arc::new(ServerContext {
            limits: std::sync::RwLock::new(Arc::new(config.limits.clone())),
            args,
            config,
            applications,
            shutdown: tokio::sync::watch::Sender::new(crate::shutdown::ShutdownPhase::Running),
            connections: std::sync::atomic::AtomicUsize::new(0),
        });
        crate::scripting::watch_for_changes(context.clone())?;
        Ok(Server { listener, context })
    }

    /// What the connections share (for the shutdown that follows [`Server::run`]).
    pub fn context(&self) -> Arc<ServerContext> {
        self.context.clone()
    }

    /// The address actually bound (port 0 picks a free one).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts connections until `shutdown` resolves.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let counts = Arc::new(Mutex::new(ConnectionCounts::default()));
        let next_id = AtomicU64::new(1);
        info!(
            listen = %self.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            apps = %self.context.config.apps_dir.display(),
            logs = %self.context.config.logs_dir.display(),
            "ascend listening"
        );
        tokio::pin!(shutdown);
        loop {
            let (socket, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors and the like: wait a little, keep serving.
                        error!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = &mut shutdown => {
                    info!("shutting down");
                    return;
                }
            };
            let limits = self.context.limits();
            let slot = {
                let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
                let from_ip = c.per_ip.get(&peer.ip()).copied().unwrap_or(0);
                if c.total >= limits.max_connections {
                    warn!(ip = %peer.ip(), limit = limits.max_connections, "connection refused: max_connections reached");
                    continue;
                }
                if from_ip >= limits.max_connections_per_ip {
                    warn!(ip = %peer.ip(), limit = limits.max_connections_per_ip, "connection refused: max_connections_per_ip reached");
                    continue;
                }
                c.total += 1;
                *c.per_ip.entry(peer.ip()).or_insert(0) += 1;
                ConnectionSlot {
                    counts: counts.clone(),
                    ip: peer.ip(),
                }
            };
            if let Err(e) = socket.set_nodelay(true) {
                warn!(error = %e, "TCP_NODELAY not set");
            }
            let id = next_id.fetch_add(1, Ordering::Relaxed);
            let context = self.context.clone();
            context.connections.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                connection::serve(socket, peer, context.clone(), id).await;
                context.connections.fetch_sub(1, Ordering::Relaxed);
                drop(slot);
            });
        }
    }
}
