//! JSON parsing: simd-json's tape over caller-padded, reused buffers.
//!
//! This is the only module that names simd-json. It owns the parser state
//! that must be reused between documents (`Buffers` and the tape vector) so
//! that, once warm, parsing a document allocates nothing. Strings are
//! unescaped in place inside the caller's buffer; values handed out borrow
//! that buffer and the tape, and live only for the closure given to
//! [`JsonParser::parse`].
//!
//! It also offers [`write_compact_json`], which turns a parsed value back
//! into compact JSON (used for nested values in CEF fields and for rejected
//! records taken from pages).

use simd_json::{Buffers, Node, StaticNode, Tape};

/// Bytes that must follow a document in the buffer handed to the parser.
/// The padding may hold anything (for example the next NDJSON line).
pub const INPUT_PADDING: usize = simd_json::INPUT_PADDING;

/// A document that simd-json refused. It keeps simd-json's error as it
/// is, so refusing a bad line allocates nothing (a file of bad lines costs
/// no allocation per line); the text is made only if the error is shown.
#[derive(Debug, thiserror::Error)]
pub struct JsonError(simd_json::Error);

/// In the user's words, not the parser's codes: what is wrong and where
/// (`not valid JSON: a string is not closed (byte 17)`; `… found 't'
/// where a value should start (byte 1)`).
impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use simd_json::ErrorType as E;
        let what = match self.0.error() {
            E::Eof => Some("the document ends too early (a cut-off line, or a { or [ never closed)"),
            E::UnterminatedString => Some("a string is not closed"),
            E::InvalidEscape | E::InvalidUnicodeEscape | E::InvalidUnicodeCodepoint => Some("a bad escape in a string"),
            E::InvalidNumber | E::InvalidExponent | E::Overflow => Some("a malformed number"),
            E::TrailingData => Some("something follows the end of the document"),
            E::DepthLimitExceeded => Some("nested too deeply"),
            E::KeyMustBeAString | E::ExpectedObjectKey | E::BadKeyType => Some("an object key must be a string"),
            E::ExpectedObjectColon => Some("a ':' must follow an object key"),
            E::ExpectedMapComma | E::ExpectedMapEnd => Some("a ',' or '}' must follow a value in an object"),
            E::ExpectedArrayComma => Some("a ',' or ']' must follow a value in an array"),
            E::InputTooLarge => Some("the document is too large to parse"),
            // The rest say only that the structure broke somewhere here.
            _ => None,
        };
        let at = self.0.index() + 1;
        let found =
            self.0.character().map(|c| if c.is_control() { c.escape_unicode().to_string() } else { c.to_string() });
        match (what, found) {
            (Some(what), Some(c)) => write!(f, "not valid JSON: {what}; found '{c}' near byte {at}"),
            (Some(what), None) => write!(f, "not valid JSON: {what} (near byte {at})"),
            (None, Some(c)) => write!(f, "not valid JSON: unexpected '{c}' near byte {at}"),
            (None, None) => {
                write!(f, "not valid JSON near byte {at} (a cut-off line, or a quote or bracket never closed?)")
            }
        }
    }
}

/// Reusable simd-json state: parse one document after another without
/// allocating once the buffers have grown to the largest document seen.
pub struct JsonParser {
    buffers: Buffers,
    // Always empty between calls; its lifetime is re-bound per document.
    tape: Tape<'static>,
}

impl Default for JsonParser {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonParser {
    /// A parser with buffers sized for typical records; they grow as needed.
    pub fn new() -> Self {
        Self { buffers: Buffers::new(64 * 1024), tape: Tape(Vec::new()) }
    }

