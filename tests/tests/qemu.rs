//! The emulated board (QEMU `lm3s6965evb`, boards/qemu-lm3s6965) running each program of
//! the core, with the Linux kernel as its peer on a TAP in a network namespace of the
//! test's own. Needs `qemu-system-arm`, `target/debug/qemu-run` and the release firmware
//! (`cargo xtask boards`); the iperf3 tests also the distribution's `iperf3` (Debian's
//! package `iperf3`).

use std::io::{Read, Write};
use std::net::{SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use smolsock_tests::stock::stock;
use smolsock_tests::{BOARD_IP, KERNEL_IP, Proc, addr_after, in_netns, upper_case_echo};

/// Bound on every wait: QEMU boots in well under a second, but CI machines are slow.
const T: Duration = Duration::from_secs(30);
const PORT: u16 = 9090;

fn kernel(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(KERNEL_IP, port)
}

fn board() -> SocketAddrV4 {
    SocketAddrV4::new(BOARD_IP, PORT)
}

#[test]
fn qemu_udp_recv_logs_each_datagram_and_its_sender() {
    in_netns("qemu_udp_recv_logs_each_datagram_and_its_sender", || {
        let mut fw = Proc::qemu("udp-recv");
        fw.wait_for("udp bound 0.0.0.0:9090", T);
        let sock = UdpSocket::bind(kernel(0)).unwrap();
        let me = sock.local_addr().unwrap();
        let texts = ["first datagram", "second one", "hello 你好"];
        for text in texts {
            sock.send_to(text.as_bytes(), board()).unwrap();
        }
        for text in texts {
            let line = fw.wait_for(&format!("\"{text}\""), T);
            let want = format!("udp received {} bytes from {me}: \"{text}\"", text.len());
            assert_eq!(line, want);
        }
    });
}

#[test]
fn qemu_udp_send_reaches_kernel_from_one_ephemeral_port() {
    in_netns(
        "qemu_udp_send_reaches_kernel_from_one_ephemeral_port",
        || {
            let sock = UdpSocket::bind(kernel(PORT)).unwrap();
            sock.set_read_timeout(Some(T)).unwrap();
            let fw = Proc::qemu("udp-send");
            let mut from = Vec::new();
            for i in 1..=3 {
                let mut buf = [0u8; 256];
                let (n, src) = sock.recv_from(&mut buf).expect("a datagram from the board");
                assert_eq!(
                    &buf[..n],
                    format!("hello from the board {i}").as_bytes(),
                    "datagram {i}"
                );
                from.push(src);
            }
            let (ok, lines, stderr) = fw.finish(T);
            assert!(ok, "udp-send did not exit 0: {stderr}\n{lines:#?}");
            let bound = lines
                .iter()
                .find(|l| l.contains("udp bound"))
                .unwrap_or_else(|| panic!("no bound line in {lines:#?}"));
            let port = addr_after(bound, "udp bound").port();
            assert!(port >= 49152, "ephemeral port {port}");
            for src in from {
                assert_eq!(
                    src.to_string(),
                    format!("{BOARD_IP}:{port}"),
                    "every datagram from the board's one ephemeral port"
                );
            }
        },
    );
}

#[test]
fn qemu_tcp_server_echoes_four_clients_at_once() {
    in_netns("qemu_tcp_server_echoes_four_clients_at_once", || {
        let mut fw = Proc::qemu("tcp-server");
        fw.wait_for("tcp listening 0.0.0.0:9090 backlog 4", T);
        const CLIENTS: usize = 4;
        let all_connected = Arc::new(Barrier::new(CLIENTS));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let all_connected = Arc::clone(&all_connected);
                thread::spawn(move || {
                    let mut s = TcpStream::connect_timeout(&board().into(), T)
                        .unwrap_or_else(|e| panic!("client {c}: connect: {e}"));
                    s.set_read_timeout(Some(T)).unwrap();
                    // All four are connected before any sends: the board serves them
                    // at once, not one after the other.
                    all_connected.wait();
                    for m in 0..20 {
                        let msg = format!("client {c} message {m:02}\n");
                        s.write_all(msg.as_bytes()).unwrap();
                        let mut back = vec![0u8; msg.len()];
                        s.read_exact(&mut back)
                            .unwrap_or_else(|e| panic!("client {c} echo {m}: {e}"));
                        assert_eq!(back, msg.as_bytes(), "client {c} echo {m}");
                    }
                    s.shutdown(std::net::Shutdown::Write).unwrap();
                    let mut rest = Vec::new();
                    s.read_to_end(&mut rest).unwrap();
                    assert!(rest.is_empty(), "client {c}: extra bytes {rest:?}");
                })
            })
            .collect();
        for (c, client) in clients.into_iter().enumerate() {
            client
                .join()
                .unwrap_or_else(|_| panic!("client {c} failed"));
        }
        for conn in 1..=CLIENTS {
            fw.wait_for(&format!("tcp #{conn} accepted 192.168.69.100:"), T);
            fw.wait_for(&format!("tcp #{conn} closed: in 400 bytes"), T);
        }
        // Still serving afterwards.
        let mut s = TcpStream::connect_timeout(&board().into(), T).unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        s.write_all(b"one more").unwrap();
        let mut back = [0u8; 8];
        s.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"one more");
    });
}

