//! The little JSON iperf3's control connection needs: a writer for the parameters and
//! results this side sends, and a tolerant reader for the few fields it reads back.
//!
//! Both are written here rather than taken from a crate: the messages are a handful of
//! flat fields and one array of flat objects, the core keeps `serde` optional (boards leave
//! it out), and the reader must take whatever a version of iperf3 adds (fields it does not
//! know, floats, nested objects) while never panicking and never recursing on what a peer
//! sends. Nested values it does not read are skipped by counting brackets, with no stack
//! growth however deep they go.

use core::fmt::{self, Write};

/// Writes one JSON value into a fixed buffer; remembers when it did not fit.
pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
    overflow: bool,
    /// A comma goes before the next key or array element.
    comma: bool,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Self {
            buf,
            len: 0,
            overflow: false,
            comma: false,
        }
    }

    /// Bytes written, or `None` if the value did not fit.
    pub(crate) fn finish(self) -> Option<usize> {
        (!self.overflow).then_some(self.len)
    }

    fn raw(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        match self.buf.get_mut(self.len..end) {
            Some(slot) => {
                slot.copy_from_slice(bytes);
                self.len = end;
            }
            None => self.overflow = true,
        }
    }

    fn separate(&mut self) {
        if self.comma {
            self.raw(b",");
        }
        self.comma = true;
    }

    fn key(&mut self, key: &str) {
        self.separate();
        self.string(key);
        self.raw(b":");
    }

    /// A string with `"`, `\` and control characters escaped.
    fn string(&mut self, text: &str) {
        self.raw(b"\"");
        for c in text.chars() {
            match c {
                '"' => self.raw(b"\\\""),
                '\\' => self.raw(b"\\\\"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(self, "\\u{:04x}", c as u32);
                }
                c => self.raw(c.encode_utf8(&mut [0; 4]).as_bytes()),
            }
        }
        self.raw(b"\"");
    }

    pub(crate) fn begin_object(&mut self) {
        self.raw(b"{");
        self.comma = false;
    }

    pub(crate) fn end_object(&mut self) {
        self.raw(b"}");
        self.comma = true;
    }

    /// `"key":[`; the elements follow with [`element_object`](Self::element_object).
    pub(crate) fn begin_array(&mut self, key: &str) {
        self.key(key);
        self.raw(b"[");
        self.comma = false;
    }

    pub(crate) fn end_array(&mut self) {
        self.raw(b"]");
        self.comma = true;
    }

    /// Starts an object as the next element of an array.
    pub(crate) fn element_object(&mut self) {
        self.separate();
        self.begin_object();
    }

    pub(crate) fn int(&mut self, key: &str, value: i64) {
        self.key(key);
        let _ = write!(self, "{value}");
    }

    pub(crate) fn uint(&mut self, key: &str, value: u64) {
        self.key(key);
        let _ = write!(self, "{value}");
    }

    pub(crate) fn bool(&mut self, key: &str, value: bool) {
        self.key(key);
        self.raw(if value { b"true" } else { b"false" });
    }

    pub(crate) fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        self.string(value);
    }

    /// Microseconds as a number of seconds with six decimals (`10.000412`).
    pub(crate) fn seconds(&mut self, key: &str, micros: u64) {
        self.key(key);
        let _ = write!(self, "{}.{:06}", micros / 1_000_000, micros % 1_000_000);
    }
}

