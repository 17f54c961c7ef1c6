//! What the end-to-end tests share: a real `ascend` process on a free loopback port with its own
//! applications and logs folders, ffmpeg publishers and probes, and players built on the
//! project's own RTMP client.
//!
//! Nothing here is mocked: the server is the release or debug binary cargo built, the clients
//! are ffmpeg/ffprobe and `ascend-client` over real TCP. Every wait is bounded.

#![allow(dead_code)]

use ascend_client::{ClientError, RtmpClient, RtmpUrl};
use ascend_rtmp::{AmfValue, ClientEvent};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Panics (fails the test, never skips it) when ffmpeg or ffprobe is missing.
pub fn require_ffmpeg() {
    for tool in ["ffmpeg", "ffprobe"] {
        let found = Command::new(tool)
            .arg("-version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            found,
            "{tool} is not installed: run `cargo xtask ci` (it installs ffmpeg) or apt-get install ffmpeg"
        );
    }
}

/// A running `ascend` process, killed when dropped.
pub struct TestServer {
    child: Child,
    /// The bound port on 127.0.0.1.
    pub port: u16,
    /// Root of this server's folders.
    pub root: PathBuf,
    /// The server's log (stderr).
    pub log_path: PathBuf,
}

static NEXT_DIR: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl TestServer {
    /// Starts a server with applications `apps` (empty folders) and optional extra TOML config.
    pub fn start(apps: &[&str], extra_config: &str) -> TestServer {
        Self::start_with_files(apps, &[], extra_config)
    }

    /// Like [`TestServer::start`], with files (path under `applications/`, content) in place.
    pub fn start_with_files(
        apps: &[&str],
        files: &[(&str, &str)],
        extra_config: &str,
    ) -> TestServer {
        Self::start_full("127.0.0.1:0", apps, files, extra_config)
    }

    /// Like [`TestServer::start_with_files`] on a given listen address (to restart a server
    /// on the port it had).
    pub fn start_full(
        listen: &str,
        apps: &[&str],
        files: &[(&str, &str)],
        extra_config: &str,
    ) -> TestServer {
        Self::start_logging_to(listen, apps, files, extra_config, None)
    }

    /// Like [`TestServer::start_full`] with the logs folder given (`None`: under the root).
    pub fn start_logging_to(
        listen: &str,
        apps: &[&str],
        files: &[(&str, &str)],
        extra_config: &str,
        logs: Option<&Path>,
    ) -> TestServer {
        let root = std::env::temp_dir().join(format!(
            "ascend-test-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        for app in apps {
            std::fs::create_dir_all(root.join("applications").join(app)).expect("app folder");
        }
        std::fs::create_dir_all(root.join("applications")).expect("apps folder");
        for (path, content) in files {
            let path = root.join("applications").join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("folder");
            std::fs::write(path, content).expect("file");
        }
        let config_path = root.join("ascend.toml");
        std::fs::write(&config_path, extra_config).expect("config");
        let log_path = root.join("server.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_ascend"))
            .arg("--listen")
            .arg(listen)
            .arg("--apps")
            .arg(root.join("applications"))
            .arg("--logs")
            .arg(logs.map_or_else(|| root.join("logs"), Path::to_path_buf))
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "info,ascend_server=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("ascend starts");
        let mut server = TestServer {
            child,
            port: 0,
            root,
            log_path,
        };
        let line = server.wait_for_log("ascend listening", Duration::from_secs(20));
        let port = line
            .split("listen=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.rsplit(':').next())
            .and_then(|port| port.parse().ok())
            .expect("listening line names the port");
        server.port = port;
        server
    }

    /// `rtmp://127.0.0.1:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        format!("rtmp://127.0.0.1:{}/{}", self.port, path)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log_path) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// Waits until a log line contains `needle`; returns that line. Panics after `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.log().lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needle:?} within {timeout:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The instance log (`logs/_defaultVHost_/APP/INSTANCE/application.00.log`) so far.
    pub fn instance_log(&self, app_instance: &str) -> String {
        std::fs::read_to_string(
            self.root
                .join("logs/_defaultVHost_")
                .join(app_instance)
                .join("application.00.log"),
        )
        .unwrap_or_default()
    }

    /// Waits until the instance log contains `needle`; returns the whole log. Panics after
    /// `timeout`.
    pub fn wait_for_instance_log(
        &self,
        app_instance: &str,
        needle: &str,
        timeout: Duration,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.instance_log(app_instance);
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the {app_instance} log within {timeout:?}; log:\n{log}\nserver log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Rewrites the server's configuration file (read again on SIGHUP).
    pub fn write_config(&self, text: &str) {
        std::fs::write(self.root.join("ascend.toml"), text).expect("config");
    }

    /// Writes a file under `applications/`.
    pub fn write_app_file(&self, path: &str, content: &str) {
        std::fs::write(self.root.join("applications").join(path), content).expect("write");
    }

    /// Asserts the process is still running and never panicked.
    pub fn assert_healthy(&mut self) {
        assert!(
            self.child.try_wait().expect("wait").is_none(),
            "ascend exited; log:\n{}",
            self.log()
        );
        assert!(
            !self.log().contains("panicked"),
            "ascend panicked:\n{}",
            self.log()
        );
    }

    /// The server's resident memory in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("proc status");
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .expect("VmRSS")
    }
}

impl TestServer {
    /// Sends a signal (`TERM`, `STOP`, `CONT`, `HUP`) to the process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit; its exit time, or `None` after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<Duration> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if self.child.try_wait().expect("wait").is_some() {
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// Open file descriptors of the process.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|d| d.count())
            .expect("proc fd")
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// An ffmpeg process publishing a synthetic stream, killed when dropped.
pub struct FfmpegPublisher {
    child: Child,
}

impl FfmpegPublisher {
    /// Publishes testsrc (`size`, 25 fps, keyframe every `gop` frames, H.264) + sine (AAC) to
    /// `url` in real time for `seconds`.
    pub fn start(url: &str, size: &str, gop: u32, seconds: u32) -> FfmpegPublisher {
        let child = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-re"])
            .args(["-f", "lavfi", "-i", &format!("testsrc=size={size}:rate=25")])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
            .args(["-t", &seconds.to_string()])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
            ])
            .args(["-g", &gop.to_string(), "-keyint_min", &gop.to_string()])
            .args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k"])
            .args(["-f", "flv", url])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ffmpeg starts");
        FfmpegPublisher { child }
    }

    /// Waits for ffmpeg to end (bounded); returns its exit success and stderr.
    pub fn wait(mut self, timeout: Duration) -> (bool, String) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                return (status.success(), err);
            }
            assert!(
                Instant::now() < deadline,
                "ffmpeg did not finish in {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for FfmpegPublisher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a command to completion within `timeout`; returns (success, stdout, stderr).
pub fn run_bounded(command: &mut Command, timeout: Duration) -> (bool, String, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("command starts");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status.success(),
        out_reader.join().unwrap_or_default(),
        err_reader.join().unwrap_or_default(),
    )
}

