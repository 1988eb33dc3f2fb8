//! The emulator's records: raw JSON bytes kept once in memory, with small
//! sorted indexes so a query finds its time range by binary search and a
//! response is written by copying stored bytes (nothing is reparsed per
//! request).
//!
//! It owns loading (NDJSON/page files through [`crate::input`], or the
//! seeded [`RecordGenerator`]) and the two record sets (activities,
//! alerts). It knows nothing about HTTP or request bodies.

use crate::generate::{GenerateConfig, GenerateKind, RecordGenerator};
use crate::input::DocumentReader;
use crate::input::source::InputPath;
use crate::json::{INPUT_PADDING, JsonParser, JsonValue, write_compact_json};
use std::io;

/// What the emulator knows about one stored record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    /// Where its JSON starts in [`RecordSet::bytes`].
    pub offset: u64,
    pub len: u32,
    /// `timestamp` (ms): when it happened (the `date` filter and sort).
    pub timestamp: i64,
    /// `created` (ms): when it was stored. Alerts have none: it equals
    /// `timestamp` for them.
    pub created: i64,
    /// `appId` of an activity, or the first `service` entity of an alert.
    pub service: i64,
}

/// One kind of record (activities or alerts), immutable once built.
#[derive(Default)]
pub struct RecordSet {
    bytes: Vec<u8>,
    /// Sorted by (`timestamp`, insertion order).
    by_date: Vec<StoredRecord>,
    /// Positions in `by_date`, sorted by (`created`, position).
    by_created: Vec<u32>,
}

/// The time field a query sorts and pages on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeField {
    /// `timestamp`, called `date` in filters and `sortField`.
    Date,
    Created,
}

impl RecordSet {
    pub fn len(&self) -> usize {
        self.by_date.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_date.is_empty()
    }

    /// The raw JSON of a record.
    pub fn json(&self, record: &StoredRecord) -> &[u8] {
        let start = record.offset as usize;
        &self.bytes[start..start + record.len as usize]
    }

    /// Number of records in the ordering by `field`.
    pub fn ordered_len(&self) -> usize {
        self.by_date.len()
    }

    /// The record at `position` of the ordering by `field`.
    pub fn at(&self, field: TimeField, position: usize) -> &StoredRecord {
        match field {
            TimeField::Date => &self.by_date[position],
            TimeField::Created => &self.by_date[self.by_created[position] as usize],
        }
    }

    /// First position in the ordering by `field` whose time is `>= time`.
    pub fn lower_bound(&self, field: TimeField, time: i64) -> usize {
        match field {
            TimeField::Date => self.by_date.partition_point(|r| r.timestamp < time),
            TimeField::Created => self.by_created.partition_point(|&i| self.by_date[i as usize].created < time),
        }
    }

    /// Total bytes of raw JSON held.
    pub fn json_bytes(&self) -> usize {
        self.bytes.len()
    }
}

/// Builds a [`RecordSet`] from records added in any order.
#[derive(Default)]
pub struct RecordSetBuilder {
    set: RecordSet,
}

impl RecordSetBuilder {
    /// Stores a parsed record; `None` when it has no usable `timestamp`.
    fn push(&mut self, record: JsonValue<'_, '_>, is_alert: bool) -> Option<()> {
        let timestamp = record.get("timestamp")?.as_i64_lenient()?;
        let created = if is_alert {
            timestamp
        } else {
            record.get("created").and_then(|v| v.as_i64_lenient()).unwrap_or(timestamp)
        };
        let service =
            if is_alert { alert_service(record) } else { record.get("appId").and_then(|v| v.as_i64_lenient()) };
        let offset = self.set.bytes.len();
        write_compact_json(record, &mut self.set.bytes);
        let len = u32::try_from(self.set.bytes.len() - offset).ok()?;
        self.set.by_date.push(StoredRecord {
            offset: offset as u64,
            len,
            timestamp,
            created,
            service: service.unwrap_or(-1),
        });
        Some(())
    }

    pub fn build(mut self) -> RecordSet {
        // Stable sorts keep insertion order for equal times, so paging is
        // deterministic.
        self.set.by_date.sort_by_key(|r| r.timestamp);
        let mut by_created: Vec<u32> = (0..self.set.by_date.len() as u32).collect();
        by_created.sort_by_key(|&i| self.set.by_date[i as usize].created);
        self.set.by_created = by_created;
        self.set.bytes.shrink_to_fit();
        self.set
    }
}

fn alert_service(record: JsonValue<'_, '_>) -> Option<i64> {
    record
        .get("entities")?
        .array()?
        .find(|e| e.get("type").and_then(|t| t.as_str()) == Some("service"))?
        .get("id")?
        .as_i64_lenient()
}

/// Calls `add(index, buf, len)` with each generated record of `config` in
/// `buf[..len]`, padded for the parser.
pub(super) fn for_each_generated(config: GenerateConfig, mut add: impl FnMut(u64, &mut [u8], usize)) {
    let mut generator = RecordGenerator::new(config);
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut index = 0u64;
    loop {
        buf.clear();
        if !generator.write_next(&mut buf) {
            return;
        }
        let len = buf.len();
        buf.resize(len + INPUT_PADDING, 0);
        add(index, &mut buf, len);
        index += 1;
    }
}

/// Every record set the emulator serves.
#[derive(Default)]
pub struct RecordStore {
    pub activities: RecordSet,
    pub alerts: RecordSet,
    /// Graph `alerts_v2` alerts.
    pub graph_alerts: super::graph::GraphAlerts,
}

/// Counts from loading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadCounts {
    pub activities: u64,
    pub alerts: u64,
    /// Records without a usable `timestamp`, or documents that are not JSON.
    pub skipped: u64,
}

