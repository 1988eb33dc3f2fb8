//! The emulator's Microsoft Graph security `alerts_v2`: the stored alerts
//! (raw JSON kept once, indexed by `createdDateTime` in 100-ns ticks) and
//! one list request — `$filter` on `serviceSource` (`eq`/`ne`) and
//! `createdDateTime` (`ge`/`gt`/`le`/`lt`), `$orderby=createdDateTime
//! asc|desc`, `$top` (at most 1000), `$skip` (at most 500, as the service
//! caps it) and `@odata.nextLink` — written into a caller-owned buffer.
//!
//! It knows nothing about HTTP, tokens, the throttle or faults
//! ([`super::server`] owns those).

use crate::generate::GenerateConfig;
use crate::input::DocumentReader;
use crate::input::source::InputPath;
use crate::json::{JsonParser, JsonValue, write_compact_json};
use crate::time::parse_iso8601_ticks;
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Most alerts per page (`$top`).
pub const MAX_TOP: usize = 1000;
/// Largest `$skip` the service accepts.
pub const MAX_SKIP: usize = 500;
/// Graph's default page when `$top` is not given [guess].
pub const DEFAULT_TOP: usize = 1000;

/// One stored alert.
#[derive(Clone, Copy, Debug)]
struct Entry {
    offset: u64,
    len: u32,
    /// `createdDateTime` in 100-ns ticks.
    created: i64,
    /// Index into [`GraphAlerts::sources`].
    source: u16,
}

/// The alerts the emulator serves, sorted by `createdDateTime` (insertion
/// order among equal times), immutable once built.
#[derive(Default)]
pub struct GraphAlerts {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
    /// Distinct `serviceSource` values.
    sources: Vec<String>,
}

impl GraphAlerts {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn source_index(&self, name: &str) -> Option<u16> {
        self.sources.iter().position(|s| s == name).map(|i| i as u16)
    }
}

/// Collects alerts into [`GraphAlerts`].
#[derive(Default)]
pub struct GraphAlertsBuilder {
    alerts: GraphAlerts,
    parser: JsonParser,
    /// Alerts stored, and records skipped (no usable `createdDateTime`).
    pub stored: u64,
    pub skipped: u64,
}

impl GraphAlertsBuilder {
    /// Adds the alerts of one document: an alert, a Graph page
    /// (`{"value":[…]}`) or a bare array.
    pub fn add_document(&mut self, bytes: &mut [u8], len: usize) {
        let Self { alerts, parser, stored, skipped } = self;
        let parsed = parser.parse(bytes, len, |root| {
            let mut add = |alert: JsonValue<'_, '_>| match push(alerts, alert) {
                Some(()) => *stored += 1,
                None => *skipped += 1,
            };
            match root.array().or_else(|| root.get("value").and_then(|v| v.array())) {
                Some(items) => items.for_each(&mut add),
                None => add(root),
            }
        });
        if parsed.is_err() {
            self.skipped += 1;
        }
    }

    /// Loads an NDJSON or page file (plain, gzip or zstd).
    pub fn add_file(&mut self, path: &InputPath) -> Result<(), super::store::LoadError> {
        use super::store::LoadError;
        let mut reader =
            DocumentReader::open(path).map_err(|source| LoadError::Open { file: path.display_name(), source })?;
        loop {
            match reader.next_document() {
                Ok(Some(doc)) => self.add_document(doc.bytes, doc.len),
                Ok(None) => return Ok(()),
                Err(err) => return Err(LoadError::Read { file: path.display_name(), reason: err.to_string() }),
            }
        }
    }

    /// Adds generated alerts (`config.kind` should be `GraphAlerts`).
    pub fn add_generated(&mut self, config: GenerateConfig) {
        super::store::for_each_generated(config, |_, buf, len| self.add_document(buf, len));
    }

    pub fn build(mut self) -> GraphAlerts {
        self.alerts.entries.sort_by_key(|e| e.created);
        self.alerts.bytes.shrink_to_fit();
        self.alerts
    }
}

fn push(alerts: &mut GraphAlerts, alert: JsonValue<'_, '_>) -> Option<()> {
    let created = alert.get("createdDateTime")?.as_str()?;
    let created = parse_iso8601_ticks(created.as_bytes(), 7)?;
    let source_name = alert.get("serviceSource").and_then(|v| v.as_str()).unwrap_or("");
    let source = match alerts.source_index(source_name) {
        Some(index) => index,
        None => {
            alerts.sources.push(source_name.to_owned());
            u16::try_from(alerts.sources.len() - 1).ok()?
        }
    };
    let offset = alerts.bytes.len();
    write_compact_json(alert, &mut alerts.bytes);
    let len = u32::try_from(alerts.bytes.len() - offset).ok()?;
    alerts.entries.push(Entry { offset: offset as u64, len, created, source });
    Some(())
}

/// A bound on `createdDateTime`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Bound {
    ticks: i64,
    inclusive: bool,
}

