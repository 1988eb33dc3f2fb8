//! The Microsoft Graph `alerts_v2` source's settings (the Entra ID
//! application, Graph's and the token endpoint's URLs, the `$filter`, the
//! page size) and their validation into a [`GraphConfig`], the same for
//! `backfill --source graph` and the agent's `[graph]` section.
//!
//! The client secret is never a command-line value or a TOML string: it
//! comes from a file (its first line) or from the environment variable
//! [`CLIENT_SECRET_ENV`], so it shows neither in `ps` nor in a config file
//! that is shared or checked in.

use super::names::*;
use super::{SettingError, Source, api::check_credential_url, readable_file, secret_from_file};
use crate::api::DEFAULT_TOKEN_URL;
use crate::azure::entra::ClientCredentials;
use crate::graph::{DEFAULT_FILTER, GRAPH_SCOPE, GRAPH_URL, GraphConfig, GraphError, MAX_TOP};
use std::path::PathBuf;

/// The environment variable that may hold the Graph application's secret.
pub const CLIENT_SECRET_ENV: &str = "CEFWIRE_GRAPH_CLIENT_SECRET";

/// The Graph source as given.
#[derive(Clone, Debug, Default)]
pub struct GraphSettings {
    /// Entra ID tenant (directory) id.
    pub tenant_id: Option<String>,
    /// The application (client) id, with `SecurityAlert.Read.All`.
    pub client_id: Option<String>,
    /// A file whose first line is the application's secret (else
    /// [`CLIENT_SECRET_ENV`]).
    pub client_secret_file: Option<PathBuf>,
    /// `https://graph.microsoft.com` (or a national cloud, an emulator).
    pub url: Option<String>,
    /// Token endpoint; `{tenant}` is replaced.
    pub token_url: Option<String>,
    /// `$filter` ANDed with the time bound; `""` takes every alert
    /// (default: Defender for Cloud Apps alerts only).
    pub filter: Option<String>,
    /// Alerts per page, 1..=1000.
    pub top: Option<u32>,
    /// PEM file of CA certificates to trust instead of the built-in roots.
    pub ca_file: Option<PathBuf>,
    /// HTTP CONNECT proxy.
    pub proxy: Option<String>,
    /// Accept `http://` URLs beyond loopback.
    pub allow_http: bool,
}

impl GraphSettings {
    /// The validated client config; builds the client once (no traffic) so
    /// an unreadable CA file or a bad proxy is named here.
    pub fn validate(&self, source: Source) -> Result<GraphConfig, SettingError> {
        let required = |value: &Option<String>, setting| match value.as_deref().map(str::trim) {
            Some(v) if !v.is_empty() => Ok(v.to_owned()),
            _ => Err(source.error(setting, "required: the Entra ID application that reads Graph alerts")),
        };
        let tenant_id = required(&self.tenant_id, GRAPH_TENANT_ID)?;
        let client_id = required(&self.client_id, GRAPH_CLIENT_ID)?;
        let client_secret = match &self.client_secret_file {
            Some(path) => secret_from_file(path).map_err(|reason| source.error(GRAPH_CLIENT_SECRET_FILE, reason))?,
            None => match std::env::var(CLIENT_SECRET_ENV) {
                Ok(secret) if !secret.trim().is_empty() => secret.trim().to_owned(),
                _ => {
                    return Err(source.error(
                        GRAPH_CLIENT_SECRET_FILE,
                        format!("required (or the environment variable {CLIENT_SECRET_ENV}): the application's secret"),
                    ));
                }
            },
        };
        let url = self.url.as_deref().unwrap_or(GRAPH_URL).trim();
        check_credential_url(url, self.allow_http).map_err(|reason| source.error(GRAPH_URL_SETTING, reason))?;
        let token_url = self.token_url.as_deref().unwrap_or(DEFAULT_TOKEN_URL).trim();
        check_credential_url(token_url, self.allow_http).map_err(|reason| source.error(GRAPH_TOKEN_URL, reason))?;
        let credentials = ClientCredentials {
            token_url: token_url.replace("{tenant}", &tenant_id),
            tenant_id,
            client_id,
            client_secret,
            scope: GRAPH_SCOPE.to_owned(),
        };
        let mut config = GraphConfig::new(url, credentials);
        config.filter = match self.filter.as_deref().map(str::trim) {
            None => Some(DEFAULT_FILTER.to_owned()),
            Some("") => None,
            Some(filter) if filter.to_ascii_lowercase().contains("createddatetime") => {
                return Err(source
                    .error(GRAPH_FILTER, "must not filter on createdDateTime: cefwire sets the time bound itself"));
            }
            Some(filter) => Some(filter.to_owned()),
        };
        if let Some(top) = self.top {
            if !(1..=MAX_TOP).contains(&top) {
                return Err(source.error(GRAPH_TOP, format!("{top} must be between 1 and {MAX_TOP}")));
            }
            config.top = top;
        }
        if let Some(ca) = &self.ca_file {
            readable_file(ca).map_err(|reason| source.error(GRAPH_CA, reason))?;
        }
        config.http.ca_file = self.ca_file.clone();
        if let Some(spec) = &self.proxy {
            config.http.proxy = Some(crate::api::proxy_url(spec).map_err(|e| source.error(GRAPH_PROXY, e))?);
        }
        if let Err(err) = crate::graph::GraphClient::new(&config) {
            let setting = if matches!(&err, GraphError::Agent(crate::http::SetupError::CaFile { .. })) {
                GRAPH_CA
            } else {
                GRAPH_PROXY
            };
            return Err(source.error(setting, err));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &tempfile::TempDir) -> GraphSettings {
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "s3cr3t\n").unwrap();
        GraphSettings {
            tenant_id: Some("T".into()),
            client_id: Some("C".into()),
            client_secret_file: Some(secret),
            ..GraphSettings::default()
        }
    }

