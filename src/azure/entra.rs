//! Entra ID (Azure AD) application tokens by the client-credentials flow,
//! for every API cefwire calls with a bearer token (Defender for Cloud Apps,
//! Microsoft Graph, Azure Storage).
//!
//! [`TokenCache`] keeps one token and fetches a new one before the old one
//! expires (5 minutes early, or after 80 % of a short lifetime), retrying
//! the token endpoint's 429/5xx and network errors with the caller's
//! [`Backoff`]. It never logs or formats the secret or the token.

use crate::http::{self, Backoff, TransportFailure};
use crate::json::JsonParser;
use std::time::{Duration, Instant};

/// Largest token response read.
const MAX_TOKEN_RESPONSE: u64 = 1 << 20;

/// An Entra ID application's credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    /// Full token URL (the tenant already filled in).
    pub token_url: String,
    /// What the token is for, e.g. `https://graph.microsoft.com/.default`.
    pub scope: String,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("token_url", &self.token_url)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Worth another try (429, 5xx, network).
    #[error("token endpoint {url}: {what}")]
    Retry { url: String, what: String, retry_after: Option<Duration> },
    #[error("giving up on the token endpoint {url} after {attempts} attempts; last error: {last}")]
    GaveUp { url: String, attempts: u32, last: String },
    #[error(
        "the token endpoint refused the client credentials ({status} {detail}): check the tenant id, client id and client secret"
    )]
    Refused { status: u16, detail: String },
    #[error("the token endpoint's answer is not a token: {0}")]
    BadResponse(String),
    #[error("TLS or proxy setup failed for the token endpoint {url}: {detail}")]
    Setup { url: String, detail: String },
}

/// One application token, refreshed before it expires.
pub struct TokenCache {
    credentials: ClientCredentials,
    token: Option<(String, Instant)>,
    /// Tokens fetched so far.
    pub fetched: u64,
    parser: JsonParser,
    body: Vec<u8>,
}

impl TokenCache {
    pub fn new(credentials: ClientCredentials) -> Self {
        Self { credentials, token: None, fetched: 0, parser: JsonParser::new(), body: Vec::new() }
    }

    pub fn credentials(&self) -> &ClientCredentials {
        &self.credentials
    }

    /// How long the token held may still be used before it is refreshed.
    pub fn refresh_in(&self) -> Option<Duration> {
        self.token.as_ref().map(|(_, refresh_at)| refresh_at.saturating_duration_since(Instant::now()))
    }

    /// Forgets the token (the API said it is no longer good).
    pub fn invalidate(&mut self) {
        self.token = None;
    }

    /// A token that is not due for refresh, fetching one when needed;
    /// retries with `backoff` up to its policy's attempts.
    pub fn bearer(&mut self, agent: &ureq::Agent, backoff: &mut Backoff) -> Result<&str, TokenError> {
        let fresh = self.token.as_ref().is_some_and(|(_, refresh_at)| Instant::now() < *refresh_at);
        if !fresh {
            let mut attempt = 0;
            loop {
                attempt += 1;
                match self.fetch(agent) {
                    Ok(()) => break,
                    Err(TokenError::Retry { url, what, retry_after }) => {
                        if attempt >= backoff.policy.max_attempts || backoff.stopping() {
                            return Err(TokenError::GaveUp { url, attempts: attempt, last: what });
                        }
                        backoff.wait(attempt, retry_after);
                        if backoff.stopping() {
                            return Err(TokenError::GaveUp { url, attempts: attempt, last: "stopped".into() });
                        }
                    }
                    Err(other) => return Err(other),
                }
            }
        }
        Ok(self.token.as_ref().map(|(value, _)| value.as_str()).unwrap_or_default())
    }

    /// One request to the token endpoint.
    fn fetch(&mut self, agent: &ureq::Agent) -> Result<(), TokenError> {
        let creds = &self.credentials;
        let url = &creds.token_url;
        let sent = agent.post(url).send_form([
            ("grant_type", "client_credentials"),
            ("client_id", creds.client_id.as_str()),
            ("client_secret", creds.client_secret.as_str()),
            ("scope", creds.scope.as_str()),
        ]);
        let response = sent.map_err(|e| match http::classify_transport(e) {
            TransportFailure::Setup(detail) => TokenError::Setup { url: url.clone(), detail },
            TransportFailure::Retry(what) => TokenError::Retry { url: url.clone(), what, retry_after: None },
        })?;
        let status = response.status().as_u16();
        let retry_after = http::retry_after(response.headers());
        let len = http::read_padded_body(response.into_body(), MAX_TOKEN_RESPONSE, &mut self.body)
            .map_err(|e| TokenError::Retry { url: url.clone(), what: e.to_string(), retry_after: None })?;
        match status {
            200 => {}
            429 | 500..=599 => {
                return Err(TokenError::Retry { url: url.clone(), what: format!("answered {status}"), retry_after });
            }
            _ => return Err(TokenError::Refused { status, detail: http::error_detail(&self.body[..len]) }),
        }
        let parsed = self.parser.parse(&mut self.body, len, |root| {
            let token = root.get("access_token").and_then(|v| v.as_str()).map(str::to_owned);
            let expires_in = root.get("expires_in").and_then(|v| v.as_i64_lenient()).unwrap_or(3600).max(1);
            (token, expires_in)
        });
        let Ok((Some(value), expires_in)) = parsed else {
            // The body may hold a token in an unexpected shape: never print it.
            return Err(TokenError::BadResponse(format!("no string \"access_token\" in the {len}-byte JSON answer")));
        };
        self.fetched += 1;
        let lifetime = Duration::from_secs(expires_in as u64);
        let spare = Duration::from_secs(300).min(lifetime / 5);
        self.token = Some((value, Instant::now() + lifetime - spare));
        Ok(())
    }
}
