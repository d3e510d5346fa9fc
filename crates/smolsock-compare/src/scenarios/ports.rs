//! Ephemeral ports: a TCP client's (S2) and a UDP sender's (S10).

use super::*;

/// The ephemeral ranges a port can be classified in.
fn range_text(ports: &[u16]) -> String {
    let kernel = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut parts = text.split_whitespace().map(str::parse::<u16>);
            Some((parts.next()?.ok()?, parts.next()?.ok()?))
        });
    let within = |lo: u16, hi: u16| ports.iter().all(|p| (lo..=hi).contains(p));
    let iana = within(49152, 65535);
    let linux = kernel.is_some_and(|(lo, hi)| within(lo, hi));
    let linux_name = kernel.map_or("ip_local_port_range".to_string(), |(lo, hi)| {
        format!("{lo}-{hi} (Linux's ip_local_port_range)")
    });
    match (linux, iana) {
        (true, false) => linux_name,
        (false, true) => "49152-65535 (IANA's dynamic range)".into(),
        (true, true) => format!("both {linux_name} and 49152-65535"),
        (false, false) => "neither Linux's range nor 49152-65535".into(),
    }
}

/// How ports taken one after another relate: rising (a walk through the range, which may
/// wrap round once from its top to its bottom) or in no order; and whether they are all
/// even (Linux keeps odd ports for `bind` to port 0).
fn order_text(ports: &[u16]) -> String {
    let descents = ports
        .windows(2)
        .filter(|w| w.get(1).copied() < w.first().copied())
        .count();
    let even = if ports.iter().all(|p| p % 2 == 0) {
        ", even numbers only"
    } else {
        ""
    };
    // Random ports fall about every other step: 32 of them with at most one fall is
    // out of reach for chance.
    if ports.len() > 2 && descents <= 1 {
        format!("rising in connect order{even}")
    } else {
        format!("in no order{even}")
    }
}

/// S2: the local ports of clients that never bind.
pub fn client_port<T: Subject>(t: &mut T, cx: &Ctx<'_>) -> Observed {
    /// Connections to one server, held open at once.
    const CLIENTS: usize = 32;
    /// Connects to as many different ports (nobody listens there), for the range: a port
    /// choice may depend on the destination.
    const SPREAD: u16 = 40;
    /// The first of those ports.
    const SPREAD_PORT: u16 = 40000;
    let at = SocketAddrV4::new(t.peer(), cx.ports.get(0));
    let listener = Listener::bind(at)?;
    let mut sockets = Vec::new();
    for _ in 0..CLIENTS {
        match t.stack().tcp_connect(at) {
            Ok(socket) => sockets.push(socket),
            Err(e) => return Err(format!("connect failed: {e}")),
        }
    }
    let mut held = Vec::new();
    t.run_until(STEP, &mut |stack| {
        while let Some((stream, _)) = listener.try_accept() {
            held.push(stream);
        }
        sockets
            .iter()
            .all(|&s| stack.tcp_phase(s) != Phase::Connecting)
    });
    let stack = t.stack();
    let ports: Vec<u16> = sockets
        .iter()
        .filter(|&&s| stack.tcp_phase(s) == Phase::Open)
        .filter_map(|&s| stack.tcp_local(s).map(|a| a.port()))
        .collect();
    for socket in sockets {
        t.stack().tcp_abort(socket);
    }
    for n in 0..SPREAD {
        let to = SocketAddrV4::new(t.peer(), SPREAD_PORT + n);
        let socket = t
            .stack()
            .tcp_connect(to)
            .map_err(|e| format!("connect failed: {e}"))?;
        t.run_for(Duration::from_millis(2));
        t.stack().tcp_abort(socket);
    }
    t.run_for(Duration::from_millis(50));
    // The ports as the SYNs carried them, from the capture: a stack that moves packets by
    // itself (a board) may have had its SYN refused, and the socket closed and unbound,
    // before `tcp_local` could ask.
    let mut spread = Vec::new();
    let mut seen = Vec::new();
    for frame in cx.frames() {
        if let Some(s) = frame.packet.tcp()
            && s.syn
            && !s.ack
            && *s.dst.ip() == t.peer()
            && (SPREAD_PORT..SPREAD_PORT + SPREAD).contains(&s.dst.port())
            && !seen.contains(&s.dst.port())
        {
            seen.push(s.dst.port());
            spread.push(s.src.port());
        }
    }
    if spread.len() != usize::from(SPREAD) {
        return Err(format!(
            "the capture shows {} of the {SPREAD} SYNs to other ports",
            spread.len()
        ));
    }
    let mut distinct = ports.clone();
    distinct.sort_unstable();
    distinct.dedup();
    Ok(format!(
        "{} of {CLIENTS} connected, from {} different ports, {}; {SPREAD} connects to other \
         ports came from ports all in {}",
        ports.len(),
        distinct.len(),
        order_text(&ports),
        range_text(&spread)
    )
    .into())
}

