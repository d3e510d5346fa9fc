//! Closing: by the server (S8), by the client (S9), with unread data, half-way, the
//! TIME-WAIT that follows, and the handshake-to-close ladder (S13).

use super::*;

/// S8: the server closes an accepted connection.
pub fn server_closes<T: Subject>(t: &mut T, cx: &Ctx<'_>) -> Observed {
    let seen = one_client(
        t,
        cx,
        |at| match peer::connect(at) {
            Ok(mut stream) => read_once(&mut stream, STEP),
            Err(e) => e,
        },
        |stack, socket| {
            stack.tcp_close(socket);
            true
        },
    )?;
    Ok(format!("the client's recv returned {}", seen.text()).into())
}

/// S9: the client closes; the server reads end-of-stream.
pub fn client_closes<T: Subject>(t: &mut T, cx: &Ctx<'_>) -> Observed {
    let mut got = Vec::new();
    let mut end = None;
    one_client(
        t,
        cx,
        |at| {
            if let Ok(mut stream) = peer::connect(at) {
                let _ = stream.write_all(b"bye");
            }
        },
        |stack, socket| match drain(stack, socket, &mut got) {
            Ok(true) => {
                end = Some("recv returned 0 bytes (end-of-stream)".to_string());
                stack.tcp_close(socket);
                true
            }
            Ok(false) => false,
            Err(e) => {
                end = Some(format!("recv failed: {e}"));
                true
            }
        },
    )?;
    // The client thread may end before the FIN is read: give it a moment.
    if end.is_none() {
        t.run_for(Duration::from_millis(200));
    }
    Ok(format!(
        "the server read {} bytes, then {}",
        got.len(),
        end.unwrap_or_else(|| "nothing more".into())
    )
    .into())
}

/// Close with unread data in the receive buffer.
pub fn close_unread<T: Subject>(t: &mut T, cx: &Ctx<'_>) -> Observed {
    let (closed_tx, closed_rx) = mpsc::channel::<()>();
    let mut waited = None;
    let seen = one_client(
        t,
        cx,
        move |at| match peer::connect(at) {
            Ok(mut stream) => {
                if stream.write_all(&[7u8; 100]).is_err() {
                    return Ending::Other(std::io::ErrorKind::BrokenPipe);
                }
                let _ = closed_rx.recv_timeout(STEP);
                read_once(&mut stream, STEP)
            }
            Err(e) => e,
        },
        |stack, socket| {
            // Close only once the 100 bytes are in the receive buffer, unread.
            let start = *waited.get_or_insert_with(Instant::now);
            if start.elapsed() < Duration::from_millis(200) {
                return false;
            }
            stack.tcp_close(socket);
            let _ = closed_tx.send(());
            true
        },
    )?;
    let rst = cx
        .frames()
        .iter()
        .any(|f| matches!(f.packet, Packet::Tcp(TcpSegment { rst: true, .. })));
    Ok(format!(
        "the server sent {}; the client's recv returned {}",
        if rst { "RST" } else { "FIN, no RST" },
        seen.text()
    )
    .into())
}

/// Half-close: shut down the write side and keep reading.
pub fn half_close<T: Subject>(t: &mut T, cx: &Ctx<'_>) -> Observed {
    let reply = |n| format!("got {n:04} bytes").into_bytes();
    let ((reply, end), _) = against_server(
        t,
        cx,
        |listener| {
            let _ = serve_one(listener, Some(reply));
        },
        |t, socket| {
            send_all(t, socket, &[1u8; 1000])?;
            t.stack().tcp_shutdown(socket);
            let mut reply = Vec::new();
            let mut end = None;
            t.run_until(STEP, &mut |stack| match drain(stack, socket, &mut reply) {
                Ok(true) => {
                    end = Some("then end-of-stream".to_string());
                    true
                }
                Ok(false) => false,
                Err(e) => {
                    end = Some(format!("then {e}"));
                    true
                }
            });
            t.stack().tcp_close(socket);
            Ok((reply, end))
        },
    )?;
    Ok(format!(
        "after shutdown(SHUT_WR) the client still received {:?}, {}",
        String::from_utf8_lossy(&reply),
        end.unwrap_or_else(|| "no end-of-stream".into())
    )
    .into())
}

/// TIME-WAIT after an active close.
pub fn time_wait<T: Subject>(t: &mut T, cx: &Ctx<'_>) -> Observed {
    let ((), local) = against_server(
        t,
        cx,
        |listener| {
            let _ = serve_one(listener, None);
        },
        |t, socket| {
            send_all(t, socket, b"x")?;
            t.stack().tcp_close(socket);
            Ok(())
        },
    )?;
    // The server is the kernel peer on both stacks: its side shows in /proc/net/tcp.
    let table = fs::read_to_string("/proc/net/tcp")
        .map_err(|e| format!("cannot read /proc/net/tcp: {e}"))?;
    let server = match proc_time_wait(&table, cx.ports.get(0)) {
        Some(_) => "the server held one too",
        None => "the server (it closed second) held none",
    };
    let client = match t.time_wait(local.port())? {
        Some(d) => format!(
            "the client (it closed first) held TIME-WAIT for {} s",
            d.as_secs_f64().round()
        ),
        None => "the client (it closed first) was not in TIME-WAIT".to_string(),
    };
    Ok(format!("{client}; {server}").into())
}

