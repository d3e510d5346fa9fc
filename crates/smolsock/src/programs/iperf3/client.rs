//! The iperf3 client: `iperf3 -c`, against any stock `iperf3 -s`.

use core::net::{Ipv4Addr, SocketAddrV4};

use heapless::Vec;
use smoltcp::time::{Duration, Instant};

use super::{
    BLOCK_LEN, COOKIE_LEN, Control, Cookie, Fill, Got, HANDSHAKE_TIMEOUT, Message, Meter, Params,
    Stream, UDP_CONNECT_MSG, UDP_CONNECT_REPLY, UDP_LEN, UDP_SEND_BUDGET, UdpCount, UdpStream,
    drain, local_result, make_cookie, pump, read_udp_header, remote_result, send_paced, state,
    stream_id, test_event, udp_header_len, udp_result, write_results, write_udp_results,
};
use crate::error::{Error, Result};
use crate::event::{ConnId, Event, Proto};
use crate::net::{Phase as NetPhase, Stack, TcpTimeouts};
use crate::programs::{Poll, Program, fill_pattern};

/// Settings of an [`Iperf3Client`].
#[derive(Debug, Clone, Copy)]
pub struct Iperf3ClientConfig {
    /// The server.
    pub to: SocketAddrV4,
    /// The test's length in seconds (`-t`); 0 with [`bytes`](Self::bytes) alone.
    pub secs: u32,
    /// End the test once this many bytes moved instead (`-n`).
    pub bytes: Option<u64>,
    /// The server sends and this client receives (`-R`).
    pub reverse: bool,
    /// Parallel streams (`-P`), from 1 to the client's `P`.
    pub streams: u16,
    /// Where the test's cookie comes from (a random number).
    pub seed: u64,
    /// Longest wait for each connection's handshake.
    pub connect_timeout: Duration,
    /// The test fails once no data moved for this long while it runs; `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Keep-alive and give-up the stack applies to every connection.
    pub timeouts: TcpTimeouts,
    /// A UDP test (`-u`) instead of TCP (the client's `UDP` must be at least
    /// [`streams`](Self::streams)).
    pub udp: Option<Iperf3Udp>,
}

/// A UDP test's settings (`iperf3 -u`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Iperf3Udp {
    /// Bits per second per stream (`-b`); 0: as fast as the socket takes them.
    pub rate: u64,
    /// The datagrams' length (`-l`), from the header's 12 bytes to the socket's largest.
    pub len: u64,
}

impl Default for Iperf3Udp {
    /// iperf3's defaults: 1 Mbit/s, 1460-byte datagrams.
    fn default() -> Self {
        Self {
            rate: super::UDP_RATE,
            len: UDP_LEN,
        }
    }
}

/// The wait for the server's answer to a UDP stream's connect message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct UdpPending<U> {
    socket: U,
}

/// Where the test is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase<T> {
    /// Not connected yet.
    Idle,
    /// The control connection's handshake.
    Connecting(T),
    /// Connected: sending the cookie, then the parameters when asked.
    Control,
    /// `CREATE_STREAMS` came: opening the data connections one after the other
    /// (`Some`: the one under way and how much of its cookie went out).
    Streams(Option<(T, Option<usize>)>),
    /// `CREATE_STREAMS` came for a UDP test: each stream's connect message, then its
    /// answer, one after the other.
    UdpStreams,
    /// Every stream is open; waiting for `TEST_RUNNING`.
    Starting,
    /// Data flows until the test's end.
    Running,
    /// `TEST_END` sent; waiting for `EXCHANGE_RESULTS` (still reading a reverse test's
    /// late data).
    Ended,
    /// Our results sent; reading the server's.
    Results(Message),
    /// Waiting for `DISPLAY_RESULTS`.
    Display,
    /// Reading the error numbers that follow `SERVER_ERROR`.
    ServerError,
    /// `IPERF_DONE` queued: close once it is sent.
    Closing,
    Done(Result<()>),
}

