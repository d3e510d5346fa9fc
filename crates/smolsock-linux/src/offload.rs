//! TCP segmentation and checksum offload on a TAP: the virtio-net header in front of each
//! frame (`IFF_VNET_HDR`), large TCP segments from the kernel, and the stack's segments
//! merged into large ones on their way to the kernel.
//!
//! Without offload every TCP segment crosses the TAP on its own: one `read(2)` or
//! `write(2)` and one pass through the kernel's receive path per 1,460 bytes. With it
//! (`TUNSETOFFLOAD` with `TUN_F_CSUM | TUN_F_TSO4`), the kernel hands over a TCP burst of
//! up to 64 KiB as one frame, which smoltcp takes as one segment (it checks only that a
//! segment lies in its receive window, not its size); and consecutive segments the stack
//! sends on one connection, as they leave in one go, are merged ([`Coalescer`]) into one
//! frame the kernel takes as the segments it stands for (`VIRTIO_NET_HDR_GSO_TCPV4`).
//!
//! Frames stay whole and valid on both sides: a checksum the kernel left for the device to
//! finish (`VIRTIO_NET_HDR_F_NEEDS_CSUM`) is finished here, so smoltcp and the ingress
//! gate check it as they check any other, and a merged frame carries its own complete
//! checksum, so a capture on the kernel's side (`AF_PACKET`) reads valid segments, only
//! larger ones.

/// Length of the virtio-net header (`struct virtio_net_hdr`, without the mergeable-buffer
/// count) in front of every frame read from or written to a TAP with offload.
pub const VNET_HDR_LEN: usize = 10;

const NEEDS_CSUM: u8 = 1;
/// `gso_type`: not a large segment.
const GSO_NONE: u8 = 0;
/// `gso_type`: a large TCP/IPv4 segment.
const GSO_TCPV4: u8 = 1;

const ETHERNET_HEADER: usize = 14;
const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const IPV4_HEADER: usize = 20;
const TCP_HEADER: usize = 20;
const PROTO_TCP: u8 = 6;
/// Largest IPv4 packet, the bound of a merged frame.
const IPV4_MAX: usize = 65535;

/// TCP flags.
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

/// The header's fields (native byte order: a TAP does not set `TUNSETVNETLE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VnetHdr {
    /// `VIRTIO_NET_HDR_F_*`.
    pub flags: u8,
    /// `VIRTIO_NET_HDR_GSO_*`.
    pub gso_type: u8,
    /// Length of the headers in front of the payload (a hint).
    pub hdr_len: u16,
    /// Payload bytes per segment of a large one.
    pub gso_size: u16,
    /// Where the checksummed part starts, for `NEEDS_CSUM`.
    pub csum_start: u16,
    /// Where in it the checksum goes, for `NEEDS_CSUM`.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Reads a header from the front of `bytes`.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let b = bytes.get(..VNET_HDR_LEN)?;
        let u16_at = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        Some(Self {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        })
    }

    /// The header's bytes.
    pub fn to_bytes(self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        for (i, v) in [
            (2, self.hdr_len),
            (4, self.gso_size),
            (6, self.csum_start),
            (8, self.csum_offset),
        ] {
            b[i..i + 2].copy_from_slice(&v.to_ne_bytes());
        }
        b
    }
}

/// The ones' complement sum of `data` (as big-endian 16-bit words, an odd last byte padded
/// with zero) added to `sum`, not yet folded.
///
/// The sum does not depend on byte order but for a final swap (RFC 1071), so the words are
/// added in the machine's order, 32 bits at a time into 64-bit lanes that cannot overflow
/// (a frame has far fewer than 2^32 words), which the compiler turns into vector adds.
pub fn sum(data: &[u8], sum: u64) -> u64 {
    let mut lanes = [0u64; 4];
    let mut blocks = data.chunks_exact(16);
    for block in &mut blocks {
        for (lane, word) in lanes.iter_mut().zip(block.chunks_exact(4)) {
            *lane += u64::from(u32::from_ne_bytes([word[0], word[1], word[2], word[3]]));
        }
    }
    let mut native = lanes.iter().fold(0u64, |a, &l| add(a, l));
    let mut rest = blocks.remainder().chunks_exact(2);
    for pair in &mut rest {
        native = add(native, u64::from(u16::from_ne_bytes([pair[0], pair[1]])));
    }
    if let [last] = rest.remainder() {
        native = add(native, u64::from(u16::from_ne_bytes([*last, 0])));
    }
    let folded = u64::from(fold(native));
    let be = if cfg!(target_endian = "little") {
        u64::from((folded as u16).swap_bytes())
    } else {
        folded
    };
    add(sum, be)
}

