//! Each program of `smolsock` with `--stack kernel`: the same state machines on the host
//! kernel's own stack, against the same std::net peers as the smoltcp tests in tap.rs.
//! Every test runs in a network namespace of its own (see `smolsock_tests::in_netns`), so
//! its ports never collide with the machine's; the peers are reached at 127.0.0.1 (and at
//! 192.168.69.100, the kernel's tap0 address, which is local in the namespace). The
//! scenarios smoltcp runs too live in `smolsock_tests::programs`; below them, the tests
//! for the kernel stack only, and the ones that run both stacks and compare their events.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;

use serde_json::Value;
use smolsock_tests::programs::{self, KERNEL, SMOLTCP, Target};
use smolsock_tests::{
    T, addr_after, exchange, in_netns, join_within, json_lines, pattern, received_texts,
    upper_case_echo,
};

#[test]
fn kernel_udp_recv_reports_datagrams_with_sender_and_truncation() {
    in_netns(
        "kernel_udp_recv_reports_datagrams_with_sender_and_truncation",
        || {
            programs::udp_recv_reports_datagrams(&KERNEL);
        },
    );
}

#[test]
fn kernel_udp_send_uses_one_port_the_one_it_printed() {
    in_netns("kernel_udp_send_uses_one_port_the_one_it_printed", || {
        programs::udp_send_keeps_one_port(&KERNEL)
    });
}

#[test]
fn kernel_tcp_client_talks_to_upper_case_echo() {
    in_netns("kernel_tcp_client_talks_to_upper_case_echo", || {
        programs::tcp_client_talks_to_echo(&KERNEL)
    });
}

#[test]
fn kernel_tcp_client_reports_connection_refused() {
    in_netns("kernel_tcp_client_reports_connection_refused", || {
        programs::tcp_client_reports_connection_refused(&KERNEL)
    });
}

#[test]
fn kernel_tcp_server_serves_many_clients_at_once() {
    in_netns("kernel_tcp_server_serves_many_clients_at_once", || {
        programs::tcp_server_serves_many_clients(&KERNEL)
    });
}

#[test]
fn kernel_bulk_client_sends_16_mib_pattern() {
    in_netns("kernel_bulk_client_sends_16_mib_pattern", || {
        programs::bulk_client_sends_pattern(&KERNEL)
    });
}

#[test]
fn kernel_bulk_server_sinks_16_mib() {
    in_netns("kernel_bulk_server_sinks_16_mib", || {
        programs::bulk_server_sinks(&KERNEL)
    });
}

#[test]
fn kernel_tcp_client_short_uses_a_new_port_per_message() {
    in_netns(
        "kernel_tcp_client_short_uses_a_new_port_per_message",
        || {
            let listener = TcpListener::bind(KERNEL.peer(9090)).unwrap();
            let to = KERNEL.peer(9090).to_string();
            let client = KERNEL.smolsock(
                "tcp-client",
                &["--to", &to, "--short", "alpha", "beta", "gamma"],
            );
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
            assert_eq!(
                received_texts(&lines),
                ["ALPHA", "BETA", "GAMMA"],
                "{lines:?}"
            );
            assert_eq!(
                lines.iter().filter(|l| l.contains("closed: in")).count(),
                3,
                "{lines:?}"
            );
        },
    );
}

/// Echo mode prints every chunk it receives (up to 1024 bytes) as an event, which costs
/// more than the transfer itself in a debug build: 4 MiB keeps this test quick.
#[test]
fn kernel_bulk_server_echoes_4_mib() {
    in_netns("kernel_bulk_server_echoes_4_mib", || {
        const ECHO: usize = 4 * 1024 * 1024;
        let (data, crc) = pattern(ECHO);
        let mut server = KERNEL.smolsock("tcp-server", &["--max-clients", "1"]);
        server.wait_for("listening", T);
        let mut stream = TcpStream::connect_timeout(&KERNEL.at(9090).into(), T).unwrap();
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

/// smoltcp on tap0, chosen by name (`--stack smoltcp`) as well as by its device.
const SMOLTCP_BY_NAME: Target = Target {
    args: &["--stack", "smoltcp", "--tap", "tap0"],
    ..SMOLTCP
};

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

#[test]
fn kernel_and_smoltcp_udp_recv_print_the_same_events() {
    in_netns("kernel_and_smoltcp_udp_recv_print_the_same_events", || {
        let smol = programs::udp_recv_reports_datagrams(&SMOLTCP_BY_NAME);
        let kern = programs::udp_recv_reports_datagrams(&KERNEL);
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

/// tcp-server (echo, one client) on `t`; a client sends three messages, each echoed
/// before the next, then closes. Returns the server's JSON events.
fn tcp_server_events(t: &Target) -> Vec<Value> {
    let mut server = t.smolsock("tcp-server", &["--max-clients", "1", "--json"]);
    server.wait_for("\"listening\"", T);
    let mut s = TcpStream::connect_timeout(&t.at(9090).into(), T).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    exchange(&mut s, 0, 3);
    s.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    assert_eq!(s.read_to_end(&mut rest).unwrap(), 0);
    let (ok, lines, stderr) = server.finish(T);
    assert!(ok, "tcp-server on {t} failed: {stderr}");
    json_lines(&lines)
}

#[test]
fn kernel_and_smoltcp_tcp_server_print_the_same_events() {
    in_netns(
        "kernel_and_smoltcp_tcp_server_print_the_same_events",
        || {
            let smol = tcp_server_events(&SMOLTCP_BY_NAME);
            let kern = tcp_server_events(&KERNEL);
            let kinds: Vec<String> = shape(&smol).into_iter().map(|(k, _)| k).collect();
            assert_eq!(
                kinds.first().map(String::as_str),
                Some("listening"),
                "{smol:?}"
            );
            assert!(kinds.iter().any(|k| k == "peer_closed"), "{smol:?}");
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

#[test]
fn kernel_tcp_server_sigterm_closes_every_client() {
    in_netns("kernel_tcp_server_sigterm_closes_every_client", || {
        programs::tcp_server_signal_closes_every_client(&KERNEL, libc::SIGTERM)
    });
}

#[test]
fn kernel_tcp_server_sigint_closes_every_client() {
    in_netns("kernel_tcp_server_sigint_closes_every_client", || {
        programs::tcp_server_signal_closes_every_client(&KERNEL, libc::SIGINT)
    });
}

#[test]
fn kernel_tcp_client_reply_timeout_ends_with_timed_out() {
    in_netns(
        "kernel_tcp_client_reply_timeout_ends_with_timed_out",
        || programs::tcp_client_reply_timeout(&KERNEL),
    );
}
