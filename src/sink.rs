//! The measuring syslog receiver behind `cefwire sink`: listens on TCP, UDP
//! or TLS, splits the stream into messages (newline or octet counting,
//! detected per frame unless fixed), counts messages, bytes, framing errors
//! and the per-second rate, optionally stores each message as one line, and
//! stops on a signal, when `expect` messages arrived or when time is up.
//!
//! One receiving thread runs a mio event loop over every connection
//! (`sink/event_loop.rs`; one connection's reading and deframing is
//! `sink/connection.rs`), `recvmmsg` for UDP; this thread takes the
//! per-second rates and decides when to stop. It owns its sockets; it does
//! not use the sender.

mod connection;
mod event_loop;

use crate::progress::Progress;
use crate::stop::Stop;
use crate::syslog::destination::{Destination, Transport};
use crate::syslog::frame::Framing;
use mio::net::{TcpListener, UdpSocket};
use std::fs::File;
use std::io::{self, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Validated settings of `cefwire sink`.
#[derive(Clone, Debug)]
pub struct SinkConfig {
    pub listen: Destination,
    /// Certificate chain and key for `tls://`.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (`tls://` only).
    pub tls_client_ca: Option<PathBuf>,
    /// `None`: decide per frame (a leading digit means octet counting).
    pub framing: Option<Framing>,
    /// Store every message here, one per line.
    pub out: Option<PathBuf>,
    /// Stop once this many messages arrived.
    pub expect: Option<u64>,
    /// Stop after this long.
    pub timeout: Option<Duration>,
    /// Longest acceptable frame.
    pub max_message_bytes: usize,
    /// UDP receive buffer to ask the kernel for.
    pub receive_buffer: usize,
    /// Stream connections served at once; more are closed at once and
    /// counted in [`SinkReport::refused_connections`]. An open connection
    /// costs no thread and holds at most its frame in progress.
    pub max_connections: usize,
    pub progress: bool,
}

/// Default of `--max-connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

/// What arrived.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SinkReport {
    pub listen: String,
    pub messages: u64,
    /// Bytes received (framing included).
    pub bytes: u64,
    pub connections: u64,
    /// Connections closed unserved: `max_connections` were open.
    pub refused_connections: u64,
    pub framing_errors: u64,
    /// From start to stop.
    pub elapsed: Duration,
    /// From the first to the last message.
    pub active: Duration,
    /// Highest count in one whole second (from the first message on).
    pub peak_rate: u64,
    /// Messages in each second from the first message on, the last entry
    /// the final partial second: they add up to `messages` (up to a day).
    pub per_second: Vec<u64>,
    /// Order-independent hash of the messages (wrapping sum of one hash per
    /// message): equal when the same messages arrived, whatever the order.
    pub content_hash: u64,
    pub expected: Option<u64>,
}

impl SinkReport {
    pub fn average_rate(&self) -> f64 {
        let secs = self.active.as_secs_f64();
        if secs > 0.0 { self.messages as f64 / secs } else { 0.0 }
    }

    pub fn megabytes_per_second(&self) -> f64 {
        let secs = self.active.as_secs_f64();
        if secs > 0.0 { self.bytes as f64 / secs / 1e6 } else { 0.0 }
    }

    /// Whether `expect` (if any) was met.
    pub fn complete(&self) -> bool {
        self.expected.is_none_or(|n| self.messages >= n)
    }

    pub fn text(&self) -> String {
        let mut text = format!(
            "received {} messages ({} bytes) on {} connection{} in {:.2} s; {:.0} msgs/s and {:.1} MB/s from first to last message ({:.3} s), peak {} msgs/s; framing errors {}; refused connections {}; content hash {:016x}",
            self.messages,
            self.bytes,
            self.connections,
            if self.connections == 1 { "" } else { "s" },
            self.elapsed.as_secs_f64(),
            self.average_rate(),
            self.megabytes_per_second(),
            self.active.as_secs_f64(),
            self.peak_rate,
            self.framing_errors,
            self.refused_connections,
            self.content_hash,
        );
        if let Some(n) = self.expected {
            text.push_str(&format!("; expected {n}: {}", if self.complete() { "met" } else { "NOT met" }));
        }
        text
    }

