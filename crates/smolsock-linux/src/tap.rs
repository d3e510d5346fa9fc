//! A Linux TAP (Ethernet) or TUN (IP) device as a smoltcp [`Device`].
//!
//! smoltcp ships `TunTapInterface`, but it panics on read and write errors, allocates a
//! buffer per frame and gives no way to tell "no such device" from "permission denied".
//! This one opens `/dev/net/tun` non-blocking, reuses two frame buffers, keeps I/O errors
//! as values for the driver to report, and checks the device before attaching so that a
//! missing or foreign device gets a clear message (as root, `TUNSETIFF` would otherwise
//! silently create a new, unconfigured device).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use crate::iface;
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

    /// `TUNSETIFF`'s flags: the kind, and no packet information header.
    fn flags(self) -> libc::c_short {
        // Both fit the request's `short` (0x0001, 0x0002, 0x1000).
        let kind = match self {
            Kind::Tap => libc::IFF_TAP,
            Kind::Tun => libc::IFF_TUN,
        };
        (kind | libc::IFF_NO_PI) as libc::c_short
    }
}

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
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(TUN_PATH)
        .map_err(AttachError::Open)?;
    iface::tun_set_iff(file.as_fd(), name, kind.flags()).map_err(AttachError::SetIff)?;
    Ok(file)
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
    rx: Vec<u8>,
    tx: Vec<u8>,
    error: Option<io::Error>,
    dropped_tx: u64,
    /// The interface whose kernel-side queue to us counts its drops (TAP/TUN only).
    queue_drops: Option<String>,
}

impl TunTap {
    /// Attaches to the existing device `name`.
    pub fn open(name: &str, kind: Kind) -> Result<Self, OpenError> {
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
        let file = attach(name, kind).map_err(|e| match e {
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
        Ok(Self::new(file, kind, frame, Some(name.to_owned())))
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
            rx: vec![0; frame],
            tx: vec![0; frame],
            error: None,
            dropped_tx: 0,
            queue_drops,
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
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.frame)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(mut self, len: usize, f: F) -> R {
        self.buf.resize(len, 0);
        let result = f(self.buf);
        if let Err(error) = self.file.write(self.buf) {
            if error.kind() == io::ErrorKind::WouldBlock {
                *self.dropped += 1;
                // Said, not silent; rate-limited to the 1st, 2nd, 4th, 8th... drop.
                if self.dropped.is_power_of_two() {
                    log::warn!(
                        "device queue full: {} frame(s) dropped so far (TCP resends; UDP loses them)",
                        self.dropped
                    );
                }
            } else if self.error.is_none() {
                *self.error = Some(error);
            }
        }
        result
    }
}

impl Device for TunTap {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        let n = match (&self.file).read(&mut self.rx) {
            Ok(n) => n,
            Err(error) => {
                if error.kind() != io::ErrorKind::WouldBlock
                    && error.kind() != io::ErrorKind::Interrupted
                {
                    self.error.get_or_insert(error);
                }
                return None;
            }
        };
        let frame = self.rx.get(..n)?;
        Some((
            RxToken { frame },
            TxToken {
                file: &self.file,
                buf: &mut self.tx,
                error: &mut self.error,
                dropped: &mut self.dropped_tx,
            },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_>> {
        Some(TxToken {
            file: &self.file,
            buf: &mut self.tx,
            error: &mut self.error,
            dropped: &mut self.dropped_tx,
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
    use super::proc_net_dev_tx_dropped;

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
