//! The emulator's network side: an accept loop and one std thread per
//! connection (keep-alive, optional TLS through rustls `StreamOwned`),
//! routing, the token check, the throttle, injected faults and counters.
//!
//! Routes: `POST /api/v1/activities/` and `POST /api/v1/alerts/` (the list
//! API), `GET /v1.0/security/alerts_v2` (Microsoft Graph, bearer tokens
//! only, its own 150/min throttle answered 429 with `Retry-After`),
//! `POST …/oauth2/v2.0/token` and `POST /oauth2/token` (an Entra ID
//! client-credentials stand-in; for the storage scope it issues a JWT,
//! which Azurite checks), `GET /stats` (counters as JSON, no auth).

use super::graph::{GraphQuery, write_page as write_graph_page};
use super::http::{HttpError, HttpReader, Request, write_head, write_head_dated, write_response};
use super::query::{Endpoint, PageShape, Query, write_page};
use super::store::RecordStore;
use super::{EmulatorConfig, EmulatorStats, FaultConfig, tls};
use crate::json::JsonParser;
use crate::rng::Rng;
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error(transparent)]
    Tls(#[from] tls::TlsSetupError),
    #[error("writing the certificate to {path}: {source}")]
    CertFile { path: String, source: io::Error },
    #[error("starting the accept thread: {0}")]
    Thread(io::Error),
}

/// A running emulator; stops when [`EmulatorHandle::shutdown`] is called or
/// it is dropped.
pub struct EmulatorHandle {
    addr: SocketAddr,
    tls: bool,
    cert_pem: Option<String>,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl EmulatorHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (or `https://localhost:PORT` with TLS, the
    /// name the certificate carries).
    pub fn base_url(&self) -> String {
        if self.tls { format!("https://localhost:{}", self.addr.port()) } else { format!("http://{}", self.addr) }
    }

    /// The self-signed certificate (PEM) when serving HTTPS.
    pub fn cert_pem(&self) -> Option<&str> {
        self.cert_pem.as_deref()
    }

    pub fn stats(&self) -> EmulatorStats {
        self.shared.counters.snapshot()
    }

    /// Changes the injected faults from the next request on (a test turns
    /// a burst of 5xx or dropped connections on and off this way).
    pub fn set_faults(&self, faults: FaultConfig) {
        *self.shared.faults.lock().unwrap_or_else(|e| e.into_inner()) = faults;
    }

    /// Publishes the streaming archive's progress in the counters.
    pub fn set_archive_progress(&self, stats: &super::archive::ArchiveStats, done: bool) {
        let counters = &self.shared.counters.0;
        counters[Counter::ArchiveRecords as usize].store(stats.records, Ordering::Relaxed);
        counters[Counter::ArchiveAppends as usize].store(stats.appends, Ordering::Relaxed);
        counters[Counter::ArchiveDone as usize].store(u64::from(done), Ordering::Relaxed);
    }

    /// Stops accepting, lets open connections end, and returns the counts.
    pub fn shutdown(mut self) -> EmulatorStats {
        self.stop();
        self.stats()
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            // Wake the blocking accept.
            let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
            let _ = acceptor.join();
        }
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts serving `store` as configured.
pub fn start(config: EmulatorConfig, store: Arc<RecordStore>) -> Result<EmulatorHandle, StartError> {
    let (cert_pem, tls_config) = if config.tls {
        let identity = tls::self_signed(&[config.listen.ip().to_string()])?;
        if let Some(path) = &config.tls_cert_out {
            std::fs::write(path, &identity.cert_pem)
                .map_err(|source| StartError::CertFile { path: path.display().to_string(), source })?;
        }
        (Some(identity.cert_pem), Some(identity.server_config))
    } else {
        (None, None)
    };
    let listener =
        TcpListener::bind(config.listen).map_err(|source| StartError::Bind { addr: config.listen, source })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind { addr: config.listen, source })?;
    let tls = config.tls;
    let shared = Arc::new(Shared {
        dice: Mutex::new(Rng::new(config.seed)),
        faults: Mutex::new(config.faults),
        config,
        store,
        tls_config,
        counters: Counters::default(),
        throttle: Mutex::new(VecDeque::new()),
        graph_throttle: Mutex::new(VecDeque::new()),
        graph_arrivals: Mutex::new(VecDeque::new()),
        tokens: Mutex::new(HashMap::new()),
        active: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
    });
    let accept_shared = Arc::clone(&shared);
    let acceptor = std::thread::Builder::new()
        .name("emulate-accept".into())
        .spawn(move || accept_loop(listener, accept_shared))
        .map_err(StartError::Thread)?;
    Ok(EmulatorHandle { addr, tls, cert_pem, shared, acceptor: Some(acceptor) })
}

struct Shared {
    config: EmulatorConfig,
    store: Arc<RecordStore>,
    tls_config: Option<Arc<ServerConfig>>,
    counters: Counters,
    /// Times of the accepted API requests inside the current window.
    throttle: Mutex<VecDeque<Instant>>,
    /// The same for Graph requests.
    graph_throttle: Mutex<VecDeque<Instant>>,
    /// Arrival times of every Graph request in the last throttle window,
    /// to record the most that ever arrived within one window.
    graph_arrivals: Mutex<VecDeque<Instant>>,
    /// Issued bearer tokens and when they expire.
    tokens: Mutex<HashMap<String, Instant>>,
    dice: Mutex<Rng>,
    /// The faults in force (starts as `config.faults`).
    faults: Mutex<FaultConfig>,
    active: AtomicUsize,
    stop: AtomicBool,
}

#[derive(Clone, Copy)]
enum Counter {
    Requests,
    ApiRequests,
    Pages,
    RecordsServed,
    Throttled,
    Unauthorized,
    BadRequests,
    Injected5xx,
    InjectedDrops,
    InjectedSlow,
    InjectedShortPages,
    TokensIssued,
    Connections,
    GraphRequests,
    GraphPages,
    GraphAlertsServed,
    GraphThrottled,
    Injected429,
    GraphMostPerWindow,
    ArchiveRecords,
    ArchiveAppends,
    ArchiveDone,
}

#[derive(Default)]
struct Counters([AtomicU64; 22]);

impl Counters {
    fn add(&self, counter: Counter, n: u64) {
        self.0[counter as usize].fetch_add(n, Ordering::Relaxed);
    }

