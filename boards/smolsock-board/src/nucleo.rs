//! What the Nucleo-144 boards (NUCLEO-F429ZI, NUCLEO-H743ZI) share besides their PHY
//! ([`crate::lan8742a`]): the ST-LINK's 8 MHz clock on OSC_IN, and the probe that finds
//! out whether it is there.

/// HSE: the 8 MHz MCO of the on-board ST-LINK, fed to OSC_IN (the Nucleo-144 default) and
/// used in bypass mode.
pub const HSE_HZ: u32 = 8_000_000;

/// MDIO address of the on-board LAN8742A (PHYAD0 strapped low).
pub const PHY_ADDRESS: u8 = 0;

/// The HSE bits of an STM32's `RCC_CR` (HSEON, HSERDY, HSEBYP: bits 16, 17, 18 on the F4
/// and the H7 alike), through the board's register access crate, and what the board runs
/// from without HSE.
pub trait HseControl {
    /// The internal oscillator (HSI) the core runs from until its clocks are set up.
    const HSI_HZ: u32;
    /// HSERDY: the HSE clock is stable.
    fn ready(&self) -> bool;
    /// Sets HSEON.
    fn set_on(&mut self, on: bool);
    /// Sets HSEBYP (an external clock on OSC_IN instead of a crystal).
    fn set_bypass(&mut self, bypass: bool);
    /// Warns that there is no clock on OSC_IN and the board runs from the HSI (a
    /// method, so that each board's log names its HSI's frequency in the message).
    fn warn_missing(&self);
}

/// Turns on HSE in bypass mode and reports whether the external 8 MHz clock (the ST-LINK's
/// MCO on OSC_IN) is there; if not, turns it off again, warns and returns `false`, and the
/// board runs from its HSI. Without this check the HAL would wait for HSE forever on a
/// board whose solder bridges route no clock to OSC_IN.
pub fn hse_present<R: HseControl>(rcc: &mut R) -> bool {
    if rcc.ready() {
        return true;
    }
    // HSEBYP may only change while HSE is off.
    rcc.set_on(false);
    rcc.set_bypass(true);
    rcc.set_on(true);
    // Running from the HSI here: 100 x (HSI / 1000) cycles is about 100 ms, ST's HSE
    // start-up timeout. A bypass clock is ready within 6 cycles.
    for _ in 0..100 {
        if rcc.ready() {
            return true;
        }
        cortex_m::asm::delay(R::HSI_HZ / 1000);
    }
    rcc.set_on(false);
    rcc.set_bypass(false);
    rcc.warn_missing();
    false
}
