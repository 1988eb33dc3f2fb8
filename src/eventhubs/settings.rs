//! The validated settings of the Event Hubs source and the exact Kafka
//! client settings they produce.
//!
//! Event Hubs speaks the Kafka protocol on `<namespace>.servicebus.windows.net:9093`
//! over SASL_SSL, either with mechanism `PLAIN`, user `$ConnectionString`
//! and the connection string as the password, or with `OAUTHBEARER` and an
//! Entra ID token for `https://<namespace>.servicebus.windows.net/.default`.
//! [`EventHubsSettings::client_settings`] is the one place that turns the
//! settings into librdkafka properties, with Microsoft's recommended values
//! for Event Hubs as defaults (session and socket timeouts, keepalive,
//! metadata age, idle connections). Secrets live in [`Secret`], whose
//! `Debug` and `Display` never show the value; [`ClientSetting::shown`]
//! hides them in logs and messages. This module knows nothing of sockets
//! or of the consumer loop.

use crate::api::ClientCredentials;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A secret value (a connection string, a client secret): never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the client library only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<hidden>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<hidden>")
    }
}

/// How the consumer proves who it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KafkaAuth {
    /// SASL_SSL, mechanism PLAIN, user `$ConnectionString`, the connection
    /// string as the password (Event Hubs' shared access policies).
    ConnectionString(Secret),
    /// SASL_SSL, mechanism OAUTHBEARER, with an Entra ID token from the
    /// client-credentials flow, refreshed before it expires.
    EntraApp(EntraApp),
    /// No TLS and no SASL: a local broker (tests, a Kafka-protocol proxy on
    /// the same machine). Never what Event Hubs accepts.
    Plaintext,
}

/// An Entra ID application allowed to read the event hub (role
/// "Azure Event Hubs Data Receiver").
#[derive(Clone, PartialEq, Eq)]
pub struct EntraApp {
    pub credentials: ClientCredentials,
}

impl fmt::Debug for EntraApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntraApp")
            .field("tenant_id", &self.credentials.tenant_id)
            .field("client_id", &self.credentials.client_id)
            .field("token_url", &self.credentials.token_url)
            .field("scope", &self.credentials.scope)
            .finish_non_exhaustive()
    }
}

/// Where a consumer group with no committed offset for a partition starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StartAt {
    /// The oldest event the hub still keeps (its retention): nothing the
    /// hub has is missed on a first start.
    #[default]
    Earliest,
    /// Only events that arrive after the first start.
    Latest,
}

impl StartAt {
    fn as_str(self) -> &'static str {
        match self {
            StartAt::Earliest => "earliest",
            StartAt::Latest => "latest",
        }
    }
}

/// Microsoft's recommended client values for Event Hubs, used as defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientTimeouts {
    /// `session.timeout.ms`: Event Hubs recommends 30 s (at least).
    pub session: Duration,
    /// `heartbeat.interval.ms`.
    pub heartbeat: Duration,
    /// `socket.timeout.ms` (librdkafka's request timeout): 60 s recommended.
    pub request: Duration,
    /// `max.poll.interval.ms`: the loop polls far more often, even while
    /// syslog is down, so this only catches a stuck process.
    pub max_poll_interval: Duration,
    /// `metadata.max.age.ms`: below Event Hubs' 240 s idle limit.
    pub metadata_max_age: Duration,
    /// `connections.max.idle.ms`: Event Hubs closes connections idle for
    /// 240 s; closing them first avoids writing into a dead one.
    pub connections_max_idle: Duration,
}

impl Default for ClientTimeouts {
    fn default() -> Self {
        Self {
            session: Duration::from_secs(30),
            heartbeat: Duration::from_secs(3),
            request: Duration::from_secs(60),
            max_poll_interval: Duration::from_secs(300),
            metadata_max_age: Duration::from_secs(180),
            connections_max_idle: Duration::from_secs(180),
        }
    }
}

/// Everything the Event Hubs source needs, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventHubsSettings {
    /// `host:port[,host:port…]`: `<namespace>.servicebus.windows.net:9093`.
    pub bootstrap_servers: String,
    /// The event hub (Kafka topic), e.g. `insights-logs-advancedhunting-cloudappevents`.
    pub event_hub: String,
    /// The consumer group every cefwire instance of one deployment shares.
    pub consumer_group: String,
    pub auth: KafkaAuth,
    pub start_at: StartAt,
    /// Trusted CA certificates (PEM) instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// Offsets are committed per partition at most this often (Event Hubs
    /// throttles commits to 4/s per partition).
    pub commit_interval: Duration,
    /// `client.id`: shows in the broker's view of the group.
    pub client_id: String,
    /// A partition with records waiting that fetched nothing this long is
    /// reported stalled (the agent's health; see `eventhubs::stall`).
    pub stall_after: Duration,
    pub timeouts: ClientTimeouts,
}

