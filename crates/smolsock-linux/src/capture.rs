//! Packet capture on one interface (`AF_PACKET`), and a parser for what was captured.
//!
//! [`Capture::start`] opens a raw packet socket bound to one interface; a background
//! thread timestamps and stores every frame until [`Capture::stop`] (or drop). It needs
//! `CAP_NET_RAW`, which the process has inside [`netns::enter`](crate::netns::enter)'s
//! namespace.
//!
//! On a loopback interface the kernel shows every packet twice, once going out and once
//! coming in; like libpcap, only the incoming copy is kept, so each packet appears once.
//! Loopback frames carry an Ethernet header with zero MACs, so [`Packet::parse`] reads
//! both kinds of interface.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetFrame, EthernetProtocol, Icmpv4Message, Icmpv4Packet,
    IpProtocol, Ipv4Packet, TcpPacket, UdpPacket,
};

/// How long the reader waits in `poll(2)` before looking at the stop flag again.
const POLL_INTERVAL_MS: libc::c_int = 20;
/// Receive buffer: the largest IPv4 packet plus an Ethernet header, and some slack.
const FRAME_BUFFER: usize = 65_536 + 64;
/// Socket receive buffer asked for, so that bursts on loopback are not dropped.
const SOCKET_BUFFER: libc::c_int = 8 << 20;

/// Which way a frame went through the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Received by the interface (for a TAP: written by the program attached to it).
    Incoming,
    /// Sent by this host's kernel (for a TAP: to the program attached to it).
    Outgoing,
}

/// One captured frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// When the reader thread received it.
    pub time: Instant,
    /// Which way it went.
    pub direction: Direction,
    /// The frame, from the Ethernet header on (cut at 64 KiB).
    pub data: Vec<u8>,
    /// Its length on the wire, which is more than `data.len()` if it was cut.
    pub wire_len: usize,
}

impl Frame {
    /// Decodes the frame.
    pub fn packet(&self) -> Packet {
        Packet::parse(&self.data)
    }
}

/// What the capturing thread and its owner share.
struct Shared {
    fd: OwnedFd,
    frames: Mutex<Vec<Frame>>,
    stop: AtomicBool,
    error: Mutex<Option<io::Error>>,
    drops: AtomicU64,
}

