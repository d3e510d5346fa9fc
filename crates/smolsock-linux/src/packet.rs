//! `AF_PACKET` sockets: raw Ethernet frames on one interface, opened in one place for the
//! stack on a veth end ([`TunTap::packet`](crate::tap::TunTap::packet)), for
//! [`Capture`](crate::capture::Capture), and for tests that forge frames.
//!
//! A packet socket needs `CAP_NET_RAW`, which the process has inside
//! [`netns::enter`](crate::netns::enter)'s namespace.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::sys::socket::{setsockopt, sockopt};
use socket2::{Domain, Socket, Type};

/// What [`PacketSocket::recv`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Bytes of the frame now in the buffer.
    pub len: usize,
    /// The frame's length on the wire: more than `len` if the buffer was too short.
    pub wire_len: usize,
    /// A frame this host sent on the interface (a copy), not one it received.
    pub outgoing: bool,
    /// The interface is a loopback (where every packet shows twice, going out and coming
    /// in).
    pub loopback: bool,
}

/// A raw packet socket bound to one interface, receiving every protocol.
#[derive(Debug)]
pub struct PacketSocket {
    socket: Socket,
}

impl PacketSocket {
    /// Opens a non-blocking packet socket bound to `interface` (in this process's network
    /// namespace). Frames are seen from the moment this returns, and only that
    /// interface's.
    pub fn open(interface: &str) -> io::Result<PacketSocket> {
        let index =
            libc::c_int::try_from(crate::iface::index(interface)?).map_err(io::Error::other)?;
        // Protocol 0: the socket receives nothing until it is bound to the interface
        // below, so no frame from another interface can slip in.
        let socket = Socket::new(Domain::PACKET, Type::RAW.nonblocking(), None).map_err(|e| {
            if e.raw_os_error() == Some(libc::EPERM) {
                io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "a packet socket on '{interface}' needs CAP_NET_RAW (inside \
                         netns::enter's namespace, or as root)"
                    ),
                )
            } else {
                annotate(e, interface, "open a packet socket")
            }
        })?;
        let addr = libc::sockaddr_ll {
            sll_family: libc::AF_PACKET as libc::c_ushort,
            sll_protocol: (libc::ETH_P_ALL as u16).to_be(),
            sll_ifindex: index,
            sll_hatype: 0,
            sll_pkttype: 0,
            sll_halen: 0,
            sll_addr: [0; 8],
        };
        // SAFETY: `addr` is a valid `sockaddr_ll` of the length given, alive for the call;
        // the descriptor is the socket's own.
        let rc = unsafe {
            libc::bind(
                socket.as_raw_fd(),
                (&raw const addr).cast(),
                socklen_of::<libc::sockaddr_ll>(),
            )
        };
        if rc < 0 {
            return Err(annotate(
                io::Error::last_os_error(),
                interface,
                "bind a packet socket",
            ));
        }
        Ok(PacketSocket { socket })
    }

    /// The socket, for its options (blocking mode, timeouts, buffer sizes).
    pub fn socket(&self) -> &Socket {
        &self.socket
    }

    /// Asks for a receive buffer of `bytes`, past the system's limit where allowed
    /// (`SO_RCVBUFFORCE`, with `CAP_NET_ADMIN`), else up to it (`SO_RCVBUF`).
    pub fn grow_receive_buffer(&self, bytes: usize) -> io::Result<()> {
        // Checked here: the option's value is an `int`, which nix would wrap.
        libc::c_int::try_from(bytes).map_err(io::Error::other)?;
        let forced = setsockopt(&self.socket, sockopt::RcvBufForce, &bytes);
        if forced.is_ok() {
            return Ok(());
        }
        self.socket.set_recv_buffer_size(bytes)
    }

    /// Reads one frame into `buf` (cut to fit; [`Received::wire_len`] tells); in
    /// non-blocking mode a `WouldBlock` error when none is queued.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        let mut from = libc::sockaddr_ll {
            sll_family: 0,
            sll_protocol: 0,
            sll_ifindex: 0,
            sll_hatype: 0,
            sll_pkttype: 0,
            sll_halen: 0,
            sll_addr: [0; 8],
        };
        let mut from_len = socklen_of::<libc::sockaddr_ll>();
        // SAFETY: the kernel writes at most `buf.len()` bytes into `buf` and at most
        // `from_len` bytes into `from`, all alive for the call. With MSG_TRUNC the return
        // value is the frame's full length, which may exceed `buf.len()`.
        let n = unsafe {
            libc::recvfrom(
                self.socket.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_TRUNC,
                (&raw mut from).cast(),
                &mut from_len,
            )
        };
        let wire_len = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        Ok(Received {
            len: wire_len.min(buf.len()),
            wire_len,
            outgoing: from.sll_pkttype == libc::PACKET_OUTGOING,
            loopback: from.sll_hatype == libc::ARPHRD_LOOPBACK,
        })
    }

    /// Sends one Ethernet frame out of the interface.
    pub fn send(&self, frame: &[u8]) -> io::Result<usize> {
        self.socket.send(frame)
    }

    /// Frames the kernel dropped because the socket's buffer was full, since the last call
    /// (reading the counters resets them).
    pub fn drops(&self) -> io::Result<u64> {
        let mut stats = libc::tpacket_stats {
            tp_packets: 0,
            tp_drops: 0,
        };
        let mut len = socklen_of::<libc::tpacket_stats>();
        // SAFETY: the kernel writes at most `len` bytes into `stats`, alive for the call;
        // the descriptor is the socket's own.
        let rc = unsafe {
            libc::getsockopt(
                self.socket.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&raw mut stats).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(u64::from(stats.tp_drops))
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl From<PacketSocket> for OwnedFd {
    fn from(packet: PacketSocket) -> OwnedFd {
        packet.socket.into()
    }
}

fn annotate(error: io::Error, interface: &str, step: &str) -> io::Error {
    io::Error::new(
        error.kind(),
        format!("cannot {step} on '{interface}': {error}"),
    )
}

fn socklen_of<T>() -> libc::socklen_t {
    // Socket address and option structs are a few dozen bytes.
    libc::socklen_t::try_from(std::mem::size_of::<T>()).unwrap_or(libc::socklen_t::MAX)
}
