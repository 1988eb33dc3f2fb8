//! The agent's TOML configuration file, as written by people: every key
//! optional, unknown keys refused (a typo must not be silently ignored),
//! durations as text (`"60s"`, `"48h"`). Validation into the agent's
//! config happens in the CLI layer, which also applies flag overrides.

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
    pub poll_interval: Option<String>,
    /// How far back the first start (or a start after a long stop) reads.
    pub window: Option<String>,
    /// How much before the cursor each poll re-reads (late indexing).
    pub overlap: Option<String>,
    /// `host:port` for the Prometheus endpoint.
    pub metrics: Option<String>,
    pub proxy: Option<String>,
    /// PEM file of CA certificates to trust for the API.
    pub ca_file: Option<PathBuf>,
    /// API requests per minute (`30`), all endpoints together.
    pub rate_limit: Option<f64>,
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
}

/// `[eventhubs]`: where Defender XDR streams `CloudAppEvents`, read over
/// the Kafka protocol by a consumer group. The connection string is never
/// written here: `connection_string_file` or the environment variable
/// `CEFWIRE_EVENTHUBS_CONNECTION_STRING`.
#[derive(Debug, Default, Deserialize)]
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
    pub commit_interval: Option<String>,
    /// PEM file of CA certificates to trust for the broker.
    pub ca_file: Option<PathBuf>,
    /// Kafka `session.timeout.ms` (default `"30s"`, as Event Hubs recommends).
    pub session_timeout: Option<String>,
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
    /// `"eventhubs"`; alerts `"mda"`.
    pub source: Option<String>,
    /// API filters ANDed with the agent's time filter, e.g.
    /// `filters = { service = { eq = [11161] } }`.
    pub filters: Option<BTreeMap<String, toml::Value>>,
}

/// `[syslog]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogSection {
    /// Destinations: `tcp://host:port`, `udp://…`, `tls://…`.
    pub to: Option<Vec<String>>,
    /// Use the next destination while the first is down (default: every
    /// destination gets every message).
    pub failover: Option<bool>,
    /// `"lf"` or `"octet-counting"` (TLS always counts octets).
    pub framing: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub max_message_bytes: Option<usize>,
}

/// `[cef]`: as the `convert`/`replay` flags of the same names.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CefSection {
    pub device_version: Option<String>,
    pub time_format: Option<String>,
    pub header: Option<String>,
    pub pri: Option<bool>,
    pub facility: Option<String>,
    pub severity: Option<String>,
    /// `true`: this machine's name; a string: that name; `false`: none.
    pub hostname: Option<toml::Value>,
}

/// Why the file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl ConfigFile {
    /// Reads and parses `path`; errors name the file, the key and the line.
    pub fn load(path: &Path) -> Result<Self, ConfigFileError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read { path: path.to_owned(), source })?;
        Self::parse(&text).map_err(|message| ConfigFileError::Invalid { path: path.to_owned(), message })
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| {
            // toml's message already names the key; add the line.
            let line = e.span().map(|s| text[..s.start].matches('\n').count() + 1);
            match line {
                Some(line) => format!("line {line}: {}", e.message()),
                None => e.message().to_owned(),
            }
        })
    }
}

/// Converts TOML filters to the API's JSON object members
/// (`"service":{"eq":[11161]}`), for the request body.
pub fn filters_to_json_members(filters: &BTreeMap<String, toml::Value>) -> Result<String, String> {
    let object = serde_json::to_value(filters).map_err(|e| e.to_string())?;
    let text = serde_json::to_string(&object).map_err(|e| e.to_string())?;
    let inner = text.strip_prefix('{').and_then(|t| t.strip_suffix('}')).unwrap_or_default();
    Ok(inner.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_example_parses() {
        let text = include_str!("../../contrib/cefwire.toml");
        let config = ConfigFile::parse(text).unwrap();
        assert!(config.portal_url.unwrap().starts_with("https://"));
        assert_eq!(config.syslog.to.unwrap().len(), 1);
        let members = filters_to_json_members(&config.activities.filters.unwrap()).unwrap();
        assert_eq!(members, r#""service":{"eq":[11161,20893]}"#);
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name_and_line() {
        let err =
            ConfigFile::parse("portal_url = \"https://x\"\n\n[syslog]\nto = []\nprotocol = \"tcp\"\n").unwrap_err();
        assert!(err.contains("line 5") && err.contains("protocol"), "{err}");
        let err = ConfigFile::parse("[activites]\nenabled = true\n").unwrap_err();
        assert!(err.contains("activites"), "{err}");
    }

    #[test]
    fn wrong_types_are_refused() {
        let err = ConfigFile::parse("rate_limit = \"fast\"\n").unwrap_err();
        assert!(err.contains("line 1"), "{err}");
    }
}
