//! A Linux TAP (Ethernet) or TUN (IP) device as a smoltcp [`Device`].
//!
//! smoltcp ships `TunTapInterface`, but it panics on read and write errors, allocates a
//! buffer per frame and gives no way to tell "no such device" from "permission denied".
//! This one opens `/dev/net/tun` non-blocking, reuses two frame buffers, keeps I/O errors
//! as values for the driver to report, and checks the device before attaching so that a
//! missing or foreign device gets a clear message (as root, `TUNSETIFF` would otherwise
//! silently create a new, unconfigured device).
//!
//! A TAP opened with [`Offload::On`] takes large TCP segments from the kernel and merges
//! the stack's consecutive segments into large ones on the way back (see
//! [`crate::offload`]): the same bytes in a fraction of the system calls. It turns the
//! offloads off again when it closes; one opened with [`Offload::Off`] turns off any a
//! killed process left on.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use crate::iface;
use crate::offload::{self, Coalescer, Push, VNET_HDR_LEN, VnetHdr};
use crate::packet::PacketSocket;

/// The TUN/TAP clone device.
pub const TUN_PATH: &str = "/dev/net/tun";
const ETHERNET_HEADER: usize = 14;

/// TAP (Ethernet frames) or TUN (IP packets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Ethernet frames; the stack answers ARP.
    Tap,
    /// Bare IP packets.
    Tun,
}

impl Kind {
    fn other(self) -> Kind {
        match self {
            Kind::Tap => Kind::Tun,
            Kind::Tun => Kind::Tap,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Tap => "tap",
            Kind::Tun => "tun",
        }
    }

    /// `TUNSETIFF`'s flags: the kind, no packet information header, and the virtio-net
    /// header when `offload`.
    fn flags(self, offload: Offload) -> libc::c_short {
        // All fit the request's `short` (0x0001, 0x0002, 0x1000, 0x4000).
        let kind = match self {
            Kind::Tap => libc::IFF_TAP,
            Kind::Tun => libc::IFF_TUN,
        };
        let vnet = match offload {
            Offload::On => libc::IFF_VNET_HDR,
            Offload::Off => 0,
        };
        (kind | libc::IFF_NO_PI | vnet) as libc::c_short
    }
}

/// Whether a TAP device uses TCP segmentation and checksum offload ([`crate::offload`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offload {
    /// One segment per frame, checksums finished by whoever sends.
    Off,
    /// Large TCP segments both ways, through the virtio-net header. TAP only.
    On,
}

/// The offloads asked of a TAP with [`Offload::On`]: checksums left to the device, and
/// large TCP/IPv4 segments.
const OFFLOADS: libc::c_uint = libc::TUN_F_CSUM | libc::TUN_F_TSO4;

/// Largest frame a TAP with offload hands over: a whole IPv4 packet behind an Ethernet
/// header, after the virtio-net header.
const OFFLOAD_FRAME: usize = VNET_HDR_LEN + ETHERNET_HEADER + 65535;

/// Why [`attach`] failed.
#[derive(Debug)]
pub enum AttachError {
    /// [`TUN_PATH`] could not be opened.
    Open(io::Error),
    /// `TUNSETIFF` refused: the device is busy, of another kind, not ours, or (as root)
    /// could not be made.
    SetIff(io::Error),
}

impl fmt::Display for AttachError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttachError::Open(e) => write!(f, "cannot open {TUN_PATH}: {e}"),
            AttachError::SetIff(e) => write!(f, "cannot attach to the device (TUNSETIFF): {e}"),
        }
    }
}

impl std::error::Error for AttachError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AttachError::Open(e) | AttachError::SetIff(e) => Some(e),
        }
    }
}

/// Opens [`TUN_PATH`] non-blocking and attaches it to the device `name` of `kind`
/// (`TUNSETIFF`, no packet information header): what the file reads and writes are the
/// device's frames (TAP) or packets (TUN). As root, a missing device is created, for as
/// long as the file stays open.
pub fn attach(name: &str, kind: Kind) -> Result<File, AttachError> {
    attach_with(name, kind, Offload::Off)
}

