//! Each program of `smolsock` with `--stack kernel`: the same state machines on the host
//! kernel's own stack, against the same std::net peers as the smoltcp tests in tap.rs.
//! Every test runs in a network namespace of its own (see `smolsock_tests::in_netns`), so
//! its ports never collide with the machine's; the peers are reached at 127.0.0.1 (and at
//! 192.168.69.100, the kernel's tap0 address, which is local in the namespace).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;
use smolsock_tests::{
    KERNEL_IP, Proc, SMOL_IP, addr_after, in_netns, pattern, receive_all, send_all, smolsock_bin,
    upper_case_echo,
};

const T: Duration = Duration::from_secs(20);

fn local(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)
}

/// Joins `handle`, waiting at most `timeout` (a peer thread that hangs fails the test).
fn join_within<R>(handle: JoinHandle<R>, timeout: Duration, what: &str) -> R {
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
fn run_bounded(args: &[&str], timeout: Duration) -> (Option<i32>, String, String) {
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

fn json_lines(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[test]
fn kernel_udp_recv_reports_datagrams_with_sender_and_truncation() {
    in_netns(
        "kernel_udp_recv_reports_datagrams_with_sender_and_truncation",
        || {
            let mut recv =
                Proc::smolsock(&["udp-recv", "--stack", "kernel", "--count", "3", "--json"]);
            let bound: Value = serde_json::from_str(&recv.wait_for("\"bound\"", T)).unwrap();
            assert_eq!(
                bound["local"], "0.0.0.0:9090",
                "bound on every local address"
            );
            assert_eq!(bound["auto"], false);
            let lo = UdpSocket::bind(local(0)).unwrap();
            let tap = UdpSocket::bind(SocketAddrV4::new(KERNEL_IP, 0)).unwrap();
            lo.send_to("hello 你好".as_bytes(), local(9090)).unwrap();
            tap.send_to(b"second", (KERNEL_IP, 9090)).unwrap();
            lo.send_to(&[b'z'; 2000], local(9090)).unwrap();
            let (ok, lines, stderr) = recv.finish(T);
            assert!(ok, "udp-recv failed: {stderr}");
            let got: Vec<Value> = json_lines(&lines)
                .into_iter()
                .filter(|v| v["event"] == "received")
                .collect();
            assert_eq!(got.len(), 3, "{lines:?}");
            assert_eq!(got[0]["text"], "hello 你好");
            assert_eq!(got[0]["size"], "hello 你好".len());
            assert_eq!(got[0]["truncated"], false);
            assert_eq!(got[1]["text"], "second");
            let lo_addr = lo.local_addr().unwrap().to_string();
            let tap_addr = tap.local_addr().unwrap().to_string();
            assert_eq!(got[0]["from"], lo_addr.as_str(), "sender address");
            assert_eq!(got[1]["from"], tap_addr.as_str(), "sender address");
            assert_eq!(got[2]["from"], lo_addr.as_str(), "sender address");
            assert_eq!(got[2]["size"], 2000);
            assert_eq!(got[2]["len"], 1024, "S11: at most 1024 bytes per recvfrom");
            assert_eq!(got[2]["truncated"], true);
            assert_eq!(got[2]["text"], "z".repeat(1024));
        },
    );
}

#[test]
fn kernel_udp_send_uses_one_port_the_one_it_printed() {
    in_netns("kernel_udp_send_uses_one_port_the_one_it_printed", || {
        let sock = UdpSocket::bind(local(9090)).unwrap();
        sock.set_read_timeout(Some(T)).unwrap();
        let send = Proc::smolsock(&[
            "udp-send",
            "--stack",
            "kernel",
            "--to",
            "127.0.0.1:9090",
            "one",
            "two",
            "three",
        ]);
        let mut from = Vec::new();
        for want in ["one", "two", "three"] {
            let mut buf = [0u8; 64];
            let (n, src) = sock.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], want.as_bytes());
            from.push(src);
        }
        let (ok, lines, stderr) = send.finish(T);
        assert!(ok, "udp-send failed: {stderr}");
        let bound = lines
            .iter()
            .find(|l| l.contains("udp bound"))
            .expect("bound line");
        assert!(
            bound.contains("(ephemeral port, bound by the first send)"),
            "{bound}"
        );
        let port = addr_after(bound, "udp bound").port();
        assert_ne!(port, 0);
        for src in from {
            assert_eq!(
                src.to_string(),
                format!("127.0.0.1:{port}"),
                "S10: one port for every send, the one printed"
            );
        }
        assert_eq!(
            lines.iter().filter(|l| l.contains("udp sent")).count(),
            3,
            "{lines:?}"
        );
    });
}

#[test]
fn kernel_tcp_client_talks_to_upper_case_echo() {
    in_netns("kernel_tcp_client_talks_to_upper_case_echo", || {
        let server = upper_case_echo(TcpListener::bind(local(9090)).unwrap(), T);
        let client = Proc::smolsock(&[
            "tcp-client",
            "--stack",
            "kernel",
            "--to",
            "127.0.0.1:9090",
            "hello",
            "world",
        ]);
        let (ok, lines, stderr) = client.finish(T);
        assert!(ok, "tcp-client failed: {stderr}\n{lines:?}");
        let (peer, got) = join_within(server, T, "the echo server");
        assert_eq!(got, b"helloworld");
        let connected = lines
            .iter()
            .find(|l| l.contains("connected"))
            .expect("connected line");
        assert_eq!(
            addr_after(connected, "connected"),
            local(peer.port()),
            "S2: the port the server saw"
        );
        let received: String = lines
            .iter()
            .filter(|l| l.contains("received"))
            .map(|l| l.rsplit_once(": ").unwrap().1.trim_matches('"').to_string())
            .collect();
        assert_eq!(received, "HELLOWORLD");
        assert!(
            lines
                .iter()
                .any(|l| l.contains("peer 127.0.0.1:9090 closed (recv returned 0 bytes)")),
            "{lines:?}"
        );
    });
}

#[test]
fn kernel_tcp_client_short_uses_a_new_port_per_message() {
    in_netns(
        "kernel_tcp_client_short_uses_a_new_port_per_message",
        || {
            let listener = TcpListener::bind(local(9090)).unwrap();
            let client = Proc::smolsock(&[
                "tcp-client",
                "--stack",
                "kernel",
                "--to",
                "127.0.0.1:9090",
                "--short",
                "alpha",
                "beta",
                "gamma",
            ]);
            // One connection after the other, each served by a fresh echo on the same listener.
            let mut peers = Vec::new();
            for want in ["alpha", "beta", "gamma"] {
                let server = upper_case_echo(listener.try_clone().unwrap(), T);
                let (peer, got) = join_within(server, T, "the echo server");
                assert_eq!(got, want.as_bytes());
                peers.push(peer.port());
            }
            let (ok, lines, stderr) = client.finish(T);
            assert!(ok, "tcp-client failed: {stderr}\n{lines:?}");
            let connected: Vec<u16> = lines
                .iter()
                .filter(|l| l.contains("connected"))
                .map(|l| addr_after(l, "connected").port())
                .collect();
            assert_eq!(
                connected, peers,
                "the ports the server saw, in order: {lines:?}"
            );
            let distinct: BTreeSet<u16> = connected.iter().copied().collect();
            assert_eq!(
                distinct.len(),
                3,
                "one local port per message: {connected:?}"
            );
            let received: Vec<String> = lines
                .iter()
                .filter(|l| l.contains("received"))
                .map(|l| l.rsplit_once(": ").unwrap().1.trim_matches('"').to_string())
                .collect();
            assert_eq!(received, ["ALPHA", "BETA", "GAMMA"], "{lines:?}");
            assert_eq!(
                lines.iter().filter(|l| l.contains("closed: in")).count(),
                3,
                "{lines:?}"
            );
        },
    );
}

#[test]
fn kernel_tcp_client_reports_connection_refused() {
    in_netns("kernel_tcp_client_reports_connection_refused", || {
        let args = [
            "tcp-client",
            "--stack",
            "kernel",
            "--to",
            "127.0.0.1:9099",
            "x",
        ];
        let start = Instant::now();
        let (code, stdout, stderr) = run_bounded(&args, T);
        assert_eq!(code, Some(1), "exit status; stderr: {stderr}");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "refusal is immediate"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("error tcp #1 127.0.0.1:9099: connection refused"),
            "{stderr}"
        );
        assert!(!stdout.contains("connected"), "{stdout}");

        let mut json = args.to_vec();
        json.push("--json");
        let (code, stdout, stderr) = run_bounded(&json, T);
        assert_eq!(code, Some(1), "exit status; stderr: {stderr}");
        let events: Vec<Value> = stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let error = events
            .iter()
            .find(|v| v["event"] == "error")
            .unwrap_or_else(|| panic!("no error event: {stdout}"));
        assert_eq!(error["error"], "connection refused");
        assert_eq!(error["peer"], "127.0.0.1:9099");
    });
}

