//! The seed's TCP server on the board: echo on port 9090, up to 4 clients at once and 4
//! more completing their handshake in the backlog, forever.
//!
//! Boot: `cargo run --release --bin tcp-server`. Peer: `nc 192.168.69.3 9090`, type lines;
//! each comes back. The log shows `tcp #1 accepted ...`, `tcp #1 received ...`, `tcp #1 sent ...`.
#![no_std]
#![no_main]

smolsock_board::program!(
    board = smolsock_qemu_lm3s6965::Board::init(),
    tcp_server {
        clients: 4,
        backlog: 4,
        buf: 2048
    }
);
