//! The ingress gate: what the socket layer reads of a frame before smoltcp sees it, and the
//! one-frame device that then hands the frame to smoltcp.
//!
//! smoltcp gives a TCP segment to the first socket, in slot order, that accepts it, and a
//! listening socket accepts any SYN for its port. A SYN carrying a live connection's
//! address/port pair can therefore land on a listening socket of the pool, whose answer
//! resets the live connection; and a SYN that finds no listening socket free is answered
//! with a reset, where Linux drops it and lets the client retry. The layer looks at each
//! frame first ([`peek`]) and decides ([`SmolStack`](super::SmolStack)'s ingress) whether
//! smoltcp gets it; only the headers are parsed, and only a SYN costs more than that.

use core::net::{Ipv4Addr, SocketAddrV4};

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium, PacketMeta};
use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpAddress, IpProtocol, Ipv4Packet, TcpPacket, UdpPacket,
};

/// What the gate needs to know of one inbound frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Inbound {
    /// A TCP segment that opens a connection (SYN without ACK) to `local` from `remote`.
    Syn {
        /// The sender.
        remote: SocketAddrV4,
        /// Our address and port it was sent to.
        local: SocketAddrV4,
    },
    /// A whole (unfragmented) UDP datagram to `port` on `local`.
    Udp {
        /// Destination address.
        local: Ipv4Addr,
        /// Destination port.
        port: u16,
        /// Payload length.
        len: usize,
    },
    /// A TCP reset from `remote` to `local`.
    Rst {
        /// The sender.
        remote: SocketAddrV4,
        /// Our address and port it was sent to.
        local: SocketAddrV4,
    },
    /// A fragment of a UDP datagram to `local`.
    UdpFragment {
        /// The sender.
        src: Ipv4Addr,
        /// Destination address.
        local: Ipv4Addr,
        /// The datagram's identification, shared by its fragments.
        ident: u16,
        /// The UDP destination port, in the first fragment only.
        port: Option<u16>,
    },
    /// Anything else: smoltcp handles it as it is.
    Other,
}

/// Reads the headers of `frame` (an Ethernet frame, or an IP packet on an IP medium).
/// Malformed frames are [`Inbound::Other`]: smoltcp drops them itself.
pub(crate) fn peek(medium: Medium, frame: &[u8]) -> Inbound {
    let ip = match medium {
        Medium::Ethernet => match EthernetFrame::new_checked(frame) {
            Ok(eth) if eth.ethertype() == EthernetProtocol::Ipv4 => {
                // The payload borrows `frame`, so re-slice it by the header length.
                match frame.get(EthernetFrame::<&[u8]>::header_len()..) {
                    Some(payload) => payload,
                    None => return Inbound::Other,
                }
            }
            _ => return Inbound::Other,
        },
        #[cfg(feature = "medium-ip")]
        Medium::Ip => frame,
        #[allow(unreachable_patterns)]
        _ => return Inbound::Other,
    };
    let Ok(packet) = Ipv4Packet::new_checked(ip) else {
        return Inbound::Other;
    };
    let (src, dst) = (packet.src_addr(), packet.dst_addr());
    if packet.more_frags() || packet.frag_offset() != 0 {
        if packet.next_header() != IpProtocol::Udp {
            return Inbound::Other;
        }
        // The first fragment starts with the UDP header: the port is its bytes 2 and 3.
        let port = (packet.frag_offset() == 0)
            .then(|| packet.payload().get(2..4))
            .flatten()
            .and_then(|b| Some(u16::from_be_bytes([*b.first()?, *b.get(1)?])));
        return Inbound::UdpFragment {
            src,
            local: dst,
            ident: packet.ident(),
            port,
        };
    }
    match packet.next_header() {
        IpProtocol::Tcp => match TcpPacket::new_checked(packet.payload()) {
            Ok(tcp) if tcp.syn() && !tcp.ack() && !tcp.rst() => Inbound::Syn {
                remote: SocketAddrV4::new(src, tcp.src_port()),
                local: SocketAddrV4::new(dst, tcp.dst_port()),
            },
            Ok(tcp) if tcp.rst() => Inbound::Rst {
                remote: SocketAddrV4::new(src, tcp.src_port()),
                local: SocketAddrV4::new(dst, tcp.dst_port()),
            },
            _ => Inbound::Other,
        },
        IpProtocol::Udp => match UdpPacket::new_checked(packet.payload()) {
            Ok(udp) => Inbound::Udp {
                local: dst,
                port: udp.dst_port(),
                len: udp.payload().len(),
            },
            Err(_) => Inbound::Other,
        },
        _ => Inbound::Other,
    }
}

/// The IPv4 packet of `frame` and its addresses.
fn ipv4(medium: Medium, frame: &[u8]) -> Option<(Ipv4Packet<&[u8]>, IpAddress, IpAddress)> {
    let ip = match medium {
        Medium::Ethernet => frame.get(EthernetFrame::<&[u8]>::header_len()..)?,
        #[allow(unreachable_patterns)]
        _ => frame,
    };
    let packet = Ipv4Packet::new_checked(ip).ok()?;
    let (src, dst) = (
        IpAddress::Ipv4(packet.src_addr()),
        IpAddress::Ipv4(packet.dst_addr()),
    );
    Some((packet, src, dst))
}

/// Whether the TCP checksum of the IPv4 packet in `frame` is right. The gate checks it
/// before it acts on a SYN (evicting a half-open connection), so that a corrupted or forged
/// frame smoltcp would drop anyway cannot make it act.
pub(crate) fn tcp_checksum_ok(medium: Medium, frame: &[u8]) -> bool {
    ipv4(medium, frame).is_some_and(|(packet, src, dst)| {
        TcpPacket::new_checked(packet.payload()).is_ok_and(|tcp| tcp.verify_checksum(&src, &dst))
    })
}

