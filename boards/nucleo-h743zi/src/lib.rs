//! Board support for the ST NUCLEO-H743ZI / NUCLEO-H743ZI2 (STM32H743ZI,
//! LAN8742A PHY over RMII).
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
//!     board = nucleo_h743zi::board(),
//!     tcp_server {
//!         clients: 4,
//!         backlog: 4,
//!         buf: 8192
//!     }
//! );
//! ```
//!
//! Layout of the crate:
//! - [`config`]: addresses, PHY address, clock frequencies, ring sizes;
//! - [`net`]: the smoltcp device adapter over embassy-stm32's Ethernet driver;
//! - [`rng`]: the seed for smoltcp from the hardware RNG (with a fallback);
//! - [`serial`]: USART3 on the ST-LINK's virtual COM port, a `smolsock_board::Serial`
//!   for the `remote` firmware ([`init_with_serial`], [`board_with_serial`]).
//!
//! Memory: all RAM is the AXI SRAM (see `memory.x`), which the Ethernet DMA can
//! reach; the D-cache stays off, so the DMA buffers need no cache maintenance.

#![no_std]
#![deny(missing_docs)]

use core::ptr::addr_of_mut;

use defmt_rtt as _;

use embassy_stm32::bind_interrupts;
use embassy_stm32::eth::{self, Ethernet, PacketQueue, Sma};
use embassy_stm32::peripherals;
use embassy_stm32::time::Hertz;
use smolsock_board::nucleo::{self, HseControl};
use smolsock_board::{EthBoard, addresses};

pub mod net;
pub mod rng;
pub mod serial;

pub use net::EthDevice;
pub use serial::Usart3;
pub use smolsock_board::Clock;
/// The smoltcp this crate's device implements `Device` for (0.14).
pub use smoltcp;

/// Every board constant in one place. The NUCLEO-F429ZI's `config` has the same
/// names (and shares the re-exported ones): the values here are this board's.
pub mod config {
    use smolsock_board::addresses;
    use smoltcp::wire::Ipv4Address;

    // The address plan's network and PC; the ST-LINK's clock (if it is
    // missing, `init` falls back to the internal 64 MHz HSI) and the PHY's
    // MDIO address, as on every Nucleo-144.
    pub use smolsock_board::addresses::{PEER_ADDRESS, PREFIX_LEN};
    pub use smolsock_board::nucleo::{HSE_HZ, PHY_ADDRESS};

    /// This board's number in the address plan: 192.168.69.5.
    pub const BOARD_NUMBER: u8 = 5;
    /// Locally administered MAC address of this board.
    pub const MAC_ADDRESS: [u8; 6] = addresses::mac_address(BOARD_NUMBER).0;
    /// Static IPv4 address of this board.
    pub const IP_ADDRESS: Ipv4Address = addresses::ip_address(BOARD_NUMBER);

    /// How long [`crate::init`] waits for a link before going on without one.
    pub const LINK_TIMEOUT_MS: u64 = 5_000;
    /// The internal oscillator the core runs from until the PLL is set up.
    pub const HSI_HZ: u32 = 64_000_000;
    /// CPU clock: PLL1 P output (8 MHz / 4 * 400 / 2), voltage scale 1.
    pub const SYSCLK_HZ: u32 = 400_000_000;
    /// AHB clock (HCLK = SYSCLK / 2); the APB buses run at HCLK / 2.
    pub const HCLK_HZ: u32 = 200_000_000;

    /// Receive descriptors (one 1536-byte buffer each).
    pub const RX_DESCRIPTORS: usize = 8;
    /// Transmit descriptors (one 1514-byte buffer each).
    pub const TX_DESCRIPTORS: usize = 4;
}

bind_interrupts!(struct Irqs {
    ETH => eth::InterruptHandler;
    RNG => embassy_stm32::rng::InterruptHandler<peripherals::RNG>;
    USART3 => embassy_stm32::usart::BufferedInterruptHandler<peripherals::USART3>;
});

/// AXI SRAM as mapped in memory.x: where the DMA buffers must be.
const AXI_SRAM: core::ops::Range<usize> = 0x2400_0000..0x2408_0000;

// DMA descriptor rings and frame buffers (zero-initialised, in .bss).
static mut PACKET_QUEUE: PacketQueue<{ config::TX_DESCRIPTORS }, { config::RX_DESCRIPTORS }> =
    PacketQueue::new();

/// `RCC_CR`'s HSE bits through embassy-stm32's register access crate, before
/// `embassy_stm32::init` (which would wait for HSE forever); the probe itself
/// is `smolsock_board::nucleo::hse_present`, shared with the F4.
struct Hse;

impl HseControl for Hse {
    const HSI_HZ: u32 = config::HSI_HZ;

    fn ready(&self) -> bool {
        embassy_stm32::pac::RCC.cr().read().hserdy()
    }

    fn set_on(&mut self, on: bool) {
        embassy_stm32::pac::RCC.cr().modify(|w| w.set_hseon(on));
    }

    fn set_bypass(&mut self, bypass: bool) {
        embassy_stm32::pac::RCC
            .cr()
            .modify(|w| w.set_hsebyp(bypass));
    }

    fn warn_missing(&self) {
        defmt::warn!("no 8 MHz clock from the ST-LINK on OSC_IN: running from the 64 MHz HSI");
    }
}

