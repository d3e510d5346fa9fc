//! In-process tests: the socket layer and the four programs on two smoltcp stacks joined by
//! an in-memory link, on a simulated clock. No privileges, no devices.

use std::net::SocketAddrV4;

use smolsock::programs::{
    ServeMode, TcpClient, TcpClientConfig, TcpServer, TcpServerConfig, UdpReceiver,
    UdpReceiverConfig, UdpSender, UdpSenderConfig, fill_pattern,
};
use smolsock::sim::{CLIENT_IP, Ending, Observer, SERVER_IP, Side};
use smolsock::{Error, Event, Phase, Program, Recv, Stack};
use smoltcp::time::Duration;

mod support;
use support::{Lines, Sizing, TestStack, new_pair};

const PORT: u16 = 9090;

fn server_addr() -> SocketAddrV4 {
    SocketAddrV4::new(SERVER_IP, PORT)
}

fn sizing() -> Sizing {
    Sizing {
        tcp_sockets: 8,
        tcp_buf: 8192,
        udp_sockets: 2,
        udp_buf: 8192,
        udp_packets: 8,
    }
}

/// Records every event as its text line.
#[derive(Default)]
struct Log {
    lines: Vec<(Side, String)>,
    received: Vec<(Side, SocketAddrV4, Vec<u8>, usize)>,
}

impl Observer for Log {
    fn event(&mut self, side: Side, event: &Event<'_>) {
        if let Event::Received {
            from, data, size, ..
        } = event
        {
            self.received.push((side, *from, data.to_vec(), *size));
        }
        self.lines.push((side, event.to_string()));
    }
}

impl Log {
    fn of(&self, side: Side) -> Vec<&str> {
        self.lines
            .iter()
            .filter(|(s, _)| *s == side)
            .map(|(_, l)| l.as_str())
            .collect()
    }
}

fn messages(list: &[&str]) -> Lines {
    Lines::of(list)
}

fn client(
    short: bool,
    bulk: Option<u64>,
    tx: &mut [u8],
    rx: &mut [u8],
) -> TcpClient<'static, TestStack> {
    // The buffers outlive the test body; leak them for a 'static client.
    let tx: &'static mut [u8] = Box::leak(tx.to_vec().into_boxed_slice());
    let rx: &'static mut [u8] = Box::leak(rx.to_vec().into_boxed_slice());
    TcpClient::new(
        TcpClientConfig {
            to: server_addr(),
            short,
            pace: smolsock::programs::Pace::Pipeline,
            timeout: Duration::from_secs(5),
            bulk,
            reply_timeout: Some(smolsock::programs::DEFAULT_REPLY_TIMEOUT),
            idle_timeout: Some(smolsock::programs::DEFAULT_IDLE_TIMEOUT),
            timeouts: smolsock::programs::DEFAULT_TIMEOUTS,
        },
        tx,
        rx,
    )
}

fn server<const C: usize>(mode: ServeMode, backlog: usize, max: u64) -> TcpServer<TestStack, C> {
    TcpServer::new(TcpServerConfig {
        port: PORT,
        backlog,
        mode,
        max_clients: Some(max),
        idle_timeout: Some(smolsock::programs::DEFAULT_IDLE_TIMEOUT),
        timeouts: smolsock::programs::DEFAULT_TIMEOUTS,
    })
}

