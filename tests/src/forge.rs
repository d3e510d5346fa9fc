//! Forged frames on the test TAP: an attacker (or a peer the tests play by hand) next to the
//! smoltcp stack.
//!
//! [`Wire::open`] is an `AF_PACKET` raw socket bound to [`TAP`] in the test's namespace. A
//! frame it sends goes out of the kernel's side of the TAP, so the program reading the TAP
//! (smolsock's smoltcp stack, MAC [`SMOL_MAC`], IP [`SMOL_IP`]) receives it as if a host on
//! the link had sent it; the socket also reads every frame the stack sends (SYN-ACKs,
//! resets, ARP requests) and the frames the kernel itself sends it.
//!
//! [`Wire::kernel`] plays the same part for the kernel's own stack (`--stack kernel`): it
//! attaches to the TAP's device side (`/dev/net/tun`), so what it writes the kernel receives
//! on tap0 (at [`KERNEL_IP`]) and what the kernel sends there it reads.
//!
//! Frames are built and parsed with `smoltcp::wire` (the reprs fill in the IPv4 and TCP
//! checksums). Spoofed sources are addresses nobody on the link has, such as
//! 192.168.69.150-250: the stack's ARP requests for them go unanswered, so it never sends
//! them anything, unless the test calls [`Wire::announce`] to give one a made-up MAC.
//!
//! Errors panic with a clear message (this is test code); every wait is bounded.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};
use std::time::{SystemTime, UNIX_EPOCH};

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr,
    TcpSeqNumber,
};

use smolsock_linux::packet::PacketSocket;
use smolsock_linux::tap::{self, Kind};
use smolsock_linux::{iface, wait};

use crate::{KERNEL_IP, SMOL_IP, TAP};

/// The smoltcp stack's MAC address (the `smolsock` default).
pub const SMOL_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

/// The port `smolsock tcp-server` listens on by default.
pub const SERVER_PORT: u16 = 9090;

/// A made-up, locally administered unicast MAC for spoofed host number `n`.
pub fn fake_mac(n: u8) -> [u8; 6] {
    [0x02, 0x66, 0x6f, 0x72, 0x67, n]
}

/// The spoofed source address number `i` (wrapping round 192.168.69.150 to .250, which
/// nobody on the test link has).
pub fn spoofed_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 69, 150 + (i % 101) as u8)
}

/// The TCP flags of a segment the tests send or see.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    /// SYN.
    pub syn: bool,
    /// ACK (the acknowledgment number is valid).
    pub ack: bool,
    /// RST.
    pub rst: bool,
    /// FIN.
    pub fin: bool,
    /// PSH.
    pub psh: bool,
}

/// A TCP segment: the addresses of its IPv4 header and the fields of its TCP header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Source address and port.
    pub src: SocketAddrV4,
    /// Destination address and port.
    pub dst: SocketAddrV4,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number (meaningful when `flags.ack`).
    pub ack: u32,
    /// Flags.
    pub flags: Flags,
    /// Advertised window (unscaled).
    pub window: u16,
    /// Payload.
    pub payload: Vec<u8>,
}

impl Segment {
    /// A SYN from `src` to `dst` with initial sequence number `seq` (and an MSS option, as a
    /// real client sends).
    pub fn syn(src: SocketAddrV4, dst: SocketAddrV4, seq: u32) -> Segment {
        Segment {
            src,
            dst,
            seq,
            ack: 0,
            flags: Flags {
                syn: true,
                ..Flags::default()
            },
            window: 64240,
            payload: Vec::new(),
        }
    }

    /// A bare ACK (with `payload`, and PSH when it is not empty).
    pub fn ack(src: SocketAddrV4, dst: SocketAddrV4, seq: u32, ack: u32, payload: &[u8]) -> Self {
        Segment {
            src,
            dst,
            seq,
            ack,
            flags: Flags {
                ack: true,
                psh: !payload.is_empty(),
                ..Flags::default()
            },
            window: 64240,
            payload: payload.to_vec(),
        }
    }

