//! The one thread that receives for `cefwire sink`: a mio event loop over
//! the listener and every stream connection (TCP or TLS), or over the UDP
//! socket. Readiness is edge-triggered, so each ready socket is read until
//! it would block; a connection that still has data after its share of a
//! turn is served again in the next one (poll without waiting), so one
//! flooding sender cannot starve the others. The loop checks the stop flag
//! at least every [`POLL_WAIT`].
//!
//! It owns the poll, the connection table and the cap on open connections;
//! reading and deframing one connection is `connection.rs`, the counters
//! and the report are the caller's.

use super::connection::{Connection, Turn};
use super::{BoundSocket, Receiving};
use mio::net::{TcpListener, UdpSocket};
use mio::{Events, Interest, Poll, Token};
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The listening socket (TCP) or the socket (UDP).
const LISTENER: Token = Token(usize::MAX);

/// Longest sleep in `poll`: how soon a stop is noticed.
const POLL_WAIT: Duration = Duration::from_millis(50);

/// Connections accepted in one turn before the others are served.
const ACCEPTS_PER_TURN: usize = 256;

/// Reads shared by every connection (plaintext after TLS).
const READ_BUFFER: usize = 1 << 20;

/// Datagrams per `recvmmsg` call, the largest datagram, and the calls in
/// one turn.
const DATAGRAMS_PER_CALL: usize = 64;
const MAX_DATAGRAM: usize = 65_536;
const DATAGRAM_CALLS_PER_TURN: usize = 64;

/// Receives on `socket` until `shared.stop` is set.
pub(super) fn run(
    socket: BoundSocket,
    tls: Option<Arc<rustls::ServerConfig>>,
    shared: &Receiving,
    max_connections: usize,
) -> io::Result<()> {
    let poll = Poll::new()?;
    match socket {
        BoundSocket::Stream(listener) => {
            Streams::new(poll, listener, tls, max_connections)?.run(shared);
        }
        BoundSocket::Datagram(socket) => receive_datagrams(poll, socket, shared)?,
    }
    Ok(())
}

/// Whether to accept again in the next turn.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Accepting {
    /// Until the listener is readable again.
    Wait,
    /// More may be waiting: at once.
    Now,
    /// Accepting failed (out of file descriptors): after a poll wait.
    Later,
}

struct Streams {
    poll: Poll,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    max_connections: usize,
    /// Indexed by token; `None` slots are listed in `free`.
    table: Vec<Option<Connection>>,
    free: Vec<usize>,
    open: usize,
    accepting: Accepting,
    /// Connections that stopped after their share with more to read.
    again: Vec<usize>,
}

impl Streams {
    fn new(
        poll: Poll,
        mut listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        max_connections: usize,
    ) -> io::Result<Self> {
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(Self {
            poll,
            listener,
            tls,
            max_connections: max_connections.max(1),
            table: Vec::new(),
            free: Vec::new(),
            open: 0,
            // Connections may have queued before the registration.
            accepting: Accepting::Now,
            again: Vec::new(),
        })
    }

    fn run(mut self, shared: &Receiving) {
        let mut events = Events::with_capacity(1024);
        let mut ready = Vec::new();
        let mut scratch = vec![0u8; READ_BUFFER];
        let mut out = Vec::new();
        while !shared.stop.load(Ordering::Acquire) {
            let busy = !self.again.is_empty() || self.accepting == Accepting::Now;
            match self.poll.poll(&mut events, Some(if busy { Duration::ZERO } else { POLL_WAIT })) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                // Not expected from epoll; a pause rather than a busy loop.
                Err(_) => std::thread::sleep(POLL_WAIT),
            }
            ready.append(&mut self.again);
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accepting = Accepting::Now,
                    Token(index) => ready.push(index),
                }
            }
            if self.accepting != Accepting::Wait {
                self.accept(shared);
            }
            for index in ready.drain(..) {
                self.serve(index, shared, &mut scratch, &mut out);
            }
        }
    }

    /// Accepts what is waiting: up to the cap served, the rest closed
    /// at once and counted as refused.
    fn accept(&mut self, shared: &Receiving) {
        let counters = &shared.counters;
        for _ in 0..ACCEPTS_PER_TURN {
            let mut stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    self.accepting = Accepting::Wait;
                    return;
                }
                Err(err) if is_transient_accept_error(&err) => continue,
                Err(_) => {
                    // EMFILE/ENFILE/ENOBUFS: the connection stays queued.
                    self.accepting = Accepting::Later;
                    return;
                }
            };
            if self.open >= self.max_connections {
                counters.refused_connections.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let tls = match &self.tls {
                Some(config) => match rustls::ServerConnection::new(Arc::clone(config)) {
                    Ok(session) => Some(session),
                    Err(_) => continue,
                },
                None => None,
            };
            let index = self.free.pop().unwrap_or_else(|| {
                self.table.push(None);
                self.table.len() - 1
            });
            // TLS writes handshake records: wait for WRITABLE too.
            let interest = if tls.is_some() { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
            if self.poll.registry().register(&mut stream, Token(index), interest).is_err() {
                self.free.push(index);
                continue;
            }
            counters.connections.fetch_add(1, Ordering::Relaxed);
            self.table[index] = Some(Connection::new(stream, tls));
            self.open += 1;
            // Data sent before the registration: the poll reports it.
        }
        self.accepting = Accepting::Now;
    }

    fn serve(&mut self, index: usize, shared: &Receiving, scratch: &mut [u8], out: &mut Vec<u8>) {
        let Some(connection) = self.table.get_mut(index).and_then(Option::as_mut) else {
            return; // closed earlier in this turn
        };
        match connection.serve(shared, scratch, out) {
            Ok(Turn::Idle) => {}
            Ok(Turn::More) => self.again.push(index),
            // A flood is counted as a framing error by the connection;
            // other errors end the connection as the end of stream would.
            Ok(Turn::Closed) | Err(_) => self.close(index),
        }
    }

    fn close(&mut self, index: usize) {
        if let Some(mut connection) = self.table[index].take() {
            let _ = self.poll.registry().deregister(&mut connection.stream);
            self.free.push(index);
            self.open -= 1;
        }
    }
}

