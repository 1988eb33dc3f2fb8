//! Blocking HTTP plumbing shared by every client cefwire has (the Defender
//! for Cloud Apps API, Microsoft Graph, Azure Blob storage, the Entra ID
//! token endpoint): building a ureq agent (rustls roots, built-in or from a
//! CA file; an optional HTTP CONNECT proxy; timeouts), reading response
//! bodies into caller-owned buffers with a size bound, telling retryable
//! transport failures from setup mistakes, `Retry-After`, and backoff with
//! jitter.
//!
//! It knows no service: no URLs, no auth schemes, no JSON beyond the error
//! text of a failed answer.

use crate::json::{INPUT_PADDING, JsonParser};
use crate::rng::Rng;
use crate::stop::Stop;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest wait for a connection, TLS handshake included.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How a client's agent connects.
#[derive(Clone, Debug, Default)]
pub struct AgentSettings {
    /// `http://[user:pass@]host:port` of an HTTP CONNECT proxy.
    pub proxy: Option<String>,
    /// PEM file of trusted CA certificates (replaces the built-in roots).
    pub ca_file: Option<PathBuf>,
    /// Time limit for one whole request (connect, send, read the answer).
    pub request_timeout: Option<Duration>,
}

/// Why an agent could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("reading the CA file {path}: {detail}")]
    CaFile { path: String, detail: String },
    #[error("bad proxy {spec}: {detail}")]
    Proxy { spec: String, detail: String },
}

fn ca_roots(path: &Path) -> Result<ureq::tls::RootCerts, SetupError> {
    let ca_error = |detail: String| SetupError::CaFile { path: path.display().to_string(), detail };
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
    Ok(ureq::tls::RootCerts::new_with_certs(&certs))
}

