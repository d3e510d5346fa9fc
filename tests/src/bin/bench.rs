//! `cargo xtask bench`: bulk TCP throughput of smolsock on a TAP, against the kernel, with
//! the kernel's own loopback throughput measured in the same run as the baseline.
//!
//! Prints MiB/s and the ratio to the baseline for: kernel -> kernel (loopback), kernel ->
//! smoltcp (`tcp-server --mode sink`) and smoltcp -> kernel (`tcp-client --bytes`), and the
//! same two with the programs on the kernel's own stack (`--stack kernel`, the std twin). The
//! figures are for a shared, noisy machine: compare ratios, not absolute numbers.
//!
//! Then loss recovery: [`LOSSY_SIZE`] bytes through the smoltcp device's fault injector at
//! 1, 5 and 10 % loss of the data frames (`--faults tx.loss=N%` on a smoltcp sender, or
//! `rx.loss=N%` on a smoltcp sink with the kernel sending), as seconds and as the ratio of
//! the smoltcp sender's time to the kernel sender's on the same lossy path.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use smolsock_tests::{Proc, SMOL_IP, pattern, receive_all, reexec_in_netns, send_all};

const SIZE: usize = 64 * 1024 * 1024;
const ROUNDS: usize = 3;
const T: Duration = Duration::from_secs(60);

fn mib_s(elapsed: Duration) -> f64 {
    SIZE as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64()
}

fn kernel_loopback(data: &[u8]) -> Duration {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let reader = thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0;
        loop {
            match c.read(&mut buf).unwrap() {
                0 => break n,
                k => n += k,
            }
        }
    });
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(data).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(reader.join().unwrap(), SIZE);
    start.elapsed()
}

fn kernel_to_smoltcp(data: &[u8], crc: u32) -> Duration {
    let mut server = Proc::smolsock(&[
        "tcp-server",
        "--tap",
        "tap0",
        "--mode",
        "sink",
        "--max-clients",
        "1",
        "--tcp-buf",
        "1048576",
    ]);
    server.wait_for("listening", T);
    let elapsed = send_all(SocketAddrV4::new(SMOL_IP, 9090), data);
    let closed = server.wait_for("closed: in", T);
    assert!(
        closed.contains(&format!("in {SIZE} bytes crc32 {crc:08x}")),
        "{closed}"
    );
    elapsed
}

fn smoltcp_to_kernel(crc: u32) -> Duration {
    let reader = receive_all(TcpListener::bind(("192.168.69.100", 9090)).unwrap());
    let size = SIZE.to_string();
    let client = Proc::smolsock(&[
        "tcp-client",
        "--tap",
        "tap0",
        "--to",
        "192.168.69.100:9090",
        "--bytes",
        &size,
        "--tcp-buf",
        "1048576",
    ]);
    let (got, elapsed) = reader.join().unwrap();
    assert_eq!((got.len(), crc32fast::hash(&got)), (SIZE, crc));
    let (ok, _, stderr) = client.finish(T);
    assert!(ok, "{stderr}");
    elapsed
}

/// The same two transfers with the programs on the kernel's own stack (the std twin),
/// over loopback: what the program loop costs on top of plain sockets.
fn kernel_to_std_twin(data: &[u8], crc: u32) -> Duration {
    let mut server = Proc::smolsock(&[
        "tcp-server",
        "--stack",
        "kernel",
        "--mode",
        "sink",
        "--max-clients",
        "1",
    ]);
    server.wait_for("listening", T);
    let elapsed = send_all(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9090), data);
    let closed = server.wait_for("closed: in", T);
    assert!(
        closed.contains(&format!("in {SIZE} bytes crc32 {crc:08x}")),
        "{closed}"
    );
    elapsed
}

fn std_twin_to_kernel(crc: u32) -> Duration {
    let reader = receive_all(TcpListener::bind((Ipv4Addr::LOCALHOST, 9091)).unwrap());
    let size = SIZE.to_string();
    let client = Proc::smolsock(&[
        "tcp-client",
        "--stack",
        "kernel",
        "--to",
        "127.0.0.1:9091",
        "--bytes",
        &size,
    ]);
    let (got, elapsed) = reader.join().unwrap();
    assert_eq!((got.len(), crc32fast::hash(&got)), (SIZE, crc));
    let (ok, _, stderr) = client.finish(T);
    assert!(ok, "{stderr}");
    elapsed
}

