//! The two legacy line layouts — activity and alert — written once for
//! every source. Each mapping (Defender for Cloud Apps records, streaming
//! `CloudAppEvents`, Graph alerts) fills an [`ActivityLine`] or an
//! [`AlertLine`] with borrowed tape values and hands it here.
//!
//! This module owns what `cef-format.md` fixes for every source: the
//! header fallbacks, the extension keys and their order, labels, list
//! joining, and the IP rules (`dvc`/`c6a1` for activities, `src` or `c6a1`
//! written only when valid for alerts). It knows no source's field names.

use super::CefLine;
use super::fields::present;
use crate::json::JsonValue;
use std::net::Ipv6Addr;

const UNSPECIFIED: &[u8] = b"EVENT_CATEGORY_UNSPECIFIED";

/// Picks a value out of a list entry (or `None` to leave the slot empty).
pub type Pick<'t, 'i> = fn(JsonValue<'t, 'i>) -> Option<JsonValue<'t, 'i>>;

/// A comma-joined list value.
#[derive(Clone, Copy)]
pub enum Joined<'t, 'i> {
    /// `pick` of every entry of `array` that `keep` accepts, each after
    /// `prefix` (entries without the value stay as empty slots).
    Each {
        array: Option<JsonValue<'t, 'i>>,
        keep: fn(JsonValue<'t, 'i>) -> bool,
        pick: Pick<'t, 'i>,
        prefix: &'static [u8],
    },
    /// One value (empty when absent).
    One(Option<JsonValue<'t, 'i>>),
}

impl Joined<'_, '_> {
    fn write(&self, line: &mut CefLine<'_>) {
        match *self {
            Joined::One(value) => line.ext_value(value),
            Joined::Each { array, keep, pick, prefix } => {
                let Some(items) = array.and_then(|a| a.array()) else { return };
                for (n, item) in items.filter(|item| keep(*item)).enumerate() {
                    if n > 0 {
                        line.raw(b",");
                    }
                    line.raw(prefix);
                    line.ext_value(pick(item));
                }
            }
        }
    }
}

/// Every entry of a list.
pub fn every(_: JsonValue<'_, '_>) -> bool {
    true
}

/// An entry as it is.
pub fn itself<'t, 'i>(value: JsonValue<'t, 'i>) -> Option<JsonValue<'t, 'i>> {
    Some(value)
}

/// The values of an activity line.
pub struct ActivityLine<'t, 'i> {
    /// Else `EVENT_CATEGORY_UNSPECIFIED`.
    pub signature: Option<JsonValue<'t, 'i>>,
    /// Else the signature.
    pub name: Option<JsonValue<'t, 'i>>,
    pub id: JsonValue<'t, 'i>,
    /// `rt`, `start` and `end`, and the header time.
    pub timestamp: i64,
    /// `msg`: the present ones, joined by `: `.
    pub msg: [Option<JsonValue<'t, 'i>>; 2],
    pub suser: Option<JsonValue<'t, 'i>>,
    pub service: Option<JsonValue<'t, 'i>>,
    /// `dvc` when IPv4, `c6a1` when IPv6.
    pub ip: Option<&'i str>,
    pub user_agent: Option<JsonValue<'t, 'i>>,
    /// `cs2` is `APPID_<app_id>` when present, else empty.
    pub app_id: Option<JsonValue<'t, 'i>>,
    /// `cs3`: the target objects' names.
    pub objects: Joined<'t, 'i>,
    /// `cs4`: the policy ids.
    pub policies: Joined<'t, 'i>,
}

