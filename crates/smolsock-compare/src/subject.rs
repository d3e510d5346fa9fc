//! The two stacks a comparison runs on, behind one trait: the kernel's sockets
//! ([`KernelSubject`]) and a fresh smoltcp stack on the namespace's TAP (or veth) ([`SmolSubject`]).
//!
//! A scenario drives the subject's [`Stack`] directly and lets it move packets with
//! [`Subject::run_until`], while the peer (always the Linux kernel, through `std::net`)
//! runs in a thread of its own.

use std::fs;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use smolsock::faults::{FaultConfig, FaultInjector, Lent};
use smolsock::net::Stack;
use smolsock::smol::{ListenPolicy, SmolStack, StackConfig, WhenFull};
use smoltcp::iface::SocketStorage;
use smoltcp::phy::Device;
use smoltcp::socket::{tcp, udp};
use smoltcp::time::{Duration as SmolDuration, Instant as SmolInstant};
use smoltcp::wire::{EthernetAddress, Ipv4Cidr};

use smolsock_linux::stack::seed_or_config_error;
use smolsock_linux::tap::{HostDevice, TunTap};
use smolsock_linux::wait::{self, READABLE};
use smolsock_std::KernelStack;

/// The kernel's address on the namespace's TAP: the peer of the smoltcp subject.
pub const KERNEL_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 69, 100);
/// The smoltcp subject's address.
pub const SMOL_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 69, 1);
/// A second smoltcp stack (the peer of the kernel in the ARP scenario).
pub const SMOL_PEER_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 69, 2);

/// Longest single sleep while a scenario waits, so its `done` check runs often.
const TICK: Duration = Duration::from_millis(2);

/// The stack under test in one scenario.
pub trait Subject {
    /// Its socket layer.
    type S: Stack;
    /// The socket layer.
    fn stack(&mut self) -> &mut Self::S;
    /// The address a peer uses to reach the subject.
    fn addr(&self) -> Ipv4Addr;
    /// The address of the kernel peer, as the subject reaches it.
    fn peer(&self) -> Ipv4Addr;
    /// Moves packets until `done` holds (checked often) or `limit` passes; returns whether
    /// `done` held.
    fn run_until(&mut self, limit: Duration, done: &mut dyn FnMut(&mut Self::S) -> bool) -> bool;
    /// Moves packets for `span`.
    fn run_for(&mut self, span: Duration) {
        self.run_until(span, &mut |_| false);
    }
    /// How long the connection from local port `port`, closed actively a moment ago, stays
    /// in TIME-WAIT: `Ok(None)` if it is not in TIME-WAIT at all.
    fn time_wait(&mut self, port: u16) -> Result<Option<Duration>, String>;
    /// Makes a full backlog answer with a reset (`true`) or stay silent (`false`, both
    /// stacks' default): Linux's `tcp_abort_on_overflow` sysctl in this namespace, smolsock's
    /// `--backlog-full reset`.
    fn reset_when_backlog_full(&mut self, on: bool) -> Result<(), String>;
}

fn smol_duration(d: Duration) -> SmolDuration {
    SmolDuration::from_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The host kernel's own stack; its peer is the kernel too, over loopback.
pub struct KernelSubject {
    stack: KernelStack,
}

impl KernelSubject {
    /// A subject with no sockets yet.
    pub fn new() -> Self {
        Self {
            stack: KernelStack::new(),
        }
    }
}

impl Default for KernelSubject {
    fn default() -> Self {
        Self::new()
    }
}

/// `/proc/net/tcp` field 4 (`st`) of TIME-WAIT.
const PROC_TIME_WAIT: &str = "06";
/// Clock ticks per second of `/proc/net/tcp` timers (USER_HZ).
const USER_HZ: f64 = 100.0;

/// Finds the TIME-WAIT entry of local port `port` in `/proc/net/tcp` and returns what is
/// left of its timer.
pub(crate) fn proc_time_wait(table: &str, port: u16) -> Option<Duration> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local = fields.get(1)?;
        let state = fields.get(3)?;
        let timer = fields.get(5)?;
        let local_port = u16::from_str_radix(local.rsplit_once(':')?.1, 16).ok()?;
        if local_port != port || *state != PROC_TIME_WAIT {
            return None;
        }
        let ticks = u64::from_str_radix(timer.split_once(':')?.1, 16).ok()?;
        Some(Duration::from_secs_f64(ticks as f64 / USER_HZ))
    })
}

/// Linux's switch for answering an accept-queue overflow with a reset (per namespace).
const ABORT_ON_OVERFLOW: &str = "/proc/sys/net/ipv4/tcp_abort_on_overflow";

impl Subject for KernelSubject {
    type S = KernelStack;

