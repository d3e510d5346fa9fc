//! Monotonic millisecond clock from SysTick, and the defmt timestamp.
//!
//! SysTick interrupts once a millisecond and the handler counts into a 64-bit value kept
//! as two `AtomicU32` halves (Cortex-M3/M4/M7 have no 64-bit atomics). The handler is the
//! only writer and, being an interrupt on a single core, runs whole between two
//! instructions of the reader, so reading high, low, high again and retrying if the high
//! half moved gives a consistent value.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::exception;
use smolsock::smoltcp::time::{Duration, Instant};

static MILLIS_LO: AtomicU32 = AtomicU32::new(0);
static MILLIS_HI: AtomicU32 = AtomicU32::new(0);

defmt::timestamp!("{=u64:ms}", now_ms());

#[exception]
fn SysTick() {
    let lo = MILLIS_LO.load(Ordering::Relaxed).wrapping_add(1);
    MILLIS_LO.store(lo, Ordering::Release);
    if lo == 0 {
        MILLIS_HI.fetch_add(1, Ordering::Release);
    }
}

/// Milliseconds since SysTick was started (0 before that). Usable from anywhere.
pub fn now_ms() -> u64 {
    loop {
        let hi = MILLIS_HI.load(Ordering::Acquire);
        let lo = MILLIS_LO.load(Ordering::Acquire);
        if MILLIS_HI.load(Ordering::Acquire) == hi {
            return (u64::from(hi) << 32) | u64::from(lo);
        }
    }
}

/// Handle to the running millisecond clock; it exists only once SysTick runs. It is
/// `Copy`: hand it to whatever needs the time.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    _running: (),
}

impl Clock {
    /// Starts SysTick at 1 kHz from the core clock `core_hz`.
    ///
    /// # Panics
    /// If `core_hz / 1000` does not fit SysTick's 24-bit reload (above 16.7 GHz).
    pub fn start(mut syst: SYST, core_hz: u32) -> Self {
        let reload = core_hz / 1000 - 1;
        assert!(reload < (1 << 24), "SysTick reload out of range");
        syst.disable_counter();
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(reload);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        // SysTick runs for the life of the program; `syst` has no `Drop`.
        Clock { _running: () }
    }

    /// Milliseconds since the clock was started.
    pub fn now_ms(&self) -> u64 {
        now_ms()
    }

    /// The current time for smoltcp (millisecond resolution).
    pub fn now(&self) -> Instant {
        // i64 milliseconds last 292 million years.
        Instant::from_millis(self.now_ms() as i64)
    }

    /// Busy-waits for at least `ms` milliseconds.
    pub fn delay_ms(&self, ms: u64) {
        // +1: the current millisecond may be almost over.
        let until = self.now_ms() + ms + 1;
        while self.now_ms() < until {
            core::hint::spin_loop();
        }
    }

    /// Waits until the next SysTick millisecond, or not at all when `delay` is zero: a
    /// board without a receive interrupt then looks for frames once a millisecond.
    pub fn tick(&self, delay: Option<Duration>) {
        if delay == Some(Duration::ZERO) {
            return;
        }
        let start = self.now_ms();
        while self.now_ms() == start {
            core::hint::spin_loop();
        }
    }
}
