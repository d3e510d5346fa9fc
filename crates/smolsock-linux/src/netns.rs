//! A private network namespace with a ready link to the kernel, made in-process.
//!
//! [`enter`] moves the calling process into a new network namespace (inside a new user
//! namespace when not root), brings `lo` up and creates a persistent TAP device,
//! [`TAP_NAME`], whose kernel side has [`KERNEL_ADDR`]/24 and is up. The stack then
//! attaches to it with [`TunTap::open`](crate::tap::TunTap::open) like to any
//! pre-made TAP. Where `/dev/net/tun` cannot be opened (a normal user and a `0600`
//! device), a veth pair ([`VETH_NAMES`], `veth.rs`) takes the TAP's place and the
//! stack uses [`TunTap::packet`](crate::tap::TunTap::packet) on its free end. The stack talks to the kernel's own TCP/IP stack without touching the host's
//! interfaces, routes or firewall, and without `ip` or `sudo`.
//!
//! Nothing needs cleaning up: the namespace, and the TAP in it, disappear when the
//! process exits.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Name of the TAP device [`enter`] creates.
pub const TAP_NAME: &str = "tap0";
/// The kernel's address on the TAP device.
pub const KERNEL_ADDR: Ipv4Addr = Ipv4Addr::new(192, 168, 69, 100);
/// Prefix length of [`KERNEL_ADDR`]'s subnet.
pub const PREFIX_LEN: u8 = 24;
/// The kernel side's MAC address on the TAP device (locally administered).
pub const KERNEL_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x64];

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETPERSIST: libc::c_ulong = 0x4004_54cb;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const TUN_PATH: &str = "/dev/net/tun";

/// Names of the veth pair made when no TAP can be: the kernel's end, and the end a stack
/// drives with raw frames.
pub const VETH_NAMES: (&str, &str) = ("veth0", "veth1");

/// How a user-space stack reaches the kernel in the namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// A TAP device ([`TAP_NAME`]): the kernel's side is the interface, the stack attaches
    /// to the device.
    Tap(String),
    /// A veth pair ([`VETH_NAMES`]), when `/dev/net/tun` cannot be opened: the kernel has
    /// one end, the stack sends and receives raw frames on the other.
    Veth {
        /// The kernel's end, with [`KERNEL_ADDR`].
        kernel: String,
        /// The end for the stack (no address).
        stack: String,
    },
}

impl Link {
    /// The interface that carries the kernel's address (where to capture).
    pub fn kernel_interface(&self) -> &str {
        match self {
            Link::Tap(name) => name,
            Link::Veth { kernel, .. } => kernel,
        }
    }
}

/// The namespace [`enter`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    /// The link between a user-space stack and the kernel.
    pub link: Link,
    /// The kernel's address on it, [`KERNEL_ADDR`].
    pub kernel_addr: Ipv4Addr,
    /// Prefix length of the kernel's subnet, [`PREFIX_LEN`].
    pub prefix_len: u8,
    /// The kernel side's MAC address, [`KERNEL_MAC`]; `None` if it could not be set
    /// (the kernel then picked a random one).
    pub kernel_mac: Option<[u8; 6]>,
    /// Whether a user namespace was made as well (not root, or root without the right to
    /// make a network namespace directly).
    pub user_namespace: bool,
}

/// Why [`enter`] failed, each with the fix in its message.
#[derive(Debug)]
pub enum NetnsError {
    /// The process already runs other threads.
    Threaded {
        /// How many threads `/proc/self/task` lists (0 if only `unshare` told).
        threads: usize,
    },
    /// A user namespace could not be made.
    UserNamespace {
        /// Why `unshare(CLONE_NEWUSER | CLONE_NEWNET)` failed.
        error: io::Error,
        /// Why `unshare(CLONE_NEWNET)` failed first, when running as root.
        root_error: Option<io::Error>,
    },
    /// Mapping our user or group into the new user namespace failed.
    IdMap {
        /// The `/proc/self/...` file that could not be written.
        file: &'static str,
        /// The OS error.
        error: io::Error,
    },
    /// `/dev/net/tun` does not exist.
    TunMissing,
    /// `/dev/net/tun` exists but cannot be opened.
    TunDenied {
        /// Whether we are in a user namespace (where root's `0600` device is off limits).
        user_namespace: bool,
        /// The OS error.
        error: io::Error,
    },
    /// Neither a TAP device nor a veth pair could be made.
    NoLink {
        /// Why there is no TAP.
        tun: Box<NetnsError>,
        /// Why the veth pair could not be made.
        veth: io::Error,
    },
    /// Configuring an interface failed.
    Interface {
        /// Interface name.
        name: String,
        /// What was being done, e.g. "set the address".
        step: &'static str,
        /// Whether we are in a user namespace.
        user_namespace: bool,
        /// The OS error.
        error: io::Error,
    },
}

