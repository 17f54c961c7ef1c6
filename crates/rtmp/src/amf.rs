//! AMF values and their codec: AMF0 both ways, AMF3 for decoding (with the AVM+ switch).
//!
//! Written here rather than taken from the `amf` crate because every byte decoded comes from
//! the network and that crate allocates from untrusted lengths (`vec![0; len]` with a 32-bit
//! length), recurses without a depth limit (a deeply nested object overflows the stack) and copies
//! AMF3 references while decoding (a few hundred bytes of nested references expand to gigabytes).
//! This decoder checks every length against the bytes actually present, limits nesting to
//! [`MAX_DEPTH`], counts decoded values against [`MAX_VALUES`] and the bytes that AMF3 references
//! copy against [`MAX_REFERENCED_BYTES`].
//!
//! Objects keep their key order (scripts and `onMetaData` readers rely on it), dates keep their
//! milliseconds and time zone, typed objects keep their class name.

use std::fmt;

/// Deepest nesting of objects and arrays accepted from the network.
pub const MAX_DEPTH: usize = 64;
/// Most values accepted in one decoded message (references included).
pub const MAX_VALUES: usize = 100_000;
/// Most bytes of text (strings, keys, property names, XML) and byte arrays that AMF3 references
/// may copy in one decoded message. Counting values alone does not bound memory: a long string
/// referenced [`MAX_VALUES`] times, two bytes per reference, would be copied that many times.
pub const MAX_REFERENCED_BYTES: usize = 16 * 1024 * 1024;

/// One AMF value, whichever encoding it came in.
#[derive(Debug, Clone, PartialEq)]
pub enum AmfValue {
    /// A number (AMF3 integers become numbers too).
    Number(f64),
    /// A boolean.
    Boolean(bool),
    /// A string (short or long).
    String(String),
    /// An anonymous object (`class_name` is `None`) or a typed object.
    Object {
        /// The registered class name of a typed object.
        class_name: Option<String>,
        /// The properties in the order they were sent.
        properties: Vec<(String, AmfValue)>,
    },
    /// `null`.
    Null,
    /// `undefined`.
    Undefined,
    /// An associative (ECMA) array, as `onMetaData` uses.
    EcmaArray(Vec<(String, AmfValue)>),
    /// A dense array.
    StrictArray(Vec<AmfValue>),
    /// A date: milliseconds since the Unix epoch and the (ignored by Flash) time zone.
    Date {
        /// Milliseconds since 1970-01-01T00:00:00Z.
        millis: f64,
        /// Time zone offset in minutes, as sent.
        timezone_minutes: i16,
    },
    /// An XML document, as text.
    XmlDocument(String),
    /// An AMF3 byte array.
    ByteArray(Vec<u8>),
}

impl AmfValue {
    /// An anonymous object from `(key, value)` pairs, in order.
    pub fn object<K: Into<String>>(pairs: impl IntoIterator<Item = (K, AmfValue)>) -> Self {
        AmfValue::Object {
            class_name: None,
            properties: pairs.into_iter().map(|(k, v)| (k.into(), v)).collect(),
        }
    }

    /// A string value.
    pub fn string(text: impl Into<String>) -> Self {
        AmfValue::String(text.into())
    }

    /// The property `key` of an object or ECMA array.
    pub fn get(&self, key: &str) -> Option<&AmfValue> {
        match self {
            AmfValue::Object { properties, .. } | AmfValue::EcmaArray(properties) => {
                properties.iter().find(|(k, _)| k == key).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    /// The text of a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AmfValue::String(s) | AmfValue::XmlDocument(s) => Some(s),
            _ => None,
        }
    }

    /// The number of a number value.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            AmfValue::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The string property `key`, when there is one.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(AmfValue::as_str)
    }

    /// The properties of an object or ECMA array.
    pub fn properties(&self) -> Option<&[(String, AmfValue)]> {
        match self {
            AmfValue::Object { properties, .. } | AmfValue::EcmaArray(properties) => {
                Some(properties)
            }
            _ => None,
        }
    }
}

impl fmt::Display for AmfValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AmfValue::Number(n) => write!(f, "{n}"),
            AmfValue::Boolean(b) => write!(f, "{b}"),
            AmfValue::String(s) => write!(f, "{s:?}"),
            AmfValue::Null => f.write_str("null"),
            AmfValue::Undefined => f.write_str("undefined"),
            AmfValue::Object { properties, .. } | AmfValue::EcmaArray(properties) => {
                f.write_str("{")?;
                for (i, (k, v)) in properties.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                f.write_str("}")
            }
            AmfValue::StrictArray(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            AmfValue::Date { millis, .. } => write!(f, "Date({millis})"),
            AmfValue::XmlDocument(s) => write!(f, "xml({s:?})"),
            AmfValue::ByteArray(b) => write!(f, "bytes({})", b.len()),
        }
    }
}

