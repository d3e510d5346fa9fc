//! Each program of `smolsock` on a TAP device, the Linux kernel as its peer. Every test
//! runs in a network namespace of its own (see `smolsock_tests::in_netns`).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use smolsock_tests::{
    KERNEL_IP, Proc, SMOL_IP, addr_after, in_netns, pattern, receive_all, send_all, upper_case_echo,
};

const T: Duration = Duration::from_secs(20);

fn kernel(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(KERNEL_IP, port)
}

#[test]
fn udp_recv_reports_kernel_datagrams_with_sender_and_truncation() {
    in_netns(
        "udp_recv_reports_kernel_datagrams_with_sender_and_truncation",
        || {
            let mut recv = Proc::smolsock(&["udp-recv", "--tap", "tap0", "--count", "3", "--json"]);
            recv.wait_for("\"bound\"", T);
            let sock = UdpSocket::bind(kernel(0)).unwrap();
            let me = sock.local_addr().unwrap().to_string();
            sock.send_to("hello 你好".as_bytes(), (SMOL_IP, 9090))
                .unwrap();
            sock.send_to(b"second", (SMOL_IP, 9090)).unwrap();
            sock.send_to(&[b'z'; 2000], (SMOL_IP, 9090)).unwrap();
            let (ok, lines, stderr) = recv.finish(T);
            assert!(ok, "udp-recv failed: {stderr}");
            let got: Vec<serde_json::Value> = lines
                .iter()
                .map(|l| serde_json::from_str(l).unwrap())
                .filter(|v: &serde_json::Value| v["event"] == "received")
                .collect();
            assert_eq!(got.len(), 3, "{lines:?}");
            assert_eq!(got[0]["text"], "hello 你好");
            assert_eq!(got[1]["text"], "second");
            for v in &got {
                assert_eq!(v["from"], me.as_str(), "sender address");
            }
            assert_eq!(got[2]["size"], 2000);
            assert_eq!(got[2]["len"], 1024, "S11: at most 1024 bytes per recvfrom");
            assert_eq!(got[2]["truncated"], true);
        },
    );
}

