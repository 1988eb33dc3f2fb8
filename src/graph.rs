//! Microsoft Graph security `alerts_v2`, client side: a blocking,
//! rate-limited, retrying client ([`GraphClient`]) and the pager that walks
//! the alerts created in a time window ([`AlertPager`]).
//!
//! The client owns the Entra ID token (client credentials, scope
//! `https://graph.microsoft.com/.default`, refreshed before it expires),
//! Graph's throttle (150 requests per minute per app and tenant, kept by a
//! [`RequestLimiter`], shared through a [`RateLedger`] with the other
//! processes of the same app, so a healthy client never sees a 429), retries (429
//! and 5xx honour `Retry-After`, capped; network errors back off) and a
//! bound on every page. The pager asks for `createdDateTime ge <bound>`,
//! ascending, `$top` up to 1000, and moves the time bound to the newest
//! alert of each full page rather than following `$skip` links past the
//! service's cap of 500: alerts at the bound are fetched again and must be
//! dropped by `id` by the caller. Nothing here converts or sends alerts.

use crate::api::rate_ledger::MAX_SHARED_REQUESTS;
use crate::api::{RateLedger, RateLimit, RequestLimiter};
use crate::azure::entra::{ClientCredentials, TokenCache, TokenError};
use crate::http::{self, AgentSettings, Attempts, Backoff, Next, RetryPolicy, SetupError, TransportFailure};
use crate::json::JsonValue;
use crate::stop::Stop;
use crate::time::{TICKS_PER_MS, format_iso8601_ticks, parse_http_date, parse_iso8601_ticks};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Graph's base URL.
pub const GRAPH_URL: &str = "https://graph.microsoft.com";
/// The scope of a Graph application token.
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
/// Defender for Cloud Apps alerts only, as the legacy agent sent.
pub const DEFAULT_FILTER: &str = "serviceSource eq 'microsoftDefenderForCloudApps'";
/// Graph's limit for `alerts_v2`: 150 requests per minute per app and tenant.
pub const RATE_LIMIT: RateLimit = RateLimit { requests: 150, per: Duration::from_secs(60) };
/// Most alerts per page Graph accepts.
pub const MAX_TOP: u32 = 1000;
/// Largest `$skip` Graph accepts.
pub const MAX_SKIP: u64 = 500;

/// Validated settings of a Graph client.
#[derive(Clone, Debug)]
pub struct GraphConfig {
    /// `https://graph.microsoft.com` (or an emulator), no trailing `/`.
    pub base_url: String,
    pub credentials: ClientCredentials,
    /// `$filter` besides the time bound (`None`: every alert).
    pub filter: Option<String>,
    /// Alerts per page, 1..=1000.
    pub top: u32,
    pub rate_limit: RateLimit,
    pub retry: RetryPolicy,
    /// Longest `Retry-After` honoured.
    pub retry_after_cap: Duration,
    pub http: AgentSettings,
    /// Largest page read.
    pub max_page_bytes: u64,
    /// Where the requests the limit counted are shared with the other
    /// cefwire processes of this app and tenant (a restarted agent, a
    /// backfill beside it): [`RateLedger`]; `None`: this process only.
    pub rate_ledger_dir: Option<PathBuf>,
}

impl GraphConfig {
    /// Defaults: Defender for Cloud Apps alerts, pages of 1000, 150/min.
    pub fn new(base_url: &str, credentials: ClientCredentials) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            credentials,
            filter: Some(DEFAULT_FILTER.to_owned()),
            top: MAX_TOP,
            rate_limit: RATE_LIMIT,
            retry: RetryPolicy::default(),
            retry_after_cap: Duration::from_secs(300),
            http: AgentSettings { request_timeout: Some(Duration::from_secs(120)), ..AgentSettings::default() },
            max_page_bytes: 256 << 20,
            rate_ledger_dir: Some(RateLedger::default_dir()),
        }
    }
}