/// Why bytes could not be decoded as AMF.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmfError {
    /// The bytes ended inside a value.
    #[error("AMF value truncated")]
    Truncated,
    /// A type marker this decoder does not know or accept.
    #[error("unsupported AMF{version} marker 0x{marker:02x}")]
    UnsupportedMarker {
        /// 0 or 3.
        version: u8,
        /// The marker byte.
        marker: u8,
    },
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("AMF value nested deeper than {MAX_DEPTH}")]
    TooDeep,
    /// More than [`MAX_VALUES`] values.
    #[error("AMF message holds more than {MAX_VALUES} values")]
    TooManyValues,
    /// A string that is not UTF-8.
    #[error("AMF string is not UTF-8")]
    InvalidUtf8,
    /// An AMF3 reference to something not yet decoded.
    #[error("AMF3 reference out of range")]
    BadReference,
    /// AMF3 references copying more than [`MAX_REFERENCED_BYTES`] bytes.
    #[error("AMF3 references copy more than {MAX_REFERENCED_BYTES} bytes")]
    ReferencesTooLarge,
}

/// A read position in a message body; every read checks the bytes are there.
#[derive(Clone, Copy)]
struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], AmfError> {
        let end = self
            .position
            .checked_add(count)
            .ok_or(AmfError::Truncated)?;
        let slice = self
            .bytes
            .get(self.position..end)
            .ok_or(AmfError::Truncated)?;
        self.position = end;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8, AmfError> {
        Ok(self.take(1)?[0])
    }

    fn f64(&mut self) -> Result<f64, AmfError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(f64::from_be_bytes(a))
    }

    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.position)
    }
}

/// Decodes AMF0 values one after another (an RTMP command or data message body).
pub struct Amf0Reader<'a> {
    cursor: Cursor<'a>,
    values_decoded: usize,
    /// Bytes copied by AMF3 references, all AMF3 sections of the message together.
    referenced_bytes: usize,
}

impl<'a> Amf0Reader<'a> {
    /// A reader over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Amf0Reader {
            cursor: Cursor { bytes, position: 0 },
            values_decoded: 0,
            referenced_bytes: 0,
        }
    }

    /// True when every byte was consumed.
    pub fn is_empty(&self) -> bool {
        self.cursor.remaining() == 0
    }

    /// Decodes the next value, `Ok(None)` at the end of the bytes.
    pub fn next_value(&mut self) -> Result<Option<AmfValue>, AmfError> {
        if self.is_empty() {
            return Ok(None);
        }
        self.read_value(0).map(Some)
    }

    /// Decodes all remaining values.
    pub fn read_all(mut self) -> Result<Vec<AmfValue>, AmfError> {
        let mut values = Vec::new();
        while let Some(value) = self.next_value()? {
            values.push(value);
        }
        Ok(values)
    }

    fn take(&mut self, count: usize) -> Result<&'a [u8], AmfError> {
        self.cursor.take(count)
    }

    fn u8(&mut self) -> Result<u8, AmfError> {
        self.cursor.u8()
    }

    fn u16(&mut self) -> Result<u16, AmfError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, AmfError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn f64(&mut self) -> Result<f64, AmfError> {
        self.cursor.f64()
    }

    fn utf8(&mut self, len: usize) -> Result<String, AmfError> {
        let b = self.take(len)?;
        String::from_utf8(b.to_vec()).map_err(|_| AmfError::InvalidUtf8)
    }

    fn short_string(&mut self) -> Result<String, AmfError> {
        let len = self.u16()? as usize;
        self.utf8(len)
    }

    fn count_value(&mut self) -> Result<(), AmfError> {
        self.values_decoded += 1;
        if self.values_decoded > MAX_VALUES {
            return Err(AmfError::TooManyValues);
        }
        Ok(())
    }

    /// Reads `key, value` pairs up to the object-end marker (00 00 09).
    fn read_pairs(&mut self, depth: usize) -> Result<Vec<(String, AmfValue)>, AmfError> {
        let mut pairs = Vec::new();
        loop {
            let key = self.short_string()?;
            if key.is_empty() {
                // An empty key followed by the end marker closes the object. Some encoders
                // end ECMA arrays without it, at the end of the message.
                if self.is_empty() {
                    return Ok(pairs);
                }
                if self.cursor.bytes.get(self.cursor.position) == Some(&0x09) {
                    self.cursor.position += 1;
                    return Ok(pairs);
                }
            }
            if self.is_empty() {
                return Err(AmfError::Truncated);
            }
            let value = self.read_value(depth + 1)?;
            pairs.push((key, value));
        }
    }

    fn read_value(&mut self, depth: usize) -> Result<AmfValue, AmfError> {
        if depth > MAX_DEPTH {
            return Err(AmfError::TooDeep);
        }
        self.count_value()?;
        let marker = self.u8()?;
        Ok(match marker {
            0x00 => AmfValue::Number(self.f64()?),
            0x01 => AmfValue::Boolean(self.u8()? != 0),
            0x02 => AmfValue::String(self.short_string()?),
            0x03 => AmfValue::Object {
                class_name: None,
                properties: self.read_pairs(depth)?,
            },
            0x05 => AmfValue::Null,
            0x06 => AmfValue::Undefined,
            0x08 => {
                let _approximate_count = self.u32()?;
                AmfValue::EcmaArray(self.read_pairs(depth)?)
            }
            0x0A => {
                let count = self.u32()? as usize;
                // Each element takes at least one byte: a count beyond the bytes left is a lie.
                if count > self.cursor.remaining() {
                    return Err(AmfError::Truncated);
                }
                let mut items = Vec::with_capacity(count);
                for _ in 0..count {
                    items.push(self.read_value(depth + 1)?);
                }
                AmfValue::StrictArray(items)
            }
            0x0B => {
                let millis = self.f64()?;
                let timezone_minutes = self.u16()? as i16;
                AmfValue::Date {
                    millis,
                    timezone_minutes,
                }
            }
            0x0C => {
                let len = self.u32()? as usize;
                AmfValue::String(self.utf8(len)?)
            }
            0x0F => {
                let len = self.u32()? as usize;
                AmfValue::XmlDocument(self.utf8(len)?)
            }
            0x10 => {
                let class_name = self.short_string()?;
                AmfValue::Object {
                    class_name: Some(class_name),
                    properties: self.read_pairs(depth)?,
                }
            }
            0x11 => {
                let mut amf3 = Amf3Reader {
                    cursor: self.cursor,
                    values_decoded: self.values_decoded,
                    decoded_bytes: 0,
                    referenced_bytes: self.referenced_bytes,
                    deepest: 0,
                    strings: Vec::new(),
                    objects: Vec::new(),
                    traits: Vec::new(),
                };
                let value = amf3.read_value(depth + 1)?;
                self.cursor = amf3.cursor;
                self.values_decoded = amf3.values_decoded;
                self.referenced_bytes = amf3.referenced_bytes;
                value
            }
            other => {
                return Err(AmfError::UnsupportedMarker {
                    version: 0,
                    marker: other,
                })
            }
        })
    }
}

