//! One Ethernet frame, decoded as far as smolsock's output and comparisons need.
//!
//! [`Packet::parse`] reads frames from a TAP, from an in-process link and from an
//! `AF_PACKET` capture; loopback frames carry an Ethernet header with zero MACs, so they
//! parse too. Nothing here panics, whatever the bytes: a frame that is cut short, has a
//! wrong length field or an unknown protocol is [`Packet::Other`] (checksums are not
//! checked: a capture shows what went by, good or bad).

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    Icmpv4Message, Icmpv4Packet, IpProtocol, Ipv4Packet, TcpPacket, UdpPacket,
};

/// One frame, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet {
    /// An ARP request or reply for IPv4 over Ethernet.
    Arp {
        /// A request (else a reply).
        request: bool,
        /// Sender hardware address (in a reply: the answer).
        sender_mac: EthernetAddress,
        /// Sender protocol address.
        sender: Ipv4Addr,
        /// Target protocol address.
        target: Ipv4Addr,
    },
    /// A TCP segment.
    Tcp(TcpSegment),
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

/// A TCP segment's header fields and payload length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSegment {
    /// Source address and port.
    pub src: SocketAddrV4,
    /// Destination address and port.
    pub dst: SocketAddrV4,
    /// SYN flag.
    pub syn: bool,
    /// ACK flag.
    pub ack: bool,
    /// FIN flag.
    pub fin: bool,
    /// RST flag.
    pub rst: bool,
    /// PSH flag.
    pub psh: bool,
    /// Sequence number, as on the wire.
    pub seq: u32,
    /// Acknowledgment number, as on the wire (meaningful when `ack`).
    pub ack_number: u32,
    /// Payload length in bytes.
    pub len: usize,
    /// Window field, unscaled.
    pub window: u16,
}

impl TcpSegment {
    /// The flags that are set, by name, in the order SYN, FIN, RST, PSH, ACK.
    pub fn flag_names(&self) -> Vec<&'static str> {
        [
            (self.syn, "SYN"),
            (self.fin, "FIN"),
            (self.rst, "RST"),
            (self.psh, "PSH"),
            (self.ack, "ACK"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }

    /// The flags that are set, comma-separated (`SYN,ACK`), or `none`.
    pub fn flags(&self) -> String {
        let names = self.flag_names();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(",")
        }
    }

    /// Whether `a` and `b` are this segment's two ends, either way round.
    pub fn between(&self, a: SocketAddrV4, b: SocketAddrV4) -> bool {
        (self.src == a && self.dst == b) || (self.src == b && self.dst == a)
    }
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

    /// The TCP segment, if this is one.
    pub fn tcp(&self) -> Option<&TcpSegment> {
        match self {
            Packet::Tcp(segment) => Some(segment),
            _ => None,
        }
    }
}