/// Writes everything after `CEF:0|MCAS|SIEM_Agent|<version>|`.
pub fn write_activity(line: &mut CefLine<'_>, a: &ActivityLine<'_, '_>, portal_link: &[u8]) {
    let signature = present(a.signature);
    match signature {
        Some(_) => line.header_value(signature),
        None => line.raw(UNSPECIFIED),
    }
    line.raw(b"|");
    match present(a.name).or(signature) {
        Some(name) => line.header_value(Some(name)),
        None => line.raw(UNSPECIFIED),
    }
    line.raw(b"|0|externalId=");
    line.ext_value(Some(a.id));
    let mut digits = itoa::Buffer::new();
    let timestamp = digits.format(a.timestamp).as_bytes();
    for key in [&b" rt="[..], b" start=", b" end="] {
        line.raw(key);
        line.raw(timestamp);
    }
    line.raw(b" msg=");
    let mut first = true;
    for part in a.msg.into_iter().filter_map(present) {
        if !first {
            line.raw(b": ");
        }
        first = false;
        line.ext_value(Some(part));
    }
    line.raw(b" suser=");
    line.ext_value(a.suser);
    line.raw(b" destinationServiceName=");
    line.ext_value(a.service);
    let ip = a.ip.map(|ip| (ip, IpKind::of(ip)));
    line.raw(b" dvc=");
    if let Some((ip, IpKind::V4)) = ip {
        line.raw(ip.as_bytes());
    }
    line.raw(b" requestClientApplication=");
    line.ext_value(a.user_agent);

    line.raw(b" cs1Label=portalURL cs1=");
    line.raw(portal_link);
    line.ext_value(Some(a.id));
    line.raw(b",)");
    line.raw(b" cs2Label=uniqueServiceAppIds cs2=");
    if present(a.app_id).is_some() {
        line.raw(b"APPID_");
        line.ext_value(a.app_id);
    }
    line.raw(b" cs3Label=targetObjects cs3=");
    a.objects.write(line);
    line.raw(b" cs4Label=policyIDs cs4=");
    a.policies.write(line);
    line.raw(b" c6a1Label=\"Device IPv6 Address\" c6a1=");
    if let Some((ip, IpKind::V6)) = ip {
        line.raw(ip.as_bytes());
    }
}

/// An alert's signature.
#[derive(Clone, Copy)]
pub enum Signature<'t, 'i> {
    Value(JsonValue<'t, 'i>),
    Fixed(&'static [u8]),
}

/// An alert's `cs1`.
#[derive(Clone, Copy)]
pub enum PortalUrl<'t, 'i> {
    /// This value (empty when absent).
    Value(Option<JsonValue<'t, 'i>>),
    /// `<portal-url>/#/alerts/<id>`.
    AlertLink,
}

/// The values of an alert line.
pub struct AlertLine<'t, 'i> {
    pub signature: Signature<'t, 'i>,
    pub name: Option<JsonValue<'t, 'i>>,
    /// The CEF severity digit.
    pub severity: &'static [u8],
    pub id: JsonValue<'t, 'i>,
    pub start: i64,
    pub end: i64,
    pub msg: Option<JsonValue<'t, 'i>>,
    pub suser: Option<JsonValue<'t, 'i>>,
    pub service: Option<JsonValue<'t, 'i>>,
    /// `cn1`.
    pub risk_score: Option<JsonValue<'t, 'i>>,
    pub portal_url: PortalUrl<'t, 'i>,
    /// `cs2`, `cs3`, `cs4`.
    pub apps: Joined<'t, 'i>,
    pub audits: Joined<'t, 'i>,
    pub policies: Joined<'t, 'i>,
    /// `src` when IPv4, `c6a1` when IPv6, nothing otherwise.
    pub ip: Option<&'i str>,
}

/// Writes everything after `CEF:0|MCAS|SIEM_Agent|<version>|`.
pub fn write_alert(line: &mut CefLine<'_>, a: &AlertLine<'_, '_>, alert_link: &[u8]) {
    match a.signature {
        Signature::Value(value) => line.header_value(Some(value)),
        Signature::Fixed(text) => line.raw(text),
    }
    line.raw(b"|");
    line.header_value(a.name);
    line.raw(b"|");
    line.raw(a.severity);
    line.raw(b"|externalId=");
    line.ext_value(Some(a.id));
    line.raw(b" start=");
    line.int(a.start);
    line.raw(b" end=");
    line.int(a.end);
    line.raw(b" msg=");
    line.ext_value(a.msg);
    line.raw(b" suser=");
    line.ext_value(a.suser);
    line.raw(b" destinationServiceName=");
    line.ext_value(a.service);
    line.raw(b" cn1Label=riskScore cn1=");
    line.ext_value(a.risk_score);
    line.raw(b" cs1Label=portalURL cs1=");
    match a.portal_url {
        PortalUrl::Value(value) => line.ext_value(value),
        PortalUrl::AlertLink => {
            line.raw(alert_link);
            line.ext_value(Some(a.id));
        }
    }
    line.raw(b" cs2Label=uniqueServiceAppIds cs2=");
    a.apps.write(line);
    line.raw(b" cs3Label=relatedAudits cs3=");
    a.audits.write(line);
    line.raw(b" cs4Label=policyIDs cs4=");
    a.policies.write(line);
    if let Some(ip) = a.ip {
        match IpKind::of(ip) {
            IpKind::V4 => {
                line.raw(b" src=");
                line.raw(ip.as_bytes());
            }
            IpKind::V6 => {
                line.raw(b" c6a1Label=\"Device IPv6 Address\" c6a1=");
                line.raw(ip.as_bytes());
            }
            IpKind::Neither => {}
        }
    }
}

/// What an address text is, by the rules of the standard library's
/// parsers (`Ipv4Addr`/`Ipv6Addr` `FromStr`), which the output contract
/// follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IpKind {
    V4,
    V6,
    Neither,
}

