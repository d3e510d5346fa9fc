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
//! - **ephemeral ports** for clients and for UDP sockets that send before binding (S2, S10);
//! - **handles with a generation**: a handle names a pool slot and the generation it was
//!   handed out in, so one kept after its close is [`Error::StaleHandle`], never the
//!   connection that reuses the socket;
//! - **why a connection ended**: refused (a reset answered the SYN), reset, or timed out
//!   (smoltcp's give-up), each its own error in [`Stack::tcp_phase`], `tcp_recv` and
//!   `tcp_send`, as the kernel's `ECONNREFUSED`, `ECONNRESET` and `ETIMEDOUT`.
//!
//! A socket in TIME-WAIT still counts as closing; when the pool runs dry the oldest such
//! socket is reused, as `tcp_tw_reuse` lets Linux do, and failing that the oldest socket
//! still closing (a FIN to a peer that vanished), as Linux kills orphaned sockets under
//! pressure. A closed connection gets [`CLOSE_GIVE_UP`] to finish its close.
//!
//! ## What the layer guards against
//! Every frame passes an ingress gate (`gate.rs`) before smoltcp sees it:
//! - a SYN carrying a live or half-open connection's address/port pair never reaches a
//!   listening socket (RFC 5961): it is dropped, so a forged SYN cannot reset a connection;
//! - a SYN for a listener with no socket free takes the place of the oldest half-open
//!   connection, or, when every socket holds an established connection not yet accepted,
//!   is dropped so that the client retries (or reset, with [`WhenFull::Reset`]);
//! - half-open connections expire after [`ListenPolicy::syn_timeout`], silently;
//! - a UDP datagram that a full socket buffer cannot take is counted, and so is a
//!   fragmented one whose fragments never all arrive ([`Stack::udp_losses`]).
//!
//! What the gate did is counted in [`GateCounters`].

mod fragments;
mod gate;
mod listener;
mod ports;
mod storage;

use core::net::{Ipv4Addr, SocketAddrV4};

use heapless::Vec;
use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet, SocketStorage};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken};
use smoltcp::socket::{Socket, tcp, udp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpEndpoint, IpListenEndpoint, Ipv4Cidr,
};

pub use listener::{DEFAULT_SYN_TIMEOUT, ListenPolicy, WhenFull};
/// What socket storage and buffers are given as: borrowed (`&mut [T]`, a board's statics)
/// or, with an allocator, owned (`Vec<T>`), as smoltcp takes them.
pub use managed::ManagedSlice;
pub use ports::{EPHEMERAL_FIRST, EPHEMERAL_LAST, EphemeralPorts};
pub use storage::{TcpBuffers, UdpBuffers};

use crate::error::{Error, Result};
use crate::fmt::{debug, trace};
use crate::net::{Datagram, Phase, Recv, Stack, UdpLosses};
use gate::{Inbound, OneFrame};
use listener::{Listener, Member};

/// How many listeners one stack can have at once.
pub const MAX_LISTENERS: usize = 2;

/// How long the fragments of an incomplete IPv4 datagram are kept (with the `fragmentation`
/// feature) before they are dropped, and the datagram reported lost. smoltcp keeps them
/// 60 s, Linux 30 s (`ipfrag_time`); a device with a few reassembly buffers cannot let one
/// lost fragment block it that long. (Without the feature smoltcp drops every fragment,
/// and each fragmented datagram is reported lost after this time.)
pub const REASSEMBLY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a connection the program has closed may take to finish closing (FIN sent and
/// acknowledged, the peer's FIN received) while the peer stays silent, before its socket
/// is dropped. Linux's `tcp_fin_timeout` is 60 s too.
pub const CLOSE_GIVE_UP: Duration = Duration::from_secs(60);

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

/// A UDP socket of a [`SmolStack`]: a pool slot and the generation it was handed out in.
/// Once closed, the handle is stale: calls with it fail with [`Error::StaleHandle`], even
/// after the slot's socket was handed out again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct UdpHandle {
    slot: usize,
    generation: u32,
}

/// A TCP connection of a [`SmolStack`]: a pool slot and the generation it was handed out
/// in (see [`UdpHandle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TcpHandle {
    slot: usize,
    generation: u32,
}

/// A TCP listener of a [`SmolStack`]: a listener slot and the generation it was opened in
/// (see [`UdpHandle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ListenerHandle {
    slot: usize,
    generation: u32,
}

/// `to_raw`/`from_raw` for a handle type: the slot in the high 32 bits, the generation in
/// the low 32.
macro_rules! raw_handle {
    ($($handle:ident),*) => {$(
        impl $handle {
            /// The handle as one number, to carry it over a link (a remote stack's protocol).
            pub const fn to_raw(self) -> u64 {
                ((self.slot as u64) << 32) | self.generation as u64
            }

            /// The handle a number from [`to_raw`](Self::to_raw) stands for. Any number is
            /// safe to pass: one the stack never handed out reaches no socket, as a stale
            /// handle does.
            pub const fn from_raw(raw: u64) -> Self {
                Self {
                    slot: (raw >> 32) as usize,
                    generation: raw as u32,
                }
            }
        }
    )*};
}
raw_handle!(UdpHandle, TcpHandle, ListenerHandle);

/// One TCP socket of the pool: which smoltcp socket, the generation of the handles that
/// reach it, and how its last connection ended.
#[derive(Debug, Clone, Copy)]
struct TcpSlot {
    socket: SocketHandle,
    /// Bumped each time the socket is handed out and each time it is given back.
    generation: u32,
    /// Its state at the last look (after every frame and every egress).
    last: tcp::State,
    /// Why the connection closed without the program closing it: refused or reset (a
    /// segment of the peer's, seen by the gate), timed out (smoltcp's give-up), or not
    /// connected (shut down before it opened). `None` while it is not closed, and when it
    /// closed in order (both FINs).
    ended: Option<Error>,
}

