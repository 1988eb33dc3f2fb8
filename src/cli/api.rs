//! Options of the API client (credentials, proxy, CA, rate limit,
//! retries) for `backfill`, filled into [`ApiSettings`] and validated
//! there into an [`ApiConfig`] (the agent's file fills the same settings).

use super::UsageError;
use crate::api::{ApiConfig, DEFAULT_SCOPE, DEFAULT_TOKEN_URL, RateLimit};
use crate::cef::CefOptions;
use crate::settings::{ApiDefaults, ApiSettings, Source};
use crate::time::HumanDuration;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// How to reach and authenticate to the Defender for Cloud Apps API.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "API access")]
pub struct ApiArgs {
    /// Legacy API token (sent as `Authorization: Token …`). On the command
    /// line it is visible to other users (`ps`): prefer --token-file or
    /// the environment variable.
    #[arg(long, value_name = "TOKEN", env = "CEFWIRE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// A file holding the legacy API token (its first line).
    #[arg(long, value_name = "FILE", conflicts_with = "token")]
    pub token_file: Option<PathBuf>,

    /// Entra ID tenant (directory) id, for the client-credentials flow.
    #[arg(long, value_name = "ID")]
    pub tenant_id: Option<String>,

    /// Entra ID application (client) id.
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,

    /// Entra ID application secret (prefer --client-secret-file or the
    /// environment variable: a command line is visible in `ps`).
    #[arg(long, value_name = "SECRET", env = "CEFWIRE_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,

    /// A file holding the Entra ID application secret (its first line).
    #[arg(long, value_name = "FILE", conflicts_with = "client_secret")]
    pub client_secret_file: Option<PathBuf>,

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

    /// Accept a plain http:// portal or token URL beyond 127.0.0.1/localhost
    /// (the credentials then travel in clear text; a warning says so).
    #[arg(long)]
    pub allow_http: bool,

    /// Requests allowed per window (the service allows 30/min per tenant).
    #[arg(long, value_name = "N/WINDOW", default_value = "30/min")]
    pub rate_limit: RateLimit,

    /// Attempts per request before giving up on 429, 5xx and network errors.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub retries: u32,

    /// First backoff delay after a failure (doubles each time, with jitter, up to 60 s).
    #[arg(long, value_name = "DURATION", default_value = "1s")]
    pub retry_delay: HumanDuration,

    /// Time limit for one request, including reading the page.
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub request_timeout: HumanDuration,
}

/// What the command line uses for settings it has no flag for.
const DEFAULTS: ApiDefaults = ApiDefaults {
    retries: 10,
    retry_delay: Duration::from_secs(1),
    max_retry_delay: Duration::from_secs(60),
    request_timeout: Duration::from_secs(300),
};

impl ApiArgs {
    /// The flags as raw settings, for the tenant at `portal_url` (the
    /// `--portal-url` of the CEF options; their default, the generic
    /// portal, is no tenant's and counts as not given).
    pub fn settings(&self, portal_url: &str) -> ApiSettings {
        let given = portal_url.trim_end_matches('/') != CefOptions::default().portal_url;
        ApiSettings {
            portal_url: given.then(|| portal_url.to_owned()),
            token: self.token.clone(),
            token_file: self.token_file.clone(),
            tenant_id: self.tenant_id.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            client_secret_file: self.client_secret_file.clone(),
            token_url: Some(self.token_url.clone()),
            scope: Some(self.scope.clone()),
            proxy: self.proxy.clone(),
            ca_file: self.api_ca.clone(),
            rate_limit: Some(self.rate_limit),
            allow_http: self.allow_http,
            retries: Some(self.retries),
            retry_delay: Some(self.retry_delay.0),
            request_timeout: Some(self.request_timeout.0),
        }
    }

    /// The validated client config for `portal_url`.
    pub fn to_config(&self, portal_url: &str) -> anyhow::Result<ApiConfig> {
        Ok(self.settings(portal_url).validate(Source::Flags, &DEFAULTS).map_err(UsageError::from)?)
    }
}