/// A ureq agent that reports every status as a response (the caller
/// classifies them) and uses only the configured proxy, never the
/// environment's.
pub fn agent(settings: &AgentSettings) -> Result<ureq::Agent, SetupError> {
    let mut tls = ureq::tls::TlsConfig::builder();
    if let Some(path) = &settings.ca_file {
        tls = tls.root_certs(ca_roots(path)?);
    }
    let proxy = match &settings.proxy {
        Some(spec) => {
            Some(ureq::Proxy::new(spec).map_err(|e| SetupError::Proxy { spec: spec.clone(), detail: e.to_string() })?)
        }
        None => None,
    };
    Ok(ureq::Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(tls.build())
        .proxy(proxy)
        .timeout_global(settings.request_timeout)
        // Covers the TLS handshake too (ureq >= 3.4.1): a server that does
        // not speak TLS is found out in seconds, not minutes.
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .user_agent(concat!("cefwire/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent())
}

/// A failed request that never got an answer.
pub enum TransportFailure {
    /// TLS, certificate, URL or proxy set up wrong: retrying will not help.
    Setup(String),
    /// Connection refused, reset, timed out…: worth another try.
    Retry(String),
}

/// Sorts a transport error into [`TransportFailure`].
pub fn classify_transport(err: ureq::Error) -> TransportFailure {
    match err {
        ureq::Error::Tls(_)
        | ureq::Error::Rustls(_)
        | ureq::Error::Pem(_)
        | ureq::Error::BadUri(_)
        | ureq::Error::InvalidProxyUrl
        | ureq::Error::TlsRequired
        | ureq::Error::RequireHttpsOnly(_) => TransportFailure::Setup(err.to_string()),
        ureq::Error::Io(io) if io.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) => {
            TransportFailure::Setup(io.to_string())
        }
        ureq::Error::Timeout(ureq::Timeout::Connect) => TransportFailure::Retry(format!(
            "no connection within {} s, TLS handshake included (an https:// URL on a server that does not speak \
             TLS ends so)",
            CONNECT_TIMEOUT.as_secs()
        )),
        other => TransportFailure::Retry(other.to_string()),
    }
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the answer is larger than the {limit} bytes allowed")]
    TooLarge { limit: u64 },
    #[error("reading the answer: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads a response body into `out` (cleared first), refusing bodies over
/// `limit` bytes: a broken or hostile server cannot make cefwire allocate
/// without bound.
pub fn read_body(body: ureq::Body, limit: u64, out: &mut Vec<u8>) -> Result<(), BodyError> {
    out.clear();
    body.into_reader().take(limit.saturating_add(1)).read_to_end(out)?;
    if out.len() as u64 > limit {
        out.clear();
        return Err(BodyError::TooLarge { limit });
    }
    Ok(())
}

/// Like [`read_body`], followed by [`INPUT_PADDING`] zero bytes for the
/// JSON parser; returns the body length.
pub fn read_padded_body(body: ureq::Body, limit: u64, out: &mut Vec<u8>) -> Result<usize, BodyError> {
    read_body(body, limit, out)?;
    let len = out.len();
    out.resize(len + INPUT_PADDING, 0);
    Ok(len)
}

/// `Retry-After` in seconds (the form the services use).
pub fn retry_after(headers: &ureq::http::HeaderMap) -> Option<Duration> {
    let value = headers.get("retry-after")?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The service's explanation in an error body (`detail`, `error_description`,
/// `error`, `message`, Graph's `error.message`), or the start of the body.
pub fn error_detail(body: &[u8]) -> String {
    let mut buf = body.to_vec();
    let len = buf.len();
    buf.resize(len + INPUT_PADDING, 0);
    let found = JsonParser::new()
        .parse(&mut buf, len, |root| {
            let text =
                |v: crate::json::JsonValue<'_, '_>, key: &str| v.get(key).and_then(|v| v.as_str()).map(str::to_owned);
            ["detail", "error_description", "error", "message"]
                .iter()
                .find_map(|key| text(root, key))
                .or_else(|| root.get("error").and_then(|e| text(e, "message")))
        })
        .ok()
        .flatten();
    found.unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect())
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

/// Waits between attempts: the service's `Retry-After` (capped when a cap
/// is set, so a confused server cannot park the client for a day), or
/// exponential backoff; half fixed, half random, so that many clients do
/// not retry in step.
pub struct Backoff {
    pub policy: RetryPolicy,
    /// Longest `Retry-After` honoured.
    pub retry_after_cap: Option<Duration>,
    jitter: Rng,
    /// Total time spent backing off.
    pub waited: Duration,
    /// When set, a wait ends as soon as a stop is requested.
    pub stop: Option<Stop>,
}

impl Backoff {
    pub fn new(policy: RetryPolicy) -> Self {
        // Jitter only needs to differ between processes.
        let clock = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let seed = clock.as_nanos() as u64 ^ u64::from(std::process::id());
        Self { policy, retry_after_cap: None, jitter: Rng::new(seed ^ 0xA5A5), waited: Duration::ZERO, stop: None }
    }

    /// The delay before attempt `attempt + 1` (`attempt` ≥ 1).
    pub fn delay(&mut self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exponential =
            self.policy.first_delay.saturating_mul(1u32 << (attempt.max(1) - 1).min(20)).min(self.policy.max_delay);
        let cap = self.retry_after_cap.unwrap_or(Duration::MAX);
        let base = retry_after.map_or(exponential, |r| r.min(cap));
        let spread = base.as_millis() as u64 / 2;
        Duration::from_millis(spread + self.jitter.below(spread.max(1) + 1))
    }

    /// Sleeps before attempt `attempt + 1` (less when a stop comes).
    pub fn wait(&mut self, attempt: u32, retry_after: Option<Duration>) {
        let delay = self.delay(attempt, retry_after);
        let started = std::time::Instant::now();
        match &self.stop {
            Some(stop) => {
                stop.wait_timeout(delay);
            }
            None => std::thread::sleep(delay),
        }
        self.waited += started.elapsed();
    }

    /// Whether a stop was requested (no more attempts then).
    pub fn stopping(&self) -> bool {
        self.stop.as_ref().is_some_and(Stop::is_requested)
    }
}

/// One failed attempt, as a client classifies it.
pub enum Failure<E> {
    /// Worth another try, after the service's `Retry-After` if it gave one.
    Retry { what: String, retry_after: Option<Duration> },
    /// The bearer token was refused: fetch a fresh one and try again, once.
    StaleToken,
    /// More attempts will not help.
    Stop(E),
}

/// What to do after a failed attempt.
pub enum Next<E> {
    /// Try again (the backoff has been waited).
    Again,
    /// Forget the token, then try again.
    RefreshToken,
    Stop(E),
    /// The policy's attempts are used up; the last failure.
    GaveUp {
        attempts: u32,
        last: String,
    },
    /// A fresh token was refused too.
    TokenRefusedTwice,
}

/// The attempts of one request: counts them, allows one token refresh,
/// and waits between them — the same rules for every client.
#[derive(Default)]
pub struct Attempts {
    count: u32,
    refreshed: bool,
}

impl Attempts {
    /// Decides what follows `failure`; waits with `backoff` when the answer
    /// is [`Next::Again`].
    pub fn after<E>(&mut self, failure: Failure<E>, backoff: &mut Backoff) -> Next<E> {
        match failure {
            Failure::Stop(err) => Next::Stop(err),
            Failure::StaleToken if !self.refreshed => {
                self.refreshed = true;
                Next::RefreshToken
            }
            Failure::StaleToken => Next::TokenRefusedTwice,
            Failure::Retry { what, retry_after } => {
                self.count += 1;
                if self.count >= backoff.policy.max_attempts {
                    return Next::GaveUp { attempts: self.count, last: what };
                }
                backoff.wait(self.count, retry_after);
                Next::Again
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_details_come_from_known_keys() {
        assert_eq!(error_detail(br#"{"detail":"Invalid token."}"#), "Invalid token.");
        assert_eq!(error_detail(br#"{"error":"invalid_client","error_description":"bad secret"}"#), "bad secret");
        assert_eq!(error_detail(br#"{"error":{"code":"TooManyRequests","message":"slow down"}}"#), "slow down");
        assert_eq!(error_detail(b"<html>oops</html>"), "<html>oops</html>");
    }

    #[test]
    fn backoff_honours_retry_after_up_to_the_cap() {
        let policy =
            RetryPolicy { first_delay: Duration::from_secs(1), max_delay: Duration::from_secs(30), max_attempts: 5 };
        let mut backoff = Backoff::new(policy);
        assert!(backoff.delay(1, Some(Duration::from_secs(3600))) >= Duration::from_secs(1800), "no cap by default");
        backoff.retry_after_cap = Some(Duration::from_secs(30));
        for _ in 0..100 {
            let d = backoff.delay(1, Some(Duration::from_secs(10)));
            assert!(d >= Duration::from_secs(5) && d <= Duration::from_secs(10), "{d:?}");
            let d = backoff.delay(1, Some(Duration::from_secs(3600)));
            assert!(d >= Duration::from_secs(15) && d <= Duration::from_secs(30), "capped: {d:?}");
            let d = backoff.delay(3, None);
            assert!(d >= Duration::from_secs(2) && d <= Duration::from_secs(4), "{d:?}");
        }
    }
}
