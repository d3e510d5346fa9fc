//! defmt frames with their arguments as data.
//!
//! `defmt-decoder` turns a frame into text, and keeps the values it decoded to itself. This
//! module reads the same frames a second time into [`Arg`] trees: the format strings come
//! from the ELF's `.defmt` symbols (each symbol's address is its index, its name a JSON
//! object whose `data` is the string), and the bytes are read by the rules of defmt's wire
//! format, guided by `defmt-parser`'s reading of each format string. Only the host's
//! decoder needs this much; nothing here can panic on the bytes a firmware sends.

use std::collections::HashMap;

use defmt_parser::{DisplayHint, Fragment, ParserMode, TimePrecision, Type};
use object::{Object, ObjectSection, ObjectSymbol};

/// How deep format arguments may nest before a frame is taken as garbage.
const MAX_DEPTH: usize = 64;

/// The format strings of one firmware, by index.
#[derive(Debug, Default)]
pub(crate) struct Strings {
    entries: HashMap<u64, String>,
    timestamp: Option<String>,
}

/// What a `.defmt` symbol's name holds (the fields this module reads).
#[derive(serde::Deserialize)]
struct Symbol {
    tag: String,
    data: String,
}

impl Strings {
    /// The format strings of the ELF `elf` (empty when it has no `.defmt` section).
    pub(crate) fn parse(elf: &[u8]) -> Result<Strings, String> {
        let file = object::File::parse(elf).map_err(|e| format!("not an ELF file: {e}"))?;
        let sections: Vec<_> = file
            .sections()
            .filter(|s| {
                s.name()
                    .is_ok_and(|n| n == ".defmt" || n.starts_with(".defmt."))
            })
            .map(|s| s.index())
            .collect();
        let mut strings = Strings::default();
        for symbol in file.symbols() {
            let (Ok(name), Some(section)) = (symbol.name(), symbol.section_index()) else {
                continue;
            };
            if !sections.contains(&section) || !name.starts_with('{') {
                continue;
            }
            let Ok(sym) = serde_json::from_str::<Symbol>(name) else {
                continue;
            };
            match sym.tag.as_str() {
                "defmt_timestamp" => strings.timestamp = Some(sym.data),
                "defmt_bitflags_value" => {}
                tag if tag.starts_with("defmt_") => {
                    strings.entries.insert(symbol.address(), sym.data);
                }
                _ => {}
            }
        }
        Ok(strings)
    }

    fn get(&self, index: u16) -> Option<&str> {
        self.entries.get(&u64::from(index)).map(String::as_str)
    }

    /// Reads one whole frame (its bytes after the transport's framing): the index of its
    /// format string, the timestamp's arguments, then its own arguments.
    pub(crate) fn frame<'t>(&'t self, bytes: &[u8]) -> Option<Frame<'t>> {
        let mut reader = Reader {
            bytes,
            strings: self,
        };
        let format = self.get(reader.u16()?)?;
        let timestamp = match &self.timestamp {
            Some(ts) => reader.args(ts, 0)?,
            None => Vec::new(),
        };
        let args = reader.args(format, 0)?;
        Some(Frame {
            format,
            timestamp_seconds: self
                .timestamp
                .as_deref()
                .and_then(|f| seconds(f, &timestamp)),
            args,
        })
    }
}

/// The board's clock in seconds from a timestamp `{=u64:ms}` (or `:us`, `:ts`...): its first
/// integer argument, scaled by the parameter's hint (none: taken as milliseconds).
fn seconds(format: &str, args: &[Arg<'_>]) -> Option<f64> {
    let param = defmt_parser::parse(format, ParserMode::ForwardsCompatible)
        .ok()?
        .into_iter()
        .find_map(|f| match f {
            Fragment::Parameter(p) => Some(p),
            Fragment::Literal(_) => None,
        })?;
    let Some(Arg::Uint(value)) = args.first() else {
        return None;
    };
    let precision = match param.hint {
        Some(DisplayHint::Seconds(p) | DisplayHint::Time(p) | DisplayHint::ISO8601(p)) => p,
        _ => TimePrecision::Millis,
    };
    let per_second = match precision {
        TimePrecision::Micros => 1e6,
        TimePrecision::Millis => 1e3,
        TimePrecision::Seconds => 1.0,
    };
    Some(*value as f64 / per_second)
}

/// One decoded frame.
#[derive(Debug)]
pub(crate) struct Frame<'t> {
    /// The log macro's format string (`"{}"` for an event).
    pub format: &'t str,
    /// The timestamp in seconds of the board's clock, if the firmware defines one.
    pub timestamp_seconds: Option<f64>,
    /// The arguments of `format`, in order.
    pub args: Vec<Arg<'t>>,
}

