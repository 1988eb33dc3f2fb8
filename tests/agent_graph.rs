//! Agent scenarios of the Graph `alerts_v2` stream (`[alerts] source =
//! "graph"`): the real binary against the emulator's Graph (in process,
//! 20,000 generated alerts, 5 % injected 429 and 5 % 5xx, Graph's own
//! 150/min throttle) and a real rsyslogd, checked at the receiver by
//! `externalId` (the alert's `providerAlertId`).

use crate::util::graph::{CLIENT, graph_emulator, graph_store, graph_store_over};
use crate::util::rsyslog::Rsyslog;
use crate::util::{cefwire, wait_child, wait_until};
use cefwire::agent::health::HealthReport;
use cefwire::agent::state::StateStore;
use cefwire::emulate::{DateFault, FaultConfig};
use std::collections::{HashMap, HashSet};
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

/// Alerts per page in these scenarios: many pages, so a kill lands mid-run.
const TOP: u64 = 100;
const HOUR: i64 = 3_600_000;

/// The agent's files for a Graph-only configuration.
struct GraphAgent {
    config: PathBuf,
    state: PathBuf,
    log: PathBuf,
}

impl GraphAgent {
    fn new(dir: &Path, graph_url: &str, token_url: &str, syslog_url: &str) -> GraphAgent {
        let state = dir.join("state");
        let secret = dir.join("graph-secret");
        fs::write(&secret, format!("{}\n", CLIENT.1)).unwrap();
        let config = dir.join("cefwire.toml");
        fs::write(
            &config,
            format!(
                "state_directory = \"{}\"\npoll_interval = \"1s\"\n[activities]\nenabled = false\n\
                 [alerts]\nsource = \"graph\"\n[graph]\ntenant_id = \"tenant-1\"\nclient_id = \"{}\"\n\
                 client_secret_file = \"{}\"\nurl = \"{graph_url}\"\ntoken_url = \"{token_url}\"\ntop = {TOP}\n\
                 [syslog]\nto = [\"{syslog_url}\"]\n[cef]\nhostname = false\n",
                state.display(),
                CLIENT.0,
                secret.display()
            ),
        )
        .unwrap();
        GraphAgent { config, state, log: dir.join("agent.log") }
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.spawn_with_env(args, &[])
    }

