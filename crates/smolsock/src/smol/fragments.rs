//! Fragmented UDP datagrams on their way to being reassembled, so that one whose fragments
//! never all arrive is reported lost instead of vanishing.
//!
//! smoltcp reassembles in a few buffers and drops an incomplete datagram silently when its
//! timeout passes (or never reassembles at all without its fragmentation feature). The
//! ingress gate notes every fragment addressed to the stack; the first fragment (offset 0)
//! carries the UDP header, so it names the destination port. A datagram that a socket's
//! receive queue took is complete; one still pending after the timeout is lost.

use core::net::Ipv4Addr;

use heapless::Vec;
use smoltcp::time::{Duration, Instant};

/// How many incomplete datagrams are followed at once; beyond that the oldest is given up
/// (smoltcp holds fewer reassembly buffers than this, so it has given it up already).
pub(super) const TRACKED: usize = 8;

/// One datagram some of whose fragments have arrived.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pending {
    src: Ipv4Addr,
    ident: u16,
    /// The UDP destination port, once the first fragment arrived.
    pub(super) port: Option<u16>,
    since: Instant,
}

/// The datagrams being reassembled.
#[derive(Debug, Default)]
pub(super) struct Reassembly {
    pending: Vec<Pending, TRACKED>,
}

impl Reassembly {
    /// Notes a fragment of datagram `ident` from `src` (`port`: from the first fragment).
    /// Returns a datagram given up to make room, if any.
    pub(super) fn seen(
        &mut self,
        src: Ipv4Addr,
        ident: u16,
        port: Option<u16>,
        now: Instant,
    ) -> Option<Pending> {
        if let Some(p) = self
            .pending
            .iter_mut()
            .find(|p| p.src == src && p.ident == ident)
        {
            p.port = p.port.or(port);
            return None;
        }
        let entry = Pending {
            src,
            ident,
            port,
            since: now,
        };
        let mut given_up = None;
        if self.pending.is_full() {
            // Entries are in arrival order: the first is the oldest.
            given_up = Some(self.pending.remove(0));
        }
        // Cannot fail: room was made above.
        let _ = self.pending.push(entry);
        given_up
    }

    /// The port of datagram `ident` from `src`, once its first fragment arrived.
    pub(super) fn port_of(&self, src: Ipv4Addr, ident: u16) -> Option<u16> {
        self.pending
            .iter()
            .find(|p| p.src == src && p.ident == ident)
            .and_then(|p| p.port)
    }

    /// The datagram `ident` from `src` was delivered (or will never be ours to report).
    pub(super) fn done(&mut self, src: Ipv4Addr, ident: u16) {
        self.pending.retain(|p| !(p.src == src && p.ident == ident));
    }

    /// Removes and hands to `lost` every datagram pending for `timeout` or longer.
    pub(super) fn expire(
        &mut self,
        now: Instant,
        timeout: Duration,
        lost: &mut impl FnMut(Pending),
    ) {
        self.pending.retain(|p| {
            if now >= p.since + timeout {
                lost(*p);
                false
            } else {
                true
            }
        });
    }

    /// When the oldest pending datagram expires.
    pub(super) fn next_expiry(&self, timeout: Duration) -> Option<Instant> {
        self.pending.first().map(|p| p.since + timeout)
    }
}
