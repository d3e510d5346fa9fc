//! `smolsock compare`: the seed's rules, observed on the host kernel's stack and on
//! smoltcp, side by side.
//!
//! The command runs inside a network namespace of its own ([`smolsock_linux::netns::enter`]): a
//! `tap0` with the kernel at 192.168.69.100 (a veth pair where `/dev/net/tun` is out of
//! reach), and loopback. Each scenario runs twice:
//! - on the kernel (`subject::KernelSubject`): the subject is a [`KernelStack`] and its peer is
//!   the kernel too, over loopback, as in the seed's Python programs on one machine;
//! - on smoltcp (`subject::SmolSubject`): a fresh smoltcp stack at 192.168.69.1 on `tap0`, with
//!   the kernel as its peer;
//! - with a board ([`board::BoardLab`], `--board qemu`): the emulated board's remote firmware
//!   in QEMU on `tap1` (the kernel at 192.168.70.100), its stack restarted for each
//!   scenario and driven over its serial port ([`board::BoardSubject`], a
//!   `smolsock_remote::host::RemoteStack`). A scenario the board cannot run (too few
//!   sockets, no fault injector) says why in its cell.
//!
//! The subject is driven through the same socket layer the programs use ([`Stack`]); the
//! peer is plain `std::net` in a thread. A packet capture on the interface between them
//! ([`smolsock_linux::capture`]) shows what went over the wire. Each scenario describes what it saw
//! in one sentence that does not change from run to run, so the table in
//! `docs/behaviour.md` can be checked against a fresh run.
//!
//! Modules: `subject` (the two host stacks under test), [`board`] (the third), `peer` (the
//! kernel peer in a thread),
//! `scenarios` (one function per rule, each returning what it saw, the S13 one with a
//! packet ladder drawn by `smolsock-frames`) and [`report`] (the table as text, Markdown or
//! JSON). The crate may use the core, `smolsock-frames`, `smolsock-linux`,
//! `smolsock-std`, `smolsock-remote` and `qemu-run`; the CLI calls [`run`] and [`report`].
//!
//! [`KernelStack`]: smolsock_std::KernelStack
//! [`Stack`]: smolsock::net::Stack

pub mod board;
mod peer;
pub mod report;
mod scenarios;
mod subject;

use std::cell::RefCell;
use std::net::{SocketAddrV4, UdpSocket};

use smolsock::net::Stack;
use smolsock_frames::Ladder;

use board::{BoardLab, BoardSubject};
use scenarios::{Ctx, Observed, Ports, Seen};
use smolsock_linux::capture::Capture;
use smolsock_linux::netns::{Link, Namespace};
use smolsock_linux::tap::{Kind, TunTap};
use subject::{KERNEL_IP, KernelSubject, SMOL_IP, SMOL_PEER_IP, SmolStorage, SmolSubject, Subject};

