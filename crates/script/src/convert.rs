//! AMF values to JavaScript values and back.
//!
//! Numbers, strings, booleans, null, undefined, objects (key order kept), strict and ECMA arrays
//! and dates map both ways. A typed AMF object becomes an object whose prototype is the class
//! registered with `application.registerClass(name, constructor)`; such an object goes back as a
//! typed object of that name. Functions are dropped (as FMS does); nesting beyond
//! [`MAX_DEPTH`] (a cycle, usually) becomes `undefined`.

use ascend_rtmp::AmfValue;
use boa_engine::object::builtins::{JsArray, JsDate};
use boa_engine::{Context, JsObject, JsResult, JsString, JsValue};

/// Deepest nesting converted.
pub const MAX_DEPTH: usize = 32;

/// An AMF value as a JavaScript value.
pub fn amf_to_js(value: &AmfValue, context: &mut Context) -> JsResult<JsValue> {
    to_js(value, context, 0)
}

fn to_js(value: &AmfValue, context: &mut Context, depth: usize) -> JsResult<JsValue> {
    if depth > MAX_DEPTH {
        return Ok(JsValue::undefined());
    }
    Ok(match value {
        AmfValue::Number(n) => JsValue::from(*n),
        AmfValue::Boolean(b) => JsValue::from(*b),
        AmfValue::String(s) | AmfValue::XmlDocument(s) => JsValue::from(JsString::from(s.as_str())),
        AmfValue::Null => JsValue::null(),
        AmfValue::Undefined => JsValue::undefined(),
        AmfValue::Object {
            class_name,
            properties,
        } => {
            let object = JsObject::with_object_proto(context.intrinsics());
            for (key, value) in properties {
                let value = to_js(value, context, depth + 1)?;
                object.set(JsString::from(key.as_str()), value, false, context)?;
            }
            match class_name {
                Some(name) => {
                    let typed = context
                        .global_object()
                        .get(JsString::from("__ascend_typed"), context)?;
                    match typed.as_callable() {
                        Some(function) => function.call(
                            &JsValue::undefined(),
                            &[JsValue::from(JsString::from(name.as_str())), object.into()],
                            context,
                        )?,
                        None => object.into(),
                    }
                }
                None => object.into(),
            }
        }
        AmfValue::EcmaArray(properties) => {
            let array = JsArray::new(context)?;
            for (key, value) in properties {
                let value = to_js(value, context, depth + 1)?;
                array.set(JsString::from(key.as_str()), value, false, context)?;
            }
            array.into()
        }
        AmfValue::StrictArray(items) => {
            let mut values = Vec::with_capacity(items.len());
            for item in items {
                values.push(to_js(item, context, depth + 1)?);
            }
            JsArray::from_iter(values, context).into()
        }
        AmfValue::Date { millis, .. } => {
            let date = context.intrinsics().constructors().date().constructor();
            date.construct(&[JsValue::from(*millis)], None, context)?
                .into()
        }
        AmfValue::ByteArray(bytes) => {
            let values: Vec<JsValue> = bytes.iter().map(|b| JsValue::from(*b)).collect();
            JsArray::from_iter(values, context).into()
        }
    })
}

/// A JavaScript value as an AMF value.
pub fn js_to_amf(value: &JsValue, context: &mut Context) -> JsResult<AmfValue> {
    to_amf(value, context, 0)
}

/// Converts each of `values`.
pub fn js_values_to_amf(values: &[JsValue], context: &mut Context) -> JsResult<Vec<AmfValue>> {
    values.iter().map(|v| js_to_amf(v, context)).collect()
}