/// The default event hub Defender XDR streams `CloudAppEvents` into.
pub const DEFAULT_EVENT_HUB: &str = "insights-logs-advancedhunting-cloudappevents";
/// The default consumer group of cefwire instances.
pub const DEFAULT_CONSUMER_GROUP: &str = "cefwire";
/// Event Hubs allows 4 commits/s per partition; one per second leaves room.
pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// The shortest commit interval Event Hubs does not throttle.
pub const MIN_COMMIT_INTERVAL: Duration = Duration::from_millis(250);
/// Records waiting and nothing fetched this long is a stall: longer than a
/// rebalance after a session timeout (30 s) takes, short enough to alert.
pub const DEFAULT_STALL_AFTER: Duration = Duration::from_secs(300);
/// The shortest `stall_after` accepted.
pub const MIN_STALL_AFTER: Duration = Duration::from_secs(1);

impl EventHubsSettings {
    /// Defaults for one event hub reached at `bootstrap_servers`.
    pub fn new(bootstrap_servers: impl Into<String>, auth: KafkaAuth) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            event_hub: DEFAULT_EVENT_HUB.to_owned(),
            consumer_group: DEFAULT_CONSUMER_GROUP.to_owned(),
            auth,
            start_at: StartAt::Earliest,
            ca_file: None,
            commit_interval: DEFAULT_COMMIT_INTERVAL,
            client_id: format!("cefwire-{}", env!("CARGO_PKG_VERSION")),
            stall_after: DEFAULT_STALL_AFTER,
            timeouts: ClientTimeouts::default(),
        }
    }

    /// The librdkafka properties of the consumer, in a fixed order. Offsets
    /// are never committed or stored by librdkafka itself: the source
    /// commits them explicitly, after syslog took the records.
    pub fn client_settings(&self) -> Vec<ClientSetting> {
        let ms = |d: Duration| d.as_millis().to_string();
        let t = &self.timeouts;
        let mut settings = vec![
            ClientSetting::plain("bootstrap.servers", &self.bootstrap_servers),
            ClientSetting::plain("group.id", &self.consumer_group),
            ClientSetting::plain("client.id", &self.client_id),
            ClientSetting::plain("enable.auto.commit", "false"),
            ClientSetting::plain("enable.auto.offset.store", "false"),
            ClientSetting::plain("auto.offset.reset", self.start_at.as_str()),
            ClientSetting::plain("session.timeout.ms", ms(t.session)),
            ClientSetting::plain("heartbeat.interval.ms", ms(t.heartbeat)),
            ClientSetting::plain("socket.timeout.ms", ms(t.request)),
            ClientSetting::plain("max.poll.interval.ms", ms(t.max_poll_interval)),
            ClientSetting::plain("metadata.max.age.ms", ms(t.metadata_max_age)),
            ClientSetting::plain("connections.max.idle.ms", ms(t.connections_max_idle)),
            ClientSetting::plain("socket.keepalive.enable", "true"),
            // Rebalances stop the world: finish in flight, commit, hand over.
            ClientSetting::plain("partition.assignment.strategy", "range,roundrobin"),
        ];
        self.push_security(&mut settings);
        settings
    }

    /// The librdkafka properties of `backfill`'s reader. It takes its
    /// partitions with `assign()` — no subscription, so it never joins a
    /// group, has no session, heartbeat or assignment strategy — and
    /// nothing is ever committed or stored: a backfill must not move the
    /// agent's group. librdkafka's `assign()` needs a `group.id` all the
    /// same; it is [`Self::reader_group`], never the agent's group. It
    /// stops at offsets it was given, and hears when a partition has no
    /// more (`enable.partition.eof`).
    pub fn reader_settings(&self) -> Vec<ClientSetting> {
        let ms = |d: Duration| d.as_millis().to_string();
        let t = &self.timeouts;
        let mut settings = vec![
            ClientSetting::plain("bootstrap.servers", &self.bootstrap_servers),
            ClientSetting::plain("group.id", self.reader_group()),
            ClientSetting::plain("client.id", format!("{}-backfill", self.client_id)),
            ClientSetting::plain("enable.auto.commit", "false"),
            ClientSetting::plain("enable.auto.offset.store", "false"),
            // Offsets are always given; one the hub no longer keeps (its
            // retention ran out mid-run) is read from the oldest kept.
            ClientSetting::plain("auto.offset.reset", "earliest"),
            ClientSetting::plain("enable.partition.eof", "true"),
            ClientSetting::plain("socket.timeout.ms", ms(t.request)),
            ClientSetting::plain("metadata.max.age.ms", ms(t.metadata_max_age)),
            ClientSetting::plain("connections.max.idle.ms", ms(t.connections_max_idle)),
            ClientSetting::plain("socket.keepalive.enable", "true"),
        ];
        self.push_security(&mut settings);
        settings
    }

    /// The `group.id` of the backfill reader: the agent's group with
    /// `.backfill` appended, so it can never be the agent's own.
    pub fn reader_group(&self) -> String {
        format!("{}.backfill", self.consumer_group)
    }

    /// How the client signs in and what TLS it trusts.
    fn push_security(&self, settings: &mut Vec<ClientSetting>) {
        match &self.auth {
            KafkaAuth::Plaintext => settings.push(ClientSetting::plain("security.protocol", "plaintext")),
            KafkaAuth::ConnectionString(secret) => {
                settings.push(ClientSetting::plain("security.protocol", "sasl_ssl"));
                settings.push(ClientSetting::plain("sasl.mechanisms", "PLAIN"));
                settings.push(ClientSetting::plain("sasl.username", "$ConnectionString"));
                settings.push(ClientSetting::secret("sasl.password", secret.expose()));
            }
            KafkaAuth::EntraApp(_) => {
                settings.push(ClientSetting::plain("security.protocol", "sasl_ssl"));
                settings.push(ClientSetting::plain("sasl.mechanisms", "OAUTHBEARER"));
            }
        }
        if !matches!(self.auth, KafkaAuth::Plaintext) {
            // The broker's name must match its certificate.
            settings.push(ClientSetting::plain("ssl.endpoint.identification.algorithm", "https"));
            if let Some(ca) = &self.ca_file {
                settings.push(ClientSetting::plain("ssl.ca.location", ca.display().to_string()));
            }
        }
    }

    /// The settings as `key=value` lines with secrets hidden, for logs.
    pub fn describe(&self) -> String {
        let lines: Vec<String> = self.client_settings().iter().map(|s| format!("{}={}", s.key, s.shown())).collect();
        lines.join("\n")
    }
}