/// One scenario of the table.
pub struct Scenario {
    /// A short name (for `--only` and the JSON).
    pub id: &'static str,
    /// The seed's rule it checks, or "-" for the other behaviours the comparison covers.
    pub rule: &'static str,
    /// What is done, in the subject's terms.
    pub did: &'static str,
    /// Why the two stacks behave as they do, in one line.
    pub why: &'static str,
    /// Why the board behaves as it does where it differs from smoltcp on the host (its
    /// buffer sizes, its clock, its MAC driver, its RAM); empty where it does not.
    pub board_why: &'static str,
    kernel: fn(&mut KernelSubject, &Ctx<'_>) -> Observed,
    smoltcp: fn(&mut SmolSubject<'_, '_>, &Ctx<'_>) -> Observed,
    board: fn(&mut BoardSubject<'_>, &Ctx<'_>) -> Observed,
}

macro_rules! scenario {
    ($id:literal, $rule:literal, $did:literal, $why:literal, $f:path) => {
        scenario!($id, $rule, $did, $why, $f, board_why = "")
    };
    ($id:literal, $rule:literal, $did:literal, $why:literal, $f:path, board_why = $board:literal) => {
        Scenario {
            id: $id,
            rule: $rule,
            did: $did,
            why: $why,
            board_why: $board,
            kernel: |t, cx| $f(t, cx),
            smoltcp: |t, cx| $f(t, cx),
            board: |t, cx| $f(t, cx),
        }
    };
}

/// Every scenario, in the order of the table.
pub const SCENARIOS: &[Scenario] = &[
    scenario!(
        "connect-refused",
        "S1/S3",
        "a client connects to a port where nothing listens",
        "no listening socket: both stacks answer a SYN with RST, and the connect fails at once",
        scenarios::connect_refused
    ),
    scenario!(
        "connect",
        "S1/S3",
        "a client connects to a listening server",
        "bind + listen make the socket passive; accept() returns the client's address",
        scenarios::connect_listening
    ),
    scenario!(
        "client-port",
        "S2",
        "32 clients connect at once without binding",
        "Linux hashes the destination into ip_local_port_range and steps up in even ports (RFC 6056); smolsock draws at random from IANA's 49152-65535 (smoltcp leaves the choice to the caller)",
        scenarios::client_port
    ),
    scenario!(
        "udp-sender-port",
        "S10",
        "a UDP socket sends 3 datagrams without binding",
        "the first sendto binds an ephemeral port, kept until the socket closes; the ranges differ as for TCP",
        scenarios::udp_sender_port
    ),
    scenario!(
        "accept",
        "S5/S6",
        "3 clients connect at once, then a 4th; the server echoes",
        "accept() hands out one connected socket per client; the listener keeps listening",
        scenarios::accept
    ),
    scenario!(
        "listener-close",
        "S7",
        "the server closes its listening socket while a client is connected",
        "a connection does not depend on the listener it came from; with no listener a SYN gets RST",
        scenarios::listener_close
    ),
    scenario!(
        "server-closes",
        "S8",
        "the server closes an accepted connection",
        "close() sends FIN after the data; the client's recv() returns 0",
        scenarios::server_closes
    ),
    scenario!(
        "client-closes",
        "S9",
        "the client sends 3 bytes and closes",
        "the FIN comes after the data, so the server reads everything, then end-of-stream",
        scenarios::client_closes
    ),
    scenario!(
        "udp-truncate",
        "S11",
        "a 2000-byte datagram, then a 10-byte one, arrive for recvfrom(1024)",
        "UDP keeps message boundaries: one call takes one datagram, cut to the buffer",
        scenarios::udp_truncate
    ),
    scenario!(
        "backlog",
        "S12",
        "listen(2), no accept; 5 clients connect one after another",
        "both drop a SYN the backlog has no room for, and the client's retransmission gets in once the server accepts; Linux queues backlog+1 finished handshakes, smolsock `backlog` (its listening sockets)",
        scenarios::backlog
    ),
    scenario!(
        "backlog-reset",
        "S12",
        "the same with reset on overflow: Linux tcp_abort_on_overflow=1, smolsock --backlog-full reset",
        "smolsock then answers a SYN no listening socket takes with RST, as plain smoltcp always does; Linux still drops the SYN when its queue is full and resets only a handshake that completes into a full queue",
        scenarios::backlog_reset
    ),
    scenario!(
        "udp-closed-port-in",
        "-",
        "a datagram arrives for a port nobody listens on",
        "both answer with ICMP port unreachable, which a connected UDP sender sees as ECONNREFUSED (smoltcp only when it knows the sender's MAC: it does not hold an ICMP error back for ARP)",
        scenarios::udp_closed_port_in
    ),
    scenario!(
        "udp-closed-port-out",
        "-",
        "a datagram is sent to a port nobody listens on",
        "an unconnected UDP socket is not told about ICMP errors, on either stack",
        scenarios::udp_closed_port_out
    ),
    scenario!(
        "close-unread",
        "-",
        "the server closes a connection with 100 bytes unread",
        "Linux resets a connection closed with unread data (RFC 2525); smoltcp drops the data and closes with FIN",
        scenarios::close_unread
    ),
    scenario!(
        "half-close",
        "-",
        "the client shuts down its write side, then reads the reply",
        "shutdown(SHUT_WR) sends FIN but keeps the receiving half open",
        scenarios::half_close
    ),
    scenario!(
        "time-wait",
        "-",
        "the client closes first (active close)",
        "the side that closes first holds TIME-WAIT: Linux a fixed 60 s (its timer, read from /proc/net/tcp), smoltcp 10 s (measured by moving its clock forward)",
        scenarios::time_wait
    ),
    Scenario {
        id: "arp",
        rule: "-",
        did: "3 datagrams to a peer whose MAC is not known yet",
        why: "both resolve the MAC with one ARP request and hold the datagrams until the reply",
        board_why: "",
        kernel: arp_on_kernel,
        smoltcp: arp_on_smoltcp,
        board: arp_on_board,
    },
    scenario!(
        "keepalive",
        "-",
        "a connection idles 1.5 s, then 2.6 s with keep-alive every 1 s",
        "keep-alive is off by default on both, and neither has an idle timeout; a Linux probe carries no data, a smoltcp probe one byte already acknowledged",
        scenarios::keepalive
    ),
    Scenario {
        id: "loss",
        rule: "-",
        did: "the subject sends 1 MiB (16 KiB socket buffers) while a fault injector loses 5 % of the frames it sends, the same ones every run",
        why: "both recover every loss, at different speeds (the text report prints the times): Linux retransmits within a round trip where it can (fast retransmit, a 200 ms minimum timeout), smoltcp 0.14 mostly waits for its retransmission timer, at least 1 s and doubling; no smoltcp setting shortens that (see docs/behaviour.md)",
        board_why: "the fault injector is a build-time feature of a firmware, and the remote firmware is built without it (flash and RAM)",
        kernel: loss_on_kernel,
        smoltcp: loss_on_smoltcp,
        // Never called: `board::cannot_run` turns the scenario away first.
        board: |_, _| Err("no fault injector on the board".into()),
    },
    scenario!(
        "handshake",
        "S13",
        "connect, one echo, close; the segments from a capture",
        "three-way handshake and four-way close on both (the server closes 0.3 s after reading end-of-stream; closing at once, its ACK would ride on its FIN); the ladders are below the table",
        scenarios::handshake
    ),
];

/// Which column a scenario runs for.
#[derive(Clone, Copy)]
enum Column {
    Kernel,
    Smoltcp,
    Board,
}

/// Ten ports of its own per scenario and stack, so no scenario meets another's leftovers.
fn ports(index: usize, column: Column) -> Ports {
    let index = u16::try_from(index).unwrap_or(0);
    Ports(match column {
        Column::Kernel => 20000 + index * 20,
        Column::Smoltcp => 20000 + index * 20 + 10,
        Column::Board => 25000 + index * 20,
    })
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// The scenario.
    pub scenario: &'static Scenario,
    /// What the kernel did.
    pub kernel: Observed,
    /// What smoltcp did.
    pub smoltcp: Observed,
    /// What the board did, when the comparison had one.
    pub board: Option<Observed>,
    /// The board's cell says why the scenario cannot run on a board at all (no fault
    /// injector, too few sockets): a limit of the board, not a failure.
    pub board_cannot_run: bool,
}

impl Row {
    /// Whether every stack that could run the scenario was seen doing the same.
    pub fn same(&self) -> bool {
        let board_same = match &self.board {
            None => true,
            Some(Ok(b)) => matches!(&self.smoltcp, Ok(s) if s.text == b.text),
            Some(Err(_)) => self.board_cannot_run,
        };
        board_same && matches!((&self.kernel, &self.smoltcp), (Ok(a), Ok(b)) if a.text == b.text)
    }

    /// Whether a stack failed to run the scenario (a board's known limits aside).
    pub fn failed(&self) -> bool {
        self.kernel.is_err()
            || self.smoltcp.is_err()
            || (matches!(self.board, Some(Err(_))) && !self.board_cannot_run)
    }
}

impl std::fmt::Debug for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id)
    }
}

