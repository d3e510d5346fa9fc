//! `smolsock demo`: the four programs against each other on two in-process smoltcp stacks,
//! with the packets on the link drawn as a ladder and every TCP state change printed.

use serde_json::json;
use smolsock::event::Event;
use smolsock::programs::{
    ServeMode, TcpClient, TcpClientConfig, TcpServer, TcpServerConfig, UdpReceiver,
    UdpReceiverConfig, UdpSender, UdpSenderConfig,
};
use smolsock::sim::{CLIENT_IP, Ending, Observer, Pair, SERVER_IP, Side};
use smolsock::{DEFAULT_PORT, Program};
use smolsock_frames::{Packet, Relative, Rung, Sequences, Style, ladder};
use smoltcp::socket::tcp;
use smoltcp::time::Duration;

use crate::driver::RunError;
use crate::input::LineInput;
use crate::output::Printer;
use smolsock_linux::stack::{HOST_SOCKETS, HostStack, Sizing, build_stack, seed_or_config_error};

/// Prints events, frames and state changes.
struct Narrator<'p> {
    printer: &'p mut Printer,
    /// How the ladder's arrows are drawn.
    style: Style,
    /// The connections' initial sequence numbers, for relative numbers.
    sequences: Sequences,
}

/// The JSON fields of a frame (the text line is its ladder rung).
fn packet_fields(packet: &Packet, relative: Option<Relative>) -> serde_json::Value {
    match (packet, relative) {
        (Packet::Tcp(segment), Some(relative)) => {
            json!({"proto": "tcp", "flags": segment.flag_names(), "seq": relative.seq,
                "ack": relative.ack, "len": segment.len,
                "src_port": segment.src.port(), "dst_port": segment.dst.port()})
        }
        (Packet::Tcp(_), None) => json!({"proto": "tcp"}),
        (Packet::Udp { len, .. }, _) => json!({"proto": "udp", "len": len}),
        (Packet::Arp { .. }, _) => json!({"proto": "arp"}),
        (Packet::IcmpUnreachable { .. } | Packet::Icmp { .. }, _) => json!({"proto": "icmp"}),
        (Packet::Other, _) => json!({"proto": "other"}),
    }
}

impl Observer for Narrator<'_> {
    fn event(&mut self, side: Side, event: &Event<'_>) {
        self.printer.event_of(Some(side.as_str()), event);
    }

    fn frame(&mut self, from: Side, frame: &[u8]) {
        let packet = Packet::parse(frame);
        let relative = packet.tcp().map(|t| self.sequences.relative(t));
        let label = ladder::label(&packet, relative);
        let mut fields = packet_fields(&packet, relative);
        if let Some(map) = fields.as_object_mut() {
            map.insert("from".into(), from.as_str().into());
        }
        let rung = Rung::new("client", label, from == Side::Client, "server");
        self.printer.line("packet", &rung.line(self.style), fields);
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
            "tcp_state",
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
            pace: smolsock::programs::Pace::LockStep,
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

/// Runs the demo, its ladder drawn in `style`; every scenario must finish cleanly.
pub fn run(printer: &mut Printer, style: Style) -> Result<(), RunError> {
    let sizing = DEMO_SIZING;
    let limit = Duration::from_secs(60);
    let port = DEFAULT_PORT;
    let server_addr = std::net::SocketAddrV4::new(SERVER_IP, port);
    let mut narrator = Narrator {
        printer,
        style,
        sequences: Sequences::new(),
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
         Three-way handshake; two messages on one connection in lock-step, as the tutorial's client\n\
         sends a line and reads its answer before the next; then the four-way close (S13):\n\
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
