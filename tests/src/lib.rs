//! Test harness for tests that need a network: each test runs in a network namespace of
//! its own, with its own TAP device, so tests run in parallel and never touch the
//! machine's interfaces.
//!
//! [`in_netns`] re-executes the current test binary under `unshare` (a user and network
//! namespace; as root a network namespace alone also works), running only the calling
//! test; inside, it creates `tap0` with the kernel side at 192.168.69.100/24 and runs the
//! test body. [`Proc`] runs a program with bounded waits on its output and is always
//! killed when dropped.
//!
//! [`forge`] sends forged frames to the smoltcp stack and reads what it answers (the
//! attack tests, tests/attack.rs).
//!
//! [`peers`] holds the benchmark's peers: smoltcp's own examples, and kernel-side bulk
//! senders and receivers that stream the test pattern.
//!
//! [`programs`] holds the scenarios shared by the smoltcp (tests/tap.rs) and kernel-stack
//! (tests/kernel.rs) tests, each written once against a [`programs::Target`].

pub mod forge;
pub mod peers;
pub mod programs;
pub mod stock;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The kernel's address on the test TAP.
pub const KERNEL_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 69, 100);
/// The smoltcp stack's address (the `smolsock` default).
pub const SMOL_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 69, 1);
/// The TAP device every namespace gets.
pub const TAP: &str = "tap0";

const CHILD_ENV: &str = "SMOLSOCK_NETNS_TEST";

/// The bound on every wait of the program tests (a program's line, its exit, a peer).
pub const T: Duration = Duration::from_secs(20);

/// Runs `args` and panics with its output unless it succeeds.
pub fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// In a fresh namespace: loopback up, and `tap0` up with the kernel at 192.168.69.100/24.
fn make_tap() {
    sh(&["ip", "link", "set", "lo", "up"]);
    sh(&["ip", "tuntap", "add", "name", TAP, "mode", "tap"]);
    sh(&["ip", "link", "set", TAP, "up"]);
    sh(&["ip", "addr", "add", "192.168.69.100/24", "dev", TAP]);
}

