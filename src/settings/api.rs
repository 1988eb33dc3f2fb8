//! The API client's settings (portal, credentials, proxy, CA, rate limit,
//! retries) and their validation into an [`ApiConfig`]; the extra API
//! filters of `backfill --filter` and the agent's `[activities] filters`.
//! And the checks every source's settings share: web and credential URLs
//! ([`UrlError`]), files that must be readable, secrets from a file or an
//! environment variable ([`FileError`]).

use super::names::*;
use super::{Setting, SettingError, Source};
use crate::api::{
    ApiAuth, ApiClient, ApiConfig, ApiError, ClientCredentials, DEFAULT_SCOPE, DEFAULT_TOKEN_URL, RateLimit,
    RetryPolicy, paging,
};
use crate::json::{INPUT_PADDING, JsonParser};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How to reach and authenticate to the API, as given.
#[derive(Clone, Debug, Default)]
pub struct ApiSettings {
    /// `https://<tenant>.<region>.portal.cloudappsecurity.com`.
    pub portal_url: Option<String>,
    /// Legacy API token.
    pub token: Option<String>,
    /// A file whose first line is the token.
    pub token_file: Option<PathBuf>,
    /// Entra ID application (client credentials).
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    /// Token endpoint; `{tenant}` is replaced.
    pub token_url: Option<String>,
    pub scope: Option<String>,
    /// HTTP CONNECT proxy: `host[:port]`, `user:password@host:port`, `http://…`.
    pub proxy: Option<String>,
    /// PEM file of CA certificates to trust instead of the built-in roots.
    pub ca_file: Option<PathBuf>,
    pub rate_limit: Option<RateLimit>,
    /// Accept `http://` for the portal and token URLs beyond loopback (the
    /// credentials then travel in clear text; a warning says so).
    pub allow_http: bool,
    /// Attempts per request.
    pub retries: Option<u32>,
    /// First backoff delay (doubles, up to the command's maximum).
    pub retry_delay: Option<Duration>,
    pub request_timeout: Option<Duration>,
}

/// What a command uses for the settings it leaves out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiDefaults {
    pub retries: u32,
    pub retry_delay: Duration,
    pub max_retry_delay: Duration,
    pub request_timeout: Duration,
}

impl ApiSettings {
    /// The validated client config. Builds the client once (no network
    /// traffic) so that an unreadable CA file or a bad proxy is named here.
    pub fn validate(&self, source: Source, defaults: &ApiDefaults) -> Result<ApiConfig, SettingError> {
        let url = self.portal_url.as_deref().ok_or_else(|| {
            source.error(
                PORTAL_URL,
                "required: your tenant's portal URL, e.g. https://contoso.us3.portal.cloudappsecurity.com",
            )
        })?;
        check_credential_url(url, self.allow_http).map_err(|reason| source.error(PORTAL_URL, reason))?;
        let mut api = ApiConfig::new(url, self.auth(source)?);
        if let Some(spec) = &self.proxy {
            api.proxy = Some(crate::api::proxy_url(spec).map_err(|e| source.error(PROXY, e))?);
        }
        if let Some(ca) = &self.ca_file {
            readable_file(ca).map_err(|reason| source.error(API_CA, reason))?;
        }
        api.ca_file = self.ca_file.clone();
        api.rate_limit = self.rate_limit.unwrap_or(RateLimit::SERVICE);
        let max_attempts = self.retries.unwrap_or(defaults.retries);
        if max_attempts == 0 {
            return Err(source.error(RETRIES, "must be at least 1"));
        }
        api.retry = RetryPolicy {
            first_delay: positive(self.retry_delay.unwrap_or(defaults.retry_delay), RETRY_DELAY, source)?,
            max_delay: defaults.max_retry_delay,
            max_attempts,
        };
        api.request_timeout =
            positive(self.request_timeout.unwrap_or(defaults.request_timeout), REQUEST_TIMEOUT, source)?;
        if let Err(err) = ApiClient::new(&api) {
            let setting = if matches!(err, ApiError::CaFile { .. }) { API_CA } else { PROXY };
            return Err(source.error(setting, err));
        }
        Ok(api)
    }

