//! The agent's health, as the original agent reported it: `Connected`
//! while the API and syslog both work, `Connection error` when either has
//! been failing for more than 2 hours, `Disconnected` after 12 hours.
//!
//! The running agent keeps a [`HealthReport`] and writes it to
//! `health.json` in its state directory; `cefwire status` reads that file
//! and classifies it at the time it is asked (the time is a parameter, so
//! tests need no waiting). An agent that stopped writing the file counts
//! as failing since its last write. Each source with a link of its own
//! (Event Hubs, Graph) has its section, and its failure counts like the
//! API's. The sources that run a sender of their own (Event Hubs,
//! Storage) tell syslog's side from its counts with one [`SyslogWatch`].

use crate::send::SendReport;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Name of the health file inside the state directory.
pub const HEALTH_FILE: &str = "health.json";

/// Failing this long means `Connection error`.
pub const CONNECTION_ERROR_AFTER_MS: i64 = 2 * 3_600_000;
/// Failing this long means `Disconnected`.
pub const DISCONNECTED_AFTER_MS: i64 = 12 * 3_600_000;
/// The agent rewrites its health file at least this often; a file older
/// than twice this means the agent is not running.
pub const HEALTH_WRITE_INTERVAL_MS: i64 = 30_000;

/// The three states of the original agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HealthState {
    Connected,
    #[serde(rename = "Connection error")]
    ConnectionError,
    Disconnected,
}

impl HealthState {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Connected => "Connected",
            HealthState::ConnectionError => "Connection error",
            HealthState::Disconnected => "Disconnected",
        }
    }
}

/// One side (API or syslog) of the agent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkHealth {
    /// Last time this side worked (ms).
    pub last_success_ms: Option<i64>,
    /// Since when it has been failing without a success in between.
    pub failing_since_ms: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_ms: Option<i64>,
}

impl LinkHealth {
    pub fn success(&mut self, now_ms: i64) {
        self.last_success_ms = Some(now_ms);
        self.failing_since_ms = None;
    }

    pub fn failure(&mut self, now_ms: i64, error: &str) {
        self.failing_since_ms.get_or_insert(now_ms);
        self.last_error = Some(error.to_owned());
        self.last_error_ms = Some(now_ms);
    }
}

/// Tells from the sender's counts whether syslog takes messages, for the
/// sources that run their own sender: failing while messages wait and
/// none was written since the last look, working otherwise.
#[derive(Debug, Default)]
pub struct SyslogWatch {
    /// Messages written at the last look.
    written_at_last_check: u64,
}

impl SyslogWatch {
    /// Marks `syslog` failing or working from `report`, as of `now_ms`.
    pub fn update(&mut self, report: &SendReport, syslog: &mut LinkHealth, now_ms: i64) {
        let stalled =
            report.messages_written == self.written_at_last_check && report.messages_accepted > report.messages_written;
        self.written_at_last_check = report.messages_written;
        if stalled {
            syslog.failure(now_ms, report.last_error.as_deref().unwrap_or("no message written for a while"));
        } else {
            syslog.success(now_ms);
        }
    }
}

/// Per-stream progress.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamHealth {
    pub enabled: bool,
    /// Cursor position (ms): `created` for activities, `date` for alerts.
    pub cursor_ms: Option<i64>,
    /// `timestamp` of the newest record written to syslog.
    pub newest_sent_ms: Option<i64>,
    pub fetched: u64,
    pub sent: u64,
    pub duplicates_skipped: u64,
    pub rejected: u64,
}

/// Counters of the API client.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiCounters {
    pub requests: u64,
    pub retries: u64,
    pub throttled_429: u64,
}

/// What the agent writes to `health.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    pub version: String,
    pub pid: u32,
    pub started_ms: i64,
    pub updated_ms: i64,
    /// True once the agent has stopped cleanly.
    pub stopped: bool,
    pub api: LinkHealth,
    pub syslog: LinkHealth,
    /// Saving the checkpoint (a full or read-only state disk fails here).
    #[serde(default)]
    pub checkpoint: LinkHealth,
    pub activities: StreamHealth,
    pub alerts: StreamHealth,
    pub api_counters: ApiCounters,
    /// The Event Hubs source, when the activities come from there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eventhubs: Option<EventHubsHealth>,
    /// The Graph `alerts_v2` source, when the alerts come from there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<GraphHealth>,
    /// The Storage source, when the activities come from the archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageHealth>,
    /// The API server's clock minus the local one, while they differ by
    /// more than the agent tolerates (ms; positive: the server is ahead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_skew_ms: Option<i64>,
}

