//! Draws a TCP conversation from a capture as a ladder: the client's state, an arrow with
//! the segment's flags and relative sequence numbers, the server's state.
//!
//! The states are not read from either stack: they follow from the segments, by the state
//! diagram of RFC 9293 (each side changes state when it sends or receives a SYN, a FIN, an
//! ACK of its FIN, or a RST).

use std::net::SocketAddrV4;

use smolsock_linux::capture::Packet;

/// A drawn conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drawn {
    /// The ladder, one line per segment after a heading.
    pub lines: Vec<String>,
    /// The handshake's and the close's segments in one line, e.g.
    /// `SYN > SYN,ACK < ACK > ... FIN,ACK > ACK < FIN,ACK < ACK >`.
    pub summary: String,
}

#[derive(Debug, Clone, Copy)]
struct End {
    state: &'static str,
    isn: Option<u32>,
    fin_end: Option<u32>,
}

impl End {
    fn new(state: &'static str) -> Self {
        Self {
            state,
            isn: None,
            fin_end: None,
        }
    }

    fn sent(&mut self, p: &Segment) {
        if p.syn {
            self.isn = Some(p.seq);
            self.state = if p.ack { "SYN-RECEIVED" } else { "SYN-SENT" };
        }
        if p.rst {
            self.state = "CLOSED";
        }
        if p.fin {
            self.fin_end = Some(p.seq.wrapping_add(p.len as u32).wrapping_add(1));
            self.state = match self.state {
                "ESTABLISHED" => "FIN-WAIT-1",
                "CLOSE-WAIT" => "LAST-ACK",
                other => other,
            };
        }
    }