    fn snapshot(&self) -> EmulatorStats {
        let get = |c: Counter| self.0[c as usize].load(Ordering::Relaxed);
        EmulatorStats {
            requests: get(Counter::Requests),
            api_requests: get(Counter::ApiRequests),
            pages: get(Counter::Pages),
            records_served: get(Counter::RecordsServed),
            throttled: get(Counter::Throttled),
            unauthorized: get(Counter::Unauthorized),
            bad_requests: get(Counter::BadRequests),
            injected_5xx: get(Counter::Injected5xx),
            injected_drops: get(Counter::InjectedDrops),
            injected_slow: get(Counter::InjectedSlow),
            injected_short_pages: get(Counter::InjectedShortPages),
            tokens_issued: get(Counter::TokensIssued),
            connections: get(Counter::Connections),
            graph_requests: get(Counter::GraphRequests),
            graph_pages: get(Counter::GraphPages),
            graph_alerts_served: get(Counter::GraphAlertsServed),
            graph_throttled: get(Counter::GraphThrottled),
            injected_429: get(Counter::Injected429),
            graph_most_per_window: get(Counter::GraphMostPerWindow),
            archive_records: get(Counter::ArchiveRecords),
            archive_appends: get(Counter::ArchiveAppends),
            archive_done: get(Counter::ArchiveDone) != 0,
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        if shared.active.load(Ordering::SeqCst) >= shared.config.max_connections {
            drop(stream);
            continue;
        }
        shared.active.fetch_add(1, Ordering::SeqCst);
        shared.counters.add(Counter::Connections, 1);
        let conn_shared = Arc::clone(&shared);
        let spawned = std::thread::Builder::new().name("emulate-conn".into()).spawn(move || {
            serve_connection(&conn_shared, stream);
            conn_shared.active.fetch_sub(1, Ordering::SeqCst);
        });
        if spawned.is_err() {
            shared.active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// A plain or TLS connection.
enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => &s.sock,
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

/// What to do with a request.
enum Reply {
    /// Send `status` with the body in the connection's page buffer.
    Json { status: u16 },
    /// 429 with `Retry-After: seconds` and the body in the page buffer.
    Throttled { retry_after: u64 },
    /// Close the connection without a complete response; `after_half`
    /// sends the head and half the body first.
    Drop { after_half: bool },
    /// A 200 head announcing a huge body, then bytes until the client
    /// hangs up (or the emulator stops).
    Endless,
}

fn serve_connection(shared: &Shared, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(250)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(60)));
    let mut conn = match &shared.tls_config {
        Some(config) => match ServerConnection::new(Arc::clone(config)) {
            Ok(tls) => Conn::Tls(Box::new(StreamOwned::new(tls, stream))),
            Err(_) => return,
        },
        None => Conn::Plain(stream),
    };
    let mut reader = HttpReader::default();
    let mut request = Request::default();
    let mut parser = JsonParser::new();
    let mut body = Vec::new();
    loop {
        match reader.read_request(&mut conn, &mut request, &shared.stop) {
            Ok(true) => {}
            Ok(false) => return,
            Err(err @ (HttpError::Bad(_) | HttpError::TooLarge)) => {
                shared.counters.add(Counter::BadRequests, 1);
                let status = if matches!(err, HttpError::TooLarge) { 413 } else { 400 };
                let _ = write_response(&mut conn, status, error_json(&err.to_string()).as_bytes(), false, &[]);
                return;
            }
            Err(HttpError::Io(_)) => return,
        }
        shared.counters.add(Counter::Requests, 1);
        let keep_alive = request.keep_alive && !shared.stop.load(Ordering::Relaxed);
        let reply = handle(shared, &mut request, &mut parser, &mut body);
        let date = shared.faults.lock().unwrap_or_else(|e| e.into_inner()).date.value();
        let respond = |conn: &mut Conn, status: u16, extra: &[(&str, &str)], body: &[u8]| {
            write_head_dated(conn, status, body.len() as u64, keep_alive, &date, extra)
                .and_then(|()| conn.write_all(body))
                .and_then(|()| conn.flush())
        };
        let written = match reply {
            Reply::Json { status } => respond(&mut conn, status, &[], &body),
            Reply::Throttled { retry_after } => {
                let seconds = retry_after.to_string();
                respond(&mut conn, 429, &[("Retry-After", &seconds)], &body)
            }
            Reply::Endless => {
                let chunk = vec![b' '; 64 << 10];
                let mut sent = write_head_dated(&mut conn, 200, 1 << 50, false, &date, &[]);
                while sent.is_ok() && !shared.stop.load(Ordering::Relaxed) {
                    sent = conn.write_all(&chunk);
                }
                let _ = conn.tcp().shutdown(Shutdown::Both);
                return;
            }
            Reply::Drop { after_half } => {
                if after_half {
                    let _ = write_head(&mut conn, 200, body.len(), true, &[])
                        .and_then(|()| conn.write_all(&body[..body.len() / 2]))
                        .and_then(|()| conn.flush());
                }
                let _ = conn.tcp().shutdown(Shutdown::Both);
                return;
            }
        };
        if written.is_err() || !keep_alive {
            if let Conn::Tls(tls) = &mut conn {
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
            return;
        }
    }
}

fn error_json(message: &str) -> String {
    let mut out = Vec::new();
    out.extend_from_slice(b"{\"detail\":");
    crate::json::write_json_string(message, &mut out);
    out.push(b'}');
    String::from_utf8(out).unwrap_or_default()
}

fn set_error(body: &mut Vec<u8>, message: &str) {
    body.clear();
    body.extend_from_slice(error_json(message).as_bytes());
}

fn handle(shared: &Shared, request: &mut Request, parser: &mut JsonParser, body: &mut Vec<u8>) -> Reply {
    let path = request.path.trim_end_matches('/');
    let endpoint = match path {
        "/api/v1/activities" => Some(Endpoint::Activities),
        "/api/v1/alerts" => Some(Endpoint::Alerts),
        _ => None,
    };
    if let Some(endpoint) = endpoint {
        if request.method != "POST" {
            set_error(body, "use POST with a JSON body");
            return Reply::Json { status: 405 };
        }
        return handle_list(shared, endpoint, request, parser, body);
    }
    if matches!(path, "/v1.0/security/alerts_v2" | "/beta/security/alerts_v2") {
        if request.method != "GET" {
            set_graph_error(body, "BadRequest", "use GET");
            return Reply::Json { status: 405 };
        }
        return handle_graph(shared, request, body);
    }
    if path == "/stats" && request.method == "GET" {
        body.clear();
        body.extend_from_slice(shared.counters.snapshot().to_json().as_bytes());
        return Reply::Json { status: 200 };
    }
    if (path.ends_with("/oauth2/v2.0/token") || path == "/oauth2/token") && request.method == "POST" {
        return handle_token(shared, request, body);
    }
    set_error(body, "not found");
    Reply::Json { status: 404 }
}

fn handle_list(
    shared: &Shared,
    endpoint: Endpoint,
    request: &mut Request,
    parser: &mut JsonParser,
    body: &mut Vec<u8>,
) -> Reply {
    let counters = &shared.counters;
    counters.add(Counter::ApiRequests, 1);
    if let Err((status, message)) = check_auth(shared, request.header("authorization")) {
        counters.add(Counter::Unauthorized, 1);
        set_error(body, message);
        return Reply::Json { status };
    }
    let faults = *shared.faults.lock().unwrap_or_else(|e| e.into_inner());
    if !admit(shared) {
        counters.add(Counter::Throttled, 1);
        set_error(body, "Request was throttled.");
        return match faults.retry_after_secs {
            Some(retry_after) => Reply::Throttled { retry_after },
            None => Reply::Json { status: 429 },
        };
    }
    let (fault_roll, slow_roll, short_roll, short_len) = {
        let mut dice = shared.dice.lock().unwrap_or_else(|e| e.into_inner());
        (unit(&mut dice), unit(&mut dice), unit(&mut dice), dice.next_u64())
    };
    if fault_roll < faults.error_5xx {
        counters.add(Counter::Injected5xx, 1);
        let status = [500, 502, 503, 504][(short_len % 4) as usize];
        set_error(body, "injected server error");
        return Reply::Json { status };
    }
    if slow_roll >= 1.0 - faults.error_429 {
        counters.add(Counter::Injected429, 1);
        set_error(body, "Request was throttled (injected).");
        return Reply::Throttled { retry_after: faults.retry_after_secs.unwrap_or(INJECTED_RETRY_AFTER) };
    }
    let drop_connection = fault_roll < faults.error_5xx + faults.drop;
    if slow_roll < faults.slow {
        counters.add(Counter::InjectedSlow, 1);
        std::thread::sleep(faults.slow_delay);
    }
    let now = crate::time::now_ms();
    let len = request.body_len;
    let query = match Query::parse(parser, &mut request.body, len, endpoint, now) {
        Ok(query) => query,
        Err(err) => {
            counters.add(Counter::BadRequests, 1);
            set_error(body, &err.0);
            return Reply::Json { status: 400 };
        }
    };
    let set = match endpoint {
        Endpoint::Activities => &shared.store.activities,
        Endpoint::Alerts => &shared.store.alerts,
    };
    let mut shape = PageShape { max_bytes: shared.config.max_page_bytes, cut_after: None, stuck: faults.stuck_scan };
    if query.is_scan && short_roll < faults.short_pages {
        counters.add(Counter::InjectedShortPages, 1);
        shape.cut_after = Some(1 + short_len % query.limit);
    }
    let summary = write_page(set, &query, endpoint, now, shape, body);
    if faults.endless_body {
        return Reply::Endless;
    }
    spoil_page(&faults, body);
    if drop_connection {
        counters.add(Counter::InjectedDrops, 1);
        return Reply::Drop { after_half: short_len & 1 == 1 };
    }
    counters.add(Counter::Pages, 1);
    counters.add(Counter::RecordsServed, summary.records);
    Reply::Json { status: 200 }
}

/// `Retry-After` of an injected 429, in seconds.
const INJECTED_RETRY_AFTER: u64 = 1;

/// Graph's error body: `{"error":{"code":…,"message":…}}`.
fn set_graph_error(body: &mut Vec<u8>, code: &str, message: &str) {
    body.clear();
    body.extend_from_slice(serde_json::json!({"error": {"code": code, "message": message}}).to_string().as_bytes());
}

/// `GET /v1.0/security/alerts_v2`: bearer token, Graph's own throttle,
/// faults, then one page.
fn handle_graph(shared: &Shared, request: &Request, body: &mut Vec<u8>) -> Reply {
    let counters = &shared.counters;
    counters.add(Counter::GraphRequests, 1);
    record_graph_arrival(shared);
    let bearer = request.header("authorization").filter(|h| h.len() > 7 && h[..7].eq_ignore_ascii_case("bearer "));
    if let Err((status, message)) = bearer.map_or(Err((401, "Access token is empty.")), |h| check_auth(shared, Some(h)))
    {
        counters.add(Counter::Unauthorized, 1);
        set_graph_error(body, "InvalidAuthenticationToken", message);
        return Reply::Json { status };
    }
    if let Err(retry_after) = admit_graph(shared) {
        counters.add(Counter::GraphThrottled, 1);
        set_graph_error(body, "TooManyRequests", "Too many requests.");
        return Reply::Throttled { retry_after };
    }
    let faults = *shared.faults.lock().unwrap_or_else(|e| e.into_inner());
    let (fault_roll, slow_roll, pick) = {
        let mut dice = shared.dice.lock().unwrap_or_else(|e| e.into_inner());
        (unit(&mut dice), unit(&mut dice), dice.next_u64())
    };
    if fault_roll < faults.error_5xx {
        counters.add(Counter::Injected5xx, 1);
        set_graph_error(body, "ServiceUnavailable", "injected server error");
        return Reply::Json { status: [500, 502, 503, 504][(pick % 4) as usize] };
    }
    if slow_roll >= 1.0 - faults.error_429 {
        counters.add(Counter::Injected429, 1);
        set_graph_error(body, "TooManyRequests", "Too many requests (injected).");
        return Reply::Throttled { retry_after: faults.retry_after_secs.unwrap_or(INJECTED_RETRY_AFTER) };
    }
    if slow_roll < faults.slow {
        counters.add(Counter::InjectedSlow, 1);
        std::thread::sleep(faults.slow_delay);
    }
    let query = match GraphQuery::parse(&request.query) {
        Ok(query) => query,
        Err(err) => {
            counters.add(Counter::BadRequests, 1);
            set_graph_error(body, "BadRequest", &err.0);
            return Reply::Json { status: 400 };
        }
    };
    let scheme = if shared.tls_config.is_some() { "https" } else { "http" };
    let host = match faults.graph_next_link_to {
        Some(elsewhere) => elsewhere.to_string(),
        None => request.header("host").unwrap_or("localhost").to_owned(),
    };
    let next_base = format!("{scheme}://{host}{}", request.path);
    let now_ticks = crate::time::now_ms() * crate::time::TICKS_PER_MS;
    let served = write_graph_page(&shared.store.graph_alerts, &query, &next_base, now_ticks, body);
    if fault_roll < faults.error_5xx + faults.drop {
        counters.add(Counter::InjectedDrops, 1);
        return Reply::Drop { after_half: pick & 1 == 1 };
    }
    counters.add(Counter::GraphPages, 1);
    counters.add(Counter::GraphAlertsServed, served);
    Reply::Json { status: 200 }
}

/// Notes a Graph request's arrival and the most arrivals within one
/// throttle window so far (what a client sent, throttled or not).
fn record_graph_arrival(shared: &Shared) {
    let window = shared.config.graph_rate_limit.map_or(Duration::from_secs(60), |l| l.per);
    let now = Instant::now();
    let mut arrivals = shared.graph_arrivals.lock().unwrap_or_else(|e| e.into_inner());
    while arrivals.front().is_some_and(|t| now.duration_since(*t) >= window) {
        arrivals.pop_front();
    }
    arrivals.push_back(now);
    shared.counters.0[Counter::GraphMostPerWindow as usize].fetch_max(arrivals.len() as u64, Ordering::Relaxed);
}

/// Graph's sliding-window throttle; `Err(seconds)` until a slot frees.
fn admit_graph(shared: &Shared) -> Result<(), u64> {
    let Some(limit) = shared.config.graph_rate_limit else { return Ok(()) };
    let now = Instant::now();
    let mut admitted = shared.graph_throttle.lock().unwrap_or_else(|e| e.into_inner());
    while admitted.front().is_some_and(|t| now.duration_since(*t) >= limit.per) {
        admitted.pop_front();
    }
    if admitted.len() >= limit.requests as usize {
        let free_at = admitted[0] + limit.per;
        return Err(free_at.saturating_duration_since(now).as_secs() + 1);
    }
    admitted.push_back(now);
    Ok(())
}

/// The hostile page faults: `hasNext` as a string, padding.
fn spoil_page(faults: &FaultConfig, body: &mut Vec<u8>) {
    if faults.has_next_as_string {
        for (from, to) in
            [(&b"\"hasNext\":true"[..], &b"\"hasNext\":\"true\""[..]), (b"\"hasNext\":false", b"\"hasNext\":\"false\"")]
        {
            if let Some(at) = memchr::memmem::find(body, from) {
                body.splice(at..at + from.len(), to.iter().copied());
            }
        }
    }
    if faults.page_padding_bytes > 0 && body.last() == Some(&b'}') {
        body.pop();
        body.extend_from_slice(b",\"padding\":\"");
        body.resize(body.len() + faults.page_padding_bytes, b'x');
        body.extend_from_slice(b"\"}");
    }
}

/// A uniform number in [0, 1).
fn unit(rng: &mut Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Missing or malformed credentials and expired tokens: 401; a token that
/// is not the configured one: 403.
fn check_auth(shared: &Shared, header: Option<&str>) -> Result<(), (u16, &'static str)> {
    let auth = &shared.config.auth;
    if auth.api_token.is_none() && auth.client.is_none() {
        return Ok(());
    }
    let Some(header) = header else { return Err((401, "Authentication credentials were not provided.")) };
    let (scheme, value) = header.split_once(' ').ok_or((401, "Malformed Authorization header."))?;
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("token") {
        return match &auth.api_token {
            Some(token) if token == value => Ok(()),
            _ => Err((403, "Invalid token.")),
        };
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        let tokens = shared.tokens.lock().unwrap_or_else(|e| e.into_inner());
        return match tokens.get(value) {
            Some(expiry) if *expiry > Instant::now() => Ok(()),
            Some(_) => Err((401, "Token expired.")),
            None => Err((403, "Invalid token.")),
        };
    }
    Err((401, "Unsupported authorization scheme (use Token or Bearer)."))
}

/// The sliding-window throttle: admits a request when fewer than the limit
/// were admitted in the last window. Refused requests do not count.
fn admit(shared: &Shared) -> bool {
    let Some(limit) = shared.config.rate_limit else { return true };
    let now = Instant::now();
    let mut admitted = shared.throttle.lock().unwrap_or_else(|e| e.into_inner());
    while admitted.front().is_some_and(|t| now.duration_since(*t) >= limit.per) {
        admitted.pop_front();
    }
    if admitted.len() >= limit.requests as usize {
        return false;
    }
    admitted.push_back(now);
    true
}

fn handle_token(shared: &Shared, request: &Request, body: &mut Vec<u8>) -> Reply {
    let form = std::str::from_utf8(request.body_bytes()).unwrap_or_default();
    let field = |name: &str| {
        form.split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| percent_decode(v))
    };
    let fail = |body: &mut Vec<u8>, status: u16, error: &str, description: &str| {
        body.clear();
        body.extend_from_slice(b"{\"error\":");
        crate::json::write_json_string(error, body);
        body.extend_from_slice(b",\"error_description\":");
        crate::json::write_json_string(description, body);
        body.push(b'}');
        Reply::Json { status }
    };
    if field("grant_type").as_deref() != Some("client_credentials") {
        return fail(body, 400, "unsupported_grant_type", "only client_credentials is supported");
    }
    let Some((client_id, secret)) = &shared.config.auth.client else {
        return fail(body, 400, "unauthorized_client", "this emulator has no client configured (--client-id)");
    };
    if field("client_id").as_deref() != Some(client_id.as_str()) || field("client_secret").as_deref() != Some(secret) {
        return fail(body, 401, "invalid_client", "client id or secret is wrong");
    }
    let lifetime = shared.config.auth.token_lifetime;
    let issued = shared.counters.0[Counter::TokensIssued as usize].fetch_add(1, Ordering::Relaxed);
    let random = shared.dice.lock().unwrap_or_else(|e| e.into_inner()).next_u64();
    let token = match field("scope") {
        // Azurite takes bearer tokens that look like Entra's: a JWT whose
        // audience, issuer and lifetime it checks (not the signature).
        Some(scope) if scope.starts_with("https://storage.azure.com") => {
            let tenant = request.path.trim_start_matches('/').split('/').next().unwrap_or("common");
            storage_jwt(tenant, client_id, lifetime, issued, random)
        }
        _ => format!("emu.{issued}.{random:016x}"),
    };
    shared.tokens.lock().unwrap_or_else(|e| e.into_inner()).insert(token.clone(), Instant::now() + lifetime);
    body.clear();
    body.extend_from_slice(
        format!(
            "{{\"token_type\":\"Bearer\",\"expires_in\":{0},\"ext_expires_in\":{0},\"access_token\":\"{token}\"}}",
            lifetime.as_secs()
        )
        .as_bytes(),
    );
    Reply::Json { status: 200 }
}

/// An unsigned JWT for `https://storage.azure.com`, valid for `lifetime`.
fn storage_jwt(tenant: &str, client_id: &str, lifetime: Duration, issued: u64, random: u64) -> String {
    use base64::Engine;
    let encode = |json: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
    let now = crate::time::now_ms() / 1000;
    let claims = serde_json::json!({
        "aud": "https://storage.azure.com",
        "iss": format!("https://sts.windows.net/{tenant}/"),
        "iat": now, "nbf": now - 60, "exp": now + lifetime.as_secs() as i64,
        "appid": client_id, "tid": tenant, "jti": format!("{issued}.{random:016x}"),
    });
    format!("{}.{}.emulator", encode(r#"{"alg":"none","typ":"JWT"}"#), encode(&claims.to_string()))
}

/// Decodes `application/x-www-form-urlencoded` text.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_are_percent_decoded() {
        assert_eq!(percent_decode("a%2Bb+c%3D%3d"), "a+b c==");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
