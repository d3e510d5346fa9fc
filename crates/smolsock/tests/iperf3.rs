//! The iperf3 program's two roles against each other on two in-process stacks, and its
//! server against peers that lie, send garbage or vanish. (Against the distribution's
//! `iperf3` binary: tests/tests/iperf3.rs of the workspace.)
//!
//! The simulated clock only moves when nothing else does, so tests here end by a byte
//! count (`-n`), not by time.

use smolsock::event::{DenyReason, IperfSide};
use smolsock::programs::iperf3::{
    DEFAULT_PORT, Iperf3Client, Iperf3ClientConfig, Iperf3Server, Iperf3ServerConfig, Iperf3Udp,
    control_buffer_len, make_cookie, udp_control_buffer_len,
};
use smolsock::programs::{DEFAULT_TIMEOUTS, Poll};
use smolsock::sim::{Ending, Observer, SERVER_IP, Side};
use smolsock::smoltcp::time::{Duration, Instant};
use smolsock::{Error, Event, Program, Recv, Stack};
use std::net::SocketAddrV4;

mod support;
use support::{Lines, Sizing, TestPair, TestStack, new_pair, seeded_pair};

/// Most streams of a test here.
const P: usize = 4;

fn sizing() -> Sizing {
    Sizing {
        tcp_sockets: 16,
        tcp_buf: 16 * 1024,
        udp_sockets: 1,
        udp_buf: 1024,
        udp_packets: 2,
    }
}

fn leak(len: usize) -> &'static mut [u8] {
    Box::leak(vec![0u8; len].into_boxed_slice())
}

fn server(max_tests: u64) -> Iperf3Server<'static, TestStack, P> {
    Iperf3Server::new(
        Iperf3ServerConfig {
            port: DEFAULT_PORT,
            backlog: 4,
            max_tests: Some(max_tests),
            idle_timeout: Some(Duration::from_secs(30)),
            timeouts: DEFAULT_TIMEOUTS,
        },
        leak(control_buffer_len(P)),
        leak(8 * 1024),
    )
}

/// A client's settings for a test of `bytes` to the server (`udp`: a UDP test).
fn client_config(
    bytes: u64,
    reverse: bool,
    streams: u16,
    seed: u64,
    udp: Option<Iperf3Udp>,
) -> Iperf3ClientConfig {
    Iperf3ClientConfig {
        to: SocketAddrV4::new(SERVER_IP, DEFAULT_PORT),
        secs: 0,
        bytes: Some(bytes),
        reverse,
        streams,
        seed,
        connect_timeout: Duration::from_secs(5),
        idle_timeout: Some(Duration::from_secs(30)),
        timeouts: DEFAULT_TIMEOUTS,
        udp,
    }
}

fn client(
    bytes: u64,
    reverse: bool,
    streams: u16,
    seed: u64,
) -> Iperf3Client<'static, TestStack, P> {
    Iperf3Client::new(
        client_config(bytes, reverse, streams, seed, None),
        leak(control_buffer_len(P)),
        leak(8 * 1024),
    )
}

/// What each side reported.
#[derive(Default)]
struct Log {
    lines: Vec<(Side, String)>,
    /// (side of the pair, whose count, sent, bytes, streams)
    results: Vec<(Side, IperfSide, bool, u64, u16)>,
    denied: Vec<DenyReason>,
    errors: Vec<(Side, Error)>,
}

impl Observer for Log {
    fn event(&mut self, side: Side, event: &Event<'_>) {
        match *event {
            Event::IperfResult {
                side: whose,
                sending,
                bytes,
                streams,
                ..
            } => self.results.push((side, whose, sending, bytes, streams)),
            Event::IperfDenied { reason, .. } => self.denied.push(reason),
            Event::Error { error, .. } => self.errors.push((side, error)),
            _ => {}
        }
        self.lines.push((side, event.to_string()));
    }
}

impl Log {
    fn result(&self, side: Side, whose: IperfSide) -> (bool, u64, u16) {
        let found = self
            .results
            .iter()
            .find(|r| r.0 == side && r.1 == whose)
            .unwrap_or_else(|| {
                panic!(
                    "no {whose:?} result on the {side:?} side: {:#?}",
                    self.lines
                )
            });
        (found.2, found.3, found.4)
    }
}

fn run(
    pair: &mut TestPair,
    server: &mut dyn Program<TestStack>,
    client: &mut dyn Program<TestStack>,
    log: &mut Log,
) -> Ending {
    pair.run(
        server,
        client,
        &mut Lines::open(),
        &mut Lines::open(),
        log,
        Duration::from_secs(120),
    )
    .unwrap()
}

