//! Fuzz target `chunk_decoder`: Ascend's [`ChunkDecoder`] with the default [`ChunkLimits`] fed
//! arbitrary bytes, once whole and once cut into arbitrary reads.
//!
//! Set Chunk Size and Abort are applied as the protocol layer applies them. Both runs must give
//! the same messages, the same error (if any) and, without an error, the same bytes left over:
//! where a socket read ends must never change what is decoded. No message may exceed the size
//! limit.

#![no_main]

use ascend_rtmp::chunk::{ChunkDecoder, ChunkError, ChunkLimits, RawMessage};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq)]
struct Outcome {
    messages: Vec<RawMessage>,
    error: Option<ChunkError>,
    /// Bytes received but not consumed (compared only when there was no error: after an error
    /// the cut run has not even received the rest).
    left_over: Option<usize>,
}

fn decode(pieces: &[&[u8]]) -> Outcome {
    let limits = ChunkLimits::default();
    let mut decoder = ChunkDecoder::new(limits);
    let mut messages = Vec::new();
    for piece in pieces {
        decoder.push(piece);
        loop {
            let message = match decoder.next_message() {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(error) => {
                    return Outcome {
                        messages,
                        error: Some(error),
                        left_over: None,
                    }
                }
            };
            assert!(message.payload.len() <= limits.max_message_size as usize);
            let word = message
                .payload
                .get(..4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            match (message.type_id, word) {
                (1, Some(size)) => {
                    if let Err(error) = decoder.set_chunk_size(size) {
                        messages.push(message);
                        return Outcome {
                            messages,
                            error: Some(error),
                            left_over: None,
                        };
                    }
                }
                (2, Some(chunk_stream_id)) => decoder.abort(chunk_stream_id),
                _ => {}
            }
            messages.push(message);
        }
    }
    Outcome {
        messages,
        error: None,
        left_over: Some(decoder.buffered()),
    }
}

fuzz_target!(|data: &[u8]| {
    let whole = decode(&[data]);
    let cut = decode(&ascend_fuzz::pieces(data));
    assert_eq!(whole, cut, "decoding depends on where reads end");
});
