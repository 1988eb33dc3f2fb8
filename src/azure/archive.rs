//! Reading the Defender XDR streaming archive in an Azure Storage account:
//! the `CloudAppEvents` container's append blobs
//! (`tenantId=<t>/y=YYYY/m=MM/d=DD/h=HH/m=00/PT1H.json`, one record per
//! line, CRLF or LF), which keep growing during their hour and may be
//! appended to hours later.
//!
//! [`ArchiveReader`] lists the blobs of a span of hours, keeps a read
//! position per blob and hands out [`Chunk`]s: the next complete lines of
//! one blob, read with a ranged GET of the new bytes only. A line still
//! being written (no newline yet) stays for a later visit; a line longer
//! than the limit is skipped to its newline without being held and handed
//! out as [`Chunk::TooLong`]; a blob now shorter than its read position
//! (truncated), or created again since it was read (its `Creation-Time`
//! changed, whatever its size), is read again from its start; a blob
//! deleted between the listing and its read is handed out as
//! [`Chunk::Gone`] and forgotten, the others are read on.
//! Memory stays within one read (`read_bytes`, or `max_line_bytes` while a
//! long line is looked at).
//!
//! The reader's [`positions`](ArchiveReader::positions) are what a caller
//! checkpoints once the chunks handed out so far were delivered; a reader
//! started from them reads nothing of what came before. It owns listing,
//! positions and ranged reads; it never parses records, converts or sends.

use super::blob::{BlobClient, BlobConfig, StorageError, StorageStats};
use crate::time::days_from_civil;
use std::collections::{BTreeMap, VecDeque};

/// The container Defender XDR streams `CloudAppEvents` into.
pub const CONTAINER: &str = "insights-logs-advancedhunting-cloudappevents";

/// One hour, in ms.
pub const HOUR_MS: i64 = 3_600_000;

/// Validated settings of the archive reader.
#[derive(Clone, Debug)]
pub struct ArchiveConfig {
    pub blob: BlobConfig,
    pub container: String,
    /// Only blobs whose names start with this (`tenantId=<guid>/`; empty:
    /// every tenant in the container).
    pub prefix: String,
    /// The agent reads the blobs of the hours within this much before now.
    pub look_back_ms: i64,
    /// Bytes asked for per ranged GET.
    pub read_bytes: u64,
    /// The longest line accepted; a longer one is skipped and reported.
    pub max_line_bytes: u64,
}

impl ArchiveConfig {
    /// Defaults: the streaming container, every tenant, 48 h look-back,
    /// 4 MiB reads, lines up to 8 MiB.
    pub fn new(blob: BlobConfig) -> Self {
        Self {
            blob,
            container: CONTAINER.to_owned(),
            prefix: String::new(),
            look_back_ms: 48 * HOUR_MS,
            read_bytes: 4 << 20,
            max_line_bytes: 8 << 20,
        }
    }
}

/// Where a chunk sits in its blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkPosition {
    pub blob: String,
    /// Offset of the chunk's first byte.
    pub start: u64,
    /// Offset just after its last newline.
    pub end: u64,
}

/// What [`ArchiveReader::next_chunk`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Chunk {
    /// Complete lines, in the caller's buffer (`end - start` bytes).
    Lines(ChunkPosition),
    /// A line longer than the limit, skipped (not in the buffer).
    TooLong(ChunkPosition),
    /// The blob was deleted after it was listed: skipped and forgotten
    /// (nothing in the buffer; the other blobs are read on).
    Gone(String),
}

/// How far a blob was read, and which blob of that name it was.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlobPosition {
    /// The offset after the last complete line handed out.
    pub offset: u64,
    /// The blob's `Creation-Time` (ms) when it was read; `None` when not
    /// known (a checkpoint of an older version: learnt at the next listing).
    pub created_ms: Option<i64>,
}

/// A blob read again from its start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restarted {
    pub blob: String,
    /// The offset it had been read to.
    pub read: u64,
    /// Its size now.
    pub size: u64,
    /// Created again since it was read (else: truncated).
    pub created_again: bool,
}

