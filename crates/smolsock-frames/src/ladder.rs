//! The packet ladder: one line per frame, an arrow from the end that sent it to the end
//! that received it, labelled with what it carried.
//!
//! ```
//! use smolsock_frames::{Rung, Style};
//!
//! let syn = Rung::new("client", "SYN seq=0".into(), true, "server");
//! let syn_ack = Rung::new("client", "SYN,ACK seq=0 ack=1".into(), false, "server");
//! assert_eq!(
//!     [syn.line(Style::Unicode), syn_ack.line(Style::Unicode)],
//!     [
//!         "      client ── SYN seq=0 ──────────────────────────────────▶ server",
//!         "      client ◀──────────────────────── SYN,ACK seq=0 ack=1 ── server",
//!     ]
//! );
//! assert_eq!(
//!     syn.line(Style::Ascii),
//!     "      client -- SYN seq=0 ----------------------------------> server"
//! );
//! ```
//!
//! The label sits at the sender's end. Each end of a rung shows a word: the demo prints
//! `client` and `server` (it prints the stacks' own state changes between the rungs);
//! [`connection`] prints the state each end is in after the segment, as it follows from
//! the segments. [`Style::Ascii`] draws the same ladder with `-`, `>` and `<`, for pipes,
//! files and Markdown; [`Style::Unicode`] is for a terminal.

use std::net::SocketAddrV4;

use crate::packet::{Packet, TcpSegment};
use crate::seq::{Relative, Sequences};

/// How arrows are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Box-drawing lines and triangles: `── SYN ───▶`.
    Unicode,
    /// Plain ASCII: `-- SYN --->`.
    Ascii,
}

impl Style {
    /// Unicode on a terminal, ASCII anywhere else (a pipe or a file may end up where
    /// box-drawing characters do not show).
    pub fn for_output(is_terminal: bool) -> Style {
        if is_terminal {
            Style::Unicode
        } else {
            Style::Ascii
        }
    }

    /// The line, the head pointing right and the head pointing left.
    fn glyphs(self) -> (char, char, char) {
        match self {
            Style::Unicode => ('─', '▶', '◀'),
            Style::Ascii => ('-', '>', '<'),
        }
    }
}

/// The narrowest arrow, so that the arrows of a ladder line up however short their labels.
pub const MIN_ARROW: usize = 48;
/// The width of the left end's column (`SYN-RECEIVED` is 12 characters).
pub const END_WIDTH: usize = 12;

/// An arrow `width` characters wide with `label` at the sender's end.
pub fn arrow(style: Style, label: &str, to_right: bool, width: usize) -> String {
    let (line, right, left) = style.glyphs();
    // Two dashes and a space before the label, a space and at least two dashes and the
    // head after it.
    let fill = width.saturating_sub(label.chars().count() + 5).max(2);
    let run: String = std::iter::repeat_n(line, fill).collect();
    if to_right {
        format!("{line}{line} {label} {run}{right}")
    } else {
        format!("{left}{run} {label} {line}{line}")
    }
}

/// The width an arrow needs for `label`: [`MIN_ARROW`], or more for a long label.
fn arrow_width(label: &str) -> usize {
    MIN_ARROW.max(label.chars().count() + 7)
}

/// One line of a ladder: a word at each end and, between them, an arrow (or nothing, for
/// a heading).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rung {
    /// What stands at the left end (the client's).
    pub left: String,
    /// The arrow's label and whether it points right; `None` draws no arrow.
    pub arrow: Option<(String, bool)>,
    /// What stands at the right end (the server's).
    pub right: String,
}

impl Rung {
    /// A rung with an arrow from left to right (`to_right`) or back.
    pub fn new(left: &str, label: String, to_right: bool, right: &str) -> Self {
        Self {
            left: left.into(),
            arrow: Some((label, to_right)),
            right: right.into(),
        }
    }

    /// A rung with the two ends only (a heading).
    pub fn ends(left: &str, right: &str) -> Self {
        Self {
            left: left.into(),
            arrow: None,
            right: right.into(),
        }
    }

    /// The rung alone, its arrow as wide as its label needs (for ladders printed a rung at
    /// a time, like the demo's).
    pub fn line(&self, style: Style) -> String {
        let width = self
            .arrow
            .as_ref()
            .map_or(MIN_ARROW, |(l, _)| arrow_width(l));
        self.render(style, END_WIDTH, width)
    }

