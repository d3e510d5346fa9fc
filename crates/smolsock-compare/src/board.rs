//! The third stack: smolsock's smoltcp stack on a board, the very firmware a user flashes
//! (`remote`), driven over its serial link ([`RemoteStack`]). The emulated board boots in
//! QEMU on a TAP of its own ([`BOARD_TAP`], the kernel at [`BOARD_KERNEL_IP`]), so its
//! frames and the host smoltcp stack's never mix; each scenario restarts the board's stack
//! at [`BOARD_IP`], as the host smoltcp column builds a fresh stack.
//!
//! The board moves packets by itself, on its own clock, while the host's smoltcp stack
//! moves them only when a scenario polls it: `BoardSubject::run_until` waits on the
//! board (`Wait`) instead of polling.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use smolsock::smol::{ListenPolicy, WhenFull};
use smolsock_linux::netns::Namespace;
use smolsock_remote::host::{Link, RemoteStack};
use smolsock_remote::wire::Config;

use crate::subject::Subject;

/// The board's TAP in the comparison's namespace.
pub const BOARD_TAP: &str = "tap1";
/// The kernel's address on [`BOARD_TAP`]: the board's peer.
pub const BOARD_KERNEL_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 70, 100);
/// The board's address (each scenario restarts its stack there).
pub const BOARD_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 70, 3);
/// The board's MAC address (its last byte is the address's, see `BoardLab::subject`).
const BOARD_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x03];
/// Longest wait on the board in one round of `run_until`, so the `done` check runs often.
const TICK: Duration = Duration::from_millis(20);
/// How long QEMU has to boot the firmware and answer the handshake.
const BOOT: Duration = Duration::from_secs(20);
/// How long a board on a serial device has to answer the handshake.
const SERIAL_HANDSHAKE: Duration = Duration::from_secs(5);

/// The remote firmware of the emulated board, where `cargo xtask boards` builds it.
pub const DEFAULT_FIRMWARE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../boards/qemu-lm3s6965/target/thumbv7m-none-eabi/release/remote"
);

/// Where the board runs.
#[derive(Debug, Clone)]
pub enum BoardSpec {
    /// The emulated board (`lm3s6965evb` in QEMU) running this firmware ELF.
    Qemu(PathBuf),
    /// A board running the remote firmware on a serial device, its Ethernet on this
    /// machine's own network (outside the comparison's namespace).
    Serial(SerialBoard),
}

/// A board on a serial device, and where its Ethernet meets this machine.
#[derive(Debug, Clone)]
pub struct SerialBoard {
    /// The serial device, for example `/dev/ttyACM0`.
    pub device: PathBuf,
    /// Its speed.
    pub baud: u32,
    /// This machine's interface on the board's network (captures run there).
    pub interface: String,
    /// This machine's address there: the board's peer.
    pub peer: Ipv4Addr,
    /// The address the board's stack gets, in `peer`'s subnet.
    pub ip: Ipv4Addr,
    /// Its prefix length.
    pub prefix: u8,
}

/// The board's addresses and where its frames can be captured.
#[derive(Debug, Clone)]
pub(crate) struct Site {
    /// The board's address.
    pub(crate) ip: Ipv4Addr,
    /// Its prefix length.
    pub(crate) prefix: u8,
    /// The kernel's address on the board's network.
    pub(crate) peer: Ipv4Addr,
    /// The kernel's interface on it.
    pub(crate) interface: String,
    /// Whether that network is outside the comparison's namespace (a real board).
    pub(crate) outside: bool,
}

/// Why scenario `id` cannot run on a board whose pool has `tcp_sockets`, if it cannot: the
/// board's limits, said in its cell.
pub(crate) fn cannot_run(id: &str, tcp_sockets: usize) -> Option<String> {
    match id {
        // 32 clients (the listener is the kernel's).
        "client-port" if tcp_sockets < 32 => Some(format!(
            "cannot run on the board: it needs 32 TCP sockets at once, and the board's \
             pool has {tcp_sockets}"
        )),
        "loss" => Some(
            "cannot run on the board: it needs a fault injector between the board's stack and \
             its MAC, a build-time feature the remote firmware leaves out"
                .to_string(),
        ),
        _ => None,
    }
}

