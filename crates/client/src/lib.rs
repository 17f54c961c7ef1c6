//! An RTMP client over tokio: handshake, connect with arguments, call with answers, publish,
//! play, media in and out.
//!
//! It drives [`ascend_rtmp::ClientSession`] over one `TcpStream`. The tests use it as a player
//! and publisher that can see every status code and frame, `cargo xtask bench` as its load
//! client, and the server's script runtime for server-side `NetConnection`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ascend_client::ClientError> {
//! use ascend_client::{RtmpClient, RtmpUrl};
//! let url = RtmpUrl::parse("rtmp://127.0.0.1:1935/livestreams")?;
//! let mut client = RtmpClient::connect(&url, vec![]).await?;
//! let stream_id = client.play("localnews").await?;
//! loop {
//!     let event = client.next_event().await?;
//!     println!("{stream_id}: {event:?}");
//! }
//! # }
//! ```

use ascend_rtmp::handshake::HandshakeError;
use ascend_rtmp::protocol::ProtocolError;
use ascend_rtmp::{
    AmfValue, ChunkEncoder, ClientEvent, ClientSession, ConnectOptions, Handshake,
    HandshakeProgress, PublishMode, RawMessage, WriteBatch, MAX_WRITE_SLICES,
};
use std::collections::VecDeque;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Chunk size the client sends with.
pub const CLIENT_CHUNK_SIZE: u32 = 4096;

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not `rtmp://host[:port]/app[/instance]`.
    #[error("bad RTMP URL {0:?}")]
    BadUrl(String),
    /// Socket error.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Handshake failed.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// The server broke the protocol.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The server closed the connection.
    #[error("connection closed by the server")]
    Closed,
    /// The server refused the connect: the info object (code, description, application).
    #[error("connect refused: {0}")]
    ConnectRefused(AmfValue),
    /// The server answered a request with an error status.
    #[error("refused: {0}")]
    Refused(AmfValue),
}

/// `rtmp://host[:port]/app[/instance]`, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    /// Host name or address.
    pub host: String,
    /// Port (1935 by default).
    pub port: u16,
    /// Application path (`app` or `app/instance`), may carry `?query`.
    pub app: String,
}

impl RtmpUrl {
    /// Parses a connection URL: everything after the host is the application path.
    pub fn parse(url: &str) -> Result<RtmpUrl, ClientError> {
        let bad = || ClientError::BadUrl(url.to_string());
        let rest = url.strip_prefix("rtmp://").ok_or_else(bad)?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().map_err(|_| bad())?),
            None => (authority, 1935),
        };
        if host.is_empty() {
            return Err(bad());
        }
        Ok(RtmpUrl {
            host: host.to_string(),
            port,
            app: path.trim_matches('/').to_string(),
        })
    }

    /// Splits a stream URL the way ffmpeg does: `rtmp://h/app/stream` is app `app`;
    /// `rtmp://h/app/instance/stream` is app `app/instance`; the rest is the stream name.
    pub fn parse_stream_url(url: &str) -> Result<(RtmpUrl, String), ClientError> {
        let mut parsed = RtmpUrl::parse(url)?;
        let path = parsed.app.clone();
        let parts: Vec<&str> = path.splitn(3, '/').collect();
        let (app, stream) = match parts.as_slice() {
            [app, stream] => (app.to_string(), stream.to_string()),
            [app, instance, stream] => (format!("{app}/{instance}"), stream.to_string()),
            _ => return Err(ClientError::BadUrl(url.to_string())),
        };
        parsed.app = app;
        Ok((parsed, stream))
    }

    /// The `tcUrl` for this URL.
    pub fn tc_url(&self) -> String {
        format!("rtmp://{}:{}/{}", self.host, self.port, self.app)
    }
}

