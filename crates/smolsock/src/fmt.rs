//! One logging facade for the whole core: `log` on the host, `defmt` on boards.
//!
//! The macros take a format string whose `{}` placeholders work with both back ends, so the
//! arguments must implement `core::fmt::Display` (for `log`) and `defmt::Format` (for
//! `defmt`). With neither feature the macros compile to nothing but still type-check their
//! arguments.

#![allow(unused_macros)]

#[cfg(all(feature = "log", feature = "defmt"))]
compile_error!("the features `log` and `defmt` of smolsock are mutually exclusive: enable one");

macro_rules! log_at {
    ($level:ident, $($arg:tt)+) => {{
        #[cfg(feature = "log")]
        ::log::$level!($($arg)+);
        #[cfg(feature = "defmt")]
        ::defmt::$level!($($arg)+);
        #[cfg(not(any(feature = "log", feature = "defmt")))]
        {
            let _ = ::core::format_args!($($arg)+);
        }
    }};
}

macro_rules! trace {
    ($($arg:tt)+) => { $crate::fmt::log_at!(trace, $($arg)+) };
}

macro_rules! debug {
    ($($arg:tt)+) => { $crate::fmt::log_at!(debug, $($arg)+) };
}

macro_rules! info {
    ($($arg:tt)+) => { $crate::fmt::log_at!(info, $($arg)+) };
}

#[allow(unused_imports)]
pub(crate) use {debug, info, log_at, trace};
