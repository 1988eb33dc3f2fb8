//! The agent's Graph `alerts_v2` stream (`[alerts] source = "graph"`):
//! read the alerts created since the cursor, send each to syslog once, and
//! save the cursor only after syslog has the alerts it covers.
//!
//! The cursor is a `createdDateTime` (ms): "every alert created before it
//! was written". Each poll asks for `[cursor − overlap, now)`, walked by
//! [`AlertPager`] (ascending, the time bound moved forward instead of
//! `$skip`); alerts sent before are dropped by `id` through the agent's
//! [`SendOnceGate`] (its ids carry their `createdDateTime`, and are
//! persisted with the cursor, bounded by count and pruned below
//! `cursor − overlap`). After every page: hand it to syslog, wait until it
//! is written, then save the ids and the pager's bound (so a SIGKILL sends
//! at most that page again); after the window: the cursor moves to its end.
//! A first start reads the agent's window (two days) back from now.
//!
//! It runs on its own thread with its own syslog sender, checkpoint
//! (`state-graph.json`), resend window (`resend-graph.bin`) and rejects
//! file, beside the API streams or alone, and reports into the shared
//! health (`alerts`, `graph`). The client (token, 150/min throttle,
//! retries) is [`GraphClient`]'s; this module owns the loop and its policy.

use super::gate::SendOnceGate;
use super::health::{GraphHealth, HealthReport, StreamHealth};
use super::logfile::AgentLog;
use super::outage::Outage;
use super::rejects_file;
use super::resend::Resender;
use super::run::CLOCK_TOLERANCE_MS;
use super::state::{AgentState, StateError, StateStore};
use crate::api::TimeKey;
use crate::cef::{CefOptions, KindChoice};
use crate::graph::{AlertPager, GraphClient, GraphConfig, GraphError, GraphPageInfo};
use crate::records::{Origin, PageError, RecordConverter};
use crate::rejects::RejectLog;
use crate::send::{SendConfig, SendReport, SyslogSender};
use crate::stop::{Stop, is_stop};
use crate::time::{TICKS_PER_MS, format_duration_ms, format_ms};
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The checkpoint of this stream inside the state directory.
pub const STATE_FILE: &str = "state-graph.json";
/// Its resend window's file.
pub const RESEND_FILE: &str = "resend-graph.bin";
/// Its rejected alerts.
pub const REJECTS_FILE: &str = "rejects-graph.ndjson";

/// Everything the loop needs.
#[derive(Clone, Debug)]
pub struct GraphRunConfig {
    pub graph: GraphConfig,
    pub send: SendConfig,
    pub cef: CefOptions,
    pub state_dir: PathBuf,
    pub poll_interval: Duration,
    /// How far back a first start reads (ms).
    pub window_ms: i64,
    /// How much before the cursor each query starts (ms).
    pub overlap_ms: i64,
    pub resend_window_bytes: usize,
    /// Run until caught up once, then stop.
    pub once: bool,
}

impl GraphRunConfig {
    /// The Graph part of the agent's configuration, if it has one.
    pub fn from_agent(config: &super::config::AgentConfig) -> Option<Self> {
        Some(Self {
            graph: config.graph.clone()?,
            send: config.send.clone(),
            cef: config.cef.clone(),
            state_dir: config.state_dir.clone(),
            poll_interval: config.poll_interval,
            window_ms: config.window_ms,
            overlap_ms: config.overlap_ms,
            resend_window_bytes: config.resend_window_bytes,
            once: config.once,
        })
    }
}

