//! The socket layer the programs are written against: a small, non-blocking, BSD-like API.
//!
//! smoltcp has no `listen`/`accept` and no automatic ports; the Linux kernel has both. The
//! [`Stack`] trait is the common ground: the four programs only ever talk to a `Stack`, so
//! the same program runs on [`SmolStack`](crate::smol::SmolStack) (smoltcp, `no_std`) and
//! on an implementation over `std::net` (the host's "kernel" stack).
//!
//! Every call returns at once. [`Error::WouldBlock`](crate::Error::WouldBlock) means "not
//! now": the caller polls again after the stack has had a chance to move packets.

use core::fmt::Debug;
use core::net::SocketAddrV4;

use smoltcp::time::Duration;

use crate::error::Result;

/// One datagram taken from a UDP socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Datagram {
    /// Bytes copied into the caller's buffer.
    pub len: usize,
    /// Size of the datagram on the wire; larger than `len` when the buffer was too small
    /// (the rest is dropped, as `recvfrom` does with a short buffer: rule S11).
    pub size: usize,
    /// The sender.
    pub from: SocketAddrV4,
}

/// Datagrams a UDP socket lost before the program read them, by cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct UdpLosses {
    /// Dropped because the socket's receive buffer was full: the program did not read them
    /// fast enough.
    pub buffer_full: u64,
    /// Fragmented datagrams whose fragments never all arrived (given up after the
    /// reassembly timeout). The kernel's stack counts these only per namespace
    /// (`ReasmFails`), so it reports 0 here.
    pub incomplete: u64,
}

/// What a TCP receive gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Recv {
    /// This many bytes were copied into the buffer (never 0).
    Data(usize),
    /// The peer closed its side and every byte it sent has been read: the `recv() == 0` of
    /// BSD sockets (rule S9).
    Eof,
}

/// Where a connection is in its life, as a program needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Phase {
    /// The handshake is under way (SYN sent).
    Connecting,
    /// The connection opened and has not failed: data may move, or, once both sides
    /// closed in order, reading gives end-of-stream.
    Open,
    /// The connection is gone, and why: [`ConnectionRefused`](crate::Error::ConnectionRefused)
    /// (a reset answered the SYN: nobody listens there), [`ConnectionReset`](crate::Error::ConnectionReset)
    /// (a reset came later), [`TimedOut`](crate::Error::TimedOut) (the stack gave up), or
    /// [`StaleHandle`](crate::Error::StaleHandle) (the handle was already closed).
    Failed(crate::Error),
}

/// Bounds a stack enforces on one TCP connection by itself, without the program.
///
/// Both are off (`None`) unless set; see [`crate::programs::DEFAULT_KEEPALIVE`] and
/// [`crate::programs::DEFAULT_GIVE_UP`] for what the programs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TcpTimeouts {
    /// Keep-alive: a probe after this long without traffic, and every this long after
    /// that while the peer stays silent (`SO_KEEPALIVE` with `TCP_KEEPIDLE` and
    /// `TCP_KEEPINTVL`; smoltcp's `set_keep_alive`). A peer that answers probes keeps the
    /// connection open: this finds dead peers, not idle ones.
    pub keepalive: Option<Duration>,
    /// Give-up: the connection is aborted once the peer has been silent this long while we
    /// wait for it (for an acknowledgement of our data, an answer to a keep-alive probe, or
    /// the acknowledgement of our FIN). The connection then fails with
    /// [`Error::TimedOut`](crate::Error::TimedOut) (`TCP_USER_TIMEOUT`; smoltcp's
    /// `set_timeout`).
    pub give_up: Option<Duration>,
}

/// A non-blocking, BSD-like socket layer.
///
/// Handles are small `Copy` values; a handle is valid from the call that returns it until
/// the call that closes it (`udp_close`, `tcp_close`, `tcp_abort`, `listener_close`). After
/// that the stack may hand the same socket out again, but never to the old handle: a stale
/// handle reaches no socket. Calls that return a `Result` fail with
/// [`Error::StaleHandle`](crate::Error::StaleHandle), `tcp_phase` says
/// `Failed(StaleHandle)`, queries give their empty value (`None`, 0, no losses, flushed),
/// and closing or configuring calls do nothing.
pub trait Stack {
    /// A UDP socket.
    type Udp: Copy + Eq + Debug;
    /// A TCP connection (client or accepted).
    type Tcp: Copy + Eq + Debug;
    /// A TCP listener.
    type Listener: Copy + Eq + Debug;

