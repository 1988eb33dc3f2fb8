//! OAUTHBEARER tokens for Event Hubs: Entra ID client credentials for the
//! scope `https://<namespace>.servicebus.windows.net/.default`, fetched
//! with the API client's token code when librdkafka asks (it asks again
//! before the lifetime given here runs out, so the token is refreshed
//! before it expires). The secret never leaves this module's client.

use super::consumer::TokenSource;
use super::settings::{EventHubsSettings, KafkaAuth};
use crate::api::{ApiAuth, ApiClient, ApiConfig, RetryPolicy};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Fetches tokens for an Entra ID application.
pub struct EntraTokens {
    client: Mutex<ApiClient>,
}

impl TokenSource for EntraTokens {
    fn token(&self) -> Result<(String, i64), String> {
        let mut client = self.client.lock().unwrap_or_else(|p| p.into_inner());
        let (token, usable_for) = client.fresh_bearer_token().map_err(|e| e.to_string())?;
        Ok((token, crate::time::now_ms() + usable_for.as_millis() as i64))
    }
}

/// The token source the settings call for (`None` without OAUTHBEARER).
pub fn token_source(settings: &EventHubsSettings) -> Result<Option<Arc<dyn TokenSource>>, String> {
    let KafkaAuth::EntraApp(app) = &settings.auth else { return Ok(None) };
    let mut config = ApiConfig::new(&app.credentials.token_url, ApiAuth::ClientCredentials(app.credentials.clone()));
    config.retry =
        RetryPolicy { first_delay: Duration::from_secs(1), max_delay: Duration::from_secs(30), max_attempts: 5 };
    config.request_timeout = Duration::from_secs(60);
    let client = ApiClient::new(&config).map_err(|e| e.to_string())?;
    Ok(Some(Arc::new(EntraTokens { client: Mutex::new(client) })))
}
