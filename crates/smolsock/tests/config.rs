//! `SmolStack::new` refuses addresses a device must not use, with a clear
//! `Error::InvalidConfig` (the host CLI and every board go through it).

use core::net::Ipv4Addr;

use smolsock::Error;
use smolsock::smol::{SmolStack, StackConfig};
use smoltcp::iface::SocketStorage;
use smoltcp::phy::{Loopback, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, Ipv4Cidr};

const MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);

fn config(ip: [u8; 4], len: u8, gateway: Option<[u8; 4]>) -> StackConfig {
    StackConfig {
        mac: MAC,
        ip: Ipv4Cidr::new(Ipv4Addr::from(ip), len),
        gateway: gateway.map(Ipv4Addr::from),
        seed: 1,
    }
}

fn build(config: StackConfig, medium: Medium) -> Result<(), Error> {
    let mut device = Loopback::new(medium);
    let mut storage = [SocketStorage::EMPTY; 2];
    SmolStack::<2>::new(config, &mut device, &mut storage[..], Instant::ZERO).map(|_| ())
}

fn refused(config: StackConfig, medium: Medium, needle: &str) {
    match build(config, medium) {
        Err(Error::InvalidConfig(text)) => assert!(text.contains(needle), "{text}"),
        other => panic!("{config:?}: expected InvalidConfig({needle:?}), got {other:?}"),
    }
}

#[test]
fn network_and_broadcast_addresses_are_not_the_stacks_own() {
    let e = Medium::Ethernet;
    refused(
        config([192, 168, 69, 0], 24, None),
        e,
        "network or broadcast",
    );
    refused(
        config([192, 168, 69, 255], 24, None),
        e,
        "network or broadcast",
    );
    refused(config([10, 0, 0, 4], 30, None), e, "network or broadcast");
    refused(config([10, 0, 0, 7], 30, None), e, "network or broadcast");
    assert_eq!(build(config([10, 0, 0, 5], 30, None), e), Ok(()));
    assert_eq!(build(config([192, 168, 69, 1], 24, None), e), Ok(()));
    // A /31 (RFC 3021, point-to-point) has no network or broadcast address: both are
    // hosts. A /32 is one host.
    assert_eq!(build(config([10, 0, 0, 0], 31, None), e), Ok(()));
    assert_eq!(build(config([10, 0, 0, 1], 31, None), e), Ok(()));
    assert_eq!(build(config([10, 0, 0, 0], 32, None), e), Ok(()));
    assert_eq!(build(config([10, 0, 0, 255], 32, None), e), Ok(()));
}

#[test]
fn gateway_must_be_another_host_of_the_subnet() {
    let e = Medium::Ethernet;
    refused(
        config([192, 168, 69, 1], 24, Some([192, 168, 69, 1])),
        e,
        "another host",
    );
    refused(
        config([192, 168, 69, 1], 24, Some([10, 0, 0, 1])),
        e,
        "inside the interface's subnet",
    );
    assert_eq!(
        build(config([192, 168, 69, 1], 24, Some([192, 168, 69, 254])), e),
        Ok(())
    );
}

#[test]
fn zero_and_multicast_macs_are_refused_on_ethernet_only() {
    let mut zero = config([192, 168, 69, 1], 24, None);
    zero.mac = EthernetAddress([0; 6]);
    refused(zero, Medium::Ethernet, "00:00:00:00:00:00");
    // An IP medium (TUN) has no MAC address: the field is ignored.
    assert_eq!(build(zero, Medium::Ip), Ok(()));
    let mut multicast = zero;
    multicast.mac = EthernetAddress([0x01, 0, 0x5e, 0, 0, 1]);
    refused(multicast, Medium::Ethernet, "unicast");
}
