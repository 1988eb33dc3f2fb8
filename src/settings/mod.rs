//! Settings as people give them — command-line flags or the agent's TOML
//! file — and their validation, once, into the typed configs the jobs take
//! ([`ApiConfig`](crate::api::ApiConfig), [`SendConfig`](crate::send::SendConfig),
//! [`CefOptions`](crate::cef::CefOptions)).
//!
//! Both front ends fill the same raw structs ([`ApiSettings`], [`GraphSettings`],
//! [`SendSettings`], [`CefSettings`]). Every value in them has already been
//! read by its one typed parser — a duration ([`HumanDuration`]), a rate
//! ([`RateLimit`]), a facility ([`Facility`]), … — which clap uses as a
//! value parser and the TOML file through serde (`from_text.rs`). What
//! depends on several values (credentials that go together, TLS files
//! without a TLS destination, a filter on the time fields) is checked here,
//! once, and an error names the setting the way the user gave it
//! ([`Source`]).
//!
//! This module must not know clap or the file's layout (`cli/`,
//! `agent/config_file.rs`) and must not start anything: no sockets, no
//! threads.
//!
//! [`HumanDuration`]: crate::time::HumanDuration
//! [`RateLimit`]: crate::api::RateLimit
//! [`Facility`]: crate::syslog::header::Facility

mod api;
mod cef;
mod from_text;
mod graph;
mod send;
mod storage;

pub use api::{
    ApiDefaults, ApiSettings, FileError, UrlError, extra_filters, readable_file, secret_from_env, secret_from_file,
    secret_from_file_or_env,
};
pub use cef::{CefSettings, HostnameSetting};
pub use from_text::FromText;
pub use graph::{CLIENT_SECRET_ENV as GRAPH_CLIENT_SECRET_ENV, GraphSettings};
pub use send::{FramingSetting, SendDefaults, SendSettings};
pub use storage::{CLIENT_SECRET_ENV as STORAGE_CLIENT_SECRET_ENV, KEY_ENV, SAS_ENV};
pub use storage::{StorageSettings, storage_names};

/// A setting's names: its key in the agent's file and its flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setting {
    pub key: &'static str,
    pub flag: &'static str,
    /// The agent takes this flag too (it overrides the file).
    pub agent_flag: bool,
}

impl Setting {
    const fn new(key: &'static str, flag: &'static str) -> Self {
        Self { key, flag, agent_flag: false }
    }

    const fn agent(key: &'static str, flag: &'static str) -> Self {
        Self { key, flag, agent_flag: true }
    }
}

/// Where the settings came from; it decides how an error names one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Command-line flags: `--token-url`.
    Flags,
    /// The agent's TOML file, with the agent's flags on top:
    /// `auth.token_url`, or `auth.token (--token)` for a setting the agent
    /// also takes as a flag.
    AgentFile,
}

impl Source {
    /// How an error names `setting`.
    pub fn name(self, setting: Setting) -> String {
        match self {
            Source::Flags => setting.flag.to_owned(),
            Source::AgentFile if setting.agent_flag => format!("{} ({})", setting.key, setting.flag),
            Source::AgentFile => setting.key.to_owned(),
        }
    }

    /// An error about `setting`.
    pub fn error(self, setting: Setting, reason: impl ToString) -> SettingError {
        SettingError { setting: self.name(setting), reason: reason.to_string() }
    }
}

/// A setting that cannot be used: its name as the user gave it, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {reason}")]
pub struct SettingError {
    /// `--token-url`, `auth.token_url` or `auth.token (--token)`.
    pub setting: String,
    pub reason: String,
}

/// Every setting the shared validation names.
pub mod names {
    use super::Setting;

