//! `smoltcp::phy::Device` over stm32-eth's DMA descriptor rings.
//!
//! stm32-eth 0.8 implements smoltcp 0.12's `Device`; this crate runs smoltcp
//! 0.14, so the adapter here talks to the rings directly (`RxRing::recv_next`,
//! `TxRing::send_next`) and leaves stm32-eth's `smoltcp-phy` feature off.
//!
//! Checksums: the MAC inserts IPv4, TCP, UDP and ICMP checksums on transmit
//! (stm32-eth sets CIC = 0b11 in every TX descriptor), so smoltcp does not
//! compute them. On receive the MAC only flags bad payload checksums and still
//! hands the frame over, so smoltcp verifies them in software.

use core::sync::atomic::{AtomicU32, Ordering};

use smoltcp::phy::{self, Checksum, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use stm32_eth::dma::{EthernetDMA, RxError, RxRing, TxRing};
use stm32_eth::hal::gpio::{Alternate, PA2, PC1};
use stm32_eth::mac::{EthernetMACWithMii, Speed as MacSpeed};

use crate::config::PHY_ADDRESS;
use smolsock_board::lan8742a::{self, Link, LinkState, Speed};

/// Largest Ethernet frame handed to or accepted from smoltcp, without FCS.
pub const MTU: usize = 1514;

/// The MDIO pin (PA2, AF11).
pub type MdioPin = PA2<Alternate<11>>;
/// The MDC pin (PC1, AF11).
pub type MdcPin = PC1<Alternate<11>>;
/// stm32-eth's MAC with the MDIO bus to the PHY.
pub type Mac = EthernetMACWithMii<MdioPin, MdcPin>;

// The counters are this driver's own (the H7's look alike but count less):
// stm32-eth hands over frames the DMA flagged bad, and a TX token can find no
// free descriptor; embassy-stm32 drops bad frames inside and has neither.
static RX_FRAMES: AtomicU32 = AtomicU32::new(0);
static RX_ERRORS: AtomicU32 = AtomicU32::new(0);
static TX_FRAMES: AtomicU32 = AtomicU32::new(0);
static TX_DROPPED: AtomicU32 = AtomicU32::new(0);

/// Frame counters since boot (they wrap at 2^32).
#[derive(Clone, Copy, Debug, Default, defmt::Format)]
pub struct Stats {
    /// Frames handed to smoltcp.
    pub rx_frames: u32,
    /// Frames the MAC/DMA reported as bad (CRC, overrun, truncated); dropped.
    pub rx_errors: u32,
    /// Frames queued for transmission.
    pub tx_frames: u32,
    /// Frames smoltcp produced that found no free TX descriptor; dropped.
    pub tx_dropped: u32,
}

/// The board's Ethernet interface as a smoltcp device.
///
/// Besides [`smoltcp::phy::Device`] it offers [`EthDevice::poll_link`] to follow
/// the cable: call it now and then (every few hundred ms) from the main loop.
pub struct EthDevice {
    dma: EthernetDMA<'static, 'static>,
    mac: Mac,
    link: LinkState,
    rx_descriptors: usize,
    scratch: &'static mut [u8; MTU],
}

impl EthDevice {
    pub(crate) fn new(
        dma: EthernetDMA<'static, 'static>,
        mac: Mac,
        link: Option<Link>,
        rx_descriptors: usize,
        scratch: &'static mut [u8; MTU],
    ) -> Self {
        let mut dev = EthDevice {
            dma,
            mac,
            link: LinkState::default(),
            rx_descriptors,
            scratch,
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
        let link = lan8742a::link(&mut PhyBus(&mut self.mac));
        self.follow(link);
        link
    }

    /// Frame counters since boot.
    pub fn stats(&self) -> Stats {
        Stats {
            rx_frames: RX_FRAMES.load(Ordering::Relaxed),
            rx_errors: RX_ERRORS.load(Ordering::Relaxed),
            tx_frames: TX_FRAMES.load(Ordering::Relaxed),
            tx_dropped: TX_DROPPED.load(Ordering::Relaxed),
        }
    }

    /// Records the link (logging a change) and sets the MAC's speed and
    /// duplex to a new one.
    fn follow(&mut self, link: Option<Link>) {
        if let Some(l) = self.link.update(link) {
            self.mac.set_speed(match (l.speed, l.full_duplex) {
                (Speed::Mbps10, false) => MacSpeed::HalfDuplexBase10T,
                (Speed::Mbps10, true) => MacSpeed::FullDuplexBase10T,
                (Speed::Mbps100, false) => MacSpeed::HalfDuplexBase100Tx,
                (Speed::Mbps100, true) => MacSpeed::FullDuplexBase100Tx,
            });
        }
    }
}

/// MDIO access to the PHY at [`PHY_ADDRESS`] through the MAC.
pub(crate) struct PhyBus<'a>(pub(crate) &'a mut Mac);

impl lan8742a::Mdio for PhyBus<'_> {
    fn read(&mut self, reg: u8) -> u16 {
        self.0.read(PHY_ADDRESS, reg)
    }

    fn write(&mut self, reg: u8, value: u16) {
        self.0.write(PHY_ADDRESS, reg, value)
    }
}