    /// A legacy token (inline or from a file), or an Entra ID application;
    /// never both.
    fn auth(&self, source: Source) -> Result<ApiAuth, SettingError> {
        let token = match (&self.token, &self.token_file) {
            (Some(_), Some(_)) => return Err(source.error(TOKEN_OR_FILE, "give one of them, not both")),
            (Some(token), None) if token.trim().is_empty() => return Err(source.error(TOKEN, "is empty")),
            (Some(token), None) => Some(token.trim().to_owned()),
            (None, Some(path)) => Some(secret_from_file(path).map_err(|reason| source.error(TOKEN_FILE, reason))?),
            (None, None) => None,
        };
        let application = self.tenant_id.is_some()
            || self.client_id.is_some()
            || self.client_secret.is_some()
            || self.client_secret_file.is_some();
        match (token, application) {
            (Some(_), true) => Err(source.error(
                AUTH,
                "give either a token or an Entra ID application (tenant id, client id, client secret), not both",
            )),
            (Some(token), false) => Ok(ApiAuth::Token(token)),
            (None, true) => self.application(source).map(ApiAuth::ClientCredentials),
            (None, false) => Err(source.error(
                TOKEN,
                "the API needs credentials: a token, or an Entra ID application (tenant id, client id and client secret)",
            )),
        }
    }

    fn application(&self, source: Source) -> Result<ClientCredentials, SettingError> {
        let required = |value: &Option<String>, setting: Setting| {
            value.clone().ok_or_else(|| source.error(setting, "required for an Entra ID application"))
        };
        let tenant_id = required(&self.tenant_id, TENANT_ID)?;
        let client_id = required(&self.client_id, CLIENT_ID)?;
        let client_secret = match (&self.client_secret, &self.client_secret_file) {
            (Some(_), Some(_)) => return Err(source.error(CLIENT_SECRET_OR_FILE, "give one of them, not both")),
            (Some(secret), None) => secret.clone(),
            (None, Some(path)) => secret_from_file(path).map_err(|reason| source.error(CLIENT_SECRET_FILE, reason))?,
            (None, None) => return Err(source.error(CLIENT_SECRET, "required for an Entra ID application")),
        };
        let token_url = self.token_url.as_deref().unwrap_or(DEFAULT_TOKEN_URL);
        check_credential_url(token_url, self.allow_http).map_err(|reason| source.error(TOKEN_URL, reason))?;
        let scope = self.scope.as_deref().unwrap_or(DEFAULT_SCOPE);
        if scope.trim().is_empty() {
            return Err(source.error(SCOPE, "is empty"));
        }
        Ok(ClientCredentials {
            token_url: token_url.replace("{tenant}", &tenant_id),
            tenant_id,
            client_id,
            client_secret,
            scope: scope.to_owned(),
        })
    }
}

/// A URL the client can reach: `https://` (or `http://`, for tests and
/// proxies that terminate TLS) with something after it.
pub(super) fn check_web_url(url: &str) -> Result<(), UrlError> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest) if !rest.trim_matches('/').is_empty() => Ok(()),
        _ => Err(UrlError::NotWeb { url: url.to_owned() }),
    }
}

/// A URL that credentials are sent to: `https://`, or `http://` to a
/// loopback host (the emulator, a local proxy), or `http://` anywhere when
/// `allow_http` says so (a warning, once, on stderr).
pub(super) fn check_credential_url(url: &str, allow_http: bool) -> Result<(), UrlError> {
    check_web_url(url)?;
    let Some(rest) = url.strip_prefix("http://") else { return Ok(()) };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let host = match host_port.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    let loopback =
        host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback {
        return Ok(());
    }
    if allow_http {
        eprintln!("cefwire: warning: {url} is plain http://: the credentials sent to it travel in clear text");
        return Ok(());
    }
    Err(UrlError::PlainHttp { url: url.to_owned() })
}

/// Why a URL setting is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("{url:?} must start with https:// (or http://)")]
    NotWeb { url: String },
    #[error(
        "{url:?} is plain http://: the credentials sent to it would travel in clear text; use https:// \
         (http:// is accepted for 127.0.0.1, ::1 and localhost, or anywhere with allow_http = true / --allow-http)"
    )]
    PlainHttp { url: String },
}

