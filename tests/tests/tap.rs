//! Each program of `smolsock` on a TAP device, the Linux kernel as its peer. Every test
//! runs in a network namespace of its own (see `smolsock_tests::in_netns`). The scenarios
//! the kernel stack runs too (tests/kernel.rs) live in `smolsock_tests::programs`; the
//! tests below them are for smoltcp and its devices only.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use smolsock_tests::programs::{self, SMOLTCP, SMOLTCP_PLAIN};
use smolsock_tests::{KERNEL_IP, Proc, SMOL_IP, T, exchange, in_netns};

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
fn bulk_client_sends_16_mib_pattern_one_segment_per_frame() {
    in_netns(
        "bulk_client_sends_16_mib_pattern_one_segment_per_frame",
        || programs::bulk_client_sends_pattern(&SMOLTCP_PLAIN),
    );
}

#[test]
fn bulk_server_sinks_16_mib_one_segment_per_frame() {
    in_netns("bulk_server_sinks_16_mib_one_segment_per_frame", || {
        programs::bulk_server_sinks(&SMOLTCP_PLAIN)
    });
}

/// The offloads are a setting of the TAP that outlives the process: one killed in the
/// middle of a transfer cannot turn them off, and the next run without them still gets
/// plain frames.
#[test]
fn offloads_a_killed_run_left_on_are_turned_off_by_the_next() {
    in_netns(
        "offloads_a_killed_run_left_on_are_turned_off_by_the_next",
        || {
            let mut server = Proc::smolsock(&["tcp-server", "--tap", "tap0", "--mode", "sink"]);
            server.wait_for("listening", T);
            let mut s = TcpStream::connect((SMOL_IP, 9090)).unwrap();
            s.write_all(&vec![7u8; 1 << 20]).unwrap();
            server.wait_for("accepted", T);
            drop(server);
            drop(s);
            programs::bulk_server_sinks(&SMOLTCP_PLAIN);
        },
    );
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
fn pcap_records_frames_and_a_write_failing_mid_run_only_stops_the_capture() {
    in_netns(
        "pcap_records_frames_and_a_write_failing_mid_run_only_stops_the_capture",
        || {
            let dir = std::env::temp_dir().join(format!("smolsock-pcap-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let send = |text: &[u8]| {
                let s = UdpSocket::bind((KERNEL_IP, 0)).unwrap();
                s.send_to(text, (SMOL_IP, 9090)).unwrap();
            };
            // A regular file: the header, then every frame (ARP and the datagram).
            let file = dir.join("ok.pcap");
            let mut recv =
                Proc::smolsock(&["udp-recv", "--count", "1", "--pcap", file.to_str().unwrap()]);
            recv.wait_for("bound", T);
            send(b"captured-payload");
            let (ok, _, stderr) = recv.finish(T);
            assert!(ok, "{stderr}");
            let bytes = std::fs::read(&file).unwrap();
            assert_eq!(bytes[..4], 0xa1b2c3d4u32.to_ne_bytes(), "pcap magic");
            assert!(
                bytes.windows(16).any(|w| w == b"captured-payload"),
                "the datagram is in the capture"
            );

            // A FIFO whose reader goes away after the header: the next write gets EPIPE.
            let fifo = dir.join("fifo.pcap");
            nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
            // Opened for reading first (non-blocking), so smolsock's open does not block.
            let mut reader = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&fifo)
                .unwrap();
            let mut recv =
                Proc::smolsock(&["udp-recv", "--count", "2", "--pcap", fifo.to_str().unwrap()]);
            recv.wait_for("bound", T);
            let mut header = [0u8; 24];
            reader.read_exact(&mut header).unwrap();
            assert_eq!(header[..4], 0xa1b2c3d4u32.to_ne_bytes());
            drop(reader);
            send(b"first");
            recv.wait_for("\"first\"", T);
            send(b"second");
            let (ok, lines, stderr) = recv.finish(T);
            assert!(ok, "the program goes on: {stderr}");
            assert!(lines.iter().any(|l| l.contains("\"second\"")), "{lines:?}");
            let warnings: Vec<&str> = stderr
                .lines()
                .filter(|l| l.contains("cannot write pcap file"))
                .collect();
            assert_eq!(warnings.len(), 1, "one warning line: {stderr}");
            assert!(warnings[0].contains("capture stops"), "{stderr}");
            assert!(!stderr.contains("panicked"), "{stderr}");
            let _ = std::fs::remove_dir_all(&dir);
        },
    );
}

#[test]
fn smoltcp_answers_ping_with_the_same_payload() {
    in_netns("smoltcp_answers_ping_with_the_same_payload", || {
        let mut recv = Proc::smolsock(&["udp-recv", "--count", "1"]);
        recv.wait_for("bound", T);
        for (seq_no, len) in [(1u16, 56usize), (2, 1400)] {
            smolsock_tests::ping(SMOL_IP, seq_no, len, T).unwrap();
        }
        // The program saw none of it and goes on.
        let udp = UdpSocket::bind((KERNEL_IP, 0)).unwrap();
        udp.send_to(b"after ping", (SMOL_IP, 9090)).unwrap();
        let (ok, lines, stderr) = recv.finish(T);
        assert!(ok, "{stderr}");
        let received: Vec<&String> = lines.iter().filter(|l| l.contains("received")).collect();
        assert_eq!(received.len(), 1, "{lines:?}");
        assert!(received[0].contains("after ping"), "{lines:?}");
    });
}

#[test]
fn udp_send_states_its_largest_datagram_and_it_arrives_whole() {
    in_netns(
        "udp_send_states_its_largest_datagram_and_it_arrives_whole",
        || {
            let sock = UdpSocket::bind((KERNEL_IP, 9090)).unwrap();
            sock.set_read_timeout(Some(T)).unwrap();
            let biggest = "x".repeat(1472);
            let send = Proc::smolsock(&["udp-send", "--to", "192.168.69.100:9090", &biggest]);
            let mut buf = [0u8; 65536];
            let (n, _) = sock.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], biggest.as_bytes(), "1472 bytes arrive whole");
            let (ok, lines, stderr) = send.finish(T);
            assert!(ok, "{stderr}");
            assert!(
                lines
                    .iter()
                    .any(|l| l.contains("udp bound") && l.contains("datagrams up to 1472 bytes")),
                "{lines:?}"
            );
            // One byte more is refused with the limit in the message, and nothing leaves.
            let (ok, lines, stderr) =
                Proc::smolsock(&["udp-send", "--to", "192.168.69.100:9090", &"y".repeat(1473)])
                    .finish(T);
            assert!(!ok);
            assert!(!lines.iter().any(|l| l.contains("udp sent")), "{lines:?}");
            assert!(
                stderr.contains("1473 bytes is larger than the 1472 bytes"),
                "{stderr}"
            );
            assert!(!stderr.contains("panicked"), "{stderr}");
            sock.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            assert!(sock.recv_from(&mut buf).is_err(), "nothing was sent");
        },
    );
}

