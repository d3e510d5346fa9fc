//! The seed's UDP sender on the board: sends three messages to 192.168.69.100:9090 from
//! one ephemeral port, then ends QEMU with status 0 (1 on error).
//!
//! Peer first: `nc -u -l 192.168.69.100 9090` (or a Python socket bound there); then
//! `cargo run --release --bin udp-send`.
#![no_std]
#![no_main]

use core::net::SocketAddrV4;

use cortex_m::singleton;
use cortex_m_rt::entry;
use smolsock::smol::UdpBuffers;
use smolsock::smoltcp::iface::SocketStorage;
use smolsock_qemu_lm3s6965::{Board, PEER_ADDRESS};

/// What the board sends, one datagram each.
const MESSAGES: [&[u8]; 3] = [
    b"hello from the board 1",
    b"hello from the board 2",
    b"hello from the board 3",
];

#[entry]
fn main() -> ! {
    let storage = singleton!(: [SocketStorage<'static>; 1] = [SocketStorage::EMPTY; 1]);
    let udp = singleton!(: UdpBuffers<1536, 4> = UdpBuffers::new());
    let buf = singleton!(: [u8; 512] = [0; 512]);
    let (Some(storage), Some(udp), Some(buf)) = (storage, udp, buf) else {
        defmt::panic!("statics taken twice");
    };
    let to = SocketAddrV4::new(PEER_ADDRESS, smolsock::DEFAULT_PORT);
    smolsock_board::apps::udp_send(Board::init(), storage, udp, buf, to, &MESSAGES)
}
