//! What every smolsock Cortex-M board shares, so that a board crate holds only its
//! Ethernet driver, its clock tree and its addresses:
//!
//! - [`clock`]: the SysTick millisecond clock and the defmt timestamp;
//! - [`board`]: the [`Board`] trait (device, clock, sleep, addresses), the firmware loop
//!   [`run`] around the core's `smolsock::runner::round`, and [`EthBoard`], a `Board` for
//!   MACs with a PHY and no receive interrupt;
//! - [`apps`]: the seed's four programs, iperf3 and (feature `remote`) the `remote`
//!   firmware, which lets the host drive the board's stack over a serial port, as
//!   firmware mains, and [`program!`],
//!   which makes one of them a binary's `main` with its board and its buffer sizes;
//! - [`addresses`]: the boards' address plan (board `n` is 192.168.69.`n`, the PC .100);
//! - [`lan8742a`]: the PHY of the Nucleo-144 boards, over any MDIO bus;
//! - [`nucleo`]: the rest the Nucleo-144 boards share: the ST-LINK's clock and its probe;
//! - [`seed`]: seeds for smoltcp from a hardware RNG, a device ID or a host's clock;
//! - [`serial`]: the [`Serial`] trait, a UART to the host for the `remote` firmware, and
//!   [`RemoteBoard`], a board whose sleep also ends on a byte from the host;
//! - [`panic`](mod@panic): panics logged without `core::fmt`, and (feature `panic-handler`)
//!   the panic handler of boards under a debug probe.
//!
//! A firmware binary is one line of [`program!`], for example
//! `program!(board = my_board::board(), tcp_server { clients: 4, backlog: 4, buf: 4096 });`.

#![no_std]
#![deny(missing_docs)]

pub mod addresses;
pub mod apps;
pub mod board;
pub mod clock;
pub mod lan8742a;
pub mod nucleo;
pub mod panic;
pub mod seed;
pub mod serial;

pub use board::{Board, EthBoard, LinkPoll, log_event, new_stack, run, stack_on};
pub use clock::Clock;
pub use panic::log_panic;
pub use serial::{RemoteBoard, Serial, WithSerial};

/// What the expansion of [`program!`] uses; not an API.
#[doc(hidden)]
pub mod __private {
    pub use cortex_m::singleton;
    pub use cortex_m_rt::entry;
    pub use smolsock::programs::iperf3::control_buffer_len as iperf3_control_len;
    pub use smolsock::smol::{SmolStack, TcpBuffers, UdpBuffers};
    pub use smolsock::smoltcp::iface::SocketStorage;

    pub use crate::apps::{UdpQueues, UdpRings};
    pub use core::mem::MaybeUninit;
    #[cfg(feature = "remote")]
    pub use smolsock_remote::Server as RemoteServer;

    /// A second `singleton!` of one static: only if `main` ran twice, a bug.
    #[inline(always)]
    pub fn taken_twice() -> ! {
        defmt::panic!("statics taken twice")
    }

    /// The peer's address at the seed's port.
    pub fn to_peer(ip: core::net::Ipv4Addr) -> core::net::SocketAddrV4 {
        core::net::SocketAddrV4::new(ip, smolsock::DEFAULT_PORT)
    }
}