/// One argument as data.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg<'t> {
    /// Any unsigned integer.
    Uint(u128),
    /// Any signed integer.
    Int(i128),
    /// `f32` or `f64`.
    Float(f64),
    /// `bool`.
    Bool(bool),
    /// `char`.
    Char(char),
    /// `{=str}`, or an interned `{=istr}`.
    Str(String),
    /// `{=[u8]}` or `{=[u8; N]}`.
    Bytes(Vec<u8>),
    /// Text formatted on the target (`{=__internal_Debug}`, `{=__internal_Display}`).
    Text(String),
    /// A `Format` value: `format` with its own arguments (for a derived enum, the variant's).
    Format(Write<'t>),
    /// The `write!` calls of a hand-written `Format` impl, in order.
    Sequence(Vec<Write<'t>>),
    /// A slice or array of `Format` values.
    Slice(Vec<Write<'t>>),
}

/// A format string and its arguments.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Write<'t> {
    /// The format string.
    pub format: &'t str,
    /// Its arguments.
    pub args: Vec<Arg<'t>>,
}

impl<'t> Arg<'t> {
    /// The `write!` calls of a `Format` value (a hand-written impl), or `None`.
    pub(crate) fn writes(&self) -> Option<&[Write<'t>]> {
        match self {
            Arg::Format(Write { args, .. }) => match args.as_slice() {
                [Arg::Sequence(writes)] => Some(writes),
                _ => None,
            },
            Arg::Sequence(writes) => Some(writes),
            _ => None,
        }
    }

    /// An unsigned integer, as it is or as a `Format` value of a primitive (`{}` of a `u8`).
    pub(crate) fn uint(&self) -> Option<u128> {
        match self {
            Arg::Uint(value) => Some(*value),
            Arg::Format(Write { args, .. }) => match args.as_slice() {
                [Arg::Uint(value)] => Some(*value),
                _ => None,
            },
            _ => None,
        }
    }

    /// A signed integer, as it is or as a `Format` value of a primitive.
    pub(crate) fn int(&self) -> Option<i128> {
        match self {
            Arg::Int(value) => Some(*value),
            Arg::Format(Write { args, .. }) => match args.as_slice() {
                [Arg::Int(value)] => Some(*value),
                _ => None,
            },
            _ => None,
        }
    }
}

/// Reads arguments off the frame's bytes.
struct Reader<'b, 't> {
    bytes: &'b [u8],
    strings: &'t Strings,
}

impl<'t> Reader<'_, 't> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let (head, rest) = self.bytes.split_at_checked(n)?;
        self.bytes = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn u8(&mut self) -> Option<u8> {
        Some(u8::from_le_bytes(self.array()?))
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.array()?))
    }

    fn u128(&mut self) -> Option<u128> {
        Some(u128::from_le_bytes(self.array()?))
    }

    /// A length (a target `usize`: 4 bytes on the Cortex-M boards).
    fn len(&mut self) -> Option<usize> {
        usize::try_from(self.u32()?).ok()
    }

    /// An interned string, by its index.
    fn format(&mut self) -> Option<&'t str> {
        let index = self.u16()?;
        self.strings.get(index)
    }

    /// The variant of a derived enum's `"A|B(..)|C"` format: its discriminant (as wide as
    /// the number of variants needs), then the variant's format string.
    fn variant(&mut self, format: &'t str) -> Option<&'t str> {
        let bars = format.matches('|').count();
        let discriminant = if u8::try_from(bars).is_ok() {
            usize::from(self.u8()?)
        } else if u16::try_from(bars).is_ok() {
            usize::from(self.u16()?)
        } else {
            usize::try_from(self.u32()?).ok()?
        };
        format.split('|').nth(discriminant)
    }

    /// A `Format` value: its format string (a derived enum's variant), its arguments.
    fn format_value(&mut self, format: &'t str, depth: usize) -> Option<Write<'t>> {
        let format = if format.contains('|') {
            self.variant(format)?
        } else {
            format
        };
        let args = self.args(format, depth + 1)?;
        Some(Write { format, args })
    }

    fn elements(&mut self, count: usize, depth: usize) -> Option<Vec<Write<'t>>> {
        let format = self.format()?;
        // Each element takes at least one byte or none: bound the count by what is left.
        let mut elements = Vec::with_capacity(count.min(self.bytes.len()));
        for _ in 0..count {
            elements.push(self.format_value(format, depth)?);
        }
        Some(elements)
    }

    /// The arguments of `format`, in the order of their indices.
    fn args(&mut self, format: &str, depth: usize) -> Option<Vec<Arg<'t>>> {
        if depth > MAX_DEPTH {
            return None;
        }
        let mut params: Vec<_> = defmt_parser::parse(format, ParserMode::ForwardsCompatible)
            .ok()?
            .into_iter()
            .filter_map(|f| match f {
                Fragment::Parameter(p) => Some(p),
                Fragment::Literal(_) => None,
            })
            .collect();
        params.sort_by_key(|p| p.index);
        params.dedup_by_key(|p| p.index);
        let mut args = Vec::with_capacity(params.len());
        for param in params {
            let arg = match param.ty {
                Type::U8 => Arg::Uint(self.u8()?.into()),
                Type::U16 => Arg::Uint(self.u16()?.into()),
                Type::U32 | Type::Usize => Arg::Uint(self.u32()?.into()),
                Type::U64 => Arg::Uint(self.u64()?.into()),
                Type::U128 => Arg::Uint(self.u128()?),
                Type::I8 => Arg::Int(i8::from_le_bytes(self.array()?).into()),
                Type::I16 => Arg::Int(i16::from_le_bytes(self.array()?).into()),
                Type::I32 | Type::Isize => Arg::Int(i32::from_le_bytes(self.array()?).into()),
                Type::I64 => Arg::Int(i64::from_le_bytes(self.array()?).into()),
                Type::I128 => Arg::Int(i128::from_le_bytes(self.array()?)),
                Type::F32 => Arg::Float(f32::from_le_bytes(self.array()?).into()),
                Type::F64 => Arg::Float(f64::from_le_bytes(self.array()?)),
                Type::Bool => match self.u8()? {
                    0 => Arg::Bool(false),
                    1 => Arg::Bool(true),
                    _ => return None,
                },
                Type::Char => Arg::Char(char::from_u32(self.u32()?)?),
                Type::Str => {
                    let len = self.len()?;
                    Arg::Str(String::from_utf8(self.take(len)?.to_vec()).ok()?)
                }
                Type::IStr => Arg::Str(self.format()?.to_string()),
                Type::U8Slice => {
                    let len = self.len()?;
                    Arg::Bytes(self.take(len)?.to_vec())
                }
                Type::U8Array(len) => Arg::Bytes(self.take(len)?.to_vec()),
                Type::Debug | Type::Display => {
                    let end = self.bytes.iter().position(|&b| b == 0xff)?;
                    let text = std::str::from_utf8(self.take(end)?).ok()?.to_string();
                    self.take(1)?;
                    Arg::Text(text)
                }
                Type::Format => {
                    let format = self.format()?;
                    Arg::Format(self.format_value(format, depth)?)
                }
                Type::FormatSequence => {
                    let mut writes = Vec::new();
                    loop {
                        let index = self.u16()?;
                        if index == 0 {
                            break;
                        }
                        let format = self.strings.get(index)?;
                        let args = self.args(format, depth + 1)?;
                        writes.push(Write { format, args });
                    }
                    Arg::Sequence(writes)
                }
                Type::FormatSlice => {
                    let count = self.len()?;
                    Arg::Slice(self.elements(count, depth)?)
                }
                Type::FormatArray(count) => Arg::Slice(self.elements(count, depth)?),
                // Bit fields (`{0=0..4}`) are not read as data: no event uses them.
                Type::BitField(_) => return None,
            };
            args.push(arg);
        }
        Some(args)
    }
}

