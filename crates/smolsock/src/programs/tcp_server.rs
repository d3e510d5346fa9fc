//! The seed's TCP server: `bind`, `listen`, then `accept` and serve each client until its
//! `recv` returns 0 bytes.

use core::net::{Ipv4Addr, SocketAddrV4};

use heapless::{Deque, Vec};
use smoltcp::time::{Duration, Instant};

use super::{Liveness, Poll, Program, Run, would_lose};
use crate::error::{Error, Result};
use crate::event::{CloseReason, ConnId, Counter, Event, Proto};
use crate::net::{Recv, Stack, TcpTimeouts};

/// Most bytes one `recv` takes, as in the seed's `recv(1024)` (rule S11).
pub const RECV_CHUNK: usize = 1024;

/// Most bytes one read of [`ServeMode::Sink`] takes: it only counts them, where they lie
/// ([`Stack::tcp_recv_with`]), so a read takes what has arrived.
const SINK_CHUNK: usize = usize::MAX;

/// Whether the sink counts the bytes where they lie instead of copying them through the
/// 1 KiB buffer: on hosts (built with `fast-crc`), where a sink takes gigabits per second;
/// boards keep the copy, which costs them no code.
const SINK_IN_PLACE: bool = cfg!(feature = "fast-crc");

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
    /// Close a connection on which no data moved either way for this long (a FIN, or a
    /// reset when data would be lost); `None`: never. See
    /// [`DEFAULT_IDLE_TIMEOUT`](super::DEFAULT_IDLE_TIMEOUT).
    pub idle_timeout: Option<Duration>,
    /// Keep-alive and give-up the stack applies to each accepted connection. See
    /// [`DEFAULT_TIMEOUTS`](super::DEFAULT_TIMEOUTS).
    pub timeouts: TcpTimeouts,
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
    live: Liveness,
}

/// Serves up to `C` clients at once: each accepted connection is its own socket (S5, S6),
/// more clients wait in the listener's backlog (S12), and a client's close is seen as
/// end-of-stream (S9), after which the server closes its socket too (S8).
pub struct TcpServer<S: Stack, const C: usize> {
    config: TcpServerConfig,
    /// Running on the listener while it is open, on `None` once it is closed and the
    /// accepted clients go on.
    state: Run<Option<S::Listener>>,
    clients: Vec<Client<S::Tcp>, C>,
    waiting: Deque<ConnId, C>,
    accepted: u64,
    buf: [u8; RECV_CHUNK],
    /// Interactive input has ended: nobody can answer any more.
    input_ended: bool,
    /// A reply refused as too long, to report at the next poll: (client, its peer, size).
    refused: Option<(ConnId, SocketAddrV4, usize)>,
}

impl<S: Stack, const C: usize> TcpServer<S, C> {
    /// A server; it listens on its first poll.
    pub fn new(config: TcpServerConfig) -> Self {
        Self {
            config,
            state: Run::Start,
            clients: Vec::new(),
            waiting: Deque::new(),
            accepted: 0,
            buf: [0; RECV_CHUNK],
            input_ended: false,
            refused: None,
        }
    }

    /// The settings it runs with.
    pub fn config(&self) -> TcpServerConfig {
        self.config
    }

