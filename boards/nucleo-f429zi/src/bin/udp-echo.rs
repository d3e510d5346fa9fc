//! Smoke test: UDP echo and TCP echo on port 9090 at 192.168.69.4.
//!
//! Flash and watch the log: `cargo run --release --bin udp-echo`.
//! From the PC (its Ethernet port at 192.168.69.100/24):
//! `nc -u 192.168.69.4 9090` (UDP) or `nc 192.168.69.4 9090` (TCP), then type.
//! Every datagram and every chunk of TCP data is logged over RTT.

#![no_std]
#![no_main]

use core::ptr::addr_of_mut;

use nucleo_f429zi::{self as board, config};

use board::smoltcp::iface::{SocketHandle, SocketSet, SocketStorage};
use board::smoltcp::socket::{tcp, udp};

/// Listening TCP sockets: a second one takes a new connection while the first
/// is still closing.
const TCP_SOCKETS: usize = 2;
const TCP_BUFFER: usize = 4096;
const UDP_BUFFER: usize = 4096;
const UDP_PACKETS: usize = 8;
/// Largest UDP payload in one 1500-byte IPv4 packet.
const MAX_DATAGRAM: usize = 1472;

static mut SOCKET_STORAGE: [SocketStorage<'static>; 1 + TCP_SOCKETS] =
    [SocketStorage::EMPTY; 1 + TCP_SOCKETS];
static mut UDP_RX_META: [udp::PacketMetadata; UDP_PACKETS] =
    [udp::PacketMetadata::EMPTY; UDP_PACKETS];
static mut UDP_RX_DATA: [u8; UDP_BUFFER] = [0; UDP_BUFFER];
static mut UDP_TX_META: [udp::PacketMetadata; UDP_PACKETS] =
    [udp::PacketMetadata::EMPTY; UDP_PACKETS];
static mut UDP_TX_DATA: [u8; UDP_BUFFER] = [0; UDP_BUFFER];
static mut TCP_RX_DATA: [[u8; TCP_BUFFER]; TCP_SOCKETS] = [[0; TCP_BUFFER]; TCP_SOCKETS];
static mut TCP_TX_DATA: [[u8; TCP_BUFFER]; TCP_SOCKETS] = [[0; TCP_BUFFER]; TCP_SOCKETS];
static mut SCRATCH: [u8; MAX_DATAGRAM] = [0; MAX_DATAGRAM];

#[cortex_m_rt::entry]
fn main() -> ! {
    let (mut device, clock) = board::init();
    let mut iface = board::new_interface(&mut device, &clock);

    // SAFETY: `main` runs once and never returns, so these are the only
    // references to the buffers, for the rest of the program.
    let (storage, udp_rx_meta, udp_rx_data, udp_tx_meta, udp_tx_data, tcp_rx, tcp_tx, scratch) = unsafe {
        (
            &mut *addr_of_mut!(SOCKET_STORAGE),
            &mut *addr_of_mut!(UDP_RX_META),
            &mut *addr_of_mut!(UDP_RX_DATA),
            &mut *addr_of_mut!(UDP_TX_META),
            &mut *addr_of_mut!(UDP_TX_DATA),
            &mut *addr_of_mut!(TCP_RX_DATA),
            &mut *addr_of_mut!(TCP_TX_DATA),
            &mut *addr_of_mut!(SCRATCH),
        )
    };

    let mut sockets = SocketSet::new(&mut storage[..]);

    let mut udp = udp::Socket::new(
        udp::PacketBuffer::new(&mut udp_rx_meta[..], &mut udp_rx_data[..]),
        udp::PacketBuffer::new(&mut udp_tx_meta[..], &mut udp_tx_data[..]),
    );
    udp.bind(config::PORT).expect("bind the UDP echo port");
    let udp_handle = sockets.add(udp);

    let mut tcp_buffers = tcp_rx.iter_mut().zip(tcp_tx.iter_mut());
    let tcp_handles: [SocketHandle; TCP_SOCKETS] = core::array::from_fn(|_| {
        let (rx, tx) = tcp_buffers.next().expect("one buffer pair per socket");
        sockets.add(tcp::Socket::new(
            tcp::SocketBuffer::new(&mut rx[..]),
            tcp::SocketBuffer::new(&mut tx[..]),
        ))
    });
    let mut connected = [false; TCP_SOCKETS];

    defmt::info!(
        "udp-echo: UDP and TCP echo on {}:{}; from the PC: nc -u {} {}",
        config::IP_ADDRESS,
        config::PORT,
        config::IP_ADDRESS,
        config::PORT
    );

    let mut next_link_check = 0;
    loop {
        iface.poll(clock.now(), &mut device, &mut sockets);

        udp_echo(sockets.get_mut::<udp::Socket>(udp_handle), scratch);
        for (handle, was_connected) in tcp_handles.iter().zip(connected.iter_mut()) {
            tcp_echo(
                sockets.get_mut::<tcp::Socket>(*handle),
                scratch,
                was_connected,
            );
        }

        if clock.now_ms() >= next_link_check {
            device.poll_link();
            next_link_check = clock.now_ms() + 500;
        }
    }
}

/// Sends every waiting datagram back to where it came from.
fn udp_echo(socket: &mut udp::Socket, buf: &mut [u8]) {
    loop {
        match socket.recv_slice(buf) {
            Ok((len, meta)) => {
                defmt::info!("udp: {} bytes from {}", len, meta.endpoint);
                if let Err(e) = socket.send_slice(&buf[..len], meta.endpoint) {
                    defmt::warn!("udp: echo to {} dropped: {}", meta.endpoint, e);
                }
            }
            Err(udp::RecvError::Exhausted) => break,
            Err(udp::RecvError::Truncated) => {
                defmt::warn!("udp: dropped a datagram over {} bytes", buf.len());
            }
        }
    }
}

/// Echoes what arrived on one TCP socket, as far as its send buffer has room,
/// closes when the peer has closed and everything is echoed, and listens
/// again once the socket is closed.
fn tcp_echo(socket: &mut tcp::Socket, buf: &mut [u8], was_connected: &mut bool) {
    if !socket.is_open() {
        if *was_connected {
            defmt::info!("tcp: connection closed");
            *was_connected = false;
        }
        if let Err(e) = socket.listen(config::PORT) {
            defmt::warn!("tcp: cannot listen: {}", e);
        }
        return;
    }
    let Some(remote) = socket.remote_endpoint() else {
        return; // listening
    };
    if !*was_connected && socket.state() == tcp::State::Established {
        defmt::info!("tcp: connection from {}", remote);
        *was_connected = true;
    }

    // recv/send see only the contiguous part of their rings: loop while they
    // make progress, and only take what can be sent back.
    while socket.can_recv() && socket.can_send() {
        let room = socket.send_capacity() - socket.send_queue();
        let n = room.min(buf.len());
        match socket.recv_slice(&mut buf[..n]) {
            Ok(0) => break,
            Ok(got) => {
                defmt::info!("tcp: {} bytes from {}", got, remote);
                match socket.send_slice(&buf[..got]) {
                    Ok(sent) if sent == got => {}
                    Ok(sent) => defmt::warn!("tcp: echoed only {} of {} bytes", sent, got),
                    Err(e) => defmt::warn!("tcp: echo failed: {}", e),
                }
            }
            Err(e) => {
                defmt::warn!("tcp: receive failed: {}", e);
                break;
            }
        }
    }

    // The peer has closed and everything it sent has been taken: close too,
    // so our FIN follows the echoed data.
    if socket.state() == tcp::State::CloseWait && !socket.can_recv() {
        socket.close();
    }
}