    /// A RST with sequence number `seq`.
    pub fn rst(src: SocketAddrV4, dst: SocketAddrV4, seq: u32) -> Segment {
        Segment {
            src,
            dst,
            seq,
            ack: 0,
            flags: Flags {
                rst: true,
                ..Flags::default()
            },
            window: 0,
            payload: Vec::new(),
        }
    }

    /// Is this a SYN-ACK?
    pub fn is_syn_ack(&self) -> bool {
        self.flags.syn && self.flags.ack && !self.flags.rst
    }

    /// The sequence space the segment takes (payload, SYN and FIN).
    pub fn len(&self) -> u32 {
        self.payload.len() as u32 + u32::from(self.flags.syn) + u32::from(self.flags.fin)
    }

    /// Whether the segment takes no sequence space.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The segment in an Ethernet frame from `src_mac` to `dst_mac`, checksums filled in.
    /// Panics on a flag combination smoltcp's repr cannot express (SYN+FIN and the like).
    pub fn frame(&self, src_mac: [u8; 6], dst_mac: [u8; 6]) -> Vec<u8> {
        let f = self.flags;
        let control = match (f.syn, f.fin, f.rst) {
            (false, false, false) if f.psh => TcpControl::Psh,
            (false, false, false) => TcpControl::None,
            (true, false, false) => TcpControl::Syn,
            (false, true, false) => TcpControl::Fin,
            (false, false, true) => TcpControl::Rst,
            _ => panic!("cannot forge a segment with flags {f:?}"),
        };
        let tcp = TcpRepr {
            src_port: self.src.port(),
            dst_port: self.dst.port(),
            control,
            seq_number: TcpSeqNumber(self.seq as i32),
            ack_number: f.ack.then_some(TcpSeqNumber(self.ack as i32)),
            window_len: self.window,
            window_scale: None,
            max_seg_size: (f.syn && !f.ack).then_some(1460),
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None,
            payload: &self.payload,
        };
        let ip = Ipv4Repr {
            src_addr: *self.src.ip(),
            dst_addr: *self.dst.ip(),
            next_header: IpProtocol::Tcp,
            payload_len: tcp.buffer_len(),
            hop_limit: 64,
        };
        let eth = EthernetRepr {
            src_addr: EthernetAddress(src_mac),
            dst_addr: EthernetAddress(dst_mac),
            ethertype: EthernetProtocol::Ipv4,
        };
        let caps = ChecksumCapabilities::default();
        let mut buf = vec![0u8; eth.buffer_len() + ip.buffer_len() + tcp.buffer_len()];
        let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
        eth.emit(&mut frame);
        let mut packet = Ipv4Packet::new_unchecked(frame.payload_mut());
        ip.emit(&mut packet, &caps);
        let mut segment = TcpPacket::new_unchecked(packet.payload_mut());
        tcp.emit(
            &mut segment,
            &IpAddress::Ipv4(*self.src.ip()),
            &IpAddress::Ipv4(*self.dst.ip()),
            &caps,
        );
        buf
    }
}

impl std::fmt::Display for Segment {
    /// One line, as tcpdump prints it: `src > dst [S.] seq 1 ack 2 win 3 len 4`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fl = self.flags;
        let mut flags = String::new();
        for (on, c) in [
            (fl.syn, 'S'),
            (fl.fin, 'F'),
            (fl.rst, 'R'),
            (fl.psh, 'P'),
            (fl.ack, '.'),
        ] {
            if on {
                flags.push(c);
            }
        }
        write!(f, "{} > {} [{flags}] seq {}", self.src, self.dst, self.seq)?;
        if fl.ack {
            write!(f, " ack {}", self.ack)?;
        }
        write!(f, " win {} len {}", self.window, self.payload.len())
    }
}

/// Every TCP segment of `frames` in one line each, the sender (kernel or smoltcp) first.
pub fn show(frames: &[Frame]) -> String {
    frames
        .iter()
        .filter_map(|f| match &f.content {
            Content::Tcp(seg) => Some(format!(
                "{} {seg}\n",
                if f.from_stack { "stack" } else { "peer " }
            )),
            Content::Arp {
                request,
                sender,
                target,
            } => Some(format!(
                "{} ARP {} {sender} -> {target}\n",
                if f.from_stack { "stack" } else { "peer " },
                if *request { "who-has" } else { "reply" }
            )),
            Content::Other => None,
        })
        .collect()
}