/// The Event Hubs source: the broker link, the group and each partition
/// this instance holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventHubsHealth {
    pub event_hub: String,
    pub consumer_group: String,
    /// The Kafka endpoint (errors, successful fetches and commits).
    pub broker: LinkHealth,
    /// Consumption is paused because syslog is not taking records.
    pub paused: bool,
    /// Group rebalances seen (partitions taken away or given).
    pub rebalances: u64,
    pub messages: u64,
    pub records: u64,
    /// Records written to syslog (handed over and written).
    pub sent: u64,
    pub rejected: u64,
    /// Records read again after a rebalance and dropped by `ReportId`.
    pub duplicates_skipped: u64,
    /// Streaming records of other tables, skipped on purpose.
    pub skipped_other: u64,
    /// Offsets committed (per partition and commit).
    pub commits: u64,
    pub partitions: Vec<PartitionHealth>,
    /// Set while partitions with records waiting fetch nothing (for the
    /// configured `stall_after` at least).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stalled: Option<EventHubsStall>,
    /// Stalls seen since the start.
    #[serde(default)]
    pub stalls: u64,
}

/// Partitions that fetch nothing while records wait for them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventHubsStall {
    pub partitions: Vec<i32>,
    /// Messages waiting past the position read, over those partitions.
    pub lag: i64,
    /// Since when they have fetched nothing (ms).
    pub idle_since_ms: i64,
}

impl EventHubsStall {
    /// `partitions 0, 2 have 41 messages waiting and fetch nothing`.
    fn describe(&self) -> String {
        let list = self.partitions.iter().map(i32::to_string).collect::<Vec<_>>().join(", ");
        let noun = if self.partitions.len() == 1 { "partition" } else { "partitions" };
        let verb = if self.partitions.len() == 1 { "has" } else { "have" };
        format!("{noun} {list} {verb} {} messages waiting and fetch nothing", self.lag)
    }
}

/// The Graph `alerts_v2` source: its link (Graph and the token endpoint)
/// and the client's counters. Its records are counted in `alerts`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphHealth {
    /// Graph's base URL.
    pub url: String,
    /// Graph and the token endpoint (a page fetched, or why not).
    pub api: LinkHealth,
    pub requests: u64,
    pub pages: u64,
    /// Answers 429 (each retried after its `Retry-After`).
    pub throttled_429: u64,
    pub server_errors: u64,
    pub network_errors: u64,
    pub tokens_fetched: u64,
    /// While Graph's clock (its `Date`) is behind the checkpoint: that
    /// clock and the checkpoint (ms). Windows are then left open and the
    /// checkpoint moves only with the alerts read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_behind: Option<(i64, i64)>,
}

/// The Storage source: the account link, the blobs of the look-back and
/// what was read from them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageHealth {
    pub container: String,
    pub prefix: String,
    /// The storage account (listings and reads).
    pub account: LinkHealth,
    /// Blobs within the look-back at the last listing.
    pub blobs: u64,
    pub listings: u64,
    pub bytes_read: u64,
    /// Bytes listed but not yet read (the backlog; 0 when caught up).
    pub behind_bytes: u64,
    pub records: u64,
    /// Records written to syslog.
    pub sent: u64,
    pub rejected: u64,
    /// Records whose `ReportId` was sent already (the archive is at-least-once).
    pub duplicates_skipped: u64,
    pub skipped_other: u64,
    /// Lines over the line limit, skipped (and rejected).
    pub too_long: u64,
    /// Blobs found shorter than the offset read (truncated) or created
    /// again since they were read: read again from their start.
    pub restarted_blobs: u64,
    /// Blobs deleted between their listing and their read: skipped.
    #[serde(default)]
    pub gone_blobs: u64,
    /// Checkpoints saved (offsets and ids, after syslog had the records).
    pub checkpoints: u64,
}

