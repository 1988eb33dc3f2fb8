//! `cefwire backfill`: one pass over a time window of the API, converting
//! and sending as it goes.
//!
//! The pages come from a pipelined [`PageSource`]: its fetch thread waits
//! for the rate limiter and fetches the next page while this thread
//! converts the current one into the [`MessageSink`] (the paging fields go
//! back from the same parse) and, with `--archive`, writes its records as
//! zstd NDJSON. This module owns the window's queries, that loop, the
//! archive files, the progress display, the report and the dry run; it
//! does not know how the sink delivers (a file, or the syslog sender).

use crate::api::{ApiClient, ApiConfig, ApiError, ClientStats, Endpoint, PageInfo, PagingError, RateLimit, TimeKey};
use crate::api::{TimeWindow, WindowQuery, paging};
use crate::cef::CefOptions;
use crate::cef::{RecordFields, RecordKey};
use crate::json::{JsonValue, write_compact_json};
use crate::output::{FinishWrite, create_maybe_compressed};
use crate::pages::{PageEvent, PageSource, SourceError};
use crate::progress::Progress;
use crate::records::{ConvertCounts, MessageSink, NoGate, Origin, PageError, RecordConverter, RecordGate};
use crate::rejects::RejectLog;
use crate::stop::Stop;
use std::collections::{HashSet, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Validated settings of `cefwire backfill`.
#[derive(Clone, Debug)]
pub struct BackfillConfig {
    pub api: ApiConfig,
    pub window: TimeWindow,
    /// Which record types, fetched in this order.
    pub types: Vec<Endpoint>,
    /// The time field the activities window is cut on.
    pub activity_key: TimeKey,
    /// Extra filters as JSON object members (from `--filter`), maybe empty.
    pub extra_filters: Vec<u8>,
    /// Scan page size for activities (at most 5000).
    pub scan_limit: u64,
    pub cef: CefOptions,
    /// Also write the raw records here, as zstd NDJSON.
    pub archive_dir: Option<PathBuf>,
    pub rejects_file: Option<PathBuf>,
    pub show_rejects: u64,
    pub progress: bool,
    /// When set, the run stops fetching (a wait for an answer is
    /// abandoned), finishes every output and reports itself incomplete.
    pub stop: Option<Stop>,
}

/// Counts of one record type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TypeCounts {
    pub pages: u64,
    pub records: u64,
    /// What the first page said the total was (`None`: it did not say, or
    /// only "more than").
    pub total: Option<u64>,
}

/// What a backfill did.
#[derive(Clone, Debug, Default)]
pub struct BackfillReport {
    pub activities: TypeCounts,
    pub alerts: TypeCounts,
    pub counts: ConvertCounts,
    pub client: ClientStats,
    pub rate_limit: Option<RateLimit>,
    pub elapsed: Duration,
    pub archives: Vec<PathBuf>,
    /// The alerts came from Microsoft Graph (`--source graph`).
    pub graph: bool,
}

impl BackfillReport {
    /// A few human lines for stderr.
    pub fn summary(&self) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let c = &self.client;
        let what = match self.graph {
            true => format!(
                "backfilled {} alerts from Graph alerts_v2 ({} fetched in {} pages)",
                self.counts.converted(),
                self.alerts.records,
                self.alerts.pages
            ),
            false => format!(
                "backfilled {} records ({} activities in {} pages, {} alerts in {} pages)",
                self.counts.converted(),
                self.activities.records,
                self.activities.pages,
                self.alerts.records,
                self.alerts.pages
            ),
        };
        let mut text = format!(
            "{what} in {:.1} s: {:.0} records/s\n\
             {}: {} requests, {} retried ({} throttled, {} server errors, {} network errors), waited {:.1} s for the rate limit, {:.1} s backing off",
            secs,
            self.counts.records as f64 / secs,
            if self.graph { "graph" } else { "api" },
            c.requests,
            c.throttled + c.server_errors + c.network_errors,
            c.throttled,
            c.server_errors,
            c.network_errors,
            c.limiter_wait.as_secs_f64(),
            c.backoff_wait.as_secs_f64(),
        );
        if let Some(limit) = self.rate_limit
            && let Some(usage) = c.rate_use(limit)
        {
            text.push_str(&format!("; used {:.1} % of the {:.0}/min rate limit", usage * 100.0, limit.per_minute()));
        }
        if self.counts.rejected > 0 {
            text.push_str(&format!("\nrejected {} records", self.counts.rejected));
        }
        if self.counts.skipped > 0 {
            text.push_str(&format!("\nskipped {} records sent already (the same id again)", self.counts.skipped));
        }
        for path in &self.archives {
            text.push_str(&format!("\narchived raw records to {}", path.display()));
        }
        text
    }
}

