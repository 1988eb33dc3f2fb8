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
use crate::generate::Rng;
use crate::json::{INPUT_PADDING, JsonParser};
use crate::time::parse_http_date;
use std::io::Read;
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

/// An Entra ID application's credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    /// Full token URL (the tenant already filled in).
    pub token_url: String,
    pub scope: String,
}

/// How failed requests are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first failure; doubles after each further one.
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// Attempts per request before giving up (`u32::MAX`: never give up).
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { first_delay: Duration::from_secs(1), max_delay: Duration::from_secs(60), max_attempts: 10 }
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
}

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
        }
    }
}

/// Checks an HTTP CONNECT proxy given as `host[:port]`,
/// `user:password@host:port` or `http://…`, and returns it as a URL.
pub fn proxy_url(spec: &str) -> Result<String, String> {
    let (scheme, rest) = spec.split_once("://").unwrap_or(("http", spec));
    if scheme != "http" && scheme != "https" {
        return Err(format!("{spec:?}: only HTTP CONNECT proxies are supported (http://host:port)"));
    }
    let host = rest.rsplit('@').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Err(format!("{spec:?} has no host"));
    }
    if let Some((_, port)) = host.rsplit_once(':')
        && !host.ends_with(']')
        && port.parse::<u16>().is_err()
    {
        return Err(format!("{spec:?}: port {port:?} is not a number"));
    }
    Ok(format!("{scheme}://{rest}"))
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

struct BearerToken {
    value: String,
    refresh_at: Instant,
}

/// One failed attempt, classified.
enum Failure {
    /// Try again after a delay (the service's `Retry-After` if any).
    Retry {
        what: String,
        retry_after: Option<Duration>,
    },
    /// A 401 with a bearer token: refresh it and try again once.
    StaleToken,
    Stop(ApiError),
}

/// A blocking client for the list API.
pub struct ApiClient {
    agent: ureq::Agent,
    base: String,
    auth: ApiAuth,
    bearer: Option<BearerToken>,
    limiter: RequestLimiter,
    retry: RetryPolicy,
    stats: ClientStats,
    jitter: Rng,
    parser: JsonParser,
    /// The server's clock (its `Date` header) at the last answer, and when
    /// that answer arrived.
    server_clock: Option<(i64, Instant)>,
}