fn rcc_config(hse: bool) -> embassy_stm32::Config {
    use embassy_stm32::rcc::{
        AHBPrescaler, APBPrescaler, Hse, HseMode, Hsi48Config, Pll, PllDiv, PllMul, PllPreDiv,
        PllSource, Sysclk, VoltageScale, mux,
    };
    let mut config = embassy_stm32::Config::default();
    let rcc = &mut config.rcc;
    if hse {
        rcc.hse = Some(Hse {
            freq: Hertz(config::HSE_HZ),
            mode: HseMode::Bypass,
        });
    }
    // CSI on: embassy-stm32 then enables the I/O compensation cell, which
    // ST recommends for GPIOs switching above 50 MHz (RMII runs at 50 MHz).
    rcc.csi = true;
    // The RNG's kernel clock: the internal 48 MHz HSI48, whatever HSE does
    // (embassy-stm32's default too; spelt out because `rng` relies on it).
    rcc.hsi48 = Some(Hsi48Config::new());
    rcc.mux.rngsel = mux::Rngsel::HSI48;
    // HSE: 8 MHz / 4 = 2 MHz reference, x400 = 800 MHz VCO, /2 = 400 MHz.
    // HSI: 64 MHz / 4 = 16 MHz reference, x50 = 800 MHz VCO, /2 = 400 MHz.
    let (source, mul) = if hse {
        (PllSource::HSE, PllMul::MUL400)
    } else {
        (PllSource::HSI, PllMul::MUL50)
    };
    rcc.pll1 = Some(Pll {
        source,
        prediv: PllPreDiv::DIV4,
        mul,
        fracn: None,
        divp: Some(PllDiv::DIV2),
        divq: Some(PllDiv::DIV8),
        divr: None,
    });
    rcc.sys = Sysclk::PLL1_P;
    rcc.d1c_pre = AHBPrescaler::DIV1;
    rcc.ahb_pre = AHBPrescaler::DIV2;
    rcc.apb1_pre = APBPrescaler::DIV2;
    rcc.apb2_pre = APBPrescaler::DIV2;
    rcc.apb3_pre = APBPrescaler::DIV2;
    rcc.apb4_pre = APBPrescaler::DIV2;
    rcc.voltage_scale = VoltageScale::Scale1;
    config
}

/// Brings the board up: 400 MHz CPU clock from the ST-LINK's 8 MHz MCO (or
/// the internal HSI if that is missing), I-cache, SysTick, Ethernet pins, MAC
/// and DMA, and the PHY; waits up to [`config::LINK_TIMEOUT_MS`] for a link
/// and logs its speed and duplex. Returns the device, the clock and a seed
/// for smoltcp from the hardware RNG ([`rng::hardware_seed`]; if the RNG
/// fails, a warning and [`rng::fallback_seed`]).
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
    let hse = nucleo::hse_present(&mut Hse);
    let p = embassy_stm32::init(rcc_config(hse));
    let mut cp = cortex_m::Peripherals::take().expect("Cortex-M peripherals already taken");
    // The I-cache is safe with DMA; the D-cache is left off on purpose.
    cp.SCB.enable_icache();
    let clock = Clock::start(cp.SYST, config::SYSCLK_HZ);
    let hardware_seed = rng::hardware_seed(p.RNG);
    defmt::info!(
        "NUCLEO-H743ZI: CPU {} MHz from {}, HCLK {} MHz",
        config::SYSCLK_HZ / 1_000_000,
        if hse { "HSE" } else { "HSI" },
        config::HCLK_HZ / 1_000_000
    );
    let serial = open_serial.then(|| Usart3::new(p.USART3, p.PD8, p.PD9));

    // SAFETY: `embassy_stm32::init` above panics when called a second time,
    // so this is the only place that ever borrows the queue.
    let queue = unsafe { &mut *addr_of_mut!(PACKET_QUEUE) };
    let at = queue as *const _ as usize;
    assert!(
        AXI_SRAM.contains(&at),
        "Ethernet DMA buffers must be in AXI SRAM (check memory.x)"
    );

    // RMII pins of the NUCLEO-144 (UM1974/UM2407): REF_CLK PA1, CRS_DV PA7,
    // RXD0 PC4, RXD1 PC5, TXD0 PG13, TXD1 PB13, TX_EN PG11; MDIO PA2, MDC PC1.
    let smi = Sma::new(p.ETH_SMA, p.PA2, p.PC1);
    defmt::info!("eth: starting MAC and DMA");
    let mut eth = Ethernet::new_with_phy(
        queue,
        p.ETH,
        Irqs,
        p.PA1,
        p.PA7,
        p.PC4,
        p.PC5,
        p.PG13,
        p.PB13,
        p.PG11,
        config::MAC_ADDRESS,
        net::Lan8742a::new(smi, clock),
    );
    if let Some(e) = eth.phy().error() {
        panic!(
            "no PHY answers on MDIO at address 0 ({:?}): check the board's ETH solder bridges",
            e
        );
    }
    let link = eth.phy_mut().wait_for_link(config::LINK_TIMEOUT_MS);
    let device = EthDevice::new(eth, link, config::RX_DESCRIPTORS);
    addresses::log(config::BOARD_NUMBER);
    // After the link wait, so that the fallback's time since boot varies.
    let seed = smolsock_board::seed::hardware_or(hardware_seed, rng::fallback_seed);
    (device, clock, seed, serial)
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
