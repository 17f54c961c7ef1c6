//! Server configuration: command-line flags, the optional TOML file, and their defaults.
//!
//! Flags win over the file, the file wins over the defaults. Every limit has a default that
//! suits a public server; the file can change each one:
//!
//! ```toml
//! listen = "0.0.0.0:1935"
//! apps = "applications"
//! logs = "logs"
//! [limits]
//! max_connections = 10000
//! max_connections_per_ip = 1000
//! handshake_timeout_secs = 10
//! connect_timeout_secs = 30
//! write_stall_timeout_secs = 30
//! max_message_size = 8388608
//! max_streams_per_connection = 64
//! max_queued_messages = 4096
//! idle_timeout_secs = 300
//! max_pending_connects = 256
//! max_pending_calls = 64
//! [hub]
//! ring_capacity = 256
//! gop_cache_max_bytes = 8388608
//! publisher_takeover_after_ms = 2000
//! audio_hold_ms = 50
//! audio_hold_min_players = 100
//! audio_hold_max_frames = 1
//! fanout_shard_size = 1024
//! ```

use clap::Parser;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `ascend`: a live-streaming RTMP server that runs Flash Media Server application scripts.
#[derive(Debug, Clone, Parser)]
#[command(name = "ascend", version, about)]
pub struct Args {
    /// Address to listen on for RTMP [default: 0.0.0.0:1935]
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Folder of applications: each subfolder APP is an application [default: applications]
    #[arg(long)]
    pub apps: Option<PathBuf>,
    /// Folder for logs [default: logs]
    #[arg(long)]
    pub logs: Option<PathBuf>,
    /// Configuration file (TOML); flags override it
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Limits that protect the server from slow, greedy or hostile peers.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Most connections at once.
    pub max_connections: usize,
    /// Most connections at once from one IP address.
    pub max_connections_per_ip: usize,
    /// Seconds a client has to finish the handshake.
    pub handshake_timeout_secs: u64,
    /// Seconds a client has, after the handshake, to send `connect`.
    pub connect_timeout_secs: u64,
    /// Seconds a write to a client may make no progress before the client is dropped.
    pub write_stall_timeout_secs: u64,
    /// Largest message accepted from a client, in bytes.
    pub max_message_size: u32,
    /// Most NetStreams one connection may create.
    pub max_streams_per_connection: u32,
    /// Most control and command messages queued for one client before it is dropped.
    pub max_queued_messages: usize,
    /// Seconds a client that neither publishes nor plays may send nothing before it is closed.
    pub idle_timeout_secs: u64,
    /// Most connects of one instance waiting for the script's decision at once.
    pub max_pending_connects: usize,
    /// Most calls of one client waiting for the script's answer at once.
    pub max_pending_calls: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            max_connections_per_ip: 1_000,
            handshake_timeout_secs: 10,
            connect_timeout_secs: 30,
            write_stall_timeout_secs: 30,
            max_message_size: 8 * 1024 * 1024,
            max_streams_per_connection: 64,
            max_queued_messages: 4096,
            idle_timeout_secs: 300,
            max_pending_connects: 256,
            max_pending_calls: 64,
        }
    }
}

/// Stream hub settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubSettings {
    /// Frames kept in each stream's shared ring.
    pub ring_capacity: usize,
    /// Bound on the cached keyframe group per stream, in bytes.
    pub gop_cache_max_bytes: usize,
    /// A publisher silent this long may be taken over by a new one (FMS PublishTimeout).
    pub publisher_takeover_after_ms: u64,
    /// Longest an audio frame waits to leave with the next video frame, in ms (0: never).
    pub audio_hold_ms: u64,
    /// Audio is held only for streams with at least this many players.
    pub audio_hold_min_players: usize,
    /// Audio frames held at once; one more releases them all.
    pub audio_hold_max_frames: usize,
    /// Players per fan-out task of a stream (a larger audience uses more tasks and cores).
    pub fanout_shard_size: usize,
}

impl Default for HubSettings {
    fn default() -> Self {
        let defaults = ascend_media::HubConfig::default();
        HubSettings {
            ring_capacity: defaults.ring_capacity,
            gop_cache_max_bytes: defaults.gop_cache_max_bytes,
            publisher_takeover_after_ms: defaults.publisher_takeover_after.as_millis() as u64,
            audio_hold_ms: defaults.audio_hold.as_millis() as u64,
            audio_hold_min_players: defaults.audio_hold_min_subscribers,
            audio_hold_max_frames: defaults.audio_hold_max_frames,
            fanout_shard_size: defaults.fanout_shard_size,
        }
    }
}

impl HubSettings {
    /// The hub configuration these settings describe.
    pub fn hub_config(&self) -> ascend_media::HubConfig {
        ascend_media::HubConfig {
            ring_capacity: self.ring_capacity,
            gop_cache_max_bytes: self.gop_cache_max_bytes,
            publisher_takeover_after: Duration::from_millis(self.publisher_takeover_after_ms),
            audio_hold: Duration::from_millis(self.audio_hold_ms),
            audio_hold_min_subscribers: self.audio_hold_min_players,
            audio_hold_max_frames: self.audio_hold_max_frames,
            fanout_shard_size: self.fanout_shard_size,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ConfigFile {
    listen: Option<SocketAddr>,
    apps: Option<PathBuf>,
    logs: Option<PathBuf>,
    limits: Limits,
    hub: HubSettings,
}

/// The whole server configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// RTMP listen address.
    pub listen: SocketAddr,
    /// Applications folder.
    pub apps_dir: PathBuf,
    /// Logs folder.
    pub logs_dir: PathBuf,
    /// Limits.
    pub limits: Limits,
    /// Hub settings.
    pub hub: HubSettings,
}

impl ServerConfig {
    /// Defaults, then the file named by `--config`, then the flags.
    pub fn from_args(args: &Args) -> anyhow::Result<ServerConfig> {
        let file = match &args.config {
            Some(path) => load_file(path)?,
            None => ConfigFile::default(),
        };
        Ok(ServerConfig {
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 1935))),
            apps_dir: args
                .apps
                .clone()
                .or(file.apps)
                .unwrap_or_else(|| PathBuf::from("applications")),
            logs_dir: args
                .logs
                .clone()
                .or(file.logs)
                .unwrap_or_else(|| PathBuf::from("logs")),
            limits: file.limits,
            hub: file.hub,
        })
    }
}

fn load_file(path: &Path) -> anyhow::Result<ConfigFile> {
    use anyhow::Context;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading configuration {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing configuration {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_and_defaults_fill_the_rest() {
        let dir = std::env::temp_dir().join(format!("ascend-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("ascend.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:2000\"\napps = \"/srv/apps\"\n[limits]\nhandshake_timeout_secs = 3\n",
        )
        .expect("write");
        let args = Args::parse_from([
            "ascend",
            "--config",
            file.to_str().expect("utf8"),
            "--apps",
            "mine",
        ]);
        let config = ServerConfig::from_args(&args).expect("loads");
        assert_eq!(config.listen, "127.0.0.1:2000".parse().expect("addr"));
        assert_eq!(config.apps_dir, PathBuf::from("mine"));
        assert_eq!(config.logs_dir, PathBuf::from("logs"));
        assert_eq!(config.limits.handshake_timeout_secs, 3);
        assert_eq!(config.limits.max_connections, 10_000);
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<ConfigFile>("[limits]\nmax_conections = 3\n").is_err());
    }
}
