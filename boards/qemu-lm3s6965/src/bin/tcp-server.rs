//! The seed's TCP server on the board: echo on port 9090, up to 4 clients at once and 4
//! more completing their handshake in the backlog, forever.
//!
//! Boot: `cargo run --release --bin tcp-server`. Peer: `nc 192.168.69.3 9090`, type lines;
//! each comes back. The log shows `tcp #1 accepted ...`, `tcp #1 received ...`, `tcp #1 sent ...`.
#![no_std]
#![no_main]

use cortex_m::singleton;
use cortex_m_rt::entry;
use smolsock::smol::TcpBuffers;
use smolsock::smoltcp::iface::SocketStorage;
use smolsock_qemu_lm3s6965::Board;

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
    smolsock_board::apps::tcp_server::<_, CLIENTS, SOCKETS, 2048>(Board::init(), storage, tcp)
}
