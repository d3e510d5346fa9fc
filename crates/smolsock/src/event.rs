//! What the programs report, in one format for the host and the boards.
//!
//! Every program emits [`Event`]s through a callback. Their [`Display`]
//! form is the text line both the host binary and the board firmware print: with the
//! `defmt` feature, `defmt::Format` writes the same text, put together on the host by
//! defmt's decoder, so that boards need no `core::fmt` ([`EXAMPLES`] are the events a test
//! checks that with). With the
//! `serde` feature they are also data: `Record` is their serialized form, the JSON lines
//! of the host's `--json` (described, field by field, in `docs/events.md`).

use core::fmt::{self, Display, Formatter};
use core::net::{Ipv4Addr, SocketAddrV4};

use crate::error::Error;

#[cfg(feature = "defmt")]
mod format;
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

/// CRC-32 as zlib computes it (ISO-HDLC), its table built at compile time.
#[cfg(not(feature = "fast-crc"))]
static CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// A running CRC-32 (zlib's): by crc32fast with the `fast-crc` feature, else by one 1 KiB
/// table.
#[cfg(feature = "fast-crc")]
type Crc32 = crc32fast::Hasher;
#[cfg(not(feature = "fast-crc"))]
type Crc32 = crc::Digest<'static, u32>;

#[cfg(feature = "fast-crc")]
fn crc32() -> Crc32 {
    crc32fast::Hasher::new()
}

#[cfg(not(feature = "fast-crc"))]
fn crc32() -> Crc32 {
    CRC32.digest()
}

/// Running totals with CRC state.
#[derive(Clone)]
pub(crate) struct Counter {
    totals: Totals,
    crc_in: Crc32,
    crc_out: Crc32,
}

