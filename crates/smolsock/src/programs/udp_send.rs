//! The seed's UDP sender: `sendto` each message to one destination, without `bind`.

use core::net::SocketAddrV4;

use smoltcp::time::{Duration, Instant};

use super::{Poll, Program, Run};
use crate::error::{Error, Result};
use crate::event::{Counter, Event, Proto};
use crate::net::Stack;

/// Settings of a [`UdpSender`].
#[derive(Debug, Clone, Copy)]
pub struct UdpSenderConfig {
    /// Destination of every datagram.
    pub to: SocketAddrV4,
    /// How long queued datagrams may wait to leave (for ARP, say) once input has ended.
    pub flush_timeout: Duration,
}

/// Sends one datagram per message. The socket is never bound by the program: the first
/// send binds an ephemeral port, kept for every later datagram (rule S10).
pub struct UdpSender<'b, S: Stack> {
    config: UdpSenderConfig,
    buf: &'b mut [u8],
    pending: Option<usize>,
    input_ended: bool,
    flush_deadline: Option<Instant>,
    state: Run<S::Udp>,
    counter: Counter,
}

impl<'b, S: Stack> UdpSender<'b, S> {
    /// A sender whose messages can be up to `buf.len()` bytes.
    pub fn new(config: UdpSenderConfig, buf: &'b mut [u8]) -> Self {
        Self {
            config,
            buf,
            pending: None,
            input_ended: false,
            flush_deadline: None,
            state: Run::Start,
            counter: Counter::default(),
        }
    }

    fn finish(
        &mut self,
        stack: &mut S,
        socket: S::Udp,
        result: Result<()>,
        emit: &mut dyn FnMut(&Event<'_>),
    ) {
        stack.udp_close(socket);
        match result {
            Ok(()) => emit(&Event::Closed {
                proto: Proto::Udp,
                conn: None,
                totals: self.counter.totals(),
            }),
            Err(error) => emit(&Event::Error {
                conn: None,
                peer: Some(self.config.to),
                error,
            }),
        }
        self.state = Run::Done(result);
    }
}

impl<S: Stack> Program<S> for UdpSender<'_, S> {
    fn poll(&mut self, stack: &mut S, now: Instant, emit: &mut dyn FnMut(&Event<'_>)) -> Poll {
        let mut poll = Poll::default();
        if let Run::Start = self.state {
            match stack.udp_open() {
                Ok(socket) => self.state = Run::Running(socket),
                Err(error) => self.state.fail(error, emit),
            }
        }
        let Run::Running(socket) = self.state else {
            return poll;
        };
        if let Some(len) = self.pending {
            let data = self.buf.get(..len).unwrap_or_default();
            let was_bound = stack.udp_local(socket).is_some();
            match stack.udp_send_to(socket, data, self.config.to) {
                Ok(()) => {
                    if !was_bound && let Some(local) = stack.udp_local(socket) {
                        emit(&Event::Bound {
                            local,
                            auto: true,
                            max_send: Some(stack.udp_max_payload(socket)),
                        });
                    }
                    self.counter.sent(data);
                    emit(&Event::Sent {
                        proto: Proto::Udp,
                        conn: None,
                        to: self.config.to,
                        len,
                    });
                    self.pending = None;
                    poll.progressed = true;
                }
                Err(Error::WouldBlock) => {}
                Err(error) => {
                    self.finish(stack, socket, Err(error), emit);
                    return poll;
                }
            }
        }
        if self.input_ended && self.pending.is_none() {
            if stack.udp_flushed(socket) {
                self.finish(stack, socket, Ok(()), emit);
                poll.progressed = true;
            } else {
                let deadline = *self
                    .flush_deadline
                    .get_or_insert(now + self.config.flush_timeout);
                if now >= deadline {
                    // Typically no ARP reply: the datagram never left.
                    self.finish(stack, socket, Err(Error::TimedOut), emit);
                } else {
                    poll.wake_at = Some(deadline);
                }
            }
        }
        poll
    }

    fn outcome(&self) -> Option<Result<()>> {
        self.state.outcome()
    }

    fn wants_input(&self) -> bool {
        !self.input_ended && self.pending.is_none() && !self.state.is_done()
    }

    fn input(&mut self, message: &[u8]) -> Result<()> {
        if self.input_ended || self.state.is_done() {
            return Err(Error::InputClosed);
        }
        if self.pending.is_some() {
            return Err(Error::WouldBlock);
        }
        self.pending = Some(super::stage(self.buf, message)?);
        Ok(())
    }

    fn end_input(&mut self) {
        self.input_ended = true;
    }

    fn shutdown(&mut self, stack: &mut S, emit: &mut dyn FnMut(&Event<'_>)) {
        if let Run::Running(socket) = self.state {
            self.finish(stack, socket, Ok(()), emit);
        }
        self.state.end();
    }
}
