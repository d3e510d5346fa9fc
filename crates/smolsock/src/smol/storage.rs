//! Socket buffers with a size known at compile time, so a board can keep them in `static`s.
//!
//! The host passes vectors it owns instead (smoltcp's `ManagedSlice::Owned`); both end up in
//! [`SmolStack::add_tcp`](super::SmolStack::add_tcp) and
//! [`SmolStack::add_udp`](super::SmolStack::add_udp).

use smoltcp::socket::udp;

/// Receive and transmit rings of one TCP socket, `N` bytes each.
pub struct TcpBuffers<const N: usize> {
    pub(super) rx: [u8; N],
    pub(super) tx: [u8; N],
}

impl<const N: usize> TcpBuffers<N> {
    /// Zeroed buffers (a `const fn`, for `static`s).
    pub const fn new() -> Self {
        Self {
            rx: [0; N],
            tx: [0; N],
        }
    }
}

impl<const N: usize> Default for TcpBuffers<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// Receive and transmit packet buffers of one UDP socket: `N` payload bytes and room for
/// `M` datagrams in each direction.
pub struct UdpBuffers<const N: usize, const M: usize> {
    pub(super) rx: [u8; N],
    pub(super) tx: [u8; N],
    pub(super) rx_meta: [udp::PacketMetadata; M],
    pub(super) tx_meta: [udp::PacketMetadata; M],
}

impl<const N: usize, const M: usize> UdpBuffers<N, M> {
    /// Empty buffers (a `const fn`, for `static`s).
    pub const fn new() -> Self {
        Self {
            rx: [0; N],
            tx: [0; N],
            rx_meta: [udp::PacketMetadata::EMPTY; M],
            tx_meta: [udp::PacketMetadata::EMPTY; M],
        }
    }
}

impl<const N: usize, const M: usize> Default for UdpBuffers<N, M> {
    fn default() -> Self {
        Self::new()
    }
}
