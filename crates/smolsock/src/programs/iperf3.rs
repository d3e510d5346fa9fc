//! iperf3: the fifth program. It speaks the control protocol of the iperf3 measurement
//! tool, so that a stock `iperf3` (3.x, from any distribution) measures a smolsock stack as
//! it measures any host: [`Iperf3Server`] answers `iperf3 -c`, [`Iperf3Client`] tests
//! against `iperf3 -s`. TCP tests, with the server sending (`-R`) or the client, over one
//! or more parallel streams (`-P`); and UDP tests (`-u`) when built with them (the `UDP`
//! parameter of [`Iperf3Server`] and [`Iperf3Client`], their most UDP streams; 0 by
//! default). Bidirectional tests are refused the way an iperf3 server refuses a test it
//! cannot run.
//!
//! ## The protocol, as this module speaks it
//!
//! A test is one control connection and one TCP connection per stream, all to the server's
//! port (5201 by default).
//!
//! 1. The client connects and sends its *cookie*: 36 random characters from
//!    `a-z2-7` and a NUL, 37 bytes. Everything of the test carries it.
//! 2. The server sends single-byte *states* on the control connection; the client acts on
//!    each: `PARAM_EXCHANGE` (9): the client sends its parameters, a 4-byte big-endian
//!    length then that many bytes of JSON (`"parallel"`, `"time"`, `"reverse"`, `"len"`,
//!    ...). `CREATE_STREAMS` (10): the client opens its data connections one after the
//!    other, each starting with the cookie; the server numbers them in that order 1, 3, 4,
//!    5, ... (iperf3 skips 2). `TEST_START` (1) and `TEST_RUNNING` (2): data flows, from the
//!    client, or from the server with `"reverse"`.
//! 3. When its time is up the client sends `TEST_END` (4). The server stops, closes the
//!    data connections and sends `EXCHANGE_RESULTS` (13); the client sends its results
//!    (length and JSON: per stream its id and bytes, with its times), the server answers
//!    with its own, then `DISPLAY_RESULTS` (14). The client sends `IPERF_DONE` (16) and
//!    closes. Each side so prints both counts.
//! 4. A UDP test (`"udp": true`, with `"len"` the datagram length and `"bandwidth"` the
//!    rate per stream in bits per second) has no data connections: at `CREATE_STREAMS`
//!    each stream's socket sends [`UDP_CONNECT_MSG`] to the server's port and waits for
//!    [`UDP_CONNECT_REPLY`]; the address it came from is the stream. Every data datagram
//!    starts with the sender's clock (seconds, microseconds) and its count (from 1; 64
//!    bits with `"udp_counters_64bit"`), all big-endian. The receiver counts them
//!    ([`UdpCount`]), and each stream's results carry `"jitter"`, `"errors"` (lost) and
//!    `"packets"`.
//! 5. A server busy with a test answers any other connection with `ACCESS_DENIED` (-1, the
//!    byte 0xff) and closes it; a data connection with the wrong cookie gets the same. A
//!    server that refuses the parameters sends `SERVER_ERROR` (-2) and two 4-byte
//!    big-endian numbers, its error number and an `errno`. Either side interrupted sends
//!    `SERVER_TERMINATE` (11) or `CLIENT_TERMINATE` (12).
//!
//! ## What this implementation adds
//!
//! Every wait is bounded: a control message that does not come within
//! [`HANDSHAKE_TIMEOUT`], a test that runs past its length by [`GRACE`], and (tests ended
//! by a byte count) no data for the idle timeout each end the test with `timed out`. A peer
//! that lies about a length, sends JSON that is not an object, a state byte that has no
//! place, or vanishes, ends its test with an error event; the server goes on serving.
//! Nothing is allocated: the control messages live in a buffer the caller gives
//! (at least [`control_buffer_len`] bytes), the data in another. Data is counted, not
//! checksummed (iperf3's payload is arbitrary), and the bytes a sender sends are the
//! caller's buffer, filled once.

mod client;
mod json;
mod server;

pub use client::{Iperf3Client, Iperf3ClientConfig, Iperf3Udp};
pub use server::{Iperf3Server, Iperf3ServerConfig};

use core::net::SocketAddrV4;

use smoltcp::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::event::{ConnId, Event, IperfSide};
use crate::net::{Recv, Stack};
use json::{Object, Value, Writer};

/// iperf3's port.
pub const DEFAULT_PORT: u16 = 5201;

/// Bytes of a cookie on the wire: 36 characters and a NUL.
pub const COOKIE_LEN: usize = 37;

/// A test's cookie, as it goes on the wire.
pub type Cookie = [u8; COOKIE_LEN];

/// Longest wait for a control message the protocol says comes next (the cookie, the
/// parameters, the data connections, the results, the next state).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a test may run past its length before the server gives up on it (iperf3's
/// own grace: ten state changes of at most 4 s each).
pub const GRACE: Duration = Duration::from_secs(40);

/// The block a client asks the other side to read and write with (iperf3's default for
/// TCP, its `"len"`).
pub const BLOCK_LEN: u64 = 128 * 1024;

/// How often interval reports come, as iperf3's default `-i 1`.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Most bytes one stream's entry in a results message takes as this module writes it.
const STREAM_RESULT_MAX: usize = 160;

/// The same for a UDP test's stream, which says its jitter, losses and datagrams.
const UDP_STREAM_RESULT_MAX: usize = 224;

/// Room a results message takes besides its streams.
const RESULTS_BASE: usize = 256;

/// The smallest control buffer for tests of up to `streams` parallel streams: half holds
/// the message being received, half the one being sent. A peer's message that does not
/// fit is a protocol error for parameters and skipped (its counts not shown) for results.
pub const fn control_buffer_len(streams: usize) -> usize {
    2 * (RESULTS_BASE + streams * STREAM_RESULT_MAX)
}

/// The smallest control buffer for a program that runs UDP tests of up to `streams`
/// parallel streams (and TCP tests of as many).
pub const fn udp_control_buffer_len(streams: usize) -> usize {
    2 * (RESULTS_BASE + streams * UDP_STREAM_RESULT_MAX)
}

