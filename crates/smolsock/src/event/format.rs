//! `defmt::Format` for the events, writing what their `Display` writes: a board sends the
//! event's numbers and bytes, and the host's defmt decoder puts the text together, so the
//! firmware carries neither `core::fmt` nor the sentences (defmt keeps its format strings
//! out of flash). `EXAMPLES` holds one of every kind of event; the emulated board's
//! `events` firmware logs them, and a test checks its log against `Display`, line by line.

use defmt::{Format, Formatter, write};

use super::{
    CloseReason, DenyReason, Event, IperfSide, LossCause, Proto, Quoted, Rate, Seconds, Who,
};

impl Format for Who {
    fn format(&self, f: Formatter<'_>) {
        match *self {
            Who(Proto::Udp, None) => write!(f, "udp"),
            Who(Proto::Tcp, None) => write!(f, "tcp"),
            Who(Proto::Udp, Some(conn)) => write!(f, "udp #{=u32}", conn),
            Who(Proto::Tcp, Some(conn)) => write!(f, "tcp #{=u32}", conn),
        }
    }
}

/// The length of the UTF-8 character `bytes` starts with, or `None` when its first byte
/// is not part of valid UTF-8 there.
fn char_len(bytes: &[u8]) -> Option<usize> {
    let len = match bytes.first()? {
        0..=0x7f => 1,
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return None,
    };
    core::str::from_utf8(bytes.get(..len)?).ok().map(|_| len)
}

/// Sends `bytes` (whole characters) as they are.
fn raw(f: Formatter<'_>, bytes: &[u8]) {
    if !bytes.is_empty() {
        write!(f, "{=str}", core::str::from_utf8(bytes).unwrap_or_default());
    }
}

impl Format for Quoted<'_> {
    /// UTF-8 (nearly every payload) goes out as it is, and the decoder writes it as Rust's
    /// `Debug` of a `str` does, which is what [`Quoted`]'s `Display` writes for UTF-8 (a
    /// test holds them to it): the firmware needs no Unicode tables. Other bytes are
    /// escaped here: ASCII and the bytes that are not UTF-8 as `Display` does, while the
    /// characters beyond ASCII between them go out as they are, where `Display` would
    /// escape the few that are not printable or that combine with the one before
    /// (U+0300, U+200B, U+FEFF, ...): the one difference, and only in a payload that is
    /// not UTF-8.
    fn format(&self, f: Formatter<'_>) {
        if let Ok(text) = core::str::from_utf8(self.0) {
            write!(f, "{=str:?}", text);
            return;
        }
        write!(f, "\"");
        let bytes = self.0;
        // `bytes[start..at]` is still to go out as it is.
        let (mut start, mut at) = (0, 0);
        while let Some(&byte) = bytes.get(at) {
            let len = match byte {
                b'"' | b'\\' | 0..0x20 | 0x7f => 0,
                0x20..0x7f => 1,
                0x80.. => char_len(bytes.get(at..).unwrap_or_default()).unwrap_or(0),
            };
            if len > 0 {
                at += len;
                continue;
            }
            raw(f, bytes.get(start..at).unwrap_or_default());
            match byte {
                0 => write!(f, "\\0"),
                b'\t' => write!(f, "\\t"),
                b'\n' => write!(f, "\\n"),
                b'\r' => write!(f, "\\r"),
                b'"' => write!(f, "\\\""),
                b'\\' => write!(f, "\\\\"),
                _ if byte.is_ascii() => write!(f, "\\u{{{=u8:x}}}", byte),
                _ => write!(f, "\\x{=u8:02x}", byte),
            }
            at += 1;
            start = at;
        }
        raw(f, bytes.get(start..).unwrap_or_default());
        write!(f, "\"");
    }
}

impl Format for Seconds {
    fn format(&self, f: Formatter<'_>) {
        let hundredths = self.0 / 10_000;
        write!(f, "{=u64}.{=u64:02}", hundredths / 100, hundredths % 100);
    }
}

