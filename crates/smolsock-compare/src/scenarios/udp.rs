//! Datagrams: cut to the buffer (S11), to and from a port nobody listens on, and the
//! first ones to a peer whose MAC is unknown (ARP).

use super::*;

/// S11: a datagram larger than the receive buffer.
pub fn udp_truncate<T: Subject>(t: &mut T, cx: &Ctx<'_>) -> Observed {
    let port = cx.ports.get(0);
    let socket = t.stack().udp_open().map_err(|e| e.to_string())?;
    t.stack()
        .udp_bind(socket, port)
        .map_err(|e| format!("bind failed: {e}"))?;
    let peer = UdpSocket::bind(SocketAddrV4::new(t.peer(), 0)).map_err(|e| e.to_string())?;
    let to = SocketAddrV4::new(t.addr(), port);
    let big: Vec<u8> = (0..2000u32).map(|i| (i % 251) as u8).collect();
    peer.send_to(&big, to).map_err(|e| e.to_string())?;
    peer.send_to(b"0123456789", to).map_err(|e| e.to_string())?;
    let mut got = Vec::new();
    t.run_until(STEP, &mut |stack| {
        let mut buf = [0u8; 1024];
        while let Ok(d) = stack.udp_recv_from(socket, &mut buf) {
            let intact =
                buf.get(..d.len) == big.get(..d.len) || buf.get(..d.len) == Some(b"0123456789");
            got.push((d.len, d.size, intact));
        }
        got.len() >= 2
    });
    t.stack().udp_close(socket);
    let Some(&(len, size, intact)) = got.first() else {
        return Ok("nothing arrived".to_string().into());
    };
    let next = match got.get(1) {
        Some(&(10, 10, true)) => "the next datagram came whole",
        Some(_) => "the next datagram came damaged",
        None => "the next datagram never came",
    };
    Ok(format!(
        "recvfrom(1024) got {}the first {len} of {size} bytes, the rest was dropped; {next}",
        if intact { "" } else { "(damaged) " }
    )
    .into())
}

/// A datagram arrives for a port nobody listens on.
pub fn udp_closed_port_in<T: Subject>(t: &mut T, cx: &Ctx<'_>) -> Observed {
    // smoltcp drops an ICMP error it cannot send at once, for want of the peer's MAC: let
    // the two hosts meet first, as they would have in practice.
    introduce(t, cx.ports.get(1))?;
    let to = SocketAddrV4::new(t.addr(), cx.ports.get(0));
    let peer = UdpSocket::bind(SocketAddrV4::new(t.peer(), 0)).map_err(|e| e.to_string())?;
    peer.connect(to).map_err(|e| e.to_string())?;
    peer.set_nonblocking(true).map_err(|e| e.to_string())?;
    peer.send(b"anyone?").map_err(|e| e.to_string())?;
    let mut answer = None;
    t.run_until(Duration::from_secs(1), &mut |_| {
        let mut buf = [0u8; 16];
        match peer.recv(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
            Err(e) => {
                answer = Some(match peer::ending(&e) {
                    Ending::Refused => "connection refused (ECONNREFUSED)".to_string(),
                    other => other.text(),
                });
                true
            }
            Ok(n) => {
                answer = Some(format!("{n} bytes"));
                true
            }
        }
    });
    let icmp = cx.frames().iter().any(|f| {
        matches!(f.packet, Packet::IcmpUnreachable { code: 3, original_dst: Some(d), .. } if d == to)
    });
    Ok(format!(
        "{}; the sender's connected socket then got {}",
        if icmp {
            "answered with ICMP port unreachable"
        } else {
            "no ICMP answer"
        },
        answer.unwrap_or_else(|| "nothing".into())
    )
    .into())
}

