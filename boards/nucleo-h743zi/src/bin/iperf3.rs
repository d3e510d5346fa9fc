//! An iperf3 server on the board, port 5201: `iperf3 -c 192.168.69.5` measures it (`-R`:
//! the board sends; `-P 4`: up to four streams). A client that comes while a test runs is
//! told the server is busy, as iperf3 tells it.
//!
//! Sizes, for the 512 KiB of AXI SRAM: seven sockets (the test's control connection, four
//! streams, two listening for the next stream or a busy client) of 16 KiB each way, 224
//! KiB in all. Every socket gets both rings at full size because which connection becomes
//! the control connection or a stream, and which way a test goes, is known only after it
//! is accepted; 16 KiB is the window that keeps a 100 Mbit/s link busy at about a
//! millisecond of round trip (12.5 KB in flight). Each read or write of a stream moves at
//! most 1 KiB (`data`): the bytes stay in the socket rings.
#![no_std]
#![no_main]

smolsock_board::program!(
    board = nucleo_h743zi::board(),
    iperf3 {
        streams: 4,
        backlog: 2,
        buf: 16384,
        data: 1024
    }
);
