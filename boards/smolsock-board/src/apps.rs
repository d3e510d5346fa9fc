//! The four programs of the seed and iperf3 as firmware mains, the same on every board. A
//! binary names its board, its program and its buffer sizes (the board's RAM budget)
//! through [`program!`](crate::program), which puts the buffers in statics and calls one of
//! these.

use core::net::SocketAddrV4;

use smolsock::DEFAULT_PORT;
use smolsock::programs::iperf3::{self, Iperf3Server, Iperf3ServerConfig};
use smolsock::programs::{
    DEFAULT_IDLE_TIMEOUT, DEFAULT_REPLY_TIMEOUT, DEFAULT_TIMEOUTS, ServeMode, TcpClient,
    TcpClientConfig, TcpServer, TcpServerConfig, UdpReceiver, UdpReceiverConfig, UdpSender,
    UdpSenderConfig,
};
use smolsock::smol::{SmolStack, TcpBuffers, UdpBuffers};
use smolsock::smoltcp::time::Duration;

use crate::board::{Board, run};

/// The seed's UDP receiver: binds port 9090 and logs every datagram and its sender
/// (at most `buf.len()` bytes of each, larger ones reported truncated), forever.
pub fn udp_recv<B: Board, const BUF: usize, const PACKETS: usize>(
    board: B,
    stack: &'static mut SmolStack<'static, 1>,
    udp: &'static mut UdpBuffers<BUF, PACKETS>,
    buf: &'static mut [u8],
) -> ! {
    if let Err(e) = stack.add_udp_buffers(udp) {
        defmt::panic!("udp socket: {}", e);
    }
    let config = UdpReceiverConfig {
        port: DEFAULT_PORT,
        count: None,
    };
    run(board, stack, &mut UdpReceiver::new(config, buf), &[])
}

/// The seed's UDP sender: one datagram per message to `to`, from one ephemeral port.
pub fn udp_send<B: Board, const BUF: usize, const PACKETS: usize>(
    board: B,
    stack: &'static mut SmolStack<'static, 1>,
    udp: &'static mut UdpBuffers<BUF, PACKETS>,
    buf: &'static mut [u8],
    to: SocketAddrV4,
    messages: &[&[u8]],
) -> ! {
    if let Err(e) = stack.add_udp_buffers(udp) {
        defmt::panic!("udp socket: {}", e);
    }
    let config = UdpSenderConfig {
        to,
        flush_timeout: Duration::from_secs(5),
    };
    run(board, stack, &mut UdpSender::new(config, buf), messages)
}

/// The seed's TCP server in echo mode on port 9090: `CLIENTS` served at once, the other
/// `SOCKETS - CLIENTS` sockets listening as the backlog (rule S12), forever.
pub fn tcp_server<B: Board, const CLIENTS: usize, const SOCKETS: usize, const BUF: usize>(
    board: B,
    stack: &'static mut SmolStack<'static, SOCKETS>,
    tcp: &'static mut [TcpBuffers<BUF>; SOCKETS],
) -> ! {
    for buffers in tcp.iter_mut() {
        if let Err(e) = stack.add_tcp_buffers(buffers) {
            defmt::panic!("tcp socket: {}", e);
        }
    }
    let config = TcpServerConfig {
        port: DEFAULT_PORT,
        backlog: SOCKETS.saturating_sub(CLIENTS).max(1),
        mode: ServeMode::Echo,
        max_clients: None,
        idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
        timeouts: DEFAULT_TIMEOUTS,
    };
    run(board, stack, &mut TcpServer::<_, CLIENTS>::new(config), &[])
}

/// The seed's TCP client: connects to `to`, sends `lines` on one connection, logs the
/// replies and closes.
pub fn tcp_client<B: Board, const BUF: usize>(
    board: B,
    stack: &'static mut SmolStack<'static, 1>,
    tcp: &'static mut TcpBuffers<BUF>,
    tx: &'static mut [u8],
    rx: &'static mut [u8],
    to: SocketAddrV4,
    lines: &[&[u8]],
) -> ! {
    if let Err(e) = stack.add_tcp_buffers(tcp) {
        defmt::panic!("tcp socket: {}", e);
    }
    let config = TcpClientConfig {
        to,
        short: false,
        // As the tutorial's client: a line, its reply, the next line.
        pace: smolsock::programs::Pace::LockStep,
        timeout: Duration::from_secs(10),
        bulk: None,
        reply_timeout: Some(DEFAULT_REPLY_TIMEOUT),
        idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
        timeouts: DEFAULT_TIMEOUTS,
    };
    run(board, stack, &mut TcpClient::new(config, tx, rx), lines)
}