/// The state bytes of the control connection.
pub(crate) mod state {
    pub const TEST_START: u8 = 1;
    pub const TEST_RUNNING: u8 = 2;
    pub const TEST_END: u8 = 4;
    pub const PARAM_EXCHANGE: u8 = 9;
    pub const CREATE_STREAMS: u8 = 10;
    pub const SERVER_TERMINATE: u8 = 11;
    pub const CLIENT_TERMINATE: u8 = 12;
    pub const EXCHANGE_RESULTS: u8 = 13;
    pub const DISPLAY_RESULTS: u8 = 14;
    pub const IPERF_DONE: u8 = 16;
    /// -1 as a signed byte.
    pub const ACCESS_DENIED: u8 = 0xff;
    /// -2 as a signed byte.
    pub const SERVER_ERROR: u8 = 0xfe;
}

/// iperf3's error numbers this module sends with `SERVER_ERROR`.
pub(crate) mod code {
    /// Too many parallel streams.
    pub const NUM_STREAMS: i32 = 6;
    /// A UDP datagram length too short for the header or too long for the socket.
    pub const UDP_BLOCK_SIZE: i32 = 20;
    /// The data streams' listener could not be opened (no UDP socket, port in use).
    pub const STREAM_LISTEN: i32 = 202;
    /// Not implemented (bidirectional tests).
    pub const UNIMPLEMENTED: i32 = 13;
    /// Protocol not supported (UDP, SCTP).
    pub const PROTOCOL: i32 = 131;
}

/// The rate a UDP test sends at when the client names none: 1 Mbit/s, as iperf3's
/// (per stream, in bits per second).
pub const UDP_RATE: u64 = 1024 * 1024;

/// The datagram length a UDP test uses when the client names none (iperf3's default).
pub const UDP_LEN: u64 = 1460;

/// The largest UDP payload over IPv4: no datagram length of a test is more.
pub const UDP_MAX_LEN: u64 = 65507;

/// What a UDP stream's client sends to the server's port to open the stream, as the bytes
/// go on the wire (iperf3's `UDP_CONNECT_MSG`, "9876").
pub const UDP_CONNECT_MSG: [u8; 4] = *b"9876";

/// The server's answer to [`UDP_CONNECT_MSG`] (iperf3's `UDP_CONNECT_REPLY`, "6789"; the
/// legacy 987654321 is what clients before 3.11 wait for, and every client since takes
/// both).
pub const UDP_CONNECT_REPLY: [u8; 4] = *b"6789";

/// Bytes of a UDP datagram's header: seconds, microseconds (4 bytes each, big-endian)
/// and the datagram's count (4 bytes, or 8 with `udp_counters_64bit`).
pub const fn udp_header_len(wide: bool) -> usize {
    if wide { 16 } else { 12 }
}

/// Reads a UDP datagram's header: its count and its send time in microseconds; `None`
/// when the datagram is too short for it.
pub fn read_udp_header(datagram: &[u8], wide: bool) -> Option<(u64, i64)> {
    let word = |at: usize| -> Option<u32> {
        let b = datagram.get(at..at + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let sec = word(0)?;
    let usec = word(4)?;
    let count = if wide {
        let b = datagram.get(8..16)?;
        let mut c = [0u8; 8];
        c.copy_from_slice(b);
        u64::from_be_bytes(c)
    } else {
        u64::from(word(8)?)
    };
    Some((count, i64::from(sec) * 1_000_000 + i64::from(usec)))
}

/// Writes a UDP datagram's header at the start of `datagram` (which is at least
/// [`udp_header_len`] long; shorter, it is left as it is).
pub fn write_udp_header(datagram: &mut [u8], wide: bool, count: u64, micros: u64) {
    let sec = (micros / 1_000_000) as u32;
    let usec = (micros % 1_000_000) as u32;
    let mut header = [0u8; 16];
    header[..4].copy_from_slice(&sec.to_be_bytes());
    header[4..8].copy_from_slice(&usec.to_be_bytes());
    if wide {
        header[8..16].copy_from_slice(&count.to_be_bytes());
    } else {
        header[8..12].copy_from_slice(&(count as u32).to_be_bytes());
    }
    let len = udp_header_len(wide);
    if let (Some(dst), Some(src)) = (datagram.get_mut(..len), header.get(..len)) {
        dst.copy_from_slice(src);
    }
}

/// The datagrams of one UDP stream as its receiver counts them, by iperf3's rules: a
/// count past the next one expected counts the gap as lost; a count at or below the
/// highest seen is out of order and takes one back from the lost; jitter is RFC 1889's
/// smoothed difference of transit times (A.8: `J += (|D| - J) / 16`).
///
/// Every sum saturates: a peer that jumps its count to 2^32-1 (or 2^64-1) gets that many
/// lost, as iperf3 counts it, and every datagram after that out of order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UdpCount {
    /// The highest count seen: the datagrams the sender says it sent (iperf3's
    /// `packet_count`, what the client prints as the total).
    pub packets: u64,
    /// Datagrams lost: gaps in the count, less the ones that came late.
    pub lost: u64,
    /// Datagrams that came after one with a higher count.
    pub out_of_order: u64,
    /// Datagrams counted.
    pub received: u64,
    /// The jitter in microseconds, times 16 (RFC 1889's fixed point).
    jitter16: u64,
    /// The last datagram's transit time (arrival less send time, in microseconds; the two
    /// clocks need not agree, only their differences count).
    transit: Option<i64>,
}

impl UdpCount {
    /// Counts one datagram: its `count`, when it was sent (`sent_us`, the sender's clock)
    /// and when it arrived (`arrived_us`, this side's).
    pub fn datagram(&mut self, count: u64, sent_us: i64, arrived_us: i64) {
        self.received = self.received.saturating_add(1);
        if count > self.packets {
            self.lost = self.lost.saturating_add(count - 1 - self.packets);
            self.packets = count;
        } else {
            self.out_of_order = self.out_of_order.saturating_add(1);
            self.lost = self.lost.saturating_sub(1);
        }
        let transit = arrived_us.wrapping_sub(sent_us);
        if let Some(last) = self.transit {
            let d = transit.wrapping_sub(last).unsigned_abs().min(u64::MAX / 32);
            // J += |D| - J/16, with J kept times 16 (RFC 1889 A.8).
            self.jitter16 = self
                .jitter16
                .saturating_add(d)
                .saturating_sub((self.jitter16 + 8) >> 4);
        }
        self.transit = Some(transit);
    }

    /// The jitter in microseconds.
    pub fn jitter_us(&self) -> u64 {
        self.jitter16 >> 4
    }
}

/// One stream of a UDP test: where its datagrams come from or go to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UdpStream {
    /// The other end: the client's socket (server), the server's port (client).
    pub peer: SocketAddrV4,
    /// iperf3's number for it.
    pub id: u32,
    /// Bytes counted (received, or sent).
    pub bytes: u64,
    /// Received: iperf3's counts; sent: `packets` is the datagrams sent.
    pub count: UdpCount,
}

