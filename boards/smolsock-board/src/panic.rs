//! Panics, logged with little of `core::fmt`: `panic-probe`'s `print-defmt` formats the
//! whole `PanicInfo`, which links the integer and location formatting of `core::fmt`.
//! [`log_panic`] sends the place as defmt values and formats only the message, into a
//! small buffer (a plain string, the usual case, is not formatted at all).
//!
//! With the `panic-handler` feature this module is also the firmware's panic handler for a
//! board under a debug probe: it logs, then stops in a HardFault (`udf`), which `probe-rs
//! run` reports with a backtrace, as `panic-probe` does; `defmt::panic!` stops there too.

use core::panic::PanicInfo;

/// The longest panic message logged; a longer one is cut.
const MESSAGE_MAX: usize = 120;

/// A panic message, formatted into a fixed buffer.
struct Message {
    bytes: [u8; MESSAGE_MAX],
    len: usize,
}

impl core::fmt::Write for Message {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = MESSAGE_MAX - self.len;
        // Whole characters only, so that the buffer stays UTF-8.
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        if let (Some(to), Some(from)) = (
            self.bytes.get_mut(self.len..self.len + take),
            s.as_bytes().get(..take),
        ) {
            to.copy_from_slice(from);
            self.len += take;
        }
        Ok(())
    }
}

/// Logs where the program panicked, and why, at error level.
pub fn log_panic(info: &PanicInfo<'_>) {
    let mut buf = Message {
        bytes: [0; MESSAGE_MAX],
        len: 0,
    };
    let message = match info.message().as_str() {
        Some(text) => text,
        None => {
            let _ = core::fmt::write(&mut buf, format_args!("{}", info.message()));
            core::str::from_utf8(buf.bytes.get(..buf.len).unwrap_or_default()).unwrap_or_default()
        }
    };
    match info.location() {
        Some(at) => defmt::error!(
            "panicked at {=str}:{=u32}:{=u32}: {=str}",
            at.file(),
            at.line(),
            at.column(),
            message
        ),
        None => defmt::error!("panicked: {=str}", message),
    }
}

#[cfg(feature = "panic-handler")]
#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    use core::sync::atomic::{AtomicBool, Ordering};
    static PANICKED: AtomicBool = AtomicBool::new(false);
    cortex_m::interrupt::disable();
    // A panic while logging one (inside the logger, say) stops without logging again.
    if !PANICKED.swap(true, Ordering::Relaxed) {
        log_panic(info);
    }
    cortex_m::asm::udf()
}

#[cfg(feature = "panic-handler")]
#[defmt::panic_handler]
fn defmt_panic() -> ! {
    // `defmt::panic!` has logged its message.
    cortex_m::asm::udf()
}
