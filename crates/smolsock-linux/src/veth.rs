//! A veth pair, made through rtnetlink: the link [`crate::netns`] falls back to when
//! `/dev/net/tun` cannot be opened (a normal user on a machine whose TUN device is
//! `0600`). The kernel keeps one end; a smoltcp stack sends and receives raw Ethernet
//! frames on the other through an `AF_PACKET` socket
//! ([`TunTap::packet`](crate::tap::TunTap::packet)).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NLMSG_HEADER: usize = 16;
const IFINFOMSG: usize = 16;
/// `VETH_INFO_PEER` of `linux/veth.h`.
const VETH_INFO_PEER: u16 = 1;
/// `SIOCETHTOOL` and `ETHTOOL_STXCSUM` of `linux/sockios.h` and `linux/ethtool.h`.
const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_STXCSUM: u32 = 0x17;

/// A netlink message under construction: attributes are appended, nests patched.
struct Message(Vec<u8>);

impl Message {
    fn align(&mut self) {
        while !self.0.len().is_multiple_of(4) {
            self.0.push(0);
        }
    }

    fn ifinfomsg(&mut self) {
        self.0.extend_from_slice(&[0; IFINFOMSG]);
    }

    fn attr(&mut self, kind: u16, payload: &[u8]) {
        let len = u16::try_from(4 + payload.len()).unwrap_or(u16::MAX);
        self.0.extend_from_slice(&len.to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(payload);
        self.align();
    }

    fn name(&mut self, name: &str) {
        let mut bytes = name.as_bytes().to_vec();
        bytes.push(0);
        self.attr(libc::IFLA_IFNAME, &bytes);
    }

    /// An attribute holding the attributes `inner` appends.
    fn nest(&mut self, kind: u16, inner: impl FnOnce(&mut Self)) {
        let start = self.0.len();
        self.attr(kind, &[]);
        inner(self);
        let len = u16::try_from(self.0.len() - start).unwrap_or(u16::MAX);
        if let Some(field) = self.0.get_mut(start..start + 2) {
            field.copy_from_slice(&len.to_ne_bytes());
        }
    }
}

/// The bytes of an `RTM_NEWLINK` request for the veth pair `kernel` / `peer`.
fn new_veth_request(kernel: &str, peer: &str) -> Vec<u8> {
    let mut m = Message(vec![0; NLMSG_HEADER]);
    m.ifinfomsg();
    m.name(kernel);
    m.nest(libc::IFLA_LINKINFO, |m| {
        m.attr(libc::IFLA_INFO_KIND, b"veth\0");
        m.nest(libc::IFLA_INFO_DATA, |m| {
            m.nest(VETH_INFO_PEER, |m| {
                m.ifinfomsg();
                m.name(peer);
            });
        });
    });
    let len = u32::try_from(m.0.len()).unwrap_or(u32::MAX);
    let flags = libc::NLM_F_REQUEST | libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_EXCL;
    let mut header = Vec::with_capacity(NLMSG_HEADER);
    header.extend_from_slice(&len.to_ne_bytes());
    header.extend_from_slice(&libc::RTM_NEWLINK.to_ne_bytes());
    header.extend_from_slice(&u16::try_from(flags).unwrap_or(0).to_ne_bytes());
    header.extend_from_slice(&1u32.to_ne_bytes()); // sequence number
    header.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel
    if let Some(slot) = m.0.get_mut(..NLMSG_HEADER) {
        slot.copy_from_slice(&header);
    }
    m.0
}

/// The error code of a netlink acknowledgement (`0` is success).
fn ack_error(reply: &[u8]) -> Option<i32> {
    let kind = u16::from_ne_bytes(reply.get(4..6)?.try_into().ok()?);
    if kind != u16::try_from(libc::NLMSG_ERROR).ok()? {
        return None;
    }
    Some(i32::from_ne_bytes(reply.get(16..20)?.try_into().ok()?))
}

/// Creates the veth pair `kernel` / `peer` in this network namespace.
pub fn create(kernel: &str, peer: &str) -> io::Result<()> {
    // SAFETY: a plain socket call; the descriptor is owned right away.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let request = new_veth_request(kernel, peer);
    // SAFETY: sends `request.len()` bytes from a live buffer.
    let sent = unsafe { libc::send(fd.as_raw_fd(), request.as_ptr().cast(), request.len(), 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut reply = [0u8; 1024];
    // SAFETY: receives at most `reply.len()` bytes into a local buffer.
    let got = unsafe { libc::recv(fd.as_raw_fd(), reply.as_mut_ptr().cast(), reply.len(), 0) };
    let got = usize::try_from(got).map_err(|_| io::Error::last_os_error())?;
    match ack_error(reply.get(..got).unwrap_or_default()) {
        Some(0) => Ok(()),
        Some(errno) => Err(io::Error::from_raw_os_error(-errno)),
        None => Err(io::Error::other("rtnetlink gave no acknowledgement")),
    }
}

/// Turns transmit checksum offload off on `name`, so frames the kernel sends there carry
/// finished checksums (a veth would otherwise leave them to a "hardware" that does not
/// exist, and smoltcp would drop them).
pub fn checksum_in_software(name: &str) -> io::Result<()> {
    let mut value: [u32; 2] = [ETHTOOL_STXCSUM, 0];
    let mut ifr = crate::netns::ifreq(name);
    ifr.ifr_ifru.ifru_data = value.as_mut_ptr().cast();
    // SAFETY: a plain socket call; the descriptor is owned right away.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: SIOCETHTOOL reads the `ifreq` and the `ethtool_value` it points to, both
    // alive for the call.
    if unsafe { libc::ioctl(fd.as_raw_fd(), SIOCETHTOOL, &mut ifr) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_layout() {
        let m = new_veth_request("veth0", "veth1");
        assert!(m.len().is_multiple_of(4));
        assert_eq!(
            u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize,
            m.len()
        );
        assert_eq!(
            u16::from_ne_bytes(m[4..6].try_into().unwrap()),
            libc::RTM_NEWLINK
        );
        // The first attribute after the ifinfomsg is the name.
        let at = NLMSG_HEADER + IFINFOMSG;
        assert_eq!(
            u16::from_ne_bytes(m[at + 2..at + 4].try_into().unwrap()),
            libc::IFLA_IFNAME
        );
        assert_eq!(&m[at + 4..at + 10], b"veth0\0");
        // Both names are in the message, the peer's inside the nest.
        let text = String::from_utf8_lossy(&m);
        assert!(text.contains("veth1\0") && text.contains("veth\0"));
    }

    #[test]
    fn acknowledgements() {
        let mut ok = vec![0u8; 36];
        ok[4..6].copy_from_slice(&(libc::NLMSG_ERROR as u16).to_ne_bytes());
        assert_eq!(ack_error(&ok), Some(0));
        ok[16..20].copy_from_slice(&(-libc::EEXIST).to_ne_bytes());
        assert_eq!(ack_error(&ok), Some(-libc::EEXIST));
        assert_eq!(ack_error(&[1, 2, 3]), None);
    }
}
