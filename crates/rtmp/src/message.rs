//! RTMP messages: what a [`RawMessage`] means, and how to build the ones we send.
//!
//! Parsing never panics: a body too short for its type is reported as [`MessageError`], which a
//! session turns into a logged, skipped message (or a closed connection for protocol control).

use crate::amf::{decode_amf0, encode_amf0_values, AmfError, AmfValue};
use crate::chunk::RawMessage;
use bytes::{BufMut, Bytes, BytesMut};

/// Message type ids.
pub mod type_id {
    /// Set Chunk Size.
    pub const SET_CHUNK_SIZE: u8 = 1;
    /// Abort.
    pub const ABORT: u8 = 2;
    /// Acknowledgement.
    pub const ACKNOWLEDGEMENT: u8 = 3;
    /// User Control.
    pub const USER_CONTROL: u8 = 4;
    /// Window Acknowledgement Size.
    pub const WINDOW_ACK_SIZE: u8 = 5;
    /// Set Peer Bandwidth.
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    /// Audio.
    pub const AUDIO: u8 = 8;
    /// Video.
    pub const VIDEO: u8 = 9;
    /// Data, AMF3.
    pub const DATA_AMF3: u8 = 15;
    /// Shared object, AMF3.
    pub const SHARED_OBJECT_AMF3: u8 = 16;
    /// Command, AMF3.
    pub const COMMAND_AMF3: u8 = 17;
    /// Data, AMF0.
    pub const DATA_AMF0: u8 = 18;
    /// Shared object, AMF0.
    pub const SHARED_OBJECT_AMF0: u8 = 19;
    /// Command, AMF0.
    pub const COMMAND_AMF0: u8 = 20;
    /// Aggregate.
    pub const AGGREGATE: u8 = 22;
}

/// Chunk stream ids we send on.
pub mod chunk_stream {
    /// Protocol control messages.
    pub const CONTROL: u32 = 2;
    /// Connection-level commands.
    pub const COMMAND: u32 = 3;
    /// Stream-level commands and data.
    pub const STREAM_COMMAND: u32 = 5;
    /// Audio.
    pub const AUDIO: u32 = 6;
    /// Video.
    pub const VIDEO: u32 = 7;
}

/// A User Control event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserControl {
    /// A stream became functional.
    StreamBegin(u32),
    /// Playback of a stream is over.
    StreamEof(u32),
    /// No more data on a stream for now.
    StreamDry(u32),
    /// The client's buffer length in ms.
    SetBufferLength {
        /// The message stream.
        stream_id: u32,
        /// Buffer length in milliseconds.
        buffer_ms: u32,
    },
    /// The stream is recorded.
    StreamIsRecorded(u32),
    /// Ping with the sender's timestamp.
    PingRequest(u32),
    /// Answer to a ping, echoing its timestamp.
    PingResponse(u32),
    /// Any other event type.
    Other {
        /// Event type.
        event_type: u16,
        /// Event data.
        data: Bytes,
    },
}

/// A command (type 20, or 17 with AMF3): `name(transaction_id, command_object, ...args)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// Command or method name.
    pub name: String,
    /// Transaction id; 0 when no answer is wanted.
    pub transaction_id: f64,
    /// The command object (often null).
    pub command_object: AmfValue,
    /// The remaining arguments.
    pub args: Vec<AmfValue>,
}

/// One event inside a shared object message.
#[derive(Debug, Clone, PartialEq)]
pub enum SharedObjectEvent {
    /// Client starts using the object.
    Use,
    /// Client stops using the object.
    Release,
    /// Client asks to change a property.
    RequestChange {
        /// Property name.
        name: String,
        /// New value.
        value: AmfValue,
    },
    /// Server tells a property changed.
    Change {
        /// Property name.
        name: String,
        /// New value.
        value: AmfValue,
    },
    /// The requester's change succeeded.
    Success(String),
    /// `so.send(handler, ...args)`.
    SendMessage(Vec<AmfValue>),
    /// Status (code, level).
    Status {
        /// Status code.
        code: String,
        /// Level.
        level: String,
    },
    /// All properties cleared.
    Clear,
    /// A property removed.
    Remove(String),
    /// Client asks to remove a property.
    RequestRemove(String),
    /// `Use` succeeded.
    UseSuccess,
    /// Unknown event type.
    Unknown(u8),
}

