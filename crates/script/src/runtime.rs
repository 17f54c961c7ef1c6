//! The instance thread: one Boa context running the FMS prelude and the application's script,
//! the native functions behind `__ascend`, event dispatch, timers, reload and error handling.
//!
//! Events are handled one at a time (so `onConnect` calls are serialized per instance); timers
//! fire between events. Every call into JavaScript is bracketed by the [`BusyClock`] the server's
//! watchdog reads, and bounded by Boa's loop and recursion limits: a runaway handler ends in an
//! `Application.Script.Error`, the context stays usable.

use crate::client_object::make_client;
use crate::convert::{amf_to_js, js_to_amf, js_values_to_amf};
use crate::log::InstanceLog;
use crate::{
    find_script, RestoredClient, RestoredStream, ScriptCommand, ScriptConfig, ScriptEvent,
};
use ascend_rtmp::AmfValue;
use boa_engine::object::builtins::JsArray;
use boa_engine::object::ObjectInitializer;
use boa_engine::property::Attribute;
use boa_engine::{
    js_string, Context, JsError, JsNativeError, JsResult, JsString, JsValue, NativeFunction, Source,
};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PRELUDE: &str = include_str!("prelude.js");
/// Deepest `load()` nesting (a file loading itself would otherwise recurse forever).
const MAX_LOAD_DEPTH: usize = 16;

/// Marks when the current handler started, for the server's watchdog (0 = idle).
pub struct BusyClock {
    /// Milliseconds since `epoch` when the handler started; 0 when idle.
    pub since: Arc<AtomicU64>,
    /// The clock's origin.
    pub epoch: Instant,
}

impl BusyClock {
    fn enter(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.since.store(now.max(1), Ordering::Relaxed);
    }

    fn leave(&self) {
        self.since.store(0, Ordering::Relaxed);
    }
}

struct Timer {
    id: u32,
    generation: u64,
    due: Instant,
    every: Option<Duration>,
}

#[derive(Default)]
struct Stats {
    total_connects: u64,
    total_disconnects: u64,
    accepted: u64,
    rejected: u64,
}

/// Host state shared by the native functions of the current context.
struct Host {
    config: ScriptConfig,
    /// Where commands go: the server routes each at once, on this thread.
    commands: RefCell<Box<dyn FnMut(ScriptCommand) + Send>>,
    log: InstanceLog,
    timers: Vec<Timer>,
    next_timer_id: u32,
    /// Generation of the context being built or running; timers of older ones are dropped.
    generation: u64,
    clients: BTreeMap<u64, RestoredClient>,
    accepted: BTreeSet<u64>,
    decided: BTreeSet<u64>,
    streams: BTreeMap<String, RestoredStream>,
    stats: Stats,
    load_depth: usize,
    /// Ids of server-side NetConnections and NetStreams.
    next_object_id: u64,
}

impl Host {
    fn send(&self, command: ScriptCommand) {
        (self.commands.borrow_mut())(command);
    }

    fn trace(&mut self, message: &str) {
        tracing::info!(target: "ascend::script", instance = %self.config.full_name(), "{message}");
        self.log.write("trace", message);
    }

    fn error(&mut self, message: &str) {
        tracing::error!(target: "ascend::script", instance = %self.config.full_name(), "{message}");
        self.log.write("error", message);
    }
}

#[derive(Clone)]
struct HostRef(Rc<RefCell<Host>>);

fn host(context: &Context) -> JsResult<Rc<RefCell<Host>>> {
    context
        .get_data::<HostRef>()
        .map(|h| h.0.clone())
        .ok_or_else(|| JsNativeError::error().with_message("no script host").into())
}

fn arg(args: &[JsValue], index: usize) -> JsValue {
    args.get(index).cloned().unwrap_or_default()
}

fn arg_string(args: &[JsValue], index: usize, context: &mut Context) -> JsResult<String> {
    Ok(arg(args, index).to_string(context)?.to_std_string_escaped())
}

fn arg_number(args: &[JsValue], index: usize, context: &mut Context) -> JsResult<f64> {
    arg(args, index).to_number(context)
}

fn arg_id(args: &[JsValue], index: usize, context: &mut Context) -> JsResult<u64> {
    Ok(arg_number(args, index, context)? as u64)
}

