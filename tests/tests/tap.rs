//! Each program of `smolsock` on a TAP device, the Linux kernel as its peer. Every test
//! runs in a network namespace of its own (see `smolsock_tests::in_netns`). The scenarios
//! the kernel stack runs too (tests/kernel.rs) live in `smolsock_tests::programs`; the
//! tests below them are for smoltcp and its devices only.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use smolsock_tests::programs::{self, SMOLTCP};
use smolsock_tests::{Proc, SMOL_IP, T, exchange, in_netns};

#[test]
fn udp_recv_reports_kernel_datagrams_with_sender_and_truncation() {
    in_netns(
        "udp_recv_reports_kernel_datagrams_with_sender_and_truncation",
        || {
            programs::udp_recv_reports_datagrams(&SMOLTCP);
        },
    );
}

#[test]
fn udp_send_reaches_kernel_from_one_ephemeral_port() {
    in_netns("udp_send_reaches_kernel_from_one_ephemeral_port", || {
        programs::udp_send_keeps_one_port(&SMOLTCP)
    });
}

#[test]
fn tcp_client_talks_to_kernel_server() {
    in_netns("tcp_client_talks_to_kernel_server", || {
        programs::tcp_client_talks_to_echo(&SMOLTCP)
    });
}

#[test]
fn tcp_client_reports_connection_refused() {
    in_netns("tcp_client_reports_connection_refused", || {
        programs::tcp_client_reports_connection_refused(&SMOLTCP)
    });
}

#[test]
fn tcp_client_reports_timed_out_connection() {
    in_netns("tcp_client_reports_timed_out_connection", || {
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
    });
}

#[test]
fn tcp_server_serves_many_kernel_clients_at_once() {
    in_netns("tcp_server_serves_many_kernel_clients_at_once", || {
        programs::tcp_server_serves_many_clients(&SMOLTCP)
    });
}

#[test]
fn bulk_client_sends_16_mib_pattern() {
    in_netns("bulk_client_sends_16_mib_pattern", || {
        programs::bulk_client_sends_pattern(&SMOLTCP)
    });
}

#[test]
fn bulk_server_sinks_16_mib() {
    in_netns("bulk_server_sinks_16_mib", || {
        programs::bulk_server_sinks(&SMOLTCP)
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

#[test]
fn tcp_server_sigterm_closes_every_client() {
    in_netns("tcp_server_sigterm_closes_every_client", || {
        programs::tcp_server_signal_closes_every_client(&SMOLTCP, libc::SIGTERM)
    });
}

#[test]
fn tcp_server_sigint_closes_every_client() {
    in_netns("tcp_server_sigint_closes_every_client", || {
        programs::tcp_server_signal_closes_every_client(&SMOLTCP, libc::SIGINT)
    });
}

#[test]
fn tcp_client_reply_timeout_ends_with_timed_out() {
    in_netns("tcp_client_reply_timeout_ends_with_timed_out", || {
        programs::tcp_client_reply_timeout(&SMOLTCP)
    });
}

#[test]
#[ignore = "needs the socket layer to reclaim pool sockets stuck in FIN-WAIT to a vanished peer \
            (the idle close sends a FIN nobody acknowledges; without reclamation the give-up, \
            60 s by default, frees them)"]
fn vanished_clients_free_their_slots() {
    in_netns("vanished_clients_free_their_slots", || {
        // 40 clients from a second kernel address fill every slot (32 served, 8 in the
        // backlog), then vanish without FIN or RST: the address is deleted, so the kernel
        // can neither send for it nor answer for it.
        smolsock_tests::sh(&["ip", "addr", "add", "192.168.69.101/24", "dev", "tap0"]);
        smolsock_tests::sh(&[
            "ip",
            "route",
            "add",
            "192.168.69.1/32",
            "dev",
            "tap0",
            "src",
            "192.168.69.101",
        ]);
        let mut server = Proc::smolsock(&["tcp-server", "--tap", "tap0", "--idle-timeout", "5"]);
        server.wait_for("listening", T);
        let mut vanished = Vec::new();
        for i in 0..40 {
            let mut s = TcpStream::connect_timeout(&(SMOL_IP, 9090).into(), T).unwrap();
            s.set_read_timeout(Some(T)).unwrap();
            assert_eq!(s.local_addr().unwrap().ip().to_string(), "192.168.69.101");
            if i < 32 {
                exchange(&mut s, i, 1);
            }
            vanished.push(s);
        }
        smolsock_tests::sh(&["ip", "addr", "del", "192.168.69.101/24", "dev", "tap0"]);
        let _ = std::process::Command::new("ip")
            .args(["route", "del", "192.168.69.1/32"])
            .output();
        // A new client from 192.168.69.100 is served within 20 s.
        let start = Instant::now();
        let served = loop {
            let attempt =
                TcpStream::connect_timeout(&(SMOL_IP, 9090).into(), Duration::from_secs(2))
                    .and_then(|mut s| {
                        s.set_read_timeout(Some(Duration::from_secs(2)))?;
                        s.write_all(b"hello")?;
                        let mut buf = [0u8; 5];
                        s.read_exact(&mut buf)?;
                        Ok((s.local_addr()?, buf))
                    });
            match attempt {
                Ok((local, buf)) => break Some((local, buf)),
                Err(_) if start.elapsed() < Duration::from_secs(20) => {
                    std::thread::sleep(Duration::from_millis(500))
                }
                Err(_) => break None,
            }
        };
        let Some((local, buf)) = served else {
            server.signal(libc::SIGTERM);
            let (_, lines, stderr) = server.finish(T);
            panic!(
                "no new client served within 20 s\n{}\n{stderr}",
                lines.join("\n")
            );
        };
        assert_eq!(local.ip().to_string(), "192.168.69.100");
        assert_eq!(&buf, b"hello");
        eprintln!(
            "new client served {:.1} s after the 40 vanished",
            start.elapsed().as_secs_f64()
        );
        drop(vanished);
    });
}
