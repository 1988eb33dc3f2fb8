//! Walking a time window page by page with the biggest pages the API
//! allows: scan mode for activities (follow `nextQueryFilters` while
//! `hasNext`), and for alerts offset pages of 100 whose lower time bound
//! moves forward before `skip + limit` would pass 5000.
//!
//! A pager writes request bodies into a caller-owned buffer and learns
//! from the [`PageInfo`] of each parsed page what to ask next. It performs
//! no I/O and does not look at records beyond their time and count, so the
//! same pagers serve backfill and the agent. [`WindowQuery`] is the one
//! place they are built (and the dry run's sample request with them).

use super::client::Endpoint;
use crate::json::{JsonValue, Scalar, write_compact_json, write_json_string};

/// Largest scan page.
pub const SCAN_PAGE: u64 = 5000;
/// Largest offset page.
pub const OFFSET_PAGE: u64 = 100;
/// `skip + limit` never exceeds this.
pub const OFFSET_WINDOW: u64 = 5000;

/// The time field a window is cut on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeKey {
    /// When it happened (`timestamp` in records, `date` in filters).
    Date,
    /// When it was stored (activities only).
    Created,
}

impl TimeKey {
    pub fn filter_name(self) -> &'static str {
        match self {
            TimeKey::Date => "date",
            TimeKey::Created => "created",
        }
    }

    pub fn record_field(self) -> &'static str {
        match self {
            TimeKey::Date => "timestamp",
            TimeKey::Created => "created",
        }
    }
}

/// What a pager needs to know about a page it asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageInfo {
    pub records: u64,
    pub has_next: bool,
    /// `hasNext` was there but not `true` or `false` (`"true"`, `1`):
    /// paging cannot go on safely, either way.
    pub has_next_not_boolean: bool,
    pub total: Option<u64>,
    /// `nextQueryFilters` as compact JSON.
    pub next_filters: Option<Vec<u8>>,
    /// The time (per the pager's [`TimeKey`]) of the last record.
    pub last_time: Option<i64>,
    /// How many records at the end of the page share `last_time`.
    pub records_at_last_time: u64,
    /// True when every record of the page has `last_time`.
    pub all_at_last_time: bool,
}

impl PageInfo {
    /// Reads a parsed page (`{"data":[…],"hasNext":…}`); `None` when the
    /// document is not a page.
    pub fn from_page(root: JsonValue<'_, '_>, key: TimeKey) -> Option<PageInfo> {
        let data = root.get("data")?.array()?;
        let has_next = root.get("hasNext");
        let mut info = PageInfo {
            has_next: matches!(has_next.and_then(|v| v.scalar()), Some(Scalar::Bool(true))),
            has_next_not_boolean: has_next.is_some_and(|v| !matches!(v.scalar(), Some(Scalar::Bool(_)))),
            total: root.get("total").and_then(|v| v.as_i64_lenient()).and_then(|t| u64::try_from(t).ok()),
            ..PageInfo::default()
        };
        if let Some(next) = root.get("nextQueryFilters").filter(|v| v.is_object()) {
            let mut json = Vec::new();
            write_compact_json(next, &mut json);
            info.next_filters = Some(json);
        }
        let field = key.record_field();
        let mut all_same = true;
        for record in data {
            info.records += 1;
            let time = record.get(field).and_then(|v| v.as_i64_lenient());
            if time.is_some() && time == info.last_time {
                info.records_at_last_time += 1;
            } else {
                all_same = info.records == 1;
                info.last_time = time;
                info.records_at_last_time = 1;
            }
        }
        info.all_at_last_time = all_same && info.records > 0;
        Some(info)
    }
}

/// A time window `[from, until)` in epoch milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeWindow {
    pub from: i64,
    pub until: i64,
}

/// The paging protocol went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PagingError {
    #[error("the page was not an API page ({{\"data\":[…]}})")]
    NotAPage,
    #[error("the API said hasNext but sent no nextQueryFilters")]
    MissingNextFilters,
    #[error("the API's hasNext is neither true nor false; stopping rather than guessing whether more pages follow")]
    HasNextNotBoolean,
    #[error(
        "the API said hasNext with the same nextQueryFilters it was just asked with: the scan does not move; stopping rather than reading the same page again"
    )]
    ScanDoesNotMove,
    #[error("more than {OFFSET_WINDOW} alerts share the time {0}; they cannot be paged without gaps")]
    StuckOnOneTime(i64),
}

