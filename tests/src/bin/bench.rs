//! `cargo xtask bench`: smolsock against smoltcp's own examples, then against the kernel.
//!
//! First, side by side with smoltcp's `examples/benchmark.rs` and `examples/server.rs` (built
//! by `cargo xtask bench` from the smoltcp source of the release this workspace depends on),
//! on the same TAP in the same namespace, in alternating rounds: bulk TCP both ways (the
//! example's 10^9 bytes) at the default `--tcp-buf` and at larger ones, the echo round
//! trip, and short connections per second. Every ratio is "higher is better for smolsock",
//! given as the median of the rounds' ratios with their range. `bench example` runs these
//! rows only.
//!
//! Then bulk TCP throughput of smolsock on a TAP, against the kernel, with
//! the kernel's own loopback throughput measured in the same run as the baseline.
//!
//! Prints MiB/s and the ratio to the baseline for: kernel -> kernel (loopback), kernel ->
//! smoltcp (`tcp-server --mode sink`) and smoltcp -> kernel (`tcp-client --bytes`), and the
//! same two with the programs on the kernel's own stack (`--stack kernel`, the std twin). The
//! figures are for a shared, noisy machine: compare ratios, not absolute numbers.
//!
//! Then `tcp-server` under attack, smoltcp against the kernel's own stack in the same run:
//! legitimate clients served per second during a flood of 2,000 spoofed SYNs at 500/s
//! (one probe after another, each an echo round trip, at most 3 s), and the time to serve
//! 32 connects fired back to back at an idle server (default backlog). `bench attacks` runs
//! these rows only.
//!
//! Then `udp-recv` under a blast of 200,000 datagrams sent as fast as a kernel socket can:
//! the rate they went at, how many it printed, how many it reported lost (its socket
//! buffer, the TAP's queue) and how many are unaccounted for, smoltcp against the kernel
//! stack in alternating rounds. `bench udp` runs these rows only.
//!
//! Then the emulated board (QEMU `lm3s6965evb`, boards/qemu-lm3s6965): the stock `iperf3`
//! client against the board's `iperf3` firmware, to the board and from it (`-R`), each
//! in Mbit/s and as a ratio to the same client against the same program on the host's
//! kernel stack (`smolsock iperf3 --stack kernel` on 127.0.0.1), measured in alternating
//! rounds; and 2,000 echo round trips of 16 bytes to the board's `tcp-server` on one
//! connection: p50, p99, max, and how many took over 200 ms. `bench board` runs these
//! rows only (`cargo xtask bench board` builds the firmware and `qemu-run` first).
//!
//! Then loss recovery: [`LOSSY_SIZE`] bytes through the smoltcp device's fault injector at
//! 1, 5 and 10 % loss of the data frames (`--faults tx.loss=N%` on a smoltcp sender, or
//! `rx.loss=N%` on a smoltcp sink with the kernel sending), as seconds and as the ratio of
//! the smoltcp sender's time to the kernel sender's on the same lossy path.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use smolsock_tests::forge::{Wire, burst, echo_once, syn_flood};
use smolsock_tests::peers::{self, ExampleServer};
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

/// A kernel client sends `data` to `smolsock tcp-server --mode sink` with `args` (stack,
/// device, buffers, faults) at `to`; the server's CRC must match `crc`.
fn into_sink(args: &[&str], to: SocketAddrV4, data: &[u8], crc: u32) -> Duration {
    let sink = ["tcp-server", "--mode", "sink", "--max-clients", "1"];
    let mut server = Proc::smolsock(&[&sink[..], args].concat());
    server.wait_for("listening", T);
    let elapsed = send_all(to, data);
    let closed = server.wait_for("closed: in", T);
    let want = format!("in {} bytes crc32 {crc:08x}", data.len());
    assert!(closed.contains(&want), "{closed}");
    elapsed
}

