//! `cargo xtask qemu <bin> [--tap IF]`: build the emulated board's firmware and boot `bin`
//! in QEMU through `qemu-run` (crates/qemu-run), its NIC on the TAP `IF` (default tap0).

use std::process::Command;

use crate::{cargo, root};

/// The emulated board's directory, relative to the workspace root.
const BOARD: &str = "boards/qemu-lm3s6965";

/// How to make the TAP `tap` with the kernel side at 192.168.69.100/24, in a namespace.
fn setup_help(tap: &str) -> String {
    format!(
        "no network device '{tap}' here. Make one, in a network namespace of its own (as root):\n\
         \x20   ip netns add smq\n\
         \x20   ip netns exec smq ip link set lo up\n\
         \x20   ip netns exec smq ip tuntap add {tap} mode tap\n\
         \x20   ip netns exec smq ip link set {tap} up\n\
         \x20   ip netns exec smq ip addr add 192.168.69.100/24 dev {tap}\n\
         then run this command under `ip netns exec smq` (peers too); `ip netns del smq` to clean up.\n\
         Without root: `unshare -rn` gives a shell in a fresh namespace where the same `ip` \
         commands work."
    )
}

/// Whether the network device `name` exists in this network namespace.
fn tap_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", "dev", name])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Builds the firmware and `qemu-run`, then runs `bin` on `tap` until QEMU exits.
pub fn qemu(bin: &str, tap: &str) -> Result<(), String> {
    if tap != "none" && !tap_exists(tap) {
        return Err(setup_help(tap));
    }
    let root = root();
    let board = root.join(BOARD);
    cargo(&board, &["build", "--release", "--bin", bin])?;
    cargo(&root, &["build", "-q", "-p", "qemu-run"])?;
    let elf = board.join("target/thumbv7m-none-eabi/release").join(bin);
    let status = Command::new(root.join("target/debug/qemu-run"))
        .args(["--tap", tap])
        .arg(&elf)
        .status()
        .map_err(|e| format!("cannot run qemu-run: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{bin} on QEMU ended with {status}"))
    }
}
