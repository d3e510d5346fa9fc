//! The four programs with `--stack board`: the host runs the program, the emulated board's
//! remote firmware (QEMU `lm3s6965evb`, on the namespace's `tap0`) runs the stack, and the
//! Linux kernel is the peer, as for the other two stacks (the same scenarios as
//! tests/tap.rs and tests/kernel.rs, from `smolsock_tests::programs`). Then what a board
//! that misbehaves gives: a clear error and an exit, never a hang. Needs `qemu-system-arm`
//! and the release firmware (`cargo xtask boards`).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use smolsock_tests::programs::{self, BOARD};
use smolsock_tests::{T, board_elf, in_netns, run_bounded};

#[test]
fn board_udp_recv_reports_datagrams() {
    in_netns("board_udp_recv_reports_datagrams", || {
        programs::udp_recv_reports_datagrams(&BOARD);
    });
}

#[test]
fn board_udp_send_keeps_one_port() {
    in_netns("board_udp_send_keeps_one_port", || {
        programs::udp_send_keeps_one_port(&BOARD)
    });
}

#[test]
fn board_tcp_client_talks_to_echo() {
    in_netns("board_tcp_client_talks_to_echo", || {
        programs::tcp_client_talks_to_echo(&BOARD)
    });
}

#[test]
fn board_tcp_client_reports_connection_refused() {
    in_netns("board_tcp_client_reports_connection_refused", || {
        programs::tcp_client_reports_connection_refused(&BOARD)
    });
}

/// tcp-server on the board's stack echoes three clients at once and sees each close (S9);
/// fewer than the host stacks' eight, for the board's socket pool.
#[test]
fn board_tcp_server_echoes_clients_at_once() {
    in_netns("board_tcp_server_echoes_clients_at_once", || {
        let mut server = BOARD.smolsock("tcp-server", &["--backlog", "2"]);
        let listening = server.wait_for("listening", T);
        assert!(
            listening.contains("tcp listening 0.0.0.0:9090 backlog 2"),
            "{listening}"
        );
        let mut streams: Vec<TcpStream> = (0..3)
            .map(|_| {
                let s = TcpStream::connect_timeout(&BOARD.at(9090).into(), T).unwrap();
                s.set_read_timeout(Some(T)).unwrap();
                s
            })
            .collect();
        for _ in 0..3 {
            server.wait_for("accepted", T);
        }
        for (i, s) in streams.iter_mut().enumerate() {
            for m in 0..10 {
                let message = format!("client {i} message {m}\n");
                s.write_all(message.as_bytes()).unwrap();
                let mut back = vec![0; message.len()];
                s.read_exact(&mut back).unwrap();
                assert_eq!(back, message.as_bytes());
            }
        }
        for s in &mut streams {
            let port = s.local_addr().unwrap().port();
            s.shutdown(Shutdown::Write).unwrap();
            let mut rest = Vec::new();
            assert_eq!(s.read_to_end(&mut rest).unwrap(), 0);
            // This client's own close, seen by the server (S9).
            let closed = server.wait_for(&format!("peer {} closed", BOARD.peer(port)), T);
            assert!(closed.contains("recv returned 0 bytes"), "{closed}");
        }
    });
}

/// A firmware that is not the remote firmware (udp-recv: it never answers on its serial
/// port) gives a clear error within the handshake's bound and exit status 1.
#[test]
fn board_that_never_answers_is_a_clear_error() {
    in_netns("board_that_never_answers_is_a_clear_error", || {
        let elf = board_elf("udp-recv");
        let elf = elf.to_str().unwrap();
        let start = Instant::now();
        let (code, stdout, stderr) = run_bounded(
            &["udp-recv", "--stack", "board", "--firmware", elf],
            Duration::from_secs(60),
        );
        assert_eq!(code, Some(1), "stdout: {stdout}\nstderr: {stderr}");
        assert!(start.elapsed() < Duration::from_secs(45));
        assert!(stderr.contains("no answer to the handshake"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    });
}

/// Flags that do not go with a board's stack, and a serial device that is not there: a
/// clear error, never a backtrace.
#[test]
fn board_flags_are_checked() {
    let (code, _, stderr) = run_bounded(
        &[
            "udp-recv",
            "--stack",
            "board",
            "--board",
            "/nonexistent/ttyACM9",
        ],
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("/nonexistent/ttyACM9"), "{stderr}");
    let (code, _, stderr) = run_bounded(
        &["udp-recv", "--stack", "board", "--faults", "loss=1%"],
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--faults"), "{stderr}");
    let (code, _, stderr) = run_bounded(&["udp-recv", "--board", "qemu"], Duration::from_secs(20));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--board needs --stack board"), "{stderr}");
    let (code, _, stderr) = run_bounded(
        &["udp-recv", "--stack", "board", "--board", "nonsense"],
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("neither qemu nor"), "{stderr}");
}