    fn received(&mut self, p: &Segment) {
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

struct Segment {
    from_client: bool,
    syn: bool,
    ack: bool,
    fin: bool,
    rst: bool,
    seq: u32,
    ack_number: u32,
    len: usize,
}

impl Segment {
    fn flags(&self) -> String {
        let mut flags = Vec::new();
        for (on, name) in [
            (self.syn, "SYN"),
            (self.fin, "FIN"),
            (self.rst, "RST"),
            (self.ack, "ACK"),
        ] {
            if on {
                flags.push(name);
            }
        }
        flags.join(",")
    }
}

const ARROW: usize = 38;

fn arrow(label: &str, to_server: bool) -> String {
    let fill = ARROW.saturating_sub(label.len() + 4);
    if to_server {
        format!("--{label}{}->", "-".repeat(fill))
    } else {
        format!("<-{}{label}--", "-".repeat(fill))
    }
}

/// Draws the segments between `client` and `server` (others are skipped).
pub fn draw(packets: &[Packet], client: SocketAddrV4, server: SocketAddrV4) -> Drawn {
    let segments: Vec<Segment> = packets
        .iter()
        .filter_map(|p| match *p {
            Packet::Tcp {
                src,
                dst,
                syn,
                ack,
                fin,
                rst,
                seq,
                ack_number,
                len,
                ..
            } if (src == client && dst == server) || (src == server && dst == client) => {
                Some(Segment {
                    from_client: src == client,
                    syn,
                    ack,
                    fin,
                    rst,
                    seq,
                    ack_number,
                    len,
                })
            }
            _ => None,
        })
        .collect();
    let mut c = End::new("CLOSED");
    let mut s = End::new("LISTEN");
    let mut lines = vec![format!(
        "{:<12} {:^width$} {}",
        "client",
        "",
        "server",
        width = ARROW
    )];
    lines.push(format!(
        "{:<12} {:^width$} {}",
        c.state,
        "",
        s.state,
        width = ARROW
    ));
    let mut labels = Vec::new();
    for seg in &segments {
        let (sender, receiver) = if seg.from_client {
            (&mut c, &mut s)
        } else {
            (&mut s, &mut c)
        };
        sender.sent(seg);
        let rel = |n: u32, isn: Option<u32>| isn.map_or(n, |i| n.wrapping_sub(i));
        let mut label = format!("{} seq={}", seg.flags(), rel(seg.seq, sender.isn));
        if seg.ack {
            label.push_str(&format!(" ack={}", rel(seg.ack_number, receiver.isn)));
        }
        if seg.len > 0 {
            label.push_str(&format!(" len={}", seg.len));
        }
        receiver.received(seg);
        labels.push((
            seg.flags(),
            seg.from_client,
            seg.len,
            seg.syn || seg.fin || seg.rst,
        ));
        lines.push(format!(
            "{:<12} {} {}",
            c.state,
            arrow(&label, seg.from_client),
            s.state
        ));
    }
    Drawn {
        summary: summarize(&labels, c.state, s.state),
        lines,
    }
}

/// The handshake (the first three segments) and the close (from the first FIN or RST on),
/// flags and directions only, and where each side ended.
fn summarize(labels: &[(String, bool, usize, bool)], client: &str, server: &str) -> String {
    let word = |(flags, to_server, _, _): &(String, bool, usize, bool)| {
        format!("{flags} {}", if *to_server { ">" } else { "<" })
    };
    let handshake: Vec<String> = labels.iter().take(3).map(word).collect();
    let close_at = labels
        .iter()
        .position(|(flags, _, _, _)| flags.contains("FIN") || flags.contains("RST"));
    let close: Vec<String> = close_at
        .map(|i| labels.iter().skip(i).map(word).collect())
        .unwrap_or_default();
    format!(
        "handshake: {}; close: {}; the client ends in {client}, the server in {server} \
         (> is client to server)",
        handshake.join(" "),
        if close.is_empty() {
            "none".to_string()
        } else {
            close.join(" ")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(from_client: bool, flags: &str, seq: u32, ack: u32, len: usize) -> Packet {
        let c: SocketAddrV4 = "10.0.0.1:5000".parse().unwrap();
        let s: SocketAddrV4 = "10.0.0.2:80".parse().unwrap();
        let (src, dst) = if from_client { (c, s) } else { (s, c) };
        Packet::Tcp {
            src,
            dst,
            syn: flags.contains('S'),
            ack: flags.contains('A'),
            fin: flags.contains('F'),
            rst: flags.contains('R'),
            psh: false,
            seq,
            ack_number: ack,
            len,
            window: 0,
        }
    }

    #[test]
    fn textbook_open_and_close() {
        let packets = [
            seg(true, "S", 100, 0, 0),
            seg(false, "SA", 500, 101, 0),
            seg(true, "A", 101, 501, 0),
            seg(true, "FA", 101, 501, 0),
            seg(false, "A", 501, 102, 0),
            seg(false, "FA", 501, 102, 0),
            seg(true, "A", 102, 502, 0),
        ];
        let drawn = draw(
            &packets,
            "10.0.0.1:5000".parse().unwrap(),
            "10.0.0.2:80".parse().unwrap(),
        );
        assert_eq!(
            drawn.summary,
            "handshake: SYN > SYN,ACK < ACK >; close: FIN,ACK > ACK < FIN,ACK < ACK >; \
             the client ends in TIME-WAIT, the server in CLOSED (> is client to server)"
        );
        assert!(drawn.lines[2].starts_with("SYN-SENT"), "{:?}", drawn.lines);
        assert!(drawn.lines[2].ends_with("SYN-RECEIVED"));
        assert!(drawn.lines[3].contains("seq=0 ack=1"));
        assert!(drawn.lines[3].starts_with("ESTABLISHED"));
        assert!(drawn.lines[4].ends_with("ESTABLISHED"));
        assert!(drawn.lines[5].starts_with("FIN-WAIT-1"));
        assert!(drawn.lines[6].starts_with("FIN-WAIT-2"));
        assert!(drawn.lines[6].ends_with("CLOSE-WAIT"));
        assert!(drawn.lines[7].ends_with("LAST-ACK"));
    }

    #[test]
    fn reset_closes_both() {
        let packets = [seg(true, "S", 1, 0, 0), seg(false, "RA", 0, 2, 0)];
        let drawn = draw(
            &packets,
            "10.0.0.1:5000".parse().unwrap(),
            "10.0.0.2:80".parse().unwrap(),
        );
        assert!(
            drawn.summary.contains("close: RST,ACK <"),
            "{}",
            drawn.summary
        );
        assert!(drawn.summary.contains("client ends in CLOSED"));
    }
}