/// [`attach`], with the virtio-net header in front of every frame when `offload` (and the
/// device's offloads set to match, or turned off).
fn attach_with(name: &str, kind: Kind, offload: Offload) -> Result<File, AttachError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(TUN_PATH)
        .map_err(AttachError::Open)?;
    iface::tun_set_iff(file.as_fd(), name, kind.flags(offload)).map_err(AttachError::SetIff)?;
    let offloads = match offload {
        Offload::On => OFFLOADS,
        Offload::Off => 0,
    };
    // The offloads outlive the file (a setting of the device): off unless asked for, in
    // case a process that had them on was killed before it could turn them off.
    if let Err(e) = iface::tun_set_offload(file.as_fd(), offloads)
        && offload == Offload::On
    {
        return Err(AttachError::SetIff(e));
    }
    Ok(file)
}

/// Turns off the offloads of TAP device `name` (attaching to it for a moment): what a
/// process that had them on and was killed left behind, for a program that reads the TAP
/// without a virtio-net header.
pub fn reset_offload(name: &str) -> Result<(), AttachError> {
    attach_with(name, Kind::Tap, Offload::Off).map(drop)
}

/// Why a device could not be opened, each with the fix in its message.
#[derive(Debug)]
pub enum OpenError {
    /// No network interface of that name.
    Missing {
        /// Interface name.
        name: String,
        /// TAP or TUN.
        kind: Kind,
    },
    /// The interface exists but is not a TUN/TAP device of the kind asked for.
    WrongKind {
        /// Interface name.
        name: String,
        /// What was asked for.
        wanted: Kind,
    },
    /// The user may not open `/dev/net/tun`, through which every TAP and TUN device is
    /// attached (a normal user where it is mode 0600).
    TunDenied {
        /// Interface name.
        name: String,
        /// TAP or TUN.
        kind: Kind,
        /// The permission bits of `/dev/net/tun`, when they could be read.
        mode: Option<u32>,
    },
    /// The device belongs to another user (`/dev/net/tun` opened, `TUNSETIFF` refused).
    PermissionDenied {
        /// Interface name.
        name: String,
        /// TAP or TUN.
        kind: Kind,
    },
    /// Another process is attached to it.
    Busy {
        /// Interface name.
        name: String,
    },
    /// Anything else.
    Io {
        /// Interface name.
        name: String,
        /// The OS error.
        error: io::Error,
    },
}

fn create_hint(name: &str, kind: Kind) -> String {
    format!(
        "create a user-owned one once with: sudo ip tuntap add name {name} mode {} user $USER && \
         sudo ip link set {name} up && sudo ip addr add 192.168.69.100/24 dev {name}",
        kind.name()
    )
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Missing { name, kind } => write!(
                f,
                "{} device '{name}' does not exist; {}",
                kind.name().to_uppercase(),
                create_hint(name, *kind)
            ),
            OpenError::WrongKind { name, wanted } => write!(
                f,
                "'{name}' is not a {} device (a {} device needs --{} {name}; another kind of interface cannot be used)",
                wanted.name().to_uppercase(),
                wanted.other().name().to_uppercase(),
                wanted.other().name(),
            ),
            OpenError::TunDenied { name, kind, mode } => write!(
                f,
                "cannot attach to {} device '{name}': permission denied opening /dev/net/tun{}; \
                 let users open it with: sudo chmod 0666 /dev/net/tun (the usual mode: a user \
                 still attaches only to devices they own), or run as root",
                kind.name().to_uppercase(),
                match mode {
                    Some(mode) => format!(" (its mode is {mode:04o})"),
                    None => String::new(),
                },
            ),
            OpenError::PermissionDenied { name, kind } => write!(
                f,
                "permission denied opening {} device '{name}': it belongs to another user; {}",
                kind.name().to_uppercase(),
                create_hint(name, *kind).replacen("create", "recreate it as", 1)
            ),
            OpenError::Busy { name } => write!(
                f,
                "device '{name}' is busy: another process (another smolsock, or QEMU) is attached to it"
            ),
            OpenError::Io { name, error } => write!(f, "cannot open device '{name}': {error}"),
        }
    }
}

