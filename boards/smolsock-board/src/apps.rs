//! The four programs of the seed as firmware mains, the same on every board. A binary
//! declares its buffers in statics (their sizes are the board's RAM budget), makes its
//! board, and calls one of these.

use core::net::SocketAddrV4;

use smolsock::DEFAULT_PORT;
use smolsock::programs::{
    DEFAULT_IDLE_TIMEOUT, DEFAULT_REPLY_TIMEOUT, DEFAULT_TIMEOUTS, ServeMode, TcpClient,
    TcpClientConfig, TcpServer, TcpServerConfig, UdpReceiver, UdpReceiverConfig, UdpSender,
    UdpSenderConfig,
};
use smolsock::smol::{TcpBuffers, UdpBuffers};
use smolsock::smoltcp::iface::SocketStorage;
use smolsock::smoltcp::time::Duration;

use crate::board::{Board, new_stack, run};

/// The seed's UDP receiver: binds port 9090 and logs every datagram and its sender
/// (at most `buf.len()` bytes of each, larger ones reported truncated), forever.
pub fn udp_recv<B: Board, const BUF: usize, const PACKETS: usize>(
    mut board: B,
    storage: &'static mut [SocketStorage<'static>; 1],
    udp: &'static mut UdpBuffers<BUF, PACKETS>,
    buf: &'static mut [u8],
) -> ! {
    let mut stack = new_stack::<B, 1>(&mut board, storage);
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
    mut board: B,
    storage: &'static mut [SocketStorage<'static>; 1],
    udp: &'static mut UdpBuffers<BUF, PACKETS>,
    buf: &'static mut [u8],
    to: SocketAddrV4,
    messages: &[&[u8]],
) -> ! {
    let mut stack = new_stack::<B, 1>(&mut board, storage);
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
    mut board: B,
    storage: &'static mut [SocketStorage<'static>; SOCKETS],
    tcp: &'static mut [TcpBuffers<BUF>; SOCKETS],
) -> ! {
    let mut stack = new_stack::<B, SOCKETS>(&mut board, storage);
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
    mut board: B,
    storage: &'static mut [SocketStorage<'static>; 1],
    tcp: &'static mut TcpBuffers<BUF>,
    tx: &'static mut [u8],
    rx: &'static mut [u8],
    to: SocketAddrV4,
    lines: &[&[u8]],
) -> ! {
    let mut stack = new_stack::<B, 1>(&mut board, storage);
    if let Err(e) = stack.add_tcp_buffers(tcp) {
        defmt::panic!("tcp socket: {}", e);
    }
    let config = TcpClientConfig {
        to,
        short: false,
        timeout: Duration::from_secs(10),
        bulk: None,
        reply_timeout: Some(DEFAULT_REPLY_TIMEOUT),
        idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
        timeouts: DEFAULT_TIMEOUTS,
    };
    run(board, stack, &mut TcpClient::new(config, tx, rx), lines)
}
