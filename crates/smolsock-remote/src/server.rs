//! The board's side: [`Server`] takes request frames from the serial port, makes each call
//! on the board's `SmolStack` and writes the reply frame.

use core::net::Ipv4Addr;

use smolsock::Error;
use smolsock::net::{Recv, Stack, TcpTimeouts};
use smolsock::smol::{
    ListenPolicy, ListenerHandle, SmolStack, StackConfig, TcpHandle, UdpHandle, WhenFull,
};
use smolsock::smoltcp::phy::Device;
use smolsock::smoltcp::socket::tcp;
use smolsock::smoltcp::time::{Duration, Instant};
use smolsock::smoltcp::wire::{EthernetAddress, Ipv4Cidr};

use crate::frame::{self, Assembler, MAX_FRAME, MAX_PLAIN};
use crate::wire::{Call, Config, MAX_DATA, Message, Reply, Request, VERSION, WireError};

/// Runs the remote protocol on a board (see the crate docs): one request at a time, each
/// answered as soon as it is made, but for [`Call::Wait`], which is answered when the
/// stack moves a frame or its time runs out.
///
/// About 6 KiB: keep it in a static.
pub struct Server {
    nonce: u32,
    /// The host said hello with this protocol version.
    ready: bool,
    frames: Assembler<MAX_FRAME>,
    /// A request frame is complete in `frames`.
    pending: bool,
    scratch: [u8; MAX_PLAIN],
    out: [u8; MAX_FRAME],
    data: [u8; MAX_DATA],
    /// A `Wait` not answered yet: its number and deadline.
    waiting: Option<(u16, Instant)>,
    /// The stack moved a frame since the last `Wait` answer.
    moved: bool,
    /// How far `Skip` moved the clock.
    offset: Duration,
    /// Bytes dropped because they came while a request was waiting for its step.
    dropped: u32,
    /// Frames that were not valid requests.
    garbled: u32,
}

impl Server {
    /// A server for a board whose boot drew `nonce`.
    pub const fn new(nonce: u32) -> Self {
        Self {
            nonce,
            ready: false,
            frames: Assembler::new(),
            pending: false,
            scratch: [0; MAX_PLAIN],
            out: [0; MAX_FRAME],
            data: [0; MAX_DATA],
            waiting: None,
            moved: false,
            offset: Duration::ZERO,
            dropped: 0,
            garbled: 0,
        }
    }

    /// Writes the boot announcement ([`Message::Boot`]); send it once after boot.
    pub fn announce(&mut self, out: &mut dyn FnMut(&[u8])) {
        let message = Message::Boot {
            version: VERSION,
            nonce: self.nonce,
        };
        if let Ok(frame) = frame::encode(&message, &mut self.scratch, &mut self.out) {
            out(frame);
        }
    }

