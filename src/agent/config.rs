//! The agent's validated configuration, built from the TOML file (with
//! command-line overrides already applied to it). Everything that can be
//! checked without the network is checked here — URLs, files, durations,
//! names — and each error names the setting to fix, so a bad configuration
//! stops the agent before it sends or fetches anything.

use super::config_file::{ConfigFile, EventHubsSection, StreamSection, filters_to_json_members};
use crate::api::{ApiAuth, ApiConfig, ClientCredentials, DEFAULT_SCOPE, DEFAULT_TOKEN_URL, RateLimit, RetryPolicy};
use crate::cef::{CefOptions, KindChoice};
use crate::eventhubs::settings::{MIN_COMMIT_INTERVAL, oauth_scope};
use crate::eventhubs::{ConnectionString, EntraApp, EventHubsSettings, KafkaAuth, Secret, StartAt};
use crate::send::{DeliveryMode, Destination, SendConfig, TlsClientOptions, Transport};
use crate::syslog::frame::Framing;
use crate::syslog::header::{
    HeaderLayout, SyslogHeader, TimestampStyle, local_hostname, parse_facility, parse_severity, validate_hostname,
};
use crate::time::parse_duration_ms;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A setting that cannot be used, with the name to fix.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct ConfigError {
    /// The config key, with its flag when there is one: `auth.token (--token)`.
    pub setting: String,
    pub message: String,
}

fn bad(setting: &str, message: impl Into<String>) -> ConfigError {
    ConfigError { setting: setting.to_owned(), message: message.into() }
}

/// One stream (activities or alerts) and its extra API filters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamConfig {
    /// Filter members (`"service":{"eq":[11161]}`) ANDed with the time filter.
    pub extra_filters: Vec<u8>,
}

/// Everything the agent needs, validated.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The Defender for Cloud Apps API; `None` when no stream reads it
    /// (activities from Event Hubs, alerts switched off).
    pub api: Option<ApiConfig>,
    pub send: SendConfig,
    pub cef: CefOptions,
    /// Activities from the API (`None`: off, or read from Event Hubs).
    pub activities: Option<StreamConfig>,
    pub alerts: Option<StreamConfig>,
    /// Activities from Event Hubs (`[activities] source = "eventhubs"`).
    pub eventhubs: Option<EventHubsSettings>,
    pub state_dir: PathBuf,
    pub logs_dir: Option<PathBuf>,
    pub poll_interval: Duration,
    /// How far back a first start reads (ms).
    pub window_ms: i64,
    /// How much before the cursor each query starts (ms).
    pub overlap_ms: i64,
    /// The longest time span one query covers (ms); a backlog is read in
    /// slices this long so the checkpoint advances as it goes.
    pub slice_ms: i64,
    pub metrics: Option<SocketAddr>,
    /// How long one wait for syslog lasts before the health is updated and
    /// the wait starts again.
    pub syslog_wait: Duration,
    /// Bytes of recently sent messages kept to resend after the syslog
    /// connection broke (a dead receiver may have dropped them).
    pub resend_window_bytes: usize,
    /// Activities per scan page.
    pub scan_page_size: u64,
    /// Run until caught up once, then exit (for cron-style use and tests).
    pub once: bool,
}

/// Paths and values given on the command line, which win over the file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub portal_url: Option<String>,
    pub token: Option<String>,
    pub proxy: Option<String>,
    pub logs_directory: Option<PathBuf>,
    pub state_directory: Option<PathBuf>,
    pub to: Vec<String>,
    pub metrics: Option<String>,
    pub once: bool,
}

