//! `smolsock`: runs the tutorial's four programs on a smoltcp stack attached to a Linux TAP
//! or TUN device, on the host kernel's own stack (`--stack kernel`, the std twin), on a
//! board's stack over its serial link (`--stack board`, `smolsock-remote`), or all of them
//! at once in-process (`smolsock demo`); `smolsock compare` runs the rule-by-rule lab.
//!
//! From a flag to the code that acts on it:
//! - [`cli`]: every flag, its help and its parsing (clap);
//! - [`programs`]: a program's flags (`--port`, `--pace`, `--mode`, the timeouts...) turned
//!   into the core's configuration for that program;
//! - [`stacks`]: the stack flags (`--stack`, `--tap`/`--tun`, `--ip`, `--tcp-buf`, `--pcap`,
//!   `--faults`, `--offload`, `--syn-timeout`, `--backlog-full`) turned into a smoltcp stack
//!   on a device, the kernel's, or a board's (`--board`, `--firmware`, `--baud`: QEMU booted
//!   through `qemu-run`'s library, or a tty);
//! - [`driver`]: the poll loops that run a program on either stack, and SIGINT/SIGTERM;
//! - [`input`]: messages from arguments or stdin; [`output`]: events as text or `--json`
//!   lines (`-v` logging is env_logger's);
//! - [`demo`]: two in-process stacks on the core's simulated link;
//! - `compare` is the `smolsock-compare` crate; this binary only prints its table.

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory as _, Parser as _};

mod cli;
mod demo;
mod driver;
mod input;
mod output;
mod programs;
mod stacks;

use cli::{BoardArg, Cli, Command, StackKind};
use output::Printer;
use programs::run_program;
use smolsock_compare::board::{BoardSpec, DEFAULT_FIRMWARE, SerialBoard};
use smolsock_frames::Style;
use stacks::{OnBoard, OnKernel, OnSmoltcp};

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
            // One line: clap's message without the usage block that follows it (a message
            // that ends in a colon, such as the missing arguments', with its list).
            let rendered = e.to_string();
            let mut lines = rendered.lines();
            let mut first = lines.next().unwrap_or("invalid arguments").to_string();
            if first.ends_with(':') {
                let list: Vec<&str> = lines
                    .take_while(|l| l.starts_with("  "))
                    .map(str::trim)
                    .collect();
                first = format!("{} {}", first, list.join(", "));
            }
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

fn run(cli: Cli) -> Result<(), Failure> {
    let json = cli.command.json();
    let mut printer = Printer::new(json);
    if let Command::Compare {
        markdown,
        only,
        arrows,
        board,
        firmware,
        board_if,
        board_peer,
        board_ip,
        baud,
        ..
    } = &cli.command
    {
        if cli.pcap.is_some() {
            return Err(Failure::Usage(
                "--pcap does not apply to compare; it captures by itself".into(),
            ));
        }
        let board = match board {
            None => None,
            Some(BoardArg::Qemu) => {
                if board_if.is_some() || board_peer.is_some() || board_ip.is_some() {
                    return Err(Failure::Usage(
                        "--board-if, --board-peer and --board-ip are for a board on a serial \
                         device; --board qemu has a network of its own"
                            .into(),
                    ));
                }
                Some(BoardSpec::Qemu(
                    firmware.clone().unwrap_or_else(|| DEFAULT_FIRMWARE.into()),
                ))
            }
            Some(BoardArg::Serial(device)) => {
                let (Some(interface), Some(peer)) = (board_if, board_peer) else {
                    return Err(Failure::Usage(format!(
                        "compare --board {}: give --board-if (this machine's interface on the \
                         board's network) and --board-peer (this machine's address there)",
                        device.display()
                    )));
                };
                let ip = match board_ip {
                    Some(ip) => *ip,
                    None => cli::parse_cidr(cli::DEFAULT_BOARD_IP)?,
                };
                if !ip.contains_addr(peer) || ip.address() == *peer {
                    return Err(Failure::Usage(format!(
                        "--board-peer {peer} must be another address in the board's subnet {}",
                        ip.network()
                    )));
                }
                Some(BoardSpec::Serial(SerialBoard {
                    device: device.clone(),
                    baud: *baud,
                    interface: interface.clone(),
                    peer: *peer,
                    ip: ip.address(),
                    prefix: ip.prefix_len(),
                }))
            }
        };
        return compare(json, *markdown, only, arrows.style(*markdown), board);
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
            if let Some(flag) = device.board_flags().first() {
                return Err(Failure::Usage(format!("{flag} needs --stack board")));
            }
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
            flags.extend(device.board_flags());
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
        StackKind::Board => {
            if let Some(flag) = device.host_device_flags().first() {
                return Err(Failure::Usage(format!(
                    "{flag} configures smoltcp on a host device; with --stack board the stack \
                     is the board's, with the board's buffers and its own link"
                )));
            }
            device.check_addresses().map_err(Failure::Usage)?;
            let board = device.board.board.clone().unwrap_or(BoardArg::Qemu);
            if cli.pcap.is_some() && board != BoardArg::Qemu {
                return Err(Failure::Usage(
                    "--pcap with --stack board needs --board qemu (QEMU records the board's \
                     frames); capture a real board's Ethernet with tcpdump"
                        .into(),
                ));
            }
            let launcher = OnBoard {
                device,
                board,
                pcap: cli.pcap,
                policy,
            };
            run_program(launcher, cli.command, &mut printer)
        }
    }
}

/// `smolsock compare`: enters a namespace of its own, runs the scenarios, prints the table.
fn compare(
    json: bool,
    markdown: bool,
    only: &[String],
    style: Style,
    board: Option<BoardSpec>,
) -> Result<(), Failure> {
    use smolsock_compare::{self as compare, report};
    compare::check_ids(only).map_err(Failure::Usage)?;
    // First, while this process has a single thread.
    let namespace = smolsock_linux::netns::enter()
        .map_err(|e| format!("smolsock compare needs a network namespace of its own: {e}"))?;
    log::info!("in a new network namespace: {namespace:?}");
    let mut lab = match &board {
        Some(spec) => Some(compare::board::BoardLab::start(spec, &namespace)?),
        None => None,
    };
    let rows = compare::run(only, &namespace, lab.as_mut())?;
    if json {
        println!("{:#}", report::json(&rows, style));
    } else if markdown {
        print!("{}", report::markdown(&rows, style));
    } else {
        print!("{}", report::text(&rows, style));
    }
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| r.failed())
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
