//! Multipoint publishing end to end: several real `ascend` processes (and nginx-rtmp) on
//! loopback ports, scripts republishing and pulling, ffmpeg/ffprobe and the project's client
//! publishing and playing.

mod support;

use ascend_client::RtmpClient;
use ascend_rtmp::ClientEvent;
use std::time::{Duration, Instant};
use support::*;

const WAIT: Duration = Duration::from_secs(30);
const MULTIPOINT: &str = include_str!("../samples/multipoint/main.asc");
const EDGE_PULL: &str = include_str!("../samples/edge-pull/main.asc");

/// ffprobe's (codec_type, codec_name) pairs for `url`, and ffmpeg's decoded frame count over
/// 2 s with any decoder error text.
fn probe_and_decode(url: &str) -> (Vec<(String, String)>, u64, String) {
    let streams = probe(url)
        .into_iter()
        .map(|(kind, codec, _, _)| (kind, codec))
        .collect();
    let (frames, errors) = decode(url, 2);
    (streams, frames, errors)
}

fn assert_h264_aac_decodes(url: &str) {
    let (streams, frames, errors) = probe_and_decode(url);
    assert!(
        streams.contains(&("video".into(), "h264".into())),
        "{url}: {streams:?}"
    );
    assert!(
        streams.contains(&("audio".into(), "aac".into())),
        "{url}: {streams:?}"
    );
    assert!(frames >= 25, "{url}: only {frames} frames decoded in 2 s");
    assert!(errors.trim().is_empty(), "{url}: decoder errors: {errors}");
}

fn origin_files(edges: &[String]) -> Vec<(&'static str, String)> {
    let list: Vec<String> = edges.iter().map(|e| format!("{e:?}")).collect();
    vec![
        ("live/main.asc", MULTIPOINT.to_string()),
        (
            "live/app.toml",
            format!("[config]\nedges = [{}]\n", list.join(", ")),
        ),
    ]
}

