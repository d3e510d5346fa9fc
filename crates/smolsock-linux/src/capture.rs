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

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use smolsock_frames::Packet;

/// How long the reader waits in `poll(2)` before looking at the stop flag again.
const POLL_INTERVAL_MS: libc::c_int = 20;
/// Receive buffer: the largest IPv4 packet plus an Ethernet header, and some slack.
const FRAME_BUFFER: usize = 65_536 + 64;
/// Socket receive buffer asked for, so that bursts on loopback are not dropped.
const SOCKET_BUFFER: libc::c_int = 8 << 20;

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
    fd: OwnedFd,
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
        let name = CString::new(interface).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("interface name {interface:?} contains a NUL byte"),
            )
        })?;
        // SAFETY: `name` is a valid NUL-terminated string.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if index == 0 {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "cannot capture on '{interface}': no such interface in this network namespace"
                ),
            ));
        }
        let index = libc::c_int::try_from(index).map_err(io::Error::other)?;

        // Protocol 0: the socket receives nothing until it is bound to the interface
        // below, so no frame from another interface can slip in.
        // SAFETY: a plain socket call; the descriptor is owned right away.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if raw < 0 {
            let error = io::Error::last_os_error();
            return Err(if error.raw_os_error() == Some(libc::EPERM) {
                io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "cannot capture on '{interface}': a packet socket needs CAP_NET_RAW \
                         (capture inside netns::enter's namespace, or run as root)"
                    ),
                )
            } else {
                annotate(error, interface, "open a packet socket")
            });
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        // A bigger receive buffer; SO_RCVBUFFORCE passes the system limit when allowed.
        // Either failing only makes drops likelier, and those are counted.
        if setsockopt_int(&fd, libc::SO_RCVBUFFORCE, SOCKET_BUFFER).is_err() {
            let _ = setsockopt_int(&fd, libc::SO_RCVBUF, SOCKET_BUFFER);
        }

        // SAFETY: `sockaddr_ll` is plain old data; all zeroes is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as libc::c_ushort;
        addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        addr.sll_ifindex = index;
        // SAFETY: `addr` is a valid `sockaddr_ll` of the length given, alive for the call.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                std::ptr::from_ref(&addr).cast(),
                socklen_of::<libc::sockaddr_ll>(),
            )
        };
        if rc < 0 {
            return Err(annotate(
                io::Error::last_os_error(),
                interface,
                "bind the packet socket",
            ));
        }

        let shared = Arc::new(Shared {
            fd,
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
        if let Some(n) = packet_drops(self.shared.fd.as_raw_fd()) {
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

fn socklen_of<T>() -> libc::socklen_t {
    // Socket address and option structs are a few dozen bytes.
    libc::socklen_t::try_from(std::mem::size_of::<T>()).unwrap_or(libc::socklen_t::MAX)
}

fn setsockopt_int(fd: &OwnedFd, option: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: passes one `c_int`, alive for the call, with its size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            std::ptr::from_ref(&value).cast(),
            socklen_of::<libc::c_int>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Drops since the last call (the kernel resets its counters when read).
fn packet_drops(fd: RawFd) -> Option<u64> {
    let mut stats = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = socklen_of::<libc::tpacket_stats>();
    // SAFETY: the kernel writes at most `len` bytes into `stats`, alive for the call.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            std::ptr::from_mut(&mut stats).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(u64::from(stats.tp_drops))
}

/// What one non-blocking read gave.
enum Read {
    Frame(Frame),
    /// A frame not kept (the outgoing copy on loopback).
    Skipped,
    /// Nothing queued.
    Empty,
}

fn read_one(fd: RawFd, buf: &mut [u8]) -> io::Result<Read> {
    loop {
        // SAFETY: `sockaddr_ll` is plain old data; all zeroes is a valid value.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut from_len = socklen_of::<libc::sockaddr_ll>();
        // SAFETY: the kernel writes at most `buf.len()` bytes into `buf` and at most
        // `from_len` bytes into `from`, both alive for the call. With MSG_TRUNC the
        // return value is the frame's full length, which may exceed `buf.len()`.
        let n = unsafe {
            libc::recvfrom(
                fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_TRUNC | libc::MSG_DONTWAIT,
                std::ptr::from_mut(&mut from).cast(),
                &mut from_len,
            )
        };
        let time = Instant::now();
        if n < 0 {
            let error = io::Error::last_os_error();
            return match error.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => Ok(Read::Empty),
                _ => Err(error),
            };
        }
        let wire_len = usize::try_from(n).unwrap_or(0);
        let outgoing = from.sll_pkttype == libc::PACKET_OUTGOING;
        if outgoing && from.sll_hatype == libc::ARPHRD_LOOPBACK {
            return Ok(Read::Skipped);
        }
        let data = buf
            .get(..wire_len.min(buf.len()))
            .unwrap_or_default()
            .to_vec();
        return Ok(Read::Frame(Frame {
            time,
            direction: if outgoing {
                Direction::Outgoing
            } else {
                Direction::Incoming
            },
            packet: Packet::parse(&data),
            data,
            wire_len,
        }));
    }
}

/// The capture thread: reads until told to stop, then drains what is queued and ends.
fn read_loop(shared: &Shared) {
    let fd = shared.fd.as_raw_fd();
    let mut buf = vec![0u8; FRAME_BUFFER];
    let fail = |error: io::Error| {
        lock(&shared.error).get_or_insert(error);
    };
    loop {
        // Read the flag before draining: once it is seen, everything queued by then is
        // read before the thread ends.
        let stopping = shared.stop.load(Ordering::Acquire);
        loop {
            match read_one(fd, &mut buf) {
                Ok(Read::Frame(frame)) => lock(&shared.frames).push(frame),
                Ok(Read::Skipped) => {}
                Ok(Read::Empty) => break,
                Err(error) => return fail(error),
            }
        }
        if stopping {
            return;
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one `pollfd`, alive for the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, POLL_INTERVAL_MS) };
        if rc < 0 {
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return fail(error);
            }
        }
    }
}