    pub fn json(&self) -> String {
        let json = SinkJson {
            listen: &self.listen,
            messages: self.messages,
            bytes: self.bytes,
            connections: self.connections,
            refused_connections: self.refused_connections,
            framing_errors: self.framing_errors,
            elapsed_s: crate::json::rounded(self.elapsed.as_secs_f64(), 6),
            active_s: crate::json::rounded(self.active.as_secs_f64(), 6),
            rate_avg: crate::json::rounded(self.average_rate(), 1),
            rate_peak: self.peak_rate,
            mb_per_s: crate::json::rounded(self.megabytes_per_second(), 3),
            content_hash: format!("{:016x}", self.content_hash),
            expected: self.expected,
            complete: self.complete(),
            per_second: &self.per_second,
        };
        serde_json::to_string(&json).expect("a report serializes")
    }
}

/// The JSON report's fields, in this order.
#[derive(serde::Serialize)]
struct SinkJson<'a> {
    listen: &'a str,
    messages: u64,
    bytes: u64,
    connections: u64,
    refused_connections: u64,
    framing_errors: u64,
    elapsed_s: f64,
    active_s: f64,
    rate_avg: f64,
    rate_peak: u64,
    mb_per_s: f64,
    content_hash: String,
    expected: Option<u64>,
    complete: bool,
    per_second: &'a [u64],
}

