//! The distribution's `iperf3` (Debian's package `iperf3`; `.ci/run` and `cargo xtask ci`
//! install it) as the tests run it: a child process whose output is read to its end and
//! that is killed if it outlives its bound.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::T;

/// The stock program, which the tests that use this module need installed.
pub const IPERF3: &str = "iperf3";

/// A stock `iperf3` run, killed if it outlives its bound.
pub struct Stock {
    child: Child,
    out: Option<thread::JoinHandle<String>>,
    err: Option<thread::JoinHandle<String>>,
}

impl Stock {
    /// Starts `iperf3 args`, its stdout and stderr read by threads of their own.
    pub fn spawn(args: &[&str]) -> Stock {
        let mut child = Command::new(IPERF3)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {IPERF3} ({e}): install it (Debian: apt-get install iperf3)")
            });
        let mut stdout = child.stdout.take().expect("stdout");
        let mut stderr = child.stderr.take().expect("stderr");
        let out = thread::spawn(move || {
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text);
            text
        });
        let err = thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Stock {
            child,
            out: Some(out),
            err: Some(err),
        }
    }

    /// Waits up to `timeout` for the exit; returns the status, stdout and stderr.
    pub fn finish(mut self, timeout: Duration) -> (ExitStatus, String, String) {
        let end = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for iperf3") {
                break status;
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("{IPERF3} did not exit within {timeout:?}");
            }
            thread::sleep(Duration::from_millis(20));
        };
        let text = |h: Option<thread::JoinHandle<String>>| {
            h.and_then(|h| h.join().ok()).unwrap_or_default()
        };
        let (out, err) = (text(self.out.take()), text(self.err.take()));
        (status, out, err)
    }
}

impl Drop for Stock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `iperf3 args` to its end (bounded by [`T`]).
pub fn stock(args: &[&str]) -> (ExitStatus, String, String) {
    Stock::spawn(args).finish(T)
}