/// Sends each stream's datagrams (of the test's length, with the header, the rest from
/// `data`) while it is behind the test's rate (bits per second per stream since `start`;
/// 0: as fast as the socket takes them), at most [`UDP_SEND_BUDGET`] per stream, and
/// while `limit` allows. Returns the bytes sent; asks for a wake-up when the next one is
/// due.
#[allow(clippy::too_many_arguments)]
pub(crate) fn send_paced<S: Stack>(
    stack: &mut S,
    streams: &mut [UdpStream],
    socket_of: impl Fn(usize) -> Option<S::Udp>,
    params: &Params,
    limit: &mut Option<u64>,
    data: &mut [u8],
    start: Instant,
    now: Instant,
    poll: &mut crate::programs::Poll,
) -> Result<u64> {
    let len = usize::try_from(params.len).unwrap_or(usize::MAX);
    let rate = u128::from(params.rate);
    let elapsed = u128::from(micros(now - start));
    let stamp = u64::try_from(now.total_micros()).unwrap_or(0);
    let mut moved = 0u64;
    let mut next: Option<Instant> = None;
    for (i, stream) in streams.iter_mut().enumerate() {
        let Some(socket) = socket_of(i) else {
            break;
        };
        let mut sent = 0;
        loop {
            if *limit == Some(0) {
                break;
            }
            // Due while what it sent is behind the rate's line.
            let behind = rate == 0 || u128::from(stream.bytes) * 8_000_000 < rate * elapsed;
            if !behind {
                let due = (u128::from(stream.bytes) * 8_000_000).div_ceil(rate);
                let due = u64::try_from(due).unwrap_or(u64::MAX);
                let at = start + Duration::from_micros(due);
                next = Some(next.map_or(at, |n| n.min(at)));
                break;
            }
            if sent >= UDP_SEND_BUDGET {
                poll.progressed = true;
                break;
            }
            let Some(datagram) = data.get_mut(..len) else {
                return Err(Error::MessageTooLarge {
                    len,
                    max: data.len(),
                });
            };
            let count = stream.count.packets.saturating_add(1);
            write_udp_header(datagram, params.wide, count, stamp);
            match stack.udp_send_to(socket, datagram, stream.peer) {
                Ok(()) => {}
                Err(Error::WouldBlock) => break,
                Err(e) => return Err(e),
            }
            sent += 1;
            stream.count.packets = count;
            stream.bytes = stream.bytes.saturating_add(len as u64);
            moved = moved.saturating_add(len as u64);
            if let Some(l) = limit.as_mut() {
                *l = l.saturating_sub(len as u64);
            }
        }
    }
    poll.merge_wake(next);
    Ok(moved)
}

/// Most datagrams one program run sends per stream, or reads: the run must end for the
/// control connection and the clock to have their turn.
pub const UDP_SEND_BUDGET: usize = 256;

/// This side's result events for a UDP test: the bytes, then the datagrams.
pub(crate) fn udp_result(
    streams: &[UdpStream],
    sending: bool,
    micros: u64,
    emit: &mut dyn FnMut(&Event<'_>),
) {
    emit(&Event::IperfResult {
        side: IperfSide::Local,
        sending,
        bytes: streams.iter().map(|s| s.bytes).fold(0, u64::saturating_add),
        micros,
        streams: u16::try_from(streams.len()).unwrap_or(u16::MAX),
    });
    let sum = |f: fn(&UdpCount) -> u64| {
        streams
            .iter()
            .map(|s| f(&s.count))
            .fold(0, u64::saturating_add)
    };
    emit(&Event::IperfUdp {
        side: IperfSide::Local,
        sending,
        packets: sum(|c| c.packets),
        lost: sum(|c| c.lost),
        out_of_order: (!sending).then(|| sum(|c| c.out_of_order)),
        jitter_us: streams
            .iter()
            .map(|s| s.count.jitter_us())
            .max()
            .unwrap_or(0),
    });
}

/// A cookie as iperf3 makes one: 36 characters of `a-z2-7` chosen from `seed`, then a NUL.
pub fn make_cookie(seed: u64) -> Cookie {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut cookie = [0u8; COOKIE_LEN];
    let mut x = seed;
    for (i, byte) in cookie.iter_mut().take(COOKIE_LEN - 1).enumerate() {
        // splitmix64: every character from a fresh 64-bit step.
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x ^ (i as u64);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        *byte = ALPHABET.get((z & 31) as usize).copied().unwrap_or(b'a');
    }
    cookie
}

/// What a client asks for, as its parameters say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Params {
    /// Parallel streams.
    pub streams: u16,
    /// Seconds, or 0 for a test ended by a byte or block count.
    pub secs: u32,
    /// Seconds at the start the client leaves out of its counts.
    pub omit: u32,
    /// The server sends.
    pub reverse: bool,
    /// Bytes to send in all (0: no limit).
    pub bytes: u64,
    /// Blocks of `len` to send in all (0: no limit).
    pub blocks: u64,
    /// The block length (the datagram length of a UDP test).
    pub len: u64,
    /// A UDP test (`-u`).
    pub udp: bool,
    /// A UDP test's rate per stream in bits per second (0: as fast as it goes).
    pub rate: u64,
    /// A UDP test's datagrams carry 64-bit counts.
    pub wide: bool,
}