/// `smolsock tcp-client --bytes size` with `args` sends to a kernel reader at `at`, which
/// must get bytes whose CRC is `crc`; the client must exit 0 within `wait`.
fn from_client(args: &[&str], at: SocketAddrV4, size: usize, crc: u32, wait: Duration) -> Duration {
    let reader = receive_all(TcpListener::bind(at).unwrap());
    let (to, size_text) = (at.to_string(), size.to_string());
    let client = ["tcp-client", "--to", &to, "--bytes", &size_text];
    let client = Proc::smolsock(&[&client[..], args].concat());
    let (got, elapsed) = reader.join().unwrap();
    assert_eq!((got.len(), crc32fast::hash(&got)), (size, crc));
    let (ok, _, stderr) = client.finish(wait);
    assert!(ok, "{stderr}");
    elapsed
}

/// The kernel's side of the TAP, where a smoltcp client sends.
fn kernel_tap(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(192, 168, 69, 100), port)
}

const BIG_BUFFERS: &[&str] = &["--tap", "tap0", "--tcp-buf", "1048576"];

fn kernel_to_smoltcp(data: &[u8], crc: u32) -> Duration {
    into_sink(BIG_BUFFERS, SocketAddrV4::new(SMOL_IP, 9090), data, crc)
}

fn smoltcp_to_kernel(crc: u32) -> Duration {
    from_client(BIG_BUFFERS, kernel_tap(9090), SIZE, crc, T)
}

/// The same two transfers with the programs on the kernel's own stack (the std twin),
/// over loopback: what the program loop costs on top of plain sockets.
fn kernel_to_std_twin(data: &[u8], crc: u32) -> Duration {
    let to = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9090);
    into_sink(&["--stack", "kernel"], to, data, crc)
}

fn std_twin_to_kernel(crc: u32) -> Duration {
    let at = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9091);
    from_client(&["--stack", "kernel"], at, SIZE, crc, T)
}

/// Bytes of each transfer under loss: smoltcp needs minutes for 16 MiB at 10 %.
const LOSSY_SIZE: usize = 4 * 1024 * 1024;

/// smoltcp sends [`LOSSY_SIZE`] to the kernel, losing `loss` of its data frames. `Err`:
/// what the kernel's reader and the client said when the transfer did not complete.
fn lossy_smoltcp_sender(loss: u32) -> Result<Duration, String> {
    let (_, crc) = pattern(LOSSY_SIZE);
    let faults = format!("tx.loss={loss}%,seed=1");
    let at = kernel_tap(9090);
    let listener = TcpListener::bind(at).map_err(|e| format!("bind {at}: {e}"))?;
    // Bounded: the client connects within its 60 s handshake timeout, and a transfer
    // that stalls for 120 s fails.
    let reader = std::thread::spawn(move || {
        listener.set_nonblocking(true)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut conn = loop {
            match listener.accept() {
                Ok((conn, _)) => break conn,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(e),
            }
        };
        conn.set_nonblocking(false)?;
        conn.set_read_timeout(Some(Duration::from_secs(120)))?;
        let start = Instant::now();
        let mut got = Vec::new();
        conn.read_to_end(&mut got).map(|_| (got, start.elapsed()))
    });
    let (to, size) = (at.to_string(), LOSSY_SIZE.to_string());
    let args = [
        "tcp-client",
        "--to",
        &to,
        "--bytes",
        &size,
        "--tap",
        "tap0",
        "--timeout",
        "60",
        "--faults",
        &faults,
    ];
    let client = Proc::smolsock(&args);
    let got = reader
        .join()
        .map_err(|_| "the reader panicked".to_string())?;
    let (ok, _, stderr) = client.finish(Duration::from_secs(600));
    let said = stderr.lines().last().unwrap_or("no error").to_string();
    match got {
        Ok((got, _)) if !ok => Err(format!(
            "{} bytes arrived; the client failed: {said}",
            got.len()
        )),
        Ok((got, elapsed)) if (got.len(), crc32fast::hash(&got)) == (LOSSY_SIZE, crc) => {
            Ok(elapsed)
        }
        Ok((got, _)) => Err(format!(
            "{} bytes arrived, not the {LOSSY_SIZE} sent",
            got.len()
        )),
        Err(e) => Err(format!("the kernel's reader: {e}; the client: {said}")),
    }
}

/// The kernel sends [`LOSSY_SIZE`] to a smoltcp sink whose device loses `loss` of the
/// kernel's data frames.
fn lossy_kernel_sender(loss: u32) -> Duration {
    let (data, crc) = pattern(LOSSY_SIZE);
    let faults = format!("rx.loss={loss}%,seed=1");
    let args = ["--tap", "tap0", "--faults", &faults];
    into_sink(&args, SocketAddrV4::new(SMOL_IP, 9090), &data, crc)
}