fn native_trace(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let message = arg_string(args, 0, context)?;
    host(context)?.borrow_mut().trace(&message);
    Ok(JsValue::undefined())
}

fn native_load(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let relative = arg_string(args, 0, context)?;
    let host = host(context)?;
    let app_dir = host.borrow().config.app_dir.clone();
    let path = resolve_in_app(&app_dir, &relative).ok_or_else(|| {
        JsNativeError::error()
            .with_message(format!("load: {relative} is not a file of the application"))
    })?;
    let code = std::fs::read(&path).map_err(|e| {
        JsNativeError::error().with_message(format!("load: cannot read {relative}: {e}"))
    })?;
    {
        let mut h = host.borrow_mut();
        if h.load_depth >= MAX_LOAD_DEPTH {
            return Err(JsNativeError::error()
                .with_message(format!("load: nested deeper than {MAX_LOAD_DEPTH} files"))
                .into());
        }
        h.load_depth += 1;
    }
    let result = context.eval(Source::from_bytes(&code).with_path(&path));
    host.borrow_mut().load_depth -= 1;
    result
        .map(|_| JsValue::undefined())
        .map_err(|error| name_the_file(error, &relative, context))
}

/// `relative` inside `app_dir` (subfolders allowed, no escape through `..` or links).
fn resolve_in_app(app_dir: &Path, relative: &str) -> Option<PathBuf> {
    let base = app_dir.canonicalize().ok()?;
    let path = base.join(relative).canonicalize().ok()?;
    (path.starts_with(&base) && path.is_file()).then_some(path)
}

fn native_set_timer(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let ms = arg_number(args, 0, context)?;
    let repeat = arg(args, 1).to_boolean();
    let host = host(context)?;
    let mut h = host.borrow_mut();
    h.next_timer_id = h.next_timer_id.wrapping_add(1).max(1);
    let id = h.next_timer_id;
    // FMS and browsers clamp intervals; 10 ms keeps a zero interval from spinning.
    let period = Duration::from_millis(if ms.is_finite() {
        ms.max(0.0) as u64
    } else {
        0
    });
    let period = period.max(Duration::from_millis(if repeat { 10 } else { 0 }));
    let generation = h.generation;
    h.timers.push(Timer {
        id,
        generation,
        due: Instant::now() + period,
        every: repeat.then_some(period),
    });
    Ok(JsValue::from(id))
}

fn native_clear_timer(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let id = arg_number(args, 0, context)? as u32;
    let host = host(context)?;
    let mut h = host.borrow_mut();
    let generation = h.generation;
    h.timers
        .retain(|t| !(t.id == id && t.generation == generation));
    Ok(JsValue::undefined())
}

fn native_accept(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let client_id = arg_id(args, 0, context)?;
    let host = host(context)?;
    let mut h = host.borrow_mut();
    if h.clients.contains_key(&client_id) && h.decided.insert(client_id) {
        h.accepted.insert(client_id);
        h.stats.accepted += 1;
        h.send(ScriptCommand::Accept { client_id });
    }
    Ok(JsValue::undefined())
}

fn native_reject(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let client_id = arg_id(args, 0, context)?;
    let application = js_to_amf(&arg(args, 1), context)?;
    let host = host(context)?;
    let mut h = host.borrow_mut();
    if h.clients.contains_key(&client_id) && h.decided.insert(client_id) {
        h.stats.rejected += 1;
        h.send(ScriptCommand::Reject {
            client_id,
            application,
        });
    }
    Ok(JsValue::undefined())
}

fn native_disconnect(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let client_id = arg_id(args, 0, context)?;
    host(context)?
        .borrow()
        .send(ScriptCommand::Disconnect { client_id });
    Ok(JsValue::undefined())
}

fn native_call_client(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let client_id = arg_id(args, 0, context)?;
    let method = arg_string(args, 1, context)?;
    let call_id = arg_id(args, 2, context)?;
    let values = values_of_array(&arg(args, 3), context)?;
    host(context)?.borrow().send(ScriptCommand::CallClient {
        client_id,
        method,
        args: values,
        call_id,
    });
    Ok(JsValue::undefined())
}

fn native_ping_client(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let client_id = arg_id(args, 0, context)?;
    host(context)?
        .borrow()
        .send(ScriptCommand::Ping { client_id });
    Ok(JsValue::from(true))
}

