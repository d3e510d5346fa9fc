//! Command-line interface of `smolsock`.

use std::io::IsTerminal;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use smolsock::faults::FaultConfig;
use smolsock::smol::{ListenPolicy, WhenFull};
use smolsock_frames::Style;
use smoltcp::time::Duration;
use smoltcp::wire::{EthernetAddress, Ipv4Cidr};

/// What `smolsock --help` says first (`-h` shows it alone).
const ABOUT: &str = "The four socket programs of a classic Python tutorial (UDP receiver and \
                     sender, TCP server and client) on smoltcp, a no_std TCP/IP stack, or on \
                     the Linux kernel's stack";

/// What `smolsock --help` says in place of [`ABOUT`].
const LONG_ABOUT: &str = "The four socket programs of a classic Python tutorial (UDP receiver \
and sender, TCP server and client) on smoltcp, a no_std TCP/IP stack, or on the Linux \
kernel's stack.

A program runs on smoltcp attached to a TAP or TUN device (default: tap0, with smoltcp at \
192.168.69.1/24), or with --stack kernel on the host's own sockets. smolsock demo runs \
them all against each other in-process, with no device and no privileges; smolsock \
compare checks the tutorial's rules on both stacks in a network namespace of its own. \
The rules, and where each one shows: docs/tutorial.md. smolsock iperf3 speaks iperf3's \
protocol, so a stock iperf3 measures either stack.";

/// What `--json` does for each of the four programs.
const JSON_EVENTS: &str = "Print every event as one JSON object per line instead of text \
                           (the fields are in docs/events.md)";

/// The socket programs of a classic tutorial on the smoltcp TCP/IP stack.
#[derive(Debug, Parser)]
#[command(name = "smolsock", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    /// Print JSON instead of text (each command's --help says what it prints); also
    /// accepted after the command, as each command's own --json.
    #[arg(long, global = true)]
    pub json: bool,
    /// Write every frame to this pcap file (for Wireshark). A file that cannot be written
    /// is an error at start; if a write fails later (disk full), the capture stops with a
    /// warning and the program goes on.
    #[arg(long, global = true, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// More logging (-v debug, -vv trace); RUST_LOG works too.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// The program to run.
    #[command(subcommand)]
    pub command: Command,
}