/// A board, booted and past the handshake, for the whole comparison.
pub struct BoardLab {
    stack: RemoteStack,
    /// Where the board is, as the scenarios see it.
    site: Site,
    /// The emulated board, shut down when the lab is dropped.
    _qemu: Option<EmulatedBoard>,
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl BoardLab {
    /// Boots the board in `namespace` (on a TAP of its own) and opens the session; or, for
    /// a board on a serial device, opens the session.
    pub fn start(spec: &BoardSpec, namespace: &Namespace) -> Result<Self, String> {
        let firmware = match spec {
            BoardSpec::Qemu(firmware) => firmware,
            BoardSpec::Serial(board) => return Self::serial(board, namespace),
        };
        namespace
            .add_tap(BOARD_TAP, BOARD_KERNEL_IP)
            .map_err(|e| format!("cannot make the board's TAP {BOARD_TAP}: {e}"))?;
        let sink = if log::log_enabled!(log::Level::Debug) {
            qemu_run::Sink::Stderr
        } else {
            qemu_run::Sink::Discard
        };
        let (emulated, stack) = EmulatedBoard::boot(firmware, BOARD_TAP, None, sink)?;
        log::info!(
            "board: {} in QEMU, {} TCP and {} UDP sockets",
            firmware.display(),
            stack.pool_sizes().0,
            stack.pool_sizes().1
        );
        Ok(Self {
            stack,
            site: Site {
                ip: BOARD_IP,
                prefix: smolsock_linux::netns::PREFIX_LEN,
                peer: BOARD_KERNEL_IP,
                interface: BOARD_TAP.to_string(),
                outside: false,
            },
            _qemu: Some(emulated),
        })
    }

    /// The session with a board on a serial device, whose network is this machine's own.
    fn serial(board: &SerialBoard, namespace: &Namespace) -> Result<Self, String> {
        // Going back to the machine's network is root's: find out before the board.
        namespace.in_origin(|| ())?;
        let link = Link::tty(&board.device, board.baud)
            .map_err(|e| format!("cannot open {}: {e}", board.device.display()))?;
        let stack = RemoteStack::connect(link, SERIAL_HANDSHAKE)
            .map_err(|e| format!("the board on {}: {e}", board.device.display()))?;
        Ok(Self {
            stack,
            site: Site {
                ip: board.ip,
                prefix: board.prefix,
                peer: board.peer,
                interface: board.interface.clone(),
                outside: true,
            },
            _qemu: None,
        })
    }

    /// Where the board is.
    pub(crate) fn site(&self) -> &Site {
        &self.site
    }

    /// A fresh stack on the board for one scenario.
    pub fn subject(&mut self) -> Result<BoardSubject<'_>, String> {
        if let Some(failure) = self.stack.failure() {
            return Err(failure);
        }
        let seed = smolsock_linux::stack::random_seed()?;
        self.stack
            .restart(Config {
                // 02:00:00:00:00:<last byte of the address>, as the address plan has it.
                mac: [BOARD_MAC[0], 0, 0, 0, 0, self.site.ip.octets()[3]],
                ip: self.site.ip.octets(),
                prefix: self.site.prefix,
                gateway: None,
                seed,
            })
            .map_err(|e| self.detail(e))?;
        Ok(BoardSubject {
            stack: &mut self.stack,
            ip: self.site.ip,
            peer: self.site.peer,
        })
    }

    fn detail(&self, e: smolsock::Error) -> String {
        self.stack.failure().unwrap_or_else(|| e.to_string())
    }

    /// The TCP sockets of the board's pool.
    pub fn tcp_sockets(&self) -> usize {
        self.stack.pool_sizes().0
    }
}

/// The emulated board running the remote firmware in QEMU: QEMU is killed, and the
/// directory of its serial socket removed, when it is dropped.
pub struct EmulatedBoard {
    _qemu: qemu_run::Qemu,
    _dir: TempDir,
}

