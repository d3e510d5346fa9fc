//! The driver loop that runs one smolsock [`Program`] on a [`SmolStack`] over
//! this board's [`EthDevice`], shared by the four firmware binaries.
//!
//! A binary is: [`init`](crate::init), socket storage in statics,
//! [`new_stack`], a program from `smolsock::programs`, then [`run`].

use smolsock::smol::{SmolStack, StackConfig};
use smolsock::smoltcp::iface::SocketStorage;
use smolsock::smoltcp::time::{Duration, Instant};
use smolsock::smoltcp::wire::{EthernetAddress, Ipv4Cidr};
use smolsock::{Event, Program};

use crate::{config, Clock, EthDevice};

/// How often [`run`] asks the PHY about the link (cable re-plugs, speed).
pub const LINK_POLL_MS: u64 = 500;

/// Longest time [`run`] keeps the stack busy after the program finished, so
/// that its last FIN, ACK or datagram leaves before the board idles.
pub const LINGER: Duration = Duration::from_secs(2);

/// The smolsock configuration of this board: [`config::MAC_ADDRESS`],
/// [`config::IP_ADDRESS`]/[`config::PREFIX_LEN`], no gateway, and
/// [`random_seed`](crate::random_seed).
pub fn stack_config() -> StackConfig {
    StackConfig {
        mac: EthernetAddress(config::MAC_ADDRESS),
        ip: Ipv4Cidr::new(config::IP_ADDRESS, config::PREFIX_LEN),
        gateway: None,
        seed: crate::random_seed(),
    }
}

/// A [`SmolStack`] on `device` with [`stack_config`], whose sockets live in
/// `storage`; add socket buffers with `add_tcp_buffers` / `add_udp_buffers`.
///
/// # Panics
/// Never with this board's constant configuration (the core rejects only a
/// multicast MAC, a non-unicast IP or an MTU too small for IPv4).
pub fn new_stack<'a, const N: usize>(
    device: &mut EthDevice,
    clock: &Clock,
    storage: &'a mut [SocketStorage<'a>],
) -> SmolStack<'a, N> {
    match SmolStack::new(stack_config(), device, storage, clock.now()) {
        Ok(stack) => stack,
        Err(e) => defmt::panic!("stack: {}", e),
    }
}

/// Logs one program event, in the same text as the host binary prints it.
pub fn log_event(event: &Event<'_>) {
    defmt::info!("{}", defmt::Display2Format(event));
}

fn earliest(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Runs `program` on `stack` forever.
///
/// `input` are the program's messages (what a user would type on the host):
/// they are fed while the program [`wants_input`](Program::wants_input), then
/// its input is ended. A program that finishes (a client, a sender) has its
/// outcome logged; the stack then runs until it is idle (at most [`LINGER`])
/// and goes on answering ARP and ping, with no program, forever.
///
/// Each round takes frames in one at a time (`poll_ingress_one`), runs the
/// program after each, feeds input and sends what was queued
/// (`poll_egress`), until nothing progresses. No frame is taken in after the
/// program's last run of a round, so the sleep that follows never sits on
/// data the program has not seen. The sleep is a busy wait until the next
/// SysTick millisecond or the earliest of the stack's and the program's
/// deadlines (the MAC has no wake-up interrupt here, so frames are picked up
/// within a millisecond). The PHY is asked about the link every
/// [`LINK_POLL_MS`].
pub fn run<'a, const N: usize>(
    mut device: EthDevice,
    clock: Clock,
    mut stack: SmolStack<'a, N>,
    program: &mut dyn Program<SmolStack<'a, N>>,
    input: &[&[u8]],
) -> ! {
    let mut input = input.iter();
    let mut input_ended = false;
    let mut emit = |event: &Event<'_>| log_event(event);
    // Set once the program has finished; from then on only the stack runs.
    let mut finished = false;
    // While the finished program's last packets leave: until when to wait.
    let mut linger_until: Option<Instant> = None;
    let mut next_link_poll = clock.now_ms() + LINK_POLL_MS;
    loop {
        let now = clock.now();
        let mut wake_at = None;
        loop {
            let took = stack.poll_ingress_one(now, &mut device);
            let mut progressed = took;
            if !finished {
                let poll = program.poll(&mut stack, now, &mut emit);
                wake_at = poll.wake_at;
                progressed |= poll.progressed;
                while program.wants_input() {
                    let Some(message) = input.next() else { break };
                    if let Err(e) = program.input(message) {
                        defmt::error!("input refused: {}", e);
                    }
                    progressed = true;
                }
                if !input_ended && input.len() == 0 {
                    program.end_input();
                    input_ended = true;
                    progressed = true;
                }
            }
            while stack.poll_egress(now, &mut device) {
                progressed = true;
            }
            if !progressed {
                break;
            }
        }

        if !finished {
            if let Some(outcome) = program.outcome() {
                match outcome {
                    Ok(()) => defmt::info!("program finished: ok"),
                    Err(e) => defmt::error!("program failed: {}", e),
                }
                finished = true;
                wake_at = None;
                linger_until = Some(now + LINGER);
            }
        }
        if let Some(until) = linger_until {
            if stack.is_idle() || now >= until {
                defmt::info!("idle: the stack keeps answering ARP and ping");
                linger_until = None;
            }
        }

        if clock.now_ms() >= next_link_poll {
            device.poll_link();
            next_link_poll = clock.now_ms() + LINK_POLL_MS;
        }

        let now = clock.now();
        let program_delay = wake_at.map(|at| if at > now { at - now } else { Duration::ZERO });
        let mut delay = earliest(stack.poll_delay(now), program_delay);
        if let Some(until) = linger_until {
            let left = if until > now {
                until - now
            } else {
                Duration::ZERO
            };
            delay = earliest(delay, Some(left));
        }
        sleep(&clock, delay);
    }
}

/// Waits until the next SysTick millisecond, or not at all when `delay` is
/// zero: the next round then sees any frame that arrived meanwhile.
fn sleep(clock: &Clock, delay: Option<Duration>) {
    if delay == Some(Duration::ZERO) {
        return;
    }
    let start = clock.now_ms();
    while clock.now_ms() == start {
        core::hint::spin_loop();
    }
}