impl std::error::Error for OpenError {}

/// An open TAP or TUN device.
pub struct TunTap {
    file: File,
    kind: Kind,
    mtu: usize,
    rx: RxQueue,
    tx: Vec<u8>,
    error: Option<io::Error>,
    dropped_tx: u64,
    /// The interface whose kernel-side queue to us counts its drops (TAP/TUN only).
    queue_drops: Option<String>,
    /// With offload: the stack's segments being merged (every frame then has a
    /// virtio-net header in front).
    offload: Option<Box<Coalescer>>,
}

impl TunTap {
    /// Attaches to the existing device `name`.
    pub fn open(name: &str, kind: Kind) -> Result<Self, OpenError> {
        Self::open_with(name, kind, Offload::Off)
    }

    /// Attaches to the existing device `name`, with TCP segmentation and checksum offload
    /// when `offload` is [`Offload::On`] and the device is a TAP.
    pub fn open_with(name: &str, kind: Kind, offload: Offload) -> Result<Self, OpenError> {
        let offload = match kind {
            Kind::Tap => offload,
            Kind::Tun => Offload::Off,
        };
        let owned = || name.to_owned();
        if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(['/', '\0']) {
            return Err(OpenError::Missing {
                name: owned(),
                kind,
            });
        }
        // Looked up first: as root, `TUNSETIFF` would silently create a missing device.
        let flags = match iface::flags(name) {
            Ok(flags) => flags,
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => {
                return Err(OpenError::Missing {
                    name: owned(),
                    kind,
                });
            }
            Err(error) => {
                return Err(OpenError::Io {
                    name: owned(),
                    error,
                });
            }
        };
        let mtu = iface::mtu(name).unwrap_or(1500);
        let file = attach_with(name, kind, offload).map_err(|e| match e {
            AttachError::Open(error) => match error.raw_os_error() {
                Some(libc::EACCES | libc::EPERM) => OpenError::TunDenied {
                    name: owned(),
                    kind,
                    mode: std::fs::metadata(TUN_PATH).ok().map(|m| {
                        std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777
                    }),
                },
                _ => OpenError::Io {
                    name: owned(),
                    error,
                },
            },
            AttachError::SetIff(error) => match error.raw_os_error() {
                Some(libc::EPERM | libc::EACCES) => OpenError::PermissionDenied {
                    name: owned(),
                    kind,
                },
                Some(libc::EBUSY) => OpenError::Busy { name: owned() },
                // The name exists but is not a TUN/TAP device of this kind.
                Some(libc::EINVAL) => OpenError::WrongKind {
                    name: owned(),
                    wanted: kind,
                },
                _ => OpenError::Io {
                    name: owned(),
                    error,
                },
            },
        })?;
        let frame = mtu
            + match kind {
                Kind::Tap => ETHERNET_HEADER,
                Kind::Tun => 0,
            };
        if flags & libc::IFF_UP == 0 {
            log::warn!("{name} is down: bring it up with `sudo ip link set {name} up`");
        } else {
            wait_running(name);
        }
        let mut device = Self::new(file, kind, frame, Some(name.to_owned()));
        if offload == Offload::On {
            device.offload = Some(Box::default());
            device.rx = RxQueue::new(OFFLOAD_FRAME);
        }
        Ok(device)
    }

    /// Sends and receives raw Ethernet frames on the existing interface `name` through an
    /// `AF_PACKET` socket: the free end of a veth pair, where no TAP can be made. The
    /// device behaves as a TAP.
    pub fn packet(name: &str) -> io::Result<Self> {
        let socket = PacketSocket::open(name)?;
        let frame = iface::mtu(name).unwrap_or(1500) + ETHERNET_HEADER;
        // A packet socket reads and writes one frame per call, as a TAP does.
        let file = File::from(OwnedFd::from(socket));
        Ok(Self::new(file, Kind::Tap, frame, None))
    }

