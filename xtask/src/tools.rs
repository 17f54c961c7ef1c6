//! Helpers the tasks share: where the workspace is, running commands with a clear message,
//! installing Debian packages when a tool is missing, free loopback ports, and child
//! processes that are killed when their guard is dropped (also on error).

use anyhow::{bail, Context, Result};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// The workspace root (the parent of `xtask/`).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The cargo target directory (`CARGO_TARGET_DIR` or `<root>/target`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        None => workspace_root().join("target"),
    }
}

/// The cargo that runs us (`$CARGO`), or `cargo` from PATH.
pub fn cargo() -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(program);
    command.current_dir(workspace_root());
    command
}

/// Whether an executable named `name` is on PATH.
pub fn on_path(name: &str) -> bool {
    find_on_path(name).is_some()
}

/// The first executable named `name` on PATH.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Whether we run as root (real uid 0, read from `/proc/self/status`).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().next().map(|id| id == "0"))
        })
        .unwrap_or(false)
}

/// A short description of a command for messages.
pub fn describe(command: &Command) -> String {
    let mut text = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// Runs `command` to completion with inherited stdio, returning its exit status.
pub fn status(command: &mut Command) -> Result<ExitStatus> {
    command
        .status()
        .with_context(|| format!("could not start `{}`", describe(command)))
}

/// Runs `command` to completion and fails unless it exits 0.
pub fn run(command: &mut Command) -> Result<()> {
    let status = status(command)?;
    if !status.success() {
        bail!("`{}` failed ({status})", describe(command));
    }
    Ok(())
}

/// Runs `command` and returns its trimmed stdout, failing unless it exits 0.
pub fn output(command: &mut Command) -> Result<String> {
    let out = command
        .output()
        .with_context(|| format!("could not start `{}`", describe(command)))?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            describe(command),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `apt-get update` then `apt-get install -y PACKAGES`, as root or through sudo.
pub fn apt_install(packages: &[&str]) -> Result<()> {
    let sudo = if is_root() {
        false
    } else if on_path("sudo") {
        true
    } else {
        bail!(
            "need to install {} but we are not root and there is no sudo",
            packages.join(" ")
        );
    };
    let apt = |args: &[&str]| {
        let mut command = if sudo {
            let mut c = Command::new("sudo");
            c.arg("DEBIAN_FRONTEND=noninteractive").arg("apt-get");
            c
        } else {
            Command::new("apt-get")
        };
        command.env("DEBIAN_FRONTEND", "noninteractive").args(args);
        command
    };
    println!("installing {} with apt-get", packages.join(" "));
    run(&mut apt(&["update"]))?;
    let mut install = apt(&["install", "-y"]);
    install.args(packages);
    run(&mut install)
}

/// Makes sure ffmpeg and ffprobe are on PATH, installing Debian's ffmpeg when they are not.
pub fn ensure_ffmpeg() -> Result<()> {
    let present = || on_path("ffmpeg") && on_path("ffprobe");
    if present() {
        return Ok(());
    }
    apt_install(&["ffmpeg"]).context("installing ffmpeg")?;
    if !present() {
        bail!("ffmpeg and ffprobe are still not on PATH after installing the ffmpeg package");
    }
    Ok(())
}

/// Where nginx is.
pub const NGINX: &str = "/usr/sbin/nginx";
/// Where Debian's libnginx-mod-rtmp puts the module.
pub const NGINX_RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

/// Makes sure nginx and its RTMP module are installed.
pub fn ensure_nginx_rtmp() -> Result<()> {
    let present = || Path::new(NGINX).exists() && Path::new(NGINX_RTMP_MODULE).exists();
    if present() {
        return Ok(());
    }
    apt_install(&["nginx", "libnginx-mod-rtmp"]).context("installing nginx-rtmp")?;
    if !present() {
        bail!("{NGINX} or {NGINX_RTMP_MODULE} is still missing after installing nginx and libnginx-mod-rtmp");
    }
    Ok(())
}

/// A free TCP port on 127.0.0.1 (bound to port 0, then released).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Wraps a command so it runs with the open-files limit raised (to 65536, or the hard limit).
pub fn with_raised_nofile(program: &Path, args: &[String]) -> Command {
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(r#"ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@""#)
        .arg("bash")
        .arg(program)
        .args(args);
    command
}

/// A child process that is killed (and reaped) when the guard is dropped.
pub struct ChildGuard {
    name: String,
    child: Option<Child>,
}

impl ChildGuard {
    /// Starts `command` as `name`.
    pub fn spawn(name: &str, command: &mut Command) -> Result<ChildGuard> {
        let child = command
            .spawn()
            .with_context(|| format!("could not start {name}: `{}`", describe(command)))?;
        Ok(ChildGuard {
            name: name.to_string(),
            child: Some(child),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Fails when the process has exited.
    pub fn check_running(&mut self) -> Result<()> {
        let name = self.name.clone();
        match self.child.as_mut() {
            None => bail!("{name} was already stopped"),
            Some(child) => match child.try_wait()? {
                None => Ok(()),
                Some(status) => bail!("{name} exited unexpectedly ({status})"),
            },
        }
    }

    /// Kills the process and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits until 127.0.0.1:`port` accepts connections, failing if `child` exits meanwhile.
pub fn wait_for_port(port: u16, timeout: Duration, child: &mut ChildGuard) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        child.check_running()?;
        if TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
            .is_ok()
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!(
        "{} did not accept connections on 127.0.0.1:{port} within {timeout:?}",
        child.name
    )
}

/// Formats a duration as seconds with one decimal.
pub fn secs(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}
