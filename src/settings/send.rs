//! The syslog sender's settings (destinations, failover, framing, size
//! limit, TLS files, timeouts, batching) and their validation into a
//! [`SendConfig`].

use super::api::readable_file;
use super::names::*;
use super::{SettingError, Source};
use crate::send::{DeliveryMode, Destination, SendConfig, TlsClientOptions, Transport};
use crate::syslog::frame::Framing;
use crate::syslog::header::UnknownChoice;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Stream framing as chosen: fixed, or picked from the destinations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FramingSetting {
    /// Octet counting with any tls:// destination, newline otherwise.
    #[default]
    Auto,
    Lf,
    OctetCounting,
}

impl FramingSetting {
    /// The names the settings use (`octet-counting` is also taken for `octet`).
    pub const CHOICES: &[(&str, &str)] = &[
        ("auto", "octet counting with any tls:// destination, newline otherwise"),
        ("lf", "each message followed by a newline"),
        ("octet", "RFC 6587 octet counting: `LEN SP MSG` (required for TLS)"),
    ];
}

impl FromStr for FramingSetting {
    type Err = UnknownChoice;

    fn from_str(text: &str) -> Result<Self, UnknownChoice> {
        match text {
            "auto" => Ok(Self::Auto),
            "lf" => Ok(Self::Lf),
            "octet" | "octet-counting" => Ok(Self::OctetCounting),
            _ => Err(UnknownChoice::new(text, Self::CHOICES)),
        }
    }
}

/// Where and how to send, as given.
#[derive(Clone, Debug, Default)]
pub struct SendSettings {
    /// `tcp://HOST:PORT`, `udp://…`, `tls://…`, `relp://…`, `relp+tls://…`.
    pub to: Vec<String>,
    /// The next destination while the first is down, instead of all of them.
    pub failover: bool,
    pub connections: Option<usize>,
    pub framing: Option<FramingSetting>,
    /// Longer messages are cut; default 65,507 with a udp:// destination.
    pub max_message_bytes: Option<usize>,
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub use_sendmmsg: Option<bool>,
    /// `Some(None)`: never give up.
    pub give_up_after: Option<Option<Duration>>,
    pub drain_timeout: Option<Duration>,
    pub batch_kib: Option<usize>,
    pub batches: Option<usize>,
    /// RELP: messages sent and not yet acknowledged, at most, per connection.
    pub relp_window: Option<usize>,
}

/// What a command uses for the settings it leaves out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendDefaults {
    pub give_up_after: Option<Duration>,
    pub drain_timeout: Duration,
    pub batches: usize,
}

/// The largest UDP payload over IPv4; messages sent over UDP are cut to it
/// unless a limit is given.
const UDP_MAX_PAYLOAD: usize = 65_507;