/// A complex value kept for AMF3 references, with what copying it costs.
struct Remembered {
    value: AmfValue,
    /// Values it holds, counted again against [`MAX_VALUES`] by each reference.
    values: usize,
    /// Bytes of text and byte arrays it holds, counted against [`MAX_REFERENCED_BYTES`].
    bytes: usize,
    /// Levels of nesting below it: a reference at depth `d` nests it down to `d + height`, which
    /// must stay within [`MAX_DEPTH`] like anything decoded in place.
    height: usize,
    /// False while the value is still being decoded: AMF3 numbers a complex value when its
    /// header is read, before its members, so a member may refer to it (a cycle, refused).
    ready: bool,
}

/// Where the decoding of one AMF3 value started.
#[derive(Clone, Copy)]
struct Start {
    values: usize,
    bytes: usize,
    depth: usize,
}

struct Amf3Traits {
    class_name: Option<String>,
    dynamic: bool,
    sealed_names: Vec<String>,
}

/// AMF3 decoding, entered through the AVM+ marker of AMF0.
struct Amf3Reader<'a> {
    cursor: Cursor<'a>,
    values_decoded: usize,
    /// Bytes of text and byte arrays in the values decoded so far, copies included.
    decoded_bytes: usize,
    /// Bytes of those copied by references, checked against [`MAX_REFERENCED_BYTES`].
    referenced_bytes: usize,
    strings: Vec<String>,
    /// The deepest nesting reached in the value being decoded, references included.
    deepest: usize,
    /// Complex values already decoded, for references. A reference costs its full size again in
    /// `values_decoded` and `referenced_bytes`, so reference amplification hits [`MAX_VALUES`]
    /// or [`MAX_REFERENCED_BYTES`], and its nesting counts where it lands, so chains of
    /// references cannot build a value nested deeper than [`MAX_DEPTH`].
    objects: Vec<Remembered>,
    traits: Vec<std::rc::Rc<Amf3Traits>>,
}