impl fmt::Display for NetnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetnsError::Threaded { threads } => {
                write!(f, "cannot make a private network namespace: the process ")?;
                if *threads > 1 {
                    write!(f, "already runs {threads} threads")?;
                } else {
                    write!(f, "already runs other threads")?;
                }
                write!(
                    f,
                    "; netns::enter must run at the very start of main, before any thread is \
                     spawned (unshare(CLONE_NEWUSER) fails with EINVAL otherwise)"
                )
            }
            NetnsError::UserNamespace { error, root_error } => {
                match root_error {
                    Some(root) => write!(
                        f,
                        "cannot make a network namespace as root ({root}; a container without \
                         CAP_SYS_ADMIN?), nor a user namespace ({error})"
                    )?,
                    None => write!(f, "cannot make a user namespace ({error})")?,
                }
                write!(
                    f,
                    ": unprivileged user namespaces are disabled or used up; enable them \
                     (`sysctl kernel.unprivileged_userns_clone=1` where \
                     /proc/sys/kernel/unprivileged_userns_clone exists, a nonzero \
                     /proc/sys/user/max_user_namespaces) or run as root"
                )
            }
            NetnsError::IdMap { file, error } => write!(
                f,
                "cannot write {file} in the new user namespace ({error}); the kernel or a \
                 security module forbids it: run as root"
            ),
            NetnsError::TunMissing => write!(
                f,
                "{TUN_PATH} does not exist: load the TUN/TAP driver with `sudo modprobe tun` \
                 (in a container, pass the device in, e.g. `--device /dev/net/tun`)"
            ),
            NetnsError::TunDenied {
                user_namespace: true,
                error,
            } => write!(
                f,
                "cannot open {TUN_PATH} ({error}): inside a user namespace it must be \
                 world read-writable, as most distributions ship it \
                 (`sudo chmod 0666 {TUN_PATH}`), or run as root"
            ),
            NetnsError::TunDenied {
                user_namespace: false,
                error,
            } => write!(f, "cannot open {TUN_PATH}: {error}"),
            NetnsError::NoLink { tun, veth } => write!(
                f,
                "{tun}; and the veth pair that would replace the TAP could not be made \
                 either ({veth})"
            ),
            NetnsError::Interface {
                name,
                step,
                user_namespace,
                error,
            } => {
                write!(
                    f,
                    "{name}: cannot {step} in the new network namespace: {error}"
                )?;
                if *user_namespace && error.raw_os_error() == Some(libc::EPERM) {
                    write!(
                        f,
                        " (a security module may strip capabilities from unprivileged user \
                         namespaces: on Ubuntu, `sysctl kernel.apparmor_restrict_unprivileged_userns=0`; \
                         or run as root)"
                    )?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for NetnsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NetnsError::UserNamespace { error, .. }
            | NetnsError::IdMap { error, .. }
            | NetnsError::TunDenied { error, .. }
            | NetnsError::Interface { error, .. } => Some(error),
            NetnsError::NoLink { veth, .. } => Some(veth),
            NetnsError::Threaded { .. } | NetnsError::TunMissing => None,
        }
    }
}