/// Runs `body` inside a fresh network namespace holding `tap0` (kernel side
/// 192.168.69.100/24, up). `name` must be the calling test's function name.
pub fn in_netns(name: &str, body: impl FnOnce()) {
    if std::env::var(CHILD_ENV).as_deref() == Ok(name) {
        make_tap();
        body();
        return;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let attempts: [&[&str]; 2] = [&["-rn"], &["-n"]];
    let mut last = String::new();
    for flags in attempts {
        let out = Command::new("unshare")
            .args(flags)
            .arg(&exe)
            .args([name, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, name)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run unshare (util-linux): {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("unshare failed")
            || stderr.contains("Operation not permitted") && !stdout.contains("running 1 test")
        {
            last = stderr.into_owned();
            continue;
        }
        print!("{stdout}");
        eprint!("{stderr}");
        assert!(
            out.status.success(),
            "test {name} failed inside its network namespace"
        );
        assert!(
            stdout.contains("1 passed"),
            "test {name} did not run inside its namespace"
        );
        return;
    }
    panic!("cannot create a network namespace (user namespaces disabled and not root?): {last}");
}

/// For a standalone program (a benchmark): re-runs the current executable with the same
/// arguments inside a fresh network namespace holding `tap0`, and returns its exit code;
/// returns `None` when already inside (the caller then does its work).
pub fn reexec_in_netns() -> Option<i32> {
    const INSIDE: &str = "SMOLSOCK_NETNS_MAIN";
    if std::env::var_os(INSIDE).is_some() {
        make_tap();
        return None;
    }
    let exe = std::env::current_exe().expect("executable path");
    for flags in ["-rn", "-n"] {
        let status = Command::new("unshare")
            .arg(flags)
            .arg(&exe)
            .args(std::env::args().skip(1))
            .env(INSIDE, "1")
            .status();
        if let Ok(status) = status
            && status.code() != Some(1)
        {
            return Some(status.code().unwrap_or(1));
        }
    }
    eprintln!("cannot create a network namespace (needs root or unprivileged user namespaces)");
    Some(1)
}

/// Path of the host binary `name` of `package`, from `$env` or next to this test binary.
fn workspace_bin(name: &str, package: &str, env: &str) -> PathBuf {
    if let Ok(path) = std::env::var(env) {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target directory");
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build -p {package}`",
        bin.display()
    );
    bin
}

/// Path of the `smolsock` binary (`$SMOLSOCK_BIN`, or built next to this test binary).
pub fn smolsock_bin() -> PathBuf {
    workspace_bin("smolsock", "smolsock-cli", "SMOLSOCK_BIN")
}

/// The emulated board's address (QEMU `lm3s6965evb`, boards/qemu-lm3s6965).
pub const BOARD_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 69, 3);

/// Path of the `qemu-run` binary (crates/qemu-run; `$QEMU_RUN_BIN`, or built next to this
/// test binary).
pub fn qemu_run_bin() -> PathBuf {
    workspace_bin("qemu-run", "qemu-run", "QEMU_RUN_BIN")
}

/// Path of the release ELF of the emulated board's firmware `name` (e.g. `tcp-server`).
pub fn board_elf(name: &str) -> PathBuf {
    let elf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../boards/qemu-lm3s6965/target/thumbv7m-none-eabi/release")
        .join(name);
    assert!(
        elf.exists(),
        "{} is missing: run `cargo xtask boards` first (it builds the board firmware)",
        elf.display()
    );
    elf
}

/// Path of the release ELF of the emulated board's example firmware `name` (e.g. `events`).
pub fn board_example_elf(name: &str) -> PathBuf {
    let elf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../boards/qemu-lm3s6965/target/thumbv7m-none-eabi/release/examples")
        .join(name);
    assert!(
        elf.exists(),
        "{} is missing: run `cargo xtask boards` first (it builds the board firmware)",
        elf.display()
    );
    elf
}

/// Path of the emulated board's `tcp-server` built with the fault injector (`cargo xtask
/// boards` builds it with `SMOLSOCK_FAULTS=loss=3%,dup=1%,reorder=2%,seed=5`).
pub fn faulty_board_elf() -> PathBuf {
    let elf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../boards/qemu-lm3s6965/target/faults/thumbv7m-none-eabi/release/tcp-server");
    assert!(
        elf.exists(),
        "{} is missing: run `cargo xtask boards` first",
        elf.display()
    );
    elf
}

/// A running program whose stdout lines can be awaited; killed on drop.
pub struct Proc {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr: Receiver<String>,
}

impl Proc {
    /// Starts `smolsock` with `args`, stdin closed.
    pub fn smolsock(args: &[&str]) -> Proc {
        Self::spawn(Command::new(smolsock_bin()).args(args), false)
    }

    /// Boots the emulated board's firmware `name` (see [`board_elf`]) in QEMU through
    /// `qemu-run`, its NIC on [`TAP`]; stdout is the decoded log, one line per message.
    /// Dropping the `Proc` kills `qemu-run`, and QEMU dies with it.
    pub fn qemu(name: &str) -> Proc {
        Self::qemu_elf(&board_elf(name))
    }

    /// Boots the emulated board's firmware `elf` in QEMU, as [`Proc::qemu`] does.
    pub fn qemu_elf(elf: &Path) -> Proc {
        Self::spawn(
            Command::new(qemu_run_bin()).args(["--tap", TAP]).arg(elf),
            false,
        )
    }

    /// Boots the emulated board's firmware `elf` as [`Proc::qemu_elf`] does, with more
    /// `qemu-run` options (`--json`, `--pcap FILE`...).
    pub fn qemu_with(options: &[&str], elf: &Path) -> Proc {
        Self::spawn(
            Command::new(qemu_run_bin())
                .args(["--tap", TAP])
                .args(options)
                .arg(elf),
            false,
        )
    }

    /// Starts `smolsock` with `args` and a pipe on stdin.
    pub fn smolsock_with_stdin(args: &[&str]) -> Proc {
        Self::spawn(Command::new(smolsock_bin()).args(args), true)
    }

    fn spawn(cmd: &mut Command, stdin: bool) -> Proc {
        let mut child = cmd
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let (tx, lines) = channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (etx, stderr) = channel();
        let mut err = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            let _ = etx.send(text);
        });
        Proc {
            child,
            lines,
            seen: Vec::new(),
            stderr,
        }
    }

    /// The child's stdin.
    pub fn stdin(&mut self) -> &mut std::process::ChildStdin {
        self.child.stdin.as_mut().expect("stdin was not piped")
    }

    /// Closes the child's stdin.
    pub fn close_stdin(&mut self) {
        self.child.stdin.take();
    }

    /// Waits up to `timeout` for a stdout line containing `needle`; panics with
    /// everything seen so far if none comes.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let end = Instant::now() + timeout;
        if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.child.kill();
                    let stderr = self
                        .stderr
                        .recv_timeout(Duration::from_secs(2))
                        .unwrap_or_default();
                    panic!(
                        "no line with {needle:?} within {timeout:?}\nstdout:\n{}\nstderr:\n{stderr}",
                        self.seen.join("\n")
                    );
                }
            }
        }
    }

    /// [`wait_for`](Self::wait_for), but when the program ends before such a line, its
    /// stderr as the error instead of a panic.
    pub fn try_wait_for(&mut self, needle: &str, timeout: Duration) -> Result<String, String> {
        let end = Instant::now() + timeout;
        if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
            return Ok(line.clone());
        }
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(self
                        .stderr
                        .recv_timeout(Duration::from_secs(2))
                        .unwrap_or_default());
                }
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!(
                        "no line with {needle:?} within {timeout:?}\nstdout:\n{}",
                        self.seen.join("\n")
                    );
                }
            }
        }
    }

    /// The stdout lines [`wait_for`](Self::wait_for) has read so far.
    pub fn seen(&self) -> &[String] {
        &self.seen
    }

    /// Sends `signal` (`libc::SIGTERM`, ...) to the program.
    pub fn signal(&self, signal: i32) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        let signal = nix::sys::signal::Signal::try_from(signal).expect("a signal number");
        nix::sys::signal::kill(pid, signal).expect("kill");
    }

    /// Waits up to `timeout` for the program to exit; returns (success, all stdout lines,
    /// stderr).
    pub fn finish(self, timeout: Duration) -> (bool, Vec<String>, String) {
        let (status, lines, stderr) = self.finish_status(timeout);
        (status.success(), lines, stderr)
    }

    /// [`finish`](Self::finish) with the exit status itself.
    pub fn finish_status(
        mut self,
        timeout: Duration,
    ) -> (std::process::ExitStatus, Vec<String>, String) {
        let end = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                let mut lines = std::mem::take(&mut self.seen);
                while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
                    lines.push(line);
                }
                let stderr = self
                    .stderr
                    .recv_timeout(Duration::from_secs(2))
                    .unwrap_or_default();
                return (status, lines, stderr);
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                panic!(
                    "program did not exit within {timeout:?}; stdout so far:\n{}",
                    self.seen.join("\n")
                );
            }
            while let Ok(line) = self.lines.try_recv() {
                self.seen.push(line);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Joins `handle`, waiting at most `timeout` (a peer thread that hangs fails the test).
pub fn join_within<R>(handle: JoinHandle<R>, timeout: Duration, what: &str) -> R {
    let end = Instant::now() + timeout;
    while !handle.is_finished() {
        assert!(
            Instant::now() < end,
            "{what} did not finish within {timeout:?}"
        );
        thread::sleep(Duration::from_millis(10));
    }
    handle.join().unwrap_or_else(|_| panic!("{what} panicked"))
}

/// Runs `smolsock args` to its end (killed after `timeout`); returns the exit code, stdout
/// and stderr. For programs with little output (the pipes are read after the exit).
pub fn run_bounded(args: &[&str], timeout: Duration) -> (Option<i32>, String, String) {
    let mut child = Command::new(smolsock_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn smolsock");
    let end = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} did not exit within {timeout:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("read stdout");
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    (status.code(), stdout, stderr)
}

/// Every line of a `--json` run parsed (panics on a line that is not JSON).
pub fn json_lines<S: AsRef<str>>(lines: &[S]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .map(|l| {
            let l = l.as_ref();
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"))
        })
        .collect()
}

/// The quoted payloads of the `received` lines of a text run, in order.
pub fn received_texts(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.contains("received"))
        .map(|l| l.rsplit_once(": ").unwrap().1.trim_matches('"').to_string())
        .collect()
}

/// Sends `count` messages on `stream`, each read back whole before the next (the stream's
/// read timeout bounds the wait).
pub fn exchange(stream: &mut TcpStream, id: usize, count: usize) {
    for i in 0..count {
        let msg = format!("client {id} message {i} {}", "x".repeat(i % 50));
        stream.write_all(msg.as_bytes()).unwrap();
        let mut back = vec![0u8; msg.len()];
        stream.read_exact(&mut back).unwrap();
        assert_eq!(back, msg.as_bytes(), "client {id} message {i}");
    }
}

/// The `ip:port` after `needle` in `line` (e.g. the peer of an `accepted` line).
pub fn addr_after(line: &str, needle: &str) -> SocketAddrV4 {
    let rest = &line[line
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in {line:?}"))
        + needle.len()..];
    let token: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect();
    token
        .parse()
        .unwrap_or_else(|_| panic!("no address after {needle:?} in {line:?}"))
}

/// The pattern a bulk `tcp-client --bytes N` sends, and its CRC-32.
pub fn pattern(len: usize) -> (Vec<u8>, u32) {
    let mut data = vec![0u8; len];
    smolsock::programs::fill_pattern(0, &mut data);
    let crc = crc32fast::hash(&data);
    (data, crc)
}

/// A kernel server for one client on `listener`: answers every chunk in upper case (so a
/// log tells replies from what was sent) until the client closes. Returns the client's
/// address and everything it sent. Waits at most `timeout` for the client.
pub fn upper_case_echo(
    listener: TcpListener,
    timeout: Duration,
) -> JoinHandle<(SocketAddr, Vec<u8>)> {
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    thread::spawn(move || {
        let end = Instant::now() + timeout;
        let (mut conn, peer) = loop {
            match listener.accept() {
                Ok(accepted) => break accepted,
                Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < end => {
                    thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("no client connected: {e}"),
            }
        };
        conn.set_nonblocking(false).expect("blocking connection");
        conn.set_read_timeout(Some(timeout)).expect("read timeout");
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            let n = conn.read(&mut buf).expect("read from the client");
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            conn.write_all(&buf[..n].to_ascii_uppercase())
                .expect("reply");
        }
        (peer, got)
    })
}

/// A kernel client: connects to `to`, sends `data`, shuts its side down and waits for the
/// peer to close. Returns how long that took.
pub fn send_all(to: SocketAddrV4, data: &[u8]) -> Duration {
    let start = Instant::now();
    let mut s = TcpStream::connect(to).expect("connect");
    s.write_all(data).expect("send");
    s.shutdown(Shutdown::Write).expect("shutdown");
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).expect("read to the end");
    start.elapsed()
}