impl AgentConfig {
    /// Applies `overrides` to `file` and validates the result.
    /// `default_state_dir` is used when neither gives a state directory.
    pub fn build(mut file: ConfigFile, overrides: Overrides, default_state_dir: PathBuf) -> Result<Self, ConfigError> {
        if let Some(url) = overrides.portal_url {
            file.portal_url = Some(url);
        }
        if let Some(token) = overrides.token {
            file.auth.token = Some(token);
            file.auth.token_file = None;
        }
        if overrides.proxy.is_some() {
            file.proxy = overrides.proxy;
        }
        if overrides.logs_directory.is_some() {
            file.logs_directory = overrides.logs_directory;
        }
        if overrides.state_directory.is_some() {
            file.state_directory = overrides.state_directory;
        }
        if !overrides.to.is_empty() {
            file.syslog.to = Some(overrides.to);
        }
        if overrides.metrics.is_some() {
            file.metrics = overrides.metrics;
        }

        let send = send_config(&file)?;
        let cef = cef_options(&file)?;
        let activities_on = file.activities.enabled.unwrap_or(true);
        let (activities, eventhubs) = match file.activities.source.as_deref().unwrap_or("mda") {
            _ if !activities_on => (None, None),
            "mda" => (stream(&file.activities, "activities")?, None),
            "eventhubs" => (None, Some(eventhubs_settings(&file.eventhubs)?)),
            other => {
                return Err(bad("activities.source", format!("{other:?} is not \"mda\" or \"eventhubs\"")));
            }
        };
        match file.alerts.source.as_deref() {
            None | Some("mda") => {}
            Some(other) => return Err(bad("alerts.source", format!("{other:?} is not \"mda\""))),
        }
        let alerts = stream(&file.alerts, "alerts")?;
        if activities.is_none() && alerts.is_none() && eventhubs.is_none() {
            return Err(bad("activities.enabled / alerts.enabled", "both data types are switched off; nothing to do"));
        }
        let api = if activities.is_some() || alerts.is_some() { Some(api_config(&file)?) } else { None };
        let window_ms = duration_ms(file.window.as_deref(), "48h", "window")?;
        let overlap_ms = duration_ms(file.overlap.as_deref(), "5m", "overlap")?;
        if overlap_ms >= window_ms {
            return Err(bad("overlap", "must be shorter than the window"));
        }
        let poll_interval =
            Duration::from_millis(duration_ms(file.poll_interval.as_deref(), "60s", "poll_interval")? as u64);
        let state_dir = file
            .state_directory
            .or_else(|| std::env::var_os("STATE_DIRECTORY").filter(|d| !d.is_empty()).map(PathBuf::from))
            .unwrap_or(default_state_dir);
        writable_dir(&state_dir, "state_directory (--state-dir)")?;
        let logs_dir = file
            .logs_directory
            .or_else(|| std::env::var_os("LOGS_DIRECTORY").filter(|d| !d.is_empty()).map(PathBuf::from));
        if let Some(dir) = &logs_dir {
            writable_dir(dir, "logs_directory (--logs-directory)")?;
        }
        let metrics = match file.metrics.as_deref() {
            None => None,
            Some(addr) => Some(addr.parse::<SocketAddr>().map_err(|_| {
                bad("metrics (--metrics)", format!("{addr:?} is not a host:port address like 127.0.0.1:9100"))
            })?),
        };
        let scan_page_size = file.scan_page_size.unwrap_or(crate::api::paging::SCAN_PAGE);
        if !(500..=crate::api::paging::SCAN_PAGE).contains(&scan_page_size) {
            return Err(bad("scan_page_size", format!("{scan_page_size} must be between 500 and 5000")));
        }
        Ok(Self {
            api,
            send,
            cef,
            activities,
            alerts,
            eventhubs,
            state_dir,
            logs_dir,
            poll_interval,
            window_ms,
            overlap_ms,
            slice_ms: 3_600_000,
            metrics,
            syslog_wait: Duration::from_secs(5),
            resend_window_bytes: 8 << 20,
            scan_page_size,
            once: overrides.once,
        })
    }
}

