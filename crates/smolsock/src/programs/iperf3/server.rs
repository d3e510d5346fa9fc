//! The iperf3 server: `iperf3 -s`, one test at a time, for any stock `iperf3 -c`.

use core::net::{Ipv4Addr, SocketAddrV4};

use heapless::Vec;
use smoltcp::time::{Duration, Instant};

use super::{
    COOKIE_LEN, Control, Cookie, Fill, GRACE, Got, HANDSHAKE_TIMEOUT, Message, Meter, Params,
    Stream, UDP_CONNECT_MSG, UDP_CONNECT_REPLY, UdpCount, UdpStream, code, drain, local_result,
    pump, read_udp_header, remote_result, send_paced, state, stream_id, test_event, udp_header_len,
    udp_result, write_results, write_udp_results,
};
use crate::error::{Error, Result};
use crate::event::{ConnId, DenyReason, Event, Proto};
use crate::net::{Recv, Stack, TcpTimeouts};
use crate::programs::{Poll, Program, fill_pattern};

/// Settings of an [`Iperf3Server`].
#[derive(Debug, Clone, Copy)]
pub struct Iperf3ServerConfig {
    /// Port to listen on ([`DEFAULT_PORT`](super::DEFAULT_PORT), 5201, as iperf3).
    pub port: u16,
    /// Connections that may complete their handshake before they are accepted: the
    /// control connection and the data streams come one after the other, so a few do.
    pub backlog: usize,
    /// Finish after this many tests (iperf3's `--one-off` is 1); `None` serves forever.
    pub max_tests: Option<u64>,
    /// A test ended by a byte count (no length) fails once no data moved for this long;
    /// `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Keep-alive and give-up the stack applies to every connection.
    pub timeouts: TcpTimeouts,
}

/// Where a test is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading the client's cookie.
    Cookie,
    /// `PARAM_EXCHANGE` sent; reading the parameters.
    Params(Message),
    /// `CREATE_STREAMS` sent; accepting the data connections.
    Streams,
    /// `TEST_RUNNING` sent; data flows until the client's `TEST_END`.
    Running,
    /// `EXCHANGE_RESULTS` sent; reading the client's results.
    Results(Message),
    /// Our results and `DISPLAY_RESULTS` queued; waiting for `IPERF_DONE` or the close.
    Finishing,
    /// `SERVER_ERROR` queued: the test was refused; close once it is sent.
    Refusing(Error),
}

/// A data connection whose cookie is still being read.
#[derive(Debug, Clone, Copy)]
struct Pending<T> {
    socket: T,
    peer: SocketAddrV4,
    cookie: Cookie,
    got: usize,
}

/// The UDP side of a UDP test: one socket on the server's port for every stream, told
/// apart by the sender's address.
struct UdpTest<U, const P: usize> {
    socket: U,
    streams: Vec<UdpStream, P>,
    /// Datagrams carry 64-bit counts.
    wide: bool,
}

/// Most datagrams one program run reads, or sends per stream: the run must end for the
/// control connection and the clock to have their turn.
const UDP_BUDGET: usize = 256;

/// The one test being served.
struct Session<T, U, const P: usize, const Q: usize> {
    control: T,
    conn: ConnId,
    peer: SocketAddrV4,
    cookie: Cookie,
    phase: Phase,
    /// When the current phase fails as timed out.
    deadline: Option<Instant>,
    params: Params,
    streams: Vec<Stream<T>, P>,
    /// The streams were closed at the end of the test.
    streams_closed: bool,
    pending: Vec<Pending<T>, P>,
    meter: Option<Meter>,
    /// What the server may still send (a test with a byte or block count).
    limit: Option<u64>,
    /// When data last moved.
    last_data: Instant,
    /// The test's length, once it ended.
    micros: u64,
    /// A UDP test's socket and streams.
    udp: Option<UdpTest<U, Q>>,
}

#[derive(Clone, Copy)]
enum State<L> {
    Start,
    /// Listening (`None` once the listener was closed).
    Serving(Option<L>),
    Done(Result<()>),
}

