//! The agent's log: timestamped lines to stderr and, with a logs directory,
//! to `cefwire-agent.log` there, rotated by size (`.1` … `.N`, oldest
//! dropped) so a long-running agent never fills the disk.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Log files: the agent's user writes, its group (an operator, a log
/// shipper) reads, nobody else, whatever the umask.
const LOG_MODE: u32 = 0o640;
use std::sync::Mutex;

/// Name of the current log file.
pub const LOG_FILE: &str = "cefwire-agent.log";

/// How important a line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }
}

/// A file appended to line by line and rotated by size (`NAME.1` …
/// `NAME.N`, the oldest dropped), so it never grows past about
/// `(N + 1) × max_size`. It rotates only between lines: a file exceeds
/// `max_size` by at most the line that crossed it. Created with `mode`
/// whatever the umask.
pub struct RotatingFile {
    dir: PathBuf,
    name: &'static str,
    mode: u32,
    file: File,
    size: u64,
    max_size: u64,
    keep: usize,
    /// The last byte written ended a line (or nothing was written yet).
    at_line_start: bool,
}

impl RotatingFile {
    pub fn open(dir: &Path, name: &'static str, mode: u32, max_size: u64, keep: usize) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let path = dir.join(name);
        let file = OpenOptions::new().create(true).append(true).mode(mode).open(&path)?;
        let size = file.metadata()?.len();
        Ok(Self { dir: dir.to_owned(), name, mode, file, size, max_size, keep: keep.max(1), at_line_start: true })
    }

    fn rotated(&self, n: usize) -> PathBuf {
        self.dir.join(format!("{}.{n}", self.name))
    }

    /// Writes one whole line (ending in `\n`).
    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        self.write_all(line)
    }

    fn rotate(&mut self) -> io::Result<()> {
        let _ = fs::remove_file(self.rotated(self.keep));
        for n in (1..self.keep).rev() {
            let from = self.rotated(n);
            if from.exists() {
                fs::rename(&from, self.rotated(n + 1))?;
            }
        }
        let current = self.dir.join(self.name);
        fs::rename(&current, self.rotated(1))?;
        self.file = OpenOptions::new().create(true).append(true).mode(self.mode).open(&current)?;
        self.size = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut bytes = bytes;
        if self.size > 0 && self.size + bytes.len() as u64 > self.max_size {
            if self.at_line_start {
                self.rotate()?;
            } else if let Some(end) = bytes.iter().position(|&b| b == b'\n') {
                // Finish the line here; the next write starts a new file.
                bytes = &bytes[..=end];
            }
        }
        let written = self.file.write(bytes)?;
        self.size += written as u64;
        if written > 0 {
            self.at_line_start = bytes[written - 1] == b'\n';
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A thread-safe logger for the agent.
pub struct AgentLog {
    min_level: Level,
    file: Option<Mutex<RotatingFile>>,
    to_stderr: bool,
}

impl AgentLog {
    /// Logs to stderr only.
    pub fn stderr(min_level: Level) -> Self {
        Self { min_level, file: None, to_stderr: true }
    }

    /// Logs to stderr and to a rotating file in `dir` (`max_size` bytes per
    /// file, `keep` old files).
    pub fn with_directory(
        min_level: Level,
        dir: &Path,
        max_size: u64,
        keep: usize,
        to_stderr: bool,
    ) -> io::Result<Self> {
        let file = RotatingFile::open(dir, LOG_FILE, LOG_MODE, max_size, keep)?;
        Ok(Self { min_level, file: Some(Mutex::new(file)), to_stderr })
    }

    /// Writes one line: `TIME LEVEL message`.
    pub fn log(&self, level: Level, message: &str) {
        if level < self.min_level {
            return;
        }
        let line = format!("{} {:<5} {message}\n", crate::time::format_ms(crate::time::now_ms()), level.as_str());
        if self.to_stderr {
            let _ = io::stderr().write_all(line.as_bytes());
        }
        if let Some(file) = &self.file {
            let mut file = file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Err(err) = file.write_line(line.as_bytes()) {
                let _ = writeln!(io::stderr(), "cefwire: cannot write the agent log: {err}");
            }
        }
    }

    pub fn info(&self, message: &str) {
        self.log(Level::Info, message);
    }

    pub fn warn(&self, message: &str) {
        self.log(Level::Warn, message);
    }

    pub fn error(&self, message: &str) {
        self.log(Level::Error, message);
    }

    /// Logs the error that ends the process to the log file only: the
    /// caller prints it on stderr itself, once.
    pub fn fatal(&self, message: &str) {
        if let Some(file) = &self.file {
            let line = format!("{} ERROR {message}\n", crate::time::format_ms(crate::time::now_ms()));
            let mut file = file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let _ = file.write_line(line.as_bytes());
        }
    }

    pub fn debug(&self, message: &str) {
        self.log(Level::Debug, message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_n_files() {
        let dir = tempfile::tempdir().unwrap();
        let log = AgentLog::with_directory(Level::Info, dir.path(), 200, 2, false).unwrap();
        for n in 0..40 {
            log.info(&format!("line number {n}"));
        }
        log.debug("not written");
        let current = fs::read_to_string(dir.path().join(LOG_FILE)).unwrap();
        assert!(current.contains("line number 39"));
        assert!(current.len() <= 200);
        assert!(dir.path().join(format!("{LOG_FILE}.1")).exists());
        assert!(dir.path().join(format!("{LOG_FILE}.2")).exists());
        assert!(!dir.path().join(format!("{LOG_FILE}.3")).exists());
        // Whatever the umask: group-readable, not world-readable.
        use std::os::unix::fs::PermissionsExt;
        for name in [LOG_FILE.to_owned(), format!("{LOG_FILE}.1")] {
            let mode = fs::metadata(dir.path().join(&name)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, LOG_MODE, "{name}");
        }
        let all: String = [LOG_FILE, "cefwire-agent.log.1", "cefwire-agent.log.2"]
            .iter()
            .map(|f| fs::read_to_string(dir.path().join(f)).unwrap())
            .collect();
        assert!(!all.contains("not written"));
        assert!(all.contains(" INFO  line number 38"));
    }

    #[test]
    fn a_rotating_file_rotates_between_lines_whatever_the_writes() {
        let dir = tempfile::tempdir().unwrap();
        let file = RotatingFile::open(dir.path(), "kept.ndjson", 0o600, 100, 3).unwrap();
        // Small buffer: writes that end mid-line, as a BufWriter's do.
        let mut out = io::BufWriter::with_capacity(7, file);
        for n in 0..60 {
            writeln!(out, "{{\"record\":{n}}}").unwrap();
        }
        out.flush().unwrap();
        let mut lines = Vec::new();
        for name in ["kept.ndjson.3", "kept.ndjson.2", "kept.ndjson.1", "kept.ndjson"] {
            let text = fs::read_to_string(dir.path().join(name)).unwrap();
            assert!(text.len() <= 100 + 14, "{name} holds {} bytes", text.len());
            assert!(text.ends_with('\n') && text.starts_with('{'), "{name} is cut mid-line: {text:?}");
            lines.extend(text.lines().map(str::to_owned));
        }
        assert!(!dir.path().join("kept.ndjson.4").exists(), "three old files at most");
        // The newest lines, in order, none cut.
        let first: usize = lines[0].trim_start_matches("{\"record\":").trim_end_matches('}').parse().unwrap();
        let expected: Vec<String> = (first..60).map(|n| format!("{{\"record\":{n}}}")).collect();
        assert_eq!(lines, expected);
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.path().join("kept.ndjson")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