fn positive(duration: Duration, setting: Setting, source: Source) -> Result<Duration, SettingError> {
    if duration.is_zero() {
        return Err(source.error(setting, "must be longer than zero"));
    }
    Ok(duration)
}

/// Checks that `path` can be opened for reading.
pub fn readable_file(path: &Path) -> Result<(), FileError> {
    std::fs::File::open(path).map(drop).map_err(|source| FileError::Unreadable { path: path.to_owned(), source })
}

/// A secret kept in a file: its first line, trimmed.
pub fn secret_from_file(path: &Path) -> Result<String, FileError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| FileError::Unreadable { path: path.to_owned(), source })?;
    let secret = text.lines().next().unwrap_or_default().trim().to_owned();
    if secret.is_empty() {
        return Err(FileError::Empty { path: path.to_owned() });
    }
    Ok(secret)
}

/// Why a file named by a setting cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {path}: {source}")]
    Unreadable { path: PathBuf, source: std::io::Error },
    #[error("{path} is empty")]
    Empty { path: PathBuf },
}

/// A secret from its file when one is given (an unreadable or empty file
/// is an error), else from the environment variable `env_var`; `None`
/// when neither holds one.
pub fn secret_from_file_or_env(path: Option<&Path>, env_var: &str) -> Result<Option<String>, FileError> {
    match path {
        Some(path) => secret_from_file(path).map(Some),
        None => Ok(secret_from_env(env_var)),
    }
}

