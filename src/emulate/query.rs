//! One list request of the emulated API: the JSON body turned into a
//! [`Query`], run against a [`RecordSet`], and the response page written
//! into a caller-owned buffer from the stored raw bytes.
//!
//! It implements the contract in `api-contract.md` (filters on `date` and
//! `created`, `service` `eq`/`neq`, sorting, `skip`/`limit` with the 100
//! cap, scan mode with `nextQueryFilters`). Where the contract says
//! "[guess]" this module makes the guess explicit: the 5000 cap on
//! `skip + limit`, alerts' `max`, and the opaque scan cursor
//! (`_scanAfter`). It knows nothing about HTTP, tokens or faults.

use super::store::{RecordSet, StoredRecord, TimeField};
use crate::json::{INPUT_PADDING, JsonParser, JsonValue, write_compact_json};

/// Which list endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Activities,
    Alerts,
}

/// Largest `limit` in normal (offset) paging.
pub const MAX_LIMIT: u64 = 100;
/// Largest `limit` in scan mode.
pub const MAX_SCAN_LIMIT: u64 = 5000;
/// Default `limit` in scan mode.
pub const DEFAULT_SCAN_LIMIT: u64 = 500;
/// Default `limit` in normal paging [guess].
pub const DEFAULT_LIMIT: u64 = 20;
/// `skip + limit` may not exceed this [guess]; also alerts' `max`.
pub const MAX_OFFSET_WINDOW: u64 = 5000;
/// The key the emulator adds to `nextQueryFilters` to carry its scan
/// position; clients send it back without looking at it.
pub const SCAN_CURSOR_KEY: &str = "_scanAfter";

const DAY_MS: i64 = 86_400_000;

/// An inclusive time interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeRange {
    pub min: i64,
    pub max: i64,
}

impl TimeRange {
    pub const ALL: TimeRange = TimeRange { min: i64::MIN, max: i64::MAX };

    fn contains(&self, t: i64) -> bool {
        (self.min..=self.max).contains(&t)
    }
}

/// A parsed list request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    pub sort: TimeField,
    pub descending: bool,
    pub skip: u64,
    pub limit: u64,
    pub is_scan: bool,
    pub date: TimeRange,
    pub created: TimeRange,
    pub service_eq: Option<Vec<i64>>,
    pub service_neq: Vec<i64>,
    /// Scan cursor: continue after this position of the sort order.
    pub scan_after: Option<u64>,
    /// The request's filters as compact JSON members (`"k":v,…`) without
    /// the scan cursor, to build `nextQueryFilters`.
    filters_members: Vec<u8>,
}

/// A request the emulator refuses with 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

macro_rules! bad {
    ($($arg:tt)*) => { return Err(QueryError(format!($($arg)*))) };
}

