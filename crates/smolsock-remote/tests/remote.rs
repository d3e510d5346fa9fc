//! `RemoteStack` against the firmware's `Server`, in one process: two "boards" (each a
//! `Server` and a `SmolStack`) share an in-memory Ethernet link in a thread, and the test
//! drives both stacks from the host side over socket pairs. Then boards that misbehave: no
//! answer, garbage, a reset mid-session, another protocol version.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use smolsock::Error;
use smolsock::link::Link as EthLink;
use smolsock::net::{Phase, Recv, Stack};
use smolsock::smol::{SmolStack, StackConfig};
use smolsock::smoltcp::iface::SocketStorage;
use smolsock::smoltcp::socket::udp;
use smolsock::smoltcp::time::{Duration as SmolDuration, Instant as SmolInstant};
use smolsock::smoltcp::wire::{EthernetAddress, Ipv4Cidr};
use smolsock_remote::Server;
use smolsock_remote::frame::{self, MAX_FRAME, MAX_PLAIN};
use smolsock_remote::host::{Link, RemoteStack, fault};
use smolsock_remote::wire::{Config, Message, Reply, Request, VERSION};

type BoardStack = SmolStack<'static, 8>;

fn stack_on(device: &mut smolsock::link::LinkEnd<'_, 32>, last: u8) -> BoardStack {
    let config = StackConfig {
        mac: EthernetAddress([2, 0, 0, 0, 0, last]),
        ip: Ipv4Cidr::new(Ipv4Addr::new(10, 0, 0, last), 24),
        gateway: None,
        seed: u64::from(last),
    };
    let storage: Vec<SocketStorage<'static>> = (0..10).map(|_| SocketStorage::EMPTY).collect();
    let mut stack = SmolStack::new(config, device, storage, SmolInstant::ZERO).unwrap();
    for _ in 0..6 {
        stack.add_tcp(vec![0u8; 4096], vec![0u8; 4096]).unwrap();
    }
    for _ in 0..2 {
        stack
            .add_udp(
                vec![udp::PacketMetadata::EMPTY; 4],
                vec![0u8; 4096],
                vec![udp::PacketMetadata::EMPTY; 4],
                vec![0u8; 4096],
            )
            .unwrap();
    }
    stack
}

/// Two boards on one link, served until dropped.
struct Boards {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Drop for Boards {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut serials: [UnixStream; 2], stop: Arc<AtomicBool>) {
    let mut link: EthLink<32> = EthLink::default();
    let mut stacks = [stack_on(&mut link.a(), 1), stack_on(&mut link.b(), 2)];
    let mut servers = [Server::new(0x1111), Server::new(0x2222)];
    for (server, serial) in servers.iter_mut().zip(&mut serials) {
        serial.set_nonblocking(true).unwrap();
        server.announce(&mut |f| {
            let _ = serial.write_all(f);
        });
    }
    let start = Instant::now();
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        let elapsed = SmolDuration::from_micros(start.elapsed().as_micros() as u64);
        for i in 0..2 {
            let now = SmolInstant::ZERO + elapsed + servers[i].clock_offset();
            let mut end = if i == 0 { link.a() } else { link.b() };
            let moved = stacks[i].poll(now, &mut end);
            if let Ok(n) = serials[i].read(&mut buf) {
                servers[i].receive(&buf[..n]);
            }
            let serial = &mut serials[i];
            servers[i].step(&mut stacks[i], &mut end, now, moved, &mut |f| {
                serial.set_nonblocking(false).unwrap();
                let _ = serial.write_all(f);
                serial.set_nonblocking(true).unwrap();
            });
        }
        thread::sleep(Duration::from_micros(200));
    }
}

fn boards() -> (Boards, RemoteStack, RemoteStack) {
    let (a_host, a_board) = UnixStream::pair().unwrap();
    let (b_host, b_board) = UnixStream::pair().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let stop = stop.clone();
        thread::spawn(move || serve([a_board, b_board], stop))
    };
    let boards = Boards {
        stop,
        thread: Some(thread),
    };
    let a = RemoteStack::connect(Link::from_fd(a_host.into()), Duration::from_secs(3)).unwrap();
    let b = RemoteStack::connect(Link::from_fd(b_host.into()), Duration::from_secs(3)).unwrap();
    (boards, a, b)
}

/// Waits on `stack` until `done` holds, at most 5 s.
fn until<S>(stack: &mut S, wait: impl Fn(&mut S), mut done: impl FnMut(&mut S) -> bool) -> bool {
    let limit = Instant::now() + Duration::from_secs(5);
    while Instant::now() < limit {
        if done(stack) {
            return true;
        }
        wait(stack);
    }
    false
}