impl Format for Rate {
    fn format(&self, f: Formatter<'_>) {
        let bps = self.bits_per_second();
        // Hundredths of the unit: bps * 100 / unit, each unit a multiple of 100 but the
        // last, so that nothing overflows.
        match bps {
            1_000_000_000.. => {
                let h = bps / 10_000_000;
                write!(f, "{=u64}.{=u64:02} Gbit/s", h / 100, h % 100)
            }
            1_000_000.. => {
                let h = bps / 10_000;
                write!(f, "{=u64}.{=u64:02} Mbit/s", h / 100, h % 100)
            }
            1_000.. => {
                let h = bps / 10;
                write!(f, "{=u64}.{=u64:02} kbit/s", h / 100, h % 100)
            }
            _ => write!(f, "{=u64}.00 bit/s", bps),
        }
    }
}

// `match` on a `bool` below, not `if`: two `write!`s of different literals look alike to
// clippy's `if_same_then_else`.

/// `sent` or `received`.
fn direction(f: Formatter<'_>, sending: bool) {
    match sending {
        true => write!(f, "sent"),
        false => write!(f, "received"),
    }
}

/// `s` after a count other than one.
fn plural(f: Formatter<'_>, count: u16) {
    if count != 1 {
        write!(f, "s")
    }
}

