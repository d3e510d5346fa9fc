//! The host's poll loops: one program on a smoltcp stack over a TAP/TUN device
//! ([`run`]), on the host kernel's stack ([`run_kernel`]), or on a board's stack over its
//! serial link ([`run_board`]).
//!
//! On smoltcp each iteration runs the core's [`runner::round`] (frames in one at a time, the program,
//! its input, frames out, until nothing moves), then sleeps in `ppoll(2)` on the device
//! (and stdin, when the program waits for a line) until the earliest deadline of the stack
//! and the program. There is no busy loop and no fixed sleep.
//!
//! SIGINT and SIGTERM end a run cleanly: the program's [`Program::shutdown`] closes every
//! connection (FIN, or RST where data would be lost) and reports its totals, the stack
//! sends the last segments, and the run returns [`RunError::Signal`]. The signal reaches
//! the wait through a self-pipe (signal-hook), so one that arrives just before the wait
//! still wakes it. A fatal error (the device, the wait, refused input) shuts down the
//! same way.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use smolsock::event::Event;
use smolsock::runner;
use smolsock::{Error, LossCause, Program};
use smoltcp::time::{Duration, Instant};

use crate::input::LineInput;
use crate::output::Printer;
use smolsock_linux::stack::HostStack;
use smolsock_linux::tap::HostDevice;
use smolsock_linux::wait::{self, READABLE, Waiter};
use smolsock_remote::host::RemoteStack;
use smolsock_std::KernelStack;

/// How a run ended, when not well.
#[derive(Debug)]
pub enum RunError {
    /// The program failed (its error was already printed as an event).
    Program(Error),
    /// The program refused an input message.
    Input(Error),
    /// The device failed.
    Device(io::Error),
    /// Waiting on the kernel's sockets failed.
    Wait(io::Error),
    /// SIGINT or SIGTERM (the number) ended the run; every connection was closed first.
    Signal(i32),
    /// The link to the board failed (no answer, garbage, a reset): the details.
    Board(String),
}

impl RunError {
    /// The exit status for this ending: 128 + the signal's number after a signal (130
    /// for SIGINT, 143 for SIGTERM, as shells report), else 1.
    pub fn exit_status(&self) -> u8 {
        match self {
            RunError::Signal(signal) => u8::try_from(128 + signal).unwrap_or(1),
            _ => 1,
        }
    }
}

/// SIGINT and SIGTERM, caught for a clean shutdown while installed: a flag says which
/// came, and a self-pipe wakes the poll wait (its read end goes in the poll set). A second
/// signal while the first is being handled ends the process at once, as an unhandled one
/// would.
pub struct Stop {
    read: UnixStream,
    which: Arc<AtomicUsize>,
    ids: Vec<signal_hook::SigId>,
}

impl Stop {
    /// Installs the handlers (replaced by the default ones when dropped).
    pub fn install() -> io::Result<Self> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        let which = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(AtomicBool::new(false));
        let mut ids = Vec::new();
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            let status = 128 + signal;
            // In order: a second signal exits; the first sets the flags, then wakes the wait.
            ids.push(signal_hook::flag::register_conditional_shutdown(
                signal,
                status,
                Arc::clone(&seen),
            )?);
            ids.push(signal_hook::flag::register(signal, Arc::clone(&seen))?);
            let number = usize::try_from(signal).unwrap_or(0);
            ids.push(signal_hook::flag::register_usize(
                signal,
                Arc::clone(&which),
                number,
            )?);
            ids.push(signal_hook::low_level::pipe::register(
                signal,
                write.try_clone()?,
            )?);
        }
        Ok(Self { read, which, ids })
    }

    /// The descriptor that becomes readable when a signal came.
    pub fn fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// The signal that came, if one did. The flag is read first, so the loop pays no
    /// system call per round; the pipe is drained only once a signal came (its handler
    /// sets the flag before it writes the pipe).
    pub fn signal(&self) -> Option<i32> {
        match self.which.load(Ordering::SeqCst) {
            0 => None,
            n => {
                let mut sink = [0u8; 16];
                while matches!((&self.read).read(&mut sink), Ok(n) if n > 0) {}
                i32::try_from(n).ok()
            }
        }
    }
}

impl Drop for Stop {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Program(e) => write!(f, "{e}"),
            RunError::Input(e) => write!(f, "input refused: {e}"),
            RunError::Device(e) => write!(f, "device error: {e}"),
            RunError::Wait(e) => write!(f, "waiting for sockets failed: {e}"),
            RunError::Board(e) => write!(f, "the board's stack is out of reach: {e}"),
            RunError::Signal(signal) => {
                let name = match *signal {
                    libc::SIGINT => "SIGINT",
                    libc::SIGTERM => "SIGTERM",
                    _ => "a signal",
                };
                write!(f, "stopped by {name}; every connection was closed")
            }
        }
    }
}

impl std::error::Error for RunError {}

/// Frames a device dropped before the stack read them, reported as they grow.
struct DeviceLosses {
    base: Option<u64>,
    reported: u64,
    next_check: Instant,
}

