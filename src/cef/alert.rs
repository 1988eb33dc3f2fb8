//! The alert mapping: signature from the alert type or the policy type,
//! name from the policy, severity from `severityValue`, the entities the
//! extension reads — filled into the alert layout ([`super::layout`], the
//! key order of the original agent; see `cef-format.md`).

use super::CefLine;
use super::fields::{RecordFields, present};
use super::layout::{AlertLine, Joined, PortalUrl, Signature, every, itself, write_alert};
use crate::json::JsonValue;

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
    let alert = AlertLine {
        signature: match explicit_type {
            Some(value) => Signature::Value(value),
            None => Signature::Fixed(signature_for_policy_type(entities.policy_type.unwrap_or(""))),
        },
        name: present(entities.policy_label).or(f.title),
        severity: cef_severity(f.severity_value),
        id,
        start: timestamp,
        end: timestamp,
        msg: present(f.description).or(f.title),
        suser: present(entities.first_user_id).or(entities.first_account),
        service: entities.first_service_label,
        risk_score: f.threat_score,
        portal_url: if present(f.url).is_some() { PortalUrl::Value(f.url) } else { PortalUrl::AlertLink },
        apps: Joined::Each {
            array: f.entities,
            keep: |e| entity_type(e) == Some("service"),
            pick: |e| e.get("id"),
            prefix: b"APPID_",
        },
        audits: Joined::Each { array: f.audits, keep: every, pick: itself, prefix: b"" },
        policies: Joined::Each {
            array: f.entities,
            keep: |e| entity_type(e) == Some("policyRule"),
            pick: |e| e.get("id"),
            prefix: b"",
        },
        ip: entities.first_ip,
    };
    write_alert(line, &alert, alert_link);
}
