//! Board support for smolsock on QEMU's `lm3s6965evb` machine: a Cortex-M3
//! (LM3S6965, 256 KiB flash, 64 KiB RAM) whose Stellaris Ethernet MAC QEMU
//! attaches to a TAP device on the host.
//!
//! The board gives the shared firmware (`smolsock-board`) exactly what it needs,
//! as an implementation of `smolsock_board::Board`:
//!
//! * [`Ethernet`], a [`smoltcp::phy::Device`] over the MAC ([`eth`]);
//! * the host's monotonic clock, read through semihosting (`SYS_ELAPSED`), as the stack's
//!   time (see [`Board::now`]), and a SysTick millisecond tick (`smolsock_board::Clock`)
//!   at the 12.5 MHz core clock that wakes the core and stamps the log;
//! * [`Board::wait`], which sleeps (`WFI`) until a deadline or a frame;
//! * [`Uart`], UART0 as `smolsock_board::Serial` ([`uart`]), the `remote` firmware's link
//!   to the host, and `smolsock_board::RemoteBoard`, whose sleep
//!   ([`Board::wait_for_input`]) a byte from the host ends too;
//! * its place in the address plan ([`MAC_ADDRESS`], [`IP_ADDRESS`], from
//!   `smolsock_board::addresses`) and a seed from the host's clock
//!   (predictable: the emulated machine has no RNG; see `random_seed`);
//! * an exit through semihosting when a program finishes (status 0, or 1 if it failed);
//! * [`stack_used`], the stack's high-water mark, for RAM budgets;
//! * defmt logging over semihosting, a buffer of frames per call (`log.rs`), and a panic/fault handler that logs and ends QEMU
//!   with a failing exit status.
//!
//! A firmware names the board, its program and its buffer sizes:
//!
//! ```ignore
//! smolsock_board::program!(
//!     board = smolsock_qemu_lm3s6965::Board::init(),
//!     udp_recv {
//!         buf: 1536,
//!         datagrams: 4,
//!         recv: 1024
//!     }
//! );
//! ```
#![no_std]
#![warn(missing_docs)]

pub mod eth;
mod log;
mod mmio;
pub mod uart;

use core::sync::atomic::{AtomicBool, Ordering};

use cortex_m::interrupt::InterruptNumber;
use cortex_m::peripheral::NVIC;
use cortex_m_rt::{ExceptionFrame, exception};
use smolsock::Event;
use smolsock::smol::StackConfig;
use smolsock_board::{Clock, Serial as _, addresses};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, Ipv4Address, Ipv4Cidr};

pub use eth::Ethernet;
pub use uart::Uart;

/// This board's number in the address plan: 192.168.69.3.
pub const BOARD_NUMBER: u8 = 3;
/// The board's MAC address (the project's address plan; QEMU's own default,
/// 52:54:00:12:34:56, is overwritten at init).
pub const MAC_ADDRESS: EthernetAddress = addresses::mac_address(BOARD_NUMBER);
/// The board's IPv4 address.
pub const IP_ADDRESS: Ipv4Address = addresses::ip_address(BOARD_NUMBER);
// The prefix of the TAP network (192.168.69.0/24) and its Linux side, the usual peer.
pub use smolsock_board::addresses::{PEER_ADDRESS, PREFIX_LEN};

/// Interrupt lines of the LM3S6965 that this crate uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
enum Irq {
    /// UART0 (IRQ 5).
    Uart0 = 5,
    /// The Ethernet MAC (IRQ 42).
    Ethernet = 42,
}

// SAFETY: 5 and 42 are UART0's and the Ethernet MAC's lines on the LM3S6965, below the
// NVIC's number of lines.
unsafe impl InterruptNumber for Irq {
    fn number(self) -> u16 {
        self as u16
    }
}

/// Core clock of the LM3S6965 out of reset: QEMU models the 12.5 MHz that the reset
/// value of `RCC` selects (its `SYSDIV` field divides by 16).
pub const CORE_CLOCK_HZ: u32 = 12_500_000;

/// Everything a firmware needs from the board.
#[derive(Debug)]
pub struct Board {
    /// The Ethernet device, for `Interface::new` and `Interface::poll`.
    pub eth: Ethernet,
    /// UART0, the `remote` firmware's link to the host.
    pub uart: Uart,
    /// The millisecond clock.
    pub clock: Clock,
    /// Ticks of the host's clock (semihosting `SYS_ELAPSED`) per microsecond; 0 when the
    /// host has no such clock, and then the time is SysTick's.
    host_ticks_per_us: u64,
}