impl DeviceLosses {
    /// How often, at most, the counter is read while frames arrive.
    const CHECK: Duration = Duration::from_secs(1);

    fn new<D: HostDevice>(device: &D) -> Self {
        Self {
            base: device.queue_drops(),
            reported: 0,
            next_check: Instant::now() + Self::CHECK,
        }
    }

    /// Reports new drops when a check is due (or `now` is `None`: the run ends).
    fn check<D: HostDevice>(&mut self, device: &D, now: Option<Instant>, printer: &mut Printer) {
        if let Some(now) = now {
            if now < self.next_check {
                return;
            }
            self.next_check = now + Self::CHECK;
        }
        let (Some(base), Some(count)) = (self.base, device.queue_drops()) else {
            return;
        };
        let total = count.saturating_sub(base);
        if total > self.reported {
            printer.event(&Event::Lost {
                count: total - self.reported,
                total,
                cause: LossCause::DeviceQueue,
            });
            self.reported = total;
        }
    }
}

/// Runs `program` on `stack` over `device` until it finishes, a signal stops it, or a
/// fatal error; in the last two cases the program is shut down first and the stack given
/// up to [`runner::LINGER`] to send the last FINs and resets. Frames the device dropped
/// before the stack read them (the kernel's TAP queue overflowing) are reported as
/// [`Event::Lost`].
pub fn run<D: HostDevice>(
    stack: &mut HostStack,
    device: &mut D,
    program: &mut dyn Program<HostStack>,
    input: &mut LineInput,
    printer: &mut Printer,
) -> Result<(), RunError> {
    let stop = Stop::install().map_err(RunError::Wait)?;
    let mut losses = DeviceLosses::new(device);
    let result = run_until_stopped(stack, device, program, input, printer, &stop, &mut losses);
    if program.outcome().is_none() || matches!(result, Err(RunError::Signal(_))) {
        program.shutdown(stack, &mut |e| printer.event(e));
    }
    linger(stack, device);
    losses.check(device, None, printer);
    result
}

fn run_until_stopped<D: HostDevice>(
    stack: &mut HostStack,
    device: &mut D,
    program: &mut dyn Program<HostStack>,
    input: &mut LineInput,
    printer: &mut Printer,
    stop: &Stop,
    losses: &mut DeviceLosses,
) -> Result<(), RunError> {
    let mut waiter = Waiter::new();
    loop {
        if let Some(signal) = stop.signal() {
            return Err(RunError::Signal(signal));
        }
        let now = Instant::now();
        let wake_at = runner::round(stack, device, program, input, now, &mut |e| {
            printer.event(e)
        })
        .map_err(RunError::Input)?;
        if let Some(error) = device.take_error() {
            return Err(RunError::Device(error));
        }
        if let Some(outcome) = program.outcome() {
            return outcome.map_err(RunError::Program);
        }
        let timeout = until_release(device, now, runner::sleep_for(stack, now, wake_at));
        // Stdin is read even when no line is wanted, so that its end is seen (it ends an
        // interactive server); what is read waits in `input` until wanted.
        let stdin = input.wait_fd();
        printer.flush();
        device.flush();
        waiter.clear();
        let frames = waiter.add(device.fd(), READABLE);
        let stdin = stdin.map(|fd| waiter.add(fd, READABLE));
        waiter.add(stop.fd(), READABLE);
        waiter.wait(timeout).map_err(RunError::Device)?;
        if waiter.fired(frames) {
            losses.check(device, Some(now), printer);
        }
        if stdin.is_some_and(|token| waiter.fired(token)) {
            input.read_available();
        }
    }
}

/// `timeout`, shortened to wake when the device's next held frame is due.
fn until_release<D: HostDevice>(
    device: &D,
    now: Instant,
    timeout: Option<Duration>,
) -> Option<Duration> {
    let Some(at) = device.next_release() else {
        return timeout;
    };
    let release = if at > now { at - now } else { Duration::ZERO };
    Some(timeout.map_or(release, |t| t.min(release)))
}

/// Keeps the stack running for at most [`runner::LINGER`] until nothing is left to send.
fn linger<D: HostDevice>(stack: &mut HostStack, device: &mut D) {
    let end = Instant::now() + runner::LINGER;
    loop {
        let now = Instant::now();
        let idle = runner::settle(stack, device, now);
        device.flush();
        if idle || now >= end || device.take_error().is_some() {
            return;
        }
        let timeout = until_release(device, now, runner::sleep_for(stack, now, Some(end)));
        if wait::ready(device.fd(), READABLE, timeout).is_err() {
            return;
        }
    }
}

/// Runs `program` on the host kernel's stack until it finishes: the program runs until
/// nothing moves, then the loop sleeps in `poll(2)` on the sockets that would block (and
/// stdin, when the program waits for a line) until the program's next deadline. The
/// kernel sends the last FIN or datagram by itself, so there is nothing to linger for.
pub fn run_kernel(
    stack: &mut KernelStack,
    program: &mut dyn Program<KernelStack>,
    input: &mut LineInput,
    printer: &mut Printer,
) -> Result<(), RunError> {
    let stop = Stop::install().map_err(RunError::Wait)?;
    let result = run_kernel_until_stopped(stack, program, input, printer, &stop);
    if program.outcome().is_none() || matches!(result, Err(RunError::Signal(_))) {
        // The kernel sends the FINs and resets by itself once the sockets are closed.
        program.shutdown(stack, &mut |e| printer.event(e));
    }
    result
}

