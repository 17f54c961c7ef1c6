//! Multipoint publishing: the server side of a script's `NetConnection`, `NetStream` and
//! `Stream.play`.
//!
//! Each server-side NetConnection is one task owning an outgoing RTMP client session
//! ([`ascend_client::RtmpClient`]). A NetStream published through it is a **subscriber of the
//! local hub**, exactly like a player: it gets metadata, sequence headers and the current
//! keyframe group first, then live frames from the shared ring, dropping by priority when the
//! remote server is slow, so a slow or dead remote never slows the publisher or local players.
//! A `Stream.play(name, ..., nc)` pull does the reverse: it plays the remote stream and publishes
//! what arrives into the local hub. Statuses go back to the script as events.

use crate::applications::Instance;
use ascend_client::{ClientError, RtmpClient, RtmpUrl};
use ascend_media::{DirectReader, MediaFrame, Publisher, Subscription, SubscriptionEvent};
use ascend_rtmp::amf::encode_amf0_values;
use ascend_rtmp::{build, AmfValue, ClientEvent, PublishMode};
use ascend_script::ScriptEvent;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError, Weak};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tracing::{debug, info, warn};

/// How long a connect to a remote server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a write to a remote server may make no progress.
const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What the script asks of one server-side NetConnection.
#[derive(Debug)]
pub enum RelayCommand {
    /// `nc.call`.
    Call {
        /// Method.
        method: String,
        /// Arguments.
        args: Vec<AmfValue>,
        /// Responder id (0: none).
        call_id: u64,
    },
    /// The script's answer to a method the remote side invoked.
    Respond {
        /// Remote transaction id.
        transaction_id: f64,
        /// The answer.
        result: Result<AmfValue, String>,
    },
    /// `ns.attach(stream | false)`.
    Attach {
        /// NetStream id.
        ns_id: u64,
        /// Local stream name.
        source: Option<String>,
    },
    /// `ns.publish(name, how)`.
    Publish {
        /// NetStream id.
        ns_id: u64,
        /// Remote name.
        name: String,
        /// live / record / append.
        mode: String,
    },
    /// `ns.publish(false)`.
    Unpublish {
        /// NetStream id.
        ns_id: u64,
    },
    /// `ns.send(handler, ...args)`.
    Send {
        /// NetStream id.
        ns_id: u64,
        /// Handler and arguments.
        values: Vec<AmfValue>,
    },
    /// `stream.play(source, ..., nc)`: pull `source` into the local stream `name`.
    Pull {
        /// Local stream name.
        name: String,
        /// Remote stream name.
        source: String,
    },
    /// `stream.play(false)` on a pulled stream.
    StopPull {
        /// Local stream name.
        name: String,
    },
    /// `nc.close()`.
    Close,
}

/// Where a NetConnection URI points: `rtmp://localhost/APP` (no port) means this server,
/// whatever port it listens on, as scripts written for FMS on 1935 expect.
pub fn resolve_uri(uri: &str, own_port: u16) -> Result<RtmpUrl, ClientError> {
    let mut url = RtmpUrl::parse(uri)?;
    let authority = uri
        .strip_prefix("rtmp://")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("");
    let explicit_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        && !authority.ends_with(']');
    let local = matches!(
        url.host.as_str(),
        "localhost" | "127.0.0.1" | "[::1]" | "::1"
    );
    if local && !explicit_port && own_port != 0 {
        url.port = own_port;
    }
    Ok(url)
}

/// An `{level, code, description}` info object for the script.
pub(crate) fn status(level: &str, code: &str, description: &str) -> AmfValue {
    build::status_info(level, code, description, vec![])
}

#[derive(Default)]
struct OutgoingStream {
    remote_name: Option<String>,
    mode: Option<String>,
    remote_stream_id: Option<u32>,
    creating: bool,
    publishing: bool,
    source: Option<String>,
    subscription: Option<Subscription>,
}

struct Pull {
    name: String,
    source: String,
    remote_stream_id: Option<u32>,
    publisher: Option<Publisher>,
}

