//! Two smoltcp stacks on an in-memory [`Link`], polled in turn on a simulated clock.
//!
//! Needs no privileges and no devices: `smolsock demo` and the in-process tests run the
//! programs this way. The clock only moves when both stacks and both programs are idle,
//! straight to the earliest deadline, so timeouts cost no real time and runs repeat
//! exactly.
//!
//! Either end can have a [`FaultInjector`] in front of it ([`Pair::with_faults`],
//! [`Pair::set_faults`]): its held frames count as deadlines of the simulated clock.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use smolsock::Program;
use smolsock::event::Event;
use smolsock::faults::{FaultConfig, FaultInjector, FaultStats};
use smolsock::link::Link;
use smolsock::smol::StackConfig;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, Ipv4Cidr};

use smolsock::runner::Feed;

use crate::driver::RunError;
use crate::input::LineInput;
use smolsock_linux::stack::{HostStack, Sizing, build_stack};

/// Address of the server-side stack (end A of the link).
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 69, 1);
/// Address of the client-side stack (end B of the link).
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 69, 2);

/// Frames each direction of the link holds.
const LINK_FRAMES: usize = 32;

/// Frames a fault injector holds back per direction.
pub const FAULT_QUEUE: usize = 32;

/// A fault injector in front of one end of the link.
type Injector = Box<FaultInjector<FAULT_QUEUE>>;

#[inline(never)]
fn new_injector(config: FaultConfig) -> Injector {
    Box::new(FaultInjector::new(config))
}

/// The link is ~100 KB; building it in a frame of its own keeps the caller's stack small
/// in debug builds, which copy it on the way into the box.
#[inline(never)]
fn new_link() -> Box<Link<LINK_FRAMES>> {
    Box::new(Link::new())
}

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
        _snapshot: &smolsock::smol::TcpSnapshot,
    ) {
    }
}

/// Two stacks joined by a link.
pub struct Pair {
    link: Box<Link<LINK_FRAMES>>,
    /// The stack at 192.168.69.1.
    pub server: HostStack,
    /// The stack at 192.168.69.2.
    pub client: HostStack,
    now: Instant,
    states: [HashMap<SocketHandle, (tcp::State, Option<std::net::SocketAddrV4>)>; 2],
    /// Fault injectors in front of end A (server) and end B (client).
    faults: [Option<Injector>; 2],
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

impl Pair {
    /// Two stacks with the design's addresses (MACs 02:00:00:00:00:01 and :02).
    pub fn new(sizing: Sizing) -> smolsock::Result<Self> {
        Self::seeded(sizing, smolsock_linux::stack::seed_or_config_error()?)
    }

    /// Two stacks whose random choices (initial sequence numbers, ephemeral ports) come
    /// from `seed`: with a fixed seed a run repeats exactly.
    pub fn seeded(sizing: Sizing, seed: u64) -> smolsock::Result<Self> {
        let mut link = new_link();
        let config = |n: u8| StackConfig {
            mac: EthernetAddress([2, 0, 0, 0, 0, n]),
            ip: Ipv4Cidr::new(Ipv4Addr::new(192, 168, 69, n), 24),
            gateway: None,
            seed: seed ^ u64::from(n),
        };
        let server = build_stack(&mut link.a(), config(1), sizing)?;
        let client = build_stack(&mut link.b(), config(2), sizing)?;
        Ok(Self {
            link,
            server,
            client,
            now: Instant::from_millis(0),
            states: [HashMap::new(), HashMap::new()],
            faults: [None, None],
        })
    }

    /// Two stacks with faults in front of the server's end, the client's, or both; the
    /// stacks are seeded from `seed` ([`Pair::seeded`]).
    pub fn with_faults(
        sizing: Sizing,
        seed: u64,
        server: Option<FaultConfig>,
        client: Option<FaultConfig>,
    ) -> smolsock::Result<Self> {
        let mut pair = Self::seeded(sizing, seed)?;
        pair.set_faults(Side::Server, server);
        pair.set_faults(Side::Client, client);
        Ok(pair)
    }

