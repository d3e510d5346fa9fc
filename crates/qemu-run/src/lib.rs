//! Boots a board firmware ELF in QEMU's `lm3s6965evb` (the emulated board of
//! boards/qemu-lm3s6965) and decodes its defmt log: the library behind the `qemu-run`
//! binary, for host tools that drive the emulated board (the `smolsock` CLI's board stack,
//! `smolsock compare --board qemu`).
//!
//! ```no_run
//! use std::time::Duration;
//! use qemu_run::{Config, Qemu, Sink};
//!
//! let mut config = Config::new("target/thumbv7m-none-eabi/release/remote");
//! config.tap = Some("tap0".into());
//! config.serial = Some("/tmp/board.sock".into());
//! let mut qemu = Qemu::boot(&config, Sink::Stderr)?;
//! let path = qemu.wait_for_serial(Duration::from_secs(10))?;
//! let uart0 = std::os::unix::net::UnixStream::connect(path)?;
//! // ... talk to the firmware over `uart0`; dropping `qemu` kills QEMU.
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What a boot wires up
//! - **The NIC** ([`Config::tap`]): the board's Ethernet MAC on an existing TAP device
//!   (`-nic tap,id=net0,ifname=IF`), or no NIC. The TAP must exist: QEMU running as root
//!   would otherwise create one in the current network namespace, so [`Qemu::boot`]
//!   refuses a name it cannot find.
//! - **UART0** ([`Config::serial`]): a unix socket QEMU listens on at the given path
//!   (`-chardev socket,server=on,wait=off`; the firmware does not wait for a client), or
//!   nothing (`-serial null`). QEMU creates the socket as it starts:
//!   [`Qemu::wait_for_serial`] waits for it, bounded.
//! - **A capture** ([`Config::pcap`]): every frame the board sent and received, as QEMU's
//!   `filter-dump` writes it on the NIC's netdev (pcap, Ethernet).
//! - **The log**: the firmware writes defmt frames through semihosting (QEMU's stdout); a
//!   thread decodes them with the ELF's table and hands each message to the [`Sink`]: its
//!   text (the host decoder's, so an event reads as the host binary prints it), its level,
//!   the board's clock, and, for a program event, the event itself ([`Message::event`]),
//!   rebuilt from the frame's arguments (never parsed back from the text), which
//!   [`Message::json`] prints as the host's `--json` line.
//!
//! # Lifetime
//! QEMU runs in a process group of its own. Dropping the [`Qemu`] handle kills the group
//! and reaps it; if the process dies without dropping it, the kernel sends QEMU SIGKILL
//! (`PR_SET_PDEATHSIG`: the parent is the *thread* that called [`Qemu::boot`], so boot
//! from a thread that outlives the board, e.g. the main thread). A program that wants
//! QEMU killed on SIGINT/SIGTERM installs its own handler and kills [`Qemu::pid`]'s group
//! (the `qemu-run` binary does).

#![expect(
    unsafe_code,
    reason = "pre_exec: the child's parent-death signal, set between fork and exec"
)]

mod event;
mod frames;

use std::fmt;
use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use defmt_decoder::{DecodeError, Encoding, Table};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::Serialize;

pub use event::OwnedEvent;
use event::{Extra, RECORD_PREFIX};
use frames::{Arg, Strings};

/// What `lm3s6965evb` writes to stderr at every start (harmless, before any guest code).
const QEMU_NOISE: &str = "Timer with period zero, disabling";

/// The longest path a unix socket takes (`sun_path`, 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// What to boot and how to wire it.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The firmware ELF (with its defmt table).
    pub elf: PathBuf,
    /// The TAP device for the board's NIC; `None`: no NIC.
    pub tap: Option<String>,
    /// Where QEMU listens for a client of the board's UART0 (a unix socket it creates);
    /// `None`: UART0 goes nowhere. A socket left at that path by an earlier run is
    /// replaced; any other file there is an error.
    pub serial: Option<PathBuf>,
    /// Where to write every frame of the NIC, pcap (needs `tap`).
    pub pcap: Option<PathBuf>,
    /// More arguments for `qemu-system-arm`, after the ones the boot sets.
    pub qemu_args: Vec<String>,
}

impl Config {
    /// Boots `elf` without a NIC, serial port or capture.
    pub fn new(elf: impl Into<PathBuf>) -> Config {
        Config {
            elf: elf.into(),
            ..Config::default()
        }
    }
}

