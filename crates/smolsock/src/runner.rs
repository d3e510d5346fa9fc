//! The poll round every driver runs: the host's loop over a TAP, and each board's `main`.
//!
//! A driver repeats: [`round`], then sleep for [`sleep_for`] (or until a frame arrives).
//! A round takes received frames in one at a time, runs the program after each and feeds
//! it input; once no frame is waiting (or after [`BATCH`] frames) it sends what was
//! queued; and it repeats until nothing moves, or for at most [`MAX_TURNS`] turns, so that
//! the driver's clock moves under a sustained transfer. Taking one frame at a time lets a
//! program with small socket buffers read a burst instead of losing it, and since the
//! round ends on a program run that followed no new frame, the sleep never sits on data
//! the program has not seen. After the program has finished, [`settle`] lets the last FIN
//! or datagram leave.

use smoltcp::phy::Device;
use smoltcp::time::{Duration, Instant};

use crate::error::Result;
use crate::event::Event;
use crate::net::Stack;
use crate::programs::Program;
use crate::smol::SmolStack;

/// Most frames taken in (each followed by a program run) before queued output is sent.
pub const BATCH: usize = 32;

/// Most turns of a round (a program run and the frames around it) in which something
/// moved before the round returns anyway, with the program due at once: `now` is fixed
/// for a round, and under a sustained transfer something always moves, so without this
/// bound a round would never end and every deadline (smoltcp's timers, a program's
/// test length and reports) would see a stale time. The driver reads its clock again
/// and goes on without sleeping.
pub const MAX_TURNS: usize = 16;

/// Longest time a driver keeps the stack running after its program finished.
pub const LINGER: Duration = Duration::from_secs(2);

/// Where a program's messages come from (command-line arguments, stdin, a board's
/// constants).
pub trait Feed {
    /// Gives `program` queued messages while it wants them and ends its input once no
    /// more will come. Returns whether anything was given or ended; an error is the
    /// program refusing a message.
    fn feed<S: Stack>(&mut self, program: &mut dyn Program<S>) -> Result<bool>;
}

/// A fixed list of messages.
#[derive(Debug, Clone)]
pub struct Messages<'m> {
    rest: &'m [&'m [u8]],
    ended: bool,
}

impl<'m> Messages<'m> {
    /// These messages, in order.
    pub const fn new(messages: &'m [&'m [u8]]) -> Self {
        Self {
            rest: messages,
            ended: false,
        }
    }

    /// No messages at all.
    pub const fn none() -> Self {
        Self::new(&[])
    }
}

impl Feed for Messages<'_> {
    fn feed<S: Stack>(&mut self, program: &mut dyn Program<S>) -> Result<bool> {
        let mut fed = false;
        while program.wants_input() {
            let Some((first, rest)) = self.rest.split_first() else {
                break;
            };
            // Taken even if refused: a refused message is not offered again.
            self.rest = rest;
            program.input(first)?;
            fed = true;
        }
        if !self.ended && self.rest.is_empty() {
            program.end_input();
            self.ended = true;
            fed = true;
        }
        Ok(fed)
    }
}

/// One round of `program` on `stack` over `device` at `now`; returns when the program
/// next wants to run even if no frame arrives (`now` itself after [`MAX_TURNS`] busy
/// turns: run the next round at once, with the time read again).
pub fn round<'a, D, F, const N: usize>(
    stack: &mut SmolStack<'a, N>,
    device: &mut D,
    program: &mut dyn Program<SmolStack<'a, N>>,
    input: &mut F,
    now: Instant,
    emit: &mut dyn FnMut(&Event<'_>),
) -> Result<Option<Instant>>
where
    D: Device + ?Sized,
    F: Feed,
{
    let mut batch = 0;
    let mut turns = 0;
    loop {
        let took = stack.poll_ingress_one(now, device);
        let poll = program.poll(stack, now, emit);
        let fed = input.feed(program)?;
        if took && batch < BATCH {
            // More frames may be waiting: take them first, so replies and ACKs leave
            // together; a flood still lets egress run every BATCH frames.
            batch += 1;
            continue;
        }
        batch = 0;
        let mut sent = false;
        while stack.poll_egress(now, device) {
            sent = true;
        }
        if !(took || poll.progressed || fed || sent) {
            return Ok(poll.wake_at);
        }
        turns += 1;
        if turns >= MAX_TURNS {
            return Ok(Some(now));
        }
    }
}

/// One round of `program` on a stack that moves its own packets (the host kernel's, in
/// the std twin): the program and its input run until nothing moves (or for
/// [`MAX_TURNS`]). Returns when the program next wants to run even if no socket becomes
/// ready.
pub fn program_round<S: Stack, F: Feed>(
    stack: &mut S,
    program: &mut dyn Program<S>,
    input: &mut F,
    now: Instant,
    emit: &mut dyn FnMut(&Event<'_>),
) -> Result<Option<Instant>> {
    for _ in 0..MAX_TURNS {
        let poll = program.poll(stack, now, emit);
        let fed = input.feed(program)?;
        if !(poll.progressed || fed) {
            return Ok(poll.wake_at);
        }
    }
    Ok(Some(now))
}

/// How long a driver may sleep: until the earliest of the stack's next timer and the
/// program's `wake_at` (`None`: until a frame arrives).
pub fn sleep_for<const N: usize>(
    stack: &mut SmolStack<'_, N>,
    now: Instant,
    wake_at: Option<Instant>,
) -> Option<Duration> {
    let program = wake_at.map(|at| if at > now { at - now } else { Duration::ZERO });
    match (stack.poll_delay(now), program) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Moves every pending frame in and out with no program; returns whether the stack is
/// idle (nothing left to send). A finished driver calls it until idle or [`LINGER`].
pub fn settle<D: Device + ?Sized, const N: usize>(
    stack: &mut SmolStack<'_, N>,
    device: &mut D,
    now: Instant,
) -> bool {
    while stack.poll_ingress_one(now, device) {}
    while stack.poll_egress(now, device) {}
    stack.is_idle()
}