/// Checks that every id in `only` names a scenario.
pub fn check_ids(only: &[String]) -> Result<(), String> {
    match only
        .iter()
        .find(|id| !SCENARIOS.iter().any(|s| s.id == id.as_str()))
    {
        Some(id) => {
            let known: Vec<&str> = SCENARIOS.iter().map(|s| s.id).collect();
            Err(format!(
                "no scenario '{id}'; the scenarios are: {}",
                known.join(", ")
            ))
        }
        None => Ok(()),
    }
}

/// Runs the scenarios whose id is in `only` (all when empty), with smoltcp on the
/// namespace's link, and on `board` too when there is one. Must run inside `namespace`,
/// the one [`smolsock_linux::netns::enter`] made.
pub fn run(
    only: &[String],
    namespace: &Namespace,
    mut board: Option<&mut BoardLab>,
) -> Result<Vec<Row>, String> {
    let link = &namespace.link;
    check_ids(only)?;
    let mut tap = match link {
        Link::Tap(name) => TunTap::open(name, Kind::Tap).map_err(|e| e.to_string())?,
        Link::Veth { stack, .. } => TunTap::packet(stack)
            .map_err(|e| format!("cannot open a raw socket on {stack}: {e}"))?,
    };
    let wire = link.kernel_interface();
    let mut rows = Vec::new();
    for (index, scenario) in SCENARIOS.iter().enumerate() {
        if !only.is_empty() && !only.iter().any(|id| id == scenario.id) {
            continue;
        }
        log::info!("scenario {}", scenario.id);
        let arp = scenario.id == "arp";
        let kernel = {
            let interface = if arp { wire } else { "lo" };
            let capture = Capture::start(interface).map_err(|e| e.to_string())?;
            let cx = Ctx {
                ports: ports(index, Column::Kernel),
                capture: &capture,
                tap: RefCell::new(Some(&mut tap)),
            };
            let mut subject = KernelSubject::new();
            let observed = (scenario.kernel)(&mut subject, &cx);
            log_capture("kernel", scenario.id, &capture);
            observed
        };
        let smoltcp = {
            let mut slots = Vec::new();
            let mut storage = SmolStorage::new();
            let capture = Capture::start(wire).map_err(|e| e.to_string())?;
            match SmolSubject::new(&mut slots, &mut storage, &mut tap, SMOL_IP) {
                Ok(mut subject) => {
                    let cx = Ctx {
                        ports: ports(index, Column::Smoltcp),
                        capture: &capture,
                        tap: RefCell::new(None),
                    };
                    let observed = (scenario.smoltcp)(&mut subject, &cx);
                    log_capture("smoltcp", scenario.id, &capture);
                    observed
                }
                Err(e) => Err(format!("cannot build the smoltcp stack: {e}")),
            }
        };
        let limit = board
            .as_deref()
            .and_then(|lab| board::cannot_run(scenario.id, lab.tcp_sockets()));
        let board_cannot_run = limit.is_some();
        let board = match (board.as_deref_mut(), limit) {
            (None, _) => None,
            (Some(_), Some(why)) => Some(Err(why)),
            (Some(lab), None) => Some(on_board(lab, index, scenario, namespace)),
        };
        rows.push(Row {
            scenario,
            kernel,
            smoltcp,
            board,
            board_cannot_run,
        });
    }
    Ok(rows)
}

