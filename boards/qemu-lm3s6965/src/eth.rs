//! Polled driver for the Stellaris (LM3S6965) Ethernet MAC, as QEMU's
//! `lm3s6965evb` machine models it (`hw/net/stellaris_enet.c`).
//!
//! The MAC has no DMA: frames move through a FIFO register, one 32-bit word
//! at a time, little-endian.
//!
//! * Receive: `NP` counts the frames waiting. The first `DATA` read of a frame
//!   holds, in its low 16 bits, the length of what follows *including* those
//!   2 length bytes and the 4-byte FCS (QEMU computes a real CRC-32 there); the
//!   frame itself starts at byte 2 of that first word. Every word up to
//!   `ceil(len / 4)` must be read to move on to the next frame.
//! * Transmit: the first word written to `DATA` holds, in its low 16 bits, the
//!   length of the frame *minus* its 14-byte Ethernet header; the frame starts
//!   at byte 2 of that word. After the last word, bit 0 of `TR` starts the send.
//!
//! [`Mac`] is that register interface; [`Ethernet`] adds frame buffers and
//! implements [`smoltcp::phy::Device`] on top.

use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::EthernetAddress;

use crate::mmio::{self, Block, SYSCTL};

/// The Ethernet MTU smoltcp sees: a 1500-byte IP MTU plus the 14-byte header
/// (no FCS: the MAC appends and strips it).
pub const MTU: usize = 1514;

/// Register offsets from the MAC's base and their bits.
mod reg {
    /// Base address of the MAC on the LM3S6965.
    pub const BASE: usize = 0x4004_8000;

    /// Raw interrupt status (read) / interrupt acknowledge (write 1 to clear).
    pub const RIS_IACK: usize = 0x00;
    /// Interrupt mask: a set bit lets that RIS bit raise the MAC's IRQ.
    pub const IM: usize = 0x04;
    /// Receive control.
    pub const RCTL: usize = 0x08;
    /// Transmit control.
    pub const TCTL: usize = 0x0c;
    /// Data FIFO: read = receive, write = transmit.
    pub const DATA: usize = 0x10;
    /// Individual (MAC) address, bytes 0-3.
    pub const IA0: usize = 0x14;
    /// Individual (MAC) address, bytes 4-5.
    pub const IA1: usize = 0x18;
    /// Transmit threshold: 0x3f sends only on `TR`.
    pub const THR: usize = 0x1c;
    /// Number of frames in the receive FIFO.
    pub const NP: usize = 0x34;
    /// Transmission request.
    pub const TR: usize = 0x38;

    /// RIS/IM/IACK: a frame was received.
    pub const INT_RX: u32 = 1 << 0;
    /// RIS/IM/IACK: every interrupt source of the MAC.
    pub const INT_ALL: u32 = 0x7f;

    /// RCTL: receiver enable.
    pub const RCTL_RXEN: u32 = 1 << 0;
    /// RCTL: accept multicast frames.
    pub const RCTL_AMUL: u32 = 1 << 1;
    /// RCTL: drop frames with a bad FCS.
    pub const RCTL_BADCRC: u32 = 1 << 3;
    /// RCTL: empty the receive FIFO.
    pub const RCTL_RSTFIFO: u32 = 1 << 4;

    /// TCTL: transmitter enable.
    pub const TCTL_TXEN: u32 = 1 << 0;
    /// TCTL: pad short frames to 60 bytes.
    pub const TCTL_PADEN: u32 = 1 << 1;
    /// TCTL: append the FCS.
    pub const TCTL_CRC: u32 = 1 << 2;
    /// TCTL: full duplex.
    pub const TCTL_DUPLEX: u32 = 1 << 3;

    /// THR value that turns threshold-started transmission off.
    pub const THR_OFF: u32 = 0x3f;

    /// TR: start sending the frame in the transmit FIFO; reads 1 while busy.
    pub const TR_NEWTX: u32 = 1 << 0;

    /// System control's `RCGC2` (`mmio::RCGC2`): clock the MAC.
    pub const RCGC2_EMAC0: u32 = 1 << 28;
    /// RCGC2: clock the PHY.
    pub const RCGC2_EPHY0: u32 = 1 << 30;
}

/// the Ethernet MAC's registers.
const MAC: Block =
    // SAFETY: reg::BASE is the Ethernet MAC's register block on this machine (word registers, the
    // offsets in `reg`), and it has no DMA.
    unsafe { Block::at(reg::BASE) };

