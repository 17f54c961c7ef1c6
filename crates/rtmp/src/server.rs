//! The server role of an RTMP connection: NetConnection and NetStream commands as events, and
//! the answers real clients (ffmpeg, OBS, Flash) expect.
//!
//! [`ServerSession`] decides nothing: every request becomes a [`ServerEvent`] and the owner
//! answers with a method (`accept_connect`, `reject_connect`, `publish_started`, `play_started`,
//! `result`, `error`...). Everything to send collects in the outbox, taken with
//! [`ServerSession::take_outgoing`] and written by the connection's one writer.

use crate::amf::AmfValue;
use crate::chunk::{ChunkLimits, RawMessage};
use crate::message::{build, Command, Message, SharedObjectMessage, UserControl};
use crate::protocol::{ProtocolCore, ProtocolError};
use bytes::Bytes;

/// The version we announce in connect answers.
pub const FMS_VERSION: &str = "FMS/3,5,7,7009";

/// Settings of the server side of a connection.
#[derive(Debug, Clone)]
pub struct ServerSessionConfig {
    /// Chunk limits for what the client sends.
    pub limits: ChunkLimits,
    /// Chunk size we send with.
    pub chunk_size: u32,
    /// Window Acknowledgement Size we ask of the client.
    pub window_ack_size: u32,
    /// Set Peer Bandwidth we send.
    pub peer_bandwidth: u32,
    /// Most NetStreams a client may create.
    pub max_streams: u32,
}

impl Default for ServerSessionConfig {
    fn default() -> Self {
        ServerSessionConfig {
            limits: ChunkLimits::default(),
            chunk_size: 60_000,
            window_ack_size: 2_500_000,
            peer_bandwidth: 2_500_000,
            max_streams: 64,
        }
    }
}

/// Everything a client said in `connect`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectRequest {
    /// Transaction id of the connect command (answer with it).
    pub transaction_id: f64,
    /// The application name, without instance or query (`livestreams`).
    pub app_name: String,
    /// The instance name (`_definst_` when none was given).
    pub instance: String,
    /// The query string of the app field, without `?` (empty when none).
    pub query: String,
    /// The whole `app` field as sent.
    pub app_field: String,
    /// `tcUrl`.
    pub tc_url: String,
    /// `flashVer` (Client.agent).
    pub flash_ver: String,
    /// `swfUrl` (Client.referrer).
    pub swf_url: String,
    /// `pageUrl`.
    pub page_url: String,
    /// `objectEncoding` (0 or 3).
    pub object_encoding: f64,
    /// The whole command object, every field kept in order.
    pub command_object: AmfValue,
    /// The extra connect arguments (`onConnect(client, ...args)`).
    pub args: Vec<AmfValue>,
}

/// How a stream is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishMode {
    /// Live only.
    Live,
    /// Live and recorded, replacing a recording.
    Record,
    /// Live and appended to a recording.
    Append,
}

impl PublishMode {
    /// The mode's name as sent in `publish`.
    pub fn as_str(self) -> &'static str {
        match self {
            PublishMode::Live => "live",
            PublishMode::Record => "record",
            PublishMode::Append => "append",
        }
    }
}

/// Splits `name?query` into its parts.
pub fn split_query(name: &str) -> (String, String) {
    match name.split_once('?') {
        Some((name, query)) => (name.to_string(), query.to_string()),
        None => (name.to_string(), String::new()),
    }
}

