//! Board support for the ST NUCLEO-F429ZI (STM32F429ZI, LAN8742A PHY over RMII).
//!
//! Everything a smolsock firmware program needs from this board, and nothing
//! else: [`init`] brings up clocks, SysTick, the Ethernet MAC/DMA and the PHY,
//! and returns a [`net::EthDevice`] (a `smoltcp::phy::Device`) and a [`Clock`];
//! [`board`] wraps them in a `smolsock_board::EthBoard` with this board's
//! addresses. The loop, the clock, the PHY driver and the four programs' mains
//! are shared with the other boards in `smolsock-board`. Linking this crate
//! also links the defmt RTT logger and the panic handler (smolsock-board's), so a
//! firmware binary is its board, its program and its buffer sizes:
//!
//! ```ignore
//! smolsock_board::program!(
//!     board = nucleo_f429zi::board(),
//!     tcp_server {
//!         clients: 4,
//!         backlog: 4,
//!         buf: 4096
//!     }
//! );
//! ```
//!
//! Layout of the crate:
//! - [`config`]: addresses, PHY address, clock frequencies, ring sizes;
//! - [`net`]: the smoltcp device adapter over stm32-eth's DMA rings;
//! - [`rng`]: the seed for smoltcp from the hardware RNG (with a fallback).

#![no_std]
#![deny(missing_docs)]

use core::ptr::addr_of_mut;

use defmt_rtt as _;

use smolsock::smol::StackConfig;
use smolsock_board::EthBoard;
use smoltcp::wire::{EthernetAddress, Ipv4Cidr};
use stm32_eth::dma::{RxRingEntry, TxRingEntry};
use stm32_eth::{EthPins, PartsIn};
use stm32f4xx_hal::gpio::{GpioExt, Speed as PinSpeed};
use stm32f4xx_hal::pac;
use stm32f4xx_hal::prelude::*;

pub mod net;
pub mod rng;

pub use net::EthDevice;
pub use smolsock_board::Clock;
use smolsock_board::lan8742a as phy;
/// The smoltcp this crate's device implements `Device` for (0.14).
pub use smoltcp;

/// Every board constant in one place.
pub mod config {
    use smoltcp::wire::{IpAddress, IpCidr, Ipv4Address};

    /// Locally administered MAC address of this board.
    pub const MAC_ADDRESS: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x04];
    /// Static IPv4 address of this board.
    pub const IP_ADDRESS: Ipv4Address = Ipv4Address::new(192, 168, 69, 4);
    /// Prefix length of [`IP_ADDRESS`]'s subnet.
    pub const PREFIX_LEN: u8 = 24;
    /// The PC on the other end of the cable (its Ethernet port).
    pub const PEER_ADDRESS: Ipv4Address = Ipv4Address::new(192, 168, 69, 100);
    /// Default port of the smolsock programs.
    pub const PORT: u16 = 9090;

    /// MDIO address of the on-board LAN8742A (PHYAD0 strapped low).
    pub const PHY_ADDRESS: u8 = 0;
    /// How long [`crate::init`] waits for a link before going on without one.
    pub const LINK_TIMEOUT_MS: u64 = 5_000;

    /// HSE: the 8 MHz MCO of the on-board ST-LINK, fed in bypass mode. If it
    /// is missing, [`crate::init`] falls back to the internal 16 MHz HSI.
    pub const HSE_HZ: u32 = 8_000_000;
    /// Core clock (SYSCLK = HCLK): the main PLL's P output, 2 MHz x 168 / 2,
    /// whose Q output (/7) is the exact 48 MHz PLL48CLK that the RNG runs
    /// from. 180 MHz (VCO 360 MHz) leaves no integer Q for 48 MHz, and
    /// stm32f4xx-hal's `require_pll48clk()` would pick 168 MHz anyway.
    pub const SYSCLK_HZ: u32 = 168_000_000;

    /// Receive descriptors (one 1522-byte buffer each).
    pub const RX_DESCRIPTORS: usize = 8;
    /// Transmit descriptors (one 1522-byte buffer each).
    pub const TX_DESCRIPTORS: usize = 4;

    /// [`IP_ADDRESS`] with its prefix.
    pub fn ip_cidr() -> IpCidr {
        IpCidr::new(IpAddress::Ipv4(IP_ADDRESS), PREFIX_LEN)
    }
}

