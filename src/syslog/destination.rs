//! Where messages go: `tcp://host:port`, `udp://host:port`, `tls://host:port`,
//! `relp://host:port`, `relp+tls://host:port`.
//!
//! Parsing only; resolving and connecting are the writer's business. IPv6
//! literals are written in brackets (`tcp://[::1]:514`).

use std::fmt;

/// The transport named by a destination URL's scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Tcp,
    Udp,
    /// Syslog over TLS (RFC 5425): TCP, TLS 1.2+, octet-counted frames.
    Tls,
    /// RELP over TCP: every message acknowledged by the receiver.
    Relp,
    /// RELP over TLS (what rsyslog's `imrelp` calls `tls="on"`).
    RelpTls,
}

impl Transport {
    pub fn scheme(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
            Transport::Tls => "tls",
            Transport::Relp => "relp",
            Transport::RelpTls => "relp+tls",
        }
    }

    /// Whether bytes go over a connected stream (TCP or TLS).
    pub fn is_stream(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    /// Whether the stream is encrypted (needs the TLS settings).
    pub fn is_tls(self) -> bool {
        matches!(self, Transport::Tls | Transport::RelpTls)
    }

    /// Whether messages go as RELP commands (acknowledged one by one)
    /// rather than as syslog frames.
    pub fn is_relp(self) -> bool {
        matches!(self, Transport::Relp | Transport::RelpTls)
    }
}

/// A parsed destination (or listen) address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Destination {
    pub transport: Transport,
    /// Host name or IP literal, without brackets.
    pub host: String,
    pub port: u16,
}

/// Why a destination URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    #[error("{0:?}: expected SCHEME://HOST:PORT with SCHEME tcp, udp, tls, relp or relp+tls")]
    Shape(String),
    #[error("{0:?}: unknown scheme {1:?} (use tcp, udp, tls, relp or relp+tls)")]
    Scheme(String, String),
    #[error("{0:?}: port is missing or not a number in 1-65535")]
    Port(String),
    #[error("{0:?}: host is empty")]
    Host(String),
}

impl Destination {
    /// Parses `tcp://host:port` (also `udp://`, `tls://`, `relp://`,
    /// `relp+tls://`; `[v6]` literals).
    pub fn parse(url: &str) -> Result<Self, DestinationError> {
        Self::parse_inner(url, false)
    }

    /// Like [`parse`](Self::parse), but port 0 ("any free port") is allowed:
    /// for addresses to listen on.
    pub fn parse_listen(url: &str) -> Result<Self, DestinationError> {
        Self::parse_inner(url, true)
    }

    fn parse_inner(url: &str, port_zero: bool) -> Result<Self, DestinationError> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| DestinationError::Shape(url.to_owned()))?;
        let transport = match scheme.to_ascii_lowercase().as_str() {
            "tcp" => Transport::Tcp,
            "udp" => Transport::Udp,
            "tls" => Transport::Tls,
            "relp" => Transport::Relp,
            "relp+tls" => Transport::RelpTls,
            other => return Err(DestinationError::Scheme(url.to_owned(), other.to_owned())),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| DestinationError::Shape(url.to_owned()))?;
            let port = after.strip_prefix(':').ok_or_else(|| DestinationError::Port(url.to_owned()))?;
            (host, port)
        } else {
            rest.rsplit_once(':').ok_or_else(|| DestinationError::Port(url.to_owned()))?
        };
        if host.is_empty() || host.contains('/') {
            return Err(DestinationError::Host(url.to_owned()));
        }
        let port = match port.parse::<u16>() {
            Ok(p) if p > 0 || port_zero => p,
            _ => return Err(DestinationError::Port(url.to_owned())),
        };
        Ok(Self { transport, host: host.to_owned(), port })
    }

    /// `host:port` as `ToSocketAddrs` wants it.
    pub fn authority(&self) -> (&str, u16) {
        (&self.host, self.port)
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.transport.scheme(), self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.transport.scheme(), self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_schemes_hosts_and_ports() {
        let d = Destination::parse("tcp://siem.example:514").unwrap();
        assert_eq!((d.transport, d.host.as_str(), d.port), (Transport::Tcp, "siem.example", 514));
        let d = Destination::parse("UDP://127.0.0.1:5140/").unwrap();
        assert_eq!((d.transport, d.port), (Transport::Udp, 5140));
        let d = Destination::parse("tls://[::1]:6514").unwrap();
        assert_eq!((d.host.as_str(), d.to_string().as_str()), ("::1", "tls://[::1]:6514"));
        let d = Destination::parse("relp://rsyslog:2514").unwrap();
        assert_eq!((d.transport, d.to_string().as_str()), (Transport::Relp, "relp://rsyslog:2514"));
        assert!(d.transport.is_relp() && !d.transport.is_tls());
        let d = Destination::parse("RELP+TLS://rsyslog:2515").unwrap();
        assert_eq!((d.transport, d.to_string().as_str()), (Transport::RelpTls, "relp+tls://rsyslog:2515"));
        assert!(d.transport.is_relp() && d.transport.is_tls());
    }

    #[test]
    fn refuses_bad_urls() {
        assert!(matches!(Destination::parse("127.0.0.1:514"), Err(DestinationError::Shape(_))));
        assert!(matches!(Destination::parse("http://a:1"), Err(DestinationError::Scheme(..))));
        assert!(matches!(Destination::parse("tcp://a"), Err(DestinationError::Port(_))));
        assert!(matches!(Destination::parse("tcp://a:0"), Err(DestinationError::Port(_))));
        assert!(matches!(Destination::parse("tcp://:514"), Err(DestinationError::Host(_))));
    }
}
