//! The seed's UDP receiver on the board: binds port 9090 and logs every
//! datagram and its sender, forever.
//!
//! Flash: `cargo run --release --bin udp-recv`. Peer: `nc -u 192.168.69.4 9090`,
//! type lines. The log shows `udp received N bytes from IP:PORT: "..."`.
#![no_std]
#![no_main]

use cortex_m::singleton;
use cortex_m_rt::entry;
use smolsock::smol::UdpBuffers;
use smolsock::smoltcp::iface::SocketStorage;

#[entry]
fn main() -> ! {
    let storage = singleton!(: [SocketStorage<'static>; 1] = [SocketStorage::EMPTY; 1]);
    let udp = singleton!(: UdpBuffers<8192, 16> = UdpBuffers::new());
    // recvfrom(1024): at most 1024 bytes of each datagram (rule S11).
    let buf = singleton!(: [u8; 1024] = [0; 1024]);
    let (Some(storage), Some(udp), Some(buf)) = (storage, udp, buf) else {
        defmt::panic!("statics taken twice");
    };
    smolsock_board::apps::udp_recv(nucleo_f429zi::board(), storage, udp, buf)
}