/// Moves this process into a new, private network namespace and sets it up: `lo` up,
/// and a persistent TAP device [`TAP_NAME`] with the kernel at [`KERNEL_ADDR`]/24, up.
///
/// As root it makes only a network namespace (falling back to a user namespace if that
/// is not allowed); otherwise it makes a user namespace in which we are root, owning a
/// new network namespace. Call it at the very start of `main`, while the process has a
/// single thread: a user namespace cannot be entered by a multi-threaded process, and
/// other threads would stay in the old network namespace.
pub fn enter() -> Result<Namespace, NetnsError> {
    check_single_threaded()?;
    let user_namespace = unshare_namespaces()?;
    let cfg = Config { user_namespace };

    cfg.set_flags("lo", libc::IFF_UP, "bring it up")?;
    // No IPv6 on new interfaces: the TAP then carries only what the programs send
    // (smolsock speaks IPv4), not the kernel's router solicitations and MLD reports.
    // `/proc/sys/net` shows the namespace of the reader, so this one. Cosmetic: a kernel
    // without IPv6 has no such file.
    if let Err(e) = std::fs::write("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1") {
        log::debug!("cannot turn IPv6 off for new interfaces: {e}");
    }
    let link = match cfg.create_tap(TAP_NAME) {
        Ok(()) => Link::Tap(TAP_NAME.to_owned()),
        Err(tun @ (NetnsError::TunDenied { .. } | NetnsError::TunMissing)) => {
            // No TAP for us: a veth pair does the same job through rtnetlink and a raw
            // socket, both ours inside the namespace.
            let (kernel, stack) = VETH_NAMES;
            crate::veth::create(kernel, stack).map_err(|error| NetnsError::NoLink {
                tun: Box::new(tun),
                veth: error,
            })?;
            if let Err(e) = crate::veth::checksum_in_software(kernel) {
                log::warn!("{kernel}: cannot turn transmit checksum offload off: {e}");
            }
            cfg.set_flags(stack, libc::IFF_UP, "bring it up")?;
            log::info!("{TUN_PATH} is not usable here: using the veth pair {kernel}/{stack}");
            Link::Veth {
                kernel: kernel.to_owned(),
                stack: stack.to_owned(),
            }
        }
        Err(e) => return Err(e),
    };
    let name = link.kernel_interface().to_owned();
    let name = name.as_str();
    // The MAC is cosmetic (a fixed one makes captures reproducible): carry on without.
    // It must be set while the device is down.
    let kernel_mac = match cfg.set_hwaddr(name, KERNEL_MAC) {
        Ok(()) => Some(KERNEL_MAC),
        Err(e) => {
            log::warn!("{e}; the kernel keeps a random MAC address");
            None
        }
    };
    cfg.set_inet(name, libc::SIOCSIFADDR, KERNEL_ADDR, "set the address")?;
    let netmask = Ipv4Addr::from_bits(u32::MAX << (32 - u32::from(PREFIX_LEN)));
    cfg.set_inet(name, libc::SIOCSIFNETMASK, netmask, "set the netmask")?;
    cfg.set_flags(name, libc::IFF_UP, "bring it up")?;
    log::debug!(
        "in a private network namespace{}: {name} is {KERNEL_ADDR}/{PREFIX_LEN}",
        if user_namespace {
            " (in a user namespace)"
        } else {
            ""
        }
    );
    Ok(Namespace {
        link,
        kernel_addr: KERNEL_ADDR,
        prefix_len: PREFIX_LEN,
        kernel_mac,
        user_namespace,
    })
}

/// Fails if `/proc/self/task` lists more than one thread (a missing `/proc` is let
/// through: `unshare` will tell).
fn check_single_threaded() -> Result<(), NetnsError> {
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        let threads = tasks.count();
        if threads > 1 {
            return Err(NetnsError::Threaded { threads });
        }
    }
    Ok(())
}

