//! RTMP chunking: reassembling messages from chunks and cutting messages into chunks.
//!
//! Written here rather than taken from `rml_rtmp::chunk_io` for two reasons found in its source
//! (0.8.0): its deserializer keeps one partial message for the whole connection, so a message
//! interleaved on a second chunk stream (as Flash Player sends) makes it subtract below zero and
//! then reserve an impossible capacity, a panic any peer can trigger (reproduced); and its
//! serializer copies every payload into a fresh `Vec` per message, which would
//! copy each video frame once per subscriber. [`ChunkDecoder`] keeps one partial message per chunk
//! stream under explicit [`ChunkLimits`]; [`ChunkEncoder`] writes only chunk headers and refers to
//! the shared payload, so a frame goes to the socket as header + `Bytes` in one vectored write.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::collections::HashMap;
use std::io::IoSlice;

/// Segments handed to one vectored write (IOV_MAX is 1024; a batch rarely has more than a few).
pub const MAX_WRITE_SLICES: usize = 64;

/// Chunk size every peer starts with.
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
const EXTENDED_TIMESTAMP_MARKER: u32 = 0x00FF_FFFF;

/// One complete RTMP message, as reassembled from chunks or about to be chunked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    /// The chunk stream it travelled (or will travel) on.
    pub chunk_stream_id: u32,
    /// The message type id (8 audio, 9 video, 20 command...).
    pub type_id: u8,
    /// The message stream id (0 for the connection, else a NetStream).
    pub stream_id: u32,
    /// Timestamp in milliseconds.
    pub timestamp: u32,
    /// The message body.
    pub payload: Bytes,
}

/// Bounds on what one peer may make us buffer.
#[derive(Debug, Clone, Copy)]
pub struct ChunkLimits {
    /// Largest message accepted (the header announces it; larger ones close the connection).
    pub max_message_size: u32,
    /// Largest chunk size a peer may set.
    pub max_chunk_size: u32,
    /// Most chunk streams a peer may use at once.
    pub max_chunk_streams: usize,
    /// Most bytes held in partly received messages, all chunk streams together.
    pub max_partial_bytes: usize,
}

impl Default for ChunkLimits {
    fn default() -> Self {
        ChunkLimits {
            max_message_size: 8 * 1024 * 1024,
            max_chunk_size: 0x00FF_FFFF,
            max_chunk_streams: 64,
            max_partial_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Why the chunk stream cannot be read further (the connection should close).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// A compressed header on a chunk stream that never had a full one.
    #[error("chunk stream {0} continues a message it never started")]
    NoPreviousHeader(u32),
    /// A message larger than [`ChunkLimits::max_message_size`].
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    MessageTooLarge {
        /// Announced size.
        size: u32,
        /// The configured limit.
        limit: u32,
    },
    /// Too many chunk streams.
    #[error("more than {0} chunk streams in use")]
    TooManyChunkStreams(usize),
    /// Too many bytes in partial messages.
    #[error("more than {0} bytes buffered in partial messages")]
    TooMuchBuffered(usize),
    /// A chunk size of zero or beyond the limit.
    #[error("invalid chunk size {0}")]
    InvalidChunkSize(u32),
    /// A continuation header changed the length of a message already in progress.
    #[error("chunk stream {0} changed a message's length mid-message")]
    LengthChangedMidMessage(u32),
}

#[derive(Debug, Default, Clone)]
struct IncomingChunkStream {
    timestamp: u32,
    timestamp_field: u32,
    uses_extended_timestamp: bool,
    message_length: u32,
    type_id: u8,
    stream_id: u32,
    partial: Option<BytesMut>,
}

/// Reassembles messages from the bytes a peer sends (after the handshake).
pub struct ChunkDecoder {
    buffer: BytesMut,
    chunk_size: u32,
    limits: ChunkLimits,
    streams: HashMap<u32, IncomingChunkStream>,
    partial_bytes: usize,
}

impl ChunkDecoder {
    /// A decoder with the initial chunk size of 128.
    pub fn new(limits: ChunkLimits) -> Self {
        ChunkDecoder {
            buffer: BytesMut::new(),
            chunk_size: DEFAULT_CHUNK_SIZE,
            limits,
            streams: HashMap::new(),
            partial_bytes: 0,
        }
    }

    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// Bytes received but not yet consumed as chunks.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Applies the peer's Set Chunk Size.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        // The top bit must be zero; zero would never make progress.
        if size == 0 || size > self.limits.max_chunk_size || size > 0x7FFF_FFFF {
            return Err(ChunkError::InvalidChunkSize(size));
        }
        self.chunk_size = size;
        Ok(())
    }

    /// Applies the peer's Abort: drops the partial message on `chunk_stream_id`.
    pub fn abort(&mut self, chunk_stream_id: u32) {
        if let Some(stream) = self.streams.get_mut(&chunk_stream_id) {
            if let Some(partial) = stream.partial.take() {
                self.partial_bytes -= partial.len();
            }
        }
    }

    /// The next complete message, `Ok(None)` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<RawMessage>, ChunkError> {
        loop {
            match self.next_chunk()? {
                ChunkOutcome::NeedMoreBytes => return Ok(None),
                ChunkOutcome::Message(message) => return Ok(Some(message)),
                ChunkOutcome::PartOfMessage => continue,
            }
        }
    }