/// One RTMP client connection.
pub struct RtmpClient {
    /// Shared so that a caller driving the client without waiting ([`RtmpClient::try_receive`],
    /// [`RtmpClient::try_flush`]) can wait for readiness on [`RtmpClient::socket`] while the
    /// client itself sits behind a lock.
    socket: Arc<TcpStream>,
    session: ClientSession,
    encoder: ChunkEncoder,
    read_buffer: Vec<u8>,
    /// With [`RtmpClient::stamp_arrivals`]: room for the kernel's receive timestamp, and the
    /// timestamp of the last read.
    arrivals: Option<Arrivals>,
    queued: VecDeque<ClientEvent>,
    /// Bytes encoded but not yet written: kept here so that a write interrupted by a
    /// cancelled future (in `select!`) resumes where it stopped.
    unwritten: WriteBatch,
    /// The info object of the connect answer.
    pub connect_info: AmfValue,
}

impl RtmpClient {
    /// Connects to `url` (handshake and `connect` with `args`), waiting for the answer.
    pub async fn connect(url: &RtmpUrl, args: Vec<AmfValue>) -> Result<RtmpClient, ClientError> {
        let socket = TcpStream::connect((url.host.as_str(), url.port)).await?;
        socket.set_nodelay(true)?;
        Self::connect_over(socket, url, args).await
    }

    /// Like [`RtmpClient::connect`] over an already open socket.
    pub async fn connect_over(
        socket: TcpStream,
        url: &RtmpUrl,
        args: Vec<AmfValue>,
    ) -> Result<RtmpClient, ClientError> {
        let mut socket = socket;
        let remaining = handshake(&mut socket).await?;
        let mut client = RtmpClient {
            socket: Arc::new(socket),
            session: ClientSession::new(),
            encoder: ChunkEncoder::new(),
            read_buffer: vec![0; 64 * 1024],
            arrivals: None,
            queued: VecDeque::new(),
            unwritten: WriteBatch::new(),
            connect_info: AmfValue::Null,
        };
        client.session.receive_bytes(&remaining);
        client.session.connect(&ConnectOptions {
            app: url.app.clone(),
            tc_url: url.tc_url(),
            flash_ver: "LNX 9,0,124,2".to_string(),
            args,
            chunk_size: CLIENT_CHUNK_SIZE,
        });
        client.flush().await?;
        loop {
            match client.next_event().await? {
                ClientEvent::Connected(info) => {
                    client.connect_info = info;
                    return Ok(client);
                }
                ClientEvent::ConnectFailed(info) => return Err(ClientError::ConnectRefused(info)),
                other => client.queued.push_back(other),
            }
        }
    }

    /// The session, to queue messages directly (then [`RtmpClient::flush`]).
    pub fn session(&mut self) -> &mut ClientSession {
        &mut self.session
    }