/// S10: a UDP sender's port.
pub fn udp_sender_port<T: Subject>(t: &mut T, cx: &Ctx<'_>) -> Observed {
    /// Further senders, one datagram each, for the range (enough that a range of ports
    /// shows, whatever the random draw).
    const MORE: usize = 40;
    let at = SocketAddrV4::new(t.peer(), cx.ports.get(0));
    let peer = UdpSocket::bind(at).map_err(|e| format!("the peer cannot bind {at}: {e}"))?;
    peer.set_nonblocking(true).map_err(|e| e.to_string())?;
    let send = |t: &mut T, socket, n: u8| -> Result<Option<u16>, String> {
        let sent = t.stack().udp_send_to(socket, &[b'0' + n], at);
        sent.map_err(|e| format!("send failed: {e}"))?;
        let mut source = None;
        let mut buf = [0u8; 16];
        t.run_until(STEP, &mut |_| {
            source = peer.recv_from(&mut buf).ok().map(|(_, from)| from.port());
            source.is_some()
        });
        Ok(source)
    };
    let socket = t.stack().udp_open().map_err(|e| e.to_string())?;
    let before = t.stack().udp_local(socket);
    let mut sources = Vec::new();
    for n in 0..3u8 {
        sources.extend(send(t, socket, n)?);
    }
    let after = t.stack().udp_local(socket);
    t.stack().udp_close(socket);
    let mut all = sources.clone();
    for _ in 0..MORE {
        let other = t.stack().udp_open().map_err(|e| e.to_string())?;
        let source = send(t, other, 9);
        t.stack().udp_close(other);
        all.extend(source?);
    }
    let same = !sources.is_empty() && sources.windows(2).all(|w| w.first() == w.get(1));
    let kept = after.is_some_and(|a| sources.iter().all(|&p| p == a.port()));
    Ok(format!(
        "{} before the first send; {} of 3 datagrams arrived, {}{}; {} more senders' ports \
         were all in {}",
        if before.is_none() {
            "unbound"
        } else {
            "already bound"
        },
        sources.len(),
        if same {
            "all from one port"
        } else {
            "from different ports"
        },
        if kept { ", which the socket kept" } else { "" },
        MORE,
        range_text(&all)
    )
    .into())
}

#[cfg(test)]
mod tests {
    use super::order_text;

    #[test]
    fn port_order() {
        assert_eq!(
            order_text(&[100, 102, 110, 116]),
            "rising in connect order, even numbers only"
        );
        // A walk that wraps round at the top of the range still rises.
        assert_eq!(
            order_text(&[60990, 60996, 32770, 32776]),
            "rising in connect order, even numbers only"
        );
        assert_eq!(
            order_text(&[50001, 61234, 49999, 65000, 52000]),
            "in no order"
        );
    }
}