/// An `AF_PACKET` socket on `tap0`: what it sends goes to the program attached to the TAP
/// (forged frames from addresses nobody has); it reads every frame the TAP carries.
struct TapSocket(smolsock_linux::packet::PacketSocket);

impl TapSocket {
    fn on_tap() -> Self {
        let socket = smolsock_linux::packet::PacketSocket::open("tap0").unwrap();
        socket.socket().set_nonblocking(false).unwrap();
        // Reads wake up every 100 ms, so a reader thread sees its stop flag.
        socket
            .socket()
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Self(socket)
    }

    fn send(&self, frame: &[u8]) {
        assert_eq!(self.0.send(frame).unwrap(), frame.len());
    }

    /// The next frame, or `None` after 100 ms without one.
    fn recv<'b>(&self, buf: &'b mut [u8]) -> Option<&'b [u8]> {
        let received = self.0.recv(buf).ok()?;
        buf.get(..received.len)
    }
}

/// Whether `frame` is smoltcp's ARP request for the kernel's address.
fn smoltcp_asks_for_kernel(frame: &[u8]) -> bool {
    use smoltcp::wire::{ArpOperation, ArpPacket, ArpRepr, EthernetFrame, EthernetProtocol};
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return false;
    };
    if eth.ethertype() != EthernetProtocol::Arp || eth.src_addr().0 != [2, 0, 0, 0, 0, 1] {
        return false;
    }
    let Ok(arp) = ArpPacket::new_checked(eth.payload()) else {
        return false;
    };
    matches!(
        ArpRepr::parse(&arp),
        Ok(ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            target_protocol_addr,
            ..
        }) if target_protocol_addr == KERNEL_IP
    )
}

