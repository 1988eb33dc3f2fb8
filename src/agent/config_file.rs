//! The agent's TOML configuration file, as written by people: every key
//! optional, unknown keys refused (a typo must not be silently ignored).
//! Each value is read by its type's one parser, the same the command line
//! uses (`"60s"`, `"30/min"`, `"local0"`; see `settings/from_text.rs`).
//! [`ConfigFile::into_settings`] turns the file into the agent's raw
//! settings, which `agent/config.rs` validates after the flags were put
//! on top.

use super::config::{AgentSettings, EventHubsSection, StorageSection, StreamSettings};
use crate::api::RateLimit;
use crate::settings::{
    ApiSettings, CefSettings, FramingSetting, FromText, GraphSettings, HostnameSetting, SendSettings, SettingError,
};
use crate::syslog::header::{Facility, HeaderLayout, Severity, TimestampStyle};
use crate::time::HumanDuration;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `https://<tenant>.<region>.portal.cloudappsecurity.com`
    pub portal_url: Option<String>,
    pub state_directory: Option<PathBuf>,
    pub logs_directory: Option<PathBuf>,
    /// How often to poll when caught up (`"60s"`).
    pub poll_interval: Option<FromText<HumanDuration>>,
    /// How far back the first start (or a start after a long stop) reads.
    pub window: Option<FromText<HumanDuration>>,
    /// How much before the cursor each poll re-reads (late indexing).
    pub overlap: Option<FromText<HumanDuration>>,
    /// `host:port` for the Prometheus endpoint.
    pub metrics: Option<String>,
    pub proxy: Option<String>,
    /// Accept a plain `http://` portal or token URL beyond loopback (the
    /// credentials then travel in clear text; a warning says so).
    pub allow_http: Option<bool>,
    /// PEM file of CA certificates to trust for the API.
    pub ca_file: Option<PathBuf>,
    /// API requests allowed, all endpoints together: `"30/min"`, or a bare
    /// number per minute (`30`), as `--rate-limit` takes it.
    pub rate_limit: Option<FromText<RateLimit>>,
    /// Activities per scan page (500-5000; default 5000).
    pub scan_page_size: Option<u64>,
    #[serde(default)]
    pub auth: AuthSection,
    #[serde(default)]
    pub activities: StreamSection,
    #[serde(default)]
    pub alerts: StreamSection,
    #[serde(default)]
    pub syslog: SyslogSection,
    #[serde(default)]
    pub cef: CefSection,
    /// The Event Hubs source (`[activities] source = "eventhubs"`).
    #[serde(default)]
    pub eventhubs: EventHubsSection,
    /// The Microsoft Graph source (`[alerts] source = "graph"`).
    #[serde(default)]
    pub graph: GraphSection,
    /// The Storage source (`[activities] source = "storage"`).
    #[serde(default)]
    pub storage: StorageSection,
}

/// `[graph]`: the Entra ID application reading Graph `alerts_v2`. The
/// secret is never written here: `client_secret_file` or the environment
/// variable `CEFWIRE_GRAPH_CLIENT_SECRET`. `proxy`, `ca_file` and
/// `allow_http` are the top-level ones.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphSection {
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    /// `https://graph.microsoft.com` (default), a national cloud, an emulator.
    pub url: Option<String>,
    /// Override of the Entra ID token URL (`{tenant}` is replaced).
    pub token_url: Option<String>,
    /// OData `$filter` ANDed with the time bound (default: Defender for
    /// Cloud Apps alerts only; `""`: every alert).
    pub filter: Option<String>,
    /// Alerts per page (1-1000, default 1000).
    pub top: Option<u32>,
}

/// `[auth]`: a legacy token, or an Entra ID application.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    pub token: Option<String>,
    /// A file holding the token (kept out of the config file).
    pub token_file: Option<PathBuf>,
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    /// Override of the Entra ID token URL (tests, sovereign clouds).
    pub token_url: Option<String>,
}

/// `[activities]` / `[alerts]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSection {
    pub enabled: Option<bool>,
    /// Where the records come from: activities `"mda"` (default) or
    /// `"eventhubs"`; alerts `"mda"` (default) or `"graph"`.
    pub source: Option<String>,
    /// API filters ANDed with the agent's time filter, e.g.
    /// `filters = { service = { eq = [11161] } }`.
    pub filters: Option<BTreeMap<String, toml::Value>>,
}