/// One librdkafka property.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSetting {
    pub key: &'static str,
    value: String,
    secret: bool,
}

impl ClientSetting {
    fn plain(key: &'static str, value: impl Into<String>) -> Self {
        Self { key, value: value.into(), secret: false }
    }

    fn secret(key: &'static str, value: &str) -> Self {
        Self { key, value: value.to_owned(), secret: true }
    }

    /// The value handed to the client library.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The value for people: `<hidden>` for secrets.
    pub fn shown(&self) -> &str {
        if self.secret { "<hidden>" } else { &self.value }
    }

    pub fn is_secret(&self) -> bool {
        self.secret
    }
}

impl fmt::Debug for ClientSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.shown())
    }
}

/// What an Event Hubs connection string says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionString {
    /// `<namespace>.servicebus.windows.net` (from `Endpoint=sb://…/`).
    pub host: String,
    /// `EntityPath`, when the policy belongs to one event hub.
    pub entity_path: Option<String>,
}

/// Why a connection string cannot be used. Never contains the string.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionStringError {
    #[error("has no Endpoint=sb://<namespace>.servicebus.windows.net/ part")]
    NoEndpoint,
    #[error("has no SharedAccessKeyName and SharedAccessKey (or SharedAccessSignature)")]
    NoKey,
}

impl ConnectionString {
    /// Reads `Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=…;SharedAccessKey=…[;EntityPath=hub]`.
    pub fn parse(text: &str) -> Result<Self, ConnectionStringError> {
        let mut host = None;
        let mut entity_path = None;
        let (mut key_name, mut key) = (false, false);
        for part in text.trim().split(';') {
            let Some((name, value)) = part.split_once('=') else { continue };
            match name.trim().to_ascii_lowercase().as_str() {
                "endpoint" => {
                    let rest = value.trim().strip_prefix("sb://").ok_or(ConnectionStringError::NoEndpoint)?;
                    let name = rest.trim_end_matches('/');
                    if name.is_empty() || name.contains('/') {
                        return Err(ConnectionStringError::NoEndpoint);
                    }
                    host = Some(name.to_owned());
                }
                "sharedaccesskeyname" => key_name = !value.trim().is_empty(),
                "sharedaccesskey" => key = !value.trim().is_empty(),
                "sharedaccesssignature" => (key_name, key) = (true, !value.trim().is_empty()),
                "entitypath" if !value.trim().is_empty() => entity_path = Some(value.trim().to_owned()),
                _ => {}
            }
        }
        let host = host.ok_or(ConnectionStringError::NoEndpoint)?;
        if !(key_name && key) {
            return Err(ConnectionStringError::NoKey);
        }
        Ok(Self { host, entity_path })
    }

