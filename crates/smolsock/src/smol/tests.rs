//! The socket layer's defences, on the in-memory link with a simulated clock: a server
//! stack, a client stack, and frames forged onto the wire as an attacker would.

use core::net::{Ipv4Addr, SocketAddrV4};

use smoltcp::iface::SocketStorage;
use smoltcp::phy::{ChecksumCapabilities, Device, TxToken};
use smoltcp::socket::udp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpAddress, IpProtocol,
    Ipv4Cidr, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber, UdpPacket,
    UdpRepr,
};

use super::*;
use crate::link::Link;
use crate::net::{Phase, Recv, Stack};

const SERVER: Ipv4Addr = Ipv4Addr::new(192, 168, 69, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 69, 2);
const SERVER_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const PORT: u16 = 9090;

type TestStack = SmolStack<'static, 16>;

fn stack<D: Device>(
    device: &mut D,
    ip: Ipv4Addr,
    mac: u8,
    tcp: usize,
    udp_buf: usize,
) -> TestStack {
    // Owned storage: the stack keeps it, nothing is leaked.
    let storage: std::vec::Vec<SocketStorage<'static>> =
        (0..tcp + 1).map(|_| SocketStorage::EMPTY).collect();
    let config = StackConfig {
        mac: EthernetAddress([2, 0, 0, 0, 0, mac]),
        ip: Ipv4Cidr::new(ip, 24),
        gateway: None,
        seed: u64::from(mac) * 7919,
    };
    let mut stack = SmolStack::new(config, device, storage, Instant::ZERO).expect("stack");
    for _ in 0..tcp {
        stack
            .add_tcp(std::vec![0u8; 4096], std::vec![0u8; 4096])
            .expect("tcp socket");
    }
    stack
        .add_udp(
            std::vec![udp::PacketMetadata::EMPTY; 4],
            std::vec![0u8; udp_buf],
            std::vec![udp::PacketMetadata::EMPTY; 4],
            std::vec![0u8; 2048],
        )
        .expect("udp socket");
    stack
}

/// A server stack at .1 and a client stack at .2 on one link, and a clock.
struct Net {
    link: std::boxed::Box<Link<64>>,
    server: TestStack,
    client: TestStack,
    now: Instant,
}

impl Net {
    fn new(server_sockets: usize) -> Self {
        Self::sized(server_sockets, 8)
    }

    fn sized(server_sockets: usize, client_sockets: usize) -> Self {
        let mut link = std::boxed::Box::new(Link::<64>::new());
        let server = stack(&mut link.a(), SERVER, 1, server_sockets, 2048);
        let client = stack(&mut link.b(), CLIENT, 2, client_sockets, 2048);
        Net {
            link,
            server,
            client,
            now: Instant::ZERO,
        }
    }

    /// Moves every frame until nothing moves, then lets `ms` milliseconds pass in steps.
    fn run(&mut self, ms: u64) {
        let end = self.now + Duration::from_millis(ms);
        loop {
            loop {
                let a = self.server.poll(self.now, &mut self.link.a());
                let b = self.client.poll(self.now, &mut self.link.b());
                if !(a || b) {
                    break;
                }
            }
            if self.now >= end {
                return;
            }
            self.now += Duration::from_millis(10);
        }
    }

    /// Puts `frame` on the wire towards the server, as if the client side sent it.
    fn inject(&mut self, frame: &[u8]) {
        let mut end = self.link.b();
        let tx = end.transmit(self.now).expect("room on the link");
        tx.consume(frame.len(), |buf| buf.copy_from_slice(frame));
    }

    /// Starts a connection from the client to the server's port.
    fn dial(&mut self) -> TcpHandle {
        self.client
            .tcp_connect(SocketAddrV4::new(SERVER, PORT))
            .expect("connect")
    }

    /// Connects the client to the server and has the server accept it.
    fn connected(&mut self, listener: ListenerHandle) -> (TcpHandle, TcpHandle, SocketAddrV4) {
        let client = self.dial();
        self.run(50);
        assert_eq!(self.client.tcp_phase(client), Phase::Open);
        let (server, peer) = self.server.tcp_accept(listener).expect("accept");
        (client, server, peer)
    }

