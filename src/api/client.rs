//! The blocking HTTP client of the Defender for Cloud Apps API (ureq with
//! rustls/ring; no async runtime).
//!
//! [`ApiClient::fetch_page`] sends one list request and reads the response
//! body into a caller-owned, reused buffer padded for in-place parsing. It
//! owns authentication (legacy `Token`, or Entra ID client credentials with
//! a `Bearer` token refreshed before it expires), the proxy and trusted CA
//! setup, the [`RequestLimiter`], and retries: 429, 5xx and network errors
//! back off with jitter and try again; 401/403, 404 and 400 stop with an
//! error that says what to fix. It never parses records.

use super::limiter::{RateLimit, RequestLimiter};
use super::rate_ledger::{MAX_SHARED_REQUESTS, RateLedger};
pub use crate::azure::entra::ClientCredentials;
use crate::azure::entra::{TokenCache, TokenError};
pub use crate::http::RetryPolicy;
use crate::http::{self, AgentSettings, Attempts, Backoff, Next, SetupError, TransportFailure, error_detail};
use crate::json::INPUT_PADDING;
use crate::time::parse_http_date;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The default Entra ID token endpoint; `{tenant}` is replaced.
pub const DEFAULT_TOKEN_URL: &str = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token";
/// The Defender for Cloud Apps application's scope for client credentials.
pub const DEFAULT_SCOPE: &str = "05a65629-4c1b-48c1-a78b-804c4abdd4af/.default";

/// The list endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Activities,
    Alerts,
}

impl Endpoint {
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Activities => "/api/v1/activities/",
            Endpoint::Alerts => "/api/v1/alerts/",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Activities => "activities",
            Endpoint::Alerts => "alerts",
        }
    }
}

/// How the client proves who it is.
#[derive(Clone, PartialEq, Eq)]
pub enum ApiAuth {
    /// Legacy API token: `Authorization: Token …`.
    Token(String),
    /// Entra ID application, client-credentials flow: `Authorization: Bearer …`.
    ClientCredentials(ClientCredentials),
}

impl std::fmt::Debug for ApiAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiAuth::Token(_) => f.write_str("Token(<hidden>)"),
            ApiAuth::ClientCredentials(c) => f
                .debug_struct("ClientCredentials")
                .field("tenant_id", &c.tenant_id)
                .field("client_id", &c.client_id)
                .field("token_url", &c.token_url)
                .finish_non_exhaustive(),
        }
    }
}

/// Validated settings of the API client.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// `https://<tenant>.<region>.portal.cloudappsecurity.com`, no trailing `/`.
    pub portal_url: String,
    pub auth: ApiAuth,
    /// `http://[user:pass@]host:port` of an HTTP CONNECT proxy.
    pub proxy: Option<String>,
    /// PEM file of extra trusted CA certificates (replaces the built-in roots).
    pub ca_file: Option<PathBuf>,
    pub rate_limit: RateLimit,
    pub retry: RetryPolicy,
    /// Time limit for one whole request (connect, send, read the page).
    pub request_timeout: Duration,
    /// A page larger than this is refused (a broken or hostile server
    /// cannot make cefwire allocate without bound).
    pub max_page_bytes: u64,
    /// The longest a `Retry-After` is honoured ([`MAX_RETRY_AFTER`]).
    pub max_retry_after: Duration,
    /// Where the answers the rate limit counted are shared with other
    /// cefwire processes of this portal ([`RateLedger`]); `None`: not
    /// shared. Limits above [`MAX_SHARED_REQUESTS`] a window are never.
    pub rate_ledger_dir: Option<PathBuf>,
}

/// The default page size limit: a scan page of 5,000 activities is a few
/// tens of MB; this leaves room for records ten times larger than usual.
pub const DEFAULT_MAX_PAGE_BYTES: u64 = 256 << 20;

/// The longest a `Retry-After` is honoured. The API's throttle counts
/// requests per minute, so a longer wait is never needed; an absurd value
/// (`Retry-After: 99999999999`) must not park the agent for ever.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

impl ApiConfig {
    /// Defaults for `portal_url` with a legacy token.
    pub fn new(portal_url: &str, auth: ApiAuth) -> Self {
        Self {
            portal_url: portal_url.trim_end_matches('/').to_owned(),
            auth,
            proxy: None,
            ca_file: None,
            rate_limit: RateLimit::SERVICE,
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(300),
            max_page_bytes: DEFAULT_MAX_PAGE_BYTES,
            max_retry_after: MAX_RETRY_AFTER,
            rate_ledger_dir: Some(RateLedger::default_dir()),
        }
    }
}