/// Locks `m`, carrying on if a thread panicked while holding it (the data is a list of
/// frames, consistent at every push).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running capture on one interface.
pub struct Capture {
    interface: String,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Capture {
    /// Starts capturing every frame on `interface` (in this process's network namespace).
    ///
    /// Frames are seen from the moment this returns.
    pub fn start(interface: &str) -> io::Result<Capture> {
        let name = CString::new(interface).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("interface name {interface:?} contains a NUL byte"),
            )
        })?;
        // SAFETY: `name` is a valid NUL-terminated string.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if index == 0 {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "cannot capture on '{interface}': no such interface in this network namespace"
                ),
            ));
        }
        let index = libc::c_int::try_from(index).map_err(io::Error::other)?;

        // Protocol 0: the socket receives nothing until it is bound to the interface
        // below, so no frame from another interface can slip in.
        // SAFETY: a plain socket call; the descriptor is owned right away.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if raw < 0 {
            let error = io::Error::last_os_error();
            return Err(if error.raw_os_error() == Some(libc::EPERM) {
                io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "cannot capture on '{interface}': a packet socket needs CAP_NET_RAW \
                         (capture inside netns::enter's namespace, or run as root)"
                    ),
                )
            } else {
                annotate(error, interface, "open a packet socket")
            });
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        // A bigger receive buffer; SO_RCVBUFFORCE passes the system limit when allowed.
        // Either failing only makes drops likelier, and those are counted.
        if setsockopt_int(&fd, libc::SO_RCVBUFFORCE, SOCKET_BUFFER).is_err() {
            let _ = setsockopt_int(&fd, libc::SO_RCVBUF, SOCKET_BUFFER);
        }

        // SAFETY: `sockaddr_ll` is plain old data; all zeroes is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as libc::c_ushort;
        addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        addr.sll_ifindex = index;
        // SAFETY: `addr` is a valid `sockaddr_ll` of the length given, alive for the call.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                std::ptr::from_ref(&addr).cast(),
                socklen_of::<libc::sockaddr_ll>(),
            )
        };
        if rc < 0 {
            return Err(annotate(
                io::Error::last_os_error(),
                interface,
                "bind the packet socket",
            ));
        }

        let shared = Arc::new(Shared {
            fd,
            frames: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            error: Mutex::new(None),
            drops: AtomicU64::new(0),
        });
        let reader = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name(format!("capture-{interface}"))
            .spawn(move || read_loop(&reader))
            .map_err(|e| annotate(e, interface, "start the capture thread"))?;
        Ok(Capture {
            interface: interface.to_owned(),
            shared,
            thread: Some(thread),
        })
    }

    /// The interface captured on.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// A copy of the frames seen so far, in order.
    pub fn frames(&self) -> Vec<Frame> {
        lock(&self.shared.frames).clone()
    }

    /// Waits until no frame has arrived for `quiet`, or until `timeout` has passed;
    /// returns whether it went quiet. Useful before [`stop`](Self::stop) when the last
    /// packets (retransmissions, a final ACK) are still to come.
    pub fn wait_quiet(&self, quiet: Duration, timeout: Duration) -> bool {
        let start = Instant::now();
        loop {
            let now = Instant::now();
            let last = lock(&self.shared.frames).last().map(|f| f.time);
            let since = last.map_or(start, |t| t.max(start));
            if now.duration_since(since) >= quiet {
                return true;
            }
            if now.duration_since(start) >= timeout {
                return false;
            }
            thread::sleep(Duration::from_millis(2).min(quiet));
        }
    }

    /// Frames the kernel dropped because the capture could not keep up, so far.
    pub fn drops(&self) -> u64 {
        if let Some(n) = packet_drops(self.shared.fd.as_raw_fd()) {
            self.shared.drops.fetch_add(n, Ordering::Relaxed);
        }
        self.shared.drops.load(Ordering::Relaxed)
    }

    /// The error that ended the capture early, if any (taken: asked once).
    pub fn take_error(&self) -> Option<io::Error> {
        lock(&self.shared.error).take()
    }

    /// Stops the capture and returns every frame seen.
    ///
    /// Everything already queued on the socket when this is called is read first.
    pub fn stop(mut self) -> Vec<Frame> {
        self.finish();
        std::mem::take(&mut *lock(&self.shared.frames))
    }

    fn finish(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.shared.stop.store(true, Ordering::Release);
        if thread.join().is_err() {
            log::warn!("the capture thread on {} panicked", self.interface);
        }
        let drops = self.drops();
        if drops > 0 {
            log::warn!(
                "capture on {}: the kernel dropped {drops} frame(s) the capture could not keep up with",
                self.interface
            );
        }
        if let Some(e) = lock(&self.shared.error).as_ref() {
            log::warn!("capture on {} ended early: {e}", self.interface);
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.finish();
    }
}

impl fmt::Debug for Capture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Capture")
            .field("interface", &self.interface)
            .field("frames", &lock(&self.shared.frames).len())
            .finish_non_exhaustive()
    }
}

fn annotate(error: io::Error, interface: &str, step: &str) -> io::Error {
    io::Error::new(
        error.kind(),
        format!("cannot capture on '{interface}': cannot {step}: {error}"),
    )
}

fn socklen_of<T>() -> libc::socklen_t {
    // Socket address and option structs are a few dozen bytes.
    libc::socklen_t::try_from(std::mem::size_of::<T>()).unwrap_or(libc::socklen_t::MAX)
}

fn setsockopt_int(fd: &OwnedFd, option: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: passes one `c_int`, alive for the call, with its size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            std::ptr::from_ref(&value).cast(),
            socklen_of::<libc::c_int>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Drops since the last call (the kernel resets its counters when read).
fn packet_drops(fd: RawFd) -> Option<u64> {
    let mut stats = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = socklen_of::<libc::tpacket_stats>();
    // SAFETY: the kernel writes at most `len` bytes into `stats`, alive for the call.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            std::ptr::from_mut(&mut stats).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(u64::from(stats.tp_drops))
}

/// What one non-blocking read gave.
enum Read {
    Frame(Frame),
    /// A frame not kept (the outgoing copy on loopback).
    Skipped,
    /// Nothing queued.
    Empty,
}

fn read_one(fd: RawFd, buf: &mut [u8]) -> io::Result<Read> {
    loop {
        // SAFETY: `sockaddr_ll` is plain old data; all zeroes is a valid value.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut from_len = socklen_of::<libc::sockaddr_ll>();
        // SAFETY: the kernel writes at most `buf.len()` bytes into `buf` and at most
        // `from_len` bytes into `from`, both alive for the call. With MSG_TRUNC the
        // return value is the frame's full length, which may exceed `buf.len()`.
        let n = unsafe {
            libc::recvfrom(
                fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_TRUNC | libc::MSG_DONTWAIT,
                std::ptr::from_mut(&mut from).cast(),
                &mut from_len,
            )
        };
        let time = Instant::now();
        if n < 0 {
            let error = io::Error::last_os_error();
            return match error.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => Ok(Read::Empty),
                _ => Err(error),
            };
        }
        let wire_len = usize::try_from(n).unwrap_or(0);
        let outgoing = from.sll_pkttype == libc::PACKET_OUTGOING;
        if outgoing && from.sll_hatype == libc::ARPHRD_LOOPBACK {
            return Ok(Read::Skipped);
        }
        let data = buf
            .get(..wire_len.min(buf.len()))
            .unwrap_or_default()
            .to_vec();
        return Ok(Read::Frame(Frame {
            time,
            direction: if outgoing {
                Direction::Outgoing
            } else {
                Direction::Incoming
            },
            data,
            wire_len,
        }));
    }
}