/// Why a Graph call failed.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error(
        "Graph refused the request ({status} {detail}): the app needs the application permission SecurityAlert.Read.All with admin consent"
    )]
    Unauthorized { status: u16, detail: String },
    #[error("Graph rejected the request as invalid (400 {detail}): {url}")]
    BadRequest { url: String, detail: String },
    #[error("{url} does not exist (404): check the Graph URL")]
    NotFound { url: String },
    #[error("unexpected answer {status} from {url}: {detail}")]
    Unexpected { status: u16, url: String, detail: String },
    #[error("giving up on {url} after {attempts} attempts; last error: {last}")]
    GaveUp { url: String, attempts: u32, last: String },
    #[error("TLS or proxy setup failed for {url}: {detail}")]
    Setup { url: String, detail: String },
    #[error(
        "more than {top} alerts share createdDateTime {time}: the time bound cannot move past them and $skip is capped at {MAX_SKIP}"
    )]
    Stuck { top: u32, time: String },
    #[error(transparent)]
    Agent(#[from] SetupError),
    #[error(transparent)]
    Token(#[from] TokenError),
    /// A stop was requested while the client waited (for the rate limit,
    /// a retry or the token endpoint): nothing more was sent.
    #[error("stopped while waiting to ask Graph")]
    Stopped,
    /// A URL (a page's `@odata.nextLink`) outside the configured Graph
    /// URL: the bearer token is never sent there.
    #[error(
        "Graph's answer links to {url}, which is not under the Graph URL {base}: not followed (the bearer token would be sent there)"
    )]
    ForeignUrl { url: String, base: String },
}

impl GraphError {
    /// True for errors that more waiting will not fix.
    pub fn is_permanent(&self) -> bool {
        !matches!(self, GraphError::GaveUp { .. } | GraphError::Token(TokenError::GaveUp { .. }))
    }
}

/// Counts of one client's traffic: the same as the Defender for Cloud Apps
/// client's (requests, pages, retries by kind, waits, share of the limit).
pub type GraphStats = crate::api::ClientStats;

type Failure = http::Failure<GraphError>;

/// A blocking client of `GET /v1.0/security/alerts_v2`.
pub struct GraphClient {
    agent: ureq::Agent,
    config: GraphConfig,
    tokens: TokenCache,
    limiter: RequestLimiter,
    backoff: Backoff,
    stats: GraphStats,
    /// Graph's clock (its `Date` header) at the last answer, and when that
    /// answer arrived.
    server_clock: Option<(i64, Instant)>,
}

impl GraphClient {
    /// Builds the client (reads the CA file); no traffic yet.
    pub fn new(config: &GraphConfig) -> Result<Self, GraphError> {
        let agent = http::agent(&config.http)?;
        let mut backoff = Backoff::new(config.retry);
        backoff.retry_after_cap = Some(config.retry_after_cap);
        Ok(Self {
            agent,
            tokens: TokenCache::new(config.credentials.clone()),
            limiter: limiter(config),
            backoff,
            stats: GraphStats::default(),
            config: config.clone(),
            server_clock: None,
        })
    }

    /// Graph's time now (ms), carried forward from the `Date` of its last
    /// answer on the monotonic clock; `None` before any answer with one.
    pub fn server_now_ms(&self) -> Option<i64> {
        self.server_clock.map(|(date, at)| date + at.elapsed().as_millis() as i64)
    }

    /// From now on a stop ends any wait (rate limit, retry backoff) at
    /// once and the call returns [`GraphError::Stopped`] without another
    /// request.
    pub fn stop_on(&mut self, stop: Stop) {
        self.backoff.stop = Some(stop);
    }

    pub fn stats(&self) -> GraphStats {
        let mut stats = self.stats;
        stats.limiter_wait = self.limiter.waited;
        stats.backoff_wait = self.backoff.waited;
        stats.tokens_fetched = self.tokens.fetched;
        stats
    }

