//! The `remote` firmware: the host drives the board's smoltcp stack over the ST-LINK's
//! virtual COM port (USART3, 115200 8N1; `smolsock-remote`'s protocol), so that
//! `smolsock --stack board --board /dev/ttyACM0` runs its programs on the board. Flash:
//! `cargo run --release --bin remote --features remote` (`cargo xtask boards` builds it).
//! The board's Ethernet carries the traffic; see README.md for the whole set-up.
//!
//! The board is [`nucleo_f429zi::board_with_serial`] as a `RemoteBoard`
//! ([`WithSerial`](smolsock_board::WithSerial)): its loop wakes at every SysTick
//! millisecond anyway, and the USART3 interrupt keeps what arrives meanwhile in its 2 KiB
//! ring, so looking at the port once a tick loses nothing (a request waits at most 1 ms,
//! while its longest frame takes about 135 ms on the line).
//!
//! Sizes, for the 192 KiB of SRAM (`cargo xtask size` shows them):
//!
//! - 32 TCP sockets, as many as the comparison holds open at once (its client-port
//!   scenario, 32 clients), each with 1536-byte rings each way: a full-size segment (1460
//!   bytes) fits in either. 32 × 3 KiB of rings and 32 × 336 bytes of smoltcp state:
//!   107 KiB. 2 KiB rings would take 32 KiB more and leave about 4 KiB for the call stack,
//!   less than `cargo xtask size` asks for (8 KiB); 1.5 KiB is the largest multiple of
//!   512 bytes that leaves plenty. The serial link (about 11 KB/s) is the slower path of a
//!   bulk transfer anyway.
//! - 2 UDP sockets (no program or comparison scenario holds more than one at a time), each
//!   with 2048 bytes to receive into, so that a 2000-byte datagram (two IPv4 fragments,
//!   which the `remote` feature reassembles in one 2 KiB buffer) arrives whole; 1472
//!   bytes to send from (the largest datagram one frame carries, the protocol's
//!   `MAX_DATA`); 4 datagrams queued each way. 7 KiB.
//! - The remote server (6 KiB: its frame buffers); smoltcp's interface with its
//!   256-entry neighbour cache (6 KiB), its reassembly buffer and the pool's bookkeeping
//!   (12.3 KiB); the Ethernet DMA's descriptors and frames (20 KiB), the serial port's
//!   receive ring (2 KiB) and the RTT log (1 KiB).
//!
//! What is left is the call stack, about 36 KiB. Building the stack at boot and a
//! `Restart` take the most, since each builds smoltcp's interface on the call stack: about
//! 8.5 and 6 KiB on the emulated board, whose neighbour cache is 5.6 KiB smaller, so up to
//! 14 and 12 KiB here (not measured: no board was at hand).
#![no_std]
#![no_main]

smolsock_board::program!(
    board = {
        let (board, serial) = nucleo_f429zi::board_with_serial();
        smolsock_board::WithSerial::new(board, serial)
    },
    remote {
        tcp: 32,
        buf: 1536,
        udp: 2,
        udp_rx: 2048,
        udp_tx: 1472,
        datagrams: 4,
    }
);
