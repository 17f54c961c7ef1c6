//! The client role of an RTMP connection: connect with arguments, call with answers, create
//! streams, publish and play. Used by the tests, the load client and server-side NetConnection.
//!
//! Like the server role, [`ClientSession`] does no IO: methods queue messages in the outbox and
//! [`ClientSession::next_event`] turns received bytes into [`ClientEvent`]s.

use crate::amf::AmfValue;
use crate::chunk::{ChunkLimits, RawMessage};
use crate::message::{build, Command, Message, UserControl};
use crate::protocol::{ProtocolCore, ProtocolError};
use crate::server::PublishMode;
use bytes::Bytes;
use std::collections::HashMap;

/// What a connect needs to say.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// The `app` field (`livestreams` or `livestreams/instance`, may carry `?query`).
    pub app: String,
    /// `tcUrl`.
    pub tc_url: String,
    /// `flashVer`.
    pub flash_ver: String,
    /// Extra connect arguments.
    pub args: Vec<AmfValue>,
    /// Chunk size to send with.
    pub chunk_size: u32,
}

/// What a transaction was for.
#[derive(Debug, Clone, PartialEq)]
enum Pending {
    Connect,
    CreateStream,
    Call,
}

/// What the server said.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// NetConnection.Connect.Success: the `_result` info object.
    Connected(AmfValue),
    /// Connect refused (`_error`): the info object (code Rejected / InvalidApp, `application`).
    ConnectFailed(AmfValue),
    /// A stream id for a createStream.
    StreamCreated {
        /// The createStream transaction.
        transaction_id: f64,
        /// The new stream id.
        stream_id: u32,
    },
    /// The answer to a call.
    CallResult {
        /// The call's transaction id.
        transaction_id: f64,
        /// True for `_result`, false for `_error`.
        success: bool,
        /// Values after the command object.
        values: Vec<AmfValue>,
    },
    /// `onStatus` on a stream (0: the connection).
    Status {
        /// The stream.
        stream_id: u32,
        /// The info object.
        info: AmfValue,
    },
    /// The server invoked a method on us (onBWDone, onFCPublish, a script's client.call...).
    Invoked {
        /// The stream it came on.
        stream_id: u32,
        /// The command.
        command: Command,
    },
    /// Audio on a stream.
    Audio {
        /// The stream.
        stream_id: u32,
        /// Timestamp.
        timestamp: u32,
        /// FLV audio tag body.
        payload: Bytes,
    },
    /// Video on a stream.
    Video {
        /// The stream.
        stream_id: u32,
        /// Timestamp.
        timestamp: u32,
        /// FLV video tag body.
        payload: Bytes,
    },
    /// A data message on a stream.
    Data {
        /// The stream.
        stream_id: u32,
        /// Timestamp.
        timestamp: u32,
        /// Handler name and values.
        values: Vec<AmfValue>,
    },
    /// A User Control event (StreamBegin, StreamEOF...).
    UserControl(UserControl),
    /// Something that could not be used.
    Ignored {
        /// Why.
        reason: String,
    },
}

/// The client side of one RTMP connection, after the handshake.
pub struct ClientSession {
    core: ProtocolCore,
    next_transaction_id: f64,
    pending: HashMap<u64, Pending>,
    window_ack_size: u32,
}

impl ClientSession {
    /// A session with default limits.
    pub fn new() -> Self {
        Self::with_limits(ChunkLimits::default())
    }

    /// A session with the given limits on what the server sends.
    pub fn with_limits(limits: ChunkLimits) -> Self {
        ClientSession {
            core: ProtocolCore::new(limits),
            next_transaction_id: 1.0,
            pending: HashMap::new(),
            window_ack_size: 2_500_000,
        }
    }

    fn transaction(&mut self, what: Pending) -> f64 {
        let tx = self.next_transaction_id;
        self.next_transaction_id += 1.0;
        self.pending.insert(tx as u64, what);
        tx
    }

    /// Adds bytes received from the server.
    pub fn receive_bytes(&mut self, bytes: &[u8]) {
        self.core.receive_bytes(bytes);
    }

    /// Messages to send, in order.
    pub fn take_outgoing(&mut self) -> Vec<RawMessage> {
        self.core.take_outgoing()
    }