    /// The first page of alerts created at or after `since` (100-ns ticks)
    /// and before `until`, oldest first.
    pub fn window_url(&self, since: i64, until: Option<i64>) -> String {
        let mut filter = format!("createdDateTime ge {}", format_iso8601_ticks(since));
        if let Some(until) = until {
            filter.push_str(&format!(" and createdDateTime lt {}", format_iso8601_ticks(until)));
        }
        if let Some(extra) = self.config.filter.as_deref().filter(|f| !f.trim().is_empty()) {
            filter = format!("{extra} and {filter}");
        }
        format!(
            "{}/v1.0/security/alerts_v2?$filter={}&$orderby=createdDateTime%20asc&$top={}",
            self.config.base_url,
            utf8_percent_encode(&filter, NON_ALPHANUMERIC),
            self.config.top.clamp(1, MAX_TOP)
        )
    }

    /// GETs `url` into `page` (cleared first), followed by the JSON
    /// parser's padding; returns the page length. Waits for the limiter;
    /// retries as configured.
    pub fn fetch(&mut self, url: &str, page: &mut Vec<u8>) -> Result<usize, GraphError> {
        if !is_under(url, &self.config.base_url) {
            return Err(GraphError::ForeignUrl { url: url.to_owned(), base: self.config.base_url.clone() });
        }
        let mut attempts = Attempts::default();
        loop {
            if self.backoff.stopping() {
                return Err(GraphError::Stopped);
            }
            let failure = match self.attempt(url, page) {
                Ok(len) => return Ok(len),
                Err(failure) => failure,
            };
            match attempts.after(failure, &mut self.backoff) {
                Next::Again => {}
                Next::RefreshToken => self.tokens.invalidate(),
                Next::Stop(err) => return Err(err),
                Next::GaveUp { attempts, last } => {
                    return Err(GraphError::GaveUp { url: url.to_owned(), attempts, last });
                }
                Next::TokenRefusedTwice => {
                    return Err(GraphError::Unauthorized { status: 401, detail: "even with a fresh token".into() });
                }
            }
        }
    }

    fn attempt(&mut self, url: &str, page: &mut Vec<u8>) -> Result<usize, Failure> {
        let token = match self.tokens.bearer(&self.agent, &mut self.backoff) {
            Ok(token) => token,
            Err(_) if self.backoff.stopping() => return Err(Failure::Stop(GraphError::Stopped)),
            Err(err) => return Err(Failure::Stop(err.into())),
        };
        let header = format!("Bearer {token}");
        if !self.limiter.acquire_unless_stopped(self.backoff.stop.as_ref()) {
            return Err(Failure::Stop(GraphError::Stopped));
        }
        let now = Instant::now();
        self.stats.requests += 1;
        self.stats.first_request.get_or_insert(now);
        self.stats.last_request = Some(now);
        let sent = self.agent.get(url).header("Authorization", &header).header("Accept", "application/json").call();
        // The slot counts from when the answer (or failure) came back.
        self.limiter.spend(Instant::now());
        let response = sent.map_err(|e| match http::classify_transport(e) {
            TransportFailure::Setup(detail) => Failure::Stop(GraphError::Setup { url: url.to_owned(), detail }),
            TransportFailure::Retry(what) => {
                self.stats.network_errors += 1;
                Failure::Retry { what, retry_after: None }
            }
        })?;
        // A missing or unreadable `Date` leaves the clock as it was.
        if let Some(date) = response.headers().get("date").and_then(|v| v.to_str().ok()).and_then(parse_http_date) {
            self.server_clock = Some((date, Instant::now()));
        }
        let status = response.status().as_u16();
        let retry_after = http::retry_after(response.headers());
        let read = http::read_padded_body(response.into_body(), self.config.max_page_bytes, page);
        if status == 200 {
            let len = read.map_err(|e| {
                self.stats.network_errors += 1;
                Failure::Retry { what: e.to_string(), retry_after: None }
            })?;
            self.stats.pages += 1;
            self.stats.body_bytes += len as u64;
            return Ok(len);
        }
        let detail = match read {
            Ok(len) => http::error_detail(&page[..len]),
            Err(e) => e.to_string(),
        };
        page.clear();
        let stop = |err| Err(Failure::Stop(err));
        match status {
            429 => {
                self.stats.throttled += 1;
                Err(Failure::Retry { what: format!("429 {detail}"), retry_after })
            }
            500..=599 => {
                self.stats.server_errors += 1;
                Err(Failure::Retry { what: format!("{status} {detail}"), retry_after })
            }
            401 => Err(Failure::StaleToken),
            403 => stop(GraphError::Unauthorized { status, detail }),
            404 => stop(GraphError::NotFound { url: url.to_owned() }),
            400 => stop(GraphError::BadRequest { url: url.to_owned(), detail }),
            _ => stop(GraphError::Unexpected { status, url: url.to_owned(), detail }),
        }
    }
}

