//! Records → CEF lines, written into a caller-owned buffer.
//!
//! [`CefFormatter::format`] takes one parsed record, validates what every
//! line needs (`_id`, `timestamp`), decides the kind, and appends
//! `[syslog header]CEF:0|MCAS|SIEM_Agent|…` without a line terminator
//! (framing is the caller's business). Nothing here allocates once the
//! buffers are warm: strings are escaped straight from the parsed input,
//! numbers go through itoa/ryu, and nested values are serialised into a
//! reused scratch buffer before escaping.
//!
//! The two line layouts (key order, labels, fallbacks) live in [`layout`];
//! the mappings that fill them in [`activity`] and [`alert`] (Defender for
//! Cloud Apps records) and, for the successor sources, [`cloud_app_events`]
//! (Defender XDR streaming) and [`graph_alert`] (Graph `alerts_v2`);
//! escaping in [`escape`]; the one-pass field scan in [`fields`].

pub mod activity;
pub mod alert;
pub mod cloud_app_events;
pub mod escape;
pub mod fields;
pub mod graph_alert;
pub mod layout;

use crate::json::{JsonValue, Scalar, write_compact_json, write_f64};
use crate::syslog::header::SyslogHeader;
use escape::{escape_extension, escape_header};
pub use fields::{RecordFields, RecordKind};

/// Which mapping to apply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KindChoice {
    /// Decide per record from its keys.
    #[default]
    Auto,
    Activities,
    Alerts,
    /// Defender XDR streaming records (or bare `CloudAppEvents` rows).
    CloudAppEvents,
    /// Microsoft Graph `alerts_v2` alerts.
    GraphAlerts,
}

/// Why a record produced no line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record is not a JSON object")]
    NotAnObject,
    #[error("record has no usable \"_id\"")]
    MissingId,
    #[error("record has no \"timestamp\"")]
    MissingTimestamp,
    #[error("\"timestamp\" is not an integer number of milliseconds")]
    BadTimestamp,
    #[error("{0}")]
    TimestampOutOfRange(#[from] crate::syslog::header::TimestampOutOfRange),
    #[error(
        "record is neither an activity (eventTypeName/eventType), an alert (severityValue/entities/title), a streaming record (properties) nor a Graph alert (createdDateTime)"
    )]
    UnknownKind,
    #[error("record has no usable \"{0}\"")]
    Missing(&'static str),
    #[error("\"{0}\" is not an ISO 8601 time with 0-7 fraction digits and a zone (Z or +hh:mm)")]
    BadIsoTime(&'static str),
    #[error("streaming record has no \"properties\" object")]
    NoProperties,
    /// Not an error: a streaming record of another table, counted and
    /// skipped (the streaming API mixes tables in one archive).
    #[error("streaming record of another category")]
    OtherCategory,
}

impl RecordError {
    /// True for records that are skipped on purpose, not rejected.
    pub fn is_skip(&self) -> bool {
        matches!(self, RecordError::OtherCategory)
    }
}

/// Settings of the CEF mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CefOptions {
    /// The CEF device version (`CEF:0|MCAS|SIEM_Agent|<version>|…`).
    pub device_version: String,
    /// Base of the portal links for activities, without a trailing `/`.
    pub portal_url: String,
    pub kind: KindChoice,
    pub header: SyslogHeader,
}

impl Default for CefOptions {
    fn default() -> Self {
        Self {
            device_version: env!("CARGO_PKG_VERSION").to_owned(),
            portal_url: "https://portal.cloudappsecurity.com".to_owned(),
            kind: KindChoice::Auto,
            header: SyslogHeader::default(),
        }
    }
}

/// Turns records into CEF lines. Holds the parts of each line that never
/// change, pre-escaped, and a scratch buffer for nested values.
pub struct CefFormatter {
    header: SyslogHeader,
    kind: KindChoice,
    /// `CEF:0|MCAS|SIEM_Agent|<version>|`, escaped.
    cef_prefix: Vec<u8>,
    /// Escaped portal URL followed by `/#/audits?activity.id\=eq(`.
    activity_link: Vec<u8>,
    /// Escaped portal URL followed by `/#/alerts/`.
    alert_link: Vec<u8>,
    scratch: Vec<u8>,
}

