//! The program scenarios both stacks run: each is written once against a [`Target`] and
//! called by a thin `#[test]` in tests/tap.rs (with [`SMOLTCP`]) and in tests/kernel.rs
//! (with [`KERNEL`]), each inside its own network namespace (see [`crate::in_netns`]).
//!
//! A scenario holds every assertion either stack's test made; where a check only holds
//! on one stack it branches on [`Target::stack`] and says why.

use std::fmt;
use std::io::Read;
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::ops::RangeInclusive;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{
    KERNEL_IP, Proc, SMOL_IP, T, TAP, addr_after, exchange, join_within, json_lines, pattern,
    receive_all, received_texts, run_bounded, send_all, upper_case_echo,
};

/// Which TCP/IP stack runs the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stack {
    /// smoltcp on the namespace's TAP device.
    Smoltcp,
    /// The host kernel's own stack (`--stack kernel`).
    Kernel,
    /// smoltcp on the emulated board (`--stack board`): the remote firmware in QEMU on the
    /// namespace's TAP, driven over its serial port.
    Board,
}

/// A stack to run the programs on, and where the std::net peer meets them.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// The stack, for the few checks that hold on one stack only.
    pub stack: Stack,
    /// The `smolsock` flags that select the stack (after the program's name).
    pub args: &'static [&'static str],
    /// The program's own address, as the peer reaches it.
    pub ip: Ipv4Addr,
    /// The std::net peer's address, as the program reaches it.
    pub peer_ip: Ipv4Addr,
}

/// smoltcp on `tap0` at 192.168.69.1; the kernel peer at 192.168.69.100.
pub const SMOLTCP: Target = Target {
    stack: Stack::Smoltcp,
    args: &["--tap", TAP],
    ip: SMOL_IP,
    peer_ip: KERNEL_IP,
};

/// [`SMOLTCP`] without TCP segmentation and checksum offload: one segment per frame.
pub const SMOLTCP_PLAIN: Target = Target {
    args: &["--tap", TAP, "--offload", "off"],
    ..SMOLTCP
};

/// The kernel's own stack; program and peer meet on 127.0.0.1.
pub const KERNEL: Target = Target {
    stack: Stack::Kernel,
    args: &["--stack", "kernel"],
    ip: Ipv4Addr::LOCALHOST,
    peer_ip: Ipv4Addr::LOCALHOST,
};

/// The emulated board's stack, restarted at smoltcp's address on `tap0` (the program
/// and its output are the host's; the stack is the board's).
pub const BOARD: Target = Target {
    stack: Stack::Board,
    args: &["--stack", "board", "--tap", TAP],
    ip: SMOL_IP,
    peer_ip: KERNEL_IP,
};

/// The size of the bulk transfers.
pub const BULK: usize = 16 * 1024 * 1024;

impl Target {
    /// The program's address at `port`.
    pub fn at(&self, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(self.ip, port)
    }

    /// The peer's address at `port`.
    pub fn peer(&self, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(self.peer_ip, port)
    }

    /// `program`, this target's stack flags, then `rest`: a `smolsock` command line.
    pub fn argv<'a>(&self, program: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![program];
        args.extend_from_slice(self.args);
        args.extend_from_slice(rest);
        args
    }

    /// Starts `smolsock program` on this stack with `rest`, stdin closed.
    pub fn smolsock(&self, program: &str, rest: &[&str]) -> Proc {
        Proc::smolsock(&self.argv(program, rest))
    }

    /// The ports the stack picks an ephemeral port from.
    pub fn ephemeral_ports(&self) -> RangeInclusive<u16> {
        match self.stack {
            // smolsock's allocator for smoltcp: the IANA dynamic range.
            Stack::Smoltcp | Stack::Board => {
                smolsock::smol::EPHEMERAL_FIRST..=smolsock::smol::EPHEMERAL_LAST
            }
            // Linux: net.ipv4.ip_local_port_range of this namespace (32768-60999 unless set).
            Stack::Kernel => {
                let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
                    .expect("read ip_local_port_range");
                let mut ends = text.split_whitespace().map(|n| n.parse::<u16>().unwrap());
                let (first, last) = (ends.next().unwrap(), ends.next().unwrap());
                first..=last
            }
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.stack {
            Stack::Smoltcp => "smoltcp",
            Stack::Kernel => "kernel",
            Stack::Board => "board",
        })
    }
}

