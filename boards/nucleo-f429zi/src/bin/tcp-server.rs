//! The seed's TCP server on the board: echo on port 9090, up to 4 clients at
//! once and 4 more completing their handshake in the backlog, forever.
//!
//! Flash: `cargo run --release --bin tcp-server`. Peer: `nc 192.168.69.4 9090`,
//! type lines; each comes back. The log shows `tcp #1 accepted ...`,
//! `tcp #1 received ...`, `tcp #1 sent ...`.
#![no_std]
#![no_main]

use cortex_m::singleton;
use cortex_m_rt::entry;
use nucleo_f429zi::app::{new_stack, run};
use smolsock::programs::{ServeMode, TcpServer, TcpServerConfig};
use smolsock::smol::TcpBuffers;
use smolsock::smoltcp::iface::SocketStorage;

/// Clients served at once.
const CLIENTS: usize = 4;
/// Sockets listening for the next clients (the backlog, rule S12).
const BACKLOG: usize = 4;
/// TCP sockets: every client and every backlog slot has its own.
const SOCKETS: usize = CLIENTS + BACKLOG;
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
    let (mut device, clock) = nucleo_f429zi::init();
    let mut stack = new_stack::<SOCKETS>(&mut device, &clock, storage);
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
    let mut program = TcpServer::<_, CLIENTS>::new(config);
    run(device, clock, stack, &mut program, &[])
}
