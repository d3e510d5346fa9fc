//! Host side of smolsock: the `smolsock` binary's pieces.
//!
//! - [`tap`]: Linux TAP/TUN devices as smoltcp devices, with errors as values;
//! - [`setup`]: building a [`SmolStack`](smolsock::smol::SmolStack) with heap storage;
//! - [`driver`]: the poll loops (`ppoll(2)` on the device, or on the kernel's sockets, and
//!   stdin until the next deadline);
//! - [`kernel`]: the std twin, the socket layer over the host kernel's own stack;
//! - [`netns`]: a private network namespace with a ready TAP device (or, without
//!   `/dev/net/tun`, a [`veth`] pair), made in-process;
//! - [`pcap`]: `--pcap FILE`, a device wrapper writing every frame, that never panics;
//! - [`capture`]: packet capture on an interface (`AF_PACKET`) and a frame parser;
//! - [`compare`]: `smolsock compare`, the seed's rules observed on both stacks;
//! - [`demo`], [`input`], [`output`], [`cli`].
//!
//! The programs themselves live in the `no_std` core crate, `smolsock`; this crate only
//! gives them devices, clocks, input and output.

#![warn(missing_docs)]

pub mod capture;
pub mod cli;
pub mod compare;
pub mod demo;
pub mod driver;
pub mod input;
pub mod kernel;
pub mod netns;
pub mod output;
pub mod pcap;
pub mod setup;
pub mod tap;
pub mod veth;