impl CefFormatter {
    pub fn new(options: &CefOptions) -> Self {
        let mut cef_prefix = b"CEF:0|MCAS|SIEM_Agent|".to_vec();
        escape_header(options.device_version.as_bytes(), &mut cef_prefix);
        cef_prefix.push(b'|');
        let portal = options.portal_url.trim_end_matches('/').as_bytes();
        let mut activity_link = Vec::new();
        escape_extension(portal, &mut activity_link);
        let mut alert_link = activity_link.clone();
        activity_link.extend_from_slice(b"/#/audits?activity.id\\=eq(");
        alert_link.extend_from_slice(b"/#/alerts/");
        Self {
            header: options.header.clone(),
            kind: options.kind,
            cef_prefix,
            activity_link,
            alert_link,
            scratch: Vec::with_capacity(4096),
        }
    }

    /// Switches the mapping (the agent reads activities and alerts from
    /// separate endpoints and forces the kind per stream).
    pub fn set_kind(&mut self, kind: KindChoice) {
        self.kind = kind;
    }

    /// Appends the line for `record` to `out`. On error `out` is unchanged.
    pub fn format(&mut self, record: JsonValue<'_, '_>, out: &mut Vec<u8>) -> Result<RecordKind, RecordError> {
        let fields = RecordFields::scan(record).ok_or(RecordError::NotAnObject)?;
        self.format_fields(&fields, out)
    }

    /// Like [`format`](Self::format) for a record already scanned.
    pub fn format_fields(
        &mut self,
        fields: &RecordFields<'_, '_>,
        out: &mut Vec<u8>,
    ) -> Result<RecordKind, RecordError> {
        let key = self.read_key(fields);
        self.format_keyed(fields, &key, out)
    }

    /// What the record is, and its id and time, under this formatter's
    /// kind choice (the record loop reads them once, for its gate too).
    pub fn read_key<'t, 'i>(&self, fields: &RecordFields<'t, 'i>) -> RecordKey<'t, 'i> {
        RecordKey::read(fields, self.kind)
    }

    /// Like [`format_fields`](Self::format_fields) with the key already read.
    pub fn format_keyed(
        &mut self,
        fields: &RecordFields<'_, '_>,
        key: &RecordKey<'_, '_>,
        out: &mut Vec<u8>,
    ) -> Result<RecordKind, RecordError> {
        let kind = key.kind?;
        let Self { header, cef_prefix, activity_link, alert_link, scratch, .. } = self;
        match (kind, &key.scanned) {
            (RecordKind::CloudAppEvent, Scanned::Streaming(columns)) => {
                let id = key.id.ok_or(RecordError::Missing("ReportId"))?;
                let timestamp = key.time?;
                let mut line = start_line(header, cef_prefix, timestamp, out, scratch)?;
                cloud_app_events::write(&mut line, columns, id, timestamp, activity_link);
            }
            (RecordKind::GraphAlert, Scanned::Graph(alert)) => {
                let required = alert.required()?;
                let mut line = start_line(header, cef_prefix, required.start, out, scratch)?;
                graph_alert::write(&mut line, alert, &required);
            }
            _ => {
                let id = key.id.ok_or(RecordError::MissingId)?;
                let timestamp = key.time?;
                let mut line = start_line(header, cef_prefix, timestamp, out, scratch)?;
                if kind == RecordKind::Alert {
                    alert::write(&mut line, fields, id, timestamp, alert_link);
                } else {
                    activity::write(&mut line, fields, id, timestamp, activity_link);
                }
            }
        }
        Ok(kind)
    }
}