/// The capture thread: reads until told to stop, then drains what is queued and ends.
fn read_loop(shared: &Shared) {
    let fd = shared.fd.as_raw_fd();
    let mut buf = vec![0u8; FRAME_BUFFER];
    let fail = |error: io::Error| {
        lock(&shared.error).get_or_insert(error);
    };
    loop {
        // Read the flag before draining: once it is seen, everything queued by then is
        // read before the thread ends.
        let stopping = shared.stop.load(Ordering::Acquire);
        loop {
            match read_one(fd, &mut buf) {
                Ok(Read::Frame(frame)) => lock(&shared.frames).push(frame),
                Ok(Read::Skipped) => {}
                Ok(Read::Empty) => break,
                Err(error) => return fail(error),
            }
        }
        if stopping {
            return;
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one `pollfd`, alive for the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, POLL_INTERVAL_MS) };
        if rc < 0 {
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return fail(error);
            }
        }
    }
}

/// One frame, decoded as far as smolsock's comparisons need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet {
    /// An ARP request or reply for IPv4 over Ethernet.
    Arp {
        /// A request (else a reply).
        request: bool,
        /// Sender protocol address.
        sender: Ipv4Addr,
        /// Target protocol address.
        target: Ipv4Addr,
    },
    /// A TCP segment.
    Tcp {
        /// Source address and port.
        src: SocketAddrV4,
        /// Destination address and port.
        dst: SocketAddrV4,
        /// SYN flag.
        syn: bool,
        /// ACK flag.
        ack: bool,
        /// FIN flag.
        fin: bool,
        /// RST flag.
        rst: bool,
        /// PSH flag.
        psh: bool,
        /// Sequence number.
        seq: u32,
        /// Acknowledgment number (meaningful when `ack`).
        ack_number: u32,
        /// Payload length in bytes.
        len: usize,
        /// Window field, unscaled.
        window: u16,
    },
    /// A UDP datagram.
    Udp {
        /// Source address and port.
        src: SocketAddrV4,
        /// Destination address and port.
        dst: SocketAddrV4,
        /// Payload length in bytes.
        len: usize,
    },
    /// An ICMP destination unreachable message.
    IcmpUnreachable {
        /// Who sent it.
        from: Ipv4Addr,
        /// Who it is for.
        to: Ipv4Addr,
        /// The code: 3 is "port unreachable".
        code: u8,
        /// Destination of the quoted UDP or TCP packet, when the quote has it.
        original_dst: Option<SocketAddrV4>,
    },
    /// Any other ICMP message.
    Icmp {
        /// Who sent it.
        from: Ipv4Addr,
        /// Who it is for.
        to: Ipv4Addr,
        /// Message type.
        msg_type: u8,
        /// Message code.
        code: u8,
    },
    /// Anything else: other protocols, IPv4 fragments after the first, malformed frames.
    Other,
}

impl Packet {
    /// Decodes one Ethernet frame; never panics, whatever the bytes.
    pub fn parse(frame: &[u8]) -> Packet {
        Self::try_parse(frame).unwrap_or(Packet::Other)
    }

    fn try_parse(frame: &[u8]) -> Option<Packet> {
        let eth = EthernetFrame::new_checked(frame).ok()?;
        match eth.ethertype() {
            EthernetProtocol::Arp => parse_arp(eth.payload()),
            EthernetProtocol::Ipv4 => parse_ipv4(eth.payload()),
            _ => None,
        }
    }
}

