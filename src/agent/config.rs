//! The agent's settings — the TOML file's values with the command-line
//! flags on top ([`AgentSettings`], [`Overrides`]) — and their validation
//! into the agent's [`AgentConfig`]. The API, syslog and CEF settings are
//! validated by [`crate::settings`], exactly as for the other commands;
//! what only the agent has (window, overlap, poll interval, directories,
//! metrics, the two streams and where they come from, the Event Hubs
//! source) is checked here; the Graph source's `[graph]` by
//! [`crate::settings`] too. Everything that can be
//! checked without the network is checked, and each error names the
//! setting to fix, so a bad configuration stops the agent before it sends
//! or fetches anything.

use crate::api::{ApiConfig, ClientCredentials, DEFAULT_TOKEN_URL, RetryPolicy, paging};
use crate::azure::archive::ArchiveConfig;
use crate::cef::{CefOptions, KindChoice};
use crate::eventhubs::settings::{MIN_COMMIT_INTERVAL, MIN_STALL_AFTER, oauth_scope};
use crate::eventhubs::{ConnectionString, EntraApp, EventHubsSettings, KafkaAuth, Secret, StartAt};
use crate::graph::GraphConfig;
use crate::send::SendConfig;
use crate::settings::{
    ApiDefaults, ApiSettings, CefSettings, FromText, GraphSettings, SendDefaults, SendSettings, SettingError, Source,
    StorageSettings, extra_filters, names, readable_file, secret_from_file, secret_from_file_or_env,
};
use crate::time::HumanDuration;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// An error about an agent-only setting.
fn bad(setting: &str, reason: impl ToString) -> SettingError {
    SettingError { setting: setting.to_owned(), reason: reason.to_string() }
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
    /// Alerts from Microsoft Graph `alerts_v2` (`[alerts] source = "graph"`).
    pub graph: Option<GraphConfig>,
    /// Activities from the streaming archive (`[activities] source = "storage"`).
    pub storage: Option<ArchiveConfig>,
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

/// The agent's settings as given: the file's values with the flags on top.
#[derive(Clone, Debug, Default)]
pub struct AgentSettings {
    pub api: ApiSettings,
    pub send: SendSettings,
    pub cef: CefSettings,
    pub activities: StreamSettings,
    pub alerts: StreamSettings,
    pub eventhubs: EventHubsSection,
    pub graph: GraphSettings,
    pub storage: StorageSection,
    pub state_directory: Option<PathBuf>,
    pub logs_directory: Option<PathBuf>,
    pub poll_interval: Option<Duration>,
    pub window: Option<Duration>,
    pub overlap: Option<Duration>,
    /// `host:port` of the Prometheus endpoint.
    pub metrics: Option<String>,
    pub scan_page_size: Option<u64>,
    pub once: bool,
}

/// `[activities]` / `[alerts]` as given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamSettings {
    pub enabled: bool,
    /// Where the records come from: activities `"mda"` (default) or
    /// `"eventhubs"`; alerts `"mda"` (default) or `"graph"`.
    pub source: Option<String>,
    /// Extra API filters as a JSON object.
    pub filters: Option<String>,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self { enabled: true, source: None, filters: None }
    }
}

