//! The seed's TCP client on the board: connects to 192.168.69.100:9090, sends
//! three lines on one connection, logs the replies and the outcome, closes,
//! then idles.
//!
//! Peer first, on the PC, an echo server: `ncat -l -k -e /bin/cat 9090`, the
//! Python one in README.md, or just `nc -l 9090` (type the replies); then
//! `cargo run --release --bin tcp-client`.
#![no_std]
#![no_main]

use core::net::SocketAddrV4;

use cortex_m::singleton;
use cortex_m_rt::entry;
use nucleo_f429zi::app::{new_stack, run};
use nucleo_f429zi::config::PEER_ADDRESS;
use smolsock::programs::{TcpClient, TcpClientConfig};
use smolsock::smol::TcpBuffers;
use smolsock::smoltcp::iface::SocketStorage;
use smolsock::smoltcp::time::Duration;

/// The lines the board sends, in order, on one connection.
const LINES: [&[u8]; 3] = [
    b"hello from nucleo-f429zi 1\n",
    b"hello from nucleo-f429zi 2\n",
    b"hello from nucleo-f429zi 3\n",
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
    let (mut device, clock) = nucleo_f429zi::init();
    let mut stack = new_stack::<1>(&mut device, &clock, storage);
    if let Err(e) = stack.add_tcp_buffers(tcp) {
        defmt::panic!("tcp socket: {}", e);
    }
    let config = TcpClientConfig {
        to: SocketAddrV4::new(PEER_ADDRESS, smolsock::DEFAULT_PORT),
        short: false,
        timeout: Duration::from_secs(10),
        bulk: None,
    };
    let mut program = TcpClient::new(config, tx, rx);
    run(device, clock, stack, &mut program, &LINES)
}