    /// Messages to send, in order, keeping the queue's buffer (see
    /// [`crate::protocol::ProtocolCore::drain_outgoing`]).
    pub fn drain_outgoing(&mut self) -> std::vec::Drain<'_, RawMessage> {
        self.core.drain_outgoing()
    }

    /// Queues `connect` (transaction 1), with our chunk size set first.
    pub fn connect(&mut self, options: &ConnectOptions) {
        if options.chunk_size != crate::chunk::DEFAULT_CHUNK_SIZE {
            self.core.send(build::set_chunk_size(options.chunk_size));
        }
        let tx = self.transaction(Pending::Connect);
        let object = AmfValue::object([
            ("app", AmfValue::string(&options.app)),
            ("type", AmfValue::string("nonprivate")),
            ("flashVer", AmfValue::string(&options.flash_ver)),
            ("tcUrl", AmfValue::string(&options.tc_url)),
            ("fpad", AmfValue::Boolean(false)),
            ("capabilities", AmfValue::Number(15.0)),
            ("audioCodecs", AmfValue::Number(4071.0)),
            ("videoCodecs", AmfValue::Number(252.0)),
            ("videoFunction", AmfValue::Number(1.0)),
            ("objectEncoding", AmfValue::Number(0.0)),
        ]);
        self.core
            .send(build::command(0, "connect", tx, object, &options.args));
    }

    /// Queues `createStream`, returning its transaction id.
    pub fn create_stream(&mut self) -> f64 {
        let tx = self.transaction(Pending::CreateStream);
        self.core
            .send(build::command(0, "createStream", tx, AmfValue::Null, &[]));
        tx
    }

    /// Queues `publish(name, mode)` on `stream_id`.
    pub fn publish(&mut self, stream_id: u32, name: &str, mode: PublishMode) {
        self.core.send(build::command(
            stream_id,
            "publish",
            0.0,
            AmfValue::Null,
            &[AmfValue::string(name), AmfValue::string(mode.as_str())],
        ));
    }

    /// Queues `play(name, start)` on `stream_id`, with the buffer length players send.
    pub fn play(&mut self, stream_id: u32, name: &str, start: f64) {
        self.core.send(build::command(
            stream_id,
            "play",
            0.0,
            AmfValue::Null,
            &[AmfValue::string(name), AmfValue::Number(start)],
        ));
        self.core
            .send(build::user_control(&UserControl::SetBufferLength {
                stream_id,
                buffer_ms: 1000,
            }));
    }

    /// Queues a call, returning its transaction id (answers arrive as [`ClientEvent::CallResult`]).
    pub fn call(&mut self, method: &str, args: &[AmfValue]) -> f64 {
        let tx = self.transaction(Pending::Call);
        self.core
            .send(build::command(0, method, tx, AmfValue::Null, args));
        tx
    }

    /// Queues a command with no answer expected (transaction 0), on a stream or the connection.
    pub fn send_command(&mut self, stream_id: u32, method: &str, args: &[AmfValue]) {
        self.core
            .send(build::command(stream_id, method, 0.0, AmfValue::Null, args));
    }

    /// Answers a method the server invoked on us.
    pub fn respond(&mut self, transaction_id: f64, success: bool, values: &[AmfValue]) {
        let name = if success { "_result" } else { "_error" };
        self.core.send(build::command(
            0,
            name,
            transaction_id,
            AmfValue::Null,
            values,
        ));
    }

    /// Queues `closeStream` then `deleteStream` for `stream_id`.
    pub fn delete_stream(&mut self, stream_id: u32) {
        self.core.send(build::command(
            stream_id,
            "closeStream",
            0.0,
            AmfValue::Null,
            &[],
        ));
        self.core.send(build::command(
            0,
            "deleteStream",
            0.0,
            AmfValue::Null,
            &[AmfValue::Number(stream_id as f64)],
        ));
    }

    /// Queues any message (media and data from the publisher).
    pub fn send(&mut self, message: RawMessage) {
        self.core.send(message);
    }

    /// The next event, `Ok(None)` when more bytes are needed. An error ends the connection.
    pub fn next_event(&mut self) -> Result<Option<ClientEvent>, ProtocolError> {
        let Some(incoming) = self.core.next_incoming()? else {
            return Ok(None);
        };
        if self.core.peer_bandwidth.take().is_some() {
            self.core.send(build::window_ack_size(self.window_ack_size));
        }
        let stream_id = incoming.stream_id;
        let message = match incoming.message {
            Ok(message) => message,
            Err(error) => {
                return Ok(Some(ClientEvent::Ignored {
                    reason: error.to_string(),
                }))
            }
        };
        Ok(Some(match message {
            Message::Command(command) => self.command_event(stream_id, command),
            Message::Audio(payload) => ClientEvent::Audio {
                stream_id,
                timestamp: incoming.timestamp,
                payload,
            },
            Message::Video(payload) => ClientEvent::Video {
                stream_id,
                timestamp: incoming.timestamp,
                payload,
            },
            Message::Data(values) => ClientEvent::Data {
                stream_id,
                timestamp: incoming.timestamp,
                values,
            },
            Message::UserControl(event) => ClientEvent::UserControl(event),
            other => ClientEvent::Ignored {
                reason: format!("unexpected message {other:?}")
                    .chars()
                    .take(80)
                    .collect(),
            },
        }))
    }

    fn command_event(&mut self, stream_id: u32, command: Command) -> ClientEvent {
        let tx = command.transaction_id;
        match command.name.as_str() {
            "_result" | "_error" => {
                let success = command.name == "_result";
                let first = command.args.first().cloned().unwrap_or(AmfValue::Null);
                match self.pending.remove(&(tx as u64)) {
                    Some(Pending::Connect) if success => ClientEvent::Connected(first),
                    Some(Pending::Connect) => ClientEvent::ConnectFailed(first),
                    Some(Pending::CreateStream) if success => ClientEvent::StreamCreated {
                        transaction_id: tx,
                        stream_id: first.as_f64().unwrap_or(0.0) as u32,
                    },
                    _ => ClientEvent::CallResult {
                        transaction_id: tx,
                        success,
                        values: command.args,
                    },
                }
            }
            "onStatus" => ClientEvent::Status {
                stream_id,
                info: command.args.into_iter().next().unwrap_or(AmfValue::Null),
            },
            _ => ClientEvent::Invoked { stream_id, command },
        }
    }
}