#[test]
fn udp_sender_to_receiver_keeps_one_port_and_reports_truncation() {
    let mut pair = new_pair(sizing()).unwrap();
    let (mut rbuf, mut sbuf) = ([0u8; 8], [0u8; 1472]);
    let mut recv = UdpReceiver::new(
        UdpReceiverConfig {
            port: PORT,
            count: Some(3),
        },
        &mut rbuf,
    );
    let mut send = UdpSender::new(
        UdpSenderConfig {
            to: server_addr(),
            flush_timeout: Duration::from_secs(3),
        },
        &mut sbuf,
    );
    let mut log = Log::default();
    let ending = pair
        .run(
            &mut recv,
            &mut send,
            &mut Lines::none(),
            &mut messages(&["a", "bb", "0123456789"]),
            &mut log,
            Duration::from_secs(30),
        )
        .unwrap();
    assert_eq!(ending, Ending::Finished);
    assert_eq!(recv.outcome(), Some(Ok(())));
    assert_eq!(send.outcome(), Some(Ok(())));
    let got: Vec<_> = log
        .received
        .iter()
        .map(|(_, from, data, size)| (*from, data.clone(), *size))
        .collect();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].1, b"a");
    assert_eq!(got[1].1, b"bb");
    assert_eq!(
        (got[2].1.as_slice(), got[2].2),
        (&b"01234567"[..], 10),
        "S11: cut to the buffer, size reported"
    );
    let port = got[0].0.port();
    assert!(
        got.iter()
            .all(|(from, _, _)| *from == SocketAddrV4::new(CLIENT_IP, port)),
        "S10: one port"
    );
    assert!(
        log.of(Side::Client)
            .iter()
            .any(|l| l.contains(&format!("udp bound 0.0.0.0:{port} (ephemeral")))
    );
    assert!(
        log.of(Side::Server)
            .iter()
            .any(|l| l.contains("TRUNCATED to 8 bytes"))
    );
}