/// One endpoint over one window: what the requests of backfill, the agent
/// and the dry run are built from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowQuery {
    pub endpoint: Endpoint,
    /// The time field the window is cut on (alerts: always `date`).
    pub key: TimeKey,
    pub window: TimeWindow,
    /// Extra filters as JSON object members (`"service":{"eq":[11161]}`),
    /// maybe empty.
    pub extra_members: Vec<u8>,
    /// Activities per scan page (at most [`SCAN_PAGE`]).
    pub scan_limit: u64,
}

impl WindowQuery {
    /// Activities are cut on `activity_key`, alerts on `date`.
    pub fn new(
        endpoint: Endpoint,
        activity_key: TimeKey,
        window: TimeWindow,
        extra_members: &[u8],
        scan_limit: u64,
    ) -> Self {
        let key = match endpoint {
            Endpoint::Activities => activity_key,
            Endpoint::Alerts => TimeKey::Date,
        };
        Self { endpoint, key, window, extra_members: extra_members.to_vec(), scan_limit }
    }

    /// The pager that walks the window with the largest pages allowed:
    /// scan mode for activities, offset pages for alerts.
    pub fn pager(&self) -> Box<dyn Pager> {
        match self.endpoint {
            Endpoint::Activities => {
                Box::new(ActivityScan::new(self.key, self.window, &self.extra_members, self.scan_limit))
            }
            Endpoint::Alerts => {
                Box::new(OffsetPager::new(Endpoint::Alerts, self.key, self.window, &self.extra_members))
            }
        }
    }

    /// The first offset request over the window for `limit` records: its
    /// answer tells the total (the dry run asks for one record).
    pub fn sample_request(&self, limit: u64, out: &mut Vec<u8>) {
        OffsetPager::new(self.endpoint, self.key, self.window, &self.extra_members).with_limit(limit).next_request(out);
    }
}

/// Request bodies for one endpoint over one window.
pub trait Pager: Send {
    fn endpoint(&self) -> Endpoint;
    /// The time field the pages are sorted and cut on.
    fn key(&self) -> TimeKey;
    /// Writes the next request body into `out` (cleared first); `false`
    /// when the window is done.
    fn next_request(&mut self, out: &mut Vec<u8>) -> bool;
    /// Takes in the page answering the last request.
    fn page_done(&mut self, info: &PageInfo) -> Result<(), PagingError>;
}

/// Writes `{"<extra>…,"<key>":{"gte":from,"lt":until}}` (the extra filters'
/// members first).
fn write_window_filters(extra_members: &[u8], key: TimeKey, from: i64, until: i64, out: &mut Vec<u8>) {
    let mut itoa = itoa::Buffer::new();
    out.push(b'{');
    if !extra_members.is_empty() {
        out.extend_from_slice(extra_members);
        out.push(b',');
    }
    write_json_string(key.filter_name(), out);
    out.extend_from_slice(b":{\"gte\":");
    out.extend_from_slice(itoa.format(from).as_bytes());
    out.extend_from_slice(b",\"lt\":");
    out.extend_from_slice(itoa.format(until).as_bytes());
    out.extend_from_slice(b"}}");
}

/// Activities in scan mode over a window.
pub struct ActivityScan {
    key: TimeKey,
    window: TimeWindow,
    extra_members: Vec<u8>,
    limit: u64,
    state: ScanState,
}

enum ScanState {
    First,
    Next(Vec<u8>),
    Done,
}

impl ActivityScan {
    /// `extra_members`: additional filters as JSON object members
    /// (`"service":{"eq":[11161]}`), possibly empty.
    pub fn new(key: TimeKey, window: TimeWindow, extra_members: &[u8], limit: u64) -> Self {
        Self {
            key,
            window,
            extra_members: extra_members.to_vec(),
            limit: limit.clamp(1, SCAN_PAGE),
            state: ScanState::First,
        }
    }
}

impl Pager for ActivityScan {
    fn endpoint(&self) -> Endpoint {
        Endpoint::Activities
    }

    fn key(&self) -> TimeKey {
        self.key
    }