/// The peer gave up before the connection was accepted, or a signal:
/// accept the next one.
fn is_transient_accept_error(err: &io::Error) -> bool {
    matches!(err.kind(), io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset)
}

/// Datagrams: one message each (a trailing LF or CRLF dropped).
fn receive_datagrams(mut poll: Poll, mut socket: UdpSocket, shared: &Receiving) -> io::Result<()> {
    poll.registry().register(&mut socket, LISTENER, Interest::READABLE)?;
    let mut events = Events::with_capacity(4);
    let mut buffers = vec![0u8; DATAGRAMS_PER_CALL * MAX_DATAGRAM];
    let mut lengths = [0usize; DATAGRAMS_PER_CALL];
    let mut out = Vec::new();
    let keep = shared.out.is_some();
    shared.counters.connections.fetch_add(1, Ordering::Relaxed);
    // Datagrams may have queued before the registration.
    let mut more = true;
    while !shared.stop.load(Ordering::Acquire) {
        match poll.poll(&mut events, Some(if more { Duration::ZERO } else { POLL_WAIT })) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => std::thread::sleep(POLL_WAIT),
        }
        more = more || !events.is_empty();
        if !more {
            continue;
        }
        more = false;
        for call in 0..DATAGRAM_CALLS_PER_TURN {
            let received = match receive_many(&socket, &mut buffers, &mut lengths) {
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                // ICMP errors and the like (each reported once): the
                // datagrams behind them are read in the next turn.
                Err(_) => {
                    more = true;
                    break;
                }
            };
            let (mut messages, mut bytes, mut hash) = (0u64, 0u64, 0u64);
            for (i, &len) in lengths.iter().enumerate().take(received) {
                let data = &buffers[i * MAX_DATAGRAM..i * MAX_DATAGRAM + len];
                bytes += len as u64;
                let message = data.strip_suffix(b"\n").unwrap_or(data);
                let message = message.strip_suffix(b"\r").unwrap_or(message);
                if message.is_empty() {
                    continue;
                }
                messages += 1;
                hash = hash.wrapping_add(super::message_hash(message));
                if keep {
                    out.extend_from_slice(message);
                    out.push(b'\n');
                }
            }
            if shared.account(messages, bytes, hash, &mut out).is_err() {
                return Ok(()); // the run ends with the --out error
            }
            more = call + 1 == DATAGRAM_CALLS_PER_TURN;
        }
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn receive_many(socket: &UdpSocket, buffers: &mut [u8], lengths: &mut [usize]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: plain C structs, zero is a valid initial value.
    let mut iovecs: [libc::iovec; DATAGRAMS_PER_CALL] = unsafe { std::mem::zeroed() };
    let mut headers: [libc::mmsghdr; DATAGRAMS_PER_CALL] = unsafe { std::mem::zeroed() };
    for i in 0..DATAGRAMS_PER_CALL {
        iovecs[i] = libc::iovec { iov_base: buffers[i * MAX_DATAGRAM..].as_mut_ptr().cast(), iov_len: MAX_DATAGRAM };
        headers[i].msg_hdr.msg_iov = &mut iovecs[i];
        headers[i].msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: every header points at its own MAX_DATAGRAM-byte slice of
    // `buffers`, alive for the call. The socket is non-blocking: the call
    // takes what is queued or fails with EAGAIN.
    let rc = unsafe {
        libc::recvmmsg(
            socket.as_raw_fd(),
            headers.as_mut_ptr(),
            DATAGRAMS_PER_CALL as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    for (i, header) in headers.iter().enumerate().take(rc as usize) {
        lengths[i] = header.msg_len as usize;
    }
    Ok(rc as usize)
}

#[cfg(not(target_os = "linux"))]
fn receive_many(socket: &UdpSocket, buffers: &mut [u8], lengths: &mut [usize]) -> io::Result<usize> {
    lengths[0] = socket.recv(&mut buffers[..MAX_DATAGRAM])?;
    Ok(1)
}
