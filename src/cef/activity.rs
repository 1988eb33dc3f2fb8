//! The activity mapping: signature, name, severity 0 and the extension keys
//! in the fixed order of the original agent (see `cef-format.md`).

use super::CefLine;
use super::fields::{RecordFields, present};
use crate::json::JsonValue;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Writes everything after `CEF:0|MCAS|SIEM_Agent|<version>|`.
pub fn write(
    line: &mut CefLine<'_>,
    f: &RecordFields<'_, '_>,
    id: JsonValue<'_, '_>,
    timestamp: i64,
    portal_link: &[u8],
) {
    let signature = present(f.event_type_name);
    match signature {
        Some(_) => line.header_value(signature),
        None => line.raw(b"EVENT_CATEGORY_UNSPECIFIED"),
    }
    line.raw(b"|");
    let name = present(f.event_category).or(present(f.pretty_operation_name)).or(present(f.event_type_value));
    match (name, signature) {
        (Some(_), _) => line.header_value(name),
        (None, Some(_)) => line.header_value(signature),
        (None, None) => line.raw(b"EVENT_CATEGORY_UNSPECIFIED"),
    }
    line.raw(b"|0|externalId=");
    line.ext_value(Some(id));
    for key in [&b" rt="[..], b" start=", b" end="] {
        line.raw(key);
        line.int(timestamp);
    }
    line.raw(b" msg=");
    line.ext_value(f.description);
    line.raw(b" suser=");
    line.ext_value(f.user_name);
    line.raw(b" destinationServiceName=");
    line.ext_value(f.app_name);

    let client_ip = f.client_ip.and_then(|v| v.as_str());
    line.raw(b" dvc=");
    if let Some(ip) = client_ip.filter(|ip| ip.parse::<Ipv4Addr>().is_ok()) {
        line.raw(ip.as_bytes());
    }
    line.raw(b" requestClientApplication=");
    line.ext_value(f.user_agent);

    line.raw(b" cs1Label=portalURL cs1=");
    line.raw(portal_link);
    line.ext_value(Some(id));
    line.raw(b",)");

    line.raw(b" cs2Label=uniqueServiceAppIds cs2=");
    if present(f.app_id).is_some() {
        line.raw(b"APPID_");
        line.ext_value(f.app_id);
    }

    line.raw(b" cs3Label=targetObjects cs3=");
    if let Some(objects) = f.event_objects.and_then(|v| v.array()) {
        for (n, object) in objects.enumerate() {
            if n > 0 {
                line.raw(b",");
            }
            line.ext_value(object.get("name"));
        }
    }

    line.raw(b" cs4Label=policyIDs cs4=");
    if let Some(rules) = f.matching_rules.and_then(|v| v.array()) {
        for (n, rule) in rules.enumerate() {
            if n > 0 {
                line.raw(b",");
            }
            if rule.is_object() {
                line.ext_value(rule.get("id"));
            } else {
                line.ext_value(Some(rule));
            }
        }
    }

    line.raw(b" c6a1Label=\"Device IPv6 Address\" c6a1=");
    if let Some(ip) = client_ip.filter(|ip| ip.parse::<Ipv6Addr>().is_ok()) {
        line.raw(ip.as_bytes());
    }
}
