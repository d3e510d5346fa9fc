//! `smolsock`: runs the seed's four programs on a smoltcp stack attached to a Linux TAP or
//! TUN device, on the host kernel's own stack (`--stack kernel`, the std twin), or all of
//! them at once in-process (`smolsock demo`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory as _, Parser as _};
use smolsock::faults::{FaultConfig, FaultInjector, FaultStats};
use smolsock::programs::{
    Pace, ServeMode, TcpClient, TcpClientConfig, TcpServer, TcpServerConfig, TcpTimeouts,
    UdpReceiver, UdpReceiverConfig, UdpSender, UdpSenderConfig,
};
use smolsock::smol::{ListenPolicy, StackConfig};
use smolsock::{Program, Stack};
use smoltcp::phy::Medium;
use smoltcp::time::Duration;

mod cli;
mod demo;
mod driver;
mod input;
mod output;

use cli::{
    Cli, Command, DEFAULT_IP, DEFAULT_MAC, DEFAULT_TCP_BUF, DeviceArgs, Mode, PaceArg, StackKind,
    TimeoutArgs, parse_cidr,
};
use driver::RunError;
use input::LineInput;
use output::Printer;
use smolsock_frames::Style;
use smolsock_linux::pcap::{PcapDevice, PcapFile};
use smolsock_linux::stack::{HostStack, Sizing, build_stack, random_seed};
use smolsock_linux::tap::{Kind, TunTap};
use smolsock_std::KernelStack;

/// Most clients one `tcp-server` serves at once; more wait in the backlog.
const MAX_CLIENTS: usize = 32;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::MissingSubcommand | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) =>
        {
            // No program named: what there is to run, not a one-line error.
            eprint!("{}", Cli::command().render_help());
            return ExitCode::from(2);
        }
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
        Err(Failure::Usage(message)) => {
            eprintln!("smolsock: {message} (see smolsock --help)");
            ExitCode::from(2)
        }
        Err(Failure::Stopped(message, status)) => {
            eprintln!("smolsock: {message}");
            ExitCode::from(status)
        }
    }
}

/// Why `smolsock` exits with a failure.
enum Failure {
    /// The program failed and its error event is already on stderr.
    Reported,
    /// Anything else, to be printed.
    Message(String),
    /// Flags that do not go together, found after parsing (exit status 2, like clap's).
    Usage(String),
    /// A signal stopped the run: the message and the exit status (128 + the signal).
    Stopped(String, u8),
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

/// `--pace auto` is lock-step when a person types (arguments, or stdin on a terminal) and
/// pipelining for a script's input (stdin from a pipe or a file).
fn pace_for(pace: PaceArg, messages: &[String]) -> Pace {
    use std::io::IsTerminal as _;
    match pace {
        PaceArg::Lockstep => Pace::LockStep,
        PaceArg::Pipeline => Pace::Pipeline,
        PaceArg::Auto if messages.is_empty() && !std::io::stdin().is_terminal() => Pace::Pipeline,
        PaceArg::Auto => Pace::LockStep,
    }
}

fn seconds(s: f64) -> Duration {
    Duration::from_micros((s * 1e6) as u64)
}

/// A duration flag where 0 means off.
fn optional_seconds(s: f64) -> Option<Duration> {
    (s > 0.0).then(|| seconds(s))
}

fn tcp_timeouts(args: TimeoutArgs) -> TcpTimeouts {
    TcpTimeouts {
        keepalive: optional_seconds(args.keepalive),
        give_up: optional_seconds(args.give_up),
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let json = cli.command.json();
    let mut printer = Printer::new(json);
    if let Command::Compare {
        markdown,
        only,
        arrows,
        ..
    } = &cli.command
    {
        if cli.pcap.is_some() {
            return Err(Failure::Usage(
                "--pcap does not apply to compare; it captures by itself".into(),
            ));
        }
        return compare(json, *markdown, only, arrows.style(*markdown));
    }
    if let Command::Demo { arrows, .. } = cli.command {
        if cli.pcap.is_some() {
            return Err(Failure::Usage(
                "--pcap needs a TAP or TUN device; the demo prints its packets instead".into(),
            ));
        }
        return demo::run(&mut printer, arrows.style(false))
            .map_err(|e| Failure::Message(format!("demo failed: {e}")));
    }
    let Some(device) = cli.command.device().cloned() else {
        return Ok(());
    };
    let (policy, policy_flags) = cli.command.listen_policy();
    match device.stack {
        StackKind::Smoltcp => {
            device.check_addresses().map_err(Failure::Usage)?;
            let launcher = OnSmoltcp {
                device,
                pcap: cli.pcap,
                policy,
            };
            run_program(launcher, cli.command, &mut printer)
        }
        StackKind::Kernel => {
            let mut flags = device.smoltcp_flags();
            flags.extend(policy_flags);
            if let Some(flag) = flags.first() {
                return Err(Failure::Usage(format!(
                    "{flag} configures the smoltcp stack; with --stack kernel the program uses \
                     the host's own interfaces and addresses"
                )));
            }
            if cli.pcap.is_some() {
                return Err(Failure::Usage(
                    "--pcap records the smoltcp stack's frames; with --stack kernel capture \
                     with tcpdump instead"
                        .into(),
                ));
            }
            run_program(OnKernel, cli.command, &mut printer)
        }
    }
}

/// `smolsock compare`: enters a namespace of its own, runs the scenarios, prints the table.
fn compare(json: bool, markdown: bool, only: &[String], style: Style) -> Result<(), Failure> {
    use smolsock_compare::{self as compare, report};
    compare::check_ids(only).map_err(Failure::Usage)?;
    // First, while this process has a single thread.
    let namespace = smolsock_linux::netns::enter()
        .map_err(|e| format!("smolsock compare needs a network namespace of its own: {e}"))?;
    log::info!("in a new network namespace: {namespace:?}");
    let rows = compare::run(only, &namespace.link)?;
    if json {
        println!("{:#}", report::json(&rows, style));
    } else if markdown {
        print!("{}", report::markdown(&rows, style));
    } else {
        print!("{}", report::text(&rows, style));
    }
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| r.kernel.is_err() || r.smoltcp.is_err())
        .map(|r| r.scenario.id)
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::Message(format!(
            "{} scenario(s) could not run: {}",
            failed.len(),
            failed.join(", ")
        )))
    }
}

