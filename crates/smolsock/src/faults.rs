//! Faults on demand: a seeded fault injector in front of any smoltcp [`Device`].
//!
//! [`FaultInjector`] holds the state (configuration, random generator, frames held back,
//! counters); [`FaultInjector::wrap`] puts it in front of a device and gives a [`Faulty`]
//! device to hand to the stack. The state outlives the wrapper, so a device that is itself
//! borrowed anew for every poll (an end of the in-memory [`Link`](crate::link::Link)) can
//! be wrapped on each poll with the same injector.
//!
//! Each direction (rx: frames from the device to the stack; tx: from the stack to the
//! device) has its own [`Impairments`]:
//!
//! - **loss**: the frame is dropped;
//! - **corrupt**: one bit of the frame is flipped (a single flipped bit is always caught by
//!   the IPv4, TCP and UDP checksums; an ARP frame has none, as on a real wire);
//! - **dup**: a copy of the frame follows it;
//! - **reorder**: the frame is held back until one to three later frames have passed it
//!   (or [`REORDER_HOLD`] has gone by with none);
//! - **delay** and **jitter**: the frame is held for `delay` plus a uniformly drawn part of
//!   `jitter` (so jitter reorders too, as on a real path);
//! - **rate**: the direction carries at most `rate` bits per second; frames wait their
//!   turn, like at a bottleneck link.
//!
//! Held frames sit in a fixed-size queue of `Q` frames per direction; a frame that finds the
//! queue full is dropped and counted as `overflowed`, like a router's tail drop.
//! [`FaultInjector::next_release`] says when the next held frame is due, so a driver can
//! wake for it (smoltcp's own `poll_delay` does not know about held frames).
//!
//! Probabilities are integer parts per million ([`Ppm`]), so no floating point is needed
//! on a Cortex-M. The random generator is a seeded xorshift64*: small, fast, and the same
//! sequence on every target for the same seed, which is what makes a failing chaos run
//! repeatable. It is not, and need not be, cryptographic (smoltcp's own fault injector uses
//! an xorshift for the same reason; no crate is pulled in for eight lines).
//!
//! [`FaultConfig::parse`] reads a specification such as
//! `loss=5%,dup=1%,reorder=2%,corrupt=0.1%,delay=10ms,jitter=5ms,rate=10mbit,seed=7`; a key
//! applies to both directions unless prefixed with `rx.` or `tx.` (`tx.loss=1%`).
//!
//! A frame larger than [`FRAME_MAX`] is never held: the wrapper caps the MTU it reports at
//! that size, so the stack sends nothing larger, and a larger received frame passes
//! through untouched.

use heapless::Vec;
use smoltcp::phy::{self, Device, DeviceCapabilities};
use smoltcp::time::{Duration, Instant};

use crate::error::{Error, Result};
pub use crate::link::{FRAME_MAX, Frame};

/// A probability in parts per million: 0 never, [`PPM_MAX`] always; 1 % is 10,000.
pub type Ppm = u32;

/// A probability of one: every frame.
pub const PPM_MAX: Ppm = 1_000_000;

/// Longest time a reordered frame waits for later frames to pass it.
pub const REORDER_HOLD: Duration = Duration::from_millis(10);

/// Longest delay or jitter [`FaultConfig::parse`] accepts.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// What happens to the frames of one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Impairments {
    /// Chance that a frame is dropped.
    pub loss: Ppm,
    /// Chance that a frame is sent twice.
    pub dup: Ppm,
    /// Chance that a frame is held back until later frames have passed it.
    pub reorder: Ppm,
    /// Chance that one bit of a frame is flipped.
    pub corrupt: Ppm,
    /// Time every frame is held.
    pub delay: Duration,
    /// Up to this much more, drawn per frame.
    pub jitter: Duration,
    /// Bits per second the direction carries; 0 for no limit.
    pub rate: u64,
}

impl Impairments {
    /// No faults at all.
    pub const NONE: Self = Self {
        loss: 0,
        dup: 0,
        reorder: 0,
        corrupt: 0,
        delay: Duration::ZERO,
        jitter: Duration::ZERO,
        rate: 0,
    };

    /// Whether frames pass untouched.
    pub fn is_none(&self) -> bool {
        *self == Self::default()
    }
}

/// The faults of both directions and the seed of their random choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FaultConfig {
    /// Frames from the device to the stack.
    pub rx: Impairments,
    /// Frames from the stack to the device.
    pub tx: Impairments,
    /// Seed of the random choices: the same seed and the same frames give the same faults.
    pub seed: u64,
}

const KEYS: &str = "faults: unknown key (known: loss, dup, reorder, corrupt, delay, jitter, \
                    rate, seed; rx. or tx. before a key limits it to one direction)";

