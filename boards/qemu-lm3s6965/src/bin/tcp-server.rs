//! The seed's TCP server on the board: echo on port 9090, up to 4 clients at once and 4
//! more completing their handshake in the backlog, forever.
//!
//! Boot: `cargo run --release --bin tcp-server`. Peer: `nc 192.168.69.3 9090`, type lines;
//! each comes back. The log shows `tcp #1 accepted ...`, `tcp #1 received ...`, `tcp #1 sent ...`.
#![no_std]
#![no_main]

use cortex_m::singleton;
use cortex_m_rt::entry;
use smolsock::programs::{ServeMode, TcpServer, TcpServerConfig};
use smolsock::smol::TcpBuffers;
use smolsock::smoltcp::iface::SocketStorage;
use smolsock_qemu_lm3s6965::{Board, run};

/// Clients served at once.
const CLIENTS: usize = 4;
/// Sockets listening for the next clients (the backlog, rule S12).
const BACKLOG: usize = 4;
/// TCP sockets: every client and every backlog slot has its own.
const SOCKETS: usize = CLIENTS + BACKLOG;

#[entry]
fn main() -> ! {
    let storage = singleton!(: [SocketStorage<'static>; SOCKETS] = [SocketStorage::EMPTY; SOCKETS]);
    let tcp = singleton!(: [TcpBuffers<2048>; SOCKETS] = [const { TcpBuffers::new() }; SOCKETS]);
    let (Some(storage), Some(tcp)) = (storage, tcp) else {
        defmt::panic!("statics taken twice");
    };
    let mut board = Board::init();
    let mut stack = board.stack::<SOCKETS>(storage);
    for buffers in tcp.iter_mut() {
        if let Err(e) = stack.add_tcp_buffers(buffers) {
            defmt::panic!("tcp socket: {}", e);
        }
    }
    let config = TcpServerConfig {
        port: smolsock::DEFAULT_PORT,
        backlog: BACKLOG,
        mode: ServeMode::Echo,
        max_clients: None,
    };
    run(board, stack, TcpServer::<_, CLIENTS>::new(config), &[])
}
