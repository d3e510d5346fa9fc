//! Interface ioctls, in one place: the properties of a network interface that smolsock
//! reads or sets by name (its index, flags, MTU, MAC address, IPv4 address and netmask,
//! transmit checksum offload) and the TUN/TAP requests, all through one `ifreq` builder
//! and one `ioctl(2)`.
//!
//! The requests act in the network namespace of the caller (`/sys/class/net` may show
//! another namespace's devices; a socket made here belongs to ours). The constants come
//! from `libc`, which has the right values for every architecture (`TUNSETIFF` differs on
//! MIPS, PowerPC and SPARC).

use std::io;
use std::marker::PhantomData;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use socket2::{Domain, Socket, Type};

/// `ETHTOOL_STXCSUM` of `linux/ethtool.h` (set transmit checksum offload), which `libc`
/// does not export.
const ETHTOOL_STXCSUM: u32 = 0x17;

/// The requests made here. Each passes a pointer to one `ifreq`; `Ethtool`'s `ifreq`
/// points on to an `ethtool_value` (see [`IfReq::ethtool`]).
#[derive(Debug, Clone, Copy)]
enum Request {
    GetIndex,
    GetFlags,
    SetFlags,
    GetMtu,
    GetMac,
    SetMac,
    SetAddress,
    SetNetmask,
    Ethtool,
    TunSetIff,
}

impl Request {
    fn code(self) -> libc::Ioctl {
        // `libc::Ioctl` is the request type of `ioctl(2)`: `c_ulong` with glibc, as the
        // socket requests are declared, and `c_int` with musl. Every value fits both.
        let socket_request = |code: libc::c_ulong| code as libc::Ioctl;
        match self {
            Request::GetIndex => socket_request(libc::SIOCGIFINDEX),
            Request::GetFlags => socket_request(libc::SIOCGIFFLAGS),
            Request::SetFlags => socket_request(libc::SIOCSIFFLAGS),
            Request::GetMtu => socket_request(libc::SIOCGIFMTU),
            Request::GetMac => socket_request(libc::SIOCGIFHWADDR),
            Request::SetMac => socket_request(libc::SIOCSIFHWADDR),
            Request::SetAddress => socket_request(libc::SIOCSIFADDR),
            Request::SetNetmask => socket_request(libc::SIOCSIFNETMASK),
            Request::Ethtool => socket_request(libc::SIOCETHTOOL),
            Request::TunSetIff => libc::TUNSETIFF,
        }
    }
}

/// An `ifreq` naming one interface. `'data` is the lifetime of the buffer its
/// `ifru_data` points to, if any (SIOCETHTOOL's argument).
struct IfReq<'data> {
    raw: libc::ifreq,
    data: PhantomData<&'data mut [u32; 2]>,
}

impl IfReq<'static> {
    /// An all-zero `ifreq` naming `name`; a name the kernel could not hold is an
    /// `InvalidInput` error, never cut short (it could name another interface).
    fn new(name: &str) -> io::Result<Self> {
        let bytes = name.as_bytes();
        if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{name:?} cannot name a network interface (1 to {} bytes, no NUL)",
                    libc::IFNAMSIZ - 1
                ),
            ));
        }
        // SAFETY: `ifreq` is plain old data (a name and a union of integers, addresses
        // and a pointer): all zeroes is a valid value of every member.
        let mut raw: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, &src) in raw.ifr_name.iter_mut().zip(bytes) {
            *dst = src as libc::c_char;
        }
        Ok(Self {
            raw,
            data: PhantomData,
        })
    }

    /// The `ifreq` of SIOCETHTOOL, pointing to `value` (an `ethtool_value`: command,
    /// data), which it borrows for as long as it lives.
    fn ethtool(mut self, value: &mut [u32; 2]) -> IfReq<'_> {
        self.raw.ifr_ifru.ifru_data = value.as_mut_ptr().cast();
        IfReq {
            raw: self.raw,
            data: PhantomData,
        }
    }

    fn set_flags(&mut self, flags: libc::c_short) {
        self.raw.ifr_ifru.ifru_flags = flags;
    }

    fn set_sockaddr(&mut self, family: libc::sa_family_t, data: &[u8]) {
        let mut sa_data = [0 as libc::c_char; 14];
        for (dst, &src) in sa_data.iter_mut().zip(data) {
            *dst = src as libc::c_char;
        }
        self.raw.ifr_ifru.ifru_addr = libc::sockaddr {
            sa_family: family,
            sa_data,
        };
    }
}