/// `[syslog]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogSection {
    /// Destinations: `tcp://host:port`, `udp://…`, `tls://…`, `relp://…`, `relp+tls://…`.
    pub to: Option<Vec<String>>,
    /// Use the next destination while the first is down (default: every
    /// destination gets every message).
    pub failover: Option<bool>,
    /// `"auto"`, `"lf"` or `"octet-counting"` (TLS always counts octets).
    pub framing: Option<FromText<FramingSetting>>,
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub max_message_bytes: Option<usize>,
    /// relp://: messages sent and not yet acknowledged, at most.
    pub relp_window: Option<usize>,
}

/// `[cef]`: as the `convert`/`replay` flags of the same names.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CefSection {
    pub device_version: Option<String>,
    pub time_format: Option<FromText<TimestampStyle>>,
    pub header: Option<FromText<HeaderLayout>>,
    pub pri: Option<bool>,
    pub facility: Option<FromText<Facility>>,
    pub severity: Option<FromText<Severity>>,
    /// `true`: this machine's name; a string: that name; `false`: none.
    pub hostname: Option<HostnameValue>,
}

/// `hostname = true | false | "name"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostnameValue(pub HostnameSetting);

impl<'de> Deserialize<'de> for HostnameValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Choice;
        impl serde::de::Visitor<'_> for Choice {
            type Value = HostnameSetting;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("true, false or a name in quotes")
            }

            fn visit_bool<E: serde::de::Error>(self, on: bool) -> Result<HostnameSetting, E> {
                Ok(if on { HostnameSetting::ThisMachine } else { HostnameSetting::Omitted })
            }

            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<HostnameSetting, E> {
                Ok(HostnameSetting::Named(name.to_owned()))
            }
        }
        deserializer.deserialize_any(Choice).map(HostnameValue)
    }
}

fn value<T>(text: Option<FromText<T>>) -> Option<T> {
    text.map(|FromText(value)| value)
}

/// Why the file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {reason}")]
    Invalid { path: PathBuf, reason: ConfigTextError },
}

/// What in the file's text is wrong, and where: the line and the key when
/// the TOML parser says where.
#[derive(Debug, thiserror::Error)]
pub enum ConfigTextError {
    #[error("line {line} ({key}): {message}")]
    AtKey { line: usize, key: String, message: String },
    #[error("line {line}: {message}")]
    AtLine { line: usize, message: String },
    #[error("{message}")]
    Unplaced { message: String },
}

impl ConfigFile {
    /// Reads and parses `path`; errors name the file, the key and the line.
    pub fn load(path: &Path) -> Result<Self, ConfigFileError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read { path: path.to_owned(), source })?;
        Self::parse(&text).map_err(|reason| ConfigFileError::Invalid { path: path.to_owned(), reason })
    }

    /// Parses the file's text; an error names the line and the key.
    pub fn parse(text: &str) -> Result<Self, ConfigTextError> {
        toml::from_str(text).map_err(|e| {
            let message = e.message().to_owned();
            let Some(span) = e.span() else { return ConfigTextError::Unplaced { message } };
            let line = text[..span.start].matches('\n').count() + 1;
            match key_at(text, span.start) {
                Some(key) => ConfigTextError::AtKey { line, key, message },
                None => ConfigTextError::AtLine { line, message },
            }
        })
    }

    /// The file's settings, for the flags to go on top and validation.
    pub fn into_settings(self) -> Result<AgentSettings, SettingError> {
        let ConfigFile { auth, syslog, cef, graph, .. } = self;
        let graph = GraphSettings {
            tenant_id: graph.tenant_id,
            client_id: graph.client_id,
            client_secret_file: graph.client_secret_file,
            url: graph.url,
            token_url: graph.token_url,
            filter: graph.filter,
            top: graph.top,
            ca_file: self.ca_file.clone(),
            proxy: self.proxy.clone(),
            allow_http: self.allow_http.unwrap_or(false),
        };
        Ok(AgentSettings {
            api: ApiSettings {
                portal_url: self.portal_url,
                token: auth.token,
                token_file: auth.token_file,
                tenant_id: auth.tenant_id,
                client_id: auth.client_id,
                client_secret: auth.client_secret,
                client_secret_file: auth.client_secret_file,
                token_url: auth.token_url,
                scope: None,
                proxy: self.proxy,
                ca_file: self.ca_file,
                rate_limit: value(self.rate_limit),
                allow_http: self.allow_http.unwrap_or(false),
                retries: None,
                retry_delay: None,
                request_timeout: None,
            },
            send: SendSettings {
                to: syslog.to.unwrap_or_default(),
                failover: syslog.failover.unwrap_or(false),
                framing: value(syslog.framing),
                max_message_bytes: syslog.max_message_bytes,
                ca_file: syslog.ca_file,
                client_cert: syslog.client_cert,
                client_key: syslog.client_key,
                relp_window: syslog.relp_window,
                ..SendSettings::default()
            },
            cef: CefSettings {
                device_version: cef.device_version,
                time_format: value(cef.time_format),
                header: value(cef.header),
                pri: cef.pri,
                facility: value(cef.facility),
                severity: value(cef.severity),
                hostname: cef.hostname.map(|HostnameValue(choice)| choice),
                ..CefSettings::default()
            },
            activities: self.activities.into_settings("activities")?,
            alerts: self.alerts.into_settings("alerts")?,
            eventhubs: self.eventhubs,
            graph,
            storage: self.storage,
            state_directory: self.state_directory,
            logs_directory: self.logs_directory,
            poll_interval: value(self.poll_interval).map(|d| d.0),
            window: value(self.window).map(|d| d.0),
            overlap: value(self.overlap).map(|d| d.0),
            metrics: self.metrics,
            scan_page_size: self.scan_page_size,
            once: false,
        })
    }
}

