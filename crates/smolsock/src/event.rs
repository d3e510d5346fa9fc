//! What the programs report, in one format for the host and the boards.
//!
//! Every program emits [`Event`]s through a callback. Their [`Display`]
//! form is the text line both the host binary and the board firmware print. With the
//! `serde` feature they are also data: `Record` is their serialized form, the JSON lines
//! of the host's `--json` (described, field by field, in `docs/events.md`).

use core::fmt::{self, Display, Formatter};
use core::net::SocketAddrV4;

use crate::error::Error;

#[cfg(feature = "serde")]
mod record;
#[cfg(feature = "serde")]
pub use record::Record;

/// Number of a TCP connection within one program run, from 1.
pub type ConnId = u32;

/// Byte counts and CRC-32s (IEEE, as zlib's `crc32`) of what went each way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Totals {
    /// Bytes (or, for UDP, payload bytes) received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Messages: datagrams for UDP, `recv` calls that returned data for TCP.
    pub messages_in: u64,
    /// CRC-32 of the received bytes, in order.
    pub crc_in: u32,
    /// CRC-32 of the sent bytes, in order.
    pub crc_out: u32,
}

#[cfg(feature = "fast-crc")]
type CrcTable = crc::Table<16>;
#[cfg(not(feature = "fast-crc"))]
type CrcTable = crc::Table<1>;

/// CRC-32 as zlib computes it (ISO-HDLC), its table built at compile time.
static CRC32: crc::Crc<u32, CrcTable> = crc::Crc::<u32, CrcTable>::new(&crc::CRC_32_ISO_HDLC);

/// Running totals with CRC state.
#[derive(Clone)]
pub(crate) struct Counter {
    totals: Totals,
    crc_in: crc::Digest<'static, u32, CrcTable>,
    crc_out: crc::Digest<'static, u32, CrcTable>,
}

impl Default for Counter {
    fn default() -> Self {
        Self {
            totals: Totals::default(),
            crc_in: CRC32.digest(),
            crc_out: CRC32.digest(),
        }
    }
}

impl Counter {
    pub(crate) fn received(&mut self, data: &[u8]) {
        self.totals.bytes_in += data.len() as u64;
        self.totals.messages_in += 1;
        self.crc_in.update(data);
    }

    pub(crate) fn sent(&mut self, data: &[u8]) {
        self.totals.bytes_out += data.len() as u64;
        self.crc_out.update(data);
    }

    pub(crate) fn bytes_in(&self) -> u64 {
        self.totals.bytes_in
    }

    pub(crate) fn messages_in(&self) -> u64 {
        self.totals.messages_in
    }

    pub(crate) fn totals(&self) -> Totals {
        Totals {
            crc_in: self.crc_in.clone().finalize(),
            crc_out: self.crc_out.clone().finalize(),
            ..self.totals
        }
    }
}

/// Transport of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Proto {
    /// A UDP socket.
    Udp,
    /// A TCP connection or listener.
    Tcp,
}

impl Proto {
    /// Lower-case name (the `proto` field of the JSON form).
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        }
    }
}

/// Where datagrams were lost before the program saw them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LossCause {
    /// The socket's receive buffer was full: the program did not read fast enough.
    SocketBuffer,
    /// The device's queue was full before the stack read it (on a host: the kernel's queue
    /// of the TAP or TUN device, its `tx_dropped` counter).
    DeviceQueue,
    /// A fragmented datagram whose fragments never all arrived: reassembly gave up.
    Fragments,
}

impl LossCause {
    /// Short name (the `cause` field of the JSON form).
    pub fn as_str(self) -> &'static str {
        match self {
            LossCause::SocketBuffer => "socket_buffer",
            LossCause::DeviceQueue => "device_queue",
            LossCause::Fragments => "fragments",
        }
    }

    /// What happened, in words.
    pub fn text(self) -> &'static str {
        match self {
            LossCause::SocketBuffer => "the socket's receive buffer was full",
            LossCause::DeviceQueue => "the queue in front of the stack was full",
            LossCause::Fragments => "some of their fragments never arrived",
        }
    }

    /// Who lost them, as the text line starts.
    pub fn who(self) -> &'static str {
        match self {
            LossCause::SocketBuffer | LossCause::Fragments => "udp",
            LossCause::DeviceQueue => "device",
        }
    }

    /// What was lost: datagrams (a socket's) or frames (any, a device's).
    pub fn unit(self) -> &'static str {
        match self {
            LossCause::SocketBuffer | LossCause::Fragments => "datagrams",
            LossCause::DeviceQueue => "frames",
        }
    }
}

