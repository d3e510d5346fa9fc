//! Host side of smolsock: the `smolsock` binary's pieces.
//!
//! - [`tap`]: Linux TAP/TUN devices as smoltcp devices, with errors as values;
//! - [`setup`]: building a [`SmolStack`](smolsock::smol::SmolStack) with heap storage;
//! - [`driver`]: the poll loop (`ppoll(2)` on the device and stdin until the next deadline);
//! - [`inproc`]: two stacks on an in-memory link with a simulated clock (demo and tests);
//! - [`demo`], [`input`], [`output`], [`cli`].
//!
//! The programs themselves live in the `no_std` core crate, `smolsock`; this crate only
//! gives them devices, clocks, input and output.

#![warn(missing_docs)]

pub mod cli;
pub mod demo;
pub mod driver;
pub mod inproc;
pub mod input;
pub mod output;
pub mod setup;
pub mod tap;