    /// Sends `data` from client to server and back; true when it came back whole.
    fn echo(&mut self, client: TcpHandle, server: TcpHandle, data: &[u8]) -> bool {
        if self.client.tcp_send(client, data) != Ok(data.len()) {
            return false;
        }
        self.run(50);
        let mut buf = [0u8; 256];
        let Ok(Recv::Data(n)) = self.server.tcp_recv(server, &mut buf) else {
            return false;
        };
        if self
            .server
            .tcp_send(server, buf.get(..n).unwrap_or_default())
            != Ok(n)
        {
            return false;
        }
        self.run(50);
        let mut back = [0u8; 256];
        matches!(self.client.tcp_recv(client, &mut back), Ok(Recv::Data(m)) if back.get(..m) == Some(data))
    }
}

/// An Ethernet frame carrying one TCP segment to the server.
fn tcp_to_server(from: SocketAddrV4, control: TcpControl, seq: u32) -> std::vec::Vec<u8> {
    let tcp = TcpRepr {
        src_port: from.port(),
        dst_port: PORT,
        control,
        seq_number: TcpSeqNumber(seq as i32),
        ack_number: None,
        window_len: 64240,
        window_scale: None,
        max_seg_size: Some(1460),
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    };
    frame(
        *from.ip(),
        IpProtocol::Tcp,
        tcp.buffer_len(),
        |payload, src, dst| {
            let caps = ChecksumCapabilities::default();
            tcp.emit(&mut TcpPacket::new_unchecked(payload), &src, &dst, &caps);
        },
    )
}

/// An Ethernet frame carrying one UDP datagram to the server's `port`.
fn udp_to_server(from: SocketAddrV4, port: u16, data: &[u8]) -> std::vec::Vec<u8> {
    let udp = UdpRepr {
        src_port: from.port(),
        dst_port: port,
    };
    frame(
        *from.ip(),
        IpProtocol::Udp,
        8 + data.len(),
        |payload, src, dst| {
            let caps = ChecksumCapabilities::default();
            udp.emit(
                &mut UdpPacket::new_unchecked(payload),
                &src,
                &dst,
                data.len(),
                |buf| buf.copy_from_slice(data),
                &caps,
            );
        },
    )
}

fn frame(
    from: Ipv4Addr,
    proto: IpProtocol,
    len: usize,
    emit: impl FnOnce(&mut [u8], IpAddress, IpAddress),
) -> std::vec::Vec<u8> {
    let ip = Ipv4Repr {
        src_addr: from,
        dst_addr: SERVER,
        next_header: proto,
        payload_len: len,
        hop_limit: 64,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress([2, 0, 0, 0, 0, 0x66]),
        dst_addr: SERVER_MAC,
        ethertype: EthernetProtocol::Ipv4,
    };
    let mut buf = std::vec![0u8; 14 + 20 + len];
    let mut eth_frame = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut eth_frame);
    let mut packet = Ipv4Packet::new_unchecked(eth_frame.payload_mut());
    ip.emit(&mut packet, &ChecksumCapabilities::default());
    emit(
        packet.payload_mut(),
        IpAddress::Ipv4(from),
        IpAddress::Ipv4(SERVER),
    );
    buf
}

/// A spoofed source nobody answers for: the server's SYN-ACK never leaves (no ARP reply).
fn spoofed(i: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(192, 168, 69, 200 + (i % 50) as u8), 1000 + i)
}

fn half_open(stack: &TestStack) -> usize {
    stack
        .tcp_snapshots()
        .filter(|s| s.state == tcp::State::SynReceived)
        .count()
}

#[test]
fn half_open_connections_give_way_to_a_real_client() {
    let mut net = Net::new(8);
    let listener = net.server.tcp_listen(PORT, 4).expect("listen");
    for i in 0..4 {
        net.inject(&tcp_to_server(spoofed(i), TcpControl::Syn, 1));
    }
    net.run(20);
    assert_eq!(
        half_open(&net.server),
        4,
        "every listening socket is half-open"
    );
    let (client, server, _) = net.connected(listener);
    assert!(net.echo(client, server, b"still served"));
    // A free socket joined the listener: nothing had to be evicted.
    assert_eq!(net.server.counters().half_open_borrowed, 1);
    assert_eq!(net.server.counters().half_open_evicted, 0);
}