    fn next_chunk(&mut self) -> Result<ChunkOutcome, ChunkError> {
        if self.buffer.is_empty() {
            // Everything was consumed: let the allocation go (it is freed once the payloads
            // split from it are), so that a connection that sends nothing for a while (a
            // player, an idle client) holds no receive buffer.
            self.buffer = BytesMut::new();
            return Ok(ChunkOutcome::NeedMoreBytes);
        }
        let buf = &self.buffer[..];
        let Some(&first) = buf.first() else {
            return Ok(ChunkOutcome::NeedMoreBytes);
        };
        let format = first >> 6;
        let (chunk_stream_id, mut position) = match first & 0x3F {
            0 => match buf.get(1) {
                Some(&b) => (b as u32 + 64, 2),
                None => return Ok(ChunkOutcome::NeedMoreBytes),
            },
            1 => match (buf.get(1), buf.get(2)) {
                (Some(&lo), Some(&hi)) => (hi as u32 * 256 + lo as u32 + 64, 3),
                _ => return Ok(ChunkOutcome::NeedMoreBytes),
            },
            id => (id as u32, 1),
        };
        let header_len = match format {
            0 => 11,
            1 => 7,
            2 => 3,
            _ => 0,
        };
        if buf.len() < position + header_len {
            return Ok(ChunkOutcome::NeedMoreBytes);
        }

        if format != 0 && !self.streams.contains_key(&chunk_stream_id) {
            return Err(ChunkError::NoPreviousHeader(chunk_stream_id));
        }
        if format == 0
            && !self.streams.contains_key(&chunk_stream_id)
            && self.streams.len() >= self.limits.max_chunk_streams
        {
            return Err(ChunkError::TooManyChunkStreams(
                self.limits.max_chunk_streams,
            ));
        }
        let mut state = self
            .streams
            .get(&chunk_stream_id)
            .cloned()
            .unwrap_or_default();
        let continuing = state.partial.is_some();

        let h = &buf[position..position + header_len];
        let read_u24 = |b: &[u8]| (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        let mut timestamp_field = state.timestamp_field;
        if format <= 2 {
            timestamp_field = read_u24(&h[0..3]);
        }
        if format <= 1 {
            let length = read_u24(&h[3..6]);
            if continuing && length != state.message_length {
                return Err(ChunkError::LengthChangedMidMessage(chunk_stream_id));
            }
            state.message_length = length;
            state.type_id = h[6];
        }
        if format == 0 {
            state.stream_id = u32::from_le_bytes([h[7], h[8], h[9], h[10]]);
        }
        position += header_len;

        let extended = if format == 3 {
            state.uses_extended_timestamp
        } else {
            timestamp_field >= EXTENDED_TIMESTAMP_MARKER
        };
        let mut extended_value = None;
        if extended {
            let Some(b) = buf.get(position..position + 4) else {
                return Ok(ChunkOutcome::NeedMoreBytes);
            };
            extended_value = Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            position += 4;
        }

        if state.message_length > self.limits.max_message_size {
            return Err(ChunkError::MessageTooLarge {
                size: state.message_length,
                limit: self.limits.max_message_size,
            });
        }
        let already = state.partial.as_ref().map_or(0, BytesMut::len) as u32;
        let wanted = (state.message_length - already).min(self.chunk_size) as usize;
        if buf.len() < position + wanted {
            return Ok(ChunkOutcome::NeedMoreBytes);
        }

        // The whole chunk is here: commit the header.
        if !continuing {
            let field = extended_value.unwrap_or(timestamp_field);
            state.timestamp = match format {
                0 => field,
                // Type 3 starting a new message repeats the previous delta.
                _ => state.timestamp.wrapping_add(field),
            };
            state.timestamp_field = timestamp_field;
            state.uses_extended_timestamp = extended;
            if format == 3 {
                // keep the delta; ffmpeg and librtmp do the same
                state.timestamp_field = timestamp_field;
            }
        }
        self.buffer.advance(position);
        let data = self.buffer.split_to(wanted);

        let total = state.message_length as usize;
        let mut partial = state.partial.take().unwrap_or_default();
        if partial.is_empty() && data.len() == total {
            state.partial = None;
            let message = RawMessage {
                chunk_stream_id,
                type_id: state.type_id,
                stream_id: state.stream_id,
                timestamp: state.timestamp,
                payload: data.freeze(),
            };
            self.streams.insert(chunk_stream_id, state);
            return Ok(ChunkOutcome::Message(message));
        }
        if self.partial_bytes + data.len() > self.limits.max_partial_bytes {
            return Err(ChunkError::TooMuchBuffered(self.limits.max_partial_bytes));
        }
        if partial.is_empty() {
            partial.reserve(total.min(64 * 1024));
        }
        partial.extend_from_slice(&data);
        self.partial_bytes += data.len();
        if partial.len() == total {
            self.partial_bytes -= partial.len();
            let message = RawMessage {
                chunk_stream_id,
                type_id: state.type_id,
                stream_id: state.stream_id,
                timestamp: state.timestamp,
                payload: partial.freeze(),
            };
            self.streams.insert(chunk_stream_id, state);
            return Ok(ChunkOutcome::Message(message));
        }
        state.partial = Some(partial);
        self.streams.insert(chunk_stream_id, state);
        Ok(ChunkOutcome::PartOfMessage)
    }
}

enum ChunkOutcome {
    NeedMoreBytes,
    PartOfMessage,
    Message(RawMessage),
}

#[derive(Debug, Clone, Copy)]
struct OutgoingChunkStream {
    timestamp: u32,
    message_length: u32,
    type_id: u8,
    stream_id: u32,
}

/// Cuts messages into chunks for one connection. Every byte a connection sends must go through
/// its one encoder, in order, since chunk headers are compressed against the previous ones.
pub struct ChunkEncoder {
    chunk_size: u32,
    /// Last header per chunk stream. A connection uses a handful of chunk streams, so a short
    /// list beats a hash map on the per-frame path.
    streams: Vec<(u32, OutgoingChunkStream)>,
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkEncoder {
    /// An encoder with the initial chunk size of 128.
    pub fn new() -> Self {
        ChunkEncoder {
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: Vec::new(),
        }
    }

    /// The chunk size in force.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Appends `message` as chunks to `batch`. A Set Chunk Size message (type 1) takes effect
    /// for the messages after it, as the peer will read them.
    pub fn encode(&mut self, message: &RawMessage, batch: &mut WriteBatch) {
        let length = message.payload.len() as u32;
        let previous = self
            .streams
            .iter()
            .find(|(id, _)| *id == message.chunk_stream_id)
            .map(|(_, last)| *last);
        let (format, timestamp_field) = match previous {
            Some(prev)
                if prev.stream_id == message.stream_id && message.timestamp >= prev.timestamp =>
            {
                let delta = message.timestamp - prev.timestamp;
                if prev.message_length == length && prev.type_id == message.type_id {
                    (2u8, delta)
                } else {
                    (1u8, delta)
                }
            }
            _ => (0u8, message.timestamp),
        };
        let extended = timestamp_field >= EXTENDED_TIMESTAMP_MARKER;
        let header = batch.header_space();
        write_basic_header(header, format, message.chunk_stream_id);
        let field = timestamp_field.min(EXTENDED_TIMESTAMP_MARKER);
        header.put_uint(field as u64, 3);
        if format <= 1 {
            header.put_uint(length as u64, 3);
            header.put_u8(message.type_id);
        }
        if format == 0 {
            header.put_u32_le(message.stream_id);
        }
        if extended {
            header.put_u32(timestamp_field);
        }
        let chunk = self.chunk_size as usize;
        let payload = &message.payload;
        let mut offset = 0;
        loop {
            let end = (offset + chunk).min(payload.len());
            batch.push_payload(payload.slice(offset..end));
            offset = end;
            if offset >= payload.len() {
                break;
            }
            let header = batch.header_space();
            write_basic_header(header, 3, message.chunk_stream_id);
            if extended {
                header.put_u32(timestamp_field);
            }
        }
        let last = OutgoingChunkStream {
            timestamp: message.timestamp,
            message_length: length,
            type_id: message.type_id,
            stream_id: message.stream_id,
        };
        match self
            .streams
            .iter_mut()
            .find(|(id, _)| *id == message.chunk_stream_id)
        {
            Some((_, slot)) => *slot = last,
            None => self.streams.push((message.chunk_stream_id, last)),
        }
        if message.type_id == 1 && payload.len() >= 4 {
            let size = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
            if size > 0 {
                self.chunk_size = size & 0x7FFF_FFFF;
            }
        }
    }
}

fn write_basic_header(out: &mut BytesMut, format: u8, chunk_stream_id: u32) {
    let format = format << 6;
    if chunk_stream_id < 64 {
        out.put_u8(format | chunk_stream_id as u8);
    } else if chunk_stream_id < 320 {
        out.put_u8(format);
        out.put_u8((chunk_stream_id - 64) as u8);
    } else {
        let id = (chunk_stream_id - 64).min(0xFFFF);
        out.put_u8(format | 1);
        out.put_u8((id & 0xFF) as u8);
        out.put_u8((id >> 8) as u8);
    }
}

/// Payloads shorter than this are copied next to their headers instead of getting their own
/// segment: fewer, larger iovecs for small messages.
const COPY_BELOW: usize = 512;

/// Segment slots an empty [`WriteBatch`] keeps: a frame is a header and a payload segment,
/// an audio frame leaving with a video frame one more.
const SEGMENTS_KEPT: usize = 8;

/// Bytes ready for one vectored write: chunk headers (small, owned) interleaved with payload
/// slices (shared `Bytes`, never copied when large).
#[derive(Default)]
pub struct WriteBatch {
    segments: Vec<Bytes>,
    pending: BytesMut,
    total: usize,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        WriteBatch::default()
    }

