//! LAN8742A PHY driver over MDIO: reset, auto-negotiation, link status.
//!
//! Only IEEE 802.3 clause 22 registers plus the LAN8742A's "PHY special
//! control/status" register (31) are used. The MAC-side MDIO access is behind
//! the small [`Mdio`] trait so this file does not depend on the HAL.

use crate::clock::Clock;

/// Basic control register.
const BMCR: u8 = 0;
/// Basic status register.
const BMSR: u8 = 1;
/// PHY identifier 1.
const PHYID1: u8 = 2;
/// PHY identifier 2.
const PHYID2: u8 = 3;
/// Auto-negotiation advertisement register.
const ANAR: u8 = 4;
/// LAN8742A PHY special control/status register.
const PSCSR: u8 = 31;

const BMCR_RESET: u16 = 1 << 15;
const BMCR_AN_ENABLE: u16 = 1 << 12;
const BMCR_AN_RESTART: u16 = 1 << 9;

const BMSR_AN_COMPLETE: u16 = 1 << 5;
const BMSR_LINK_UP: u16 = 1 << 2;

/// 100BASE-TX full and half, 10BASE-T full and half, selector = IEEE 802.3.
const ANAR_ALL_10_100: u16 = (1 << 8) | (1 << 7) | (1 << 6) | (1 << 5) | 0x0001;

const PSCSR_AUTODONE: u16 = 1 << 12;
const PSCSR_SPEED_MASK: u16 = 0b111 << 2;

/// OUI part of the LAN8742A identifier (PHYID1 and the top of PHYID2).
const LAN8742A_ID1: u16 = 0x0007;
const LAN8742A_ID2_MODEL: u16 = 0xC130;

/// Register access to the PHY through the MAC's MDIO/MDC pins.
pub trait Mdio {
    /// Reads PHY register `reg`.
    fn read(&mut self, reg: u8) -> u16;
    /// Writes `value` to PHY register `reg`.
    fn write(&mut self, reg: u8, value: u16);
}

/// Line speed of an established link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum Speed {
    /// 10BASE-T.
    Mbps10,
    /// 100BASE-TX.
    Mbps100,
}

/// An established Ethernet link as negotiated by the PHY.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub struct Link {
    /// Line speed.
    pub speed: Speed,
    /// Full duplex (`true`) or half duplex.
    pub full_duplex: bool,
}

/// Why the PHY could not be brought up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum PhyError {
    /// MDIO reads return all ones or all zeros: nothing answers at the address.
    NotResponding,
}

/// Checks that a PHY answers and logs whether it is the expected LAN8742A,
/// then resets it and starts auto-negotiation with every 10/100 mode
/// advertised.
pub fn start<M: Mdio>(mdio: &mut M, clock: &Clock) -> Result<(), PhyError> {
    reset(mdio, clock)?;
    start_autoneg(mdio);
    Ok(())
}

/// Checks that a PHY answers, logs its identity and soft-resets it.
pub fn reset<M: Mdio>(mdio: &mut M, clock: &Clock) -> Result<(), PhyError> {
    let id1 = mdio.read(PHYID1);
    let id2 = mdio.read(PHYID2);
    if id1 == 0xFFFF || (id1 == 0 && id2 == 0) {
        return Err(PhyError::NotResponding);
    }
    if id1 == LAN8742A_ID1 && id2 & 0xFFF0 == LAN8742A_ID2_MODEL {
        defmt::info!("PHY: LAN8742A, revision {}", id2 & 0xF);
    } else {
        defmt::warn!(
            "PHY: unexpected id {=u16:#06x} {=u16:#06x} (LAN8742A is 0x0007 0xc13x); going on with standard registers",
            id1,
            id2
        );
    }

    // Soft reset; the bit self-clears (datasheet: well under 500 ms). Some
    // boards are known to miss the soft reset now and then: do not hang on it.
    mdio.write(BMCR, BMCR_RESET);
    let start = clock.now_ms();
    while mdio.read(BMCR) & BMCR_RESET != 0 {
        if clock.now_ms() - start > 500 {
            defmt::warn!("PHY: soft reset did not complete in 500 ms; going on");
            break;
        }
    }
    Ok(())
}

