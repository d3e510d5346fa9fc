//! Seeds for smoltcp (TCP initial sequence numbers, ephemeral ports) that differ between
//! boards and boots. Not cryptographic.

use crate::clock;

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