/// What the loop and the line need from a record, read once per record:
/// what it is, its identity and its time. Checked in the order
/// [`CefFormatter::format_keyed`] reports them (kind, then id, then time).
#[derive(Clone, Copy)]
pub struct RecordKey<'t, 'i> {
    /// The kind (forced, or detected from the record's keys), or why the
    /// record has none — [`RecordError::OtherCategory`] for a streaming
    /// record of another table, to be skipped.
    pub kind: Result<RecordKind, RecordError>,
    /// The record's identity, to send it once: `_id`; a streaming record's
    /// `ReportId`; a Graph alert's `id` (each when it is a non-empty string
    /// or an integer).
    pub id: Option<JsonValue<'t, 'i>>,
    /// The record's time in epoch milliseconds, or why there is none:
    /// `timestamp`; a streaming record's `Timestamp`; a Graph alert's
    /// `createdDateTime` (the time Graph pages by).
    pub time: Result<i64, RecordError>,
    /// What the successor mappings scanned, so the line does not scan again.
    scanned: Scanned<'t, 'i>,
}

impl RecordKey<'_, '_> {
    /// A stable hash of the record's id (its text, or an integer id's
    /// digits), to tell a record seen before; `None` without a usable id.
    pub fn id_hash(&self, digits: &mut itoa::Buffer) -> Option<u64> {
        let id: &[u8] = match self.id.and_then(|v| v.scalar())? {
            Scalar::Str(s) => s.as_bytes(),
            Scalar::I64(n) => digits.format(n).as_bytes(),
            Scalar::U64(n) => digits.format(n).as_bytes(),
            _ => return None,
        };
        Some(id_hash(id))
    }
}

/// Stable 64-bit hash of a record id (FNV-1a): the same on every platform
/// and Rust version, so saved states stay valid across upgrades.
pub fn id_hash(id: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in id {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[derive(Clone, Copy)]
enum Scanned<'t, 'i> {
    Legacy,
    Streaming(cloud_app_events::Columns<'t, 'i>),
    Graph(graph_alert::AlertFields<'t, 'i>),
}

impl<'t, 'i> RecordKey<'t, 'i> {
    /// Reads the key of a record under the kind choice `choice`.
    pub fn read(fields: &RecordFields<'t, 'i>, choice: KindChoice) -> Self {
        let kind = match choice {
            KindChoice::Activities => Ok(RecordKind::Activity),
            KindChoice::Alerts => Ok(RecordKind::Alert),
            KindChoice::CloudAppEvents => Ok(RecordKind::CloudAppEvent),
            KindChoice::GraphAlerts => Ok(RecordKind::GraphAlert),
            KindChoice::Auto => fields.detect_kind().ok_or(RecordError::UnknownKind),
        };
        match kind {
            Ok(RecordKind::CloudAppEvent) => {
                let row = match cloud_app_events::row_of(fields, choice == KindChoice::CloudAppEvents) {
                    Ok(row) => row,
                    Err(err) => return Self { kind: Err(err), id: None, time: Err(err), scanned: Scanned::Legacy },
                };
                let columns = cloud_app_events::Columns::scan(row);
                Self {
                    kind,
                    id: usable_id(columns.report_id),
                    time: columns.time(),
                    scanned: Scanned::Streaming(columns),
                }
            }
            Ok(RecordKind::GraphAlert) => {
                let alert = fields.root.map(graph_alert::AlertFields::scan).unwrap_or_default();
                Self { kind, id: usable_id(alert.id), time: alert.created_ms(), scanned: Scanned::Graph(alert) }
            }
            _ => Self { kind, id: usable_id(fields.id), time: record_time(fields), scanned: Scanned::Legacy },
        }
    }
}

/// Writes the syslog header and the CEF prefix and returns the line to
/// finish; on error `out` is unchanged.
fn start_line<'a>(
    header: &SyslogHeader,
    cef_prefix: &[u8],
    timestamp: i64,
    out: &'a mut Vec<u8>,
    scratch: &'a mut Vec<u8>,
) -> Result<CefLine<'a>, RecordError> {
    let start = out.len();
    if let Err(err) = header.write(timestamp, out) {
        out.truncate(start);
        return Err(err.into());
    }
    out.extend_from_slice(cef_prefix);
    Ok(CefLine { out, scratch })
}

