//! USART3, the ST-LINK's virtual COM port, as a `smolsock_board::Serial`: the link the
//! `remote` firmware answers the host's calls on.
//!
//! On every Nucleo-144 board USART3 (PD8 TX, PD9 RX, alternate function 7) is wired to
//! the on-board ST-LINK (V3E on the NUCLEO-H743ZI2, V2-1 on the first NUCLEO-H743ZI; UM2407),
//! which shows it to the PC as a USB CDC ACM port (`/dev/ttyACM0` on Linux). The PC sets
//! the ST-LINK's side of the line when it opens the port, so it must ask for [`BAUD`] 8N1
//! (`smolsock --board /dev/ttyACM0` does: `--baud`, default 115200).
//!
//! The port is embassy-stm32's `BufferedUart`, used without an executor: its USART3
//! interrupt moves every received byte into a ring of [`RX_RING`] bytes and feeds the
//! transmitter from a ring of [`TX_RING`] bytes (the H7's USART has a 16-byte FIFO too,
//! which embassy enables). `read` takes what the ring holds without waiting;
//! `write_all` puts the bytes into the transmit ring as room appears, polling
//! embassy's write with a no-op waker, and gives up after [`STALL_MS`] without progress.
//!
//! Bytes lost to a full ring, an overrun or a line error are simply missing (the remote
//! protocol's checksum notices); embassy logs line errors and overruns as warnings.

use core::cell::RefCell;
use core::pin::pin;
use core::task::{Context, Poll, Waker};

use embassy_stm32::usart::{BufferedUart, Config};
use embassy_stm32::{Peri, peripherals};

use crate::Irqs;

/// The line's rate, 8 data bits, no parity, one stop bit.
///
/// 115,200 baud: the rate every ST-LINK firmware (V3E on the NUCLEO-H743ZI2, V2-1 on the
/// NUCLEO-H743ZI, V2-1 on the NUCLEO-F429ZI) and every terminal program offers, and exact
/// from this board's 100 MHz APB1 clock (the divider gives 115,207 baud, 0.006 % fast).
/// Faster rates would move the remote protocol's bytes quicker, but which of them the
/// ST-LINK's own UART reproduces exactly depends on its version; this one is safe on every
/// board, and it is the NUCLEO-F429ZI's too, so the host uses one rate for both.
pub const BAUD: u32 = 115_200;

/// Bytes the receive ring holds: more than the remote protocol's longest frame (about
/// 1.5 KiB: 1472 bytes of data, the message around them and the framing), and 178 ms of
/// line time at [`BAUD`], many times the longest the firmware loop spends away from the
/// serial port.
pub const RX_RING: usize = 2048;

/// Bytes the transmit ring holds: 22 ms of line time at [`BAUD`].
pub const TX_RING: usize = 256;

/// The most `write_all` hands embassy at once: embassy's write waits until the
/// whole piece fits in the transmit ring, so a piece must be smaller than the ring.
const TX_PIECE: usize = 64;

/// The longest `write_all` waits without the transmit ring taking a byte: a
/// full ring has room for a piece again after 64 bytes, 6 ms at [`BAUD`]. Only
/// a stopped peripheral makes it wait this long; it then drops the rest of the write
/// instead of hanging the firmware.
pub const STALL_MS: u64 = 50;

/// USART3 on the ST-LINK's virtual COM port: non-blocking reads from an interrupt-fed
/// ring, writes that wait for room in the transmit ring. Made by
/// [`crate::init_with_serial`].
pub struct Usart3 {
    /// In a cell because embassy asks whether a byte waits through `&mut`, and
    /// [`smolsock_board::Serial::rx_pending`] has `&self`.
    uart: RefCell<BufferedUart<'static>>,
}

impl Usart3 {
    /// Sets USART3 up on PD8/PD9 at [`BAUD`] 8N1 with its rings; embassy unmasks its
    /// interrupt.
    ///
    /// # Panics
    /// If called twice (the rings are `singleton!`s), or if the clocks cannot make
    /// [`BAUD`] (never with [`crate::init`]'s clock tree).
    pub(crate) fn new(
        usart: Peri<'static, peripherals::USART3>,
        tx: Peri<'static, peripherals::PD8>,
        rx: Peri<'static, peripherals::PD9>,
    ) -> Self {
        let (Some(tx_ring), Some(rx_ring)) = (
            cortex_m::singleton!(: [u8; TX_RING] = [0; TX_RING]),
            cortex_m::singleton!(: [u8; RX_RING] = [0; RX_RING]),
        ) else {
            defmt::panic!("USART3 opened twice");
        };
        let mut config = Config::default();
        config.baudrate = BAUD;
        let uart = match BufferedUart::new(usart, rx, tx, tx_ring, rx_ring, Irqs, config) {
            Ok(uart) => uart,
            Err(e) => defmt::panic!("USART3 at {} baud: {}", BAUD, e),
        };
        defmt::info!(
            "serial: USART3 (ST-LINK virtual COM port) at {} baud, 8N1",
            BAUD
        );
        Self {
            uart: RefCell::new(uart),
        }
    }
}

impl smolsock_board::Serial for Usart3 {
    fn read(&mut self, buf: &mut [u8]) -> usize {
        let uart = self.uart.get_mut();
        // Only when a byte waits: then `read` returns at once, with at least that byte.
        if !matches!(embedded_io::ReadReady::read_ready(uart), Ok(true)) {
            return 0;
        }
        embedded_io::Read::read(uart, buf).unwrap_or(0)
    }

    fn write_all(&mut self, mut bytes: &[u8]) {
        let uart = self.uart.get_mut();
        let mut cx = Context::from_waker(Waker::noop());
        let mut deadline = smolsock_board::clock::now_ms() + STALL_MS;
        while !bytes.is_empty() {
            let (piece, _) = bytes.split_at(bytes.len().min(TX_PIECE));
            let write = pin!(embedded_io_async::Write::write(uart, piece));
            match write.poll(&mut cx) {
                Poll::Ready(Ok(n)) => {
                    bytes = bytes.get(n..).unwrap_or_default();
                    deadline = smolsock_board::clock::now_ms() + STALL_MS;
                }
                Poll::Pending if smolsock_board::clock::now_ms() <= deadline => {
                    core::hint::spin_loop();
                }
                Poll::Ready(Err(_)) | Poll::Pending => {
                    defmt::error!(
                        "serial: the transmitter stalled; {} bytes not sent",
                        bytes.len()
                    );
                    return;
                }
            }
        }
    }

    fn rx_pending(&self) -> bool {
        self.uart.try_borrow_mut().is_ok_and(|mut uart| {
            matches!(embedded_io::ReadReady::read_ready(&mut *uart), Ok(true))
        })
    }
}
