//! The std twin: the [`Stack`] trait over the host kernel's own TCP/IP stack.
//!
//! The programs of the core run unchanged on [`KernelStack`]: every socket is a
//! non-blocking kernel socket (made with `socket2`, which exposes what `std::net` keeps
//! hidden: a non-blocking `connect`, `listen`'s backlog, `recvfrom`'s `MSG_TRUNC`), and
//! the driver sleeps in `poll(2)` on the sockets that last answered "would block".
//!
//! Readiness follows the usual non-blocking rule: an operation that returns
//! [`Error::WouldBlock`] arms interest in its socket (readable for `recv`/`accept`,
//! writable for `send` and a pending `connect`); [`KernelStack::wait`] sleeps until one of
//! the armed sockets is ready, the input is readable or the timeout passes, and disarms
//! what fired. A socket the program is not waiting on is never polled, so a peer's
//! end-of-stream that the program has already seen cannot turn the wait into a busy loop.
//!
//! What differs from smoltcp is the point of the comparison: the kernel picks ephemeral
//! ports from `ip_local_port_range`, keeps an accept queue of `backlog + 1` connections
//! and drops further SYNs, answers `close` with unread data by a reset, and so on (see
//! `smolsock compare`).

#![expect(
    unsafe_code,
    reason = "SIOCOUTQ, and a receive buffer seen as maybe-uninitialised for socket2"
)]

use std::cell::Cell;
use std::io::{self, Read};
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, RawFd};

use smolsock::net::{Datagram, Phase, Recv, Stack, TcpTimeouts, UdpLosses};
use smolsock::{Error, Result};
use smolsock_linux::wait::{READABLE, Waiter};
use smoltcp::time::Duration;
use socket2::{Domain, Protocol, SockAddr, Socket, TcpKeepalive, Type};

/// Largest UDP payload over IPv4.
pub const UDP_MAX_PAYLOAD: usize = 65507;

/// Where a handle's socket is: its index among the sockets of its kind, and the generation
/// of that index it was made in. A closed socket's index is reused with a new generation,
/// so an old handle is stale ([`Error::StaleHandle`]) rather than the new socket's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    index: usize,
    generation: u32,
}

/// A UDP socket of a [`KernelStack`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelUdp(Key);

/// A TCP connection of a [`KernelStack`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelTcp(Key);

/// A TCP listener of a [`KernelStack`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelListener(Key);

/// One kernel socket and the readiness the program waits for on it.
struct Slot {
    socket: Socket,
    /// `poll(2)` events armed by the last "would block".
    interest: Cell<i16>,
    /// A connect that has ended (open or failed); `None` while it is under way.
    phase: Cell<Option<Phase>>,
}

impl Slot {
    fn new(socket: Socket, phase: Option<Phase>) -> Self {
        Self {
            socket,
            interest: Cell::new(0),
            phase: Cell::new(phase),
        }
    }

    fn arm(&self, events: i16) {
        self.interest.set(self.interest.get() | events);
    }

    /// Maps an I/O error, arming `events` when it is "would block".
    fn blocked(&self, error: io::Error, events: i16) -> Error {
        let error = map_error(&error);
        if error == Error::WouldBlock {
            self.arm(events);
        }
        error
    }
}

/// One index of [`Slots`]: its socket, if open, and its generation (bumped when a socket
/// is put there and when it is removed).
#[derive(Default)]
struct Entry {
    generation: u32,
    slot: Option<Slot>,
}

/// Sockets of one kind, found by their handles' [`Key`]s; a closed socket's index is
/// reused, in a new generation.
struct Slots(Vec<Entry>);

impl Slots {
    fn insert(&mut self, slot: Slot) -> Key {
        let index = match self.0.iter().position(|e| e.slot.is_none()) {
            Some(index) => index,
            None => {
                self.0.push(Entry::default());
                self.0.len() - 1
            }
        };
        let generation = match self.0.get_mut(index) {
            Some(entry) => {
                entry.generation = entry.generation.wrapping_add(1);
                entry.slot = Some(slot);
                entry.generation
            }
            None => 0,
        };
        Key { index, generation }
    }