impl Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.raw(s.as_bytes());
        if self.overflow {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

/// One value as it appears in the text: scalars by their bytes, objects and arrays as the
/// whole bracketed text (read further with [`Object`] and [`elements`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    Null,
    Bool(bool),
    /// The number's text, as written.
    Number(&'a [u8]),
    /// The string's bytes between the quotes, escapes left as they are.
    String(&'a [u8]),
    /// `[...]`.
    Array(&'a [u8]),
    /// `{...}`.
    Object(&'a [u8]),
}

impl Value<'_> {
    /// The value as a whole number: a number's integer part (as cJSON's `valueint`
    /// truncates), saturated; `None` for anything else.
    pub(crate) fn as_i64(&self) -> Option<i64> {
        let Value::Number(text) = *self else {
            return None;
        };
        let d = Decimal::parse(text)?;
        let magnitude = d.scaled(0);
        let magnitude = i64::try_from(magnitude).unwrap_or(i64::MAX);
        Some(if d.negative { -magnitude } else { magnitude })
    }

    /// The value as a count: a non-negative whole number.
    pub(crate) fn as_u64(&self) -> Option<u64> {
        let Value::Number(text) = *self else {
            return None;
        };
        let d = Decimal::parse(text)?;
        (!d.negative).then(|| d.scaled(0))
    }

    /// A number of seconds as microseconds (negative: 0).
    pub(crate) fn as_micros(&self) -> Option<u64> {
        let Value::Number(text) = *self else {
            return None;
        };
        let d = Decimal::parse(text)?;
        Some(if d.negative { 0 } else { d.scaled(6) })
    }

    /// Whether a flag is set: present and neither `false`, `null` nor 0. (iperf3 itself
    /// looks only at a flag's presence; its clients only send flags that are set.)
    pub(crate) fn is_set(&self) -> bool {
        match *self {
            Value::Null | Value::Bool(false) => false,
            Value::Number(_) => self.as_i64() != Some(0),
            _ => true,
        }
    }
}

/// A number as digits and a power of ten: `mantissa * 10^exponent`.
struct Decimal {
    negative: bool,
    mantissa: u64,
    exponent: i32,
}

impl Decimal {
    /// Parses JSON's number grammar (leniently: leading zeros and a missing fraction or
    /// exponent digit are taken). Digits beyond what a u64 holds are dropped from the
    /// fraction, or counted in the exponent.
    fn parse(text: &[u8]) -> Option<Self> {
        let mut rest = text;
        let negative = rest.first() == Some(&b'-');
        if negative {
            rest = rest.get(1..)?;
        }
        let mut mantissa: u64 = 0;
        let mut exponent: i32 = 0;
        let mut digits = 0;
        let mut fraction = false;
        let mut i = 0;
        while let Some(&b) = rest.get(i) {
            match b {
                b'0'..=b'9' => {
                    digits += 1;
                    let digit = u64::from(b - b'0');
                    match mantissa.checked_mul(10).and_then(|m| m.checked_add(digit)) {
                        Some(m) => {
                            mantissa = m;
                            if fraction {
                                exponent = exponent.saturating_sub(1);
                            }
                        }
                        // Too many digits: an integer part grows by a power of ten, a
                        // fraction loses its tail.
                        None if !fraction => exponent = exponent.saturating_add(1),
                        None => {}
                    }
                }
                b'.' if !fraction => fraction = true,
                b'e' | b'E' => break,
                _ => return None,
            }
            i += 1;
        }
        if digits == 0 {
            return None;
        }
        if let Some(tail) = rest.get(i + 1..).filter(|_| i < rest.len()) {
            let (sign, tail) = match tail.first() {
                Some(b'-') => (-1, tail.get(1..)?),
                Some(b'+') => (1, tail.get(1..)?),
                _ => (1, tail),
            };
            let mut power: i32 = 0;
            for &b in tail {
                if !b.is_ascii_digit() {
                    return None;
                }
                power = power.saturating_mul(10).saturating_add(i32::from(b - b'0'));
            }
            exponent = exponent.saturating_add(sign * power);
        }
        Some(Self {
            negative,
            mantissa,
            exponent,
        })
    }

    /// The magnitude times `10^decimals`, truncated, saturated at `u64::MAX`.
    fn scaled(&self, decimals: i32) -> u64 {
        let power = self.exponent.saturating_add(decimals);
        let mut value = self.mantissa;
        if power >= 0 {
            for _ in 0..power.min(40) {
                match value.checked_mul(10) {
                    Some(v) => value = v,
                    None => return if value == 0 { 0 } else { u64::MAX },
                }
            }
        } else {
            for _ in 0..power.unsigned_abs().min(40) {
                value /= 10;
            }
        }
        value
    }
}

/// A cursor over JSON text.
struct Cursor<'a> {
    text: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.skip_ws();
        (self.peek() == Some(byte)).then(|| self.at += 1)
    }

    /// A string at the cursor; returns the bytes between the quotes.
    fn string(&mut self) -> Option<&'a [u8]> {
        self.expect(b'"')?;
        let start = self.at;
        loop {
            match self.peek()? {
                b'"' => break,
                b'\\' => self.at += 2,
                _ => self.at += 1,
            }
        }
        let inner = self.text.get(start..self.at)?;
        self.at += 1;
        Some(inner)
    }

    /// Skips an object or array at the cursor by counting brackets (strings respected);
    /// returns its whole text.
    fn bracketed(&mut self) -> Option<&'a [u8]> {
        let start = self.at;
        let mut depth: u32 = 0;
        loop {
            match self.peek()? {
                b'"' => {
                    self.string()?;
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth.checked_sub(1)?;
                    if depth == 0 {
                        self.at += 1;
                        return self.text.get(start..self.at);
                    }
                }
                _ => {}
            }
            self.at += 1;
        }
    }

    fn word(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at + word.len();
        (self.text.get(self.at..end)? == word).then(|| self.at = end)
    }

    fn value(&mut self) -> Option<Value<'a>> {
        self.skip_ws();
        Some(match self.peek()? {
            b'"' => Value::String(self.string()?),
            b'{' => Value::Object(self.bracketed()?),
            b'[' => Value::Array(self.bracketed()?),
            b't' => {
                self.word(b"true")?;
                Value::Bool(true)
            }
            b'f' => {
                self.word(b"false")?;
                Value::Bool(false)
            }
            b'n' => {
                self.word(b"null")?;
                Value::Null
            }
            b'-' | b'0'..=b'9' => {
                let start = self.at;
                while matches!(
                    self.peek(),
                    Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                ) {
                    self.at += 1;
                }
                let text = self.text.get(start..self.at)?;
                Decimal::parse(text)?;
                Value::Number(text)
            }
            _ => return None,
        })
    }
}

