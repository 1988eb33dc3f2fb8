//! The writer thread: one mio event loop that owns every connection.
//!
//! Each turn of the loop is a row of named steps (`Writer::run`): take the
//! batches handed over, write, give written batches back, run the timers
//! (connect, fail back, give up), then sleep in `poll` and dispatch the
//! events. The sleep and the producer's wake-up meet in `wakeup.rs`.
//!
//! It takes full batches from the producer's channel into an ordered
//! queue, writes them eagerly to each connection and waits for `WRITABLE`
//! only after `WouldBlock` (mio readiness is edge-triggered). A partial
//! write is resumed from its byte offset. Stream connections are opened
//! non-blocking and confirmed with `take_error()` + `peer_addr()`; a broken
//! one is closed, its loss estimated, and reopened after an exponential,
//! jittered backoff, resuming from the first frame not completely written.
//! A batch goes back to the pool once every lane has it confirmed; that is
//! when its messages count as written (delivered):
//! - TCP and TLS: the peer's TCP acknowledged all its bytes (what was
//!   written minus what the kernel still holds, `SIOCOUTQ`; for TLS,
//!   conservatively, the plaintext of the ciphertext it acknowledged). Until then the batch is kept, so that
//!   after a break exactly the bytes the peer did not acknowledge are
//!   written again, from the start of the first frame they touch.
//! - RELP (`relp.rs`): the receiver answered `200` to each of its messages.
//!   After a break the session is opened again and exactly the messages
//!   not answered are sent again.
//! - UDP: handed to the network.
//!
//! Lanes: in fan-out every destination is a lane and gets every batch; in
//! failover there is one lane whose connections move along the list of
//! destinations. With N connections per lane, batch `s` goes to connection
//! `s % N`.
//!
//! It must not touch message contents: it only sees frames in batches.

use super::batch::Batch;
use super::relp::{self, Answered, MessageAt, RelpWindow, ServerFrame};
use super::udp::{DatagramScratch, send_datagrams};
use super::{DeliveryMode, Destination, SendConfig, Shared, Transport};
use crate::syslog::frame::Framing;
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use mio::net::{TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The token of the waker the producer uses.
pub(super) const WAKER: Token = Token(usize::MAX);

/// Plaintext rustls may hold before `writer().write` pushes back.
const TLS_BUFFER_LIMIT: usize = 256 * 1024;

/// Sample the peer's receive window every this many batches.
const WINDOW_SAMPLE_EVERY: u64 = 16;

/// Longest wait for receivers to close their side at the end.
const LINGER_LIMIT: Duration = Duration::from_secs(5);

/// Longest sleep in `poll` (timers are checked at least this often).
const MAX_POLL_WAIT: Duration = Duration::from_millis(500);

/// While a stream has bytes its peer has not acknowledged, the writer looks
/// at `TCP_INFO` again this often (the kernel does not say when an
/// acknowledgement arrives).
const ACK_RECHECK: Duration = Duration::from_millis(5);

/// RELP commands are encoded into a buffer of about this size, then written.
const RELP_OUT_TARGET: usize = 128 * 1024;

pub(super) struct WriterSetup {
    pub poll: Poll,
    pub config: SendConfig,
    pub framing: Framing,
    pub tls: Option<Arc<ClientConfig>>,
    pub from_producer: Receiver<Batch>,
    pub to_pool: Sender<Batch>,
    pub batches: usize,
    pub started: Instant,
}

/// A batch waiting to be confirmed by `remaining` more lanes.
struct Queued {
    batch: Batch,
    remaining: usize,
}

enum Link {
    Down,
    Connecting { stream: TcpStream, deadline: Instant },
    Tcp(TcpStream),
    Tls(TcpStream, Box<rustls::ClientConnection>),
    Udp(UdpSocket),
}

/// One connection of a lane, and where it is in the queue.
struct Conn {
    lane: usize,
    /// Next batch sequence number this connection writes.
    next_seq: u64,
    /// Byte offset (streams) or message index (datagrams) in that batch.
    offset: usize,
    /// Index into the lane's destinations (failover moves it).
    endpoint: usize,
    link: Link,
    /// Got `WouldBlock`; wait for `WRITABLE`.
    blocked: bool,
    backoff: Duration,
    retry_at: Instant,
    down_since: Option<Instant>,
    /// `down_since` before the connection last came up: a TLS session
    /// the peer then refuses (certificate, handshake) never was up, and
    /// the outage goes on from there (it counts toward `give_up_after`).
    down_before_up: Option<Instant>,
    up_since: Instant,
    ever_up: bool,
    /// Since this connection came up: bytes written to the socket, frames
    /// completed, largest send window seen (for the loss estimate).
    wire_bytes: u64,
    frames: u64,
    max_window: u64,
    batches_done: u64,
    /// Our FIN was sent (at the end of the run).
    shut_down: bool,
    /// Streams (not RELP): batches completely written since this
    /// connection came up and not yet confirmed by the peer's TCP, oldest
    /// first, with where they lie in [`stream_pos`](Self::stream_pos).
    unconfirmed: VecDeque<Unconfirmed>,
    /// Streams: bytes of batches handed to the transport since this
    /// connection came up (TLS: plaintext handed to rustls).
    stream_pos: u64,
    /// TLS: plaintext handed to rustls since its outgoing buffer was last
    /// empty (possibly not on the wire yet).
    tls_unflushed: u64,
    /// RELP destinations: the session.
    relp: Option<Box<RelpSession>>,
}

/// A batch a stream wrote and its peer has not acknowledged yet.
#[derive(Clone, Copy, Debug)]
struct Unconfirmed {
    seq: u64,
    start: u64,
    end: u64,
}

/// Where a RELP session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RelpState {
    /// Waiting for the answer to `open` (transaction number).
    Opening(u32),
    /// Messages may be sent.
    Open,
}

/// One RELP session over a connection: the window, the bytes to write and
/// the answers read so far. Reused across reconnections.
struct RelpSession {
    state: RelpState,
    window: RelpWindow,
    out: Vec<u8>,
    /// Bytes of `out` already written.
    out_at: usize,
    input: Box<[u8]>,
    input_len: usize,
}

impl RelpSession {
    fn new(window: usize, max_message: usize) -> Self {
        Self {
            state: RelpState::Opening(0),
            window: RelpWindow::new(window),
            out: Vec::with_capacity(RELP_OUT_TARGET + max_message + relp::SYSLOG_FRAME_OVERHEAD),
            out_at: 0,
            input: vec![0; relp::MAX_RESPONSE_BYTES + 64].into_boxed_slice(),
            input_len: 0,
        }
    }

    /// A new connection: forget the old session and queue `open`.
    fn start(&mut self) {
        self.window.reset();
        self.out.clear();
        self.out_at = 0;
        self.input_len = 0;
        let txnr = self.window.take_txnr();
        relp::encode_open(&mut self.out, txnr);
        self.state = RelpState::Opening(txnr);
    }