impl Query {
    /// Parses a request body (`body[..len]`, padded) for `endpoint`; `now`
    /// resolves `gte_ndays`/`lte_ndays`.
    pub fn parse(
        parser: &mut JsonParser,
        body: &mut [u8],
        len: usize,
        endpoint: Endpoint,
        now: i64,
    ) -> Result<Query, QueryError> {
        if body[..len].iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::defaults(false));
        }
        parser
            .parse(body, len, |root| Self::from_json(root, endpoint, now))
            .map_err(|e| QueryError(format!("request body: {e}")))?
    }

    fn defaults(is_scan: bool) -> Query {
        Query {
            sort: TimeField::Date,
            descending: false,
            skip: 0,
            limit: if is_scan { DEFAULT_SCAN_LIMIT } else { DEFAULT_LIMIT },
            is_scan,
            date: TimeRange::ALL,
            created: TimeRange::ALL,
            service_eq: None,
            service_neq: Vec::new(),
            scan_after: None,
            filters_members: Vec::new(),
        }
    }

    fn from_json(root: JsonValue<'_, '_>, endpoint: Endpoint, now: i64) -> Result<Query, QueryError> {
        let Some(members) = root.object() else { bad!("request body must be a JSON object") };
        let is_scan = root.get("isScan").is_some_and(|v| matches!(v.scalar(), Some(crate::json::Scalar::Bool(true))));
        if is_scan && endpoint == Endpoint::Alerts {
            bad!("isScan is supported for activities only");
        }
        let mut query = Self::defaults(is_scan);
        for (key, value) in members {
            match key {
                "filters" => query.parse_filters(value, now)?,
                "sortField" => {
                    query.sort = match (value.as_str(), endpoint) {
                        (Some("date"), _) => TimeField::Date,
                        (Some("created"), Endpoint::Activities) => TimeField::Created,
                        _ => bad!(
                            "sortField must be \"date\"{}",
                            if endpoint == Endpoint::Activities { " or \"created\"" } else { "" }
                        ),
                    }
                }
                "sortDirection" => {
                    query.descending = match value.as_str() {
                        Some("asc") => false,
                        Some("desc") => true,
                        _ => bad!("sortDirection must be \"asc\" or \"desc\""),
                    }
                }
                "skip" => query.skip = non_negative(value, "skip")?,
                "limit" => query.limit = non_negative(value, "limit")?,
                "isScan" => {}
                other => bad!("unknown request field {other:?}"),
            }
        }
        if query.is_scan {
            if !(1..=MAX_SCAN_LIMIT).contains(&query.limit) {
                bad!("limit must be between 1 and {MAX_SCAN_LIMIT} in scan mode");
            }
            if query.skip != 0 {
                bad!("skip is not allowed in scan mode");
            }
            // Scan pages always ascend.
            query.descending = false;
        } else {
            if !(1..=MAX_LIMIT).contains(&query.limit) {
                bad!("limit must be between 1 and {MAX_LIMIT}");
            }
            if query.skip + query.limit > MAX_OFFSET_WINDOW {
                bad!("skip + limit must not exceed {MAX_OFFSET_WINDOW}: page by moving the time filter instead");
            }
        }
        Ok(query)
    }

    fn parse_filters(&mut self, filters: JsonValue<'_, '_>, now: i64) -> Result<(), QueryError> {
        let Some(fields) = filters.object() else { bad!("filters must be an object") };
        for (field, ops) in fields {
            if field == SCAN_CURSOR_KEY {
                let position = ops.get("gt").and_then(|v| v.as_i64_lenient()).filter(|&p| p >= 0);
                let Some(position) = position else {
                    bad!("{SCAN_CURSOR_KEY} is not a scan cursor this emulator made")
                };
                self.scan_after = Some(position as u64);
                continue;
            }
            if !self.filters_members.is_empty() {
                self.filters_members.push(b',');
            }
            crate::json::write_json_string(field, &mut self.filters_members);
            self.filters_members.push(b':');
            write_compact_json(ops, &mut self.filters_members);
            let Some(op_list) = ops.object() else { bad!("filter {field:?} must be an object of operators") };
            match field {
                "date" | "created" => {
                    let range = if field == "date" { &mut self.date } else { &mut self.created };
                    for (op, value) in op_list {
                        apply_time_operator(range, field, op, value, now)?;
                    }
                }
                "service" => {
                    for (op, value) in op_list {
                        let ids = id_list(value).ok_or_else(|| QueryError(format!("service {op} needs app ids")))?;
                        match op {
                            "eq" => self.service_eq = Some(ids),
                            "neq" => self.service_neq.extend(ids),
                            _ => bad!("operator {op:?} on service is not supported by the emulator (eq, neq)"),
                        }
                    }
                }
                other => bad!("filter on {other:?} is not supported by the emulator (date, created, service)"),
            }
        }
        Ok(())
    }

    /// True when `record` passes the filters (other than the sort-field
    /// range, which the caller applies by position) and is visible at
    /// `now` (stored no later than now).
    fn matches(&self, record: &StoredRecord, now: i64) -> bool {
        record.created <= now
            && self.date.contains(record.timestamp)
            && self.created.contains(record.created)
            && self.service_eq.as_ref().is_none_or(|ids| ids.contains(&record.service))
            && !self.service_neq.contains(&record.service)
    }

    fn sort_range(&self) -> TimeRange {
        match self.sort {
            TimeField::Date => self.date,
            TimeField::Created => self.created,
        }
    }
}