impl FaultConfig {
    /// Reads a comma-separated list of `KEY=VALUE` items:
    ///
    /// | key | value | example |
    /// |---|---|---|
    /// | `loss`, `dup`, `reorder`, `corrupt` | a percentage, up to 4 decimals | `loss=0.5%` |
    /// | `delay`, `jitter` | a time in `us`, `ms` or `s`, at most 60 s | `delay=10ms` |
    /// | `rate` | bits per second in `bit`, `kbit`, `mbit` or `gbit` | `rate=10mbit` |
    /// | `seed` | a whole number (default 0) | `seed=7` |
    ///
    /// Every key but `seed` applies to both directions, or to one with an `rx.` or `tx.`
    /// prefix. A later item overrides an earlier one. Errors say what is wrong.
    pub fn parse(spec: &str) -> Result<Self> {
        let mut config = FaultConfig::default();
        if spec.trim().is_empty() {
            return Err(Error::InvalidConfig(
                "faults: empty specification (for example loss=5%,seed=7)",
            ));
        }
        for item in spec.split(',') {
            config.apply(item.trim())?;
        }
        Ok(config)
    }

    /// Applies one `KEY=VALUE` item of [`FaultConfig::parse`]'s syntax.
    pub fn apply(&mut self, item: &str) -> Result<()> {
        let Some((key, value)) = item.split_once('=') else {
            return Err(Error::InvalidConfig(
                "faults: each item is KEY=VALUE (for example loss=5%)",
            ));
        };
        let (key, value) = (key.trim(), value.trim());
        if key == "seed" {
            self.seed = value.parse().map_err(|_| {
                Error::InvalidConfig("faults: the seed is a whole number from 0 to 2^64-1")
            })?;
            return Ok(());
        }
        let (rx, tx, key) = if let Some(key) = key.strip_prefix("rx.") {
            (true, false, key)
        } else if let Some(key) = key.strip_prefix("tx.") {
            (false, true, key)
        } else {
            (true, true, key)
        };
        let set: fn(&mut Impairments, u64) = match key {
            "loss" => |i, v| i.loss = v as Ppm,
            "dup" => |i, v| i.dup = v as Ppm,
            "reorder" => |i, v| i.reorder = v as Ppm,
            "corrupt" => |i, v| i.corrupt = v as Ppm,
            "delay" => |i, v| i.delay = Duration::from_micros(v),
            "jitter" => |i, v| i.jitter = Duration::from_micros(v),
            "rate" => |i, v| i.rate = v,
            "seed" => return Err(Error::InvalidConfig("faults: seed takes no rx. or tx.")),
            _ => return Err(Error::InvalidConfig(KEYS)),
        };
        let value = match key {
            "delay" | "jitter" => parse_time(value)?,
            "rate" => parse_rate(value)?,
            _ => u64::from(parse_percent(value)?),
        };
        if rx {
            set(&mut self.rx, value);
        }
        if tx {
            set(&mut self.tx, value);
        }
        Ok(())
    }

    /// Whether no frame is touched in either direction.
    pub fn is_none(&self) -> bool {
        self.rx.is_none() && self.tx.is_none()
    }
}

/// `digits[.digits]` scaled by `10^decimals`; `None` for anything else, more decimals
/// than that, or overflow.
fn fixed(text: &str, decimals: u32) -> Option<u64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) {
        return None;
    }
    if fraction.len() > decimals as usize || (text.contains('.') && fraction.is_empty()) {
        return None;
    }
    let mut value: u64 = whole.parse().ok()?;
    for _ in 0..decimals {
        value = value.checked_mul(10)?;
    }
    let mut part: u64 = 0;
    let mut scale = decimals;
    for b in fraction.bytes() {
        part = part * 10 + u64::from(b - b'0');
        scale -= 1;
    }
    for _ in 0..scale {
        part = part.checked_mul(10)?;
    }
    value.checked_add(part)
}

fn parse_percent(text: &str) -> Result<Ppm> {
    const BAD: Error = Error::InvalidConfig(
        "faults: a chance is a percentage from 0% to 100% with at most 4 decimals (for example 0.5%)",
    );
    let number = text.strip_suffix('%').ok_or(BAD)?;
    // Percent with 4 decimals is parts per million.
    let ppm = fixed(number, 4).ok_or(BAD)?;
    if ppm > u64::from(PPM_MAX) {
        return Err(Error::InvalidConfig(
            "faults: a chance above 100% (give 0% to 100%)",
        ));
    }
    Ok(ppm as Ppm)
}

/// A time in microseconds.
fn parse_time(text: &str) -> Result<u64> {
    const BAD: Error = Error::InvalidConfig(
        "faults: a time is a number followed by us, ms or s (for example 10ms), at most 60s",
    );
    let micros = if let Some(n) = text.strip_suffix("us") {
        fixed(n, 0)
    } else if let Some(n) = text.strip_suffix("ms") {
        fixed(n, 3)
    } else if let Some(n) = text.strip_suffix('s') {
        fixed(n, 6)
    } else {
        None
    };
    micros.filter(|&m| m <= MAX_DELAY.total_micros()).ok_or(BAD)
}

