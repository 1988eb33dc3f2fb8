//! `cefwire agent`: a TOML file with flags on top (compatible in spirit
//! with the vendor's Java agent: `--token`, `--proxy`, `--logsDirectory`)
//! → the agent's raw settings → [`AgentConfig`] → the long-running loop.

use crate::agent::config::{AgentConfig, Overrides};
use crate::agent::config_file::ConfigFile;
#[cfg(feature = "eventhubs")]
use crate::agent::eventhubs::{self, EventHubsRunConfig};
use crate::agent::graph_alerts::{self, GraphRunConfig};
use crate::agent::health::HealthReport;
use crate::agent::logfile::{AgentLog, Level};
use crate::agent::run::{Agent, AgentError, AgentExit};
use crate::agent::state::{STATE_FILE, StateStore};
use crate::agent::state_lock::StateLock;
use crate::agent::storage::{self, StorageRunConfig};
use crate::agent::storage_state::STORAGE_STATE_FILE;
use crate::exit::Status;
use crate::send::SendReport;
use crate::stop::Stop;
use clap::Args;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Args, Debug)]
#[command(
    about = "Run the SIEM agent: send the last two days, then everything new, and keep going",
    long_about = "Run the SIEM agent, the replacement of the vendor's Java SIEM agent.\n\n\
On first start it sends the activities and alerts of the last two days (`window`), then polls for new \
ones (`poll_interval`). It resumes from its checkpoint after a restart (no gaps), stops pulling while \
syslog is down (nothing fetched is dropped), and keeps its health in the state directory for \
`cefwire status`: Connected, Connection error (failing > 2 h) or Disconnected (> 12 h).\n\n\
Everything can be set in a TOML file (see contrib/cefwire.toml); the flags below win over it.\n\n\
Exit codes: 0 stopped by SIGTERM/SIGINT (or caught up with --once), 2 bad configuration (including a \
token the API refuses), 1 other errors.",
    after_help = "Examples:\n  cefwire agent --config /etc/cefwire/cefwire.toml\n  \
CEFWIRE_TOKEN=\"$(cat /etc/cefwire/token)\" cefwire agent --portal-url https://contoso.portal.cloudappsecurity.com \
--to tcp://siem:514 --logsDirectory /var/log/cefwire"
)]
pub struct AgentArgs {
    /// TOML configuration file (see contrib/cefwire.toml).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// API token (the generic SIEM token from the portal).
    #[arg(long, value_name = "TOKEN", env = "CEFWIRE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// HTTP CONNECT proxy for the API: ADDRESS[:PORT] (user:password@ADDRESS:PORT works).
    #[arg(long, value_name = "ADDRESS[:PORT]")]
    pub proxy: Option<String>,

    /// Directory for the agent's rotating logs.
    #[arg(long = "logs-directory", alias = "logsDirectory", value_name = "DIRNAME")]
    pub logs_directory: Option<PathBuf>,

    /// Your tenant's portal URL.
    #[arg(long, value_name = "URL")]
    pub portal_url: Option<String>,

    /// Syslog destination (tcp://, udp://, tls://HOST:PORT); repeat for several.
    #[arg(long, value_name = "URL")]
    pub to: Vec<String>,

    /// Where the checkpoint and health file live.
    #[arg(long, value_name = "DIR", env = "CEFWIRE_STATE_DIR", hide_env_values = true)]
    pub state_dir: Option<PathBuf>,

    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9100).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,

    /// Catch up once, then exit (instead of polling forever).
    #[arg(long)]
    pub once: bool,

    /// Start over when a checkpoint (state.json, or the Graph stream's
    /// state-graph.json) is gone although an
    /// earlier run sent records from this state directory: reads the whole
    /// window again (the SIEM gets those records a second time). Without
    /// it such a start is refused.
    #[arg(long)]
    pub reset_state: bool,

    /// Log debug details too.
    #[arg(long, short = 'v')]
    pub verbose: bool,
}

/// How long a stop may take before the process exits anyway.
const STOP_GRACE: Duration = Duration::from_secs(10);