fn parse_arp(payload: &[u8]) -> Option<Packet> {
    let packet = ArpPacket::new_checked(payload).ok()?;
    let ArpRepr::EthernetIpv4 {
        operation,
        source_protocol_addr,
        target_protocol_addr,
        ..
    } = ArpRepr::parse(&packet).ok()?
    else {
        return None;
    };
    let request = match operation {
        ArpOperation::Request => true,
        ArpOperation::Reply => false,
        _ => return None,
    };
    Some(Packet::Arp {
        request,
        sender: source_protocol_addr,
        target: target_protocol_addr,
    })
}

fn parse_ipv4(payload: &[u8]) -> Option<Packet> {
    let ip = Ipv4Packet::new_checked(payload).ok()?;
    // Later fragments carry no transport header.
    if ip.version() != 4 || ip.frag_offset() != 0 {
        return None;
    }
    let (from, to) = (ip.src_addr(), ip.dst_addr());
    let body = ip.payload();
    match ip.next_header() {
        IpProtocol::Tcp => {
            let tcp = TcpPacket::new_checked(body).ok()?;
            Some(Packet::Tcp {
                src: SocketAddrV4::new(from, tcp.src_port()),
                dst: SocketAddrV4::new(to, tcp.dst_port()),
                syn: tcp.syn(),
                ack: tcp.ack(),
                fin: tcp.fin(),
                rst: tcp.rst(),
                psh: tcp.psh(),
                seq: tcp.seq_number().0 as u32,
                ack_number: tcp.ack_number().0 as u32,
                len: tcp.payload().len(),
                window: tcp.window_len(),
            })
        }
        IpProtocol::Udp => {
            let udp = UdpPacket::new_checked(body).ok()?;
            Some(Packet::Udp {
                src: SocketAddrV4::new(from, udp.src_port()),
                dst: SocketAddrV4::new(to, udp.dst_port()),
                len: udp.payload().len(),
            })
        }
        IpProtocol::Icmp => {
            let icmp = Icmpv4Packet::new_checked(body).ok()?;
            Some(match icmp.msg_type() {
                Icmpv4Message::DstUnreachable => Packet::IcmpUnreachable {
                    from,
                    to,
                    code: icmp.msg_code(),
                    original_dst: quoted_destination(icmp.data()),
                },
                other => Packet::Icmp {
                    from,
                    to,
                    msg_type: other.into(),
                    code: icmp.msg_code(),
                },
            })
        }
        _ => None,
    }
}

/// The destination address and port of the IPv4 header and first 8 bytes that an ICMP
/// error quotes, when the quote is a UDP or TCP packet (both put the destination port
/// at bytes 2..4). The quote is cut short by design, so it is read by hand rather than
/// with [`Ipv4Packet::new_checked`], which would want the whole packet.
fn quoted_destination(quote: &[u8]) -> Option<SocketAddrV4> {
    let ver_ihl = *quote.first()?;
    let header_len = usize::from(ver_ihl & 0x0f) * 4;
    if ver_ihl >> 4 != 4 || header_len < 20 {
        return None;
    }
    let protocol = IpProtocol::from(*quote.get(9)?);
    if !matches!(protocol, IpProtocol::Udp | IpProtocol::Tcp) {
        return None;
    }
    let dst: [u8; 4] = quote.get(16..20)?.try_into().ok()?;
    let port: [u8; 2] = quote.get(header_len + 2..header_len + 4)?.try_into().ok()?;
    Some(SocketAddrV4::new(
        Ipv4Addr::from(dst),
        u16::from_be_bytes(port),
    ))
}