    /// The Kafka endpoint of the namespace.
    pub fn bootstrap_servers(&self) -> String {
        format!("{}:9093", self.host)
    }
}

/// The Entra ID scope of a namespace's Kafka endpoint.
pub fn oauth_scope(bootstrap_servers: &str) -> String {
    let host = bootstrap_servers.split(',').next().unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    format!("https://{host}/.default")
}

/// The settings of each way of signing in, for a broker nobody answers
/// at (`127.0.0.1:9`): the tests that hand every one to librdkafka.
#[cfg(all(test, feature = "eventhubs"))]
pub(crate) fn every_auth() -> [EventHubsSettings; 3] {
    let conn = "Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=c2VjcmV0";
    let entra = EntraApp {
        credentials: ClientCredentials {
            tenant_id: "t".into(),
            client_id: "c".into(),
            client_secret: "s".into(),
            token_url: "http://127.0.0.1:9/token".into(),
            scope: "https://x.servicebus.windows.net/.default".into(),
        },
    };
    [KafkaAuth::Plaintext, KafkaAuth::ConnectionString(Secret::new(conn)), KafkaAuth::EntraApp(entra)]
        .map(|auth| EventHubsSettings::new("127.0.0.1:9", auth))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONN: &str = "Endpoint=sb://contoso-xdr.servicebus.windows.net/;SharedAccessKeyName=cefwire-listen;SharedAccessKey=c2VjcmV0LWtleS12YWx1ZQ==;EntityPath=insights-logs-advancedhunting-cloudappevents";

    fn pairs(settings: &EventHubsSettings) -> Vec<(String, String)> {
        settings.client_settings().iter().map(|s| (s.key.to_owned(), s.value().to_owned())).collect()
    }

    #[test]
    fn connection_string_gives_sasl_plain_with_the_recommended_defaults() {
        let parsed = ConnectionString::parse(CONN).unwrap();
        assert_eq!(parsed.host, "contoso-xdr.servicebus.windows.net");
        assert_eq!(parsed.entity_path.as_deref(), Some(DEFAULT_EVENT_HUB));
        let settings =
            EventHubsSettings::new(parsed.bootstrap_servers(), KafkaAuth::ConnectionString(Secret::new(CONN)));
        let expected: Vec<(String, String)> = [
            ("bootstrap.servers", "contoso-xdr.servicebus.windows.net:9093"),
            ("group.id", "cefwire"),
            ("client.id", concat!("cefwire-", env!("CARGO_PKG_VERSION"))),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
            ("session.timeout.ms", "30000"),
            ("heartbeat.interval.ms", "3000"),
            ("socket.timeout.ms", "60000"),
            ("max.poll.interval.ms", "300000"),
            ("metadata.max.age.ms", "180000"),
            ("connections.max.idle.ms", "180000"),
            ("socket.keepalive.enable", "true"),
            ("partition.assignment.strategy", "range,roundrobin"),
            ("security.protocol", "sasl_ssl"),
            ("sasl.mechanisms", "PLAIN"),
            ("sasl.username", "$ConnectionString"),
            ("sasl.password", CONN),
            ("ssl.endpoint.identification.algorithm", "https"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(pairs(&settings), expected);
    }

    #[test]
    fn oauthbearer_has_no_password_and_the_namespace_scope() {
        let credentials = ClientCredentials {
            tenant_id: "t".into(),
            client_id: "c".into(),
            client_secret: "s3cr3t".into(),
            token_url: "https://login.microsoftonline.com/t/oauth2/v2.0/token".into(),
            scope: oauth_scope("contoso-xdr.servicebus.windows.net:9093"),
        };
        assert_eq!(credentials.scope, "https://contoso-xdr.servicebus.windows.net/.default");
        let mut settings = EventHubsSettings::new(
            "contoso-xdr.servicebus.windows.net:9093",
            KafkaAuth::EntraApp(EntraApp { credentials }),
        );
        settings.ca_file = Some(PathBuf::from("/etc/ssl/certs/ca-certificates.crt"));
        let got = pairs(&settings);
        let tail: Vec<(&str, &str)> = got[14..].iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            tail,
            [
                ("security.protocol", "sasl_ssl"),
                ("sasl.mechanisms", "OAUTHBEARER"),
                ("ssl.endpoint.identification.algorithm", "https"),
                ("ssl.ca.location", "/etc/ssl/certs/ca-certificates.crt"),
            ]
        );
        assert!(!format!("{settings:?}").contains("s3cr3t"), "{settings:?}");
    }

    /// The backfill reader is assigned its partitions: no group
    /// membership settings, nothing committed or stored, a group id that
    /// is not the agent's; the same sign-in as the agent.
    #[test]
    fn the_backfill_reader_joins_no_group_and_commits_nothing() {
        let mut settings = EventHubsSettings::new(
            "contoso-xdr.servicebus.windows.net:9093",
            KafkaAuth::ConnectionString(Secret::new(CONN)),
        );
        settings.consumer_group = "siem".into();
        settings.client_id = "cefwire-test".into();
        let got: Vec<(String, String)> =
            settings.reader_settings().iter().map(|s| (s.key.to_owned(), s.value().to_owned())).collect();
        let expected: Vec<(String, String)> = [
            ("bootstrap.servers", "contoso-xdr.servicebus.windows.net:9093"),
            ("group.id", "siem.backfill"),
            ("client.id", "cefwire-test-backfill"),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
            ("enable.partition.eof", "true"),
            ("socket.timeout.ms", "60000"),
            ("metadata.max.age.ms", "180000"),
            ("connections.max.idle.ms", "180000"),
            ("socket.keepalive.enable", "true"),
            ("security.protocol", "sasl_ssl"),
            ("sasl.mechanisms", "PLAIN"),
            ("sasl.username", "$ConnectionString"),
            ("sasl.password", CONN),
            ("ssl.endpoint.identification.algorithm", "https"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, expected);
        for key in
            ["session.timeout.ms", "heartbeat.interval.ms", "max.poll.interval.ms", "partition.assignment.strategy"]
        {
            assert!(!got.iter().any(|(k, _)| k == key), "{key}: a group member's setting in the reader");
        }
        assert_ne!(settings.reader_group(), settings.consumer_group);
        let shown = format!("{:?}", settings.reader_settings());
        assert!(!shown.contains("SharedAccessKey="), "{shown}");
    }

    #[test]
    fn secrets_never_show() {
        let settings = EventHubsSettings::new("h:9093", KafkaAuth::ConnectionString(Secret::new(CONN)));
        for text in [settings.describe(), format!("{settings:?}"), format!("{:?}", settings.client_settings())] {
            assert!(!text.contains("SharedAccessKey="), "{text}");
            assert!(text.contains("sasl.password=<hidden>") || text.contains("<hidden>"), "{text}");
        }
        assert_eq!(settings.client_settings().iter().filter(|s| s.is_secret()).count(), 1);
    }

    #[test]
    fn plaintext_is_only_plaintext() {
        let settings = EventHubsSettings::new("127.0.0.1:9092", KafkaAuth::Plaintext);
        let got = pairs(&settings);
        assert_eq!(got.last().unwrap(), &("security.protocol".to_owned(), "plaintext".to_owned()));
        assert!(!got.iter().any(|(k, _)| k.starts_with("sasl.") || k.starts_with("ssl.")));
    }

    #[test]
    fn bad_connection_strings_are_named_without_the_secret() {
        assert_eq!(
            ConnectionString::parse("SharedAccessKeyName=a;SharedAccessKey=b"),
            Err(ConnectionStringError::NoEndpoint)
        );
        assert_eq!(
            ConnectionString::parse("Endpoint=https://x/;SharedAccessKeyName=a;SharedAccessKey=b"),
            Err(ConnectionStringError::NoEndpoint)
        );
        assert_eq!(
            ConnectionString::parse("Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=a"),
            Err(ConnectionStringError::NoKey)
        );
        let sas = "Endpoint=sb://x.servicebus.windows.net/;SharedAccessSignature=SharedAccessSignature sr=x&sig=y";
        assert_eq!(ConnectionString::parse(sas).unwrap().entity_path, None);
        let err = ConnectionString::parse("Endpoint=sb://x/;SharedAccessKey=topsecret").unwrap_err().to_string();
        assert!(!err.contains("topsecret"), "{err}");
    }
}