impl Params {
    /// Reads a client's parameters: `Err` with the `SERVER_ERROR` code and the error for a
    /// test this implementation does not run, or a protocol error for what is not
    /// parameters at all.
    /// `udp`: the most streams of a UDP test (0: UDP tests are refused).
    fn parse(
        text: &[u8],
        max_streams: usize,
        udp: usize,
    ) -> core::result::Result<Self, (i32, Error)> {
        let Some(json) = Object::parse(text) else {
            return Err((0, Error::Protocol("the parameters are not a JSON object")));
        };
        let flag = |key| json.get(key).is_some_and(|v: Value<'_>| v.is_set());
        let count = |key| json.get(key).and_then(|v: Value<'_>| v.as_u64());
        let is_udp = flag("udp");
        if is_udp && udp == 0 {
            return Err((code::PROTOCOL, Error::Unsupported("UDP tests (-u)")));
        }
        if flag("sctp") {
            return Err((code::PROTOCOL, Error::Unsupported("SCTP tests")));
        }
        if flag("bidirectional") {
            return Err((
                code::UNIMPLEMENTED,
                Error::Unsupported("bidirectional tests (--bidir)"),
            ));
        }
        let streams = count("parallel").unwrap_or(1);
        let max_streams = if is_udp {
            max_streams.min(udp)
        } else {
            max_streams
        };
        if streams == 0 || streams > max_streams as u64 {
            return Err((
                code::NUM_STREAMS,
                Error::Unsupported("that many parallel streams (-P)"),
            ));
        }
        let clamp = |v: Option<u64>| u32::try_from(v.unwrap_or(0)).unwrap_or(u32::MAX);
        let wide = flag("udp_counters_64bit");
        let len = count("len").filter(|&l| l > 0);
        if is_udp && len.is_some_and(|l| l < udp_header_len(wide) as u64 || l > UDP_MAX_LEN) {
            return Err((
                code::UDP_BLOCK_SIZE,
                Error::Unsupported("that UDP datagram length (-l)"),
            ));
        }
        let default_len = if is_udp { UDP_LEN } else { BLOCK_LEN };
        Ok(Self {
            streams: u16::try_from(streams).unwrap_or(u16::MAX),
            secs: clamp(count("time")),
            omit: clamp(count("omit")),
            reverse: flag("reverse"),
            bytes: count("num").unwrap_or(0),
            blocks: count("blockcount").unwrap_or(0),
            len: len.unwrap_or(default_len),
            udp: is_udp,
            rate: if is_udp {
                count("bandwidth").unwrap_or(UDP_RATE)
            } else {
                0
            },
            wide,
        })
    }

    /// Bytes the sender may send in all (`None`: until the test ends).
    fn send_limit(&self) -> Option<u64> {
        match (self.bytes, self.blocks) {
            (0, 0) => None,
            (0, blocks) => Some(blocks.saturating_mul(self.len)),
            (bytes, _) => Some(bytes),
        }
    }

    /// Writes them as a client sends them.
    fn write(&self, w: &mut Writer<'_>) {
        w.begin_object();
        if self.udp {
            w.bool("udp", true);
            w.uint("bandwidth", self.rate);
            if self.wide {
                w.uint("udp_counters_64bit", 1);
            }
        } else {
            w.bool("tcp", true);
        }
        w.uint("omit", u64::from(self.omit));
        w.uint("time", u64::from(self.secs));
        w.uint("num", self.bytes);
        w.uint("blockcount", self.blocks);
        w.uint("parallel", u64::from(self.streams));
        if self.reverse {
            w.bool("reverse", true);
        }
        w.uint("len", self.len);
        w.str("client_version", "3.12");
        w.end_object();
    }
}

/// The totals of one side's test, from its results message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Totals {
    pub bytes: u64,
    pub micros: u64,
    pub streams: u16,
    /// UDP: datagrams (sum of the streams' counts), lost, and the largest jitter.
    pub packets: u64,
    pub lost: u64,
    pub jitter_us: u64,
}

/// Reads a peer's results message: the sum of its streams' bytes and its longest stream
/// time (`udp`: and their datagram counts); `None` if it is not a results message.
fn parse_results(text: &[u8], udp: bool) -> Option<Totals> {
    let json = Object::parse(text)?;
    let Value::Array(streams) = json.get("streams")? else {
        return None;
    };
    let mut totals = Totals::default();
    for stream in json::elements(streams) {
        let Value::Object(stream) = stream else {
            return None;
        };
        let stream = Object::parse(stream)?;
        let bytes = stream.get("bytes").and_then(|v| v.as_u64())?;
        let time = |key| stream.get(key).and_then(|v: Value<'_>| v.as_micros());
        let micros = time("end_time")
            .unwrap_or(0)
            .saturating_sub(time("start_time").unwrap_or(0));
        if udp {
            let count = |key| stream.get(key).and_then(|v: Value<'_>| v.as_u64());
            totals.packets = totals.packets.saturating_add(count("packets").unwrap_or(0));
            totals.lost = totals.lost.saturating_add(count("errors").unwrap_or(0));
            totals.jitter_us = totals.jitter_us.max(time("jitter").unwrap_or(0));
        }
        totals.bytes = totals.bytes.saturating_add(bytes);
        totals.micros = totals.micros.max(micros);
        totals.streams = totals.streams.saturating_add(1);
    }
    Some(totals)
}

/// One data connection of a test.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stream<T> {
    pub socket: T,
    /// iperf3's number for it: 1, 3, 4, 5, ... in the order the connections were made.
    pub id: u32,
    /// Bytes moved while the test ran.
    pub bytes: u64,
    /// The peer closed it.
    pub eof: bool,
}

/// iperf3's number for the `index`-th stream (from 0): 1, then 3, 4, 5, ...
pub(crate) fn stream_id(index: usize) -> u32 {
    let index = u32::try_from(index).unwrap_or(u32::MAX - 2);
    if index == 0 { 1 } else { index + 2 }
}

/// One stream's line of a results message.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Row {
    pub id: u32,
    pub bytes: u64,
    /// UDP: jitter in microseconds, datagrams lost, and the count (sent, or the highest
    /// received); 0 for TCP.
    pub jitter_us: u64,
    pub errors: u64,
    pub packets: u64,
}

/// Writes a results message for `streams`: `sending` says what their bytes are, `micros`
/// how long the test ran.
fn write_results<T>(w: &mut Writer<'_>, streams: &[Stream<T>], sending: bool, micros: u64) {
    write_rows(
        w,
        streams.iter().map(|s| Row {
            id: s.id,
            bytes: s.bytes,
            ..Row::default()
        }),
        false,
        sending,
        micros,
    );
}

/// Writes a UDP test's results message for `streams`, with their datagram counts.
pub(crate) fn write_udp_results<'s>(
    w: &mut Writer<'_>,
    streams: impl Iterator<Item = &'s UdpStream>,
    sending: bool,
    micros: u64,
) {
    let rows = streams.map(|s| Row {
        id: s.id,
        bytes: s.bytes,
        jitter_us: s.count.jitter_us(),
        errors: s.count.lost,
        packets: s.count.packets,
    });
    write_rows(w, rows, true, sending, micros);
}