/// The client's limiter: Graph counts requests per app and tenant, so the
/// ledger is keyed by Graph's URL, the tenant and the app.
fn limiter(config: &GraphConfig) -> RequestLimiter {
    let limiter = RequestLimiter::new(config.rate_limit);
    let requests = config.rate_limit.requests;
    let Some(dir) = config.rate_ledger_dir.as_deref().filter(|_| requests <= MAX_SHARED_REQUESTS) else {
        return limiter;
    };
    let c = &config.credentials;
    let key = format!("{}/v1.0/security/alerts_v2#{}#{}", config.base_url, c.tenant_id, c.client_id);
    match RateLedger::open(dir, &key, requests) {
        Ok(ledger) => limiter.with_ledger(ledger),
        // Not an error: the limiter then counts this process's requests.
        Err(_) => limiter,
    }
}

/// What one page says about paging.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GraphPageInfo {
    pub alerts: usize,
    pub next_link: Option<String>,
    /// The newest `createdDateTime` on the page, in 100-ns ticks.
    pub newest_created: Option<i64>,
}

impl GraphPageInfo {
    /// Reads a parsed page; `None` when it is not a Graph page.
    pub fn from_page(root: JsonValue<'_, '_>) -> Option<Self> {
        let mut info = GraphPageInfo::default();
        let mut values = None;
        for (key, value) in root.object()? {
            match key {
                "value" => values = value.array(),
                "@odata.nextLink" => info.next_link = value.as_str().map(str::to_owned),
                _ => {}
            }
        }
        for alert in values? {
            info.alerts += 1;
            let created = alert.get("createdDateTime").and_then(|v| v.as_str());
            if let Some(ticks) = created.and_then(|c| parse_iso8601_ticks(c.as_bytes(), 9)) {
                info.newest_created = Some(info.newest_created.map_or(ticks, |n| n.max(ticks)));
            }
        }
        Some(info)
    }
}

/// Walks the alerts created in a window, one page at a time.
#[derive(Clone, Debug)]
pub struct AlertPager {
    /// Lower bound (inclusive) of the next query, 100-ns ticks.
    lower: i64,
    until: Option<i64>,
    /// The next request, when it is not a fresh query from `lower`.
    next: Option<String>,
    done: bool,
}

impl AlertPager {
    /// Alerts created at or after `since_ms` and before `until_ms`.
    pub fn new(since_ms: i64, until_ms: Option<i64>) -> Self {
        Self { lower: since_ms * TICKS_PER_MS, until: until_ms.map(|u| u * TICKS_PER_MS), next: None, done: false }
    }

    /// The lower time bound the pager is at (100-ns ticks).
    pub fn position(&self) -> i64 {
        self.lower
    }

    /// The URL of the next page; `None` when the window is done.
    pub fn next_url(&mut self, client: &GraphClient) -> Option<String> {
        if self.done {
            return None;
        }
        Some(self.next.take().unwrap_or_else(|| client.window_url(self.lower, self.until)))
    }

