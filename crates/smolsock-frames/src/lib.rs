//! Ethernet frames as smolsock shows them to a person: parsed once, numbered once, drawn
//! one way.
//!
//! - [`packet`]: [`Packet::parse`] decodes one Ethernet frame (ARP, IPv4 with TCP, UDP or
//!   ICMP) with smoltcp's wire types, as far as smolsock's output needs; it never panics,
//!   whatever the bytes, and what it cannot read is [`Packet::Other`];
//! - [`seq`]: [`Sequences`] makes TCP sequence and acknowledgment numbers relative to each
//!   connection's initial sequence number, as tcpdump and Wireshark show them;
//! - [`ladder`]: the packet ladder, an arrow per frame between the two ends, in Unicode or
//!   (for pipes and Markdown) ASCII, and [`ladder::connection`], which draws one TCP
//!   connection from a capture with each end's state beside it.
//!
//! Who uses it: `smolsock demo` (the frames on its in-process link),
//! `smolsock_linux::capture` (every captured frame is parsed here) and `smolsock compare`
//! (its observations, its S13 ladder and its `-v` log of captured frames).
//!
//! It may use `std` and smoltcp's wire types, nothing else: no I/O, no knowledge of
//! devices, programs or the CLI.

#![warn(missing_docs)]

pub mod ladder;
pub mod packet;
pub mod seq;

pub use ladder::{Ladder, Rung, Style};
pub use packet::{Packet, TcpSegment};
pub use seq::{Relative, Sequences};
