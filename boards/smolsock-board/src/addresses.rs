//! The boards' address plan: every board is on 192.168.69.0/24, the network of the host's
//! TAP (the emulated board) or of the PC at the other end of the cable (the Nucleos), with
//! the PC at 192.168.69.100. Board `n` is 192.168.69.`n` with the locally administered MAC
//! 02:00:00:00:00:`n`: the emulated board is 3, the NUCLEO-F429ZI 4, the NUCLEO-H743ZI 5.

use smolsock::smol::StackConfig;
use smolsock::smoltcp::wire::{EthernetAddress, Ipv4Address, Ipv4Cidr};

/// Prefix length of the boards' network.
pub const PREFIX_LEN: u8 = 24;

/// The PC: the Linux side of the TAP, or the PC's Ethernet port at the other end of the
/// cable. The programs that send (`tcp_client`, `udp_send`) send to it.
pub const PEER_ADDRESS: Ipv4Address = Ipv4Address::new(192, 168, 69, 100);

/// Board `n`'s MAC address, 02:00:00:00:00:`n` (locally administered, unicast).
pub const fn mac_address(n: u8) -> EthernetAddress {
    EthernetAddress([0x02, 0, 0, 0, 0, n])
}

/// Board `n`'s IPv4 address, 192.168.69.`n`.
pub const fn ip_address(n: u8) -> Ipv4Address {
    Ipv4Address::new(192, 168, 69, n)
}

/// Board `n`'s stack: its MAC and its address on the /24, no gateway, and `seed` (which
/// should differ between boots).
pub fn stack_config(n: u8, seed: u64) -> StackConfig {
    StackConfig {
        mac: mac_address(n),
        ip: Ipv4Cidr::new(ip_address(n), PREFIX_LEN),
        gateway: None,
        seed,
    }
}

/// Logs board `n`'s addresses, as a Nucleo does once its Ethernet runs:
/// `eth: MAC 02-00-00-00-00-04, IPv4 192.168.69.4/24`.
pub fn log(n: u8) {
    defmt::info!(
        "eth: MAC {}, IPv4 {}",
        mac_address(n),
        Ipv4Cidr::new(ip_address(n), PREFIX_LEN)
    );
}