fn non_negative(value: JsonValue<'_, '_>, name: &str) -> Result<u64, QueryError> {
    match value.as_i64_lenient() {
        Some(n) if n >= 0 => Ok(n as u64),
        _ => bad!("{name} must be a non-negative integer"),
    }
}

fn id_list(value: JsonValue<'_, '_>) -> Option<Vec<i64>> {
    match value.array() {
        Some(items) => items.map(|v| v.as_i64_lenient()).collect(),
        None => value.as_i64_lenient().map(|id| vec![id]),
    }
}

fn apply_time_operator(
    range: &mut TimeRange,
    field: &str,
    op: &str,
    value: JsonValue<'_, '_>,
    now: i64,
) -> Result<(), QueryError> {
    let number = |v: Option<JsonValue<'_, '_>>| {
        v.and_then(|v| v.as_i64_lenient())
            .ok_or_else(|| QueryError(format!("{field} {op} needs epoch milliseconds (a number)")))
    };
    match op {
        "gt" => range.min = range.min.max(number(Some(value))?.saturating_add(1)),
        "gte" => range.min = range.min.max(number(Some(value))?),
        "lt" => range.max = range.max.min(number(Some(value))?.saturating_sub(1)),
        "lte" => range.max = range.max.min(number(Some(value))?),
        "range" => {
            range.min = range.min.max(number(value.get("start"))?);
            range.max = range.max.min(number(value.get("end"))?);
        }
        // [guess] gte_ndays: within the last N days; lte_ndays: at least N days ago.
        "gte_ndays" => range.min = range.min.max(now - number(Some(value))? * DAY_MS),
        "lte_ndays" => range.max = range.max.min(now - number(Some(value))? * DAY_MS),
        _ => bad!(
            "operator {op:?} on {field} is not supported by the emulator (gt, gte, lt, lte, range, gte_ndays, lte_ndays)"
        ),
    }
    Ok(())
}

/// What one page held, for the stats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageSummary {
    pub records: u64,
    pub total: u64,
    pub has_next: bool,
}

/// How a page may be cut short.
#[derive(Clone, Copy, Debug)]
pub struct PageShape {
    /// Stop adding records once the page holds this many bytes (scan mode).
    pub max_bytes: usize,
    /// Fault injection: cut a scan page after this many records.
    pub cut_after: Option<u64>,
    /// Fault injection: a scan page's `nextQueryFilters` repeats the
    /// request's cursor (after the first page) and `hasNext` stays true.
    pub stuck: bool,
}

impl Default for PageShape {
    fn default() -> Self {
        Self { max_bytes: 64 << 20, cut_after: None, stuck: false }
    }
}

