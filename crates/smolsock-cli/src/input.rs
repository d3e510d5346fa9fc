//! Messages for the programs: command-line arguments, or lines read from stdin without
//! blocking the poll loop.

use std::collections::VecDeque;
use std::os::fd::RawFd;

use smolsock::runner::Feed;
use smolsock::{Program, Stack};

/// Longest line kept whole: more than any program's message buffer (UDP's 65507 bytes).
const MAX_LINE: usize = 64 * 1024;

/// A queue of messages and, for stdin, the descriptor to wait on for more.
pub struct LineInput {
    fd: Option<RawFd>,
    partial: Vec<u8>,
    lines: VecDeque<Vec<u8>>,
    eof: bool,
    ended: bool,
}

impl LineInput {
    /// No input at all.
    pub fn none() -> Self {
        Self::messages(Vec::new())
    }

    /// Fixed messages (one per command-line argument).
    pub fn messages(messages: Vec<String>) -> Self {
        Self {
            fd: None,
            partial: Vec::new(),
            lines: messages.into_iter().map(String::into_bytes).collect(),
            eof: true,
            ended: false,
        }
    }

    /// Lines typed on (or piped into) stdin.
    pub fn stdin() -> Self {
        Self {
            fd: Some(libc::STDIN_FILENO),
            partial: Vec::new(),
            lines: VecDeque::new(),
            eof: false,
            ended: false,
        }
    }

    /// The descriptor to wait on, while more input may come and none is queued.
    pub fn wait_fd(&self) -> Option<RawFd> {
        if self.eof || !self.lines.is_empty() {
            None
        } else {
            self.fd
        }
    }

    /// Takes the next message.
    pub fn pop(&mut self) -> Option<Vec<u8>> {
        self.lines.pop_front()
    }

    /// Whether every message has been taken and no more will come.
    pub fn exhausted(&self) -> bool {
        self.eof && self.lines.is_empty()
    }

    /// Reads what stdin has (call only when it is readable: one `read`, so it cannot block).
    pub fn read_available(&mut self) {
        let Some(fd) = self.fd else {
            return;
        };
        let mut chunk = [0u8; 4096];
        // SAFETY: reads at most `chunk.len()` bytes into a local buffer.
        let n = unsafe { libc::read(fd, chunk.as_mut_ptr().cast(), chunk.len()) };
        match usize::try_from(n) {
            Ok(0) => {
                self.eof = true;
                if !self.partial.is_empty() {
                    self.lines.push_back(std::mem::take(&mut self.partial));
                }
            }
            Ok(n) => self.push_bytes(chunk.get(..n).unwrap_or_default()),
            Err(_) => {
                let error = std::io::Error::last_os_error();
                if error.kind() != std::io::ErrorKind::Interrupted
                    && error.kind() != std::io::ErrorKind::WouldBlock
                {
                    log::warn!("stdin: {error}; no more input");
                    self.eof = true;
                }
            }
        }
    }

    fn push_bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                let mut line = std::mem::take(&mut self.partial);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.lines.push_back(line);
            } else {
                self.partial.push(b);
                if self.partial.len() > MAX_LINE {
                    // No program takes a message this long: hand it over now, to be
                    // refused with a clear error, rather than buffer endless input.
                    self.lines.push_back(std::mem::take(&mut self.partial));
                }
            }
        }
    }
}

impl Feed for LineInput {
    fn feed<S: Stack>(&mut self, program: &mut dyn Program<S>) -> smolsock::Result<bool> {
        let mut fed = false;
        while program.wants_input() {
            let Some(line) = self.pop() else { break };
            program.input(&line)?;
            fed = true;
        }
        if !self.ended && self.exhausted() {
            program.end_input();
            self.ended = true;
            fed = true;
        }
        Ok(fed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_strips_carriage_returns() {
        let mut input = LineInput::stdin();
        input.push_bytes(b"one\r\ntwo\nthr");
        input.push_bytes(b"ee\n");
        assert_eq!(input.pop().as_deref(), Some(&b"one"[..]));
        assert_eq!(input.pop().as_deref(), Some(&b"two"[..]));
        assert_eq!(input.pop().as_deref(), Some(&b"three"[..]));
        assert_eq!(input.pop(), None);
        assert!(!input.exhausted());
    }

    #[test]
    fn endless_line_is_handed_over_not_buffered() {
        let mut input = LineInput::stdin();
        input.push_bytes(&vec![b'x'; 3 * MAX_LINE]);
        let first = input.pop().expect("an overlong line is handed over");
        assert!(first.len() > MAX_LINE && first.len() <= MAX_LINE + 1);
        assert!(input.partial.len() < MAX_LINE);
    }
}
