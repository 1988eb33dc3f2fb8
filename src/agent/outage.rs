//! When a failing side of the agent (the API, syslog, the checkpoint, a
//! file it keeps) is worth a log line: when it starts failing, then every
//! ten minutes while it keeps failing, and when it recovers — never on
//! every retry, so an outage of hours does not flood the log.
//!
//! It owns only that timing; it does not log, retry or touch the health.

use std::time::{Duration, Instant};

/// How often a failure that goes on is logged again.
const REPEAT_EVERY: Duration = Duration::from_secs(600);

/// One failing side.
#[derive(Default)]
pub struct Outage {
    since: Option<Instant>,
    last_logged: Option<Instant>,
}

impl Outage {
    /// A failure happened: true when it should be logged.
    pub fn failed(&mut self) -> bool {
        let now = Instant::now();
        self.since.get_or_insert(now);
        let due = self.last_logged.is_none_or(|t| now - t >= REPEAT_EVERY);
        if due {
            self.last_logged = Some(now);
        }
        due
    }

    /// A success: true when a failure was going on (log the recovery).
    pub fn recovered(&mut self) -> bool {
        self.last_logged = None;
        self.since.take().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outage_logs_once_then_on_recovery() {
        let mut outage = Outage::default();
        assert!(!outage.recovered());
        assert!(outage.failed());
        assert!(!outage.failed());
        assert!(outage.recovered());
        assert!(outage.failed());
    }
}