/// One datagram each way between the subject and the peer, so that each knows the
/// other's MAC address.
fn introduce<T: Subject>(t: &mut T, port: u16) -> Result<(), String> {
    let socket = t.stack().udp_open().map_err(|e| e.to_string())?;
    t.stack()
        .udp_bind(socket, port)
        .map_err(|e| format!("bind failed: {e}"))?;
    let peer = UdpSocket::bind(SocketAddrV4::new(t.peer(), 0)).map_err(|e| e.to_string())?;
    peer.set_nonblocking(true).map_err(|e| e.to_string())?;
    peer.send_to(b"hello", SocketAddrV4::new(t.addr(), port))
        .map_err(|e| e.to_string())?;
    let met = t.run_until(STEP, &mut |stack| {
        let mut buf = [0u8; 16];
        if let Ok(d) = stack.udp_recv_from(socket, &mut buf) {
            let _ = stack.udp_send_to(socket, b"hello", d.from);
        }
        peer.recv_from(&mut buf).is_ok()
    });
    t.stack().udp_close(socket);
    if met {
        Ok(())
    } else {
        Err("the subject and the peer could not exchange a first datagram".into())
    }
}

/// A datagram is sent to a port nobody listens on.
pub fn udp_closed_port_out<T: Subject>(t: &mut T, cx: &Ctx<'_>) -> Observed {
    let to = SocketAddrV4::new(t.peer(), cx.ports.get(0));
    let socket = t.stack().udp_open().map_err(|e| e.to_string())?;
    let first = t.stack().udp_send_to(socket, b"anyone?", to);
    let from = t.stack().udp_local(socket);
    let capture = cx.capture;
    t.run_until(Duration::from_secs(1), &mut |_| {
        capture
            .frames()
            .iter()
            .any(|f| matches!(f.packet, Packet::IcmpUnreachable { .. }))
    });
    t.run_for(Duration::from_millis(50));
    let second = t.stack().udp_send_to(socket, b"again?", to);
    let mut buf = [0u8; 64];
    let recv = t.stack().udp_recv_from(socket, &mut buf);
    t.stack().udp_close(socket);
    let icmp = cx.frames().iter().any(|f| {
        matches!(f.packet, Packet::IcmpUnreachable { code: 3, original_dst: Some(d), .. } if d == to)
    });
    let report = |r: Result<(), smolsock::Error>| match r {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("failed ({e})"),
    };
    let recv = match recv {
        Err(smolsock::Error::WouldBlock) => "nothing to read".to_string(),
        Ok(d) => format!("a {}-byte datagram", d.size),
        Err(e) => format!("failed ({e})"),
    };
    let _ = from;
    Ok(format!(
        "the peer {}; the sender's first send {}, its next send {}, its recvfrom: {recv}",
        if icmp {
            "answered with ICMP port unreachable"
        } else {
            "sent no ICMP"
        },
        report(first),
        report(second)
    )
    .into())
}

/// Counts ARP requests for `target` and datagrams to `to` in a capture.
fn arp_story(frames: &[Frame], target: Ipv4Addr, delivered: usize, sent: usize) -> String {
    let requests = frames
        .iter()
        .filter(|f| matches!(f.packet, Packet::Arp { request: true, target: t, .. } if t == target))
        .count();
    let replies = frames
        .iter()
        .filter(
            |f| matches!(f.packet, Packet::Arp { request: false, sender: s, .. } if s == target),
        )
        .count();
    format!(
        "{requests} ARP request{}, {replies} repl{}; {delivered} of {sent} datagrams sent before the \
         reply were delivered",
        if requests == 1 { "" } else { "s" },
        if replies == 1 { "y" } else { "ies" }
    )
}

/// The number of datagrams the ARP scenario sends before any answer.
pub const ARP_DATAGRAMS: usize = 3;

/// The first packets to a peer whose MAC is unknown, sent by the subject; the peer
/// (at `peer_ip`, on the capture's interface) is polled by `pump`, which returns how many
/// datagrams it has received.
pub fn arp<T: Subject>(
    t: &mut T,
    peer_ip: Ipv4Addr,
    port: u16,
    capture: &Capture,
    mut pump: impl FnMut() -> usize,
) -> Observed {
    let socket = t.stack().udp_open().map_err(|e| e.to_string())?;
    let to = SocketAddrV4::new(peer_ip, port);
    for n in 0..ARP_DATAGRAMS {
        let sent = t.stack().udp_send_to(socket, &[b'a' + n as u8], to);
        sent.map_err(|e| format!("send failed: {e}"))?;
    }
    let mut delivered = 0;
    t.run_until(STEP, &mut |_| {
        delivered = pump();
        delivered >= ARP_DATAGRAMS
    });
    t.stack().udp_close(socket);
    Ok(arp_story(&settled_frames(capture), peer_ip, delivered, ARP_DATAGRAMS).into())
}