fn duration_ms(value: Option<&str>, default: &str, setting: &str) -> Result<i64, ConfigError> {
    let text = value.unwrap_or(default);
    match parse_duration_ms(text) {
        Ok(ms) if ms > 0 => Ok(ms),
        Ok(_) => Err(bad(setting, format!("{text:?} must be longer than zero"))),
        Err(e) => Err(bad(setting, e)),
    }
}

/// Creates the directory if needed and checks that files can be written in it.
fn writable_dir(dir: &Path, setting: &str) -> Result<(), ConfigError> {
    std::fs::create_dir_all(dir).map_err(|e| bad(setting, format!("cannot create {}: {e}", dir.display())))?;
    let probe = dir.join(".cefwire-write-test");
    std::fs::write(&probe, b"ok").map_err(|e| bad(setting, format!("cannot write in {}: {e}", dir.display())))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

fn readable_file(path: &Path, setting: &str) -> Result<(), ConfigError> {
    std::fs::File::open(path).map(drop).map_err(|e| bad(setting, format!("cannot read {}: {e}", path.display())))
}

/// Reads a secret from a file (first line, trimmed).
fn secret_from_file(path: &Path, setting: &str) -> Result<String, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| bad(setting, format!("cannot read {}: {e}", path.display())))?;
    let secret = text.lines().next().unwrap_or_default().trim().to_owned();
    if secret.is_empty() {
        return Err(bad(setting, format!("{} is empty", path.display())));
    }
    Ok(secret)
}

fn api_config(file: &ConfigFile) -> Result<ApiConfig, ConfigError> {
    let url = file.portal_url.as_deref().ok_or_else(|| {
        bad(
            "portal_url (--portal-url)",
            "required: your tenant's portal URL, e.g. https://contoso.us3.portal.cloudappsecurity.com",
        )
    })?;
    if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() <= "https://".len() {
        return Err(bad("portal_url (--portal-url)", format!("{url:?} is not an https:// URL")));
    }
    let a = &file.auth;
    let token = match (&a.token, &a.token_file) {
        (Some(_), Some(_)) => return Err(bad("auth.token / auth.token_file", "give one of them, not both")),
        (Some(t), None) if t.trim().is_empty() => return Err(bad("auth.token (--token)", "is empty")),
        (Some(t), None) => Some(t.trim().to_owned()),
        (None, Some(path)) => Some(secret_from_file(path, "auth.token_file")?),
        (None, None) => None,
    };
    let app =
        a.tenant_id.is_some() || a.client_id.is_some() || a.client_secret.is_some() || a.client_secret_file.is_some();
    let auth = match (token, app) {
        (Some(_), true) => {
            return Err(bad("auth", "give either a token or tenant_id/client_id/client_secret, not both"));
        }
        (Some(token), false) => ApiAuth::Token(token),
        (None, true) => {
            let tenant = a.tenant_id.clone().ok_or_else(|| bad("auth.tenant_id", "required with client_id"))?;
            let client = a.client_id.clone().ok_or_else(|| bad("auth.client_id", "required with tenant_id"))?;
            let secret = match (&a.client_secret, &a.client_secret_file) {
                (Some(s), None) => s.clone(),
                (None, Some(path)) => secret_from_file(path, "auth.client_secret_file")?,
                _ => return Err(bad("auth.client_secret / auth.client_secret_file", "give exactly one of them")),
            };
            let token_url =
                a.token_url.clone().unwrap_or_else(|| DEFAULT_TOKEN_URL.to_owned()).replace("{tenant}", &tenant);
            ApiAuth::ClientCredentials(ClientCredentials {
                tenant_id: tenant,
                client_id: client,
                client_secret: secret,
                token_url,
                scope: DEFAULT_SCOPE.to_owned(),
            })
        }
        (None, false) => {
            return Err(bad("auth.token (--token)", "the API needs a token (or an Entra ID application in [auth])"));
        }
    };
    if let Some(ca) = &file.ca_file {
        readable_file(ca, "ca_file")?;
    }
    let proxy = match &file.proxy {
        None => None,
        Some(spec) => Some(crate::api::proxy_url(spec).map_err(|e| bad("proxy (--proxy)", e))?),
    };
    let requests = file.rate_limit.unwrap_or(30.0);
    if !(requests >= 1.0 && requests.fract() == 0.0) {
        return Err(bad("rate_limit", format!("{requests} must be a whole number of requests per minute, at least 1")));
    }
    let mut api = ApiConfig::new(url, auth);
    api.proxy = proxy;
    api.ca_file = file.ca_file.clone();
    api.rate_limit = RateLimit { requests: requests as u32, per: Duration::from_secs(60) };
    // Few retries per request: the agent's own loop keeps trying, and
    // marks the API as failing in the meantime.
    api.retry =
        RetryPolicy { first_delay: Duration::from_secs(1), max_delay: Duration::from_secs(30), max_attempts: 3 };
    api.request_timeout = Duration::from_secs(120);
    // Building the client reads the CA file and checks the proxy, without
    // any network traffic: a file that holds no certificate is a setting
    // to fix, named as such, not a connection problem found later.
    if let Err(err) = crate::api::ApiClient::new(&api) {
        let setting = match err {
            crate::api::ApiError::CaFile { .. } => "ca_file",
            _ => "proxy (--proxy)",
        };
        return Err(bad(setting, err.to_string()));
    }
    Ok(api)
}