/// Sends `count` messages on `stream`, each read back whole before the next.
fn exchange(stream: &mut TcpStream, id: usize, count: usize) {
    for i in 0..count {
        let msg = format!("client {id} message {i} {}", "x".repeat(i % 50));
        stream.write_all(msg.as_bytes()).unwrap();
        let mut back = vec![0u8; msg.len()];
        stream.read_exact(&mut back).unwrap();
        assert_eq!(back, msg.as_bytes(), "client {id} message {i}");
    }
}

#[test]
fn kernel_tcp_server_serves_many_clients_at_once() {
    in_netns("kernel_tcp_server_serves_many_clients_at_once", || {
        let mut server = Proc::smolsock(&["tcp-server", "--stack", "kernel", "--backlog", "8"]);
        let listening = server.wait_for("listening", T);
        assert!(
            listening.contains("tcp listening 0.0.0.0:9090 backlog 8"),
            "{listening}"
        );
        let clients = 8;
        // All connect before any sends: eight connections open at once.
        let mut streams: Vec<TcpStream> = (0..clients)
            .map(|_| {
                let s = TcpStream::connect_timeout(&local(9090).into(), T).unwrap();
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
        let closed = server.wait_for(&format!("peer 127.0.0.1:{port0} closed"), T);
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
    });
}

const SIZE: usize = 16 * 1024 * 1024;

#[test]
fn kernel_bulk_client_sends_16_mib_pattern() {
    in_netns("kernel_bulk_client_sends_16_mib_pattern", || {
        let (_, crc) = pattern(SIZE);
        let reader = receive_all(TcpListener::bind(local(9090)).unwrap());
        let client = Proc::smolsock(&[
            "tcp-client",
            "--stack",
            "kernel",
            "--to",
            "127.0.0.1:9090",
            "--bytes",
            &SIZE.to_string(),
            "--json",
        ]);
        // The client exits once the reader has read everything and closed.
        let (ok, lines, stderr) = client.finish(T);
        assert!(ok, "tcp-client failed: {stderr}\n{lines:?}");
        let (got, took) = join_within(reader, T, "the reader");
        assert_eq!(got.len(), SIZE);
        assert_eq!(
            crc32fast::hash(&got),
            crc,
            "data from the kernel stack differs"
        );
        let events = json_lines(&lines);
        let closed = events
            .iter()
            .find(|v| v["event"] == "closed")
            .unwrap_or_else(|| panic!("no closed event: {lines:?}"));
        assert_eq!(closed["bytes_out"], SIZE as u64);
        assert_eq!(closed["crc32_out"], format!("{crc:08x}"));
        assert_eq!(closed["bytes_in"], 0);
        eprintln!(
            "16 MiB kernel-stack client -> std::net in {:.3} s",
            took.as_secs_f64()
        );
    });
}

#[test]
fn kernel_bulk_server_sinks_16_mib() {
    in_netns("kernel_bulk_server_sinks_16_mib", || {
        let (data, crc) = pattern(SIZE);
        let mut server = Proc::smolsock(&[
            "tcp-server",
            "--stack",
            "kernel",
            "--mode",
            "sink",
            "--max-clients",
            "1",
            "--json",
        ]);
        server.wait_for("listening", T);
        let sender = thread::spawn(move || send_all(local(9090), &data));
        let closed: Value = serde_json::from_str(&server.wait_for("\"closed\"", T)).unwrap();
        assert_eq!(closed["bytes_in"], SIZE as u64);
        assert_eq!(closed["crc32_in"], format!("{crc:08x}"));
        assert_eq!(closed["bytes_out"], 0);
        let took = join_within(sender, T, "the sender");
        let (ok, _, stderr) = server.finish(T);
        assert!(ok, "{stderr}");
        eprintln!(
            "16 MiB std::net -> kernel-stack sink in {:.3} s",
            took.as_secs_f64()
        );
    });
}

/// Echo mode prints every chunk it receives (up to 1024 bytes) as an event, which costs
/// more than the transfer itself in a debug build: 4 MiB keeps this test quick.
#[test]
fn kernel_bulk_server_echoes_4_mib() {
    in_netns("kernel_bulk_server_echoes_4_mib", || {
        const ECHO: usize = 4 * 1024 * 1024;
        let (data, crc) = pattern(ECHO);
        let mut server = Proc::smolsock(&["tcp-server", "--stack", "kernel", "--max-clients", "1"]);
        server.wait_for("listening", T);
        let mut stream = TcpStream::connect_timeout(&local(9090).into(), T).unwrap();
        stream.set_read_timeout(Some(T)).unwrap();
        stream.set_write_timeout(Some(T)).unwrap();
        // Written by one thread while this one reads the echo back.
        let mut writer = stream.try_clone().unwrap();
        let sender = thread::spawn(move || {
            writer.write_all(&data).unwrap();
            writer.shutdown(Shutdown::Write).unwrap();
        });
        let mut back = Vec::with_capacity(ECHO);
        stream.read_to_end(&mut back).unwrap();
        join_within(sender, T, "the sender");
        assert_eq!(back.len(), ECHO);
        assert_eq!(crc32fast::hash(&back), crc, "echo differs");
        let closed = server.wait_for("closed: in", T);
        assert!(
            closed.ends_with(&format!(
                "closed: in {ECHO} bytes crc32 {crc:08x}, out {ECHO} bytes crc32 {crc:08x}"
            )),
            "{closed}"
        );
        let (ok, _, stderr) = server.finish(T);
        assert!(ok, "{stderr}");
    });
}

/// The shape of a run's JSON output: each event's kind and the set of its keys.
fn shape(events: &[Value]) -> Vec<(String, BTreeSet<String>)> {
    events
        .iter()
        .map(|v| {
            let kind = v["event"].as_str().unwrap_or("?").to_string();
            let keys = v
                .as_object()
                .unwrap_or_else(|| panic!("not an object: {v}"))
                .keys()
                .cloned()
                .collect();
            (kind, keys)
        })
        .collect()
}

/// udp-recv on `stack_args`, fed three datagrams by a sender bound at `from` to `to`.
fn udp_recv_events(stack_args: &[&str], from: Ipv4Addr, to: Ipv4Addr) -> Vec<Value> {
    let mut args = vec!["udp-recv", "--count", "3", "--json"];
    args.extend_from_slice(stack_args);
    let mut recv = Proc::smolsock(&args);
    recv.wait_for("\"bound\"", T);
    let sock = UdpSocket::bind(SocketAddrV4::new(from, 0)).unwrap();
    sock.send_to(b"first", (to, 9090)).unwrap();
    sock.send_to(b"second", (to, 9090)).unwrap();
    sock.send_to(&[b'z'; 2000], (to, 9090)).unwrap();
    let (ok, lines, stderr) = recv.finish(T);
    assert!(ok, "udp-recv {stack_args:?} failed: {stderr}");
    let events = json_lines(&lines);
    let me = sock.local_addr().unwrap().to_string();
    for v in events.iter().filter(|v| v["event"] == "received") {
        assert_eq!(v["from"], me.as_str(), "{stack_args:?}");
    }
    events
}

#[test]
fn kernel_and_smoltcp_udp_recv_print_the_same_events() {
    in_netns("kernel_and_smoltcp_udp_recv_print_the_same_events", || {
        let smol = udp_recv_events(&["--stack", "smoltcp", "--tap", "tap0"], KERNEL_IP, SMOL_IP);
        let kern = udp_recv_events(
            &["--stack", "kernel"],
            Ipv4Addr::LOCALHOST,
            Ipv4Addr::LOCALHOST,
        );
        let kinds: Vec<String> = shape(&smol).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            kinds,
            ["bound", "received", "received", "received", "closed"],
            "{smol:?}"
        );
        assert_eq!(
            shape(&smol),
            shape(&kern),
            "smoltcp: {smol:?}\nkernel: {kern:?}"
        );
        // Beyond the addresses, the values agree too.
        for (s, k) in smol.iter().zip(&kern) {
            for key in ["len", "size", "truncated", "text", "bytes_in", "crc32_in"] {
                assert_eq!(s.get(key), k.get(key), "{key}: {s} vs {k}");
            }
        }
    });
}

/// tcp-server (echo, one client) on `stack_args`; a client at `to` sends three messages,
/// each echoed before the next, then closes.
fn tcp_server_events(stack_args: &[&str], to: Ipv4Addr) -> Vec<Value> {
    let mut args = vec!["tcp-server", "--max-clients", "1", "--json"];
    args.extend_from_slice(stack_args);
    let mut server = Proc::smolsock(&args);
    server.wait_for("\"listening\"", T);
    let mut s = TcpStream::connect_timeout(&SocketAddrV4::new(to, 9090).into(), T).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    exchange(&mut s, 0, 3);
    s.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    assert_eq!(s.read_to_end(&mut rest).unwrap(), 0);
    let (ok, lines, stderr) = server.finish(T);
    assert!(ok, "tcp-server {stack_args:?} failed: {stderr}");
    json_lines(&lines)
}

#[test]
fn kernel_and_smoltcp_tcp_server_print_the_same_events() {
    in_netns(
        "kernel_and_smoltcp_tcp_server_print_the_same_events",
        || {
            let smol = tcp_server_events(&["--stack", "smoltcp", "--tap", "tap0"], SMOL_IP);
            let kern = tcp_server_events(&["--stack", "kernel"], Ipv4Addr::LOCALHOST);
            let kinds: Vec<String> = shape(&smol).into_iter().map(|(k, _)| k).collect();
            assert_eq!(
                kinds.first().map(String::as_str),
                Some("listening"),
                "{smol:?}"
            );
            assert!(kinds.iter().any(|k| k == "peer-closed"), "{smol:?}");
            assert_eq!(
                shape(&smol),
                shape(&kern),
                "smoltcp: {smol:?}\nkernel: {kern:?}"
            );
            let closed = |events: &[Value]| events.iter().find(|v| v["event"] == "closed").cloned();
            let (s, k) = (closed(&smol).unwrap(), closed(&kern).unwrap());
            for key in [
                "bytes_in",
                "bytes_out",
                "crc32_in",
                "crc32_out",
                "messages_in",
            ] {
                assert_eq!(s[key], k[key], "{key}: {s} vs {k}");
            }
        },
    );
}