impl<'a> Amf3Reader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], AmfError> {
        self.cursor.take(count)
    }

    fn u8(&mut self) -> Result<u8, AmfError> {
        self.cursor.u8()
    }

    fn remaining(&self) -> usize {
        self.cursor.remaining()
    }

    fn u29(&mut self) -> Result<u32, AmfError> {
        let mut value: u32 = 0;
        for i in 0..4 {
            let b = self.u8()?;
            if i == 3 {
                return Ok((value << 8) | b as u32);
            }
            value = (value << 7) | (b & 0x7F) as u32;
            if b & 0x80 == 0 {
                break;
            }
        }
        Ok(value)
    }

    fn f64(&mut self) -> Result<f64, AmfError> {
        self.cursor.f64()
    }

    fn count(&mut self, n: usize) -> Result<(), AmfError> {
        self.values_decoded = self.values_decoded.saturating_add(n);
        if self.values_decoded > MAX_VALUES {
            return Err(AmfError::TooManyValues);
        }
        Ok(())
    }

    /// Accounts for `len` bytes of text or byte array decoded inline.
    fn decoded(&mut self, len: usize) {
        self.decoded_bytes = self.decoded_bytes.saturating_add(len);
    }

    /// Accounts for `len` bytes about to be copied by a reference; fails past the limit.
    fn copy(&mut self, len: usize) -> Result<(), AmfError> {
        self.decoded(len);
        self.referenced_bytes = self.referenced_bytes.saturating_add(len);
        if self.referenced_bytes > MAX_REFERENCED_BYTES {
            return Err(AmfError::ReferencesTooLarge);
        }
        Ok(())
    }

    fn string(&mut self) -> Result<String, AmfError> {
        let header = self.u29()?;
        if header & 1 == 0 {
            let index = (header >> 1) as usize;
            let len = self
                .strings
                .get(index)
                .map(String::len)
                .ok_or(AmfError::BadReference)?;
            self.copy(len)?;
            return Ok(self.strings[index].clone());
        }
        let len = (header >> 1) as usize;
        let text =
            String::from_utf8(self.take(len)?.to_vec()).map_err(|_| AmfError::InvalidUtf8)?;
        self.decoded(len);
        if !text.is_empty() {
            self.strings.push(text.clone());
        }
        Ok(text)
    }

    /// Reads the U29 header of a complex value: `Ok(Err(value))` for a reference.
    fn reference_or_inline(&mut self, depth: usize) -> Result<Result<u32, AmfValue>, AmfError> {
        let header = self.u29()?;
        if header & 1 == 0 {
            let index = (header >> 1) as usize;
            let remembered = self
                .objects
                .get(index)
                .filter(|r| r.ready)
                .ok_or(AmfError::BadReference)?;
            let (values, bytes, height) = (remembered.values, remembered.bytes, remembered.height);
            if depth + height > MAX_DEPTH {
                return Err(AmfError::TooDeep);
            }
            self.deepest = self.deepest.max(depth + height);
            self.count(values)?;
            self.copy(bytes)?;
            return Ok(Err(self.objects[index].value.clone()));
        }
        Ok(Ok(header >> 1))
    }

    /// Takes the next reference number for a complex value whose header was just read.
    fn reserve(&mut self) -> usize {
        self.objects.push(Remembered {
            value: AmfValue::Undefined,
            values: 0,
            bytes: 0,
            height: 0,
            ready: false,
        });
        self.objects.len() - 1
    }

    /// Keeps a complex value under its reference number `slot`, with what decoding it cost
    /// since `started_at`.
    fn remember(&mut self, slot: usize, value: &AmfValue, started_at: Start) {
        self.objects[slot] = Remembered {
            value: value.clone(),
            values: self.values_decoded.saturating_sub(started_at.values).max(1),
            bytes: self.decoded_bytes.saturating_sub(started_at.bytes),
            height: self.deepest.saturating_sub(started_at.depth),
            ready: true,
        };
    }

    fn read_value(&mut self, depth: usize) -> Result<AmfValue, AmfError> {
        if depth > MAX_DEPTH {
            return Err(AmfError::TooDeep);
        }
        self.count(1)?;
        let started_at = Start {
            values: self.values_decoded,
            bytes: self.decoded_bytes,
            depth,
        };
        let outer_deepest = std::mem::replace(&mut self.deepest, depth);
        let marker = self.u8()?;
        let value = match marker {
            0x00 => AmfValue::Undefined,
            0x01 => AmfValue::Null,
            0x02 => AmfValue::Boolean(false),
            0x03 => AmfValue::Boolean(true),
            0x04 => {
                let raw = self.u29()?;
                // Sign-extend the 29-bit integer.
                let signed = ((raw << 3) as i32) >> 3;
                AmfValue::Number(signed as f64)
            }
            0x05 => AmfValue::Number(self.f64()?),
            0x06 => AmfValue::String(self.string()?),
            0x07 | 0x0B => match self.reference_or_inline(depth)? {
                Err(value) => value,
                Ok(len) => {
                    let text = String::from_utf8(self.take(len as usize)?.to_vec())
                        .map_err(|_| AmfError::InvalidUtf8)?;
                    self.decoded(text.len());
                    let value = AmfValue::XmlDocument(text);
                    let slot = self.reserve();
                    self.remember(slot, &value, started_at);
                    value
                }
            },
            0x08 => match self.reference_or_inline(depth)? {
                Err(value) => value,
                Ok(_) => {
                    let value = AmfValue::Date {
                        millis: self.f64()?,
                        timezone_minutes: 0,
                    };
                    let slot = self.reserve();
                    self.remember(slot, &value, started_at);
                    value
                }
            },
            0x09 => match self.reference_or_inline(depth)? {
                Err(value) => value,
                Ok(dense_count) => {
                    let slot = self.reserve();
                    let mut assoc = Vec::new();
                    loop {
                        let key = self.string()?;
                        if key.is_empty() {
                            break;
                        }
                        assoc.push((key, self.read_value(depth + 1)?));
                    }
                    let dense_count = dense_count as usize;
                    if dense_count > self.remaining() {
                        return Err(AmfError::Truncated);
                    }
                    let mut dense = Vec::with_capacity(dense_count);
                    for _ in 0..dense_count {
                        dense.push(self.read_value(depth + 1)?);
                    }
                    let value = if assoc.is_empty() {
                        AmfValue::StrictArray(dense)
                    } else {
                        assoc.extend(
                            dense
                                .into_iter()
                                .enumerate()
                                .map(|(i, v)| (i.to_string(), v)),
                        );
                        AmfValue::EcmaArray(assoc)
                    };
                    self.remember(slot, &value, started_at);
                    value
                }
            },
            0x0A => match self.reference_or_inline(depth)? {
                Err(value) => value,
                Ok(header) => self.read_object(header, depth, started_at)?,
            },
            0x0C => match self.reference_or_inline(depth)? {
                Err(value) => value,
                Ok(len) => {
                    let value = AmfValue::ByteArray(self.take(len as usize)?.to_vec());
                    self.decoded(len as usize);
                    let slot = self.reserve();
                    self.remember(slot, &value, started_at);
                    value
                }
            },
            other => {
                return Err(AmfError::UnsupportedMarker {
                    version: 3,
                    marker: other,
                })
            }
        };
        self.deepest = self.deepest.max(outer_deepest);
        Ok(value)
    }

    fn read_object(
        &mut self,
        header: u32,
        depth: usize,
        started_at: Start,
    ) -> Result<AmfValue, AmfError> {
        let slot = self.reserve();
        // header already shifted by one: bit0 = inline traits, bit1 = externalizable.
        let traits = if header & 1 == 0 {
            let traits = self
                .traits
                .get((header >> 1) as usize)
                .cloned()
                .ok_or(AmfError::BadReference)?;
            // Each object of these traits copies their property names.
            let names: usize = traits.sealed_names.iter().map(String::len).sum();
            self.copy(names)?;
            traits
        } else {
            if header & 2 != 0 {
                // Externalizable classes carry a private format only their class can read.
                return Err(AmfError::UnsupportedMarker {
                    version: 3,
                    marker: 0x0A,
                });
            }
            let dynamic = header & 4 != 0;
            let sealed_count = (header >> 3) as usize;
            if sealed_count > self.remaining() {
                return Err(AmfError::Truncated);
            }
            let class_name = self.string()?;
            let mut sealed_names = Vec::with_capacity(sealed_count);
            for _ in 0..sealed_count {
                sealed_names.push(self.string()?);
            }
            let traits = std::rc::Rc::new(Amf3Traits {
                class_name: (!class_name.is_empty()).then_some(class_name),
                dynamic,
                sealed_names,
            });
            self.traits.push(traits.clone());
            traits
        };
        let mut properties = Vec::with_capacity(traits.sealed_names.len());
        for name in &traits.sealed_names {
            properties.push((name.clone(), self.read_value(depth + 1)?));
        }
        if traits.dynamic {
            loop {
                let key = self.string()?;
                if key.is_empty() {
                    break;
                }
                properties.push((key, self.read_value(depth + 1)?));
            }
        }
        let value = AmfValue::Object {
            class_name: traits.class_name.clone(),
            properties,
        };
        self.remember(slot, &value, started_at);
        Ok(value)
    }
}