/// The environment variable that may hold the Event Hubs connection string.
pub const CONNECTION_STRING_ENV: &str = "CEFWIRE_EVENTHUBS_CONNECTION_STRING";

fn eventhubs_settings(section: &EventHubsSection) -> Result<EventHubsSettings, ConfigError> {
    let connection_string = || -> Result<Secret, ConfigError> {
        match (&section.connection_string_file, std::env::var(CONNECTION_STRING_ENV)) {
            (Some(path), _) => Ok(Secret::new(secret_from_file(path, "eventhubs.connection_string_file")?)),
            (None, Ok(value)) if !value.trim().is_empty() => Ok(Secret::new(value.trim())),
            (None, _) => Err(bad(
                "eventhubs.connection_string_file",
                format!(
                    "required (or the environment variable {CONNECTION_STRING_ENV}): the namespace's connection string"
                ),
            )),
        }
    };
    let mut entity_path = None;
    let mut namespace_host = section
        .namespace
        .as_deref()
        .map(|n| if n.contains('.') { n.trim().to_owned() } else { format!("{}.servicebus.windows.net", n.trim()) });
    let auth = match section.auth.as_deref().unwrap_or("connection-string") {
        "connection-string" => {
            let secret = connection_string()?;
            let parsed = ConnectionString::parse(secret.expose())
                .map_err(|e| bad("eventhubs connection string", e.to_string()))?;
            entity_path = parsed.entity_path;
            namespace_host.get_or_insert(parsed.host);
            KafkaAuth::ConnectionString(secret)
        }
        "entra" => {
            let tenant = section
                .tenant_id
                .clone()
                .ok_or_else(|| bad("eventhubs.tenant_id", "required with auth = \"entra\""))?;
            let client = section
                .client_id
                .clone()
                .ok_or_else(|| bad("eventhubs.client_id", "required with auth = \"entra\""))?;
            let path = section
                .client_secret_file
                .as_ref()
                .ok_or_else(|| bad("eventhubs.client_secret_file", "required with auth = \"entra\""))?;
            let secret = secret_from_file(path, "eventhubs.client_secret_file")?;
            let token_url =
                section.token_url.clone().unwrap_or_else(|| DEFAULT_TOKEN_URL.to_owned()).replace("{tenant}", &tenant);
            KafkaAuth::EntraApp(EntraApp {
                credentials: ClientCredentials {
                    tenant_id: tenant,
                    client_id: client,
                    client_secret: secret,
                    token_url,
                    scope: String::new(),
                },
            })
        }
        "none" => KafkaAuth::Plaintext,
        other => {
            return Err(bad(
                "eventhubs.auth",
                format!("{other:?} is not \"connection-string\", \"entra\" or \"none\""),
            ));
        }
    };
    let bootstrap = match (&section.bootstrap_servers, namespace_host) {
        (Some(servers), _) if servers.trim().is_empty() => return Err(bad("eventhubs.bootstrap_servers", "is empty")),
        (Some(servers), _) => servers.trim().to_owned(),
        (None, Some(host)) => format!("{host}:9093"),
        (None, None) => return Err(bad("eventhubs.namespace", "required: the Event Hubs namespace, e.g. contoso-xdr")),
    };
    let mut settings = EventHubsSettings::new(bootstrap, auth);
    if let KafkaAuth::EntraApp(app) = &mut settings.auth {
        app.credentials.scope = oauth_scope(&settings.bootstrap_servers);
    }
    if let Some(hub) = section.event_hub.clone().or(entity_path) {
        settings.event_hub = hub;
    }
    if let Some(group) = &section.consumer_group {
        settings.consumer_group = group.clone();
    }
    settings.start_at = match section.start_at.as_deref().unwrap_or("earliest") {
        "earliest" => StartAt::Earliest,
        "latest" => StartAt::Latest,
        other => return Err(bad("eventhubs.start_at", format!("{other:?} is not \"earliest\" or \"latest\""))),
    };
    if let Some(text) = &section.commit_interval {
        let ms = duration_ms(Some(text), "1s", "eventhubs.commit_interval")?;
        settings.commit_interval = Duration::from_millis(ms as u64);
        if settings.commit_interval < MIN_COMMIT_INTERVAL {
            return Err(bad(
                "eventhubs.commit_interval",
                "must be at least 250ms (Event Hubs allows 4 commits/s per partition)",
            ));
        }
    }
    if let Some(text) = &section.session_timeout {
        settings.timeouts.session =
            Duration::from_millis(duration_ms(Some(text), "30s", "eventhubs.session_timeout")? as u64);
    }
    if let Some(ca) = &section.ca_file {
        readable_file(ca, "eventhubs.ca_file")?;
        settings.ca_file = Some(ca.clone());
    }
    if settings.event_hub.is_empty() || settings.consumer_group.is_empty() {
        return Err(bad("eventhubs.event_hub / eventhubs.consumer_group", "must not be empty"));
    }
    Ok(settings)
}

