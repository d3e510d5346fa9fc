//! The messages: what the host asks ([`Request`], one [`Call`]) and what the board says
//! ([`Message`]: a [`Reply`] to a call, or its boot announcement), as serde types that
//! postcard encodes.
//!
//! Handles are the board's own (`smolsock::smol::*Handle::to_raw`): the host only hands
//! them back, and the board's stack treats a number it never gave out as a stale handle.

use core::net::{Ipv4Addr, SocketAddrV4};

use serde::{Deserialize, Serialize};
use smolsock::Error;
use smolsock::net::{Phase, UdpLosses};

/// The protocol's version. The host and the board exchange it first ([`Call::Hello`]) and
/// the host goes no further when they differ. [`Call::Hello`] and [`Reply::Hello`] keep
/// their place and shape in every version, so that any two versions can tell each other
/// apart.
pub const VERSION: u16 = 1;

/// The most payload bytes one call carries either way: a whole UDP datagram of a 1500-byte
/// Ethernet MTU (1472), so that a datagram is never cut by the link.
pub const MAX_DATA: usize = 1472;

/// One call from the host, with the number the reply repeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request<'a> {
    /// Counts up from the host's first call (wrapping); the reply carries it back.
    pub seq: u16,
    /// What the host asks.
    #[serde(borrow)]
    pub call: Call<'a>,
}

/// An IPv4 address and port, as the wire carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addr {
    /// The address's four bytes.
    pub ip: [u8; 4],
    /// The port.
    pub port: u16,
}

impl From<SocketAddrV4> for Addr {
    fn from(addr: SocketAddrV4) -> Self {
        Self {
            ip: addr.ip().octets(),
            port: addr.port(),
        }
    }
}

impl From<Addr> for SocketAddrV4 {
    fn from(addr: Addr) -> Self {
        SocketAddrV4::new(Ipv4Addr::from(addr.ip), addr.port)
    }
}

/// The addresses a host gives the board's stack at [`Call::Restart`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Ethernet address (unicast).
    pub mac: [u8; 6],
    /// IPv4 address of the stack.
    pub ip: [u8; 4],
    /// Prefix length of its subnet.
    pub prefix: u8,
    /// Default gateway, if any.
    pub gateway: Option<[u8; 4]>,
    /// Seed for TCP sequence numbers and ephemeral ports.
    pub seed: u64,
}