fn wait_a_little(stack: &mut RemoteStack) {
    stack.wait(Duration::from_millis(20)).unwrap();
}

#[test]
fn a_tcp_echo_and_a_datagram_between_two_remote_stacks() {
    let (_boards, mut a, mut b) = boards();
    assert_eq!(a.pool_sizes(), (6, 2));
    let listener = a.tcp_listen(7, 2).unwrap();
    let client = b
        .tcp_connect(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 7))
        .unwrap();
    let mut accepted = None;
    assert!(until(&mut a, wait_a_little, |a| {
        accepted = a.tcp_accept(listener).ok();
        accepted.is_some()
    }));
    let (server, peer) = accepted.unwrap();
    assert_eq!(*peer.ip(), Ipv4Addr::new(10, 0, 0, 2));
    assert_eq!(b.tcp_phase(client), Phase::Open);
    assert_eq!(b.tcp_local(client), Some(peer));
    // More than one call carries, both ways.
    let message: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let mut sent = 0;
    let mut got = Vec::new();
    let mut buf = [0u8; 3000];
    let done = until(&mut a, wait_a_little, |a| {
        if sent < message.len() {
            sent += b.tcp_send(client, &message[sent..]).unwrap_or(0);
        }
        while let Ok(Recv::Data(n)) = a.tcp_recv(server, &mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
        got.len() == message.len()
    });
    assert!(done, "got {} of {} bytes", got.len(), message.len());
    assert_eq!(got, message);
    b.tcp_close(client);
    assert!(until(&mut a, wait_a_little, |a| a
        .tcp_recv(server, &mut buf)
        == Ok(Recv::Eof)));
    a.tcp_close(server);
    // The handle is stale now, on the board as on any stack.
    assert_eq!(a.tcp_send(server, b"x"), Err(Error::StaleHandle));

    let socket = a.udp_open().unwrap();
    a.udp_bind(socket, 9).unwrap();
    let sender = b.udp_open().unwrap();
    let big = vec![7u8; 1400];
    b.udp_send_to(
        sender,
        &big,
        SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 9),
    )
    .unwrap();
    let mut small = [0u8; 100];
    let mut datagram = None;
    assert!(until(&mut a, wait_a_little, |a| {
        datagram = a.udp_recv_from(socket, &mut small).ok();
        datagram.is_some()
    }));
    let datagram = datagram.unwrap();
    assert_eq!(
        (datagram.len, datagram.size),
        (100, 1400),
        "cut to the buffer (S11)"
    );
    assert_eq!(
        Some(datagram.from.port()),
        b.udp_local(sender).map(|a| a.port())
    );
    a.listener_close(listener);
}

#[test]
fn restart_makes_a_fresh_stack_and_skip_runs_its_timers() {
    let (_boards, mut a, mut b) = boards();
    let listener = a.tcp_listen(7, 1).unwrap();
    let client = b
        .tcp_connect(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 7))
        .unwrap();
    assert!(until(
        &mut b,
        |b| b.wait(Duration::from_millis(20)).map(|_| ()).unwrap(),
        |b| { b.tcp_phase(client) == Phase::Open }
    ));
    a.restart(Config {
        mac: [2, 0, 0, 0, 0, 1],
        ip: [10, 0, 0, 1],
        prefix: 24,
        gateway: None,
        seed: 99,
    })
    .unwrap();
    // The old listener is gone, and the client got a reset.
    assert_eq!(a.tcp_accept(listener), Err(Error::StaleHandle));
    assert!(until(
        &mut b,
        |b| b.wait(Duration::from_millis(20)).map(|_| ()).unwrap(),
        |b| { matches!(b.tcp_phase(client), Phase::Failed(_)) }
    ));
    // A configuration the stack cannot use is refused, with the board's reason.
    let refused = a.restart(Config {
        mac: [1, 0, 0, 0, 0, 1],
        ip: [10, 0, 0, 1],
        prefix: 24,
        gateway: None,
        seed: 1,
    });
    assert!(
        matches!(refused, Err(Error::InvalidConfig(text)) if text.contains("unicast")),
        "{refused:?}"
    );
    assert!(matches!(
        a.restart(Config {
            prefix: 40,
            ..Config {
                mac: [2, 0, 0, 0, 0, 1],
                ip: [10, 0, 0, 1],
                prefix: 24,
                gateway: None,
                seed: 1
            }
        }),
        Err(Error::InvalidConfig(_))
    ));

    // TIME-WAIT: the active closer holds it 10 s on smoltcp; Skip gets there at once.
    let listener = a.tcp_listen(8, 1).unwrap();
    let client = b
        .tcp_connect(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 8))
        .unwrap();
    let mut server = None;
    assert!(until(&mut a, wait_a_little, |a| {
        server = a.tcp_accept(listener).ok();
        server.is_some()
    }));
    let port = b.tcp_local(client).unwrap().port();
    b.tcp_close(client);
    let (server, _) = server.unwrap();
    let mut buf = [0u8; 8];
    assert!(until(&mut a, wait_a_little, |a| a
        .tcp_recv(server, &mut buf)
        == Ok(Recv::Eof)));
    a.tcp_close(server);
    assert!(until(
        &mut b,
        |b| b.wait(Duration::from_millis(20)).map(|_| ()).unwrap(),
        |b| { b.in_time_wait(port).unwrap() }
    ));
    b.skip(Duration::from_secs(5)).unwrap();
    b.wait(Duration::from_millis(50)).unwrap();
    assert!(
        b.in_time_wait(port).unwrap(),
        "still in TIME-WAIT after 5 s"
    );
    b.skip(Duration::from_secs(6)).unwrap();
    assert!(until(
        &mut b,
        |b| b.wait(Duration::from_millis(20)).map(|_| ()).unwrap(),
        |b| { !b.in_time_wait(port).unwrap() }
    ));
}

