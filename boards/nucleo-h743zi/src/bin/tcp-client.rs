//! The seed's TCP client on the board: connects to 192.168.69.100:9090,
//! sends three lines on one connection, logs the replies, closes, then idles.
//!
//! Peer first, an echo server on the PC (192.168.69.100): see README.md; then
//! `cargo run --release --bin tcp-client`.
#![no_std]
#![no_main]

use core::net::SocketAddrV4;

use cortex_m::singleton;
use cortex_m_rt::entry;
use nucleo_h743zi::config::PEER_ADDRESS;
use smolsock::smol::TcpBuffers;
use smolsock::smoltcp::iface::SocketStorage;

/// The lines the board sends, in order, on one connection.
const LINES: [&[u8]; 3] = [
    b"hello from nucleo-h743zi 1\n",
    b"hello from nucleo-h743zi 2\n",
    b"hello from nucleo-h743zi 3\n",
];

#[entry]
fn main() -> ! {
    let storage = singleton!(: [SocketStorage<'static>; 1] = [SocketStorage::EMPTY; 1]);
    let tcp = singleton!(: TcpBuffers<4096> = TcpBuffers::new());
    let tx = singleton!(: [u8; 256] = [0; 256]);
    let rx = singleton!(: [u8; 1024] = [0; 1024]);
    let (Some(storage), Some(tcp), Some(tx), Some(rx)) = (storage, tcp, tx, rx) else {
        defmt::panic!("statics taken twice");
    };
    let to = SocketAddrV4::new(PEER_ADDRESS, smolsock::DEFAULT_PORT);
    smolsock_board::apps::tcp_client(nucleo_h743zi::board(), storage, tcp, tx, rx, to, &LINES)
}
