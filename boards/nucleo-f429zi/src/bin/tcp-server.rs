//! The seed's TCP server on the board: echo on port 9090, up to 4 clients at
//! once and 4 more completing their handshake in the backlog, forever.
//!
//! Flash: `cargo run --release --bin tcp-server`. Peer: `nc 192.168.69.4 9090`,
//! type lines; each comes back. The log shows `tcp #1 accepted ...`,
//! `tcp #1 received ...`.
#![no_std]
#![no_main]

use cortex_m::singleton;
use cortex_m_rt::entry;
use smolsock::smol::TcpBuffers;
use smolsock::smoltcp::iface::SocketStorage;

/// Clients served at once.
const CLIENTS: usize = 4;
/// TCP sockets: every client and every backlog slot (rule S12) has its own.
const SOCKETS: usize = CLIENTS + 4;
/// Bytes of each socket's receive ring and of its transmit ring.
const TCP_BUFFER: usize = 4096;

#[entry]
fn main() -> ! {
    let storage = singleton!(: [SocketStorage<'static>; SOCKETS] = [SocketStorage::EMPTY; SOCKETS]);
    let tcp =
        singleton!(: [TcpBuffers<TCP_BUFFER>; SOCKETS] = [const { TcpBuffers::new() }; SOCKETS]);
    let (Some(storage), Some(tcp)) = (storage, tcp) else {
        defmt::panic!("statics taken twice");
    };
    smolsock_board::apps::tcp_server::<_, CLIENTS, SOCKETS, TCP_BUFFER>(
        nucleo_f429zi::board(),
        storage,
        tcp,
    )
}
