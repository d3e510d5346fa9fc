//! Ephemeral local ports, picked at random as a kernel does (rules S2 and S10).

/// First port of the ephemeral range (IANA's dynamic range, RFC 6335). Linux uses
/// 32768-60999 by default (`net.ipv4.ip_local_port_range`).
pub const EPHEMERAL_FIRST: u16 = 49152;
/// Last port of the ephemeral range.
pub const EPHEMERAL_LAST: u16 = 65535;

const RANGE: u32 = (EPHEMERAL_LAST - EPHEMERAL_FIRST) as u32 + 1;

/// A small xorshift generator: each allocation starts at a random point of the range and
/// probes upward for a port nobody uses.
#[derive(Debug, Clone)]
pub struct EphemeralPorts {
    state: u32,
}

impl EphemeralPorts {
    /// A generator seeded from `seed` (any value; 0 is mapped to a fixed non-zero state).
    pub fn new(seed: u64) -> Self {
        let folded = (seed ^ (seed >> 32)) as u32;
        Self {
            state: if folded == 0 { 0x9E37_79B9 } else { folded },
        }
    }

    fn next_random(&mut self) -> u32 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.state = x;
        x
    }

    /// Picks a port for which `in_use` is false, or `None` when the whole range is taken.
    pub fn allocate(&mut self, mut in_use: impl FnMut(u16) -> bool) -> Option<u16> {
        let start = self.next_random() % RANGE;
        (0..RANGE)
            .map(|i| EPHEMERAL_FIRST + ((start + i) % RANGE) as u16)
            .find(|&port| !in_use(port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_stay_in_range_and_vary() {
        let mut ports = EphemeralPorts::new(42);
        let picked: heapless::Vec<u16, 64> =
            (0..64).filter_map(|_| ports.allocate(|_| false)).collect();
        assert_eq!(picked.len(), 64);
        assert!(
            picked
                .iter()
                .all(|p| (EPHEMERAL_FIRST..=EPHEMERAL_LAST).contains(p))
        );
        let first = picked[0];
        assert!(picked.iter().any(|&p| p != first), "ports should be random");
    }

    #[test]
    fn skips_ports_in_use_and_reports_exhaustion() {
        let mut ports = EphemeralPorts::new(7);
        let only = 50000;
        assert_eq!(ports.allocate(|p| p != only), Some(only));
        assert_eq!(ports.allocate(|_| true), None);
    }
}
