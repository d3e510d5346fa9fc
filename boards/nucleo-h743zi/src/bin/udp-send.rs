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
use nucleo_h743zi::app::{new_stack, run};
use nucleo_h743zi::config::PEER_ADDRESS;
use smolsock::programs::{UdpSender, UdpSenderConfig};
use smolsock::smol::UdpBuffers;
use smolsock::smoltcp::iface::SocketStorage;
use smolsock::smoltcp::time::Duration;

/// What the board sends, one datagram each.
const MESSAGES: [&[u8]; 3] = [
    b"hello from nucleo-h743zi 1",
    b"hello from nucleo-h743zi 2",
    b"hello from nucleo-h743zi 3",
];

#[entry]
fn main() -> ! {
    let storage = singleton!(: [SocketStorage<'static>; 1] = [SocketStorage::EMPTY; 1]);
    let udp = singleton!(: UdpBuffers<2048, 4> = UdpBuffers::new());
    let buf = singleton!(: [u8; 512] = [0; 512]);
    let (Some(storage), Some(udp), Some(buf)) = (storage, udp, buf) else {
        defmt::panic!("statics taken twice");
    };
    let (mut device, clock) = nucleo_h743zi::init();
    let mut stack = new_stack::<1>(&mut device, &clock, storage);
    if let Err(e) = stack.add_udp_buffers(udp) {
        defmt::panic!("udp socket: {}", e);
    }
    let config = UdpSenderConfig {
        to: SocketAddrV4::new(PEER_ADDRESS, smolsock::DEFAULT_PORT),
        flush_timeout: Duration::from_secs(5),
    };
    let mut program = UdpSender::new(config, buf);
    run(device, clock, stack, &mut program, &MESSAGES)
}
