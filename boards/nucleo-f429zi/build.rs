//! Puts `memory.x` on the linker search path and passes the linker scripts of
//! cortex-m-rt (`link.x`) and defmt (`defmt.x`).
//!
//! The link arguments live here rather than in `.cargo/config.toml` so that a
//! `RUSTFLAGS` set in the environment (CI often sets one) cannot drop them.

use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(out.join("memory.x"), include_bytes!("memory.x")).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");

    // Only when building for the board: a host `cargo check --target x86_64...`
    // of this crate makes no sense, but must not get ARM linker scripts either.
    let target = env::var("TARGET").unwrap_or_default();
    if target.starts_with("thumb") {
        println!("cargo:rustc-link-arg=--nmagic");
        println!("cargo:rustc-link-arg=-Tlink.x");
        println!("cargo:rustc-link-arg=-Tdefmt.x");
    }
}