/// One partition this instance holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionHealth {
    pub partition: i32,
    /// The group's committed offset (the next message to read).
    pub committed: Option<i64>,
    /// The partition's end as last seen by the client.
    pub high_watermark: Option<i64>,
    /// High watermark − committed: messages not yet delivered and committed.
    pub lag: Option<i64>,
    /// Messages and records read since the partition was assigned.
    pub messages: u64,
    pub records: u64,
    /// Messages read but not yet written to syslog.
    pub in_flight: u64,
    pub last_error: Option<String>,
}

/// A report read back and judged at a given time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HealthStatus {
    pub state: HealthState,
    /// Why, in one line.
    pub reason: String,
    pub now_ms: i64,
    /// Now minus the newest record sent, over both streams.
    pub lag_ms: Option<i64>,
    pub agent_running: bool,
    pub report: HealthReport,
}

impl HealthReport {
    /// Judges the report at `now_ms`.
    pub fn classify(&self, now_ms: i64) -> HealthStatus {
        let running = !self.stopped && now_ms - self.updated_ms <= 2 * HEALTH_WRITE_INTERVAL_MS;
        let mut failing: Vec<(i64, String)> = Vec::new();
        if let Some(since) = self.api.failing_since_ms {
            failing.push((since, format!("API failing: {}", self.api.last_error.as_deref().unwrap_or("error"))));
        }
        if let Some(since) = self.syslog.failing_since_ms {
            failing.push((since, format!("syslog failing: {}", self.syslog.last_error.as_deref().unwrap_or("error"))));
        }
        if let Some(since) = self.checkpoint.failing_since_ms {
            let error = self.checkpoint.last_error.as_deref().unwrap_or("error");
            failing.push((since, format!("checkpoint failing: {error}")));
        }
        if let Some(broker) = self.eventhubs.as_ref().map(|e| &e.broker)
            && let Some(since) = broker.failing_since_ms
        {
            let error = broker.last_error.as_deref().unwrap_or("error");
            failing.push((since, format!("Event Hubs failing: {error}")));
        }
        // A stall is no error of the client's: the link looks fine while
        // nothing arrives. It counts as failing since the fetching stopped.
        if let Some(stall) = self.eventhubs.as_ref().and_then(|e| e.stalled.as_ref()) {
            failing.push((stall.idle_since_ms, format!("Event Hubs stalled: {}", stall.describe())));
        }
        if let Some(link) = self.graph.as_ref().map(|g| &g.api)
            && let Some(since) = link.failing_since_ms
        {
            let error = link.last_error.as_deref().unwrap_or("error");
            failing.push((since, format!("Graph failing: {error}")));
        }
        if let Some(account) = self.storage.as_ref().map(|s| &s.account)
            && let Some(since) = account.failing_since_ms
        {
            let error = account.last_error.as_deref().unwrap_or("error");
            failing.push((since, format!("storage failing: {error}")));
        }
        if !running {
            let why = if self.stopped { "agent stopped" } else { "agent not running (health file not updated)" };
            failing.push((self.updated_ms, why.to_owned()));
        }
        let lag_ms = [self.activities.newest_sent_ms, self.alerts.newest_sent_ms]
            .into_iter()
            .flatten()
            .max()
            .map(|newest| now_ms - newest);
        let (mut state, mut reason) = match failing.iter().min_by_key(|(since, _)| *since) {
            None => (HealthState::Connected, "API and syslog working".to_owned()),
            Some((since, why)) => {
                let down = now_ms - since;
                let state = if down > DISCONNECTED_AFTER_MS {
                    HealthState::Disconnected
                } else if down > CONNECTION_ERROR_AFTER_MS {
                    HealthState::ConnectionError
                } else {
                    HealthState::Connected
                };
                (state, format!("{why} (for {})", crate::time::format_duration_ms(down)))
            }
        };
        // A clock the agent cannot follow is an error now, not after 2 h:
        // the agent reads no further than its own clock allows.
        if let Some(skew) = self.clock_skew_ms
            && state == HealthState::Connected
            && running
        {
            state = HealthState::ConnectionError;
            reason = format!(
                "clock skew: the API server's clock is {} {} the local one",
                crate::time::format_duration_ms(skew.abs()),
                if skew > 0 { "ahead of" } else { "behind" }
            );
        }
        HealthStatus { state, reason, now_ms, lag_ms, agent_running: running, report: self.clone() }
    }