impl IpKind {
    fn of(ip: &str) -> Self {
        // Every IPv6 text has a `:` (eight groups need seven, fewer need
        // `::`) and no IPv4 text has one: only those go to the (slower)
        // IPv6 parser.
        if memchr::memchr(b':', ip.as_bytes()).is_some() {
            if ip.parse::<Ipv6Addr>().is_ok() { IpKind::V6 } else { IpKind::Neither }
        } else if is_ipv4(ip.as_bytes()) {
            IpKind::V4
        } else {
            IpKind::Neither
        }
    }
}

/// True when `text` parses as an [`std::net::Ipv4Addr`]: four decimal
/// octets of 1–3 digits, each at most 255, without a leading zero, joined
/// by `.`, nothing else. One pass instead of the standard parser's
/// backtracking one (the address is checked on every activity).
fn is_ipv4(text: &[u8]) -> bool {
    let mut octets = 0;
    let mut at = 0;
    loop {
        let mut value = 0u32;
        let mut digits = 0;
        while let Some(&b) = text.get(at).filter(|b| b.is_ascii_digit()) {
            value = value * 10 + u32::from(b - b'0');
            digits += 1;
            at += 1;
            if digits > 3 {
                return false;
            }
        }
        if digits == 0 || value > 255 || (digits > 1 && text[at - digits] == b'0') {
            return false;
        }
        octets += 1;
        match text.get(at) {
            None => return octets == 4,
            Some(b'.') if octets < 4 => at += 1,
            Some(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn std_kind(ip: &str) -> IpKind {
        if ip.parse::<Ipv4Addr>().is_ok() {
            IpKind::V4
        } else if ip.parse::<Ipv6Addr>().is_ok() {
            IpKind::V6
        } else {
            IpKind::Neither
        }
    }

    #[test]
    fn ip_kinds_agree_with_the_standard_parsers_on_edge_cases() {
        for ip in [
            "0.0.0.0",
            "255.255.255.255",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1.2.3.04",
            "1.2.3.0",
            "1.2.3.4.",
            ".1.2.3.4",
            "1..2.3",
            "1.2.3.4 ",
            " 1.2.3.4",
            "1.2.3.1000",
            "001.2.3.4",
            "1.2.3.-4",
            "+1.2.3.4",
            "",
            ".",
            "1.2.3.4\n",
            "１.2.3.4",
            "::",
            "::1",
            "::ffff:1.2.3.4",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7:8:9",
            "fe80::1%eth0",
            "2001:db8::1.2.3.4",
            "1.2.3.4:80",
            "[::1]",
            "999.999.999.999",
            "198.197.88.34",
            "10.0.0.255",
            "127.000.0.1",
            "1.2.3.4/24",
        ] {
            assert_eq!(IpKind::of(ip), std_kind(ip), "{ip:?}");
        }
    }

    proptest! {
        #[test]
        fn ip_kinds_agree_with_the_standard_parsers(ip in "[0-9a-f.:]{0,20}") {
            prop_assert_eq!(IpKind::of(&ip), std_kind(&ip));
        }

        #[test]
        fn ipv4_like_texts_agree_with_the_standard_parser(
            octets in proptest::collection::vec("0{0,2}[0-9]{1,3}", 0..6),
            sep in "[.]|[.][.]|:|,",
        ) {
            let ip = octets.join(&sep);
            prop_assert_eq!(IpKind::of(&ip), std_kind(&ip));
        }

        #[test]
        fn any_text_agrees_with_the_standard_parsers(ip in any::<String>()) {
            prop_assert_eq!(IpKind::of(&ip), std_kind(&ip));
        }
    }
}
