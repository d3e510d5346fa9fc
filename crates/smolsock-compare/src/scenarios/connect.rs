//! Opening: connects refused and accepted (S1/S3), one connection per client (S5/S6),
//! closing the listener (S7), and the backlog (S12).

use super::*;

/// S1/S3: connect to a port where nothing listens.
pub fn connect_refused<T: Subject>(t: &mut T, cx: &Ctx<'_>) -> Observed {
    let to = SocketAddrV4::new(t.peer(), cx.ports.get(0));
    let (socket, phase) = subject_connect(t, to, STEP);
    if let Some(socket) = socket {
        t.stack().tcp_abort(socket);
    }
    let rst = cx
        .frames()
        .iter()
        .any(|f| matches!(f.packet, Packet::Tcp(TcpSegment { src, rst: true, .. }) if src == to));
    let mut text = phase_text(phase);
    if matches!(phase, Phase::Failed(_)) && !rst {
        text.push_str(" (no RST in the capture)");
    }
    Ok(text.into())
}

/// S1/S3: connect to a listening server.
pub fn connect_listening<T: Subject>(t: &mut T, cx: &Ctx<'_>) -> Observed {
    let at = SocketAddrV4::new(t.peer(), cx.ports.get(0));
    let listener = Listener::bind(at)?;
    let (socket, phase) = subject_connect(t, at, STEP);
    let Some(socket) = socket.filter(|_| phase == Phase::Open) else {
        return Ok(phase_text(phase).into());
    };
    let local = t.stack().tcp_local(socket);
    let mut accepted = None;
    t.run_until(STEP, &mut |_| {
        accepted = listener.try_accept();
        accepted.is_some()
    });
    t.stack().tcp_abort(socket);
    let text = match accepted {
        Some((_, from)) if Some(from) == local.map(Into::into) => {
            "connected; the server's accept() returned the client's own address and port"
        }
        Some(_) => "connected; the server's accept() returned a different address",
        None => "connected, but the server's accept() returned nothing",
    };
    Ok(text.to_string().into())
}

/// S5/S6: every accepted client gets its own connection.
pub fn accept<T: Subject>(t: &mut T, cx: &Ctx<'_>) -> Observed {
    let (listener, at) = listen(t, cx, 4)?;
    let mut echo = Echo::default();
    let outcome = thread::scope(|scope| {
        let clients = scope.spawn(move || {
            let first: Vec<_> = (0..3)
                .map(|i| thread::spawn(move || client_echo(at, i)))
                .collect();
            let mut ok: Vec<bool> = first
                .into_iter()
                .map(|h| h.join().unwrap_or(false))
                .collect();
            ok.push(client_echo(at, 3));
            ok
        });
        t.run_until(STEP * 3, &mut |stack| {
            echo.step(stack, Some(listener));
            clients.is_finished()
        });
        clients.join().unwrap_or_default()
    });
    echo.close(t.stack());
    t.stack().listener_close(listener);
    let served = outcome.iter().take(3).filter(|&&ok| ok).count();
    let fourth = outcome.get(3).copied().unwrap_or(false);
    let mut peers: Vec<u16> = echo.accepted.iter().map(SocketAddrV4::port).collect();
    peers.sort_unstable();
    peers.dedup();
    Ok(format!(
        "{} accepted, from {} different client ports; {served} of 3 got back only their own \
         bytes; the listener then {} a 4th client",
        echo.accepted.len(),
        peers.len(),
        if fourth { "served" } else { "did not serve" }
    )
    .into())
}

/// A client that sends its own message and checks that exactly it comes back.
fn client_echo(at: SocketAddrV4, i: u8) -> bool {
    let Ok(mut stream) = peer::connect(at) else {
        return false;
    };
    let message = [b'c', b'0' + i, b'!'];
    exchange(&mut stream, &message).is_ok_and(|back| back == message)
}

/// S7: closing the listener.
pub fn listener_close<T: Subject>(t: &mut T, cx: &Ctx<'_>) -> Observed {
    let (listener, at) = listen(t, cx, 4)?;
    let (closed_tx, closed_rx) = mpsc::channel::<()>();
    let mut echo = Echo::default();
    let (newcomer, old) = thread::scope(|scope| {
        let peer = scope.spawn(move || {
            let mut first = peer::connect(at).ok()?;
            exchange(&mut first, b"one").ok()?;
            closed_rx.recv_timeout(STEP).ok()?;
            let newcomer = match peer::connect(at) {
                Ok(mut stream) => match exchange(&mut stream, b"new") {
                    Ok(_) => "connected and was served".to_string(),
                    Err(e) => format!("connected, then {}", e.text()),
                },
                Err(e) => e.text(),
            };
            let old = exchange(&mut first, b"two").is_ok_and(|b| b == b"two");
            Some((newcomer, old))
        });
        let mut listening = Some(listener);
        t.run_until(STEP * 3, &mut |stack| {
            echo.step(stack, listening);
            if listening.is_some() && !echo.accepted.is_empty() {
                if let Some(l) = listening.take() {
                    stack.listener_close(l);
                }
                let _ = closed_tx.send(());
            }
            peer.is_finished()
        });
        peer.join()
            .ok()
            .flatten()
            .unwrap_or(("no answer".into(), false))
    });
    echo.close(t.stack());
    Ok(format!(
        "a new client: {newcomer}; the connected client {}",
        if old {
            "was still served"
        } else {
            "was cut off"
        }
    )
    .into())
}

