//! The agent's Storage loop: read the Defender XDR streaming archive's new
//! complete lines (the blobs of the look-back, listed again every poll
//! while nothing is new, at once while there is), convert them on the
//! shared record loop, send them to syslog, and checkpoint each blob's
//! offset — with the `ReportId`s sent — only once syslog has the records
//! they cover.
//!
//! A checkpoint is taken between chunks: the reader's positions, the id
//! window and the sender's accepted-message count at that moment, encoded
//! at once. It is written when the sender's written count reaches that
//! count — reading goes on meanwhile, so syslog never waits for the disk
//! nor the disk for syslog. A crash re-reads at most what came after the
//! last checkpoint written; the records of it that were written already
//! come again (duplicates, bounded by a checkpoint interval's worth),
//! never fewer. While syslog does not take records the loop stops reading
//! (the sender's pool is full) and keeps its health up to date.
//!
//! Each record goes through the agent's [`SendOnceGate`]: a `ReportId`
//! sent before (the archive is at-least-once, and a record may be appended
//! twice) is skipped; the window is bounded by count
//! ([`super::state::MAX_REMEMBERED_IDS`]) and by the look-back, and saved
//! with the offsets. A broken syslog connection is made good by the
//! agent's [`Resender`] (its own file, `resend-storage.bin`). This module
//! owns the loop, the checkpoint timing and the health it reports; the
//! reader is `crate::azure::archive`, the line conversion
//! `crate::storage::lines`, the file `storage_state`.

use super::gate::SendOnceGate;
use super::health::{HealthReport, StorageHealth, SyslogWatch};
use super::logfile::AgentLog;
use super::outage::Outage;
use super::rejects_file;
use super::resend::Resender;
use super::state::SeenIds;
use super::storage_state;
use crate::api::TimeKey;
use crate::azure::archive::{ArchiveConfig, ArchiveReader, Chunk, HOUR_MS};
use crate::azure::blob::StorageError;
use crate::cef::CefOptions;
use crate::records::RecordConverter;
use crate::rejects::RejectLog;
use crate::send::{SendConfig, SendReport, SyslogSender};
use crate::stop::Stop;
use crate::storage::lines::ChunkLines;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Everything the loop needs.
#[derive(Clone, Debug)]
pub struct StorageRunConfig {
    pub archive: ArchiveConfig,
    pub send: SendConfig,
    pub cef: CefOptions,
    /// How long to wait before listing again when nothing was new.
    pub poll_interval: Duration,
    /// Bytes of recently sent messages sent again after a reconnection.
    pub resend_window_bytes: usize,
    pub state_dir: PathBuf,
    /// Catch up once, then stop.
    pub once: bool,
}

/// The resend window's file of this source inside the state directory.
pub const RESEND_FILE: &str = "resend-storage.bin";
/// Rejected storage records, kept in the state directory.
pub const REJECTS_FILE: &str = "rejects-storage.ndjson";

/// A checkpoint is taken at most this often.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Convert a chunk only with at least this many empty batches (a chunk of
/// 4 MiB of lines fills about 16 of 256 KiB).
const MIN_FREE_BATCHES: usize = 24;
/// A partly filled batch is handed to the writer at least this often.
const PUSH_EVERY: Duration = Duration::from_millis(200);
const HEALTH_EVERY: Duration = Duration::from_secs(1);
/// On a stop, how long syslog gets to take what is in flight.
const FINISH_WAIT: Duration = Duration::from_secs(5);
/// Ids are kept this much longer than the look-back (records of an hour's
/// blob carry times of that hour; a little slack for clocks).
const ID_SLACK_MS: i64 = 2 * HOUR_MS;