/// One subcommand per program, plus the demo.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Bind a port and print every datagram with its sender (the tutorial's UDP receiver).
    UdpRecv {
        /// Device and addresses.
        #[command(flatten)]
        device: DeviceArgs,
        /// JSON lines (see `JSON_EVENTS`).
        #[arg(long, help = JSON_EVENTS)]
        json: bool,
        /// Port to bind on every local address.
        #[arg(long, value_name = "PORT", default_value_t = smolsock::DEFAULT_PORT, value_parser = parse_port)]
        port: u16,
        /// Exit after this many datagrams.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Most bytes taken from one datagram, like recvfrom(1024); larger ones are reported truncated.
        #[arg(long, value_name = "BYTES", default_value_t = 1024, value_parser = clap::value_parser!(u16).range(1..))]
        buf: u16,
    },
    /// Send one datagram per argument, or per stdin line (the tutorial's UDP sender).
    UdpSend {
        /// Device and addresses.
        #[command(flatten)]
        device: DeviceArgs,
        /// JSON lines (see `JSON_EVENTS`).
        #[arg(long, help = JSON_EVENTS)]
        json: bool,
        /// Destination IP:PORT.
        #[arg(long, value_name = "IP:PORT", value_parser = parse_socket_addr)]
        to: SocketAddrV4,
        /// Seconds to wait for the last datagram to leave (ARP) before giving up.
        #[arg(long, value_name = "SECS", default_value_t = 3.0, value_parser = parse_seconds)]
        timeout: f64,
        /// One datagram per argument, sent as given (no newline added; quote a message with
        /// spaces); without any, one datagram per stdin line (without its newline).
        messages: Vec<String>,
    },
    /// Listen and serve many clients at once (the tutorial's TCP server).
    TcpServer {
        /// Device and addresses.
        #[command(flatten)]
        device: DeviceArgs,
        /// JSON lines (see `JSON_EVENTS`).
        #[arg(long, help = JSON_EVENTS)]
        json: bool,
        /// Port to listen on.
        #[arg(long, value_name = "PORT", default_value_t = smolsock::DEFAULT_PORT, value_parser = parse_port)]
        port: u16,
        /// Connections that complete their handshake while the server is busy (listen's backlog).
        #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=32))]
        backlog: u16,
        /// echo: send data back; interactive: answer each message with a stdin line; sink: count only.
        #[arg(long, value_enum, default_value_t = Mode::Echo)]
        mode: Mode,
        /// Stop accepting after this many clients, exit when they are done.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        max_clients: Option<u64>,
        /// Seconds a half-open connection (SYN received, handshake not completed) may hold a
        /// listening socket; when all are half-open the oldest gives way to a new SYN [default: 3]. smoltcp only.
        #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
        syn_timeout: Option<f64>,
        /// What a SYN gets when the backlog is full of connections not yet accepted: drop (the
        /// client retries, as on Linux) or reset (smoltcp's own answer: connection refused) [default: drop]. smoltcp only.
        #[arg(long, value_enum)]
        backlog_full: Option<BacklogFull>,
        /// Connection lifetime bounds.
        #[command(flatten)]
        timeouts: TimeoutArgs,
    },
    /// Connect, send each message, print the replies (the tutorial's TCP client).
    TcpClient {
        /// Device and addresses.
        #[command(flatten)]
        device: DeviceArgs,
        /// JSON lines (see `JSON_EVENTS`).
        #[arg(long, help = JSON_EVENTS)]
        json: bool,
        /// Server IP:PORT.
        #[arg(long, value_name = "IP:PORT", value_parser = parse_socket_addr)]
        to: SocketAddrV4,
        /// One connection per message (the tutorial's short connection).
        #[arg(long)]
        short: bool,
        /// On a long connection: lockstep sends a message only once the server answered the
        /// last (as the tutorial's client does), pipeline sends each as soon as the last is
        /// queued; auto: lockstep for arguments and typed lines, pipeline for piped stdin.
        #[arg(long, value_enum, default_value_t = PaceArg::Auto)]
        pace: PaceArg,
        /// Seconds to wait for the handshake, and for the server to close after us.
        #[arg(long, value_name = "SECS", default_value_t = 5.0, value_parser = parse_seconds)]
        timeout: f64,
        /// Send this many bytes of a test pattern instead of messages (bulk transfer).
        #[arg(long, value_name = "N", conflicts_with = "messages")]
        bytes: Option<u64>,
        /// Most bytes taken by one recv, like recv(1024).
        #[arg(long, value_name = "BYTES", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
        buf: u32,
        /// Seconds to wait for the server's answer after each message, like settimeout (0: forever).
        #[arg(long, value_name = "SECS", default_value_t = secs(smolsock::programs::DEFAULT_REPLY_TIMEOUT), value_parser = parse_seconds_or_off)]
        reply_timeout: f64,
        /// Connection lifetime bounds.
        #[command(flatten)]
        timeouts: TimeoutArgs,
        /// One message per argument, sent as given (no newline added; quote a message with
        /// spaces); without any, one message per stdin line (without its newline).
        messages: Vec<String>,
    },
    /// Measure throughput with stock iperf3: a server for `iperf3 -c` (the default), or with
    /// -c a client of `iperf3 -s`. TCP and UDP (-u) tests, -R and -P as iperf3's; one test
    /// at a time.
    Iperf3 {
        /// Device and addresses.
        #[command(flatten)]
        device: DeviceArgs,
        /// JSON lines (see `JSON_EVENTS`).
        #[arg(long, help = JSON_EVENTS)]
        json: bool,
        /// Run as a server, as `iperf3 -s` (the default without -c): TCP and UDP tests.
        #[arg(short = 's', long, conflicts_with = "client")]
        server: bool,
        /// Run as a client of the iperf3 server at this address, as `iperf3 -c IP`.
        #[arg(short = 'c', long, value_name = "IP", value_parser = parse_destination)]
        client: Option<Ipv4Addr>,
        /// The server's port: to listen on, or to connect to.
        #[arg(short = 'p', long, value_name = "PORT", default_value_t = smolsock::programs::iperf3::DEFAULT_PORT, value_parser = parse_port)]
        port: u16,
        /// Client: seconds to send (or receive, with -R).
        #[arg(short = 't', long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=86400), requires = "client", conflicts_with = "bytes")]
        time: u32,
        /// Client: end the test after this many bytes instead of a time.
        #[arg(short = 'n', long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..), requires = "client")]
        bytes: Option<u64>,
        /// Client: the server sends and the client receives (reverse).
        #[arg(short = 'R', long, requires = "client")]
        reverse: bool,
        /// Client: parallel streams, 1 to 16.
        #[arg(short = 'P', long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16), requires = "client")]
        parallel: u16,
        /// Client: a UDP test (datagrams at -b's rate) instead of TCP.
        #[arg(short = 'u', long, requires = "client")]
        udp: bool,
        /// Client, UDP: bits per second per stream, with K, M or G (powers of 1000); 0: as
        /// fast as the socket takes them.
        #[arg(short = 'b', long, value_name = "RATE", default_value = "1M", value_parser = parse_rate, requires = "udp")]
        bitrate: u64,
        /// Client, UDP: the datagrams' length in bytes, 12 to 65507.
        #[arg(short = 'l', long, value_name = "BYTES", default_value_t = 1460, value_parser = clap::value_parser!(u64).range(12..=65507), requires = "udp")]
        length: u64,
        /// Server: exit after one test.
        #[arg(short = '1', long, conflicts_with = "client")]
        one_off: bool,
        /// Client: seconds to wait for each connection's handshake.
        #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = parse_seconds, requires = "client")]
        timeout: f64,
        /// Connection lifetime bounds.
        #[command(flatten)]
        timeouts: TimeoutArgs,
    },
    /// Run the programs against each other on two in-process stacks (no privileges needed).
    Demo {
        /// How to draw the packet ladder.
        #[arg(long, value_enum, default_value_t = Arrows::Auto)]
        arrows: Arrows,
        /// Print every event, and every packet on the link, as one JSON object per line
        /// instead of text (the fields are in docs/events.md).
        #[arg(long)]
        json: bool,
    },
    /// Check the tutorial's rules S1-S13 on the kernel's stack and on smoltcp, side by side.
    ///
    /// Runs in a network namespace it makes itself (a user namespace when not root), with
    /// tap0 for smoltcp (a veth pair when /dev/net/tun is closed to us) and the kernel as
    /// the peer; nothing outside it is touched. Takes about 35 s.
    Compare {
        /// Print the table as one JSON document instead of text: for each scenario its
        /// rule, what was done, and what each stack did.
        #[arg(long)]
        json: bool,
        /// Print the table as Markdown (the ladders follow as code blocks).
        #[arg(long, conflicts_with = "json")]
        markdown: bool,
        /// Run only these scenarios (by id; repeat the flag for several).
        #[arg(long, value_name = "ID")]
        only: Vec<String>,
        /// How to draw the S13 ladders (auto: ASCII with --markdown).
        #[arg(long, value_enum, default_value_t = Arrows::Auto)]
        arrows: Arrows,
        /// Add a third column: the stack on a board running the remote firmware. `qemu`:
        /// the emulated lm3s6965evb (on a TAP of its own in the namespace); a serial
        /// device such as /dev/ttyACM0: a board whose Ethernet is on this machine's network
        /// (root only; give --board-if and --board-peer).
        #[arg(long, value_name = "BOARD", value_parser = parse_board)]
        board: Option<BoardArg>,
        /// With --board qemu: the remote firmware to boot [default: the one `cargo xtask
        /// boards` builds].
        #[arg(long, value_name = "ELF", requires = "board")]
        firmware: Option<std::path::PathBuf>,
        /// With a serial board: this machine's interface on the board's network.
        #[arg(long, value_name = "IF", requires = "board")]
        board_if: Option<String>,
        /// With a serial board: this machine's address on the board's network (the peer).
        #[arg(long, value_name = "IP", requires = "board")]
        board_peer: Option<Ipv4Addr>,
        /// With a serial board: the address and prefix the board's stack gets, in the
        /// peer's subnet [default: 192.168.69.4/24, the F429ZI's in the address plan].
        #[arg(long, value_name = "CIDR", value_parser = parse_cidr, requires = "board")]
        board_ip: Option<Ipv4Cidr>,
        /// With a serial board: the line's speed in bits per second.
        #[arg(long, value_name = "BAUD", default_value_t = 115_200)]
        baud: u32,
    },
}