/// Writes a results message with one entry per row (`udp`: with its datagram counts).
fn write_rows(
    w: &mut Writer<'_>,
    rows: impl Iterator<Item = Row>,
    udp: bool,
    sending: bool,
    micros: u64,
) {
    w.begin_object();
    w.int("cpu_util_total", 0);
    w.int("cpu_util_user", 0);
    w.int("cpu_util_system", 0);
    // Retransmits are not counted: a sender says 0 has them, a receiver -1 as iperf3.
    w.int("sender_has_retransmits", if sending { 0 } else { -1 });
    w.begin_array("streams");
    for row in rows {
        w.element_object();
        w.uint("id", u64::from(row.id));
        w.uint("bytes", row.bytes);
        w.int("retransmits", -1);
        if udp {
            w.seconds("jitter", row.jitter_us);
            w.uint("errors", row.errors);
            w.uint("packets", row.packets);
        } else {
            w.int("jitter", 0);
            w.int("errors", 0);
            w.int("packets", 0);
        }
        w.int("start_time", 0);
        w.seconds("end_time", micros);
        w.end_object();
    }
    w.end_array();
    w.end_object();
}

/// Most bytes one stream moves in one program run: a fast peer on a fast link may never
/// let a socket run dry (or fill up), and the run must end for the driver to read its
/// clock again and for the other streams and the control connection to have their turn.
pub const PUMP_BUDGET: u64 = 256 * 1024;

/// Moves data on every stream that is not done, until each would block or has moved
/// [`PUMP_BUDGET`] bytes: counts what arrived where it lies, or (`sending`) sends `buf`
/// while `limit` allows (and lowers it). Returns the bytes moved, or the first stream's
/// failure.
pub(crate) fn pump<S: Stack>(
    stack: &mut S,
    streams: &mut [Stream<S::Tcp>],
    sending: bool,
    buf: &mut [u8],
    limit: &mut Option<u64>,
) -> Result<u64> {
    let mut moved = 0u64;
    for stream in streams.iter_mut().filter(|s| !s.eof) {
        let mut budget = PUMP_BUDGET;
        while budget > 0 {
            let n = if sending {
                let room = limit.map_or(buf.len(), |l| {
                    usize::try_from(l).unwrap_or(usize::MAX).min(buf.len())
                });
                let Some(chunk) = buf.get(..room).filter(|c| !c.is_empty()) else {
                    break;
                };
                match stack.tcp_send(stream.socket, chunk) {
                    Ok(n) => {
                        if let Some(l) = limit.as_mut() {
                            *l = l.saturating_sub(n as u64);
                        }
                        n
                    }
                    Err(Error::WouldBlock) => break,
                    Err(e) => return Err(e),
                }
            } else {
                // Counted where the bytes lie: iperf3's payload is arbitrary, nothing
                // looks at it, so it is never copied out of the socket's ring.
                match stack.tcp_recv_with(stream.socket, usize::MAX, &mut |_| {}) {
                    Ok(Recv::Data(n)) => n,
                    Ok(Recv::Eof) => {
                        stream.eof = true;
                        break;
                    }
                    Err(Error::WouldBlock) => break,
                    Err(e) => return Err(e),
                }
            };
            stream.bytes += n as u64;
            moved += n as u64;
            budget = budget.saturating_sub(n as u64);
        }
    }
    Ok(moved)
}

/// Reads and drops what the streams have (a test's late data, which iperf3 does not
/// count either), at most [`PUMP_BUDGET`] bytes each; a stream that ends or fails is
/// marked done. Returns whether anything was read.
pub(crate) fn drain<S: Stack>(stack: &mut S, streams: &mut [Stream<S::Tcp>]) -> bool {
    let mut read = false;
    for stream in streams.iter_mut().filter(|s| !s.eof) {
        let mut budget = PUMP_BUDGET;
        while budget > 0 {
            match stack.tcp_recv_with(stream.socket, usize::MAX, &mut |_| {}) {
                Ok(Recv::Data(n)) => {
                    read = true;
                    budget = budget.saturating_sub(n as u64);
                }
                Err(Error::WouldBlock) => break,
                Ok(Recv::Eof) | Err(_) => {
                    stream.eof = true;
                    break;
                }
            }
        }
    }
    read
}

/// Interval reports and the test's clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meter {
    pub start: Instant,
    from: Instant,
    next: Instant,
    bytes: u64,
    pub sending: bool,
}

impl Meter {
    pub(crate) fn new(now: Instant, sending: bool) -> Self {
        Self {
            start: now,
            from: now,
            next: now + INTERVAL,
            bytes: 0,
            sending,
        }
    }