/// One server-side NetConnection: its client session and its streams. It sits behind the lock
/// of its [`RelayLink`], used by the connection's task for commands, answers and socket
/// readiness, and by the fan-out of the local streams it publishes elsewhere, which sends their
/// frames in its own round when the lock and the socket are free.
struct NetConnectionState {
    nc_id: u64,
    instance: Arc<Instance>,
    client: RtmpClient,
    streams: HashMap<u64, OutgoingStream>,
    pulls: Vec<Pull>,
    /// createStream transaction → what it is for.
    creating: HashMap<u64, Creation>,
    /// Our call transactions → script responder ids.
    calls: HashMap<u64, u64>,
    /// Kept between rounds: the stream ids to gather from, without allocating per frame.
    source_ids: Vec<u64>,
    /// The link this state sits in, handed to the subscriptions it makes.
    link: Weak<RelayLink>,
    /// The socket took only part of the last write: the task waits until it is writable, and
    /// the fan-out leaves the frames in the ring meanwhile (the ring drops by priority if the
    /// remote server stays slow).
    write_blocked: bool,
    /// Why the connection must end, found outside the task (a failed write in a round).
    failed: Option<String>,
}

/// A server-side NetConnection as a direct reader of the local streams it publishes to another
/// server ([`DirectReader`]): a frame goes out from the stream's fan-out round, the same round
/// that writes to local players, instead of waking the connection's task (measured: with two
/// runtime threads, that wake-up crossed to the other thread for every frame and made a
/// relayed stream cost the origin about 0.5 % of a core at idle, against 0.2 % with one thread).
struct RelayLink {
    state: Mutex<NetConnectionState>,
    /// Wakes the task: the fan-out found the lock taken, or the socket full.
    wake: Notify,
}

impl RelayLink {
    fn state(&self) -> MutexGuard<'_, NetConnectionState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl DirectReader for RelayLink {
    fn items_ready(&self) {
        let mut state = match self.state.try_lock() {
            Ok(state) => state,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            // The task is at work: it gathers before it waits again.
            Err(TryLockError::WouldBlock) => {
                self.wake.notify_one();
                return;
            }
        };
        if state.write_blocked || state.failed.is_some() {
            // The task waits for the socket and gathers when it can write.
            return;
        }
        state.gather_sources();
        if !state.flush_without_waiting() {
            drop(state);
            self.wake.notify_one();
        }
    }
}

enum Creation {
    Publish(u64),
    Pull(String),
}

enum Input {
    Command(Option<RelayCommand>),
    Readable(std::io::Result<()>),
    Writable(std::io::Result<()>),
    /// The fan-out asked the task to gather (it found the lock taken or the socket full).
    Wake,
    /// The socket took nothing for [`WRITE_STALL_TIMEOUT`].
    Stalled,
}

/// Runs one server-side NetConnection until the script closes it, the remote end goes away,
/// or the instance ends.
pub async fn run_net_connection(
    nc_id: u64,
    url: RtmpUrl,
    args: Vec<AmfValue>,
    instance: Arc<Instance>,
    mut commands: mpsc::UnboundedReceiver<RelayCommand>,
) {
    let nc_status = |info: AmfValue| {
        instance.script_event(ScriptEvent::NetConnectionStatus { nc_id, info });
    };
    let target = format!("{}:{}/{}", url.host, url.port, url.app);
    let client = match tokio::time::timeout(CONNECT_TIMEOUT, RtmpClient::connect(&url, args)).await
    {
        Ok(Ok(client)) => client,
        Ok(Err(ClientError::ConnectRefused(info))) => {
            warn!(instance = %instance.full_name(), %target, code = %info.get_str("code").unwrap_or(""), "outgoing connection refused");
            nc_status(info);
            return;
        }
        Ok(Err(error)) => {
            warn!(instance = %instance.full_name(), %target, %error, "outgoing connection failed");
            nc_status(status(
                "error",
                "NetConnection.Connect.Failed",
                &error.to_string(),
            ));
            return;
        }
        Err(_) => {
            warn!(instance = %instance.full_name(), %target, "outgoing connection timed out");
            nc_status(status(
                "error",
                "NetConnection.Connect.Failed",
                "Connection timed out.",
            ));
            return;
        }
    };
    info!(instance = %instance.full_name(), %target, nc_id, "outgoing connection established");
    nc_status(client.connect_info.clone());
    let link = Arc::new_cyclic(|link| RelayLink {
        state: Mutex::new(NetConnectionState {
            nc_id,
            instance: instance.clone(),
            client,
            streams: HashMap::new(),
            source_ids: Vec::new(),
            pulls: Vec::new(),
            creating: HashMap::new(),
            calls: HashMap::new(),
            link: link.clone(),
            write_blocked: false,
            failed: None,
        }),
        wake: Notify::new(),
    });
    let reason = run(&link, &mut commands).await;
    info!(instance = %instance.full_name(), %target, nc_id, %reason, "outgoing connection closed");
    let mut state = link.state();
    // The fan-out holds the link through the subscriptions: dropping them ends that.
    for stream in state.streams.values_mut() {
        stream.subscription = None;
    }
    state.pulls.clear();
    for (ns_id, stream) in &state.streams {
        if stream.remote_stream_id.is_some() || stream.creating {
            instance.script_event(ScriptEvent::NetStreamStatus {
                ns_id: *ns_id,
                info: status("error", "NetStream.Failed", &reason),
            });
        }
    }
    nc_status(status("status", "NetConnection.Connect.Closed", &reason));
}

