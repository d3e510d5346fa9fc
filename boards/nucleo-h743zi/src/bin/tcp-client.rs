//! The seed's TCP client on the board: connects to 192.168.69.100:9090,
//! sends three lines on one connection, logs the replies, closes, then idles.
//!
//! Peer first, an echo server on the PC (192.168.69.100): see README.md; then
//! `cargo run --release --bin tcp-client`.
#![no_std]
#![no_main]

smolsock_board::program!(
    board = nucleo_h743zi::board(),
    tcp_client {
        buf: 4096,
        message: 256,
        recv: 1024,
        peer: nucleo_h743zi::config::PEER_ADDRESS,
        lines: [
            b"hello from nucleo-h743zi 1\n",
            b"hello from nucleo-h743zi 2\n",
            b"hello from nucleo-h743zi 3\n",
        ],
    }
);
