//! The agent's Event Hubs loop: read the streaming records of the
//! partitions this instance holds in the consumer group, convert them on
//! the shared record loop, send them to syslog, and commit each
//! partition's offset only after syslog took the records it covers.
//!
//! One thread polls the consumer and converts (no async runtime); the
//! syslog writer runs on its own thread as everywhere else. The loop
//! never blocks on syslog: while the sender's pool of batches runs low
//! (syslog is slow or down) every partition is paused and the loop keeps
//! polling, so the group membership stays alive; it resumes once syslog
//! takes records again. Commits go per partition at most once per
//! `commit_interval` (Event Hubs throttles them to 4/s per partition).
//! When the group takes partitions away, the loop first lets syslog take
//! what is in flight (briefly) and commits what was written; what is
//! still not written then stays uncommitted and is read again by the next
//! owner — a duplicate, never a loss.
//!
//! Each message body runs through the shared record loop with the agent's
//! own [`SendOnceGate`] (a `ReportId` sent before is skipped; each message
//! is kept for a resend); a broken syslog connection is made good by the
//! agent's [`Resender`] (its own file, `resend-eventhubs.bin`). Every few
//! seconds each held partition's lag goes to a [`StallWatch`]: partitions
//! that fetch nothing while messages wait are reported stalled (health,
//! log). This module
//! owns the polling loop, pause/resume, commits and the health it reports;
//! the Kafka client and the offset bookkeeping are `crate::eventhubs`.

use super::gate::SendOnceGate;
use super::health::{EventHubsHealth, EventHubsStall, HealthReport, PartitionHealth, SyslogWatch};
use super::logfile::AgentLog;
use super::outage::Outage;
use super::rejects_file::{self, EVENTHUBS_REJECTS_FILE};
use super::resend::Resender;
use super::state::SeenIds;
use crate::api::TimeKey;
use crate::cef::CefOptions;
use crate::eventhubs::{
    Broker, BrokerError, ClientLog, EventHubsSettings, GroupConsumer, OffsetTracker, PartitionHandler, StallChange,
    StallWatch,
};
use crate::json::INPUT_PADDING;
use crate::records::{Origin, RecordConverter};
use crate::rejects::RejectLog;
use crate::send::{SendConfig, SendReport, SyslogSender};
use crate::stop::Stop;
use rdkafka::Message;
use rdkafka::message::BorrowedMessage;
use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Everything the loop needs.
#[derive(Clone, Debug)]
pub struct EventHubsRunConfig {
    pub settings: EventHubsSettings,
    pub send: SendConfig,
    pub cef: CefOptions,
    /// Bytes of recently sent messages sent again after a reconnection.
    pub resend_window_bytes: usize,
    /// Where the resend window is saved when the syslog connection breaks
    /// (its own file: the API streams may share the state directory).
    pub resend_file: PathBuf,
    /// Where rejected records are kept ([`EVENTHUBS_REJECTS_FILE`]).
    pub state_dir: PathBuf,
}

/// The resend window's file of this source inside the state directory.
pub const RESEND_FILE: &str = "resend-eventhubs.bin";

