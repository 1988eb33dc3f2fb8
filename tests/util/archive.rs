//! The streaming archive for the Storage source's tests: `cefwire emulate
//! --archive-to` writing generated `CloudAppEvents` into Azurite (append
//! blobs per hour, late appends to earlier hours, duplicates, records of
//! other tables), and the receiver's view of what arrived — every
//! `externalId` (the `ReportId`) in rsyslog's output counted, compared as
//! sets with the ids the generator made, the first differences printed.

use super::{cefwire, first_line, json_u64, signal, wait_or_kill};
use cefwire::generate::successors::report_id;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A running emulator writing an archive.
pub struct ArchiveWriter {
    child: Option<Child>,
    base: String,
    pub records: u64,
    pub seed: u64,
}

impl ArchiveWriter {
    /// Starts writing `records` records of the last `span` (e.g. `"5h"`)
    /// into `container`, spread over `duration` (e.g. `"60s"`).
    pub fn start(endpoint: &str, container: &str, records: u64, seed: u64, span: &str, duration: &str) -> Self {
        let mut child = cefwire()
            .args(["emulate", "--listen", "127.0.0.1:0", "--seed", &seed.to_string(), "--quiet"])
            .args(["--archive-to", endpoint, "--archive-container", container])
            .args(["--archive-records", &records.to_string(), "--archive-span", span])
            .args(["--archive-duration", duration, "--archive-block", "500"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cefwire emulate starts");
        let base = first_line(child.stdout.take().unwrap(), Duration::from_secs(120), "emulator URL");
        ArchiveWriter { child: Some(child), base, records, seed }
    }

    fn stats(&self) -> String {
        ureq::get(&format!("{}/stats", self.base))
            .call()
            .ok()
            .and_then(|r| r.into_body().read_to_string().ok())
            .unwrap_or_default()
    }

    /// Records written so far.
    pub fn written(&self) -> u64 {
        let stats = self.stats();
        if stats.is_empty() { 0 } else { json_u64(&stats, "archiveRecords") }
    }

    pub fn done(&self) -> bool {
        self.stats().contains("\"archiveDone\":true")
    }

    /// Waits until every record is written (at most `timeout`).
    pub fn wait_done(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.done() {
            assert!(Instant::now() < deadline, "the archive was not written within {timeout:?}: {}", self.stats());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Every `ReportId` the archive holds (each once).
    pub fn report_ids(&self) -> HashSet<u64> {
        (0..self.records).map(|i| report_id(self.seed, i)).collect()
    }

    /// SIGTERM; it must exit 0.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("running");
        signal(&child, libc::SIGTERM);
        let status = wait_or_kill(&mut child, Duration::from_secs(60), "emulate after SIGTERM");
        assert!(status.success(), "emulate exits 0 after SIGTERM: {status}");
    }
}

impl Drop for ArchiveWriter {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How often each `externalId` arrived in `file` (rsyslog's raw output).
pub fn received_ids(file: &Path) -> HashMap<u64, u32> {
    let bytes = std::fs::read(file).unwrap_or_default();
    let mut seen = HashMap::new();
    for line in bytes.split(|&b| b == b'\n') {
        if let Some(id) = super::external_id(line) {
            let id = std::str::from_utf8(id).ok().and_then(|id| id.parse::<u64>().ok()).unwrap_or(u64::MAX);
            *seen.entry(id).or_insert(0) += 1;
        }
    }
    seen
}

/// Distinct ids in `file`.
pub fn unique_ids(file: &Path) -> usize {
    received_ids(file).len()
}

/// Every expected id arrived and nothing else did (sets, not order; the
/// first differences printed); returns the duplicates (arrivals beyond
/// the first).
pub fn check_every_id(received: &HashMap<u64, u32>, expected: &HashSet<u64>, context: &str) -> u64 {
    let mut missing: Vec<u64> = expected.iter().filter(|id| !received.contains_key(id)).copied().collect();
    let mut unexpected: Vec<u64> = received.keys().filter(|id| !expected.contains(id)).copied().collect();
    missing.sort_unstable();
    unexpected.sort_unstable();
    assert!(
        missing.is_empty() && unexpected.is_empty(),
        "{context}: {} of {} ReportIds never arrived (first: {:?}); {} arrived that were never written (first: {:?})",
        missing.len(),
        expected.len(),
        &missing[..missing.len().min(10)],
        unexpected.len(),
        &unexpected[..unexpected.len().min(10)]
    );
    received.values().map(|&n| u64::from(n) - 1).sum()
}

/// The ids that arrived more than once, the first few with their counts.
pub fn first_duplicates(received: &HashMap<u64, u32>) -> Vec<(u64, u32)> {
    let mut twice: Vec<(u64, u32)> = received.iter().filter(|(_, n)| **n > 1).map(|(id, n)| (*id, *n)).collect();
    twice.sort_unstable();
    twice.truncate(10);
    twice
}