/// Why a boot or a wait failed, in words for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// One decoded log message of the board.
#[derive(Debug)]
pub struct Message<'a> {
    /// `"info"`, `"warn"`, `"error"`, `"debug"`, `"trace"`, or `None` (`println!`).
    pub level: Option<&'static str>,
    /// The message as defmt's decoder writes it (an event: as the host binary prints it).
    pub text: &'a str,
    /// The board's clock when it logged the message, in seconds since its boot (its defmt
    /// timestamp, to the millisecond).
    pub board_seconds: Option<f64>,
    /// The program event the message is, if it is one.
    pub event: Option<&'a OwnedEvent>,
}

impl Message<'_> {
    /// The line `qemu-run` prints: the text, prefixed by the level unless it is INFO (so a
    /// program's events read exactly as the host binary prints them).
    pub fn line(&self) -> String {
        match self.level.unwrap_or("print") {
            "info" => self.text.to_string(),
            level => format!("{}: {}", level.to_uppercase(), self.text),
        }
    }

    /// The event as the host's `--json` prints it: its `smolsock::event::Record` (the
    /// host's own serializer), then `t`, here the board's clock since its boot (the host
    /// counts from the program's start). `None` for a message that is not an event.
    pub fn json(&self) -> Option<String> {
        let owned = self.event?;
        let event = owned.event();
        let line = Line {
            fields: &event,
            t: self.board_seconds,
        };
        let unknown = owned.unknown_fields();
        if unknown.is_empty() {
            return serde_json::to_string(&line).ok();
        }
        // Fields the board did not send: null, not a rounded value.
        let mut value = serde_json::to_value(&line).ok()?;
        for key in unknown {
            if let Some(field) = value.get_mut(*key) {
                *field = serde_json::Value::Null;
            }
        }
        Some(value.to_string())
    }
}

/// One JSON line: the event's record, then the board's clock.
#[derive(Serialize)]
struct Line<'a, 'e> {
    #[serde(flatten)]
    fields: &'a smolsock::Event<'e>,
    #[serde(skip_serializing_if = "Option::is_none")]
    t: Option<f64>,
}

/// Where the decoded log goes.
pub enum Sink {
    /// Each message's [`line`](Message::line) to stderr.
    Stderr,
    /// Nowhere.
    Discard,
    /// To a callback, one call per message, on the decoding thread, in order.
    Each(Box<dyn FnMut(&Message<'_>) + Send>),
}

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Sink::Stderr => "Sink::Stderr",
            Sink::Discard => "Sink::Discard",
            Sink::Each(_) => "Sink::Each(..)",
        })
    }
}

impl Sink {
    fn send(&mut self, message: &Message<'_>) {
        match self {
            Sink::Stderr => eprintln!("{}", message.line()),
            Sink::Discard => {}
            Sink::Each(f) => f(message),
        }
    }
}

/// A running QEMU. Dropping it kills QEMU's process group.
#[derive(Debug)]
pub struct Qemu {
    child: Child,
    status: Option<ExitStatus>,
    serial: Option<PathBuf>,
    /// The log's decoding thread: it ends when QEMU's stdout closes.
    log: Option<JoinHandle<()>>,
}

/// Whether a network device of that name exists in this network namespace
/// (`if_nametoindex`; /sys/class/net may show another namespace's devices).
pub fn interface_exists(name: &str) -> bool {
    nix::net::if_::if_nametoindex(name).is_ok_and(|index| index != 0)
}

/// Checks the serial socket's path and clears a stale socket there.
fn prepare_socket(path: &Path) -> Result<(), Error> {
    if path.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(Error(format!(
            "serial socket path {} is longer than the {MAX_SOCKET_PATH} bytes a unix socket takes",
            path.display()
        )));
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(Error(format!(
            "no directory {} for the serial socket {}",
            dir.display(),
            path.display()
        )));
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path).map_err(|e| {
            Error(format!(
                "cannot remove the old socket {}: {e}",
                path.display()
            ))
        }),
        Ok(_) => Err(Error(format!(
            "{} exists and is not a socket: choose another path for the serial port",
            path.display()
        ))),
        Err(_) => Ok(()),
    }
}

