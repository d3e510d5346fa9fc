//! Linux plumbing for smolsock: everything the programs need from Linux to run on smoltcp
//! with the kernel as their peer, and nothing about the programs themselves.
//!
//! - [`tap`]: TAP/TUN devices (and `AF_PACKET` sockets on a veth end) as smoltcp devices,
//!   through the [`tap::HostDevice`] trait, with errors as values;
//! - [`offload`]: a TAP's TCP segmentation and checksum offload (large segments in, the
//!   stack's segments merged on the way out);
//! - [`netns`]: a private network namespace with a ready TAP device, made in-process
//!   (`unshare(2)` + netlink-free ioctls), or without `/dev/net/tun` a veth pair;
//! - [`capture`]: packet capture on an interface (`AF_PACKET`), as the kernel saw it, each
//!   frame decoded by `smolsock-frames`;
//! - [`pcap`]: `--pcap FILE`, a device wrapper writing every frame, that never panics;
//! - [`wait`]: `ppoll(2)` on a device, an input and a wake-up descriptor, or on many
//!   sockets;
//! - [`iface`]: every interface ioctl (index, flags, MTU, addresses, TUN/TAP attach), with
//!   `libc`'s constants;
//! - [`packet`]: the one `AF_PACKET` socket, for a veth end, capture and forged frames;
//! - [`stack`]: a [`SmolStack`](smolsock::smol::SmolStack) sized for a host, with heap
//!   storage and a seed from the operating system.
//!
//! It may use the core (`smolsock`), `smolsock-frames`, smoltcp, `libc`, `socket2` and
//! `nix`; nothing here knows the CLI, the kernel-socket twin or `compare`, which build on
//! it.
//!
//! `unsafe` lives in three modules, which say why (`#[expect(unsafe_code)]`; the workspace
//! denies it everywhere else), one block per system call, each with the comment that
//! argues for it: [`iface`] (the one `ioctl` on an `ifreq`, the zeroed `ifreq` and reads
//! of its union, `TUNSETPERSIST`, `TUNSETOFFLOAD`), [`packet`] (`bind`, `recvfrom` and `getsockopt` with a
//! `sockaddr_ll`) and [`wait`] (the one `ppoll`). Everything else goes through `std`
//! (files for TAP and stdin I/O), `socket2` (sockets) and `nix` (`unshare`, `geteuid`,
//! socket options), which need no `unsafe` of ours.

#![warn(missing_docs)]

pub mod capture;
#[expect(
    unsafe_code,
    reason = "the one ioctl on an ifreq, its union, TUNSETPERSIST, TUNSETOFFLOAD"
)]
pub mod iface;
pub mod netns;
pub mod offload;
#[expect(
    unsafe_code,
    reason = "bind, recvfrom and getsockopt with a sockaddr_ll"
)]
pub mod packet;
pub mod pcap;
pub mod stack;
pub mod tap;
mod veth;
#[expect(unsafe_code, reason = "the one ppoll")]
pub mod wait;
