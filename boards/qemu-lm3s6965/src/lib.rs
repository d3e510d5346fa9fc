//! Board support for smolsock on QEMU's `lm3s6965evb` machine: a Cortex-M3
//! (LM3S6965, 256 KiB flash, 64 KiB RAM) whose Stellaris Ethernet MAC QEMU
//! attaches to a TAP device on the host.
//!
//! The board gives a firmware exactly what the smolsock core needs:
//!
//! * [`Ethernet`], a [`smoltcp::phy::Device`] over the MAC ([`eth`]);
//! * [`Clock`], a millisecond clock from SysTick ([`clock`]);
//! * [`Board::wait`], which sleeps (`WFI`) until a deadline or a frame;
//! * the address plan ([`MAC_ADDRESS`], [`IP_ADDRESS`]) and
//!   [`Board::interface`], a smoltcp [`Interface`] configured with it;
//! * [`stack_used`], the stack's high-water mark, for RAM budgets;
//! * defmt logging over semihosting, a defmt timestamp in milliseconds, and a
//!   panic/fault handler that logs and ends QEMU with a failing exit status.
//!
//! A firmware is: [`Board::init`], [`Board::stack`] (a smolsock
//! [`SmolStack`] whose socket storage and buffers live in statics), and [`run`],
//! the poll loop that drives one of the core's programs and exits QEMU when it
//! finishes:
//!
//! ```ignore
//! let mut board = Board::init();
//! let mut stack = board.stack::<1>(storage);
//! stack.add_udp_buffers(udp)?;
//! run(board, stack, UdpReceiver::new(config, buf), &[])
//! ```
//!
//! [`Board::interface`] and [`Board::poll`] are the same loop for smoltcp used
//! directly, without the core.
#![no_std]
#![warn(missing_docs)]

pub mod clock;
pub mod eth;

use core::sync::atomic::{AtomicBool, Ordering};

use cortex_m::interrupt::InterruptNumber;
use cortex_m::peripheral::NVIC;
use cortex_m_rt::{ExceptionFrame, exception};
use smolsock::smol::{SmolStack, StackConfig};
use smolsock::{Event, Program};
use smoltcp::iface::{Config, Interface, PollIngressSingleResult, PollResult, SocketSet};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address, Ipv4Cidr};

// The defmt global logger: frames go to the host through semihosting writes.
use defmt_semihosting as _;

pub use clock::Clock;
pub use eth::Ethernet;

/// The board's MAC address (the project's address plan; QEMU's own default,
/// 52:54:00:12:34:56, is overwritten at init).
pub const MAC_ADDRESS: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x03]);
/// The board's IPv4 address.
pub const IP_ADDRESS: Ipv4Address = Ipv4Address::new(192, 168, 69, 3);
/// Prefix length of the TAP network (192.168.69.0/24).
pub const PREFIX_LEN: u8 = 24;
/// The Linux side of the TAP, the usual peer.
pub const PEER_ADDRESS: Ipv4Address = Ipv4Address::new(192, 168, 69, 100);

/// Interrupt lines of the LM3S6965 that this crate uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
enum Irq {
    /// The Ethernet MAC (IRQ 42).
    Ethernet = 42,
}

// SAFETY: 42 is the Ethernet MAC's line on the LM3S6965, below the NVIC's
// number of lines.
unsafe impl InterruptNumber for Irq {
    fn number(self) -> u16 {
        self as u16
    }
}

/// Everything a firmware needs from the board.
#[derive(Debug)]
pub struct Board {
    /// The Ethernet device, for `Interface::new` and `Interface::poll`.
    pub eth: Ethernet,
    /// The millisecond clock.
    pub clock: Clock,
}

impl Board {
    /// Starts SysTick and the Ethernet MAC (with [`MAC_ADDRESS`]) and enables
    /// the MAC's receive interrupt, which only wakes the core.
    ///
    /// # Panics
    /// If called more than once (the core peripherals are taken).
    pub fn init() -> Board {
        let cp = cortex_m::Peripherals::take().expect("Board::init called twice");
        // The driver's frame buffers, in .bss rather than in main's stack frame.
        static mut ETH_BUFFERS: eth::Buffers = eth::Buffers::new();
        // SAFETY: `Peripherals::take` succeeded, so this line runs once and
        // this is the only reference to ETH_BUFFERS there will ever be.
        let buffers = unsafe { &mut *core::ptr::addr_of_mut!(ETH_BUFFERS) };
        let clock = Clock::start(cp.SYST);
        let mac = eth::Mac::init(MAC_ADDRESS);
        // SAFETY: the handler for this line (DefaultHandler below) only
        // acknowledges the MAC interrupt; no critical section depends on it
        // being masked.
        unsafe { NVIC::unmask(Irq::Ethernet) };
        defmt::info!(
            "board: lm3s6965evb, MAC {}, IP {}/{}",
            mac.address(),
            IP_ADDRESS,
            PREFIX_LEN
        );
        Board {
            eth: Ethernet::new(mac, buffers),
            clock,
        }
    }

