//! The `smolsock` binary as a user meets it without a network: the demo, and bad input.

use std::process::{Command, Output};

fn smolsock(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_smolsock"))
        .args(args)
        .output()
        .expect("run smolsock")
}

/// Asserts a failure with exactly one line on stderr containing `needle`, and no panic.
fn fails_with(args: &[&str], needle: &str) {
    let out = smolsock(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} should fail");
    assert_eq!(
        stderr.lines().count(),
        1,
        "{args:?}: one line on stderr, got:\n{stderr}"
    );
    assert!(
        stderr.contains(needle),
        "{args:?}: {stderr:?} lacks {needle:?}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn demo_runs_all_programs_unprivileged() {
    let out = smolsock(&["demo"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "[server] udp received 10 bytes from 192.168.69.2:",
        "(ephemeral port, bound by the first send)",
        "── SYN seq=0",
        "◀ SYN,ACK seq=0 ack=1",
        "state SYN-SENT -> ESTABLISHED",
        "state FIN-WAIT-2 -> TIME-WAIT",
        "state LAST-ACK -> CLOSED",
        "[server] tcp #1 peer 192.168.69.2:",
        "[client] tcp #1 received 5 bytes from 192.168.69.1:9090: \"hello\"",
        "[server] tcp #2 accepted",
        "Demo finished",
    ] {
        assert!(
            text.contains(needle),
            "demo output lacks {needle:?}:\n{text}"
        );
    }
}

#[test]
fn demo_json_is_one_object_per_line() {
    let out = smolsock(&["demo", "--json"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let values: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert!(
        values
            .iter()
            .any(|v| v["event"] == "received" && v["text"] == "hello")
    );
    assert!(
        values
            .iter()
            .any(|v| v["event"] == "packet" && v["flags"] == serde_json::json!(["SYN"]))
    );
}

#[test]
fn bad_input_gets_one_clear_line_and_a_failure() {
    fails_with(&["udp-recv", "--bogus"], "unexpected argument '--bogus'");
    fails_with(&["udp-recv", "--port", "0"], "port 0 is not allowed");
    fails_with(&["udp-recv", "--port", "65536"], "out of range");
    fails_with(&["tcp-server", "--port", "http"], "not a port number");
    fails_with(&["tcp-client", "--to", "192.168.69.100"], "is not IP:PORT");
    fails_with(
        &["tcp-client", "--to", "192.168.69.300:9090"],
        "not an IPv4 address",
    );
    fails_with(
        &["udp-send", "--to", "192.168.69.100:0", "x"],
        "port 0 is not allowed",
    );
    fails_with(&["udp-recv", "--ip", "192.168.69.1"], "prefix length");
    fails_with(
        &["udp-recv", "--ip", "192.168.69.1/40"],
        "prefix length from 1 to 32",
    );
    fails_with(&["udp-recv", "--mac", "01:00:5e:00:00:01"], "unicast");
    fails_with(
        &["udp-recv", "--tap", "a", "--tun", "b"],
        "cannot be used with",
    );
    fails_with(&["tcp-server", "--backlog", "0"], "backlog");
    fails_with(&["demo", "--pcap", "/tmp/x.pcap"], "--pcap needs a TAP");
    fails_with(
        &[
            "udp-recv",
            "--gateway",
            "10.0.0.1",
            "--tap",
            "definitely-missing0",
        ],
        "does not exist",
    );
}

#[test]
fn help_lists_every_program() {
    let out = smolsock(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["udp-recv", "udp-send", "tcp-server", "tcp-client", "demo"] {
        assert!(text.contains(cmd), "{text}");
    }
}
