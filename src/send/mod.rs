//! Sending messages to syslog receivers over TCP, UDP and TLS.
//!
//! This module is the only place that knows sockets, and it sees bytes
//! only. [`SyslogSender`] is a [`MessageSink`]: a job renders each message
//! straight into the sender's current [`Batch`]; on `commit` the message is
//! cut to `max_message_bytes` if needed, framed in place, and when the batch
//! is full it goes over a bounded crossbeam channel to one writer thread
//! that drives every connection with a mio event loop (see `writer.rs`).
//! Empty batches come back through a second channel: the pool is fixed, so
//! memory is fixed, and a producer that outruns the network waits for a
//! batch to come back (backpressure). Who sleeps and who wakes whom is in
//! `wakeup.rs` (a mutex-guarded flag and a condition variable; no fences).
//! A [`Stop`] in [`SendConfig::stop`] ends a producer's wait with
//! [`Stop::error`].
//!
//! Delivery: batches are written in order on each connection; after a
//! broken connection the writer reconnects (exponential backoff with
//! jitter) and resumes from the first frame that was not completely
//! written. TCP has no application-level acknowledgement, so messages
//! written just before a peer died may have been lost in its (or our)
//! kernel buffers: the writer estimates how many from `TCP_INFO` and
//! reports it as [`SendReport::possibly_lost`].
//!
//! ```no_run
//! use cefwire::records::MessageSink;
//! use cefwire::send::{Destination, SendConfig, SyslogSender};
//! # fn main() -> std::io::Result<()> {
//! let config = SendConfig::new(vec![Destination::parse("tcp://127.0.0.1:5140").unwrap()]);
//! let mut sender = SyslogSender::start(&config).map_err(std::io::Error::other)?;
//! for i in 0..10 {
//!     let start = sender.buffer().len();
//!     sender.buffer().extend_from_slice(format!("<134>message {i}").as_bytes());
//!     sender.commit(start)?;
//! }
//! // Everything handed over so far is written to the socket (the agent
//! // advances its cursor only after this returns).
//! sender.flush(std::time::Duration::from_secs(10))?;
//! let report = sender.finish()?;
//! assert_eq!(report.messages_written, 10);
//! # Ok(()) }
//! ```

pub mod batch;
pub mod relp;
pub mod udp;
mod wakeup;
mod writer;

use crate::records::MessageSink;
use crate::stop::Stop;
pub use crate::syslog::destination::{Destination, DestinationError, Transport};
use crate::syslog::frame::Framing;
use crate::syslog::tls;
pub use crate::syslog::tls::{TlsClientOptions, TlsSetupError};
pub use batch::{Batch, truncated_len};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::io;
use std::net::ToSocketAddrs;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wakeup::{Wakeup, WriterBell};

/// How several destinations share the messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeliveryMode {
    /// Every destination gets every message.
    #[default]
    FanOut,
    /// Messages go to the first destination that is up, in the order given;
    /// the next one is used while the first is down.
    Failover,
}

/// Reconnection timing: the delay doubles from `initial` to `max`, with up
/// to 25% random jitter so many senders do not reconnect in lock step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { initial: Duration::from_millis(100), max: Duration::from_secs(10) }
    }
}