/// One parsed `alerts_v2` request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GraphQuery {
    source_eq: Option<String>,
    source_ne: Vec<String>,
    lower: Option<Bound>,
    upper: Option<Bound>,
    descending: bool,
    pub top: usize,
    pub skip: usize,
    /// The decoded parameters, to build the next link from.
    params: Vec<(String, String)>,
}

/// A request the service would refuse (400), with Graph's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadQuery(pub String);

fn decode(text: &str) -> String {
    percent_decode_str(&text.replace('+', " ")).decode_utf8_lossy().into_owned()
}

impl GraphQuery {
    /// Parses the query string of a request.
    pub fn parse(query: &str) -> Result<GraphQuery, BadQuery> {
        let mut q = GraphQuery { top: DEFAULT_TOP, ..GraphQuery::default() };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let (key, value) = (decode(key), decode(value));
            match key.as_str() {
                "$filter" => q.parse_filter(&value)?,
                "$orderby" => {
                    let mut words = value.split_whitespace();
                    if words.next() != Some("createdDateTime") {
                        return Err(BadQuery(format!("$orderby {value:?} is not supported here")));
                    }
                    q.descending = match words.next() {
                        None | Some("asc") => false,
                        Some("desc") => true,
                        Some(other) => return Err(BadQuery(format!("bad sort direction {other:?}"))),
                    };
                }
                "$top" => {
                    q.top = value.parse().ok().filter(|t| (1..=MAX_TOP).contains(t)).ok_or_else(|| {
                        BadQuery(format!("The value of $top ({value}) must be between 1 and {MAX_TOP}."))
                    })?;
                }
                "$skip" => {
                    q.skip = value.parse().ok().filter(|s| *s <= MAX_SKIP).ok_or_else(|| {
                        BadQuery(format!("The value of $skip ({value}) exceeds the maximum of {MAX_SKIP}."))
                    })?;
                }
                other if other.starts_with('$') => {
                    return Err(BadQuery(format!("Query option {other} is not supported by this emulator.")));
                }
                _ => {}
            }
            if key != "$skip" {
                q.params.push((key, value));
            }
        }
        Ok(q)
    }

    fn parse_filter(&mut self, filter: &str) -> Result<(), BadQuery> {
        for clause in split_and(filter) {
            let mut words = clause.splitn(3, ' ');
            let (Some(field), Some(op), Some(value)) = (words.next(), words.next(), words.next()) else {
                return Err(BadQuery(format!("Invalid filter clause {clause:?}.")));
            };
            let value = value.trim();
            let unquoted = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')).unwrap_or(value);
            match (field, op) {
                ("serviceSource", "eq") => self.source_eq = Some(unquoted.to_owned()),
                ("serviceSource", "ne") => self.source_ne.push(unquoted.to_owned()),
                ("createdDateTime", "ge" | "gt" | "le" | "lt") => {
                    let ticks = parse_iso8601_ticks(unquoted.as_bytes(), 7)
                        .ok_or_else(|| BadQuery(format!("Invalid DateTimeOffset {unquoted:?} in $filter.")))?;
                    let bound = Bound { ticks, inclusive: op.ends_with('e') };
                    if op.starts_with('g') {
                        self.lower = Some(bound);
                    } else {
                        self.upper = Some(bound);
                    }
                }
                _ => {
                    return Err(BadQuery(format!(
                        "Invalid filter clause {clause:?}: only serviceSource eq/ne and createdDateTime ge/gt/le/lt are supported."
                    )));
                }
            }
        }
        Ok(())
    }

    fn matches(&self, alerts: &GraphAlerts, entry: &Entry) -> bool {
        let source = &alerts.sources[entry.source as usize];
        self.source_eq.as_ref().is_none_or(|s| s == source) && !self.source_ne.iter().any(|s| s == source)
    }

    /// The query string of the page after this one.
    fn next_query(&self) -> String {
        let mut out = String::new();
        for (key, value) in self
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .chain([("$skip", (self.skip + self.top).to_string())])
        {
            if !out.is_empty() {
                out.push('&');
            }
            out.push_str(key);
            out.push('=');
            out.extend(utf8_percent_encode(&value, NON_ALPHANUMERIC).flat_map(str::chars));
        }
        out
    }
}

/// Splits a filter at ` and ` (any case).
fn split_and(filter: &str) -> Vec<&str> {
    let mut clauses = Vec::new();
    let lower = filter.to_ascii_lowercase();
    let mut start = 0;
    while let Some(at) = lower[start..].find(" and ") {
        clauses.push(filter[start..start + at].trim());
        start += at + 5;
    }
    clauses.push(filter[start..].trim());
    clauses.into_iter().filter(|c| !c.is_empty()).collect()
}

