//! Where the Defender XDR streaming archive is and how to read it, as
//! given by `backfill --source storage` flags or the agent's `[storage]`
//! section, validated into the reader's [`ArchiveConfig`]. The SAS token,
//! account key and client secret come from files or environment
//! variables only, never from a value on the command line (`ps` shows
//! it), and never appear in a message.

use super::api::{check_credential_url, readable_file, secret_from_env, secret_from_file_or_env};
use super::{Setting, SettingError, Source};
use crate::azure::archive::{ArchiveConfig, CONTAINER, HOUR_MS};
use crate::azure::blob::{BlobConfig, STORAGE_SCOPE, StorageAuth};
use crate::azure::entra::ClientCredentials;
use std::path::PathBuf;
use std::time::Duration;

/// The environment variable that may hold a SAS token.
pub const SAS_ENV: &str = "CEFWIRE_STORAGE_SAS";
/// The environment variable that may hold the account key.
pub const KEY_ENV: &str = "CEFWIRE_STORAGE_KEY";
/// The environment variable that may hold the Entra application's secret.
pub const CLIENT_SECRET_ENV: &str = "CEFWIRE_CLIENT_SECRET";

/// Default Entra ID token endpoint (`{tenant}` is replaced).
const TOKEN_URL: &str = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token";

/// The storage settings' names.
pub mod storage_names {
    use super::Setting;

    pub const ACCOUNT_URL: Setting = Setting::new("storage.account_url", "--storage-url");
    pub const ACCOUNT: Setting = Setting::new("storage.account", "--storage-account");
    pub const CONTAINER: Setting = Setting::new("storage.container", "--container");
    pub const AUTH: Setting = Setting::new("storage.auth", "--storage-auth");
    pub const SAS_FILE: Setting = Setting::new("storage.sas_file", "--sas-file");
    pub const KEY_FILE: Setting = Setting::new("storage.account_key_file", "--account-key-file");
    pub const TENANT_ID: Setting = Setting::new("storage.tenant_id", "--tenant-id");
    pub const CLIENT_ID: Setting = Setting::new("storage.client_id", "--client-id");
    pub const CLIENT_SECRET_FILE: Setting = Setting::new("storage.client_secret_file", "--client-secret-file");
    pub const TOKEN_URL: Setting = Setting::new("storage.token_url", "--token-url");
    pub const CA_FILE: Setting = Setting::new("storage.ca_file", "--api-ca");
    pub const LOOK_BACK: Setting = Setting::new("storage.look_back", "--look-back");
    pub const MAX_LINE: Setting = Setting::new("storage.max_line_bytes", "--max-line-bytes");
}

use storage_names as names;

/// The archive's place and credentials, as given.
#[derive(Clone, Debug, Default)]
pub struct StorageSettings {
    /// The Blob endpoint: `https://<account>.blob.core.windows.net`, or a
    /// path-style one ending with the account (Azurite).
    pub account_url: Option<String>,
    /// The account name (default: from the URL).
    pub account: Option<String>,
    pub container: Option<String>,
    /// Only blobs whose names start with this (`tenantId=<guid>/`).
    pub prefix: Option<String>,
    /// `"sas"`, `"key"` or `"entra"` (default: the one whose secret is given).
    pub auth: Option<String>,
    pub sas_file: Option<PathBuf>,
    pub account_key_file: Option<PathBuf>,
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    /// A client secret from the environment (the command line's existing
    /// `$CEFWIRE_CLIENT_SECRET` handling).
    pub client_secret: Option<String>,
    pub token_url: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub allow_http: bool,
    pub look_back: Option<Duration>,
    pub max_line_bytes: Option<u64>,
    /// Attempts per request on 5xx, 429 and network errors (default 10).
    pub retries: Option<u32>,
    /// First backoff delay (doubles each time, up to 60 s).
    pub retry_delay: Option<Duration>,
}

