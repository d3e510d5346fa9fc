//! The seed's TCP client on the board: connects to 192.168.69.100:9090, sends three
//! lines on one connection, logs the replies, closes, and ends QEMU with status 0 (1 on
//! error: refused, reset, timeout).
//!
//! Peer first, an echo server: `ncat -l -k -e /bin/cat 192.168.69.100 9090` (or the
//! Python one in README.md); then `cargo run --release --bin tcp-client`.
#![no_std]
#![no_main]

use core::net::SocketAddrV4;

use cortex_m::singleton;
use cortex_m_rt::entry;
use smolsock::smol::TcpBuffers;
use smolsock::smoltcp::iface::SocketStorage;
use smolsock_qemu_lm3s6965::{Board, PEER_ADDRESS};

/// The lines the board sends, in order, on one connection.
const LINES: [&[u8]; 3] = [
    b"hello from the board 1\n",
    b"hello from the board 2\n",
    b"hello from the board 3\n",
];

#[entry]
fn main() -> ! {
    let storage = singleton!(: [SocketStorage<'static>; 1] = [SocketStorage::EMPTY; 1]);
    let tcp = singleton!(: TcpBuffers<2048> = TcpBuffers::new());
    let tx = singleton!(: [u8; 256] = [0; 256]);
    let rx = singleton!(: [u8; 512] = [0; 512]);
    let (Some(storage), Some(tcp), Some(tx), Some(rx)) = (storage, tcp, tx, rx) else {
        defmt::panic!("statics taken twice");
    };
    let to = SocketAddrV4::new(PEER_ADDRESS, smolsock::DEFAULT_PORT);
    smolsock_board::apps::tcp_client(Board::init(), storage, tcp, tx, rx, to, &LINES)
}