    /// Takes in what the page just fetched said. A page with a next link
    /// is full: follow the link when its `$skip` is allowed, else query
    /// again from the page's newest alert (those at that instant come
    /// again: the caller drops them by `id`).
    pub fn page_done(&mut self, info: &GraphPageInfo, top: u32) -> Result<(), GraphError> {
        let Some(link) = &info.next_link else {
            self.done = true;
            return Ok(());
        };
        if skip_of(link).is_some_and(|skip| skip <= MAX_SKIP) {
            self.next = Some(link.clone());
            return Ok(());
        }
        match info.newest_created {
            Some(newest) if newest > self.lower => {
                self.lower = newest;
                Ok(())
            }
            _ => Err(GraphError::Stuck { top, time: format_iso8601_ticks(self.lower) }),
        }
    }
}

/// True when `url` is `base` or a path below it (same scheme, host and
/// port: `https://graph.microsoft.com.example` is not under
/// `https://graph.microsoft.com`).
fn is_under(url: &str, base: &str) -> bool {
    let same_start = url.get(..base.len()).is_some_and(|start| start.eq_ignore_ascii_case(base));
    same_start && (url.len() == base.len() || url[base.len()..].starts_with(['/', '?']))
}

/// The `$skip` of a next link.
fn skip_of(link: &str) -> Option<u64> {
    let query = link.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        matches!(key, "$skip" | "%24skip").then(|| value.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{INPUT_PADDING, JsonParser};

    fn info(page: &str) -> GraphPageInfo {
        let mut buf = page.as_bytes().to_vec();
        let len = buf.len();
        buf.resize(len + INPUT_PADDING, 0);
        JsonParser::new().parse(&mut buf, len, GraphPageInfo::from_page).unwrap().unwrap()
    }

    #[test]
    fn only_urls_under_the_graph_url_get_the_token() {
        let base = "https://graph.microsoft.com";
        assert!(is_under("https://graph.microsoft.com/v1.0/security/alerts_v2?$skip=100", base));
        assert!(is_under("https://Graph.Microsoft.com/v1.0/x", base));
        for elsewhere in [
            "https://graph.microsoft.com.example/v1.0/x",
            "https://graph.microsoft.com@example.net/v1.0/x",
            "https://graph.microsoft.com:8443/v1.0/x",
            "http://graph.microsoft.com/v1.0/x",
            "https://example.net/https://graph.microsoft.com/v1.0/x",
            "",
        ] {
            assert!(!is_under(elsewhere, base), "{elsewhere}");
        }
    }

    #[test]
    fn page_info_and_pager_moves_the_time_bound() {
        let page = r#"{"value":[{"id":"a","createdDateTime":"2024-05-01T10:00:00.0000002Z"},{"id":"b","createdDateTime":"2024-05-01T10:00:00.0000009Z"}],"@odata.nextLink":"http://g/v1.0/security/alerts_v2?$top=2&$skip=1000"}"#;
        let i = info(page);
        assert_eq!(i.alerts, 2);
        assert_eq!(i.newest_created, Some(parse_iso8601_ticks(b"2024-05-01T10:00:00.0000009Z", 7).unwrap()));
        let mut pager = AlertPager::new(1_714_557_600_000, None);
        pager.page_done(&i, 2).unwrap();
        assert_eq!(pager.position(), i.newest_created.unwrap());
        // A page whose newest alert is the bound itself cannot move it.
        assert!(matches!(pager.page_done(&i, 2), Err(GraphError::Stuck { .. })));
        // Small skips are followed; no next link ends the window.
        let small = r#"{"value":[],"@odata.nextLink":"http://g/x?$top=100&$skip=100"}"#;
        let mut pager = AlertPager::new(0, None);
        pager.page_done(&info(small), 100).unwrap();
        assert_eq!(pager.next.as_deref(), Some("http://g/x?$top=100&$skip=100"));
        pager.page_done(&info(r#"{"value":[]}"#), 100).unwrap();
        assert!(pager.done);
    }
}
