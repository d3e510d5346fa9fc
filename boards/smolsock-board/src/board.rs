//! The [`Board`] trait, the firmware loop [`run`] and the PHY-based [`EthBoard`].

use smolsock::runner::{self, LINGER, Messages};
use smolsock::smol::{SmolStack, StackConfig};
use smolsock::smoltcp::iface::SocketStorage;
use smolsock::smoltcp::phy::Device;
use smolsock::smoltcp::time::{Duration, Instant};
use smolsock::{Event, Program};

use crate::clock::Clock;

/// What a board gives the core: an Ethernet device, a clock, a way to sleep, and its
/// addresses. Everything else is shared.
pub trait Board {
    /// The board's Ethernet MAC as a smoltcp device.
    type Device: Device;

    /// The device.
    fn device(&mut self) -> &mut Self::Device;

    /// The current time.
    fn now(&self) -> Instant;

    /// The board's addresses and a seed that differs between boots.
    fn stack_config(&self) -> StackConfig;

    /// Sleeps until `delay` has passed or a frame may have arrived (`None`: no deadline).
    fn wait(&mut self, delay: Option<Duration>);

    /// Housekeeping once per loop (following the Ethernet link, say).
    fn tick(&mut self) {}

    /// Logs one program event (by default as the host prints it).
    fn log(event: &Event<'_>) {
        log_event(event);
    }

    /// The program has finished and its last packets have left. The default returns, and
    /// the board goes on answering ARP and ping; an emulator may exit here instead.
    fn finished(&mut self, outcome: smolsock::Result<()>) {
        let _ = outcome;
    }
}

/// Logs one program event, in the same text as the host binary prints it: the event's
/// `defmt::Format` sends its values, and the host's defmt decoder writes the text that
/// `Display` writes (no `core::fmt` in the firmware).
pub fn log_event(event: &Event<'_>) {
    defmt::info!("{}", event);
}

/// A [`SmolStack`] on the board's device with its [`Board::stack_config`], whose sockets
/// live in `storage`; add buffers with `add_tcp_buffers`/`add_udp_buffers`.
///
/// # Panics
/// Never with a board's constant configuration (the core rejects only a multicast MAC, a
/// non-unicast IP or an MTU too small for IPv4).
pub fn new_stack<'a, B: Board, const N: usize>(
    board: &mut B,
    storage: &'a mut [SocketStorage<'a>],
) -> SmolStack<'a, N> {
    let (config, now) = (board.stack_config(), board.now());
    stack_on(config, board.device(), storage, now)
}

/// [`new_stack`] from what was already asked of the board: [`program!`](crate::program)
/// builds the stack straight into its static, with interrupts masked, and asks the board
/// nothing there.
///
/// # Panics
/// As [`new_stack`].
pub fn stack_on<'a, D: Device, const N: usize>(
    config: StackConfig,
    device: &mut D,
    storage: &'a mut [SocketStorage<'a>],
    now: Instant,
) -> SmolStack<'a, N> {
    match SmolStack::new(config, device, storage, now) {
        Ok(stack) => stack,
        Err(e) => defmt::panic!("stack: {}", e),
    }
}

/// [`stack_on`], written straight into `slot` (a static): a stack with many sockets or
/// reassembly buffers is several KiB, and built in a firmware's `main` and moved into its
/// static it would keep that much of the call stack (twice: the core's `Result` and the
/// value) for as long as `main` runs, that is for good. Not inlined, so that what it
/// needs while it builds the stack is given back before the firmware's loop.
///
/// # Panics
/// As [`new_stack`].
#[inline(never)]
pub fn stack_into<'a, D: Device, const N: usize>(
    slot: &'a mut core::mem::MaybeUninit<SmolStack<'a, N>>,
    config: StackConfig,
    device: &mut D,
    storage: &'a mut [SocketStorage<'a>],
    now: Instant,
) -> &'a mut SmolStack<'a, N> {
    slot.write(stack_on(config, device, storage, now))
}

