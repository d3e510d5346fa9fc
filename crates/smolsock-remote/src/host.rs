//! The host's side: [`RemoteStack`], a `net::Stack` whose every call is a request to the
//! board and waits for its reply, over a [`Link`]: a unix socket to QEMU's serial port
//! ([`Link::unix`]) or a serial device such as an ST-LINK's virtual COM port
//! ([`Link::tty`]).
//!
//! Every wait is bounded: a call that gets no valid reply within its time fails, and so
//! does every later call, with [`Error::Remote`] and a text that says what went wrong (no
//! answer, garbage, a reset, another protocol version, the link closed);
//! [`RemoteStack::failure`] has the details.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::SocketAddrV4;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use smolsock::net::{Datagram, Phase, Recv, Stack, TcpTimeouts, UdpLosses};
use smolsock::smol::{ListenPolicy, WhenFull};
use smolsock::{Error, Result};

use crate::frame::{self, Assembler, MAX_FRAME, MAX_PLAIN};
use crate::wire::{
    Addr, Call, Config, MAX_DATA, Message, Reply, Request, VERSION, WireError, WirePhase,
};

/// The short texts of [`Error::Remote`]; [`RemoteStack::failure`] gives the details.
pub mod fault {
    /// No valid reply came in time.
    pub const NO_ANSWER: &str = "the board did not answer in time";
    /// Only frames that are not valid replies came.
    pub const GARBAGE: &str = "the board answered garbage (bad framing, checksum or message)";
    /// The board rebooted since the handshake.
    pub const RESET: &str = "the board reset: its sockets are gone";
    /// The board speaks another protocol version.
    pub const VERSION: &str = "the board speaks another remote protocol version";
    /// The link failed or closed.
    pub const LINK: &str = "the link to the board failed or closed";
    /// The board refused a call before the handshake (it rebooted, or another host talks
    /// to it).
    pub const NOT_READY: &str = "the board has not had the handshake (it rebooted?)";
}

/// The byte link to a board: a file descriptor that can be polled.
pub struct Link {
    fd: Box<dyn Channel>,
}

trait Channel: Read + Write + Send {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_>;
}

impl<T: Read + Write + AsFd + Send> Channel for T {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.as_fd()
    }
}

impl Link {
    /// Connects to a unix socket where QEMU serves the board's UART (a chardev socket).
    pub fn unix(path: &Path) -> io::Result<Self> {
        Ok(Self {
            fd: Box::new(UnixStream::connect(path)?),
        })
    }

    /// Opens a serial device (for example `/dev/ttyACM0`, an ST-LINK's virtual COM port)
    /// in raw mode at `baud` bits per second.
    pub fn tty(path: &Path, baud: u32) -> io::Result<Self> {
        use nix::sys::termios::{self, SetArg};
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc_o_noctty())
            .open(path)?;
        let mut attrs = termios::tcgetattr(&file).map_err(io::Error::from)?;
        termios::cfmakeraw(&mut attrs);
        let rate = baud_rate(baud).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{baud} is not a baud rate this host's serial driver knows"),
            )
        })?;
        termios::cfsetspeed(&mut attrs, rate).map_err(io::Error::from)?;
        termios::tcsetattr(&file, SetArg::TCSANOW, &attrs).map_err(io::Error::from)?;
        termios::tcflush(&file, termios::FlushArg::TCIOFLUSH).map_err(io::Error::from)?;
        Ok(Self { fd: Box::new(file) })
    }

    /// A link over any connected socket or pipe end (tests).
    pub fn from_fd(fd: OwnedFd) -> Self {
        Self {
            fd: Box::new(File::from(fd)),
        }
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.fd.write_all(bytes)?;
        self.fd.flush()
    }

    /// Reads what has arrived, waiting at most until `deadline`: `Ok(0)` when nothing came
    /// by then.
    fn recv(&mut self, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
        let left = deadline.saturating_duration_since(Instant::now());
        // Rounded up, so a wait of less than a millisecond does not spin.
        let millis = u16::try_from(left.as_micros().div_ceil(1000)).unwrap_or(u16::MAX);
        let ready = {
            let mut fds = [PollFd::new(self.fd.fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(millis)) {
                Ok(n) => n > 0,
                Err(nix::errno::Errno::EINTR) => false,
                Err(e) => return Err(e.into()),
            }
        };
        if !ready {
            return Ok(0);
        }
        match self.fd.read(buf) {
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the other end closed the link",
            )),
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }
}

