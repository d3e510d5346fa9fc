//! The emulated board's `remote` firmware on its own, without a network: QEMU boots it with
//! UART0 on a unix socket (`qemu-run`'s serial port) and no NIC, and the host speaks the
//! remote protocol's handshake to it. The full `--stack board` runs are in tests/board.rs.
//! Needs `qemu-system-arm` and the release firmware (`cargo xtask boards`); no root.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use qemu_run::{Config, Qemu, Sink};
use smolsock_remote::frame::{self, Assembler, MAX_FRAME, MAX_PLAIN};
use smolsock_remote::wire::{Call, Message, Reply, Request, VERSION};
use smolsock_tests::board_elf;

/// Bound on every wait: QEMU boots in well under a second, but CI machines are slow.
const T: Duration = Duration::from_secs(30);

/// A serial socket path of this test's own (unix socket paths are short: /tmp).
fn socket_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("smolsock-{name}-{}.sock", std::process::id()))
}

/// Boots the remote firmware with its UART0 at `path`.
fn boot(path: &Path) -> Qemu {
    let config = Config {
        serial: Some(path.to_path_buf()),
        ..Config::new(board_elf("remote"))
    };
    let mut qemu = Qemu::boot(&config, Sink::Discard).expect("QEMU boots the remote firmware");
    qemu.wait_for_serial(T).expect("QEMU serves UART0");
    qemu
}

/// What the board answered to Hello: (version, nonce, TCP sockets, UDP sockets).
type Hello = (u16, u32, u16, u16);

/// Sends Hello every 200 ms (the first may reach a board still booting) until the board
/// answers it, for at most [`T`].
fn hello(serial: &mut UnixStream) -> Hello {
    let (mut scratch, mut out) = (vec![0; MAX_PLAIN], vec![0; MAX_FRAME]);
    let mut frames = Assembler::<MAX_FRAME>::new();
    serial
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let end = Instant::now() + T;
    for seq in 1u16.. {
        assert!(Instant::now() < end, "no answer to Hello within {T:?}");
        let request = Request {
            seq,
            call: Call::Hello { version: VERSION },
        };
        let bytes = frame::encode(&request, &mut scratch, &mut out).unwrap();
        serial.write_all(bytes).unwrap();
        let mut chunk = [0u8; 256];
        let n = match serial.read(&mut chunk) {
            Ok(0) => panic!("QEMU closed the serial port"),
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) => panic!("reading the serial port: {e}"),
        };
        let mut rest = &chunk[..n];
        while !rest.is_empty() {
            let (taken, done) = frames.push(rest);
            rest = &rest[taken..];
            if !done {
                continue;
            }
            let message = frame::decode::<Message<'_>>(frames.frame());
            if let Ok(Message::Reply {
                seq: answered,
                nonce,
                reply:
                    Reply::Hello {
                        version,
                        tcp_sockets,
                        udp_sockets,
                    },
            }) = message
                && answered == seq
            {
                return (version, nonce, tcp_sockets, udp_sockets);
            }
            frames.clear();
        }
    }
    unreachable!()
}

/// The handshake: the board answers Hello with the protocol's version and its socket pool
/// (the sizes of src/bin/remote.rs), and each boot draws another nonce, by which a host
/// notices that the board reset.
#[test]
fn remote_firmware_answers_hello_with_its_pool() {
    let path = socket_path("remote-hello");
    let mut nonces = Vec::new();
    for _ in 0..2 {
        let mut qemu = boot(&path);
        let mut serial = UnixStream::connect(&path).expect("connect to UART0");
        let (version, nonce, tcp, udp) = hello(&mut serial);
        assert_eq!(version, VERSION);
        assert_eq!((tcp, udp), (32, 2), "TCP and UDP sockets of the pool");
        nonces.push(nonce);
        qemu.kill();
    }
    let _ = std::fs::remove_file(&path);
    assert_ne!(nonces[0], nonces[1], "two boots drew the same nonce");
}