fn send_config(file: &ConfigFile) -> Result<SendConfig, ConfigError> {
    let s = &file.syslog;
    let urls = s.to.as_deref().unwrap_or_default();
    if urls.is_empty() {
        return Err(bad("syslog.to (--to)", "required: where to send, e.g. tcp://siem.example.com:514"));
    }
    let mut destinations = Vec::new();
    for url in urls {
        destinations.push(Destination::parse(url).map_err(|e| bad("syslog.to (--to)", e.to_string()))?);
    }
    let failover = s.failover.unwrap_or(false);
    if failover && destinations.len() < 2 {
        return Err(bad("syslog.failover", "needs at least two destinations in syslog.to"));
    }
    let has_tls = destinations.iter().any(|d| d.transport == Transport::Tls);
    let framing = match s.framing.as_deref() {
        None => None,
        Some("lf") if has_tls => return Err(bad("syslog.framing", "\"lf\" cannot be used with tls:// (RFC 5425)")),
        Some("lf") => Some(Framing::NewLine),
        Some("octet-counting") => Some(Framing::OctetCounting),
        Some(other) => return Err(bad("syslog.framing", format!("{other:?} is not \"lf\" or \"octet-counting\""))),
    };
    for (path, setting) in
        [(&s.ca_file, "syslog.ca_file"), (&s.client_cert, "syslog.client_cert"), (&s.client_key, "syslog.client_key")]
    {
        if let Some(path) = path {
            readable_file(path, setting)?;
        }
    }
    if s.client_cert.is_some() != s.client_key.is_some() {
        return Err(bad("syslog.client_cert / syslog.client_key", "go together"));
    }
    let mut config = SendConfig::new(destinations);
    config.mode = if failover { DeliveryMode::Failover } else { DeliveryMode::FanOut };
    config.framing = framing;
    config.max_message_bytes = s.max_message_bytes;
    config.tls = TlsClientOptions {
        ca: s.ca_file.clone(),
        client_cert: s.client_cert.clone(),
        client_key: s.client_key.clone(),
    };
    // The agent never gives up on its SIEM: it waits, keeps the cursor and
    // reports the outage in its health.
    config.give_up_after = None;
    config.drain_timeout = Duration::from_secs(5);
    // Room for a page in flight plus a whole resend window, so re-sending
    // after a reconnect never has to wait for a batch to come back.
    config.batches = 64;
    Ok(config)
}