/// The connection's task: commands from the script, what the remote server sends, and the
/// writes the fan-out could not finish. Returns why it ended.
async fn run(link: &RelayLink, commands: &mut mpsc::UnboundedReceiver<RelayCommand>) -> String {
    let socket = link.state().client.socket();
    let mut blocked_since: Option<tokio::time::Instant> = None;
    loop {
        let stall_deadline = blocked_since.map(|since| since + WRITE_STALL_TIMEOUT);
        let input = tokio::select! {
            biased;
            command = commands.recv() => Input::Command(command),
            ready = socket.readable() => Input::Readable(ready),
            ready = socket.writable(), if blocked_since.is_some() => Input::Writable(ready),
            () = link.wake.notified() => Input::Wake,
            () = sleep_until_some(stall_deadline), if stall_deadline.is_some() => Input::Stalled,
        };
        let mut state = link.state();
        match input {
            Input::Command(None) | Input::Command(Some(RelayCommand::Close)) => {
                return "closed by the application".into()
            }
            Input::Command(Some(command)) => state.on_command(command),
            Input::Readable(Err(error)) | Input::Writable(Err(error)) => return error.to_string(),
            Input::Readable(Ok(())) => {
                if let Err(error) = state.receive() {
                    return error.to_string();
                }
            }
            Input::Writable(Ok(())) | Input::Wake => {}
            Input::Stalled => return "the remote server read nothing for 30 s".into(),
        }
        // Also what the fan-out left to the task, and what the subscriptions made since.
        state.gather_sources();
        state.flush_without_waiting();
        if let Some(reason) = state.failed.take() {
            return reason;
        }
        blocked_since = match (state.write_blocked, blocked_since) {
            (false, _) => None,
            (true, Some(since)) => Some(since),
            (true, None) => Some(tokio::time::Instant::now()),
        };
    }
}

/// A subscription to the local stream `source` whose frames the fan-out sends from its round,
/// first among the stream's readers.
fn subscribe_source(instance: &Instance, link: &Weak<RelayLink>, source: &str) -> Subscription {
    let mut subscription = instance.hub().subscribe(source);
    if let Some(link) = link.upgrade() {
        subscription.read_directly_first(link);
    }
    subscription
}

/// Sleeps until `deadline`; never ends without one.
async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

impl NetConnectionState {
    /// Reads what the remote server sent and handles every event in it.
    fn receive(&mut self) -> Result<(), ClientError> {
        while self.client.try_receive()? {
            while let Some(event) = self.client.received_event()? {
                self.on_remote(event);
            }
        }
        Ok(())
    }

    /// Encodes what every published source has ready.
    fn gather_sources(&mut self) {
        let mut ids = std::mem::take(&mut self.source_ids);
        ids.clear();
        ids.extend(self.streams.keys().copied());
        for &id in &ids {
            while let Some(event) = self
                .streams
                .get_mut(&id)
                .and_then(|s| s.subscription.as_mut())
                .and_then(Subscription::try_recv)
            {
                self.on_source(id, event);
            }
        }
        self.source_ids = ids;
    }

