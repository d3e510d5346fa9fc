//! Monotonic millisecond clock from SysTick.
//!
//! SysTick interrupts once a millisecond and the handler counts. The count is
//! 64 bits wide, kept as two `AtomicU32` halves because the Cortex-M3 has no
//! 64-bit atomics; the handler is the only writer and, being an interrupt on a
//! single core, runs as a whole between two instructions of the reader, so
//! reading high, low, high again and retrying if the high half moved gives a
//! consistent value.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::exception;
use smoltcp::time::Instant;

/// Core clock of the LM3S6965 out of reset: QEMU models the 12.5 MHz that the
/// reset value of `RCC` selects (its `SYSDIV` field divides by 16).
pub const CORE_CLOCK_HZ: u32 = 12_500_000;

/// SysTick interrupts per second.
pub const TICK_HZ: u32 = 1_000;

static TICKS_LO: AtomicU32 = AtomicU32::new(0);
static TICKS_HI: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    let lo = TICKS_LO.load(Ordering::Relaxed).wrapping_add(1);
    TICKS_LO.store(lo, Ordering::Relaxed);
    if lo == 0 {
        TICKS_HI.store(
            TICKS_HI.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }
}

/// Milliseconds since SysTick was started (by [`crate::Board::init`]), as a
/// 64-bit value that never wraps. 0 before that.
pub fn millis() -> u64 {
    loop {
        let hi = TICKS_HI.load(Ordering::Relaxed);
        let lo = TICKS_LO.load(Ordering::Relaxed);
        if TICKS_HI.load(Ordering::Relaxed) == hi {
            return u64::from(hi) << 32 | u64::from(lo);
        }
    }
}

/// Handle to the running millisecond clock; it exists only once SysTick runs.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    _running: (),
}

impl Clock {
    /// Starts SysTick at [`TICK_HZ`] from the core clock.
    pub(crate) fn start(mut syst: SYST) -> Self {
        syst.disable_counter();
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(CORE_CLOCK_HZ / TICK_HZ - 1);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        Clock { _running: () }
    }

    /// Milliseconds since boot.
    pub fn millis(&self) -> u64 {
        millis()
    }

    /// The current time for smoltcp (millisecond resolution).
    pub fn now(&self) -> Instant {
        // i64 milliseconds last 292 million years.
        Instant::from_millis(self.millis() as i64)
    }
}