fn parse_arp(payload: &[u8]) -> Option<Packet> {
    let packet = ArpPacket::new_checked(payload).ok()?;
    let ArpRepr::EthernetIpv4 {
        operation,
        source_hardware_addr,
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
        sender_mac: source_hardware_addr,
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
            Some(Packet::Tcp(TcpSegment {
                src: SocketAddrV4::new(from, tcp.src_port()),
                dst: SocketAddrV4::new(to, tcp.dst_port()),
                syn: tcp.syn(),
                ack: tcp.ack(),
                fin: tcp.fin(),
                rst: tcp.rst(),
                psh: tcp.psh(),
                // The wire's 32 bits, which smoltcp keeps in an i32.
                seq: tcp.seq_number().0 as u32,
                ack_number: tcp.ack_number().0 as u32,
                len: tcp.payload().len(),
                window: tcp.window_len(),
            }))
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

impl fmt::Display for TcpSegment {
    /// One line, roughly as tcpdump prints a segment with `-S` (absolute numbers).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut flags = String::new();
        for (on, c) in [
            (self.syn, 'S'),
            (self.fin, 'F'),
            (self.rst, 'R'),
            (self.psh, 'P'),
            (self.ack, '.'),
        ] {
            if on {
                flags.push(c);
            }
        }
        if flags.is_empty() {
            flags.push_str("none");
        }
        write!(
            f,
            "TCP {} > {} [{flags}] seq {}",
            self.src, self.dst, self.seq
        )?;
        if self.ack {
            write!(f, " ack {}", self.ack_number)?;
        }
        write!(f, " win {} len {}", self.window, self.len)
    }
}

impl fmt::Display for Packet {
    /// One line with the addresses, roughly as tcpdump prints it (for logs).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Packet::Arp {
                request: true,
                sender,
                target,
                ..
            } => write!(f, "ARP who-has {target} tell {sender}"),
            Packet::Arp {
                request: false,
                sender,
                sender_mac,
                target,
            } => write!(f, "ARP reply {sender} is-at {sender_mac} to {target}"),
            Packet::Tcp(ref segment) => segment.fmt(f),
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
pub(crate) mod tests {
    use super::*;
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{
        EthernetRepr, Icmpv4DstUnreachable, Icmpv4Repr, IpAddress, Ipv4Repr, TcpControl, TcpRepr,
        TcpSeqNumber, UdpRepr,
    };

    pub const A: Ipv4Addr = Ipv4Addr::new(192, 168, 69, 1);
    pub const B: Ipv4Addr = Ipv4Addr::new(192, 168, 69, 100);
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

    /// A TCP segment from A:49152 to B:6969 with sequence number `seq`.
    pub fn tcp_at(seq: u32, control: TcpControl, ack: Option<u32>, payload: &[u8]) -> Vec<u8> {
        let repr = TcpRepr {
            src_port: 49152,
            dst_port: 6969,
            control,
            seq_number: TcpSeqNumber(seq as i32),
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

    /// A TCP segment whose sequence number is past `i32::MAX`.
    fn tcp(control: TcpControl, ack: Option<u32>, payload: &[u8]) -> Vec<u8> {
        tcp_at(0xffff_fffe, control, ack, payload)
    }

    pub fn udp(payload: &[u8]) -> Vec<u8> {
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

    pub fn arp(operation: ArpOperation) -> Vec<u8> {
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

    pub fn port_unreachable() -> Vec<u8> {
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

    fn echo_request() -> Vec<u8> {
        let repr = Icmpv4Repr::EchoRequest {
            ident: 1,
            seq_no: 2,
            data: b"ping",
        };
        ipv4(B, A, IpProtocol::Icmp, repr.buffer_len(), |b| {
            let mut packet = Icmpv4Packet::new_unchecked(b);
            repr.emit(&mut packet, &ChecksumCapabilities::default());
        })
    }

    /// Every kind of frame the parser knows.
    fn samples() -> Vec<Vec<u8>> {
        vec![
            tcp(TcpControl::Syn, None, &[]),
            tcp(TcpControl::Psh, Some(1), b"some data"),
            udp(b"hello"),
            arp(ArpOperation::Request),
            arp(ArpOperation::Reply),
            port_unreachable(),
            echo_request(),
        ]
    }

    #[test]
    fn parses_tcp_flags_numbers_and_length() {
        let syn = Packet::parse(&tcp(TcpControl::Syn, None, &[]));
        assert_eq!(
            syn,
            Packet::Tcp(TcpSegment {
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
            })
        );
        assert_eq!(syn.tcp().map(TcpSegment::flags).as_deref(), Some("SYN"));
        let data = Packet::parse(&tcp(TcpControl::Psh, Some(77), b"hello"));
        assert!(matches!(
            data,
            Packet::Tcp(TcpSegment {
                syn: false,
                ack: true,
                psh: true,
                fin: false,
                ack_number: 77,
                len: 5,
                ..
            })
        ));
        assert_eq!(
            data.tcp().map(TcpSegment::flags).as_deref(),
            Some("PSH,ACK")
        );
        let fin = Packet::parse(&tcp(TcpControl::Fin, Some(78), &[]));
        assert!(matches!(
            fin,
            Packet::Tcp(TcpSegment {
                fin: true,
                ack: true,
                len: 0,
                ..
            })
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
                sender_mac: MAC_B,
                sender: B,
                target: A,
            }
        );
        let reply = Packet::parse(&arp(ArpOperation::Reply));
        assert!(matches!(reply, Packet::Arp { request: false, .. }));
        assert_eq!(
            reply.to_string(),
            "ARP reply 192.168.69.100 is-at 02-00-00-00-00-64 to 192.168.69.1"
        );
        assert_eq!(Packet::parse(&arp(ArpOperation::Unknown(9))), Packet::Other);
    }

    #[test]
    fn parses_icmp() {
        assert_eq!(
            Packet::parse(&port_unreachable()),
            Packet::IcmpUnreachable {
                from: A,
                to: B,
                code: 3,
                original_dst: Some(SocketAddrV4::new(A, 7)),
            }
        );
        assert_eq!(
            Packet::parse(&echo_request()),
            Packet::Icmp {
                from: B,
                to: A,
                msg_type: 8,
                code: 0,
            }
        );
    }

    #[test]
    fn loopback_frames_with_zero_macs_parse() {
        let mut frame = tcp(TcpControl::Syn, None, &[]);
        frame[..12].fill(0);
        assert!(matches!(
            Packet::parse(&frame),
            Packet::Tcp(TcpSegment { syn: true, .. })
        ));
    }

    #[test]
    fn truncated_frames_are_other_or_read_as_far_as_they_go() {
        for frame in &samples() {
            for cut in 0..frame.len() {
                let _ = Packet::parse(&frame[..cut]);
            }
            // Cut inside the headers: nothing to read.
            assert_eq!(Packet::parse(&frame[..14 + 8]), Packet::Other);
            // A frame cut inside its IPv4 packet (shorter than its length field) is not
            // misread.
            if frame[12..14] == [0x08, 0x00] {
                assert_eq!(Packet::parse(&frame[..frame.len() - 1]), Packet::Other);
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

    #[test]
    fn corrupt_frames_do_not_panic() {
        for frame in &samples() {
            // Every byte set to extreme values, one at a time.
            for i in 0..frame.len() {
                for value in [0x00, 0x0f, 0x45, 0xf0, 0xff] {
                    let mut bad = frame.clone();
                    bad[i] = value;
                    let _ = Packet::parse(&bad).to_string();
                }
            }
        }
        // An IPv4 header length beyond the packet, a later fragment, another protocol.
        let mut frame = udp(b"hello");
        frame[14] = 0x4f;
        assert_eq!(Packet::parse(&frame), Packet::Other);
        let mut frame = udp(b"hello");
        frame[14 + 6..14 + 8].copy_from_slice(&[0x00, 0x10]);
        assert_eq!(Packet::parse(&frame), Packet::Other);
        let mut frame = udp(b"hello");
        frame[12..14].copy_from_slice(&[0x86, 0xdd]);
        assert_eq!(Packet::parse(&frame), Packet::Other);
    }

    #[test]
    fn garbage_does_not_panic() {
        // A small xorshift generator: the same garbage on every run.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let samples = samples();
        for round in 0..20_000 {
            let len = (next() % 120) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Half the rounds keep a real frame's first bytes, so the garbage reaches the
            // IPv4, TCP, UDP, ARP and ICMP parsers rather than stopping at the ethertype.
            if round % 2 == 0 {
                let sample = &samples[round % samples.len()];
                let keep = (next() as usize % sample.len()).min(bytes.len());
                bytes[..keep].copy_from_slice(&sample[..keep]);
            }
            let _ = Packet::parse(&bytes).to_string();
        }
    }
}
