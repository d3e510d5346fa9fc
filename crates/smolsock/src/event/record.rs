//! Events as data: [`Record`], the one serialized form of an [`Event`].
//!
//! The host prints it as JSON lines (`--json`); a board can send the same schema through any
//! serde format that needs no allocator. `docs/events.md` describes every field, and a test
//! here keeps that page and this derive in step.
//!
//! `Record` repeats the fields of [`Event`] on purpose: most kinds add or reshape keys
//! (a fixed `proto`, the [`Totals`](super::Totals) laid flat, a datagram's four views,
//! `idle_secs`, `unit`), which serde's derive can only do on a type of its own without an
//! allocator (`flatten` needs one), and the exhaustive `From` keeps the two in step.

use core::fmt::{self, Display, Formatter, Write};
use core::net::SocketAddrV4;

use serde::{Serialize, Serializer};

use super::{CloseReason, ConnId, DenyReason, Event, IperfSide, LossCause, Proto, Quoted, Rate};
use crate::error::Error;

/// An [`Event`] as one flat record: a tag `event` (the [`Event::kind`], in snake_case) and
/// the fields of that kind, always the same keys for one kind, whichever program and stack
/// emitted it. Absent values are `null`, never missing keys. Addresses are `"ip:port"`
/// strings (in human-readable formats such as JSON), CRC-32s 8 lower-case hex digits.
///
/// `Event` serializes as its `Record`; build one with `Record::from(&event)` to look at
/// the fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Record<'a> {
    /// [`Event::Bound`].
    Bound {
        /// Always UDP.
        proto: Proto,
        /// The local address.
        local: SocketAddrV4,
        /// Bound by the first send rather than by `bind`.
        auto: bool,
        /// For a sender, the largest datagram payload a send takes; `None` for a receiver.
        max_send: Option<usize>,
    },
    /// [`Event::Listening`].
    Listening {
        /// Always TCP.
        proto: Proto,
        /// The local address.
        local: SocketAddrV4,
        /// Connections that can complete their handshake before `accept`.
        backlog: usize,
    },
    /// [`Event::Connected`].
    Connected {
        /// Always TCP.
        proto: Proto,
        /// Connection number.
        conn: ConnId,
        /// Local address, with the ephemeral port.
        local: SocketAddrV4,
        /// The server.
        peer: SocketAddrV4,
    },
    /// [`Event::Accepted`].
    Accepted {
        /// Always TCP.
        proto: Proto,
        /// Connection number.
        conn: ConnId,
        /// The client.
        peer: SocketAddrV4,
    },
    /// [`Event::Sent`].
    Sent {
        /// UDP or TCP.
        proto: Proto,
        /// Connection number (TCP), `None` for UDP.
        conn: Option<ConnId>,
        /// Destination.
        to: SocketAddrV4,
        /// Bytes sent.
        len: usize,
    },
    /// [`Event::Received`].
    Received {
        /// UDP or TCP.
        proto: Proto,
        /// Connection number (TCP), `None` for UDP.
        conn: Option<ConnId>,
        /// The sender.
        from: SocketAddrV4,
        /// Bytes taken by the receive call.
        len: usize,
        /// Size of the datagram on the wire (UDP; for TCP the same as `len`).
        size: usize,
        /// `size > len`: the rest of the datagram was dropped.
        truncated: bool,
        /// The bytes as text: exact when they are UTF-8, otherwise each invalid sequence
        /// replaced by U+FFFD (as `String::from_utf8_lossy`).
        #[serde(serialize_with = "lossy_text")]
        text: &'a [u8],
        /// The bytes as the text line quotes them ([`Quoted`]): lossless, every byte that
        /// is not UTF-8 written `\xNN`.
        #[serde(serialize_with = "quoted_text")]
        quoted: &'a [u8],
    },
    /// [`Event::AwaitingReply`].
    AwaitingReply {
        /// Always TCP.
        proto: Proto,
        /// Connection number.
        conn: ConnId,
    },
    /// [`Event::PeerClosed`].
    PeerClosed {
        /// Always TCP.
        proto: Proto,
        /// Connection number.
        conn: ConnId,
        /// The peer.
        peer: SocketAddrV4,
    },
    /// [`Event::Closed`], with the fields of its [`Totals`](super::Totals).
    Closed {
        /// UDP or TCP.
        proto: Proto,
        /// Connection number (TCP), `None` for UDP.
        conn: Option<ConnId>,
        /// Bytes received.
        bytes_in: u64,
        /// Bytes sent.
        bytes_out: u64,
        /// Datagrams, or `recv` calls that returned data.
        messages_in: u64,
        /// CRC-32 of the received bytes.
        #[serde(serialize_with = "hex8")]
        crc32_in: u32,
        /// CRC-32 of the sent bytes.
        #[serde(serialize_with = "hex8")]
        crc32_out: u32,
    },
    /// [`Event::Closing`].
    Closing {
        /// Always TCP.
        proto: Proto,
        /// Connection number.
        conn: ConnId,
        /// The peer.
        peer: SocketAddrV4,
        /// Why, by its [`CloseReason::as_str`] name.
        #[serde(serialize_with = "reason_name")]
        reason: CloseReason,
        /// The idle timeout, for [`CloseReason::Idle`].
        idle_secs: Option<u64>,
        /// A reset rather than a FIN.
        reset: bool,
    },
    /// [`Event::ListenerClosed`].
    ListenerClosed {
        /// Always TCP.
        proto: Proto,
        /// The port it listened on.
        port: u16,
    },
    /// [`Event::Lost`].
    Lost {
        /// Lost since the last report.
        count: u64,
        /// What `count` counts: `datagrams` or `frames` ([`LossCause::unit`]).
        unit: &'static str,
        /// Lost in all, so far.
        total: u64,
        /// Where they were lost.
        cause: LossCause,
    },
    /// [`Event::IperfTest`].
    IperfTest {
        /// The control connection.
        conn: ConnId,
        /// The other end of it.
        peer: SocketAddrV4,
        /// Parallel data connections.
        streams: u16,
        /// The test's length in seconds (0: ended by a byte count).
        secs: u32,
        /// The server sends.
        reverse: bool,
    },
    /// [`Event::IperfInterval`].
    IperfInterval {
        /// `"sent"` or `"received"`, by this side.
        direction: &'static str,
        /// Start, in microseconds since the test started.
        start_us: u64,
        /// End, in microseconds since the test started.
        end_us: u64,
        /// Bytes moved in the interval.
        bytes: u64,
        /// The interval's rate.
        bits_per_second: u64,
    },
    /// [`Event::IperfResult`].
    IperfResult {
        /// Whose count: `"local"` or `"remote"`.
        #[serde(serialize_with = "side_name")]
        side: IperfSide,
        /// `"sent"` or `"received"`, by that side.
        direction: &'static str,
        /// Bytes, over all streams.
        bytes: u64,
        /// How long that side's test ran.
        duration_us: u64,
        /// Streams counted.
        streams: u16,
        /// The test's rate.
        bits_per_second: u64,
    },
    /// [`Event::IperfUdp`].
    IperfUdp {
        /// Whose count: `"local"` or `"remote"`.
        #[serde(serialize_with = "side_name")]
        side: IperfSide,
        /// `"sent"` or `"received"`, by that side.
        direction: &'static str,
        /// Datagrams sent, or the highest count received.
        packets: u64,
        /// Datagrams lost (0 for a sender).
        lost: u64,
        /// Datagrams out of order (`null` for the peer's count, which does not carry it).
        out_of_order: Option<u64>,
        /// Jitter in microseconds.
        jitter_us: u64,
    },
    /// [`Event::IperfDenied`].
    IperfDenied {
        /// Who was turned away.
        peer: SocketAddrV4,
        /// Why: `"busy"` or `"cookie"`.
        #[serde(serialize_with = "deny_name")]
        reason: DenyReason,
    },
    /// [`Event::Error`].
    Error {
        /// Connection number, when the error belongs to one.
        conn: Option<ConnId>,
        /// The peer involved, when there is one.
        peer: Option<SocketAddrV4>,
        /// The error's message, as the text line says it.
        #[serde(serialize_with = "message")]
        error: Error,
    },
}