/// Checks an HTTP CONNECT proxy given as `host[:port]`,
/// `user:password@host:port` or `http://…`, and returns it as a URL.
pub fn proxy_url(spec: &str) -> Result<String, ProxyError> {
    let (scheme, rest) = spec.split_once("://").unwrap_or(("http", spec));
    // Errors show the proxy without its password.
    let shown = without_password(spec);
    if scheme != "http" && scheme != "https" {
        return Err(ProxyError::Scheme { shown });
    }
    let host = rest.rsplit('@').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Err(ProxyError::NoHost { shown });
    }
    if let Some((_, port)) = host.rsplit_once(':')
        && !host.ends_with(']')
        && port.parse::<u16>().is_err()
    {
        return Err(ProxyError::Port { shown, port: port.to_owned() });
    }
    Ok(format!("{scheme}://{rest}"))
}

/// Why a proxy cannot be used; `shown` is the proxy as given, without its
/// password.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("{shown:?}: only HTTP CONNECT proxies are supported (http://host:port)")]
    Scheme { shown: String },
    #[error("{shown:?} has no host")]
    NoHost { shown: String },
    #[error("{shown:?}: port {port:?} is not a number")]
    Port { shown: String, port: String },
}

/// `user:password@host:port` (with or without a scheme) as
/// `user:***@host:port`, for messages.
pub fn without_password(spec: &str) -> String {
    let (scheme, rest) = match spec.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), spec),
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}{user}:***@{host}")
        }
        None => spec.to_owned(),
    }
}

/// Why the client stopped.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "the API refused the credentials ({status} {detail}): check --token (or --tenant-id/--client-id/--client-secret) and that --portal-url is your tenant's portal URL"
    )]
    Unauthorized { status: u16, detail: String },
    #[error(
        "the token endpoint refused the client credentials ({status} {detail}): check --tenant-id, --client-id and --client-secret"
    )]
    TokenRefused { status: u16, detail: String },
    #[error("{url} does not exist (404): check --portal-url")]
    NotFound { url: String },
    #[error("the API rejected the request as invalid (400 {detail}); request body: {body}")]
    BadRequest { detail: String, body: String },
    #[error("unexpected answer {status} from {url}: {detail}")]
    Unexpected { status: u16, url: String, detail: String },
    #[error("giving up on {url} after {attempts} attempts; last error: {last}")]
    GaveUp { url: String, attempts: u32, last: String },
    #[error("TLS or proxy setup failed for {url}: {detail} (check --api-ca, --proxy and --portal-url)")]
    Setup { url: String, detail: String },
    #[error("reading the CA file {path}: {detail}")]
    CaFile { path: String, detail: String },
    #[error("the token endpoint answered without an access_token: {0}")]
    BadTokenResponse(String),
    #[error(
        "{url} answered with a page larger than {limit} bytes; refused (a smaller scan_page_size, or a larger page limit, if the records are really that large)"
    )]
    PageTooLarge { url: String, limit: u64 },
}

impl ApiError {
    /// True for errors that more waiting will not fix (credentials, URL).
    pub fn is_permanent(&self) -> bool {
        !matches!(self, ApiError::GaveUp { .. })
    }
}

/// Counts of one client's traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// HTTP requests sent to the list API (every attempt).
    pub requests: u64,
    /// Pages received (200).
    pub pages: u64,
    pub body_bytes: u64,
    /// Retried failures by kind.
    pub throttled: u64,
    pub server_errors: u64,
    pub network_errors: u64,
    /// Tokens fetched from the token endpoint.
    pub tokens_fetched: u64,
    /// Time spent waiting for the rate limiter.
    pub limiter_wait: Duration,
    /// Time spent backing off after failures.
    pub backoff_wait: Duration,
    /// When the first and the last list request were sent.
    pub first_request: Option<Instant>,
    pub last_request: Option<Instant>,
}