    /// Feeds bytes that arrived on the serial port. Bytes that come while a complete
    /// request still waits for [`step`](Self::step) are dropped (the host sends one
    /// request at a time, so only a confused host loses them).
    pub fn receive(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            if self.pending {
                self.dropped = self.dropped.wrapping_add(rest.len() as u32);
                return;
            }
            let (taken, done) = self.frames.push(rest);
            rest = rest.get(taken..).unwrap_or_default();
            self.pending = done;
        }
    }

    /// How far [`Call::Skip`] moved the board's clock: the firmware adds it to its time
    /// before giving the time to the stack.
    pub fn clock_offset(&self) -> Duration {
        self.offset
    }

    /// Frames that were not valid requests (bad COBS, CRC, or message), and bytes dropped.
    pub fn errors(&self) -> (u32, u32) {
        (
            self.garbled.wrapping_add(self.frames.oversized()),
            self.dropped,
        )
    }

    /// Answers the complete request, if there is one, on `stack` (on `device` for a
    /// restart), writing each reply frame through `out`; answers a pending `Wait` when
    /// `moved` (the stack moved a frame since the last step) or its deadline passed.
    /// Returns the pending `Wait`'s deadline: the firmware steps again by then at the
    /// latest, even if nothing arrives.
    pub fn step<D: Device + ?Sized, const N: usize>(
        &mut self,
        stack: &mut SmolStack<'_, N>,
        device: &mut D,
        now: Instant,
        moved: bool,
        out: &mut dyn FnMut(&[u8]),
    ) -> Option<Instant> {
        self.moved |= moved;
        if let Some((seq, deadline)) = self.waiting
            && (self.moved || now >= deadline)
        {
            self.answer_wait(seq, out);
        }
        if self.pending {
            self.pending = false;
            self.handle(stack, device, now, out);
            self.frames.clear();
        }
        self.waiting.map(|(_, deadline)| deadline)
    }

    fn answer_wait(&mut self, seq: u16, out: &mut dyn FnMut(&[u8])) {
        self.waiting = None;
        let moved = core::mem::take(&mut self.moved);
        send(
            self.nonce,
            seq,
            &Reply::Woke { moved },
            &mut self.scratch,
            &mut self.out,
            out,
        );
    }

    fn handle<D: Device + ?Sized, const N: usize>(
        &mut self,
        stack: &mut SmolStack<'_, N>,
        device: &mut D,
        now: Instant,
        out: &mut dyn FnMut(&[u8]),
    ) {
        // A new request ends a `Wait` the host gave up on: it is answered first.
        if let Some((seq, _)) = self.waiting {
            self.answer_wait(seq, out);
        }
        let Self {
            nonce,
            ready,
            frames,
            scratch,
            out: buf,
            data,
            waiting,
            moved,
            offset,
            garbled,
            ..
        } = self;
        let Ok(Request { seq, call }) = frame::decode::<Request<'_>>(frames.frame()) else {
            *garbled = garbled.wrapping_add(1);
            return;
        };
        let mut reply = |reply: &Reply<'_>| send(*nonce, seq, reply, scratch, buf, out);
        if let Call::Hello { version } = call {
            *ready = version == VERSION;
            let (tcp_sockets, udp_sockets) = stack.pool_sizes();
            reply(&Reply::Hello {
                version: VERSION,
                tcp_sockets: tcp_sockets as u16,
                udp_sockets: udp_sockets as u16,
            });
            return;
        }
        if !*ready {
            reply(&Reply::NotReady);
            return;
        }
        let done = |result: Result<(), Error>| match result {
            Ok(()) => Reply::Done,
            Err(e) => Reply::Failed(e.into()),
        };
        let answer = match call {
            Call::Hello { .. } => return,
            Call::Restart(config) => done(restart(stack, device, now, config)),
            Call::SetListenPolicy {
                syn_timeout_ms,
                reset_when_full,
            } => {
                stack.set_listen_policy(ListenPolicy {
                    syn_timeout: Duration::from_millis(syn_timeout_ms.into()),
                    when_full: if reset_when_full {
                        WhenFull::Reset
                    } else {
                        WhenFull::Drop
                    },
                });
                Reply::Done
            }
            Call::Wait { timeout_ms } => {
                if core::mem::take(moved) {
                    Reply::Woke { moved: true }
                } else {
                    *waiting = Some((seq, now + Duration::from_millis(timeout_ms.into())));
                    return;
                }
            }
            Call::Skip { ms } => {
                *offset += Duration::from_millis(ms.into());
                Reply::Done
            }
            Call::InTimeWait { port } => Reply::Flag(stack.tcp_snapshots().any(|s| {
                s.state == tcp::State::TimeWait && s.local.is_some_and(|l| l.port() == port)
            })),
            Call::IsIdle => Reply::Flag(stack.is_idle()),
            Call::UdpOpen => match stack.udp_open() {
                Ok(h) => Reply::Handle(h.to_raw()),
                Err(e) => Reply::Failed(e.into()),
            },
            Call::UdpBind { socket, port } => {
                done(stack.udp_bind(UdpHandle::from_raw(socket), port))
            }
            Call::UdpLocal { socket } => {
                Reply::Addr(stack.udp_local(UdpHandle::from_raw(socket)).map(Into::into))
            }
            Call::UdpMaxPayload { socket } => Reply::Size(
                stack
                    .udp_max_payload(UdpHandle::from_raw(socket))
                    .min(MAX_DATA) as u32,
            ),
            Call::UdpSendTo { socket, to, data } => {
                done(stack.udp_send_to(UdpHandle::from_raw(socket), data, to.into()))
            }
            Call::UdpFlushed { socket } => {
                Reply::Flag(stack.udp_flushed(UdpHandle::from_raw(socket)))
            }
            Call::UdpRecvFrom { socket, max } => {
                let max = usize::from(max).min(MAX_DATA);
                let buf = data.get_mut(..max).unwrap_or_default();
                match stack.udp_recv_from(UdpHandle::from_raw(socket), buf) {
                    Ok(d) => {
                        reply(&Reply::Datagram {
                            from: d.from.into(),
                            size: d.size as u32,
                            data: buf.get(..d.len).unwrap_or_default(),
                        });
                        return;
                    }
                    Err(e) => Reply::Failed(e.into()),
                }
            }
            Call::UdpClose { socket } => {
                stack.udp_close(UdpHandle::from_raw(socket));
                Reply::Done
            }
            Call::UdpLosses { socket } => stack.udp_losses(UdpHandle::from_raw(socket)).into(),
            Call::TcpConnect { to } => match stack.tcp_connect(to.into()) {
                Ok(h) => Reply::Handle(h.to_raw()),
                Err(e) => Reply::Failed(e.into()),
            },
            Call::TcpPhase { socket } => {
                Reply::Phase(stack.tcp_phase(TcpHandle::from_raw(socket)).into())
            }
            Call::TcpLocal { socket } => {
                Reply::Addr(stack.tcp_local(TcpHandle::from_raw(socket)).map(Into::into))
            }
            Call::TcpPeer { socket } => {
                Reply::Addr(stack.tcp_peer(TcpHandle::from_raw(socket)).map(Into::into))
            }
            Call::TcpSend { socket, data } => {
                match stack.tcp_send(TcpHandle::from_raw(socket), data) {
                    Ok(n) => Reply::Size(n as u32),
                    Err(e) => Reply::Failed(e.into()),
                }
            }
            Call::TcpUnacked { socket } => {
                Reply::Size(stack.tcp_unacked(TcpHandle::from_raw(socket)) as u32)
            }
            Call::TcpRecv { socket, max } => {
                let max = usize::from(max).min(MAX_DATA);
                // Straight from smoltcp's ring into the reply frame.
                let result = stack.tcp_recv_with(TcpHandle::from_raw(socket), max, &mut |bytes| {
                    reply(&Reply::Data(bytes));
                });
                match result {
                    Ok(Recv::Data(_)) => return,
                    Ok(Recv::Eof) => Reply::Eof,
                    Err(e) => Reply::Failed(e.into()),
                }
            }
            Call::TcpShutdown { socket } => {
                stack.tcp_shutdown(TcpHandle::from_raw(socket));
                Reply::Done
            }
            Call::TcpClose { socket } => {
                stack.tcp_close(TcpHandle::from_raw(socket));
                Reply::Done
            }
            Call::TcpAbort { socket } => {
                stack.tcp_abort(TcpHandle::from_raw(socket));
                Reply::Done
            }
            Call::TcpSetTimeouts {
                socket,
                keepalive_ms,
                give_up_ms,
            } => {
                let timeouts = TcpTimeouts {
                    keepalive: keepalive_ms.map(Duration::from_millis),
                    give_up: give_up_ms.map(Duration::from_millis),
                };
                stack.tcp_set_timeouts(TcpHandle::from_raw(socket), timeouts);
                Reply::Done
            }
            Call::TcpListen { port, backlog } => match stack.tcp_listen(port, backlog.into()) {
                Ok(h) => Reply::Handle(h.to_raw()),
                Err(e) => Reply::Failed(e.into()),
            },
            Call::TcpAccept { listener } => {
                match stack.tcp_accept(ListenerHandle::from_raw(listener)) {
                    Ok((h, peer)) => Reply::Accepted {
                        socket: h.to_raw(),
                        peer: peer.into(),
                    },
                    Err(e) => Reply::Failed(e.into()),
                }
            }
            Call::ListenerClose { listener } => {
                stack.listener_close(ListenerHandle::from_raw(listener));
                Reply::Done
            }
        };
        reply(&answer);
    }
}

