//! The seed's TCP server: `bind`, `listen`, then `accept` and serve each client until its
//! `recv` returns 0 bytes.

use core::net::{Ipv4Addr, SocketAddrV4};

use heapless::{Deque, Vec};
use smoltcp::time::Instant;

use super::{Poll, Program};
use crate::error::{Error, Result};
use crate::event::{ConnId, Counter, Event, Proto};
use crate::net::{Recv, Stack};

/// Most bytes one `recv` takes, as in the seed's `recv(1024)` (rule S11).
pub const RECV_CHUNK: usize = 1024;

/// What the server does with what a client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ServeMode {
    /// Send every chunk back.
    Echo,
    /// Answer each message with a line the user types, as the seed's server does.
    Interactive,
    /// Read and count, send nothing (for bulk transfers).
    Sink,
}

/// Settings of a [`TcpServer`].
#[derive(Debug, Clone, Copy)]
pub struct TcpServerConfig {
    /// Port to listen on, on every local address.
    pub port: u16,
    /// Connections that may complete their handshake before they are accepted (S12).
    pub backlog: usize,
    /// What to do with the data.
    pub mode: ServeMode,
    /// Close the listener after accepting this many clients and finish once they are all
    /// done (rule S7); `None` serves forever.
    pub max_clients: Option<u64>,
}

struct Client<T> {
    id: ConnId,
    socket: T,
    peer: SocketAddrV4,
    /// The chunk being echoed or the reply being sent.
    out: Vec<u8, RECV_CHUNK>,
    sent: usize,
    awaiting_reply: bool,
    peer_closed: bool,
    counter: Counter,
}

#[derive(Clone, Copy)]
enum State<L> {
    Start,
    Serving(Option<L>),
    Done(Result<()>),
}

/// Serves up to `C` clients at once: each accepted connection is its own socket (S5, S6),
/// more clients wait in the listener's backlog (S12), and a client's close is seen as
/// end-of-stream (S9), after which the server closes its socket too (S8).
pub struct TcpServer<S: Stack, const C: usize> {
    config: TcpServerConfig,
    state: State<S::Listener>,
    clients: Vec<Client<S::Tcp>, C>,
    waiting: Deque<ConnId, C>,
    accepted: u64,
    buf: [u8; RECV_CHUNK],
}

impl<S: Stack, const C: usize> TcpServer<S, C> {
    /// A server; it listens on its first poll.
    pub fn new(config: TcpServerConfig) -> Self {
        Self {
            config,
            state: State::Start,
            clients: Vec::new(),
            waiting: Deque::new(),
            accepted: 0,
            buf: [0; RECV_CHUNK],
        }
    }