/// Unshares the network namespace (and the user namespace if needed); returns whether a
/// user namespace was made.
fn unshare_namespaces() -> Result<bool, NetnsError> {
    // SAFETY: geteuid and getegid cannot fail and touch no memory.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let mut root_error = None;
    if uid == 0 {
        // SAFETY: unshare takes flags only; it affects this process, not Rust memory.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } == 0 {
            return Ok(false);
        }
        let error = io::Error::last_os_error();
        log::debug!("unshare(CLONE_NEWNET) as root failed ({error}); trying a user namespace");
        root_error = Some(error);
    }
    // SAFETY: as above.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) } != 0 {
        let error = io::Error::last_os_error();
        return Err(if error.raw_os_error() == Some(libc::EINVAL) {
            NetnsError::Threaded { threads: 0 }
        } else {
            NetnsError::UserNamespace { error, root_error }
        });
    }
    // `setgroups` must be denied before an unprivileged process may write `gid_map`; the
    // file is missing before Linux 3.19, where that rule did not exist either.
    match std::fs::write("/proc/self/setgroups", "deny") {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(NetnsError::IdMap {
                file: "/proc/self/setgroups",
                error: e,
            });
        }
        _ => {}
    }
    // Each map must be written with a single write(2), which `fs::write` does for a line
    // this short.
    std::fs::write("/proc/self/uid_map", format!("0 {uid} 1\n")).map_err(|error| {
        NetnsError::IdMap {
            file: "/proc/self/uid_map",
            error,
        }
    })?;
    std::fs::write("/proc/self/gid_map", format!("0 {gid} 1\n")).map_err(|error| {
        NetnsError::IdMap {
            file: "/proc/self/gid_map",
            error,
        }
    })?;
    Ok(true)
}

/// Interface configuration in the new namespace, with errors that say which step failed.
struct Config {
    user_namespace: bool,
}

impl Config {
    fn error(&self, name: &str, step: &'static str, error: io::Error) -> NetnsError {
        NetnsError::Interface {
            name: name.to_owned(),
            step,
            user_namespace: self.user_namespace,
            error,
        }
    }

