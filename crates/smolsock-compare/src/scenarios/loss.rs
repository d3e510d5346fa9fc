//! Loss recovery: a bulk transfer from the subject while a fault injector drops 5 % of the
//! frames the sender sends, on both stacks over the same kind of lossy hop.

use super::*;

/// Bytes the subject sends.
pub const LOSSY_BYTES: usize = 1 << 20;

/// The faults on the hop: 5 % of the sender's frames lost, the same pattern every run.
pub const LOSSY_FAULTS: &str = "loss=5%,seed=11";

/// The longest a transfer may take before the scenario gives up on it.
const LIMIT: Duration = Duration::from_secs(90);

/// Sends [`LOSSY_BYTES`] of a test pattern from the subject to `at`, where a peer reads
/// until end-of-stream; `pump` moves the peer and returns what it received once it saw the
/// end. Says whether every byte arrived in order; how long it took varies from run to run,
/// so it is the row's measured figure, not part of the sentence.
pub fn send_through_loss<T: Subject>(
    t: &mut T,
    at: SocketAddrV4,
    mut pump: impl FnMut() -> Option<Vec<u8>>,
) -> Observed {
    let mut data = vec![0u8; LOSSY_BYTES];
    smolsock::programs::fill_pattern(0, &mut data);
    let start = Instant::now();
    let socket = t
        .stack()
        .tcp_connect(at)
        .map_err(|e| format!("could not connect: {e}"))?;
    let (mut sent, mut closed, mut got, mut failed) = (0, false, None, None);
    t.run_until(LIMIT, &mut |stack| {
        // The peer moves on every turn, the handshake included (it may be a second stack).
        got = pump();
        if closed || got.is_some() {
            return got.is_some();
        }
        match stack.tcp_phase(socket) {
            Phase::Connecting => return false,
            Phase::Failed(e) => {
                failed = Some(e);
                return true;
            }
            Phase::Open => {}
        }
        while let Some(rest) = data.get(sent..).filter(|r| !r.is_empty()) {
            match stack.tcp_send(socket, rest) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        if sent == data.len() {
            stack.tcp_close(socket);
            closed = true;
        }
        false
    });
    let took = start.elapsed();
    if !closed {
        t.stack().tcp_abort(socket);
    }
    if let Some(e) = failed {
        return Err(format!("the connection failed: {e}"));
    }
    let Some(got) = got else {
        return Err(format!(
            "the transfer did not end within {} s ({sent} of {LOSSY_BYTES} bytes queued)",
            LIMIT.as_secs()
        ));
    };
    let whole = if got == data {
        "every byte arrived, in order".to_string()
    } else {
        format!(
            "{} of {LOSSY_BYTES} bytes arrived, not all as sent",
            got.len()
        )
    };
    Ok(Seen {
        text: format!("1 MiB with 5 % of the sender's frames lost: {whole}"),
        ladder: Ladder::default(),
        measured: Some(format!("{:.2} s", took.as_secs_f64())),
    })
}
