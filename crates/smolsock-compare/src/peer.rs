//! The kernel peer's side of a scenario: blocking `std::net` code with bounded waits, run in
//! a thread of its own while the subject moves packets, plus small helpers over the subject.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use smolsock::net::{Phase, Recv, Stack};

use super::subject::Subject;

/// Longest a peer waits for one step (a connect, a reply).
pub const STEP: Duration = Duration::from_secs(3);

/// What a peer's `recv` (or a connect) ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// `recv` returned 0 bytes: the other side sent FIN.
    Eof,
    /// ECONNRESET: the other side sent RST.
    Reset,
    /// ECONNREFUSED: a RST in answer to a SYN.
    Refused,
    /// Nothing came within the wait.
    TimedOut,
    /// Data came.
    Data(usize),
    /// A connect completed.
    Connected,
    /// Anything else.
    Other(ErrorKind),
}

impl Ending {
    /// How a reader of the table says it.
    pub fn text(self) -> String {
        match self {
            Ending::Eof => "0 bytes (end-of-stream: a FIN)".into(),
            Ending::Reset => "connection reset (a RST)".into(),
            Ending::Refused => "connection refused (a RST)".into(),
            Ending::TimedOut => "nothing (timed out)".into(),
            Ending::Data(n) => format!("{n} bytes of data"),
            Ending::Connected => "connected".into(),
            Ending::Other(kind) => format!("error {kind:?}"),
        }
    }
}

/// Classifies a std I/O error.
pub fn ending(error: &std::io::Error) -> Ending {
    match error.kind() {
        ErrorKind::ConnectionReset => Ending::Reset,
        ErrorKind::ConnectionRefused => Ending::Refused,
        ErrorKind::TimedOut | ErrorKind::WouldBlock => Ending::TimedOut,
        kind => Ending::Other(kind),
    }
}

/// One `read` with a timeout.
pub fn read_once(stream: &mut TcpStream, wait: Duration) -> Ending {
    let mut buf = [0u8; 4096];
    if stream.set_read_timeout(Some(wait)).is_err() {
        return Ending::Other(ErrorKind::Other);
    }
    match stream.read(&mut buf) {
        Ok(0) => Ending::Eof,
        Ok(n) => Ending::Data(n),
        Err(e) => ending(&e),
    }
}

/// Connects with a timeout.
pub fn connect(to: SocketAddrV4) -> Result<TcpStream, Ending> {
    TcpStream::connect_timeout(&SocketAddr::V4(to), STEP).map_err(|e| ending(&e))
}

/// Sends `message` and reads until as many bytes came back; returns what came back.
pub fn exchange(stream: &mut TcpStream, message: &[u8]) -> Result<Vec<u8>, Ending> {
    stream.write_all(message).map_err(|e| ending(&e))?;
    stream
        .set_read_timeout(Some(STEP))
        .map_err(|e| ending(&e))?;
    let mut back = vec![0u8; message.len()];
    stream.read_exact(&mut back).map_err(|e| match e.kind() {
        ErrorKind::UnexpectedEof => Ending::Eof,
        _ => ending(&e),
    })?;
    Ok(back)
}

/// A kernel listener on `at`, accepting with a timeout.
pub struct Listener(TcpListener);

impl Listener {
    /// Binds and listens (backlog 128, as std does).
    pub fn bind(at: SocketAddrV4) -> Result<Self, String> {
        let listener =
            TcpListener::bind(at).map_err(|e| format!("the peer cannot listen on {at}: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("the peer's listener: {e}"))?;
        Ok(Self(listener))
    }

    /// Takes one connection if one is there.
    pub fn try_accept(&self) -> Option<(TcpStream, SocketAddr)> {
        let (stream, from) = self.0.accept().ok()?;
        stream.set_nonblocking(false).ok()?;
        Some((stream, from))
    }

    /// Waits up to `wait` for one connection.
    pub fn accept(&self, wait: Duration) -> Option<(TcpStream, SocketAddr)> {
        let start = Instant::now();
        loop {
            if let Some(accepted) = self.try_accept() {
                return Some(accepted);
            }
            if start.elapsed() >= wait {
                return None;
            }
            thread::sleep(Duration::from_millis(2));
        }
    }
}

/// A server in the peer that serves one client: reads until end-of-stream, answers with
/// `reply(bytes read)` (when given), then closes.
pub fn serve_one(
    listener: &Listener,
    reply: Option<fn(usize) -> Vec<u8>>,
) -> Result<usize, String> {
    let (mut stream, _) = listener
        .accept(STEP)
        .ok_or("the subject never connected to the peer")?;
    stream
        .set_read_timeout(Some(STEP))
        .map_err(|e| e.to_string())?;
    let mut total = 0;
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) => return Err(format!("the peer's read failed: {e}")),
        }
    }
    if let Some(reply) = reply {
        stream
            .write_all(&reply(total))
            .map_err(|e| format!("the peer's reply failed: {e}"))?;
    }
    let _ = stream.shutdown(Shutdown::Both);
    Ok(total)
}

