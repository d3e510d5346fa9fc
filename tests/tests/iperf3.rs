//! `smolsock iperf3` against the distribution's `iperf3` binary (Debian's package
//! `iperf3`; `.ci/run` and `cargo xtask ci` install it), on smoltcp on a TAP and on the
//! kernel twin over loopback, each test in a network namespace of its own (see
//! `smolsock_tests::in_netns`): the stock client measures the smolsock server (`-t`, `-R`,
//! `-P 2`, its `--json` read back; and UDP, `-u -b 10M` with `-R` and `-P 2`), a second
//! client is turned away while a test runs, garbage on the control port does not stop the
//! server, and the smolsock client measures a stock `iperf3 -s` (TCP and UDP). No
//! assertion on a rate: only that data moved and both sides counted it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use smolsock_tests::programs::{KERNEL, SMOLTCP, Target};
use smolsock_tests::stock::{Stock, stock};
use smolsock_tests::{Proc, T, in_netns, json_lines};

/// The smolsock iperf3 server on `t`'s stack, listening.
fn smolsock_server(t: &Target, extra: &[&str]) -> Proc {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let mut server = t.smolsock("iperf3", &args);
    server.wait_for("\"listening\"", T);
    server
}

/// `iperf3 -c` against the smolsock server with `extra`, in JSON: checks that data moved,
/// that the client shows the server's count (the results exchange), and returns the
/// client's document.
fn stock_client_json(t: &Target, extra: &[&str]) -> Value {
    let ip = t.ip.to_string();
    let mut args = vec!["-c", ip.as_str(), "--json"];
    args.extend_from_slice(extra);
    let (status, out, err) = stock(&args);
    let doc: Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("{t}: iperf3 {extra:?} printed no JSON ({e}): {out}{err}"));
    assert!(
        status.success(),
        "{t}: iperf3 {extra:?} failed: {doc:#}\n{err}"
    );
    assert!(
        doc.get("error").is_none(),
        "{t}: iperf3 {extra:?}: {}",
        doc["error"]
    );
    let end = &doc["end"];
    let sent = end["sum_sent"]["bytes"].as_u64().unwrap_or(0);
    let received = end["sum_received"]["bytes"].as_u64().unwrap_or(0);
    assert!(
        sent > 0 && received > 0,
        "{t}: iperf3 {extra:?}: both sides' counts, sent {sent} received {received}"
    );
    doc
}

/// The `event` events in a server's or client's JSON lines, in order: their `side` and
/// `direction`, and the numbers under `counts`.
fn events(lines: &[Value], event: &str, counts: [&str; 2]) -> Vec<(String, String, u64, u64)> {
    let text = |v: &Value, key: &str| v[key].as_str().unwrap_or_default().to_string();
    let number = |v: &Value, key: &str| v[key].as_u64().unwrap_or(0);
    lines
        .iter()
        .filter(|v| v["event"] == event)
        .map(|v| {
            let [a, b] = counts;
            (
                text(v, "side"),
                text(v, "direction"),
                number(v, a),
                number(v, b),
            )
        })
        .collect()
}

/// The iperf_result events of one test: (side, direction, bytes, streams), in order.
fn results(lines: &[Value]) -> Vec<(String, String, u64, u64)> {
    events(lines, "iperf_result", ["bytes", "streams"])
}