    /// Puts a fresh fault injector in front of `side`'s end (`None`: takes it away; the
    /// frames it held are lost).
    pub fn set_faults(&mut self, side: Side, config: Option<FaultConfig>) {
        self.faults[side as usize] = config.map(new_injector);
    }

    /// What the fault injector in front of `side` did so far.
    pub fn fault_stats(&self, side: Side) -> Option<FaultStats> {
        self.faults[side as usize].as_ref().map(|f| f.stats())
    }

    /// The simulated time now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// When the earliest frame a fault injector holds is due.
    fn next_release(&self) -> Option<Instant> {
        self.faults
            .iter()
            .flatten()
            .filter_map(|f| f.next_release())
            .min()
    }

    fn observe_states(&mut self, side: Side, observer: &mut dyn Observer) {
        let (stack, states) = match side {
            Side::Server => (&self.server, &mut self.states[0]),
            Side::Client => (&self.client, &mut self.states[1]),
        };
        for mut snap in stack.tcp_snapshots() {
            let (old, old_local) = states
                .get(&snap.socket)
                .copied()
                .unwrap_or((tcp::State::Closed, None));
            // A socket that just closed has forgotten its endpoint: name it by the last one.
            snap.local = snap.local.or(old_local);
            states.insert(snap.socket, (snap.state, snap.local));
            if old != snap.state {
                observer.tcp_state(side, old, snap.state, &snap);
            }
        }
    }

    /// Polls both stacks once; returns whether anything moved.
    fn poll_stacks(&mut self, observer: &mut dyn Observer) -> bool {
        let a = match &mut self.faults[0] {
            Some(f) => self.server.poll(self.now, &mut f.wrap(self.link.a())),
            None => self.server.poll(self.now, &mut self.link.a()),
        };
        for frame in self.link.in_flight_a_to_b() {
            observer.frame(Side::Server, frame);
        }
        self.observe_states(Side::Server, observer);
        let b = match &mut self.faults[1] {
            Some(f) => self.client.poll(self.now, &mut f.wrap(self.link.b())),
            None => self.client.poll(self.now, &mut self.link.b()),
        };
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

    /// Runs a server-side and a client-side program until both finish, nothing can happen
    /// any more, or `limit` of simulated time passes. Then lets the stacks finish sending.
    pub fn run(
        &mut self,
        server: &mut dyn Program<HostStack>,
        client: &mut dyn Program<HostStack>,
        server_input: &mut LineInput,
        client_input: &mut LineInput,
        observer: &mut dyn Observer,
        limit: Duration,
    ) -> Result<Ending, RunError> {
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
                let fed = server_input.feed(server).map_err(RunError::Input)?
                    | client_input.feed(client).map_err(RunError::Input)?;
                if !(moved || s.progressed || c.progressed || fed || self.in_flight()) {
                    break;
                }
            }
            if server.outcome().is_some() && client.outcome().is_some() {
                break Ending::Finished;
            }
            let next = [
                self.server.poll_delay(self.now).map(|d| self.now + d),
                self.client.poll_delay(self.now).map(|d| self.now + d),
                wake,
                self.next_release(),
            ]
            .into_iter()
            .flatten()
            .min();
            match next {
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
        struct Quiet;
        impl Observer for Quiet {
            fn event(&mut self, _: Side, _: &Event<'_>) {}
        }
        let end = self.now + span;
        loop {
            while self.poll_stacks(&mut Quiet) || self.in_flight() {}
            let next = [
                self.server.poll_delay(self.now).map(|d| self.now + d),
                self.client.poll_delay(self.now).map(|d| self.now + d),
                self.next_release(),
            ]
            .into_iter()
            .flatten()
            .min()
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
            let next = [
                self.server.poll_delay(self.now).map(|d| self.now + d),
                self.client.poll_delay(self.now).map(|d| self.now + d),
                self.next_release(),
            ]
            .into_iter()
            .flatten()
            .min();
            match next {
                Some(at) => self.now = at.max(self.now + Duration::from_micros(1)),
                None => return,
            }
        }
    }
}