    fn has_unwritten(&self) -> bool {
        self.out_at < self.out.len()
    }
}

impl Conn {
    /// This connection wrote (RELP: sent) its whole batch: on to its next
    /// one. A stream remembers the batch until its peer acknowledged it.
    fn batch_written(&mut self, messages: usize, bytes: usize, per_lane: u64) {
        if self.relp.is_none() && matches!(self.link, Link::Tcp(_) | Link::Tls(..)) {
            let end = self.stream_pos;
            self.unconfirmed.push_back(Unconfirmed { seq: self.next_seq, start: end - bytes as u64, end });
        }
        self.frames += messages as u64;
        self.offset = 0;
        self.next_seq += per_lane;
        // The peer's window, for the loss estimate: a getsockopt costs
        // about as much as a small write, so not every batch.
        self.batches_done += 1;
        if self.batches_done % WINDOW_SAMPLE_EVERY == 1
            && let Link::Tcp(stream) | Link::Tls(stream, _) = &self.link
            && let Some(info) = tcp_info(stream)
        {
            self.max_window = self.max_window.max(info.send_window);
        }
    }
}

struct Writer {
    poll: Poll,
    config: SendConfig,
    framing: Framing,
    tls: Option<Arc<ClientConfig>>,
    from_producer: Receiver<Batch>,
    to_pool: Sender<Batch>,
    queue: VecDeque<Queued>,
    /// Sequence number of `queue[0]`, and one past the last queued.
    front_seq: u64,
    end_seq: u64,
    /// Destinations of each lane (one in fan-out, all in failover).
    lanes: Vec<Vec<Destination>>,
    conns: Vec<Conn>,
    per_lane: u64,
    shared: Arc<Shared>,
    started: Instant,
    input_closed: bool,
    read_scratch: Box<[u8]>,
    datagrams: DatagramScratch,
    rng: u64,
}

pub(super) fn run(setup: WriterSetup, shared: Arc<Shared>) {
    let mut writer = Writer::new(setup, Arc::clone(&shared));
    match writer.run() {
        Ok(()) if writer.input_closed && writer.queue.is_empty() => {
            // Everything written: end each stream so that the receiver reads
            // all of it, within what is left of the drain time (at most 5 s).
            let linger = Instant::now() + LINGER_LIMIT;
            writer.close_streams(writer.drain_deadline().map_or(linger, |drain| drain.min(linger)));
        }
        Ok(()) => {}
        Err(failure) => *writer.shared.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(failure),
    }
    writer.close_all();
    // Dropping the pool sender tells a waiting producer the writer is gone.
    drop(writer);
    shared.pool.announce();
}

impl Writer {
    fn new(setup: WriterSetup, shared: Arc<Shared>) -> Self {
        let config = setup.config;
        let lanes: Vec<Vec<Destination>> = match config.mode {
            DeliveryMode::FanOut => config.destinations.iter().map(|d| vec![d.clone()]).collect(),
            DeliveryMode::Failover => vec![config.destinations.clone()],
        };
        let per_lane = config.connections.max(1);
        let now = Instant::now();
        let mut conns = Vec::new();
        for lane in 0..lanes.len() {
            for slot in 0..per_lane {
                conns.push(Conn {
                    lane,
                    next_seq: slot as u64,
                    offset: 0,
                    endpoint: 0,
                    link: Link::Down,
                    blocked: false,
                    backoff: config.backoff.initial,
                    retry_at: now,
                    down_since: None,
                    down_before_up: None,
                    up_since: now,
                    ever_up: false,
                    wire_bytes: 0,
                    frames: 0,
                    max_window: 0,
                    batches_done: 0,
                    shut_down: false,
                    unconfirmed: VecDeque::with_capacity(setup.batches + 1),
                    stream_pos: 0,
                    tls_unflushed: 0,
                    relp: None,
                });
            }
        }
        let seed = setup.started.elapsed().as_nanos() as u64 ^ u64::from(std::process::id()) ^ 0x9E37_79B9_7F4A_7C15;
        Self {
            poll: setup.poll,
            framing: setup.framing,
            tls: setup.tls,
            from_producer: setup.from_producer,
            to_pool: setup.to_pool,
            queue: VecDeque::with_capacity(setup.batches + 1),
            front_seq: 0,
            end_seq: 0,
            lanes,
            conns,
            per_lane: per_lane as u64,
            shared,
            started: setup.started,
            input_closed: false,
            read_scratch: vec![0; 16 * 1024].into_boxed_slice(),
            datagrams: DatagramScratch::default(),
            rng: seed | 1,
            config,
        }
    }

    /// Runs until input ended and everything is written, the drain deadline
    /// passes, or a destination is down past `give_up_after` (the `Err`).
    /// Each turn: take what the producer handed over, write, give written
    /// batches back, run the timers, then sleep in `poll` until a socket,
    /// the producer or the next timer wakes it.
    fn run(&mut self) -> Result<(), String> {
        let mut events = Events::with_capacity(256);
        loop {
            self.take_batches();
            self.pump_all();
            self.confirm_streams();
            self.release_written();
            let now = Instant::now();
            self.run_connection_timers(now);
            self.fail_back_when_due(now);
            self.give_up_if_down_too_long(now)?;
            if self.input_closed && self.queue.is_empty() {
                return Ok(());
            }
            let drain_deadline = self.drain_deadline();
            if drain_deadline.is_some_and(|deadline| now >= deadline) {
                return Ok(());
            }
            let wake_at = self.next_timer(now).min(drain_deadline.unwrap_or(now + MAX_POLL_WAIT));
            self.sleep(&mut events, wake_at)?;
            for event in events.iter() {
                self.dispatch(event);
            }
        }
    }

    /// Writes to every connection that is not waiting for `WRITABLE`.
    fn pump_all(&mut self) {
        for index in 0..self.conns.len() {
            if !self.conns[index].blocked {
                self.pump(index);
            }
        }
    }

    /// Connects what is due for a retry; fails attempts past their deadline.
    fn run_connection_timers(&mut self, now: Instant) {
        for index in 0..self.conns.len() {
            match &self.conns[index].link {
                Link::Down if self.conns[index].retry_at <= now => self.connect(index),
                Link::Connecting { deadline, .. } if *deadline <= now => {
                    self.fail(index, io::Error::new(io::ErrorKind::TimedOut, "connection attempt timed out"))
                }
                _ => {}
            }
        }
    }