#[test]
fn with_no_free_socket_left_the_oldest_half_open_gives_way() {
    let mut net = Net::new(4);
    let listener = net.server.tcp_listen(PORT, 4).expect("listen");
    for i in 0..4 {
        net.inject(&tcp_to_server(spoofed(i), TcpControl::Syn, 1));
    }
    net.run(20);
    assert_eq!(half_open(&net.server), 4);
    let (client, server, _) = net.connected(listener);
    assert!(net.echo(client, server, b"still served"));
    assert_eq!(net.server.counters().half_open_evicted, 1);
}

#[test]
fn a_burst_of_connects_beyond_the_backlog_completes_every_handshake() {
    let mut net = Net::new(12);
    let listener = net.server.tcp_listen(PORT, 2).expect("listen");
    // Eight SYNs reach the server before any final ACK does.
    let clients: std::vec::Vec<_> = (0..8).map(|_| net.dial()).collect();
    net.run(100);
    for &c in &clients {
        assert_eq!(net.client.tcp_phase(c), Phase::Open);
    }
    let mut accepted = 0;
    while net.server.tcp_accept(listener).is_ok() {
        accepted += 1;
    }
    assert_eq!(accepted, 8);
    assert_eq!(net.server.counters().half_open_evicted, 0);
    net.run(20);
    // The borrowed sockets went back: the listener has its backlog of listening sockets.
    let listening = net
        .server
        .tcp_snapshots()
        .filter(|s| s.state == tcp::State::Listen)
        .count();
    assert_eq!(listening, 2);
}

#[test]
fn half_open_connections_expire_silently() {
    let mut net = Net::new(8);
    let _listener = net.server.tcp_listen(PORT, 4).expect("listen");
    net.server.set_listen_policy(ListenPolicy {
        syn_timeout: Duration::from_secs(2),
        ..ListenPolicy::default()
    });
    for i in 0..3 {
        net.inject(&tcp_to_server(spoofed(i), TcpControl::Syn, 1));
    }
    net.run(1000);
    assert_eq!(half_open(&net.server), 3);
    // The stack's own deadline brings the driver back in time.
    let delay = net.server.poll_delay(net.now).expect("a deadline");
    assert!(delay <= Duration::from_secs(1), "{delay}");
    net.run(1100);
    assert_eq!(half_open(&net.server), 0);
    assert_eq!(net.server.counters().half_open_expired, 3);
    let listening = net
        .server
        .tcp_snapshots()
        .filter(|s| s.state == tcp::State::Listen)
        .count();
    assert_eq!(listening, 4, "the expired sockets listen again");
}

#[test]
fn a_flood_of_syns_never_locks_the_listener() {
    let mut net = Net::new(8);
    let listener = net.server.tcp_listen(PORT, 4).expect("listen");
    for round in 0..20u16 {
        for i in 0..50 {
            net.inject(&tcp_to_server(spoofed(round * 50 + i), TcpControl::Syn, 1));
        }
        net.run(10);
        let (client, server, _) = net.connected(listener);
        assert!(
            net.echo(client, server, b"served during the flood"),
            "round {round}"
        );
        net.client.tcp_abort(client);
        net.server.tcp_abort(server);
        net.run(10);
    }
    let counters = net.server.counters();
    assert!(counters.half_open_evicted + counters.half_open_borrowed >= 900);
}

#[test]
fn a_forged_syn_never_resets_a_live_connection() {
    let mut net = Net::new(8);
    let listener = net.server.tcp_listen(PORT, 4).expect("listen");
    let (client, server, peer) = net.connected(listener);
    for seq in [0, 1, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 12345] {
        net.inject(&tcp_to_server(peer, TcpControl::Syn, seq));
        net.run(20);
        assert_eq!(net.client.tcp_phase(client), Phase::Open, "seq {seq}");
        assert!(net.echo(client, server, b"unharmed"), "seq {seq}");
    }
    assert_eq!(net.server.counters().syn_dropped_live, 6);
}