/// A rate in bits per second.
fn parse_rate(text: &str) -> Result<u64> {
    const BAD: Error = Error::InvalidConfig(
        "faults: a rate is a number above 0 followed by bit, kbit, mbit or gbit (for example 10mbit)",
    );
    let lower = |suffix: &str| {
        let n = text.len().checked_sub(suffix.len())?;
        let (number, unit) = (text.get(..n)?, text.get(n..)?);
        unit.eq_ignore_ascii_case(suffix).then_some(number)
    };
    let bits = if let Some(n) = lower("gbit") {
        fixed(n, 9)
    } else if let Some(n) = lower("mbit") {
        fixed(n, 6)
    } else if let Some(n) = lower("kbit") {
        fixed(n, 3)
    } else if let Some(n) = lower("bit") {
        fixed(n, 0)
    } else {
        None
    };
    bits.filter(|&b| b > 0).ok_or(BAD)
}

/// What the injector did to the frames of one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Counters {
    /// Frames that came in to be faulted.
    pub frames: u64,
    /// Frames dropped on purpose (loss).
    pub dropped: u64,
    /// Frames (or copies) dropped because the hold queue was full.
    pub overflowed: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Frames held back for later ones to pass.
    pub reordered: u64,
    /// Frames with a flipped bit.
    pub corrupted: u64,
    /// Frames held for delay, jitter or the rate limit.
    pub delayed: u64,
}

impl Counters {
    /// Nothing counted yet.
    pub const ZERO: Self = Self {
        frames: 0,
        dropped: 0,
        overflowed: 0,
        duplicated: 0,
        reordered: 0,
        corrupted: 0,
        delayed: 0,
    };
}

/// The counters of both directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct FaultStats {
    /// Frames from the device to the stack.
    pub rx: Counters,
    /// Frames from the stack to the device.
    pub tx: Counters,
}

impl core::fmt::Display for Counters {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} frames, {} dropped, {} duplicated, {} reordered, {} corrupted, {} delayed, {} overflowed",
            self.frames,
            self.dropped,
            self.duplicated,
            self.reordered,
            self.corrupted,
            self.delayed,
            self.overflowed
        )
    }
}

impl core::fmt::Display for FaultStats {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "faults: rx {}; tx {}", self.rx, self.tx)
    }
}

/// xorshift64* (Vigna), seeded through splitmix64 so that any seed, 0 included, works.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        Self(if z == 0 { 1 } else { z })
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number from 0 to `bound - 1` (0 when `bound` is 0).
    fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        // Multiply-shift: no division, negligible bias for the bounds used here.
        (((self.next() >> 32) * bound) >> 32).min(bound - 1)
    }

    fn chance(&mut self, ppm: Ppm) -> bool {
        // Drawn even for 0 so that one fault's setting does not shift another's choices.
        let draw = self.below(u64::from(PPM_MAX));
        draw < u64::from(ppm)
    }
}

/// A frame waiting in a hold queue.
#[derive(Debug, Clone)]
struct Held {
    frame: Frame,
    /// Due at this time.
    release: Instant,
    /// Later frames still to pass before it is due (reordering); 0 for none.
    wait: u8,
    /// Order of arrival, to release frames due at the same time in order.
    seq: u64,
}

/// What becomes of a frame.
enum Verdict {
    /// Dropped or held; nothing to deliver now.
    Gone,
    /// Deliver it now.
    Pass,
}

/// The state of one direction.
#[derive(Debug, Clone)]
struct Side<const Q: usize> {
    faults: Impairments,
    rng: Rng,
    held: Vec<Held, Q>,
    /// When the rate-limited link is free again.
    busy_until: Instant,
    seq: u64,
    counters: Counters,
}

fn later(at: Instant, by: Duration) -> Instant {
    Instant::from_micros(
        at.total_micros()
            .saturating_add(i64::try_from(by.total_micros()).unwrap_or(i64::MAX)),
    )
}

impl<const Q: usize> Side<Q> {
    /// A direction with no faults, built at compile time (see [`FaultInjector::idle`]).
    const IDLE: Self = Self {
        faults: Impairments::NONE,
        rng: Rng(1),
        held: Vec::new(),
        busy_until: Instant::ZERO,
        seq: 0,
        counters: Counters::ZERO,
    };

    fn new(faults: Impairments, seed: u64) -> Self {
        Self {
            faults,
            rng: Rng::new(seed),
            held: Vec::new(),
            busy_until: Instant::from_micros(0),
            seq: 0,
            counters: Counters::default(),
        }
    }