fn native_set_access(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let client_id = arg_id(args, 0, context)?;
    let read = arg_string(args, 1, context)?;
    let write = arg_string(args, 2, context)?;
    let host = host(context)?;
    let mut h = host.borrow_mut();
    if let Some(client) = h.clients.get_mut(&client_id) {
        client.read_access = read.clone();
        client.write_access = write.clone();
    }
    h.send(ScriptCommand::SetAccess {
        client_id,
        read,
        write,
    });
    Ok(JsValue::undefined())
}

fn native_app_stats(_: &JsValue, _: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let stats = {
        let host = host(context)?;
        let h = host.borrow();
        AmfValue::object([
            (
                "total_connects",
                AmfValue::Number(h.stats.total_connects as f64),
            ),
            (
                "total_disconnects",
                AmfValue::Number(h.stats.total_disconnects as f64),
            ),
            ("accepted", AmfValue::Number(h.stats.accepted as f64)),
            ("rejected", AmfValue::Number(h.stats.rejected as f64)),
            ("connected", AmfValue::Number(h.accepted.len() as f64)),
            ("streams", AmfValue::Number(h.streams.len() as f64)),
        ])
    };
    amf_to_js(&stats, context)
}

fn native_client_stats(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let client_id = arg_id(args, 0, context)?;
    let stats = {
        let host = host(context)?;
        let h = host.borrow();
        let streams = h
            .streams
            .values()
            .filter(|s| s.client_id == client_id)
            .count();
        AmfValue::object([
            ("id", AmfValue::Number(client_id as f64)),
            ("publishing", AmfValue::Number(streams as f64)),
        ])
    };
    amf_to_js(&stats, context)
}

fn native_gc(_: &JsValue, _: &[JsValue], _: &mut Context) -> JsResult<JsValue> {
    boa_engine::gc::force_collect();
    Ok(JsValue::undefined())
}

fn values_of_array(value: &JsValue, context: &mut Context) -> JsResult<Vec<AmfValue>> {
    match value.as_object() {
        Some(array) if array.is_array() => {
            let array = JsArray::from_object(array)?;
            let mut values = Vec::new();
            for i in 0..array.length(context)? {
                values.push(array.get(i, context)?);
            }
            js_values_to_amf(&values, context)
        }
        _ => Ok(Vec::new()),
    }
}

fn native_new_id(_: &JsValue, _: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let host = host(context)?;
    let mut h = host.borrow_mut();
    h.next_object_id += 1;
    Ok(JsValue::from(h.next_object_id as f64))
}

fn send_command(context: &Context, command: ScriptCommand) -> JsResult<JsValue> {
    host(context)?.borrow().send(command);
    Ok(JsValue::from(true))
}

fn native_nc_connect(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let nc_id = arg_id(args, 0, context)?;
    let uri = arg_string(args, 1, context)?;
    let args = values_of_array(&arg(args, 2), context)?;
    send_command(
        context,
        ScriptCommand::NetConnectionConnect { nc_id, uri, args },
    )
}

fn native_nc_call(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let nc_id = arg_id(args, 0, context)?;
    let method = arg_string(args, 1, context)?;
    let call_id = arg_id(args, 2, context)?;
    let args = values_of_array(&arg(args, 3), context)?;
    send_command(
        context,
        ScriptCommand::NetConnectionCall {
            nc_id,
            method,
            args,
            call_id,
        },
    )
}

fn native_nc_close(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let nc_id = arg_id(args, 0, context)?;
    send_command(context, ScriptCommand::NetConnectionClose { nc_id })
}

fn native_ns_attach(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let ns_id = arg_id(args, 0, context)?;
    let nc_id = arg_id(args, 1, context)?;
    let source = match arg(args, 2) {
        v if v.is_null_or_undefined() => None,
        v => Some(v.to_string(context)?.to_std_string_escaped()),
    };
    send_command(
        context,
        ScriptCommand::NetStreamAttach {
            ns_id,
            nc_id,
            source,
        },
    )
}

fn native_ns_publish(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let ns_id = arg_id(args, 0, context)?;
    let nc_id = arg_id(args, 1, context)?;
    let name = arg_string(args, 2, context)?;
    let mode = arg_string(args, 3, context)?;
    send_command(
        context,
        ScriptCommand::NetStreamPublish {
            ns_id,
            nc_id,
            name,
            mode,
        },
    )
}