    /// Opens an unbound UDP socket.
    fn udp_open(&mut self) -> Result<Self::Udp>;
    /// Binds a UDP socket to `port` on every local address (`bind(('', port))`).
    fn udp_bind(&mut self, socket: Self::Udp, port: u16) -> Result<()>;
    /// The local address, once bound (explicitly or by the first send).
    fn udp_local(&self, socket: Self::Udp) -> Option<SocketAddrV4>;
    /// The largest datagram payload `udp_send_to` accepts.
    fn udp_max_payload(&self, socket: Self::Udp) -> usize;
    /// Queues one datagram. An unbound socket is first bound to an ephemeral port, which it
    /// keeps until closed (rule S10).
    fn udp_send_to(&mut self, socket: Self::Udp, data: &[u8], to: SocketAddrV4) -> Result<()>;
    /// Whether every queued datagram has left the socket (handed to the link).
    fn udp_flushed(&self, socket: Self::Udp) -> bool;
    /// Takes one datagram, copying at most `buf.len()` bytes of it (rule S11).
    fn udp_recv_from(&mut self, socket: Self::Udp, buf: &mut [u8]) -> Result<Datagram>;
    /// Closes the socket and frees its port.
    fn udp_close(&mut self, socket: Self::Udp);
    /// Datagrams for this socket that the stack dropped before the program could read
    /// them, since it was bound.
    fn udp_losses(&self, socket: Self::Udp) -> UdpLosses;

    /// Starts connecting to `to` from an ephemeral local port (rules S2, S4).
    fn tcp_connect(&mut self, to: SocketAddrV4) -> Result<Self::Tcp>;
    /// Where the connection is.
    fn tcp_phase(&self, socket: Self::Tcp) -> Phase;
    /// Local address of a connection.
    fn tcp_local(&self, socket: Self::Tcp) -> Option<SocketAddrV4>;
    /// Peer address of a connection.
    fn tcp_peer(&self, socket: Self::Tcp) -> Option<SocketAddrV4>;
    /// Queues as much of `data` as fits and returns how much that was (never 0: a full
    /// buffer is `WouldBlock`).
    fn tcp_send(&mut self, socket: Self::Tcp, data: &[u8]) -> Result<usize>;
    /// Bytes queued for sending and not yet acknowledged by the peer.
    fn tcp_unacked(&self, socket: Self::Tcp) -> usize;
    /// Reads what has arrived, or end-of-stream.
    fn tcp_recv(&mut self, socket: Self::Tcp, buf: &mut [u8]) -> Result<Recv>;
    /// Reads what has arrived as [`tcp_recv`](Self::tcp_recv) does, but shows it to `f`
    /// where it lies (smoltcp's receive ring) instead of copying it into a buffer: at most
    /// `max` bytes in one contiguous piece, every one of them consumed. `Data(n)`: `f` saw
    /// `n` bytes.
    fn tcp_recv_with(
        &mut self,
        socket: Self::Tcp,
        max: usize,
        f: &mut dyn FnMut(&[u8]),
    ) -> Result<Recv>;
    /// Shuts down the sending side (a FIN after the queued data) and keeps reading.
    fn tcp_shutdown(&mut self, socket: Self::Tcp);
    /// Orderly close: queued data is still sent, then a FIN. The handle is invalid after.
    fn tcp_close(&mut self, socket: Self::Tcp);
    /// Abortive close: a reset is sent and queued data is dropped. The handle is invalid
    /// after.
    fn tcp_abort(&mut self, socket: Self::Tcp);
    /// Bounds the stack enforces on one connection by itself (keep-alive, give-up).
    fn tcp_set_timeouts(&mut self, socket: Self::Tcp, timeouts: TcpTimeouts);

    /// Listens on `port` with room for `backlog` connections that complete their handshake
    /// before they are accepted (rules S1, S3, S12).
    fn tcp_listen(&mut self, port: u16, backlog: usize) -> Result<Self::Listener>;
    /// Takes one established connection and its peer (rules S5, S6).
    fn tcp_accept(&mut self, listener: Self::Listener) -> Result<(Self::Tcp, SocketAddrV4)>;
    /// Stops listening; connections already accepted go on (rule S7).
    fn listener_close(&mut self, listener: Self::Listener);
}
