//! Peers for the benchmark's comparison with smoltcp's own examples (`cargo xtask bench`):
//! the examples themselves ([`example_benchmark`], [`ExampleServer`]), and kernel-side
//! bulk senders and receivers that stream the test pattern without holding a transfer in
//! memory ([`send_pattern`], [`receive_counted`]), with echo round trips and short
//! connections timed one by one ([`echo_round_trips`], [`short_connections`]).
//!
//! `cargo xtask bench` builds `examples/benchmark.rs` and `examples/server.rs` from the
//! smoltcp source of the release this workspace depends on and passes their paths in
//! [`BENCHMARK_ENV`] and [`SERVER_ENV`].

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use smolsock::programs::PATTERN_PERIOD as PERIOD;

use crate::{SMOL_IP, TAP};

/// The variable naming smoltcp's `benchmark` example binary.
pub const BENCHMARK_ENV: &str = "SMOLTCP_BENCHMARK_BIN";
/// The variable naming smoltcp's `server` example binary.
pub const SERVER_ENV: &str = "SMOLTCP_SERVER_BIN";

/// The example binary named by `env`, if the variable is set and the file exists.
pub fn example_bin(env: &str) -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var_os(env)?);
    path.exists().then_some(path)
}

/// A buffer of whole periods of the pattern and one more, so that a write of up to
/// `len - PERIOD` bytes can start at any stream offset.
fn periodic_pattern() -> Vec<u8> {
    let mut buf = vec![0u8; PERIOD * 4096 + PERIOD];
    smolsock::programs::fill_pattern(0, &mut buf);
    buf
}

/// The CRC-32 of the first `len` bytes of the pattern, computed by streaming.
pub fn pattern_crc(len: u64) -> u32 {
    let buf = periodic_pattern();
    let step = (buf.len() - PERIOD) as u64;
    let mut hasher = crc32fast::Hasher::new();
    let mut done = 0;
    while done < len {
        let n = step.min(len - done) as usize;
        hasher.update(&buf[..n]);
        done += n as u64;
    }
    hasher.finalize()
}

/// A kernel client: connects to `to`, writes `len` bytes of the pattern, shuts its side
/// down and reads until the peer closes. Returns how long that took, from the connect.
pub fn send_pattern(to: SocketAddrV4, len: u64) -> Duration {
    let buf = periodic_pattern();
    let step = (buf.len() - PERIOD) as u64;
    let start = Instant::now();
    let mut s = TcpStream::connect(to).expect("connect");
    let mut sent = 0;
    while sent < len {
        let at = (sent % PERIOD as u64) as usize;
        let n = step.min(len - sent) as usize;
        match s.write(&buf[at..at + n]) {
            Ok(k) => sent += k as u64,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("send: {e}"),
        }
    }
    s.shutdown(Shutdown::Write).expect("shutdown");
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).expect("read to the end");
    start.elapsed()
}

/// A kernel server that takes one connection on `listener` and reads it to the end.
/// Returns how many bytes arrived, their CRC-32, and how long it took from the accept.
pub fn receive_counted(listener: TcpListener) -> JoinHandle<(u64, u32, Duration)> {
    thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let start = Instant::now();
        let mut buf = vec![0u8; 1 << 20];
        let mut hasher = crc32fast::Hasher::new();
        let mut got = 0u64;
        loop {
            match conn.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    hasher.update(&buf[..n]);
                    got += n as u64;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("receive: {e}"),
            }
        }
        (got, hasher.finalize(), start.elapsed())
    })
}

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The MAC address of smolsock's stack and of smoltcp's examples.
const SMOL_MAC: &str = "02:00:00:00:00:01";
/// A MAC address nobody on the test link has.
const STRAY_MAC: &str = "02:00:00:00:00:fe";

/// Makes the kernel's neighbour entry for [`SMOL_IP`] on [`TAP`] name `mac`, permanently.
fn neighbour(mac: &str) {
    crate::sh(&[
        "ip",
        "neigh",
        "replace",
        &SMOL_IP.to_string(),
        "lladdr",
        mac,
        "dev",
        TAP,
        "nud",
        "permanent",
    ]);
}

/// Turns off the TAP's offloads, which a killed smolsock may have left on: the examples
/// read plain frames.
fn clean_tap() -> Result<(), String> {
    smolsock_linux::tap::reset_offload(TAP).map_err(|e| format!("{TAP}: {e}"))
}