/// Decodes every AMF0 value in `bytes`.
pub fn decode_amf0(bytes: &[u8]) -> Result<Vec<AmfValue>, AmfError> {
    Amf0Reader::new(bytes).read_all()
}

/// Appends the AMF0 encoding of `value` to `out`.
pub fn encode_amf0(value: &AmfValue, out: &mut Vec<u8>) {
    match value {
        AmfValue::Number(n) => {
            out.push(0x00);
            out.extend_from_slice(&n.to_be_bytes());
        }
        AmfValue::Boolean(b) => {
            out.push(0x01);
            out.push(u8::from(*b));
        }
        AmfValue::String(s) => encode_string_value(s, out),
        AmfValue::Object {
            class_name: None,
            properties,
        } => {
            out.push(0x03);
            encode_pairs(properties, out);
        }
        AmfValue::Object {
            class_name: Some(class_name),
            properties,
        } => {
            out.push(0x10);
            encode_short_string(class_name, out);
            encode_pairs(properties, out);
        }
        AmfValue::Null => out.push(0x05),
        AmfValue::Undefined => out.push(0x06),
        AmfValue::EcmaArray(pairs) => {
            out.push(0x08);
            out.extend_from_slice(&(pairs.len() as u32).to_be_bytes());
            encode_pairs(pairs, out);
        }
        AmfValue::StrictArray(items) => {
            out.push(0x0A);
            out.extend_from_slice(&(items.len() as u32).to_be_bytes());
            for item in items {
                encode_amf0(item, out);
            }
        }
        AmfValue::Date {
            millis,
            timezone_minutes,
        } => {
            out.push(0x0B);
            out.extend_from_slice(&millis.to_be_bytes());
            out.extend_from_slice(&timezone_minutes.to_be_bytes());
        }
        AmfValue::XmlDocument(s) => {
            out.push(0x0F);
            out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        AmfValue::ByteArray(bytes) => {
            // AMF0 has no byte array: switch to AMF3 for this one value.
            out.push(0x11);
            out.push(0x0C);
            encode_u29(((bytes.len() as u32) << 1) | 1, out);
            out.extend_from_slice(bytes);
        }
    }
}

/// Encodes a sequence of values as AMF0.
pub fn encode_amf0_values(values: &[AmfValue]) -> Vec<u8> {
    let mut out = Vec::new();
    for value in values {
        encode_amf0(value, &mut out);
    }
    out
}

fn encode_u29(value: u32, out: &mut Vec<u8>) {
    let v = value & 0x1FFF_FFFF;
    if v < 0x80 {
        out.push(v as u8);
    } else if v < 0x4000 {
        out.push(((v >> 7) | 0x80) as u8);
        out.push((v & 0x7F) as u8);
    } else if v < 0x20_0000 {
        out.push(((v >> 14) | 0x80) as u8);
        out.push(((v >> 7) | 0x80) as u8);
        out.push((v & 0x7F) as u8);
    } else {
        out.push(((v >> 22) | 0x80) as u8);
        out.push(((v >> 15) | 0x80) as u8);
        out.push(((v >> 8) | 0x80) as u8);
        out.push(v as u8);
    }
}

fn encode_string_value(s: &str, out: &mut Vec<u8>) {
    if s.len() > u16::MAX as usize {
        out.push(0x0C);
        out.extend_from_slice(&(s.len() as u32).to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    } else {
        out.push(0x02);
        encode_short_string(s, out);
    }
}

fn encode_short_string(s: &str, out: &mut Vec<u8>) {
    // Keys longer than 64 KiB cannot be expressed in AMF0; cut at a char boundary.
    let mut end = s.len().min(u16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&(end as u16).to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..end]);
}

fn encode_pairs(pairs: &[(String, AmfValue)], out: &mut Vec<u8>) {
    for (key, value) in pairs {
        if key.is_empty() {
            continue;
        }
        encode_short_string(key, out);
        encode_amf0(value, out);
    }
    out.extend_from_slice(&[0x00, 0x00, 0x09]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(value: AmfValue) {
        let mut bytes = Vec::new();
        encode_amf0(&value, &mut bytes);
        assert_eq!(decode_amf0(&bytes).expect("decodes"), vec![value]);
    }

    #[test]
    fn amf0_values_roundtrip_with_key_order_kept() {
        roundtrip(AmfValue::Number(1.5));
        roundtrip(AmfValue::Boolean(true));
        roundtrip(AmfValue::string("héllo"));
        roundtrip(AmfValue::Null);
        roundtrip(AmfValue::Undefined);
        roundtrip(AmfValue::object([
            ("zeta", AmfValue::Number(1.0)),
            ("alpha", AmfValue::string("a")),
            ("mid", AmfValue::object([("x", AmfValue::Null)])),
        ]));
        roundtrip(AmfValue::EcmaArray(vec![
            ("width".into(), AmfValue::Number(1280.0)),
            ("custom".into(), AmfValue::string("kept")),
        ]));
        roundtrip(AmfValue::StrictArray(vec![
            AmfValue::Number(1.0),
            AmfValue::string("two"),
        ]));
        roundtrip(AmfValue::Date {
            millis: 1_700_000_000_000.0,
            timezone_minutes: 0,
        });
        roundtrip(AmfValue::Object {
            class_name: Some("com.example.User".into()),
            properties: vec![("name".into(), AmfValue::string("ann"))],
        });
        roundtrip(AmfValue::string("x".repeat(70_000)));
    }

    #[test]
    fn byte_arrays_roundtrip_through_the_avmplus_switch() {
        roundtrip(AmfValue::ByteArray(vec![1, 2, 3, 200]));
    }

    #[test]
    fn amf3_values_decode_through_the_avmplus_marker() {
        // 0x11 switch, then AMF3: dynamic anonymous object {a: 5, b: "hi", c: [true, 2.5]}
        let mut bytes = vec![0x11, 0x0A, 0x0B, 0x01];
        bytes.extend_from_slice(&[0x03, b'a', 0x04, 0x05]);
        bytes.extend_from_slice(&[0x03, b'b', 0x06, 0x05, b'h', b'i']);
        bytes.extend_from_slice(&[0x03, b'c', 0x09, 0x05, 0x01, 0x03, 0x05]);
        bytes.extend_from_slice(&2.5f64.to_be_bytes());
        bytes.push(0x01);
        let values = decode_amf0(&bytes).expect("decodes");
        assert_eq!(
            values,
            vec![AmfValue::object([
                ("a", AmfValue::Number(5.0)),
                ("b", AmfValue::string("hi")),
                (
                    "c",
                    AmfValue::StrictArray(vec![AmfValue::Boolean(true), AmfValue::Number(2.5)])
                ),
            ])]
        );
    }

    #[test]
    fn amf3_negative_integers_are_sign_extended() {
        let values = decode_amf0(&[0x11, 0x04, 0xFF, 0xFF, 0xFF, 0xFF]).expect("decodes");
        assert_eq!(values, vec![AmfValue::Number(-1.0)]);
    }

    #[test]
    fn lengths_beyond_the_message_are_rejected_without_allocating() {
        assert_eq!(
            decode_amf0(&[0x0C, 0xFF, 0xFF, 0xFF, 0xFF, b'a']),
            Err(AmfError::Truncated)
        );
        assert_eq!(
            decode_amf0(&[0x0A, 0xFF, 0xFF, 0xFF, 0xFF]),
            Err(AmfError::Truncated)
        );
        assert_eq!(
            decode_amf0(&[0x11, 0x0C, 0xFF, 0xFF, 0xFF, 0xFF]),
            Err(AmfError::Truncated)
        );
    }

    #[test]
    fn deep_nesting_is_rejected_not_overflowing_the_stack() {
        let mut bytes = Vec::new();
        for _ in 0..100_000 {
            bytes.extend_from_slice(&[0x03, 0x00, 0x01, b'k']);
        }
        assert_eq!(decode_amf0(&bytes), Err(AmfError::TooDeep));
        let amf3: Vec<u8> = std::iter::once(0x11)
            .chain(std::iter::repeat_n([0x09u8, 0x03, 0x01], 100_000).flatten())
            .collect();
        assert_eq!(decode_amf0(&amf3), Err(AmfError::TooDeep));
    }

    #[test]
    fn amf3_reference_amplification_is_bounded() {
        // a0 = [1,1,...]; a1 = [ref a0 x 60]; a2 = [ref a1 x 60] ... inside one outer array,
        // which is reference 0 (AMF3 numbers a value when its header is read), so a0 is 1.
        let mut bytes = vec![0x11, 0x09, (60 << 1) | 1, 0x01];
        bytes.extend(std::iter::repeat_n(0x01u8, 60));
        // This would be 60^4 values once copied.
        let mut level_bytes = Vec::new();
        for level in 0..3u8 {
            level_bytes.extend_from_slice(&[0x09, (60 << 1) | 1, 0x01]);
            for _ in 0..60 {
                level_bytes.extend_from_slice(&[0x09, (level + 1) << 1]);
            }
        }
        // Nest the levels inside one top-level array so all are decoded.
        let mut message = vec![0x11, 0x09, (4 << 1) | 1, 0x01];
        message.extend_from_slice(&bytes[1..]);
        message.extend_from_slice(&level_bytes);
        assert_eq!(decode_amf0(&message), Err(AmfError::TooManyValues));
    }

    /// `0x11` then an AMF3 array of `count` dense items, without the items.
    fn amf3_array_start(count: u32) -> Vec<u8> {
        let mut bytes = vec![0x11, 0x09];
        encode_u29((count << 1) | 1, &mut bytes);
        bytes.push(0x01);
        bytes
    }

    /// An AMF3 inline string of `len` bytes.
    fn amf3_long_string(len: usize, out: &mut Vec<u8>) {
        out.push(0x06);
        encode_u29(((len as u32) << 1) | 1, out);
        out.extend(std::iter::repeat_n(b'x', len));
    }

    #[test]
    fn amf3_string_references_cannot_copy_gigabytes() {
        // [a1, a2] with a1 = [64 KiB string, 299 references to it] and a2 = [300 references to
        // a1]: 90,000 copies of the string (5.9 GB) from 67 KB, well within MAX_VALUES. Before
        // the byte limit this aborted the server on a failed allocation.
        let mut bytes = amf3_array_start(2);
        bytes.extend_from_slice(&amf3_array_start(300)[1..]);
        amf3_long_string(64 * 1024, &mut bytes);
        bytes.extend(std::iter::repeat_n([0x06u8, 0x00], 299).flatten());
        bytes.extend_from_slice(&amf3_array_start(300)[1..]);
        bytes.extend(std::iter::repeat_n([0x09u8, 0x02], 300).flatten()); // reference 1: a1
        assert_eq!(decode_amf0(&bytes), Err(AmfError::ReferencesTooLarge));
    }

    #[test]
    fn amf3_object_references_count_the_text_they_copy() {
        // a1 = [8 KiB string] (one copy, under the limit); then 3,000 references to a1: each
        // costs two values but copies 8 KiB, 24 MB in all.
        let mut bytes = amf3_array_start(3001);
        bytes.extend_from_slice(&amf3_array_start(1)[1..]);
        amf3_long_string(8 * 1024, &mut bytes);
        bytes.extend(std::iter::repeat_n([0x09u8, 0x02], 3000).flatten()); // reference 1: a1
        assert_eq!(decode_amf0(&bytes), Err(AmfError::ReferencesTooLarge));
    }

    #[test]
    fn amf3_trait_references_count_the_property_names_they_copy() {
        // One class with a 64 KiB sealed property name, then 299 objects of that class by
        // trait reference, three bytes each: each copies the name.
        let mut bytes = amf3_array_start(300);
        bytes.push(0x0A);
        encode_u29((1 << 4) | 0b0011, &mut bytes); // inline object, inline traits, 1 sealed
        bytes.push(0x01); // anonymous
        let mut name = Vec::new();
        amf3_long_string(64 * 1024, &mut name);
        bytes.extend_from_slice(&name[1..]); // a name is a string without the 0x06 marker
        bytes.push(0x01); // its value: null
        bytes.extend(std::iter::repeat_n([0x0Au8, 0x01, 0x01], 299).flatten());
        assert_eq!(decode_amf0(&bytes), Err(AmfError::ReferencesTooLarge));
    }

    #[test]
    fn the_reference_byte_limit_spans_every_amf3_section_of_a_message() {
        // Three AMF3 values, each a 4 KiB string and 1,600 references to it (6.4 MB each,
        // under the limit alone, 19 MB together).
        let mut bytes = Vec::new();
        for _ in 0..3 {
            bytes.extend_from_slice(&amf3_array_start(1601));
            amf3_long_string(4 * 1024, &mut bytes);
            bytes.extend(std::iter::repeat_n([0x06u8, 0x00], 1600).flatten());
        }
        assert_eq!(decode_amf0(&bytes), Err(AmfError::ReferencesTooLarge));
        // One of them alone decodes.
        let one = bytes.len() / 3;
        assert_eq!(decode_amf0(&bytes[..one]).map(|v| v.len()), Ok(1));
    }

    #[test]
    fn amf3_references_cannot_nest_values_deeper_than_the_limit() {
        // k values, each 60 nested arrays around a reference to the previous one: every
        // reference adds 60 levels. Before references counted their nesting, 57 of them (10 KB)
        // decoded to a value 3,400 levels deep, which overflowed a 2 MiB thread stack (a tokio
        // worker's) in a debug build when dropped or cloned, and re-encoded to AMF0 that no
        // decoder accepted.
        let chain = |k: u32| {
            let mut bytes = amf3_array_start(k);
            for i in 0..k {
                bytes.extend(std::iter::repeat_n([0x09u8, 0x03, 0x01], 60).flatten());
                if i == 0 {
                    bytes.push(0x01);
                } else {
                    bytes.push(0x09);
                    // The previous value's outermost array (the outer array is reference 0).
                    encode_u29((1 + 60 * (i - 1)) << 1, &mut bytes);
                }
            }
            bytes
        };
        assert_eq!(decode_amf0(&chain(57)), Err(AmfError::TooDeep));
        assert_eq!(decode_amf0(&chain(2)), Err(AmfError::TooDeep));
        // One level of 60 decodes, and so does a shallow value referenced at depth.
        assert!(decode_amf0(&chain(1)).is_ok());
        let mut bytes = amf3_array_start(2);
        bytes.extend_from_slice(&[0x09, 0x03, 0x01, 0x01]); // [null], object 1
        bytes.extend(std::iter::repeat_n([0x09u8, 0x03, 0x01], 60).flatten());
        bytes.extend_from_slice(&[0x09, 0x02]); // [[...[ref [null]]...]]: 63 levels
        let values = decode_amf0(&bytes).expect("a reference within the depth limit decodes");
        assert_eq!(decode_amf0(&encode_amf0_values(&values)), Ok(values));
    }

    #[test]
    fn ordinary_amf3_references_still_decode() {
        // ["hello", ref "hello", [1], ref [1], object {hello: ref "hello"} x2 by trait ref]
        let mut bytes = amf3_array_start(6);
        bytes.extend_from_slice(&[0x06, 0x0B]);
        bytes.extend_from_slice(b"hello");
        bytes.extend_from_slice(&[0x06, 0x00]); // string reference 0
        bytes.extend_from_slice(&[0x09, 0x03, 0x01, 0x04, 0x01]); // [1], object 1
        bytes.extend_from_slice(&[0x09, 0x02]); // object reference 1
        bytes.extend_from_slice(&[0x0A, 0x13, 0x01, 0x00, 0x06, 0x00]); // {hello: "hello"}
        bytes.extend_from_slice(&[0x0A, 0x01, 0x06, 0x00]); // same traits
        let hello = AmfValue::string("hello");
        let one = AmfValue::StrictArray(vec![AmfValue::Number(1.0)]);
        let object = AmfValue::object([("hello", hello.clone())]);
        assert_eq!(
            decode_amf0(&bytes),
            Ok(vec![AmfValue::StrictArray(vec![
                hello.clone(),
                hello,
                one.clone(),
                one,
                object.clone(),
                object
            ])])
        );
    }

    #[test]
    fn amf3_objects_are_numbered_when_their_header_is_read() {
        // {a: {x: 1}, b: <reference 1>}: the outer object is reference 0, the inner one 1.
        let bytes = [
            0x11, 0x0A, 0x0B, 0x01, // outer: dynamic, anonymous
            0x03, b'a', 0x0A, 0x0B, 0x01, 0x03, b'x', 0x04, 0x01, 0x01, // a: {x: 1}
            0x03, b'b', 0x0A, 0x02, // b: reference 1
            0x01,
        ];
        let inner = AmfValue::object([("x", AmfValue::Number(1.0))]);
        assert_eq!(
            decode_amf0(&bytes),
            Ok(vec![AmfValue::object([("a", inner.clone()), ("b", inner)])])
        );
        // A member referring to the object it is in (a cycle) is refused.
        let cycle = [0x11, 0x0A, 0x0B, 0x01, 0x03, b's', 0x0A, 0x00, 0x01];
        assert_eq!(decode_amf0(&cycle), Err(AmfError::BadReference));
    }

    #[test]
    fn unknown_markers_are_errors() {
        assert_eq!(
            decode_amf0(&[0x0D]),
            Err(AmfError::UnsupportedMarker {
                version: 0,
                marker: 0x0D
            })
        );
    }
}