impl Default for Counter {
    fn default() -> Self {
        Self {
            totals: Totals::default(),
            crc_in: crc32(),
            crc_out: crc32(),
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
    /// A UDP stream's connect message that is not the running UDP test's (another host,
    /// or more streams than the test has): not answered, so its client gives up.
    UdpStream,
}

impl DenyReason {
    /// Short name (the `reason` field of the JSON form).
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::Busy => "busy",
            DenyReason::Cookie => "cookie",
            DenyReason::UdpStream => "udp_stream",
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
    /// The datagrams of an iperf3 UDP test as one side counted them, over all streams
    /// (after its [`IperfResult`](Event::IperfResult)): what iperf3 prints as Lost/Total
    /// Datagrams and jitter.
    IperfUdp {
        /// Whose count.
        side: IperfSide,
        /// That side sent the datagrams (else it received them).
        sending: bool,
        /// Datagrams: sent, or (receiving) the highest count seen, which is what the
        /// sender says it sent.
        packets: u64,
        /// Datagrams lost (receiving): gaps in the counts, less those that came late.
        lost: u64,
        /// Datagrams that came after one with a higher count (this side's count only: the
        /// peer's results do not carry it).
        out_of_order: Option<u64>,
        /// Jitter in microseconds (RFC 1889's smoothed transit difference; the largest of
        /// the streams').
        jitter_us: u64,
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
            Event::IperfUdp { .. } => "iperf_udp",
            Event::IperfDenied { .. } => "iperf_denied",
            Event::Error { .. } => "error",
        }
    }
}

/// One event of every kind and every variant (each [`Error`], each way a [`Quoted`] payload
/// is escaped): what a second writer of the text lines, such as the boards' `defmt::Format`,
/// is checked against [`Display`] with. The emulated board's `events` firmware logs them,
/// and a test compares its log with their `Display`, line by line.
pub const EXAMPLES: &[Event<'static>] = {
    const PEER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(192, 168, 69, 100), 40000);
    const LOCAL: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(0, 0, 0, 0), 9090);
    const BOARD: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(192, 168, 69, 3), 49152);
    const fn received(proto: Proto, conn: Option<ConnId>, data: &'static [u8]) -> Event<'static> {
        Event::Received {
            proto,
            conn,
            from: PEER,
            data,
            size: data.len(),
        }
    }
    const fn error(
        conn: Option<ConnId>,
        peer: Option<SocketAddrV4>,
        error: Error,
    ) -> Event<'static> {
        Event::Error { conn, peer, error }
    }
    const fn totals(bytes_in: u64, bytes_out: u64, crc_in: u32, crc_out: u32) -> Totals {
        Totals {
            bytes_in,
            bytes_out,
            messages_in: 1,
            crc_in,
            crc_out,
        }
    }
    const fn closing(conn: ConnId, reason: CloseReason, reset: bool) -> Event<'static> {
        Event::Closing {
            conn,
            peer: PEER,
            reason,
            reset,
        }
    }
    const fn lost(count: u64, total: u64, cause: LossCause) -> Event<'static> {
        Event::Lost {
            count,
            total,
            cause,
        }
    }
    const fn interval(start_us: u64, end_us: u64, bytes: u64, sending: bool) -> Event<'static> {
        Event::IperfInterval {
            start_us,
            end_us,
            bytes,
            sending,
        }
    }
    const fn result(side: IperfSide, bytes: u64, micros: u64, streams: u16) -> Event<'static> {
        Event::IperfResult {
            side,
            sending: matches!(side, IperfSide::Local),
            bytes,
            micros,
            streams,
        }
    }
    const ALL_ASCII: &[u8; 128] = &{
        let mut bytes = [0u8; 128];
        let mut i = 0;
        while i < 128 {
            bytes[i] = i as u8;
            i += 1;
        }
        bytes
    };
    const LONG: &[u8] = b"a plain run longer than the thirty-two bytes gathered for escapes\n";
    const UTF8: &str =
        "UTF-8: \u{e9}t\u{e9} \u{4f60}\u{597d} \u{1f600} \u{301}\u{200b}\u{feff}\u{10ffff}\u{85}";
    const NOT_UTF8: &[u8] = b"not UTF-8: \xff\xfe \xc3( \xe4\xbd\xa0\xe4\xbd";
    &[
        Event::Bound {
            local: LOCAL,
            auto: false,
            max_send: None,
        },
        Event::Bound {
            local: LOCAL,
            auto: false,
            max_send: Some(1472),
        },
        Event::Bound {
            local: PEER,
            auto: true,
            max_send: None,
        },
        Event::Bound {
            local: PEER,
            auto: true,
            max_send: Some(1472),
        },
        Event::Listening {
            local: LOCAL,
            backlog: 4,
        },
        Event::Connected {
            conn: 1,
            local: BOARD,
            peer: PEER,
        },
        Event::Accepted {
            conn: 12,
            peer: PEER,
        },
        Event::Sent {
            proto: Proto::Udp,
            conn: None,
            to: PEER,
            len: 5,
        },
        Event::Sent {
            proto: Proto::Tcp,
            conn: Some(3),
            to: PEER,
            len: 1460,
        },
        received(Proto::Udp, None, b"hello"),
        received(Proto::Udp, None, b""),
        received(Proto::Tcp, Some(2), b"hi \"x\"\n"),
        received(Proto::Tcp, Some(2), b"it's a \\ and a \t, \r\n\0\x1b\x7f"),
        received(Proto::Udp, None, ALL_ASCII),
        received(Proto::Udp, None, LONG),
        received(Proto::Udp, None, UTF8.as_bytes()),
        received(Proto::Udp, None, NOT_UTF8),
        Event::Received {
            proto: Proto::Udp,
            conn: None,
            from: PEER,
            data: b"ab",
            size: 2000,
        },
        Event::AwaitingReply { conn: 7 },
        Event::PeerClosed {
            conn: 7,
            peer: PEER,
        },
        Event::Closed {
            proto: Proto::Udp,
            conn: None,
            totals: totals(0, 21, 0, 0x20b9_f54d),
        },
        Event::Closed {
            proto: Proto::Tcp,
            conn: Some(4_000_000_000),
            totals: totals(u64::MAX, 1 << 40, 0xabc, 0xffff_ffff),
        },
        closing(1, CloseReason::Idle { secs: 300 }, false),
        closing(2, CloseReason::Idle { secs: 5 }, true),
        closing(3, CloseReason::Shutdown, false),
        closing(4, CloseReason::Shutdown, true),
        Event::ListenerClosed { port: 9090 },
        lost(3, 5, LossCause::SocketBuffer),
        lost(1, 1, LossCause::DeviceQueue),
        lost(10_000_000_000, 10_000_000_001, LossCause::Fragments),
        Event::IperfTest {
            conn: 1,
            peer: PEER,
            streams: 1,
            secs: 10,
            reverse: false,
        },
        Event::IperfTest {
            conn: 2,
            peer: PEER,
            streams: 2,
            secs: 0,
            reverse: true,
        },
        interval(0, 1_000_000, 117_440_512, true),
        interval(9_000_000, 10_004_321, 5_000, false),
        interval(0, 1_000_000, 999, false),
        interval(0, 0, 0, false),
        result(IperfSide::Local, 1_174_405_120, 10_000_000, 1),
        result(IperfSide::Remote, 123, 2_000_000, 2),
        result(IperfSide::Remote, u64::MAX, 1, 8),
        Event::IperfUdp {
            side: IperfSide::Local,
            sending: false,
            packets: 1712,
            lost: 3,
            out_of_order: Some(1),
            jitter_us: 12,
        },
        Event::IperfUdp {
            side: IperfSide::Remote,
            sending: true,
            packets: 1712,
            lost: 0,
            out_of_order: None,
            jitter_us: 0,
        },
        Event::IperfUdp {
            side: IperfSide::Remote,
            sending: false,
            packets: 0,
            lost: u64::MAX,
            out_of_order: None,
            jitter_us: 1_234_567,
        },
        Event::IperfDenied {
            peer: PEER,
            reason: DenyReason::Busy,
        },
        Event::IperfDenied {
            peer: PEER,
            reason: DenyReason::Cookie,
        },
        Event::IperfDenied {
            peer: PEER,
            reason: DenyReason::UdpStream,
        },
        error(Some(1), Some(PEER), Error::ConnectionReset),
        error(Some(1), None, Error::TimedOut),
        error(None, Some(PEER), Error::ConnectionRefused),
        error(None, None, Error::WouldBlock),
        error(None, None, Error::NoFreeSocket),
        error(None, None, Error::NoFreeListener),
        error(None, None, Error::NoEphemeralPort),
        error(None, None, Error::AddrInUse { port: 9090 }),
        error(None, None, Error::InvalidPort),
        error(None, None, Error::Unaddressable),
        error(None, None, Error::NotConnected),
        error(
            None,
            None,
            Error::MessageTooLarge {
                len: 2000,
                max: 1472,
            },
        ),
        error(None, None, Error::InputClosed),
        error(None, None, Error::NobodyWaiting),
        error(
            None,
            None,
            Error::InvalidConfig("the MTU is too small for IPv4"),
        ),
        error(None, None, Error::PermissionDenied),
        error(None, None, Error::Os(-5)),
        error(None, None, Error::Os(98)),
        error(None, None, Error::StaleHandle),
        error(None, None, Error::Protocol("a message it does not know")),
        error(None, None, Error::Unsupported("UDP tests")),
        error(None, Some(PEER), Error::AccessDenied),
        error(Some(1), None, Error::PeerError { code: 6, errno: 0 }),
        error(
            None,
            None,
            Error::PeerError {
                code: 999,
                errno: 104,
            },
        ),
        error(
            None,
            None,
            Error::PeerError {
                code: 142,
                errno: 1,
            },
        ),
        error(Some(3), Some(PEER), Error::PeerTerminated),
        error(
            None,
            None,
            Error::Remote("the board did not answer within 2 s"),
        ),
    ]
};

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