/// Waits until `url` plays video (own client), retrying while the publisher starts.
pub async fn wait_until_live(url: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let (app, stream) = RtmpUrl::parse_stream_url(url).expect("stream url");
    loop {
        if let Ok(mut client) = RtmpClient::connect(&app, vec![]).await {
            if client.play(&stream).await.is_ok() {
                let got_video = tokio::time::timeout(Duration::from_secs(2), async {
                    loop {
                        match client.next_event().await {
                            Ok(ClientEvent::Video { .. }) => return true,
                            Ok(_) => {}
                            Err(_) => return false,
                        }
                    }
                })
                .await
                .unwrap_or(false);
                if got_video {
                    return;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "{url} not live within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Connects a client to `rtmp://127.0.0.1:port/app`.
pub async fn connect(server: &TestServer, app: &str) -> Result<RtmpClient, ClientError> {
    RtmpClient::connect(&RtmpUrl::parse(&server.url(app)).expect("url"), vec![]).await
}

/// The `code` of a status info object.
pub fn code_of(info: &AmfValue) -> String {
    info.get_str("code").unwrap_or("").to_string()
}

/// Video frame type from the FLV video tag's first byte (1 keyframe, 2 inter...).
pub fn video_frame_type(payload: &[u8]) -> u8 {
    payload.first().map_or(0, |b| b >> 4)
}

/// True for an AVC sequence header.
pub fn is_avc_sequence_header(payload: &[u8]) -> bool {
    payload.len() > 1 && payload[0] & 0x0F == 7 && payload[1] == 0
}

/// A path under the test's server root.
pub fn path_in(server: &TestServer, rel: &str) -> PathBuf {
    Path::new(&server.root).join(rel)
}

/// A synthetic video frame carrying a sequence number: AVC keyframe (every `gop`th) or inter
/// frame, `size` bytes. Sequence numbers let a player check it lost nothing.
pub fn numbered_video_frame(sequence: u32, gop: u32, size: usize) -> bytes::Bytes {
    let mut payload = vec![0u8; size.max(9)];
    payload[0] = if sequence.is_multiple_of(gop) {
        0x17
    } else {
        0x27
    };
    payload[1] = 1; // AVC NALU
    payload[5..9].copy_from_slice(&sequence.to_be_bytes());
    bytes::Bytes::from(payload)
}

/// The sequence number of a [`numbered_video_frame`].
pub fn frame_sequence(payload: &[u8]) -> Option<u32> {
    (payload.len() >= 9 && payload[1] == 1)
        .then(|| u32::from_be_bytes([payload[5], payload[6], payload[7], payload[8]]))
}

/// Publishes `count` numbered frames on `name`, `batch` frames every `interval`, after an AVC
/// sequence header; then unpublishes. Returns how many frames were sent.
pub async fn publish_numbered_frames(
    server_url: &str,
    name: &str,
    count: u32,
    size: usize,
    batch: u32,
    interval: Duration,
) -> u32 {
    let url = RtmpUrl::parse(server_url).expect("url");
    let mut client = RtmpClient::connect(&url, vec![])
        .await
        .expect("publisher connects");
    let stream_id = client.publish(name).await.expect("publish");
    let header = bytes::Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f]);
    client
        .send(ascend_rtmp::build::video(stream_id, 0, header))
        .await
        .expect("sequence header");
    let mut sent = 0;
    while sent < count {
        for _ in 0..batch.min(count - sent) {
            let frame = numbered_video_frame(sent, 25, size);
            client
                .session()
                .send(ascend_rtmp::build::video(stream_id, sent * 40, frame));
            sent += 1;
        }
        client.flush().await.expect("frames sent");
        tokio::time::sleep(interval).await;
    }
    client.delete_stream(stream_id).await.expect("unpublish");
    sent
}

/// Plays `name` and collects the sequence numbers of numbered frames until UnpublishNotify
/// (or `timeout`). Returns them in arrival order.
pub async fn collect_numbered_frames(client: &mut RtmpClient, timeout: Duration) -> Vec<u32> {
    let mut numbers = Vec::new();
    let _ = tokio::time::timeout(timeout, async {
        loop {
            match client.next_event().await {
                Ok(ClientEvent::Video { payload, .. }) => {
                    if let Some(n) = frame_sequence(&payload) {
                        numbers.push(n);
                    }
                }
                Ok(ClientEvent::Status { info, .. })
                    if code_of(&info) == "NetStream.Play.UnpublishNotify" =>
                {
                    return;
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    })
    .await;
    numbers
}

/// A port nothing listens on (bound then released).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// nginx with the RTMP module (Debian's nginx + libnginx-mod-rtmp), killed when dropped: the
/// reference RTMP server we did not write.
pub struct NginxRtmp {
    child: Child,
    /// Its RTMP port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
}

impl NginxRtmp {
    /// Starts nginx-rtmp with `applications` inside its `server { }` block (e.g.
    /// `application live { live on; }`). Fails the test when nginx or the module is missing.
    pub fn start(applications: &str) -> NginxRtmp {
        let module = "/usr/lib/nginx/modules/ngx_rtmp_module.so";
        assert!(
            Path::new("/usr/sbin/nginx").exists() && Path::new(module).exists(),
            "nginx-rtmp is not installed: run `cargo xtask ci` (it installs nginx libnginx-mod-rtmp)"
        );
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "ascend-nginx-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(dir.join("logs")).expect("nginx dir");
        let conf = format!(
            "load_module {module};\nworker_processes 1;\ndaemon off;\nmaster_process off;\n\
             error_log {dir}/logs/error.log info;\npid {dir}/nginx.pid;\n\
             events {{ worker_connections 1024; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n{applications}\n}} }}\n",
            dir = dir.display()
        );
        std::fs::write(dir.join("nginx.conf"), conf).expect("nginx.conf");
        let child = Command::new("/usr/sbin/nginx")
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-p")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx-rtmp did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        NginxRtmp { child, port, dir }
    }

    /// `rtmp://127.0.0.1:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        format!("rtmp://127.0.0.1:{}/{}", self.port, path)
    }
}

impl Drop for NginxRtmp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// ffprobe's view of a stream: (codec_type, codec_name, width, height) per stream.
pub fn probe(url: &str) -> Vec<(String, String, u64, u64)> {
    let (ok, out, err) = run_bounded(
        Command::new("ffprobe").args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,codec_name,width,height",
            "-of",
            "json",
            url,
        ]),
        Duration::from_secs(30),
    );
    assert!(ok, "ffprobe failed: {err}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("ffprobe json");
    json["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .map(|s| {
            (
                s["codec_type"].as_str().unwrap_or("").to_string(),
                s["codec_name"].as_str().unwrap_or("").to_string(),
                s["width"].as_u64().unwrap_or(0),
                s["height"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// Decodes `seconds` of `url` with ffmpeg; returns (frames decoded, stderr at level error).
pub fn decode(url: &str, seconds: u32) -> (u64, String) {
    let (ok, out, err) = run_bounded(
        Command::new("ffmpeg").args([
            "-hide_banner",
            "-v",
            "error",
            "-i",
            url,
            "-t",
            &seconds.to_string(),
            "-f",
            "null",
            "-",
            "-progress",
            "pipe:1",
        ]),
        Duration::from_secs(30),
    );
    assert!(ok, "ffmpeg player failed: {err}");
    let frames = out
        .lines()
        .filter_map(|l| l.strip_prefix("frame="))
        .filter_map(|n| n.trim().parse().ok())
        .max()
        .unwrap_or(0);
    (frames, err)
}

/// Asserts every one of `lines` appears in `log`, in this order.
pub fn assert_in_order(log: &str, lines: &[&str]) {
    let positions: Vec<usize> = lines
        .iter()
        .map(|line| {
            log.find(line)
                .unwrap_or_else(|| panic!("{line:?} missing:\n{log}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "out of order:\n{log}"
    );
}
