//! Fuzz target `amf`: [`decode_amf0`] (AMF0, and AMF3 behind the 0x11 switch) on arbitrary bytes;
//! whatever decodes must survive [`encode_amf0_values`] and decoding again unchanged.
//!
//! "Unchanged" allows for exactly what the encoder documents it cannot carry: properties with an
//! empty key are dropped (in AMF0 an empty key starts the end-of-object marker) and keys and
//! class names longer than 65,535 bytes are cut. Numbers and dates compare bit for bit. Values
//! that came in as AMF3 go out as AMF0, where a byte array still needs the AMF3 switch and so
//! costs two values instead of one: when the re-encoding holds more than
//! [`MAX_VALUES`](ascend_rtmp::amf::MAX_VALUES) values, the second decoding must refuse it with
//! `TooManyValues` rather than succeed or fail otherwise. Encoding the second decoding must give the
//! same bytes as encoding the expected values (not necessarily the first encoding's: an ECMA
//! array's count announces the dropped empty keys too, and decoders ignore it).

#![no_main]

use ascend_fuzz::same_values;
use ascend_rtmp::amf::{decode_amf0, encode_amf0_values, AmfError, AmfValue, MAX_VALUES};
use libfuzzer_sys::fuzz_target;

/// Cuts `text` to at most 65,535 bytes at a char boundary, as the AMF0 encoder does.
fn short(text: &str) -> String {
    let mut end = text.len().min(u16::MAX as usize);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// `value` as the AMF0 encoder can carry it.
fn normalize(value: &AmfValue) -> AmfValue {
    let pairs = |pairs: &[(String, AmfValue)]| {
        pairs
            .iter()
            .filter(|(key, _)| !key.is_empty())
            .map(|(key, value)| (short(key), normalize(value)))
            .collect()
    };
    match value {
        AmfValue::Object {
            class_name,
            properties,
        } => AmfValue::Object {
            class_name: class_name.as_deref().map(short),
            properties: pairs(properties),
        },
        AmfValue::EcmaArray(properties) => AmfValue::EcmaArray(pairs(properties)),
        AmfValue::StrictArray(items) => {
            AmfValue::StrictArray(items.iter().map(normalize).collect())
        }
        other => other.clone(),
    }
}

/// How many values decoding the AMF0 encoding of `value` counts.
fn cost(value: &AmfValue) -> usize {
    match value {
        AmfValue::Object { properties, .. } | AmfValue::EcmaArray(properties) => {
            1 + properties.iter().map(|(_, v)| cost(v)).sum::<usize>()
        }
        AmfValue::StrictArray(items) => 1 + items.iter().map(cost).sum::<usize>(),
        AmfValue::ByteArray(_) => 2,
        _ => 1,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(values) = decode_amf0(data) else {
        return;
    };
    let bytes = encode_amf0_values(&values);
    let expected: Vec<AmfValue> = values.iter().map(normalize).collect();
    let again = decode_amf0(&bytes);
    if expected.iter().map(cost).sum::<usize>() > MAX_VALUES {
        assert_eq!(again, Err(AmfError::TooManyValues));
        return;
    }
    let again = match again {
        Ok(again) => again,
        Err(error) => panic!("re-encoded values do not decode: {error}\nvalues: {values:?}"),
    };
    assert!(
        same_values(&again, &expected),
        "round trip changed the values\nbefore: {expected:?}\nafter:  {again:?}"
    );
    assert_eq!(
        encode_amf0_values(&again),
        encode_amf0_values(&expected),
        "encoding is not stable"
    );
});
