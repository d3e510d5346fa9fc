//! The four programs of the seed, iperf3 and (feature `remote`) the `remote` firmware as
//! firmware mains, the same on every board. A binary names its board, its program and its buffer sizes (the board's RAM budget)
//! through [`program!`](crate::program), which puts the buffers in statics and calls one of
//! these.

use core::net::SocketAddrV4;

use smolsock::DEFAULT_PORT;
use smolsock::Result;
use smolsock::programs::iperf3::{self, Iperf3Server, Iperf3ServerConfig};
use smolsock::programs::{
    DEFAULT_IDLE_TIMEOUT, DEFAULT_REPLY_TIMEOUT, DEFAULT_TIMEOUTS, ServeMode, TcpClient,
    TcpClientConfig, TcpServer, TcpServerConfig, UdpReceiver, UdpReceiverConfig, UdpSender,
    UdpSenderConfig,
};
use smolsock::smol::{SmolStack, TcpBuffers, UdpBuffers};
use smolsock::smoltcp::socket::udp::PacketMetadata;
use smolsock::smoltcp::time::Duration;
#[cfg(feature = "remote")]
use smolsock::smoltcp::{phy::Device, time::Instant};

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

/// The payload buffers of one UDP socket, with sizes of their own: `RX` bytes to receive
/// into (a datagram larger than that is dropped whole) and `TX` to send from.
/// ([`UdpBuffers`] has one size for both.) All zero, so that a static array of them is
/// cleared in place; their datagrams' metadata is in [`UdpQueues`], which is not zero and
/// would be built on the call stack and copied.
pub struct UdpRings<const RX: usize, const TX: usize> {
    rx: [u8; RX],
    tx: [u8; TX],
}

impl<const RX: usize, const TX: usize> UdpRings<RX, TX> {
    /// Zeroed buffers (a `const fn`, for `static`s).
    pub const fn new() -> Self {
        Self {
            rx: [0; RX],
            tx: [0; TX],
        }
    }

    /// Adds a UDP socket on these buffers and `queues` to `stack`'s pool.
    pub fn add_to<'a, const M: usize, const N: usize>(
        &'a mut self,
        queues: &'a mut UdpQueues<M>,
        stack: &mut SmolStack<'a, N>,
    ) -> Result<()> {
        stack.add_udp(
            &mut queues.rx[..],
            &mut self.rx[..],
            &mut queues.tx[..],
            &mut self.tx[..],
        )
    }
}

impl<const RX: usize, const TX: usize> Default for UdpRings<RX, TX> {
    fn default() -> Self {
        Self::new()
    }
}

/// Room for the metadata of `M` datagrams each way of one UDP socket (see [`UdpRings`]).
pub struct UdpQueues<const M: usize> {
    rx: [PacketMetadata; M],
    tx: [PacketMetadata; M],
}

impl<const M: usize> UdpQueues<M> {
    /// Empty queues (a `const fn`, for `static`s).
    pub const fn new() -> Self {
        Self {
            rx: [PacketMetadata::EMPTY; M],
            tx: [PacketMetadata::EMPTY; M],
        }
    }
}

impl<const M: usize> Default for UdpQueues<M> {
    fn default() -> Self {
        Self::new()
    }
}

/// One `Server::step`, not inlined into the [`remote`] firmware's loop: a step that
/// restarts the stack builds a new smoltcp interface (several KiB with a reassembly
/// buffer), and that room is needed only while it does, not for as long as the loop runs.
#[cfg(feature = "remote")]
#[inline(never)]
fn step<D: Device + ?Sized, S: crate::serial::Serial, const N: usize>(
    server: &mut smolsock_remote::Server,
    stack: &mut SmolStack<'_, N>,
    device: &mut D,
    now: Instant,
    moved: bool,
    serial: &mut S,
) -> Option<Instant> {
    server.step(stack, device, now, moved, &mut |bytes| {
        serial.write_all(bytes)
    })
}

/// The remote server's boot nonce, which tells the host that the board restarted: the
/// board's seed mixed with the time since boot in microseconds, so that two boots differ
/// even where the seed comes from a clock of whole seconds (the emulated board's).
#[cfg(feature = "remote")]
pub fn boot_nonce<B: Board>(board: &B) -> u32 {
    let seed = board.stack_config().seed;
    let micros = board.now().total_micros() as u64;
    crate::seed::seed(&[
        seed as u32,
        (seed >> 32) as u32,
        micros as u32,
        (micros >> 32) as u32,
    ]) as u32
}

/// The remote server, written straight into `slot` (a static of the [`remote`]
/// firmware's), not built on the call stack and moved there.
#[cfg(feature = "remote")]
#[inline(never)]
pub fn server_into(
    slot: &'static mut core::mem::MaybeUninit<smolsock_remote::Server>,
    nonce: u32,
) -> &'static mut smolsock_remote::Server {
    slot.write(smolsock_remote::Server::new(nonce))
}

/// Bytes taken from the serial port at a time by the [`remote`] firmware (a FIFO's worth
/// or a few: the remote server collects them into frames itself).
#[cfg(feature = "remote")]
pub const SERIAL_CHUNK: usize = 64;

/// Chunks of [`SERIAL_CHUNK`] taken from the serial port per turn of the [`remote`]
/// firmware's loop, at most, before the stack gets its turn again: a host that keeps
/// sending cannot starve the network (4 KiB, more than three frames of the protocol).
#[cfg(feature = "remote")]
pub const SERIAL_CHUNKS_PER_TURN: usize = 64;