/// Receive and transmit error counters (frames the driver dropped).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, defmt::Format)]
pub struct Stats {
    /// Frames received and handed to smoltcp.
    pub rx_frames: u32,
    /// Frames dropped because their length word made no sense; the receive
    /// FIFO was reset each time.
    pub rx_bad_length: u32,
    /// Frames dropped because they were larger than [`MTU`].
    pub rx_too_long: u32,
    /// Frames sent.
    pub tx_frames: u32,
}

/// Register-level handle to the Ethernet MAC. There is one; [`crate::Board`]
/// owns it.
#[derive(Debug)]
pub struct Mac {
    stats: Stats,
}

impl Mac {
    /// Clocks, resets and starts the MAC with `address` as its own address.
    ///
    /// Only the receive interrupt is unmasked in the MAC (so `WFI` wakes when a
    /// frame arrives); the caller decides whether the NVIC lets it through.
    pub(crate) fn init(address: EthernetAddress) -> Self {
        SYSCTL.set_bits(mmio::RCGC2, reg::RCGC2_EMAC0 | reg::RCGC2_EPHY0);

        // Quiet and empty first: QEMU resets IM to "everything".
        MAC.write(reg::IM, 0);
        MAC.write(reg::RCTL, reg::RCTL_RSTFIFO);
        MAC.write(reg::RIS_IACK, reg::INT_ALL);

        let a = address.0;
        MAC.write(reg::IA0, u32::from_le_bytes([a[0], a[1], a[2], a[3]]));
        MAC.write(reg::IA1, u32::from_le_bytes([a[4], a[5], 0, 0]));

        MAC.write(reg::THR, reg::THR_OFF);
        MAC.write(
            reg::TCTL,
            reg::TCTL_TXEN | reg::TCTL_PADEN | reg::TCTL_CRC | reg::TCTL_DUPLEX,
        );
        // Unicast to us and broadcast come in; multicast too (cheap, and IPv4
        // multicast may be used later). QEMU filters nothing anyway.
        MAC.write(
            reg::RCTL,
            reg::RCTL_RXEN | reg::RCTL_AMUL | reg::RCTL_BADCRC,
        );
        MAC.write(reg::IM, reg::INT_RX);

        Mac {
            stats: Stats::default(),
        }
    }

    /// The MAC address the hardware holds.
    pub fn address(&self) -> EthernetAddress {
        let [a0, a1, a2, a3] = MAC.read(reg::IA0).to_le_bytes();
        let [a4, a5, _, _] = MAC.read(reg::IA1).to_le_bytes();
        EthernetAddress([a0, a1, a2, a3, a4, a5])
    }

    /// Whether a received frame waits in the FIFO.
    pub fn rx_pending(&self) -> bool {
        MAC.read(reg::NP) != 0
    }

    /// Counters since init.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Moves the next good frame out of the receive FIFO into `record` and returns its
    /// length (without the FCS): the frame is `record[2..2 + len]`, behind the FIFO's
    /// two length bytes, so that every word of the FIFO lands whole in the buffer (one
    /// store each, no copy of a word's bytes one by one). Frames that are malformed or
    /// longer than [`MTU`] are dropped and counted. `None` once the FIFO is empty.
    pub fn receive(&mut self, record: &mut [u8; RECORD]) -> Option<usize> {
        while self.rx_pending() {
            match self.read_one(record) {
                Ok(len) => {
                    self.stats.rx_frames = self.stats.rx_frames.wrapping_add(1);
                    return Some(len);
                }
                Err(RxDrop::TooLong) => {
                    self.stats.rx_too_long = self.stats.rx_too_long.wrapping_add(1);
                }
                Err(RxDrop::BadLength) => {
                    self.stats.rx_bad_length = self.stats.rx_bad_length.wrapping_add(1);
                    // The word count is unknown, so the FIFO cannot be
                    // resynchronised: drop everything in it.
                    MAC.write(reg::RCTL, MAC.read(reg::RCTL) | reg::RCTL_RSTFIFO);
                }
            }
        }
        None
    }

    /// Reads exactly one FIFO record (NP > 0 is the caller's check) into `record`.
    fn read_one(&mut self, record: &mut [u8; RECORD]) -> Result<usize, RxDrop> {
        let first = MAC.read(reg::DATA);
        // Length of the FIFO record: 2 length bytes + frame + 4 FCS bytes.
        let len = (first & 0xffff) as usize;
        // A frame has at least its 14-byte header; the FIFO holds 2 KiB.
        if !(2 + 14 + 4..=2048).contains(&len) {
            return Err(RxDrop::BadLength);
        }
        let frame_len = len - 6;
        let words = len.div_ceil(4);
        if frame_len > MTU {
            for _ in 1..words {
                MAC.read(reg::DATA);
            }
            return Err(RxDrop::TooLong);
        }
        // Whole words, the FCS's too: `RECORD` has room for the longest frame's.
        let mut chunks = record.chunks_exact_mut(4).take(words);
        if let Some(chunk) = chunks.next() {
            chunk.copy_from_slice(&first.to_le_bytes());
        }
        for chunk in chunks {
            chunk.copy_from_slice(&MAC.read(reg::DATA).to_le_bytes());
        }
        Ok(frame_len)
    }