/// Advertises 10/100 half and full duplex and (re)starts auto-negotiation.
pub fn start_autoneg<M: Mdio>(mdio: &mut M) {
    mdio.write(ANAR, ANAR_ALL_10_100);
    mdio.write(BMCR, BMCR_AN_ENABLE | BMCR_AN_RESTART);
}

/// Returns the current link, or `None` while there is no link or
/// auto-negotiation has not finished.
pub fn link<M: Mdio>(mdio: &mut M) -> Option<Link> {
    // The link bit latches low: the first read reports a drop since the last
    // read, the second read the current state.
    let _ = mdio.read(BMSR);
    let bmsr = mdio.read(BMSR);
    if bmsr & BMSR_LINK_UP == 0 || bmsr & BMSR_AN_COMPLETE == 0 {
        return None;
    }
    let pscsr = mdio.read(PSCSR);
    if pscsr & PSCSR_AUTODONE == 0 {
        return None;
    }
    // Speed indication, PSCSR bits 4:2.
    match (pscsr & PSCSR_SPEED_MASK) >> 2 {
        0b001 => Some(Link {
            speed: Speed::Mbps10,
            full_duplex: false,
        }),
        0b101 => Some(Link {
            speed: Speed::Mbps10,
            full_duplex: true,
        }),
        0b010 => Some(Link {
            speed: Speed::Mbps100,
            full_duplex: false,
        }),
        0b110 => Some(Link {
            speed: Speed::Mbps100,
            full_duplex: true,
        }),
        other => {
            defmt::warn!("PHY: reserved speed indication {=u16:#05b}", other);
            None
        }
    }
}

/// Polls [`link`] until a link is up or `timeout_ms` has passed; without a link it warns
/// that the board goes on (its device's `poll_link` picks the link up later).
pub fn wait_for_link<M: Mdio>(mdio: &mut M, clock: &Clock, timeout_ms: u64) -> Option<Link> {
    let start = clock.now_ms();
    let mut last_note = start;
    loop {
        if let Some(link) = link(mdio) {
            return Some(link);
        }
        let now = clock.now_ms();
        if now - start >= timeout_ms {
            defmt::warn!(
                "no link after {} ms; going on, poll_link() will pick it up",
                timeout_ms
            );
            return None;
        }
        if now - last_note >= 1000 {
            defmt::info!("PHY: waiting for link (is the cable plugged in?)");
            last_note = now;
        }
        clock.delay_ms(10);
    }
}

/// The link a MAC follows, as the PHY last reported it. Each change is logged (`link up:
/// 100 Mbit/s, full duplex`, `link down`); a new link up is handed back for the MAC, whose
/// speed and duplex must match the PHY's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, defmt::Format)]
pub struct LinkState {
    /// `None` until the first [`LinkState::update`].
    last: Option<Option<Link>>,
}

impl LinkState {
    /// The link as last seen (`None` before the first update, or without a link).
    pub fn link(&self) -> Option<Link> {
        self.last.flatten()
    }

    /// Records `link`, as just read ([`link`], [`wait_for_link`]). If it differs from the
    /// last one (or is the first), logs it and, if it is up, returns it: the MAC must now
    /// run at its speed and duplex.
    pub fn update(&mut self, link: Option<Link>) -> Option<Link> {
        if self.last == Some(link) {
            return None;
        }
        self.last = Some(link);
        match link {
            Some(l) => defmt::info!(
                "link up: {} Mbit/s, {} duplex",
                if l.speed == Speed::Mbps100 { 100 } else { 10 },
                if l.full_duplex { "full" } else { "half" }
            ),
            None => defmt::warn!("link down"),
        }
        link
    }
}
