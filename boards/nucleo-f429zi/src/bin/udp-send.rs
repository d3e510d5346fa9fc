//! The seed's UDP sender on the board: sends three datagrams to
//! 192.168.69.100:9090 from one ephemeral port, logs the outcome, then idles.
//!
//! Peer first, on the PC: `nc -u -l 9090` (or `nc -u -l -p 9090`); then
//! `cargo run --release --bin udp-send`.
#![no_std]
#![no_main]

smolsock_board::program!(
    board = nucleo_f429zi::board(),
    udp_send {
        buf: 2048,
        datagrams: 4,
        message: 512,
        peer: nucleo_f429zi::config::PEER_ADDRESS,
        messages: [
            b"hello from nucleo-f429zi 1",
            b"hello from nucleo-f429zi 2",
            b"hello from nucleo-f429zi 3",
        ],
    }
);
