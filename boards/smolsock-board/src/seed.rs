//! Seeds for smoltcp (TCP initial sequence numbers, ephemeral ports) that differ between
//! boards and boots: from a hardware random number generator ([`from_rng`]) when the
//! board has one, else from a device ID ([`from_device_id`]) or a host's clock
//! ([`seed`]), which are not cryptographic.

use crate::clock;

/// Why a hardware random number generator gave no seed: what an STM32 RNG flags, and
/// what a board's bounded reads add.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum RngError {
    /// The RNG's clock is off or too slow (it would flag a clock error on every read).
    NoClock,
    /// The RNG flagged a clock error (its clock too slow for HCLK).
    ClockError,
    /// The RNG flagged a seed error (its noise source looks stuck).
    SeedError,
    /// No word within the board's bound of polls.
    Timeout,
    /// Two consecutive words were equal: the continuous test (FIPS PUB 140-2) that the
    /// reference manuals ask for failed.
    Repeated,
}

/// 64 bits from a hardware RNG: two 32-bit words from `next_word`, each checked against
/// the one before it (the first word is only used for that check, as the reference
/// manuals ask). Asks for three words, the first error ends it.
pub fn from_rng(mut next_word: impl FnMut() -> Result<u32, RngError>) -> Result<u64, RngError> {
    let mut previous = None;
    let mut seed = 0u64;
    for _ in 0..3 {
        let word = next_word()?;
        if previous == Some(word) {
            return Err(RngError::Repeated);
        }
        // The first word is shifted out again by the last.
        seed = (seed << 32) | u64::from(word);
        previous = Some(word);
    }
    Ok(seed)
}

/// The seed of a board with a hardware RNG: `hardware` (from [`from_rng`]) if the RNG
/// gave one, else a warning and `fallback()` (say [`from_device_id`]), which is
/// guessable. Logs which.
pub fn hardware_or(hardware: Result<u64, RngError>, fallback: impl FnOnce() -> u64) -> u64 {
    match hardware {
        Ok(seed) => {
            defmt::info!("seed: 64 bits from the hardware RNG");
            seed
        }
        Err(e) => {
            defmt::warn!(
                "hardware RNG failed ({}): seeding from the device ID and the time since boot, which is guessable",
                e
            );
            fallback()
        }
    }
}

/// The seed without an RNG: a 96-bit unique device ID (three little-endian words) mixed
/// with the time since boot ([`seed`]). It differs between boards and boots but is not
/// unpredictable (the ID is fixed per chip, and the time since boot at start-up varies by
/// little more than the PHY's link-up time), so it is only a fallback.
pub fn from_device_id(id: [u8; 12]) -> u64 {
    let word = |i: usize| u32::from_le_bytes([id[i], id[i + 1], id[i + 2], id[i + 3]]);
    seed(&[word(0), word(4), word(8)])
}

/// Mixes `words` (a unique device ID, a host's time of day) with the time since boot down
/// to the SysTick count, which varies with start-up (PHY auto-negotiation, say).
pub fn seed(words: &[u32]) -> u64 {
    let mut x = words
        .iter()
        .enumerate()
        .fold(0u64, |acc, (i, &w)| acc ^ (u64::from(w) << ((i * 16) % 48)));
    let ticks = cortex_m::peripheral::SYST::get_current();
    x ^= clock::now_ms().rotate_left(40) ^ u64::from(ticks);
    splitmix64(x)
}

/// The splitmix64 finaliser: nearby inputs give unrelated outputs.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
