//! An iperf3 server on the board, port 5201: `iperf3 -c 192.168.69.3` (and `-R`, `-P 2`).
#![no_std]
#![no_main]

smolsock_board::program!(
    board = smolsock_qemu_lm3s6965::Board::init(),
    iperf3 {
        streams: 2,
        backlog: 1,
        buf: 4096,
        data: 1024
    }
);