/// Why the loop could not run.
#[derive(Debug, thiserror::Error)]
pub enum StorageRunError {
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("starting the syslog sender: {0}")]
    Send(#[from] crate::send::SendError),
    #[error("handing records to syslog: {0}")]
    Sink(io::Error),
    #[error("starting the {0}: {1}")]
    Start(&'static str, io::Error),
    #[error("{0}")]
    State(#[from] super::state::StateError),
}

/// A checkpoint taken, waiting for syslog to have what it covers.
struct PendingCheckpoint {
    /// Written when the sender's written count reaches this.
    accepted: u64,
    bytes: Vec<u8>,
    newest_sent_ms: Option<i64>,
}

struct Loop {
    config: StorageRunConfig,
    reader: ArchiveReader,
    sender: SyslogSender,
    converter: RecordConverter,
    lines: ChunkLines,
    rejects: RejectLog,
    seen: SeenIds,
    resender: Resender,
    buffer: Vec<u8>,
    pending: Option<PendingCheckpoint>,
    last_checkpoint: Instant,
    last_push: Instant,
    last_health: Instant,
    newest_sent_ms: Option<i64>,
    health: Arc<Mutex<HealthReport>>,
    log: Arc<AgentLog>,
    stats: StorageHealth,
    storage_outage: Outage,
    checkpoint_outage: Outage,
    syslog_watch: SyslogWatch,
    /// Bytes listed as new at the last listing, and how many were read since.
    listed_new: u64,
    read_since_listing: u64,
}

impl Loop {
    /// One pass: list, then read and convert every new complete line.
    /// Returns whether anything was read.
    fn pass(&mut self, stop: &Stop) -> Result<bool, StorageRunError> {
        let now = crate::time::now_ms();
        let refresh = match self.reader.refresh(now - self.config.archive.look_back_ms, i64::MAX) {
            Ok(refresh) => refresh,
            Err(err) => return self.storage_failed(err).map(|_| false),
        };
        self.storage_ok();
        for restart in &refresh.restarted {
            let (blob, read, size) = (&restart.blob, restart.read, restart.size);
            let why = if restart.created_again {
                format!("was deleted and created again since {read} bytes of it were read (it holds {size} now)")
            } else {
                format!("holds {size} bytes, fewer than the {read} read from it (truncated or created again)")
            };
            self.log.warn(&format!(
                "storage: {blob} {why}: reading it again from its start; records sent before are dropped by ReportId"
            ));
        }
        self.listed_new = refresh.new_bytes;
        self.read_since_listing = 0;
        let mut read_any = false;
        while !stop.is_requested() {
            self.wait_for_room(stop)?;
            if stop.is_requested() {
                break;
            }
            let chunk = match self.reader.next_chunk(&mut self.buffer) {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(err) => return self.storage_failed(err).map(|_| read_any),
            };
            read_any = true;
            self.convert(&chunk).map_err(StorageRunError::Sink)?;
            self.tick(false).map_err(StorageRunError::Sink)?;
        }
        Ok(read_any)
    }

    fn convert(&mut self, chunk: &Chunk) -> io::Result<()> {
        let Self { converter, lines, rejects, seen, resender, sender, buffer, .. } = self;
        match chunk {
            Chunk::Lines(position) => {
                self.read_since_listing += position.end - position.start;
                let mut gate = SendOnceGate::new(seen, resender.window(), TimeKey::Date);
                lines.convert(position, buffer, converter, sender, rejects, &mut gate)?;
                self.newest_sent_ms = self.newest_sent_ms.max(gate.newest_sent_ms);
            }
            Chunk::TooLong(position) => {
                self.read_since_listing += position.end - position.start;
                self.log.warn(&format!(
                    "storage: {}@{}: a line of {} bytes, over the limit of {}, skipped",
                    position.blob,
                    position.start,
                    position.end - position.start,
                    self.config.archive.max_line_bytes
                ));
                lines.too_long(position, self.config.archive.max_line_bytes, converter, rejects)?;
            }
            Chunk::Gone(blob) => {
                self.log.warn(&format!(
                    "storage: {blob} was deleted after it was listed: skipped (what was read of it before stays \
                     sent); reading the other blobs on"
                ));
            }
        }
        // Between chunks: every line before the reader's positions was
        // handed to the sender.
        if self.pending.is_none() && self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            self.take_checkpoint();
        }
        Ok(())
    }

    fn take_checkpoint(&mut self) {
        let now = crate::time::now_ms();
        self.seen.prune(now - self.config.archive.look_back_ms - ID_SLACK_MS);
        let bytes = storage_state::encode(
            &self.config.archive.container,
            self.reader.positions(),
            &self.seen,
            self.newest_sent_ms,
            now,
        );
        self.pending = Some(PendingCheckpoint {
            accepted: self.sender.messages_accepted(),
            bytes,
            newest_sent_ms: self.newest_sent_ms,
        });
        self.last_checkpoint = Instant::now();
    }

    /// Waits (ticking) until the sender has room for a chunk.
    fn wait_for_room(&mut self, stop: &Stop) -> Result<(), StorageRunError> {
        while self.sender.free_batches() < MIN_FREE_BATCHES && !stop.is_requested() {
            self.tick(true).map_err(StorageRunError::Sink)?;
            stop.wait_timeout(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Push a partial batch, note what was written, save a checkpoint that
    /// syslog has caught up with, refresh the health.
    fn tick(&mut self, quiet: bool) -> io::Result<()> {
        let now = Instant::now();
        if (quiet || now.duration_since(self.last_push) >= PUSH_EVERY) && self.sender.free_batches() > 0 {
            self.sender.send_pending()?;
            self.last_push = now;
        }
        let written = self.sender.messages_written();
        self.resender.note_break(&self.sender, &self.log);
        self.resender.after_reconnect(&mut self.sender, &self.log);
        self.resender.written(&self.sender, written, &self.log);
        if self.pending.as_ref().is_some_and(|p| written >= p.accepted) {
            self.save_checkpoint();
        }
        if now.duration_since(self.last_health) >= HEALTH_EVERY {
            self.last_health = now;
            self.update_health();
        }
        Ok(())
    }

    fn save_checkpoint(&mut self) {
        let Some(pending) = self.pending.take() else { return };
        // The rejected records of what is checkpointed are in their file first.
        if let Err(err) = self.rejects.flush() {
            self.log.error(&format!("{err}; rejected records are in the log only"));
        }
        let now = crate::time::now_ms();
        match storage_state::save(&self.config.state_dir, &pending.bytes) {
            Ok(()) => {
                self.stats.checkpoints += 1;
                let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
                health.checkpoint.success(now);
                health.activities.newest_sent_ms = health.activities.newest_sent_ms.max(pending.newest_sent_ms);
                drop(health);
                if self.checkpoint_outage.recovered() {
                    self.log.info("storage: the checkpoint is saved again");
                }
            }
            Err(err) => {
                self.health.lock().unwrap_or_else(|p| p.into_inner()).checkpoint.failure(now, &err.to_string());
                if self.checkpoint_outage.failed() {
                    self.log.error(&format!("storage: {err}; retried with the next checkpoint"));
                }
            }
        }
    }

    fn storage_ok(&mut self) {
        self.stats.account.success(crate::time::now_ms());
        if self.storage_outage.recovered() {
            self.log.info("storage: the account answers again");
        }
    }

    /// A failed listing or read: noted, logged when due; a refusal (bad
    /// key or SAS) is as retryable as an outage for a long-running agent,
    /// but said plainly. The loop lists again after the poll interval.
    fn storage_failed(&mut self, err: StorageError) -> Result<(), StorageRunError> {
        let text = err.to_string();
        self.stats.account.failure(crate::time::now_ms(), &text);
        if self.storage_outage.failed() {
            self.log.warn(&format!("storage: {text}; trying again every {:?}", self.config.poll_interval));
        }
        self.update_health();
        Ok(())
    }

    fn update_health(&mut self) {
        let report = self.sender.report();
        let counts = self.converter.counts;
        let archive = self.reader.stats();
        let s = &mut self.stats;
        s.blobs = archive.blobs;
        s.listings = archive.listings;
        s.bytes_read = archive.bytes;
        s.behind_bytes = self.listed_new.saturating_sub(self.read_since_listing);
        s.records = counts.records;
        s.sent = report.messages_written;
        s.rejected = counts.rejected;
        s.duplicates_skipped = counts.skipped;
        s.skipped_other = counts.other_tables;
        s.too_long = archive.too_long;
        s.restarted_blobs = archive.restarted_blobs;
        s.gone_blobs = archive.gone_blobs;
        let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        self.syslog_watch.update(&report, &mut health.syslog, crate::time::now_ms());
        health.activities.enabled = true;
        health.activities.fetched = counts.records;
        health.activities.sent = report.messages_written;
        health.activities.rejected = counts.rejected;
        health.activities.duplicates_skipped = counts.skipped;
        health.storage = Some(self.stats.clone());
    }

    /// Waits `wait` (or until stopped) while keeping syslog, checkpoints
    /// and health going.
    fn idle(&mut self, wait: Duration, stop: &Stop) -> io::Result<()> {
        let until = Instant::now() + wait;
        while Instant::now() < until && !stop.is_requested() {
            self.tick(true)?;
            stop.wait_timeout(Duration::from_millis(100).min(until.saturating_duration_since(Instant::now())));
        }
        Ok(())
    }

    /// On a stop: syslog gets [`FINISH_WAIT`] to take what is in flight;
    /// if it took everything, the positions reached are saved.
    fn finish(&mut self) {
        let _ = self.sender.send_pending();
        let deadline = Instant::now() + FINISH_WAIT;
        while self.sender.messages_written() < self.sender.messages_accepted() && Instant::now() < deadline {
            if self.sender.free_batches() > 0 {
                let _ = self.sender.flush(Duration::from_millis(200));
            } else {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.tick(true);
        if self.sender.messages_written() >= self.sender.messages_accepted() {
            self.pending = None;
            self.take_checkpoint();
            self.save_checkpoint();
        } else {
            self.log.warn(&format!(
                "storage: {} messages were not written to syslog; they are not in the checkpoint, the next start \
                 reads them again",
                self.sender.messages_accepted() - self.sender.messages_written()
            ));
        }
        self.update_health();
    }
}

/// Runs the loop until `stop` is set (or, with `once`, until caught up);
/// returns the sender's final report.
pub fn run(
    config: &StorageRunConfig,
    stop: &Stop,
    log: Arc<AgentLog>,
    health: Arc<Mutex<HealthReport>>,
) -> Result<SendReport, StorageRunError> {
    let archive = &config.archive;
    let (positions, seen, newest_sent_ms) = match storage_state::load(&config.state_dir)? {
        Some(saved) if saved.container == archive.container => {
            log.info(&format!(
                "storage: resuming from the checkpoint of {} ({} blobs, {} ReportIds remembered)",
                crate::time::format_ms(saved.saved_at_ms),
                saved.positions.len(),
                saved.seen.len()
            ));
            (saved.positions, saved.seen, saved.newest_sent_ms)
        }
        Some(saved) => {
            log.warn(&format!(
                "storage: the checkpoint is for container {:?}, not {:?}: reading the look-back from the start",
                saved.container, archive.container
            ));
            Default::default()
        }
        None => {
            log.info(&format!(
                "storage: first start, reading the blobs of the last {}",
                crate::time::format_duration_ms(archive.look_back_ms)
            ));
            Default::default()
        }
    };
    let stats = StorageHealth {
        container: archive.container.clone(),
        prefix: archive.prefix.clone(),
        ..StorageHealth::default()
    };
    {
        let mut h = health.lock().unwrap_or_else(|p| p.into_inner());
        h.storage = Some(stats.clone());
        h.activities.enabled = true;
        h.activities.newest_sent_ms = newest_sent_ms;
    }
    let reader = ArchiveReader::new(archive, positions)?;
    let mut sender = SyslogSender::start(&config.send)?;
    let mut resender = Resender::saved_at(config.resend_window_bytes, config.state_dir.join(RESEND_FILE))
        .exact_delivery(config.send.destinations.iter().all(|d| d.transport.is_relp()));
    resender.send_saved(&mut sender, &log);
    let rejects = rejects_file::open(&config.state_dir, REJECTS_FILE, Arc::clone(&log))
        .map_err(|e| StorageRunError::Start("rejects file", e))?;
    let mut run = Loop {
        config: config.clone(),
        reader,
        sender,
        converter: RecordConverter::new(&config.cef),
        lines: ChunkLines::default(),
        rejects,
        seen,
        resender,
        buffer: Vec::new(),
        pending: None,
        last_checkpoint: Instant::now(),
        last_push: Instant::now(),
        last_health: Instant::now(),
        newest_sent_ms,
        health: Arc::clone(&health),
        log: Arc::clone(&log),
        stats,
        storage_outage: Outage::default(),
        checkpoint_outage: Outage::default(),
        syslog_watch: SyslogWatch::default(),
        listed_new: 0,
        read_since_listing: 0,
    };
    log.info(&format!(
        "storage: reading {}/{}{} (look-back {})",
        archive.blob.endpoint,
        archive.container,
        if archive.prefix.is_empty() { String::new() } else { format!(" prefix {}", archive.prefix) },
        crate::time::format_duration_ms(archive.look_back_ms)
    ));
    let outcome = (|| -> Result<(), StorageRunError> {
        while !stop.is_requested() {
            let read_any = run.pass(stop)?;
            let failing = run.stats.account.failing_since_ms.is_some();
            if config.once && !read_any && !failing {
                break;
            }
            if !read_any || failing {
                run.idle(config.poll_interval, stop).map_err(StorageRunError::Sink)?;
            }
        }
        Ok(())
    })();
    run.finish();
    let Loop { mut sender, .. } = run;
    outcome?;
    sender.set_drain_timeout(Duration::from_millis(500));
    sender.finish().map_err(StorageRunError::Sink)
}

impl StorageRunConfig {
    /// The Storage part of the agent's configuration, if it has one.
    pub fn from_agent(config: &super::config::AgentConfig) -> Option<Self> {
        let archive = config.storage.clone()?;
        Some(Self {
            archive,
            send: config.send.clone(),
            cef: config.cef.clone(),
            poll_interval: config.poll_interval,
            resend_window_bytes: config.resend_window_bytes,
            state_dir: config.state_dir.clone(),
            once: config.once,
        })
    }
}

/// The agent when Storage is its only source: the health file and the
/// metrics endpoint around the loop, as [`super::run::Agent`] has them.
pub fn run_alone(
    config: &super::config::AgentConfig,
    stop: Stop,
    log: Arc<AgentLog>,
) -> Result<SendReport, StorageRunError> {
    let run_config = StorageRunConfig::from_agent(config).expect("called with a Storage source");
    super::health_writer::around_loop(config, &log, true, StorageRunError::Start, |health| {
        run(&run_config, &stop, Arc::clone(&log), health)
    })
}