/// Validated settings of a [`SyslogSender`].
#[derive(Clone, Debug)]
pub struct SendConfig {
    pub destinations: Vec<Destination>,
    pub mode: DeliveryMode,
    /// Connections per destination; batches are spread over them in turn
    /// (order is kept per connection, not across them).
    pub connections: usize,
    /// Stream framing; `None` picks octet counting when a TLS destination
    /// is present (RFC 5425 requires it) and newline otherwise. Datagrams
    /// carry no framing.
    pub framing: Option<Framing>,
    /// Messages longer than this are cut (at a UTF-8 boundary, never inside
    /// an escape sequence) and counted; `None` never cuts.
    pub max_message_bytes: Option<usize>,
    pub tls: TlsClientOptions,
    /// A batch is handed to the writer once it holds this many bytes.
    pub batch_bytes: usize,
    /// Number of batches in the pool (memory ≈ `batches × batch_bytes`).
    pub batches: usize,
    /// Use `sendmmsg` for UDP on Linux (false: one `send` per datagram).
    pub use_sendmmsg: bool,
    pub backoff: Backoff,
    /// A connection attempt that has not completed after this long fails.
    pub connect_timeout: Duration,
    /// Fail the run when a destination has been down this long (`None`:
    /// keep retrying forever, as the agent does).
    pub give_up_after: Option<Duration>,
    /// How long [`SyslogSender::finish`] keeps trying to write what is left.
    pub drain_timeout: Duration,
    /// Failover: after this long on a later destination, go back to the
    /// first one (at a batch boundary; if it is still down, on to the next).
    pub failback_after: Duration,
    /// When asked for, a producer waiting for a free batch (or in
    /// [`SyslogSender::flush`]) stops waiting and gets [`Stop::error`].
    pub stop: Option<Stop>,
    /// RELP: messages sent and not yet acknowledged, at most (per
    /// connection); see [`relp::DEFAULT_WINDOW`].
    pub relp_window: usize,
    /// Print each connection error on stderr as it happens (the CLI runs;
    /// the agent logs them itself). Repeats of one error are printed at
    /// the 1st, 2nd, 4th, 8th… time.
    pub print_errors: bool,
}

impl SendConfig {
    /// Defaults for `destinations`: fan-out, one connection each, 256 KiB
    /// batches, a pool of 32, sendmmsg on, retry forever, 10 s drain.
    pub fn new(destinations: Vec<Destination>) -> Self {
        Self {
            destinations,
            mode: DeliveryMode::FanOut,
            connections: 1,
            framing: None,
            max_message_bytes: None,
            tls: TlsClientOptions::default(),
            batch_bytes: 256 * 1024,
            batches: 32,
            use_sendmmsg: true,
            backoff: Backoff::default(),
            connect_timeout: Duration::from_secs(5),
            give_up_after: None,
            drain_timeout: Duration::from_secs(10),
            failback_after: Duration::from_secs(60),
            stop: None,
            relp_window: relp::DEFAULT_WINDOW,
            print_errors: false,
        }
    }

    /// The framing actually used on streams.
    pub fn stream_framing(&self) -> Framing {
        self.framing.unwrap_or(if self.destinations.iter().any(|d| d.transport == Transport::Tls) {
            Framing::OctetCounting
        } else {
            Framing::NewLine
        })
    }
}

/// Why a sender could not start.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("no destination given")]
    NoDestination,
    #[error("{destination}: cannot resolve: {reason}")]
    Resolve { destination: String, reason: String },
    #[error("TLS setup: {0}")]
    Tls(#[from] TlsSetupError),
    #[error("TLS needs octet-counting framing (RFC 5425)")]
    TlsNeedsOctetCounting,
    #[error("starting the writer thread: {0}")]
    Thread(io::Error),
}

/// What a sender did, from start to [`SyslogSender::finish`] (or so far,
/// from [`SyslogSender::report`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SendReport {
    /// Messages handed to the sender (`commit` calls).
    pub messages_accepted: u64,
    /// Messages written without error to every destination that gets them
    /// (to the kernel's socket buffer; TLS: encrypted and written).
    pub messages_written: u64,
    /// Accepted but never written: the run stopped (drain timeout, give-up,
    /// interruption) before they could be.
    pub messages_unsent: u64,
    /// Bytes written, framing included, summed over connections.
    pub bytes_written: u64,
    /// Messages written again after a broken connection: RELP, those the
    /// receiver had not acknowledged; TCP and TLS, those in bytes its TCP
    /// had not acknowledged. The most a receiver can have got twice.
    pub messages_resent: u64,
    /// Messages cut to `max_message_bytes`.
    pub truncated: u64,
    /// Datagrams the network refused outright (larger than a datagram can be).
    pub oversize_dropped: u64,
    /// Successful connections, and how many of those were re-connections.
    pub connects: u64,
    pub reconnects: u64,
    /// Failed connection attempts, broken connections, refused datagrams.
    pub errors: u64,
    /// Estimate of messages that were written but may never have been
    /// processed because a stream connection broke: not acknowledged by the
    /// peer's TCP (`TCP_INFO`), or acknowledged but possibly still unread in
    /// its receive buffer (the larger of the largest window it advertised
    /// and 6 MiB, Linux's default ceiling). An upper estimate, summed over
    /// broken connections; 0 means none broke. Messages held in the
    /// receiving application's own memory are beyond what TCP can tell.
    pub possibly_lost: u64,
    /// The first and the last error seen, for the report (a later
    /// "connection refused" must not hide the certificate error that
    /// started an outage).
    pub first_error: Option<String>,
    pub last_error: Option<String>,
    /// Why the writer stopped early (a destination down past
    /// `give_up_after`), if it did.
    pub failure: Option<String>,
    pub elapsed: Duration,
}