/// udp-recv takes three datagrams: text (UTF-8), from a second sender, and 2000 bytes it
/// truncates to 1024 (S11); each event names its sender. Returns the run's JSON events.
/// The board reassembles no fragments (a build-time feature boards leave out), so it gets
/// 1400 bytes, one frame, instead of 2000.
pub fn udp_recv_reports_datagrams(t: &Target) -> Vec<Value> {
    let mut recv = t.smolsock("udp-recv", &["--count", "3", "--json"]);
    let bound: Value = serde_json::from_str(&recv.wait_for("\"bound\"", T)).unwrap();
    assert_eq!(
        bound["local"], "0.0.0.0:9090",
        "{t}: bound on every local address"
    );
    assert_eq!(bound["auto"], false);
    let first = UdpSocket::bind(t.peer(0)).unwrap();
    // The second datagram comes from another socket on tap0's kernel address. The kernel
    // stack is bound to 0.0.0.0, so it goes to that address too (local in the namespace):
    // a second local address the program receives on. smoltcp has one address only.
    let second_to = match t.stack {
        Stack::Smoltcp | Stack::Board => SMOL_IP,
        Stack::Kernel => KERNEL_IP,
    };
    let big = match t.stack {
        Stack::Board => 1400,
        Stack::Smoltcp | Stack::Kernel => 2000,
    };
    let second = UdpSocket::bind(SocketAddrV4::new(KERNEL_IP, 0)).unwrap();
    first.send_to("hello 你好".as_bytes(), t.at(9090)).unwrap();
    second.send_to(b"second", (second_to, 9090)).unwrap();
    first.send_to(&vec![b'z'; big], t.at(9090)).unwrap();
    let (ok, lines, stderr) = recv.finish(T);
    assert!(ok, "{t}: udp-recv failed: {stderr}");
    let events = json_lines(&lines);
    let got: Vec<&Value> = events.iter().filter(|v| v["event"] == "received").collect();
    assert_eq!(got.len(), 3, "{t}: {lines:?}");
    assert_eq!(got[0]["text"], "hello 你好");
    assert_eq!(got[0]["size"], "hello 你好".len());
    assert_eq!(got[0]["truncated"], false);
    assert_eq!(got[1]["text"], "second");
    let first_addr = first.local_addr().unwrap().to_string();
    let second_addr = second.local_addr().unwrap().to_string();
    assert_eq!(got[0]["from"], first_addr.as_str(), "sender address");
    assert_eq!(got[1]["from"], second_addr.as_str(), "sender address");
    assert_eq!(got[2]["from"], first_addr.as_str(), "sender address");
    assert_eq!(got[2]["size"], big);
    assert_eq!(got[2]["len"], 1024, "S11: at most 1024 bytes per recvfrom");
    assert_eq!(got[2]["truncated"], true);
    assert_eq!(got[2]["text"], "z".repeat(1024));
    events
}

/// udp-send sends three datagrams from one ephemeral port (S10), the one it printed.
pub fn udp_send_keeps_one_port(t: &Target) {
    let sock = UdpSocket::bind(t.peer(9090)).unwrap();
    sock.set_read_timeout(Some(T)).unwrap();
    let to = t.peer(9090).to_string();
    let send = t.smolsock("udp-send", &["--to", &to, "one", "two", "three"]);
    let mut from = Vec::new();
    for want in ["one", "two", "three"] {
        let mut buf = [0u8; 64];
        let (n, src) = sock.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], want.as_bytes());
        from.push(src);
    }
    let (ok, lines, stderr) = send.finish(T);
    assert!(ok, "{t}: udp-send failed: {stderr}");
    let bound = lines
        .iter()
        .find(|l| l.contains("udp bound"))
        .expect("bound line");
    assert!(
        bound.contains("(ephemeral port, bound by the first send"),
        "{bound}"
    );
    // The largest datagram a send takes: one frame on smoltcp (a 1500-byte MTU less the
    // IPv4 and UDP headers), 65507 bytes on the kernel, which fragments.
    let max = match t.stack {
        Stack::Smoltcp | Stack::Board => 1472,
        Stack::Kernel => 65507,
    };
    assert!(
        bound.contains(&format!("datagrams up to {max} bytes")),
        "{t}: {bound}"
    );
    let port = addr_after(bound, "udp bound").port();
    assert_ne!(port, 0);
    let range = t.ephemeral_ports();
    assert!(
        range.contains(&port),
        "{t}: ephemeral port {port} in {range:?}"
    );
    for src in from {
        assert_eq!(
            src.to_string(),
            t.at(port).to_string(),
            "S10: one port for every send, the one printed"
        );
    }
    assert_eq!(
        lines.iter().filter(|l| l.contains("udp sent")).count(),
        3,
        "{lines:?}"
    );
}