impl ApiClient {
    /// Builds the client (reads the CA file); no network traffic yet.
    pub fn new(config: &ApiConfig) -> Result<ApiClient, ApiError> {
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(path) = &config.ca_file {
            let ca_error = |detail: String| ApiError::CaFile { path: path.display().to_string(), detail };
            let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
            let mut certs = Vec::new();
            for item in ureq::tls::parse_pem(&pem) {
                if let ureq::tls::PemItem::Certificate(cert) = item.map_err(|e| ca_error(e.to_string()))? {
                    certs.push(cert);
                }
            }
            if certs.is_empty() {
                return Err(ca_error("no PEM certificate in it".to_owned()));
            }
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
        }
        let proxy = match &config.proxy {
            Some(spec) => Some(
                ureq::Proxy::new(spec)
                    .map_err(|e| ApiError::Setup { url: spec.clone(), detail: format!("bad --proxy: {e}") })?,
            ),
            None => None,
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls.build())
            // Only the configured proxy: the environment's is not used silently.
            .proxy(proxy)
            .timeout_global(Some(config.request_timeout))
            .timeout_connect(Some(Duration::from_secs(30)))
            .user_agent(concat!("cefwire/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        // Jitter only needs to differ between processes.
        let clock = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let seed = clock.as_nanos() as u64 ^ u64::from(std::process::id());
        Ok(ApiClient {
            agent,
            base: config.portal_url.trim_end_matches('/').to_owned(),
            auth: config.auth.clone(),
            bearer: None,
            limiter: RequestLimiter::new(config.rate_limit),
            retry: config.retry,
            stats: ClientStats::default(),
            jitter: Rng::new(seed ^ 0xA5A5),
            parser: JsonParser::new(),
            server_clock: None,
        })
    }

    pub fn stats(&self) -> ClientStats {
        let mut stats = self.stats;
        stats.limiter_wait = self.limiter.waited;
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
        let mut attempt = 0u32;
        let mut refreshed = false;
        loop {
            attempt += 1;
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
            let (what, retry_after) = match failure {
                Failure::Stop(err) => return Err(err),
                Failure::StaleToken if !refreshed => {
                    refreshed = true;
                    self.bearer = None;
                    attempt -= 1;
                    continue;
                }
                Failure::StaleToken => {
                    return Err(ApiError::Unauthorized { status: 401, detail: "even a fresh token".to_owned() });
                }
                Failure::Retry { what, retry_after } => (what, retry_after),
            };
            if attempt >= self.retry.max_attempts {
                return Err(ApiError::GaveUp { url, attempts: attempt, last: what });
            }
            self.back_off(attempt, retry_after);
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
        if let Some(date) = response.headers().get("date").and_then(|v| v.to_str().ok()).and_then(parse_http_date) {
            self.server_clock = Some((date, Instant::now()));
        }
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        page.clear();
        let read = response.into_body().into_reader().read_to_end(page);
        if status == 200 {
            if let Err(e) = read {
                self.stats.network_errors += 1;
                return Err(Failure::Retry { what: format!("reading the page: {e}"), retry_after: None });
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
        let setup = |detail: String| Failure::Stop(ApiError::Setup { url: url.to_owned(), detail });
        match err {
            ureq::Error::Tls(_)
            | ureq::Error::Rustls(_)
            | ureq::Error::Pem(_)
            | ureq::Error::BadUri(_)
            | ureq::Error::InvalidProxyUrl
            | ureq::Error::TlsRequired
            | ureq::Error::RequireHttpsOnly(_) => setup(err.to_string()),
            ureq::Error::Io(io) if io.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) => {
                setup(io.to_string())
            }
            other => {
                self.stats.network_errors += 1;
                Failure::Retry { what: other.to_string(), retry_after: None }
            }
        }
    }

    /// Sleeps before attempt `attempt + 1`: the service's `Retry-After`, or
    /// exponential backoff with jitter (half fixed, half random).
    fn back_off(&mut self, attempt: u32, retry_after: Option<Duration>) {
        let exponential =
            self.retry.first_delay.saturating_mul(1u32 << (attempt - 1).min(20)).min(self.retry.max_delay);
        let base = retry_after.unwrap_or(exponential);
        let spread = base.as_millis() as u64 / 2;
        let delay = Duration::from_millis(spread + self.jitter.below(spread.max(1) + 1));
        self.stats.backoff_wait += delay;
        std::thread::sleep(delay);
    }

    /// The `Authorization` header value, fetching or refreshing a bearer
    /// token when needed.
    fn authorization(&mut self) -> Result<String, ApiError> {
        let creds = match &self.auth {
            ApiAuth::Token(token) => return Ok(format!("Token {token}")),
            ApiAuth::ClientCredentials(creds) => creds.clone(),
        };
        if let Some(token) = &self.bearer
            && Instant::now() < token.refresh_at
        {
            return Ok(format!("Bearer {}", token.value));
        }
        let mut attempt = 0;
        let token = loop {
            attempt += 1;
            match self.fetch_token(&creds) {
                Ok(token) => break token,
                Err(Failure::Retry { what, retry_after }) => {
                    if attempt >= self.retry.max_attempts {
                        return Err(ApiError::GaveUp { url: creds.token_url.clone(), attempts: attempt, last: what });
                    }
                    self.back_off(attempt, retry_after);
                }
                Err(Failure::Stop(err)) => return Err(err),
                Err(Failure::StaleToken) => unreachable!("the token endpoint takes no token"),
            }
        };
        let header = format!("Bearer {}", token.value);
        self.bearer = Some(token);
        Ok(header)
    }

    fn fetch_token(&mut self, creds: &ClientCredentials) -> Result<BearerToken, Failure> {
        let sent = self.agent.post(&creds.token_url).send_form([
            ("grant_type", "client_credentials"),
            ("client_id", creds.client_id.as_str()),
            ("client_secret", creds.client_secret.as_str()),
            ("scope", creds.scope.as_str()),
        ]);
        let response = sent.map_err(|e| self.classify_transport(&creds.token_url, e))?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        if let Err(e) = response.into_body().into_reader().take(1 << 20).read_to_end(&mut body) {
            return Err(Failure::Retry { what: format!("reading the token: {e}"), retry_after: None });
        }
        match status {
            200 => {}
            429 | 500..=599 => {
                return Err(Failure::Retry { what: format!("token endpoint {status}"), retry_after: None });
            }
            _ => {
                let detail = error_detail(&body);
                return Err(Failure::Stop(ApiError::TokenRefused { status, detail }));
            }
        }
        let len = body.len();
        body.resize(len + INPUT_PADDING, 0);
        let parsed = self.parser.parse(&mut body, len, |root| {
            let token = root.get("access_token").and_then(|v| v.as_str()).map(str::to_owned);
            let expires_in = root.get("expires_in").and_then(|v| v.as_i64_lenient()).unwrap_or(3600).max(1);
            (token, expires_in)
        });
        let Ok((Some(value), expires_in)) = parsed else {
            let text = String::from_utf8_lossy(&body[..len]).chars().take(200).collect();
            return Err(Failure::Stop(ApiError::BadTokenResponse(text)));
        };
        self.stats.tokens_fetched += 1;
        // Refresh with 5 minutes to spare, or after 80 % of a short lifetime.
        let lifetime = Duration::from_secs(expires_in as u64);
        let spare = Duration::from_secs(300).min(lifetime / 5);
        Ok(BearerToken { value, refresh_at: Instant::now() + lifetime - spare })
    }
}

/// The service's explanation in an error body (`detail`, `error_description`,
/// `error`), or the start of the body.
fn error_detail(body: &[u8]) -> String {
    let mut buf = body.to_vec();
    let len = buf.len();
    buf.resize(len + INPUT_PADDING, 0);
    let found = JsonParser::new()
        .parse(&mut buf, len, |root| {
            ["detail", "error_description", "error", "message"]
                .iter()
                .find_map(|key| root.get(key).and_then(|v| v.as_str()).map(str::to_owned))
        })
        .ok()
        .flatten();
    found.unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_details_come_from_known_keys() {
        assert_eq!(error_detail(br#"{"detail":"Invalid token."}"#), "Invalid token.");
        assert_eq!(error_detail(br#"{"error":"invalid_client","error_description":"bad secret"}"#), "bad secret");
        assert_eq!(error_detail(b"<html>oops</html>"), "<html>oops</html>");
    }

    #[test]
    fn credentials_are_not_printed() {
        let auth = ApiAuth::Token("s3cret".into());
        assert!(!format!("{auth:?}").contains("s3cret"));
    }
}