#[test]
fn qemu_tcp_client_talks_to_kernel_echo_server() {
    in_netns("qemu_tcp_client_talks_to_kernel_echo_server", || {
        let server = upper_case_echo(TcpListener::bind(kernel(PORT)).unwrap(), T);
        let fw = Proc::qemu("tcp-client");
        let (ok, lines, stderr) = fw.finish(T);
        assert!(ok, "tcp-client did not exit 0: {stderr}\n{lines:#?}");
        let (peer, got) = server.join().expect("the kernel's echo server failed");
        assert_eq!(
            String::from_utf8_lossy(&got),
            "hello from the board 1\nhello from the board 2\nhello from the board 3\n"
        );
        assert_eq!(peer.ip(), std::net::IpAddr::V4(BOARD_IP));
        let connected = lines
            .iter()
            .find(|l| l.contains("connected"))
            .unwrap_or_else(|| panic!("no connected line in {lines:#?}"));
        assert!(
            connected.contains(&format!("{BOARD_IP}:{} -> {}", peer.port(), kernel(PORT))),
            "{connected}"
        );
        let replies: String = lines
            .iter()
            .filter(|l| l.contains(" received ") && l.contains("from 192.168.69.100:9090"))
            .map(|l| l.as_str())
            .collect();
        for i in 1..=3 {
            assert!(
                replies.contains(&format!("HELLO FROM THE BOARD {i}")),
                "reply {i} not in the log:\n{lines:#?}"
            );
        }
    });
}

/// The board's MAC (boards/qemu-lm3s6965).
const BOARD_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x03];

/// One echo round trip with the board's `tcp-server` from a new kernel client, each step
/// bounded by `wait`.
fn board_echo(msg: &[u8], wait: Duration) -> Result<(), String> {
    smolsock_tests::forge::echo_once(board(), msg, wait).map(drop)
}

#[test]
fn qemu_tcp_server_serves_during_and_after_a_syn_flood() {
    in_netns(
        "qemu_tcp_server_serves_during_and_after_a_syn_flood",
        || {
            let mut fw = Proc::qemu("tcp-server");
            fw.wait_for("listening", T);
            board_echo(b"before", T).expect("served before the flood");
            // 1,000 SYNs at 250/s (4 s) from spoofed addresses nobody answers ARP for: every
            // one becomes a half-open connection on the board (4 listening sockets, 4 more
            // for clients), unless the socket layer lets the oldest give way.
            let start = std::time::Instant::now();
            let flood = thread::spawn(move || {
                let mut wire = smolsock_tests::forge::Wire::open();
                wire.stack_mac = BOARD_MAC;
                wire.stack_ip = smolsock_tests::BOARD_IP;
                smolsock_tests::forge::syn_flood(&wire, 1000, 250, start);
            });
            thread::sleep(Duration::from_millis(1500));
            let during = board_echo(b"during the flood", T);
            smolsock_tests::join_within(flood, T + T, "the flood");
            during.expect("a client served during the flood");
            for i in 0..3 {
                board_echo(format!("after {i}").as_bytes(), T).expect("served after the flood");
            }
        },
    );
}