    /// Writes everything queued, in one vectored write where the socket allows. Cancel-safe:
    /// what a cancelled call did not write is written by the next one, in order.
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        for message in self.session.drain_outgoing() {
            self.encoder.encode(&message, &mut self.unwritten);
        }
        while !self.try_flush()? {
            self.socket.writable().await?;
        }
        Ok(())
    }

    /// Encodes what the session queued and writes what the socket takes now, without waiting:
    /// true when everything went, false when the socket is full (wait for
    /// [`TcpStream::writable`] on [`RtmpClient::socket`], then call again; the rest stays
    /// queued, in order).
    pub fn try_flush(&mut self) -> Result<bool, ClientError> {
        for message in self.session.drain_outgoing() {
            self.encoder.encode(&message, &mut self.unwritten);
        }
        while !self.unwritten.is_empty() {
            let written = {
                let mut slices = [IoSlice::new(&[]); MAX_WRITE_SLICES];
                let count = self.unwritten.io_slices(&mut slices);
                match self.socket.try_write_vectored(&slices[..count]) {
                    Ok(0) => return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into()),
                    Ok(written) => written,
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                        return Ok(false)
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(error) => return Err(error.into()),
                }
            };
            self.unwritten.advance(written);
        }
        Ok(true)
    }

    /// Reads what the socket has now into the session, without waiting: true when something
    /// was read, false when nothing was there (wait for [`TcpStream::readable`] on
    /// [`RtmpClient::socket`]). The events it makes come from [`RtmpClient::received_event`].
    pub fn try_receive(&mut self) -> Result<bool, ClientError> {
        let read = match &mut self.arrivals {
            None => self.socket.try_read(&mut self.read_buffer),
            Some(arrivals) => {
                let (socket, buffer) = (&self.socket, &mut self.read_buffer);
                socket.try_io(tokio::io::Interest::READABLE, || {
                    arrivals.receive(socket.as_raw_fd(), buffer)
                })
            }
        };
        match read {
            Ok(0) => Err(ClientError::Closed),
            Ok(n) => {
                self.session.receive_bytes(&self.read_buffer[..n]);
                Ok(true)
            }
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => Ok(false),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => Ok(true),
            Err(error) => Err(error.into()),
        }
    }

    /// From now on, asks the kernel when the bytes of each read reached the socket
    /// (`SO_TIMESTAMPNS`): see [`RtmpClient::last_arrival`]. A load client that reads many
    /// sockets in one thread reads some late; the kernel's time is when the bytes arrived,
    /// whatever the reader was busy with.
    pub fn stamp_arrivals(&mut self) -> Result<(), ClientError> {
        use nix::sys::socket::{setsockopt, sockopt::ReceiveTimestampns};
        setsockopt(&*self.socket, ReceiveTimestampns, &true).map_err(std::io::Error::from)?;
        self.arrivals = Some(Arrivals {
            control: nix::cmsg_space!(nix::sys::time::TimeSpec),
            last: None,
        });
        Ok(())
    }

    /// With [`RtmpClient::stamp_arrivals`]: when the last segment of the last read reached
    /// the socket (the kernel's clock, `CLOCK_REALTIME`). Every event the session made from
    /// that read was complete by then, or earlier.
    pub fn last_arrival(&self) -> Option<SystemTime> {
        self.arrivals.as_ref().and_then(|arrivals| arrivals.last)
    }

    /// The next event from what was already received, without IO. Acknowledgements and ping
    /// answers the session queues go out with the next flush.
    pub fn received_event(&mut self) -> Result<Option<ClientEvent>, ClientError> {
        if let Some(event) = self.queued.pop_front() {
            return Ok(Some(event));
        }
        Ok(self.session.next_event()?)
    }

    /// The socket, to wait for readiness while driving the client with
    /// [`RtmpClient::try_receive`] and [`RtmpClient::try_flush`].
    pub fn socket(&self) -> Arc<TcpStream> {
        Arc::clone(&self.socket)
    }

    /// Queues and writes one message (media or data when publishing).
    pub async fn send(&mut self, message: RawMessage) -> Result<(), ClientError> {
        self.session.send(message);
        self.flush().await
    }

    /// The next event from the server, reading as needed. Cancel-safe.
    pub async fn next_event(&mut self) -> Result<ClientEvent, ClientError> {
        if let Some(event) = self.queued.pop_front() {
            return Ok(event);
        }
        self.next_event_from_socket().await
    }

    /// Waits for an event matching `want`, keeping the others queued in order.
    async fn wait_for<T>(
        &mut self,
        mut want: impl FnMut(&ClientEvent) -> Option<Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        let mut skipped = VecDeque::new();
        let result = loop {
            let event = match self.queued.pop_front() {
                Some(event) => event,
                None => match self.next_event_from_socket().await {
                    Ok(event) => event,
                    Err(e) => break Err(e),
                },
            };
            match want(&event) {
                Some(result) => break result,
                None => skipped.push_back(event),
            }
        };
        skipped.append(&mut self.queued);
        self.queued = skipped;
        result
    }

    async fn next_event_from_socket(&mut self) -> Result<ClientEvent, ClientError> {
        loop {
            if let Some(event) = self.session.next_event()? {
                // Acknowledgements and ping answers queued by the session go out at once. The
                // event waits in the queue meanwhile, so a cancelled flush loses nothing.
                self.queued.push_back(event);
                self.flush().await?;
                if let Some(event) = self.queued.pop_front() {
                    return Ok(event);
                }
                continue;
            }
            if !self.try_receive()? {
                self.socket.readable().await?;
            }
        }
    }

    /// createStream, waiting for the stream id.
    pub async fn create_stream(&mut self) -> Result<u32, ClientError> {
        let tx = self.session.create_stream();
        self.flush().await?;
        self.wait_for(|event| match event {
            ClientEvent::StreamCreated {
                transaction_id,
                stream_id,
            } if *transaction_id == tx => Some(Ok(*stream_id)),
            ClientEvent::CallResult {
                transaction_id,
                values,
                ..
            } if *transaction_id == tx => Some(Err(ClientError::Refused(
                values.first().cloned().unwrap_or(AmfValue::Null),
            ))),
            _ => None,
        })
        .await
    }

    /// Publishes `name` live the way ffmpeg does (releaseStream, FCPublish, createStream,
    /// publish), waiting for NetStream.Publish.Start; any error status is returned as
    /// [`ClientError::Refused`]. Returns the stream id.
    pub async fn publish(&mut self, name: &str) -> Result<u32, ClientError> {
        self.session
            .call("releaseStream", &[AmfValue::string(name)]);
        self.session
            .send_command(0, "FCPublish", &[AmfValue::string(name)]);
        let stream_id = self.create_stream().await?;
        self.session.publish(stream_id, name, PublishMode::Live);
        self.flush().await?;
        self.wait_for(|event| match event {
            ClientEvent::Status { stream_id: s, info } if *s == stream_id => {
                match info.get_str("code") {
                    Some("NetStream.Publish.Start") => Some(Ok(stream_id)),
                    _ if info.get_str("level") == Some("error") => {
                        Some(Err(ClientError::Refused(info.clone())))
                    }
                    _ => None,
                }
            }
            _ => None,
        })
        .await
    }

    /// Plays `name` (live), waiting for NetStream.Play.Start. Media follows as events.
    pub async fn play(&mut self, name: &str) -> Result<u32, ClientError> {
        let stream_id = self.create_stream().await?;
        self.session.play(stream_id, name, -2.0);
        self.flush().await?;
        self.wait_for(|event| match event {
            ClientEvent::Status { stream_id: s, info } if *s == stream_id => {
                match info.get_str("code") {
                    Some("NetStream.Play.Start") => Some(Ok(stream_id)),
                    _ if info.get_str("level") == Some("error") => {
                        Some(Err(ClientError::Refused(info.clone())))
                    }
                    _ => None,
                }
            }
            _ => None,
        })
        .await
    }

    /// Calls `method` on the server and waits for `_result` (Ok) or `_error` (Err(Refused)).
    pub async fn call(
        &mut self,
        method: &str,
        args: &[AmfValue],
    ) -> Result<Vec<AmfValue>, ClientError> {
        let tx = self.session.call(method, args);
        self.flush().await?;
        self.wait_for(|event| match event {
            ClientEvent::CallResult {
                transaction_id,
                success,
                values,
            } if *transaction_id == tx => Some(if *success {
                Ok(values.clone())
            } else {
                Err(ClientError::Refused(
                    values.first().cloned().unwrap_or(AmfValue::Null),
                ))
            }),
            _ => None,
        })
        .await
    }

    /// Stops a stream (closeStream + deleteStream).
    pub async fn delete_stream(&mut self, stream_id: u32) -> Result<(), ClientError> {
        self.session.delete_stream(stream_id);
        self.flush().await
    }

    /// Writes raw bytes on the socket, bypassing the session (for bad-input tests).
    pub async fn write_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let mut rest = bytes;
        while !rest.is_empty() {
            match self.socket.try_write(rest) {
                Ok(0) => return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into()),
                Ok(written) => rest = &rest[written..],
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                    self.socket.writable().await?
                }
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }

    /// The local address of the socket.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.socket.local_addr()
    }
}

