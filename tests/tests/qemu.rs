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