/// Counts of a reader's work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArchiveStats {
    pub listings: u64,
    /// Blobs in the hours read, at the last listing.
    pub blobs: u64,
    pub chunks: u64,
    /// Bytes of complete lines handed out.
    pub bytes: u64,
    /// Lines skipped for being too long.
    pub too_long: u64,
    /// Blobs found shorter than their read position or created again since
    /// they were read (read again from 0).
    pub restarted_blobs: u64,
    /// Blobs deleted between their listing and their read (skipped).
    pub gone_blobs: u64,
    /// Blob visits that ended inside a line still being written.
    pub unfinished_tails: u64,
}

/// What one listing changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Refresh {
    /// Blobs with bytes beyond their read position.
    pub queued: usize,
    /// Those bytes, all queued blobs together.
    pub new_bytes: u64,
    /// Blobs shorter than their read position or created again: read
    /// again from their start.
    pub restarted: Vec<Restarted>,
}

/// A too-long line being skipped: where it began, how far it was looked at.
#[derive(Clone, Debug)]
struct Skip {
    blob: String,
    created_ms: Option<i64>,
    line_start: u64,
    scanned_to: u64,
}

/// Hands out the archive's new complete lines, blob by blob.
pub struct ArchiveReader {
    client: BlobClient,
    config: ArchiveConfig,
    /// Per blob, the offset after the last complete line handed out.
    read: BTreeMap<String, BlobPosition>,
    /// Blobs with bytes beyond their read position: name, listed size and
    /// creation time.
    queue: VecDeque<(String, u64, Option<i64>)>,
    skipping: Option<Skip>,
    stats: ArchiveStats,
}

impl ArchiveReader {
    /// A reader that starts at `positions` (a checkpoint; empty: every
    /// blob from its start).
    pub fn new(config: &ArchiveConfig, positions: BTreeMap<String, BlobPosition>) -> Result<Self, StorageError> {
        Ok(Self {
            client: BlobClient::new(&config.blob)?,
            config: config.clone(),
            read: positions,
            queue: VecDeque::new(),
            skipping: None,
            stats: ArchiveStats::default(),
        })
    }

    pub fn config(&self) -> &ArchiveConfig {
        &self.config
    }

    pub fn stats(&self) -> ArchiveStats {
        self.stats
    }

    /// The storage client's counters (requests, retries, tokens).
    pub fn client_stats(&self) -> StorageStats {
        self.client.stats()
    }

    /// Per blob, the offset after the last line handed out (and which
    /// blob of that name it was).
    pub fn positions(&self) -> &BTreeMap<String, BlobPosition> {
        &self.read
    }

