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
//! [`fallback_seed`], which is guessable.

use rand_core::RngCore;
use stm32f4xx_hal::pac;
use stm32f4xx_hal::rcc::Clocks;
use stm32f4xx_hal::rng::RngExt;

/// Status polls before a read gives up. A word takes 40 RNG clocks (under
/// 1 µs at 48 MHz); 10,000 polls take at least 10,000 AHB cycles, 60 µs at
/// 168 MHz, several dozen words' worth.
const POLLS: u32 = 10_000;

/// Why the hardware RNG gave no seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum RngError {
    /// PLL48CLK is off, or slower than HCLK / 16 (the RNG would flag a clock
    /// error on every read).
    NoClock,
    /// The RNG flagged a clock error (CECS: RNG clock below HCLK / 16).
    ClockError,
    /// The RNG flagged a seed error (SECS: its noise source looks stuck).
    SeedError,
    /// No word within [`POLLS`] reads of the status register.
    Timeout,
    /// Two consecutive words were equal: the continuous test of RM0090 24.3.1
    /// (FIPS PUB 140-2) failed.
    Repeated,
}

/// 64 bits from the hardware RNG: two 32-bit words, each checked against the
/// one before it (the first word after enabling is only used for that check,
/// as RM0090 24.3.1 asks). Never waits unboundedly and never panics.
pub fn hardware_seed(rng: pac::RNG, clocks: &Clocks) -> Result<u64, RngError> {
    // `constrain` asserts this; check it here so that a bad clock tree is an
    // error, not a panic.
    let rng_clk = clocks.pll48clk().map_or(0, |f| f.raw());
    if rng_clk == 0 || rng_clk < clocks.hclk().raw() / 16 {
        return Err(RngError::NoClock);
    }
    let mut rng = rng.constrain(clocks);
    let mut previous = next_word(&mut rng)?;
    let mut seed = 0u64;
    for _ in 0..2 {
        let word = next_word(&mut rng)?;
        if word == previous {
            return Err(RngError::Repeated);
        }
        seed = (seed << 32) | u64::from(word);
        previous = word;
    }
    Ok(seed)
}

/// One word from the RNG, once its status says one is ready (DRDY) or an
/// error is flagged (CECS, SECS), within [`POLLS`] polls.
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
/// since boot. It differs between boards and boots but is not unpredictable
/// (the ID is fixed per chip, and the time since boot at this point varies
/// by little more than the PHY's link-up time), so it is only the fallback.
pub fn fallback_seed() -> u64 {
    const UID_BASE: *const u32 = 0x1FFF_7A10 as *const u32;
    // SAFETY: the unique device ID is three read-only words in system memory.
    let uid = unsafe {
        [
            UID_BASE.read_volatile(),
            UID_BASE.add(1).read_volatile(),
            UID_BASE.add(2).read_volatile(),
        ]
    };
    smolsock_board::seed::seed(&uid)
}