/// A run of [`Quoted`]'s bytes: what goes out as it is, or one thing that needs a look.
#[derive(Clone, Copy)]
enum Piece<'a> {
    /// [`plain`] bytes, written as they are.
    Plain(&'a str),
    /// A character that is written escaped (`char::escape_debug`), except `'`.
    Char(char),
    /// A byte that is not part of valid UTF-8, written `\xNN`.
    Byte(u8),
}

/// [`Quoted`]'s bytes as [`Piece`]s, in order.
struct Pieces<'a>(&'a [u8]);

impl<'a> Iterator for Pieces<'a> {
    type Item = Piece<'a>;

    fn next(&mut self) -> Option<Piece<'a>> {
        let bytes = self.0;
        // Runs of printable ASCII that need no escape go out in one write: one
        // `write_char` per byte made formatting most of `udp-recv`'s work.
        if let Some((run, rest)) = bytes.split_at_checked(plain_prefix(bytes))
            && !run.is_empty()
        {
            self.0 = rest;
            // Plain bytes are ASCII, so always UTF-8.
            return Some(Piece::Plain(core::str::from_utf8(run).unwrap_or_default()));
        }
        let &first = bytes.first()?;
        // The length of the character `first` starts, if it starts one (0: it cannot).
        let len = match first {
            0..=0x7f => 1,
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf4 => 4,
            _ => 0,
        };
        let char = bytes
            .get(..len)
            .and_then(|b| core::str::from_utf8(b).ok())
            .and_then(|s| s.chars().next());
        // A byte that starts no valid character is one invalid byte; the continuation
        // bytes after it (if any) cannot start a character either, so they follow one by
        // one, as `utf8_chunks` reports an invalid sequence.
        let (piece, used) = match char {
            Some(c) => (Piece::Char(c), len),
            None => (Piece::Byte(first), 1),
        };
        self.0 = bytes.get(used..).unwrap_or_default();
        Some(piece)
    }
}