/// Runs `scenario` on a fresh stack of the board, in the network its Ethernet is on.
fn on_board(
    lab: &mut BoardLab,
    index: usize,
    scenario: &Scenario,
    namespace: &Namespace,
) -> Observed {
    if lab.site().outside {
        namespace.in_origin(|| on_board_here(lab, index, scenario))?
    } else {
        on_board_here(lab, index, scenario)
    }
}

fn on_board_here(lab: &mut BoardLab, index: usize, scenario: &Scenario) -> Observed {
    let interface = lab.site().interface.clone();
    let capture = Capture::start(&interface).map_err(|e| format!("capture on {interface}: {e}"))?;
    let mut subject = lab.subject()?;
    let cx = Ctx {
        ports: ports(index, Column::Board),
        capture: &capture,
        tap: RefCell::new(None),
    };
    let observed = (scenario.board)(&mut subject, &cx);
    log_capture("board", scenario.id, &capture);
    // A link that failed explains the scenario's failure better than the scenario can.
    match subject.failure() {
        Some(failure) => Err(failure),
        None => observed,
    }
}

/// With `-v`, every captured packet of a scenario goes to the log.
fn log_capture(stack: &str, id: &str, capture: &Capture) {
    if log::log_enabled!(log::Level::Debug) {
        let start = capture.frames().first().map(|f| f.time);
        for frame in capture.frames() {
            let at = start.map_or(0.0, |s| frame.time.duration_since(s).as_secs_f64());
            log::debug!(
                "{stack} {id} {at:8.4} {:?} {}",
                frame.direction,
                frame.packet
            );
        }
    }
}