// DMA descriptor rings and frame buffers. Ordinary RAM (0x2000_0000) is
// reachable by the Ethernet DMA; CCM is not, and memory.x leaves it out.
static mut RX_RING: [RxRingEntry; config::RX_DESCRIPTORS] =
    [RxRingEntry::INIT; config::RX_DESCRIPTORS];
static mut TX_RING: [TxRingEntry; config::TX_DESCRIPTORS] =
    [TxRingEntry::INIT; config::TX_DESCRIPTORS];
static mut TX_SCRATCH: [u8; net::MTU] = [0; net::MTU];

/// Brings the board up: 168 MHz clocks and the 48 MHz PLL48CLK from the
/// ST-LINK's 8 MHz MCO (or the internal HSI if that is missing), SysTick,
/// Ethernet pins, MAC and DMA, and the PHY; waits up to
/// [`config::LINK_TIMEOUT_MS`] for a link and logs its speed and duplex.
/// Returns the device, the clock and a seed for smoltcp from the hardware RNG
/// ([`rng::hardware_seed`]; if the RNG fails, a warning and
/// [`rng::fallback_seed`]).
///
/// Without a link it goes on: call [`EthDevice::poll_link`] from the main loop
/// to pick the link up later (and to follow re-plugs).
///
/// # Panics
/// If called twice, or if no PHY answers on MDIO (a hardware fault).
pub fn init() -> (EthDevice, Clock, u64) {
    let dp = pac::Peripherals::take().expect("nucleo_f429zi::init() called twice");
    let cp = cortex_m::Peripherals::take().expect("Cortex-M peripherals already taken");

    let hse = hse_present(&dp.RCC);
    let rcc = dp.RCC.constrain();
    let cfgr = rcc.cfgr;
    let cfgr = if hse {
        cfgr.use_hse(config::HSE_HZ.Hz()).bypass_hse_oscillator()
    } else {
        defmt::warn!("no 8 MHz clock from the ST-LINK on OSC_IN: running from the 16 MHz HSI");
        cfgr
    };
    let clocks = cfgr
        .sysclk(config::SYSCLK_HZ.Hz())
        .hclk(config::SYSCLK_HZ.Hz())
        .require_pll48clk()
        .freeze();
    let clock = Clock::start(cp.SYST, clocks.hclk().raw());
    defmt::info!(
        "NUCLEO-F429ZI: SYSCLK {} MHz from {}, HCLK {} MHz, PCLK1 {} MHz, PCLK2 {} MHz, PLL48CLK {} kHz",
        clocks.sysclk().raw() / 1_000_000,
        if hse { "HSE" } else { "HSI" },
        clocks.hclk().raw() / 1_000_000,
        clocks.pclk1().raw() / 1_000_000,
        clocks.pclk2().raw() / 1_000_000,
        clocks.pll48clk().map_or(0, |f| f.raw() / 1_000)
    );
    let hardware_seed = rng::hardware_seed(dp.RNG, &clocks);

    // RMII pins of the NUCLEO-144 (UM1974): stm32-eth switches them to AF11,
    // very high speed.
    let gpioa = dp.GPIOA.split();
    let gpiob = dp.GPIOB.split();
    let gpioc = dp.GPIOC.split();
    let gpiog = dp.GPIOG.split();
    let pins = EthPins {
        ref_clk: gpioa.pa1,
        crs: gpioa.pa7,
        tx_en: gpiog.pg11,
        tx_d0: gpiog.pg13,
        tx_d1: gpiob.pb13,
        rx_d0: gpioc.pc4,
        rx_d1: gpioc.pc5,
    };
    let mdio = gpioa.pa2.into_alternate::<11>().speed(PinSpeed::VeryHigh);
    let mdc = gpioc.pc1.into_alternate::<11>().speed(PinSpeed::VeryHigh);

    // SAFETY: `Peripherals::take` above succeeds once per boot, so this is
    // the only place that ever borrows the rings and the scratch buffer.
    let rx_ring: &'static mut [RxRingEntry] = unsafe { &mut *addr_of_mut!(RX_RING) };
    // SAFETY: as above.
    let tx_ring: &'static mut [TxRingEntry] = unsafe { &mut *addr_of_mut!(TX_RING) };
    // SAFETY: as above.
    let scratch = unsafe { &mut *addr_of_mut!(TX_SCRATCH) };

    // The DMA reset inside waits for the PHY's 50 MHz REF_CLK on PA1: if the
    // log stops here, the PHY is not clocking the RMII bus.
    defmt::info!("eth: starting MAC and DMA");
    let parts = stm32_eth::new_with_mii(
        PartsIn {
            mac: dp.ETHERNET_MAC,
            mmc: dp.ETHERNET_MMC,
            dma: dp.ETHERNET_DMA,
        },
        rx_ring,
        tx_ring,
        clocks,
        pins,
        mdio,
        mdc,
    )
    .expect("HCLK is below the 25 MHz Ethernet needs");
    let (mut mac, dma) = parts.split();

    phy::start(&mut net::PhyBus(&mut mac), &clock)
        .expect("no PHY answers on MDIO at address 0 (check the board's ETH solder bridges)");
    let link = phy::wait_for_link(&mut net::PhyBus(&mut mac), &clock, config::LINK_TIMEOUT_MS);
    if link.is_none() {
        defmt::warn!(
            "no link after {} ms; going on, poll_link() will pick it up",
            config::LINK_TIMEOUT_MS
        );
    }
    let device = EthDevice::new(dma, mac, link, config::RX_DESCRIPTORS, scratch);
    defmt::info!(
        "eth: MAC {}, IPv4 {}",
        EthernetAddress(config::MAC_ADDRESS),
        config::ip_cidr()
    );
    // After the link wait, so that the fallback's time since boot varies.
    let seed = match hardware_seed {
        Ok(seed) => {
            defmt::info!("seed: 64 bits from the hardware RNG");
            seed
        }
        Err(e) => {
            defmt::warn!(
                "hardware RNG failed ({}): seeding from the device ID and the time since boot, which is guessable",
                e
            );
            rng::fallback_seed()
        }
    };
    (device, clock, seed)
}