    fn inert(&self) -> bool {
        self.faults.is_none() && self.held.is_empty()
    }

    /// Index of the held frame to release first at `now`, if any is due.
    fn due(&self, now: Instant) -> Option<usize> {
        self.held
            .iter()
            .enumerate()
            .filter(|(_, h)| h.release <= now)
            .min_by_key(|(_, h)| (h.release, h.seq))
            .map(|(i, _)| i)
    }

    fn next_release(&self) -> Option<Instant> {
        self.held.iter().map(|h| h.release).min()
    }

    /// Takes the held frame at `index` (from [`Side::due`]).
    fn take(&mut self, index: usize, now: Instant) -> Option<Frame> {
        if index >= self.held.len() {
            return None;
        }
        let held = self.held.swap_remove(index);
        self.passed(now);
        Some(held.frame)
    }

    /// A frame went through: reordered frames waiting for it come one step nearer.
    fn passed(&mut self, now: Instant) {
        for h in self.held.iter_mut().filter(|h| h.wait > 0) {
            h.wait -= 1;
            if h.wait == 0 {
                h.release = now;
            }
        }
    }

    fn hold(&mut self, frame: Frame, release: Instant, wait: u8) -> bool {
        self.seq += 1;
        let held = Held {
            frame,
            release,
            wait,
            seq: self.seq,
        };
        if self.held.push(held).is_err() {
            self.counters.overflowed += 1;
            return false;
        }
        true
    }

    /// Applies this direction's faults to `frame` at `now`: [`Verdict::Pass`] when it goes
    /// through at once (the caller then calls [`Side::passed`]).
    fn admit(&mut self, frame: &mut Frame, now: Instant) -> Verdict {
        let f = self.faults;
        self.counters.frames += 1;
        // Every choice is drawn for every frame, so the same seed gives the same faults to
        // the same frame whatever else is configured.
        let lost = self.rng.chance(f.loss);
        let corrupt = self.rng.chance(f.corrupt);
        let dup = self.rng.chance(f.dup);
        let reorder = self.rng.chance(f.reorder);
        let position = self.rng.next();
        let jitter = self.rng.below(f.jitter.total_micros().saturating_add(1));
        let wait = 1 + self.rng.below(3) as u8;
        if lost {
            self.counters.dropped += 1;
            return Verdict::Gone;
        }
        if corrupt && !frame.is_empty() {
            let bit = (position % (frame.len() as u64 * 8)) as usize;
            if let Some(byte) = frame.get_mut(bit / 8) {
                *byte ^= 1 << (bit % 8);
                self.counters.corrupted += 1;
            }
        }
        let mut release = now;
        if let Some(micros) = (frame.len() as u64 * 8_000_000).checked_div(f.rate) {
            // The frame leaves when the link is free, and keeps it busy while it is sent.
            let start = release.max(self.busy_until);
            let time = Duration::from_micros(micros);
            self.busy_until = later(start, time);
            release = start;
        }
        release = later(
            release,
            f.delay + Duration::from_micros(jitter.min(f.jitter.total_micros())),
        );
        if dup {
            self.counters.duplicated += 1;
            let _ = self.hold(frame.clone(), release, 0);
        }
        if reorder {
            self.counters.reordered += 1;
            let _ = self.hold(frame.clone(), later(release, REORDER_HOLD), wait);
            return Verdict::Gone;
        }
        if release > now {
            self.counters.delayed += 1;
            let _ = self.hold(frame.clone(), release, 0);
            return Verdict::Gone;
        }
        // A copy held for `now` leaves right after the original, which passes now.
        Verdict::Pass
    }
}

/// Mixed into the seed of the transmit direction's random choices.
const TX_STREAM: u64 = 0x5bd1_e995_5bd1_e995;

/// The fault injector's state: configuration, random generators, up to `Q` held frames per
/// direction, counters. See the [module documentation](self).
///
/// It takes about `2 × Q × 1.5 KiB` of memory; a board may choose a small `Q`.
#[derive(Debug, Clone)]
pub struct FaultInjector<const Q: usize = 32> {
    config: FaultConfig,
    rx: Side<Q>,
    tx: Side<Q>,
    /// The received frame being handed to the stack.
    rx_frame: Frame,
}

impl<const Q: usize> FaultInjector<Q> {
    /// An injector with this configuration.
    pub fn new(config: FaultConfig) -> Self {
        Self {
            config,
            // Two streams from one seed, so that each direction's choices do not depend on
            // how the other's frames interleave with it.
            rx: Side::new(config.rx, config.seed),
            tx: Side::new(config.tx, config.seed ^ TX_STREAM),
            rx_frame: Frame::new(),
        }
    }