/// The record's time in epoch milliseconds.
pub fn record_time(fields: &RecordFields<'_, '_>) -> Result<i64, RecordError> {
    let value = fields.timestamp.filter(|v| !v.is_null()).ok_or(RecordError::MissingTimestamp)?;
    value.as_i64_lenient().ok_or(RecordError::BadTimestamp)
}

/// `_id` when it is a non-empty string or an integer.
pub fn usable_id<'t, 'i>(id: Option<JsonValue<'t, 'i>>) -> Option<JsonValue<'t, 'i>> {
    id.filter(|v| match v.scalar() {
        Some(Scalar::Str(s)) => !s.is_empty(),
        Some(Scalar::I64(_) | Scalar::U64(_)) => true,
        _ => false,
    })
}

/// A line being written: the output buffer plus scratch space for values
/// that must be serialised before they can be escaped.
pub struct CefLine<'a> {
    pub out: &'a mut Vec<u8>,
    scratch: &'a mut Vec<u8>,
}

impl CefLine<'_> {
    /// Appends bytes that need no escaping (labels, separators).
    pub fn raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Appends a decimal integer.
    pub fn int(&mut self, value: i64) {
        self.out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    /// Appends a value escaped for a header field; nothing when absent.
    pub fn header_value(&mut self, value: Option<JsonValue<'_, '_>>) {
        self.value(value, escape_header);
    }

    /// Appends a value escaped for an extension; nothing when absent.
    pub fn ext_value(&mut self, value: Option<JsonValue<'_, '_>>) {
        self.value(value, escape_extension);
    }

    /// Appends a string escaped for an extension.
    pub fn ext_str(&mut self, value: &str) {
        escape_extension(value.as_bytes(), self.out);
    }

    fn value(&mut self, value: Option<JsonValue<'_, '_>>, escape: fn(&[u8], &mut Vec<u8>)) {
        let Some(value) = value else { return };
        match value.scalar() {
            Some(Scalar::Str(s)) => escape(s.as_bytes(), self.out),
            Some(Scalar::I64(v)) => self.int(v),
            Some(Scalar::U64(v)) => self.out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes()),
            Some(Scalar::F64(v)) => write_f64(v, self.out),
            Some(Scalar::Bool(true)) => self.raw(b"true"),
            Some(Scalar::Bool(false)) => self.raw(b"false"),
            Some(Scalar::Null) => {}
            None => {
                // Objects and arrays: keep the data, as compact JSON.
                self.scratch.clear();
                write_compact_json(value, self.scratch);
                escape(self.scratch, self.out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{INPUT_PADDING, JsonParser};

    fn format(options: &CefOptions, record: &str) -> Result<String, RecordError> {
        let mut buf = record.as_bytes().to_vec();
        let len = buf.len();
        buf.resize(len + INPUT_PADDING, 0);
        let mut formatter = CefFormatter::new(options);
        let mut out = b"keep".to_vec();
        let result = JsonParser::new().parse(&mut buf, len, |v| formatter.format(v, &mut out)).unwrap();
        match result {
            Ok(_) => Ok(String::from_utf8(out[4..].to_vec()).unwrap()),
            Err(e) => {
                assert_eq!(out, b"keep", "a rejected record leaves the buffer as it was");
                Err(e)
            }
        }
    }

    #[test]
    fn rejects_name_the_reason() {
        let o = CefOptions::default();
        assert_eq!(format(&o, "[1]"), Err(RecordError::NotAnObject));
        assert_eq!(format(&o, r#"{"eventType":1,"timestamp":1}"#), Err(RecordError::MissingId));
        assert_eq!(format(&o, r#"{"_id":"","eventType":1,"timestamp":1}"#), Err(RecordError::MissingId));
        assert_eq!(format(&o, r#"{"_id":"a","eventType":1}"#), Err(RecordError::MissingTimestamp));
        assert_eq!(format(&o, r#"{"_id":"a","eventType":1,"timestamp":"x"}"#), Err(RecordError::BadTimestamp));
        assert_eq!(format(&o, r#"{"_id":"a","timestamp":1}"#), Err(RecordError::UnknownKind));
        assert!(matches!(
            format(&o, r#"{"_id":"a","eventType":1,"timestamp":1e17}"#),
            Err(RecordError::TimestampOutOfRange(_))
        ));
    }

    #[test]
    fn forced_kind_overrides_detection() {
        let o = CefOptions { kind: KindChoice::Alerts, ..CefOptions::default() };
        let line = format(&o, r#"{"_id":"a","timestamp":"1000","eventType":5}"#).unwrap();
        assert!(line.contains("|ALERT_UNKNOWN|"), "{line}");
    }

    #[test]
    fn successor_records_are_detected_and_checked() {
        let o = CefOptions::default();
        let streaming =
            |properties: &str| format!(r#"{{"category":"AdvancedHunting-CloudAppEvents","properties":{properties}}}"#);
        assert_eq!(
            format(&o, &streaming(r#"{"Timestamp":"2024-05-01T12:00:00Z"}"#)),
            Err(RecordError::Missing("ReportId"))
        );
        assert_eq!(
            format(&o, &streaming(r#"{"ReportId":1.5,"Timestamp":"2024-05-01T12:00:00Z"}"#)),
            Err(RecordError::Missing("ReportId"))
        );
        assert_eq!(
            format(&o, &streaming(r#"{"ReportId":1,"Timestamp":null}"#)),
            Err(RecordError::Missing("Timestamp"))
        );
        assert_eq!(
            format(&o, &streaming(r#"{"ReportId":1,"Timestamp":1714564800000}"#)),
            Err(RecordError::BadIsoTime("Timestamp"))
        );
        assert_eq!(format(&o, r#"{"category":"Other","properties":{}}"#), Err(RecordError::OtherCategory));
        assert_eq!(format(&o, r#"{"category":7,"properties":{}}"#), Err(RecordError::OtherCategory));
        // A year the header cannot hold is a reject like for the legacy records.
        assert!(matches!(
            format(&o, &streaming(r#"{"ReportId":1,"Timestamp":"0000-01-01T00:00:00+01:00"}"#)),
            Err(RecordError::TimestampOutOfRange(_))
        ));
        // `_id` makes a legacy record whatever else it carries.
        let line =
            format(&o, r#"{"_id":"x","timestamp":1,"eventType":1,"properties":{},"createdDateTime":"y"}"#).unwrap();
        assert!(line.contains("|EVENT_CATEGORY_UNSPECIFIED|EVENT_CATEGORY_UNSPECIFIED|0|externalId=x "), "{line}");
        let forced = CefOptions { kind: KindChoice::CloudAppEvents, ..CefOptions::default() };
        assert_eq!(format(&forced, r#"{"category":"AdvancedHunting-CloudAppEvents"}"#), Err(RecordError::NoProperties));
        assert_eq!(format(&forced, r#"{"properties":[1]}"#), Err(RecordError::NoProperties));
    }

    #[test]
    fn evidence_type_with_or_without_the_hash() {
        let line = format(
            &CefOptions::default(),
            r##"{"id":"a","createdDateTime":"2024-05-01T12:00:00Z","evidence":[{"@odata.type":"microsoft.graph.security.ipEvidence","ipAddress":"1.2.3.4"},{"@odata.type":"#microsoft.graph.security.cloudApplicationEvidence","appId":5}]}"##,
        )
        .unwrap();
        assert!(
            line.ends_with(" cs2=APPID_5 cs3Label=relatedAudits cs3= cs4Label=policyIDs cs4= src=1.2.3.4"),
            "{line}"
        );
    }

    #[test]
    fn nested_values_are_kept_as_json() {
        let line = format(
            &CefOptions::default(),
            r#"{"_id":"a","timestamp":0,"eventTypeName":"E","description":{"k":"v=1"}}"#,
        )
        .unwrap();
        assert!(line.contains(r#"msg={"k":"v\=1"} suser="#), "{line}");
    }
}
