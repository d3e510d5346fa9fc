//! In-process tests: the socket layer and the four programs on two smoltcp stacks joined by
//! an in-memory link, on a simulated clock. No privileges, no devices.

use std::net::SocketAddrV4;

use smolsock::programs::{
    ServeMode, TcpClient, TcpClientConfig, TcpServer, TcpServerConfig, UdpReceiver,
    UdpReceiverConfig, UdpSender, UdpSenderConfig, fill_pattern,
};
use smolsock::{Error, Event, Phase, Program, Recv, Stack};
use smolsock_host::inproc::{CLIENT_IP, Ending, Observer, Pair, SERVER_IP, Side};
use smolsock_host::input::LineInput;
use smolsock_host::setup::{HostStack, Sizing};
use smoltcp::time::Duration;

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

fn messages(list: &[&str]) -> LineInput {
    LineInput::messages(list.iter().map(|s| s.to_string()).collect())
}

fn client(
    short: bool,
    bulk: Option<u64>,
    tx: &mut [u8],
    rx: &mut [u8],
) -> TcpClient<'static, HostStack> {
    // The buffers outlive the test body; leak them for a 'static client.
    let tx: &'static mut [u8] = Box::leak(tx.to_vec().into_boxed_slice());
    let rx: &'static mut [u8] = Box::leak(rx.to_vec().into_boxed_slice());
    TcpClient::new(
        TcpClientConfig {
            to: server_addr(),
            short,
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

fn server<const C: usize>(mode: ServeMode, backlog: usize, max: u64) -> TcpServer<HostStack, C> {
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
    let mut pair = Pair::new(sizing()).unwrap();
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
            &mut LineInput::none(),
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
    let mut pair = Pair::new(sizing()).unwrap();
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
        &mut LineInput::none(),
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
    let mut send = UdpSender::<HostStack>::new(
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
    let mut pair = Pair::new(sizing()).unwrap();
    let mut srv = server::<4>(ServeMode::Echo, 2, 1);
    let mut cli = client(false, None, &mut [0; 1024], &mut [0; 1024]);
    let msgs: Vec<String> = (0..50).map(|i| format!("message {i}")).collect();
    let refs: Vec<&str> = msgs.iter().map(String::as_str).collect();
    let mut log = Log::default();
    let ending = pair
        .run(
            &mut srv,
            &mut cli,
            &mut LineInput::none(),
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

#[test]
fn tcp_short_connections_use_a_new_port_and_socket_each() {
    let mut pair = Pair::new(sizing()).unwrap();
    let mut srv = server::<4>(ServeMode::Echo, 2, 3);
    let mut cli = client(true, None, &mut [0; 1024], &mut [0; 1024]);
    let mut log = Log::default();
    let ending = pair
        .run(
            &mut srv,
            &mut cli,
            &mut LineInput::none(),
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
    let mut pair = Pair::new(Sizing {
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
            &mut LineInput::none(),
            &mut LineInput::none(),
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
    let mut pair = Pair::new(sizing()).unwrap();
    let sock = pair.client.tcp_connect(server_addr()).unwrap();
    pair.pump(Duration::from_millis(100));
    assert_eq!(
        pair.client.tcp_phase(sock),
        Phase::Failed(Error::ConnectionReset)
    );
    // Through the program, that is reported as a refusal (S1: no bind, no server).
    let mut pair = Pair::new(sizing()).unwrap();
    let mut cli = client(false, None, &mut [0; 64], &mut [0; 64]);
    struct Nothing;
    impl Program<HostStack> for Nothing {
        fn poll(
            &mut self,
            _: &mut HostStack,
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
        &mut LineInput::none(),
        &mut messages(&["x"]),
        &mut log,
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(cli.outcome(), Some(Err(Error::ConnectionRefused)));
}

#[test]
fn backlog_completes_handshakes_before_accept_and_refuses_beyond() {
    // S12 on smoltcp: `backlog` pool sockets each complete a handshake on their own; a
    // SYN that finds no listening socket is answered with a reset.
    let mut pair = Pair::new(sizing()).unwrap();
    let listener = pair.server.tcp_listen(PORT, 2).unwrap();
    let socks: Vec<_> = (0..3)
        .map(|_| pair.client.tcp_connect(server_addr()).unwrap())
        .collect();
    pair.pump(Duration::from_millis(500));
    let phases: Vec<Phase> = socks.iter().map(|&s| pair.client.tcp_phase(s)).collect();
    assert_eq!(
        phases.iter().filter(|p| **p == Phase::Open).count(),
        2,
        "{phases:?}"
    );
    assert_eq!(
        phases
            .iter()
            .filter(|p| matches!(p, Phase::Failed(_)))
            .count(),
        1,
        "{phases:?}"
    );
    // Both established connections are handed out by accept, each its own socket (S5, S6).
    let (a, pa) = pair.server.tcp_accept(listener).unwrap();
    let (b, pb) = pair.server.tcp_accept(listener).unwrap();
    assert_ne!(a, b);
    assert_ne!(pa.port(), pb.port());
    assert_eq!(pair.server.tcp_accept(listener), Err(Error::WouldBlock));
}

#[test]
fn closing_the_listener_keeps_accepted_connections() {
    // S7: after the listener closes, new clients are refused, the accepted one goes on.
    let mut pair = Pair::new(sizing()).unwrap();
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
    let mut pair = Pair::new(Sizing {
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