fn start_origin(edges: &[String]) -> TestServer {
    let files = origin_files(edges);
    let borrowed: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
    TestServer::start_with_files(&["live"], &borrowed, "")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_republishes_into_another_instance_as_written() {
    require_ffmpeg();
    let seed = include_str!("../applications/livestreams/main.asc");
    let mut server =
        TestServer::start_with_files(&["livestreams"], &[("livestreams/main.asc", seed)], "");
    let publisher = FfmpegPublisher::start(&server.url("livestreams/localnews"), "320x240", 25, 12);
    let republished = server.url("livestreams/anotherinstance/localnews");
    wait_until_live(&republished, WAIT).await;
    assert_h264_aac_decodes(&republished);
    let (ok, err) = publisher.wait(WAIT);
    assert!(ok, "ffmpeg publisher failed: {err}");
    let log =
        server.wait_for_instance_log("livestreams/_definst_", "localnews is unpublishing", WAIT);
    assert_in_order(
        &log,
        &[
            "localnews is publishing into application livestreams/_definst_",
            "Republishing the stream into livestreams/anotherinstance",
            "Stream Status: NetStream.Publish.Start",
            "The stream is now publishing",
            "localnews is unpublishing",
        ],
    );
    // The republished instance ran the same script, which does not republish again there.
    let other = server.instance_log("livestreams/anotherinstance");
    assert!(
        other.contains("localnews is publishing into application livestreams/anotherinstance"),
        "{other}"
    );
    assert!(!other.contains("Republishing"), "{other}");
    server.assert_healthy();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_feeds_two_edges_late_joiners_get_keyframes_and_unpublish_reaches_edge_players() {
    require_ffmpeg();
    let mut chi = TestServer::start(&["live"], "");
    let mut la = TestServer::start(&["live"], "");
    let mut nyc = start_origin(&[chi.url("live"), la.url("live")]);
    let publisher = FfmpegPublisher::start(&nyc.url("live/news"), "320x240", 50, 10);
    for edge in [&chi, &la] {
        wait_until_live(&edge.url("live/news"), WAIT).await;
    }
    assert_h264_aac_decodes(&chi.url("live/news"));
    assert_h264_aac_decodes(&la.url("live/news"));

    // A late player on an edge starts with the sequence header and a keyframe.
    let mut players = Vec::new();
    for edge in [&chi, &la] {
        let mut player = connect(edge, "live").await.expect("edge player");
        player.play("news").await.expect("play");
        let first = tokio::time::timeout(WAIT, async {
            loop {
                if let ClientEvent::Video { payload, .. } =
                    player.next_event().await.expect("event")
                {
                    if !is_avc_sequence_header(&payload) {
                        return video_frame_type(&payload);
                    }
                }
            }
        })
        .await
        .expect("video on the edge");
        assert_eq!(first, 1, "first edge video frame is not a keyframe");
        players.push(player);
    }

    let (ok, err) = publisher.wait(WAIT);
    assert!(ok, "ffmpeg failed: {err}");
    for player in &mut players {
        let notified = tokio::time::timeout(WAIT, async {
            loop {
                if let ClientEvent::Status { info, .. } = player.next_event().await.expect("event")
                {
                    if code_of(&info) == "NetStream.Play.UnpublishNotify" {
                        return;
                    }
                }
            }
        })
        .await;
        assert!(notified.is_ok(), "an edge player got no UnpublishNotify");
    }
    nyc.wait_for_instance_log("live/_definst_", "relays of news stopped", WAIT);
    for server in [&mut nyc, &mut chi, &mut la] {
        server.assert_healthy();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_edge_costs_no_one_else_a_frame_and_is_fed_again_after_its_restart() {
    let chi_port = free_port();
    let chi_listen = format!("127.0.0.1:{chi_port}");
    let mut chi = TestServer::start_full(&chi_listen, &["live"], &[], "");
    let la = TestServer::start(&["live"], "");
    let mut nyc = start_origin(&[chi.url("live"), la.url("live")]);

    let mut local = connect(&nyc, "live").await.expect("origin player");
    local.play("feed").await.expect("play");
    let mut la_player = connect(&la, "live").await.expect("la player");
    la_player.play("feed").await.expect("play");
    let nyc_url = nyc.url("live");
    // 12 s of numbered frames; CHI dies and comes back meanwhile.
    let publisher = tokio::spawn(async move {
        publish_numbered_frames(&nyc_url, "feed", 300, 1200, 5, Duration::from_millis(200)).await
    });
    let local_frames =
        tokio::spawn(
            async move { collect_numbered_frames(&mut local, Duration::from_secs(90)).await },
        );
    let la_frames = tokio::spawn(async move {
        collect_numbered_frames(&mut la_player, Duration::from_secs(90)).await
    });

    wait_until_live(&chi.url("live/feed"), WAIT).await;
    chi.kill();
    nyc.wait_for_instance_log("live/_definst_", "NetConnection.Connect.Closed", WAIT);
    let mut chi = TestServer::start_full(&chi_listen, &["live"], &[], "");
    // The origin's script reconnects with backoff, nobody touches NYC.
    let mut chi_player = connect(&chi, "live").await.expect("restarted chi");
    chi_player.play("feed").await.expect("play");
    let fed_again = tokio::time::timeout(WAIT, async {
        let mut frames = 0;
        while frames < 5 {
            if let ClientEvent::Video { .. } = chi_player.next_event().await.expect("event") {
                frames += 1;
            }
        }
    })
    .await;
    assert!(
        fed_again.is_ok(),
        "the restarted edge was never fed again:\n{}",
        nyc.instance_log("live/_definst_")
    );

    let sent = publisher.await.expect("publisher");
    let local = local_frames.await.expect("origin player");
    let la = la_frames.await.expect("la player");
    assert_eq!(
        local.len() as u32,
        sent,
        "the origin's own player lost frames"
    );
    assert_eq!(la.len() as u32, sent, "the other edge's player lost frames");
    let log = nyc.instance_log("live/_definst_");
    assert!(log.contains("reconnecting to"), "{log}");
    for server in [&mut nyc, &mut chi] {
        server.assert_healthy();
    }
}

const FAULTS_SCRIPT: &str = r#"
application.onAppStart = function() {
    var dead = new NetConnection();
    dead.onStatus = function(info) { trace("dead port: " + info.code); };
    dead.connect(application.config.dead);
    var nc = new NetConnection();
    nc.greet = function(who) { trace("remote invoked greet " + who); return "hello " + who; };
    nc.onStatus = function(info) {
        trace("remote: " + info.code);
        if (info.code == "NetConnection.Connect.Success") {
            nc.call("add", { onResult: function(sum) { trace("remote add returned " + sum); } }, 2, 40);
            nc.call("missing", { onStatus: function(e) { trace("remote missing: " + e.code); } });
            var ns = new NetStream(nc);
            ns.onStatus = function(status) { trace("taken name: " + status.code); };
            ns.attach(Stream.get("anything"));
            ns.publish("taken", "live");
        }
    };
    nc.connect(application.config.remote);
};
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failed_refused_publish_and_calls_both_ways_reach_the_script() {
    // The remote application answers calls and calls back the connecting server.
    let remote_script = r#"
        Client.prototype.add = function(a, b) { return a + b; };
        application.onConnect = function(client) {
            application.acceptConnection(client);
            client.call("greet", { onResult: function(r) { trace("greet answered " + r); } }, "origin");
        };
    "#;
    let remote = TestServer::start_with_files(&["live"], &[("live/main.asc", remote_script)], "");
    // The name is already live on the remote server.
    let mut holder = connect(&remote, "live").await.expect("holder");
    holder.publish("taken").await.expect("publish");
    let toml = format!(
        "[config]\ndead = \"rtmp://127.0.0.1:{}/live\"\nremote = {:?}\n",
        free_port(),
        remote.url("live")
    );
    let started = Instant::now();
    let mut server = TestServer::start_with_files(
        &["faults"],
        &[
            ("faults/main.asc", FAULTS_SCRIPT),
            ("faults/app.toml", &toml),
        ],
        "",
    );
    // Instances start on their first connection.
    let _client = connect(&server, "faults").await.expect("connect");
    server.wait_for_instance_log(
        "faults/_definst_",
        "dead port: NetConnection.Connect.Failed",
        WAIT,
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "Connect.Failed took {:?}",
        started.elapsed()
    );
    server.wait_for_instance_log(
        "faults/_definst_",
        "remote: NetConnection.Connect.Success",
        WAIT,
    );
    server.wait_for_instance_log(
        "faults/_definst_",
        "taken name: NetStream.Publish.BadName",
        WAIT,
    );
    server.assert_healthy();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ascend_and_nginx_rtmp_relay_both_ways() {
    require_ffmpeg();
    let ascend_port = free_port();
    let ascend_listen = format!("127.0.0.1:{ascend_port}");
    // nginx pushes what it receives on "ingest" into Ascend's "live"; it plays anything on "live".
    let nginx = NginxRtmp::start(&format!(
        "application live {{ live on; }}\napplication ingest {{ live on; push rtmp://127.0.0.1:{ascend_port}/live; }}"
    ));
    let pull_script = r#"
        application.onAppStart = function() {
            var nc = new NetConnection();
            nc.onStatus = function(info) {
                trace("nginx: " + info.code);
                if (info.code == "NetConnection.Connect.Success") {
                    var pulled = Stream.get("pulled");
                    pulled.onStatus = function(status) { trace("pulled: " + status.code); };
                    pulled.play("source", -1, -1, true, nc);
                }
            };
            nc.connect(application.config.nginx);
        };
    "#;
    let files = origin_files(&[nginx.url("live")]);
    let pull_toml = format!("[config]\nnginx = {:?}\n", nginx.url("live"));
    let mut ascend = TestServer::start_full(
        &ascend_listen,
        &["live", "origin", "puller"],
        &[
            ("origin/main.asc", files[0].1.as_str()),
            ("origin/app.toml", files[1].1.as_str()),
            ("puller/main.asc", pull_script),
            ("puller/app.toml", pull_toml.as_str()),
        ],
        "",
    );

    // Ascend republishes into nginx-rtmp; ffprobe plays it from nginx.
    let _to_nginx = FfmpegPublisher::start(&ascend.url("origin/outbound"), "320x240", 25, 30);
    wait_until_live(&nginx.url("live/outbound"), WAIT).await;
    assert_h264_aac_decodes(&nginx.url("live/outbound"));

    // nginx-rtmp's push feeds Ascend; ffprobe plays it from Ascend.
    let _into_nginx = FfmpegPublisher::start(&nginx.url("ingest/inbound"), "320x240", 25, 30);
    wait_until_live(&ascend.url("live/inbound"), WAIT).await;
    assert_h264_aac_decodes(&ascend.url("live/inbound"));

    // Ascend's Stream.play pulls a stream from nginx-rtmp.
    let _source = FfmpegPublisher::start(&nginx.url("live/source"), "320x240", 25, 30);
    wait_until_live(&nginx.url("live/source"), WAIT).await;
    let _trigger = connect(&ascend, "puller")
        .await
        .expect("starts the puller instance");
    wait_until_live(&ascend.url("puller/pulled"), WAIT).await;
    assert_h264_aac_decodes(&ascend.url("puller/pulled"));
    ascend.wait_for_instance_log("puller/_definst_", "pulled: NetStream.Play.Start", WAIT);
    ascend.assert_healthy();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_three_hops_stays_decodable_and_an_edge_can_pull_on_demand() {
    require_ffmpeg();
    let third = TestServer::start(&["live"], "");
    let second = start_origin(&[third.url("live")]);
    let mut first = start_origin(&[second.url("live")]);
    let _publisher = FfmpegPublisher::start(&first.url("live/chain"), "320x240", 25, 30);
    wait_until_live(&third.url("live/chain"), WAIT).await;
    assert_h264_aac_decodes(&third.url("live/chain"));

    // An edge with the edge-pull sample pulls from the first hop when a player asks.
    let toml = format!("[config]\norigin = {:?}\n", first.url("live"));
    let mut edge = TestServer::start_with_files(
        &["live"],
        &[("live/main.asc", EDGE_PULL), ("live/app.toml", &toml)],
        "",
    );
    let mut player: RtmpClient = connect(&edge, "live").await.expect("edge player");
    player.play("chain").await.expect("play waits for the pull");
    let got_video = tokio::time::timeout(WAIT, async {
        loop {
            if let ClientEvent::Video { payload, .. } = player.next_event().await.expect("event") {
                if !is_avc_sequence_header(&payload) {
                    return video_frame_type(&payload);
                }
            }
        }
    })
    .await
    .expect("pulled stream reached the player");
    assert_eq!(
        got_video, 1,
        "the pulled stream does not start with a keyframe"
    );
    edge.wait_for_instance_log("live/_definst_", "pulling chain from", WAIT);
    first.assert_healthy();
    edge.assert_healthy();
}
