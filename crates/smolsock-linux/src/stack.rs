//! Building a [`SmolStack`] on the host, with socket storage on the heap.
//!
//! A board keeps socket buffers in `static`s; the host hands the stack vectors it owns
//! (smoltcp's `ManagedSlice::Owned`), freed with the stack.

use smolsock::smol::{SmolStack, StackConfig};
use smoltcp::iface::SocketStorage;
use smoltcp::phy::Device;
use smoltcp::socket::udp;
use smoltcp::time::Instant;

/// Most TCP (and, separately, UDP) sockets a host stack manages.
pub const HOST_SOCKETS: usize = 64;

/// The stack type every host program runs on.
pub type HostStack = SmolStack<'static, HOST_SOCKETS>;

/// How many sockets and how large their buffers.
#[derive(Debug, Clone, Copy)]
pub struct Sizing {
    /// TCP sockets in the pool.
    pub tcp_sockets: usize,
    /// Bytes in each TCP ring (receive and transmit each).
    pub tcp_buf: usize,
    /// UDP sockets in the pool.
    pub udp_sockets: usize,
    /// Payload bytes in each UDP packet buffer.
    pub udp_buf: usize,
    /// Datagrams each UDP packet buffer holds.
    pub udp_packets: usize,
}

impl Default for Sizing {
    fn default() -> Self {
        Self {
            tcp_sockets: 8,
            tcp_buf: 64 * 1024,
            udp_sockets: 2,
            udp_buf: 64 * 1024,
            udp_packets: 64,
        }
    }
}

/// What [`random_seed`] and [`seed_or_config_error`] say when the operating system gives no
/// random numbers.
pub const NO_SEED: &str = "the operating system gave no random numbers for the stack's seed";

/// 64 bits from the operating system's random source (`getrandom(2)`), for the stack's seed:
/// TCP initial sequence numbers and ephemeral ports come from it, and guessable ones make
/// forged segments easy.
pub fn random_seed() -> Result<u64, String> {
    getrandom::u64().map_err(|e| {
        format!("cannot seed TCP sequence numbers and ephemeral ports: {NO_SEED} ({e})")
    })
}

/// [`random_seed`] where errors are [`smolsock::Error`] values.
pub fn seed_or_config_error() -> smolsock::Result<u64> {
    random_seed().map_err(|_| smolsock::Error::InvalidConfig(NO_SEED))
}

/// Creates a stack on `device` with the given addresses and pools.
pub fn build_stack<D: Device + ?Sized>(
    device: &mut D,
    config: StackConfig,
    sizing: Sizing,
) -> smolsock::Result<HostStack> {
    let count = sizing.tcp_sockets + sizing.udp_sockets;
    let storage: Vec<SocketStorage<'static>> = (0..count).map(|_| SocketStorage::EMPTY).collect();
    let mut stack = SmolStack::new(config, device, storage, Instant::now())?;
    for _ in 0..sizing.tcp_sockets {
        stack.add_tcp(vec![0u8; sizing.tcp_buf], vec![0u8; sizing.tcp_buf])?;
    }
    for _ in 0..sizing.udp_sockets {
        stack.add_udp(
            vec![udp::PacketMetadata::EMPTY; sizing.udp_packets],
            vec![0u8; sizing.udp_buf],
            vec![udp::PacketMetadata::EMPTY; sizing.udp_packets],
            vec![0u8; sizing.udp_buf],
        )?;
    }
    Ok(stack)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_come_from_the_operating_system_and_differ() {
        let seeds: Vec<u64> = (0..4).map(|_| random_seed().unwrap()).collect();
        // Four equal 64-bit draws from a working random source do not happen.
        assert!(seeds.windows(2).any(|w| w[0] != w[1]), "{seeds:?}");
    }
}