    fn new(file: File, kind: Kind, frame: usize, queue_drops: Option<String>) -> Self {
        Self {
            file,
            kind,
            mtu: frame,
            rx: RxQueue::new(frame),
            tx: vec![0; frame],
            error: None,
            dropped_tx: 0,
            queue_drops,
            offload: None,
        }
    }

    /// Whether the device uses TCP segmentation and checksum offload.
    pub fn offload(&self) -> Offload {
        match self.offload {
            Some(_) => Offload::On,
            None => Offload::Off,
        }
    }
}

impl Drop for TunTap {
    fn drop(&mut self) {
        if self.offload.is_some() {
            self.flush();
            // Back to plain frames for whoever attaches next.
            let _ = iface::tun_set_offload(self.file.as_fd(), 0);
        }
    }
}

/// The transmit `drop` column of interface `name` in /proc/net/dev (the kernel's side of a
/// TAP transmits to us: what its queue cannot hold it drops and counts there).
fn proc_net_dev_tx_dropped(table: &str, name: &str) -> Option<u64> {
    table.lines().find_map(|line| {
        let (iface, counters) = line.split_once(':')?;
        if iface.trim() != name {
            return None;
        }
        counters.split_whitespace().nth(11)?.parse().ok()
    })
}

/// Bytes of frames a device reads ahead of its stack (16 MiB, taken from the allocator
/// as zeroed pages the system maps only once they are written).
const RX_QUEUE: usize = 16 * 1024 * 1024;

/// Frames the stack takes from the queue before the device reads what has come since.
const TOP_UP: usize = 32;

/// Frames read from the device ahead of the stack: whenever it is empty, and every
/// [`TOP_UP`] frames taken, the device is read until it has nothing more (or the queue no
/// room), so the kernel's queue in front of the TAP (1,000 frames) is emptied in one go
/// and a burst waits here, not lost there, while the program works through it.
struct RxQueue {
    /// Records of a 4-byte length and a frame, from `head` to `tail`.
    buf: Vec<u8>,
    head: usize,
    tail: usize,
    /// The largest frame a read may return.
    max_frame: usize,
    /// Frames taken since the last read.
    taken: usize,
    /// The last read found the device empty: the next time the queue runs empty, the
    /// stack is told so without another read (a reply then leaves one system call sooner;
    /// what arrived since is read on the next call, or wakes the driver's wait).
    dry: bool,
}

/// Length of a record's header: the frame's length.
const RECORD: usize = 4;

impl RxQueue {
    fn new(max_frame: usize) -> Self {
        Self {
            buf: vec![0; RX_QUEUE.max(2 * (RECORD + max_frame))],
            head: 0,
            tail: 0,
            max_frame,
            taken: 0,
            dry: false,
        }
    }

    /// Whether the device should be read before the next frame is taken.
    fn wants_drain(&mut self) -> bool {
        if self.head == self.tail && std::mem::take(&mut self.dry) {
            return false;
        }
        self.head == self.tail || self.taken >= TOP_UP
    }

