//! `cefwire status`: reads the agent's health file and says how it is.

use crate::agent::health::{HealthReport, HealthState};
use crate::exit::Status;
use crate::time::parse_time_ms;
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
#[command(
    about = "Show the agent's health: Connected, Connection error (> 2 h failing) or Disconnected (> 12 h)",
    long_about = "Show the agent's health, read from the health file in its state directory.\n\n\
Connected: API and syslog work. Connection error: one of them has been failing for more than 2 hours. \
Disconnected: failing for more than 12 hours (or the agent stopped more than 12 hours ago).\n\n\
Exit codes: 0 Connected (running, nothing failing), 6 Connection error, 7 Disconnected or never run, \
8 Connected but the agent is not running now, 9 Connected but the API, syslog, the checkpoint or a source is \
failing right now (less than 2 h; also an Event Hubs consumer that fetches nothing while messages wait for \
`stall_after`), 2 bad usage.",
    after_help = "Examples:\n  cefwire status --state-dir /var/lib/cefwire\n  cefwire status --json | jq .state"
)]
pub struct StatusArgs {
    /// The agent's state directory [default: the user's own (~/.local/state/cefwire) if an agent
    /// ran there, else the service's /var/lib/cefwire if it ran there].
    #[arg(long, value_name = "DIR", env = "CEFWIRE_STATE_DIR", hide_env_values = true)]
    pub state_dir: Option<PathBuf>,

    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,

    /// Judge the health as of this time instead of now (RFC 3339 or epoch ms).
    #[arg(long, value_name = "TIME", hide = true)]
    pub now: Option<String>,
}

/// The state directory of the packaged service (its unit's `StateDirectory=`).
const SERVICE_STATE_DIR: &str = "/var/lib/cefwire";

/// Without `--state-dir`: the user's own directory when an agent ran there,
/// else the service's when one ran there (so `cefwire status` on a packaged
/// install reads the service), else the user's (which says "never ran").
fn state_dir_to_read(own: PathBuf, service: &Path) -> PathBuf {
    if !HealthReport::path(&own).exists() && HealthReport::path(service).exists() {
        return service.to_owned();
    }
    own
}

pub fn run(args: StatusArgs) -> anyhow::Result<Status> {
    let state_dir = args
        .state_dir
        .unwrap_or_else(|| state_dir_to_read(super::common::default_state_dir(), Path::new(SERVICE_STATE_DIR)));
    let now_ms = match &args.now {
        Some(t) => parse_time_ms(t).map_err(|e| super::UsageError(format!("--now: {e}")))?,
        None => crate::time::now_ms(),
    };
    let report = match HealthReport::load(&state_dir) {
        Ok(report) => report,
        Err(err) => {
            let message = err.to_string();
            if args.json {
                println!("{}", serde_json::json!({ "state": "Disconnected", "reason": message }));
            } else {
                println!("status:   Disconnected\nreason:   {message}");
            }
            return Ok(Status::Disconnected);
        }
    };
    let status = report.classify(now_ms);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", status.human());
    }
    Ok(match status.state {
        HealthState::ConnectionError => Status::ConnectionError,
        HealthState::Disconnected => Status::Disconnected,
        // A monitor can alert before the 2 h of Connection error.
        HealthState::Connected if !status.agent_running => Status::AgentNotRunning,
        HealthState::Connected if report.failing_now() => Status::FailingNow,
        HealthState::Connected => Status::Success,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cefwire status` on a systemd install looked in ~/.local/state and
    /// said "never ran" (exit 7) while the service ran from /var/lib/cefwire.
    #[test]
    fn without_a_state_dir_status_reads_the_directory_an_agent_ran_in() {
        let (own, service) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (own, service) = (own.path().to_owned(), service.path().to_owned());
        assert_eq!(state_dir_to_read(own.clone(), &service), own, "neither ran: the user's own");
        HealthReport::default().save(&service).unwrap();
        assert_eq!(state_dir_to_read(own.clone(), &service), service, "only the service ran");
        HealthReport::default().save(&own).unwrap();
        assert_eq!(state_dir_to_read(own.clone(), &service), own, "the user's own agent wins");
    }
}
