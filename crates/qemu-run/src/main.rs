//! `qemu-run [--tap IF|none] [--serial PATH] [--pcap FILE] [--json] ELF [-- QEMU-ARGS...]`:
//! boots a firmware ELF on QEMU's `lm3s6965evb` (the `qemu_run` library) with its
//! Ethernet MAC on the existing TAP device `IF` (default `$SMOLSOCK_TAP`, else `tap0`;
//! `none` boots without a NIC), and prints its decoded defmt log.
//!
//! - Text (the default): one line per log message on stdout, the message prefixed by its
//!   level unless the level is INFO, so a program's events read exactly as the host binary
//!   prints them.
//! - `--json`: the program's events on stdout as the JSON lines the host binary's `--json`
//!   prints (docs/events.md), rebuilt from the frames' arguments; `t` is the board's clock
//!   since its boot. Every other log line goes to stderr, as the host's own log does, and
//!   an error event also to stderr as text, as the host does.
//! - `--serial PATH`: the board's UART0 on a unix socket QEMU listens on at `PATH`.
//! - `--pcap FILE`: every frame the board sent and received, in pcap (QEMU's
//!   `filter-dump` on the NIC).
//!
//! The exit status is QEMU's, i.e. the firmware's semihosting exit code; 2 when the board
//! cannot be booted (the message says why). QEMU runs in a process group of its own and
//! dies with `qemu-run`: on SIGINT, SIGTERM or SIGHUP the group is killed, and if
//! `qemu-run` itself is killed the kernel sends QEMU SIGKILL (`PR_SET_PDEATHSIG`).

#![expect(
    unsafe_code,
    reason = "a signal handler (signal, _exit): QEMU's group dies with qemu-run"
)]

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use qemu_run::{Config, Message, Qemu, Sink};

/// Process group of the running QEMU (0: none), for the signal handler.
static QEMU_PGID: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    let pgid = QEMU_PGID.load(Ordering::SeqCst);
    if pgid > 0 {
        // killpg is async-signal-safe.
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
    // SAFETY: _exit is async-signal-safe; it runs no destructor, and none is needed.
    unsafe { libc::_exit(128 + signal) }
}

const USAGE: &str = "usage: qemu-run [--tap IF|none] [--serial PATH] [--pcap FILE] [--json] ELF \
                     [-- QEMU-ARGS...]";

struct Args {
    config: Config,
    json: bool,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut tap = std::env::var("SMOLSOCK_TAP").unwrap_or_else(|_| "tap0".into());
    let mut config = Config::default();
    let mut json = false;
    let mut elf = None;
    while let Some(arg) = args.next() {
        let mut value = |what: &str| {
            args.next()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("{arg} needs {what}\n{USAGE}"))
        };
        match arg.as_str() {
            "--tap" if elf.is_none() => tap = value("a device name (or none)")?,
            "--serial" if elf.is_none() => config.serial = Some(value("a path")?.into()),
            "--pcap" if elf.is_none() => config.pcap = Some(value("a file")?.into()),
            "--json" if elf.is_none() => json = true,
            "-h" | "--help" if elf.is_none() => return Err(USAGE.into()),
            "--" => config.qemu_args.extend(args.by_ref()),
            _ if elf.is_none() && arg.starts_with('-') => {
                return Err(format!("unknown option {arg}\n{USAGE}"));
            }
            _ if elf.is_none() => elf = Some(PathBuf::from(arg)),
            // cargo's runner passes program arguments after the ELF: hand them to QEMU.
            _ => config.qemu_args.push(arg),
        }
    }
    config.elf = elf.ok_or(USAGE)?;
    config.tap = (tap != "none").then_some(tap);
    Ok(Args { config, json })
}

/// Prints each message: its line (text), or its event's JSON line (`--json`, other lines
/// to stderr). A closed stdout (piped into `head`) must not kill the board's run.
fn printer(json: bool) -> Sink {
    Sink::Each(Box::new(move |message: &Message<'_>| {
        let mut out = std::io::stdout().lock();
        if !json {
            let _ = writeln!(out, "{}", message.line());
        } else if let Some(line) = message.json() {
            if message.event.is_some_and(|e| e.event().kind() == "error") {
                eprintln!("{}", message.line());
            }
            let _ = writeln!(out, "{line}");
        } else {
            eprintln!("{}", message.line());
        }
        let _ = out.flush();
    }))
}

fn run() -> Result<ExitCode, String> {
    let args = parse_args(std::env::args().skip(1))?;
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: installs an async-signal-safe handler (see `on_signal`).
        unsafe { libc::signal(signal, on_signal as *const () as libc::sighandler_t) };
    }
    let mut qemu = Qemu::boot(&args.config, printer(args.json)).map_err(|e| e.to_string())?;
    if let Ok(pid) = i32::try_from(qemu.pid()) {
        QEMU_PGID.store(pid, Ordering::SeqCst);
    }
    let status = qemu.wait().map_err(|e| e.to_string())?;
    drop(qemu);
    QEMU_PGID.store(0, Ordering::SeqCst);
    let code = match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 1,
    };
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("qemu-run: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        parse_args(args.iter().map(ToString::to_string))
    }

    #[test]
    fn flags_before_the_elf_and_qemu_arguments_after_it() {
        let args = parse(&[
            "--tap", "tap3", "--serial", "/tmp/s", "--pcap", "x.pcap", "--json", "fw", "-s",
        ])
        .unwrap();
        assert_eq!(args.config.tap.as_deref(), Some("tap3"));
        assert_eq!(args.config.serial, Some(PathBuf::from("/tmp/s")));
        assert_eq!(args.config.pcap, Some(PathBuf::from("x.pcap")));
        assert!(args.json);
        assert_eq!(args.config.elf, PathBuf::from("fw"));
        assert_eq!(args.config.qemu_args, ["-s"]);
        assert_eq!(parse(&["--tap", "none", "fw"]).unwrap().config.tap, None);
    }

    #[test]
    fn unknown_or_incomplete_flags_say_so() {
        let e = parse(&["--frobnicate", "fw"]).err().unwrap();
        assert!(e.starts_with("unknown option --frobnicate"), "{e}");
        let e = parse(&["fw", "--serial"]).unwrap().config.qemu_args;
        assert_eq!(e, ["--serial"], "after the ELF: QEMU's");
        let e = parse(&["--serial"]).err().unwrap();
        assert!(e.starts_with("--serial needs a path"), "{e}");
        assert!(parse(&[]).is_err());
    }
}
