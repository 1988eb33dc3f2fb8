//! Where the agent keeps the records it rejects: a file in the state
//! directory (`rejects.ndjson`; the Event Hubs source's own beside it), one
//! record per line as it came in (compact JSON), rotated by size so it
//! never fills the disk, readable by the agent's user only (records carry
//! user data). Each reject is also logged with its stream, position and
//! reason as a warning in the agent log, up to [`LOGGED_PER_RUN`] a run;
//! all are counted in the health (`status`, metrics). It owns the file and
//! the log lines; the record loop decides what is rejected.

use super::logfile::{AgentLog, RotatingFile};
use crate::rejects::RejectLog;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

/// The API streams' rejects.
pub const REJECTS_FILE: &str = "rejects.ndjson";
/// The Event Hubs source's rejects (its own thread, so its own file).
pub const EVENTHUBS_REJECTS_FILE: &str = "rejects-eventhubs.ndjson";

/// Each file up to 16 MiB, four old ones kept: at most 80 MiB.
const MAX_FILE_BYTES: u64 = 16 << 20;
const OLD_FILES_KEPT: usize = 4;
const REJECTS_MODE: u32 = 0o600;

/// Rejects logged one by one in a run; the rest are counted (and kept).
pub const LOGGED_PER_RUN: u64 = 1_000;

/// A reject log that keeps the records in `state_dir/name` and logs each
/// reject through `log`.
pub fn open(state_dir: &Path, name: &'static str, log: Arc<AgentLog>) -> io::Result<RejectLog> {
    let file = RotatingFile::open(state_dir, name, REJECTS_MODE, MAX_FILE_BYTES, OLD_FILES_KEPT)
        .map_err(|e| io::Error::new(e.kind(), format!("opening {}: {e}", state_dir.join(name).display())))?;
    let mut rejects = RejectLog::with_messages(LOGGED_PER_RUN, Box::new(LogLines { log, line: Vec::new() }));
    rejects.keep_records_in_writer(state_dir.join(name).display().to_string(), Box::new(file));
    Ok(rejects)
}

/// Each line written here becomes a warning in the agent log.
struct LogLines {
    log: Arc<AgentLog>,
    line: Vec<u8>,
}

impl Write for LogLines {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(bytes);
        while let Some(end) = self.line.iter().position(|&b| b == b'\n') {
            self.log.warn(&format!("rejected {}", String::from_utf8_lossy(&self.line[..end])));
            self.line.drain(..=end);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::logfile::{LOG_FILE, Level};
    use crate::rejects::RejectedRecord;
    use std::fs;

    #[test]
    fn a_reject_is_kept_in_the_state_directory_and_logged_with_its_place() {
        let state = tempfile::tempdir().unwrap();
        let logs = tempfile::tempdir().unwrap();
        let log = Arc::new(AgentLog::with_directory(Level::Info, logs.path(), 1 << 20, 2, false).unwrap());
        let mut rejects = open(state.path(), REJECTS_FILE, Arc::clone(&log)).unwrap();
        let reason = "record has no usable \"_id\"";
        for n in 0..3 {
            let record = format!("{{\"n\":{n}}}");
            rejects
                .reject("alerts@2026-12-01T00:00:00.000Z", 2, Some(n), &reason, RejectedRecord::Json(record.as_bytes()))
                .unwrap();
        }
        rejects.flush().unwrap();
        let kept = fs::read_to_string(state.path().join(REJECTS_FILE)).unwrap();
        assert_eq!(kept, "{\"n\":0}\n{\"n\":1}\n{\"n\":2}\n");
        let logged = fs::read_to_string(logs.path().join(LOG_FILE)).unwrap();
        let lines: Vec<&str> = logged.lines().collect();
        assert_eq!(lines.len(), 3, "{logged}");
        assert!(
            lines[2]
                .ends_with("WARN  rejected alerts@2026-12-01T00:00:00.000Z:2: record 3: record has no usable \"_id\""),
            "{logged}"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(state.path().join(REJECTS_FILE)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "records carry user data");
    }
}
