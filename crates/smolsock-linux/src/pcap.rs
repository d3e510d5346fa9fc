//! `--pcap FILE`: every frame the stack sends or receives, written in the libpcap format,
//! by a [`Device`] wrapper that never panics.
//!
//! smoltcp's own `PcapWriter` panics when a write fails (a full disk, `/dev/full`, a pipe
//! whose reader went away). Here the file is checked once at start ([`PcapFile::create`]
//! writes and flushes the global header, so an unwritable path is an error before any
//! traffic), and a write that fails later stops the capture with one warning line while the
//! program goes on. The format itself comes from smoltcp's [`PcapSink`] trait.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium, PcapLinkType, PcapSink};
use smoltcp::time::Instant;

use crate::tap::HostDevice;

/// An open pcap file whose header is written; it remembers the first write error.
pub struct PcapFile {
    path: PathBuf,
    out: BufWriter<File>,
    error: Option<io::Error>,
}

impl std::fmt::Debug for PcapFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapFile")
            .field("path", &self.path)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl PcapSink for PcapFile {
    fn write(&mut self, data: &[u8]) {
        if self.error.is_none()
            && let Err(e) = Write::write_all(&mut self.out, data)
        {
            self.error = Some(e);
        }
    }

    fn flush(&mut self) {
        if self.error.is_none()
            && let Err(e) = Write::flush(&mut self.out)
        {
            self.error = Some(e);
        }
    }
}

impl PcapFile {
    /// Creates (or truncates) `path` and writes the pcap header for frames of `medium`
    /// (Ethernet for a TAP, raw IP for a TUN), flushed, so that a file that cannot be
    /// written fails here.
    pub fn create(path: &Path, medium: Medium) -> io::Result<Self> {
        let link = match medium {
            Medium::Ip => PcapLinkType::Ip,
            _ => PcapLinkType::Ethernet,
        };
        let mut file = Self {
            path: path.to_path_buf(),
            out: BufWriter::new(File::create(path)?),
            error: None,
        };
        file.global_header(link);
        file.flush();
        match file.error.take() {
            None => Ok(file),
            Some(e) => Err(e),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// State shared by a device's tokens: the file, until a write to it fails.
#[derive(Debug, Default)]
struct Recorder {
    file: Option<PcapFile>,
}

impl Recorder {
    fn record(&mut self, timestamp: Instant, frame: &[u8]) {
        let Some(file) = self.file.as_mut() else {
            return;
        };
        file.packet(timestamp, frame);
        if let Some(error) = file.error.take() {
            log::warn!(
                "cannot write pcap file {}: {error}; the capture stops there, the program goes on",
                file.path.display()
            );
            self.file = None;
        }
    }
}

/// Where a [`PcapDevice`] reads the time it stamps each frame with.
pub type Clock = fn() -> Instant;

/// A device that writes every frame it passes to a [`PcapFile`], when it has one.
///
/// With no file (no `--pcap`) it only passes frames through, so the driver has one device
/// type either way.
///
/// Each frame gets its own time from the clock: a received frame when the device hands it
/// over, a sent one when it has been filled. The stack's timestamp would give every frame
/// of a poll round the same time, and Wireshark would show 0 µs round trips.
#[derive(Debug)]
pub struct PcapDevice<D> {
    lower: D,
    recorder: RefCell<Recorder>,
    clock: Clock,
}

impl<D> PcapDevice<D> {
    /// Wraps `lower`, writing its frames to `file` if given, stamped with the wall clock.
    pub fn new(lower: D, file: Option<PcapFile>) -> Self {
        Self::with_clock(lower, file, Instant::now)
    }

    /// [`new`](Self::new), with the frames stamped by `clock`.
    pub fn with_clock(lower: D, file: Option<PcapFile>, clock: Clock) -> Self {
        Self {
            lower,
            recorder: RefCell::new(Recorder { file }),
            clock,
        }
    }

    /// Whether frames are still being written (false without a file, or after a write
    /// failed).
    pub fn capturing(&self) -> bool {
        self.recorder.borrow().file.is_some()
    }

    /// The wrapped device.
    pub fn get_ref(&self) -> &D {
        &self.lower
    }

    /// The wrapped device, mutably.
    pub fn get_mut(&mut self) -> &mut D {
        &mut self.lower
    }
}

/// A received frame, recorded (with the time it was received) when consumed.
pub struct RxToken<'a, T> {
    token: T,
    recorder: &'a RefCell<Recorder>,
    timestamp: Instant,
}

/// Room to send one frame, recorded once filled.
pub struct TxToken<'a, T> {
    token: T,
    recorder: &'a RefCell<Recorder>,
    clock: Clock,
}

impl<T: phy::RxToken> phy::RxToken for RxToken<'_, T> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let Self {
            token,
            recorder,
            timestamp,
        } = self;
        token.consume(|frame| {
            if let Ok(mut recorder) = recorder.try_borrow_mut() {
                recorder.record(timestamp, frame);
            }
            f(frame)
        })
    }

    fn meta(&self) -> phy::PacketMeta {
        self.token.meta()
    }
}

impl<T: phy::TxToken> phy::TxToken for TxToken<'_, T> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let Self {
            token,
            recorder,
            clock,
        } = self;
        token.consume(len, |frame| {
            let result = f(frame);
            if let Ok(mut recorder) = recorder.try_borrow_mut() {
                recorder.record(clock(), frame);
            }
            result
        })
    }

    fn set_meta(&mut self, meta: phy::PacketMeta) {
        self.token.set_meta(meta);
    }
}