    fn header_space(&mut self) -> &mut BytesMut {
        if self.pending.capacity() - self.pending.len() < 64 {
            // Small: every connection holds one of these while idle.
            self.pending.reserve(1024);
        }
        &mut self.pending
    }

    fn push_payload(&mut self, payload: Bytes) {
        if payload.len() < COPY_BELOW {
            self.pending.extend_from_slice(&payload);
        } else {
            self.flush_pending();
            self.total += payload.len();
            self.segments.push(payload);
        }
    }

    fn flush_pending(&mut self) {
        if !self.pending.is_empty() {
            let bytes = self.pending.split().freeze();
            self.total += bytes.len();
            self.segments.push(bytes);
        }
    }

    /// Appends raw bytes (the handshake) to the batch.
    pub fn push_raw(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty() && self.pending.is_empty()
    }

    /// Total bytes waiting.
    pub fn len(&self) -> usize {
        self.total + self.pending.len()
    }

    /// Number of segments (iovecs) waiting.
    pub fn segment_count(&self) -> usize {
        self.segments.len() + usize::from(!self.pending.is_empty())
    }

    /// The segments to write, in order (finishes the pending header segment first).
    pub fn segments(&mut self) -> &[Bytes] {
        self.flush_pending();
        &self.segments
    }

