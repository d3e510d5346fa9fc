//! The three stacks a program runs on: smoltcp on a TAP or TUN device (with `--pcap` and
//! `--faults` between them), the host kernel's own stack (`--stack kernel`), or smoltcp on
//! a board running the remote firmware, over its serial link (`--stack board`).

use std::path::PathBuf;

use smolsock::faults::{FaultConfig, FaultInjector, FaultStats};
use smolsock::smol::{ListenPolicy, StackConfig};
use smolsock::{Program, Stack};
use smolsock_compare::board::{DEFAULT_FIRMWARE, EmulatedBoard};
use smolsock_linux::pcap::{PcapDevice, PcapFile};
use smolsock_linux::stack::{HostStack, Sizing, build_stack, random_seed};
use smolsock_linux::tap::{Kind, Offload, TunTap};
use smolsock_remote::host::{Link, RemoteStack};
use smolsock_remote::wire::Config as BoardConfig;
use smolsock_std::KernelStack;
use smoltcp::phy::Medium;

use crate::Failure;
use crate::cli::{
    BoardArg, DEFAULT_IP, DEFAULT_MAC, DEFAULT_TCP_BUF, DeviceArgs, OnOff, parse_cidr,
};
use crate::driver::{self, RunError};
use crate::input::LineInput;
use crate::output::Printer;

/// Runs a program on one of the two stacks.
pub(crate) trait Launch {
    /// The stack the program runs on.
    type Stack: Stack + 'static;
    /// Runs `program` until it finishes; `tcp_sockets` is how many TCP sockets it may use
    /// at once, `udp_sockets` how many UDP sockets (at least the stack's usual two).
    fn launch(
        self,
        tcp_sockets: usize,
        udp_sockets: usize,
        program: &mut dyn Program<Self::Stack>,
        input: LineInput,
        printer: &mut Printer,
    ) -> Result<(), Failure>;
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
pub(crate) struct OnSmoltcp {
    pub(crate) device: DeviceArgs,
    pub(crate) pcap: Option<PathBuf>,
    pub(crate) policy: ListenPolicy,
}

impl Launch for OnSmoltcp {
    type Stack = HostStack;

    fn launch(
        self,
        tcp_sockets: usize,
        udp_sockets: usize,
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
            udp_sockets: udp_sockets.max(Sizing::default().udp_sockets),
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
        // Large TCP segments both ways, unless asked not to, or a capture or the fault
        // injector must see each segment as the wire carries it.
        let offload = match args.offload {
            Some(OnOff::Off) => Offload::Off,
            _ if args.faults.is_some() || pcap.is_some() => Offload::Off,
            _ => Offload::On,
        };
        let device = TunTap::open_with(&name, kind, offload).map_err(|e| e.to_string())?;
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
pub(crate) struct OnKernel;

impl Launch for OnKernel {
    type Stack = KernelStack;

    fn launch(
        self,
        _tcp_sockets: usize,
        _udp_sockets: usize,
        program: &mut dyn Program<KernelStack>,
        mut input: LineInput,
        printer: &mut Printer,
    ) -> Result<(), Failure> {
        let mut stack = KernelStack::new();
        outcome(driver::run_kernel(&mut stack, program, &mut input, printer))
    }
}

/// smoltcp on a board (the remote firmware), over its serial link.
pub(crate) struct OnBoard {
    pub(crate) device: DeviceArgs,
    pub(crate) board: BoardArg,
    pub(crate) pcap: Option<PathBuf>,
    pub(crate) policy: ListenPolicy,
}

/// How long a board on a serial device has to answer the handshake.
const SERIAL_HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(20);

/// Where the emulated board's log goes: its warnings and errors always, the rest with -v.
fn board_log() -> qemu_run::Sink {
    let verbose = log::log_enabled!(log::Level::Debug);
    qemu_run::Sink::Each(Box::new(move |message: &qemu_run::Message<'_>| {
        if verbose || matches!(message.level, Some("warn" | "error")) {
            eprintln!("board: {}", message.line());
        }
    }))
}

impl Launch for OnBoard {
    type Stack = RemoteStack;

    fn launch(
        self,
        _tcp_sockets: usize,
        _udp_sockets: usize,
        program: &mut dyn Program<RemoteStack>,
        mut input: LineInput,
        printer: &mut Printer,
    ) -> Result<(), Failure> {
        let args = self.device;
        let (emulated, mut stack) = match self.board {
            BoardArg::Qemu => {
                let elf = args
                    .board
                    .firmware
                    .clone()
                    .unwrap_or_else(|| DEFAULT_FIRMWARE.into());
                let tap = args.tap.clone().unwrap_or_else(|| "tap0".to_string());
                let (emulated, stack) = EmulatedBoard::boot(&elf, &tap, self.pcap, board_log())?;
                (Some(emulated), stack)
            }
            BoardArg::Serial(path) => {
                let link = Link::tty(&path, args.board.baud).map_err(|e| {
                    format!(
                        "cannot open the board's serial device {}: {e}",
                        path.display()
                    )
                })?;
                let stack = RemoteStack::connect(link, SERIAL_HANDSHAKE)
                    .map_err(|e| format!("no session with the board: {e}"))?;
                (None, stack)
            }
        };
        let ip = match args.ip {
            Some(ip) => ip,
            None => parse_cidr(DEFAULT_IP)?,
        };
        let config = BoardConfig {
            mac: args.mac.unwrap_or(DEFAULT_MAC).0,
            ip: ip.address().octets(),
            prefix: ip.prefix_len(),
            gateway: args.gateway.map(|g| g.octets()),
            seed: random_seed()?,
        };
        let board_error = |stack: &RemoteStack, e: smolsock::Error| {
            Failure::Message(
                stack
                    .failure()
                    .unwrap_or_else(|| format!("the board refused: {e}")),
            )
        };
        stack.restart(config).map_err(|e| board_error(&stack, e))?;
        stack
            .set_listen_policy(self.policy)
            .map_err(|e| board_error(&stack, e))?;
        let result = driver::run_board(&mut stack, program, &mut input, printer);
        drop(emulated);
        outcome(result)
    }
}
