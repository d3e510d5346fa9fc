//! The one error type of the socket layer and the programs.

use core::fmt;

/// What went wrong, as a value: nothing in the core panics on input from the network or the
/// user.
///
/// [`Error::WouldBlock`] is the non-blocking "try again later" of BSD sockets (`EAGAIN`): a
/// program sees it as "nothing to do now", never as a failure.
///
/// With the `defmt` feature, `defmt::Format` writes the same text as `Display`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The operation cannot make progress now; poll again later.
    WouldBlock,
    /// Every socket of the pool is in use.
    NoFreeSocket,
    /// Every listener slot of the stack is in use.
    NoFreeListener,
    /// Every ephemeral port is in use.
    NoEphemeralPort,
    /// The local port is already bound or listened on.
    AddrInUse {
        /// The port asked for.
        port: u16,
    },
    /// Port 0 was given where a real port is needed.
    InvalidPort,
    /// The address cannot be used as a destination (unspecified, port 0, no route).
    Unaddressable,
    /// The peer answered the connection request with a reset: nobody listens there.
    ConnectionRefused,
    /// The peer reset an established connection.
    ConnectionReset,
    /// The connection or the operation timed out.
    TimedOut,
    /// The socket is not connected (or its sending side was already shut down).
    NotConnected,
    /// A message does not fit in the buffers: it was refused, not cut.
    MessageTooLarge {
        /// Size of the message.
        len: usize,
        /// The largest size that fits.
        max: usize,
    },
    /// The program takes no more input (it has finished or failed).
    InputClosed,
    /// An interactive reply arrived while no client was waiting for one.
    NobodyWaiting,
    /// The stack was set up with values it cannot use; the text says which.
    InvalidConfig(&'static str),
    /// The operating system refused: a port below 1024 without the privilege to bind it,
    /// or a broadcast address without permission to send there.
    PermissionDenied,
    /// Another operating-system error, by its `errno` (the kernel stack only).
    Os(i32),
    /// A socket handle was used after the call that closed it: its socket may already
    /// serve another connection, which the handle never reaches.
    StaleHandle,
    /// The peer broke the iperf3 control protocol (an unknown message, a length it does not
    /// keep, parameters that are not JSON); the text says how.
    Protocol(&'static str),
    /// An iperf3 test asked for what this implementation does not do (UDP, bidirectional
    /// tests, more parallel streams than it has room for); the text says what.
    Unsupported(&'static str),
    /// The iperf3 server is running another test and turned this one away (ACCESS_DENIED).
    AccessDenied,
    /// The iperf3 peer ended the test with an error (SERVER_ERROR): iperf3's own error
    /// number and the operating system's `errno` it sent.
    PeerError {
        /// iperf3's error number (`i_errno`).
        code: i32,
        /// The `errno` that came with it (0: none).
        errno: i32,
    },
    /// The iperf3 peer ended the test early (it was interrupted: SERVER_TERMINATE or
    /// CLIENT_TERMINATE).
    PeerTerminated,
    /// The link to a remote stack (a board answering the socket calls over a serial line)
    /// failed: the board did not answer in time, answered garbage, reset, or speaks another
    /// protocol version; the text says which. What the board's sockets did is unknown from
    /// then on.
    Remote(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::WouldBlock => f.write_str("operation would block"),
            Error::NoFreeSocket => f.write_str("no free socket in the pool"),
            Error::NoFreeListener => f.write_str("no free listener slot"),
            Error::NoEphemeralPort => f.write_str("no free ephemeral port"),
            Error::AddrInUse { port } => write!(f, "port {port} is already in use"),
            Error::InvalidPort => f.write_str("port 0 is not a valid port here"),
            Error::Unaddressable => {
                f.write_str("address is not reachable (unspecified address, port 0 or no route)")
            }
            Error::ConnectionRefused => f.write_str("connection refused"),
            Error::ConnectionReset => f.write_str("connection reset by peer"),
            Error::TimedOut => f.write_str("timed out"),
            Error::NotConnected => f.write_str("socket is not connected"),
            Error::MessageTooLarge { len, max } => {
                write!(
                    f,
                    "message of {len} bytes is larger than the {max} bytes that fit"
                )
            }
            Error::InputClosed => f.write_str("the program takes no more input"),
            Error::NobodyWaiting => f.write_str("no client is waiting for a reply"),
            Error::InvalidConfig(what) => write!(f, "invalid configuration: {what}"),
            Error::PermissionDenied => {
                f.write_str("permission denied (ports below 1024 need privileges)")
            }
            Error::Os(errno) => write!(f, "operating system error {errno}"),
            Error::StaleHandle => f.write_str(
                "stale socket handle: its socket was closed (and may serve another connection now)",
            ),
            Error::Protocol(what) => write!(f, "iperf3 protocol error: {what}"),
            Error::Unsupported(what) => write!(f, "not supported: {what}"),
            Error::AccessDenied => {
                f.write_str("the iperf3 server is busy running a test (access denied)")
            }
            Error::PeerError { code, errno } => {
                write!(f, "the iperf3 peer failed with its error {code}")?;
                if let Some(text) = iperf3_error_text(*code) {
                    write!(f, " ({text})")?;
                }
                if *errno != 0 {
                    write!(f, ", errno {errno}")?;
                }
                Ok(())
            }
            Error::PeerTerminated => f.write_str("the iperf3 peer ended the test early"),
            Error::Remote(what) => write!(f, "remote stack: {what}"),
        }
    }
}

/// The `Display` text, put together by the host's defmt decoder (no `core::fmt` on a board;
/// `smolsock::event::EXAMPLES` carries every variant for the test that compares the two).
#[cfg(feature = "defmt")]
impl defmt::Format for Error {
    fn format(&self, f: defmt::Formatter<'_>) {
        use defmt::write;
        match *self {
            Error::WouldBlock => write!(f, "operation would block"),
            Error::NoFreeSocket => write!(f, "no free socket in the pool"),
            Error::NoFreeListener => write!(f, "no free listener slot"),
            Error::NoEphemeralPort => write!(f, "no free ephemeral port"),
            Error::AddrInUse { port } => write!(f, "port {=u16} is already in use", port),
            Error::InvalidPort => write!(f, "port 0 is not a valid port here"),
            Error::Unaddressable => write!(
                f,
                "address is not reachable (unspecified address, port 0 or no route)"
            ),
            Error::ConnectionRefused => write!(f, "connection refused"),
            Error::ConnectionReset => write!(f, "connection reset by peer"),
            Error::TimedOut => write!(f, "timed out"),
            Error::NotConnected => write!(f, "socket is not connected"),
            Error::MessageTooLarge { len, max } => write!(
                f,
                "message of {=usize} bytes is larger than the {=usize} bytes that fit",
                len, max
            ),
            Error::InputClosed => write!(f, "the program takes no more input"),
            Error::NobodyWaiting => write!(f, "no client is waiting for a reply"),
            Error::InvalidConfig(what) => write!(f, "invalid configuration: {=str}", what),
            Error::PermissionDenied => {
                write!(f, "permission denied (ports below 1024 need privileges)")
            }
            Error::Os(errno) => write!(f, "operating system error {=i32}", errno),
            Error::StaleHandle => write!(
                f,
                "stale socket handle: its socket was closed (and may serve another connection now)"
            ),
            Error::Protocol(what) => write!(f, "iperf3 protocol error: {=str}", what),
            Error::Unsupported(what) => write!(f, "not supported: {=str}", what),
            Error::AccessDenied => write!(
                f,
                "the iperf3 server is busy running a test (access denied)"
            ),
            Error::PeerError { code, errno } => {
                write!(f, "the iperf3 peer failed with its error {=i32}", code);
                if let Some(text) = iperf3_error_text(code) {
                    write!(f, " ({=str})", text);
                }
                if errno != 0 {
                    write!(f, ", errno {=i32}", errno);
                }
            }
            Error::PeerTerminated => write!(f, "the iperf3 peer ended the test early"),
            Error::Remote(what) => write!(f, "remote stack: {=str}", what),
        }
    }
}

impl core::error::Error for Error {}

/// What a few of iperf3's error numbers mean: the ones a server sends with SERVER_ERROR
/// when it refuses a test's parameters.
fn iperf3_error_text(code: i32) -> Option<&'static str> {
    Some(match code {
        6 => "too many parallel streams",
        13 => "not implemented",
        114 => "cannot receive the parameters",
        131 => "protocol not supported",
        142 => "test authorization failed",
        _ => return None,
    })
}

/// Result of socket-layer and program operations.
pub type Result<T> = core::result::Result<T, Error>;