/// An iperf3 server for up to `P` parallel streams: serves one test at a time, and turns
/// any other client away with `ACCESS_DENIED` while a test runs, as iperf3 does.
///
/// It keeps serving until [`max_tests`](Iperf3ServerConfig::max_tests) tests have ended
/// (well or not). A test that fails (the peer vanishes, breaks the protocol, is too slow)
/// is reported as an error event and closed; the server then waits for the next client.
///
/// With `UDP` more than 0 it also runs UDP tests (`iperf3 -u`) of up to `UDP` streams (and
/// `P`): for each it opens one UDP socket on its port (the stack needs one free), answers
/// each stream's connect message, and counts datagrams, losses and jitter as iperf3 does,
/// or (`-R`) sends them at the client's rate. With `UDP` 0 (the default) UDP tests are
/// refused with iperf3's "protocol" error, and neither that code nor the streams' counters
/// are in the program: a board without a UDP socket pays a few words of RAM (an empty
/// UDP state in the session) and the results' UDP keys in flash.
pub struct Iperf3Server<'b, S: Stack, const P: usize, const UDP: usize = 0> {
    config: Iperf3ServerConfig,
    state: State<S::Listener>,
    session: Option<Session<S::Tcp, S::Udp, P, UDP>>,
    control: Control<'b>,
    data: &'b mut [u8],
    /// Connections accepted into tests (control and data), for their numbers.
    accepted: ConnId,
    tests: u64,
}

impl<'b, S: Stack, const P: usize, const UDP: usize> Iperf3Server<'b, S, P, UDP> {
    /// A server; it listens on its first poll. `control` holds the control messages (at
    /// least [`control_buffer_len(P)`](super::control_buffer_len) bytes, or with UDP
    /// [`udp_control_buffer_len(P)`](super::udp_control_buffer_len), or a client's
    /// results go unread); `data` is what each read and write of a data stream moves at
    /// most (its bytes are what a reverse test sends).
    pub fn new(config: Iperf3ServerConfig, control: &'b mut [u8], data: &'b mut [u8]) -> Self {
        fill_pattern(0, data);
        Self {
            config,
            state: State::Start,
            session: None,
            control: Control::new(control),
            data,
            accepted: 0,
            tests: 0,
        }
    }

    /// The settings it runs with.
    pub fn config(&self) -> Iperf3ServerConfig {
        self.config
    }

    fn next_conn(&mut self) -> ConnId {
        self.accepted = self.accepted.saturating_add(1);
        self.accepted
    }