impl Format for Event<'_> {
    fn format(&self, f: Formatter<'_>) {
        match *self {
            Event::Bound {
                local,
                auto,
                max_send,
            } => match (auto, max_send) {
                (true, Some(max)) => write!(
                    f,
                    "udp bound {} (ephemeral port, bound by the first send; datagrams up to {=usize} bytes)",
                    local, max
                ),
                (true, None) => write!(
                    f,
                    "udp bound {} (ephemeral port, bound by the first send)",
                    local
                ),
                (false, Some(max)) => {
                    write!(
                        f,
                        "udp bound {} (datagrams up to {=usize} bytes)",
                        local, max
                    )
                }
                (false, None) => write!(f, "udp bound {}", local),
            },
            Event::Listening { local, backlog } => {
                write!(f, "tcp listening {} backlog {=usize}", local, backlog)
            }
            Event::Connected { conn, local, peer } => {
                write!(f, "tcp #{=u32} connected {} -> {}", conn, local, peer)
            }
            Event::Accepted { conn, peer } => write!(f, "tcp #{=u32} accepted {}", conn, peer),
            Event::Sent {
                proto,
                conn,
                to,
                len,
            } => write!(f, "{} sent {=usize} bytes to {}", Who(proto, conn), len, to),
            Event::Received {
                proto,
                conn,
                from,
                data,
                size,
            } => {
                let who = Who(proto, conn);
                if size > data.len() {
                    write!(
                        f,
                        "{} received {=usize} bytes from {} (TRUNCATED to {=usize} bytes, the rest dropped): {}",
                        who,
                        size,
                        from,
                        data.len(),
                        Quoted(data)
                    )
                } else {
                    write!(
                        f,
                        "{} received {=usize} bytes from {}: {}",
                        who,
                        size,
                        from,
                        Quoted(data)
                    )
                }
            }
            Event::AwaitingReply { conn } => {
                write!(f, "tcp #{=u32} waiting for a reply line on stdin", conn)
            }
            Event::PeerClosed { conn, peer } => write!(
                f,
                "tcp #{=u32} peer {} closed (recv returned 0 bytes)",
                conn, peer
            ),
            Event::Closed {
                proto,
                conn,
                totals,
            } => write!(
                f,
                "{} closed: in {=u64} bytes crc32 {=u32:08x}, out {=u64} bytes crc32 {=u32:08x}",
                Who(proto, conn),
                totals.bytes_in,
                totals.crc_in,
                totals.bytes_out,
                totals.crc_out
            ),
            Event::Closing {
                conn,
                peer,
                reason,
                reset,
            } => {
                match reason {
                    CloseReason::Idle { secs } => write!(
                        f,
                        "tcp #{=u32} {} idle for {=u64} s (no data moved either way)",
                        conn, peer, secs
                    ),
                    CloseReason::Shutdown => write!(f, "tcp #{=u32} {} shutting down", conn, peer),
                }
                match reset {
                    true => write!(
                        f,
                        ": closing with RST (unread or unacknowledged data dropped)"
                    ),
                    false => write!(f, ": closing with FIN"),
                }
            }
            Event::ListenerClosed { port } => {
                write!(f, "tcp listener on port {=u16} closed", port)
            }
            Event::Lost {
                count,
                total,
                cause,
            } => match cause {
                LossCause::SocketBuffer => write!(
                    f,
                    "udp lost {=u64} datagrams ({=u64} in all): the socket's receive buffer was full",
                    count, total
                ),
                LossCause::DeviceQueue => write!(
                    f,
                    "device lost {=u64} frames ({=u64} in all): the queue in front of the stack was full",
                    count, total
                ),
                LossCause::Fragments => write!(
                    f,
                    "udp lost {=u64} datagrams ({=u64} in all): some of their fragments never arrived",
                    count, total
                ),
            },
            Event::IperfTest {
                conn,
                peer,
                streams,
                secs,
                reverse,
            } => {
                write!(
                    f,
                    "iperf3 #{=u32} test with {}: {=u16} stream",
                    conn, peer, streams
                );
                plural(f, streams);
                match secs {
                    0 => write!(f, ", until the client's byte count, "),
                    secs => write!(f, ", {=u32} s, ", secs),
                }
                match reverse {
                    true => write!(f, "the server sends (reverse)"),
                    false => write!(f, "the client sends"),
                }
            }
            Event::IperfInterval {
                start_us,
                end_us,
                bytes,
                sending,
            } => {
                write!(f, "iperf3 {}-{} s ", Seconds(start_us), Seconds(end_us));
                direction(f, sending);
                let rate = Rate {
                    bytes,
                    micros: end_us.saturating_sub(start_us),
                };
                write!(f, " {=u64} bytes: {}", bytes, rate)
            }
            Event::IperfResult {
                side,
                sending,
                bytes,
                micros,
                streams,
            } => {
                match side {
                    IperfSide::Local => write!(f, "iperf3 result, this side: "),
                    IperfSide::Remote => write!(f, "iperf3 result, the peer: "),
                }
                direction(f, sending);
                write!(
                    f,
                    " {=u64} bytes in {} s over {=u16} stream",
                    bytes,
                    Seconds(micros),
                    streams
                );
                plural(f, streams);
                write!(f, ": {}", Rate { bytes, micros })
            }
            Event::IperfUdp {
                side,
                sending,
                packets,
                lost,
                out_of_order,
                jitter_us,
            } => {
                match side {
                    IperfSide::Local => write!(f, "iperf3 udp, this side: "),
                    IperfSide::Remote => write!(f, "iperf3 udp, the peer: "),
                }
                if sending {
                    write!(f, "sent {=u64} datagrams", packets);
                    return;
                }
                write!(
                    f,
                    "lost {=u64}/{=u64} datagrams, jitter {=u64} us",
                    lost, packets, jitter_us
                );
                if let Some(n) = out_of_order {
                    write!(f, ", {=u64} out of order", n);
                }
            }
            Event::IperfDenied { peer, reason } => match reason {
                DenyReason::Busy => write!(
                    f,
                    "iperf3 denied {}: a test is running (sent ACCESS_DENIED, closed)",
                    peer
                ),
                DenyReason::Cookie => write!(
                    f,
                    "iperf3 denied {}: not the running test's cookie (sent ACCESS_DENIED, closed)",
                    peer
                ),
                DenyReason::UdpStream => write!(
                    f,
                    "iperf3 denied {}: a UDP connect message not of the running test (not answered)",
                    peer
                ),
            },
            Event::Error { conn, peer, error } => match (conn, peer) {
                (Some(conn), Some(peer)) => {
                    write!(f, "error tcp #{=u32} {}: {}", conn, peer, error)
                }
                (Some(conn), None) => write!(f, "error tcp #{=u32}: {}", conn, error),
                (None, Some(peer)) => write!(f, "error {}: {}", peer, error),
                (None, None) => write!(f, "error: {}", error),
            },
        }
    }
}