    /// Whether the API, syslog, the checkpoint or the Event Hubs broker is
    /// failing right now (however long for), or Event Hubs is stalled.
    pub fn failing_now(&self) -> bool {
        let broker =
            self.eventhubs.as_ref().is_some_and(|e| e.broker.failing_since_ms.is_some() || e.stalled.is_some());
        let graph = self.graph.as_ref().is_some_and(|g| g.api.failing_since_ms.is_some());
        let storage = self.storage.as_ref().is_some_and(|s| s.account.failing_since_ms.is_some());
        graph
            || storage
            || self.api.failing_since_ms.is_some()
            || self.syslog.failing_since_ms.is_some()
            || self.checkpoint.failing_since_ms.is_some()
            || broker
    }

    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join(HEALTH_FILE)
    }

    /// Writes the report atomically to the state directory.
    pub fn save(&self, state_dir: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).expect("health serialises");
        // Readable by everyone who may run `cefwire status` (it holds no
        // secret), whatever the umask widens.
        super::state::write_atomically_with_mode(&Self::path(state_dir), &bytes, 0o644)
    }

    /// Reads the report from the state directory.
    pub fn load(state_dir: &Path) -> Result<Self, HealthFileError> {
        let path = Self::path(state_dir);
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(HealthFileError::Missing { path }),
            Err(source) => return Err(HealthFileError::Read { path, source }),
        };
        serde_json::from_slice(&text).map_err(|source| HealthFileError::NotAReport { path, source })
    }
}

/// Why the health file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HealthFileError {
    #[error("no health file at {path}: the agent has never run with this state directory")]
    Missing { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a health report: {source}")]
    NotAReport { path: PathBuf, source: serde_json::Error },
}

