//! `smoltcp::phy::Device` over embassy-stm32's Ethernet driver, and the
//! LAN8742A as an embassy-stm32 `Phy`.
//!
//! embassy-stm32's `Ethernet` implements `embassy_net_driver::Driver`, a trait
//! that does not depend on any smoltcp version. Its methods take a task
//! `Context` only to register a waker for async use; this adapter polls them
//! with a no-op waker, so no executor or time driver is needed, and the tokens
//! map one to one.
//!
//! Checksums: this driver enables no checksum offload, so smoltcp computes and
//! verifies all of them (the capabilities are passed through).

use core::sync::atomic::{AtomicU32, Ordering};
use core::task::{Context, Waker};

use embassy_net_driver::{Checksum as EmbassyChecksum, Driver};
use embassy_stm32::eth::{Ethernet, Phy, Sma, StationManagement};
use embassy_stm32::peripherals::{ETH, ETH_SMA};
use smoltcp::phy::{self, Checksum, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use crate::config::PHY_ADDRESS;
use smolsock_board::Clock;
use smolsock_board::lan8742a::{self, Link, LinkState, PhyError, Speed};

/// embassy-stm32's Ethernet driver as used on this board.
pub type Eth = Ethernet<'static, ETH, Lan8742a<Sma<'static, ETH_SMA>>>;

// The counters are this driver's own (the F4's look alike but count more):
// embassy-stm32 drops bad frames inside and always has a TX buffer for a token,
// so only frames are counted.
static RX_FRAMES: AtomicU32 = AtomicU32::new(0);
static TX_FRAMES: AtomicU32 = AtomicU32::new(0);

/// Frame counters since boot (they wrap at 2^32). Frames with errors are
/// dropped inside the driver and not counted.
#[derive(Clone, Copy, Debug, Default, defmt::Format)]
pub struct Stats {
    /// Frames handed to smoltcp.
    pub rx_frames: u32,
    /// Frames queued for transmission.
    pub tx_frames: u32,
}

/// The board's Ethernet interface as a smoltcp device.
///
/// Besides [`smoltcp::phy::Device`] it offers [`EthDevice::poll_link`] to follow
/// the cable: call it now and then (every few hundred ms) from the main loop.
pub struct EthDevice {
    eth: Eth,
    link: LinkState,
    rx_descriptors: usize,
}

impl EthDevice {
    pub(crate) fn new(eth: Eth, link: Option<Link>, rx_descriptors: usize) -> Self {
        // embassy-stm32 strips the FCS only from 802.3 length frames (ACS);
        // strip it from Ethernet II frames too, so smoltcp gets bare frames.
        embassy_stm32::pac::ETH
            .ethernet_mac()
            .maccr()
            .modify(|w| w.set_cst(true));
        let mut dev = EthDevice {
            eth,
            link: LinkState::default(),
            rx_descriptors,
        };
        dev.follow(link);
        dev
    }

    /// The link as last seen by [`EthDevice::poll_link`] (or at init).
    pub fn link(&self) -> Option<Link> {
        self.link.link()
    }

    /// Reads the link state from the PHY (three MDIO reads, about 0.1 ms),
    /// logs a change and sets the MAC's speed and duplex to match the PHY.
    pub fn poll_link(&mut self) -> Option<Link> {
        let link = lan8742a::link(&mut SmiBus(&mut self.eth.phy_mut().smi));
        self.follow(link);
        link
    }

    /// Frame counters since boot.
    pub fn stats(&self) -> Stats {
        Stats {
            rx_frames: RX_FRAMES.load(Ordering::Relaxed),
            tx_frames: TX_FRAMES.load(Ordering::Relaxed),
        }
    }

    /// Records the link (logging a change) and sets the MAC's speed and
    /// duplex to a new one: embassy-stm32 starts the MAC at 100 Mbit/s full
    /// duplex and never changes it, so this writes MACCR's FES and DM itself.
    fn follow(&mut self, link: Option<Link>) {
        if let Some(l) = self.link.update(link) {
            embassy_stm32::pac::ETH.ethernet_mac().maccr().modify(|w| {
                w.set_fes(l.speed == Speed::Mbps100);
                w.set_dm(l.full_duplex);
            });
        }
    }
}

/// A waker-free task context: this device is polled, nothing waits on it.
fn no_wake() -> Context<'static> {
    Context::from_waker(Waker::noop())
}

