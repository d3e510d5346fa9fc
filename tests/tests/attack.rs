//! `smolsock tcp-server` on smoltcp under attack: half-open connections, a SYN flood, SYNs
//! forged onto a live or half-open connection, and a burst of connects. Forged frames come
//! from an `AF_PACKET` socket on the namespace's TAP (`smolsock_tests::forge`); the
//! legitimate clients are the kernel's own sockets. Each test runs in a network namespace
//! of its own (see `smolsock_tests::in_netns`).
//!
//! What a user checks: a real client is served (connects and gets its echo) while, and
//! right after, the attack goes on, and a live connection is never reset by a forged SYN.

use std::io::Read;
use std::net::{Shutdown, SocketAddr, SocketAddrV4};
use std::thread;
use std::time::{Duration, Instant};

use smolsock_tests::forge::{
    self, Content, FakeClient, Frame, Rng, Segment, Wire, burst, echo_once, fake_mac, round_trip,
    spoofed_ip, syn_flood,
};
use smolsock_tests::programs::{KERNEL, SMOLTCP, Stack, Target};
use smolsock_tests::{Proc, SMOL_IP, T, in_netns, join_within};

/// The bound on one probe client's connect, and on its echo.
const PROBE: Duration = Duration::from_secs(3);

/// Starts `smolsock tcp-server` on `t` (echo, default backlog 8) with `extra` flags.
fn start_server(t: &Target, extra: &[&str]) -> Proc {
    let mut server = t.smolsock("tcp-server", extra);
    server.wait_for("listening", T);
    server
}

/// A probe: a whole echo round trip on a fresh connection, the connection then closed.
fn probe(to: SocketAddrV4, id: usize) -> Result<(), String> {
    let msg = format!("probe {id}");
    let s = echo_once(to, msg.as_bytes(), PROBE)?;
    s.shutdown(Shutdown::Both).ok();
    Ok(())
}

/// The echo server on smoltcp.
fn server() -> SocketAddrV4 {
    SocketAddrV4::new(SMOL_IP, 9090)
}

/// Resets sent by the stack to any of `peers`.
fn resets_to<'a>(frames: &'a [Frame], peers: &[SocketAddrV4]) -> Vec<&'a Segment> {
    forge::from_stack(frames)
        .filter(|s| s.flags.rst && peers.contains(&s.dst))
        .collect()
}

/// Eight clients (the default backlog) that get their SYN-ACK and never answer it, then a
/// real client: it must be served.
fn half_open_connections_do_not_lock_out_the_listener(t: &Target, wire: impl FnOnce() -> Wire) {
    let _server = start_server(t, &[]);
    let wire = wire();
    let mut attackers = Vec::new();
    for i in 0..8 {
        let addr = SocketAddrV4::new(spoofed_ip(i), 40000 + i as u16);
        let mut fake = FakeClient::new(&wire, addr, fake_mac(i as u8), 1000 * i as u32);
        if let Err(frames) = fake.syn(T) {
            panic!(
                "no SYN-ACK for half-open client {i} ({addr}); frames:\n{}",
                forge::show(&frames)
            );
        }
        attackers.push(addr);
    }
    // Every listening socket is half-open now: a real client must still be served.
    let served = echo_once(wire.server(), b"real client", T);
    let frames = wire.collect(Duration::from_millis(200));
    let served = served.unwrap_or_else(|e| {
        panic!(
            "with 8 half-open connections a real client was not served: {e}\nframes:\n{}",
            forge::show(&frames)
        )
    });
    drop(served);
    // Making room is silent: no reset goes to the (spoofed) half-open peers.
    let resets = resets_to(&frames, &attackers);
    assert!(resets.is_empty(), "resets to spoofed peers: {resets:#?}");
}

#[test]
fn half_open_connections_do_not_lock_out_smoltcp() {
    in_netns("half_open_connections_do_not_lock_out_smoltcp", || {
        half_open_connections_do_not_lock_out_the_listener(&SMOLTCP, Wire::open)
    });
}

