//! The RTMP protocol without IO: bytes in, messages and events out, messages to send queued.
//!
//! Layers, bottom up:
//! - [`handshake`]: C0/C1/C2 ⇄ S0/S1/S2 (plain and FP9 digest), over `rml_rtmp`.
//! - [`chunk`]: reassembling messages from chunks ([`chunk::ChunkDecoder`], bounded by
//!   [`chunk::ChunkLimits`]) and cutting them into chunks ([`chunk::ChunkEncoder`], writing
//!   headers only and sharing payloads, into a [`chunk::WriteBatch`] for one vectored write).
//! - [`amf`]: AMF0 values both ways and AMF3 decoding, with depth and size limits.
//! - [`message`]: what each message type means, and builders for the ones we send.
//! - [`protocol`]: housekeeping both roles share (chunk size, acknowledgements, pings, aggregates).
//! - [`server`] and [`client`]: the NetConnection / NetStream command layer of each role.
//!
//! Nothing here touches a socket, a clock or a thread: the server, the client crate and the
//! fuzz targets drive these types with bytes. Nothing here panics on what a peer sends.

pub mod amf;
pub mod chunk;
pub mod client;
pub mod handshake;
pub mod message;
pub mod protocol;
pub mod server;

pub use amf::AmfValue;
pub use chunk::{ChunkEncoder, ChunkLimits, RawMessage, WriteBatch, MAX_WRITE_SLICES};
pub use client::{ClientEvent, ClientSession, ConnectOptions};
pub use handshake::{Handshake, HandshakeProgress};
pub use message::{build, Command, Message, UserControl};
pub use server::{ConnectRequest, PublishMode, ServerEvent, ServerSession, ServerSessionConfig};
