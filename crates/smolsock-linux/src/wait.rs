//! Waiting without a busy loop: `ppoll(2)` on a device, an input and a wake-up descriptor
//! until one is readable or a deadline passes.

use std::io;
use std::os::fd::RawFd;

use smoltcp::time::Duration;

/// What [`wait_readable`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    /// The device has a frame (or an error to report).
    pub device: bool,
    /// The input descriptor has data or reached its end.
    pub input: bool,
}

/// A `ppoll(2)` timeout.
pub fn timespec(d: Duration) -> libc::timespec {
    let micros = d.total_micros();
    libc::timespec {
        tv_sec: libc::time_t::try_from(micros / 1_000_000).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::try_from((micros % 1_000_000) * 1000).unwrap_or(0),
    }
}

/// Waits until the device or `input` (when given) is readable, or `timeout` passes
/// (`None`: no limit). Allocation-free: it runs once per loop iteration.
pub fn wait_readable(
    device: RawFd,
    input: Option<RawFd>,
    timeout: Option<Duration>,
) -> io::Result<Ready> {
    wait_readable_or(device, input, None, timeout)
}

/// [`wait_readable`], also woken when `also` (a signal's self-pipe) is readable.
pub fn wait_readable_or(
    device: RawFd,
    input: Option<RawFd>,
    also: Option<RawFd>,
    timeout: Option<Duration>,
) -> io::Result<Ready> {
    let entry = |fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // A negative descriptor is ignored by ppoll(2).
    let mut fds = [
        entry(device),
        entry(input.unwrap_or(-1)),
        entry(also.unwrap_or(-1)),
    ];
    let count: libc::nfds_t = 3;
    let ts = timeout.map(timespec);
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `fds` (at least `count` entries) and `ts` outlive the call.
    let rc = unsafe { libc::ppoll(fds.as_mut_ptr(), count, ts_ptr, std::ptr::null()) };
    if rc < 0 {
        let error = io::Error::last_os_error();
        if error.kind() == io::ErrorKind::Interrupted {
            return Ok(Ready {
                device: false,
                input: false,
            });
        }
        return Err(error);
    }
    let readable =
        |p: &libc::pollfd| p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0;
    Ok(Ready {
        device: readable(&fds[0]),
        input: input.is_some() && readable(&fds[1]),
    })
}