impl<D: Device> Device for PcapDevice<D> {
    type RxToken<'a>
        = RxToken<'a, D::RxToken<'a>>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a, D::TxToken<'a>>
    where
        Self: 'a;

    fn receive(&mut self, timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let recorder = &self.recorder;
        let clock = self.clock;
        let (rx, tx) = self.lower.receive(timestamp)?;
        Some((
            RxToken {
                token: rx,
                recorder,
                timestamp: clock(),
            },
            TxToken {
                token: tx,
                recorder,
                clock,
            },
        ))
    }

    fn transmit(&mut self, timestamp: Instant) -> Option<Self::TxToken<'_>> {
        let recorder = &self.recorder;
        let clock = self.clock;
        let token = self.lower.transmit(timestamp)?;
        Some(TxToken {
            token,
            recorder,
            clock,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.lower.capabilities()
    }
}

impl<D: HostDevice> HostDevice for PcapDevice<D> {
    fn fd(&self) -> RawFd {
        self.lower.fd()
    }

    fn take_error(&mut self) -> Option<io::Error> {
        self.lower.take_error()
    }

    fn queue_drops(&self) -> Option<u64> {
        self.lower.queue_drops()
    }

    fn flush(&mut self) {
        self.lower.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::phy::{Loopback, RxToken as _, TxToken as _};

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("smolsock-pcap-{}-{name}", std::process::id()))
    }

    /// A clock that moves 1.5 s, then 250 µs on every reading.
    fn ticking() -> Instant {
        use std::sync::atomic::{AtomicI64, Ordering};
        static NEXT: AtomicI64 = AtomicI64::new(1_500_000);
        Instant::from_micros(NEXT.fetch_add(250, Ordering::Relaxed))
    }

    fn record_times(bytes: &[u8]) -> Vec<(u32, u32)> {
        let mut times = Vec::new();
        let mut at = 24;
        while let Some(record) = bytes.get(at..at + 16) {
            let word = |i: usize| u32::from_ne_bytes(record[i * 4..i * 4 + 4].try_into().unwrap());
            times.push((word(0), word(1)));
            at += 16 + word(2) as usize;
        }
        times
    }

    #[test]
    fn frames_of_one_poll_round_get_their_own_times() {
        let path = temp("times.pcap");
        let file = PcapFile::create(&path, Medium::Ethernet).unwrap();
        let mut device =
            PcapDevice::with_clock(Loopback::new(Medium::Ethernet), Some(file), ticking);
        // One poll round: the stack passes the same timestamp for every frame.
        let round = Instant::from_secs(7);
        for _ in 0..3 {
            let tx = device.transmit(round).unwrap();
            tx.consume(60, |buf| buf.fill(0xab));
        }
        let (rx, _) = device.receive(round).unwrap();
        rx.consume(|_| ());
        drop(device);
        let bytes = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let times = record_times(&bytes);
        assert_eq!(times.len(), 4);
        assert!(
            times.windows(2).all(|w| w[0] < w[1]),
            "every frame has its own, later time: {times:?}"
        );
        assert!(
            times.iter().all(|&(secs, _)| secs == 1),
            "the clock's, not the round's: {times:?}"
        );
    }

    #[test]
    fn writes_header_and_both_directions() {
        let path = temp("ok.pcap");
        let file = PcapFile::create(&path, Medium::Ethernet).unwrap();
        let mut device =
            PcapDevice::with_clock(Loopback::new(Medium::Ethernet), Some(file), || {
                Instant::from_micros(1_500_000)
            });
        let now = Instant::from_micros(1_500_000);
        let tx = device.transmit(now).unwrap();
        tx.consume(60, |buf| buf.fill(0xab));
        let (rx, _) = device.receive(now).unwrap();
        rx.consume(|frame| assert_eq!(frame.len(), 60));
        assert!(device.capturing());
        drop(device);
        let bytes = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(bytes.len(), 24 + 2 * (16 + 60));
        assert_eq!(
            u32::from_ne_bytes(bytes[..4].try_into().unwrap()),
            0xa1b2c3d4
        );
        assert_eq!(u32::from_ne_bytes(bytes[20..24].try_into().unwrap()), 1);
        // First record: 1 s 500000 us, 60 bytes captured of 60.
        let record = &bytes[24..40];
        let word = |i: usize| u32::from_ne_bytes(record[i * 4..i * 4 + 4].try_into().unwrap());
        assert_eq!((word(0), word(1), word(2), word(3)), (1, 500_000, 60, 60));
    }

    #[test]
    fn unwritable_files_fail_at_create() {
        assert!(PcapFile::create(Path::new("/dev/full"), Medium::Ethernet).is_err());
        assert!(PcapFile::create(&std::env::temp_dir(), Medium::Ethernet).is_err());
    }

    #[test]
    fn a_failed_write_stops_the_capture_and_frames_still_pass() {
        let path = temp("full.pcap");
        let mut file = PcapFile::create(&path, Medium::Ip).unwrap();
        let _ = std::fs::remove_file(&path);
        // Swap in /dev/full as if the disk filled after the header.
        file.out = BufWriter::new(
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        );
        let mut device = PcapDevice::new(Loopback::new(Medium::Ip), Some(file));
        let now = Instant::from_millis(0);
        for _ in 0..3 {
            let tx = device.transmit(now).unwrap();
            tx.consume(20, |buf| buf.fill(1));
            assert!(!device.capturing());
            let (rx, _) = device.receive(now).unwrap();
            assert_eq!(rx.consume(|frame| frame.len()), 20);
        }
    }
}