impl<'a> From<&Event<'a>> for Record<'a> {
    fn from(event: &Event<'a>) -> Self {
        match *event {
            Event::Bound {
                local,
                auto,
                max_send,
            } => Record::Bound {
                proto: Proto::Udp,
                local,
                auto,
                max_send,
            },
            Event::Listening { local, backlog } => Record::Listening {
                proto: Proto::Tcp,
                local,
                backlog,
            },
            Event::Connected { conn, local, peer } => Record::Connected {
                proto: Proto::Tcp,
                conn,
                local,
                peer,
            },
            Event::Accepted { conn, peer } => Record::Accepted {
                proto: Proto::Tcp,
                conn,
                peer,
            },
            Event::Sent {
                proto,
                conn,
                to,
                len,
            } => Record::Sent {
                proto,
                conn,
                to,
                len,
            },
            Event::Received {
                proto,
                conn,
                from,
                data,
                size,
            } => Record::Received {
                proto,
                conn,
                from,
                len: data.len(),
                size,
                truncated: size > data.len(),
                text: data,
                quoted: data,
            },
            Event::AwaitingReply { conn } => Record::AwaitingReply {
                proto: Proto::Tcp,
                conn,
            },
            Event::PeerClosed { conn, peer } => Record::PeerClosed {
                proto: Proto::Tcp,
                conn,
                peer,
            },
            Event::Closed {
                proto,
                conn,
                totals,
            } => Record::Closed {
                proto,
                conn,
                bytes_in: totals.bytes_in,
                bytes_out: totals.bytes_out,
                messages_in: totals.messages_in,
                crc32_in: totals.crc_in,
                crc32_out: totals.crc_out,
            },
            Event::Closing {
                conn,
                peer,
                reason,
                reset,
            } => Record::Closing {
                proto: Proto::Tcp,
                conn,
                peer,
                reason,
                idle_secs: match reason {
                    CloseReason::Idle { secs } => Some(secs),
                    CloseReason::Shutdown => None,
                },
                reset,
            },
            Event::ListenerClosed { port } => Record::ListenerClosed {
                proto: Proto::Tcp,
                port,
            },
            Event::Lost {
                count,
                total,
                cause,
            } => Record::Lost {
                count,
                unit: cause.unit(),
                total,
                cause,
            },
            Event::IperfTest {
                conn,
                peer,
                streams,
                secs,
                reverse,
            } => Record::IperfTest {
                conn,
                peer,
                streams,
                secs,
                reverse,
            },
            Event::IperfInterval {
                start_us,
                end_us,
                bytes,
                sending,
            } => Record::IperfInterval {
                direction: direction(sending),
                start_us,
                end_us,
                bytes,
                bits_per_second: Rate {
                    bytes,
                    micros: end_us.saturating_sub(start_us),
                }
                .bits_per_second(),
            },
            Event::IperfResult {
                side,
                sending,
                bytes,
                micros,
                streams,
            } => Record::IperfResult {
                side,
                direction: direction(sending),
                bytes,
                duration_us: micros,
                streams,
                bits_per_second: Rate { bytes, micros }.bits_per_second(),
            },
            Event::IperfUdp {
                side,
                sending,
                packets,
                lost,
                out_of_order,
                jitter_us,
            } => Record::IperfUdp {
                side,
                direction: direction(sending),
                packets,
                lost,
                out_of_order,
                jitter_us,
            },
            Event::IperfDenied { peer, reason } => Record::IperfDenied { peer, reason },
            Event::Error { conn, peer, error } => Record::Error { conn, peer, error },
        }
    }
}

