//! The script host's own cost per client: one instance thread, `onConnect` and `onDisconnect`
//! of a client, with a number of other clients staying connected meanwhile. The events are
//! queued in bulk, so the thread never sleeps between them: what is measured is the host and
//! Boa, without the thread wake-ups of a real server (those are in `cargo xtask bench`'s
//! script figures).
//!
//! ```text
//! cargo run --release -p ascend-script --example connect_cost -- [CLIENTS] [CONNECTED]
//! ```
//!
//! CLIENTS (default 20000) connect and leave, each while CONNECTED (default 100) others stay;
//! it prints the time per client. BENCHMARKS.md ("What each change bought", session 9) has
//! figures.

use std::time::{Duration, Instant};

use ascend_rtmp::AmfValue;
use ascend_script::{
    ClientInfo, ScriptCommand, ScriptConfig, ScriptEvent, ScriptInstance, ScriptLimits,
};

/// The bench's scripted application (`cargo xtask bench`, script figures).
const SCRIPT: &str =
    "application.onConnect = function(client, user) { client.user = user; return true; };\n";

fn client(id: u64) -> ClientInfo {
    ClientInfo {
        id,
        ip: "127.0.0.1".into(),
        agent: "LNX 9,0,124,2".into(),
        referrer: String::new(),
        page_url: String::new(),
        uri: "rtmp://127.0.0.1/cost".into(),
        protocol: "rtmp".into(),
    }
}

fn connect(id: u64) -> ScriptEvent {
    ScriptEvent::Connect {
        client: client(id),
        args: vec![AmfValue::string("user")],
    }
}

fn argument(position: usize, default: u64) -> Result<u64, String> {
    match std::env::args().nth(position) {
        Some(text) => text.parse().map_err(|_| format!("not a count: {text}")),
        None => Ok(default),
    }
}

/// Waits for `count` commands (each connect's accept), at most 10 s for each.
fn wait_for(commands: &std::sync::mpsc::Receiver<ScriptCommand>, count: u64) -> Result<(), String> {
    for received in 0..count {
        commands
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| format!("{received} of {count} connects answered"))?;
    }
    Ok(())
}

fn main() -> Result<(), String> {
    let clients = argument(1, 20_000)?;
    let connected = argument(2, 100)?;
    let dir = std::env::temp_dir().join(format!("ascend-connect-cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("main.asc"), SCRIPT).map_err(|e| e.to_string())?;
    let config = ScriptConfig {
        app: "cost".into(),
        instance: "_definst_".into(),
        app_dir: dir.clone(),
        log_dir: dir.join("logs"),
        log_rotate_bytes: 1 << 20,
        app_config: serde_json::json!({}),
        server: "Ascend/example".into(),
        hostname: "localhost".into(),
        limits: ScriptLimits::default(),
    };
    let (sender, commands) = std::sync::mpsc::channel();
    let sink = move |command| {
        let _ = sender.send(command);
    };
    let script = ScriptInstance::start(config, sink, None).map_err(|e| e.to_string())?;
    for id in 1..=connected {
        script.send(connect(id));
    }
    wait_for(&commands, connected)?;
    let started = Instant::now();
    for id in connected + 1..=connected + clients {
        script.send(connect(id));
        // The oldest leaves: clients mostly leave in the order they came.
        script.send(ScriptEvent::Disconnect {
            client_id: id - connected,
        });
    }
    wait_for(&commands, clients)?;
    let per_client = started.elapsed().as_secs_f64() * 1e6 / clients as f64;
    println!(
        "{per_client:.1} µs per client (onConnect and onDisconnect), {connected} others connected"
    );
    drop(script);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