impl SendReport {
    /// One human line: what was sent, and what may be missing.
    pub fn summary(&self) -> String {
        let mut text = self.totals();
        self.push_problems(&mut text);
        self.push_failure(&mut text);
        text
    }

    /// `sent W of A messages (B bytes)`.
    pub fn totals(&self) -> String {
        format!("sent {} of {} messages ({} bytes)", self.messages_written, self.messages_accepted, self.bytes_written)
    }

    /// Appends `; …` clauses for reconnects, possible loss, unsent,
    /// truncated and dropped messages (nothing when all went well).
    pub fn push_problems(&self, text: &mut String) {
        if self.reconnects > 0 || self.errors > 0 {
            text.push_str(&format!("; {} reconnects, {} errors", self.reconnects, self.errors));
        }
        if self.messages_resent > 0 {
            text.push_str(&format!("; {} written again after breaks", self.messages_resent));
        }
        if self.possibly_lost > 0 {
            text.push_str(&format!(
                "; up to {} messages may have been lost in the buffers of broken connections",
                self.possibly_lost
            ));
        }
        if self.messages_unsent > 0 {
            text.push_str(&format!("; {} NOT sent", self.messages_unsent));
        }
        if self.truncated > 0 {
            text.push_str(&format!("; {} truncated", self.truncated));
        }
        if self.oversize_dropped > 0 {
            text.push_str(&format!("; {} datagrams too large, dropped", self.oversize_dropped));
        }
    }

    /// Appends why the writer gave up, or else its last error.
    pub fn push_failure(&self, text: &mut String) {
        if let Some(failure) = &self.failure {
            text.push_str(&format!("; failed: {failure}"));
        } else if let Some(error) = &self.last_error {
            text.push_str(&format!("; last error: {error}"));
        }
        if let Some(first) = self.first_error.as_ref().filter(|first| Some(*first) != self.last_error.as_ref()) {
            text.push_str(&format!("; first error: {first}"));
        }
    }
}

/// Counters the writer updates and the producer reads, and the wake-ups
/// between the two (see `wakeup.rs`).
struct Shared {
    messages_written: AtomicU64,
    bytes_written: AtomicU64,
    oversize_dropped: AtomicU64,
    connects: AtomicU64,
    reconnects: AtomicU64,
    errors: AtomicU64,
    possibly_lost: AtomicU64,
    messages_resent: AtomicU64,
    first_error: Mutex<Option<String>>,
    last_error: Mutex<Option<String>>,
    /// How often the last error came in a row (for printing repeats).
    repeats: AtomicU64,
    print_errors: bool,
    failure: Mutex<Option<String>>,
    /// A TLS session the peer refused after messages were written on it
    /// (a rejected client certificate shows only then, in TLS 1.3): those
    /// messages did not arrive. Reported as the failure if nothing else is.
    refused: Mutex<Option<String>>,
    /// When the writer must give up draining after input ended (ms since
    /// `started`; 0 = not finishing).
    drain_deadline_ms: AtomicU64,
    /// Rung by the producer after handing over a batch.
    bell: WriterBell,
    /// Announced by the writer when a batch goes back to the pool (or it
    /// exits).
    pool: Wakeup,
    /// Announced by the writer when `messages_written` grows.
    written: Wakeup,
}

