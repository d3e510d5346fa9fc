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
//!   336 bytes, so 32 of them with their rings take 26.5 KiB. Rings this small make a
//!   256-byte window (bulk transfers run at a segment of 256 bytes per round trip); 1 KiB
//!   rings would allow only about 12 sockets, 2 KiB about 7. The link to the host is the
//!   slower path anyway.
//! - 4 UDP sockets, each with 2048 bytes to receive into, so that a 2000-byte datagram
//!   (the comparison's S11 scenario: it reaches the board in two IPv4 fragments, which the
//!   `remote` feature reassembles in one 2 KiB buffer) arrives whole and a 1024-byte read
//!   cuts it; 1024 bytes to send from (the protocol moves at most 1024 payload bytes per
//!   call); 4 datagrams queued each way. 12.5 KiB.
//! - The server's frame buffers (the protocol's 1024-byte chunks, framed, each way), the
//!   interface with its reassembly buffer and the pool's bookkeeping for 32 sockets, the
//!   MAC's frame buffers: about 12 KiB. What is left, about 10 KiB, is the call stack.
#![no_std]
#![no_main]

smolsock_board::program!(
    board = smolsock_qemu_lm3s6965::Board::init(),
    remote {
        tcp: 32,
        buf: 256,
        udp: 4,
        udp_rx: 2048,
        udp_tx: 1024,
        datagrams: 4,
    }
);