/// Undoes rzCOBS (defmt's framing, `0x00` between frames) on one frame without its
/// delimiter: `None` when the bytes are not valid rzCOBS.
///
/// rzCOBS is read backwards: a byte `0x01..=0x7f` is a bit map of the next 7 bytes (a set
/// bit, from the highest of the 7, is a zero byte, a clear one a byte taken from the
/// input); `0x80..=0xfe` is a zero followed by `(b & 0x7f) + 7` bytes taken; `0xff` is 134
/// bytes taken. The zeros the encoder added past the frame's end are cut again by the
/// frame's own length (the decoder of the frame stops where its format ends).
pub(crate) fn rzcobs_decode(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() * 2);
    let mut input = data.iter().rev().copied();
    while let Some(code) = input.next() {
        match code {
            0 => return None,
            0x01..=0x7f => {
                for bit in (0..7).rev() {
                    if code & (1 << bit) == 0 {
                        out.push(input.next()?);
                    } else {
                        out.push(0);
                    }
                }
            }
            0x80..=0xfe => {
                out.push(0);
                for _ in 0..(code & 0x7f) + 7 {
                    out.push(input.next()?);
                }
            }
            0xff => {
                for _ in 0..134 {
                    out.push(input.next()?);
                }
            }
        }
    }
    out.reverse();
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(entries: &[(u16, &str)]) -> Strings {
        Strings {
            entries: entries
                .iter()
                .map(|&(i, s)| (u64::from(i), s.to_string()))
                .collect(),
            timestamp: Some("{=u64:ms}".into()),
        }
    }

    #[test]
    fn a_frame_reads_into_nested_arguments() {
        let table = strings(&[
            (1, "{}"),
            (2, "{=__internal_FormatSequence}"),
            (3, "udp #{=u32} got {=str:?}"),
            (4, "Udp|Tcp"),
            (5, " as {}"),
        ]);
        let mut bytes = vec![1, 0];
        bytes.extend_from_slice(&1500u64.to_le_bytes()); // the timestamp
        bytes.extend_from_slice(&[2, 0]); // `{}` of a hand-written Format: a sequence
        bytes.extend_from_slice(&[3, 0]);
        bytes.extend_from_slice(&7u32.to_le_bytes());
        bytes.extend_from_slice(&2u32.to_le_bytes());
        bytes.extend_from_slice(b"hi");
        bytes.extend_from_slice(&[5, 0, 4, 0, 1]); // ` as Tcp` (variant 1)
        bytes.extend_from_slice(&[0, 0]); // the sequence's end
        let frame = table.frame(&bytes).expect("a frame");
        assert_eq!(frame.format, "{}");
        assert_eq!(frame.timestamp_seconds, Some(1.5));
        let writes = frame.args[0].writes().expect("writes");
        assert_eq!(writes[0].format, "udp #{=u32} got {=str:?}");
        assert_eq!(writes[0].args, [Arg::Uint(7), Arg::Str("hi".into())]);
        assert_eq!(writes[1].format, " as {}");
        assert_eq!(
            writes[1].args,
            [Arg::Format(Write {
                format: "Tcp",
                args: vec![]
            })]
        );
    }

    #[test]
    fn garbage_is_refused_not_a_panic() {
        let table = strings(&[(1, "{}"), (2, "{=__internal_FormatSequence}")]);
        assert!(table.frame(&[]).is_none());
        assert!(table.frame(&[9, 9]).is_none(), "an unknown index");
        // A sequence that refers to itself without end: bounded by the depth limit.
        let mut deep = vec![1, 0];
        deep.extend_from_slice(&0u64.to_le_bytes());
        deep.extend(std::iter::repeat_n([2u8, 0], 10_000).flatten());
        assert!(table.frame(&deep).is_none());
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    (rng % 6) as u8
                })
                .collect();
            let _ = table.frame(&bytes);
            let _ = rzcobs_decode(&bytes);
        }
    }

    #[test]
    fn rzcobs_gives_back_the_bytes() {
        // A byte map: 0x7f says all 7 are zeros; 0x00 inside is refused.
        assert_eq!(rzcobs_decode(&[0x7f]), Some(vec![0; 7]));
        // Read backwards: the map's highest bit (clear) takes the 5, the six others are zeros.
        assert_eq!(rzcobs_decode(&[5, 0x3f]), Some(vec![0, 0, 0, 0, 0, 0, 5]));
        assert_eq!(rzcobs_decode(&[1, 0]), None);
        assert_eq!(rzcobs_decode(&[0x3f]), None, "a byte missing");
    }
}