#[test]
fn a_full_backlog_drops_the_syn_and_the_client_gets_in_later() {
    let mut net = Net::new(8);
    let listener = net.server.tcp_listen(PORT, 1).expect("listen");
    let first = net.dial();
    net.run(50);
    let second = net.dial();
    net.run(50);
    assert_eq!(net.client.tcp_phase(first), Phase::Open);
    assert_eq!(
        net.client.tcp_phase(second),
        Phase::Connecting,
        "not refused"
    );
    assert!(net.server.counters().syn_dropped_full >= 1);
    net.server.tcp_accept(listener).expect("first accepted");
    // The client's SYN retransmission (smoltcp: after 1 s) finds a listening socket.
    net.run(3000);
    assert_eq!(net.client.tcp_phase(second), Phase::Open);
    assert!(net.server.tcp_accept(listener).is_ok());
}

#[test]
fn the_reset_policy_refuses_when_the_backlog_is_full() {
    let mut net = Net::new(8);
    net.server.set_listen_policy(ListenPolicy {
        when_full: WhenFull::Reset,
        ..ListenPolicy::default()
    });
    let _listener = net.server.tcp_listen(PORT, 1).expect("listen");
    let first = net.dial();
    net.run(50);
    let second = net.dial();
    net.run(50);
    assert_eq!(net.client.tcp_phase(first), Phase::Open);
    assert!(matches!(net.client.tcp_phase(second), Phase::Failed(_)));
}

#[test]
fn closing_sockets_make_room_when_the_pool_runs_dry() {
    // Three sockets: one listens, two serve clients that then vanish.
    let mut net = Net::new(3);
    let listener = net.server.tcp_listen(PORT, 1).expect("listen");
    let (c1, s1, _) = net.connected(listener);
    let (c2, s2, _) = net.connected(listener);
    // The clients vanish: a new host takes the client's place on the wire (at another
    // address), so the server's FINs go unanswered.
    let _ = (c1, c2);
    net.client = stack(
        &mut net.link.b(),
        Ipv4Addr::new(192, 168, 69, 3),
        3,
        8,
        2048,
    );
    net.server.tcp_close(s1);
    net.server.tcp_close(s2);
    net.run(100);
    // Both FINs go unanswered (and the listening socket was taken to accept); a new client
    // still gets a socket: the oldest closing one is reused.
    let (c3, s3, _) = net.connected(listener);
    assert!(net.echo(c3, s3, b"room was made"));
    assert!(net.server.counters().closing_reclaimed >= 1);
}

#[test]
fn udp_datagrams_a_full_buffer_drops_are_counted() {
    let mut net = Net::new(2);
    let socket = net.server.udp_open().expect("udp");
    net.server.udp_bind(socket, 5000).expect("bind");
    let from = SocketAddrV4::new(CLIENT, 4000);
    // Four metadata slots: the fifth datagram and later find the buffer full.
    for i in 0..10u8 {
        net.inject(&udp_to_server(from, 5000, &[i; 100]));
        net.run(0);
    }
    let mut buf = [0u8; 200];
    let mut got = 0;
    while net.server.udp_recv_from(socket, &mut buf).is_ok() {
        got += 1;
    }
    assert_eq!(got, 4);
    assert_eq!(net.server.udp_losses(socket).buffer_full, 6);
    // A datagram with a wrong checksum is smoltcp's to drop, not a buffer overflow.
    let mut bad = udp_to_server(from, 5000, &[9; 100]);
    if let Some(last) = bad.last_mut() {
        *last ^= 0xff;
    }
    for _ in 0..5 {
        net.inject(&bad);
    }
    net.run(0);
    assert_eq!(net.server.udp_losses(socket).buffer_full, 6);
}

/// The Ethernet frames of one UDP datagram of `len` bytes to the server's `port`, cut into
/// IPv4 fragments of at most `piece` bytes of IP payload (a multiple of 8).
fn udp_fragments(
    from: SocketAddrV4,
    port: u16,
    ident: u16,
    len: usize,
    piece: usize,
) -> std::vec::Vec<std::vec::Vec<u8>> {
    let data: std::vec::Vec<u8> = (0..len).map(|i| i as u8).collect();
    // The whole datagram as one IP payload, then cut.
    let whole = udp_to_server(from, port, &data);
    let udp = whole.get(34..).unwrap_or_default().to_vec();
    udp.chunks(piece)
        .enumerate()
        .map(|(i, chunk)| {
            let offset = i * piece;
            let more = offset + chunk.len() < udp.len();
            let mut buf = std::vec![0u8; 14 + 20 + chunk.len()];
            buf[..14].copy_from_slice(&whole[..14]);
            let mut packet = Ipv4Packet::new_unchecked(&mut buf[14..]);
            packet.set_version(4);
            packet.set_header_len(20);
            packet.set_total_len((20 + chunk.len()) as u16);
            packet.set_ident(ident);
            packet.clear_flags();
            packet.set_more_frags(more);
            packet.set_frag_offset(offset as u16);
            packet.set_hop_limit(64);
            packet.set_next_header(IpProtocol::Udp);
            packet.set_src_addr(*from.ip());
            packet.set_dst_addr(SERVER);
            packet.fill_checksum();
            packet.payload_mut().copy_from_slice(chunk);
            buf
        })
        .collect()
}

