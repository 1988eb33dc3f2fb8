//! The CEF mapping's and the syslog header's settings and their validation
//! into [`CefOptions`].

use super::api::check_web_url;
use super::names::*;
use super::{SettingError, Source};
use crate::cef::{CefOptions, KindChoice};
use crate::syslog::header::{
    Facility, HeaderLayout, Severity, SyslogHeader, TimestampStyle, local_hostname, pri, validate_hostname,
};

/// Whether the header carries a hostname, and which.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostnameSetting {
    /// This machine's name.
    ThisMachine,
    Named(String),
    Omitted,
}

/// How records become lines, as given. What is left out gets the defaults
/// of the output: PRI and this machine's name when sending to syslog,
/// neither when writing a file.
#[derive(Clone, Debug, Default)]
pub struct CefSettings {
    pub kind: KindChoice,
    pub device_version: Option<String>,
    /// Base of the activity links (`cs1`); default the generic portal.
    pub portal_url: Option<String>,
    pub time_format: Option<TimestampStyle>,
    pub header: Option<HeaderLayout>,
    pub pri: Option<bool>,
    pub facility: Option<Facility>,
    pub severity: Option<Severity>,
    pub hostname: Option<HostnameSetting>,
}

impl CefSettings {
    /// The validated options; `sending` picks the defaults for syslog.
    pub fn validate(&self, source: Source, sending: bool) -> Result<CefOptions, SettingError> {
        let defaults = CefOptions::default();
        let portal_url = self.portal_url.as_deref().unwrap_or(&defaults.portal_url);
        check_web_url(portal_url).map_err(|reason| source.error(PORTAL_URL, reason))?;
        let hostname = match &self.hostname {
            None => sending.then(local_hostname),
            Some(HostnameSetting::ThisMachine) => Some(local_hostname()),
            Some(HostnameSetting::Named(name)) => Some(validate_hostname(name).map_err(|e| source.error(HOSTNAME, e))?),
            Some(HostnameSetting::Omitted) => None,
        };
        let layout = self.header.unwrap_or_default();
        if layout == HeaderLayout::Rfc5424 && self.pri == Some(false) {
            let header = source.name(HEADER);
            return Err(
                source.error(NO_PRI, format!("contradicts {header} rfc5424: an RFC 5424 header starts with <PRI>1"))
            );
        }
        let facility = self.facility.unwrap_or(Facility::LOCAL0);
        let severity = self.severity.unwrap_or(Severity::INFO);
        Ok(CefOptions {
            device_version: self.device_version.clone().unwrap_or(defaults.device_version),
            portal_url: portal_url.trim_end_matches('/').to_owned(),
            kind: self.kind,
            header: SyslogHeader {
                pri: self.pri.unwrap_or(sending).then_some(pri(facility, severity)),
                timestamp: self.time_format.unwrap_or_default(),
                hostname,
                layout,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_output() {
        let file = CefSettings::default().validate(Source::Flags, false).unwrap();
        assert_eq!((file.header.pri, file.header.hostname), (None, None));
        let syslog = CefSettings::default().validate(Source::Flags, true).unwrap();
        assert_eq!(syslog.header.pri, Some(134));
        assert!(syslog.header.hostname.is_some());
        let chosen = CefSettings {
            pri: Some(true),
            facility: Some(Facility(1)),
            severity: Some(Severity(2)),
            hostname: Some(HostnameSetting::Named("siem-feed".into())),
            portal_url: Some("https://contoso.portal.cloudappsecurity.com/".into()),
            ..CefSettings::default()
        }
        .validate(Source::Flags, false)
        .unwrap();
        assert_eq!(chosen.header.pri, Some(10));
        assert_eq!(chosen.header.hostname.as_deref(), Some("siem-feed"));
        assert_eq!(chosen.portal_url, "https://contoso.portal.cloudappsecurity.com");
    }

    #[test]
    fn refusals_say_what_to_fix() {
        let named =
            |name: &str| CefSettings { hostname: Some(HostnameSetting::Named(name.into())), ..CefSettings::default() };
        assert_eq!(
            named("two words").validate(Source::AgentFile, true).unwrap_err().to_string(),
            "cef.hostname: \"two words\" must be one word without spaces or control characters"
        );
        let rfc5424_without_pri =
            CefSettings { header: Some(HeaderLayout::Rfc5424), pri: Some(false), ..CefSettings::default() };
        assert_eq!(
            rfc5424_without_pri.validate(Source::Flags, true).unwrap_err().to_string(),
            "--no-pri: contradicts --header rfc5424: an RFC 5424 header starts with <PRI>1"
        );
        assert_eq!(
            rfc5424_without_pri.validate(Source::AgentFile, true).unwrap_err().to_string(),
            "cef.pri: contradicts cef.header rfc5424: an RFC 5424 header starts with <PRI>1"
        );
        let portal = CefSettings { portal_url: Some("contoso".into()), ..CefSettings::default() };
        assert_eq!(
            portal.validate(Source::Flags, false).unwrap_err().to_string(),
            "--portal-url: \"contoso\" must start with https:// (or http://)"
        );
    }
}
