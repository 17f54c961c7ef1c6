//! Joining application instances to their scripts: per-application settings (`app.toml`),
//! starting an instance's script, the router task that delivers the script's commands to
//! connections and watches for hung handlers and idle instances, and hot reload.
//!
//! The script thread never touches a socket or a frame: it sends [`ScriptCommand`]s to the
//! instance's router, which hands each to the client's connection task.

use crate::applications::{remove_instance, Instance, InstanceMap};
use crate::relay::{self, RelayCommand};
use ascend_script::{
    find_script, ScriptCommand, ScriptConfig, ScriptEvent, ScriptInstance, ScriptLimits,
};
use serde::Deserialize;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

/// Per-application settings, from `applications/APP/app.toml` (all optional):
///
/// ```toml
/// idle_unload_secs = 1200          # unload an instance idle this long (onAppStop may refuse)
/// [script]
/// loop_iteration_limit = 20000000  # per function call
/// recursion_limit = 400
/// handler_timeout_ms = 5000        # a handler running longer gets the instance restarted
/// [config]                         # becomes application.config
/// greeting = "hello"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppSettings {
    /// Seconds without clients before an instance unloads.
    pub idle_unload_secs: u64,
    /// Script limits.
    pub script: ScriptSettings,
    /// `application.config`.
    pub config: toml::Table,
}

/// The `[script]` table of `app.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScriptSettings {
    /// Loop iterations one function call may run.
    pub loop_iteration_limit: u64,
    /// Deepest recursion.
    pub recursion_limit: usize,
    /// Watchdog threshold in milliseconds.
    pub handler_timeout_ms: u64,
}

impl Default for ScriptSettings {
    fn default() -> Self {
        let limits = ScriptLimits::default();
        ScriptSettings {
            loop_iteration_limit: limits.loop_iteration_limit,
            recursion_limit: limits.recursion_limit,
            handler_timeout_ms: limits.handler_timeout.as_millis() as u64,
        }
    }
}

impl Default for AppSettings {
    fn default() -> Self {
        AppSettings {
            idle_unload_secs: 20 * 60,
            script: ScriptSettings::default(),
            config: toml::Table::new(),
        }
    }
}

impl AppSettings {
    /// Reads `app_dir/app.toml`; a missing file gives the defaults, a broken one is logged and
    /// gives the defaults too.
    pub fn load(app_dir: &Path) -> AppSettings {
        let path = app_dir.join("app.toml");
        let Ok(text) = std::fs::read_to_string(&path) else {
            return AppSettings::default();
        };
        match toml::from_str(&text) {
            Ok(settings) => settings,
            Err(e) => {
                error!(file = %path.display(), error = %e, "app.toml not understood; using defaults");
                AppSettings::default()
            }
        }
    }

    fn limits(&self) -> ScriptLimits {
        ScriptLimits {
            loop_iteration_limit: self.script.loop_iteration_limit,
            recursion_limit: self.script.recursion_limit,
            handler_timeout: Duration::from_millis(self.script.handler_timeout_ms),
        }
    }
}

/// Log folder of an instance, in the FMS layout.
pub fn instance_log_dir(logs_dir: &Path, app: &str, instance: &str) -> PathBuf {
    logs_dir.join("_defaultVHost_").join(app).join(instance)
}