/// Why the loop could not run.
#[derive(Debug, thiserror::Error)]
pub enum EventHubsRunError {
    #[error("{0}")]
    Consumer(#[from] crate::eventhubs::ConsumerError),
    #[error("starting the syslog sender: {0}")]
    Send(#[from] crate::send::SendError),
    #[error("handing records to syslog: {0}")]
    Sink(io::Error),
    #[error("starting the {0}: {1}")]
    Start(&'static str, io::Error),
    #[error("eventhubs OAUTHBEARER: {0}")]
    Token(String),
}

/// Pause every partition when fewer empty batches than this are left: a
/// message of up to 1 MB of records then still fits without waiting.
const PAUSE_BELOW_FREE_BATCHES: usize = 8;
/// A message is only converted with at least this many empty batches; else
/// it is read again later (a message fetched before the pause took hold).
const MIN_FREE_BATCHES_TO_CONVERT: usize = 5;
/// How long one poll waits for a message.
const POLL_WAIT: Duration = Duration::from_millis(100);
/// A partly filled batch is handed to the writer at least this often, so a
/// trickle of records is written (and committed) promptly.
const PUSH_EVERY: Duration = Duration::from_millis(200);
/// How often the health report is refreshed.
const HEALTH_EVERY: Duration = Duration::from_secs(1);
/// On a rebalance or a stop, how long syslog gets to take what is in flight.
const FINISH_WAIT: Duration = Duration::from_secs(5);
/// The stall watch looks at most this often (a fifth of `stall_after`,
/// at least every second).
const STALL_CHECK_AT_MOST: Duration = Duration::from_secs(30);
/// How long asking the broker for a partition's watermarks may take.
const WATERMARK_WAIT: Duration = Duration::from_secs(2);

/// The state the consumer's rebalance callbacks and the loop share.
struct Delivery {
    sender: Option<SyslogSender>,
    converter: RecordConverter,
    rejects: RejectLog,
    tracker: OffsetTracker,
    /// The message body, copied and padded for the parser.
    body: Vec<u8>,
    /// `<event hub>/<partition>@<offset>`, for reject messages.
    origin: String,
    commit_interval: Duration,
    assigned: Vec<i32>,
    paused: bool,
    last_push: Instant,
    last_health: Instant,
    syslog_watch: SyslogWatch,
    health: Arc<Mutex<HealthReport>>,
    log: Arc<AgentLog>,
    stats: EventHubsHealth,
    partition_errors: std::collections::BTreeMap<i32, String>,
    /// Ids sent recently (the de-duplication window, by count: nothing
    /// here prunes by time).
    seen: SeenIds,
    /// The last messages sent: saved when the syslog connection breaks,
    /// sent again when it is back (or on the next start).
    resender: Resender,
    last_reconnect_check: Instant,
    /// When a failing commit is logged.
    commit_outage: Outage,
    /// Partitions fetching nothing while records wait.
    stall_watch: StallWatch,
    stall_check_every: Duration,
    last_stall_check: Instant,
    /// High watermarks asked of the broker for idle partitions (the cached
    /// ones only move with fetches).
    asked_high: std::collections::BTreeMap<i32, i64>,
    /// The test-only no-fetch fault holds every partition paused.
    no_fetch_fault: bool,
}

impl Delivery {
    fn sender(&mut self) -> &mut SyslogSender {
        self.sender.as_mut().expect("the sender lives until the loop ends")
    }

    /// Converts one message's records and hands them to syslog.
    fn take_message(&mut self, broker: &Broker<'_, Self>, message: &BorrowedMessage<'_>) -> io::Result<()> {
        let (partition, offset) = (message.partition(), message.offset());
        self.stall_watch.fetched(partition, Instant::now());
        if self.sender().free_batches() < MIN_FREE_BATCHES_TO_CONVERT {
            if let Err(err) = broker.rewind(partition, offset) {
                self.log.warn(&format!("eventhubs: partition {partition}: cannot read offset {offset} again: {err}"));
            }
            return Ok(());
        }
        let payload = message.payload().unwrap_or_default();
        let before = self.converter.counts;
        if !payload.is_empty() {
            self.body.clear();
            self.body.extend_from_slice(payload);
            self.body.resize(payload.len() + INPUT_PADDING, 0);
            self.origin.clear();
            let _ = write!(self.origin, "{}/{partition}@{offset}", self.stats.event_hub);
            let Self { sender, converter, rejects, body, origin, seen, resender, .. } = self;
            let sender = sender.as_mut().expect("the sender lives until the loop ends");
            let at = Origin { file: origin, line: 1, multi_line: true };
            // The agent's gate: a `ReportId` sent before is skipped (read
            // again after a rebalance), each message kept for a resend.
            let mut gate = SendOnceGate::new(seen, resender.window(), TimeKey::Date);
            converter.convert_document_gated(at, body, payload.len(), sender, rejects, &mut gate)?;
        }
        let counts = self.converter.counts;
        let records = counts.records - before.records;
        let accepted = self.sender().messages_accepted();
        self.tracker.consumed(partition, offset, records, accepted);
        self.stats.messages += 1;
        self.stats.records += records;
        self.stats.rejected += counts.rejected - before.rejected;
        self.stats.duplicates_skipped += counts.skipped - before.skipped;
        Ok(())
    }

    /// Between polls: push a partial batch, note what was written, commit
    /// what is due, pause or resume, refresh the health.
    fn tick(&mut self, broker: &Broker<'_, Self>, quiet: bool) -> io::Result<()> {
        let now = Instant::now();
        let free = self.sender().free_batches();
        if (quiet || now.duration_since(self.last_push) >= PUSH_EVERY) && free > 0 {
            self.sender().send_pending()?;
            self.last_push = now;
        }
        let written = self.sender().messages_written();
        if now.duration_since(self.last_reconnect_check) >= POLL_WAIT {
            self.last_reconnect_check = now;
            let Self { sender, resender, log, .. } = self;
            let sender = sender.as_mut().expect("the sender lives until the loop ends");
            resender.note_break(sender, log);
            resender.after_reconnect(sender, log);
            resender.written(sender, written, log);
        }
        self.tracker.written(written);
        let due = self.tracker.due(now, self.commit_interval, false);
        self.commit(broker, &due, false);
        self.pause_or_resume(broker);
        self.no_fetch_fault(broker);
        if now.duration_since(self.last_stall_check) >= self.stall_check_every {
            self.last_stall_check = now;
            self.check_stall(broker, now);
        }
        if now.duration_since(self.last_health) >= HEALTH_EVERY {
            self.last_health = now;
            self.update_health(broker);
        }
        Ok(())
    }

    fn commit(&mut self, broker: &Broker<'_, Self>, offsets: &[(i32, i64)], sync: bool) {
        if offsets.is_empty() {
            return;
        }
        // The rejected records of what is committed are in their file first.
        if let Err(err) = self.rejects.flush() {
            self.log.error(&format!("{err}; rejected records are in the log only"));
        }
        let result = broker.commit(offsets, sync);
        if sync || result.is_err() {
            self.commit_finished(offsets, result);
        }
    }

    fn commit_finished(&mut self, offsets: &[(i32, i64)], result: Result<(), BrokerError>) {
        for &(partition, offset) in offsets {
            self.tracker.commit_done(partition, offset, result.is_ok());
            match &result {
                Ok(()) => {
                    self.stats.commits += 1;
                    self.partition_errors.remove(&partition);
                }
                Err(err) => {
                    self.partition_errors.insert(partition, format!("commit of offset {offset}: {err}"));
                }
            }
        }
        let now = crate::time::now_ms();
        match &result {
            Ok(()) => {
                self.stats.broker.success(now);
                if self.commit_outage.recovered() {
                    self.log.info("eventhubs: commits succeed again");
                }
            }
            Err(err) => {
                self.stats.broker.failure(now, &format!("commit: {err}"));
                if self.commit_outage.failed() {
                    self.log.warn(&format!("eventhubs: commit failed ({err}); retried with the next one"));
                }
            }
        }
    }

    fn pause_or_resume(&mut self, broker: &Broker<'_, Self>) {
        let free = self.sender().free_batches();
        let all_written = self.sender().messages_written() >= self.sender().messages_accepted();
        if !self.paused && free < PAUSE_BELOW_FREE_BATCHES {
            self.paused = true;
            let detail = self.sender().report().last_error.unwrap_or_else(|| "slow".to_owned());
            self.log.warn(&format!(
                "eventhubs: syslog is not taking records ({detail}); pausing consumption, the group membership \
                 stays and nothing is committed until syslog has the records"
            ));
            if let Err(err) = broker.pause(&self.assigned) {
                self.log.warn(&format!("eventhubs: pause: {err}"));
            }
        } else if self.paused && (all_written || free >= PAUSE_BELOW_FREE_BATCHES * 4) {
            self.paused = false;
            self.log.info("eventhubs: syslog takes records again; resuming consumption");
            if !self.no_fetch_fault
                && let Err(err) = broker.resume(&self.assigned)
            {
                self.log.warn(&format!("eventhubs: resume: {err}"));
            }
        }
    }

    /// The test-only fault of a consumer that fetches nothing
    /// ([`crate::fault_hooks::injected_eventhubs_no_fetch`]; never on in a
    /// release build): every partition held stays paused while it lasts.
    fn no_fetch_fault(&mut self, broker: &Broker<'_, Self>) {
        let on = crate::fault_hooks::injected_eventhubs_no_fetch();
        if on == self.no_fetch_fault {
            return;
        }
        self.no_fetch_fault = on;
        let result = if on {
            self.log.warn(&format!("eventhubs: test fault: fetching nothing from partitions {:?}", self.assigned));
            broker.pause(&self.assigned)
        } else {
            self.log.warn("eventhubs: test fault lifted: fetching again");
            if self.paused { Ok(()) } else { broker.resume(&self.assigned) }
        };
        if let Err(err) = result {
            self.log.warn(&format!("eventhubs: test fault: {err}"));
        }
    }

    /// Each held partition's lag (its end minus the position read), to the
    /// stall watch; logs a stall's beginning and end once each. The end of
    /// a partition that fetched nothing for a while is asked of the broker
    /// (the client's cached one only moves with fetches); after one failed
    /// question the rest use the cached one (a dead broker costs one wait).
    fn check_stall(&mut self, broker: &Broker<'_, Self>, now: Instant) {
        let mut lags = Vec::with_capacity(self.assigned.len());
        let mut ask = true;
        for (partition, progress) in self.tracker.partitions() {
            let idle = self.stall_watch.idle_for(partition, now).unwrap_or_default();
            let mut position = progress.position();
            let mut high = broker.high_watermark(partition);
            if ask && idle >= self.stall_check_every {
                match broker.watermarks(partition, WATERMARK_WAIT) {
                    Ok((low, asked)) => {
                        // No position yet: reading starts at the oldest kept.
                        position = position.or(Some(low));
                        high = high.max(Some(asked));
                        self.asked_high.insert(partition, asked);
                    }
                    Err(_) => ask = false,
                }
            }
            lags.push((partition, high.zip(position).map(|(h, p)| h - p)));
        }
        self.asked_high.retain(|p, _| self.assigned.contains(p));
        let change = self.stall_watch.observe(now, self.paused, &lags);
        let stall = self.stall_watch.stall(now);
        match change {
            Some(StallChange::Began(stall)) => {
                self.stats.stalls += 1;
                self.log.warn(&format!(
                    "eventhubs: partitions {:?} stalled: {} messages waiting and nothing fetched for {}; the \
                     broker or the group coordinator is not delivering (nothing is lost: offsets stay at what \
                     syslog took)",
                    stall.partitions,
                    stall.lag,
                    crate::time::format_duration_ms(stall.idle.as_millis() as i64)
                ));
            }
            Some(StallChange::Ended { partitions, lasted }) => {
                let why = if self.paused {
                    "consumption is paused for syslog"
                } else if partitions.iter().all(|p| !self.assigned.contains(p)) {
                    "taken away"
                } else {
                    "fetching again"
                };
                self.log.info(&format!(
                    "eventhubs: partitions {partitions:?} no longer stalled ({why}) after {}",
                    crate::time::format_duration_ms(lasted.as_millis() as i64)
                ));
            }
            None => {}
        }
        let now_ms = crate::time::now_ms();
        self.stats.stalled = stall.map(|s| EventHubsStall {
            partitions: s.partitions,
            lag: s.lag,
            idle_since_ms: now_ms - s.idle.as_millis() as i64,
        });
    }

    /// Lets syslog take what was handed over (for at most `wait`, and only
    /// if that cannot block), then commits everything written.
    fn finish_in_flight(&mut self, broker: &Broker<'_, Self>, wait: Duration) {
        let sender = self.sender();
        if sender.free_batches() > 0 {
            let _ = sender.flush(wait);
        }
        let written = self.sender().messages_written();
        self.tracker.written(written);
        let due = self.tracker.due(Instant::now(), Duration::ZERO, true);
        self.commit(broker, &due, true);
    }

    fn update_health(&mut self, broker: &Broker<'_, Self>) {
        let report = self.sender().report();
        self.stats.paused = self.paused;
        let counts = self.converter.counts;
        self.stats.skipped_other = counts.records - counts.converted() - counts.rejected;
        self.stats.sent = self.sent_records();
        let mut partitions = Vec::new();
        for (partition, progress) in self.tracker.partitions() {
            let high_watermark = broker.high_watermark(partition).max(self.asked_high.get(&partition).copied());
            let lag = high_watermark.zip(progress.committed).map(|(h, c)| (h - c).max(0));
            partitions.push(PartitionHealth {
                partition,
                committed: progress.committed,
                high_watermark,
                lag,
                messages: progress.messages,
                records: progress.records,
                in_flight: progress.in_flight() as u64,
                last_error: self.partition_errors.get(&partition).cloned(),
            });
        }
        self.stats.partitions = partitions;
        let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        self.syslog_watch.update(&report, &mut health.syslog, crate::time::now_ms());
        health.activities.sent = self.stats.sent;
        health.activities.fetched = self.stats.records;
        health.activities.rejected = self.stats.rejected;
        health.activities.duplicates_skipped = self.stats.duplicates_skipped;
        health.eventhubs = Some(self.stats.clone());
    }

    /// Records written: converted records whose messages the writer wrote
    /// (each converted record is one message).
    fn sent_records(&mut self) -> u64 {
        self.sender().messages_written()
    }
}

impl PartitionHandler for Delivery {
    fn revoking(&mut self, broker: &Broker<'_, Self>, partitions: &[i32]) {
        self.finish_in_flight(broker, FINISH_WAIT);
        for &partition in partitions {
            if let Some(progress) = self.tracker.revoke(partition)
                && progress.in_flight() > 0
            {
                self.log.info(&format!(
                    "eventhubs: partition {partition} taken away with {} messages not yet written to syslog; they \
                     stay uncommitted (the next owner reads them again)",
                    progress.in_flight()
                ));
            }
        }
        self.assigned.retain(|p| !partitions.contains(p));
        for &partition in partitions {
            self.stall_watch.revoked(partition);
        }
        self.stats.rebalances += 1;
        self.log.info(&format!("eventhubs: partitions {partitions:?} revoked; holding {:?}", self.assigned));
    }

    fn assigned(&mut self, broker: &Broker<'_, Self>, partitions: &[i32]) {
        let committed = match broker.committed(partitions, Duration::from_secs(10)) {
            Ok(list) => list,
            Err(err) => {
                self.log.warn(&format!("eventhubs: reading the committed offsets: {err}"));
                partitions.iter().map(|&p| (p, None)).collect()
            }
        };
        let now = Instant::now();
        for (partition, offset) in committed {
            self.tracker.assign(partition, offset);
            self.stall_watch.assigned(partition, now);
        }
        self.assigned.extend_from_slice(partitions);
        self.assigned.sort_unstable();
        self.assigned.dedup();
        self.stats.rebalances += 1;
        if (self.paused || self.no_fetch_fault)
            && let Err(err) = broker.pause(partitions)
        {
            self.log.warn(&format!("eventhubs: pause: {err}"));
        }
        self.log.info(&format!("eventhubs: partitions {partitions:?} assigned; holding {:?}", self.assigned));
        self.update_health(broker);
    }

    fn committed(&mut self, offsets: &[(i32, i64)], result: Result<(), BrokerError>) {
        self.commit_finished(offsets, result);
    }
}

/// The client's own log lines go to the agent's log; its errors mark the
/// broker link as failing in the health.
struct AgentClientLog {
    log: Arc<AgentLog>,
    health: Arc<Mutex<HealthReport>>,
}

impl ClientLog for AgentClientLog {
    fn warn(&self, message: &str) {
        self.log.warn(message);
        let now = crate::time::now_ms();
        let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = health.eventhubs.as_mut() {
            e.broker.failure(now, message);
        }
    }

    fn error(&self, message: &str) {
        self.log.error(message);
    }
}

/// Runs the loop until `stop` is set; returns the sender's final report.
pub fn run(
    config: &EventHubsRunConfig,
    stop: &Stop,
    log: Arc<AgentLog>,
    health: Arc<Mutex<HealthReport>>,
) -> Result<SendReport, EventHubsRunError> {
    let settings = &config.settings;
    let stats = EventHubsHealth {
        event_hub: settings.event_hub.clone(),
        consumer_group: settings.consumer_group.clone(),
        ..EventHubsHealth::default()
    };
    health.lock().unwrap_or_else(|p| p.into_inner()).eventhubs = Some(stats.clone());
    let mut sender = SyslogSender::start(&config.send)?;
    let mut resender = Resender::saved_at(config.resend_window_bytes, config.resend_file.clone())
        .exact_delivery(config.send.destinations.iter().all(|d| d.transport.is_relp()));
    resender.send_saved(&mut sender, &log);
    let delivery = Delivery {
        sender: Some(sender),
        converter: RecordConverter::new(&config.cef),
        rejects: rejects_file::open(&config.state_dir, EVENTHUBS_REJECTS_FILE, Arc::clone(&log))
            .map_err(|e| EventHubsRunError::Start("rejects file", e))?,
        tracker: OffsetTracker::new(),
        body: Vec::new(),
        origin: String::new(),
        commit_interval: settings.commit_interval,
        assigned: Vec::new(),
        paused: false,
        last_push: Instant::now(),
        last_health: Instant::now(),
        syslog_watch: SyslogWatch::default(),
        health: Arc::clone(&health),
        log: Arc::clone(&log),
        stats,
        partition_errors: Default::default(),
        seen: SeenIds::default(),
        resender,
        last_reconnect_check: Instant::now(),
        commit_outage: Outage::default(),
        stall_watch: StallWatch::new(settings.stall_after),
        stall_check_every: (settings.stall_after / 5).clamp(Duration::from_secs(1), STALL_CHECK_AT_MOST),
        last_stall_check: Instant::now(),
        asked_high: Default::default(),
        no_fetch_fault: false,
    };
    let client_log = Arc::new(AgentClientLog { log: Arc::clone(&log), health: Arc::clone(&health) });
    let tokens = crate::eventhubs::token::token_source(settings).map_err(EventHubsRunError::Token)?;
    let consumer = GroupConsumer::start(settings, delivery, client_log, tokens)?;
    log.info(&format!(
        "eventhubs: reading {} as consumer group {} from {}",
        settings.event_hub, settings.consumer_group, settings.bootstrap_servers
    ));
    let outcome = poll_until_stopped(&consumer, stop);
    consumer.with_handler(|delivery, broker| delivery.finish_in_flight(broker, FINISH_WAIT));
    // Leaving the group runs the revoke, which commits what was written.
    consumer.close();
    let sender = consumer.handler().sender.take();
    let mut last = consumer.handler().stats.clone();
    drop(consumer);
    last.paused = false;
    health.lock().unwrap_or_else(|p| p.into_inner()).eventhubs = Some(last);
    outcome?;
    let mut sender = sender.expect("the sender lives until the loop ends");
    sender.set_drain_timeout(Duration::from_millis(500));
    sender.finish().map_err(EventHubsRunError::Sink)
}

fn poll_until_stopped(consumer: &GroupConsumer<Delivery>, stop: &Stop) -> Result<(), EventHubsRunError> {
    while !stop.is_requested() {
        let polled = consumer.poll(POLL_WAIT);
        consumer
            .with_handler(|delivery, broker| {
                let quiet = polled.is_none();
                match polled {
                    Some(Ok(message)) => {
                        delivery.take_message(broker, &message)?;
                        delivery.stats.broker.success(crate::time::now_ms());
                    }
                    Some(Err(err)) => {
                        let now = crate::time::now_ms();
                        delivery.stats.broker.failure(now, &err.to_string());
                    }
                    None => {}
                }
                delivery.tick(broker, quiet)
            })
            .map_err(EventHubsRunError::Sink)?;
    }
    Ok(())
}

impl EventHubsRunConfig {
    /// The Event Hubs part of the agent's configuration, if it has one.
    pub fn from_agent(config: &super::config::AgentConfig) -> Option<Self> {
        let settings = config.eventhubs.clone()?;
        Some(Self {
            settings,
            send: config.send.clone(),
            cef: config.cef.clone(),
            resend_window_bytes: config.resend_window_bytes,
            resend_file: config.state_dir.join(RESEND_FILE),
            state_dir: config.state_dir.clone(),
        })
    }
}

/// The agent when Event Hubs is its only source: the health file and the
/// metrics endpoint around the loop, as [`super::run::Agent`] has them.
pub fn run_alone(
    config: &super::config::AgentConfig,
    stop: Stop,
    log: Arc<AgentLog>,
) -> Result<SendReport, EventHubsRunError> {
    let run_config = EventHubsRunConfig::from_agent(config).expect("called with an Event Hubs source");
    super::health_writer::around_loop(config, &log, true, EventHubsRunError::Start, |health| {
        run(&run_config, &stop, Arc::clone(&log), health)
    })
}
