//! Fuzz target `handshake`: the server side of the RTMP handshake ([`Handshake::server`]) fed
//! arbitrary bytes from the connection's start, cut into arbitrary reads.
//!
//! Beyond not panicking it checks the contract the connection code relies on: the handshake fails
//! exactly when C0 is not version 3; it answers S0+S1 at once and S2 once C1 is complete; it
//! finishes exactly when C0+C1+C2 have arrived, handing back every byte that followed C2, which
//! then go to a [`ServerSession`](ascend_rtmp::ServerSession) as the chunk stream.

#![no_main]

use ascend_rtmp::handshake::{Handshake, HandshakeProgress, PACKET_SIZE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut handshake = Handshake::server();
    let mut fed = 0;
    let mut answered = 0;
    for piece in ascend_fuzz::pieces(data) {
        fed += piece.len();
        match handshake.process(piece) {
            Ok(HandshakeProgress::InProgress { response }) => {
                answered += response.len();
                assert_eq!(data[0], 3, "accepted C0 version {}", data[0]);
                let expected = if fed > PACKET_SIZE {
                    1 + 2 * PACKET_SIZE
                } else {
                    1 + PACKET_SIZE
                };
                assert_eq!(answered, expected, "answer after {fed} bytes");
            }
            Ok(HandshakeProgress::Done {
                response,
                remaining,
            }) => {
                answered += response.len();
                assert_eq!(data[0], 3, "accepted C0 version {}", data[0]);
                assert_eq!(answered, 1 + 2 * PACKET_SIZE, "S0+S1+S2 size");
                assert!(fed > 2 * PACKET_SIZE, "done after only {fed} bytes");
                assert_eq!(
                    remaining,
                    &data[1 + 2 * PACKET_SIZE..fed],
                    "bytes after C2 lost or changed"
                );
                ascend_fuzz::drive_server_session(&remaining);
                return;
            }
            Err(_) => {
                assert_ne!(data[0], 3, "version 3 refused");
                return;
            }
        }
    }
    assert!(
        data.is_empty() || fed <= 2 * PACKET_SIZE,
        "not done after C0+C1+C2 ({fed} bytes)"
    );
});
