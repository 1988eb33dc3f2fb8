//! The agent's loop: read both streams from the API slice by slice, send
//! every record to syslog once, and move the checkpoint only after what it
//! covers was written.
//!
//! Per stream (activities by `created`, alerts by `date`) a cursor says
//! "every record before this time was written to syslog". Each query asks
//! for `[cursor − overlap, min(cursor + slice, now))`; records already sent
//! are dropped by `_id` (the overlap catches records the service indexed
//! late). After every page: send, wait until syslog has it, save the ids
//! (so a crash re-sends at most that page); after the slice: advance the
//! cursor and save. "Now" is the API server's clock (its `Date` header), so
//! a jump of the local clock cannot skip records. While syslog is down the
//! loop waits on the sender and does not fetch; API errors back off and
//! retry. The health tells `cefwire status` how long either side has failed.
//!
//! This module keeps the policy only: the slices and how they grow, the
//! cursors, when to wait for syslog and when to save the checkpoint, and
//! what the health says. The pages come from a [`PageSource`] (on demand:
//! nothing is fetched before syslog took the last page; a stop walks away
//! from a slow answer); each page runs through the shared record loop with
//! the agent's [`SendOnceGate`]; the resend after a broken connection is
//! [`Resender`]'s; when a failure is logged is [`Outage`]'s; the health
//! file is written by [`health_writer`].

use super::config::{AgentConfig, StreamConfig};
use super::gate::SendOnceGate;
use super::health::{HealthReport, StreamHealth};
use super::health_writer;
use super::logfile::AgentLog;
use super::metrics::MetricsServer;
use super::outage::Outage;
use super::rejects_file::{self, REJECTS_FILE};
use super::resend::Resender;
use super::state::{AgentState, StateStore, StreamCursor};
use crate::api::{ApiClient, ApiError, Endpoint, OneRequest, PageInfo, TimeKey, TimeWindow, WindowQuery};
use crate::cef::KindChoice;
use crate::pages::{Page, PageEvent, PageSource, SourceError};
use crate::records::{PageError, RecordConverter};
use crate::rejects::RejectLog;
use crate::send::SyslogSender;
use crate::stop::{Stop, is_stop};
use crate::time::{format_duration_ms, format_ms};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The two streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKind {
    Activities,
    Alerts,
}

impl StreamKind {
    fn endpoint(self) -> Endpoint {
        match self {
            StreamKind::Activities => Endpoint::Activities,
            StreamKind::Alerts => Endpoint::Alerts,
        }
    }

    /// Activities by when they were stored (late arrivals), alerts by date.
    fn key(self) -> TimeKey {
        match self {
            StreamKind::Activities => TimeKey::Created,
            StreamKind::Alerts => TimeKey::Date,
        }
    }

    fn name(self) -> &'static str {
        self.endpoint().name()
    }

    /// Each endpoint holds one kind: no guessing from the keys.
    fn cef_kind(self) -> KindChoice {
        match self {
            StreamKind::Activities => KindChoice::Activities,
            StreamKind::Alerts => KindChoice::Alerts,
        }
    }
}

