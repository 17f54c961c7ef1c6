//! What Ascend's fuzz targets share: cutting one input into reads the way a socket would, a
//! stand-in for the server that answers every [`ServerEvent`] the way `ascend-server` does, and
//! exact comparison of AMF values (NaN included).
//!
//! The targets live in `fuzz_targets/`; `cargo xtask fuzz` builds and runs them and
//! `tests/corpus/` keeps the inputs worth replaying on every `cargo test`.

use ascend_media::MediaFrame;
use ascend_rtmp::amf::AmfValue;
use ascend_rtmp::{ChunkEncoder, ServerEvent, ServerSession, ServerSessionConfig, WriteBatch};

/// Cuts `data` into consecutive pieces, as successive socket reads would deliver it.
///
/// The cut points come from the content itself (a hash seeds a xorshift generator), so an input
/// always replays with the same cuts, and the fuzzer explores other cuts by changing bytes.
/// Piece lengths are drawn up to a cap that is itself drawn: one byte at a time, a few bytes,
/// about a chunk, about a handshake packet, or the whole input at once.
pub fn pieces(data: &[u8]) -> Vec<&[u8]> {
    // FNV-1a, then xorshift64; `| 1` keeps the state non-zero.
    let mut state = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    }) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let cap = match next() % 6 {
        0 => 1,
        1 => 4,
        2 => 16,
        3 => 160,
        4 => 1600,
        _ => data.len().max(1),
    };
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let len = (1 + (next() % cap as u64) as usize).min(rest.len());
        let (piece, tail) = rest.split_at(len);
        out.push(piece);
        rest = tail;
    }
    out
}

/// Feeds `data` to a fresh [`ServerSession`] in [`pieces`], answering each event as the server
/// would (accepting connects, creating and starting streams, echoing calls, classifying media),
/// and chunk-encodes everything the session queues. Stops at the first protocol error, as the
/// server closes the connection then. Returns the number of events seen.
pub fn drive_server_session(data: &[u8]) -> usize {
    let mut session = ServerSession::new(ServerSessionConfig::default());
    let mut encoder = ChunkEncoder::new();
    let mut batch = WriteBatch::new();
    let mut events = 0;
    for piece in pieces(data) {
        session.receive_bytes(piece);
        loop {
            match session.next_event() {
                Ok(Some(event)) => {
                    events += 1;
                    answer(&mut session, event);
                }
                Ok(None) => break,
                Err(_) => return events,
            }
        }
        for message in session.take_outgoing() {
            encoder.encode(&message, &mut batch);
        }
        // What a writer would do with the batch: look at it, write it, forget it.
        let written: usize = batch.segments().iter().map(|s| s.len()).sum();
        assert_eq!(
            written,
            batch.len(),
            "batch length disagrees with its segments"
        );
        batch.advance(written);
        assert!(batch.is_empty(), "batch not empty after writing it all");
    }
    events
}

/// The owner's side of a [`ServerSession`]: what `ascend-server` answers to each event.
fn answer(session: &mut ServerSession, event: ServerEvent) {
    match event {
        ServerEvent::ConnectRequested(request) => {
            if request.app_name.is_empty() {
                session.reject_connect(&request, "NetConnection.Connect.InvalidApp", "", None);
            } else {
                session.accept_connect(&request);
            }
        }
        ServerEvent::CreateStreamRequested { transaction_id } => {
            session.create_stream(transaction_id);
        }
        ServerEvent::PublishRequested {
            stream_id, name, ..
        } => session.publish_started(stream_id, &name, "fuzz"),
        ServerEvent::PlayRequested {
            stream_id,
            name,
            reset,
            ..
        } => session.play_started(stream_id, &name, reset, "fuzz"),
        ServerEvent::StreamClosed { stream_id, .. } => {
            session.unpublish_succeeded(stream_id, "fuzz");
        }
        ServerEvent::Call { command, .. } => {
            // An application method that returns its arguments: they go back out re-encoded.
            session.result(command.transaction_id, &command.args);
        }
        ServerEvent::Audio {
            timestamp, payload, ..
        } => {
            let _ = MediaFrame::audio(timestamp, payload);
        }
        ServerEvent::Video {
            timestamp, payload, ..
        } => {
            let _ = MediaFrame::video(timestamp, payload).is_video_keyframe();
        }
        ServerEvent::Data {
            stream_id, values, ..
        } => session.notify(stream_id, "onData", &values),
        ServerEvent::PingResponse(time) => session.ping(time.wrapping_add(1)),
        // Call responses, shared objects, pause, receiveAudio/Video, buffer length, ignored
        // messages: nothing to send.
        _ => {}
    }
}

/// True when `a` and `b` are the same values, numbers compared bit for bit (so NaN equals the
/// same NaN, and 0 differs from -0).
pub fn same_values(a: &[AmfValue], b: &[AmfValue]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_value(a, b))
}

fn same_value(a: &AmfValue, b: &AmfValue) -> bool {
    let same_pairs = |a: &[(String, AmfValue)], b: &[(String, AmfValue)]| {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|((ka, va), (kb, vb))| ka == kb && same_value(va, vb))
    };
    match (a, b) {
        (AmfValue::Number(a), AmfValue::Number(b)) => a.to_bits() == b.to_bits(),
        (
            AmfValue::Date {
                millis: a,
                timezone_minutes: ta,
            },
            AmfValue::Date {
                millis: b,
                timezone_minutes: tb,
            },
        ) => a.to_bits() == b.to_bits() && ta == tb,
        (
            AmfValue::Object {
                class_name: ca,
                properties: pa,
            },
            AmfValue::Object {
                class_name: cb,
                properties: pb,
            },
        ) => ca == cb && same_pairs(pa, pb),
        (AmfValue::EcmaArray(a), AmfValue::EcmaArray(b)) => same_pairs(a, b),
        (AmfValue::StrictArray(a), AmfValue::StrictArray(b)) => same_values(a, b),
        _ => a == b,
    }
}
