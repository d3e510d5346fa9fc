//! Printing events as text lines or JSON lines.
//!
//! A JSON line is the event's own serialized form (`smolsock::event::Record`, described in
//! `docs/events.md`) with the host's `t` after it, and `side` in the demo.

use std::io::{self, BufWriter, Stdout, Write};
use std::time::{Duration, Instant};

use serde::Serialize;
use smolsock::event::Event;

/// Prints events to stdout (errors also to stderr), optionally tagged with a side label.
///
/// Lines are buffered, not written one `write(2)` each: under a flood of datagrams the
/// writes would cost as much as the receiving. The drivers [`flush`](Self::flush) before
/// they sleep, so a line is never held back while the program waits; dropping the printer
/// flushes too.
pub struct Printer {
    json: bool,
    /// When the printer was made, at the program's start: `t` of a JSON line counts from it.
    start: Instant,
    out: BufWriter<Stdout>,
}

impl Printer {
    /// Text lines, or JSON lines when `json`.
    pub fn new(json: bool) -> Self {
        Self {
            json,
            start: Instant::now(),
            out: BufWriter::with_capacity(64 * 1024, std::io::stdout()),
        }
    }

    /// Writes out what is buffered. A closed stdout (say, piped into `head`) must not kill
    /// the program, so a failure is ignored.
    pub fn flush(&mut self) {
        let _ = self.out.flush();
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
            self.flush();
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
