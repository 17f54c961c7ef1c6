//! One client connection: the handshake, then the session's events turned into actions on the
//! application instance (connect, publish into the hub, play from it) and answers to the client.
//!
//! This task owns the socket's read half and the [`ServerSession`]; the writer task
//! ([`crate::writer`]) owns the write half. Everything this task wants sent goes to the writer
//! through a bounded channel, in order; a client that lets it fill is dropped.

use crate::applications::{validate_stream_name, Instance};
use crate::shutdown::ShutdownPhase;
use crate::writer::{self, WriterCommand};
use crate::ServerContext;
use ascend_media::{MediaFrame, PublishError, Publisher};
use ascend_rtmp::amf::encode_amf0_values;
use ascend_rtmp::protocol::ProtocolError;
use ascend_rtmp::{
    build, AmfValue, ConnectRequest, Handshake, ServerEvent, ServerSession, ServerSessionConfig,
};
use ascend_script::{ClientInfo, ScriptCommand, ScriptEvent};
use bytes::Bytes;
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// Why a connection ended early.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// Socket error.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Handshake failed or timed out.
    #[error("handshake: {0}")]
    Handshake(String),
    /// The client broke the chunk protocol or a limit.
    #[error("protocol: {0}")]
    Protocol(#[from] ProtocolError),
    /// A limit was reached.
    #[error("limit: {0}")]
    Limit(String),
}

/// Most bytes taken from a socket at once.
const RECEIVE_BUFFER_SIZE: usize = 64 * 1024;

/// C0 + C1 + C2.
const HANDSHAKE_BYTES_FROM_CLIENT: u64 = 1 + 2 * 1536;

struct PublishedStream {
    name: String,
    publisher: Publisher,
}

/// The state of one connection after the handshake.
struct Connection {
    id: u64,
    peer: SocketAddr,
    context: Arc<ServerContext>,
    /// The limits this connection started with.
    limits: Arc<crate::config::Limits>,
    session: ServerSession,
    writer: mpsc::Sender<WriterCommand>,
    /// Messages in the writer's channel.
    queued: writer::QueuedMessages,
    instance: Option<Arc<Instance>>,
    published: HashMap<u32, PublishedStream>,
    playing: HashMap<u32, String>,
    /// Set once the connection is refused: finish sending, then close.
    closing: bool,
    ignored_media: u64,
    /// The connect waiting for the application's decision.
    pending_connect: Option<ConnectRequest>,
    /// Events that arrived while the connect was pending, replayed once accepted.
    deferred: Vec<ServerEvent>,
    /// The script's commands for this client.
    script_commands: Option<mpsc::UnboundedReceiver<Box<ScriptCommand>>>,
    /// Our calls to the client (transaction id) that a script responder waits for (call id).
    script_calls: HashMap<u64, u64>,
    /// The client's calls waiting for the script's answer.
    pending_calls: usize,
}

/// Most events held while a connect waits for the application.
const MAX_DEFERRED_EVENTS: usize = 256;

