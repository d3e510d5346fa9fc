//! A board's events rebuilt from the arguments of their defmt frames.
//!
//! The board logs each event with `defmt::info!("{}", event)`, and the event's
//! `defmt::Format` (crates/smolsock/src/event/format.rs) is a sequence of `write!` calls
//! whose format strings say which kind and variant it is, and whose arguments are the
//! event's fields: a port as `{=u16}`, an address as the nested `Format` of a
//! `SocketAddrV4`, a payload as `{=str:?}` (UTF-8) or as pieces and escapes. This module
//! reads them back into a [`smolsock::Event`], matching the format strings of that file
//! exactly (the `events` firmware's test keeps the two in step).
//!
//! Where the text rounds or leaves out a field of the JSON record (`messages_in` of a
//! close, the microseconds of an iperf3 interval or result), the emulated board sends it
//! in a frame of its own just before the event, `record: KEY={=u64} ...`
//! (boards/qemu-lm3s6965's `Board::log`); [`Extra`] holds those values for the event that
//! follows.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Mutex;

use smolsock::Error;
use smolsock::event::{CloseReason, DenyReason, Event, IperfSide, LossCause, Proto, Totals};

use crate::frames::{Arg, Write};

/// The format string that starts a frame of exact values for the next event.
pub(crate) const RECORD_PREFIX: &str = "record: ";

/// Exact values of the next event's fields, from a `record: ` frame, by the keys of the
/// JSON record (`messages_in`, `start_us`, `end_us`, `duration_us`).
#[derive(Debug, Default, Clone)]
pub(crate) struct Extra(HashMap<String, u64>);

impl Extra {
    /// Reads a `record: KEY={=u64} KEY={=u64}` frame: each key is the literal text before a
    /// parameter, up to its `=`.
    pub(crate) fn parse(format: &str, args: &[Arg<'_>]) -> Option<Extra> {
        let rest = format.strip_prefix(RECORD_PREFIX)?;
        let keys = rest
            .split("{=u64}")
            .map(|part| part.trim().trim_end_matches('='))
            .filter(|key| !key.is_empty());
        let values = args.iter().map(Arg::uint);
        let mut extra = HashMap::new();
        for (key, value) in keys.zip(values) {
            extra.insert(key.to_string(), u64::try_from(value?).ok()?);
        }
        Some(Extra(extra))
    }

    fn get(&self, key: &str) -> Option<u64> {
        self.0.get(key).copied()
    }
}

/// An event with its payload bytes of its own.
#[derive(Debug, Clone)]
pub struct OwnedEvent {
    /// The event; for [`Event::Received`], `data` is empty here and [`event`](Self::event)
    /// puts `payload` in.
    event: Event<'static>,
    payload: Vec<u8>,
    /// The fields the board's text did not carry and no `record:` frame gave: the JSON
    /// record shows them as `null`.
    pub(crate) unknown: Vec<&'static str>,
}

impl OwnedEvent {
    /// The event, borrowing its payload.
    pub fn event(&self) -> Event<'_> {
        match self.event {
            Event::Received {
                proto,
                conn,
                from,
                size,
                ..
            } => Event::Received {
                proto,
                conn,
                from,
                data: &self.payload,
                size,
            },
            other => other,
        }
    }

    /// Names of JSON fields the board did not send (shown as `null`): none from the
    /// emulated board, whose `record:` frames carry what its text rounds.
    pub fn unknown_fields(&self) -> &[&'static str] {
        &self.unknown
    }
}

/// A string that lives as long as the program: `Error` holds `&'static str` texts. Each
/// distinct text is kept once (the board's texts are the firmware's constants).
fn interned(text: &str) -> &'static str {
    static TEXTS: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut texts = TEXTS.lock().unwrap_or_else(|e| e.into_inner());
    let texts = texts.get_or_insert_with(HashSet::new);
    if let Some(&known) = texts.get(text) {
        return known;
    }
    let leaked: &'static str = Box::leak(text.to_string().into_boxed_str());
    texts.insert(leaked);
    leaked
}

fn u16_of(arg: &Arg<'_>) -> Option<u16> {
    u16::try_from(arg.uint()?).ok()
}

fn u32_of(arg: &Arg<'_>) -> Option<u32> {
    u32::try_from(arg.uint()?).ok()
}

fn u64_of(arg: &Arg<'_>) -> Option<u64> {
    u64::try_from(arg.uint()?).ok()
}