/// Runs smoltcp's `benchmark` example (`bin`) on [`TAP`] in `mode` (`reader`: its client
/// reads what smoltcp sends from port 1234; `writer`: its client writes to smoltcp's sink
/// on port 1235) and returns the throughput it prints, in Gbit/s.
///
/// The example's client thread connects as soon as it starts, and the stack listens only
/// after its first poll: a SYN that comes first is refused, the client thread panics and
/// the example would wait forever. So the kernel's first SYN goes astray: until the
/// example has had time to listen, the kernel's neighbour entry for the stack names
/// another MAC address, which the stack ignores, and the kernel's retransmitted SYN (a
/// second later, before the example's clock starts) finds it listening. A run that fails
/// all the same is killed and started again (at most 3 times).
pub fn example_benchmark(bin: &Path, mode: &str, timeout: Duration) -> Result<f64, String> {
    let mut last = String::new();
    for _ in 0..3 {
        clean_tap()?;
        neighbour(STRAY_MAC);
        let mut child = Killed(
            Command::new(bin)
                .args(["--tap", TAP, mode])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("cannot run {}: {e}", bin.display()))?,
        );
        let (tx, lines) = channel();
        for stream in [
            child
                .0
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .0
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        thread::sleep(Duration::from_millis(500));
        neighbour(SMOL_MAC);
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("throughput: ") {
                        let gbps = rest.trim_end_matches(" Gbps").trim();
                        return gbps
                            .parse()
                            .map_err(|_| format!("unexpected example output: {line}"));
                    }
                    if line.contains("panicked") {
                        last = line;
                        break;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("the example {mode} gave no result in {timeout:?}"));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    last = format!("the example {mode} ended without a result");
                    break;
                }
            }
        }
    }
    Err(last)
}

/// smoltcp's `server` example on [`TAP`] (at [`SMOL_IP`], smolsock's default address):
/// port 6969 sends `hello` and closes, port 6970 answers each line reversed; its logging
/// off (`RUST_LOG=warn`). Killed when dropped.
pub struct ExampleServer(#[allow(dead_code)] Killed);

impl ExampleServer {
    /// The port that greets and closes.
    pub const HELLO: u16 = 6969;
    /// The port that echoes lines (reversed).
    pub const ECHO: u16 = 6970;

    /// Starts the example `bin` and waits until it answers on [`Self::HELLO`].
    pub fn start(bin: &Path) -> Result<Self, String> {
        clean_tap()?;
        let child = Killed(
            Command::new(bin)
                .args(["--tap", TAP])
                // It would log every packet at trace level otherwise: smolsock's side is
                // measured against the example at its fastest.
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot run {}: {e}", bin.display()))?,
        );
        let hello = SocketAddrV4::new(SMOL_IP, Self::HELLO);
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(mut s) = TcpStream::connect_timeout(&hello.into(), Duration::from_secs(1)) {
                let mut greeting = Vec::new();
                if s.read_to_end(&mut greeting).is_ok() && greeting == b"hello\n" {
                    return Ok(Self(child));
                }
            }
            thread::sleep(Duration::from_millis(50));
        }
        Err("smoltcp's server example did not answer".into())
    }
}

/// The length of each echo message: 15 digits and a newline (what smoltcp's echo example
/// answers line by line).
const ECHO_LEN: usize = 16;

/// On one connection to `to`, `warmup` untimed and then `count` timed round trips of a
/// 16-byte line; an answer of the same length counts (smolsock echoes, smoltcp's example
/// reverses the line). Returns each timed round trip.
pub fn echo_round_trips(
    to: SocketAddrV4,
    warmup: usize,
    count: usize,
) -> Result<Vec<Duration>, String> {
    let mut s = TcpStream::connect_timeout(&to.into(), Duration::from_secs(3))
        .map_err(|e| format!("connect to {to}: {e}"))?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    let mut times = Vec::with_capacity(count);
    let mut back = [0u8; ECHO_LEN];
    for i in 0..warmup + count {
        let msg = format!("{i:015}\n");
        let start = Instant::now();
        s.write_all(msg.as_bytes())
            .map_err(|e| format!("send: {e}"))?;
        s.read_exact(&mut back)
            .map_err(|e| format!("answer {i}: {e}"))?;
        let took = start.elapsed();
        let mut sorted = back;
        sorted[..ECHO_LEN - 1].sort_unstable();
        let mut want = [0u8; ECHO_LEN];
        want.copy_from_slice(msg.as_bytes());
        want[..ECHO_LEN - 1].sort_unstable();
        if sorted != want {
            return Err(format!("answer {back:?} to {msg:?}"));
        }
        if i >= warmup {
            times.push(took);
        }
    }
    Ok(times)
}

/// `count` short connections to `to`, one after another: connect, send `hello\n` and read
/// it back when `echo` (smolsock's echo server, the kernel's), or read the greeting to the
/// end when not (smoltcp's example on [`ExampleServer::HELLO`]), close. Returns the time
/// they took and how many failed.
pub fn short_connections(to: SocketAddrV4, count: usize, echo: bool) -> (Duration, usize) {
    let start = Instant::now();
    let mut failed = 0;
    for _ in 0..count {
        let one = || -> std::io::Result<()> {
            let mut s = TcpStream::connect_timeout(&to.into(), Duration::from_secs(3))?;
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            let mut back = [0u8; 6];
            if echo {
                s.write_all(b"hello\n")?;
                s.read_exact(&mut back)?;
            } else {
                let mut all = Vec::new();
                s.read_to_end(&mut all)?;
                back.copy_from_slice(all.get(..6).unwrap_or(b"??????"));
            }
            if &back != b"hello\n" {
                return Err(ErrorKind::InvalidData.into());
            }
            Ok(())
        };
        if one().is_err() {
            failed += 1;
        }
    }
    (start.elapsed(), failed)
}