/// Why a program closed a connection by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CloseReason {
    /// No data moved either way for the idle timeout, this many seconds.
    Idle {
        /// The idle timeout, in whole seconds.
        secs: u64,
    },
    /// The program is ending (a signal, a fatal error, the end of its input).
    Shutdown,
}

impl CloseReason {
    /// Short name (the `reason` field of the JSON form).
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Idle { .. } => "idle",
            CloseReason::Shutdown => "shutdown",
        }
    }
}

/// Whose measurement an [`Event::IperfResult`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum IperfSide {
    /// This program's own count.
    Local,
    /// The peer's count, from the results it sent at the end of the test.
    Remote,
}

impl IperfSide {
    /// Short name (the `side` field of the JSON form).
    pub fn as_str(self) -> &'static str {
        match self {
            IperfSide::Local => "local",
            IperfSide::Remote => "remote",
        }
    }
}

/// Why an iperf3 server turned a connection away with ACCESS_DENIED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DenyReason {
    /// A test is running: the server serves one client at a time.
    Busy,
    /// A data connection that did not carry the running test's cookie.
    Cookie,
}

impl DenyReason {
    /// Short name (the `reason` field of the JSON form).
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::Busy => "busy",
            DenyReason::Cookie => "cookie",
        }
    }
}

/// `bytes` moved in `micros` microseconds as a rate, the way iperf3 prints one: bits per
/// second with two decimals in the largest unit that keeps it at 1 or more (`939.52
/// Mbit/s`).
pub struct Rate {
    /// Bytes moved.
    pub bytes: u64,
    /// In this many microseconds.
    pub micros: u64,
}

impl Rate {
    /// The rate in bits per second, rounded down; 0 when no time passed.
    pub fn bits_per_second(&self) -> u64 {
        let bits = u128::from(self.bytes) * 8 * 1_000_000;
        let per_second = bits.checked_div(u128::from(self.micros)).unwrap_or(0);
        u64::try_from(per_second).unwrap_or(u64::MAX)
    }
}

impl Display for Rate {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let bps = self.bits_per_second();
        let (unit, name) = match bps {
            1_000_000_000.. => (1_000_000_000, "Gbit/s"),
            1_000_000.. => (1_000_000, "Mbit/s"),
            1_000.. => (1_000, "kbit/s"),
            _ => (1, "bit/s"),
        };
        let hundredths = u128::from(bps) * 100 / unit;
        write!(f, "{}.{:02} {name}", hundredths / 100, hundredths % 100)
    }
}

/// Microseconds as seconds with two decimals (`10.00`), as iperf3 prints times.
pub struct Seconds(pub u64);

impl Display for Seconds {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let hundredths = self.0 / 10_000;
        write!(f, "{}.{:02}", hundredths / 100, hundredths % 100)
    }
}

fn direction(sending: bool) -> &'static str {
    if sending { "sent" } else { "received" }
}