    /// Takes every connection waiting: a new test when none runs, a data stream while the
    /// running test opens them, else `ACCESS_DENIED`.
    fn accept(
        &mut self,
        stack: &mut S,
        listener: S::Listener,
        now: Instant,
        poll: &mut Poll,
        emit: &mut dyn FnMut(&Event<'_>),
    ) {
        loop {
            let (socket, peer) = match stack.tcp_accept(listener) {
                Ok(accepted) => accepted,
                Err(Error::WouldBlock) => return,
                Err(error) => {
                    emit(&Event::Error {
                        conn: None,
                        peer: None,
                        error,
                    });
                    return;
                }
            };
            poll.progressed = true;
            stack.tcp_set_timeouts(socket, self.config.timeouts);
            match &mut self.session {
                None => {
                    let conn = self.next_conn();
                    emit(&Event::Accepted { conn, peer });
                    self.control.reset();
                    self.session = Some(Session {
                        control: socket,
                        conn,
                        peer,
                        cookie: [0; COOKIE_LEN],
                        phase: Phase::Cookie,
                        deadline: Some(now + HANDSHAKE_TIMEOUT),
                        params: Params {
                            streams: 0,
                            secs: 0,
                            omit: 0,
                            reverse: false,
                            bytes: 0,
                            blocks: 0,
                            len: 0,
                            udp: false,
                            rate: 0,
                            wide: false,
                        },
                        streams: Vec::new(),
                        streams_closed: false,
                        pending: Vec::new(),
                        meter: None,
                        limit: None,
                        last_data: now,
                        micros: 0,
                        udp: None,
                    });
                }
                Some(session)
                    if session.phase == Phase::Streams
                        && !session.params.udp
                        && session.streams.len() + session.pending.len()
                            < usize::from(session.params.streams) =>
                {
                    let pending = Pending {
                        socket,
                        peer,
                        cookie: [0; COOKIE_LEN],
                        got: 0,
                    };
                    if session.pending.push(pending).is_err() {
                        deny(stack, socket, peer, DenyReason::Busy, emit);
                    }
                }
                Some(_) => deny(stack, socket, peer, DenyReason::Busy, emit),
            }
        }
    }

    /// Ends the test: reports `outcome`'s error, closes every connection (a reset after a
    /// failure, else in order) and counts the test.
    fn end(&mut self, stack: &mut S, outcome: Result<()>, emit: &mut dyn FnMut(&Event<'_>)) {
        let Some(session) = self.session.take() else {
            return;
        };
        let failed = match outcome {
            Err(error) => {
                let refused = matches!(session.phase, Phase::Refusing(e) if e == error);
                if !refused {
                    emit(&Event::Error {
                        conn: Some(session.conn),
                        peer: Some(session.peer),
                        error,
                    });
                }
                !refused
            }
            Ok(()) => false,
        };
        for pending in &session.pending {
            stack.tcp_abort(pending.socket);
        }
        if !session.streams_closed {
            for stream in &session.streams {
                stack.tcp_abort(stream.socket);
            }
        }
        if let Some(udp) = session.udp.as_ref().filter(|_| UDP > 0) {
            stack.udp_close(udp.socket);
        }
        if failed {
            stack.tcp_abort(session.control);
        } else {
            stack.tcp_close(session.control);
        }
        self.control.reset();
        self.tests += 1;
        if self.config.max_tests.is_some_and(|max| self.tests >= max) {
            if let State::Serving(Some(listener)) = self.state {
                stack.listener_close(listener);
                emit(&Event::ListenerClosed {
                    port: self.config.port,
                });
            }
            self.state = State::Done(outcome);
        }
    }

    /// One step of the running test; returns whether it moved to another phase (or ended).
    fn step(
        &mut self,
        stack: &mut S,
        now: Instant,
        poll: &mut Poll,
        emit: &mut dyn FnMut(&Event<'_>),
    ) -> bool {
        let Some(session) = self.session.as_mut() else {
            return false;
        };
        let ctrl = session.control;
        let flushed = match self.control.flush(stack, ctrl) {
            Ok(flushed) => flushed,
            Err(error) => {
                self.end(stack, Err(error), emit);
                return true;
            }
        };
        let result = match session.phase {
            Phase::Cookie => match self.control.fill(stack, ctrl, COOKIE_LEN) {
                Ok(Fill::Complete) => {
                    session.cookie.copy_from_slice(
                        self.control
                            .bytes()
                            .get(..COOKIE_LEN)
                            .unwrap_or(&[0; COOKIE_LEN]),
                    );
                    self.control.consume();
                    session.phase = Phase::Params(Message::Length);
                    session.deadline = Some(now + HANDSHAKE_TIMEOUT);
                    self.control.queue(&[state::PARAM_EXCHANGE]).map(|()| true)
                }
                Ok(Fill::Partial) => Ok(false),
                Ok(Fill::Eof) => Err(Error::Protocol(
                    "the client closed the control connection before sending its cookie",
                )),
                Err(e) => Err(e),
            },
            Phase::Params(mut at) => {
                let got = self.control.message(stack, ctrl, &mut at, false);
                session.phase = Phase::Params(at);
                match got {
                    Ok(Got::Json(text)) => match Params::parse(text, P, UDP).and_then(|params| {
                        if UDP > 0 && params.udp {
                            let udp = open_udp(stack, self.config.port, &params, self.data.len())?;
                            session.udp = Some(udp);
                        }
                        Ok(params)
                    }) {
                        Ok(params) => {
                            emit(&test_event(session.conn, session.peer, &params));
                            session.params = params;
                            session.phase = Phase::Streams;
                            session.deadline = Some(now + HANDSHAKE_TIMEOUT);
                            self.control.consume();
                            self.control.queue(&[state::CREATE_STREAMS]).map(|()| true)
                        }
                        Err((0, error)) => Err(error),
                        Err((code, error)) => {
                            // Refused as iperf3 refuses: SERVER_ERROR, its error number
                            // and an errno, then the close.
                            self.control.consume();
                            emit(&Event::Error {
                                conn: Some(session.conn),
                                peer: Some(session.peer),
                                error,
                            });
                            session.phase = Phase::Refusing(error);
                            session.deadline = Some(now + HANDSHAKE_TIMEOUT);
                            let mut message = [0u8; 9];
                            message[0] = state::SERVER_ERROR;
                            message[1..5].copy_from_slice(&code.to_be_bytes());
                            self.control.queue(&message).map(|()| true)
                        }
                    },
                    Ok(Got::TooLarge) => Err(Error::Protocol(
                        "the parameters' length is more than the control buffer holds",
                    )),
                    Ok(Got::Pending) => Ok(false),
                    Ok(Got::Eof) => Err(Error::Protocol(
                        "the client closed the control connection before its parameters",
                    )),
                    Err(e) => Err(e),
                }
            }
            Phase::Streams if UDP > 0 && session.udp.is_some() => {
                Self::udp_streams(session, &mut self.control, stack, now, emit)
            }
            Phase::Streams => Self::streams(
                session,
                &mut self.control,
                &mut self.accepted,
                stack,
                now,
                emit,
            ),
            Phase::Running => Self::running(
                session,
                &mut self.control,
                self.data,
                self.config.idle_timeout,
                stack,
                now,
                poll,
                emit,
            ),
            Phase::Results(mut at) => {
                let got = self.control.message(stack, ctrl, &mut at, true);
                session.phase = Phase::Results(at);
                let done = match got {
                    Ok(Got::Json(text)) => {
                        remote_result(
                            text,
                            !session.params.reverse,
                            UDP > 0 && session.params.udp,
                            emit,
                        );
                        Ok(true)
                    }
                    // Too large to read: its counts are not shown, the test goes on.
                    Ok(Got::TooLarge) => Ok(true),
                    Ok(Got::Pending) => Ok(false),
                    Ok(Got::Eof) => Err(Error::Protocol(
                        "the client closed the control connection before its results",
                    )),
                    Err(e) => Err(e),
                };
                match done {
                    Ok(true) => {
                        self.control.consume();
                        let (streams, sending, micros) =
                            (&session.streams, session.params.reverse, session.micros);
                        session.phase = Phase::Finishing;
                        session.deadline = Some(now + HANDSHAKE_TIMEOUT);
                        let udp = session.udp.as_ref().filter(|_| UDP > 0).map(|u| &u.streams);
                        self.control
                            .queue_json(
                                |w| match udp {
                                    Some(udp) => write_udp_results(w, udp.iter(), sending, micros),
                                    None => write_results(w, streams, sending, micros),
                                },
                                &[state::DISPLAY_RESULTS],
                            )
                            .map(|()| true)
                    }
                    other => other,
                }
            }
            Phase::Finishing if flushed => match self.control.byte(stack, ctrl) {
                Ok(None) => Ok(false),
                // IPERF_DONE, or the close that follows it: the test is over (and so it
                // is whatever else the client says now).
                Ok(Some(_)) | Err(_) => {
                    self.end(stack, Ok(()), emit);
                    return true;
                }
            },
            Phase::Refusing(error) if flushed => Err(error),
            Phase::Finishing | Phase::Refusing(_) => Ok(false),
        };
        let Some(session) = self.session.as_mut() else {
            return true;
        };
        match result {
            Ok(changed) => {
                if session.deadline.is_some_and(|at| now >= at) {
                    // A client that never says IPERF_DONE has its results all the same.
                    let outcome = match session.phase {
                        Phase::Finishing if !self.control.pending() => Ok(()),
                        _ => Err(Error::TimedOut),
                    };
                    self.end(stack, outcome, emit);
                    return true;
                }
                changed
            }
            Err(error) => {
                self.end(stack, Err(error), emit);
                true
            }
        }
    }

    /// Accepts the data connections: reads each one's cookie, keeps those of this test.
    fn streams(
        session: &mut Session<S::Tcp, S::Udp, P, UDP>,
        control: &mut Control<'b>,
        accepted: &mut ConnId,
        stack: &mut S,
        now: Instant,
        emit: &mut dyn FnMut(&Event<'_>),
    ) -> Result<bool> {
        // In the order they were accepted, which is the order the client opened them (one
        // after the other) and so the order of the stream numbers on both sides: the
        // first one whose cookie is not all in holds up the ones after it.
        while let Some(pending) = session.pending.first_mut() {
            let mut verdict = None;
            while pending.got < COOKIE_LEN {
                let room = pending.cookie.get_mut(pending.got..).unwrap_or_default();
                match stack.tcp_recv(pending.socket, room) {
                    Ok(Recv::Data(n)) => pending.got += n,
                    Err(Error::WouldBlock) => break,
                    // Gone before its cookie: forgotten.
                    Ok(Recv::Eof) | Err(_) => {
                        verdict = Some(None);
                        break;
                    }
                }
            }
            if pending.got == COOKIE_LEN {
                verdict = Some(Some(pending.cookie == session.cookie));
            }
            let Some(verdict) = verdict else {
                break;
            };
            let pending = session.pending.remove(0);
            match verdict {
                Some(true) => {
                    let id = stream_id(session.streams.len());
                    let stream = Stream {
                        socket: pending.socket,
                        id,
                        bytes: 0,
                        eof: false,
                    };
                    if session.streams.push(stream).is_err() {
                        deny(stack, pending.socket, pending.peer, DenyReason::Busy, emit);
                        continue;
                    }
                    *accepted = accepted.saturating_add(1);
                    emit(&Event::Accepted {
                        conn: *accepted,
                        peer: pending.peer,
                    });
                }
                Some(false) => deny(
                    stack,
                    pending.socket,
                    pending.peer,
                    DenyReason::Cookie,
                    emit,
                ),
                None => stack.tcp_abort(pending.socket),
            }
        }
        // Nothing is expected on the control connection now but an interruption.
        if let Some(byte) = control.byte(stack, session.control)? {
            return Err(unexpected(byte));
        }
        if session.streams.len() < usize::from(session.params.streams) {
            return Ok(false);
        }
        Self::start(session, control, now)
    }

    /// Every stream is there: the test starts.
    fn start(
        session: &mut Session<S::Tcp, S::Udp, P, UDP>,
        control: &mut Control<'b>,
        now: Instant,
    ) -> Result<bool> {
        let reverse = session.params.reverse;
        session.meter = Some(Meter::new(now, reverse));
        session.limit = if reverse {
            session.params.send_limit()
        } else {
            None
        };
        session.last_data = now;
        session.phase = Phase::Running;
        session.deadline = match session.params.secs {
            0 => None,
            secs => Some(
                now + Duration::from_secs(u64::from(secs) + u64::from(session.params.omit)) + GRACE,
            ),
        };
        control.queue(&[state::TEST_START, state::TEST_RUNNING])?;
        Ok(true)
    }

    /// Answers the UDP streams' connect messages: each from a new address of the client's
    /// host is the next stream; the test starts once all are there.
    fn udp_streams(
        session: &mut Session<S::Tcp, S::Udp, P, UDP>,
        control: &mut Control<'b>,
        stack: &mut S,
        now: Instant,
        emit: &mut dyn FnMut(&Event<'_>),
    ) -> Result<bool> {
        let Some(udp) = session.udp.as_mut() else {
            return Err(Error::Protocol("the UDP test runs without its socket"));
        };
        let wanted = usize::from(session.params.streams);
        let mut head = [0u8; 16];
        for _ in 0..UDP_BUDGET {
            let datagram = match stack.udp_recv_from(udp.socket, &mut head) {
                Ok(datagram) => datagram,
                Err(Error::WouldBlock) => break,
                Err(e) => return Err(e),
            };
            if datagram.size != 4 || head.get(..4) != Some(&UDP_CONNECT_MSG[..]) {
                // Anything else before the test starts: dropped, as iperf3 does.
                continue;
            }
            let known = udp.streams.iter().any(|s| s.peer == datagram.from);
            if !known {
                if datagram.from.ip() != session.peer.ip() || udp.streams.len() >= wanted {
                    emit(&Event::IperfDenied {
                        peer: datagram.from,
                        reason: DenyReason::UdpStream,
                    });
                    continue;
                }
                let stream = UdpStream {
                    peer: datagram.from,
                    id: stream_id(udp.streams.len()),
                    bytes: 0,
                    count: UdpCount::default(),
                };
                if udp.streams.push(stream).is_err() {
                    continue;
                }
                // The stream's connect message, as it came (a UDP stream has no
                // connection to accept).
                emit(&Event::Received {
                    proto: Proto::Udp,
                    conn: None,
                    from: datagram.from,
                    data: &UDP_CONNECT_MSG,
                    size: datagram.size,
                });
            }
            // Answered again if it comes again: the first answer may have been lost.
            match stack.udp_send_to(udp.socket, &UDP_CONNECT_REPLY, datagram.from) {
                Ok(()) | Err(Error::WouldBlock) => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(byte) = control.byte(stack, session.control)? {
            return Err(unexpected(byte));
        }
        if udp.streams.len() < wanted {
            return Ok(false);
        }
        Self::start(session, control, now)
    }

    /// Moves a UDP test's datagrams: counts what its streams send, or (`-R`) sends to
    /// each at the client's rate. Returns the bytes moved.
    fn udp_pump(
        session: &mut Session<S::Tcp, S::Udp, P, UDP>,
        data: &mut [u8],
        stack: &mut S,
        now: Instant,
        poll: &mut Poll,
        emit: &mut dyn FnMut(&Event<'_>),
    ) -> Result<u64> {
        let (Some(udp), Some(meter)) = (session.udp.as_mut(), session.meter.as_ref()) else {
            return Err(Error::Protocol("the UDP test runs without its socket"));
        };
        let mut moved = 0u64;
        let header = udp_header_len(udp.wide);
        let arrived = now.total_micros();
        // What comes in: the streams' datagrams (when the client sends), strangers'.
        let mut head = [0u8; 16];
        for read in 1..=UDP_BUDGET {
            let datagram = match stack.udp_recv_from(udp.socket, &mut head) {
                Ok(datagram) => datagram,
                Err(Error::WouldBlock) => break,
                Err(e) => return Err(e),
            };
            if read == UDP_BUDGET {
                // More may wait: the next run reads on.
                poll.progressed = true;
            }
            let Some(stream) = udp.streams.iter_mut().find(|s| s.peer == datagram.from) else {
                if datagram.size == 4 && head.get(..4) == Some(&UDP_CONNECT_MSG[..]) {
                    // Another client's stream while this test runs: not answered.
                    emit(&Event::IperfDenied {
                        peer: datagram.from,
                        reason: DenyReason::UdpStream,
                    });
                }
                continue;
            };
            // A reverse test counts nothing that comes in; a datagram too short for the
            // header is not counted at all (nor in iperf3).
            if session.params.reverse || datagram.size < header {
                continue;
            }
            let Some((count, sent)) = head
                .get(..datagram.len)
                .and_then(|h| read_udp_header(h, udp.wide))
            else {
                continue;
            };
            stream.count.datagram(count, sent, arrived);
            stream.bytes = stream.bytes.saturating_add(datagram.size as u64);
            moved = moved.saturating_add(datagram.size as u64);
        }
        if !session.params.reverse {
            return Ok(moved);
        }
        let start = meter.start;
        let sent = send_paced(
            stack,
            &mut udp.streams,
            |_| Some(udp.socket),
            &session.params,
            &mut session.limit,
            data,
            start,
            now,
            poll,
        )?;
        Ok(moved.saturating_add(sent))
    }

    /// Moves the data, and ends the test at the client's `TEST_END`.
    #[allow(clippy::too_many_arguments)]
    fn running(
        session: &mut Session<S::Tcp, S::Udp, P, UDP>,
        control: &mut Control<'b>,
        data: &mut [u8],
        idle_timeout: Option<Duration>,
        stack: &mut S,
        now: Instant,
        poll: &mut Poll,
        emit: &mut dyn FnMut(&Event<'_>),
    ) -> Result<bool> {
        let sending = session.params.reverse;
        let moved = if UDP > 0 && session.udp.is_some() {
            Self::udp_pump(session, data, stack, now, poll, emit)?
        } else {
            pump(
                stack,
                &mut session.streams,
                sending,
                data,
                &mut session.limit,
            )?
        };
        if moved > 0 {
            poll.progressed = true;
            session.last_data = now;
        }
        let Some(meter) = session.meter.as_mut() else {
            return Err(Error::Protocol("the test runs without its clock"));
        };
        meter.add(moved, now, emit);
        poll.merge_wake(Some(meter.next()));
        if let Some(idle) = idle_timeout.filter(|_| session.params.secs == 0) {
            if now >= session.last_data + idle {
                return Err(Error::TimedOut);
            }
            poll.merge_wake(Some(session.last_data + idle));
        }
        loop {
            match control.byte(stack, session.control)? {
                None => return Ok(false),
                // Sent by some clients as they start: nothing to do.
                Some(state::TEST_START | state::TEST_RUNNING) => {}
                Some(state::TEST_END) => break,
                Some(byte) => return Err(unexpected(byte)),
            }
        }
        session.micros = meter.finish(now, emit);
        if !sending {
            // What is in flight, read so that the close is a FIN rather than a reset.
            drain(stack, &mut session.streams);
        }
        for stream in &session.streams {
            stack.tcp_close(stream.socket);
        }
        session.streams_closed = true;
        match session.udp.as_ref().filter(|_| UDP > 0) {
            Some(udp) => udp_result(&udp.streams, sending, session.micros, emit),
            None => local_result(&session.streams, sending, session.micros, emit),
        }
        session.phase = Phase::Results(Message::Length);
        session.deadline = Some(now + HANDSHAKE_TIMEOUT);
        control.queue(&[state::EXCHANGE_RESULTS])?;
        Ok(true)
    }
}

/// Opens a UDP test's socket on the server's port, for a test whose datagrams are `len`
/// long: `Err` with iperf3's error number when there is no socket, the port is taken, or
/// a datagram would not fit the socket (or, sent by the server, the data buffer).
fn open_udp<S: Stack, const P: usize>(
    stack: &mut S,
    port: u16,
    params: &Params,
    buffer: usize,
) -> core::result::Result<UdpTest<S::Udp, P>, (i32, Error)> {
    let socket = stack.udp_open().map_err(|e| (code::STREAM_LISTEN, e))?;
    if let Err(e) = stack.udp_bind(socket, port) {
        stack.udp_close(socket);
        return Err((code::STREAM_LISTEN, e));
    }
    let mut max = stack.udp_max_payload(socket);
    if params.reverse {
        max = max.min(buffer);
    }
    let len = usize::try_from(params.len).unwrap_or(usize::MAX);
    if len > max {
        stack.udp_close(socket);
        return Err((code::UDP_BLOCK_SIZE, Error::MessageTooLarge { len, max }));
    }
    Ok(UdpTest {
        socket,
        streams: Vec::new(),
        wide: params.wide,
    })
}

/// The error for a state byte that has no place where it came.
fn unexpected(byte: u8) -> Error {
    match byte {
        state::CLIENT_TERMINATE => Error::PeerTerminated,
        _ => Error::Protocol("the client sent a message that has no place in the test"),
    }
}

/// Turns a connection away as iperf3 does: one `ACCESS_DENIED` byte, then the close.
fn deny<S: Stack>(
    stack: &mut S,
    socket: S::Tcp,
    peer: SocketAddrV4,
    reason: DenyReason,
    emit: &mut dyn FnMut(&Event<'_>),
) {
    let _ = stack.tcp_send(socket, &[state::ACCESS_DENIED]);
    stack.tcp_close(socket);
    emit(&Event::IperfDenied { peer, reason });
}

impl<S: Stack, const P: usize, const UDP: usize> Program<S> for Iperf3Server<'_, S, P, UDP> {
    fn poll(&mut self, stack: &mut S, now: Instant, emit: &mut dyn FnMut(&Event<'_>)) -> Poll {
        let mut poll = Poll::default();
        if let State::Start = self.state {
            poll.progressed = true;
            match stack.tcp_listen(self.config.port, self.config.backlog) {
                Ok(listener) => {
                    emit(&Event::Listening {
                        local: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, self.config.port),
                        backlog: self.config.backlog,
                    });
                    self.state = State::Serving(Some(listener));
                }
                Err(error) => {
                    emit(&Event::Error {
                        conn: None,
                        peer: None,
                        error,
                    });
                    self.state = State::Done(Err(error));
                    return poll;
                }
            }
        }
        // The running test first: a client that just said IPERF_DONE makes room for the
        // next one, which is then accepted rather than turned away.
        for _ in 0..16 {
            if !self.step(stack, now, &mut poll, emit) {
                break;
            }
            poll.progressed = true;
        }
        if let State::Serving(Some(listener)) = self.state {
            self.accept(stack, listener, now, &mut poll, emit);
        }
        for _ in 0..16 {
            if !self.step(stack, now, &mut poll, emit) {
                break;
            }
            poll.progressed = true;
        }
        if let Some(session) = &self.session {
            poll.merge_wake(session.deadline);
        }
        poll
    }

    fn outcome(&self) -> Option<Result<()>> {
        match self.state {
            State::Done(result) => Some(result),
            _ => None,
        }
    }

    fn shutdown(&mut self, stack: &mut S, emit: &mut dyn FnMut(&Event<'_>)) {
        if let Some(session) = &self.session {
            // Tells the client, as iperf3 does when it is interrupted.
            let _ = stack.tcp_send(session.control, &[state::SERVER_TERMINATE]);
            self.end(stack, Ok(()), emit);
        }
        if let State::Serving(Some(listener)) = self.state {
            stack.listener_close(listener);
            emit(&Event::ListenerClosed {
                port: self.config.port,
            });
        }
        self.state = State::Done(Ok(()));
    }
}
