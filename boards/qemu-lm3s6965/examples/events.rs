//! Logs `smolsock::event::EXAMPLES`, one event of every kind, as every firmware logs its
//! events, then ends QEMU with status 0. A test (tests/tests/qemu.rs) checks each line of
//! the decoded log against the host's `Display` of the same event: the boards' log text
//! is the host's; another checks `qemu-run --json` against the host's JSON of each.
//!
//! `cargo run --release --example events` (no TAP needed: `SMOLSOCK_TAP=none`).
#![no_std]
#![no_main]

#[cortex_m_rt::entry]
fn main() -> ! {
    let _board = smolsock_qemu_lm3s6965::Board::init();
    for event in smolsock::event::EXAMPLES {
        // As every firmware logs its events (with the exact values `--json` needs).
        <smolsock_qemu_lm3s6965::Board as smolsock_board::Board>::log(event);
    }
    smolsock_qemu_lm3s6965::exit(0)
}