/// An ARP request "who has 192.168.69.1" from a forged sender `ip` at `mac`.
fn forged_arp_request(ip: std::net::Ipv4Addr, mac: [u8; 6]) -> Vec<u8> {
    use smoltcp::wire::{
        ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
        EthernetRepr,
    };
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(mac),
        source_protocol_addr: ip,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: SMOL_IP,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress(mac),
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Arp,
    };
    let mut frame = vec![0u8; eth.buffer_len() + arp.buffer_len()];
    let mut ethernet = EthernetFrame::new_unchecked(&mut frame[..]);
    eth.emit(&mut ethernet);
    arp.emit(&mut ArpPacket::new_unchecked(ethernet.payload_mut()));
    frame
}

#[test]
fn arp_flood_from_spoofed_sources_does_not_stall_a_tcp_session() {
    in_netns(
        "arp_flood_from_spoofed_sources_does_not_stall_a_tcp_session",
        || {
            use std::sync::Arc;
            use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

            let mut server = Proc::smolsock(&["tcp-server", "--max-clients", "1"]);
            server.wait_for("listening", T);
            let mut s = TcpStream::connect_timeout(&(SMOL_IP, 9090).into(), T).unwrap();
            s.set_read_timeout(Some(T)).unwrap();
            exchange(&mut s, 0, 5);

            // Watches for smoltcp asking the kernel's MAC again: what it must do once the
            // kernel's entry has been evicted from its neighbour cache.
            let stop = Arc::new(AtomicBool::new(false));
            let watch = {
                let stop = Arc::clone(&stop);
                let socket = TapSocket::on_tap();
                std::thread::spawn(move || {
                    let mut asked = 0u32;
                    let mut buf = vec![0u8; 65536];
                    let end = Instant::now() + Duration::from_secs(40);
                    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                        if socket.recv(&mut buf).is_some_and(smoltcp_asks_for_kernel) {
                            asked += 1;
                        }
                    }
                    asked
                })
            };
            // Every other address of the /24, each from its own MAC, over and over: far
            // more senders than smoltcp's default neighbour cache (8 entries) holds.
            let sent = Arc::new(AtomicU64::new(0));
            let flood = {
                let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
                std::thread::spawn(move || {
                    let injector = TapSocket::on_tap();
                    let end = Instant::now() + Duration::from_secs(30);
                    let mut n: u32 = 0;
                    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                        for _ in 0..10 {
                            let host = 2 + (n % 252) as u8; // .2 ..= .253
                            n += 1;
                            if host == 100 {
                                continue;
                            }
                            let ip = std::net::Ipv4Addr::new(192, 168, 69, host);
                            let mac = [0x02, 0xee, (n >> 16) as u8, (n >> 8) as u8, n as u8, host];
                            injector.send(&forged_arp_request(ip, mac));
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                })
            };
            // The session goes on while the flood runs: every reply comes, whole.
            let start = Instant::now();
            let mut rounds = 0;
            while start.elapsed() < Duration::from_secs(3) || sent.load(Ordering::Relaxed) < 2_000 {
                assert!(start.elapsed() < T, "flood too slow to test anything");
                exchange(&mut s, rounds, 1);
                rounds += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            stop.store(true, Ordering::Relaxed);
            smolsock_tests::join_within(flood, T, "ARP flood");
            let asked = smolsock_tests::join_within(watch, T, "ARP watch");
            eprintln!(
                "{} echo round trips in {:?} during {} forged ARP requests; smoltcp asked \
                 for the kernel's MAC {asked} times",
                rounds,
                start.elapsed(),
                sent.load(Ordering::Relaxed)
            );
            // The talking peer was never evicted: smoltcp never had to ask for it again.
            assert_eq!(
                asked, 0,
                "the kernel's neighbour entry was evicted by the flood"
            );
            drop(s);
            let (ok, _, stderr) = server.finish(T);
            assert!(ok, "{stderr}");
        },
    );
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

/// A normal user is told which of two doors is shut: `/dev/net/tun` itself (mode 0600, as
/// in many containers; the TAP's owner does not matter then), or a TAP that belongs to
/// someone else. Needs root, to give a network and mount namespace a `/dev/net/tun` of its
/// own and a root-owned `tap0`, then to run `smolsock` as `nobody` (util-linux's `setpriv`);
/// so it is ignored by default and `cargo xtask ci` runs it when it runs as root (CI does).
#[test]
#[ignore = "needs root: cargo xtask ci runs it as root"]
fn a_normal_user_is_told_whether_dev_net_tun_or_the_tap_is_closed_to_them() {
    let root = nix::unistd::geteuid().is_root();
    assert!(
        root,
        "this test needs root (a private /dev/net/tun, setpriv)"
    );
    // A copy that `nobody` may run, wherever the build directory is.
    let dir = std::env::temp_dir().join(format!("smolsock-tun-user-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("dev")).expect("temp dir");
    let bin = dir.join("smolsock");
    std::fs::copy(smolsock_tests::smolsock_bin(), &bin).expect("copy smolsock");
    use std::os::unix::fs::PermissionsExt;
    for (path, mode) in [(&dir, 0o755), (&bin, 0o755)] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    // Everything below happens in the new namespaces and goes with them; only the
    // directory stays behind, removed after.
    let script = r#"
        set -e
        mount -t tmpfs tmpfs "$DIR/dev"
        mknod "$DIR/dev/tun" c 10 200
        mount --bind "$DIR/dev/tun" /dev/net/tun
        ip tuntap add name tap0 mode tap user 0
        ip link set tap0 up
        as_nobody() {
            setpriv --reuid=65534 --regid=65534 --clear-groups \
                "$DIR/smolsock" udp-recv --tap tap0 --count 1 2>&1 || echo "exit status $?"
        }
        chmod 0600 "$DIR/dev/tun"; echo "=== 0600"; as_nobody
        chmod 0666 "$DIR/dev/tun"; echo "=== 0666"; as_nobody
    "#;
    let out = std::process::Command::new("unshare")
        .args(["--mount", "--net", "sh", "-c", script])
        .env("DIR", &dir)
        .output()
        .expect("run unshare (util-linux)");
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (closed_tun, foreign_tap) = stdout.split_once("=== 0666").expect("both runs happened");
    // /dev/net/tun closed: that is what the user hears, and the fix for it.
    assert!(
        closed_tun.contains("permission denied opening /dev/net/tun (its mode is 0600)")
            && closed_tun.contains("chmod 0666 /dev/net/tun")
            && !closed_tun.contains("another user")
            && closed_tun.contains("exit status 1"),
        "{closed_tun}"
    );
    // /dev/net/tun open, the TAP root's: the TAP belongs to another user.
    assert!(
        foreign_tap.contains("TAP device 'tap0': it belongs to another user")
            && foreign_tap.contains("ip tuntap add name tap0 mode tap user $USER")
            && foreign_tap.contains("exit status 1"),
        "{foreign_tap}"
    );
}