/// A fast, order-sensitive hash of one message (8 bytes at a time).
pub fn message_hash(message: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = (message.len() as u64).wrapping_mul(K);
    let mut chunks = message.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        h = (h.rotate_left(5) ^ word).wrapping_mul(K);
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    h = (h.rotate_left(5) ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    h ^ (h >> 29)
}

/// Counters shared by the receiving thread and the reporting one.
#[derive(Default)]
struct Counters {
    messages: AtomicU64,
    bytes: AtomicU64,
    connections: AtomicU64,
    refused_connections: AtomicU64,
    framing_errors: AtomicU64,
    hash: AtomicU64,
    /// Nanoseconds since start of the first and the latest message (+1, so
    /// 0 means none yet).
    first_ns: AtomicU64,
    last_ns: AtomicU64,
}

struct Receiving {
    counters: Counters,
    stop: AtomicBool,
    started: Instant,
    /// Written once per read (no user-space buffering, so a killed sink
    /// has stored everything it counted, give or take the read in hand).
    out: Option<Mutex<File>>,
    /// The first failed write to `out`: it ends the run with an error.
    out_error: Mutex<Option<io::Error>>,
    framing: Option<Framing>,
    max_message_bytes: usize,
}

impl Receiving {
    /// Adds what one read produced.
    fn account(&self, messages: u64, bytes: u64, hash: u64, out: &mut Vec<u8>) -> io::Result<()> {
        let c = &self.counters;
        if messages > 0 {
            let now = self.started.elapsed().as_nanos() as u64 + 1;
            let _ = c.first_ns.compare_exchange(0, now, Ordering::AcqRel, Ordering::Relaxed);
            c.last_ns.fetch_max(now, Ordering::AcqRel);
            c.hash.fetch_add(hash, Ordering::Relaxed);
            c.messages.fetch_add(messages, Ordering::AcqRel);
        }
        c.bytes.fetch_add(bytes, Ordering::Relaxed);
        if let Some(file) = &self.out
            && !out.is_empty()
        {
            if let Err(err) = file.lock().unwrap_or_else(|e| e.into_inner()).write_all(out) {
                let kind = err.kind();
                self.out_error.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(err);
                self.stop.store(true, Ordering::Release);
                return Err(io::Error::new(kind, "writing --out failed"));
            }
            out.clear();
        }
        Ok(())
    }
}

/// A bound, not yet running, receiver (binding first lets the caller learn
/// the port when it asked for port 0).
pub struct Sink {
    config: SinkConfig,
    socket: BoundSocket,
    tls: Option<Arc<rustls::ServerConfig>>,
}

enum BoundSocket {
    Stream(TcpListener),
    Datagram(UdpSocket),
}

/// Why the sink could not start.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot listen on {0}: {1}")]
    Bind(String, io::Error),
    #[error("tls:// needs --cert and --key")]
    TlsFilesMissing,
    #[error("TLS setup: {0}")]
    Tls(#[from] crate::syslog::tls::TlsSetupError),
    #[error("creating {0}: {1}")]
    Out(String, io::Error),
    #[error("receiving on {0}: {1}")]
    Receive(String, io::Error),
    #[error("writing {0}: {1} ({2} messages received; the file holds fewer)")]
    OutWrite(String, io::Error, u64),
}

impl Sink {
    pub fn bind(config: SinkConfig) -> Result<Self, SinkError> {
        let name = config.listen.to_string();
        let addr: SocketAddr = config
            .listen
            .authority()
            .to_socket_addrs()
            .and_then(|mut a| a.next().ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address")))
            .map_err(|e| SinkError::Bind(name.clone(), e))?;
        let tls = match config.listen.transport {
            Transport::Tls => match (&config.tls_cert, &config.tls_key) {
                (Some(cert), Some(key)) => {
                    Some(crate::syslog::tls::server_config(cert, key, config.tls_client_ca.as_deref())?)
                }
                _ => return Err(SinkError::TlsFilesMissing),
            },
            _ => None,
        };
        let socket = match config.listen.transport {
            Transport::Udp => {
                let socket = UdpSocket::bind(addr).map_err(|e| SinkError::Bind(name, e))?;
                set_receive_buffer(&socket, config.receive_buffer);
                BoundSocket::Datagram(socket)
            }
            _ => {
                // Each open connection is a file descriptor.
                raise_open_file_limit();
                BoundSocket::Stream(TcpListener::bind(addr).map_err(|e| SinkError::Bind(name, e))?)
            }
        };
        Ok(Self { config, socket, tls })
    }

    /// The address actually bound, as a URL.
    pub fn local_url(&self) -> String {
        let addr = match &self.socket {
            BoundSocket::Stream(l) => l.local_addr(),
            BoundSocket::Datagram(s) => s.local_addr(),
        };
        match addr {
            Ok(addr) => format!("{}://{addr}", self.config.listen.transport.scheme()),
            Err(_) => self.config.listen.to_string(),
        }
    }

    /// Receives until `stop` is set, `expect` messages arrived or the
    /// timeout passed; then reports.
    pub fn run(self, stop: &Stop) -> Result<SinkReport, SinkError> {
        let out = match &self.config.out {
            Some(path) => {
                Some(Mutex::new(File::create(path).map_err(|e| SinkError::Out(path.display().to_string(), e))?))
            }
            None => None,
        };
        let listen = self.local_url();
        let shared = Arc::new(Receiving {
            counters: Counters::default(),
            stop: AtomicBool::new(false),
            started: Instant::now(),
            out,
            out_error: Mutex::new(None),
            framing: self.config.framing,
            max_message_bytes: self.config.max_message_bytes,
        });
        let receiver: JoinHandle<io::Result<()>> = {
            let shared = Arc::clone(&shared);
            let (socket, tls) = (self.socket, self.tls.clone());
            let max_connections = self.config.max_connections;
            std::thread::Builder::new()
                .name("sink-receive".into())
                .spawn(move || event_loop::run(socket, tls, &shared, max_connections))
                .map_err(|e| SinkError::Receive(listen.clone(), e))?
        };
        let progress = Progress::items(self.config.progress, self.config.expect, "received");
        let mut peak_rate = 0u64;
        let mut per_second = Vec::new();
        // Whole-second windows, from the moment the first message is seen.
        let mut last_second: Option<(Instant, u64)> = None;
        loop {
            std::thread::sleep(Duration::from_millis(20));
            let messages = shared.counters.messages.load(Ordering::Acquire);
            let now = Instant::now();
            match last_second {
                None if messages > 0 => last_second = Some((now, 0)),
                Some((since, count)) if now - since >= Duration::from_secs(1) => {
                    let rate = ((messages - count) as f64 / (now - since).as_secs_f64()).round();
                    peak_rate = peak_rate.max(rate as u64);
                    if per_second.len() < MAX_SECONDS_KEPT {
                        per_second.push(messages - count);
                    }
                    last_second = Some((now, messages));
                }
                _ => {}
            }
            progress.set_position(messages);
            if stop.is_requested()
                || shared.stop.load(Ordering::Acquire)
                || self.config.expect.is_some_and(|n| messages >= n)
                || self.config.timeout.is_some_and(|t| shared.started.elapsed() >= t)
            {
                break;
            }
        }
        shared.stop.store(true, Ordering::Release);
        let received = receiver.join().unwrap_or_else(|_| Err(io::Error::other("the receiving thread panicked")));
        progress.finish();
        let elapsed = shared.started.elapsed();
        let out_name = || self.config.out.as_ref().map_or_else(String::new, |p| p.display().to_string());
        if let Some(err) = shared.out_error.lock().unwrap_or_else(|e| e.into_inner()).take() {
            return Err(SinkError::OutWrite(out_name(), err, shared.counters.messages.load(Ordering::Acquire)));
        }
        received.map_err(|e| SinkError::Receive(listen.clone(), e))?;
        if let Some(out) = &shared.out {
            let mut file = out.lock().unwrap_or_else(|e| e.into_inner());
            file.flush().map_err(|e| SinkError::Out(out_name(), e))?;
        }
        let c = &shared.counters;
        let (first, last) = (c.first_ns.load(Ordering::Acquire), c.last_ns.load(Ordering::Acquire));
        let messages = c.messages.load(Ordering::Acquire);
        // The last, partial second (or the only one of a short run) too:
        // the entries add up to `messages`.
        let counted = last_second.map_or(0, |(_, count)| count);
        if messages > counted && per_second.len() < MAX_SECONDS_KEPT {
            per_second.push(messages - counted);
        }
        Ok(SinkReport {
            listen,
            messages,
            bytes: c.bytes.load(Ordering::Relaxed),
            connections: c.connections.load(Ordering::Relaxed),
            refused_connections: c.refused_connections.load(Ordering::Relaxed),
            framing_errors: c.framing_errors.load(Ordering::Relaxed),
            elapsed,
            active: Duration::from_nanos(last.saturating_sub(first)),
            // All arrived within one second: that is the peak.
            peak_rate: peak_rate.max(if last.saturating_sub(first) < 1_000_000_000 { messages } else { 0 }),
            content_hash: c.hash.load(Ordering::Relaxed),
            expected: self.config.expect,
            per_second,
        })
    }
}

/// `per_second` keeps at most a day.
const MAX_SECONDS_KEPT: usize = 86_400;

#[cfg(target_os = "linux")]
fn set_receive_buffer(socket: &UdpSocket, bytes: usize) {
    use std::os::fd::AsRawFd;
    let value = bytes.min(i32::MAX as usize) as libc::c_int;
    for option in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: setting an int socket option from a valid pointer.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&value as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        // SO_RCVBUFFORCE needs CAP_NET_ADMIN; fall back to the capped one.
        if rc == 0 {
            return;
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn set_receive_buffer(_socket: &UdpSocket, _bytes: usize) {}

/// Lifts the soft limit on open files to the hard one, so
/// `--max-connections` rather than a default of 1,024 descriptors decides
/// how many connections are served. When accepting still fails for want of
/// descriptors, the connection waits in the listen queue.
#[cfg(unix)]
fn raise_open_file_limit() {
    // SAFETY: get/setrlimit with a valid pointer to a plain C struct.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

#[cfg(not(unix))]
fn raise_open_file_limit() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_every_byte_and_length() {
        assert_ne!(message_hash(b"abc"), message_hash(b"abd"));
        assert_ne!(message_hash(b"abc"), message_hash(b"abc\0"));
        assert_ne!(message_hash(b"12345678a"), message_hash(b"12345678b"));
        assert_eq!(message_hash(b"same"), message_hash(b"same"));
    }
}