#[test]
fn a_test_with_two_streams_reports_both_sides_on_both_sides() {
    let mut pair = new_pair(sizing()).unwrap();
    let (mut srv, mut cli) = (server(1), client(2 * 1024 * 1024, false, 2, 1));
    let mut log = Log::default();
    assert_eq!(
        run(&mut pair, &mut srv, &mut cli, &mut log),
        Ending::Finished
    );
    assert_eq!(cli.outcome(), Some(Ok(())), "{:#?}", log.lines);
    assert_eq!(srv.outcome(), Some(Ok(())), "{:#?}", log.lines);
    // The client sent exactly its byte count; the server counted what came before the
    // client's TEST_END (as iperf3 does), and each side shows the other's count.
    let sent = log.result(Side::Client, IperfSide::Local);
    assert_eq!(sent, (true, 2 * 1024 * 1024, 2));
    assert_eq!(log.result(Side::Server, IperfSide::Remote), sent);
    let received = log.result(Side::Server, IperfSide::Local);
    assert!(
        !received.0 && received.1 > 0 && received.1 <= sent.1,
        "{received:?}"
    );
    assert_eq!(received.2, 2);
    assert_eq!(log.result(Side::Client, IperfSide::Remote), received);
    // The control connection and two data connections, on both sides.
    for (side, word) in [(Side::Server, "accepted"), (Side::Client, "connected")] {
        let count = log
            .lines
            .iter()
            .filter(|(s, l)| *s == side && l.contains(word))
            .count();
        assert_eq!(count, 3, "{side:?}: {:#?}", log.lines);
    }
    assert!(log.errors.is_empty(), "{:?}", log.errors);
}

#[test]
fn a_reverse_test_sends_the_byte_count_from_the_server() {
    let mut pair = new_pair(sizing()).unwrap();
    let (mut srv, mut cli) = (server(1), client(1024 * 1024 + 5, true, 3, 2));
    let mut log = Log::default();
    assert_eq!(
        run(&mut pair, &mut srv, &mut cli, &mut log),
        Ending::Finished
    );
    assert_eq!(cli.outcome(), Some(Ok(())), "{:#?}", log.lines);
    assert_eq!(srv.outcome(), Some(Ok(())), "{:#?}", log.lines);
    let sent = log.result(Side::Server, IperfSide::Local);
    assert_eq!(
        sent,
        (true, 1024 * 1024 + 5, 3),
        "the server stops at the count"
    );
    let received = log.result(Side::Client, IperfSide::Local);
    assert_eq!(received, (false, 1024 * 1024 + 5, 3));
    assert_eq!(log.result(Side::Client, IperfSide::Remote), sent);
    assert_eq!(log.result(Side::Server, IperfSide::Remote), received);
}

#[test]
fn more_streams_than_the_server_has_room_for_are_refused_with_server_error() {
    let mut pair = new_pair(sizing()).unwrap();
    let mut srv: Iperf3Server<'static, TestStack, 1> = Iperf3Server::new(
        Iperf3ServerConfig {
            port: DEFAULT_PORT,
            backlog: 4,
            max_tests: Some(1),
            idle_timeout: None,
            timeouts: DEFAULT_TIMEOUTS,
        },
        leak(control_buffer_len(1)),
        leak(1024),
    );
    let mut cli = client(1000, false, 2, 3);
    let mut log = Log::default();
    assert_eq!(
        run(&mut pair, &mut srv, &mut cli, &mut log),
        Ending::Finished
    );
    // iperf3's error 6: too many parallel streams.
    assert_eq!(
        cli.outcome(),
        Some(Err(Error::PeerError { code: 6, errno: 0 })),
        "{:#?}",
        log.lines
    );
    assert!(matches!(srv.outcome(), Some(Err(Error::Unsupported(_)))));
}

/// Runs `a`, and `b` once `a` has opened its first data connection (its second
/// `connected`): two clients on one stack.
struct Staggered<A, B> {
    a: A,
    b: B,
    connected: usize,
}