/// Turns on HSE in bypass mode and reports whether the external 8 MHz clock
/// (the ST-LINK's MCO on OSC_IN, the NUCLEO-144 default) is there. Without
/// this check the HAL would wait for it forever on a board whose solder
/// bridges route no clock to OSC_IN.
fn hse_present(rcc: &pac::RCC) -> bool {
    if rcc.cr.read().hserdy().bit_is_set() {
        return true;
    }
    // HSEBYP may only change while HSE is off.
    rcc.cr.modify(|_, w| w.hseon().clear_bit());
    rcc.cr.modify(|_, w| w.hsebyp().set_bit());
    rcc.cr.modify(|_, w| w.hseon().set_bit());
    // Running from the 16 MHz HSI here: 100 x 16k cycles is about 100 ms,
    // ST's HSE start-up timeout. A bypass clock is ready within 6 cycles.
    for _ in 0..100 {
        if rcc.cr.read().hserdy().bit_is_set() {
            return true;
        }
        cortex_m::asm::delay(16_000);
    }
    rcc.cr.modify(|_, w| w.hseon().clear_bit());
    rcc.cr.modify(|_, w| w.hsebyp().clear_bit());
    false
}

/// This board as a `smolsock_board::Board`: [`init`], with
/// [`config::MAC_ADDRESS`], [`config::IP_ADDRESS`]/[`config::PREFIX_LEN`], no
/// gateway, and the seed from [`init`] (the hardware RNG).
pub fn board() -> EthBoard<EthDevice> {
    let (device, clock, seed) = init();
    let config = StackConfig {
        mac: EthernetAddress(config::MAC_ADDRESS),
        ip: Ipv4Cidr::new(config::IP_ADDRESS, config::PREFIX_LEN),
        gateway: None,
        seed,
    };
    EthBoard::new(device, clock, config)
}
