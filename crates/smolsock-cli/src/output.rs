//! Printing events as text lines or JSON lines.
//!
//! A JSON line is the event's own serialized form (`smolsock::event::Record`, described in
//! `docs/events.md`) with the host's `t` after it, and `side` in the demo.

use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use smolsock::event::Event;

/// Bytes of output gathered before they go to the writer.
const CHUNK: usize = 64 * 1024;
/// Chunks that may wait for the writer (16 MiB): a reader of stdout that falls this far
/// behind slows the program down again.
const QUEUE: usize = 256;

/// What the writer thread is handed.
enum ToWriter {
    /// Bytes to write.
    Bytes(Vec<u8>),
    /// Everything before has been written: say so.
    Barrier(SyncSender<()>),
}

/// Stdout through a thread of its own: the program hands over chunks of lines and goes on,
/// so a slow reader of its output (a terminal, a pipe) does not stop it from reading its
/// device while datagrams pour in. The thread starts with the first output (`compare`
/// must enter its namespace while the process has one thread); it is closed, every chunk
/// written, when dropped.
struct Out {
    buf: Vec<u8>,
    to_writer: Option<SyncSender<ToWriter>>,
    writer: Option<JoinHandle<()>>,
    started: bool,
}

impl Out {
    fn stdout() -> Self {
        Self {
            buf: Vec::with_capacity(CHUNK),
            to_writer: None,
            writer: None,
            started: false,
        }
    }

    /// Starts the writer thread. Without it (none could be made), lines are written where
    /// they are made.
    fn start(&mut self) {
        self.started = true;
        let (to_writer, chunks) = sync_channel(QUEUE);
        self.writer = std::thread::Builder::new()
            .name("stdout".into())
            .spawn(move || write_chunks(chunks))
            .ok();
        self.to_writer = self.writer.as_ref().map(|_| to_writer);
    }