pub fn run(args: AgentArgs) -> anyhow::Result<Status> {
    let file = match &args.config {
        Some(path) => ConfigFile::load(path).map_err(|e| super::UsageError(e.to_string()))?,
        None => ConfigFile::default(),
    };
    let overrides = Overrides {
        portal_url: args.portal_url,
        token: args.token,
        proxy: args.proxy,
        logs_directory: args.logs_directory,
        state_directory: args.state_dir,
        to: args.to,
        metrics: args.metrics,
        once: args.once,
    };
    let mut settings = file.into_settings().map_err(super::UsageError::from)?;
    overrides.apply(&mut settings);
    let config = AgentConfig::build(settings, super::common::default_state_dir()).map_err(super::UsageError::from)?;
    // Held until the process ends: one agent per state directory.
    let _state_lock = StateLock::acquire(&config.state_dir).map_err(|e| super::UsageError(e.to_string()))?;
    if !args.reset_state {
        if config.api.is_some() {
            let (activities, alerts) = (config.activities.is_some(), config.alerts.is_some());
            let sent = |h: &HealthReport| {
                let streams = [(activities, h.activities.newest_sent_ms), (alerts, h.alerts.newest_sent_ms)];
                streams.into_iter().filter_map(|(from_api, newest)| newest.filter(|_| from_api)).max()
            };
            lost_checkpoint(&config.state_dir, STATE_FILE, config.window_ms, sent).map_err(super::UsageError)?;
        }
        if let Some(storage) = &config.storage {
            // Only a health file of an earlier Storage stream counts.
            let sent = |h: &HealthReport| h.storage.as_ref().and(h.activities.newest_sent_ms);
            lost_checkpoint(&config.state_dir, STORAGE_STATE_FILE, storage.look_back_ms, sent)
                .map_err(super::UsageError)?;
        }
        if config.graph.is_some() {
            // Only a health file of an earlier Graph stream counts (not one
            // of alerts read from the API before a switch to Graph).
            let sent = |h: &HealthReport| h.graph.as_ref().and(h.alerts.newest_sent_ms);
            lost_checkpoint(&config.state_dir, graph_alerts::STATE_FILE, config.window_ms, sent)
                .map_err(super::UsageError)?;
        }
    }
    let level = if args.verbose { Level::Debug } else { Level::Info };
    let log = Arc::new(match &config.logs_dir {
        Some(dir) => AgentLog::with_directory(level, dir, 10 << 20, 5, true)
            .map_err(|e| super::UsageError(format!("logs_directory: {e}")))?,
        None => AgentLog::stderr(level),
    });
    let stop = Stop::on_signals()?;
    spawn_stop_watchdog(stop.clone(), Arc::clone(&log));
    let sources: Vec<String> = config
        .api
        .iter()
        .map(|api| api.portal_url.clone())
        .chain(config.eventhubs.iter().map(|e| format!("Event Hubs {}/{}", e.bootstrap_servers, e.event_hub)))
        .chain(config.graph.iter().map(|g| format!("Graph {}", g.base_url)))
        .chain(config.storage.iter().map(|s| format!("Storage {}/{}", s.blob.endpoint, s.container)))
        .collect();
    log.info(&format!(
        "cefwire {} agent starting: {} → {}; state in {}",
        env!("CARGO_PKG_VERSION"),
        sources.join(" and "),
        config.send.destinations.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        config.state_dir.display()
    ));
    #[cfg(not(feature = "eventhubs"))]
    if config.eventhubs.is_some() {
        return Err(super::UsageError(
            "activities.source = \"eventhubs\": this cefwire was built without the eventhubs feature".to_owned(),
        )
        .into());
    }
    let graph = GraphRunConfig::from_agent(&config);
    let once = config.once;
    if config.api.is_none() && graph.is_some() {
        // Graph alone (Event Hubs or Storage, if configured, on a thread beside it).
        let (eventhubs, storage) = (eventhubs_beside(&config, &stop, &log), storage_beside(&config, &stop, &log));
        let beside = move |health: SharedHealth| storage(Arc::clone(&health)).or_else(|| eventhubs(health));
        return alone_finished(&log, graph_alerts::run_alone(&config, stop, Arc::clone(&log), beside));
    }
    if config.api.is_none() && config.storage.is_some() {
        return alone_finished(&log, storage::run_alone(&config, stop, Arc::clone(&log)));
    }
    #[cfg(feature = "eventhubs")]
    if config.api.is_none() {
        return alone_finished(&log, eventhubs::run_alone(&config, stop, Arc::clone(&log)));
    }
    #[cfg(feature = "eventhubs")]
    let beside = EventHubsRunConfig::from_agent(&config);
    let storage_beside = storage_beside(&config, &stop, &log);
    let agent = Agent::new(config, stop.clone(), Arc::clone(&log)).map_err(|e| match e {
        AgentError::Setting(message) => anyhow::Error::new(super::UsageError(message)),
        other => anyhow::Error::new(other),
    })?;
    // Event Hubs beside the API streams: its own thread and sender, the
    // same stop signal and health report.
    #[cfg(feature = "eventhubs")]
    let eventhubs_thread = beside.map(|run_config| {
        let (stop, log, health) = (stop.clone(), Arc::clone(&log), agent.health());
        std::thread::spawn(move || eventhubs::run(&run_config, &stop, log, health))
    });
    // Graph beside the API streams: its own thread, sender and checkpoint,
    // the same stop signal and health report. With `once` it catches up
    // first (the API loop requests the stop when it is done).
    let graph_thread = match graph {
        Some(run_config) if once => {
            let outcome = graph_alerts::run(&run_config, &stop, Arc::clone(&log), agent.health());
            if let Err(err) = graph_finished(&log, outcome) {
                stop.request();
                return Err(err.into());
            }
            None
        }
        Some(run_config) => {
            let (stop, log, health) = (stop.clone(), Arc::clone(&log), agent.health());
            Some(std::thread::spawn(move || {
                let outcome = graph_finished(&log, graph_alerts::run(&run_config, &stop, Arc::clone(&log), health));
                // The agent does not go on without its alerts: it stops too.
                if outcome.is_err() {
                    stop.request();
                }
                outcome
            }))
        }
        None => None,
    };
    // The Storage source beside the API's alerts: the same arrangement.
    let storage_thread = storage_beside(agent.health());
    let outcome = agent.run();
    stop.request();
    if let Some(thread) = storage_thread {
        let _ = thread.join();
    }
    let graph_outcome = match graph_thread.map(JoinHandle::join) {
        Some(Err(_)) => Err(anyhow::anyhow!("graph alerts: the loop panicked")),
        Some(Ok(Err(err))) => Err(err.into()),
        _ => Ok(()),
    };
    #[cfg(feature = "eventhubs")]
    if let Some(thread) = eventhubs_thread {
        match thread.join() {
            Ok(Ok(report)) => log.info(&format!("eventhubs stopped: {}", report.summary())),
            Ok(Err(err)) => log.error(&format!("eventhubs: {err}")),
            Err(_) => log.error("eventhubs: the loop panicked"),
        }
    }
    if let Err(err) = graph_outcome {
        log.fatal(&err.to_string());
        return Err(err);
    }
    match outcome {
        Ok(AgentExit::Unsent(count)) => {
            log.info(&format!("agent stopped with {count} messages not sent"));
            Ok(Status::Failure)
        }
        Ok(exit) => {
            log.info(&format!("agent stopped ({exit:?})"));
            Ok(Status::Success)
        }
        // main prints the error on stderr; the log file gets it too.
        Err(AgentError::Setting(message)) => {
            log.fatal(&message);
            Err(super::UsageError(message).into())
        }
        Err(err) => {
            log.fatal(&err.to_string());
            Err(err.into())
        }
    }
}

