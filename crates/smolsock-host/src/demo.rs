//! `smolsock demo`: the four programs against each other on two in-process smoltcp stacks,
//! with the packets on the link drawn as a ladder and every TCP state change printed.

use std::collections::HashMap;

use serde_json::json;
use smolsock::event::Event;
use smolsock::programs::{
    ServeMode, TcpClient, TcpClientConfig, TcpServer, TcpServerConfig, UdpReceiver,
    UdpReceiverConfig, UdpSender, UdpSenderConfig,
};
use smolsock::sim::{CLIENT_IP, Ending, Observer, Pair, SERVER_IP, Side};
use smolsock::{DEFAULT_PORT, Program};
use smoltcp::socket::tcp;
use smoltcp::time::Duration;
use smoltcp::wire::{
    ArpPacket, ArpRepr, EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, TcpPacket,
    UdpPacket,
};

use crate::driver::RunError;
use crate::input::LineInput;
use crate::output::Printer;
use crate::setup::{HOST_SOCKETS, HostStack, Sizing, build_stack, seed_or_config_error};

/// Prints events, frames and state changes.
struct Narrator<'p> {
    printer: &'p mut Printer,
    /// First sequence number seen per (source port, destination port).
    isn: HashMap<(u16, u16), u32>,
}

impl Narrator<'_> {
    fn arrow(&mut self, from: Side, label: &str, fields: serde_json::Value) {
        let text = match from {
            Side::Client => format!("      client ──{:─<46}▶ server", format!(" {label} ")),
            Side::Server => format!("      client ◀{:─<46}── server", format!(" {label} ")),
        };
        let mut fields = fields;
        if let Some(map) = fields.as_object_mut() {
            map.insert("from".into(), from.as_str().into());
        }
        self.printer.line("packet", &text, fields);
    }

    fn tcp_label(&mut self, tcp: &TcpPacket<&[u8]>) -> (String, serde_json::Value) {
        let mut flags = Vec::new();
        for (set, name) in [
            (tcp.syn(), "SYN"),
            (tcp.fin(), "FIN"),
            (tcp.rst(), "RST"),
            (tcp.psh(), "PSH"),
            (tcp.ack(), "ACK"),
        ] {
            if set {
                flags.push(name);
            }
        }
        let key = (tcp.src_port(), tcp.dst_port());
        let seq = tcp.seq_number().0 as u32;
        if tcp.syn() {
            self.isn.insert(key, seq);
        }
        let rel_seq = seq.wrapping_sub(*self.isn.get(&key).unwrap_or(&seq));
        let reverse = (tcp.dst_port(), tcp.src_port());
        let ack = tcp.ack_number().0 as u32;
        let rel_ack = self.isn.get(&reverse).map(|base| ack.wrapping_sub(*base));
        let len = tcp.payload().len();
        let mut label = format!("{} seq={rel_seq}", flags.join(","));
        if tcp.ack()
            && let Some(a) = rel_ack
        {
            label.push_str(&format!(" ack={a}"));
        }
        if len > 0 {
            label.push_str(&format!(" len={len}"));
        }
        let fields = json!({"proto": "tcp", "flags": flags, "seq": rel_seq, "ack": rel_ack, "len": len,
            "src_port": tcp.src_port(), "dst_port": tcp.dst_port()});
        (label, fields)
    }
}