/// An iperf3 client for up to `P` parallel streams: runs one test against an iperf3
/// server and reports both sides' counts. With `UDP` more than 0 it also runs UDP tests
/// of up to `UDP` streams, one UDP socket each (0, the default: none, and no UDP code).
pub struct Iperf3Client<'b, S: Stack, const P: usize, const UDP: usize = 0> {
    config: Iperf3ClientConfig,
    cookie: Cookie,
    phase: Phase<S::Tcp>,
    control_socket: Option<S::Tcp>,
    control: Control<'b>,
    data: &'b mut [u8],
    streams: Vec<Stream<S::Tcp>, P>,
    conns: ConnId,
    /// When the current wait fails as timed out.
    deadline: Option<Instant>,
    meter: Option<Meter>,
    /// When a timed test ends.
    end_at: Option<Instant>,
    /// What a sender may still send, or a receiver must still receive (a byte count).
    limit: Option<u64>,
    /// When data last moved.
    last_data: Instant,
    micros: u64,
    /// A UDP test's streams and their sockets.
    udp: Vec<(S::Udp, UdpStream), UDP>,
    /// A UDP stream whose connect message is waiting for its answer.
    udp_pending: Option<UdpPending<S::Udp>>,
}

impl<'b, S: Stack, const P: usize, const UDP: usize> Iperf3Client<'b, S, P, UDP> {
    /// A client; it connects on its first poll. `control` holds the control messages
    /// (at least [`control_buffer_len(P)`](super::control_buffer_len) bytes, or with UDP
    /// [`udp_control_buffer_len(P)`](super::udp_control_buffer_len), or the
    /// server's results go unread); `data` is what each read and write of a data stream
    /// moves at most.
    pub fn new(config: Iperf3ClientConfig, control: &'b mut [u8], data: &'b mut [u8]) -> Self {
        fill_pattern(0, data);
        Self {
            cookie: make_cookie(config.seed),
            config,
            phase: Phase::Idle,
            control_socket: None,
            control: Control::new(control),
            data,
            streams: Vec::new(),
            conns: 0,
            deadline: None,
            meter: None,
            end_at: None,
            limit: None,
            last_data: Instant::ZERO,
            micros: 0,
            udp: Vec::new(),
            udp_pending: None,
        }
    }

    fn is_udp(&self) -> bool {
        UDP > 0 && self.config.udp.is_some()
    }

    /// The settings it runs with.
    pub fn config(&self) -> Iperf3ClientConfig {
        self.config
    }

    fn params(&self) -> Params {
        Params {
            streams: self.config.streams,
            secs: self.config.secs,
            omit: 0,
            reverse: self.config.reverse,
            bytes: self.config.bytes.unwrap_or(0),
            blocks: 0,
            len: self.config.udp.map_or(BLOCK_LEN, |u| u.len),
            udp: self.is_udp(),
            rate: self.config.udp.map_or(0, |u| u.rate),
            wide: false,
        }
    }

    /// This client sends the data (not a reverse test).
    fn sending(&self) -> bool {
        !self.config.reverse
    }