    /// Runs one `ifreq` ioctl on a throwaway `AF_INET` socket.
    fn ioctl(
        &self,
        name: &str,
        request: libc::c_ulong,
        ifr: &mut libc::ifreq,
        step: &'static str,
    ) -> Result<(), NetnsError> {
        // SAFETY: a plain socket call; the descriptor is owned right away.
        let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(self.error(name, step, io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let sock = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: the request reads (and for SIOCG*, writes) one `ifreq`, which lives for
        // the call.
        let rc = unsafe { libc::ioctl(sock.as_raw_fd(), request, std::ptr::from_mut(ifr)) };
        if rc < 0 {
            return Err(self.error(name, step, io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Sets `flags` (e.g. `IFF_UP`) on the interface, keeping the others.
    fn set_flags(
        &self,
        name: &str,
        flags: libc::c_int,
        step: &'static str,
    ) -> Result<(), NetnsError> {
        let mut ifr = ifreq(name);
        self.ioctl(name, libc::SIOCGIFFLAGS, &mut ifr, "read its flags")?;
        // SAFETY: SIOCGIFFLAGS filled the `ifru_flags` member.
        let old = unsafe { ifr.ifr_ifru.ifru_flags };
        // The flags that fit the ioctl's `short` (IFF_UP and the like) are all we set.
        ifr.ifr_ifru.ifru_flags = old | flags as libc::c_short;
        self.ioctl(name, libc::SIOCSIFFLAGS, &mut ifr, step)
    }

    /// Sets an `AF_INET` address field (`SIOCSIFADDR`, `SIOCSIFNETMASK`).
    fn set_inet(
        &self,
        name: &str,
        request: libc::c_ulong,
        addr: Ipv4Addr,
        step: &'static str,
    ) -> Result<(), NetnsError> {
        let mut ifr = ifreq(name);
        // A `sockaddr_in` laid over a `sockaddr`: family, then port (0), then the address.
        let mut sa = libc::sockaddr {
            sa_family: libc::AF_INET as libc::sa_family_t,
            sa_data: [0; 14],
        };
        for (dst, src) in sa.sa_data[2..6].iter_mut().zip(addr.octets()) {
            *dst = src as libc::c_char;
        }
        ifr.ifr_ifru.ifru_addr = sa;
        self.ioctl(name, request, &mut ifr, step)
    }

    /// Sets the Ethernet address; the device must be down.
    fn set_hwaddr(&self, name: &str, mac: [u8; 6]) -> Result<(), NetnsError> {
        let mut ifr = ifreq(name);
        let mut sa = libc::sockaddr {
            sa_family: libc::ARPHRD_ETHER,
            sa_data: [0; 14],
        };
        for (dst, src) in sa.sa_data.iter_mut().zip(mac) {
            *dst = src as libc::c_char;
        }
        ifr.ifr_ifru.ifru_hwaddr = sa;
        self.ioctl(name, libc::SIOCSIFHWADDR, &mut ifr, "set the MAC address")
    }

    /// Creates the persistent TAP device `name` and lets go of it, so that it stays,
    /// without a reader, until someone attaches (or the namespace goes away).
    fn create_tap(&self, name: &str) -> Result<(), NetnsError> {
        let path = CString::new(TUN_PATH)
            .map_err(|e| self.error(name, "name /dev/net/tun", io::Error::other(e)))?;
        // SAFETY: `path` is a valid NUL-terminated string; the returned descriptor is
        // checked and owned right away.
        let raw = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if raw < 0 {
            let error = io::Error::last_os_error();
            return Err(match error.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ENXIO) => {
                    NetnsError::TunMissing
                }
                Some(libc::EACCES) | Some(libc::EPERM) => NetnsError::TunDenied {
                    user_namespace: self.user_namespace,
                    error,
                },
                _ => self.error(name, "open /dev/net/tun to create the TAP device", error),
            });
        }
        // SAFETY: `raw` is a freshly opened descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut ifr = ifreq(name);
        ifr.ifr_ifru.ifru_flags = IFF_TAP | IFF_NO_PI;
        // SAFETY: TUNSETIFF reads and writes one `ifreq`, which lives for the call.
        let rc = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, std::ptr::from_mut(&mut ifr)) };
        if rc < 0 {
            return Err(self.error(
                name,
                "create the TAP device (TUNSETIFF)",
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: TUNSETPERSIST takes its argument by value; no memory is passed.
        let rc = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETPERSIST, 1 as libc::c_ulong) };
        if rc < 0 {
            return Err(self.error(
                name,
                "make the TAP device persistent (TUNSETPERSIST)",
                io::Error::last_os_error(),
            ));
        }
        // Dropping `fd` detaches; the device stays because it is persistent.
        drop(fd);
        Ok(())
    }
}

/// An all-zero `ifreq` naming `name` (truncated to fit; our names are short).
pub(crate) fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: `ifreq` is plain old data; all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr
        .ifr_name
        .iter_mut()
        .take(libc::IFNAMSIZ - 1)
        .zip(name.bytes())
    {
        *dst = src as libc::c_char;
    }
    ifr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifreq_names_and_terminates() {
        let ifr = ifreq("tap0");
        assert_eq!(
            ifr.ifr_name[..5],
            [b't', b'a', b'p', b'0', 0].map(|b| b as libc::c_char)
        );
        let long = ifreq("a-very-long-interface-name");
        assert_eq!(long.ifr_name[libc::IFNAMSIZ - 1], 0);
    }

    #[test]
    fn messages_say_how_to_fix() {
        let e = NetnsError::UserNamespace {
            error: io::Error::from_raw_os_error(libc::EPERM),
            root_error: None,
        };
        let msg = e.to_string();
        assert!(msg.contains("/proc/sys/user/max_user_namespaces"), "{msg}");
        assert!(msg.contains("run as root"), "{msg}");
        assert!(NetnsError::TunMissing.to_string().contains("modprobe tun"));
        let msg = NetnsError::Threaded { threads: 3 }.to_string();
        assert!(msg.contains("before any thread"), "{msg}");
        let msg = NetnsError::Interface {
            name: "tap0".into(),
            step: "set the address",
            user_namespace: false,
            error: io::Error::from_raw_os_error(libc::EPERM),
        }
        .to_string();
        assert!(msg.starts_with("tap0: cannot set the address"), "{msg}");
        assert!(!msg.contains('\n'));
    }
}