impl Board {
    /// Starts SysTick, the Ethernet MAC (with [`MAC_ADDRESS`]) and UART0, and enables
    /// the MAC's and the UART's receive interrupts, which only wake the core.
    ///
    /// # Panics
    /// If called more than once (the core peripherals are taken).
    pub fn init() -> Board {
        let Some(cp) = cortex_m::Peripherals::take() else {
            defmt::panic!("Board::init called twice")
        };
        // The driver's frame buffers, in .bss rather than in main's stack frame.
        static mut ETH_BUFFERS: eth::Buffers = eth::Buffers::new();
        // SAFETY: `Peripherals::take` succeeded, so this line runs once and
        // this is the only reference to ETH_BUFFERS there will ever be.
        let buffers = unsafe { &mut *core::ptr::addr_of_mut!(ETH_BUFFERS) };
        let clock = Clock::start(cp.SYST, CORE_CLOCK_HZ);
        let mac = eth::Mac::init(MAC_ADDRESS);
        // SAFETY: the handler for this line (DefaultHandler below) only
        // acknowledges the MAC interrupt; no critical section depends on it
        // being masked.
        unsafe { NVIC::unmask(Irq::Ethernet) };
        let uart = Uart::init();
        // SAFETY: as for the MAC: the handler only acknowledges the UART's receive
        // interrupts.
        unsafe { NVIC::unmask(Irq::Uart0) };
        defmt::info!(
            "board: lm3s6965evb, MAC {}, IP {}/{}",
            mac.address(),
            IP_ADDRESS,
            PREFIX_LEN
        );
        // QEMU counts in nanoseconds; a host that answers neither call (or counts
        // slower than a microsecond) leaves the time to SysTick.
        let host_ticks_per_us = match semihosting::sys::arm_compat::sys_tickfreq() {
            Ok(hz) if hz >= 1_000_000 && semihosting::sys::arm_compat::sys_elapsed().is_ok() => {
                hz as u64 / 1_000_000
            }
            _ => 0,
        };
        Board {
            eth: Ethernet::new(mac, buffers),
            uart,
            clock,
            host_ticks_per_us,
        }
    }

    /// The current time, in microseconds: the host's monotonic clock since QEMU started,
    /// read through semihosting (`SYS_ELAPSED`, a trap into QEMU of a microsecond or
    /// two).
    ///
    /// Not SysTick's count: QEMU's SysTick expires on the host's clock, but an expiry
    /// that comes while the last one is still pending is lost (one pending bit), and when
    /// the host is busy QEMU delivers late expiries back to back. Under a full-speed
    /// iperf3 test the count fell behind the host's clock by up to a sixth (2.52 s
    /// counted in a 3.00 s test), which the board then reported as its test's length and
    /// every TCP timer followed.
    pub fn now(&self) -> Instant {
        if self.host_ticks_per_us != 0
            && let Ok(ticks) = semihosting::sys::arm_compat::sys_elapsed()
        {
            return Instant::from_micros((ticks / self.host_ticks_per_us) as i64);
        }
        self.clock.now()
    }

    /// Sleeps until `delay` has passed or a frame has arrived, whichever is
    /// first; `None` waits for a frame only. Pass `Interface::poll_delay`.
    ///
    /// The core sleeps in `WFI` and wakes at each SysTick (1 ms) and at the
    /// MAC's receive interrupt. Interrupts are masked from the "no frame yet"
    /// check to `WFI` (which still wakes on a pending interrupt), so a frame
    /// that arrives in between is not slept through.
    pub fn wait(&self, delay: Option<Duration>) {
        self.sleep(delay, false);
    }

    /// [`wait`](Self::wait) that a byte received on UART0 ends too (the `remote`
    /// firmware's sleep): the UART's receive interrupt wakes the core as the MAC's does,
    /// and its FIFO is checked with the MAC's, interrupts masked, before each `WFI`.
    pub fn wait_for_input(&self, delay: Option<Duration>) {
        self.sleep(delay, true);
    }

    fn sleep(&self, delay: Option<Duration>, serial: bool) {
        if delay == Some(Duration::ZERO) {
            return;
        }
        let deadline = delay.map(|d| self.now() + d);
        loop {
            if deadline.is_some_and(|deadline| self.now() >= deadline) {
                return;
            }
            let input = cortex_m::interrupt::free(|_| {
                let pending = self.eth.mac().rx_pending() || (serial && self.uart.rx_pending());
                if !pending {
                    cortex_m::asm::wfi();
                }
                pending
            });
            if input {
                return;
            }
        }
    }
}

