//! USART3, the ST-LINK's virtual COM port, as a `smolsock_board::Serial`: the link the
//! `remote` firmware answers the host's calls on.
//!
//! On every Nucleo-144 board USART3 (PD8 TX, PD9 RX, alternate function 7) is wired to
//! the on-board ST-LINK/V2-1 by default solder bridges (UM1974, the virtual COM port
//! section), which shows it to the PC as a USB CDC ACM port (`/dev/ttyACM0` on Linux).
//! The PC sets the ST-LINK's side of the line when it opens the port, so it must ask for
//! [`BAUD`] 8N1 (`smolsock --board /dev/ttyACM0` does: `--baud`, default 115200).
//!
//! The F4's USART holds one received byte and has no FIFO: at 115,200 baud a byte
//! arrives every 87 µs, far more often than the firmware loop (1 ms ticks, longer while
//! the stack works) looks. So the receiver interrupt (RXNE) moves each byte into a ring of
//! [`RX_RING`] bytes (heapless's lock-free single-producer single-consumer queue: the
//! interrupt produces, `read` consumes, neither waits). Transmission is polled:
//! `write_all` waits for the transmit register to empty before each byte, at
//! most [`STALL_MS`] per byte.
//!
//! Bytes lost to a full ring, an overrun or a line error are simply missing (the remote
//! protocol's checksum notices); `read` logs how many were lost since it last
//! looked.

use core::cell::RefCell;
use core::sync::atomic::{AtomicU32, Ordering};

use critical_section::Mutex;
use heapless::spsc::{Consumer, Producer, Queue};
use stm32f4xx_hal::gpio::{PD8, PD9};
use stm32f4xx_hal::nb;
use stm32f4xx_hal::pac::{self, USART3, interrupt};
use stm32f4xx_hal::prelude::*;
use stm32f4xx_hal::rcc::Clocks;
use stm32f4xx_hal::serial::{self, Rx, Tx};

/// The line's rate, 8 data bits, no parity, one stop bit.
///
/// 115,200 baud: the rate every ST-LINK firmware (V2-1 here, V3 on the H743ZI2) and every
/// terminal program offers, and exact enough from this board's 42 MHz APB1 clock (the
/// USART's divider gives 115,068 baud, 0.11 % slow, well inside a UART's tolerance). Faster rates would move the remote
/// protocol's bytes quicker, but which of them the ST-LINK's own UART reproduces exactly
/// depends on its firmware version; this one is safe on every board.
pub const BAUD: u32 = 115_200;

/// Bytes the receive ring holds (one less than its 2 KiB of storage): more than the
/// remote protocol's longest frame (about 1.5 KiB: 1472 bytes of data, the message around
/// them and the framing), and 178 ms of line time at [`BAUD`], many times the longest the
/// firmware loop spends away from the serial port.
pub const RX_RING: usize = RX_STORAGE - 1;

/// The receive ring's storage: 2 KiB of RAM, only in a binary that opens the port.
const RX_STORAGE: usize = 2048;

/// The longest `write_all` waits for the transmitter to take one byte: a byte
/// leaves in 87 µs at [`BAUD`], so only a stopped peripheral (no clock) makes it wait this
/// long; it then drops the rest of the write instead of hanging the firmware.
pub const STALL_MS: u64 = 2;

/// What the receive interrupt owns: the USART's receiver and the ring's writing end.
struct Receiver {
    rx: Rx<USART3>,
    ring: Producer<'static, u8>,
}

/// The receiver, handed to the interrupt once [`Usart3::new`] has set it up.
static RECEIVER: Mutex<RefCell<Option<Receiver>>> = Mutex::new(RefCell::new(None));

/// Received bytes lost since boot: to a full ring, an overrun or a line error.
static LOST: AtomicU32 = AtomicU32::new(0);

/// USART3 on the ST-LINK's virtual COM port: non-blocking reads from an interrupt-fed
/// ring, writes that wait for the transmitter. Made by [`crate::init_with_serial`].
pub struct Usart3 {
    tx: Tx<USART3>,
    ring: Consumer<'static, u8>,
    /// [`LOST`] when it was last logged.
    lost_seen: u32,
}

