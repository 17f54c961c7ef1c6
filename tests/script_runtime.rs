//! Server-Side ActionScript end to end: real `main.asc` files in the applications folder of a
//! real `ascend` process, driven by ffmpeg and the project's client.

mod support;

use ascend_client::{ClientError, RtmpClient, RtmpUrl};
use ascend_rtmp::{AmfValue, ClientEvent};
use std::time::{Duration, Instant};
use support::*;

const WAIT: Duration = Duration::from_secs(20);

async fn connect_with(
    server: &TestServer,
    app: &str,
    args: Vec<AmfValue>,
) -> Result<RtmpClient, ClientError> {
    RtmpClient::connect(&RtmpUrl::parse(&server.url(app)).expect("url"), args).await
}

fn credentials(user: &str, pass: &str) -> Vec<AmfValue> {
    vec![AmfValue::string(user), AmfValue::string(pass)]
}

const AUTH_SCRIPT: &str = r#"
application.onConnect = function(client, user, pass) {
    trace("onConnect " + user + " from " + client.ip + " agent " + client.agent);
    if (pass == "secret") {
        client.writeAccess = "/live";
        client.readAccess = "/live";
        return true;
    }
    application.rejectConnection(client, {message: "bad password", user: user});
};
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_connect_accepts_or_rejects_by_credentials_and_access_lists_are_enforced() {
    require_ffmpeg();
    let mut server = TestServer::start_with_files(&["auth"], &[("auth/main.asc", AUTH_SCRIPT)], "");

    match connect_with(&server, "auth", credentials("mallory", "guess")).await {
        Err(ClientError::ConnectRefused(info)) => {
            assert_eq!(code_of(&info), "NetConnection.Connect.Rejected");
            let application = info.get("application").expect("errObj carried");
            assert_eq!(application.get_str("message"), Some("bad password"));
            assert_eq!(application.get_str("user"), Some("mallory"));
        }
        other => panic!("wrong password accepted: {:?}", other.map(|_| ())),
    }

    // ffmpeg with the right connect arguments streams into a path its writeAccess allows.
    let publisher = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25",
            "-t",
            "20",
        ])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "25"])
        .args([
            "-rtmp_conn",
            "S:ann S:secret",
            "-rtmp_app",
            "auth",
            "-rtmp_playpath",
            "live/cam",
        ])
        .args(["-f", "flv"])
        .arg(server.url("auth"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ffmpeg");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _publisher = Kill(publisher);

    let mut player = connect_with(&server, "auth", credentials("bob", "secret"))
        .await
        .expect("right password");
    let deadline = Instant::now() + WAIT;
    let mut got_video = false;
    while !got_video && Instant::now() < deadline {
        let stream_id = player
            .play("live/cam")
            .await
            .expect("play allowed by readAccess");
        got_video = tokio::time::timeout(Duration::from_secs(3), async {
            loop {
                if let ClientEvent::Video { stream_id: s, .. } =
                    player.next_event().await.expect("event")
                {
                    if s == stream_id {
                        return true;
                    }
                }
            }
        })
        .await
        .unwrap_or(false);
    }
    assert!(got_video, "the authenticated ffmpeg stream never played");

    // Outside the access lists: publish and play are refused.
    match player.publish("elsewhere").await {
        Err(ClientError::Refused(info)) => assert_eq!(code_of(&info), "NetStream.Publish.BadName"),
        other => panic!(
            "publish outside writeAccess allowed: {:?}",
            other.map(|_| ())
        ),
    }
    match player.play("elsewhere").await {
        Err(ClientError::Refused(info)) => assert_eq!(code_of(&info), "NetStream.Play.Failed"),
        other => panic!("play outside readAccess allowed: {:?}", other.map(|_| ())),
    }
    let log = server.wait_for_instance_log("auth/_definst_", "onConnect bob from 127.0.0.1", WAIT);
    assert!(log.contains("onConnect mallory"), "{log}");
    server.wait_for_log("no write access", Duration::from_secs(2));
    server.assert_healthy();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_connect_is_accepted_later_from_a_timer() {
    let script = r#"
        application.onConnect = function(client) {
            trace("pending " + client.id);
            setTimeout(function() { application.acceptConnection(client); trace("accepted " + client.id); }, 200);
        };
    "#;
    let mut server = TestServer::start_with_files(&["slow"], &[("slow/main.asc", script)], "");
    let started = Instant::now();
    let mut client = connect_with(&server, "slow", vec![])
        .await
        .expect("accepted later");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(200),
        "accepted after only {waited:?}"
    );
    // Commands sent while pending were held and answered after the decision.
    let stream_id = client
        .publish("cam")
        .await
        .expect("publish after acceptance");
    assert!(stream_id > 0);
    let log = server.wait_for_instance_log("slow/_definst_", "accepted", WAIT);
    assert!(log.find("pending") < log.find("accepted"), "{log}");
    server.assert_healthy();
}

const CALLS_SCRIPT: &str = r#"
Client.prototype.add = function(a, b) { return a + b; };
Client.prototype.tools = { twice: function(x) { return 2 * x; } };
Client.prototype.fails = function() { throw new Error("deliberate"); };
Client.prototype.echo = function(value) { return value; };
application.onConnect = function(client) {
    application.acceptConnection(client);
    client.call("hello", {
        onResult: function(answer) { trace("client answered " + answer); }
    }, "from the server");
};
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_go_both_ways() {
    let mut server =
        TestServer::start_with_files(&["calls"], &[("calls/main.asc", CALLS_SCRIPT)], "");
    let mut client = connect_with(&server, "calls", vec![])
        .await
        .expect("connect");

    // The server's client.call reaches us; our answer reaches the script's responder.
    let hello = tokio::time::timeout(WAIT, async {
        loop {
            if let ClientEvent::Invoked { command, .. } = client.next_event().await.expect("event")
            {
                if command.name == "hello" {
                    return command;
                }
            }
        }
    })
    .await
    .expect("client.call arrived");
    assert_eq!(hello.args, vec![AmfValue::string("from the server")]);
    client
        .session()
        .respond(hello.transaction_id, true, &[AmfValue::string("hi back")]);
    client.flush().await.expect("answer sent");
    server.wait_for_instance_log("calls/_definst_", "client answered hi back", WAIT);

    let sum = client
        .call("add", &[AmfValue::Number(2.0), AmfValue::Number(40.0)])
        .await
        .expect("add");
    assert_eq!(sum, vec![AmfValue::Number(42.0)]);
    let twice = client
        .call("tools/twice", &[AmfValue::Number(21.0)])
        .await
        .expect("nested method");
    assert_eq!(twice, vec![AmfValue::Number(42.0)]);
    for missing in ["noSuchMethod", "fails"] {
        match client.call(missing, &[]).await {
            Err(ClientError::Refused(info)) => {
                assert_eq!(code_of(&info), "NetConnection.Call.Failed")
            }
            other => panic!("{missing} did not fail: {other:?}"),
        }
    }
    // AMF values survive the trip through JavaScript: objects in order, arrays, dates.
    let value = AmfValue::object([
        ("zeta", AmfValue::Number(1.0)),
        (
            "alpha",
            AmfValue::StrictArray(vec![AmfValue::string("x"), AmfValue::Boolean(true)]),
        ),
        (
            "when",
            AmfValue::Date {
                millis: 1_764_000_000_000.0,
                timezone_minutes: 0,
            },
        ),
        ("none", AmfValue::Null),
    ]);
    let echoed = client
        .call("echo", std::slice::from_ref(&value))
        .await
        .expect("echo");
    assert_eq!(echoed, vec![value]);
    server.wait_for_instance_log("calls/_definst_", "deliberate", WAIT);
    server.assert_healthy();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_handler_traces_in_order_to_the_instance_log_and_the_server_log() {
    let script = r#"
        application.onAppStart = function() { trace("1 onAppStart " + application.name); };
        application.onConnect = function(client) { trace("2 onConnect " + client.id); return true; };
        application.onPublish = function(client, stream) { trace("3 onPublish " + stream.name + " " + stream.publishQueryString); };
        application.onUnpublish = function(client, stream) { trace("4 onUnpublish " + stream.name); };
        application.onDisconnect = function(client) { trace("5 onDisconnect " + client.id); };
    "#;
    let mut server = TestServer::start_with_files(&["traced"], &[("traced/main.asc", script)], "");
    {
        let mut client = connect_with(&server, "traced/room1", vec![])
            .await
            .expect("connect");
        let stream_id = client.publish("cam?key=42").await.expect("publish");
        client.delete_stream(stream_id).await.expect("unpublish");
        server.wait_for_instance_log("traced/room1", "4 onUnpublish cam", WAIT);
    }
    let log = server.wait_for_instance_log("traced/room1", "5 onDisconnect", WAIT);
    assert_in_order(
        &log,
        &[
            "1 onAppStart traced/room1",
            "2 onConnect",
            "3 onPublish cam key=42",
            "4 onUnpublish cam",
            "5 onDisconnect",
        ],
    );
    let server_log = server.log();
    assert!(
        server_log.contains("3 onPublish cam key=42"),
        "{server_log}"
    );
    assert!(server_log.contains("instance=traced/room1"), "{server_log}");
    server.assert_healthy();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_changes_behaviour_without_dropping_streams_and_survives_a_syntax_error() {
    let v1 = r#"
        Client.prototype.version = function() { return 1; };
        application.onPublish = function(client, stream) { trace("v1 onPublish " + stream.name); };
    "#;
    // Three clients are connected when it loads: the player, the publisher and the caller.
    let v2 = r#"
        Client.prototype.version = function() { return 2; };
        application.onAppStart = function() { trace("v2 onAppStart with " + application.clients.length + " clients"); };
        application.onPublish = function(client, stream) { trace("v2 onPublish " + stream.name); };
    "#;
    let mut server = TestServer::start_with_files(&["hot"], &[("hot/main.asc", v1)], "");
    let mut player = connect_with(&server, "hot", vec![]).await.expect("player");
    player.play("show").await.expect("play");
    let app_url = server.url("hot");
    let publisher = tokio::spawn(async move {
        // 5 s of frames while the script changes twice.
        publish_numbered_frames(&app_url, "show", 250, 1500, 5, Duration::from_millis(100)).await
    });
    let receiver = tokio::spawn(async move {
        let frames = collect_numbered_frames(&mut player, Duration::from_secs(60)).await;
        (player, frames)
    });
    server.wait_for_instance_log("hot/_definst_", "v1 onPublish show", WAIT);
    let mut caller = connect_with(&server, "hot", vec![]).await.expect("caller");
    assert_eq!(
        caller.call("version", &[]).await.expect("v1"),
        vec![AmfValue::Number(1.0)]
    );

    server.write_app_file("hot/main.asc", v2);
    let log = server.wait_for_instance_log("hot/_definst_", "v2 onPublish show", WAIT);
    assert!(log.contains("v2 onAppStart with 3 clients"), "{log}");
    assert_eq!(
        caller.call("version", &[]).await.expect("v2"),
        vec![AmfValue::Number(2.0)]
    );

    server.write_app_file(
        "hot/main.asc",
        "Client.prototype.version = function() { return 3; ",
    );
    server.wait_for_instance_log("hot/_definst_", "previous script keeps running", WAIT);
    let log = server.instance_log("hot/_definst_");
    assert!(
        log.contains("main.asc"),
        "syntax error does not name the file:\n{log}"
    );
    assert_eq!(
        caller.call("version", &[]).await.expect("still v2"),
        vec![AmfValue::Number(2.0)]
    );

    let sent = publisher.await.expect("publisher");
    let (_player, frames) = receiver.await.expect("player");
    assert_eq!(
        frames.len() as u32,
        sent,
        "the player lost frames during reloads"
    );
    server.assert_healthy();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_scripts_are_stopped_and_nothing_else_is_disturbed() {
    let script = r#"
        Client.prototype.spin = function() { while (true) {} };
        Client.prototype.dive = function() { return this.dive() + 1; };
        Client.prototype.alive = function() { return "alive"; };
    "#;
    let mut server = TestServer::start_with_files(
        &["runaway", "calm"],
        &[
            ("runaway/main.asc", script),
            (
                "runaway/app.toml",
                "[script]\nloop_iteration_limit = 5000000\n",
            ),
            (
                "calm/main.asc",
                "Client.prototype.ping2 = function() { return 'pong'; };",
            ),
        ],
        "",
    );
    // A stream on another application flows throughout.
    let mut player = connect_with(&server, "calm", vec![]).await.expect("player");
    player.play("steady").await.expect("play");
    let app_url = server.url("calm");
    let publisher = tokio::spawn(async move {
        publish_numbered_frames(&app_url, "steady", 100, 1000, 5, Duration::from_millis(50)).await
    });
    let receiver =
        tokio::spawn(
            async move { collect_numbered_frames(&mut player, Duration::from_secs(60)).await },
        );

    let mut victim = connect_with(&server, "runaway", vec![])
        .await
        .expect("connect");
    for method in ["spin", "dive"] {
        match victim.call(method, &[]).await {
            Err(ClientError::Refused(info)) => {
                assert_eq!(code_of(&info), "NetConnection.Call.Failed")
            }
            other => panic!("{method} was not stopped: {other:?}"),
        }
    }
    assert_eq!(
        victim.call("alive", &[]).await.expect("instance usable"),
        vec![AmfValue::string("alive")]
    );
    let mut other = connect_with(&server, "calm", vec![])
        .await
        .expect("other app");
    assert_eq!(
        other.call("ping2", &[]).await.expect("other instance"),
        vec![AmfValue::string("pong")]
    );
    let sent = publisher.await.expect("publisher");
    let received = receiver.await.expect("player");
    assert_eq!(
        received.len() as u32,
        sent,
        "a runaway script disturbed another stream"
    );
    server.wait_for_instance_log("runaway/_definst_", "Application.Script.Error", WAIT);
    server.assert_healthy();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_script_runs_when_ffmpeg_publishes() {
    require_ffmpeg();
    let seed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/applications/livestreams/main.asc"
    ))
    .expect("seed script");
    let mut server =
        TestServer::start_with_files(&["livestreams"], &[("livestreams/main.asc", &seed)], "");
    let url = server.url("livestreams/localnews");
    let publisher = FfmpegPublisher::start(&url, "320x240", 25, 3);
    let log = server.wait_for_instance_log(
        "livestreams/_definst_",
        "Republishing the stream into livestreams/anotherinstance",
        WAIT,
    );
    assert!(
        log.contains("localnews is publishing into application livestreams/_definst_"),
        "{log}"
    );
    let (ok, err) = publisher.wait(Duration::from_secs(30));
    assert!(ok, "ffmpeg failed: {err}");
    server.wait_for_instance_log("livestreams/_definst_", "localnews is unpublishing", WAIT);
    server.assert_healthy();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_instance_unloads_with_on_app_stop_and_starts_again_on_the_next_connect() {
    let script = r#"
        application.onAppStart = function() { trace("onAppStart"); };
        application.onAppStop = function(info) { trace("onAppStop " + info.code); return true; };
    "#;
    let mut server = TestServer::start_with_files(
        &["idle"],
        &[
            ("idle/main.asc", script),
            ("idle/app.toml", "idle_unload_secs = 1\n"),
        ],
        "",
    );
    drop(
        connect_with(&server, "idle", vec![])
            .await
            .expect("first connect"),
    );
    server.wait_for_instance_log("idle/_definst_", "onAppStop Application.GC", WAIT);
    server.wait_for_log("instance unloaded", WAIT);
    let _again = connect_with(&server, "idle", vec![])
        .await
        .expect("second connect");
    let log = server.instance_log("idle/_definst_");
    assert_eq!(
        log.matches("onAppStart").count(),
        2,
        "instance did not start again:\n{log}"
    );
    server.assert_healthy();
}