fn libc_o_noctty() -> i32 {
    nix::fcntl::OFlag::O_NOCTTY.bits()
}

fn baud_rate(baud: u32) -> Option<nix::sys::termios::BaudRate> {
    use nix::sys::termios::BaudRate as B;
    Some(match baud {
        9600 => B::B9600,
        19200 => B::B19200,
        38400 => B::B38400,
        57600 => B::B57600,
        115200 => B::B115200,
        230400 => B::B230400,
        460800 => B::B460800,
        921600 => B::B921600,
        1000000 => B::B1000000,
        2000000 => B::B2000000,
        _ => return None,
    })
}

/// How long a call waits for its reply by default (a `Wait` call its own time on top).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// A UDP socket of the board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteUdp(u64);
/// A TCP connection of the board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteTcp(u64);
/// A TCP listener of the board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteListener(u64);

struct Session {
    link: Link,
    seq: u16,
    nonce: u32,
    frames: Assembler<MAX_FRAME>,
    /// Bytes read from the link and not yet cut into frames.
    unread: Vec<u8>,
    scratch: Box<[u8; MAX_PLAIN]>,
    out: Box<[u8; MAX_FRAME]>,
    timeout: Duration,
    /// The first failure: its short text and the details.
    failed: Option<(&'static str, String)>,
    /// Frames that were not valid messages, since the handshake.
    garbage: u32,
}

/// A `net::Stack` on a board: every call is one request over the [`Link`] and one reply.
///
/// The `&self` queries of `Stack` (phase, addresses, counts) are calls too; when the link
/// has failed they give their empty value, and every call that returns a `Result` fails
/// with [`Error::Remote`].
pub struct RemoteStack {
    session: RefCell<Session>,
    tcp_sockets: usize,
    udp_sockets: usize,
}

/// The texts a board sends in errors, kept for the process's life (`Error` holds
/// `&'static str`): at most 64 different ones, so a board cannot make the host's memory grow.
fn intern(text: &str) -> &'static str {
    static TEXTS: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let Ok(mut texts) = TEXTS.lock() else {
        return "an error text from the board";
    };
    if let Some(known) = texts.iter().find(|t| **t == text) {
        return known;
    }
    if texts.len() >= 64 {
        return "an error text from the board (too many different ones to keep)";
    }
    let kept: &'static str = Box::leak(text.to_owned().into_boxed_str());
    texts.push(kept);
    kept
}

fn error(e: WireError<'_>) -> Error {
    e.to_error(&mut intern)
}

impl Session {
    fn fail(&mut self, short: &'static str, detail: String) -> Error {
        if self.failed.is_none() {
            self.failed = Some((short, detail));
        }
        Error::Remote(self.failed.as_ref().map_or(short, |f| f.0))
    }

