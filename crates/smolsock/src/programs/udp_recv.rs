//! The seed's UDP receiver: `bind(('', port))`, then `recvfrom(1024)` in a loop.

use smoltcp::time::Instant;

use super::{Poll, Program};
use crate::error::{Error, Result};
use crate::event::{Counter, Event, Proto};
use crate::net::Stack;

/// Settings of a [`UdpReceiver`].
#[derive(Debug, Clone, Copy)]
pub struct UdpReceiverConfig {
    /// Port to bind on every local address.
    pub port: u16,
    /// Stop after this many datagrams (`None`: run until stopped).
    pub count: Option<u64>,
}

enum State<U> {
    Start,
    Receiving(U),
    Done(Result<()>),
}

/// Binds a port and reports each datagram with its sender; datagrams larger than the
/// buffer are reported as truncated (rule S11).
pub struct UdpReceiver<'b, S: Stack> {
    config: UdpReceiverConfig,
    buf: &'b mut [u8],
    state: State<S::Udp>,
    counter: Counter,
}

impl<'b, S: Stack> UdpReceiver<'b, S> {
    /// A receiver taking at most `buf.len()` bytes of each datagram.
    pub fn new(config: UdpReceiverConfig, buf: &'b mut [u8]) -> Self {
        Self {
            config,
            buf,
            state: State::Start,
            counter: Counter::default(),
        }
    }

    fn fail(&mut self, error: Error, emit: &mut dyn FnMut(&Event<'_>)) {
        emit(&Event::Error {
            conn: None,
            peer: None,
            error,
        });
        self.state = State::Done(Err(error));
    }

    fn start(&mut self, stack: &mut S, emit: &mut dyn FnMut(&Event<'_>)) {
        let socket = match stack.udp_open() {
            Ok(socket) => socket,
            Err(e) => return self.fail(e, emit),
        };
        if let Err(e) = stack.udp_bind(socket, self.config.port) {
            stack.udp_close(socket);
            return self.fail(e, emit);
        }
        if let Some(local) = stack.udp_local(socket) {
            emit(&Event::Bound {
                local,
                auto: false,
                max_send: None,
            });
        }
        self.state = State::Receiving(socket);
    }
}

impl<S: Stack> Program<S> for UdpReceiver<'_, S> {
    fn poll(&mut self, stack: &mut S, _now: Instant, emit: &mut dyn FnMut(&Event<'_>)) -> Poll {
        let mut poll = Poll::default();
        if let State::Start = self.state {
            self.start(stack, emit);
            poll.progressed = true;
        }
        let State::Receiving(socket) = self.state else {
            return poll;
        };
        loop {
            if self
                .config
                .count
                .is_some_and(|n| self.counter.messages_in() >= n)
            {
                stack.udp_close(socket);
                emit(&Event::Closed {
                    proto: Proto::Udp,
                    conn: None,
                    totals: self.counter.totals(),
                });
                self.state = State::Done(Ok(()));
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
                }
                Err(Error::WouldBlock) => return poll,
                Err(e) => {
                    stack.udp_close(socket);
                    self.fail(e, emit);
                    return poll;
                }
            }
        }
    }

    fn outcome(&self) -> Option<Result<()>> {
        match self.state {
            State::Done(result) => Some(result),
            _ => None,
        }
    }
}