/// Why a backfill stopped.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("paging through {endpoint}: {source}")]
    Paging { endpoint: &'static str, source: PagingError },
    #[error("{endpoint} page {page}: {reason}")]
    BadPage { endpoint: &'static str, page: u64, reason: PageError },
    #[error(transparent)]
    Output(io::Error),
    #[error("archive {path}: {source}")]
    Archive { path: String, source: io::Error },
    #[error("the fetch thread stopped unexpectedly")]
    FetchThread,
    #[error("stopped by a signal")]
    Interrupted,
    #[error("Graph alerts_v2: {0}")]
    Graph(#[from] crate::graph::GraphError),
    #[error("Graph alerts_v2 page {page}: {reason}")]
    BadGraphPage { page: u64, reason: PageError },
}

impl From<SourceError> for BackfillError {
    fn from(err: SourceError) -> Self {
        match err {
            SourceError::Api(err) => BackfillError::Api(err),
            SourceError::Paging { endpoint, source } => BackfillError::Paging { endpoint, source },
            SourceError::ThreadGone => BackfillError::FetchThread,
        }
    }
}

/// The queries for the configured types, in order.
pub fn queries(config: &BackfillConfig) -> Vec<WindowQuery> {
    config
        .types
        .iter()
        .map(|&endpoint| {
            WindowQuery::new(endpoint, config.activity_key, config.window, &config.extra_filters, config.scan_limit)
        })
        .collect()
}

/// How a backfill ended: what it did, and the error that ended it early
/// (`None`: the whole window). Either way every output it wrote (archive,
/// rejects file) is finished and valid.
#[derive(Debug)]
pub struct BackfillOutcome {
    pub report: BackfillReport,
    pub error: Option<BackfillError>,
}

/// Runs the backfill into `sink`; an error ends it (see [`run_to_end`]
/// for the report of a run that ended early).
pub fn run(config: &BackfillConfig, sink: &mut dyn MessageSink) -> Result<BackfillReport, BackfillError> {
    let outcome = run_to_end(config, sink);
    match outcome.error {
        None => Ok(outcome.report),
        Some(err) => Err(err),
    }
}

/// Runs the backfill into `sink` until the window is done, an error, or
/// the stop signal; then finishes the archive and the rejects file.
pub fn run_to_end(config: &BackfillConfig, sink: &mut dyn MessageSink) -> BackfillOutcome {
    let started = Instant::now();
    let mut report = BackfillReport::default();
    let fail = |report: BackfillReport, error| BackfillOutcome { report, error: Some(error) };
    let mut client = match ApiClient::new(&config.api) {
        Ok(client) => client,
        Err(err) => return fail(report, err.into()),
    };
    // Said as it happens, not only when the attempts are used up.
    client.on_failed_attempt(|failure| eprintln!("cefwire: API: {failure}"));
    let mut rejects = RejectLog::new(config.show_rejects);
    if let Some(path) = &config.rejects_file
        && let Err(source) = rejects.keep_records_in(path)
    {
        return fail(report, BackfillError::Archive { path: path.display().to_string(), source });
    }
    let mut archive = Archive::new(config.archive_dir.as_deref(), config.window);
    let mut source = match PageSource::pipelined(client) {
        Ok(source) => source,
        Err(e) => {
            let err = io::Error::other(format!("starting the fetch thread: {e}"));
            return fail(report, BackfillError::Output(err));
        }
    };
    source.walk(queries(config).iter().map(WindowQuery::pager).collect());

    // One line per record type: a counter, a bar with ETA once that
    // type's first page told its total.
    let names: Vec<&str> = config.types.iter().map(|e| e.name()).collect();
    let progress = Progress::items_per_kind(config.progress, &names);
    report.rate_limit = Some(source.rate_limit());
    let mut converter = RecordConverter::new(&config.cef);
    let stop = config.stop.as_ref();
    let converted = convert_pages(
        &mut source,
        stop,
        &mut converter,
        sink,
        &mut rejects,
        &mut archive,
        &progress,
        &config.types,
        &mut report,
    );
    progress.iter().for_each(Progress::finish);
    report.client = source.stats();
    report.counts = converter.counts;
    source.finish();
    // The outputs are finished whatever ended the run, so that what was
    // written is complete and valid (a zstd archive with its end frame).
    let rejects_done = rejects.finish().map_err(BackfillError::Output);
    let archive_done = archive.finish().map(|paths| report.archives = paths);
    report.elapsed = started.elapsed();
    let error = converted.err().or(rejects_done.err()).or(archive_done.err());
    BackfillOutcome { report, error }
}

/// Backfill's [`RecordGate`]: a record whose id was sent within the last
/// [`RECENT_IDS`] records (Event Hubs: a count of its own) is skipped (a page the API served twice, the same
/// record on two pages). Memory stays bounded: the oldest id is forgotten
/// for each new one once the set is full, and both are allocated once.
pub(crate) struct SendOnce {
    recent: HashSet<u64>,
    order: VecDeque<u64>,
    capacity: usize,
    digits: itoa::Buffer,
    admitted: Option<u64>,
}

/// Ids remembered by backfill (about 3 MB).
const RECENT_IDS: usize = 100_000;

impl SendOnce {
    pub(crate) fn new() -> Self {
        Self::remembering(RECENT_IDS)
    }

    /// A gate that remembers the last `ids` ids sent.
    pub(crate) fn remembering(ids: usize) -> Self {
        Self {
            recent: HashSet::with_capacity(ids + 1),
            order: VecDeque::with_capacity(ids + 1),
            capacity: ids,
            digits: itoa::Buffer::new(),
            admitted: None,
        }
    }
}

impl RecordGate for SendOnce {
    fn admit(&mut self, _: &RecordFields<'_, '_>, key: &RecordKey<'_, '_>) -> bool {
        // No usable id: the formatter rejects the record.
        self.admitted = key.id_hash(&mut self.digits);
        !self.admitted.is_some_and(|hash| self.recent.contains(&hash))
    }

    fn formatted(&mut self, _: &[u8]) {}

    fn committed(&mut self) {
        let Some(hash) = self.admitted.take() else { return };
        if self.recent.insert(hash) {
            self.order.push_back(hash);
            if self.order.len() > self.capacity
                && let Some(oldest) = self.order.pop_front()
            {
                self.recent.remove(&oldest);
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn convert_pages(
    source: &mut PageSource,
    stop: Option<&Stop>,
    converter: &mut RecordConverter,
    sink: &mut dyn MessageSink,
    rejects: &mut RejectLog,
    archive: &mut Archive,
    progress: &[Progress],
    types: &[Endpoint],
    report: &mut BackfillReport,
) -> Result<(), BackfillError> {
    let mut gate = SendOnce::new();
    let bar_of = |endpoint: Endpoint| types.iter().position(|&e| e == endpoint).and_then(|i| progress.get(i));
    let mut last_endpoint = None;
    loop {
        if stop.is_some_and(Stop::is_requested) {
            return Err(BackfillError::Interrupted);
        }
        let mut page = match source.next_page(stop) {
            Some(PageEvent::Page(page)) => page,
            Some(PageEvent::Done) => return Ok(()),
            Some(PageEvent::Failed(err)) => return Err(err.into()),
            None if stop.is_some_and(Stop::is_requested) => return Err(BackfillError::Interrupted),
            None => return Err(BackfillError::FetchThread),
        };
        let endpoint = page.endpoint;
        if let Some(previous) = last_endpoint.replace(endpoint).filter(|&e| e != endpoint)
            && let Some(bar) = bar_of(previous)
        {
            // Types are fetched one after the other: that one is complete.
            bar.done();
        }
        let counts = match endpoint {
            Endpoint::Activities => &mut report.activities,
            Endpoint::Alerts => &mut report.alerts,
        };
        counts.pages += 1;
        let converted = source.convert_page(&mut page, endpoint.name(), converter, sink, rejects, &mut gate, |root| {
            archive.write_page(endpoint.name(), root)
        });
        let number = page.number;
        source.recycle(page);
        let info = match converted {
            Ok(info) => info,
            Err(PageError::Sink(err)) => return Err(BackfillError::Output(err)),
            Err(reason) => return Err(BackfillError::BadPage { endpoint: endpoint.name(), page: number, reason }),
        };
        counts.records += info.records;
        let bar = bar_of(endpoint);
        if number == 1 {
            // Alert totals stop at the offset window ("more than 5,000"):
            // such a total is not one, and the line stays a counter.
            counts.total = info.total.filter(|&t| endpoint != Endpoint::Alerts || t < paging::OFFSET_WINDOW);
            if let (Some(bar), Some(total)) = (bar, counts.total) {
                bar.set_length(total);
            }
        }
        if let Some(bar) = bar.filter(|bar| bar.is_visible()) {
            bar.set_position(counts.records);
            bar.set_message(&format!("{} page {number}", endpoint.name()));
        }
        archive.check()?;
    }
}

/// The raw records of a backfill as zstd NDJSON, one file per type
/// (`activities`, `alerts`, `graph-alerts`).
pub(crate) struct Archive {
    dir: Option<PathBuf>,
    window: TimeWindow,
    files: Vec<(&'static str, PathBuf, Box<dyn FinishWrite>)>,
    buffer: Vec<u8>,
    error: Option<BackfillError>,
}

/// Flush the archive buffer at this size.
const ARCHIVE_FLUSH: usize = 1 << 20;

impl Archive {
    pub(crate) fn new(dir: Option<&Path>, window: TimeWindow) -> Self {
        Self { dir: dir.map(Path::to_path_buf), window, files: Vec::new(), buffer: Vec::new(), error: None }
    }

    /// `activities_2026-01-01T000000Z_2026-01-03T000000Z.ndjson.zst`
    fn file_name(kind: &str, window: TimeWindow) -> String {
        let stamp = |ms: i64| crate::time::format_ms(ms - ms.rem_euclid(1000)).replace(':', "").replace(".000", "");
        format!("{kind}_{}_{}.ndjson.zst", stamp(window.from), stamp(window.until))
    }

    /// Appends the records of a parsed page — its `data` (the API) or
    /// `value` (Graph) — to the file of `kind`, re-serialised compactly
    /// (the parse unescaped the buffer in place).
    pub(crate) fn write_page(&mut self, kind: &'static str, root: JsonValue<'_, '_>) {
        let Some(dir) = &self.dir else { return };
        if self.error.is_some() {
            return;
        }
        let index = match self.files.iter().position(|(k, ..)| *k == kind) {
            Some(index) => index,
            None => {
                let path = dir.join(Self::file_name(kind, self.window));
                match std::fs::create_dir_all(dir).and_then(|()| create_maybe_compressed(Some(&path))) {
                    Ok(writer) => self.files.push((kind, path, writer)),
                    Err(source) => {
                        self.error = Some(BackfillError::Archive { path: path.display().to_string(), source });
                        return;
                    }
                }
                self.files.len() - 1
            }
        };
        self.buffer.clear();
        if let Some(records) = root.get("data").or_else(|| root.get("value")).and_then(|d| d.array()) {
            for record in records {
                write_compact_json(record, &mut self.buffer);
                self.buffer.push(b'\n');
            }
        }
        let (_, path, writer) = &mut self.files[index];
        if let Err(source) = writer.write_all(&self.buffer) {
            self.error = Some(BackfillError::Archive { path: path.display().to_string(), source });
        }
        if self.buffer.capacity() > 4 * ARCHIVE_FLUSH {
            self.buffer = Vec::new();
        }
    }

    pub(crate) fn check(&mut self) -> Result<(), BackfillError> {
        self.error.take().map_or(Ok(()), Err)
    }

    pub(crate) fn finish(mut self) -> Result<Vec<PathBuf>, BackfillError> {
        self.check()?;
        let mut paths = Vec::new();
        for (_, path, writer) in self.files {
            writer.finish().map_err(|source| BackfillError::Archive { path: path.display().to_string(), source })?;
            paths.push(path);
        }
        Ok(paths)
    }
}

/// What a backfill would do, found with one small request per type.
#[derive(Clone, Debug, Default)]
pub struct Preview {
    pub lines: Vec<String>,
}

/// `--dry-run`: asks the API how many records the window holds, estimates
/// requests and time at the rate limit, and shows the first record of each
/// type as the CEF line it would become. Sends nothing.
pub fn preview(config: &BackfillConfig) -> Result<Preview, BackfillError> {
    let mut client = ApiClient::new(&config.api)?;
    let limit = client.rate_limit();
    let mut lines = vec![format!(
        "window: {} .. {} ({})",
        crate::time::format_ms(config.window.from),
        crate::time::format_ms(config.window.until),
        crate::time::format_duration_ms(config.window.until - config.window.from)
    )];
    let mut counter = Counter {
        client: &mut client,
        converter: RecordConverter::new(&config.cef),
        page: Vec::new(),
        body: Vec::new(),
        asked: 0,
    };
    let mut total_requests = 0u64;
    for query in queries(config) {
        let endpoint = query.endpoint;
        let per_request = if endpoint == Endpoint::Activities { config.scan_limit } else { paging::OFFSET_PAGE };
        let mut sample = Vec::new();
        let (records, requests) = counter.count(&query, config, per_request, 0, &mut sample)?;
        total_requests += requests;
        lines.push(format!("{}: {records} records, about {requests} requests of up to {per_request}", endpoint.name()));
        if !sample.is_empty() {
            lines.push(format!("  first record as CEF: {}", String::from_utf8_lossy(&sample)));
        }
    }
    if counter.asked > 0 {
        lines.push(format!("({} more requests to count what one answer could not)", counter.asked));
    }
    let windows = total_requests.saturating_sub(1) / u64::from(limit.requests);
    let duration = if windows == 0 {
        "within one window of the rate limit".to_owned()
    } else {
        let ms = (windows as f64 * limit.per.as_secs_f64() * 1000.0) as i64;
        format!("at least {} at the rate limit", crate::time::format_duration_ms(ms))
    };
    lines.push(format!("about {total_requests} requests at {:.0}/min: {duration}", limit.per_minute()));
    Ok(Preview { lines })
}

/// Counts the records of a window for `--dry-run`. The API reports a
/// total for each query, but for alerts only up to the offset window
/// (5,000, then "more than"): such a window is halved until each half's
/// total is exact, so the estimate holds for large windows too (before:
/// "about 51 requests" for 10,000 alerts that took 100).
struct Counter<'c> {
    client: &'c mut ApiClient,
    converter: RecordConverter,
    page: Vec<u8>,
    body: Vec<u8>,
    /// Requests beyond the first one per type.
    asked: u64,
}

/// Halvings at most (a 2-day window down to about 40 s).
const MAX_COUNT_DEPTH: u32 = 12;

impl Counter<'_> {
    /// Records in `query`'s window and the requests a backfill needs for
    /// them; `sample` gets the first record as CEF.
    fn count(
        &mut self,
        query: &WindowQuery,
        config: &BackfillConfig,
        per_request: u64,
        depth: u32,
        sample: &mut Vec<u8>,
    ) -> Result<(u64, u64), BackfillError> {
        let (endpoint, key) = (query.endpoint, query.key);
        query.sample_request(1, &mut self.body);
        if depth > 0 {
            self.asked += 1;
        }
        let len = self.client.fetch_page(endpoint, &self.body, &mut self.page)?;
        let mut first = Vec::new();
        let mut sink = SampleSink(&mut first);
        let mut rejects = RejectLog::with_messages(0, Box::new(io::sink()));
        let origin = Origin { file: endpoint.name(), line: 1, multi_line: false };
        let converted =
            self.converter.convert_page(origin, &mut self.page, len, &mut sink, &mut rejects, &mut NoGate, |root| {
                let info = PageInfo::from_page(root, key)?;
                let more =
                    matches!(root.get("moreThanTotal").and_then(|v| v.scalar()), Some(crate::json::Scalar::Bool(true)));
                Some((info, more))
            });
        let (info, more) = match converted {
            Ok(found) => found,
            Err(PageError::Sink(err)) => return Err(BackfillError::Output(err)),
            Err(reason) => return Err(BackfillError::BadPage { endpoint: endpoint.name(), page: 1, reason }),
        };
        if sample.is_empty() {
            *sample = first;
        }
        let total = info.total.unwrap_or(info.records);
        let capped = more || (endpoint == Endpoint::Alerts && total >= paging::OFFSET_WINDOW);
        let window = query.window;
        if capped && depth < MAX_COUNT_DEPTH && window.until - window.from > 1 {
            let middle = window.from + (window.until - window.from) / 2;
            let mut total = (0, 0);
            for half in
                [TimeWindow { from: window.from, until: middle }, TimeWindow { from: middle, until: window.until }]
            {
                let part =
                    WindowQuery::new(endpoint, config.activity_key, half, &config.extra_filters, config.scan_limit);
                let (records, requests) = self.count(&part, config, per_request, depth + 1, sample)?;
                total = (total.0 + records, total.1 + requests);
            }
            return Ok(total);
        }
        Ok((total, total.div_ceil(per_request).max(u64::from(depth == 0))))
    }
}

/// Keeps the first converted line.
struct SampleSink<'a>(&'a mut Vec<u8>);

impl MessageSink for SampleSink<'_> {
    fn buffer(&mut self) -> &mut Vec<u8> {
        self.0
    }

    fn commit(&mut self, _start: usize) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_names_carry_the_window() {
        let window = TimeWindow { from: 1_767_225_600_000, until: 1_767_398_400_000 };
        assert_eq!(
            Archive::file_name(Endpoint::Alerts.name(), window),
            "alerts_2026-01-01T000000Z_2026-01-03T000000Z.ndjson.zst"
        );
    }
}