    /// Sends `call` and gives its reply to `f`, waiting at most the call timeout plus
    /// `extra`.
    fn call<T>(
        &mut self,
        call: Call<'_>,
        extra: Duration,
        f: impl FnOnce(Reply<'_>) -> T,
    ) -> Result<T> {
        if let Some((short, _)) = self.failed {
            return Err(Error::Remote(short));
        }
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let request = Request { seq, call };
        let frame = match frame::encode(&request, &mut self.scratch[..], &mut self.out[..]) {
            Ok(frame) => frame,
            Err(e) => {
                return Err(self.fail(fault::LINK, format!("cannot encode a request: {e}")));
            }
        };
        if let Err(e) = self.link.send(frame) {
            return Err(self.fail(fault::LINK, format!("cannot write to the board: {e}")));
        }
        let deadline = Instant::now() + self.timeout + extra;
        let mut f = Some(f);
        let mut chunk = [0u8; 4096];
        let mut garbage = None;
        loop {
            // Every complete frame already read.
            while !self.unread.is_empty() {
                let (taken, done) = self.frames.push(&self.unread);
                self.unread.drain(..taken);
                if !done {
                    continue;
                }
                let outcome = match frame::decode::<Message<'_>>(self.frames.frame()) {
                    Err(e) => {
                        garbage = Some(e);
                        None
                    }
                    Ok(Message::Boot { nonce, .. }) => Some(Err((
                        fault::RESET,
                        format!(
                            "the board announced a new boot (number {nonce:#010x}, was {:#010x})",
                            self.nonce
                        ),
                    ))),
                    Ok(Message::Reply { nonce, .. }) if nonce != self.nonce => Some(Err((
                        fault::RESET,
                        format!(
                            "the board answers from another boot (number {nonce:#010x}, was {:#010x})",
                            self.nonce
                        ),
                    ))),
                    // A late reply to a call that timed out earlier.
                    Ok(Message::Reply { seq: other, .. }) if other != seq => None,
                    Ok(Message::Reply {
                        reply: Reply::NotReady,
                        ..
                    }) => Some(Err((
                        fault::NOT_READY,
                        "the board refused a call: it has not had the handshake (it rebooted, \
                         or another host talked to it)"
                            .to_string(),
                    ))),
                    Ok(Message::Reply { reply, .. }) => f.take().map(|f| Ok(f(reply))),
                };
                self.frames.clear();
                match outcome {
                    Some(Ok(value)) => return Ok(value),
                    Some(Err((short, detail))) => return Err(self.fail(short, detail)),
                    None => {
                        if garbage.is_some() {
                            self.garbage = self.garbage.wrapping_add(1);
                        }
                    }
                }
            }
            if Instant::now() >= deadline {
                let waited = self.timeout + extra;
                return Err(match garbage {
                    Some(e) => self.fail(
                        fault::GARBAGE,
                        format!(
                            "no valid reply within {waited:?}; the last frame was {e} \
                             (is the board running the remote firmware of this version?)"
                        ),
                    ),
                    None => self.fail(
                        fault::NO_ANSWER,
                        format!(
                            "no reply within {waited:?} (is the board running the remote firmware?)"
                        ),
                    ),
                });
            }
            match self.link.recv(&mut chunk, deadline) {
                Ok(n) => self.unread.extend_from_slice(&chunk[..n]),
                Err(e) => {
                    return Err(self.fail(fault::LINK, format!("reading from the board: {e}")));
                }
            }
        }
    }
}