/// Starts (or restarts, with `restore`) the instance's script when the application has one.
pub fn start_script(
    instance: &Arc<Instance>,
    apps_dir: &Path,
    logs_dir: &Path,
    restore: Option<(
        Vec<ascend_script::RestoredClient>,
        Vec<ascend_script::RestoredStream>,
    )>,
) {
    let app_dir = apps_dir.join(instance.app());
    if find_script(&app_dir, instance.app()).is_none() {
        return;
    }
    let config = ScriptConfig {
        app: instance.app().to_string(),
        instance: instance.name().to_string(),
        app_dir,
        log_dir: instance_log_dir(logs_dir, instance.app(), instance.name()),
        log_rotate_bytes: 10 * 1024 * 1024,
        app_config: serde_json::to_value(&instance.settings.config).unwrap_or_default(),
        server: format!("Ascend/{}", env!("CARGO_PKG_VERSION")),
        hostname: hostname(),
        limits: instance.settings.limits(),
    };
    // Commands for one client go straight to its connection from the script thread (one hop
    // less on every connect and call); the rest (relays, unload answers) go to the router.
    let weak = Arc::downgrade(instance);
    let router = instance.script_commands.clone();
    let sink = move |command: ScriptCommand| {
        if command_client(&command).is_some() {
            if let Some(instance) = weak.upgrade() {
                deliver(&instance, command);
            }
        } else {
            // The router may be gone (the instance is unloading): nothing to do then.
            let _ = router.blocking_send(command);
        }
    };
    match ScriptInstance::start(config, sink, restore) {
        Ok(script) => {
            *instance.script.lock().unwrap_or_else(|p| p.into_inner()) = Some(script);
        }
        Err(e) => {
            error!(instance = %instance.full_name(), error = %e, "cannot start the script thread")
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}

/// Where the router finds what it needs to restart a script and reach this server.
pub struct RouterContext {
    /// The applications folder.
    pub apps_dir: PathBuf,
    /// The logs folder.
    pub logs_dir: PathBuf,
    /// The port this server listens on (for `rtmp://localhost/...` without a port).
    pub own_port: std::sync::atomic::AtomicU16,
}

/// The multipoint-publishing state of one instance: its server-side NetConnections and the
/// server-side streams fed by `Stream.play`.
#[derive(Default)]
struct Relays {
    connections: HashMap<u64, mpsc::UnboundedSender<RelayCommand>>,
    local_feeds: HashMap<String, tokio::task::JoinHandle<()>>,
    pulls: HashMap<String, u64>,
}

impl Relays {
    fn handle(
        &mut self,
        instance: &Arc<Instance>,
        context: &RouterContext,
        command: ScriptCommand,
    ) {
        let to_connection = |relays: &Self, nc_id: u64, command: RelayCommand| -> bool {
            relays
                .connections
                .get(&nc_id)
                .is_some_and(|c| c.send(command).is_ok())
        };
        match command {
            ScriptCommand::NetConnectionConnect { nc_id, uri, args } => {
                let own_port = context.own_port.load(std::sync::atomic::Ordering::Relaxed);
                match relay::resolve_uri(&uri, own_port) {
                    Ok(url) => {
                        let (sender, receiver) = mpsc::unbounded_channel();
                        self.connections.insert(nc_id, sender);
                        tokio::spawn(relay::run_net_connection(
                            nc_id,
                            url,
                            args,
                            instance.clone(),
                            receiver,
                        ));
                    }
                    Err(error) => {
                        instance.script_event(ScriptEvent::NetConnectionStatus {
                            nc_id,
                            info: relay::status(
                                "error",
                                "NetConnection.Connect.Failed",
                                &error.to_string(),
                            ),
                        });
                    }
                }
            }
            ScriptCommand::NetConnectionCall {
                nc_id,
                method,
                args,
                call_id,
            } => {
                if !to_connection(
                    self,
                    nc_id,
                    RelayCommand::Call {
                        method,
                        args,
                        call_id,
                    },
                ) && call_id != 0
                {
                    instance.script_event(ScriptEvent::CallResponse {
                        call_id,
                        success: false,
                        values: vec![relay::status(
                            "error",
                            "NetConnection.Call.Failed",
                            "The NetConnection is not connected.",
                        )],
                    });
                }
            }
            ScriptCommand::NetConnectionRespond {
                nc_id,
                transaction_id,
                result,
            } => {
                to_connection(
                    self,
                    nc_id,
                    RelayCommand::Respond {
                        transaction_id,
                        result,
                    },
                );
            }
            ScriptCommand::NetConnectionClose { nc_id } => {
                if let Some(connection) = self.connections.remove(&nc_id) {
                    let _ = connection.send(RelayCommand::Close);
                }
            }
            ScriptCommand::NetStreamAttach {
                ns_id,
                nc_id,
                source,
            } => {
                to_connection(self, nc_id, RelayCommand::Attach { ns_id, source });
            }
            ScriptCommand::NetStreamPublish {
                ns_id,
                nc_id,
                name,
                mode,
            } => {
                if !to_connection(self, nc_id, RelayCommand::Publish { ns_id, name, mode }) {
                    instance.script_event(ScriptEvent::NetStreamStatus {
                        ns_id,
                        info: relay::status(
                            "error",
                            "NetStream.Failed",
                            "The NetConnection is not connected.",
                        ),
                    });
                }
            }
            ScriptCommand::NetStreamUnpublish { ns_id, nc_id } => {
                to_connection(self, nc_id, RelayCommand::Unpublish { ns_id });
            }
            ScriptCommand::NetStreamSend {
                ns_id,
                nc_id,
                values,
            } => {
                to_connection(self, nc_id, RelayCommand::Send { ns_id, values });
            }
            ScriptCommand::StreamPlay {
                name,
                source,
                nc_id,
            } => {
                self.stop_stream(&name);
                if nc_id == 0 {
                    if name != source {
                        let task =
                            tokio::spawn(relay::feed_local(instance.clone(), name.clone(), source));
                        self.local_feeds.insert(name, task);
                    }
                } else if to_connection(
                    self,
                    nc_id,
                    RelayCommand::Pull {
                        name: name.clone(),
                        source,
                    },
                ) {
                    self.pulls.insert(name, nc_id);
                } else {
                    instance.script_event(ScriptEvent::StreamStatus {
                        name,
                        info: relay::status(
                            "error",
                            "NetStream.Play.StreamNotFound",
                            "The NetConnection is not connected.",
                        ),
                    });
                }
            }
            ScriptCommand::StreamStop { name } => self.stop_stream(&name),
            other => deliver(instance, other),
        }
    }

    fn stop_stream(&mut self, name: &str) {
        if let Some(task) = self.local_feeds.remove(name) {
            task.abort();
        }
        if let Some(nc_id) = self.pulls.remove(name) {
            if let Some(connection) = self.connections.get(&nc_id) {
                let _ = connection.send(RelayCommand::StopPull {
                    name: name.to_string(),
                });
            }
        }
    }
}

impl Drop for Relays {
    fn drop(&mut self) {
        for task in self.local_feeds.values() {
            task.abort();
        }
    }
}

/// The instance's router: script commands to connections, the watchdog, idle unload.
pub async fn route(
    instance: Arc<Instance>,
    mut commands: mpsc::Receiver<ScriptCommand>,
    instances: InstanceMap,
    context: Arc<RouterContext>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let idle_limit = Duration::from_secs(instance.settings.idle_unload_secs);
    let handler_timeout = Duration::from_millis(instance.settings.script.handler_timeout_ms);
    let mut idle_since: Option<Instant> = None;
    let mut stop_requested = false;
    let mut relays = Relays::default();
    loop {
        tokio::select! {
            command = commands.recv() => {
                let Some(command) = command else { break };
                match command {
                    ScriptCommand::StopAnswered { unload } => {
                        stop_requested = false;
                        if unload && instance.client_count() == 0 {
                            info!(instance = %instance.full_name(), "instance unloaded");
                            remove_instance(&instances, &instance);
                            instance.script.lock().unwrap_or_else(|p| p.into_inner()).take();
                            return;
                        }
                        idle_since = None;
                    }
                    ScriptCommand::Shutdown => {
                        info!(instance = %instance.full_name(), "application.shutdown(): disconnecting every client");
                        let links = instance.clients.lock().unwrap_or_else(|p| p.into_inner());
                        for (client_id, link) in links.iter() {
                            let _ = link.commands.send(Box::new(ScriptCommand::Disconnect { client_id: *client_id }));
                        }
                    }
                    command => relays.handle(&instance, &context, command),
                }
            }
            _ = tick.tick() => {
                watchdog(&instance, handler_timeout, &context);
                let clients = instance.client_count();
                if clients > 0 || !instance.hub().live_stream_names().is_empty() {
                    idle_since = None;
                    continue;
                }
                let since = *idle_since.get_or_insert_with(Instant::now);
                if since.elapsed() < idle_limit || stop_requested {
                    continue;
                }
                if instance.has_script() {
                    stop_requested = instance.script_event(ScriptEvent::Stop { code: "Application.GC".into() });
                    if !stop_requested {
                        remove_instance(&instances, &instance);
                        return;
                    }
                } else {
                    info!(instance = %instance.full_name(), "instance unloaded");
                    remove_instance(&instances, &instance);
                    return;
                }
            }
        }
    }
}

/// The client a command is for, if it is for one.
fn command_client(command: &ScriptCommand) -> Option<u64> {
    match command {
        ScriptCommand::Accept { client_id }
        | ScriptCommand::Reject { client_id, .. }
        | ScriptCommand::CallResult { client_id, .. }
        | ScriptCommand::CallClient { client_id, .. }
        | ScriptCommand::Ping { client_id }
        | ScriptCommand::Disconnect { client_id }
        | ScriptCommand::SetAccess { client_id, .. } => Some(*client_id),
        _ => None,
    }
}

fn deliver(instance: &Instance, command: ScriptCommand) {
    let Some(client_id) = command_client(&command) else {
        return;
    };
    let mut links = instance.clients.lock().unwrap_or_else(|p| p.into_inner());
    let Some(link) = links.get_mut(&client_id) else {
        return; // the client left meanwhile
    };
    match &command {
        ScriptCommand::SetAccess { read, write, .. } => {
            link.read_access = read.clone();
            link.write_access = write.clone();
            return;
        }
        ScriptCommand::Accept { .. } => link.accepted = true,
        _ => {}
    }
    let _ = link.commands.send(Box::new(command));
}

/// Restarts the script of an instance whose handler has been running too long. The stuck
/// thread is abandoned (Boa cannot be interrupted; its loop limit ends it eventually).
fn watchdog(instance: &Arc<Instance>, handler_timeout: Duration, context: &RouterContext) {
    let busy = instance
        .script
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .and_then(ScriptInstance::busy_for);
    let Some(busy) = busy else { return };
    if busy < handler_timeout {
        return;
    }
    error!(
        instance = %instance.full_name(),
        busy_ms = busy.as_millis() as u64,
        "Application.Script.Error: a handler ran longer than handler_timeout_ms; the script is restarted"
    );
    // Clients whose connect was pending in the stuck script are refused.
    let pending: Vec<u64> = {
        let links = instance.clients.lock().unwrap_or_else(|p| p.into_inner());
        links
            .iter()
            .filter(|(_, l)| !l.accepted)
            .map(|(id, _)| *id)
            .collect()
    };
    for client_id in pending {
        deliver(
            instance,
            ScriptCommand::Reject {
                client_id,
                application: ascend_rtmp::AmfValue::object([(
                    "description",
                    ascend_rtmp::AmfValue::string("The application script was restarted."),
                )]),
            },
        );
    }
    instance
        .script
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    let snapshot = instance.snapshot();
    start_script(
        instance,
        &context.apps_dir,
        &context.logs_dir,
        Some(snapshot),
    );
}

/// Watches the applications folder and reloads the scripts of running instances when a file of
/// their application changes (debounced). Runs until the process ends.
pub fn watch_for_changes(applications: Arc<crate::ServerContext>) -> anyhow::Result<()> {
    use notify_debouncer_mini::{new_debouncer, notify::RecursiveMode, DebounceEventResult};
    let apps_dir = applications.config.apps_dir.clone();
    let handle = tokio::runtime::Handle::current();
    let canonical_apps = apps_dir.canonicalize().unwrap_or_else(|_| apps_dir.clone());
    let context = applications.clone();
    // Reading a script also raises events (an editor or our own reload opening it), so an
    // application reloads only when the content of one of its script files really changed.
    let mut fingerprints = script_fingerprints(&canonical_apps);
    let mut debouncer = new_debouncer(
        Duration::from_millis(300),
        move |result: DebounceEventResult| {
            let Ok(events) = result else { return };
            let mut apps = BTreeSet::new();
            for event in events {
                let path = event.path.canonicalize().unwrap_or(event.path.clone());
                let Ok(relative) = path.strip_prefix(&canonical_apps) else {
                    continue;
                };
                let Some(app) = relative.components().next() else {
                    continue;
                };
                if !is_script_file(relative) {
                    continue;
                }
                let fingerprint = fingerprint(&path);
                if fingerprints.get(&path) != Some(&fingerprint) {
                    fingerprints.insert(path.clone(), fingerprint);
                    apps.insert(app.as_os_str().to_string_lossy().into_owned());
                }
            }
            for app in apps {
                let context = context.clone();
                handle.spawn(async move { reload_app(&context, &app) });
            }
        },
    )?;
    if let Err(e) = debouncer
        .watcher()
        .watch(&apps_dir, RecursiveMode::Recursive)
    {
        warn!(apps = %apps_dir.display(), error = %e, "hot reload off: cannot watch the applications folder");
        return Ok(());
    }
    // The debouncer lives as long as the server.
    std::mem::forget(debouncer);
    Ok(())
}

fn is_script_file(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e == "asc" || e == "js" || e == "toml")
}

/// A hash of a file's content (`None` when it cannot be read: deleted).
fn fingerprint(path: &Path) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let bytes = std::fs::read(path).ok()?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    Some(hasher.finish())
}

/// Fingerprints of every script file under `apps_dir` (four folder levels deep at most).
fn script_fingerprints(apps_dir: &Path) -> HashMap<PathBuf, Option<u64>> {
    let mut found = HashMap::new();
    let mut folders = vec![(apps_dir.to_path_buf(), 0)];
    while let Some((folder, depth)) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && depth < 4 {
                folders.push((path, depth + 1));
            } else if is_script_file(&path) {
                found.insert(path.clone(), fingerprint(&path));
            }
        }
    }
    found
}

fn reload_app(context: &crate::ServerContext, app: &str) {
    for instance in context.applications.instances_of(app) {
        if instance.script_event(ScriptEvent::Reload) {
            info!(instance = %instance.full_name(), "script changed: reloading");
        } else {
            // The instance started without a script (or its thread ended): start one now.
            let snapshot = instance.snapshot();
            start_script(
                &instance,
                context.applications.apps_dir(),
                context.applications.logs_dir(),
                Some(snapshot),
            );
            if instance.has_script() {
                info!(instance = %instance.full_name(), "script appeared: loaded");
            }
        }
    }
}