/// A fake board on the other end of a socket pair, run by `board` in a thread.
fn fake(board: impl FnOnce(UnixStream) + Send + 'static) -> (Link, thread::JoinHandle<()>) {
    let (host, far) = UnixStream::pair().unwrap();
    let thread = thread::spawn(move || board(far));
    (Link::from_fd(host.into()), thread)
}

/// Reads one request frame from the host (skipping empty frames).
fn read_request(stream: &mut UnixStream) -> Option<Vec<u8>> {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut frame = Vec::new();
    let mut byte = [0u8];
    loop {
        stream.read_exact(&mut byte).ok()?;
        if byte[0] == 0 {
            if frame.is_empty() {
                continue;
            }
            return Some(frame);
        }
        frame.push(byte[0]);
    }
}

fn send(stream: &mut UnixStream, message: &Message<'_>) {
    let mut scratch = [0; MAX_PLAIN];
    let mut out = [0; MAX_FRAME];
    let frame = frame::encode(message, &mut scratch, &mut out).unwrap();
    let _ = stream.write_all(frame);
}

fn seq_of(frame: &mut [u8]) -> u16 {
    frame::decode::<Request<'_>>(frame).unwrap().seq
}

fn hello(stream: &mut UnixStream, version: u16, nonce: u32) {
    let mut request = read_request(stream).unwrap();
    let seq = seq_of(&mut request);
    send(
        stream,
        &Message::Reply {
            seq,
            nonce,
            reply: Reply::Hello {
                version,
                tcp_sockets: 1,
                udp_sockets: 1,
            },
        },
    );
}

const SHORT: Duration = Duration::from_millis(500);

#[test]
fn a_board_that_never_answers_fails_the_handshake_in_bounded_time() {
    let (link, board) = fake(|mut s| {
        // Reads everything, says nothing.
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    });
    let started = Instant::now();
    let error = RemoteStack::connect(link, SHORT).err().unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(error.contains(fault::NO_ANSWER), "{error}");
    board.join().unwrap();
}

#[test]
fn a_board_of_another_version_is_refused_with_both_versions() {
    let (link, board) = fake(|mut s| hello(&mut s, VERSION + 1, 5));
    let error = RemoteStack::connect(link, SHORT).err().unwrap();
    assert!(error.contains(fault::VERSION), "{error}");
    assert!(
        error.contains(&format!("version {}", VERSION + 1)),
        "{error}"
    );
    board.join().unwrap();
}

#[test]
fn garbage_from_the_board_is_an_error_not_a_hang_or_a_panic() {
    let (link, board) = fake(|mut s| {
        hello(&mut s, VERSION, 5);
        // Answers the next call with noise: bytes, delimiters, a valid COBS frame with a
        // wrong CRC.
        let _ = read_request(&mut s);
        let _ = s.write_all(&[0xff, 0x13, 0x00, 0x01, 0x00, 0x05, 1, 2, 3, 4, 0x00]);
        let _ = s.write_all(&[0x55; 5000]);
        let _ = s.write_all(&[0x00]);
        thread::sleep(Duration::from_secs(1));
    });
    let mut stack = RemoteStack::connect(link, SHORT).unwrap();
    let started = Instant::now();
    assert_eq!(stack.udp_open(), Err(Error::Remote(fault::GARBAGE)));
    assert!(started.elapsed() < Duration::from_secs(3));
    // Every later call fails at once, and the queries give their empty values.
    assert_eq!(stack.tcp_listen(1, 1), Err(Error::Remote(fault::GARBAGE)));
    assert!(stack.failure().unwrap().contains("CRC") || stack.failure().unwrap().contains("COBS"));
    board.join().unwrap();
}