/// What the client asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// `connect`: answer with accept_connect or reject_connect (later is fine: the client waits).
    ConnectRequested(ConnectRequest),
    /// `createStream`: answer with create_stream.
    CreateStreamRequested {
        /// Transaction id.
        transaction_id: f64,
    },
    /// `publish` on a NetStream.
    PublishRequested {
        /// The NetStream.
        stream_id: u32,
        /// Stream name without query.
        name: String,
        /// Query string (publishQueryString).
        query: String,
        /// live / record / append.
        mode: PublishMode,
    },
    /// `play` on a NetStream.
    PlayRequested {
        /// The NetStream.
        stream_id: u32,
        /// Stream name without query.
        name: String,
        /// Query string.
        query: String,
        /// Start (-2 live or recorded, -1 live, ≥0 seconds into a recording).
        start: f64,
        /// Duration (-1 all).
        duration: f64,
        /// Reset the playlist.
        reset: bool,
    },
    /// `closeStream` on a NetStream or `deleteStream(id)`: it stops publishing or playing.
    StreamClosed {
        /// The NetStream.
        stream_id: u32,
        /// True for deleteStream (the id is gone), false for closeStream.
        deleted: bool,
    },
    /// Any other command: releaseStream, FCPublish, FCUnpublish, FCSubscribe, `_checkbw`,
    /// getStreamLength, or a method of the application (`nc.call`).
    Call {
        /// The NetStream it came on (0: the connection).
        stream_id: u32,
        /// The command.
        command: Command,
    },
    /// The client answered a call we made (`_result` / `_error`).
    CallResponse {
        /// Our transaction id.
        transaction_id: f64,
        /// True for `_result`.
        success: bool,
        /// The values after the command object.
        values: Vec<AmfValue>,
    },
    /// Audio on a NetStream.
    Audio {
        /// The NetStream.
        stream_id: u32,
        /// Timestamp.
        timestamp: u32,
        /// FLV audio tag body.
        payload: Bytes,
    },
    /// Video on a NetStream.
    Video {
        /// The NetStream.
        stream_id: u32,
        /// Timestamp.
        timestamp: u32,
        /// FLV video tag body.
        payload: Bytes,
    },
    /// A data message on a NetStream (`@setDataFrame`, `onMetaData`, `onCuePoint`...).
    Data {
        /// The NetStream.
        stream_id: u32,
        /// Timestamp.
        timestamp: u32,
        /// Handler name then values.
        values: Vec<AmfValue>,
    },
    /// A shared object message.
    SharedObject(SharedObjectMessage),
    /// `pause` on a NetStream.
    Pause {
        /// The NetStream.
        stream_id: u32,
        /// True to pause, false to resume.
        paused: bool,
    },
    /// `receiveAudio` / `receiveVideo`.
    ReceiveMedia {
        /// The NetStream.
        stream_id: u32,
        /// True for audio, false for video.
        audio: bool,
        /// Receive or not.
        enabled: bool,
    },
    /// The client's buffer length.
    BufferLength {
        /// The NetStream.
        stream_id: u32,
        /// Milliseconds.
        buffer_ms: u32,
    },
    /// The client answered our ping.
    PingResponse(u32),
    /// Something was received that could not be used; the connection goes on.
    Ignored {
        /// What and why, for the log.
        reason: String,
    },
}

/// The server side of one RTMP connection, after the handshake.
pub struct ServerSession {
    core: ProtocolCore,
    config: ServerSessionConfig,
    connected: bool,
    connect_pending: bool,
    object_encoding: f64,
    next_stream_id: u32,
    open_streams: Vec<u32>,
    next_transaction_id: f64,
}

impl ServerSession {
    /// A session waiting for `connect`.
    pub fn new(config: ServerSessionConfig) -> Self {
        ServerSession {
            core: ProtocolCore::new(config.limits),
            config,
            connected: false,
            connect_pending: false,
            object_encoding: 0.0,
            next_stream_id: 1,
            open_streams: Vec::new(),
            next_transaction_id: 1.0,
        }
    }

    /// Adds bytes received from the client.
    pub fn receive_bytes(&mut self, bytes: &[u8]) {
        self.core.receive_bytes(bytes);
    }

    /// Total bytes received.
    pub fn bytes_received(&self) -> u64 {
        self.core.bytes_received()
    }

    /// Messages to send, in order.
    pub fn take_outgoing(&mut self) -> Vec<RawMessage> {
        self.core.take_outgoing()
    }

    /// True when messages wait to be sent.
    pub fn has_outgoing(&self) -> bool {
        self.core.has_outgoing()
    }