    /// Counts `bytes`, and reports the interval once its second is over.
    pub(crate) fn add(&mut self, bytes: u64, now: Instant, emit: &mut dyn FnMut(&Event<'_>)) {
        self.bytes += bytes;
        if now >= self.next {
            self.report(now, emit);
            // On the second's grid, unless the program was not run for longer.
            self.next = if now < self.next + INTERVAL {
                self.next + INTERVAL
            } else {
                now + INTERVAL
            };
        }
    }

    fn report(&mut self, now: Instant, emit: &mut dyn FnMut(&Event<'_>)) {
        emit(&Event::IperfInterval {
            start_us: micros(self.from - self.start),
            end_us: micros(now - self.start),
            bytes: self.bytes,
            sending: self.sending,
        });
        self.from = now;
        self.bytes = 0;
    }

    /// Reports the last, partial interval (when a tenth of a second or more) and returns
    /// the test's length in microseconds.
    pub(crate) fn finish(&mut self, now: Instant, emit: &mut dyn FnMut(&Event<'_>)) -> u64 {
        if now >= self.from + Duration::from_millis(100) {
            self.report(now, emit);
        }
        micros(now - self.start)
    }

    pub(crate) fn next(&self) -> Instant {
        self.next
    }
}

pub(crate) fn micros(d: Duration) -> u64 {
    d.total_micros()
}

/// This side's result event.
pub(crate) fn local_result<T>(
    streams: &[Stream<T>],
    sending: bool,
    micros: u64,
    emit: &mut dyn FnMut(&Event<'_>),
) {
    emit(&Event::IperfResult {
        side: IperfSide::Local,
        sending,
        bytes: streams.iter().map(|s| s.bytes).sum(),
        micros,
        streams: u16::try_from(streams.len()).unwrap_or(u16::MAX),
    });
}

/// What reading the control connection gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fill {
    /// The bytes asked for are in.
    Complete,
    /// Not yet: the connection would block.
    Partial,
    /// The peer closed its side first.
    Eof,
}

/// Where a JSON message being read is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Message {
    /// Reading its 4-byte length.
    Length,
    /// Reading this many bytes of JSON.
    Body(usize),
    /// Dropping this many bytes that do not fit in the buffer.
    Skip(usize),
}

/// A message read from the control connection.
pub(crate) enum Got<'a> {
    /// Not all in yet.
    Pending,
    /// The whole JSON text.
    Json(&'a [u8]),
    /// It did not fit and was dropped.
    TooLarge,
    /// The peer closed the connection first.
    Eof,
}

/// The control connection's buffers: what is being read and what is being sent.
pub(crate) struct Control<'b> {
    rx: &'b mut [u8],
    got: usize,
    tx: &'b mut [u8],
    queued: usize,
    sent: usize,
}

impl<'b> Control<'b> {
    /// Splits `buf` in a receiving and a sending half.
    pub(crate) fn new(buf: &'b mut [u8]) -> Self {
        let (rx, tx) = buf.split_at_mut(buf.len() / 2);
        Self {
            rx,
            got: 0,
            tx,
            queued: 0,
            sent: 0,
        }
    }

    /// Forgets what was read and queued (a new connection).
    pub(crate) fn reset(&mut self) {
        self.got = 0;
        self.queued = 0;
        self.sent = 0;
    }

    /// Reads until `want` bytes are in (never more), then [`Fill::Complete`]; they are
    /// then [`bytes`](Self::bytes) until [`consume`](Self::consume).
    pub(crate) fn fill<S: Stack>(
        &mut self,
        stack: &mut S,
        socket: S::Tcp,
        want: usize,
    ) -> Result<Fill> {
        let want = want.min(self.rx.len());
        while self.got < want {
            let Some(room) = self.rx.get_mut(self.got..want) else {
                break;
            };
            match stack.tcp_recv(socket, room) {
                Ok(Recv::Data(n)) => self.got += n,
                Ok(Recv::Eof) => return Ok(Fill::Eof),
                Err(Error::WouldBlock) => return Ok(Fill::Partial),
                Err(e) => return Err(e),
            }
        }
        Ok(Fill::Complete)
    }

    /// The bytes read so far.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.rx.get(..self.got).unwrap_or_default()
    }

    /// Drops what was read: the next [`fill`](Self::fill) starts a new message.
    pub(crate) fn consume(&mut self) {
        self.got = 0;
    }

    /// Reads one state byte.
    pub(crate) fn byte<S: Stack>(&mut self, stack: &mut S, socket: S::Tcp) -> Result<Option<u8>> {
        match self.fill(stack, socket, 1)? {
            Fill::Complete => {
                let byte = self.bytes().first().copied();
                self.consume();
                Ok(byte)
            }
            Fill::Partial => Ok(None),
            Fill::Eof => Err(Error::Protocol("the peer closed the control connection")),
        }
    }