    /// Points `slices` at the segments to write, in order, as many as fit; returns how many.
    /// The caller keeps the array on its stack ([`MAX_WRITE_SLICES`] entries): a vectored
    /// write then costs no allocation.
    pub fn io_slices<'a>(&'a mut self, slices: &mut [IoSlice<'a>]) -> usize {
        let segments = self.segments();
        for (slice, segment) in slices.iter_mut().zip(segments) {
            *slice = IoSlice::new(segment);
        }
        segments.len().min(slices.len())
    }

    /// Forgets the first `written` bytes after a (possibly partial) write. A batch emptied
    /// after a burst (a player's start, say) gives back its segment list.
    pub fn advance(&mut self, mut written: usize) {
        self.flush_pending();
        self.total -= written.min(self.total);
        let mut consumed = 0;
        for segment in &mut self.segments {
            if written == 0 {
                break;
            }
            if written >= segment.len() {
                written -= segment.len();
                consumed += 1;
            } else {
                segment.advance(written);
                written = 0;
            }
        }
        self.segments.drain(..consumed);
        if self.segments.is_empty() && self.segments.capacity() > SEGMENTS_KEPT {
            self.segments.shrink_to(SEGMENTS_KEPT);
        }
    }

    /// All bytes as one buffer (tests and small writes).
    pub fn to_vec(&mut self) -> Vec<u8> {
        self.segments()
            .iter()
            .flat_map(|s| s.iter().copied())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(csid: u32, type_id: u8, ts: u32, len: usize, fill: u8) -> RawMessage {
        RawMessage {
            chunk_stream_id: csid,
            type_id,
            stream_id: 1,
            timestamp: ts,
            payload: Bytes::from(vec![fill; len]),
        }
    }

    fn decode_all(bytes: &[u8], chunk_size: u32) -> Vec<RawMessage> {
        let mut decoder = ChunkDecoder::new(ChunkLimits::default());
        decoder.set_chunk_size(chunk_size).expect("valid");
        decoder.push(bytes);
        let mut out = Vec::new();
        while let Some(m) = decoder.next_message().expect("decodes") {
            out.push(m);
        }
        out
    }

    #[test]
    fn messages_survive_encode_then_decode_with_header_compression() {
        let messages = vec![
            message(6, 9, 0, 5000, 1),
            message(6, 9, 33, 5000, 2),
            message(6, 9, 66, 100, 3),
            message(4, 8, 20, 300, 4),
            message(6, 9, 0x0100_0000, 10, 5),
            message(6, 9, 0x0100_0021, 700, 6),
        ];
        let mut encoder = ChunkEncoder::new();
        let mut batch = WriteBatch::new();
        for m in &messages {
            encoder.encode(m, &mut batch);
        }
        assert_eq!(decode_all(&batch.to_vec(), 128), messages);
    }

    #[test]
    fn set_chunk_size_applies_to_following_messages() {
        let mut encoder = ChunkEncoder::new();
        let mut batch = WriteBatch::new();
        let set = RawMessage {
            chunk_stream_id: 2,
            type_id: 1,
            stream_id: 0,
            timestamp: 0,
            payload: Bytes::from_static(&[0, 0, 0x10, 0]),
        };
        encoder.encode(&set, &mut batch);
        encoder.encode(&message(6, 9, 0, 4000, 7), &mut batch);
        assert_eq!(encoder.chunk_size(), 4096);
        // one header + one chunk: the 4000-byte payload is one segment, shared not copied
        let bytes = batch.to_vec();
        let mut decoder = ChunkDecoder::new(ChunkLimits::default());
        decoder.push(&bytes);
        let first = decoder.next_message().expect("ok").expect("message");
        assert_eq!(first.type_id, 1);
        decoder.set_chunk_size(4096).expect("valid");
        let second = decoder.next_message().expect("ok").expect("message");
        assert_eq!(second.payload.len(), 4000);
    }

    #[test]
    fn large_payloads_are_referenced_not_copied() {
        let payload = Bytes::from(vec![9u8; 10_000]);
        let mut encoder = ChunkEncoder::new();
        encoder.chunk_size = 65536;
        let mut batch = WriteBatch::new();
        encoder.encode(
            &RawMessage {
                chunk_stream_id: 6,
                type_id: 9,
                stream_id: 1,
                timestamp: 0,
                payload: payload.clone(),
            },
            &mut batch,
        );
        let segments = batch.segments();
        assert_eq!(segments.len(), 2);
        assert_eq!(segments[1].as_ptr(), payload.as_ptr());
    }

    #[test]
    fn interleaved_chunk_streams_reassemble_separately() {
        // video message of 200 bytes on csid 6 split at 128, audio on csid 4 in between
        let mut bytes = vec![0x06, 0, 0, 0, 0, 0, 200, 9, 1, 0, 0, 0];
        bytes.extend(std::iter::repeat_n(0xAAu8, 128));
        bytes.extend_from_slice(&[0x04, 0, 0, 0, 0, 0, 3, 8, 1, 0, 0, 0, 1, 2, 3]);
        bytes.push(0xC6);
        bytes.extend(std::iter::repeat_n(0xAAu8, 72));
        let messages = decode_all(&bytes, 128);
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].type_id, 8);
        assert_eq!(messages[1].payload.len(), 200);
        assert!(messages[1].payload.iter().all(|&b| b == 0xAA));
    }