impl Observer for Narrator<'_> {
    fn event(&mut self, side: Side, event: &Event<'_>) {
        self.printer.event_of(Some(side.as_str()), event);
    }

    fn frame(&mut self, from: Side, frame: &[u8]) {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return;
        };
        match eth.ethertype() {
            EthernetProtocol::Arp => {
                let Ok(arp) = ArpPacket::new_checked(eth.payload()) else {
                    return;
                };
                if let Ok(ArpRepr::EthernetIpv4 {
                    operation,
                    source_protocol_addr,
                    target_protocol_addr,
                    ..
                }) = ArpRepr::parse(&arp)
                {
                    let label = match operation {
                        smoltcp::wire::ArpOperation::Request => {
                            format!("ARP who-has {target_protocol_addr}")
                        }
                        _ => format!("ARP {source_protocol_addr} is-at {}", eth.src_addr()),
                    };
                    self.arrow(from, &label, json!({"proto": "arp"}));
                }
            }
            EthernetProtocol::Ipv4 => {
                let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
                    return;
                };
                match ip.next_header() {
                    IpProtocol::Tcp => {
                        if let Ok(tcp) = TcpPacket::new_checked(ip.payload()) {
                            let (label, fields) = self.tcp_label(&tcp);
                            self.arrow(from, &label, fields);
                        }
                    }
                    IpProtocol::Udp => {
                        if let Ok(udp) = UdpPacket::new_checked(ip.payload()) {
                            let label = format!(
                                "UDP {} -> {} len={}",
                                udp.src_port(),
                                udp.dst_port(),
                                udp.payload().len()
                            );
                            self.arrow(
                                from,
                                &label,
                                json!({"proto": "udp", "len": udp.payload().len()}),
                            );
                        }
                    }
                    other => self.arrow(
                        from,
                        &format!("IPv4 {other}"),
                        json!({"proto": other.to_string()}),
                    ),
                }
            }
            _ => {}
        }
    }

    fn tcp_state(
        &mut self,
        side: Side,
        from: tcp::State,
        to: tcp::State,
        snap: &smolsock::smol::TcpSnapshot,
    ) {
        // The listener's idle pool sockets would add noise: show connections only.
        if to == tcp::State::Listen || (from == tcp::State::Listen && to == tcp::State::Closed) {
            return;
        }
        let local = snap.local.map_or("-".to_string(), |a| a.to_string());
        let text = format!("[{}] tcp {local} state {from} -> {to}", side.as_str());
        self.printer.line(
            "tcp-state",
            &text,
            json!({"side": side.as_str(), "local": local, "from": from.to_string(), "to": to.to_string()}),
        );
    }
}

fn heading(printer: &mut Printer, title: &str, note: &str) {
    printer.line(
        "scenario",
        &format!("\n=== {title} ===\n{note}"),
        json!({"title": title, "note": note}),
    );
}

fn check(
    ending: Ending,
    server: &dyn Program<HostStack>,
    client: &dyn Program<HostStack>,
) -> Result<(), RunError> {
    for outcome in [server.outcome(), client.outcome()] {
        if let Some(Err(e)) = outcome {
            return Err(RunError::Program(e));
        }
    }
    if ending != Ending::Finished {
        return Err(RunError::Program(smolsock::Error::TimedOut));
    }
    Ok(())
}

fn messages(list: &[&str]) -> LineInput {
    LineInput::messages(list.iter().map(|s| s.to_string()).collect())
}

/// Two host stacks on the core's simulated link, with heap storage, randomly seeded.
fn pair(sizing: Sizing) -> Result<Box<Pair<'static, HOST_SOCKETS>>, RunError> {
    let seed = seed_or_config_error().map_err(RunError::Program)?;
    Pair::new(seed, |config, device| build_stack(device, config, sizing))
        .map(Box::new)
        .map_err(RunError::Program)
}

const DEMO_SIZING: Sizing = Sizing {
    tcp_sockets: 8,
    tcp_buf: 4096,
    udp_sockets: 2,
    udp_buf: 4096,
    udp_packets: 8,
};