    /// Reads a length-prefixed JSON message, `at` saying how far it got. One longer than
    /// the receiving half is [`Got::TooLarge`]: at once (`skip` false), or once its bytes
    /// have been read and dropped (`skip` true).
    pub(crate) fn message<S: Stack>(
        &mut self,
        stack: &mut S,
        socket: S::Tcp,
        at: &mut Message,
        skip: bool,
    ) -> Result<Got<'_>> {
        loop {
            match *at {
                Message::Length => match self.fill(stack, socket, 4)? {
                    Fill::Complete => {
                        let mut len = [0u8; 4];
                        len.copy_from_slice(self.bytes().get(..4).unwrap_or(&[0; 4]));
                        self.consume();
                        let len = usize::try_from(u32::from_be_bytes(len)).unwrap_or(usize::MAX);
                        *at = if len <= self.rx.len() {
                            Message::Body(len)
                        } else if skip {
                            Message::Skip(len)
                        } else {
                            return Ok(Got::TooLarge);
                        };
                    }
                    Fill::Partial => return Ok(Got::Pending),
                    Fill::Eof => return Ok(Got::Eof),
                },
                Message::Body(len) => {
                    return match self.fill(stack, socket, len)? {
                        Fill::Complete => {
                            *at = Message::Length;
                            Ok(Got::Json(self.bytes()))
                        }
                        Fill::Partial => Ok(Got::Pending),
                        Fill::Eof => Ok(Got::Eof),
                    };
                }
                Message::Skip(0) => {
                    *at = Message::Length;
                    return Ok(Got::TooLarge);
                }
                Message::Skip(left) => {
                    let fill = self.fill(stack, socket, left)?;
                    let took = self.got;
                    self.consume();
                    *at = Message::Skip(left - took.min(left));
                    match fill {
                        Fill::Complete => {}
                        Fill::Partial => return Ok(Got::Pending),
                        Fill::Eof => return Ok(Got::Eof),
                    }
                }
            }
        }
    }

    /// Queues `bytes` to send; `Err` if the sending half has no room for them.
    pub(crate) fn queue(&mut self, bytes: &[u8]) -> Result<()> {
        let end = self.queued + bytes.len();
        let max = self.tx.len();
        let slot = self
            .tx
            .get_mut(self.queued..end)
            .ok_or(Error::MessageTooLarge { len: end, max })?;
        slot.copy_from_slice(bytes);
        self.queued = end;
        Ok(())
    }

    /// Queues a JSON message (its length, then the text `write` makes), then `after` (a
    /// state byte or none).
    pub(crate) fn queue_json(
        &mut self,
        write: impl FnOnce(&mut Writer<'_>),
        after: &[u8],
    ) -> Result<()> {
        let max = self.tx.len();
        let too_large = Error::MessageTooLarge { len: max, max };
        let start = self.queued;
        let body = self.tx.get_mut(start + 4..).ok_or(too_large)?;
        let mut writer = Writer::new(body);
        write(&mut writer);
        let len = writer.finish().ok_or(too_large)?;
        let prefix = u32::try_from(len).map_err(|_| too_large)?.to_be_bytes();
        self.tx
            .get_mut(start..start + 4)
            .ok_or(too_large)?
            .copy_from_slice(&prefix);
        self.queued = start + 4 + len;
        self.queue(after)
    }

    /// Sends what is queued until done or the connection would block; `Ok(true)` once
    /// everything queued has been handed to the stack.
    pub(crate) fn flush<S: Stack>(&mut self, stack: &mut S, socket: S::Tcp) -> Result<bool> {
        while self.sent < self.queued {
            let data = self.tx.get(self.sent..self.queued).unwrap_or_default();
            match stack.tcp_send(socket, data) {
                Ok(n) => self.sent += n,
                Err(Error::WouldBlock) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        self.queued = 0;
        self.sent = 0;
        Ok(true)
    }

    /// Whether anything queued is still unsent.
    pub(crate) fn pending(&self) -> bool {
        self.sent < self.queued
    }
}

/// The peer's result event, from its results message (none if it sent none that reads),
/// and for a `udp` test its datagram counts.
pub(crate) fn remote_result(
    text: &[u8],
    sending: bool,
    udp: bool,
    emit: &mut dyn FnMut(&Event<'_>),
) {
    if let Some(totals) = parse_results(text, udp) {
        emit(&Event::IperfResult {
            side: IperfSide::Remote,
            sending,
            bytes: totals.bytes,
            micros: totals.micros,
            streams: totals.streams,
        });
        if udp {
            emit(&Event::IperfUdp {
                side: IperfSide::Remote,
                sending,
                packets: totals.packets,
                lost: if sending { 0 } else { totals.lost },
                out_of_order: None,
                jitter_us: totals.jitter_us,
            });
        }
    }
}

/// The event for a control connection that was agreed on.
pub(crate) fn test_event(conn: ConnId, peer: SocketAddrV4, params: &Params) -> Event<'static> {
    Event::IperfTest {
        conn,
        peer,
        streams: params.streams,
        secs: params.secs,
        reverse: params.reverse,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_look_like_iperf3s() {
        let a = make_cookie(1);
        assert_eq!(a[36], 0);
        assert!(
            a[..36]
                .iter()
                .all(|c| c.is_ascii_lowercase() || (b'2'..=b'7').contains(c))
        );
        assert_ne!(a, make_cookie(2));
        assert_eq!(a, make_cookie(1));
    }

    #[test]
    fn stream_ids_skip_two() {
        let ids: [u32; 4] = core::array::from_fn(stream_id);
        assert_eq!(ids, [1, 3, 4, 5]);
    }

    #[test]
    fn parameters_a_server_takes_and_refuses() {
        let p = Params::parse(
            br#"{"tcp":true,"omit":0,"time":2,"num":0,"blockcount":0,"parallel":2,"reverse":true,"len":131072,"pacing_timer":1000,"client_version":"3.12"}"#,
            4,
            0,
        )
        .unwrap();
        assert_eq!(
            (p.streams, p.secs, p.reverse, p.send_limit()),
            (2, 2, true, None)
        );
        let refused = |text: &[u8]| Params::parse(text, 4, 0).unwrap_err().0;
        assert_eq!(refused(br#"{"udp":true,"parallel":1}"#), code::PROTOCOL);
        assert_eq!(
            refused(br#"{"tcp":true,"bidirectional":true}"#),
            code::UNIMPLEMENTED
        );
        assert_eq!(refused(br#"{"tcp":true,"parallel":5}"#), code::NUM_STREAMS);
        assert_eq!(refused(br#"{"tcp":true,"parallel":0}"#), code::NUM_STREAMS);
        assert_eq!(refused(b"GET / HTTP/1.1"), 0);
        let n = Params::parse(br#"{"tcp":true,"num":1000,"len":100}"#, 4, 0).unwrap();
        assert_eq!((n.streams, n.send_limit()), (1, Some(1000)));
        let k = Params::parse(br#"{"tcp":true,"blockcount":3,"len":100}"#, 4, 0).unwrap();
        assert_eq!(k.send_limit(), Some(300));
    }

    #[test]
    fn parameters_read_back_as_written() {
        let params = Params {
            streams: 3,
            secs: 7,
            omit: 0,
            reverse: true,
            bytes: 0,
            blocks: 0,
            len: BLOCK_LEN,
            udp: false,
            rate: 0,
            wide: false,
        };
        let mut buf = [0u8; 512];
        let mut w = Writer::new(&mut buf);
        params.write(&mut w);
        let len = w.finish().unwrap();
        assert_eq!(Params::parse(&buf[..len], 4, 0), Ok(params));
    }

    #[test]
    fn udp_parameters_a_udp_server_takes_and_refuses() {
        let p = Params::parse(
            br#"{"udp":true,"omit":0,"time":2,"parallel":2,"reverse":true,"len":1448,"bandwidth":10485760,"pacing_timer":1000,"client_version":"3.12"}"#,
            4,
            4,
        )
        .unwrap();
        assert_eq!(
            (p.udp, p.streams, p.reverse, p.len, p.rate, p.wide),
            (true, 2, true, 1448, 10_485_760, false)
        );
        // iperf3's defaults when the client names none; 64-bit counts when asked.
        let d = Params::parse(br#"{"udp":true,"udp_counters_64bit":1}"#, 4, 4).unwrap();
        assert_eq!((d.len, d.rate, d.wide), (UDP_LEN, UDP_RATE, true));
        // A rate of 0 is "as fast as it goes", an absurd one is taken as it is.
        let z = Params::parse(br#"{"udp":true,"bandwidth":0}"#, 4, 4).unwrap();
        assert_eq!(z.rate, 0);
        let huge = Params::parse(br#"{"udp":true,"bandwidth":1e30}"#, 4, 4).unwrap();
        assert!(huge.rate > 1 << 60);
        let refused = |text: &[u8]| Params::parse(text, 4, 4).unwrap_err().0;
        // Too short for the header (16 bytes with 64-bit counts), or longer than UDP.
        assert_eq!(refused(br#"{"udp":true,"len":11}"#), code::UDP_BLOCK_SIZE);
        assert_eq!(
            refused(br#"{"udp":true,"len":12,"udp_counters_64bit":1}"#),
            code::UDP_BLOCK_SIZE
        );
        assert_eq!(
            refused(br#"{"udp":true,"len":65508}"#),
            code::UDP_BLOCK_SIZE
        );
        assert!(Params::parse(br#"{"udp":true,"len":65507}"#, 4, 4).is_ok());
        assert!(Params::parse(br#"{"udp":true,"len":12}"#, 4, 4).is_ok());
        // A server without UDP still refuses them as before.
        assert_eq!(
            Params::parse(br#"{"udp":true}"#, 4, 0).unwrap_err().0,
            code::PROTOCOL
        );
    }

    #[test]
    fn udp_headers_read_back_as_written() {
        let mut d = [0xaau8; 20];
        write_udp_header(&mut d, false, 7, 3_000_042);
        assert_eq!(&d[..12], &[0, 0, 0, 3, 0, 0, 0, 42, 0, 0, 0, 7]);
        assert_eq!(read_udp_header(&d, false), Some((7, 3_000_042)));
        write_udp_header(&mut d, true, u64::MAX, 5);
        assert_eq!(read_udp_header(&d, true), Some((u64::MAX, 5)));
        // Too short for the header: none, never a panic.
        assert_eq!(read_udp_header(&d[..11], false), None);
        assert_eq!(read_udp_header(&d[..15], true), None);
        assert_eq!(read_udp_header(&[], false), None);
        let mut short = [0u8; 4];
        write_udp_header(&mut short, false, 1, 1);
        assert_eq!(short, [0; 4], "left as it is");
    }

    #[test]
    fn udp_counts_losses_reordering_and_jitter_as_iperf3() {
        let mut c = UdpCount::default();
        // 1, 2, then 5: 3 and 4 lost; then 4 late: out of order, one loss less.
        for (count, sent, arrived) in [(1, 0, 100), (2, 1000, 1100), (5, 4000, 4100)] {
            c.datagram(count, sent, arrived);
        }
        assert_eq!((c.packets, c.lost, c.out_of_order), (5, 2, 0));
        assert_eq!(c.jitter_us(), 0, "constant transit: no jitter");
        c.datagram(4, 3000, 4200);
        assert_eq!(
            (c.packets, c.lost, c.out_of_order, c.received),
            (5, 1, 1, 4)
        );
        // That one's transit was 1200 against 100: |D| = 1100, J = 1100/16.
        assert_eq!(c.jitter_us(), 68);
        // A duplicate of the highest is out of order too (as in iperf3), and losses never
        // go below 0.
        let mut d = UdpCount::default();
        d.datagram(1, 0, 0);
        d.datagram(1, 0, 0);
        d.datagram(1, 0, 0);
        assert_eq!((d.packets, d.lost, d.out_of_order), (1, 0, 2));
        // A count of 0 (before the first iperf3 sends) is out of order.
        let mut z = UdpCount::default();
        z.datagram(0, 0, 0);
        assert_eq!((z.packets, z.lost, z.out_of_order), (0, 0, 1));
        // A jump to 2^32-1, or 2^64-1, counts that gap as lost; nothing overflows, and
        // what comes after is out of order.
        let mut j = UdpCount::default();
        j.datagram(1, 0, 0);
        j.datagram(u64::from(u32::MAX), 0, 0);
        assert_eq!(
            (j.packets, j.lost),
            (u64::from(u32::MAX), u64::from(u32::MAX) - 2)
        );
        j.datagram(2, 0, 0);
        assert_eq!((j.lost, j.out_of_order), (u64::from(u32::MAX) - 3, 1));
        let mut w = UdpCount::default();
        w.datagram(u64::MAX, 0, 0);
        w.datagram(u64::MAX, i64::MIN, i64::MAX);
        w.datagram(1, i64::MAX, i64::MIN);
        assert_eq!(
            (w.packets, w.lost, w.out_of_order),
            (u64::MAX, u64::MAX - 3, 2)
        );
        // Clocks that jump by the most an i64 holds: the jitter saturates, no overflow.
        let mut h = UdpCount::default();
        h.datagram(1, 0, 0);
        for n in 2..100 {
            h.datagram(n, 0, i64::MAX);
            h.datagram(n + 100, 0, 0);
        }
        assert!(h.jitter_us() > 1 << 50, "{}", h.jitter_us());
    }

    #[test]
    fn results_read_back_as_written_and_fit_the_buffer() {
        let streams: [Stream<()>; 16] = core::array::from_fn(|i| Stream {
            socket: (),
            id: stream_id(i),
            bytes: u64::MAX / 32,
            eof: false,
        });
        let mut buf = [0u8; control_buffer_len(16) / 2];
        let mut w = Writer::new(&mut buf);
        write_results(&mut w, &streams, true, 4_294_967_295_000_000);
        let len = w.finish().expect("16 streams' results fit their buffer");
        let totals = parse_results(&buf[..len], false).unwrap();
        assert_eq!(totals.streams, 16);
        // A UDP test's, with its counts, in its own buffer.
        let rows = (0..16).map(|i| Row {
            id: stream_id(i),
            bytes: u64::MAX,
            jitter_us: u64::MAX,
            errors: u64::MAX,
            packets: u64::MAX,
        });
        let mut udp = [0u8; udp_control_buffer_len(16) / 2];
        let mut w = Writer::new(&mut udp);
        write_rows(&mut w, rows, true, false, 4_294_967_295_000_000);
        let n = w
            .finish()
            .expect("16 UDP streams' results fit their buffer");
        let t = parse_results(&udp[..n], true).unwrap();
        assert_eq!((t.streams, t.packets, t.lost), (16, u64::MAX, u64::MAX));
        assert_eq!(totals.bytes, 16 * (u64::MAX / 32));
        assert_eq!(totals.micros, 4_294_967_295_000_000);
    }
}
