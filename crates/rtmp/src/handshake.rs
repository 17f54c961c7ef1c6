//! The RTMP handshake (C0/C1/C2 ⇄ S0/S1/S2), plain and Flash Player 9 digest variants.
//!
//! A thin wrapper over `rml_rtmp::handshake`, which does both variants well; it only gives the
//! result a shape that does not leak rml_rtmp's types into the rest of the project.

use rml_rtmp::handshake::{Handshake as RmlHandshake, HandshakeProcessResult, PeerType};

/// Size of C1/S1/C2/S2.
pub const PACKET_SIZE: usize = 1536;

/// What feeding bytes to the handshake produced.
#[derive(Debug, PartialEq, Eq)]
pub enum HandshakeProgress {
    /// Not finished: send `response` and read more.
    InProgress {
        /// Bytes to send to the peer.
        response: Vec<u8>,
    },
    /// Finished: send `response`; `remaining` bytes already belong to the chunk stream.
    Done {
        /// Bytes to send to the peer.
        response: Vec<u8>,
        /// Bytes received after the handshake.
        remaining: Vec<u8>,
    },
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
#[error("handshake failed: {0}")]
pub struct HandshakeError(String);

/// One side of a handshake.
pub struct Handshake {
    inner: RmlHandshake,
}

impl Handshake {
    /// The server side: waits for C0+C1.
    pub fn server() -> Self {
        Handshake {
            inner: RmlHandshake::new(PeerType::Server),
        }
    }

    /// The client side and its C0+C1, to send first.
    pub fn client() -> Result<(Self, Vec<u8>), HandshakeError> {
        let mut inner = RmlHandshake::new(PeerType::Client);
        let c0c1 = inner
            .generate_outbound_p0_and_p1()
            .map_err(|e| HandshakeError(e.to_string()))?;
        Ok((Handshake { inner }, c0c1))
    }

    /// Feeds received bytes.
    pub fn process(&mut self, bytes: &[u8]) -> Result<HandshakeProgress, HandshakeError> {
        match self.inner.process_bytes(bytes) {
            Ok(HandshakeProcessResult::InProgress { response_bytes }) => {
                Ok(HandshakeProgress::InProgress {
                    response: response_bytes,
                })
            }
            Ok(HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            }) => Ok(HandshakeProgress::Done {
                response: response_bytes,
                remaining: remaining_bytes,
            }),
            Err(e) => Err(HandshakeError(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_and_server_complete_a_handshake() {
        let (mut client, c0c1) = Handshake::client().expect("client starts");
        let mut server = Handshake::server();
        let HandshakeProgress::InProgress { response: s0s1s2 } =
            server.process(&c0c1).expect("server reads C0C1")
        else {
            panic!("server finished too early")
        };
        let HandshakeProgress::Done {
            response: c2,
            remaining,
        } = client.process(&s0s1s2).expect("client reads S0S1S2")
        else {
            panic!("client did not finish")
        };
        assert!(remaining.is_empty());
        let mut c2_and_more = c2;
        c2_and_more.extend_from_slice(&[1, 2, 3]);
        assert_eq!(
            server.process(&c2_and_more).expect("server reads C2"),
            HandshakeProgress::Done {
                response: vec![],
                remaining: vec![1, 2, 3]
            }
        );
    }

    #[test]
    fn a_wrong_version_byte_fails() {
        let mut server = Handshake::server();
        let mut bytes = vec![0x16u8];
        bytes.extend(std::iter::repeat_n(0u8, PACKET_SIZE));
        assert!(server.process(&bytes).is_err());
    }
}
