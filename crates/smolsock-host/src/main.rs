//! `smolsock`: runs the seed's four programs on a smoltcp stack attached to a Linux TAP or
//! TUN device, or all of them at once in-process (`smolsock demo`).

use std::fs::File;
use std::process::ExitCode;

use clap::Parser as _;
use smolsock::programs::{
    ServeMode, TcpClient, TcpClientConfig, TcpServer, TcpServerConfig, UdpReceiver,
    UdpReceiverConfig, UdpSender, UdpSenderConfig,
};
use smolsock::smol::StackConfig;
use smoltcp::phy::{PcapMode, PcapWriter};
use smoltcp::time::Duration;

use smolsock_host::cli::{Cli, Command, DeviceArgs, Mode};
use smolsock_host::driver::{self, RunError};
use smolsock_host::input::LineInput;
use smolsock_host::output::Printer;
use smolsock_host::setup::{HostStack, Sizing, build_stack, random_seed};
use smolsock_host::tap::{Kind, TunTap};

/// Most clients one `tcp-server` serves at once; more wait in the backlog.
const MAX_CLIENTS: usize = 32;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            // One line: clap's message without the usage block that follows it.
            let rendered = e.to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            eprintln!(
                "smolsock: {} (see smolsock --help)",
                first.trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    let level = match cli.verbose {
        0 => "warn",
        1 => "debug",
        _ => "trace",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format_timestamp_micros()
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Reported) => ExitCode::FAILURE,
        Err(Failure::Message(message)) => {
            eprintln!("smolsock: error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Why `smolsock` exits with a failure.
enum Failure {
    /// The program failed and its error event is already on stderr.
    Reported,
    /// Anything else, to be printed.
    Message(String),
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::Message(message)
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Self {
        Failure::Message(message.to_owned())
    }
}

fn input_for(messages: Vec<String>) -> LineInput {
    if messages.is_empty() {
        LineInput::stdin()
    } else {
        LineInput::messages(messages)
    }
}

fn seconds(s: f64) -> Duration {
    Duration::from_micros((s * 1e6) as u64)
}

fn run(cli: Cli) -> Result<(), Failure> {
    let mut printer = Printer::new(cli.json);
    let pcap = cli.pcap.clone();
    match cli.command {
        Command::Demo => {
            if pcap.is_some() {
                return Err(
                    "--pcap needs a TAP or TUN device; the demo prints its packets instead".into(),
                );
            }
            smolsock_host::demo::run(&mut printer)
                .map_err(|e| Failure::Message(format!("demo failed: {e}")))
        }
        Command::UdpRecv {
            device,
            port,
            count,
            buf,
        } => {
            let mut buf = vec![0u8; usize::from(buf)];
            let mut program = UdpReceiver::new(UdpReceiverConfig { port, count }, &mut buf);
            on_device(
                &device,
                pcap,
                0,
                &mut program,
                LineInput::none(),
                &mut printer,
            )
        }
        Command::UdpSend {
            device,
            to,
            timeout,
            messages,
        } => {
            let mut buf = vec![0u8; 65507];
            let config = UdpSenderConfig {
                to,
                flush_timeout: seconds(timeout),
            };
            let mut program = UdpSender::new(config, &mut buf);
            on_device(
                &device,
                pcap,
                0,
                &mut program,
                input_for(messages),
                &mut printer,
            )
        }
        Command::TcpServer {
            device,
            port,
            backlog,
            mode,
            max_clients,
        } => {
            let mode = match mode {
                Mode::Echo => ServeMode::Echo,
                Mode::Interactive => ServeMode::Interactive,
                Mode::Sink => ServeMode::Sink,
            };
            let config = TcpServerConfig {
                port,
                backlog: usize::from(backlog),
                mode,
                max_clients,
            };
            let mut program = Box::new(TcpServer::<HostStack, MAX_CLIENTS>::new(config));
            let input = if mode == ServeMode::Interactive {
                LineInput::stdin()
            } else {
                LineInput::none()
            };
            let sockets = usize::from(backlog) + MAX_CLIENTS;
            on_device(
                &device,
                pcap,
                sockets,
                program.as_mut(),
                input,
                &mut printer,
            )
        }
        Command::TcpClient {
            device,
            to,
            short,
            timeout,
            bytes,
            buf,
            messages,
        } => {
            let mut tx = vec![0u8; 16 * 1024];
            let mut rx = vec![0u8; buf as usize];
            let config = TcpClientConfig {
                to,
                short,
                timeout: seconds(timeout),
                bulk: bytes,
            };
            let input = if bytes.is_some() {
                LineInput::none()
            } else {
                input_for(messages)
            };
            let mut program = TcpClient::new(config, &mut tx, &mut rx);
            on_device(&device, pcap, 8, &mut program, input, &mut printer)
        }
    }
}

fn on_device(
    args: &DeviceArgs,
    pcap: Option<std::path::PathBuf>,
    tcp_sockets: usize,
    program: &mut dyn smolsock::Program<HostStack>,
    mut input: LineInput,
    printer: &mut Printer,
) -> Result<(), Failure> {
    let (name, kind) = match (&args.tap, &args.tun) {
        (_, Some(tun)) => (tun.clone(), Kind::Tun),
        (Some(tap), None) => (tap.clone(), Kind::Tap),
        (None, None) => ("tap0".to_string(), Kind::Tap),
    };
    let config = StackConfig {
        mac: args.mac,
        ip: args.ip,
        gateway: args.gateway,
        seed: random_seed(),
    };
    let sizing = Sizing {
        tcp_sockets,
        tcp_buf: args.tcp_buf as usize,
        ..Sizing::default()
    };
    let mut device = TunTap::open(&name, kind).map_err(|e| e.to_string())?;
    let result = match pcap {
        Some(path) => {
            let file = File::create(&path)
                .map_err(|e| format!("cannot create pcap file {}: {e}", path.display()))?;
            let mut device = PcapWriter::new(device, file, PcapMode::Both);
            let mut stack = build_stack(&mut device, config, sizing).map_err(|e| e.to_string())?;
            driver::run(&mut stack, &mut device, program, &mut input, printer)
        }
        None => {
            let mut stack = build_stack(&mut device, config, sizing).map_err(|e| e.to_string())?;
            driver::run(&mut stack, &mut device, program, &mut input, printer)
        }
    };
    match result {
        Ok(()) => Ok(()),
        Err(RunError::Program(_)) => Err(Failure::Reported),
        Err(e) => Err(Failure::Message(e.to_string())),
    }
}