    /// Numbers a connection that has just opened and says so.
    fn announce(&mut self, stack: &S, socket: S::Tcp, emit: &mut dyn FnMut(&Event<'_>)) {
        let conn = self.next_conn();
        let local = stack
            .tcp_local(socket)
            .unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
        emit(&Event::Connected {
            conn,
            local,
            peer: self.config.to,
        });
    }

    fn next_conn(&mut self) -> ConnId {
        self.conns = self.conns.saturating_add(1);
        self.conns
    }

    /// Closes every connection, with a reset.
    fn abort_all(&mut self, stack: &mut S) {
        if let Phase::Connecting(socket) | Phase::Streams(Some((socket, _))) = self.phase {
            stack.tcp_abort(socket);
        }
        for stream in self.streams.drain(..) {
            stack.tcp_abort(stream.socket);
        }
        if let Some(control) = self.control_socket.take() {
            stack.tcp_abort(control);
        }
        self.close_udp(stack);
    }

    /// Closes the UDP streams' sockets.
    fn close_udp(&mut self, stack: &mut S) {
        if let Some(pending) = self.udp_pending.take() {
            stack.udp_close(pending.socket);
        }
        for (socket, _) in self.udp.drain(..) {
            stack.udp_close(socket);
        }
    }

    /// Opens the UDP streams one after the other: a socket, its connect message, the
    /// server's answer.
    fn open_udp_streams(
        &mut self,
        stack: &mut S,
        now: Instant,
        emit: &mut dyn FnMut(&Event<'_>),
    ) -> Result<bool> {
        let Some(pending) = self.udp_pending else {
            if self.udp.len() >= usize::from(self.config.streams) {
                self.phase = Phase::Starting;
                return Ok(true);
            }
            let socket = stack.udp_open()?;
            if let Err(e) = stack.udp_send_to(socket, &UDP_CONNECT_MSG, self.config.to) {
                stack.udp_close(socket);
                return Err(e);
            }
            self.udp_pending = Some(UdpPending { socket });
            self.deadline = Some(now + self.config.connect_timeout);
            return Ok(true);
        };
        let mut reply = [0u8; 4];
        loop {
            let datagram = match stack.udp_recv_from(pending.socket, &mut reply) {
                Ok(datagram) => datagram,
                Err(Error::WouldBlock) => return Ok(false),
                Err(e) => return Err(e),
            };
            // The answer, now or as older servers gave it (987654321 in their byte order).
            let legacy = [987_654_321u32.to_le_bytes(), 987_654_321u32.to_be_bytes()];
            if datagram.from == self.config.to
                && datagram.size == 4
                && (reply == UDP_CONNECT_REPLY || legacy.contains(&reply))
            {
                break;
            }
        }
        emit(&Event::Received {
            proto: Proto::Udp,
            conn: None,
            from: self.config.to,
            data: &reply,
            size: 4,
        });
        self.udp_pending = None;
        let stream = UdpStream {
            peer: self.config.to,
            id: stream_id(self.udp.len()),
            bytes: 0,
            count: UdpCount::default(),
        };
        if self.udp.push((pending.socket, stream)).is_err() {
            stack.udp_close(pending.socket);
            return Err(Error::Unsupported(
                "more parallel UDP streams than the client has room for",
            ));
        }
        self.deadline = Some(now + HANDSHAKE_TIMEOUT);
        Ok(true)
    }

    /// Moves a UDP test's datagrams: sends at the rate, or counts the server's. Returns
    /// the bytes moved.
    fn udp_pump(&mut self, stack: &mut S, now: Instant, poll: &mut Poll) -> Result<u64> {
        let Some(meter) = self.meter.as_ref() else {
            return Err(Error::Protocol("the test runs without its clock"));
        };
        let start = meter.start;
        if self.sending() {
            let params = self.params();
            let mut streams: Vec<UdpStream, UDP> = self.udp.iter().map(|(_, s)| *s).collect();
            let sockets: Vec<S::Udp, UDP> = self.udp.iter().map(|(u, _)| *u).collect();
            let moved = send_paced(
                stack,
                &mut streams,
                |i| sockets.get(i).copied(),
                &params,
                &mut self.limit,
                self.data,
                start,
                now,
                poll,
            )?;
            for ((_, stream), sent) in self.udp.iter_mut().zip(streams) {
                *stream = sent;
            }
            return Ok(moved);
        }
        let arrived = now.total_micros();
        let header = udp_header_len(false);
        let mut head = [0u8; 16];
        let mut moved = 0u64;
        for (socket, stream) in self.udp.iter_mut() {
            for read in 1..=UDP_SEND_BUDGET {
                let datagram = match stack.udp_recv_from(*socket, &mut head) {
                    Ok(datagram) => datagram,
                    Err(Error::WouldBlock) => break,
                    Err(e) => return Err(e),
                };
                if read == UDP_SEND_BUDGET {
                    // More may wait: the next run reads on.
                    poll.progressed = true;
                }
                if datagram.from != stream.peer || datagram.size < header {
                    continue;
                }
                let Some((count, sent)) = head
                    .get(..datagram.len)
                    .and_then(|h| read_udp_header(h, false))
                else {
                    continue;
                };
                stream.count.datagram(count, sent, arrived);
                stream.bytes = stream.bytes.saturating_add(datagram.size as u64);
                moved = moved.saturating_add(datagram.size as u64);
            }
        }
        Ok(moved)
    }

    fn fail(&mut self, stack: &mut S, error: Error, emit: &mut dyn FnMut(&Event<'_>)) {
        emit(&Event::Error {
            conn: (self.conns > 0).then_some(1),
            peer: Some(self.config.to),
            error,
        });
        self.abort_all(stack);
        self.phase = Phase::Done(Err(error));
    }

    /// Acts on one state byte from the server; returns whether anything changed.
    fn on_state(&mut self, byte: u8, now: Instant, emit: &mut dyn FnMut(&Event<'_>)) -> Result<()> {
        self.deadline = Some(now + HANDSHAKE_TIMEOUT);
        match (byte, self.phase) {
            (state::PARAM_EXCHANGE, Phase::Control) => {
                let params = self.params();
                emit(&test_event(1, self.config.to, &params));
                self.control.queue_json(|w| params.write(w), &[])
            }
            (state::CREATE_STREAMS, Phase::Control) => {
                self.phase = if self.is_udp() {
                    Phase::UdpStreams
                } else {
                    Phase::Streams(None)
                };
                Ok(())
            }
            (state::TEST_START, Phase::Starting) => Ok(()),
            (state::TEST_RUNNING, Phase::Starting) => {
                let sending = self.sending();
                self.meter = Some(Meter::new(now, sending));
                self.end_at = match self.config.secs {
                    0 => None,
                    secs => Some(now + Duration::from_secs(u64::from(secs))),
                };
                self.limit = self.config.bytes;
                self.last_data = now;
                self.deadline = None;
                self.phase = Phase::Running;
                Ok(())
            }
            (state::EXCHANGE_RESULTS, Phase::Ended) => {
                let (streams, sending, micros) = (&self.streams, self.sending(), self.micros);
                self.phase = Phase::Results(Message::Length);
                let udp = self.is_udp().then_some(&self.udp);
                self.control.queue_json(
                    |w| match udp {
                        Some(udp) => {
                            write_udp_results(w, udp.iter().map(|(_, s)| s), sending, micros)
                        }
                        None => write_results(w, streams, sending, micros),
                    },
                    &[],
                )
            }
            (state::DISPLAY_RESULTS, Phase::Display) => {
                self.phase = Phase::Closing;
                self.control.queue(&[state::IPERF_DONE])
            }
            (state::ACCESS_DENIED, _) => Err(Error::AccessDenied),
            (state::SERVER_ERROR, _) => {
                self.phase = Phase::ServerError;
                Ok(())
            }
            (state::SERVER_TERMINATE, _) => Err(Error::PeerTerminated),
            _ => Err(Error::Protocol(
                "the server sent a message that has no place in the test",
            )),
        }
    }

    /// Opens the data connections one after the other, each starting with the cookie.
    fn open_streams(
        &mut self,
        stack: &mut S,
        current: Option<(S::Tcp, Option<usize>)>,
        now: Instant,
        emit: &mut dyn FnMut(&Event<'_>),
    ) -> Result<bool> {
        let Some((socket, cookie_sent)) = current else {
            if self.streams.len() >= usize::from(self.config.streams) {
                self.phase = Phase::Starting;
                return Ok(true);
            }
            let socket = stack.tcp_connect(self.config.to)?;
            stack.tcp_set_timeouts(socket, self.config.timeouts);
            self.phase = Phase::Streams(Some((socket, None)));
            self.deadline = Some(now + self.config.connect_timeout);
            return Ok(true);
        };
        let Some(mut sent) = cookie_sent else {
            return match stack.tcp_phase(socket) {
                NetPhase::Connecting => Ok(false),
                NetPhase::Failed(error) => Err(error),
                NetPhase::Open => {
                    self.announce(stack, socket, emit);
                    self.phase = Phase::Streams(Some((socket, Some(0))));
                    self.deadline = Some(now + HANDSHAKE_TIMEOUT);
                    Ok(true)
                }
            };
        };
        while sent < COOKIE_LEN {
            match stack.tcp_send(socket, self.cookie.get(sent..).unwrap_or_default()) {
                Ok(n) => sent += n,
                Err(Error::WouldBlock) => {
                    self.phase = Phase::Streams(Some((socket, Some(sent))));
                    return Ok(false);
                }
                Err(e) => return Err(e),
            }
        }
        let stream = Stream {
            socket,
            id: stream_id(self.streams.len()),
            bytes: 0,
            eof: false,
        };
        if self.streams.push(stream).is_err() {
            stack.tcp_abort(socket);
            return Err(Error::Unsupported(
                "more parallel streams than the client has room for",
            ));
        }
        self.phase = Phase::Streams(None);
        Ok(true)
    }

    /// Moves the data; ends the test when its time is up or its byte count moved.
    fn run(
        &mut self,
        stack: &mut S,
        now: Instant,
        poll: &mut Poll,
        emit: &mut dyn FnMut(&Event<'_>),
    ) -> Result<bool> {
        let sending = self.sending();
        let udp = self.is_udp();
        let moved = if udp {
            let moved = self.udp_pump(stack, now, poll)?;
            if !sending && let Some(left) = self.limit.as_mut() {
                *left = left.saturating_sub(moved);
            }
            moved
        } else {
            let mut limit = if sending { self.limit } else { None };
            let moved = pump(stack, &mut self.streams, sending, self.data, &mut limit)?;
            if sending {
                self.limit = limit;
            } else if let Some(left) = self.limit.as_mut() {
                *left = left.saturating_sub(moved);
            }
            moved
        };
        if moved > 0 {
            poll.progressed = true;
            self.last_data = now;
        }
        if let Some(idle) = self.config.idle_timeout {
            if now >= self.last_data + idle {
                return Err(Error::TimedOut);
            }
            poll.merge_wake(Some(self.last_data + idle));
        }
        let Some(meter) = self.meter.as_mut() else {
            return Err(Error::Protocol("the test runs without its clock"));
        };
        meter.add(moved, now, emit);
        poll.merge_wake(Some(meter.next()));
        poll.merge_wake(self.end_at);
        let timed_out = self.end_at.is_some_and(|end| now >= end);
        let counted = self.limit == Some(0);
        // (UDP streams have no end of their own.)
        let all_closed = !sending && !udp && self.streams.iter().all(|s| s.eof);
        if !(timed_out || counted || all_closed) {
            return Ok(false);
        }
        self.micros = meter.finish(now, emit);
        if self.is_udp() {
            let streams: Vec<UdpStream, UDP> = self.udp.iter().map(|(_, s)| *s).collect();
            udp_result(&streams, sending, self.micros, emit);
        } else {
            local_result(&self.streams, sending, self.micros, emit);
        }
        self.phase = Phase::Ended;
        self.deadline = Some(now + HANDSHAKE_TIMEOUT);
        self.control.queue(&[state::TEST_END])?;
        Ok(true)
    }

    /// One step; returns whether the phase changed.
    fn step(
        &mut self,
        stack: &mut S,
        now: Instant,
        poll: &mut Poll,
        emit: &mut dyn FnMut(&Event<'_>),
    ) -> Result<bool> {
        if let Phase::Idle = self.phase {
            if self.config.streams == 0 || usize::from(self.config.streams) > P {
                return Err(Error::InvalidConfig("iperf3: streams must be from 1 to P"));
            }
            if let Some(udp) = self.config.udp {
                if UDP < usize::from(self.config.streams) {
                    return Err(Error::Unsupported("UDP tests (-u) with that many streams"));
                }
                let len = usize::try_from(udp.len).unwrap_or(usize::MAX);
                if len < udp_header_len(false) || udp.len > super::UDP_MAX_LEN {
                    return Err(Error::InvalidConfig(
                        "iperf3: the UDP datagram length must be from 12 to 65507 bytes",
                    ));
                }
                if !self.config.reverse && len > self.data.len() {
                    return Err(Error::MessageTooLarge {
                        len,
                        max: self.data.len(),
                    });
                }
            }
            let socket = stack.tcp_connect(self.config.to)?;
            stack.tcp_set_timeouts(socket, self.config.timeouts);
            self.phase = Phase::Connecting(socket);
            self.deadline = Some(now + self.config.connect_timeout);
            return Ok(true);
        }
        if let Phase::Connecting(socket) = self.phase {
            return match stack.tcp_phase(socket) {
                NetPhase::Connecting => Ok(false),
                NetPhase::Failed(error) => {
                    stack.tcp_abort(socket);
                    self.phase = Phase::Idle;
                    Err(error)
                }
                NetPhase::Open => {
                    self.announce(stack, socket, emit);
                    self.control_socket = Some(socket);
                    self.control.reset();
                    self.control.queue(&self.cookie)?;
                    self.phase = Phase::Control;
                    self.deadline = Some(now + HANDSHAKE_TIMEOUT);
                    Ok(true)
                }
            };
        }
        let Some(control) = self.control_socket else {
            return Ok(false);
        };
        let flushed = self.control.flush(stack, control)?;
        let changed = match self.phase {
            Phase::Closing if flushed => {
                stack.tcp_close(control);
                self.control_socket = None;
                self.phase = Phase::Done(Ok(()));
                true
            }
            Phase::Streams(current) => self.open_streams(stack, current, now, emit)?,
            Phase::UdpStreams => self.open_udp_streams(stack, now, emit)?,
            Phase::Running => self.run(stack, now, poll, emit)?,
            Phase::Ended | Phase::Results(_) | Phase::Display if !self.sending() => {
                // A reverse test's late data, read (and not counted) until the server
                // closes its streams, so that it is never stuck on a full window.
                if drain(stack, &mut self.streams) {
                    poll.progressed = true;
                }
                false
            }
            _ => false,
        };
        if changed {
            return Ok(true);
        }
        if self.deadline.is_some_and(|at| now >= at) {
            return Err(Error::TimedOut);
        }
        // The control connection: a JSON message where one is due, else state bytes.
        if self.control.pending() {
            return Ok(false);
        }
        match self.phase {
            Phase::Results(mut at) => {
                let udp = self.is_udp();
                let got = self.control.message(stack, control, &mut at, true);
                self.phase = Phase::Results(at);
                match got? {
                    Got::Json(text) => remote_result(text, self.config.reverse, udp, emit),
                    // Too large to read: the server's counts are not shown.
                    Got::TooLarge => {}
                    Got::Pending => return Ok(false),
                    Got::Eof => {
                        return Err(Error::Protocol(
                            "the server closed the control connection before its results",
                        ));
                    }
                }
                self.control.consume();
                self.phase = Phase::Display;
                self.deadline = Some(now + HANDSHAKE_TIMEOUT);
                Ok(true)
            }
            Phase::ServerError => match self.control.fill(stack, control, 8)? {
                Fill::Complete => {
                    let mut numbers = [0u8; 8];
                    numbers.copy_from_slice(self.control.bytes().get(..8).unwrap_or(&[0; 8]));
                    let [a, b, c, d, e, f, g, h] = numbers;
                    Err(Error::PeerError {
                        code: i32::from_be_bytes([a, b, c, d]),
                        errno: i32::from_be_bytes([e, f, g, h]),
                    })
                }
                Fill::Partial => Ok(false),
                Fill::Eof => Err(Error::Protocol(
                    "the server closed the control connection in its error message",
                )),
            },
            Phase::Closing => Ok(false),
            _ => match self.control.byte(stack, control)? {
                Some(byte) => self.on_state(byte, now, emit).map(|()| true),
                None => Ok(false),
            },
        }
    }

    /// Closes the streams once the server has shown the results.
    fn close_streams(&mut self, stack: &mut S) {
        drain(stack, &mut self.streams);
        for stream in self.streams.drain(..) {
            stack.tcp_close(stream.socket);
        }
        self.close_udp(stack);
    }
}

impl<S: Stack, const P: usize, const UDP: usize> Program<S> for Iperf3Client<'_, S, P, UDP> {
    fn poll(&mut self, stack: &mut S, now: Instant, emit: &mut dyn FnMut(&Event<'_>)) -> Poll {
        let mut poll = Poll::default();
        for _ in 0..16 {
            if let Phase::Done(_) = self.phase {
                break;
            }
            match self.step(stack, now, &mut poll, emit) {
                Ok(true) => {
                    poll.progressed = true;
                    if self.phase == Phase::Closing {
                        self.close_streams(stack);
                    }
                }
                Ok(false) => break,
                Err(error) => {
                    self.fail(stack, error, emit);
                    poll.progressed = true;
                    break;
                }
            }
        }
        if !matches!(self.phase, Phase::Done(_)) {
            poll.merge_wake(self.deadline);
        }
        poll
    }

    fn outcome(&self) -> Option<Result<()>> {
        match self.phase {
            Phase::Done(result) => Some(result),
            _ => None,
        }
    }

    fn shutdown(&mut self, stack: &mut S, _emit: &mut dyn FnMut(&Event<'_>)) {
        if matches!(self.phase, Phase::Done(_)) {
            return;
        }
        if let Some(control) = self.control_socket.take() {
            // Tells the server, as iperf3 does when it is interrupted.
            let _ = stack.tcp_send(control, &[state::CLIENT_TERMINATE]);
            stack.tcp_close(control);
        }
        self.abort_all(stack);
        self.phase = Phase::Done(Ok(()));
    }
}