    #[test]
    fn oversized_message_is_refused_from_its_header() {
        let mut decoder = ChunkDecoder::new(ChunkLimits::default());
        decoder.push(&[0x06, 0, 0, 0, 0xFF, 0xFF, 0xFF, 9, 1, 0, 0, 0, 1, 2, 3]);
        assert!(matches!(
            decoder.next_message(),
            Err(ChunkError::MessageTooLarge { .. })
        ));
    }

    #[test]
    fn compressed_header_without_history_is_an_error() {
        let mut decoder = ChunkDecoder::new(ChunkLimits::default());
        decoder.push(&[0x46, 0, 0, 0, 0, 0, 3, 9]);
        assert_eq!(decoder.next_message(), Err(ChunkError::NoPreviousHeader(6)));
    }

    #[test]
    fn partial_writes_advance_across_segments() {
        let mut batch = WriteBatch::new();
        let mut encoder = ChunkEncoder::new();
        encoder.encode(&message(6, 9, 0, 1000, 1), &mut batch);
        let all = batch.to_vec();
        batch.advance(5);
        assert_eq!(batch.to_vec(), all[5..].to_vec());
        batch.advance(200);
        assert_eq!(batch.to_vec(), all[205..].to_vec());
        assert_eq!(batch.len(), all.len() - 205);
    }