    /// Writes what the socket takes now; true when everything went. Notes a full socket in
    /// `write_blocked` and a failure in `failed`.
    fn flush_without_waiting(&mut self) -> bool {
        match self.client.try_flush() {
            Ok(all_sent) => {
                self.write_blocked = !all_sent;
                all_sent
            }
            Err(error) => {
                self.failed.get_or_insert_with(|| error.to_string());
                false
            }
        }
    }

    fn ns_status(&self, ns_id: u64, info: AmfValue) {
        self.instance
            .script_event(ScriptEvent::NetStreamStatus { ns_id, info });
    }

    fn on_command(&mut self, command: RelayCommand) {
        match command {
            RelayCommand::Call {
                method,
                args,
                call_id,
            } => {
                let tx = self.client.session().call(&method, &args);
                if call_id != 0 {
                    self.calls.insert(tx as u64, call_id);
                }
            }
            RelayCommand::Respond {
                transaction_id,
                result,
            } => match result {
                Ok(value) => self
                    .client
                    .session()
                    .respond(transaction_id, true, &[value]),
                Err(description) => {
                    let info = status("error", "NetConnection.Call.Failed", &description);
                    self.client
                        .session()
                        .respond(transaction_id, false, &[info]);
                }
            },
            RelayCommand::Attach { ns_id, source } => {
                let stream = self.streams.entry(ns_id).or_default();
                stream.source = source;
                stream.subscription = None;
                if stream.publishing {
                    if let Some(source) = &stream.source {
                        stream.subscription =
                            Some(subscribe_source(&self.instance, &self.link, source));
                    }
                }
            }
            RelayCommand::Publish { ns_id, name, mode } => {
                let stream = self.streams.entry(ns_id).or_default();
                stream.remote_name = Some(name);
                stream.mode = Some(mode);
                match stream.remote_stream_id {
                    Some(remote) => self.start_publish(ns_id, remote),
                    None if !stream.creating => {
                        stream.creating = true;
                        let tx = self.client.session().create_stream();
                        self.creating.insert(tx as u64, Creation::Publish(ns_id));
                    }
                    None => {}
                }
            }
            RelayCommand::Unpublish { ns_id } => {
                self.stop_publish(ns_id, "NetStream.Unpublish.Success")
            }
            RelayCommand::Send { ns_id, values } => {
                if let Some(remote) = self.streams.get(&ns_id).and_then(|s| s.remote_stream_id) {
                    self.client.session().send(build::data(remote, 0, &values));
                }
            }
            RelayCommand::Pull { name, source } => {
                let tx = self.client.session().create_stream();
                self.creating
                    .insert(tx as u64, Creation::Pull(name.clone()));
                self.pulls.push(Pull {
                    name,
                    source,
                    remote_stream_id: None,
                    publisher: None,
                });
            }
            RelayCommand::StopPull { name } => {
                if let Some(index) = self.pulls.iter().position(|p| p.name == name) {
                    let pull = self.pulls.remove(index);
                    if let Some(remote) = pull.remote_stream_id {
                        self.client.session().delete_stream(remote);
                    }
                    self.instance.script_event(ScriptEvent::StreamStatus {
                        name,
                        info: status("status", "NetStream.Play.Stop", "Stopped pulling."),
                    });
                }
            }
            RelayCommand::Close => {}
        }
    }

    fn start_publish(&mut self, ns_id: u64, remote: u32) {
        let Some(stream) = self.streams.get(&ns_id) else {
            return;
        };
        let (Some(name), Some(mode)) = (stream.remote_name.clone(), stream.mode.clone()) else {
            return;
        };
        let mode = match mode.as_str() {
            "record" => PublishMode::Record,
            "append" => PublishMode::Append,
            _ => PublishMode::Live,
        };
        self.client.session().publish(remote, &name, mode);
    }

    fn stop_publish(&mut self, ns_id: u64, code: &str) {
        let Some(stream) = self.streams.get_mut(&ns_id) else {
            return;
        };
        stream.subscription = None;
        stream.publishing = false;
        if let Some(remote) = stream.remote_stream_id.take() {
            let name = stream.remote_name.clone().unwrap_or_default();
            self.client
                .session()
                .send_command(0, "FCUnpublish", &[AmfValue::string(&name)]);
            self.client.session().delete_stream(remote);
            self.ns_status(
                ns_id,
                status("status", code, &format!("{name} is now unpublished.")),
            );
        }
    }