#[test]
fn udp_send_reaches_kernel_from_one_ephemeral_port() {
    in_netns("udp_send_reaches_kernel_from_one_ephemeral_port", || {
        let sock = UdpSocket::bind(kernel(9090)).unwrap();
        sock.set_read_timeout(Some(T)).unwrap();
        let send = Proc::smolsock(&[
            "udp-send",
            "--tap",
            "tap0",
            "--to",
            "192.168.69.100:9090",
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
        let port = addr_after(bound, "udp bound").port();
        assert!(port >= 49152, "ephemeral port {port}");
        for src in from {
            assert_eq!(
                src.to_string(),
                format!("{SMOL_IP}:{port}"),
                "S10: one port for every send"
            );
        }
    });
}

#[test]
fn tcp_client_talks_to_kernel_server() {
    in_netns("tcp_client_talks_to_kernel_server", || {
        let server = upper_case_echo(TcpListener::bind(kernel(9090)).unwrap(), T);
        let client = Proc::smolsock(&[
            "tcp-client",
            "--tap",
            "tap0",
            "--to",
            "192.168.69.100:9090",
            "hello",
            "world",
        ]);
        let (ok, lines, stderr) = client.finish(T);
        assert!(ok, "tcp-client failed: {stderr}\n{lines:?}");
        let (peer, got) = server.join().unwrap();
        assert_eq!(got, b"helloworld");
        let connected = lines
            .iter()
            .find(|l| l.contains("connected"))
            .expect("connected line");
        assert_eq!(
            addr_after(connected, "connected"),
            SocketAddrV4::new(SMOL_IP, peer.port()),
            "S2: the port the kernel saw"
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
                .any(|l| l.contains("peer 192.168.69.100:9090 closed")),
            "{lines:?}"
        );
    });
}

#[test]
fn tcp_client_reports_refused_and_timed_out_connections() {
    in_netns(
        "tcp_client_reports_refused_and_timed_out_connections",
        || {
            let (ok, _, stderr) = Proc::smolsock(&[
                "tcp-client",
                "--tap",
                "tap0",
                "--to",
                "192.168.69.100:9099",
                "x",
            ])
            .finish(T);
            assert!(!ok);
            assert!(
                stderr.contains("connection refused") && stderr.lines().count() == 1,
                "{stderr}"
            );
            // Nobody has 192.168.69.200: ARP goes unanswered, the handshake times out.
            let start = Instant::now();
            let (ok, _, stderr) = Proc::smolsock(&[
                "tcp-client",
                "--tap",
                "tap0",
                "--to",
                "192.168.69.200:9090",
                "--timeout",
                "1",
                "x",
            ])
            .finish(T);
            assert!(!ok);
            assert!(stderr.contains("timed out"), "{stderr}");
            assert!(start.elapsed() < Duration::from_secs(10));
        },
    );
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
fn tcp_server_serves_many_kernel_clients_at_once() {
    in_netns("tcp_server_serves_many_kernel_clients_at_once", || {
        let mut server = Proc::smolsock(&["tcp-server", "--tap", "tap0", "--backlog", "8"]);
        server.wait_for("listening", T);
        let clients = 8;
        // All connect before any sends: eight connections open at once.
        let mut streams: Vec<TcpStream> = (0..clients)
            .map(|_| {
                let s = TcpStream::connect_timeout(&(SMOL_IP, 9090).into(), T).unwrap();
                s.set_read_timeout(Some(T)).unwrap();
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
        let closed = server.wait_for(&format!("peer 192.168.69.100:{port0} closed"), T);
        assert!(closed.contains("recv returned 0 bytes"));
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
            h.join().expect("a client failed");
        }
        for _ in 0..clients {
            server.wait_for("closed: in", T);
        }
    });
}

#[test]
fn bulk_16_mib_each_way_arrives_intact() {
    in_netns("bulk_16_mib_each_way_arrives_intact", || {
        const SIZE: usize = 16 * 1024 * 1024;
        let (data, crc) = pattern(SIZE);

        // Kernel -> smoltcp: the server sinks and reports a CRC.
        let mut server = Proc::smolsock(&[
            "tcp-server",
            "--tap",
            "tap0",
            "--mode",
            "sink",
            "--max-clients",
            "1",
            "--json",
        ]);
        server.wait_for("listening", T);
        let up = send_all(SocketAddrV4::new(SMOL_IP, 9090), &data);
        let closed: serde_json::Value =
            serde_json::from_str(&server.wait_for("\"closed\"", T)).unwrap();
        assert_eq!(closed["bytes_in"], SIZE as u64);
        assert_eq!(closed["crc32_in"], format!("{crc:08x}"));
        let (ok, _, stderr) = server.finish(T);
        assert!(ok, "{stderr}");

        // smoltcp -> kernel: the client sends the pattern, the kernel checks it.
        let reader = receive_all(TcpListener::bind(kernel(9090)).unwrap());
        let client = Proc::smolsock(&[
            "tcp-client",
            "--tap",
            "tap0",
            "--to",
            "192.168.69.100:9090",
            "--bytes",
            &SIZE.to_string(),
        ]);
        let (got, down) = reader.join().unwrap();
        assert_eq!(got.len(), SIZE);
        assert_eq!(crc32fast::hash(&got), crc, "data from smoltcp differs");
        let (ok, lines, stderr) = client.finish(T);
        assert!(ok, "{stderr}");
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!("out {SIZE} bytes crc32 {crc:08x}"))),
            "{lines:?}"
        );
        eprintln!(
            "16 MiB kernel->smoltcp in {:.3} s ({:.0} Mbit/s), smoltcp->kernel in {:.3} s ({:.0} Mbit/s)",
            up.as_secs_f64(),
            SIZE as f64 * 8.0 / up.as_secs_f64() / 1e6,
            down.as_secs_f64(),
            SIZE as f64 * 8.0 / down.as_secs_f64() / 1e6
        );
    });
}

#[test]
fn missing_tap_gets_a_clear_error() {
    in_netns("missing_tap_gets_a_clear_error", || {
        let (ok, lines, stderr) = Proc::smolsock(&["udp-recv", "--tap", "nosuch0"]).finish(T);
        assert!(!ok);
        assert!(lines.is_empty());
        assert!(
            stderr.contains("'nosuch0' does not exist") && stderr.contains("ip tuntap add"),
            "{stderr}"
        );
        let (ok, _, stderr) = Proc::smolsock(&["udp-recv", "--tun", "tap0"]).finish(T);
        assert!(!ok);
        assert!(stderr.contains("not a TUN device"), "{stderr}");
    });
}

#[test]
fn tun_device_carries_ip_packets() {
    in_netns("tun_device_carries_ip_packets", || {
        smolsock_tests::sh(&["ip", "tuntap", "add", "name", "tun0", "mode", "tun"]);
        smolsock_tests::sh(&["ip", "link", "set", "tun0", "up"]);
        smolsock_tests::sh(&["ip", "addr", "add", "10.69.0.100/24", "dev", "tun0"]);
        let mut server = Proc::smolsock(&[
            "tcp-server",
            "--tun",
            "tun0",
            "--ip",
            "10.69.0.1/24",
            "--max-clients",
            "1",
        ]);
        server.wait_for("listening", T);
        let mut s = TcpStream::connect_timeout(&"10.69.0.1:9090".parse().unwrap(), T).unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        exchange(&mut s, 0, 10);
        drop(s);
        let (ok, lines, stderr) = server.finish(T);
        assert!(ok, "{stderr}");
        assert!(
            lines.iter().any(|l| l.contains("accepted 10.69.0.100:")),
            "{lines:?}"
        );
    });
}

#[test]
fn interactive_tcp_server_answers_with_typed_lines() {
    in_netns("interactive_tcp_server_answers_with_typed_lines", || {
        let mut server = Proc::smolsock_with_stdin(&[
            "tcp-server",
            "--tap",
            "tap0",
            "--mode",
            "interactive",
            "--max-clients",
            "1",
        ]);
        server.wait_for("listening", T);
        let mut s = TcpStream::connect_timeout(&(SMOL_IP, 9090).into(), T).unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        s.write_all(b"question").unwrap();
        server.wait_for("waiting for a reply line on stdin", T);
        server.stdin().write_all(b"typed answer\n").unwrap();
        let mut reply = [0u8; 12];
        s.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"typed answer");
        drop(s);
        let (ok, lines, stderr) = server.finish(T);
        assert!(ok, "{stderr}");
        assert!(
            lines
                .iter()
                .any(|l| l.contains("received 8 bytes") && l.contains("\"question\"")),
            "{lines:?}"
        );
    });
}