/// A shared object message (type 19, or 16 with AMF3).
#[derive(Debug, Clone, PartialEq)]
pub struct SharedObjectMessage {
    /// The shared object's name.
    pub name: String,
    /// Its version.
    pub version: u32,
    /// Persistent (flag bit).
    pub persistent: bool,
    /// The events, in order.
    pub events: Vec<SharedObjectEvent>,
}

/// A parsed message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Set Chunk Size.
    SetChunkSize(u32),
    /// Abort a partial message on a chunk stream.
    Abort(u32),
    /// Bytes received so far by the peer.
    Acknowledgement(u32),
    /// User Control event.
    UserControl(UserControl),
    /// The peer wants an acknowledgement every N bytes.
    WindowAckSize(u32),
    /// The peer limits our output.
    SetPeerBandwidth {
        /// Window size.
        size: u32,
        /// 0 hard, 1 soft, 2 dynamic.
        limit_type: u8,
    },
    /// Audio (FLV audio tag body).
    Audio(Bytes),
    /// Video (FLV video tag body).
    Video(Bytes),
    /// A command.
    Command(Command),
    /// A data message: handler name and values (`@setDataFrame`, `onMetaData`, `onCuePoint`...).
    Data(Vec<AmfValue>),
    /// A shared object message.
    SharedObject(SharedObjectMessage),
    /// A message type we do not know.
    Unknown(u8),
}

/// Why a message body could not be parsed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MessageError {
    /// The body is shorter than its type requires.
    #[error("message type {0} body too short")]
    TooShort(u8),
    /// AMF decoding failed.
    #[error("bad AMF in message type {type_id}: {source}")]
    Amf {
        /// The message type.
        type_id: u8,
        /// The AMF error.
        source: AmfError,
    },
    /// A command without a string name or numeric transaction id.
    #[error("command without a name and transaction id")]
    MalformedCommand,
}