    /// The socket of `key`, or [`Error::StaleHandle`] once it was closed.
    fn get(&self, key: Key) -> Result<&Slot> {
        self.0
            .get(key.index)
            .filter(|e| e.generation == key.generation)
            .and_then(|e| e.slot.as_ref())
            .ok_or(Error::StaleHandle)
    }

    /// Takes the socket of `key` out (nothing for a stale key).
    fn remove(&mut self, key: Key) -> Option<Slot> {
        let entry = self
            .0
            .get_mut(key.index)
            .filter(|e| e.generation == key.generation)?;
        let slot = entry.slot.take()?;
        entry.generation = entry.generation.wrapping_add(1);
        Some(slot)
    }

    fn iter(&self) -> impl Iterator<Item = &Slot> {
        self.0.iter().filter_map(|e| e.slot.as_ref())
    }
}

/// The host kernel's stack behind the [`Stack`] trait: the "std" side of a comparison.
pub struct KernelStack {
    udp: Slots,
    tcp: Slots,
    listeners: Slots,
    /// Reused by [`wait`](Self::wait), so waiting does not allocate once warmed up.
    waiter: Waiter,
    /// Where [`Stack::tcp_recv_with`] reads to (up to [`SCRATCH`] bytes).
    scratch: Vec<u8>,
}

/// Most bytes one [`Stack::tcp_recv_with`] on the kernel's stack reads.
const SCRATCH: usize = 64 * 1024;

impl Default for KernelStack {
    fn default() -> Self {
        Self::new()
    }
}

/// The `drops` column of the /proc/net/udp line of the socket with inode `inode`.
fn proc_udp_drops(table: &str, inode: u64) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(9)?.parse::<u64>().ok()? != inode {
            return None;
        }
        fields.get(12)?.parse().ok()
    })
}

/// Maps an operating-system error to the socket layer's [`Error`].
pub fn map_error(error: &io::Error) -> Error {
    if error.kind() == io::ErrorKind::WouldBlock {
        return Error::WouldBlock;
    }
    match error.raw_os_error() {
        Some(libc::EINPROGRESS | libc::EALREADY | libc::EINTR) => Error::WouldBlock,
        Some(libc::ECONNREFUSED) => Error::ConnectionRefused,
        Some(libc::ECONNRESET | libc::EPIPE | libc::ECONNABORTED) => Error::ConnectionReset,
        Some(libc::ETIMEDOUT) => Error::TimedOut,
        Some(libc::ENOTCONN) => Error::NotConnected,
        Some(libc::EHOSTUNREACH | libc::ENETUNREACH | libc::EADDRNOTAVAIL | libc::EDESTADDRREQ) => {
            Error::Unaddressable
        }
        Some(libc::EACCES | libc::EPERM) => Error::PermissionDenied,
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => Error::NoFreeSocket,
        Some(errno) => Error::Os(errno),
        None => Error::Os(0),
    }
}

fn v4(address: &SockAddr) -> Option<SocketAddrV4> {
    match address.as_socket() {
        Some(SocketAddr::V4(v4)) => Some(v4),
        _ => None,
    }
}

fn any_port(port: u16) -> SockAddr {
    SockAddr::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port))
}

fn new_socket(kind: Type, protocol: Protocol) -> Result<Socket> {
    Socket::new(Domain::IPV4, kind.nonblocking().cloexec(), Some(protocol))
        .map_err(|e| map_error(&e))
}

/// `buf` as the "maybe uninitialised" slice socket2's receive calls write into.
fn as_uninit(buf: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and the callee only writes
    // initialised bytes into the slice, so it stays a valid `[u8]` for the caller.
    unsafe { &mut *(std::ptr::from_mut::<[u8]>(buf) as *mut [MaybeUninit<u8>]) }
}