    fn next_request(&mut self, out: &mut Vec<u8>) -> bool {
        out.clear();
        out.extend_from_slice(b"{\"filters\":");
        match &self.state {
            ScanState::First => {
                write_window_filters(&self.extra_members, self.key, self.window.from, self.window.until, out)
            }
            ScanState::Next(filters) => out.extend_from_slice(filters),
            ScanState::Done => return false,
        }
        out.extend_from_slice(b",\"isScan\":true,\"sortField\":");
        write_json_string(self.key.filter_name(), out);
        out.extend_from_slice(b",\"sortDirection\":\"asc\",\"limit\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.limit).as_bytes());
        out.push(b'}');
        true
    }

    fn page_done(&mut self, info: &PageInfo) -> Result<(), PagingError> {
        if info.has_next_not_boolean {
            return Err(PagingError::HasNextNotBoolean);
        }
        if !info.has_next {
            self.state = ScanState::Done;
            return Ok(());
        }
        let next = info.next_filters.as_ref().ok_or(PagingError::MissingNextFilters)?;
        if matches!(&self.state, ScanState::Next(asked) if asked == next) {
            return Err(PagingError::ScanDoesNotMove);
        }
        self.state = ScanState::Next(next.clone());
        Ok(())
    }
}

/// Alerts (or activities without scan) by offset pages, moving the lower
/// time bound forward instead of skipping past 5000.
pub struct OffsetPager {
    endpoint: Endpoint,
    key: TimeKey,
    window: TimeWindow,
    extra_members: Vec<u8>,
    /// Records per page (at most [`OFFSET_PAGE`]).
    limit: u64,
    /// Lower bound of the current segment.
    segment_from: i64,
    skip: u64,
    /// Records at the end of the segment so far that share the last time.
    tail_at_last_time: u64,
    last_time: Option<i64>,
    done: bool,
}

impl OffsetPager {
    pub fn new(endpoint: Endpoint, key: TimeKey, window: TimeWindow, extra_members: &[u8]) -> Self {
        Self {
            endpoint,
            key,
            window,
            extra_members: extra_members.to_vec(),
            limit: OFFSET_PAGE,
            segment_from: window.from,
            skip: 0,
            tail_at_last_time: 0,
            last_time: None,
            done: false,
        }
    }

    /// Pages of `limit` records instead of [`OFFSET_PAGE`].
    pub fn with_limit(mut self, limit: u64) -> Self {
        self.limit = limit.clamp(1, OFFSET_PAGE);
        self
    }
}

impl Pager for OffsetPager {
    fn endpoint(&self) -> Endpoint {
        self.endpoint
    }

    fn key(&self) -> TimeKey {
        self.key
    }

    fn next_request(&mut self, out: &mut Vec<u8>) -> bool {
        out.clear();
        if self.done {
            return false;
        }
        let mut itoa = itoa::Buffer::new();
        out.extend_from_slice(b"{\"filters\":");
        write_window_filters(&self.extra_members, self.key, self.segment_from, self.window.until, out);
        out.extend_from_slice(b",\"sortField\":");
        write_json_string(self.key.filter_name(), out);
        out.extend_from_slice(b",\"sortDirection\":\"asc\",\"skip\":");
        out.extend_from_slice(itoa.format(self.skip).as_bytes());
        out.extend_from_slice(b",\"limit\":");
        out.extend_from_slice(itoa.format(self.limit).as_bytes());
        out.push(b'}');
        true
    }

    fn page_done(&mut self, info: &PageInfo) -> Result<(), PagingError> {
        if info.has_next_not_boolean {
            return Err(PagingError::HasNextNotBoolean);
        }
        if !info.has_next || info.records == 0 {
            self.done = true;
            return Ok(());
        }
        // Track how many records at the end of the segment share the last time.
        if info.all_at_last_time && info.last_time == self.last_time {
            self.tail_at_last_time += info.records;
        } else {
            self.tail_at_last_time = info.records_at_last_time;
        }
        self.last_time = info.last_time;
        if self.skip + info.records + self.limit <= OFFSET_WINDOW {
            self.skip += info.records;
            return Ok(());
        }
        // Start a new segment at the last time seen, skipping the records
        // at that time already received (the order within one time is the
        // service's stable order).
        let last = info.last_time.unwrap_or(self.segment_from);
        if last == self.segment_from && self.tail_at_last_time + self.limit > OFFSET_WINDOW {
            return Err(PagingError::StuckOnOneTime(last));
        }
        self.segment_from = last;
        self.skip = self.tail_at_last_time;
        Ok(())
    }
}

/// One request with a fixed body, sent once (the agent's first request,
/// which checks the credentials and learns the server's clock).
pub struct OneRequest {
    endpoint: Endpoint,
    body: Vec<u8>,
    sent: bool,
}

impl OneRequest {
    pub fn new(endpoint: Endpoint, body: &[u8]) -> Self {
        Self { endpoint, body: body.to_vec(), sent: false }
    }
}

impl Pager for OneRequest {
    fn endpoint(&self) -> Endpoint {
        self.endpoint
    }

    fn key(&self) -> TimeKey {
        TimeKey::Date
    }

