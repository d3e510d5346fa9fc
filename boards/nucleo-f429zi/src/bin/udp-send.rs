//! The seed's UDP sender on the board: sends three datagrams to
//! 192.168.69.100:9090 from one ephemeral port, logs the outcome, then idles.
//!
//! Peer first, on the PC: `nc -u -l 9090` (or `nc -u -l -p 9090`); then
//! `cargo run --release --bin udp-send`.
#![no_std]
#![no_main]

use core::net::SocketAddrV4;

use cortex_m::singleton;
use cortex_m_rt::entry;
use nucleo_f429zi::config::PEER_ADDRESS;
use smolsock::smol::UdpBuffers;
use smolsock::smoltcp::iface::SocketStorage;

/// What the board sends, one datagram each.
const MESSAGES: [&[u8]; 3] = [
    b"hello from nucleo-f429zi 1",
    b"hello from nucleo-f429zi 2",
    b"hello from nucleo-f429zi 3",
];

#[entry]
fn main() -> ! {
    let storage = singleton!(: [SocketStorage<'static>; 1] = [SocketStorage::EMPTY; 1]);
    let udp = singleton!(: UdpBuffers<2048, 4> = UdpBuffers::new());
    let buf = singleton!(: [u8; 512] = [0; 512]);
    let (Some(storage), Some(udp), Some(buf)) = (storage, udp, buf) else {
        defmt::panic!("statics taken twice");
    };
    let to = SocketAddrV4::new(PEER_ADDRESS, smolsock::DEFAULT_PORT);
    smolsock_board::apps::udp_send(nucleo_f429zi::board(), storage, udp, buf, to, &MESSAGES)
}
