//! `cefwire backfill --source graph`: one pass over a time window of
//! Microsoft Graph `alerts_v2`, each alert converted to the legacy alert
//! CEF line and handed to the sink once.
//!
//! The pages come from [`GraphClient`] (token, 150/min throttle, retries)
//! walked by [`AlertPager`] (time bound moved forward instead of `$skip`);
//! each page runs through the shared record loop with backfill's bounded
//! [`SendOnce`] gate, which drops the alerts a moved time bound fetches
//! again (by `id`). This module owns that loop, its report and the dry
//! run; it does not know how the sink delivers, and reuses
//! [`BackfillReport`] / [`BackfillOutcome`] so the command reports both
//! sources alike.

use crate::api::TimeWindow;
use crate::backfill::{Archive, BackfillError, BackfillOutcome, BackfillReport, SendOnce};
use crate::cef::{CefOptions, KindChoice};
use crate::graph::{AlertPager, GraphClient, GraphConfig, GraphError, GraphPageInfo};
use crate::progress::Progress;
use crate::records::{MessageSink, NoGate, Origin, PageError, RecordConverter};
use crate::rejects::RejectLog;
use crate::stop::Stop;
use std::io;
use std::path::PathBuf;
use std::time::Instant;

/// Validated settings of `cefwire backfill --source graph`.
#[derive(Clone, Debug)]
pub struct GraphBackfillConfig {
    pub graph: GraphConfig,
    /// Alerts created in `[from, until)`.
    pub window: TimeWindow,
    pub cef: CefOptions,
    /// Keep the raw alerts as zstd NDJSON here (`graph-alerts_FROM_UNTIL.ndjson.zst`).
    pub archive_dir: Option<PathBuf>,
    pub rejects_file: Option<PathBuf>,
    pub show_rejects: u64,
    pub progress: bool,
    /// Looked at between pages: the run stops, finishes its outputs and
    /// reports itself incomplete.
    pub stop: Option<Stop>,
}

/// Where rejected alerts are said to come from: `graph alerts_v2:PAGE: record N`.
const ORIGIN: &str = "graph alerts_v2";

/// Runs the window into `sink` until it is done, an error, or the stop
/// signal; the rejects file is finished either way.
pub fn run_to_end(config: &GraphBackfillConfig, sink: &mut dyn MessageSink) -> BackfillOutcome {
    let started = Instant::now();
    let mut report =
        BackfillReport { rate_limit: Some(config.graph.rate_limit), graph: true, ..BackfillReport::default() };
    let mut rejects = RejectLog::new(config.show_rejects);
    if let Some(path) = &config.rejects_file
        && let Err(source) = rejects.keep_records_in(path)
    {
        let error = BackfillError::Archive { path: path.display().to_string(), source };
        return BackfillOutcome { report, error: Some(error) };
    }
    let mut converter = RecordConverter::new(&config.cef);
    converter.set_kind(KindChoice::GraphAlerts);
    let progress = Progress::items(config.progress, None, "backfill");
    let mut archive = Archive::new(config.archive_dir.as_deref(), config.window);
    let walked = match GraphClient::new(&config.graph) {
        Ok(mut client) => {
            if let Some(stop) = &config.stop {
                client.stop_on(stop.clone());
            }
            let mut outputs = Outputs { sink, rejects: &mut rejects, archive: &mut archive };
            let walked = walk(config, &mut client, &mut converter, &mut outputs, &progress, &mut report);
            report.client = client.stats();
            walked
        }
        Err(err) => Err(err.into()),
    };
    progress.finish();
    report.counts = converter.counts;
    let rejects_done = rejects.finish().map_err(BackfillError::Output);
    // Finished whatever stopped the run: what was fetched is a valid archive.
    let archive_done = archive.finish().map(|paths| report.archives = paths);
    report.elapsed = started.elapsed();
    BackfillOutcome { report, error: walked.err().or(rejects_done.err()).or(archive_done.err()) }
}

/// Where a page's alerts go: CEF to the sink, rejected ones to the log,
/// the raw alerts to the archive (with `--archive`).
struct Outputs<'a> {
    sink: &'a mut dyn MessageSink,
    rejects: &'a mut RejectLog,
    archive: &'a mut Archive,
}