    /// Parses `input[..len]` in place and calls `visit` with its root value.
    ///
    /// `input` must extend at least [`INPUT_PADDING`] bytes beyond `len`;
    /// the padding is left unchanged. The bytes of `input[..len]` are
    /// modified (strings are unescaped in place) whether or not parsing
    /// succeeds.
    pub fn parse<R>(
        &mut self,
        input: &mut [u8],
        len: usize,
        visit: impl FnOnce(JsonValue<'_, '_>) -> R,
    ) -> Result<R, JsonError> {
        let mut tape: Tape<'_> = std::mem::replace(&mut self.tape, Tape(Vec::new())).reset();
        let outcome = match simd_json::fill_tape_padded(input, len, &mut self.buffers, &mut tape) {
            Ok(()) => Ok(visit(JsonValue(&tape.0))),
            Err(err) => Err(JsonError(err)),
        };
        self.tape = tape.reset();
        outcome
    }
}

/// One JSON value on the tape: the slice that starts at its node and covers
/// all of its descendants.
#[derive(Clone, Copy)]
pub struct JsonValue<'t, 'i>(&'t [Node<'i>]);

/// A JSON value that is not a container.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar<'i> {
    Str(&'i str),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
    Null,
}

/// Number of tape nodes a value spans, itself included.
#[inline]
fn span(node: &Node<'_>) -> usize {
    match node {
        Node::Object { count, .. } | Node::Array { count, .. } => count + 1,
        _ => 1,
    }
}

impl<'t, 'i> JsonValue<'t, 'i> {
    #[inline]
    fn node(&self) -> Node<'i> {
        self.0[0]
    }

    /// The value as a scalar, or `None` for an object or array.
    #[inline]
    pub fn scalar(&self) -> Option<Scalar<'i>> {
        Some(match self.node() {
            Node::String(s) => Scalar::Str(s),
            Node::Static(StaticNode::I64(v)) => Scalar::I64(v),
            Node::Static(StaticNode::U64(v)) => Scalar::U64(v),
            Node::Static(StaticNode::F64(v)) => Scalar::F64(v),
            Node::Static(StaticNode::Bool(v)) => Scalar::Bool(v),
            Node::Static(StaticNode::Null) => Scalar::Null,
            Node::Object { .. } | Node::Array { .. } => return None,
        })
    }

    /// The string, if this is a JSON string.
    #[inline]
    pub fn as_str(&self) -> Option<&'i str> {
        match self.node() {
            Node::String(s) => Some(s),
            _ => None,
        }
    }

    /// True for JSON `null`.
    #[inline]
    pub fn is_null(&self) -> bool {
        matches!(self.node(), Node::Static(StaticNode::Null))
    }

    /// True for an object.
    #[inline]
    pub fn is_object(&self) -> bool {
        matches!(self.node(), Node::Object { .. })
    }

    /// The value as an integer: JSON integers, floats with an integral
    /// value, and strings of decimal digits (the API sometimes quotes them).
    pub fn as_i64_lenient(&self) -> Option<i64> {
        match self.node() {
            Node::Static(StaticNode::I64(v)) => Some(v),
            Node::Static(StaticNode::U64(v)) => i64::try_from(v).ok(),
            Node::Static(StaticNode::F64(v)) => float_as_integer(v),
            Node::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        }
    }

    /// Iterates over the key/value pairs if this is an object.
    #[inline]
    pub fn object(&self) -> Option<ObjectIter<'t, 'i>> {
        match self.node() {
            Node::Object { len, count } => Some(ObjectIter { rest: &self.0[1..=count], remaining: len }),
            _ => None,
        }
    }

    /// Iterates over the elements if this is an array.
    #[inline]
    pub fn array(&self) -> Option<ArrayIter<'t, 'i>> {
        match self.node() {
            Node::Array { len, count } => Some(ArrayIter { rest: &self.0[1..=count], remaining: len }),
            _ => None,
        }
    }

    /// Looks a key up in an object (linear scan; for the few lookups
    /// outside the per-record hot path).
    #[inline(always)]
    pub fn get(&self, key: &str) -> Option<JsonValue<'t, 'i>> {
        self.object()?.find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The first string found in this value, depth first. Strings point into
    /// the parsed buffer, which lets error reports find where a record was.
    pub fn first_str_ptr(&self) -> Option<*const u8> {
        self.0.iter().find_map(|node| match node {
            Node::String(s) => Some(s.as_ptr()),
            _ => None,
        })
    }
}