/// Writes the page for `query` into `out`: `{"@odata.context":…,"value":[…]}`
/// plus `@odata.nextLink` (to `next_base?…`) when more alerts match.
/// Alerts created after `now_ticks` do not exist yet (as at the service,
/// where an alert is created when it happens). Returns the number of
/// alerts on the page.
pub fn write_page(alerts: &GraphAlerts, query: &GraphQuery, next_base: &str, now_ticks: i64, out: &mut Vec<u8>) -> u64 {
    let entries = &alerts.entries;
    let from = match query.lower {
        Some(Bound { ticks, inclusive: true }) => entries.partition_point(|e| e.created < ticks),
        Some(Bound { ticks, inclusive: false }) => entries.partition_point(|e| e.created <= ticks),
        None => 0,
    };
    let to = match query.upper {
        Some(Bound { ticks, inclusive: true }) => entries.partition_point(|e| e.created <= ticks),
        Some(Bound { ticks, inclusive: false }) => entries.partition_point(|e| e.created < ticks),
        None => entries.len(),
    };
    let to = to.min(entries.partition_point(|e| e.created <= now_ticks));
    let range = &entries[from..to.max(from)];
    let ordered: Box<dyn Iterator<Item = &Entry>> =
        if query.descending { Box::new(range.iter().rev()) } else { Box::new(range.iter()) };
    let mut matching = ordered.filter(|e| query.matches(alerts, e)).skip(query.skip);
    out.clear();
    out.extend_from_slice(
        b"{\"@odata.context\":\"https://graph.microsoft.com/v1.0/$metadata#security/alerts_v2\",\"value\":[",
    );
    let mut served = 0u64;
    for entry in matching.by_ref().take(query.top) {
        if served > 0 {
            out.push(b',');
        }
        let start = entry.offset as usize;
        out.extend_from_slice(&alerts.bytes[start..start + entry.len as usize]);
        served += 1;
    }
    out.push(b']');
    if matching.next().is_some() {
        out.extend_from_slice(b",\"@odata.nextLink\":");
        crate::json::write_json_string(&format!("{next_base}?{}", query.next_query()), out);
    }
    out.push(b'}');
    served
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::INPUT_PADDING;

    fn store(alerts: &[(&str, &str, &str)]) -> GraphAlerts {
        let mut builder = GraphAlertsBuilder::default();
        for (id, created, source) in alerts {
            let mut doc =
                format!(r#"{{"id":"{id}","createdDateTime":"{created}","serviceSource":"{source}"}}"#).into_bytes();
            let len = doc.len();
            doc.resize(len + INPUT_PADDING, 0);
            builder.add_document(&mut doc, len);
        }
        builder.build()
    }

    fn ids(alerts: &GraphAlerts, query: &str) -> (Vec<String>, Option<String>) {
        let q = GraphQuery::parse(query).unwrap();
        let mut out = Vec::new();
        write_page(alerts, &q, "http://e/v1.0/security/alerts_v2", i64::MAX, &mut out);
        let page: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let ids = page["value"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap().to_owned()).collect();
        (ids, page["@odata.nextLink"].as_str().map(str::to_owned))
    }

    #[test]
    fn filters_order_and_pages() {
        let mdca = "microsoftDefenderForCloudApps";
        let alerts = store(&[
            ("c", "2024-05-01T10:00:00.0000002Z", mdca),
            ("a", "2024-05-01T10:00:00.0000001Z", mdca),
            ("x", "2024-05-01T10:00:00.0000001Z", "microsoftDefenderForEndpoint"),
            ("d", "2024-05-01T11:00:00Z", mdca),
            ("b", "2024-05-01T10:00:00.0000001Z", mdca),
        ]);
        let filter = "$filter=serviceSource%20eq%20%27microsoftDefenderForCloudApps%27";
        assert_eq!(ids(&alerts, filter).0, ["a", "b", "c", "d"]);
        let (page, next) = ids(&alerts, &format!("{filter}&$top=2&$orderby=createdDateTime+asc"));
        assert_eq!(page, ["a", "b"]);
        let next = next.unwrap();
        assert!(next.starts_with("http://e/v1.0/security/alerts_v2?") && next.ends_with("&$skip=2"), "{next}");
        let (page, next) = ids(&alerts, next.split_once('?').unwrap().1);
        assert_eq!((page, next), (vec!["c".to_owned(), "d".to_owned()], None));
        // 100-ns precision: gt excludes the equal instant, ge keeps it.
        let gt = "$filter=createdDateTime gt 2024-05-01T10:00:00.0000001Z and serviceSource ne 'microsoftDefenderForEndpoint'";
        assert_eq!(ids(&alerts, gt).0, ["c", "d"]);
        assert_eq!(
            ids(
                &alerts,
                "$filter=createdDateTime ge 2024-05-01T10:00:00.0000001Z and createdDateTime lt 2024-05-01T11:00:00Z"
            )
            .0,
            ["a", "x", "b", "c"]
        );
        assert_eq!(ids(&alerts, "$orderby=createdDateTime desc&$top=1").0, ["d"]);
        for bad in [
            "$top=1001",
            "$top=0",
            "$skip=501",
            "$filter=title eq 'x'",
            "$filter=createdDateTime ge yesterday",
            "$orderby=title",
            "$expand=evidence",
        ] {
            assert!(GraphQuery::parse(bad).is_err(), "{bad}");
        }
    }
}