// smoltcp's `Device` with this driver's own tokens (over stm32-eth's rings);
// the emulated board's looks alike because the trait's token types are spelled
// so, not because there is anything to share.
impl phy::Device for EthDevice {
    type RxToken<'a>
        = RxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a>
    where
        Self: 'a;

    fn receive(&mut self, _timestamp: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        let (rx, tx) = self.dma.split();
        // smoltcp may answer a received frame at once (ARP, TCP ACK), so only
        // hand out a frame when a TX descriptor is free as well.
        if rx.next_entry_available() && tx.next_entry_available() {
            Some((
                RxToken { ring: rx },
                TxToken {
                    ring: tx,
                    scratch: &mut *self.scratch,
                },
            ))
        } else {
            None
        }
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<TxToken<'_>> {
        let (_, tx) = self.dma.split();
        if tx.next_entry_available() {
            Some(TxToken {
                ring: tx,
                scratch: &mut *self.scratch,
            })
        } else {
            None
        }
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MTU;
        // Keeps smoltcp's TCP window within what the RX ring can absorb.
        caps.max_burst_size = Some(self.rx_descriptors);
        let mut checksum = ChecksumCapabilities::default();
        checksum.ipv4 = Checksum::Rx;
        checksum.udp = Checksum::Rx;
        checksum.tcp = Checksum::Rx;
        checksum.icmpv4 = Checksum::Rx;
        caps.checksum = checksum;
        caps
    }
}

/// A received frame, read out of the RX ring when consumed.
pub struct RxToken<'a> {
    ring: &'a mut RxRing<'static>,
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        match self.ring.recv_next(None) {
            Ok(packet) => {
                RX_FRAMES.fetch_add(1, Ordering::Relaxed);
                let r = f(&packet);
                // Dropping the packet gives the descriptor back to the DMA.
                packet.free();
                r
            }
            Err(e) => {
                // The descriptor went back to the DMA already. smoltcp gets an
                // empty frame, fails to parse it and drops it.
                RX_ERRORS.fetch_add(1, Ordering::Relaxed);
                let why = match e {
                    RxError::Truncated => "truncated",
                    RxError::DmaError => "DMA error",
                    RxError::WouldBlock => "no frame",
                };
                defmt::debug!("eth: dropped a received frame: {}", why);
                f(&[])
            }
        }
    }
}

/// A free TX descriptor, filled and handed to the DMA when consumed.
pub struct TxToken<'a> {
    ring: &'a mut TxRing<'static>,
    scratch: &'a mut [u8; MTU],
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        if len <= MTU
            && let Ok(mut packet) = self.ring.send_next(len, None)
        {
            let r = f(&mut packet);
            // Sets OWN and kicks the TX DMA.
            packet.send();
            TX_FRAMES.fetch_add(1, Ordering::Relaxed);
            return r;
        }
        // Cannot happen while tokens are only made for free descriptors and
        // smoltcp respects the MTU; drop the frame rather than panic.
        TX_DROPPED.fetch_add(1, Ordering::Relaxed);
        defmt::warn!("eth: dropped a {} byte frame: no TX descriptor", len);
        f(&mut self.scratch[..len.min(MTU)])
    }
}

impl smolsock_board::LinkPoll for EthDevice {
    fn poll_link(&mut self) {
        EthDevice::poll_link(self);
    }
}
