//! The seed's TCP client: `connect`, send what the user types, print the replies, close.

use core::net::SocketAddrV4;

use smoltcp::time::{Duration, Instant};

use super::{Liveness, PATTERN_PERIOD, Poll, Program, fill_pattern, would_lose};
use crate::error::{Error, Result};
use crate::event::{CloseReason, ConnId, Counter, Event, Proto};
use crate::net::{Phase, Recv, Stack, TcpTimeouts};

/// How long a [`TcpClient`] waits for the server to answer a message unless configured
/// otherwise, like the tutorial's `settimeout(10)`.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// How a [`TcpClient`] on a long connection paces its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Pace {
    /// The next message waits until the server has answered the last one (any data, or
    /// its close), as the tutorial's client sends a line, reads the reply, then sends the
    /// next: for typed input.
    LockStep,
    /// Each message is queued as soon as the one before it is: for scripts and files,
    /// where waiting for every reply would only slow the transfer.
    Pipeline,
}

/// Settings of a [`TcpClient`].
#[derive(Debug, Clone, Copy)]
pub struct TcpClientConfig {
    /// The server.
    pub to: SocketAddrV4,
    /// One connection per message (the seed's "short connection"); otherwise one
    /// connection carries every message (a "long connection").
    pub short: bool,
    /// Whether a long connection waits for each answer before sending the next message.
    /// Short connections and bulk transfers ignore it.
    pub pace: Pace,
    /// Longest wait for the handshake, and for the server to close once we have.
    pub timeout: Duration,
    /// Send this many bytes of a fixed pattern instead of messages (a bulk transfer);
    /// what comes back is counted, not printed.
    pub bulk: Option<u64>,
    /// After a message is sent, the longest wait for the server to answer (any data, or
    /// its close) before the client fails with [`Error::TimedOut`]; `None`: no limit.
    /// Bulk transfers expect no answer and ignore it. See [`DEFAULT_REPLY_TIMEOUT`].
    pub reply_timeout: Option<Duration>,
    /// Close the connection when no data moved either way for this long (a FIN, or a
    /// reset when data would be lost) and fail with [`Error::TimedOut`]; `None`: never.
    /// See [`DEFAULT_IDLE_TIMEOUT`](super::DEFAULT_IDLE_TIMEOUT).
    pub idle_timeout: Option<Duration>,
    /// Keep-alive and give-up the stack applies to each connection. See
    /// [`DEFAULT_TIMEOUTS`](super::DEFAULT_TIMEOUTS).
    pub timeouts: TcpTimeouts,
}

#[derive(Clone, Copy)]
enum State<T> {
    /// No connection (before the first, or between short connections).
    Idle,
    Connecting {
        socket: T,
        deadline: Instant,
    },
    Open {
        socket: T,
    },
    /// Our side is shut down; reading until the server closes too.
    Draining {
        socket: T,
        deadline: Instant,
    },
    Done(Result<()>),
}

/// Connects from an ephemeral port (rule S2), sends each message, reports what comes back,
/// and closes: after the last message on a long connection, after each message on a short
/// one. The server's close shows as end-of-stream (rule S9).
pub struct TcpClient<'b, S: Stack> {
    config: TcpClientConfig,
    tx: &'b mut [u8],
    rx: &'b mut [u8],
    pending: Option<(usize, usize)>,
    input_ended: bool,
    bulk_sent: u64,
    /// `tx` holds the bulk pattern from offset 0 (see [`PATTERN_PERIOD`]).
    pattern_filled: bool,
    conn: ConnId,
    counter: Counter,
    state: State<S::Tcp>,
    live: Liveness,
    /// When the answer to the last message sent is due.
    reply_due: Option<Instant>,
    /// In lock-step, the last message sent has not been answered yet.
    awaiting: bool,
}

impl<'b, S: Stack> TcpClient<'b, S> {
    /// A client whose messages can be up to `tx.len()` bytes and whose receives take up to
    /// `rx.len()` bytes at a time.
    pub fn new(config: TcpClientConfig, tx: &'b mut [u8], rx: &'b mut [u8]) -> Self {
        Self {
            config,
            tx,
            rx,
            pending: None,
            input_ended: false,
            bulk_sent: 0,
            pattern_filled: false,
            conn: 0,
            counter: Counter::default(),
            state: State::Idle,
            live: Liveness::new(Instant::ZERO),
            reply_due: None,
            awaiting: false,
        }
    }