/// How packet ladders are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Arrows {
    /// Unicode on a terminal; ASCII in a pipe or a file.
    Auto,
    /// Box-drawing lines and triangles: ── SYN seq=0 ──▶
    Unicode,
    /// Plain ASCII: -- SYN seq=0 -->
    Ascii,
}

impl Arrows {
    /// The style to draw in; `auto` asks whether standard output is a terminal, and draws
    /// ASCII for a document (`document`: Markdown) wherever it goes.
    pub fn style(self, document: bool) -> Style {
        match self {
            Arrows::Unicode => Style::Unicode,
            Arrows::Ascii => Style::Ascii,
            Arrows::Auto if document => Style::Ascii,
            Arrows::Auto => Style::for_output(std::io::stdout().is_terminal()),
        }
    }
}

impl Command {
    /// The stack and device flags of a program's subcommand.
    pub fn device(&self) -> Option<&DeviceArgs> {
        match self {
            Command::UdpRecv { device, .. }
            | Command::UdpSend { device, .. }
            | Command::TcpServer { device, .. }
            | Command::TcpClient { device, .. }
            | Command::Iperf3 { device, .. } => Some(device),
            Command::Demo { .. } | Command::Compare { .. } => None,
        }
    }

    /// Whether to print JSON: the command's own `--json`, which also carries a `--json`
    /// given before the command (clap copies a global flag's value to the command's flag
    /// of the same name).
    pub fn json(&self) -> bool {
        match self {
            Command::UdpRecv { json, .. }
            | Command::UdpSend { json, .. }
            | Command::TcpServer { json, .. }
            | Command::TcpClient { json, .. }
            | Command::Iperf3 { json, .. }
            | Command::Demo { json, .. }
            | Command::Compare { json, .. } => *json,
        }
    }
}

