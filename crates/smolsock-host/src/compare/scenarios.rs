//! The scenarios: each does one thing on the subject stack, with the kernel as the peer,
//! and describes what was observed in one stable sentence (no addresses, ports or times
//! that change from run to run, so the table can be checked in).

use std::cell::RefCell;
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use smolsock::net::{Phase, Stack};

use super::ladder;
use super::peer::{
    self, Echo, Ending, Listener, STEP, drain, exchange, read_once, send_all, serve_one,
    subject_connect,
};
use super::subject::{Subject, proc_time_wait};
use crate::capture::{Capture, Frame, Packet};
use crate::tap::TunTap;

/// What one scenario observed on one stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// One sentence, the same on every run while the stack behaves the same.
    pub text: String,
    /// A packet ladder, for the scenarios that draw one.
    pub ladder: Vec<String>,
}

impl From<String> for Seen {
    fn from(text: String) -> Self {
        Self {
            text,
            ladder: Vec::new(),
        }
    }
}

/// The frames of `capture`, once it has been quiet for 30 ms (at most 1 s).
pub fn settled_frames(capture: &Capture) -> Vec<Frame> {
    capture.wait_quiet(Duration::from_millis(30), Duration::from_secs(1));
    capture.frames()
}

/// A scenario's outcome: what was seen, or why the scenario could not run.
pub type Observed = Result<Seen, String>;

/// Where a scenario may listen and send: ten ports of its own.
#[derive(Debug, Clone, Copy)]
pub struct Ports(pub u16);

impl Ports {
    /// The `n`th port (n < 10).
    pub fn get(self, n: u16) -> u16 {
        self.0 + n
    }
}

/// What the subject can use in a scenario besides its stack.
pub struct Ctx<'c> {
    /// Ports of this scenario.
    pub ports: Ports,
    /// A capture on the interface between the subject and its peer, started with the
    /// scenario.
    pub capture: &'c Capture,
    /// The TAP, for a scenario whose kernel subject needs a smoltcp peer (taken once).
    pub tap: RefCell<Option<&'c mut TunTap>>,
}

impl<'c> Ctx<'c> {
    /// The frames captured so far, once the capture has been quiet for a moment (the
    /// capture thread reads a little after the packets went by).
    pub fn frames(&self) -> Vec<Frame> {
        settled_frames(self.capture)
    }

    /// Takes the TAP (once).
    pub fn take_tap(&self) -> Option<&'c mut TunTap> {
        self.tap.borrow_mut().take()
    }
}

fn phase_text(phase: Phase) -> String {
    match phase {
        Phase::Open => "connected".into(),
        Phase::Connecting => "still connecting after 3 s".into(),
        Phase::Failed(smolsock::Error::ConnectionRefused | smolsock::Error::ConnectionReset) => {
            "connection refused (the SYN was answered with RST)".into()
        }
        Phase::Failed(e) => format!("failed: {e}"),
    }
}

fn tcp_packets(frames: &[Frame]) -> Vec<Packet> {
    frames
        .iter()
        .map(Frame::packet)
        .filter(|p| matches!(p, Packet::Tcp { .. }))
        .collect()
}

/// Connects the subject to `at`, where the peer listens; a failure says what happened.
fn open<T: Subject>(t: &mut T, at: SocketAddrV4) -> Result<<T::S as Stack>::Tcp, String> {
    match subject_connect(t, at, STEP) {
        (Some(socket), Phase::Open) => Ok(socket),
        (socket, phase) => {
            if let Some(socket) = socket {
                t.stack().tcp_abort(socket);
            }
            Err(phase_text(phase))
        }
    }
}

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
        .any(|f| matches!(f.packet(), Packet::Tcp { src, rst: true, .. } if src == to));
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
    let mut spread = Vec::new();
    for n in 0..SPREAD {
        let to = SocketAddrV4::new(t.peer(), 40000 + n);
        let socket = t
            .stack()
            .tcp_connect(to)
            .map_err(|e| format!("connect failed: {e}"))?;
        spread.extend(t.stack().tcp_local(socket).map(|a| a.port()));
        t.run_for(Duration::from_millis(2));
        t.stack().tcp_abort(socket);
    }
    t.run_for(Duration::from_millis(50));
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