    /// The earliest retry or connection deadline (or, while a stream waits
    /// for its peer's acknowledgement, [`ACK_RECHECK`]), at most
    /// [`MAX_POLL_WAIT`] away.
    fn next_timer(&self, now: Instant) -> Instant {
        let timers = self.conns.iter().filter_map(|conn| match &conn.link {
            Link::Down => Some(conn.retry_at),
            Link::Connecting { deadline, .. } => Some(*deadline),
            Link::Tcp(_) | Link::Tls(..) if !conn.unconfirmed.is_empty() => Some(now + ACK_RECHECK),
            _ => None,
        });
        timers.fold(now + MAX_POLL_WAIT, Instant::min)
    }

    /// Failover: a connection that has been on a later destination for
    /// `failback_after` goes back to the first one at a batch boundary.
    fn fail_back_when_due(&mut self, now: Instant) {
        for index in 0..self.conns.len() {
            let conn = &self.conns[index];
            let up = matches!(conn.link, Link::Tcp(_) | Link::Tls(..) | Link::Udp(_));
            let settled = conn.unconfirmed.is_empty() && conn.relp.as_ref().is_none_or(|r| r.window.is_empty());
            if up
                && settled
                && conn.endpoint != 0
                && conn.offset == 0
                && now - conn.up_since >= self.config.failback_after
            {
                self.fail_back(index);
            }
        }
    }

    fn give_up_if_down_too_long(&self, now: Instant) -> Result<(), String> {
        let Some(limit) = self.config.give_up_after else { return Ok(()) };
        let Some(conn) = self.conns.iter().find(|c| c.down_since.is_some_and(|t| now - t >= limit)) else {
            return Ok(());
        };
        let destination = &self.lanes[conn.lane][conn.endpoint];
        let last = self.shared.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Err(format!(
            "{destination}: down for {} s, giving up (last error: {})",
            limit.as_secs(),
            last.unwrap_or_else(|| "none".into())
        ))
    }

    /// When the producer finished: the end of the time left to drain.
    fn drain_deadline(&self) -> Option<Instant> {
        let drain_ms = self.shared.drain_deadline_ms.load(Ordering::Acquire);
        (drain_ms > 0).then(|| self.started + Duration::from_millis(drain_ms))
    }

    /// Sleeps in `poll` until `wake_at`, unless the producer has handed
    /// over a batch meanwhile (then `events` is left empty).
    fn sleep(&mut self, events: &mut Events, wake_at: Instant) -> Result<(), String> {
        events.clear();
        if !self.shared.bell.park_unless(|| !self.from_producer.is_empty()) {
            return Ok(());
        }
        let timeout = wake_at.saturating_duration_since(Instant::now());
        let polled = self.poll.poll(events, Some(timeout));
        self.shared.bell.unpark();
        match polled {
            Ok(()) => Ok(()),
            Err(err) if interrupted(&err) => Ok(()),
            Err(err) => Err(format!("poll failed: {err}")),
        }
    }

    /// Hands a readiness event to its connection (the waker's event only
    /// ends the sleep).
    fn dispatch(&mut self, event: &mio::event::Event) {
        let index = event.token().0;
        if event.token() == WAKER || index >= self.conns.len() {
            return;
        }
        self.on_event(index, event.is_readable() || event.is_read_closed(), event.is_writable());
    }