/// An event serializes as its [`Record`].
impl Serialize for Event<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Record::from(self).serialize(serializer)
    }
}

/// A transport serializes by its [`Proto::as_str`] name, as a unit variant.
impl Serialize for Proto {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_unit_variant("Proto", *self as u32, self.as_str())
    }
}

/// A cause of loss serializes by its [`LossCause::as_str`] name, as a unit variant.
impl Serialize for LossCause {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_unit_variant("LossCause", *self as u32, self.as_str())
    }
}

/// Bytes as text, each invalid UTF-8 sequence as U+FFFD.
struct Lossy<'a>(&'a [u8]);

impl Display for Lossy<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_char(char::REPLACEMENT_CHARACTER)?;
            }
        }
        Ok(())
    }
}

fn lossy_text<S: Serializer>(data: &&[u8], serializer: S) -> Result<S::Ok, S::Error> {
    match core::str::from_utf8(data) {
        Ok(text) => serializer.serialize_str(text),
        Err(_) => serializer.collect_str(&Lossy(data)),
    }
}

fn quoted_text<S: Serializer>(data: &&[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&Quoted(data))
}

fn hex8<S: Serializer>(value: &u32, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&format_args!("{value:08x}"))
}

fn direction(sending: bool) -> &'static str {
    if sending { "sent" } else { "received" }
}

fn side_name<S: Serializer>(side: &IperfSide, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(side.as_str())
}

fn deny_name<S: Serializer>(reason: &DenyReason, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(reason.as_str())
}

