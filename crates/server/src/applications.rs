//! Applications and their instances: which applications exist, and each running instance's
//! streams and clients.
//!
//! An application exists when `APPS/APP/` is a folder (checked at each connect, so a new folder
//! is picked up without a restart). An instance (`APP/INSTANCE`) starts on its first connection
//! and owns its own [`StreamHub`]: streams of different instances never meet.

use ascend_media::{HubConfig, StreamHub};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

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

/// What the server knows of one connected client.
#[derive(Debug, Clone)]
pub struct ClientRecord {
    /// The client id (unique in the server's lifetime).
    pub id: u64,
    /// Remote address.
    pub ip: std::net::IpAddr,
    /// `flashVer`.
    pub agent: String,
}

/// One running application instance.
pub struct Instance {
    app: String,
    name: String,
    hub: StreamHub,
    clients: Mutex<HashMap<u64, ClientRecord>>,
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

    fn clients(&self) -> MutexGuard<'_, HashMap<u64, ClientRecord>> {
        // A panic while holding this lock cannot leave the map half-updated (single inserts
        // and removes), so a poisoned lock is still usable.
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a connected client.
    pub fn add_client(&self, record: ClientRecord) {
        self.clients().insert(record.id, record);
    }

    /// Removes a client.
    pub fn remove_client(&self, id: u64) {
        self.clients().remove(&id);
    }

    /// Number of connected clients.
    pub fn client_count(&self) -> usize {
        self.clients().len()
    }
}

/// All applications and their running instances.
pub struct Applications {
    apps_dir: PathBuf,
    hub_config: HubConfig,
    instances: Mutex<HashMap<(String, String), Arc<Instance>>>,
}

impl Applications {
    /// Applications found in `apps_dir`.
    pub fn new(apps_dir: PathBuf, hub_config: HubConfig) -> Self {
        Applications {
            apps_dir,
            hub_config,
            instances: Mutex::new(HashMap::new()),
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

    /// The instance `app/instance`, started if it is not running.
    pub fn instance(&self, app: &str, instance: &str) -> Arc<Instance> {
        let mut instances = self.instances.lock().unwrap_or_else(|p| p.into_inner());
        instances
            .entry((app.to_string(), instance.to_string()))
            .or_insert_with(|| {
                tracing::info!(app, instance, "instance started");
                Arc::new(Instance {
                    app: app.to_string(),
                    name: instance.to_string(),
                    hub: StreamHub::new(self.hub_config.clone()),
                    clients: Mutex::new(HashMap::new()),
                })
            })
            .clone()
    }

    /// Names (`APP/INSTANCE`) of running instances, sorted.
    pub fn running_instances(&self) -> Vec<String> {
        let instances = self.instances.lock().unwrap_or_else(|p| p.into_inner());
        let mut names: Vec<String> = instances.values().map(|i| i.full_name()).collect();
        names.sort();
        names
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
    fn instances_are_separate_and_reused() {
        let apps = Applications::new(PathBuf::from("."), HubConfig::default());
        let a = apps.instance("live", "a");
        let b = apps.instance("live", "b");
        assert!(!Arc::ptr_eq(&a, &b));
        assert!(Arc::ptr_eq(&a, &apps.instance("live", "a")));
        assert_eq!(a.full_name(), "live/a");
        assert_eq!(apps.running_instances(), vec!["live/a", "live/b"]);
    }
}