    fn take_batches(&mut self) {
        loop {
            match self.from_producer.try_recv() {
                Ok(batch) => {
                    self.queue.push_back(Queued { batch, remaining: self.lanes.len() });
                    self.end_seq += 1;
                }
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    self.input_closed = true;
                    return;
                }
            }
        }
    }

    /// Returns fully written batches to the pool, oldest first.
    fn release_written(&mut self) {
        let mut released = 0u64;
        while self.queue.front().is_some_and(|q| q.remaining == 0) {
            let mut queued = self.queue.pop_front().expect("front exists");
            released += queued.batch.messages() as u64;
            queued.batch.clear();
            self.front_seq += 1;
            // The pool channel holds every batch: this never blocks, and
            // fails only when the producer is gone.
            let _ = self.to_pool.try_send(queued.batch);
        }
        if released > 0 {
            self.shared.pool.announce();
            self.shared.messages_written.fetch_add(released, Ordering::AcqRel);
            self.shared.written.announce();
        }
    }

    fn on_event(&mut self, index: usize, readable: bool, writable: bool) {
        let conn = &mut self.conns[index];
        match &mut conn.link {
            Link::Connecting { stream, .. } => {
                if !(readable || writable) {
                    return;
                }
                match stream.take_error() {
                    Ok(None) => {}
                    Ok(Some(err)) | Err(err) => return self.fail(index, err),
                }
                match stream.peer_addr() {
                    Ok(_) => self.established(index),
                    // Not connected yet (a spurious wake-up): keep waiting.
                    Err(err) if err.kind() == io::ErrorKind::NotConnected => {}
                    Err(err) => self.fail(index, err),
                }
            }
            Link::Tcp(_) | Link::Tls(..) if conn.relp.is_some() => {
                if writable {
                    conn.blocked = false;
                }
                if readable && let Err(err) = self.read_relp(index) {
                    return self.fail(index, err);
                }
                // Answers free the window; reading may move TLS on.
                if !self.conns[index].blocked {
                    self.pump(index);
                }
            }
            Link::Tcp(stream) => {
                if readable && let Err(err) = drain_reads(stream, &mut self.read_scratch) {
                    return self.fail(index, err);
                }
                if writable {
                    conn.blocked = false;
                    self.pump(index);
                }
            }
            Link::Tls(stream, tls) => {
                if readable && let Err(err) = drain_tls_reads(stream, tls, &mut self.read_scratch) {
                    return self.fail(index, err);
                }
                if writable {
                    conn.blocked = false;
                }
                // Reading may have moved the handshake on: write.
                if !conn.blocked {
                    self.pump(index);
                }
            }
            Link::Udp(_) => {
                if writable {
                    conn.blocked = false;
                    self.pump(index);
                }
            }
            Link::Down => {}
        }
    }

    fn connect(&mut self, index: usize) {
        let conn = &self.conns[index];
        let destination = self.lanes[conn.lane][conn.endpoint].clone();
        let addr = match destination.authority().to_socket_addrs().map(|mut a| a.next()) {
            Ok(Some(addr)) => addr,
            Ok(None) => return self.fail(index, io::Error::new(io::ErrorKind::NotFound, "name has no address")),
            Err(err) => return self.fail(index, err),
        };
        let conn = &mut self.conns[index];
        if destination.transport.is_relp() {
            let max_message = self.config.max_message_bytes.unwrap_or(relp::DEFAULT_MAX_MESSAGE_BYTES);
            conn.relp.get_or_insert_with(|| Box::new(RelpSession::new(self.config.relp_window, max_message)));
        } else {
            conn.relp = None;
        }
        let registry = self.poll.registry();
        match destination.transport {
            Transport::Udp => match open_datagram_socket(addr, registry, Token(index)) {
                Ok(socket) => {
                    self.conns[index].link = Link::Udp(socket);
                    self.came_up(index);
                }
                Err(err) => self.fail(index, err),
            },
            // Confirmed later, in `on_event` (or failed by the timer).
            Transport::Tcp | Transport::Tls | Transport::Relp | Transport::RelpTls => {
                match start_stream_connect(addr, registry, Token(index)) {
                    Ok(stream) => {
                        let deadline = Instant::now() + self.config.connect_timeout;
                        self.conns[index].link = Link::Connecting { stream, deadline };
                    }
                    Err(err) => self.fail(index, err),
                }
            }
        }
    }

    /// A non-blocking connect completed.
    fn established(&mut self, index: usize) {
        let conn = &mut self.conns[index];
        let Link::Connecting { stream, .. } = std::mem::replace(&mut conn.link, Link::Down) else { return };
        let _ = stream.set_nodelay(true);
        let destination = &self.lanes[conn.lane][conn.endpoint];
        if destination.transport.is_tls() {
            let config = Arc::clone(self.tls.as_ref().expect("TLS config exists when a TLS destination does"));
            let name = match ServerName::try_from(destination.host.clone()) {
                Ok(name) => name,
                Err(err) => return self.fail(index, io::Error::new(io::ErrorKind::InvalidInput, err)),
            };
            match rustls::ClientConnection::new(config, name) {
                Ok(mut tls) => {
                    tls.set_buffer_limit(Some(TLS_BUFFER_LIMIT));
                    conn.link = Link::Tls(stream, Box::new(tls));
                }
                Err(err) => return self.fail(index, io::Error::other(err)),
            }
        } else {
            conn.link = Link::Tcp(stream);
        }
        // Positions count from the start of the batch being resumed, so the
        // part of it written before the break lies before this stream.
        conn.stream_pos = conn.offset as u64;
        conn.tls_unflushed = 0;
        conn.unconfirmed.clear();
        conn.wire_bytes = 0;
        conn.frames = 0;
        conn.max_window = 0;
        match &mut conn.relp {
            // Up once the receiver accepted the session (`read_relp`).
            Some(session) => session.start(),
            None => self.came_up(index),
        }
        self.pump(index);
    }

    fn came_up(&mut self, index: usize) {
        let conn = &mut self.conns[index];
        self.shared.connects.fetch_add(1, Ordering::Relaxed);
        if conn.ever_up {
            self.shared.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        conn.ever_up = true;
        conn.down_before_up = conn.down_since.take();
        conn.up_since = Instant::now();
        conn.backoff = self.config.backoff.initial;
        conn.blocked = false;
    }

    /// Streams: batches whose every byte the peer's TCP acknowledged are
    /// confirmed for their lane.
    fn confirm_streams(&mut self) {
        for conn in &mut self.conns {
            if conn.unconfirmed.is_empty() {
                continue;
            }
            if let Some(confirmed) = confirmed_position(conn) {
                confirm_up_to(conn, &mut self.queue, self.front_seq, confirmed);
            }
        }
    }

    /// Writes as much as the connection takes; a failure closes it.
    fn pump(&mut self, index: usize) {
        if let Err(err) = self.pump_inner(index) {
            self.fail(index, err);
        }
    }

    /// Writes the connection's batches in turn until it would block, runs
    /// out of batches or cannot write yet (down, connecting, handshaking).
    fn pump_inner(&mut self, index: usize) -> io::Result<()> {
        if self.conns[index].relp.is_some() {
            return self.pump_relp(index);
        }
        let Writer { conns, queue, shared, datagrams, framing, config, front_seq, end_seq, per_lane, .. } = self;
        let conn = &mut conns[index];
        loop {
            if !flush_tls(conn)? {
                conn.blocked = true;
                return Ok(());
            }
            if conn.next_seq >= *end_seq {
                return Ok(());
            }
            let queued = &mut queue[(conn.next_seq - *front_seq) as usize];
            let written = match &mut conn.link {
                Link::Tcp(stream) => {
                    let written = write_stream(stream, &queued.batch.bytes, &mut conn.offset)?;
                    if let Written::Some(n) = written {
                        conn.wire_bytes += n as u64;
                        conn.stream_pos += n as u64;
                    }
                    written
                }
                Link::Tls(_, tls) => {
                    let written = write_tls(tls, &queued.batch.bytes, &mut conn.offset)?;
                    if let Written::Some(n) = written {
                        conn.stream_pos += n as u64;
                        conn.tls_unflushed += n as u64;
                    }
                    written
                }
                Link::Udp(socket) => {
                    write_datagrams(socket, &queued.batch, &mut conn.offset, *framing, config.use_sendmmsg, datagrams)?
                }
                Link::Down | Link::Connecting { .. } => Written::NotYet,
            };
            match written {
                Written::Some(bytes) => {
                    shared.bytes_written.fetch_add(bytes as u64, Ordering::Relaxed);
                }
                Written::Refused(err) => shared.note_error(format!("datagram refused: {err}")),
                Written::Dropped => {
                    shared.oversize_dropped.fetch_add(1, Ordering::Relaxed);
                }
                Written::Retry => {}
                Written::Blocked => {
                    conn.blocked = true;
                    return Ok(());
                }
                Written::NotYet => return Ok(()),
                Written::Batch => {
                    conn.batch_written(queued.batch.messages(), queued.batch.bytes.len(), *per_lane);
                    if matches!(conn.link, Link::Udp(_)) {
                        queued.remaining -= 1;
                    }
                }
            }
        }
    }

    /// RELP: writes what is encoded; while the session is open and the
    /// window has room, encodes the connection's next messages as `syslog`
    /// commands, each remembered in the window until answered.
    fn pump_relp(&mut self, index: usize) -> io::Result<()> {
        let Writer { conns, queue, shared, framing, front_seq, end_seq, per_lane, .. } = self;
        let conn = &mut conns[index];
        loop {
            if !flush_tls(conn)? {
                conn.blocked = true;
                return Ok(());
            }
            let session = conn.relp.as_deref_mut().expect("a RELP connection has a session");
            if session.has_unwritten() {
                let written = match &mut conn.link {
                    Link::Tcp(stream) => write_stream(stream, &session.out, &mut session.out_at)?,
                    Link::Tls(_, tls) => write_tls(tls, &session.out, &mut session.out_at)?,
                    _ => Written::NotYet,
                };
                match written {
                    Written::Some(n) => {
                        conn.wire_bytes += n as u64;
                        shared.bytes_written.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Written::Retry => {}
                    Written::Blocked => {
                        conn.blocked = true;
                        return Ok(());
                    }
                    _ => return Ok(()),
                }
                continue;
            }
            session.out.clear();
            session.out_at = 0;
            if session.state != RelpState::Open {
                return Ok(());
            }
            while !session.window.is_full() && session.out.len() < RELP_OUT_TARGET && conn.next_seq < *end_seq {
                let batch = &queue[(conn.next_seq - *front_seq) as usize].batch;
                let txnr = session.window.send(MessageAt { seq: conn.next_seq, index: conn.offset });
                relp::encode_syslog(&mut session.out, txnr, batch.payload(conn.offset, *framing));
                conn.offset += 1;
                if conn.offset == batch.messages() {
                    // Sent whole; confirmed when its last message is answered.
                    conn.frames += batch.messages() as u64;
                    conn.offset = 0;
                    conn.next_seq += *per_lane;
                }
            }
            if session.out.is_empty() {
                return Ok(());
            }
        }
    }

    /// RELP: reads what the receiver answered. `200` to `open` (with
    /// `syslog` among its commands) opens the session; `200` to a message
    /// acknowledges it, and the last of a batch confirms the batch for this
    /// lane; any other status, an answer out of order, `serverclose` or the
    /// end of the stream break the session (`Err`).
    fn read_relp(&mut self, index: usize) -> io::Result<()> {
        let mut opened = false;
        let result = loop {
            let conn = &mut self.conns[index];
            let session = conn.relp.as_deref_mut().expect("a RELP connection has a session");
            let free = &mut session.input[session.input_len..];
            let read = match &mut conn.link {
                Link::Tcp(stream) => read_stream(stream, free),
                Link::Tls(stream, tls) => read_tls_plaintext(stream, tls, free),
                _ => return Ok(()),
            };
            match read {
                Ok(0) => break Err(io::Error::new(io::ErrorKind::ConnectionAborted, "closed by the receiver")),
                Ok(n) => session.input_len += n,
                Err(err) if would_block(&err) => break Ok(()),
                Err(err) if interrupted(&err) => continue,
                Err(err) => break Err(err),
            }
            if let Err(err) = self.take_answers(index, &mut opened) {
                break Err(err);
            }
        };
        if opened {
            self.came_up(index);
        }
        result
    }

    /// Acts on every complete answer in the session's input buffer.
    fn take_answers(&mut self, index: usize, opened: &mut bool) -> io::Result<()> {
        let Writer { conns, queue, front_seq, .. } = self;
        let session = conns[index].relp.as_deref_mut().expect("a RELP connection has a session");
        let mut at = 0;
        let result = loop {
            let (frame, used) = match relp::parse_frame(&session.input[at..session.input_len]) {
                Ok(Some(parsed)) => parsed,
                Ok(None) => break Ok(()),
                Err(err) => break Err(io::Error::new(io::ErrorKind::InvalidData, format!("RELP: {err}"))),
            };
            at += used;
            match frame {
                ServerFrame::Response { txnr, status, text, data } => match session.state {
                    RelpState::Opening(open) if txnr == open => {
                        if status != 200 {
                            break Err(refused("the session", status, text));
                        }
                        if !relp::offers_allow_syslog(data) {
                            break Err(io::Error::new(
                                io::ErrorKind::Unsupported,
                                "RELP: the receiver does not offer the syslog command",
                            ));
                        }
                        session.state = RelpState::Open;
                        *opened = true;
                    }
                    RelpState::Opening(_) => break Err(out_of_order(txnr)),
                    RelpState::Open => match session.window.answered(txnr) {
                        Some(Answered::Message(_)) if status != 200 => break Err(refused("a message", status, text)),
                        Some(Answered::Message(message)) => {
                            let queued = &mut queue[(message.seq - *front_seq) as usize];
                            if message.index + 1 == queued.batch.messages() {
                                queued.remaining -= 1;
                            }
                        }
                        Some(Answered::Command(_)) | None => break Err(out_of_order(txnr)),
                    },
                },
                ServerFrame::ServerClose => {
                    break Err(io::Error::new(io::ErrorKind::ConnectionAborted, "the receiver closed the session"));
                }
                ServerFrame::Other { .. } => {}
            }
        };
        session.input.copy_within(at..session.input_len, 0);
        session.input_len -= at;
        result
    }

    /// Counts a connection that broke while being closed at the end: an
    /// error and its loss estimate (there is nothing left to resend).
    fn note_broken(&mut self, index: usize, err: &io::Error) {
        let conn = &mut self.conns[index];
        let destination = &self.lanes[conn.lane][conn.endpoint];
        let mut cause = err.to_string();
        let mut refused = is_tls_error(err);
        if let Link::Tls(stream, tls) = &mut conn.link
            && !refused
            && let Some(alert) = unread_tls_error(stream, tls)
        {
            // The peer's alert (a refused certificate) is the real cause
            // of the broken pipe.
            (cause, refused) = (alert.to_string(), true);
        }
        self.shared.note_error(format!("{destination}: at close: {cause}"));
        if let Link::Tcp(stream) | Link::Tls(stream, _) = &conn.link {
            let lost = estimate_lost(stream, conn.wire_bytes, conn.frames, conn.max_window);
            self.shared.possibly_lost.fetch_add(lost, Ordering::Relaxed);
            if refused && lost > 0 {
                self.shared.refused.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(|| {
                    format!("{destination}: the TLS session was refused after messages were written on it: {cause}")
                });
            }
        }
        conn.link = Link::Down;
    }

    /// Closes a broken connection (or a failed attempt), estimates what it
    /// may have lost, rewinds to a frame boundary and schedules a retry.
    fn fail(&mut self, index: usize, err: io::Error) {
        let now = Instant::now();
        // What the peer acknowledged, asked before the socket goes.
        let confirmed = confirmed_position(&self.conns[index]);
        let conn = &mut self.conns[index];
        let destination = &self.lanes[conn.lane][conn.endpoint];
        self.shared.note_error(format!("{destination}: {err}"));
        let refused = is_tls_error(&err);
        let link = std::mem::replace(&mut conn.link, Link::Down);
        let batch =
            (conn.next_seq < self.end_seq).then(|| &self.queue[(conn.next_seq - self.front_seq) as usize].batch);
        match link {
            Link::Tcp(mut stream) | Link::Tls(mut stream, _) => {
                if conn.relp.is_none() {
                    let frames_in_batch = batch.map_or(0, |b| b.frames_before(conn.offset)) as u64;
                    let lost = estimate_lost(&stream, conn.wire_bytes, conn.frames + frames_in_batch, conn.max_window);
                    self.shared.possibly_lost.fetch_add(lost, Ordering::Relaxed);
                    if refused && lost > 0 {
                        let mut slot = self.shared.refused.lock().unwrap_or_else(|e| e.into_inner());
                        slot.get_or_insert_with(|| {
                            format!(
                                "{destination}: the TLS session was refused after messages were written on it: {err}"
                            )
                        });
                    }
                }
                let _ = self.poll.registry().deregister(&mut stream);
            }
            Link::Connecting { mut stream, .. } => {
                let _ = self.poll.registry().deregister(&mut stream);
            }
            Link::Udp(mut socket) => {
                let _ = self.poll.registry().deregister(&mut socket);
            }
            Link::Down => {}
        }
        if let Some(session) = conn.relp.as_deref_mut() {
            // Exactly the messages not acknowledged go again.
            self.shared.messages_resent.fetch_add(session.window.len() as u64, Ordering::Relaxed);
            if let Some(oldest) = session.window.oldest() {
                conn.next_seq = oldest.seq;
                conn.offset = oldest.index;
            }
            session.window.reset();
            session.state = RelpState::Opening(0);
        } else if let Some(confirmed) = confirmed {
            // What the peer's TCP did not acknowledge goes again, from the
            // start of the first frame it touches.
            confirm_up_to(conn, &mut self.queue, self.front_seq, confirmed);
            let resume = match conn.unconfirmed.front() {
                Some(first) => Some((first.seq, first.start)),
                None if conn.next_seq < self.end_seq => Some((conn.next_seq, conn.stream_pos - conn.offset as u64)),
                None => None,
            };
            if let Some((seq, start)) = resume {
                let batch = &self.queue[(seq - self.front_seq) as usize].batch;
                let within = confirmed.saturating_sub(start).min(batch.bytes.len() as u64) as usize;
                let rewound_to = (seq, batch.frame_boundary_at_or_before(within));
                let resent = frames_between(
                    &self.queue,
                    self.front_seq,
                    self.per_lane,
                    rewound_to,
                    (conn.next_seq, conn.offset),
                );
                self.shared.messages_resent.fetch_add(resent, Ordering::Relaxed);
                (conn.next_seq, conn.offset) = rewound_to;
            }
            conn.unconfirmed.clear();
        }
        conn.blocked = false;
        if refused {
            conn.down_since = conn.down_since.or(conn.down_before_up);
        }
        conn.down_since.get_or_insert(now);
        let endpoints = self.lanes[conn.lane].len();
        if endpoints > 1 {
            conn.endpoint = (conn.endpoint + 1) % endpoints;
            if conn.endpoint != 0 {
                // Failover: try the next destination at once.
                conn.retry_at = now;
                return;
            }
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let jitter = conn.backoff.mul_f64((self.rng % 1000) as f64 / 4000.0);
        conn.retry_at = now + conn.backoff + jitter;
        conn.backoff = (conn.backoff * 2).min(self.config.backoff.max);
    }

    /// Failover: closes a healthy connection to a later destination at a
    /// batch boundary and tries the first one again.
    fn fail_back(&mut self, index: usize) {
        let conn = &mut self.conns[index];
        match std::mem::replace(&mut conn.link, Link::Down) {
            Link::Tcp(mut stream) => {
                let _ = self.poll.registry().deregister(&mut stream);
            }
            Link::Tls(mut stream, mut tls) => {
                tls.send_close_notify();
                let _ = tls.write_tls(&mut stream);
                let _ = self.poll.registry().deregister(&mut stream);
            }
            Link::Udp(mut socket) => {
                let _ = self.poll.registry().deregister(&mut socket);
            }
            other => conn.link = other,
        }
        conn.endpoint = 0;
        conn.blocked = false;
        conn.retry_at = Instant::now();
    }

    /// Ends every stream cleanly: TLS close_notify, then our FIN, then
    /// reading until the receiver closes its side (or `deadline`). Closing a
    /// socket with unread incoming data (TLS session tickets, say) makes the
    /// kernel send a reset, and a reset makes the receiver's kernel discard
    /// what its application has not read yet: the last messages.
    fn close_streams(&mut self, deadline: Instant) {
        let mut open: Vec<usize> =
            (0..self.conns.len()).filter(|&i| matches!(self.conns[i].link, Link::Tcp(_) | Link::Tls(..))).collect();
        let mut events = Events::with_capacity(64);
        for &index in &open {
            let conn = &mut self.conns[index];
            // RELP: everything is acknowledged; end the session as the
            // protocol says (the answer is read and dropped below).
            if let Some(session) = conn.relp.as_deref_mut()
                && session.state == RelpState::Open
            {
                let txnr = session.window.take_txnr();
                session.out.clear();
                session.out_at = 0;
                relp::encode_close(&mut session.out, txnr);
            }
            if let Link::Tls(_, tls) = &mut conn.link {
                if let Some(session) = conn.relp.as_deref_mut()
                    && session.has_unwritten()
                {
                    // Tiny: rustls takes it whole.
                    let _ = tls.writer().write(&session.out[session.out_at..]);
                    session.out_at = session.out.len();
                }
                tls.send_close_notify();
            }
        }
        loop {
            let mut index = 0;
            while index < open.len() {
                let conn = open[index];
                match finish_stream(&mut self.conns[conn], &mut self.read_scratch) {
                    Ok(false) => index += 1,
                    Ok(true) => {
                        open.swap_remove(index);
                    }
                    Err(err) => {
                        // Refused or broken at the very end (a TLS 1.3
                        // server rejecting our certificate says so only now).
                        self.note_broken(conn, &err);
                        open.swap_remove(index);
                    }
                }
            }
            let now = Instant::now();
            if open.is_empty() || now >= deadline {
                return;
            }
            if self.poll.poll(&mut events, Some(deadline - now)).is_err() {
                return;
            }
        }
    }

    /// Clean shutdown: TLS close_notify, best effort, never blocking.
    fn close_all(&mut self) {
        for conn in &mut self.conns {
            if let Link::Tls(stream, tls) = &mut conn.link {
                tls.send_close_notify();
                while tls.wants_write() {
                    if tls.write_tls(stream).is_err() {
                        break;
                    }
                }
            }
            conn.link = Link::Down;
        }
    }
}

/// A UDP socket connected to `addr`, registered for `WRITABLE`.
fn open_datagram_socket(addr: SocketAddr, registry: &mio::Registry, token: Token) -> io::Result<UdpSocket> {
    let local: SocketAddr = if addr.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let mut socket = UdpSocket::bind(local)?;
    socket.connect(addr)?;
    set_send_buffer(&socket, 4 << 20);
    registry.register(&mut socket, token, Interest::WRITABLE)?;
    Ok(socket)
}

/// A non-blocking TCP connect to `addr`, registered for both readiness kinds.
fn start_stream_connect(addr: SocketAddr, registry: &mio::Registry, token: Token) -> io::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr)?;
    registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
    Ok(stream)
}