/// `-t 2`, `-R` and `-P 2` from the stock client, one after the other to one server.
fn stock_client_measures_smolsock(t: &Target) {
    let server = smolsock_server(t, &[]);
    let forward = stock_client_json(t, &["-t", "2"]);
    assert_eq!(forward["start"]["test_start"]["reverse"], 0);
    let reverse = stock_client_json(t, &["-t", "2", "-R"]);
    assert_eq!(reverse["start"]["test_start"]["reverse"], 1);
    let parallel = stock_client_json(t, &["-t", "2", "-P", "2"]);
    let streams = parallel["end"]["streams"].as_array().expect("streams");
    assert_eq!(streams.len(), 2, "{t}: {parallel:#}");
    for stream in streams {
        for side in ["sender", "receiver"] {
            let bytes = stream[side]["bytes"].as_u64().unwrap_or(0);
            assert!(bytes > 0, "{t}: -P 2, a stream's {side} bytes: {stream:#}");
        }
    }
    server.signal(libc::SIGINT);
    let (_, lines, stderr) = server.finish(T);
    let events = json_lines(&lines);
    let tests: Vec<&Value> = events
        .iter()
        .filter(|v| v["event"] == "iperf_test")
        .collect();
    assert_eq!(tests.len(), 3, "{t}: {lines:#?}\n{stderr}");
    assert_eq!(
        (tests[1]["reverse"].as_bool(), tests[2]["streams"].as_u64()),
        (Some(true), Some(2))
    );
    // The server's own count and the client's, for each test, in that order.
    let got = results(&events);
    let want = [
        ("local", "received", 1),
        ("remote", "sent", 1),
        ("local", "sent", 1),
        ("remote", "received", 1),
        ("local", "received", 2),
        ("remote", "sent", 2),
    ];
    assert_eq!(got.len(), want.len(), "{t}: {got:?}");
    for (got, want) in got.iter().zip(want) {
        assert_eq!(
            (got.0.as_str(), got.1.as_str(), got.3),
            want,
            "{t}: {got:?}"
        );
        assert!(got.2 > 0, "{t}: {got:?}");
    }
    // The client's document says what the server said of itself: its count of the
    // forward test is the client's "received".
    let sum_received = forward["end"]["sum_received"]["bytes"].as_u64();
    assert_eq!(
        sum_received,
        Some(got[0].2),
        "{t}: the server's count, as the client shows it"
    );
    assert!(
        events.iter().all(|v| v["event"] != "error"),
        "{t}: {lines:#?}"
    );
}

#[test]
fn iperf3_client_measures_smolsock_server_on_tap() {
    in_netns("iperf3_client_measures_smolsock_server_on_tap", || {
        stock_client_measures_smolsock(&SMOLTCP)
    });
}

#[test]
fn iperf3_client_measures_smolsock_server_on_kernel() {
    in_netns("iperf3_client_measures_smolsock_server_on_kernel", || {
        stock_client_measures_smolsock(&KERNEL)
    });
}

/// The `iperf_udp` events: (side, direction, packets, lost), in order.
fn udp_counts(lines: &[Value]) -> Vec<(String, String, u64, u64)> {
    events(lines, "iperf_udp", ["packets", "lost"])
}

/// `-u -b 10M -t 2`, with `-R` and with `-P 2`, from the stock client: the client's JSON
/// shows the receiver's datagram count (the server's, or its own with `-R`) and a loss
/// no larger than what was sent; the server's events say the same.
fn stock_udp_client_measures_smolsock(t: &Target) {
    let server = smolsock_server(t, &[]);
    let udp = ["-u", "-b", "10M", "-t", "2"];
    let mut runs = Vec::new();
    for extra in [&[][..], &["-R"][..], &["-P", "2"][..]] {
        let mut args = udp.to_vec();
        args.extend_from_slice(extra);
        let doc = stock_client_json(t, &args);
        assert_eq!(
            doc["start"]["test_start"]["protocol"], "UDP",
            "{t}: {doc:#}"
        );
        // The receiver's count (sum_received): packets counted, lost no more than them;
        // and the sender's (sum_sent).
        let end = &doc["end"];
        let count = |sum: &str, key: &str| end[sum][key].as_u64().unwrap_or(u64::MAX);
        let (packets, lost) = (
            count("sum_received", "packets"),
            count("sum_received", "lost_packets"),
        );
        assert!(
            packets > 0 && packets < u64::MAX && lost <= packets,
            "{t}: -u {extra:?}: packets {packets}, lost {lost}: {end:#}"
        );
        let streams = end["streams"].as_array().map_or(0, Vec::len);
        assert_eq!(streams, if extra.contains(&"-P") { 2 } else { 1 }, "{t}");
        runs.push((packets, lost, count("sum_sent", "packets")));
    }
    server.signal(libc::SIGINT);
    let (_, lines, stderr) = server.finish(T);
    let events = json_lines(&lines);
    assert!(
        events.iter().all(|v| v["event"] != "error"),
        "{t}: {lines:#?}\n{stderr}"
    );
    // Per test: the server's own count, then the client's.
    let got = udp_counts(&events);
    let want = [
        ("local", "received"),
        ("remote", "sent"),
        ("local", "sent"),
        ("remote", "received"),
        ("local", "received"),
        ("remote", "sent"),
    ];
    assert_eq!(got.len(), want.len(), "{t}: {lines:#?}");
    for (got, want) in got.iter().zip(want) {
        assert_eq!((got.0.as_str(), got.1.as_str()), want, "{t}: {got:?}");
        assert!(got.2 > 0, "{t}: {got:?}");
    }
    // What the client shows as the receiver's count is the server's (forward, -P 2), or
    // the client's own of the server's datagrams (-R), which the server then shows; with
    // -R the sender's count is what the server says it sent.
    assert_eq!((got[0].2, got[0].3), (runs[0].0, runs[0].1), "{t}: forward");
    assert_eq!((got[3].2, got[3].3), (runs[1].0, runs[1].1), "{t}: -R");
    assert_eq!(got[2].2, runs[1].2, "{t}: -R, the server's datagrams sent");
    assert_eq!((got[4].2, got[4].3), (runs[2].0, runs[2].1), "{t}: -P 2");
}

