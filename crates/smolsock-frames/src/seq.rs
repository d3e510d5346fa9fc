//! TCP sequence numbers relative to each connection's initial sequence number (ISN), as
//! tcpdump and Wireshark show them: a connection's SYN has sequence number 0, its first
//! data byte 1, and the other side's ACK of the SYN says 1.

use std::collections::HashMap;
use std::net::SocketAddrV4;

use crate::packet::TcpSegment;

/// A segment's numbers, relative to the ISNs of its connection.
///
/// A number whose ISN was not seen (the capture began after the SYN) stays as it was on
/// the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relative {
    /// Sequence number, relative to the sender's ISN.
    pub seq: u32,
    /// Acknowledgment number, relative to the receiver's ISN; `None` without the ACK flag.
    pub ack: Option<u32>,
}

/// The ISN of each direction of each connection seen so far.
///
/// Feed it every segment in the order they went by: a SYN (or SYN-ACK) records its
/// sender's ISN, so a new connection on the same addresses and ports starts again at 0.
#[derive(Debug, Clone, Default)]
pub struct Sequences {
    /// By (sender, receiver).
    isn: HashMap<(SocketAddrV4, SocketAddrV4), u32>,
}

impl Sequences {
    /// No connection seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes `segment` (a SYN records an ISN) and returns its relative numbers.
    pub fn relative(&mut self, segment: &TcpSegment) -> Relative {
        let (from, to) = (segment.src, segment.dst);
        if segment.syn {
            self.isn.insert((from, to), segment.seq);
        }
        let relative = |n: u32, isn: Option<&u32>| isn.map_or(n, |isn| n.wrapping_sub(*isn));
        Relative {
            seq: relative(segment.seq, self.isn.get(&(from, to))),
            ack: segment
                .ack
                .then(|| relative(segment.ack_number, self.isn.get(&(to, from)))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(from_client: bool, syn: bool, ack: Option<u32>, seq: u32) -> TcpSegment {
        let client: SocketAddrV4 = "10.0.0.1:5000".parse().unwrap();
        let server: SocketAddrV4 = "10.0.0.2:80".parse().unwrap();
        let (src, dst) = if from_client {
            (client, server)
        } else {
            (server, client)
        };
        TcpSegment {
            src,
            dst,
            syn,
            ack: ack.is_some(),
            fin: false,
            rst: false,
            psh: false,
            seq,
            ack_number: ack.unwrap_or(0),
            len: 0,
            window: 0,
        }
    }

    #[test]
    fn numbers_count_from_each_sides_isn_across_the_wrap() {
        let mut seqs = Sequences::new();
        let rel = |s: &mut Sequences, from_client, syn, ack, seq| {
            s.relative(&segment(from_client, syn, ack, seq))
        };
        assert_eq!(
            rel(&mut seqs, true, true, None, u32::MAX),
            Relative { seq: 0, ack: None }
        );
        assert_eq!(
            rel(&mut seqs, false, true, Some(0), 500),
            Relative {
                seq: 0,
                ack: Some(1)
            }
        );
        assert_eq!(
            rel(&mut seqs, true, false, Some(501), 0),
            Relative {
                seq: 1,
                ack: Some(1)
            }
        );
        // A new connection on the same ports starts again at 0.
        assert_eq!(rel(&mut seqs, true, true, None, 7).seq, 0);
    }

    #[test]
    fn without_the_syn_numbers_stay_as_on_the_wire() {
        let mut seqs = Sequences::new();
        assert_eq!(
            seqs.relative(&segment(false, false, Some(1234), 99)),
            Relative {
                seq: 99,
                ack: Some(1234)
            }
        );
    }
}