/// Runs `query` on `set` at time `now` and writes the response body into
/// `out` (cleared first).
pub fn write_page(
    set: &RecordSet,
    query: &Query,
    endpoint: Endpoint,
    now: i64,
    shape: PageShape,
    out: &mut Vec<u8>,
) -> PageSummary {
    out.clear();
    out.extend_from_slice(b"{\"data\":[");
    let range = query.sort_range();
    let start = set.lower_bound(query.sort, range.min);
    let end = if range.max == i64::MAX { set.ordered_len() } else { set.lower_bound(query.sort, range.max + 1) };
    let mut summary = PageSummary::default();
    let mut next_position = None;
    let push = |record: &StoredRecord, out: &mut Vec<u8>, records: &mut u64| {
        if *records > 0 {
            out.push(b',');
        }
        out.extend_from_slice(set.json(record));
        *records += 1;
    };
    if query.is_scan {
        let first = query.scan_after.map_or(start, |p| start.max(p as usize + 1));
        let cap = query.limit.min(shape.cut_after.unwrap_or(u64::MAX)).max(1);
        let mut last_position = None;
        for position in first..end {
            let record = set.at(query.sort, position);
            if !query.matches(record, now) {
                continue;
            }
            if summary.records >= cap || (summary.records > 0 && out.len() >= shape.max_bytes) {
                summary.has_next = true;
                next_position = last_position;
                break;
            }
            push(record, out, &mut summary.records);
            last_position = Some(position);
        }
        if shape.stuck && (query.scan_after.is_some() || last_position.is_some()) {
            summary.has_next = true;
            next_position = query.scan_after.map(|p| p as usize).or(last_position);
        }
        // [guess] total counts every match of the filters, as in normal mode.
        summary.total = (start..end).filter(|&p| query.matches(set.at(query.sort, p), now)).count() as u64;
    } else {
        let mut matched = 0u64;
        let mut records = 0u64;
        let page_end = query.skip + query.limit;
        let mut visit = |position: usize, out: &mut Vec<u8>| {
            let record = set.at(query.sort, position);
            if query.matches(record, now) {
                if (query.skip..page_end).contains(&matched) {
                    push(record, out, &mut records);
                }
                matched += 1;
            }
        };
        if query.descending {
            (start..end).rev().for_each(|p| visit(p, out));
        } else {
            (start..end).for_each(|p| visit(p, out));
        }
        summary.total = matched;
        summary.records = records;
        summary.has_next = page_end < matched;
    }
    out.extend_from_slice(b"],\"hasNext\":");
    out.extend_from_slice(if summary.has_next { b"true" } else { b"false" });
    let mut itoa = itoa::Buffer::new();
    out.extend_from_slice(b",\"total\":");
    if endpoint == Endpoint::Alerts {
        out.extend_from_slice(itoa.format(summary.total.min(MAX_OFFSET_WINDOW)).as_bytes());
        out.extend_from_slice(b",\"max\":");
        out.extend_from_slice(itoa.format(MAX_OFFSET_WINDOW).as_bytes());
        out.extend_from_slice(b",\"moreThanTotal\":");
        out.extend_from_slice(if summary.total > MAX_OFFSET_WINDOW { b"true" } else { b"false" });
    } else {
        out.extend_from_slice(itoa.format(summary.total).as_bytes());
    }
    if let Some(position) = next_position {
        out.extend_from_slice(b",\"nextQueryFilters\":{");
        out.extend_from_slice(&query.filters_members);
        if !query.filters_members.is_empty() {
            out.push(b',');
        }
        out.extend_from_slice(b"\"");
        out.extend_from_slice(SCAN_CURSOR_KEY.as_bytes());
        out.extend_from_slice(b"\":{\"gt\":");
        out.extend_from_slice(itoa.format(position).as_bytes());
        out.extend_from_slice(b"}}");
    }
    out.push(b'}');
    summary
}