/// One UDP socket of the pool.
#[derive(Debug, Clone, Copy)]
struct UdpSlot {
    socket: SocketHandle,
    /// Bumped each time the socket is handed out and each time it is closed.
    generation: u32,
    /// Datagrams lost since it was opened.
    losses: UdpLosses,
}

/// A connection that closed on its own (no reset seen) closed in order from these states;
/// from any other, smoltcp's give-up timed it out.
fn closes_in_order(state: tcp::State) -> bool {
    matches!(state, tcp::State::TimeWait | tcp::State::LastAck)
}

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

/// What the ingress gate and the pool did, since the stack was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct GateCounters {
    /// SYNs dropped because every socket of their listener held an established connection
    /// not yet accepted ([`WhenFull::Drop`]).
    pub syn_dropped_full: u32,
    /// SYNs dropped because they carried a live or half-open connection's address/port pair.
    pub syn_dropped_live: u32,
    /// Times a free socket of the pool joined a listener whose sockets were all half-open.
    pub half_open_borrowed: u32,
    /// Half-open connections dropped to make room for a new SYN (no free socket was left).
    pub half_open_evicted: u32,
    /// Half-open connections dropped after [`ListenPolicy::syn_timeout`].
    pub half_open_expired: u32,
    /// Closing sockets (TIME-WAIT, or a FIN unanswered) reused because the pool ran dry.
    pub closing_reclaimed: u32,
    /// UDP datagrams dropped because the socket's receive buffer was full.
    pub udp_dropped: u32,
    /// Fragmented UDP datagrams given up before all their fragments arrived.
    pub fragments_lost: u32,
}

/// What the gate watches of one frame while smoltcp processes it.
#[derive(Default)]
struct Watch {
    /// A reset for this connection, in this state before it came.
    reset: Option<(SocketHandle, tcp::State)>,
    /// A datagram (or the fragment of one) for this UDP socket...
    udp: Option<SocketHandle>,
    /// ...whose receive queue held this many bytes before.
    queued: Option<usize>,
    /// The fragmented datagram (sender, identification) the frame belongs to.
    fragment: Option<(Ipv4Addr, u16)>,
}

/// A smoltcp interface, its sockets, and the pools that make it a BSD-like [`Stack`].
///
/// `N` bounds the TCP sockets and, separately, the UDP sockets the stack manages.
pub struct SmolStack<'a, const N: usize = 16> {
    iface: Interface,
    sockets: SocketSet<'a>,
    caps: DeviceCapabilities,
    policy: ListenPolicy,
    counters: GateCounters,
    tcp_slots: Vec<TcpSlot, N>,
    udp_slots: Vec<UdpSlot, N>,
    listener_generations: [u32; MAX_LISTENERS],
    reassembly: fragments::Reassembly,
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

/// The smoltcp interface's configuration for `config` on `device`, after checking
/// `config`; with the device's capabilities and the largest UDP payload one frame carries.
fn checked<D: Device + ?Sized>(
    config: &StackConfig,
    device: &mut D,
) -> Result<(Config, DeviceCapabilities, usize)> {
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
        #[cfg(feature = "medium-ip")]
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
    Ok((iface_config, caps, max_udp_payload))
}

/// Gives a fresh interface `config`'s address and gateway. Cannot fail on a fresh interface
/// (smoltcp has room for at least one address and one route), but says so if it did.
fn configure(iface: &mut Interface, config: &StackConfig) -> Result<()> {
    #[cfg(feature = "fragmentation")]
    iface.set_reassembly_timeout(REASSEMBLY_TIMEOUT);
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
    Ok(())
}