impl KernelStack {
    /// An empty stack; sockets are made on demand.
    pub fn new() -> Self {
        Self {
            udp: Slots(Vec::new()),
            tcp: Slots(Vec::new()),
            listeners: Slots(Vec::new()),
            waiter: Waiter::new(),
            scratch: Vec::new(),
        }
    }

    /// Sleeps until an armed socket is ready, `input` (when given) is readable, or
    /// `timeout` passes (`None`: no limit). Returns whether `input` is readable.
    pub fn wait(&mut self, input: Option<RawFd>, timeout: Option<Duration>) -> io::Result<bool> {
        self.wait_or(input, None, timeout)
    }

    /// [`wait`](Self::wait), also woken when `also` (a signal's self-pipe) is readable.
    pub fn wait_or(
        &mut self,
        input: Option<RawFd>,
        also: Option<RawFd>,
        timeout: Option<Duration>,
    ) -> io::Result<bool> {
        self.waiter.clear();
        let armed = self
            .udp
            .iter()
            .chain(self.tcp.iter())
            .chain(self.listeners.iter());
        for slot in armed.filter(|s| s.interest.get() != 0) {
            self.waiter
                .add(slot.socket.as_raw_fd(), slot.interest.get());
        }
        if let Some(fd) = also {
            self.waiter.add(fd, READABLE);
        }
        let input = input.map(|fd| self.waiter.add(fd, READABLE));
        self.waiter.wait(timeout)?;
        // The armed sockets come first in the set, in the order they were added.
        let armed = self
            .udp
            .iter()
            .chain(self.tcp.iter())
            .chain(self.listeners.iter());
        let armed = armed.filter(|s| s.interest.get() != 0);
        for (slot, fired) in armed.zip(self.waiter.fired_all()) {
            if fired {
                // Disarmed: the program retries, and a new "would block" arms it again.
                slot.interest.set(0);
            }
        }
        Ok(input.is_some_and(|token| self.waiter.fired(token)))
    }
}

impl Stack for KernelStack {
    type Udp = KernelUdp;
    type Tcp = KernelTcp;
    type Listener = KernelListener;

    fn udp_open(&mut self) -> Result<KernelUdp> {
        let socket = new_socket(Type::DGRAM, Protocol::UDP)?;
        Ok(KernelUdp(self.udp.insert(Slot::new(socket, None))))
    }

    fn udp_bind(&mut self, socket: KernelUdp, port: u16) -> Result<()> {
        let slot = self.udp.get(socket.0)?;
        if port == 0 {
            return Err(Error::InvalidPort);
        }
        slot.socket
            .bind(&any_port(port))
            .map_err(|e| match map_error(&e) {
                Error::Os(libc::EADDRINUSE) => Error::AddrInUse { port },
                other => other,
            })
    }

    fn udp_local(&self, socket: KernelUdp) -> Option<SocketAddrV4> {
        let slot = self.udp.get(socket.0).ok()?;
        let local = v4(&slot.socket.local_addr().ok()?)?;
        (local.port() != 0).then_some(local)
    }

    /// 0 for a stale handle.
    fn udp_max_payload(&self, socket: KernelUdp) -> usize {
        self.udp.get(socket.0).map_or(0, |_| UDP_MAX_PAYLOAD)
    }

    fn udp_send_to(&mut self, socket: KernelUdp, data: &[u8], to: SocketAddrV4) -> Result<()> {
        let slot = self.udp.get(socket.0)?;
        if to.port() == 0 || to.ip().is_unspecified() {
            return Err(Error::Unaddressable);
        }
        if data.len() > UDP_MAX_PAYLOAD {
            return Err(Error::MessageTooLarge {
                len: data.len(),
                max: UDP_MAX_PAYLOAD,
            });
        }
        match slot
            .socket
            .send_to_with_flags(data, &SockAddr::from(to), libc::MSG_NOSIGNAL)
        {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => Err(Error::MessageTooLarge {
                len: data.len(),
                max: UDP_MAX_PAYLOAD,
            }),
            Err(e) => Err(slot.blocked(e, libc::POLLOUT)),
        }
    }