    /// An injector with no faults, built at compile time: a board puts it in a `static`
    /// (its frames take `2 × Q × 1.5 KiB`, too much to build on a small stack) and then
    /// [`configure`](Self::configure)s it.
    pub const fn idle() -> Self {
        Self {
            config: FaultConfig {
                rx: Impairments::NONE,
                tx: Impairments::NONE,
                seed: 0,
            },
            rx: Side::IDLE,
            tx: Side::IDLE,
            rx_frame: Frame::new(),
        }
    }

    /// Applies `config` in place, as [`new`](Self::new) would: the same seed gives the same
    /// faults. Frames already held stay held; the counters go on.
    pub fn configure(&mut self, config: FaultConfig) {
        self.config = config;
        self.rx.faults = config.rx;
        self.rx.rng = Rng::new(config.seed);
        self.tx.faults = config.tx;
        self.tx.rng = Rng::new(config.seed ^ TX_STREAM);
    }

    /// Its configuration.
    pub fn config(&self) -> &FaultConfig {
        &self.config
    }

    /// What it did so far.
    pub fn stats(&self) -> FaultStats {
        FaultStats {
            rx: self.rx.counters,
            tx: self.tx.counters,
        }
    }

    /// When the earliest held frame is due (`None`: none held). A driver polls the stack
    /// again by then even if nothing else happens.
    pub fn next_release(&self) -> Option<Instant> {
        match (self.rx.next_release(), self.tx.next_release()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Frames held now (rx, tx).
    pub fn held(&self) -> (usize, usize) {
        (self.rx.held.len(), self.tx.held.len())
    }

    /// This injector in front of `inner`.
    pub fn wrap<D: Device>(&mut self, inner: D) -> Faulty<'_, D, Q> {
        Faulty {
            inner,
            faults: self,
        }
    }
}

/// A device lent for one poll: [`FaultInjector::wrap`] takes the device it wraps by value,
/// and a driver that owns its device (a board, a host loop) lends it each time.
pub struct Lent<'d, D>(pub &'d mut D);

impl<D: Device> Device for Lent<'_, D> {
    type RxToken<'a>
        = D::RxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = D::TxToken<'a>
    where
        Self: 'a;

    fn receive(&mut self, now: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        self.0.receive(now)
    }

    fn transmit(&mut self, now: Instant) -> Option<Self::TxToken<'_>> {
        self.0.transmit(now)
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.0.capabilities()
    }
}

/// A device behind a [`FaultInjector`]: give this to the stack.
pub struct Faulty<'f, D, const Q: usize> {
    inner: D,
    faults: &'f mut FaultInjector<Q>,
}

/// Most frames the wrapper takes from the device in one `receive` while looking for one to
/// deliver (the others were dropped or held).
const RX_TRIES: usize = 64;

impl<'f, D: Device, const Q: usize> Faulty<'f, D, Q> {
    /// The wrapped device.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// The wrapped device, mutably.
    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    /// The wrapped device back.
    pub fn into_inner(self) -> D {
        self.inner
    }

    /// The injector's counters.
    pub fn stats(&self) -> FaultStats {
        self.faults.stats()
    }

    /// See [`FaultInjector::next_release`].
    pub fn next_release(&self) -> Option<Instant> {
        self.faults.next_release()
    }

    /// Sends the held tx frames that are due, while the device takes them.
    fn flush_tx(&mut self, now: Instant) {
        while let Some(index) = self.faults.tx.due(now) {
            let Some(token) = self.inner.transmit(now) else {
                return;
            };
            let Some(frame) = self.faults.tx.take(index, now) else {
                return;
            };
            send(token, &frame);
        }
    }

    /// The next frame for the stack, into `rx_frame`: a held one that is due, else one
    /// from the device that passes.
    fn next_rx(&mut self, now: Instant) -> bool {
        for _ in 0..RX_TRIES {
            if let Some(index) = self.faults.rx.due(now)
                && let Some(frame) = self.faults.rx.take(index, now)
            {
                self.faults.rx_frame = frame;
                return true;
            }
            let Some((rx, _tx)) = self.inner.receive(now) else {
                return false;
            };
            let mut frame = Frame::new();
            let fits = phy::RxToken::consume(rx, |data| frame.extend_from_slice(data).is_ok());
            if !fits {
                // Larger than any frame held here: it passes untouched (see the module docs).
                self.faults.rx.counters.frames += 1;
                continue;
            }
            if let Verdict::Pass = self.faults.rx.admit(&mut frame, now) {
                self.faults.rx.passed(now);
                self.faults.rx_frame = frame;
                return true;
            }
        }
        false
    }
}

fn send<T: phy::TxToken>(token: T, frame: &[u8]) {
    token.consume(frame.len(), |buf| {
        let n = buf.len().min(frame.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), frame.get(..n)) {
            dst.copy_from_slice(src);
        }
    });
}

/// A received frame: the device's own (nothing to fault) or one the injector let through.
pub enum RxToken<'a, R> {
    /// Straight from the device.
    Inner(R),
    /// From the injector.
    Frame(&'a [u8]),
}

