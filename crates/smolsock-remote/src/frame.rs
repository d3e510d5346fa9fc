//! Framing: a message is postcard-encoded, a CRC-32 of it is appended (little-endian), the
//! whole is COBS-encoded (so it holds no 0x00) and a 0x00 ends it. A receiver cuts the
//! stream at each 0x00 ([`Assembler`]), so a byte lost or garbled costs one frame, and the
//! next frame is read correctly.

use serde::{Deserialize, Serialize};

use crate::wire::MAX_DATA;

/// The largest postcard encoding of a message: [`MAX_DATA`] bytes of payload and the
/// message around them (tags, a handle, an address, lengths).
pub const MAX_MESSAGE: usize = MAX_DATA + 48;
/// A message and its CRC-32.
pub const MAX_PLAIN: usize = MAX_MESSAGE + 4;
/// The largest frame on the wire, its 0x00 included.
pub const MAX_FRAME: usize = cobs::max_encoding_length(MAX_PLAIN) + 1;

const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// Why a frame was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FrameError {
    /// Not valid COBS (a byte lost or changed on the line).
    Framing,
    /// The CRC-32 does not match (a byte lost or changed on the line).
    Checksum,
    /// The CRC matched but the message is not one this version knows.
    Message,
    /// The message does not fit in a frame (a bug of the sender: payloads are capped).
    TooLarge,
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            FrameError::Framing => "a frame that is not valid COBS",
            FrameError::Checksum => "a frame whose CRC-32 does not match",
            FrameError::Message => "a frame with a message this protocol version does not know",
            FrameError::TooLarge => "a message too large for one frame",
        })
    }
}

/// Encodes `message` as one frame in `out` (at least [`MAX_FRAME`] bytes), using
/// `scratch` (at least [`MAX_PLAIN`]); returns the frame, its closing 0x00 included.
pub fn encode<'o, T: Serialize>(
    message: &T,
    scratch: &mut [u8],
    out: &'o mut [u8],
) -> Result<&'o [u8], FrameError> {
    let room = scratch.len().saturating_sub(4);
    let body = scratch.get_mut(..room).ok_or(FrameError::TooLarge)?;
    let len = postcard::to_slice(message, body)
        .map_err(|_| FrameError::TooLarge)?
        .len();
    let crc = CRC.checksum(scratch.get(..len).ok_or(FrameError::TooLarge)?);
    scratch
        .get_mut(len..len + 4)
        .ok_or(FrameError::TooLarge)?
        .copy_from_slice(&crc.to_le_bytes());
    let plain = scratch.get(..len + 4).ok_or(FrameError::TooLarge)?;
    if out.len() < cobs::max_encoding_length(plain.len()) + 1 {
        return Err(FrameError::TooLarge);
    }
    let n = cobs::encode(plain, out);
    *out.get_mut(n).ok_or(FrameError::TooLarge)? = 0;
    out.get(..=n).ok_or(FrameError::TooLarge)
}

/// Decodes one frame, without its closing 0x00, in place.
pub fn decode<'a, T: Deserialize<'a>>(frame: &'a mut [u8]) -> Result<T, FrameError> {
    let len = cobs::decode_in_place(frame).map_err(|_| FrameError::Framing)?;
    let plain = frame.get(..len).ok_or(FrameError::Framing)?;
    let split = len.checked_sub(4).ok_or(FrameError::Checksum)?;
    let (body, crc) = plain.split_at(split);
    let sent = u32::from_le_bytes(crc.try_into().map_err(|_| FrameError::Checksum)?);
    if CRC.checksum(body) != sent {
        return Err(FrameError::Checksum);
    }
    postcard::from_bytes(body).map_err(|_| FrameError::Message)
}

/// Cuts a byte stream into frames at each 0x00. A frame longer than `N` bytes is dropped
/// whole (everything up to its 0x00), so garbage without delimiters cannot fill memory.
#[derive(Debug)]
pub struct Assembler<const N: usize> {
    buf: [u8; N],
    len: usize,
    /// The frame under way is too long: skip to its 0x00.
    discarding: bool,
    /// Frames dropped for their length.
    oversized: u32,
}

