//! Replays the fuzz regression corpus, `tests/corpus/`: small hand-made malformed inputs plus
//! whatever crash inputs `cargo xtask fuzz` turned up (once fixed). One folder per kind of input,
//! each file one input, named after what is wrong with it:
//!
//! | folder       | an input is                                  | fuzz targets it seeds             |
//! |--------------|----------------------------------------------|-----------------------------------|
//! | `handshake/` | bytes from the connection's first byte       | `handshake`                       |
//! | `chunk/`     | bytes after the handshake (the chunk stream) | `chunk_decoder`, `server_session` |
//! | `amf/`       | an AMF0 body (AMF3 behind the 0x11 switch)   | `amf`, `amf_to_js`                |
//! | `message/`   | first byte the message type id, then the body | `message_parse`                  |
//! | `flv/`       | an FLV audio or video tag body               | `flv_classify`                    |
//!
//! Each file is replayed twice. Straight into the sans-IO parsers of `ascend-rtmp` whatever its
//! folder (handshake, chunk decoder whole and byte by byte, server session, AMF decode and
//! re-encode, every message type, aggregates): nothing may panic, and the chunk decoder must
//! decode the same whether the bytes come at once or one by one. Then against a real `ascend`
//! process, each file on its own TCP connection, all at once: raw bytes from the first byte
//! (`handshake/`) or after a real handshake (`chunk/`); as the arguments of an `echo` call that
//! the application's script answers (`amf/`); as a message of that type on a connected client
//! (`message/`); as audio and video on a published stream with a player (`flv/`). The server
//! must answer or close each connection within a bounded time, must not panic, and must then
//! still serve a normal publisher and player.

mod support;

use ascend_client::RtmpClient;
use ascend_rtmp::amf::{decode_amf0, encode_amf0_values, AmfError};
use ascend_rtmp::chunk::{ChunkDecoder, ChunkError, ChunkLimits};
use ascend_rtmp::handshake::{Handshake, HandshakeProgress, PACKET_SIZE};
use ascend_rtmp::message::{split_aggregate, Message};
use ascend_rtmp::{
    build, AmfValue, ChunkEncoder, ClientEvent, RawMessage, ServerEvent, ServerSession,
    ServerSessionConfig, WriteBatch,
};
use bytes::Bytes;
use std::path::Path;
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Short handshake and connect timeouts, so a connection left waiting is closed soon.
const CONFIG: &str = "[limits]\nhandshake_timeout_secs = 2\nconnect_timeout_secs = 3\n";
/// The application's script: a method that sends back what it was given, so every AMF input
/// goes to JavaScript and back.
const SCRIPT: &str = "Client.prototype.echo = function(value) { return value; };\n";
/// How long the server has to answer or close one corpus connection.
const ANSWER_WITHIN: Duration = Duration::from_secs(15);

/// Every corpus input: (folder, file name, bytes), sorted.
fn corpus() -> Vec<(String, String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files = Vec::new();
    for kind in ["handshake", "chunk", "amf", "message", "flv"] {
        let dir = root.join(kind);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus folder {} unreadable: {e}", dir.display()));
        let mut count = 0;
        for entry in entries {
            let path = entry.expect("corpus entry").path();
            let bytes = std::fs::read(&path).expect("corpus file");
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            files.push((kind.to_string(), name, bytes));
            count += 1;
        }
        assert!(count >= 5, "corpus folder {kind} has only {count} inputs");
    }
    files.sort();
    files
}

// ---- (a) straight into the sans-IO parsers ----

/// The server side of the handshake, given `bytes` in `step`-sized reads; the chunk stream after
/// it goes to a server session.
fn replay_handshake(bytes: &[u8], step: usize) {
    let mut handshake = Handshake::server();
    for piece in bytes.chunks(step) {
        match handshake.process(piece) {
            Ok(HandshakeProgress::InProgress { .. }) => {}
            Ok(HandshakeProgress::Done { remaining, .. }) => {
                assert!(bytes.len() > 2 * PACKET_SIZE, "handshake done too early");
                replay_session(&remaining, remaining.len().max(1));
                return;
            }
            Err(_) => {
                assert_ne!(bytes.first(), Some(&3), "version 3 refused");
                return;
            }
        }
    }
}