impl Default for ClientSession {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::{ChunkEncoder, WriteBatch};
    use crate::server::{ServerEvent, ServerSession, ServerSessionConfig};

    /// Moves everything queued on one side to the other, through real chunk encoding.
    fn pump(from: Vec<RawMessage>, encoder: &mut ChunkEncoder) -> Vec<u8> {
        let mut batch = WriteBatch::new();
        for m in &from {
            encoder.encode(m, &mut batch);
        }
        batch.to_vec()
    }

    #[test]
    fn client_and_server_sessions_connect_create_publish_and_call() {
        let mut client = ClientSession::new();
        let mut server = ServerSession::new(ServerSessionConfig::default());
        let mut to_server = ChunkEncoder::new();
        let mut to_client = ChunkEncoder::new();
        client.connect(&ConnectOptions {
            app: "live".into(),
            tc_url: "rtmp://127.0.0.1/live".into(),
            flash_ver: "LNX 9,0,124,2".into(),
            args: vec![AmfValue::string("secret")],
            chunk_size: 4096,
        });
        server.receive_bytes(&pump(client.take_outgoing(), &mut to_server));
        let Some(ServerEvent::ConnectRequested(request)) = server.next_event().expect("ok") else {
            panic!("no connect")
        };
        assert_eq!(request.args, vec![AmfValue::string("secret")]);
        server.accept_connect(&request);
        client.receive_bytes(&pump(server.take_outgoing(), &mut to_client));
        let Some(ClientEvent::Connected(info)) = client.next_event().expect("ok") else {
            panic!("not connected")
        };
        assert_eq!(info.get_str("code"), Some("NetConnection.Connect.Success"));

        let tx = client.create_stream();
        let call_tx = client.call("add", &[AmfValue::Number(2.0), AmfValue::Number(3.0)]);
        server.receive_bytes(&pump(client.take_outgoing(), &mut to_server));
        let Some(ServerEvent::CreateStreamRequested { transaction_id }) =
            server.next_event().expect("ok")
        else {
            panic!("no createStream")
        };
        assert_eq!(transaction_id, tx);
        let stream_id = server.create_stream(transaction_id).expect("stream");
        let Some(ServerEvent::Call { command, .. }) = server.next_event().expect("ok") else {
            panic!("no call")
        };
        assert_eq!(command.name, "add");
        server.result(command.transaction_id, &[AmfValue::Number(5.0)]);
        client.receive_bytes(&pump(server.take_outgoing(), &mut to_client));
        assert_eq!(
            client.next_event().expect("ok"),
            Some(ClientEvent::StreamCreated {
                transaction_id: tx,
                stream_id
            })
        );
        assert_eq!(
            client.next_event().expect("ok"),
            Some(ClientEvent::CallResult {
                transaction_id: call_tx,
                success: true,
                values: vec![AmfValue::Number(5.0)]
            })
        );
    }
}
