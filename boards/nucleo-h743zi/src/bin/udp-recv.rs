//! The seed's UDP receiver on the board: binds port 9090 and logs every
//! datagram with its sender, forever.
//!
//! Flash: `cargo run --release --bin udp-recv`. Peer (the PC at
//! 192.168.69.100): `nc -u 192.168.69.5 9090`, type lines; the log shows
//! `udp received 3 bytes from 192.168.69.100:PORT: "hi\n"`.
#![no_std]
#![no_main]

use cortex_m::singleton;
use cortex_m_rt::entry;
use nucleo_h743zi::app::{new_stack, run};
use smolsock::programs::{UdpReceiver, UdpReceiverConfig, RECV_CHUNK};
use smolsock::smol::UdpBuffers;
use smolsock::smoltcp::iface::SocketStorage;

/// Payload bytes of the UDP socket's receive (and transmit) ring.
const UDP_BUFFER: usize = 8192;
/// Datagrams the receive ring holds.
const UDP_PACKETS: usize = 16;

#[entry]
fn main() -> ! {
    let storage = singleton!(: [SocketStorage<'static>; 1] = [SocketStorage::EMPTY; 1]);
    let udp = singleton!(: UdpBuffers<UDP_BUFFER, UDP_PACKETS> = UdpBuffers::new());
    let buf = singleton!(: [u8; RECV_CHUNK] = [0; RECV_CHUNK]);
    let (Some(storage), Some(udp), Some(buf)) = (storage, udp, buf) else {
        defmt::panic!("statics taken twice");
    };
    let (mut device, clock) = nucleo_h743zi::init();
    let mut stack = new_stack::<1>(&mut device, &clock, storage);
    if let Err(e) = stack.add_udp_buffers(udp) {
        defmt::panic!("udp socket: {}", e);
    }
    let config = UdpReceiverConfig {
        port: smolsock::DEFAULT_PORT,
        count: None,
    };
    let mut program = UdpReceiver::new(config, buf);
    run(device, clock, stack, &mut program, &[])
}