impl smolsock_board::Board for Board {
    type Device = Ethernet;

    fn device(&mut self) -> &mut Ethernet {
        &mut self.eth
    }

    fn now(&self) -> Instant {
        Board::now(self)
    }

    fn stack_config(&self) -> StackConfig {
        // The plan's addresses as a literal: `addresses::stack_config(BOARD_NUMBER, seed)`,
        // as on the Nucleos, makes this firmware's code a few bytes larger.
        StackConfig {
            mac: MAC_ADDRESS,
            ip: Ipv4Cidr::new(IP_ADDRESS, PREFIX_LEN),
            gateway: None,
            seed: random_seed(),
        }
    }

    fn wait(&mut self, delay: Option<Duration>) {
        Board::wait(self, delay);
    }

    /// Logs the event as the host prints it and, after a close, the stack's high-water
    /// mark at debug level.
    ///
    /// Before an event whose text rounds or leaves out a field of its JSON record (the
    /// received message count of a close, the microseconds of an iperf3 interval or
    /// result), a frame `record: KEY={=u64}...` carries the exact values: `qemu-run`
    /// reads it into the next event's JSON line (`--json`) and never prints it.
    fn log(event: &Event<'_>) {
        log_record(event);
        smolsock_board::log_event(event);
        if matches!(event, Event::Closed { .. }) {
            defmt::debug!("stack used so far: {=usize} B", stack_used());
        }
    }

    /// Ends QEMU: status 0 if the program succeeded, 1 if it failed.
    fn finished(&mut self, outcome: smolsock::Result<()>) {
        exit(if outcome.is_ok() { 0 } else { 1 });
    }
}

/// The `remote` firmware's board: its sleep ends on a byte from the host on UART0 too.
impl smolsock_board::RemoteBoard for Board {
    type Serial = Uart;

    fn parts(&mut self) -> (&mut Ethernet, &mut Uart) {
        (&mut self.eth, &mut self.uart)
    }

    fn wait_for_input(&mut self, delay: Option<Duration>) {
        Board::wait_for_input(self, delay);
    }
}

/// The exact values of `event`'s JSON record that its text rounds or leaves out, as a
/// `record:` frame for `qemu-run` (see [`Board::log`](smolsock_board::Board::log)).
pub fn log_record(event: &Event<'_>) {
    match *event {
        Event::Closed { totals, .. } => {
            defmt::info!("record: messages_in={=u64}", totals.messages_in)
        }
        Event::IperfInterval {
            start_us, end_us, ..
        } => defmt::info!("record: start_us={=u64} end_us={=u64}", start_us, end_us),
        Event::IperfResult { micros, .. } => {
            defmt::info!("record: duration_us={=u64}", micros)
        }
        _ => {}
    }
}

/// A seed for smoltcp (TCP initial sequence numbers, ephemeral ports) from the host's
/// time of day (semihosting `SYS_TIME`, whole seconds, 0 if the host does not answer)
/// mixed with the SysTick count, so that two boots differ.
///
/// It is NOT unpredictable: QEMU's `lm3s6965evb` has no random number generator (the real
/// LM3S6965 has none either), the time of day is known to anyone on the network to the
/// second, and the time since boot and the SysTick count at this point add at most a few
/// tens of thousands of values to try (12,500 counts per millisecond). Someone
/// who can send to the board can guess its sequence numbers and ports. That is acceptable
/// here because the board only exists in an emulator, on a TAP inside a network namespace
/// that the tests (or the user) create, with the host's kernel as the only peer; the boards
/// meant for real networks seed from their hardware RNG.
fn random_seed() -> u64 {
    let secs = semihosting::sys::arm_compat::sys_time().unwrap_or(0) as u64;
    smolsock_board::seed::seed(&[secs as u32, (secs >> 32) as u32])
}

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
    } else if irqn == Irq::Uart0 as i16 {
        uart::acknowledge_rx_interrupt();
    } else {
        defmt::panic!("unexpected exception or interrupt {=i16}", irqn);
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
    // instead of recursing. The place and a plain message only: formatting the
    // `PanicInfo` would link `core::fmt`.
    if !PANICKING.swap(true, Ordering::Relaxed) {
        smolsock_board::log_panic(info);
    }
    exit(1)
}

#[defmt::panic_handler]
fn defmt_panic() -> ! {
    // `defmt::panic!` has already logged its message.
    exit(1)
}