/// What the chunk decoder makes of `bytes` read `step` at a time, applying Set Chunk Size and
/// Abort as the protocol layer does: the messages and the error, if any.
fn decode_chunks(bytes: &[u8], step: usize) -> (Vec<RawMessage>, Option<ChunkError>) {
    let mut decoder = ChunkDecoder::new(ChunkLimits::default());
    let mut messages = Vec::new();
    for piece in bytes.chunks(step) {
        decoder.push(piece);
        loop {
            let message = match decoder.next_message() {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(error) => return (messages, Some(error)),
            };
            match Message::parse(&message) {
                Ok(Message::SetChunkSize(size)) => {
                    if let Err(error) = decoder.set_chunk_size(size) {
                        messages.push(message);
                        return (messages, Some(error));
                    }
                }
                Ok(Message::Abort(chunk_stream_id)) => decoder.abort(chunk_stream_id),
                _ => {}
            }
            messages.push(message);
        }
    }
    (messages, None)
}

/// A server session given `bytes` in `step`-sized reads, its events answered as the server
/// answers them, everything it queues chunk-encoded.
fn replay_session(bytes: &[u8], step: usize) {
    let mut session = ServerSession::new(ServerSessionConfig::default());
    let mut encoder = ChunkEncoder::new();
    let mut batch = WriteBatch::new();
    for piece in bytes.chunks(step) {
        session.receive_bytes(piece);
        loop {
            match session.next_event() {
                Ok(Some(ServerEvent::ConnectRequested(request))) => {
                    session.accept_connect(&request)
                }
                Ok(Some(ServerEvent::CreateStreamRequested { transaction_id })) => {
                    session.create_stream(transaction_id);
                }
                Ok(Some(ServerEvent::PublishRequested {
                    stream_id, name, ..
                })) => session.publish_started(stream_id, &name, "corpus"),
                Ok(Some(ServerEvent::PlayRequested {
                    stream_id, name, ..
                })) => session.play_started(stream_id, &name, true, "corpus"),
                Ok(Some(ServerEvent::Call { command, .. })) => {
                    session.result(command.transaction_id, &command.args);
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
        for message in session.take_outgoing() {
            encoder.encode(&message, &mut batch);
        }
        let _ = batch.to_vec();
        batch.advance(batch.len());
    }
}

/// AMF decoding, and for what decodes, encoding and decoding again.
fn replay_amf(bytes: &[u8]) {
    if let Ok(values) = decode_amf0(bytes) {
        match decode_amf0(&encode_amf0_values(&values)) {
            Ok(_) | Err(AmfError::TooManyValues) => {}
            Err(error) => panic!("re-encoded values do not decode: {error}"),
        }
    }
}

/// Every message type the protocol knows, with `body`; aggregates split recursively.
fn replay_messages(body: &[u8], extra_type: Option<u8>) {
    let types = [1u8, 2, 3, 4, 5, 6, 8, 9, 15, 16, 17, 18, 19, 20, 22];
    for type_id in types.into_iter().chain(extra_type) {
        let raw = RawMessage {
            chunk_stream_id: 3,
            type_id,
            stream_id: 1,
            timestamp: 0,
            payload: Bytes::copy_from_slice(body),
        };
        let _ = Message::parse(&raw);
        replay_aggregate(&raw);
    }
}

fn replay_aggregate(raw: &RawMessage) {
    for part in split_aggregate(raw) {
        assert!(
            part.payload.len() + 11 <= raw.payload.len(),
            "part outside its aggregate"
        );
        let _ = Message::parse(&part);
        if part.type_id == 22 {
            replay_aggregate(&part);
        }
    }
}

#[test]
fn every_corpus_input_goes_through_the_sans_io_parsers_without_panicking() {
    for (kind, name, bytes) in corpus() {
        let what = format!("{kind}/{name}");
        let result = std::panic::catch_unwind(|| {
            replay_handshake(&bytes, bytes.len().max(1));
            replay_handshake(&bytes, 7);
            let whole = decode_chunks(&bytes, bytes.len().max(1));
            let bytewise = decode_chunks(&bytes, 1);
            assert_eq!(whole, bytewise, "chunk decoding depends on where reads end");
            replay_session(&bytes, bytes.len().max(1));
            replay_session(&bytes, 1);
            replay_amf(&bytes);
            match (kind.as_str(), bytes.split_first()) {
                ("message", Some((&type_id, body))) => replay_messages(body, Some(type_id)),
                _ => replay_messages(&bytes, None),
            }
        });
        if let Err(panic) = result {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{what}: {message}");
        }
    }
}

// ---- (b) against a real server ----

/// How a corpus connection ended.
#[derive(Debug)]
enum Ending {
    /// The server sent something back (the probe call's answer, an S0S1S2...).
    Answered,
    /// The server closed the connection.
    Closed,
}

/// Reads until the server closes or sends something, at most [`ANSWER_WITHIN`].
async fn answer_or_close(socket: &mut TcpStream) -> Result<Ending, String> {
    let mut buffer = vec![0u8; 64 * 1024];
    match tokio::time::timeout(ANSWER_WITHIN, socket.read(&mut buffer)).await {
        Ok(Ok(0)) | Ok(Err(_)) => Ok(Ending::Closed),
        Ok(Ok(_)) => Ok(Ending::Answered),
        Err(_) => Err(format!(
            "neither answered nor closed within {ANSWER_WITHIN:?}"
        )),
    }
}

/// `handshake/`: the bytes as the connection's first bytes.
async fn raw_from_the_start(port: u16, bytes: Vec<u8>) -> Result<Ending, String> {
    let mut socket = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    if socket.write_all(&bytes).await.is_err() {
        return Ok(Ending::Closed);
    }
    answer_or_close(&mut socket).await
}

/// `chunk/`: the bytes after a real handshake.
async fn raw_after_handshake(port: u16, bytes: Vec<u8>) -> Result<Ending, String> {
    let mut socket = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    ascend_client::handshake(&mut socket)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    if socket.write_all(&bytes).await.is_err() {
        return Ok(Ending::Closed);
    }
    answer_or_close(&mut socket).await
}

/// After sending a corpus message on a connected client: an `echo` call must be answered
/// (result or error), or the connection closed, in time.
async fn probe(client: &mut RtmpClient) -> Result<Ending, String> {
    match tokio::time::timeout(
        ANSWER_WITHIN,
        client.call("echo", &[AmfValue::string("still there?")]),
    )
    .await
    {
        Ok(Ok(_)) | Ok(Err(ascend_client::ClientError::Refused(_))) => Ok(Ending::Answered),
        Ok(Err(_)) => Ok(Ending::Closed),
        Err(_) => Err(format!(
            "neither answered nor closed within {ANSWER_WITHIN:?}"
        )),
    }
}

/// `amf/` and `message/`: one message on a connected client, then the probe.
async fn message_on_connected_client(
    server_url: String,
    message: RawMessage,
) -> Result<Ending, String> {
    let url = ascend_client::RtmpUrl::parse(&server_url).map_err(|e| e.to_string())?;
    let mut client = RtmpClient::connect(&url, vec![])
        .await
        .map_err(|e| format!("connect: {e}"))?;
    if client.send(message).await.is_err() {
        return Ok(Ending::Closed);
    }
    probe(&mut client).await
}

/// The body of `echo(<corpus AMF>)` with transaction id `transaction_id`.
fn echo_call(transaction_id: f64, amf: &[u8]) -> Bytes {
    let mut body = encode_amf0_values(&[
        AmfValue::string("echo"),
        AmfValue::Number(transaction_id),
        AmfValue::Null,
    ]);
    body.extend_from_slice(amf);
    Bytes::from(body)
}

/// `flv/`: the tag body published as audio then video, with a player on the stream.
async fn published_with_a_player(
    server_url: String,
    stream: String,
    body: Vec<u8>,
) -> Result<Ending, String> {
    let url = ascend_client::RtmpUrl::parse(&server_url).map_err(|e| e.to_string())?;
    let mut publisher = RtmpClient::connect(&url, vec![])
        .await
        .map_err(|e| format!("publisher connect: {e}"))?;
    let stream_id = publisher
        .publish(&stream)
        .await
        .map_err(|e| format!("publish: {e}"))?;
    let mut player = RtmpClient::connect(&url, vec![])
        .await
        .map_err(|e| format!("player connect: {e}"))?;
    player
        .play(&stream)
        .await
        .map_err(|e| format!("play: {e}"))?;
    let body = Bytes::from(body);
    for message in [
        build::audio(stream_id, 0, body.clone()),
        build::video(stream_id, 0, body),
        build::video(stream_id, 40, Bytes::from_static(&[0x17, 1, 0, 0, 0, 0xAA])),
    ] {
        if publisher.send(message).await.is_err() {
            return Ok(Ending::Closed);
        }
    }
    let ending = probe(&mut publisher).await?;
    // The player still gets what follows: the keyframe sent after the corpus frames.
    let got_video = tokio::time::timeout(ANSWER_WITHIN, async {
        loop {
            match player.next_event().await {
                Ok(ClientEvent::Video { payload, .. }) if payload.last() == Some(&0xAA) => {
                    return true
                }
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    })
    .await
    .unwrap_or(false);
    if !got_video {
        return Err("the player did not get the frame after the corpus frames".into());
    }
    Ok(ending)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_corpus_input_against_a_real_server_is_answered_or_closed_and_the_server_lives_on() {
    let mut server = TestServer::start_with_files(&["live"], &[("live/main.asc", SCRIPT)], CONFIG);
    let port = server.port;
    let url = server.url("live");

    let mut tasks = Vec::new();
    for (index, (kind, name, bytes)) in corpus().into_iter().enumerate() {
        let what = format!("{kind}/{name}");
        let url = url.clone();
        let task = match kind.as_str() {
            "handshake" => tokio::spawn(raw_from_the_start(port, bytes)),
            "chunk" => tokio::spawn(raw_after_handshake(port, bytes)),
            "amf" => {
                let message = RawMessage {
                    chunk_stream_id: 3,
                    type_id: 20,
                    stream_id: 0,
                    timestamp: 0,
                    payload: echo_call(1000.0 + index as f64, &bytes),
                };
                tokio::spawn(message_on_connected_client(url, message))
            }
            "message" => {
                let Some((&type_id, body)) = bytes.split_first() else {
                    continue;
                };
                let message = RawMessage {
                    chunk_stream_id: 3,
                    type_id,
                    stream_id: 0,
                    timestamp: 0,
                    payload: Bytes::copy_from_slice(body),
                };
                tokio::spawn(message_on_connected_client(url, message))
            }
            _ => tokio::spawn(published_with_a_player(url, format!("flv{index}"), bytes)),
        };
        tasks.push((what, task));
    }

    let mut failures = Vec::new();
    let (mut answered, mut closed) = (0, 0);
    for (what, task) in tasks {
        match task.await {
            Ok(Ok(Ending::Answered)) => answered += 1,
            Ok(Ok(Ending::Closed)) => closed += 1,
            Ok(Err(error)) => failures.push(format!("{what}: {error}")),
            Err(panic) => failures.push(format!("{what}: task panicked: {panic}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} corpus input(s) failed:\n{}\nserver log:\n{}",
        failures.len(),
        failures.join("\n"),
        server.log()
    );
    eprintln!("corpus against the server: {answered} answered, {closed} closed");
    assert!(
        answered > 0 && closed > 0,
        "answered {answered}, closed {closed}"
    );
    server.assert_healthy();

    // A normal publisher and player still work.
    let mut publisher = connect(&server, "live").await.expect("publisher connects");
    let stream_id = publisher.publish("after-corpus").await.expect("publish");
    let mut player = connect(&server, "live").await.expect("player connects");
    player.play("after-corpus").await.expect("play");
    let header = Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f]);
    publisher
        .send(build::video(stream_id, 0, header))
        .await
        .expect("sequence header");
    for sequence in 0..5 {
        publisher
            .send(build::video(
                stream_id,
                sequence * 40,
                numbered_video_frame(sequence, 25, 300),
            ))
            .await
            .expect("frame");
    }
    let frames = tokio::time::timeout(Duration::from_secs(10), async {
        let mut numbers = Vec::new();
        while numbers.len() < 5 {
            match player.next_event().await {
                Ok(ClientEvent::Video { payload, .. }) => {
                    if let Some(n) = frame_sequence(&payload) {
                        numbers.push(n);
                    }
                }
                Ok(_) => {}
                Err(error) => panic!("player failed: {error}"),
            }
        }
        numbers
    })
    .await
    .expect("the player got the frames in time");
    assert_eq!(frames, vec![0, 1, 2, 3, 4]);
    server.assert_healthy();
}