impl ClientStats {
    /// The fraction of the rate limit used: the shortest time `limit`
    /// allows for this many requests (one full window per `requests`
    /// after the first burst) divided by the time they actually took.
    /// `None` until more than one window's worth of requests was sent.
    pub fn rate_use(&self, limit: RateLimit) -> Option<f64> {
        let (first, last) = (self.first_request?, self.last_request?);
        if self.requests <= u64::from(limit.requests) {
            return None;
        }
        let windows = (self.requests - 1) / u64::from(limit.requests);
        let ideal = limit.per.as_secs_f64() * windows as f64;
        let actual = last.duration_since(first).as_secs_f64();
        Some(if actual > 0.0 { (ideal / actual).min(1.0) } else { 1.0 })
    }
}

type Failure = http::Failure<ApiError>;

/// A blocking client for the list API.
pub struct ApiClient {
    agent: ureq::Agent,
    base: String,
    auth: ApiAuth,
    tokens: Option<TokenCache>,
    limiter: RequestLimiter,
    backoff: Backoff,
    max_page_bytes: u64,
    stats: ClientStats,
    /// The server's clock (its `Date` header) at the last answer, and when
    /// that answer arrived.
    server_clock: Option<(i64, Instant)>,
    /// Told of every failed attempt that will be (or would have been)
    /// retried, as it happens.
    failed_attempt: Option<FailedAttemptReport>,
}

/// The client's limiter, sharing the portal's answers with other processes
/// when it can (a ledger that cannot be opened is not an error: the
/// limiter then counts this process alone).
fn shared_limiter(config: &ApiConfig) -> RequestLimiter {
    let limiter = RequestLimiter::new(config.rate_limit);
    let requests = config.rate_limit.requests;
    match &config.rate_ledger_dir {
        Some(dir) if requests <= MAX_SHARED_REQUESTS => match RateLedger::open(dir, &config.portal_url, requests) {
            Ok(ledger) => limiter.with_ledger(ledger),
            Err(_) => limiter,
        },
        _ => limiter,
    }
}

/// Where [`ApiClient::on_failed_attempt`] reports go.
type FailedAttemptReport = Box<dyn FnMut(&str) + Send>;

impl ApiClient {
    /// Builds the client (reads the CA file); no network traffic yet.
    pub fn new(config: &ApiConfig) -> Result<ApiClient, ApiError> {
        let settings = AgentSettings {
            proxy: config.proxy.clone(),
            ca_file: config.ca_file.clone(),
            request_timeout: Some(config.request_timeout),
        };
        let agent = http::agent(&settings).map_err(|e| match e {
            SetupError::CaFile { path, detail } => ApiError::CaFile { path, detail },
            SetupError::Proxy { spec, detail } => {
                ApiError::Setup { url: without_password(&spec), detail: format!("bad --proxy: {detail}") }
            }
        })?;
        let tokens = match &config.auth {
            ApiAuth::Token(_) => None,
            ApiAuth::ClientCredentials(creds) => Some(TokenCache::new(creds.clone())),
        };
        let mut backoff = Backoff::new(config.retry);
        backoff.retry_after_cap = Some(config.max_retry_after);
        Ok(ApiClient {
            agent,
            base: config.portal_url.trim_end_matches('/').to_owned(),
            auth: config.auth.clone(),
            tokens,
            limiter: shared_limiter(config),
            backoff,
            max_page_bytes: config.max_page_bytes,
            stats: ClientStats::default(),
            server_clock: None,
            failed_attempt: None,
        })
    }

    /// Calls `report` with `POST URL: attempt N of M failed: cause` for every
    /// failed attempt of a request that is retried (the last one too), when
    /// it happens: the caller logs it, so an unreachable or mis-speaking
    /// server is not silent while the attempts last.
    pub fn on_failed_attempt(&mut self, report: impl FnMut(&str) + Send + 'static) {
        self.failed_attempt = Some(Box::new(report));
    }

    pub fn stats(&self) -> ClientStats {
        let mut stats = self.stats;
        stats.limiter_wait = self.limiter.waited;
        stats.backoff_wait = self.backoff.waited;
        stats.tokens_fetched = self.tokens.as_ref().map_or(0, |t| t.fetched);
        stats
    }

    pub fn rate_limit(&self) -> RateLimit {
        self.limiter.limit()
    }

