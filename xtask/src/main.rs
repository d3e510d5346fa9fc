//! `cargo xtask`: the project's automation, in Rust so it runs wherever cargo does.
//!
//! - `cargo xtask ci`: everything CI checks (formatting, lints, the core's embedded
//!   builds, the tests, every board); the README's test command.
//! - `cargo xtask boards`: build every board's firmware (release).
//! - `cargo xtask size [--top N]`: flash and RAM of every board binary, RAM split into the
//!   program's buffers, smoltcp's state, other statics and the stack; fails when a binary
//!   passes its board's limits (xtask/src/size.rs). CI runs it.
//! - `cargo xtask bench [example|example-bulk|example-echo|attacks|udp|loss|board]`: smolsock
//!   against smoltcp's own examples (built from the registry's smoltcp source, see
//!   [`examples`]) and the kernel, and the emulated board against the kernel twin.
//! - `cargo xtask behaviour`: refresh the comparison table in `docs/behaviour.md`.
//! - `cargo xtask qemu <bin> [--tap IF]`: build the emulated board's firmware and boot one
//!   binary in QEMU on a TAP (default tap0), its defmt log decoded.

mod examples;
mod qemu;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use clap::{Parser, Subcommand};

mod prepare;
mod size;

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Run every check CI runs.
    Ci,
    /// Build every board's firmware in release mode.
    Boards,
    /// Print flash and RAM of every board binary (builds them first); fail when one
    /// passes its board's limits.
    Size {
        /// Also list the N largest symbols in flash and in RAM of each binary.
        #[arg(long, default_value_t = 0)]
        top: usize,
    },
    /// Build the emulated board's firmware and boot one binary in QEMU on a TAP.
    Qemu {
        /// The firmware binary: udp-recv, udp-send, tcp-server or tcp-client.
        bin: String,
        /// The TAP device for the board's NIC (it must exist); `none` for no NIC.
        #[arg(long, default_value = "tap0")]
        tap: String,
    },
    /// smolsock against smoltcp's own examples (built from the registry's smoltcp source)
    /// and the kernel, on a TAP in a namespace of its own (release build).
    Bench {
        /// Only these rows: example (example-bulk, example-echo: part of them), attacks, udp,
        /// loss or board (default: all).
        rows: Option<String>,
    },
    /// Rerun `smolsock compare --markdown --board qemu` and put its table into
    /// docs/behaviour.md.
    Behaviour,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Runs `cargo args...` in `dir`, echoing the command; `Err` names it when it fails.
fn cargo(dir: &Path, args: &[&str]) -> Result<(), String> {
    cargo_with(dir, args, &[])
}

/// [`cargo`] with extra environment variables.
fn cargo_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    let shown = format!(
        "(cd ./{}) {}cargo {}",
        dir.strip_prefix(root()).unwrap_or(dir).display(),
        env.iter()
            .map(|(k, v)| format!("{k}='{v}' "))
            .collect::<String>(),
        args.join(" ")
    );
    eprintln!("\n==> {shown}");
    let start = Instant::now();
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .current_dir(dir)
        // A board's .cargo/config.toml must be the one that applies in its directory.
        .env_remove("CARGO_BUILD_TARGET")
        .envs(env.iter().copied())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    eprintln!("    ({:.1} s)", start.elapsed().as_secs_f64());
    if status.success() {
        Ok(())
    } else {
        Err(format!("failed: {shown}"))
    }
}

/// Board crates: directories under boards/ with a Cargo.toml (the boards, and the
/// `smolsock-board` library they share).
fn boards() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root().join("boards"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.join("Cargo.toml").exists())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

