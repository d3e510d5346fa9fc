//! Each program's flags turned into its core configuration: what `udp-recv`, `udp-send`,
//! `tcp-server`, `tcp-client` and `iperf3` build from the command line, the same for both
//! stacks.

use smolsock::programs::iperf3::{
    Iperf3Client, Iperf3ClientConfig, Iperf3Server, Iperf3ServerConfig, Iperf3Udp,
};
use smolsock::programs::{
    Pace, ServeMode, TcpClient, TcpClientConfig, TcpServer, TcpServerConfig, TcpTimeouts,
    UdpReceiver, UdpReceiverConfig, UdpSender, UdpSenderConfig,
};
use smoltcp::time::Duration;

use crate::Failure;
use crate::cli::{Command, Mode, PaceArg, TimeoutArgs};
use crate::input::LineInput;
use crate::output::Printer;
use crate::stacks::Launch;

/// Most clients one `tcp-server` serves at once; more wait in the backlog.
const MAX_CLIENTS: usize = 32;

/// Most parallel streams of an iperf3 test (`-P`); iperf3's own limit is 128.
const IPERF3_STREAMS: usize = 16;

/// Connections an iperf3 server's listener holds before they are accepted: the control
/// connection and the streams come one after the other, a second client now and then.
const IPERF3_BACKLOG: usize = 4;

/// Bytes of the control messages: twice what 16 streams' results take, for clients that
/// send longer ones.
const IPERF3_CONTROL: usize = 16 * 1024;

/// Bytes one read or write of an iperf3 data stream moves at most. Page-aligned: on the
/// kernel twin, receiving into a buffer at malloc's usual 16 bytes past a page boundary
/// ran at half the speed or less (6 against 11 Gbit/s over loopback).
const IPERF3_BLOCK: usize = 256 * 1024;

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

pub(crate) fn seconds(s: f64) -> Duration {
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

/// The same program construction for both stacks: only [`Launch`] differs.
pub(crate) fn run_program<L: Launch>(
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
            launcher.launch(0, 0, &mut program, LineInput::none(), printer)
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
            launcher.launch(0, 0, &mut program, input_for(messages), printer)
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
            launcher.launch(sockets, 0, program.as_mut(), input, printer)
        }
        Command::Iperf3 {
            client,
            port,
            time,
            bytes,
            reverse,
            parallel,
            udp,
            bitrate,
            length,
            one_off,
            timeout,
            timeouts,
            ..
        } => {
            let mut control = vec![0u8; IPERF3_CONTROL];
            let mut store = vec![0u8; IPERF3_BLOCK + 4096];
            let at = store.as_ptr().align_offset(4096).min(4096);
            let data = &mut store[at..at + IPERF3_BLOCK];
            // (`at` is at most 4096, so the slice is in bounds.)
            let idle_timeout = optional_seconds(timeouts.idle_timeout);
            let timeouts = tcp_timeouts(timeouts);
            match client {
                Some(ip) => {
                    let config = Iperf3ClientConfig {
                        to: std::net::SocketAddrV4::new(ip, port),
                        secs: if bytes.is_some() { 0 } else { time },
                        bytes,
                        reverse,
                        streams: parallel,
                        seed: smolsock_linux::stack::random_seed()?,
                        connect_timeout: seconds(timeout),
                        idle_timeout,
                        timeouts,
                        udp: udp.then_some(Iperf3Udp {
                            rate: bitrate,
                            len: length,
                        }),
                    };
                    let mut program = Box::new(Iperf3Client::<
                        L::Stack,
                        IPERF3_STREAMS,
                        IPERF3_STREAMS,
                    >::new(
                        config, &mut control, data
                    ));
                    let sockets = 2 * (IPERF3_STREAMS + 1);
                    // A UDP test's streams each have a socket of their own.
                    let udp_sockets = if udp { usize::from(parallel) } else { 0 };
                    launcher.launch(
                        sockets,
                        udp_sockets,
                        program.as_mut(),
                        LineInput::none(),
                        printer,
                    )
                }
                None => {
                    let config = Iperf3ServerConfig {
                        port,
                        backlog: IPERF3_BACKLOG,
                        max_tests: one_off.then_some(1),
                        idle_timeout,
                        timeouts,
                    };
                    let mut program = Box::new(Iperf3Server::<
                        L::Stack,
                        IPERF3_STREAMS,
                        IPERF3_STREAMS,
                    >::new(
                        config, &mut control, data
                    ));
                    // The test's connections, the backlog, and room for the last tests'
                    // connections while they close.
                    let sockets = IPERF3_BACKLOG + 3 * (IPERF3_STREAMS + 1) + 4;
                    launcher.launch(sockets, 0, program.as_mut(), LineInput::none(), printer)
                }
            }
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
            launcher.launch(8, 0, &mut program, input, printer)
        }
    }
}