/// `slot` (a static) filled with empty socket storage in place. `[SocketStorage::EMPTY;
/// N]` is no pattern of zeros: for dozens of sockets (336 bytes each on the Cortex-M3) the
/// array would be built on the call stack and copied, and in a firmware's `main` that
/// room stays taken for good.
pub fn sockets_into<const N: usize>(
    slot: &'static mut core::mem::MaybeUninit<[SocketStorage<'static>; N]>,
) -> &'static mut [SocketStorage<'static>; N] {
    let first = slot.as_mut_ptr().cast::<SocketStorage<'static>>();
    for i in 0..N {
        // SAFETY: `first` points at the array's first element and i < N, so `first + i` is
        // inside the array, aligned for a `SocketStorage`; writing does not read (or drop)
        // the uninitialised value there.
        unsafe { first.add(i).write(SocketStorage::EMPTY) };
    }
    // SAFETY: the loop above initialised every one of the N elements.
    unsafe { slot.assume_init_mut() }
}

/// Frames the board's fault injector holds per direction (delay, reordering): about
/// 1.5 KiB each, in a static. One is enough to reorder by one frame and to duplicate; the
/// emulated board's tcp-server (64 KiB of RAM, 32 KiB of it socket buffers) overflowed its
/// stack into its statics with two (seen as a smoltcp panic on a corrupted socket).
#[cfg(feature = "faults")]
pub const FAULT_FRAMES: usize = 1;

/// What stands between the stack and the board's MAC: the fault injector with the
/// `faults` feature, nothing without.
#[cfg(feature = "faults")]
type Faults = &'static mut smolsock::faults::FaultInjector<FAULT_FRAMES>;
#[cfg(not(feature = "faults"))]
type Faults = ();

/// The fault injector, configured by `SMOLSOCK_FAULTS` when the firmware was built.
///
/// # Panics
/// When the firmware was built without `SMOLSOCK_FAULTS` or with a specification the core
/// refuses: a build-time setting, like the board's addresses.
#[cfg(feature = "faults")]
fn faults() -> Faults {
    use smolsock::faults::{FaultConfig, FaultInjector};
    let Some(spec) = option_env!("SMOLSOCK_FAULTS") else {
        defmt::panic!("the `faults` feature needs SMOLSOCK_FAULTS=spec when building");
    };
    let config = match FaultConfig::parse(spec) {
        Ok(config) => config,
        Err(e) => defmt::panic!("SMOLSOCK_FAULTS={}: {}", spec, e),
    };
    defmt::warn!("faults between the stack and the MAC: {}", spec);
    // Built in place, not on the stack: its frames take a few KiB.
    match cortex_m::singleton!(FAULTS: FaultInjector<FAULT_FRAMES> = FaultInjector::idle()) {
        Some(faults) => {
            faults.configure(config);
            faults
        }
        None => defmt::panic!("the fault injector was taken twice"),
    }
}

#[cfg(not(feature = "faults"))]
fn faults() -> Faults {}

/// Binds `$dev` to the board's device, behind the fault injector `$faults` when there is
/// one, for `$body`.
macro_rules! with_device {
    ($board:expr, $faults:expr, |$dev:ident| $body:expr) => {{
        #[cfg(feature = "faults")]
        let $dev = &mut $faults.wrap(smolsock::faults::Lent($board.device()));
        #[cfg(not(feature = "faults"))]
        let $dev = {
            let () = $faults;
            $board.device()
        };
        $body
    }};
}

/// How long the board may sleep: the stack's and the program's deadlines, and a frame the
/// fault injector holds.
fn sleep_for<const N: usize>(
    stack: &mut SmolStack<'_, N>,
    faults: &Faults,
    now: Instant,
    wake_at: Option<Instant>,
) -> Option<Duration> {
    #[cfg(feature = "faults")]
    let wake_at = match (wake_at, faults.next_release()) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    #[cfg(not(feature = "faults"))]
    let () = *faults;
    runner::sleep_for(stack, now, wake_at)
}

