//! `cefwire backfill --source eventhubs`: one bounded pass over the event
//! hub Defender XDR streams into, converting and sending as it goes.
//!
//! The [`PartitionReader`] fixes each partition's span when it opens (from
//! the given start to the high watermark of that moment) and reads it
//! without joining the agent's consumer group or committing anything.
//! Each message body (`{"records":[…]}`) runs through the shared record
//! loop with backfill's `ReportId` gate, into the [`MessageSink`] (a file
//! or the syslog sender). This module owns that loop, the per-partition
//! counts and progress lines, and the report (its own: offsets per
//! partition, unlike the API's pages); how partitions are read is
//! `crate::eventhubs::backfill`, how the sink delivers is not its concern.

use crate::backfill::SendOnce;
use crate::cef::CefOptions;
use crate::eventhubs::backfill::{Next, PartitionReader, PartitionState, ReadFrom, ReaderError};
use crate::eventhubs::{ClientLog, EventHubsSettings};
use crate::json::INPUT_PADDING;
use crate::progress::Progress;
use crate::records::{ConvertCounts, MessageSink, Origin, RecordConverter};
use crate::rejects::RejectLog;
use crate::stop::Stop;
use rdkafka::Message;
use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Validated settings of `cefwire backfill --source eventhubs`.
#[derive(Clone, Debug)]
pub struct EventHubsBackfillConfig {
    /// The `[eventhubs]` section of the agent's file (its consumer group
    /// is left alone).
    pub settings: EventHubsSettings,
    pub from: ReadFrom,
    /// A partition ends at its first message enqueued at or after this
    /// time (ms), if that comes before its end offset.
    pub until_ms: Option<i64>,
    pub cef: CefOptions,
    pub rejects_file: Option<PathBuf>,
    pub show_rejects: u64,
    pub progress: bool,
    /// When set, the run stops reading, finishes every output and reports
    /// itself incomplete.
    pub stop: Option<Stop>,
    /// How long the broker gets to answer the first questions together
    /// (partitions, watermarks, offsets for a time).
    pub connect_wait: Duration,
}

/// What was read from one partition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartitionCounts {
    pub partition: i32,
    pub start: i64,
    pub end: i64,
    /// The offset after the last message read.
    pub next: i64,
    pub messages: u64,
    /// Records in those messages (of every table).
    pub records: u64,
    /// Of them, written as CEF.
    pub sent: u64,
}

/// What an Event Hubs backfill did.
#[derive(Clone, Debug, Default)]
pub struct EventHubsBackfillReport {
    pub event_hub: String,
    pub partitions: Vec<PartitionCounts>,
    pub counts: ConvertCounts,
    pub elapsed: Duration,
}

impl EventHubsBackfillReport {
    /// A few human lines for stderr.
    pub fn summary(&self) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let messages: u64 = self.partitions.iter().map(|p| p.messages).sum();
        let mut text = format!(
            "backfilled {} records from event hub {} ({} read in {} messages) in {:.1} s: {:.0} records/s",
            self.counts.converted(),
            self.event_hub,
            self.counts.records,
            messages,
            secs,
            self.counts.records as f64 / secs,
        );
        for p in &self.partitions {
            let _ = write!(
                text,
                "\npartition {}: offsets {}..{} read up to {}: {} messages, {} records, {} sent",
                p.partition, p.start, p.end, p.next, p.messages, p.records, p.sent
            );
        }
        if self.counts.other_tables > 0 {
            let _ = write!(text, "\nskipped {} records of other tables", self.counts.other_tables);
        }
        if self.counts.skipped > 0 {
            let _ = write!(text, "\nskipped {} records sent already (the same ReportId again)", self.counts.skipped);
        }
        if self.counts.rejected > 0 {
            let _ = write!(text, "\nrejected {} records", self.counts.rejected);
        }
        text
    }
}

/// Why an Event Hubs backfill stopped early.
#[derive(Debug, thiserror::Error)]
pub enum EventHubsBackfillError {
    #[error(transparent)]
    Reader(#[from] ReaderError),
    #[error(transparent)]
    Output(io::Error),
    #[error("rejects file {path}: {source}")]
    Rejects { path: String, source: io::Error },
    #[error("stopped by a signal")]
    Interrupted,
}

/// How a backfill ended: what it did and the error that ended it early
/// (`None`: every partition reached its end). Either way the rejects file
/// is finished.
#[derive(Debug)]
pub struct EventHubsBackfillOutcome {
    pub report: EventHubsBackfillReport,
    pub error: Option<EventHubsBackfillError>,
}

/// `ReportId`s remembered across the whole run (about 12 MB): the
/// streaming API is at-least-once, and a repeat is usually near.
const RECENT_REPORT_IDS: usize = 500_000;
/// How long one poll waits (a stop is noticed within this).
const POLL_WAIT: Duration = Duration::from_millis(100);

/// The client's warnings go to stderr.
struct StderrLog;

impl ClientLog for StderrLog {
    fn warn(&self, message: &str) {
        eprintln!("cefwire: eventhubs: {message}");
    }