/// `a + b` in 64-bit ones' complement: the carry out goes back in.
fn add(a: u64, b: u64) -> u64 {
    let (s, carry) = a.overflowing_add(b);
    s + u64::from(carry)
}

/// `sum` folded to 16 bits.
pub fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Finishes a checksum the kernel left to the device: the ones' complement of the sum from
/// `start` to the end of `frame` goes at `start + offset` (which held the pseudo-header's
/// sum). `false` when the offsets lie outside the frame.
pub fn finish_checksum(frame: &mut [u8], start: usize, offset: usize) -> bool {
    let at = start.saturating_add(offset);
    if at.saturating_add(2) > frame.len() {
        return false;
    }
    let Some(part) = frame.get(start..) else {
        return false;
    };
    let value = !fold(sum(part, 0));
    frame[at..at + 2].copy_from_slice(&value.to_be_bytes());
    true
}

/// Makes a frame read with its virtio-net header whole: finishes its checksum when the
/// kernel left it to the device. `false`: the header makes no sense for the frame (drop
/// it).
pub fn complete_rx(hdr: VnetHdr, frame: &mut [u8]) -> bool {
    if hdr.flags & NEEDS_CSUM == 0 {
        return true;
    }
    finish_checksum(
        frame,
        usize::from(hdr.csum_start),
        usize::from(hdr.csum_offset),
    )
}

/// The parts of an Ethernet/IPv4/TCP frame the merging looks at.
#[derive(Debug, Clone, Copy)]
struct Tcp {
    /// Offset of the TCP header.
    tcp: usize,
    /// Offset of the payload.
    payload: usize,
    seq: u32,
    flags: u8,
}

/// The frame as a TCP/IPv4 data segment that may be merged: no IP options or fragments,
/// only ACK (and PSH) set, and some payload.
fn data_segment(frame: &[u8]) -> Option<Tcp> {
    let eth = frame.get(..ETHERNET_HEADER)?;
    if eth[12..14] != ETHERTYPE_IPV4 {
        return None;
    }
    let ip = frame.get(ETHERNET_HEADER..ETHERNET_HEADER + IPV4_HEADER)?;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff;
    if ip[0] != 0x45 || ip[9] != PROTO_TCP || fragment != 0 {
        return None;
    }
    if ETHERNET_HEADER + total != frame.len() {
        return None;
    }
    let tcp = ETHERNET_HEADER + IPV4_HEADER;
    let th = frame.get(tcp..tcp + TCP_HEADER)?;
    let header = usize::from(th[12] >> 4) * 4;
    let flags = th[13];
    let payload = tcp + header;
    if header < TCP_HEADER
        || payload >= frame.len()
        || flags & (FIN | SYN | RST) != 0
        || flags & !(ACK | PSH) != 0
    {
        return None;
    }
    let seq = u32::from_be_bytes([th[4], th[5], th[6], th[7]]);
    Some(Tcp {
        tcp,
        payload,
        seq,
        flags,
    })
}

