//! The requests a portal's rate limit has already counted, shared by every
//! cefwire process of this user on this machine.
//!
//! The API counts requests per tenant, not per process: a `backfill` started
//! right after another (or beside the agent) would otherwise begin with a
//! full allowance while the service's window still holds the other's
//! requests, and get 429s. Each process records when each of its requests
//! was answered in a small file per portal URL; the limiter counts every
//! recorded answer of the last window, whoever sent it, before it lets a
//! request go. Only the newest `requests` answers matter to a limit of
//! `requests` per window, so the file is cut back to them when it has
//! twice as many lines.
//!
//! The file lives in `$XDG_RUNTIME_DIR/cefwire`, else in
//! `<temp dir>/cefwire-<uid>` (mode 0700), named by a hash of the portal
//! URL (FNV-1a, as record ids are hashed); `flock` keeps readers and writers apart. It owns the file only; the
//! limiter decides what to wait for. A ledger that cannot be used (no
//! writable directory, a foreign file) is not an error: the limiter then
//! counts this process's requests only, as before.

use crate::cef::id_hash;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Limits above this many requests a window are not shared (the file
/// would be long and the real API allows 30 a minute).
pub const MAX_SHARED_REQUESTS: u32 = 1_000;

/// One portal's shared record of answered requests.
#[derive(Debug)]
pub struct RateLedger {
    path: PathBuf,
    file: File,
    /// The newest entries that matter (the limit's request count).
    keep: usize,
}

impl RateLedger {
    /// The ledger of `portal_url` in `dir` (created 0700 if missing), for a
    /// limit of `requests` a window.
    pub fn open(dir: &Path, portal_url: &str, requests: u32) -> io::Result<RateLedger> {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        let path = dir.join(format!("rate-{:016x}", id_hash(portal_url.trim_end_matches('/').as_bytes())));
        let file = OpenOptions::new().read(true).append(true).create(true).mode(0o600).open(&path)?;
        Ok(RateLedger { path, file, keep: requests as usize })
    }

    /// Where ledgers live by default.
    pub fn default_dir() -> PathBuf {
        match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
            Some(runtime) => PathBuf::from(runtime).join("cefwire"),
            // SAFETY: getuid has no preconditions and cannot fail.
            None => std::env::temp_dir().join(format!("cefwire-{}", unsafe { libc::getuid() })),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Answer times (ms since the epoch) at or after `since_ms`, oldest
    /// first, as every process recorded them.
    pub fn answers_since(&mut self, since_ms: i64) -> io::Result<Vec<i64>> {
        self.file.lock_shared()?;
        let read = self.read_all();
        self.file.unlock()?;
        let mut times: Vec<i64> = read?.into_iter().filter(|&t| t >= since_ms).collect();
        times.sort_unstable();
        Ok(times)
    }

    /// Records one answer at `at_ms`; cuts the file back to the newest
    /// entries when it has grown to twice as many.
    pub fn record(&mut self, at_ms: i64) -> io::Result<()> {
        self.file.lock()?;
        let result = self.append_and_compact(at_ms);
        self.file.unlock()?;
        result
    }

    fn append_and_compact(&mut self, at_ms: i64) -> io::Result<()> {
        writeln!(self.file, "{at_ms}")?;
        let mut times = self.read_all()?;
        if times.len() >= 2 * self.keep.max(1) {
            times.sort_unstable();
            let newest = &times[times.len() - self.keep.max(1)..];
            let text: String = newest.iter().map(|t| format!("{t}\n")).collect();
            // Under the exclusive lock: nobody reads a half-written file.
            self.file.set_len(0)?;
            self.file.write_all(text.as_bytes())?;
        }
        Ok(())
    }

    /// Every entry; lines that are not a time are skipped.
    fn read_all(&mut self) -> io::Result<Vec<i64>> {
        let mut reader = BufReader::new(&self.file);
        reader.seek(SeekFrom::Start(0))?;
        let mut times = Vec::new();
        for line in reader.lines() {
            if let Ok(time) = line?.trim().parse::<i64>() {
                times.push(time);
            }
        }
        Ok(times)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_ledgers_of_one_portal_see_each_others_answers_and_the_file_stays_short() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = RateLedger::open(dir.path(), "https://t.example/", 3).unwrap();
        let mut second = RateLedger::open(dir.path(), "https://t.example", 3).unwrap();
        let other = RateLedger::open(dir.path(), "https://other.example", 3).unwrap();
        assert_eq!(first.path(), second.path(), "one file per portal, whatever the trailing slash");
        assert_ne!(first.path(), other.path());
        for t in [10, 20, 30] {
            first.record(t).unwrap();
        }
        second.record(40).unwrap();
        assert_eq!(second.answers_since(15).unwrap(), vec![20, 30, 40]);
        assert_eq!(first.answers_since(0).unwrap(), vec![10, 20, 30, 40]);
        for t in [50, 60] {
            second.record(t).unwrap();
        }
        // Six lines reached twice the limit: cut back to the newest three.
        assert_eq!(first.answers_since(0).unwrap(), vec![40, 50, 60]);
        let text = fs::read_to_string(first.path()).unwrap();
        assert_eq!(text, "40\n50\n60\n");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(first.path()).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn garbage_in_the_file_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = RateLedger::open(dir.path(), "https://t.example", 30).unwrap();
        fs::write(ledger.path(), "not a time\n\u{0}\u{1}\n25\n").unwrap();
        ledger.record(26).unwrap();
        assert_eq!(ledger.answers_since(0).unwrap(), vec![25, 26]);
    }
}