async fn next_script_command(
    receiver: &mut Option<mpsc::UnboundedReceiver<Box<ScriptCommand>>>,
) -> Option<Box<ScriptCommand>> {
    match receiver {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

/// Serves one accepted socket to the end, logging how it ended.
pub async fn serve(socket: TcpStream, peer: SocketAddr, context: Arc<ServerContext>, id: u64) {
    let started = Instant::now();
    match run(socket, peer, context, id).await {
        Ok(summary) => info!(
            client = id,
            ip = %peer.ip(),
            bytes_in = summary.bytes_in,
            bytes_out = summary.bytes_out,
            frames_dropped = summary.frames_dropped,
            seconds = started.elapsed().as_secs_f32(),
            "disconnect"
        ),
        Err(ConnectionError::Io(error)) if peer_went_away(&error) => info!(
            client = id,
            ip = %peer.ip(),
            %error,
            seconds = started.elapsed().as_secs_f32(),
            "disconnect"
        ),
        Err(error) => warn!(client = id, ip = %peer.ip(), %error, "connection closed"),
    }
}

/// A peer that closed abruptly (players often do): an ordinary disconnect, not a fault.
fn peer_went_away(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        error.kind(),
        ConnectionReset | BrokenPipe | UnexpectedEof | ConnectionAborted
    )
}

struct Summary {
    bytes_in: u64,
    bytes_out: u64,
    frames_dropped: u64,
}

async fn run(
    mut socket: TcpStream,
    peer: SocketAddr,
    context: Arc<ServerContext>,
    id: u64,
) -> Result<Summary, ConnectionError> {
    let limits = context.limits();
    let handshake_timeout = Duration::from_secs(limits.handshake_timeout_secs);
    // Boxed: the handshake's state is 3 KB that the connection needs only for a moment.
    let remaining = tokio::time::timeout(handshake_timeout, Box::pin(handshake(&mut socket)))
        .await
        .map_err(|_| {
            ConnectionError::Handshake(format!(
                "not finished within {} s (handshake_timeout_secs)",
                limits.handshake_timeout_secs
            ))
        })??;

    let (reader, write_half) = socket.into_split();
    let (writer_tx, writer_rx) = mpsc::channel(limits.max_queued_messages.max(16));
    let queued = writer::QueuedMessages::default();
    let writer_task = tokio::spawn(writer::run(
        write_half,
        writer_rx,
        Duration::from_secs(limits.write_stall_timeout_secs),
        queued.clone(),
    ));

    let mut session_config = ServerSessionConfig::default();
    session_config.limits.max_message_size = limits.max_message_size;
    session_config.max_streams = limits.max_streams_per_connection;
    let mut connection = Connection {
        id,
        peer,
        context: context.clone(),
        limits: limits.clone(),
        session: ServerSession::new(session_config),
        writer: writer_tx,
        queued,
        instance: None,
        published: HashMap::new(),
        playing: HashMap::new(),
        closing: false,
        ignored_media: 0,
        pending_connect: None,
        deferred: Vec::new(),
        script_commands: None,
        script_calls: HashMap::new(),
        pending_calls: 0,
    };
    let idle_timeout = Duration::from_secs(limits.idle_timeout_secs);
    let mut last_heard = tokio::time::Instant::now();
    connection.session.receive_bytes(&remaining);
    let connect_deadline =
        tokio::time::Instant::now() + Duration::from_secs(limits.connect_timeout_secs);
    let mut shutdown = context.shutdown.subscribe();
    let mut result = connection.process_events();
    while result.is_ok() && !connection.closing {
        let connected = connection.session.is_connected();
        tokio::select! {
            ready = reader.readable() => match ready.and_then(|()| receive(&reader, &mut connection.session)) {
                Ok(0) => break,
                Ok(_) => {
                    last_heard = tokio::time::Instant::now();
                    result = connection.process_events();
                }
                // The readiness was stale; wait again.
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(error) => result = Err(error.into()),
            },
            _ = tokio::time::sleep_until(last_heard + idle_timeout), if connection.is_idle() => {
                result = Err(ConnectionError::Limit(format!(
                    "sent nothing for {} s while neither publishing nor playing (idle_timeout_secs)",
                    limits.idle_timeout_secs
                )));
            }
            _ = tokio::time::sleep_until(connect_deadline), if !connected => {
                result = Err(ConnectionError::Limit(format!(
                    "no connect within {} s (connect_timeout_secs)",
                    limits.connect_timeout_secs
                )));
            }
            command = next_script_command(&mut connection.script_commands) => match command {
                Some(command) => result = connection.on_script_command(*command),
                None => connection.script_commands = None,
            },
            _ = connection.writer.closed() => break,
            changed = shutdown.changed() => {
                let phase = if changed.is_ok() { *shutdown.borrow_and_update() } else { ShutdownPhase::Close };
                result = connection.on_shutdown(phase);
            }
        }
    }
    let bytes_in = connection.session.bytes_received() + HANDSHAKE_BYTES_FROM_CLIENT;
    connection.finish();
    drop(connection);
    // The writer sends what is queued (a rejection, say) and closes; bounded by its stall timeout.
    let (stats, write_result) = match writer_task.await {
        Ok(outcome) => outcome,
        Err(join_error) => (
            writer::WriterStats::default(),
            Err(std::io::Error::other(join_error.to_string())),
        ),
    };
    if let (Ok(()), Err(error)) = (&result, write_result) {
        debug!(client = id, %error, "writer ended");
    }
    result.map(|()| Summary {
        bytes_in,
        bytes_out: stats.bytes_written,
        frames_dropped: stats.frames_dropped,
    })
}

thread_local! {
    /// One receive buffer per runtime thread. A connection reads into it and hands the bytes to
    /// its session at once, so no connection holds a read buffer of its own while it waits
    /// (most of them are players, which send almost nothing).
    static RECEIVE_BUFFER: RefCell<Vec<u8>> = RefCell::new(vec![0; RECEIVE_BUFFER_SIZE]);
}

/// Reads what the socket has ready into `session`: the byte count, 0 at end of stream.
fn receive(reader: &OwnedReadHalf, session: &mut ServerSession) -> std::io::Result<usize> {
    RECEIVE_BUFFER.with(|buffer| {
        let mut buffer = buffer.borrow_mut();
        let count = reader.try_read(&mut buffer)?;
        session.receive_bytes(&buffer[..count]);
        Ok(count)
    })
}

/// Runs the server side of the handshake; returns the bytes that followed C2.
async fn handshake(socket: &mut TcpStream) -> Result<Vec<u8>, ConnectionError> {
    ascend_client::drive_handshake(socket, Handshake::server(), &[])
        .await
        .map_err(|error| match error {
            ascend_client::ClientError::Io(error) => ConnectionError::Io(error),
            ascend_client::ClientError::Closed => {
                ConnectionError::Handshake("client closed during the handshake".into())
            }
            other => ConnectionError::Handshake(other.to_string()),
        })
}

impl Connection {
    /// Handles every complete event, then hands what to send to the writer in one piece.
    fn process_events(&mut self) -> Result<(), ConnectionError> {
        while !self.closing {
            let Some(event) = self.session.next_event()? else {
                break;
            };
            self.handle(event)?;
        }
        self.flush()
    }

    fn flush(&mut self) -> Result<(), ConnectionError> {
        if self.session.has_outgoing() {
            let messages = self.session.take_outgoing();
            self.send_to_writer(WriterCommand::Messages(messages))?;
        }
        Ok(())
    }

    fn send_to_writer(&mut self, command: WriterCommand) -> Result<(), ConnectionError> {
        let limit = self.limits.max_queued_messages;
        if let WriterCommand::Messages(messages) = &command {
            if self.queued.add(messages.len()) > limit {
                return Err(ConnectionError::Limit(format!(
                    "more than {limit} messages queued for a client that does not read (max_queued_messages)"
                )));
            }
        }
        match self.writer.try_send(command) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(ConnectionError::Limit(format!(
                "{} messages queued for a client that does not read (max_queued_messages)",
                self.limits.max_queued_messages
            ))),
            // The writer ended (socket error): the read loop sees it and stops.
            Err(mpsc::error::TrySendError::Closed(_)) => Ok(()),
        }
    }

    /// Neither publishing nor playing (nor waiting for the application).
    fn is_idle(&self) -> bool {
        self.published.is_empty() && self.playing.is_empty() && self.pending_connect.is_none()
    }

    fn client_id(&self) -> String {
        self.id.to_string()
    }

    fn handle(&mut self, event: ServerEvent) -> Result<(), ConnectionError> {
        if self.pending_connect.is_some() {
            if self.deferred.len() >= MAX_DEFERRED_EVENTS {
                return Err(ConnectionError::Limit(format!(
                    "more than {MAX_DEFERRED_EVENTS} messages while the connect was pending"
                )));
            }
            self.deferred.push(event);
            return Ok(());
        }
        match event {
            ServerEvent::ConnectRequested(request) => self.on_connect(request),
            ServerEvent::CreateStreamRequested { transaction_id } => {
                self.session.create_stream(transaction_id);
            }
            ServerEvent::PublishRequested {
                stream_id,
                name,
                query,
                mode,
            } => self.on_publish(stream_id, name, query, mode.as_str()),
            ServerEvent::PlayRequested {
                stream_id,
                name,
                start,
                reset,
                ..
            } => self.on_play(stream_id, name, start, reset)?,
            ServerEvent::StreamClosed { stream_id, .. } => self.close_stream(stream_id)?,
            ServerEvent::Call { stream_id, command } => self.on_call(
                stream_id,
                &command.name,
                command.transaction_id,
                &command.args,
            ),
            ServerEvent::CallResponse {
                transaction_id,
                success,
                values,
            } => {
                if let Some(call_id) = self.script_calls.remove(&(transaction_id as u64)) {
                    if let Some(instance) = &self.instance {
                        instance.script_event(ScriptEvent::CallResponse {
                            call_id,
                            success,
                            values,
                        });
                    }
                }
            }
            ServerEvent::Audio {
                stream_id,
                timestamp,
                payload,
            } => self.on_media(stream_id, MediaFrame::audio(timestamp, payload)),
            ServerEvent::Video {
                stream_id,
                timestamp,
                payload,
            } => self.on_media(stream_id, MediaFrame::video(timestamp, payload)),
            ServerEvent::Data {
                stream_id,
                timestamp,
                values,
            } => self.on_data(stream_id, timestamp, values),
            ServerEvent::SharedObject(message) => {
                debug!(client = self.id, name = %message.name, "shared object message (not supported yet)");
            }
            ServerEvent::Pause { stream_id, paused } => {
                let Some(name) = self.playing.get(&stream_id).cloned() else {
                    return Ok(());
                };
                // Paused before the notice leaves, resumed after it: between a Pause.Notify
                // and the matching Unpause.Notify only sequence headers (if the publisher
                // changes them) reach the player.
                let notice = |code| {
                    WriterCommand::Messages(vec![ascend_rtmp::server::play_status_message(
                        stream_id, "status", code, &name,
                    )])
                };
                let pause = WriterCommand::Pause { stream_id, paused };
                if paused {
                    self.send_to_writer(pause)?;
                    self.send_to_writer(notice("NetStream.Pause.Notify"))?;
                } else {
                    self.send_to_writer(notice("NetStream.Unpause.Notify"))?;
                    self.send_to_writer(pause)?;
                }
            }
            ServerEvent::ReceiveMedia {
                stream_id,
                audio,
                enabled,
            } => {
                self.send_to_writer(WriterCommand::ReceiveMedia {
                    stream_id,
                    audio,
                    enabled,
                })?;
            }
            ServerEvent::BufferLength { .. } | ServerEvent::PingResponse(_) => {}
            ServerEvent::Ignored { reason } => {
                warn!(client = self.id, ip = %self.peer.ip(), %reason, "ignored message");
            }
        }
        Ok(())
    }

    fn on_connect(&mut self, request: ConnectRequest) {
        let apps = &self.context.applications;
        let valid_instance = crate::applications::validate_folder_name(&request.instance).is_ok();
        if !apps.app_exists(&request.app_name) || !valid_instance {
            warn!(
                client = self.id,
                ip = %self.peer.ip(),
                app = %request.app_name,
                instance = %request.instance,
                "connect refused: no such application (NetConnection.Connect.InvalidApp)"
            );
            self.session.reject_connect(
                &request,
                "NetConnection.Connect.InvalidApp",
                &format!("Application ({}) does not exist.", request.app_name),
                None,
            );
            self.closing = true;
            return;
        }
        let instance = apps.instance(&request.app_name, &request.instance);
        let info = ClientInfo {
            id: self.id,
            ip: self.peer.ip().to_string(),
            agent: request.flash_ver.clone(),
            referrer: request.swf_url.clone(),
            page_url: request.page_url.clone(),
            uri: request.tc_url.clone(),
            protocol: "rtmp".to_string(),
        };
        let has_script = instance.has_script();
        let limit = self.limits.max_pending_connects;
        if has_script && instance.pending_connects() >= limit {
            warn!(
                client = self.id,
                ip = %self.peer.ip(),
                instance = %instance.full_name(),
                limit,
                "connect refused: too many connects waiting for the application (max_pending_connects)"
            );
            self.session.reject_connect(
                &request,
                "NetConnection.Connect.Rejected",
                "Too many connections are waiting for the application.",
                None,
            );
            self.closing = true;
            return;
        }
        self.script_commands = Some(instance.add_client(info.clone(), !has_script));
        self.instance = Some(instance.clone());
        if has_script
            && instance.script_event(ScriptEvent::Connect {
                client: info,
                args: request.args.clone(),
            })
        {
            debug!(client = self.id, app = %request.app_name, instance = %request.instance, "connect waits for the application");
            self.pending_connect = Some(request);
        } else {
            instance.mark_accepted(self.id);
            self.accept(request);
        }
    }

    fn accept(&mut self, request: ConnectRequest) {
        info!(
            client = self.id,
            ip = %self.peer.ip(),
            app = %request.app_name,
            instance = %request.instance,
            agent = %request.flash_ver,
            tc_url = %request.tc_url,
            "connect"
        );
        self.session.accept_connect(&request);
    }

    /// What the application's script decided or asked for this client.
    fn on_script_command(&mut self, command: ScriptCommand) -> Result<(), ConnectionError> {
        match command {
            ScriptCommand::Accept { .. } => {
                if let Some(request) = self.pending_connect.take() {
                    self.accept(request);
                    for event in std::mem::take(&mut self.deferred) {
                        self.handle(event)?;
                    }
                }
            }
            ScriptCommand::Reject { application, .. } => {
                if let Some(request) = self.pending_connect.take() {
                    warn!(
                        client = self.id,
                        ip = %self.peer.ip(),
                        app = %request.app_name,
                        instance = %request.instance,
                        "connect refused by the application (NetConnection.Connect.Rejected)"
                    );
                    let application = (application != AmfValue::Null).then_some(application);
                    self.session.reject_connect(
                        &request,
                        "NetConnection.Connect.Rejected",
                        "Connection failed: Application rejected connection.",
                        application,
                    );
                    self.closing = true;
                }
            }
            ScriptCommand::CallResult {
                transaction_id,
                result,
                ..
            } => {
                self.pending_calls = self.pending_calls.saturating_sub(1);
                match result {
                    Ok(value) => self.session.result(transaction_id, &[value]),
                    Err(description) => self.session.call_failed(transaction_id, &description),
                }
            }
            ScriptCommand::CallClient {
                method,
                args,
                call_id,
                ..
            } => {
                let transaction_id = self.session.call(&method, &args, call_id != 0);
                if call_id != 0 {
                    self.script_calls.insert(transaction_id as u64, call_id);
                }
            }
            ScriptCommand::Ping { .. } => self.session.ping(0),
            ScriptCommand::Disconnect { .. } => {
                info!(client = self.id, "disconnected by the application");
                self.closing = true;
            }
            // Instance-level commands stop at the router; none reach a connection.
            _ => {}
        }
        self.flush()
    }

    fn instance(&self) -> Option<Arc<Instance>> {
        self.instance.clone()
    }

    fn on_publish(&mut self, stream_id: u32, name: String, query: String, mode: &str) {
        let Some(instance) = self.instance() else {
            return;
        };
        if let Err(error) = validate_stream_name(&name) {
            warn!(client = self.id, stream = %name, %error, "publish refused: bad name");
            self.session.publish_failed(
                stream_id,
                &name,
                "NetStream.Publish.BadName",
                &format!("Invalid stream name: {error}."),
            );
            return;
        }
        if self.published.contains_key(&stream_id) || self.playing.contains_key(&stream_id) {
            self.session.publish_failed(
                stream_id,
                &name,
                "NetStream.Publish.BadName",
                "This stream is already in use on this connection.",
            );
            return;
        }
        if !instance.may_publish(self.id, &name) {
            warn!(client = self.id, stream = %name, "publish refused: no write access (client.writeAccess)");
            self.session.publish_failed(
                stream_id,
                &name,
                "NetStream.Publish.BadName",
                &format!("No write access to {name}."),
            );
            return;
        }
        match instance.hub().publish(&name, self.id) {
            Ok(publisher) => {
                info!(
                    client = self.id,
                    app = instance.app(),
                    instance = instance.name(),
                    stream = %name,
                    query = %query,
                    mode,
                    "publish"
                );
                self.session
                    .publish_started(stream_id, &name, &self.client_id());
                instance.published(self.id, &name, &query);
                self.published
                    .insert(stream_id, PublishedStream { name, publisher });
            }
            Err(PublishError::AlreadyPublishing { .. }) => {
                warn!(
                    client = self.id,
                    app = instance.app(),
                    instance = instance.name(),
                    stream = %name,
                    "publish refused: already publishing (NetStream.Publish.BadName)"
                );
                self.session.publish_failed(
                    stream_id,
                    &name,
                    "NetStream.Publish.BadName",
                    &format!("{name} is already being published."),
                );
            }
        }
    }

    fn on_play(
        &mut self,
        stream_id: u32,
        name: String,
        start: f64,
        reset: bool,
    ) -> Result<(), ConnectionError> {
        let Some(instance) = self.instance() else {
            return Ok(());
        };
        if let Err(error) = validate_stream_name(&name) {
            warn!(client = self.id, stream = %name, %error, "play refused: bad name");
            self.session
                .play_status(stream_id, "error", "NetStream.Play.StreamNotFound", &name);
            return Ok(());
        }
        if self.published.contains_key(&stream_id) {
            self.session
                .play_status(stream_id, "error", "NetStream.Play.Failed", &name);
            return Ok(());
        }
        if !instance.may_play(self.id, &name) {
            warn!(client = self.id, stream = %name, "play refused: no read access (client.readAccess)");
            self.session
                .play_status(stream_id, "error", "NetStream.Play.Failed", &name);
            return Ok(());
        }
        instance.script_event(ScriptEvent::Play {
            client_id: self.id,
            name: name.clone(),
        });
        let subscription = instance.hub().subscribe(&name);
        info!(
            client = self.id,
            app = instance.app(),
            instance = instance.name(),
            stream = %name,
            start,
            live = subscription.is_live(),
            "play"
        );
        self.session
            .play_started(stream_id, &name, reset, &self.client_id());
        // Play.Start must reach the writer before the first frame.
        self.flush()?;
        self.playing.insert(stream_id, name.clone());
        self.send_to_writer(WriterCommand::Play {
            stream_id,
            name,
            subscription: Box::new(subscription),
        })
    }

    fn close_stream(&mut self, stream_id: u32) -> Result<(), ConnectionError> {
        if let Some(published) = self.published.remove(&stream_id) {
            self.log_unpublish(&published.name, "closeStream");
            self.session.unpublish_succeeded(stream_id, &published.name);
        }
        if let Some(name) = self.playing.remove(&stream_id) {
            info!(client = self.id, stream = %name, "stop playing");
            self.send_to_writer(WriterCommand::Stop { stream_id })?;
        }
        Ok(())
    }

    fn log_unpublish(&self, name: &str, why: &str) {
        if let Some(instance) = &self.instance {
            instance.unpublished(self.id, name);
            info!(
                client = self.id,
                app = instance.app(),
                instance = instance.name(),
                stream = %name,
                reason = why,
                "unpublish"
            );
        }
    }

    fn on_call(&mut self, stream_id: u32, name: &str, transaction_id: f64, args: &[AmfValue]) {
        let script = self.instance.clone().filter(|i| i.has_script());
        if let Some(instance) = &script {
            let encoder_hook = matches!(
                name,
                "releaseStream" | "FCPublish" | "FCUnpublish" | "FCSubscribe"
            );
            if !matches!(name, "_checkbw" | "getStreamLength") {
                let wants_answer = !encoder_hook && transaction_id != 0.0;
                let limit = self.limits.max_pending_calls;
                if wants_answer && self.pending_calls >= limit {
                    warn!(client = self.id, method = name, limit, "call refused: too many calls waiting for the application (max_pending_calls)");
                    self.session.call_failed(
                        transaction_id,
                        "Too many calls are waiting for the application.",
                    );
                    return;
                }
                if wants_answer {
                    self.pending_calls += 1;
                }
                // The script answers application methods; encoder hooks it may define are
                // called too, but answered here the way encoders expect.
                instance.script_event(ScriptEvent::Call {
                    client_id: self.id,
                    transaction_id: if encoder_hook { 0.0 } else { transaction_id },
                    method: name.to_string(),
                    args: args.to_vec(),
                });
                if !encoder_hook {
                    return;
                }
            }
        }
        let stream_name = args.first().and_then(AmfValue::as_str).unwrap_or("");
        let notification = |code: &str| [build::status_info("status", code, stream_name, vec![])];
        match name {
            // Encoders announce and release stream names around publish; answered the way
            // ffmpeg and OBS expect, whatever the stream.
            "releaseStream" | "_checkbw" => self.session.result(transaction_id, &[]),
            "FCPublish" => {
                self.session.notify(
                    stream_id,
                    "onFCPublish",
                    &notification("NetStream.Publish.Start"),
                );
                self.session.result(transaction_id, &[]);
            }
            "FCUnpublish" => {
                self.session.notify(
                    stream_id,
                    "onFCUnpublish",
                    &notification("NetStream.Unpublish.Success"),
                );
                self.session.result(transaction_id, &[]);
            }
            "FCSubscribe" => {
                self.session.notify(
                    stream_id,
                    "onFCSubscribe",
                    &notification("NetStream.Play.Start"),
                );
                self.session.result(transaction_id, &[]);
            }
            "getStreamLength" => self
                .session
                .result(transaction_id, &[AmfValue::Number(0.0)]),
            _ => {
                debug!(
                    client = self.id,
                    method = name,
                    "call to a method the application does not define"
                );
                self.session
                    .call_failed(transaction_id, &format!("Method not found ({name})."));
            }
        }
    }

    fn on_media(&mut self, stream_id: u32, frame: MediaFrame) {
        let Some(published) = self.published.get(&stream_id) else {
            self.ignored_media += 1;
            if self.ignored_media == 1 {
                warn!(
                    client = self.id,
                    stream_id, "media on a stream that is not publishing (ignored)"
                );
            }
            return;
        };
        if published.publisher.is_replaced() {
            if let Some(published) = self.published.remove(&stream_id) {
                self.log_unpublish(&published.name, "taken over by a new publisher");
                self.session.unpublish_succeeded(stream_id, &published.name);
            }
            return;
        }
        published.publisher.send(frame);
    }

    fn on_data(&mut self, stream_id: u32, timestamp: u32, values: Vec<AmfValue>) {
        let Some(published) = self.published.get(&stream_id) else {
            debug!(
                client = self.id,
                stream_id, "data on a stream that is not publishing (ignored)"
            );
            return;
        };
        let handler = values.first().and_then(AmfValue::as_str).unwrap_or("");
        match handler {
            "@setDataFrame" if values.len() >= 2 => {
                let body = Bytes::from(encode_amf0_values(&values[1..]));
                published.publisher.set_metadata(body);
            }
            "onMetaData" => {
                published
                    .publisher
                    .set_metadata(Bytes::from(encode_amf0_values(&values)));
            }
            "@setDataFrame" | "@clearDataFrame" | "" => {
                debug!(
                    client = self.id,
                    handler, "data message without content (ignored)"
                );
            }
            _ => published.publisher.send(MediaFrame::data(
                timestamp,
                Bytes::from(encode_amf0_values(&values)),
            )),
        }
    }

    /// The server is shutting down: first stop publishing (players get UnpublishNotify), then
    /// close after what is queued has been sent.
    fn on_shutdown(&mut self, phase: ShutdownPhase) -> Result<(), ConnectionError> {
        match phase {
            ShutdownPhase::Running => {}
            ShutdownPhase::Unpublish => {
                let streams: Vec<u32> = self.published.keys().copied().collect();
                for stream_id in streams {
                    if let Some(published) = self.published.remove(&stream_id) {
                        self.log_unpublish(&published.name, "server shutdown");
                        self.session.unpublish_succeeded(stream_id, &published.name);
                    }
                }
            }
            ShutdownPhase::Close => {
                info!(client = self.id, "closing: server shutdown");
                self.closing = true;
            }
        }
        self.flush()
    }

    /// The connection is over: unpublish, leave the instance.
    fn finish(&mut self) {
        let published: Vec<PublishedStream> = self.published.drain().map(|(_, p)| p).collect();
        for stream in published {
            let name = stream.name.clone();
            drop(stream);
            self.log_unpublish(&name, "disconnect");
        }
        if let Some(instance) = self.instance.take() {
            instance.remove_client(self.id);
            instance.script_event(ScriptEvent::Disconnect { client_id: self.id });
        }
    }
}