    /// Closes the listener: no new clients, the connected ones go on (rule S7).
    pub fn close_listener(&mut self, stack: &mut S, emit: &mut dyn FnMut(&Event<'_>)) {
        if let Run::Running(Some(listener)) = self.state {
            stack.listener_close(listener);
            emit(&Event::ListenerClosed {
                port: self.config.port,
            });
            self.state = Run::Running(None);
        }
    }

    fn accept(
        &mut self,
        stack: &mut S,
        listener: S::Listener,
        now: Instant,
        poll: &mut Poll,
        emit: &mut dyn FnMut(&Event<'_>),
    ) {
        while !self.clients.is_full() {
            match stack.tcp_accept(listener) {
                Ok((socket, peer)) => {
                    stack.tcp_set_timeouts(socket, self.config.timeouts);
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
                        live: Liveness::new(now),
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
            let got = if SINK_IN_PLACE && mode == ServeMode::Sink {
                // Counted where the bytes lie, not copied: nothing else looks at them.
                let counter = &mut client.counter;
                stack.tcp_recv_with(client.socket, SINK_CHUNK, &mut |data| {
                    counter.received(data)
                })
            } else {
                stack.tcp_recv(client.socket, buf)
            };
            match got {
                Ok(Recv::Data(n)) => {
                    poll.progressed = true;
                    let data = buf.get(..n).unwrap_or_default();
                    match mode {
                        ServeMode::Sink if SINK_IN_PLACE => continue,
                        ServeMode::Sink => {}
                        ServeMode::Echo => {
                            // `data` is at most RECV_CHUNK long, so it always fits.
                            let _ = client.out.extend_from_slice(data);
                        }
                        ServeMode::Interactive => {
                            if waiting.push_back(client.id).is_ok() {
                                client.awaiting_reply = true;
                            }
                        }
                    }
                    client.counter.received(data);
                    if mode != ServeMode::Sink {
                        emit(&Event::Received {
                            proto: Proto::Tcp,
                            conn: Some(client.id),
                            from: client.peer,
                            data,
                            size: n,
                        });
                    }
                    if client.awaiting_reply {
                        emit(&Event::AwaitingReply { conn: client.id });
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
    /// No data moved for the idle timeout.
    Expired,
    /// Interactive input ended and nothing is left to send.
    Ended,
}

/// Closes `client` by the program's own decision (idle, shutdown): a FIN, or a reset when
/// data would be lost; reports why, then its totals.
fn close_client<S: Stack>(
    stack: &mut S,
    client: &mut Client<S::Tcp>,
    buf: &mut [u8],
    reason: CloseReason,
    emit: &mut dyn FnMut(&Event<'_>),
) {
    let reset = client.sent < client.out.len()
        || would_lose(stack, client.socket, buf, &mut client.counter);
    emit(&Event::Closing {
        conn: client.id,
        peer: client.peer,
        reason,
        reset,
    });
    if reset {
        stack.tcp_abort(client.socket);
    } else {
        stack.tcp_close(client.socket);
    }
    emit(&Event::Closed {
        proto: Proto::Tcp,
        conn: Some(client.id),
        totals: client.counter.totals(),
    });
}

impl<S: Stack, const C: usize> Program<S> for TcpServer<S, C> {
    fn poll(&mut self, stack: &mut S, now: Instant, emit: &mut dyn FnMut(&Event<'_>)) -> Poll {
        let mut poll = Poll::default();
        if let Run::Start = self.state {
            poll.progressed = true;
            match stack.tcp_listen(self.config.port, self.config.backlog) {
                Ok(listener) => {
                    emit(&Event::Listening {
                        local: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, self.config.port),
                        backlog: self.config.backlog,
                    });
                    self.state = Run::Running(Some(listener));
                }
                Err(error) => {
                    self.state.fail(error, emit);
                    return poll;
                }
            }
        }
        if let Some((conn, peer, len)) = self.refused.take() {
            // The client still waits: the next line typed answers it.
            emit(&Event::Error {
                conn: Some(conn),
                peer: Some(peer),
                error: Error::MessageTooLarge {
                    len,
                    max: RECV_CHUNK,
                },
            });
            poll.progressed = true;
        }
        if self.input_ended {
            // End of interactive input: no new clients; each one is closed once its
            // last reply has been acknowledged, or at once when it waits for one.
            self.close_listener(stack, emit);
        }
        let Run::Running(listener) = self.state else {
            return poll;
        };
        if let Some(listener) = listener {
            self.accept(stack, listener, now, &mut poll, emit);
        }
        let idle = self.config.idle_timeout;
        let mut i = 0;
        while let Some(client) = self.clients.get_mut(i) {
            client
                .live
                .observe(stack, client.socket, &client.counter, now);
            let served = Self::serve(
                self.config.mode,
                stack,
                client,
                &mut self.buf,
                &mut self.waiting,
                &mut poll,
                emit,
            );
            client
                .live
                .observe(stack, client.socket, &client.counter, now);
            let served = match served {
                Ok(()) if client.live.expired(idle, now) => Err(Gone::Expired),
                Ok(())
                    if self.input_ended
                        && (client.awaiting_reply
                            || (client.out.is_empty()
                                && stack.tcp_unacked(client.socket) == 0)) =>
                {
                    Err(Gone::Ended)
                }
                other => other,
            };
            match served {
                Ok(()) => {
                    poll.merge_wake(client.live.deadline(idle));
                    i += 1;
                }
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
                        Gone::Expired => {
                            let secs = idle.map_or(0, |d| d.total_millis() / 1000);
                            let reason = CloseReason::Idle { secs };
                            close_client(stack, client, &mut self.buf, reason, emit);
                        }
                        Gone::Ended => {
                            let reason = CloseReason::Shutdown;
                            close_client(stack, client, &mut self.buf, reason, emit);
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
        if let Run::Running(Some(listener)) = self.state
            && !self.clients.is_full()
            && poll.progressed
        {
            self.accept(stack, listener, now, &mut poll, emit);
        }
        if let Run::Running(None) = self.state
            && self.clients.is_empty()
        {
            self.state = Run::Done(Ok(()));
        }
        poll
    }

    fn outcome(&self) -> Option<Result<()>> {
        self.state.outcome()
    }

    fn wants_input(&self) -> bool {
        !self.waiting.is_empty()
    }

    fn end_input(&mut self) {
        // End of stdin in interactive mode: nobody can answer any more, so the server
        // ends (the driver shuts it down). Other modes take no input and go on.
        if self.config.mode == ServeMode::Interactive {
            self.input_ended = true;
        }
    }

    fn shutdown(&mut self, stack: &mut S, emit: &mut dyn FnMut(&Event<'_>)) {
        self.close_listener(stack, emit);
        for mut client in core::mem::take(&mut self.clients) {
            close_client(
                stack,
                &mut client,
                &mut self.buf,
                CloseReason::Shutdown,
                emit,
            );
        }
        self.waiting.clear();
        self.state.end();
    }

    /// Answers the client that has waited longest for a reply. A reply longer than
    /// [`RECV_CHUNK`] is refused (reported at the next poll as an error event) and the
    /// client goes on waiting: the server itself goes on.
    fn input(&mut self, message: &[u8]) -> Result<()> {
        let conn = *self.waiting.front().ok_or(Error::NobodyWaiting)?;
        let client = self
            .clients
            .iter_mut()
            .find(|c| c.id == conn)
            .ok_or(Error::NobodyWaiting)?;
        if message.len() > RECV_CHUNK {
            self.refused = Some((conn, client.peer, message.len()));
            return Ok(());
        }
        client.out.clear();
        // Fits: checked just above.
        let _ = client.out.extend_from_slice(message);
        client.sent = 0;
        client.awaiting_reply = false;
        self.waiting.pop_front();
        Ok(())
    }
}