impl StreamSection {
    fn into_settings(self, name: &str) -> Result<StreamSettings, SettingError> {
        let filters = match &self.filters {
            None => None,
            Some(filters) => Some(
                serde_json::to_string(filters)
                    .map_err(|e| SettingError { setting: format!("{name}.filters"), reason: e.to_string() })?,
            ),
        };
        Ok(StreamSettings { enabled: self.enabled.unwrap_or(true), source: self.source, filters })
    }
}

/// The dotted key (`syslog.framing`) of the value or key at `offset`: the
/// name before `=` on its line, under the last `[table]` header above it.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next()?;
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && l.ends_with(']'))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim());
    let (name, _) = line.split_once('=')?;
    let name = name.trim();
    if name.is_empty() || name.starts_with('#') {
        return None;
    }
    Some(match table {
        Some(table) => format!("{table}.{name}"),
        None => name.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_example_parses() {
        let text = include_str!("../../contrib/cefwire.toml");
        let config = ConfigFile::parse(text).unwrap();
        assert!(config.portal_url.as_deref().unwrap().starts_with("https://"));
        assert_eq!(config.syslog.to.as_ref().unwrap().len(), 1);
        let settings = config.into_settings().unwrap();
        assert_eq!(settings.activities.filters.as_deref(), Some(r#"{"service":{"eq":[11161,20893]}}"#));
        assert_eq!(settings.api.rate_limit, Some(RateLimit::SERVICE));
        assert_eq!(settings.cef.facility, Some(Facility::LOCAL0));
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name_and_line() {
        let err = ConfigFile::parse("portal_url = \"https://x\"\n\n[syslog]\nto = []\nprotocol = \"tcp\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("line 5 (syslog.protocol): unknown field `protocol`"), "{err}");
        let err = ConfigFile::parse("[activites]\nenabled = true\n").unwrap_err().to_string();
        assert!(err.contains("activites"), "{err}");
    }

    #[test]
    fn values_go_through_their_one_parser_and_errors_name_the_key() {
        let err = ConfigFile::parse("rate_limit = \"fast\"\n").unwrap_err().to_string();
        assert_eq!(err, "line 1 (rate_limit): \"fast\": the request count must be a positive integer (e.g. 30/min)");
        let err = ConfigFile::parse("window = \"2 fortnights\"\n").unwrap_err().to_string();
        assert!(err.starts_with("line 1 (window): unknown duration unit"), "{err}");
        let err = ConfigFile::parse("[syslog]\nto = []\n\n[cef]\nfacility = \"local9\"\n").unwrap_err().to_string();
        assert!(err.starts_with("line 5 (cef.facility): \"local9\" is not one of"), "{err}");
        let err = ConfigFile::parse("[cef]\nhostname = 5\n").unwrap_err().to_string();
        assert!(err.contains("true, false or a name in quotes"), "{err}");
        let file =
            ConfigFile::parse("rate_limit = 20\npoll_interval = 90\n[syslog]\nframing = \"octet-counting\"\n").unwrap();
        let settings = file.into_settings().unwrap();
        assert_eq!(settings.api.rate_limit, Some("20/min".parse().unwrap()));
        assert_eq!(settings.poll_interval, Some(std::time::Duration::from_secs(90)));
        assert_eq!(settings.send.framing, Some(FramingSetting::OctetCounting));
    }
}