    /// Sends the frame `record[2..2 + len]` (destination MAC first, no FCS; 14..=[`MTU`]
    /// bytes); the first two bytes of `record` are the driver's, for the FIFO's length.
    /// Every word goes to the FIFO as it lies in the buffer.
    ///
    /// Frames outside that range are not sent; smoltcp never builds them.
    pub fn transmit(&mut self, record: &mut [u8; RECORD], len: usize) {
        if !(14..=MTU).contains(&len) {
            return;
        }
        // The FIFO holds one frame: wait for the previous one to leave (real
        // hardware only; QEMU sends at once and TR reads 0).
        while MAC.read(reg::TR) & reg::TR_NEWTX != 0 {}

        // The first word's low half: the length of the frame minus its header.
        let data_len = (len - 14) as u16;
        record[..2].copy_from_slice(&data_len.to_le_bytes());
        let words = (2 + len).div_ceil(4);
        for chunk in record.chunks_exact(4).take(words) {
            MAC.write(
                reg::DATA,
                u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]),
            );
        }
        MAC.write(reg::TR, reg::TR_NEWTX);
        self.stats.tx_frames = self.stats.tx_frames.wrapping_add(1);
    }
}

/// Bytes of a FIFO record of the longest frame: two length bytes, [`MTU`] bytes of frame,
/// the 4-byte FCS (a whole number of words).
pub const RECORD: usize = 2 + MTU + 4;

/// Why a received frame was dropped.
enum RxDrop {
    TooLong,
    BadLength,
}

/// Acknowledges the MAC's receive interrupt. Called from the interrupt
/// handler: the IRQ only exists to wake the core from `WFI`; frames are read
/// by polling.
pub(crate) fn acknowledge_rx_interrupt() {
    MAC.write(reg::RIS_IACK, reg::INT_RX);
}

/// One receive and one transmit FIFO record (2 x 1520 bytes of static RAM).
#[derive(Debug)]
pub(crate) struct Buffers {
    rx: [u8; RECORD],
    tx: [u8; RECORD],
}

impl Buffers {
    /// Zeroed buffers, for a `static`.
    pub(crate) const fn new() -> Self {
        Buffers {
            rx: [0; RECORD],
            tx: [0; RECORD],
        }
    }
}

/// The MAC with its frame buffers: a [`smoltcp::phy::Device`].
#[derive(Debug)]
pub struct Ethernet {
    mac: Mac,
    buffers: &'static mut Buffers,
}

impl Ethernet {
    pub(crate) fn new(mac: Mac, buffers: &'static mut Buffers) -> Self {
        Ethernet { mac, buffers }
    }

    /// The register-level driver.
    pub fn mac(&self) -> &Mac {
        &self.mac
    }
}

// smoltcp's `Device` with this driver's own tokens (over the MAC's FIFO); the
// NUCLEO-F429ZI's looks alike because the trait's token types are spelled so.
impl phy::Device for Ethernet {
    type RxToken<'a>
        = RxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a>
    where
        Self: 'a;

    fn receive(&mut self, _timestamp: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        let Buffers { rx, tx } = &mut *self.buffers;
        let len = self.mac.receive(rx)?;
        Some((
            RxToken(rx.get(2..2 + len).unwrap_or_default()),
            TxToken {
                mac: &mut self.mac,
                buf: tx,
            },
        ))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<TxToken<'_>> {
        Some(TxToken {
            mac: &mut self.mac,
            buf: &mut self.buffers.tx,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MTU;
        // No max_burst_size: smoltcp would shrink the TCP window to it, and
        // the receive FIFO holds up to 31 frames (QEMU) / 2 KiB (hardware).
        caps
    }
}

/// A received frame, borrowed from [`Ethernet`]'s receive buffer.
pub struct RxToken<'a>(&'a [u8]);

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.0)
    }
}

/// Permission to send one frame through [`Ethernet`]'s transmit buffer.
pub struct TxToken<'a> {
    mac: &'a mut Mac,
    buf: &'a mut [u8; RECORD],
}

impl phy::TxToken for TxToken<'_> {
    /// # Panics
    /// If `len` exceeds [`MTU`], which smoltcp never asks for (it is the MTU
    /// the device reports).
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let result = f(&mut self.buf[2..2 + len]);
        self.mac.transmit(self.buf, len);
        result
    }
}