fn reason_name<S: Serializer>(reason: &CloseReason, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(reason.as_str())
}

fn message<S: Serializer>(value: &impl Display, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::collections::{BTreeMap, BTreeSet};
    use std::string::{String, ToString};
    use std::vec::Vec;
    use std::{format, vec};

    use serde_json::Value;

    use super::*;
    use crate::event::Totals;

    /// The page that documents the schema.
    const DOC: &str = include_str!("../../../../docs/events.md");

    fn addr(last: u8, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new([192, 168, 69, last].into(), port)
    }

    /// One event of every kind.
    fn samples() -> Vec<Event<'static>> {
        let peer = addr(100, 40000);
        let local = addr(1, 9090);
        vec![
            Event::Bound {
                local,
                auto: false,
                max_send: None,
            },
            Event::Listening { local, backlog: 8 },
            Event::Connected {
                conn: 1,
                local: addr(1, 49152),
                peer,
            },
            Event::Accepted { conn: 1, peer },
            Event::Sent {
                proto: Proto::Tcp,
                conn: Some(1),
                to: peer,
                len: 5,
            },
            Event::Received {
                proto: Proto::Udp,
                conn: None,
                from: peer,
                data: b"hello\n",
                size: 6,
            },
            Event::AwaitingReply { conn: 1 },
            Event::PeerClosed { conn: 1, peer },
            Event::Closed {
                proto: Proto::Tcp,
                conn: Some(1),
                totals: Totals {
                    bytes_in: 11,
                    bytes_out: 11,
                    messages_in: 2,
                    crc_in: 0x0d4a_1185,
                    crc_out: 0x0d4a_1185,
                },
            },
            Event::Closing {
                conn: 1,
                peer,
                reason: CloseReason::Idle { secs: 30 },
                reset: false,
            },
            Event::ListenerClosed { port: 9090 },
            Event::Lost {
                count: 3,
                total: 5,
                cause: LossCause::SocketBuffer,
            },
            Event::IperfTest {
                conn: 1,
                peer,
                streams: 2,
                secs: 10,
                reverse: false,
            },
            Event::IperfInterval {
                start_us: 1_000_000,
                end_us: 2_000_000,
                bytes: 117_440_512,
                sending: false,
            },
            Event::IperfResult {
                side: IperfSide::Remote,
                sending: true,
                bytes: 1_174_405_120,
                micros: 10_000_412,
                streams: 2,
            },
            Event::IperfUdp {
                side: IperfSide::Local,
                sending: false,
                packets: 1712,
                lost: 3,
                out_of_order: Some(1),
                jitter_us: 12,
            },
            Event::IperfDenied {
                peer,
                reason: DenyReason::Busy,
            },
            Event::Error {
                conn: None,
                peer: Some(peer),
                error: Error::ConnectionRefused,
            },
        ]
    }

    fn json(value: &impl Serialize) -> Value {
        serde_json::to_value(value).unwrap()
    }

    /// The keys of a serialized object, nested objects' keys as `outer.inner`.
    fn keys(value: &Value) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for (key, inner) in value.as_object().expect("an object") {
            out.insert(key.clone());
            if inner.is_object() {
                out.extend(keys(inner).into_iter().map(|k| format!("{key}.{k}")));
            }
        }
        out
    }

    /// One `### \`name\`` section of docs/events.md: the keys its table lists (every
    /// backquoted word of a row's first cell) and its example lines.
    #[derive(Default, Debug)]
    struct Section {
        keys: BTreeSet<String>,
        examples: Vec<Value>,
    }

    fn sections() -> BTreeMap<String, Section> {
        let mut out = BTreeMap::<String, Section>::new();
        let mut current = None;
        let mut in_example = false;
        for line in DOC.lines() {
            if line.starts_with('#') {
                // A heading: "### `name`" starts a kind's section, any other ends it.
                current = line
                    .strip_prefix("### `")
                    .and_then(|l| l.strip_suffix('`'))
                    .map(str::to_string);
                if let Some(name) = &current {
                    out.entry(name.clone()).or_default();
                }
                in_example = false;
                continue;
            }
            let Some(section) = current.as_ref().and_then(|name| out.get_mut(name)) else {
                continue;
            };
            if line.starts_with("```") {
                in_example = line == "```json";
            } else if in_example {
                let example = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("docs/events.md example {line}: {e}"));
                section.examples.push(example);
            } else if let Some(first) = line.strip_prefix('|').and_then(|l| l.split('|').next()) {
                let words = first.split('`').skip(1).step_by(2);
                section.keys.extend(words.map(str::to_string));
            }
        }
        out
    }

    /// Keys every line has, documented once under "Every line" rather than per event.
    const EVERY_LINE: [&str; 2] = ["event", "t"];

    /// Checks one documented kind against the serialized `value` of that kind.
    fn check_section(sections: &BTreeMap<String, Section>, kind: &str, value: &Value) {
        let section = sections
            .get(kind)
            .unwrap_or_else(|| panic!("docs/events.md has no section \"### `{kind}`\""));
        let mut emitted = keys(value);
        emitted.remove("event");
        assert_eq!(
            section.keys, emitted,
            "docs/events.md, `{kind}`: the table's keys (left) differ from what is serialized \
             (right)"
        );
        assert!(
            !section.examples.is_empty(),
            "docs/events.md, `{kind}`: no example line"
        );
        for example in &section.examples {
            assert_eq!(example["event"], kind, "docs/events.md example {example}");
            let mut want = keys(value);
            want.extend(EVERY_LINE.map(String::from));
            assert_eq!(keys(example), want, "docs/events.md example {example}");
            // Each documented value has the type the derive gives it (null allowed both
            // ways: the sample may leave out what the example has, and back).
            for key in keys(value) {
                let (got, doc) = (pointer(value, &key), pointer(example, &key));
                let same = std::mem::discriminant(got) == std::mem::discriminant(doc);
                assert!(
                    same || got.is_null() || doc.is_null(),
                    "docs/events.md `{kind}` example: `{key}` is {doc}, serialized {got}"
                );
            }
        }
    }

    fn pointer<'v>(value: &'v Value, dotted: &str) -> &'v Value {
        value
            .pointer(&format!("/{}", dotted.replace('.', "/")))
            .unwrap_or(&Value::Null)
    }

    #[test]
    fn docs_describe_every_event_with_its_keys() {
        let sections = sections();
        let mut seen = BTreeSet::new();
        for event in samples() {
            // A new kind of event fails to compile here until it has a sample above (and
            // then fails below until docs/events.md describes it).
            match event {
                Event::Bound { .. }
                | Event::Listening { .. }
                | Event::Connected { .. }
                | Event::Accepted { .. }
                | Event::Sent { .. }
                | Event::Received { .. }
                | Event::AwaitingReply { .. }
                | Event::PeerClosed { .. }
                | Event::Closed { .. }
                | Event::Closing { .. }
                | Event::ListenerClosed { .. }
                | Event::Lost { .. }
                | Event::IperfTest { .. }
                | Event::IperfInterval { .. }
                | Event::IperfResult { .. }
                | Event::IperfUdp { .. }
                | Event::IperfDenied { .. }
                | Event::Error { .. } => {}
            }
            seen.insert(event.kind());
            check_section(&sections, event.kind(), &json(&event));
        }
        assert_eq!(seen.len(), 18, "one sample of every kind");
        let documented: BTreeSet<&str> = sections
            .keys()
            .map(String::as_str)
            .filter(|&kind| kind != "faults")
            .collect();
        assert_eq!(
            documented, seen,
            "docs/events.md documents these kinds, no others"
        );
        assert!(
            DOC.contains("| `event` |") && DOC.contains("| `t` |"),
            "docs/events.md describes the keys of every line"
        );
    }

    #[cfg(feature = "faults")]
    #[test]
    fn docs_describe_the_fault_counters() {
        let stats = crate::faults::FaultStats::default();
        check_section(&sections(), "faults", &json(&stats));
    }

    #[test]
    fn the_tag_is_the_kind_and_keys_do_not_depend_on_values() {
        for event in samples() {
            let value = json(&event);
            assert_eq!(value["event"], event.kind(), "{value}");
            // Every field is present, `null` when absent.
            let emptied = match event {
                Event::Bound { local, auto, .. } => Event::Bound {
                    local,
                    auto,
                    max_send: Some(1472),
                },
                Event::Sent { to, len, .. } => Event::Sent {
                    proto: Proto::Udp,
                    conn: None,
                    to,
                    len,
                },
                Event::Closing { conn, peer, .. } => Event::Closing {
                    conn,
                    peer,
                    reason: CloseReason::Shutdown,
                    reset: true,
                },
                Event::Error { .. } => Event::Error {
                    conn: Some(2),
                    peer: None,
                    error: Error::MessageTooLarge {
                        len: 2000,
                        max: 1472,
                    },
                },
                other => other,
            };
            assert_eq!(keys(&json(&emptied)), keys(&value), "{event:?}");
        }
    }

    #[test]
    fn fields_carry_the_values_a_user_reads() {
        let peer = addr(100, 4000);
        let value = json(&Event::Received {
            proto: Proto::Udp,
            conn: None,
            from: peer,
            data: b"zz",
            size: 2000,
        });
        assert_eq!(value["from"], "192.168.69.100:4000");
        assert_eq!(value["proto"], "udp");
        assert_eq!(value["conn"], Value::Null);
        assert_eq!(value["len"], 2);
        assert_eq!(value["size"], 2000);
        assert_eq!(value["truncated"], true);
        assert_eq!(value["text"], "zz");
        assert_eq!(value["quoted"], "\"zz\"");

        let closing = json(&Event::Closing {
            conn: 4,
            peer,
            reason: CloseReason::Shutdown,
            reset: true,
        });
        assert_eq!(closing["reason"], "shutdown");
        assert_eq!(closing["idle_secs"], Value::Null);
        assert_eq!(closing["reset"], true);

        let closed = json(&Event::Closed {
            proto: Proto::Udp,
            conn: None,
            totals: Totals {
                crc_in: 0x0d4a_1185,
                crc_out: 0,
                ..Totals::default()
            },
        });
        assert_eq!(closed["crc32_in"], "0d4a1185");
        assert_eq!(closed["crc32_out"], "00000000");

        let lost = json(&Event::Lost {
            count: 1,
            total: 1,
            cause: LossCause::DeviceQueue,
        });
        assert_eq!(lost["cause"], "device_queue");
        assert_eq!(lost["unit"], "frames");

        let error = json(&Event::Error {
            conn: Some(1),
            peer: None,
            error: Error::ConnectionReset,
        });
        assert_eq!(error["error"], "connection reset by peer");
    }

    #[test]
    fn a_board_without_an_allocator_writes_the_same_lines() {
        let mut buf = [0u8; 1024];
        for event in samples() {
            let len = serde_json_core::to_slice(&event, &mut buf).unwrap();
            let line = core::str::from_utf8(&buf[..len]).unwrap();
            let board: Value = serde_json::from_str(line).unwrap();
            assert_eq!(board, json(&event), "{line}");
        }
    }

    /// Reads a `quoted` value back into bytes, by the rules docs/events.md gives.
    fn unquote(quoted: &str) -> Vec<u8> {
        let inner = quoted
            .strip_prefix('"')
            .and_then(|q| q.strip_suffix('"'))
            .expect("in double quotes");
        let mut out = Vec::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                continue;
            }
            let plain = match chars.next().expect("an escape") {
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                '0' => '\0',
                '\\' => '\\',
                '"' => '"',
                '\'' => '\'',
                'x' => {
                    let hex: String = chars.by_ref().take(2).collect();
                    out.push(u8::from_str_radix(&hex, 16).expect("two hex digits"));
                    continue;
                }
                'u' => {
                    assert_eq!(chars.next(), Some('{'));
                    let hex: String = chars.by_ref().take_while(|&c| c != '}').collect();
                    char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap()
                }
                other => panic!("unknown escape \\{other}"),
            };
            out.extend_from_slice(plain.encode_utf8(&mut [0; 4]).as_bytes());
        }
        out
    }

    #[test]
    fn quoted_gives_back_every_byte_and_text_reads_as_utf8() {
        let mut samples: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b, b'a', b]).collect();
        samples.push("hello 你好 \"q\" \\x41 \u{301}\t\r\n\0 end\u{7f}".into());
        samples.push(b"\xe4\xbd\xa0\xe5\xa5 cut in a character, \xff\xfe".to_vec());
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..300 {
            let len = (x % 50) as usize;
            let bytes = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            samples.push(bytes);
        }
        let from = addr(100, 4000);
        for data in &samples {
            let line = serde_json::to_string(&Event::Received {
                proto: Proto::Udp,
                conn: None,
                from,
                data,
                size: data.len(),
            })
            .unwrap();
            let value: Value = serde_json::from_str(&line).unwrap();
            let quoted = value["quoted"].as_str().unwrap();
            assert_eq!(unquote(quoted), *data, "{line}");
            assert_eq!(
                quoted,
                Quoted(data).to_string(),
                "as the text line quotes it"
            );
            assert_eq!(value["text"], *String::from_utf8_lossy(data), "{line}");
        }
    }
}
