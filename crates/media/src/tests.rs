//! Behaviour tests of the hub as publishers and players see it.

use std::time::Duration;

use bytes::Bytes;

use crate::{
    FrameKind, HubConfig, MediaFrame, PublishError, StreamHub, Subscription, SubscriptionEvent,
};

fn hub_with_ring(ring_capacity: usize) -> StreamHub {
    StreamHub::new(HubConfig {
        ring_capacity,
        ..HubConfig::default()
    })
}

/// Payload `[first, second, timestamp bytes...]`, unique per timestamp.
fn payload(first: u8, second: u8, timestamp: u32) -> Bytes {
    let mut bytes = vec![first, second];
    bytes.extend_from_slice(&timestamp.to_be_bytes());
    Bytes::from(bytes)
}

fn avc_sequence_header(version: u8) -> MediaFrame {
    MediaFrame::video(0, Bytes::from(vec![0x17, 0x00, 0, 0, 0, 0x01, version]))
}

fn keyframe(timestamp: u32) -> MediaFrame {
    MediaFrame::video(timestamp, payload(0x17, 0x01, timestamp))
}

fn inter_frame(timestamp: u32) -> MediaFrame {
    MediaFrame::video(timestamp, payload(0x27, 0x01, timestamp))
}

fn disposable_frame(timestamp: u32) -> MediaFrame {
    MediaFrame::video(timestamp, payload(0x37, 0x01, timestamp))
}

fn aac_sequence_header() -> MediaFrame {
    MediaFrame::audio(0, Bytes::from_static(&[0xaf, 0x00, 0x12, 0x10]))
}

fn aac_frame(timestamp: u32) -> MediaFrame {
    MediaFrame::audio(timestamp, payload(0xaf, 0x01, timestamp))
}

fn metadata(tag: &'static str) -> Bytes {
    Bytes::from_static(tag.as_bytes())
}

/// Short readable label of an event, for order assertions.
fn label(event: &SubscriptionEvent) -> String {
    match event {
        SubscriptionEvent::PublishStarted => "start".to_owned(),
        SubscriptionEvent::Unpublished => "unpublished".to_owned(),
        SubscriptionEvent::Metadata(body) => {
            format!("meta:{}", String::from_utf8_lossy(body))
        }
        SubscriptionEvent::Frame(frame) => {
            let kind = match frame.kind {
                FrameKind::Audio if frame.sequence_header => "audio-header",
                FrameKind::Audio => "audio",
                FrameKind::Video if frame.sequence_header => "video-header",
                FrameKind::Video if frame.keyframe => "key",
                FrameKind::Video if frame.disposable => "disposable",
                FrameKind::Video => "inter",
                FrameKind::Data => "data",
            };
            if frame.sequence_header {
                kind.to_owned()
            } else {
                format!("{kind}@{}", frame.timestamp)
            }
        }
    }
}

fn drain(subscription: &mut Subscription) -> Vec<SubscriptionEvent> {
    std::iter::from_fn(|| subscription.try_recv()).collect()
}

fn drain_labels(subscription: &mut Subscription) -> Vec<String> {
    drain(subscription).iter().map(label).collect()
}

