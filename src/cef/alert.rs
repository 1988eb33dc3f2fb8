//! The alert mapping: signature from the alert type or the policy type,
//! name from the policy, severity from `severityValue`, and the extension
//! keys in the fixed order of the original agent (see `cef-format.md`).

use super::CefLine;
use super::fields::{RecordFields, present};
use crate::json::JsonValue;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The entities an alert's line reads, found in one walk of `entities`.
#[derive(Default)]
struct Entities<'t, 'i> {
    policy_label: Option<JsonValue<'t, 'i>>,
    policy_type: Option<&'i str>,
    first_user_id: Option<JsonValue<'t, 'i>>,
    first_account: Option<JsonValue<'t, 'i>>,
    first_service_label: Option<JsonValue<'t, 'i>>,
    first_ip: Option<&'i str>,
}

fn entity_type<'i>(entity: JsonValue<'_, 'i>) -> Option<&'i str> {
    entity.get("type").and_then(|t| t.as_str())
}

impl<'t, 'i> Entities<'t, 'i> {
    fn scan(entities: Option<JsonValue<'t, 'i>>) -> Self {
        let mut found = Self::default();
        let Some(list) = entities.and_then(|e| e.array()) else {
            return found;
        };
        let mut seen_policy = false;
        let mut seen_user = false;
        let mut seen_account = false;
        let mut seen_service = false;
        let mut seen_ip = false;
        for entity in list {
            match entity_type(entity) {
                Some("policyRule") if !seen_policy => {
                    seen_policy = true;
                    found.policy_label = entity.get("label");
                    found.policy_type = entity.get("policyType").and_then(|t| t.as_str());
                }
                Some("user") if !seen_user => {
                    seen_user = true;
                    found.first_user_id = entity.get("id");
                }
                Some("account") if !seen_account => {
                    seen_account = true;
                    found.first_account = present(entity.get("pa")).or(entity.get("label"));
                }
                Some("service") if !seen_service => {
                    seen_service = true;
                    found.first_service_label = entity.get("label");
                }
                Some("ip") if !seen_ip => {
                    seen_ip = true;
                    found.first_ip = present(entity.get("id")).or(entity.get("label")).and_then(|v| v.as_str());
                }
                _ => {}
            }
        }
        found
    }
}

/// The signature for a policy type, as the original agent named them.
fn signature_for_policy_type(policy_type: &str) -> &'static [u8] {
    match policy_type {
        "AUDIT" => b"ALERT_CABINET_EVENT_MATCH_AUDIT",
        "FILE" => b"ALERT_CABINET_EVENT_MATCH_FILE",
        "SESSION" | "INLINE" => b"ALERT_CABINET_INLINE_EVENT_MATCH",
        "OBJECT" => b"ALERT_CABINET_EVENT_MATCH_OBJECT",
        "NEW_SERVICE" => b"ALERT_CABINET_DISCOVERY_NEW_SERVICE",
        "ANOMALY_DETECTION" => b"ALERT_SUSPICIOUS_ACTIVITY",
        _ => b"ALERT_UNKNOWN",
    }
}

/// CEF severity for `severityValue`: LOW 3, MEDIUM 6, HIGH 8, INFORMATIONAL 1.
fn cef_severity(severity_value: Option<JsonValue<'_, '_>>) -> &'static [u8] {
    match severity_value.and_then(|v| v.as_i64_lenient()) {
        Some(1) => b"6",
        Some(2) => b"8",
        Some(3) => b"1",
        _ => b"3",
    }
}

/// Comma-joins `field` of every entity of `wanted` type, each after `prefix`.
fn join_entities(
    line: &mut CefLine<'_>,
    entities: Option<JsonValue<'_, '_>>,
    wanted: &str,
    field: &str,
    prefix: &[u8],
) {
    let Some(list) = entities.and_then(|e| e.array()) else { return };
    let mut first = true;
    for entity in list.filter(|e| entity_type(*e) == Some(wanted)) {
        if !first {
            line.raw(b",");
        }
        first = false;
        line.raw(prefix);
        line.ext_value(entity.get(field));
    }
}

/// Writes everything after `CEF:0|MCAS|SIEM_Agent|<version>|`.
pub fn write(
    line: &mut CefLine<'_>,
    f: &RecordFields<'_, '_>,
    id: JsonValue<'_, '_>,
    timestamp: i64,
    alert_link: &[u8],
) {
    let entities = Entities::scan(f.entities);

    let explicit_type =
        [f.alert_type, f.type_name].into_iter().flatten().find(|v| v.as_str().is_some_and(|s| s.starts_with("ALERT_")));
    match explicit_type {
        Some(_) => line.header_value(explicit_type),
        None => line.raw(signature_for_policy_type(entities.policy_type.unwrap_or(""))),
    }
    line.raw(b"|");
    line.header_value(present(entities.policy_label).or(f.title));
    line.raw(b"|");
    line.raw(cef_severity(f.severity_value));

    line.raw(b"|externalId=");
    line.ext_value(Some(id));
    line.raw(b" start=");
    line.int(timestamp);
    line.raw(b" end=");
    line.int(timestamp);
    line.raw(b" msg=");
    line.ext_value(present(f.description).or(f.title));
    line.raw(b" suser=");
    line.ext_value(present(entities.first_user_id).or(entities.first_account));
    line.raw(b" destinationServiceName=");
    line.ext_value(entities.first_service_label);
    line.raw(b" cn1Label=riskScore cn1=");
    line.ext_value(f.threat_score);

    line.raw(b" cs1Label=portalURL cs1=");
    if present(f.url).is_some() {
        line.ext_value(f.url);
    } else {
        line.raw(alert_link);
        line.ext_value(Some(id));
    }
    line.raw(b" cs2Label=uniqueServiceAppIds cs2=");
    join_entities(line, f.entities, "service", "id", b"APPID_");
    line.raw(b" cs3Label=relatedAudits cs3=");
    if let Some(audits) = f.audits.and_then(|a| a.array()) {
        for (n, audit) in audits.enumerate() {
            if n > 0 {
                line.raw(b",");
            }
            line.ext_value(Some(audit));
        }
    }
    line.raw(b" cs4Label=policyIDs cs4=");
    join_entities(line, f.entities, "policyRule", "id", b"");

    if let Some(ip) = entities.first_ip {
        if ip.parse::<Ipv4Addr>().is_ok() {
            line.raw(b" src=");
            line.raw(ip.as_bytes());
        } else if ip.parse::<Ipv6Addr>().is_ok() {
            line.raw(b" c6a1Label=\"Device IPv6 Address\" c6a1=");
            line.raw(ip.as_bytes());
        }
    }
}
