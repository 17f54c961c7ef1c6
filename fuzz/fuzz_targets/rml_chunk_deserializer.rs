//! Fuzz target `rml_chunk_deserializer`, for the record: `rml_rtmp` 0.8's own
//! [`ChunkDeserializer`], which Ascend does not use (see `crates/rtmp/src/chunk.rs` for why: it
//! keeps one partial message per connection and panics on interleaved chunk streams). Driven the
//! way `rml_rtmp`'s server session drives it: bytes in, messages out until `None`, Set Chunk Size
//! applied. A crash here is an upstream finding, not a project crash; `cargo xtask fuzz` reports
//! it apart and does not fail on it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rml_rtmp::chunk_io::ChunkDeserializer;

fuzz_target!(|data: &[u8]| {
    let mut deserializer = ChunkDeserializer::new();
    for piece in ascend_fuzz::pieces(data) {
        let mut input = piece;
        loop {
            match deserializer.get_next_message(input) {
                Ok(Some(message)) => {
                    if message.type_id == 1 && message.data.len() >= 4 {
                        let size = u32::from_be_bytes([
                            message.data[0],
                            message.data[1],
                            message.data[2],
                            message.data[3],
                        ]);
                        if deserializer.set_max_chunk_size(size as usize).is_err() {
                            return;
                        }
                    }
                    input = &[];
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