/// Error while loading emulator data.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{file}: {source}")]
    Open { file: String, source: io::Error },
    #[error("{file}: {reason}")]
    Read { file: String, reason: String },
}

/// Which set a file's records go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataKind {
    Activities,
    Alerts,
}

/// Collects records into a [`RecordStore`].
#[derive(Default)]
pub struct StoreBuilder {
    activities: RecordSetBuilder,
    alerts: RecordSetBuilder,
    /// Graph `alerts_v2` alerts, loaded with their own builder.
    pub graph_alerts: super::graph::GraphAlertsBuilder,
    parser: JsonParser,
    pub counts: LoadCounts,
}

impl StoreBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds every record of one JSON document (a record, a `{"data":[…]}`
    /// page or a bare array) held in `bytes[..len]`, padded.
    pub fn add_document(&mut self, bytes: &mut [u8], len: usize, kind: DataKind) {
        let Self { activities, alerts, parser, counts, .. } = self;
        let target = match kind {
            DataKind::Activities => activities,
            DataKind::Alerts => alerts,
        };
        let is_alert = kind == DataKind::Alerts;
        let parsed = parser.parse(bytes, len, |root| {
            let mut add = |record: JsonValue<'_, '_>| match target.push(record, is_alert) {
                Some(()) if is_alert => counts.alerts += 1,
                Some(()) => counts.activities += 1,
                None => counts.skipped += 1,
            };
            if let Some(items) = root.array() {
                items.for_each(&mut add);
            } else if let (None, Some(items)) = (root.get("_id"), root.get("data").and_then(|d| d.array())) {
                items.for_each(&mut add);
            } else {
                add(root);
            }
        });
        if parsed.is_err() {
            self.counts.skipped += 1;
        }
    }

    /// Loads an NDJSON or page file (plain, gzip or zstd).
    pub fn add_file(&mut self, path: &InputPath, kind: DataKind) -> Result<(), LoadError> {
        let mut reader =
            DocumentReader::open(path).map_err(|source| LoadError::Open { file: path.display_name(), source })?;
        loop {
            match reader.next_document() {
                Ok(Some(doc)) => self.add_document(doc.bytes, doc.len, kind),
                Ok(None) => return Ok(()),
                Err(err) => return Err(LoadError::Read { file: path.display_name(), reason: err.to_string() }),
            }
        }
    }

    /// Adds `config.count` generated records; with [`GenerateKind::Mixed`]
    /// every 20th is an alert, the rest activities.
    pub fn add_generated(&mut self, config: GenerateConfig) {
        let kind = config.kind;
        for_each_generated(config, |index, buf, len| {
            let data_kind = match kind {
                GenerateKind::Activities => DataKind::Activities,
                GenerateKind::Alerts => DataKind::Alerts,
                GenerateKind::Mixed if index % 20 == 19 => DataKind::Alerts,
                GenerateKind::Mixed => DataKind::Activities,
                GenerateKind::CloudAppEvents | GenerateKind::GraphAlerts => {
                    unreachable!("the legacy API serves activities and alerts only")
                }
            };
            self.add_document(buf, len, data_kind);
        });
    }

    pub fn build(self) -> RecordStore {
        RecordStore {
            activities: self.activities.build(),
            alerts: self.alerts.build(),
            graph_alerts: self.graph_alerts.build(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_of(activities: &[&str], alerts: &[&str]) -> RecordStore {
        let mut builder = StoreBuilder::new();
        for (docs, kind) in [(activities, DataKind::Activities), (alerts, DataKind::Alerts)] {
            for doc in docs {
                let mut bytes = doc.as_bytes().to_vec();
                let len = bytes.len();
                bytes.resize(len + INPUT_PADDING, 0);
                builder.add_document(&mut bytes, len, kind);
            }
        }
        builder.build()
    }

    #[test]
    fn records_are_indexed_by_date_and_created() {
        let store = store_of(
            &[
                r#"{"_id":"a","timestamp":300,"created":310,"appId":1}"#,
                r#"{"data":[{"_id":"b","timestamp":100,"created":900,"appId":2},{"_id":"c","timestamp":200,"created":205}]}"#,
                r#"{"_id":"bad"}"#,
                "not json",
            ],
            &[r#"{"_id":"x","timestamp":"50","entities":[{"type":"user","id":"u"},{"type":"service","id":11161}]}"#],
        );
        let set = &store.activities;
        assert_eq!(set.len(), 3);
        let ids = |field| {
            (0..set.ordered_len())
                .map(|p| String::from_utf8(set.json(set.at(field, p))[8..9].to_vec()).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(TimeField::Date), ["b", "c", "a"]);
        assert_eq!(ids(TimeField::Created), ["c", "a", "b"]);
        assert_eq!(set.lower_bound(TimeField::Date, 200), 1);
        assert_eq!(set.lower_bound(TimeField::Created, 311), 2);
        assert_eq!(set.at(TimeField::Date, 1).service, -1);
        assert_eq!(store.alerts.at(TimeField::Date, 0).service, 11161);
        assert_eq!(store.alerts.at(TimeField::Date, 0).created, 50);
    }

    #[test]
    fn generated_mixed_records_split_into_both_sets() {
        let mut builder = StoreBuilder::new();
        builder.add_generated(GenerateConfig {
            kind: GenerateKind::Mixed,
            count: 200,
            seed: 3,
            late_ratio: 0.0,
            start_ms: 1_700_000_000_000,
            span_ms: 3_600_000,
        });
        assert_eq!(builder.counts, LoadCounts { activities: 190, alerts: 10, skipped: 0 });
        let store = builder.build();
        assert_eq!((store.activities.len(), store.alerts.len()), (190, 10));
    }
}