/// The iperf3 server on port 5201 (iperf3's own): any stock `iperf3 -c` measures the
/// board, one test at a time, with up to `STREAMS` parallel streams (`-P`); a client that
/// comes while a test runs is turned away as iperf3 does ("the server is busy"). `SOCKETS`
/// sockets: the test's control connection and streams, the rest listening (the next
/// stream, a client to turn away). Serves forever.
pub fn iperf3<B: Board, const STREAMS: usize, const SOCKETS: usize, const BUF: usize>(
    board: B,
    stack: &'static mut SmolStack<'static, SOCKETS>,
    tcp: &'static mut [TcpBuffers<BUF>; SOCKETS],
    control: &'static mut [u8],
    data: &'static mut [u8],
) -> ! {
    for buffers in tcp.iter_mut() {
        if let Err(e) = stack.add_tcp_buffers(buffers) {
            defmt::panic!("tcp socket: {}", e);
        }
    }
    let config = Iperf3ServerConfig {
        port: iperf3::DEFAULT_PORT,
        backlog: SOCKETS.saturating_sub(1 + STREAMS).max(1),
        max_tests: None,
        idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
        timeouts: DEFAULT_TIMEOUTS,
    };
    let mut server = Iperf3Server::<_, STREAMS>::new(config, control, data);
    run(board, stack, &mut server, &[])
}

