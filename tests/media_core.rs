//! The media core end to end: ffmpeg publishes, ffprobe / ffmpeg / the project's client play,
//! against a real `ascend` process on a free loopback port.

mod support;

use ascend_client::{ClientError, RtmpClient, RtmpUrl};
use ascend_rtmp::{AmfValue, ClientEvent};
use std::time::{Duration, Instant};
use support::*;

const LIVE_TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_stream_is_probed_as_h264_and_aac_and_two_players_decode_it() {
    require_ffmpeg();
    let mut server = TestServer::start(&["livestreams"], "");
    let url = server.url("livestreams/probe");
    let _publisher = FfmpegPublisher::start(&url, "320x240", 25, 40);
    wait_until_live(&url, LIVE_TIMEOUT).await;

    let streams = probe(&url);
    assert!(
        streams.contains(&("video".into(), "h264".into(), 320, 240)),
        "streams: {streams:?}"
    );
    assert!(
        streams.iter().any(|s| s.0 == "audio" && s.1 == "aac"),
        "streams: {streams:?}"
    );

    // Two players at once, each decoding 3 s without a single decoder error.
    let players: Vec<_> = (0..2)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || decode(&url, 3))
        })
        .collect();
    for player in players {
        let (frames, errors) = player.join().expect("player thread");
        assert!(frames >= 50, "only {frames} frames decoded in 3 s");
        assert!(errors.trim().is_empty(), "decoder errors: {errors}");
    }
    server.wait_for_log("play", Duration::from_secs(1));
    server.assert_healthy();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_player_gets_headers_then_a_keyframe_at_once() {
    require_ffmpeg();
    let mut server = TestServer::start(&["livestreams"], "");
    let url = server.url("livestreams/late");
    let publish_started = Instant::now();
    // A keyframe every 2 s (50 frames at 25 fps): without the cached group a late player
    // would wait up to 2 s for the next one.
    let _publisher = FfmpegPublisher::start(&url, "320x240", 50, 40);
    wait_until_live(&url, LIVE_TIMEOUT).await;
    let since_publish = publish_started.elapsed();
    if since_publish < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_secs(3) - since_publish).await;
    }

    let (app, stream) = RtmpUrl::parse_stream_url(&url).expect("url");
    let mut player = RtmpClient::connect(&app, vec![]).await.expect("connect");
    let stream_id = player.create_stream().await.expect("createStream");
    let play_requested = Instant::now();
    player.session().play(stream_id, &stream, -2.0);
    player.flush().await.expect("play sent");
    let mut saw_sequence_header = false;
    let (first_frame_type, waited) = loop {
        match player.next_event().await.expect("event") {
            ClientEvent::Video { payload, .. } if is_avc_sequence_header(&payload) => {
                saw_sequence_header = true;
            }
            ClientEvent::Video { payload, .. } => {
                break (video_frame_type(&payload), play_requested.elapsed())
            }
            _ => {}
        }
        assert!(
            play_requested.elapsed() < Duration::from_secs(10),
            "no video"
        );
    };
    assert!(
        saw_sequence_header,
        "no AVC sequence header before the first frame"
    );
    assert_eq!(first_frame_type, 1, "first video frame is not a keyframe");
    assert!(
        waited < Duration::from_millis(500),
        "first video frame came {waited:?} after play"
    );
    server.assert_healthy();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_of_one_application_keep_separate_streams() {
    require_ffmpeg();
    let mut server = TestServer::start(&["livestreams"], "");
    let url_a = server.url("livestreams/instanceA/cam");
    let url_b = server.url("livestreams/instanceB/cam");
    let _a = FfmpegPublisher::start(&url_a, "320x240", 25, 40);
    let _b = FfmpegPublisher::start(&url_b, "640x360", 25, 40);
    wait_until_live(&url_a, LIVE_TIMEOUT).await;
    wait_until_live(&url_b, LIVE_TIMEOUT).await;
    let video = |streams: Vec<(String, String, u64, u64)>| {
        streams
            .into_iter()
            .find(|s| s.0 == "video")
            .map(|s| (s.2, s.3))
    };
    assert_eq!(video(probe(&url_a)), Some((320, 240)));
    assert_eq!(video(probe(&url_b)), Some((640, 360)));
    // The same name in the default instance is not live at all.
    let mut client = connect(&server, "livestreams").await.expect("connect");
    let id = client
        .play("cam")
        .await
        .expect("play waits for a publisher");
    let got_media = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            if let ClientEvent::Video { stream_id, .. } = client.next_event().await.expect("event")
            {
                if stream_id == id {
                    return;
                }
            }
        }
    })
    .await;
    assert!(
        got_media.is_err(),
        "_definst_/cam played another instance's stream"
    );
    server.assert_healthy();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_publisher_gets_bad_name_and_players_get_unpublish_notify() {
    require_ffmpeg();
    let mut server = TestServer::start(&["livestreams"], "");
    let url = server.url("livestreams/news");
    let publisher = FfmpegPublisher::start(&url, "320x240", 25, 8);
    wait_until_live(&url, LIVE_TIMEOUT).await;

    let mut players = Vec::new();
    for _ in 0..2 {
        let mut player = connect(&server, "livestreams").await.expect("connect");
        player.play("news").await.expect("play");
        players.push(player);
    }

    let mut intruder = connect(&server, "livestreams").await.expect("connect");
    match intruder.publish("news").await {
        Err(ClientError::Refused(info)) => {
            assert_eq!(code_of(&info), "NetStream.Publish.BadName")
        }
        other => panic!("second publisher was not refused: {:?}", other.map(|_| ())),
    }
    server.wait_for_log(
        "publish refused: already publishing",
        Duration::from_secs(2),
    );

    // The first publisher keeps streaming to the players.
    let mut frames_after_refusal = 0;
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        if let Ok(Ok(ClientEvent::Video { .. })) =
            tokio::time::timeout(Duration::from_millis(200), players[0].next_event()).await
        {
            frames_after_refusal += 1;
        }
    }
    assert!(
        frames_after_refusal >= 10,
        "only {frames_after_refusal} frames after the refusal"
    );

    let (ok, err) = publisher.wait(Duration::from_secs(30));
    assert!(ok, "ffmpeg publisher failed: {err}");
    for player in &mut players {
        let notified = tokio::time::timeout(Duration::from_secs(15), async {
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
        assert!(
            notified.is_ok(),
            "a player got no NetStream.Play.UnpublishNotify"
        );
    }
    server.wait_for_log("unpublish", Duration::from_secs(2));
    server.assert_healthy();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_application_is_refused_and_the_next_client_is_served() {
    let mut server = TestServer::start(&["livestreams"], "");
    match connect(&server, "nosuchapp").await {
        Err(ClientError::ConnectRefused(info)) => {
            assert_eq!(code_of(&info), "NetConnection.Connect.InvalidApp");
            assert_eq!(info.get_str("level"), Some("error"));
        }
        other => panic!("unknown app accepted: {:?}", other.map(|_| ())),
    }
    server.wait_for_log("no such application", Duration::from_secs(2));
    let mut client = connect(&server, "livestreams")
        .await
        .expect("next client served");
    let stream_id = client.publish("after").await.expect("publish works");
    assert!(stream_id > 0);
    // A folder created while running is an application at once.
    std::fs::create_dir_all(path_in(&server, "applications/newapp")).expect("mkdir");
    connect(&server, "newapp")
        .await
        .expect("new app folder picked up");
    server.assert_healthy();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_player_gets_publish_notify_then_the_stream() {
    let mut server = TestServer::start(&["livestreams"], "");
    let mut player = connect(&server, "livestreams").await.expect("connect");
    player
        .play("later")
        .await
        .expect("play before the publisher");
    let app_url = server.url("livestreams");
    let publisher = tokio::spawn(async move {
        publish_numbered_frames(&app_url, "later", 50, 500, 5, Duration::from_millis(20)).await
    });
    let mut codes = Vec::new();
    let mut frames = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match player.next_event().await.expect("event") {
                ClientEvent::Status { info, .. } => {
                    codes.push(code_of(&info));
                    if codes.last().map(String::as_str) == Some("NetStream.Play.UnpublishNotify") {
                        return;
                    }
                }
                ClientEvent::Video { payload, .. } => {
                    if let Some(n) = frame_sequence(&payload) {
                        if frames.is_empty() {
                            codes.push("first frame".into());
                        }
                        frames.push(n);
                    }
                }
                _ => {}
            }
        }
    })
    .await;
    let sent = publisher.await.expect("publisher");
    assert_eq!(
        codes,
        vec![
            // Play.Reset came before Play.Start (which `play` consumed); then the publisher.
            "NetStream.Play.Reset",
            "NetStream.Play.PublishNotify",
            "first frame",
            "NetStream.Play.UnpublishNotify"
        ]
    );
    assert_eq!(frames.len() as u32, sent);
    server.assert_healthy();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_publisher_is_taken_over_after_the_publish_timeout() {
    let mut server = TestServer::start(
        &["livestreams"],
        "[hub]\npublisher_takeover_after_ms = 1000\n",
    );
    let mut first = connect(&server, "livestreams").await.expect("connect");
    first.publish("cam").await.expect("first publish");
    // While the first publisher is fresh, a second is refused...
    let mut second = connect(&server, "livestreams").await.expect("connect");
    match second.publish("cam").await {
        Err(ClientError::Refused(info)) => assert_eq!(code_of(&info), "NetStream.Publish.BadName"),
        other => panic!("fresh publisher was taken over: {:?}", other.map(|_| ())),
    }
    // ...but once it has been silent longer than the timeout (its connection hung), a new
    // publisher takes the name over.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut third = connect(&server, "livestreams").await.expect("connect");
    third
        .publish("cam")
        .await
        .expect("takeover of a silent publisher");
    server.assert_healthy();
    drop(first);
}

/// An AAC frame numbered like [`numbered_video_frame`]: `[0xaf, 1 (raw), n (4 bytes)]`.
fn numbered_audio_frame(sequence: u32) -> bytes::Bytes {
    let mut payload = vec![0xaf, 0x01];
    payload.extend_from_slice(&sequence.to_be_bytes());
    bytes::Bytes::from(payload)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_held_for_video_keeps_publish_order_and_is_not_stuck_when_video_stops() {
    // Audio of a stream with video waits for the next video frame (at most audio_hold_ms, 50 by
    // default; held from one player on here): the player must still get every frame in the
    // order it was published, and the audio sent after the last video frame must arrive while
    // the publisher is still there.
    let mut server = TestServer::start(&["livestreams"], "[hub]\naudio_hold_min_players = 1\n");
    let mut player = connect(&server, "livestreams").await.expect("connect");
    player.play("av").await.expect("play before the publisher");

    let url = RtmpUrl::parse(&server.url("livestreams")).expect("url");
    let publisher = tokio::spawn(async move {
        let mut client = RtmpClient::connect(&url, vec![])
            .await
            .expect("publisher connects");
        let id = client.publish("av").await.expect("publish");
        let avc_header = bytes::Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f]);
        let aac_header = bytes::Bytes::from_static(&[0xaf, 0x00, 0x12, 0x10]);
        let mut sent = Vec::new();
        client
            .send(ascend_rtmp::build::video(id, 0, avc_header))
            .await
            .expect("video header");
        client
            .send(ascend_rtmp::build::audio(id, 0, aac_header))
            .await
            .expect("audio header");
        // 40 video frames (25 fps) with two audio frames after each, written one by one.
        for n in 0..40u32 {
            let frame = numbered_video_frame(n, 10, 300);
            client
                .send(ascend_rtmp::build::video(id, n * 40, frame))
                .await
                .expect("video");
            sent.push(format!("v{n}"));
            for k in 0..2 {
                let a = n * 2 + k;
                client
                    .send(ascend_rtmp::build::audio(
                        id,
                        n * 40 + k * 20,
                        numbered_audio_frame(a),
                    ))
                    .await
                    .expect("audio");
                sent.push(format!("a{a}"));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The video stops; five more audio frames, then the publisher stays a whole second.
        for a in 80..85u32 {
            client
                .send(ascend_rtmp::build::audio(
                    id,
                    1600 + (a - 80) * 20,
                    numbered_audio_frame(a),
                ))
                .await
                .expect("trailing audio");
            sent.push(format!("a{a}"));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let leaving_at = Instant::now();
        drop(client);
        (sent, leaving_at)
    });

    let mut received = Vec::new();
    let mut last_audio_at = None;
    let _ = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match player.next_event().await.expect("event") {
                ClientEvent::Status { info, .. }
                    if code_of(&info) == "NetStream.Play.UnpublishNotify" =>
                {
                    return;
                }
                ClientEvent::Video { payload, .. } => {
                    if let Some(n) = frame_sequence(&payload) {
                        received.push(format!("v{n}"));
                    }
                }
                ClientEvent::Audio { payload, .. } if payload.len() == 6 && payload[1] == 1 => {
                    let n = u32::from_be_bytes([payload[2], payload[3], payload[4], payload[5]]);
                    received.push(format!("a{n}"));
                    last_audio_at = Some(Instant::now());
                }
                _ => {}
            }
        }
    })
    .await;
    let (sent, leaving_at) = publisher.await.expect("publisher");
    assert_eq!(received, sent, "every frame, in publish order");
    let last_audio_at = last_audio_at.expect("audio arrived");
    assert!(
        last_audio_at < leaving_at,
        "the audio sent after the last video frame waited for the publisher to leave"
    );
    server.assert_healthy();
}