impl Shared {
    fn new(bell: WriterBell, print_errors: bool) -> Self {
        Self {
            messages_written: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            oversize_dropped: AtomicU64::new(0),
            connects: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            possibly_lost: AtomicU64::new(0),
            messages_resent: AtomicU64::new(0),
            first_error: Mutex::new(None),
            last_error: Mutex::new(None),
            repeats: AtomicU64::new(0),
            print_errors,
            failure: Mutex::new(None),
            refused: Mutex::new(None),
            drain_deadline_ms: AtomicU64::new(0),
            bell,
            pool: Wakeup::default(),
            written: Wakeup::default(),
        }
    }

    fn note_error(&self, message: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.first_error.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(|| message.clone());
        let mut last = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
        let repeats =
            if last.as_ref() == Some(&message) { self.repeats.fetch_add(1, Ordering::Relaxed) + 1 } else { 1 };
        if repeats == 1 {
            self.repeats.store(1, Ordering::Relaxed);
        }
        if self.print_errors && repeats.is_power_of_two() {
            let times = if repeats > 1 { format!(" ({repeats} times)") } else { String::new() };
            eprintln!("cefwire: {message}{times}");
        }
        *last = Some(message);
    }

    fn failure(&self) -> Option<String> {
        self.failure.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// For the report: why the writer gave up, or else a refused session
    /// that lost messages.
    fn reported_failure(&self) -> Option<String> {
        self.failure().or_else(|| self.refused.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

/// Sends messages to syslog destinations; see the module documentation.
pub struct SyslogSender {
    current: Batch,
    framing: Framing,
    max_message_bytes: Option<usize>,
    batch_bytes: usize,
    to_writer: Option<Sender<Batch>>,
    empty_batches: Receiver<Batch>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    stop: Option<Stop>,
    drain_timeout: Duration,
    started: Instant,
    accepted: u64,
    truncated: u64,
}

/// Most frames in one batch (bounds the offsets array).
const MAX_BATCH_MESSAGES: usize = 16 * 1024;

/// A producer waiting on the writer looks at the stop signal and the
/// writer's failure this often.
const WAIT_STEP: Duration = Duration::from_millis(100);

impl SyslogSender {
    /// Checks the configuration (destinations resolve, TLS files load),
    /// starts the writer thread and begins connecting.
    pub fn start(config: &SendConfig) -> Result<Self, SendError> {
        if config.destinations.is_empty() {
            return Err(SendError::NoDestination);
        }
        for destination in &config.destinations {
            let resolved = destination.authority().to_socket_addrs().map(|mut a| a.next());
            match resolved {
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Err(SendError::Resolve {
                        destination: destination.to_string(),
                        reason: "no address".into(),
                    });
                }
                Err(err) => {
                    return Err(SendError::Resolve { destination: destination.to_string(), reason: err.to_string() });
                }
            }
        }
        let has_tls = config.destinations.iter().any(|d| d.transport == Transport::Tls);
        let framing = config.stream_framing();
        if has_tls && framing != Framing::OctetCounting {
            return Err(SendError::TlsNeedsOctetCounting);
        }
        let encrypted = config.destinations.iter().any(|d| d.transport.is_tls());
        let tls = if encrypted { Some(tls::client_config(&config.tls)?) } else { None };
        // A RELP receiver ends the session on a message over its limit
        // (librelp: 128 KiB unless raised): cut them here instead.
        let has_relp = config.destinations.iter().any(|d| d.transport.is_relp());
        let mut config = config.clone();
        if has_relp && config.max_message_bytes.is_none() {
            config.max_message_bytes = Some(relp::DEFAULT_MAX_MESSAGE_BYTES);
        }
        let config = &config;
        let batches = config.batches.max(2);
        let batch_bytes = config.batch_bytes.max(1024);
        // Room for one more message past the threshold before the Vec grows.
        let capacity = batch_bytes + batch_bytes / 4 + 64 * 1024;
        let (to_writer, from_producer) = crossbeam_channel::bounded(batches);
        let (to_pool, empty_batches) = crossbeam_channel::bounded(batches);
        for _ in 1..batches {
            to_pool.send(Batch::with_capacity(capacity, 4096)).expect("pool has room");
        }
        let poll = mio::Poll::new().map_err(SendError::Thread)?;
        let waker = mio::Waker::new(poll.registry(), writer::WAKER).map_err(SendError::Thread)?;
        let shared = Arc::new(Shared::new(WriterBell::new(waker), config.print_errors));
        let started = Instant::now();
        let setup = writer::WriterSetup {
            poll,
            config: config.clone(),
            framing,
            tls,
            from_producer,
            to_pool,
            batches,
            started,
        };
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("cefwire-send".into())
            .spawn(move || writer::run(setup, thread_shared))
            .map_err(SendError::Thread)?;
        Ok(Self {
            current: Batch::with_capacity(capacity, 4096),
            framing,
            max_message_bytes: config.max_message_bytes,
            batch_bytes,
            to_writer: Some(to_writer),
            empty_batches,
            shared,
            thread: Some(thread),
            stop: config.stop.clone(),
            drain_timeout: config.drain_timeout,
            started,
            accepted: 0,
            truncated: 0,
        })
    }

    /// Messages handed over so far (committed).
    pub fn messages_accepted(&self) -> u64 {
        self.accepted
    }

    /// Messages written without error so far, in order: the first
    /// `messages_written()` committed messages are on the wire (or in the
    /// kernel's socket buffers) of every destination that gets them.
    pub fn messages_written(&self) -> u64 {
        self.shared.messages_written.load(Ordering::Acquire)
    }

    /// Hands the messages batched so far to the writer now, without
    /// waiting for the batch to fill (call when input goes quiet). May
    /// wait for a free batch.
    pub fn send_pending(&mut self) -> io::Result<()> {
        if self.current.ends.is_empty() {
            return Ok(());
        }
        let empty = self.take_empty_batch()?;
        let full = std::mem::replace(&mut self.current, empty);
        let Some(to_writer) = &self.to_writer else { return Err(self.writer_gone()) };
        if to_writer.send(full).is_err() {
            return Err(self.writer_gone());
        }
        self.shared.bell.ring();
        Ok(())
    }

    /// Sends what is batched and waits until every message committed so far
    /// is written (returns their count), or fails after `timeout` with
    /// `ErrorKind::TimedOut` (or [`Stop::error`] when a stop is asked for).
    /// The agent advances its cursor after this.
    pub fn flush(&mut self, timeout: Duration) -> io::Result<u64> {
        self.send_pending()?;
        let target = self.accepted;
        let deadline = Instant::now() + timeout;
        loop {
            let written = self.messages_written();
            if written >= target {
                return Ok(written);
            }
            if let Some(failure) = self.shared.failure() {
                return Err(io::Error::other(failure));
            }
            if self.stop_requested() {
                return Err(Stop::error());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{} of {target} messages written after {timeout:?}", written),
                ));
            }
            let step = (deadline - now).min(WAIT_STEP);
            self.shared.written.wait_until(step, || self.messages_written() >= target);
        }
    }

    /// Empty batches ready in the pool: while there are some, committing a
    /// message (and handing a full batch over) does not wait. A producer
    /// that must never block (the Event Hubs source keeps polling its
    /// broker) stops reading input while this is low.
    pub fn free_batches(&self) -> usize {
        self.empty_batches.len()
    }

    /// A batch is handed over once it holds this many bytes.
    pub fn batch_bytes(&self) -> usize {
        self.batch_bytes
    }

    /// Whether [`append_lines`](Self::append_lines) takes blocks: newline
    /// framing and no size limit, so that each line is its own frame as is.
    pub fn takes_line_blocks(&self) -> bool {
        self.framing == Framing::NewLine && self.max_message_bytes.is_none()
    }

    /// Appends `block` (whole lines, each ending in `\n`, at most
    /// [`batch_bytes`](Self::batch_bytes) long) as one message per line,
    /// copying it once: the fast path for passing rendered lines through.
    /// Returns the number of messages, or `None` with nothing appended when
    /// the block does not qualify (see [`takes_line_blocks`](Self::takes_line_blocks);
    /// an empty line or a `\r\n` in it), so the caller goes line by line.
    pub fn append_lines(&mut self, block: &[u8]) -> io::Result<Option<usize>> {
        if !self.takes_line_blocks() || block.last() != Some(&b'\n') {
            return Ok(None);
        }
        if self.current.bytes.len() + block.len() > self.current.bytes.capacity() {
            self.send_pending()?;
        }
        let base = self.current.bytes.len();
        let ends_before = self.current.ends.len();
        let mut line_start = 0;
        for newline in memchr::memchr_iter(b'\n', block) {
            if newline == line_start || block[newline - 1] == b'\r' {
                self.current.ends.truncate(ends_before);
                return Ok(None);
            }
            self.current.ends.push(base + newline + 1);
            line_start = newline + 1;
        }
        self.current.bytes.extend_from_slice(block);
        let count = self.current.ends.len() - ends_before;
        self.accepted += count as u64;
        if self.current.bytes.len() >= self.batch_bytes || self.current.ends.len() >= MAX_BATCH_MESSAGES {
            self.send_pending()?;
        }
        Ok(Some(count))
    }

    /// Changes how long [`finish`](Self::finish) keeps trying to write
    /// what is left (the agent shortens it when it stops while its
    /// destination is down: what is unwritten is not checkpointed anyway).
    pub fn set_drain_timeout(&mut self, timeout: Duration) {
        self.drain_timeout = timeout;
    }

    /// The counters so far.
    pub fn report(&self) -> SendReport {
        let s = &self.shared;
        let written = s.messages_written.load(Ordering::Acquire);
        SendReport {
            messages_accepted: self.accepted,
            messages_written: written,
            messages_unsent: 0,
            bytes_written: s.bytes_written.load(Ordering::Relaxed),
            truncated: self.truncated,
            oversize_dropped: s.oversize_dropped.load(Ordering::Relaxed),
            connects: s.connects.load(Ordering::Relaxed),
            reconnects: s.reconnects.load(Ordering::Relaxed),
            errors: s.errors.load(Ordering::Relaxed),
            possibly_lost: s.possibly_lost.load(Ordering::Relaxed),
            messages_resent: s.messages_resent.load(Ordering::Relaxed),
            first_error: s.first_error.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            last_error: s.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            failure: s.reported_failure(),
            elapsed: self.started.elapsed(),
        }
    }

    /// Sends what is batched, lets the writer write everything left (for at
    /// most `drain_timeout`), stops it and reports. A destination that is
    /// down or stopped reading cannot make this hang: what is not written
    /// by then is counted in `messages_unsent`. The report's `failure` says
    /// whether the writer gave up early; `Err` only if the writer crashed.
    pub fn finish(mut self) -> io::Result<SendReport> {
        // One deadline for everything finish does. Ignore a failure here:
        // the report says what happened.
        let deadline = self.started.elapsed() + self.drain_timeout;
        let _ = self.send_pending_without_waiting(self.started + deadline);
        self.shared.drain_deadline_ms.store((deadline.as_millis() as u64).max(1), Ordering::Release);
        self.to_writer = None;
        self.shared.bell.wake_now();
        let joined = self.thread.take().map(JoinHandle::join);
        let mut report = self.report();
        report.messages_unsent = report.messages_accepted - report.messages_written.min(report.messages_accepted);
        match joined {
            Some(Err(_)) => Err(io::Error::other("the syslog writer thread panicked")),
            _ => Ok(report),
        }
    }

    /// On finish the pool may be empty (writer stuck on a dead peer):
    /// then the partial batch is counted as unsent rather than waited for.
    fn send_pending_without_waiting(&mut self, deadline: Instant) -> io::Result<()> {
        if self.current.ends.is_empty() {
            return Ok(());
        }
        let empty = loop {
            match self.empty_batches.recv_timeout(Duration::from_millis(50)) {
                Ok(batch) => break batch,
                Err(RecvTimeoutError::Timeout) if Instant::now() < deadline => continue,
                Err(_) => return Err(self.writer_gone()),
            }
        };
        let full = std::mem::replace(&mut self.current, empty);
        if let Some(to_writer) = &self.to_writer {
            let _ = to_writer.send(full);
        }
        Ok(())
    }

    fn stop_requested(&self) -> bool {
        self.stop.as_ref().is_some_and(Stop::is_requested)
    }

    /// A free batch, waiting while all are in flight (backpressure).
    fn take_empty_batch(&mut self) -> io::Result<Batch> {
        loop {
            // Sleep until the writer returns a batch (or exits). A condition
            // variable rather than a blocking channel receive: crossbeam
            // spins and yields first, which takes CPU from the writer on
            // small machines.
            let mut taken = Err(TryRecvError::Empty);
            self.shared.pool.wait_until(WAIT_STEP, || {
                taken = self.empty_batches.try_recv();
                !matches!(taken, Err(TryRecvError::Empty))
            });
            match taken {
                Ok(batch) => return Ok(batch),
                Err(TryRecvError::Disconnected) => return Err(self.writer_gone()),
                Err(TryRecvError::Empty) => {}
            }
            if self.stop_requested() {
                return Err(Stop::error());
            }
            if let Some(failure) = self.shared.failure() {
                return Err(io::Error::other(failure));
            }
        }
    }

    #[cold]
    fn writer_gone(&self) -> io::Error {
        io::Error::other(self.shared.failure().unwrap_or_else(|| "the syslog writer stopped".to_owned()))
    }
}

impl MessageSink for SyslogSender {
    fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.current.bytes
    }

