//! Bad input and bad peers against a real `ascend` process: each gets a clean close or a proper
//! answer and a log line; the server never panics; a stream running meanwhile loses nothing.

mod support;

use ascend_client::{RtmpClient, RtmpUrl};
use ascend_rtmp::amf::encode_amf0_values;
use ascend_rtmp::{build, AmfValue, ChunkEncoder, ClientEvent, ClientSession, ConnectOptions};
use ascend_rtmp::{RawMessage, WriteBatch};
use bytes::Bytes;
use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONFIG: &str = "[limits]\nhandshake_timeout_secs = 2\nconnect_timeout_secs = 3\n";

/// Reads until the server closes; panics if it stays open past `timeout`.
async fn expect_closed(socket: &mut TcpStream, timeout: Duration, what: &str) {
    let closed = tokio::time::timeout(timeout, async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "{what}: server kept the connection open");
}

fn pseudo_random(seed: &mut u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 17;
            *seed ^= *seed << 5;
            *seed as u8
        })
        .collect()
}

fn chunks(messages: &[RawMessage]) -> Vec<u8> {
    let mut encoder = ChunkEncoder::new();
    let mut batch = WriteBatch::new();
    for message in messages {
        encoder.encode(message, &mut batch);
    }
    batch.to_vec()
}

async fn random_bytes(port: u16) {
    let mut seed = 0xC0FFEE;
    for round in 0..3 {
        let mut socket = TcpStream::connect(("127.0.0.1", port)).await.expect("tcp");
        let mut bytes = pseudo_random(&mut seed, 5000);
        bytes[0] = if round == 0 { 0x16 } else { 0x03 };
        let _ = socket.write_all(&bytes).await;
        expect_closed(&mut socket, Duration::from_secs(8), "random bytes").await;
    }
}

async fn truncated_handshake(port: u16) {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).await.expect("tcp");
    let mut c0c1 = vec![0x03u8];
    c0c1.extend(std::iter::repeat_n(0u8, 700));
    socket.write_all(&c0c1).await.expect("partial C1");
    expect_closed(&mut socket, Duration::from_secs(8), "truncated handshake").await;
}

async fn huge_message_header(port: u16) {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).await.expect("tcp");
    ascend_client::handshake(&mut socket)
        .await
        .expect("handshake");
    // Type 0 header on chunk stream 3: length 0xFFFFFF (16 MiB), command type 20.
    let header = [
        0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, 20, 0, 0, 0, 0, 0x02, 0x00, 0x07,
    ];
    socket.write_all(&header).await.expect("header");
    expect_closed(&mut socket, Duration::from_secs(5), "16 MiB message").await;
}

async fn set_data_frame_before_connect(port: u16) {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).await.expect("tcp");
    let remaining = ascend_client::handshake(&mut socket)
        .await
        .expect("handshake");
    assert!(remaining.is_empty());
    let data = build::data(0, 0, &[AmfValue::string("@setDataFrame")]);
    let mut session = ClientSession::new();
    session.connect(&ConnectOptions {
        app: "livestreams".into(),
        tc_url: format!("rtmp://127.0.0.1:{port}/livestreams"),
        flash_ver: "test".into(),
        args: vec![],
        chunk_size: 128,
    });
    let mut messages = vec![data];
    messages.extend(session.take_outgoing());
    socket.write_all(&chunks(&messages)).await.expect("write");
    // The same connection still gets a proper connect answer.
    let answer = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = socket.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed after a bare @setDataFrame");
            session.receive_bytes(&buf[..n]);
            while let Some(event) = session.next_event().expect("protocol") {
                if let ClientEvent::Connected(info) = event {
                    return code_of(&info);
                }
            }
        }
    })
    .await
    .expect("connect answered");
    assert_eq!(answer, "NetConnection.Connect.Success");
}