/// Runs a program on one of the two stacks.
trait Launch {
    /// The stack the program runs on.
    type Stack: Stack + 'static;
    /// Runs `program` until it finishes; `tcp_sockets` is how many TCP sockets it may use
    /// at once.
    fn launch(
        self,
        tcp_sockets: usize,
        program: &mut dyn Program<Self::Stack>,
        input: LineInput,
        printer: &mut Printer,
    ) -> Result<(), Failure>;
}

/// The same program construction for both stacks: only [`Launch`] differs.
fn run_program<L: Launch>(
    launcher: L,
    command: Command,
    printer: &mut Printer,
) -> Result<(), Failure> {
    match command {
        Command::Demo { .. } | Command::Compare { .. } => Ok(()),
        Command::UdpRecv {
            port, count, buf, ..
        } => {
            let mut buf = vec![0u8; usize::from(buf)];
            let mut program = UdpReceiver::new(UdpReceiverConfig { port, count }, &mut buf);
            launcher.launch(0, &mut program, LineInput::none(), printer)
        }
        Command::UdpSend {
            to,
            timeout,
            messages,
            ..
        } => {
            let mut buf = vec![0u8; 65507];
            let config = UdpSenderConfig {
                to,
                flush_timeout: seconds(timeout),
            };
            let mut program = UdpSender::new(config, &mut buf);
            launcher.launch(0, &mut program, input_for(messages), printer)
        }
        Command::TcpServer {
            port,
            backlog,
            mode,
            max_clients,
            timeouts,
            ..
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
                idle_timeout: optional_seconds(timeouts.idle_timeout),
                timeouts: tcp_timeouts(timeouts),
            };
            let mut program = Box::new(TcpServer::<L::Stack, MAX_CLIENTS>::new(config));
            let input = if mode == ServeMode::Interactive {
                LineInput::stdin()
            } else {
                LineInput::none()
            };
            let sockets = usize::from(backlog) + MAX_CLIENTS;
            launcher.launch(sockets, program.as_mut(), input, printer)
        }
        Command::TcpClient {
            to,
            short,
            pace,
            timeout,
            bytes,
            buf,
            messages,
            reply_timeout,
            timeouts,
            ..
        } => {
            let mut tx = vec![0u8; 16 * 1024];
            let mut rx = vec![0u8; buf as usize];
            let config = TcpClientConfig {
                to,
                short,
                pace: pace_for(pace, &messages),
                timeout: seconds(timeout),
                bulk: bytes,
                reply_timeout: optional_seconds(reply_timeout),
                idle_timeout: optional_seconds(timeouts.idle_timeout),
                timeouts: tcp_timeouts(timeouts),
            };
            let input = if bytes.is_some() {
                LineInput::none()
            } else {
                input_for(messages)
            };
            let mut program = TcpClient::new(config, &mut tx, &mut rx);
            launcher.launch(8, &mut program, input, printer)
        }
    }
}

