//! What every smolsock Cortex-M board shares, so that a board crate holds only its
//! Ethernet driver, its clock tree and its addresses:
//!
//! - [`clock`]: the SysTick millisecond clock and the defmt timestamp;
//! - [`board`]: the [`Board`] trait (device, clock, sleep, addresses), the firmware loop
//!   [`run`] around the core's `smolsock::runner::round`, and [`EthBoard`], a `Board` for
//!   MACs with a PHY and no receive interrupt;
//! - [`apps`]: the seed's four programs as firmware mains;
//! - [`lan8742a`]: the PHY of the Nucleo-144 boards, over any MDIO bus;
//! - [`seed`]: seeds for smoltcp from a device ID or a host's clock.
//!
//! A firmware binary declares its socket buffers in statics and calls, for example,
//! `apps::tcp_server(board, storage, buffers)`.

#![no_std]
#![deny(missing_docs)]

pub mod apps;
pub mod board;
pub mod clock;
pub mod lan8742a;
pub mod seed;

pub use board::{Board, EthBoard, LinkPoll, log_event, new_stack, run};
pub use clock::Clock;