/// Logs how a source run alone (without the API streams) ended; its error
/// goes on to `main` as well.
fn alone_finished<E>(log: &AgentLog, outcome: Result<SendReport, E>) -> anyhow::Result<Status>
where
    E: std::error::Error + Send + Sync + 'static,
{
    match outcome {
        Ok(report) => {
            log.info(&format!("agent stopped: {}", report.summary()));
            Ok(Status::Success)
        }
        Err(err) => {
            log.fatal(&err.to_string());
            Err(err.into())
        }
    }
}

/// Logs how the Graph stream beside the API streams ended.
fn graph_finished(
    log: &AgentLog,
    outcome: Result<SendReport, graph_alerts::GraphRunError>,
) -> Result<(), graph_alerts::GraphRunError> {
    let report = outcome?;
    log.info(&format!("graph alerts stopped: {}", report.summary()));
    Ok(())
}

/// Starts the Event Hubs loop on a thread beside a Graph-only agent.
#[cfg(feature = "eventhubs")]
fn eventhubs_beside(config: &AgentConfig, stop: &Stop, log: &Arc<AgentLog>) -> impl BesideStarter + use<> {
    source_beside("eventhubs", EventHubsRunConfig::from_agent(config), eventhubs::run, stop, log)
}

#[cfg(not(feature = "eventhubs"))]
fn eventhubs_beside(_: &AgentConfig, _: &Stop, _: &Arc<AgentLog>) -> impl BesideStarter + use<> {
    |_| None
}