/// What one write step did.
#[derive(Debug)]
enum Written {
    /// Part of the batch went out (this many bytes); more may follow.
    Some(usize),
    /// Nothing went out this time (`EINTR`); try again.
    Retry,
    /// The socket is full: wait for `WRITABLE`.
    Blocked,
    /// Not ready to write (down, connecting, TLS handshaking).
    NotYet,
    /// The rest of the batch is written.
    Batch,
    /// A datagram too large for the network was dropped.
    Dropped,
    /// An earlier datagram was refused (ICMP port unreachable, reported
    /// once); nothing was sent this time.
    Refused(io::Error),
}

fn would_block(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::WouldBlock
}

fn interrupted(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::Interrupted
}

/// Pushes the TLS records rustls holds to the socket: false when the
/// socket is full before they are all out.
fn flush_tls(conn: &mut Conn) -> io::Result<bool> {
    let Link::Tls(stream, tls) = &mut conn.link else { return Ok(true) };
    while tls.wants_write() {
        match tls.write_tls(stream) {
            Ok(n) => conn.wire_bytes += n as u64,
            Err(err) if would_block(&err) => return Ok(false),
            Err(err) if interrupted(&err) => {}
            Err(err) => return Err(err),
        }
    }
    // Everything handed to rustls so far is on the wire.
    conn.tls_unflushed = 0;
    Ok(true)
}