impl<R: phy::RxToken> phy::RxToken for RxToken<'_, R> {
    fn consume<T, F: FnOnce(&[u8]) -> T>(self, f: F) -> T {
        match self {
            RxToken::Inner(token) => token.consume(f),
            RxToken::Frame(frame) => f(frame),
        }
    }
}

/// Room to send one frame, through the injector's tx faults.
pub struct TxToken<'a, T, const Q: usize> {
    inner: Option<T>,
    side: &'a mut Side<Q>,
    now: Instant,
}

impl<T: phy::TxToken, const Q: usize> phy::TxToken for TxToken<'_, T, Q> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let TxToken { inner, side, now } = self;
        if side.inert()
            && let Some(token) = inner
        {
            return token.consume(len, f);
        }
        let mut frame = Frame::new();
        // smoltcp asks for at most the MTU, which `capabilities` caps at FRAME_MAX.
        let fits = frame.resize(len.min(FRAME_MAX), 0).is_ok() && len <= FRAME_MAX;
        let result = f(&mut frame);
        if !fits {
            side.counters.overflowed += 1;
            return result;
        }
        if let Verdict::Pass = side.admit(&mut frame, now) {
            match inner {
                Some(token) => {
                    send(token, &frame);
                    side.passed(now);
                }
                // The device had no room when the token was made: the frame waits its turn.
                None => {
                    let _ = side.hold(frame, now, 0);
                }
            }
        }
        result
    }
}