/// How long a TCP connection may live without traffic, on either stack (0 turns one off).
#[derive(Debug, Clone, Copy, Args)]
pub struct TimeoutArgs {
    /// Seconds without data moving either way before the program closes a connection
    /// (keep-alive answers and zero-window probes do not count) (0: never).
    #[arg(long, value_name = "SECS", default_value_t = secs(smolsock::programs::DEFAULT_IDLE_TIMEOUT), value_parser = parse_seconds_or_off)]
    pub idle_timeout: f64,
    /// Seconds of silence before a keep-alive probe, and between probes (0: off).
    #[arg(long, value_name = "SECS", default_value_t = secs(smolsock::programs::DEFAULT_KEEPALIVE), value_parser = parse_seconds_or_off)]
    pub keepalive: f64,
    /// Seconds the peer may stay silent while we wait for it (our data, probes, our FIN)
    /// before the connection is aborted as timed out (0: never).
    #[arg(long, value_name = "SECS", default_value_t = secs(smolsock::programs::DEFAULT_GIVE_UP), value_parser = parse_seconds_or_off)]
    pub give_up: f64,
}

fn secs(d: smoltcp::time::Duration) -> f64 {
    d.total_millis() as f64 / 1000.0
}

/// `tcp-client --pace`: when the next message may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PaceArg {
    /// Lock-step for arguments and a terminal, pipelining for stdin from a pipe or file.
    Auto,
    /// Wait for the server's answer to each message before sending the next.
    Lockstep,
    /// Send each message as soon as the one before it is queued.
    Pipeline,
}