impl IfReq<'_> {
    fn flags(&self) -> libc::c_short {
        // SAFETY: the `ifreq` started all zeroes (`new`), so every member of the union
        // is initialised; SIOCGIFFLAGS wrote this one.
        unsafe { self.raw.ifr_ifru.ifru_flags }
    }

    /// The union's `int` (`ifru_ifindex`, `ifru_mtu`: one place, two names).
    fn int(&self) -> libc::c_int {
        // SAFETY: as in `flags`; SIOCGIFINDEX and SIOCGIFMTU write this member.
        unsafe { self.raw.ifr_ifru.ifru_ifindex }
    }

    fn sockaddr(&self) -> libc::sockaddr {
        // SAFETY: as in `flags`; SIOCGIFHWADDR writes this member.
        unsafe { self.raw.ifr_ifru.ifru_hwaddr }
    }
}

/// Runs `request` on `fd`: the one `ioctl(2)` of this crate that takes an `ifreq`.
fn ioctl(fd: BorrowedFd<'_>, request: Request, ifr: &mut IfReq<'_>) -> io::Result<()> {
    // SAFETY: every `Request` reads and writes one `ifreq`, which `ifr` holds for the
    // call; SIOCETHTOOL also reads the `ethtool_value` its `ifru_data` points to, which
    // `IfReq::ethtool` borrowed for as long as `ifr` lives. `fd` is open (borrowed).
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request.code(), &raw mut ifr.raw) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Runs a request about interface `name` on a throwaway socket (any socket will do).
fn on_interface(name: &str, request: Request) -> io::Result<IfReq<'static>> {
    let mut ifr = IfReq::new(name)?;
    ask(request, &mut ifr)?;
    Ok(ifr)
}

fn ask(request: Request, ifr: &mut IfReq<'_>) -> io::Result<()> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
    ioctl(socket.as_fd(), request, ifr)
}

/// The index of interface `name`: `NotFound`, saying so, when there is none.
pub fn index(name: &str) -> io::Result<u32> {
    match on_interface(name, Request::GetIndex) {
        Ok(ifr) => u32::try_from(ifr.int()).map_err(io::Error::other),
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no interface '{name}' in this network namespace"),
        )),
        Err(e) => Err(e),
    }
}

/// The `IFF_*` flags of interface `name` (an `ENODEV` error: there is none).
pub fn flags(name: &str) -> io::Result<libc::c_int> {
    let flags = on_interface(name, Request::GetFlags)?.flags();
    // The kernel's flags are an unsigned short in this request.
    Ok(libc::c_int::from(flags as u16))
}

/// Brings interface `name` up (`IFF_UP`), keeping its other flags.
pub fn bring_up(name: &str) -> io::Result<()> {
    let mut ifr = on_interface(name, Request::GetFlags)?;
    // IFF_UP (1) fits the request's `short`.
    ifr.set_flags(ifr.flags() | libc::IFF_UP as libc::c_short);
    ask(Request::SetFlags, &mut ifr)
}

/// The MTU of interface `name`.
pub fn mtu(name: &str) -> io::Result<usize> {
    let mtu = on_interface(name, Request::GetMtu)?.int();
    usize::try_from(mtu).map_err(io::Error::other)
}

/// The MAC address of interface `name`.
pub fn mac(name: &str) -> io::Result<[u8; 6]> {
    let data = on_interface(name, Request::GetMac)?.sockaddr().sa_data;
    Ok(std::array::from_fn(|i| data.get(i).map_or(0, |&b| b as u8)))
}

/// Sets the MAC address of interface `name`; the interface must be down.
pub fn set_mac(name: &str, mac: [u8; 6]) -> io::Result<()> {
    let mut ifr = IfReq::new(name)?;
    ifr.set_sockaddr(libc::ARPHRD_ETHER, &mac);
    ask(Request::SetMac, &mut ifr)
}

/// An `AF_INET` socket address (port 0) as the data of a `sockaddr`.
fn inet(addr: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = addr.octets();
    [0, 0, a, b, c, d]
}

