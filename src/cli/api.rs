//! Options of the API client (credentials, proxy, CA, rate limit,
//! retries), shared by `backfill` and the agent, and their conversion into
//! a validated [`ApiConfig`].

use super::usage;
use crate::api::{ApiAuth, ApiConfig, ClientCredentials, DEFAULT_SCOPE, DEFAULT_TOKEN_URL, RateLimit, RetryPolicy};
use crate::time::parse_duration_ms;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// The portal URL `CefArgs` defaults to; the API needs the tenant's own.
pub const PLACEHOLDER_PORTAL_URL: &str = "https://portal.cloudappsecurity.com";

/// How to reach and authenticate to the Defender for Cloud Apps API.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "API access")]
pub struct ApiArgs {
    /// Legacy API token (sent as `Authorization: Token …`).
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,

    /// Entra ID tenant (directory) id, for the client-credentials flow.
    #[arg(long, value_name = "ID")]
    pub tenant_id: Option<String>,

    /// Entra ID application (client) id.
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,

    /// Entra ID application secret.
    #[arg(long, value_name = "SECRET")]
    pub client_secret: Option<String>,

    /// Token endpoint for the client-credentials flow (`{tenant}` is replaced).
    #[arg(long, value_name = "URL", default_value = DEFAULT_TOKEN_URL)]
    pub token_url: String,

    /// Scope requested with the client credentials.
    #[arg(long, value_name = "SCOPE", default_value = DEFAULT_SCOPE)]
    pub scope: String,

    /// HTTP CONNECT proxy for the API: host[:port], optionally user:password@host:port.
    #[arg(long, value_name = "PROXY")]
    pub proxy: Option<String>,

    /// Trust the CA certificate(s) in this PEM file for the API instead of
    /// the built-in roots (a private or TLS-inspecting proxy's CA).
    #[arg(long, value_name = "FILE")]
    pub api_ca: Option<PathBuf>,

    /// Requests allowed per window (the service allows 30/min per tenant).
    #[arg(long, value_name = "N/WINDOW", default_value = "30/min")]
    pub rate_limit: String,

    /// Attempts per request before giving up on 429, 5xx and network errors.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub retries: u32,

    /// First backoff delay after a failure (doubles each time, with jitter, up to 60 s).
    #[arg(long, value_name = "DURATION", default_value = "1s")]
    pub retry_delay: String,

    /// Time limit for one request, including reading the page.
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub request_timeout: String,
}

fn duration(value: &str, flag: &str) -> anyhow::Result<Duration> {
    match parse_duration_ms(value) {
        Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms as u64)),
        Ok(_) => usage!("{flag} {value:?} must be longer than zero"),
        Err(e) => usage!("{flag}: {e}"),
    }
}

impl ApiArgs {
    /// The validated client config for `portal_url` (checked here too).
    pub fn to_config(&self, portal_url: &str) -> anyhow::Result<ApiConfig> {
        let portal_url = portal_url.trim_end_matches('/');
        if portal_url == PLACEHOLDER_PORTAL_URL {
            usage!(
                "--portal-url is required for the API: your tenant's portal URL, e.g. https://contoso.us3.portal.cloudappsecurity.com"
            );
        }
        let auth = match (&self.token, &self.tenant_id, &self.client_id, &self.client_secret) {
            (Some(_), Some(_), ..) | (Some(_), _, Some(_), _) | (Some(_), _, _, Some(_)) => {
                usage!("give either --token or --tenant-id/--client-id/--client-secret, not both")
            }
            (Some(token), None, None, None) if token.trim().is_empty() => usage!("--token is empty"),
            (Some(token), None, None, None) => ApiAuth::Token(token.trim().to_owned()),
            (None, Some(tenant), Some(client), Some(secret)) => {
                if !self.token_url.starts_with("https://") && !self.token_url.starts_with("http://") {
                    usage!("--token-url {:?} must start with https://", self.token_url);
                }
                ApiAuth::ClientCredentials(ClientCredentials {
                    tenant_id: tenant.clone(),
                    client_id: client.clone(),
                    client_secret: secret.clone(),
                    token_url: self.token_url.replace("{tenant}", tenant),
                    scope: self.scope.clone(),
                })
            }
            (None, None, None, None) => {
                usage!("the API needs credentials: --token, or --tenant-id, --client-id and --client-secret")
            }
            _ => usage!("the client-credentials flow needs all of --tenant-id, --client-id and --client-secret"),
        };
        let proxy = match &self.proxy {
            None => None,
            Some(spec) => Some(crate::api::proxy_url(spec).map_err(|e| super::UsageError(format!("--proxy {e}")))?),
        };
        if let Some(ca) = &self.api_ca
            && !ca.is_file()
        {
            usage!("--api-ca {}: no such file", ca.display());
        }
        let rate_limit =
            RateLimit::parse(&self.rate_limit).map_err(|e| super::UsageError(format!("--rate-limit {e}")))?;
        if self.retries == 0 {
            usage!("--retries must be at least 1");
        }
        Ok(ApiConfig {
            portal_url: portal_url.to_owned(),
            auth,
            proxy,
            ca_file: self.api_ca.clone(),
            rate_limit,
            retry: RetryPolicy {
                first_delay: duration(&self.retry_delay, "--retry-delay")?,
                max_delay: Duration::from_secs(60),
                max_attempts: self.retries,
            },
            request_timeout: duration(&self.request_timeout, "--request-timeout")?,
        })
    }
}