/// Runs `program` on `stack` forever: the core's [`runner::round`], then
/// [`Board::wait`] until the earliest deadline. `input` is fed to the program (what a
/// user would type on the host). Once the program has finished (or refused its input),
/// the outcome is logged, the stack runs until idle (at most [`LINGER`]), and
/// [`Board::finished`] is called; after that only the stack runs.
pub fn run<'a, B: Board, const N: usize>(
    mut board: B,
    stack: &mut SmolStack<'a, N>,
    program: &mut dyn Program<SmolStack<'a, N>>,
    input: &[&[u8]],
) -> ! {
    let mut input = Messages::new(input);
    let mut running = true;
    #[allow(clippy::let_unit_value)]
    let mut faults = faults();
    loop {
        let now = board.now();
        let mut wake_at = None;
        if running {
            let round = with_device!(board, faults, |device| runner::round(
                stack,
                device,
                program,
                &mut input,
                now,
                &mut |e| B::log(e),
            ));
            let outcome = match round {
                Ok(at) => {
                    wake_at = at;
                    program.outcome()
                }
                Err(e) => {
                    defmt::error!("input refused: {}", e);
                    Some(Err(e))
                }
            };
            if let Some(outcome) = outcome {
                finish(&mut board, stack, &mut faults, outcome);
                running = false;
                wake_at = None;
            }
        } else {
            with_device!(board, faults, |device| runner::settle(stack, device, now));
        }
        board.tick();
        let delay = sleep_for(stack, &faults, now, wake_at);
        board.wait(delay);
    }
}

fn finish<B: Board, const N: usize>(
    board: &mut B,
    stack: &mut SmolStack<'_, N>,
    faults: &mut Faults,
    outcome: smolsock::Result<()>,
) {
    match outcome {
        Ok(()) => defmt::info!("program finished: ok"),
        Err(e) => defmt::error!("program failed: {}", e),
    }
    let end = board.now() + LINGER;
    loop {
        let now = board.now();
        if with_device!(board, faults, |device| runner::settle(stack, device, now)) || now >= end {
            break;
        }
        let delay = sleep_for(stack, faults, now, Some(end));
        board.wait(delay);
    }
    board.finished(outcome);
}

/// An Ethernet device whose PHY link can be followed (cable re-plugs, speed changes).
pub trait LinkPoll {
    /// Asks the PHY about the link and adapts the MAC to it.
    fn poll_link(&mut self);
}

/// How often an [`EthBoard`] asks the PHY about the link.
pub const LINK_POLL_MS: u64 = 500;

/// A board with a MAC, a PHY and no receive interrupt: it looks for frames once a
/// SysTick millisecond and follows the link every [`LINK_POLL_MS`].
pub struct EthBoard<D> {
    device: D,
    clock: Clock,
    config: StackConfig,
    next_link_poll: u64,
}

impl<D: Device + LinkPoll> EthBoard<D> {
    /// A board from its initialised device, its running clock and its addresses.
    pub fn new(device: D, clock: Clock, config: StackConfig) -> Self {
        let next_link_poll = clock.now_ms() + LINK_POLL_MS;
        Self {
            device,
            clock,
            config,
            next_link_poll,
        }
    }
}

impl<D: Device + LinkPoll> Board for EthBoard<D> {
    type Device = D;

    fn device(&mut self) -> &mut D {
        &mut self.device
    }

    fn now(&self) -> Instant {
        self.clock.now()
    }

    fn stack_config(&self) -> StackConfig {
        self.config
    }

    fn wait(&mut self, delay: Option<Duration>) {
        self.clock.tick(delay);
    }

    fn tick(&mut self) {
        if self.clock.now_ms() >= self.next_link_poll {
            self.device.poll_link();
            self.next_link_poll = self.clock.now_ms() + LINK_POLL_MS;
        }
    }
}