/// What the host asks the board to do: one `net::Stack` call each, and the few calls a
/// remote stack needs besides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Call<'a> {
    /// The handshake: the host's protocol version. Answered with [`Reply::Hello`] whatever
    /// the versions; a board ignores every other call until the versions match.
    Hello {
        /// [`VERSION`] of the host.
        version: u16,
    },
    /// A fresh stack at these addresses on the same sockets (`SmolStack::restart`): every
    /// connection aborted, every handle stale. Answered with [`Reply::Done`].
    Restart(Config),
    /// The listener rules: how long a half-open connection may wait, and whether a SYN
    /// that finds the backlog full gets a reset (`true`) or is dropped.
    SetListenPolicy {
        /// The half-open timeout, in milliseconds.
        syn_timeout_ms: u32,
        /// Reset instead of drop when the backlog is full.
        reset_when_full: bool,
    },
    /// Answered ([`Reply::Woke`]) as soon as the board's stack moves a frame in or out (at
    /// once if one moved since the last `Wait`), or after `timeout_ms`: the host waits for
    /// the board without polling over the link.
    Wait {
        /// The longest the board holds the answer back, in milliseconds.
        timeout_ms: u32,
    },
    /// Moves the board's clock forward (the stack's timers run as if that much time
    /// passed). Answered with [`Reply::Done`].
    Skip {
        /// How far, in milliseconds.
        ms: u32,
    },
    /// Whether a TCP socket whose local port is `port` is in TIME-WAIT ([`Reply::Flag`]).
    InTimeWait {
        /// The local port.
        port: u16,
    },
    /// Whether nothing is left to send (`SmolStack::is_idle`, [`Reply::Flag`]): a host
    /// that ends a program waits for it, so the last FIN leaves before the board stops.
    IsIdle,
    /// `udp_open` ([`Reply::Handle`]).
    UdpOpen,
    /// `udp_bind` ([`Reply::Done`]).
    UdpBind {
        /// The socket.
        socket: u64,
        /// The port.
        port: u16,
    },
    /// `udp_local` ([`Reply::Addr`]).
    UdpLocal {
        /// The socket.
        socket: u64,
    },
    /// `udp_max_payload` ([`Reply::Size`]).
    UdpMaxPayload {
        /// The socket.
        socket: u64,
    },
    /// `udp_send_to` ([`Reply::Done`]).
    UdpSendTo {
        /// The socket.
        socket: u64,
        /// The destination.
        to: Addr,
        /// The datagram (at most [`MAX_DATA`] bytes).
        #[serde(borrow)]
        data: &'a [u8],
    },
    /// `udp_flushed` ([`Reply::Flag`]).
    UdpFlushed {
        /// The socket.
        socket: u64,
    },
    /// `udp_recv_from` with a buffer of `max` bytes ([`Reply::Datagram`]).
    UdpRecvFrom {
        /// The socket.
        socket: u64,
        /// The caller's buffer size (the board takes at most [`MAX_DATA`]).
        max: u16,
    },
    /// `udp_close` ([`Reply::Done`]).
    UdpClose {
        /// The socket.
        socket: u64,
    },
    /// `udp_losses` ([`Reply::Losses`]).
    UdpLosses {
        /// The socket.
        socket: u64,
    },
    /// `tcp_connect` ([`Reply::Handle`]).
    TcpConnect {
        /// The server.
        to: Addr,
    },
    /// `tcp_phase` ([`Reply::Phase`]).
    TcpPhase {
        /// The connection.
        socket: u64,
    },
    /// `tcp_local` ([`Reply::Addr`]).
    TcpLocal {
        /// The connection.
        socket: u64,
    },
    /// `tcp_peer` ([`Reply::Addr`]).
    TcpPeer {
        /// The connection.
        socket: u64,
    },
    /// `tcp_send` ([`Reply::Size`]: how much was queued).
    TcpSend {
        /// The connection.
        socket: u64,
        /// The bytes (at most [`MAX_DATA`]).
        #[serde(borrow)]
        data: &'a [u8],
    },
    /// `tcp_unacked` ([`Reply::Size`]).
    TcpUnacked {
        /// The connection.
        socket: u64,
    },
    /// `tcp_recv` of at most `max` bytes ([`Reply::Data`] or [`Reply::Eof`]).
    TcpRecv {
        /// The connection.
        socket: u64,
        /// The caller's buffer size (the board sends at most [`MAX_DATA`]).
        max: u16,
    },
    /// `tcp_shutdown` ([`Reply::Done`]).
    TcpShutdown {
        /// The connection.
        socket: u64,
    },
    /// `tcp_close` ([`Reply::Done`]).
    TcpClose {
        /// The connection.
        socket: u64,
    },
    /// `tcp_abort` ([`Reply::Done`]).
    TcpAbort {
        /// The connection.
        socket: u64,
    },
    /// `tcp_set_timeouts` ([`Reply::Done`]).
    TcpSetTimeouts {
        /// The connection.
        socket: u64,
        /// Keep-alive interval, in milliseconds.
        keepalive_ms: Option<u64>,
        /// Give-up time, in milliseconds.
        give_up_ms: Option<u64>,
    },
    /// `tcp_listen` ([`Reply::Handle`]).
    TcpListen {
        /// The port.
        port: u16,
        /// The backlog.
        backlog: u16,
    },
    /// `tcp_accept` ([`Reply::Accepted`]).
    TcpAccept {
        /// The listener.
        listener: u64,
    },
    /// `listener_close` ([`Reply::Done`]).
    ListenerClose {
        /// The listener.
        listener: u64,
    },
}

