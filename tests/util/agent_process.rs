//! One `cefwire agent` process run from its own TOML file, as the agent
//! scenarios of the Storage and Event Hubs sources drive it: started,
//! SIGKILLed, stopped with SIGTERM (it must exit 0 within a minute), and
//! its health read back from its state directory. Its stderr goes to a
//! log file, printed when the scenario fails.

use super::{cefwire, signal, wait_child};
use cefwire::agent::health::{EventHubsHealth, HealthReport, StorageHealth};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

/// One agent named `name`: `<name>.toml`, `<name>.log` and the state
/// directory `<name>-state` in the scenario's directory.
pub struct AgentProcess {
    pub name: String,
    pub config: PathBuf,
    pub state: PathBuf,
    pub log: PathBuf,
    /// Environment variables of the process (the test-only fault hooks).
    pub env: Vec<(&'static str, PathBuf)>,
    child: Option<Child>,
}

impl AgentProcess {
    /// Writes the agent's TOML file: its state directory, then `settings`
    /// (top-level keys first, then tables).
    pub fn new(dir: &Path, name: &str, settings: &str) -> AgentProcess {
        let state = dir.join(format!("{name}-state"));
        let config = dir.join(format!("{name}.toml"));
        fs::write(&config, format!("state_directory = \"{}\"\n{settings}", state.display())).unwrap();
        let log = dir.join(format!("{name}.log"));
        AgentProcess { name: name.to_owned(), config, state, log, env: Vec::new(), child: None }
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} runs already", self.name);
        let log = fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = cefwire()
            .args(["agent", "--config"])
            .arg(&self.config)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("cefwire agent starts");
        self.child = Some(child);
    }

    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        signal(&child, libc::SIGKILL);
        let _ = child.wait();
    }

    /// SIGTERM; it must exit 0 within a minute.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("running");
        signal(&child, libc::SIGTERM);
        let status = wait_child(&mut child, Duration::from_secs(60)).unwrap_or_else(|| {
            let _ = child.kill();
            panic!("{} did not stop within 60 s:\n{}", self.name, self.log_text())
        });
        assert!(status.success(), "{} exited with {status}:\n{}", self.name, self.log_text());
    }

    pub fn health(&self) -> Option<HealthReport> {
        HealthReport::load(&self.state).ok()
    }

    pub fn storage(&self) -> Option<StorageHealth> {
        self.health()?.storage
    }

    pub fn eventhubs(&self) -> Option<EventHubsHealth> {
        self.health()?.eventhubs
    }

    /// How many Event Hubs partitions the agent holds.
    pub fn partitions(&self) -> usize {
        self.eventhubs().map_or(0, |e| e.partitions.len())
    }

    /// `cefwire status` of this agent: its exit code and its text.
    pub fn status(&self) -> (Option<i32>, String) {
        let out = cefwire().args(["status", "--state-dir"]).arg(&self.state).output().expect("cefwire status runs");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- {} log:\n{}", self.name, self.log_text());
        }
    }
}
