//! Applications and their instances: which applications exist, and each running instance's
//! streams, clients and script.
//!
//! An application exists when `APPS/APP/` is a folder (checked at each connect, so a new folder
//! is picked up without a restart). An instance (`APP/INSTANCE`) starts on its first connection
//! and owns its own [`StreamHub`] (streams of different instances never meet) and, when the
//! application has a script, its [`ScriptInstance`] and the router task that delivers the
//! script's commands to connections ([`crate::scripting`]).

use crate::scripting::{self, AppSettings, RouterContext};
use ascend_media::{HubConfig, StreamHub};
use ascend_script::{
    ClientInfo, RestoredClient, RestoredStream, ScriptCommand, ScriptEvent, ScriptInstance,
};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::mpsc;

/// Why a name from the network cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty.
    #[error("empty name")]
    Empty,
    /// Too long.
    #[error("name longer than {MAX_NAME_LEN} bytes")]
    TooLong,
    /// Contains `..`, a path separator where none is allowed, or a control character.
    #[error("name {0:?} contains a path element or control character")]
    Unsafe(String),
}

/// Longest application, instance or stream name accepted.
pub const MAX_NAME_LEN: usize = 256;

/// Checks an application or instance name: it becomes a folder name, so no `/`, `\`, `..`,
/// leading dot or control characters.
pub fn validate_folder_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong);
    }
    if name.starts_with('.') || name.contains(['/', '\\']) || name.chars().any(char::is_control) {
        return Err(NameError::Unsafe(name.to_string()));
    }
    Ok(())
}

/// Checks a stream name: subfolders are allowed (`events/cam1`) but no `..` element, no
/// absolute path, no backslash and no control characters.
pub fn validate_stream_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong);
    }
    if name.starts_with('/')
        || name.contains('\\')
        || name.split('/').any(|part| part == ".." || part == ".")
        || name.chars().any(char::is_control)
    {
        return Err(NameError::Unsafe(name.to_string()));
    }
    Ok(())
}