fn outcome(result: Result<(), RunError>) -> Result<(), Failure> {
    match result {
        Ok(()) => Ok(()),
        Err(RunError::Program(_)) => Err(Failure::Reported),
        Err(e @ RunError::Signal(_)) => Err(Failure::Stopped(e.to_string(), e.exit_status())),
        Err(e) => Err(Failure::Message(e.to_string())),
    }
}

/// smoltcp on a TAP or TUN device.
struct OnSmoltcp {
    device: DeviceArgs,
    pcap: Option<PathBuf>,
    policy: ListenPolicy,
}

impl Launch for OnSmoltcp {
    type Stack = HostStack;

    fn launch(
        self,
        tcp_sockets: usize,
        program: &mut dyn Program<HostStack>,
        mut input: LineInput,
        printer: &mut Printer,
    ) -> Result<(), Failure> {
        let args = self.device;
        let (name, kind) = match (&args.tap, &args.tun) {
            (_, Some(tun)) => (tun.clone(), Kind::Tun),
            (Some(tap), None) => (tap.clone(), Kind::Tap),
            (None, None) => ("tap0".to_string(), Kind::Tap),
        };
        let ip = match args.ip {
            Some(ip) => ip,
            None => parse_cidr(DEFAULT_IP)?,
        };
        let config = StackConfig {
            mac: args.mac.unwrap_or(DEFAULT_MAC),
            ip,
            gateway: args.gateway,
            seed: random_seed()?,
        };
        let sizing = Sizing {
            tcp_sockets,
            tcp_buf: args.tcp_buf.unwrap_or(DEFAULT_TCP_BUF) as usize,
            ..Sizing::default()
        };
        let medium = match kind {
            Kind::Tap => Medium::Ethernet,
            Kind::Tun => Medium::Ip,
        };
        let pcap = match self.pcap {
            Some(path) => Some(
                PcapFile::create(&path, medium)
                    .map_err(|e| format!("cannot write pcap file {}: {e}", path.display()))?,
            ),
            None => None,
        };
        let device = TunTap::open(&name, kind).map_err(|e| e.to_string())?;
        // Between the stack and the device, so a capture records the wire; no --faults: none.
        let mut faults = new_faults(args.faults.unwrap_or_default());
        let mut device = faults.wrap(PcapDevice::new(device, pcap));
        let mut stack = build_stack(&mut device, config, sizing).map_err(|e| e.to_string())?;
        stack.set_listen_policy(self.policy);
        let result = driver::run(&mut stack, &mut device, program, &mut input, printer);
        drop(device);
        if args.faults.is_some() {
            print_faults(printer, &faults.stats());
        }
        outcome(result)
    }
}

/// Frames the fault injector holds back per direction (delay, reordering, rate limit).
const FAULT_QUEUE: usize = 128;

/// Built on the heap: the queues take a few hundred KiB.
#[inline(never)]
fn new_faults(config: FaultConfig) -> Box<FaultInjector<FAULT_QUEUE>> {
    Box::new(FaultInjector::new(config))
}

/// One line with what `--faults` did (JSON: a `faults` event with both directions).
fn print_faults(printer: &mut Printer, stats: &FaultStats) {
    printer.line("faults", &stats.to_string(), stats);
}

/// The host kernel's stack (the std twin).
struct OnKernel;

impl Launch for OnKernel {
    type Stack = KernelStack;

    fn launch(
        self,
        _tcp_sockets: usize,
        program: &mut dyn Program<KernelStack>,
        mut input: LineInput,
        printer: &mut Printer,
    ) -> Result<(), Failure> {
        let mut stack = KernelStack::new();
        outcome(driver::run_kernel(&mut stack, program, &mut input, printer))
    }
}