fn arp_on_kernel(t: &mut KernelSubject, cx: &Ctx<'_>) -> Observed {
    // The peer is a second smoltcp stack, the only other host on the TAP.
    let Some(tap) = cx.take_tap() else {
        return Err("no TAP for the peer stack".into());
    };
    let port = cx.ports.get(0);
    let mut slots = Vec::new();
    let mut storage = SmolStorage::new();
    let mut peer = SmolSubject::new(&mut slots, &mut storage, tap, SMOL_PEER_IP)
        .map_err(|e| format!("cannot build the peer stack: {e}"))?;
    let socket = peer.stack().udp_open().map_err(|e| e.to_string())?;
    peer.stack()
        .udp_bind(socket, port)
        .map_err(|e| e.to_string())?;
    let mut received = 0;
    scenarios::arp(t, SMOL_PEER_IP, port, cx.capture, || {
        peer.poll();
        let mut buf = [0u8; 16];
        while peer.stack().udp_recv_from(socket, &mut buf).is_ok() {
            received += 1;
        }
        received
    })
}

fn arp_on_smoltcp(t: &mut SmolSubject<'_, '_>, cx: &Ctx<'_>) -> Observed {
    let port = cx.ports.get(0);
    let at = SocketAddrV4::new(KERNEL_IP, port);
    let peer = UdpSocket::bind(at).map_err(|e| format!("the peer cannot bind {at}: {e}"))?;
    peer.set_nonblocking(true).map_err(|e| e.to_string())?;
    let mut received = 0;
    scenarios::arp(t, KERNEL_IP, port, cx.capture, || {
        let mut buf = [0u8; 16];
        while peer.recv_from(&mut buf).is_ok() {
            received += 1;
        }
        received
    })
}

fn arp_on_board(t: &mut BoardSubject<'_>, cx: &Ctx<'_>) -> Observed {
    let port = cx.ports.get(0);
    let peer_ip = t.peer();
    let at = SocketAddrV4::new(peer_ip, port);
    let peer = UdpSocket::bind(at).map_err(|e| format!("the peer cannot bind {at}: {e}"))?;
    peer.set_nonblocking(true).map_err(|e| e.to_string())?;
    let mut received = 0;
    scenarios::arp(t, peer_ip, port, cx.capture, || {
        let mut buf = [0u8; 16];
        while peer.recv_from(&mut buf).is_ok() {
            received += 1;
        }
        received
    })
}

fn loss_faults() -> Result<smolsock::faults::FaultConfig, String> {
    smolsock::faults::FaultConfig::parse(scenarios::LOSSY_FAULTS).map_err(|e| e.to_string())
}