    /// The server's time now (ms), extrapolated from the `Date` header of
    /// its last answer; `None` before any answer with one. Query windows
    /// are cut on this clock, so a jump of the local clock cannot skip
    /// records.
    pub fn server_now_ms(&self) -> Option<i64> {
        self.server_clock.map(|(date, at)| date + at.elapsed().as_millis() as i64)
    }

    /// The server's `Date` at its last answer and when that answer came
    /// (to carry the clock to another thread).
    pub fn server_clock(&self) -> Option<(i64, Instant)> {
        self.server_clock
    }

    /// The full URL of an endpoint.
    pub fn url(&self, endpoint: Endpoint) -> String {
        format!("{}{}", self.base, endpoint.path())
    }

    /// POSTs `body` (JSON) to `endpoint` and reads the page into `page`
    /// (cleared first), followed by [`INPUT_PADDING`] zero bytes. Returns
    /// the page length. Waits for the rate limiter; retries as configured.
    pub fn fetch_page(&mut self, endpoint: Endpoint, body: &[u8], page: &mut Vec<u8>) -> Result<usize, ApiError> {
        let url = self.url(endpoint);
        let mut attempts = Attempts::default();
        let mut failed = 0u32;
        loop {
            let header = self.authorization()?;
            self.limiter.acquire();
            let now = Instant::now();
            self.stats.requests += 1;
            self.stats.first_request.get_or_insert(now);
            self.stats.last_request = Some(now);
            let failure = match self.try_fetch(&url, &header, body, page) {
                Ok(len) => return Ok(len),
                Err(failure) => failure,
            };
            if let (Failure::Retry { what, .. }, Some(report)) = (&failure, &mut self.failed_attempt) {
                failed += 1;
                let max = self.backoff.policy.max_attempts;
                report(&format!("POST {url}: attempt {failed} of {max} failed: {what}"));
            }
            match attempts.after(failure, &mut self.backoff) {
                Next::Again => {}
                Next::RefreshToken => {
                    if let Some(tokens) = &mut self.tokens {
                        tokens.invalidate();
                    }
                }
                Next::Stop(err) => return Err(err),
                Next::GaveUp { attempts, last } => return Err(ApiError::GaveUp { url, attempts, last }),
                Next::TokenRefusedTwice => {
                    return Err(ApiError::Unauthorized { status: 401, detail: "even a fresh token".to_owned() });
                }
            }
        }
    }

    fn try_fetch(&mut self, url: &str, header: &str, body: &[u8], page: &mut Vec<u8>) -> Result<usize, Failure> {
        let sent = self
            .agent
            .post(url)
            .header("Authorization", header)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .send(body);
        // The token counts from when the answer (or failure) came back.
        self.limiter.spend(Instant::now());
        let response = sent.map_err(|e| self.classify_transport(url, e))?;
        // A missing or unreadable `Date` leaves the clock as it was.
        if let Some(date) = response.headers().get("date").and_then(|v| v.to_str().ok()).and_then(parse_http_date) {
            self.server_clock = Some((date, Instant::now()));
        }
        let status = response.status().as_u16();
        let retry_after = http::retry_after(response.headers());
        page.clear();
        // An error body is read up to 64 KiB, a page up to the limit.
        let limit = if status == 200 { self.max_page_bytes } else { 64 << 10 };
        let read = http::read_body(response.into_body(), limit, page);
        if status == 200 {
            match read {
                Ok(()) => {}
                Err(http::BodyError::TooLarge { limit }) => {
                    return Err(Failure::Stop(ApiError::PageTooLarge { url: url.to_owned(), limit }));
                }
                Err(http::BodyError::Io(e)) => {
                    self.stats.network_errors += 1;
                    return Err(Failure::Retry { what: format!("reading the page: {e}"), retry_after: None });
                }
            }
            let len = page.len();
            self.stats.pages += 1;
            self.stats.body_bytes += len as u64;
            page.resize(len + INPUT_PADDING, 0);
            return Ok(len);
        }
        let detail = error_detail(page);
        match status {
            429 => {
                self.stats.throttled += 1;
                Err(Failure::Retry { what: format!("429 throttled: {detail}"), retry_after })
            }
            500..=599 => {
                self.stats.server_errors += 1;
                Err(Failure::Retry { what: format!("{status}: {detail}"), retry_after })
            }
            401 if matches!(self.auth, ApiAuth::ClientCredentials(_)) => Err(Failure::StaleToken),
            401 | 403 => Err(Failure::Stop(ApiError::Unauthorized { status, detail })),
            404 => Err(Failure::Stop(ApiError::NotFound { url: url.to_owned() })),
            400 => Err(Failure::Stop(ApiError::BadRequest {
                detail,
                body: String::from_utf8_lossy(body).chars().take(500).collect(),
            })),
            _ => Err(Failure::Stop(ApiError::Unexpected { status, url: url.to_owned(), detail })),
        }
    }

