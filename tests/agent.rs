//! Fault tests of `cefwire agent` (issue 5, "What must show it"): the real
//! binary against the API emulator and a real rsyslogd.
//!
//! The emulator runs in this process (`cefwire::emulate`, the code behind
//! `cefwire emulate`), loaded with NDJSON that `cefwire generate` wrote
//! (the loader of `--activities/--alerts`), so the test knows every `_id`
//! and when the emulator starts showing it. rsyslogd is started per test
//! (`util::rsyslog`: one queue worker, reserved ports held for the
//! scenario's life) and writes every message raw to a file; the agent's
//! `externalId` is read back from it.
//!
//! Every scenario ends with the same check ([`Received::check`]), made at
//! the receiver: each record the emulator holds in the window reached
//! rsyslog at least once, nothing else did, and the duplicates — every
//! `externalId` counted in rsyslog's output, with the bytes of its line —
//! stay within what the documented causes allow for the faults the
//! scenario itself caused ([`Allowance`]), never what the agent says it
//! did: a SIGKILL between writing a page and saving its ids re-sends at
//! most that page (≤ `scan_page_size` per kill), and a broken syslog
//! connection re-sends the last messages, at most 8 MiB. Overlap re-reads
//! must add none.
//!
//! The scenarios mostly wait (on an outage, on records stored in the near
//! future), so this file has its own `main` (`harness = false`) that runs
//! them in a bounded pool (`CEFWIRE_AGENT_JOBS`, default the number of
//! cores, 2–4), each on its own thread, keeping a failed scenario's files;
//! arguments that do not start with `-` select scenarios by substring.
//! rsyslog scenarios skip with a note when rsyslogd is missing, unless
//! `CEFWIRE_REQUIRE_RSYSLOG` is set. The test-only hooks they use
//! (`CEFWIRE_FAULT_DISK_FULL`, `CEFWIRE_CLOCK_OFFSET_MS`,
//! `CEFWIRE_FAULT_EVENTHUBS_NO_FETCH`) exist only in
//! builds with the `fault-hooks` feature, which `cargo test` turns on.

use cefwire::agent::health::HealthReport;
use cefwire::agent::state::{AgentState, StateStore, StreamCursor};
use cefwire::api::RateLimit;
use cefwire::emulate::{self, DataKind, DateFault, EmulatorConfig, EmulatorHandle, FaultConfig, StoreBuilder};
use cefwire::input::source::InputPath;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use util::rsyslog::Rsyslog;
use util::{cefwire, signal, wait_child, wait_until};

mod agent_graph;
mod eventhubs;
mod storage_agent;
mod util;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "agent-fault-test-token";
const SECOND: i64 = 1000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
/// `scan_page_size` in every config: small pages, so kills land mid-stream.
const PAGE: u64 = 500;
/// The agent's first-start window (its default).
const WINDOW: i64 = 48 * HOUR;

// ---------------------------------------------------------------- runner

type Scenario = fn(&Path);

const SCENARIOS: &[(&str, Scenario)] = &[
    ("eventhubs_two_agents_in_a_group_deliver_every_report_id_through_sigkills", eventhubs::group_through_sigkills),
    ("eventhubs_offsets_are_not_committed_while_syslog_is_down", eventhubs::no_commit_while_syslog_is_down),
    ("eventhubs_a_consumer_fetching_nothing_while_records_wait_is_stalled_in_status", eventhubs::stall_is_reported),
    ("graph_alerts_are_sent_once_through_faults_and_a_sigkill", agent_graph::sent_once_through_faults_and_a_sigkill),
    (
        "storage_agent_delivers_every_report_id_while_the_archive_grows_through_three_sigkills",
        storage_agent::every_report_id_through_sigkills,
    ),
    ("storage_agent_keeps_trying_an_account_nobody_answers_and_says_so", storage_agent::unreachable_account),
    ("rsyslog_down_for_a_minute_pauses_pulling_and_loses_nothing", rsyslog_down_for_a_minute),
    ("a_healthy_agent_never_sees_a_429_at_the_apis_own_limit", healthy_agent_never_sees_a_429),
    ("sigterm_stops_within_seconds_with_the_checkpoint_saved", sigterm_stops_within_seconds),
    ("sigkill_at_random_points_then_restart_loses_nothing", sigkill_at_random_points),
    ("server_errors_and_throttling_lose_nothing", server_errors_and_throttling),
    ("late_and_future_records_are_sent_once", late_and_future_records),
    ("local_clock_jumps_do_not_move_the_windows", local_clock_jumps),
    ("full_state_disk_pauses_with_a_clear_error_then_continues", full_state_disk),
    ("full_state_disk_hook_works_like_a_full_disk", full_state_disk_hook),
    ("bad_configuration_exits_2_naming_the_setting_before_any_traffic", bad_configuration),
    ("sigterm_does_not_wait_for_a_slow_api_answer", sigterm_during_a_slow_answer),
    ("a_gap_after_a_long_stop_is_named_with_the_backfill_that_fills_it", gap_after_a_long_stop),
    ("rejects_are_located_by_stream_query_and_page", rejects_are_located),
    ("the_checkpoint_is_fsynced_then_renamed_then_its_directory_fsynced", checkpoint_is_written_durably),
    ("the_systemd_directories_come_from_the_environment", systemd_directories),
    ("a_second_agent_on_the_same_state_directory_is_refused", second_agent_is_refused),
    ("a_server_date_a_day_ahead_never_moves_the_checkpoint_into_the_future", server_clock_a_day_ahead),
    ("a_server_date_of_1970_holds_a_first_start_and_an_unreadable_one_is_said", server_date_of_1970_or_unreadable),
    ("an_invalid_resend_file_is_set_aside_and_never_sent", invalid_resend_file),
    ("syslog_never_reached_is_failing_now_never_a_success", syslog_never_reached),
    ("records_count_as_sent_only_once_syslog_has_them", sent_means_written),
    ("a_lost_checkpoint_is_refused_unless_reset_state", lost_checkpoint),
    ("relp_rsyslog_killed_and_restarted_loses_nothing_and_duplicates_at_most_the_window", relp_rsyslog_down),
    ("graph_token_endpoint_down_is_failing_in_status_and_the_agent_keeps_trying", agent_graph::token_endpoint_down),
    ("graph_alerts_beside_api_activities_are_each_sent_once", agent_graph::beside_api_activities),
    ("graph_sigterm_during_a_retry_after_wait_stops_cleanly", agent_graph::sigterm_during_a_long_wait),
    ("graph_a_local_clock_hours_ahead_loses_no_alert", agent_graph::local_clock_ahead),
    ("graph_a_date_of_1970_neither_moves_the_cursor_back_nor_resends_history", agent_graph::date_of_1970),
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        // The libtest format, for tools that list tests first.
        for (name, _) in SCENARIOS {
            println!("{name}: test");
        }
        return;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let selected: Vec<&(&str, Scenario)> = SCENARIOS
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    let jobs = std::env::var("CEFWIRE_AGENT_JOBS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 4))
        .max(1);
    println!("\nrunning {} agent fault scenarios, {jobs} at a time (CEFWIRE_AGENT_JOBS)", selected.len());
    let started = Instant::now();
    // A bounded pool: each scenario runs an agent, an emulator and an
    // rsyslogd, so running them all at once would starve each other of
    // CPU on a small machine. Scenarios are taken in the listed order
    // (the longest, mostly waiting ones first).
    let queue = std::sync::Mutex::new(
        selected.iter().map(|&&(name, scenario)| (name, scenario)).collect::<std::collections::VecDeque<_>>(),
    );
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(selected.len()) {
            scope.spawn(|| {
                loop {
                    let Some((name, scenario)) = queue.lock().unwrap().pop_front() else { return };
                    let handle = std::thread::Builder::new()
                        .name(name.to_owned())
                        .spawn(move || {
                            let dir = tempfile::Builder::new().prefix("cefwire-agent-").tempdir().expect("temp dir");
                            let begun = Instant::now();
                            let outcome = std::panic::catch_unwind(|| scenario(dir.path()));
                            if let Err(panic) = outcome {
                                // Keep the logs, the state and rsyslog's output to look at.
                                eprintln!("[{name}] files kept in {}", dir.keep().display());
                                std::panic::resume_unwind(panic);
                            }
                            begun.elapsed()
                        })
                        .expect("scenario thread");
                    let outcome = handle.join();
                    match &outcome {
                        Ok(took) => println!("test {name} ... ok ({:.1} s)", took.as_secs_f64()),
                        Err(_) => println!("test {name} ... FAILED"),
                    }
                    results.lock().unwrap().push((name, outcome.is_ok()));
                }
            });
        }
    });
    let failed: Vec<&str> =
        results.into_inner().unwrap().into_iter().filter(|(_, ok)| !ok).map(|(name, _)| name).collect();
    println!(
        "\n{} passed, {} failed in {:.1} s",
        selected.len() - failed.len(),
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        println!("failed: {failed:?}");
        std::process::exit(101);
    }
}

/// Prints a line prefixed with the scenario's name.
macro_rules! note {
    ($($arg:tt)*) => {
        eprintln!("[{}] {}", std::thread::current().name().unwrap_or("?"), format!($($arg)*))
    };
}

// ---------------------------------------------------------------- helpers

fn now_ms() -> i64 {
    cefwire::time::now_ms()
}

