//! `cefwire backfill --source storage`: one pass over the blobs of a time
//! window's hours in the streaming archive, converting and sending as it
//! goes. Each blob is read from its start to its last complete line (a
//! line still being written is left, and said); records are sent once by
//! `ReportId` (the archive is at-least-once: a record may be in it twice),
//! records of other tables are counted and skipped. Owns the pass, the
//! progress display and the report; reading is the archive reader's,
//! delivering the sink's.

use super::lines::ChunkLines;
use crate::api::TimeWindow;
use crate::azure::archive::{ArchiveConfig, ArchiveReader, ArchiveStats, Chunk};
use crate::azure::blob::{StorageError, StorageStats};
use crate::backfill::SendOnce;
use crate::cef::CefOptions;
use crate::progress::Progress;
use crate::records::{ConvertCounts, MessageSink, RecordConverter};
use crate::rejects::RejectLog;
use crate::stop::Stop;
use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `ReportId`s remembered (about 40 MB): more than an hour's blob holds
/// for most tenants, so a record written twice into its hour's blob is
/// sent once.
pub const RECENT_REPORT_IDS: usize = 1_000_000;

/// Validated settings of `backfill --source storage`.
#[derive(Clone, Debug)]
pub struct StorageBackfillConfig {
    pub archive: ArchiveConfig,
    /// The blobs of the hours that overlap it are read.
    pub window: TimeWindow,
    pub cef: CefOptions,
    pub rejects_file: Option<PathBuf>,
    pub show_rejects: u64,
    pub progress: bool,
    pub stop: Option<Stop>,
}

/// What a storage backfill did.
#[derive(Clone, Debug, Default)]
pub struct StorageBackfillReport {
    pub archive: ArchiveStats,
    pub storage: StorageStats,
    pub counts: ConvertCounts,
    pub lines: u64,
    /// Blob visits that ended inside a line (still being written): that
    /// line was not read.
    pub unfinished_lines: u64,
    pub elapsed: Duration,
}

impl StorageBackfillReport {
    /// A few human lines for stderr.
    pub fn summary(&self) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let s = &self.storage;
        let mut text = format!(
            "backfilled {} CloudAppEvents records from {} blobs ({:.1} MB, {} lines) in {:.1} s: {:.0} records/s\n\
             storage: {} requests ({} listings, {} ranged reads), {} retried, {:.1} s backing off",
            self.counts.converted(),
            self.archive.blobs,
            self.archive.bytes as f64 / 1e6,
            self.lines,
            secs,
            self.counts.records as f64 / secs,
            s.requests,
            s.listings,
            s.ranges,
            s.retried,
            s.backoff_wait.as_secs_f64(),
        );
        if self.counts.skipped > 0 {
            text.push_str(&format!("\nskipped {} records sent already (the same ReportId again)", self.counts.skipped));
        }
        if self.counts.other_tables > 0 {
            text.push_str(&format!("\nskipped {} streaming records of other tables", self.counts.other_tables));
        }
        if self.counts.rejected > 0 {
            text.push_str(&format!("\nrejected {} records", self.counts.rejected));
        }
        if self.archive.too_long > 0 {
            text.push_str(&format!("\n{} lines over the line limit were skipped (rejected)", self.archive.too_long));
        }
        if self.archive.gone_blobs > 0 {
            text.push_str(&format!(
                "\n{} blobs were deleted after they were listed; what they held was not read",
                self.archive.gone_blobs
            ));
        }
        if self.unfinished_lines > 0 {
            text.push_str(&format!(
                "\n{} blobs end inside a line still being written; that line was not read",
                self.unfinished_lines
            ));
        }
        text
    }
}

/// Why a storage backfill stopped early.
#[derive(Debug, thiserror::Error)]
pub enum StorageBackfillError {
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Output(io::Error),
    #[error("rejects file {path}: {source}")]
    Rejects { path: String, source: io::Error },
    #[error("stopped by a signal")]
    Interrupted,
}

/// How it ended: the report, and the error that ended it early, if any.
#[derive(Debug)]
pub struct StorageBackfillOutcome {
    pub report: StorageBackfillReport,
    pub error: Option<StorageBackfillError>,
}

/// Runs the pass into `sink` until the window's blobs are read, an error,
/// or the stop signal; the rejects file is finished either way.
pub fn run_to_end(config: &StorageBackfillConfig, sink: &mut dyn MessageSink) -> StorageBackfillOutcome {
    let started = Instant::now();
    let mut report = StorageBackfillReport::default();
    let mut rejects = RejectLog::new(config.show_rejects);
    if let Some(path) = &config.rejects_file
        && let Err(source) = rejects.keep_records_in(path)
    {
        let error = StorageBackfillError::Rejects { path: path.display().to_string(), source };
        return StorageBackfillOutcome { report, error: Some(error) };
    }
    let mut converter = RecordConverter::new(&config.cef);
    let mut lines = ChunkLines::default();
    let mut reader = None;
    let outcome = read_all(config, sink, &mut rejects, &mut converter, &mut lines, &mut reader, &mut report);
    if let Some(reader) = &reader {
        report.archive = reader.stats();
        report.storage = reader.client_stats();
    }
    report.counts = converter.counts;
    report.lines = lines.lines;
    let rejects_done = rejects.finish().map_err(StorageBackfillError::Output);
    report.elapsed = started.elapsed();
    StorageBackfillOutcome { report, error: outcome.err().or(rejects_done.err()) }
}

fn read_all(
    config: &StorageBackfillConfig,
    sink: &mut dyn MessageSink,
    rejects: &mut RejectLog,
    converter: &mut RecordConverter,
    lines: &mut ChunkLines,
    reader: &mut Option<ArchiveReader>,
    report: &mut StorageBackfillReport,
) -> Result<(), StorageBackfillError> {
    let reader = reader.insert(ArchiveReader::new(&config.archive, BTreeMap::new())?);
    let listed = reader.refresh(config.window.from, config.window.until)?;
    let progress = Progress::bytes(config.progress, Some(listed.new_bytes), "backfill");
    let mut gate = SendOnce::remembering(RECENT_REPORT_IDS);
    let mut buffer = Vec::new();
    let mut done = 0u64;
    let stopped = || config.stop.as_ref().is_some_and(Stop::is_requested);
    let result = loop {
        if stopped() {
            break Err(StorageBackfillError::Interrupted);
        }
        let chunk = match reader.next_chunk(&mut buffer) {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break Ok(()),
            // A read abandoned for the stop is not the storage's fault.
            Err(_) if stopped() => break Err(StorageBackfillError::Interrupted),
            Err(err) => break Err(err.into()),
        };
        let converted = match &chunk {
            Chunk::Lines(position) => {
                done += position.end - position.start;
                lines.convert(position, &buffer, converter, sink, rejects, &mut gate)
            }
            Chunk::TooLong(position) => {
                done += position.end - position.start;
                lines.too_long(position, config.archive.max_line_bytes, converter, rejects)
            }
            // Deleted after the listing: its bytes are not coming.
            Chunk::Gone(blob) => {
                progress.println(&format!("cefwire: {blob} was deleted after it was listed; skipped"));
                Ok(())
            }
        };
        converted.map_err(StorageBackfillError::Output)?;
        progress.set_position(done);
    };
    progress.finish();
    report.unfinished_lines = reader.stats().unfinished_tails;
    result
}