/// The `qemu-system-arm` arguments for `config` (`table_ok`: the ELF was checked).
fn qemu_command(config: &Config) -> Result<Command, Error> {
    let mut cmd = Command::new("qemu-system-arm");
    cmd.args(["-cpu", "cortex-m3", "-machine", "lm3s6965evb"])
        .args(["-display", "none", "-monitor", "none"])
        .args(["-semihosting-config", "enable=on,target=native"]);
    match &config.serial {
        Some(path) => {
            prepare_socket(path)?;
            let path = path.to_str().filter(|p| !p.contains(',')).ok_or_else(|| {
                Error(format!(
                    "serial socket path {}: QEMU takes UTF-8 without commas",
                    path.display()
                ))
            })?;
            cmd.arg("-chardev")
                .arg(format!("socket,id=uart0,path={path},server=on,wait=off"))
                .args(["-serial", "chardev:uart0"]);
        }
        None => {
            cmd.args(["-serial", "null"]);
        }
    }
    match &config.tap {
        Some(tap) if interface_exists(tap) => {
            cmd.arg("-nic")
                .arg(format!("tap,id=net0,ifname={tap},script=no,downscript=no"));
        }
        Some(tap) => {
            return Err(Error(format!(
                "no network device '{tap}' here: create the TAP first (see \
                 boards/qemu-lm3s6965/README.md) or boot without a NIC"
            )));
        }
        None => {
            cmd.args(["-nic", "none"]);
        }
    }
    if let Some(pcap) = &config.pcap {
        if config.tap.is_none() {
            return Err(Error(
                "a capture needs the NIC: give a TAP device to capture on".into(),
            ));
        }
        let file = pcap.to_str().filter(|p| !p.contains(',')).ok_or_else(|| {
            Error(format!(
                "capture file {}: QEMU takes UTF-8 without commas",
                pcap.display()
            ))
        })?;
        // QEMU writes the file; a missing directory is said here, not in QEMU's words.
        std::fs::File::create(pcap)
            .map_err(|e| Error(format!("cannot write the capture {}: {e}", pcap.display())))?;
        cmd.arg("-object")
            .arg(format!("filter-dump,id=dump0,netdev=net0,file={file}"));
    }
    cmd.arg("-kernel").arg(&config.elf).args(&config.qemu_args);
    Ok(cmd)
}

impl Qemu {
    /// Boots `config.elf` and starts decoding its log into `sink`. Fails, before QEMU
    /// starts, on an ELF without defmt data, a TAP that does not exist, a serial path in a
    /// directory that does not exist, a capture without a NIC.
    pub fn boot(config: &Config, sink: Sink) -> Result<Qemu, Error> {
        let elf = &config.elf;
        let bytes =
            std::fs::read(elf).map_err(|e| Error(format!("cannot read {}: {e}", elf.display())))?;
        let table = Table::parse(&bytes)
            .map_err(|e| Error(format!("{}: bad defmt data: {e}", elf.display())))?
            .ok_or_else(|| Error(format!("{}: no defmt data in this ELF", elf.display())))?;
        let strings =
            Strings::parse(&bytes).map_err(|e| Error(format!("{}: {e}", elf.display())))?;
        let mut cmd = qemu_command(config)?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let die_with_parent =
            || nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from);
        // SAFETY: the closure runs between fork and exec, where only async-signal-safe
        // calls are allowed: it makes one (prctl) and allocates nothing.
        unsafe { cmd.pre_exec(die_with_parent) };
        let mut child = cmd
            .spawn()
            .map_err(|e| Error(format!("cannot start qemu-system-arm: {e}")))?;
        let stdout = child.stdout.take();
        if let Some(qemu_err) = child.stderr.take() {
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
        let mut qemu = Qemu {
            child,
            status: None,
            serial: config.serial.clone(),
            log: None,
        };
        let stdout = stdout.ok_or_else(|| Error("no pipe from QEMU".into()))?;
        let log = std::thread::Builder::new()
            .name("qemu-log".into())
            .spawn(move || decode_log(stdout, &table, &strings, sink))
            .map_err(|e| Error(format!("cannot start the log thread: {e}")))?;
        qemu.log = Some(log);
        Ok(qemu)
    }

    /// QEMU's process id, which is also its process group's.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// QEMU's exit status, once it has exited (`None` while it runs).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Whether QEMU is still running.
    pub fn is_running(&mut self) -> bool {
        self.try_status().is_none()
    }

    /// Waits for QEMU to exit and for the rest of its log to be decoded.
    pub fn wait(&mut self) -> Result<ExitStatus, Error> {
        let status = match self.status {
            Some(status) => status,
            None => self
                .child
                .wait()
                .map_err(|e| Error(format!("waiting for QEMU: {e}")))?,
        };
        self.status = Some(status);
        self.join_log();
        Ok(status)
    }