/// S13: the handshake and the close, from a capture.
pub fn handshake<T: Subject>(t: &mut T, cx: &Ctx<'_>) -> Observed {
    let at = SocketAddrV4::new(t.peer(), cx.ports.get(0));
    let ((), local) = against_server(
        t,
        cx,
        |listener| {
            let Some((mut stream, _)) = listener.accept(STEP) else {
                return;
            };
            let mut buf = [0u8; 64];
            if let Ok(n) = stream.read(&mut buf) {
                let _ = stream.write_all(buf.get(..n).unwrap_or_default());
            }
            // Wait for the client's FIN; close a moment later (past the delayed-ACK
            // timer), so the ACK of the FIN and our own FIN go as two segments.
            let _ = read_once(&mut stream, STEP);
            thread::sleep(Duration::from_millis(300));
        },
        |t, socket| {
            send_all(t, socket, b"hello")?;
            let mut back = Vec::new();
            t.run_until(STEP, &mut |stack| {
                let _ = drain(stack, socket, &mut back);
                back.len() >= 5
            });
            t.stack().tcp_close(socket);
            Ok(())
        },
    )?;
    // The ladder keeps only this connection's segments.
    let frames = cx.frames();
    let drawn = connection(frames.iter().map(|f| &f.packet), local, at);
    Ok(Seen {
        measured: None,
        text: summary(&drawn, local),
        ladder: drawn.ladder,
    })
}

/// The handshake (the first three segments) and the close (from the first FIN or RST on),
/// flags and directions only, and where each side ended.
fn summary(drawn: &Connection, client: SocketAddrV4) -> String {
    let word =
        |s: &TcpSegment| format!("{} {}", s.flags(), if s.src == client { ">" } else { "<" });
    let handshake: Vec<String> = drawn.segments.iter().take(3).map(word).collect();
    let close: Vec<String> = drawn
        .segments
        .iter()
        .skip_while(|s| !(s.fin || s.rst))
        .map(word)
        .collect();
    format!(
        "handshake: {}; close: {}; the client ends in {}, the server in {} \
         (> is client to server)",
        handshake.join(" "),
        if close.is_empty() {
            "none".to_string()
        } else {
            close.join(" ")
        },
        drawn.client_state,
        drawn.server_state,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: &str = "10.0.0.1:5000";
    const SERVER: &str = "10.0.0.2:80";

    fn seg(from_client: bool, flags: &str, seq: u32, ack: u32) -> Packet {
        let c: SocketAddrV4 = CLIENT.parse().unwrap();
        let s: SocketAddrV4 = SERVER.parse().unwrap();
        let (src, dst) = if from_client { (c, s) } else { (s, c) };
        Packet::Tcp(TcpSegment {
            src,
            dst,
            syn: flags.contains('S'),
            ack: flags.contains('A'),
            fin: flags.contains('F'),
            rst: flags.contains('R'),
            psh: flags.contains('P'),
            seq,
            ack_number: ack,
            len: usize::from(flags.contains('P')),
            window: 0,
        })
    }

    fn summarize(packets: &[Packet]) -> String {
        let client = CLIENT.parse().unwrap();
        summary(
            &connection(packets, client, SERVER.parse().unwrap()),
            client,
        )
    }

    #[test]
    fn textbook_open_and_close() {
        let packets = [
            seg(true, "S", 100, 0),
            seg(false, "SA", 500, 101),
            seg(true, "A", 101, 501),
            seg(true, "PA", 101, 501),
            seg(false, "A", 501, 102),
            seg(true, "FA", 102, 501),
            seg(false, "A", 501, 103),
            seg(false, "FA", 501, 103),
            seg(true, "A", 103, 502),
        ];
        assert_eq!(
            summarize(&packets),
            "handshake: SYN > SYN,ACK < ACK >; close: FIN,ACK > ACK < FIN,ACK < ACK >; \
             the client ends in TIME-WAIT, the server in CLOSED (> is client to server)"
        );
    }

    #[test]
    fn refused() {
        let summary = summarize(&[seg(true, "S", 1, 0), seg(false, "RA", 0, 2)]);
        assert_eq!(
            summary,
            "handshake: SYN > RST,ACK <; close: RST,ACK <; the client ends in CLOSED, \
             the server in CLOSED (> is client to server)"
        );
    }
}
