//! The seed's UDP receiver: `bind(('', port))`, then `recvfrom(1024)` in a loop.

use smoltcp::time::{Duration, Instant};

use super::{Poll, Program, Run};
use crate::error::{Error, Result};
use crate::event::{Counter, Event, LossCause, Proto};
use crate::net::{Stack, UdpLosses};

/// Settings of a [`UdpReceiver`].
#[derive(Debug, Clone, Copy)]
pub struct UdpReceiverConfig {
    /// Port to bind on every local address.
    pub port: u16,
    /// Stop after this many datagrams (`None`: run until stopped).
    pub count: Option<u64>,
}

/// How often, at most, the receiver asks the stack how many datagrams it dropped (on the
/// kernel's stack that reads /proc).
const LOSS_CHECK: Duration = Duration::from_secs(1);

/// Binds a port and reports each datagram with its sender; datagrams larger than the
/// buffer are reported as truncated (rule S11). Datagrams the stack dropped because the
/// socket's buffer was full are reported too, at most once a second and when it closes.
pub struct UdpReceiver<'b, S: Stack> {
    config: UdpReceiverConfig,
    buf: &'b mut [u8],
    state: Run<S::Udp>,
    counter: Counter,
    lost: UdpLosses,
    next_loss_check: Instant,
    /// Datagrams arrived since the last check: drops may have come with them, so the
    /// program wakes for the next check even if nothing else arrives.
    check_due: bool,
}

impl<'b, S: Stack> UdpReceiver<'b, S> {
    /// A receiver taking at most `buf.len()` bytes of each datagram.
    pub fn new(config: UdpReceiverConfig, buf: &'b mut [u8]) -> Self {
        Self {
            config,
            buf,
            state: Run::Start,
            counter: Counter::default(),
            lost: UdpLosses::default(),
            next_loss_check: Instant::ZERO,
            check_due: false,
        }
    }

    /// Reports datagrams the stack dropped for `socket` since the last report.
    fn report_losses(&mut self, stack: &S, socket: S::Udp, emit: &mut dyn FnMut(&Event<'_>)) {
        let now = stack.udp_losses(socket);
        for (total, reported, cause) in [
            (
                now.buffer_full,
                self.lost.buffer_full,
                LossCause::SocketBuffer,
            ),
            (now.incomplete, self.lost.incomplete, LossCause::Fragments),
        ] {
            if total > reported {
                emit(&Event::Lost {
                    count: total - reported,
                    total,
                    cause,
                });
            }
        }
        self.lost = now;
    }

    /// Closes `socket` with the last losses and the totals reported: done.
    fn close(&mut self, stack: &mut S, socket: S::Udp, emit: &mut dyn FnMut(&Event<'_>)) {
        self.report_losses(stack, socket, emit);
        stack.udp_close(socket);
        emit(&Event::Closed {
            proto: Proto::Udp,
            conn: None,
            totals: self.counter.totals(),
        });
        self.state = Run::Done(Ok(()));
    }

    fn start(&mut self, stack: &mut S, emit: &mut dyn FnMut(&Event<'_>)) {
        let socket = match stack.udp_open() {
            Ok(socket) => socket,
            Err(e) => return self.state.fail(e, emit),
        };
        if let Err(e) = stack.udp_bind(socket, self.config.port) {
            stack.udp_close(socket);
            return self.state.fail(e, emit);
        }
        if let Some(local) = stack.udp_local(socket) {
            emit(&Event::Bound {
                local,
                auto: false,
                max_send: None,
            });
        }
        self.state = Run::Running(socket);
    }
}

impl<S: Stack> Program<S> for UdpReceiver<'_, S> {
    fn poll(&mut self, stack: &mut S, now: Instant, emit: &mut dyn FnMut(&Event<'_>)) -> Poll {
        let mut poll = Poll::default();
        if let Run::Start = self.state {
            self.start(stack, emit);
            poll.progressed = true;
        }
        let Run::Running(socket) = self.state else {
            return poll;
        };
        loop {
            if self
                .config
                .count
                .is_some_and(|n| self.counter.messages_in() >= n)
            {
                self.close(stack, socket, emit);
                return poll;
            }
            match stack.udp_recv_from(socket, self.buf) {
                Ok(datagram) => {
                    let data = self.buf.get(..datagram.len).unwrap_or_default();
                    self.counter.received(data);
                    emit(&Event::Received {
                        proto: Proto::Udp,
                        conn: None,
                        from: datagram.from,
                        data,
                        size: datagram.size,
                    });
                    poll.progressed = true;
                    self.check_due = true;
                }
                Err(Error::WouldBlock) => {
                    if now >= self.next_loss_check {
                        self.report_losses(stack, socket, emit);
                        self.next_loss_check = now + LOSS_CHECK;
                        self.check_due = false;
                    }
                    if self.check_due {
                        poll.merge_wake(Some(self.next_loss_check));
                    }
                    return poll;
                }
                Err(e) => {
                    stack.udp_close(socket);
                    self.state.fail(e, emit);
                    return poll;
                }
            }
        }
    }

    fn outcome(&self) -> Option<Result<()>> {
        self.state.outcome()
    }

    fn shutdown(&mut self, stack: &mut S, emit: &mut dyn FnMut(&Event<'_>)) {
        if let Run::Running(socket) = self.state {
            self.close(stack, socket, emit);
        }
        self.state.end();
    }
}