    fn spawn_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Child {
        let log = OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        cefwire()
            .envs(env.iter().copied())
            .arg("agent")
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The Graph stream's saved cursor (`createdDateTime`, ms).
    fn cursor(&self) -> Option<i64> {
        match StateStore::named(&self.state, cefwire::agent::graph_alerts::STATE_FILE).load() {
            Ok(state) => state.and_then(|s| s.alerts.position_ms),
            Err(err) => panic!("the Graph checkpoint must always parse: {err}"),
        }
    }
}

/// Scenario `graph_alerts_are_sent_once_through_faults_and_a_sigkill`: the
/// agent reads 20,000 alerts (18,000 of them Defender for Cloud Apps') in
/// pages of 100 through 5 % 429 and 5 % 5xx, is killed (SIGKILL) once its
/// checkpoint passed a fifth of them, and restarted with `--once`. No 60 s
/// holds more than 150 Graph requests, the restart included. Every alert
/// reaches rsyslog; duplicates are at most the page in flight at the kill.
pub fn sent_once_through_faults_and_a_sigkill(dir: &Path) {
    if !Rsyslog::available() {
        return;
    }
    let (store, since, until, expected) = graph_store(20_000, 11);
    // The alerts were created over [since + 1 h, until − 1 h]; the kill
    // comes once the checkpoint passed a fifth of that span.
    let kill_after = since + HOUR + (until - since - 2 * HOUR) / 5;
    let graph = graph_emulator(&store, FaultConfig { error_429: 0.05, error_5xx: 0.05, ..FaultConfig::default() });
    let base = graph.base_url();
    let rsyslog = Rsyslog::start(&dir.join("rsyslog"));
    let agent = GraphAgent::new(dir, &base, &format!("{base}/{{tenant}}/oauth2/v2.0/token"), &rsyslog.tcp_url());
    let mut first = agent.spawn(&[]);
    let long = Duration::from_secs(600);
    wait_until(long, "a fifth of the alerts checkpointed", || {
        if let Some(status) = first.try_wait().unwrap() {
            panic!("the agent exited ({status}) early:\n{}", agent.log_text());
        }
        agent.cursor().is_some_and(|c| c >= kill_after)
    });
    first.kill().unwrap();
    first.wait().unwrap();
    let at_kill = agent.cursor().unwrap();
    let before_kill = rsyslog.external_ids().len();
    assert!(at_kill < until - HOUR, "the kill landed mid-run (cursor {at_kill})");
    let mut second = agent.spawn(&["--once"]);
    match wait_child(&mut second, long) {
        Some(status) if status.success() => {}
        other => panic!("the restarted agent did not finish ({other:?}):\n{}", agent.log_text()),
    }
    Rsyslog::wait_until_quiet(&rsyslog.out, Duration::from_secs(2), long);
    let seen = rsyslog.external_ids();
    let stats = graph.stats();
    let missing: Vec<&String> = expected.iter().filter(|id| !seen.contains_key(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} alerts never arrived, e.g. {:?}\n{}",
        missing.len(),
        missing.first(),
        agent.log_text()
    );
    let unexpected: Vec<&String> = seen.keys().filter(|id| !expected.contains(*id)).collect();
    assert!(unexpected.is_empty(), "alerts the filter excludes arrived: {unexpected:?}");
    let duplicates: u32 = seen.values().map(|n| n - 1).sum();
    eprintln!(
        "[graph agent] {} alerts, {duplicates} duplicates after one SIGKILL (about {before_kill} received before \
         it); emulator: {stats:?}",
        seen.len()
    );
    assert!(u64::from(duplicates) <= TOP, "at most the page in flight at the kill is sent again: {duplicates}");
    assert!(stats.injected_429 > 0 && stats.injected_5xx > 0, "the faults happened: {stats:?}");
    // Across the restart too: the two processes share the limit's ledger
    // (without it the restart began with a full allowance: 159 in 60 s).
    assert!(stats.graph_most_per_window <= 150, "at most 150 Graph requests in any 60 s: {stats:?}");
    assert_eq!(stats.graph_throttled, 0, "Graph's throttle never had to act: {stats:?}");
    let health = HealthReport::load(&agent.state).unwrap();
    // The restarted run's own count: the rest, and what it found sent is skipped.
    assert!(health.alerts.sent > 0 && health.alerts.fetched >= health.alerts.sent, "{:?}", health.alerts);
    let graph_health = health.graph.expect("the health has the Graph section");
    assert!(graph_health.requests > 0 && graph_health.api.last_success_ms.is_some(), "{graph_health:?}");
}

/// Scenario `graph_token_endpoint_down_is_failing_in_status_and_the_agent_keeps_trying`:
/// nothing listens at the token URL. The agent does not exit; `status`
/// says Graph is failing and why; SIGTERM stops it cleanly.
pub fn token_endpoint_down(dir: &Path) {
    let (store, _, _, _) = graph_store(100, 12);
    let graph = graph_emulator(&store, FaultConfig::default());
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/{{tenant}}/token", closed.local_addr().unwrap());
    drop(closed);
    let sink = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let syslog = format!("tcp://{}", sink.local_addr().unwrap());
    let agent = GraphAgent::new(dir, &graph.base_url(), &dead, &syslog);
    let mut child = agent.spawn(&[]);
    let long = Duration::from_secs(300);
    wait_until(long, "Graph marked failing in the health file", || {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the agent exited ({status}) instead of retrying:\n{}", agent.log_text());
        }
        HealthReport::load(&agent.state).ok().and_then(|h| h.graph).is_some_and(|g| g.api.failing_since_ms.is_some())
    });
    let out = cefwire().args(["status", "--json", "--state-dir"]).arg(&agent.state).output().unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reason = status["reason"].as_str().unwrap();
    assert!(reason.starts_with("Graph failing: ") && reason.contains("token endpoint"), "{status}");
    assert_eq!(graph.stats().graph_requests, 0, "no alerts request without a token");
    crate::util::signal(&child, libc::SIGTERM);
    let exited = wait_child(&mut child, Duration::from_secs(60)).expect("stops on SIGTERM");
    assert!(exited.success(), "{exited}:\n{}", agent.log_text());
}