    /// The current time.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// A smoltcp interface on [`Board::eth`] with [`MAC_ADDRESS`] and
    /// [`IP_ADDRESS`]/[`PREFIX_LEN`].
    ///
    /// The random seed (TCP initial sequence numbers, ephemeral ports) comes
    /// from the host's clock through semihosting, so that two boots differ.
    pub fn interface(&mut self) -> Interface {
        let mut config = Config::new(HardwareAddress::Ethernet(MAC_ADDRESS));
        config.random_seed = random_seed();
        defmt::debug!("interface: random seed {=u64:#x}", config.random_seed);
        let now = self.now();
        let mut iface = Interface::new(config, &mut self.eth, now);
        iface.update_ip_addrs(|addrs| {
            addrs
                .push(IpCidr::new(IP_ADDRESS.into(), PREFIX_LEN))
                .expect("an empty address list has room for one");
        });
        iface
    }

    /// The smolsock stack configuration of this board: [`MAC_ADDRESS`],
    /// [`IP_ADDRESS`]/[`PREFIX_LEN`], no gateway, and a seed from the host's
    /// clock (see [`Board::interface`]).
    pub fn stack_config(&self) -> StackConfig {
        StackConfig {
            mac: MAC_ADDRESS,
            ip: Ipv4Cidr::new(IP_ADDRESS, PREFIX_LEN),
            gateway: None,
            seed: random_seed(),
        }
    }