/// One `write` of the rest of `bytes` from `offset` to a TCP stream.
fn write_stream(stream: &mut TcpStream, bytes: &[u8], offset: &mut usize) -> io::Result<Written> {
    if *offset == bytes.len() {
        return Ok(Written::Batch);
    }
    match stream.write(&bytes[*offset..]) {
        Ok(0) => Err(io::ErrorKind::WriteZero.into()),
        Ok(n) => {
            *offset += n;
            Ok(Written::Some(n))
        }
        Err(err) if would_block(&err) => Ok(Written::Blocked),
        Err(err) if interrupted(&err) => Ok(Written::Retry),
        Err(err) => Err(err),
    }
}

/// Hands the rest of `batch` to rustls (which the caller then flushes to
/// the socket). Nothing counts as written before the session is up: the
/// server's handshake messages (`READABLE`) move it on.
fn write_tls(tls: &mut rustls::ClientConnection, bytes: &[u8], offset: &mut usize) -> io::Result<Written> {
    if tls.is_handshaking() {
        return Ok(Written::NotYet);
    }
    if *offset == bytes.len() {
        return Ok(Written::Batch);
    }
    // rustls takes at most its buffer limit, and its buffer was flushed.
    match tls.writer().write(&bytes[*offset..])? {
        // Cannot happen with the buffer flushed; do not spin.
        0 => Ok(Written::NotYet),
        n => {
            *offset += n;
            Ok(Written::Some(n))
        }
    }
}

