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

use super::peer::{
    self, Echo, Ending, Listener, STEP, drain, exchange, read_once, send_all, serve_one,
    subject_connect,
};
use super::subject::{Subject, proc_time_wait};
use smolsock_frames::ladder::{Connection, connection};
use smolsock_frames::{Ladder, Packet, TcpSegment};
use smolsock_linux::capture::{Capture, Frame};
use smolsock_linux::tap::TunTap;

mod close;
mod connect;
mod keepalive;
mod loss;
mod ports;
mod udp;

pub use close::{client_closes, close_unread, half_close, handshake, server_closes, time_wait};
pub use connect::{
    accept, backlog, backlog_reset, connect_listening, connect_refused, listener_close,
};
pub use keepalive::keepalive;
pub use loss::{LOSSY_FAULTS, send_through_loss};
pub use ports::{client_port, udp_sender_port};
pub use udp::{arp, udp_closed_port_in, udp_closed_port_out, udp_truncate};

/// What one scenario observed on one stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// One sentence, the same on every run while the stack behaves the same.
    pub text: String,
    /// A packet ladder, for the scenarios that draw one.
    pub ladder: Ladder,
    /// A figure that changes from run to run (a time), shown by the text and JSON reports
    /// but not in the Markdown table, which is checked in.
    pub measured: Option<String>,
}

impl From<String> for Seen {
    fn from(text: String) -> Self {
        Self {
            text,
            ladder: Ladder::default(),
            measured: None,
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

pub(super) fn phase_text(phase: Phase) -> String {
    match phase {
        Phase::Open => "connected".into(),
        Phase::Connecting => "still connecting after 3 s".into(),
        Phase::Failed(smolsock::Error::ConnectionRefused | smolsock::Error::ConnectionReset) => {
            "connection refused (the SYN was answered with RST)".into()
        }
        Phase::Failed(e) => format!("failed: {e}"),
    }
}

/// Makes the subject listen on the scenario's first port; returns the listener and the
/// address peers connect to.
pub(super) fn listen<T: Subject>(
    t: &mut T,
    cx: &Ctx<'_>,
    backlog: usize,
) -> Result<(<T::S as Stack>::Listener, SocketAddrV4), String> {
    let port = cx.ports.get(0);
    let listener = t
        .stack()
        .tcp_listen(port, backlog)
        .map_err(|e| format!("listen failed: {e}"))?;
    Ok((listener, SocketAddrV4::new(t.addr(), port)))
}

/// Connects the subject to `at`, where the peer listens; a failure says what happened.
pub(super) fn open<T: Subject>(
    t: &mut T,
    at: SocketAddrV4,
) -> Result<<T::S as Stack>::Tcp, String> {
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

/// How long [`one_client`]'s server may go on once the peer has ended: a retransmitted
/// FIN (the kernel's first retransmission comes after 200 ms or more) still arrives.
const PEER_GRACE: Duration = Duration::from_secs(2);

/// Accepts one connection on a fresh listener while `client` runs in the peer; then
/// `server` runs on the subject until the client has ended and `server` says it is done
/// (or [`PEER_GRACE`] after the client ended). Returns the client's result.
pub(super) fn one_client<T: Subject, R: Send>(
    t: &mut T,
    cx: &Ctx<'_>,
    client: impl FnOnce(SocketAddrV4) -> R + Send,
    mut server: impl FnMut(&mut T::S, <T::S as Stack>::Tcp) -> bool,
) -> Result<R, String> {
    let (listener, at) = listen(t, cx, 4)?;
    let mut conn = None;
    let mut done = false;
    let mut peer_ended = None;
    let result = thread::scope(|scope| {
        let peer = scope.spawn(move || client(at));
        t.run_until(STEP * 3, &mut |stack| {
            if conn.is_none() {
                conn = stack.tcp_accept(listener).ok().map(|(s, _)| s);
            }
            if let Some(socket) = conn.filter(|_| !done) {
                done = server(stack, socket);
            }
            if !peer.is_finished() {
                return false;
            }
            // A peer that sends and closes at once may end before the subject has even
            // accepted: the server still gets its turn, for at most PEER_GRACE.
            let ended = *peer_ended.get_or_insert_with(Instant::now);
            done || ended.elapsed() >= PEER_GRACE
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

/// The subject as a client of a server in the peer: `server` runs on a fresh listener in
/// a thread while `client` uses a subject connection to it; afterwards the subject keeps
/// moving packets until the server has finished, and 100 ms more for the last segments.
/// Returns what `client` returned and the connection's local address.
pub(super) fn against_server<T: Subject, R>(
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
