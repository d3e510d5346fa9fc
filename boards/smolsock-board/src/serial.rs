//! [`Serial`]: a byte link to the host (a UART), for the `remote` firmware, which answers the
//! host's `RemoteStack` calls over it (see `smolsock-remote`).

/// A UART as the remote firmware uses it: non-blocking reads, writes that wait for room.
///
/// The remote protocol frames its messages itself (COBS, a CRC-32, a 0x00 delimiter), so a
/// driver only moves bytes: it neither checks nor adds anything.
pub trait Serial {
    /// Takes the bytes that have arrived, up to `buf.len()`, without waiting; returns how
    /// many (0: none yet). Bytes lost to an overrun are simply missing: the protocol's
    /// checksum notices.
    fn read(&mut self, buf: &mut [u8]) -> usize;

    /// Writes every byte of `bytes`, waiting for room in the transmitter as needed.
    fn write_all(&mut self, bytes: &[u8]);

    /// Whether a received byte is waiting, so that the board's sleep can end on it.
    fn rx_pending(&self) -> bool;
}