    fn render(&self, style: Style, left_width: usize, width: usize) -> String {
        let middle = match &self.arrow {
            Some((label, to_right)) => arrow(style, label, *to_right, width),
            None => " ".repeat(width),
        };
        format!("{:>left_width$} {middle} {}", self.left, self.right)
            .trim_end()
            .to_string()
    }
}

/// A whole ladder, drawn with every arrow the same width.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ladder {
    /// Its lines, from the top.
    pub rungs: Vec<Rung>,
}

impl Ladder {
    /// Whether it has no line at all.
    pub fn is_empty(&self) -> bool {
        self.rungs.is_empty()
    }

    /// The ladder's lines.
    pub fn render(&self, style: Style) -> Vec<String> {
        let width = self
            .rungs
            .iter()
            .filter_map(|r| r.arrow.as_ref().map(|(l, _)| arrow_width(l)))
            .max()
            .unwrap_or(MIN_ARROW);
        let left_width = self
            .rungs
            .iter()
            .map(|r| r.left.chars().count())
            .max()
            .unwrap_or(0)
            .max(END_WIDTH);
        self.rungs
            .iter()
            .map(|r| r.render(style, left_width, width))
            .collect()
    }
}

/// The label of `packet`'s arrow: TCP flags with the numbers from [`Sequences::relative`]
/// (`SYN,ACK seq=0 ack=1`, `PSH,ACK seq=1 ack=1 len=5`; without them, the numbers on the
/// wire), or what an ARP, UDP or ICMP packet said.
pub fn label(packet: &Packet, relative: Option<Relative>) -> String {
    match *packet {
        Packet::Tcp(ref segment) => tcp_label(segment, relative),
        Packet::Arp {
            request: true,
            target,
            ..
        } => format!("ARP who-has {target}"),
        Packet::Arp {
            request: false,
            sender,
            sender_mac,
            ..
        } => format!("ARP {sender} is-at {sender_mac}"),
        Packet::Udp { src, dst, len } => {
            format!("UDP {} -> {} len={len}", src.port(), dst.port())
        }
        Packet::IcmpUnreachable {
            code, original_dst, ..
        } => {
            let mut label = match code {
                3 => "ICMP port unreachable".to_string(),
                _ => format!("ICMP unreachable code {code}"),
            };
            if let Some(dst) = original_dst {
                label.push_str(&format!(" for {dst}"));
            }
            label
        }
        Packet::Icmp {
            msg_type: 8,
            code: 0,
            ..
        } => "ICMP echo request".into(),
        Packet::Icmp {
            msg_type: 0,
            code: 0,
            ..
        } => "ICMP echo reply".into(),
        Packet::Icmp { msg_type, code, .. } => format!("ICMP type {msg_type} code {code}"),
        Packet::Other => "other frame".into(),
    }
}

fn tcp_label(segment: &TcpSegment, relative: Option<Relative>) -> String {
    let relative = relative.unwrap_or(Relative {
        seq: segment.seq,
        ack: segment.ack.then_some(segment.ack_number),
    });
    let mut label = format!("{} seq={}", segment.flags(), relative.seq);
    if let Some(ack) = relative.ack {
        label.push_str(&format!(" ack={ack}"));
    }
    if segment.len > 0 {
        label.push_str(&format!(" len={}", segment.len));
    }
    label
}

/// One TCP connection drawn from a capture by [`connection`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// The ladder: `client` and `server`, their first states (CLOSED and LISTEN), then one
    /// rung per segment with the states each end is in after it.
    pub ladder: Ladder,
    /// The connection's segments, in order (`src` tells who sent each).
    pub segments: Vec<TcpSegment>,
    /// The state the client ended in.
    pub client_state: &'static str,
    /// The state the server ended in.
    pub server_state: &'static str,
}

/// Draws the segments between `client` and `server` in `packets` (others are skipped).
///
/// The states are not read from either stack: they follow from the segments, by the state
/// diagram of RFC 9293 (each end changes state when it sends or receives a SYN, a FIN, an
/// ACK of its FIN, or a RST).
pub fn connection<'p>(
    packets: impl IntoIterator<Item = &'p Packet>,
    client: SocketAddrV4,
    server: SocketAddrV4,
) -> Connection {
    let mut c = End::new("CLOSED");
    let mut s = End::new("LISTEN");
    let mut sequences = Sequences::new();
    let mut rungs = vec![Rung::ends("client", "server"), Rung::ends(c.state, s.state)];
    let mut segments = Vec::new();
    for segment in packets
        .into_iter()
        .filter_map(Packet::tcp)
        .filter(|t| t.between(client, server))
    {
        let from_client = segment.src == client;
        let (sender, receiver) = if from_client {
            (&mut c, &mut s)
        } else {
            (&mut s, &mut c)
        };
        sender.sent(segment);
        receiver.received(segment);
        let label = tcp_label(segment, Some(sequences.relative(segment)));
        rungs.push(Rung::new(c.state, label, from_client, s.state));
        segments.push(*segment);
    }
    Connection {
        ladder: Ladder { rungs },
        segments,
        client_state: c.state,
        server_state: s.state,
    }
}