/// `[eventhubs]`: where Defender XDR streams `CloudAppEvents`, read over
/// the Kafka protocol by a consumer group. The connection string is never
/// written here: `connection_string_file` or the environment variable
/// [`CONNECTION_STRING_ENV`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventHubsSection {
    /// The namespace: `contoso-xdr` or `contoso-xdr.servicebus.windows.net`
    /// (default: the one in the connection string).
    pub namespace: Option<String>,
    /// `host:port[,…]` instead of the namespace (a local Kafka-protocol broker).
    pub bootstrap_servers: Option<String>,
    /// The event hub (default: the connection string's `EntityPath`, else
    /// `insights-logs-advancedhunting-cloudappevents`).
    pub event_hub: Option<String>,
    /// Shared by every cefwire instance of one deployment (default `cefwire`).
    pub consumer_group: Option<String>,
    /// `"connection-string"` (default), `"entra"` (OAUTHBEARER) or
    /// `"none"` (plaintext, local brokers only).
    pub auth: Option<String>,
    /// A file holding the connection string (first line).
    pub connection_string_file: Option<PathBuf>,
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    /// Override of the Entra ID token URL (sovereign clouds).
    pub token_url: Option<String>,
    /// `"earliest"` (default: everything the hub keeps) or `"latest"`.
    pub start_at: Option<String>,
    /// Per partition at most one commit this often (default `"1s"`, at least `"250ms"`).
    pub commit_interval: Option<FromText<HumanDuration>>,
    /// PEM file of CA certificates to trust for the broker.
    pub ca_file: Option<PathBuf>,
    /// Kafka `session.timeout.ms` (default `"30s"`, as Event Hubs recommends).
    pub session_timeout: Option<FromText<HumanDuration>>,
    /// Records waiting and nothing fetched from a partition this long is
    /// reported as a stall (default `"5m"`, at least `"1s"`).
    pub stall_after: Option<FromText<HumanDuration>>,
}

/// `[storage]`: the Defender XDR streaming archive in an Azure Storage
/// account. The SAS token, account key and client secret are never
/// written here: files, or the environment variables `CEFWIRE_STORAGE_SAS`,
/// `CEFWIRE_STORAGE_KEY`, `CEFWIRE_CLIENT_SECRET`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    /// `https://<account>.blob.core.windows.net`.
    pub account_url: Option<String>,
    pub account: Option<String>,
    /// Default `insights-logs-advancedhunting-cloudappevents`.
    pub container: Option<String>,
    /// Only blobs under this, e.g. `tenantId=<guid>/`.
    pub prefix: Option<String>,
    /// `"sas"`, `"key"` or `"entra"` (default: the one whose secret is given).
    pub auth: Option<String>,
    pub sas_file: Option<PathBuf>,
    pub account_key_file: Option<PathBuf>,
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    pub token_url: Option<String>,
    pub ca_file: Option<PathBuf>,
    /// Accept a plain `http://` account URL beyond loopback.
    pub allow_http: Option<bool>,
    /// Blobs of the hours within this much before now are read (default `"48h"`).
    pub look_back: Option<FromText<HumanDuration>>,
    /// The longest line read; a longer one is skipped and rejected.
    pub max_line_bytes: Option<u64>,
}

