//! Two [`SmolStack`]s on an in-memory [`Link`], polled in turn on a simulated clock.
//!
//! Needs no devices, no privileges and no allocator: the demo (`smolsock demo`) and the
//! core's own tests run the programs this way. The caller gives each stack its storage
//! (borrowed slices, or owned vectors where there is a heap) through the builder of
//! [`Pair::new`]. The clock only moves when both stacks and both programs are idle,
//! straight to the earliest deadline, so timeouts cost no real time and runs repeat
//! exactly for a given seed.
//!
//! With the `faults` feature, either end can have a `faults::FaultInjector` in front of it
//! (`Pair::set_faults`): its held frames count as deadlines of the simulated clock.
//!
//! A pair holds the link's frames (about 100 KiB), and with `faults` room for two
//! injectors' held frames (about 100 KiB each): a host keeps it in a `Box`.

use core::net::{Ipv4Addr, SocketAddrV4};

use heapless::LinearMap;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, Ipv4Cidr};

use crate::error::Result;
use crate::event::Event;
#[cfg(feature = "faults")]
use crate::faults::{FaultConfig, FaultInjector, FaultStats};
use crate::link::{Link, LinkEnd};
use crate::programs::Program;
use crate::runner::Feed;
use crate::smol::{SmolStack, StackConfig, TcpSnapshot};

/// Address of the server-side stack (end A of the link).
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 69, 1);
/// Address of the client-side stack (end B of the link).
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 69, 2);

/// Frames each direction of the link holds.
pub const LINK_FRAMES: usize = 32;

/// Frames a fault injector holds back per direction.
#[cfg(feature = "faults")]
pub const FAULT_QUEUE: usize = 32;

/// The device a stack of a pair runs on: one end of the link.
pub type End<'l> = LinkEnd<'l, LINK_FRAMES>;

/// Which stack of the pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// End A, 192.168.69.1.
    Server,
    /// End B, 192.168.69.2.
    Client,
}

impl Side {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Server => "server",
            Side::Client => "client",
        }
    }

    /// The addresses of this side's stack: [`SERVER_IP`] or [`CLIENT_IP`] in a /24, MAC
    /// `02:00:00:00:00:01` or `:02`, and a seed derived from `seed`.
    pub fn config(self, seed: u64) -> StackConfig {
        let n = match self {
            Side::Server => 1,
            Side::Client => 2,
        };
        StackConfig {
            mac: EthernetAddress([2, 0, 0, 0, 0, n]),
            ip: Ipv4Cidr::new(Ipv4Addr::new(192, 168, 69, n), 24),
            gateway: None,
            seed: seed ^ u64::from(n),
        }
    }
}

/// What an observer of a pair sees besides events.
pub trait Observer {
    /// A program event.
    fn event(&mut self, side: Side, event: &Event<'_>);
    /// A frame `from` one side put on the link.
    fn frame(&mut self, _from: Side, _frame: &[u8]) {}
    /// A TCP socket of `side` changed state.
    fn tcp_state(
        &mut self,
        _side: Side,
        _from: tcp::State,
        _to: tcp::State,
        _snapshot: &TcpSnapshot,
    ) {
    }
}

/// An observer that looks at nothing.
struct Quiet;

impl Observer for Quiet {
    fn event(&mut self, _: Side, _: &Event<'_>) {}
}

/// How a pair run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Both programs finished.
    Finished,
    /// Nothing can happen any more (no packet in flight, no deadline).
    Stuck,
    /// The simulated time limit passed.
    TimeLimit,
}

/// The last state and local address seen of each TCP socket of one stack.
type States<const N: usize> = LinearMap<SocketHandle, (tcp::State, Option<SocketAddrV4>), N>;

/// Two stacks joined by a link, each with up to `N` TCP and `N` UDP sockets.
pub struct Pair<'a, const N: usize> {
    link: Link<LINK_FRAMES>,
    /// The stack at 192.168.69.1.
    pub server: SmolStack<'a, N>,
    /// The stack at 192.168.69.2.
    pub client: SmolStack<'a, N>,
    now: Instant,
    server_states: States<N>,
    client_states: States<N>,
    /// Fault injector in front of end A (server).
    #[cfg(feature = "faults")]
    server_faults: Option<FaultInjector<FAULT_QUEUE>>,
    /// Fault injector in front of end B (client).
    #[cfg(feature = "faults")]
    client_faults: Option<FaultInjector<FAULT_QUEUE>>,
}