/// Why the agent could not start (or had to stop).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A setting is wrong in a way only the service could tell (a refused
    /// token, a wrong portal URL): exit with a usage error.
    #[error("{0}")]
    Setting(String),
    #[error("{0}")]
    State(#[from] super::state::StateError),
    #[error("starting the syslog sender: {0}")]
    Send(#[from] crate::send::SendError),
    #[error("{0}")]
    Io(#[from] io::Error),
    /// `once` on a first start while the API server's clock and the local
    /// one disagree: the start of the window cannot be chosen safely.
    #[error("{0}")]
    ClockSkew(String),
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentExit {
    /// SIGTERM/SIGINT: stopped cleanly.
    Stopped,
    /// `once`: caught up, everything written and saved.
    CaughtUp,
    /// Stopped (either way) with this many messages not written to syslog
    /// (it was down): they are not in the checkpoint, so the next start
    /// fetches them again, but this run did not deliver them.
    Unsent(u64),
}

/// Something that interrupts the work on a slice.
enum Interrupt {
    Stop,
    Api(ApiError),
    Paging(String),
}

/// The running agent.
pub struct Agent {
    config: AgentConfig,
    stop: Stop,
    log: Arc<AgentLog>,
    source: PageSource,
    sender: Option<SyslogSender>,
    converter: RecordConverter,
    rejects: RejectLog,
    store: StateStore,
    state: AgentState,
    health: Arc<Mutex<HealthReport>>,
    resend: Resender,
    api_outage: Outage,
    syslog_outage: Outage,
    checkpoint_outage: Outage,
    rejects_file_outage: Outage,
    /// Current slice length per stream (activities, alerts), adapted to
    /// how many records a slice holds.
    slices: [i64; 2],
    /// The server's clock is beyond the tolerance (for logging once).
    clock_skewed: std::sync::atomic::AtomicBool,
    /// The log said the server's clock is unknown (no readable `Date`).
    date_unknown_told: bool,
    /// Syslog connections made and errors seen at the last look.
    syslog_seen: (u64, u64),
    /// Per stream: records handed to syslog but not yet known written, and
    /// the newest of their times (counted as sent once written).
    unwritten: [(u64, Option<i64>); 2],
}

/// How long one flush waits before the stop flag is looked at again.
const WAIT_STEP: Duration = Duration::from_millis(250);

/// On a stop, how long syslog still gets to take what was handed over
/// (first for the page in flight, then on shutdown).
const STOP_FLUSH_WAIT: Duration = Duration::from_secs(1);

/// Slices never get shorter or longer than these.
const MIN_SLICE_MS: i64 = 5 * 60_000;
const MAX_SLICE_MS: i64 = 24 * 3_600_000;

/// How far the API server's clock may be from the local one before the
/// agent stops following it past the local clock (and says "clock skew").
pub const CLOCK_TOLERANCE_MS: i64 = 5 * 60_000;

impl Agent {
    /// Reads the state and prepares the client; no network traffic yet.
    pub fn new(config: AgentConfig, stop: Stop, log: Arc<AgentLog>) -> Result<Self, AgentError> {
        // The sender gets no stop flag: a stop must not cut the page in
        // flight (its ids would not be saved, so it would be sent twice);
        // `wait_for_syslog` watches the flag between short waits instead.
        let store = StateStore::new(&config.state_dir);
        let state = store.load()?.unwrap_or_default();
        let api = config.api.as_ref().ok_or_else(|| AgentError::Setting("no stream reads the API".to_owned()))?;
        let mut client = ApiClient::new(api).map_err(|e| AgentError::Setting(e.to_string()))?;
        // Each failed attempt is logged when it happens, not only when the
        // client gives up (a TLS handshake with a plain-HTTP server fails
        // after the connect timeout, three times).
        let attempt_log = Arc::clone(&log);
        client.on_failed_attempt(move |failure| attempt_log.warn(&format!("API: {failure}")));
        // One page at a time, fetched only when asked for (syslog took the
        // last one); a stop walks away from a request still waiting.
        let source = PageSource::on_demand(client)?;
        let now = crate::time::now_ms();
        let health = HealthReport {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            started_ms: now,
            updated_ms: now,
            activities: StreamHealth { enabled: config.activities.is_some(), ..StreamHealth::default() },
            alerts: StreamHealth { enabled: config.alerts.is_some(), ..StreamHealth::default() },
            ..HealthReport::default()
        };
        let rejects = rejects_file::open(&config.state_dir, REJECTS_FILE, Arc::clone(&log))?;
        Ok(Self {
            rejects,
            resend: Resender::new(config.resend_window_bytes, &config.state_dir)
                .exact_delivery(config.send.destinations.iter().all(|d| d.transport.is_relp())),
            converter: RecordConverter::new(&config.cef),
            config,
            stop,
            log,
            source,
            sender: None,
            store,
            state,
            health: Arc::new(Mutex::new(health)),
            api_outage: Outage::default(),
            syslog_outage: Outage::default(),
            checkpoint_outage: Outage::default(),
            rejects_file_outage: Outage::default(),
            slices: [0; 2],
            clock_skewed: Default::default(),
            date_unknown_told: false,
            syslog_seen: (0, 0),
            unwritten: [(0, None); 2],
        })
    }

    /// The shared health report (for the metrics endpoint).
    pub fn health(&self) -> Arc<Mutex<HealthReport>> {
        Arc::clone(&self.health)
    }

    /// Runs until stopped (or, with `once`, until caught up).
    pub fn run(mut self) -> Result<AgentExit, AgentError> {
        let writer = health_writer::start(
            self.health(),
            self.stop.clone(),
            self.config.state_dir.clone(),
            Arc::clone(&self.log),
        )?;
        if let Some(addr) = self.config.metrics {
            let server = MetricsServer::start(addr, self.health())?;
            self.log.info(&format!("metrics on http://{}/metrics", server.local_addr));
        }
        let outcome = self.run_inner();
        // Last word: stopped, with the final counters.
        self.with_health(|h| h.stopped = true);
        self.stop.request();
        let _ = writer.join();
        let mut report = self.health.lock().unwrap_or_else(|p| p.into_inner()).clone();
        report.updated_ms = crate::time::now_ms();
        if let Err(err) = report.save(&self.config.state_dir) {
            self.log.error(&format!("cannot write the health file: {err}"));
        }
        outcome
    }

    fn run_inner(&mut self) -> Result<AgentExit, AgentError> {
        if !self.probe()? {
            // Stopped before the API answered: nothing was read or sent.
            return Ok(AgentExit::Stopped);
        }
        // Only now, with the credentials accepted, does syslog traffic start.
        self.sender = Some(SyslogSender::start(&self.config.send)?);
        self.send_saved_window();
        if !self.wait_for_agreeing_clocks()? {
            return self.shut_down(AgentExit::Stopped);
        }
        self.init_cursors();
        let mut api_backoff = Duration::from_secs(5);
        loop {
            if self.stopping() {
                return self.shut_down(AgentExit::Stopped);
            }
            let mut behind = false;
            let mut api_failed = false;
            for kind in [StreamKind::Alerts, StreamKind::Activities] {
                if self.stream_config(kind).is_none() {
                    continue;
                }
                match self.read_slice(kind) {
                    Ok(caught_up) => behind |= !caught_up,
                    Err(Interrupt::Stop) => return self.shut_down(AgentExit::Stopped),
                    Err(Interrupt::Api(err)) => {
                        api_failed = true;
                        self.api_failed(&err.to_string());
                        break;
                    }
                    Err(Interrupt::Paging(err)) => {
                        api_failed = true;
                        self.api_failed(&format!("{}: {err}", kind.name()));
                        break;
                    }
                }
            }
            self.check_reconnect();
            if api_failed {
                self.sleep(api_backoff);
                api_backoff = (api_backoff * 2).min(Duration::from_secs(300));
                continue;
            }
            api_backoff = Duration::from_secs(5);
            if !behind {
                if self.config.once {
                    return self.shut_down(AgentExit::CaughtUp);
                }
                self.sleep(self.config.poll_interval);
            }
        }
    }

    fn stream_config(&self, kind: StreamKind) -> Option<&StreamConfig> {
        match kind {
            StreamKind::Activities => self.config.activities.as_ref(),
            StreamKind::Alerts => self.config.alerts.as_ref(),
        }
    }

    fn cursor(&mut self, kind: StreamKind) -> &mut StreamCursor {
        match kind {
            StreamKind::Activities => &mut self.state.activities,
            StreamKind::Alerts => &mut self.state.alerts,
        }
    }

    fn stopping(&self) -> bool {
        self.stop.is_requested()
    }

    fn sender(&mut self) -> &mut SyslogSender {
        self.sender.as_mut().expect("the sender starts before the loop")
    }

    /// The time the agent reads up to: the API server's (from its `Date`
    /// header: records are stored by its clock), but never more than
    /// [`CLOCK_TOLERANCE_MS`] ahead of the local clock. A server whose
    /// `Date` says tomorrow would otherwise move the checkpoint into the
    /// future, and nothing would be sent until the world caught up.
    fn now(&self) -> i64 {
        let local = crate::time::now_ms();
        match self.source.server_now_ms() {
            Some(server) => {
                self.note_clock_skew(server - local);
                server.min(local + CLOCK_TOLERANCE_MS)
            }
            None => local,
        }
    }

    /// Logs (once per episode) a server clock more than the tolerance away
    /// from the local one; the skew is kept in the health report.
    fn note_clock_skew(&self, skew: i64) {
        let skewed = skew.abs() > CLOCK_TOLERANCE_MS;
        let was = self.clock_skewed.swap(skewed, std::sync::atomic::Ordering::Relaxed);
        if skewed && !was {
            self.log.warn(&format!(
                "clock skew: the API server's Date is {} {} the local clock (more than the {} tolerated); the agent \
                 reads no further than the local clock + {} until they agree",
                format_duration_ms(skew.abs()),
                if skew > 0 { "ahead of" } else { "behind" },
                format_duration_ms(CLOCK_TOLERANCE_MS),
                format_duration_ms(CLOCK_TOLERANCE_MS),
            ));
        } else if was && !skewed {
            self.log.info("clock skew: the API server's clock and the local one agree again");
        }
        self.with_health(|h| h.clock_skew_ms = skewed.then_some(skew));
    }

    fn with_health(&self, change: impl FnOnce(&mut HealthReport)) {
        change(&mut self.health.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn stream_health(report: &mut HealthReport, kind: StreamKind) -> &mut StreamHealth {
        match kind {
            StreamKind::Activities => &mut report.activities,
            StreamKind::Alerts => &mut report.alerts,
        }
    }

    /// Sleeps, waking early when stopped.
    fn sleep(&self, duration: Duration) {
        self.stop.wait_timeout(duration);
    }

    /// One small request before anything else: checks the credentials and
    /// the portal URL, and learns the server's clock. Returns `false` when
    /// stopped before the API answered.
    fn probe(&mut self) -> Result<bool, AgentError> {
        let mut attempt = 0u32;
        let endpoint = if self.config.alerts.is_some() { Endpoint::Alerts } else { Endpoint::Activities };
        loop {
            self.source.walk(vec![Box::new(OneRequest::new(endpoint, b"{\"filters\":{},\"limit\":1}"))]);
            let Some(event) = self.source.next_page(Some(&self.stop)) else {
                return Ok(false);
            };
            self.record_api_counters();
            let result = match event {
                PageEvent::Page(page) => {
                    // Only the answer counts, not what it holds: the walk ends.
                    self.source.page_read(None);
                    self.source.recycle(page);
                    Ok(())
                }
                PageEvent::Failed(SourceError::Api(err)) => Err(err),
                // The fetch thread is gone (it cannot page one request).
                PageEvent::Failed(err) => return Err(AgentError::Io(io::Error::other(err.to_string()))),
                PageEvent::Done => return Err(AgentError::Io(io::Error::other("the first request was not sent"))),
            };
            match result {
                Ok(()) => {
                    self.api_succeeded();
                    match self.source.server_now_ms().map(|server| server - crate::time::now_ms()) {
                        Some(skew) if skew.abs() > 60_000 => {
                            self.log.warn(&format!(
                                "the local clock is {} {} the API server's{}",
                                format_duration_ms(skew.abs()),
                                if skew > 0 { "behind" } else { "ahead of" },
                                // Beyond the tolerance `note_clock_skew` says what is done.
                                if skew.abs() <= CLOCK_TOLERANCE_MS {
                                    "; the agent reads by the server's clock"
                                } else {
                                    ""
                                }
                            ));
                        }
                        Some(_) => {}
                        None if !self.date_unknown_told => {
                            self.date_unknown_told = true;
                            self.log.warn(
                                "the API's answers carry no readable Date header: the agent reads by the local clock \
                                 (records the server stores later with earlier times would be missed if the local \
                                 clock runs ahead of the server's)",
                            );
                        }
                        None => {}
                    }
                    return Ok(true);
                }
                Err(err @ ApiError::Unauthorized { .. }) => {
                    return Err(AgentError::Setting(format!(
                        "auth.token (--token) or the Entra ID application in [auth]: {err}"
                    )));
                }
                Err(err @ (ApiError::NotFound { .. } | ApiError::BadRequest { .. })) => {
                    return Err(AgentError::Setting(format!("portal_url (--portal-url): {err}")));
                }
                Err(err @ ApiError::Setup { .. }) => {
                    return Err(AgentError::Setting(format!("ca_file / proxy / portal_url: {err}")));
                }
                Err(err) => {
                    // The service is down or unreachable: that is an outage,
                    // not a configuration error. Keep trying.
                    self.api_failed(&err.to_string());
                    attempt += 1;
                    self.sleep(Duration::from_secs(5 << attempt.min(6)));
                    if self.stopping() {
                        return Ok(false);
                    }
                }
            }
        }
    }

    /// Where each stream starts: its saved cursor, or the window back from
    /// now on a first start or after a stop longer than the window.
    /// On a first start (a stream without a checkpoint), waits while the
    /// API server's clock is more than [`CLOCK_TOLERANCE_MS`] behind the
    /// local one before the start of the window is chosen.
    ///
    /// A server ahead is harmless here ([`Agent::now`] stops at the local
    /// clock + the tolerance, and the window is cut from that). A server
    /// behind cannot be told from a local clock ahead: a `Date` of 1970
    /// would start the window in 1969 and, once the `Date` is fixed, crawl
    /// half a century; trusting a local clock years ahead would save a
    /// checkpoint nothing reaches. Holding sends and saves nothing; the log
    /// and the status say "clock skew" and name both clocks. With `once` it
    /// is an error instead. Returns `false` when stopped while waiting.
    fn wait_for_agreeing_clocks(&mut self) -> Result<bool, AgentError> {
        let first_start = [StreamKind::Activities, StreamKind::Alerts]
            .into_iter()
            .any(|kind| self.stream_config(kind).is_some() && self.cursor(kind).position_ms.is_none());
        if !first_start {
            return Ok(true);
        }
        let mut told = false;
        loop {
            let local = crate::time::now_ms();
            let Some(server) = self.source.server_now_ms() else { return Ok(true) };
            let skew = server - local;
            self.note_clock_skew(skew);
            if skew >= -CLOCK_TOLERANCE_MS {
                if told {
                    self.log.info("first start: the clocks agree now; choosing the start of the window");
                }
                return Ok(true);
            }
            let message = format!(
                "first start: the API server's clock ({}) is {} behind the local clock ({}); the agent does not \
                 choose where its window of {} starts until they agree within {} (correct the clock that is wrong)",
                format_ms(server),
                format_duration_ms(skew.abs()),
                format_ms(local),
                format_duration_ms(self.config.window_ms),
                format_duration_ms(CLOCK_TOLERANCE_MS),
            );
            if self.config.once {
                return Err(AgentError::ClockSkew(message));
            }
            if !told {
                self.log.warn(&format!("{message}; nothing is read or saved meanwhile"));
                told = true;
            }
            self.sleep(self.config.poll_interval);
            if self.stopping() {
                return Ok(false);
            }
            // A fresh answer brings the server's clock up to date.
            if !self.probe()? {
                return Ok(false);
            }
        }
    }

    fn init_cursors(&mut self) {
        let now = self.now();
        let window_start = now - self.config.window_ms;
        for kind in [StreamKind::Activities, StreamKind::Alerts] {
            if self.stream_config(kind).is_none() {
                continue;
            }
            let saved = self.cursor(kind).position_ms;
            let start = match saved {
                None => {
                    self.log.info(&format!(
                        "{}: first start, reading the last {} (from {})",
                        kind.name(),
                        format_duration_ms(self.config.window_ms),
                        format_ms(window_start)
                    ));
                    window_start
                }
                Some(position) if position < window_start => {
                    // The first query reaches back by the overlap, so the
                    // records not sent end there; the command selects them
                    // by the same time as this stream's cursor.
                    let gap_end = window_start - self.config.overlap_ms;
                    let selection = match kind {
                        StreamKind::Activities => "--types activities --activity-time created",
                        StreamKind::Alerts => "--types alerts",
                    };
                    self.log.warn(&format!(
                        "{}: the checkpoint ({}) is older than the window of {}: restarting from {}; records between \
                         them are not sent (use `cefwire backfill {selection} --from {} --until {}` for them)",
                        kind.name(),
                        format_ms(position),
                        format_duration_ms(self.config.window_ms),
                        format_ms(gap_end),
                        format_ms(position),
                        format_ms(gap_end)
                    ));
                    self.cursor(kind).seen = Default::default();
                    window_start
                }
                Some(position) => {
                    self.log.info(&format!("{}: resuming from {}", kind.name(), format_ms(position)));
                    position
                }
            };
            self.cursor(kind).position_ms = Some(start);
            let position = Some(start);
            self.with_health(|h| Self::stream_health(h, kind).cursor_ms = position);
        }
    }

    /// Reads one slice of `kind`. Returns whether the stream is caught up.
    ///
    /// The slice grows while slices hold no more than a page (a quiet
    /// backlog is read in few requests) and shrinks when they hold many
    /// pages (so the checkpoint keeps moving and the remembered ids stay few).
    fn read_slice(&mut self, kind: StreamKind) -> Result<bool, Interrupt> {
        let cursor = self.cursor(kind).position_ms.expect("cursors are set at start");
        let now = self.now();
        let slot = kind as usize;
        if self.slices[slot] == 0 {
            self.slices[slot] = self.config.slice_ms;
        }
        let until = now.min(cursor + self.slices[slot]);
        if until <= cursor {
            return Ok(true);
        }
        let window = TimeWindow { from: cursor - self.config.overlap_ms, until };
        let extra = self.stream_config(kind).map(|s| s.extra_filters.clone()).unwrap_or_default();
        let query = WindowQuery::new(kind.endpoint(), kind.key(), window, &extra, self.config.scan_page_size);
        let result = self.read_pages(kind, &query);
        let pages = result?;
        self.slices[slot] = match pages {
            0 | 1 => (self.slices[slot] * 2).min(MAX_SLICE_MS),
            2..=3 => self.slices[slot],
            _ => (self.slices[slot] / 2).max(MIN_SLICE_MS),
        };
        // Every record of [from, until) was written: move the cursor.
        let overlap = self.config.overlap_ms;
        let stream = self.cursor(kind);
        stream.position_ms = Some(until);
        stream.seen.prune(until - overlap);
        self.with_health(|h| Self::stream_health(h, kind).cursor_ms = Some(until));
        self.save_state()?;
        let caught_up = until >= now;
        if !caught_up {
            self.log.info(&format!(
                "{}: read up to {} ({} behind)",
                kind.name(),
                format_ms(until),
                format_duration_ms(now - until)
            ));
        }
        Ok(caught_up)
    }

    /// Reads every page of a slice; returns how many there were.
    fn read_pages(&mut self, kind: StreamKind, query: &WindowQuery) -> Result<u32, Interrupt> {
        // Rejects are located as `STREAM@QUERY_START:PAGE: record N`.
        let label = format!("{}@{}", kind.name(), format_ms(query.window.from));
        self.source.walk(vec![query.pager()]);
        let mut pages = 0;
        loop {
            if self.stopping() {
                return Err(Interrupt::Stop);
            }
            self.note_syslog_break();
            // Do not fetch while syslog has not taken the last page.
            self.wait_for_syslog()?;
            let event = self.source.next_page(Some(&self.stop)).ok_or(Interrupt::Stop)?;
            self.record_api_counters();
            let mut page = match event {
                PageEvent::Page(page) => page,
                PageEvent::Done => return Ok(pages),
                PageEvent::Failed(SourceError::Api(err)) => return Err(Interrupt::Api(err)),
                PageEvent::Failed(err) => return Err(Interrupt::Paging(err.to_string())),
            };
            pages += 1;
            self.api_succeeded();
            let sent = self.send_page(kind, &label, &mut page);
            self.source.recycle(page);
            sent?;
            self.wait_for_syslog()?;
            self.check_reconnect();
            self.keep_page_rejects();
            self.save_state()?;
        }
    }

    /// Converts and hands over every record of the page not sent before,
    /// through the shared record loop with the agent's gate.
    fn send_page(&mut self, kind: StreamKind, label: &str, page: &mut Page) -> Result<PageInfo, Interrupt> {
        let Self { converter, source, sender, state, rejects, resend, health, unwritten, .. } = self;
        let sender = sender.as_mut().expect("the sender starts before the loop");
        let cursor = match kind {
            StreamKind::Activities => &mut state.activities,
            StreamKind::Alerts => &mut state.alerts,
        };
        converter.set_kind(kind.cef_kind());
        let before = converter.counts;
        let mut gate = SendOnceGate::new(&mut cursor.seen, resend.window(), kind.key());
        let converted = source.convert_page(page, label, converter, sender, rejects, &mut gate, |_| ());
        let newest_sent_ms = gate.newest_sent_ms;
        let counts = converter.counts.since(&before);
        let mut h = health.lock().unwrap_or_else(|p| p.into_inner());
        let s = Self::stream_health(&mut h, kind);
        s.fetched += counts.records;
        s.duplicates_skipped += counts.skipped;
        s.rejected += counts.rejected;
        // Sent once syslog has them (`wait_for_syslog`), not when handed over.
        let unwritten = &mut unwritten[kind as usize];
        unwritten.0 += counts.converted();
        unwritten.1 = unwritten.1.max(newest_sent_ms);
        converted.map_err(|err| match err {
            PageError::Sink(err) if is_stop(&err) => Interrupt::Stop,
            // The sender, or the rejects file.
            PageError::Sink(err) => Interrupt::Paging(format!("handing records on: {err}")),
            PageError::NotAPage => Interrupt::Paging("the API answered with something that is not a page".to_owned()),
            PageError::NotJson(err) => Interrupt::Paging(format!("the page is not JSON: {err}")),
        })
    }

    /// Writes out the rejects file before the checkpoint moves past the
    /// page (a failure is logged: the records were reported on stderr).
    fn keep_page_rejects(&mut self) {
        match self.rejects.flush() {
            Ok(()) => {
                self.rejects_file_outage.recovered();
            }
            Err(err) => {
                if self.rejects_file_outage.failed() {
                    self.log.error(&format!("{err}; rejected records are reported on stderr only"));
                }
            }
        }
    }

    /// Waits until syslog has every message handed over so far. While it
    /// cannot (the SIEM is down), keeps waiting: nothing is fetched and the
    /// messages stay queued; the health says how long it has been.
    ///
    /// A stop (SIGTERM) gives syslog [`STOP_FLUSH_WAIT`] more to take the
    /// page, so that its ids are saved; then the wait ends (what is not
    /// written is not checkpointed, and is fetched again on the next start).
    fn wait_for_syslog(&mut self) -> Result<(), Interrupt> {
        let mut waited = Duration::ZERO;
        let mut stop_seen: Option<Instant> = None;
        loop {
            let step = WAIT_STEP.min(self.config.syslog_wait);
            match self.sender().flush(step) {
                Ok(written) => {
                    self.resend_done(written);
                    if self.syslog_outage.recovered() {
                        self.log.info("syslog: writing again");
                    }
                    self.note_syslog_health(written);
                    self.count_written();
                    return Ok(());
                }
                Err(err) if is_stop(&err) => return Err(Interrupt::Stop),
                Err(err) if err.kind() == io::ErrorKind::TimedOut && waited + step < self.config.syslog_wait => {
                    waited += step;
                    self.note_syslog_break();
                    if self.stopping() && stop_seen.get_or_insert_with(Instant::now).elapsed() >= STOP_FLUSH_WAIT {
                        return Err(Interrupt::Stop);
                    }
                }
                Err(err) => {
                    waited = Duration::ZERO;
                    if self.stopping() {
                        return Err(Interrupt::Stop);
                    }
                    let detail = self.sender().report().last_error.unwrap_or_else(|| err.to_string());
                    let now = crate::time::now_ms();
                    self.with_health(|h| h.syslog.failure(now, &detail));
                    if self.syslog_outage.failed() {
                        self.log.warn(&format!(
                            "syslog: cannot write ({detail}); not fetching until it can, the cursor stays put"
                        ));
                    }
                }
            }
        }
    }

    /// Syslog's health after a flush that wrote `written` messages. Only a
    /// real success counts as one: messages written, or a connection made
    /// since the last look. With nothing to write, new connection errors
    /// and no new connection (a receiver that is down, a refused
    /// certificate) are a failure even though nothing waited for syslog.
    fn note_syslog_health(&mut self, written: u64) {
        let report = self.sender().report();
        let (connects_seen, errors_seen) = std::mem::replace(&mut self.syslog_seen, (report.connects, report.errors));
        let now = crate::time::now_ms();
        if written > 0 || report.connects > connects_seen {
            self.with_health(|h| h.syslog.success(now));
        } else if report.errors > errors_seen {
            let detail = report.last_error.unwrap_or_else(|| "cannot connect".to_owned());
            self.with_health(|h| h.syslog.failure(now, &detail));
        }
    }

    /// Everything handed over is written: its records count as sent.
    fn count_written(&mut self) {
        let unwritten = std::mem::take(&mut self.unwritten);
        self.with_health(|h| {
            for kind in [StreamKind::Activities, StreamKind::Alerts] {
                let (records, newest) = unwritten[kind as usize];
                let s = Self::stream_health(h, kind);
                s.sent += records;
                s.newest_sent_ms = s.newest_sent_ms.max(newest);
            }
        });
    }

    /// After a reconnection, sends the last messages again.
    fn check_reconnect(&mut self) {
        if let Some(sender) = self.sender.as_mut() {
            self.resend.after_reconnect(sender, &self.log);
        }
    }

    /// After a broken connection, saves the last messages (`resend.bin`).
    fn note_syslog_break(&mut self) {
        if let Some(sender) = self.sender.as_ref() {
            self.resend.note_break(sender, &self.log);
        }
    }

    /// `written` messages are on the wire: a finished resend is forgotten.
    fn resend_done(&mut self, written: u64) {
        if let Some(sender) = self.sender.as_ref() {
            self.resend.written(sender, written, &self.log);
        }
    }

    /// On start: the last messages a previous run saved and did not send.
    fn send_saved_window(&mut self) {
        if let Some(sender) = self.sender.as_mut() {
            self.resend.send_saved(sender, &self.log);
        }
    }

    /// Saves the checkpoint; while it cannot (full or read-only disk), keeps
    /// retrying and fetches nothing.
    fn save_state(&mut self) -> Result<(), Interrupt> {
        loop {
            self.state.saved_at_ms = crate::time::now_ms();
            match self.store.save(&self.state) {
                Ok(()) => {
                    if self.checkpoint_outage.recovered() {
                        self.log.info("checkpoint: saved again");
                    }
                    let now = crate::time::now_ms();
                    self.with_health(|h| h.checkpoint.success(now));
                    return Ok(());
                }
                Err(err) => {
                    let now = crate::time::now_ms();
                    let message = err.to_string();
                    self.with_health(|h| h.checkpoint.failure(now, &message));
                    if self.checkpoint_outage.failed() {
                        self.log.error(&format!("{message}; pausing until the checkpoint can be saved"));
                    }
                    if self.stopping() {
                        return Err(Interrupt::Stop);
                    }
                    self.sleep(Duration::from_secs(2));
                }
            }
        }
    }

    fn api_succeeded(&mut self) {
        if self.api_outage.recovered() {
            self.log.info("API: answering again");
        }
        let now = crate::time::now_ms();
        self.with_health(|h| h.api.success(now));
    }

    fn api_failed(&mut self, error: &str) {
        let now = crate::time::now_ms();
        self.with_health(|h| h.api.failure(now, error));
        if self.api_outage.failed() {
            self.log.warn(&format!("API: {error}; retrying with backoff"));
        }
    }

    fn record_api_counters(&self) {
        let stats = self.source.stats();
        self.with_health(|h| {
            h.api_counters.requests = stats.requests;
            h.api_counters.throttled_429 = stats.throttled;
            h.api_counters.retries = stats.throttled + stats.server_errors + stats.network_errors;
        });
    }

    /// Writes out what is queued (briefly), then stops the sender. The
    /// checkpoint on disk is already the last one that is safe.
    fn shut_down(&mut self, exit: AgentExit) -> Result<AgentExit, AgentError> {
        self.keep_page_rejects();
        self.note_syslog_break();
        let flushed = self.sender.as_mut().map(|sender| sender.flush(STOP_FLUSH_WAIT));
        if let Some(Ok(written)) = flushed {
            self.resend_done(written);
        }
        if let Some(mut sender) = self.sender.take() {
            if !matches!(flushed, Some(Ok(_))) {
                // Syslog is down: waiting longer would only delay the exit.
                // What is unwritten is not in the checkpoint (the next start
                // fetches it again) or is in the saved resend window.
                sender.set_drain_timeout(Duration::from_millis(200));
            }
            let report = sender.finish()?;
            self.log.info(&format!("stopping: {}", report.summary()));
            if report.messages_unsent > 0 {
                self.log.warn(&format!(
                    "{} messages were not written to syslog; they are not in the checkpoint, the next start fetches \
                     them again",
                    report.messages_unsent
                ));
                return Ok(AgentExit::Unsent(report.messages_unsent));
            }
        }
        Ok(exit)
    }
}