impl HealthStatus {
    /// Several lines for people.
    pub fn human(&self) -> String {
        use crate::time::{format_duration_ms, format_ms};
        let r = &self.report;
        let ago = |t: Option<i64>| match t {
            Some(t) => format!("{} ({} ago)", format_ms(t), format_duration_ms(self.now_ms - t)),
            None => "never".to_owned(),
        };
        let mut out = format!("status:   {}\nreason:   {}\n", self.state.as_str(), self.reason);
        out.push_str(&format!(
            "agent:    {} (pid {}, version {}, started {}, last update {})\n",
            if self.agent_running { "running" } else { "not running" },
            r.pid,
            r.version,
            format_ms(r.started_ms),
            ago(Some(r.updated_ms))
        ));
        out.push_str(&format!(
            "lag:      {}\n",
            self.lag_ms.map_or("no record sent yet".to_owned(), format_duration_ms)
        ));
        // The Defender for Cloud Apps API is a link only while a stream reads
        // from it (activities from Event Hubs or Storage, alerts from Graph
        // do not).
        let activities_from_api = r.activities.enabled && r.eventhubs.is_none() && r.storage.is_none();
        let alerts_from_api = r.alerts.enabled && r.graph.is_none();
        let api = (activities_from_api || alerts_from_api).then_some(("API", &r.api));
        for (name, link) in api.into_iter().chain([("syslog", &r.syslog), ("checkpoint", &r.checkpoint)]) {
            out.push_str(&format!("{name:<10} last success {}", ago(link.last_success_ms)));
            if let (Some(err), Some(at)) = (&link.last_error, link.last_error_ms) {
                out.push_str(&format!("; last error {}: {err}", ago(Some(at))));
            }
            out.push('\n');
        }
        for (name, s) in [("activities", &r.activities), ("alerts", &r.alerts)] {
            if !s.enabled {
                out.push_str(&format!("{name:<11} disabled\n"));
                continue;
            }
            out.push_str(&format!(
                "{name:<11} fetched {} sent {} duplicates skipped {} rejected {}; cursor {}; newest sent {}\n",
                s.fetched,
                s.sent,
                s.duplicates_skipped,
                s.rejected,
                s.cursor_ms.map_or("-".to_owned(), format_ms),
                s.newest_sent_ms.map_or("-".to_owned(), format_ms),
            ));
        }
        if let Some(e) = &r.eventhubs {
            out.push_str(&format!(
                "eventhubs  {} in group {}{}: {} messages, {} records, {} sent, {} duplicates skipped, {} other tables \
                 skipped, {} rejected, {} commits, {} rebalances\n",
                e.event_hub,
                e.consumer_group,
                if e.paused { " (paused: syslog is not taking records)" } else { "" },
                e.messages,
                e.records,
                e.sent,
                e.duplicates_skipped,
                e.skipped_other,
                e.rejected,
                e.commits,
                e.rebalances
            ));
            out.push_str(&format!("Event Hubs last success {}", ago(e.broker.last_success_ms)));
            if let (Some(err), Some(at)) = (&e.broker.last_error, e.broker.last_error_ms) {
                out.push_str(&format!("; last error {}: {err}", ago(Some(at))));
            }
            out.push('\n');
            if let Some(stall) = &e.stalled {
                out.push_str(&format!(
                    "Event Hubs stalled: {} (nothing fetched since {}; {} stalls since the start)\n",
                    stall.describe(),
                    ago(Some(stall.idle_since_ms)),
                    e.stalls
                ));
            }
            let text = |v: Option<i64>| v.map_or("-".to_owned(), |v| v.to_string());
            for p in &e.partitions {
                out.push_str(&format!(
                    "  partition {:>3}: committed {} high watermark {} lag {}; {} records ({} messages, {} in flight)",
                    p.partition,
                    text(p.committed),
                    text(p.high_watermark),
                    text(p.lag),
                    p.records,
                    p.messages,
                    p.in_flight
                ));
                if let Some(err) = &p.last_error {
                    out.push_str(&format!("; last error: {err}"));
                }
                out.push('\n');
            }
        }
        if let Some(g) = &r.graph {
            out.push_str(&format!("Graph      last success {}", ago(g.api.last_success_ms)));
            if let (Some(err), Some(at)) = (&g.api.last_error, g.api.last_error_ms) {
                out.push_str(&format!("; last error {}: {err}", ago(Some(at))));
            }
            out.push_str(&format!(
                "\nGraph calls {} requests ({} pages), {} throttled (429), {} server errors, {} network errors, {} \
                 tokens fetched; {}\n",
                g.requests, g.pages, g.throttled_429, g.server_errors, g.network_errors, g.tokens_fetched, g.url
            ));
            if let Some((graph_now, checkpoint)) = g.clock_behind {
                out.push_str(&format!(
                    "Graph clock {} is behind the checkpoint {}: windows stay open until it is not\n",
                    format_ms(graph_now),
                    format_ms(checkpoint)
                ));
            }
        }
        if let Some(s) = &r.storage {
            out.push_str(&storage_lines(s, &ago));
        }
        if api.is_some() {
            let c = &r.api_counters;
            out.push_str(&format!(
                "API calls  {} requests, {} retries, {} throttled (429)\n",
                c.requests, c.retries, c.throttled_429
            ));
        }
        out
    }
}