    /// Hands what is gathered to the writer.
    fn hand_over(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        if !self.started {
            self.start();
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        match &self.to_writer {
            Some(to_writer) => {
                let _ = to_writer.send(ToWriter::Bytes(chunk));
            }
            // A closed stdout (say, piped into `head`) must not kill the program.
            None => {
                let _ = io::stdout().write_all(&chunk);
                let _ = io::stdout().flush();
            }
        }
    }

    /// Hands over what is gathered and waits until it is written.
    fn sync(&mut self) {
        self.hand_over();
        if let Some(to_writer) = &self.to_writer {
            let (done, written) = sync_channel(1);
            if to_writer.send(ToWriter::Barrier(done)).is_ok() {
                let _ = written.recv();
            }
        }
    }
}

/// The writer thread: writes each chunk to stdout as it comes. After a failed write (a
/// closed stdout) the rest is dropped.
fn write_chunks(chunks: Receiver<ToWriter>) {
    let mut stdout = io::stdout();
    let mut open = true;
    for message in chunks {
        match message {
            ToWriter::Bytes(chunk) if open => {
                open = stdout
                    .write_all(&chunk)
                    .and_then(|()| stdout.flush())
                    .is_ok();
            }
            ToWriter::Bytes(_) => {}
            ToWriter::Barrier(done) => {
                let _ = done.send(());
            }
        }
    }
}

impl Write for Out {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= CHUNK {
            self.hand_over();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.hand_over();
        Ok(())
    }
}

impl Drop for Out {
    fn drop(&mut self) {
        self.hand_over();
        self.to_writer = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// Prints events to stdout (errors also to stderr), optionally tagged with a side label.
///
/// Lines are gathered in chunks and written by a thread of their own, not one `write(2)`
/// each by the program: under a flood of datagrams the writes would cost as much as the
/// receiving, and a reader of stdout that falls behind would stop the program from reading
/// its device. The drivers [`flush`](Self::flush) before they sleep, so a line is never held
/// back while the program waits; an error line on stderr comes after every line before it
/// is written; dropping the printer writes everything.
pub struct Printer {
    json: bool,
    /// When the printer was made, at the program's start: `t` of a JSON line counts from it.
    start: Instant,
    out: Out,
}

impl Printer {
    /// Text lines, or JSON lines when `json`.
    pub fn new(json: bool) -> Self {
        Self {
            json,
            start: Instant::now(),
            out: Out::stdout(),
        }
    }

    /// Hands what is gathered to the writer. A closed stdout (say, piped into `head`) must
    /// not kill the program, so a failure is ignored.
    pub fn flush(&mut self) {
        self.out.hand_over();
    }

    /// Prints one event of an unnamed side.
    pub fn event(&mut self, event: &Event<'_>) {
        self.event_of(None, event);
    }

    /// Prints one event, tagged with `side` when given. Errors go to stderr as one line
    /// (and, in JSON mode, to stdout as well).
    pub fn event_of(&mut self, side: Option<&str>, event: &Event<'_>) {
        let tag = side.map(|s| format!("[{s}] ")).unwrap_or_default();
        if let Event::Error { .. } = event {
            // What came before the error is printed before it.
            self.out.sync();
            eprintln!("smolsock: {tag}{event}");
            if !self.json {
                return;
            }
        }
        // A closed stdout (say, piped into `head`) must not kill the program.
        let _ = if self.json {
            let line = Line {
                event: None,
                fields: event,
                t: seconds(self.start.elapsed()),
                side,
            };
            write_line(&mut self.out, &line)
        } else {
            writeln!(self.out, "{tag}{event}")
        };
    }

    /// Prints a line that is not a program's event: `text` in text mode; in JSON mode an
    /// object with `event: kind`, the keys of `fields` (any value that serializes as a map
    /// or struct) and `t`.
    pub fn line(&mut self, kind: &str, text: &str, fields: impl Serialize) {
        let _ = if self.json {
            let line = Line {
                event: Some(kind),
                fields,
                t: seconds(self.start.elapsed()),
                side: None,
            };
            write_line(&mut self.out, &line)
        } else {
            writeln!(self.out, "{text}")
        };
    }
}

/// One JSON line: the fields (an event carries its own `event` tag), then what the host
/// adds. docs/events.md describes these keys under "Every line".
#[derive(Serialize)]
struct Line<'a, F> {
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<&'a str>,
    #[serde(flatten)]
    fields: F,
    /// Seconds since the program started.
    t: f64,
    /// The demo's side of the link.
    #[serde(skip_serializing_if = "Option::is_none")]
    side: Option<&'a str>,
}

/// `elapsed` in seconds, to the microsecond (so that `t` prints as `1.204113`, not with
/// the float's noise).
fn seconds(elapsed: Duration) -> f64 {
    elapsed.as_micros() as f64 / 1e6
}

fn write_line(out: &mut impl Write, line: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer(&mut *out, line)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddrV4;

    use serde_json::Value;
    use smolsock::Proto;

    use super::*;

    fn line(fields: impl Serialize, event: Option<&str>, side: Option<&str>) -> String {
        let mut out = Vec::new();
        let line = Line {
            event,
            fields,
            t: seconds(Duration::from_micros(1_204_113)),
            side,
        };
        write_line(&mut out, &line).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn an_event_line_is_its_record_then_t() {
        let event = Event::Sent {
            proto: Proto::Udp,
            conn: None,
            to: SocketAddrV4::new([192, 168, 69, 100].into(), 9090),
            len: 5,
        };
        assert_eq!(
            line(event, None, None),
            "{\"event\":\"sent\",\"proto\":\"udp\",\"conn\":null,\
             \"to\":\"192.168.69.100:9090\",\"len\":5,\"t\":1.204113}\n"
        );
        let demo: Value = serde_json::from_str(&line(event, None, Some("client"))).unwrap();
        assert_eq!(demo["side"], "client");
        assert_eq!(demo["event"], "sent");
    }

    #[test]
    fn other_lines_take_their_kind_first() {
        let fields = serde_json::json!({"title": "UDP"});
        assert_eq!(
            line(fields, Some("scenario"), None),
            "{\"event\":\"scenario\",\"title\":\"UDP\",\"t\":1.204113}\n"
        );
    }

    #[test]
    fn docs_describe_what_the_host_adds() {
        let doc = include_str!("../../../docs/events.md");
        for key in ["event", "t", "side"] {
            assert!(
                doc.contains(&format!("| `{key}` |")),
                "docs/events.md, \"Every line\": no row for `{key}`"
            );
        }
    }
}