    pub const PORTAL_URL: Setting = Setting::agent("portal_url", "--portal-url");
    pub const AUTH: Setting = Setting::new("auth", "--token");
    pub const TOKEN: Setting = Setting::agent("auth.token", "--token");
    pub const TOKEN_OR_FILE: Setting = Setting::new("auth.token / auth.token_file", "--token");
    pub const TOKEN_FILE: Setting = Setting::new("auth.token_file", "--token-file");
    pub const TENANT_ID: Setting = Setting::new("auth.tenant_id", "--tenant-id");
    pub const CLIENT_ID: Setting = Setting::new("auth.client_id", "--client-id");
    pub const CLIENT_SECRET: Setting = Setting::new("auth.client_secret", "--client-secret");
    pub const CLIENT_SECRET_OR_FILE: Setting =
        Setting::new("auth.client_secret / auth.client_secret_file", "--client-secret");
    pub const CLIENT_SECRET_FILE: Setting = Setting::new("auth.client_secret_file", "--client-secret-file");
    pub const TOKEN_URL: Setting = Setting::new("auth.token_url", "--token-url");
    pub const SCOPE: Setting = Setting::new("auth.scope", "--scope");
    pub const PROXY: Setting = Setting::agent("proxy", "--proxy");
    pub const API_CA: Setting = Setting::new("ca_file", "--api-ca");
    pub const RATE_LIMIT: Setting = Setting::new("rate_limit", "--rate-limit");
    pub const RETRIES: Setting = Setting::new("retries", "--retries");
    pub const RETRY_DELAY: Setting = Setting::new("retry_delay", "--retry-delay");
    pub const REQUEST_TIMEOUT: Setting = Setting::new("request_timeout", "--request-timeout");
    pub const TO: Setting = Setting::agent("syslog.to", "--to");
    pub const FAILOVER: Setting = Setting::new("syslog.failover", "--failover");
    pub const CONNECTIONS: Setting = Setting::new("syslog.connections", "--connections");
    pub const FRAMING: Setting = Setting::new("syslog.framing", "--framing");
    pub const MAX_MESSAGE_BYTES: Setting = Setting::new("syslog.max_message_bytes", "--max-message-bytes");
    pub const SYSLOG_CA: Setting = Setting::new("syslog.ca_file", "--ca");
    pub const CLIENT_CERT: Setting = Setting::new("syslog.client_cert", "--client-cert");
    pub const CLIENT_KEY: Setting = Setting::new("syslog.client_key", "--client-key");
    pub const CLIENT_CERT_AND_KEY: Setting =
        Setting::new("syslog.client_cert / syslog.client_key", "--client-cert/--client-key");
    pub const RELP_WINDOW: Setting = Setting::new("syslog.relp_window", "--relp-window");
    pub const DRAIN_TIMEOUT: Setting = Setting::new("syslog.drain_timeout", "--drain-timeout");
    pub const HOSTNAME: Setting = Setting::new("cef.hostname", "--hostname");
    pub const HEADER: Setting = Setting::new("cef.header", "--header");
    pub const NO_PRI: Setting = Setting::new("cef.pri", "--no-pri");
    pub const FILTER: Setting = Setting::new("filters", "--filter");
    pub const FILTERS_ACTIVITIES: Setting = Setting::new("activities.filters", "--filter");
    pub const FILTERS_ALERTS: Setting = Setting::new("alerts.filters", "--filter");
    pub const GRAPH_TENANT_ID: Setting = Setting::new("graph.tenant_id", "--graph-tenant-id");
    pub const GRAPH_CLIENT_ID: Setting = Setting::new("graph.client_id", "--graph-client-id");
    pub const GRAPH_CLIENT_SECRET_FILE: Setting =
        Setting::new("graph.client_secret_file", "--graph-client-secret-file");
    pub const GRAPH_URL_SETTING: Setting = Setting::new("graph.url", "--graph-url");
    pub const GRAPH_TOKEN_URL: Setting = Setting::new("graph.token_url", "--graph-token-url");
    pub const GRAPH_FILTER: Setting = Setting::new("graph.filter", "--filter");
    pub const GRAPH_TOP: Setting = Setting::new("graph.top", "--graph-top");
    pub const GRAPH_CA: Setting = Setting::new("graph.ca_file", "--api-ca");
    pub const GRAPH_PROXY: Setting = Setting::new("graph.proxy", "--proxy");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_setting_as_the_user_gave_it() {
        let reason = "is empty";
        assert_eq!(Source::Flags.error(names::TOKEN, reason).to_string(), "--token: is empty");
        assert_eq!(Source::AgentFile.error(names::TOKEN, reason).to_string(), "auth.token (--token): is empty");
        assert_eq!(Source::AgentFile.error(names::TOKEN_URL, reason).to_string(), "auth.token_url: is empty");
    }
}
