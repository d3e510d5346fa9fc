//! [`SmolStack`]: the [`Stack`] socket layer on smoltcp, `no_std` and allocation-free.
//!
//! smoltcp gives one socket per connection and no `listen`/`accept`. This module adds what
//! BSD sockets have on top:
//! - a **pool** of TCP and UDP sockets created once from caller storage (a board keeps it in
//!   `static`s); connecting, listening and binding take sockets from the pool and closing
//!   gives them back once smoltcp is done with them;
//! - a **listener**: `backlog` pool sockets listen on one port; each completes a handshake on
//!   its own, `accept` hands out an established one and puts a fresh socket in its place
//!   (rules S5, S6, S12). Closing the listener leaves accepted connections alone (S7);
//! - **ephemeral ports** for clients and for UDP sockets that send before binding (S2, S10).
//!
//! A socket in TIME-WAIT still counts as closing; when the pool runs dry the oldest such
//! socket is reused, as `tcp_tw_reuse` lets Linux do.

mod ports;
mod storage;

use core::net::{Ipv4Addr, SocketAddrV4};

use heapless::Vec;
use smoltcp::iface::{
    Config, Interface, PollIngressSingleResult, PollResult, SocketHandle, SocketSet, SocketStorage,
};
use smoltcp::phy::{Device, Medium};
use smoltcp::socket::{Socket, tcp, udp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpEndpoint, IpListenEndpoint, Ipv4Cidr,
};

pub use ports::{EPHEMERAL_FIRST, EPHEMERAL_LAST, EphemeralPorts};
pub use storage::{TcpBuffers, UdpBuffers};

use crate::error::{Error, Result};
use crate::fmt::{debug, trace};
use crate::net::{Datagram, Phase, Recv, Stack};

/// How many listeners one stack can have at once.
pub const MAX_LISTENERS: usize = 2;

/// Size of the IPv4 and UDP headers in front of a datagram's payload.
const IPV4_UDP_HEADERS: usize = 20 + 8;
/// Size of an Ethernet II header.
const ETHERNET_HEADER: usize = 14;

/// Addresses of one smoltcp interface.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StackConfig {
    /// Ethernet address (ignored on an IP medium such as TUN). Must be unicast.
    pub mac: EthernetAddress,
    /// Address and prefix of the interface.
    pub ip: Ipv4Cidr,
    /// Default gateway, inside the interface's subnet.
    pub gateway: Option<Ipv4Addr>,
    /// Seed for TCP sequence numbers and ephemeral ports; use a different one each boot.
    pub seed: u64,
}

/// A UDP socket of a [`SmolStack`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct UdpHandle(SocketHandle);

/// A TCP connection of a [`SmolStack`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TcpHandle(SocketHandle);

/// A TCP listener of a [`SmolStack`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ListenerHandle(usize);

/// One TCP socket as an observer sees it (the demo prints these as state changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSnapshot {
    /// Which socket of the set.
    pub socket: SocketHandle,
    /// Its TCP state.
    pub state: tcp::State,
    /// Local endpoint, when it has one.
    pub local: Option<SocketAddrV4>,
    /// Remote endpoint, when it has one.
    pub remote: Option<SocketAddrV4>,
}

#[derive(Debug)]
struct Listener<const N: usize> {
    port: u16,
    backlog: usize,
    pool: Vec<SocketHandle, N>,
}

/// A smoltcp interface, its sockets, and the pools that make it a BSD-like [`Stack`].
///
/// `N` bounds the TCP sockets and, separately, the UDP sockets the stack manages.
pub struct SmolStack<'a, const N: usize = 16> {
    iface: Interface,
    sockets: SocketSet<'a>,
    capacity: usize,
    added: usize,
    cidr: Ipv4Cidr,
    gateway: Option<Ipv4Addr>,
    max_udp_payload: usize,
    tcp_free: Vec<SocketHandle, N>,
    tcp_closing: Vec<SocketHandle, N>,
    udp_free: Vec<SocketHandle, N>,
    listeners: [Option<Listener<N>>; MAX_LISTENERS],
    ports: EphemeralPorts,
}