    fn error(&self, message: &str) {
        eprintln!("cefwire: eventhubs: {message}");
    }
}

/// Reads every partition's span into `sink`, until all are read, an
/// error, or the stop signal; then finishes the rejects file.
pub fn run_to_end(config: &EventHubsBackfillConfig, sink: &mut dyn MessageSink) -> EventHubsBackfillOutcome {
    let started = Instant::now();
    let mut report =
        EventHubsBackfillReport { event_hub: config.settings.event_hub.clone(), ..EventHubsBackfillReport::default() };
    let mut rejects = RejectLog::new(config.show_rejects);
    if let Some(path) = &config.rejects_file
        && let Err(source) = rejects.keep_records_in(path)
    {
        let error = EventHubsBackfillError::Rejects { path: path.display().to_string(), source };
        return EventHubsBackfillOutcome { report, error: Some(error) };
    }
    let mut converter = RecordConverter::new(&config.cef);
    let read = match PartitionReader::open(
        &config.settings,
        &config.from,
        config.until_ms,
        Arc::new(StderrLog),
        config.connect_wait,
        config.stop.as_ref(),
    ) {
        Ok(mut reader) => {
            report.partitions = reader.partitions().iter().map(counts_of).collect();
            let read = read_all(config, &mut reader, &mut converter, sink, &mut rejects, &mut report);
            for (counts, state) in report.partitions.iter_mut().zip(reader.partitions()) {
                counts.next = state.next;
                counts.messages = state.messages;
            }
            read
        }
        Err(ReaderError::Stopped) => Err(EventHubsBackfillError::Interrupted),
        Err(err) => Err(err.into()),
    };
    report.counts = converter.counts;
    let finished = rejects.finish().map_err(EventHubsBackfillError::Output);
    report.elapsed = started.elapsed();
    EventHubsBackfillOutcome { report, error: read.err().or(finished.err()) }
}

fn counts_of(state: &PartitionState) -> PartitionCounts {
    let span = state.span;
    PartitionCounts {
        partition: span.partition,
        start: span.start,
        end: span.end,
        next: state.next,
        ..Default::default()
    }
}

fn read_all(
    config: &EventHubsBackfillConfig,
    reader: &mut PartitionReader,
    converter: &mut RecordConverter,
    sink: &mut dyn MessageSink,
    rejects: &mut RejectLog,
    report: &mut EventHubsBackfillReport,
) -> Result<(), EventHubsBackfillError> {
    // One line per partition, a bar over its span of offsets.
    let names: Vec<String> = report.partitions.iter().map(|p| format!("partition {}", p.partition)).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let progress = Progress::items_per_kind(config.progress, &names);
    for (bar, p) in progress.iter().zip(&report.partitions) {
        bar.set_length((p.end - p.start).max(0) as u64);
        if p.start >= p.end {
            bar.done();
        }
    }
    let mut gate = SendOnce::remembering(RECENT_REPORT_IDS);
    let mut body = Vec::new();
    let mut origin = String::new();
    let stop = config.stop.as_ref();
    let hub = &config.settings.event_hub;
    let outcome = loop {
        if stop.is_some_and(Stop::is_requested) {
            break Err(EventHubsBackfillError::Interrupted);
        }
        let message = match reader.next(POLL_WAIT) {
            Ok(Next::Message(message)) => message,
            Ok(Next::Idle) => continue,
            Ok(Next::Done) => break Ok(()),
            Err(err) => break Err(err.into()),
        };
        let (partition, offset) = (message.partition(), message.offset());
        let before = converter.counts;
        let payload = message.payload().unwrap_or_default();
        if !payload.is_empty() {
            body.clear();
            body.extend_from_slice(payload);
            body.resize(payload.len() + INPUT_PADDING, 0);
            origin.clear();
            let _ = write!(origin, "{hub}/{partition}@{offset}");
            let at = Origin { file: &origin, line: 1, multi_line: true };
            let converted = converter.convert_document_gated(at, &mut body, payload.len(), sink, rejects, &mut gate);
            match converted {
                Ok(()) => {}
                // The signal ended a wait for syslog.
                Err(err) if crate::stop::is_stop(&err) => break Err(EventHubsBackfillError::Interrupted),
                Err(err) => break Err(EventHubsBackfillError::Output(err)),
            }
        }
        drop(message);
        let counts = converter.counts.since(&before);
        if let Some(index) = report.partitions.iter().position(|p| p.partition == partition) {
            let p = &mut report.partitions[index];
            p.records += counts.records;
            p.sent += counts.converted();
            if let Some(bar) = progress.get(index).filter(|bar| bar.is_visible()) {
                bar.set_position((offset + 1 - p.start).max(0) as u64);
                if reader.partitions().get(index).is_some_and(|s| s.done) {
                    bar.done();
                }
            }
        }
    };
    progress.iter().for_each(Progress::finish);
    outcome
}