impl<A: Program<TestStack>, B: Program<TestStack>> Program<TestStack> for Staggered<A, B> {
    fn poll(
        &mut self,
        stack: &mut TestStack,
        now: Instant,
        emit: &mut dyn FnMut(&Event<'_>),
    ) -> Poll {
        let mut seen = 0;
        let mut poll = self.a.poll(stack, now, &mut |e| {
            if let Event::Connected { .. } = e {
                seen += 1;
            }
            emit(e)
        });
        self.connected += seen;
        if self.connected >= 2 {
            let b = self.b.poll(stack, now, emit);
            poll.progressed |= b.progressed;
            poll.wake_at = [poll.wake_at, b.wake_at].into_iter().flatten().min();
        }
        poll
    }

    fn outcome(&self) -> Option<smolsock::Result<()>> {
        match (self.a.outcome(), self.b.outcome()) {
            (Some(a), Some(_)) => Some(a),
            _ => None,
        }
    }
}

#[test]
fn a_second_client_is_denied_while_a_test_runs_and_the_first_goes_on() {
    let mut pair = new_pair(sizing()).unwrap();
    let mut srv = server(1);
    let mut both = Staggered {
        a: client(4 * 1024 * 1024, false, 1, 4),
        b: client(1000, false, 1, 5),
        connected: 0,
    };
    let mut log = Log::default();
    assert_eq!(
        run(&mut pair, &mut srv, &mut both, &mut log),
        Ending::Finished
    );
    assert_eq!(both.a.outcome(), Some(Ok(())), "{:#?}", log.lines);
    assert_eq!(both.b.outcome(), Some(Err(Error::AccessDenied)));
    assert_eq!(log.denied, [DenyReason::Busy]);
    assert_eq!(srv.outcome(), Some(Ok(())));
    assert!(log.result(Side::Client, IperfSide::Remote).1 > 0);
}

/// A peer that connects to the server, sends `script`, reads whatever comes back and
/// closes after `linger` (or when the server closes).
struct Raw {
    script: Vec<u8>,
    sent: usize,
    socket: Option<<TestStack as Stack>::Tcp>,
    until: Option<Instant>,
    linger: Duration,
    reply: Vec<u8>,
    done: bool,
}

impl Raw {
    fn new(script: Vec<u8>, linger: Duration) -> Self {
        Self {
            script,
            sent: 0,
            socket: None,
            until: None,
            linger,
            reply: Vec::new(),
            done: false,
        }
    }
}

impl Program<TestStack> for Raw {
    fn poll(&mut self, stack: &mut TestStack, now: Instant, _: &mut dyn FnMut(&Event<'_>)) -> Poll {
        let mut poll = Poll::default();
        if self.done {
            return poll;
        }
        let socket = match self.socket {
            Some(socket) => socket,
            None => {
                let socket = stack
                    .tcp_connect(SocketAddrV4::new(SERVER_IP, DEFAULT_PORT))
                    .unwrap();
                self.socket = Some(socket);
                self.until = Some(now + Duration::from_secs(30));
                poll.progressed = true;
                socket
            }
        };
        match stack.tcp_phase(socket) {
            smolsock::Phase::Open => {}
            smolsock::Phase::Connecting => {
                poll.wake_at = self.until;
                return poll;
            }
            // Reset by the server: what it had queued may be lost with it.
            smolsock::Phase::Failed(_) => {
                self.done = true;
                poll.progressed = true;
                return poll;
            }
        }
        {
            while self.sent < self.script.len() {
                match stack.tcp_send(socket, &self.script[self.sent..]) {
                    Ok(n) => {
                        self.sent += n;
                        poll.progressed = true;
                    }
                    Err(_) => break,
                }
            }
            if self.sent == self.script.len() && self.until > Some(now + self.linger) {
                self.until = Some(now + self.linger);
            }
        }
        let mut buf = [0u8; 256];
        let mut closed = false;
        loop {
            match stack.tcp_recv(socket, &mut buf) {
                Ok(Recv::Data(n)) => {
                    self.reply.extend_from_slice(&buf[..n]);
                    poll.progressed = true;
                }
                Ok(Recv::Eof) => {
                    closed = true;
                    break;
                }
                Err(Error::WouldBlock) => break,
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        if closed || self.until.is_some_and(|t| now >= t) {
            stack.tcp_abort(socket);
            self.done = true;
            poll.progressed = true;
        }
        poll.wake_at = self.until;
        poll
    }

    fn outcome(&self) -> Option<smolsock::Result<()>> {
        self.done.then_some(Ok(()))
    }
}

/// The server after a peer ran `script` on it: a real test must then pass. Returns what
/// the peer received and the errors the server reported for it.
fn survives(script: Vec<u8>, linger: Duration, seed: u64) -> (Vec<u8>, Vec<Error>) {
    let mut pair = seeded_pair(sizing(), seed).unwrap();
    let mut srv = server(2);
    let mut raw = Raw::new(script.clone(), linger);
    let mut log = Log::default();
    run(&mut pair, &mut srv, &mut raw, &mut log);
    assert!(raw.done, "the peer finished");
    let errors = log.errors.iter().map(|e| e.1).collect();
    // The bad session ends by itself (an error, or timed out): the next test runs.
    pair.pump(Duration::from_secs(1));
    let mut cli = client(64 * 1024, seed.is_multiple_of(2), 1, seed);
    let ending = run(&mut pair, &mut srv, &mut cli, &mut log);
    assert_eq!(
        (ending, cli.outcome()),
        (Ending::Finished, Some(Ok(()))),
        "after {script:?}: {:#?}",
        log.lines
    );
    (raw.reply, errors)
}

/// A cookie, a length and JSON, as a client's first bytes.
fn handshake(json: &[u8], length: u32) -> Vec<u8> {
    let mut bytes = make_cookie(9).to_vec();
    bytes.extend_from_slice(&length.to_be_bytes());
    bytes.extend_from_slice(json);
    bytes
}

#[test]
fn the_server_refuses_lies_and_garbage_and_goes_on_serving() {
    let quick = Duration::from_millis(500);
    // A length far beyond the buffer: refused at once, before any JSON arrives.
    let (reply, errors) = survives(handshake(b"{", u32::MAX), Duration::from_secs(60), 1);
    assert!(
        [9].starts_with(&reply),
        "PARAM_EXCHANGE at most, then the reset: {reply:?}"
    );
    assert_eq!(
        errors,
        [Error::Protocol(
            "the parameters' length is more than the control buffer holds"
        )]
    );
    // Parameters that are not JSON, or JSON that is not parameters.
    for json in [&b"hello"[..], b"[1,2]", b"{\"parallel\":", b"{\"a\":1}}"] {
        let (reply, errors) = survives(handshake(json, json.len() as u32), quick, 2);
        assert!([9].starts_with(&reply), "{reply:?}");
        assert_eq!(
            errors,
            [Error::Protocol("the parameters are not a JSON object")]
        );
    }
    // UDP: SERVER_ERROR and iperf3's error 131 (protocol does not exist).
    let udp = br#"{"udp":true,"time":1,"parallel":1}"#;
    let (reply, errors) = survives(handshake(udp, udp.len() as u32), quick, 3);
    assert_eq!(reply, [9, 0xfe, 0, 0, 0, 131, 0, 0, 0, 0]);
    assert_eq!(errors, [Error::Unsupported("UDP tests (-u)")]);
    // A length that promises more than comes: the server times the client out.
    let (reply, errors) = survives(handshake(b"{}", 100), Duration::from_secs(60), 4);
    assert_eq!(reply, [9], "PARAM_EXCHANGE, then the wait for the rest");
    assert_eq!(errors, [Error::TimedOut]);
    // Nothing at all, a half cookie, a cookie and silence.
    for script in [Vec::new(), vec![b'a'; 20], make_cookie(1).to_vec()] {
        survives(script, Duration::from_secs(60), 5);
    }
    // Valid parameters, then a state byte that has no place before the streams.
    let params = br#"{"tcp":true,"time":1,"parallel":1}"#;
    let mut script = handshake(params, params.len() as u32);
    script.push(4);
    let (reply, errors) = survives(script, quick, 6);
    assert!([9, 10].starts_with(&reply), "{reply:?}");
    assert!(matches!(errors[..], [Error::Protocol(_)]), "{errors:?}");
}

#[test]
fn random_bytes_on_the_control_port_never_stop_the_server() {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..40u64 {
        let len = (next() % 300) as usize;
        let mut script: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if round % 2 == 0 {
            // Past the cookie and into the length and the JSON.
            let json: Vec<u8> = (0..(next() % 64)).map(|_| next() as u8).collect();
            let mut s = handshake(&json, (next() % 80) as u32);
            s.append(&mut script);
            script = s;
        }
        survives(script, Duration::from_millis(200), round);
    }
}

// ---- UDP tests (`iperf3 -u`) against a server that runs them ----

use smolsock::programs::iperf3::{
    UDP_CONNECT_MSG, UDP_CONNECT_REPLY, read_udp_header, write_udp_header,
};

fn udp_sizing() -> Sizing {
    Sizing {
        tcp_sockets: 16,
        tcp_buf: 16 * 1024,
        udp_sockets: 2,
        udp_buf: 16 * 1024,
        udp_packets: 64,
    }
}

fn udp_server(max_tests: u64) -> Iperf3Server<'static, TestStack, P, P> {
    Iperf3Server::new(
        Iperf3ServerConfig {
            port: DEFAULT_PORT,
            backlog: 4,
            max_tests: Some(max_tests),
            idle_timeout: Some(Duration::from_secs(30)),
            timeouts: DEFAULT_TIMEOUTS,
        },
        leak(udp_control_buffer_len(P)),
        leak(8 * 1024),
    )
}

/// A UDP datagram of an iperf3 stream: `count`, sent at `micros`, `len` bytes.
fn datagram(count: u64, micros: u64, len: usize) -> Vec<u8> {
    let mut d = vec![0x5a; len];
    write_udp_header(&mut d, false, count, micros);
    d
}

/// An iperf3 UDP client, scripted: the control connection's handshake with `params`, one
/// stream's connect message, then `datagrams` (or, reverse, reads until `receive` came),
/// TEST_END, its results, IPERF_DONE.
struct UdpPeer {
    params: Vec<u8>,
    datagrams: Vec<Vec<u8>>,
    /// A second socket's connect message while the test runs.
    stranger: bool,
    /// Send the connect message (else the server waits for it in vain).
    connect: bool,
    /// Reverse: TEST_END once this many datagrams came.
    receive: usize,
    tcp: Option<<TestStack as Stack>::Tcp>,
    udp: Option<<TestStack as Stack>::Udp>,
    until: Option<Instant>,
    sent_params: bool,
    connected: bool,
    data_at: Option<Instant>,
    sent_end: bool,
    sent_results: bool,
    reply: Vec<u8>,
    /// Reverse: the counts of the datagrams that came.
    counts: Vec<u64>,
    /// The server's results message.
    results: Option<serde_json::Value>,
    done: bool,
}

impl UdpPeer {
    fn new(params: &[u8], datagrams: Vec<Vec<u8>>) -> Self {
        Self {
            params: params.to_vec(),
            datagrams,
            stranger: false,
            connect: true,
            receive: 0,
            tcp: None,
            udp: None,
            until: None,
            sent_params: false,
            connected: false,
            data_at: None,
            sent_end: false,
            sent_results: false,
            reply: Vec::new(),
            counts: Vec::new(),
            results: None,
            done: false,
        }
    }
}

impl Program<TestStack> for UdpPeer {
    fn poll(&mut self, stack: &mut TestStack, now: Instant, _: &mut dyn FnMut(&Event<'_>)) -> Poll {
        let mut poll = Poll::default();
        if self.done {
            return poll;
        }
        let server = SocketAddrV4::new(SERVER_IP, DEFAULT_PORT);
        let tcp = match self.tcp {
            Some(tcp) => tcp,
            None => {
                let tcp = stack.tcp_connect(server).unwrap();
                self.tcp = Some(tcp);
                self.until = Some(now + Duration::from_secs(60));
                poll.progressed = true;
                tcp
            }
        };
        let finish = |me: &mut Self, stack: &mut TestStack, poll: &mut Poll| {
            stack.tcp_abort(tcp);
            if let Some(udp) = me.udp {
                stack.udp_close(udp);
            }
            me.done = true;
            poll.progressed = true;
        };
        match stack.tcp_phase(tcp) {
            smolsock::Phase::Open => {}
            smolsock::Phase::Connecting => {
                poll.wake_at = self.until;
                return poll;
            }
            smolsock::Phase::Failed(_) => {
                finish(self, stack, &mut poll);
                return poll;
            }
        }
        if !self.sent_params {
            let mut hello = make_cookie(11).to_vec();
            hello.extend_from_slice(&(self.params.len() as u32).to_be_bytes());
            hello.extend_from_slice(&self.params);
            assert_eq!(stack.tcp_send(tcp, &hello), Ok(hello.len()));
            self.sent_params = true;
            poll.progressed = true;
        }
        let mut buf = [0u8; 1024];
        loop {
            match stack.tcp_recv(tcp, &mut buf) {
                Ok(Recv::Data(n)) => {
                    self.reply.extend_from_slice(&buf[..n]);
                    poll.progressed = true;
                }
                Err(Error::WouldBlock) => break,
                Ok(Recv::Eof) | Err(_) => {
                    finish(self, stack, &mut poll);
                    return poll;
                }
            }
        }
        // CREATE_STREAMS: the stream's connect message.
        if self.reply.get(1) == Some(&10) && self.connect && self.udp.is_none() {
            let udp = stack.udp_open().unwrap();
            stack.udp_send_to(udp, &UDP_CONNECT_MSG, server).unwrap();
            self.udp = Some(udp);
            poll.progressed = true;
        }
        if let Some(udp) = self.udp {
            while let Ok(d) = stack.udp_recv_from(udp, &mut buf) {
                poll.progressed = true;
                if d.len == 4 && buf[..4] == UDP_CONNECT_REPLY {
                    self.connected = true;
                } else if let Some((count, _)) = read_udp_header(&buf[..d.len], false) {
                    self.counts.push(count);
                }
            }
        }
        // TEST_START, TEST_RUNNING: the data, and a stranger's connect message. (Reverse:
        // the first datagram says it as well. The simulated clock stands still while the
        // server sends as fast as it can, and TEST_RUNNING may wait behind a delayed ACK.)
        let running = self.reply.get(3) == Some(&2) || !self.counts.is_empty();
        if running && self.data_at.is_none() {
            assert!(self.connected, "the server answered the connect message");
            let udp = self.udp.unwrap();
            for d in &self.datagrams {
                stack.udp_send_to(udp, d, server).unwrap();
            }
            if self.stranger {
                // Left open until the end: closing it would drop what it has queued.
                let other = stack.udp_open().unwrap();
                stack.udp_send_to(other, &UDP_CONNECT_MSG, server).unwrap();
            }
            self.data_at = Some(now);
            poll.progressed = true;
        }
        if let Some(at) = self.data_at.filter(|_| !self.sent_end) {
            let due = if self.receive > 0 {
                self.counts.len() >= self.receive
            } else {
                now >= at + Duration::from_millis(100)
            };
            if due {
                stack.tcp_send(tcp, &[4]).unwrap();
                self.sent_end = true;
                poll.progressed = true;
            } else if self.receive == 0 {
                poll.wake_at = Some(at + Duration::from_millis(100));
                return poll;
            }
        }
        // EXCHANGE_RESULTS: ours; then the server's, and DISPLAY_RESULTS.
        if self.reply.get(4) == Some(&13) && !self.sent_results {
            let count = self.datagrams.len().max(self.counts.len());
            let json = format!(
                r#"{{"cpu_util_total":0,"cpu_util_user":0,"cpu_util_system":0,"sender_has_retransmits":-1,"streams":[{{"id":1,"bytes":{},"retransmits":-1,"jitter":0.000021,"errors":0,"packets":{count},"start_time":0,"end_time":1.5}}]}}"#,
                count * 100
            );
            let mut message = (json.len() as u32).to_be_bytes().to_vec();
            message.extend_from_slice(json.as_bytes());
            assert_eq!(stack.tcp_send(tcp, &message), Ok(message.len()));
            self.sent_results = true;
            poll.progressed = true;
        }
        if self.reply.len() > 9 && self.reply.last() == Some(&14) {
            let len = u32::from_be_bytes(self.reply[5..9].try_into().unwrap()) as usize;
            if self.reply.len() == 9 + len + 1 {
                self.results = Some(serde_json::from_slice(&self.reply[9..9 + len]).unwrap());
                let _ = stack.tcp_send(tcp, &[16]);
                stack.tcp_close(tcp);
                if let Some(udp) = self.udp {
                    stack.udp_close(udp);
                }
                self.done = true;
                poll.progressed = true;
                return poll;
            }
        }
        if self.until.is_some_and(|t| now >= t) {
            finish(self, stack, &mut poll);
        }
        poll.wake_at = self.until;
        poll
    }

    fn outcome(&self) -> Option<smolsock::Result<()>> {
        self.done.then_some(Ok(()))
    }
}

/// The text lines of the server's `iperf_udp` events, in order.
fn udp_events(log: &Log) -> Vec<String> {
    log.lines
        .iter()
        .filter(|(s, l)| *s == Side::Server && l.starts_with("iperf3 udp"))
        .map(|(_, l)| l.clone())
        .collect()
}

const UDP_PARAMS: &[u8] =
    br#"{"udp":true,"omit":0,"time":1,"parallel":1,"len":100,"bandwidth":1048576,"client_version":"3.12"}"#;

#[test]
fn a_udp_test_counts_losses_and_reordering_as_iperf3_and_the_client_sees_them() {
    let mut pair = new_pair(udp_sizing()).unwrap();
    let mut srv = udp_server(1);
    // 3 and 4 missing, then 3 late; a datagram too short for the header between.
    let mut datagrams: Vec<Vec<u8>> = [1, 2, 5]
        .iter()
        .map(|&c| datagram(c, c * 1000, 100))
        .collect();
    datagrams.push(vec![0u8; 8]);
    datagrams.push(datagram(3, 3000, 100));
    datagrams.push(datagram(6, 6000, 100));
    let mut peer = UdpPeer::new(UDP_PARAMS, datagrams);
    peer.stranger = true;
    let mut log = Log::default();
    assert_eq!(
        run(&mut pair, &mut srv, &mut peer, &mut log),
        Ending::Finished
    );
    assert_eq!(srv.outcome(), Some(Ok(())), "{:#?}", log.lines);
    // The results the stock client prints as the receiver's Lost/Total.
    let results = peer.results.as_ref().expect("the server's results");
    let stream = &results["streams"][0];
    assert_eq!(
        (
            stream["id"].as_u64(),
            stream["packets"].as_u64(),
            stream["errors"].as_u64(),
            stream["bytes"].as_u64()
        ),
        (Some(1), Some(6), Some(1), Some(500)),
        "{results}"
    );
    assert!(stream["jitter"].is_number(), "{results}");
    // Its own events: the bytes, then the datagrams; the client's count after.
    assert_eq!(log.result(Side::Server, IperfSide::Local), (false, 500, 1));
    let udp = udp_events(&log);
    assert_eq!(udp.len(), 2, "{:#?}", log.lines);
    assert!(
        udp[0].starts_with("iperf3 udp, this side: lost 1/6 datagrams, jitter ")
            && udp[0].ends_with(", 1 out of order"),
        "{udp:?}"
    );
    assert_eq!(udp[1], "iperf3 udp, the peer: sent 6 datagrams");
    // The stranger's connect message: not answered, said so.
    assert_eq!(log.denied, [DenyReason::UdpStream]);
    assert!(log.errors.is_empty(), "{:?}", log.errors);
}

#[test]
fn a_udp_count_that_jumps_to_the_top_is_counted_not_a_panic() {
    let mut pair = new_pair(udp_sizing()).unwrap();
    let mut srv = udp_server(1);
    let top = u64::from(u32::MAX);
    let datagrams = vec![
        datagram(1, 0, 100),
        datagram(top, 0, 100),
        datagram(2, 0, 100),
    ];
    let mut peer = UdpPeer::new(UDP_PARAMS, datagrams);
    let mut log = Log::default();
    assert_eq!(
        run(&mut pair, &mut srv, &mut peer, &mut log),
        Ending::Finished
    );
    assert_eq!(srv.outcome(), Some(Ok(())), "{:#?}", log.lines);
    let stream = &peer.results.as_ref().unwrap()["streams"][0];
    assert_eq!(stream["packets"].as_u64(), Some(top));
    assert_eq!(stream["errors"].as_u64(), Some(top - 3));
    let udp = udp_events(&log);
    assert!(
        udp[0].contains(&format!("lost {}/{top} datagrams, jitter ", top - 3)),
        "{udp:?}"
    );
}

#[test]
fn a_reverse_udp_test_sends_counted_datagrams_at_any_rate() {
    // The default rate, none at all (0: as fast as it goes) and an absurd one.
    for rate in [
        "",
        r#","bandwidth":0"#,
        r#","bandwidth":18446744073709551615"#,
    ] {
        let mut pair = new_pair(udp_sizing()).unwrap();
        let mut srv = udp_server(1);
        let params =
            format!(r#"{{"udp":true,"time":1,"parallel":1,"reverse":true,"len":200{rate}}}"#);
        let mut peer = UdpPeer::new(params.as_bytes(), Vec::new());
        peer.receive = 20;
        let mut log = Log::default();
        assert_eq!(
            run(&mut pair, &mut srv, &mut peer, &mut log),
            Ending::Finished,
            "{rate}"
        );
        assert_eq!(srv.outcome(), Some(Ok(())), "{rate}: {:#?}", log.lines);
        // Counted from 1 up, in order (the link may drop some when it is full).
        assert!(peer.counts.len() >= 20, "{rate}");
        assert_eq!(peer.counts[0], 1, "{rate}");
        assert!(
            peer.counts.windows(2).all(|w| w[0] < w[1]),
            "{rate}: {:?}",
            peer.counts
        );
        let stream = &peer.results.as_ref().unwrap()["streams"][0];
        let sent = stream["packets"].as_u64().unwrap();
        assert!(sent >= *peer.counts.last().unwrap(), "{rate}: {stream}");
        assert_eq!(stream["bytes"].as_u64(), Some(sent * 200), "{rate}");
        let udp = udp_events(&log);
        assert_eq!(
            udp[0],
            format!("iperf3 udp, this side: sent {sent} datagrams"),
            "{rate}"
        );
    }
}

/// The server after a UDP test that goes wrong: then a real (TCP) test must pass.
fn udp_then_tcp(peer: &mut UdpPeer, seed: u64) -> (Vec<Error>, Log) {
    let mut pair = seeded_pair(udp_sizing(), seed).unwrap();
    let mut srv = udp_server(2);
    let mut log = Log::default();
    run(&mut pair, &mut srv, peer, &mut log);
    assert!(peer.done);
    let errors = log.errors.iter().map(|e| e.1).collect();
    pair.pump(Duration::from_secs(1));
    let mut cli = client(64 * 1024, false, 1, seed);
    let ending = run(&mut pair, &mut srv, &mut cli, &mut log);
    assert_eq!(
        (ending, cli.outcome()),
        (Ending::Finished, Some(Ok(()))),
        "{:#?}",
        log.lines
    );
    (errors, log)
}

#[test]
fn a_udp_test_the_socket_cannot_carry_or_whose_streams_never_come_ends_clearly() {
    // Datagrams longer than the socket's buffer (16 KiB here): SERVER_ERROR with iperf3's
    // error 20, the error said.
    let mut big = UdpPeer::new(
        br#"{"udp":true,"time":1,"parallel":1,"len":20000}"#,
        Vec::new(),
    );
    let (errors, _) = udp_then_tcp(&mut big, 1);
    assert_eq!(big.reply, [9, 0xfe, 0, 0, 0, 20, 0, 0, 0, 0]);
    assert!(
        matches!(errors[..], [Error::MessageTooLarge { len: 20000, .. }]),
        "{errors:?}"
    );
    // The stream's connect message never comes: timed out, not a wait without end.
    let mut silent = UdpPeer::new(UDP_PARAMS, Vec::new());
    silent.connect = false;
    let (errors, _) = udp_then_tcp(&mut silent, 2);
    assert_eq!(silent.reply, [9, 10]);
    assert_eq!(errors, [Error::TimedOut]);
}

#[test]
fn a_server_without_udp_has_no_udp_socket_and_refuses_as_before() {
    // Built as a board builds it (`Iperf3Server::<_, STREAMS>`): the UDP parameter is 0.
    let _board = |stack: &mut TestStack| {
        let mut srv = Iperf3Server::<_, 2>::new(
            Iperf3ServerConfig {
                port: DEFAULT_PORT,
                backlog: 2,
                max_tests: None,
                idle_timeout: None,
                timeouts: DEFAULT_TIMEOUTS,
            },
            leak(control_buffer_len(2)),
            leak(1024),
        );
        srv.poll(stack, Instant::ZERO, &mut |_| {});
        srv
    };
    // The TCP-only server (what a board builds) on a stack without UDP sockets.
    let sizing = Sizing {
        udp_sockets: 0,
        ..udp_sizing()
    };
    let mut pair = new_pair(sizing).unwrap();
    let mut srv = server(1);
    let mut peer = UdpPeer::new(UDP_PARAMS, Vec::new());
    let mut log = Log::default();
    run(&mut pair, &mut srv, &mut peer, &mut log);
    assert_eq!(peer.reply, [9, 0xfe, 0, 0, 0, 131, 0, 0, 0, 0]);
    // The UDP server on that stack: no socket to open, iperf3's error 202.
    let mut pair = new_pair(sizing).unwrap();
    let mut srv = udp_server(1);
    let mut peer = UdpPeer::new(UDP_PARAMS, Vec::new());
    let mut log = Log::default();
    run(&mut pair, &mut srv, &mut peer, &mut log);
    assert_eq!(peer.reply, [9, 0xfe, 0, 0, 0, 202, 0, 0, 0, 0]);
    assert_eq!(
        log.errors.iter().map(|e| e.1).collect::<Vec<_>>(),
        [Error::NoFreeSocket]
    );
}

fn udp_client(
    bytes: u64,
    reverse: bool,
    streams: u16,
    seed: u64,
) -> Iperf3Client<'static, TestStack, P, P> {
    let udp = Iperf3Udp {
        rate: 4_000_000,
        len: 500,
    };
    Iperf3Client::new(
        client_config(bytes, reverse, streams, seed, Some(udp)),
        leak(udp_control_buffer_len(P)),
        leak(8 * 1024),
    )
}

#[test]
fn the_udp_client_and_server_measure_each_other_both_ways() {
    for (reverse, streams) in [(false, 1), (true, 1), (false, 2), (true, 2)] {
        let mut pair = new_pair(udp_sizing()).unwrap();
        let mut srv = udp_server(1);
        // 40 datagrams of 500 bytes per stream.
        let mut cli = udp_client(u64::from(streams) * 20_000, reverse, streams, 7);
        let mut log = Log::default();
        assert_eq!(
            run(&mut pair, &mut srv, &mut cli, &mut log),
            Ending::Finished
        );
        let case = format!("reverse {reverse}, {streams} streams: {:#?}", log.lines);
        assert_eq!(cli.outcome(), Some(Ok(())), "{case}");
        assert_eq!(srv.outcome(), Some(Ok(())), "{case}");
        let (sender, receiver) = if reverse {
            (Side::Server, Side::Client)
        } else {
            (Side::Client, Side::Server)
        };
        let sent = log.result(sender, IperfSide::Local);
        assert_eq!(sent, (true, u64::from(streams) * 20_000, streams), "{case}");
        let received = log.result(receiver, IperfSide::Local);
        assert!(
            !received.0 && received.1 > 0 && received.1 <= sent.1,
            "{case}"
        );
        // Each side shows the other's count.
        assert_eq!(log.result(receiver, IperfSide::Remote), sent, "{case}");
        assert_eq!(log.result(sender, IperfSide::Remote), received, "{case}");
        let udp: Vec<&String> = log
            .lines
            .iter()
            .filter(|(_, l)| l.starts_with("iperf3 udp"))
            .map(|(_, l)| l)
            .collect();
        assert_eq!(udp.len(), 4, "{case}");
        assert!(
            udp.iter()
                .any(|l| l.contains(&format!("sent {} datagrams", u64::from(streams) * 40))),
            "{case}"
        );
        assert!(log.errors.is_empty(), "{case}");
    }
}

/// A server that takes a client's cookie and parameters, asks for the streams, and then
/// never answers a UDP connect message.
struct Mute {
    listener: Option<<TestStack as Stack>::Listener>,
    control: Option<<TestStack as Stack>::Tcp>,
    got: usize,
    asked: bool,
}

impl Program<TestStack> for Mute {
    fn poll(&mut self, stack: &mut TestStack, _: Instant, _: &mut dyn FnMut(&Event<'_>)) -> Poll {
        let mut poll = Poll::default();
        let listener = *self
            .listener
            .get_or_insert_with(|| stack.tcp_listen(DEFAULT_PORT, 2).unwrap());
        if self.control.is_none()
            && let Ok((socket, _)) = stack.tcp_accept(listener)
        {
            self.control = Some(socket);
            stack.tcp_send(socket, &[9]).unwrap();
            poll.progressed = true;
        }
        if let Some(socket) = self.control {
            let mut buf = [0u8; 512];
            while let Ok(Recv::Data(n)) = stack.tcp_recv(socket, &mut buf) {
                self.got += n;
                poll.progressed = true;
            }
            // The cookie, the length and some JSON: ask for the streams.
            if self.got > 37 + 4 + 10 && !self.asked {
                stack.tcp_send(socket, &[10]).unwrap();
                self.asked = true;
                poll.progressed = true;
            }
        }
        poll
    }

    fn outcome(&self) -> Option<smolsock::Result<()>> {
        None
    }
}

#[test]
fn a_udp_client_whose_connect_message_is_not_answered_gives_up() {
    let mut pair = new_pair(udp_sizing()).unwrap();
    let mut mute = Mute {
        listener: None,
        control: None,
        got: 0,
        asked: false,
    };
    let mut cli = udp_client(10_000, false, 1, 9);
    let mut log = Log::default();
    run(&mut pair, &mut mute, &mut cli, &mut log);
    assert!(mute.asked, "{:#?}", log.lines);
    // After its --timeout (5 s here), not a wait without end.
    assert_eq!(
        cli.outcome(),
        Some(Err(Error::TimedOut)),
        "{:#?}",
        log.lines
    );
}

#[test]
fn a_udp_client_is_refused_by_a_server_without_udp() {
    // A TCP-only server refuses the test (iperf3's error 131) before any stream.
    let mut pair = new_pair(udp_sizing()).unwrap();
    let mut srv = server(1);
    let mut cli = udp_client(10_000, false, 1, 8);
    let mut log = Log::default();
    run(&mut pair, &mut srv, &mut cli, &mut log);
    assert_eq!(
        cli.outcome(),
        Some(Err(Error::PeerError {
            code: 131,
            errno: 0
        }))
    );
}