/// Scenario `graph_alerts_beside_api_activities_are_each_sent_once`: one
/// agent reads activities from the Defender for Cloud Apps API and alerts
/// from Graph (`--once`): both streams reach rsyslog, each record once,
/// and each stream keeps its own checkpoint.
pub fn beside_api_activities(dir: &Path) {
    if !Rsyslog::available() {
        return;
    }
    use cefwire::emulate::{self, EmulatorAuth, EmulatorConfig, StoreBuilder};
    use cefwire::generate::{GenerateConfig, GenerateKind, RecordGenerator};
    const TOKEN: &str = "graph-beside-api-token";
    let end = cefwire::time::now_ms() - HOUR;
    let activities = GenerateConfig {
        kind: GenerateKind::Activities,
        count: 3000,
        seed: 21,
        late_ratio: 0.0,
        start_ms: end - 24 * HOUR,
        span_ms: 24 * HOUR,
    };
    let alerts = GenerateConfig { kind: GenerateKind::GraphAlerts, count: 2000, seed: 22, ..activities.clone() };
    let mut builder = StoreBuilder::new();
    builder.add_generated(activities.clone());
    builder.graph_alerts.add_generated(alerts.clone());
    let (mut activity_ids, mut graph_ids) = (HashSet::new(), HashSet::new());
    for config in [activities, alerts] {
        let (mut generator, mut buf) = (RecordGenerator::new(config), Vec::new());
        while generator.write_next(&mut buf) {
            let record: serde_json::Value = serde_json::from_slice(&buf).unwrap();
            if let Some(id) = record["_id"].as_str() {
                activity_ids.insert(id.to_owned());
            } else if record["serviceSource"] == "microsoftDefenderForCloudApps" {
                graph_ids.insert(record["providerAlertId"].as_str().unwrap().to_owned());
            }
            buf.clear();
        }
    }
    let mut config = EmulatorConfig::new("127.0.0.1:0".parse().unwrap(), TOKEN);
    config.auth = EmulatorAuth {
        api_token: Some(TOKEN.to_owned()),
        client: Some((CLIENT.0.to_owned(), CLIENT.1.to_owned())),
        token_lifetime: Duration::from_secs(3600),
    };
    let emulator = emulate::start(config, std::sync::Arc::new(builder.build())).unwrap();
    let base = emulator.base_url();
    let rsyslog = Rsyslog::start(&dir.join("rsyslog"));
    let agent = GraphAgent::new(dir, &base, &format!("{base}/{{tenant}}/oauth2/v2.0/token"), &rsyslog.tcp_url());
    let text = fs::read_to_string(&agent.config).unwrap().replace("[activities]\nenabled = false\n", "");
    fs::write(
        &agent.config,
        format!("portal_url = \"{base}\"\nrate_limit = 6000\n{text}[auth]\ntoken = \"{TOKEN}\"\n"),
    )
    .unwrap();
    let mut child = agent.spawn(&["--once"]);
    match wait_child(&mut child, Duration::from_secs(600)) {
        Some(status) if status.success() => {}
        other => panic!("the agent did not finish ({other:?}):\n{}", agent.log_text()),
    }
    Rsyslog::wait_until_quiet(&rsyslog.out, Duration::from_secs(2), Duration::from_secs(600));
    let seen = rsyslog.external_ids();
    let expected: HashSet<String> = activity_ids.union(&graph_ids).cloned().collect();
    let got: HashSet<String> = seen.keys().cloned().collect();
    assert_eq!(got.len(), expected.len(), "missing: {:?}", expected.difference(&got).take(3).collect::<Vec<_>>());
    assert_eq!(got, expected, "every activity and every Defender for Cloud Apps alert, nothing else");
    let twice: Vec<_> = seen.iter().filter(|&(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    assert!(agent.cursor().is_some(), "the Graph stream's own checkpoint");
    let api_state = StateStore::new(&agent.state).load().unwrap().expect("the API streams' checkpoint");
    assert!(api_state.activities.position_ms.is_some() && api_state.alerts.position_ms.is_none());
    let health = HealthReport::load(&agent.state).unwrap();
    assert_eq!(health.alerts.sent as usize, graph_ids.len(), "{:?}", health.alerts);
    assert_eq!(health.activities.sent as usize, activity_ids.len(), "{:?}", health.activities);
}

/// Scenario `graph_sigterm_during_a_retry_after_wait_stops_cleanly`: every
/// Graph request is answered 429 with `Retry-After: 120`, so the client
/// backs off for a minute or more. SIGTERM in that wait ends the agent
/// cleanly (exit 0) and at once, with no further request. Before, the
/// wait was a plain sleep: the agent's 10 s stop watchdog ended the
/// process with exit 1.
pub fn sigterm_during_a_long_wait(dir: &Path) {
    let (store, _, _, _) = graph_store(100, 13);
    let faults = FaultConfig { error_429: 1.0, retry_after_secs: Some(120), ..FaultConfig::default() };
    let graph = graph_emulator(&store, faults);
    let base = graph.base_url();
    let sink = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let syslog = format!("tcp://{}", sink.local_addr().unwrap());
    let agent = GraphAgent::new(dir, &base, &format!("{base}/{{tenant}}/oauth2/v2.0/token"), &syslog);
    let mut child = agent.spawn(&[]);
    wait_until(Duration::from_secs(300), "the first Graph request answered 429", || {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the agent exited ({status}):\n{}", agent.log_text());
        }
        graph.stats().graph_requests >= 1
    });
    // The answer was a 429 with Retry-After: 120; the client now waits.
    std::thread::sleep(Duration::from_secs(2));
    let requests = graph.stats().graph_requests;
    crate::util::signal(&child, libc::SIGTERM);
    let exited = wait_child(&mut child, Duration::from_secs(60)).expect("stops on SIGTERM");
    assert!(exited.success(), "a stop during the wait is a clean stop ({exited}):\n{}", agent.log_text());
    assert_eq!(graph.stats().graph_requests, requests, "no request after the stop");
}

/// Scenario `graph_a_local_clock_hours_ahead_loses_no_alert`: the agent's
/// clock runs two hours ahead of Graph's while alerts are still being
/// created (the emulator serves an alert only once its `createdDateTime`
/// has come). Every alert reaches rsyslog, once. Before, the first window
/// ended at the local clock, the cursor moved two hours past Graph's now,
/// and the alerts created in those two hours were never read.
pub fn local_clock_ahead(dir: &Path) {
    if !Rsyslog::available() {
        return;
    }
    let now = cefwire::time::now_ms();
    // The last hour's alerts, and some created over the next 40 s.
    let (store, expected) = graph_store_over(400, 14, now - HOUR, HOUR + 40_000);
    let graph = graph_emulator(&store, FaultConfig::default());
    let base = graph.base_url();
    let rsyslog = Rsyslog::start(&dir.join("rsyslog"));
    let agent = GraphAgent::new(dir, &base, &format!("{base}/{{tenant}}/oauth2/v2.0/token"), &rsyslog.tcp_url());
    let two_hours = (2 * HOUR).to_string();
    let mut child = agent.spawn_with_env(&[], &[(cefwire::fault_hooks::CLOCK_OFFSET_ENV, &two_hours)]);
    // Generous: the alerts of the next 40 s exist only after they happen.
    wait_until(Duration::from_secs(600), "every alert at rsyslog", || {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the agent exited ({status}):\n{}", agent.log_text());
        }
        let seen = rsyslog.external_ids();
        cefwire::time::now_ms() > now + 40_000 && expected.iter().all(|id| seen.contains_key(id))
    });
    crate::util::signal(&child, libc::SIGTERM);
    let exited = wait_child(&mut child, Duration::from_secs(60)).expect("stops on SIGTERM");
    assert!(exited.success(), "{exited}:\n{}", agent.log_text());
    Rsyslog::wait_until_quiet(&rsyslog.out, Duration::from_secs(2), Duration::from_secs(120));
    let twice: Vec<_> = rsyslog.external_ids().into_iter().filter(|(_, n)| *n > 1).collect();
    assert!(twice.is_empty(), "alerts sent twice: {twice:?}");
    let cursor = agent.cursor().expect("a saved cursor");
    assert!(cursor <= cefwire::time::now_ms() + 60_000, "the cursor stays at Graph's clock, not the local one");
}

