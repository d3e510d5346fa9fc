//! An in-memory Ethernet cable between two smoltcp stacks, with no OS and no privileges.
//!
//! [`Link`] holds one bounded frame queue per direction; [`Link::a`] and [`Link::b`] give
//! its two [`LinkEnd`]s, each a [`smoltcp::phy::Device`]. The demo and the in-process tests run two
//! [`SmolStack`](crate::smol::SmolStack)s over it, polling them in turn. Frames still in
//! flight can be inspected (the demo prints them as a packet ladder).
//!
//! With the `faults` feature, either end can run behind a fault injector: keep a
//! `faults::FaultInjector` per end and hand the stack `injector.wrap(link.a())` on each
//! poll ([`sim::Pair`](crate::sim::Pair) does so).

use heapless::{Deque, Vec};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// Largest Ethernet frame carried (1500 bytes of IP plus the 14-byte header).
pub const FRAME_MAX: usize = 1514;

/// One frame on the link.
pub type Frame = Vec<u8, FRAME_MAX>;

/// One direction of the link.
pub struct Queue<const Q: usize> {
    frames: Deque<Frame, Q>,
    dropped: u32,
}

impl<const Q: usize> Queue<Q> {
    const fn new() -> Self {
        Self {
            frames: Deque::new(),
            dropped: 0,
        }
    }
}

/// A two-ended link holding up to `Q` frames in each direction.
pub struct Link<const Q: usize = 32> {
    a_to_b: Queue<Q>,
    b_to_a: Queue<Q>,
}

impl<const Q: usize> Default for Link<Q> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const Q: usize> Link<Q> {
    /// An empty link.
    pub const fn new() -> Self {
        Self {
            a_to_b: Queue::new(),
            b_to_a: Queue::new(),
        }
    }

    /// End A: sends what end B receives. The ends take turns, as the stacks are polled in
    /// turn.
    pub fn a(&mut self) -> LinkEnd<'_, Q> {
        LinkEnd {
            tx: &mut self.a_to_b,
            rx: &mut self.b_to_a,
        }
    }

    /// End B: sends what end A receives.
    pub fn b(&mut self) -> LinkEnd<'_, Q> {
        LinkEnd {
            tx: &mut self.b_to_a,
            rx: &mut self.a_to_b,
        }
    }

    /// Frames sent by A that B has not taken yet, oldest first.
    pub fn in_flight_a_to_b(&self) -> impl Iterator<Item = &[u8]> {
        self.a_to_b.frames.iter().map(|f| f.as_slice())
    }

    /// Frames sent by B that A has not taken yet, oldest first.
    pub fn in_flight_b_to_a(&self) -> impl Iterator<Item = &[u8]> {
        self.b_to_a.frames.iter().map(|f| f.as_slice())
    }

    /// Frames dropped because a queue was full, per direction (A to B, B to A).
    pub fn dropped(&self) -> (u32, u32) {
        (self.a_to_b.dropped, self.b_to_a.dropped)
    }
}

/// One end of a [`Link`], a smoltcp Ethernet device.
pub struct LinkEnd<'l, const Q: usize> {
    tx: &'l mut Queue<Q>,
    rx: &'l mut Queue<Q>,
}

/// A received frame.
pub struct RxToken {
    frame: Frame,
}

/// Room to send one frame.
pub struct TxToken<'l, const Q: usize> {
    queue: &'l mut Queue<Q>,
}

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.frame)
    }
}

impl<const Q: usize> phy::TxToken for TxToken<'_, Q> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = Frame::new();
        // smoltcp never asks for more than the MTU; a larger request is cut and counted.
        let fits = frame.resize(len.min(FRAME_MAX), 0).is_ok() && len <= FRAME_MAX;
        let result = f(&mut frame);
        if !fits || self.queue.frames.push_back(frame).is_err() {
            self.queue.dropped = self.queue.dropped.saturating_add(1);
        }
        result
    }
}

impl<'l, const Q: usize> Device for LinkEnd<'l, Q> {
    type RxToken<'a>
        = RxToken
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a, Q>
    where
        Self: 'a;

    fn receive(&mut self, _now: Instant) -> Option<(RxToken, TxToken<'_, Q>)> {
        let frame = self.rx.frames.pop_front()?;
        Some((RxToken { frame }, TxToken { queue: self.tx }))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_, Q>> {
        if self.tx.frames.is_full() {
            return None;
        }
        Some(TxToken { queue: self.tx })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = FRAME_MAX;
        caps
    }
}
