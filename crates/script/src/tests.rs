//! The script host driven through its public API with real scripts on disk.

use crate::{ClientInfo, ScriptCommand, ScriptConfig, ScriptEvent, ScriptInstance, ScriptLimits};
use ascend_rtmp::AmfValue;
use std::path::PathBuf;
use std::time::Duration;

struct App {
    dir: PathBuf,
}

impl App {
    fn new(name: &str, script: &str) -> App {
        let dir = std::env::temp_dir().join(format!("ascend-script-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("app dir");
        std::fs::write(dir.join("main.asc"), script).expect("script");
        App { dir }
    }

    fn start(
        &self,
        limits: ScriptLimits,
    ) -> (ScriptInstance, tokio::sync::mpsc::Receiver<ScriptCommand>) {
        self.start_restoring(limits, None)
    }

    /// [`App::start`] with clients and streams carried over, as a reload does.
    fn start_restoring(
        &self,
        limits: ScriptLimits,
        restore: Option<(Vec<crate::RestoredClient>, Vec<crate::RestoredStream>)>,
    ) -> (ScriptInstance, tokio::sync::mpsc::Receiver<ScriptCommand>) {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let config = ScriptConfig {
            app: "testapp".into(),
            instance: "_definst_".into(),
            app_dir: self.dir.clone(),
            log_dir: self.dir.join("logs"),
            log_rotate_bytes: 1 << 20,
            app_config: serde_json::json!({"greeting": "hello"}),
            server: "Ascend/test".into(),
            hostname: "localhost".into(),
            limits,
        };
        let sink = move |command| {
            let _ = tx.blocking_send(command);
        };
        (
            ScriptInstance::start(config, sink, restore).expect("thread"),
            rx,
        )
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("logs/application.00.log")).unwrap_or_default()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn client(id: u64) -> ClientInfo {
    ClientInfo {
        id,
        ip: "127.0.0.1".into(),
        agent: "test".into(),
        referrer: String::new(),
        page_url: String::new(),
        uri: "rtmp://127.0.0.1/testapp".into(),
        protocol: "rtmp".into(),
    }
}

fn next(rx: &mut tokio::sync::mpsc::Receiver<ScriptCommand>) -> ScriptCommand {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(command) = rx.try_recv() {
            return command;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no command from the script"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn on_connect_accepts_or_rejects_by_argument_and_calls_return_values() {
    let app = App::new(
        "connect",
        r#"
        application.onAppStart = function() { trace("start " + application.name + " " + application.config.greeting); };
        application.onConnect = function(client, user, pass) {
            trace("connect " + user);
            if (pass == "secret") return true;
            application.rejectConnection(client, {message: "bad password", user: user});
        };
        Client.prototype.add = function(a, b) { return a + b; };
        Client.prototype.math = { twice: function(x) { return 2 * x; } };
        "#,
    );
    let (script, mut rx) = app.start(ScriptLimits::default());
    script.send(ScriptEvent::Connect {
        client: client(1),
        args: vec![AmfValue::string("ann"), AmfValue::string("secret")],
    });
    assert_eq!(next(&mut rx), ScriptCommand::Accept { client_id: 1 });
    script.send(ScriptEvent::Connect {
        client: client(2),
        args: vec![AmfValue::string("bob"), AmfValue::string("wrong")],
    });
    assert_eq!(
        next(&mut rx),
        ScriptCommand::Reject {
            client_id: 2,
            application: AmfValue::object([
                ("message", AmfValue::string("bad password")),
                ("user", AmfValue::string("bob"))
            ])
        }
    );
    script.send(ScriptEvent::Call {
        client_id: 1,
        transaction_id: 5.0,
        method: "add".into(),
        args: vec![AmfValue::Number(2.0), AmfValue::Number(40.0)],
    });
    assert_eq!(
        next(&mut rx),
        ScriptCommand::CallResult {
            client_id: 1,
            transaction_id: 5.0,
            result: Ok(AmfValue::Number(42.0))
        }
    );
    script.send(ScriptEvent::Call {
        client_id: 1,
        transaction_id: 6.0,
        method: "math/twice".into(),
        args: vec![AmfValue::Number(21.0)],
    });
    assert_eq!(
        next(&mut rx),
        ScriptCommand::CallResult {
            client_id: 1,
            transaction_id: 6.0,
            result: Ok(AmfValue::Number(42.0))
        }
    );
    script.send(ScriptEvent::Call {
        client_id: 1,
        transaction_id: 7.0,
        method: "nothing".into(),
        args: vec![],
    });
    assert_eq!(
        next(&mut rx),
        ScriptCommand::CallResult {
            client_id: 1,
            transaction_id: 7.0,
            result: Err("Method not found (nothing).".into())
        }
    );
    let log = app.log();
    assert!(log.contains("start testapp/_definst_ hello"), "{log}");
    assert!(log.find("connect ann") < log.find("connect bob"), "{log}");
}

#[test]
fn clients_are_built_with_their_details_and_leave_application_clients_in_connection_order() {
    let app = App::new(
        "clients",
        r#"
        application.onConnect = function(client) {
            trace("keys " + Object.keys(client).join(","));
            trace("client " + (client instanceof Client) + " " + client.ip + " " + client.agent + " "
                + client.protocolVersion + " " + client.getBandwidthLimit(0) + " " + client.readAccess);
            return true;
        };
        application.onDisconnect = function(client) {
            var left = [];
            for (var i = 0; i < application.clients.length; i++) left.push(application.clients[i].id);
            trace("gone " + client.id + " left " + left.join(","));
        };
        "#,
    );
    let (script, mut rx) = app.start(ScriptLimits::default());
    for id in 1..=5 {
        script.send(ScriptEvent::Connect {
            client: client(id),
            args: vec![],
        });
        assert_eq!(next(&mut rx), ScriptCommand::Accept { client_id: id });
    }
    // The second (nearer the front), the last, the first, then the first again.
    for id in [2, 5, 1, 3] {
        script.send(ScriptEvent::Disconnect { client_id: id });
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !app.log().contains("gone 3") {
        assert!(std::time::Instant::now() < deadline, "{}", app.log());
        std::thread::sleep(Duration::from_millis(5));
    }
    let log = app.log();
    assert!(
        log.contains("keys id,ip,agent,referrer,pageUrl,uri,protocol,protocolVersion,secure"),
        "{log}"
    );
    assert!(
        log.contains("client true 127.0.0.1 test RTMP 2500000 /"),
        "{log}"
    );
    let gone: Vec<&str> = log
        .lines()
        .filter_map(|line| line.split_once("gone ").map(|(_, rest)| rest))
        .collect();
    assert_eq!(
        gone,
        ["2 left 1,3,4,5", "5 left 1,3,4", "1 left 3,4", "3 left 4"],
        "{log}"
    );
}

#[test]
fn clients_carried_over_by_a_reload_keep_their_access_and_are_already_accepted() {
    let app = App::new(
        "restored",
        r#"
        application.onAppStart = function() {
            var c = application.clients[0];
            trace("restored " + application.clients.length + " " + c.id + " " + c.ip + " "
                + c.readAccess + " " + c.writeAccess + " " + (c instanceof Client)
                + " again " + application.acceptConnection(c));
        };
        "#,
    );
    let restored = crate::RestoredClient {
        info: client(7),
        read_access: "/live".into(),
        write_access: "/live/mine".into(),
    };
    let (_script, _rx) =
        app.start_restoring(ScriptLimits::default(), Some((vec![restored], vec![])));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !app.log().contains("restored") {
        assert!(std::time::Instant::now() < deadline, "{}", app.log());
        std::thread::sleep(Duration::from_millis(5));
    }
    // acceptConnection of a client that was decided before the reload does nothing.
    assert!(
        app.log()
            .contains("restored 1 7 127.0.0.1 /live /live/mine true again false"),
        "{}",
        app.log()
    );
}

#[test]
fn pending_connection_is_accepted_later_from_a_timer() {
    let app = App::new(
        "pending",
        r#"
        application.onConnect = function(client) {
            setTimeout(function() { application.acceptConnection(client); trace("accepted later"); }, 200);
        };
        "#,
    );
    let (script, mut rx) = app.start(ScriptLimits::default());
    let started = std::time::Instant::now();
    script.send(ScriptEvent::Connect {
        client: client(9),
        args: vec![],
    });
    assert_eq!(next(&mut rx), ScriptCommand::Accept { client_id: 9 });
    assert!(started.elapsed() >= Duration::from_millis(190));
}

#[test]
fn runaway_loops_and_recursion_become_script_errors_and_the_instance_goes_on() {
    let app = App::new(
        "runaway",
        r#"
        Client.prototype.spin = function() { while (true) {} };
        Client.prototype.dive = function() { return this.dive(); };
        Client.prototype.ok = function() { return "still here"; };
        "#,
    );
    let limits = ScriptLimits {
        loop_iteration_limit: 1_000_000,
        ..ScriptLimits::default()
    };
    let (script, mut rx) = app.start(limits);
    script.send(ScriptEvent::Connect {
        client: client(1),
        args: vec![],
    });
    assert_eq!(next(&mut rx), ScriptCommand::Accept { client_id: 1 });
    for (tx, method) in [(1.0, "spin"), (2.0, "dive")] {
        script.send(ScriptEvent::Call {
            client_id: 1,
            transaction_id: tx,
            method: method.into(),
            args: vec![],
        });
        match next(&mut rx) {
            ScriptCommand::CallResult {
                result: Err(message),
                ..
            } => assert!(!message.is_empty()),
            other => panic!("{method} did not fail: {other:?}"),
        }
    }
    script.send(ScriptEvent::Call {
        client_id: 1,
        transaction_id: 3.0,
        method: "ok".into(),
        args: vec![],
    });
    assert_eq!(
        next(&mut rx),
        ScriptCommand::CallResult {
            client_id: 1,
            transaction_id: 3.0,
            result: Ok(AmfValue::string("still here"))
        }
    );
    assert!(
        app.log().contains("Application.Script.Error"),
        "{}",
        app.log()
    );
}

#[test]
fn reload_keeps_clients_and_replays_publish_and_a_syntax_error_keeps_the_old_script() {
    let app = App::new(
        "reload",
        r#"
        application.onPublish = function(c, s) { trace("v1 publish " + s.name + " " + s.publishQueryString); };
        application.onAppStop = function() { trace("v1 stop"); };
        Client.prototype.version = function() { return 1; };
        "#,
    );
    let (script, mut rx) = app.start(ScriptLimits::default());
    script.send(ScriptEvent::Connect {
        client: client(1),
        args: vec![],
    });
    assert_eq!(next(&mut rx), ScriptCommand::Accept { client_id: 1 });
    script.send(ScriptEvent::Publish {
        client_id: 1,
        name: "cam".into(),
        query: "k=1".into(),
    });
    std::fs::write(
        app.dir.join("main.asc"),
        r#"
        application.onAppStart = function() { trace("v2 start with " + application.clients.length + " client"); };
        application.onPublish = function(c, s) { trace("v2 publish " + s.name + " by " + c.id); };
        Client.prototype.version = function() { return 2; };
        "#,
    )
    .expect("write v2");
    script.send(ScriptEvent::Reload);
    script.send(ScriptEvent::Call {
        client_id: 1,
        transaction_id: 1.0,
        method: "version".into(),
        args: vec![],
    });
    assert_eq!(
        next(&mut rx),
        ScriptCommand::CallResult {
            client_id: 1,
            transaction_id: 1.0,
            result: Ok(AmfValue::Number(2.0))
        }
    );
    std::fs::write(
        app.dir.join("main.asc"),
        "Client.prototype.version = function() { return 3; ",
    )
    .expect("write broken");
    script.send(ScriptEvent::Reload);
    script.send(ScriptEvent::Call {
        client_id: 1,
        transaction_id: 2.0,
        method: "version".into(),
        args: vec![],
    });
    assert_eq!(
        next(&mut rx),
        ScriptCommand::CallResult {
            client_id: 1,
            transaction_id: 2.0,
            result: Ok(AmfValue::Number(2.0))
        }
    );
    let log = app.log();
    let order: Vec<usize> = [
        "v1 publish cam k=1",
        "v1 stop",
        "v2 start with 1 client",
        "v2 publish cam by 1",
        "Application.Script.Error",
    ]
    .iter()
    .map(|needle| {
        log.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} missing in {log}"))
    })
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{log}");
    assert!(
        log.contains("main.asc"),
        "syntax error without its file: {log}"
    );
}

#[test]
fn an_exception_in_on_connect_rejects_that_client_only() {
    let app = App::new(
        "throwing",
        r#"
        application.onConnect = function(client, name) {
            if (name == "bad") throw new Error("no thanks");
            return true;
        };
        "#,
    );
    let (script, mut rx) = app.start(ScriptLimits::default());
    script.send(ScriptEvent::Connect {
        client: client(1),
        args: vec![AmfValue::string("bad")],
    });
    assert!(matches!(
        next(&mut rx),
        ScriptCommand::Reject { client_id: 1, .. }
    ));
    script.send(ScriptEvent::Connect {
        client: client(2),
        args: vec![AmfValue::string("good")],
    });
    assert_eq!(next(&mut rx), ScriptCommand::Accept { client_id: 2 });
    assert!(app.log().contains("no thanks"), "{}", app.log());
}

#[test]
fn registered_classes_type_amf_objects_both_ways() {
    let app = App::new(
        "classes",
        r#"
        function User() {}
        User.prototype.greet = function() { return "hello " + this.name; };
        application.registerClass("com.example.User", User);
        Client.prototype.greet = function(user) { return user.greet(); };
        Client.prototype.make = function() { var u = new User(); u.name = "zoe"; return u; };
        "#,
    );
    let (script, mut rx) = app.start(ScriptLimits::default());
    script.send(ScriptEvent::Connect {
        client: client(1),
        args: vec![],
    });
    assert_eq!(next(&mut rx), ScriptCommand::Accept { client_id: 1 });
    let typed = AmfValue::Object {
        class_name: Some("com.example.User".into()),
        properties: vec![("name".into(), AmfValue::string("ann"))],
    };
    script.send(ScriptEvent::Call {
        client_id: 1,
        transaction_id: 1.0,
        method: "greet".into(),
        args: vec![typed],
    });
    assert_eq!(
        next(&mut rx),
        ScriptCommand::CallResult {
            client_id: 1,
            transaction_id: 1.0,
            result: Ok(AmfValue::string("hello ann"))
        }
    );
    script.send(ScriptEvent::Call {
        client_id: 1,
        transaction_id: 2.0,
        method: "make".into(),
        args: vec![],
    });
    assert_eq!(
        next(&mut rx),
        ScriptCommand::CallResult {
            client_id: 1,
            transaction_id: 2.0,
            result: Ok(AmfValue::Object {
                class_name: Some("com.example.User".into()),
                properties: vec![("name".into(), AmfValue::string("zoe"))],
            })
        }
    );
}

#[test]
fn on_app_stop_can_refuse_an_unload() {
    let app = App::new(
        "stop",
        r#"
        var stops = 0;
        application.onAppStop = function(info) { stops++; trace("onAppStop " + info.code + " " + stops); return stops > 1; };
        "#,
    );
    let (script, mut rx) = app.start(ScriptLimits::default());
    script.send(ScriptEvent::Stop {
        code: "Application.GC".into(),
    });
    assert_eq!(next(&mut rx), ScriptCommand::StopAnswered { unload: false });
    script.send(ScriptEvent::Stop {
        code: "Application.GC".into(),
    });
    assert_eq!(next(&mut rx), ScriptCommand::StopAnswered { unload: true });
    assert!(
        app.log().contains("onAppStop Application.GC 2"),
        "{}",
        app.log()
    );
}