fn ci() -> Result<(), String> {
    prepare::prepare()?;
    let root = root();
    cargo(&root, &["fmt", "--all", "--check"])?;
    cargo(
        &root,
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    // The core must build for a Cortex-M4F with either logging back end (and with the
    // serialized events, which need no allocator), and for the Cortex-M3 of the emulated
    // board.
    for (target, feature) in [
        ("thumbv7em-none-eabihf", "defmt"),
        ("thumbv7em-none-eabihf", "defmt,serde"),
        ("thumbv7em-none-eabihf", "log"),
        ("thumbv7m-none-eabi", "defmt"),
        ("thumbv7m-none-eabi", "defmt,faults"),
    ] {
        cargo(
            &root,
            &[
                "build",
                "-p",
                "smolsock",
                "--target",
                target,
                "--features",
                feature,
            ],
        )?;
    }
    cargo(
        &root,
        &[
            "clippy",
            "-p",
            "smolsock",
            "--target",
            "thumbv7em-none-eabihf",
            "--features",
            "defmt,serde",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    cargo_with(
        &root,
        &["doc", "--workspace", "--no-deps", "--quiet"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    // The namespace tests run the binaries next to them, and the QEMU tests the boards'
    // release firmware: build all of them before testing.
    cargo(&root, &["build", "-p", "smolsock-cli", "-p", "qemu-run"])?;
    build_boards(true)?;
    // Every firmware within its board's flash and RAM.
    size::report(&boards(), 0)?;
    test_workspace(&root)?;
    Ok(())
}

/// Runs `cargo test --workspace`, echoing its output, and ends with one closing line that
/// adds up every test binary's result (the last binary alone may be a doc-test run of 0).
fn test_workspace(root: &Path) -> Result<(), String> {
    use std::io::{BufRead, BufReader};
    // Tests that need real root (not a user namespace) are `#[ignore]`d; as root they run.
    // /proc/self belongs to the process's effective user.
    let root_user = std::os::unix::fs::MetadataExt::uid(
        &std::fs::metadata("/proc/self").map_err(|e| format!("/proc/self: {e}"))?,
    ) == 0;
    let args: &[&str] = if root_user {
        &["test", "--workspace", "--", "--include-ignored"]
    } else {
        &["test", "--workspace"]
    };
    eprintln!("\n==> (cd ./) cargo {}", args.join(" "));
    let mut child = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .current_dir(root)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let (mut passed, mut failed, mut ignored) = (0u64, 0u64, 0u64);
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            println!("{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                let count = |word: &str| {
                    rest.split(';')
                        .find_map(|part| {
                            part.trim().strip_suffix(word).map(|n| {
                                n.trim()
                                    .rsplit(' ')
                                    .next()
                                    .unwrap_or("0")
                                    .parse::<u64>()
                                    .unwrap_or(0)
                            })
                        })
                        .unwrap_or(0)
                };
                passed += count(" passed");
                failed += count(" failed");
                ignored += count(" ignored");
            }
        }
    }
    let status = child.wait().map_err(|e| format!("cargo test: {e}"))?;
    if ignored > 0 {
        println!("\n{ignored} test(s) need root and did not run (run `cargo xtask ci` as root)");
    }
    println!("\n{passed} passed, {failed} failed");
    if status.success() {
        Ok(())
    } else {
        Err("failed: cargo test --workspace".into())
    }
}

fn build_boards(lint: bool) -> Result<(), String> {
    for board in boards() {
        if lint {
            cargo(&board, &["fmt", "--check"])?;
            cargo(
                &board,
                &[
                    "clippy",
                    "--release",
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ],
            )?;
        }
        // smolsock-board, shared by the boards, is a library: build it as one. The
        // examples are firmware for the tests (the emulated board's `events`).
        if board.join("src/bin").is_dir() {
            cargo(&board, &["build", "--release", "--bins", "--examples"])?;
            // The `remote` firmware needs the board's feature of that name (the remote
            // protocol, IPv4 reassembly), which the other binaries are built without:
            // `--bins` skips it (`required-features`), so it is built on its own.
            if board.join("src/bin/remote.rs").exists() {
                if lint {
                    cargo(
                        &board,
                        &[
                            "clippy",
                            "--release",
                            "--all-targets",
                            "--features",
                            "remote",
                            "--",
                            "-D",
                            "warnings",
                        ],
                    )?;
                }
                cargo(
                    &board,
                    &[
                        "build",
                        "--release",
                        "--bin",
                        "remote",
                        "--features",
                        "remote",
                    ],
                )?;
            }
        } else {
            cargo(&board, &["build", "--release"])?;
            if lint {
                cargo(
                    &board,
                    &[
                        "clippy",
                        "--release",
                        "--features",
                        "faults",
                        "--",
                        "-D",
                        "warnings",
                    ],
                )?;
                cargo(
                    &board,
                    &[
                        "clippy",
                        "--release",
                        "--features",
                        "remote",
                        "--",
                        "-D",
                        "warnings",
                    ],
                )?;
            }
        }
    }
    // The emulated board's tcp-server once more with the fault injector, for the tests
    // (tests/tests/qemu.rs), in a target directory of its own.
    cargo_with(
        &root().join("boards/qemu-lm3s6965"),
        &[
            "build",
            "--release",
            "--bin",
            "tcp-server",
            "--features",
            "faults",
            "--target-dir",
            "target/faults",
        ],
        &[("SMOLSOCK_FAULTS", QEMU_FAULTS)],
    )?;
    Ok(())
}

/// The faults of the emulated board's faulty tcp-server (see `build_boards`).
const QEMU_FAULTS: &str = "loss=3%,dup=1%,reorder=2%,seed=5";

fn size(top: usize) -> Result<(), String> {
    build_boards(false)?;
    size::report(&boards(), top)
}

fn bench(rows: Option<String>) -> Result<(), String> {
    let root = root();
    cargo(&root, &["build", "--release", "-p", "smolsock-cli"])?;
    let bin = root.join("target/release/smolsock");
    let examples = match rows.as_deref() {
        None | Some("example" | "example-bulk" | "example-echo") => Some(examples::build(&root)?),
        Some(_) => None,
    };
    // The board rows boot the emulated board's firmware through qemu-run.
    let board = matches!(rows.as_deref(), None | Some("board"));
    if board {
        cargo(&root, &["build", "-p", "qemu-run"])?;
        cargo(
            &root.join("boards/qemu-lm3s6965"),
            &["build", "--release", "--bins"],
        )?;
    }
    // SAFETY-free: setting a variable for our own child processes only.
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "run",
            "--quiet",
            "--release",
            "-p",
            "smolsock-tests",
            "--bin",
            "bench",
        ])
        .args(rows)
        .envs(examples.iter().flat_map(|e| {
            [
                ("SMOLTCP_BENCHMARK_BIN", e.benchmark.clone()),
                ("SMOLTCP_SERVER_BIN", e.server.clone()),
            ]
        }))
        .env("SMOLSOCK_BIN", bin)
        .env("QEMU_RUN_BIN", root.join("target/debug/qemu-run"))
        .current_dir(&root)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err("the benchmark failed".into())
    }
}