fn native_ns_unpublish(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let ns_id = arg_id(args, 0, context)?;
    let nc_id = arg_id(args, 1, context)?;
    send_command(context, ScriptCommand::NetStreamUnpublish { ns_id, nc_id })
}

fn native_ns_send(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let ns_id = arg_id(args, 0, context)?;
    let nc_id = arg_id(args, 1, context)?;
    let values = values_of_array(&arg(args, 2), context)?;
    send_command(
        context,
        ScriptCommand::NetStreamSend {
            ns_id,
            nc_id,
            values,
        },
    )
}

fn native_stream_play(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let name = arg_string(args, 0, context)?;
    let source = arg_string(args, 1, context)?;
    let nc_id = arg_id(args, 2, context)?;
    send_command(
        context,
        ScriptCommand::StreamPlay {
            name,
            source,
            nc_id,
        },
    )
}

fn native_stream_stop(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let name = arg_string(args, 0, context)?;
    send_command(context, ScriptCommand::StreamStop { name })
}

fn native_shutdown(_: &JsValue, _: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    host(context)?.borrow().send(ScriptCommand::Shutdown);
    Ok(JsValue::undefined())
}

/// The instance's script state: the host and the current context.
struct Runtime {
    host: Rc<RefCell<Host>>,
    context: Option<Context>,
    busy: BusyClock,
    reporting_error: bool,
}

