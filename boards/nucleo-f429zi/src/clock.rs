//! Monotonic millisecond clock from SysTick.
//!
//! SysTick interrupts once per millisecond and counts into a 64-bit value kept
//! as two 32-bit atomics (Cortex-M4 and M7 have no 64-bit atomics). The count starts at
//! zero when [`crate::init`] starts SysTick and does not wrap in practice.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::{syst::SystClkSource, SYST};
use cortex_m_rt::exception;

static MILLIS_LO: AtomicU32 = AtomicU32::new(0);
static MILLIS_HI: AtomicU32 = AtomicU32::new(0);

/// Handle to the running millisecond clock. It is `Copy`: hand it to
/// whatever needs the time.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    _started: (),
}

impl Clock {
    /// Starts SysTick at 1 kHz from the core clock `core_hz`.
    pub(crate) fn start(mut syst: SYST, core_hz: u32) -> Self {
        let reload = core_hz / 1000 - 1;
        assert!(reload < (1 << 24), "SysTick reload out of range");
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(reload);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        // SysTick keeps running for the life of the program; `syst` (which
        // has no `Drop`) goes out of scope here.
        Clock { _started: () }
    }

    /// Milliseconds since the clock was started.
    pub fn now_ms(&self) -> u64 {
        now_ms()
    }

    /// The current time for smoltcp.
    pub fn now(&self) -> smoltcp::time::Instant {
        // Fits: i64 milliseconds outlast the hardware by far.
        smoltcp::time::Instant::from_millis(self.now_ms() as i64)
    }

    /// Busy-waits for at least `ms` milliseconds.
    pub fn delay_ms(&self, ms: u64) {
        // +1: the current millisecond may be almost over.
        let until = self.now_ms() + ms + 1;
        while self.now_ms() < until {
            core::hint::spin_loop();
        }
    }
}

/// Milliseconds since SysTick was started (0 before that). Usable from
/// anywhere, for example a defmt timestamp.
pub fn now_ms() -> u64 {
    loop {
        let hi = MILLIS_HI.load(Ordering::Acquire);
        let lo = MILLIS_LO.load(Ordering::Acquire);
        // The SysTick handler cannot be interrupted half-way by this thread
        // code, so if the high word did not change around the low-word read,
        // the pair is consistent.
        if MILLIS_HI.load(Ordering::Acquire) == hi {
            return (u64::from(hi) << 32) | u64::from(lo);
        }
    }
}

#[exception]
fn SysTick() {
    let lo = MILLIS_LO.load(Ordering::Relaxed).wrapping_add(1);
    MILLIS_LO.store(lo, Ordering::Release);
    if lo == 0 {
        MILLIS_HI.fetch_add(1, Ordering::Release);
    }
}