#[test]
fn qemu_tcp_server_frees_the_slots_of_vanished_clients() {
    in_netns(
        "qemu_tcp_server_frees_the_slots_of_vanished_clients",
        || {
            // 8 clients from a second kernel address take every socket of the board (4 served,
            // 4 in the backlog), then vanish without FIN or RST: the address is deleted, so the
            // kernel can neither send for it nor answer for it. The board's default give-up
            // (60 s without a word from the peer while keep-alive probes it every 30 s) frees
            // the served ones; the backlog is then accepted and given the same bounds.
            smolsock_tests::sh(&["ip", "addr", "add", "192.168.69.101/24", "dev", "tap0"]);
            smolsock_tests::sh(&[
                "ip",
                "route",
                "add",
                "192.168.69.3/32",
                "dev",
                "tap0",
                "src",
                "192.168.69.101",
            ]);
            let mut fw = Proc::qemu("tcp-server");
            fw.wait_for("listening", T);
            let mut vanished = Vec::new();
            for i in 0..8 {
                let mut s = TcpStream::connect_timeout(&board().into(), T).expect("connect");
                s.set_read_timeout(Some(T)).unwrap();
                assert_eq!(s.local_addr().unwrap().ip().to_string(), "192.168.69.101");
                if i < 4 {
                    smolsock_tests::exchange(&mut s, i, 1);
                }
                vanished.push(s);
            }
            smolsock_tests::sh(&["ip", "addr", "del", "192.168.69.101/24", "dev", "tap0"]);
            let _ = std::process::Command::new("ip")
                .args(["route", "del", "192.168.69.3/32"])
                .output();
            let start = std::time::Instant::now();
            let limit = Duration::from_secs(100);
            loop {
                match board_echo(b"a new client", Duration::from_secs(3)) {
                    Ok(()) => break,
                    Err(e) if start.elapsed() > limit => {
                        panic!("no new client served within {limit:?} of the vanishing: {e}")
                    }
                    Err(_) => thread::sleep(Duration::from_millis(500)),
                }
            }
            eprintln!(
                "a new client served {:.1} s after 8 clients vanished",
                start.elapsed().as_secs_f64()
            );
            drop(vanished);
        },
    );
}

#[test]
fn qemu_board_answers_ping() {
    in_netns("qemu_board_answers_ping", || {
        let mut fw = Proc::qemu("udp-recv");
        fw.wait_for("udp bound", T);
        for (seq_no, len) in [(1u16, 56usize), (2, 1000)] {
            smolsock_tests::ping(smolsock_tests::BOARD_IP, seq_no, len, T).unwrap();
        }
    });
}

#[test]
fn qemu_tcp_server_echoes_intact_through_faults() {
    in_netns("qemu_tcp_server_echoes_intact_through_faults", || {
        // The board's own fault injector loses 3 %, duplicates 1 % and reorders 2 % of the
        // frames each way between its stack and its MAC.
        let mut fw = Proc::qemu_elf(&smolsock_tests::faulty_board_elf());
        fw.wait_for("faults between the stack and the MAC", T);
        fw.wait_for("listening", T);
        let mut s = TcpStream::connect_timeout(&board().into(), T).expect("connect");
        s.set_read_timeout(Some(T)).unwrap();
        // 200 messages of up to 1 KiB: a few hundred frames each way meet the faults.
        for i in 0..200 {
            let msg = format!("{i:04} {}", "x".repeat((i * 37) % 1000));
            s.write_all(msg.as_bytes()).unwrap();
            let mut back = vec![0u8; msg.len()];
            s.read_exact(&mut back)
                .unwrap_or_else(|e| panic!("echo {i} through the faults: {e}"));
            assert_eq!(back, msg.as_bytes(), "echo {i}");
        }
    });
}

