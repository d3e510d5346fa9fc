//! The only place that touches the hardware: 32-bit volatile accesses to the registers of
//! a peripheral block (the Ethernet MAC, UART0, system control). Each driver names its
//! block once, with the reason it is sound, and calls [`Block::read`] and [`Block::write`].

use core::ptr::{read_volatile, write_volatile};

/// One peripheral's registers, by the block's base address.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Block(usize);

impl Block {
    /// The registers at `base`.
    ///
    /// # Safety
    /// `base` must be a memory-mapped peripheral block of this machine whose registers are
    /// valid for 32-bit volatile reads and writes at every word-aligned offset the caller
    /// passes, and the peripheral must not reach RAM by itself (no DMA), so that no write
    /// can make the hardware touch Rust data.
    pub(crate) const unsafe fn at(base: usize) -> Self {
        Self(base)
    }

    /// Reads the register at `offset`.
    #[inline(always)]
    pub(crate) fn read(self, offset: usize) -> u32 {
        // SAFETY: `at`'s contract makes base + offset a device register valid for volatile
        // reads; a read (even one that pops a FIFO) touches no Rust data.
        unsafe { read_volatile((self.0 + offset) as *const u32) }
    }

    /// Writes `value` to the register at `offset`.
    #[inline(always)]
    pub(crate) fn write(self, offset: usize, value: u32) {
        // SAFETY: as in `read`; the peripheral has no DMA (`at`'s contract), so no value
        // written can make it touch RAM behind Rust's back.
        unsafe { write_volatile((self.0 + offset) as *mut u32, value) }
    }

    /// Sets `bits` in the register at `offset` (a read, then a write: for single-threaded
    /// init).
    pub(crate) fn set_bits(self, offset: usize, bits: u32) {
        let value = self.read(offset);
        self.write(offset, value | bits);
    }
}

/// System control's register `RCGC1` (run-mode clock gating: UART0).
pub(crate) const RCGC1: usize = 0x104;
/// System control's register `RCGC2` (run-mode clock gating: the MAC and its PHY).
pub(crate) const RCGC2: usize = 0x108;

/// System control, for the clock gates the drivers open at init.
pub(crate) const SYSCTL: Block =
    // SAFETY: 0x400F_E000 is the LM3S6965's system control block (datasheet, memory map),
    // word registers; it has no DMA.
    unsafe { Block::at(0x400f_e000) };