impl StorageSettings {
    /// Checks everything that can be checked without the network.
    pub fn validate(&self, source: Source) -> Result<ArchiveConfig, SettingError> {
        let err = |setting: Setting, reason: String| source.error(setting, reason);
        let url = self
            .account_url
            .as_deref()
            .map(|u| u.trim().trim_end_matches('/'))
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                err(names::ACCOUNT_URL, "required: the Blob endpoint, https://<account>.blob.core.windows.net".into())
            })?;
        check_credential_url(url, self.allow_http).map_err(|e| source.error(names::ACCOUNT_URL, e))?;
        let account = match &self.account {
            Some(account) => account.trim().to_owned(),
            None => account_of(url).ok_or_else(|| {
                err(names::ACCOUNT, format!("required: {url:?} does not name the account (<account>.blob.…)"))
            })?,
        };
        if account.is_empty() {
            return Err(err(names::ACCOUNT, "is empty".into()));
        }
        let auth = self.auth(source)?;
        let mut blob = BlobConfig::new(url, &account, auth);
        if let Some(ca) = &self.ca_file {
            readable_file(ca).map_err(|e| source.error(names::CA_FILE, e))?;
            blob.http.ca_file = Some(ca.clone());
        }
        if let Some(retries) = self.retries {
            blob.retry.max_attempts = retries.max(1);
        }
        if let Some(delay) = self.retry_delay {
            blob.retry.first_delay = delay;
        }
        let mut config = ArchiveConfig::new(blob);
        if let Some(container) = &self.container {
            if container.trim().is_empty() {
                return Err(err(names::CONTAINER, "is empty".into()));
            }
            config.container = container.trim().to_owned();
        }
        debug_assert!(!CONTAINER.is_empty());
        config.prefix = self.prefix.clone().unwrap_or_default();
        if let Some(look_back) = self.look_back {
            if look_back.as_millis() < HOUR_MS as u128 {
                return Err(err(names::LOOK_BACK, "must be at least 1h (blobs hold an hour each)".into()));
            }
            config.look_back_ms = look_back.as_millis() as i64;
        }
        if let Some(max) = self.max_line_bytes {
            if !(1024..=(256 << 20)).contains(&max) {
                return Err(err(names::MAX_LINE, format!("{max} must be between 1024 and 268435456")));
            }
            config.max_line_bytes = max;
            config.read_bytes = config.read_bytes.min(max);
        }
        Ok(config)
    }

    fn auth(&self, source: Source) -> Result<StorageAuth, SettingError> {
        let err = |setting: Setting, reason: String| source.error(setting, reason);
        let secret = |path: &Option<PathBuf>, env_var: &str, setting: Setting| {
            secret_from_file_or_env(path.as_deref(), env_var).map_err(|e| source.error(setting, e))
        };
        let chosen = match self.auth.as_deref() {
            Some(choice) => choice.to_owned(),
            None if self.sas_file.is_some()
                || (self.account_key_file.is_none() && secret_from_env(SAS_ENV).is_some()) =>
            {
                "sas".to_owned()
            }
            None if self.account_key_file.is_some() || secret_from_env(KEY_ENV).is_some() => "key".to_owned(),
            None if self.client_id.is_some() => "entra".to_owned(),
            None => {
                return Err(err(
                    names::AUTH,
                    format!(
                        "say how to authenticate: a SAS token ({} or ${SAS_ENV}), the account key ({} or \
                         ${KEY_ENV}) or an Entra application ({}, {}, {})",
                        source.name(names::SAS_FILE),
                        source.name(names::KEY_FILE),
                        source.name(names::TENANT_ID),
                        source.name(names::CLIENT_ID),
                        source.name(names::CLIENT_SECRET_FILE),
                    ),
                ));
            }
        };
        match chosen.as_str() {
            "sas" => {
                let token = secret(&self.sas_file, SAS_ENV, names::SAS_FILE)?.ok_or_else(|| {
                    err(names::SAS_FILE, format!("required with SAS auth (or the environment variable {SAS_ENV})"))
                })?;
                if !token.contains("sig=") {
                    return Err(err(names::SAS_FILE, "does not hold a SAS token (no sig=…)".into()));
                }
                Ok(StorageAuth::Sas(token))
            }
            "key" => {
                let key = secret(&self.account_key_file, KEY_ENV, names::KEY_FILE)?.ok_or_else(|| {
                    err(names::KEY_FILE, format!("required with key auth (or the environment variable {KEY_ENV})"))
                })?;
                // Checked here so a bad key stops the start, not the first read.
                use base64::Engine as _;
                if base64::engine::general_purpose::STANDARD.decode(key.as_bytes()).is_err() {
                    return Err(err(names::KEY_FILE, "does not hold a base64 account key".into()));
                }
                Ok(StorageAuth::AccountKey(key))
            }
            "entra" => {
                let tenant_id =
                    self.tenant_id.clone().ok_or_else(|| err(names::TENANT_ID, "required with Entra auth".into()))?;
                let client_id =
                    self.client_id.clone().ok_or_else(|| err(names::CLIENT_ID, "required with Entra auth".into()))?;
                // A secret the command line took from the environment comes
                // after the file, before the variable read here.
                let client_secret = match (&self.client_secret_file, &self.client_secret) {
                    (None, Some(secret)) => Some(secret.clone()),
                    (file, _) => secret(file, CLIENT_SECRET_ENV, names::CLIENT_SECRET_FILE)?,
                }
                .ok_or_else(|| {
                    err(
                        names::CLIENT_SECRET_FILE,
                        format!("required with Entra auth (or the environment variable {CLIENT_SECRET_ENV})"),
                    )
                })?;
                let token_url = self.token_url.clone().unwrap_or_else(|| TOKEN_URL.to_owned());
                check_credential_url(&token_url, self.allow_http).map_err(|e| source.error(names::TOKEN_URL, e))?;
                Ok(StorageAuth::Entra(ClientCredentials {
                    token_url: token_url.replace("{tenant}", &tenant_id),
                    tenant_id,
                    client_id,
                    client_secret,
                    scope: STORAGE_SCOPE.to_owned(),
                }))
            }
            other => Err(err(names::AUTH, format!("{other:?} is not \"sas\", \"key\" or \"entra\""))),
        }
    }
}