/// FMS access lists: `;`-separated path prefixes, `/` for everything, empty for nothing.
pub fn access_allows(list: &str, stream: &str) -> bool {
    list.split(';').map(str::trim).any(|entry| {
        if entry.is_empty() {
            return false;
        }
        let prefix = entry.trim_matches('/');
        prefix.is_empty()
            || stream == prefix
            || stream
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// A connected client as the instance knows it.
pub struct ClientLink {
    /// What the script knows of it.
    pub info: ClientInfo,
    /// `client.readAccess`.
    pub read_access: String,
    /// `client.writeAccess`.
    pub write_access: String,
    /// Accepted (by the script or, without one, at once).
    pub accepted: bool,
    /// Where the script's commands for this client go (its connection task).
    /// (Boxed: the channel's first block then costs 32 pointers, not 32 commands, per client.)
    pub commands: mpsc::UnboundedSender<Box<ScriptCommand>>,
}

/// One running application instance.
pub struct Instance {
    app: String,
    name: String,
    hub: StreamHub,
    pub(crate) settings: AppSettings,
    pub(crate) clients: Mutex<HashMap<u64, ClientLink>>,
    /// Live streams published by clients: name → (client id, query), for script restores.
    pub(crate) publications: Mutex<BTreeMap<String, (u64, String)>>,
    pub(crate) script: Mutex<Option<ScriptInstance>>,
    pub(crate) script_commands: mpsc::Sender<ScriptCommand>,
    unloaded: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // These maps are updated by single inserts and removes: a panic elsewhere cannot leave
    // them half-changed, so a poisoned lock is still usable.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Instance {
    /// `APP/INSTANCE`, as FMS's `application.name`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.app, self.name)
    }

    /// The application name.
    pub fn app(&self) -> &str {
        &self.app
    }

    /// The instance name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This instance's streams.
    pub fn hub(&self) -> &StreamHub {
        &self.hub
    }

    /// True when a script decides on connects and calls.
    pub fn has_script(&self) -> bool {
        lock(&self.script).is_some()
    }

    /// Sends an event to the script; false when there is none.
    pub fn script_event(&self, event: ScriptEvent) -> bool {
        match lock(&self.script).as_ref() {
            Some(script) => script.send(event),
            None => false,
        }
    }

    /// Registers a connecting client; its script commands arrive on the returned receiver.
    pub fn add_client(
        &self,
        info: ClientInfo,
        accepted: bool,
    ) -> mpsc::UnboundedReceiver<Box<ScriptCommand>> {
        let (commands, receiver) = mpsc::unbounded_channel();
        lock(&self.clients).insert(
            info.id,
            ClientLink {
                info,
                read_access: "/".into(),
                write_access: "/".into(),
                accepted,
                commands,
            },
        );
        receiver
    }

    /// Clients whose connect waits for the script's decision.
    pub fn pending_connects(&self) -> usize {
        lock(&self.clients).values().filter(|c| !c.accepted).count()
    }

    /// Marks a client accepted.
    pub fn mark_accepted(&self, client_id: u64) {
        if let Some(link) = lock(&self.clients).get_mut(&client_id) {
            link.accepted = true;
        }
    }

    /// Removes a client.
    pub fn remove_client(&self, id: u64) {
        lock(&self.clients).remove(&id);
    }

    /// Number of connected clients.
    pub fn client_count(&self) -> usize {
        lock(&self.clients).len()
    }

    /// True when the client's writeAccess covers `stream`.
    pub fn may_publish(&self, client_id: u64, stream: &str) -> bool {
        lock(&self.clients)
            .get(&client_id)
            .is_some_and(|c| access_allows(&c.write_access, stream))
    }

    /// True when the client's readAccess covers `stream`.
    pub fn may_play(&self, client_id: u64, stream: &str) -> bool {
        lock(&self.clients)
            .get(&client_id)
            .is_some_and(|c| access_allows(&c.read_access, stream))
    }

    /// Records a live publication (for script restores) and tells the script.
    pub fn published(&self, client_id: u64, name: &str, query: &str) {
        lock(&self.publications).insert(name.to_string(), (client_id, query.to_string()));
        self.script_event(ScriptEvent::Publish {
            client_id,
            name: name.to_string(),
            query: query.to_string(),
        });
    }

    /// Forgets a publication and tells the script.
    pub fn unpublished(&self, client_id: u64, name: &str) {
        lock(&self.publications).remove(name);
        self.script_event(ScriptEvent::Unpublish {
            client_id,
            name: name.to_string(),
        });
    }

    /// The connected clients and live streams, for a new script context.
    pub fn snapshot(&self) -> (Vec<RestoredClient>, Vec<RestoredStream>) {
        let clients = lock(&self.clients)
            .values()
            .filter(|c| c.accepted)
            .map(|c| RestoredClient {
                info: c.info.clone(),
                read_access: c.read_access.clone(),
                write_access: c.write_access.clone(),
            })
            .collect();
        let streams = lock(&self.publications)
            .iter()
            .map(|(name, (client_id, query))| RestoredStream {
                client_id: *client_id,
                name: name.clone(),
                query: query.clone(),
            })
            .collect();
        (clients, streams)
    }

    pub(crate) fn is_unloaded(&self) -> bool {
        self.unloaded.load(Ordering::Acquire)
    }

    pub(crate) fn mark_unloaded(&self) {
        self.unloaded.store(true, Ordering::Release);
    }
}

pub(crate) type InstanceMap = Arc<Mutex<HashMap<(String, String), Arc<Instance>>>>;

/// All applications and their running instances.
pub struct Applications {
    apps_dir: PathBuf,
    logs_dir: PathBuf,
    hub_config: HubConfig,
    instances: InstanceMap,
    router_context: Arc<RouterContext>,
}

impl Applications {
    /// Applications found in `apps_dir`; instance logs under `logs_dir`.
    pub fn new(apps_dir: PathBuf, logs_dir: PathBuf, hub_config: HubConfig) -> Self {
        Applications {
            router_context: Arc::new(RouterContext {
                apps_dir: apps_dir.clone(),
                logs_dir: logs_dir.clone(),
                own_port: std::sync::atomic::AtomicU16::new(0),
            }),
            apps_dir,
            logs_dir,
            hub_config,
            instances: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The applications folder.
    pub fn apps_dir(&self) -> &Path {
        &self.apps_dir
    }

    /// True when `APPS/app/` is a folder.
    pub fn app_exists(&self, app: &str) -> bool {
        validate_folder_name(app).is_ok() && self.apps_dir.join(app).is_dir()
    }

    /// The instance `app/instance`, started (with its script, if the application has one) if
    /// it is not running. Must be called inside the tokio runtime.
    pub fn instance(&self, app: &str, instance: &str) -> Arc<Instance> {
        let mut instances = lock(&self.instances);
        let key = (app.to_string(), instance.to_string());
        if let Some(existing) = instances.get(&key) {
            if !existing.is_unloaded() {
                return existing.clone();
            }
        }
        let app_dir = self.apps_dir.join(app);
        let settings = AppSettings::load(&app_dir);
        let (script_commands, command_receiver) = mpsc::channel(1024);
        let created = Arc::new(Instance {
            app: app.to_string(),
            name: instance.to_string(),
            hub: StreamHub::new(self.hub_config.clone()),
            settings,
            clients: Mutex::new(HashMap::new()),
            publications: Mutex::new(BTreeMap::new()),
            script: Mutex::new(None),
            script_commands,
            unloaded: AtomicBool::new(false),
        });
        scripting::start_script(&created, &self.apps_dir, &self.logs_dir, None);
        tracing::info!(
            app,
            instance,
            script = created.has_script(),
            "instance started"
        );
        tokio::spawn(scripting::route(
            created.clone(),
            command_receiver,
            self.instances.clone(),
            self.router_context.clone(),
        ));
        instances.insert(key, created.clone());
        created
    }

    /// Running instances of `app`.
    pub fn instances_of(&self, app: &str) -> Vec<Arc<Instance>> {
        lock(&self.instances)
            .iter()
            .filter(|((a, _), _)| a == app)
            .map(|(_, i)| i.clone())
            .collect()
    }

    /// Records the port this server listens on (`rtmp://localhost/APP` means this server).
    pub fn set_own_port(&self, port: u16) {
        self.router_context
            .own_port
            .store(port, std::sync::atomic::Ordering::Relaxed);
    }

    /// The logs folder.
    pub fn logs_dir(&self) -> &Path {
        &self.logs_dir
    }

    /// Every running instance.
    pub fn all_instances(&self) -> Vec<Arc<Instance>> {
        lock(&self.instances).values().cloned().collect()
    }

    /// Names (`APP/INSTANCE`) of running instances, sorted.
    pub fn running_instances(&self) -> Vec<String> {
        let mut names: Vec<String> = lock(&self.instances)
            .values()
            .map(|i| i.full_name())
            .collect();
        names.sort();
        names
    }
}

pub(crate) fn remove_instance(instances: &InstanceMap, instance: &Instance) {
    let mut map = lock(instances);
    let key = (instance.app().to_string(), instance.name().to_string());
    if map
        .get(&key)
        .is_some_and(|i| std::ptr::eq(Arc::as_ptr(i), instance))
    {
        instance.mark_unloaded();
        map.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_refuse_path_tricks() {
        assert!(validate_folder_name("livestreams").is_ok());
        assert!(validate_folder_name("_definst_").is_ok());
        for bad in ["", "..", ".hidden", "a/b", "a\\b", "a\nb", "x\u{0}"] {
            assert!(validate_folder_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn stream_names_allow_subfolders_but_not_escapes() {
        assert!(validate_stream_name("localnews").is_ok());
        assert!(validate_stream_name("events/cam1").is_ok());
        for bad in ["", "/etc/passwd", "../x", "a/../b", "a\\b", "a\tb"] {
            assert!(validate_stream_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn access_lists_follow_fms_prefix_rules() {
        assert!(access_allows("/", "anything/at/all"));
        assert!(!access_allows("", "cam"));
        assert!(access_allows("/live;/vod", "live/cam"));
        assert!(access_allows("live", "live"));
        assert!(!access_allows("/live", "liveevil"));
        assert!(!access_allows("/vod", "live/cam"));
    }

    #[tokio::test]
    async fn instances_are_separate_and_reused() {
        let apps = Applications::new(
            PathBuf::from("."),
            PathBuf::from("/tmp"),
            HubConfig::default(),
        );
        let a = apps.instance("live", "a");
        let b = apps.instance("live", "b");
        assert!(!Arc::ptr_eq(&a, &b));
        assert!(Arc::ptr_eq(&a, &apps.instance("live", "a")));
        assert_eq!(a.full_name(), "live/a");
        assert_eq!(apps.running_instances(), vec!["live/a", "live/b"]);
    }
}