/// One `sendmmsg` (or `send` loop) of the batch's messages from `next`.
fn write_datagrams(
    socket: &UdpSocket,
    batch: &Batch,
    next: &mut usize,
    framing: Framing,
    use_sendmmsg: bool,
    scratch: &mut DatagramScratch,
) -> io::Result<Written> {
    if *next == batch.messages() {
        return Ok(Written::Batch);
    }
    match send_datagrams(socket, batch, *next, framing, use_sendmmsg, scratch) {
        Ok(sent) => {
            // What went on the wire: the payloads, not their framing (a
            // datagram carries no newline or octet count).
            let bytes = (*next..*next + sent).map(|index| batch.payload(index, framing).len()).sum();
            *next += sent;
            Ok(Written::Some(bytes))
        }
        Err(err) if would_block(&err) => Ok(Written::Blocked),
        Err(err) if err.raw_os_error() == Some(libc::EMSGSIZE) => {
            *next += 1;
            Ok(Written::Dropped)
        }
        Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => Ok(Written::Refused(err)),
        Err(err) if interrupted(&err) => Ok(Written::Retry),
        Err(err) => Err(err),
    }
}

/// One step of ending a stream: flush TLS, send our FIN once, read until
/// the receiver's end of stream. `Ok(true)` when it closed cleanly,
/// `Ok(false)` to wait for more readiness, `Err` when it broke.
fn finish_stream(conn: &mut Conn, scratch: &mut [u8]) -> io::Result<bool> {
    let (stream, mut tls) = match &mut conn.link {
        Link::Tcp(stream) => (stream, None),
        Link::Tls(stream, tls) => (stream, Some(tls)),
        _ => return Ok(true),
    };
    // RELP over TCP: the `close` command first (over TLS rustls holds it).
    if let Some(session) = conn.relp.as_deref_mut()
        && tls.is_none()
    {
        while session.has_unwritten() {
            if let Written::Blocked = write_stream(stream, &session.out, &mut session.out_at)? {
                return Ok(false);
            }
        }
    }
    if let Some(tls) = tls.as_deref_mut() {
        while tls.wants_write() {
            match tls.write_tls(stream) {
                Ok(_) => {}
                Err(err) if would_block(&err) => return Ok(false),
                Err(err) => return Err(err),
            }
        }
    }
    if !conn.shut_down {
        conn.shut_down = true;
        stream.shutdown(std::net::Shutdown::Write)?;
    }
    loop {
        let read = match tls.as_deref_mut() {
            Some(tls) => match tls.read_tls(stream) {
                Ok(n) => {
                    tls.process_new_packets().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    while matches!(tls.reader().read(scratch), Ok(n) if n > 0) {}
                    Ok(n)
                }
                Err(err) => Err(err),
            },
            None => stream.read(scratch),
        };
        match read {
            Ok(0) => return Ok(true),
            Ok(_) => {}
            Err(err) if would_block(&err) => return Ok(false),
            Err(err) if interrupted(&err) => {}
            Err(err) => return Err(err),
        }
    }
}

/// One `read` from a stream into `buf` (never empty: a full buffer is an
/// answer too long to be RELP).
fn read_stream(stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    if buf.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "RELP: answer too long"));
    }
    stream.read(buf)
}

/// Plaintext from a TLS stream into `buf`: what rustls holds, else the
/// next records from the socket. `Ok(0)` at the end of the session.
fn read_tls_plaintext(stream: &mut TcpStream, tls: &mut rustls::ClientConnection, buf: &mut [u8]) -> io::Result<usize> {
    if buf.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "RELP: answer too long"));
    }
    loop {
        match tls.reader().read(buf) {
            Ok(n) => return Ok(n),
            Err(err) if would_block(&err) => {}
            Err(err) => return Err(err),
        }
        match tls.read_tls(stream)? {
            0 => return Ok(0),
            _ => {
                tls.process_new_packets().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            }
        }
    }
}

#[cold]
fn refused(what: &str, status: u16, text: &[u8]) -> io::Error {
    io::Error::other(format!("RELP: the receiver refused {what}: {status} {}", String::from_utf8_lossy(text)))
}

#[cold]
fn out_of_order(txnr: u32) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("RELP: answer to transaction {txnr}, which was not expected"))
}

/// Reads and discards what a syslog receiver sends (nothing, normally);
/// end of stream means the peer closed.
fn drain_reads(stream: &mut TcpStream, scratch: &mut [u8]) -> io::Result<()> {
    loop {
        match stream.read(scratch) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "closed by the receiver")),
            Ok(_) => {}
            Err(err) if would_block(&err) => return Ok(()),
            Err(err) if interrupted(&err) => {}
            Err(err) => return Err(err),
        }
    }
}