fn cef_options(file: &ConfigFile) -> Result<CefOptions, ConfigError> {
    let c = &file.cef;
    let facility = parse_facility(c.facility.as_deref().unwrap_or("local0")).map_err(|e| bad("cef.facility", e))?;
    let severity = parse_severity(c.severity.as_deref().unwrap_or("info")).map_err(|e| bad("cef.severity", e))?;
    let timestamp = match c.time_format.as_deref().unwrap_or("rfc5424") {
        "rfc5424" => TimestampStyle::Rfc5424,
        "rfc3164" => TimestampStyle::Rfc3164,
        "rfc3164-year" => TimestampStyle::Rfc3164WithYear,
        other => return Err(bad("cef.time_format", format!("{other:?} is not rfc5424, rfc3164 or rfc3164-year"))),
    };
    let layout = match c.header.as_deref().unwrap_or("legacy") {
        "legacy" => HeaderLayout::Legacy,
        "rfc5424" => HeaderLayout::Rfc5424,
        other => return Err(bad("cef.header", format!("{other:?} is not legacy or rfc5424"))),
    };
    let hostname = match &c.hostname {
        None | Some(toml::Value::Boolean(true)) => Some(local_hostname()),
        Some(toml::Value::Boolean(false)) => None,
        Some(toml::Value::String(name)) => Some(validate_hostname(name).map_err(|e| bad("cef.hostname", e))?),
        Some(_) => return Err(bad("cef.hostname", "must be true, false or a name in quotes")),
    };
    let portal_url = file.portal_url.clone().unwrap_or_default();
    Ok(CefOptions {
        device_version: c.device_version.clone().unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_owned()),
        portal_url: portal_url.trim_end_matches('/').to_owned(),
        kind: KindChoice::Auto,
        header: SyslogHeader {
            pri: c.pri.unwrap_or(true).then_some(facility * 8 + severity),
            timestamp,
            hostname,
            layout,
        },
    })
}

