//! Installs what a fresh machine lacks for `cargo xtask ci`, so the README's test command
//! works on its own: the toolchain's components and targets (rust-toolchain.toml),
//! flip-link, QEMU, and the stock iperf3 the iperf3 tests run.

use std::process::Command;

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    eprintln!("\n==> {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        // apt-get asks no questions (iperf3's package asks whether to start a daemon).
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("failed: {program} {}", args.join(" ")))
    }
}

/// `rustup toolchain install`: the toolchain rust-toolchain.toml names, with its components
/// and targets, each installed only if missing (offline, a check). rustup's cargo set
/// RUSTUP_TOOLCHAIN for us, which would hide the file and its lists: not for this command.
fn toolchain() -> Result<(), String> {
    eprintln!("\n==> rustup toolchain install");
    let status = Command::new("rustup")
        .args(["toolchain", "install"])
        .current_dir(crate::root())
        .env_remove("RUSTUP_TOOLCHAIN")
        .status()
        .map_err(|e| format!("cannot run rustup: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err("failed: rustup toolchain install".into())
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Makes sure every tool the checks need is there, installing it where possible.
pub fn prepare() -> Result<(), String> {
    toolchain()?;
    if !have("flip-link") {
        run("cargo", &["install", "--locked", "flip-link"])?;
    }
    if !have("qemu-system-arm") {
        if is_root() && have("apt-get") {
            run("apt-get", &["update", "-qq"])?;
            run("apt-get", &["install", "-y", "-qq", "qemu-system-arm"])?;
        } else {
            return Err("qemu-system-arm is missing: sudo apt-get install qemu-system-arm".into());
        }
    }
    // The stock iperf3 the iperf3 tests measure smolsock with.
    if !have("iperf3") {
        if is_root() && have("apt-get") {
            run("apt-get", &["update", "-qq"])?;
            run("apt-get", &["install", "-y", "-qq", "iperf3"])?;
        } else {
            return Err("iperf3 is missing: sudo apt-get install iperf3".into());
        }
    }
    Ok(())
}
