//! A listener: `backlog` pool sockets listening on one port, and the rules that keep it
//! from being locked out (half-open connections expire, the oldest gives way to a new SYN).

use heapless::Vec;
use smoltcp::iface::SocketHandle;
use smoltcp::time::{Duration, Instant};

/// How long a half-open connection (SYN received, SYN-ACK sent, no ACK yet) may hold a
/// listening socket by default. Linux retries its SYN-ACK for about a minute, but it
/// keeps half-open connections outside its accept queue (and falls back to SYN cookies);
/// a pool of a few sockets cannot afford that, and a real client answers within a round
/// trip. Three seconds covers the SYN-ACK and two retransmissions.
pub const DEFAULT_SYN_TIMEOUT: Duration = Duration::from_secs(3);

/// What a listener does with a SYN that finds no listening socket free (every socket of its
/// backlog holds a connection waiting to be accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum WhenFull {
    /// Drop it silently, as Linux does: the client retransmits its SYN and is served once
    /// the program accepts a connection and room is made.
    #[default]
    Drop,
    /// Answer with a reset, as plain smoltcp does: the client's `connect` fails at once
    /// with "connection refused".
    Reset,
}

/// The rules a [`SmolStack`](super::SmolStack) applies to every listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ListenPolicy {
    /// A half-open connection older than this is dropped silently and its socket listens
    /// again.
    pub syn_timeout: Duration,
    /// What a SYN that finds no listening socket free gets.
    pub when_full: WhenFull,
}

impl Default for ListenPolicy {
    fn default() -> Self {
        Self {
            syn_timeout: DEFAULT_SYN_TIMEOUT,
            when_full: WhenFull::Drop,
        }
    }
}

/// One pool socket of a listener.
#[derive(Debug, Clone, Copy)]
pub(super) struct Member {
    pub(super) handle: SocketHandle,
    /// When the socket was first seen half-open (SYN-RECEIVED); `None` otherwise.
    pub(super) half_open_since: Option<Instant>,
}

/// A listening port and its sockets.
#[derive(Debug)]
pub(super) struct Listener<const N: usize> {
    pub(super) port: u16,
    pub(super) backlog: usize,
    pub(super) pool: Vec<Member, N>,
}

impl<const N: usize> Listener<N> {
    pub(super) fn new(port: u16, backlog: usize) -> Self {
        Self {
            port,
            backlog,
            pool: Vec::new(),
        }
    }

    /// The half-open socket that has waited longest for its handshake to complete.
    pub(super) fn oldest_half_open(&self) -> Option<SocketHandle> {
        self.pool
            .iter()
            .filter_map(|m| m.half_open_since.map(|since| (since, m.handle)))
            .min_by_key(|&(since, _)| since)
            .map(|(_, handle)| handle)
    }

    /// When the oldest half-open socket expires.
    pub(super) fn next_expiry(&self, timeout: Duration) -> Option<Instant> {
        self.pool
            .iter()
            .filter_map(|m| m.half_open_since)
            .min()
            .map(|since| since + timeout)
    }
}