/// The environment variable `name`, trimmed; `None` when unset or blank.
pub fn secret_from_env(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// Checks extra API filters given as a JSON object and returns its members
/// (`"service":{"eq":[11161]}`, without braces) for the pagers. The time
/// fields are refused: cefwire sets the time window itself.
pub fn extra_filters(json: &str, setting: Setting, source: Source) -> Result<Vec<u8>, SettingError> {
    let mut bytes = json.as_bytes().to_vec();
    let len = bytes.len();
    bytes.resize(len + INPUT_PADDING, 0);
    match JsonParser::new().parse(&mut bytes, len, paging::filter_members) {
        Ok(Ok(members)) => Ok(members),
        Ok(Err(reason)) => Err(source.error(setting, reason)),
        Err(err) => Err(source.error(setting, format!("not JSON: {err}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: ApiDefaults = ApiDefaults {
        retries: 3,
        retry_delay: Duration::from_secs(1),
        max_retry_delay: Duration::from_secs(30),
        request_timeout: Duration::from_secs(120),
    };

    fn with_token() -> ApiSettings {
        ApiSettings {
            portal_url: Some("https://contoso.portal.cloudappsecurity.com".into()),
            token: Some(" t ".into()),
            ..ApiSettings::default()
        }
    }

    fn refusal(settings: &ApiSettings) -> String {
        settings.validate(Source::Flags, &DEFAULTS).unwrap_err().to_string()
    }

    #[test]
    fn a_token_and_the_defaults() {
        let api = with_token().validate(Source::AgentFile, &DEFAULTS).unwrap();
        assert_eq!(api.auth, ApiAuth::Token("t".into()));
        assert_eq!(api.rate_limit, RateLimit::SERVICE);
        assert_eq!((api.retry.max_attempts, api.request_timeout), (3, Duration::from_secs(120)));
    }

    #[test]
    fn an_application_gets_its_token_url_and_scope() {
        let settings = ApiSettings {
            token: None,
            tenant_id: Some("T".into()),
            client_id: Some("C".into()),
            client_secret: Some("S".into()),
            ..with_token()
        };
        let ApiAuth::ClientCredentials(app) = settings.validate(Source::Flags, &DEFAULTS).unwrap().auth else {
            panic!("not an application")
        };
        assert_eq!(app.token_url, "https://login.microsoftonline.com/T/oauth2/v2.0/token");
        assert_eq!(app.scope, DEFAULT_SCOPE);
    }

    /// An `http://` portal or token URL was accepted silently: the token
    /// went out in clear text. Now only loopback hosts, or an explicit
    /// `allow_http`, may be plain.
    #[test]
    fn plain_http_is_refused_for_credentials_except_on_loopback_or_when_allowed() {
        let portal = |url: &str, allow_http| ApiSettings { portal_url: Some(url.into()), allow_http, ..with_token() };
        let refused = refusal(&portal("http://contoso.portal.cloudappsecurity.com", false));
        assert!(refused.starts_with("--portal-url: \"http://contoso.portal.cloudappsecurity.com\" is plain http://"));
        assert!(refused.contains("--allow-http"), "{refused}");
        for loopback in ["http://127.0.0.1:8443", "http://localhost", "http://[::1]:80/", "http://127.9.9.9/x"] {
            assert!(portal(loopback, false).validate(Source::Flags, &DEFAULTS).is_ok(), "{loopback}");
        }
        // A host that only starts like a loopback one is not one.
        assert!(refusal(&portal("http://127.0.0.1.attacker.example", false)).contains("plain http://"));
        assert!(refusal(&portal("http://localhost@attacker.example", false)).contains("plain http://"));
        assert!(portal("http://siem-proxy.internal", true).validate(Source::AgentFile, &DEFAULTS).is_ok());
        let app = ApiSettings {
            token: None,
            tenant_id: Some("T".into()),
            client_id: Some("C".into()),
            client_secret: Some("S".into()),
            token_url: Some("http://login.example/{tenant}/token".into()),
            ..with_token()
        };
        assert!(refusal(&app).starts_with("--token-url: \"http://login.example/{tenant}/token\" is plain http://"));
    }

    #[test]
    fn refusals_say_what_to_fix() {
        let app = |token_url: &str| ApiSettings {
            token: None,
            tenant_id: Some("T".into()),
            client_id: Some("C".into()),
            client_secret: Some("S".into()),
            token_url: Some(token_url.into()),
            ..with_token()
        };
        assert_eq!(refusal(&app("ftp://login")), "--token-url: \"ftp://login\" must start with https:// (or http://)");
        assert_eq!(refusal(&ApiSettings { token: Some(" ".into()), ..with_token() }), "--token: is empty");
        assert!(refusal(&ApiSettings { client_id: Some("C".into()), ..with_token() }).contains("not both"));
        assert_eq!(
            refusal(&ApiSettings { token: None, client_id: Some("C".into()), ..with_token() }),
            "--tenant-id: required for an Entra ID application"
        );
        assert_eq!(
            refusal(&ApiSettings { portal_url: Some("contoso".into()), ..with_token() }),
            "--portal-url: \"contoso\" must start with https:// (or http://)"
        );
        assert_eq!(refusal(&ApiSettings { retries: Some(0), ..with_token() }), "--retries: must be at least 1");
        assert_eq!(
            refusal(&ApiSettings { retry_delay: Some(Duration::ZERO), ..with_token() }),
            "--retry-delay: must be longer than zero"
        );
        assert!(
            refusal(&ApiSettings { ca_file: Some("/nonexistent.pem".into()), ..with_token() })
                .starts_with("--api-ca: cannot read")
        );
        assert!(refusal(&ApiSettings { proxy: Some("socks5://p:1".into()), ..with_token() }).starts_with("--proxy: "));
    }

    #[test]
    fn filters_are_parsed_json_and_the_time_fields_are_refused() {
        let members =
            extra_filters(r#" {"service": {"eq": [11161]}} "#, FILTERS_ACTIVITIES, Source::AgentFile).unwrap();
        assert_eq!(members, br#""service":{"eq":[11161]}"#);
        for reserved in
            [r#"{"created":{"gte":1}}"#, r#"{"service":{"eq":[1]},"date":{"gte":1}}"#, r#"{"timestamp":{"gte":1}}"#]
        {
            let err = extra_filters(reserved, FILTERS_ACTIVITIES, Source::AgentFile).unwrap_err().to_string();
            assert!(err.starts_with("activities.filters: must not filter on"), "{err}");
        }
        // A key that merely contains a reserved name is a filter like any other.
        assert!(extra_filters(r#"{"service":{"eq":["\"date\":"]}}"#, FILTERS_ACTIVITIES, Source::Flags).is_ok());
        assert!(
            extra_filters("{", FILTERS_ALERTS, Source::Flags)
                .unwrap_err()
                .to_string()
                .starts_with("--filter: not JSON")
        );
    }
}