/// An object whose top level has been checked: every member a string key and a value, the
/// nested ones bracket-balanced.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Object<'a> {
    text: &'a [u8],
}

impl<'a> Object<'a> {
    /// `text` as an object, with nothing but white space around it; `None` if it is not
    /// one.
    pub(crate) fn parse(text: &'a [u8]) -> Option<Self> {
        let object = Self { text };
        let mut cursor = Cursor { text, at: 0 };
        cursor.skip_ws();
        let Value::Object(_) = cursor.value()? else {
            return None;
        };
        cursor.skip_ws();
        if cursor.at != text.len() {
            return None;
        }
        // Walk the members once: a malformed one fails here, not at a later lookup.
        let mut members = object.members();
        for _ in members.by_ref() {}
        (!members.failed).then_some(object)
    }

    /// The value of `key` (the first, if it appears twice).
    pub(crate) fn get(&self, key: &str) -> Option<Value<'a>> {
        self.members()
            .find(|(k, _)| *k == key.as_bytes())
            .map(|(_, v)| v)
    }

    fn members(&self) -> Members<'a> {
        let mut cursor = Cursor {
            text: self.text,
            at: 0,
        };
        let failed = cursor.expect(b'{').is_none();
        Members {
            cursor,
            first: true,
            failed,
            done: false,
        }
    }
}

struct Members<'a> {
    cursor: Cursor<'a>,
    first: bool,
    failed: bool,
    done: bool,
}