fn frames(events: &[SubscriptionEvent]) -> Vec<&MediaFrame> {
    events
        .iter()
        .filter_map(|event| match event {
            SubscriptionEvent::Frame(frame) => Some(frame),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn frames_are_shared_not_copied() {
    let hub = StreamHub::new(HubConfig::default());
    let publisher = hub.publish("live", 1).expect("first publisher");
    let mut first = hub.subscribe("live");
    let mut second = hub.subscribe("live");
    let frame = keyframe(0);
    let original = frame.payload.as_ptr();
    publisher.send(frame);

    let mut pointers = Vec::new();
    for subscription in [&mut first, &mut second] {
        match subscription.recv().await {
            SubscriptionEvent::Frame(frame) => pointers.push(frame.payload.as_ptr()),
            other => panic!("expected a frame, got {}", label(&other)),
        }
    }
    assert_eq!(pointers, vec![original, original]);

    // A late subscriber's cached keyframe is the same allocation too.
    let mut late = hub.subscribe("live");
    let cached = frames(&drain(&mut late))
        .first()
        .map(|frame| frame.payload.as_ptr());
    assert_eq!(cached, Some(original));
}

#[tokio::test]
async fn late_subscriber_starts_with_headers_then_keyframe() {
    let hub = StreamHub::new(HubConfig::default());
    let publisher = hub.publish("live", 1).expect("publish");
    publisher.set_metadata(metadata("m1"));
    publisher.send(aac_sequence_header());
    publisher.send(avc_sequence_header(1));
    publisher.send(keyframe(0));
    publisher.send(aac_frame(10));
    publisher.send(inter_frame(20));
    publisher.send(keyframe(40));
    publisher.send(aac_frame(50));
    publisher.send(MediaFrame::data(55, Bytes::from_static(b"cue")));
    publisher.send(inter_frame(60));

    let mut late = hub.subscribe("live");
    assert!(late.is_live());
    assert_eq!(
        drain_labels(&mut late),
        [
            "meta:m1",
            "audio-header",
            "video-header",
            "key@40",
            "audio@50",
            "data@55",
            "inter@60"
        ]
    );
    // No gap and no duplicate between the snapshot and the live ring.
    publisher.send(inter_frame(70));
    assert_eq!(label(&late.recv().await), "inter@70");
    assert!(late.try_recv().is_none());
}

#[tokio::test]
async fn waiting_subscriber_gets_publish_started_then_frames() {
    let hub = StreamHub::new(HubConfig::default());
    let mut waiting = hub.subscribe("live");
    assert!(!waiting.is_live());
    assert!(waiting.try_recv().is_none());
    assert!(!hub.is_live("live"));

    let publisher = hub.publish("live", 7).expect("publish");
    publisher.set_metadata(metadata("m"));
    publisher.send(avc_sequence_header(1));
    publisher.send(keyframe(0));

    assert_eq!(label(&waiting.recv().await), "start");
    assert!(waiting.is_live());
    assert_eq!(
        drain_labels(&mut waiting),
        ["meta:m", "video-header", "key@0"]
    );
    assert_eq!(waiting.dropped_frames(), 0);
}

#[tokio::test]
async fn recv_wakes_up_when_a_frame_is_published_from_another_task() {
    let hub = StreamHub::new(HubConfig::default());
    let publisher = hub.publish("live", 1).expect("publish");
    let mut subscription = hub.subscribe("live");
    let reader = tokio::spawn(async move { label(&subscription.recv().await) });
    tokio::time::sleep(Duration::from_millis(20)).await;
    publisher.send(keyframe(5));
    let received = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .expect("woken in time")
        .expect("task ok");
    assert_eq!(received, "key@5");
}

#[tokio::test]
async fn recv_is_cancel_safe_inside_select() {
    let hub = StreamHub::new(HubConfig::default());
    let publisher = hub.publish("live", 1).expect("publish");
    let mut subscription = hub.subscribe("live");
    for round in 0..3u32 {
        tokio::select! {
            event = subscription.recv() => panic!("nothing published yet: {}", label(&event)),
            () = tokio::time::sleep(Duration::from_millis(5)) => {}
        }
        publisher.send(keyframe(round));
        tokio::select! {
            event = subscription.recv() => assert_eq!(label(&event), format!("key@{round}")),
            () = tokio::time::sleep(Duration::from_secs(5)) => panic!("frame lost"),
        }
    }
}

#[tokio::test]
async fn second_publisher_gets_already_publishing() {
    let hub = StreamHub::new(HubConfig::default());
    let first = hub.publish("live", 1).expect("first publisher");
    first.send(keyframe(0));
    let refused = hub.publish("live", 2).expect_err("name is taken");
    assert_eq!(
        refused,
        PublishError::AlreadyPublishing {
            name: "live".to_owned()
        }
    );
    assert!(refused.to_string().contains("live"));
    assert!(!first.is_replaced());
    assert_eq!(
        hub.stream_stats("live").and_then(|s| s.publisher_client_id),
        Some(1)
    );
    // Other names are independent.
    let other = hub.publish("other", 2).expect("other name is free");
    assert_eq!(other.name(), "other");
}

#[tokio::test]
async fn silent_publisher_is_taken_over_after_timeout() {
    let hub = StreamHub::new(HubConfig {
        publisher_takeover_after: Duration::from_millis(50),
        ..HubConfig::default()
    });
    let old = hub.publish("live", 1).expect("publish");
    old.send(avc_sequence_header(1));
    old.send(keyframe(0));
    let mut subscription = hub.subscribe("live");
    drain(&mut subscription);

    tokio::time::sleep(Duration::from_millis(120)).await;
    let new = hub
        .publish("live", 2)
        .expect("silent publisher is taken over");
    assert!(old.is_replaced());
    assert!(!new.is_replaced());
    tokio::time::timeout(Duration::from_secs(5), old.replaced())
        .await
        .expect("replaced() resolves");

    // The old publisher's sends are ignored, and its drop unpublishes nothing.
    old.send(keyframe(99));
    drop(old);
    assert!(hub.is_live("live"));
    let stats = hub.stream_stats("live").expect("stream exists");
    assert_eq!(stats.publisher_client_id, Some(2));
    assert_eq!(stats.frames_published, 0);

    new.send(keyframe(200));
    assert_eq!(
        drain_labels(&mut subscription),
        ["unpublished", "start", "key@200"]
    );
}

#[tokio::test]
async fn replaced_waits_while_publisher_still_owns_the_stream() {
    let hub = StreamHub::new(HubConfig::default());
    let publisher = hub.publish("live", 1).expect("publish");
    let waited = tokio::time::timeout(Duration::from_millis(20), publisher.replaced()).await;
    assert!(waited.is_err(), "not replaced yet");
}

#[tokio::test]
async fn unpublish_notifies_subscribers_and_clears_caches() {
    let hub = StreamHub::new(HubConfig::default());
    let publisher = hub.publish("live", 1).expect("publish");
    publisher.set_metadata(metadata("m"));
    publisher.send(aac_sequence_header());
    publisher.send(avc_sequence_header(1));
    publisher.send(keyframe(0));
    let mut player = hub.subscribe("live");
    drain(&mut player);

    drop(publisher);
    assert_eq!(label(&player.recv().await), "unpublished");
    assert!(!player.is_live());
    assert!(!hub.is_live("live"));
    let stats = hub.stream_stats("live").expect("kept for the player");
    assert!(!stats.live);
    assert_eq!(stats.publisher_client_id, None);
    assert_eq!(stats.subscribers, 1);

    // Nothing cached survives: a newcomer to the republished stream gets
    // nothing until the new publisher sends.
    let _republisher = hub.publish("live", 2).expect("republish");
    let mut newcomer = hub.subscribe("live");
    assert!(newcomer.try_recv().is_none());
    assert_eq!(drain_labels(&mut player), ["start"]);
}

#[tokio::test]
async fn slow_subscriber_skips_to_next_keyframe_and_counts_drops() {
    const RING: usize = 16;
    let hub = hub_with_ring(RING);
    let publisher = hub.publish("live", 1).expect("publish");
    publisher.send(avc_sequence_header(1));
    publisher.send(keyframe(0));
    let mut slow = hub.subscribe("live");
    let never_reading = hub.subscribe("live");

    // Far more than the ring holds, without anybody reading: the publisher
    // never waits and the ring stays bounded.
    const SENT: u32 = 200;
    for index in 1..=SENT {
        if index % 25 == 0 {
            publisher.send(keyframe(index));
        } else {
            publisher.send(inter_frame(index));
        }
        publisher.send(aac_frame(index));
    }
    let entry = hub.entry("live").expect("stream exists");
    assert!(entry.read().ring.len() <= RING);
    drop(entry);

    let events = drain(&mut slow);
    let labels: Vec<String> = events.iter().map(label).collect();
    assert_eq!(labels[..2], ["video-header", "key@0"], "join snapshot");
    let first_video_after_gap = frames(&events[2..])
        .into_iter()
        .find(|frame| frame.kind == FrameKind::Video)
        .expect("video after the gap");
    assert!(first_video_after_gap.is_video_keyframe(), "got {labels:?}");
    assert!(slow.dropped_frames() > 0);
    // Every frame sent after joining is either delivered or counted dropped.
    let delivered_after_join = frames(&events[2..]).len() as u64;
    assert_eq!(
        delivered_after_join + slow.dropped_frames(),
        u64::from(SENT) * 2
    );
    assert_eq!(never_reading.dropped_frames(), 0, "counted only when read");
}

#[tokio::test]
async fn lagging_subscriber_drops_disposable_frames_first() {
    const RING: usize = 64;
    let hub = hub_with_ring(RING);
    let publisher = hub.publish("live", 1).expect("publish");
    publisher.send(keyframe(0));
    let mut lagging = hub.subscribe("live");
    // 40 pending items: more than half the ring, less than three quarters.
    for index in 1..=40 {
        if index % 2 == 0 {
            publisher.send(disposable_frame(index));
        } else {
            publisher.send(inter_frame(index));
        }
    }
    let labels = drain_labels(&mut lagging);
    // While the backlog was above 32 (the first 8 items), the 4 disposable
    // frames among them were dropped; no inter frame was.
    assert_eq!(lagging.dropped_frames(), 4);
    assert!(!labels.contains(&"disposable@2".to_owned()));
    assert!(!labels.contains(&"disposable@8".to_owned()));
    assert!(labels.contains(&"disposable@10".to_owned()));
    assert_eq!(
        labels
            .iter()
            .filter(|label| label.starts_with("inter"))
            .count(),
        20
    );
}

#[tokio::test]
async fn lagging_subscriber_skips_inter_frames_but_keeps_audio() {
    const RING: usize = 64;
    let hub = hub_with_ring(RING);
    let publisher = hub.publish("live", 1).expect("publish");
    publisher.send(aac_sequence_header());
    publisher.send(avc_sequence_header(1));
    publisher.send(keyframe(0));
    let mut lagging = hub.subscribe("live");
    drain(&mut lagging);
    // 56 pending items: more than three quarters of the ring.
    for index in 0..56 {
        if index % 2 == 0 {
            publisher.send(aac_frame(index));
        } else if index == 41 {
            publisher.send(keyframe(index));
        } else {
            publisher.send(inter_frame(index));
        }
    }
    let labels = drain_labels(&mut lagging);
    assert_eq!(
        labels
            .iter()
            .filter(|label| label.starts_with("audio@"))
            .count(),
        28,
        "audio is never dropped"
    );
    let first_video = labels
        .iter()
        .find(|label| label.starts_with("key") || label.starts_with("inter"));
    assert_eq!(first_video.map(String::as_str), Some("key@41"));
    assert!(
        labels.contains(&"inter@43".to_owned()),
        "caught up after key"
    );
    assert_eq!(lagging.dropped_frames(), 20);
}

#[tokio::test]
async fn overrun_subscriber_gets_changed_sequence_header_before_next_keyframe() {
    const RING: usize = 16;
    let hub = hub_with_ring(RING);
    let publisher = hub.publish("live", 1).expect("publish");
    let first_header = avc_sequence_header(1);
    publisher.send(first_header);
    publisher.send(keyframe(0));
    let mut slow = hub.subscribe("live");

    let second_header = avc_sequence_header(2);
    let second_header_payload = second_header.payload.clone();
    publisher.send(second_header);
    publisher.send(keyframe(1));
    for index in 2..100 {
        publisher.send(inter_frame(index));
    }
    publisher.send(keyframe(100));

    let events = drain(&mut slow);
    let labels: Vec<String> = events.iter().map(label).collect();
    assert_eq!(labels, ["video-header", "key@0", "video-header", "key@100"]);
    let frames = frames(&events);
    assert_eq!(frames[2].payload, second_header_payload);
    assert_eq!(slow.dropped_frames(), 100);
}

#[tokio::test]
async fn overrun_waiting_subscriber_still_sees_publish_started_and_unpublished() {
    let hub = hub_with_ring(8);
    let mut waiting = hub.subscribe("live");
    let publisher = hub.publish("live", 1).expect("publish");
    publisher.set_metadata(metadata("m"));
    publisher.send(aac_sequence_header());
    for index in 0..50 {
        publisher.send(aac_frame(index));
    }
    drop(publisher);

    let labels = drain_labels(&mut waiting);
    assert_eq!(
        labels[..3],
        ["start", "meta:m", "audio-header"],
        "{labels:?}"
    );
    assert_eq!(labels.last().map(String::as_str), Some("unpublished"));
    assert!(waiting.dropped_frames() > 0);
    assert!(!waiting.is_live());
}

#[tokio::test]
async fn audio_only_stream_gives_metadata_and_audio_header_then_live_audio() {
    let hub = StreamHub::new(HubConfig::default());
    let publisher = hub.publish("radio", 1).expect("publish");
    publisher.set_metadata(metadata("radio"));
    publisher.send(aac_sequence_header());
    for index in 0..10 {
        publisher.send(aac_frame(index));
    }
    let mut listener = hub.subscribe("radio");
    assert_eq!(drain_labels(&mut listener), ["meta:radio", "audio-header"]);
    publisher.send(aac_frame(10));
    publisher.send(aac_frame(11));
    assert_eq!(drain_labels(&mut listener), ["audio@10", "audio@11"]);
    assert_eq!(listener.dropped_frames(), 0);
}

#[tokio::test]
async fn oversized_keyframe_group_makes_newcomers_wait_for_next_keyframe() {
    let hub = StreamHub::new(HubConfig {
        gop_cache_max_bytes: 1024,
        ..HubConfig::default()
    });
    let publisher = hub.publish("live", 1).expect("publish");
    publisher.send(avc_sequence_header(1));
    let mut huge_keyframe = vec![0x17, 0x01];
    huge_keyframe.resize(4096, 0);
    publisher.send(MediaFrame::video(0, Bytes::from(huge_keyframe)));
    publisher.send(inter_frame(1));

    let mut newcomer = hub.subscribe("live");
    assert_eq!(drain_labels(&mut newcomer), ["video-header"]);
    publisher.send(inter_frame(2));
    publisher.send(aac_frame(3));
    publisher.send(keyframe(4));
    assert_eq!(drain_labels(&mut newcomer), ["audio@3", "key@4"]);
    assert_eq!(newcomer.dropped_frames(), 1);
    let entry = hub.entry("live").expect("stream exists");
    assert_eq!(entry.read().keyframe_group.frames().len(), 1);
}

#[tokio::test]
async fn metadata_is_replaced_and_delivered_in_order() {
    let hub = StreamHub::new(HubConfig::default());
    let publisher = hub.publish("live", 1).expect("publish");
    publisher.set_metadata(metadata("first"));
    publisher.send(keyframe(0));
    let mut early = hub.subscribe("live");
    publisher.send(inter_frame(1));
    publisher.set_metadata(metadata("second"));
    publisher.send(inter_frame(2));
    assert_eq!(
        drain_labels(&mut early),
        ["meta:first", "key@0", "inter@1", "meta:second", "inter@2"]
    );
    let mut late = hub.subscribe("live");
    assert_eq!(
        drain_labels(&mut late),
        ["meta:second", "key@0", "inter@1", "inter@2"]
    );
}

#[tokio::test]
async fn malformed_and_empty_payloads_do_not_panic() {
    let hub = hub_with_ring(8);
    let publisher = hub.publish("live", 1).expect("publish");
    let mut player = hub.subscribe("live");
    let odd_payloads: [&'static [u8]; 6] = [&[], &[0xff], &[0x17], &[0xaf], &[0x80], &[0xf0, 0xff]];
    for (index, bytes) in odd_payloads.iter().enumerate() {
        let timestamp = u32::try_from(index).unwrap_or(u32::MAX);
        let bytes = Bytes::from_static(bytes);
        publisher.send(MediaFrame::video(timestamp, bytes.clone()));
        publisher.send(MediaFrame::audio(timestamp, bytes.clone()));
        publisher.send(MediaFrame::data(timestamp, bytes.clone()));
        publisher.set_metadata(bytes);
        drain(&mut player);
    }
    publisher.send(MediaFrame::video(u32::MAX, Bytes::new()));
    let stats = hub.stream_stats("live").expect("stream exists");
    assert_eq!(stats.frames_published, 6 * 3 + 1);
    assert_eq!(stats.bytes_published, 3 * (1 + 1 + 1 + 1 + 2));
    let late = hub.subscribe("live");
    drop(late);
}

#[tokio::test]
async fn stream_entry_removed_when_last_subscriber_and_publisher_are_gone() {
    let hub = StreamHub::new(HubConfig::default());
    let publisher = hub.publish("live", 1).expect("publish");
    let subscription = hub.subscribe("live");
    assert_eq!(hub.live_stream_names(), ["live"]);

    drop(publisher);
    assert!(hub.live_stream_names().is_empty());
    assert_eq!(
        hub.stream_stats("live").map(|stats| stats.subscribers),
        Some(1)
    );
    drop(subscription);
    assert_eq!(hub.stream_stats("live"), None);
    assert!(hub.entry("live").is_none());

    // A waiting subscriber alone creates the entry and removes it again.
    let waiting = hub.subscribe("later");
    assert!(hub.stream_stats("later").is_some());
    drop(waiting);
    assert_eq!(hub.stream_stats("later"), None);
}

#[tokio::test]
async fn replaced_publisher_drop_does_not_remove_a_newer_stream_entry() {
    let hub = StreamHub::new(HubConfig {
        publisher_takeover_after: Duration::ZERO,
        ..HubConfig::default()
    });
    let old = hub.publish("live", 1).expect("publish");
    let new = hub.publish("live", 2).expect("takeover");
    drop(new);
    assert_eq!(
        hub.stream_stats("live"),
        None,
        "no publisher, no subscriber"
    );
    let newest = hub.publish("live", 3).expect("fresh entry");
    drop(old);
    assert!(hub.is_live("live"));
    assert_eq!(
        hub.stream_stats("live").and_then(|s| s.publisher_client_id),
        Some(3)
    );
    drop(newest);
}

#[tokio::test]
async fn live_stream_names_are_sorted_and_stats_count_frames() {
    let hub = StreamHub::new(HubConfig::default());
    let zebra = hub.publish("zebra", 1).expect("publish");
    let alpha = hub.publish("alpha", 2).expect("publish");
    let _waiting = hub.subscribe("middle");
    assert_eq!(hub.live_stream_names(), ["alpha", "zebra"]);

    alpha.send(keyframe(0));
    alpha.send(aac_frame(1));
    let _player = hub.subscribe("alpha");
    assert_eq!(
        hub.stream_stats("alpha"),
        Some(crate::StreamStats {
            live: true,
            publisher_client_id: Some(2),
            subscribers: 1,
            frames_published: 2,
            bytes_published: 12,
        })
    );
    assert_eq!(
        hub.stream_stats("middle").map(|stats| stats.live),
        Some(false)
    );
    drop(zebra);
    assert_eq!(hub.live_stream_names(), ["alpha"]);
}

type ParkedPlayer = tokio::task::JoinHandle<(Subscription, SubscriptionEvent)>;

/// A player task parked in `recv()` (given a moment to get there): yields the first event it
/// is woken with.
async fn park(mut subscription: Subscription) -> ParkedPlayer {
    let player = tokio::spawn(async move {
        let event = subscription.recv().await;
        (subscription, event)
    });
    tokio::time::sleep(Duration::from_millis(1)).await;
    player
}

/// A publisher of "live" that has sent video, and one player that has read all of it.
fn video_stream_with_a_player(hub: &StreamHub) -> (crate::Publisher, Subscription) {
    let publisher = hub.publish("live", 1).expect("publish");
    publisher.send(avc_sequence_header(1));
    publisher.send(keyframe(0));
    let mut subscription = hub.subscribe("live");
    drain(&mut subscription);
    (publisher, subscription)
}

/// The same with the player parked waiting for more.
async fn video_stream_with_a_parked_player(hub: &StreamHub) -> (crate::Publisher, ParkedPlayer) {
    let (publisher, subscription) = video_stream_with_a_player(hub);
    (publisher, park(subscription).await)
}

/// What a parked player was woken with, and everything readable after it.
async fn woken_labels(player: ParkedPlayer) -> Vec<String> {
    let (mut subscription, first) = player.await.expect("player task");
    let mut labels = vec![label(&first)];
    labels.extend(drain_labels(&mut subscription));
    labels
}

fn hub_with_audio_hold(audio_hold: Duration) -> StreamHub {
    StreamHub::new(HubConfig {
        audio_hold,
        audio_hold_min_subscribers: 1,
        ..HubConfig::default()
    })
}

#[tokio::test(start_paused = true)]
async fn audio_of_a_stream_with_video_leaves_with_the_next_video_frame() {
    let hub = hub_with_audio_hold(Duration::from_secs(10));
    let (publisher, player) = video_stream_with_a_parked_player(&hub).await;

    publisher.send(aac_frame(10));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!player.is_finished(), "a held audio frame woke the player");

    publisher.send(inter_frame(33));
    assert_eq!(woken_labels(player).await, ["audio@10", "inter@33"]);
}

#[tokio::test(start_paused = true)]
async fn held_audio_is_handed_to_no_reader_until_the_next_video_frame() {
    let hub = hub_with_audio_hold(Duration::from_secs(10));
    // A player that reads without being woken (its writer was busy anyway) must not take the
    // held audio early: every player gets it with the same write as the video frame.
    let (publisher, mut awake) = video_stream_with_a_player(&hub);
    publisher.send(aac_frame(10));
    assert!(
        drain(&mut awake).is_empty(),
        "a reader that was awake anyway took held audio"
    );
    publisher.send(inter_frame(33));
    assert_eq!(drain_labels(&mut awake), ["audio@10", "inter@33"]);
}

#[tokio::test(start_paused = true)]
async fn held_audio_is_released_when_the_hold_runs_out() {
    let hub = hub_with_audio_hold(Duration::from_millis(50));
    let (publisher, player) = video_stream_with_a_parked_player(&hub).await;

    publisher.send(aac_frame(10));
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert!(!player.is_finished(), "released before the hold ran out");
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(player.is_finished(), "still held after the hold ran out");
    let (_, event) = player.await.expect("player task");
    assert_eq!(label(&event), "audio@10");
}

#[tokio::test(start_paused = true)]
async fn audio_only_streams_and_metadata_are_never_held() {
    let hub = hub_with_audio_hold(Duration::from_secs(10));
    let publisher = hub.publish("radio", 1).expect("publish");
    publisher.send(aac_sequence_header());
    let mut subscription = hub.subscribe("radio");
    drain(&mut subscription);
    let player = park(subscription).await;
    publisher.send(aac_frame(23));
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(
        player.is_finished(),
        "audio of an audio-only stream was held"
    );
    let (subscription, event) = player.await.expect("player task");
    assert_eq!(label(&event), "audio@23");

    // Once the stream has video, held audio leaves with the next metadata.
    publisher.send(keyframe(40));
    let mut subscription = subscription;
    drain(&mut subscription);
    let player = park(subscription).await;
    publisher.send(aac_frame(46));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!player.is_finished());
    publisher.set_metadata(metadata("m2"));
    assert_eq!(woken_labels(player).await, ["audio@46", "meta:m2"]);
}

#[tokio::test(start_paused = true)]
async fn a_second_audio_frame_before_the_video_releases_both() {
    // One held at most (the default): audio that comes bunched is already late.
    let hub = hub_with_audio_hold(Duration::from_secs(10));
    let (publisher, player) = video_stream_with_a_parked_player(&hub).await;
    publisher.send(aac_frame(10));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!player.is_finished(), "a lone audio frame was not held");
    publisher.send(aac_frame(33));
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(
        player.is_finished(),
        "a second audio frame did not release the first"
    );
    assert_eq!(woken_labels(player).await, ["audio@10", "audio@33"]);

    // With a bound of two, the third releases them.
    let hub = StreamHub::new(HubConfig {
        audio_hold: Duration::from_secs(10),
        audio_hold_min_subscribers: 1,
        audio_hold_max_frames: 2,
        ..HubConfig::default()
    });
    let (publisher, player) = video_stream_with_a_parked_player(&hub).await;
    publisher.send(aac_frame(10));
    publisher.send(aac_frame(33));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!player.is_finished(), "two audio frames were not held");
    publisher.send(aac_frame(56));
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(
        player.is_finished(),
        "a third audio frame did not release the two held"
    );
    assert_eq!(
        woken_labels(player).await,
        ["audio@10", "audio@33", "audio@56"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_zero_hold_wakes_players_on_every_frame() {
    let hub = hub_with_audio_hold(Duration::ZERO);
    let (publisher, player) = video_stream_with_a_parked_player(&hub).await;
    publisher.send(aac_frame(10));
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(player.is_finished(), "audio was held with a zero hold");
}

#[tokio::test(start_paused = true)]
async fn a_small_audience_gets_its_audio_at_once() {
    let hub = StreamHub::new(HubConfig {
        audio_hold: Duration::from_secs(10),
        audio_hold_min_subscribers: 2,
        ..HubConfig::default()
    });
    let (publisher, player) = video_stream_with_a_parked_player(&hub).await;
    publisher.send(aac_frame(10));
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(
        player.is_finished(),
        "one subscriber of two needed: audio was held"
    );
    let (subscription, _) = player.await.expect("player task");

    // A second subscriber makes the audience large enough: audio waits for video.
    let mut second = hub.subscribe("live");
    drain(&mut second);
    let player = park(subscription).await;
    publisher.send(aac_frame(30));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !player.is_finished(),
        "two subscribers: audio should be held"
    );
    publisher.send(inter_frame(40));
    let (_, event) = player.await.expect("player task");
    assert_eq!(label(&event), "audio@30");
}

/// A direct reader (as the server's writer is): counts its calls and reads its subscription
/// in each one.
#[derive(Default)]
struct RecordingReader {
    calls: std::sync::atomic::AtomicUsize,
    subscription: std::sync::Mutex<Option<Subscription>>,
    seen: std::sync::Mutex<Vec<String>>,
}

impl crate::DirectReader for RecordingReader {
    fn items_ready(&self) {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Some(subscription) = self.subscription.lock().expect("test lock").as_mut() {
            self.seen
                .lock()
                .expect("test lock")
                .extend(drain_labels(subscription));
        }
    }
}

impl RecordingReader {
    fn calls(&self) -> usize {
        self.calls.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Registers a recording reader for `subscription` (which it then owns).
fn read_directly(mut subscription: Subscription) -> std::sync::Arc<RecordingReader> {
    let reader = std::sync::Arc::new(RecordingReader::default());
    subscription.read_directly(reader.clone());
    *reader.subscription.lock().expect("test lock") = Some(subscription);
    reader
}

/// Lets the fan-out tasks run until `done` holds (bounded: 100 rounds of 1 ms).
async fn until(done: impl Fn() -> bool) {
    for _ in 0..100 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test]
async fn a_direct_reader_is_called_after_each_push_and_not_after_its_subscription_is_gone() {
    let hub = StreamHub::new(HubConfig::default());
    let (publisher, subscription) = video_stream_with_a_player(&hub);
    let reader = read_directly(subscription);

    publisher.send(inter_frame(33));
    until(|| reader.seen.lock().expect("test lock").len() == 1).await;
    assert_eq!(*reader.seen.lock().expect("test lock"), ["inter@33"]);
    assert!(reader.calls() >= 1);

    drop(reader.subscription.lock().expect("test lock").take());
    let calls = reader.calls();
    publisher.send(inter_frame(66));
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        reader.calls(),
        calls,
        "called after its subscription was dropped"
    );
}

#[tokio::test]
async fn direct_readers_of_every_shard_are_called() {
    const SHARD: usize = 64;
    let hub = StreamHub::new(HubConfig {
        fanout_shard_size: SHARD,
        ..HubConfig::default()
    });
    let publisher = hub.publish("live", 1).expect("publish");
    publisher.send(avc_sequence_header(1));
    publisher.send(keyframe(0));
    let readers: Vec<_> = (0..SHARD * 2 + 1)
        .map(|_| {
            let mut subscription = hub.subscribe("live");
            drain(&mut subscription);
            read_directly(subscription)
        })
        .collect();

    publisher.send(inter_frame(33));
    until(|| {
        readers
            .iter()
            .all(|r| !r.seen.lock().expect("test lock").is_empty())
    })
    .await;
    for (index, reader) in readers.iter().enumerate() {
        assert_eq!(
            *reader.seen.lock().expect("test lock"),
            ["inter@33"],
            "reader {index}"
        );
    }
}

#[tokio::test]
async fn held_audio_calls_no_direct_reader_until_the_next_video_frame() {
    let hub = hub_with_audio_hold(Duration::from_secs(10));
    let (publisher, subscription) = video_stream_with_a_player(&hub);
    let reader = read_directly(subscription);

    publisher.send(aac_frame(10));
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(reader.calls(), 0, "held audio called the reader");
    publisher.send(inter_frame(33));
    until(|| reader.seen.lock().expect("test lock").len() == 2).await;
    assert_eq!(
        *reader.seen.lock().expect("test lock"),
        ["audio@10", "inter@33"]
    );
}

/// A direct reader that notes its place in the order of calls.
struct OrderReader {
    label: usize,
    calls: std::sync::Arc<std::sync::Mutex<Vec<usize>>>,
}

impl crate::DirectReader for OrderReader {
    fn items_ready(&self) {
        self.calls.lock().expect("test lock").push(self.label);
    }
}

#[tokio::test]
async fn a_reader_placed_first_is_called_before_the_players_of_a_full_first_task() {
    const SHARD: usize = 64;
    let hub = StreamHub::new(HubConfig {
        fanout_shard_size: SHARD,
        ..HubConfig::default()
    });
    let publisher = hub.publish("live", 1).expect("publish");
    let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let reader = |label| {
        std::sync::Arc::new(OrderReader {
            label,
            calls: calls.clone(),
        })
    };
    let mut subscriptions: Vec<Subscription> = (0..SHARD)
        .map(|label| {
            let mut subscription = hub.subscribe("live");
            subscription.read_directly(reader(label));
            subscription
        })
        .collect();
    let relay = usize::MAX;
    let mut relay_subscription = hub.subscribe("live");
    relay_subscription.read_directly_first(reader(relay));
    subscriptions.push(relay_subscription);

    publisher.send(keyframe(0));
    until(|| calls.lock().expect("test lock").len() > SHARD).await;
    let calls = calls.lock().expect("test lock");
    assert_eq!(calls.len(), SHARD + 1, "one call each");
    assert_eq!(calls[0], relay, "the first-placed reader waited for others");
    assert!(
        calls[1..].windows(2).all(|pair| pair[0] < pair[1]),
        "the others lost their order"
    );
}