fn loss_on_kernel(t: &mut KernelSubject, cx: &Ctx<'_>) -> Observed {
    // The kernel sends over the TAP to a smoltcp peer whose device loses 5 % of what
    // arrives: the same hop, seen from the other end, as for the smoltcp subject. The peer
    // runs in a thread of its own, woken by its frames, so that its answers are as prompt
    // as the kernel's are to the smoltcp subject.
    let Some(tap) = cx.take_tap() else {
        return Err("no TAP for the peer stack".into());
    };
    let port = cx.ports.get(0);
    let faults = loss_faults()?;
    let (tx, rx) = std::sync::mpsc::channel();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let stop = &stop;
        scope.spawn(move || {
            let got = sink_through_faults(tap, port, faults, stop);
            let _ = tx.send(got);
        });
        let seen = scenarios::send_through_loss(t, SocketAddrV4::new(SMOL_PEER_IP, port), || {
            match rx.try_recv() {
                Ok(Ok(got)) => Some(got),
                _ => None,
            }
        });
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        seen
    })
}

/// A smoltcp stack at [`SMOL_PEER_IP`] on `tap`, behind `faults`, that accepts one
/// connection on `port` and reads it to its end (or until `stop`).
fn sink_through_faults(
    tap: &mut TunTap,
    port: u16,
    faults: smolsock::faults::FaultConfig,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<Vec<u8>, String> {
    let mut slots = Vec::new();
    let mut storage = SmolStorage::new();
    let mut peer = SmolSubject::new(&mut slots, &mut storage, tap, SMOL_PEER_IP)
        .map_err(|e| format!("cannot build the peer stack: {e}"))?;
    peer.set_faults(Some(faults));
    let listener = peer
        .stack()
        .tcp_listen(port, 1)
        .map_err(|e| e.to_string())?;
    let (mut conn, mut got) = (None, Vec::new());
    let mut result = Err("stopped before the end of the stream".to_string());
    peer.run_until(std::time::Duration::from_secs(100), &mut |stack| {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            return true;
        }
        if conn.is_none() {
            conn = stack.tcp_accept(listener).ok().map(|(c, _)| c);
        }
        let Some(c) = conn else {
            return false;
        };
        match peer::drain(stack, c, &mut got) {
            Ok(true) => {
                stack.tcp_close(c);
                result = Ok(std::mem::take(&mut got));
                true
            }
            Ok(false) => false,
            Err(e) => {
                result = Err(format!("the peer's connection failed: {e}"));
                true
            }
        }
    });
    // The last ACK and FIN leave.
    peer.run_for(std::time::Duration::from_millis(100));
    result
}

fn loss_on_smoltcp(t: &mut SmolSubject<'_, '_>, cx: &Ctx<'_>) -> Observed {
    let port = cx.ports.get(0);
    let at = SocketAddrV4::new(KERNEL_IP, port);
    let listener =
        std::net::TcpListener::bind(at).map_err(|e| format!("the peer cannot bind {at}: {e}"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::Read;
        // Every wait bounded: the accept as well as the reads.
        let limit = std::time::Instant::now() + std::time::Duration::from_secs(100);
        let accepted = listener.set_nonblocking(true).and_then(|()| {
            loop {
                match listener.accept() {
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            && std::time::Instant::now() < limit =>
                    {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                    other => break other,
                }
            }
        });
        let got = accepted.and_then(|(mut s, _)| {
            s.set_nonblocking(false)?;
            s.set_read_timeout(Some(std::time::Duration::from_secs(100)))?;
            let mut got = Vec::new();
            s.read_to_end(&mut got).map(|_| got)
        });
        let _ = tx.send(got.unwrap_or_default());
    });
    t.set_faults(Some(loss_faults()?));
    let seen = scenarios::send_through_loss(t, at, || rx.try_recv().ok());
    t.set_faults(None);
    seen
}

/// The ladders of the S13 scenario, per stack, when it ran.
pub fn ladders(rows: &[Row]) -> Vec<(&'static str, &Ladder)> {
    let mut out = Vec::new();
    for row in rows.iter().filter(|r| r.scenario.id == "handshake") {
        let board = row.board.as_ref();
        for (name, observed) in [
            ("kernel", Some(&row.kernel)),
            ("smoltcp", Some(&row.smoltcp)),
            ("board", board),
        ] {
            if let Some(Ok(Seen { ladder, .. })) = observed {
                out.push((name, ladder));
            }
        }
    }
    out
}