impl StorageSection {
    /// As the shared storage settings (validated there).
    pub fn settings(&self) -> StorageSettings {
        StorageSettings {
            account_url: self.account_url.clone(),
            account: self.account.clone(),
            container: self.container.clone(),
            prefix: self.prefix.clone(),
            auth: self.auth.clone(),
            sas_file: self.sas_file.clone(),
            account_key_file: self.account_key_file.clone(),
            tenant_id: self.tenant_id.clone(),
            client_id: self.client_id.clone(),
            client_secret_file: self.client_secret_file.clone(),
            client_secret: None,
            token_url: self.token_url.clone(),
            ca_file: self.ca_file.clone(),
            allow_http: self.allow_http.unwrap_or(false),
            look_back: self.look_back.as_ref().map(|FromText(HumanDuration(d))| *d),
            max_line_bytes: self.max_line_bytes,
            // Few retries per request: the loop keeps trying every poll,
            // and marks the account as failing in the meantime.
            retries: Some(3),
            retry_delay: None,
        }
    }
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

impl Overrides {
    /// Puts the flags on top of the file's settings.
    pub fn apply(self, settings: &mut AgentSettings) {
        if self.portal_url.is_some() {
            settings.api.portal_url = self.portal_url;
        }
        if let Some(token) = self.token {
            settings.api.token = Some(token);
            settings.api.token_file = None;
        }
        if self.proxy.is_some() {
            settings.api.proxy = self.proxy;
        }
        if self.logs_directory.is_some() {
            settings.logs_directory = self.logs_directory;
        }
        if self.state_directory.is_some() {
            settings.state_directory = self.state_directory;
        }
        if !self.to.is_empty() {
            settings.send.to = self.to;
        }
        if self.metrics.is_some() {
            settings.metrics = self.metrics;
        }
        settings.once |= self.once;
    }
}

/// Few retries per request: the agent's own loop keeps trying, and marks
/// the API as failing in the meantime.
const API_DEFAULTS: ApiDefaults = ApiDefaults {
    retries: 3,
    retry_delay: Duration::from_secs(1),
    max_retry_delay: Duration::from_secs(30),
    request_timeout: Duration::from_secs(120),
};

const SEND_DEFAULTS: SendDefaults = SendDefaults {
    // The agent never gives up on its SIEM: it waits, keeps the cursor and
    // reports the outage in its health.
    give_up_after: None,
    drain_timeout: Duration::from_secs(5),
    // Room for a page in flight plus a whole resend window, so re-sending
    // after a reconnect never has to wait for a batch to come back.
    batches: 64,
};

impl AgentConfig {
    /// Validates `settings`. `default_state_dir` is used when no state
    /// directory is given (nor `$STATE_DIRECTORY`).
    pub fn build(settings: AgentSettings, default_state_dir: PathBuf) -> Result<Self, SettingError> {
        let source = Source::AgentFile;
        let activities_on = settings.activities.enabled;
        let mut storage = None;
        let (activities, eventhubs) = match settings.activities.source.as_deref().unwrap_or("mda") {
            _ if !activities_on => (None, None),
            "mda" => (stream(&settings.activities, names::FILTERS_ACTIVITIES)?, None),
            "eventhubs" => (None, Some(eventhubs_settings(&settings.eventhubs)?)),
            "storage" => {
                storage = Some(settings.storage.settings().validate(Source::AgentFile)?);
                (None, None)
            }
            other => {
                return Err(bad(
                    "activities.source",
                    format!("{other:?} is not \"mda\", \"storage\" or \"eventhubs\""),
                ));
            }
        };
        let (alerts, graph) = match settings.alerts.source.as_deref().unwrap_or("mda") {
            _ if !settings.alerts.enabled => (None, None),
            "mda" => (stream(&settings.alerts, names::FILTERS_ALERTS)?, None),
            "graph" if settings.alerts.filters.is_some() => {
                return Err(bad("alerts.filters", "is for source = \"mda\"; Graph takes graph.filter (OData)"));
            }
            "graph" => {
                let mut graph = settings.graph.validate(source)?;
                // As for the API: few retries per request; the stream's own
                // loop keeps trying and marks Graph failing meanwhile.
                graph.retry = RetryPolicy {
                    first_delay: API_DEFAULTS.retry_delay,
                    max_delay: API_DEFAULTS.max_retry_delay,
                    max_attempts: API_DEFAULTS.retries,
                };
                (None, Some(graph))
            }
            other => return Err(bad("alerts.source", format!("{other:?} is not \"mda\" or \"graph\""))),
        };
        if activities.is_none() && alerts.is_none() && eventhubs.is_none() && graph.is_none() && storage.is_none() {
            return Err(bad("activities.enabled / alerts.enabled", "both data types are switched off; nothing to do"));
        }
        let api = match activities.is_some() || alerts.is_some() {
            true => Some(settings.api.validate(source, &API_DEFAULTS)?),
            false => None,
        };
        // Activity links point into the tenant's own portal (when known).
        let portal_url = api.as_ref().map(|api| api.portal_url.clone()).or(settings.api.portal_url.clone());
        let cef = CefSettings { kind: KindChoice::Auto, portal_url, ..settings.cef };
        let cef = cef.validate(source, true)?;
        let send = settings.send.validate(source, &SEND_DEFAULTS, cef.header.pri.is_some())?;
        let window = positive(settings.window, Duration::from_secs(48 * 3600), "window")?;
        let overlap = positive(settings.overlap, Duration::from_secs(5 * 60), "overlap")?;
        if overlap >= window {
            return Err(bad("overlap", "must be shorter than the window"));
        }
        let poll_interval = positive(settings.poll_interval, Duration::from_secs(60), "poll_interval")?;
        let state_dir = settings
            .state_directory
            .or_else(|| std::env::var_os("STATE_DIRECTORY").filter(|d| !d.is_empty()).map(PathBuf::from))
            .unwrap_or(default_state_dir);
        // The checkpoint, the resend window and rejected records: the
        // agent's user only.
        writable_dir(&state_dir, 0o700, "state_directory (--state-dir)")?;
        let logs_dir = settings
            .logs_directory
            .or_else(|| std::env::var_os("LOGS_DIRECTORY").filter(|d| !d.is_empty()).map(PathBuf::from));
        if let Some(dir) = &logs_dir {
            // Logs are group-readable (an operator, a log shipper).
            writable_dir(dir, 0o750, "logs_directory (--logs-directory)")?;
        }
        let metrics = match settings.metrics.as_deref() {
            None => None,
            Some(addr) => Some(addr.parse::<SocketAddr>().map_err(|_| {
                bad("metrics (--metrics)", format!("{addr:?} is not a host:port address like 127.0.0.1:9100"))
            })?),
        };
        let scan_page_size = settings.scan_page_size.unwrap_or(paging::SCAN_PAGE);
        if !(500..=paging::SCAN_PAGE).contains(&scan_page_size) {
            return Err(bad("scan_page_size", format!("{scan_page_size} must be between 500 and 5000")));
        }
        Ok(Self {
            api,
            send,
            cef,
            activities,
            alerts,
            eventhubs,
            graph,
            storage,
            state_dir,
            logs_dir,
            poll_interval,
            window_ms: window.as_millis() as i64,
            overlap_ms: overlap.as_millis() as i64,
            slice_ms: 3_600_000,
            metrics,
            syslog_wait: Duration::from_secs(5),
            resend_window_bytes: 8 << 20,
            scan_page_size,
            once: settings.once,
        })
    }
}

fn positive(value: Option<Duration>, default: Duration, setting: &str) -> Result<Duration, SettingError> {
    let value = value.unwrap_or(default);
    if value.is_zero() {
        return Err(bad(setting, "must be longer than zero"));
    }
    Ok(value)
}

/// Creates the directory if needed (what it creates gets `mode`, whatever
/// the umask allows beyond it) and checks that files can be written in it.
fn writable_dir(dir: &Path, mode: u32, setting: &str) -> Result<(), SettingError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(|e| bad(setting, format!("cannot create {}: {e}", dir.display())))?;
    let probe = dir.join(".cefwire-write-test");
    std::fs::write(&probe, b"ok").map_err(|e| bad(setting, format!("cannot write in {}: {e}", dir.display())))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

fn stream(settings: &StreamSettings, filters: crate::settings::Setting) -> Result<Option<StreamConfig>, SettingError> {
    if !settings.enabled {
        return Ok(None);
    }
    let extra_filters = match &settings.filters {
        None => Vec::new(),
        Some(json) => extra_filters(json, filters, Source::AgentFile)?,
    };
    Ok(Some(StreamConfig { extra_filters }))
}

/// The environment variable that may hold the Event Hubs connection string.
pub const CONNECTION_STRING_ENV: &str = "CEFWIRE_EVENTHUBS_CONNECTION_STRING";

/// Validates the `[eventhubs]` section (the agent's source, and `backfill
/// --source eventhubs` reading the same file).
pub fn eventhubs_settings(section: &EventHubsSection) -> Result<EventHubsSettings, SettingError> {
    let connection_string = || -> Result<Secret, SettingError> {
        let setting = "eventhubs.connection_string_file";
        let secret = secret_from_file_or_env(section.connection_string_file.as_deref(), CONNECTION_STRING_ENV)
            .map_err(|e| bad(setting, e))?
            .ok_or_else(|| {
                bad(
                    setting,
                    format!(
                        "required (or the environment variable {CONNECTION_STRING_ENV}): the namespace's connection \
                         string"
                    ),
                )
            })?;
        Ok(Secret::new(secret))
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
            let secret = secret_from_file(path).map_err(|e| bad("eventhubs.client_secret_file", e))?;
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
    if let Some(FromText(HumanDuration(interval))) = section.commit_interval {
        settings.commit_interval = interval;
        if settings.commit_interval < MIN_COMMIT_INTERVAL {
            return Err(bad(
                "eventhubs.commit_interval",
                "must be at least 250ms (Event Hubs allows 4 commits/s per partition)",
            ));
        }
    }
    if let Some(FromText(HumanDuration(timeout))) = section.session_timeout {
        if timeout.is_zero() {
            return Err(bad("eventhubs.session_timeout", "must be longer than zero"));
        }
        settings.timeouts.session = timeout;
    }
    if let Some(FromText(HumanDuration(after))) = section.stall_after {
        if after < MIN_STALL_AFTER {
            return Err(bad("eventhubs.stall_after", "must be at least 1s"));
        }
        settings.stall_after = after;
    }
    if let Some(ca) = &section.ca_file {
        readable_file(ca).map_err(|e| bad("eventhubs.ca_file", e))?;
        settings.ca_file = Some(ca.clone());
    }
    if settings.event_hub.is_empty() || settings.consumer_group.is_empty() {
        return Err(bad("eventhubs.event_hub / eventhubs.consumer_group", "must not be empty"));
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::config_file::ConfigFile;
    use crate::api::{ApiAuth, RateLimit};
    use crate::send::Transport;

    /// Reads `text` as the file, puts `overrides` on top and validates:
    /// the one error a user would see, as text.
    fn build(text: &str, overrides: Overrides) -> Result<AgentConfig, String> {
        let dir = tempfile::tempdir().unwrap();
        let mut settings =
            ConfigFile::parse(text).map_err(|e| e.to_string())?.into_settings().map_err(|e| e.to_string())?;
        overrides.apply(&mut settings);
        AgentConfig::build(settings, dir.path().join("state")).map_err(|e| e.to_string())
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

    /// The state directory got whatever the umask allowed (0755 under the
    /// usual 022): records kept there carry user data. Now a directory the
    /// agent creates is 0700 (logs 0750), whatever the umask adds.
    #[test]
    fn the_directories_the_agent_creates_are_its_own() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("deep/state");
        let logs = dir.path().join("logs");
        let text = format!("logs_directory = \"{}\"\n{MINIMAL}", logs.display());
        let settings = ConfigFile::parse(&text).unwrap().into_settings().unwrap();
        AgentConfig::build(settings, state.clone()).unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state) & 0o077, 0, "state directory {:o}", mode(&state));
        assert_eq!(mode(&logs) & 0o027, 0, "logs directory {:o}", mode(&logs));
    }

    /// `allow_http` in the file lets a plain portal through (with a
    /// warning); without it the portal is refused, naming the setting.
    #[test]
    fn a_plain_http_portal_needs_allow_http() {
        let plain = MINIMAL.replace("https://contoso", "http://contoso");
        assert!(build(&plain, Overrides::default()).unwrap_err().contains("allow_http = true"));
        assert!(build(&format!("allow_http = true\n{plain}"), Overrides::default()).is_ok());
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
            let err = build(text, Overrides::default()).unwrap_err();
            assert!(err.contains(setting), "expected {setting:?} in: {err}");
        }
    }