fn v4(endpoint: IpEndpoint) -> Option<SocketAddrV4> {
    match endpoint.addr {
        IpAddress::Ipv4(ip) => Some(SocketAddrV4::new(ip, endpoint.port)),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

fn endpoint(addr: SocketAddrV4) -> IpEndpoint {
    IpEndpoint::new(IpAddress::Ipv4(*addr.ip()), addr.port())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Proto {
    Tcp,
    Udp,
}

fn port_in_use(sockets: &SocketSet<'_>, port: u16, proto: Proto) -> bool {
    sockets.iter().any(|(_, socket)| match (socket, proto) {
        (Socket::Tcp(s), Proto::Tcp) => {
            s.state() != tcp::State::Closed
                && (s.listen_endpoint().port == port
                    || s.local_endpoint().is_some_and(|e| e.port == port))
        }
        (Socket::Udp(s), Proto::Udp) => s.is_open() && s.endpoint().port == port,
        _ => false,
    })
}

fn usable_destination(ip: Ipv4Addr) -> bool {
    !(ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast())
}

impl<'a, const N: usize> SmolStack<'a, N> {
    /// Creates the interface on `device` with room for `storage.len()` sockets.
    ///
    /// Sockets are added afterwards with [`add_tcp`](Self::add_tcp) and
    /// [`add_udp`](Self::add_udp).
    pub fn new<D: Device + ?Sized>(
        config: StackConfig,
        device: &mut D,
        storage: &'a mut [SocketStorage<'a>],
        now: Instant,
    ) -> Result<Self> {
        let caps = device.capabilities();
        let (hardware, link_header) = match caps.medium {
            Medium::Ethernet => {
                if !config.mac.is_unicast() {
                    return Err(Error::InvalidConfig("the MAC address must be unicast"));
                }
                if config.mac == EthernetAddress([0; 6]) {
                    return Err(Error::InvalidConfig(
                        "the MAC address must not be 00:00:00:00:00:00",
                    ));
                }
                (HardwareAddress::Ethernet(config.mac), ETHERNET_HEADER)
            }
            Medium::Ip => (HardwareAddress::Ip, 0),
            #[allow(unreachable_patterns)]
            _ => {
                return Err(Error::InvalidConfig(
                    "the device's medium is not Ethernet or IP",
                ));
            }
        };
        let ip = config.ip.address();
        if !usable_destination(ip) || ip.is_loopback() {
            return Err(Error::InvalidConfig(
                "the interface address must be a unicast address",
            ));
        }
        // The first and last address of a prefix name the network and its broadcast; a /31
        // (RFC 3021) and a /32 have neither, so there every address is a host's.
        if config.ip.broadcast().is_some()
            && (ip == config.ip.network().address() || config.ip.broadcast() == Some(ip))
        {
            return Err(Error::InvalidConfig(
                "the interface address must not be its subnet's network or broadcast address",
            ));
        }
        if config.gateway == Some(ip) {
            return Err(Error::InvalidConfig(
                "the gateway must be another host than the interface itself",
            ));
        }
        if let Some(gateway) = config.gateway
            && !config.ip.contains_addr(&gateway)
        {
            return Err(Error::InvalidConfig(
                "the gateway must be inside the interface's subnet",
            ));
        }
        let max_udp_payload = caps
            .max_transmission_unit
            .saturating_sub(link_header + IPV4_UDP_HEADERS);
        if max_udp_payload == 0 {
            return Err(Error::InvalidConfig(
                "the device's MTU is too small for IPv4",
            ));
        }

        let mut iface_config = Config::new(hardware);
        iface_config.random_seed = config.seed;
        let mut iface = Interface::new(iface_config, device, now);
        let mut added = true;
        iface.update_ip_addrs(|addrs| added = addrs.push(IpCidr::Ipv4(config.ip)).is_ok());
        if !added {
            return Err(Error::InvalidConfig("no room for the interface address"));
        }
        if let Some(gateway) = config.gateway {
            iface
                .routes_mut()
                .add_default_ipv4_route(gateway)
                .map_err(|_| Error::InvalidConfig("no room for the default route"))?;
        }
        let capacity = storage.len();
        Ok(Self {
            iface,
            sockets: SocketSet::new(storage),
            capacity,
            added: 0,
            cidr: config.ip,
            gateway: config.gateway,
            max_udp_payload,
            tcp_free: Vec::new(),
            tcp_closing: Vec::new(),
            udp_free: Vec::new(),
            listeners: [const { None }; MAX_LISTENERS],
            ports: EphemeralPorts::new(config.seed ^ 0x005E_ED0F_5A0C),
        })
    }

    fn has_room(&self) -> bool {
        self.added < self.capacity
    }

    /// Adds a TCP socket with the given receive and transmit rings to the pool.
    pub fn add_tcp(&mut self, rx: &'a mut [u8], tx: &'a mut [u8]) -> Result<()> {
        if !self.has_room() || self.tcp_free.is_full() {
            return Err(Error::NoFreeSocket);
        }
        let handle = self.sockets.add(tcp::Socket::new(
            tcp::SocketBuffer::new(rx),
            tcp::SocketBuffer::new(tx),
        ));
        self.added += 1;
        self.tcp_free.push(handle).map_err(|_| Error::NoFreeSocket)
    }

    /// Adds a TCP socket whose rings live in `buffers`.
    pub fn add_tcp_buffers<const B: usize>(
        &mut self,
        buffers: &'a mut TcpBuffers<B>,
    ) -> Result<()> {
        self.add_tcp(&mut buffers.rx, &mut buffers.tx)
    }

    /// Adds a UDP socket with the given packet metadata rings and payload rings to the pool.
    pub fn add_udp(
        &mut self,
        rx_meta: &'a mut [udp::PacketMetadata],
        rx: &'a mut [u8],
        tx_meta: &'a mut [udp::PacketMetadata],
        tx: &'a mut [u8],
    ) -> Result<()> {
        if !self.has_room() || self.udp_free.is_full() {
            return Err(Error::NoFreeSocket);
        }
        let socket = udp::Socket::new(
            udp::PacketBuffer::new(rx_meta, rx),
            udp::PacketBuffer::new(tx_meta, tx),
        );
        let handle = self.sockets.add(socket);
        self.added += 1;
        self.udp_free.push(handle).map_err(|_| Error::NoFreeSocket)
    }

    /// Adds a UDP socket whose buffers live in `buffers`.
    pub fn add_udp_buffers<const B: usize, const M: usize>(
        &mut self,
        buffers: &'a mut UdpBuffers<B, M>,
    ) -> Result<()> {
        let UdpBuffers {
            rx,
            tx,
            rx_meta,
            tx_meta,
        } = buffers;
        self.add_udp(rx_meta, rx, tx_meta, tx)
    }

    /// Moves packets between the device and the sockets, then recycles closed sockets and
    /// refills listeners. Returns whether any socket may have changed.
    pub fn poll<D: Device + ?Sized>(&mut self, now: Instant, device: &mut D) -> bool {
        let changed = self.iface.poll(now, device, &mut self.sockets);
        self.maintain();
        changed == PollResult::SocketStateChanged
    }

    /// Takes in at most one received frame (after the stack's timers ran). Returns whether
    /// a frame was processed. A board with small socket buffers alternates this with its
    /// program's `poll`, so a burst of frames is not dropped before the program reads.
    pub fn poll_ingress_one<D: Device + ?Sized>(&mut self, now: Instant, device: &mut D) -> bool {
        self.iface.poll_maintenance(now);
        let result = self
            .iface
            .poll_ingress_single(now, device, &mut self.sockets);
        self.maintain();
        result != PollIngressSingleResult::None
    }

    /// Sends what the sockets have queued. Returns whether any socket may have changed.
    pub fn poll_egress<D: Device + ?Sized>(&mut self, now: Instant, device: &mut D) -> bool {
        let changed = self.iface.poll_egress(now, device, &mut self.sockets);
        self.maintain();
        changed == PollResult::SocketStateChanged
    }

    /// How long the stack may sleep before it must be polled again (`None`: until a packet
    /// arrives).
    pub fn poll_delay(&mut self, now: Instant) -> Option<Duration> {
        self.iface.poll_delay(now, &self.sockets)
    }

    /// Whether nothing is left to send: every TCP socket is closed, listening or in
    /// TIME-WAIT, and every UDP socket has sent what was queued. A driver keeps polling
    /// after its program finished until this holds, so the last FIN or datagram leaves.
    pub fn is_idle(&self) -> bool {
        self.sockets.iter().all(|(_, socket)| match socket {
            Socket::Tcp(s) => matches!(
                s.state(),
                tcp::State::Closed | tcp::State::Listen | tcp::State::TimeWait
            ),
            Socket::Udp(s) => s.send_queue() == 0,
            #[allow(unreachable_patterns)]
            _ => true,
        })
    }

    /// Every TCP socket that is not closed, for observers.
    pub fn tcp_snapshots(&self) -> impl Iterator<Item = TcpSnapshot> + '_ {
        self.sockets
            .iter()
            .filter_map(|(handle, socket)| match socket {
                Socket::Tcp(s) => Some(TcpSnapshot {
                    socket: handle,
                    state: s.state(),
                    local: s.local_endpoint().and_then(v4),
                    remote: s.remote_endpoint().and_then(v4),
                }),
                #[allow(unreachable_patterns)]
                _ => None,
            })
    }

    fn tcp(&self, handle: SocketHandle) -> &tcp::Socket<'a> {
        self.sockets.get::<tcp::Socket>(handle)
    }

    /// Turns TCP keep-alive on (a probe after `interval` without traffic, and every
    /// `interval` after that) or off (`None`, smoltcp's default).
    pub fn tcp_set_keepalive(&mut self, socket: TcpHandle, interval: Option<Duration>) {
        self.tcp_mut(socket.0).set_keep_alive(interval);
    }

    fn tcp_mut(&mut self, handle: SocketHandle) -> &mut tcp::Socket<'a> {
        self.sockets.get_mut::<tcp::Socket>(handle)
    }

    fn udp(&self, handle: SocketHandle) -> &udp::Socket<'a> {
        self.sockets.get::<udp::Socket>(handle)
    }

    fn udp_mut(&mut self, handle: SocketHandle) -> &mut udp::Socket<'a> {
        self.sockets.get_mut::<udp::Socket>(handle)
    }

    fn routable(&self, ip: Ipv4Addr) -> bool {
        usable_destination(ip) && (self.cidr.contains_addr(&ip) || self.gateway.is_some())
    }

    /// Takes a TCP socket from the pool, reusing one in TIME-WAIT when none is free.
    fn take_tcp(&mut self) -> Option<SocketHandle> {
        if let Some(handle) = self.tcp_free.pop() {
            return Some(handle);
        }
        let sockets = &self.sockets;
        let pos = self
            .tcp_closing
            .iter()
            .position(|&h| sockets.get::<tcp::Socket>(h).state() == tcp::State::TimeWait)?;
        let handle = self.tcp_closing.swap_remove(pos);
        debug!("reusing a socket in TIME-WAIT");
        self.tcp_mut(handle).abort();
        Some(handle)
    }

    fn give_back_tcp(&mut self, handle: SocketHandle) {
        if !self.tcp_closing.contains(&handle) && !self.tcp_free.contains(&handle) {
            // Cannot overflow: both lists together never hold more than the N sockets added.
            let _ = self.tcp_closing.push(handle);
        }
    }

    fn maintain(&mut self) {
        let sockets = &self.sockets;
        let free = &mut self.tcp_free;
        self.tcp_closing.retain(|&h| {
            if sockets.get::<tcp::Socket>(h).state() == tcp::State::Closed {
                // Cannot overflow, see `give_back_tcp`.
                let _ = free.push(h);
                false
            } else {
                true
            }
        });
        for slot in 0..MAX_LISTENERS {
            self.refill_listener(slot);
        }
    }

    fn refill_listener(&mut self, slot: usize) {
        let Some(Some(listener)) = self.listeners.get_mut(slot) else {
            return;
        };
        let (port, backlog) = (listener.port, listener.backlog);
        for &handle in listener.pool.iter() {
            let socket = self.sockets.get_mut::<tcp::Socket>(handle);
            if socket.state() == tcp::State::Closed {
                // A handshake that was reset: listen again.
                let _ = socket.listen(port);
            }
        }
        while self.listener_len(slot) < backlog {
            let Some(handle) = self.take_tcp() else {
                break;
            };
            if self.tcp_mut(handle).listen(port).is_err() {
                let _ = self.tcp_free.push(handle);
                break;
            }
            if let Some(Some(listener)) = self.listeners.get_mut(slot) {
                let _ = listener.pool.push(handle);
            }
        }
    }

    fn listener_len(&self, slot: usize) -> usize {
        match self.listeners.get(slot) {
            Some(Some(listener)) => listener.pool.len(),
            _ => 0,
        }
    }

    fn bind_udp(&mut self, handle: SocketHandle, port: u16) -> Result<u16> {
        let port = if port == 0 {
            let sockets = &self.sockets;
            self.ports
                .allocate(|p| port_in_use(sockets, p, Proto::Udp))
                .ok_or(Error::NoEphemeralPort)?
        } else if port_in_use(&self.sockets, port, Proto::Udp) {
            return Err(Error::AddrInUse { port });
        } else {
            port
        };
        self.udp_mut(handle)
            .bind(IpListenEndpoint { addr: None, port })
            .map_err(|_| Error::InvalidPort)?;
        Ok(port)
    }
}

