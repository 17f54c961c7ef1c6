//! The `Client` object a script sees for each connection, built natively.
//!
//! Why natively: one is built on every connect, on the instance thread, while the connection
//! waits for `onConnect`, and every other connect of the instance waits behind it. Built in
//! the prelude it cost an AMF-to-JavaScript conversion of the client's details and six
//! `Object.defineProperty` calls, each with a descriptor object; here it is one object whose
//! properties are defined straight from [`RestoredClient`] (BENCHMARKS.md, "What each change
//! bought", session 9).
//!
//! The object is what `new Client()` in the prelude would make: its prototype is whatever
//! `Client.prototype` is at that moment (scripts extend it, as FMS documents), the public
//! properties are ordinary writable, enumerable ones, and the host's own state lives in hidden
//! (non-enumerable, writable) `__` properties the prelude reads.

use boa_engine::builtins::object::OrdinaryObject;
use boa_engine::object::{JsObject, ObjectInitializer};
use boa_engine::property::Attribute;
use boa_engine::{js_string, Context, JsResult, JsString, JsValue};

use crate::RestoredClient;

/// Bandwidth limit a client starts with, bytes per second, both ways (FMS's default).
const DEFAULT_BANDWIDTH: f64 = 2_500_000.0;

/// A new `Client` for `client`; `decided` when it was accepted before this context existed
/// (a reload or restart carried it over).
pub(crate) fn make_client(
    client: &RestoredClient,
    decided: bool,
    context: &mut Context,
) -> JsResult<JsObject> {
    let constructor = context.global_object().get(js_string!("Client"), context)?;
    let prototype = match constructor.as_object() {
        Some(constructor) => constructor.get(js_string!("prototype"), context)?,
        None => JsValue::undefined(),
    };
    let prototype = prototype
        .as_object()
        .unwrap_or_else(|| context.intrinsics().constructors().object().prototype());
    let info = &client.info;
    let id = JsValue::from(JsString::from(info.id.to_string()));
    let string = |text: &str| JsValue::from(JsString::from(text));
    let hidden = Attribute::WRITABLE | Attribute::CONFIGURABLE;
    let public = Attribute::all();
    let object = ObjectInitializer::with_native_data_and_proto(OrdinaryObject, prototype, context)
        .property(js_string!("__id"), id.clone(), hidden)
        .property(js_string!("__decided"), decided, hidden)
        .property(
            js_string!("__readAccess"),
            string(&client.read_access),
            hidden,
        )
        .property(
            js_string!("__writeAccess"),
            string(&client.write_access),
            hidden,
        )
        .property(js_string!("__bandwidthUp"), DEFAULT_BANDWIDTH, hidden)
        .property(js_string!("__bandwidthDown"), DEFAULT_BANDWIDTH, hidden)
        .property(js_string!("id"), id, public)
        .property(js_string!("ip"), string(&info.ip), public)
        .property(js_string!("agent"), string(&info.agent), public)
        .property(js_string!("referrer"), string(&info.referrer), public)
        .property(js_string!("pageUrl"), string(&info.page_url), public)
        .property(js_string!("uri"), string(&info.uri), public)
        .property(js_string!("protocol"), string(&info.protocol), public)
        .property(js_string!("protocolVersion"), js_string!("RTMP"), public)
        .property(js_string!("secure"), false, public)
        .build();
    Ok(object)
}