/// The board logs each event as the host prints it: its `defmt::Format` sends the values,
/// and the host's decoder writes the words (`smolsock::event::EXAMPLES`, one event of
/// every kind, every error and every escape of a payload).
#[test]
fn qemu_board_logs_every_event_as_the_host_prints_it() {
    let out = std::process::Command::new(smolsock_tests::qemu_run_bin())
        .args(["--tap", "none"])
        .arg(smolsock_tests::board_example_elf("events"))
        .output()
        .expect("run qemu-run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the events firmware failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let logged: Vec<&str> = stdout
        .lines()
        .filter(|line| !line.starts_with("board: "))
        .collect();
    let printed: Vec<String> = smolsock::event::EXAMPLES
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(logged.len(), printed.len(), "{stdout}");
    for (board, host) in logged.iter().zip(&printed) {
        assert_eq!(board, host);
    }
}

/// `iperf3 -c <board> -t 2 --json` with `extra`: it succeeds, the bytes it reports both
/// ways are more than 0 (the side the board counted comes in the results exchange), and
/// with `streams` streams each one's bytes too. Returns the client's document.
fn stock_client_measures_board(extra: &[&str], streams: usize) -> serde_json::Value {
    let ip = BOARD_IP.to_string();
    let mut args = vec!["-c", ip.as_str(), "-t", "2", "--json"];
    args.extend_from_slice(extra);
    let (status, out, err) = stock(&args);
    let doc: serde_json::Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("iperf3 {extra:?} printed no JSON ({e}): {out}{err}"));
    assert!(status.success(), "iperf3 {extra:?} failed: {doc:#}\n{err}");
    assert!(
        doc.get("error").is_none(),
        "iperf3 {extra:?}: {}",
        doc["error"]
    );
    let end = &doc["end"];
    for sum in ["sum_sent", "sum_received"] {
        let bytes = end[sum]["bytes"].as_u64().unwrap_or(0);
        assert!(
            bytes > 0,
            "iperf3 {extra:?}: {sum} is {bytes} bytes: {end:#}"
        );
    }
    let per_stream = end["streams"].as_array().expect("the streams' results");
    assert_eq!(per_stream.len(), streams, "iperf3 {extra:?}: {end:#}");
    for stream in per_stream {
        for side in ["sender", "receiver"] {
            let bytes = stream[side]["bytes"].as_u64().unwrap_or(0);
            assert!(
                bytes > 0,
                "iperf3 {extra:?}: a stream's {side} bytes: {stream:#}"
            );
        }
    }
    doc
}

/// The stock `iperf3 -c` measures the board's iperf3 server both ways and with two
/// streams, one test after the other; the board logs its own count and the client's for
/// each.
#[test]
fn qemu_iperf3_stock_client_measures_the_board() {
    in_netns("qemu_iperf3_stock_client_measures_the_board", || {
        let mut fw = Proc::qemu("iperf3");
        fw.wait_for("tcp listening 0.0.0.0:5201", T);
        let forward = stock_client_measures_board(&[], 1);
        assert_eq!(forward["start"]["test_start"]["reverse"], 0);
        fw.wait_for("iperf3 result, this side: received", T);
        fw.wait_for("iperf3 result, the peer: sent", T);
        let reverse = stock_client_measures_board(&["-R"], 1);
        assert_eq!(reverse["start"]["test_start"]["reverse"], 1);
        fw.wait_for("iperf3 result, this side: sent", T);
        fw.wait_for("iperf3 result, the peer: received", T);
        stock_client_measures_board(&["-P", "2"], 2);
        fw.wait_for("over 2 streams", T);
        // The board's count of the forward test is what the client shows as received.
        let line = fw.wait_for("iperf3 result, this side: received", T);
        let received = forward["end"]["sum_received"]["bytes"]
            .as_u64()
            .unwrap_or(0);
        assert!(
            line.contains(&format!("received {received} bytes")),
            "{line} (the client shows {received})"
        );
    });
}