impl<'a> Iterator for Members<'a> {
    type Item = (&'a [u8], Value<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.failed {
            return None;
        }
        self.cursor.skip_ws();
        if self.cursor.peek() == Some(b'}') {
            self.done = true;
            return None;
        }
        if !self.first && self.cursor.expect(b',').is_none() {
            self.failed = true;
            return None;
        }
        self.first = false;
        let member = (|| {
            let key = self.cursor.string()?;
            self.cursor.expect(b':')?;
            Some((key, self.cursor.value()?))
        })();
        if member.is_none() {
            self.failed = true;
        }
        member
    }
}

/// The elements of an array's text (`[...]`); stops at the first malformed one.
pub(crate) fn elements(array: &[u8]) -> impl Iterator<Item = Value<'_>> {
    let mut cursor = Cursor { text: array, at: 0 };
    let mut ok = cursor.expect(b'[').is_some();
    let mut first = true;
    core::iter::from_fn(move || {
        if !ok {
            return None;
        }
        cursor.skip_ws();
        if cursor.peek() == Some(b']') {
            ok = false;
            return None;
        }
        if !first && cursor.expect(b',').is_none() {
            ok = false;
            return None;
        }
        first = false;
        let value = cursor.value();
        ok = value.is_some();
        value
    })
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    #[test]
    fn reads_the_parameters_a_stock_client_sends() {
        let text = br#"{"tcp":true,"omit":0,"time":10,"num":0,"blockcount":0,"parallel":2,"reverse":true,"len":131072,"pacing_timer":1000,"client_version":"3.12"}"#;
        let params = Object::parse(text).unwrap();
        assert_eq!(params.get("parallel").and_then(|v| v.as_u64()), Some(2));
        assert_eq!(params.get("time").and_then(|v| v.as_u64()), Some(10));
        assert!(params.get("reverse").is_some_and(|v| v.is_set()));
        assert!(params.get("tcp").is_some_and(|v| v.is_set()));
        assert!(params.get("udp").is_none());
        assert_eq!(
            params.get("client_version"),
            Some(Value::String(b"3.12".as_slice()))
        );
    }

    #[test]
    fn reads_results_with_floats_and_fields_it_does_not_know() {
        let text = br#" {"cpu_util_total":1.2345678901234e-05,"sender_has_retransmits":-1,
            "congestion_used":"cubic","extra":{"deep":[[[{"x":"]}"}]]],"n":null},
            "streams":[{"id":1,"bytes":11811160064,"retransmits":-1,"jitter":0,
            "errors":0,"packets":0,"start_time":0,"end_time":10.000412},
            {"id":3,"bytes":5,"end_time":1.5e1}]} "#;
        let results = Object::parse(text).unwrap();
        assert_eq!(
            results
                .get("sender_has_retransmits")
                .and_then(|v| v.as_i64()),
            Some(-1)
        );
        assert_eq!(
            results.get("cpu_util_total").and_then(|v| v.as_micros()),
            Some(12)
        );
        let Some(Value::Array(streams)) = results.get("streams") else {
            panic!("no streams");
        };
        let got: Vec<(u64, u64, u64)> = elements(streams)
            .filter_map(|s| match s {
                Value::Object(text) => Object::parse(text),
                _ => None,
            })
            .map(|s| {
                let n = |k| s.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
                let t = s.get("end_time").and_then(|v| v.as_micros()).unwrap_or(0);
                (n("id"), n("bytes"), t)
            })
            .collect();
        assert_eq!(got, [(1, 11_811_160_064, 10_000_412), (3, 5, 15_000_000)]);
    }

    #[test]
    fn refuses_what_is_not_one_object() {
        for text in [
            &b""[..],
            b"{",
            b"}",
            b"[]",
            b"{\"a\":1,}",
            b"{\"a\" 1}",
            b"{\"a\":1} x",
            b"{\"a\":tru}",
            b"{\"a\":--1}",
            b"{\"a\":\"x}",
            b"{\"a\":[1,2}",
            b"{\"a\":1 \"b\":2}",
            b"{1:2}",
            b"\xff\xfe",
        ] {
            assert!(
                Object::parse(text).is_none(),
                "{:?}",
                std::str::from_utf8(text)
            );
        }
        assert!(Object::parse(b" { } ").is_some());
    }

    #[test]
    fn never_panics_on_any_prefix_or_byte_flip() {
        let text =
            br#"{"tcp":true,"time":10,"parallel":2,"s":"a\"b\\","x":[1,{"y":-2.5e-3}],"z":null}"#;
        for end in 0..=text.len() {
            let _ = Object::parse(&text[..end]).map(|o| o.get("x"));
        }
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut bytes = text.to_vec();
            let at = (x % bytes.len() as u64) as usize;
            bytes[at] = (x >> 32) as u8;
            if let Some(o) = Object::parse(&bytes) {
                for key in ["tcp", "time", "parallel", "s", "x", "z"] {
                    if let Some(v) = o.get(key) {
                        let _ = (v.as_i64(), v.as_u64(), v.as_micros(), v.is_set());
                        if let Value::Array(a) = v {
                            elements(a).for_each(drop);
                        }
                    }
                }
            }
        }
        // Deep nesting is skipped without recursion.
        let mut deep = Vec::from(&b"{\"a\":"[..]);
        deep.extend(core::iter::repeat_n(b'[', 100_000));
        deep.extend(core::iter::repeat_n(b']', 100_000));
        deep.push(b'}');
        assert!(Object::parse(&deep).is_some());
    }

    #[test]
    fn numbers_saturate_and_truncate() {
        fn n(t: &[u8]) -> Value<'_> {
            Value::Number(t)
        }
        assert_eq!(n(b"99999999999999999999999").as_u64(), Some(u64::MAX));
        assert_eq!(n(b"-3.9").as_i64(), Some(-3));
        assert_eq!(n(b"-3").as_u64(), None);
        assert_eq!(n(b"1e3").as_u64(), Some(1000));
        assert_eq!(n(b"1E+400").as_u64(), Some(u64::MAX));
        assert_eq!(n(b"1e-400").as_micros(), Some(0));
        assert_eq!(n(b"0.0000015").as_micros(), Some(1));
        assert_eq!(n(b"2.000000999").as_micros(), Some(2_000_000));
        assert_eq!(Value::String(b"1").as_u64(), None);
        assert!(!n(b"0").is_set());
        assert!(Value::Bool(true).is_set());
        assert!(!Value::Null.is_set());
    }

    #[test]
    fn writes_what_it_reads() {
        let mut buf = [0u8; 256];
        let mut w = Writer::new(&mut buf);
        w.begin_object();
        w.bool("tcp", true);
        w.int("sender_has_retransmits", -1);
        w.str("title", "a \"quoted\"\n\\ title");
        w.begin_array("streams");
        for id in [1, 3] {
            w.element_object();
            w.uint("id", id);
            w.seconds("end_time", 10_000_412);
            w.end_object();
        }
        w.end_array();
        w.end_object();
        let len = w.finish().unwrap();
        let text = &buf[..len];
        assert_eq!(
            core::str::from_utf8(text).unwrap(),
            r#"{"tcp":true,"sender_has_retransmits":-1,"title":"a \"quoted\"\u000a\\ title","streams":[{"id":1,"end_time":10.000412},{"id":3,"end_time":10.000412}]}"#
        );
        let o = Object::parse(text).unwrap();
        assert!(o.get("tcp").unwrap().is_set());
        let Some(Value::Array(a)) = o.get("streams") else {
            panic!()
        };
        assert_eq!(elements(a).count(), 2);
    }

    #[test]
    fn a_writer_that_runs_out_of_room_says_so() {
        let mut buf = [0u8; 8];
        let mut w = Writer::new(&mut buf);
        w.begin_object();
        w.uint("parallel", 2);
        w.end_object();
        assert_eq!(w.finish(), None);
    }
}
