//! The Server-Side ActionScript host: each application instance runs its `main.asc` in its own
//! Boa context, on its own thread, with the FMS application model (`application`, `Client`,
//! `Stream`, `trace`, `load`, `setInterval`...).
//!
//! This crate knows neither sockets nor media frames. The server sends [`ScriptEvent`]s (a client
//! connects, calls a method, publishes...) and receives [`ScriptCommand`]s (accept, reject, call
//! a client, answer a call...), all owned data over channels, because a Boa `Context` cannot
//! leave its thread. Native objects are handles: a `Client` in the script holds its client id;
//! its methods turn into commands.
//!
//! - [`runtime`]: the instance thread: context set-up, native functions, event dispatch, timers,
//!   reload.
//! - `client_object`: the `Client` object built for each connection.
//! - [`convert`]: AMF values to JavaScript values and back.
//! - [`log`]: the per-instance `application.NN.log` file (FMS layout), rotated by size.
//! - `prelude.js`: the FMS object model in JavaScript, run before the application's script.

mod client_object;
pub mod convert;
pub mod log;
pub mod runtime;

use ascend_rtmp::AmfValue;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The application's script: `main.asc`, `APP.asc` or `main.js`, if there is one.
pub fn find_script(app_dir: &Path, app_name: &str) -> Option<PathBuf> {
    let candidates = [
        app_dir.join("main.asc"),
        app_dir.join(format!("{app_name}.asc")),
        app_dir.join("main.js"),
    ];
    candidates.into_iter().find(|p| p.is_file())
}

/// Limits that stop a runaway script.
#[derive(Debug, Clone)]
pub struct ScriptLimits {
    /// Loop iterations one function call may run (Boa counts per call frame).
    pub loop_iteration_limit: u64,
    /// Deepest JavaScript call recursion.
    pub recursion_limit: usize,
    /// A handler still running after this long gets its instance restarted by the watchdog.
    pub handler_timeout: Duration,
}

impl Default for ScriptLimits {
    fn default() -> Self {
        ScriptLimits {
            loop_iteration_limit: 20_000_000,
            recursion_limit: 400,
            handler_timeout: Duration::from_secs(5),
        }
    }
}

/// What an instance's script needs to start.
#[derive(Debug, Clone)]
pub struct ScriptConfig {
    /// Application name.
    pub app: String,
    /// Instance name.
    pub instance: String,
    /// The application folder (scripts and `load()` paths are relative to it).
    pub app_dir: PathBuf,
    /// Where the instance log goes: `LOGS/_defaultVHost_/APP/INSTANCE/`.
    pub log_dir: PathBuf,
    /// Log file size that triggers rotation.
    pub log_rotate_bytes: u64,
    /// `application.config`, as JSON.
    pub app_config: serde_json::Value,
    /// `application.server`.
    pub server: String,
    /// `application.hostname`.
    pub hostname: String,
    /// Runaway-script limits.
    pub limits: ScriptLimits,
}

impl ScriptConfig {
    /// `APP/INSTANCE`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.app, self.instance)
    }
}

/// What the script knows of a client.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientInfo {
    /// Client id.
    pub id: u64,
    /// Remote address.
    pub ip: String,
    /// `flashVer`.
    pub agent: String,
    /// `swfUrl`.
    pub referrer: String,
    /// `pageUrl`.
    pub page_url: String,
    /// `tcUrl`.
    pub uri: String,
    /// `rtmp`.
    pub protocol: String,
}

/// A connected client carried over into a new context (reload, restart).
#[derive(Debug, Clone, PartialEq)]
pub struct RestoredClient {
    /// Who.
    pub info: ClientInfo,
    /// `client.readAccess`.
    pub read_access: String,
    /// `client.writeAccess`.
    pub write_access: String,
}

/// A live stream carried over into a new context: it gets `onPublish` again.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoredStream {
    /// The publishing client.
    pub client_id: u64,
    /// Stream name.
    pub name: String,
    /// publishQueryString.
    pub query: String,
}