    fn reset_when_backlog_full(&mut self, on: bool) -> Result<(), String> {
        std::fs::write(ABORT_ON_OVERFLOW, if on { "1" } else { "0" })
            .map_err(|e| format!("cannot set {ABORT_ON_OVERFLOW}: {e}"))
    }

    fn stack(&mut self) -> &mut KernelStack {
        &mut self.stack
    }

    fn addr(&self) -> Ipv4Addr {
        Ipv4Addr::LOCALHOST
    }

    fn peer(&self) -> Ipv4Addr {
        Ipv4Addr::LOCALHOST
    }

    fn run_until(
        &mut self,
        limit: Duration,
        done: &mut dyn FnMut(&mut KernelStack) -> bool,
    ) -> bool {
        // The kernel moves packets by itself: only the check needs to run.
        let start = Instant::now();
        loop {
            if done(&mut self.stack) {
                return true;
            }
            let elapsed = start.elapsed();
            if elapsed >= limit {
                return false;
            }
            let nap = TICK.min(limit - elapsed);
            // A failed wait only shortens the nap.
            let _ = self.stack.wait(None, Some(smol_duration(nap)));
        }
    }

    fn time_wait(&mut self, port: u16) -> Result<Option<Duration>, String> {
        // The kernel's timer is read, not waited for: it is a minute long.
        let table = fs::read_to_string("/proc/net/tcp")
            .map_err(|e| format!("cannot read /proc/net/tcp: {e}"))?;
        Ok(proc_time_wait(&table, port))
    }
}

/// TCP sockets of a smoltcp subject (a scenario opens up to 32 connections at once).
pub const SMOL_TCP_SOCKETS: usize = 40;
const SMOL_UDP_SOCKETS: usize = 4;
const SMOL_TCP_BUF: usize = 16 * 1024;
const SMOL_UDP_BUF: usize = 16 * 1024;
const SMOL_UDP_PACKETS: usize = 16;

/// Stack type of a smoltcp subject.
pub type SubjectStack<'a> = SmolStack<'a, 64>;

/// Socket buffers of one smoltcp subject, owned by the scenario that uses it.
pub struct SmolStorage {
    tcp: Vec<(Vec<u8>, Vec<u8>)>,
    udp: Vec<UdpStorage>,
}

type UdpStorage = (
    Vec<udp::PacketMetadata>,
    Vec<u8>,
    Vec<udp::PacketMetadata>,
    Vec<u8>,
);

impl SmolStorage {
    /// Buffers for [`SMOL_TCP_SOCKETS`] TCP and a few UDP sockets.
    pub fn new() -> Self {
        Self {
            tcp: (0..SMOL_TCP_SOCKETS)
                .map(|_| (vec![0; SMOL_TCP_BUF], vec![0; SMOL_TCP_BUF]))
                .collect(),
            udp: (0..SMOL_UDP_SOCKETS)
                .map(|_| {
                    (
                        vec![udp::PacketMetadata::EMPTY; SMOL_UDP_PACKETS],
                        vec![0; SMOL_UDP_BUF],
                        vec![udp::PacketMetadata::EMPTY; SMOL_UDP_PACKETS],
                        vec![0; SMOL_UDP_BUF],
                    )
                })
                .collect(),
        }
    }
}

impl Default for SmolStorage {
    fn default() -> Self {
        Self::new()
    }
}

/// A fresh smoltcp stack on the namespace's TAP; its peer is the kernel at
/// [`KERNEL_IP`]. Its clock can be moved forward to measure
/// timers without waiting for them.
pub struct SmolSubject<'a, 'd> {
    stack: SubjectStack<'a>,
    device: &'d mut TunTap,
    ip: Ipv4Addr,
    offset: SmolDuration,
    /// Faults between the stack and the TAP, for the scenarios that want a lossy hop.
    faults: Option<Box<FaultInjector>>,
}

impl<'a, 'd> SmolSubject<'a, 'd> {
    /// A stack at `ip` (MAC `02:00:00:00:00:<last byte>`) with the buffers of `storage`;
    /// `slots` (an empty vector the caller keeps alive) becomes its socket set.
    pub fn new(
        slots: &'a mut Vec<SocketStorage<'a>>,
        storage: &'a mut SmolStorage,
        device: &'d mut TunTap,
        ip: Ipv4Addr,
    ) -> smolsock::Result<Self> {
        let [_, _, _, last] = ip.octets();
        let config = StackConfig {
            mac: EthernetAddress([0x02, 0, 0, 0, 0, last]),
            ip: Ipv4Cidr::new(ip, 24),
            gateway: None,
            seed: seed_or_config_error()?,
        };
        // Frames the kernel queued on the TAP while no stack was attached belong to
        // earlier scenarios: a fresh stack starts from a quiet link.
        let mut stale = 0;
        while stale < 100_000 && device.receive(SmolInstant::now()).is_some() {
            stale += 1;
        }
        let SmolStorage { tcp, udp } = storage;
        slots.clear();
        slots.resize_with(tcp.len() + udp.len(), || SocketStorage::EMPTY);
        let mut stack = SmolStack::new(config, device, slots.as_mut_slice(), SmolInstant::now())?;
        for (rx, tx) in tcp.iter_mut() {
            stack.add_tcp(rx.as_mut_slice(), tx.as_mut_slice())?;
        }
        for (rx_meta, rx, tx_meta, tx) in udp.iter_mut() {
            stack.add_udp(
                rx_meta.as_mut_slice(),
                rx.as_mut_slice(),
                tx_meta.as_mut_slice(),
                tx.as_mut_slice(),
            )?;
        }
        Ok(Self {
            stack,
            device,
            ip,
            offset: SmolDuration::ZERO,
            faults: None,
        })
    }