/// What a frame on the wire holds, as far as the tests care.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// An IPv4 TCP segment with a valid checksum.
    Tcp(Segment),
    /// An ARP request or reply: who asks (or answers) and for (or to) whom.
    Arp {
        /// A request (else a reply).
        request: bool,
        /// The sender's IP.
        sender: Ipv4Addr,
        /// The target IP.
        target: Ipv4Addr,
    },
    /// Anything else.
    Other,
}

/// Parses an Ethernet frame; a TCP segment whose checksum is wrong is [`Content::Other`].
pub fn parse(bytes: &[u8]) -> Content {
    parse_checked(bytes, true)
}

/// [`parse`], checking TCP checksums only when `verify`: a frame the kernel sends out of a
/// TAP with checksum offload (smolsock's default) carries only the pseudo-header's sum,
/// left for the device to finish, as a capture on a NIC with offload shows it.
fn parse_checked(bytes: &[u8], verify: bool) -> Content {
    let Ok(frame) = EthernetFrame::new_checked(bytes) else {
        return Content::Other;
    };
    match frame.ethertype() {
        EthernetProtocol::Arp => {
            let Ok(packet) = ArpPacket::new_checked(frame.payload()) else {
                return Content::Other;
            };
            match ArpRepr::parse(&packet) {
                Ok(ArpRepr::EthernetIpv4 {
                    operation,
                    source_protocol_addr,
                    target_protocol_addr,
                    ..
                }) => Content::Arp {
                    request: operation == ArpOperation::Request,
                    sender: source_protocol_addr,
                    target: target_protocol_addr,
                },
                _ => Content::Other,
            }
        }
        EthernetProtocol::Ipv4 => {
            let Ok(ip) = Ipv4Packet::new_checked(frame.payload()) else {
                return Content::Other;
            };
            if ip.next_header() != IpProtocol::Tcp {
                return Content::Other;
            }
            let (src, dst) = (ip.src_addr(), ip.dst_addr());
            let Ok(tcp) = TcpPacket::new_checked(ip.payload()) else {
                return Content::Other;
            };
            if verify && !tcp.verify_checksum(&IpAddress::Ipv4(src), &IpAddress::Ipv4(dst)) {
                return Content::Other;
            }
            Content::Tcp(Segment {
                src: SocketAddrV4::new(src, tcp.src_port()),
                dst: SocketAddrV4::new(dst, tcp.dst_port()),
                seq: tcp.seq_number().0 as u32,
                ack: tcp.ack_number().0 as u32,
                flags: Flags {
                    syn: tcp.syn(),
                    ack: tcp.ack(),
                    rst: tcp.rst(),
                    fin: tcp.fin(),
                    psh: tcp.psh(),
                },
                window: tcp.window_len(),
                payload: tcp.payload().to_vec(),
            })
        }
        _ => Content::Other,
    }
}

/// A frame read from the TAP.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Sent by the stack under test (smoltcp, or the kernel for [`Wire::kernel`]); else by
    /// someone else on the link (the kernel's own clients; our own frames are not read back).
    pub from_stack: bool,
    /// What it holds.
    pub content: Content,
}

/// A raw link to the stack under test: sends it frames, reads the frames on the link.
pub struct Wire {
    link: Link,
    /// The MAC address of the kernel's side of the TAP (the kernel's own stack).
    pub kernel_mac: [u8; 6],
    /// The MAC address of the stack under test.
    pub stack_mac: [u8; 6],
    /// The IP address of the stack under test.
    pub stack_ip: Ipv4Addr,
}

/// How a [`Wire`] reaches the link.
enum Link {
    /// An `AF_PACKET` socket on the interface (frames to and from the smoltcp stack).
    Packet(PacketSocket),
    /// The TAP's device side (frames to and from the kernel).
    Device(File),
}

/// The MAC address of the kernel's side of interface `ifname` (asked of the kernel: the
/// namespace's /sys belongs to the host's).
fn kernel_mac(ifname: &str) -> [u8; 6] {
    iface::mac(ifname).unwrap_or_else(|e| panic!("cannot read the MAC of {ifname}: {e}"))
}