/// The ones' complement sum of the payload of `frame` (a [`data_segment`]), from its
/// checksum: what is left of it without the pseudo-header and the TCP header.
fn payload_sum(frame: &[u8], seg: Tcp) -> u64 {
    let ip = ETHERNET_HEADER;
    let check = seg.tcp + 16;
    let mut pseudo = [0u8; 12];
    pseudo[..8].copy_from_slice(&frame[ip + 12..ip + 20]);
    pseudo[9] = PROTO_TCP;
    pseudo[10..12].copy_from_slice(&((frame.len() - seg.tcp) as u16).to_be_bytes());
    let headers = sum(
        &frame[seg.tcp..check],
        sum(&frame[check + 2..seg.payload], 0),
    );
    let headers = fold(add(sum(&pseudo, 0), headers));
    // The checksum is the complement of everything's sum: take the headers away again
    // (subtracting is adding the complement).
    let all = !u16::from_be_bytes([frame[check], frame[check + 1]]);
    u64::from(fold(add(u64::from(all), u64::from(!headers))))
}

/// Merges the consecutive data segments of one TCP connection into one large frame.
///
/// A segment joins the frame being built when it continues it: same addresses, ports,
/// acknowledgement, window and options, the next sequence number, no longer than the first
/// segment, and the frame's last segment full-sized and without PSH. Anything else
/// (another connection, a control segment, an ACK without data) first sends what was
/// merged.
#[derive(Debug, Default)]
pub struct Coalescer {
    /// The merged frame: the first segment's headers, then every payload.
    frame: Vec<u8>,
    /// The first segment's header layout.
    first: Option<Tcp>,
    /// Payload bytes per segment (the first's).
    gso_size: usize,
    /// Segments merged.
    segments: usize,
    /// The last segment's payload length.
    last_len: usize,
    /// Sequence number after the last byte merged.
    next_seq: u32,
    /// The ones' complement sum of every payload merged, each at its place in the frame.
    payload_sum: u64,
    /// Whether the payloads so far end at an odd offset (the next one's bytes then sit
    /// swapped in the frame's 16-bit words).
    odd: bool,
}

/// What [`Coalescer::push`] did with a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Push {
    /// Merged: nothing to send yet.
    Merged,
    /// Not merged, and nothing was pending: send it as it is.
    Alone,
    /// Not merged: send the pending frame ([`Coalescer::take`]), then push this one again.
    FlushFirst,
}

impl Coalescer {
    /// Whether a merged frame waits to be sent.
    pub fn is_empty(&self) -> bool {
        self.segments == 0
    }

    /// Offers one frame the stack sends.
    pub fn push(&mut self, frame: &[u8]) -> Push {
        let Some(seg) = data_segment(frame) else {
            return if self.is_empty() {
                Push::Alone
            } else {
                Push::FlushFirst
            };
        };
        let payload = frame.len() - seg.payload;
        let payload_sum = payload_sum(frame, seg);
        if self.is_empty() {
            self.frame.clear();
            self.frame.extend_from_slice(frame);
            self.first = Some(seg);
            self.gso_size = payload;
            self.segments = 1;
            self.last_len = payload;
            self.next_seq = seg.seq.wrapping_add(payload as u32);
            self.payload_sum = payload_sum;
            self.odd = payload % 2 == 1;
            return Push::Merged;
        }
        let Some(first) = self.first else {
            return Push::FlushFirst;
        };
        if self.continues(first, seg, frame, payload) {
            self.frame.extend_from_slice(&frame[seg.payload..]);
            self.segments += 1;
            self.last_len = payload;
            self.next_seq = seg.seq.wrapping_add(payload as u32);
            let placed = if self.odd {
                u64::from(fold(payload_sum).swap_bytes())
            } else {
                payload_sum
            };
            self.payload_sum = add(self.payload_sum, placed);
            self.odd ^= payload % 2 == 1;
            if seg.flags & PSH != 0 {
                let at = first.tcp + 13;
                self.frame[at] |= PSH;
            }
            Push::Merged
        } else {
            Push::FlushFirst
        }
    }

