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
//! The field mapping lives in [`activity`] and [`alert`]; escaping in
//! [`escape`]; the one-pass field scan in [`fields`].

pub mod activity;
pub mod alert;
pub mod escape;
pub mod fields;

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
    #[error("record is neither an activity (eventTypeName/eventType) nor an alert (severityValue/entities/title)")]
    UnknownKind,
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
        self.format_keyed(fields, &RecordKey::read(fields), out)
    }

    /// Like [`format_fields`](Self::format_fields) with the id and time
    /// already read (the record loop reads them once, for its gate too).
    pub fn format_keyed(
        &mut self,
        fields: &RecordFields<'_, '_>,
        key: &RecordKey<'_, '_>,
        out: &mut Vec<u8>,
    ) -> Result<RecordKind, RecordError> {
        let kind = match self.kind {
            KindChoice::Activities => RecordKind::Activity,
            KindChoice::Alerts => RecordKind::Alert,
            KindChoice::Auto => fields.detect_kind().ok_or(RecordError::UnknownKind)?,
        };
        let id = key.id.ok_or(RecordError::MissingId)?;
        let timestamp = key.time?;
        let start = out.len();
        if let Err(err) = self.header.write(timestamp, out) {
            out.truncate(start);
            return Err(err.into());
        }
        out.extend_from_slice(&self.cef_prefix);
        let mut line = CefLine { out, scratch: &mut self.scratch };
        match kind {
            RecordKind::Activity => activity::write(&mut line, fields, id, timestamp, &self.activity_link),
            RecordKind::Alert => alert::write(&mut line, fields, id, timestamp, &self.alert_link),
        }
        Ok(kind)
    }
}

/// What every line needs from a record, read once per record: its usable
/// `_id` and its time. Checked in the order [`CefFormatter::format_keyed`]
/// reports them (kind, then id, then time).
#[derive(Clone, Copy)]
pub struct RecordKey<'t, 'i> {
    /// `_id` when it is a non-empty string or an integer.
    pub id: Option<JsonValue<'t, 'i>>,
    /// `timestamp` in epoch milliseconds, or why there is none.
    pub time: Result<i64, RecordError>,
}

impl<'t, 'i> RecordKey<'t, 'i> {
    pub fn read(fields: &RecordFields<'t, 'i>) -> Self {
        Self { id: usable_id(fields.id), time: record_time(fields) }
    }
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
    fn nested_values_are_kept_as_json() {
        let line = format(
            &CefOptions::default(),
            r#"{"_id":"a","timestamp":0,"eventTypeName":"E","description":{"k":"v=1"}}"#,
        )
        .unwrap();
        assert!(line.contains(r#"msg={"k":"v\=1"} suser="#), "{line}");
    }
}