    #[test]
    fn graph_alerts_need_no_portal_and_keep_the_secret_out_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "g-s3cr3t\n").unwrap();
        let graph = format!(
            "[activities]\nenabled = false\n[alerts]\nsource = \"graph\"\n[syslog]\nto = [\"tcp://127.0.0.1:5140\"]\n\
             [graph]\ntenant_id = \"t\"\nclient_id = \"c\"\nclient_secret_file = \"{}\"\ntop = 500\n",
            secret.display()
        );
        let config = build(&graph, Overrides::default()).unwrap();
        assert!(config.api.is_none() && config.alerts.is_none());
        let g = config.graph.unwrap();
        assert_eq!((g.top, g.filter.as_deref()), (500, Some(crate::graph::DEFAULT_FILTER)));
        assert_eq!(g.retry.max_attempts, API_DEFAULTS.retries, "the agent's few retries");
        assert!(!format!("{g:?}").contains("g-s3cr3t"));
        // Beside activities from the API: the API serves activities only.
        let beside = format!(
            "{MINIMAL}[alerts]\nsource = \"graph\"\n[graph]\ntenant_id = \"t\"\nclient_id = \"c\"\nclient_secret_file = \"{}\"\n",
            secret.display()
        );
        let config = build(&beside, Overrides::default()).unwrap();
        assert!(
            config.api.is_some() && config.activities.is_some() && config.alerts.is_none() && config.graph.is_some()
        );
        let cases = [
            (graph.replace("tenant_id = \"t\"\n", ""), "graph.tenant_id"),
            (graph.replace("top = 500", "top = 0"), "graph.top"),
            (graph.replace("top = 500", "client_secret = \"inline\""), "client_secret"),
            (graph.replace("source = \"graph\"", "source = \"graph\"\nfilters = { a = 1 }"), "alerts.filters"),
            (graph.replace("source = \"graph\"", "source = \"xdr\""), "alerts.source"),
        ];
        for (text, setting) in cases {
            let err = build(&text, Overrides::default()).unwrap_err();
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
        let text = format!(
            "{EVENTHUBS}connection_string_file = \"{}\"\ncommit_interval = \"500ms\"\nstall_after = \"10m\"\n",
            conn.display()
        );
        let config = build(&text, Overrides::default()).unwrap();
        assert!(config.api.is_none() && config.activities.is_none() && config.alerts.is_none());
        let e = config.eventhubs.unwrap();
        assert_eq!(e.bootstrap_servers, "contoso-xdr.servicebus.windows.net:9093");
        assert_eq!(e.event_hub, "hub1", "the connection string's EntityPath");
        assert_eq!(e.consumer_group, "cefwire");
        assert_eq!(e.commit_interval, Duration::from_millis(500));
        assert_eq!(e.stall_after, Duration::from_secs(600));
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
                format!("{EVENTHUBS}auth = \"none\"\nbootstrap_servers = \"h:1\"\nstall_after = \"500ms\"\n"),
                "eventhubs.stall_after",
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

    #[test]
    fn storage_needs_no_portal_and_its_errors_name_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let sas = dir.path().join("sas");
        std::fs::write(&sas, "sv=2021-08-06&sp=rl&sig=S3CR3T\n").unwrap();
        let base = "[activities]\nsource = \"storage\"\n[alerts]\nenabled = false\n[syslog]\nto = [\"tcp://127.0.0.1:5140\"]\n[storage]\n";
        let text = format!(
            "{base}account_url = \"https://contosoxdr.blob.core.windows.net\"\nsas_file = \"{}\"\nlook_back = \"6h\"\nprefix = \"tenantId=t/\"\n",
            sas.display()
        );
        let config = build(&text, Overrides::default()).unwrap();
        assert!(config.api.is_none() && config.activities.is_none());
        let storage = config.storage.unwrap();
        assert_eq!((storage.blob.account.as_str(), storage.prefix.as_str()), ("contosoxdr", "tenantId=t/"));
        assert_eq!(storage.look_back_ms, 6 * 3_600_000);
        assert_eq!(storage.blob.retry.max_attempts, 3, "the loop retries, not each request for long");
        assert!(!format!("{storage:?}").contains("S3CR3T"));
        for (text, setting) in [
            (base.to_owned(), "storage.account_url: required"),
            (format!("{base}account_url = \"https://a.blob.core.windows.net\"\n"), "storage.auth: say how"),
            (
                format!("{base}account_url = \"https://a.blob.core.windows.net\"\nauth = \"entra\"\n"),
                "storage.tenant_id",
            ),
            (format!("{base}sas = \"x\"\n"), "storage.sas"),
        ] {
            let err = build(&text, Overrides::default()).unwrap_err();
            assert!(err.contains(setting), "expected {setting:?} in: {err}");
        }
    }
}
