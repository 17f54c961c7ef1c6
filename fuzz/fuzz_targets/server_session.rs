//! Fuzz target `server_session`: a [`ServerSession`](ascend_rtmp::ServerSession), the server
//! side of a connection after the handshake, fed arbitrary bytes in arbitrary reads.
//!
//! After each read it takes events until `None` or an error (which ends the connection, as in
//! the server), answers them as the server would (accept the connect, create and start streams,
//! echo calls back, classify media frames) and chunk-encodes everything queued, so the encoder
//! and the message builders see whatever a peer managed to send. See
//! [`ascend_fuzz::drive_server_session`].

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ascend_fuzz::drive_server_session(data);
});