/// What the board sends: replies, and one announcement after every boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message<'a> {
    /// Sent once at boot: a host that sees it while a session runs knows the board reset
    /// and its sockets are gone.
    Boot {
        /// The board's [`VERSION`].
        version: u16,
        /// A number drawn at boot ([`Reply`]s repeat it).
        nonce: u32,
    },
    /// The answer to the request numbered `seq`.
    Reply {
        /// The request's number.
        seq: u16,
        /// The boot's number: a change means the board reset since the handshake.
        nonce: u32,
        /// The answer.
        #[serde(borrow)]
        reply: Reply<'a>,
    },
}

/// The answer to one [`Call`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply<'a> {
    /// The answer to [`Call::Hello`].
    Hello {
        /// The board's [`VERSION`].
        version: u16,
        /// TCP sockets in its pool.
        tcp_sockets: u16,
        /// UDP sockets in its pool.
        udp_sockets: u16,
    },
    /// Done, nothing to give back.
    Done,
    /// The call failed.
    #[serde(borrow)]
    Failed(WireError<'a>),
    /// A new handle.
    Handle(u64),
    /// An address, if there is one.
    Addr(Option<Addr>),
    /// A size or count.
    Size(u32),
    /// Yes or no.
    Flag(bool),
    /// A UDP socket's losses.
    Losses {
        /// See `UdpLosses::buffer_full`.
        buffer_full: u64,
        /// See `UdpLosses::incomplete`.
        incomplete: u64,
    },
    /// A connection's phase.
    #[serde(borrow)]
    Phase(WirePhase<'a>),
    /// A datagram.
    Datagram {
        /// The sender.
        from: Addr,
        /// Its size on the wire.
        size: u32,
        /// What the read took.
        #[serde(borrow)]
        data: &'a [u8],
    },
    /// Bytes a TCP read took (never empty).
    #[serde(borrow)]
    Data(&'a [u8]),
    /// The peer closed and everything was read.
    Eof,
    /// An accepted connection.
    Accepted {
        /// Its handle.
        socket: u64,
        /// The client.
        peer: Addr,
    },
    /// The answer to [`Call::Wait`]: whether the stack moved a frame (else the time ran
    /// out).
    Woke {
        /// A frame moved.
        moved: bool,
    },
    /// The board does not take this call before the versions match ([`Call::Hello`]).
    NotReady,
}

/// `net::Phase` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WirePhase<'a> {
    /// `Phase::Connecting`.
    Connecting,
    /// `Phase::Open`.
    Open,
    /// `Phase::Failed`.
    #[serde(borrow)]
    Failed(WireError<'a>),
}

/// `smolsock::Error` on the wire; texts travel as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)] // One variant per `smolsock::Error` variant, documented there.
pub enum WireError<'a> {
    WouldBlock,
    NoFreeSocket,
    NoFreeListener,
    NoEphemeralPort,
    AddrInUse { port: u16 },
    InvalidPort,
    Unaddressable,
    ConnectionRefused,
    ConnectionReset,
    TimedOut,
    NotConnected,
    MessageTooLarge { len: u64, max: u64 },
    InputClosed,
    NobodyWaiting,
    InvalidConfig(&'a str),
    PermissionDenied,
    Os(i32),
    StaleHandle,
    Protocol(&'a str),
    Unsupported(&'a str),
    AccessDenied,
    PeerError { code: i32, errno: i32 },
    PeerTerminated,
    Remote(&'a str),
}

impl From<Error> for WireError<'static> {
    fn from(error: Error) -> Self {
        match error {
            Error::WouldBlock => Self::WouldBlock,
            Error::NoFreeSocket => Self::NoFreeSocket,
            Error::NoFreeListener => Self::NoFreeListener,
            Error::NoEphemeralPort => Self::NoEphemeralPort,
            Error::AddrInUse { port } => Self::AddrInUse { port },
            Error::InvalidPort => Self::InvalidPort,
            Error::Unaddressable => Self::Unaddressable,
            Error::ConnectionRefused => Self::ConnectionRefused,
            Error::ConnectionReset => Self::ConnectionReset,
            Error::TimedOut => Self::TimedOut,
            Error::NotConnected => Self::NotConnected,
            Error::MessageTooLarge { len, max } => Self::MessageTooLarge {
                len: len as u64,
                max: max as u64,
            },
            Error::InputClosed => Self::InputClosed,
            Error::NobodyWaiting => Self::NobodyWaiting,
            Error::InvalidConfig(what) => Self::InvalidConfig(what),
            Error::PermissionDenied => Self::PermissionDenied,
            Error::Os(errno) => Self::Os(errno),
            Error::StaleHandle => Self::StaleHandle,
            Error::Protocol(what) => Self::Protocol(what),
            Error::Unsupported(what) => Self::Unsupported(what),
            Error::AccessDenied => Self::AccessDenied,
            Error::PeerError { code, errno } => Self::PeerError { code, errno },
            Error::PeerTerminated => Self::PeerTerminated,
            Error::Remote(what) => Self::Remote(what),
            // A variant newer than this protocol version.
            _ => {
                Self::Remote("the board failed with an error this protocol version does not carry")
            }
        }
    }
}

impl WireError<'_> {
    /// The `smolsock::Error`, with `text` giving each text a `'static` life (the host keeps
    /// the few texts a board sends).
    pub fn to_error(self, text: &mut dyn FnMut(&str) -> &'static str) -> Error {
        match self {
            Self::WouldBlock => Error::WouldBlock,
            Self::NoFreeSocket => Error::NoFreeSocket,
            Self::NoFreeListener => Error::NoFreeListener,
            Self::NoEphemeralPort => Error::NoEphemeralPort,
            Self::AddrInUse { port } => Error::AddrInUse { port },
            Self::InvalidPort => Error::InvalidPort,
            Self::Unaddressable => Error::Unaddressable,
            Self::ConnectionRefused => Error::ConnectionRefused,
            Self::ConnectionReset => Error::ConnectionReset,
            Self::TimedOut => Error::TimedOut,
            Self::NotConnected => Error::NotConnected,
            Self::MessageTooLarge { len, max } => Error::MessageTooLarge {
                len: usize::try_from(len).unwrap_or(usize::MAX),
                max: usize::try_from(max).unwrap_or(usize::MAX),
            },
            Self::InputClosed => Error::InputClosed,
            Self::NobodyWaiting => Error::NobodyWaiting,
            Self::InvalidConfig(what) => Error::InvalidConfig(text(what)),
            Self::PermissionDenied => Error::PermissionDenied,
            Self::Os(errno) => Error::Os(errno),
            Self::StaleHandle => Error::StaleHandle,
            Self::Protocol(what) => Error::Protocol(text(what)),
            Self::Unsupported(what) => Error::Unsupported(text(what)),
            Self::AccessDenied => Error::AccessDenied,
            Self::PeerError { code, errno } => Error::PeerError { code, errno },
            Self::PeerTerminated => Error::PeerTerminated,
            Self::Remote(what) => Error::Remote(text(what)),
        }
    }
}

impl From<Phase> for WirePhase<'static> {
    fn from(phase: Phase) -> Self {
        match phase {
            Phase::Connecting => Self::Connecting,
            Phase::Open => Self::Open,
            Phase::Failed(e) => Self::Failed(e.into()),
        }
    }
}

impl From<UdpLosses> for Reply<'static> {
    fn from(losses: UdpLosses) -> Self {
        Reply::Losses {
            buffer_full: losses.buffer_full,
            incomplete: losses.incomplete,
        }
    }
}