impl<D: Device, const Q: usize> Device for Faulty<'_, D, Q> {
    type RxToken<'a>
        = RxToken<'a, D::RxToken<'a>>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a, D::TxToken<'a>, Q>
    where
        Self: 'a;

    fn receive(&mut self, now: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        self.flush_tx(now);
        if self.faults.rx.inert() {
            let (rx, tx) = self.inner.receive(now)?;
            let side = &mut self.faults.tx;
            return Some((
                RxToken::Inner(rx),
                TxToken {
                    inner: Some(tx),
                    side,
                    now,
                },
            ));
        }
        if !self.next_rx(now) {
            return None;
        }
        let tx = self.inner.transmit(now);
        let faults = &mut *self.faults;
        Some((
            RxToken::Frame(&faults.rx_frame),
            TxToken {
                inner: tx,
                side: &mut faults.tx,
                now,
            },
        ))
    }

    fn transmit(&mut self, now: Instant) -> Option<Self::TxToken<'_>> {
        self.flush_tx(now);
        let token = self.inner.transmit(now)?;
        Some(TxToken {
            inner: Some(token),
            side: &mut self.faults.tx,
            now,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = self.inner.capabilities();
        caps.max_transmission_unit = caps.max_transmission_unit.min(FRAME_MAX);
        caps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::Link;
    use phy::{RxToken as _, TxToken as _};

    fn ms(n: i64) -> Instant {
        Instant::from_millis(n)
    }

    #[test]
    fn parses_a_full_specification() {
        let c = FaultConfig::parse(
            "loss=5%,dup=1%,reorder=2%,corrupt=0.1%,delay=10ms,jitter=5ms,rate=10mbit,seed=7",
        )
        .unwrap();
        let both = Impairments {
            loss: 50_000,
            dup: 10_000,
            reorder: 20_000,
            corrupt: 1_000,
            delay: Duration::from_millis(10),
            jitter: Duration::from_millis(5),
            rate: 10_000_000,
        };
        assert_eq!(
            c,
            FaultConfig {
                rx: both,
                tx: both,
                seed: 7
            }
        );
        let c =
            FaultConfig::parse("tx.loss=100%, rx.delay=1.5ms ,rate=64kbit,jitter=250us").unwrap();
        assert_eq!(c.tx.loss, PPM_MAX);
        assert_eq!(c.rx.loss, 0);
        assert_eq!(c.rx.delay, Duration::from_micros(1500));
        assert_eq!(c.tx.delay, Duration::ZERO);
        assert_eq!((c.rx.rate, c.tx.rate), (64_000, 64_000));
        assert_eq!(c.tx.jitter, Duration::from_micros(250));
        assert_eq!(c.seed, 0);
        assert_eq!(
            FaultConfig::parse("loss=0.0001%,delay=2s,rate=1gbit")
                .map(|c| (c.rx.loss, c.rx.delay, c.tx.rate)),
            Ok((1, Duration::from_secs(2), 1_000_000_000))
        );
        assert!(FaultConfig::parse("loss=0%").unwrap().is_none());
    }

    #[test]
    fn refuses_bad_specifications_with_a_reason() {
        let reason = |spec: &str| match FaultConfig::parse(spec) {
            Err(Error::InvalidConfig(why)) => why,
            other => panic!("{spec}: {other:?}"),
        };
        assert!(reason("").contains("empty"));
        assert!(reason("loss").contains("KEY=VALUE"));
        assert!(reason("drop=5%").contains("unknown key"));
        assert!(reason("up.loss=5%").contains("unknown key"));
        assert!(reason("loss=5").contains("percentage"));
        assert!(reason("loss=101%").contains("above 100%"));
        assert!(reason("loss=-1%").contains("percentage"));
        assert!(reason("loss=0.00001%").contains("4 decimals"));
        assert!(reason("loss=1.%").contains("percentage"));
        assert!(reason("loss=%").contains("percentage"));
        assert!(reason("loss=99999999999999999999%").contains("percentage"));
        assert!(reason("delay=10").contains("us, ms or s"));
        assert!(reason("delay=61s").contains("at most 60s"));
        assert!(reason("jitter=xms").contains("us, ms or s"));
        assert!(reason("rate=0mbit").contains("above 0"));
        assert!(reason("rate=10mbps").contains("bit, kbit"));
        assert!(reason("seed=-1").contains("seed"));
        assert!(reason("tx.seed=1").contains("seed"));
        assert!(reason("loss=5%,,dup=1%").contains("KEY=VALUE"));
        // Odd bytes never panic.
        for spec in [
            "=",
            "é=1%",
            "loss=é%",
            "rate=é",
            "rate=bit",
            "delay=ms",
            "loss=1é%",
        ] {
            assert!(FaultConfig::parse(spec).is_err(), "{spec}");
        }
    }

    /// Sends `count` numbered frames through a tx-faulted end A of a link at `now`, and
    /// returns what end B received.
    fn through<const Q: usize>(
        faults: &mut FaultInjector<Q>,
        link: &mut Link<64>,
        frames: core::ops::Range<u8>,
        now: Instant,
    ) -> std::vec::Vec<std::vec::Vec<u8>> {
        for n in frames {
            let mut dev = faults.wrap(link.a());
            if let Some(token) = dev.transmit(now) {
                token.consume(60, |buf| buf.fill(n));
            }
        }
        let mut dev = faults.wrap(link.a());
        let _ = dev.transmit(now); // flushes what is due
        drain(link)
    }

    fn drain(link: &mut Link<64>) -> std::vec::Vec<std::vec::Vec<u8>> {
        let mut got = std::vec::Vec::new();
        let mut b = link.b();
        while let Some((rx, _)) = b.receive(ms(0)) {
            rx.consume(|f| got.push(f.to_vec()));
        }
        got
    }

    fn tx_only(spec: &str) -> FaultConfig {
        let mut c = FaultConfig::parse(spec).unwrap();
        c.rx = Impairments::default();
        c
    }

    #[test]
    fn loss_drops_about_the_share_asked_and_the_same_seed_drops_the_same_frames() {
        let run = |seed| {
            let mut c = tx_only("loss=30%");
            c.seed = seed;
            let mut f = FaultInjector::<8>::new(c);
            let mut link = Link::<64>::new();
            let mut got = std::vec::Vec::new();
            for chunk in 0..5u8 {
                got.extend(through(
                    &mut f,
                    &mut link,
                    chunk * 40..chunk * 40 + 40,
                    ms(0),
                ));
            }
            (
                got.iter().map(|f| f[0]).collect::<std::vec::Vec<_>>(),
                f.stats(),
            )
        };
        let (a, stats) = run(7);
        assert_eq!(stats.tx.frames, 200);
        assert_eq!(stats.tx.dropped as usize, 200 - a.len());
        assert!((40..=80).contains(&stats.tx.dropped), "{stats:?}");
        assert!(a.windows(2).all(|w| w[0] < w[1]), "order kept");
        assert_eq!(run(7).0, a, "same seed, same losses");
        assert_ne!(run(8).0, a, "another seed, other losses");
        assert_eq!(stats.rx, Counters::default());
    }

    #[test]
    fn duplicates_follow_their_original() {
        let mut f = FaultInjector::<8>::new(tx_only("dup=100%,seed=1"));
        let mut link = Link::<64>::new();
        let got = through(&mut f, &mut link, 0..3, ms(0));
        let order: std::vec::Vec<u8> = got.iter().map(|f| f[0]).collect();
        assert_eq!(order, [0, 0, 1, 1, 2, 2]);
        assert_eq!(f.stats().tx.duplicated, 3);
    }

    #[test]
    fn reordered_frames_are_passed_by_later_ones_or_released_after_the_hold() {
        let mut f = FaultInjector::<8>::new(tx_only("reorder=20%,seed=3"));
        let mut link = Link::<64>::new();
        let got = through(&mut f, &mut link, 0..40, ms(0));
        let mut order: std::vec::Vec<u8> = got.iter().map(|f| f[0]).collect();
        assert!(f.stats().tx.reordered > 0);
        assert!(order.windows(2).any(|w| w[0] > w[1]), "{order:?}");
        // Whatever still waits leaves once the hold has passed.
        let later = through(&mut f, &mut link, 0..0, ms(0) + REORDER_HOLD);
        order.extend(later.iter().map(|f| f[0]));
        order.sort_unstable();
        assert_eq!(order, (0..40).collect::<std::vec::Vec<u8>>(), "none lost");
        assert_eq!(f.held(), (0, 0));
        assert_eq!(f.next_release(), None);
    }

    #[test]
    fn corruption_flips_exactly_one_bit() {
        let mut f = FaultInjector::<8>::new(tx_only("corrupt=100%,seed=5"));
        let mut link = Link::<64>::new();
        let got = through(&mut f, &mut link, 0..20, ms(0));
        assert_eq!(got.len(), 20);
        for (n, frame) in got.iter().enumerate() {
            let flipped: u32 = frame.iter().map(|b| (b ^ n as u8).count_ones()).sum();
            assert_eq!(flipped, 1, "frame {n}");
        }
        assert_eq!(f.stats().tx.corrupted, 20);
    }

    #[test]
    fn delay_and_jitter_hold_frames_until_due_and_say_when() {
        let mut f = FaultInjector::<8>::new(tx_only("delay=10ms,jitter=5ms,seed=9"));
        let mut link = Link::<64>::new();
        assert!(through(&mut f, &mut link, 0..4, ms(0)).is_empty());
        let first = f.next_release().unwrap();
        assert!(first >= ms(10) && first <= ms(15), "{first}");
        assert!(through(&mut f, &mut link, 0..0, ms(9)).is_empty());
        let got = through(&mut f, &mut link, 0..0, ms(15));
        assert_eq!(got.len(), 4);
        assert_eq!(f.stats().tx.delayed, 4);
        assert_eq!(f.next_release(), None);
    }

    #[test]
    fn a_full_hold_queue_drops_and_counts() {
        let mut f = FaultInjector::<4>::new(tx_only("delay=1ms"));
        let mut link = Link::<64>::new();
        assert!(through(&mut f, &mut link, 0..10, ms(0)).is_empty());
        assert_eq!(f.stats().tx.overflowed, 6);
        assert_eq!(through(&mut f, &mut link, 0..0, ms(1)).len(), 4);
    }

    #[test]
    fn the_rate_limit_spaces_frames_by_their_length() {
        // 60-byte frames at 48 kbit/s: one every 10 ms.
        let mut f = FaultInjector::<16>::new(tx_only("rate=48kbit"));
        let mut link = Link::<64>::new();
        assert_eq!(through(&mut f, &mut link, 0..5, ms(0)).len(), 1);
        assert_eq!(f.next_release(), Some(ms(10)));
        assert_eq!(through(&mut f, &mut link, 0..0, ms(25)).len(), 2);
        assert_eq!(through(&mut f, &mut link, 0..0, ms(40)).len(), 2);
        assert_eq!(f.stats().tx.delayed, 4);
    }

    #[test]
    fn received_frames_are_faulted_too_and_replies_still_go_out() {
        let mut f = FaultInjector::<8>::new(FaultConfig {
            rx: FaultConfig::parse("loss=50%").unwrap().rx,
            tx: Impairments::default(),
            seed: 11,
        });
        let mut link = Link::<64>::new();
        for n in 0..40u8 {
            if let Some(t) = link.b().transmit(ms(0)) {
                t.consume(60, |b| b.fill(n));
            }
        }
        let mut dev = f.wrap(link.a());
        let mut got = std::vec::Vec::new();
        while let Some((rx, tx)) = dev.receive(ms(0)) {
            rx.consume(|frame| got.push(frame[0]));
            tx.consume(60, |b| b.fill(0xee));
        }
        let stats = dev.stats();
        assert_eq!(stats.rx.frames, 40);
        assert_eq!(got.len() as u64, 40 - stats.rx.dropped);
        assert!(got.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(drain_a_to_b(&mut link), got.len(), "one reply per frame");
    }

    fn drain_a_to_b(link: &mut Link<64>) -> usize {
        link.in_flight_a_to_b().count()
    }

    #[test]
    fn no_faults_pass_everything_untouched() {
        let mut f = FaultInjector::<2>::new(FaultConfig::default());
        let mut link = Link::<64>::new();
        let got = through(&mut f, &mut link, 0..50, ms(0));
        assert_eq!(got.len(), 50);
        assert_eq!(f.stats(), FaultStats::default());
    }

    #[test]
    fn stats_print_on_one_line() {
        let s = FaultStats::default();
        let text = std::format!("{s}");
        assert!(text.starts_with("faults: rx 0 frames, 0 dropped"));
        assert!(!text.contains('\n'));
    }
}