#[test]
fn a_fragmented_datagram_that_never_completes_is_reported_lost() {
    let mut net = Net::new(2);
    let socket = net.server.udp_open().expect("udp");
    net.server.udp_bind(socket, 5000).expect("bind");
    let from = SocketAddrV4::new(CLIENT, 4000);
    // Only the first of three fragments arrives.
    let frames = udp_fragments(from, 5000, 77, 1200, 480);
    assert_eq!(frames.len(), 3);
    net.inject(&frames[0]);
    net.run(1000);
    assert_eq!(net.server.udp_losses(socket).incomplete, 0, "not yet");
    // The stack's deadline brings the driver back when the datagram expires.
    assert!(
        net.server
            .poll_delay(net.now)
            .is_some_and(|d| d <= REASSEMBLY_TIMEOUT)
    );
    net.run(REASSEMBLY_TIMEOUT.total_millis());
    assert_eq!(net.server.udp_losses(socket).incomplete, 1);
    assert_eq!(net.server.counters().fragments_lost, 1);
    // Fragments for a port nobody is bound to are not this stack's loss.
    net.inject(&udp_fragments(from, 5001, 78, 1200, 480)[0]);
    net.run(REASSEMBLY_TIMEOUT.total_millis() + 100);
    assert_eq!(net.server.counters().fragments_lost, 1);
}

/// Needs smoltcp's reassembly (the `fragmentation` feature; `cargo test --workspace` turns it
/// on through the host crate).
#[cfg(feature = "fragmentation")]
#[test]
fn a_lost_fragment_does_not_block_the_datagrams_after_it() {
    let mut net = Net::new(2);
    let socket = net.server.udp_open().expect("udp");
    net.server.udp_bind(socket, 5000).expect("bind");
    let from = SocketAddrV4::new(CLIENT, 4000);
    // Datagram 1 loses its middle fragment; datagram 2 comes whole, in fragments.
    let first = udp_fragments(from, 5000, 1, 1200, 480);
    net.inject(&first[0]);
    net.inject(&first[2]);
    for frame in udp_fragments(from, 5000, 2, 1000, 480) {
        net.inject(&frame);
    }
    net.run(100);
    let mut buf = [0u8; 2000];
    let got = net
        .server
        .udp_recv_from(socket, &mut buf)
        .expect("datagram 2");
    assert_eq!(got.size, 1000);
    assert!(
        buf.iter()
            .take(1000)
            .enumerate()
            .all(|(i, &b)| b == i as u8)
    );
    net.run(REASSEMBLY_TIMEOUT.total_millis() + 100);
    assert_eq!(
        net.server.udp_losses(socket),
        crate::net::UdpLosses {
            buffer_full: 0,
            incomplete: 1
        }
    );
}