    fn classify_transport(&mut self, url: &str, err: ureq::Error) -> Failure {
        match http::classify_transport(err) {
            TransportFailure::Setup(detail) => Failure::Stop(ApiError::Setup { url: url.to_owned(), detail }),
            TransportFailure::Retry(what) => {
                self.stats.network_errors += 1;
                Failure::Retry { what, retry_after: None }
            }
        }
    }

    /// A new bearer token from the token endpoint (client credentials
    /// only), for another protocol's client (Event Hubs' OAUTHBEARER): the
    /// token and how long it may be used before it must be refreshed.
    pub fn fresh_bearer_token(&mut self) -> Result<(String, Duration), ApiError> {
        let Some(tokens) = &mut self.tokens else {
            return Err(ApiError::Setup {
                url: self.base.clone(),
                detail: "a bearer token needs an Entra ID application (tenant, client id and secret)".to_owned(),
            });
        };
        tokens.invalidate();
        let header = self.authorization()?;
        let token = header.strip_prefix("Bearer ").unwrap_or_default().to_owned();
        let valid_for = self.tokens.as_ref().and_then(TokenCache::refresh_in).unwrap_or_default();
        Ok((token, valid_for))
    }

    /// The `Authorization` header value, fetching or refreshing a bearer
    /// token when needed.
    fn authorization(&mut self) -> Result<String, ApiError> {
        let tokens = match (&self.auth, &mut self.tokens) {
            (ApiAuth::Token(token), _) => return Ok(format!("Token {token}")),
            (ApiAuth::ClientCredentials(_), Some(tokens)) => tokens,
            (ApiAuth::ClientCredentials(_), None) => unreachable!("a token cache is made for client credentials"),
        };
        match tokens.bearer(&self.agent, &mut self.backoff) {
            Ok(token) => Ok(format!("Bearer {token}")),
            Err(TokenError::GaveUp { url, attempts, last }) => Err(ApiError::GaveUp { url, attempts, last }),
            Err(TokenError::Retry { url, what, .. }) => Err(ApiError::GaveUp { url, attempts: 1, last: what }),
            Err(TokenError::Refused { status, detail }) => Err(ApiError::TokenRefused { status, detail }),
            Err(TokenError::BadResponse(text)) => Err(ApiError::BadTokenResponse(text)),
            Err(TokenError::Setup { url, detail }) => Err(ApiError::Setup { url, detail }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_not_printed() {
        let auth = ApiAuth::Token("s3cret".into());
        assert!(!format!("{auth:?}").contains("s3cret"));
    }

    /// A proxy password was echoed in validation errors.
    #[test]
    fn proxy_errors_never_show_the_password() {
        for spec in ["ftp://alice:s3cret@proxy:8080", "alice:s3cret@:8080", "http://alice:s3cret@proxy:port"] {
            let err = proxy_url(spec).unwrap_err().to_string();
            assert!(!err.contains("s3cret") && err.contains("alice:***@"), "{err}");
        }
        assert_eq!(without_password("proxy:8080"), "proxy:8080");
        assert_eq!(proxy_url("alice:s3cret@proxy:8080").unwrap(), "http://alice:s3cret@proxy:8080");
    }

    /// `Retry-After: 99999999999` parked the agent for ever (status still
    /// "Connected"): the wait is capped.
    #[test]
    fn an_absurd_retry_after_is_capped() {
        let config = ApiConfig::new("https://contoso.example", ApiAuth::Token("t".into()));
        let mut client = ApiClient::new(&config).unwrap();
        let delay = client.backoff.delay(1, Some(Duration::from_secs(99_999_999_999)));
        assert!(delay <= MAX_RETRY_AFTER + MAX_RETRY_AFTER / 2, "waits {delay:?}");
        assert!(delay >= MAX_RETRY_AFTER / 2, "waits {delay:?}: Retry-After is still honoured up to the cap");
    }
}
