//! Connects to a board's remote firmware on a unix socket (QEMU's UART0, as
//! `qemu-run --serial PATH` serves it) or a serial device (`/dev/...`, 115200 baud), does
//! the handshake, prints what the board says about itself and how long a call takes: a
//! first check of a link.
//! `cargo run -p smolsock-remote --features std --example hello -- PATH`

use std::path::Path;
use std::time::Duration;

use smolsock_remote::host::{Link, RemoteStack};

fn main() -> Result<(), String> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: hello PATH (a unix socket or a serial device)")?;
    let path = Path::new(&path);
    let link = if path.starts_with("/dev") {
        Link::tty(path, 115_200)
    } else {
        Link::unix(path)
    }
    .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut stack = RemoteStack::connect(link, Duration::from_secs(5))?;
    let (tcp, udp) = stack.pool_sizes();
    println!("remote firmware: {tcp} TCP and {udp} UDP sockets");
    match stack.is_idle() {
        Ok(idle) => println!("its stack is idle: {idle}"),
        Err(e) => return Err(stack.failure().unwrap_or_else(|| e.to_string())),
    }
    // The round trip of one call, the link's floor for every socket call.
    let calls = 2000;
    let started = std::time::Instant::now();
    for _ in 0..calls {
        if let Err(e) = stack.is_idle() {
            return Err(stack.failure().unwrap_or_else(|| e.to_string()));
        }
    }
    let each = started.elapsed() / calls;
    println!("{calls} calls, {each:?} each");
    Ok(())
}
