//! An iperf3 server on the board, port 5201, forever: `iperf3 -c 192.168.69.3` measures
//! the kernel sending to the board, `-R` the board sending, `-P 2` two streams at once. A
//! client that comes while a test runs is told "the server is busy running a test", as
//! iperf3 tells it. Boot: `cargo run --release --bin iperf3`.
//!
//! Sizes, for the 64 KiB of RAM:
//!
//! - Four sockets: the test's control connection, its two streams at most, and one
//!   listening for the next stream or for a client to turn away. A test of one stream
//!   leaves one more free. A busy client's socket comes back once its close is done (or,
//!   in TIME-WAIT, when the pool runs dry).
//! - 4 KiB each way for every socket, 32 KiB in all. The roles cannot have sizes of their
//!   own: all connections come through one listener, and which one becomes the control
//!   connection (which needs a few hundred bytes) or a stream, and which way the test goes
//!   (`-R`: the stream's transmit ring holds what is in flight; otherwise its receive ring
//!   is the window), is known only after it is accepted, while the rings are given when
//!   the socket is made. 4 KiB is more than two full segments in flight each way; the
//!   emulated board is CPU-bound before it is window-bound (6 KiB rings measured no faster,
//!   about 80-100 Mbit/s either way), and 24 KiB of RAM stay for the call stack.
//! - `data`: each read or write of a stream moves up to 1 KiB; its bytes are the pattern a
//!   reverse test sends. The control messages take `control_buffer_len(2)`, 1.1 KiB.
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