    /// True once the connect was accepted.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// The next event, `Ok(None)` when more bytes are needed. An error ends the connection.
    pub fn next_event(&mut self) -> Result<Option<ServerEvent>, ProtocolError> {
        loop {
            let Some(incoming) = self.core.next_incoming()? else {
                return Ok(None);
            };
            let stream_id = incoming.stream_id;
            let message = match incoming.message {
                Ok(message) => message,
                Err(error) => {
                    return Ok(Some(ServerEvent::Ignored {
                        reason: error.to_string(),
                    }))
                }
            };
            // Before any connect, only connect is meaningful. While a connect waits for the
            // application's decision, later messages pass through: the owner holds them until
            // it decides (FMS queues them the same way).
            let awaiting_connect = !self.connected && !self.connect_pending;
            if awaiting_connect && !matches!(&message, Message::Command(c) if c.name == "connect") {
                if let Message::UserControl(_) = message {
                    continue;
                }
                return Ok(Some(ServerEvent::Ignored {
                    reason: format!("{} before connect", describe(&message)),
                }));
            }
            let event = match message {
                Message::Command(command) => self.command_event(stream_id, command),
                Message::Audio(payload) => Some(ServerEvent::Audio {
                    stream_id,
                    timestamp: incoming.timestamp,
                    payload,
                }),
                Message::Video(payload) => Some(ServerEvent::Video {
                    stream_id,
                    timestamp: incoming.timestamp,
                    payload,
                }),
                Message::Data(values) => Some(ServerEvent::Data {
                    stream_id,
                    timestamp: incoming.timestamp,
                    values,
                }),
                Message::SharedObject(so) => Some(ServerEvent::SharedObject(so)),
                Message::UserControl(UserControl::SetBufferLength {
                    stream_id,
                    buffer_ms,
                }) => Some(ServerEvent::BufferLength {
                    stream_id,
                    buffer_ms,
                }),
                Message::UserControl(UserControl::PingResponse(time)) => {
                    Some(ServerEvent::PingResponse(time))
                }
                Message::UserControl(_) => None,
                Message::Unknown(type_id) => Some(ServerEvent::Ignored {
                    reason: format!("unknown message type {type_id}"),
                }),
                other => Some(ServerEvent::Ignored {
                    reason: format!("unexpected {}", describe(&other)),
                }),
            };
            if let Some(event) = event {
                return Ok(Some(event));
            }
        }
    }

    fn command_event(&mut self, stream_id: u32, command: Command) -> Option<ServerEvent> {
        let arg_str = |i: usize| {
            command
                .args
                .get(i)
                .and_then(AmfValue::as_str)
                .unwrap_or("")
                .to_string()
        };
        let arg_num = |i: usize, default: f64| {
            command
                .args
                .get(i)
                .and_then(AmfValue::as_f64)
                .unwrap_or(default)
        };
        Some(match command.name.as_str() {
            "connect" => {
                if self.connected || self.connect_pending {
                    return Some(ServerEvent::Ignored {
                        reason: "second connect on one connection".into(),
                    });
                }
                self.connect_pending = true;
                ServerEvent::ConnectRequested(parse_connect(command))
            }
            "createStream" => ServerEvent::CreateStreamRequested {
                transaction_id: command.transaction_id,
            },
            "publish" => {
                let (name, query) = split_query(&arg_str(0));
                let mode = match arg_str(1).as_str() {
                    "record" => PublishMode::Record,
                    "append" | "appendWithGap" => PublishMode::Append,
                    _ => PublishMode::Live,
                };
                ServerEvent::PublishRequested {
                    stream_id,
                    name,
                    query,
                    mode,
                }
            }
            "play" => {
                let (name, query) = split_query(&arg_str(0));
                let reset = match command.args.get(3) {
                    Some(AmfValue::Boolean(reset)) => *reset,
                    Some(AmfValue::Number(n)) => *n != 0.0,
                    _ => true,
                };
                ServerEvent::PlayRequested {
                    stream_id,
                    name,
                    query,
                    start: arg_num(1, -2.0),
                    duration: arg_num(2, -1.0),
                    reset,
                }
            }
            "closeStream" => ServerEvent::StreamClosed {
                stream_id,
                deleted: false,
            },
            "deleteStream" => {
                let id = arg_num(0, stream_id as f64) as u32;
                self.open_streams.retain(|&s| s != id);
                ServerEvent::StreamClosed {
                    stream_id: id,
                    deleted: true,
                }
            }
            "pause" => ServerEvent::Pause {
                stream_id,
                paused: matches!(command.args.first(), Some(AmfValue::Boolean(true))),
            },
            "receiveAudio" | "receiveVideo" => ServerEvent::ReceiveMedia {
                stream_id,
                audio: command.name == "receiveAudio",
                enabled: !matches!(command.args.first(), Some(AmfValue::Boolean(false))),
            },
            "_result" | "_error" => ServerEvent::CallResponse {
                transaction_id: command.transaction_id,
                success: command.name == "_result",
                values: command.args,
            },
            _ => ServerEvent::Call { stream_id, command },
        })
    }