/// `tcp-server` on the smoltcp stack (`--tap tap0`) or the kernel's (`--stack kernel`).
fn attacked_server(kernel: bool) -> Proc {
    let stack: &[&str] = if kernel {
        &["--stack", "kernel"]
    } else {
        &["--tap", "tap0"]
    };
    let mut server = Proc::smolsock(&[&["tcp-server"], stack].concat());
    server.wait_for("listening", T);
    server
}

/// Probes served per second of a 2,000-SYN flood at 500/s, and how many were tried.
fn flood_probes(kernel: bool) -> (f64, usize, usize) {
    let _server = attacked_server(kernel);
    let wire = if kernel { Wire::kernel() } else { Wire::open() };
    let to = wire.server();
    let start = Instant::now();
    let flood = thread::spawn(move || {
        syn_flood(&wire, 2000, 500, start);
        Instant::now()
    });
    let (mut served, mut tried) = (0, 0);
    let mut first_failure = None;
    while !flood.is_finished() {
        tried += 1;
        let msg = format!("probe {tried}");
        match echo_once(to, msg.as_bytes(), Duration::from_secs(3)) {
            Ok(probe) => {
                served += 1;
                // Closed with a reset, so the prober keeps no TIME-WAIT: some 14,000
                // probes a round to one address and port would otherwise use up its
                // ephemeral ports (28,232) within two rounds, and a later round would
                // measure the prober's search for a free port, not the server.
                let _ = socket2::SockRef::from(&probe).set_linger(Some(Duration::ZERO));
            }
            Err(e) => {
                first_failure.get_or_insert(e);
            }
        }
    }
    let end = flood.join().unwrap();
    if let Some(e) = first_failure {
        eprintln!("bench: a probe during the SYN flood failed: {e}");
    }
    (served as f64 / (end - start).as_secs_f64(), served, tried)
}

/// Time to serve 32 back-to-back connects, and how many failed.
fn burst_time(kernel: bool) -> (Duration, usize) {
    let server = attacked_server(kernel);
    let to = if kernel {
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9090)
    } else {
        SocketAddrV4::new(SMOL_IP, 9090)
    };
    let start = Instant::now();
    let failed = burst(to, 32).len();
    let took = start.elapsed();
    drop(server);
    (took, failed)
}

