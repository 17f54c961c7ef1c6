//! Fuzz target `message_parse`: a [`RawMessage`] of the type id given by the first input byte
//! and the rest as payload, through [`Message::parse`] (protocol control, user control, commands
//! in AMF0 and AMF3, data, shared object messages) and [`split_aggregate`].
//!
//! Aggregates are split recursively, as the protocol layer does with an aggregate inside an
//! aggregate, and every part is parsed. Parts must lie inside the aggregate: each takes its
//! 11-byte tag header and its payload from the body, keeps the aggregate's chunk stream and
//! message stream, and carries a 5-bit tag type.

#![no_main]

use ascend_rtmp::chunk::RawMessage;
use ascend_rtmp::message::{split_aggregate, Message};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fn check_aggregate(aggregate: &RawMessage) {
    let parts = split_aggregate(aggregate);
    let mut used = 0;
    for part in &parts {
        used += 11 + part.payload.len();
        assert_eq!(part.chunk_stream_id, aggregate.chunk_stream_id);
        assert_eq!(part.stream_id, aggregate.stream_id);
        assert!(
            part.type_id < 32,
            "tag type {} has more than 5 bits",
            part.type_id
        );
    }
    assert!(
        used <= aggregate.payload.len(),
        "parts take {used} bytes of a {}-byte aggregate",
        aggregate.payload.len()
    );
    for part in &parts {
        let _ = Message::parse(part);
        if part.type_id == 22 {
            check_aggregate(part);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&type_id, payload)) = data.split_first() else {
        return;
    };
    let raw = RawMessage {
        chunk_stream_id: 3,
        type_id,
        stream_id: 1,
        timestamp: 1000,
        payload: Bytes::copy_from_slice(payload),
    };
    let _ = Message::parse(&raw);
    check_aggregate(&raw);
});