    fn commit(&mut self, start: usize) -> io::Result<()> {
        let batch = &mut self.current;
        if let Some(max) = self.max_message_bytes {
            let len = batch.bytes.len() - start;
            if len > max {
                let keep = truncated_len(&batch.bytes[start..], max);
                batch.bytes.truncate(start + keep);
                self.truncated += 1;
            }
        }
        self.framing.frame_in_place(&mut batch.bytes, start);
        batch.ends.push(batch.bytes.len());
        self.accepted += 1;
        if batch.bytes.len() >= self.batch_bytes || batch.ends.len() >= MAX_BATCH_MESSAGES {
            self.send_pending()?;
        }
        Ok(())
    }
}

impl Drop for SyslogSender {
    fn drop(&mut self) {
        // Dropped without finish (an error path): stop the writer quickly.
        if let Some(thread) = self.thread.take() {
            self.shared.drain_deadline_ms.store(1, Ordering::Release);
            self.to_writer = None;
            self.shared.bell.wake_now();
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stop::is_stop;

    /// A sender whose pool is soon exhausted: two small batches, to a port
    /// nothing listens on.
    fn blocked_sender(configure: impl FnOnce(&mut SendConfig)) -> SyslogSender {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut config = SendConfig::new(vec![Destination::parse(&format!("tcp://127.0.0.1:{closed}")).unwrap()]);
        config.batches = 2;
        config.batch_bytes = 1024;
        config.backoff = Backoff { initial: Duration::from_millis(10), max: Duration::from_millis(50) };
        config.drain_timeout = Duration::from_millis(100);
        configure(&mut config);
        SyslogSender::start(&config).unwrap()
    }

    /// Commits messages until one is refused (the pool runs out first).
    fn commit_until_refused(sender: &mut SyslogSender) -> io::Error {
        loop {
            let start = sender.buffer().len();
            sender.buffer().extend_from_slice(&[b'x'; 600]);
            if let Err(err) = sender.commit(start) {
                return err;
            }
        }
    }

    #[test]
    fn a_producer_waiting_for_a_batch_gets_the_writers_failure() {
        let mut sender = blocked_sender(|c| c.give_up_after = Some(Duration::from_millis(300)));
        let err = commit_until_refused(&mut sender);
        assert!(err.to_string().contains("giving up"), "{err}");
        assert!(!is_stop(&err));
        let report = sender.finish().unwrap();
        assert!(report.failure.is_some() && report.messages_unsent > 0, "{report:?}");
    }

    #[test]
    fn a_stop_ends_a_producers_wait_with_the_stop_error() {
        let stop = Stop::new();
        let mut sender = blocked_sender(|c| c.stop = Some(stop.clone()));
        let asker = std::thread::spawn(move || {
            // Not a timing assertion: only gives the producer time to block.
            std::thread::sleep(Duration::from_millis(300));
            stop.request();
        });
        let err = commit_until_refused(&mut sender);
        asker.join().unwrap();
        assert!(is_stop(&err), "{err}");
        let report = sender.finish().unwrap();
        assert_eq!(report.failure, None, "a stop is not a failure: {report:?}");
        assert!(report.messages_unsent > 0);
    }
}
