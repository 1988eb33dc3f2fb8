//! What the process exit code means. Scripts rely on these; keep them
//! stable and listed in the README.

use std::process::ExitCode;

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Everything was done; nothing was rejected.
    Success,
    /// Done, but some records were rejected (see stderr / `--rejects`).
    Rejected,
    /// An input could not be read completely (missing, unreadable,
    /// truncated or corrupt); the others were processed.
    InputFailed,
    /// A wait for an expected condition ended without it (for example
    /// `sink --expect N` timing out).
    Incomplete,
    /// The run stopped on an error (output or network failure, internal
    /// error).
    Failure,
    /// Bad command line or configuration; nothing was done.
    Usage,
    /// `status`: the agent is in `Connection error` (failing > 2 h).
    ConnectionError,
    /// `status`: the agent is `Disconnected` (failing > 12 h) or has never run.
    Disconnected,
    /// `status`: `Connected`, but the agent is not running now (stopped, or
    /// its health file is no longer updated).
    AgentNotRunning,
    /// `status`: `Connected`, but the API, syslog or the checkpoint is
    /// failing right now (for less than the 2 h of `Connection error`).
    FailingNow,
}

impl Status {
    pub fn code(self) -> u8 {
        match self {
            Status::Success => 0,
            Status::Failure => 1,
            Status::Usage => 2,
            Status::Rejected => 3,
            Status::InputFailed => 4,
            Status::Incomplete => 5,
            Status::ConnectionError => 6,
            Status::Disconnected => 7,
            Status::AgentNotRunning => 8,
            Status::FailingNow => 9,
        }
    }
}

impl From<Status> for ExitCode {
    fn from(status: Status) -> Self {
        ExitCode::from(status.code())
    }
}