impl RemoteStack {
    /// Opens a session with the board on `link`: the version handshake. Fails with a text
    /// when the board does not answer within `timeout`, answers garbage, or speaks another
    /// protocol version.
    pub fn connect(link: Link, timeout: Duration) -> std::result::Result<Self, String> {
        let mut session = Session {
            link,
            seq: 0,
            nonce: 0,
            frames: Assembler::new(),
            unread: Vec::new(),
            scratch: Box::new([0; MAX_PLAIN]),
            out: Box::new([0; MAX_FRAME]),
            timeout,
            failed: None,
            garbage: 0,
        };
        // A 0x00 first ends whatever partial frame the board may hold.
        if let Err(e) = session.link.send(&[0]) {
            return Err(format!("cannot write to the board: {e}"));
        }
        let deadline = Instant::now() + timeout;
        let mut chunk = [0u8; 4096];
        let mut garbage = None;
        loop {
            session.seq = session.seq.wrapping_add(1);
            let seq = session.seq;
            let request = Request {
                seq,
                call: Call::Hello { version: VERSION },
            };
            let frame = frame::encode(&request, &mut session.scratch[..], &mut session.out[..])
                .map_err(|e| format!("cannot encode the handshake: {e}"))?;
            session
                .link
                .send(frame)
                .map_err(|e| format!("cannot write to the board: {e}"))?;
            // The first Hello may reach a board still booting: ask again every 200 ms.
            let retry = (Instant::now() + Duration::from_millis(200)).min(deadline);
            while Instant::now() < retry {
                let n = session
                    .link
                    .recv(&mut chunk, retry)
                    .map_err(|e| format!("reading from the board: {e}"))?;
                session.unread.extend_from_slice(&chunk[..n]);
                while !session.unread.is_empty() {
                    let (taken, done) = session.frames.push(&session.unread);
                    session.unread.drain(..taken);
                    if !done {
                        continue;
                    }
                    let hello = match frame::decode::<Message<'_>>(session.frames.frame()) {
                        Ok(Message::Reply {
                            seq: other,
                            nonce,
                            reply:
                                Reply::Hello {
                                    version,
                                    tcp_sockets,
                                    udp_sockets,
                                },
                        }) if other == seq => Some((version, nonce, tcp_sockets, udp_sockets)),
                        Ok(_) => None,
                        Err(e) => {
                            garbage = Some(e);
                            None
                        }
                    };
                    session.frames.clear();
                    let Some((version, nonce, tcp_sockets, udp_sockets)) = hello else {
                        continue;
                    };
                    if version != VERSION {
                        return Err(format!(
                            "{}: the board speaks version {version}, this host version {VERSION}; \
                             flash the remote firmware built from the same tree",
                            fault::VERSION
                        ));
                    }
                    session.nonce = nonce;
                    session.unread.clear();
                    return Ok(Self {
                        session: RefCell::new(session),
                        tcp_sockets: tcp_sockets.into(),
                        udp_sockets: udp_sockets.into(),
                    });
                }
            }
            if Instant::now() >= deadline {
                return Err(match garbage {
                    Some(e) => format!(
                        "{}: no valid answer to the handshake within {timeout:?}, the last frame was {e}",
                        fault::GARBAGE
                    ),
                    None => format!(
                        "{}: no answer to the handshake within {timeout:?} (is the remote firmware running, \
                         on this link?)",
                        fault::NO_ANSWER
                    ),
                });
            }
        }
    }

    /// The number the board drew at its boot (every reply carries it: a change means the
    /// board reset).
    pub fn boot_number(&self) -> u32 {
        self.session.borrow().nonce
    }

    /// The TCP and UDP sockets of the board's pool.
    pub fn pool_sizes(&self) -> (usize, usize) {
        (self.tcp_sockets, self.udp_sockets)
    }

    /// What went wrong with the link, in detail, once something did.
    pub fn failure(&self) -> Option<String> {
        let session = self.session.borrow();
        session
            .failed
            .as_ref()
            .map(|(short, detail)| format!("{short}: {detail}"))
    }

    /// Frames from the board that were not valid messages (a noisy line).
    pub fn garbage(&self) -> u32 {
        self.session.borrow().garbage
    }

    fn call<T>(&self, call: Call<'_>, f: impl FnOnce(Reply<'_>) -> T) -> Result<T> {
        self.session.borrow_mut().call(call, Duration::ZERO, f)
    }

    /// A call whose reply is `Done` or `Failed`.
    fn call_done(&self, call: Call<'_>) -> Result<()> {
        self.call(call, |reply| match reply {
            Reply::Done => Ok(()),
            Reply::Failed(e) => Err(error(e)),
            other => Err(unexpected(&other)),
        })?
    }

    /// A call whose reply is a handle.
    fn call_handle(&self, call: Call<'_>) -> Result<u64> {
        self.call(call, |reply| match reply {
            Reply::Handle(h) => Ok(h),
            Reply::Failed(e) => Err(error(e)),
            other => Err(unexpected(&other)),
        })?
    }

    /// A call whose reply is a size.
    fn call_size(&self, call: Call<'_>) -> Result<usize> {
        self.call(call, |reply| match reply {
            Reply::Size(n) => Ok(n as usize),
            Reply::Failed(e) => Err(error(e)),
            other => Err(unexpected(&other)),
        })?
    }

    /// A call whose reply is an address.
    fn call_addr(&self, call: Call<'_>) -> Option<SocketAddrV4> {
        self.call(call, |reply| match reply {
            Reply::Addr(addr) => addr.map(Into::into),
            _ => None,
        })
        .ok()
        .flatten()
    }

    /// A call whose reply is a flag.
    fn call_flag(&self, call: Call<'_>) -> Result<bool> {
        self.call(call, |reply| match reply {
            Reply::Flag(b) => Ok(b),
            Reply::Failed(e) => Err(error(e)),
            other => Err(unexpected(&other)),
        })?
    }

    /// Makes the board's stack a fresh one at `config`'s addresses: every connection
    /// aborted, every handle stale.
    pub fn restart(&mut self, config: Config) -> Result<()> {
        self.call_done(Call::Restart(config))
    }

    /// Sets the board stack's listener rules.
    pub fn set_listen_policy(&mut self, policy: ListenPolicy) -> Result<()> {
        self.call_done(Call::SetListenPolicy {
            syn_timeout_ms: u32::try_from(policy.syn_timeout.total_millis()).unwrap_or(u32::MAX),
            reset_when_full: policy.when_full == WhenFull::Reset,
        })
    }

    /// Waits on the board until its stack moves a frame (`Ok(true)`) or `timeout` passes
    /// (`Ok(false)`); a frame that moved since the last wait ends it at once.
    pub fn wait(&mut self, timeout: Duration) -> Result<bool> {
        let timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        self.session.borrow_mut().call(
            Call::Wait { timeout_ms },
            Duration::from_millis(timeout_ms.into()),
            |reply| match reply {
                Reply::Woke { moved } => Ok(moved),
                Reply::Failed(e) => Err(error(e)),
                other => Err(unexpected(&other)),
            },
        )?
    }

    /// Moves the board's clock forward by `span`: its stack's timers run as if that much
    /// time had passed.
    pub fn skip(&mut self, span: Duration) -> Result<()> {
        let ms = u32::try_from(span.as_millis()).unwrap_or(u32::MAX);
        self.call_done(Call::Skip { ms })
    }

    /// Whether the board's stack has nothing left to send (every connection closed,
    /// listening or in TIME-WAIT, every datagram sent).
    pub fn is_idle(&mut self) -> Result<bool> {
        self.call_flag(Call::IsIdle)
    }

    /// Whether a connection from local port `port` is in TIME-WAIT on the board.
    pub fn in_time_wait(&mut self, port: u16) -> Result<bool> {
        self.call_flag(Call::InTimeWait { port })
    }
}

