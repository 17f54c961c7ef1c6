//! The per-instance log file, in the FMS layout: `LOGS/_defaultVHost_/APP/INSTANCE/application.00.log`.
//!
//! `trace()` lines and script errors are appended with a UTC timestamp. When the file passes the
//! rotation size it becomes `application.01.log` (older ones shift up, ten are kept) and a new
//! `application.00.log` starts. A log that cannot be written (disk full, no permission) is reported
//! once on the server log and otherwise ignored: logging never stops a script.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

const KEPT_FILES: u32 = 10;

/// One instance's application log.
pub struct InstanceLog {
    dir: PathBuf,
    rotate_bytes: u64,
    file: Option<File>,
    written: u64,
    failed: bool,
    instance: String,
}

impl InstanceLog {
    /// A log in `dir` (created when first written).
    pub fn new(dir: PathBuf, rotate_bytes: u64, instance: String) -> Self {
        InstanceLog {
            dir,
            rotate_bytes,
            file: None,
            written: 0,
            failed: false,
            instance,
        }
    }

    fn path(&self, index: u32) -> PathBuf {
        self.dir.join(format!("application.{index:02}.log"))
    }

    /// Appends one line: `TIMESTAMP LEVEL message`.
    pub fn write(&mut self, level: &str, message: &str) {
        let line = format!(
            "{} {level} {message}\n",
            humantime::format_rfc3339_millis(std::time::SystemTime::now())
        );
        if let Err(error) = self.append(line.as_bytes()) {
            self.file = None;
            if !self.failed {
                self.failed = true;
                tracing::error!(instance = %self.instance, dir = %self.dir.display(), %error, "instance log cannot be written; trace lines go to the server log only");
            }
        } else {
            self.failed = false;
        }
    }

    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.file.is_none() {
            std::fs::create_dir_all(&self.dir)?;
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.path(0))?;
            self.written = file.metadata().map(|m| m.len()).unwrap_or(0);
            self.file = Some(file);
        }
        if self.written + bytes.len() as u64 > self.rotate_bytes && self.written > 0 {
            self.rotate()?;
            return self.append(bytes);
        }
        if let Some(file) = &mut self.file {
            file.write_all(bytes)?;
            self.written += bytes.len() as u64;
        }
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        let _ = std::fs::remove_file(self.path(KEPT_FILES - 1));
        for index in (0..KEPT_FILES - 1).rev() {
            let from = self.path(index);
            if from.exists() {
                std::fs::rename(&from, self.path(index + 1))?;
            }
        }
        self.written = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_go_to_application_00_and_rotate_by_size() {
        let dir = std::env::temp_dir().join(format!("ascend-log-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut log = InstanceLog::new(dir.clone(), 200, "app/inst".into());
        for i in 0..10 {
            log.write("trace", &format!("line number {i} with some padding text"));
        }
        let current = std::fs::read_to_string(dir.join("application.00.log")).expect("00");
        let previous = std::fs::read_to_string(dir.join("application.01.log")).expect("01");
        assert!(current.contains("line number 9"));
        assert!(!current.contains("line number 0 "));
        assert!(previous.contains("trace line number"));
        assert!(
            std::fs::metadata(dir.join("application.00.log"))
                .expect("meta")
                .len()
                <= 200
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unwritable_folder_does_not_panic() {
        let mut log =
            InstanceLog::new(PathBuf::from("/proc/ascend-cannot-write"), 1000, "x".into());
        log.write("trace", "goes nowhere");
        assert!(log.failed);
    }
}