/// The archive's file name for Graph alerts (their JSON is not the API's).
const ARCHIVE_KIND: &str = "graph-alerts";

fn walk(
    config: &GraphBackfillConfig,
    client: &mut GraphClient,
    converter: &mut RecordConverter,
    outputs: &mut Outputs<'_>,
    progress: &Progress,
    report: &mut BackfillReport,
) -> Result<(), BackfillError> {
    let stop = config.stop.as_ref();
    let mut pager = AlertPager::new(config.window.from, Some(config.window.until));
    let mut gate = SendOnce::new();
    let mut page = Vec::new();
    while let Some(url) = pager.next_url(client) {
        if stop.is_some_and(Stop::is_requested) {
            return Err(BackfillError::Interrupted);
        }
        let len = match client.fetch(&url, &mut page) {
            Err(GraphError::Stopped) => return Err(BackfillError::Interrupted),
            fetched => fetched?,
        };
        report.alerts.pages += 1;
        let number = report.alerts.pages;
        let before = converter.counts.records;
        let origin = Origin { file: ORIGIN, line: number, multi_line: false };
        let Outputs { sink, rejects, archive } = outputs;
        let info = converter
            .convert_page(origin, &mut page, len, *sink, rejects, &mut gate, |root| {
                archive.write_page(ARCHIVE_KIND, root);
                GraphPageInfo::from_page(root)
            })
            .map_err(|reason| match reason {
                PageError::Sink(err) => BackfillError::Output(err),
                reason => BackfillError::BadGraphPage { page: number, reason },
            })?;
        report.alerts.records += converter.counts.records - before;
        outputs.archive.check()?;
        pager.page_done(&info, config.graph.top)?;
        if progress.is_visible() {
            progress.set_position(report.alerts.records);
            progress.set_message(&format!("alerts_v2 page {number}"));
        }
    }
    Ok(())
}

/// `--dry-run`: one request for the window's first alert, shown as the CEF
/// line it would become, and what the run would ask for. Graph gives no
/// total for `alerts_v2`, so the count is not known before the walk.
pub fn preview(config: &GraphBackfillConfig) -> Result<Vec<String>, BackfillError> {
    let mut probe = config.graph.clone();
    probe.top = 1;
    let mut client = GraphClient::new(&probe)?;
    let url = client.window_url(
        config.window.from * crate::time::TICKS_PER_MS,
        Some(config.window.until * crate::time::TICKS_PER_MS),
    );
    let mut lines = vec![
        format!(
            "window: {} .. {} ({}), alerts by createdDateTime",
            crate::time::format_ms(config.window.from),
            crate::time::format_ms(config.window.until),
            crate::time::format_duration_ms(config.window.until - config.window.from)
        ),
        format!("filter: {}", config.graph.filter.as_deref().unwrap_or("(none: every alert)")),
    ];
    let mut page = Vec::new();
    let len = client.fetch(&url, &mut page)?;
    let mut first = SampleSink(Vec::new());
    let mut rejects = RejectLog::with_messages(0, Box::new(io::sink()));
    let mut converter = RecordConverter::new(&config.cef);
    converter.set_kind(KindChoice::GraphAlerts);
    let origin = Origin { file: ORIGIN, line: 1, multi_line: false };
    let info = converter
        .convert_page(origin, &mut page, len, &mut first, &mut rejects, &mut NoGate, GraphPageInfo::from_page)
        .map_err(|reason| BackfillError::BadGraphPage { page: 1, reason })?;
    if info.alerts == 0 {
        lines.push("alerts: none in the window".to_owned());
    } else {
        lines.push(format!(
            "alerts: at least one; read in pages of up to {} at up to {:.0} requests/min (Graph gives no total)",
            config.graph.top,
            config.graph.rate_limit.per_minute()
        ));
        if !first.0.is_empty() {
            lines.push(format!("  first alert as CEF: {}", String::from_utf8_lossy(&first.0).trim_end()));
        }
    }
    Ok(lines)
}

/// Keeps the first converted line.
struct SampleSink(Vec<u8>);

impl MessageSink for SampleSink {
    fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }

    fn commit(&mut self, start: usize) -> io::Result<()> {
        if start > 0 {
            self.0.truncate(start);
        }
        Ok(())
    }
}