/// One end of a connection, as far as its segments tell.
#[derive(Debug, Clone, Copy)]
struct End {
    state: &'static str,
    /// Where the sequence space of this end's FIN ends, once it sent one.
    fin_end: Option<u32>,
}

impl End {
    fn new(state: &'static str) -> Self {
        Self {
            state,
            fin_end: None,
        }
    }

    fn sent(&mut self, p: &TcpSegment) {
        if p.syn {
            self.state = if p.ack { "SYN-RECEIVED" } else { "SYN-SENT" };
        }
        if p.rst {
            self.state = "CLOSED";
        }
        if p.fin {
            // usize to u32: a segment's payload is below 64 KiB.
            let len = u32::try_from(p.len).unwrap_or(u32::MAX);
            self.fin_end = Some(p.seq.wrapping_add(len).wrapping_add(1));
            self.state = match self.state {
                "ESTABLISHED" => "FIN-WAIT-1",
                "CLOSE-WAIT" => "LAST-ACK",
                other => other,
            };
        }
    }

    fn received(&mut self, p: &TcpSegment) {
        if p.rst {
            self.state = "CLOSED";
            return;
        }
        if p.syn && !p.ack && self.state == "LISTEN" {
            self.state = "SYN-RECEIVED";
        } else if (p.syn && p.ack && self.state == "SYN-SENT")
            || (p.ack && self.state == "SYN-RECEIVED")
        {
            self.state = "ESTABLISHED";
        }
        if p.ack && self.fin_end == Some(p.ack_number) {
            self.state = match self.state {
                "FIN-WAIT-1" => "FIN-WAIT-2",
                "CLOSING" => "TIME-WAIT",
                "LAST-ACK" => "CLOSED",
                other => other,
            };
        }
        if p.fin {
            self.state = match self.state {
                "ESTABLISHED" => "CLOSE-WAIT",
                "FIN-WAIT-1" => "CLOSING",
                "FIN-WAIT-2" => "TIME-WAIT",
                other => other,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::tests::{arp, port_unreachable, tcp_at, udp};
    use smoltcp::wire::{ArpOperation, TcpControl};

    const CLIENT: &str = "10.0.0.1:5000";
    const SERVER: &str = "10.0.0.2:80";

    fn seg(from_client: bool, flags: &str, seq: u32, ack: u32, len: usize) -> Packet {
        let c: SocketAddrV4 = CLIENT.parse().unwrap();
        let s: SocketAddrV4 = SERVER.parse().unwrap();
        let (src, dst) = if from_client { (c, s) } else { (s, c) };
        Packet::Tcp(TcpSegment {
            src,
            dst,
            syn: flags.contains('S'),
            ack: flags.contains('A'),
            fin: flags.contains('F'),
            rst: flags.contains('R'),
            psh: flags.contains('P'),
            seq,
            ack_number: ack,
            len,
            window: 0,
        })
    }

    fn draw(packets: &[Packet]) -> Connection {
        connection(packets, CLIENT.parse().unwrap(), SERVER.parse().unwrap())
    }

    #[test]
    fn textbook_open_and_close() {
        let packets = [
            seg(true, "S", 100, 0, 0),
            seg(false, "SA", 500, 101, 0),
            seg(true, "A", 101, 501, 0),
            seg(true, "PA", 101, 501, 5),
            seg(false, "A", 501, 106, 0),
            seg(true, "FA", 106, 501, 0),
            seg(false, "A", 501, 107, 0),
            seg(false, "FA", 501, 107, 0),
            seg(true, "A", 107, 502, 0),
        ];
        let drawn = draw(&packets);
        let lines = drawn.ladder.render(Style::Ascii);
        assert_eq!(
            lines,
            [
                "      client                                                  server",
                "      CLOSED                                                  LISTEN",
                "    SYN-SENT -- SYN seq=0 ----------------------------------> SYN-RECEIVED",
                " ESTABLISHED <------------------------ SYN,ACK seq=0 ack=1 -- SYN-RECEIVED",
                " ESTABLISHED -- ACK seq=1 ack=1 ----------------------------> ESTABLISHED",
                " ESTABLISHED -- PSH,ACK seq=1 ack=1 len=5 ------------------> ESTABLISHED",
                " ESTABLISHED <---------------------------- ACK seq=1 ack=6 -- ESTABLISHED",
                "  FIN-WAIT-1 -- FIN,ACK seq=6 ack=1 ------------------------> CLOSE-WAIT",
                "  FIN-WAIT-2 <---------------------------- ACK seq=1 ack=7 -- CLOSE-WAIT",
                "   TIME-WAIT <------------------------ FIN,ACK seq=1 ack=7 -- LAST-ACK",
                "   TIME-WAIT -- ACK seq=7 ack=2 ----------------------------> CLOSED",
            ]
        );
        assert_eq!(
            (drawn.client_state, drawn.server_state),
            ("TIME-WAIT", "CLOSED")
        );
        assert_eq!(drawn.segments.len(), packets.len());
    }

    #[test]
    fn reset_closes_both() {
        let drawn = draw(&[seg(true, "S", 1, 0, 0), seg(false, "RA", 0, 2, 0)]);
        assert_eq!(
            (drawn.client_state, drawn.server_state),
            ("CLOSED", "CLOSED")
        );
        let last = drawn.ladder.render(Style::Unicode).pop().unwrap();
        assert_eq!(
            last,
            "      CLOSED ◀──────────────────────── RST,ACK seq=0 ack=1 ── CLOSED"
        );
    }

    #[test]
    fn other_connections_are_left_out() {
        let mut other = seg(true, "S", 1, 0, 0);
        if let Packet::Tcp(t) = &mut other {
            t.src.set_port(5001);
        }
        let drawn = draw(&[other, Packet::Other, seg(true, "S", 1, 0, 0)]);
        assert_eq!(drawn.segments.len(), 1);
        assert_eq!(drawn.ladder.rungs.len(), 3);
    }

    #[test]
    fn both_styles_draw_the_same_ladder() {
        let drawn = draw(&[seg(true, "S", 1, 0, 0), seg(false, "SA", 9, 2, 0)]);
        let unicode = drawn.ladder.render(Style::Unicode);
        let ascii = drawn.ladder.render(Style::Ascii);
        for (u, a) in unicode.iter().zip(&ascii) {
            assert_eq!(u.chars().count(), a.chars().count());
            let back: String = u
                .chars()
                .map(|c| match c {
                    '─' => '-',
                    '▶' => '>',
                    '◀' => '<',
                    c => c,
                })
                .collect();
            assert_eq!(&back, a);
            assert!(a.is_ascii());
        }
    }

    #[test]
    fn a_rung_alone_grows_for_a_long_label() {
        let short = Rung::new("client", "ARP who-has 192.168.69.1".into(), true, "server");
        assert_eq!(
            short.line(Style::Unicode),
            "      client ── ARP who-has 192.168.69.1 ───────────────────▶ server"
        );
        let long = "x".repeat(60);
        let line = Rung::new("client", long.clone(), false, "server").line(Style::Ascii);
        assert_eq!(line, format!("      client <-- {long} -- server"));
    }

    #[test]
    fn labels_say_what_each_packet_carried() {
        let mut seqs = Sequences::new();
        let mut label_of = |bytes: &[u8]| {
            let packet = Packet::parse(bytes);
            let relative = packet.tcp().map(|t| seqs.relative(t));
            label(&packet, relative)
        };
        assert_eq!(
            label_of(&arp(ArpOperation::Request)),
            "ARP who-has 192.168.69.1"
        );
        assert_eq!(
            label_of(&arp(ArpOperation::Reply)),
            "ARP 192.168.69.100 is-at 02-00-00-00-00-64"
        );
        assert_eq!(label_of(&udp(b"hello")), "UDP 5353 -> 7 len=5");
        assert_eq!(
            label_of(&port_unreachable()),
            "ICMP port unreachable for 192.168.69.1:7"
        );
        assert_eq!(
            label_of(&tcp_at(41, TcpControl::Syn, None, &[])),
            "SYN seq=0"
        );
        assert_eq!(
            label_of(&tcp_at(42, TcpControl::Psh, Some(7), b"hello")),
            "PSH,ACK seq=1 ack=7 len=5"
        );
        assert_eq!(label_of(b"garbage"), "other frame");
        // Without relative numbers, the numbers on the wire.
        let packet = Packet::parse(&tcp_at(42, TcpControl::Psh, Some(7), b"hello"));
        assert_eq!(label(&packet, None), "PSH,ACK seq=42 ack=7 len=5");
    }
}