    #[test]
    fn io_slices_cover_the_batch_in_order_as_far_as_they_fit() {
        let joined = |slices: &[IoSlice<'_>]| -> Vec<u8> {
            slices.iter().flat_map(|slice| slice.to_vec()).collect()
        };
        // 100 KB in 1 KiB chunks: a header and a shared payload slice per chunk, far more
        // segments than one write takes.
        let mut batch = WriteBatch::new();
        let mut encoder = ChunkEncoder::new();
        encoder.chunk_size = 1024;
        encoder.encode(&message(6, 9, 0, 100_000, 1), &mut batch);
        let all = batch.to_vec();
        let first = {
            let mut slices = [IoSlice::new(&[]); MAX_WRITE_SLICES];
            assert_eq!(batch.io_slices(&mut slices), MAX_WRITE_SLICES);
            joined(&slices)
        };
        assert_eq!(
            first,
            all[..first.len()].to_vec(),
            "the first segments, in order"
        );
        // After writing those, the rest follows on.
        batch.advance(first.len());
        let mut slices = [IoSlice::new(&[]); MAX_WRITE_SLICES];
        let count = batch.io_slices(&mut slices);
        let next = joined(&slices[..count]);
        assert_eq!(next, all[first.len()..first.len() + next.len()].to_vec());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed = 0x1234_5678u32;
        for _ in 0..2000 {
            let mut decoder = ChunkDecoder::new(ChunkLimits::default());
            let mut bytes = Vec::new();
            for _ in 0..(seed % 600) {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                bytes.push(seed as u8);
            }
            decoder.push(&bytes);
            while let Ok(Some(_)) = decoder.next_message() {}
        }
    }
}