/// Connects the subject to `to` and waits (moving packets) until the handshake ends.
pub fn subject_connect<T: Subject>(
    subject: &mut T,
    to: SocketAddrV4,
    wait: Duration,
) -> (Option<<T::S as Stack>::Tcp>, Phase) {
    let socket = match subject.stack().tcp_connect(to) {
        Ok(socket) => socket,
        Err(error) => return (None, Phase::Failed(error)),
    };
    let mut phase = Phase::Connecting;
    subject.run_until(wait, &mut |stack| {
        phase = stack.tcp_phase(socket);
        phase != Phase::Connecting
    });
    (Some(socket), phase)
}

/// Reads everything available on a subject connection into `into`; `true` at
/// end-of-stream, `Err` on a failure.
pub fn drain<S: Stack>(
    stack: &mut S,
    socket: S::Tcp,
    into: &mut Vec<u8>,
) -> Result<bool, smolsock::Error> {
    let mut buf = [0u8; 2048];
    loop {
        match stack.tcp_recv(socket, &mut buf) {
            Ok(Recv::Data(n)) => into.extend_from_slice(buf.get(..n).unwrap_or_default()),
            Ok(Recv::Eof) => return Ok(true),
            Err(smolsock::Error::WouldBlock) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
}

/// Sends all of `data` on a subject connection, moving packets as needed.
pub fn send_all<T: Subject>(
    subject: &mut T,
    socket: <T::S as Stack>::Tcp,
    data: &[u8],
) -> Result<(), String> {
    let mut sent = 0;
    let mut failure = None;
    subject.run_until(STEP, &mut |stack| {
        while sent < data.len() {
            match stack.tcp_send(socket, data.get(sent..).unwrap_or_default()) {
                Ok(n) => sent += n,
                Err(smolsock::Error::WouldBlock) => return false,
                Err(e) => {
                    failure = Some(e);
                    return true;
                }
            }
        }
        true
    });
    match failure {
        Some(e) => Err(format!("send failed: {e}")),
        None if sent < data.len() => Err(format!("sent only {sent} of {} bytes", data.len())),
        None => Ok(()),
    }
}

/// An echo service on the subject: accepts from `listener` and sends back what each
/// connection receives, closing a connection at its end-of-stream.
pub struct Echo<S: Stack> {
    /// Connections being served.
    pub conns: Vec<S::Tcp>,
    /// Peer of every connection accepted so far, in order.
    pub accepted: Vec<SocketAddrV4>,
}

impl<S: Stack> Default for Echo<S> {
    fn default() -> Self {
        Self {
            conns: Vec::new(),
            accepted: Vec::new(),
        }
    }
}

impl<S: Stack> Echo<S> {
    /// Accepts what is waiting (when `listener` is given) and echoes what has arrived.
    pub fn step(&mut self, stack: &mut S, listener: Option<S::Listener>) {
        if let Some(listener) = listener {
            while let Ok((socket, peer)) = stack.tcp_accept(listener) {
                self.conns.push(socket);
                self.accepted.push(peer);
            }
        }
        let mut buf = [0u8; 1024];
        self.conns.retain(|&socket| {
            loop {
                match stack.tcp_recv(socket, &mut buf) {
                    Ok(Recv::Data(n)) => {
                        // Small messages: the send buffer always has room for them.
                        let _ = stack.tcp_send(socket, buf.get(..n).unwrap_or_default());
                    }
                    Ok(Recv::Eof) => {
                        stack.tcp_close(socket);
                        break false;
                    }
                    Err(smolsock::Error::WouldBlock) => break true,
                    Err(_) => {
                        stack.tcp_abort(socket);
                        break false;
                    }
                }
            }
        });
    }

    /// Closes every connection still open.
    pub fn close(&mut self, stack: &mut S) {
        for socket in self.conns.drain(..) {
            stack.tcp_close(socket);
        }
    }
}