#[test]
fn half_open_connections_do_not_lock_out_the_kernel() {
    in_netns("half_open_connections_do_not_lock_out_the_kernel", || {
        half_open_connections_do_not_lock_out_the_listener(&KERNEL, Wire::kernel)
    });
}

#[test]
fn half_open_connections_expire() {
    in_netns("half_open_connections_expire", || {
        let _server = start_server(&SMOLTCP, &["--syn-timeout", "1"]);
        let wire = Wire::open();
        let addr = SocketAddrV4::new(spoofed_ip(0), 40000);
        let mut fake = FakeClient::new(&wire, addr, fake_mac(0), 7);
        fake.syn(T).expect("a SYN-ACK");
        // smoltcp retransmits a SYN-ACK 1, 3, 7, 15 ... s after the first (doubling from a
        // 1 s timeout). Expired after 1 s, the half-open connection sends nothing more: no
        // retransmission in the 8 s from the 4th second on (the one at 7 s would show).
        thread::sleep(Duration::from_secs(4));
        let frames = wire.collect(Duration::from_secs(8));
        let late: Vec<_> = forge::from_stack(&frames)
            .filter(|s| s.dst == addr)
            .collect();
        assert!(
            late.is_empty(),
            "a half-open connection still alive after 4 s with --syn-timeout 1: {late:#?}"
        );
    });
}

#[test]
fn syn_flood_leaves_room_for_real_clients() {
    in_netns("syn_flood_leaves_room_for_real_clients", || {
        let _server = start_server(&SMOLTCP, &[]);
        const SYNS: usize = 2000;
        const RATE: u32 = 500;
        let start = Instant::now();
        // 2,000 SYNs at 500/s (4 s) from 101 spoofed addresses nobody answers ARP for.
        let flood = thread::spawn(move || {
            let wire = Wire::open();
            syn_flood(&wire, SYNS, RATE, start);
            Instant::now()
        });
        // Ten probes during the flood, one every 350 ms from 0.3 s, each in its own thread so
        // a slow one does not push the next past the flood.
        let probes: Vec<_> = (0..10)
            .map(|i| {
                let due = start + Duration::from_millis(300 + 350 * i as u64);
                thread::sleep(due.saturating_duration_since(Instant::now()));
                let began = Instant::now();
                (began, thread::spawn(move || probe(server(), i)))
            })
            .collect();
        let flood_end = join_within(flood, T, "the flood");
        let mut during = Vec::new();
        for (began, handle) in probes {
            let result = join_within(handle, T, "a probe");
            if began < flood_end {
                during.push(result);
            }
        }
        assert_eq!(during.len(), 10, "probes that started during the flood");
        let served = during.iter().filter(|r| r.is_ok()).count();
        assert!(
            served >= 9,
            "{served} of 10 probes served during the flood: {during:#?}"
        );
        // Right after the flood (its half-open connections not yet expired): all served.
        let after: Vec<_> = (0..5).map(|i| probe(server(), 100 + i)).collect();
        assert!(
            after.iter().all(|r| r.is_ok()),
            "probes right after the flood: {after:#?}"
        );
    });
}