    fn udp_flushed(&self, _socket: KernelUdp) -> bool {
        // Once `sendto` returns the kernel owns the datagram (it waits for ARP itself).
        true
    }

    fn udp_recv_from(&mut self, socket: KernelUdp, buf: &mut [u8]) -> Result<Datagram> {
        let slot = self.udp.get(socket.0)?;
        // MSG_TRUNC: the return value is the datagram's real size, even when it was cut.
        match slot
            .socket
            .recv_from_with_flags(as_uninit(buf), libc::MSG_TRUNC)
        {
            Ok((size, from)) => {
                let from = v4(&from).ok_or(Error::Unaddressable)?;
                Ok(Datagram {
                    len: size.min(buf.len()),
                    size,
                    from,
                })
            }
            Err(e) => Err(slot.blocked(e, libc::POLLIN)),
        }
    }

    fn udp_losses(&self, socket: KernelUdp) -> UdpLosses {
        let Ok(slot) = self.udp.get(socket.0) else {
            return UdpLosses::default();
        };
        // The kernel counts a socket's drops (`sk_drops`, also what SO_RXQ_OVFL reports) in
        // the last column of /proc/net/udp, found by the socket's inode.
        let fd = slot.socket.as_raw_fd();
        let inode = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok();
        let inode = inode.as_ref().and_then(|target| {
            let target = target.to_str()?;
            target
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        });
        let table = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
        UdpLosses {
            buffer_full: inode.and_then(|i| proc_udp_drops(&table, i)).unwrap_or(0),
            // The kernel counts reassembly failures per namespace only (ReasmFails).
            incomplete: 0,
        }
    }

    fn udp_close(&mut self, socket: KernelUdp) {
        self.udp.remove(socket.0);
    }

    fn tcp_connect(&mut self, to: SocketAddrV4) -> Result<KernelTcp> {
        if to.port() == 0 || to.ip().is_unspecified() {
            return Err(Error::Unaddressable);
        }
        let socket = new_socket(Type::STREAM, Protocol::TCP)?;
        let phase = match socket.connect(&SockAddr::from(to)) {
            Ok(()) => Some(Phase::Open),
            Err(e) => match map_error(&e) {
                Error::WouldBlock => None,
                error => return Err(error),
            },
        };
        let slot = Slot::new(socket, phase);
        if phase.is_none() {
            slot.arm(libc::POLLOUT);
        }
        Ok(KernelTcp(self.tcp.insert(slot)))
    }