fn unexpected(reply: &Reply<'_>) -> Error {
    Error::Remote(intern(&format!(
        "the board answered a call with a reply of another kind ({})",
        match reply {
            Reply::Hello { .. } => "hello",
            Reply::Done => "done",
            Reply::Failed(_) => "failed",
            Reply::Handle(_) => "handle",
            Reply::Addr(_) => "address",
            Reply::Size(_) => "size",
            Reply::Flag(_) => "flag",
            Reply::Losses { .. } => "losses",
            Reply::Phase(_) => "phase",
            Reply::Datagram { .. } => "datagram",
            Reply::Data(_) => "data",
            Reply::Eof => "end of stream",
            Reply::Accepted { .. } => "accepted",
            Reply::Woke { .. } => "woke",
            Reply::NotReady => "not ready",
        }
    )))
}

impl Stack for RemoteStack {
    type Udp = RemoteUdp;
    type Tcp = RemoteTcp;
    type Listener = RemoteListener;

    fn udp_open(&mut self) -> Result<RemoteUdp> {
        self.call_handle(Call::UdpOpen).map(RemoteUdp)
    }

    fn udp_bind(&mut self, socket: RemoteUdp, port: u16) -> Result<()> {
        self.call_done(Call::UdpBind {
            socket: socket.0,
            port,
        })
    }

    fn udp_local(&self, socket: RemoteUdp) -> Option<SocketAddrV4> {
        self.call_addr(Call::UdpLocal { socket: socket.0 })
    }

    fn udp_max_payload(&self, socket: RemoteUdp) -> usize {
        self.call_size(Call::UdpMaxPayload { socket: socket.0 })
            .unwrap_or(0)
            .min(MAX_DATA)
    }

    fn udp_send_to(&mut self, socket: RemoteUdp, data: &[u8], to: SocketAddrV4) -> Result<()> {
        if data.len() > MAX_DATA {
            return Err(Error::MessageTooLarge {
                len: data.len(),
                max: MAX_DATA,
            });
        }
        self.call_done(Call::UdpSendTo {
            socket: socket.0,
            to: Addr::from(to),
            data,
        })
    }

    fn udp_flushed(&self, socket: RemoteUdp) -> bool {
        // A broken link has nothing more to flush.
        self.call_flag(Call::UdpFlushed { socket: socket.0 })
            .unwrap_or(true)
    }

    fn udp_recv_from(&mut self, socket: RemoteUdp, buf: &mut [u8]) -> Result<Datagram> {
        let max = u16::try_from(buf.len().min(MAX_DATA)).unwrap_or(u16::MAX);
        self.call(
            Call::UdpRecvFrom {
                socket: socket.0,
                max,
            },
            |reply| match reply {
                Reply::Datagram { from, size, data } => {
                    let len = data.len().min(buf.len());
                    buf[..len].copy_from_slice(&data[..len]);
                    Ok(Datagram {
                        len,
                        size: size as usize,
                        from: from.into(),
                    })
                }
                Reply::Failed(e) => Err(error(e)),
                other => Err(unexpected(&other)),
            },
        )?
    }

    fn udp_close(&mut self, socket: RemoteUdp) {
        let _ = self.call_done(Call::UdpClose { socket: socket.0 });
    }

    fn udp_losses(&self, socket: RemoteUdp) -> UdpLosses {
        self.call(Call::UdpLosses { socket: socket.0 }, |reply| match reply {
            Reply::Losses {
                buffer_full,
                incomplete,
            } => UdpLosses {
                buffer_full,
                incomplete,
            },
            _ => UdpLosses::default(),
        })
        .unwrap_or_default()
    }

