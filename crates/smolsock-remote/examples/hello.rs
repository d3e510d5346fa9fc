//! Connects to a board's remote firmware on a unix socket (QEMU's UART0, as
//! `qemu-run --serial PATH` serves it) or a serial device (`/dev/...`, 115200 baud), does
//! the handshake and prints what the board says about itself: a first check of a link.
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
    if std::env::args().nth(2).as_deref() == Some("restart") {
        let config = smolsock_remote::wire::Config {
            mac: [2, 0, 0, 0, 0, 3],
            ip: [192, 168, 69, 3],
            prefix: 24,
            gateway: None,
            seed: 1,
        };
        println!("restart: {:?} {:?}", stack.restart(config), stack.failure());
    }
    Ok(())
}