/// The Storage source's lines of `status`.
fn storage_lines(s: &StorageHealth, ago: &dyn Fn(Option<i64>) -> String) -> String {
    let mut out = format!(
        "storage    {}/{}: {} blobs in the look-back, {} records, {} sent, {} duplicates skipped, {} other tables \
         skipped, {} rejected ({} lines too long), {:.1} MB read, {:.1} MB behind, {} checkpoints, {} blobs read \
         again from their start, {} deleted before they were read\n",
        s.container,
        s.prefix,
        s.blobs,
        s.records,
        s.sent,
        s.duplicates_skipped,
        s.skipped_other,
        s.rejected,
        s.too_long,
        s.bytes_read as f64 / 1e6,
        s.behind_bytes as f64 / 1e6,
        s.checkpoints,
        s.restarted_blobs,
        s.gone_blobs
    );
    out.push_str(&format!("Storage    last success {}", ago(s.account.last_success_ms)));
    if let (Some(err), Some(at)) = (&s.account.last_error, s.account.last_error_ms) {
        out.push_str(&format!("; last error {}: {err}", ago(Some(at))));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    fn running_report(now: i64) -> HealthReport {
        HealthReport { updated_ms: now, started_ms: now - 100 * HOUR, ..Default::default() }
    }

    #[test]
    fn healthy_agent_is_connected() {
        let now = 1_000 * HOUR;
        let mut r = running_report(now);
        r.api.success(now);
        r.syslog.success(now);
        r.activities.newest_sent_ms = Some(now - 90_000);
        let s = r.classify(now);
        assert_eq!(s.state, HealthState::Connected);
        assert_eq!(s.lag_ms, Some(90_000));
    }

    #[test]
    fn failing_side_turns_into_connection_error_then_disconnected() {
        let start = 1_000 * HOUR;
        let mut r = running_report(start);
        r.api.success(start);
        r.syslog.failure(start, "connection refused");
        for (after, state) in [
            (HOUR, HealthState::Connected),
            (2 * HOUR + 1, HealthState::ConnectionError),
            (12 * HOUR, HealthState::ConnectionError),
            (12 * HOUR + 1, HealthState::Disconnected),
        ] {
            r.updated_ms = start + after;
            r.syslog.failure(start + after, "connection refused");
            let s = r.classify(start + after);
            assert_eq!(s.state, state, "after {after} ms");
            assert!(s.reason.contains("syslog failing: connection refused"), "{}", s.reason);
        }
        r.syslog.success(start + 13 * HOUR);
        assert_eq!(r.classify(start + 13 * HOUR).state, HealthState::Connected);
    }

    #[test]
    fn earliest_failure_counts() {
        let now = 1_000 * HOUR;
        let mut r = running_report(now);
        r.api.failure(now - 3 * HOUR, "HTTP 503");
        r.syslog.failure(now - HOUR, "refused");
        let s = r.classify(now);
        assert_eq!(s.state, HealthState::ConnectionError);
        assert!(s.reason.starts_with("API failing: HTTP 503"), "{}", s.reason);
    }

    #[test]
    fn an_agent_that_stopped_writing_is_down_since_its_last_write() {
        let now = 1_000 * HOUR;
        let mut r = running_report(now - 13 * HOUR);
        r.api.success(now - 13 * HOUR);
        let s = r.classify(now);
        assert!(!s.agent_running);
        assert_eq!(s.state, HealthState::Disconnected);
        assert!(s.reason.contains("not running"), "{}", s.reason);
    }

    /// The Graph source's link counts like the API's: failing for more
    /// than 2 h is a connection error, and `status` and the metrics show it.
    #[test]
    fn a_failing_graph_source_is_reported() {
        let now = 1_000 * HOUR;
        let mut r = running_report(now);
        r.syslog.success(now);
        let mut graph =
            GraphHealth { url: "https://graph.microsoft.com".into(), requests: 7, ..GraphHealth::default() };
        graph.api.failure(now - 3 * HOUR, "token endpoint down");
        r.graph = Some(graph);
        assert!(r.failing_now());
        let s = r.classify(now);
        assert_eq!(s.state, HealthState::ConnectionError);
        assert!(s.reason.starts_with("Graph failing: token endpoint down"), "{}", s.reason);
        let text = s.human();
        assert!(text.contains("Graph calls 7 requests") && text.contains("last error"), "{text}");
        // Alerts from Graph, activities off: the API is no link of this agent.
        r.activities.enabled = false;
        r.alerts.enabled = true;
        let text = r.classify(now).human();
        assert!(!text.contains("API "), "no API line when no stream reads the API: {text}");
        r.activities.enabled = true;
        assert!(r.classify(now).human().contains("API "), "an API stream shows its link");
        let metrics = super::super::metrics::render(&r, now);
        assert!(metrics.contains("cefwire_graph_failing 1") && metrics.contains("cefwire_graph_requests_total 7"));
    }

    /// Partitions that fetch nothing while records wait: `status` says so
    /// at once (exit 9: failing now), naming the partitions, the lag and
    /// since when; after 2 h it is a connection error; over when cleared.
    /// A report of a version without the stall field still loads.
    #[test]
    fn a_stalled_event_hubs_consumer_is_reported() {
        let now = 1_000 * HOUR;
        let mut r = running_report(now);
        r.syslog.success(now);
        let mut e = EventHubsHealth { event_hub: "hub".into(), consumer_group: "g".into(), ..Default::default() };
        e.broker.success(now);
        r.eventhubs = Some(e);
        assert!(!r.failing_now());
        assert_eq!(r.classify(now).state, HealthState::Connected);
        let stall = EventHubsStall { partitions: vec![0, 2], lag: 41, idle_since_ms: now - 6 * 60_000 };
        r.eventhubs.as_mut().unwrap().stalled = Some(stall);
        r.eventhubs.as_mut().unwrap().stalls = 1;
        assert!(r.failing_now(), "a stall is failing now (status exit 9)");
        let s = r.classify(now);
        assert_eq!(s.state, HealthState::Connected);
        assert_eq!(
            s.reason,
            "Event Hubs stalled: partitions 0, 2 have 41 messages waiting and fetch nothing (for 6m 0s)"
        );
        let text = s.human();
        assert!(text.contains("Event Hubs stalled: partitions 0, 2 have 41 messages waiting"), "{text}");
        assert_eq!(r.classify(now + 2 * HOUR).state, HealthState::ConnectionError, "{:?}", r.classify(now + 2 * HOUR));
        let metrics = super::super::metrics::render(&r, now);
        assert!(
            metrics.contains("cefwire_eventhubs_stalled 1") && metrics.contains("cefwire_eventhubs_stalls_total 1")
        );
        let dir = tempfile::tempdir().unwrap();
        r.save(dir.path()).unwrap();
        assert_eq!(HealthReport::load(dir.path()).unwrap(), r);
        r.eventhubs.as_mut().unwrap().stalled = None;
        assert!(!r.failing_now());
        assert_eq!(r.classify(now).reason, "API and syslog working");
        assert!(super::super::metrics::render(&r, now).contains("cefwire_eventhubs_stalled 0"));
        let old = r#"{"event_hub":"hub","consumer_group":"g","broker":{"last_success_ms":null,"failing_since_ms":null,
            "last_error":null,"last_error_ms":null},"paused":false,"rebalances":0,"messages":0,"records":0,"sent":0,
            "rejected":0,"duplicates_skipped":0,"skipped_other":0,"commits":0,"partitions":[]}"#;
        let back: EventHubsHealth = serde_json::from_str(old).unwrap();
        assert_eq!((back.stalled, back.stalls), (None, 0));
    }

    #[test]
    fn save_load_and_render() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = running_report(5 * HOUR);
        r.activities.enabled = true;
        r.activities.sent = 12;
        r.save(dir.path()).unwrap();
        let back = HealthReport::load(dir.path()).unwrap();
        assert_eq!(back, r);
        let text = back.classify(5 * HOUR).human();
        assert!(text.contains("status:   Connected") && text.contains("sent 12"), "{text}");
        assert!(text.contains("alerts      disabled"), "{text}");
        let missing = HealthReport::load(&dir.path().join("nope")).unwrap_err();
        assert!(missing.to_string().contains("never run"), "{missing}");
    }

    /// Syslog fails while messages wait and none was written since the
    /// last look; it works again once one is written, or nothing waits.
    #[test]
    fn syslog_watch_marks_a_writer_that_stopped_writing() {
        let (mut watch, mut syslog) = (SyslogWatch::default(), LinkHealth::default());
        let mut report = SendReport { messages_accepted: 10, messages_written: 4, ..SendReport::default() };
        watch.update(&report, &mut syslog, 1);
        assert_eq!(syslog.failing_since_ms, None, "4 written since the start");
        watch.update(&report, &mut syslog, 2);
        assert_eq!(syslog.failing_since_ms, Some(2));
        assert_eq!(syslog.last_error.as_deref(), Some("no message written for a while"));
        report.last_error = Some("connection refused".into());
        watch.update(&report, &mut syslog, 3);
        assert_eq!((syslog.failing_since_ms, syslog.last_error.as_deref()), (Some(2), Some("connection refused")));
        report.messages_written = 10;
        watch.update(&report, &mut syslog, 4);
        assert_eq!((syslog.failing_since_ms, syslog.last_success_ms), (None, Some(4)));
        watch.update(&report, &mut syslog, 5);
        assert_eq!(syslog.failing_since_ms, None, "nothing waits");
    }
}