/// An echo server and a client (long or short connections) exchanging `lines`.
fn tcp_scenario(
    narrator: &mut Narrator<'_>,
    title: &str,
    note: &str,
    short: bool,
    lines: &[&str],
) -> Result<(), RunError> {
    heading(narrator.printer, title, note);
    let mut pair = pair(DEMO_SIZING)?;
    let mut server = TcpServer::<HostStack, 4>::new(TcpServerConfig {
        port: DEFAULT_PORT,
        backlog: 2,
        mode: ServeMode::Echo,
        max_clients: Some(if short { lines.len() as u64 } else { 1 }),
        idle_timeout: Some(smolsock::programs::DEFAULT_IDLE_TIMEOUT),
        timeouts: smolsock::programs::DEFAULT_TIMEOUTS,
    });
    let (mut tx, mut rx) = ([0u8; 1024], [0u8; 1024]);
    let mut client = TcpClient::new(
        TcpClientConfig {
            to: std::net::SocketAddrV4::new(SERVER_IP, DEFAULT_PORT),
            short,
            timeout: Duration::from_secs(5),
            bulk: None,
            reply_timeout: Some(smolsock::programs::DEFAULT_REPLY_TIMEOUT),
            idle_timeout: Some(smolsock::programs::DEFAULT_IDLE_TIMEOUT),
            timeouts: smolsock::programs::DEFAULT_TIMEOUTS,
        },
        &mut tx,
        &mut rx,
    );
    let ending = pair
        .run(
            &mut server,
            &mut client,
            &mut LineInput::none(),
            &mut messages(lines),
            narrator,
            Duration::from_secs(60),
        )
        .map_err(RunError::Input)?;
    check(ending, &server, &client)
}

/// Runs the demo; every scenario must finish cleanly.
pub fn run(printer: &mut Printer) -> Result<(), RunError> {
    let sizing = DEMO_SIZING;
    let limit = Duration::from_secs(60);
    let port = DEFAULT_PORT;
    let server_addr = std::net::SocketAddrV4::new(SERVER_IP, port);
    let mut narrator = Narrator {
        printer,
        isn: HashMap::new(),
    };
    narrator.printer.line(
        "intro",
        &format!(
            "Two smoltcp stacks on an in-process link: server {SERVER_IP} (02:00:00:00:00:01), client {CLIENT_IP} (02:00:00:00:00:02).\n\
             Simulated clock; no devices, no privileges."
        ),
        json!({"server": SERVER_IP.to_string(), "client": CLIENT_IP.to_string()}),
    );

    // 1. UDP.
    heading(
        narrator.printer,
        "UDP: udp-send -> udp-recv",
        "The receiver binds port 9090 (S1); the sender never binds: its first sendto picks a random port (S10).\n\
         The first packet needs the server's MAC, so an ARP exchange comes first.",
    );
    let mut pair = pair(sizing)?;
    let mut rx_buf = [0u8; 1024];
    let mut tx_buf = [0u8; 1472];
    let mut receiver = UdpReceiver::new(
        UdpReceiverConfig {
            port,
            count: Some(2),
        },
        &mut rx_buf,
    );
    let mut sender = UdpSender::new(
        UdpSenderConfig {
            to: server_addr,
            flush_timeout: Duration::from_secs(3),
        },
        &mut tx_buf,
    );
    let ending = pair
        .run(
            &mut receiver,
            &mut sender,
            &mut LineInput::none(),
            &mut messages(&["hello, udp", "你好 (utf-8)"]),
            &mut narrator,
            limit,
        )
        .map_err(RunError::Input)?;
    check(ending, &receiver, &sender)?;

    tcp_scenario(
        &mut narrator,
        "TCP long connection: tcp-client -> tcp-server (echo)",
        "The server binds and listens (S1, S3); the client connects from an ephemeral port (S2, S4).\n\
         Three-way handshake, two messages echoed on one connection, then the four-way close (S13):\n\
         the client shuts down, the server's recv returns 0 bytes (S9) and it closes its socket (S8).",
        false,
        &["hello", "world"],
    )?;
    tcp_scenario(
        &mut narrator,
        "TCP short connections: tcp-client --short -> tcp-server (echo)",
        "One connection per message: each gets a new ephemeral port and a new server-side socket (S5, S6).",
        true,
        &["first", "second"],
    )?;

    narrator.printer.line(
        "done",
        "\nDemo finished. Run the same programs on a TAP device against Linux: see the README.",
        json!({}),
    );
    Ok(())
}