impl<'a, const N: usize> SmolStack<'a, N> {
    /// Creates the interface on `device` with room for as many sockets as `storage` has
    /// entries: a borrowed slice (`&mut [SocketStorage]`, a board's static) or, with an
    /// allocator, an owned `Vec` of [`SocketStorage::EMPTY`].
    ///
    /// Sockets are added afterwards with [`add_tcp`](Self::add_tcp) and
    /// [`add_udp`](Self::add_udp).
    pub fn new<D: Device + ?Sized>(
        config: StackConfig,
        device: &mut D,
        storage: impl Into<ManagedSlice<'a, SocketStorage<'a>>>,
        now: Instant,
    ) -> Result<Self> {
        let storage = storage.into();
        let (iface_config, caps, max_udp_payload) = checked(&config, device)?;
        let mut iface = Interface::new(iface_config, device, now);
        configure(&mut iface, &config)?;
        let capacity = storage.len();
        Ok(Self {
            iface,
            sockets: SocketSet::new(storage),
            caps,
            policy: ListenPolicy::default(),
            counters: GateCounters::default(),
            tcp_slots: Vec::new(),
            udp_slots: Vec::new(),
            listener_generations: [0; MAX_LISTENERS],
            reassembly: fragments::Reassembly::default(),
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

    /// Adds a TCP socket with the given receive and transmit rings to the pool: borrowed
    /// slices (`&mut [u8]`, a board's statics) or, with an allocator, owned `Vec<u8>`s.
    pub fn add_tcp(
        &mut self,
        rx: impl Into<ManagedSlice<'a, u8>>,
        tx: impl Into<ManagedSlice<'a, u8>>,
    ) -> Result<()> {
        if !self.has_room() || self.tcp_slots.is_full() {
            return Err(Error::NoFreeSocket);
        }
        let socket = self.sockets.add(tcp::Socket::new(
            tcp::SocketBuffer::new(rx),
            tcp::SocketBuffer::new(tx),
        ));
        self.added += 1;
        let slot = TcpSlot {
            socket,
            generation: 0,
            last: tcp::State::Closed,
            ended: None,
        };
        // Cannot fail: both lists hold at most N sockets and `tcp_slots` had room.
        let _ = self.tcp_slots.push(slot);
        self.tcp_free.push(socket).map_err(|_| Error::NoFreeSocket)
    }

    /// Adds a TCP socket whose rings live in `buffers`.
    pub fn add_tcp_buffers<const B: usize>(
        &mut self,
        buffers: &'a mut TcpBuffers<B>,
    ) -> Result<()> {
        self.add_tcp(&mut buffers.rx[..], &mut buffers.tx[..])
    }

    /// Adds a UDP socket with the given packet metadata rings and payload rings to the pool:
    /// borrowed slices or, with an allocator, owned `Vec`s, as for [`add_tcp`](Self::add_tcp).
    pub fn add_udp(
        &mut self,
        rx_meta: impl Into<ManagedSlice<'a, udp::PacketMetadata>>,
        rx: impl Into<ManagedSlice<'a, u8>>,
        tx_meta: impl Into<ManagedSlice<'a, udp::PacketMetadata>>,
        tx: impl Into<ManagedSlice<'a, u8>>,
    ) -> Result<()> {
        if !self.has_room() || self.udp_slots.is_full() {
            return Err(Error::NoFreeSocket);
        }
        let socket = udp::Socket::new(
            udp::PacketBuffer::new(rx_meta, rx),
            udp::PacketBuffer::new(tx_meta, tx),
        );
        let socket = self.sockets.add(socket);
        self.added += 1;
        let slot = UdpSlot {
            socket,
            generation: 0,
            losses: UdpLosses::default(),
        };
        // Cannot fail: both lists hold at most N sockets and `udp_slots` had room.
        let _ = self.udp_slots.push(slot);
        self.udp_free.push(socket).map_err(|_| Error::NoFreeSocket)
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
        self.add_udp(&mut rx_meta[..], &mut rx[..], &mut tx_meta[..], &mut tx[..])
    }

    /// Sets the rules every listener follows (half-open timeout, what a SYN gets when the
    /// backlog is full). Applies to listeners made before and after.
    pub fn set_listen_policy(&mut self, policy: ListenPolicy) {
        self.policy = policy;
    }

    /// Makes this a fresh stack at `config`'s addresses, on the same socket pool: every
    /// connection is aborted (its peer gets a reset), every UDP socket and listener closed,
    /// every handle made stale, the listener rules, counters, neighbours and ephemeral
    /// ports start over. For a stack that outlives the sessions it serves (a board's remote
    /// firmware serves one host session after another); a configuration the stack cannot
    /// use is refused and the stack is left as it was.
    pub fn restart<D: Device + ?Sized>(
        &mut self,
        config: StackConfig,
        device: &mut D,
        now: Instant,
    ) -> Result<()> {
        let (iface_config, caps, max_udp_payload) = checked(&config, device)?;
        for slot in self.tcp_slots.iter_mut() {
            self.sockets.get_mut::<tcp::Socket>(slot.socket).abort();
            // An odd generation is a handle in the program's hands: make it stale.
            if slot.generation % 2 == 1 {
                slot.generation = slot.generation.wrapping_add(1);
            }
            slot.last = tcp::State::Closed;
            slot.ended = None;
        }
        for slot in self.udp_slots.iter_mut() {
            self.sockets.get_mut::<udp::Socket>(slot.socket).close();
            if slot.generation % 2 == 1 {
                slot.generation = slot.generation.wrapping_add(1);
            }
            slot.losses = UdpLosses::default();
        }
        self.tcp_free.clear();
        self.tcp_closing.clear();
        for slot in self.tcp_slots.iter() {
            // Cannot fail: both hold at most N.
            let _ = self.tcp_free.push(slot.socket);
        }
        self.udp_free.clear();
        for slot in self.udp_slots.iter() {
            let _ = self.udp_free.push(slot.socket);
        }
        for (entry, generation) in self
            .listeners
            .iter_mut()
            .zip(&mut self.listener_generations)
        {
            if entry.take().is_some() {
                *generation = generation.wrapping_add(1);
            }
        }
        // The resets of the aborted connections leave through the old interface.
        self.iface.poll_egress(now, device, &mut self.sockets);
        // Built in its place rather than beside the old one and moved: with reassembly
        // buffers the interface is several KiB, which a board's call stack would need
        // once or twice more.
        self.iface = Interface::new(iface_config, device, now);
        configure(&mut self.iface, &config)?;
        self.caps = caps;
        self.max_udp_payload = max_udp_payload;
        self.cidr = config.ip;
        self.gateway = config.gateway;
        self.policy = ListenPolicy::default();
        self.counters = GateCounters::default();
        self.reassembly = fragments::Reassembly::default();
        self.ports = EphemeralPorts::new(config.seed ^ 0x005E_ED0F_5A0C);
        Ok(())
    }

    /// How many TCP and UDP sockets the pool holds.
    pub fn pool_sizes(&self) -> (usize, usize) {
        (self.tcp_slots.len(), self.udp_slots.len())
    }

    /// What the ingress gate and the pool did so far.
    pub fn counters(&self) -> GateCounters {
        self.counters
    }

    /// Moves every waiting frame in (each through the ingress gate) and everything queued
    /// out. Returns whether anything moved.
    pub fn poll<D: Device + ?Sized>(&mut self, now: Instant, device: &mut D) -> bool {
        let mut moved = false;
        while self.poll_ingress_one(now, device) {
            moved = true;
        }
        while self.poll_egress(now, device) {
            moved = true;
        }
        moved
    }

    /// Takes in at most one received frame (after the stack's timers ran), through the
    /// ingress gate. Returns whether a frame was taken. A board with small socket buffers
    /// alternates this with its program's `poll`, so a burst of frames is not dropped
    /// before the program reads.
    pub fn poll_ingress_one<D: Device + ?Sized>(&mut self, now: Instant, device: &mut D) -> bool {
        self.iface.poll_maintenance(now);
        let Some((rx, tx)) = device.receive(now) else {
            self.maintain(now);
            return false;
        };
        let meta = rx.meta();
        rx.consume(|frame| {
            let Some(watch) = self.before_ingress(gate::peek(self.caps.medium, frame), frame, now)
            else {
                return;
            };
            let mut one = OneFrame {
                frame: Some(frame),
                meta,
                tx: Some(tx),
                caps: self.caps.clone(),
            };
            self.iface
                .poll_ingress_single(now, &mut one, &mut self.sockets);
            self.after_ingress(watch, frame);
        });
        self.maintain(now);
        true
    }

    /// The gate, before smoltcp sees a frame: `None` drops it; otherwise what to look at
    /// once smoltcp has processed it.
    fn before_ingress(&mut self, inbound: Inbound, frame: &[u8], now: Instant) -> Option<Watch> {
        let own = self.cidr.address();
        let mut watch = Watch::default();
        match inbound {
            Inbound::Syn { remote, local } if !self.admit_syn(remote, local, frame) => {
                return None;
            }
            Inbound::Rst { remote, local } => {
                watch.reset = self.connection(remote, local.port());
            }
            Inbound::Udp { local, port, len } if len > 0 && local == own => {
                watch.udp = self.udp_bound_to(port);
            }
            Inbound::UdpFragment {
                src,
                local,
                ident,
                port,
            } if local == own => {
                if let Some((src, ident, socket)) = self.fragment_seen(src, ident, port, now) {
                    watch.fragment = Some((src, ident));
                    watch.udp = socket;
                }
            }
            _ => {}
        }
        watch.queued = watch.udp.map(|h| self.udp(h).recv_queue());
        Some(watch)
    }

    /// What a frame did, once smoltcp processed it: which reset closed a connection, and
    /// whether a datagram reached its socket (a fragment that completed one, or one a full
    /// buffer refused).
    fn after_ingress(&mut self, watch: Watch, frame: &[u8]) {
        if let Some((handle, before)) = watch.reset
            && self.tcp(handle).state() == tcp::State::Closed
            && let Some(slot) = self.tcp_slots.iter_mut().find(|s| s.socket == handle)
        {
            // A reset in answer to our SYN is a refusal: nobody listens there.
            slot.ended = Some(if before == tcp::State::SynSent {
                Error::ConnectionRefused
            } else {
                Error::ConnectionReset
            });
        }
        let (Some(handle), Some(before)) = (watch.udp, watch.queued) else {
            return;
        };
        let took = self.udp(handle).recv_queue() != before;
        match watch.fragment {
            Some((src, ident)) if took => self.reassembly.done(src, ident),
            Some(_) => {}
            None if !took && gate::udp_checksum_ok(self.caps.medium, frame) => {
                self.count_udp_loss(handle, false);
            }
            None => {}
        }
    }

    /// The ingress gate's rule for a SYN from `remote` to `local`: whether smoltcp may have
    /// it. It may make room first by dropping the listener's oldest half-open connection.
    fn admit_syn(&mut self, remote: SocketAddrV4, local: SocketAddrV4, frame: &[u8]) -> bool {
        if local.ip() != &self.cidr.address() {
            return true;
        }
        let Some(slot) = self
            .listeners
            .iter()
            .position(|l| l.as_ref().is_some_and(|l| l.port == local.port()))
        else {
            // Nobody listens: smoltcp resets, as Linux does for a closed port.
            return true;
        };
        let port = local.port();
        // A SYN for a connection that exists (live, half-open or closing) never reaches a
        // listening socket: RFC 5961 lets us drop it; a live connection stays unharmed.
        let existing = self.connection(remote, port);
        match existing {
            Some((handle, _))
                if self.tcp_closing.contains(&handle)
                    && gate::tcp_checksum_ok(self.caps.medium, frame) =>
            {
                // The program closed that connection (TIME-WAIT, or its FIN unanswered): a
                // new connection from the same pair, as after a client reboots, replaces it
                // (Linux accepts a SYN in TIME-WAIT, and answers one in FIN-WAIT with an ACK
                // whose reset from the peer clears the old connection).
                self.tcp_mut(handle).abort();
            }
            Some(_) => {
                trace!("gate: SYN for an existing connection dropped");
                self.counters.syn_dropped_live += 1;
                return false;
            }
            None => {}
        }
        let Some(Some(listener)) = self.listeners.get(slot) else {
            return true;
        };
        let sockets = &self.sockets;
        let listening = listener
            .pool
            .iter()
            .any(|m| sockets.get::<tcp::Socket>(m.handle).state() == tcp::State::Listen);
        if listening {
            return true;
        }
        let half_open = listener.oldest_half_open();
        if half_open.is_some() && self.borrow_for(slot, port) {
            // Room from the free pool first: a burst of SYNs (32 clients at once) must not
            // evict handshakes whose last ACK is already queued behind it.
            return true;
        }
        if let Some(oldest) = half_open {
            if !gate::tcp_checksum_ok(self.caps.medium, frame) {
                return false;
            }
            debug!("gate: every listening socket is half-open; the oldest gives way");
            self.relisten(oldest, port);
            self.counters.half_open_evicted += 1;
            return true;
        }
        match self.policy.when_full {
            WhenFull::Reset => true,
            WhenFull::Drop => {
                trace!("gate: backlog full, SYN dropped");
                self.counters.syn_dropped_full += 1;
                false
            }
        }
    }

    /// Adds a free socket of the pool to listener `slot`, listening on `port`, beyond its
    /// backlog: every socket it has is half-open. Returns whether it could. The extra
    /// socket goes back to the pool once the listener has more listening sockets than its
    /// backlog (see `refill_listener`).
    fn borrow_for(&mut self, slot: usize, port: u16) -> bool {
        let Some(handle) = self.tcp_free.pop() else {
            return false;
        };
        let handle = self.fresh(handle);
        let listening = self.tcp_mut(handle).listen(port).is_ok();
        let added = listening
            && match self.listeners.get_mut(slot) {
                Some(Some(listener)) => listener
                    .pool
                    .push(Member {
                        handle,
                        half_open_since: None,
                    })
                    .is_ok(),
                _ => false,
            };
        if !added {
            self.tcp_mut(handle).abort();
            // Cannot overflow: it was just taken from this list.
            let _ = self.tcp_free.push(handle);
            return false;
        }
        trace!("gate: every listening socket is half-open; a free one joins");
        self.counters.half_open_borrowed = self.counters.half_open_borrowed.saturating_add(1);
        true
    }

    /// The connection (not closed, not listening) between `remote` and our `port`, and its
    /// state.
    fn connection(&self, remote: SocketAddrV4, port: u16) -> Option<(SocketHandle, tcp::State)> {
        let remote = endpoint(remote);
        self.sockets
            .iter()
            .find_map(|(handle, socket)| match socket {
                Socket::Tcp(s)
                    if !matches!(s.state(), tcp::State::Closed | tcp::State::Listen)
                        && s.remote_endpoint() == Some(remote)
                        && s.local_endpoint().is_some_and(|e| e.port == port) =>
                {
                    Some((handle, s.state()))
                }
                _ => None,
            })
    }

    /// Drops a half-open connection silently (no reset: its peer may be forged) and lets
    /// its socket listen on `port` again.
    fn relisten(&mut self, handle: SocketHandle, port: u16) {
        self.tcp_mut(handle).abort();
        let renewed = self.fresh(handle);
        // `listen` resets the socket, so the abort's reset is never sent.
        let _ = self.tcp_mut(renewed).listen(port);
        for listener in self.listeners.iter_mut().flatten() {
            for member in listener.pool.iter_mut().filter(|m| m.handle == handle) {
                member.handle = renewed;
                member.half_open_since = None;
            }
        }
    }

    /// The UDP socket bound to `port`, if any.
    fn udp_bound_to(&self, port: u16) -> Option<SocketHandle> {
        self.sockets
            .iter()
            .find_map(|(handle, socket)| match socket {
                Socket::Udp(s) if s.is_open() && s.endpoint().port == port => Some(handle),
                _ => None,
            })
    }

    /// Counts one datagram lost for socket `handle` (and for the stack).
    fn count_udp_loss(&mut self, handle: SocketHandle, incomplete: bool) {
        let slot = self.udp_slots.iter_mut().find(|s| s.socket == handle);
        if incomplete {
            self.counters.fragments_lost = self.counters.fragments_lost.saturating_add(1);
        } else {
            self.counters.udp_dropped = self.counters.udp_dropped.saturating_add(1);
        }
        if let Some(slot) = slot {
            let losses = &mut slot.losses;
            if incomplete {
                losses.incomplete = losses.incomplete.saturating_add(1);
            } else {
                losses.buffer_full = losses.buffer_full.saturating_add(1);
            }
        }
    }

    /// Notes a fragment of datagram `ident` from `src` addressed to the stack. Returns the
    /// datagram's key and the socket it is for, when that socket is known and bound; `None`
    /// when it is not followed (it goes to a port nobody is bound to).
    fn fragment_seen(
        &mut self,
        src: Ipv4Addr,
        ident: u16,
        port: Option<u16>,
        now: Instant,
    ) -> Option<(Ipv4Addr, u16, Option<SocketHandle>)> {
        let given_up = self.reassembly.seen(src, ident, port, now);
        if let Some(lost) = given_up {
            self.fragments_lost(lost.port);
        }
        let port = self.reassembly.port_of(src, ident);
        let socket = match port {
            Some(port) => match self.udp_bound_to(port) {
                Some(socket) => Some(socket),
                None => {
                    // Nobody is bound there: smoltcp answers, it is no loss of ours.
                    self.reassembly.done(src, ident);
                    return None;
                }
            },
            None => None,
        };
        Some((src, ident, socket))
    }

    /// Counts a fragmented datagram given up, for the socket bound to `port` when known.
    fn fragments_lost(&mut self, port: Option<u16>) {
        match port.and_then(|p| self.udp_bound_to(p)) {
            Some(socket) => self.count_udp_loss(socket, true),
            None => {
                self.counters.fragments_lost = self.counters.fragments_lost.saturating_add(1);
            }
        }
    }

    /// Sends what the sockets have queued. Returns whether any socket may have changed.
    pub fn poll_egress<D: Device + ?Sized>(&mut self, now: Instant, device: &mut D) -> bool {
        let changed = self.iface.poll_egress(now, device, &mut self.sockets);
        self.maintain(now);
        changed == PollResult::SocketStateChanged
    }

    /// How long the stack may sleep before it must be polled again (`None`: until a packet
    /// arrives): smoltcp's own timers, and the expiry of the oldest half-open connection.
    pub fn poll_delay(&mut self, now: Instant) -> Option<Duration> {
        let timeout = self.policy.syn_timeout;
        let expiry = self
            .listeners
            .iter()
            .flatten()
            .filter_map(|l| l.next_expiry(timeout))
            .chain(self.reassembly.next_expiry(REASSEMBLY_TIMEOUT))
            .min()
            .map(|at| if at > now { at - now } else { Duration::ZERO });
        match (self.iface.poll_delay(now, &self.sockets), expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
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

    /// Takes a TCP socket from the pool. When none is free it reuses the oldest socket in
    /// TIME-WAIT, and failing that the oldest one still closing: a connection the program
    /// has closed must not keep a new one out because its peer vanished.
    fn take_tcp(&mut self) -> Option<SocketHandle> {
        if let Some(handle) = self.tcp_free.pop() {
            return Some(self.fresh(handle));
        }
        let sockets = &self.sockets;
        let pos = self
            .tcp_closing
            .iter()
            .position(|&h| sockets.get::<tcp::Socket>(h).state() == tcp::State::TimeWait)
            .or_else(|| (!self.tcp_closing.is_empty()).then_some(0))?;
        // `remove` keeps the rest in the order they closed, oldest first.
        let handle = self.tcp_closing.remove(pos);
        debug!("reusing a closing socket");
        self.counters.closing_reclaimed = self.counters.closing_reclaimed.saturating_add(1);
        self.tcp_mut(handle).abort();
        Some(self.fresh(handle))
    }

    /// Clears what a closed socket's last connection left behind: the give-up timeout and
    /// keep-alive (smoltcp's `reset` keeps them), and the interface's note that the socket
    /// waits for a neighbour, which would hold a new connection's first segment back for a
    /// second when the old peer never answered ARP (a spoofed SYN's, or a vanished peer's).
    /// The socket is taken out of the set and put back; its handle may change.
    fn fresh(&mut self, handle: SocketHandle) -> SocketHandle {
        let socket = self.tcp_mut(handle);
        socket.set_timeout(None);
        socket.set_keep_alive(None);
        let socket = self.sockets.remove(handle);
        let renewed = self.sockets.add(socket);
        if let Some(slot) = self.tcp_slots.iter_mut().find(|s| s.socket == handle) {
            slot.socket = renewed;
            slot.last = tcp::State::Closed;
            slot.ended = None;
        }
        renewed
    }

    /// A handle for the pool socket `socket`, which the program now holds.
    fn issue_tcp(&mut self, socket: SocketHandle) -> Result<TcpHandle> {
        let (slot, entry) = self
            .tcp_slots
            .iter_mut()
            .enumerate()
            .find(|(_, s)| s.socket == socket)
            .ok_or(Error::NoFreeSocket)?;
        entry.generation = entry.generation.wrapping_add(1);
        Ok(TcpHandle {
            slot,
            generation: entry.generation,
        })
    }

    /// The socket `handle` reaches, or [`Error::StaleHandle`] once it was closed.
    fn tcp_socket(&self, handle: TcpHandle) -> Result<SocketHandle> {
        match self.tcp_slots.get(handle.slot) {
            Some(slot) if slot.generation == handle.generation => Ok(slot.socket),
            _ => Err(Error::StaleHandle),
        }
    }

    /// The program gives `handle` back: from now on it is stale.
    fn release_tcp(&mut self, handle: TcpHandle) {
        if let Some(slot) = self.tcp_slots.get_mut(handle.slot) {
            slot.generation = slot.generation.wrapping_add(1);
        }
    }

    /// Why the connection of pool slot `handle` failed, once smoltcp closed it by itself
    /// (see [`TcpSlot::ended`]).
    fn ended(&self, handle: TcpHandle) -> Option<Error> {
        self.tcp_slots.get(handle.slot).and_then(|s| s.ended)
    }

    /// The socket `handle` reaches, or [`Error::StaleHandle`] once it was closed.
    fn udp_socket(&self, handle: UdpHandle) -> Result<SocketHandle> {
        match self.udp_slots.get(handle.slot) {
            Some(slot) if slot.generation == handle.generation => Ok(slot.socket),
            _ => Err(Error::StaleHandle),
        }
    }

    /// Notes, for every TCP socket of the pool, how a connection that just closed ended:
    /// a reset was already noted by the gate; otherwise it closed in order, or smoltcp
    /// gave up on it.
    fn note_endings(&mut self) {
        for slot in self.tcp_slots.iter_mut() {
            let state = self.sockets.get::<tcp::Socket>(slot.socket).state();
            if state != tcp::State::Closed {
                slot.ended = None;
            } else if slot.last != tcp::State::Closed
                && slot.ended.is_none()
                && !closes_in_order(slot.last)
            {
                slot.ended = Some(Error::TimedOut);
            }
            slot.last = state;
        }
    }

    fn give_back_tcp(&mut self, handle: SocketHandle) {
        if !self.tcp_closing.contains(&handle) && !self.tcp_free.contains(&handle) {
            // Cannot overflow: both lists together never hold more than the N sockets added.
            let _ = self.tcp_closing.push(handle);
        }
    }

    fn maintain(&mut self, now: Instant) {
        self.note_endings();
        let mut lost: Vec<Option<u16>, { fragments::TRACKED }> = Vec::new();
        self.reassembly.expire(now, REASSEMBLY_TIMEOUT, &mut |p| {
            lost.push(p.port).unwrap_or(())
        });
        for port in lost {
            debug!("udp: a fragmented datagram never completed");
            self.fragments_lost(port);
        }
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
            self.expire_half_open(slot, now);
            self.refill_listener(slot);
        }
    }

    /// Notes when each of a listener's sockets became half-open, and drops those that have
    /// been half-open for longer than the policy allows.
    fn expire_half_open(&mut self, slot: usize, now: Instant) {
        let timeout = self.policy.syn_timeout;
        let Some(Some(listener)) = self.listeners.get_mut(slot) else {
            return;
        };
        let port = listener.port;
        let mut expired: Vec<SocketHandle, N> = Vec::new();
        for member in listener.pool.iter_mut() {
            let socket = self.sockets.get_mut::<tcp::Socket>(member.handle);
            if socket.state() != tcp::State::SynReceived {
                member.half_open_since = None;
                continue;
            }
            let since = *member.half_open_since.get_or_insert(now);
            if now >= since + timeout {
                debug!("tcp: a half-open connection expired");
                socket.abort();
                expired.push(member.handle).ok();
                self.counters.half_open_expired = self.counters.half_open_expired.saturating_add(1);
            }
        }
        for handle in expired {
            self.relisten(handle, port);
        }
    }

    fn refill_listener(&mut self, slot: usize) {
        let Some(Some(listener)) = self.listeners.get_mut(slot) else {
            return;
        };
        let (port, backlog) = (listener.port, listener.backlog);
        for member in listener.pool.iter() {
            let socket = self.sockets.get_mut::<tcp::Socket>(member.handle);
            if socket.state() == tcp::State::Closed {
                // A handshake that was reset: listen again.
                let _ = socket.listen(port);
            }
        }
        // Sockets borrowed for a burst of SYNs go back once they listen again.
        while listener.pool.len() > backlog {
            let sockets = &self.sockets;
            let Some(pos) = listener
                .pool
                .iter()
                .position(|m| sockets.get::<tcp::Socket>(m.handle).state() == tcp::State::Listen)
            else {
                break;
            };
            let handle = listener.pool.swap_remove(pos).handle;
            // A listening socket closes quietly.
            self.sockets.get_mut::<tcp::Socket>(handle).abort();
            // Cannot overflow: at most N sockets were added.
            let _ = self.tcp_free.push(handle);
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
                let _ = listener.pool.push(Member {
                    handle,
                    half_open_since: None,
                });
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
        let socket = self.udp_free.pop().ok_or(Error::NoFreeSocket)?;
        let Some((slot, entry)) = self
            .udp_slots
            .iter_mut()
            .enumerate()
            .find(|(_, s)| s.socket == socket)
        else {
            // Cannot happen: every socket of the free list has its slot.
            let _ = self.udp_free.push(socket);
            return Err(Error::NoFreeSocket);
        };
        entry.generation = entry.generation.wrapping_add(1);
        entry.losses = UdpLosses::default();
        Ok(UdpHandle {
            slot,
            generation: entry.generation,
        })
    }

    fn udp_bind(&mut self, socket: UdpHandle, port: u16) -> Result<()> {
        let handle = self.udp_socket(socket)?;
        if self.udp(handle).is_open() {
            return Err(Error::InvalidConfig("the UDP socket is already bound"));
        }
        self.bind_udp(handle, port).map(|_| ())
    }

    fn udp_local(&self, socket: UdpHandle) -> Option<SocketAddrV4> {
        let s = self.udp(self.udp_socket(socket).ok()?);
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

    /// 0 for a stale handle.
    fn udp_max_payload(&self, socket: UdpHandle) -> usize {
        self.udp_socket(socket).map_or(0, |handle| {
            self.max_udp_payload
                .min(self.udp(handle).payload_send_capacity())
        })
    }

    fn udp_send_to(&mut self, socket: UdpHandle, data: &[u8], to: SocketAddrV4) -> Result<()> {
        let handle = self.udp_socket(socket)?;
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
        if !self.udp(handle).is_open() {
            let port = self.bind_udp(handle, 0)?;
            debug!("udp: first send auto-bound port {}", port);
        }
        match self.udp_mut(handle).send_slice(data, endpoint(to)) {
            Ok(()) => Ok(()),
            Err(udp::SendError::BufferFull) => Err(Error::WouldBlock),
            Err(udp::SendError::Unaddressable) => Err(Error::Unaddressable),
        }
    }

    /// `true` for a stale handle: nothing of its is queued any more.
    fn udp_flushed(&self, socket: UdpHandle) -> bool {
        self.udp_socket(socket)
            .map_or(true, |handle| self.udp(handle).send_queue() == 0)
    }

    fn udp_recv_from(&mut self, socket: UdpHandle, buf: &mut [u8]) -> Result<Datagram> {
        let handle = self.udp_socket(socket)?;
        let (payload, meta) = self.udp_mut(handle).recv().map_err(|_| Error::WouldBlock)?;
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

    /// No losses for a stale handle.
    fn udp_losses(&self, socket: UdpHandle) -> UdpLosses {
        match self.udp_slots.get(socket.slot) {
            Some(slot) if slot.generation == socket.generation => slot.losses,
            _ => UdpLosses::default(),
        }
    }

    /// Does nothing with a stale handle.
    fn udp_close(&mut self, socket: UdpHandle) {
        let Ok(handle) = self.udp_socket(socket) else {
            return;
        };
        self.udp_mut(handle).close();
        if let Some(slot) = self.udp_slots.get_mut(socket.slot) {
            slot.generation = slot.generation.wrapping_add(1);
            slot.losses = UdpLosses::default();
        }
        if !self.udp_free.contains(&handle) {
            let _ = self.udp_free.push(handle);
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
                self.issue_tcp(handle)
            }
            Err(_) => {
                let _ = self.tcp_free.push(handle);
                Err(Error::Unaddressable)
            }
        }
    }

    /// A connection smoltcp closed by itself failed as the stack saw it close: refused
    /// (a reset answered our SYN), reset (a reset came later), or timed out (smoltcp's
    /// give-up, see [`tcp_set_timeouts`](Stack::tcp_set_timeouts)). One that closed in
    /// order (both FINs) stays `Open`: reading it gives end-of-stream. A stale handle is
    /// `Failed(StaleHandle)`.
    fn tcp_phase(&self, socket: TcpHandle) -> Phase {
        let handle = match self.tcp_socket(socket) {
            Ok(handle) => handle,
            Err(e) => return Phase::Failed(e),
        };
        match self.tcp(handle).state() {
            tcp::State::SynSent | tcp::State::SynReceived | tcp::State::Listen => Phase::Connecting,
            tcp::State::Closed => match self.ended(socket) {
                Some(error) => Phase::Failed(error),
                None => Phase::Open,
            },
            _ => Phase::Open,
        }
    }

    fn tcp_local(&self, socket: TcpHandle) -> Option<SocketAddrV4> {
        let handle = self.tcp_socket(socket).ok()?;
        self.tcp(handle).local_endpoint().and_then(v4)
    }

    fn tcp_peer(&self, socket: TcpHandle) -> Option<SocketAddrV4> {
        let handle = self.tcp_socket(socket).ok()?;
        self.tcp(handle).remote_endpoint().and_then(v4)
    }

    /// A closed connection fails the send with the reason it closed (see
    /// [`tcp_phase`](Stack::tcp_phase)), or `NotConnected` after our own shutdown.
    fn tcp_send(&mut self, socket: TcpHandle, data: &[u8]) -> Result<usize> {
        let handle = self.tcp_socket(socket)?;
        let ended = self.ended(socket);
        let s = self.tcp_mut(handle);
        match s.send_slice(data) {
            Ok(0) if !data.is_empty() => Err(Error::WouldBlock),
            Ok(n) => Ok(n),
            Err(_) => Err(ended.unwrap_or(Error::NotConnected)),
        }
    }

    /// 0 for a stale handle.
    fn tcp_unacked(&self, socket: TcpHandle) -> usize {
        self.tcp_socket(socket)
            .map_or(0, |handle| self.tcp(handle).send_queue())
    }

    /// A connection that failed gives the reason it closed (see
    /// [`tcp_phase`](Stack::tcp_phase)).
    fn tcp_recv(&mut self, socket: TcpHandle, buf: &mut [u8]) -> Result<Recv> {
        let handle = self.tcp_socket(socket)?;
        let ended = self.ended(socket);
        let s = self.tcp_mut(handle);
        match s.recv_slice(buf) {
            Ok(0) => Err(Error::WouldBlock),
            Ok(n) => Ok(Recv::Data(n)),
            Err(tcp::RecvError::Finished) => Ok(Recv::Eof),
            Err(tcp::RecvError::InvalidState) => Err(ended.unwrap_or(Error::NotConnected)),
        }
    }

    /// As [`tcp_recv`](Stack::tcp_recv), from smoltcp's ring: the part up to where the
    /// ring wraps, so two calls take what wrapped.
    fn tcp_recv_with(
        &mut self,
        socket: TcpHandle,
        max: usize,
        f: &mut dyn FnMut(&[u8]),
    ) -> Result<Recv> {
        let handle = self.tcp_socket(socket)?;
        let ended = self.ended(socket);
        let s = self.tcp_mut(handle);
        let taken = s.recv(|ring| {
            let data = ring.get(..max.min(ring.len())).unwrap_or_default();
            if !data.is_empty() {
                f(data);
            }
            (data.len(), data.len())
        });
        match taken {
            Ok(0) => Err(Error::WouldBlock),
            Ok(n) => Ok(Recv::Data(n)),
            Err(tcp::RecvError::Finished) => Ok(Recv::Eof),
            Err(tcp::RecvError::InvalidState) => Err(ended.unwrap_or(Error::NotConnected)),
        }
    }

    /// Does nothing with a stale handle.
    fn tcp_shutdown(&mut self, socket: TcpHandle) {
        let Ok(handle) = self.tcp_socket(socket) else {
            return;
        };
        let s = self.tcp_mut(handle);
        s.close();
        let state = s.state();
        if let Some(slot) = self.tcp_slots.get_mut(socket.slot)
            && state == tcp::State::Closed
            && slot.last != tcp::State::Closed
        {
            // Shut down before it opened: the connection attempt is given up.
            slot.last = state;
            slot.ended = Some(Error::NotConnected);
        }
    }

    /// Does nothing with a stale handle.
    fn tcp_close(&mut self, socket: TcpHandle) {
        let Ok(handle) = self.tcp_socket(socket) else {
            return;
        };
        let s = self.tcp_mut(handle);
        s.close();
        // A closing socket waits for the peer's ACK and FIN; bound that wait.
        s.set_timeout(Some(CLOSE_GIVE_UP));
        self.release_tcp(socket);
        self.give_back_tcp(handle);
    }

    /// Does nothing with a stale handle.
    fn tcp_abort(&mut self, socket: TcpHandle) {
        let Ok(handle) = self.tcp_socket(socket) else {
            return;
        };
        self.tcp_mut(handle).abort();
        self.release_tcp(socket);
        self.give_back_tcp(handle);
    }

    /// smoltcp's keep-alive and socket timeout. The timeout aborts the connection once
    /// the peer has sent nothing for that long while smoltcp waits for it; the stack
    /// notes that it closed without a reset from the peer, and reports it as
    /// [`Error::TimedOut`]. Does nothing with a stale handle.
    fn tcp_set_timeouts(&mut self, socket: TcpHandle, timeouts: crate::net::TcpTimeouts) {
        let Ok(handle) = self.tcp_socket(socket) else {
            return;
        };
        let s = self.tcp_mut(handle);
        s.set_keep_alive(timeouts.keepalive);
        s.set_timeout(timeouts.give_up);
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
        let (Some(entry), Some(generation)) = (
            self.listeners.get_mut(slot),
            self.listener_generations.get_mut(slot),
        ) else {
            return Err(Error::NoFreeListener);
        };
        *entry = Some(Listener::new(port, backlog));
        *generation = generation.wrapping_add(1);
        let generation = *generation;
        self.refill_listener(slot);
        debug!("tcp: listening on port {} with backlog {}", port, backlog);
        Ok(ListenerHandle { slot, generation })
    }

    fn tcp_accept(&mut self, listener: ListenerHandle) -> Result<(TcpHandle, SocketAddrV4)> {
        if self.listener_generations.get(listener.slot) != Some(&listener.generation) {
            return Err(Error::StaleHandle);
        }
        let Some(Some(slot)) = self.listeners.get_mut(listener.slot) else {
            return Err(Error::StaleHandle);
        };
        let sockets = &self.sockets;
        let pos = slot.pool.iter().position(|m| {
            !matches!(
                sockets.get::<tcp::Socket>(m.handle).state(),
                tcp::State::Listen | tcp::State::SynReceived | tcp::State::Closed
            )
        });
        let Some(pos) = pos else {
            return Err(Error::WouldBlock);
        };
        // `remove`, not `swap_remove`: connections are accepted in the order they came.
        let handle = slot.pool.remove(pos).handle;
        self.refill_listener(listener.slot);
        match self.tcp(handle).remote_endpoint().and_then(v4) {
            Some(peer) => Ok((self.issue_tcp(handle)?, peer)),
            None => {
                // Cannot happen for a synchronized socket; treat it as a reset connection.
                self.give_back_tcp(handle);
                Err(Error::WouldBlock)
            }
        }
    }

    /// Does nothing with a stale handle.
    fn listener_close(&mut self, listener: ListenerHandle) {
        let Some(generation) = self.listener_generations.get_mut(listener.slot) else {
            return;
        };
        if *generation != listener.generation {
            return;
        }
        *generation = generation.wrapping_add(1);
        let Some(entry) = self.listeners.get_mut(listener.slot) else {
            return;
        };
        let Some(slot) = entry.take() else {
            return;
        };
        for member in slot.pool {
            // A socket still listening closes quietly; a connection that was never accepted
            // gets a reset, as Linux does for its accept queue.
            self.tcp_mut(member.handle).abort();
            self.give_back_tcp(member.handle);
        }
    }
}

#[cfg(test)]
mod tests;