impl Wire {
    /// Opens a raw socket on [`TAP`] (needs the namespace's CAP_NET_RAW, which `in_netns`
    /// gives).
    pub fn open() -> Wire {
        Self::on(TAP)
    }

    /// Opens a raw socket on interface `ifname`.
    pub fn on(ifname: &str) -> Wire {
        let socket = PacketSocket::open(ifname).unwrap_or_else(|e| panic!("{e}"));
        // Blocking sends: a flood waits for room rather than failing.
        socket
            .socket()
            .set_nonblocking(false)
            .expect("a blocking packet socket");
        // Room for what the stack answers a flood with, read after the fact.
        let _ = socket.grow_receive_buffer(8 << 20);
        Wire {
            link: Link::Packet(socket),
            kernel_mac: kernel_mac(ifname),
            stack_mac: SMOL_MAC,
            stack_ip: SMOL_IP,
        }
    }

    /// Attaches to [`TAP`]'s device side, to forge frames to the kernel's own stack (no
    /// program may hold the TAP meanwhile).
    pub fn kernel() -> Wire {
        let kernel_mac = kernel_mac(TAP);
        let device =
            tap::attach(TAP, Kind::Tap).unwrap_or_else(|e| panic!("cannot attach to the TAP: {e}"));
        Wire {
            link: Link::Device(device),
            kernel_mac,
            stack_mac: kernel_mac,
            stack_ip: KERNEL_IP,
        }
    }

    /// The address `smolsock tcp-server` listens on, on the stack under test.
    pub fn server(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.stack_ip, SERVER_PORT)
    }

    /// Sends one Ethernet frame onto the link (to the smoltcp stack).
    pub fn send(&self, frame: &[u8]) {
        let sent = match &self.link {
            Link::Packet(socket) => socket.send(frame),
            Link::Device(device) => (&mut &*device).write(frame),
        };
        match sent {
            Ok(n) => assert_eq!(n, frame.len(), "a frame sent in part on the TAP"),
            Err(e) => panic!("cannot send a frame on the TAP: {e}"),
        }
    }

    /// Sends `segment` from `src_mac` to the stack's MAC.
    pub fn send_segment(&self, segment: &Segment, src_mac: [u8; 6]) {
        self.send(&segment.frame(src_mac, self.stack_mac));
    }

    /// Tells the stack that `ip` is at `mac` (an ARP request from it for the stack's own
    /// address: smoltcp and Linux both put the asker in their neighbour cache), so that it
    /// sends that spoofed address its answers.
    pub fn announce(&self, ip: Ipv4Addr, mac: [u8; 6]) {
        let arp = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: EthernetAddress(mac),
            source_protocol_addr: ip,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: self.stack_ip,
        };
        let eth = EthernetRepr {
            src_addr: EthernetAddress(mac),
            dst_addr: EthernetAddress([0xff; 6]),
            ethertype: EthernetProtocol::Arp,
        };
        let mut buf = vec![0u8; eth.buffer_len() + arp.buffer_len()];
        let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
        eth.emit(&mut frame);
        arp.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
        self.send(&buf);
    }

    /// Reads the next frame, waiting at most `timeout`.
    pub fn recv(&self, timeout: Duration) -> Option<Frame> {
        let fd = match &self.link {
            Link::Packet(socket) => socket.as_raw_fd(),
            Link::Device(device) => device.as_raw_fd(),
        };
        if !wait::ready(fd, wait::READABLE, Some(timeout.into())).ok()? {
            return None;
        }
        let mut buf = vec![0u8; 65536];
        let (n, from_stack) = match &self.link {
            Link::Packet(socket) => {
                let received = socket.recv(&mut buf).ok()?;
                (received.len, !received.outgoing)
            }
            Link::Device(device) => ((&mut &*device).read(&mut buf).ok()?, true),
        };
        buf.truncate(n);
        Some(Frame {
            from_stack,
            // What the kernel sends through the TAP may leave its checksum to the device.
            content: parse_checked(&buf, from_stack),
        })
    }

    /// Every frame read within `period` (reads until it ends).
    pub fn collect(&self, period: Duration) -> Vec<Frame> {
        let end = Instant::now() + period;
        let mut frames = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return frames;
            }
            if let Some(frame) = self.recv(left) {
                frames.push(frame);
            }
        }
    }

    /// Waits up to `timeout` for a TCP segment the smoltcp stack sends that `want` accepts;
    /// returns it and every frame read before it.
    pub fn await_segment(
        &self,
        timeout: Duration,
        mut want: impl FnMut(&Segment) -> bool,
    ) -> (Option<Segment>, Vec<Frame>) {
        let end = Instant::now() + timeout;
        let mut before = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return (None, before);
            }
            let Some(frame) = self.recv(left) else {
                continue;
            };
            if let Content::Tcp(seg) = &frame.content
                && frame.from_stack
                && want(seg)
            {
                return (Some(seg.clone()), before);
            }
            before.push(frame);
        }
    }

    /// Drops every frame queued so far.
    pub fn drain(&self) {
        while self.recv(Duration::ZERO).is_some() {}
    }
}

