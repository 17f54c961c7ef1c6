//! Reliability end to end: graceful shutdown, idle and slow peers, broken scripts, an
//! unwritable logs folder, and a soak of many short sessions beside a live stream. Real
//! `ascend` processes, real clients, every loop bounded.

mod support;

use ascend_client::RtmpClient;
use ascend_rtmp::ClientEvent;
use std::path::Path;
use std::time::{Duration, Instant};
use support::*;
use tokio::io::AsyncReadExt;

const WAIT: Duration = Duration::from_secs(30);
const MULTIPOINT: &str = include_str!("../samples/multipoint/main.asc");

async fn wait_for_code(client: &mut RtmpClient, code: &str, timeout: Duration) -> bool {
    tokio::time::timeout(timeout, async {
        loop {
            match client.next_event().await {
                Ok(ClientEvent::Status { info, .. }) if code_of(&info) == code => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    })
    .await
    .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_relayed_stream_stops_every_instance_within_five_seconds() {
    require_ffmpeg();
    let edge = TestServer::start(&["live"], "");
    let script = format!(
        "{MULTIPOINT}\napplication.onAppStop = function(info) {{ trace('onAppStop ' + application.name + ' ' + info.code); return false; }};\n"
    );
    let toml = format!("[config]\nedges = [{:?}]\n", edge.url("live"));
    let mut origin = TestServer::start_with_files(
        &["live"],
        &[("live/main.asc", &script), ("live/app.toml", &toml)],
        "",
    );
    let _publisher = FfmpegPublisher::start(&origin.url("live/news"), "320x240", 25, 60);
    wait_until_live(&edge.url("live/news"), WAIT).await;
    let mut local = connect(&origin, "live").await.expect("origin player");
    local.play("news").await.expect("play");
    let mut remote = connect(&edge, "live").await.expect("edge player");
    remote.play("news").await.expect("play");
    // A second instance, idle but running.
    let _other = connect(&origin, "live/second")
        .await
        .expect("second instance");

    origin.signal("TERM");
    let exited = origin
        .wait_exit(Duration::from_secs(8))
        .expect("ascend did not exit after SIGTERM");
    assert!(exited < Duration::from_secs(5), "shutdown took {exited:?}");
    for instance in ["live/_definst_", "live/second"] {
        let log = origin.instance_log(instance);
        assert!(
            log.contains(&format!("onAppStop {instance} Application.Shutdown")),
            "no onAppStop in {instance}:\n{log}"
        );
    }
    assert!(
        wait_for_code(&mut local, "NetStream.Play.UnpublishNotify", WAIT).await,
        "local player not told"
    );
    assert!(
        wait_for_code(&mut remote, "NetStream.Play.UnpublishNotify", WAIT).await,
        "edge player not told"
    );
    let log = origin.log();
    assert!(log.contains("shutdown complete"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_nothing_is_closed_after_the_idle_timeout_but_a_waiting_player_is_not() {
    let mut server = TestServer::start(&["live"], "[limits]\nidle_timeout_secs = 1\n");
    let mut idle = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .expect("tcp");
    ascend_client::handshake(&mut idle)
        .await
        .expect("handshake");
    let mut player = connect(&server, "live").await.expect("player");
    player
        .play("later")
        .await
        .expect("play a stream not live yet");
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 1024];
        loop {
            match idle.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "an idle client was never closed");
    server.wait_for_log("idle_timeout_secs", Duration::from_secs(5));
    // The waiting player is still served: a publisher arrives and it gets the stream.
    let mut publisher = connect(&server, "live").await.expect("publisher");
    publisher.publish("later").await.expect("publish");
    assert!(wait_for_code(&mut player, "NetStream.Play.PublishNotify", WAIT).await);
    server.assert_healthy();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_logs_folder_is_reported_and_nothing_else_changes() {
    let script = "application.onPublish = function(c, s) { trace('published ' + s.name); };";
    let mut server = TestServer::start_logging_to(
        "127.0.0.1:0",
        &["live"],
        &[("live/main.asc", script)],
        "",
        Some(Path::new("/dev/null/ascend-logs")),
    );
    let mut player = connect(&server, "live").await.expect("player");
    player.play("cam").await.expect("play");
    let app_url = server.url("live");
    let sent =
        publish_numbered_frames(&app_url, "cam", 50, 500, 5, Duration::from_millis(20)).await;
    let received = collect_numbered_frames(&mut player, WAIT).await;
    assert_eq!(received.len() as u32, sent);
    server.wait_for_log("cannot create the logs folder", Duration::from_secs(2));
    server.wait_for_log("instance log cannot be written", Duration::from_secs(5));
    server.wait_for_log("published cam", Duration::from_secs(5));
    server.assert_healthy();
}

const THROWING: &str = r#"
application.onAppStart = function() { throw new Error("onAppStart broke"); };
application.onConnect = function(client) { application.acceptConnection(client); throw new Error("onConnect broke"); };
application.onPublish = function() { throw new Error("onPublish broke"); };
application.onPlay = function() { throw new Error("onPlay broke"); };
application.onUnpublish = function() { throw new Error("onUnpublish broke"); };
application.onDisconnect = function() { throw new Error("onDisconnect broke"); };
Client.prototype.stuck = function() { while (true) {} };
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_that_throws_in_every_handler_or_hangs_costs_the_stream_nothing() {
    let mut server = TestServer::start_with_files(
        &["broken"],
        &[
            ("broken/main.asc", THROWING),
            (
                "broken/app.toml",
                "[script]\nloop_iteration_limit = 5000000\n",
            ),
        ],
        "",
    );
    let mut player = connect(&server, "broken")
        .await
        .expect("accepted before the throw");
    player.play("cam").await.expect("play");
    let app_url = server.url("broken");
    let publisher = tokio::spawn(async move {
        publish_numbered_frames(&app_url, "cam", 100, 800, 5, Duration::from_millis(40)).await
    });
    let mut caller = connect(&server, "broken").await.expect("caller");
    assert!(
        caller.call("stuck", &[]).await.is_err(),
        "an endless loop answered"
    );
    let sent = publisher.await.expect("publisher");
    let received = collect_numbered_frames(&mut player, WAIT).await;
    assert_eq!(received.len() as u32, sent, "broken handlers cost frames");
    for broken in [
        "onAppStart broke",
        "onConnect broke",
        "onPublish broke",
        "onPlay broke",
        "onUnpublish broke",
    ] {
        server.wait_for_instance_log("broken/_definst_", broken, WAIT);
    }
    drop(caller);
    server.wait_for_instance_log("broken/_definst_", "onDisconnect broke", WAIT);
    server.assert_healthy();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_target_that_stops_reading_slows_no_local_player() {
    let edge = TestServer::start(&["live"], "");
    let toml = format!("[config]\nedges = [{:?}]\n", edge.url("live"));
    let mut origin = TestServer::start_with_files(
        &["live"],
        &[("live/main.asc", MULTIPOINT), ("live/app.toml", &toml)],
        "",
    );
    let mut local = connect(&origin, "live").await.expect("origin player");
    local.play("flood").await.expect("play");
    let app_url = origin.url("live");
    // 50 MB through the origin in about four seconds, for 1.5 s of which the edge reads
    // nothing (SIGSTOP): more than the kernel's socket buffers between the two hold.
    let publisher = tokio::spawn(async move {
        publish_numbered_frames(
            &app_url,
            "flood",
            1000,
            50_000,
            10,
            Duration::from_millis(40),
        )
        .await
    });
    let received =
        tokio::spawn(
            async move { collect_numbered_frames(&mut local, Duration::from_secs(60)).await },
        );
    wait_until_live(&edge.url("live/flood"), WAIT).await;
    let mut far = connect(&edge, "live").await.expect("edge player");
    far.play("flood").await.expect("edge play");
    let far_frames =
        tokio::spawn(
            async move { collect_numbered_frames(&mut far, Duration::from_secs(60)).await },
        );
    edge.signal("STOP");
    // The publisher goes on meanwhile: the relay's socket fills, then the edge reads again
    // and the relay must carry on to the end of the stream.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    edge.signal("CONT");
    let sent = publisher.await.expect("publisher");
    let received = received.await.expect("player");
    assert_eq!(
        received.len() as u32,
        sent,
        "a stalled edge cost the origin's player frames"
    );
    let far_frames = far_frames.await.expect("edge player");
    let far_last = far_frames.iter().max().copied().unwrap_or(0);
    assert!(
        far_last + 25 >= sent,
        "the relay did not carry on after the edge read again: the edge player's last frame \
         is {far_last} of {sent} ({} received)",
        far_frames.len()
    );
    origin.assert_healthy();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_short_sessions_beside_a_live_stream_leak_nothing() {
    let mut server = TestServer::start(&["live"], "[limits]\nmax_connections_per_ip = 10000\n");
    let mut player = connect(&server, "live").await.expect("player");
    player.play("steady").await.expect("play");
    let url = ascend_client::RtmpUrl::parse(&server.url("live")).expect("url");
    // Warm up, then measure.
    for i in 0..200 {
        soak_cycle(&url, i).await;
    }
    let steady_url = server.url("live");
    let publisher = tokio::spawn(async move {
        publish_numbered_frames(
            &steady_url,
            "steady",
            400,
            200,
            4,
            Duration::from_millis(40),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = server.rss_kib();
    let fds_before = server.open_fds();
    let frames = tokio::spawn(async move {
        collect_numbered_frames(&mut player, Duration::from_secs(300)).await
    });
    let started = Instant::now();
    let workers: Vec<_> = (0..10)
        .map(|worker| {
            let url = url.clone();
            tokio::spawn(async move {
                for i in 0..1000 {
                    soak_cycle(&url, 1000 + worker * 1000 + i).await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("cycles");
    }
    let cycles_took = started.elapsed();
    let sent = publisher.await.expect("publisher");
    let received = frames.await.expect("player");
    assert_eq!(
        received.len() as u32,
        sent,
        "the live stream lost frames during the soak"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = server.rss_kib();
    let fds_after = server.open_fds();
    println!("soak: 10000 cycles in {cycles_took:?}; RSS {rss_before} -> {rss_after} KiB; fds {fds_before} -> {fds_after}");
    assert!(
        rss_after * 10 <= rss_before * 11,
        "RSS grew more than 10 %: {rss_before} -> {rss_after} KiB"
    );
    assert!(
        fds_after <= fds_before,
        "file descriptors leaked: {fds_before} -> {fds_after}"
    );
    server.assert_healthy();
}

/// One short session: connect, publish, send a frame, play it back, unpublish, disconnect.
async fn soak_cycle(url: &ascend_client::RtmpUrl, i: usize) {
    let mut client = RtmpClient::connect(url, vec![]).await.expect("connect");
    let name = format!("soak{i}");
    let stream = client.publish(&name).await.expect("publish");
    client
        .send(ascend_rtmp::build::video(
            stream,
            0,
            numbered_video_frame(0, 25, 64),
        ))
        .await
        .expect("frame");
    client.play(&name).await.expect("play");
    client.delete_stream(stream).await.expect("unpublish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_flooding_commands_without_reading_is_dropped_and_costs_no_one() {
    use tokio::io::AsyncWriteExt;
    let mut server = TestServer::start(&["live"], "[limits]\nmax_queued_messages = 256\n");
    let mut player = connect(&server, "live").await.expect("player");
    player.play("steady").await.expect("play");
    let app_url = server.url("live");
    let publisher = tokio::spawn(async move {
        publish_numbered_frames(&app_url, "steady", 100, 1000, 5, Duration::from_millis(40)).await
    });
    let frames =
        tokio::spawn(
            async move { collect_numbered_frames(&mut player, Duration::from_secs(60)).await },
        );

    // Connect properly, then send half a million calls and never read an answer.
    let mut flood = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .expect("tcp");
    ascend_client::handshake(&mut flood)
        .await
        .expect("handshake");
    let mut session = ascend_rtmp::ClientSession::new();
    session.connect(&ascend_rtmp::ConnectOptions {
        app: "live".into(),
        tc_url: server.url("live"),
        flash_ver: "flood".into(),
        args: vec![],
        chunk_size: 4096,
    });
    for _ in 0..2000 {
        session.call("_checkbw", &[]);
    }
    let mut encoder = ascend_rtmp::ChunkEncoder::new();
    let mut batch = ascend_rtmp::WriteBatch::new();
    for message in session.take_outgoing() {
        encoder.encode(&message, &mut batch);
    }
    let burst = batch.to_vec();
    let rss_before = server.rss_kib();
    let dropped = tokio::time::timeout(Duration::from_secs(30), async {
        for _ in 0..250 {
            if flood.write_all(&burst).await.is_err() {
                return true;
            }
        }
        false
    })
    .await;
    let rss_after = server.rss_kib();
    let sent = publisher.await.expect("publisher");
    let received = frames.await.expect("player");
    assert_eq!(
        received.len() as u32,
        sent,
        "the flood cost another client frames"
    );
    assert!(
        matches!(dropped, Ok(true) | Err(_)),
        "the flooding client was never dropped"
    );
    server.wait_for_log("max_queued_messages", Duration::from_secs(10));
    assert!(
        rss_after < rss_before + 64 * 1024,
        "flood grew the server by {} KiB",
        rss_after.saturating_sub(rss_before)
    );
    server.assert_healthy();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_limits_for_new_connections_and_keeps_the_old_ones() {
    let mut server = TestServer::start(&["live"], "");
    let mut first = connect(&server, "live").await.expect("first client");
    server.write_config("[limits]\nmax_connections_per_ip = 1\n");
    server.signal("HUP");
    server.wait_for_log("configuration reloaded", Duration::from_secs(10));
    assert!(
        connect(&server, "live").await.is_err(),
        "a second connection from the same address was accepted after the new limit"
    );
    server.wait_for_log("max_connections_per_ip reached", Duration::from_secs(5));
    // The connection that was already there goes on.
    first
        .publish("still-here")
        .await
        .expect("the existing client still works");
    // A configuration that does not parse keeps the old one.
    server.write_config("[limits]\nmax_conections = 3\n");
    server.signal("HUP");
    server.wait_for_log("configuration not reloaded", Duration::from_secs(10));
    server.assert_healthy();
}