/// Sets the IPv4 address of interface `name`.
pub fn set_address(name: &str, addr: Ipv4Addr) -> io::Result<()> {
    let mut ifr = IfReq::new(name)?;
    ifr.set_sockaddr(libc::AF_INET as libc::sa_family_t, &inet(addr));
    ask(Request::SetAddress, &mut ifr)
}

/// Sets the IPv4 netmask of interface `name`.
pub fn set_netmask(name: &str, mask: Ipv4Addr) -> io::Result<()> {
    let mut ifr = IfReq::new(name)?;
    ifr.set_sockaddr(libc::AF_INET as libc::sa_family_t, &inet(mask));
    ask(Request::SetNetmask, &mut ifr)
}

/// Turns transmit checksum offload off on `name`, so that the frames the kernel sends
/// there carry finished checksums (a veth would otherwise leave them to a "hardware"
/// that does not exist, and smoltcp would drop them).
pub fn disable_tx_checksum_offload(name: &str) -> io::Result<()> {
    let mut value = [ETHTOOL_STXCSUM, 0];
    let mut ifr = IfReq::new(name)?.ethtool(&mut value);
    ask(Request::Ethtool, &mut ifr)
}

/// Attaches the open `/dev/net/tun` file `tun` to device `name` with `flags`
/// (`IFF_TAP` or `IFF_TUN`, and `IFF_NO_PI`): `TUNSETIFF`.
pub(crate) fn tun_set_iff(tun: BorrowedFd<'_>, name: &str, flags: libc::c_short) -> io::Result<()> {
    let mut ifr = IfReq::new(name)?;
    ifr.set_flags(flags);
    ioctl(tun, Request::TunSetIff, &mut ifr)
}

/// Makes the device `tun` is attached to persistent: it stays when the file closes.
pub(crate) fn tun_set_persist(tun: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: TUNSETPERSIST takes its argument by value; no memory is passed. `tun` is
    // open (borrowed).
    let rc = unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETPERSIST, 1 as libc::c_ulong) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets the offloads of the TAP `tun` is attached to (`TUNSETOFFLOAD`, `TUN_F_*` bits):
/// which large or partly checksummed frames the kernel may hand it. 0 turns them off.
pub(crate) fn tun_set_offload(tun: BorrowedFd<'_>, flags: libc::c_uint) -> io::Result<()> {
    // SAFETY: TUNSETOFFLOAD takes its argument by value; no memory is passed. `tun` is
    // open (borrowed).
    let rc = unsafe {
        libc::ioctl(
            tun.as_raw_fd(),
            libc::TUNSETOFFLOAD,
            libc::c_ulong::from(flags),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_terminated_and_never_cut() {
        let ifr = IfReq::new("tap0").unwrap();
        assert_eq!(
            ifr.raw.ifr_name[..5],
            [b't', b'a', b'p', b'0', 0].map(|b| b as libc::c_char)
        );
        let longest = "a".repeat(libc::IFNAMSIZ - 1);
        assert!(IfReq::new(&longest).is_ok());
        for bad in ["", "a-very-long-interface-name", "ta\0p"] {
            let e = IfReq::new(bad).err().unwrap();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
    }

    #[test]
    fn loopback_is_found_and_a_missing_interface_is_named() {
        // Every network namespace has `lo`, with the index 1.
        assert_eq!(index("lo").unwrap(), 1);
        assert!(mtu("lo").unwrap() > 0);
        let e = index("smolsock-none").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("'smolsock-none'"), "{e}");
        assert_eq!(
            flags("smolsock-none").unwrap_err().raw_os_error(),
            Some(libc::ENODEV)
        );
    }

    #[test]
    fn addresses_are_laid_as_the_kernel_reads_them() {
        let mut ifr = IfReq::new("tap0").unwrap();
        ifr.set_sockaddr(
            libc::AF_INET as libc::sa_family_t,
            &inet(Ipv4Addr::new(192, 168, 69, 100)),
        );
        let sa = ifr.sockaddr();
        assert_eq!(sa.sa_family, libc::AF_INET as libc::sa_family_t);
        assert_eq!(
            sa.sa_data[..6],
            [0, 0, 192, 168, 69, 100].map(|b: u8| b as libc::c_char)
        );
    }
}
