//! The thread that writes the agent's health file (`health.json`) every
//! few seconds, so a long wait (a slow API, a dead SIEM) never makes the
//! agent look dead to `cefwire status`.
//!
//! It owns that thread and the logging of a health file it cannot write
//! (once per failure, not every few seconds). What the report says is the
//! agent loop's business ([`super::run`]); the format is [`super::health`].

use super::health::{HEALTH_WRITE_INTERVAL_MS, HealthReport};
use super::logfile::AgentLog;
use crate::stop::Stop;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Writes `health` to `dir` every few seconds until `stop` is asked for.
pub fn start(
    health: Arc<Mutex<HealthReport>>,
    stop: Stop,
    dir: PathBuf,
    log: Arc<AgentLog>,
) -> std::io::Result<JoinHandle<()>> {
    let every = Duration::from_millis(HEALTH_WRITE_INTERVAL_MS as u64 / 6);
    std::thread::Builder::new().name("health".into()).spawn(move || {
        let mut failing = false;
        while !stop.is_requested() {
            let report = {
                let mut h = health.lock().unwrap_or_else(|p| p.into_inner());
                h.updated_ms = crate::time::now_ms();
                h.clone()
            };
            match report.save(&dir) {
                Ok(()) => failing = false,
                Err(err) if !failing => {
                    failing = true;
                    log.error(&format!("cannot write the health file in {}: {err}", dir.display()));
                }
                Err(_) => {}
            }
            stop.wait_timeout(every);
        }
    })
}

/// A source's loop run as the whole agent (Event Hubs, Storage or Graph
/// alone): a fresh health report, this thread writing it, the metrics
/// endpoint when configured, then `body`; at the end the report is saved
/// once more, marked stopped. `start_failed` names what could not start.
pub fn around_loop<T, E>(
    config: &super::config::AgentConfig,
    log: &Arc<AgentLog>,
    activities_enabled: bool,
    start_failed: impl Fn(&'static str, std::io::Error) -> E,
    body: impl FnOnce(Arc<Mutex<HealthReport>>) -> Result<T, E>,
) -> Result<T, E> {
    let now = crate::time::now_ms();
    let health = Arc::new(Mutex::new(HealthReport {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        pid: std::process::id(),
        started_ms: now,
        updated_ms: now,
        activities: super::health::StreamHealth { enabled: activities_enabled, ..Default::default() },
        ..HealthReport::default()
    }));
    let writer_stop = Stop::new();
    let writer = start(Arc::clone(&health), writer_stop.clone(), config.state_dir.clone(), Arc::clone(log))
        .map_err(|e| start_failed("health file writer", e))?;
    if let Some(addr) = config.metrics {
        let server = super::metrics::MetricsServer::start(addr, Arc::clone(&health))
            .map_err(|e| start_failed("metrics server", e))?;
        log.info(&format!("metrics on http://{}/metrics", server.local_addr));
    }
    let outcome = body(Arc::clone(&health));
    writer_stop.request();
    let _ = writer.join();
    let mut report = health.lock().unwrap_or_else(|p| p.into_inner()).clone();
    report.stopped = true;
    report.updated_ms = crate::time::now_ms();
    if let Err(err) = report.save(&config.state_dir) {
        log.error(&format!("cannot write the health file: {err}"));
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::logfile::Level;

    #[test]
    fn writes_the_report_until_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let health = Arc::new(Mutex::new(HealthReport { pid: 42, ..HealthReport::default() }));
        let stop = Stop::new();
        let log = Arc::new(AgentLog::stderr(Level::Error));
        let writer = start(Arc::clone(&health), stop.clone(), dir.path().to_owned(), log).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while HealthReport::load(dir.path()).map_or(true, |r| r.pid != 42) {
            assert!(std::time::Instant::now() < deadline, "the health file was not written");
            std::thread::sleep(Duration::from_millis(10));
        }
        health.lock().unwrap().pid = 43;
        while HealthReport::load(dir.path()).map_or(true, |r| r.pid != 43) {
            assert!(std::time::Instant::now() < deadline, "the health file was not written again");
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.request();
        writer.join().unwrap();
        assert!(HealthReport::load(dir.path()).unwrap().updated_ms > 0);
    }
}
