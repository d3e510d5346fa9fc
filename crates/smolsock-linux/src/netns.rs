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

use std::fmt;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;

use nix::sched::{CloneFlags, unshare};

use crate::iface;
use crate::tap::{AttachError, Kind, TUN_PATH};

/// Name of the TAP device [`enter`] creates.
pub const TAP_NAME: &str = "tap0";
/// The kernel's address on the TAP device.
pub const KERNEL_ADDR: Ipv4Addr = Ipv4Addr::new(192, 168, 69, 100);
/// Prefix length of [`KERNEL_ADDR`]'s subnet.
pub const PREFIX_LEN: u8 = 24;
/// The kernel side's MAC address on the TAP device (locally administered).
pub const KERNEL_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x64];

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
#[derive(Debug, Clone)]
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
    /// The network namespace the process was in before, kept open when it may go back
    /// there (root, no user namespace): see [`Namespace::in_origin`].
    origin: Option<std::sync::Arc<std::os::fd::OwnedFd>>,
}

impl Namespace {
    /// Runs `f` in a thread of its own in the network namespace the process was in before
    /// [`enter`] (threads `f` spawns are there too): for a peer that only that network
    /// reaches, such as a board's Ethernet. Only root (without a user namespace) may go
    /// back; otherwise an error says so.
    pub fn in_origin<R: Send>(&self, f: impl FnOnce() -> R + Send) -> Result<R, String> {
        let Some(origin) = &self.origin else {
            return Err(
                "this needs root: only root may go back to the machine's own network from the \
                 private namespace"
                    .into(),
            );
        };
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    nix::sched::setns(origin.as_ref(), CloneFlags::CLONE_NEWNET).map_err(|e| {
                        format!("cannot go back to the machine's network namespace: {e}")
                    })?;
                    Ok(f())
                })
                .join()
                .map_err(|_| "the thread in the machine's network namespace failed".to_string())?
        })
    }

    /// Creates one more persistent TAP device `name` in this namespace, with the kernel at
    /// `kernel_addr`/[`PREFIX_LEN`] on it, up: the link of a second user-space stack (an
    /// emulated board) on a subnet of its own.
    pub fn add_tap(&self, name: &str, kernel_addr: Ipv4Addr) -> Result<(), NetnsError> {
        let cfg = Config {
            user_namespace: self.user_namespace,
        };
        cfg.create_tap(name)?;
        iface::set_address(name, kernel_addr).map_err(|e| cfg.error(name, "set the address", e))?;
        let netmask = Ipv4Addr::from_bits(u32::MAX << (32 - u32::from(PREFIX_LEN)));
        iface::set_netmask(name, netmask).map_err(|e| cfg.error(name, "set the netmask", e))?;
        cfg.bring_up(name)
    }
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
    // Kept to go back: root only, and only useful without a user namespace.
    let origin = std::fs::File::open("/proc/self/ns/net")
        .ok()
        .map(|f| std::sync::Arc::new(std::os::fd::OwnedFd::from(f)));
    let user_namespace = unshare_namespaces()?;
    let origin = origin.filter(|_| !user_namespace);
    let cfg = Config { user_namespace };

    cfg.bring_up("lo")?;
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
            if let Err(e) = iface::disable_tx_checksum_offload(kernel) {
                log::warn!("{kernel}: cannot turn transmit checksum offload off: {e}");
            }
            cfg.bring_up(stack)?;
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
    let kernel_mac = match iface::set_mac(name, KERNEL_MAC) {
        Ok(()) => Some(KERNEL_MAC),
        Err(e) => {
            let e = cfg.error(name, "set the MAC address", e);
            log::warn!("{e}; the kernel keeps a random MAC address");
            None
        }
    };
    iface::set_address(name, KERNEL_ADDR).map_err(|e| cfg.error(name, "set the address", e))?;
    let netmask = Ipv4Addr::from_bits(u32::MAX << (32 - u32::from(PREFIX_LEN)));
    iface::set_netmask(name, netmask).map_err(|e| cfg.error(name, "set the netmask", e))?;
    cfg.bring_up(name)?;
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
        origin,
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
    let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
    let mut root_error = None;
    if uid.is_root() {
        match unshare(CloneFlags::CLONE_NEWNET) {
            Ok(()) => return Ok(false),
            Err(errno) => {
                let error = io::Error::from(errno);
                log::debug!(
                    "unshare(CLONE_NEWNET) as root failed ({error}); trying a user namespace"
                );
                root_error = Some(error);
            }
        }
    }
    if let Err(errno) = unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET) {
        let error = io::Error::from(errno);
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

    /// Brings interface `name` up.
    fn bring_up(&self, name: &str) -> Result<(), NetnsError> {
        iface::bring_up(name).map_err(|e| self.error(name, "bring it up", e))
    }

    /// Creates the persistent TAP device `name` and lets go of it, so that it stays,
    /// without a reader, until someone attaches (or the namespace goes away).
    fn create_tap(&self, name: &str) -> Result<(), NetnsError> {
        let tun = crate::tap::attach(name, Kind::Tap).map_err(|e| match e {
            AttachError::Open(error) => match error.raw_os_error() {
                Some(libc::ENOENT | libc::ENODEV | libc::ENXIO) => NetnsError::TunMissing,
                Some(libc::EACCES | libc::EPERM) => NetnsError::TunDenied {
                    user_namespace: self.user_namespace,
                    error,
                },
                _ => self.error(name, "open /dev/net/tun to create the TAP device", error),
            },
            AttachError::SetIff(error) => {
                self.error(name, "create the TAP device (TUNSETIFF)", error)
            }
        })?;
        iface::tun_set_persist(tun.as_fd()).map_err(|error| {
            self.error(
                name,
                "make the TAP device persistent (TUNSETPERSIST)",
                error,
            )
        })?;
        // Closing `tun` detaches; the device stays because it is persistent.
        drop(tun);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
