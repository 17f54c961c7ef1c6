//! Fuzz target `amf_to_js`: what a client sends reaching a script. Arbitrary bytes through
//! [`decode_amf0`]; every value that decodes goes to JavaScript with [`amf_to_js`], comes back
//! with [`js_to_amf`] (as a method's return value does) and is encoded again.
//!
//! One Boa [`Context`] serves every run, as one serves every client of an application instance,
//! with the prelude's `__ascend_typed` hook and one registered class, so typed objects take the
//! path they take in the server. Conversion errors (a JavaScript exception) are fine; panics are
//! not.

#![no_main]

use ascend_rtmp::amf::{decode_amf0, encode_amf0_values};
use ascend_script::convert::{amf_to_js, js_to_amf};
use boa_engine::{Context, Source};
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;

/// The part of `prelude.js` the conversion calls, and one class registered the way
/// `application.registerClass("Point", Point)` registers it.
const SETUP: &str = r#"
var __ascend_classes = {};
function __ascend_typed(className, object) {
    var constructor = __ascend_classes[className];
    if (typeof constructor == "function") Object.setPrototypeOf(object, constructor.prototype);
    return object;
}
function Point() {}
Object.defineProperty(Point, "__ascendClassName", { value: "Point", enumerable: false });
__ascend_classes["Point"] = Point;
"#;

thread_local! {
    static CONTEXT: RefCell<Context> = RefCell::new({
        let mut context = Context::default();
        if let Err(error) = context.eval(Source::from_bytes(SETUP)) {
            panic!("fuzz set-up script failed: {error}");
        }
        context
    });
}

fuzz_target!(|data: &[u8]| {
    let Ok(values) = decode_amf0(data) else {
        return;
    };
    CONTEXT.with(|context| {
        let context = &mut *context.borrow_mut();
        for value in &values {
            let Ok(js) = amf_to_js(value, context) else {
                continue;
            };
            if let Ok(back) = js_to_amf(&js, context) {
                let _ = encode_amf0_values(&[back]);
            }
        }
    });
});