impl SendSettings {
    /// The validated sender settings (without a stop signal). Messages that
    /// do not start with `<PRI>` (`messages_start_with_pri` false: no PRI,
    /// raw lines) go over streams octet-counted: newline framing would have a
    /// receiver take a leading digit (a bare timestamp) for an octet count
    /// and split the stream.
    pub fn validate(
        &self,
        source: Source,
        defaults: &SendDefaults,
        messages_start_with_pri: bool,
    ) -> Result<SendConfig, SettingError> {
        if self.to.is_empty() {
            return Err(source.error(TO, "required: where to send, e.g. tcp://siem.example.com:514"));
        }
        let destinations = self
            .to
            .iter()
            .map(|url| Destination::parse(url).map_err(|e| source.error(TO, e)))
            .collect::<Result<Vec<_>, _>>()?;
        if self.failover && destinations.len() < 2 {
            return Err(source.error(FAILOVER, "needs at least two destinations"));
        }
        let connections = self.connections.unwrap_or(1);
        if !(1..=1024).contains(&connections) {
            return Err(source.error(CONNECTIONS, format!("{connections} must be between 1 and 1024")));
        }
        let has_tls = destinations.iter().any(|d| d.transport == Transport::Tls);
        let encrypted = destinations.iter().any(|d| d.transport.is_tls());
        let has_udp = destinations.iter().any(|d| d.transport == Transport::Udp);
        let has_stream = destinations.iter().any(|d| d.transport != Transport::Udp);
        let framing = match self.framing.unwrap_or_default() {
            FramingSetting::Auto if !messages_start_with_pri && has_stream => Some(Framing::OctetCounting),
            FramingSetting::Auto => None,
            FramingSetting::Lf if !messages_start_with_pri && has_stream => {
                return Err(source.error(
                    FRAMING,
                    "lf with messages that do not start with <PRI> (--no-pri, --raw-lines): a receiver takes their \
                     leading digit for an octet count and splits them; leave the framing out (octet counting)",
                ));
            }
            FramingSetting::Lf if has_tls => {
                return Err(source.error(FRAMING, "lf cannot be used with tls:// (RFC 5425 needs octet counting)"));
            }
            FramingSetting::Lf => Some(Framing::NewLine),
            FramingSetting::OctetCounting => Some(Framing::OctetCounting),
        };
        for (path, setting) in
            [(&self.ca_file, SYSLOG_CA), (&self.client_cert, CLIENT_CERT), (&self.client_key, CLIENT_KEY)]
        {
            if let Some(path) = path {
                if !encrypted {
                    return Err(source.error(setting, "is for tls:// and relp+tls:// destinations only"));
                }
                readable_file(path).map_err(|reason| source.error(setting, reason))?;
            }
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            return Err(source.error(CLIENT_CERT_AND_KEY, "go together"));
        }
        let max_message_bytes = match self.max_message_bytes {
            Some(0) => return Err(source.error(MAX_MESSAGE_BYTES, "must be at least 1")),
            Some(n) => Some(n),
            None => has_udp.then_some(UDP_MAX_PAYLOAD),
        };
        let relp_window = self.relp_window.unwrap_or(crate::send::relp::DEFAULT_WINDOW);
        if !(1..=1_000_000).contains(&relp_window) {
            return Err(source.error(RELP_WINDOW, format!("{relp_window} must be between 1 and 1000000")));
        }
        let mut config = SendConfig::new(destinations);
        config.relp_window = relp_window;
        config.mode = if self.failover { DeliveryMode::Failover } else { DeliveryMode::FanOut };
        config.connections = connections;
        config.framing = framing;
        config.max_message_bytes = max_message_bytes;
        config.tls = TlsClientOptions {
            ca: self.ca_file.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
        };
        if let Some(kib) = self.batch_kib {
            config.batch_bytes = kib.clamp(1, 64 * 1024) * 1024;
        }
        config.batches = self.batches.unwrap_or(defaults.batches).clamp(2, 4096);
        config.use_sendmmsg = self.use_sendmmsg.unwrap_or(true);
        config.give_up_after = self.give_up_after.unwrap_or(defaults.give_up_after);
        config.drain_timeout = self.drain_timeout.unwrap_or(defaults.drain_timeout);
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: SendDefaults =
        SendDefaults { give_up_after: None, drain_timeout: Duration::from_secs(5), batches: 64 };

    fn to(urls: &[&str]) -> SendSettings {
        SendSettings { to: urls.iter().map(|u| u.to_string()).collect(), ..SendSettings::default() }
    }

    fn refusal(settings: &SendSettings) -> String {
        settings.validate(Source::AgentFile, &DEFAULTS, true).unwrap_err().to_string()
    }

    #[test]
    fn defaults_and_the_udp_size_limit() {
        let config = to(&["udp://127.0.0.1:514"]).validate(Source::Flags, &DEFAULTS, true).unwrap();
        assert_eq!(config.max_message_bytes, Some(UDP_MAX_PAYLOAD));
        assert_eq!((config.batches, config.give_up_after, config.connections), (64, None, 1));
        let config = to(&["tcp://127.0.0.1:514"]).validate(Source::Flags, &DEFAULTS, true).unwrap();
        assert_eq!(config.max_message_bytes, None);
    }

    #[test]
    fn refusals_say_what_to_fix() {
        assert_eq!(refusal(&to(&[])), "syslog.to (--to): required: where to send, e.g. tcp://siem.example.com:514");
        assert!(refusal(&to(&["ftp://h:1"])).starts_with("syslog.to (--to): "));
        assert_eq!(
            refusal(&SendSettings { failover: true, ..to(&["tcp://h:1"]) }),
            "syslog.failover: needs at least two destinations"
        );
        assert_eq!(
            refusal(&SendSettings { framing: Some(FramingSetting::Lf), ..to(&["tls://h:1"]) }),
            "syslog.framing: lf cannot be used with tls:// (RFC 5425 needs octet counting)"
        );
        assert_eq!(
            refusal(&SendSettings { ca_file: Some("Cargo.toml".into()), ..to(&["tcp://h:1"]) }),
            "syslog.ca_file: is for tls:// and relp+tls:// destinations only"
        );
        assert!(
            refusal(&SendSettings { ca_file: Some("/nonexistent.pem".into()), ..to(&["tls://h:1"]) })
                .starts_with("syslog.ca_file: cannot read /nonexistent.pem")
        );
        assert_eq!(
            refusal(&SendSettings { client_cert: Some("Cargo.toml".into()), ..to(&["tls://h:1"]) }),
            "syslog.client_cert / syslog.client_key: go together"
        );
        assert_eq!(
            refusal(&SendSettings { max_message_bytes: Some(0), ..to(&["udp://h:1"]) }),
            "syslog.max_message_bytes: must be at least 1"
        );
        assert_eq!(
            SendSettings { connections: Some(0), ..to(&["tcp://h:1"]) }
                .validate(Source::Flags, &DEFAULTS, true)
                .unwrap_err()
                .to_string(),
            "--connections: 0 must be between 1 and 1024"
        );
    }

    #[test]
    fn messages_without_pri_go_over_streams_octet_counted() {
        let without_pri = |settings: &SendSettings| settings.validate(Source::AgentFile, &DEFAULTS, false);
        assert_eq!(without_pri(&to(&["tcp://h:1"])).unwrap().framing, Some(Framing::OctetCounting));
        assert_eq!(without_pri(&to(&["udp://h:1"])).unwrap().framing, None);
        assert_eq!(to(&["tcp://h:1"]).validate(Source::Flags, &DEFAULTS, true).unwrap().framing, None);
        let lf = SendSettings { framing: Some(FramingSetting::Lf), ..to(&["tcp://h:1"]) };
        assert!(without_pri(&lf).unwrap_err().to_string().starts_with("syslog.framing: lf with messages that do not"));
        assert_eq!(lf.validate(Source::Flags, &DEFAULTS, true).unwrap().framing, Some(Framing::NewLine));
    }

    #[test]
    fn framing_names() {
        assert_eq!("octet-counting".parse(), Ok(FramingSetting::OctetCounting));
        assert_eq!("octet".parse(), Ok(FramingSetting::OctetCounting));
        assert_eq!("crlf".parse::<FramingSetting>().unwrap_err().to_string(), "\"crlf\" is not one of auto, lf, octet");
    }
}