/// A firmware's `main`: the board, one of the five programs and its buffer sizes.
///
/// `board = EXPR` makes the board (once, at boot: a [`Board`]). The program's buffers, its
/// sockets and the stack (smoltcp's interface) are statics made with
/// `cortex_m::singleton!` (`.bss`, no allocator), so that the firmware's RAM shows in its
/// symbols (`cargo xtask size`: `TCP_BUFFERS`/`UDP_BUFFERS`, `MESSAGE`, `RECV`, then
/// `SOCKETS` and `STACK`) and the linker checks that they fit. Their sizes are constant
/// expressions, given in this order:
///
/// | program | sizes | then |
/// |---|---|---|
/// | `tcp_server` | `clients` served at once, `backlog` sockets listening for the next ones (rule S12), `buf` bytes of each socket's receive and of its transmit ring | |
/// | `tcp_client` | `buf` bytes of the socket's rings, `message` the largest line, `recv` bytes taken per receive | `peer` (port 9090) and the `lines` to send |
/// | `udp_recv` | `buf` payload bytes and `datagrams` queued in each direction, `recv` bytes kept of each datagram (rule S11) | |
/// | `udp_send` | `buf` and `datagrams` as above, `message` the largest message | `peer` (port 9090) and the `messages` to send |
/// | `iperf3` | `streams` the most parallel streams of a test (`-P`), `backlog` sockets listening besides the test's (the next stream, a busy client turned away), `buf` bytes of each socket's receive and of its transmit ring, `data` bytes moved per read or write of a stream | |
///
/// A whole firmware binary (the crate attributes `#![no_std]` and `#![no_main]`, then):
///
/// ```ignore
/// smolsock_board::program!(
///     board = my_board::board(),
///     tcp_server {
///         clients: 4,
///         backlog: 4,
///         buf: 4096
///     }
/// );
/// ```
///
/// ```ignore
/// smolsock_board::program!(
///     board = my_board::board(),
///     tcp_client {
///         buf: 4096,
///         message: 256,
///         recv: 1024,
///         peer: my_board::PEER_ADDRESS,
///         lines: [b"hello 1\n", b"hello 2\n"],
///     }
/// );
/// ```
#[macro_export]
macro_rules! program {
    (
        board = $board:expr,
        tcp_server { clients: $clients:expr, backlog: $backlog:expr, buf: $buf:expr $(,)? } $(,)?
    ) => {
        #[$crate::__private::entry]
        fn main() -> ! {
            use $crate::__private::{SocketStorage, TcpBuffers, singleton, taken_twice};
            const CLIENTS: usize = $clients;
            // Every client and every backlog slot has a socket of its own.
            const SOCKET_COUNT: usize = CLIENTS + $backlog;
            const BUF: usize = $buf;
            let board = $board;
            let statics = (
                singleton!(SOCKETS: [SocketStorage<'static>; SOCKET_COUNT] = [SocketStorage::EMPTY; SOCKET_COUNT]),
                singleton!(TCP_BUFFERS: [TcpBuffers<BUF>; SOCKET_COUNT] = [const { TcpBuffers::new() }; SOCKET_COUNT]),
            );
            let (Some(storage), Some(tcp)) = statics else {
                taken_twice()
            };
            let (board, stack) = $crate::__program_stack!(board, storage, SOCKET_COUNT);
            $crate::apps::tcp_server::<_, CLIENTS, SOCKET_COUNT, BUF>(board, stack, tcp)
        }
    };
    (
        board = $board:expr,
        tcp_client {
            buf: $buf:expr, message: $message:expr, recv: $recv:expr,
            peer: $peer:expr, lines: [$($line:expr),* $(,)?] $(,)?
        } $(,)?
    ) => {
        #[$crate::__private::entry]
        fn main() -> ! {
            use $crate::__private::{SocketStorage, TcpBuffers, singleton, taken_twice, to_peer};
            /// The lines the board sends, in order, on one connection.
            const LINES: &[&[u8]] = &[$($line),*];
            let board = $board;
            let statics = (
                singleton!(SOCKETS: [SocketStorage<'static>; 1] = [SocketStorage::EMPTY; 1]),
                singleton!(TCP_BUFFERS: TcpBuffers<{ $buf }> = TcpBuffers::new()),
                singleton!(MESSAGE: [u8; $message] = [0; $message]),
                singleton!(RECV: [u8; $recv] = [0; $recv]),
            );
            let (Some(storage), Some(tcp), Some(tx), Some(rx)) = statics else {
                taken_twice()
            };
            let (board, stack) = $crate::__program_stack!(board, storage, 1);
            $crate::apps::tcp_client(board, stack, tcp, tx, rx, to_peer($peer), LINES)
        }
    };
    (
        board = $board:expr,
        iperf3 {
            streams: $streams:expr, backlog: $backlog:expr, buf: $buf:expr, data: $data:expr $(,)?
        } $(,)?
    ) => {
        #[$crate::__private::entry]
        fn main() -> ! {
            use $crate::__private::{SocketStorage, TcpBuffers, singleton, taken_twice};
            const STREAMS: usize = $streams;
            // The control connection, the streams, and the listening sockets.
            const SOCKET_COUNT: usize = 1 + STREAMS + $backlog;
            const BUF: usize = $buf;
            const CONTROL: usize = $crate::__private::iperf3_control_len(STREAMS);
            let board = $board;
            let statics = (
                singleton!(SOCKETS: [SocketStorage<'static>; SOCKET_COUNT] = [SocketStorage::EMPTY; SOCKET_COUNT]),
                singleton!(TCP_BUFFERS: [TcpBuffers<BUF>; SOCKET_COUNT] = [const { TcpBuffers::new() }; SOCKET_COUNT]),
                singleton!(MESSAGE: [u8; CONTROL] = [0; CONTROL]),
                singleton!(RECV: [u8; $data] = [0; $data]),
            );
            let (Some(storage), Some(tcp), Some(control), Some(data)) = statics else {
                taken_twice()
            };
            let (board, stack) = $crate::__program_stack!(board, storage, SOCKET_COUNT);
            $crate::apps::iperf3::<_, STREAMS, SOCKET_COUNT, BUF>(board, stack, tcp, control, data)
        }
    };
    (
        board = $board:expr,
        udp_recv { buf: $buf:expr, datagrams: $datagrams:expr, recv: $recv:expr $(,)? } $(,)?
    ) => {
        #[$crate::__private::entry]
        fn main() -> ! {
            use $crate::__private::{SocketStorage, UdpBuffers, singleton, taken_twice};
            let board = $board;
            let statics = (
                singleton!(SOCKETS: [SocketStorage<'static>; 1] = [SocketStorage::EMPTY; 1]),
                singleton!(UDP_BUFFERS: UdpBuffers<{ $buf }, { $datagrams }> = UdpBuffers::new()),
                singleton!(RECV: [u8; $recv] = [0; $recv]),
            );
            let (Some(storage), Some(udp), Some(buf)) = statics else {
                taken_twice()
            };
            let (board, stack) = $crate::__program_stack!(board, storage, 1);
            $crate::apps::udp_recv(board, stack, udp, buf)
        }
    };
    (
        board = $board:expr,
        udp_send {
            buf: $buf:expr, datagrams: $datagrams:expr, message: $message:expr,
            peer: $peer:expr, messages: [$($msg:expr),* $(,)?] $(,)?
        } $(,)?
    ) => {
        #[$crate::__private::entry]
        fn main() -> ! {
            use $crate::__private::{SocketStorage, UdpBuffers, singleton, taken_twice, to_peer};
            /// What the board sends, one datagram each.
            const MESSAGES: &[&[u8]] = &[$($msg),*];
            let board = $board;
            let statics = (
                singleton!(SOCKETS: [SocketStorage<'static>; 1] = [SocketStorage::EMPTY; 1]),
                singleton!(UDP_BUFFERS: UdpBuffers<{ $buf }, { $datagrams }> = UdpBuffers::new()),
                singleton!(MESSAGE: [u8; $message] = [0; $message]),
            );
            let (Some(storage), Some(udp), Some(buf)) = statics else {
                taken_twice()
            };
            let (board, stack) = $crate::__program_stack!(board, storage, 1);
            $crate::apps::udp_send(board, stack, udp, buf, to_peer($peer), MESSAGES)
        }
    };
}

/// The stack of a [`program!`] in its static `STACK`, on the board's device: the board is
/// asked for its addresses and the time first, then the stack is built with interrupts
/// masked (`cortex_m::singleton!`). Not an API.
#[doc(hidden)]
#[macro_export]
macro_rules! __program_stack {
    ($board:ident, $storage:ident, $sockets:expr) => {{
        let mut board = $board;
        let config = $crate::Board::stack_config(&board);
        let now = $crate::Board::now(&board);
        let device = $crate::Board::device(&mut board);
        let stack = $crate::__private::singleton!(
            STACK: $crate::__private::SmolStack<'static, { $sockets }> =
                $crate::board::stack_on(config, device, $storage, now)
        );
        let Some(stack) = stack else {
            $crate::__private::taken_twice()
        };
        (board, stack)
    }};
}