    fn tcp_connect(&mut self, to: SocketAddrV4) -> Result<RemoteTcp> {
        self.call_handle(Call::TcpConnect { to: to.into() })
            .map(RemoteTcp)
    }

    fn tcp_phase(&self, socket: RemoteTcp) -> Phase {
        let phase = self.call(Call::TcpPhase { socket: socket.0 }, |reply| match reply {
            Reply::Phase(WirePhase::Connecting) => Phase::Connecting,
            Reply::Phase(WirePhase::Open) => Phase::Open,
            Reply::Phase(WirePhase::Failed(e)) => Phase::Failed(error(e)),
            other => Phase::Failed(unexpected(&other)),
        });
        phase.unwrap_or_else(Phase::Failed)
    }

    fn tcp_local(&self, socket: RemoteTcp) -> Option<SocketAddrV4> {
        self.call_addr(Call::TcpLocal { socket: socket.0 })
    }

    fn tcp_peer(&self, socket: RemoteTcp) -> Option<SocketAddrV4> {
        self.call_addr(Call::TcpPeer { socket: socket.0 })
    }

    fn tcp_send(&mut self, socket: RemoteTcp, data: &[u8]) -> Result<usize> {
        let data = &data[..data.len().min(MAX_DATA)];
        self.call_size(Call::TcpSend {
            socket: socket.0,
            data,
        })
    }

    fn tcp_unacked(&self, socket: RemoteTcp) -> usize {
        self.call_size(Call::TcpUnacked { socket: socket.0 })
            .unwrap_or(0)
    }

    fn tcp_recv(&mut self, socket: RemoteTcp, buf: &mut [u8]) -> Result<Recv> {
        let max = buf.len();
        self.tcp_recv_with(socket, max, &mut |bytes| {
            buf[..bytes.len()].copy_from_slice(bytes);
        })
    }

    fn tcp_recv_with(
        &mut self,
        socket: RemoteTcp,
        max: usize,
        f: &mut dyn FnMut(&[u8]),
    ) -> Result<Recv> {
        let max = u16::try_from(max.min(MAX_DATA)).unwrap_or(u16::MAX);
        self.call(
            Call::TcpRecv {
                socket: socket.0,
                max,
            },
            |reply| match reply {
                // Never more than asked for, whatever the board sends.
                Reply::Data(data) if !data.is_empty() => {
                    let data = &data[..data.len().min(usize::from(max))];
                    f(data);
                    Ok(Recv::Data(data.len()))
                }
                Reply::Eof => Ok(Recv::Eof),
                Reply::Failed(e) => Err(error(e)),
                other => Err(unexpected(&other)),
            },
        )?
    }

    fn tcp_shutdown(&mut self, socket: RemoteTcp) {
        let _ = self.call_done(Call::TcpShutdown { socket: socket.0 });
    }

    fn tcp_close(&mut self, socket: RemoteTcp) {
        let _ = self.call_done(Call::TcpClose { socket: socket.0 });
    }

    fn tcp_abort(&mut self, socket: RemoteTcp) {
        let _ = self.call_done(Call::TcpAbort { socket: socket.0 });
    }

    fn tcp_set_timeouts(&mut self, socket: RemoteTcp, timeouts: TcpTimeouts) {
        let _ = self.call_done(Call::TcpSetTimeouts {
            socket: socket.0,
            keepalive_ms: timeouts.keepalive.map(|d| d.total_millis()),
            give_up_ms: timeouts.give_up.map(|d| d.total_millis()),
        });
    }

    fn tcp_listen(&mut self, port: u16, backlog: usize) -> Result<RemoteListener> {
        let backlog = u16::try_from(backlog).unwrap_or(u16::MAX);
        self.call_handle(Call::TcpListen { port, backlog })
            .map(RemoteListener)
    }

    fn tcp_accept(&mut self, listener: RemoteListener) -> Result<(RemoteTcp, SocketAddrV4)> {
        self.call(
            Call::TcpAccept {
                listener: listener.0,
            },
            |reply| match reply {
                Reply::Accepted { socket, peer } => Ok((RemoteTcp(socket), peer.into())),
                Reply::Failed(e) => Err(error(e)),
                other => Err(unexpected(&other)),
            },
        )?
    }

    fn listener_close(&mut self, listener: RemoteListener) {
        let _ = self.call_done(Call::ListenerClose {
            listener: listener.0,
        });
    }
}
