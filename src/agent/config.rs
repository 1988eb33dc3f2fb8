//! The agent's settings — the TOML file's values with the command-line
//! flags on top ([`AgentSettings`], [`Overrides`]) — and their validation
//! into the agent's [`AgentConfig`]. The API, syslog and CEF settings are
//! validated by [`crate::settings`], exactly as for the other commands;
//! what only the agent has (window, overlap, poll interval, directories,
//! metrics, the two streams) is checked here. Everything that can be
//! checked without the network is checked, and each error names the
//! setting to fix, so a bad configuration stops the agent before it sends
//! or fetches anything.

use crate::api::{ApiConfig, paging};
use crate::cef::{CefOptions, KindChoice};
use crate::send::SendConfig;
use crate::settings::{
    ApiDefaults, ApiSettings, CefSettings, SendDefaults, SendSettings, SettingError, Source, extra_filters, names,
};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// An error about an agent-only setting.
fn bad(setting: &str, reason: impl Into<String>) -> SettingError {
    SettingError { setting: setting.to_owned(), reason: reason.into() }
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
    pub api: ApiConfig,
    pub send: SendConfig,
    pub cef: CefOptions,
    pub activities: Option<StreamConfig>,
    pub alerts: Option<StreamConfig>,
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
    /// Extra API filters as a JSON object.
    pub filters: Option<String>,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self { enabled: true, filters: None }
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
        let api = settings.api.validate(source, &API_DEFAULTS)?;
        // Activity links point into the tenant's own portal.
        let cef = CefSettings { kind: KindChoice::Auto, portal_url: Some(api.portal_url.clone()), ..settings.cef };
        let cef = cef.validate(source, true)?;
        let send = settings.send.validate(source, &SEND_DEFAULTS, cef.header.pri.is_some())?;
        let activities = stream(&settings.activities, names::FILTERS_ACTIVITIES)?;
        let alerts = stream(&settings.alerts, names::FILTERS_ALERTS)?;
        if activities.is_none() && alerts.is_none() {
            return Err(bad("activities.enabled / alerts.enabled", "both data types are switched off; nothing to do"));
        }
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
        writable_dir(&state_dir, "state_directory (--state-dir)")?;
        let logs_dir = settings
            .logs_directory
            .or_else(|| std::env::var_os("LOGS_DIRECTORY").filter(|d| !d.is_empty()).map(PathBuf::from));
        if let Some(dir) = &logs_dir {
            writable_dir(dir, "logs_directory (--logs-directory)")?;
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

/// Creates the directory if needed and checks that files can be written in it.
fn writable_dir(dir: &Path, setting: &str) -> Result<(), SettingError> {
    std::fs::create_dir_all(dir).map_err(|e| bad(setting, format!("cannot create {}: {e}", dir.display())))?;
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
        let mut settings = ConfigFile::parse(text)?.into_settings().map_err(|e| e.to_string())?;
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
        assert_eq!(config.api.rate_limit, RateLimit::SERVICE);
    }

    #[test]
    fn flags_win_over_the_file() {
        let overrides = Overrides {
            token: Some("from-flag".into()),
            to: vec!["udp://127.0.0.1:514".into()],
            ..Overrides::default()
        };
        let config = build(MINIMAL, overrides).unwrap();
        assert_eq!(config.api.auth, ApiAuth::Token("from-flag".into()));
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
}
