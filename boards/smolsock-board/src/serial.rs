//! [`Serial`]: a byte link to the host (a UART), for the `remote` firmware, which answers the
//! host's `RemoteStack` calls over it (see `smolsock-remote`); [`RemoteBoard`]: a board
//! with such a link, whose sleep ends on a received byte too; [`WithSerial`]: a
//! `RemoteBoard` from any `Board` that wakes at every tick and a serial port.

use smolsock::smol::StackConfig;
use smolsock::smoltcp::time::{Duration, Instant};

use crate::board::Board;

/// A UART as the remote firmware uses it: non-blocking reads, writes that wait for room.
///
/// The remote protocol frames its messages itself (COBS, a CRC-32, a 0x00 delimiter), so a
/// driver only moves bytes: it neither checks nor adds anything.
pub trait Serial {
    /// Takes the bytes that have arrived, up to `buf.len()`, without waiting; returns how
    /// many (0: none yet). Bytes lost to an overrun are simply missing: the protocol's
    /// checksum notices.
    fn read(&mut self, buf: &mut [u8]) -> usize;

    /// Writes every byte of `bytes`, waiting for room in the transmitter as needed.
    fn write_all(&mut self, bytes: &[u8]);

    /// Whether a received byte is waiting, so that the board's sleep can end on it.
    fn rx_pending(&self) -> bool;
}

/// A board with a serial link to the host: what the `remote` firmware
/// ([`apps::remote`](crate::apps::remote)) runs on. Its sleep ends on a frame, a deadline,
/// or a byte from the host.
pub trait RemoteBoard: Board {
    /// The UART to the host.
    type Serial: Serial;

    /// The Ethernet device and the serial port at once: the remote server writes its
    /// replies to the host while it drives the stack on the device.
    fn parts(&mut self) -> (&mut Self::Device, &mut Self::Serial);

    /// The serial port.
    fn serial(&mut self) -> &mut Self::Serial {
        self.parts().1
    }

    /// Sleeps until `delay` has passed, a frame may have arrived, or a byte from the host
    /// is waiting (`None`: no deadline).
    ///
    /// The default returns at once when a byte is waiting, and otherwise sleeps one
    /// [`Board::wait`]. That is right for a board whose `wait` returns at every tick (an
    /// [`EthBoard`](crate::EthBoard), every millisecond): it then looks at the serial port
    /// once a tick, and its `Serial` must hold what arrives in between (a FIFO, or a ring
    /// its interrupt fills). A board whose `wait` sleeps longer (until a frame, as the
    /// emulated board's) must override this with a sleep that a received byte ends.
    fn wait_for_input(&mut self, delay: Option<Duration>) {
        if self.serial().rx_pending() {
            return;
        }
        self.wait(delay);
    }
}

/// A [`RemoteBoard`] made of a board whose [`Board::wait`] returns at every tick (an
/// [`EthBoard`](crate::EthBoard)) and a serial port, with the default
/// [`RemoteBoard::wait_for_input`], which looks at the port once a tick.
#[derive(Debug)]
pub struct WithSerial<B, S> {
    /// The board.
    pub board: B,
    /// Its link to the host.
    pub serial: S,
}

impl<B: Board, S: Serial> WithSerial<B, S> {
    /// `board` with `serial` as its link to the host.
    pub fn new(board: B, serial: S) -> Self {
        Self { board, serial }
    }
}

impl<B: Board, S: Serial> Board for WithSerial<B, S> {
    type Device = B::Device;

    fn device(&mut self) -> &mut B::Device {
        self.board.device()
    }

    fn now(&self) -> Instant {
        self.board.now()
    }

    fn stack_config(&self) -> StackConfig {
        self.board.stack_config()
    }

    fn wait(&mut self, delay: Option<Duration>) {
        self.board.wait(delay);
    }

    fn tick(&mut self) {
        self.board.tick();
    }

    fn log(event: &smolsock::Event<'_>) {
        B::log(event);
    }

    fn finished(&mut self, outcome: smolsock::Result<()>) {
        self.board.finished(outcome);
    }
}

impl<B: Board, S: Serial> RemoteBoard for WithSerial<B, S> {
    type Serial = S;

    fn parts(&mut self) -> (&mut B::Device, &mut S) {
        (self.board.device(), &mut self.serial)
    }
}
