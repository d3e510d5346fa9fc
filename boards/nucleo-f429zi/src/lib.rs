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
//! - [`rng`]: the seed for smoltcp from the hardware RNG (with a fallback);
//! - [`serial`]: USART3 on the ST-LINK's virtual COM port, a `smolsock_board::Serial`
//!   for the `remote` firmware ([`init_with_serial`], [`board_with_serial`]).

#![no_std]
#![deny(missing_docs)]

use core::ptr::addr_of_mut;

use defmt_rtt as _;

use smolsock_board::nucleo::{self, HseControl};
use smolsock_board::{EthBoard, addresses};
use stm32_eth::dma::{RxRingEntry, TxRingEntry};
use stm32_eth::{EthPins, PartsIn};
use stm32f4xx_hal::gpio::{GpioExt, Speed as PinSpeed};
use stm32f4xx_hal::pac;
use stm32f4xx_hal::prelude::*;

pub mod net;
pub mod rng;
pub mod serial;

pub use net::EthDevice;
pub use serial::Usart3;
pub use smolsock_board::Clock;
use smolsock_board::lan8742a as phy;
/// The smoltcp this crate's device implements `Device` for (0.14).
pub use smoltcp;

/// Every board constant in one place. The NUCLEO-H743ZI's `config` has the same
/// names (and shares the re-exported ones): the values here are this board's.
pub mod config {
    use smolsock_board::addresses;
    use smoltcp::wire::Ipv4Address;

    // The address plan's network and PC; the ST-LINK's clock (if it is
    // missing, `init` falls back to the internal 16 MHz HSI) and the PHY's
    // MDIO address, as on every Nucleo-144.
    pub use smolsock_board::addresses::{PEER_ADDRESS, PREFIX_LEN};
    pub use smolsock_board::nucleo::{HSE_HZ, PHY_ADDRESS};

    /// This board's number in the address plan: 192.168.69.4.
    pub const BOARD_NUMBER: u8 = 4;
    /// Locally administered MAC address of this board.
    pub const MAC_ADDRESS: [u8; 6] = addresses::mac_address(BOARD_NUMBER).0;
    /// Static IPv4 address of this board.
    pub const IP_ADDRESS: Ipv4Address = addresses::ip_address(BOARD_NUMBER);

    /// How long [`crate::init`] waits for a link before going on without one.
    pub const LINK_TIMEOUT_MS: u64 = 5_000;
    /// The internal oscillator the core runs from until the PLL is set up.
    pub const HSI_HZ: u32 = 16_000_000;
    /// Core clock (SYSCLK = HCLK): the main PLL's P output, 2 MHz x 168 / 2,
    /// whose Q output (/7) is the exact 48 MHz PLL48CLK that the RNG runs
    /// from. 180 MHz (VCO 360 MHz) leaves no integer Q for 48 MHz, and
    /// stm32f4xx-hal's `require_pll48clk()` would pick 168 MHz anyway.
    pub const SYSCLK_HZ: u32 = 168_000_000;

    /// Receive descriptors (one 1522-byte buffer each).
    pub const RX_DESCRIPTORS: usize = 8;
    /// Transmit descriptors (one 1522-byte buffer each).
    pub const TX_DESCRIPTORS: usize = 4;
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
    let (device, clock, seed, _) = start(false);
    (device, clock, seed)
}

/// [`init`], and USART3 on the ST-LINK's virtual COM port ([`serial`]): the link to the
/// host for the `remote` firmware. The port is opened before the Ethernet link wait, so
/// bytes the host sends meanwhile are kept (up to [`serial::RX_RING`]).
///
/// # Panics
/// As [`init`].
pub fn init_with_serial() -> (EthDevice, Clock, u64, Usart3) {
    match start(true) {
        (device, clock, seed, Some(serial)) => (device, clock, seed, serial),
        (_, _, _, None) => defmt::unreachable!(),
    }
}

/// [`init`]; USART3 too when `open_serial`.
fn start(open_serial: bool) -> (EthDevice, Clock, u64, Option<Usart3>) {
    let dp = pac::Peripherals::take().expect("nucleo_f429zi::init() called twice");
    let cp = cortex_m::Peripherals::take().expect("Cortex-M peripherals already taken");

    let hse = nucleo::hse_present(&mut Hse(&dp.RCC));
    let rcc = dp.RCC.constrain();
    let cfgr = rcc.cfgr;
    let cfgr = if hse {
        cfgr.use_hse(config::HSE_HZ.Hz()).bypass_hse_oscillator()
    } else {
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
    let serial = if open_serial {
        let gpiod = dp.GPIOD.split();
        Some(Usart3::new(dp.USART3, gpiod.pd8, gpiod.pd9, &clocks))
    } else {
        None
    };

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
    let device = EthDevice::new(dma, mac, link, config::RX_DESCRIPTORS, scratch);
    addresses::log(config::BOARD_NUMBER);
    // After the link wait, so that the fallback's time since boot varies.
    let seed = smolsock_board::seed::hardware_or(hardware_seed, rng::fallback_seed);
    (device, clock, seed, serial)
}

/// `RCC_CR`'s HSE bits through stm32f4xx-hal's register access crate (the
/// probe itself is `smolsock_board::nucleo::hse_present`, shared with the H7).
struct Hse<'a>(&'a pac::RCC);

impl HseControl for Hse<'_> {
    const HSI_HZ: u32 = config::HSI_HZ;

    fn ready(&self) -> bool {
        self.0.cr.read().hserdy().bit_is_set()
    }

    fn set_on(&mut self, on: bool) {
        self.0.cr.modify(|_, w| w.hseon().bit(on));
    }

    fn set_bypass(&mut self, bypass: bool) {
        self.0.cr.modify(|_, w| w.hsebyp().bit(bypass));
    }

    fn warn_missing(&self) {
        defmt::warn!("no 8 MHz clock from the ST-LINK on OSC_IN: running from the 16 MHz HSI");
    }
}

/// This board as a `smolsock_board::Board`: [`init`], with its place in the
/// address plan ([`config::MAC_ADDRESS`], [`config::IP_ADDRESS`]/
/// [`config::PREFIX_LEN`], no gateway), and the seed from [`init`] (the
/// hardware RNG).
pub fn board() -> EthBoard<EthDevice> {
    let (device, clock, seed) = init();
    let config = addresses::stack_config(config::BOARD_NUMBER, seed);
    EthBoard::new(device, clock, config)
}

/// [`board`] and the ST-LINK's virtual COM port ([`init_with_serial`]), for the `remote`
/// firmware.
pub fn board_with_serial() -> (EthBoard<EthDevice>, Usart3) {
    let (device, clock, seed, serial) = init_with_serial();
    let config = addresses::stack_config(config::BOARD_NUMBER, seed);
    (EthBoard::new(device, clock, config), serial)
}
