//! The `remote` firmware: the host drives the board's smoltcp stack over the ST-LINK's
//! virtual COM port (USART3, 115200 8N1; `smolsock-remote`'s protocol), so that
//! `smolsock --stack board --board /dev/ttyACM0` runs its programs on the board. Flash:
//! `cargo run --release --bin remote --features remote` (`cargo xtask boards` builds it).
//! The board's Ethernet carries the traffic; see README.md for the whole set-up.
//!
//! The board is [`nucleo_h743zi::board_with_serial`] as a `RemoteBoard`
//! ([`WithSerial`](smolsock_board::WithSerial)): its loop wakes at every SysTick
//! millisecond anyway, and the USART3 interrupt keeps what arrives meanwhile in its 2 KiB
//! ring, so looking at the port once a tick loses nothing (a request waits at most 1 ms,
//! while its longest frame takes about 135 ms on the line).
//!
//! Sizes, for the 512 KiB of AXI SRAM that memory.x gives the firmware (the RAM the
//! Ethernet DMA reaches; `cargo xtask size` shows them):
//!
//! - 32 TCP sockets, as many as the comparison holds open at once (its client-port
//!   scenario, 32 clients), each with 4096-byte rings each way: a window of nearly three
//!   full-size segments. 32 × 8 KiB of rings and 32 × 336 bytes of smoltcp state:
//!   266.5 KiB. 8 KiB rings, as tcp-server's, would take the whole 512 KiB; 4 KiB is the
//!   largest power of two that fits, with room to spare. The serial link (about 11 KB/s)
//!   is the slower path of a bulk transfer anyway.
//! - 2 UDP sockets (no program or comparison scenario holds more than one at a time), each
//!   with 2048 bytes to receive into, so that a 2000-byte datagram (two IPv4 fragments,
//!   which the `remote` feature reassembles in one 2 KiB buffer) arrives whole; 1472
//!   bytes to send from (the largest datagram one frame carries, the protocol's
//!   `MAX_DATA`); 4 datagrams queued each way. 7 KiB.
//! - The remote server (6 KiB: its frame buffers); smoltcp's interface with its
//!   256-entry neighbour cache (6 KiB), its reassembly buffer and the pool's bookkeeping
//!   (12.3 KiB); the Ethernet driver's descriptors and frames (18 KiB), the serial port's
//!   rings (2.25 KiB) and the RTT log (1 KiB).
//!
//! What is left is the call stack, about 198 KiB: far more than building the stack at
//! boot or a `Restart` takes (each builds smoltcp's interface on the call stack: about 8.5
//! and 6 KiB on the emulated board, whose neighbour cache is 5.6 KiB smaller).
#![no_std]
#![no_main]

smolsock_board::program!(
    board = {
        let (board, serial) = nucleo_h743zi::board_with_serial();
        smolsock_board::WithSerial::new(board, serial)
    },
    remote {
        tcp: 32,
        buf: 4096,
        udp: 2,
        udp_rx: 2048,
        udp_tx: 1472,
        datagrams: 4,
    }
);
