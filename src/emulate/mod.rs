//! `cefwire emulate`: a local stand-in for the Defender for Cloud Apps
//! REST API (the contract in `api-contract.md`) and for the Entra ID
//! token endpoint, so backfill and the agent can be run and tested
//! without a tenant.
//!
//! It owns the in-memory records ([`store`]), list queries ([`query`]), a
//! small HTTP/1.1 server on std threads ([`http`], [`server`]) with
//! optional TLS ([`tls`]), the token check, the requests-per-window
//! throttle (429), injected faults and request counters. The successor
//! sources have their parts too: Microsoft Graph `alerts_v2` ([`graph`])
//! and the Defender XDR streaming archive written into a storage account
//! such as Azurite ([`archive`]). It never touches the CEF mapping or the
//! syslog side.

pub mod archive;
pub mod graph;
pub mod http;
pub mod query;
pub mod server;
pub mod store;
pub mod tls;

pub use server::{EmulatorHandle, start};
pub use store::{DataKind, LoadCounts, RecordStore, StoreBuilder};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How often something goes wrong on purpose.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FaultConfig {
    /// Fraction of API requests answered with a 5xx.
    pub error_5xx: f64,
    /// Fraction of API requests whose connection is dropped (before the
    /// response, or halfway through its body).
    pub drop: f64,
    /// Fraction of API requests answered only after [`Self::slow_delay`].
    pub slow: f64,
    pub slow_delay: Duration,
    /// Fraction of scan pages cut short at a random length.
    pub short_pages: f64,
    /// Fraction of API and Graph requests answered 429 (with
    /// `Retry-After: 1`) although the throttle would admit them.
    pub error_429: f64,
    // Hostile answers (issue 10): each is one way a misbehaving API has
    // made the agent or backfill skip, loop or leak.
    /// What the `Date` header of every answer says.
    pub date: DateFault,
    /// `Retry-After` (seconds) on every 429 of the API (throttled or
    /// injected) and every injected 429 of Graph, instead of the usual value.
    pub retry_after_secs: Option<u64>,
    /// Scan pages never advance: after the first page, `nextQueryFilters`
    /// repeats the request's own cursor (and `hasNext` stays true).
    pub stuck_scan: bool,
    /// `hasNext` is written as a string (`"true"`).
    pub has_next_as_string: bool,
    /// Every page carries this many extra bytes (a `"padding"` member).
    pub page_padding_bytes: usize,
    /// Every 200 answer announces a huge body and sends bytes until the
    /// client hangs up.
    pub endless_body: bool,
    /// Graph's `@odata.nextLink` points to this address instead of the
    /// emulator (a misrouted or hostile answer).
    pub graph_next_link_to: Option<SocketAddr>,
}

/// The `Date` header of the emulator's answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DateFault {
    /// The local clock.
    #[default]
    Real,
    /// The local clock shifted by this many milliseconds.
    OffsetMs(i64),
    /// A fixed text (`Thu, 01 Jan 1970 00:00:00 GMT`, or garbage).
    Fixed(&'static str),
}

impl DateFault {
    /// The header value now.
    pub fn value(self) -> String {
        match self {
            DateFault::Real => crate::time::format_http_date(crate::time::now_ms()),
            DateFault::OffsetMs(offset) => crate::time::format_http_date(crate::time::now_ms() + offset),
            DateFault::Fixed(text) => text.to_owned(),
        }
    }
}

/// At most `requests` accepted API requests in any window of `per` (the
/// same type the client's limiter uses).
pub use crate::api::RateLimit;

/// Who may call the emulated API.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EmulatorAuth {
    /// Accepted legacy API token (`Authorization: Token …`).
    pub api_token: Option<String>,
    /// Accepted Entra ID app (`client_id`, `client_secret`): tokens from the
    /// token endpoint are accepted as `Authorization: Bearer …`.
    pub client: Option<(String, String)>,
    /// Lifetime of issued bearer tokens.
    pub token_lifetime: Duration,
}

/// Graph's documented limit for `alerts_v2`: 150 requests per minute per
/// app and tenant.
pub const GRAPH_RATE_LIMIT: RateLimit = RateLimit { requests: 150, per: Duration::from_secs(60) };