    fn continues(&self, first: Tcp, seg: Tcp, frame: &[u8], payload: usize) -> bool {
        let prev = &self.frame;
        // Ethernet header; IP version, TOS; DF and TTL, protocol, addresses; ports; ack;
        // header length; window, urgent pointer and options. Not compared: total length,
        // identification, checksums, sequence number, PSH.
        let same = |a: usize, b: usize| prev.get(a..b) == frame.get(a..b);
        let ip = ETHERNET_HEADER;
        let tcp = first.tcp;
        seg.payload == first.payload
            && same(0, ip + 2)
            && same(ip + 6, ip + 10)
            && same(ip + 12, ip + 20)
            && same(tcp, tcp + 4)
            && same(tcp + 8, tcp + 13)
            && same(tcp + 14, tcp + 16)
            && same(tcp + 18, first.payload)
            && prev.get(tcp + 13).map(|f| f & PSH) == Some(0)
            && seg.seq == self.next_seq
            && self.last_len == self.gso_size
            && payload <= self.gso_size
            && prev.len() - ETHERNET_HEADER + payload <= IPV4_MAX
    }

    /// The pending frame and the header to write before it, ready to send; the coalescer
    /// is empty after. A single segment goes as it came; a merged one gets its IP total
    /// length, IP checksum and TCP checksum for all its bytes (from the segments' own
    /// checksums, without reading the payload again), and a header saying which segments
    /// it stands for.
    pub fn take(&mut self) -> Option<(VnetHdr, &[u8])> {
        let first = self.first.take()?;
        let segments = std::mem::take(&mut self.segments);
        if segments == 0 {
            return None;
        }
        if segments == 1 {
            return Some((VnetHdr::default(), &self.frame));
        }
        let frame = &mut self.frame;
        let ip = ETHERNET_HEADER;
        let total = frame.len() - ip;
        frame[ip + 2..ip + 4].copy_from_slice(&(total as u16).to_be_bytes());
        frame[ip + 10..ip + 12].fill(0);
        let ip_sum = !fold(sum(&frame[ip..ip + IPV4_HEADER], 0));
        frame[ip + 10..ip + 12].copy_from_slice(&ip_sum.to_be_bytes());
        let tcp_len = frame.len() - first.tcp;
        let mut pseudo = [0u8; 12];
        pseudo[..8].copy_from_slice(&frame[ip + 12..ip + 20]);
        pseudo[9] = PROTO_TCP;
        pseudo[10..12].copy_from_slice(&(tcp_len as u16).to_be_bytes());
        let check = first.tcp + 16;
        let header = sum(
            &frame[first.tcp..check],
            sum(&frame[check + 2..first.payload], 0),
        );
        let tcp_sum = !fold(add(add(sum(&pseudo, 0), header), self.payload_sum));
        frame[check..check + 2].copy_from_slice(&tcp_sum.to_be_bytes());
        let hdr = VnetHdr {
            flags: 0,
            gso_type: GSO_TCPV4,
            hdr_len: first.payload as u16,
            gso_size: self.gso_size as u16,
            csum_start: 0,
            csum_offset: 0,
        };
        Some((hdr, &self.frame))
    }
}