#[test]
fn a_board_that_resets_mid_call_is_noticed() {
    let (link, board) = fake(|mut s| {
        hello(&mut s, VERSION, 5);
        // The call arrives, and the board reboots instead of answering.
        let _ = read_request(&mut s);
        send(
            &mut s,
            &Message::Boot {
                version: VERSION,
                nonce: 6,
            },
        );
        thread::sleep(Duration::from_millis(500));
    });
    let mut stack = RemoteStack::connect(link, Duration::from_secs(3)).unwrap();
    assert_eq!(stack.udp_open(), Err(Error::Remote(fault::RESET)));
    assert!(stack.failure().unwrap().contains("new boot"));
    board.join().unwrap();
}

#[test]
fn a_reply_from_another_boot_is_a_reset_and_a_closed_link_is_an_error() {
    let (link, board) = fake(|mut s| {
        hello(&mut s, VERSION, 5);
        let mut request = read_request(&mut s).unwrap();
        let seq = seq_of(&mut request);
        send(
            &mut s,
            &Message::Reply {
                seq,
                nonce: 7,
                reply: Reply::Handle(1),
            },
        );
    });
    let mut stack = RemoteStack::connect(link, Duration::from_secs(3)).unwrap();
    assert_eq!(stack.udp_open(), Err(Error::Remote(fault::RESET)));
    board.join().unwrap();

    let (link, board) = fake(|mut s| {
        hello(&mut s, VERSION, 5);
        // Then the board goes away.
    });
    let mut stack = RemoteStack::connect(link, Duration::from_secs(3)).unwrap();
    board.join().unwrap();
    assert_eq!(stack.udp_open(), Err(Error::Remote(fault::LINK)));
    assert_eq!(stack.tcp_listen(1, 1), Err(Error::Remote(fault::LINK)));
}

/// The server on its own: a `Wait` the host gave up on is answered (not moved) before the
/// next request's reply, so a late host reads the replies in order; a frame of garbage is
/// counted and answered with nothing.
#[test]
fn a_new_request_first_answers_the_wait_the_host_gave_up_on() {
    let mut link: EthLink<32> = EthLink::default();
    let mut stack = stack_on(&mut link.a(), 1);
    let mut server = Server::new(7);
    let mut replies: Vec<Vec<u8>> = Vec::new();
    let request = |seq: u16, call: smolsock_remote::wire::Call<'_>| {
        let mut scratch = [0; MAX_PLAIN];
        let mut out = [0; MAX_FRAME];
        frame::encode(&Request { seq, call }, &mut scratch, &mut out)
            .unwrap()
            .to_vec()
    };
    let now = SmolInstant::from_secs(1);
    let mut step = |server: &mut Server, replies: &mut Vec<Vec<u8>>, bytes: &[u8]| {
        server.receive(bytes);
        server.step(&mut stack, &mut link.a(), now, false, &mut |f| {
            replies.push(f.to_vec())
        })
    };
    use smolsock_remote::wire::Call;
    step(
        &mut server,
        &mut replies,
        &request(1, Call::Hello { version: VERSION }),
    );
    assert_eq!(replies.len(), 1);
    let deadline = step(
        &mut server,
        &mut replies,
        &request(2, Call::Wait { timeout_ms: 60_000 }),
    );
    assert_eq!(replies.len(), 1, "nothing moved: the Wait is held");
    assert_eq!(deadline, Some(now + SmolDuration::from_secs(60)));
    step(&mut server, &mut replies, &request(3, Call::IsIdle));
    assert_eq!(replies.len(), 3);
    let mut decoded = Vec::new();
    for reply in &mut replies[1..] {
        let len = reply.len() - 1;
        let body = &mut reply[..len];
        match frame::decode::<Message<'_>>(body).unwrap() {
            Message::Reply { seq, reply, .. } => decoded.push(format!("{seq} {reply:?}")),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(decoded, ["2 Woke { moved: false }", "3 Flag(true)"]);
    step(&mut server, &mut replies, &[0x42, 0x13, 0x00]);
    assert_eq!(replies.len(), 3, "garbage gets no answer");
    assert_eq!(server.errors().0, 1, "and is counted");
}