/// The Storage loop on a thread beside another source, sharing its health.
fn storage_beside(config: &AgentConfig, stop: &Stop, log: &Arc<AgentLog>) -> impl BesideStarter + use<> {
    source_beside("storage", StorageRunConfig::from_agent(config), storage::run, stop, log)
}

/// Starts a source's loop (if it is configured) on its own thread, given
/// the health report it shares with the source it runs beside.
trait BesideStarter: FnOnce(SharedHealth) -> Option<JoinHandle<()>> {}

impl<F: FnOnce(SharedHealth) -> Option<JoinHandle<()>>> BesideStarter for F {}

/// The health report the sources of one agent share.
type SharedHealth = Arc<Mutex<HealthReport>>;

/// A source's loop (`run` with `run_config`, when that source is
/// configured) on a thread beside another source: it logs how it ended,
/// under `name`, when it ends.
fn source_beside<C: Send + 'static, E: std::fmt::Display + 'static>(
    name: &'static str,
    run_config: Option<C>,
    run: fn(&C, &Stop, Arc<AgentLog>, SharedHealth) -> Result<SendReport, E>,
    stop: &Stop,
    log: &Arc<AgentLog>,
) -> impl BesideStarter + use<C, E> {
    let (stop, log) = (stop.clone(), Arc::clone(log));
    move |health| {
        let run_config = run_config?;
        Some(std::thread::spawn(move || match run(&run_config, &stop, Arc::clone(&log), health) {
            Ok(report) => log.info(&format!("{name} stopped: {}", report.summary())),
            Err(err) => log.error(&format!("{name}: {err}")),
        }))
    }
}

/// Refuses a start whose checkpoint `file` is gone while the health file
/// shows (`sent`) that an earlier run sent those records from this state
/// directory: starting over would send the whole window (two days) again.
fn lost_checkpoint(
    state_dir: &Path,
    file: &'static str,
    window_ms: i64,
    sent: impl Fn(&HealthReport) -> Option<i64>,
) -> Result<(), String> {
    if StateStore::named(state_dir, file).path().exists() {
        return Ok(());
    }
    let Ok(health) = HealthReport::load(state_dir) else { return Ok(()) };
    let Some(newest) = sent(&health) else { return Ok(()) };
    Err(format!(
        "state directory {}: the checkpoint ({file}) is missing, but an earlier run (pid {}) sent records up to {} \
         from here; starting over would send the last {} again. Restore {file}, or start once with \
         --reset-state to read the window again",
        state_dir.display(),
        health.pid,
        crate::time::format_ms(newest),
        crate::time::format_duration_ms(window_ms),
    ))
}

/// Once a stop is asked for, gives the agent [`STOP_GRACE`] to finish its
/// page and save; then exits anyway. That is safe: the checkpoint on disk
/// only ever covers records already written to syslog.
fn spawn_stop_watchdog(stop: Stop, log: Arc<AgentLog>) {
    std::thread::spawn(move || {
        stop.wait();
        std::thread::sleep(STOP_GRACE);
        log.warn(&format!(
            "did not stop within {} s; exiting now (the saved checkpoint is consistent)",
            STOP_GRACE.as_secs()
        ));
        std::process::exit(1);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::health::GraphHealth;

    /// A lost Graph checkpoint was not noticed: the restart read the whole
    /// window again. Now it is refused like a lost `state.json` — but not
    /// on the first start after switching alerts from the API to Graph.
    #[test]
    fn a_lost_graph_checkpoint_is_refused_but_not_a_switch_to_graph() {
        let dir = tempfile::tempdir().unwrap();
        let graph_sent = |h: &HealthReport| h.graph.as_ref().and(h.alerts.newest_sent_ms);
        let check = || lost_checkpoint(dir.path(), graph_alerts::STATE_FILE, 3_600_000, graph_sent);
        let mut health = HealthReport::default();
        health.alerts.newest_sent_ms = Some(1_000);
        health.save(dir.path()).unwrap();
        assert_eq!(check(), Ok(()), "alerts sent from the API before the switch");
        health.graph = Some(GraphHealth::default());
        health.save(dir.path()).unwrap();
        let refused = check().unwrap_err();
        assert!(refused.contains("state-graph.json") && refused.contains("--reset-state"), "{refused}");
        std::fs::write(dir.path().join(graph_alerts::STATE_FILE), "{}").unwrap();
        assert_eq!(check(), Ok(()));
    }
}
