//! The build script of every board (each board's Cargo.toml says
//! `build = "../build.rs"`): puts the board's `memory.x` on the linker search
//! path and passes the linker scripts of cortex-m-rt (`link.x`) and defmt
//! (`defmt.x`).
//!
//! The link arguments live here rather than in `.cargo/config.toml` so that a
//! `RUSTFLAGS` set in the environment (CI often sets one) cannot drop them.

use std::{env, fs, path::PathBuf};

fn main() {
    let board = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::copy(board.join("memory.x"), out.join("memory.x")).expect("copy memory.x to OUT_DIR");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");

    // Only when building for a board: a host `cargo check --target x86_64...`
    // of a board crate makes no sense, but must not get ARM linker scripts.
    let target = env::var("TARGET").unwrap_or_default();
    if target.starts_with("thumb") {
        println!("cargo:rustc-link-arg=--nmagic");
        println!("cargo:rustc-link-arg=-Tlink.x");
        println!("cargo:rustc-link-arg=-Tdefmt.x");
    }
}