fn attacks() {
    let rounds = ROUNDS;
    let smol_flood: Vec<_> = (0..rounds).map(|_| flood_probes(false)).collect();
    let kern_flood: Vec<_> = (0..rounds).map(|_| flood_probes(true)).collect();
    let smol_burst: Vec<_> = (0..rounds).map(|_| burst_time(false)).collect();
    let kern_burst: Vec<_> = (0..rounds).map(|_| burst_time(true)).collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let rate = |v: &[(f64, usize, usize)]| mean(&v.iter().map(|r| r.0).collect::<Vec<_>>());
    let secs =
        |v: &[(Duration, usize)]| mean(&v.iter().map(|r| r.0.as_secs_f64()).collect::<Vec<_>>());
    let tally = |v: &[(f64, usize, usize)]| {
        v.iter()
            .map(|r| format!("{}/{}", r.1, r.2))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let fails = |v: &[(Duration, usize)]| {
        v.iter()
            .map(|r| r.1.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!();
    println!("tcp-server under attack, mean of {rounds} runs");
    println!("{:<44} {:>10} {:>10}  detail", "what", "value", "ratio");
    let (sf, kf) = (rate(&smol_flood), rate(&kern_flood));
    println!(
        "{:<44} {:>10.2} {:>10.3}  served/tried {}",
        "probes/s during a SYN flood, smoltcp",
        sf,
        sf / kf,
        tally(&smol_flood)
    );
    println!(
        "{:<44} {:>10.2} {:>10.3}  served/tried {}",
        "probes/s during a SYN flood, kernel (base)",
        kf,
        1.0,
        tally(&kern_flood)
    );
    let (sb, kb) = (secs(&smol_burst), secs(&kern_burst));
    println!(
        "{:<44} {:>10.3} {:>10.3}  clients failed {}",
        "32 back-to-back connects, smoltcp (s)",
        sb,
        kb / sb,
        fails(&smol_burst)
    );
    println!(
        "{:<44} {:>10.3} {:>10.3}  clients failed {}",
        "32 back-to-back connects, kernel (s, base)",
        kb,
        1.0,
        fails(&kern_burst)
    );
}

/// Datagrams in one blast at `udp-recv`.
const BLAST: usize = 200_000;

/// One blast at `udp-recv`: what was sent, how fast, and what the receiver reported.
struct Blast {
    /// Datagrams the kernel took from the sender (`send_to` succeeded).
    sent: usize,
    /// Datagrams sent per second.
    rate: f64,
    /// `received` lines printed.
    received: usize,
    /// Reported lost in the socket's buffer.
    lost_socket: u64,
    /// Reported lost in the TAP's queue, before the stack read them.
    lost_device: u64,
}

impl Blast {
    /// Sent but neither printed nor reported lost.
    fn unaccounted(&self) -> i64 {
        self.sent as i64 - self.received as i64 - (self.lost_socket + self.lost_device) as i64
    }
}

/// A blast of [`BLAST`] datagrams at `udp-recv` on smoltcp or on the kernel's stack.
fn udp_blast(kernel: bool) -> Blast {
    let (args, to): (&[&str], SocketAddrV4) = if kernel {
        (
            &["udp-recv", "--stack", "kernel", "--port", "9191"],
            SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9191),
        )
    } else {
        (
            &["udp-recv", "--tap", "tap0", "--port", "9191"],
            SocketAddrV4::new(SMOL_IP, 9191),
        )
    };
    let mut receiver = Proc::smolsock(args);
    receiver.wait_for("udp bound", T);
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    let payload = [0x5au8; 100];
    let start = Instant::now();
    let mut sent = 0;
    for _ in 0..BLAST {
        // A full queue on the sending side is the blast's own loss, not the receiver's.
        if sock.send_to(&payload, to).is_ok() {
            sent += 1;
        }
    }
    let rate = BLAST as f64 / start.elapsed().as_secs_f64();
    // What the receiver still has in hand arrives, and its loss report is due (once a
    // second while datagrams come).
    thread::sleep(Duration::from_millis(1500));
    receiver.signal(libc::SIGTERM);
    let (_, lines, _) = receiver.finish(T);
    let received = lines.iter().filter(|l| l.contains(" received ")).count();
    let lost = |who: &str| -> u64 {
        lines
            .iter()
            .filter(|l| l.starts_with(who))
            .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok())
            .sum()
    };
    Blast {
        sent,
        rate,
        received,
        lost_socket: lost("udp lost"),
        lost_device: lost("device lost"),
    }
}

fn udp() {
    // Alternating rounds, so that what else the machine does falls on both alike.
    let (mut smol, mut kern) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        smol.push(udp_blast(false));
        kern.push(udp_blast(true));
    }
    let mean =
        |v: &[Blast], f: &dyn Fn(&Blast) -> f64| v.iter().map(f).sum::<f64>() / v.len() as f64;
    println!();
    println!(
        "udp-recv under a blast of {BLAST} datagrams of 100 bytes from one kernel socket, {ROUNDS} alternating rounds"
    );
    println!(
        "{:<22} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}  per round: received/lost(socket)/lost(device)",
        "what", "sent/s", "received", "socket", "device", "unknown", "ratio"
    );
    let base = mean(&kern, &|b| b.received as f64);
    for (what, v) in [("smoltcp on a TAP", &smol), ("kernel stack (base)", &kern)] {
        let received = mean(v, &|b| b.received as f64);
        let rounds: Vec<String> = v
            .iter()
            .map(|b| format!("{}/{}/{}", b.received, b.lost_socket, b.lost_device))
            .collect();
        println!(
            "{:<22} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>7.3}  {}",
            what,
            mean(v, &|b| b.rate),
            received,
            mean(v, &|b| b.lost_socket as f64),
            mean(v, &|b| b.lost_device as f64),
            mean(v, &|b| b.unaccounted() as f64),
            received / base,
            rounds.join(" ")
        );
    }
}

