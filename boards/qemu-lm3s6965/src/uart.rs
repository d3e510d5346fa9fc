//! Polled driver for UART0 of the LM3S6965, as QEMU's `lm3s6965evb` machine models it: a
//! PL011 (QEMU 7.2's `pl011_luminary`, `hw/char/pl011.c`) at `0x4000_C000`, on IRQ 5.
//! It is the byte link of the `remote` firmware to the host (QEMU's first `-serial`, a
//! unix socket with `qemu-run --serial PATH`).
//!
//! * Receive: with the FIFOs on (`LCRH.FEN`), QEMU queues up to 16 bytes before it stops
//!   taking more from the host's side (its chardev then waits, nothing is lost); without
//!   them, one. [`Uart::read`] empties the FIFO through `DR` while `FR.RXFE` is clear.
//! * Transmit: QEMU sends a byte written to `DR` at once (`FR.TXFF` never stays set), but
//!   [`Uart::write_all`] still waits on `TXFF` before each byte, as the hardware needs.
//! * Interrupt: only "received" (`RXIM`) and "receive timeout" (`RTIM`) are unmasked, and
//!   only to wake the core from `WFI` ([`crate::Board`]'s sleep): the handler acknowledges
//!   them and bytes are read by polling. QEMU raises "received" when the first byte enters
//!   an empty FIFO; the sleep checks `RXFE` with interrupts masked before `WFI`, so bytes
//!   that came without an interrupt are seen too.
//!
//! QEMU ignores the baud rate; the driver still sets 115200 8N1 for the 12.5 MHz clock.

use smolsock_board::Serial;

use crate::mmio::{self, Block, SYSCTL};

/// Register offsets from the UART's base and their bits.
mod reg {
    /// Base address of UART0 on the LM3S6965.
    pub const BASE: usize = 0x4000_c000;

    /// Data: read = the next received byte (and its error bits 8-11), write = send.
    pub const DR: usize = 0x000;
    /// Flags.
    pub const FR: usize = 0x018;
    /// Integer part of the baud-rate divisor.
    pub const IBRD: usize = 0x024;
    /// Fractional part of the baud-rate divisor (64ths).
    pub const FBRD: usize = 0x028;
    /// Line control: word length, FIFOs. Writing it latches `IBRD`/`FBRD`.
    pub const LCRH: usize = 0x02c;
    /// Control: UART, transmitter and receiver enables.
    pub const CTL: usize = 0x030;
    /// Interrupt mask: a set bit lets that interrupt raise the UART's IRQ.
    pub const IMSC: usize = 0x038;
    /// Interrupt clear: write 1 to clear.
    pub const ICR: usize = 0x044;

    /// FR: the receive FIFO is empty.
    pub const FR_RXFE: u32 = 1 << 4;
    /// FR: the transmit FIFO is full.
    pub const FR_TXFF: u32 = 1 << 5;

    /// LCRH: FIFOs on (16 bytes each way).
    pub const LCRH_FEN: u32 = 1 << 4;
    /// LCRH: 8-bit words.
    pub const LCRH_WLEN_8: u32 = 0b11 << 5;

    /// CTL: UART enable.
    pub const CTL_UARTEN: u32 = 1 << 0;
    /// CTL: transmitter enable.
    pub const CTL_TXE: u32 = 1 << 8;
    /// CTL: receiver enable.
    pub const CTL_RXE: u32 = 1 << 9;

    /// IMSC/ICR: received (the FIFO reached its trigger level; QEMU: one byte).
    pub const INT_RX: u32 = 1 << 4;
    /// IMSC/ICR: receive timeout (bytes wait below the trigger level).
    pub const INT_RT: u32 = 1 << 6;
    /// ICR: every interrupt source of the UART.
    pub const INT_ALL: u32 = 0x7ff;

    /// 115200 baud from 12.5 MHz: 12.5e6 / (16 * 115200) = 6.78, i.e. 6 and 50/64.
    pub const IBRD_115200: u32 = 6;
    /// See [`IBRD_115200`].
    pub const FBRD_115200: u32 = 50;

    /// System control's `RCGC1` (`mmio::RCGC1`): clock UART0 (QEMU does not model the
    /// gate; the hardware needs it).
    pub const RCGC1_UART0: u32 = 1 << 0;
}

/// UART0's registers.
const UART0: Block =
    // SAFETY: reg::BASE is UART0's register block on this machine (word registers, the
    // offsets in `reg`), and it has no DMA.
    unsafe { Block::at(reg::BASE) };

/// UART0 as the `remote` firmware's link to the host. There is one; [`crate::Board`]
/// owns it.
#[derive(Debug)]
pub struct Uart {
    _owned: (),
}

impl Uart {
    /// Clocks and starts UART0 at 115200 8N1 with its FIFOs on, and unmasks its receive
    /// interrupts in the UART (the caller decides whether the NVIC lets them through).
    pub(crate) fn init() -> Self {
        SYSCTL.set_bits(mmio::RCGC1, reg::RCGC1_UART0);
        // Off while it is set up, quiet, and nothing left over from before a reset.
        UART0.write(reg::CTL, 0);
        UART0.write(reg::IMSC, 0);
        UART0.write(reg::ICR, reg::INT_ALL);
        UART0.write(reg::IBRD, reg::IBRD_115200);
        UART0.write(reg::FBRD, reg::FBRD_115200);
        UART0.write(reg::LCRH, reg::LCRH_WLEN_8 | reg::LCRH_FEN);
        UART0.write(reg::CTL, reg::CTL_UARTEN | reg::CTL_TXE | reg::CTL_RXE);
        let uart = Uart { _owned: () };
        // Bytes QEMU queued before the FIFOs were on (or an earlier boot left) are not
        // part of what the host will send now: the protocol resynchronises at a frame's
        // end anyway, but there is no reason to start mid-frame.
        while UART0.read(reg::FR) & reg::FR_RXFE == 0 {
            let _ = UART0.read(reg::DR);
        }
        UART0.write(reg::IMSC, reg::INT_RX | reg::INT_RT);
        uart
    }
}

impl Serial for Uart {
    fn read(&mut self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        for slot in buf.iter_mut() {
            if UART0.read(reg::FR) & reg::FR_RXFE != 0 {
                break;
            }
            // Bits 8-11 are the byte's framing, parity, break and overrun errors: a
            // damaged byte is passed on all the same, and the frame's CRC-32 rejects it.
            *slot = UART0.read(reg::DR) as u8;
            n += 1;
        }
        n
    }

    fn write_all(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            while UART0.read(reg::FR) & reg::FR_TXFF != 0 {
                core::hint::spin_loop();
            }
            UART0.write(reg::DR, u32::from(byte));
        }
    }

    fn rx_pending(&self) -> bool {
        UART0.read(reg::FR) & reg::FR_RXFE == 0
    }
}

/// Acknowledges UART0's receive interrupts. Called from the interrupt handler: the IRQ
/// only exists to wake the core from `WFI`; bytes are read by polling.
pub(crate) fn acknowledge_rx_interrupt() {
    UART0.write(reg::ICR, reg::INT_RX | reg::INT_RT);
}