impl EmulatedBoard {
    /// Boots the remote firmware `elf` in QEMU on the TAP `tap` (its frames recorded to
    /// `pcap`, its log to `sink`) and opens the session with it over its UART0: the
    /// handshake, retried while QEMU boots, for at most 20 s.
    pub fn boot(
        elf: &Path,
        tap: &str,
        pcap: Option<PathBuf>,
        sink: qemu_run::Sink,
    ) -> Result<(Self, RemoteStack), String> {
        if !elf.is_file() {
            return Err(format!(
                "no remote firmware at {}: build it with `cargo xtask boards`, or give --firmware",
                elf.display()
            ));
        }
        let dir = std::env::temp_dir().join(format!("smolsock-board-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
        let dir = TempDir(dir);
        let config = qemu_run::Config {
            elf: elf.to_path_buf(),
            tap: Some(tap.to_string()),
            serial: Some(dir.0.join("uart0")),
            pcap,
            ..qemu_run::Config::default()
        };
        let mut qemu = qemu_run::Qemu::boot(&config, sink)
            .map_err(|e| format!("cannot boot the board in QEMU: {e}"))?;
        let path = qemu
            .wait_for_serial(BOOT)
            .map_err(|e| format!("the board's serial port: {e}"))?;
        let link = Link::unix(&path).map_err(|e| {
            format!(
                "cannot connect to the board's serial port {}: {e}",
                path.display()
            )
        })?;
        let stack = RemoteStack::connect(link, BOOT)
            .map_err(|e| format!("no session with the board: {e}"))?;
        let board = Self {
            _qemu: qemu,
            _dir: dir,
        };
        Ok((board, stack))
    }
}

/// The board's stack as the subject of one scenario.
pub struct BoardSubject<'r> {
    stack: &'r mut RemoteStack,
    ip: Ipv4Addr,
    peer: Ipv4Addr,
}

impl BoardSubject<'_> {
    /// What went wrong with the link, if something did.
    pub fn failure(&self) -> Option<String> {
        self.stack.failure()
    }
}

impl Subject for BoardSubject<'_> {
    type S = RemoteStack;

    fn stack(&mut self) -> &mut RemoteStack {
        self.stack
    }

    fn addr(&self) -> Ipv4Addr {
        self.ip
    }

    fn peer(&self) -> Ipv4Addr {
        self.peer
    }

    fn run_until(
        &mut self,
        limit: Duration,
        done: &mut dyn FnMut(&mut RemoteStack) -> bool,
    ) -> bool {
        let start = Instant::now();
        loop {
            if done(self.stack) {
                return true;
            }
            let elapsed = start.elapsed();
            if elapsed >= limit || self.stack.failure().is_some() {
                return false;
            }
            // The board moves the packets; the host only waits for it to say it did.
            if self.stack.wait(TICK.min(limit - elapsed)).is_err() {
                return false;
            }
        }
    }

    fn time_wait(&mut self, port: u16) -> Result<Option<Duration>, String> {
        // As on the host's smoltcp: move the board's clock forward in small steps and see
        // when the socket leaves TIME-WAIT.
        const STEP: Duration = Duration::from_millis(100);
        const CAP: Duration = Duration::from_secs(300);
        let failed = |s: &RemoteStack, e: smolsock::Error| s.failure().unwrap_or(e.to_string());
        // The board's clock runs by itself too (a call takes a few hundred microseconds,
        // more on a loaded host): the time it stayed is what was skipped plus what passed.
        let start = Instant::now();
        let mut skipped = Duration::ZERO;
        loop {
            let waited = skipped + start.elapsed();
            match self.stack.in_time_wait(port) {
                Ok(true) => {}
                Ok(false) if skipped.is_zero() => return Ok(None),
                Ok(false) => return Ok(Some(waited)),
                Err(e) => return Err(failed(self.stack, e)),
            }
            if waited >= CAP {
                return Err(format!("still in TIME-WAIT after {} s", CAP.as_secs()));
            }
            self.stack.skip(STEP).map_err(|e| failed(self.stack, e))?;
            // The board's loop runs the timers once it wakes.
            let _ = self.stack.wait(Duration::from_millis(2));
            skipped += STEP;
        }
    }

    fn reset_when_backlog_full(&mut self, on: bool) -> Result<(), String> {
        let when_full = if on { WhenFull::Reset } else { WhenFull::Drop };
        self.stack
            .set_listen_policy(ListenPolicy {
                when_full,
                ..ListenPolicy::default()
            })
            .map_err(|e| e.to_string())
    }
}
