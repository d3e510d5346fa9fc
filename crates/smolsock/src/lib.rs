//! # smolsock: the socket programs of a classic tutorial on smoltcp
//!
//! The seed tutorial shows four Python programs (a UDP sender and receiver, a TCP client and
//! server) and a dozen rules about how sockets behave (S1-S13). This crate re-creates them
//! for a `no_std`, allocation-free world, so that the very same code runs on a Linux TAP
//! device, on a microcontroller's Ethernet MAC, and (through the [`Stack`] trait) on the
//! host kernel's own sockets.
//!
//! ## Architecture
//!
//! ```text
//!  programs::{UdpReceiver, UdpSender, TcpClient, TcpServer}   state machines, poll(now)
//!            │ emit Event (event.rs)          │ use
//!            ▼                                ▼
//!      host / board prints             net::Stack (trait)      BSD-like, non-blocking
//!                                       │              │
//!                          smol::SmolStack        (host) kernel twin over std::net
//!                           pools, listener, ephemeral ports
//!                                       │
//!                         smoltcp Interface + SocketSet
//!                                       │ smoltcp::phy::Device
//!                 TAP/TUN (host) · link::Link (in-process) · board MAC driver
//! ```
//!
//! - [`net`]: the socket-layer trait the programs are written against.
//! - [`smol`]: its smoltcp implementation, with a socket pool given by the caller, a
//!   listener that keeps `backlog` sockets listening (smoltcp has no `accept`), and
//!   ephemeral ports.
//! - [`programs`]: the four programs, and a fifth, [`programs::iperf3`], that speaks
//!   iperf3's control protocol so that a stock `iperf3` measures the stack; each `poll`
//!   does what can be done without blocking and says when it next needs to run.
//! - [`event`]: what the programs report, with one text form for host and board and,
//!   with the `serde` feature, one data form (`event::Record`, the `--json` lines).
//! - [`runner`]: the poll round every driver (host loop, board `main`) repeats.
//! - [`link`]: an in-memory Ethernet link between two stacks, for the demo and tests.
//! - [`sim`]: two stacks on that link with a simulated clock, running a server and a
//!   client program (the demo, and the crate's own tests in `tests/`).
//! - `faults` (feature `faults`): a seeded fault injector in front of any smoltcp device:
//!   loss, duplication, reordering, corruption, delay with jitter and a rate limit, each
//!   direction, with counters.
//!
//! ## Features
//! `log` (host) or `defmt` (boards) selects the logging back end; they are mutually
//! exclusive. With neither, the crate logs nothing; with `defmt`, events and errors are
//! `defmt::Format`, written as their `Display` is. `faults` adds the `faults` module (the
//! host enables it; default board builds leave it out). `fast-crc` trades 15 KiB of table
//! for a faster CRC-32. `medium-ip` adds IP-medium devices (TUN) to Ethernet, and
//! `fragmentation` reassembles fragmented datagrams: hosts enable them, boards leave them
//! out. `serde` makes events (and the fault counters) serializable without an allocator:
//! the schema of `docs/events.md`, the same on the host and on boards.
//!
//! ## Guarantees
//! No heap, no `unsafe`, and no panics on input from the network or the user: failures
//! are [`Error`] values.

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub(crate) mod fmt;

pub mod error;
pub mod event;
#[cfg(feature = "faults")]
pub mod faults;
pub mod link;
pub mod net;
pub mod programs;
pub mod runner;
pub mod sim;
pub mod smol;

pub use error::{Error, Result};
pub use event::{CloseReason, ConnId, Event, LossCause, Proto, Totals};
pub use net::{Datagram, Phase, Recv, Stack, TcpTimeouts, UdpLosses};
pub use programs::{Poll, Program};

/// The smoltcp version this crate is written against, re-exported so that drivers and
/// boards name the same types.
pub use smoltcp;

/// The seed's port.
pub const DEFAULT_PORT: u16 = 9090;
