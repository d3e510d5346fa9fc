//! The seed's UDP sender on the board: sends three messages to 192.168.69.100:9090 from
//! one ephemeral port, then ends QEMU with status 0 (1 on error).
//!
//! Peer first: `nc -u -l 192.168.69.100 9090` (or a Python socket bound there); then
//! `cargo run --release --bin udp-send`.
#![no_std]
#![no_main]

smolsock_board::program!(
    board = smolsock_qemu_lm3s6965::Board::init(),
    udp_send {
        buf: 1536,
        datagrams: 4,
        message: 512,
        peer: smolsock_qemu_lm3s6965::PEER_ADDRESS,
        messages: [
            b"hello from the board 1",
            b"hello from the board 2",
            b"hello from the board 3",
        ],
    }
);