    /// Accepts the connection: window, bandwidth, chunk size, then `_result` with
    /// NetConnection.Connect.Success, all queued together so they leave in one write.
    pub fn accept_connect(&mut self, request: &ConnectRequest) {
        self.connected = true;
        self.connect_pending = false;
        self.object_encoding = request.object_encoding;
        self.core
            .send(build::window_ack_size(self.config.window_ack_size));
        self.core
            .send(build::set_peer_bandwidth(self.config.peer_bandwidth, 2));
        self.core
            .send(build::set_chunk_size(self.config.chunk_size));
        let properties = AmfValue::object([
            ("fmsVer", AmfValue::string(FMS_VERSION)),
            ("capabilities", AmfValue::Number(31.0)),
            ("mode", AmfValue::Number(1.0)),
        ]);
        let info = build::status_info(
            "status",
            "NetConnection.Connect.Success",
            "Connection succeeded.",
            vec![
                (
                    "objectEncoding".into(),
                    AmfValue::Number(request.object_encoding),
                ),
                (
                    "data".into(),
                    AmfValue::EcmaArray(vec![("version".into(), AmfValue::string("3,5,7,7009"))]),
                ),
            ],
        );
        self.core.send(build::command(
            0,
            "_result",
            request.transaction_id,
            properties,
            &[info],
        ));
    }

    /// Refuses the connection with `code` (NetConnection.Connect.Rejected or InvalidApp);
    /// `application` is the script's error object. Close the connection after sending.
    pub fn reject_connect(
        &mut self,
        request: &ConnectRequest,
        code: &str,
        description: &str,
        application: Option<AmfValue>,
    ) {
        self.connect_pending = false;
        let mut extra = Vec::new();
        if let Some(application) = application {
            extra.push(("application".to_string(), application));
        }
        let info = build::status_info("error", code, description, extra);
        self.core.send(build::command(
            0,
            "_error",
            request.transaction_id,
            AmfValue::Null,
            &[info],
        ));
    }

    /// Answers createStream with a new stream id, or `_error` past the stream limit.
    pub fn create_stream(&mut self, transaction_id: f64) -> Option<u32> {
        if self.open_streams.len() as u32 >= self.config.max_streams {
            let info = build::status_info(
                "error",
                "NetConnection.Call.Failed",
                "Too many streams on this connection.",
                vec![],
            );
            self.core.send(build::command(
                0,
                "_error",
                transaction_id,
                AmfValue::Null,
                &[info],
            ));
            return None;
        }
        let id = self.next_stream_id;
        self.next_stream_id += 1;
        self.open_streams.push(id);
        self.core.send(build::command(
            0,
            "_result",
            transaction_id,
            AmfValue::Null,
            &[AmfValue::Number(id as f64)],
        ));
        Some(id)
    }

    /// Sends `onStatus(info)` on a NetStream.
    pub fn stream_status(&mut self, stream_id: u32, info: AmfValue) {
        self.core.send(build::command(
            stream_id,
            "onStatus",
            0.0,
            AmfValue::Null,
            &[info],
        ));
    }

    /// Sends `onStatus` on the connection (stream 0).
    pub fn connection_status(&mut self, info: AmfValue) {
        self.stream_status(0, info);
    }

    /// Publishing started: StreamBegin and NetStream.Publish.Start.
    pub fn publish_started(&mut self, stream_id: u32, name: &str, client_id: &str) {
        self.core
            .send(build::user_control(&UserControl::StreamBegin(stream_id)));
        let info = build::status_info(
            "status",
            "NetStream.Publish.Start",
            &format!("{name} is now published."),
            vec![
                ("details".into(), AmfValue::string(name)),
                ("clientid".into(), AmfValue::string(client_id)),
            ],
        );
        self.stream_status(stream_id, info);
    }

    /// Publishing refused (NetStream.Publish.BadName, Record.NoAccess...).
    pub fn publish_failed(&mut self, stream_id: u32, name: &str, code: &str, description: &str) {
        let info = build::status_info(
            "error",
            code,
            description,
            vec![("details".into(), AmfValue::string(name))],
        );
        self.stream_status(stream_id, info);
    }

    /// Publishing stopped: NetStream.Unpublish.Success.
    pub fn unpublish_succeeded(&mut self, stream_id: u32, name: &str) {
        let info = build::status_info(
            "status",
            "NetStream.Unpublish.Success",
            &format!("{name} is now unpublished."),
            vec![("details".into(), AmfValue::string(name))],
        );
        self.stream_status(stream_id, info);
    }