/// What the TCP server does with what it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Send every chunk back.
    Echo,
    /// Answer each message with a line typed on stdin.
    Interactive,
    /// Count and discard.
    Sink,
}

/// What a SYN gets when a listener's backlog is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BacklogFull {
    /// Dropped: the client retransmits it and gets in once there is room.
    Drop,
    /// Answered with a reset: the client's connect is refused.
    Reset,
}

impl Command {
    /// The listener rules for the smoltcp stack, and the flags that set them (they make no
    /// sense with `--stack kernel`, whose rules are the kernel's sysctls).
    pub fn listen_policy(&self) -> (ListenPolicy, Vec<&'static str>) {
        let mut policy = ListenPolicy::default();
        let mut given = Vec::new();
        if let Command::TcpServer {
            syn_timeout,
            backlog_full,
            ..
        } = self
        {
            if let Some(seconds) = syn_timeout {
                policy.syn_timeout = Duration::from_micros((seconds * 1e6) as u64);
                given.push("--syn-timeout");
            }
            if let Some(full) = backlog_full {
                policy.when_full = match full {
                    BacklogFull::Drop => WhenFull::Drop,
                    BacklogFull::Reset => WhenFull::Reset,
                };
                given.push("--backlog-full");
            }
        }
        (policy, given)
    }
}

/// Which TCP/IP stack runs a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StackKind {
    /// smoltcp (the no_std core's stack) on a TAP or TUN device.
    Smoltcp,
    /// The host kernel's own stack through its sockets (the std twin).
    Kernel,
    /// smoltcp on a board, the remote firmware, driven over its serial link: the emulated
    /// board in QEMU (`--board qemu`) or a board on a serial device (`--board /dev/ttyACM0`).
    Board,
}

/// Where `--stack board` (and `compare --board`) finds its board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoardArg {
    /// The emulated board: QEMU boots the remote firmware on the TAP.
    Qemu,
    /// A board running the remote firmware, on this serial device.
    Serial(std::path::PathBuf),
}

/// `qemu`, or the path of a serial device.
fn parse_board(text: &str) -> Result<BoardArg, String> {
    match text {
        "qemu" => Ok(BoardArg::Qemu),
        "" => Err("give qemu or a serial device such as /dev/ttyACM0".into()),
        path if path.starts_with('/') || path.starts_with('.') => Ok(BoardArg::Serial(path.into())),
        other => Err(format!(
            "'{other}' is neither qemu nor a serial device's path (such as /dev/ttyACM0)"
        )),
    }
}

/// The board flags of `--stack board`.
#[derive(Debug, Clone, Args)]
pub struct BoardArgs {
    /// With --stack board: the board, `qemu` (the emulated lm3s6965evb, booted on the TAP)
    /// or a serial device running the remote firmware, such as /dev/ttyACM0 [default: qemu].
    #[arg(long, value_name = "BOARD", value_parser = parse_board)]
    pub board: Option<BoardArg>,
    /// With --board qemu: the remote firmware to boot [default: the one `cargo xtask boards`
    /// builds].
    #[arg(long, value_name = "ELF")]
    pub firmware: Option<std::path::PathBuf>,
    /// With a serial board: the line's speed in bits per second.
    #[arg(long, value_name = "BAUD", default_value_t = 115_200)]
    pub baud: u32,
}