    /// Lists the blobs of the hours that overlap `from_ms..until_ms` and
    /// queues those with bytes beyond their read position, oldest hour
    /// first. Positions of blobs of hours before `from_ms` are forgotten.
    pub fn refresh(&mut self, from_ms: i64, until_ms: i64) -> Result<Refresh, StorageError> {
        let in_span = |name: &str| blob_hour_ms(name).is_some_and(|hour| hour + HOUR_MS > from_ms && hour < until_ms);
        let mut found = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self.client.list_blobs(&self.config.container, &self.config.prefix, marker.as_deref(), 5000)?;
            self.stats.listings += 1;
            found.extend(page.blobs.into_iter().filter(|b| in_span(&b.name)).map(|b| (b.name, b.size, b.created_ms)));
            marker = page.next_marker;
            if marker.is_none() {
                break;
            }
        }
        self.stats.blobs = found.len() as u64;
        // Names sort by tenant, then hour: oldest hour first within a tenant.
        found.sort();
        let mut refresh = Refresh::default();
        self.queue.clear();
        for (name, size, created_ms) in found {
            let known = self.read.get(&name).copied().unwrap_or_default();
            let created_again = matches!((known.created_ms, created_ms), (Some(was), Some(is)) if was != is);
            if known.offset > 0 && (created_again || size < known.offset) {
                // Truncated, or deleted and written again (grown past the
                // old offset or not): what it holds now was never read.
                // Records read before are dropped by the caller's ReportId
                // de-duplication.
                self.stats.restarted_blobs += 1;
                refresh.restarted.push(Restarted { blob: name.clone(), read: known.offset, size, created_again });
                self.read.insert(name.clone(), BlobPosition { offset: 0, created_ms });
                if self.skipping.as_ref().is_some_and(|s| s.blob == name) {
                    self.skipping = None;
                }
            } else if let Some(position) = self.read.get_mut(&name) {
                // A checkpoint without creation times learns them here.
                position.created_ms = position.created_ms.or(created_ms);
            }
            let position = self.read.get(&name).map_or(0, |p| p.offset);
            if size > position {
                refresh.new_bytes += size - position;
                self.queue.push_back((name, size, created_ms));
            }
        }
        refresh.queued = self.queue.len();
        self.read.retain(|name, _| blob_hour_ms(name).is_none_or(|hour| hour + HOUR_MS > from_ms));
        Ok(refresh)
    }

    /// Blobs queued with new bytes.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// Reads the next complete lines of the queued blobs into `buffer`
    /// (cleared first). `None` when nothing queued has a complete line
    /// (call [`refresh`](Self::refresh) to look again).
    pub fn next_chunk(&mut self, buffer: &mut Vec<u8>) -> Result<Option<Chunk>, StorageError> {
        while let Some((name, size, created_ms)) = self.queue.front().cloned() {
            let found = if self.skipping.as_ref().is_some_and(|s| s.blob == name) {
                self.skip_on(buffer)
            } else {
                self.read_lines(&name, size, created_ms, buffer)
            };
            match found {
                Ok(Some(chunk)) => return Ok(Some(chunk)),
                Ok(None) => {
                    self.queue.pop_front();
                }
                // Deleted since the listing: nothing more to read of it. Its
                // position goes too (a blob created again under the name
                // is another blob, read from its start).
                Err(err) if err.is_blob_gone() => {
                    self.queue.pop_front();
                    self.read.remove(&name);
                    if self.skipping.as_ref().is_some_and(|s| s.blob == name) {
                        self.skipping = None;
                    }
                    self.stats.gone_blobs += 1;
                    buffer.clear();
                    return Ok(Some(Chunk::Gone(name)));
                }
                Err(err) => return Err(err),
            }
        }
        buffer.clear();
        Ok(None)
    }

    /// The next complete lines of `name` from its read position; `None`
    /// when it holds no further complete line (yet).
    fn read_lines(
        &mut self,
        name: &str,
        size: u64,
        created_ms: Option<i64>,
        buffer: &mut Vec<u8>,
    ) -> Result<Option<Chunk>, StorageError> {
        let start = self.read.get(name).map_or(0, |p| p.offset);
        if start >= size {
            return Ok(None);
        }
        let mut want = self.config.read_bytes.max(1);
        loop {
            let got = self.client.get_range(&self.config.container, name, start, want, buffer)?;
            if got.blob_size < start {
                // Shrunk since the listing: the next refresh restarts it.
                return Ok(None);
            }
            match memchr::memrchr(b'\n', buffer) {
                Some(at) => {
                    buffer.truncate(at + 1);
                    let end = start + at as u64 + 1;
                    self.read.insert(name.to_owned(), BlobPosition { offset: end, created_ms });
                    self.stats.chunks += 1;
                    self.stats.bytes += buffer.len() as u64;
                    return Ok(Some(Chunk::Lines(ChunkPosition { blob: name.to_owned(), start, end })));
                }
                // The blob ends inside a line still being written.
                None if (buffer.len() as u64) < want => {
                    self.stats.unfinished_tails += 1;
                    return Ok(None);
                }
                // A line longer than one read: look further, up to the limit.
                None if want < self.config.max_line_bytes => want = (want * 2).min(self.config.max_line_bytes),
                // Longer than the limit: skip to its newline, holding nothing.
                None => {
                    let scanned_to = start + buffer.len() as u64;
                    self.skipping = Some(Skip { blob: name.to_owned(), created_ms, line_start: start, scanned_to });
                    return self.skip_on(buffer);
                }
            }
        }
    }

    /// Reads on through the too-long line being skipped, one read at a
    /// time, to its newline; `None` when the blob ends first (the line is
    /// still being written: looked at again on the next visit).
    fn skip_on(&mut self, buffer: &mut Vec<u8>) -> Result<Option<Chunk>, StorageError> {
        let step = self.config.read_bytes.max(1);
        loop {
            let skip = self.skipping.as_mut().expect("skipping a line");
            self.client.get_range(&self.config.container, &skip.blob, skip.scanned_to, step, buffer)?;
            if let Some(at) = memchr::memchr(b'\n', buffer) {
                let end = skip.scanned_to + at as u64 + 1;
                let position = ChunkPosition { blob: skip.blob.clone(), start: skip.line_start, end };
                self.read.insert(position.blob.clone(), BlobPosition { offset: end, created_ms: skip.created_ms });
                self.skipping = None;
                self.stats.too_long += 1;
                buffer.clear();
                return Ok(Some(Chunk::TooLong(position)));
            }
            skip.scanned_to += buffer.len() as u64;
            let at_end = (buffer.len() as u64) < step;
            buffer.clear();
            if at_end {
                self.stats.unfinished_tails += 1;
                return Ok(None);
            }
        }
    }
}

