//! Printing events as text lines or JSON lines.

use std::io::{BufWriter, Stdout, Write};

use serde_json::{Value, json};
use smolsock::event::{CloseReason, Event, Quoted};

/// Prints events to stdout (errors also to stderr), optionally tagged with a side label.
///
/// Lines are buffered, not written one `write(2)` each: under a flood of datagrams the
/// writes would cost as much as the receiving. The drivers [`flush`](Self::flush) before
/// they sleep, so a line is never held back while the program waits; dropping the printer
/// flushes too.
pub struct Printer {
    json: bool,
    out: BufWriter<Stdout>,
}

impl Printer {
    /// Text lines, or JSON lines when `json`.
    pub fn new(json: bool) -> Self {
        Self {
            json,
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
        let out = &mut self.out;
        // A closed stdout (say, piped into `head`) must not kill the program.
        let _ = if self.json {
            let mut value = event_json(event);
            if let (Some(side), Some(map)) = (side, value.as_object_mut()) {
                map.insert("side".into(), side.into());
            }
            writeln!(out, "{value}")
        } else {
            writeln!(out, "{tag}{event}")
        };
    }

    /// Prints a free-form line (text mode) or a JSON object with `event: kind` (JSON mode).
    pub fn line(&mut self, kind: &str, text: &str, fields: Value) {
        let out = &mut self.out;
        let _ = if self.json {
            let mut value = fields;
            if let Some(map) = value.as_object_mut() {
                map.insert("event".into(), kind.into());
            }
            writeln!(out, "{value}")
        } else {
            writeln!(out, "{text}")
        };
    }
}

fn addr(a: impl ToString) -> Value {
    Value::String(a.to_string())
}

/// The JSON form of an event: `{"event": kind, ...fields}`.
pub fn event_json(event: &Event<'_>) -> Value {
    let kind = event.kind();
    match *event {
        Event::Bound {
            local,
            auto,
            max_send,
        } => {
            let mut v = json!({"event": kind, "proto": "udp", "local": addr(local), "auto": auto});
            if let Some(max) = max_send {
                v["max_send"] = json!(max);
            }
            v
        }
        Event::Listening { local, backlog } => {
            json!({"event": kind, "proto": "tcp", "local": addr(local), "backlog": backlog})
        }
        Event::Connected { conn, local, peer } => {
            json!({"event": kind, "proto": "tcp", "conn": conn, "local": addr(local), "peer": addr(peer)})
        }
        Event::Accepted { conn, peer } => {
            json!({"event": kind, "proto": "tcp", "conn": conn, "peer": addr(peer)})
        }
        Event::Sent {
            proto,
            conn,
            to,
            len,
        } => {
            json!({"event": kind, "proto": proto.as_str(), "conn": conn, "to": addr(to), "len": len})
        }
        Event::Received {
            proto,
            conn,
            from,
            data,
            size,
        } => json!({
            "event": kind,
            "proto": proto.as_str(),
            "conn": conn,
            "from": addr(from),
            "len": data.len(),
            "size": size,
            "truncated": size > data.len(),
            "text": String::from_utf8_lossy(data),
            "quoted": Quoted(data).to_string(),
        }),
        Event::AwaitingReply { conn } => json!({"event": kind, "proto": "tcp", "conn": conn}),
        Event::PeerClosed { conn, peer } => {
            json!({"event": kind, "proto": "tcp", "conn": conn, "peer": addr(peer)})
        }
        Event::Closed {
            proto,
            conn,
            totals,
        } => json!({
            "event": kind,
            "proto": proto.as_str(),
            "conn": conn,
            "bytes_in": totals.bytes_in,
            "bytes_out": totals.bytes_out,
            "messages_in": totals.messages_in,
            "crc32_in": format!("{:08x}", totals.crc_in),
            "crc32_out": format!("{:08x}", totals.crc_out),
        }),
        Event::Closing {
            conn,
            peer,
            reason,
            reset,
        } => {
            let (why, idle) = match reason {
                CloseReason::Idle { secs } => ("idle", Some(secs)),
                CloseReason::Shutdown => ("shutdown", None),
            };
            json!({"event": kind, "proto": "tcp", "conn": conn, "peer": addr(peer),
                   "reason": why, "idle_secs": idle, "reset": reset})
        }
        Event::ListenerClosed { port } => json!({"event": kind, "proto": "tcp", "port": port}),
        Event::Lost {
            count,
            total,
            cause,
        } => json!({
            "event": kind,
            "count": count,
            "unit": cause.unit(),
            "total": total,
            "cause": cause.as_str(),
        }),
        Event::Error { conn, peer, error } => json!({
            "event": kind,
            "conn": conn,
            "peer": peer.map(addr),
            "error": error.to_string(),
        }),
    }
}