/// The account of `https://<account>.blob.core.windows.net` (any
/// `<account>.blob.` host), or the last path segment of a path-style
/// endpoint (`http://127.0.0.1:10000/devstoreaccount1`).
fn account_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    if let Some(last) = path.trim_matches('/').rsplit('/').next().filter(|p| !p.is_empty()) {
        return Some(last.to_owned());
    }
    let (account, tail) = host.split_once('.')?;
    tail.starts_with("blob.").then(|| account.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> StorageSettings {
        StorageSettings { account_url: Some(url.into()), ..StorageSettings::default() }
    }

    #[test]
    fn the_account_comes_from_the_url() {
        assert_eq!(account_of("https://contoso.blob.core.windows.net").as_deref(), Some("contoso"));
        assert_eq!(account_of("http://127.0.0.1:10000/devstoreaccount1").as_deref(), Some("devstoreaccount1"));
        assert_eq!(account_of("https://example.com"), None);
    }

    #[test]
    fn refusals_name_the_setting_and_never_show_a_secret() {
        let dir = tempfile::tempdir().unwrap();
        let sas = dir.path().join("sas");
        std::fs::write(&sas, "sv=2021-08-06&ss=b&srt=sco&sp=rl&se=2099-01-01&sig=SECRETSIG\n").unwrap();
        let bad_sas = dir.path().join("bad-sas");
        std::fs::write(&bad_sas, "not-a-token-SECRET\n").unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, "not base64 SECRET!\n").unwrap();
        let url = "https://contoso.blob.core.windows.net";
        let cases: Vec<(StorageSettings, &str)> = vec![
            (StorageSettings::default(), "storage.account_url: required"),
            (settings("http://contoso.blob.core.windows.net"), "storage.account_url: \"http://contoso"),
            (settings(url), "storage.auth: say how to authenticate"),
            (StorageSettings { auth: Some("password".into()), ..settings(url) }, "storage.auth: \"password\" is not"),
            (StorageSettings { sas_file: Some(bad_sas), ..settings(url) }, "storage.sas_file: does not hold a SAS"),
            (StorageSettings { account_key_file: Some(key), ..settings(url) }, "storage.account_key_file: does not"),
            (StorageSettings { client_id: Some("c".into()), ..settings(url) }, "storage.tenant_id: required"),
            (
                StorageSettings {
                    sas_file: Some(sas.clone()),
                    look_back: Some(Duration::from_secs(60)),
                    ..settings(url)
                },
                "storage.look_back: must be at least 1h",
            ),
        ];
        for (given, expected) in cases {
            let error = given.validate(Source::AgentFile).unwrap_err().to_string();
            assert!(error.starts_with(expected), "{error:?} does not start with {expected:?}");
            assert!(!error.contains("SECRET"), "{error}");
        }
        let flags = settings(url).validate(Source::Flags).unwrap_err().to_string();
        assert!(flags.starts_with("--storage-auth:") && flags.contains("--sas-file"), "{flags}");
        let config = StorageSettings { sas_file: Some(sas), ..settings(url) }.validate(Source::Flags).unwrap();
        assert_eq!((config.blob.account.as_str(), config.container.as_str()), ("contoso", CONTAINER));
        assert!(!format!("{config:?}").contains("SECRETSIG"), "Debug hides the SAS token");
    }
}