/// Bytes of each transfer under loss: smoltcp needs minutes for 16 MiB at 10 %.
const LOSSY_SIZE: usize = 4 * 1024 * 1024;

/// smoltcp sends [`LOSSY_SIZE`] to the kernel, losing `loss` of its data frames.
fn lossy_smoltcp_sender(loss: u32) -> Duration {
    let (_, crc) = pattern(LOSSY_SIZE);
    let reader = receive_all(TcpListener::bind(("192.168.69.100", 9090)).unwrap());
    let (size, faults) = (LOSSY_SIZE.to_string(), format!("tx.loss={loss}%,seed=1"));
    let client = Proc::smolsock(&[
        "tcp-client",
        "--tap",
        "tap0",
        "--to",
        "192.168.69.100:9090",
        "--bytes",
        &size,
        "--timeout",
        "60",
        "--faults",
        &faults,
    ]);
    let (got, elapsed) = reader.join().unwrap();
    assert_eq!((got.len(), crc32fast::hash(&got)), (LOSSY_SIZE, crc));
    let (ok, _, stderr) = client.finish(Duration::from_secs(600));
    assert!(ok, "{stderr}");
    elapsed
}

/// The kernel sends [`LOSSY_SIZE`] to a smoltcp sink whose device loses `loss` of the
/// kernel's data frames.
fn lossy_kernel_sender(loss: u32) -> Duration {
    let (data, crc) = pattern(LOSSY_SIZE);
    let faults = format!("rx.loss={loss}%,seed=1");
    let mut server = Proc::smolsock(&[
        "tcp-server",
        "--tap",
        "tap0",
        "--mode",
        "sink",
        "--max-clients",
        "1",
        "--faults",
        &faults,
    ]);
    server.wait_for("listening", T);
    let elapsed = send_all(SocketAddrV4::new(SMOL_IP, 9090), &data);
    let closed = server.wait_for("closed: in", T);
    assert!(
        closed.contains(&format!("in {LOSSY_SIZE} bytes crc32 {crc:08x}")),
        "{closed}"
    );
    elapsed
}

fn best(mut f: impl FnMut() -> Duration) -> Duration {
    (0..ROUNDS).map(|_| f()).min().unwrap()
}

fn main() {
    if let Some(code) = reexec_in_netns() {
        std::process::exit(code);
    }
    let (data, crc) = pattern(SIZE);
    let base = best(|| kernel_loopback(&data));
    let up = best(|| kernel_to_smoltcp(&data, crc));
    let down = best(|| smoltcp_to_kernel(crc));
    let twin_up = best(|| kernel_to_std_twin(&data, crc));
    let twin_down = best(|| std_twin_to_kernel(crc));
    println!(
        "bulk TCP, 64 MiB, best of {ROUNDS} (smolsock: {})",
        smolsock_tests::smolsock_bin().display()
    );
    println!("{:<38} {:>10} {:>10}", "path", "MiB/s", "ratio");
    for (name, d) in [
        ("kernel -> kernel (loopback, base)", base),
        ("kernel -> smoltcp (TAP, sink)", up),
        ("smoltcp -> kernel (TAP, --bytes)", down),
        ("kernel -> std twin (loopback, sink)", twin_up),
        ("std twin -> kernel (loopback, --bytes)", twin_down),
    ] {
        println!(
            "{name:<38} {:>10.0} {:>10.3}",
            mib_s(d),
            base.as_secs_f64() / d.as_secs_f64()
        );
    }
    println!(
        "\nloss recovery, {} MiB, data frames lost on the smoltcp device",
        LOSSY_SIZE >> 20
    );
    println!(
        "{:<10} {:>16} {:>16} {:>10}",
        "loss", "smoltcp sender s", "kernel sender s", "ratio"
    );
    for loss in [1, 5, 10] {
        let smol = lossy_smoltcp_sender(loss);
        let kernel = lossy_kernel_sender(loss);
        println!(
            "{:<10} {:>16.2} {:>16.2} {:>10.1}",
            format!("{loss} %"),
            smol.as_secs_f64(),
            kernel.as_secs_f64(),
            smol.as_secs_f64() / kernel.as_secs_f64()
        );
    }
}