    fn on_remote(&mut self, event: ClientEvent) {
        match event {
            ClientEvent::StreamCreated {
                transaction_id,
                stream_id,
            } => match self.creating.remove(&(transaction_id as u64)) {
                Some(Creation::Publish(ns_id)) => {
                    if let Some(stream) = self.streams.get_mut(&ns_id) {
                        stream.creating = false;
                        stream.remote_stream_id = Some(stream_id);
                    }
                    self.start_publish(ns_id, stream_id);
                }
                Some(Creation::Pull(name)) => {
                    if let Some(pull) = self.pulls.iter_mut().find(|p| p.name == name) {
                        pull.remote_stream_id = Some(stream_id);
                        let source = pull.source.clone();
                        self.client.session().play(stream_id, &source, -1.0);
                    }
                }
                None => {}
            },
            ClientEvent::Status { stream_id, info } => self.on_status(stream_id, info),
            ClientEvent::CallResult {
                transaction_id,
                success,
                values,
            } => {
                if let Some(call_id) = self.calls.remove(&(transaction_id as u64)) {
                    self.instance.script_event(ScriptEvent::CallResponse {
                        call_id,
                        success,
                        values,
                    });
                }
            }
            ClientEvent::Invoked { command, .. } => {
                // onBWDone and the like: the script may define them on the NetConnection.
                self.instance
                    .script_event(ScriptEvent::NetConnectionInvoked {
                        nc_id: self.nc_id,
                        transaction_id: command.transaction_id,
                        method: command.name,
                        args: command.args,
                    });
            }
            ClientEvent::Audio {
                stream_id,
                timestamp,
                payload,
            } => self.pulled(stream_id, MediaFrame::audio(timestamp, payload)),
            ClientEvent::Video {
                stream_id,
                timestamp,
                payload,
            } => self.pulled(stream_id, MediaFrame::video(timestamp, payload)),
            ClientEvent::Data {
                stream_id,
                timestamp,
                values,
            } => {
                let Some(publisher) = self
                    .pulls
                    .iter()
                    .find(|p| p.remote_stream_id == Some(stream_id))
                    .and_then(|p| p.publisher.as_ref())
                else {
                    return;
                };
                match values.first().and_then(AmfValue::as_str) {
                    Some("onMetaData") => {
                        publisher.set_metadata(Bytes::from(encode_amf0_values(&values)))
                    }
                    Some("|RtmpSampleAccess") | Some("onStatus") => {}
                    _ => publisher.send(MediaFrame::data(
                        timestamp,
                        Bytes::from(encode_amf0_values(&values)),
                    )),
                }
            }
            ClientEvent::Connected(_)
            | ClientEvent::ConnectFailed(_)
            | ClientEvent::UserControl(_)
            | ClientEvent::Ignored { .. } => {}
        }
    }

    fn pulled(&mut self, stream_id: u32, frame: MediaFrame) {
        if let Some(publisher) = self
            .pulls
            .iter()
            .find(|p| p.remote_stream_id == Some(stream_id))
            .and_then(|p| p.publisher.as_ref())
        {
            publisher.send(frame);
        }
    }