/// The segments in `frames` the stack under test sent.
pub fn from_stack(frames: &[Frame]) -> impl Iterator<Item = &Segment> {
    frames
        .iter()
        .filter_map(|f| match (&f.content, f.from_stack) {
            (Content::Tcp(seg), true) => Some(seg),
            _ => None,
        })
}

/// The segments in `frames` others sent the stack under test (the kernel's clients).
pub fn to_stack(frames: &[Frame]) -> impl Iterator<Item = &Segment> {
    frames
        .iter()
        .filter_map(|f| match (&f.content, f.from_stack) {
            (Content::Tcp(seg), false) => Some(seg),
            _ => None,
        })
}

/// A client played by hand from a spoofed address: its own handshake, data and reset.
pub struct FakeClient<'w> {
    wire: &'w Wire,
    /// The client's address.
    pub addr: SocketAddrV4,
    /// Its made-up MAC.
    pub mac: [u8; 6],
    /// Its next sequence number.
    pub seq: u32,
    /// The server's next sequence number, once the SYN-ACK came.
    pub ack: u32,
}

impl<'w> FakeClient<'w> {
    /// A client at `addr` with MAC `mac`, announced to the stack so that it is answered;
    /// `isn` is its initial sequence number.
    pub fn new(wire: &'w Wire, addr: SocketAddrV4, mac: [u8; 6], isn: u32) -> Self {
        wire.announce(*addr.ip(), mac);
        FakeClient {
            wire,
            addr,
            mac,
            seq: isn,
            ack: 0,
        }
    }

    /// Sends the SYN and waits up to `timeout` for the SYN-ACK; returns it (or `None`, with
    /// what came instead).
    pub fn syn(&mut self, timeout: Duration) -> Result<Segment, Vec<Frame>> {
        self.wire.send_segment(
            &Segment::syn(self.addr, self.wire.server(), self.seq),
            self.mac,
        );
        let me = self.addr;
        match self
            .wire
            .await_segment(timeout, |s| s.dst == me && (s.is_syn_ack() || s.flags.rst))
        {
            (Some(seg), _) if seg.is_syn_ack() => {
                self.seq = self.seq.wrapping_add(1);
                self.ack = seg.seq.wrapping_add(1);
                Ok(seg)
            }
            (Some(seg), mut before) => {
                before.push(Frame {
                    from_stack: true,
                    content: Content::Tcp(seg),
                });
                Err(before)
            }
            (None, before) => Err(before),
        }
    }

    /// Sends an ACK carrying `payload` and advances the sequence number.
    pub fn send(&mut self, payload: &[u8]) {
        let seg = Segment::ack(self.addr, self.wire.server(), self.seq, self.ack, payload);
        self.wire.send_segment(&seg, self.mac);
        self.seq = self.seq.wrapping_add(payload.len() as u32);
    }