async fn dates_and_amf3_in_commands(port: u16) {
    let url = RtmpUrl::parse(&format!("rtmp://127.0.0.1:{port}/livestreams")).expect("url");
    let date = AmfValue::Date {
        millis: 1_764_000_000_000.0,
        timezone_minutes: 0,
    };
    let mut client =
        RtmpClient::connect(&url, vec![date.clone(), AmfValue::ByteArray(vec![1, 2, 3])])
            .await
            .expect("connect with a Date and an AMF3 byte array");
    match client.call("noSuchMethod", &[date]).await {
        Err(ascend_client::ClientError::Refused(info)) => {
            assert_eq!(code_of(&info), "NetConnection.Call.Failed")
        }
        other => panic!("call with a Date not answered with _error: {other:?}"),
    }
    // A type-17 (AMF3) command whose argument is an AMF3 object: answered too.
    let mut body = vec![0u8];
    body.extend(encode_amf0_values(&[
        AmfValue::string("amf3Method"),
        AmfValue::Number(42.0),
        AmfValue::Null,
    ]));
    body.extend_from_slice(&[0x11, 0x0A, 0x0B, 0x01, 0x03, b'a', 0x04, 0x05, 0x01]);
    client.session().send(RawMessage {
        chunk_stream_id: 3,
        type_id: 17,
        stream_id: 0,
        timestamp: 0,
        payload: Bytes::from(body),
    });
    client.flush().await.expect("send");
    let answered = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let ClientEvent::CallResult {
                transaction_id,
                success,
                ..
            } = client.next_event().await.expect("event")
            {
                if transaction_id == 42.0 {
                    return success;
                }
            }
        }
    })
    .await
    .expect("AMF3 command answered");
    assert!(!answered, "unknown method answered with _result");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_cleanly_while_a_live_stream_loses_nothing() {
    let mut server = TestServer::start(&["livestreams"], CONFIG);
    let port = server.port;

    // A player waits for the stream; the publisher starts, bad input runs during it.
    let mut player = connect(&server, "livestreams").await.expect("player");
    player.play("steady").await.expect("play");
    let app_url = server.url("livestreams");
    let publisher = tokio::spawn(async move {
        publish_numbered_frames(&app_url, "steady", 300, 2000, 5, Duration::from_millis(50)).await
    });
    let receiver =
        tokio::spawn(
            async move { collect_numbered_frames(&mut player, Duration::from_secs(60)).await },
        );

    random_bytes(port).await;
    truncated_handshake(port).await;
    huge_message_header(port).await;
    set_data_frame_before_connect(port).await;
    dates_and_amf3_in_commands(port).await;

    let sent = publisher.await.expect("publisher task");
    let received = receiver.await.expect("player task");
    assert_eq!(received.len() as u32, sent, "player lost frames");
    assert!(
        received.windows(2).all(|w| w[1] == w[0] + 1),
        "frames out of order"
    );

    for expected in ["handshake", "exceeds the limit", "before connect"] {
        server.wait_for_log(expected, Duration::from_secs(5));
    }
    server.assert_healthy();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_that_never_reads_costs_bounded_memory_and_slows_no_one() {
    // A small ring makes the bound visible: 256 frames of 40 KB.
    let mut server = TestServer::start(
        &["livestreams"],
        "[hub]\nring_capacity = 256\n[limits]\nwrite_stall_timeout_secs = 60\n",
    );
    let mut stalled = connect(&server, "livestreams")
        .await
        .expect("stalled player");
    stalled.play("flood").await.expect("play");
    let mut reader = connect(&server, "livestreams")
        .await
        .expect("reading player");
    reader.play("flood").await.expect("play");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = server.rss_kib();

    let app_url = server.url("livestreams");
    let started = Instant::now();
    let publisher = tokio::spawn(async move {
        // 2500 frames × 40 KB = 100 MB through the server.
        publish_numbered_frames(
            &app_url,
            "flood",
            2500,
            40_000,
            10,
            Duration::from_millis(20),
        )
        .await
    });
    let receiver =
        tokio::spawn(
            async move { collect_numbered_frames(&mut reader, Duration::from_secs(90)).await },
        );
    let mut rss_peak = rss_before;
    while !publisher.is_finished() && started.elapsed() < Duration::from_secs(90) {
        rss_peak = rss_peak.max(server.rss_kib());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sent = publisher.await.expect("publisher");
    let received = receiver.await.expect("reader");
    assert_eq!(
        received.len() as u32,
        sent,
        "the reading player lost frames"
    );
    let growth_mib = rss_peak.saturating_sub(rss_before) / 1024;
    assert!(
        growth_mib < 48,
        "server memory grew by {growth_mib} MiB for a player that never reads"
    );
    drop(stalled);
    server.assert_healthy();
}