/// Makes `stack` a fresh stack at `config`.
fn restart<D: Device + ?Sized, const N: usize>(
    stack: &mut SmolStack<'_, N>,
    device: &mut D,
    now: Instant,
    config: Config,
) -> Result<(), Error> {
    if config.prefix > 32 {
        return Err(Error::InvalidConfig("the prefix length must be at most 32"));
    }
    let config = StackConfig {
        mac: EthernetAddress(config.mac),
        ip: Ipv4Cidr::new(Ipv4Addr::from(config.ip), config.prefix),
        gateway: config.gateway.map(Ipv4Addr::from),
        seed: config.seed,
    };
    stack.restart(config, device, now)
}

/// Writes the reply to request `seq` as one frame.
fn send(
    nonce: u32,
    seq: u16,
    reply: &Reply<'_>,
    scratch: &mut [u8],
    buf: &mut [u8],
    out: &mut dyn FnMut(&[u8]),
) {
    let message = Message::Reply {
        seq,
        nonce,
        reply: reply.clone(),
    };
    match frame::encode(&message, scratch, buf) {
        Ok(frame) => out(frame),
        // Cannot happen: payloads are capped at MAX_DATA. Say so rather than go silent.
        Err(_) => {
            let failed = Message::Reply {
                seq,
                nonce,
                reply: Reply::Failed(WireError::Remote("the reply did not fit in a frame")),
            };
            if let Ok(frame) = frame::encode(&failed, scratch, buf) {
                out(frame);
            }
        }
    }
}