/// Why the loop could not run.
#[derive(Debug, thiserror::Error)]
pub enum GraphRunError {
    #[error("starting the syslog sender: {0}")]
    Send(#[from] crate::send::SendError),
    #[error("{0}")]
    State(#[from] StateError),
    #[error("graph: {0}")]
    Client(GraphError),
    #[error("starting the {0}: {1}")]
    Start(&'static str, io::Error),
    #[error("handing alerts to syslog: {0}")]
    Sink(io::Error),
}

/// What interrupts a window.
enum Interrupt {
    Stop,
    Graph(GraphError),
    Page(String),
}

/// How long one flush waits before the stop flag is looked at again.
const WAIT_STEP: Duration = Duration::from_millis(250);
/// On a stop, how long syslog still gets to take the page in flight.
const STOP_FLUSH_WAIT: Duration = Duration::from_secs(1);
/// Back-off after a failed window: doubles up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

struct GraphStream {
    config: GraphRunConfig,
    stop: Stop,
    log: Arc<AgentLog>,
    health: Arc<Mutex<HealthReport>>,
    client: GraphClient,
    sender: SyslogSender,
    converter: RecordConverter,
    rejects: RejectLog,
    resend: Resender,
    store: StateStore,
    /// Only `alerts` is used: this stream's cursor and ids.
    state: AgentState,
    page: Vec<u8>,
    graph_outage: Outage,
    syslog_outage: Outage,
    checkpoint_outage: Outage,
    /// Alerts handed to syslog and not yet known written, and the newest
    /// of their `createdDateTime`s.
    unwritten: (u64, Option<i64>),
    /// Graph's clock was behind the cursor by more than the tolerance at
    /// the last window (logged once per episode).
    graph_clock_behind: bool,
}

/// Runs the stream until `stop` (or, with `once`, until caught up);
/// returns the sender's final report.
pub fn run(
    config: &GraphRunConfig,
    stop: &Stop,
    log: Arc<AgentLog>,
    health: Arc<Mutex<HealthReport>>,
) -> Result<SendReport, GraphRunError> {
    let store = StateStore::named(&config.state_dir, STATE_FILE);
    let state = store.load()?.unwrap_or_default();
    let mut client = GraphClient::new(&config.graph).map_err(GraphRunError::Client)?;
    client.stop_on(stop.clone());
    let mut sender = SyslogSender::start(&config.send)?;
    let mut resend = Resender::saved_at(config.resend_window_bytes, config.state_dir.join(RESEND_FILE))
        .exact_delivery(config.send.destinations.iter().all(|d| d.transport.is_relp()));
    resend.send_saved(&mut sender, &log);
    let rejects = rejects_file::open(&config.state_dir, REJECTS_FILE, Arc::clone(&log))
        .map_err(|e| GraphRunError::Start("rejects file", e))?;
    let mut converter = RecordConverter::new(&config.cef);
    converter.set_kind(KindChoice::GraphAlerts);
    {
        let mut h = health.lock().unwrap_or_else(|p| p.into_inner());
        h.alerts = StreamHealth { enabled: true, cursor_ms: state.alerts.position_ms, ..StreamHealth::default() };
        h.graph = Some(GraphHealth { url: config.graph.base_url.clone(), ..GraphHealth::default() });
    }
    let mut stream = GraphStream {
        config: config.clone(),
        stop: stop.clone(),
        log,
        health,
        client,
        sender,
        converter,
        rejects,
        resend,
        store,
        state,
        page: Vec::new(),
        graph_outage: Outage::default(),
        syslog_outage: Outage::default(),
        checkpoint_outage: Outage::default(),
        unwritten: (0, None),
        graph_clock_behind: false,
    };
    stream.start_cursor();
    stream.poll_until_stopped();
    stream.finish()
}

impl GraphStream {
    fn with_health(&self, change: impl FnOnce(&mut HealthReport)) {
        change(&mut self.health.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn graph_health(h: &mut HealthReport) -> &mut GraphHealth {
        h.graph.get_or_insert_with(GraphHealth::default)
    }

    /// The saved cursor, or the window back from now (a first start, or a
    /// stop longer than the window: the gap is named with its backfill).
    fn start_cursor(&mut self) {
        let now = crate::time::now_ms();
        let window_start = now - self.config.window_ms;
        let start = match self.state.alerts.position_ms {
            None => {
                self.log.info(&format!(
                    "graph alerts: first start, reading the last {} (from {})",
                    format_duration_ms(self.config.window_ms),
                    format_ms(window_start)
                ));
                window_start
            }
            Some(position) if position < window_start => {
                let gap_end = window_start - self.config.overlap_ms;
                self.log.warn(&format!(
                    "graph alerts: the checkpoint ({}) is older than the window of {}: restarting from {}; alerts \
                     created between them are not sent (use `cefwire backfill --source graph --from {} --until {}` \
                     for them)",
                    format_ms(position),
                    format_duration_ms(self.config.window_ms),
                    format_ms(window_start),
                    format_ms(position),
                    format_ms(gap_end)
                ));
                self.state.alerts.seen = Default::default();
                window_start
            }
            Some(position) => {
                self.log.info(&format!("graph alerts: resuming from {}", format_ms(position)));
                position
            }
        };
        self.state.alerts.position_ms = Some(start);
        self.with_health(|h| h.alerts.cursor_ms = Some(start));
    }

    fn poll_until_stopped(&mut self) {
        let mut backoff = Duration::from_secs(5);
        while !self.stop.is_requested() {
            match self.read_window() {
                Ok(()) => {
                    backoff = Duration::from_secs(5);
                    if self.config.once {
                        return;
                    }
                    self.stop.wait_timeout(self.config.poll_interval);
                }
                Err(Interrupt::Stop) => return,
                Err(Interrupt::Graph(err)) => {
                    self.graph_failed(&err.to_string());
                    self.stop.wait_timeout(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(Interrupt::Page(err)) => {
                    self.graph_failed(&err);
                    self.stop.wait_timeout(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Reads `[cursor − overlap, now)` page by page; moves the cursor to
    /// `now` once every page is written (see [`Self::window_end`] for a
    /// Graph clock behind the cursor).
    fn read_window(&mut self) -> Result<(), Interrupt> {
        let cursor = self.state.alerts.position_ms.expect("the cursor is set at start");
        let until = self.window_end(cursor);
        let from = cursor - self.config.overlap_ms;
        let mut pager = AlertPager::new(from, until);
        let mut number = 0u64;
        let label = format!("graph alerts_v2@{}", format_ms(from));
        while let Some(url) = pager.next_url(&self.client) {
            if self.stop.is_requested() {
                return Err(Interrupt::Stop);
            }
            // Nothing is fetched while syslog has not taken the last page.
            self.wait_for_syslog()?;
            let fetched = self.client.fetch(&url, &mut self.page);
            self.record_counters();
            let len = match fetched {
                Err(GraphError::Stopped) => return Err(Interrupt::Stop),
                fetched => fetched.map_err(Interrupt::Graph)?,
            };
            self.graph_succeeded();
            number += 1;
            let info = self.send_page(&label, number, len)?;
            pager.page_done(&info, self.config.graph.top).map_err(Interrupt::Graph)?;
            self.wait_for_syslog()?;
            self.keep_page_rejects();
            // Every alert created before the pager's bound was written
            // (pages come oldest first); those at the bound come again and
            // are dropped by id.
            let bound = pager.position().div_euclid(TICKS_PER_MS);
            if bound > cursor {
                self.advance(bound);
            }
            self.save_state()?;
        }
        // Alerts are created on Graph's clock: the window ends no later
        // than Graph's now (a local clock ahead would otherwise move the
        // cursor past alerts not created yet, and they would never be read).
        // An open window moves the cursor only as far as its pages did.
        if let Some(until) = until {
            self.advance(self.client.server_now_ms().map_or(until, |server| until.min(server)));
        }
        self.save_state()?;
        Ok(())
    }

    /// Where the window from `cursor` ends: [`Self::now`], or open (`None`)
    /// while Graph's `Date` lies behind the cursor — a server clock set
    /// back, or a `Date` of 1970. Such a clock cannot end a window (it
    /// would end before it starts, and no answer would ever come to put it
    /// right); an open window still asks every poll, reads what was
    /// created since the cursor, moves the cursor only to the alerts read,
    /// and each answer brings Graph's clock up to date.
    fn window_end(&mut self, cursor: i64) -> Option<i64> {
        let until = self.now();
        let behind = until <= cursor;
        // Said (log, health) only beyond the tolerance: `Date` has whole
        // seconds, and a page can move the cursor a moment past it.
        let said = until + CLOCK_TOLERANCE_MS < cursor;
        self.with_health(|h| Self::graph_health(h).clock_behind = said.then_some((until, cursor)));
        if said != self.graph_clock_behind {
            self.graph_clock_behind = said;
            if said {
                self.log.warn(&format!(
                    "graph alerts: Graph's clock ({}) is behind the checkpoint ({}); reading on from the checkpoint \
                     with no upper time bound, the checkpoint moving only with the alerts read, until it is not",
                    self.client.server_now_ms().map_or_else(|| "unknown".to_owned(), format_ms),
                    format_ms(cursor)
                ));
            } else {
                self.log.info("graph alerts: Graph's clock is past the checkpoint again; windows end at it");
            }
        }
        (!behind).then_some(until)
    }

    /// Where a window may end: Graph's clock when it is known (a jump of
    /// the local clock moves nothing), but no further than the local clock
    /// plus the tolerance (a server whose `Date` says tomorrow would move
    /// the cursor into the future).
    fn now(&self) -> i64 {
        let local = crate::time::now_ms();
        match self.client.server_now_ms() {
            Some(server) => server.min(local + CLOCK_TOLERANCE_MS),
            None => local,
        }
    }

    /// The cursor moves to `position`; ids too old to come again are forgotten.
    /// Never backwards: a window ending before the cursor (Graph's `Date`
    /// set back) would otherwise move it there, and the next window would
    /// send every alert since.
    fn advance(&mut self, position: i64) {
        let alerts = &mut self.state.alerts;
        let position = alerts.position_ms.map_or(position, |cursor| cursor.max(position));
        alerts.position_ms = Some(position);
        alerts.seen.prune(position - self.config.overlap_ms);
        self.with_health(|h| h.alerts.cursor_ms = Some(position));
    }

    /// Converts and hands over every alert of the page not sent before.
    fn send_page(&mut self, label: &str, number: u64, len: usize) -> Result<GraphPageInfo, Interrupt> {
        let Self { converter, sender, state, rejects, resend, page, health, unwritten, .. } = self;
        let before = converter.counts;
        let mut gate = SendOnceGate::new(&mut state.alerts.seen, resend.window(), TimeKey::Date);
        let origin = Origin { file: label, line: number, multi_line: false };
        let converted = converter.convert_page(origin, page, len, sender, rejects, &mut gate, GraphPageInfo::from_page);
        let newest = gate.newest_sent_ms;
        let counts = converter.counts.since(&before);
        {
            let mut h = health.lock().unwrap_or_else(|p| p.into_inner());
            h.alerts.fetched += counts.records;
            h.alerts.duplicates_skipped += counts.skipped;
            h.alerts.rejected += counts.rejected;
        }
        // Sent once syslog has them (`wait_for_syslog`), not when handed over.
        unwritten.0 += counts.converted();
        unwritten.1 = unwritten.1.max(newest);
        converted.map_err(|err| match err {
            PageError::Sink(err) if is_stop(&err) => Interrupt::Stop,
            PageError::Sink(err) => Interrupt::Page(format!("handing alerts on: {err}")),
            PageError::NotAPage => Interrupt::Page("Graph answered with something that is not a page".to_owned()),
            PageError::NotJson(err) => Interrupt::Page(format!("the Graph page is not JSON: {err}")),
        })
    }

    /// Waits until syslog has everything handed over; while it cannot,
    /// keeps waiting (nothing is fetched, the cursor stays put).
    fn wait_for_syslog(&mut self) -> Result<(), Interrupt> {
        let mut stop_waited = Duration::ZERO;
        loop {
            match self.sender.flush(WAIT_STEP) {
                Ok(written) => {
                    self.resend.written(&self.sender, written, &self.log);
                    if self.syslog_outage.recovered() {
                        self.log.info("graph alerts: syslog is writing again");
                    }
                    let (records, newest) = std::mem::take(&mut self.unwritten);
                    let now = crate::time::now_ms();
                    self.with_health(|h| {
                        h.alerts.sent += records;
                        h.alerts.newest_sent_ms = h.alerts.newest_sent_ms.max(newest);
                        if written > 0 {
                            h.syslog.success(now);
                        }
                    });
                    self.resend.after_reconnect(&mut self.sender, &self.log);
                    return Ok(());
                }
                Err(err) if is_stop(&err) => return Err(Interrupt::Stop),
                Err(err) => {
                    self.resend.note_break(&self.sender, &self.log);
                    if self.stop.is_requested() {
                        stop_waited += WAIT_STEP;
                        if stop_waited >= STOP_FLUSH_WAIT {
                            return Err(Interrupt::Stop);
                        }
                    }
                    if err.kind() != io::ErrorKind::TimedOut {
                        let detail = self.sender.report().last_error.unwrap_or_else(|| err.to_string());
                        let now = crate::time::now_ms();
                        self.with_health(|h| h.syslog.failure(now, &detail));
                        if self.syslog_outage.failed() {
                            self.log.warn(&format!(
                                "graph alerts: syslog cannot write ({detail}); not fetching until it can, the \
                                 cursor stays put"
                            ));
                        }
                        self.resend.after_reconnect(&mut self.sender, &self.log);
                    }
                }
            }
        }
    }

    /// The page's rejected alerts are in their file before the checkpoint
    /// moves past them.
    fn keep_page_rejects(&mut self) {
        if let Err(err) = self.rejects.flush() {
            self.log.error(&format!("{err}; rejected Graph alerts are reported in the log only"));
        }
    }

    /// Saves the checkpoint; while it cannot (full disk), keeps retrying.
    fn save_state(&mut self) -> Result<(), Interrupt> {
        loop {
            self.state.saved_at_ms = crate::time::now_ms();
            let now = self.state.saved_at_ms;
            match self.store.save(&self.state) {
                Ok(()) => {
                    if self.checkpoint_outage.recovered() {
                        self.log.info("graph alerts: checkpoint saved again");
                    }
                    self.with_health(|h| h.checkpoint.success(now));
                    return Ok(());
                }
                Err(err) => {
                    let message = err.to_string();
                    self.with_health(|h| h.checkpoint.failure(now, &message));
                    if self.checkpoint_outage.failed() {
                        self.log.error(&format!("graph alerts: {message}; pausing until it can be saved"));
                    }
                    if self.stop.wait_timeout(Duration::from_secs(2)) {
                        return Err(Interrupt::Stop);
                    }
                }
            }
        }
    }

    fn record_counters(&self) {
        let stats = self.client.stats();
        self.with_health(|h| {
            let g = Self::graph_health(h);
            g.requests = stats.requests;
            g.pages = stats.pages;
            g.throttled_429 = stats.throttled;
            g.server_errors = stats.server_errors;
            g.network_errors = stats.network_errors;
            g.tokens_fetched = stats.tokens_fetched;
        });
    }

    fn graph_succeeded(&mut self) {
        if self.graph_outage.recovered() {
            self.log.info("graph alerts: Graph is answering again");
        }
        let now = crate::time::now_ms();
        self.with_health(|h| Self::graph_health(h).api.success(now));
    }

    fn graph_failed(&mut self, error: &str) {
        let now = crate::time::now_ms();
        self.with_health(|h| Self::graph_health(h).api.failure(now, error));
        if self.graph_outage.failed() {
            self.log.warn(&format!("graph alerts: {error}; retrying with backoff"));
        }
    }

    /// Writes out what is queued (briefly) and stops the sender; the saved
    /// checkpoint already covers only what syslog has.
    fn finish(mut self) -> Result<SendReport, GraphRunError> {
        self.keep_page_rejects();
        self.resend.note_break(&self.sender, &self.log);
        if let Ok(written) = self.sender.flush(STOP_FLUSH_WAIT) {
            self.resend.written(&self.sender, written, &self.log);
        } else {
            self.sender.set_drain_timeout(Duration::from_millis(200));
        }
        self.sender.finish().map_err(GraphRunError::Sink)
    }
}

/// The agent when Graph is its only API-like source: the health file and
/// the metrics endpoint around the loop, as [`super::run::Agent`] has them.
/// `beside` may start other sources' threads on the same health report.
pub fn run_alone(
    config: &super::config::AgentConfig,
    stop: Stop,
    log: Arc<AgentLog>,
    beside: impl FnOnce(Arc<Mutex<HealthReport>>) -> Option<std::thread::JoinHandle<()>>,
) -> Result<SendReport, GraphRunError> {
    let run_config = GraphRunConfig::from_agent(config).expect("called with a Graph source");
    super::health_writer::around_loop(config, &log, false, GraphRunError::Start, |health| {
        let other = beside(Arc::clone(&health));
        let outcome = run(&run_config, &stop, Arc::clone(&log), health);
        stop.request();
        if let Some(thread) = other {
            let _ = thread.join();
        }
        outcome
    })
}