impl<'a, const N: usize> Stack for SmolStack<'a, N> {
    type Udp = UdpHandle;
    type Tcp = TcpHandle;
    type Listener = ListenerHandle;

    fn udp_open(&mut self) -> Result<UdpHandle> {
        self.udp_free
            .pop()
            .map(UdpHandle)
            .ok_or(Error::NoFreeSocket)
    }

    fn udp_bind(&mut self, socket: UdpHandle, port: u16) -> Result<()> {
        if self.udp(socket.0).is_open() {
            return Err(Error::InvalidConfig("the UDP socket is already bound"));
        }
        self.bind_udp(socket.0, port).map(|_| ())
    }

    fn udp_local(&self, socket: UdpHandle) -> Option<SocketAddrV4> {
        let s = self.udp(socket.0);
        if !s.is_open() {
            return None;
        }
        let endpoint = s.endpoint();
        let ip = match endpoint.addr {
            Some(IpAddress::Ipv4(ip)) => ip,
            _ => Ipv4Addr::UNSPECIFIED,
        };
        Some(SocketAddrV4::new(ip, endpoint.port))
    }

    fn udp_max_payload(&self, socket: UdpHandle) -> usize {
        self.max_udp_payload
            .min(self.udp(socket.0).payload_send_capacity())
    }