fn best(mut f: impl FnMut() -> Duration) -> Duration {
    (0..ROUNDS).map(|_| f()).min().unwrap()
}

fn main() {
    if let Some(code) = reexec_in_netns() {
        std::process::exit(code);
    }
    // `bench example`, `bench attacks`, `bench udp`, `bench loss`: those rows only
    // (`bench example-bulk`, `bench example-echo`: the example's bulk rows, its echo and
    // short-connection rows).
    match std::env::args().nth(1).as_deref() {
        Some("example") => return versus_example(true, true),
        Some("example-bulk") => return versus_example(true, false),
        Some("example-echo") => return versus_example(false, true),
        Some("attacks") => return attacks(),
        Some("udp") => return udp(),
        Some("loss") => return loss(),
        Some("board") => return board(),
        _ => {}
    }
    versus_example(true, true);
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
    board();
    loss();
    attacks();
    udp();
}

/// Seconds of each iperf3 test of the board rows.
const BOARD_SECS: &str = "3";
/// Rounds of the board's iperf3 rows, alternating with the baseline.
const BOARD_ROUNDS: usize = 3;
/// Echo round trips to the board's tcp-server.
const ECHOES: usize = 2000;

/// Runs the stock `iperf3 -c ip -t BOARD_SECS --json` (with `-R` when `reverse`) and
/// returns the Mbit/s that arrived (the receiver's count over its time).
fn stock_iperf3_mbit(ip: &str, reverse: bool) -> f64 {
    let mut args = vec!["-c", ip, "-t", BOARD_SECS, "--json"];
    if reverse {
        args.push("-R");
    }
    let out = std::process::Command::new("iperf3")
        .args(&args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run iperf3 ({e}): install it (Debian: iperf3)"));
    let text = String::from_utf8_lossy(&out.stdout);
    let doc: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("iperf3 {args:?} printed no JSON ({e}): {text}"));
    assert!(out.status.success(), "iperf3 {args:?} failed: {doc:#}");
    let bits = doc["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("iperf3 {args:?}: no receiver rate in {doc:#}"));
    bits / 1e6
}

/// The board rows: iperf3 to and from the emulated board against the kernel twin, and the
/// echo round trip of its tcp-server.
fn board() {
    use smolsock_tests::BOARD_IP;
    println!(
        "\nemulated board (QEMU lm3s6965evb): stock iperf3 -c -t {BOARD_SECS}, {BOARD_ROUNDS} \
         rounds alternating with the same client against `smolsock iperf3 --stack kernel` \
         (127.0.0.1, the base); Mbit/s received"
    );
    let mut rows = [
        Versus::new("iperf3 kernel -> board (base: -> kernel twin)", false),
        Versus::new("iperf3 board -> kernel, -R (base: kernel twin ->)", false),
    ];
    for round in 0..BOARD_ROUNDS {
        let twin_first = round % 2 == 0;
        for part in 0..2 {
            if (part == 0) == twin_first {
                let mut twin = Proc::smolsock(&["iperf3", "--stack", "kernel"]);
                twin.wait_for("listening", T);
                for (row, reverse) in rows.iter_mut().zip([false, true]) {
                    row.other.push(stock_iperf3_mbit("127.0.0.1", reverse));
                }
            } else {
                let mut fw = Proc::qemu("iperf3");
                fw.wait_for("listening 0.0.0.0:5201", T);
                for (row, reverse) in rows.iter_mut().zip([false, true]) {
                    row.smol
                        .push(stock_iperf3_mbit(&BOARD_IP.to_string(), reverse));
                }
            }
        }
    }
    // The base is some 200 times faster: ratios with four decimals.
    println!(
        "{:<52} {:>10} {:>10} {:>8} {:>15}",
        "path (median of the rounds)", "board", "base", "ratio", "range"
    );
    for row in &rows {
        let (ratio, lo, hi) = spread(row.ratios());
        println!(
            "{:<52} {:>10.1} {:>10.1} {:>8.4} {:>7.4}-{:<7.4}",
            row.what,
            median(row.smol.clone()),
            median(row.other.clone()),
            ratio,
            lo,
            hi,
        );
    }
    let mut fw = Proc::qemu("tcp-server");
    fw.wait_for("listening", T);
    let to = SocketAddrV4::new(BOARD_IP, 9090);
    let mut s = TcpStream::connect_timeout(&to.into(), T).expect("connect to the board");
    s.set_read_timeout(Some(T)).unwrap();
    // Each message waits for its echo: no segment of ours is left unacknowledged, so the
    // kernel's Nagle never holds one; set anyway, so the figures are the board's alone.
    s.set_nodelay(true).unwrap();
    let msg = [b'e'; 16];
    let mut back = [0u8; 16];
    let mut times: Vec<Duration> = (0..ECHOES)
        .map(|_| {
            let start = Instant::now();
            s.write_all(&msg).unwrap();
            s.read_exact(&mut back).expect("the board's echo");
            start.elapsed()
        })
        .collect();
    assert_eq!(back, msg);
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let slow = times
        .iter()
        .filter(|&&d| d > Duration::from_millis(200))
        .count();
    println!(
        "echo round trip, board tcp-server, {ECHOES} x 16 bytes on one connection: \
         p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms, over 200 ms: {slow}",
        ms(at(0.5)),
        ms(at(0.99)),
        ms(times[times.len() - 1]),
    );
}

/// The loss-recovery rows.
fn loss() {
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
        match smol {
            Ok(smol) => println!(
                "{:<10} {:>16.2} {:>16.2} {:>10.1}",
                format!("{loss} %"),
                smol.as_secs_f64(),
                kernel.as_secs_f64(),
                smol.as_secs_f64() / kernel.as_secs_f64()
            ),
            Err(e) => println!(
                "{:<10} {:>16} {:>16.2} {:>10}  failed: {e}",
                format!("{loss} %"),
                "-",
                kernel.as_secs_f64(),
                "-"
            ),
        }
    }
}

/// Bytes of each bulk transfer against smoltcp's example: the example's own `AMOUNT`.
const AMOUNT: u64 = 1_000_000_000;

/// `--tcp-buf` and `--offload` of the bulk rows: the default, larger rings a user may
/// choose, and one segment per frame as the example sends them. The example's rings are
/// 65,535 bytes.
const TCP_BUFS: &[(u32, &str)] = &[
    (65536, "on"),
    (262_144, "on"),
    (1_048_576, "on"),
    (65536, "off"),
    (1_048_576, "off"),
];

/// The row's name for one of [`TCP_BUFS`].
fn bulk_row(path: &str, (buf, offload): (u32, &str)) -> String {
    let offload = if offload == "on" {
        String::new()
    } else {
        format!(" --offload {offload}")
    };
    format!("{path}, --tcp-buf {buf}{offload} (Gbit/s)")
}

/// Rounds of the comparison with smoltcp's examples (`SMOLSOCK_BENCH_ROUNDS` overrides).
fn rounds_vs_example() -> usize {
    std::env::var("SMOLSOCK_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(5)
}

/// Timed echo round trips per round (after 100 untimed), and short connections per round.
const TRIPS: usize = 1000;
const SHORT: usize = 1000;

fn gbit_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 * 8.0 / d.as_secs_f64() / 1e9
}

/// `smolsock tcp-server --mode sink --tcp-buf buf --offload offload` takes [`AMOUNT`]
/// bytes from a kernel client; Gbit/s from the connect to the server's close, the CRC
/// checked.
fn smol_sink((buf, offload): (u32, &str), crc: u32) -> f64 {
    let buf = buf.to_string();
    let args = [
        "tcp-server",
        "--mode",
        "sink",
        "--max-clients",
        "1",
        "--tap",
        "tap0",
        "--tcp-buf",
        &buf,
        "--offload",
        offload,
    ];
    let mut server = Proc::smolsock(&args);
    server.wait_for("listening", T);
    let took = peers::send_pattern(SocketAddrV4::new(SMOL_IP, 9090), AMOUNT);
    let closed = server.wait_for("closed: in", T);
    let want = format!("in {AMOUNT} bytes crc32 {crc:08x}");
    assert!(closed.contains(&want), "{closed}");
    gbit_s(AMOUNT, took)
}

/// `smolsock tcp-client --bytes AMOUNT --tcp-buf buf --offload offload` sends to a
/// kernel reader; Gbit/s from the accept to the end of the stream, the CRC checked.
fn smol_client((buf, offload): (u32, &str), crc: u32) -> f64 {
    let at = kernel_tap(9092);
    let reader = peers::receive_counted(TcpListener::bind(at).unwrap());
    let (to, bytes, buf) = (at.to_string(), AMOUNT.to_string(), buf.to_string());
    let args = [
        "tcp-client",
        "--to",
        &to,
        "--bytes",
        &bytes,
        "--tap",
        "tap0",
        "--tcp-buf",
        &buf,
        "--offload",
        offload,
    ];
    let client = Proc::smolsock(&args);
    let (got, got_crc, took) = reader.join().unwrap();
    assert_eq!((got, got_crc), (AMOUNT, crc));
    let (ok, _, stderr) = client.finish(T);
    assert!(ok, "{stderr}");
    gbit_s(AMOUNT, took)
}

fn example(mode: &str) -> f64 {
    let bin = peers::example_bin(peers::BENCHMARK_ENV).expect("the benchmark example");
    peers::example_benchmark(&bin, mode, Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("smoltcp's benchmark example: {e}"))
}

/// The median of `ratios`, and their lowest and highest.
fn spread(ratios: Vec<f64>) -> (f64, f64, f64) {
    let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = ratios.iter().copied().fold(0.0, f64::max);
    (median(ratios), lo, hi)
}

/// p50 of `times`.
fn median_duration(mut times: Vec<Duration>) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One row of the comparison: each round's smolsock and example figures.
struct Versus {
    what: String,
    smol: Vec<f64>,
    other: Vec<f64>,
    /// Whether a smaller figure is better (a time); ratios are then other/smol.
    lower_better: bool,
    note: String,
}

impl Versus {
    fn new(what: impl Into<String>, lower_better: bool) -> Self {
        Self {
            what: what.into(),
            smol: Vec::new(),
            other: Vec::new(),
            lower_better,
            note: String::new(),
        }
    }

    fn ratios(&self) -> Vec<f64> {
        self.smol
            .iter()
            .zip(&self.other)
            .map(|(s, o)| if self.lower_better { o / s } else { s / o })
            .collect()
    }

    fn print(&self) {
        let (ratio, lo, hi) = spread(self.ratios());
        println!(
            "{:<58} {:>10.3} {:>10.3} {:>7.2} {:>5.2}-{:<5.2} {}",
            self.what,
            median(self.smol.clone()),
            median(self.other.clone()),
            ratio,
            lo,
            hi,
            self.note
        );
    }
}

/// One smolsock bulk transfer at a [`TCP_BUFS`] setting, checked against a CRC: Gbit/s.
type BulkRun = fn((u32, &str), u32) -> f64;

/// One round of the bulk rows: the example's writer against smolsock's sink, its reader
/// against smolsock's bulk client, the example first when `example_first`.
fn bulk_round(example_first: bool, crc: u32, up: &mut [Versus], down: &mut [Versus]) {
    // kernel -> smoltcp: the example's writer against smolsock's sink; smoltcp -> kernel:
    // the example's reader against smolsock's bulk client.
    let sides: [(&str, BulkRun, &mut [Versus]); 2] =
        [("writer", smol_sink, up), ("reader", smol_client, down)];
    for (mode, smolsock, rows) in sides {
        let first = example_first.then(|| example(mode));
        let smol: Vec<f64> = TCP_BUFS.iter().map(|&b| smolsock(b, crc)).collect();
        let ex = first.unwrap_or_else(|| example(mode));
        for (row, s) in rows.iter_mut().zip(smol) {
            row.smol.push(s);
            row.other.push(ex);
        }
    }
}

/// smolsock side by side with smoltcp's examples, in alternating rounds: the bulk rows
/// when `bulk`, the echo and short-connection rows when `echo`.
fn versus_example(bulk: bool, echo: bool) {
    let (Some(_), Some(server_bin)) = (
        peers::example_bin(peers::BENCHMARK_ENV),
        peers::example_bin(peers::SERVER_ENV),
    ) else {
        println!(
            "smoltcp's examples not built ({} and {} unset): `cargo xtask bench` builds them",
            peers::BENCHMARK_ENV,
            peers::SERVER_ENV
        );
        return;
    };
    let rounds = rounds_vs_example();
    let crc = peers::pattern_crc(AMOUNT);
    let mut up: Vec<Versus> = TCP_BUFS
        .iter()
        .map(|&b| Versus::new(bulk_row("kernel -> smoltcp", b), false))
        .collect();
    let mut down: Vec<Versus> = TCP_BUFS
        .iter()
        .map(|&b| Versus::new(bulk_row("smoltcp -> kernel", b), false))
        .collect();
    let mut echo_ex = Versus::new("echo round trip p50, vs example (us)", true);
    let mut echo_k = Versus::new("echo round trip p50, vs kernel loopback (us)", true);
    let mut short_ex = Versus::new("short connections/s, vs example", false);
    let mut short_k = Versus::new("short connections/s, vs kernel loopback", false);
    let mut failed = [0usize; 3];
    for round in 0..rounds {
        let example_first = round % 2 == 0;
        if bulk {
            bulk_round(example_first, crc, &mut up, &mut down);
            eprintln!("bench: round {} of {rounds}: bulk done", round + 1);
        }
        if !echo {
            continue;
        }

        // Echo round trips and short connections: the example's server, smolsock's
        // tcp-server on the TAP, the same program on the kernel's stack over loopback.
        let example_server = || {
            let _server = ExampleServer::start(&server_bin).unwrap();
            let echo = SocketAddrV4::new(SMOL_IP, ExampleServer::ECHO);
            let trips = peers::echo_round_trips(echo, 100, TRIPS).unwrap();
            let hello = SocketAddrV4::new(SMOL_IP, ExampleServer::HELLO);
            (trips, peers::short_connections(hello, SHORT, false))
        };
        let smolsock_server = |kernel: bool| {
            let _server = attacked_server(kernel);
            let ip = if kernel { Ipv4Addr::LOCALHOST } else { SMOL_IP };
            let to = SocketAddrV4::new(ip, 9090);
            let trips = peers::echo_round_trips(to, 100, TRIPS).unwrap();
            (trips, peers::short_connections(to, SHORT, true))
        };
        let mut ex = None;
        if example_first {
            ex = Some(example_server());
        }
        let smol = smolsock_server(false);
        let kern = smolsock_server(true);
        let ex = ex.unwrap_or_else(example_server);
        let us = |t: Vec<Duration>| median_duration(t).as_secs_f64() * 1e6;
        let rate = |(took, failed): (Duration, usize)| (SHORT - failed) as f64 / took.as_secs_f64();
        let (s_trip, k_trip, e_trip) = (us(smol.0), us(kern.0), us(ex.0));
        echo_ex.smol.push(s_trip);
        echo_ex.other.push(e_trip);
        echo_k.smol.push(s_trip);
        echo_k.other.push(k_trip);
        for (n, r) in failed.iter_mut().zip([&smol.1, &ex.1, &kern.1]) {
            *n += r.1;
        }
        let (s_rate, k_rate, e_rate) = (rate(smol.1), rate(kern.1), rate(ex.1));
        short_ex.smol.push(s_rate);
        short_ex.other.push(e_rate);
        short_k.smol.push(s_rate);
        short_k.other.push(k_rate);
        eprintln!("bench: round {} of {rounds} done", round + 1);
    }
    short_ex.note = format!("failed: smolsock {}, example {}", failed[0], failed[1]);
    short_k.note = format!("failed: kernel {}", failed[2]);
    println!(
        "smolsock against smoltcp's examples/benchmark.rs and examples/server.rs, {rounds} alternating rounds"
    );
    println!(
        "bulk: {AMOUNT} bytes each (the example's amount; its rings are 65535 bytes, one segment per frame; smolsock's default --offload on moves large segments); echo: {TRIPS} round trips of 16 bytes; short: {SHORT} connections one after another"
    );
    println!("ratio: higher is better for smolsock, median of the rounds' ratios and their range");
    println!(
        "{:<58} {:>10} {:>10} {:>7} {:>11}",
        "row", "smolsock", "other", "ratio", "range"
    );
    if bulk {
        for row in up.iter().chain(&down) {
            row.print();
        }
    }
    if echo {
        for row in [&echo_ex, &echo_k, &short_ex, &short_k] {
            row.print();
        }
    }
    println!();
}
