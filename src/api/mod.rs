//! The Defender for Cloud Apps REST API, client side (see
//! `api-contract.md`): a blocking, rate-limited, retrying HTTP client
//! ([`client`]), the limiter that keeps it under 30 requests per minute
//! ([`limiter`]), and the pagers that walk a time window with the largest
//! pages allowed, built in one place ([`paging::WindowQuery`]).
//!
//! Nothing here runs threads, converts or sends records: pages come back
//! as padded byte buffers. [`crate::pages::PageSource`] runs the client on
//! its fetch thread for `backfill` and the agent.

pub mod client;
pub mod limiter;
pub mod paging;
pub mod rate_ledger;

pub use client::{
    ApiAuth, ApiClient, ApiConfig, ApiError, ClientCredentials, ClientStats, DEFAULT_SCOPE, DEFAULT_TOKEN_URL,
    Endpoint, ProxyError, RetryPolicy, proxy_url,
};
pub use limiter::{RateLimit, RequestLimiter};
pub use paging::{
    ActivityScan, OffsetPager, OneRequest, PageInfo, Pager, PagingError, TimeKey, TimeWindow, WindowQuery,
};
pub use rate_ledger::RateLedger;