fn be_u32(b: &[u8]) -> Option<u32> {
    b.get(0..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

impl Message {
    /// Parses a reassembled message.
    pub fn parse(raw: &RawMessage) -> Result<Message, MessageError> {
        let body = &raw.payload[..];
        let short = || MessageError::TooShort(raw.type_id);
        let amf = |type_id: u8, bytes: &[u8]| {
            decode_amf0(bytes).map_err(|source| MessageError::Amf { type_id, source })
        };
        Ok(match raw.type_id {
            type_id::SET_CHUNK_SIZE => Message::SetChunkSize(be_u32(body).ok_or_else(short)?),
            type_id::ABORT => Message::Abort(be_u32(body).ok_or_else(short)?),
            type_id::ACKNOWLEDGEMENT => Message::Acknowledgement(be_u32(body).ok_or_else(short)?),
            type_id::WINDOW_ACK_SIZE => Message::WindowAckSize(be_u32(body).ok_or_else(short)?),
            type_id::SET_PEER_BANDWIDTH => Message::SetPeerBandwidth {
                size: be_u32(body).ok_or_else(short)?,
                limit_type: body.get(4).copied().unwrap_or(2),
            },
            type_id::USER_CONTROL => {
                let event_type = body
                    .get(0..2)
                    .map(|b| u16::from_be_bytes([b[0], b[1]]))
                    .ok_or_else(short)?;
                let data = &body[2..];
                let first = be_u32(data);
                Message::UserControl(match (event_type, first) {
                    (0, Some(id)) => UserControl::StreamBegin(id),
                    (1, Some(id)) => UserControl::StreamEof(id),
                    (2, Some(id)) => UserControl::StreamDry(id),
                    (3, Some(id)) => UserControl::SetBufferLength {
                        stream_id: id,
                        buffer_ms: be_u32(&data[4..]).ok_or_else(short)?,
                    },
                    (4, Some(id)) => UserControl::StreamIsRecorded(id),
                    (6, Some(t)) => UserControl::PingRequest(t),
                    (7, Some(t)) => UserControl::PingResponse(t),
                    _ => UserControl::Other {
                        event_type,
                        data: raw.payload.slice(2..),
                    },
                })
            }
            type_id::AUDIO => Message::Audio(raw.payload.clone()),
            type_id::VIDEO => Message::Video(raw.payload.clone()),
            type_id::COMMAND_AMF0 | type_id::COMMAND_AMF3 => {
                let bytes = amf3_envelope(raw.type_id, body, type_id::COMMAND_AMF3);
                let mut values = amf(raw.type_id, bytes)?.into_iter();
                let name = match values.next() {
                    Some(AmfValue::String(name)) => name,
                    _ => return Err(MessageError::MalformedCommand),
                };
                let transaction_id = match values.next() {
                    Some(AmfValue::Number(tx)) => tx,
                    None => 0.0,
                    _ => return Err(MessageError::MalformedCommand),
                };
                let command_object = values.next().unwrap_or(AmfValue::Null);
                Message::Command(Command {
                    name,
                    transaction_id,
                    command_object,
                    args: values.collect(),
                })
            }
            type_id::DATA_AMF0 | type_id::DATA_AMF3 => {
                let bytes = amf3_envelope(raw.type_id, body, type_id::DATA_AMF3);
                Message::Data(amf(raw.type_id, bytes)?)
            }
            type_id::SHARED_OBJECT_AMF0 | type_id::SHARED_OBJECT_AMF3 => {
                let bytes = amf3_envelope(raw.type_id, body, type_id::SHARED_OBJECT_AMF3);
                Message::SharedObject(parse_shared_object(raw.type_id, bytes)?)
            }
            other => Message::Unknown(other),
        })
    }
}

/// AMF3 command/data/shared object bodies start with one format byte (0) before AMF0 values.
fn amf3_envelope(type_id: u8, body: &[u8], amf3_type: u8) -> &[u8] {
    if type_id == amf3_type && body.first() == Some(&0) {
        &body[1..]
    } else {
        body
    }
}

fn parse_shared_object(type_id: u8, body: &[u8]) -> Result<SharedObjectMessage, MessageError> {
    let short = || MessageError::TooShort(type_id);
    let name_len = body
        .get(0..2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
        .ok_or_else(short)?;
    let name_bytes = body.get(2..2 + name_len).ok_or_else(short)?;
    let name = String::from_utf8_lossy(name_bytes).into_owned();
    let mut pos = 2 + name_len;
    let version = be_u32(body.get(pos..).ok_or_else(short)?).ok_or_else(short)?;
    let flags = be_u32(body.get(pos + 4..).ok_or_else(short)?).ok_or_else(short)?;
    pos += 12; // version, flags, 4 reserved bytes
    let mut events = Vec::new();
    while pos < body.len() {
        let kind = body[pos];
        let len = be_u32(body.get(pos + 1..).ok_or_else(short)?).ok_or_else(short)? as usize;
        let start = pos + 5;
        let data = body
            .get(start..start.checked_add(len).ok_or_else(short)?)
            .ok_or_else(short)?;
        pos = start + len;
        let amf = |bytes: &[u8]| {
            decode_amf0(bytes).map_err(|source| MessageError::Amf { type_id, source })
        };
        let key_and_value = |data: &[u8]| -> Result<(String, AmfValue), MessageError> {
            let key_len = data
                .get(0..2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
                .ok_or_else(short)?;
            let key =
                String::from_utf8_lossy(data.get(2..2 + key_len).ok_or_else(short)?).into_owned();
            let value = amf(&data[2 + key_len..])?
                .into_iter()
                .next()
                .unwrap_or(AmfValue::Undefined);
            Ok((key, value))
        };
        let key_only = |data: &[u8]| -> Result<String, MessageError> { Ok(key_and_value(data)?.0) };
        events.push(match kind {
            1 => SharedObjectEvent::Use,
            2 => SharedObjectEvent::Release,
            3 => {
                let (name, value) = key_and_value(data)?;
                SharedObjectEvent::RequestChange { name, value }
            }
            4 => {
                let (name, value) = key_and_value(data)?;
                SharedObjectEvent::Change { name, value }
            }
            5 => SharedObjectEvent::Success(key_only(data)?),
            6 => SharedObjectEvent::SendMessage(amf(data)?),
            7 => {
                let values = amf(data)?;
                let text = |i: usize| {
                    values
                        .get(i)
                        .and_then(AmfValue::as_str)
                        .unwrap_or("")
                        .to_string()
                };
                SharedObjectEvent::Status {
                    code: text(0),
                    level: text(1),
                }
            }
            8 => SharedObjectEvent::Clear,
            9 => SharedObjectEvent::Remove(key_only(data)?),
            10 => SharedObjectEvent::RequestRemove(key_only(data)?),
            11 => SharedObjectEvent::UseSuccess,
            other => SharedObjectEvent::Unknown(other),
        });
    }
    Ok(SharedObjectMessage {
        name,
        version,
        persistent: flags & 2 != 0 || flags == 1,
        events,
    })
}

/// Splits an aggregate message (type 22: FLV tags back to back) into its messages. Each tag's
/// timestamp is re-based on the aggregate's: `aggregate + (tag - first tag)`. Payloads share
/// the aggregate's memory. A truncated tag ends the list.
pub fn split_aggregate(aggregate: &RawMessage) -> Vec<RawMessage> {
    let body = &aggregate.payload;
    let mut out = Vec::new();
    let mut pos = 0usize;
    let mut first_timestamp = None;
    while pos + 11 <= body.len() {
        let tag_type = body[pos];
        let size =
            (body[pos + 1] as usize) << 16 | (body[pos + 2] as usize) << 8 | body[pos + 3] as usize;
        let timestamp = (body[pos + 7] as u32) << 24
            | (body[pos + 4] as u32) << 16
            | (body[pos + 5] as u32) << 8
            | body[pos + 6] as u32;
        let start = pos + 11;
        let Some(end) = start.checked_add(size).filter(|&e| e <= body.len()) else {
            break;
        };
        let first = *first_timestamp.get_or_insert(timestamp);
        out.push(RawMessage {
            chunk_stream_id: aggregate.chunk_stream_id,
            type_id: tag_type & 0x1F,
            stream_id: aggregate.stream_id,
            timestamp: aggregate
                .timestamp
                .wrapping_add(timestamp.wrapping_sub(first)),
            payload: body.slice(start..end),
        });
        pos = end + 4; // back pointer
    }
    out
}

/// Builders for the messages a session sends.
pub mod build {
    use super::*;

    fn control(type_id: u8, payload: Vec<u8>) -> RawMessage {
        RawMessage {
            chunk_stream_id: chunk_stream::CONTROL,
            type_id,
            stream_id: 0,
            timestamp: 0,
            payload: Bytes::from(payload),
        }
    }

    /// Set Chunk Size.
    pub fn set_chunk_size(size: u32) -> RawMessage {
        control(type_id::SET_CHUNK_SIZE, size.to_be_bytes().to_vec())
    }

    /// Window Acknowledgement Size.
    pub fn window_ack_size(size: u32) -> RawMessage {
        control(type_id::WINDOW_ACK_SIZE, size.to_be_bytes().to_vec())
    }

    /// Acknowledgement of `bytes` received.
    pub fn acknowledgement(bytes: u32) -> RawMessage {
        control(type_id::ACKNOWLEDGEMENT, bytes.to_be_bytes().to_vec())
    }

    /// Set Peer Bandwidth (limit type 2: dynamic).
    pub fn set_peer_bandwidth(size: u32, limit_type: u8) -> RawMessage {
        let mut payload = size.to_be_bytes().to_vec();
        payload.push(limit_type);
        control(type_id::SET_PEER_BANDWIDTH, payload)
    }

    /// A User Control event.
    pub fn user_control(event: &UserControl) -> RawMessage {
        let mut b = BytesMut::with_capacity(10);
        match event {
            UserControl::StreamBegin(id) => {
                b.put_u16(0);
                b.put_u32(*id);
            }
            UserControl::StreamEof(id) => {
                b.put_u16(1);
                b.put_u32(*id);
            }
            UserControl::StreamDry(id) => {
                b.put_u16(2);
                b.put_u32(*id);
            }
            UserControl::SetBufferLength {
                stream_id,
                buffer_ms,
            } => {
                b.put_u16(3);
                b.put_u32(*stream_id);
                b.put_u32(*buffer_ms);
            }
            UserControl::StreamIsRecorded(id) => {
                b.put_u16(4);
                b.put_u32(*id);
            }
            UserControl::PingRequest(t) => {
                b.put_u16(6);
                b.put_u32(*t);
            }
            UserControl::PingResponse(t) => {
                b.put_u16(7);
                b.put_u32(*t);
            }
            UserControl::Other { event_type, data } => {
                b.put_u16(*event_type);
                b.extend_from_slice(data);
            }
        }
        control(type_id::USER_CONTROL, b.to_vec())
    }

    /// A command on `stream_id` (0: the connection).
    pub fn command(
        stream_id: u32,
        name: &str,
        transaction_id: f64,
        command_object: AmfValue,
        args: &[AmfValue],
    ) -> RawMessage {
        let mut values = Vec::with_capacity(args.len() + 3);
        values.push(AmfValue::string(name));
        values.push(AmfValue::Number(transaction_id));
        values.push(command_object);
        values.extend_from_slice(args);
        RawMessage {
            chunk_stream_id: if stream_id == 0 {
                chunk_stream::COMMAND
            } else {
                chunk_stream::STREAM_COMMAND
            },
            type_id: type_id::COMMAND_AMF0,
            stream_id,
            timestamp: 0,
            payload: Bytes::from(encode_amf0_values(&values)),
        }
    }

    /// A data message (AMF0) on `stream_id`.
    pub fn data(stream_id: u32, timestamp: u32, values: &[AmfValue]) -> RawMessage {
        data_from_body(
            stream_id,
            timestamp,
            Bytes::from(encode_amf0_values(values)),
        )
    }

    /// A data message whose AMF0 body is already encoded (shared metadata).
    pub fn data_from_body(stream_id: u32, timestamp: u32, body: Bytes) -> RawMessage {
        RawMessage {
            chunk_stream_id: chunk_stream::STREAM_COMMAND,
            type_id: type_id::DATA_AMF0,
            stream_id,
            timestamp,
            payload: body,
        }
    }

    /// An audio message.
    pub fn audio(stream_id: u32, timestamp: u32, payload: Bytes) -> RawMessage {
        RawMessage {
            chunk_stream_id: chunk_stream::AUDIO,
            type_id: type_id::AUDIO,
            stream_id,
            timestamp,
            payload,
        }
    }

    /// A video message.
    pub fn video(stream_id: u32, timestamp: u32, payload: Bytes) -> RawMessage {
        RawMessage {
            chunk_stream_id: chunk_stream::VIDEO,
            type_id: type_id::VIDEO,
            stream_id,
            timestamp,
            payload,
        }
    }

    /// A status info object `{level, code, description, ...extra}`.
    pub fn status_info(
        level: &str,
        code: &str,
        description: &str,
        extra: Vec<(String, AmfValue)>,
    ) -> AmfValue {
        let mut properties = vec![
            ("level".to_string(), AmfValue::string(level)),
            ("code".to_string(), AmfValue::string(code)),
            ("description".to_string(), AmfValue::string(description)),
        ];
        properties.extend(extra);
        AmfValue::Object {
            class_name: None,
            properties,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(type_id: u8, payload: Vec<u8>) -> RawMessage {
        RawMessage {
            chunk_stream_id: 3,
            type_id,
            stream_id: 0,
            timestamp: 0,
            payload: Bytes::from(payload),
        }
    }

    #[test]
    fn commands_parse_with_all_arguments() {
        let message = build::command(
            0,
            "connect",
            1.0,
            AmfValue::object([("app", AmfValue::string("live"))]),
            &[AmfValue::string("user"), AmfValue::Number(7.0)],
        );
        let Message::Command(command) = Message::parse(&message).expect("parses") else {
            panic!("not a command")
        };
        assert_eq!(command.name, "connect");
        assert_eq!(command.transaction_id, 1.0);
        assert_eq!(command.command_object.get_str("app"), Some("live"));
        assert_eq!(
            command.args,
            vec![AmfValue::string("user"), AmfValue::Number(7.0)]
        );
    }

    #[test]
    fn amf3_commands_skip_their_format_byte() {
        let mut body = vec![0u8];
        body.extend(encode_amf0_values(&[
            AmfValue::string("hello"),
            AmfValue::Number(3.0),
            AmfValue::Null,
        ]));
        let Message::Command(command) =
            Message::parse(&raw(type_id::COMMAND_AMF3, body)).expect("parses")
        else {
            panic!("not a command")
        };
        assert_eq!(command.name, "hello");
        assert_eq!(command.transaction_id, 3.0);
    }

    #[test]
    fn short_bodies_are_errors_not_panics() {
        for type_id in 0..=30u8 {
            for len in 0..6 {
                let _ = Message::parse(&raw(type_id, vec![0xFF; len]));
            }
        }
        assert_eq!(
            Message::parse(&raw(1, vec![0, 0])),
            Err(MessageError::TooShort(1))
        );
    }

    #[test]
    fn aggregates_split_into_rebased_messages() {
        let mut body = Vec::new();
        for (kind, ts, len) in [(9u8, 1000u32, 5usize), (8, 1020, 3)] {
            body.push(kind);
            body.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
            body.extend_from_slice(&ts.to_be_bytes()[1..]);
            body.push((ts >> 24) as u8);
            body.extend_from_slice(&[0, 0, 0]);
            body.extend(std::iter::repeat_n(kind, len));
            body.extend_from_slice(&((len + 11) as u32).to_be_bytes());
        }
        let mut aggregate = raw(type_id::AGGREGATE, body);
        aggregate.timestamp = 50;
        let parts = split_aggregate(&aggregate);
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0].type_id, parts[0].timestamp), (9, 50));
        assert_eq!((parts[1].type_id, parts[1].timestamp), (8, 70));
        assert_eq!(&parts[1].payload[..], &[8, 8, 8]);
    }

    #[test]
    fn shared_object_events_parse() {
        let mut body = Vec::new();
        body.extend_from_slice(&4u16.to_be_bytes());
        body.extend_from_slice(b"chat");
        body.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        body.push(1); // use
        body.extend_from_slice(&0u32.to_be_bytes());
        let mut change = Vec::new();
        change.extend_from_slice(&3u16.to_be_bytes());
        change.extend_from_slice(b"msg");
        change.extend(encode_amf0_values(&[AmfValue::string("hi")]));
        body.push(3);
        body.extend_from_slice(&(change.len() as u32).to_be_bytes());
        body.extend(change);
        let Message::SharedObject(so) =
            Message::parse(&raw(type_id::SHARED_OBJECT_AMF0, body)).expect("parses")
        else {
            panic!("not a shared object message")
        };
        assert_eq!(so.name, "chat");
        assert_eq!(so.version, 1);
        assert_eq!(
            so.events,
            vec![
                SharedObjectEvent::Use,
                SharedObjectEvent::RequestChange {
                    name: "msg".into(),
                    value: AmfValue::string("hi")
                }
            ]
        );
    }
}