    /// Playing started: StreamBegin, Play.Reset (when asked), Play.Start and `|RtmpSampleAccess`,
    /// in the order FMS uses. (FMS also sends a NetStream.Data.Start data message; ffmpeg shows
    /// it as an extra data stream of unknown codec, so it is left out.)
    pub fn play_started(&mut self, stream_id: u32, name: &str, reset: bool, client_id: &str) {
        self.core
            .send(build::user_control(&UserControl::StreamBegin(stream_id)));
        let details = || {
            vec![
                ("details".to_string(), AmfValue::string(name)),
                ("clientid".to_string(), AmfValue::string(client_id)),
            ]
        };
        if reset {
            let info = build::status_info(
                "status",
                "NetStream.Play.Reset",
                &format!("Playing and resetting {name}."),
                details(),
            );
            self.stream_status(stream_id, info);
        }
        let info = build::status_info(
            "status",
            "NetStream.Play.Start",
            &format!("Started playing {name}."),
            details(),
        );
        self.stream_status(stream_id, info);
        self.core.send(build::data(
            stream_id,
            0,
            &[
                AmfValue::string("|RtmpSampleAccess"),
                AmfValue::Boolean(true),
                AmfValue::Boolean(true),
            ],
        ));
    }

    /// A status on a playing stream (Play.PublishNotify, Play.UnpublishNotify, Play.Stop...).
    pub fn play_status(&mut self, stream_id: u32, level: &str, code: &str, name: &str) {
        self.core
            .send(play_status_message(stream_id, level, code, name));
    }

    /// Sends a User Control event.
    pub fn user_control(&mut self, event: UserControl) {
        self.core.send(build::user_control(&event));
    }

    /// Answers a call with `_result(transaction_id, null, ...values)`.
    pub fn result(&mut self, transaction_id: f64, values: &[AmfValue]) {
        if transaction_id == 0.0 {
            return;
        }
        self.core.send(build::command(
            0,
            "_result",
            transaction_id,
            AmfValue::Null,
            values,
        ));
    }

    /// Answers a call with `_error` carrying NetConnection.Call.Failed.
    pub fn call_failed(&mut self, transaction_id: f64, description: &str) {
        if transaction_id == 0.0 {
            return;
        }
        let info = build::status_info("error", "NetConnection.Call.Failed", description, vec![]);
        self.core.send(build::command(
            0,
            "_error",
            transaction_id,
            AmfValue::Null,
            &[info],
        ));
    }

    /// Invokes `method` on the client, returning the transaction id its answer will carry
    /// (0 when `expect_answer` is false).
    pub fn call(&mut self, method: &str, args: &[AmfValue], expect_answer: bool) -> f64 {
        let transaction_id = if expect_answer {
            self.next_transaction_id += 1.0;
            self.next_transaction_id
        } else {
            0.0
        };
        self.core.send(build::command(
            0,
            method,
            transaction_id,
            AmfValue::Null,
            args,
        ));
        transaction_id
    }

    /// Sends a command on a NetStream without a transaction (`onFCPublish`...).
    pub fn notify(&mut self, stream_id: u32, method: &str, args: &[AmfValue]) {
        self.core
            .send(build::command(stream_id, method, 0.0, AmfValue::Null, args));
    }

    /// Sends a ping request.
    pub fn ping(&mut self, time: u32) {
        self.core
            .send(build::user_control(&UserControl::PingRequest(time)));
    }
}

/// `onStatus` for a playing stream, with the description FMS gives each code. A free function
/// because the connection's writer sends these (PublishNotify, UnpublishNotify) as it reads the
/// stream, without the session.
pub fn play_status_message(stream_id: u32, level: &str, code: &str, name: &str) -> RawMessage {
    let description = match code {
        "NetStream.Play.PublishNotify" => format!("{name} is now published."),
        "NetStream.Play.UnpublishNotify" => format!("{name} is now unpublished."),
        "NetStream.Play.Stop" => format!("Stopped playing {name}."),
        "NetStream.Play.StreamNotFound" => format!("Failed to play {name}; stream not found."),
        "NetStream.Pause.Notify" => format!("Pausing {name}."),
        "NetStream.Unpause.Notify" => format!("Unpausing {name}."),
        _ => String::new(),
    };
    let info = build::status_info(
        level,
        code,
        &description,
        vec![("details".into(), AmfValue::string(name))],
    );
    build::command(stream_id, "onStatus", 0.0, AmfValue::Null, &[info])
}

fn describe(message: &Message) -> String {
    match message {
        Message::Command(c) => format!("command {:?}", c.name),
        Message::Data(values) => format!(
            "data message {:?}",
            values.first().and_then(AmfValue::as_str).unwrap_or("")
        ),
        Message::Audio(_) => "audio".into(),
        Message::Video(_) => "video".into(),
        Message::SharedObject(so) => format!("shared object message {:?}", so.name),
        other => format!("{other:?}").chars().take(60).collect(),
    }
}