/// One thing a program did or saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A UDP socket has its local address: bound by the program, or by its first send
    /// (`auto`, rule S10).
    Bound {
        /// The local address (`0.0.0.0` means every local address).
        local: SocketAddrV4,
        /// Bound by the first send rather than by `bind`.
        auto: bool,
        /// For a sender: the largest datagram payload a send takes. Larger messages are
        /// refused, never cut; smoltcp sends each datagram in one frame (no IP
        /// fragmentation), so on a 1500-byte MTU this is 1472 bytes.
        max_send: Option<usize>,
    },
    /// A TCP listener is up (rules S1, S3).
    Listening {
        /// The local address.
        local: SocketAddrV4,
        /// How many connections can complete their handshake before `accept` (S12).
        backlog: usize,
    },
    /// A client connection is established (rule S4).
    Connected {
        /// Connection number.
        conn: ConnId,
        /// Local address, with the ephemeral port (rule S2).
        local: SocketAddrV4,
        /// The server.
        peer: SocketAddrV4,
    },
    /// The server accepted a connection (rules S5, S6).
    Accepted {
        /// Connection number.
        conn: ConnId,
        /// The client.
        peer: SocketAddrV4,
    },
    /// Data was queued for sending.
    Sent {
        /// UDP or TCP.
        proto: Proto,
        /// Connection number (TCP).
        conn: Option<ConnId>,
        /// Destination.
        to: SocketAddrV4,
        /// Bytes sent.
        len: usize,
    },
    /// Data arrived. `data` is what one receive call took (at most the buffer, rule S11).
    Received {
        /// UDP or TCP.
        proto: Proto,
        /// Connection number (TCP).
        conn: Option<ConnId>,
        /// The sender.
        from: SocketAddrV4,
        /// The bytes taken.
        data: &'a [u8],
        /// Size of the datagram on the wire (UDP); larger than `data` when truncated.
        size: usize,
    },
    /// An interactive server waits for a typed reply to the last message of `conn`.
    AwaitingReply {
        /// Connection number.
        conn: ConnId,
    },
    /// The peer closed its sending side: `recv` returned 0 bytes (rule S9).
    PeerClosed {
        /// Connection number.
        conn: ConnId,
        /// The peer.
        peer: SocketAddrV4,
    },
    /// A socket or connection was closed by the program (rule S8), with its totals.
    Closed {
        /// UDP or TCP.
        proto: Proto,
        /// Connection number (TCP).
        conn: Option<ConnId>,
        /// What went each way.
        totals: Totals,
    },
    /// The program closes a connection by itself, with a FIN or, where data would be
    /// lost, a reset; the connection's [`Event::Closed`] follows.
    Closing {
        /// Connection number.
        conn: ConnId,
        /// The peer.
        peer: SocketAddrV4,
        /// Why.
        reason: CloseReason,
        /// A reset rather than a FIN: unread or unacknowledged data was dropped.
        reset: bool,
    },
    /// The listener was closed; accepted connections go on (rule S7).
    ListenerClosed {
        /// The port it listened on.
        port: u16,
    },
    /// Datagrams or frames were lost before the program could read them (counted by the
    /// stack or the device; the program never saw them).
    Lost {
        /// Lost since the last report.
        count: u64,
        /// Lost in all, so far.
        total: u64,
        /// Where they were lost.
        cause: LossCause,
    },
    /// An iperf3 test was agreed on control connection `conn`: the client's parameters,
    /// which the server accepted.
    IperfTest {
        /// The control connection.
        conn: ConnId,
        /// The other end of it.
        peer: SocketAddrV4,
        /// Parallel data connections.
        streams: u16,
        /// The test's length in seconds (0: the client ends it by a byte count).
        secs: u32,
        /// The server sends and the client receives (`iperf3 -R`).
        reverse: bool,
    },
    /// Data an iperf3 test moved in one interval, over all its streams.
    IperfInterval {
        /// Start of the interval, in microseconds since the test started.
        start_us: u64,
        /// End of the interval, in microseconds since the test started.
        end_us: u64,
        /// Bytes moved in the interval.
        bytes: u64,
        /// This side sent them (else it received them).
        sending: bool,
    },
    /// The totals of an iperf3 test as one side counted them: this program's own, or the
    /// peer's from the results it sent.
    IperfResult {
        /// Whose count.
        side: IperfSide,
        /// That side sent the bytes (else it received them).
        sending: bool,
        /// Bytes, over all streams.
        bytes: u64,
        /// How long that side's test ran, in microseconds.
        micros: u64,
        /// Streams the bytes were counted over.
        streams: u16,
    },
    /// An iperf3 server turned a connection away: it sent ACCESS_DENIED and closed it.
    IperfDenied {
        /// Who was turned away.
        peer: SocketAddrV4,
        /// Why.
        reason: DenyReason,
    },
    /// Something failed.
    Error {
        /// Connection number, when the error belongs to one connection.
        conn: Option<ConnId>,
        /// The peer involved, when there is one.
        peer: Option<SocketAddrV4>,
        /// What went wrong.
        error: Error,
    },
}

