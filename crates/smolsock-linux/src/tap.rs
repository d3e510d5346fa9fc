//! A Linux TAP (Ethernet) or TUN (IP) device as a smoltcp [`Device`].
//!
//! smoltcp ships `TunTapInterface`, but it panics on read and write errors, allocates a
//! buffer per frame and gives no way to tell "no such device" from "permission denied".
//! This one opens `/dev/net/tun` non-blocking, reuses two frame buffers, keeps I/O errors
//! as values for the driver to report, and checks the device before attaching so that a
//! missing or foreign device gets a clear message (as root, `TUNSETIFF` would otherwise
//! silently create a new, unconfigured device).

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
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

/// Reads an interface's `ifreq` field through `ioctl` on a throwaway socket, in the
/// network namespace of this process (sysfs may show another namespace's devices).
fn interface_ioctl(name: &str, request: libc::c_ulong) -> io::Result<libc::ifreq> {
    // SAFETY: `ifreq` is plain old data; all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: a plain socket call; the descriptor is owned right away.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: the request reads and writes one `ifreq`, which lives for the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), request, &mut ifr) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ifr)
}

/// An open TAP or TUN device.
pub struct TunTap {
    fd: OwnedFd,
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
        if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('/') {
            return Err(OpenError::Missing {
                name: owned(),
                kind,
            });
        }
        let flags = match interface_ioctl(name, libc::SIOCGIFFLAGS) {
            // SAFETY: SIOCGIFFLAGS filled the `ifru_flags` member.
            Ok(ifr) => unsafe { ifr.ifr_ifru.ifru_flags },
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
        let mtu = interface_ioctl(name, libc::SIOCGIFMTU)
            // SAFETY: SIOCGIFMTU filled the `ifru_mtu` member.
            .map(|ifr| unsafe { ifr.ifr_ifru.ifru_mtu })
            .ok()
            .and_then(|m| usize::try_from(m).ok())
            .unwrap_or(1500);

        let path = CString::new("/dev/net/tun").map_err(|e| OpenError::Io {
            name: owned(),
            error: io::Error::other(e),
        })?;
        // SAFETY: `path` is a valid NUL-terminated string; the returned descriptor is
        // checked and owned right away.
        let raw = unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if raw < 0 {
            let error = io::Error::last_os_error();
            return Err(match error.raw_os_error() {
                Some(libc::EACCES) | Some(libc::EPERM) => OpenError::TunDenied {
                    name: owned(),
                    kind,
                    mode: std::fs::metadata("/dev/net/tun").ok().map(|m| {
                        std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777
                    }),
                },
                _ => OpenError::Io {
                    name: owned(),
                    error,
                },
            });
        }
        // SAFETY: `raw` is a freshly opened descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        let mut ifr: libc::ifreq = unsafe {
            // SAFETY: `ifreq` is plain old data; all zeroes is a valid value.
            std::mem::zeroed()
        };
        for (dst, src) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
            *dst = src as libc::c_char;
        }
        ifr.ifr_ifru.ifru_flags = IFF_NO_PI
            | match kind {
                Kind::Tap => IFF_TAP,
                Kind::Tun => IFF_TUN,
            };
        // SAFETY: TUNSETIFF reads and writes one `ifreq`, which lives for the call.
        let rc = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, &mut ifr) };
        if rc < 0 {
            let error = io::Error::last_os_error();
            return Err(match error.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => OpenError::PermissionDenied {
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
            });
        }
        let frame = mtu
            + match kind {
                Kind::Tap => ETHERNET_HEADER,
                Kind::Tun => 0,
            };
        if i32::from(flags) & libc::IFF_UP == 0 {
            log::warn!("{name} is down: bring it up with `sudo ip link set {name} up`");
        }
        Ok(Self {
            fd,
            kind,
            mtu: frame,
            rx: vec![0; frame],
            tx: vec![0; frame],
            error: None,
            dropped_tx: 0,
            queue_drops: Some(name.to_owned()),
        })
    }
}

impl TunTap {
    /// Sends and receives raw Ethernet frames on the existing interface `name` through an
    /// `AF_PACKET` socket: the free end of a veth pair, where no TAP can be made. The
    /// device behaves as a TAP.
    pub fn packet(name: &str) -> io::Result<Self> {
        let c_name = CString::new(name).map_err(io::Error::other)?;
        // SAFETY: `c_name` is a valid NUL-terminated string.
        let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
        if index == 0 {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no interface {name} in this network namespace"),
            ));
        }
        let protocol = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: a plain socket call; the descriptor is owned right away.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                i32::from(protocol),
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: `sockaddr_ll` is plain old data; all zeroes is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = protocol;
        addr.sll_ifindex = i32::try_from(index).map_err(io::Error::other)?;
        let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: binds to a `sockaddr_ll` that lives for the call, with its true size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                std::ptr::from_ref(&addr).cast::<libc::sockaddr>(),
                len,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let mtu = interface_ioctl(name, libc::SIOCGIFMTU)
            // SAFETY: SIOCGIFMTU filled the `ifru_mtu` member.
            .map(|ifr| unsafe { ifr.ifr_ifru.ifru_mtu })
            .ok()
            .and_then(|m| usize::try_from(m).ok())
            .unwrap_or(1500);
        let frame = mtu + ETHERNET_HEADER;
        Ok(Self {
            fd,
            kind: Kind::Tap,
            mtu: frame,
            rx: vec![0; frame],
            tx: vec![0; frame],
            error: None,
            dropped_tx: 0,
            queue_drops: None,
        })
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
        self.fd.as_raw_fd()
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

/// A received frame, borrowed from the device's receive buffer.
pub struct RxToken<'a> {
    frame: &'a [u8],
}

/// Room to send one frame.
pub struct TxToken<'a> {
    fd: RawFd,
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
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        self.buf.resize(len, 0);
        let result = f(self.buf);
        // SAFETY: writes `len` initialized bytes from our own buffer to our own descriptor.
        let n = unsafe { libc::write(self.fd, self.buf.as_ptr().cast(), len) };
        if n < 0 {
            let error = io::Error::last_os_error();
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
        // SAFETY: reads at most `rx.len()` bytes into our own buffer.
        let n = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                self.rx.as_mut_ptr().cast(),
                self.rx.len(),
            )
        };
        if n < 0 {
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::WouldBlock
                && error.kind() != io::ErrorKind::Interrupted
            {
                self.error.get_or_insert(error);
            }
            return None;
        }
        let n = usize::try_from(n).unwrap_or(0);
        let frame = self.rx.get(..n)?;
        Some((
            RxToken { frame },
            TxToken {
                fd: self.fd.as_raw_fd(),
                buf: &mut self.tx,
                error: &mut self.error,
                dropped: &mut self.dropped_tx,
            },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_>> {
        Some(TxToken {
            fd: self.fd.as_raw_fd(),
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