impl<'a, const N: usize> Pair<'a, N> {
    /// Two stacks whose random choices (initial sequence numbers, ephemeral ports) come
    /// from `seed`: with a fixed seed a run repeats exactly. `build` makes each stack from
    /// its side's [`Side::config`] on its end of the link, with the storage the caller
    /// gives it (for example [`SmolStack::new`], then `add_tcp`/`add_udp`).
    pub fn new(
        seed: u64,
        mut build: impl FnMut(StackConfig, &mut End<'_>) -> Result<SmolStack<'a, N>>,
    ) -> Result<Self> {
        let mut link = Link::new();
        let server = build(Side::Server.config(seed), &mut link.a())?;
        let client = build(Side::Client.config(seed), &mut link.b())?;
        Ok(Self {
            link,
            server,
            client,
            now: Instant::ZERO,
            server_states: LinearMap::new(),
            client_states: LinearMap::new(),
            #[cfg(feature = "faults")]
            server_faults: None,
            #[cfg(feature = "faults")]
            client_faults: None,
        })
    }

    /// Puts a fresh fault injector in front of `side`'s end (`None`: takes it away; the
    /// frames it held are lost).
    #[cfg(feature = "faults")]
    pub fn set_faults(&mut self, side: Side, config: Option<FaultConfig>) {
        let faults = match side {
            Side::Server => &mut self.server_faults,
            Side::Client => &mut self.client_faults,
        };
        *faults = config.map(FaultInjector::new);
    }

    /// What the fault injector in front of `side` did so far.
    #[cfg(feature = "faults")]
    pub fn fault_stats(&self, side: Side) -> Option<FaultStats> {
        let faults = match side {
            Side::Server => &self.server_faults,
            Side::Client => &self.client_faults,
        };
        faults.as_ref().map(FaultInjector::stats)
    }

    /// The simulated time now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// When the earliest frame a fault injector holds is due.
    fn next_release(&self) -> Option<Instant> {
        #[cfg(feature = "faults")]
        {
            [&self.server_faults, &self.client_faults]
                .into_iter()
                .flatten()
                .filter_map(FaultInjector::next_release)
                .min()
        }
        #[cfg(not(feature = "faults"))]
        None
    }

    fn observe_states(&mut self, side: Side, observer: &mut dyn Observer) {
        let (stack, states) = match side {
            Side::Server => (&self.server, &mut self.server_states),
            Side::Client => (&self.client, &mut self.client_states),
        };
        for mut snap in stack.tcp_snapshots() {
            let (old, old_local) = states
                .get(&snap.socket)
                .copied()
                .unwrap_or((tcp::State::Closed, None));
            // A socket that just closed has forgotten its endpoint: name it by the last one.
            snap.local = snap.local.or(old_local);
            // Cannot overflow: a stack has at most N TCP sockets.
            let _ = states.insert(snap.socket, (snap.state, snap.local));
            if old != snap.state {
                observer.tcp_state(side, old, snap.state, &snap);
            }
        }
    }

    /// Polls the server's stack once over its end (through its injector, if any).
    fn poll_server(&mut self) -> bool {
        #[cfg(feature = "faults")]
        if let Some(faults) = &mut self.server_faults {
            return self.server.poll(self.now, &mut faults.wrap(self.link.a()));
        }
        self.server.poll(self.now, &mut self.link.a())
    }

    /// Polls the client's stack once over its end (through its injector, if any).
    fn poll_client(&mut self) -> bool {
        #[cfg(feature = "faults")]
        if let Some(faults) = &mut self.client_faults {
            return self.client.poll(self.now, &mut faults.wrap(self.link.b()));
        }
        self.client.poll(self.now, &mut self.link.b())
    }

    /// Polls both stacks once; returns whether anything moved.
    fn poll_stacks(&mut self, observer: &mut dyn Observer) -> bool {
        let a = self.poll_server();
        for frame in self.link.in_flight_a_to_b() {
            observer.frame(Side::Server, frame);
        }
        self.observe_states(Side::Server, observer);
        let b = self.poll_client();
        for frame in self.link.in_flight_b_to_a() {
            observer.frame(Side::Client, frame);
        }
        self.observe_states(Side::Client, observer);
        a || b
    }

    fn in_flight(&self) -> bool {
        self.link.in_flight_a_to_b().next().is_some()
            || self.link.in_flight_b_to_a().next().is_some()
    }

    /// The earliest of both stacks' timers, `wake` and the injectors' next release.
    fn next_deadline(&mut self, wake: Option<Instant>) -> Option<Instant> {
        let now = self.now;
        [
            self.server.poll_delay(now).map(|d| now + d),
            self.client.poll_delay(now).map(|d| now + d),
            wake,
            self.next_release(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs a server-side and a client-side program until both finish, nothing can happen
    /// any more, or `limit` of simulated time passes. Then lets the stacks finish sending.
    /// An error is a program refusing a message its input gave it.
    pub fn run<SF: Feed, CF: Feed>(
        &mut self,
        server: &mut dyn Program<SmolStack<'a, N>>,
        client: &mut dyn Program<SmolStack<'a, N>>,
        server_input: &mut SF,
        client_input: &mut CF,
        observer: &mut dyn Observer,
        limit: Duration,
    ) -> Result<Ending> {
        let deadline = self.now + limit;
        let ending = loop {
            let mut wake: Option<Instant>;
            loop {
                let moved = self.poll_stacks(observer);
                let now = self.now;
                let s = server.poll(&mut self.server, now, &mut |e| {
                    observer.event(Side::Server, e)
                });
                let c = client.poll(&mut self.client, now, &mut |e| {
                    observer.event(Side::Client, e)
                });
                wake = [s.wake_at, c.wake_at].into_iter().flatten().min();
                let fed = server_input.feed(server)? | client_input.feed(client)?;
                if !(moved || s.progressed || c.progressed || fed || self.in_flight()) {
                    break;
                }
            }
            if server.outcome().is_some() && client.outcome().is_some() {
                break Ending::Finished;
            }
            match self.next_deadline(wake) {
                None => break Ending::Stuck,
                Some(_) if self.now >= deadline => break Ending::TimeLimit,
                Some(at) => self.now = at.max(self.now + Duration::from_micros(1)).min(deadline),
            }
        };
        self.settle(observer);
        Ok(ending)
    }

    /// Runs both stacks alone (no programs) for `span` of simulated time.
    pub fn pump(&mut self, span: Duration) {
        let end = self.now + span;
        loop {
            while self.poll_stacks(&mut Quiet) || self.in_flight() {}
            let next = self
                .next_deadline(None)
                .map_or(end, |at| at.max(self.now + Duration::from_micros(1)));
            if next >= end {
                self.now = end;
                while self.poll_stacks(&mut Quiet) || self.in_flight() {}
                return;
            }
            self.now = next;
        }
    }

    /// Polls until neither stack has anything left to send (at most 10 simulated seconds).
    pub fn settle(&mut self, observer: &mut dyn Observer) {
        let limit = self.now + Duration::from_secs(10);
        while self.now < limit {
            while self.poll_stacks(observer) || self.in_flight() {}
            if self.server.is_idle() && self.client.is_idle() && self.next_release().is_none() {
                return;
            }
            match self.next_deadline(None) {
                Some(at) => self.now = at.max(self.now + Duration::from_micros(1)),
                None => return,
            }
        }
    }
}