fn usize_of(arg: &Arg<'_>) -> Option<usize> {
    usize::try_from(arg.uint()?).ok()
}

fn i32_of(arg: &Arg<'_>) -> Option<i32> {
    i32::try_from(arg.int()?).ok()
}

fn str_of(arg: &Arg<'_>) -> Option<&'static str> {
    match arg {
        Arg::Str(text) => Some(interned(text)),
        _ => None,
    }
}

/// The only `write!` of a `Format` value, its format string and arguments.
fn single<'a, 't>(arg: &'a Arg<'t>) -> Option<(&'t str, &'a [Arg<'t>])> {
    match arg.writes()? {
        [Write { format, args }] => Some((format, args)),
        _ => None,
    }
}

/// defmt's `Format` of a `SocketAddrV4`: `{}:{}` of the `Ipv4Addr` (`{}.{}.{}.{}` of its
/// octets) and the port.
fn addr(arg: &Arg<'_>) -> Option<SocketAddrV4> {
    let ("{}:{}", [ip, port]) = single(arg)? else {
        return None;
    };
    let ("{}.{}.{}.{}", [a, b, c, d]) = single(ip)? else {
        return None;
    };
    let octet = |arg: &Arg<'_>| u8::try_from(arg.uint()?).ok();
    let ip = Ipv4Addr::new(octet(a)?, octet(b)?, octet(c)?, octet(d)?);
    Some(SocketAddrV4::new(ip, u16_of(port)?))
}

/// `Who`: `udp`, `tcp`, `udp #N`, `tcp #N`.
fn who(arg: &Arg<'_>) -> Option<(Proto, Option<u32>)> {
    Some(match single(arg)? {
        ("udp", []) => (Proto::Udp, None),
        ("tcp", []) => (Proto::Tcp, None),
        ("udp #{=u32}", [conn]) => (Proto::Udp, Some(u32_of(conn)?)),
        ("tcp #{=u32}", [conn]) => (Proto::Tcp, Some(u32_of(conn)?)),
        _ => return None,
    })
}

/// `Quoted`: a UTF-8 payload as one `{=str:?}`; any other as `"`, pieces of whole
/// characters (`{=str}`) and escapes, `"`. The bytes come back exactly.
fn quoted(arg: &Arg<'_>) -> Option<Vec<u8>> {
    let writes = arg.writes()?;
    if let [Write { format, args }] = writes
        && *format == "{=str:?}"
    {
        let [Arg::Str(text)] = args.as_slice() else {
            return None;
        };
        return Some(text.as_bytes().to_vec());
    }
    let inner = writes.strip_prefix(&[quote()])?.strip_suffix(&[quote()])?;
    let mut bytes = Vec::new();
    for Write { format, args } in inner {
        match (*format, args.as_slice()) {
            ("{=str}", [Arg::Str(text)]) => bytes.extend_from_slice(text.as_bytes()),
            ("\\0", []) => bytes.push(0),
            ("\\t", []) => bytes.push(b'\t'),
            ("\\n", []) => bytes.push(b'\n'),
            ("\\r", []) => bytes.push(b'\r'),
            ("\\\"", []) => bytes.push(b'"'),
            ("\\\\", []) => bytes.push(b'\\'),
            ("\\u{{{=u8:x}}}" | "\\x{=u8:02x}", [byte]) => {
                bytes.push(u8::try_from(byte.uint()?).ok()?);
            }
            _ => return None,
        }
    }
    Some(bytes)
}

fn quote() -> Write<'static> {
    Write {
        format: "\"",
        args: Vec::new(),
    }
}

/// `Seconds`: `{=u64}.{=u64:02}`, hundredths of a second, in microseconds.
fn seconds(arg: &Arg<'_>) -> Option<u64> {
    let ("{=u64}.{=u64:02}", [whole, hundredths]) = single(arg)? else {
        return None;
    };
    let hundredths = u64_of(whole)?
        .checked_mul(100)?
        .checked_add(u64_of(hundredths)?)?;
    hundredths.checked_mul(10_000)
}

/// `sent` or `received`: whether sending.
fn direction(write: &Write<'_>) -> Option<bool> {
    match write.format {
        "sent" => Some(true),
        "received" => Some(false),
        _ => None,
    }
}

/// An `Error`, from its `Format` (the same words as its `Display`).
fn error(arg: &Arg<'_>) -> Option<Error> {
    let writes = arg.writes()?;
    let (first, rest) = writes.split_first()?;
    let args = first.args.as_slice();
    let error = match (first.format, args) {
        ("operation would block", []) => Error::WouldBlock,
        ("no free socket in the pool", []) => Error::NoFreeSocket,
        ("no free listener slot", []) => Error::NoFreeListener,
        ("no free ephemeral port", []) => Error::NoEphemeralPort,
        ("port {=u16} is already in use", [port]) => Error::AddrInUse {
            port: u16_of(port)?,
        },
        ("port 0 is not a valid port here", []) => Error::InvalidPort,
        ("address is not reachable (unspecified address, port 0 or no route)", []) => {
            Error::Unaddressable
        }
        ("connection refused", []) => Error::ConnectionRefused,
        ("connection reset by peer", []) => Error::ConnectionReset,
        ("timed out", []) => Error::TimedOut,
        ("socket is not connected", []) => Error::NotConnected,
        ("message of {=usize} bytes is larger than the {=usize} bytes that fit", [len, max]) => {
            Error::MessageTooLarge {
                len: usize_of(len)?,
                max: usize_of(max)?,
            }
        }
        ("the program takes no more input", []) => Error::InputClosed,
        ("no client is waiting for a reply", []) => Error::NobodyWaiting,
        ("invalid configuration: {=str}", [what]) => Error::InvalidConfig(str_of(what)?),
        ("permission denied (ports below 1024 need privileges)", []) => Error::PermissionDenied,
        ("operating system error {=i32}", [errno]) => Error::Os(i32_of(errno)?),
        (
            "stale socket handle: its socket was closed (and may serve another connection now)",
            [],
        ) => Error::StaleHandle,
        ("iperf3 protocol error: {=str}", [what]) => Error::Protocol(str_of(what)?),
        ("not supported: {=str}", [what]) => Error::Unsupported(str_of(what)?),
        ("the iperf3 server is busy running a test (access denied)", []) => Error::AccessDenied,
        ("the iperf3 peer failed with its error {=i32}", [code]) => {
            // Then, maybe, ` ({=str})` (the code's meaning) and `, errno {=i32}`.
            let errno = rest
                .iter()
                .find(|w| w.format == ", errno {=i32}")
                .and_then(|w| w.args.first())
                .map_or(Some(0), i32_of)?;
            return Some(Error::PeerError {
                code: i32_of(code)?,
                errno,
            });
        }
        ("the iperf3 peer ended the test early", []) => Error::PeerTerminated,
        ("remote stack: {=str}", [what]) => Error::Remote(str_of(what)?),
        _ => return None,
    };
    rest.is_empty().then_some(error)
}

/// The event a frame `info!("{}", event)` carries, if its argument is one: `arg` is the
/// frame's one argument, `extra` the values of a `record:` frame just before it.
pub(crate) fn rebuild(arg: &Arg<'_>, extra: &Extra) -> Option<OwnedEvent> {
    let writes = arg.writes()?;
    let (first, rest) = writes.split_first()?;
    let mut payload = Vec::new();
    let mut unknown = Vec::new();
    let mut exact = |key: &'static str, rounded: u64| match extra.get(key) {
        Some(value) => value,
        None => {
            unknown.push(key);
            rounded
        }
    };
    let formats: Vec<&str> = rest.iter().map(|w| w.format).collect();
    let event = match (first.format, first.args.as_slice(), formats.as_slice()) {
        (
            "udp bound {} (ephemeral port, bound by the first send; datagrams up to {=usize} bytes)",
            [local, max],
            [],
        ) => Event::Bound {
            local: addr(local)?,
            auto: true,
            max_send: Some(usize_of(max)?),
        },
        ("udp bound {} (ephemeral port, bound by the first send)", [local], []) => Event::Bound {
            local: addr(local)?,
            auto: true,
            max_send: None,
        },
        ("udp bound {} (datagrams up to {=usize} bytes)", [local, max], []) => Event::Bound {
            local: addr(local)?,
            auto: false,
            max_send: Some(usize_of(max)?),
        },
        ("udp bound {}", [local], []) => Event::Bound {
            local: addr(local)?,
            auto: false,
            max_send: None,
        },
        ("tcp listening {} backlog {=usize}", [local, backlog], []) => Event::Listening {
            local: addr(local)?,
            backlog: usize_of(backlog)?,
        },
        ("tcp #{=u32} connected {} -> {}", [conn, local, peer], []) => Event::Connected {
            conn: u32_of(conn)?,
            local: addr(local)?,
            peer: addr(peer)?,
        },
        ("tcp #{=u32} accepted {}", [conn, peer], []) => Event::Accepted {
            conn: u32_of(conn)?,
            peer: addr(peer)?,
        },
        ("{} sent {=usize} bytes to {}", [w, len, to], []) => {
            let (proto, conn) = who(w)?;
            Event::Sent {
                proto,
                conn,
                to: addr(to)?,
                len: usize_of(len)?,
            }
        }
        ("{} received {=usize} bytes from {}: {}", [w, size, from, data], []) => {
            let (proto, conn) = who(w)?;
            payload = quoted(data)?;
            Event::Received {
                proto,
                conn,
                from: addr(from)?,
                data: &[],
                size: usize_of(size)?,
            }
        }
        (
            "{} received {=usize} bytes from {} (TRUNCATED to {=usize} bytes, the rest dropped): {}",
            [w, size, from, len, data],
            [],
        ) => {
            let (proto, conn) = who(w)?;
            payload = quoted(data)?;
            if payload.len() != usize_of(len)? {
                return None;
            }
            Event::Received {
                proto,
                conn,
                from: addr(from)?,
                data: &[],
                size: usize_of(size)?,
            }
        }
        ("tcp #{=u32} waiting for a reply line on stdin", [conn], []) => Event::AwaitingReply {
            conn: u32_of(conn)?,
        },
        ("tcp #{=u32} peer {} closed (recv returned 0 bytes)", [conn, peer], []) => {
            Event::PeerClosed {
                conn: u32_of(conn)?,
                peer: addr(peer)?,
            }
        }
        (
            "{} closed: in {=u64} bytes crc32 {=u32:08x}, out {=u64} bytes crc32 {=u32:08x}",
            [w, bytes_in, crc_in, bytes_out, crc_out],
            [],
        ) => {
            let (proto, conn) = who(w)?;
            Event::Closed {
                proto,
                conn,
                totals: Totals {
                    bytes_in: u64_of(bytes_in)?,
                    bytes_out: u64_of(bytes_out)?,
                    messages_in: exact("messages_in", 0),
                    crc_in: u32_of(crc_in)?,
                    crc_out: u32_of(crc_out)?,
                },
            }
        }
        (format, args, [reset]) if format.starts_with("tcp #{=u32} ") => {
            let reset = match *reset {
                ": closing with RST (unread or unacknowledged data dropped)" => true,
                ": closing with FIN" => false,
                _ => return None,
            };
            let (conn, peer, reason) = match (format, args) {
                (
                    "tcp #{=u32} {} idle for {=u64} s (no data moved either way)",
                    [conn, peer, secs],
                ) => (
                    conn,
                    peer,
                    CloseReason::Idle {
                        secs: u64_of(secs)?,
                    },
                ),
                ("tcp #{=u32} {} shutting down", [conn, peer]) => {
                    (conn, peer, CloseReason::Shutdown)
                }
                _ => return None,
            };
            Event::Closing {
                conn: u32_of(conn)?,
                peer: addr(peer)?,
                reason,
                reset,
            }
        }
        ("tcp listener on port {=u16} closed", [port], []) => Event::ListenerClosed {
            port: u16_of(port)?,
        },
        (format, [count, total], []) if format.contains(" lost {=u64} ") => {
            let cause = match format {
                "udp lost {=u64} datagrams ({=u64} in all): the socket's receive buffer was full" => {
                    LossCause::SocketBuffer
                }
                "device lost {=u64} frames ({=u64} in all): the queue in front of the stack was full" => {
                    LossCause::DeviceQueue
                }
                "udp lost {=u64} datagrams ({=u64} in all): some of their fragments never arrived" => {
                    LossCause::Fragments
                }
                _ => return None,
            };
            Event::Lost {
                count: u64_of(count)?,
                total: u64_of(total)?,
                cause,
            }
        }
        ("iperf3 #{=u32} test with {}: {=u16} stream", [conn, peer, streams], _) => {
            let tail = rest.strip_prefix(&[plural()][..]).unwrap_or(rest);
            let [secs, reverse] = tail else {
                return None;
            };
            let secs = match (secs.format, secs.args.as_slice()) {
                (", until the client's byte count, ", []) => 0,
                (", {=u32} s, ", [secs]) => u32_of(secs)?,
                _ => return None,
            };
            let reverse = match reverse.format {
                "the server sends (reverse)" => true,
                "the client sends" => false,
                _ => return None,
            };
            Event::IperfTest {
                conn: u32_of(conn)?,
                peer: addr(peer)?,
                streams: u16_of(streams)?,
                secs,
                reverse,
            }
        }
        ("iperf3 {}-{} s ", [start, end], _) => {
            let [sending, bytes] = rest else {
                return None;
            };
            let (" {=u64} bytes: {}", [bytes, _rate]) = (bytes.format, bytes.args.as_slice())
            else {
                return None;
            };
            Event::IperfInterval {
                start_us: exact("start_us", seconds(start)?),
                end_us: exact("end_us", seconds(end)?),
                bytes: u64_of(bytes)?,
                sending: direction(sending)?,
            }
        }
        (side @ ("iperf3 result, this side: " | "iperf3 result, the peer: "), [], _) => {
            let [sending, totals, tail @ ..] = rest else {
                return None;
            };
            let tail = tail.strip_prefix(&[plural()][..]).unwrap_or(tail);
            let [Write { format: ": {}", .. }] = tail else {
                return None;
            };
            let (" {=u64} bytes in {} s over {=u16} stream", [bytes, micros, streams]) =
                (totals.format, totals.args.as_slice())
            else {
                return None;
            };
            Event::IperfResult {
                side: if side.contains("this side") {
                    IperfSide::Local
                } else {
                    IperfSide::Remote
                },
                sending: direction(sending)?,
                bytes: u64_of(bytes)?,
                micros: exact("duration_us", seconds(micros)?),
                streams: u16_of(streams)?,
            }
        }
        (side @ ("iperf3 udp, this side: " | "iperf3 udp, the peer: "), [], _) => {
            let side = if side.contains("this side") {
                IperfSide::Local
            } else {
                IperfSide::Remote
            };
            match rest {
                [
                    Write {
                        format: "sent {=u64} datagrams",
                        args,
                    },
                ] => Event::IperfUdp {
                    side,
                    sending: true,
                    packets: u64_of(args.first()?)?,
                    lost: 0,
                    out_of_order: None,
                    jitter_us: 0,
                },
                [counts, order @ ..] => {
                    let ("lost {=u64}/{=u64} datagrams, jitter {=u64} us", [lost, packets, jitter]) =
                        (counts.format, counts.args.as_slice())
                    else {
                        return None;
                    };
                    let out_of_order = match order {
                        [] => None,
                        [
                            Write {
                                format: ", {=u64} out of order",
                                args,
                            },
                        ] => Some(u64_of(args.first()?)?),
                        _ => return None,
                    };
                    Event::IperfUdp {
                        side,
                        sending: false,
                        packets: u64_of(packets)?,
                        lost: u64_of(lost)?,
                        out_of_order,
                        jitter_us: u64_of(jitter)?,
                    }
                }
                [] => return None,
            }
        }
        (format, [peer], []) if format.starts_with("iperf3 denied {}: ") => {
            let reason = match format {
                "iperf3 denied {}: a test is running (sent ACCESS_DENIED, closed)" => {
                    DenyReason::Busy
                }
                "iperf3 denied {}: not the running test's cookie (sent ACCESS_DENIED, closed)" => {
                    DenyReason::Cookie
                }
                "iperf3 denied {}: a UDP connect message not of the running test (not answered)" => {
                    DenyReason::UdpStream
                }
                _ => return None,
            };
            Event::IperfDenied {
                peer: addr(peer)?,
                reason,
            }
        }
        ("error tcp #{=u32} {}: {}", [conn, peer, e], []) => Event::Error {
            conn: Some(u32_of(conn)?),
            peer: Some(addr(peer)?),
            error: error(e)?,
        },
        ("error tcp #{=u32}: {}", [conn, e], []) => Event::Error {
            conn: Some(u32_of(conn)?),
            peer: None,
            error: error(e)?,
        },
        ("error {}: {}", [peer, e], []) => Event::Error {
            conn: None,
            peer: Some(addr(peer)?),
            error: error(e)?,
        },
        ("error: {}", [e], []) => Event::Error {
            conn: None,
            peer: None,
            error: error(e)?,
        },
        _ => return None,
    };
    if !unknown.is_empty()
        && matches!(
            event,
            Event::IperfInterval { .. } | Event::IperfResult { .. }
        )
    {
        // The rate is worked out from the time.
        unknown.push("bits_per_second");
    }
    Some(OwnedEvent {
        event,
        payload,
        unknown,
    })
}

/// The `s` after a count other than one.
fn plural() -> Write<'static> {
    Write {
        format: "s",
        args: Vec::new(),
    }
}
