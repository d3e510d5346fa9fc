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

/// Bytes of the bulk transfers under faults: big enough for hundreds of faulted frames,
/// small enough for seconds with smoltcp's one-second retransmission floor.
const FAULTY_BULK: usize = 600_000;

/// The fault mixes the TAP tests run (the in-process chaos test runs hundreds more).
const TAP_MIXES: &[&str] = &[
    "loss=3%,dup=1%,reorder=2%,seed=1",
    "loss=2%,dup=1%,reorder=2%,corrupt=0.5%,delay=2ms,jitter=2ms,seed=2",
];

/// The `faults` event of a run (JSON lines): what the injector did, both directions.
fn fault_counts(lines: &[String]) -> serde_json::Value {
    smolsock_tests::json_lines(lines)
        .into_iter()
        .find(|v| v["event"] == "faults")
        .unwrap_or_else(|| panic!("no faults event: {lines:?}"))
}

#[test]
fn bulk_client_under_faults_delivers_the_same_crc_to_the_kernel() {
    in_netns(
        "bulk_client_under_faults_delivers_the_same_crc_to_the_kernel",
        || {
            let (_, crc) = smolsock_tests::pattern(FAULTY_BULK);
            for mix in TAP_MIXES {
                let listener = std::net::TcpListener::bind((smolsock_tests::KERNEL_IP, 9090))
                    .expect("bind the kernel's reader");
                let reader = smolsock_tests::receive_all(listener);
                let size = FAULTY_BULK.to_string();
                let client = Proc::smolsock(&[
                    "tcp-client",
                    "--tap",
                    "tap0",
                    "--to",
                    "192.168.69.100:9090",
                    "--bytes",
                    &size,
                    "--timeout",
                    "10",
                    "--faults",
                    mix,
                    "--json",
                ]);
                let (ok, lines, stderr) = client.finish(Duration::from_secs(90));
                assert!(ok, "{mix}: {stderr}\n{lines:?}");
                let (got, _) = smolsock_tests::join_within(reader, T, "the kernel's reader");
                assert_eq!(
                    (got.len(), crc32fast::hash(&got)),
                    (FAULTY_BULK, crc),
                    "{mix}"
                );
                let closed = smolsock_tests::json_lines(&lines)
                    .into_iter()
                    .find(|v| v["event"] == "closed")
                    .unwrap_or_else(|| panic!("no closed event: {lines:?}"));
                assert_eq!(closed["crc32_out"], format!("{crc:08x}"), "{mix}");
                let faults = fault_counts(&lines);
                assert!(faults["tx"]["dropped"].as_u64() > Some(0), "{faults}");
                assert!(faults["tx"]["duplicated"].as_u64() > Some(0), "{faults}");
            }
        },
    );
}

#[test]
fn sink_server_under_faults_reports_the_kernel_clients_crc() {
    in_netns(
        "sink_server_under_faults_reports_the_kernel_clients_crc",
        || {
            let (data, crc) = smolsock_tests::pattern(FAULTY_BULK);
            for mix in TAP_MIXES {
                let mut server = Proc::smolsock(&[
                    "tcp-server",
                    "--tap",
                    "tap0",
                    "--mode",
                    "sink",
                    "--max-clients",
                    "1",
                    "--faults",
                    mix,
                    "--json",
                ]);
                server.wait_for("listening", T);
                let to = std::net::SocketAddrV4::new(SMOL_IP, 9090);
                let payload = data.clone();
                let sender = std::thread::spawn(move || smolsock_tests::send_all(to, &payload));
                let closed: serde_json::Value =
                    serde_json::from_str(&server.wait_for("\"closed\"", Duration::from_secs(90)))
                        .unwrap();
                assert_eq!(closed["bytes_in"], FAULTY_BULK as u64, "{mix}");
                assert_eq!(closed["crc32_in"], format!("{crc:08x}"), "{mix}");
                smolsock_tests::join_within(sender, T, "the kernel's sender");
                let (ok, lines, stderr) = server.finish(T);
                assert!(ok, "{mix}: {stderr}");
                let faults = fault_counts(&lines);
                assert!(faults["rx"]["dropped"].as_u64() > Some(0), "{faults}");
            }
        },
    );
}