fn checksum(c: EmbassyChecksum) -> Checksum {
    match c {
        EmbassyChecksum::Both => Checksum::Both,
        EmbassyChecksum::Tx => Checksum::Tx,
        EmbassyChecksum::Rx => Checksum::Rx,
        EmbassyChecksum::None => Checksum::None,
    }
}

impl phy::Device for EthDevice {
    type RxToken<'a>
        = RxToken<<Eth as Driver>::RxToken<'a>>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<<Eth as Driver>::TxToken<'a>>
    where
        Self: 'a;

    fn receive(&mut self, _timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        Driver::receive(&mut self.eth, &mut no_wake()).map(|(rx, tx)| (RxToken(rx), TxToken(tx)))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<Self::TxToken<'_>> {
        Driver::transmit(&mut self.eth, &mut no_wake()).map(TxToken)
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let c = Driver::capabilities(&self.eth);
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = c.max_transmission_unit;
        // Keeps smoltcp's TCP window within what the RX ring can absorb (the
        // driver reports its TX ring length here).
        caps.max_burst_size = Some(self.rx_descriptors);
        let mut cs = ChecksumCapabilities::default();
        cs.ipv4 = checksum(c.checksum.ipv4);
        cs.udp = checksum(c.checksum.udp);
        cs.tcp = checksum(c.checksum.tcp);
        cs.icmpv4 = checksum(c.checksum.icmpv4);
        caps.checksum = cs;
        caps
    }
}

/// A received frame (wraps the driver's token).
pub struct RxToken<T>(T);

impl<T: embassy_net_driver::RxToken> phy::RxToken for RxToken<T> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        RX_FRAMES.fetch_add(1, Ordering::Relaxed);
        self.0.consume(|frame| f(frame))
    }
}

/// A free transmit buffer (wraps the driver's token).
pub struct TxToken<T>(T);

impl<T: embassy_net_driver::TxToken> phy::TxToken for TxToken<T> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        TX_FRAMES.fetch_add(1, Ordering::Relaxed);
        self.0.consume(len, f)
    }
}

/// The on-board LAN8742A as embassy-stm32's `Phy`: the driver calls
/// `phy_reset` and `phy_init` while it starts the MAC.
pub struct Lan8742a<SM: StationManagement> {
    smi: SM,
    clock: Clock,
    error: Option<PhyError>,
}

impl<SM: StationManagement> Lan8742a<SM> {
    /// The PHY at [`PHY_ADDRESS`] behind `smi`; `clock` times the reset.
    pub fn new(smi: SM, clock: Clock) -> Self {
        Lan8742a {
            smi,
            clock,
            error: None,
        }
    }

    /// Whether the reset found no PHY answering.
    pub fn error(&self) -> Option<PhyError> {
        self.error
    }

    /// Waits up to `timeout_ms` for a link.
    pub fn wait_for_link(&mut self, timeout_ms: u64) -> Option<Link> {
        let clock = self.clock;
        lan8742a::wait_for_link(&mut SmiBus(&mut self.smi), &clock, timeout_ms)
    }
}

impl<SM: StationManagement> Phy for Lan8742a<SM> {
    fn phy_reset(&mut self) {
        let clock = self.clock;
        if let Err(e) = lan8742a::reset(&mut SmiBus(&mut self.smi), &clock) {
            self.error = Some(e);
        }
    }

    fn phy_init(&mut self) {
        if self.error.is_none() {
            lan8742a::start_autoneg(&mut SmiBus(&mut self.smi));
        }
    }

    fn poll_link(&mut self, cx: &mut Context) -> bool {
        // Nothing interrupts on a link change: ask to be polled again.
        cx.waker().wake_by_ref();
        lan8742a::link(&mut SmiBus(&mut self.smi)).is_some()
    }
}

/// MDIO access to the PHY at [`PHY_ADDRESS`].
struct SmiBus<'a, SM>(&'a mut SM);

impl<SM: StationManagement> lan8742a::Mdio for SmiBus<'_, SM> {
    fn read(&mut self, reg: u8) -> u16 {
        self.0.smi_read(PHY_ADDRESS, reg)
    }

    fn write(&mut self, reg: u8, value: u16) {
        self.0.smi_write(PHY_ADDRESS, reg, value)
    }
}

impl smolsock_board::LinkPoll for EthDevice {
    fn poll_link(&mut self) {
        EthDevice::poll_link(self);
    }
}
