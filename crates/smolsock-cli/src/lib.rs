//! The pieces of the `smolsock` command (a library only until the in-process harness moves
//! into the core; see `main.rs` for the command itself).
//!
//! - [`cli`]: the command line (clap);
//! - [`driver`]: the poll loops (on a smoltcp stack over a device, or on the kernel's
//!   sockets), and a clean stop on SIGINT/SIGTERM;
//! - [`inproc`]: two stacks on an in-memory link with a simulated clock (demo and tests);
//! - [`demo`], [`input`], [`output`].

#![warn(missing_docs)]

pub mod cli;
pub mod demo;
pub mod driver;
pub mod inproc;
pub mod input;
pub mod output;