    fn tcp_phase(&self, socket: KernelTcp) -> Phase {
        let slot = match self.tcp.get(socket.0) {
            Ok(slot) => slot,
            Err(e) => return Phase::Failed(e),
        };
        if let Some(phase) = slot.phase.get() {
            return phase;
        }
        // The connect's outcome: SO_ERROR if it failed, a peer address once it is open.
        let phase = match slot.socket.take_error() {
            Ok(Some(e)) | Err(e) => Phase::Failed(map_error(&e)),
            Ok(None) => match slot.socket.peer_addr() {
                Ok(_) => Phase::Open,
                Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
                    slot.arm(libc::POLLOUT);
                    return Phase::Connecting;
                }
                Err(e) => Phase::Failed(map_error(&e)),
            },
        };
        slot.phase.set(Some(phase));
        phase
    }

    fn tcp_local(&self, socket: KernelTcp) -> Option<SocketAddrV4> {
        let slot = self.tcp.get(socket.0).ok()?;
        v4(&slot.socket.local_addr().ok()?)
    }

    fn tcp_peer(&self, socket: KernelTcp) -> Option<SocketAddrV4> {
        let slot = self.tcp.get(socket.0).ok()?;
        v4(&slot.socket.peer_addr().ok()?)
    }

    fn tcp_send(&mut self, socket: KernelTcp, data: &[u8]) -> Result<usize> {
        let slot = self.tcp.get(socket.0)?;
        if data.is_empty() {
            return Err(Error::WouldBlock);
        }
        match slot.socket.send_with_flags(data, libc::MSG_NOSIGNAL) {
            Ok(0) => {
                slot.arm(libc::POLLOUT);
                Err(Error::WouldBlock)
            }
            Ok(n) => Ok(n),
            Err(e) => Err(slot.blocked(e, libc::POLLOUT)),
        }
    }

    fn tcp_unacked(&self, socket: KernelTcp) -> usize {
        let Ok(slot) = self.tcp.get(socket.0) else {
            return 0;
        };
        let mut queued: libc::c_int = 0;
        // SAFETY: SIOCOUTQ writes one `int`: bytes not yet acknowledged by the peer.
        let rc = unsafe { libc::ioctl(slot.socket.as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
        if rc < 0 {
            0
        } else {
            usize::try_from(queued).unwrap_or(0)
        }
    }

    fn tcp_recv(&mut self, socket: KernelTcp, buf: &mut [u8]) -> Result<Recv> {
        let slot = self.tcp.get(socket.0)?;
        if buf.is_empty() {
            return Err(Error::WouldBlock);
        }
        match (&slot.socket).read(buf) {
            Ok(0) => Ok(Recv::Eof),
            Ok(n) => Ok(Recv::Data(n)),
            Err(e) => Err(slot.blocked(e, libc::POLLIN)),
        }
    }

    /// Reads into a buffer of the stack's own (the kernel keeps the bytes; there is no ring
    /// to look into), then shows them.
    fn tcp_recv_with(
        &mut self,
        socket: KernelTcp,
        max: usize,
        f: &mut dyn FnMut(&[u8]),
    ) -> Result<Recv> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let len = max.min(SCRATCH);
        scratch.resize(len, 0);
        let result = self.tcp_recv(socket, &mut scratch);
        if let Ok(Recv::Data(n)) = result {
            f(scratch.get(..n).unwrap_or_default());
        }
        self.scratch = scratch;
        result
    }

    fn tcp_shutdown(&mut self, socket: KernelTcp) {
        if let Ok(slot) = self.tcp.get(socket.0) {
            // Fails only when the connection is already gone, which the next recv reports.
            let _ = slot.socket.shutdown(Shutdown::Write);
        }
    }

    fn tcp_close(&mut self, socket: KernelTcp) {
        // close(2): the kernel sends what is queued, then a FIN (or a reset when unread
        // data is left: one of the differences `smolsock compare` shows).
        self.tcp.remove(socket.0);
    }

    fn tcp_abort(&mut self, socket: KernelTcp) {
        if let Some(slot) = self.tcp.remove(socket.0) {
            // SO_LINGER with a zero timeout turns close(2) into a reset.
            let _ = slot.socket.set_linger(Some(std::time::Duration::ZERO));
        }
    }

    /// `SO_KEEPALIVE` with `TCP_KEEPIDLE` = `TCP_KEEPINTVL` = the keep-alive interval and
    /// `TCP_KEEPCNT` = give-up / interval probes, and `TCP_USER_TIMEOUT` = give-up (which
    /// also bounds the keep-alive probes): the kernel then fails the connection with
    /// `ETIMEDOUT`, which the next call reports as [`Error::TimedOut`].
    fn tcp_set_timeouts(&mut self, socket: KernelTcp, timeouts: TcpTimeouts) {
        let Ok(slot) = self.tcp.get(socket.0) else {
            return;
        };
        let std_duration = |d: Duration| std::time::Duration::from_micros(d.total_micros());
        let keepalive = match timeouts.keepalive {
            Some(interval) => {
                let mut params = TcpKeepalive::new()
                    .with_time(std_duration(interval))
                    .with_interval(std_duration(interval));
                if let Some(give_up) = timeouts.give_up {
                    let probes = give_up.total_millis() / interval.total_millis().max(1);
                    params = params.with_retries(u32::try_from(probes.max(1)).unwrap_or(u32::MAX));
                }
                slot.socket.set_tcp_keepalive(&params)
            }
            None => slot.socket.set_keepalive(false),
        };
        let user_timeout = slot
            .socket
            .set_tcp_user_timeout(timeouts.give_up.map(std_duration));
        for result in [keepalive, user_timeout] {
            if let Err(e) = result {
                log::warn!("cannot set the connection's timeouts: {e}");
            }
        }
    }

    fn tcp_listen(&mut self, port: u16, backlog: usize) -> Result<KernelListener> {
        if port == 0 {
            return Err(Error::InvalidPort);
        }
        let socket = new_socket(Type::STREAM, Protocol::TCP)?;
        // As std's TcpListener does: a restarted server can listen again while its old
        // connections sit in TIME-WAIT.
        socket.set_reuse_address(true).map_err(|e| map_error(&e))?;
        socket
            .bind(&any_port(port))
            .map_err(|e| match e.raw_os_error() {
                Some(libc::EADDRINUSE) => Error::AddrInUse { port },
                _ => map_error(&e),
            })?;
        let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
        socket.listen(backlog).map_err(|e| map_error(&e))?;
        Ok(KernelListener(
            self.listeners.insert(Slot::new(socket, None)),
        ))
    }

    fn tcp_accept(&mut self, listener: KernelListener) -> Result<(KernelTcp, SocketAddrV4)> {
        let slot = self.listeners.get(listener.0)?;
        let (socket, peer) = slot
            .socket
            .accept()
            .map_err(|e| slot.blocked(e, libc::POLLIN))?;
        socket.set_nonblocking(true).map_err(|e| map_error(&e))?;
        let peer = v4(&peer).ok_or(Error::Unaddressable)?;
        let handle = self.tcp.insert(Slot::new(socket, Some(Phase::Open)));
        Ok((KernelTcp(handle), peer))
    }

    fn listener_close(&mut self, listener: KernelListener) {
        self.listeners.remove(listener.0);
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, UdpSocket};
    use std::time::Instant;

    use super::*;

    #[test]
    fn a_full_receive_buffer_drops_are_counted() {
        let mut stack = KernelStack::new();
        let socket = stack.udp_open().expect("udp socket");
        // A port the kernel just gave out and took back: free, and bound through the trait.
        let port = UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        stack.udp_bind(socket, port).expect("bind");
        let slot = stack.udp.get(socket.0).expect("slot");
        slot.socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let sender = UdpSocket::bind("127.0.0.1:0").expect("sender");
        for _ in 0..200 {
            sender
                .send_to(&[7u8; 1000], ("127.0.0.1", port))
                .expect("send");
        }
        let mut got = 0u64;
        let mut buf = [0u8; 2048];
        // Loopback delivers in the kernel's softirq, which on a loaded machine may run a
        // moment after the sends returned: read and count until every datagram is accounted
        // for, for at most 5 s.
        let limit = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut dropped;
        loop {
            while stack.udp_recv_from(socket, &mut buf).is_ok() {
                got += 1;
            }
            dropped = stack.udp_losses(socket).buffer_full;
            if got + dropped >= 200 || std::time::Instant::now() >= limit {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(dropped > 0, "nothing counted as dropped");
        assert_eq!(got + dropped, 200, "received {got}, dropped {dropped}");
    }

    #[test]
    fn proc_net_udp_drops_column() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
  123: 00000000:2382 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 17\n";
        assert_eq!(proc_udp_drops(table, 4242), Some(17));
        assert_eq!(proc_udp_drops(table, 1), None);
        assert_eq!(proc_udp_drops("garbage", 1), None);
    }

    #[test]
    fn errors_map_to_the_socket_layer() {
        let os = |errno| map_error(&io::Error::from_raw_os_error(errno));
        assert_eq!(os(libc::EAGAIN), Error::WouldBlock);
        assert_eq!(os(libc::EINPROGRESS), Error::WouldBlock);
        assert_eq!(os(libc::ECONNREFUSED), Error::ConnectionRefused);
        assert_eq!(os(libc::ECONNRESET), Error::ConnectionReset);
        assert_eq!(os(libc::EPIPE), Error::ConnectionReset);
        assert_eq!(os(libc::ETIMEDOUT), Error::TimedOut);
        assert_eq!(os(libc::EHOSTUNREACH), Error::Unaddressable);
        assert_eq!(os(libc::EACCES), Error::PermissionDenied);
        assert_eq!(os(libc::EMFILE), Error::NoFreeSocket);
        assert_eq!(os(libc::ENOSPC), Error::Os(libc::ENOSPC));
    }

    /// Polls `f` through the stack's wait until it gives something other than
    /// `WouldBlock`, for at most 5 s.
    fn until<T>(stack: &mut KernelStack, mut f: impl FnMut(&mut KernelStack) -> Result<T>) -> T {
        let start = Instant::now();
        loop {
            match f(stack) {
                Err(Error::WouldBlock) => {}
                Ok(value) => return value,
                Err(e) => panic!("unexpected error: {e}"),
            }
            assert!(start.elapsed().as_secs() < 5, "nothing happened in 5 s");
            stack
                .wait(None, Some(Duration::from_millis(100)))
                .expect("wait");
        }
    }

    #[test]
    fn tcp_client_over_loopback() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let SocketAddr::V4(at) = listener.local_addr().unwrap() else {
            unreachable!("bound to an IPv4 address")
        };
        let server = std::thread::spawn(move || {
            let (mut conn, from) = listener.accept().unwrap();
            let mut buf = [0u8; 5];
            conn.read_exact(&mut buf).unwrap();
            conn.write_all(&buf.map(|b| b.to_ascii_uppercase()))
                .unwrap();
            from
        });
        let mut stack = KernelStack::new();
        let socket = stack.tcp_connect(at).unwrap();
        until(&mut stack, |s| match s.tcp_phase(socket) {
            Phase::Connecting => Err(Error::WouldBlock),
            Phase::Open => Ok(()),
            Phase::Failed(e) => Err(e),
        });
        assert_eq!(stack.tcp_peer(socket), Some(at));
        assert_eq!(until(&mut stack, |s| s.tcp_send(socket, b"hello")), 5);
        let mut buf = [0u8; 16];
        let mut got = Vec::new();
        while let Recv::Data(n) = until(&mut stack, |s| s.tcp_recv(socket, &mut buf)) {
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"HELLO");
        let from = server.join().unwrap();
        assert_eq!(SocketAddr::V4(stack.tcp_local(socket).unwrap()), from);
        stack.tcp_close(socket);
        assert_eq!(stack.tcp_phase(socket), Phase::Failed(Error::StaleHandle));
    }

    /// An IPv4 address of a loopback listener that accepts and keeps its connections.
    fn loopback_listener() -> (TcpListener, SocketAddrV4) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let SocketAddr::V4(at) = listener.local_addr().unwrap() else {
            unreachable!("bound to an IPv4 address")
        };
        (listener, at)
    }

    fn open(stack: &mut KernelStack, at: SocketAddrV4) -> KernelTcp {
        let socket = stack.tcp_connect(at).unwrap();
        until(stack, |s| match s.tcp_phase(socket) {
            Phase::Connecting => Err(Error::WouldBlock),
            Phase::Open => Ok(()),
            Phase::Failed(e) => Err(e),
        });
        socket
    }

    #[test]
    fn a_stale_tcp_handle_never_reaches_the_next_connection() {
        let (listener, at) = loopback_listener();
        let mut stack = KernelStack::new();
        let old = open(&mut stack, at);
        let (_first, _) = listener.accept().unwrap();
        stack.tcp_close(old);
        let new = open(&mut stack, at);
        let (mut second, _) = listener.accept().unwrap();
        assert_ne!(old, new);
        assert_eq!(old.0.index, new.0.index, "the same index serves again");
        assert_eq!(stack.tcp_phase(old), Phase::Failed(Error::StaleHandle));
        assert_eq!(stack.tcp_send(old, b"x"), Err(Error::StaleHandle));
        assert_eq!(stack.tcp_recv(old, &mut [0u8; 8]), Err(Error::StaleHandle));
        assert_eq!(stack.tcp_local(old), None);
        assert_eq!(stack.tcp_peer(old), None);
        assert_eq!(stack.tcp_unacked(old), 0);
        stack.tcp_set_timeouts(old, TcpTimeouts::default());
        stack.tcp_shutdown(old);
        stack.tcp_close(old);
        stack.tcp_abort(old);
        // The new connection did not notice.
        assert_eq!(stack.tcp_phase(new), Phase::Open);
        assert_eq!(until(&mut stack, |s| s.tcp_send(new, b"mine")), 4);
        let mut buf = [0u8; 4];
        second.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"mine");
    }

    #[test]
    fn stale_udp_and_listener_handles_never_reach_the_next_socket() {
        let mut stack = KernelStack::new();
        let old = stack.udp_open().unwrap();
        stack.udp_close(old);
        let new = stack.udp_open().unwrap();
        assert_eq!(old.0.index, new.0.index, "the same index serves again");
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let SocketAddr::V4(to) = peer.local_addr().unwrap() else {
            unreachable!("bound to an IPv4 address")
        };
        assert_eq!(stack.udp_bind(old, to.port()), Err(Error::StaleHandle));
        assert_eq!(stack.udp_send_to(old, b"x", to), Err(Error::StaleHandle));
        assert_eq!(
            stack.udp_recv_from(old, &mut [0u8; 8]),
            Err(Error::StaleHandle)
        );
        assert_eq!(stack.udp_local(old), None);
        assert_eq!(stack.udp_max_payload(old), 0);
        assert!(stack.udp_flushed(old));
        stack.udp_close(old);
        stack.udp_send_to(new, b"mine", to).unwrap();
        assert!(stack.udp_local(new).is_some(), "the new socket is open");

        let (listener, _) = loopback_listener();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let old = stack.tcp_listen(port, 1).unwrap();
        stack.listener_close(old);
        let new = stack.tcp_listen(port, 1).unwrap();
        assert_eq!(stack.tcp_accept(old), Err(Error::StaleHandle));
        stack.listener_close(old);
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (_, peer) = until(&mut stack, |s| s.tcp_accept(new));
        assert_eq!(SocketAddr::V4(peer), client.local_addr().unwrap());
    }

    #[test]
    fn udp_binds_on_first_send_and_reports_the_real_size() {
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let SocketAddr::V4(at) = peer.local_addr().unwrap() else {
            unreachable!("bound to an IPv4 address")
        };
        let mut stack = KernelStack::new();
        let socket = stack.udp_open().unwrap();
        assert_eq!(
            stack.udp_local(socket),
            None,
            "unbound before the first send"
        );
        stack.udp_send_to(socket, b"ping", at).unwrap();
        let local = stack.udp_local(socket).expect("bound by the send");
        let mut buf = [0u8; 16];
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from.port()), (&b"ping"[..], local.port()));
        peer.send_to(&[7u8; 100], from).unwrap();
        let mut small = [0u8; 10];
        let datagram = until(&mut stack, |s| s.udp_recv_from(socket, &mut small));
        assert_eq!(
            (datagram.len, datagram.size),
            (10, 100),
            "cut, with its real size"
        );
        assert_eq!(
            stack.udp_send_to(socket, &vec![0; UDP_MAX_PAYLOAD + 1], at),
            Err(Error::MessageTooLarge {
                len: UDP_MAX_PAYLOAD + 1,
                max: UDP_MAX_PAYLOAD
            })
        );
    }
}
