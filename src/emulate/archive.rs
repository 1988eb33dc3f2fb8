//! The emulator's Defender XDR streaming archive: generated `CloudAppEvents`
//! records written into a storage account (Azurite) the way the streaming
//! API writes them — append blobs
//! `tenantId=<t>/y=YYYY/m=MM/d=DD/h=HH/m=00/PT1H.json`, one envelope record
//! per line, appended in blocks over a set time, so a reader sees blobs
//! grow; some records appended to an earlier hour's blob after later hours
//! began (late), some written twice (the streaming API is at-least-once),
//! and now and then a record of another table.
//!
//! It owns the order and pacing of appends. It knows the blob client and the
//! generator, nothing about the CEF side.

use crate::azure::blob::{BlobClient, BlobConfig, StorageError};
use crate::generate::successors::write_iso_time;
use crate::generate::{GenerateConfig, RecordGenerator};
use crate::rng::Rng;
use crate::syslog::header::CivilTime;
use crate::time::parse_iso8601_ms;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The container Defender XDR streams `CloudAppEvents` into.
pub const CONTAINER: &str = "insights-logs-advancedhunting-cloudappevents";

const HOUR_MS: i64 = 3_600_000;
/// Azurite's (and older services') largest append block.
const MAX_BLOCK_BYTES: usize = 4 << 20;

/// What to write.
#[derive(Clone, Debug)]
pub struct ArchiveConfig {
    pub blob: BlobConfig,
    pub container: String,
    /// `kind` must be `CloudAppEvents`; records are spread over
    /// `start_ms..start_ms + span_ms` and land in the blob of their hour.
    pub records: GenerateConfig,
    /// Fraction of records held back and appended to their hour's blob
    /// one to three hours (of archive time) later.
    pub late_ratio: f64,
    /// Fraction of records written a second time, a little later.
    pub duplicate_ratio: f64,
    /// Every `other_table_every`-th record is followed by a record of
    /// another table (0: none).
    pub other_table_every: u64,
    /// Records per append (fewer when the block would pass 4 MiB).
    pub block_records: usize,
    /// The appends are spread evenly over this long (zero: as fast as the
    /// account takes them).
    pub duration: Duration,
}

/// What was written so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArchiveStats {
    /// `CloudAppEvents` records written (each once; duplicates apart).
    pub records: u64,
    pub late: u64,
    pub duplicates: u64,
    pub other_tables: u64,
    pub blobs: u64,
    pub appends: u64,
    pub bytes: u64,
}

impl ArchiveStats {
    pub fn summary(&self) -> String {
        format!(
            "{} CloudAppEvents records ({} appended late to an earlier hour's blob, {} written twice) and {} of other tables in {} blobs, {} appends, {:.1} MB",
            self.records,
            self.late,
            self.duplicates,
            self.other_tables,
            self.blobs,
            self.appends,
            self.bytes as f64 / 1e6
        )
    }
}

/// A line waiting for its blob, and from which archive hour on it may go.
struct Held {
    hour: i64,
    not_before_hour: i64,
    line: Vec<u8>,
}

/// Writes the archive; `progress` hears the counts after every append.
/// Stops early (with what was written) when `stop` is set.
pub fn write_archive(
    config: &ArchiveConfig,
    stop: &AtomicBool,
    mut progress: impl FnMut(&ArchiveStats),
) -> Result<ArchiveStats, StorageError> {
    let mut client = BlobClient::new(&config.blob)?;
    client.create_container(&config.container)?;
    let mut writer = Writer {
        client: &mut client,
        container: &config.container,
        created: HashSet::new(),
        stats: ArchiveStats::default(),
        tenant: String::new(),
    };
    let mut generator = RecordGenerator::new(config.records.clone());
    let mut dice = Rng::new(config.records.seed ^ 0x00A4_C11E);
    let total = config.records.count.max(1);
    let started = Instant::now();
    let mut held: Vec<Held> = Vec::new();
    // The current hour's block.
    let mut block: Vec<u8> = Vec::new();
    let mut block_hour = i64::MIN;
    let mut block_count = 0usize;
    let mut line = Vec::new();
    let mut index = 0u64;
    while !stop.load(Ordering::Relaxed) {
        line.clear();
        if !generator.write_next(&mut line) {
            break;
        }
        index += 1;
        let Some(hour) = hour_of(&line) else { continue };
        if writer.tenant.is_empty() {
            writer.tenant = tenant_of(&line).unwrap_or("00000000-0000-0000-0000-000000000000").to_owned();
        }
        if hour != block_hour {
            writer.append(block_hour, &mut block)?;
            block_count = 0;
            block_hour = hour;
            // An hour began: what was held back for earlier hours may go now.
            writer.release(&mut held, hour)?;
            progress(&writer.stats);
        }
        line.push(b'\n');
        writer.stats.records += 1;
        if dice.chance(config.late_ratio) {
            writer.stats.late += 1;
            held.push(Held { hour, not_before_hour: hour + 1 + dice.below(3) as i64, line: line.clone() });
        } else {
            block.extend_from_slice(&line);
            block_count += 1;
        }
        if dice.chance(config.duplicate_ratio) {
            writer.stats.duplicates += 1;
            held.push(Held { hour, not_before_hour: hour + dice.below(3) as i64, line: line.clone() });
        }
        if config.other_table_every > 0 && index.is_multiple_of(config.other_table_every) {
            writer.stats.other_tables += 1;
            other_table_record(&line, index, &mut block);
        }
        if block_count >= config.block_records.max(1) || block.len() >= MAX_BLOCK_BYTES / 2 {
            writer.append(block_hour, &mut block)?;
            block_count = 0;
            writer.release(&mut held, block_hour)?;
            progress(&writer.stats);
            pace(config.duration, started, index, total, stop);
        }
    }
    writer.append(block_hour, &mut block)?;
    writer.release(&mut held, i64::MAX)?;
    progress(&writer.stats);
    Ok(writer.stats)
}

