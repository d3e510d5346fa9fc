//! The seed's UDP receiver on the board: binds port 9090 and logs every
//! datagram and its sender, forever.
//!
//! Flash: `cargo run --release --bin udp-recv`. Peer: `nc -u 192.168.69.4 9090`,
//! type lines. The log shows `udp received N bytes from IP:PORT: "..."`.
#![no_std]
#![no_main]

smolsock_board::program!(
    board = nucleo_f429zi::board(),
    udp_recv {
        buf: 8192,
        datagrams: 16,
        recv: 1024
    }
);