/// The integral value of a float, when it has one that fits in `i64`.
pub fn float_as_integer(v: f64) -> Option<i64> {
    // 2^63 is exactly representable; anything at or above it does not fit.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    (v.fract() == 0.0 && (-LIMIT..LIMIT).contains(&v)).then_some(v as i64)
}

/// Key/value pairs of a tape object, in document order.
pub struct ObjectIter<'t, 'i> {
    rest: &'t [Node<'i>],
    remaining: usize,
}

impl<'t, 'i> Iterator for ObjectIter<'t, 'i> {
    type Item = (&'i str, JsonValue<'t, 'i>);

    // Inlined into the field scans: one call per key was a tenth of the
    // converter's own time.
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let [Node::String(key), rest @ ..] = self.rest else { unreachable!("object keys are strings on the tape") };
        let (value, rest) = rest.split_at(span(&rest[0]));
        self.rest = rest;
        Some((key, JsonValue(value)))
    }
}

/// Elements of a tape array, in document order.
pub struct ArrayIter<'t, 'i> {
    rest: &'t [Node<'i>],
    remaining: usize,
}

impl<'t, 'i> Iterator for ArrayIter<'t, 'i> {
    type Item = JsonValue<'t, 'i>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let (value, rest) = self.rest.split_at(span(&self.rest[0]));
        self.rest = rest;
        Some(JsonValue(value))
    }
}

/// Writes `value` as compact JSON (no spaces) to `out`.
pub fn write_compact_json(value: JsonValue<'_, '_>, out: &mut Vec<u8>) {
    if let Some(fields) = value.object() {
        out.push(b'{');
        for (n, (key, item)) in fields.enumerate() {
            if n > 0 {
                out.push(b',');
            }
            write_json_string(key, out);
            out.push(b':');
            write_compact_json(item, out);
        }
        out.push(b'}');
    } else if let Some(items) = value.array() {
        out.push(b'[');
        for (n, item) in items.enumerate() {
            if n > 0 {
                out.push(b',');
            }
            write_compact_json(item, out);
        }
        out.push(b']');
    } else if let Some(scalar) = value.scalar() {
        match scalar {
            Scalar::Str(s) => write_json_string(s, out),
            Scalar::I64(v) => out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes()),
            Scalar::U64(v) => out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes()),
            Scalar::F64(v) => write_f64(v, out),
            Scalar::Bool(true) => out.extend_from_slice(b"true"),
            Scalar::Bool(false) => out.extend_from_slice(b"false"),
            Scalar::Null => out.extend_from_slice(b"null"),
        }
    }
}

/// Writes a number: integral values as integers, others in shortest
/// round-trip form; non-finite values (never produced by a JSON parser) as 0.
pub fn write_f64(v: f64, out: &mut Vec<u8>) {
    if let Some(int) = float_as_integer(v) {
        out.extend_from_slice(itoa::Buffer::new().format(int).as_bytes());
    } else if v.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    } else {
        out.push(b'0');
    }
}

/// Writes `s` as a JSON string literal with the escapes JSON requires.
pub fn write_json_string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut clean_from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[clean_from..i]);
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        clean_from = i + 1;
    }
    out.extend_from_slice(&bytes[clean_from..]);
    out.push(b'"');
}