    fn on_status(&mut self, stream_id: u32, info: AmfValue) {
        let code = info.get_str("code").unwrap_or("").to_string();
        if stream_id == 0 {
            self.instance
                .script_event(ScriptEvent::NetConnectionStatus {
                    nc_id: self.nc_id,
                    info,
                });
            return;
        }
        let ns_id = self
            .streams
            .iter()
            .find(|(_, s)| s.remote_stream_id == Some(stream_id))
            .map(|(id, _)| *id);
        if let Some(ns_id) = ns_id {
            if code == "NetStream.Publish.Start" {
                if let Some(stream) = self.streams.get_mut(&ns_id) {
                    stream.publishing = true;
                    if let Some(source) = &stream.source {
                        // Subscribing now sends metadata, sequence headers and the keyframe
                        // group first: remote players can decode at once.
                        stream.subscription =
                            Some(subscribe_source(&self.instance, &self.link, source));
                    }
                }
            } else if info.get_str("level") == Some("error") {
                if let Some(stream) = self.streams.get_mut(&ns_id) {
                    stream.publishing = false;
                    stream.subscription = None;
                }
            }
            self.ns_status(ns_id, info);
            return;
        }
        let instance = self.instance.clone();
        if let Some(pull) = self
            .pulls
            .iter_mut()
            .find(|p| p.remote_stream_id == Some(stream_id))
        {
            match code.as_str() {
                "NetStream.Play.Start" | "NetStream.Play.PublishNotify"
                    if pull.publisher.is_none() =>
                {
                    match instance
                        .hub()
                        .publish(&pull.name, relay_client_id(self.nc_id))
                    {
                        Ok(publisher) => pull.publisher = Some(publisher),
                        Err(error) => {
                            warn!(instance = %instance.full_name(), stream = %pull.name, %error, "pulled stream cannot be published locally")
                        }
                    }
                }
                "NetStream.Play.UnpublishNotify" | "NetStream.Play.Stop" => pull.publisher = None,
                _ => {}
            }
            debug!(stream = %pull.name, %code, "pulled stream status");
            instance.script_event(ScriptEvent::StreamStatus {
                name: pull.name.clone(),
                info,
            });
        }
    }

    fn on_source(&mut self, ns_id: u64, event: SubscriptionEvent) {
        let Some(stream) = self.streams.get(&ns_id) else {
            return;
        };
        let Some(remote) = stream.remote_stream_id.filter(|_| stream.publishing) else {
            return;
        };
        let message = match event {
            SubscriptionEvent::Metadata(body) => {
                let mut payload = encode_amf0_values(&[AmfValue::string("@setDataFrame")]);
                payload.extend_from_slice(&body);
                build::data_from_body(remote, 0, Bytes::from(payload))
            }
            SubscriptionEvent::Frame(frame) => match frame.kind {
                ascend_media::FrameKind::Audio => {
                    build::audio(remote, frame.timestamp, frame.payload)
                }
                ascend_media::FrameKind::Video => {
                    build::video(remote, frame.timestamp, frame.payload)
                }
                ascend_media::FrameKind::Data => {
                    build::data_from_body(remote, frame.timestamp, frame.payload)
                }
            },
            SubscriptionEvent::Unpublished => {
                // The source ended: so does the remote stream.
                self.stop_publish(ns_id, "NetStream.Unpublish.Success");
                return;
            }
            SubscriptionEvent::PublishStarted => return,
        };
        self.client.session().send(message);
    }
}

/// The client id a pulled stream's local publisher is recorded under.
fn relay_client_id(nc_id: u64) -> u64 {
    u64::MAX - nc_id
}

/// `stream.play(source)` without a NetConnection: republish a local live stream under another
/// name of this instance, until stopped.
pub async fn feed_local(instance: Arc<Instance>, name: String, source: String) {
    let mut subscription = instance.hub().subscribe(&source);
    let mut publisher: Option<Publisher> = None;
    let status = |code: &str| {
        instance.script_event(ScriptEvent::StreamStatus {
            name: name.clone(),
            info: status("status", code, &source),
        });
    };
    if subscription.is_live() {
        status("NetStream.Play.Start");
    }
    loop {
        match subscription.recv().await {
            SubscriptionEvent::PublishStarted => status("NetStream.Play.PublishNotify"),
            SubscriptionEvent::Unpublished => {
                publisher = None;
                status("NetStream.Play.UnpublishNotify");
            }
            SubscriptionEvent::Metadata(body) => {
                if let Some(p) = ensure_publisher(&instance, &name, &mut publisher) {
                    p.set_metadata(body);
                }
            }
            SubscriptionEvent::Frame(frame) => {
                if let Some(p) = ensure_publisher(&instance, &name, &mut publisher) {
                    p.send(frame);
                }
            }
        }
    }
}

fn ensure_publisher<'a>(
    instance: &Instance,
    name: &str,
    publisher: &'a mut Option<Publisher>,
) -> Option<&'a Publisher> {
    if publisher.is_none() {
        *publisher = instance.hub().publish(name, u64::MAX).ok();
    }
    publisher.as_ref()
}