/// Returns as soon as `file` grows; fails if it does not within 60 s (the
/// caller expects traffic: a silent receiver is a finding, not a pass).
fn wait_for_growth(file: &Path) {
    let size = || fs::metadata(file).map_or(0, |m| m.len());
    let seen = size();
    let deadline = Instant::now() + Duration::from_secs(60);
    while size() == seen {
        assert!(Instant::now() < deadline, "{} did not grow within 60 s", file.display());
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// A tiny seeded generator (splitmix64) for kill points and delays.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

// ------------------------------------------------------------------ data

/// What to generate. Past records lie in `[t0 − 47 h, t0 − 2 h]` (late
/// ones are stored up to an hour later, still in the past); "future"
/// records are stored `offset` ms after `t0`, so the emulator shows them
/// only from then on, while the agent runs.
#[derive(Default)]
struct DataSpec {
    seed: u64,
    activities: u64,
    alerts: u64,
    /// Fraction of activities stored 5–60 minutes after they happened.
    late_ratio: f64,
    /// Activities that happened 10 minutes before `t0 + offset` and are
    /// stored at `t0 + offset`.
    future_activities: Vec<i64>,
    /// Alerts dated `t0 + offset`.
    future_alerts: Vec<i64>,
    /// How far back the records go, in hours (default 47: all inside the
    /// agent's 48 h window).
    hours_back: i64,
}

/// The generated files and what the test expects from them.
struct Data {
    activities: PathBuf,
    alerts: PathBuf,
    /// Every `_id`, with the time the emulator starts showing it.
    expected: HashMap<String, i64>,
    /// When the last record becomes visible.
    newest_visible: i64,
}

impl Data {
    fn generate(dir: &Path, t0: i64, spec: &DataSpec) -> Data {
        let hours_back = if spec.hours_back == 0 { 47 } else { spec.hours_back };
        let from = (t0 - hours_back * HOUR).to_string();
        let span = format!("{}h", hours_back - 2);
        let mut expected = HashMap::new();
        let mut files = Vec::new();
        for (kind, count, future, seed) in [
            ("activities", spec.activities, &spec.future_activities, spec.seed),
            ("alerts", spec.alerts, &spec.future_alerts, spec.seed + 1),
        ] {
            let path = dir.join(format!("{kind}.ndjson"));
            let out = cefwire()
                .args(["generate", "--kind", kind, "--count", &count.to_string(), "--from", &from, "--span", &span])
                .args(["--late-ratio", &spec.late_ratio.to_string(), "--seed", &seed.to_string(), "-o"])
                .arg(&path)
                .output()
                .unwrap();
            assert!(out.status.success(), "generate: {}", String::from_utf8_lossy(&out.stderr));
            let text = fs::read_to_string(&path).unwrap();
            let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
            assert_eq!(lines.len() as u64, count);
            // Spread the future records over the file (any position will do:
            // the emulator orders by time).
            let every = (lines.len() / (future.len() + 1)).max(1);
            for (n, &offset) in future.iter().enumerate() {
                let line = &mut lines[(n + 1) * every % count as usize];
                let mut record: serde_json::Value = serde_json::from_str(line).unwrap();
                let stored = t0 + offset;
                if kind == "activities" {
                    for field in ["created", "createdRaw"] {
                        record[field] = stored.into();
                    }
                    for field in ["timestamp", "timestampRaw"] {
                        record[field] = (stored - 10 * MINUTE).into();
                    }
                } else {
                    record["timestamp"] = stored.into();
                }
                *line = serde_json::to_string(&record).unwrap();
            }
            let mut file = File::create(&path).unwrap();
            for line in &lines {
                let record: serde_json::Value = serde_json::from_str(line).unwrap();
                let id = record["_id"].as_str().unwrap().to_owned();
                let field = if kind == "activities" { "created" } else { "timestamp" };
                let visible = record[field].as_i64().unwrap();
                assert!(hours_back > 47 || visible > t0 - WINDOW + HOUR, "every record lies well inside the window");
                assert!(expected.insert(id, visible).is_none(), "ids are unique");
                writeln!(file, "{line}").unwrap();
            }
            files.push(path);
        }
        let newest_visible = expected.values().copied().max().unwrap_or(t0);
        let alerts = files.pop().unwrap();
        let activities = files.pop().unwrap();
        Data { activities, alerts, expected, newest_visible }
    }

    /// The same files, expecting only the records stored before `time`.
    fn stored_before(&self, time: i64) -> Data {
        Data {
            activities: self.activities.clone(),
            alerts: self.alerts.clone(),
            expected: self.expected.iter().filter(|&(_, &t)| t < time).map(|(k, &v)| (k.clone(), v)).collect(),
            newest_visible: time,
        }
    }

    /// How long until every record is visible, plus `margin`.
    fn all_visible_plus(&self, margin: Duration) -> Duration {
        Duration::from_millis((self.newest_visible - now_ms()).max(0) as u64) + margin
    }
}

// -------------------------------------------------------------- emulator

fn start_emulator(data: &Data, rate_limit: Option<RateLimit>, faults: FaultConfig) -> EmulatorHandle {
    let mut builder = StoreBuilder::new();
    builder.add_file(&InputPath::File(data.activities.clone()), DataKind::Activities).unwrap();
    builder.add_file(&InputPath::File(data.alerts.clone()), DataKind::Alerts).unwrap();
    assert_eq!(builder.counts.activities + builder.counts.alerts, data.expected.len() as u64);
    assert_eq!(builder.counts.skipped, 0);
    let mut config = EmulatorConfig::new("127.0.0.1:0".parse().unwrap(), TOKEN);
    config.rate_limit = rate_limit;
    config.faults = faults;
    emulate::start(config, Arc::new(builder.build())).unwrap()
}

/// Every request answered only after `delay`: stretches a run so that
/// signals land in the middle of it.
fn slow(delay_ms: u64) -> FaultConfig {
    FaultConfig { slow: 1.0, slow_delay: Duration::from_millis(delay_ms), ..FaultConfig::default() }
}

// ----------------------------------------------------------------- agent

/// Where a scenario keeps its agent's files.
struct AgentFiles {
    config: PathBuf,
    state: PathBuf,
    /// stderr of every run, appended.
    log: PathBuf,
}

impl AgentFiles {
    /// A config for the emulator at `url` and syslog on `syslog_port`:
    /// fast polling, no API rate limit to speak of, small scan pages, no
    /// host name. `extra` goes at the top level.
    fn new(dir: &Path, url: &str, syslog_port: u16, extra: &str) -> AgentFiles {
        AgentFiles::with_rate_limit(dir, url, syslog_port, &format!("rate_limit = 6000\n{extra}"))
    }

    /// The same with the agent's default API rate limit (30 requests a
    /// minute) unless `extra` sets one.
    fn with_rate_limit(dir: &Path, url: &str, syslog_port: u16, extra: &str) -> AgentFiles {
        let state = dir.join("state");
        let config = dir.join("cefwire.toml");
        fs::write(
            &config,
            format!(
                "portal_url = \"{url}\"\nstate_directory = \"{}\"\npoll_interval = \"1s\"\n\
                 scan_page_size = {PAGE}\n{extra}\n[auth]\ntoken = \"{TOKEN}\"\n[syslog]\n\
                 to = [\"tcp://127.0.0.1:{syslog_port}\"]\n[cef]\nhostname = false\n",
                state.display()
            ),
        )
        .unwrap();
        AgentFiles { config, state, log: dir.join("agent.log") }
    }

    fn spawn(&self, args: &[&str], env: &[(&str, String)]) -> Agent {
        let log = OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let mut command = cefwire();
        command.arg("agent").arg("--config").arg(&self.config).args(args);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).spawn().unwrap();
        Agent { child, log: self.log.clone() }
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn state(&self) -> Option<AgentState> {
        StateStore::new(&self.state).load().unwrap_or_else(|e| panic!("the state file must always parse: {e}"))
    }

    /// The activities cursor, if saved yet.
    fn activities_cursor(&self) -> Option<i64> {
        self.state().and_then(|s| s.activities.position_ms)
    }

    fn health(&self) -> HealthReport {
        HealthReport::load(&self.state).unwrap()
    }

    /// `cefwire status --json` for this state directory.
    fn status(&self, env: &[(&str, String)]) -> serde_json::Value {
        let mut command = cefwire();
        command.args(["status", "--json", "--state-dir"]).arg(&self.state);
        for (key, value) in env {
            command.env(key, value);
        }
        let out = command.output().unwrap();
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("status --json: {e}: {}", String::from_utf8_lossy(&out.stdout)))
    }

    /// Waits until the activities cursor passed `position`.
    fn wait_for_cursor(&self, agent: &mut Agent, position: i64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.activities_cursor().is_none_or(|c| c < position) {
            if let Some(status) = agent.child.try_wait().unwrap() {
                panic!("the agent exited ({status}) before its cursor passed {position}:\n{}", self.log_text());
            }
            assert!(Instant::now() < deadline, "the cursor did not pass {position} in {timeout:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A running agent; killed when dropped.
struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `sig` (SIGTERM, SIGINT), then the time it took to exit and how.
    fn stop_with(&mut self, sig: i32, timeout: Duration) -> (Duration, ExitStatus) {
        let sent = Instant::now();
        signal(&self.child, sig);
        match wait_child(&mut self.child, timeout) {
            Some(status) => (sent.elapsed(), status),
            None => panic!(
                "the agent did not exit within {timeout:?} of signal {sig}:\n{}",
                fs::read_to_string(&self.log).unwrap_or_default()
            ),
        }
    }

    /// Waits for a `--once` run to finish; it must succeed.
    fn finish(&mut self, timeout: Duration) {
        match wait_child(&mut self.child, timeout) {
            Some(status) if status.success() => {}
            Some(status) => panic!("the agent failed ({status}):\n{}", fs::read_to_string(&self.log).unwrap()),
            None => panic!("the agent did not finish in {timeout:?}:\n{}", fs::read_to_string(&self.log).unwrap()),
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.sigkill();
        }
    }
}

/// SIGTERM must end the agent cleanly. The README says "within seconds";
/// on a loaded machine that is checked with a generous 60 s bound (what
/// matters is that it neither hangs on syslog nor on the API).
fn stop_agent(agent: &mut Agent) -> Duration {
    stop_agent_with(agent, libc::SIGTERM)
}

/// The same with another stop signal (SIGINT: Ctrl-C).
fn stop_agent_with(agent: &mut Agent, sig: i32) -> Duration {
    let (took, status) = agent.stop_with(sig, Duration::from_secs(60));
    assert!(status.success(), "signal {sig}: exit {status}:\n{}", fs::read_to_string(&agent.log).unwrap());
    took
}

// -------------------------------------------------------------- delivery

/// The documented cap of the re-send after a broken syslog connection
/// (README: "the last messages (up to 8 MiB) are sent again").
const RESEND_CAP_BYTES: u64 = 8 << 20;

/// What the documented causes of duplicates allow, counted from the faults
/// the scenario itself caused — never from what the agent says it did.
#[derive(Clone, Copy, Debug, Default)]
struct Allowance {
    /// Crashes (SIGKILL), or stops while syslog is down, each of which may
    /// re-send at most the page it interrupted ("at most one page per
    /// crash"): at most `PAGE` records each.
    pages: u64,
    /// Broken syslog connections (a reconnection, or a start that sends the
    /// window a previous run saved), each of which may re-send the last
    /// messages: at most 8 MiB of them each.
    resends: u64,
}

/// One record as rsyslog wrote it.
struct Copies {
    count: u32,
    /// Length of its line (the message as received).
    bytes: u64,
    /// Offset of its first copy in the output file.
    first_at: u64,
}

/// What rsyslog wrote, read incrementally: `externalId` → its copies.
struct Received {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    ids: HashMap<String, Copies>,
    /// Lines without an `externalId`.
    malformed: Vec<String>,
}

impl Received {
    fn new(path: &Path) -> Received {
        Received { path: path.to_owned(), offset: 0, partial: Vec::new(), ids: HashMap::new(), malformed: vec![] }
    }

    fn update(&mut self) {
        let Ok(mut file) = File::open(&self.path) else { return };
        let len = file.metadata().unwrap().len();
        if len < self.offset {
            // A torn last line was cut off (see `Rsyslog::kill`).
            assert_eq!(len, self.offset - self.partial.len() as u64, "the output file shrank by the torn line only");
            self.offset = len;
            self.partial.clear();
        }
        file.seek(SeekFrom::Start(self.offset)).unwrap();
        let mut bytes = std::mem::take(&mut self.partial);
        let start = self.offset - bytes.len() as u64;
        let read = file.read_to_end(&mut bytes).unwrap();
        self.offset += read as u64;
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        self.partial = bytes.split_off(complete);
        let mut at = start;
        for line in bytes.split_inclusive(|&b| b == b'\n') {
            let line_at = at;
            at += line.len() as u64;
            let line = line.strip_suffix(b"\n").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            match util::external_id(line) {
                Some(id) => {
                    let copies = self.ids.entry(String::from_utf8_lossy(id).into_owned()).or_insert(Copies {
                        count: 0,
                        bytes: line.len() as u64,
                        first_at: line_at,
                    });
                    copies.count += 1;
                }
                None => self.malformed.push(String::from_utf8_lossy(line).chars().take(200).collect()),
            }
        }
    }

    fn missing(&self, data: &Data) -> usize {
        data.expected.keys().filter(|id| !self.ids.contains_key(*id)).count()
    }

    /// Extra copies and their bytes so far.
    fn duplicates(&self) -> (u64, u64) {
        self.ids.values().fold((0, 0), |(n, b), c| (n + u64::from(c.count - 1), b + u64::from(c.count - 1) * c.bytes))
    }

    /// Waits until every expected record arrived.
    fn wait_for_all(&mut self, data: &Data, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            self.update();
            let missing = self.missing(data);
            if missing == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{missing} of {} records did not reach rsyslog within {timeout:?}",
                data.expected.len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// With the agent stopped: lets rsyslog write what it has, stops it
    /// and reads the rest.
    fn settle(&mut self, rsyslog: &mut Rsyslog) {
        Rsyslog::wait_until_quiet(&self.path, Duration::from_millis(500), Duration::from_secs(60));
        rsyslog.stop();
        self.update();
    }

    /// The common final check: every record of the window arrived, nothing
    /// else did, and the duplicates stay within what the documented causes
    /// allow for the faults this scenario caused: at most `PAGE` records
    /// per interrupted page and at most 8 MiB per broken connection, as
    /// counted here at the receiver. Returns (copies, bytes) of duplicates.
    fn check(&self, data: &Data, allowed: Allowance, causes: &str) -> (u64, u64) {
        let mut missing: Vec<&String> = data.expected.keys().filter(|id| !self.ids.contains_key(*id)).collect();
        missing.sort_by_key(|id| data.expected[*id]);
        let unknown: Vec<&String> = self.ids.keys().filter(|id| !data.expected.contains_key(*id)).collect();
        assert!(
            missing.is_empty(),
            "{} of {} records never reached rsyslog; the first (stored at {:?}): {:?}",
            missing.len(),
            data.expected.len(),
            missing.iter().take(5).map(|id| data.expected[*id]).collect::<Vec<_>>(),
            &missing[..missing.len().min(5)]
        );
        assert!(unknown.is_empty(), "rsyslog got records the emulator does not hold: {unknown:?}");
        assert!(self.malformed.is_empty(), "rsyslog got lines without an externalId: {:?}", self.malformed);
        let (copies, bytes) = self.duplicates();
        let most = self.ids.values().map(|c| c.count).max().unwrap_or(0);
        let longest = self.ids.values().map(|c| c.bytes).max().unwrap_or(0);
        let shortest = self.ids.values().map(|c| c.bytes).min().unwrap_or(1).max(1);
        // Page re-sends add at most PAGE records (of at most `longest` bytes)
        // each; resends add at most 8 MiB each (of at least `shortest`).
        let copy_limit = allowed.pages * PAGE + allowed.resends * RESEND_CAP_BYTES.div_ceil(shortest);
        let byte_limit = allowed.pages * PAGE * longest + allowed.resends * RESEND_CAP_BYTES;
        assert!(
            copies <= copy_limit && bytes <= byte_limit,
            "{copies} duplicates ({bytes} bytes; one record {most} times), but {allowed:?} allows {copy_limit} \
             ({byte_limit} bytes): {causes}"
        );
        note!(
            "delivery: all {} records arrived; {copies} duplicates, {bytes} bytes (limit {copy_limit}, {byte_limit} \
             bytes for {allowed:?}: {causes})",
            data.expected.len()
        );
        (copies, bytes)
    }

    /// Bytes of the output file's complete lines so far.
    fn size(&self) -> u64 {
        self.offset - self.partial.len() as u64
    }

    /// Extra copies of records whose first copy lies before `offset` — and
    /// how far before it the earliest of them lies, in bytes.
    fn duplicates_first_seen_before(&self, offset: u64) -> (u64, u64) {
        self.ids
            .values()
            .filter(|c| c.count > 1 && c.first_at < offset)
            .fold((0, 0), |(n, depth), c| (n + u64::from(c.count - 1), depth.max(offset - c.first_at)))
    }
}

// ------------------------------------------------------------- scenarios

/// (1) SIGKILL at random points of a backfill, several times, then a run
/// to completion: nothing lost, at most one page re-sent per kill, and the
/// state file parses after every kill.
fn sigkill_at_random_points(dir: &Path) {
    if !Rsyslog::available() {
        return;
    }
    let t0 = now_ms();
    let spec = DataSpec { seed: 11, activities: 30_000, alerts: 1_500, late_ratio: 0.2, ..DataSpec::default() };
    let data = Data::generate(dir, t0, &spec);
    let emulator = start_emulator(&data, None, slow(15));
    let mut rsyslog = Rsyslog::start(&dir.join("rsyslog"));
    let files = AgentFiles::new(dir, &emulator.base_url(), rsyslog.port(), "");
    let mut dice = Dice(0x5EED_0001);
    const KILLS: u64 = 6;
    let (start, span) = (t0 - WINDOW, WINDOW - 2 * HOUR);
    let mut received = Received::new(&rsyslog.out);
    let mut duplicates_before = 0;
    for kill in 0..KILLS {
        let mut agent = files.spawn(&[], &[]);
        // A random point in this kill's share of the backlog, then a random
        // few milliseconds more: the kill lands anywhere in the loop.
        let share = (kill as f64 + 0.2 + 0.6 * dice.unit()) / (KILLS + 1) as f64;
        let target = start + (span as f64 * share) as i64;
        files.wait_for_cursor(&mut agent, target, Duration::from_secs(120));
        if kill % 2 == 0 {
            std::thread::sleep(Duration::from_micros(dice.next() % 40_000));
        } else {
            // Right after rsyslog wrote more: most likely between a page
            // written to syslog and its ids saved (the duplicate window).
            wait_for_growth(&rsyslog.out);
        }
        agent.sigkill();
        let cursor = files.activities_cursor().expect("a checkpoint was saved");
        received.update();
        // The run that ended here re-sent at most the page the previous
        // kill interrupted: counted per id at the receiver.
        let (duplicates, _) = received.duplicates();
        note!(
            "kill {}: cursor at {:.0}% of the backlog, {} records in rsyslog so far, {} new duplicates",
            kill + 1,
            (cursor - start) as f64 * 100.0 / span as f64,
            received.ids.len(),
            duplicates - duplicates_before
        );
        assert!(
            duplicates - duplicates_before <= PAGE,
            "run {} re-sent {} records after a SIGKILL: more than the one page ({PAGE}) it may",
            kill + 1,
            duplicates - duplicates_before
        );
        duplicates_before = duplicates;
    }
    // One more kill, while rsyslog is down: it died as a page arrived, so
    // part of that page died with it, though the agent had written it all.
    // The agent saves its last messages when it notices; the next run sends
    // them first.
    let mut agent = files.spawn(&[], &[]);
    wait_for_growth(&rsyslog.out);
    rsyslog.kill();
    let saved = files.state.join("resend.bin");
    wait_until(Duration::from_secs(60), "the agent to save its last messages", || saved.exists());
    agent.sigkill();
    rsyslog.launch();
    let mut last = files.spawn(&["--once"], &[]);
    last.finish(Duration::from_secs(300));
    received.settle(&mut rsyslog);
    received.check(
        &data,
        Allowance { pages: KILLS + 1, resends: 1 },
        "a SIGKILL re-sends at most the page it interrupted; the next start sends the saved last messages once",
    );
    assert!(!saved.exists(), "resend.bin is removed once its messages are written");
}

/// (2) rsyslog killed for a minute while the agent runs and records keep
/// arriving: the agent stops pulling (the emulator's request count stands
/// still), `cefwire status` shows the failing syslog, and after rsyslog is
/// back nothing is lost. More than 8 MiB were sent before the outage, so
/// the re-send after reconnecting meets its cap: at the receiver the
/// duplicates are at most 8 MiB, all of them messages that arrived in the
/// last 8 MiB before rsyslog died.
fn rsyslog_down_for_a_minute(dir: &Path) {
    if !Rsyslog::available() {
        return;
    }
    let t0 = now_ms();
    // One record stored every second for 90 s: they keep coming during the outage.
    let future: Vec<i64> = (0..90).map(|i| 5 * SECOND + i * SECOND).collect();
    let spec = DataSpec {
        seed: 21,
        activities: 14_000,
        alerts: 400,
        late_ratio: 0.2,
        future_activities: future,
        future_alerts: vec![20 * SECOND, 50 * SECOND],
        ..DataSpec::default()
    };
    let data = Data::generate(dir, t0, &spec);
    let emulator = start_emulator(&data, None, FaultConfig::default());
    let mut rsyslog = Rsyslog::start(&dir.join("rsyslog"));
    let files = AgentFiles::new(dir, &emulator.base_url(), rsyslog.port(), "");
    let mut agent = files.spawn(&[], &[]);
    let mut received = Received::new(&rsyslog.out);
    received.wait_for_all(&data.stored_before(t0), Duration::from_secs(180));

    let status = files.status(&[]);
    assert_eq!(status["state"], "Connected", "{status}");
    assert_eq!(status["agent_running"], true, "{status}");
    assert_eq!(status["reason"], "API and syslog working", "{status}");
    let before = emulator.stats().api_requests;
    wait_until(Duration::from_secs(60), "the agent to poll while caught up", || {
        emulator.stats().api_requests >= before + 2
    });

    rsyslog.kill();
    let killed = Instant::now();
    received.update();
    let kill_offset = received.size();
    assert!(kill_offset > RESEND_CAP_BYTES, "more than 8 MiB were sent before the outage ({kill_offset} bytes)");
    note!("rsyslog killed at t0 + {:.1} s after {kill_offset} bytes", (now_ms() - t0) as f64 / 1000.0);
    wait_until(Duration::from_secs(60), "status to show the syslog failure", || {
        files.status(&[])["reason"].as_str().is_some_and(|r| r.contains("syslog failing"))
    });
    let status = files.status(&[]);
    assert_eq!(status["state"], "Connected", "failing for less than 2 h is still Connected: {status}");
    // The agent knows syslog is down: from a few seconds on (a request in
    // flight may still end), it must not ask the API for more for 30 s.
    std::thread::sleep(Duration::from_secs(5));
    let paused_at = emulator.stats().api_requests;
    let quiet_from = Instant::now();
    std::thread::sleep(Duration::from_secs(30).max(Duration::from_secs(60).saturating_sub(killed.elapsed())));
    let during = emulator.stats().api_requests - paused_at;
    note!(
        "while rsyslog was down: {during} API requests in {:.0} s (while caught up it polled about once a second)",
        quiet_from.elapsed().as_secs_f64()
    );
    assert!(during <= 1, "the agent kept pulling while syslog was down: {during} requests");
    assert!(agent.child.try_wait().unwrap().is_none(), "the agent waits, it does not exit");

    rsyslog.launch();
    note!("rsyslog back after {:.1} s", killed.elapsed().as_secs_f64());
    received.wait_for_all(&data, data.all_visible_plus(Duration::from_secs(120)));
    wait_until(Duration::from_secs(60), "status to show syslog working again", || {
        files.status(&[])["reason"] == "API and syslog working"
    });
    stop_agent(&mut agent);
    received.settle(&mut rsyslog);
    let (copies, bytes) = received.check(
        &data,
        Allowance { pages: 0, resends: 1 },
        "after reconnecting, the agent re-sends its last messages, at most 8 MiB",
    );
    // Those re-sent copies are the newest messages: none reaches back
    // further than 8 MiB before the break. (A message rsyslog lost may also
    // arrive twice after it, from the sender's retry of its unfinished
    // batch and from the re-send; the byte cap above covers those too.)
    let (before_break, depth) = received.duplicates_first_seen_before(kill_offset);
    assert!(before_break > 0, "the agent re-sent its last messages after reconnecting (none arrived twice)");
    assert!(
        depth <= RESEND_CAP_BYTES,
        "the agent re-sent a message that arrived {depth} bytes before rsyslog died: not among the last 8 MiB"
    );
    note!(
        "re-sent after the outage: {copies} copies ({before_break} of messages rsyslog had), {bytes} bytes, \
         reaching back {depth} bytes"
    );
}

/// (3) 5xx bursts, random 5xx and 429s (the emulator allows fewer
/// requests than the agent is configured for): slower, nothing lost, no
/// duplicates; the API failure shows in `cefwire status` during the burst.
fn server_errors_and_throttling(dir: &Path) {
    if !Rsyslog::available() {
        return;
    }
    let t0 = now_ms();
    let spec = DataSpec { seed: 31, activities: 12_000, alerts: 600, late_ratio: 0.2, ..DataSpec::default() };
    let data = Data::generate(dir, t0, &spec);
    let baseline = FaultConfig { error_5xx: 0.1, ..FaultConfig::default() };
    let limit = RateLimit { requests: 25, per: Duration::from_secs(3) };
    let emulator = start_emulator(&data, Some(limit), baseline);
    let mut rsyslog = Rsyslog::start(&dir.join("rsyslog"));
    let files = AgentFiles::new(dir, &emulator.base_url(), rsyslog.port(), "");
    let mut agent = files.spawn(&["--once"], &[]);
    files.wait_for_cursor(&mut agent, t0 - WINDOW + WINDOW * 2 / 5, Duration::from_secs(90));
    // A burst: every request fails until the status shows it.
    emulator.set_faults(FaultConfig { error_5xx: 1.0, ..FaultConfig::default() });
    let burst = Instant::now();
    let burst_ms = now_ms();
    wait_until(Duration::from_secs(120), "status to show the API failing since the burst", || {
        let status = files.status(&[]);
        status["reason"].as_str().is_some_and(|r| r.contains("API failing"))
            && status["report"]["api"]["failing_since_ms"].as_i64().is_some_and(|t| t >= burst_ms)
    });
    emulator.set_faults(baseline);
    note!("5xx burst for {:.1} s", burst.elapsed().as_secs_f64());
    agent.finish(Duration::from_secs(180));
    let stats = emulator.stats();
    let health = files.health();
    note!("emulator: {}", stats.summary());
    assert!(stats.throttled > 0 && stats.injected_5xx > 0, "both faults happened: {}", stats.summary());
    assert!(health.api_counters.throttled_429 > 0 && health.api_counters.retries > 0, "{:?}", health.api_counters);
    let mut received = Received::new(&rsyslog.out);
    received.wait_for_all(&data, Duration::from_secs(120));
    received.settle(&mut rsyslog);
    received.check(&data, Allowance::default(), "API errors cause retries, never duplicates");
}

/// (4) Late records (stored 5–60 minutes after they happened) and records
/// stored in the near future, which the emulator shows only from then on:
/// all of them arrive, none twice, and the overlap re-reads were dropped
/// by id.
fn late_and_future_records(dir: &Path) {
    if !Rsyslog::available() {
        return;
    }
    let t0 = now_ms();
    let spec = DataSpec {
        seed: 41,
        activities: 8_000,
        alerts: 400,
        late_ratio: 0.5,
        future_activities: (4..=30).map(|s| s * SECOND).collect(),
        future_alerts: vec![8 * SECOND, 16 * SECOND, 24 * SECOND],
        ..DataSpec::default()
    };
    let data = Data::generate(dir, t0, &spec);
    let emulator = start_emulator(&data, None, FaultConfig::default());
    let mut rsyslog = Rsyslog::start(&dir.join("rsyslog"));
    let files = AgentFiles::new(dir, &emulator.base_url(), rsyslog.port(), "overlap = \"5m\"");
    let metrics_port = util::ports::reserve();
    let metrics_addr = format!("127.0.0.1:{}", metrics_port.port());
    let mut agent = files.spawn(&["--metrics", &metrics_addr], &[]);
    let mut received = Received::new(&rsyslog.out);
    received.wait_for_all(&data, data.all_visible_plus(Duration::from_secs(120)));
    // A few more polls over the overlap must not send anything again.
    let polls = emulator.stats().api_requests;
    wait_until(Duration::from_secs(120), "three more polls", || emulator.stats().api_requests >= polls + 3);
    // `--metrics` end to end: what Prometheus would scrape now agrees with
    // what the receiver and the emulator saw.
    let before = emulator.stats().api_requests;
    let metrics = scrape(&metrics_addr);
    let after = emulator.stats().api_requests;
    let sent = metric(&metrics, "cefwire_records_sent_total{stream=\"activities\"}")
        + metric(&metrics, "cefwire_records_sent_total{stream=\"alerts\"}");
    assert_eq!(sent, data.expected.len() as f64, "records sent, as the receiver counted them:\n{metrics}");
    let requests = metric(&metrics, "cefwire_api_requests_total");
    assert!(
        (before as f64 - 1.0..=after as f64).contains(&requests),
        "API requests: the emulator saw {before}–{after}, the metric says {requests}:\n{metrics}"
    );
    assert!(metric(&metrics, "cefwire_records_duplicate_total{stream=\"activities\"}") > 0.0, "{metrics}");
    assert_eq!(metric(&metrics, "cefwire_api_throttled_total"), 0.0, "{metrics}");
    assert_eq!(metric(&metrics, "cefwire_health{state=\"Connected\"}"), 1.0, "{metrics}");
    assert_eq!(metric(&metrics, "cefwire_health{state=\"Disconnected\"}"), 0.0, "{metrics}");
    stop_agent(&mut agent);
    received.settle(&mut rsyslog);
    received.check(&data, Allowance::default(), "the overlap re-reads are dropped by id");
    let health = files.health();
    assert!(health.activities.duplicates_skipped > 0, "the overlap re-read records: {:?}", health.activities);
    note!(
        "overlap re-reads dropped by id: {}",
        health.activities.duplicates_skipped + health.alerts.duplicates_skipped
    );
}

/// Records the agent cannot convert (here: no `_id`) go through the shared
/// record loop's reject log: each is logged as
/// `rejected STREAM@QUERY_START:PAGE: record N: reason` (a real position,
/// not `alerts:0`), kept as it came in `rejects.ndjson` in the state
/// directory (before: stderr only, 20 a process, nothing kept), counted in
/// the health, and the records around them are delivered once.
fn rejects_are_located(dir: &Path) {
    if !Rsyslog::available() {
        return;
    }
    let t0 = now_ms();
    let spec = DataSpec { seed: 91, activities: 1_500, alerts: 200, ..DataSpec::default() };
    let mut data = Data::generate(dir, t0, &spec);
    // Take the `_id` away from two activities and one alert.
    let mut rejected = Vec::new();
    for (path, lines) in [(&data.activities, [100, 900]), (&data.alerts, [50, 50])] {
        let text = fs::read_to_string(path).unwrap();
        let mut out = String::new();
        for (n, line) in text.lines().enumerate() {
            let mut record: serde_json::Value = serde_json::from_str(line).unwrap();
            if lines.contains(&n) {
                let id = record.as_object_mut().unwrap().remove("_id").unwrap();
                data.expected.remove(id.as_str().unwrap());
                rejected.push(record.clone());
            }
            out.push_str(&serde_json::to_string(&record).unwrap());
            out.push('\n');
        }
        fs::write(path, out).unwrap();
    }
    let mut builder = StoreBuilder::new();
    builder.add_file(&InputPath::File(data.activities.clone()), DataKind::Activities).unwrap();
    builder.add_file(&InputPath::File(data.alerts.clone()), DataKind::Alerts).unwrap();
    assert_eq!(builder.counts.activities + builder.counts.alerts, data.expected.len() as u64 + 3, "stored all");
    let emulator =
        emulate::start(EmulatorConfig::new("127.0.0.1:0".parse().unwrap(), TOKEN), Arc::new(builder.build())).unwrap();
    let mut rsyslog = Rsyslog::start(&dir.join("rsyslog"));
    let files = AgentFiles::new(dir, &emulator.base_url(), rsyslog.port(), "");
    files.spawn(&["--once"], &[]).finish(Duration::from_secs(120));
    let mut received = Received::new(&rsyslog.out);
    received.settle(&mut rsyslog);
    received.check(&data, Allowance::default(), "a reject stops nothing and duplicates nothing");
    let health = files.health();
    assert_eq!((health.activities.rejected, health.alerts.rejected), (2, 1), "counted per stream");
    let kept: Vec<serde_json::Value> = fs::read_to_string(files.state.join("rejects.ndjson"))
        .expect("rejects.ndjson in the state directory")
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON record ({e}): {line}")))
        .collect();
    let sorted = |mut records: Vec<serde_json::Value>| {
        records.sort_by_key(|r| r.to_string());
        records
    };
    assert_eq!(sorted(kept), sorted(rejected), "each rejected record kept once, as it came");
    let log = files.log_text();
    let located: Vec<(&str, i64, u64, u64)> = log
        .lines()
        .filter(|line| line.ends_with("record has no usable \"_id\""))
        .map(|line| {
            // … WARN  rejected activities@2026-11-27T10:00:00.000Z:3: record 17: record has no usable "_id"
            let (_, line) = line.split_once(" rejected ").unwrap_or_else(|| panic!("not a reject line: {line}"));
            let (stream, rest) = line.split_once('@').unwrap_or_else(|| panic!("no stream: {line}"));
            let (query, rest) = rest.split_once("Z:").unwrap_or_else(|| panic!("no query start: {line}"));
            let (page, rest) = rest.split_once(": record ").unwrap_or_else(|| panic!("no page: {line}"));
            let record = rest.split(':').next().unwrap();
            let query = cefwire::time::parse_time_ms(&format!("{query}Z")).unwrap();
            (stream, query, page.parse().unwrap(), record.parse().unwrap())
        })
        .collect();
    let streams: Vec<&str> = located.iter().map(|l| l.0).collect();
    assert_eq!(
        (streams.iter().filter(|s| **s == "activities").count(), streams.iter().filter(|s| **s == "alerts").count()),
        (2, 1),
        "each reject reported once, with its stream:\n{log}"
    );
    for &(stream, query, page, record) in &located {
        assert!((t0 - WINDOW - HOUR..t0).contains(&query), "{stream}: the query start lies in the window");
        assert!(page >= 1 && (1..=PAGE).contains(&record), "{stream}: a real page and record: {page}, {record}");
    }
    note!("rejects located: {located:?}");
}

/// (5) The local clock jumps 6 h ahead on one restart and 6 h back on the
/// next. Ahead, the windows follow the API server's clock; behind, the
/// agent reads no further than its own clock + 5 min (issue 10: a clock
/// it cannot check is not followed into the future) and waits. Either way
/// `status` says "clock skew", and once the clock is right nothing has
/// been lost (records stored in the near future included) and nothing is
/// sent twice.
fn local_clock_jumps(dir: &Path) {
    if !Rsyslog::available() {
        return;
    }
    let t0 = now_ms();
    let spec = DataSpec {
        seed: 51,
        activities: 20_000,
        alerts: 1_000,
        late_ratio: 0.1,
        future_activities: (5..=20).map(|s| s * 2 * SECOND).collect(),
        future_alerts: vec![15 * SECOND, 30 * SECOND],
        ..DataSpec::default()
    };
    let data = Data::generate(dir, t0, &spec);
    let emulator = start_emulator(&data, None, slow(15));
    let mut rsyslog = Rsyslog::start(&dir.join("rsyslog"));
    let files = AgentFiles::new(dir, &emulator.base_url(), rsyslog.port(), "");
    let (start, span) = (t0 - WINDOW, WINDOW - 2 * HOUR);
    let offset = |hours: i64| vec![(cefwire::fault_hooks::CLOCK_OFFSET_ENV, (hours * HOUR).to_string())];

    let mut agent = files.spawn(&[], &[]);
    files.wait_for_cursor(&mut agent, start + span * 3 / 10, Duration::from_secs(180));
    stop_agent(&mut agent);

    // The local clock 6 h ahead: the agent reads by the server's clock
    // (the records are stored by it), and says the clocks disagree.
    let ahead = offset(6);
    let mut agent = files.spawn(&[], &ahead);
    files.wait_for_cursor(&mut agent, start + span * 7 / 10, Duration::from_secs(180));
    wait_until(Duration::from_secs(60), "status to show the clock skew", || {
        let status = files.status(&ahead);
        status["state"] == "Connection error" && status["reason"].as_str().is_some_and(|r| r.contains("clock skew"))
    });
    stop_agent(&mut agent);
    assert!(files.log_text().contains("6h 0m ahead of the API server's"), "{}", files.log_text());

    // The local clock 6 h behind: the agent never reads past its own clock
    // + 5 min (a server clock it cannot check might be the wrong one), so
    // the newest 6 h wait; nothing is skipped, the checkpoint stays there.
    let behind = offset(-6);
    let before = files.activities_cursor().expect("a checkpoint");
    let mut agent = files.spawn(&[], &behind);
    let ceiling = |at: i64| at - 6 * HOUR + 5 * MINUTE;
    wait_until(Duration::from_secs(60), "status to show the clock skew", || {
        files.status(&behind)["reason"].as_str().is_some_and(|r| r.contains("clock skew"))
    });
    stop_agent(&mut agent);
    let cursor = files.activities_cursor().expect("a checkpoint");
    assert!(cursor <= before.max(ceiling(now_ms())), "the cursor moved past the local clock + 5 min");
    assert!(files.log_text().contains("behind the API server's"), "{}", files.log_text());

    // The clock set right: the rest arrives, nothing twice.
    let mut agent = files.spawn(&[], &[]);
    let mut received = Received::new(&rsyslog.out);
    received.wait_for_all(&data, data.all_visible_plus(Duration::from_secs(120)));
    stop_agent(&mut agent);
    received.settle(&mut rsyslog);
    received.check(&data, Allowance::default(), "clean stops and clock jumps cause none");
}

/// A tmpfs mounted for one scenario, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| Tmpfs(dir.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// (6) The state disk fills up mid-run: the agent says so clearly (log and
/// health), stops fetching, never leaves a torn state file, and carries
/// on once there is space again — nothing lost, nothing twice.
fn full_state_disk(dir: &Path) {
    full_state_disk_with(dir, true);
}

/// (6b) The same with the `CEFWIRE_FAULT_DISK_FULL` hook, the stand-in
/// where a tmpfs cannot be mounted.
fn full_state_disk_hook(dir: &Path) {
    full_state_disk_with(dir, false);
}

fn full_state_disk_with(dir: &Path, mount: bool) {
    if !Rsyslog::available() {
        return;
    }
    let t0 = now_ms();
    let spec = DataSpec {
        seed: 61,
        activities: 20_000,
        alerts: 1_000,
        late_ratio: 0.2,
        future_activities: (10..=40).step_by(3).map(|s| s * SECOND).collect(),
        ..DataSpec::default()
    };
    let data = Data::generate(dir, t0, &spec);
    let emulator = start_emulator(&data, None, slow(15));
    let mut rsyslog = Rsyslog::start(&dir.join("rsyslog"));
    let files = AgentFiles::new(dir, &emulator.base_url(), rsyslog.port(), "");
    // A 2 MiB tmpfs as the state directory; without mount rights, the
    // agent's disk-full hook stands in for it.
    let tmpfs = if mount { Tmpfs::mount(&files.state, "2m") } else { None };
    let flag = dir.join("disk-full");
    let env = match &tmpfs {
        Some(_) => vec![],
        None => {
            if mount {
                note!("cannot mount a tmpfs: using {} instead", cefwire::fault_hooks::DISK_FULL_ENV);
            }
            vec![(cefwire::fault_hooks::DISK_FULL_ENV, flag.display().to_string())]
        }
    };
    let mut agent = files.spawn(&[], &env);
    files.wait_for_cursor(&mut agent, t0 - WINDOW + WINDOW * 2 / 5, Duration::from_secs(180));
    let filler = files.state.join("filler");
    match &tmpfs {
        Some(_) => {
            let mut file = File::create(&filler).unwrap();
            let chunk = vec![0u8; 4096];
            while file.write_all(&chunk).is_ok() {}
        }
        None => drop(File::create(&flag).unwrap()),
    }
    wait_until(Duration::from_secs(120), "the agent to report the full disk", || {
        files.log_text().contains("pausing until the checkpoint can be saved")
    });
    let stuck = files.activities_cursor();
    assert!(stuck.is_some(), "the state file from before the disk filled up is still there");
    let requests = emulator.stats().api_requests;
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(files.activities_cursor(), stuck, "the state file parses and stays as it was");
    assert!(!files.state.join("state.json.tmp").exists(), "no temporary file left behind");
    let during = emulator.stats().api_requests - requests;
    assert!(during <= 1, "no fetching while the checkpoint cannot be saved: {during} requests in 10 s");
    let log = files.log_text();
    let error = log.lines().find(|l| l.contains("pausing until the checkpoint")).unwrap().to_owned();
    assert!(
        error.contains("ERROR") && error.contains("No space left on device") && error.contains("state.json"),
        "{error}"
    );
    note!("full disk: {error}");

    match &tmpfs {
        Some(_) => fs::remove_file(&filler).unwrap(),
        None => fs::remove_file(&flag).unwrap(),
    }
    wait_until(Duration::from_secs(120), "the agent to save again", || {
        files.log_text().contains("checkpoint: saved again")
    });
    let mut received = Received::new(&rsyslog.out);
    received.wait_for_all(&data, data.all_visible_plus(Duration::from_secs(120)));
    let status = files.status(&env);
    assert_eq!(status["state"], "Connected", "{status}");
    let last_error = status["report"]["checkpoint"]["last_error"].as_str().unwrap_or_default();
    assert!(last_error.contains("No space left on device"), "the health keeps the checkpoint error: {status}");
    stop_agent(&mut agent);
    assert!(files.state().is_some());
    received.settle(&mut rsyslog);
    received.check(&data, Allowance::default(), "a failed checkpoint is retried, not skipped");
    drop(tmpfs);
}

/// (7) Bad configuration: exit 2 with one clear message naming the
/// setting; nothing reaches the syslog receiver, and only a wrong token
/// (which only the service can tell) costs one API request.
fn bad_configuration(dir: &Path) {
    let t0 = now_ms();
    let data = Data::generate(dir, t0, &DataSpec { seed: 71, activities: 50, alerts: 5, ..DataSpec::default() });
    let emulator = start_emulator(&data, None, FaultConfig::default());
    let receiver = TcpListener::bind("127.0.0.1:0").unwrap();
    receiver.set_nonblocking(true).unwrap();
    let port = receiver.local_addr().unwrap().port();
    let url = emulator.base_url();
    let not_pem = dir.join("not-a-certificate.pem");
    fs::write(&not_pem, "this is not a PEM file\n").unwrap();
    let cases: Vec<(&str, String, Vec<&str>, &str, u64)> = vec![
        ("unknown key", format!("pol_interval = \"1s\"\nportal_url = \"{url}\""), vec![], "pol_interval", 0),
        ("bad URL", "portal_url = \"htps://127.0.0.1:1\"".into(), vec![], "portal_url", 0),
        (
            "unreadable CA file",
            format!("portal_url = \"{url}\"\nca_file = \"/nonexistent/ca.pem\""),
            vec![],
            "ca_file",
            0,
        ),
        (
            "CA file that is not PEM",
            format!("portal_url = \"{url}\"\nca_file = \"{}\"", not_pem.display()),
            vec![],
            "ca_file",
            0,
        ),
        ("wrong token", format!("portal_url = \"{url}\""), vec!["--token", "wrong-token"], "auth.token (--token)", 1),
        ("wrong portal path", format!("portal_url = \"{url}/tenant\""), vec![], "portal_url", 1),
    ];
    for (what, top, args, setting, requests) in cases {
        let case_dir = dir.join(what.replace(' ', "-"));
        fs::create_dir_all(&case_dir).unwrap();
        let config = case_dir.join("cefwire.toml");
        fs::write(
            &config,
            format!(
                "{top}\nstate_directory = \"{}\"\n[auth]\ntoken = \"{TOKEN}\"\n[syslog]\nto = [\"tcp://127.0.0.1:{port}\"]\n",
                case_dir.join("state").display()
            ),
        )
        .unwrap();
        let before = emulator.stats().requests;
        let out = cefwire().arg("agent").arg("--config").arg(&config).args(&args).arg("--once").output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        let naming: Vec<&str> = stderr.lines().filter(|l| l.contains(setting)).collect();
        assert_eq!(naming.len(), 1, "{what}: one message naming {setting:?}:\n{stderr}");
        assert_eq!(emulator.stats().requests - before, requests, "{what}: requests to the API");
        assert!(receiver.accept().is_err(), "{what}: the syslog receiver got a connection");
        note!("{what}: {}", naming[0]);
    }
}

/// (8) SIGTERM in the middle of a backfill, and again while syslog is
/// down: the agent exits 0 within a few seconds with a checkpoint that
/// parses, and the next run finishes the job without losing anything.
fn sigterm_stops_within_seconds(dir: &Path) {
    if !Rsyslog::available() {
        return;
    }
    let t0 = now_ms();
    let spec = DataSpec {
        seed: 81,
        activities: 20_000,
        alerts: 1_000,
        late_ratio: 0.1,
        future_activities: (15..=50).map(|s| s * SECOND).collect(),
        ..DataSpec::default()
    };
    let data = Data::generate(dir, t0, &spec);
    let emulator = start_emulator(&data, None, slow(15));
    let mut rsyslog = Rsyslog::start(&dir.join("rsyslog"));
    let files = AgentFiles::new(dir, &emulator.base_url(), rsyslog.port(), "");

    // In the middle of the backfill, with SIGINT (Ctrl-C): the same clean
    // stop as SIGTERM.
    let mut agent = files.spawn(&[], &[]);
    let target = t0 - WINDOW + WINDOW * 35 / 100;
    files.wait_for_cursor(&mut agent, target, Duration::from_secs(120));
    let took = stop_agent_with(&mut agent, libc::SIGINT);
    let health = files.health();
    assert!(health.stopped, "the health file says the agent stopped");
    assert!(files.activities_cursor().is_some_and(|c| c >= target), "the checkpoint is saved");
    note!("SIGINT during the backfill: exited in {:.2} s", took.as_secs_f64());

    // While syslog is down: rsyslog killed in the middle of the backfill
    // (with messages in its buffers), the agent waiting on it.
    let mut agent = files.spawn(&[], &[]);
    let mut received = Received::new(&rsyslog.out);
    files.wait_for_cursor(&mut agent, t0 - WINDOW + WINDOW * 7 / 10, Duration::from_secs(180));
    // Just as a page starts to arrive, so part of it is still in rsyslog's
    // buffers (lost with it), though the agent wrote it all.
    wait_for_growth(&rsyslog.out);
    rsyslog.kill();
    wait_until(Duration::from_secs(60), "status to show the syslog failure", || {
        files.status(&[])["reason"].as_str().is_some_and(|r| r.contains("syslog failing"))
    });
    // What syslog did not take is not in the checkpoint (the next start
    // fetches it again), but this run did not deliver it: exit 1 then.
    let (took, status) = agent.stop_with(libc::SIGTERM, Duration::from_secs(60));
    let log = files.log_text();
    let unsent = log.contains("messages were not written to syslog");
    assert_eq!(status.code(), Some(i32::from(unsent)), "exit {status} (messages left unsent: {unsent}):\n{log}");
    note!("SIGTERM while syslog is down: exited in {:.2} s ({status})", took.as_secs_f64());
    assert!(files.state().is_some());

    rsyslog.launch();
    let mut agent = files.spawn(&[], &[]);
    received.wait_for_all(&data, data.all_visible_plus(Duration::from_secs(120)));
    stop_agent(&mut agent);
    received.settle(&mut rsyslog);
    received.check(
        &data,
        Allowance { pages: 1, resends: 1 },
        "the next start sends the saved last messages once, and the page in flight when it stopped (written in \
         part, its ids not saved) is fetched again",
    );
}

/// A SIGTERM while an API request is in flight and its answer is 120 s
/// away (a slow service): the agent walks away from the request and exits
/// cleanly long before the answer could come; nothing of that page was
/// sent, so nothing is lost. The emulator shows the request was in flight:
/// it was received and held (counted as slow) and never answered.
fn sigterm_during_a_slow_answer(dir: &Path) {
    let t0 = now_ms();
    let spec = DataSpec { seed: 91, activities: 1_000, alerts: 50, ..DataSpec::default() };
    let data = Data::generate(dir, t0, &spec);
    let emulator = start_emulator(&data, None, slow(120_000));
    // No syslog receiver needed: the agent never gets past its first
    // request (a reserved port nobody listens on).
    let port = util::ports::reserve();
    let files = AgentFiles::new(dir, &emulator.base_url(), port.port(), "");
    let mut agent = files.spawn(&[], &[]);
    wait_until(Duration::from_secs(60), "the agent's first API request to be held by the emulator", || {
        emulator.stats().injected_slow >= 1
    });
    assert_eq!(emulator.stats().pages, 0, "no answer was sent yet");
    let took = stop_agent(&mut agent);
    assert!(took < Duration::from_secs(60), "SIGTERM waited for the slow answer: {took:?}");
    assert_eq!(emulator.stats().pages, 0, "the agent exited while its request was still waiting for the answer");
    assert_eq!(files.activities_cursor(), None, "nothing was checkpointed");
    note!("SIGTERM with a 120 s answer in flight: exited in {:.2} s", took.as_secs_f64());
}

/// (9) The API's own throttle (30 requests a minute, as the emulator
/// enforces it) against the agent's default rate limit, over more requests
/// than one minute allows (a backfill, then polling every second): the
/// emulator never answers 429 and the agent counts none — the README's "a
/// healthy agent never sees a 429", for the agent and not only `backfill`.
fn healthy_agent_never_sees_a_429(dir: &Path) {
    if !Rsyslog::available() {
        return;
    }
    let t0 = now_ms();
    let spec = DataSpec {
        seed: 101,
        activities: 6_000,
        alerts: 300,
        late_ratio: 0.1,
        future_activities: (1..=12).map(|n| n * 5 * SECOND).collect(),
        ..DataSpec::default()
    };
    let data = Data::generate(dir, t0, &spec);
    let api_limit = RateLimit { requests: 30, per: Duration::from_secs(60) };
    let emulator = start_emulator(&data, Some(api_limit), FaultConfig::default());
    let mut rsyslog = Rsyslog::start(&dir.join("rsyslog"));
    let files = AgentFiles::with_rate_limit(dir, &emulator.base_url(), rsyslog.port(), "");
    let mut agent = files.spawn(&[], &[]);
    let mut received = Received::new(&rsyslog.out);
    // Half again as many requests as one minute allows: the limiter must
    // have held the agent back for this to end without a 429.
    wait_until(Duration::from_secs(300), "45 API requests", || emulator.stats().api_requests >= 45);
    received.wait_for_all(&data, data.all_visible_plus(Duration::from_secs(120)));
    stop_agent(&mut agent);
    let stats = emulator.stats();
    let health = files.health();
    note!("at the API's own limit: {}", stats.summary());
    assert_eq!(stats.throttled, 0, "the emulator answered 429: {}", stats.summary());
    assert_eq!(health.api_counters.throttled_429, 0, "the agent counted 429s: {:?}", health.api_counters);
    received.settle(&mut rsyslog);
    received.check(&data, Allowance::default(), "a clean run causes none");
}

/// (10) A start after a stop longer than the window: the agent reads the
/// last 48 h and warns, per stream, naming the gap and the `backfill`
/// command that fills it. Checked at the receiver: the agent sent nothing
/// of the gap and all of the window, and running exactly the commands the
/// warnings name sends the gap — together every record since the old
/// checkpoint arrives exactly once, late records (stored long after they
/// happened) included.
fn gap_after_a_long_stop(dir: &Path) {
    if !Rsyslog::available() {
        return;
    }
    let t0 = now_ms();
    let spec =
        DataSpec { seed: 111, activities: 3_000, alerts: 150, late_ratio: 0.3, hours_back: 70, ..DataSpec::default() };
    let data = Data::generate(dir, t0, &spec);
    let emulator = start_emulator(&data, None, FaultConfig::default());
    let mut rsyslog = Rsyslog::start(&dir.join("rsyslog"));
    let files = AgentFiles::new(dir, &emulator.base_url(), rsyslog.port(), "");
    // The checkpoint of a run that stopped 60 h ago.
    let stopped = t0 - 60 * HOUR;
    let cursor = StreamCursor { position_ms: Some(stopped), ..StreamCursor::default() };
    let state = AgentState { saved_at_ms: stopped, activities: cursor.clone(), alerts: cursor };
    fs::create_dir_all(&files.state).unwrap();
    StateStore::new(&files.state).save(&state).unwrap();
    let mut agent = files.spawn(&["--once"], &[]);
    agent.finish(Duration::from_secs(300));

    let log = files.log_text();
    let mut commands = Vec::new();
    let mut gap_end = 0;
    for stream in ["activities", "alerts"] {
        let warning = log
            .lines()
            .find(|l| l.contains(&format!("{stream}: the checkpoint")))
            .unwrap_or_else(|| panic!("no warning about the {stream} gap:\n{log}"));
        assert!(warning.contains("WARN"), "{warning}");
        let command = warning.split('`').nth(1).unwrap_or_else(|| panic!("no command in {warning}"));
        let words: Vec<String> = command.split_whitespace().map(str::to_owned).collect();
        assert_eq!(words[..2], ["cefwire", "backfill"], "{warning}");
        let value = |flag: &str| {
            let at = words.iter().position(|w| w == flag).unwrap_or_else(|| panic!("no {flag} in {warning}"));
            cefwire::time::parse_time_ms(&words[at + 1]).unwrap()
        };
        let (from, until) = (value("--from"), value("--until"));
        assert_eq!(from, stopped, "the gap starts at the old checkpoint: {warning}");
        // The window (48 h) and the overlap (5 m) back from the server's now
        // (its `Date` header counts whole seconds).
        assert!(
            (t0 - SECOND - WINDOW - 5 * MINUTE..=now_ms() - WINDOW - 5 * MINUTE).contains(&until),
            "the gap ends where the agent's first query starts: {warning}"
        );
        note!("gap warning: {warning}");
        gap_end = until;
        commands.push((stream, words));
    }

    received_settled_then(&mut rsyslog, |received| {
        let too_old: Vec<&String> = received.ids.keys().filter(|id| data.expected[*id] < gap_end).take(5).collect();
        assert!(too_old.is_empty(), "the agent sent records from the gap it warned about: {too_old:?}");
        let window = data.expected.iter().filter(|(_, t)| **t >= gap_end);
        assert!(window.clone().all(|(id, _)| received.ids.contains_key(id)), "every record of the window arrived");
    });

    // The commands the warnings name fill the gap.
    let mut both = Received::new(&rsyslog.out);
    both.update();
    for (stream, words) in commands {
        let gap_file = dir.join(format!("gap-{stream}.cef"));
        let out = cefwire()
            .args(&words[1..])
            .args([
                "--portal-url",
                &emulator.base_url(),
                "--token",
                TOKEN,
                "--rate-limit",
                "100000/min",
                "--no-progress",
            ])
            .arg("-o")
            .arg(&gap_file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{words:?}: {}", String::from_utf8_lossy(&out.stderr));
        let mut gap = Received::new(&gap_file);
        gap.update();
        for (id, copies) in gap.ids {
            both.ids.entry(id).or_insert(Copies { count: 0, ..copies }).count += copies.count;
        }
    }
    let since_stop = Data {
        activities: data.activities.clone(),
        alerts: data.alerts.clone(),
        expected: data.expected.iter().filter(|&(_, &t)| t >= stopped).map(|(k, &v)| (k.clone(), v)).collect(),
        newest_visible: data.newest_visible,
    };
    both.check(&since_stop, Allowance::default(), "the agent's window and the named backfills do not overlap");
}

/// Stops rsyslog once it has written everything, then looks at what it got.
fn received_settled_then(rsyslog: &mut Rsyslog, look: impl FnOnce(&Received)) {
    let mut received = Received::new(&rsyslog.out);
    received.settle(rsyslog);
    look(&received);
}

/// `GET /metrics` from the agent's Prometheus endpoint.
fn scrape(addr: &str) -> String {
    let mut body = String::new();
    wait_until(Duration::from_secs(60), "the metrics endpoint to answer", || {
        let Ok(mut stream) = std::net::TcpStream::connect(addr) else { return false };
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        body.clear();
        stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: test\r\n\r\n").is_ok()
            && stream.read_to_string(&mut body).is_ok()
    });
    assert!(body.starts_with("HTTP/1.") && body.contains(" 200 "), "{body}");
    body
}

/// The value of one sample (`name{labels}`) in the text format.
fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample {sample} in:\n{text}"))
}

/// (11) The checkpoint is written as the README says — a temporary file,
/// fsync, rename over `state.json`, fsync of the directory — seen in the
/// system calls the agent makes (`strace -f`), and never written in place.
/// Skipped with a note without strace, unless `CEFWIRE_REQUIRE_STRACE` is
/// set (as CI does).
fn checkpoint_is_written_durably(dir: &Path) {
    if !Rsyslog::available() {
        return;
    }
    let strace = Command::new("strace").arg("-V").output().is_ok_and(|o| o.status.success());
    if !util::external_part(strace, "strace", "CEFWIRE_REQUIRE_STRACE", "apt-get install strace") {
        return;
    }
    let t0 = now_ms();
    let data = Data::generate(dir, t0, &DataSpec { seed: 121, activities: 2_000, alerts: 100, ..DataSpec::default() });
    let emulator = start_emulator(&data, None, FaultConfig::default());
    let mut rsyslog = Rsyslog::start(&dir.join("rsyslog"));
    let files = AgentFiles::new(dir, &emulator.base_url(), rsyslog.port(), "");
    let trace = dir.join("strace.txt");
    let log = OpenOptions::new().create(true).append(true).open(&files.log).unwrap();
    let mut child = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=open,openat,fsync,fdatasync,rename,renameat,renameat2", "-o"])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_cefwire"))
        .arg("agent")
        .arg("--config")
        .arg(&files.config)
        .arg("--once")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let status = util::wait_or_kill(&mut child, Duration::from_secs(300), "the agent under strace");
    assert!(status.success(), "the agent under strace failed ({status}):\n{}", files.log_text());
    let mut received = Received::new(&rsyslog.out);
    received.settle(&mut rsyslog);
    received.check(&data, Allowance::default(), "a clean run causes none");

    let state_dir = files.state.clone();
    let (state, temp) = (state_dir.join("state.json"), state_dir.join("state.json.tmp"));
    let calls = syscalls(&fs::read_to_string(&trace).unwrap());
    let opened = |call: &Syscall, path: &Path| {
        matches!(call.name.as_str(), "open" | "openat") && call.args.contains(&format!("\"{}\"", path.display()))
    };
    let mut renames = 0;
    for (n, call) in calls.iter().enumerate() {
        if opened(call, &state) && call.args.contains("O_WRONLY") {
            panic!("state.json was opened for writing in place: {}", call.line);
        }
        let is_rename = call.name.starts_with("rename")
            && call.args.contains(&format!("\"{}\"", temp.display()))
            && call.args.contains(&format!("\"{}\"", state.display()));
        if !is_rename || call.result != "0" {
            continue;
        }
        renames += 1;
        // Before it: the temporary file opened, then fsynced through that
        // descriptor.
        let open = calls[..n].iter().rposition(|c| opened(c, &temp)).expect("the temporary file was opened");
        let fd = &calls[open].result;
        assert!(
            calls[open + 1..n].iter().any(|c| c.name == "fsync" && c.args == *fd && c.result == "0"),
            "state.json.tmp (fd {fd}) was not fsynced before the rename at line {}",
            call.line
        );
        // After it: the directory opened and fsynced.
        let dir_open = calls[n + 1..]
            .iter()
            .position(|c| opened(c, &state_dir))
            .map(|p| n + 1 + p)
            .unwrap_or_else(|| panic!("the state directory was not opened after the rename at line {}", call.line));
        let dir_fd = &calls[dir_open].result;
        assert!(
            calls[dir_open + 1..].iter().any(|c| c.name == "fsync" && c.args == *dir_fd && c.result == "0"),
            "the state directory (fd {dir_fd}) was not fsynced after the rename at line {}",
            call.line
        );
    }
    assert!(renames > 0, "no checkpoint was written under strace");
    note!("checkpoint: {renames} writes, each fsynced, renamed, directory fsynced");
}

/// One system call from `strace -f` output, an interrupted one joined
/// with its resumption.
struct Syscall {
    name: String,
    args: String,
    result: String,
    line: usize,
}

fn syscalls(trace: &str) -> Vec<Syscall> {
    let mut pending: HashMap<String, String> = HashMap::new();
    let mut calls = Vec::new();
    for (number, line) in trace.lines().enumerate() {
        let Some((pid, rest)) = line.split_once(char::is_whitespace) else { continue };
        let rest = rest.trim_start();
        let whole = if let Some(start) = rest.strip_suffix(" <unfinished ...>") {
            pending.insert(pid.to_owned(), start.to_owned());
            continue;
        } else if let Some(resumed) = rest.strip_prefix("<... ") {
            let Some(start) = pending.remove(pid) else { continue };
            let Some((_, tail)) = resumed.split_once(" resumed>") else { continue };
            format!("{start}{tail}")
        } else {
            rest.to_owned()
        };
        // `name(args) = result`, strace padding the space before `=`.
        let Some(eq) = whole.rfind(" = ") else { continue };
        let call = whole[..eq].trim_end();
        let (Some(open), Some(args)) = (call.find('('), call.strip_suffix(')')) else { continue };
        calls.push(Syscall {
            name: call[..open].to_owned(),
            args: args[open + 1..].to_owned(),
            result: whole[eq + 3..].split_whitespace().next().unwrap_or("").to_owned(),
            line: number + 1,
        });
    }
    calls
}

/// (12) Under systemd the unit gives no state or logs directory in the
/// config; the agent takes `$STATE_DIRECTORY` and `$LOGS_DIRECTORY` (what
/// `StateDirectory=`/`LogsDirectory=` set), as the README says.
fn systemd_directories(dir: &Path) {
    if !Rsyslog::available() {
        return;
    }
    let t0 = now_ms();
    let data = Data::generate(dir, t0, &DataSpec { seed: 131, activities: 500, alerts: 20, ..DataSpec::default() });
    let emulator = start_emulator(&data, None, FaultConfig::default());
    let mut rsyslog = Rsyslog::start(&dir.join("rsyslog"));
    let config = dir.join("cefwire.toml");
    fs::write(
        &config,
        format!(
            "portal_url = \"{}\"\nrate_limit = 6000\n[auth]\ntoken = \"{TOKEN}\"\n[syslog]\n\
             to = [\"tcp://127.0.0.1:{}\"]\n",
            emulator.base_url(),
            rsyslog.port()
        ),
    )
    .unwrap();
    let (state, logs) = (dir.join("var-lib-cefwire"), dir.join("var-log-cefwire"));
    fs::create_dir_all(&state).unwrap();
    fs::create_dir_all(&logs).unwrap();
    let out = cefwire()
        .arg("agent")
        .arg("--config")
        .arg(&config)
        .arg("--once")
        .env("STATE_DIRECTORY", &state)
        .env("LOGS_DIRECTORY", &logs)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(state.join("state.json").exists() && state.join("health.json").exists(), "state in $STATE_DIRECTORY");
    let log_files: Vec<_> = fs::read_dir(&logs).unwrap().filter_map(Result::ok).collect();
    assert!(
        log_files.iter().any(|f| f.metadata().is_ok_and(|m| m.len() > 0)),
        "a log file in $LOGS_DIRECTORY: {log_files:?}"
    );
    let mut received = Received::new(&rsyslog.out);
    received.settle(&mut rsyslog);
    received.check(&data, Allowance::default(), "a clean run causes none");
}

/// Two agents on one state directory both ran before (every record sent
/// twice, racing on `state.json.tmp`). The second is refused with exit 2,
/// naming the directory and the first one's pid, before any request; the
/// first goes on and delivers everything once.
fn second_agent_is_refused(dir: &Path) {
    if !Rsyslog::available() {
        return;
    }
    let t0 = now_ms();
    let data = Data::generate(dir, t0, &DataSpec { seed: 151, activities: 3000, alerts: 100, ..DataSpec::default() });
    let emulator = start_emulator(&data, None, FaultConfig::default());
    let mut rsyslog = Rsyslog::start(&dir.join("rsyslog"));
    let files = AgentFiles::new(dir, &emulator.base_url(), rsyslog.port(), "");
    let mut first = files.spawn(&[], &[]);
    wait_until(Duration::from_secs(60), "the first agent to hold the state directory", || {
        fs::read_to_string(files.state.join("agent.lock")).is_ok_and(|pid| pid.trim() == first.child.id().to_string())
    });
    let second = cefwire().arg("agent").arg("--config").arg(&files.config).arg("--once").output().unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "the second agent: {stderr}");
    let expected = format!("is in use by another cefwire agent (pid {})", first.child.id());
    assert!(stderr.contains(&expected), "the second agent names the first: {stderr}");
    note!("second agent: {}", stderr.trim());
    let mut received = Received::new(&rsyslog.out);
    received.wait_for_all(&data.stored_before(t0), Duration::from_secs(120));
    assert!(first.child.try_wait().unwrap().is_none(), "the first agent goes on");
    stop_agent(&mut first);
    received.settle(&mut rsyslog);
    received.check(&data.stored_before(t0), Allowance::default(), "one agent sends each record once");
}

/// An API whose `Date` said one day ahead made the agent query
/// `[cursor, cursor + 24 h)` and save its checkpoint a day in the future:
/// after a restart it sent nothing, "Connected". Now the agent reads no
/// further than the local clock + 5 min, says "clock skew" (Connection
/// error) in its status and log, and keeps delivering records as they come.
fn server_clock_a_day_ahead(dir: &Path) {
    if !Rsyslog::available() {
        return;
    }
    let t0 = now_ms();
    let spec = DataSpec {
        seed: 161,
        activities: 2_000,
        alerts: 100,
        future_activities: (5..=25).step_by(5).map(|s| s * SECOND).collect(),
        ..DataSpec::default()
    };
    let data = Data::generate(dir, t0, &spec);
    let ahead = DateFault::OffsetMs(24 * 3_600_000);
    let emulator = start_emulator(&data, None, FaultConfig { date: ahead, ..FaultConfig::default() });
    let mut rsyslog = Rsyslog::start(&dir.join("rsyslog"));
    let files = AgentFiles::new(dir, &emulator.base_url(), rsyslog.port(), "");
    let mut agent = files.spawn(&[], &[]);
    let mut received = Received::new(&rsyslog.out);
    received.wait_for_all(&data, data.all_visible_plus(Duration::from_secs(120)));
    let tolerance = 5 * 60_000;
    let cursor = files.activities_cursor().expect("a checkpoint");
    assert!(
        cursor <= now_ms() + tolerance,
        "the checkpoint is {} s ahead of the local clock",
        (cursor - now_ms()) / 1000
    );
    let status = files.status(&[]);
    assert_eq!(status["state"], "Connection error", "{status}");
    assert!(status["reason"].as_str().is_some_and(|r| r.contains("clock skew")), "{status}");
    stop_agent(&mut agent);
    let log = files.log_text();
    let warning =
        log.lines().find(|l| l.contains("clock skew: the API server's Date is")).unwrap_or_else(|| panic!("{log}"));
    assert!(warning.contains("ahead of the local clock") && warning.contains("WARN"), "{warning}");
    received.settle(&mut rsyslog);
    received.check(&data, Allowance::default(), "a skewed clock sends nothing twice");
}

/// A server `Date` of 1970 on a first start: the window of two days was
/// chosen by it (from 1969), the checkpoint saved in 1970, and once the
/// `Date` was right again the agent crawled half a century. Now a first
/// start waits until the two clocks agree: with `--once` an error (exit 1)
/// naming both clocks, running it holds with "clock skew" in its status;
/// either way nothing is read and no checkpoint saved. An answer whose
/// `Date` cannot be read is said in the log (the agent reads by the local
/// clock) and every record is delivered once.
fn server_date_of_1970_or_unreadable(dir: &Path) {
    if !Rsyslog::available() {
        return;
    }
    let t0 = now_ms();
    let data = Data::generate(dir, t0, &DataSpec { seed: 191, activities: 600, alerts: 20, ..DataSpec::default() });
    let epoch = FaultConfig { date: DateFault::Fixed("Thu, 01 Jan 1970 00:00:00 GMT"), ..FaultConfig::default() };
    let emulator = start_emulator(&data, None, epoch);
    let mut rsyslog = Rsyslog::start(&dir.join("rsyslog"));
    let files = AgentFiles::new(dir, &emulator.base_url(), rsyslog.port(), "");
    let once = cefwire().arg("agent").arg("--config").arg(&files.config).arg("--once").output().unwrap();
    let stderr = String::from_utf8_lossy(&once.stderr);
    assert_eq!(once.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("first start: the API server's clock (1970-01-01") && stderr.contains("until they agree"),
        "{stderr}"
    );
    assert_eq!(files.activities_cursor(), None, "no checkpoint chosen by a clock nobody can vouch for");
    let mut agent = files.spawn(&[], &[]);
    wait_until(Duration::from_secs(60), "status to say clock skew", || {
        let status = files.status(&[]);
        status["state"] == "Connection error" && status["reason"].as_str().is_some_and(|r| r.contains("clock skew"))
    });
    // A few polls while it holds.
    let probes = emulator.stats().api_requests;
    wait_until(Duration::from_secs(60), "three more probes", || emulator.stats().api_requests >= probes + 3);
    stop_agent(&mut agent);
    assert!(files.log_text().contains("nothing is read or saved meanwhile"), "{}", files.log_text());
    assert_eq!(files.activities_cursor(), None, "holding saves no checkpoint");
    assert!(fs::read_to_string(&rsyslog.out).unwrap_or_default().is_empty(), "nothing is sent while holding");
    drop(emulator);

    let unreadable = FaultConfig { date: DateFault::Fixed("sometime soon"), ..FaultConfig::default() };
    let emulator = start_emulator(&data, None, unreadable);
    let files = AgentFiles::new(dir, &emulator.base_url(), rsyslog.port(), "");
    files.spawn(&["--once"], &[]).finish(Duration::from_secs(120));
    let log = files.log_text();
    assert!(log.contains("no readable Date header: the agent reads by the local clock"), "{log}");
    let mut received = Received::new(&rsyslog.out);
    received.wait_for_all(&data, Duration::from_secs(60));
    received.settle(&mut rsyslog);
    received.check(&data, Allowance::default(), "an unreadable Date still delivers each record once");
}

/// Syslog down from the start while the API has nothing to send: every
/// flush of nothing counted as a syslog success ("syslog last success"
/// showed the start time, status said "Connected" with exit 0). Now only
/// messages written or a connection made count; connection errors with
/// neither are a failure: `status` exits 9 ("failing now").
fn syslog_never_reached(dir: &Path) {
    let data = Data::generate(dir, now_ms(), &DataSpec { seed: 201, activities: 0, alerts: 0, ..DataSpec::default() });
    let emulator = start_emulator(&data, None, FaultConfig::default());
    let closed_port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let files = AgentFiles::new(dir, &emulator.base_url(), closed_port, "");
    let mut agent = files.spawn(&[], &[]);
    wait_until(Duration::from_secs(90), "the health to show syslog failing", || {
        HealthReport::load(&files.state).is_ok_and(|h| h.syslog.failing_since_ms.is_some())
    });
    let health = files.health();
    assert_eq!(health.syslog.last_success_ms, None, "never a success: {:?}", health.syslog);
    assert!(health.syslog.last_error.as_deref().is_some_and(|e| e.contains("refused")), "{:?}", health.syslog);
    let status = cefwire().args(["status", "--state-dir"]).arg(&files.state).output().unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert_eq!(status.status.code(), Some(9), "{text}");
    assert!(text.contains("syslog failing"), "{text}");
    stop_agent(&mut agent);
}

/// `cefwire_records_sent_total` (and `status`) counted records when they
/// were handed to the sender: 5,929 "sent" while 3,525 had reached a
/// stalled receiver. Now a record counts as sent once syslog has it: with
/// syslog down, a page is fetched and nothing is sent; once a receiver
/// listens, every record arrives and the count is exactly what arrived.
fn sent_means_written(dir: &Path) {
    if !Rsyslog::available() {
        return;
    }
    let data =
        Data::generate(dir, now_ms(), &DataSpec { seed: 211, activities: 400, alerts: 0, ..DataSpec::default() });
    let emulator = start_emulator(&data, None, FaultConfig::default());
    let rsyslog_dir = dir.join("rsyslog");
    let mut rsyslog = Rsyslog::start(&rsyslog_dir);
    let port = rsyslog.port();
    rsyslog.stop();
    let files = AgentFiles::new(dir, &emulator.base_url(), port, "");
    let mut agent = files.spawn(&[], &[]);
    wait_until(Duration::from_secs(90), "a page fetched while syslog is down", || {
        HealthReport::load(&files.state).is_ok_and(|h| h.activities.fetched > 0 && h.syslog.failing_since_ms.is_some())
    });
    let health = files.health();
    assert_eq!(health.activities.sent, 0, "nothing reached syslog: {:?}", health.activities);
    assert_eq!(health.activities.newest_sent_ms, None);
    rsyslog.launch();
    let mut received = Received::new(&rsyslog.out);
    received.wait_for_all(&data, Duration::from_secs(120));
    wait_until(Duration::from_secs(30), "the health to count what arrived", || {
        files.health().activities.sent == data.expected.len() as u64
    });
    stop_agent(&mut agent);
    received.settle(&mut rsyslog);
    received.check(&data, Allowance::default(), "counted once written, sent once");
}

/// `resend.bin` was trusted: any bytes that parsed as length-prefixed
/// messages (a file of another version, a foreign file) were sent to the
/// SIEM on start. Now a file without the header, length and checksum is
/// moved aside, named in an error, and nothing of it is sent.
fn invalid_resend_file(dir: &Path) {
    if !Rsyslog::available() {
        return;
    }
    let t0 = now_ms();
    let data = Data::generate(dir, t0, &DataSpec { seed: 171, activities: 500, alerts: 20, ..DataSpec::default() });
    let emulator = start_emulator(&data, None, FaultConfig::default());
    let mut rsyslog = Rsyslog::start(&dir.join("rsyslog"));
    let files = AgentFiles::new(dir, &emulator.base_url(), rsyslog.port(), "");
    fs::create_dir_all(&files.state).unwrap();
    // Messages framed as the window frames them, without the file's header.
    let mut forged = Vec::new();
    for n in 0..100u32 {
        let message = format!("<134>forged message {n}");
        forged.extend_from_slice(&(message.len() as u32).to_le_bytes());
        forged.extend_from_slice(message.as_bytes());
    }
    fs::write(files.state.join("resend.bin"), &forged).unwrap();
    files.spawn(&["--once"], &[]).finish(Duration::from_secs(120));
    let log = files.log_text();
    assert!(log.contains("resend.bin is not a valid resend file"), "{log}");
    assert!(files.state.join("resend.bin.invalid").exists() && !files.state.join("resend.bin").exists());
    let mut received = Received::new(&rsyslog.out);
    received.settle(&mut rsyslog);
    let text = fs::read_to_string(&rsyslog.out).unwrap_or_default();
    assert!(!text.contains("forged message"), "a forged message reached the receiver");
    received.check(&data, Allowance::default(), "nothing of the invalid file is sent");
}

/// A deleted `state.json` with `health.json` still there was a "first
/// start": the whole 48 h sent again. Now the start is refused (exit 2,
/// naming the file and what would happen, before any request) unless the
/// operator asks for `--reset-state`.
fn lost_checkpoint(dir: &Path) {
    if !Rsyslog::available() {
        return;
    }
    let t0 = now_ms();
    let data = Data::generate(dir, t0, &DataSpec { seed: 181, activities: 800, alerts: 30, ..DataSpec::default() });
    let emulator = start_emulator(&data, None, FaultConfig::default());
    let mut rsyslog = Rsyslog::start(&dir.join("rsyslog"));
    let files = AgentFiles::new(dir, &emulator.base_url(), rsyslog.port(), "");
    files.spawn(&["--once"], &[]).finish(Duration::from_secs(120));
    let mut received = Received::new(&rsyslog.out);
    received.wait_for_all(&data, Duration::from_secs(60));
    fs::remove_file(files.state.join("state.json")).unwrap();
    let before = emulator.stats().api_requests;
    let refused = cefwire().arg("agent").arg("--config").arg(&files.config).arg("--once").output().unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("the checkpoint (state.json) is missing") && stderr.contains("--reset-state"), "{stderr}");
    assert_eq!(emulator.stats().api_requests, before, "refused before any request");
    note!("refused: {}", stderr.trim());
    files.spawn(&["--once", "--reset-state"], &[]).finish(Duration::from_secs(120));
    assert!(files.activities_cursor().is_some(), "a new checkpoint after the reset");
    received.settle(&mut rsyslog);
    let (copies, _) = received.duplicates();
    assert_eq!(copies as usize, data.expected.len(), "the reset read the window again, as asked: every record twice");
}

/// The syslog outage over RELP (rsyslog's `imrelp`, writing each message
/// before it answers): rsyslog is SIGKILLed mid-stream, then stopped
/// gracefully (SIGTERM), each time restarted. Nothing is lost; the
/// duplicates, counted per id at the receiver, come only from the kill
/// (messages rsyslog wrote but had not answered: at most the RELP window
/// of 1,024), none from the graceful restart, and the agent's own 8 MiB
/// resend is not used (it would only duplicate).
fn relp_rsyslog_down(dir: &Path) {
    if !Rsyslog::available() {
        return;
    }
    let t0 = now_ms();
    let future: Vec<i64> = (0..60).map(|i| 5 * SECOND + i * SECOND).collect();
    let spec =
        DataSpec { seed: 191, activities: 12_000, alerts: 300, future_activities: future, ..DataSpec::default() };
    let data = Data::generate(dir, t0, &spec);
    let emulator = start_emulator(&data, None, FaultConfig::default());
    let inputs = util::rsyslog::Inputs { relp: true, direct: true, ..Default::default() };
    let mut rsyslog = Rsyslog::start_with(&dir.join("rsyslog"), &inputs);
    let files = AgentFiles::new(dir, &emulator.base_url(), rsyslog.port(), "");
    let text = fs::read_to_string(&files.config).unwrap();
    fs::write(&files.config, text.replace(&rsyslog.tcp_url(), &rsyslog.relp_url())).unwrap();
    let mut agent = files.spawn(&[], &[]);
    let mut received = Received::new(&rsyslog.relp_out);
    wait_until(Duration::from_secs(120), "a megabyte at rsyslog before the kill", || {
        received.update();
        received.size() > 1_000_000
    });
    rsyslog.kill();
    note!("rsyslog SIGKILLed at t0 + {:.1} s", (now_ms() - t0) as f64 / 1000.0);
    wait_until(Duration::from_secs(60), "status to show the syslog failure", || {
        files.status(&[])["reason"].as_str().is_some_and(|r| r.contains("syslog failing"))
    });
    rsyslog.launch();
    received.wait_for_all(&data.stored_before(t0), Duration::from_secs(180));
    rsyslog.stop();
    std::thread::sleep(Duration::from_secs(3));
    rsyslog.launch();
    received.wait_for_all(&data, data.all_visible_plus(Duration::from_secs(120)));
    stop_agent(&mut agent);
    received.settle(&mut rsyslog);
    let (copies, bytes) =
        received.check(&data, Allowance { pages: 0, resends: 1 }, "RELP re-sends only what was not answered");
    assert!(copies <= 1024, "{copies} duplicates: more than the RELP window of 1,024 messages");
    let log = files.log_text();
    assert!(!log.contains("sent the last"), "the agent re-sent its own window over RELP:\n{log}");
    note!("RELP outage: {copies} duplicates ({bytes} bytes), all counted at the receiver");
}
