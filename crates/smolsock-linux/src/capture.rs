//! Packet capture on one interface (`AF_PACKET`).
//!
//! [`Capture::start`] opens a raw packet socket bound to one interface; a background
//! thread timestamps and stores every frame until [`Capture::stop`] (or drop). It needs
//! `CAP_NET_RAW`, which the process has inside [`netns::enter`](crate::netns::enter)'s
//! namespace.
//!
//! On a loopback interface the kernel shows every packet twice, once going out and once
//! coming in; like libpcap, only the incoming copy is kept, so each packet appears once.
//! Every frame is decoded once, as it is stored, by [`smolsock_frames::Packet::parse`]
//! (loopback frames carry an Ethernet header with zero MACs, so it reads both kinds of
//! interface).

use std::fmt;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use smolsock_frames::Packet;

use crate::packet::PacketSocket;
use crate::wait::{self, READABLE};

/// How long the reader waits for a frame before looking at the stop flag again.
const POLL_INTERVAL: smoltcp::time::Duration = smoltcp::time::Duration::from_millis(20);
/// Receive buffer: the largest IPv4 packet plus an Ethernet header, and some slack.
const FRAME_BUFFER: usize = 65_536 + 64;
/// Socket receive buffer asked for, so that bursts on loopback are not dropped.
const SOCKET_BUFFER: usize = 8 << 20;

/// Which way a frame went through the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Received by the interface (for a TAP: written by the program attached to it).
    Incoming,
    /// Sent by this host's kernel (for a TAP: to the program attached to it).
    Outgoing,
}

/// One captured frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// When the reader thread received it.
    pub time: Instant,
    /// Which way it went.
    pub direction: Direction,
    /// The frame, from the Ethernet header on (cut at 64 KiB).
    pub data: Vec<u8>,
    /// Its length on the wire, which is more than `data.len()` if it was cut.
    pub wire_len: usize,
    /// What it holds, decoded.
    pub packet: Packet,
}

/// What the capturing thread and its owner share.
struct Shared {
    socket: PacketSocket,
    frames: Mutex<Vec<Frame>>,
    stop: AtomicBool,
    error: Mutex<Option<io::Error>>,
    drops: AtomicU64,
}

/// Locks `m`, carrying on if a thread panicked while holding it (the data is a list of
/// frames, consistent at every push).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running capture on one interface.
pub struct Capture {
    interface: String,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Capture {
    /// Starts capturing every frame on `interface` (in this process's network namespace).
    ///
    /// Frames are seen from the moment this returns.
    pub fn start(interface: &str) -> io::Result<Capture> {
        let socket = PacketSocket::open(interface)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot capture: {e}")))?;
        // A bigger receive buffer: failing only makes drops likelier, and those are counted.
        let _ = socket.grow_receive_buffer(SOCKET_BUFFER);

        let shared = Arc::new(Shared {
            socket,
            frames: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            error: Mutex::new(None),
            drops: AtomicU64::new(0),
        });
        let reader = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name(format!("capture-{interface}"))
            .spawn(move || read_loop(&reader))
            .map_err(|e| annotate(e, interface, "start the capture thread"))?;
        Ok(Capture {
            interface: interface.to_owned(),
            shared,
            thread: Some(thread),
        })
    }

    /// The interface captured on.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// A copy of the frames seen so far, in order.
    pub fn frames(&self) -> Vec<Frame> {
        lock(&self.shared.frames).clone()
    }

    /// Waits until no frame has arrived for `quiet`, or until `timeout` has passed;
    /// returns whether it went quiet. Useful before [`stop`](Self::stop) when the last
    /// packets (retransmissions, a final ACK) are still to come.
    pub fn wait_quiet(&self, quiet: Duration, timeout: Duration) -> bool {
        let start = Instant::now();
        loop {
            let now = Instant::now();
            let last = lock(&self.shared.frames).last().map(|f| f.time);
            let since = last.map_or(start, |t| t.max(start));
            if now.duration_since(since) >= quiet {
                return true;
            }
            if now.duration_since(start) >= timeout {
                return false;
            }
            thread::sleep(Duration::from_millis(2).min(quiet));
        }
    }

    /// Frames the kernel dropped because the capture could not keep up, so far.
    pub fn drops(&self) -> u64 {
        if let Ok(n) = self.shared.socket.drops() {
            self.shared.drops.fetch_add(n, Ordering::Relaxed);
        }
        self.shared.drops.load(Ordering::Relaxed)
    }

    /// The error that ended the capture early, if any (taken: asked once).
    pub fn take_error(&self) -> Option<io::Error> {
        lock(&self.shared.error).take()
    }

    /// Stops the capture and returns every frame seen.
    ///
    /// Everything already queued on the socket when this is called is read first.
    pub fn stop(mut self) -> Vec<Frame> {
        self.finish();
        std::mem::take(&mut *lock(&self.shared.frames))
    }

    fn finish(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.shared.stop.store(true, Ordering::Release);
        if thread.join().is_err() {
            log::warn!("the capture thread on {} panicked", self.interface);
        }
        let drops = self.drops();
        if drops > 0 {
            log::warn!(
                "capture on {}: the kernel dropped {drops} frame(s) the capture could not keep up with",
                self.interface
            );
        }
        if let Some(e) = lock(&self.shared.error).as_ref() {
            log::warn!("capture on {} ended early: {e}", self.interface);
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.finish();
    }
}

impl fmt::Debug for Capture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Capture")
            .field("interface", &self.interface)
            .field("frames", &lock(&self.shared.frames).len())
            .finish_non_exhaustive()
    }
}

fn annotate(error: io::Error, interface: &str, step: &str) -> io::Error {
    io::Error::new(
        error.kind(),
        format!("cannot capture on '{interface}': cannot {step}: {error}"),
    )
}

/// What one non-blocking read gave.
enum Read {
    Frame(Frame),
    /// A frame not kept (the outgoing copy on loopback).
    Skipped,
    /// Nothing queued.
    Empty,
}

fn read_one(socket: &PacketSocket, buf: &mut [u8]) -> io::Result<Read> {
    loop {
        let received = socket.recv(buf);
        let time = Instant::now();
        let received = match received {
            Ok(received) => received,
            Err(error) => {
                return match error.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => Ok(Read::Empty),
                    _ => Err(error),
                };
            }
        };
        if received.outgoing && received.loopback {
            return Ok(Read::Skipped);
        }
        let data = buf.get(..received.len).unwrap_or_default().to_vec();
        return Ok(Read::Frame(Frame {
            time,
            direction: if received.outgoing {
                Direction::Outgoing
            } else {
                Direction::Incoming
            },
            packet: Packet::parse(&data),
            data,
            wire_len: received.wire_len,
        }));
    }
}

/// The capture thread: reads until told to stop, then drains what is queued and ends.
fn read_loop(shared: &Shared) {
    let mut buf = vec![0u8; FRAME_BUFFER];
    let fail = |error: io::Error| {
        lock(&shared.error).get_or_insert(error);
    };
    loop {
        // Read the flag before draining: once it is seen, everything queued by then is
        // read before the thread ends.
        let stopping = shared.stop.load(Ordering::Acquire);
        loop {
            match read_one(&shared.socket, &mut buf) {
                Ok(Read::Frame(frame)) => lock(&shared.frames).push(frame),
                Ok(Read::Skipped) => {}
                Ok(Read::Empty) => break,
                Err(error) => return fail(error),
            }
        }
        if stopping {
            return;
        }
        if let Err(error) = wait::ready(shared.socket.as_raw_fd(), READABLE, Some(POLL_INTERVAL)) {
            return fail(error);
        }
    }
}
