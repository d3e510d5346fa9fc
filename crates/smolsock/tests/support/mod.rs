//! What the in-process tests share: stacks with heap storage on a [`Pair`], and a feed of
//! messages.

// Each test binary uses a part of it.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};

use smolsock::runner::Feed;
use smolsock::sim::{End, Pair};
use smolsock::smol::{SmolStack, StackConfig};
use smolsock::smoltcp::iface::SocketStorage;
use smolsock::smoltcp::socket::udp;
use smolsock::smoltcp::time::Instant;
use smolsock::{Program, Stack};

/// Most TCP (and, separately, UDP) sockets a test stack manages.
pub const SOCKETS: usize = 16;

/// The stack every in-process test runs its programs on.
pub type TestStack = SmolStack<'static, SOCKETS>;

/// Two test stacks on a link.
pub type TestPair = Pair<'static, SOCKETS>;

/// How many sockets and how large their buffers.
#[derive(Debug, Clone, Copy)]
pub struct Sizing {
    /// TCP sockets in the pool.
    pub tcp_sockets: usize,
    /// Bytes in each TCP ring (receive and transmit each).
    pub tcp_buf: usize,
    /// UDP sockets in the pool.
    pub udp_sockets: usize,
    /// Payload bytes in each UDP packet buffer.
    pub udp_buf: usize,
    /// Datagrams each UDP packet buffer holds.
    pub udp_packets: usize,
}

/// A stack on `device` whose storage it owns (vectors: nothing leaks).
pub fn build_stack(
    config: StackConfig,
    device: &mut End<'_>,
    sizing: Sizing,
) -> smolsock::Result<TestStack> {
    let count = sizing.tcp_sockets + sizing.udp_sockets;
    let storage: Vec<SocketStorage<'static>> = (0..count).map(|_| SocketStorage::EMPTY).collect();
    let mut stack = SmolStack::new(config, device, storage, Instant::ZERO)?;
    for _ in 0..sizing.tcp_sockets {
        stack.add_tcp(vec![0u8; sizing.tcp_buf], vec![0u8; sizing.tcp_buf])?;
    }
    for _ in 0..sizing.udp_sockets {
        stack.add_udp(
            vec![udp::PacketMetadata::EMPTY; sizing.udp_packets],
            vec![0u8; sizing.udp_buf],
            vec![udp::PacketMetadata::EMPTY; sizing.udp_packets],
            vec![0u8; sizing.udp_buf],
        )?;
    }
    Ok(stack)
}

/// Two stacks seeded with `seed` (a run repeats exactly with it), in a box: a pair is a
/// few hundred KiB.
pub fn seeded_pair(sizing: Sizing, seed: u64) -> smolsock::Result<Box<TestPair>> {
    Pair::new(seed, |config, device| build_stack(config, device, sizing)).map(Box::new)
}

/// Two stacks with a random seed, printed so that a failing run can be repeated with
/// [`seeded_pair`].
pub fn new_pair(sizing: Sizing) -> smolsock::Result<Box<TestPair>> {
    let seed = RandomState::new().hash_one(0u8);
    eprintln!("pair seed {seed}");
    seeded_pair(sizing, seed)
}

/// Messages for a program, one per entry.
pub struct Lines {
    lines: VecDeque<Vec<u8>>,
    /// Whether more could come: the input never ends (an operator who never types).
    open: bool,
    ended: bool,
}

impl Lines {
    /// These messages, then the end of input.
    pub fn of<S: AsRef<str>>(list: &[S]) -> Self {
        Self {
            lines: list
                .iter()
                .map(|s| s.as_ref().as_bytes().to_vec())
                .collect(),
            open: false,
            ended: false,
        }
    }

    /// No messages, and the end of input at once.
    pub fn none() -> Self {
        Self::of::<&str>(&[])
    }

    /// No messages, and no end: the program waits for input for ever.
    pub fn open() -> Self {
        Self {
            open: true,
            ..Self::none()
        }
    }
}

impl Feed for Lines {
    fn feed<S: Stack>(&mut self, program: &mut dyn Program<S>) -> smolsock::Result<bool> {
        let mut fed = false;
        while program.wants_input() {
            let Some(line) = self.lines.pop_front() else {
                break;
            };
            program.input(&line)?;
            fed = true;
        }
        if !self.open && !self.ended && self.lines.is_empty() {
            program.end_input();
            self.ended = true;
            fed = true;
        }
        Ok(fed)
    }
}