/// The smoltcp stack's address when `--ip` is not given.
pub const DEFAULT_IP: &str = "192.168.69.1/24";
/// A serial board's address in `compare` when `--board-ip` is not given: the Nucleo-F429ZI's
/// in the address plan.
pub const DEFAULT_BOARD_IP: &str = "192.168.69.4/24";
/// The smoltcp stack's MAC address when `--mac` is not given.
pub const DEFAULT_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
/// Bytes in each TCP ring when `--tcp-buf` is not given.
pub const DEFAULT_TCP_BUF: u32 = 65536;

/// The stack, and the device and addresses of the smoltcp stack.
#[derive(Debug, Clone, Args)]
pub struct DeviceArgs {
    /// The TCP/IP stack: smoltcp on a TAP/TUN device, or the host kernel's own (std::net).
    #[arg(long, value_enum, default_value_t = StackKind::Smoltcp)]
    pub stack: StackKind,
    /// TAP device to attach to (the default kind; default name tap0). smoltcp only.
    #[arg(long, value_name = "IF", conflicts_with = "tun")]
    pub tap: Option<String>,
    /// TUN device to attach to instead of a TAP. smoltcp only.
    #[arg(long, value_name = "IF")]
    pub tun: Option<String>,
    /// Address and prefix of the smoltcp stack [default: 192.168.69.1/24]. smoltcp only.
    #[arg(long, value_name = "CIDR", value_parser = parse_cidr)]
    pub ip: Option<Ipv4Cidr>,
    /// MAC address of the smoltcp stack, TAP only [default: 02:00:00:00:00:01]. smoltcp only.
    #[arg(long, value_parser = parse_mac)]
    pub mac: Option<EthernetAddress>,
    /// Default gateway, inside the --ip subnet. smoltcp only.
    #[arg(long, value_name = "IP")]
    pub gateway: Option<Ipv4Addr>,
    /// Bytes in each TCP socket's receive and transmit rings [default: 65536]. smoltcp only.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(1024..=16 * 1024 * 1024))]
    pub tcp_buf: Option<u32>,
    /// Faults on the smoltcp stack's device, for example
    /// loss=5%,dup=1%,reorder=2%,corrupt=0.1%,delay=10ms,jitter=5ms,rate=10mbit,seed=7
    /// (each key for both directions, or one with rx. or tx. before it). smoltcp only.
    #[arg(long, value_name = "SPEC", value_parser = parse_faults)]
    pub faults: Option<FaultConfig>,
    /// TCP segmentation and checksum offload on a TAP: large TCP segments both ways, the
    /// same bytes in far fewer frames [default: on; off with --faults and --pcap, which see
    /// each segment]. smoltcp only.
    #[arg(long, value_enum)]
    pub offload: Option<OnOff>,
    /// The board, with --stack board.
    #[command(flatten)]
    pub board: BoardArgs,
}

/// A setting that is on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    /// On.
    On,
    /// Off.
    Off,
}