/// Validated settings of a running emulator.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    pub listen: SocketAddr,
    /// Serve HTTPS with a self-signed certificate, written here (PEM).
    pub tls_cert_out: Option<PathBuf>,
    pub tls: bool,
    pub auth: EmulatorAuth,
    /// `None`: no throttle.
    pub rate_limit: Option<RateLimit>,
    /// Graph's throttle (150 per minute); `None`: none.
    pub graph_rate_limit: Option<RateLimit>,
    pub faults: FaultConfig,
    /// Seed of the fault dice.
    pub seed: u64,
    /// A scan page stops growing at this many bytes.
    pub max_page_bytes: usize,
    /// Most connections served at once; more are closed at once.
    pub max_connections: usize,
}

impl EmulatorConfig {
    /// Plain HTTP on `listen`, token `token`, the service's rate limit, no faults.
    pub fn new(listen: SocketAddr, token: &str) -> Self {
        Self {
            listen,
            tls_cert_out: None,
            tls: false,
            auth: EmulatorAuth {
                api_token: Some(token.to_owned()),
                client: None,
                token_lifetime: Duration::from_secs(3600),
            },
            rate_limit: Some(RateLimit::SERVICE),
            graph_rate_limit: Some(GRAPH_RATE_LIMIT),
            faults: FaultConfig::default(),
            seed: 1,
            max_page_bytes: 64 << 20,
            max_connections: 256,
        }
    }
}

/// What the emulator has seen, for the exit summary, `GET /stats` and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EmulatorStats {
    /// Every request read, whatever the path.
    pub requests: u64,
    /// List requests to `/api/v1/activities/` and `/api/v1/alerts/`.
    pub api_requests: u64,
    /// API requests answered 200 with a page.
    pub pages: u64,
    pub records_served: u64,
    /// 429 answers.
    pub throttled: u64,
    /// 401 and 403 answers.
    pub unauthorized: u64,
    /// 400 answers.
    pub bad_requests: u64,
    #[serde(rename = "injected5xx")]
    pub injected_5xx: u64,
    pub injected_drops: u64,
    pub injected_slow: u64,
    pub injected_short_pages: u64,
    /// Tokens issued by the token endpoint.
    pub tokens_issued: u64,
    pub connections: u64,
    /// Graph `alerts_v2` requests (every one, whatever the answer).
    pub graph_requests: u64,
    /// Graph pages answered 200, and the alerts on them.
    pub graph_pages: u64,
    pub graph_alerts_served: u64,
    /// 429s of Graph's throttle (not injected ones).
    pub graph_throttled: u64,
    /// Injected 429s (API and Graph).
    #[serde(rename = "injected429")]
    pub injected_429: u64,
    /// The most Graph requests that arrived within one throttle window.
    pub graph_most_per_window: u64,
    /// Streaming archive: `CloudAppEvents` records written so far, appends,
    /// and whether it is complete.
    pub archive_records: u64,
    pub archive_appends: u64,
    pub archive_done: bool,
}

impl EmulatorStats {
    /// Compact JSON, as served on `GET /stats`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("stats serialise")
    }

    /// A human summary for stderr.
    pub fn summary(&self) -> String {
        format!(
            "{} requests ({} API, {} pages, {} records served); {} throttled (429), {} unauthorized, {} bad; \
injected: {} 5xx, {} 429, {} dropped, {} slow, {} short pages; {} tokens issued; {} connections; \
graph: {} requests, {} pages, {} alerts served, {} throttled, at most {} requests in one window",
            self.requests,
            self.api_requests,
            self.pages,
            self.records_served,
            self.throttled,
            self.unauthorized,
            self.bad_requests,
            self.injected_5xx,
            self.injected_429,
            self.injected_drops,
            self.injected_slow,
            self.injected_short_pages,
            self.tokens_issued,
            self.connections,
            self.graph_requests,
            self.graph_pages,
            self.graph_alerts_served,
            self.graph_throttled,
            self.graph_most_per_window
        )
    }
}