/// Parses a body given as text (tests and tools).
pub fn parse_text(text: &str, endpoint: Endpoint, now: i64) -> Result<Query, QueryError> {
    let mut bytes = text.as_bytes().to_vec();
    let len = bytes.len();
    bytes.resize(len + INPUT_PADDING, 0);
    Query::parse(&mut JsonParser::new(), &mut bytes, len, endpoint, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulate::store::{DataKind, StoreBuilder};

    const NOW: i64 = 10_000;

    /// Activities with timestamp 100·i, created 100·i + 5·(i % 3), app 1 or 2;
    /// record 7 is stored in the future (created > NOW).
    fn set() -> RecordSet {
        let mut builder = StoreBuilder::new();
        for i in 0..20i64 {
            let created = if i == 7 { NOW + 1 } else { 100 * i + 5 * (i % 3) };
            let doc =
                format!(r#"{{"_id":"r{i:02}","timestamp":{},"created":{created},"appId":{}}}"#, 100 * i, 1 + i % 2);
            let mut bytes = doc.into_bytes();
            let len = bytes.len();
            bytes.resize(len + INPUT_PADDING, 0);
            builder.add_document(&mut bytes, len, DataKind::Activities);
        }
        builder.build().activities
    }

    fn ids(page: &[u8]) -> Vec<String> {
        let text = std::str::from_utf8(page).unwrap();
        text.match_indices("\"_id\":\"").map(|(i, _)| text[i + 7..i + 10].to_owned()).collect()
    }

    fn run(set: &RecordSet, body: &str) -> (Vec<String>, PageSummary, String) {
        let query = parse_text(body, Endpoint::Activities, NOW).unwrap();
        let mut out = Vec::new();
        let summary = write_page(set, &query, Endpoint::Activities, NOW, PageShape::default(), &mut out);
        (ids(&out), summary, String::from_utf8(out).unwrap())
    }

    #[test]
    fn time_filters_select_inclusive_and_exclusive_bounds() {
        let set = set();
        let (got, summary, _) = run(&set, r#"{"filters":{"date":{"gte":300,"lt":600}},"limit":100}"#);
        assert_eq!(got, ["r03", "r04", "r05"]);
        assert_eq!(summary.total, 3);
        let (got, ..) = run(&set, r#"{"filters":{"date":{"gt":300,"lte":600}},"limit":100}"#);
        assert_eq!(got, ["r04", "r05", "r06"]);
        let (got, ..) = run(&set, r#"{"filters":{"date":{"range":{"start":1700,"end":1900}}}}"#);
        assert_eq!(got, ["r17", "r18", "r19"]);
        let (got, ..) = run(&set, r#"{"filters":{"created":{"gte":1800}},"sortField":"created"}"#);
        assert_eq!(got, ["r18", "r19"]);
    }

    #[test]
    fn records_stored_in_the_future_are_invisible() {
        let set = set();
        let (got, summary, _) = run(&set, r#"{"filters":{"date":{"gte":600,"lte":800}}}"#);
        assert_eq!(got, ["r06", "r08"]);
        assert_eq!(summary.total, 2);
    }

    #[test]
    fn ndays_operators_count_back_from_now() {
        let set = set();
        let query = parse_text(r#"{"filters":{"date":{"gte_ndays":1}}}"#, Endpoint::Activities, NOW).unwrap();
        assert_eq!(query.date.min, NOW - DAY_MS);
        let (got, ..) = run(&set, r#"{"filters":{"date":{"lte_ndays":0}},"limit":100}"#);
        assert_eq!(got.len(), 19);
    }

    #[test]
    fn service_filter_and_descending_sort() {
        let set = set();
        let (got, ..) = run(&set, r#"{"filters":{"service":{"eq":[2]}},"sortDirection":"desc","limit":3}"#);
        assert_eq!(got, ["r19", "r17", "r15"]);
        let (got, ..) = run(&set, r#"{"filters":{"service":{"neq":[2]},"date":{"lt":500}}}"#);
        assert_eq!(got, ["r00", "r02", "r04"]);
    }

    #[test]
    fn sorting_by_created_orders_by_storage_time() {
        let mut builder = StoreBuilder::new();
        for (id, ts, created) in [("a", 1, 50), ("b", 2, 10), ("c", 3, 30)] {
            let mut bytes = format!(r#"{{"_id":"{id}00","timestamp":{ts},"created":{created}}}"#).into_bytes();
            let len = bytes.len();
            bytes.resize(len + INPUT_PADDING, 0);
            builder.add_document(&mut bytes, len, DataKind::Activities);
        }
        let set = builder.build().activities;
        let (got, ..) = run(&set, r#"{"sortField":"created"}"#);
        assert_eq!(got, ["b00", "c00", "a00"]);
        let (got, ..) = run(&set, r#"{"sortField":"date","sortDirection":"desc"}"#);
        assert_eq!(got, ["c00", "b00", "a00"]);
    }

    #[test]
    fn offset_paging_reports_has_next_and_total() {
        let set = set();
        let (got, summary, text) = run(&set, r#"{"skip":15,"limit":3}"#);
        assert_eq!(got, ["r16", "r17", "r18"]);
        assert_eq!(summary, PageSummary { records: 3, total: 19, has_next: true });
        assert!(text.ends_with("],\"hasNext\":true,\"total\":19}"), "{text}");
        let (got, summary, _) = run(&set, r#"{"skip":16,"limit":3}"#);
        assert_eq!(got, ["r17", "r18", "r19"]);
        assert!(!summary.has_next);
    }

    #[test]
    fn limits_and_offsets_are_capped() {
        for body in [
            r#"{"limit":101}"#,
            r#"{"skip":4950,"limit":100}"#,
            r#"{"isScan":true,"limit":5001}"#,
            r#"{"isScan":true,"skip":10}"#,
            r#"{"filters":{"user":{"eq":"x"}}}"#,
            r#"{"filters":{"date":{"eq":1}}}"#,
            r#"{"sortField":"title"}"#,
            r#"[1]"#,
        ] {
            assert!(parse_text(body, Endpoint::Activities, NOW).is_err(), "{body}");
        }
        assert!(parse_text(r#"{"isScan":true}"#, Endpoint::Alerts, NOW).is_err());
        assert!(parse_text(r#"{"sortField":"created"}"#, Endpoint::Alerts, NOW).is_err());
        assert_eq!(parse_text("", Endpoint::Alerts, NOW).unwrap().limit, DEFAULT_LIMIT);
    }

    #[test]
    fn scan_walks_every_visible_record_once_through_next_query_filters() {
        let set = set();
        let mut body = r#"{"filters":{"date":{"gte":200}},"isScan":true,"limit":4}"#.to_owned();
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let (got, summary, text) = run(&set, &body);
            pages += 1;
            assert_eq!(summary.total, 17);
            seen.extend(got);
            if !summary.has_next {
                assert!(!text.contains("nextQueryFilters"));
                break;
            }
            let start = text.find("\"nextQueryFilters\":").unwrap() + 19;
            let filters = &text[start..text.len() - 1];
            assert!(filters.starts_with(r#"{"date":{"gte":200},"_scanAfter":{"gt":"#), "{filters}");
            body = format!(r#"{{"filters":{filters},"isScan":true,"limit":4}}"#);
        }
        let expected: Vec<String> = (2..20).filter(|&i| i != 7).map(|i| format!("r{i:02}")).collect();
        assert_eq!(seen, expected);
        assert_eq!(pages, 5);
    }

    #[test]
    fn scan_pages_may_be_cut_short() {
        let set = set();
        let query = parse_text(r#"{"isScan":true,"limit":10}"#, Endpoint::Activities, NOW).unwrap();
        let mut out = Vec::new();
        let shape = PageShape { max_bytes: usize::MAX, cut_after: Some(3), ..PageShape::default() };
        let summary = write_page(&set, &query, Endpoint::Activities, NOW, shape, &mut out);
        assert_eq!((summary.records, summary.has_next), (3, true));
        let shape = PageShape { max_bytes: 1, cut_after: None, ..PageShape::default() };
        let summary = write_page(&set, &query, Endpoint::Activities, NOW, shape, &mut out);
        assert_eq!((summary.records, summary.has_next), (1, true));
    }

    #[test]
    fn alerts_pages_carry_max_and_more_than_total() {
        let mut builder = StoreBuilder::new();
        let mut bytes = br#"{"_id":"a1","timestamp":5}"#.to_vec();
        let len = bytes.len();
        bytes.resize(len + INPUT_PADDING, 0);
        builder.add_document(&mut bytes, len, DataKind::Alerts);
        let set = builder.build().alerts;
        let query = parse_text(r#"{"sortField":"date"}"#, Endpoint::Alerts, NOW).unwrap();
        let mut out = Vec::new();
        write_page(&set, &query, Endpoint::Alerts, NOW, PageShape::default(), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"data":[{"_id":"a1","timestamp":5}],"hasNext":false,"total":1,"max":5000,"moreThanTotal":false}"#
        );
    }
}