    #[test]
    fn defaults_read_defender_for_cloud_apps_alerts_from_graph() {
        let dir = tempfile::tempdir().unwrap();
        let config = settings(&dir).validate(Source::Flags).unwrap();
        assert_eq!(config.base_url, GRAPH_URL);
        assert_eq!(config.filter.as_deref(), Some(DEFAULT_FILTER));
        assert_eq!(config.top, MAX_TOP);
        assert_eq!(config.credentials.token_url, "https://login.microsoftonline.com/T/oauth2/v2.0/token");
        assert_eq!(config.credentials.scope, GRAPH_SCOPE);
        assert_eq!(config.credentials.client_secret, "s3cr3t");
        assert!(!format!("{config:?}").contains("s3cr3t"), "the secret shows in Debug");
        let every = GraphSettings { filter: Some(" ".into()), ..settings(&dir) };
        assert_eq!(every.validate(Source::Flags).unwrap().filter, None);
    }

    #[test]
    fn refusals_name_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let refusal = |s: GraphSettings, source| s.validate(source).unwrap_err().to_string();
        assert!(
            refusal(GraphSettings { tenant_id: None, ..settings(&dir) }, Source::Flags)
                .starts_with("--graph-tenant-id:")
        );
        assert!(
            refusal(GraphSettings { client_id: Some(" ".into()), ..settings(&dir) }, Source::AgentFile)
                .starts_with("graph.client_id:")
        );
        assert!(
            refusal(GraphSettings { url: Some("http://graph.example".into()), ..settings(&dir) }, Source::Flags)
                .starts_with("--graph-url: \"http://graph.example\" is plain http://")
        );
        assert!(
            GraphSettings { url: Some("http://127.0.0.1:9".into()), ..settings(&dir) }.validate(Source::Flags).is_ok()
        );
        assert!(
            refusal(
                GraphSettings { token_url: Some("http://login.example/t".into()), ..settings(&dir) },
                Source::Flags
            )
            .starts_with("--graph-token-url:")
        );
        assert!(
            refusal(GraphSettings { filter: Some("createdDateTime ge 2020".into()), ..settings(&dir) }, Source::Flags)
                .starts_with("--filter: must not filter on createdDateTime")
        );
        assert_eq!(
            refusal(GraphSettings { top: Some(1001), ..settings(&dir) }, Source::AgentFile),
            "graph.top: 1001 must be between 1 and 1000"
        );
        let missing = dir.path().join("missing");
        assert!(
            refusal(GraphSettings { client_secret_file: Some(missing), ..settings(&dir) }, Source::AgentFile)
                .starts_with("graph.client_secret_file: cannot read")
        );
    }
}