/// Counts the numbered video frames each stream id delivers for `window`.
async fn count_frames_by_stream(
    client: &mut RtmpClient,
    window: Duration,
) -> std::collections::HashMap<u32, u32> {
    let mut counts = std::collections::HashMap::new();
    let _ = tokio::time::timeout(window, async {
        loop {
            if let ClientEvent::Video {
                stream_id, payload, ..
            } = client.next_event().await.expect("event")
            {
                if frame_sequence(&payload).is_some() {
                    *counts.entry(stream_id).or_insert(0) += 1;
                }
            }
        }
    })
    .await;
    counts
}

/// Reads events until `code` arrives on `stream_id` (at most 5 s).
async fn wait_for_status(client: &mut RtmpClient, stream_id: u32, code: &str) {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let ClientEvent::Status {
                stream_id: id,
                info,
            } = client.next_event().await.expect("event")
            {
                if id == stream_id && code_of(&info) == code {
                    return;
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {code} on stream {stream_id}"));
}

/// Sends `pause` (or resume) on `stream_id` and waits for its notice.
async fn set_paused(client: &mut RtmpClient, stream_id: u32, paused: bool) {
    client.session().send_command(
        stream_id,
        "pause",
        &[AmfValue::Boolean(paused), AmfValue::Number(0.0)],
    );
    client.flush().await.expect("pause sent");
    let notice = if paused {
        "NetStream.Pause.Notify"
    } else {
        "NetStream.Unpause.Notify"
    };
    wait_for_status(client, stream_id, notice).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_plays_two_streams_and_pausing_one_stops_only_that_one() {
    let mut server = TestServer::start(&["livestreams"], "");
    let app_url = server.url("livestreams");
    let publishers: Vec<_> = ["left", "right"]
        .into_iter()
        .map(|name| {
            let app_url = app_url.clone();
            tokio::spawn(async move {
                publish_numbered_frames(&app_url, name, 250, 500, 1, Duration::from_millis(20))
                    .await
            })
        })
        .collect();
    let mut player = connect(&server, "livestreams").await.expect("connect");
    let left = player.play("left").await.expect("play left");
    let right = player.play("right").await.expect("play right");

    // Frames per stream id in 800 ms after each step: (left, right) at least 5 each, or left
    // none while it is paused.
    let at_least_five = |counts: &std::collections::HashMap<u32, u32>, id| {
        counts.get(&id).copied().unwrap_or(0) >= 5
    };
    let both = count_frames_by_stream(&mut player, Duration::from_millis(800)).await;
    assert!(
        at_least_five(&both, left) && at_least_five(&both, right),
        "before pause: {both:?}"
    );

    set_paused(&mut player, left, true).await;
    let paused = count_frames_by_stream(&mut player, Duration::from_millis(800)).await;
    assert_eq!(
        paused.get(&left),
        None,
        "left delivered frames while paused: {paused:?}"
    );
    assert!(
        at_least_five(&paused, right),
        "right while left paused: {paused:?}"
    );

    set_paused(&mut player, left, false).await;
    let resumed = count_frames_by_stream(&mut player, Duration::from_millis(800)).await;
    assert!(
        at_least_five(&resumed, left) && at_least_five(&resumed, right),
        "after resume: {resumed:?}"
    );

    for publisher in publishers {
        publisher.await.expect("publisher task");
    }
    server.assert_healthy();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_that_stops_reading_for_a_while_resumes_in_order_without_duplicates() {
    // While the player does not read, its socket fills: the fan-out's sends come back short,
    // its writer task waits for room and catches up with the dropping policy. Whatever is
    // dropped, nothing may be sent twice or out of order, and once caught up the player must
    // get the last keyframe group whole.
    let mut server = TestServer::start(&["livestreams"], "[hub]\nring_capacity = 64\n");
    let mut player = connect(&server, "livestreams").await.expect("player");
    player.play("burst").await.expect("play");
    let app_url = server.url("livestreams");
    let publisher = tokio::spawn(async move {
        // 1000 frames of 40 KB, 10 every 20 ms: 2 s, 40 MB. The player reads nothing for the
        // first second (20 MB): more than its socket buffers (a send buffer of at most 4 MB by
        // default, a receive buffer that grows only while its owner reads) and the ring (64
        // frames) hold.
        publish_numbered_frames(
            &app_url,
            "burst",
            1000,
            40_000,
            10,
            Duration::from_millis(20),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let received = collect_numbered_frames(&mut player, Duration::from_secs(30)).await;
    let sent = publisher.await.expect("publisher");
    assert!(
        received.len() < sent as usize,
        "nothing was dropped: the stall did not reach the slow path"
    );

    assert!(
        received.windows(2).all(|pair| pair[0] < pair[1]),
        "frames repeated or out of order: {received:?}"
    );
    let last_group_start = (sent - 1) / 25 * 25;
    for frame in last_group_start..sent {
        assert!(
            received.contains(&frame),
            "frame {frame} of the last keyframe group missing; got {} frames, last {:?}",
            received.len(),
            received.last()
        );
    }
    server.assert_healthy();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_stamping_arrivals_gets_when_the_frame_reached_its_socket_not_when_it_read() {
    // The bench's load client times frames by the kernel's receive timestamp
    // (`RtmpClient::stamp_arrivals`), so that its own delay in reading a thousand sockets is
    // not counted as the server's lag. The stamp of the read that brought a frame must lie
    // between the moment before the frame was published and the moment the socket was seen
    // readable, even when the player reads it much later.
    let mut server = TestServer::start(&["livestreams"], "");
    let mut player = connect(&server, "livestreams")
        .await
        .expect("player connects");
    player.stamp_arrivals().expect("SO_TIMESTAMPNS");
    player.play("stamped").await.expect("play");
    let url = RtmpUrl::parse(&server.url("livestreams")).expect("url");
    let mut publisher = RtmpClient::connect(&url, vec![])
        .await
        .expect("publisher connects");
    let id = publisher.publish("stamped").await.expect("publish");
    // The publish notices reach the player first: take them all before the frame goes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while player.try_receive().expect("read") {}
    while player.received_event().expect("event").is_some() {}

    let before_publish = std::time::SystemTime::now();
    publisher
        .send(ascend_rtmp::build::video(
            id,
            0,
            numbered_video_frame(0, 1, 200),
        ))
        .await
        .expect("video");
    let socket = player.socket();
    let (stamp, readable_at) = tokio::time::timeout(LIVE_TIMEOUT, async {
        loop {
            socket.readable().await.expect("readable");
            let readable_at = std::time::SystemTime::now();
            // Read late on purpose, as a busy load client does.
            tokio::time::sleep(Duration::from_millis(200)).await;
            if !player.try_receive().expect("read") {
                continue;
            }
            let stamp = player
                .last_arrival()
                .expect("a kernel timestamp with the read");
            while let Some(event) = player.received_event().expect("event") {
                if let ClientEvent::Video { payload, .. } = event {
                    if frame_sequence(&payload) == Some(0) {
                        return (stamp, readable_at);
                    }
                }
            }
        }
    })
    .await
    .expect("the frame arrives");
    let read_at = std::time::SystemTime::now();
    assert!(
        stamp >= before_publish,
        "stamped {stamp:?}, before the frame was published ({before_publish:?})"
    );
    assert!(
        stamp <= readable_at,
        "stamped {stamp:?}, after the socket was already readable ({readable_at:?})"
    );
    assert!(
        read_at.duration_since(stamp).unwrap_or_default() >= Duration::from_millis(200),
        "the stamp is the arrival, not the late read"
    );
    drop(publisher);
    server.assert_healthy();
}
