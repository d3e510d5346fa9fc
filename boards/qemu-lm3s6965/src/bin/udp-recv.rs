//! The seed's UDP receiver on the board: binds port 9090 and logs every datagram with its
//! sender, forever.
//!
//! Boot: `cargo run --release --bin udp-recv` (TAP `tap0`, see README.md). Peer:
//! `echo hi | nc -u -w1 192.168.69.3 9090`; the log shows
//! `udp received 3 bytes from 192.168.69.100:PORT: "hi\n"`.
#![no_std]
#![no_main]

use cortex_m::singleton;
use cortex_m_rt::entry;
use smolsock::programs::RECV_CHUNK;
use smolsock::smol::UdpBuffers;
use smolsock::smoltcp::iface::SocketStorage;
use smolsock_qemu_lm3s6965::Board;

#[entry]
fn main() -> ! {
    let storage = singleton!(: [SocketStorage<'static>; 1] = [SocketStorage::EMPTY; 1]);
    let udp = singleton!(: UdpBuffers<1536, 4> = UdpBuffers::new());
    let buf = singleton!(: [u8; RECV_CHUNK] = [0; RECV_CHUNK]);
    let (Some(storage), Some(udp), Some(buf)) = (storage, udp, buf) else {
        defmt::panic!("statics taken twice");
    };
    smolsock_board::apps::udp_recv(Board::init(), storage, udp, buf)
}
