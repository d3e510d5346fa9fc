//! `qemu-run [--tap IF] ELF [-- QEMU-ARGS...]`: boots a firmware ELF on QEMU's
//! `lm3s6965evb` with its Ethernet MAC on the existing TAP device `IF` (default `tap0`;
//! `none` boots without a NIC), decodes the defmt frames the firmware writes through
//! semihosting (QEMU's stdout) with the ELF's defmt table, and prints one line per log
//! message: the message text, prefixed by its level unless the level is INFO (so a
//! program's events read exactly as the host binary prints them).
//!
//! The exit status is QEMU's, i.e. the firmware's semihosting exit code. QEMU runs in a
//! process group of its own and dies with `qemu-run`: on SIGINT, SIGTERM or SIGHUP the
//! group is killed, and if `qemu-run` itself is killed the kernel sends QEMU SIGKILL
//! (`PR_SET_PDEATHSIG`).
//!
//! The TAP must exist: QEMU running as root would otherwise create one in the current
//! network namespace.

#![expect(
    unsafe_code,
    reason = "a signal handler (signal, _exit) and pre_exec: the process plumbing QEMU needs"
)]

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};

use defmt_decoder::{DecodeError, Table};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// What `lm3s6965evb` writes to stderr at every start (harmless, before any guest code).
const QEMU_NOISE: &str = "Timer with period zero, disabling";

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

/// Kills QEMU's process group when dropped (early return, panic).
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            // The group is QEMU's own (process_group(0)).
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = self.0.wait();
        QEMU_PGID.store(0, Ordering::SeqCst);
    }
}

/// Whether a network device of that name exists in this network namespace
/// (`if_nametoindex`; /sys/class/net may show another namespace's devices).
fn interface_exists(name: &str) -> bool {
    nix::net::if_::if_nametoindex(name).is_ok_and(|index| index != 0)
}

struct Args {
    tap: String,
    elf: PathBuf,
    qemu_args: Vec<String>,
}

const USAGE: &str = "usage: qemu-run [--tap IF|none] ELF [-- QEMU-ARGS...]";

fn parse_args() -> Result<Args, String> {
    let mut tap = std::env::var("SMOLSOCK_TAP").unwrap_or_else(|_| "tap0".into());
    let mut elf = None;
    let mut qemu_args = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--tap" => tap = args.next().ok_or("--tap needs a device name")?,
            "-h" | "--help" => return Err(USAGE.into()),
            "--" => qemu_args.extend(args.by_ref()),
            _ if elf.is_none() => elf = Some(PathBuf::from(arg)),
            // cargo's runner passes program arguments after the ELF: hand them to QEMU.
            _ => qemu_args.push(arg),
        }
    }
    let elf = elf.ok_or(USAGE)?;
    Ok(Args {
        tap,
        elf,
        qemu_args,
    })
}

fn run() -> Result<ExitCode, String> {
    let args = parse_args()?;
    let bytes =
        std::fs::read(&args.elf).map_err(|e| format!("cannot read {}: {e}", args.elf.display()))?;
    let table = Table::parse(&bytes)
        .map_err(|e| format!("{}: bad defmt data: {e}", args.elf.display()))?
        .ok_or_else(|| format!("{}: no defmt data in this ELF", args.elf.display()))?;

    let nic = if args.tap == "none" {
        "none".to_string()
    } else if interface_exists(&args.tap) {
        format!("tap,ifname={},script=no,downscript=no", args.tap)
    } else {
        return Err(format!(
            "no network device '{}' here: create the TAP first (see boards/qemu-lm3s6965/README.md) \
             or pass --tap none",
            args.tap
        ));
    };

    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: installs an async-signal-safe handler (see `on_signal`).
        unsafe { libc::signal(signal, on_signal as *const () as libc::sighandler_t) };
    }
    let mut cmd = Command::new("qemu-system-arm");
    cmd.args(["-cpu", "cortex-m3", "-machine", "lm3s6965evb"])
        .args(["-display", "none", "-monitor", "none", "-serial", "null"])
        .args(["-semihosting-config", "enable=on,target=native"])
        .args(["-nic", &nic])
        .arg("-kernel")
        .arg(&args.elf)
        .args(&args.qemu_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let die_with_parent =
        || nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from);
    // SAFETY: the closure runs between fork and exec, where only async-signal-safe calls
    // are allowed: it makes one (prctl) and allocates nothing.
    unsafe { cmd.pre_exec(die_with_parent) };
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start qemu-system-arm: {e}"))?;
    let mut guard = Guard(child);
    if let Ok(pid) = i32::try_from(guard.0.id()) {
        QEMU_PGID.store(pid, Ordering::SeqCst);
    }
    let mut qemu_out = guard.0.stdout.take().ok_or("no pipe from QEMU")?;
    if let Some(qemu_err) = guard.0.stderr.take() {
        // QEMU's own messages, minus the one the machine prints at every start.
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(qemu_err)
                .lines()
                .map_while(Result::ok)
            {
                if !line.contains(QEMU_NOISE) {
                    eprintln!("{line}");
                }
            }
        });
    }

    let mut decoder = table.new_stream_decoder();
    let stdout = std::io::stdout();
    let mut buf = [0u8; 4096];
    loop {
        let n = match qemu_out.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("reading QEMU's output: {e}")),
        };
        decoder.received(&buf[..n]);
        let mut out = stdout.lock();
        loop {
            match decoder.decode() {
                Ok(frame) => {
                    let level = frame.level().map(|l| l.as_str()).unwrap_or("print");
                    let message = frame.display_message().to_string();
                    let _ = if level == "info" {
                        writeln!(out, "{message}")
                    } else {
                        writeln!(out, "{}: {message}", level.to_uppercase())
                    };
                }
                Err(DecodeError::UnexpectedEof) => break,
                Err(DecodeError::Malformed) if table.encoding().can_recover() => {
                    let _ = writeln!(out, "qemu-run: malformed defmt frame skipped");
                }
                Err(DecodeError::Malformed) => {
                    return Err("malformed defmt frame (encoding cannot recover)".into());
                }
            }
        }
        let _ = out.flush();
    }
    let status = guard
        .0
        .wait()
        .map_err(|e| format!("waiting for QEMU: {e}"))?;
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