/// A kernel server that takes one connection on `listener` and reads it to the end.
/// Returns what arrived and how long it took from the accept.
pub fn receive_all(listener: TcpListener) -> JoinHandle<(Vec<u8>, Duration)> {
    thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let start = Instant::now();
        let mut got = Vec::new();
        conn.read_to_end(&mut got).expect("read to the end");
        (got, start.elapsed())
    })
}

/// Sends ICMP echo request `seq_no` with `len` bytes of payload to `to` from a raw socket
/// (what `ping` sends; CAP_NET_RAW, which the test has in its namespace), resending every
/// second, until the reply comes back within `timeout`. `Err` says what went wrong: no reply,
/// or a reply whose payload differs from the request's.
pub fn ping(to: Ipv4Addr, seq_no: u16, len: usize, timeout: Duration) -> Result<(), String> {
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, Ipv4Packet};
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};

    let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))
        .map_err(|e| format!("raw ICMP socket: {e}"))?;
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| e.to_string())?;
    let dest = SockAddr::from(SocketAddrV4::new(to, 0));
    let checksums = ChecksumCapabilities::default();
    let data: Vec<u8> = (0..len)
        .map(|i| (i * 7 + usize::from(seq_no)) as u8)
        .collect();
    let request = Icmpv4Repr::EchoRequest {
        ident: 0x5350,
        seq_no,
        data: &data,
    };
    let mut bytes = vec![0u8; request.buffer_len()];
    request.emit(&mut Icmpv4Packet::new_unchecked(&mut bytes), &checksums);
    let end = Instant::now() + timeout;
    let mut resend = Instant::now();
    loop {
        if Instant::now() >= end {
            return Err(format!(
                "no echo reply {seq_no} from {to} within {timeout:?}"
            ));
        }
        if Instant::now() >= resend {
            socket.send_to(&bytes, &dest).map_err(|e| e.to_string())?;
            resend = Instant::now() + Duration::from_secs(1);
        }
        let mut buf = [0u8; 2048];
        let Ok(n) = (&socket).read(&mut buf) else {
            continue;
        };
        let Some(ip) = buf.get(..n).and_then(|b| Ipv4Packet::new_checked(b).ok()) else {
            continue;
        };
        if ip.src_addr() != to {
            continue;
        }
        let Ok(icmp) = Icmpv4Packet::new_checked(ip.payload()) else {
            continue;
        };
        if let Ok(Icmpv4Repr::EchoReply {
            ident: 0x5350,
            seq_no: got,
            data: reply,
        }) = Icmpv4Repr::parse(&icmp, &checksums)
            && got == seq_no
        {
            return if reply == data.as_slice() {
                Ok(())
            } else {
                Err(format!("echo reply {seq_no} carries another payload"))
            };
        }
    }
}
