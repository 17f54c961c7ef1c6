//! The `ascend` command: parse flags, load configuration, run until Ctrl-C or SIGTERM.

use crate::config::{Args, ServerConfig};
use crate::listener::Server;
use clap::Parser;

/// Runs the server with the process's arguments.
pub fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    crate::logging::init();
    let config = ServerConfig::from_args(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let server = Server::bind_with_args(config, Some(args)).await?;
        let context = server.context();
        #[cfg(unix)]
        {
            let context = context.clone();
            tokio::spawn(async move {
                use tokio::signal::unix::{signal, SignalKind};
                let Ok(mut hangup) = signal(SignalKind::hangup()) else {
                    return;
                };
                while hangup.recv().await.is_some() {
                    crate::shutdown::reload(&context);
                }
            });
        }
        server.run(shutdown_signal()).await;
        crate::shutdown::shut_down(context).await;
        Ok::<(), anyhow::Error>(())
    })?;
    // Script threads stuck in a runaway handler must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