/// Whether the UDP checksum of the IPv4 packet in `frame` is right (or absent, which UDP
/// over IPv4 allows), so that a datagram smoltcp dropped for its checksum is not counted as
/// dropped for want of buffer space.
pub(crate) fn udp_checksum_ok(medium: Medium, frame: &[u8]) -> bool {
    ipv4(medium, frame).is_some_and(|(packet, src, dst)| {
        UdpPacket::new_checked(packet.payload()).is_ok_and(|udp| udp.verify_checksum(&src, &dst))
    })
}

/// A device that holds one frame already taken from the real device, and the real
/// device's transmit token for the reply smoltcp may send while processing it.
pub(crate) struct OneFrame<'f, T> {
    pub(crate) frame: Option<&'f [u8]>,
    pub(crate) meta: PacketMeta,
    pub(crate) tx: Option<T>,
    pub(crate) caps: DeviceCapabilities,
}

/// The held frame, as a receive token.
pub(crate) struct HeldFrame<'f> {
    frame: &'f [u8],
    meta: PacketMeta,
}

impl phy::RxToken for HeldFrame<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.frame)
    }

    fn meta(&self) -> PacketMeta {
        self.meta
    }
}

impl<'f, T: phy::TxToken> Device for OneFrame<'f, T> {
    type RxToken<'a>
        = HeldFrame<'f>
    where
        Self: 'a;
    type TxToken<'a>
        = T
    where
        Self: 'a;

    fn receive(&mut self, _timestamp: Instant) -> Option<(HeldFrame<'f>, T)> {
        let frame = self.frame.take()?;
        let tx = self.tx.take()?;
        Some((
            HeldFrame {
                frame,
                meta: self.meta,
            },
            tx,
        ))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<T> {
        self.tx.take()
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.caps.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{
        EthernetAddress, EthernetRepr, Ipv4Address, Ipv4Repr, TcpControl, TcpRepr, TcpSeqNumber,
    };

    fn tcp_frame(control: TcpControl, ack: bool, corrupt: bool) -> std::vec::Vec<u8> {
        let src = Ipv4Address::new(192, 168, 69, 100);
        let dst = Ipv4Address::new(192, 168, 69, 1);
        let tcp = TcpRepr {
            src_port: 40000,
            dst_port: 9090,
            control,
            seq_number: TcpSeqNumber(7),
            ack_number: ack.then_some(TcpSeqNumber(1)),
            window_len: 1000,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None,
            payload: &[],
        };
        let ip = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Tcp,
            payload_len: tcp.buffer_len(),
            hop_limit: 64,
        };
        let eth = EthernetRepr {
            src_addr: EthernetAddress([2, 0, 0, 0, 0, 9]),
            dst_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            ethertype: EthernetProtocol::Ipv4,
        };
        let mut buf = std::vec![0u8; 14 + 20 + tcp.buffer_len()];
        let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
        eth.emit(&mut frame);
        let mut packet = Ipv4Packet::new_unchecked(frame.payload_mut());
        let caps = ChecksumCapabilities::default();
        ip.emit(&mut packet, &caps);
        let mut segment = TcpPacket::new_unchecked(packet.payload_mut());
        tcp.emit(
            &mut segment,
            &IpAddress::Ipv4(src),
            &IpAddress::Ipv4(dst),
            &caps,
        );
        if corrupt && let Some(last) = buf.last_mut() {
            *last ^= 0xff;
        }
        buf
    }

    #[test]
    fn a_syn_is_seen_with_its_addresses() {
        let frame = tcp_frame(TcpControl::Syn, false, false);
        assert_eq!(
            peek(Medium::Ethernet, &frame),
            Inbound::Syn {
                remote: SocketAddrV4::new(Ipv4Addr::new(192, 168, 69, 100), 40000),
                local: SocketAddrV4::new(Ipv4Addr::new(192, 168, 69, 1), 9090),
            }
        );
        assert!(tcp_checksum_ok(Medium::Ethernet, &frame));
        // The same packet without its Ethernet header, as a TUN delivers it.
        let packet = frame.get(14..).unwrap_or_default();
        assert!(matches!(peek(Medium::Ip, packet), Inbound::Syn { .. }));
    }

    #[test]
    fn syn_ack_and_data_are_other_a_reset_is_seen() {
        for (control, ack) in [
            (TcpControl::Syn, true),
            (TcpControl::None, true),
            (TcpControl::Fin, true),
        ] {
            let frame = tcp_frame(control, ack, false);
            assert_eq!(peek(Medium::Ethernet, &frame), Inbound::Other);
        }
        let rst = tcp_frame(TcpControl::Rst, false, false);
        assert!(matches!(peek(Medium::Ethernet, &rst), Inbound::Rst { .. }));
    }

    #[test]
    fn a_corrupt_syn_fails_its_checksum() {
        let frame = tcp_frame(TcpControl::Syn, false, true);
        assert!(!tcp_checksum_ok(Medium::Ethernet, &frame));
    }

    #[test]
    fn garbage_is_other_and_never_panics() {
        let frame = tcp_frame(TcpControl::Syn, false, false);
        for len in 0..frame.len() {
            let cut = frame.get(..len).unwrap_or_default();
            let _ = peek(Medium::Ethernet, cut);
            let _ = peek(Medium::Ip, cut);
            let _ = tcp_checksum_ok(Medium::Ethernet, cut);
        }
        assert_eq!(peek(Medium::Ethernet, &[0xff; 64]), Inbound::Other);
    }
}