#[test]
fn forged_syns_do_not_reset_a_live_connection() {
    in_netns("forged_syns_do_not_reset_a_live_connection", || {
        let _server = start_server(&SMOLTCP, &[]);
        let wire = Wire::open();
        let mut s = echo_once(server(), b"hello", T).expect("a first echo");
        let SocketAddr::V4(me) = s.local_addr().unwrap() else {
            panic!("an IPv4 client");
        };
        let mut rng = Rng::from_clock();
        let mut log = Vec::new();
        for round in 0..8 {
            // The client's next sequence number, from what the kernel sent last.
            let frames = wire.collect(Duration::from_millis(100));
            log.extend(frames.iter().cloned());
            let next = forge::to_stack(&log)
                .filter(|seg| seg.src == me)
                .last()
                .map(|seg| seg.seq.wrapping_add(seg.len()))
                .expect("the kernel client's segments on the wire");
            let (what, seq) = match round % 4 {
                0 => ("the next sequence number", next),
                1 => ("in window", next.wrapping_add(1000)),
                2 => ("out of window", next.wrapping_add(1 << 31)),
                _ => ("random", rng.next_u32()),
            };
            wire.send_segment(&Segment::syn(me, server(), seq), wire.kernel_mac);
            let frames = wire.collect(Duration::from_millis(300));
            log.extend(frames.iter().cloned());
            let msg = format!("after forged SYN {round} ({what}, seq {seq})");
            let result = round_trip(&mut s, msg.as_bytes());
            log.extend(wire.collect(Duration::from_millis(50)));
            let on_tuple: Vec<Frame> = log
                .iter()
                .filter(
                    |f| matches!(&f.content, Content::Tcp(seg) if seg.src == me || seg.dst == me),
                )
                .cloned()
                .collect();
            assert!(
                result.is_ok() && resets_to(&log, &[me]).is_empty(),
                "forged SYN {round} ({what}, seq {seq}) on {me}: {result:?}\n\
                 segments on the tuple:\n{}",
                forge::show(&on_tuple)
            );
        }
        s.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).expect("an orderly close");
        assert!(rest.is_empty());
    });
}

#[test]
fn forged_syn_during_a_handshake_does_not_break_it() {
    in_netns("forged_syn_during_a_handshake_does_not_break_it", || {
        let _server = start_server(&SMOLTCP, &[]);
        let wire = Wire::open();
        let addr = SocketAddrV4::new(spoofed_ip(0), 40000);
        let isn = 5_000_000;
        let mut fake = FakeClient::new(&wire, addr, fake_mac(0), isn);
        let syn_ack = fake.syn(T).expect("a SYN-ACK");
        // Half-open now: a second SYN on the same address/port pair, another sequence
        // number. It must not reach a listening socket (a second handshake) nor reset this
        // one.
        wire.send_segment(
            &Segment::syn(addr, server(), isn.wrapping_add(777_777)),
            fake.mac,
        );
        let frames = wire.collect(Duration::from_millis(300));
        let answers: Vec<_> = forge::from_stack(&frames)
            .filter(|s| s.dst == addr)
            .collect();
        assert!(
            answers
                .iter()
                .all(|s| !s.flags.rst && (!s.flags.syn || s.seq == syn_ack.seq)),
            "the stack answered the forged SYN with {answers:#?} (its SYN-ACK was {syn_ack:#?})"
        );
        // The genuine handshake completes and the connection echoes.
        fake.send(b"still here");
        let (echo, seen) = fake.read(10, T);
        assert_eq!(echo, b"still here", "{seen:#?}");
        fake.reset();
    });
}

fn back_to_back_connects_are_all_served(t: &Target) {
    let _server = start_server(t, &[]);
    // On smoltcp, what went over the wire, to show when a client fails.
    let wire = (t.stack == Stack::Smoltcp).then(Wire::open);
    let failed = burst(t.at(9090), 32);
    let frames = wire
        .map(|w| w.collect(Duration::from_millis(200)))
        .unwrap_or_default();
    let failed_ports: Vec<String> = failed
        .iter()
        .filter_map(|e| e.split(": ").nth(1))
        .filter_map(|a| a.rsplit_once(':').map(|(_, p)| format!(":{p} ")))
        .collect();
    let on_failed: Vec<Frame> = frames
        .into_iter()
        .filter(|f| match &f.content {
            Content::Tcp(seg) => {
                let line = format!("{seg} ");
                failed_ports.iter().any(|p| line.contains(p.as_str()))
            }
            _ => false,
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} of 32 back-to-back clients not served: {failed:#?}\nsegments of the failed clients:\n{}",
        failed.len(),
        forge::show(&on_failed)
    );
}

#[test]
fn back_to_back_connects_are_all_served_by_smoltcp() {
    in_netns("back_to_back_connects_are_all_served_by_smoltcp", || {
        back_to_back_connects_are_all_served(&SMOLTCP)
    });
}

#[test]
fn back_to_back_connects_are_all_served_by_the_kernel() {
    in_netns("back_to_back_connects_are_all_served_by_the_kernel", || {
        back_to_back_connects_are_all_served(&KERNEL)
    });
}