    fn next_request(&mut self, out: &mut Vec<u8>) -> bool {
        out.clear();
        if self.sent {
            return false;
        }
        out.extend_from_slice(&self.body);
        self.sent = true;
        true
    }

    fn page_done(&mut self, _: &PageInfo) -> Result<(), PagingError> {
        Ok(())
    }
}

/// Checks a `--filter` object and returns its members (without braces) for
/// the pagers; the time fields are the pagers' own.
pub fn filter_members(root: JsonValue<'_, '_>) -> Result<Vec<u8>, String> {
    let Some(members) = root.object() else { return Err("must be a JSON object of filters".to_owned()) };
    let mut out = Vec::new();
    for (key, value) in members {
        if matches!(key, "date" | "created" | "timestamp") {
            return Err(format!("must not filter on {key:?}: cefwire sets the time window itself"));
        }
        if !value.is_object() {
            return Err(format!("filter {key:?} must be an object of operators, e.g. {{\"eq\":[…]}}"));
        }
        if !out.is_empty() {
            out.push(b',');
        }
        write_json_string(key, &mut out);
        out.push(b':');
        write_compact_json(value, &mut out);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{INPUT_PADDING, JsonParser};

    fn info(text: &str, key: TimeKey) -> PageInfo {
        let mut bytes = text.as_bytes().to_vec();
        let len = bytes.len();
        bytes.resize(len + INPUT_PADDING, 0);
        JsonParser::new().parse(&mut bytes, len, |root| PageInfo::from_page(root, key)).unwrap().unwrap()
    }

    #[test]
    fn page_info_reads_paging_fields_and_the_tail() {
        let page = info(
            r#"{"data":[{"timestamp":1},{"timestamp":5},{"timestamp":"5"}],"hasNext":true,"total":9,"nextQueryFilters":{"a":{"gt":1}}}"#,
            TimeKey::Date,
        );
        assert_eq!(
            page,
            PageInfo {
                records: 3,
                has_next: true,
                has_next_not_boolean: false,
                total: Some(9),
                next_filters: Some(br#"{"a":{"gt":1}}"#.to_vec()),
                last_time: Some(5),
                records_at_last_time: 2,
                all_at_last_time: false,
            }
        );
        let page = info(r#"{"data":[{"created":7},{"created":7}],"hasNext":false}"#, TimeKey::Created);
        assert!(page.all_at_last_time && page.records_at_last_time == 2 && !page.has_next);
    }

    fn body(pager: &mut dyn Pager) -> Option<String> {
        let mut out = Vec::new();
        pager.next_request(&mut out).then(|| String::from_utf8(out).unwrap())
    }

    #[test]
    fn scan_follows_next_query_filters_verbatim() {
        let window = TimeWindow { from: 100, until: 200 };
        let mut scan = ActivityScan::new(TimeKey::Date, window, br#""service":{"eq":[1]}"#, 9000);
        assert_eq!(
            body(&mut scan).unwrap(),
            r#"{"filters":{"service":{"eq":[1]},"date":{"gte":100,"lt":200}},"isScan":true,"sortField":"date","sortDirection":"asc","limit":5000}"#
        );
        let next = PageInfo { has_next: true, next_filters: Some(br#"{"x":{"gt":3}}"#.to_vec()), ..Default::default() };
        scan.page_done(&next).unwrap();
        assert!(body(&mut scan).unwrap().starts_with(r#"{"filters":{"x":{"gt":3}},"isScan":true"#));
        assert_eq!(
            scan.page_done(&PageInfo { has_next: true, ..Default::default() }),
            Err(PagingError::MissingNextFilters)
        );
        scan.page_done(&PageInfo::default()).unwrap();
        assert_eq!(body(&mut scan), None);
    }

    #[test]
    fn offset_pager_moves_the_time_bound_before_5000() {
        let window = TimeWindow { from: 0, until: 1_000_000 };
        let mut pager = OffsetPager::new(Endpoint::Alerts, TimeKey::Date, window, b"");
        let full = |last: i64, at_last: u64| PageInfo {
            records: 100,
            has_next: true,
            last_time: Some(last),
            records_at_last_time: at_last,
            ..Default::default()
        };
        for page in 0..50 {
            let text = body(&mut pager).unwrap();
            assert!(text.contains(&format!(r#""skip":{},"limit":100"#, page * 100)), "{text}");
            pager.page_done(&full(1000 + page as i64, 3)).unwrap();
        }
        // skip 4900 was the last page of the segment: next segment from the
        // last time, skipping the 3 records already received at it.
        let text = body(&mut pager).unwrap();
        assert_eq!(
            text,
            r#"{"filters":{"date":{"gte":1049,"lt":1000000}},"sortField":"date","sortDirection":"asc","skip":3,"limit":100}"#
        );
        pager.page_done(&PageInfo { records: 10, has_next: false, ..Default::default() }).unwrap();
        assert_eq!(body(&mut pager), None);
    }

    #[test]
    fn window_queries_build_every_pager_and_the_sample_request() {
        let window = TimeWindow { from: 100, until: 200 };
        let activities = WindowQuery::new(Endpoint::Activities, TimeKey::Created, window, b"", 500);
        let alerts = WindowQuery::new(Endpoint::Alerts, TimeKey::Created, window, b"", 500);
        assert_eq!((activities.key, alerts.key), (TimeKey::Created, TimeKey::Date), "alerts are cut on date");
        let mut pager = activities.pager();
        assert_eq!((pager.endpoint(), pager.key()), (Endpoint::Activities, TimeKey::Created));
        assert!(
            body(pager.as_mut())
                .unwrap()
                .contains(r#""isScan":true,"sortField":"created","sortDirection":"asc","limit":500}"#)
        );
        let mut pager = alerts.pager();
        assert_eq!((pager.endpoint(), pager.key()), (Endpoint::Alerts, TimeKey::Date));
        assert!(body(pager.as_mut()).unwrap().ends_with(r#""skip":0,"limit":100}"#));
        let mut sample = Vec::new();
        activities.sample_request(1, &mut sample);
        assert_eq!(
            String::from_utf8(sample).unwrap(),
            r#"{"filters":{"created":{"gte":100,"lt":200}},"sortField":"created","sortDirection":"asc","skip":0,"limit":1}"#
        );
    }

    #[test]
    fn one_request_is_sent_once() {
        let mut one = OneRequest::new(Endpoint::Alerts, br#"{"filters":{},"limit":1}"#);
        assert_eq!(body(&mut one).unwrap(), r#"{"filters":{},"limit":1}"#);
        one.page_done(&PageInfo::default()).unwrap();
        assert_eq!(body(&mut one), None);
    }

    #[test]
    fn filter_members_refuse_time_fields() {
        let parse = |text: &str| {
            let mut bytes = text.as_bytes().to_vec();
            let len = bytes.len();
            bytes.resize(len + INPUT_PADDING, 0);
            JsonParser::new().parse(&mut bytes, len, filter_members).unwrap()
        };
        assert_eq!(parse(r#"{"service":{"eq":[11161]}}"#).unwrap(), br#""service":{"eq":[11161]}"#);
        assert!(parse(r#"{"date":{"gte":1}}"#).is_err());
        assert!(parse(r#"{"service":5}"#).is_err());
        assert!(parse("[1]").is_err());
    }

    #[test]
    fn has_next_must_be_a_boolean() {
        let page = info(r#"{"data":[{"timestamp":1}],"hasNext":"true"}"#, TimeKey::Date);
        assert!(page.has_next_not_boolean && !page.has_next);
        assert!(!info(r#"{"data":[],"hasNext":false}"#, TimeKey::Date).has_next_not_boolean);
        assert!(!info(r#"{"data":[]}"#, TimeKey::Date).has_next_not_boolean, "missing: no more pages");
        let window = TimeWindow { from: 0, until: 10 };
        let mut scan = ActivityScan::new(TimeKey::Date, window, b"", 100);
        assert_eq!(scan.page_done(&page), Err(PagingError::HasNextNotBoolean));
        let mut offsets = OffsetPager::new(Endpoint::Alerts, TimeKey::Date, window, b"");
        assert_eq!(offsets.page_done(&page), Err(PagingError::HasNextNotBoolean));
    }

    #[test]
    fn a_scan_cursor_that_repeats_is_an_error() {
        let mut scan = ActivityScan::new(TimeKey::Date, TimeWindow { from: 0, until: 10 }, b"", 100);
        let mut body = Vec::new();
        let next =
            |f: &str| PageInfo { has_next: true, next_filters: Some(f.as_bytes().to_vec()), ..Default::default() };
        assert!(scan.next_request(&mut body));
        assert_eq!(scan.page_done(&next(r#"{"a":1}"#)), Ok(()));
        assert!(scan.next_request(&mut body));
        assert_eq!(scan.page_done(&next(r#"{"a":2}"#)), Ok(()), "a new cursor moves on");
        assert!(scan.next_request(&mut body));
        assert_eq!(scan.page_done(&next(r#"{"a":2}"#)), Err(PagingError::ScanDoesNotMove));
    }
}
