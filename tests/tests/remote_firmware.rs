//! The emulated board's `remote` firmware on its own, without a network: QEMU boots it with
//! UART0 on a unix socket (`qemu-run`'s serial port) and no NIC, and the host speaks the
//! remote protocol's handshake to it. The full `--stack board` runs are in tests/board.rs.
//! Needs `qemu-system-arm` and the release firmware (`cargo xtask boards`); no root.

use std::path::{Path, PathBuf};
use std::time::Duration;

use qemu_run::{Config, Qemu, Sink};
use smolsock_remote::host::{Link, RemoteStack};
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

/// The handshake: the board answers Hello with the protocol's version and its socket pool
/// (the sizes of src/bin/remote.rs), and each boot draws another nonce, by which a host
/// notices that the board reset.
#[test]
fn remote_firmware_answers_hello_with_its_pool() {
    let path = socket_path("remote-hello");
    let mut nonces = Vec::new();
    for _ in 0..2 {
        let mut qemu = boot(&path);
        // The host's own handshake: it checks the version and retries while QEMU boots.
        let link = Link::unix(&path).expect("connect to UART0");
        let stack = RemoteStack::connect(link, T).expect("the board answers Hello");
        assert_eq!(
            stack.pool_sizes(),
            (32, 2),
            "TCP and UDP sockets of the pool"
        );
        nonces.push(stack.boot_number());
        qemu.kill();
    }
    let _ = std::fs::remove_file(&path);
    assert_ne!(nonces[0], nonces[1], "two boots drew the same nonce");
}