/// Markers around the generated part of docs/behaviour.md.
const BEGIN: &str = "<!-- smolsock compare --markdown: begin -->";
const END: &str = "<!-- smolsock compare --markdown: end -->";

fn behaviour() -> Result<(), String> {
    let root = root();
    cargo(&root, &["build", "-p", "smolsock-cli"])?;
    // The table has the emulated board's column: its remote firmware first.
    build_boards(false)?;
    let out = Command::new(root.join("target/debug/smolsock"))
        .args(["compare", "--markdown", "--board", "qemu"])
        .output()
        .map_err(|e| format!("cannot run smolsock compare: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "smolsock compare failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let table = String::from_utf8_lossy(&out.stdout);
    let path = root.join("docs/behaviour.md");
    let doc = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (Some(begin), Some(end)) = (doc.find(BEGIN), doc.find(END)) else {
        return Err(format!(
            "{} lacks the markers {BEGIN} / {END}",
            path.display()
        ));
    };
    let head = doc.get(..begin + BEGIN.len()).unwrap_or_default();
    let tail = doc.get(end..).unwrap_or_default();
    let updated = format!("{head}\n{table}{tail}");
    std::fs::write(&path, updated).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!("updated {}", path.display());
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Ci => ci(),
        Task::Boards => build_boards(false),
        Task::Size { top } => size(top),
        Task::Qemu { bin, tap } => qemu::qemu(&bin, &tap),
        Task::Bench { rows } => bench(rows),
        Task::Behaviour => behaviour(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