    fn udp_send_to(&mut self, socket: UdpHandle, data: &[u8], to: SocketAddrV4) -> Result<()> {
        let max = self.udp_max_payload(socket);
        if data.len() > max {
            return Err(Error::MessageTooLarge {
                len: data.len(),
                max,
            });
        }
        if to.port() == 0 || !self.routable(*to.ip()) {
            return Err(Error::Unaddressable);
        }
        if !self.udp(socket.0).is_open() {
            let port = self.bind_udp(socket.0, 0)?;
            debug!("udp: first send auto-bound port {}", port);
        }
        match self.udp_mut(socket.0).send_slice(data, endpoint(to)) {
            Ok(()) => Ok(()),
            Err(udp::SendError::BufferFull) => Err(Error::WouldBlock),
            Err(udp::SendError::Unaddressable) => Err(Error::Unaddressable),
        }
    }

    fn udp_flushed(&self, socket: UdpHandle) -> bool {
        self.udp(socket.0).send_queue() == 0
    }

    fn udp_recv_from(&mut self, socket: UdpHandle, buf: &mut [u8]) -> Result<Datagram> {
        let (payload, meta) = self
            .udp_mut(socket.0)
            .recv()
            .map_err(|_| Error::WouldBlock)?;
        let Some(from) = v4(meta.endpoint) else {
            return Err(Error::WouldBlock);
        };
        let len = payload.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..len), payload.get(..len)) {
            dst.copy_from_slice(src);
        }
        Ok(Datagram {
            len,
            size: payload.len(),
            from,
        })
    }

    fn udp_close(&mut self, socket: UdpHandle) {
        self.udp_mut(socket.0).close();
        if !self.udp_free.contains(&socket.0) {
            let _ = self.udp_free.push(socket.0);
        }
    }

    fn tcp_connect(&mut self, to: SocketAddrV4) -> Result<TcpHandle> {
        if to.port() == 0 || !self.routable(*to.ip()) {
            return Err(Error::Unaddressable);
        }
        let handle = self.take_tcp().ok_or(Error::NoFreeSocket)?;
        let sockets = &self.sockets;
        let Some(port) = self.ports.allocate(|p| port_in_use(sockets, p, Proto::Tcp)) else {
            let _ = self.tcp_free.push(handle);
            return Err(Error::NoEphemeralPort);
        };
        let cx = self.iface.context();
        let result = self
            .sockets
            .get_mut::<tcp::Socket>(handle)
            .connect(cx, endpoint(to), port);
        match result {
            Ok(()) => {
                trace!("tcp: connecting from port {}", port);
                Ok(TcpHandle(handle))
            }
            Err(_) => {
                let _ = self.tcp_free.push(handle);
                Err(Error::Unaddressable)
            }
        }
    }

    fn tcp_phase(&self, socket: TcpHandle) -> Phase {
        match self.tcp(socket.0).state() {
            tcp::State::SynSent | tcp::State::SynReceived | tcp::State::Listen => Phase::Connecting,
            tcp::State::Closed => Phase::Failed(Error::ConnectionReset),
            _ => Phase::Open,
        }
    }

    fn tcp_local(&self, socket: TcpHandle) -> Option<SocketAddrV4> {
        self.tcp(socket.0).local_endpoint().and_then(v4)
    }

    fn tcp_peer(&self, socket: TcpHandle) -> Option<SocketAddrV4> {
        self.tcp(socket.0).remote_endpoint().and_then(v4)
    }

    fn tcp_send(&mut self, socket: TcpHandle, data: &[u8]) -> Result<usize> {
        let s = self.tcp_mut(socket.0);
        match s.send_slice(data) {
            Ok(0) if !data.is_empty() => Err(Error::WouldBlock),
            Ok(n) => Ok(n),
            Err(_) if s.state() == tcp::State::Closed => Err(Error::ConnectionReset),
            Err(_) => Err(Error::NotConnected),
        }
    }

    fn tcp_unacked(&self, socket: TcpHandle) -> usize {
        self.tcp(socket.0).send_queue()
    }

    fn tcp_recv(&mut self, socket: TcpHandle, buf: &mut [u8]) -> Result<Recv> {
        let s = self.tcp_mut(socket.0);
        match s.recv_slice(buf) {
            Ok(0) => Err(Error::WouldBlock),
            Ok(n) => Ok(Recv::Data(n)),
            Err(tcp::RecvError::Finished) => Ok(Recv::Eof),
            Err(tcp::RecvError::InvalidState) if s.state() == tcp::State::Closed => {
                Err(Error::ConnectionReset)
            }
            Err(tcp::RecvError::InvalidState) => Err(Error::NotConnected),
        }
    }

    fn tcp_shutdown(&mut self, socket: TcpHandle) {
        self.tcp_mut(socket.0).close();
    }

    fn tcp_close(&mut self, socket: TcpHandle) {
        self.tcp_mut(socket.0).close();
        self.give_back_tcp(socket.0);
    }

    fn tcp_abort(&mut self, socket: TcpHandle) {
        self.tcp_mut(socket.0).abort();
        self.give_back_tcp(socket.0);
    }

    fn tcp_listen(&mut self, port: u16, backlog: usize) -> Result<ListenerHandle> {
        if port == 0 {
            return Err(Error::InvalidPort);
        }
        if backlog == 0 || backlog > N {
            return Err(Error::InvalidConfig(
                "the backlog must be between 1 and the pool size",
            ));
        }
        if port_in_use(&self.sockets, port, Proto::Tcp) {
            return Err(Error::AddrInUse { port });
        }
        let slot = self
            .listeners
            .iter()
            .position(Option::is_none)
            .ok_or(Error::NoFreeListener)?;
        let available = self.tcp_free.len()
            + self
                .tcp_closing
                .iter()
                .filter(|&&h| self.tcp(h).state() == tcp::State::TimeWait)
                .count();
        if available < backlog {
            return Err(Error::NoFreeSocket);
        }
        if let Some(entry) = self.listeners.get_mut(slot) {
            *entry = Some(Listener {
                port,
                backlog,
                pool: Vec::new(),
            });
        }
        self.refill_listener(slot);
        debug!("tcp: listening on port {} with backlog {}", port, backlog);
        Ok(ListenerHandle(slot))
    }

    fn tcp_accept(&mut self, listener: ListenerHandle) -> Result<(TcpHandle, SocketAddrV4)> {
        let Some(Some(slot)) = self.listeners.get_mut(listener.0) else {
            return Err(Error::NotConnected);
        };
        let sockets = &self.sockets;
        let pos = slot.pool.iter().position(|&h| {
            !matches!(
                sockets.get::<tcp::Socket>(h).state(),
                tcp::State::Listen | tcp::State::SynReceived | tcp::State::Closed
            )
        });
        let Some(pos) = pos else {
            return Err(Error::WouldBlock);
        };
        let handle = slot.pool.swap_remove(pos);
        self.refill_listener(listener.0);
        match self.tcp(handle).remote_endpoint().and_then(v4) {
            Some(peer) => Ok((TcpHandle(handle), peer)),
            None => {
                // Cannot happen for a synchronized socket; treat it as a reset connection.
                self.give_back_tcp(handle);
                Err(Error::WouldBlock)
            }
        }
    }

    fn listener_close(&mut self, listener: ListenerHandle) {
        let Some(entry) = self.listeners.get_mut(listener.0) else {
            return;
        };
        let Some(slot) = entry.take() else {
            return;
        };
        for handle in slot.pool {
            // A socket still listening closes quietly; a connection that was never accepted
            // gets a reset, as Linux does for its accept queue.
            self.tcp_mut(handle).abort();
            self.give_back_tcp(handle);
        }
    }
}