    /// Reads frames with `read` until it would block or no frame would fit; an error
    /// other than "would block" ends it too and is returned.
    fn drain(&mut self, mut read: impl FnMut(&mut [u8]) -> io::Result<usize>) -> io::Result<()> {
        self.taken = 0;
        loop {
            if self.tail + RECORD + self.max_frame > self.buf.len() {
                if self.head == 0 {
                    return Ok(());
                }
                // Room at the front: what waits moves there.
                self.buf.copy_within(self.head..self.tail, 0);
                self.tail -= self.head;
                self.head = 0;
                if self.tail + RECORD + self.max_frame > self.buf.len() {
                    return Ok(());
                }
            }
            let start = self.tail + RECORD;
            let Some(room) = self.buf.get_mut(start..start + self.max_frame) else {
                return Ok(());
            };
            match read(room) {
                Ok(n) => {
                    let n = n.min(self.max_frame);
                    let len = u32::try_from(n).unwrap_or(0).to_ne_bytes();
                    if let Some(header) = self.buf.get_mut(self.tail..start) {
                        header.copy_from_slice(&len);
                    }
                    self.tail = start + n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.dry = true;
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Where in `buf` the next frame lies, taken off the queue.
    fn pop(&mut self) -> Option<std::ops::Range<usize>> {
        if self.head == self.tail {
            self.head = 0;
            self.tail = 0;
            return None;
        }
        let start = self.head + RECORD;
        let header = self.buf.get(self.head..start)?;
        let len = u32::from_ne_bytes(header.try_into().ok()?) as usize;
        self.head = start + len;
        self.taken += 1;
        Some(start..start + len)
    }
}

/// What the host driver needs from a device beyond [`Device`].
pub trait HostDevice: Device {
    /// Descriptor to wait on for received frames.
    fn fd(&self) -> RawFd;
    /// A fatal I/O error seen since the last call.
    fn take_error(&mut self) -> Option<io::Error>;
    /// Frames the device dropped before the stack could read them, since it was created
    /// (`None`: the device does not count them).
    fn queue_drops(&self) -> Option<u64> {
        None
    }
    /// When a frame the device holds back (a fault injector's delay) is due: the driver
    /// polls again by then. `None`: nothing held.
    fn next_release(&self) -> Option<Instant> {
        None
    }
    /// Sends what the device holds to send in one go (segments being merged); the driver
    /// calls it before it sleeps.
    fn flush(&mut self) {}
}

impl<D: HostDevice, const Q: usize> HostDevice for smolsock::faults::Faulty<'_, D, Q> {
    fn fd(&self) -> RawFd {
        self.inner().fd()
    }

    fn take_error(&mut self) -> Option<io::Error> {
        self.inner_mut().take_error()
    }

    fn next_release(&self) -> Option<Instant> {
        smolsock::faults::Faulty::next_release(self)
    }

    fn queue_drops(&self) -> Option<u64> {
        self.inner().queue_drops()
    }

    fn flush(&mut self) {
        self.inner_mut().flush();
    }
}

impl HostDevice for TunTap {
    fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    fn take_error(&mut self) -> Option<io::Error> {
        self.error.take()
    }

    /// The kernel hands frames to a TAP or TUN through a queue of `txqueuelen` frames; what
    /// does not fit is dropped and counted as the interface's `tx_dropped`.
    fn queue_drops(&self) -> Option<u64> {
        let name = self.queue_drops.as_deref()?;
        // /proc/net/dev, not /sys/class/net: /proc follows the caller's network namespace.
        let table = std::fs::read_to_string("/proc/net/dev").ok()?;
        proc_net_dev_tx_dropped(&table, name)
    }

    fn flush(&mut self) {
        if let Some(coalescer) = self.offload.as_deref_mut() {
            send_merged(&self.file, coalescer, &mut self.error, &mut self.dropped_tx);
        }
    }
}

/// Writes one frame (after its virtio-net header, if any), counting a full queue as a
/// dropped frame and keeping any other error.
fn write_frame(
    file: &File,
    hdr: Option<&[u8]>,
    frame: &[u8],
    error: &mut Option<io::Error>,
    dropped: &mut u64,
) {
    let written = match hdr {
        Some(hdr) => (&*file).write_vectored(&[io::IoSlice::new(hdr), io::IoSlice::new(frame)]),
        None => (&*file).write(frame),
    };
    if let Err(e) = written {
        if e.kind() == io::ErrorKind::WouldBlock {
            *dropped += 1;
            // Said, not silent; rate-limited to the 1st, 2nd, 4th, 8th... drop.
            if dropped.is_power_of_two() {
                log::warn!(
                    "device queue full: {dropped} frame(s) dropped so far (TCP resends; UDP loses them)"
                );
            }
        } else if error.is_none() {
            *error = Some(e);
        }
    }
}

/// Sends the frame `coalescer` has merged, if any.
fn send_merged(
    file: &File,
    coalescer: &mut Coalescer,
    error: &mut Option<io::Error>,
    dropped: &mut u64,
) {
    if let Some((hdr, frame)) = coalescer.take() {
        write_frame(file, Some(&hdr.to_bytes()), frame, error, dropped);
    }
}

/// Longest wait for an interface that is up to start carrying frames once attached.
const RUNNING_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Waits (at most [`RUNNING_WAIT`]) until the kernel runs the interface `name`.
///
/// Attaching a TAP turns its carrier on, but the kernel starts its transmit queue only
/// when its link watcher gets to it, up to a second later (it runs at most once a second).
/// Until then whatever the kernel sends to the TAP, such as the ARP request for our first
/// peer, is dropped and counted in `tx_dropped`: the peer would wait a second to retry, and
/// the drop would be reported as ours.
fn wait_running(name: &str) {
    let start = std::time::Instant::now();
    while start.elapsed() < RUNNING_WAIT {
        match iface::flags(name) {
            Ok(flags) if flags & libc::IFF_RUNNING == 0 => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            _ => return,
        }
    }
    log::warn!("{name} is up but not running after {RUNNING_WAIT:?}; frames may be lost at first");
}

/// A received frame, borrowed from the device's receive buffer.
pub struct RxToken<'a> {
    frame: &'a [u8],
}

/// Room to send one frame.
pub struct TxToken<'a> {
    file: &'a File,
    buf: &'a mut Vec<u8>,
    error: &'a mut Option<io::Error>,
    dropped: &'a mut u64,
    offload: Option<&'a mut Coalescer>,
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.frame)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let TxToken {
            file,
            buf,
            error,
            dropped,
            offload,
        } = self;
        let Some(coalescer) = offload else {
            buf.resize(len, 0);
            let result = f(buf);
            write_frame(file, None, buf, error, dropped);
            return result;
        };
        buf.resize(len, 0);
        let result = f(buf);
        let mut push = coalescer.push(buf);
        if push == Push::FlushFirst {
            send_merged(file, coalescer, error, dropped);
            push = coalescer.push(buf);
        }
        if push != Push::Merged {
            let hdr = VnetHdr::default().to_bytes();
            write_frame(file, Some(&hdr), buf, error, dropped);
        }
        result
    }
}