/// Feeds TLS records to rustls (handshake, tickets, alerts); a closed or
/// failed session is an error.
fn drain_tls_reads(stream: &mut TcpStream, tls: &mut rustls::ClientConnection, scratch: &mut [u8]) -> io::Result<()> {
    loop {
        match tls.read_tls(stream) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "closed by the receiver")),
            Ok(_) => {
                let state = tls.process_new_packets().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                let mut unread = state.plaintext_bytes_to_read();
                if state.peer_has_closed() {
                    return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "TLS session closed by the receiver"));
                }
                while unread > 0 {
                    let n = tls.reader().read(scratch)?;
                    if n == 0 {
                        break;
                    }
                    unread = unread.saturating_sub(n);
                }
            }
            Err(err) if would_block(&err) => return Ok(()),
            Err(err) if interrupted(&err) => {}
            Err(err) => return Err(err),
        }
    }
}

/// Streams: the position (in [`Conn::stream_pos`]) up to which every
/// byte is acknowledged by the peer's TCP: what was handed over minus what
/// the kernel still holds unsent or unacknowledged (`SIOCOUTQ`, which the
/// kernel still answers after a reset); for TLS also minus the plaintext
/// rustls may not have written yet, and counting each unacknowledged byte
/// of ciphertext as one of plaintext (ciphertext is longer, so this never
/// confirms too much). `None` for other links.
fn confirmed_position(conn: &Conn) -> Option<u64> {
    match &conn.link {
        Link::Tcp(stream) => Some(conn.stream_pos.saturating_sub(unacknowledged_bytes(stream))),
        Link::Tls(stream, _) => Some(conn.stream_pos.saturating_sub(conn.tls_unflushed + unacknowledged_bytes(stream))),
        _ => None,
    }
}

/// Frames a stream connection wrote from position `from` (batch sequence
/// number, byte offset) up to `to` (its batches are `per_lane` apart): what
/// a rewind from `to` back to `from` writes again.
fn frames_between(
    queue: &VecDeque<Queued>,
    front_seq: u64,
    per_lane: u64,
    from: (u64, usize),
    to: (u64, usize),
) -> u64 {
    let end_seq = front_seq + queue.len() as u64;
    let (mut seq, mut offset) = from;
    let mut frames = 0;
    while seq <= to.0 && seq < end_seq {
        let batch = &queue[(seq - front_seq) as usize].batch;
        let upto = if seq == to.0 { batch.frames_before(to.1) } else { batch.messages() };
        frames += upto.saturating_sub(batch.frames_before(offset)) as u64;
        offset = 0;
        seq += per_lane;
    }
    frames
}

/// Confirms, for the connection's lane, each remembered batch that ends at
/// or before `confirmed`.
fn confirm_up_to(conn: &mut Conn, queue: &mut VecDeque<Queued>, front_seq: u64, confirmed: u64) {
    while let Some(first) = conn.unconfirmed.front()
        && first.end <= confirmed
    {
        queue[(first.seq - front_seq) as usize].remaining -= 1;
        conn.unconfirmed.pop_front();
    }
}

/// Bytes written to the socket that its peer has not acknowledged yet
/// (unsent ones included): `SIOCOUTQ`.
#[cfg(target_os = "linux")]
fn unacknowledged_bytes(stream: &TcpStream) -> u64 {
    use std::os::fd::AsRawFd;
    let mut queued: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int through a valid pointer.
    let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
    if rc == 0 { queued.max(0) as u64 } else { 0 }
}

/// Elsewhere the count is unknown: what was written counts as acknowledged
/// (the behaviour before acknowledgements were read).
#[cfg(not(target_os = "linux"))]
fn unacknowledged_bytes(_stream: &TcpStream) -> u64 {
    0
}

/// What the kernel knows about a TCP connection.
struct TcpInfo {
    /// The peer's advertised receive window.
    send_window: u64,
}

#[cfg(target_os = "linux")]
fn tcp_info(stream: &TcpStream) -> Option<TcpInfo> {
    use std::os::fd::AsRawFd;
    // SAFETY: tcp_info is a plain C struct; the kernel fills at most `len`
    // bytes of it and reports how many.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::tcp_info>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(TcpInfo { send_window: u64::from(info.tcpi_snd_wnd) })
}

#[cfg(not(target_os = "linux"))]
fn tcp_info(_stream: &TcpStream) -> Option<TcpInfo> {
    None
}

/// The receive buffer a peer is assumed to have at most when it advertised
/// no larger window: Linux's default ceiling (`net.ipv4.tcp_rmem`), which
/// autotuning may reach without the window ever showing it (a slow reader
/// keeps the advertised window small while its buffer grows).
const ASSUMED_PEER_RECEIVE_BUFFER: u64 = 6 << 20;

/// Messages of a broken connection that may not have been processed
/// although its peer's TCP acknowledged them (those it did not acknowledge
/// are written again): as many as fit in the peer's receive buffer
/// (acknowledged, but perhaps never read before it died): the larger of
/// the largest window it advertised and [`ASSUMED_PEER_RECEIVE_BUFFER`].
/// An upper estimate; what the receiving application held in its own
/// memory is beyond what TCP can tell.
fn estimate_lost(stream: &TcpStream, wire_bytes: u64, frames: u64, max_window: u64) -> u64 {
    if frames == 0 || wire_bytes == 0 {
        return 0;
    }
    let window = tcp_info(stream).map_or(0, |info| max_window.max(info.send_window));
    let at_risk = window.max(ASSUMED_PEER_RECEIVE_BUFFER);
    let per_frame = (wire_bytes / frames).max(1);
    at_risk.div_ceil(per_frame).min(frames)
}

#[cfg(target_os = "linux")]
fn set_send_buffer(socket: &UdpSocket, bytes: libc::c_int) {
    use std::os::fd::AsRawFd;
    // SAFETY: setting an int socket option from a valid pointer and length.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&bytes as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn set_send_buffer(_socket: &UdpSocket, _bytes: i32) {}

/// A TLS error (an alert) the peer sent that is still unread.
fn unread_tls_error(stream: &mut TcpStream, tls: &mut rustls::ClientConnection) -> Option<rustls::Error> {
    for _ in 0..64 {
        match tls.read_tls(stream) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {
                if let Err(err) = tls.process_new_packets() {
                    return Some(err);
                }
            }
        }
    }
    None
}

/// Whether `err` comes from TLS (a handshake failure, an alert from the
/// peer such as a refused client certificate), not from the network.
fn is_tls_error(err: &io::Error) -> bool {
    err.get_ref().is_some_and(|inner| inner.is::<rustls::Error>())
}