/// Scenario `graph_a_date_of_1970_neither_moves_the_cursor_back_nor_resends_history`:
/// Graph's `Date` says 1970 from the first answer on; the agent's window is
/// one day, and Graph holds alerts of the last ten days. The window's
/// alerts are sent once; the alerts created while the `Date` is wrong are
/// sent too; none older than the window is. Then the `Date` is put right
/// and the alerts created after that arrive as well. Before, the first
/// window moved the cursor back to Graph's 1970, and the window after it
/// sent every alert since (the ten days).
pub fn date_of_1970(dir: &Path) {
    if !Rsyslog::available() {
        return;
    }
    let now = cefwire::time::now_ms();
    let day = 24 * HOUR;
    let (store, sets) = crate::util::graph::graph_store_of(&[
        (300, 21, now - 10 * day, 7 * day),    // before the window: never sent
        (300, 22, now - 20 * HOUR, 19 * HOUR), // in the window
        (120, 23, now, 90_000),                // created over the next 90 s
    ]);
    let (history, window, coming) = (&sets[0], &sets[1], &sets[2]);
    let faults = FaultConfig { date: DateFault::Fixed("Thu, 01 Jan 1970 00:00:00 GMT"), ..FaultConfig::default() };
    let graph = graph_emulator(&store, faults);
    let base = graph.base_url();
    let rsyslog = Rsyslog::start(&dir.join("rsyslog"));
    let agent = GraphAgent::new(dir, &base, &format!("{base}/{{tenant}}/oauth2/v2.0/token"), &rsyslog.tcp_url());
    let config = fs::read_to_string(&agent.config).unwrap();
    fs::write(&agent.config, format!("window = \"1d\"\n{config}")).unwrap();
    let mut child = agent.spawn(&[]);
    let long = Duration::from_secs(600);
    let running = |child: &mut Child| {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the agent exited ({status}):\n{}", agent.log_text());
        }
    };
    // While the Date says 1970: the window, and what is created meanwhile.
    let created_so_far =
        |set: &HashSet<String>, seen: &HashMap<String, u32>| set.iter().filter(|id| seen.contains_key(*id)).count();
    wait_until(long, "the window's alerts and some created since, with the Date of 1970", || {
        running(&mut child);
        let seen = rsyslog.external_ids();
        window.iter().all(|id| seen.contains_key(id)) && created_so_far(coming, &seen) > 0
    });
    assert!(agent.log_text().contains("Graph's clock (1970-01-01"), "the log says why:\n{}", agent.log_text());
    let cursor = agent.cursor().expect("a saved cursor");
    assert!(cursor >= now - day, "the cursor never moves back to Graph's 1970: {}", cefwire::time::format_ms(cursor));
    // `status` says why (the health file is written every second or so).
    wait_until(Duration::from_secs(60), "status naming Graph's clock", || {
        let status = cefwire().args(["status", "--state-dir"]).arg(&agent.state).output().unwrap();
        let text = String::from_utf8_lossy(&status.stdout);
        text.contains("Graph clock 1970-01-01") && text.contains("is behind the checkpoint")
    });
    // The Date put right: the rest of what is created arrives.
    graph.set_faults(FaultConfig::default());
    wait_until(long, "every alert created over the 90 s", || {
        running(&mut child);
        cefwire::time::now_ms() > now + 90_000 && coming.iter().all(|id| rsyslog.external_ids().contains_key(id))
    });
    crate::util::signal(&child, libc::SIGTERM);
    let exited = wait_child(&mut child, Duration::from_secs(60)).expect("stops on SIGTERM");
    assert!(exited.success(), "{exited}:\n{}", agent.log_text());
    Rsyslog::wait_until_quiet(&rsyslog.out, Duration::from_secs(2), long);
    let seen = rsyslog.external_ids();
    let resent: Vec<_> = history.iter().filter(|id| seen.contains_key(*id)).collect();
    assert!(resent.is_empty(), "{} alerts older than the window were sent, e.g. {:?}", resent.len(), resent.first());
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "alerts sent twice: {twice:?}");
    let log = agent.log_text();
    assert!(log.contains("Graph's clock is past the checkpoint again"), "the log says it is over:\n{log}");
    let cursor = agent.cursor().unwrap();
    assert!(cursor >= now && cursor <= cefwire::time::now_ms() + 60_000, "{}", cefwire::time::format_ms(cursor));
}