/// A second client while a test runs is turned away as iperf3 turns it away, and the
/// first test ends well.
#[test]
fn qemu_iperf3_second_client_is_refused_while_a_test_runs() {
    in_netns(
        "qemu_iperf3_second_client_is_refused_while_a_test_runs",
        || {
            let mut fw = Proc::qemu("iperf3");
            fw.wait_for("tcp listening 0.0.0.0:5201", T);
            let ip = BOARD_IP.to_string();
            let first = {
                let ip = ip.clone();
                thread::spawn(move || stock(&["-c", &ip, "-t", "4", "--json"]))
            };
            // The test's data stream is in: the test runs.
            fw.wait_for("iperf3 #1 test with", T);
            fw.wait_for("tcp #2 accepted", T);
            let (status, out, err) = stock(&["-c", &ip, "-t", "1"]);
            assert!(!status.success(), "the second client ran: {out}");
            assert!(
                format!("{out}{err}").contains("the server is busy running a test"),
                "{out}{err}"
            );
            fw.wait_for("iperf3 denied", T);
            let (status, out, err) = smolsock_tests::join_within(first, T + T, "the first client");
            assert!(status.success(), "the first client: {out}{err}");
            let doc: serde_json::Value = serde_json::from_str(&out).expect("JSON");
            assert!(
                doc["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0) > 0,
                "{doc:#}"
            );
            fw.wait_for("iperf3 result, the peer: sent", T);
        },
    );
}

/// A `--json` line without the clock: the host's `t` counts from its program's start, the
/// board's from its boot.
fn without_t(line: &str) -> serde_json::Value {
    let mut value: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    let t = value
        .as_object_mut()
        .and_then(|o| o.remove("t"))
        .unwrap_or_else(|| panic!("no t in {line}"));
    assert!(t.is_number(), "{line}");
    value
}

/// `qemu-run --json` prints each event of the board as the host serializes the same event
/// (`smolsock::event::EXAMPLES`: every kind, every error, every escape of a payload),
/// rebuilt from the frames' arguments; the board's other log lines stay off stdout.
#[test]
fn qemu_json_prints_every_event_as_the_host_serializes_it() {
    let out = std::process::Command::new(smolsock_tests::qemu_run_bin())
        .args(["--tap", "none", "--json"])
        .arg(smolsock_tests::board_example_elf("events"))
        .output()
        .expect("run qemu-run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the events firmware failed: {stderr}\n{stdout}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    let examples = smolsock::event::EXAMPLES;
    assert_eq!(lines.len(), examples.len(), "one line per event:\n{stdout}");
    for (line, event) in lines.iter().zip(examples) {
        let host = serde_json::to_value(event).unwrap();
        assert_eq!(without_t(line), host, "{event}");
    }
    assert!(
        stderr.contains("board: lm3s6965evb"),
        "the board's own line goes to stderr: {stderr}"
    );
    assert!(
        stderr.contains("error: no free socket in the pool"),
        "an error event also goes to stderr as text, as the host does: {stderr}"
    );
}

/// The board's `udp-recv` and the host's `smolsock udp-recv` print equal JSON lines for the
/// same datagrams from the same sender (timestamps aside): text, bytes that are not UTF-8,
/// and a datagram larger than the 1024 bytes one receive takes.
#[test]
fn qemu_json_udp_recv_equals_the_hosts() {
    in_netns("qemu_json_udp_recv_equals_the_hosts", || {
        let sender = UdpSocket::bind(kernel(0)).unwrap();
        let datagrams: [Vec<u8>; 4] = [
            "hello 你好".into(),
            b"not UTF-8: \xff\xfe \xc3( \"q\" \\ \t\x00 end\x7f".to_vec(),
            (0..1400u32).map(|i| b'a' + (i % 26) as u8).collect(),
            b"last".to_vec(),
        ];
        // The board first: QEMU and the host program cannot share the TAP.
        let mut fw = Proc::qemu_with(&["--json"], &smolsock_tests::board_elf("udp-recv"));
        fw.wait_for("\"bound\"", T);
        for data in &datagrams {
            sender.send_to(data, board()).unwrap();
        }
        fw.wait_for("\"text\":\"last\"", T);
        let board_lines = fw.seen().to_vec();
        drop(fw);

        // QEMU dies with qemu-run, a moment after it: until then the TAP is busy.
        let end = std::time::Instant::now() + T;
        let host = loop {
            let mut host = Proc::smolsock(&["udp-recv", "--json", "--count", "4"]);
            match host.try_wait_for("\"bound\"", T) {
                Ok(_) => break host,
                Err(e) if e.contains("busy") && std::time::Instant::now() < end => {
                    thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("smolsock udp-recv did not start: {e}"),
            }
        };
        for data in &datagrams {
            sender
                .send_to(data, (smolsock_tests::SMOL_IP, PORT))
                .unwrap();
        }
        let (ok, host_lines, stderr) = host.finish(T);
        assert!(ok, "smolsock udp-recv failed: {stderr}");

        let events = |lines: &[String]| -> Vec<serde_json::Value> {
            lines
                .iter()
                .map(|l| without_t(l))
                .filter(|v| v["event"] == "bound" || v["event"] == "received")
                .collect()
        };
        let (board, host) = (events(&board_lines), events(&host_lines));
        assert_eq!(board.len(), 1 + datagrams.len(), "{board_lines:#?}");
        assert_eq!(board, host);
        let truncated = &board[3];
        assert_eq!(truncated["size"], 1400);
        assert_eq!(truncated["len"], 1024);
        assert_eq!(truncated["truncated"], true);
        assert_eq!(
            board[2]["quoted"],
            "\"not UTF-8: \\xff\\xfe \\xc3( \\\"q\\\" \\\\ \\t\\0 end\\u{7f}\""
        );
    });
}

/// The frames of a pcap file (the classic format, as QEMU's `filter-dump` writes it).
fn pcap_frames(bytes: &[u8]) -> Vec<Vec<u8>> {
    assert!(bytes.len() >= 24, "no pcap header: {} bytes", bytes.len());
    assert_eq!(bytes[..4], 0xa1b2c3d4u32.to_le_bytes(), "pcap magic");
    assert_eq!(
        u32::from_le_bytes(bytes[20..24].try_into().unwrap()),
        1,
        "Ethernet"
    );
    let mut frames = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16;
        frames.push(bytes[at..at + len].to_vec());
        at += len;
    }
    assert_eq!(at, bytes.len(), "the file ends with a whole frame");
    frames
}

/// `qemu-run --pcap FILE` captures the frames the board received and sent: the kernel's
/// ARP request and the board's reply, a datagram in, and the board's echo of a TCP message.
#[test]
fn qemu_pcap_captures_frames_both_ways() {
    in_netns("qemu_pcap_captures_frames_both_ways", || {
        use smoltcp::wire::{
            ArpOperation, ArpPacket, EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet,
            TcpPacket, UdpPacket,
        };
        let file = std::env::temp_dir().join(format!("qemu-run-{}.pcap", std::process::id()));
        let mut fw = Proc::qemu_with(
            &["--pcap", file.to_str().unwrap()],
            &smolsock_tests::board_elf("tcp-server"),
        );
        fw.wait_for("listening", T);
        board_echo(b"echo through the capture", T).expect("an echo");
        let udp = UdpSocket::bind(kernel(0)).unwrap();
        udp.send_to(b"a datagram for the capture", board()).unwrap();
        fw.wait_for("tcp #1 closed", T);
        drop(fw); // QEMU ends: the capture is complete.
        let frames = pcap_frames(&std::fs::read(&file).unwrap());
        let _ = std::fs::remove_file(&file);
        let (mut arp_request_in, mut arp_reply_out) = (false, false);
        let (mut udp_in, mut echo_in, mut echo_out) = (false, false, false);
        for bytes in &frames {
            let eth = EthernetFrame::new_checked(&bytes[..]).expect("an Ethernet frame");
            let from_board = eth.src_addr().0 == BOARD_MAC;
            match eth.ethertype() {
                EthernetProtocol::Arp => {
                    let arp = ArpPacket::new_checked(eth.payload()).expect("ARP");
                    match (arp.operation(), from_board) {
                        (ArpOperation::Request, false) => arp_request_in = true,
                        (ArpOperation::Reply, true) => arp_reply_out = true,
                        _ => {}
                    }
                }
                EthernetProtocol::Ipv4 => {
                    let ip = Ipv4Packet::new_checked(eth.payload()).expect("IPv4");
                    match ip.next_header() {
                        IpProtocol::Udp => {
                            let udp = UdpPacket::new_checked(ip.payload()).expect("UDP");
                            udp_in |= !from_board && udp.payload() == b"a datagram for the capture";
                        }
                        IpProtocol::Tcp => {
                            let tcp = TcpPacket::new_checked(ip.payload()).expect("TCP");
                            let echo = tcp.payload() == b"echo through the capture";
                            echo_in |= echo && !from_board && tcp.dst_port() == PORT;
                            echo_out |= echo && from_board && tcp.src_port() == PORT;
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        let summary = format!("{} frames", frames.len());
        assert!(arp_request_in, "the kernel's ARP request: {summary}");
        assert!(arp_reply_out, "the board's ARP reply: {summary}");
        assert!(udp_in, "the datagram to the board: {summary}");
        assert!(echo_in, "the message to the board: {summary}");
        assert!(echo_out, "the board's echo: {summary}");
    });
}

/// Runs `qemu-run args` to its end (bounded); returns its exit code and stderr.
fn qemu_run_fails(args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let mut child = std::process::Command::new(smolsock_tests::qemu_run_bin())
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run qemu-run");
    let end = std::time::Instant::now() + T;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > end {
            let _ = child.kill();
            panic!("qemu-run {args:?} did not exit within {T:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status.code(), stderr)
}

/// Bad input: a clear message, exit status 2, no panic, and QEMU never started.
#[test]
fn qemu_run_refuses_bad_input_with_a_clear_message() {
    let elf = smolsock_tests::board_elf("udp-recv");
    let elf = elf.as_os_str();
    let host_elf = smolsock_tests::qemu_run_bin();
    let cases: [(&[&std::ffi::OsStr], &str); 6] = [
        (
            &["--tap".as_ref(), "none".as_ref(), host_elf.as_os_str()],
            "no defmt data in this ELF",
        ),
        (
            &["--tap".as_ref(), "nosuch-tap9".as_ref(), elf],
            "no network device 'nosuch-tap9' here",
        ),
        (
            &[
                "--tap".as_ref(),
                "none".as_ref(),
                "--serial".as_ref(),
                "/nonexistent-dir/board.sock".as_ref(),
                elf,
            ],
            "no directory /nonexistent-dir for the serial socket",
        ),
        (
            &[
                "--tap".as_ref(),
                "none".as_ref(),
                "--pcap".as_ref(),
                "x.pcap".as_ref(),
                elf,
            ],
            "a capture needs the NIC",
        ),
        (
            &["--frobnicate".as_ref(), elf],
            "unknown option --frobnicate",
        ),
        (&["--serial".as_ref()], "--serial needs a path"),
    ];
    for (args, message) in cases {
        let (code, stderr) = qemu_run_fails(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(stderr.starts_with("qemu-run: "), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "{args:?}: {stderr}"
        );
    }
}

/// The library: a boot with UART0 on a unix socket, the log to a callback, and the handle's
/// guarantees (QEMU runs until the handle is dropped, then its process is gone).
#[test]
fn qemu_run_library_boots_with_the_serial_socket_and_kills_on_drop() {
    let dir = std::env::temp_dir().join(format!("qemu-run-lib-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("uart0.sock");
    let mut config = qemu_run::Config::new(smolsock_tests::board_elf("udp-recv"));
    config.serial = Some(socket.clone());
    let (tx, lines) = std::sync::mpsc::channel();
    let sink = qemu_run::Sink::Each(Box::new(move |message: &qemu_run::Message<'_>| {
        let _ = tx.send((message.line(), message.json()));
    }));
    let mut qemu = qemu_run::Qemu::boot(&config, sink).expect("boot");
    let path = qemu.wait_for_serial(T).expect("the serial socket");
    assert_eq!(path, socket);
    let _uart0 = std::os::unix::net::UnixStream::connect(&path).expect("connect to UART0");
    // The firmware's log arrives through the callback, the event with its JSON line.
    let end = std::time::Instant::now() + T;
    let bound = loop {
        let left = end.saturating_duration_since(std::time::Instant::now());
        let (line, json) = lines.recv_timeout(left).expect("a bound line");
        if line.starts_with("udp bound") {
            break json.expect("an event has a JSON line");
        }
    };
    assert_eq!(without_t(&bound)["local"], "0.0.0.0:9090");
    assert!(qemu.is_running());
    assert_eq!(qemu.try_status(), None);
    let pid = qemu.pid();
    drop(qemu);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "QEMU ({pid}) is gone after the drop"
    );
    assert!(!socket.exists(), "the socket is removed");
    let _ = std::fs::remove_dir_all(&dir);
}