/// `value` with `digits` decimals, for the numbers of a JSON report a
/// person reads (`4.087853`, not `4.087853123456789`).
pub fn rounded(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    fn padded(text: &str) -> (Vec<u8>, usize) {
        let mut buf = text.as_bytes().to_vec();
        let len = buf.len();
        buf.resize(len + INPUT_PADDING, b' ');
        (buf, len)
    }

    /// Errors read "ExpectedTrue at character 0" and "InternalError at
    /// character 0": the parser's codes. Now they say what is wrong in
    /// words, and where.
    #[test]
    fn errors_are_in_words_with_a_place_not_the_parsers_codes() {
        let mut parser = JsonParser::new();
        let cases = [
            ("tru", "unexpected 't' near byte 1"),
            ("{\"a\" 1}", "a ':' must follow an object key; found '1' near byte 6"),
            ("{\"a\":1.e}", "a malformed number"),
            ("{\"a\":\"x", "near byte"),
            ("[1 2]", "unexpected '2' near byte 4"),
        ];
        for (text, expected) in cases {
            let (mut buf, len) = padded(text);
            let err = parser.parse(&mut buf, len, |_| ()).unwrap_err().to_string();
            assert!(err.starts_with("not valid JSON") && err.contains(expected), "{text}: {err}");
            for code in ["Expected", "Syntax", "InternalError", "character", "Eof"] {
                assert!(!err.contains(code), "{text}: the parser's code {code} in {err:?}");
            }
        }
    }

    #[test]
    fn walks_objects_and_arrays_in_order() {
        let (mut buf, len) = padded(r#"{"a":[1,{"b":null},"x"],"c":{"d":true},"e":-2.5}"#);
        let mut parser = JsonParser::new();
        let keys = parser
            .parse(&mut buf, len, |root| {
                let mut seen = Vec::new();
                for (key, value) in root.object().unwrap() {
                    seen.push(key.to_owned());
                    if key == "a" {
                        let items: Vec<_> = value.array().unwrap().collect();
                        assert_eq!(items.len(), 3);
                        assert_eq!(items[0].scalar(), Some(Scalar::U64(1)));
                        assert!(items[1].get("b").unwrap().is_null());
                        assert_eq!(items[2].as_str(), Some("x"));
                    }
                }
                assert_eq!(root.get("c").unwrap().get("d").unwrap().scalar(), Some(Scalar::Bool(true)));
                assert_eq!(root.get("e").unwrap().scalar(), Some(Scalar::F64(-2.5)));
                seen
            })
            .unwrap();
        assert_eq!(keys, ["a", "c", "e"]);
    }

    #[test]
    fn parses_documents_packed_in_one_buffer() {
        let text = "{\"n\":1}\n{\"n\":22}\n";
        let mut buf = text.as_bytes().to_vec();
        buf.resize(text.len() + INPUT_PADDING, 0);
        let mut parser = JsonParser::new();
        let first = parser.parse(&mut buf[..], 7, |v| v.get("n").unwrap().as_i64_lenient()).unwrap();
        let second = parser.parse(&mut buf[8..], 8, |v| v.get("n").unwrap().as_i64_lenient()).unwrap();
        assert_eq!((first, second), (Some(1), Some(22)));
    }

    #[test]
    fn lenient_integers() {
        let (mut buf, len) = padded(r#"["1511373004000", 77.0, 1.5, "x", 18446744073709551615]"#);
        let got = JsonParser::new()
            .parse(&mut buf, len, |v| v.array().unwrap().map(|x| x.as_i64_lenient()).collect::<Vec<_>>())
            .unwrap();
        assert_eq!(got, [Some(1_511_373_004_000), Some(77), None, None, None]);
    }

    #[test]
    fn invalid_json_is_an_error_not_a_panic() {
        for text in ["{", "{\"a\":}", "nul", "[1,]", "\"\\x\""] {
            let (mut buf, len) = padded(text);
            assert!(JsonParser::new().parse(&mut buf, len, |_| ()).is_err(), "{text}");
        }
    }

    #[test]
    fn compact_json_round_trips_through_the_parser() {
        let source = r#"{ "a" : [1, 2.5, "q\"\\\n\u0001é"], "b": {"c": null, "d": false}, "e": 1e300 }"#;
        let (mut buf, len) = padded(source);
        let mut out = Vec::new();
        JsonParser::new().parse(&mut buf, len, |v| write_compact_json(v, &mut out)).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":[1,2.5,"q\"\\\n\u0001é"],"b":{"c":null,"d":false},"e":1e300}"#
        );
    }
}