/// The start of the hour a blob holds (epoch ms), from its
/// `…y=YYYY/m=MM/d=DD/h=HH/m=00/…` name; `None` for other names.
pub fn blob_hour_ms(name: &str) -> Option<i64> {
    let mut fields = [None::<i64>; 4];
    for part in name.split('/') {
        let Some((key, value)) = part.split_once('=') else { continue };
        let slot = match key {
            "y" => 0,
            // The first `m=` is the month, the second the minute.
            "m" if fields[1].is_none() => 1,
            "d" => 2,
            "h" => 3,
            _ => continue,
        };
        fields[slot] = Some(value.parse().ok()?);
    }
    let [Some(year), Some(month), Some(day), Some(hour)] = fields else { return None };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || !(0..24).contains(&hour) {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400_000 + hour * HOUR_MS)
}

/// `tenantId=<t>/y=YYYY/m=MM/d=DD/h=HH/m=00/PT1H.json` of the hour that
/// holds `ms`.
pub fn blob_name(tenant: &str, ms: i64) -> String {
    let hour = ms - ms.rem_euclid(HOUR_MS);
    let days = hour.div_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let h = (hour - days * 86_400_000) / HOUR_MS;
    format!("tenantId={tenant}/y={year:04}/m={month:02}/d={day:02}/h={h:02}/m=00/PT1H.json")
}

/// The date of days since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_from_blob_names_and_back() {
        let name = "tenantId=4d8f/y=2024/m=05/d=01/h=12/m=00/PT1H.json";
        assert_eq!(blob_hour_ms(name), Some(1_714_564_800_000));
        assert_eq!(blob_name("4d8f", 1_714_564_800_000 + 59 * 60_000), name);
        assert_eq!(blob_hour_ms("tenantId=x/y=2024/m=13/d=01/h=12/m=00/PT1H.json"), None);
        assert_eq!(blob_hour_ms("tenantId=x/y=2024/m=12/d=01/h=24/m=00/PT1H.json"), None);
        assert_eq!(blob_hour_ms("other/PT1H.json"), None);
        assert_eq!(blob_hour_ms("y=2024/m=x/d=01/h=01/m=00/PT1H.json"), None);
        // Every hour of a few years goes there and back.
        for hour in (0..4 * 365 * 24).map(|h| 1_700_000_000_000 - 1_700_000_000_000 % HOUR_MS + h * HOUR_MS) {
            assert_eq!(blob_hour_ms(&blob_name("t", hour)), Some(hour));
        }
    }
}