/// The flags of `flags` that were given.
fn given(flags: &[(&'static str, bool)]) -> Vec<&'static str> {
    flags
        .iter()
        .filter_map(|&(flag, given)| given.then_some(flag))
        .collect()
}

/// Whether `ip` is the network or the broadcast address of `cidr`'s prefix (a /31 or /32
/// has neither: every address there is a host's).
fn network_or_broadcast(cidr: Ipv4Cidr, ip: Ipv4Addr) -> bool {
    cidr.broadcast().is_some() && (ip == cidr.network().address() || cidr.broadcast() == Some(ip))
}

impl DeviceArgs {
    /// Checks the flags that only make sense together: `--gateway` is another host of the
    /// `--ip` subnet.
    pub fn check_addresses(&self) -> Result<(), String> {
        let Some(gateway) = self.gateway else {
            return Ok(());
        };
        let cidr = match self.ip {
            Some(cidr) => cidr,
            None => parse_cidr(DEFAULT_IP)?,
        };
        if gateway == cidr.address() {
            Err(format!(
                "--gateway {gateway} is the stack's own address; give the router's address"
            ))
        } else if !cidr.contains_addr(&gateway) {
            Err(format!(
                "--gateway {gateway} is outside the stack's subnet {}",
                cidr.network()
            ))
        } else if network_or_broadcast(cidr, gateway) {
            Err(format!(
                "--gateway {gateway} is the network or broadcast address of {}",
                cidr.network()
            ))
        } else {
            Ok(())
        }
    }

    /// The board-only flags that were given (they make no sense without `--stack board`).
    pub fn board_flags(&self) -> Vec<&'static str> {
        given(&[
            ("--board", self.board.board.is_some()),
            ("--firmware", self.board.firmware.is_some()),
        ])
    }

    /// The flags of smoltcp on a host device that a board's stack does not take.
    pub fn host_device_flags(&self) -> Vec<&'static str> {
        given(&[
            ("--tun", self.tun.is_some()),
            ("--tcp-buf", self.tcp_buf.is_some()),
            ("--faults", self.faults.is_some()),
            ("--offload", self.offload.is_some()),
        ])
    }

    /// The smoltcp-only flags that were given (they make no sense with `--stack kernel`).
    pub fn smoltcp_flags(&self) -> Vec<&'static str> {
        given(&[
            ("--tap", self.tap.is_some()),
            ("--tun", self.tun.is_some()),
            ("--ip", self.ip.is_some()),
            ("--mac", self.mac.is_some()),
            ("--gateway", self.gateway.is_some()),
            ("--tcp-buf", self.tcp_buf.is_some()),
            ("--faults", self.faults.is_some()),
            ("--offload", self.offload.is_some()),
        ])
    }
}

/// A rate in bits per second: digits, then optionally K, M or G (powers of 1000, as
/// iperf3's `-b`).
fn parse_rate(text: &str) -> Result<u64, String> {
    let bad = || format!("'{text}' is not a rate: give bits per second, as 500K, 10M or 1G");
    let (digits, scale) = match text.char_indices().last() {
        Some((i, 'k' | 'K')) => (&text[..i], 1_000),
        Some((i, 'm' | 'M')) => (&text[..i], 1_000_000),
        Some((i, 'g' | 'G')) => (&text[..i], 1_000_000_000),
        _ => (text, 1),
    };
    let value: f64 = digits.parse().map_err(|_| bad())?;
    let bits = value * scale as f64;
    if !bits.is_finite() || bits < 0.0 || bits >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bits as u64)
}

fn parse_port(text: &str) -> Result<u16, String> {
    let port: u32 = text
        .parse()
        .map_err(|_| format!("'{text}' is not a port number"))?;
    match u16::try_from(port) {
        Ok(0) => Err("port 0 is not allowed: give a port from 1 to 65535".into()),
        Ok(port) => Ok(port),
        Err(_) => Err(format!(
            "port {port} is out of range: give a port from 1 to 65535"
        )),
    }
}

/// Parses an IPv4 address a program can connect to.
fn parse_destination(text: &str) -> Result<Ipv4Addr, String> {
    let ip: Ipv4Addr = text
        .parse()
        .map_err(|_| format!("'{text}' is not an IPv4 address (for example 192.168.69.100)"))?;
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
        return Err(format!("{ip} cannot be a destination"));
    }
    Ok(ip)
}

/// Parses `IP:PORT` with an IPv4 address and a port from 1 to 65535.
pub fn parse_socket_addr(text: &str) -> Result<SocketAddrV4, String> {
    let (ip, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("'{text}' is not IP:PORT (for example 192.168.69.100:9090)"))?;
    let ip: Ipv4Addr = ip
        .parse()
        .map_err(|_| format!("'{ip}' is not an IPv4 address (for example 192.168.69.100)"))?;
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
        return Err(format!("{ip} cannot be a destination"));
    }
    Ok(SocketAddrV4::new(ip, parse_port(port)?))
}