    /// Fails the connection `socket` with `error` (the stack tells a reset from a give-up).
    fn broke(
        &mut self,
        stack: &mut S,
        socket: S::Tcp,
        error: Error,
        emit: &mut dyn FnMut(&Event<'_>),
    ) {
        stack.tcp_abort(socket);
        self.fail(error, emit);
    }

    /// Closes `socket` by the program's own decision: a FIN, or a reset when data would
    /// be lost; reports why and the totals.
    fn close_now(
        &mut self,
        stack: &mut S,
        socket: S::Tcp,
        reason: CloseReason,
        emit: &mut dyn FnMut(&Event<'_>),
    ) {
        let pending = self.pending.is_some_and(|(len, offset)| offset < len);
        let reset = pending || would_lose(stack, socket, self.rx, &mut self.counter);
        emit(&Event::Closing {
            conn: self.conn,
            peer: self.config.to,
            reason,
            reset,
        });
        if reset {
            stack.tcp_abort(socket);
        } else {
            stack.tcp_close(socket);
        }
        emit(&Event::Closed {
            proto: Proto::Tcp,
            conn: Some(self.conn),
            totals: self.counter.totals(),
        });
    }

    /// The idle and reply deadlines of the open connection `socket` at `now`: `Some`
    /// with the error to end on once one has passed.
    fn overdue(&mut self, stack: &S, socket: S::Tcp, now: Instant) -> Option<Deadline> {
        self.live.observe(stack, socket, &self.counter, now);
        if self.live.expired(self.config.idle_timeout, now) {
            return Some(Deadline::Idle);
        }
        if self.reply_due.is_some_and(|due| now >= due) {
            return Some(Deadline::Reply);
        }
        None
    }

    fn wake_for_deadlines(&self, poll: &mut Poll) {
        poll.merge_wake(self.live.deadline(self.config.idle_timeout));
        poll.merge_wake(self.reply_due);
    }

    fn fail(&mut self, error: Error, emit: &mut dyn FnMut(&Event<'_>)) {
        emit(&Event::Error {
            conn: (self.conn > 0).then_some(self.conn),
            peer: Some(self.config.to),
            error,
        });
        self.state = State::Done(Err(error));
    }

    fn no_more_messages(&self) -> bool {
        self.input_ended && self.pending.is_none()
    }

    /// Reads everything available; `Ok(true)` at end-of-stream.
    fn receive(
        &mut self,
        stack: &mut S,
        socket: S::Tcp,
        poll: &mut Poll,
        emit: &mut dyn FnMut(&Event<'_>),
    ) -> Result<bool> {
        loop {
            match stack.tcp_recv(socket, self.rx) {
                Ok(Recv::Data(n)) => {
                    let data = self.rx.get(..n).unwrap_or_default();
                    self.counter.received(data);
                    self.reply_due = None;
                    self.awaiting = false;
                    if self.config.bulk.is_none() {
                        emit(&Event::Received {
                            proto: Proto::Tcp,
                            conn: Some(self.conn),
                            from: self.config.to,
                            data,
                            size: n,
                        });
                    }
                    poll.progressed = true;
                }
                Ok(Recv::Eof) => {
                    self.reply_due = None;
                    self.awaiting = false;
                    emit(&Event::PeerClosed {
                        conn: self.conn,
                        peer: self.config.to,
                    });
                    poll.progressed = true;
                    return Ok(true);
                }
                Err(Error::WouldBlock) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
    }

    /// Queues what it can of the pending message or the bulk pattern; `Ok(true)` once
    /// everything this connection had to send is queued.
    fn send(
        &mut self,
        stack: &mut S,
        socket: S::Tcp,
        now: Instant,
        poll: &mut Poll,
        emit: &mut dyn FnMut(&Event<'_>),
    ) -> Result<bool> {
        if let Some(total) = self.config.bulk {
            // The pattern repeats every PATTERN_PERIOD bytes: once `tx` holds it from
            // offset 0, the bytes at any stream offset start at that offset's place in
            // the cycle, and no byte is written again. A `tx` too short for that is
            // filled for each send.
            let periodic = self.tx.len() > PATTERN_PERIOD;
            if periodic && !self.pattern_filled {
                fill_pattern(0, self.tx);
                self.pattern_filled = true;
            }
            while self.bulk_sent < total {
                let left = usize::try_from(total - self.bulk_sent).unwrap_or(usize::MAX);
                let start = if periodic {
                    (self.bulk_sent % PATTERN_PERIOD as u64) as usize
                } else {
                    0
                };
                let room = self.tx.len().saturating_sub(start);
                let Some(chunk) = self.tx.get_mut(start..start + left.min(room)) else {
                    break;
                };
                if !periodic {
                    fill_pattern(self.bulk_sent, chunk);
                }
                match stack.tcp_send(socket, chunk) {
                    Ok(n) => {
                        self.counter.sent(chunk.get(..n).unwrap_or_default());
                        self.bulk_sent += n as u64;
                        poll.progressed = true;
                    }
                    Err(Error::WouldBlock) => return Ok(false),
                    Err(e) => return Err(e),
                }
            }
            self.report_sent(usize::try_from(total).unwrap_or(usize::MAX), emit);
            return Ok(true);
        }
        while let Some((len, offset)) = self.pending {
            if offset < len {
                let data = self.tx.get(offset..len).unwrap_or_default();
                match stack.tcp_send(socket, data) {
                    Ok(n) => {
                        self.counter.sent(data.get(..n).unwrap_or_default());
                        self.pending = Some((len, offset + n));
                        poll.progressed = true;
                        continue;
                    }
                    Err(Error::WouldBlock) => return Ok(false),
                    Err(e) => return Err(e),
                }
            }
            self.report_sent(len, emit);
            self.reply_due = self.config.reply_timeout.map(|t| now + t);
            self.awaiting = self.config.pace == Pace::LockStep && !self.config.short;
            self.pending = None;
            poll.progressed = true;
            if self.config.short {
                return Ok(true);
            }
        }
        // In lock-step the last answer is read before our side closes, as the tutorial's
        // client reads its reply before `close`.
        Ok(self.input_ended && !self.awaiting)
    }

    /// Reports `len` bytes, a message or the whole bulk transfer, as queued on the
    /// connection.
    fn report_sent(&self, len: usize, emit: &mut dyn FnMut(&Event<'_>)) {
        emit(&Event::Sent {
            proto: Proto::Tcp,
            conn: Some(self.conn),
            to: self.config.to,
            len,
        });
    }

    /// Handles an overdue deadline of the open connection `socket`.
    fn expire(
        &mut self,
        stack: &mut S,
        socket: S::Tcp,
        deadline: Deadline,
        emit: &mut dyn FnMut(&Event<'_>),
    ) {
        match deadline {
            Deadline::Idle => {
                let secs = self
                    .config
                    .idle_timeout
                    .map_or(0, |d| d.total_millis() / 1000);
                self.close_now(stack, socket, CloseReason::Idle { secs }, emit);
            }
            // No answer: as the tutorial's `settimeout`, the wait ends with an error.
            Deadline::Reply => stack.tcp_abort(socket),
        }
        self.fail(Error::TimedOut, emit);
    }

    fn closed(&mut self, stack: &mut S, socket: S::Tcp, emit: &mut dyn FnMut(&Event<'_>)) {
        stack.tcp_close(socket);
        emit(&Event::Closed {
            proto: Proto::Tcp,
            conn: Some(self.conn),
            totals: self.counter.totals(),
        });
        self.state = if self.config.short && self.config.bulk.is_none() {
            State::Idle
        } else {
            State::Done(Ok(()))
        };
    }

    /// One step of the state machine; returns whether the state changed.
    fn step(
        &mut self,
        stack: &mut S,
        now: Instant,
        poll: &mut Poll,
        emit: &mut dyn FnMut(&Event<'_>),
    ) -> bool {
        match self.state {
            State::Idle => {
                let wanted =
                    !self.config.short || self.pending.is_some() || self.config.bulk.is_some();
                if self.config.short && self.no_more_messages() {
                    self.state = State::Done(Ok(()));
                    return true;
                }
                if !wanted {
                    return false;
                }
                match stack.tcp_connect(self.config.to) {
                    Ok(socket) => {
                        stack.tcp_set_timeouts(socket, self.config.timeouts);
                        self.conn += 1;
                        self.counter = Counter::default();
                        self.live = Liveness::new(now);
                        self.reply_due = None;
                        self.awaiting = false;
                        self.state = State::Connecting {
                            socket,
                            deadline: now + self.config.timeout,
                        };
                    }
                    Err(e) => self.fail(e, emit),
                }
                true
            }
            State::Connecting { socket, deadline } => match stack.tcp_phase(socket) {
                Phase::Open => {
                    let local = stack.tcp_local(socket);
                    emit(&Event::Connected {
                        conn: self.conn,
                        local: local.unwrap_or(SocketAddrV4::new([0, 0, 0, 0].into(), 0)),
                        peer: self.config.to,
                    });
                    self.live = Liveness::new(now);
                    self.state = State::Open { socket };
                    true
                }
                Phase::Failed(e) => {
                    // The stack says why: refused (nobody listens there), reset, timed out.
                    stack.tcp_abort(socket);
                    self.fail(e, emit);
                    true
                }
                Phase::Connecting if now >= deadline => {
                    stack.tcp_abort(socket);
                    self.fail(Error::TimedOut, emit);
                    true
                }
                Phase::Connecting => {
                    poll.merge_wake(Some(deadline));
                    false
                }
            },
            State::Open { socket } => {
                self.live.observe(stack, socket, &self.counter, now);
                match self.receive(stack, socket, poll, emit) {
                    Ok(true) => {
                        // The server closed first (rule S8 seen from the client).
                        self.closed(stack, socket, emit);
                        return true;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        self.broke(stack, socket, e, emit);
                        return true;
                    }
                }
                let sent = self.send(stack, socket, now, poll, emit);
                if let Ok(false) = sent
                    && let Some(deadline) = self.overdue(stack, socket, now)
                {
                    self.expire(stack, socket, deadline, emit);
                    return true;
                }
                match sent {
                    Ok(true) => {
                        stack.tcp_shutdown(socket);
                        self.state = State::Draining {
                            socket,
                            deadline: now + self.config.timeout,
                        };
                        true
                    }
                    Ok(false) => {
                        self.wake_for_deadlines(poll);
                        false
                    }
                    Err(e) => {
                        self.broke(stack, socket, e, emit);
                        true
                    }
                }
            }
            State::Draining { socket, deadline } => {
                let before = self.counter.bytes_in();
                let result = self.receive(stack, socket, poll, emit);
                let moved = self.counter.bytes_in() > before;
                match result {
                    Ok(true) => {
                        self.closed(stack, socket, emit);
                        true
                    }
                    Ok(false) if moved => {
                        self.state = State::Draining {
                            socket,
                            deadline: now + self.config.timeout,
                        };
                        poll.merge_wake(Some(now + self.config.timeout));
                        false
                    }
                    Ok(false)
                        if now >= deadline || self.reply_due.is_some_and(|due| now >= due) =>
                    {
                        // The server never answered, or never closed its side.
                        stack.tcp_abort(socket);
                        self.fail(Error::TimedOut, emit);
                        true
                    }
                    Ok(false) => {
                        poll.merge_wake(Some(deadline));
                        poll.merge_wake(self.reply_due);
                        false
                    }
                    Err(e) => {
                        self.broke(stack, socket, e, emit);
                        true
                    }
                }
            }
            State::Done(_) => false,
        }
    }
}

impl<S: Stack> Program<S> for TcpClient<'_, S> {
    fn poll(&mut self, stack: &mut S, now: Instant, emit: &mut dyn FnMut(&Event<'_>)) -> Poll {
        let mut poll = Poll::default();
        // A handful of steps lets one poll go from connected to sent to shut down.
        for _ in 0..8 {
            if !self.step(stack, now, &mut poll, emit) {
                break;
            }
            poll.progressed = true;
        }
        poll
    }

    fn outcome(&self) -> Option<Result<()>> {
        match self.state {
            State::Done(result) => Some(result),
            _ => None,
        }
    }

    fn wants_input(&self) -> bool {
        self.config.bulk.is_none()
            && !self.input_ended
            && self.pending.is_none()
            && !self.awaiting
            && !matches!(self.state, State::Done(_))
    }

    fn input(&mut self, message: &[u8]) -> Result<()> {
        if self.input_ended || self.config.bulk.is_some() || matches!(self.state, State::Done(_)) {
            return Err(Error::InputClosed);
        }
        if self.pending.is_some() || self.awaiting {
            return Err(Error::WouldBlock);
        }
        self.pending = Some((super::stage(self.tx, message)?, 0));
        Ok(())
    }

    fn end_input(&mut self) {
        self.input_ended = true;
    }

    fn shutdown(&mut self, stack: &mut S, emit: &mut dyn FnMut(&Event<'_>)) {
        match self.state {
            State::Connecting { socket, .. } => stack.tcp_abort(socket),
            State::Open { socket } | State::Draining { socket, .. } => {
                self.close_now(stack, socket, CloseReason::Shutdown, emit);
            }
            State::Idle | State::Done(_) => {}
        }
        if !matches!(self.state, State::Done(_)) {
            self.state = State::Done(Ok(()));
        }
    }
}

/// Which deadline of an open connection passed.
#[derive(Clone, Copy)]
enum Deadline {
    /// No data moved either way for the idle timeout.
    Idle,
    /// The server did not answer the last message in time.
    Reply,
}
