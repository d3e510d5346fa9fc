//! The seed's TCP client on the board: connects to 192.168.69.100:9090, sends three
//! lines on one connection, logs the replies, closes, and ends QEMU with status 0 (1 on
//! error: refused, reset, timeout).
//!
//! Peer first, an echo server: `ncat -l -k -e /bin/cat 192.168.69.100 9090` (or the
//! Python one in README.md); then `cargo run --release --bin tcp-client`.
#![no_std]
#![no_main]

smolsock_board::program!(
    board = smolsock_qemu_lm3s6965::Board::init(),
    tcp_client {
        buf: 2048,
        message: 256,
        recv: 512,
        peer: smolsock_qemu_lm3s6965::PEER_ADDRESS,
        lines: [
            b"hello from the board 1\n",
            b"hello from the board 2\n",
            b"hello from the board 3\n",
        ],
    }
);