    /// Waits at most `timeout` for QEMU to exit: its status (the log decoded to its end),
    /// or `None` if it still runs.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status() {
                self.join_log();
                return Some(status);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits at most `timeout` for QEMU to create the serial port's socket, and returns
    /// its path. Fails when the boot has no serial port, QEMU exits first, or the time is
    /// up.
    pub fn wait_for_serial(&mut self, timeout: Duration) -> Result<PathBuf, Error> {
        let path = self
            .serial
            .clone()
            .ok_or_else(|| Error("this board was booted without a serial port".into()))?;
        let end = Instant::now() + timeout;
        loop {
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_socket()) {
                return Ok(path);
            }
            if let Some(status) = self.try_status() {
                return Err(Error(format!(
                    "QEMU exited ({status}) before its serial socket {} appeared",
                    path.display()
                )));
            }
            if Instant::now() >= end {
                return Err(Error(format!(
                    "QEMU's serial socket {} did not appear within {timeout:?}",
                    path.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills QEMU's process group and reaps QEMU.
    pub fn kill(&mut self) {
        if self.status.is_none() {
            if let Ok(pid) = i32::try_from(self.child.id()) {
                // The group is QEMU's own (process_group(0)).
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            self.status = self.child.wait().ok();
        }
        self.join_log();
    }

    fn join_log(&mut self) {
        if let Some(log) = self.log.take() {
            let _ = log.join();
        }
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        // Even after QEMU exited: anything it started in its group goes too.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = self.child.wait();
        self.join_log();
        if let Some(path) = &self.serial
            && std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
        {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The log thread: frames off QEMU's stdout, each decoded twice (defmt-decoder's text,
/// the arguments as data), to the sink, until QEMU's stdout closes.
fn decode_log(mut qemu_out: impl Read, table: &Table, strings: &Strings, mut sink: Sink) {
    let mut decoder = Decoder {
        table,
        strings,
        extra: Extra::default(),
        pending: Vec::new(),
    };
    let mut buf = [0u8; 4096];
    loop {
        let n = match qemu_out.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("qemu-run: reading QEMU's output: {e}");
                break;
            }
        };
        decoder.pending.extend_from_slice(&buf[..n]);
        if !decoder.drain(&mut sink) {
            // Raw frames with garbage between them: nothing after it can be cut.
            eprintln!("qemu-run: malformed defmt frame (this encoding cannot recover)");
            break;
        }
    }
}

struct Decoder<'t> {
    table: &'t Table,
    strings: &'t Strings,
    /// Exact values from a `record:` frame, for the next event.
    extra: Extra,
    /// Bytes not yet cut into frames.
    pending: Vec<u8>,
}

impl Decoder<'_> {
    /// Decodes every whole frame in `pending`; `false` when the stream cannot go on.
    fn drain(&mut self, sink: &mut Sink) -> bool {
        match self.table.encoding() {
            Encoding::Rzcobs => {
                while let Some(zero) = self.pending.iter().position(|&b| b == 0) {
                    let framed: Vec<u8> = self.pending.drain(..=zero).collect();
                    let body = framed.get(..zero).unwrap_or_default();
                    if body.is_empty() {
                        continue;
                    }
                    match frames::rzcobs_decode(body) {
                        Some(frame) => self.frame(&frame, sink),
                        None => eprintln!("qemu-run: malformed defmt frame skipped"),
                    }
                }
                true
            }
            // Raw (and any later encoding): frames back to back, each as long as its format
            // says.
            _ => loop {
                match self.table.decode(&self.pending) {
                    Ok((_, consumed)) => {
                        let frame: Vec<u8> = self.pending.drain(..consumed).collect();
                        self.frame(&frame, sink);
                    }
                    Err(DecodeError::UnexpectedEof) => return true,
                    Err(DecodeError::Malformed) => return false,
                }
            },
        }
    }

    /// One frame's bytes: its text from defmt-decoder, its event from its arguments.
    fn frame(&mut self, bytes: &[u8], sink: &mut Sink) {
        let Ok((frame, _)) = self.table.decode(bytes) else {
            eprintln!("qemu-run: malformed defmt frame skipped");
            return;
        };
        let data = self.strings.frame(bytes);
        let extra = std::mem::take(&mut self.extra);
        if let Some(data) = &data
            && let Some(record) = Extra::parse(data.format, &data.args)
        {
            // Exact values for the next event: data, not a log line.
            self.extra = record;
            return;
        }
        let level = frame.level().map(|l| l.as_str());
        let event = data.as_ref().and_then(|data| match data.args.as_slice() {
            [arg @ Arg::Format(_)] if data.format == "{}" && level == Some("info") => {
                event::rebuild(arg, &extra)
            }
            _ => None,
        });
        let text = frame.display_message().to_string();
        sink.send(&Message {
            level,
            text: &text,
            board_seconds: data.as_ref().and_then(|d| d.timestamp_seconds),
            event: event.as_ref(),
        });
    }
}

/// The prefix of the frames of exact values the emulated board sends before an event
/// whose text rounds them (`record: messages_in={=u64}`): such frames are data for the
/// event's JSON record, never a log line.
pub const RECORD_FRAME_PREFIX: &str = RECORD_PREFIX;