/// S12: more connects than the backlog while the server does not accept.
pub fn backlog<T: Subject>(t: &mut T, cx: &Ctx<'_>) -> Observed {
    connects_beyond_backlog(t, cx)
}

/// S12 with each stack's switch to reset a SYN (or handshake) the backlog has no room for.
pub fn backlog_reset<T: Subject>(t: &mut T, cx: &Ctx<'_>) -> Observed {
    t.reset_when_backlog_full(true)?;
    let seen = connects_beyond_backlog(t, cx);
    t.reset_when_backlog_full(false)?;
    seen
}

fn connects_beyond_backlog<T: Subject>(t: &mut T, cx: &Ctx<'_>) -> Observed {
    const CLIENTS: usize = 5;
    const BACKLOG: usize = 2;
    let (listener, at) = listen(t, cx, BACKLOG)?;
    let (accepting_tx, accepting_rx) = mpsc::channel::<()>();
    let (waiting_tx, waiting_rx) = mpsc::channel::<()>();
    let mut accepted = Vec::new();
    let mut accepting = false;
    let (first, later) = thread::scope(|scope| {
        let peer = scope.spawn(move || {
            // One after another, each given time to finish its handshake.
            let mut clients = Vec::new();
            for _ in 0..CLIENTS {
                let client = PendingConnect::start(at);
                if let Ok(client) = &client {
                    client.settle(Duration::from_millis(300));
                }
                clients.push(client);
            }
            let first: Vec<Ending> = clients.iter().map(PendingConnect::state).collect();
            let _ = waiting_tx.send(());
            let _ = accepting_rx.recv_timeout(STEP);
            // The waiting ones get until their SYN retransmissions (1 s, 3 s) answer.
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(4)
                && clients
                    .iter()
                    .any(|c| PendingConnect::state(c) == Ending::TimedOut)
            {
                thread::sleep(Duration::from_millis(10));
            }
            let later: Vec<Ending> = clients.iter().map(PendingConnect::state).collect();
            (first, later)
        });
        t.run_until(Duration::from_secs(12), &mut |stack| {
            if !accepting && waiting_rx.try_recv().is_ok() {
                accepting = true;
                let _ = accepting_tx.send(());
            }
            if accepting {
                while let Ok((socket, _)) = stack.tcp_accept(listener) {
                    accepted.push(socket);
                }
            }
            peer.is_finished()
        });
        peer.join().unwrap_or_default()
    });
    for socket in accepted.drain(..) {
        t.stack().tcp_abort(socket);
    }
    t.stack().listener_close(listener);
    let count = |list: &[Ending], want: Ending| list.iter().filter(|&&e| e == want).count();
    let connected = count(&first, Ending::Connected);
    let refused = count(&first, Ending::Refused) + count(&first, Ending::Reset);
    let waiting = count(&first, Ending::TimedOut);
    let mut text = format!(
        "backlog 2: {connected} of {CLIENTS} connected while the server did not accept, \
         {refused} refused (RST), {waiting} left waiting (SYN unanswered)"
    );
    if waiting > 0 {
        let now_connected = first
            .iter()
            .zip(&later)
            .filter(|(a, b)| **a == Ending::TimedOut && **b == Ending::Connected)
            .count();
        text.push_str(&format!(
            "; once the server accepted, {now_connected} of the {waiting} connected"
        ));
    }
    Ok(text.into())
}

/// A non-blocking connect from the peer, watched without blocking. Its outcome is kept
/// once known: `SO_ERROR` can be read only once.
struct PendingConnect(socket2::Socket, std::cell::Cell<Option<Ending>>);

impl PendingConnect {
    fn start(to: SocketAddrV4) -> Result<Self, Ending> {
        let socket = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::STREAM.nonblocking(),
            None,
        )
        .map_err(|e| peer::ending(&e))?;
        match socket.connect(&to.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(peer::ending(&e)),
        }
        Ok(Self(socket, std::cell::Cell::new(None)))
    }

    /// Waits up to `wait` for the handshake to end either way.
    fn settle(&self, wait: Duration) {
        let start = Instant::now();
        while start.elapsed() < wait && self.state_now() == Ending::TimedOut {
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// `Connected` once connected, `Refused`/`Reset` when that failed, `TimedOut` while
    /// still waiting.
    fn state(this: &Result<Self, Ending>) -> Ending {
        match this {
            Ok(pending) => pending.state_now(),
            Err(e) => *e,
        }
    }

    fn state_now(&self) -> Ending {
        if let Some(known) = self.1.get() {
            return known;
        }
        let mut pollfd = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one valid `pollfd` for the duration of the call; a zero timeout.
        let rc = unsafe { libc::poll(&mut pollfd, 1, 0) };
        if rc <= 0 {
            return Ending::TimedOut;
        }
        let outcome = match self.0.take_error() {
            Ok(Some(e)) | Err(e) => peer::ending(&e),
            Ok(None) => Ending::Connected,
        };
        self.1.set(Some(outcome));
        outcome
    }
}