/// Runs the client side of the handshake on `socket`; returns bytes that followed S2.
/// (Public so tests can speak raw chunks to a server after a real handshake.)
pub async fn handshake(socket: &mut TcpStream) -> Result<Vec<u8>, ClientError> {
    let (handshake, c0c1) = Handshake::client()?;
    drive_handshake(socket, handshake, &c0c1).await
}

/// Drives either side of a handshake over `socket`: sends `first` (C0+C1 for a client,
/// nothing for a server), then answers what the peer sends until the handshake is done.
/// Returns the bytes that followed it. The server uses this too.
pub async fn drive_handshake(
    socket: &mut TcpStream,
    mut handshake: Handshake,
    first: &[u8],
) -> Result<Vec<u8>, ClientError> {
    if !first.is_empty() {
        socket.write_all(first).await?;
    }
    let mut buffer = vec![0u8; 4096];
    loop {
        let n = socket.read(&mut buffer).await?;
        if n == 0 {
            return Err(ClientError::Closed);
        }
        let (response, remaining) = match handshake.process(&buffer[..n])? {
            HandshakeProgress::InProgress { response } => (response, None),
            HandshakeProgress::Done {
                response,
                remaining,
            } => (response, Some(remaining)),
        };
        if !response.is_empty() {
            socket.write_all(&response).await?;
        }
        if let Some(remaining) = remaining {
            return Ok(remaining);
        }
    }
}

