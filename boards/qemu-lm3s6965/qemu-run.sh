#!/usr/bin/env bash
# Cargo runner: builds the root workspace's `qemu-run` (crates/qemu-run) for the host and
# boots the firmware ELF with it on the TAP $SMOLSOCK_TAP (default tap0), decoding defmt.
# It runs from the root workspace, so that this directory's .cargo/config.toml (target
# thumbv7m-none-eabi) does not apply to the host tool.
set -euo pipefail
elf=$(realpath "$1")
shift
root=$(cd "$(dirname "$0")/../.." && pwd)
(cd "$root" && cargo build -q -p qemu-run)
exec "$root/target/debug/qemu-run" "$elf" "$@"