impl<const N: usize> Default for Assembler<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Assembler<N> {
    /// An empty assembler.
    pub const fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
            discarding: false,
            oversized: 0,
        }
    }

    /// Takes bytes from the front of `bytes` until a frame is complete; returns how many
    /// it took and whether a frame is complete (then [`frame`](Self::frame) gives it, and
    /// [`clear`](Self::clear) must come before the next `push`).
    pub fn push(&mut self, bytes: &[u8]) -> (usize, bool) {
        for (taken, &byte) in bytes.iter().enumerate() {
            if byte == 0 {
                if core::mem::take(&mut self.discarding) {
                    self.oversized = self.oversized.wrapping_add(1);
                    self.len = 0;
                    continue;
                }
                if self.len == 0 {
                    // An empty frame: a delimiter sent to resynchronise.
                    continue;
                }
                return (taken + 1, true);
            }
            if self.discarding {
                continue;
            }
            match self.buf.get_mut(self.len) {
                Some(slot) => {
                    *slot = byte;
                    self.len += 1;
                }
                None => {
                    self.discarding = true;
                    self.len = 0;
                }
            }
        }
        (bytes.len(), false)
    }

    /// The complete frame, without its 0x00 (after `push` said one is complete).
    pub fn frame(&mut self) -> &mut [u8] {
        let len = self.len;
        self.buf.get_mut(..len).unwrap_or_default()
    }

    /// Forgets the frame, to start the next.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Frames dropped because they were longer than `N`.
    pub fn oversized(&self) -> u32 {
        self.oversized
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Call, Request};

    fn frame_of(request: &Request<'_>) -> Vec<u8> {
        let mut scratch = [0; MAX_PLAIN];
        let mut out = [0; MAX_FRAME];
        encode(request, &mut scratch, &mut out).unwrap().to_vec()
    }

    #[test]
    fn a_frame_round_trips_and_holds_no_zero_but_its_end() {
        let data = [0u8; MAX_DATA];
        let request = Request {
            seq: 7,
            call: Call::TcpSend {
                socket: u64::MAX,
                data: &data,
            },
        };
        let frame = frame_of(&request);
        assert!(frame.len() <= MAX_FRAME);
        assert_eq!(frame.iter().position(|&b| b == 0), Some(frame.len() - 1));
        let mut body = frame[..frame.len() - 1].to_vec();
        assert_eq!(decode::<Request<'_>>(&mut body), Ok(request));
    }

    #[test]
    fn a_changed_byte_is_caught() {
        let request = Request {
            seq: 1,
            call: Call::UdpOpen,
        };
        let frame = frame_of(&request);
        for at in 0..frame.len() - 1 {
            for flip in [1u8, 0x80, 0xff] {
                let mut body = frame[..frame.len() - 1].to_vec();
                body[at] ^= flip;
                if body[at] == 0 {
                    continue;
                }
                assert!(
                    decode::<Request<'_>>(&mut body).is_err(),
                    "byte {at} ^ {flip:#x} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn the_assembler_cuts_at_zeros_and_drops_what_is_too_long() {
        let mut frames = Assembler::<8>::new();
        let stream = [0, 1, 2, 0, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 0, 3, 0];
        let mut got = Vec::new();
        let mut rest = &stream[..];
        while !rest.is_empty() {
            let (taken, done) = frames.push(rest);
            rest = &rest[taken..];
            if done {
                got.push(frames.frame().to_vec());
                frames.clear();
            }
        }
        assert_eq!(got, vec![vec![1, 2], vec![3]]);
        assert_eq!(frames.oversized(), 1);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for garbage in [&[][..], &[1], &[2, 0xff], &[5, 1, 2, 3, 4], &[0xff; 40]] {
            let mut body = garbage.to_vec();
            assert!(decode::<Request<'_>>(&mut body).is_err());
        }
    }
}