/// Kernel receive timestamps for [`RtmpClient::stamp_arrivals`].
///
/// Written here rather than taken from a crate: tokio reads with `read(2)`, which returns no
/// control messages, so the read itself goes through `recvmsg(2)` (nix's safe wrapper) inside
/// tokio's readiness bookkeeping (`TcpStream::try_io`).
struct Arrivals {
    /// Room for one `SCM_TIMESTAMPNS` control message.
    control: Vec<u8>,
    /// The kernel's time for the last read, if it gave one.
    last: Option<SystemTime>,
}

impl Arrivals {
    /// One `recvmsg` into `buffer`, keeping the timestamp it came with. For TCP the kernel
    /// gives the arrival of the newest segment the read consumed, so every byte read was there
    /// by then.
    fn receive(&mut self, fd: std::os::fd::RawFd, buffer: &mut [u8]) -> std::io::Result<usize> {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
        let mut slices = [IoSliceMut::new(buffer)];
        let message = recvmsg::<()>(fd, &mut slices, Some(&mut self.control), MsgFlags::empty())
            .map_err(std::io::Error::from)?;
        let read = message.bytes;
        // A read without a stamp leaves none: never an older read's, which would be early.
        self.last = None;
        for control in message.cmsgs().map_err(std::io::Error::from)? {
            if let ControlMessageOwned::ScmTimestampns(stamp) = control {
                let since_epoch = Duration::new(
                    u64::try_from(stamp.tv_sec()).unwrap_or(0),
                    u32::try_from(stamp.tv_nsec()).unwrap_or(0),
                );
                self.last = Some(SystemTime::UNIX_EPOCH + since_epoch);
            }
        }
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_urls_split_like_ffmpeg() {
        let (url, stream) =
            RtmpUrl::parse_stream_url("rtmp://127.0.0.1:1940/livestreams/localnews").expect("ok");
        assert_eq!(
            (url.port, url.app.as_str(), stream.as_str()),
            (1940, "livestreams", "localnews")
        );
        let (url, stream) =
            RtmpUrl::parse_stream_url("rtmp://h/livestreams/anotherinstance/localnews")
                .expect("ok");
        assert_eq!(
            (url.port, url.app.as_str(), stream.as_str()),
            (1935, "livestreams/anotherinstance", "localnews")
        );
        assert!(RtmpUrl::parse("http://h/x").is_err());
    }
}
