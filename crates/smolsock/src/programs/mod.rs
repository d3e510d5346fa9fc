//! The four programs of the seed as non-blocking state machines over a [`Stack`].
//!
//! | seed program | state machine | input |
//! |---|---|---|
//! | UDP receiver | [`UdpReceiver`] | none |
//! | UDP sender | [`UdpSender`] | one datagram per message |
//! | TCP client | [`TcpClient`] | one message per line, or a bulk byte count |
//! | TCP server | [`TcpServer`] | reply lines in interactive mode |
//!
//! A driver (the host's poll loop, a board's `main`) repeats [`crate::runner::round`]: let
//! the stack move packets, call [`Program::poll`], feed input when
//! [`Program::wants_input`], and sleep until a packet arrives or the earliest of the
//! stack's and the program's deadlines. `poll` never blocks and reports what happened as
//! [`Event`]s.

mod tcp_client;
mod tcp_server;
mod udp_recv;
mod udp_send;

pub use tcp_client::{TcpClient, TcpClientConfig};
pub use tcp_server::{RECV_CHUNK, ServeMode, TcpServer, TcpServerConfig};
pub use udp_recv::{UdpReceiver, UdpReceiverConfig};
pub use udp_send::{UdpSender, UdpSenderConfig};

use smoltcp::time::Instant;

use crate::error::{Error, Result};
use crate::event::Event;
use crate::net::Stack;

/// What one call of [`Program::poll`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Poll {
    /// Something happened (data moved, state changed): poll the stack and the program
    /// again before sleeping.
    pub progressed: bool,
    /// The program needs to run again at this time even if no packet arrives.
    pub wake_at: Option<Instant>,
}

impl Poll {
    pub(crate) fn merge_wake(&mut self, at: Option<Instant>) {
        self.wake_at = match (self.wake_at, at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

/// A program of the seed, driven by polling.
pub trait Program<S: Stack> {
    /// Does all the work possible now without blocking, reporting it through `emit`.
    fn poll(&mut self, stack: &mut S, now: Instant, emit: &mut dyn FnMut(&Event<'_>)) -> Poll;

    /// `None` while running; `Some(Ok(()))` once finished, `Some(Err(e))` once failed.
    fn outcome(&self) -> Option<Result<()>>;

    /// Whether [`input`](Self::input) would take a message now.
    fn wants_input(&self) -> bool {
        false
    }

    /// Gives the program one message (a line typed by the user, without its newline).
    fn input(&mut self, _message: &[u8]) -> Result<()> {
        Err(Error::InputClosed)
    }

    /// Tells the program no more input will come (end of stdin).
    fn end_input(&mut self) {}
}

/// Copies `message` to the front of `buf` for sending; returns its length, or
/// `MessageTooLarge` when it does not fit (it is refused whole, never cut).
pub(crate) fn stage(buf: &mut [u8], message: &[u8]) -> Result<usize> {
    let max = buf.len();
    let slot = buf.get_mut(..message.len()).ok_or(Error::MessageTooLarge {
        len: message.len(),
        max,
    })?;
    slot.copy_from_slice(message);
    Ok(message.len())
}

/// The bytes of the bulk pattern at stream offset `offset` (a 251-byte cycle, so a chunk
/// that is lost, duplicated or moved changes the CRC).
pub fn fill_pattern(offset: u64, out: &mut [u8]) {
    let mut value = (offset % 251) as u8;
    for byte in out.iter_mut() {
        *byte = value;
        value = if value == 250 { 0 } else { value + 1 };
    }
}
