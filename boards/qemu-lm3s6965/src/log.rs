//! The defmt global logger: frames go to the host through semihosting `SYS_WRITE`, a
//! buffer at a time.
//!
//! defmt's encoder hands out its output one byte at a time, and a logger that writes each
//! byte as it comes (the `defmt-semihosting` crate does) makes a semihosting call, a trap
//! into QEMU and a `write(2)` on its stdout, per byte: about a hundred per log line, a
//! thousand for the line of a 1 KiB payload. The emulated tcp-server then echoed no
//! faster than it could log what it echoed (about 1 Mbit/s, QEMU busy in its semihosting
//! calls). Here the bytes gather in [`BUF`] bytes of RAM and go out in one call when it
//! is full and at the end of each frame, so every line reaches the host as soon as it is
//! logged.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use semihosting::io::{Stdout, Write};

/// Bytes gathered before a semihosting write.
pub const BUF: usize = 256;

#[defmt::global_logger]
struct Logger;

/// The encoder and the bytes it has made but not written yet.
struct Out {
    encoder: defmt::Encoder,
    stdout: Option<Stdout>,
    buf: [u8; BUF],
    len: usize,
    /// Interrupts were enabled when the logger was taken (restored when released).
    interrupts_were_on: bool,
}

/// Appends the encoder's `bytes` to `buf`, writing it out whenever it fills.
fn push(stdout: &mut Option<Stdout>, buf: &mut [u8; BUF], len: &mut usize, bytes: &[u8]) {
    for &byte in bytes {
        if *len == BUF {
            write_out(stdout, buf, len);
        }
        if let Some(slot) = buf.get_mut(*len) {
            *slot = byte;
            *len += 1;
        }
    }
}

/// Writes what `buf` holds to the host (what the host refuses is dropped, as a log line
/// with nobody to read it).
fn write_out(stdout: &mut Option<Stdout>, buf: &[u8; BUF], len: &mut usize) {
    if let (Some(out), Some(bytes)) = (stdout.as_mut(), buf.get(..*len)) {
        let _ = out.write_all(bytes);
    }
    *len = 0;
}

/// The one [`Out`], used only between `acquire` and `release`, with interrupts masked.
struct Shared(UnsafeCell<Out>);

// SAFETY: `Out` is reached only between `Logger::acquire` and `Logger::release`, which
// mask interrupts on this single-core machine and refuse to nest (TAKEN): one reference
// at a time.
unsafe impl Sync for Shared {}

static OUT: Shared = Shared(UnsafeCell::new(Out {
    encoder: defmt::Encoder::new(),
    stdout: None,
    buf: [0; BUF],
    len: 0,
    interrupts_were_on: false,
}));

static TAKEN: AtomicBool = AtomicBool::new(false);

/// The logger's state; only inside `acquire`..`release`.
///
/// # Safety
/// The caller holds the logger (TAKEN set by this core, interrupts masked) and keeps no
/// other reference from an earlier call.
unsafe fn out() -> &'static mut Out {
    // SAFETY: by this function's contract there is no other reference to OUT.
    unsafe { &mut *OUT.0.get() }
}

// SAFETY: `acquire` masks interrupts and marks the logger taken before any `write`, and
// `release` gives both back; a nested `acquire` panics instead of sharing the state.
unsafe impl defmt::Logger for Logger {
    fn acquire() {
        let primask = cortex_m::register::primask::read();
        cortex_m::interrupt::disable();
        if TAKEN.swap(true, Ordering::Acquire) {
            defmt::panic!("defmt logger taken reentrantly")
        }
        // SAFETY: taken just now, with interrupts masked: the only reference.
        let out = unsafe { out() };
        out.interrupts_were_on = primask.is_active();
        if out.stdout.is_none() {
            out.stdout = semihosting::io::stdout().ok();
        }
        let Out {
            encoder,
            stdout,
            buf,
            len,
            ..
        } = out;
        encoder.start_frame(|bytes| push(stdout, buf, len, bytes));
    }

    unsafe fn flush() {
        // SAFETY: defmt calls this only while the logger is held.
        let out = unsafe { out() };
        write_out(&mut out.stdout, &out.buf, &mut out.len);
    }

    unsafe fn release() {
        // SAFETY: defmt calls this only while the logger is held.
        let out = unsafe { out() };
        let Out {
            encoder,
            stdout,
            buf,
            len,
            interrupts_were_on,
        } = out;
        encoder.end_frame(|bytes| push(stdout, buf, len, bytes));
        write_out(stdout, buf, len);
        let enable = *interrupts_were_on;
        TAKEN.store(false, Ordering::Release);
        if enable {
            // SAFETY: interrupts were enabled when the logger was taken; the state is
            // released, so a handler that logs finds it free.
            unsafe { cortex_m::interrupt::enable() };
        }
    }

    unsafe fn write(bytes: &[u8]) {
        // SAFETY: defmt calls this only while the logger is held.
        let out = unsafe { out() };
        let Out {
            encoder,
            stdout,
            buf,
            len,
            ..
        } = out;
        encoder.write(bytes, |bytes| push(stdout, buf, len, bytes));
    }
}