/// What happened, for the script.
#[derive(Debug, Clone)]
pub enum ScriptEvent {
    /// A client connects: `onConnect(client, ...args)`.
    Connect {
        /// Who.
        client: ClientInfo,
        /// The connect arguments.
        args: Vec<AmfValue>,
    },
    /// A client left: `onDisconnect(client)`.
    Disconnect {
        /// Client id.
        client_id: u64,
    },
    /// A client published a stream: `onPublish(client, stream)`.
    Publish {
        /// Client id.
        client_id: u64,
        /// Stream name.
        name: String,
        /// publishQueryString.
        query: String,
    },
    /// A client is about to play a stream: `onPlay(client, stream)` (an Ascend addition; FMS
    /// has no play event).
    Play {
        /// Client id.
        client_id: u64,
        /// Stream name.
        name: String,
    },
    /// A stream ended: `onUnpublish(client, stream)`.
    Unpublish {
        /// Client id.
        client_id: u64,
        /// Stream name.
        name: String,
    },
    /// A client called a method (`nc.call`); answer with [`ScriptCommand::CallResult`] unless
    /// `transaction_id` is 0.
    Call {
        /// Client id.
        client_id: u64,
        /// The client's transaction id.
        transaction_id: f64,
        /// Method name or `obj/method` path.
        method: String,
        /// Arguments.
        args: Vec<AmfValue>,
    },
    /// A client answered a `client.call` that had a responder.
    CallResponse {
        /// The id given in [`ScriptCommand::CallClient`].
        call_id: u64,
        /// `_result` (true) or `_error`.
        success: bool,
        /// The answer's values.
        values: Vec<AmfValue>,
    },
    /// The script files changed: load them into a new context (kept only if they load).
    Reload,
    /// A status for a server-side NetConnection (`nc.onStatus(info)`).
    NetConnectionStatus {
        /// The NetConnection id.
        nc_id: u64,
        /// The info object.
        info: AmfValue,
    },
    /// The remote side invoked a method on a server-side NetConnection (`nc.method(...)`);
    /// answered with [`ScriptCommand::NetConnectionRespond`] unless `transaction_id` is 0.
    NetConnectionInvoked {
        /// The NetConnection id.
        nc_id: u64,
        /// Transaction id of the remote call.
        transaction_id: f64,
        /// Method name.
        method: String,
        /// Arguments.
        args: Vec<AmfValue>,
    },
    /// A status for a server-side NetStream (`ns.onStatus(info)`).
    NetStreamStatus {
        /// The NetStream id.
        ns_id: u64,
        /// The info object.
        info: AmfValue,
    },
    /// A status for a server-side Stream (`stream.onStatus(info)`).
    StreamStatus {
        /// The stream name.
        name: String,
        /// The info object.
        info: AmfValue,
    },
    /// Unload request (`onAppStop(info)`); answered with [`ScriptCommand::StopAnswered`].
    Stop {
        /// The info code (`Application.Shutdown`, `Application.GC`).
        code: String,
    },
}

/// What the script decided.
#[derive(Debug, Clone, PartialEq)]
pub enum ScriptCommand {
    /// Accept a pending connect.
    Accept {
        /// Client id.
        client_id: u64,
    },
    /// Reject a pending connect with NetConnection.Connect.Rejected carrying `application`.
    Reject {
        /// Client id.
        client_id: u64,
        /// The script's error object (`null` when none).
        application: AmfValue,
    },
    /// Answer a client's call: `Ok(value)` → `_result`, `Err(description)` → `_error`.
    CallResult {
        /// Client id.
        client_id: u64,
        /// The client's transaction id.
        transaction_id: f64,
        /// The answer.
        result: Result<AmfValue, String>,
    },
    /// Invoke a method on the client (`client.call`); `call_id` 0 wants no answer.
    CallClient {
        /// Client id.
        client_id: u64,
        /// Method name.
        method: String,
        /// Arguments.
        args: Vec<AmfValue>,
        /// Id to quote in [`ScriptEvent::CallResponse`].
        call_id: u64,
    },
    /// Ping the client.
    Ping {
        /// Client id.
        client_id: u64,
    },
    /// Close the client's connection (`application.disconnect`).
    Disconnect {
        /// Client id.
        client_id: u64,
    },
    /// The client's access lists changed.
    SetAccess {
        /// Client id.
        client_id: u64,
        /// `readAccess`.
        read: String,
        /// `writeAccess`.
        write: String,
    },
    /// The answer to [`ScriptEvent::Stop`]: unload (true) or stay (onAppStop returned false).
    StopAnswered {
        /// Unload now.
        unload: bool,
    },
    /// `application.shutdown()`: disconnect everyone and unload.
    Shutdown,
    /// `nc.connect(uri, ...args)`: open an outgoing RTMP connection.
    NetConnectionConnect {
        /// The NetConnection id (chosen by the script host).
        nc_id: u64,
        /// `rtmp://host[:port]/app[/instance]`.
        uri: String,
        /// Connect arguments.
        args: Vec<AmfValue>,
    },
    /// `nc.call(method, responder, ...args)`; answers come as [`ScriptEvent::CallResponse`].
    NetConnectionCall {
        /// The NetConnection id.
        nc_id: u64,
        /// Method name.
        method: String,
        /// Arguments.
        args: Vec<AmfValue>,
        /// Responder id (0: no answer wanted).
        call_id: u64,
    },
    /// The answer to [`ScriptEvent::NetConnectionInvoked`].
    NetConnectionRespond {
        /// The NetConnection id.
        nc_id: u64,
        /// The remote transaction id.
        transaction_id: f64,
        /// `Ok(value)` → `_result`, `Err(description)` → `_error`.
        result: Result<AmfValue, String>,
    },
    /// `nc.close()`.
    NetConnectionClose {
        /// The NetConnection id.
        nc_id: u64,
    },
    /// `ns.attach(stream)` (`Some(name)`) or `ns.attach(false)` (`None`).
    NetStreamAttach {
        /// The NetStream id.
        ns_id: u64,
        /// Its NetConnection.
        nc_id: u64,
        /// The local stream to send.
        source: Option<String>,
    },
    /// `ns.publish(name, how)`.
    NetStreamPublish {
        /// The NetStream id.
        ns_id: u64,
        /// Its NetConnection.
        nc_id: u64,
        /// The name on the remote server.
        name: String,
        /// `live`, `record` or `append`.
        mode: String,
    },
    /// `ns.publish(false)`.
    NetStreamUnpublish {
        /// The NetStream id.
        ns_id: u64,
        /// Its NetConnection.
        nc_id: u64,
    },
    /// `ns.send(handler, ...args)`: a data message on the published stream.
    NetStreamSend {
        /// The NetStream id.
        ns_id: u64,
        /// Its NetConnection.
        nc_id: u64,
        /// Handler name then arguments.
        values: Vec<AmfValue>,
    },
    /// `stream.play(source, start, len, reset, nc)`: feed the server-side stream `name` from
    /// the local live stream `source`, or from `source` on the remote server of `nc_id`.
    StreamPlay {
        /// The server-side stream being fed.
        name: String,
        /// What to play.
        source: String,
        /// The NetConnection to pull through (0: a local stream).
        nc_id: u64,
    },
    /// `stream.play(false)`: stop feeding `name`.
    StreamStop {
        /// The server-side stream.
        name: String,
    },
}