/// The instance thread's body.
pub(crate) fn run(
    config: ScriptConfig,
    events: Receiver<ScriptEvent>,
    commands: Box<dyn FnMut(ScriptCommand) + Send>,
    busy: BusyClock,
    restore: Option<(Vec<RestoredClient>, Vec<RestoredStream>)>,
) {
    let log = InstanceLog::new(
        config.log_dir.clone(),
        config.log_rotate_bytes,
        config.full_name(),
    );
    let mut host = Host {
        config,
        commands: RefCell::new(commands),
        log,
        timers: Vec::new(),
        next_timer_id: 0,
        generation: 0,
        clients: BTreeMap::new(),
        accepted: BTreeSet::new(),
        decided: BTreeSet::new(),
        streams: BTreeMap::new(),
        stats: Stats::default(),
        load_depth: 0,
        next_object_id: 0,
    };
    if let Some((clients, streams)) = restore {
        for client in clients {
            host.accepted.insert(client.info.id);
            host.decided.insert(client.info.id);
            host.clients.insert(client.info.id, client);
        }
        for stream in streams {
            host.streams.insert(stream.name.clone(), stream);
        }
    }
    let mut runtime = Runtime {
        host: Rc::new(RefCell::new(host)),
        context: None,
        busy,
        reporting_error: false,
    };
    runtime.install();
    loop {
        let wait = runtime.until_next_timer();
        match events.recv_timeout(wait) {
            Ok(event) => {
                if !runtime.handle(event) {
                    break;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        runtime.fire_due_timers();
    }
    tracing::debug!(instance = %runtime.host.borrow().config.full_name(), "script thread ends");
}

impl Runtime {
    fn name(&self) -> String {
        self.host.borrow().config.full_name()
    }

    /// Builds a context with the prelude and runs the application's global code.
    fn build_context(&mut self) -> Result<Context, String> {
        let mut context = Context::default();
        let (limits, info_json, script) = {
            let h = self.host.borrow();
            let info = serde_json::json!({
                "name": h.config.full_name(),
                "server": h.config.server,
                "hostname": h.config.hostname,
                "config": h.config.app_config,
            });
            (
                h.config.limits.clone(),
                info.to_string(),
                find_script(&h.config.app_dir, &h.config.app),
            )
        };
        context
            .runtime_limits_mut()
            .set_loop_iteration_limit(limits.loop_iteration_limit);
        context
            .runtime_limits_mut()
            .set_recursion_limit(limits.recursion_limit);
        context.insert_data(HostRef(self.host.clone()));
        let natives = ObjectInitializer::new(&mut context)
            .function(
                NativeFunction::from_fn_ptr(native_trace),
                js_string!("trace"),
                1,
            )
            .function(
                NativeFunction::from_fn_ptr(native_load),
                js_string!("load"),
                1,
            )
            .function(
                NativeFunction::from_fn_ptr(native_set_timer),
                js_string!("setTimer"),
                2,
            )
            .function(
                NativeFunction::from_fn_ptr(native_clear_timer),
                js_string!("clearTimer"),
                1,
            )
            .function(
                NativeFunction::from_fn_ptr(native_accept),
                js_string!("accept"),
                1,
            )
            .function(
                NativeFunction::from_fn_ptr(native_reject),
                js_string!("reject"),
                2,
            )
            .function(
                NativeFunction::from_fn_ptr(native_disconnect),
                js_string!("disconnect"),
                1,
            )
            .function(
                NativeFunction::from_fn_ptr(native_call_client),
                js_string!("callClient"),
                4,
            )
            .function(
                NativeFunction::from_fn_ptr(native_ping_client),
                js_string!("pingClient"),
                1,
            )
            .function(
                NativeFunction::from_fn_ptr(native_set_access),
                js_string!("setAccess"),
                3,
            )
            .function(
                NativeFunction::from_fn_ptr(native_app_stats),
                js_string!("appStats"),
                0,
            )
            .function(
                NativeFunction::from_fn_ptr(native_client_stats),
                js_string!("clientStats"),
                1,
            )
            .function(NativeFunction::from_fn_ptr(native_gc), js_string!("gc"), 0)
            .function(
                NativeFunction::from_fn_ptr(native_shutdown),
                js_string!("shutdown"),
                0,
            )
            .function(
                NativeFunction::from_fn_ptr(native_new_id),
                js_string!("newId"),
                0,
            )
            .function(
                NativeFunction::from_fn_ptr(native_nc_connect),
                js_string!("ncConnect"),
                3,
            )
            .function(
                NativeFunction::from_fn_ptr(native_nc_call),
                js_string!("ncCall"),
                4,
            )
            .function(
                NativeFunction::from_fn_ptr(native_nc_close),
                js_string!("ncClose"),
                1,
            )
            .function(
                NativeFunction::from_fn_ptr(native_ns_attach),
                js_string!("nsAttach"),
                3,
            )
            .function(
                NativeFunction::from_fn_ptr(native_ns_publish),
                js_string!("nsPublish"),
                4,
            )
            .function(
                NativeFunction::from_fn_ptr(native_ns_unpublish),
                js_string!("nsUnpublish"),
                2,
            )
            .function(
                NativeFunction::from_fn_ptr(native_ns_send),
                js_string!("nsSend"),
                3,
            )
            .function(
                NativeFunction::from_fn_ptr(native_stream_play),
                js_string!("streamPlay"),
                3,
            )
            .function(
                NativeFunction::from_fn_ptr(native_stream_stop),
                js_string!("streamStop"),
                1,
            )
            .build();
        let registered = context
            .register_global_property(js_string!("__ascend"), natives, Attribute::empty())
            .and_then(|()| {
                context.register_global_property(
                    js_string!("__ascend_info_json"),
                    JsString::from(info_json.as_str()),
                    Attribute::empty(),
                )
            });
        if let Err(error) = registered {
            return Err(format!("cannot set up the script host: {error}"));
        }
        let prelude = format!("var __ascend_info = JSON.parse(__ascend_info_json);\n{PRELUDE}");
        let prelude_source = Source::from_bytes(&prelude).with_path(Path::new("ascend-prelude.js"));
        if let Err(error) = context.eval(prelude_source) {
            return Err(format!("prelude failed: {error}"));
        }
        if let Some(path) = script {
            let code =
                std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            self.busy.enter();
            let result = context.eval(Source::from_bytes(&code).with_path(&path));
            self.busy.leave();
            if let Err(error) = result {
                let file = path
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let error = name_the_file(error, &file, &mut context);
                return Err(describe_error(&error, &mut context));
            }
        }
        Ok(context)
    }

    /// Loads the script into a new context. On success the old context (if any) gets
    /// `onAppStop`, the new one sees the connected clients, runs `onAppStart` and gets
    /// `onPublish` for each live stream. On failure the old context stays.
    fn install(&mut self) {
        let reload = self.context.is_some();
        let old_generation = {
            let mut h = self.host.borrow_mut();
            h.generation += 1;
            h.generation - 1
        };
        match self.build_context() {
            Ok(context) => {
                if reload {
                    let info = AmfValue::object([
                        ("code", AmfValue::string("Application.Shutdown")),
                        ("level", AmfValue::string("status")),
                        (
                            "description",
                            AmfValue::string("The application script is being reloaded."),
                        ),
                    ]);
                    let _ = self.call("__ascend_stop", |c| Ok(vec![amf_to_js(&info, c)?]));
                }
                self.context = Some(context);
                let (clients, streams) = {
                    let mut h = self.host.borrow_mut();
                    let current = h.generation;
                    h.timers.retain(|t| t.generation == current);
                    let clients: Vec<RestoredClient> = h
                        .clients
                        .values()
                        .filter(|c| h.accepted.contains(&c.info.id))
                        .cloned()
                        .collect();
                    let streams: Vec<RestoredStream> = h.streams.values().cloned().collect();
                    (clients, streams)
                };
                for client in clients {
                    let _ = self.call("__ascend_restoreClient", |c| {
                        Ok(vec![make_client(&client, true, c)?.into()])
                    });
                }
                let _ = self.call("__ascend_start", |_| Ok(vec![]));
                for stream in streams {
                    let _ = self.call("__ascend_publish", |_| {
                        Ok(vec![
                            JsValue::from(stream.client_id as f64),
                            JsValue::from(JsString::from(stream.name.as_str())),
                            JsValue::from(JsString::from(stream.query.as_str())),
                        ])
                    });
                }
                let name = self.name();
                let mut h = self.host.borrow_mut();
                let verb = if reload { "reloaded" } else { "loaded" };
                h.log
                    .write("status", &format!("Application {name} {verb}."));
                tracing::info!(instance = %name, "application script {verb}");
            }
            Err(message) => {
                let mut h = self.host.borrow_mut();
                h.generation = old_generation;
                let current = h.generation;
                h.timers.retain(|t| t.generation == current);
                let outcome = if reload {
                    "the previous script keeps running"
                } else {
                    "connections to this instance are refused until it loads"
                };
                h.error(&format!("Application.Script.Error: {message} ({outcome})"));
            }
        }
    }

    /// Calls the global function `name` with arguments made by `make_args`, reporting errors.
    fn call(
        &mut self,
        name: &str,
        make_args: impl FnOnce(&mut Context) -> JsResult<Vec<JsValue>>,
    ) -> Result<JsValue, String> {
        let Some(context) = self.context.as_mut() else {
            return Err("the application script is not loaded".into());
        };
        self.busy.enter();
        let result = (|| {
            let function = context.global_object().get(JsString::from(name), context)?;
            let Some(function) = function.as_callable() else {
                return Ok(JsValue::undefined());
            };
            let args = make_args(context)?;
            function.call(&JsValue::undefined(), &args, context)
        })();
        let _ = context.run_jobs();
        self.busy.leave();
        match result {
            Ok(value) => Ok(value),
            Err(error) => {
                let message = describe_error(&error, context);
                self.report_error(&message);
                Err(message)
            }
        }
    }

    /// Logs an Application.Script.Error and tells `application.onStatus`.
    fn report_error(&mut self, message: &str) {
        self.host
            .borrow_mut()
            .error(&format!("Application.Script.Error: {message}"));
        if self.reporting_error {
            return;
        }
        self.reporting_error = true;
        let info = AmfValue::object([
            ("code", AmfValue::string("Application.Script.Error")),
            ("level", AmfValue::string("error")),
            ("description", AmfValue::string(message)),
        ]);
        let _ = self.call("__ascend_status", |c| Ok(vec![amf_to_js(&info, c)?]));
        self.reporting_error = false;
    }

    /// Handles one event; false when the instance should end.
    fn handle(&mut self, event: ScriptEvent) -> bool {
        match event {
            ScriptEvent::Connect { client, args } => {
                let client_id = client.id;
                {
                    let mut h = self.host.borrow_mut();
                    h.stats.total_connects += 1;
                    h.clients.insert(
                        client_id,
                        RestoredClient {
                            info: client,
                            read_access: "/".into(),
                            write_access: "/".into(),
                        },
                    );
                }
                // Taken out of the host first: building the object may run script code (a
                // getter on `Client`), which may need the host.
                let client = self.host.borrow().clients.get(&client_id).cloned();
                let result = self.call("__ascend_connect", |c| {
                    let client = match &client {
                        Some(client) => make_client(client, false, c)?.into(),
                        None => JsValue::null(),
                    };
                    let mut call_args = Vec::with_capacity(1 + args.len());
                    call_args.push(client);
                    for a in &args {
                        call_args.push(amf_to_js(a, c)?);
                    }
                    Ok(vec![JsArray::from_iter(call_args, c).into()])
                });
                if let Err(message) = result {
                    // An error in onConnect rejects the client, as in FMS.
                    let mut h = self.host.borrow_mut();
                    if h.decided.insert(client_id) {
                        h.stats.rejected += 1;
                        h.send(ScriptCommand::Reject {
                            client_id,
                            application: AmfValue::object([(
                                "description",
                                AmfValue::string(format!("Application script error: {message}")),
                            )]),
                        });
                    }
                }
            }
            ScriptEvent::Disconnect { client_id } => {
                {
                    let mut h = self.host.borrow_mut();
                    h.stats.total_disconnects += 1;
                    h.clients.remove(&client_id);
                    h.accepted.remove(&client_id);
                    h.decided.remove(&client_id);
                }
                let _ = self.call("__ascend_disconnect", |_| {
                    Ok(vec![JsValue::from(client_id as f64)])
                });
            }
            ScriptEvent::Publish {
                client_id,
                name,
                query,
            } => {
                self.host.borrow_mut().streams.insert(
                    name.clone(),
                    RestoredStream {
                        client_id,
                        name: name.clone(),
                        query: query.clone(),
                    },
                );
                let _ = self.call("__ascend_publish", |_| {
                    Ok(vec![
                        JsValue::from(client_id as f64),
                        JsValue::from(JsString::from(name.as_str())),
                        JsValue::from(JsString::from(query.as_str())),
                    ])
                });
            }
            ScriptEvent::Play { client_id, name } => {
                let _ = self.call("__ascend_play", |_| {
                    Ok(vec![
                        JsValue::from(client_id as f64),
                        JsValue::from(JsString::from(name.as_str())),
                    ])
                });
            }
            ScriptEvent::Unpublish { client_id, name } => {
                self.host.borrow_mut().streams.remove(&name);
                let _ = self.call("__ascend_unpublish", |_| {
                    Ok(vec![
                        JsValue::from(client_id as f64),
                        JsValue::from(JsString::from(name.as_str())),
                    ])
                });
            }
            ScriptEvent::Call {
                client_id,
                transaction_id,
                method,
                args,
            } => self.on_call(client_id, transaction_id, &method, &args),
            ScriptEvent::CallResponse {
                call_id,
                success,
                values,
            } => {
                let _ = self.call("__ascend_response", |c| {
                    let mut converted = Vec::with_capacity(values.len());
                    for v in &values {
                        converted.push(amf_to_js(v, c)?);
                    }
                    Ok(vec![
                        JsValue::from(call_id as f64),
                        JsValue::from(success),
                        JsArray::from_iter(converted, c).into(),
                    ])
                });
            }
            ScriptEvent::Reload => self.install(),
            ScriptEvent::NetConnectionStatus { nc_id, info } => {
                let _ = self.call("__ascend_ncStatus", |c| {
                    Ok(vec![JsValue::from(nc_id as f64), amf_to_js(&info, c)?])
                });
            }
            ScriptEvent::NetStreamStatus { ns_id, info } => {
                let _ = self.call("__ascend_nsStatus", |c| {
                    Ok(vec![JsValue::from(ns_id as f64), amf_to_js(&info, c)?])
                });
            }
            ScriptEvent::StreamStatus { name, info } => {
                let _ = self.call("__ascend_streamStatus", |c| {
                    Ok(vec![
                        JsValue::from(JsString::from(name.as_str())),
                        amf_to_js(&info, c)?,
                    ])
                });
            }
            ScriptEvent::NetConnectionInvoked {
                nc_id,
                transaction_id,
                method,
                args,
            } => {
                let outcome = self.call("__ascend_ncInvoked", |c| {
                    let mut values = Vec::with_capacity(args.len());
                    for a in &args {
                        values.push(amf_to_js(a, c)?);
                    }
                    Ok(vec![
                        JsValue::from(nc_id as f64),
                        JsValue::from(JsString::from(method.as_str())),
                        JsArray::from_iter(values, c).into(),
                    ])
                });
                if transaction_id != 0.0 {
                    let result = self.found_value(outcome, &method);
                    self.host
                        .borrow()
                        .send(ScriptCommand::NetConnectionRespond {
                            nc_id,
                            transaction_id,
                            result,
                        });
                }
            }
            ScriptEvent::Stop { code } => {
                let info = AmfValue::object([
                    ("code", AmfValue::string(&code)),
                    ("level", AmfValue::string("status")),
                ]);
                let unload = match self.call("__ascend_stop", |c| Ok(vec![amf_to_js(&info, c)?])) {
                    Ok(value) => value.to_boolean(),
                    Err(_) => true,
                };
                self.host
                    .borrow()
                    .send(ScriptCommand::StopAnswered { unload });
                if unload {
                    return false;
                }
            }
        }
        true
    }

    fn on_call(&mut self, client_id: u64, transaction_id: f64, method: &str, args: &[AmfValue]) {
        let outcome = self.call("__ascend_call", |c| {
            let mut values = Vec::with_capacity(args.len());
            for a in args {
                values.push(amf_to_js(a, c)?);
            }
            Ok(vec![
                JsValue::from(client_id as f64),
                JsValue::from(JsString::from(method)),
                JsArray::from_iter(values, c).into(),
            ])
        });
        if transaction_id == 0.0 {
            return;
        }
        let result = self.found_value(outcome, method);
        self.host.borrow().send(ScriptCommand::CallResult {
            client_id,
            transaction_id,
            result,
        });
    }

    /// The answer of a `{found, value}` lookup made by the prelude.
    fn found_value(
        &mut self,
        outcome: Result<JsValue, String>,
        method: &str,
    ) -> Result<AmfValue, String> {
        let value = outcome?;
        let Some(context) = self.context.as_mut() else {
            return Err("the application script is not loaded".into());
        };
        let field = |name: &str, context: &mut Context| {
            value
                .as_object()
                .map(|o| o.get(JsString::from(name), context))
                .transpose()
                .ok()
                .flatten()
                .unwrap_or_default()
        };
        if field("found", context).to_boolean() {
            let returned = field("value", context);
            js_to_amf(&returned, context).map_err(|e| e.to_string())
        } else {
            Err(format!("Method not found ({method})."))
        }
    }

    fn until_next_timer(&self) -> Duration {
        let h = self.host.borrow();
        let now = Instant::now();
        h.timers
            .iter()
            .filter(|t| t.generation == h.generation)
            .map(|t| t.due.saturating_duration_since(now))
            .min()
            .unwrap_or(Duration::from_secs(3600))
    }

    fn fire_due_timers(&mut self) {
        let now = Instant::now();
        let due: Vec<u32> = {
            let mut h = self.host.borrow_mut();
            let generation = h.generation;
            let mut due = Vec::new();
            h.timers.retain_mut(|t| {
                if t.generation != generation {
                    return false;
                }
                if t.due > now {
                    return true;
                }
                due.push(t.id);
                match t.every {
                    Some(every) => {
                        t.due = now + every;
                        true
                    }
                    None => false,
                }
            });
            due
        };
        for id in due {
            let _ = self.call("__ascend_fire", |_| Ok(vec![JsValue::from(id)]));
        }
    }
}

/// Syntax errors come from the parser without the file they are in: say it.
fn name_the_file(error: JsError, file: &str, context: &mut Context) -> JsError {
    match error.try_native(context) {
        Ok(native) if matches!(native.kind(), boa_engine::error::JsNativeErrorKind::Syntax) => {
            let message = native.message().to_string();
            if message.starts_with(file) {
                return error;
            }
            let at_end = if message.contains("abrupt end") {
                " (at the end of the file)"
            } else {
                ""
            };
            JsNativeError::syntax()
                .with_message(format!("{file}: {message}{at_end}"))
                .into()
        }
        _ => error,
    }
}

/// `message (file:line:column)` for an error, from its first backtrace entry when Boa has one.
fn describe_error(error: &JsError, context: &mut Context) -> String {
    let text = match error.try_native(context) {
        Ok(native) => native.to_string(),
        Err(_) => error.to_string(),
    };
    let full = error.to_string();
    let location = full
        .lines()
        .find_map(|l| l.trim().strip_prefix("at "))
        .map(str::to_string);
    let first = text.lines().next().unwrap_or("").to_string();
    match location {
        Some(location) if !first.contains(&location) => format!("{first} (at {location})"),
        _ => first,
    }
}