#[test]
fn a_closed_connection_says_whether_it_was_refused_reset_or_timed_out() {
    let mut net = Net::new(4);
    // Nobody listens: the reset answers the SYN.
    let refused = net.dial();
    net.run(50);
    assert_eq!(
        net.client.tcp_phase(refused),
        Phase::Failed(Error::ConnectionRefused)
    );
    assert_eq!(
        net.client.tcp_send(refused, b"x"),
        Err(Error::ConnectionRefused)
    );
    net.client.tcp_abort(refused);
    // An open connection the peer resets.
    let listener = net.server.tcp_listen(PORT, 2).expect("listen");
    let (client, server, _) = net.connected(listener);
    net.server.tcp_abort(server);
    net.run(50);
    assert_eq!(
        net.client.tcp_phase(client),
        Phase::Failed(Error::ConnectionReset)
    );
    assert_eq!(
        net.client.tcp_recv(client, &mut [0u8; 8]),
        Err(Error::ConnectionReset)
    );
    net.client.tcp_abort(client);
    // An open connection whose peer goes silent while data waits: the give-up fires.
    let (client, _server, _) = net.connected(listener);
    net.client.tcp_set_timeouts(
        client,
        crate::net::TcpTimeouts {
            keepalive: None,
            give_up: Some(Duration::from_secs(2)),
        },
    );
    // The server's stack vanishes (another host takes its place on the wire).
    net.server = stack(
        &mut net.link.a(),
        Ipv4Addr::new(192, 168, 69, 9),
        9,
        2,
        2048,
    );
    assert_eq!(net.client.tcp_send(client, b"into the void"), Ok(13));
    net.run(3000);
    assert_eq!(net.client.tcp_phase(client), Phase::Failed(Error::TimedOut));
    assert_eq!(
        net.client.tcp_recv(client, &mut [0u8; 8]),
        Err(Error::TimedOut)
    );
}

#[test]
fn a_connect_whose_syns_go_unanswered_times_out_and_is_not_refused() {
    let mut net = Net::new(4);
    // A full backlog drops further SYNs silently: the client's SYNs get no answer.
    let listener = net.server.tcp_listen(PORT, 1).expect("listen");
    let first = net.dial();
    net.run(50);
    assert_eq!(net.client.tcp_phase(first), Phase::Open);
    let second = net.dial();
    net.client.tcp_set_timeouts(
        second,
        crate::net::TcpTimeouts {
            keepalive: None,
            give_up: Some(Duration::from_secs(2)),
        },
    );
    net.run(1000);
    assert_eq!(net.client.tcp_phase(second), Phase::Connecting);
    net.run(2000);
    assert_eq!(net.client.tcp_phase(second), Phase::Failed(Error::TimedOut));
    // The first, established and never accepted, is untouched.
    assert!(net.server.tcp_accept(listener).is_ok());
    assert_eq!(net.client.tcp_phase(first), Phase::Open);
}

#[test]
fn a_connection_closed_in_order_is_no_failure_even_with_a_give_up_set() {
    let mut net = Net::new(4);
    let listener = net.server.tcp_listen(PORT, 2).expect("listen");
    let (client, server, _) = net.connected(listener);
    net.client.tcp_set_timeouts(
        client,
        crate::net::TcpTimeouts {
            keepalive: Some(Duration::from_secs(1)),
            give_up: Some(Duration::from_secs(2)),
        },
    );
    // The client shuts down, the server reads the end and closes: both FINs, and the
    // client's socket leaves TIME-WAIT for CLOSED on its own.
    net.client.tcp_shutdown(client);
    net.run(50);
    assert_eq!(net.server.tcp_recv(server, &mut [0u8; 8]), Ok(Recv::Eof));
    net.server.tcp_close(server);
    net.run(20_000);
    assert_eq!(
        net.client
            .tcp(net.client.tcp_socket(client).expect("live"))
            .state(),
        tcp::State::Closed
    );
    assert_eq!(net.client.tcp_phase(client), Phase::Open);
    assert_eq!(net.client.tcp_recv(client, &mut [0u8; 8]), Ok(Recv::Eof));
}

#[test]
fn a_stale_tcp_handle_never_reaches_the_next_connection() {
    // One client socket: the second connection must reuse the first one's socket.
    let mut net = Net::sized(4, 1);
    let listener = net.server.tcp_listen(PORT, 2).expect("listen");
    let (old, old_server, _) = net.connected(listener);
    net.client.tcp_abort(old);
    net.run(50);
    net.server.tcp_abort(old_server);
    let (new, server, _) = net.connected(listener);
    assert_ne!(old, new);
    assert_eq!(old.slot, new.slot, "the same pool socket serves again");
    // Every call with the old handle is an error value or does nothing.
    assert_eq!(net.client.tcp_phase(old), Phase::Failed(Error::StaleHandle));
    assert_eq!(net.client.tcp_send(old, b"x"), Err(Error::StaleHandle));
    assert_eq!(
        net.client.tcp_recv(old, &mut [0u8; 8]),
        Err(Error::StaleHandle)
    );
    assert_eq!(net.client.tcp_local(old), None);
    assert_eq!(net.client.tcp_peer(old), None);
    assert_eq!(net.client.tcp_unacked(old), 0);
    net.client.tcp_set_timeouts(
        old,
        crate::net::TcpTimeouts {
            keepalive: None,
            give_up: Some(Duration::from_millis(1)),
        },
    );
    net.client.tcp_shutdown(old);
    net.client.tcp_close(old);
    net.client.tcp_abort(old);
    // The new connection did not notice.
    assert_eq!(net.client.tcp_phase(new), Phase::Open);
    assert!(net.echo(new, server, b"still mine"));
    // And a handle closed twice closes nothing the second time.
    net.client.tcp_close(new);
    let (third, server, _) = net.connected(listener);
    net.client.tcp_close(new);
    assert_eq!(net.client.tcp_phase(third), Phase::Open);
    assert!(net.echo(third, server, b"and mine"));
}