fn stream(section: &StreamSection, name: &str) -> Result<Option<StreamConfig>, ConfigError> {
    if !section.enabled.unwrap_or(true) {
        return Ok(None);
    }
    let extra_filters = match &section.filters {
        None => Vec::new(),
        Some(filters) => {
            let members = filters_to_json_members(filters).map_err(|e| bad(&format!("{name}.filters"), e))?;
            for reserved in ["\"created\":", "\"date\":"] {
                if members.starts_with(reserved) || members.contains(&format!(",{reserved}")) {
                    return Err(bad(
                        &format!("{name}.filters"),
                        "must not filter on created/date: the agent sets the time window itself",
                    ));
                }
            }
            members.into_bytes()
        }
    };
    Ok(Some(StreamConfig { extra_filters }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(text: &str, overrides: Overrides) -> Result<AgentConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let file = ConfigFile::parse(text).unwrap();
        AgentConfig::build(file, overrides, dir.path().join("state"))
    }

    const MINIMAL: &str = "portal_url = \"https://contoso.portal.cloudappsecurity.com\"\n[auth]\ntoken = \"t\"\n[syslog]\nto = [\"tcp://127.0.0.1:5140\"]\n";

    #[test]
    fn minimal_config_gets_the_defaults() {
        let config = build(MINIMAL, Overrides::default()).unwrap();
        assert_eq!(config.window_ms, 48 * 3_600_000);
        assert_eq!(config.overlap_ms, 5 * 60_000);
        assert_eq!(config.poll_interval, Duration::from_secs(60));
        assert!(config.activities.is_some() && config.alerts.is_some());
        assert_eq!(config.cef.header.pri, Some(134));
        assert!(config.cef.header.hostname.is_some());
        assert_eq!(config.api.as_ref().unwrap().rate_limit, RateLimit::SERVICE);
    }

    #[test]
    fn flags_win_over_the_file() {
        let overrides = Overrides {
            token: Some("from-flag".into()),
            to: vec!["udp://127.0.0.1:514".into()],
            ..Overrides::default()
        };
        let config = build(MINIMAL, overrides).unwrap();
        assert_eq!(config.api.as_ref().unwrap().auth, ApiAuth::Token("from-flag".into()));
        assert_eq!(config.send.destinations[0].transport, Transport::Udp);
    }

    #[test]
    fn errors_name_the_setting() {
        let cases = [
            ("[auth]\ntoken = \"t\"\n[syslog]\nto = [\"tcp://h:1\"]\n", "portal_url (--portal-url)"),
            ("portal_url = \"contoso\"\n[auth]\ntoken = \"t\"\n[syslog]\nto = [\"tcp://h:1\"]\n", "portal_url"),
            ("portal_url = \"https://c\"\n[syslog]\nto = [\"tcp://h:1\"]\n", "auth.token (--token)"),
            ("portal_url = \"https://c\"\n[auth]\ntoken = \"t\"\n", "syslog.to (--to)"),
            ("portal_url = \"https://c\"\n[auth]\ntoken = \"t\"\n[syslog]\nto = [\"ftp://h:1\"]\n", "syslog.to (--to)"),
            (
                "portal_url = \"https://c\"\nca_file = \"/nonexistent/ca.pem\"\n[auth]\ntoken = \"t\"\n[syslog]\nto = [\"tcp://h:1\"]\n",
                "ca_file",
            ),
            (
                "portal_url = \"https://c\"\nca_file = \"Cargo.toml\"\n[auth]\ntoken = \"t\"\n[syslog]\nto = [\"tcp://h:1\"]\n",
                "ca_file: reading the CA file Cargo.toml: no PEM certificate",
            ),
            (
                "portal_url = \"https://c\"\nwindow = \"2 fortnights\"\n[auth]\ntoken = \"t\"\n[syslog]\nto = [\"tcp://h:1\"]\n",
                "window",
            ),
            (
                "portal_url = \"https://c\"\n[auth]\ntoken_file = \"/nonexistent\"\n[syslog]\nto = [\"tcp://h:1\"]\n",
                "auth.token_file",
            ),
            (
                "portal_url = \"https://c\"\n[auth]\ntoken = \"t\"\n[syslog]\nto = [\"tls://h:1\"]\nca_file = \"/nope.pem\"\n",
                "syslog.ca_file",
            ),
            (
                "portal_url = \"https://c\"\n[auth]\ntoken = \"t\"\n[syslog]\nto = [\"tcp://h:1\"]\n[cef]\nfacility = \"local9\"\n",
                "cef.facility",
            ),
            (
                "portal_url = \"https://c\"\n[auth]\ntoken = \"t\"\n[syslog]\nto = [\"tcp://h:1\"]\n[activities]\nfilters = { created = { gte = 1 } }\n",
                "activities.filters",
            ),
            (
                "portal_url = \"https://c\"\n[auth]\ntoken = \"t\"\n[syslog]\nto = [\"tcp://h:1\"]\n[activities]\nenabled = false\n[alerts]\nenabled = false\n",
                "both data types",
            ),
        ];
        for (text, setting) in cases {
            let err = build(text, Overrides::default()).unwrap_err().to_string();
            assert!(err.contains(setting), "expected {setting:?} in: {err}");
        }
    }

    const EVENTHUBS: &str = "[activities]\nsource = \"eventhubs\"\n[alerts]\nenabled = false\n[syslog]\nto = [\"tcp://127.0.0.1:5140\"]\n[eventhubs]\n";

    #[test]
    fn eventhubs_from_a_connection_string_file_needs_no_portal() {
        let dir = tempfile::tempdir().unwrap();
        let conn = dir.path().join("conn");
        std::fs::write(
            &conn,
            "Endpoint=sb://contoso-xdr.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=a2V5;EntityPath=hub1\n",
        )
        .unwrap();
        let text = format!("{EVENTHUBS}connection_string_file = \"{}\"\ncommit_interval = \"500ms\"\n", conn.display());
        let config = build(&text, Overrides::default()).unwrap();
        assert!(config.api.is_none() && config.activities.is_none() && config.alerts.is_none());
        let e = config.eventhubs.unwrap();
        assert_eq!(e.bootstrap_servers, "contoso-xdr.servicebus.windows.net:9093");
        assert_eq!(e.event_hub, "hub1", "the connection string's EntityPath");
        assert_eq!(e.consumer_group, "cefwire");
        assert_eq!(e.commit_interval, Duration::from_millis(500));
        assert!(matches!(&e.auth, KafkaAuth::ConnectionString(s) if s.expose().contains("SharedAccessKey=a2V5")));
        assert!(!format!("{e:?}").contains("a2V5"), "the secret shows in Debug");
    }

    #[test]
    fn eventhubs_errors_name_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "s3cr3t\n").unwrap();
        let cases = [
            (format!("{EVENTHUBS}namespace = \"x\"\n"), "eventhubs.connection_string_file"),
            (format!("{EVENTHUBS}auth = \"kerberos\"\n"), "eventhubs.auth"),
            (format!("{EVENTHUBS}auth = \"none\"\n"), "eventhubs.namespace"),
            (
                format!("{EVENTHUBS}auth = \"none\"\nbootstrap_servers = \"h:1\"\ncommit_interval = \"100ms\"\n"),
                "eventhubs.commit_interval",
            ),
            (
                format!("{EVENTHUBS}auth = \"none\"\nbootstrap_servers = \"h:1\"\nstart_at = \"middle\"\n"),
                "eventhubs.start_at",
            ),
            (format!("{EVENTHUBS}auth = \"entra\"\nnamespace = \"x\"\ntenant_id = \"t\"\n"), "eventhubs.client_id"),
            (EVENTHUBS.replace("\"eventhubs\"\n[alerts]", "\"kafka\"\n[alerts]"), "activities.source"),
        ];
        for (text, setting) in cases {
            let err = build(&text, Overrides::default()).unwrap_err().to_string();
            assert!(err.contains(setting), "expected {setting:?} in: {err}");
        }
        let text = format!(
            "{EVENTHUBS}auth = \"entra\"\nnamespace = \"contoso-xdr\"\ntenant_id = \"t\"\nclient_id = \"c\"\nclient_secret_file = \"{}\"\n",
            secret.display()
        );
        let e = build(&text, Overrides::default()).unwrap().eventhubs.unwrap();
        let KafkaAuth::EntraApp(app) = &e.auth else { panic!("{:?}", e.auth) };
        assert_eq!(app.credentials.scope, "https://contoso-xdr.servicebus.windows.net/.default");
        assert_eq!(app.credentials.token_url, "https://login.microsoftonline.com/t/oauth2/v2.0/token");
        assert!(!format!("{e:?}").contains("s3cr3t"));
    }
}
