//! `smolsock compare` as a user runs it: it makes its own network namespace, runs every
//! scenario on the kernel, on smoltcp, and (with `--board qemu`) on the emulated board's
//! remote firmware, and prints the table. These tests pin what each stack was observed to
//! do, so a change in any stack (or in smolsock's socket layer, or the board's driver)
//! shows up here with the scenario and the stack named. The board tests need the release
//! firmware (`cargo xtask boards`).

use std::process::Command;

use serde_json::Value;
use smolsock_tests::smolsock_bin;

/// Runs `smolsock compare` with `args`; returns its stdout, failing on a non-zero exit.
fn compare(args: &[&str]) -> String {
    let out = Command::new(smolsock_bin())
        .arg("compare")
        .args(args)
        .output()
        .expect("run smolsock compare");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "smolsock compare {args:?} failed ({}): {stderr}\n{stdout}",
        out.status
    );
    stdout
}

/// What each stack must have been seen doing: (scenario, on the kernel, on smoltcp); each
/// is a list of fragments the observation must contain.
const EXPECTED: &[(&str, &[&str], &[&str])] = &[
    (
        "connect-refused",
        &["connection refused (the SYN was answered with RST)"],
        &["connection refused (the SYN was answered with RST)"],
    ),
    (
        "connect",
        &["connected; the server's accept() returned the client's own address and port"],
        &["connected; the server's accept() returned the client's own address and port"],
    ),
    (
        "client-port",
        &[
            "32 of 32 connected, from 32 different ports, rising in connect order, even numbers only",
            "all in 32768-60999 (Linux's ip_local_port_range)",
        ],
        &[
            "32 of 32 connected, from 32 different ports, in no order;",
            "all in 49152-65535 (IANA's dynamic range)",
        ],
    ),
    (
        "udp-sender-port",
        &[
            "unbound before the first send; 3 of 3 datagrams arrived, all from one port, which the socket kept",
            "all in 32768-60999 (Linux's ip_local_port_range)",
        ],
        &[
            "unbound before the first send; 3 of 3 datagrams arrived, all from one port, which the socket kept",
            "all in 49152-65535 (IANA's dynamic range)",
        ],
    ),
    (
        "accept",
        &[
            "4 accepted, from 4 different client ports; 3 of 3 got back only their own bytes; the listener then served a 4th client",
        ],
        &[
            "4 accepted, from 4 different client ports; 3 of 3 got back only their own bytes; the listener then served a 4th client",
        ],
    ),
    (
        "listener-close",
        &["a new client: connection refused (a RST); the connected client was still served"],
        &["a new client: connection refused (a RST); the connected client was still served"],
    ),
    (
        "server-closes",
        &["the client's recv returned 0 bytes (end-of-stream: a FIN)"],
        &["the client's recv returned 0 bytes (end-of-stream: a FIN)"],
    ),
    (
        "client-closes",
        &["the server read 3 bytes, then recv returned 0 bytes (end-of-stream)"],
        &["the server read 3 bytes, then recv returned 0 bytes (end-of-stream)"],
    ),
    (
        "udp-truncate",
        &[
            "recvfrom(1024) got the first 1024 of 2000 bytes, the rest was dropped; the next datagram came whole",
        ],
        &[
            "recvfrom(1024) got the first 1024 of 2000 bytes, the rest was dropped; the next datagram came whole",
        ],
    ),
    (
        "backlog",
        &[
            "3 of 5 connected while the server did not accept, 0 refused (RST), 2 left waiting",
            "once the server accepted, 2 of the 2 connected",
        ],
        // smolsock drops the SYN beyond the backlog as Linux does: no refusal, and the
        // waiting clients get in once the server accepts.
        &[
            "2 of 5 connected while the server did not accept, 0 refused (RST), 3 left waiting",
            "once the server accepted, 3 of the 3 connected",
        ],
    ),
    (
        "backlog-reset",
        &[
            "3 of 5 connected while the server did not accept, 0 refused (RST), 2 left waiting",
            "once the server accepted, 2 of the 2 connected",
        ],
        &["2 of 5 connected while the server did not accept, 3 refused (RST), 0 left waiting"],
    ),
    (
        "udp-closed-port-in",
        &[
            "answered with ICMP port unreachable; the sender's connected socket then got connection refused (ECONNREFUSED)",
        ],
        &[
            "answered with ICMP port unreachable; the sender's connected socket then got connection refused (ECONNREFUSED)",
        ],
    ),
    (
        "udp-closed-port-out",
        &[
            "the peer answered with ICMP port unreachable; the sender's first send ok, its next send ok, its recvfrom: nothing to read",
        ],
        &[
            "the peer answered with ICMP port unreachable; the sender's first send ok, its next send ok, its recvfrom: nothing to read",
        ],
    ),
    (
        "close-unread",
        &["the server sent RST; the client's recv returned connection reset (a RST)"],
        &["the server sent FIN, no RST; the client's recv returned 0 bytes (end-of-stream: a FIN)"],
    ),
    (
        "half-close",
        &[
            "after shutdown(SHUT_WR) the client still received \"got 1000 bytes\", then end-of-stream",
        ],
        &[
            "after shutdown(SHUT_WR) the client still received \"got 1000 bytes\", then end-of-stream",
        ],
    ),
    (
        "time-wait",
        &[
            "the client (it closed first) held TIME-WAIT for 60 s; the server (it closed second) held none",
        ],
        &[
            "the client (it closed first) held TIME-WAIT for 10 s; the server (it closed second) held none",
        ],
    ),
    (
        "arp",
        &["1 ARP request, 1 reply; 3 of 3 datagrams sent before the reply were delivered"],
        &["1 ARP request, 1 reply; 3 of 3 datagrams sent before the reply were delivered"],
    ),
    (
        "keepalive",
        &[
            "idle 1.5 s: no packets; with keep-alive at 1 s: repeated 0-byte probes, each answered; connection still open",
        ],
        &[
            "idle 1.5 s: no packets; with keep-alive at 1 s: repeated 1-byte probes, each answered; connection still open",
        ],
    ),
    (
        "loss",
        &["1 MiB with 5 % of the sender's frames lost: every byte arrived, in order"],
        &["1 MiB with 5 % of the sender's frames lost: every byte arrived, in order"],
    ),
    (
        "handshake",
        &[
            "handshake: SYN > SYN,ACK < ACK >; close: FIN,ACK > ACK < FIN,ACK < ACK >; the client ends in TIME-WAIT, the server in CLOSED",
        ],
        &[
            "handshake: SYN > SYN,ACK < ACK >; close: FIN,ACK > ACK < FIN,ACK < ACK >; the client ends in TIME-WAIT, the server in CLOSED",
        ],
    ),
];