/// How one turn of [`program_turn`] left the run.
enum Turn {
    /// The program finished (or failed): the run's result.
    Ended(Result<(), RunError>),
    /// The program runs on; when it next needs a turn.
    Next(Option<Instant>),
}

/// One turn of a loop whose stack moves packets by itself (the kernel's, a board's): a
/// signal ends the run; else the program runs until nothing moves, and says whether it
/// finished.
fn program_turn<S: smolsock::Stack>(
    stack: &mut S,
    program: &mut dyn Program<S>,
    input: &mut LineInput,
    printer: &mut Printer,
    stop: &Stop,
    now: Instant,
) -> Result<Turn, RunError> {
    if let Some(signal) = stop.signal() {
        return Err(RunError::Signal(signal));
    }
    let wake_at = runner::program_round(stack, program, input, now, &mut |e| printer.event(e))
        .map_err(RunError::Input)?;
    Ok(match program.outcome() {
        Some(outcome) => Turn::Ended(outcome.map_err(RunError::Program)),
        None => Turn::Next(wake_at),
    })
}

fn run_kernel_until_stopped(
    stack: &mut KernelStack,
    program: &mut dyn Program<KernelStack>,
    input: &mut LineInput,
    printer: &mut Printer,
    stop: &Stop,
) -> Result<(), RunError> {
    loop {
        let now = Instant::now();
        let wake_at = match program_turn(stack, program, input, printer, stop, now)? {
            Turn::Ended(result) => return result,
            Turn::Next(wake_at) => wake_at,
        };
        let timeout = wake_at.map(|at| if at > now { at - now } else { Duration::ZERO });
        let stdin = input.wait_fd();
        printer.flush();
        if stack
            .wait_or(stdin, Some(stop.fd()), timeout)
            .map_err(RunError::Wait)?
        {
            input.read_available();
        }
    }
}

/// Longest wait on the board in one round, so that stdin and signals are seen promptly (the
/// wait runs on the board: the host cannot add its own descriptors to it).
const BOARD_TICK: Duration = Duration::from_millis(50);

/// Runs `program` on a board's stack until it finishes, a signal stops it, or the link to
/// the board fails: the program runs on the host until nothing moves, then the host waits
/// on the board (a `Wait` call, answered when the board's stack moves a frame) until the
/// program's next deadline, at most [`BOARD_TICK`] at a time. At the end the board is given
/// up to [`runner::LINGER`] to send the last FINs.
pub fn run_board(
    stack: &mut RemoteStack,
    program: &mut dyn Program<RemoteStack>,
    input: &mut LineInput,
    printer: &mut Printer,
) -> Result<(), RunError> {
    let stop = Stop::install().map_err(RunError::Wait)?;
    let result = run_board_until_stopped(stack, program, input, printer, &stop);
    if stack.failure().is_none() {
        if program.outcome().is_none() || matches!(result, Err(RunError::Signal(_))) {
            program.shutdown(stack, &mut |e| printer.event(e));
        }
        let end = Instant::now() + runner::LINGER;
        while Instant::now() < end && matches!(stack.is_idle(), Ok(false)) {
            let _ = stack.wait(std::time::Duration::from_micros(BOARD_TICK.total_micros()));
        }
    }
    match stack.failure() {
        Some(failure) if !matches!(result, Err(RunError::Signal(_))) => {
            Err(RunError::Board(failure))
        }
        _ => result,
    }
}

fn run_board_until_stopped(
    stack: &mut RemoteStack,
    program: &mut dyn Program<RemoteStack>,
    input: &mut LineInput,
    printer: &mut Printer,
    stop: &Stop,
) -> Result<(), RunError> {
    loop {
        let now = Instant::now();
        let turn = program_turn(stack, program, input, printer, stop, now)?;
        // A broken link explains the program's failure better than the program can.
        if let Some(failure) = stack.failure() {
            return Err(RunError::Board(failure));
        }
        let wake_at = match turn {
            Turn::Ended(result) => return result,
            Turn::Next(wake_at) => wake_at,
        };
        let timeout = wake_at.map_or(BOARD_TICK, |at| {
            if at > now {
                (at - now).min(BOARD_TICK)
            } else {
                Duration::ZERO
            }
        });
        printer.flush();
        if timeout != Duration::ZERO {
            let timeout = std::time::Duration::from_micros(timeout.total_micros());
            if let Err(e) = stack.wait(timeout) {
                return Err(RunError::Board(
                    stack.failure().unwrap_or_else(|| e.to_string()),
                ));
            }
        }
        if let Some(fd) = input.wait_fd()
            && wait::ready(fd, READABLE, Some(Duration::ZERO)).unwrap_or(false)
        {
            input.read_available();
        }
    }
}