/// The `remote` firmware: the board's stack driven by the host over the serial port
/// (`smolsock_remote::Server`), so that the host's `RemoteStack` (`smolsock --stack
/// board`, the third column of `smolsock compare`) runs its programs and scenarios on the
/// board's smoltcp, with a pool of the `tcp` and `udp` sockets. Serves forever.
///
/// The loop: the stack moves frames, every byte waiting on the serial port goes to the
/// server, which answers each complete request (a reply frame on the serial port), and
/// the board sleeps until a frame, a byte from the host, the stack's next timer or a
/// pending `Wait`'s deadline. The stack's clock is the board's plus what the host's
/// `Skip` calls added (`Server::clock_offset`).
#[cfg(feature = "remote")]
pub fn remote<
    B: crate::RemoteBoard,
    const N: usize,
    const BUF: usize,
    const RX: usize,
    const TX: usize,
    const M: usize,
>(
    mut board: B,
    stack: &'static mut SmolStack<'static, N>,
    tcp: &'static mut [TcpBuffers<BUF>],
    udp: &'static mut [UdpRings<RX, TX>],
    queues: &'static mut [UdpQueues<M>],
    server: &'static mut smolsock_remote::Server,
) -> ! {
    use crate::serial::Serial;

    let (tcp_count, udp_count) = (tcp.len(), udp.len());
    for buffers in tcp.iter_mut() {
        if let Err(e) = stack.add_tcp_buffers(buffers) {
            defmt::panic!("tcp socket: {}", e);
        }
    }
    for (rings, queues) in udp.iter_mut().zip(queues.iter_mut()) {
        if let Err(e) = rings.add_to(queues, stack) {
            defmt::panic!("udp socket: {}", e);
        }
    }
    defmt::info!(
        "remote: {=usize} TCP sockets ({=usize} B each way), {=usize} UDP ({=usize} B in, {=usize} B out); waiting for the host on the serial port",
        tcp_count,
        BUF,
        udp_count,
        RX,
        TX
    );
    server.announce(&mut |bytes| board.serial().write_all(bytes));
    let mut chunk = [0u8; SERIAL_CHUNK];
    loop {
        let now = board.now() + server.clock_offset();
        let (device, serial) = board.parts();
        let mut moved = stack.poll(now, device);
        let mut wake_at;
        let mut chunks = 0;
        loop {
            let n = serial.read(&mut chunk);
            if let Some(bytes) = chunk.get(..n) {
                server.receive(bytes);
            }
            // A step after every chunk: each complete request is answered before more
            // bytes come in, so the server never holds more than a frame or two.
            wake_at = step(server, stack, device, now, moved, serial);
            moved = false;
            chunks += 1;
            if n == 0 || chunks >= SERIAL_CHUNKS_PER_TURN {
                break;
            }
        }
        board.tick();
        let delay = smolsock::runner::sleep_for(stack, now, wake_at);
        board.wait_for_input(delay);
    }
}

/// A firmware's `main`: the board, one of the five programs (or the `remote` firmware)
/// and its buffer sizes.
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
/// | `remote` (feature `remote`) | `tcp` sockets with `buf` bytes each way, `udp` sockets with `udp_rx` payload bytes to receive into, `udp_tx` to send from and `datagrams` each way | |
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
        remote {
            tcp: $tcp:expr, buf: $buf:expr, udp: $udp:expr,
            udp_rx: $udp_rx:expr, udp_tx: $udp_tx:expr, datagrams: $datagrams:expr $(,)?
        } $(,)?
    ) => {
        #[$crate::__private::entry]
        fn main() -> ! {
            use $crate::__private::{
                MaybeUninit, RemoteServer, SmolStack, SocketStorage, TcpBuffers, UdpQueues,
                UdpRings, singleton, taken_twice,
            };
            const TCP: usize = $tcp;
            const UDP: usize = $udp;
            const SOCKET_COUNT: usize = TCP + UDP;
            // The pool's bound, on its TCP sockets and separately on its UDP ones.
            const POOL: usize = if TCP > UDP { TCP } else { UDP };
            type Udp = UdpRings<{ $udp_rx }, { $udp_tx }>;
            type Queues = UdpQueues<{ $datagrams }>;
            let mut board = $board;
            let nonce = $crate::apps::boot_nonce(&board);
            let config = $crate::Board::stack_config(&board);
            let now = $crate::Board::now(&board);
            // The sockets, the stack and the server are written straight into their
            // statics (see `board::stack_into`): built in `main` and moved, their copies
            // would take most of the call stack, for good.
            let statics = (
                singleton!(SOCKETS: MaybeUninit<[SocketStorage<'static>; SOCKET_COUNT]> = MaybeUninit::uninit()),
                singleton!(TCP_BUFFERS: [TcpBuffers<{ $buf }>; TCP] = [const { TcpBuffers::new() }; TCP]),
                singleton!(UDP_BUFFERS: [Udp; UDP] = [const { Udp::new() }; UDP]),
                singleton!(UDP_QUEUES: [Queues; UDP] = [const { Queues::new() }; UDP]),
                singleton!(SERVER: MaybeUninit<RemoteServer> = MaybeUninit::uninit()),
                singleton!(STACK: MaybeUninit<SmolStack<'static, POOL>> = MaybeUninit::uninit()),
            );
            let (Some(storage), Some(tcp), Some(udp), Some(queues), Some(server), Some(stack)) =
                statics
            else {
                taken_twice()
            };
            let storage = $crate::board::sockets_into(storage);
            let server = $crate::apps::server_into(server, nonce);
            let device = $crate::Board::device(&mut board);
            let stack = $crate::board::stack_into(stack, config, device, storage, now);
            $crate::apps::remote(board, stack, tcp, udp, queues, server)
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