impl Event<'_> {
    /// Short name of the event kind (the `event` field of the JSON form).
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Bound { .. } => "bound",
            Event::Listening { .. } => "listening",
            Event::Connected { .. } => "connected",
            Event::Accepted { .. } => "accepted",
            Event::Sent { .. } => "sent",
            Event::Received { .. } => "received",
            Event::AwaitingReply { .. } => "awaiting_reply",
            Event::PeerClosed { .. } => "peer_closed",
            Event::Closed { .. } => "closed",
            Event::Closing { .. } => "closing",
            Event::ListenerClosed { .. } => "listener_closed",
            Event::Lost { .. } => "lost",
            Event::IperfTest { .. } => "iperf_test",
            Event::IperfInterval { .. } => "iperf_interval",
            Event::IperfResult { .. } => "iperf_result",
            Event::IperfDenied { .. } => "iperf_denied",
            Event::Error { .. } => "error",
        }
    }
}

/// Writes bytes as a quoted string: valid UTF-8 as text with escapes, other bytes as `\xNN`.
pub struct Quoted<'a>(pub &'a [u8]);

/// Whether `b` goes out as it is: printable ASCII other than `"` and `\\`.
fn plain(b: u8) -> bool {
    (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\'
}

/// How many bytes at the start of `bytes` are [`plain`], eight at a time where it can.
fn plain_prefix(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // A high bit for every zero byte of `v` (and possibly above one: only "any" is used).
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let mut done = 0;
    for chunk in bytes.chunks_exact(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        // Below 0x20, 0x7f and above, '"' or '\\' in any byte of the word.
        let special = (x.wrapping_sub(ONES * 0x20) & !x & HIGHS)
            | (x & HIGHS)
            | zero(x ^ (ONES * 0x7f))
            | zero(x ^ (ONES * u64::from(b'"')))
            | zero(x ^ (ONES * u64::from(b'\\')));
        if special != 0 {
            break;
        }
        done += 8;
    }
    let rest = bytes.get(done..).unwrap_or_default();
    done + rest.iter().position(|&b| !plain(b)).unwrap_or(rest.len())
}

impl Display for Quoted<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        let mut rest = self.0;
        while !rest.is_empty() {
            // Runs of printable ASCII that need no escape go out in one write: one
            // `write_char` per byte made formatting most of `udp-recv`'s work.
            let (run, tail) = rest.split_at(plain_prefix(rest));
            // Plain bytes are ASCII, so always UTF-8.
            f.write_str(core::str::from_utf8(run).unwrap_or_default())?;
            // Then one character that needs a look: escaped, or a byte that is not UTF-8.
            let Some(chunk) = tail.utf8_chunks().next() else {
                break;
            };
            let mut chars = chunk.valid().chars();
            if let Some(c) = chars.next() {
                if c == '\'' {
                    f.write_str("'")?;
                } else {
                    Display::fmt(&c.escape_debug(), f)?;
                }
                rest = tail.get(c.len_utf8()..).unwrap_or_default();
            } else if let Some(b) = chunk.invalid().first() {
                write!(f, "\\x{b:02x}")?;
                rest = tail.get(1..).unwrap_or_default();
            } else {
                break;
            }
        }
        f.write_str("\"")
    }
}

struct Who(Proto, Option<ConnId>);

impl Display for Who {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(conn) => write!(f, "{} #{}", self.0.as_str(), conn),
            None => f.write_str(self.0.as_str()),
        }
    }
}