impl fmt::Display for Packet {
    /// One line, roughly as tcpdump would print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Packet::Arp {
                request: true,
                sender,
                target,
            } => write!(f, "ARP who-has {target} tell {sender}"),
            Packet::Arp {
                request: false,
                sender,
                target,
            } => write!(f, "ARP reply {sender} to {target}"),
            Packet::Tcp {
                src,
                dst,
                syn,
                ack,
                fin,
                rst,
                psh,
                seq,
                ack_number,
                len,
                window,
            } => {
                let mut flags = String::new();
                for (on, c) in [(syn, 'S'), (fin, 'F'), (rst, 'R'), (psh, 'P'), (ack, '.')] {
                    if on {
                        flags.push(c);
                    }
                }
                if flags.is_empty() {
                    flags.push_str("none");
                }
                write!(f, "TCP {src} > {dst} [{flags}] seq {seq}")?;
                if ack {
                    write!(f, " ack {ack_number}")?;
                }
                write!(f, " win {window} len {len}")
            }
            Packet::Udp { src, dst, len } => write!(f, "UDP {src} > {dst} len {len}"),
            Packet::IcmpUnreachable {
                from,
                to,
                code,
                original_dst,
            } => {
                write!(f, "ICMP {from} > {to} unreachable code {code}")?;
                if let Some(dst) = original_dst {
                    write!(f, " for {dst}")?;
                }
                Ok(())
            }
            Packet::Icmp {
                from,
                to,
                msg_type,
                code,
            } => write!(f, "ICMP {from} > {to} type {msg_type} code {code}"),
            Packet::Other => write!(f, "other"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{
        EthernetAddress, EthernetRepr, Icmpv4DstUnreachable, Icmpv4Repr, IpAddress, Ipv4Repr,
        TcpControl, TcpRepr, TcpSeqNumber, UdpRepr,
    };

    const A: Ipv4Addr = Ipv4Addr::new(192, 168, 69, 1);
    const B: Ipv4Addr = Ipv4Addr::new(192, 168, 69, 100);
    const MAC_A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
    const MAC_B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0x64]);

    /// An Ethernet frame around `len` bytes filled by `fill`.
    fn ethernet(
        ethertype: EthernetProtocol,
        src: EthernetAddress,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Vec<u8> {
        let repr = EthernetRepr {
            src_addr: src,
            dst_addr: MAC_B,
            ethertype,
        };
        let mut buf = vec![0; repr.buffer_len() + len];
        let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
        repr.emit(&mut frame);
        fill(frame.payload_mut());
        buf
    }

    /// An IPv4 packet in an Ethernet frame, its payload filled by `fill`.
    fn ipv4(
        src: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: IpProtocol,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Vec<u8> {
        let ip = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: protocol,
            payload_len: len,
            hop_limit: 64,
        };
        ethernet(EthernetProtocol::Ipv4, MAC_A, ip.buffer_len() + len, |b| {
            let mut packet = Ipv4Packet::new_unchecked(b);
            ip.emit(&mut packet, &ChecksumCapabilities::default());
            fill(packet.payload_mut());
        })
    }

    fn tcp(control: TcpControl, ack: Option<u32>, payload: &[u8]) -> Vec<u8> {
        let repr = TcpRepr {
            src_port: 49152,
            dst_port: 6969,
            control,
            seq_number: TcpSeqNumber(-2), // 0xffff_fffe: a sequence number past i32::MAX
            ack_number: ack.map(|a| TcpSeqNumber(a as i32)),
            window_len: 1234,
            window_scale: None,
            max_seg_size: (control == TcpControl::Syn).then_some(1460),
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None,
            payload,
        };
        ipv4(A, B, IpProtocol::Tcp, repr.buffer_len(), |b| {
            let mut packet = TcpPacket::new_unchecked(b);
            repr.emit(
                &mut packet,
                &IpAddress::Ipv4(A),
                &IpAddress::Ipv4(B),
                &ChecksumCapabilities::default(),
            );
        })
    }

    fn udp(payload: &[u8]) -> Vec<u8> {
        let repr = UdpRepr {
            src_port: 5353,
            dst_port: 7,
        };
        ipv4(B, A, IpProtocol::Udp, 8 + payload.len(), |b| {
            let mut packet = UdpPacket::new_unchecked(b);
            repr.emit(
                &mut packet,
                &IpAddress::Ipv4(B),
                &IpAddress::Ipv4(A),
                payload.len(),
                |p| p.copy_from_slice(payload),
                &ChecksumCapabilities::default(),
            );
        })
    }

    fn arp(operation: ArpOperation) -> Vec<u8> {
        let repr = ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr: MAC_B,
            source_protocol_addr: B,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: A,
        };
        ethernet(EthernetProtocol::Arp, MAC_B, repr.buffer_len(), |b| {
            repr.emit(&mut ArpPacket::new_unchecked(b));
        })
    }

    fn port_unreachable() -> Vec<u8> {
        // The datagram B sent to A's port 7, of which A quotes the IP header and 8 bytes.
        let sent = udp(b"hello");
        let quoted = &sent[14 + 20..14 + 20 + 8];
        let repr = Icmpv4Repr::DstUnreachable {
            reason: Icmpv4DstUnreachable::PortUnreachable,
            header: Ipv4Repr {
                src_addr: B,
                dst_addr: A,
                next_header: IpProtocol::Udp,
                payload_len: 8 + 5,
                hop_limit: 64,
            },
            data: quoted,
        };
        ipv4(A, B, IpProtocol::Icmp, repr.buffer_len(), |b| {
            let mut packet = Icmpv4Packet::new_unchecked(b);
            repr.emit(&mut packet, &ChecksumCapabilities::default());
        })
    }

    #[test]
    fn parses_tcp_flags_numbers_and_length() {
        let syn = Packet::parse(&tcp(TcpControl::Syn, None, &[]));
        assert_eq!(
            syn,
            Packet::Tcp {
                src: SocketAddrV4::new(A, 49152),
                dst: SocketAddrV4::new(B, 6969),
                syn: true,
                ack: false,
                fin: false,
                rst: false,
                psh: false,
                seq: 0xffff_fffe,
                ack_number: 0,
                len: 0,
                window: 1234,
            }
        );
        let data = Packet::parse(&tcp(TcpControl::Psh, Some(77), b"hello"));
        assert!(matches!(
            data,
            Packet::Tcp {
                syn: false,
                ack: true,
                psh: true,
                fin: false,
                ack_number: 77,
                len: 5,
                ..
            }
        ));
        let fin = Packet::parse(&tcp(TcpControl::Fin, Some(78), &[]));
        assert!(matches!(
            fin,
            Packet::Tcp {
                fin: true,
                ack: true,
                len: 0,
                ..
            }
        ));
        assert_eq!(
            fin.to_string(),
            "TCP 192.168.69.1:49152 > 192.168.69.100:6969 [F.] seq 4294967294 ack 78 win 1234 len 0"
        );
    }

    #[test]
    fn parses_udp() {
        assert_eq!(
            Packet::parse(&udp(b"hello")),
            Packet::Udp {
                src: SocketAddrV4::new(B, 5353),
                dst: SocketAddrV4::new(A, 7),
                len: 5,
            }
        );
    }

    #[test]
    fn parses_arp() {
        assert_eq!(
            Packet::parse(&arp(ArpOperation::Request)),
            Packet::Arp {
                request: true,
                sender: B,
                target: A,
            }
        );
        assert!(matches!(
            Packet::parse(&arp(ArpOperation::Reply)),
            Packet::Arp { request: false, .. }
        ));
        assert_eq!(Packet::parse(&arp(ArpOperation::Unknown(9))), Packet::Other);
    }

    #[test]
    fn parses_port_unreachable_with_the_quoted_destination() {
        assert_eq!(
            Packet::parse(&port_unreachable()),
            Packet::IcmpUnreachable {
                from: A,
                to: B,
                code: 3,
                original_dst: Some(SocketAddrV4::new(A, 7)),
            }
        );
    }

    #[test]
    fn loopback_frames_with_zero_macs_parse() {
        let mut frame = tcp(TcpControl::Syn, None, &[]);
        frame[..12].fill(0);
        assert!(matches!(
            Packet::parse(&frame),
            Packet::Tcp { syn: true, .. }
        ));
    }

    #[test]
    fn truncated_and_corrupt_frames_do_not_panic() {
        let frames = [
            tcp(TcpControl::Syn, None, &[]),
            tcp(TcpControl::Psh, Some(1), b"some data"),
            udp(b"hello"),
            arp(ArpOperation::Request),
            port_unreachable(),
        ];
        for frame in &frames {
            for cut in 0..frame.len() {
                let _ = Packet::parse(&frame[..cut]);
            }
            // A frame cut inside its IPv4 packet is not misread.
            let cut = &frame[..frame.len() - 1];
            if frame[12..14] == [0x08, 0x00] {
                assert_eq!(Packet::parse(cut), Packet::Other);
            }
            // Every byte set to extreme values, one at a time.
            for i in 0..frame.len() {
                for value in [0x00, 0x0f, 0x45, 0xf0, 0xff] {
                    let mut bad = frame.clone();
                    bad[i] = value;
                    let _ = Packet::parse(&bad);
                }
            }
        }
        // An ICMP error whose quote is cut short keeps going, without the destination.
        let mut icmp = port_unreachable();
        let quote_start = 14 + 20 + 8;
        icmp.truncate(quote_start + 20 + 2);
        let ip_len = (icmp.len() - 14) as u16;
        icmp[16..18].copy_from_slice(&ip_len.to_be_bytes());
        assert!(matches!(
            Packet::parse(&icmp),
            Packet::IcmpUnreachable {
                original_dst: None,
                ..
            }
        ));
        assert_eq!(Packet::parse(&[]), Packet::Other);
    }
}