#[test]
fn iperf3_udp_client_measures_smolsock_server_on_tap() {
    in_netns("iperf3_udp_client_measures_smolsock_server_on_tap", || {
        stock_udp_client_measures_smolsock(&SMOLTCP)
    });
}

#[test]
fn iperf3_udp_client_measures_smolsock_server_on_kernel() {
    in_netns(
        "iperf3_udp_client_measures_smolsock_server_on_kernel",
        || stock_udp_client_measures_smolsock(&KERNEL),
    );
}

/// A second stock client while a test runs gets iperf3's "busy" answer; the first test
/// ends well.
fn second_client_is_refused(t: &Target) {
    let mut server = smolsock_server(t, &[]);
    let ip = t.ip.to_string();
    let first = Stock::spawn(&["-c", &ip, "-t", "4", "--json"]);
    // The first test's data stream is in: the test runs.
    server.wait_for("\"iperf_test\"", T);
    server.wait_for("\"conn\":2", T);
    let (status, out, err) = stock(&["-c", &ip, "-t", "1"]);
    assert!(!status.success(), "{t}: the second client ran: {out}");
    assert!(
        format!("{out}{err}").contains("the server is busy running a test"),
        "{t}: {out}{err}"
    );
    let (status, out, err) = first.finish(T);
    assert!(status.success(), "{t}: the first client: {out}{err}");
    let doc: Value = serde_json::from_str(&out).expect("JSON");
    assert!(doc["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0) > 0);
    server.signal(libc::SIGINT);
    let (_, lines, _) = server.finish(T);
    let events = json_lines(&lines);
    let denied: Vec<&Value> = events
        .iter()
        .filter(|v| v["event"] == "iperf_denied")
        .collect();
    assert_eq!(denied.len(), 1, "{t}: {lines:#?}");
    assert_eq!(denied[0]["reason"], "busy");
}

#[test]
fn iperf3_second_client_is_refused_on_tap() {
    in_netns("iperf3_second_client_is_refused_on_tap", || {
        second_client_is_refused(&SMOLTCP)
    });
}

#[test]
fn iperf3_second_client_is_refused_on_kernel() {
    in_netns("iperf3_second_client_is_refused_on_kernel", || {
        second_client_is_refused(&KERNEL)
    });
}

/// Garbage, a lying length, a UDP datagram length too long, and a client killed in the middle of a test:
/// each such test fails on its own, and the server then measures a stock client as before.
fn garbage_does_not_stop_the_server(t: &Target) {
    let mut server = smolsock_server(t, &[]);
    let at = t.at(smolsock::programs::iperf3::DEFAULT_PORT);
    let talk = |bytes: &[u8]| -> Vec<u8> {
        let mut s = TcpStream::connect_timeout(&at.into(), T).expect("connect");
        s.set_read_timeout(Some(T)).unwrap();
        s.write_all(bytes).unwrap();
        let mut reply = Vec::new();
        // Until the server closes (or resets) the connection.
        let _ = s.read_to_end(&mut reply);
        reply
    };
    let cookie = b"abcdefghijklmnopqrstuvwxyz2345673456\0";
    // An HTTP request: 37 bytes of it are taken as a cookie, the rest as a length.
    talk(b"GET / HTTP/1.1\r\nHost: 192.168.69.1\r\nAccept: */*\r\n\r\n");
    // A cookie and a length of 4 GiB.
    let mut lie = cookie.to_vec();
    lie.extend_from_slice(&u32::MAX.to_be_bytes());
    assert!([9].starts_with(&talk(&lie)), "PARAM_EXCHANGE at most");
    // A UDP test whose datagrams are longer than UDP carries: SERVER_ERROR with iperf3's
    // error 20 (block size invalid), then the close.
    let json = br#"{"udp":true,"time":1,"parallel":1,"len":70000}"#;
    let mut udp = cookie.to_vec();
    udp.extend_from_slice(&(json.len() as u32).to_be_bytes());
    udp.extend_from_slice(json);
    assert_eq!(talk(&udp), [9, 0xfe, 0, 0, 0, 20, 0, 0, 0, 0]);
    // A stock client killed in the middle of its test.
    let ip = t.ip.to_string();
    let killed = Stock::spawn(&["-c", &ip, "-t", "30"]);
    server.wait_for("\"iperf_test\"", T);
    thread::sleep(Duration::from_millis(500));
    // Dropping it kills it (SIGKILL) and reaps it.
    drop(killed);
    // The server gives the dead test up and measures the next client.
    stock_client_json(t, &["-t", "1"]);
    server.signal(libc::SIGINT);
    let (_, lines, stderr) = server.finish(T);
    let events = json_lines(&lines);
    let errors = events.iter().filter(|v| v["event"] == "error").count();
    assert!(
        errors >= 4,
        "{t}: one error per bad test: {lines:#?}\n{stderr}"
    );
    assert!(
        stderr.contains("not supported: that UDP datagram length"),
        "{t}: {stderr}"
    );
    assert_eq!(results(&events).len(), 2, "{t}: the last test's two counts");
}

#[test]
fn iperf3_garbage_does_not_stop_the_server_on_tap() {
    in_netns("iperf3_garbage_does_not_stop_the_server_on_tap", || {
        garbage_does_not_stop_the_server(&SMOLTCP)
    });
}

#[test]
fn iperf3_garbage_does_not_stop_the_server_on_kernel() {
    in_netns("iperf3_garbage_does_not_stop_the_server_on_kernel", || {
        garbage_does_not_stop_the_server(&KERNEL)
    });
}

/// Whether a TCP socket of this namespace listens on `port` (from /proc/net/tcp, without
/// connecting: a stock `iperf3 -s -1` would take a probe for its one test).
fn listening(port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let local = format!(":{port:04X}");
    table.lines().skip(1).any(|line| {
        let mut fields = line.split_whitespace();
        let address = fields.nth(1).unwrap_or_default();
        let state = fields.nth(1).unwrap_or_default();
        address.ends_with(&local) && state == "0A"
    })
}

/// `smolsock iperf3 -c` against a stock `iperf3 -s`: forward with two streams, then
/// reverse; each run reports its own count and the server's.
fn smolsock_client_measures_stock_server(t: &Target) {
    let peer = t.peer_ip.to_string();
    for (extra, direction) in [(&["-P", "2"][..], "sent"), (&["-R"][..], "received")] {
        let server = Stock::spawn(&["-s", "-1", "-B", &peer, "--json"]);
        let end = Instant::now() + T;
        while !listening(5201) {
            assert!(Instant::now() < end, "{t}: iperf3 -s never listened");
            thread::sleep(Duration::from_millis(20));
        }
        let mut args = vec!["-c", peer.as_str(), "-t", "2", "--json"];
        args.extend_from_slice(extra);
        let (ok, lines, stderr) = t.smolsock("iperf3", &args).finish(T);
        assert!(ok, "{t}: smolsock iperf3 {extra:?}: {stderr}\n{lines:#?}");
        let events = json_lines(&lines);
        let got = results(&events);
        let streams = if extra.contains(&"-P") { 2 } else { 1 };
        let other = if direction == "sent" {
            "received"
        } else {
            "sent"
        };
        assert_eq!(got.len(), 2, "{t}: {lines:#?}");
        assert_eq!(
            (got[0].0.as_str(), got[0].1.as_str(), got[0].3),
            ("local", direction, streams)
        );
        assert_eq!(
            (got[1].0.as_str(), got[1].1.as_str(), got[1].3),
            ("remote", other, streams)
        );
        assert!(got[0].2 > 0 && got[1].2 > 0, "{t}: {got:?}");
        let (status, out, err) = server.finish(T);
        assert!(status.success(), "{t}: iperf3 -s: {out}{err}");
        // A stock server shows its own count only: what it received, or sent with -R.
        let doc: Value = serde_json::from_str(&out).expect("the stock server's JSON");
        let own = if direction == "sent" {
            "sum_received"
        } else {
            "sum_sent"
        };
        let summed = doc["end"][own]["bytes"].as_u64().unwrap_or(0);
        assert!(summed > 0, "{t}: the stock server's count: {doc:#}");
    }
}

/// `smolsock iperf3 -c -u` against a stock `iperf3 -s`: forward with two streams, then
/// reverse; each run reports both sides' datagram counts, and the stock server's receiver
/// count is the one the smolsock client shows.
fn smolsock_udp_client_measures_stock_server(t: &Target) {
    let peer = t.peer_ip.to_string();
    for (extra, direction) in [(&["-P", "2"][..], "sent"), (&["-R"][..], "received")] {
        let server = Stock::spawn(&["-s", "-1", "-B", &peer, "--json"]);
        let end = Instant::now() + T;
        while !listening(5201) {
            assert!(Instant::now() < end, "{t}: iperf3 -s never listened");
            thread::sleep(Duration::from_millis(20));
        }
        let mut args = vec!["-c", peer.as_str(), "-u", "-b", "10M", "-t", "2", "--json"];
        args.extend_from_slice(extra);
        let (ok, lines, stderr) = t.smolsock("iperf3", &args).finish(T);
        assert!(ok, "{t}: smolsock iperf3 {extra:?}: {stderr}\n{lines:#?}");
        let events = json_lines(&lines);
        let other = if direction == "sent" {
            "received"
        } else {
            "sent"
        };
        let got = udp_counts(&events);
        assert_eq!(got.len(), 2, "{t}: {lines:#?}");
        assert_eq!((got[0].0.as_str(), got[0].1.as_str()), ("local", direction));
        assert_eq!((got[1].0.as_str(), got[1].1.as_str()), ("remote", other));
        assert!(got[0].2 > 0 && got[1].2 > 0, "{t}: {got:?}");
        let receiver = if direction == "sent" {
            &got[1]
        } else {
            &got[0]
        };
        assert!(receiver.3 <= receiver.2, "{t}: lost {got:?}");
        let (status, out, err) = server.finish(T);
        assert!(status.success(), "{t}: iperf3 -s: {out}{err}");
        let doc: Value = serde_json::from_str(&out).expect("the stock server's JSON");
        assert_eq!(
            doc["start"]["test_start"]["protocol"], "UDP",
            "{t}: {doc:#}"
        );
        // A stock server shows its own count only (what it received, or sent with -R):
        // the one the smolsock client shows as the peer's.
        let own = if direction == "sent" {
            "sum_received"
        } else {
            "sum_sent"
        };
        let sum = &doc["end"][own];
        assert_eq!(sum["packets"].as_u64(), Some(got[1].2), "{t}: {sum:#}");
        if direction == "sent" {
            assert_eq!(sum["lost_packets"].as_u64(), Some(got[1].3), "{t}: {sum:#}");
        }
    }
}

#[test]
fn smolsock_iperf3_udp_client_measures_stock_server_on_tap() {
    in_netns(
        "smolsock_iperf3_udp_client_measures_stock_server_on_tap",
        || smolsock_udp_client_measures_stock_server(&SMOLTCP),
    );
}

#[test]
fn smolsock_iperf3_udp_client_measures_stock_server_on_kernel() {
    in_netns(
        "smolsock_iperf3_udp_client_measures_stock_server_on_kernel",
        || smolsock_udp_client_measures_stock_server(&KERNEL),
    );
}

#[test]
fn smolsock_iperf3_client_measures_stock_server_on_tap() {
    in_netns(
        "smolsock_iperf3_client_measures_stock_server_on_tap",
        || smolsock_client_measures_stock_server(&SMOLTCP),
    );
}

#[test]
fn smolsock_iperf3_client_measures_stock_server_on_kernel() {
    in_netns(
        "smolsock_iperf3_client_measures_stock_server_on_kernel",
        || smolsock_client_measures_stock_server(&KERNEL),
    );
}
