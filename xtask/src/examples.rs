//! smoltcp's own `examples/benchmark.rs` and `examples/server.rs`, built from the source of
//! the smoltcp release the core depends on, for `cargo xtask bench` to run beside smolsock.
//!
//! The source comes from cargo's registry (its path from `cargo metadata`). Building in
//! place would write a Cargo.lock and a target directory into the registry, so the crate is
//! copied first, to `target/smoltcp-example/smoltcp-<version>/` (once per version), and
//! built there with its default features, as its README runs the examples (and room for the
//! server example's three addresses), into
//! `target/smoltcp-example/target`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The built example binaries.
pub struct Examples {
    /// `examples/benchmark.rs`.
    pub benchmark: PathBuf,
    /// `examples/server.rs`.
    pub server: PathBuf,
}

/// Where the smoltcp the `smolsock` package depends on lives, and its version.
fn smoltcp_source(root: &Path) -> Result<(PathBuf, String), String> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["metadata", "--format-version", "1"])
        .current_dir(root)
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let meta: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("cargo metadata gave no JSON: {e}"))?;
    let packages = meta["packages"].as_array().cloned().unwrap_or_default();
    let id_of = |name: &str, local: bool| {
        packages
            .iter()
            .find(|p| p["name"] == name && p["source"].is_null() == local)
            .and_then(|p| p["id"].as_str())
            .map(str::to_owned)
    };
    let core = id_of("smolsock", true).ok_or("no smolsock package in the workspace")?;
    let nodes = meta["resolve"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let smoltcp = nodes
        .iter()
        .find(|n| n["id"] == core.as_str())
        .and_then(|n| n["deps"].as_array())
        .and_then(|deps| deps.iter().find(|d| d["name"] == "smoltcp"))
        .and_then(|d| d["pkg"].as_str())
        .ok_or("the smolsock package does not depend on smoltcp")?;
    let package = packages
        .iter()
        .find(|p| p["id"] == smoltcp)
        .ok_or("smoltcp is not among cargo metadata's packages")?;
    let manifest = package["manifest_path"]
        .as_str()
        .ok_or("smoltcp has no manifest path")?;
    let dir = Path::new(manifest)
        .parent()
        .ok_or("smoltcp's manifest has no directory")?;
    let version = package["version"].as_str().unwrap_or("unknown").to_owned();
    Ok((dir.to_path_buf(), version))
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    let entries =
        std::fs::read_dir(from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().map_err(|e| e.to_string())?.is_dir() {
            copy_dir(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(|e| format!("cannot copy {}: {e}", src.display()))?;
        }
    }
    Ok(())
}

/// Copies smoltcp's source under `target/smoltcp-example` (once per version) and builds the
/// two examples there (release).
pub fn build(root: &Path) -> Result<Examples, String> {
    let (source, version) = smoltcp_source(root)?;
    let base = root.join("target/smoltcp-example");
    let copy = base.join(format!("smoltcp-{version}"));
    let stamp = copy.join(".copied-from-registry");
    if !stamp.exists() {
        let _ = std::fs::remove_dir_all(&copy);
        copy_dir(&source, &copy)?;
        // A package of its own, not a member of the smolsock workspace around it.
        let manifest = copy.join("Cargo.toml");
        let mut text = std::fs::read_to_string(&manifest)
            .map_err(|e| format!("cannot read {}: {e}", manifest.display()))?;
        text.push_str("\n[workspace]\n");
        std::fs::write(&manifest, text)
            .map_err(|e| format!("cannot write {}: {e}", manifest.display()))?;
        std::fs::write(&stamp, source.display().to_string())
            .map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
    }
    let target = base.join("target");
    let target_arg = target.display().to_string();
    crate::cargo(
        &copy,
        &[
            "build",
            "--release",
            "--example",
            "benchmark",
            "--example",
            "server",
            // The server example gives its interface three addresses; smoltcp's default
            // room is two, and it would panic at start.
            "--features",
            "iface-max-addr-count-3",
            "--target-dir",
            &target_arg,
        ],
    )?;
    let bin = target.join("release/examples");
    Ok(Examples {
        benchmark: bin.join("benchmark"),
        server: bin.join("server"),
    })
}
