//! The seed for smoltcp (TCP initial sequence numbers, ephemeral ports) from
//! the STM32F429's hardware random number generator, through
//! stm32f4xx-hal's `Rng` (`rand_core::RngCore`).
//!
//! The RNG runs from PLL48CLK (the main PLL's Q output), which [`crate::init`]
//! sets to 48 MHz with `require_pll48clk()`. The HAL's `Rng` waits for a word
//! without a bound and panics in `constrain` without PLL48CLK, so this module
//! checks the clock first and polls the status register itself, a bounded
//! number of times, before each read: the HAL is only asked for a word once
//! one is ready, and then answers at once (a word, or the clock or seed
//! error). If anything fails, [`crate::init`] logs a warning and falls back to
//! [`fallback_seed`], which is guessable. The two words and their check, the
//! errors, the warning and the fallback's mixing are `smolsock_board::seed`'s,
//! shared with the H7; this module holds what differs: the F4's RNG clock
//! (PLL48CLK) and its status register read through stm32f4xx-hal.

use rand_core::RngCore;
use stm32f4xx_hal::pac;
use stm32f4xx_hal::rcc::Clocks;
use stm32f4xx_hal::rng::RngExt;

pub use smolsock_board::seed::RngError;

/// Status polls before a read gives up. A word takes 40 RNG clocks (under
/// 1 µs at 48 MHz); 10,000 polls take at least 10,000 AHB cycles, 60 µs at
/// 168 MHz, several dozen words' worth.
const POLLS: u32 = 10_000;

/// 64 bits from the hardware RNG: two 32-bit words, each checked against the
/// one before it (the first word after enabling is only used for that check,
/// as RM0090 24.3.1 asks: `smolsock_board::seed::from_rng`). Never waits
/// unboundedly and never panics.
pub fn hardware_seed(rng: pac::RNG, clocks: &Clocks) -> Result<u64, RngError> {
    // `constrain` asserts this; check it here so that a bad clock tree is an
    // error, not a panic. PLL48CLK off, or slower than HCLK / 16: the RNG
    // would flag a clock error on every read.
    let rng_clk = clocks.pll48clk().map_or(0, |f| f.raw());
    if rng_clk == 0 || rng_clk < clocks.hclk().raw() / 16 {
        return Err(RngError::NoClock);
    }
    let mut rng = rng.constrain(clocks);
    smolsock_board::seed::from_rng(|| next_word(&mut rng))
}

/// One word from the RNG, once its status says one is ready (DRDY) or an
/// error is flagged (CECS: RNG clock below HCLK / 16; SECS: noise source
/// stuck), within [`POLLS`] polls ([`RngError::Timeout`] after that).
fn next_word(rng: &mut stm32f4xx_hal::rng::Rng) -> Result<u32, RngError> {
    // SAFETY: this only reads RNG_SR, which has no side effect (its flags
    // clear only on writes and DR reads), so it does not disturb the HAL's
    // `Rng`, which owns the peripheral.
    let regs = unsafe { &*pac::RNG::ptr() };
    for _ in 0..POLLS {
        let sr = regs.sr.read();
        if sr.cecs().bit_is_set() {
            return Err(RngError::ClockError);
        }
        if sr.secs().bit_is_set() {
            return Err(RngError::SeedError);
        }
        if sr.drdy().bit_is_set() {
            // DRDY stays set until DR is read, so the HAL's loop ends at its
            // first status read: with this word, or with an error just flagged.
            let mut word = [0u8; 4];
            return match rng.try_fill_bytes(&mut word) {
                Ok(()) => Ok(u32::from_ne_bytes(word)),
                Err(_) if regs.sr.read().cecs().bit_is_set() => Err(RngError::ClockError),
                Err(_) => Err(RngError::SeedError),
            };
        }
    }
    Err(RngError::Timeout)
}

/// The seed without the RNG: the 96-bit unique device ID mixed with the time
/// since boot (`smolsock_board::seed::from_device_id`), which is guessable.
pub fn fallback_seed() -> u64 {
    const UID: *const [u8; 12] = 0x1FFF_7A10 as *const [u8; 12];
    // SAFETY: the unique device ID is 12 read-only bytes in system memory
    // (RM0090, device electronic signature), always mapped, never written.
    smolsock_board::seed::from_device_id(unsafe { UID.read_volatile() })
}