/// Whether a header read with a frame announces a kind of large segment this side asked
/// for (none but TCP/IPv4).
pub fn gso_supported(hdr: VnetHdr) -> bool {
    matches!(hdr.gso_type, GSO_NONE | GSO_TCPV4)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet/IPv4/TCP frame with valid checksums.
    fn segment(seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; ETHERNET_HEADER + IPV4_HEADER + TCP_HEADER];
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 0x64]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4);
        let ip = ETHERNET_HEADER;
        f[ip] = 0x45;
        let total = (IPV4_HEADER + TCP_HEADER + payload.len()) as u16;
        f[ip + 2..ip + 4].copy_from_slice(&total.to_be_bytes());
        f[ip + 6] = 0x40;
        f[ip + 8] = 64;
        f[ip + 9] = PROTO_TCP;
        f[ip + 12..ip + 16].copy_from_slice(&[192, 168, 69, 1]);
        f[ip + 16..ip + 20].copy_from_slice(&[192, 168, 69, 100]);
        let t = ip + IPV4_HEADER;
        f[t..t + 2].copy_from_slice(&9090u16.to_be_bytes());
        f[t + 2..t + 4].copy_from_slice(&40000u16.to_be_bytes());
        f[t + 4..t + 8].copy_from_slice(&seq.to_be_bytes());
        f[t + 8..t + 12].copy_from_slice(&77u32.to_be_bytes());
        f[t + 12] = 5 << 4;
        f[t + 13] = flags;
        f[t + 14..t + 16].copy_from_slice(&1000u16.to_be_bytes());
        f.extend_from_slice(payload);
        let ip_sum = !fold(sum(&f[ip..ip + IPV4_HEADER], 0));
        f[ip + 10..ip + 12].copy_from_slice(&ip_sum.to_be_bytes());
        let mut pseudo = [0u8; 12];
        pseudo[..8].copy_from_slice(&f[ip + 12..ip + 20]);
        pseudo[9] = PROTO_TCP;
        pseudo[10..].copy_from_slice(&((TCP_HEADER + payload.len()) as u16).to_be_bytes());
        let tcp_sum = !fold(sum(&f[t..], sum(&pseudo, 0)));
        f[t + 16..t + 18].copy_from_slice(&tcp_sum.to_be_bytes());
        f
    }

    fn checksums_ok(f: &[u8]) -> bool {
        let ip = ETHERNET_HEADER;
        let t = ip + IPV4_HEADER;
        let mut pseudo = [0u8; 12];
        pseudo[..8].copy_from_slice(&f[ip + 12..ip + 20]);
        pseudo[9] = PROTO_TCP;
        pseudo[10..].copy_from_slice(&((f.len() - t) as u16).to_be_bytes());
        fold(sum(&f[ip..t], 0)) == 0xffff && fold(sum(&f[t..], sum(&pseudo, 0))) == 0xffff
    }

    #[test]
    fn the_sum_is_the_internet_checksum() {
        // RFC 1071's example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data, 0)), 0xddf2);
        // Against a word-by-word sum: every length up to 300 (blocks, pairs and an odd
        // tail meeting), and a long run of 0xff whose carries pile up.
        let slow = |data: &[u8]| {
            let mut s = 0u64;
            for pair in data.chunks(2) {
                s += u64::from(pair[0]) << 8 | u64::from(*pair.get(1).unwrap_or(&0));
            }
            fold(s)
        };
        let bytes: Vec<u8> = (0..300u32).map(|i| (i * 37 % 251) as u8).collect();
        for len in 0..=bytes.len() {
            assert_eq!(
                fold(sum(&bytes[..len], 0)),
                slow(&bytes[..len]),
                "{len} bytes"
            );
        }
        let ones = vec![0xffu8; 65535];
        assert_eq!(fold(sum(&ones, 0)), slow(&ones));
        // Sums of parts that start at even offsets add up to the sum of the whole.
        assert_eq!(
            fold(sum(&bytes[100..], sum(&bytes[..100], 0))),
            slow(&bytes)
        );
    }

    #[test]
    fn a_checksum_left_to_the_device_is_finished() {
        let mut f = segment(1, ACK, b"hello");
        let t = ETHERNET_HEADER + IPV4_HEADER;
        let good = [f[t + 16], f[t + 17]];
        // What the kernel leaves: the pseudo-header's sum, not complemented.
        let mut pseudo = [0u8; 12];
        pseudo[..8].copy_from_slice(&f[ETHERNET_HEADER + 12..ETHERNET_HEADER + 20]);
        pseudo[9] = PROTO_TCP;
        pseudo[10..].copy_from_slice(&((f.len() - t) as u16).to_be_bytes());
        f[t + 16..t + 18].copy_from_slice(&fold(sum(&pseudo, 0)).to_be_bytes());
        let hdr = VnetHdr {
            flags: NEEDS_CSUM,
            csum_start: t as u16,
            csum_offset: 16,
            ..VnetHdr::default()
        };
        assert!(complete_rx(hdr, &mut f));
        assert_eq!([f[t + 16], f[t + 17]], good);
        let outside = VnetHdr {
            csum_start: f.len() as u16,
            ..hdr
        };
        assert!(!complete_rx(outside, &mut f));
    }

    #[test]
    fn a_header_reads_back_as_written() {
        let hdr = VnetHdr {
            flags: 1,
            gso_type: 1,
            hdr_len: 54,
            gso_size: 1460,
            csum_start: 34,
            csum_offset: 16,
        };
        assert_eq!(VnetHdr::parse(&hdr.to_bytes()), Some(hdr));
    }

    #[test]
    fn consecutive_segments_merge_into_one_valid_frame() {
        let mut c = Coalescer::default();
        let a = segment(1000, ACK, &[1u8; 100]);
        let b = segment(1100, ACK, &[2u8; 100]);
        let last = segment(1200, ACK | PSH, &[3u8; 40]);
        assert_eq!(c.push(&a), Push::Merged);
        assert_eq!(c.push(&b), Push::Merged);
        assert_eq!(c.push(&last), Push::Merged);
        let (hdr, frame) = c.take().unwrap();
        assert_eq!(hdr.gso_type, GSO_TCPV4);
        assert_eq!(hdr.gso_size, 100);
        assert_eq!(usize::from(hdr.hdr_len), 54);
        assert_eq!(frame.len(), 54 + 240);
        assert!(checksums_ok(frame));
        // The payloads in order, PSH from the last.
        assert_eq!(&frame[54..154], &[1u8; 100]);
        assert_eq!(&frame[254..], &[3u8; 40]);
        assert_eq!(frame[ETHERNET_HEADER + IPV4_HEADER + 13], ACK | PSH);
        assert!(c.is_empty());
    }

    #[test]
    fn segments_of_an_odd_length_merge_with_a_valid_checksum() {
        let mut c = Coalescer::default();
        let bytes: Vec<u8> = (0..=255u8).cycle().take(101 * 5).collect();
        for (i, chunk) in bytes.chunks(101).enumerate() {
            let seq = 7 + 101 * i as u32;
            assert_eq!(c.push(&segment(seq, ACK, chunk)), Push::Merged);
        }
        let (hdr, frame) = c.take().unwrap();
        assert_eq!(hdr.gso_size, 101);
        assert_eq!(&frame[54..], &bytes[..]);
        assert!(checksums_ok(frame));
    }

    #[test]
    fn what_does_not_continue_the_frame_sends_it_first() {
        let mut c = Coalescer::default();
        let a = segment(1000, ACK, &[1u8; 100]);
        assert_eq!(c.push(&a), Push::Merged);
        // A gap in the sequence, a control segment, a longer segment, a bare ACK.
        for other in [
            segment(1200, ACK, &[2u8; 100]),
            segment(1100, ACK | FIN, &[2u8; 100]),
            segment(1100, ACK, &[2u8; 101]),
            segment(1100, ACK, &[]),
        ] {
            assert_eq!(c.push(&other), Push::FlushFirst);
        }
        // One segment goes as it came, without a large-segment header.
        let (hdr, frame) = c.take().unwrap();
        assert_eq!(hdr, VnetHdr::default());
        assert_eq!(frame, &a[..]);
        assert_eq!(c.push(&segment(1, ACK | SYN, &[])), Push::Alone);
        // After a short segment, or one with PSH, nothing more joins.
        assert_eq!(c.push(&segment(1000, ACK, &[1u8; 100])), Push::Merged);
        assert_eq!(c.push(&segment(1100, ACK, &[1u8; 50])), Push::Merged);
        assert_eq!(c.push(&segment(1150, ACK, &[1u8; 50])), Push::FlushFirst);
        assert!(c.take().is_some());
        assert_eq!(c.push(&segment(2000, ACK | PSH, &[1u8; 100])), Push::Merged);
        assert_eq!(c.push(&segment(2100, ACK, &[1u8; 100])), Push::FlushFirst);
    }
}