impl Usart3 {
    /// Sets USART3 up on PD8/PD9 at [`BAUD`] 8N1, hands its receiver and the ring to the
    /// interrupt and unmasks the interrupt.
    ///
    /// # Panics
    /// If called twice (the ring is a `singleton!`), or if the clocks cannot make
    /// [`BAUD`] (never with [`crate::init`]'s clock tree).
    pub(crate) fn new(usart: USART3, tx: PD8, rx: PD9, clocks: &Clocks) -> Self {
        let config = serial::Config::default()
            .baudrate(BAUD.bps())
            .wordlength_8()
            .parity_none();
        let serial: serial::Serial<USART3> = match usart.serial((tx, rx), config, clocks) {
            Ok(serial) => serial,
            Err(_) => defmt::panic!("USART3: the clocks cannot make {} baud", BAUD),
        };
        let (tx, mut rx) = serial.split();
        let Some(queue) = cortex_m::singleton!(: Queue<u8, RX_STORAGE> = Queue::new()) else {
            defmt::panic!("USART3 opened twice");
        };
        let (producer, consumer) = queue.split();
        rx.listen();
        critical_section::with(|cs| {
            RECEIVER
                .borrow_ref_mut(cs)
                .replace(Receiver { rx, ring: producer });
        });
        // SAFETY: the handler below only touches `RECEIVER`, through a critical section,
        // so unmasking it breaks no critical section of the main loop.
        unsafe { cortex_m::peripheral::NVIC::unmask(pac::Interrupt::USART3) };
        defmt::info!(
            "serial: USART3 (ST-LINK virtual COM port) at {} baud, 8N1",
            BAUD
        );
        Self {
            tx,
            ring: consumer,
            lost_seen: 0,
        }
    }

    /// Received bytes lost since boot (a full ring, an overrun, a line error).
    pub fn lost(&self) -> u32 {
        LOST.load(Ordering::Relaxed)
    }
}

impl smolsock_board::Serial for Usart3 {
    fn read(&mut self, buf: &mut [u8]) -> usize {
        let lost = self.lost();
        if lost != self.lost_seen {
            defmt::warn!(
                "serial: {} received bytes lost (ring full, overrun or line error)",
                lost.wrapping_sub(self.lost_seen)
            );
            self.lost_seen = lost;
        }
        let mut n = 0;
        for slot in buf.iter_mut() {
            let Some(byte) = self.ring.dequeue() else {
                break;
            };
            *slot = byte;
            n += 1;
        }
        n
    }

    fn write_all(&mut self, bytes: &[u8]) {
        for (sent, &byte) in bytes.iter().enumerate() {
            let deadline = smolsock_board::clock::now_ms() + STALL_MS;
            loop {
                match self.tx.write(byte) {
                    Ok(()) => break,
                    Err(nb::Error::WouldBlock) if smolsock_board::clock::now_ms() <= deadline => {
                        core::hint::spin_loop();
                    }
                    Err(_) => {
                        defmt::error!(
                            "serial: the transmitter stalled; {} bytes not sent",
                            bytes.len() - sent
                        );
                        return;
                    }
                }
            }
        }
    }

    fn rx_pending(&self) -> bool {
        self.ring.ready()
    }
}

/// Moves what the receiver holds into the ring. RXNE (a byte) and ORE (an overrun) raise
/// this interrupt; the HAL's read returns the byte, or clears the error flags (reading
/// the data register) and says which error. The USART holds one byte, so a few reads
/// empty it; the loop is bounded all the same.
#[interrupt]
fn USART3() {
    critical_section::with(|cs| {
        let mut receiver = RECEIVER.borrow_ref_mut(cs);
        let Some(Receiver { rx, ring }) = receiver.as_mut() else {
            return;
        };
        for _ in 0..4 {
            match rx.read() {
                Ok(byte) => {
                    if ring.enqueue(byte).is_err() {
                        LOST.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(nb::Error::WouldBlock) => break,
                Err(nb::Error::Other(_)) => {
                    LOST.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });
}
