//! Linux plumbing for smolsock: everything the programs need from Linux to run on smoltcp
//! with the kernel as their peer, and nothing about the programs themselves.
//!
//! - [`tap`]: TAP/TUN devices (and `AF_PACKET` sockets on a veth end) as smoltcp devices,
//!   through the [`tap::HostDevice`] trait, with errors as values;
//! - [`netns`]: a private network namespace with a ready TAP device, made in-process
//!   (`unshare(2)` + netlink-free ioctls), or without `/dev/net/tun` a veth pair;
//! - [`capture`]: packet capture on an interface (`AF_PACKET`), as the kernel saw it, each
//!   frame decoded by `smolsock-frames`;
//! - [`pcap`]: `--pcap FILE`, a device wrapper writing every frame, that never panics;
//! - [`wait`]: `ppoll(2)` on a device, an input and a wake-up descriptor;
//! - [`stack`]: a [`SmolStack`](smolsock::smol::SmolStack) sized for a host, with heap
//!   storage and a seed from the operating system.
//!
//! It may use the core (`smolsock`), `smolsock-frames`, smoltcp and `libc`; nothing here
//! knows the CLI, the kernel-socket twin or `compare`, which build on it.

#![warn(missing_docs)]

pub mod capture;
pub mod netns;
pub mod pcap;
pub mod stack;
pub mod tap;
mod veth;
pub mod wait;