    /// A [`SmolStack`] on [`Board::eth`] with [`Board::stack_config`], whose sockets
    /// live in `storage`; add socket buffers with `add_tcp_buffers`/`add_udp_buffers`.
    ///
    /// # Panics
    /// Never with this board's constant configuration (the core rejects only a
    /// multicast MAC, a non-unicast IP or an MTU too small for IPv4).
    pub fn stack<'a, const N: usize>(
        &mut self,
        storage: &'a mut [smoltcp::iface::SocketStorage<'a>],
    ) -> SmolStack<'a, N> {
        let config = self.stack_config();
        let now = self.now();
        match SmolStack::new(config, &mut self.eth, storage, now) {
            Ok(stack) => stack,
            Err(e) => defmt::panic!("stack: {}", e),
        }
    }

    /// Runs the stack and the `programs` until no received frame is left;
    /// then call [`Board::wait`] with `iface.poll_delay(board.now(), &sockets)`.
    ///
    /// Unlike a bare `Interface::poll`, this takes frames in one at a time
    /// (`poll_ingress_single`), runs `programs` after each and sends what they
    /// queued, so a burst larger than a socket's buffer (4 datagrams, say) is
    /// served instead of dropped inside one poll. `programs` also run once
    /// when no frame is waiting (timers, new connections), and no frame is
    /// taken in after their last run, so the sleep that follows cannot sit
    /// on data they have not seen.
    pub fn poll<F>(&mut self, iface: &mut Interface, sockets: &mut SocketSet<'_>, mut programs: F)
    where
        F: FnMut(Instant, &mut SocketSet<'_>),
    {
        let now = self.now();
        iface.poll_maintenance(now);
        loop {
            let ingress = iface.poll_ingress_single(now, &mut self.eth, sockets);
            programs(now, sockets);
            while iface.poll_egress(now, &mut self.eth, sockets) == PollResult::SocketStateChanged {
            }
            if ingress == PollIngressSingleResult::None {
                return;
            }
        }
    }

    /// Sleeps until `delay` has passed or a frame has arrived, whichever is
    /// first; `None` waits for a frame only. Pass `Interface::poll_delay`.
    ///
    /// The core sleeps in `WFI` and wakes at each SysTick (1 ms) and at the
    /// MAC's receive interrupt. Interrupts are masked from the "no frame yet"
    /// check to `WFI` (which still wakes on a pending interrupt), so a frame
    /// that arrives in between is not slept through.
    pub fn wait(&self, delay: Option<Duration>) {
        if delay == Some(Duration::ZERO) {
            return;
        }
        let deadline = delay.map(|d| self.now() + d);
        loop {
            if deadline.is_some_and(|deadline| self.now() >= deadline) {
                return;
            }
            let frame = cortex_m::interrupt::free(|_| {
                let pending = self.eth.mac().rx_pending();
                if !pending {
                    cortex_m::asm::wfi();
                }
                pending
            });
            if frame {
                return;
            }
        }
    }
}

/// Longest time [`run`] keeps the stack going after the program finished, so that
/// its last FIN, ACK or datagram leaves (the host's `LINGER`).
pub const LINGER: Duration = Duration::from_secs(2);

fn earliest(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Logs one program event, in the same text as the host binary prints it. After a
/// socket's close it also logs, at debug level, the stack's high-water mark.
pub fn log_event(event: &Event<'_>) {
    defmt::info!("{}", defmt::Display2Format(event));
    if matches!(event, Event::Closed { .. }) {
        defmt::debug!("stack used so far: {=usize} B", stack_used());
    }
}

/// Runs `program` on `stack` until it finishes, then exits QEMU: status 0 if it
/// succeeded, 1 if it failed. A program that never finishes (a server) runs forever.
///
/// `input` are the program's messages (the lines a user would type on the host);
/// they are fed while the program [`wants_input`](Program::wants_input), then its
/// input is ended.
///
/// Each round mirrors the host's poll loop with the board's two lessons: frames are
/// taken in one at a time (`poll_ingress_one`), the program runs after each and its
/// output is sent (`poll_egress`), and the round ends only after a program run that
/// followed no new frame, so the sleep ([`Board::wait`], until the earliest of the
/// stack's and the program's deadlines or the next frame) never sits on unread data.
/// After the program has finished, the stack runs until
/// [`is_idle`](SmolStack::is_idle) (at most [`LINGER`]) so that the last FIN leaves.
pub fn run<'a, const N: usize, P>(
    mut board: Board,
    mut stack: SmolStack<'a, N>,
    mut program: P,
    input: &[&[u8]],
) -> !
where
    P: Program<SmolStack<'a, N>>,
{
    let mut input = input.iter();
    let mut input_ended = false;
    let mut emit = |event: &Event<'_>| log_event(event);
    loop {
        let now = board.now();
        let mut wake_at;
        loop {
            let took = stack.poll_ingress_one(now, &mut board.eth);
            let poll = program.poll(&mut stack, now, &mut emit);
            wake_at = poll.wake_at;
            let mut fed = false;
            while program.wants_input() {
                let Some(message) = input.next() else { break };
                if let Err(e) = program.input(message) {
                    defmt::error!("input refused: {}", e);
                    exit(1);
                }
                fed = true;
            }
            if !input_ended && input.len() == 0 {
                program.end_input();
                input_ended = true;
                fed = true;
            }
            let mut sent = false;
            while stack.poll_egress(now, &mut board.eth) {
                sent = true;
            }
            if !(took || poll.progressed || fed || sent) {
                break;
            }
        }
        if let Some(outcome) = program.outcome() {
            linger(&mut board, &mut stack);
            exit(if outcome.is_ok() { 0 } else { 1 });
        }
        let now = board.now();
        let program_delay = wake_at.map(|at| if at > now { at - now } else { Duration::ZERO });
        board.wait(earliest(stack.poll_delay(now), program_delay));
    }
}

/// Keeps the stack running for at most [`LINGER`] until nothing is left to send.
fn linger<const N: usize>(board: &mut Board, stack: &mut SmolStack<'_, N>) {
    let end = board.now() + LINGER;
    loop {
        let now = board.now();
        while stack.poll_ingress_one(now, &mut board.eth) {}
        while stack.poll_egress(now, &mut board.eth) {}
        if stack.is_idle() || now >= end {
            return;
        }
        board.wait(earliest(stack.poll_delay(now), Some(end - now)));
    }
}

/// A seed for smoltcp from the host's time of day (semihosting `SYS_TIME`),
/// or a constant if the host does not answer.
fn random_seed() -> u64 {
    let secs = semihosting::sys::arm_compat::sys_time().unwrap_or(0) as u64;
    // splitmix64 finaliser, so that consecutive seconds give unrelated seeds.
    let mut z = secs.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

defmt::timestamp!("{=u64:ms}", clock::millis());

/// Deepest stack use since boot, in bytes: the free RAM between the end of
/// the statics and the top of RAM that the stack has ever written to.
///
/// cortex-m-rt's `paint-stack` fills that region with `0xCCCC_CCCC` at reset;
/// this scans up from its bottom for the first word that changed. It costs
/// one pass over the unused stack, so call it from time to time, not in a loop.
pub fn stack_used() -> usize {
    const PAINT: u32 = 0xcccc_cccc;
    unsafe extern "C" {
        static _stack_start: u32;
        static _stack_end: u32;
    }
    let top = &raw const _stack_start as usize;
    let bottom = &raw const _stack_end as usize;
    let mut addr = bottom;
    // Stop below the current frame: everything above it is in use anyway.
    let sp = cortex_m::register::msp::read() as usize;
    while addr < sp {
        // SAFETY: [bottom, sp) is RAM that no Rust object occupies (free stack
        // below the current frame); a word-aligned volatile read of it is
        // valid and observes no Rust value.
        if unsafe { core::ptr::read_volatile(addr as *const u32) } != PAINT {
            break;
        }
        addr += 4;
    }
    top - addr
}

/// Ends QEMU through semihosting with `code` as its exit status.
pub fn exit(code: i32) -> ! {
    semihosting::process::exit(code)
}

#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    if irqn == Irq::Ethernet as i16 {
        eth::acknowledge_rx_interrupt();
    } else {
        panic!("unexpected exception or interrupt {}", irqn);
    }
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    defmt::error!(
        "hard fault at pc={=u32:#010x} lr={=u32:#010x}",
        frame.pc(),
        frame.lr()
    );
    exit(1)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    static PANICKING: AtomicBool = AtomicBool::new(false);
    // A panic while logging one (e.g. inside the defmt logger) exits quietly
    // instead of recursing.
    if !PANICKING.swap(true, Ordering::Relaxed) {
        defmt::error!("{}", defmt::Display2Format(info));
    }
    exit(1)
}

#[defmt::panic_handler]
fn defmt_panic() -> ! {
    // `defmt::panic!` has already logged its message.
    exit(1)
}
