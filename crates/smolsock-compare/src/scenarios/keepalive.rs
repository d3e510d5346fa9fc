//! Idle connections: keep-alive and idle timeouts.

use super::*;

/// Keep-alive: none by default, probes once turned on.
pub fn keepalive<T: Subject>(t: &mut T, cx: &Ctx<'_>) -> Observed {
    let at = SocketAddrV4::new(t.peer(), cx.ports.get(0));
    let listener = Listener::bind(at)?;
    let socket = open(t, at)?;
    let mut held = None;
    t.run_until(STEP, &mut |_| {
        held = listener.try_accept();
        held.is_some()
    });
    let local = t.stack().tcp_local(socket);
    // Frames are counted by position: everything after what the capture had seen.
    let on_conn = |frames: &[Frame], since: usize| -> (usize, usize, Vec<usize>) {
        let mut from_subject = 0;
        let mut from_peer = 0;
        let mut lens = Vec::new();
        for f in frames.iter().skip(since) {
            if let Packet::Tcp(TcpSegment { src, dst, len, .. }) = f.packet {
                if Some(src) == local && dst == at {
                    from_subject += 1;
                    lens.push(len);
                } else if src == at && Some(dst) == local {
                    from_peer += 1;
                }
            }
        }
        (from_subject, from_peer, lens)
    };
    let idle_start = cx.frames().len();
    t.run_for(Duration::from_millis(1500));
    let (idle_out, idle_in, _) = on_conn(&cx.frames(), idle_start);
    let ka_start = cx.frames().len();
    t.stack().tcp_set_timeouts(
        socket,
        smolsock::net::TcpTimeouts {
            keepalive: Some(smoltcp::time::Duration::from_secs(1)),
            give_up: None,
        },
    );
    t.run_for(Duration::from_millis(2600));
    let (probes, answers, lens) = on_conn(&cx.frames(), ka_start);
    let alive = t.stack().tcp_phase(socket) == Phase::Open
        && drain(t.stack(), socket, &mut Vec::new()).is_ok_and(|eof| !eof);
    t.stack().tcp_abort(socket);
    drop(held);
    let idle = if idle_out + idle_in == 0 {
        "idle 1.5 s: no packets".to_string()
    } else {
        format!("idle 1.5 s: {} packets", idle_out + idle_in)
    };
    let mut sizes = lens.clone();
    sizes.sort_unstable();
    sizes.dedup();
    let sizes = sizes
        .iter()
        .map(|l| format!("{l}-byte"))
        .collect::<Vec<_>>()
        .join("/");
    let probing = if probes == 0 {
        "with keep-alive at 1 s: no probes".to_string()
    } else {
        format!(
            "with keep-alive at 1 s: {} {sizes} probes, {}",
            if probes >= 2 { "repeated" } else { "one" },
            if answers >= probes {
                "each answered"
            } else {
                "not all answered"
            }
        )
    };
    Ok(format!(
        "{idle}; {probing}; connection {}",
        if alive { "still open" } else { "gone" }
    )
    .into())
}