    /// Puts a fault injector between the stack and the TAP (`None`: takes it away).
    pub fn set_faults(&mut self, faults: Option<FaultConfig>) {
        self.faults = faults.map(|config| Box::new(FaultInjector::new(config)));
    }

    /// One poll of the stack over the TAP, through the fault injector when there is one.
    fn poll_at(&mut self, now: SmolInstant) -> bool {
        match self.faults.as_deref_mut() {
            Some(faults) => self
                .stack
                .poll(now, &mut faults.wrap(Lent(&mut *self.device))),
            None => self.stack.poll(now, self.device),
        }
    }

    fn now(&self) -> SmolInstant {
        SmolInstant::now() + self.offset
    }

    /// Moves the stack's clock forward by `span` and lets its timers run.
    fn skip(&mut self, span: Duration) {
        self.offset += smol_duration(span);
        let now = self.now();
        self.poll_at(now);
    }

    /// Moves whatever packets are waiting, once, without sleeping.
    pub fn poll(&mut self) {
        let now = self.now();
        while self.poll_at(now) {}
    }
}

impl<'a> Subject for SmolSubject<'a, '_> {
    type S = SubjectStack<'a>;

    fn stack(&mut self) -> &mut SubjectStack<'a> {
        &mut self.stack
    }

    fn reset_when_backlog_full(&mut self, on: bool) -> Result<(), String> {
        let when_full = if on { WhenFull::Reset } else { WhenFull::Drop };
        self.stack.set_listen_policy(ListenPolicy {
            when_full,
            ..ListenPolicy::default()
        });
        Ok(())
    }

    fn addr(&self) -> Ipv4Addr {
        self.ip
    }

    fn peer(&self) -> Ipv4Addr {
        KERNEL_IP
    }

    fn run_until(
        &mut self,
        limit: Duration,
        done: &mut dyn FnMut(&mut SubjectStack<'a>) -> bool,
    ) -> bool {
        let start = Instant::now();
        loop {
            self.poll();
            if done(&mut self.stack) {
                // Whatever the check queued (a send, a close) leaves now.
                self.poll();
                return true;
            }
            let elapsed = start.elapsed();
            if elapsed >= limit {
                return false;
            }
            let now = self.now();
            let nap = smol_duration(TICK.min(limit - elapsed));
            let nap = self.stack.poll_delay(now).map_or(nap, |d| d.min(nap));
            // A failed wait only shortens the nap; a broken device shows as lost packets.
            let _ = wait::ready(self.device.fd(), READABLE, Some(nap));
        }
    }

    fn time_wait(&mut self, port: u16) -> Result<Option<Duration>, String> {
        // smoltcp's timers run on the caller's clock: move it forward in small steps and
        // see when the socket leaves TIME-WAIT.
        const STEP: Duration = Duration::from_millis(100);
        const CAP: Duration = Duration::from_secs(300);
        let in_time_wait = |stack: &SubjectStack<'_>| {
            stack.tcp_snapshots().any(|s| {
                s.state == tcp::State::TimeWait && s.local.is_some_and(|l| l.port() == port)
            })
        };
        self.poll();
        if !in_time_wait(&self.stack) {
            return Ok(None);
        }
        let mut waited = Duration::ZERO;
        while in_time_wait(&self.stack) {
            if waited >= CAP {
                return Err(format!("still in TIME-WAIT after {} s", CAP.as_secs()));
            }
            self.skip(STEP);
            waited += STEP;
        }
        Ok(Some(waited))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tcp_time_wait() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:2382 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0\n\
   1: 0100007F:C350 0100007F:2382 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000\n";
        assert_eq!(proc_time_wait(table, 0xC350), Some(Duration::from_secs(60)));
        assert_eq!(proc_time_wait(table, 0x2382), None);
        assert_eq!(proc_time_wait("garbage\n1 2\n", 1), None);
    }
}
