//! The emulated board (QEMU `lm3s6965evb`, boards/qemu-lm3s6965) running each program of
//! the core, with the Linux kernel as its peer on a TAP in a network namespace of the
//! test's own. Needs `qemu-system-arm`, `target/debug/qemu-run` and the release firmware
//! (`cargo xtask boards`).

use std::io::{Read, Write};
use std::net::{SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

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