/// What the board cannot run, and the words its cell must have: (scenario, fragments).
/// Every other scenario must give on the board what it gives on smoltcp on the host: the
/// same core on another clock, MAC driver and buffer sizes.
const BOARD_CANNOT_RUN: &[(&str, &[&str])] =
    &[("loss", &["cannot run on the board", "fault injector"])];

#[test]
fn every_scenario_on_three_stacks_behaves_as_observed() {
    let report: Value = serde_json::from_str(&compare(&["--json", "--board", "qemu"]))
        .expect("compare --json --board qemu");
    let rows = report["rows"].as_array().expect("rows");
    let ids: Vec<&str> = rows.iter().filter_map(|r| r["id"].as_str()).collect();
    let expected_ids: Vec<&str> = EXPECTED.iter().map(|(id, _, _)| *id).collect();
    assert_eq!(ids, expected_ids, "the scenarios of the table");
    let mut wrong = Vec::new();
    for (row, (id, kernel, smoltcp)) in rows.iter().zip(EXPECTED) {
        for (stack, fragments) in [("kernel", kernel), ("smoltcp", smoltcp)] {
            let seen = &row[stack]["seen"];
            let Some(seen) = seen.as_str() else {
                wrong.push(format!("{id} on {stack}: could not run: {}", row[stack]));
                continue;
            };
            for fragment in *fragments {
                if !seen.contains(fragment) {
                    wrong.push(format!(
                        "{id} on {stack}:\n    expected: …{fragment}…\n    seen:     {seen}"
                    ));
                }
            }
        }
        // The board: what smoltcp on the host does, or why it cannot run the scenario.
        match BOARD_CANNOT_RUN.iter().find(|(other, _)| other == id) {
            Some((_, fragments)) => {
                let why = row["board"]["error"].as_str().unwrap_or_default();
                for fragment in *fragments {
                    if !why.contains(fragment) {
                        wrong.push(format!("{id} on the board: {}", row["board"]));
                    }
                }
            }
            None => match row["board"]["seen"].as_str() {
                None => wrong.push(format!(
                    "{id} on the board: could not run: {}",
                    row["board"]
                )),
                Some(seen) => {
                    for fragment in *smoltcp {
                        if !seen.contains(fragment) {
                            wrong.push(format!(
                                "{id} on the board:\n    expected: …{fragment}…\n    seen:     {seen}"
                            ));
                        }
                    }
                }
            },
        }
        let same = kernel == smoltcp;
        let verdict = if same { "same" } else { "different" };
        if row["verdict"] != verdict {
            wrong.push(format!(
                "{id}: verdict {} instead of {verdict}",
                row["verdict"]
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "a stack behaved differently from what the table says:\n{}",
        wrong.join("\n")
    );
    for stack in ["kernel", "smoltcp", "board"] {
        let ladder = report["ladders"][stack]
            .as_array()
            .expect("a ladder per stack");
        assert!(
            ladder.len() >= 9,
            "{stack}'s S13 ladder is too short: {ladder:?}"
        );
        // Printed to a pipe: ASCII arrows, each end's state beside its end.
        let text: Vec<&str> = ladder.iter().filter_map(Value::as_str).collect();
        assert!(
            text.iter()
                .any(|l| l.trim_start().starts_with("SYN-SENT -- SYN seq=0 -")),
            "{text:#?}"
        );
        assert!(
            text.iter()
                .any(|l| l.trim_start().starts_with("TIME-WAIT") && l.ends_with("> CLOSED")),
            "{text:#?}"
        );
    }
    // The loss row's times change from run to run: they are figures beside its sentence.
    let loss = rows
        .iter()
        .find(|r| r["id"] == "loss")
        .expect("the loss row");
    for stack in ["kernel", "smoltcp"] {
        let took = loss[stack]["measured"].as_str().unwrap_or_default();
        let secs: f64 = took.trim_end_matches(" s").parse().unwrap_or(-1.0);
        assert!(
            secs > 0.0,
            "{stack}'s time for the lossy transfer: {took:?}"
        );
    }
}

/// The table rows of a Markdown document: the lines of its first table.
fn table(markdown: &str) -> Vec<&str> {
    markdown
        .lines()
        .skip_while(|l| !l.starts_with("| Rule |"))
        .take_while(|l| l.starts_with('|'))
        .collect()
}

#[test]
fn docs_behaviour_table_is_up_to_date() {
    let fresh = compare(&["--markdown", "--board", "qemu"]);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/behaviour.md");
    let doc = std::fs::read_to_string(path).expect("docs/behaviour.md");
    let (fresh, doc) = (table(&fresh), table(&doc));
    assert!(fresh.len() > 2, "compare --markdown printed no table");
    let diff: Vec<String> = fresh
        .iter()
        .zip(doc.iter().chain(std::iter::repeat(&"(missing)")))
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("  now:  {a}\n  docs: {b}"))
        .collect();
    assert!(
        diff.is_empty() && fresh.len() == doc.len(),
        "docs/behaviour.md is out of date (refresh it with `cargo xtask behaviour`):\n{}",
        diff.join("\n")
    );
}

#[test]
fn text_table_names_both_stacks_and_a_verdict() {
    let text = compare(&["--only", "connect-refused", "--only", "close-unread"]);
    assert!(text.contains("kernel (std::net)") && text.contains("smoltcp (no_std core)"));
    assert!(text.contains("S1/S3"), "{text}");
    assert!(
        text.contains("same") && text.contains("different"),
        "{text}"
    );
    assert!(text.contains("why:"), "{text}");
}

/// The text table with the board's column: a third column, a cell that says why a scenario
/// cannot run on the board, and the board's reason in the "why"; such a cell is a limit of
/// the board, not a failure (exit status 0).
#[test]
fn text_table_has_the_boards_column_with_board_qemu() {
    let text = compare(&["--board", "qemu", "--only", "connect", "--only", "loss"]);
    assert!(text.contains("board (no_std core on lm3s6965"), "{text}");
    assert!(text.contains("cannot run on the board"), "{text}");
    assert!(text.contains("on the board: the fault injector"), "{text}");
    assert!(
        text.contains("board -"),
        "the loss row's times name the board: {text}"
    );
}

/// A board that is not there, or not the remote firmware: a clear error, in bounded time.
#[test]
fn compare_board_bad_input_is_a_clear_error() {
    let run = |args: &[&str]| {
        let out = Command::new(smolsock_bin())
            .arg("compare")
            .args(args)
            .output()
            .expect("run smolsock compare");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(&[
        "--board",
        "qemu",
        "--firmware",
        "/nonexistent/remote",
        "--only",
        "connect",
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("no remote firmware at /nonexistent/remote"),
        "{stderr}"
    );
    let (code, stderr) = run(&["--board", "/dev/ttyACM7", "--only", "connect"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("give --board-if"), "{stderr}");
    let (code, stderr) = run(&[
        "--board",
        "/nonexistent/ttyACM7",
        "--board-if",
        "eth9",
        "--board-peer",
        "192.168.69.100",
        "--only",
        "connect",
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("/nonexistent/ttyACM7"), "{stderr}");
    let other = smolsock_tests::board_elf("udp-recv");
    let started = std::time::Instant::now();
    let (code, stderr) = run(&[
        "--board",
        "qemu",
        "--firmware",
        other.to_str().unwrap(),
        "--only",
        "connect",
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no answer to the handshake"), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A board on a serial device, its Ethernet on the machine's own network: the emulated
/// board stands in for a Nucleo, its UART0 made a pseudo-terminal by socat (the tty path of
/// the host's link, as `/dev/ttyACM0` would be), its NIC on the test namespace's `tap0`.
/// compare runs the board's column in the namespace it was started in, the others in its
/// own; the board gives what smoltcp on the host gives.
#[test]
fn compare_with_a_board_on_a_serial_device() {
    smolsock_tests::in_netns("compare_with_a_board_on_a_serial_device", || {
        use std::time::{Duration, Instant};
        let dir = std::env::temp_dir().join(format!("smolsock-serial-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (socket, tty) = (dir.join("uart0"), dir.join("tty"));
        let elf = smolsock_tests::board_elf("remote");
        let _board = smolsock_tests::Proc::qemu_with(&["--serial", socket.to_str().unwrap()], &elf);
        let appeared = |path: &std::path::Path| {
            let limit = Instant::now() + Duration::from_secs(20);
            while !path.exists() && Instant::now() < limit {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(path.exists(), "{} did not appear", path.display());
        };
        appeared(&socket);
        let mut socat = Command::new("socat")
            .arg(format!("PTY,link={},raw,echo=0", tty.display()))
            .arg(format!("UNIX-CONNECT:{}", socket.display()))
            .spawn()
            .expect("run socat (Debian package socat)");
        appeared(&tty);
        let scenarios = ["connect", "udp-truncate", "arp", "time-wait", "loss"];
        let mut args = vec![
            "--json",
            "--board",
            tty.to_str().unwrap(),
            "--board-if",
            "tap0",
            "--board-peer",
            "192.168.69.100",
            "--board-ip",
            "192.168.69.4/24",
        ];
        for id in scenarios {
            args.extend(["--only", id]);
        }
        let report: Value = serde_json::from_str(&compare(&args)).expect("compare --json");
        let _ = socat.kill();
        let _ = socat.wait();
        let _ = std::fs::remove_dir_all(&dir);
        let rows = report["rows"].as_array().expect("rows");
        assert_eq!(rows.len(), scenarios.len());
        for row in rows {
            if row["id"] == "loss" {
                assert!(
                    row["board"]["error"]
                        .as_str()
                        .unwrap()
                        .contains("cannot run on the board")
                );
                continue;
            }
            assert_eq!(
                row["board"]["seen"], row["smoltcp"]["seen"],
                "{}: the board on the serial device against smoltcp on the host",
                row["id"]
            );
        }
    });
}

/// `smolsock compare` as a normal user: with unprivileged user namespaces it must work (on
/// a TAP, or on a veth pair when `/dev/net/tun` is root's alone); without them it must say
/// so and how to fix it. As root, the test drops to `nobody` with util-linux's `setpriv`.
#[test]
fn compare_runs_as_a_normal_user() {
    let root = nix::unistd::geteuid().is_root();
    let args = ["compare", "--json", "--only", "connect", "--only", "arp"];
    let out = if root {
        // A copy that `nobody` may run, wherever the build directory is.
        let dir = std::env::temp_dir().join(format!("smolsock-user-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let bin = dir.join("smolsock");
        std::fs::copy(smolsock_bin(), &bin).expect("copy smolsock");
        use std::os::unix::fs::PermissionsExt;
        for (path, mode) in [(&dir, 0o755), (&bin, 0o755)] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .expect("permissions");
        }
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin)
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("run setpriv (util-linux)");
        let _ = std::fs::remove_dir_all(&dir);
        out
    } else {
        Command::new(smolsock_bin())
            .args(args)
            .output()
            .expect("run smolsock")
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("cannot make a user namespace") {
        // This machine forbids them: the message must say how to fix it.
        assert!(!out.status.success());
        assert!(
            stderr.contains("max_user_namespaces") && stderr.contains("run as root"),
            "{stderr}"
        );
        return;
    }
    assert!(
        out.status.success(),
        "compare as a normal user failed: {stderr}\n{stdout}"
    );
    let report: Value = serde_json::from_str(&stdout).expect("compare --json");
    for row in report["rows"].as_array().expect("rows") {
        for stack in ["kernel", "smoltcp"] {
            assert!(
                row[stack]["seen"].is_string(),
                "{} on {stack} did not run as a normal user: {}",
                row["id"],
                row[stack]
            );
        }
    }
    assert!(
        report["rows"][1]["smoltcp"]["seen"]
            .as_str()
            .is_some_and(|s| s.starts_with("1 ARP request, 1 reply; 3 of 3")),
        "{stdout}"
    );
}
