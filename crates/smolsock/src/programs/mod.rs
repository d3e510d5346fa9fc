//! The four programs of the seed as non-blocking state machines over a [`Stack`].
//!
//! | seed program | state machine | input |
//! |---|---|---|
//! | UDP receiver | [`UdpReceiver`] | none |
//! | UDP sender | [`UdpSender`] | one datagram per message |
//! | TCP client | [`TcpClient`] | one message per line, or a bulk byte count |
//! | TCP server | [`TcpServer`] | reply lines in interactive mode |
//!
//! A driver (the host's poll loop, a board's `main`) repeats [`crate::runner::round`]: let
//! the stack move packets, call [`Program::poll`], feed input when
//! [`Program::wants_input`], and sleep until a packet arrives or the earliest of the
//! stack's and the program's deadlines. `poll` never blocks and reports what happened as
//! [`Event`]s.

pub mod iperf3;
mod tcp_client;
mod tcp_server;
mod udp_recv;
mod udp_send;

pub use crate::net::TcpTimeouts;
pub use tcp_client::{DEFAULT_REPLY_TIMEOUT, Pace, TcpClient, TcpClientConfig};
pub use tcp_server::{RECV_CHUNK, ServeMode, TcpServer, TcpServerConfig};
pub use udp_recv::{UdpReceiver, UdpReceiverConfig};
pub use udp_send::{UdpSender, UdpSenderConfig};

use smoltcp::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::event::{Counter, Event};
use crate::net::{Recv, Stack};

/// Keep-alive of every connection unless configured otherwise: a probe after 30 s without
/// traffic and every 30 s after. With [`DEFAULT_GIVE_UP`], a peer that vanished without a
/// word is dropped about a minute after it last answered.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(30);

/// Give-up of every connection unless configured otherwise: a connection whose peer has
/// been silent for 60 s while we wait for it (unacknowledged data, keep-alive probes, our
/// FIN) is aborted and fails with [`Error::TimedOut`].
pub const DEFAULT_GIVE_UP: Duration = Duration::from_secs(60);

/// Idle timeout of every connection unless configured otherwise: a connection on which no
/// data moved either way for 5 minutes is closed by the program. Keep-alive answers and
/// zero-window probes do not count as data, so a peer that is alive but never sends nor
/// reads loses its slot too.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// The default stack bounds: [`DEFAULT_KEEPALIVE`] and [`DEFAULT_GIVE_UP`].
pub const DEFAULT_TIMEOUTS: TcpTimeouts = TcpTimeouts {
    keepalive: Some(DEFAULT_KEEPALIVE),
    give_up: Some(DEFAULT_GIVE_UP),
};

/// What one call of [`Program::poll`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Poll {
    /// Something happened (data moved, state changed): poll the stack and the program
    /// again before sleeping.
    pub progressed: bool,
    /// The program needs to run again at this time even if no packet arrives.
    pub wake_at: Option<Instant>,
}