    /// Waits up to `timeout` for `len` bytes of data from the server (acknowledging each
    /// segment); panics on a reset. Returns the bytes and every segment the server sent
    /// this client meanwhile.
    pub fn read(&mut self, len: usize, timeout: Duration) -> (Vec<u8>, Vec<Segment>) {
        let end = Instant::now() + timeout;
        let mut got = Vec::new();
        let mut seen = Vec::new();
        while got.len() < len {
            let left = end.saturating_duration_since(Instant::now());
            let me = self.addr;
            let (Some(seg), _) = self.wire.await_segment(left, |s| s.dst == me) else {
                panic!(
                    "{me}: {} of {len} bytes within {timeout:?}; the server sent {seen:#?}",
                    got.len()
                );
            };
            seen.push(seg.clone());
            assert!(!seg.flags.rst, "{me}: reset by the server: {seen:#?}");
            if seg.seq == self.ack && !seg.payload.is_empty() {
                got.extend_from_slice(&seg.payload);
                self.ack = self.ack.wrapping_add(seg.payload.len() as u32);
                self.send(&[]);
            }
        }
        (got, seen)
    }

    /// Resets the connection (so the server frees its socket).
    pub fn reset(&self) {
        self.wire.send_segment(
            &Segment::rst(self.addr, self.wire.server(), self.seq),
            self.mac,
        );
    }
}

/// A pseudo-random number (xorshift), seeded from the clock: sequence numbers an attacker
/// guesses.
pub struct Rng(u64);

impl Rng {
    /// Seeded from the clock.
    pub fn from_clock() -> Rng {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Rng(nanos | 1)
    }

    /// The next number.
    pub fn next_u32(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 16) as u32
    }
}

/// `count` SYNs from spoofed sources (nobody answers ARP for them, so the stack's SYN-ACKs
/// never leave) to the stack's server, paced at `rate` a second from `start` (late ones
/// catch up).
pub fn syn_flood(wire: &Wire, count: usize, rate: u32, start: Instant) {
    let mut rng = Rng::from_clock();
    let mac = fake_mac(0xee);
    for i in 0..count {
        let due = start + Duration::from_secs(1) * i as u32 / rate;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let src = SocketAddrV4::new(spoofed_ip(i), 1024 + (i * 31 % 60000) as u16);
        wire.send_segment(&Segment::syn(src, wire.server(), rng.next_u32()), mac);
    }
}

/// A kernel client: connects to `to` within `timeout`, sends `msg` and reads it back within
/// `timeout`. Returns the connected stream, or what went wrong.
pub fn echo_once(to: SocketAddrV4, msg: &[u8], timeout: Duration) -> Result<TcpStream, String> {
    let start = Instant::now();
    let mut s = TcpStream::connect_timeout(&SocketAddr::V4(to), timeout)
        .map_err(|e| format!("connect after {:?}: {e}", start.elapsed()))?;
    s.set_read_timeout(Some(timeout)).unwrap();
    s.set_write_timeout(Some(timeout)).unwrap();
    let local = s.local_addr().unwrap();
    round_trip(&mut s, msg).map_err(|e| format!("{local}: {e}"))?;
    Ok(s)
}

/// Sends `msg` on `s` and reads it back.
pub fn round_trip(s: &mut TcpStream, msg: &[u8]) -> Result<(), String> {
    s.write_all(msg).map_err(|e| format!("send: {e}"))?;
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back)
        .map_err(|e| format!("echo of {} bytes: {e}", msg.len()))?;
    if back != msg {
        return Err(format!("echo {back:?} for {msg:?}"));
    }
    Ok(())
}

/// Fires `n` connects at once at `to`; each client then does an echo round trip. Returns
/// what went wrong for each client that failed.
pub fn burst(to: SocketAddrV4, n: usize) -> Vec<String> {
    let go = Arc::new(Barrier::new(n));
    let clients: Vec<_> = (0..n)
        .map(|i| {
            let go = go.clone();
            thread::spawn(move || {
                go.wait();
                echo_once(to, format!("client {i}").as_bytes(), crate::T).map(|s| {
                    s.shutdown(Shutdown::Write).ok();
                })
            })
        })
        .collect();
    clients
        .into_iter()
        .enumerate()
        .filter_map(|(i, h)| {
            crate::join_within(h, crate::T + crate::T, "a client")
                .err()
                .map(|e| format!("client {i}: {e}"))
        })
        .collect()
}