/// tcp-client sends two messages to an upper-case echo, prints the replies and the
/// server's close; it connected from the port the server saw (S2).
pub fn tcp_client_talks_to_echo(t: &Target) {
    let server = upper_case_echo(TcpListener::bind(t.peer(9090)).unwrap(), T);
    let to = t.peer(9090).to_string();
    let client = t.smolsock("tcp-client", &["--to", &to, "hello", "world"]);
    let (ok, lines, stderr) = client.finish(T);
    assert!(ok, "{t}: tcp-client failed: {stderr}\n{lines:?}");
    let (peer, got) = join_within(server, T, "the echo server");
    assert_eq!(got, b"helloworld");
    let connected = lines
        .iter()
        .find(|l| l.contains("connected"))
        .expect("connected line");
    assert_eq!(
        addr_after(connected, "connected"),
        t.at(peer.port()),
        "S2: the port the server saw"
    );
    assert_eq!(received_texts(&lines).concat(), "HELLOWORLD");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("peer {to} closed (recv returned 0 bytes)"))),
        "{lines:?}"
    );
}

/// tcp-client to a port nobody listens on: refused at once, exit code 1, one line on
/// stderr, nothing connected; with `--json` an error event names the peer.
pub fn tcp_client_reports_connection_refused(t: &Target) {
    let to = t.peer(9099).to_string();
    let args = t.argv("tcp-client", &["--to", &to, "x"]);
    let start = Instant::now();
    let (code, stdout, stderr) = run_bounded(&args, T);
    assert_eq!(code, Some(1), "{t}: exit status; stderr: {stderr}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "refusal is immediate"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("error tcp #1 {to}: connection refused")),
        "{stderr}"
    );
    assert!(!stdout.contains("connected"), "{stdout}");

    let mut json = args.clone();
    json.push("--json");
    let (code, stdout, stderr) = run_bounded(&json, T);
    assert_eq!(code, Some(1), "{t}: exit status; stderr: {stderr}");
    let events = json_lines(&stdout.lines().collect::<Vec<_>>());
    let error = events
        .iter()
        .find(|v| v["event"] == "error")
        .unwrap_or_else(|| panic!("no error event: {stdout}"));
    assert_eq!(error["error"], "connection refused");
    assert_eq!(error["peer"], to.as_str());
}

/// tcp-server with backlog 8 holds eight clients at once; the first leaves early and the
/// server sees it close (S9) while the other seven exchange 100 messages each.
pub fn tcp_server_serves_many_clients(t: &Target) {
    let mut server = t.smolsock("tcp-server", &["--backlog", "8"]);
    let listening = server.wait_for("listening", T);
    assert!(
        listening.contains("tcp listening 0.0.0.0:9090 backlog 8"),
        "{listening}"
    );
    let clients = 8;
    // All connect before any sends: eight connections open at once.
    let mut streams: Vec<TcpStream> = (0..clients)
        .map(|_| {
            let s = TcpStream::connect_timeout(&t.at(9090).into(), T).unwrap();
            s.set_read_timeout(Some(T)).unwrap();
            s.set_write_timeout(Some(T)).unwrap();
            s
        })
        .collect();
    for _ in 0..clients {
        server.wait_for("accepted", T);
    }
    // Client 0 leaves first; the server must see it close (S9) while the others go on.
    let mut first = streams.remove(0);
    exchange(&mut first, 0, 5);
    let port0 = first.local_addr().unwrap().port();
    first.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    assert_eq!(first.read_to_end(&mut rest).unwrap(), 0);
    let closed = server.wait_for(&format!("peer {} closed", t.peer(port0)), T);
    assert!(closed.contains("recv returned 0 bytes"), "{closed}");
    let handles: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(i, mut s)| {
            thread::spawn(move || {
                exchange(&mut s, i + 1, 100);
                s.shutdown(Shutdown::Write).unwrap();
                let mut rest = Vec::new();
                s.read_to_end(&mut rest).unwrap();
                assert!(rest.is_empty());
            })
        })
        .collect();
    for h in handles {
        join_within(h, T, "a client");
    }
    for _ in 0..clients {
        server.wait_for("closed: in", T);
    }
}

/// `what` took `took` for [`BULK`] bytes: printed for the record.
fn report_rate(what: &str, took: Duration) {
    eprintln!(
        "16 MiB {what} in {:.3} s ({:.0} Mbit/s)",
        took.as_secs_f64(),
        BULK as f64 * 8.0 / took.as_secs_f64() / 1e6
    );
}