#[test]
fn a_stale_udp_handle_never_reaches_the_next_socket() {
    let mut net = Net::new(2);
    let old = net.server.udp_open().expect("udp");
    net.server.udp_bind(old, 7000).expect("bind");
    net.server.udp_close(old);
    let new = net.server.udp_open().expect("the same socket again");
    net.server.udp_bind(new, 7001).expect("bind");
    assert_eq!(old.slot, new.slot, "the same pool socket serves again");
    assert_eq!(net.server.udp_bind(old, 7002), Err(Error::StaleHandle));
    assert_eq!(net.server.udp_local(old), None);
    assert_eq!(net.server.udp_max_payload(old), 0);
    assert!(net.server.udp_flushed(old));
    assert_eq!(
        net.server
            .udp_send_to(old, b"x", SocketAddrV4::new(CLIENT, 7000)),
        Err(Error::StaleHandle)
    );
    assert_eq!(
        net.server.udp_recv_from(old, &mut [0u8; 8]),
        Err(Error::StaleHandle)
    );
    net.server.udp_close(old);
    assert_eq!(
        net.server.udp_local(new).map(|a| a.port()),
        Some(7001),
        "closing the stale handle left the new socket bound"
    );
}

#[test]
fn a_stale_listener_handle_never_reaches_the_next_listener() {
    let mut net = Net::new(4);
    let old = net.server.tcp_listen(PORT, 1).expect("listen");
    net.server.listener_close(old);
    let new = net.server.tcp_listen(PORT, 1).expect("listen again");
    assert_ne!(old, new);
    assert_eq!(net.server.tcp_accept(old), Err(Error::StaleHandle));
    net.server.listener_close(old);
    let (client, server, _) = net.connected(new);
    assert!(net.echo(client, server, b"served"));
}

#[test]
fn reading_in_place_shows_every_byte_once_in_order_then_the_end() {
    let mut net = Net::new(4);
    let listener = net.server.tcp_listen(PORT, 2).expect("listen");
    let (client, server, _) = net.connected(listener);
    // More than the 4 KiB ring in all, in pieces, so the ring wraps while it is read.
    let data: std::vec::Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let mut sent = 0;
    let mut got = std::vec::Vec::new();
    let mut reads = 0;
    while got.len() < data.len() {
        if sent < data.len() {
            let end = (sent + 3000).min(data.len());
            sent += net.client.tcp_send(client, &data[sent..end]).unwrap_or(0);
        }
        net.run(20);
        loop {
            // At most 700 bytes a read, each shown where it lies.
            match net
                .server
                .tcp_recv_with(server, 700, &mut |piece| got.extend_from_slice(piece))
            {
                Ok(Recv::Data(n)) => {
                    assert!(n > 0 && n <= 700, "{n}");
                    reads += 1;
                }
                Err(Error::WouldBlock) => break,
                other => panic!("{other:?}"),
            }
        }
    }
    assert_eq!(got, data);
    assert!(reads >= data.len() / 700);
    net.client.tcp_shutdown(client);
    net.run(50);
    assert_eq!(
        net.server
            .tcp_recv_with(server, 700, &mut |_| panic!("no data")),
        Ok(Recv::Eof)
    );
    net.server.tcp_close(server);
    assert_eq!(
        net.server
            .tcp_recv_with(server, 700, &mut |_| panic!("closed")),
        Err(Error::StaleHandle)
    );
}