/// A running instance script, seen from the server: send events, watch for hangs.
pub struct ScriptInstance {
    events: std::sync::mpsc::Sender<ScriptEvent>,
    busy_since: Arc<AtomicU64>,
    epoch: Instant,
    thread: std::thread::JoinHandle<()>,
}

impl ScriptInstance {
    /// Starts the instance thread: prelude, script (with `restore`d clients and streams, if
    /// any), `onAppStart`, then events until the last sender is dropped or the script unloads.
    pub fn start(
        config: ScriptConfig,
        commands: impl FnMut(ScriptCommand) + Send + 'static,
        restore: Option<(Vec<RestoredClient>, Vec<RestoredStream>)>,
    ) -> std::io::Result<ScriptInstance> {
        let (events, receiver) = std::sync::mpsc::channel();
        let busy_since = Arc::new(AtomicU64::new(0));
        let epoch = Instant::now();
        let busy = runtime::BusyClock {
            since: busy_since.clone(),
            epoch,
        };
        let thread = std::thread::Builder::new()
            .name(format!("script {}", config.full_name()))
            .stack_size(32 * 1024 * 1024)
            .spawn(move || runtime::run(config, receiver, Box::new(commands), busy, restore))?;
        Ok(ScriptInstance {
            events,
            busy_since,
            epoch,
            thread,
        })
    }

    /// Server shutdown: `onAppStop` with `code` (its answer cannot keep the instance), then the
    /// thread ends. Waits for it at most `timeout`; false when it did not end in time (a
    /// runaway handler), in which case it is abandoned.
    pub fn shut_down(self, code: &str, timeout: Duration) -> bool {
        let _ = self.events.send(ScriptEvent::Stop {
            code: code.to_string(),
        });
        drop(self.events);
        let deadline = Instant::now() + timeout;
        while !self.thread.is_finished() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.thread.join();
        true
    }

    /// Queues an event; false when the instance thread has ended.
    pub fn send(&self, event: ScriptEvent) -> bool {
        self.events.send(event).is_ok()
    }

    /// How long the current handler has been running, if one is.
    pub fn busy_for(&self) -> Option<Duration> {
        match self.busy_since.load(Ordering::Relaxed) {
            0 => None,
            since_ms => {
                let now_ms = self.epoch.elapsed().as_millis() as u64;
                Some(Duration::from_millis(now_ms.saturating_sub(since_ms)))
            }
        }
    }
}

#[cfg(test)]
mod tests;
