//! Waiting without a busy loop, in one `ppoll(2)`: a [`Waiter`] sleeps on a set of
//! descriptors (a device, an input, a wake-up pipe; the kernel stack's armed sockets)
//! until one is ready or a deadline passes, and [`ready`] waits on a single descriptor.

use std::io;
use std::os::fd::RawFd;

use smoltcp::time::Duration;

/// Wait until the descriptor has data to read (or reached its end, or failed).
pub const READABLE: i16 = libc::POLLIN;
/// Wait until the descriptor can take data (or a pending connect ended).
pub const WRITABLE: i16 = libc::POLLOUT;

/// Where a descriptor sits in a [`Waiter`]'s set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token(usize);

/// A set of descriptors to sleep on together. The set is built anew before each wait
/// ([`clear`](Self::clear), [`add`](Self::add)) in storage kept from round to round, so
/// a loop that waits once per round allocates nothing once warmed up.
#[derive(Debug, Default)]
pub struct Waiter {
    fds: Vec<libc::pollfd>,
}

impl Waiter {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Empties the set, keeping its storage.
    pub fn clear(&mut self) {
        self.fds.clear();
    }

    /// Adds `fd`, to wait for `events` ([`READABLE`], [`WRITABLE`] or both).
    pub fn add(&mut self, fd: RawFd, events: i16) -> Token {
        self.fds.push(libc::pollfd {
            fd,
            events,
            revents: 0,
        });
        Token(self.fds.len() - 1)
    }

    /// Sleeps until a descriptor of the set is ready or `timeout` passes (`None`: no
    /// limit). A signal that interrupts the wait ends it with nothing ready.
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        ppoll(&mut self.fds, timeout).map(|_| ())
    }

    /// Whether the last wait found the descriptor of `token` ready (for what was asked,
    /// or at its end, or failed: the next operation on it tells which).
    pub fn fired(&self, token: Token) -> bool {
        self.fds.get(token.0).is_some_and(|p| p.revents != 0)
    }

    /// [`fired`](Self::fired) for every descriptor, in the order they were added.
    pub fn fired_all(&self) -> impl Iterator<Item = bool> + '_ {
        self.fds.iter().map(|p| p.revents != 0)
    }
}

/// Waits until `fd` is ready for `events` or `timeout` passes; returns whether it is.
/// Allocation-free.
pub fn ready(fd: RawFd, events: i16, timeout: Option<Duration>) -> io::Result<bool> {
    let mut fds = [libc::pollfd {
        fd,
        events,
        revents: 0,
    }];
    Ok(ppoll(&mut fds, timeout)? > 0 && fds.iter().any(|p| p.revents != 0))
}

/// The `ppoll(2)` behind every wait: how many descriptors are ready (0 when `timeout`
/// passed or a signal came).
fn ppoll(fds: &mut [libc::pollfd], timeout: Option<Duration>) -> io::Result<usize> {
    let count = libc::nfds_t::try_from(fds.len()).map_err(io::Error::other)?;
    let timeout = timeout.map(timespec);
    let timeout_ptr = timeout
        .as_ref()
        .map_or(std::ptr::null(), std::ptr::from_ref);
    // SAFETY: `fds` holds `count` entries and, like `timeout`, outlives the call; a null
    // signal mask leaves the mask alone. The kernel writes only the `revents` fields.
    let rc = unsafe { libc::ppoll(fds.as_mut_ptr(), count, timeout_ptr, std::ptr::null()) };
    match usize::try_from(rc) {
        Ok(ready) => Ok(ready),
        Err(_) => {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                fds.iter_mut().for_each(|p| p.revents = 0);
                Ok(0)
            } else {
                Err(error)
            }
        }
    }
}

/// A `ppoll(2)` timeout.
fn timespec(d: Duration) -> libc::timespec {
    let micros = d.total_micros();
    libc::timespec {
        tv_sec: libc::time_t::try_from(micros / 1_000_000).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::try_from((micros % 1_000_000) * 1000).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_waiter_tells_which_descriptor_is_ready() {
        let (mut a_in, a_out) = UnixStream::pair().unwrap();
        let (_b_in, b_out) = UnixStream::pair().unwrap();
        let mut waiter = Waiter::new();
        let a = waiter.add(a_out.as_raw_fd(), READABLE);
        let b = waiter.add(b_out.as_raw_fd(), READABLE);
        waiter.wait(Some(Duration::ZERO)).unwrap();
        assert!(!waiter.fired(a) && !waiter.fired(b));

        a_in.write_all(b"x").unwrap();
        waiter.wait(None).unwrap();
        assert!(waiter.fired(a));
        assert!(!waiter.fired(b));
        assert_eq!(waiter.fired_all().collect::<Vec<_>>(), [true, false]);

        // A new round forgets the old set.
        waiter.clear();
        let b = waiter.add(b_out.as_raw_fd(), WRITABLE);
        waiter.wait(None).unwrap();
        assert!(waiter.fired(b));
        assert!(!waiter.fired(Token(1)));
    }

    #[test]
    fn one_descriptor() {
        let (mut tx, rx) = UnixStream::pair().unwrap();
        let fd = rx.as_raw_fd();
        assert!(!ready(fd, READABLE, Some(Duration::from_millis(1))).unwrap());
        tx.write_all(b"x").unwrap();
        assert!(ready(fd, READABLE, None).unwrap());
        // A negative descriptor is ignored: only the timeout ends the wait.
        assert!(!ready(-1, READABLE, Some(Duration::ZERO)).unwrap());
    }

    #[test]
    fn timeouts_split_into_seconds_and_nanoseconds() {
        let ts = timespec(Duration::from_micros(2_500_001));
        assert_eq!((ts.tv_sec, ts.tv_nsec), (2, 500_001_000));
    }
}