impl Device for TunTap {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        // What was merged leaves before anything new comes in.
        self.flush();
        if self.rx.wants_drain() {
            let file = &self.file;
            if let Err(error) = self.rx.drain(|buf| (&*file).read(buf)) {
                self.error.get_or_insert(error);
            }
        }
        let record = self.rx.pop()?;
        let record = self.rx.buf.get_mut(record)?;
        let frame = if self.offload.is_some() {
            let hdr = VnetHdr::parse(record)?;
            let frame = record.get_mut(VNET_HDR_LEN..)?;
            // A frame whose header makes no sense is dropped, as a NIC drops a bad one.
            if !offload::gso_supported(hdr) || !offload::complete_rx(hdr, frame) {
                return None;
            }
            &*frame
        } else {
            &*record
        };
        Some((
            RxToken { frame },
            TxToken {
                file: &self.file,
                buf: &mut self.tx,
                error: &mut self.error,
                dropped: &mut self.dropped_tx,
                offload: self.offload.as_deref_mut(),
            },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_>> {
        Some(TxToken {
            file: &self.file,
            buf: &mut self.tx,
            error: &mut self.error,
            dropped: &mut self.dropped_tx,
            offload: self.offload.as_deref_mut(),
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = match self.kind {
            Kind::Tap => Medium::Ethernet,
            Kind::Tun => Medium::Ip,
        };
        caps.max_transmission_unit = self.mtu;
        caps
    }
}

#[cfg(test)]
mod tests {
    use super::{RxQueue, proc_net_dev_tx_dropped};
    use std::io;

    /// A device holding `frames`, read one per call, then "would block".
    fn device(frames: &mut Vec<Vec<u8>>) -> impl FnMut(&mut [u8]) -> io::Result<usize> + '_ {
        move |buf: &mut [u8]| {
            if frames.is_empty() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let frame = frames.remove(0);
            buf[..frame.len()].copy_from_slice(&frame);
            Ok(frame.len())
        }
    }

    #[test]
    fn the_queue_gives_back_every_frame_in_order_across_refills() {
        let mut q = RxQueue::new(100);
        // A small queue: room for a few records, so refills move what waits to the front.
        q.buf = vec![0; 3 * (4 + 100) + 50];
        let mut next = 0u8;
        let mut got = Vec::new();
        for round in 0..20 {
            let mut frames: Vec<Vec<u8>> = (0..1 + round % 4)
                .map(|i| {
                    next = next.wrapping_add(1);
                    vec![next; 10 + (i * 30) % 90]
                })
                .collect();
            let want: Vec<Vec<u8>> = frames.clone();
            let mut taken = Vec::new();
            let mut empty = 0;
            while taken.len() < want.len() {
                if q.wants_drain() {
                    q.drain(device(&mut frames)).unwrap();
                }
                match q.pop() {
                    Some(range) => taken.push(q.buf[range].to_vec()),
                    // Told "nothing" once without a read after the device ran dry.
                    None => empty += 1,
                }
                assert!(empty < 10, "round {round}: stuck");
            }
            assert!(q.pop().is_none());
            assert_eq!(taken, want, "round {round}");
            got.extend(taken);
        }
        assert_eq!(got.len(), 50);
    }

    #[test]
    fn after_the_device_ran_dry_an_empty_queue_reads_again_only_the_next_time() {
        let mut q = RxQueue::new(100);
        let mut frames = vec![vec![1u8; 10]];
        assert!(q.wants_drain());
        q.drain(device(&mut frames)).unwrap();
        assert!(q.pop().is_some());
        // The read that found the device empty was just made: no second one now.
        assert!(!q.wants_drain());
        assert!(q.pop().is_none());
        // The next time, the device is read again.
        assert!(q.wants_drain());
        let mut more = vec![vec![2u8; 10]];
        q.drain(device(&mut more)).unwrap();
        assert_eq!(q.pop().map(|r| q.buf[r][0]), Some(2));
    }

    #[test]
    fn a_full_queue_leaves_the_rest_in_the_device() {
        let mut q = RxQueue::new(100);
        q.buf = vec![0; 2 * (4 + 100)];
        let mut frames: Vec<Vec<u8>> = (1..=5u8).map(|i| vec![i; 100]).collect();
        q.drain(device(&mut frames)).unwrap();
        assert_eq!(frames.len(), 3, "two fit, three wait in the device");
        let a = q.pop().unwrap();
        assert_eq!(q.buf[a][0], 1);
        let b = q.pop().unwrap();
        assert_eq!(q.buf[b][0], 2);
        assert!(q.pop().is_none());
        let failing = |_: &mut [u8]| -> io::Result<usize> { Err(io::ErrorKind::BrokenPipe.into()) };
        assert!(q.drain(failing).is_err());
    }

    #[test]
    fn tx_dropped_from_proc_net_dev() {
        let table = "Inter-|   Receive                                                |  Transmit\n \
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0\n  \
tap0: 1190000   15000    0    0    0     0          0         0 14201180  100020    0 84644    0     0       0          0\n";
        assert_eq!(proc_net_dev_tx_dropped(table, "tap0"), Some(84644));
        assert_eq!(proc_net_dev_tx_dropped(table, "lo"), Some(0));
        assert_eq!(proc_net_dev_tx_dropped(table, "tap1"), None);
    }
}