/// S5/S6: every accepted client gets its own connection.
pub fn accept<T: Subject>(t: &mut T, cx: &Ctx<'_>) -> Observed {
    let port = cx.ports.get(0);
    let listener = t
        .stack()
        .tcp_listen(port, 4)
        .map_err(|e| format!("listen failed: {e}"))?;
    let at = SocketAddrV4::new(t.addr(), port);
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
    let port = cx.ports.get(0);
    let listener = t
        .stack()
        .tcp_listen(port, 4)
        .map_err(|e| format!("listen failed: {e}"))?;
    let at = SocketAddrV4::new(t.addr(), port);
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

/// Accepts one connection on a fresh listener while `client` runs in the peer; then
/// `server` runs on the subject until the client ends. Returns the client's result.
fn one_client<T: Subject, R: Send>(
    t: &mut T,
    cx: &Ctx<'_>,
    client: impl FnOnce(SocketAddrV4) -> R + Send,
    mut server: impl FnMut(&mut T::S, <T::S as Stack>::Tcp) -> bool,
) -> Result<R, String> {
    let port = cx.ports.get(0);
    let listener = t
        .stack()
        .tcp_listen(port, 4)
        .map_err(|e| format!("listen failed: {e}"))?;
    let at = SocketAddrV4::new(t.addr(), port);
    let mut conn = None;
    let mut done = false;
    let result = thread::scope(|scope| {
        let peer = scope.spawn(move || client(at));
        t.run_until(STEP * 3, &mut |stack| {
            if conn.is_none() {
                conn = stack.tcp_accept(listener).ok().map(|(s, _)| s);
            }
            if let Some(socket) = conn.filter(|_| !done) {
                done = server(stack, socket);
            }
            peer.is_finished()
        });
        peer.join()
            .map_err(|_| "the peer thread failed".to_string())
    });
    t.stack().listener_close(listener);
    if let Some(socket) = conn.filter(|_| !done) {
        t.stack().tcp_abort(socket);
    }
    result
}

/// S8: the server closes an accepted connection.
pub fn server_closes<T: Subject>(t: &mut T, cx: &Ctx<'_>) -> Observed {
    let seen = one_client(
        t,
        cx,
        |at| match peer::connect(at) {
            Ok(mut stream) => read_once(&mut stream, STEP),
            Err(e) => e,
        },
        |stack, socket| {
            stack.tcp_close(socket);
            true
        },
    )?;
    Ok(format!("the client's recv returned {}", seen.text()).into())
}

/// S9: the client closes; the server reads end-of-stream.
pub fn client_closes<T: Subject>(t: &mut T, cx: &Ctx<'_>) -> Observed {
    let mut got = Vec::new();
    let mut end = None;
    one_client(
        t,
        cx,
        |at| {
            if let Ok(mut stream) = peer::connect(at) {
                let _ = stream.write_all(b"bye");
            }
        },
        |stack, socket| match drain(stack, socket, &mut got) {
            Ok(true) => {
                end = Some("recv returned 0 bytes (end-of-stream)".to_string());
                stack.tcp_close(socket);
                true
            }
            Ok(false) => false,
            Err(e) => {
                end = Some(format!("recv failed: {e}"));
                true
            }
        },
    )?;
    // The client thread may end before the FIN is read: give it a moment.
    if end.is_none() {
        t.run_for(Duration::from_millis(200));
    }
    Ok(format!(
        "the server read {} bytes, then {}",
        got.len(),
        end.unwrap_or_else(|| "nothing more".into())
    )
    .into())
}

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

/// S12: more connects than the backlog while the server does not accept.
pub fn backlog<T: Subject>(t: &mut T, cx: &Ctx<'_>) -> Observed {
    const CLIENTS: usize = 5;
    const BACKLOG: usize = 2;
    let port = cx.ports.get(0);
    let listener = t
        .stack()
        .tcp_listen(port, BACKLOG)
        .map_err(|e| format!("listen failed: {e}"))?;
    let at = SocketAddrV4::new(t.addr(), port);
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
        matches!(f.packet(), Packet::IcmpUnreachable { code: 3, original_dst: Some(d), .. } if d == to)
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
            .any(|f| matches!(f.packet(), Packet::IcmpUnreachable { .. }))
    });
    t.run_for(Duration::from_millis(50));
    let second = t.stack().udp_send_to(socket, b"again?", to);
    let mut buf = [0u8; 64];
    let recv = t.stack().udp_recv_from(socket, &mut buf);
    t.stack().udp_close(socket);
    let icmp = cx.frames().iter().any(|f| {
        matches!(f.packet(), Packet::IcmpUnreachable { code: 3, original_dst: Some(d), .. } if d == to)
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

/// Close with unread data in the receive buffer.
pub fn close_unread<T: Subject>(t: &mut T, cx: &Ctx<'_>) -> Observed {
    let (closed_tx, closed_rx) = mpsc::channel::<()>();
    let mut waited = None;
    let seen = one_client(
        t,
        cx,
        move |at| match peer::connect(at) {
            Ok(mut stream) => {
                if stream.write_all(&[7u8; 100]).is_err() {
                    return Ending::Other(std::io::ErrorKind::BrokenPipe);
                }
                let _ = closed_rx.recv_timeout(STEP);
                read_once(&mut stream, STEP)
            }
            Err(e) => e,
        },
        |stack, socket| {
            // Close only once the 100 bytes are in the receive buffer, unread.
            let start = *waited.get_or_insert_with(Instant::now);
            if start.elapsed() < Duration::from_millis(200) {
                return false;
            }
            stack.tcp_close(socket);
            let _ = closed_tx.send(());
            true
        },
    )?;
    let rst = cx
        .frames()
        .iter()
        .any(|f| matches!(f.packet(), Packet::Tcp { rst: true, .. }));
    Ok(format!(
        "the server sent {}; the client's recv returned {}",
        if rst { "RST" } else { "FIN, no RST" },
        seen.text()
    )
    .into())
}

/// The subject as a client of a server in the peer: `server` runs on a fresh listener in
/// a thread while `client` uses a subject connection to it; afterwards the subject keeps
/// moving packets until the server has finished, and 100 ms more for the last segments.
/// Returns what `client` returned and the connection's local address.
fn against_server<T: Subject, R>(
    t: &mut T,
    cx: &Ctx<'_>,
    server: impl FnOnce(&Listener) + Send,
    client: impl FnOnce(&mut T, <T::S as Stack>::Tcp) -> Result<R, String>,
) -> Result<(R, SocketAddrV4), String> {
    let at = SocketAddrV4::new(t.peer(), cx.ports.get(0));
    let listener = Listener::bind(at)?;
    thread::scope(|scope| {
        let listener = &listener;
        let server = scope.spawn(move || server(listener));
        let socket = open(t, at)?;
        let local = t
            .stack()
            .tcp_local(socket)
            .ok_or_else(|| "no local address".to_string())?;
        let result = client(t, socket)?;
        t.run_until(STEP, &mut |_| server.is_finished());
        t.run_for(Duration::from_millis(100));
        server
            .join()
            .map_err(|_| "the peer's server failed".to_string())?;
        Ok((result, local))
    })
}

/// Half-close: shut down the write side and keep reading.
pub fn half_close<T: Subject>(t: &mut T, cx: &Ctx<'_>) -> Observed {
    let reply = |n| format!("got {n:04} bytes").into_bytes();
    let ((reply, end), _) = against_server(
        t,
        cx,
        |listener| {
            let _ = serve_one(listener, Some(reply));
        },
        |t, socket| {
            send_all(t, socket, &[1u8; 1000])?;
            t.stack().tcp_shutdown(socket);
            let mut reply = Vec::new();
            let mut end = None;
            t.run_until(STEP, &mut |stack| match drain(stack, socket, &mut reply) {
                Ok(true) => {
                    end = Some("then end-of-stream".to_string());
                    true
                }
                Ok(false) => false,
                Err(e) => {
                    end = Some(format!("then {e}"));
                    true
                }
            });
            t.stack().tcp_close(socket);
            Ok((reply, end))
        },
    )?;
    Ok(format!(
        "after shutdown(SHUT_WR) the client still received {:?}, {}",
        String::from_utf8_lossy(&reply),
        end.unwrap_or_else(|| "no end-of-stream".into())
    )
    .into())
}

/// TIME-WAIT after an active close.
pub fn time_wait<T: Subject>(t: &mut T, cx: &Ctx<'_>) -> Observed {
    let ((), local) = against_server(
        t,
        cx,
        |listener| {
            let _ = serve_one(listener, None);
        },
        |t, socket| {
            send_all(t, socket, b"x")?;
            t.stack().tcp_close(socket);
            Ok(())
        },
    )?;
    // The server is the kernel peer on both stacks: its side shows in /proc/net/tcp.
    let table = fs::read_to_string("/proc/net/tcp")
        .map_err(|e| format!("cannot read /proc/net/tcp: {e}"))?;
    let server = match proc_time_wait(&table, cx.ports.get(0)) {
        Some(_) => "the server held one too",
        None => "the server (it closed second) held none",
    };
    let client = match t.time_wait(local.port())? {
        Some(d) => format!(
            "the client (it closed first) held TIME-WAIT for {} s",
            d.as_secs_f64().round()
        ),
        None => "the client (it closed first) was not in TIME-WAIT".to_string(),
    };
    Ok(format!("{client}; {server}").into())
}

/// Counts ARP requests for `target` and datagrams to `to` in a capture.
fn arp_story(frames: &[Frame], target: Ipv4Addr, delivered: usize, sent: usize) -> String {
    let requests = frames
        .iter()
        .filter(
            |f| matches!(f.packet(), Packet::Arp { request: true, target: t, .. } if t == target),
        )
        .count();
    let replies = frames
        .iter()
        .filter(
            |f| matches!(f.packet(), Packet::Arp { request: false, sender: s, .. } if s == target),
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

/// Keep-alive: none by default, probes once turned on.
pub fn keepalive<T: Subject>(t: &mut T, cx: &Ctx<'_>) -> Observed {
    let at = SocketAddrV4::new(t.peer(), cx.ports.get(0));
    let listener = Listener::bind(at)?;
    let socket = open(t, at)?;
    let mut held = None;
    t.run_until(STEP, &mut |_| {
        held = listener.try_accept();
        held.is_some()
    });
    let local = t.stack().tcp_local(socket);
    // Frames are counted by position: everything after what the capture had seen.
    let on_conn = |frames: &[Frame], since: usize| -> (usize, usize, Vec<usize>) {
        let mut from_subject = 0;
        let mut from_peer = 0;
        let mut lens = Vec::new();
        for f in frames.iter().skip(since) {
            if let Packet::Tcp { src, dst, len, .. } = f.packet() {
                if Some(src) == local && dst == at {
                    from_subject += 1;
                    lens.push(len);
                } else if src == at && Some(dst) == local {
                    from_peer += 1;
                }
            }
        }
        (from_subject, from_peer, lens)
    };
    let idle_start = cx.frames().len();
    t.run_for(Duration::from_millis(1500));
    let (idle_out, idle_in, _) = on_conn(&cx.frames(), idle_start);
    let ka_start = cx.frames().len();
    t.set_keepalive(socket, Duration::from_secs(1))
        .map_err(|e| format!("keep-alive: {e}"))?;
    t.run_for(Duration::from_millis(2600));
    let (probes, answers, lens) = on_conn(&cx.frames(), ka_start);
    let alive = t.stack().tcp_phase(socket) == Phase::Open
        && drain(t.stack(), socket, &mut Vec::new()).is_ok_and(|eof| !eof);
    t.stack().tcp_abort(socket);
    drop(held);
    let idle = if idle_out + idle_in == 0 {
        "idle 1.5 s: no packets".to_string()
    } else {
        format!("idle 1.5 s: {} packets", idle_out + idle_in)
    };
    let mut sizes = lens.clone();
    sizes.sort_unstable();
    sizes.dedup();
    let sizes = sizes
        .iter()
        .map(|l| format!("{l}-byte"))
        .collect::<Vec<_>>()
        .join("/");
    let probing = if probes == 0 {
        "with keep-alive at 1 s: no probes".to_string()
    } else {
        format!(
            "with keep-alive at 1 s: {} {sizes} probes, {}",
            if probes >= 2 { "repeated" } else { "one" },
            if answers >= probes {
                "each answered"
            } else {
                "not all answered"
            }
        )
    };
    Ok(format!(
        "{idle}; {probing}; connection {}",
        if alive { "still open" } else { "gone" }
    )
    .into())
}

/// S13: the handshake and the close, from a capture.
pub fn handshake<T: Subject>(t: &mut T, cx: &Ctx<'_>) -> Observed {
    let at = SocketAddrV4::new(t.peer(), cx.ports.get(0));
    let ((), local) = against_server(
        t,
        cx,
        |listener| {
            let Some((mut stream, _)) = listener.accept(STEP) else {
                return;
            };
            let mut buf = [0u8; 64];
            if let Ok(n) = stream.read(&mut buf) {
                let _ = stream.write_all(buf.get(..n).unwrap_or_default());
            }
            // Wait for the client's FIN; close a moment later (past the delayed-ACK
            // timer), so the ACK of the FIN and our own FIN go as two segments.
            let _ = read_once(&mut stream, STEP);
            thread::sleep(Duration::from_millis(300));
        },
        |t, socket| {
            send_all(t, socket, b"hello")?;
            let mut back = Vec::new();
            t.run_until(STEP, &mut |stack| {
                let _ = drain(stack, socket, &mut back);
                back.len() >= 5
            });
            t.stack().tcp_close(socket);
            Ok(())
        },
    )?;
    let packets: Vec<Packet> = tcp_packets(&cx.frames())
        .into_iter()
        .filter(|p| match p {
            Packet::Tcp { src, dst, .. } => {
                (*src == local && *dst == at) || (*src == at && *dst == local)
            }
            _ => false,
        })
        .collect();
    let drawn = ladder::draw(&packets, local, at);
    Ok(Seen {
        text: drawn.summary,
        ladder: drawn.lines,
    })
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