/// Parses `A.B.C.D/LEN`.
pub fn parse_cidr(text: &str) -> Result<Ipv4Cidr, String> {
    let (ip, len) = text.split_once('/').ok_or_else(|| {
        format!("'{text}' is not an address with a prefix length (for example 192.168.69.1/24)")
    })?;
    let ip: Ipv4Addr = ip
        .parse()
        .map_err(|_| format!("'{ip}' is not an IPv4 address"))?;
    let len: u8 = len
        .parse()
        .ok()
        .filter(|l| (1..=32).contains(l))
        .ok_or_else(|| format!("'{len}' is not a prefix length from 1 to 32"))?;
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback() {
        return Err(format!("{ip} cannot be the stack's own address"));
    }
    let cidr = Ipv4Cidr::new(ip, len);
    if network_or_broadcast(cidr, ip) {
        return Err(format!(
            "{ip} is the network or broadcast address of {}; give a host address (a /31 or /32 has neither)",
            cidr.network()
        ));
    }
    Ok(cidr)
}

/// Parses a unicast MAC address `xx:xx:xx:xx:xx:xx`.
pub fn parse_mac(text: &str) -> Result<EthernetAddress, String> {
    let bad = || format!("'{text}' is not a MAC address (for example 02:00:00:00:00:01)");
    let mut bytes = [0u8; 6];
    let mut parts = text.split([':', '-']);
    for byte in bytes.iter_mut() {
        let part = parts.next().filter(|p| p.len() == 2).ok_or_else(bad)?;
        *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    let mac = EthernetAddress(bytes);
    if bytes == [0; 6] {
        return Err(format!(
            "{text} is the all-zero address; the stack needs a real unicast one"
        ));
    }
    if !mac.is_unicast() {
        return Err(format!(
            "{text} is a multicast or broadcast address; the stack needs a unicast one"
        ));
    }
    Ok(mac)
}

/// Parses a number of seconds from 0 (off) to 86400.
fn parse_seconds_or_off(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 86400.0)
        .ok_or_else(|| format!("'{text}' is not a number of seconds from 0 (off) to 86400"))
}

/// Parses a `--faults` specification (see [`FaultConfig::parse`]).
pub fn parse_faults(text: &str) -> Result<FaultConfig, String> {
    FaultConfig::parse(text).map_err(|e| match e {
        smolsock::Error::InvalidConfig(why) => why.trim_start_matches("faults: ").to_string(),
        other => other.to_string(),
    })
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 3600.0)
        .ok_or_else(|| format!("'{text}' is not a number of seconds from 0 to 3600"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(parse_port("9090"), Ok(9090));
        assert!(parse_port("0").unwrap_err().contains("port 0"));
        assert!(parse_port("65536").unwrap_err().contains("out of range"));
        assert!(parse_port("x").is_err());
    }

    #[test]
    fn addresses() {
        assert_eq!(
            parse_socket_addr("192.168.69.100:9090"),
            Ok(SocketAddrV4::new(Ipv4Addr::new(192, 168, 69, 100), 9090))
        );
        assert!(parse_socket_addr("192.168.69.100").is_err());
        assert!(parse_socket_addr("300.1.1.1:80").is_err());
        assert!(parse_socket_addr("0.0.0.0:80").is_err());
        assert!(parse_cidr("192.168.69.1/24").is_ok());
        assert!(parse_cidr("192.168.69.1/33").is_err());
        assert!(parse_cidr("192.168.69.1").is_err());
        assert!(parse_cidr("192.168.69.0/24").is_err());
        assert!(parse_cidr("192.168.69.255/24").is_err());
        assert!(parse_cidr("10.0.0.0/31").is_ok());
        assert!(parse_cidr("10.0.0.1/31").is_ok());
        assert!(parse_cidr("10.0.0.0/32").is_ok());
        assert!(parse_mac("00:00:00:00:00:00").is_err());
        assert!(parse_mac("02:00:00:00:00:01").is_ok());
        assert!(parse_mac("01:00:5e:00:00:01").is_err());
        assert!(parse_mac("02:00:00:00:00").is_err());
    }
}