impl Display for Quoted<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for piece in Pieces(self.0) {
            match piece {
                Piece::Plain(run) => f.write_str(run)?,
                Piece::Char('\'') => f.write_str("'")?,
                Piece::Char(c) => Display::fmt(&c.escape_debug(), f)?,
                Piece::Byte(b) => write!(f, "\\x{b:02x}")?,
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
            Event::IperfUdp {
                side,
                sending,
                packets,
                lost,
                out_of_order,
                jitter_us,
            } => {
                let who = match side {
                    IperfSide::Local => "this side",
                    IperfSide::Remote => "the peer",
                };
                if sending {
                    return write!(f, "iperf3 udp, {who}: sent {packets} datagrams");
                }
                write!(
                    f,
                    "iperf3 udp, {who}: lost {lost}/{packets} datagrams, jitter {jitter_us} us"
                )?;
                if let Some(n) = out_of_order {
                    write!(f, ", {n} out of order")?;
                }
                Ok(())
            }
            Event::IperfDenied { peer, reason } => {
                let why = match reason {
                    DenyReason::Busy => "a test is running",
                    DenyReason::Cookie => "not the running test's cookie",
                    DenyReason::UdpStream => {
                        return write!(
                            f,
                            "iperf3 denied {peer}: a UDP connect message not of the running test (not answered)"
                        );
                    }
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
    use std::format;
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
    fn examples_have_every_kind_of_event_and_every_error() {
        let kinds: std::collections::BTreeSet<&str> = EXAMPLES.iter().map(Event::kind).collect();
        assert_eq!(kinds.len(), 18, "{kinds:?}");
        // A new variant fails to compile here until it is numbered, then fails the test
        // until EXAMPLES has it.
        let number = |error: Error| match error {
            Error::WouldBlock => 0,
            Error::NoFreeSocket => 1,
            Error::NoFreeListener => 2,
            Error::NoEphemeralPort => 3,
            Error::AddrInUse { .. } => 4,
            Error::InvalidPort => 5,
            Error::Unaddressable => 6,
            Error::ConnectionRefused => 7,
            Error::ConnectionReset => 8,
            Error::TimedOut => 9,
            Error::NotConnected => 10,
            Error::MessageTooLarge { .. } => 11,
            Error::InputClosed => 12,
            Error::NobodyWaiting => 13,
            Error::InvalidConfig(_) => 14,
            Error::PermissionDenied => 15,
            Error::Os(_) => 16,
            Error::StaleHandle => 17,
            Error::Protocol(_) => 18,
            Error::Unsupported(_) => 19,
            Error::AccessDenied => 20,
            Error::PeerError { .. } => 21,
            Error::PeerTerminated => 22,
            Error::Remote(_) => 23,
        };
        let errors: std::collections::BTreeSet<u32> = EXAMPLES
            .iter()
            .filter_map(|e| match *e {
                Event::Error { error, .. } => Some(number(error)),
                _ => None,
            })
            .collect();
        assert_eq!(errors, (0..24).collect(), "every Error variant");
        // Every kind of escape, and a byte that is not UTF-8.
        let lines: std::vec::Vec<std::string::String> =
            EXAMPLES.iter().map(ToString::to_string).collect();
        for escape in [
            r"\\", r#"\""#, r"\n", r"\t", r"\0", r"\u{1b}", r"\u{301}", r"\xff", "'",
        ] {
            assert!(
                lines.iter().any(|l| l.contains(escape)),
                "no example escapes {escape}"
            );
        }
    }

    /// The boards' `defmt::Format` sends a UTF-8 payload as it is and the host's decoder
    /// writes it with `Debug`: the same text as `Quoted`, for every character.
    #[test]
    fn quoted_utf8_is_what_debug_of_str_writes() {
        let mut all = std::string::String::new();
        for c in (0..0x3_0000).filter_map(char::from_u32) {
            all.push(c);
            let one = c.to_string();
            assert_eq!(
                format!("{one:?}"),
                Quoted(one.as_bytes()).to_string(),
                "{c:?}"
            );
        }
        assert_eq!(format!("{all:?}"), Quoted(all.as_bytes()).to_string());
        for e in EXAMPLES {
            if let Event::Received { data, .. } = *e
                && let Ok(text) = core::str::from_utf8(data)
            {
                assert_eq!(format!("{text:?}"), Quoted(data).to_string());
            }
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
