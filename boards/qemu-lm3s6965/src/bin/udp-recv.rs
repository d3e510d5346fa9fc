//! The seed's UDP receiver on the board: binds port 9090 and logs every datagram with its
//! sender, forever.
//!
//! Boot: `cargo run --release --bin udp-recv` (TAP `tap0`, see README.md). Peer:
//! `echo hi | nc -u -w1 192.168.69.3 9090`; the log shows
//! `udp received 3 bytes from 192.168.69.100:PORT: "hi\n"`.
#![no_std]
#![no_main]

smolsock_board::program!(
    board = smolsock_qemu_lm3s6965::Board::init(),
    udp_recv {
        buf: 1536,
        datagrams: 4,
        recv: 1024
    }
);
