//! The host's poll loops: one program on a smoltcp stack over a TAP/TUN device
//! ([`run`]), or on the host kernel's stack ([`run_kernel`]).
//!
//! On smoltcp each iteration runs the core's [`runner::round`] (frames in one at a time, the program,
//! its input, frames out, until nothing moves), then sleeps in `ppoll(2)` on the device
//! (and stdin, when the program waits for a line) until the earliest deadline of the stack
//! and the program. There is no busy loop and no fixed sleep.

use std::io;
use std::os::fd::RawFd;

use smolsock::runner;
use smolsock::{Error, Program};
use smoltcp::time::{Duration, Instant};

use crate::input::LineInput;
use crate::kernel::KernelStack;
use crate::output::Printer;
use crate::setup::HostStack;
use crate::tap::HostDevice;

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
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Program(e) => write!(f, "{e}"),
            RunError::Input(e) => write!(f, "input refused: {e}"),
            RunError::Device(e) => write!(f, "device error: {e}"),
            RunError::Wait(e) => write!(f, "waiting for sockets failed: {e}"),
        }
    }
}

impl std::error::Error for RunError {}

/// What [`wait_readable`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    /// The device has a frame (or an error to report).
    pub device: bool,
    /// The input descriptor has data or reached its end.
    pub input: bool,
}

/// A `ppoll(2)` timeout.
pub(crate) fn timespec(d: Duration) -> libc::timespec {
    let micros = d.total_micros();
    libc::timespec {
        tv_sec: libc::time_t::try_from(micros / 1_000_000).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::try_from((micros % 1_000_000) * 1000).unwrap_or(0),
    }
}

/// Waits until the device or `input` (when given) is readable, or `timeout` passes
/// (`None`: no limit). Allocation-free: it runs once per loop iteration.
pub fn wait_readable(
    device: RawFd,
    input: Option<RawFd>,
    timeout: Option<Duration>,
) -> io::Result<Ready> {
    let entry = |fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let mut fds = [entry(device), entry(input.unwrap_or(-1))];
    let count: libc::nfds_t = if input.is_some() { 2 } else { 1 };
    let ts = timeout.map(timespec);
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `fds` (at least `count` entries) and `ts` outlive the call.
    let rc = unsafe { libc::ppoll(fds.as_mut_ptr(), count, ts_ptr, std::ptr::null()) };
    if rc < 0 {
        let error = io::Error::last_os_error();
        if error.kind() == io::ErrorKind::Interrupted {
            return Ok(Ready {
                device: false,
                input: false,
            });
        }
        return Err(error);
    }
    let readable =
        |p: &libc::pollfd| p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0;
    Ok(Ready {
        device: readable(&fds[0]),
        input: input.is_some() && readable(&fds[1]),
    })
}

/// Runs `program` on `stack` over `device` until it finishes.
pub fn run<D: HostDevice>(
    stack: &mut HostStack,
    device: &mut D,
    program: &mut dyn Program<HostStack>,
    input: &mut LineInput,
    printer: &mut Printer,
) -> Result<(), RunError> {
    loop {
        let now = Instant::now();
        let wake_at = runner::round(stack, device, program, input, now, &mut |e| {
            printer.event(e)
        })
        .map_err(RunError::Input)?;
        if let Some(error) = device.take_error() {
            return Err(RunError::Device(error));
        }
        if let Some(outcome) = program.outcome() {
            linger(stack, device);
            return outcome.map_err(RunError::Program);
        }
        let timeout = until_release(device, now, runner::sleep_for(stack, now, wake_at));
        let stdin = input.wait_fd().filter(|_| program.wants_input());
        let ready = wait_readable(device.fd(), stdin, timeout).map_err(RunError::Device)?;
        if ready.input {
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
        if runner::settle(stack, device, now) || now >= end || device.take_error().is_some() {
            return;
        }
        let timeout = until_release(device, now, runner::sleep_for(stack, now, Some(end)));
        if wait_readable(device.fd(), None, timeout).is_err() {
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
    loop {
        let now = Instant::now();
        let wake_at = runner::program_round(stack, program, input, now, &mut |e| printer.event(e))
            .map_err(RunError::Input)?;
        if let Some(outcome) = program.outcome() {
            return outcome.map_err(RunError::Program);
        }
        let timeout = wake_at.map(|at| if at > now { at - now } else { Duration::ZERO });
        let stdin = input.wait_fd().filter(|_| program.wants_input());
        if stack.wait(stdin, timeout).map_err(RunError::Wait)? {
            input.read_available();
        }
    }
}
