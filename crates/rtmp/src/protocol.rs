//! What both roles share: reading messages from chunks, protocol control, acknowledgements.
//!
//! [`ProtocolCore`] turns received bytes into [`Incoming`] messages and answers the housekeeping
//! itself (Set Chunk Size, Abort, Window Acknowledgement Size, acknowledgements, pings, aggregate
//! splitting), so the server and client sessions see only what concerns them.

use crate::chunk::{ChunkDecoder, ChunkError, ChunkLimits, RawMessage};
use crate::message::{build, split_aggregate, type_id, Message, MessageError, UserControl};
use std::collections::VecDeque;

/// A message as the sessions see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    /// The message stream it arrived on.
    pub stream_id: u32,
    /// Its timestamp.
    pub timestamp: u32,
    /// The parsed message, or why it could not be parsed (the connection goes on).
    pub message: Result<Message, MessageError>,
}

/// A failure that ends the connection.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The chunk stream is broken or over a limit.
    #[error(transparent)]
    Chunk(#[from] ChunkError),
}

/// Chunk reading, protocol control and the outbox, shared by both session roles.
pub struct ProtocolCore {
    decoder: ChunkDecoder,
    outbox: Vec<RawMessage>,
    split_parts: VecDeque<RawMessage>,
    bytes_received: u64,
    acknowledged: u64,
    ack_window: u32,
    /// Set Peer Bandwidth received: a client answers with its Window Acknowledgement Size.
    pub(crate) peer_bandwidth: Option<u32>,
}

impl ProtocolCore {
    /// A core with the given limits.
    pub fn new(limits: ChunkLimits) -> Self {
        ProtocolCore {
            decoder: ChunkDecoder::new(limits),
            outbox: Vec::new(),
            split_parts: VecDeque::new(),
            bytes_received: 0,
            acknowledged: 0,
            ack_window: 0,
            peer_bandwidth: None,
        }
    }

    /// Adds received bytes (acknowledging them when the peer's window is reached).
    pub fn receive_bytes(&mut self, bytes: &[u8]) {
        self.decoder.push(bytes);
        self.bytes_received += bytes.len() as u64;
        if self.ack_window > 0 && self.bytes_received - self.acknowledged >= self.ack_window as u64
        {
            self.acknowledged = self.bytes_received;
            // The sequence number wraps at 2^32 like the byte counter on the wire.
            self.outbox
                .push(build::acknowledgement(self.bytes_received as u32));
        }
    }

    /// Total bytes received.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// Queues a message to send.
    pub fn send(&mut self, message: RawMessage) {
        self.outbox.push(message);
    }

    /// Takes the messages queued to send, in order.
    pub fn take_outgoing(&mut self) -> Vec<RawMessage> {
        std::mem::take(&mut self.outbox)
    }

    /// The messages queued to send, in order, keeping the queue's buffer for the next ones
    /// (no allocation per message on a sending path).
    pub fn drain_outgoing(&mut self) -> std::vec::Drain<'_, RawMessage> {
        self.outbox.drain(..)
    }

    /// True when messages wait to be sent.
    pub fn has_outgoing(&self) -> bool {
        !self.outbox.is_empty()
    }

    /// The next message for the session, after handling protocol control.
    pub fn next_incoming(&mut self) -> Result<Option<Incoming>, ProtocolError> {
        loop {
            let raw = match self.split_parts.pop_front() {
                Some(raw) => raw,
                None => match self.decoder.next_message()? {
                    Some(raw) => raw,
                    None => return Ok(None),
                },
            };
            if raw.type_id == type_id::AGGREGATE {
                self.split_parts.extend(split_aggregate(&raw));
                continue;
            }
            let message = Message::parse(&raw);
            match &message {
                Ok(Message::SetChunkSize(size)) => {
                    self.decoder.set_chunk_size(*size)?;
                    continue;
                }
                Ok(Message::Abort(chunk_stream_id)) => {
                    self.decoder.abort(*chunk_stream_id);
                    continue;
                }
                Ok(Message::WindowAckSize(size)) => {
                    self.ack_window = *size;
                    continue;
                }
                Ok(Message::Acknowledgement(_)) => continue,
                Ok(Message::SetPeerBandwidth { size, .. }) => {
                    self.peer_bandwidth = Some(*size);
                    continue;
                }
                Ok(Message::UserControl(UserControl::PingRequest(time))) => {
                    self.outbox
                        .push(build::user_control(&UserControl::PingResponse(*time)));
                    continue;
                }
                _ => {}
            }
            return Ok(Some(Incoming {
                stream_id: raw.stream_id,
                timestamp: raw.timestamp,
                message,
            }));
        }
    }
}
