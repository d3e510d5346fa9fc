//! # smolsock-remote: a `net::Stack` whose socket calls travel over a serial link
//!
//! The board runs smolsock's smoltcp stack (`SmolStack`) and answers; the host runs a
//! program (one of the four, or a `compare` scenario) against [`host::RemoteStack`], which
//! implements `smolsock::net::Stack` by sending each call to the board and waiting for its
//! reply. So the very code a user flashes moves the packets, with the board's own clock,
//! MAC driver and buffer sizes, while the host decides what to do with them.
//!
//! ```text
//!   host                                           board (firmware `remote`)
//!   program / compare scenario                     server::Server
//!      │ net::Stack                                   │ net::Stack + restart/skip
//!   host::RemoteStack ── Request{seq, Call} ──▶   SmolStack ── MAC ── wire
//!      ▲   (unix socket to QEMU's UART,              │
//!      └── or a tty) ◀── Message::Reply{seq, nonce} ─┘   (+ Message::Boot at boot)
//! ```
//!
//! - [`wire`]: the messages (serde types, postcard-encoded) and the protocol [`VERSION`].
//! - [`frame`]: framing: postcard, a CRC-32, COBS, a 0x00 delimiter; garbage costs one
//!   frame and never memory.
//! - [`server`]: the board's side, `no_std` and allocation-free.
//! - `host` (feature `std`): `RemoteStack` and its links.
//!
//! ## The protocol
//! One request at a time; each carries a number the reply repeats, and each reply carries
//! the board's boot number (the nonce), so a reset board is noticed at the next reply (or
//! by its boot announcement). The session starts with [`wire::Call::Hello`]: a board of
//! another version answers it, says its version and takes no other call. Besides the
//! `Stack` calls there are `Restart` (a fresh stack at host-chosen addresses, for one
//! comparison scenario after another), `SetListenPolicy`, `Wait` (answered when the board's
//! stack moves a frame, or at a deadline: the host never polls over the link), `Skip` (moves
//! the board's clock, to measure long timers without waiting) and `InTimeWait`.
//!
//! [`VERSION`]: wire::VERSION

#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs)]

pub mod frame;
#[cfg(feature = "std")]
pub mod host;
pub mod server;
pub mod wire;

pub use server::Server;
pub use wire::VERSION;