/// tcp-client `--bytes` sends the 16 MiB pattern to a std::net reader, which checks it;
/// the client's closed event counts it and its CRC, and nothing coming back.
pub fn bulk_client_sends_pattern(t: &Target) {
    let (_, crc) = pattern(BULK);
    let reader = receive_all(TcpListener::bind(t.peer(9090)).unwrap());
    let to = t.peer(9090).to_string();
    let size = BULK.to_string();
    let client = t.smolsock("tcp-client", &["--to", &to, "--bytes", &size, "--json"]);
    // The client exits once the reader has read everything and closed.
    let (ok, lines, stderr) = client.finish(T);
    assert!(ok, "{t}: tcp-client failed: {stderr}\n{lines:?}");
    let (got, took) = join_within(reader, T, "the reader");
    assert_eq!(got.len(), BULK);
    assert_eq!(crc32fast::hash(&got), crc, "data from {t} differs");
    let events = json_lines(&lines);
    let closed = events
        .iter()
        .find(|v| v["event"] == "closed")
        .unwrap_or_else(|| panic!("no closed event: {lines:?}"));
    assert_eq!(closed["bytes_out"], BULK as u64);
    assert_eq!(closed["crc32_out"], format!("{crc:08x}"));
    assert_eq!(closed["bytes_in"], 0);
    report_rate(&format!("{t} client -> std::net"), took);
}

/// tcp-server `--mode sink` takes 16 MiB from a std::net sender and reports its length and
/// CRC, having sent nothing back; it exits after its one client.
pub fn bulk_server_sinks(t: &Target) {
    let (data, crc) = pattern(BULK);
    let mut server = t.smolsock(
        "tcp-server",
        &["--mode", "sink", "--max-clients", "1", "--json"],
    );
    server.wait_for("listening", T);
    let to = t.at(9090);
    let sender = thread::spawn(move || send_all(to, &data));
    let closed: Value = serde_json::from_str(&server.wait_for("\"closed\"", T)).unwrap();
    assert_eq!(closed["bytes_in"], BULK as u64);
    assert_eq!(closed["crc32_in"], format!("{crc:08x}"));
    assert_eq!(closed["bytes_out"], 0);
    let took = join_within(sender, T, "the sender");
    let (ok, _, stderr) = server.finish(T);
    assert!(ok, "{t}: {stderr}");
    report_rate(&format!("std::net -> {t} sink"), took);
}

/// `signal` (SIGINT or SIGTERM) to `tcp-server` with three connected clients: each client
/// sees the end of its connection (FIN, or a reset) at once, the server prints each
/// connection's totals and exits with 128 + the signal (130, 143).
pub fn tcp_server_signal_closes_every_client(t: &Target, signal: i32) {
    let mut server = t.smolsock("tcp-server", &[]);
    server.wait_for("listening", T);
    let mut streams: Vec<TcpStream> = (0..3)
        .map(|i| {
            let mut s = TcpStream::connect_timeout(&t.at(9090).into(), T).unwrap();
            s.set_read_timeout(Some(T)).unwrap();
            exchange(&mut s, i, 1);
            s
        })
        .collect();
    for _ in 0..3 {
        server.wait_for("accepted", T);
    }
    server.signal(signal);
    for s in &mut streams {
        // Bounded: a server that leaves its clients hanging fails here.
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("{t}: the client did not see the end of its connection: {other:?}"),
        }
    }
    let (status, lines, stderr) = server.finish_status(T);
    assert_eq!(
        status.code(),
        Some(128 + signal),
        "{t}: exit status after signal {signal}; stderr: {stderr}"
    );
    let name = if signal == libc::SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    };
    assert!(
        stderr.contains(&format!("stopped by {name}")),
        "{t}: {stderr}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("shutting down: closing with"))
            .count(),
        3,
        "{t}: {lines:?}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.contains("closed: in")).count(),
        3,
        "{t}: each connection's totals: {lines:?}"
    );
}

/// `tcp-client --reply-timeout 1` to a server that takes the message and never answers
/// nor closes: the client ends with a timed-out error (its --timeout, which bounds the
/// wait for the server's close, is set far beyond the test's bound).
pub fn tcp_client_reply_timeout(t: &Target) {
    let listener = TcpListener::bind(t.peer(9090)).unwrap();
    let server = thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(T)).unwrap();
        let mut got = Vec::new();
        // Reads to the client's FIN, and never answers nor closes: the connection is
        // handed back open, to be dropped after the client has ended.
        let _ = conn.read_to_end(&mut got);
        (got, conn)
    });
    let to = t.peer(9090).to_string();
    let args = t.argv(
        "tcp-client",
        &[
            "--to",
            &to,
            "--reply-timeout",
            "1",
            "--timeout",
            "60",
            "hello",
        ],
    );
    let (code, stdout, stderr) = run_bounded(&args, T);
    assert_eq!(
        code,
        Some(1),
        "{t}: exit status; stdout {stdout} stderr {stderr}"
    );
    assert!(stderr.contains("timed out"), "{t}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{t}: one line: {stderr}");
    let (got, _conn) = join_within(server, T, "the silent server");
    assert_eq!(got, b"hello");
}