    /// Closes the listener: no new clients, the connected ones go on (rule S7).
    pub fn close_listener(&mut self, stack: &mut S, emit: &mut dyn FnMut(&Event<'_>)) {
        if let State::Serving(Some(listener)) = self.state {
            stack.listener_close(listener);
            emit(&Event::ListenerClosed {
                port: self.config.port,
            });
            self.state = State::Serving(None);
        }
    }

    fn accept(
        &mut self,
        stack: &mut S,
        listener: S::Listener,
        poll: &mut Poll,
        emit: &mut dyn FnMut(&Event<'_>),
    ) {
        while !self.clients.is_full() {
            match stack.tcp_accept(listener) {
                Ok((socket, peer)) => {
                    self.accepted += 1;
                    let id = ConnId::try_from(self.accepted).unwrap_or(ConnId::MAX);
                    let client = Client {
                        id,
                        socket,
                        peer,
                        out: Vec::new(),
                        sent: 0,
                        awaiting_reply: false,
                        peer_closed: false,
                        counter: Counter::default(),
                    };
                    if self.clients.push(client).is_err() {
                        // Cannot happen: checked `is_full` above.
                        stack.tcp_abort(socket);
                        break;
                    }
                    emit(&Event::Accepted { conn: id, peer });
                    poll.progressed = true;
                    if self
                        .config
                        .max_clients
                        .is_some_and(|max| self.accepted >= max)
                    {
                        self.close_listener(stack, emit);
                        break;
                    }
                }
                Err(Error::WouldBlock) => break,
                Err(error) => {
                    emit(&Event::Error {
                        conn: None,
                        peer: None,
                        error,
                    });
                    break;
                }
            }
        }
    }

    /// Serves one client; returns `Err` when the client is gone (closed or failed).
    fn serve(
        mode: ServeMode,
        stack: &mut S,
        client: &mut Client<S::Tcp>,
        buf: &mut [u8; RECV_CHUNK],
        waiting: &mut Deque<ConnId, C>,
        poll: &mut Poll,
        emit: &mut dyn FnMut(&Event<'_>),
    ) -> core::result::Result<(), Gone> {
        loop {
            // Finish sending before reading more: backpressure for slow readers.
            while client.sent < client.out.len() {
                let data = client.out.get(client.sent..).unwrap_or_default();
                match stack.tcp_send(client.socket, data) {
                    Ok(n) => {
                        client.counter.sent(data.get(..n).unwrap_or_default());
                        client.sent += n;
                        poll.progressed = true;
                    }
                    Err(Error::WouldBlock) => return Ok(()),
                    Err(error) => return Err(Gone::Failed(error)),
                }
            }
            if !client.out.is_empty() {
                if mode == ServeMode::Interactive {
                    emit(&Event::Sent {
                        proto: Proto::Tcp,
                        conn: Some(client.id),
                        to: client.peer,
                        len: client.out.len(),
                    });
                }
                client.out.clear();
                client.sent = 0;
            }
            if client.peer_closed {
                return Err(Gone::Closed);
            }
            if client.awaiting_reply {
                return Ok(());
            }
            match stack.tcp_recv(client.socket, buf) {
                Ok(Recv::Data(n)) => {
                    let data = buf.get(..n).unwrap_or_default();
                    client.counter.received(data);
                    poll.progressed = true;
                    if mode != ServeMode::Sink {
                        emit(&Event::Received {
                            proto: Proto::Tcp,
                            conn: Some(client.id),
                            from: client.peer,
                            data,
                            size: n,
                        });
                    }
                    match mode {
                        ServeMode::Echo => {
                            // `data` is at most RECV_CHUNK long, so it always fits.
                            let _ = client.out.extend_from_slice(data);
                        }
                        ServeMode::Interactive => {
                            if waiting.push_back(client.id).is_ok() {
                                client.awaiting_reply = true;
                                emit(&Event::AwaitingReply { conn: client.id });
                            }
                        }
                        ServeMode::Sink => {}
                    }
                }
                Ok(Recv::Eof) => {
                    emit(&Event::PeerClosed {
                        conn: client.id,
                        peer: client.peer,
                    });
                    client.peer_closed = true;
                    poll.progressed = true;
                }
                Err(Error::WouldBlock) => return Ok(()),
                Err(error) => return Err(Gone::Failed(error)),
            }
        }
    }
}

enum Gone {
    Closed,
    Failed(Error),
}

impl<S: Stack, const C: usize> Program<S> for TcpServer<S, C> {
    fn poll(&mut self, stack: &mut S, _now: Instant, emit: &mut dyn FnMut(&Event<'_>)) -> Poll {
        let mut poll = Poll::default();
        if let State::Start = self.state {
            poll.progressed = true;
            match stack.tcp_listen(self.config.port, self.config.backlog) {
                Ok(listener) => {
                    emit(&Event::Listening {
                        local: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, self.config.port),
                        backlog: self.config.backlog,
                    });
                    self.state = State::Serving(Some(listener));
                }
                Err(error) => {
                    emit(&Event::Error {
                        conn: None,
                        peer: None,
                        error,
                    });
                    self.state = State::Done(Err(error));
                    return poll;
                }
            }
        }
        let State::Serving(listener) = self.state else {
            return poll;
        };
        if let Some(listener) = listener {
            self.accept(stack, listener, &mut poll, emit);
        }
        let mut i = 0;
        while let Some(client) = self.clients.get_mut(i) {
            match Self::serve(
                self.config.mode,
                stack,
                client,
                &mut self.buf,
                &mut self.waiting,
                &mut poll,
                emit,
            ) {
                Ok(()) => i += 1,
                Err(gone) => {
                    let (id, socket) = (client.id, client.socket);
                    match gone {
                        Gone::Closed => {
                            stack.tcp_close(socket);
                            emit(&Event::Closed {
                                proto: Proto::Tcp,
                                conn: Some(id),
                                totals: client.counter.totals(),
                            });
                        }
                        Gone::Failed(error) => {
                            stack.tcp_abort(socket);
                            emit(&Event::Error {
                                conn: Some(id),
                                peer: Some(client.peer),
                                error,
                            });
                        }
                    }
                    self.clients.swap_remove(i);
                    let waiting = core::mem::take(&mut self.waiting);
                    for conn in waiting.into_iter().filter(|&c| c != id) {
                        let _ = self.waiting.push_back(conn);
                    }
                    poll.progressed = true;
                }
            }
        }
        // A freed slot may let a client waiting in the backlog in.
        if let State::Serving(Some(listener)) = self.state
            && !self.clients.is_full()
            && poll.progressed
        {
            self.accept(stack, listener, &mut poll, emit);
        }
        if let State::Serving(None) = self.state
            && self.clients.is_empty()
        {
            self.state = State::Done(Ok(()));
        }
        poll
    }

    fn outcome(&self) -> Option<Result<()>> {
        match self.state {
            State::Done(result) => Some(result),
            _ => None,
        }
    }

    fn wants_input(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Answers the client that has waited longest for a reply.
    fn input(&mut self, message: &[u8]) -> Result<()> {
        let conn = *self.waiting.front().ok_or(Error::NobodyWaiting)?;
        let client = self
            .clients
            .iter_mut()
            .find(|c| c.id == conn)
            .ok_or(Error::NobodyWaiting)?;
        client.out.clear();
        client
            .out
            .extend_from_slice(message)
            .map_err(|_| Error::MessageTooLarge {
                len: message.len(),
                max: RECV_CHUNK,
            })?;
        client.sent = 0;
        client.awaiting_reply = false;
        self.waiting.pop_front();
        Ok(())
    }
}