impl Display for Event<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match *self {
            Event::Bound {
                local,
                auto,
                max_send,
            } => {
                write!(f, "udp bound {local}")?;
                match (auto, max_send) {
                    (true, Some(max)) => write!(
                        f,
                        " (ephemeral port, bound by the first send; datagrams up to {max} bytes)"
                    ),
                    (true, None) => f.write_str(" (ephemeral port, bound by the first send)"),
                    (false, Some(max)) => write!(f, " (datagrams up to {max} bytes)"),
                    (false, None) => Ok(()),
                }
            }
            Event::Listening { local, backlog } => {
                write!(f, "tcp listening {local} backlog {backlog}")
            }
            Event::Connected { conn, local, peer } => {
                write!(f, "tcp #{conn} connected {local} -> {peer}")
            }
            Event::Accepted { conn, peer } => write!(f, "tcp #{conn} accepted {peer}"),
            Event::Sent {
                proto,
                conn,
                to,
                len,
            } => write!(f, "{} sent {len} bytes to {to}", Who(proto, conn)),
            Event::Received {
                proto,
                conn,
                from,
                data,
                size,
            } => {
                write!(f, "{} received {size} bytes from {from}", Who(proto, conn))?;
                if size > data.len() {
                    write!(f, " (TRUNCATED to {} bytes, the rest dropped)", data.len())?;
                }
                write!(f, ": {}", Quoted(data))
            }
            Event::AwaitingReply { conn } => {
                write!(f, "tcp #{conn} waiting for a reply line on stdin")
            }
            Event::PeerClosed { conn, peer } => {
                write!(f, "tcp #{conn} peer {peer} closed (recv returned 0 bytes)")
            }
            Event::Closed {
                proto,
                conn,
                totals,
            } => {
                write!(
                    f,
                    "{} closed: in {} bytes crc32 {:08x}, out {} bytes crc32 {:08x}",
                    Who(proto, conn),
                    totals.bytes_in,
                    totals.crc_in,
                    totals.bytes_out,
                    totals.crc_out
                )
            }
            Event::Closing {
                conn,
                peer,
                reason,
                reset,
            } => {
                write!(f, "tcp #{conn} {peer} ")?;
                match reason {
                    CloseReason::Idle { secs } => {
                        write!(f, "idle for {secs} s (no data moved either way)")?
                    }
                    CloseReason::Shutdown => f.write_str("shutting down")?,
                }
                if reset {
                    f.write_str(": closing with RST (unread or unacknowledged data dropped)")
                } else {
                    f.write_str(": closing with FIN")
                }
            }
            Event::ListenerClosed { port } => {
                write!(f, "tcp listener on port {port} closed")
            }
            Event::Lost {
                count,
                total,
                cause,
            } => write!(
                f,
                "{} lost {count} {} ({total} in all): {}",
                cause.who(),
                cause.unit(),
                cause.text()
            ),
            Event::IperfTest {
                conn,
                peer,
                streams,
                secs,
                reverse,
            } => {
                let s = if streams == 1 { "" } else { "s" };
                write!(f, "iperf3 #{conn} test with {peer}: {streams} stream{s}, ")?;
                match secs {
                    0 => f.write_str("until the client's byte count, ")?,
                    secs => write!(f, "{secs} s, ")?,
                }
                f.write_str(if reverse {
                    "the server sends (reverse)"
                } else {
                    "the client sends"
                })
            }
            Event::IperfInterval {
                start_us,
                end_us,
                bytes,
                sending,
            } => write!(
                f,
                "iperf3 {}-{} s {} {bytes} bytes: {}",
                Seconds(start_us),
                Seconds(end_us),
                direction(sending),
                Rate {
                    bytes,
                    micros: end_us.saturating_sub(start_us)
                }
            ),
            Event::IperfResult {
                side,
                sending,
                bytes,
                micros,
                streams,
            } => {
                let who = match side {
                    IperfSide::Local => "this side",
                    IperfSide::Remote => "the peer",
                };
                let s = if streams == 1 { "" } else { "s" };
                write!(
                    f,
                    "iperf3 result, {who}: {} {bytes} bytes in {} s over {streams} stream{s}: {}",
                    direction(sending),
                    Seconds(micros),
                    Rate { bytes, micros }
                )
            }
            Event::IperfDenied { peer, reason } => {
                let why = match reason {
                    DenyReason::Busy => "a test is running",
                    DenyReason::Cookie => "not the running test's cookie",
                };
                write!(
                    f,
                    "iperf3 denied {peer}: {why} (sent ACCESS_DENIED, closed)"
                )
            }
            Event::Error { conn, peer, error } => {
                f.write_str("error")?;
                if let Some(conn) = conn {
                    write!(f, " tcp #{conn}")?;
                }
                if let Some(peer) = peer {
                    write!(f, " {peer}")?;
                }
                write!(f, ": {error}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::ToString;

    use super::*;

    #[test]
    fn quoted_escapes_control_and_invalid_bytes() {
        assert_eq!(Quoted(b"hi \"x\"\n").to_string(), r#""hi \"x\"\n""#);
        assert_eq!(Quoted(b"a\\b\t'c'\x7f").to_string(), r#""a\\b\t'c'\u{7f}""#);
        assert_eq!(Quoted(b"").to_string(), "\"\"");
        assert_eq!(Quoted(b"ok\xff").to_string(), r#""ok\xff""#);
        assert_eq!(Quoted("你好".as_bytes()).to_string(), "\"你好\"");
    }

    /// The escape of every char one by one, as `Quoted` did before it wrote plain runs.
    fn quoted_one_by_one(bytes: &[u8]) -> std::string::String {
        let mut out = std::string::String::from("\"");
        for chunk in bytes.utf8_chunks() {
            for c in chunk.valid().chars() {
                if c == '\'' {
                    out.push('\'');
                } else {
                    out.extend(c.escape_debug());
                }
            }
            for b in chunk.invalid() {
                out.push_str(&std::format!("\\x{b:02x}"));
            }
        }
        out.push('"');
        out
    }

    #[test]
    fn quoted_writes_the_same_as_char_by_char() {
        let mut samples: std::vec::Vec<std::vec::Vec<u8>> =
            (0..=255u8).map(|b| std::vec![b]).collect();
        samples.push("mixed 你好 \"q\" \\ \t\r\n end".as_bytes().to_vec());
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..200 {
            let len = (x % 40) as usize;
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
        // Mostly plain text, with the odd byte that needs a look at any offset (the plain
        // runs are found eight bytes at a time).
        let odd: [&[u8]; 8] = [
            b"\"",
            b"\\",
            b"\n",
            b"\x7f",
            b"\xff",
            "\u{e9}".as_bytes(),
            b"\x1f",
            b"'",
        ];
        for _ in 0..500 {
            let mut bytes = std::vec::Vec::new();
            let len = (x % 100) as usize;
            while bytes.len() < len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                match x % 16 {
                    0 => bytes.extend_from_slice(odd[(x >> 8) as usize % odd.len()]),
                    _ => bytes.push(b' ' + (x >> 16) as u8 % 95),
                }
            }
            samples.push(bytes);
        }
        for bytes in samples {
            assert_eq!(
                Quoted(&bytes).to_string(),
                quoted_one_by_one(&bytes),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn truncated_datagram_says_so() {
        let from = SocketAddrV4::new([192, 168, 69, 100].into(), 4000);
        let e = Event::Received {
            proto: Proto::Udp,
            conn: None,
            from,
            data: b"ab",
            size: 5,
        };
        assert_eq!(
            e.to_string(),
            "udp received 5 bytes from 192.168.69.100:4000 (TRUNCATED to 2 bytes, the rest dropped): \"ab\""
        );
    }

    #[test]
    fn counter_crc_matches_zlib() {
        let mut c = Counter::default();
        c.received(b"hello ");
        c.received(b"world");
        // zlib.crc32(b"hello world") == 0x0d4a1185
        assert_eq!(c.totals().crc_in, 0x0d4a_1185);
        assert_eq!(c.totals().bytes_in, 11);
        assert_eq!(c.totals().messages_in, 2);
    }
}