struct Writer<'a> {
    client: &'a mut BlobClient,
    container: &'a str,
    created: HashSet<i64>,
    stats: ArchiveStats,
    tenant: String,
}

impl Writer<'_> {
    /// Appends `block` (then empties it) to the blob of `hour`, creating
    /// the blob first if needed.
    fn append(&mut self, hour: i64, block: &mut Vec<u8>) -> Result<(), StorageError> {
        if block.is_empty() {
            return Ok(());
        }
        let name = blob_name(&self.tenant, hour);
        if self.created.insert(hour) {
            self.client.create_append_blob(self.container, &name)?;
            self.stats.blobs += 1;
        }
        for chunk in split_at_lines(block, MAX_BLOCK_BYTES) {
            self.client.append_block(self.container, &name, chunk)?;
            self.stats.appends += 1;
            self.stats.bytes += chunk.len() as u64;
        }
        block.clear();
        Ok(())
    }

    /// Appends the held lines whose time has come (by `current` hour),
    /// grouped per blob.
    fn release(&mut self, held: &mut Vec<Held>, current: i64) -> Result<(), StorageError> {
        let mut due: BTreeMap<i64, Vec<u8>> = BTreeMap::new();
        held.retain(|h| {
            if h.not_before_hour <= current {
                due.entry(h.hour).or_default().extend_from_slice(&h.line);
                false
            } else {
                true
            }
        });
        for (hour, mut block) in due {
            self.append(hour, &mut block)?;
        }
        Ok(())
    }
}

/// Sleeps so that `done` of `total` records take `done / total` of `duration`.
fn pace(duration: Duration, started: Instant, done: u64, total: u64, stop: &AtomicBool) {
    let due = started + duration.mul_f64(done as f64 / total as f64);
    while Instant::now() < due && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(due.saturating_duration_since(Instant::now()).min(Duration::from_millis(100)));
    }
}

/// Pieces of at most `max` bytes, each ending at a line end.
fn split_at_lines(block: &[u8], max: usize) -> impl Iterator<Item = &[u8]> {
    let mut rest = block;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let cut = if rest.len() <= max {
            rest.len()
        } else {
            memchr::memrchr(b'\n', &rest[..max]).map_or(rest.len(), |at| at + 1)
        };
        let (piece, tail) = rest.split_at(cut);
        rest = tail;
        Some(piece)
    })
}

/// The hour (epoch hours) of a record's envelope `time`.
fn hour_of(line: &[u8]) -> Option<i64> {
    let time = field_str(line, b"\"time\":\"")?;
    Some(parse_iso8601_ms(time, 9)?.div_euclid(HOUR_MS))
}

fn tenant_of(line: &[u8]) -> Option<&str> {
    std::str::from_utf8(field_str(line, b"\"tenantId\":\"")?).ok()
}

/// The string value after `key` (a generated record's envelope fields have
/// no escapes).
fn field_str<'a>(line: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let start = memchr::memmem::find(line, key)? + key.len();
    let len = memchr::memchr(b'"', &line[start..])?;
    Some(&line[start..start + len])
}

/// `tenantId=<t>/y=YYYY/m=MM/d=DD/h=HH/m=00/PT1H.json`.
pub fn blob_name(tenant: &str, hour: i64) -> String {
    // Generated times lie in years 0000-9999; 1970 stands in otherwise.
    let t = CivilTime::from_epoch_ms(hour.saturating_mul(HOUR_MS))
        .unwrap_or_else(|_| CivilTime::from_epoch_ms(0).expect("1970 is in range"));
    format!("tenantId={tenant}/y={:04}/m={:02}/d={:02}/h={:02}/m=00/PT1H.json", t.year, t.month, t.day, t.hour)
}

/// A record of another table next to `line` (same time), to be skipped.
fn other_table_record(line: &[u8], index: u64, out: &mut Vec<u8>) {
    let time = field_str(line, b"\"time\":\"").and_then(|t| parse_iso8601_ms(t, 9)).unwrap_or(0);
    out.extend_from_slice(b"{\"time\":\"");
    write_iso_time(time, Some(0), out);
    out.extend_from_slice(b"\",\"category\":\"AdvancedHunting-DeviceEvents\",\"properties\":{\"Timestamp\":\"");
    write_iso_time(time, Some(0), out);
    out.extend_from_slice(b"\",\"ActionType\":\"ProcessCreated\",\"ReportId\":");
    out.extend_from_slice(itoa::Buffer::new().format(index).as_bytes());
    out.extend_from_slice(b"}}\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_pieces() {
        assert_eq!(blob_name("t", 1_714_564_800_000 / HOUR_MS), "tenantId=t/y=2024/m=05/d=01/h=12/m=00/PT1H.json");
        let block = b"aaaa\nbb\ncccccc\n";
        let pieces: Vec<&[u8]> = split_at_lines(block, 8).collect();
        assert_eq!(pieces, [&b"aaaa\nbb\n"[..], b"cccccc\n"]);
        let line = br#"{"time":"2024-05-01T12:59:59.9999999Z","tenantId":"abc","x":1}"#;
        assert_eq!(hour_of(line), Some(1_714_564_800_000 / HOUR_MS));
        assert_eq!(tenant_of(line), Some("abc"));
    }
}