fn to_amf(value: &JsValue, context: &mut Context, depth: usize) -> JsResult<AmfValue> {
    if depth > MAX_DEPTH {
        return Ok(AmfValue::Undefined);
    }
    if value.is_undefined() {
        return Ok(AmfValue::Undefined);
    }
    if value.is_null() {
        return Ok(AmfValue::Null);
    }
    if let Some(b) = value.as_boolean() {
        return Ok(AmfValue::Boolean(b));
    }
    if let Some(n) = value.as_number() {
        return Ok(AmfValue::Number(n));
    }
    if let Some(s) = value.as_string() {
        return Ok(AmfValue::String(s.to_std_string_escaped()));
    }
    let Some(object) = value.as_object() else {
        // Symbols and BigInts have no AMF form.
        return Ok(AmfValue::Undefined);
    };
    if object.is_callable() {
        return Ok(AmfValue::Undefined);
    }
    if let Ok(date) = JsDate::from_object(object.clone()) {
        let millis = date.get_time(context)?.as_number().unwrap_or(f64::NAN);
        return Ok(AmfValue::Date {
            millis,
            timezone_minutes: 0,
        });
    }
    if object.is_array() {
        let array = JsArray::from_object(object.clone())?;
        let length = array.length(context)?.min(1_000_000);
        let mut items = Vec::with_capacity(length as usize);
        for index in 0..length {
            let item = array.get(index, context)?;
            items.push(to_amf(&item, context, depth + 1)?);
        }
        return Ok(AmfValue::StrictArray(items));
    }
    let keys_function = context
        .intrinsics()
        .constructors()
        .object()
        .constructor()
        .get(JsString::from("keys"), context)?;
    let keys = match keys_function.as_callable() {
        Some(keys) => keys.call(&JsValue::undefined(), std::slice::from_ref(value), context)?,
        None => return Ok(AmfValue::Undefined),
    };
    let mut properties = Vec::new();
    if let Some(keys) = keys.as_object() {
        let keys = JsArray::from_object(keys)?;
        for index in 0..keys.length(context)? {
            let key = keys.get(index, context)?.to_string(context)?;
            let item = object.get(key.clone(), context)?;
            if item.as_object().is_some_and(|o| o.is_callable()) {
                continue;
            }
            properties.push((
                key.to_std_string_escaped(),
                to_amf(&item, context, depth + 1)?,
            ));
        }
    }
    let class_name = object
        .get(JsString::from("constructor"), context)?
        .as_object()
        .map(|constructor| constructor.get(JsString::from("__ascendClassName"), context))
        .transpose()?
        .and_then(|name| name.as_string().map(|s| s.to_std_string_escaped()));
    Ok(AmfValue::Object {
        class_name,
        properties,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use boa_engine::Source;

    fn roundtrip(value: AmfValue) -> AmfValue {
        let mut context = Context::default();
        let js = amf_to_js(&value, &mut context).expect("to js");
        js_to_amf(&js, &mut context).expect("to amf")
    }

    #[test]
    fn plain_values_and_objects_roundtrip_in_order() {
        let value = AmfValue::object([
            ("zeta", AmfValue::Number(1.0)),
            ("alpha", AmfValue::string("a")),
            ("flag", AmfValue::Boolean(false)),
            ("nothing", AmfValue::Null),
            (
                "list",
                AmfValue::StrictArray(vec![AmfValue::Number(1.0), AmfValue::string("x")]),
            ),
        ]);
        assert_eq!(roundtrip(value.clone()), value);
    }

    #[test]
    fn dates_roundtrip_with_their_milliseconds() {
        let date = AmfValue::Date {
            millis: 1_764_000_000_123.0,
            timezone_minutes: 0,
        };
        assert_eq!(roundtrip(date.clone()), date);
    }

    #[test]
    fn script_objects_convert_without_functions_and_cycles_end() {
        let mut context = Context::default();
        let value = context
            .eval(Source::from_bytes(
                "var o = {a: 1, f: function(){}, d: new Date(5)}; o.self = o; o",
            ))
            .expect("eval");
        let AmfValue::Object { properties, .. } = js_to_amf(&value, &mut context).expect("amf")
        else {
            panic!("not an object")
        };
        let keys: Vec<&str> = properties.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, vec!["a", "d", "self"]);
        assert_eq!(
            properties[1].1,
            AmfValue::Date {
                millis: 5.0,
                timezone_minutes: 0
            }
        );
    }
}
