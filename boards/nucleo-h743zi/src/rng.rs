//! The seed for smoltcp (TCP initial sequence numbers, ephemeral ports) from
//! the STM32H743's hardware random number generator, through embassy-stm32's
//! `rng::Rng`.
//!
//! The RNG's kernel clock is the 48 MHz HSI48 (`RNGSEL` = HSI48, set in
//! [`crate::init`]'s clock configuration), which does not depend on HSE or
//! the PLLs. embassy-stm32's blocking reads (`fill_bytes`, `next_u32`) spin
//! until a word is ready and answer a seed or clock error by resetting the
//! RNG and trying again, without a bound, so this module uses its
//! `async_fill_bytes`, which reports those errors, and polls it with a no-op
//! waker a bounded number of times (as `net.rs` polls the Ethernet driver);
//! the RNG interrupt bound in `lib.rs` only turns the interrupt off again.
//! `Rng::new` itself waits for the first word without a bound, so a short
//! probe over the registers runs first and answers for it: with the clock
//! running and the noise source working, that wait ends within a microsecond.
//! If anything fails, [`crate::init`] logs a warning and falls back to
//! [`fallback_seed`], which is guessable. The two words and their check, the
//! errors, the warning and the fallback's mixing are `smolsock_board::seed`'s,
//! shared with the F4; this module holds what differs: the H7's RNG clock
//! (HSI48 through `RNGSEL`), its register map and embassy-stm32's driver.

use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};

use embassy_stm32::Peri;
use embassy_stm32::pac;
use embassy_stm32::pac::rcc::vals::Rngsel;
use embassy_stm32::peripherals::RNG;
use embassy_stm32::rng::{self, Rng};

use crate::Irqs;

pub use smolsock_board::seed::RngError;

/// Status polls (or polls of the read future) before a read gives up. A word
/// takes about 40 RNG clocks (under 1 µs at 48 MHz); 10,000 polls take at
/// least 10,000 AHB cycles, 50 µs at 200 MHz.
const POLLS: u32 = 10_000;

/// embassy-stm32's two errors: a clock error (the RNG's clock below
/// HCLK / 32) or a seed error (its noise source looks stuck).
fn rng_error(e: rng::Error) -> RngError {
    match e {
        rng::Error::ClockError => RngError::ClockError,
        rng::Error::SeedError => RngError::SeedError,
    }
}

/// 64 bits from the hardware RNG: two 32-bit words, each checked against the
/// one before it (`smolsock_board::seed::from_rng`; embassy-stm32 discards
/// the first word after enabling as well, as the reference manual asks).
/// Never waits unboundedly on a read and never panics.
pub fn hardware_seed(peripheral: Peri<'static, RNG>) -> Result<u64, RngError> {
    probe()?;
    let mut rng = Rng::new(peripheral, Irqs);
    smolsock_board::seed::from_rng(|| next_word(&mut rng))
    // Dropping `rng` turns the RNG and its clock off again.
}

/// Checks, over the registers and within [`POLLS`] polls, that the RNG's
/// clock runs (HSI48 ready and selected by `RNGSEL`, else
/// [`RngError::NoClock`]) and that it produces a word: what `Rng::new` waits
/// for without a bound (and what `T::frequency()` in it would panic on).
/// Leaves the RNG disabled for `Rng::new` to reset.
fn probe() -> Result<(), RngError> {
    let rcc = pac::RCC;
    if !rcc.cr().read().hsi48rdy() || rcc.d2ccip2r().read().rngsel() != Rngsel::HSI48 {
        return Err(RngError::NoClock);
    }
    rcc.ahb2enr().modify(|w| w.set_rngen(true));
    let regs = pac::RNG;
    regs.cr().modify(|w| w.set_rngen(true));
    let mut outcome = Err(RngError::Timeout);
    for _ in 0..POLLS {
        let sr = regs.sr().read();
        if sr.ceis() || sr.cecs() {
            outcome = Err(RngError::ClockError);
            break;
        }
        if sr.seis() || sr.secs() {
            outcome = Err(RngError::SeedError);
            break;
        }
        if sr.drdy() {
            outcome = Ok(());
            break;
        }
    }
    regs.cr().modify(|w| w.set_rngen(false));
    outcome
}

/// One word from embassy-stm32's `async_fill_bytes`, polled at most
/// [`POLLS`] times.
// Out of line: inlined into `init` (its only caller, through
// `smolsock_board::seed::from_rng`) it takes about 100 bytes more flash.
#[inline(never)]
fn next_word(rng: &mut Rng<'static, RNG>) -> Result<u32, RngError> {
    let mut word = [0u8; 4];
    let outcome = {
        let mut read = pin!(rng.async_fill_bytes(&mut word));
        let mut cx = Context::from_waker(Waker::noop());
        let mut outcome = Err(RngError::Timeout);
        for _ in 0..POLLS {
            if let Poll::Ready(result) = read.as_mut().poll(&mut cx) {
                outcome = result.map_err(rng_error);
                break;
            }
        }
        outcome
    };
    outcome.map(|()| u32::from_ne_bytes(word))
}

/// The seed without the RNG: the 96-bit unique device ID (embassy-stm32's
/// `uid`) mixed with the time since boot
/// (`smolsock_board::seed::from_device_id`), which is guessable.
pub fn fallback_seed() -> u64 {
    smolsock_board::seed::from_device_id(embassy_stm32::uid::uid())
}
