//! The `remote` firmware: the host drives the board's smoltcp stack over UART0
//! (`smolsock-remote`'s protocol), so that `smolsock --stack board` and the third column
//! of `smolsock compare` run on the board. Build:
//! `cargo build --release --bin remote --features remote` (`cargo xtask boards` does);
//! boot: `qemu-run --serial PATH` with the ELF (UART0 on a unix socket QEMU listens on).
//!
//! Sizes, for the 64 KiB of RAM (`cargo xtask size` shows them):
//!
//! - 32 TCP sockets, as many as the comparison holds open at once (its S2 scenario, 32
//!   clients' ports), each with 256-byte rings each way: a socket's smoltcp state takes
//!   336 bytes and the pool's bookkeeping about 100 more, so 32 of them with their rings
//!   take 30 KiB. Rings this small make a 256-byte window (a bulk transfer moves one
//!   256-byte segment per round trip); 1 KiB rings would leave room for about 12 sockets,
//!   2 KiB for 7. The serial link to the host is the slower path anyway.
//! - 2 UDP sockets (no program or comparison scenario holds more than one at a time), each
//!   with 2048 bytes to receive into, so that a 2000-byte datagram (the comparison's S11
//!   scenario: it reaches the board in two IPv4 fragments, which the `remote` feature
//!   reassembles in one 2 KiB buffer) arrives whole and a 1024-byte read cuts it; 1472
//!   bytes to send from (the largest datagram one frame carries, the protocol's
//!   `MAX_DATA`); 4 datagrams queued each way. 7 KiB; each further socket 3.6 KiB.
//! - The remote server (6 KiB: its frame buffers), the interface with its reassembly
//!   buffer and the pool's bookkeeping (6.7 KiB), the MAC's frame buffers (3 KiB).
//!
//! What is left is the call stack, about 13 KiB: building the stack at boot takes the
//! most (about 8.5 KiB: smoltcp's interface is built, then moved into its static), a
//! `Restart` about 6 KiB (the new interface is built in place of the old one).
#![no_std]
#![no_main]

smolsock_board::program!(
    board = smolsock_qemu_lm3s6965::Board::init(),
    remote {
        tcp: 32,
        buf: 256,
        udp: 2,
        udp_rx: 2048,
        udp_tx: 1472,
        datagrams: 4,
    }
);