#[test]
fn udp_sender_refuses_messages_larger_than_a_datagram() {
    let mut pair = new_pair(sizing()).unwrap();
    let mut sbuf = vec![0u8; 4000];
    let mut send = UdpSender::new(
        UdpSenderConfig {
            to: server_addr(),
            flush_timeout: Duration::from_secs(3),
        },
        &mut sbuf,
    );
    let mut rbuf = [0u8; 16];
    let mut recv = UdpReceiver::new(
        UdpReceiverConfig {
            port: PORT,
            count: Some(1),
        },
        &mut rbuf,
    );
    let big = "x".repeat(2000);
    let mut log = Log::default();
    pair.run(
        &mut recv,
        &mut send,
        &mut Lines::none(),
        &mut messages(&[&big]),
        &mut log,
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(
        send.outcome(),
        Some(Err(Error::MessageTooLarge {
            len: 2000,
            max: 1472
        }))
    );
    assert!(log.received.is_empty(), "nothing may be sent cut");
    // And input larger than the program's own buffer is refused at once.
    let mut small = [0u8; 4];
    let mut send = UdpSender::<TestStack>::new(
        UdpSenderConfig {
            to: server_addr(),
            flush_timeout: Duration::from_secs(1),
        },
        &mut small,
    );
    assert_eq!(
        send.input(b"12345"),
        Err(Error::MessageTooLarge { len: 5, max: 4 })
    );
}

#[test]
fn tcp_long_connection_echoes_every_message_then_closes_both_ways() {
    let mut pair = new_pair(sizing()).unwrap();
    let mut srv = server::<4>(ServeMode::Echo, 2, 1);
    let mut cli = client(false, None, &mut [0; 1024], &mut [0; 1024]);
    let msgs: Vec<String> = (0..50).map(|i| format!("message {i}")).collect();
    let refs: Vec<&str> = msgs.iter().map(String::as_str).collect();
    let mut log = Log::default();
    let ending = pair
        .run(
            &mut srv,
            &mut cli,
            &mut Lines::none(),
            &mut messages(&refs),
            &mut log,
            Duration::from_secs(60),
        )
        .unwrap();
    assert_eq!(ending, Ending::Finished);
    assert_eq!(cli.outcome(), Some(Ok(())));
    assert_eq!(srv.outcome(), Some(Ok(())));
    let echoed: Vec<u8> = log
        .received
        .iter()
        .filter(|r| r.0 == Side::Client)
        .flat_map(|r| r.2.clone())
        .collect();
    assert_eq!(echoed, msgs.concat().into_bytes());
    let server_lines = log.of(Side::Server);
    assert!(
        server_lines
            .iter()
            .any(|l| l.contains("closed (recv returned 0 bytes)")),
        "S9"
    );
    let client_lines = log.of(Side::Client);
    assert_eq!(
        client_lines
            .iter()
            .filter(|l| l.contains("connected"))
            .count(),
        1,
        "one long connection"
    );
    // Totals agree on both ends.
    let closed = |lines: &[&str]| {
        lines
            .iter()
            .find(|l| l.contains("closed: in"))
            .map(|l| l.to_string())
            .unwrap()
    };
    let (s, c) = (closed(&server_lines), closed(&client_lines));
    let crc = |line: &str, dir: &str| {
        line.split(dir)
            .nth(1)
            .unwrap()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(crc(&s, "in "), crc(&c, "out "));
    assert_eq!(crc(&s, "out "), crc(&c, "in "));
}

/// The client's own log of one long connection carrying `count` messages to an echo server,
/// as "S" (a message sent) and "R" (an answer received), in order.
fn paced_exchange(pace: smolsock::programs::Pace, count: usize) -> String {
    let mut pair = new_pair(sizing()).unwrap();
    let mut srv = server::<4>(ServeMode::Echo, 2, 1);
    let (mut tx, mut rx) = ([0u8; 1024], [0u8; 1024]);
    let mut cli = TcpClient::new(
        TcpClientConfig {
            to: server_addr(),
            short: false,
            pace,
            timeout: Duration::from_secs(5),
            bulk: None,
            reply_timeout: Some(smolsock::programs::DEFAULT_REPLY_TIMEOUT),
            idle_timeout: None,
            timeouts: smolsock::programs::DEFAULT_TIMEOUTS,
        },
        &mut tx,
        &mut rx,
    );
    let msgs: Vec<String> = (0..count).map(|i| format!("line {i}")).collect();
    let refs: Vec<&str> = msgs.iter().map(String::as_str).collect();
    let mut log = Log::default();
    let ending = pair
        .run(
            &mut srv,
            &mut cli,
            &mut Lines::none(),
            &mut messages(&refs),
            &mut log,
            Duration::from_secs(60),
        )
        .unwrap();
    assert_eq!(ending, Ending::Finished);
    assert_eq!(cli.outcome(), Some(Ok(())));
    let echoed: Vec<u8> = log
        .received
        .iter()
        .filter(|r| r.0 == Side::Client)
        .flat_map(|r| r.2.clone())
        .collect();
    assert_eq!(
        echoed,
        msgs.concat().into_bytes(),
        "every message echoed, in order"
    );
    log.of(Side::Client)
        .iter()
        .filter_map(|l| {
            if l.contains(" sent ") {
                Some('S')
            } else if l.contains(" received ") {
                Some('R')
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn lock_step_client_waits_for_each_answer_before_the_next_message() {
    let order = paced_exchange(smolsock::programs::Pace::LockStep, 5);
    assert!(order.starts_with('S'), "{order}");
    assert!(
        !order.contains("SS"),
        "a message went before the last one was answered: {order}"
    );
    assert_eq!(order.matches('S').count(), 5, "{order}");
}

#[test]
fn pipelining_client_sends_without_waiting_for_answers() {
    let order = paced_exchange(smolsock::programs::Pace::Pipeline, 5);
    assert!(
        order.starts_with("SS"),
        "pipelining queues the next message before the answer: {order}"
    );
    assert_eq!(order.matches('S').count(), 5, "{order}");
}

#[test]
fn tcp_short_connections_use_a_new_port_and_socket_each() {
    let mut pair = new_pair(sizing()).unwrap();
    let mut srv = server::<4>(ServeMode::Echo, 2, 3);
    let mut cli = client(true, None, &mut [0; 1024], &mut [0; 1024]);
    let mut log = Log::default();
    let ending = pair
        .run(
            &mut srv,
            &mut cli,
            &mut Lines::none(),
            &mut messages(&["a", "b", "c"]),
            &mut log,
            Duration::from_secs(60),
        )
        .unwrap();
    assert_eq!(ending, Ending::Finished);
    let ports: std::collections::HashSet<u16> = log
        .of(Side::Server)
        .iter()
        .filter(|l| l.contains("accepted"))
        .map(|l| l.rsplit(':').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ports.len(), 3, "S2: each connection its own ephemeral port");
    let conns: Vec<_> = log
        .of(Side::Server)
        .into_iter()
        .filter(|l| l.contains("accepted"))
        .collect();
    assert!(
        conns[2].starts_with("tcp #3"),
        "S5: a new server socket per client: {conns:?}"
    );
}

#[test]
fn tcp_bulk_transfer_over_the_link_is_intact() {
    let mut pair = new_pair(Sizing {
        tcp_buf: 65536,
        ..sizing()
    })
    .unwrap();
    let mut srv = server::<2>(ServeMode::Sink, 1, 1);
    let mut cli = client(false, Some(1 << 20), &mut [0; 16384], &mut [0; 1024]);
    let mut log = Log::default();
    let ending = pair
        .run(
            &mut srv,
            &mut cli,
            &mut Lines::none(),
            &mut Lines::none(),
            &mut log,
            Duration::from_secs(120),
        )
        .unwrap();
    assert_eq!(ending, Ending::Finished);
    let mut data = vec![0u8; 1 << 20];
    fill_pattern(0, &mut data);
    let want = format!("in 1048576 bytes crc32 {:08x}", crc32fast::hash(&data));
    assert!(
        log.of(Side::Server).iter().any(|l| l.contains(&want)),
        "{:?}",
        log.of(Side::Server)
    );
}

#[test]
fn connecting_to_a_closed_port_is_refused() {
    let mut pair = new_pair(sizing()).unwrap();
    let sock = pair.client.tcp_connect(server_addr()).unwrap();
    pair.pump(Duration::from_millis(100));
    // The socket layer tells the reset that answered the SYN from one that broke an open
    // connection.
    assert_eq!(
        pair.client.tcp_phase(sock),
        Phase::Failed(Error::ConnectionRefused)
    );
    // Through the program, that is reported as a refusal (S1: no bind, no server).
    let mut pair = new_pair(sizing()).unwrap();
    let mut cli = client(false, None, &mut [0; 64], &mut [0; 64]);
    struct Nothing;
    impl Program<TestStack> for Nothing {
        fn poll(
            &mut self,
            _: &mut TestStack,
            _: smoltcp::time::Instant,
            _: &mut dyn FnMut(&Event<'_>),
        ) -> smolsock::Poll {
            smolsock::Poll::default()
        }
        fn outcome(&self) -> Option<smolsock::Result<()>> {
            Some(Ok(()))
        }
    }
    let mut log = Log::default();
    pair.run(
        &mut Nothing,
        &mut cli,
        &mut Lines::none(),
        &mut messages(&["x"]),
        &mut log,
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(cli.outcome(), Some(Err(Error::ConnectionRefused)));
}

#[test]
fn backlog_completes_handshakes_before_accept_and_drops_beyond() {
    // S12 on smoltcp: `backlog` pool sockets each complete a handshake on their own; a
    // SYN that finds them all holding connections not yet accepted is dropped, as Linux
    // drops it, and the client's retransmission gets in once the server accepts.
    let mut pair = new_pair(sizing()).unwrap();
    let listener = pair.server.tcp_listen(PORT, 2).unwrap();
    let mut socks = Vec::new();
    for _ in 0..3 {
        socks.push(pair.client.tcp_connect(server_addr()).unwrap());
        pair.pump(Duration::from_millis(100));
    }
    let phases: Vec<Phase> = socks.iter().map(|&s| pair.client.tcp_phase(s)).collect();
    assert_eq!(
        phases,
        [Phase::Open, Phase::Open, Phase::Connecting],
        "the third SYN is dropped, not reset"
    );
    // Both established connections are handed out by accept, each its own socket (S5, S6).
    let (a, pa) = pair.server.tcp_accept(listener).unwrap();
    let (b, pb) = pair.server.tcp_accept(listener).unwrap();
    assert_ne!(a, b);
    assert_ne!(pa.port(), pb.port());
    // The third client's SYN retransmission finds a listening socket.
    pair.pump(Duration::from_secs(3));
    assert_eq!(pair.client.tcp_phase(socks[2]), Phase::Open);
    assert!(pair.server.tcp_accept(listener).is_ok());
    assert_eq!(pair.server.tcp_accept(listener), Err(Error::WouldBlock));
}

#[test]
fn closing_the_listener_keeps_accepted_connections() {
    // S7: after the listener closes, new clients are refused, the accepted one goes on.
    let mut pair = new_pair(sizing()).unwrap();
    let listener = pair.server.tcp_listen(PORT, 1).unwrap();
    let c1 = pair.client.tcp_connect(server_addr()).unwrap();
    pair.pump(Duration::from_millis(200));
    let (s1, _) = pair.server.tcp_accept(listener).unwrap();
    pair.server.listener_close(listener);
    let c2 = pair.client.tcp_connect(server_addr()).unwrap();
    pair.client.tcp_send(c1, b"still here").unwrap();
    pair.pump(Duration::from_millis(200));
    assert!(
        matches!(pair.client.tcp_phase(c2), Phase::Failed(_)),
        "new client refused"
    );
    let mut buf = [0u8; 64];
    assert_eq!(pair.server.tcp_recv(s1, &mut buf), Ok(Recv::Data(10)));
    assert_eq!(&buf[..10], b"still here");
    // S8/S9: the server closes its socket, the client reads end-of-stream.
    pair.server.tcp_close(s1);
    pair.pump(Duration::from_millis(200));
    assert_eq!(pair.client.tcp_recv(c1, &mut buf), Ok(Recv::Eof));
}

#[test]
fn pool_exhaustion_and_port_conflicts_are_errors() {
    let mut pair = new_pair(Sizing {
        tcp_sockets: 2,
        ..sizing()
    })
    .unwrap();
    pair.server.tcp_listen(PORT, 1).unwrap();
    assert_eq!(
        pair.server.tcp_listen(PORT, 1),
        Err(Error::AddrInUse { port: PORT })
    );
    assert_eq!(
        pair.server.tcp_listen(PORT + 1, 5),
        Err(Error::NoFreeSocket)
    );
    assert_eq!(pair.server.tcp_listen(0, 1), Err(Error::InvalidPort));
    let a = pair.client.tcp_connect(server_addr()).unwrap();
    let b = pair.client.tcp_connect(server_addr()).unwrap();
    assert_ne!(pair.client.tcp_local(a), pair.client.tcp_local(b));
    assert_eq!(
        pair.client.tcp_connect(server_addr()),
        Err(Error::NoFreeSocket)
    );
    assert_eq!(
        pair.client.tcp_connect(SocketAddrV4::new(SERVER_IP, 0)),
        Err(Error::Unaddressable)
    );
    let u = pair.client.udp_open().unwrap();
    pair.client.udp_bind(u, 7000).unwrap();
    let v = pair.client.udp_open().unwrap();
    assert_eq!(
        pair.client.udp_bind(v, 7000),
        Err(Error::AddrInUse { port: 7000 })
    );
}

/// A peer for the lifecycle tests, on the client stack: connects to the server, sends
/// `sends` pings `every` apart (or, with `flood`, as much as fits on every poll), reads
/// what comes back unless `deaf`, and finishes once the server has closed (end of stream
/// or reset).
struct Peer {
    socket: Option<smolsock::smol::TcpHandle>,
    sends: usize,
    every: Duration,
    next: smoltcp::time::Instant,
    flood: bool,
    deaf: bool,
    received: Vec<u8>,
    ended: Option<Result<Recv, Error>>,
}

impl Peer {
    fn new(sends: usize, every: Duration) -> Self {
        Self {
            socket: None,
            sends,
            every,
            next: smoltcp::time::Instant::ZERO,
            flood: false,
            deaf: false,
            received: Vec::new(),
            ended: None,
        }
    }

    /// Sends as much as the server takes and never reads: a stuck peer.
    fn stuck() -> Self {
        Self {
            flood: true,
            deaf: true,
            ..Self::new(0, Duration::ZERO)
        }
    }
}

impl Program<TestStack> for Peer {
    fn poll(
        &mut self,
        stack: &mut TestStack,
        now: smoltcp::time::Instant,
        _: &mut dyn FnMut(&Event<'_>),
    ) -> smolsock::Poll {
        let mut poll = smolsock::Poll::default();
        let Some(socket) = self.socket else {
            self.socket = Some(stack.tcp_connect(server_addr()).unwrap());
            self.next = now;
            poll.progressed = true;
            return poll;
        };
        if self.ended.is_some() {
            return poll;
        }
        match stack.tcp_phase(socket) {
            Phase::Connecting => return poll,
            Phase::Failed(e) => {
                self.ended = Some(Err(e));
                poll.progressed = true;
                return poll;
            }
            Phase::Open => {}
        }
        if self.flood {
            while stack.tcp_send(socket, &[b'f'; 512]).is_ok() {
                poll.progressed = true;
            }
        } else if self.sends > 0 && now >= self.next {
            stack.tcp_send(socket, b"ping").unwrap();
            self.sends -= 1;
            self.next = now + self.every;
            poll.progressed = true;
        }
        if self.sends > 0 {
            poll.wake_at = Some(self.next);
        }
        if !self.deaf {
            let mut buf = [0u8; 1024];
            loop {
                match stack.tcp_recv(socket, &mut buf) {
                    Ok(Recv::Data(n)) => {
                        self.received.extend_from_slice(&buf[..n]);
                        poll.progressed = true;
                    }
                    Ok(Recv::Eof) => {
                        self.ended = Some(Ok(Recv::Eof));
                        stack.tcp_close(socket);
                        poll.progressed = true;
                        break;
                    }
                    Err(Error::WouldBlock) => break,
                    Err(e) => {
                        self.ended = Some(Err(e));
                        poll.progressed = true;
                        break;
                    }
                }
            }
        }
        poll
    }

    fn outcome(&self) -> Option<smolsock::Result<()>> {
        self.ended.map(|_| Ok(()))
    }
}

/// An echo server for one client that closes it after `idle` without data.
fn idle_server(idle: Duration) -> TcpServer<TestStack, 2> {
    TcpServer::new(TcpServerConfig {
        idle_timeout: Some(idle),
        ..server::<2>(ServeMode::Echo, 1, 1).config()
    })
}

#[test]
fn idle_timeout_closes_an_idle_connection_with_fin() {
    let mut pair = new_pair(sizing()).unwrap();
    let mut srv = idle_server(Duration::from_secs(5));
    let mut peer = Peer::new(1, Duration::ZERO);
    let mut log = Log::default();
    let ending = pair
        .run(
            &mut srv,
            &mut peer,
            &mut Lines::none(),
            &mut Lines::none(),
            &mut log,
            Duration::from_secs(60),
        )
        .unwrap();
    assert_eq!(ending, Ending::Finished, "{:?}", log.lines);
    assert_eq!(peer.received, b"ping", "the one message was echoed");
    assert_eq!(peer.ended, Some(Ok(Recv::Eof)), "the peer sees a FIN");
    let lines = log.of(Side::Server);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("idle for 5 s (no data moved either way): closing with FIN")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("closed: in 4 bytes")),
        "{lines:?}"
    );
}

#[test]
fn idle_timeout_spares_a_connection_with_traffic() {
    let mut pair = new_pair(sizing()).unwrap();
    let mut srv = idle_server(Duration::from_secs(5));
    // A ping every 3 s for 30 s: never 5 s without data.
    let mut peer = Peer::new(10, Duration::from_secs(3));
    let mut log = Log::default();
    pair.run(
        &mut srv,
        &mut peer,
        &mut Lines::none(),
        &mut Lines::none(),
        &mut log,
        Duration::from_secs(90),
    )
    .unwrap();
    assert_eq!(
        peer.received,
        b"ping".repeat(10),
        "every ping was served before the idle close: {:?}",
        log.of(Side::Server)
    );
    // And once the pings stop, the idle rule closes it.
    assert_eq!(peer.ended, Some(Ok(Recv::Eof)));
    assert!(
        log.of(Side::Server)
            .iter()
            .any(|l| l.contains("idle for 5 s"))
    );
}

#[test]
fn idle_timeout_resets_a_stuck_peer_that_never_reads() {
    let mut pair = new_pair(sizing()).unwrap();
    let mut srv = idle_server(Duration::from_secs(5));
    // The peer sends without end and never reads: the echo fills its window, the server
    // stops reading, and only zero-window probes and their answers move.
    let mut peer = Peer::stuck();
    let mut log = Log::default();
    let ending = pair
        .run(
            &mut srv,
            &mut peer,
            &mut Lines::none(),
            &mut Lines::none(),
            &mut log,
            Duration::from_secs(120),
        )
        .unwrap();
    assert_eq!(ending, Ending::Finished, "{:?}", log.of(Side::Server));
    assert_eq!(
        peer.ended,
        Some(Err(Error::ConnectionReset)),
        "the peer sees a reset"
    );
    let lines = log.of(Side::Server);
    assert!(
        lines.iter().any(|l| l.contains("idle for 5 s")
            && l.contains("closing with RST (unread or unacknowledged data dropped)")),
        "{lines:?}"
    );
}

#[test]
fn shutdown_closes_every_connection_with_fin_and_reports_totals() {
    let mut pair = new_pair(sizing()).unwrap();
    let mut srv = TcpServer::<TestStack, 4>::new(TcpServerConfig {
        max_clients: None,
        ..server::<4>(ServeMode::Echo, 2, 1).config()
    });
    let mut log = Log::default();
    let mut peers: Vec<Peer> = (0..3).map(|_| Peer::new(1, Duration::ZERO)).collect();
    // Three peers connect and are echoed while the server runs.
    for peer in &mut peers {
        pair.run(
            &mut srv,
            peer,
            &mut Lines::none(),
            &mut Lines::none(),
            &mut log,
            Duration::from_secs(1),
        )
        .unwrap();
    }
    assert_eq!(
        log.of(Side::Server)
            .iter()
            .filter(|l| l.contains("accepted"))
            .count(),
        3
    );
    srv.shutdown(&mut pair.server, &mut |e| log.event(Side::Server, e));
    assert_eq!(srv.outcome(), Some(Ok(())), "the server has finished");
    pair.pump(Duration::from_millis(500));
    let mut buf = [0u8; 64];
    for peer in &peers {
        let socket = peer.socket.unwrap();
        assert_eq!(peer.received, b"ping", "the echo");
        assert_eq!(
            pair.client.tcp_recv(socket, &mut buf),
            Ok(Recv::Eof),
            "then a FIN"
        );
    }
    let lines = log.of(Side::Server);
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("shutting down: closing with FIN"))
            .count(),
        3,
        "{lines:?}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("closed: in 4 bytes crc32") && l.contains("out 4 bytes"))
            .count(),
        3,
        "each connection's totals: {lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("listener on port 9090 closed"))
    );
}

#[test]
fn shutdown_resets_a_connection_with_unread_data() {
    let mut pair = new_pair(sizing()).unwrap();
    // Interactive: after the first message the server waits for a typed reply and reads
    // nothing more, so the second message stays unread.
    let mut srv = server::<2>(ServeMode::Interactive, 1, 1);
    let mut peer = Peer::new(2, Duration::from_millis(200));
    let mut log = Log::default();
    pair.run(
        &mut srv,
        &mut peer,
        // Input that never ends: the server keeps waiting for a line.
        &mut Lines::open(),
        &mut Lines::none(),
        &mut log,
        Duration::from_secs(2),
    )
    .unwrap();
    assert!(
        log.of(Side::Server)
            .iter()
            .any(|l| l.contains("waiting for a reply"))
    );
    srv.shutdown(&mut pair.server, &mut |e| log.event(Side::Server, e));
    pair.pump(Duration::from_millis(500));
    let socket = peer.socket.unwrap();
    assert_eq!(
        pair.client.tcp_phase(socket),
        Phase::Failed(Error::ConnectionReset),
        "the peer sees a reset"
    );
    let lines = log.of(Side::Server);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("shutting down: closing with RST")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("closed: in 8 bytes")),
        "the unread bytes are counted: {lines:?}"
    );
}

#[test]
fn oversized_interactive_reply_is_refused_and_the_server_goes_on() {
    let mut pair = new_pair(sizing()).unwrap();
    let mut srv = server::<2>(ServeMode::Interactive, 1, 1);
    let mut cli = client(false, None, &mut [0; 1024], &mut [0; 1024]);
    let big = "x".repeat(2000);
    let mut log = Log::default();
    let ending = pair
        .run(
            &mut srv,
            &mut cli,
            &mut messages(&[&big, "short answer"]),
            &mut messages(&["question"]),
            &mut log,
            Duration::from_secs(30),
        )
        .expect("a refused reply does not end the run");
    assert_eq!(ending, Ending::Finished);
    assert_eq!(srv.outcome(), Some(Ok(())));
    assert_eq!(cli.outcome(), Some(Ok(())));
    let lines = log.of(Side::Server);
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("message of 2000 bytes is larger than the 1024 bytes that fit"))
            .count(),
        1,
        "{lines:?}"
    );
    let replies: Vec<_> = log
        .received
        .iter()
        .filter(|r| r.0 == Side::Client)
        .collect();
    assert_eq!(replies.len(), 1);
    assert_eq!(
        replies[0].2, b"short answer",
        "the next line answered the client"
    );
}

#[test]
fn tcp_client_reply_timeout_ends_with_timed_out() {
    let mut pair = new_pair(sizing()).unwrap();
    // An interactive server whose operator never types: no answer, and no close.
    let mut srv = server::<2>(ServeMode::Interactive, 1, 1);
    let mut cli = TcpClient::new(
        TcpClientConfig {
            to: server_addr(),
            short: false,
            pace: smolsock::programs::Pace::Pipeline,
            // Far beyond the run's limit: only the reply timeout can end the client.
            timeout: Duration::from_secs(60),
            bulk: None,
            reply_timeout: Some(Duration::from_secs(1)),
            idle_timeout: Some(smolsock::programs::DEFAULT_IDLE_TIMEOUT),
            timeouts: smolsock::programs::DEFAULT_TIMEOUTS,
        },
        Box::leak(Box::new([0u8; 64])),
        Box::leak(Box::new([0u8; 64])),
    );
    let mut log = Log::default();
    pair.run(
        &mut srv,
        &mut cli,
        // Input that never ends: the server keeps waiting for a line.
        &mut Lines::open(),
        &mut messages(&["hello"]),
        &mut log,
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(cli.outcome(), Some(Err(Error::TimedOut)), "{:?}", log.lines);
    assert!(
        log.of(Side::Client).iter().any(|l| l.contains("timed out")),
        "{:?}",
        log.lines
    );
}