impl Poll {
    pub(crate) fn merge_wake(&mut self, at: Option<Instant>) {
        self.wake_at = match (self.wake_at, at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

/// Where a program is: not started yet, running on its socket (or listener) `T`, or
/// finished. The UDP programs and the server live by it; the client, which goes from one
/// connection to the next, has states of its own.
#[derive(Clone, Copy)]
pub(crate) enum Run<T> {
    /// Before the first poll opens the socket.
    Start,
    /// Working on `T`.
    Running(T),
    /// Finished, with the [`Program::outcome`].
    Done(Result<()>),
}

impl<T> Run<T> {
    /// `None` while not done, else the result: [`Program::outcome`].
    pub(crate) fn outcome(&self) -> Option<Result<()>> {
        match self {
            Run::Done(result) => Some(*result),
            _ => None,
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        matches!(self, Run::Done(_))
    }

    /// Fails the whole program (no connection or peer to blame): reports `error`, done.
    pub(crate) fn fail(&mut self, error: Error, emit: &mut dyn FnMut(&Event<'_>)) {
        emit(&Event::Error {
            conn: None,
            peer: None,
            error,
        });
        *self = Run::Done(Err(error));
    }

    /// Done, successfully unless it had already failed (for [`Program::shutdown`]).
    pub(crate) fn end(&mut self) {
        if !self.is_done() {
            *self = Run::Done(Ok(()));
        }
    }
}

/// A program of the seed, driven by polling.
pub trait Program<S: Stack> {
    /// Does all the work possible now without blocking, reporting it through `emit`.
    fn poll(&mut self, stack: &mut S, now: Instant, emit: &mut dyn FnMut(&Event<'_>)) -> Poll;

    /// `None` while running; `Some(Ok(()))` once finished, `Some(Err(e))` once failed.
    fn outcome(&self) -> Option<Result<()>>;

    /// Whether [`input`](Self::input) would take a message now.
    fn wants_input(&self) -> bool {
        false
    }

    /// Gives the program one message (a line typed by the user, without its newline).
    fn input(&mut self, _message: &[u8]) -> Result<()> {
        Err(Error::InputClosed)
    }

    /// Tells the program no more input will come (end of stdin).
    fn end_input(&mut self) {}

    /// Ends the program now (a signal, a fatal error): closes every connection, with a
    /// FIN, or a reset where data would be lost (received data not read, or data queued
    /// and not yet acknowledged), reports each one's closed event with its totals, and
    /// finishes. The driver then lets the stack send the last segments.
    fn shutdown(&mut self, _stack: &mut S, _emit: &mut dyn FnMut(&Event<'_>)) {}
}

/// When data last moved on one connection, for the idle timeout: bytes received, or our
/// unacknowledged byte count going down. Keep-alive answers and zero-window probes move
/// neither, so they do not keep a connection alive.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Liveness {
    last: Instant,
    bytes_in: u64,
    unacked: usize,
}

impl Liveness {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            last: now,
            bytes_in: 0,
            unacked: 0,
        }
    }

    /// Takes the connection's counts at `now`; data moved if more bytes came in or fewer
    /// are unacknowledged than at the last look.
    pub(crate) fn observe<S: Stack>(
        &mut self,
        stack: &S,
        socket: S::Tcp,
        counter: &Counter,
        now: Instant,
    ) {
        let (bytes_in, unacked) = (counter.bytes_in(), stack.tcp_unacked(socket));
        if bytes_in > self.bytes_in || unacked < self.unacked {
            self.last = now;
        }
        self.bytes_in = bytes_in;
        self.unacked = unacked;
    }

    /// When the connection expires without more data (`None`: no idle timeout).
    pub(crate) fn deadline(&self, idle: Option<Duration>) -> Option<Instant> {
        idle.map(|idle| self.last + idle)
    }

    /// Whether no data moved for `idle` up to `now`.
    pub(crate) fn expired(&self, idle: Option<Duration>, now: Instant) -> bool {
        self.deadline(idle).is_some_and(|at| now >= at)
    }
}

/// Whether closing `socket` now would lose data: received bytes not read yet (one read
/// tells; what it took is counted in `counter`) or sent bytes not acknowledged yet.
pub(crate) fn would_lose<S: Stack>(
    stack: &mut S,
    socket: S::Tcp,
    buf: &mut [u8],
    counter: &mut Counter,
) -> bool {
    let unread = match stack.tcp_recv(socket, buf) {
        Ok(Recv::Data(n)) => {
            counter.received(buf.get(..n).unwrap_or_default());
            true
        }
        _ => false,
    };
    unread || stack.tcp_unacked(socket) > 0
}

/// Copies `message` to the front of `buf` for sending; returns its length, or
/// `MessageTooLarge` when it does not fit (it is refused whole, never cut).
pub(crate) fn stage(buf: &mut [u8], message: &[u8]) -> Result<usize> {
    let max = buf.len();
    let slot = buf.get_mut(..message.len()).ok_or(Error::MessageTooLarge {
        len: message.len(),
        max,
    })?;
    slot.copy_from_slice(message);
    Ok(message.len())
}

/// The length of the bulk pattern's cycle: a prime, so that a chunk of the stream that is
/// lost, duplicated or moved (by any power of two, say) changes the CRC.
pub const PATTERN_PERIOD: usize = 251;

/// The bytes of the bulk pattern at stream offset `offset`: 0, 1, ..., 250, 0, 1, ... (see
/// [`PATTERN_PERIOD`]).
pub fn fill_pattern(offset: u64, out: &mut [u8]) {
    let mut value = (offset % PATTERN_PERIOD as u64) as u8;
    for byte in out.iter_mut() {
        *byte = value;
        value = if value == 250 { 0 } else { value + 1 };
    }
}