fn parse_connect(command: Command) -> ConnectRequest {
    let object = &command.command_object;
    let text = |key: &str| object.get_str(key).unwrap_or("").to_string();
    let app_field = text("app");
    let (path, query) = split_query(&app_field);
    let path = path.trim_matches('/');
    let (app_name, instance) = match path.split_once('/') {
        Some((app, instance)) if !instance.is_empty() => (app.to_string(), instance.to_string()),
        Some((app, _)) => (app.to_string(), "_definst_".to_string()),
        None => (path.to_string(), "_definst_".to_string()),
    };
    ConnectRequest {
        transaction_id: command.transaction_id,
        app_name,
        instance,
        query,
        app_field,
        tc_url: text("tcUrl"),
        flash_ver: text("flashVer"),
        swf_url: text("swfUrl"),
        page_url: text("pageUrl"),
        object_encoding: object
            .get("objectEncoding")
            .and_then(AmfValue::as_f64)
            .unwrap_or(0.0),
        command_object: command.command_object.clone(),
        args: command.args,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::{ChunkEncoder, WriteBatch};

    fn bytes_of(messages: &[RawMessage]) -> Vec<u8> {
        let mut encoder = ChunkEncoder::new();
        let mut batch = WriteBatch::new();
        for m in messages {
            encoder.encode(m, &mut batch);
        }
        batch.to_vec()
    }

    fn connect_command(app: &str, args: &[AmfValue]) -> RawMessage {
        build::command(
            0,
            "connect",
            1.0,
            AmfValue::object([
                ("app", AmfValue::string(app)),
                ("flashVer", AmfValue::string("FMLE/3.0")),
                ("tcUrl", AmfValue::string(format!("rtmp://h/{app}"))),
                ("fpad", AmfValue::Boolean(false)),
                ("objectEncoding", AmfValue::Number(0.0)),
            ]),
            args,
        )
    }

    #[test]
    fn connect_keeps_every_field_and_splits_app_instance_and_query() {
        let mut session = ServerSession::new(ServerSessionConfig::default());
        session.receive_bytes(&bytes_of(&[connect_command(
            "live/room1?token=x",
            &[AmfValue::string("user"), AmfValue::string("pass")],
        )]));
        let Some(ServerEvent::ConnectRequested(request)) = session.next_event().expect("ok") else {
            panic!("no connect")
        };
        assert_eq!(request.app_name, "live");
        assert_eq!(request.instance, "room1");
        assert_eq!(request.query, "token=x");
        assert_eq!(request.flash_ver, "FMLE/3.0");
        assert_eq!(
            request.command_object.get("fpad"),
            Some(&AmfValue::Boolean(false))
        );
        assert_eq!(request.args.len(), 2);
    }

    #[test]
    fn default_instance_is_definst() {
        let mut session = ServerSession::new(ServerSessionConfig::default());
        session.receive_bytes(&bytes_of(&[connect_command("livestreams", &[])]));
        let Some(ServerEvent::ConnectRequested(request)) = session.next_event().expect("ok") else {
            panic!("no connect")
        };
        assert_eq!(
            (request.app_name.as_str(), request.instance.as_str()),
            ("livestreams", "_definst_")
        );
    }

    #[test]
    fn data_before_connect_is_ignored_not_fatal() {
        let mut session = ServerSession::new(ServerSessionConfig::default());
        session.receive_bytes(&bytes_of(&[build::data(
            0,
            0,
            &[AmfValue::string("@setDataFrame")],
        )]));
        assert!(matches!(
            session.next_event().expect("ok"),
            Some(ServerEvent::Ignored { .. })
        ));
    }

    #[test]
    fn publish_splits_the_query_string() {
        let mut session = ServerSession::new(ServerSessionConfig::default());
        session.receive_bytes(&bytes_of(&[connect_command("live", &[])]));
        let Some(ServerEvent::ConnectRequested(request)) = session.next_event().expect("ok") else {
            panic!("no connect")
        };
        session.accept_connect(&request);
        session.receive_bytes(&bytes_of(&[build::command(
            1,
            "publish",
            5.0,
            AmfValue::Null,
            &[AmfValue::string("cam?key=1"), AmfValue::string("live")],
        )]));
        assert_eq!(
            session.next_event().expect("ok"),
            Some(ServerEvent::PublishRequested {
                stream_id: 1,
                name: "cam".into(),
                query: "key=1".into(),
                mode: PublishMode::Live
            })
        );
    }
}
