//! The Graph mapping: a Microsoft Graph security `alerts_v2` alert written
//! in the legacy alert layout, key for key (`successor-sources.md`), so SIEM
//! rules built on the retired agent's alert lines keep working.
//!
//! It owns the scan of an alert's keys and of its `evidence` (typed by
//! `@odata.type`), the checks a line needs (an id, a start time) and which
//! key fills which part of the alert layout ([`super::layout`]). It writes straight from the parsed tape and allocates nothing.
//! It does not know how alerts are fetched.

use super::fields::present;
use super::layout::{AlertLine, Joined, PortalUrl, Signature, write_alert};
use super::{CefLine, RecordError, usable_id};
use crate::json::JsonValue;
use crate::time::parse_iso8601_ms;

/// Graph writes 0-7 fraction digits (`2024-05-01T12:00:00.1234567Z`).
const MAX_FRACTION_DIGITS: usize = 7;

/// The keys of an alert the mapping reads, borrowed from the tape.
#[derive(Default, Clone, Copy)]
pub struct AlertFields<'t, 'i> {
    pub id: Option<JsonValue<'t, 'i>>,
    pub provider_alert_id: Option<JsonValue<'t, 'i>>,
    pub detector_id: Option<JsonValue<'t, 'i>>,
    pub title: Option<JsonValue<'t, 'i>>,
    pub severity: Option<JsonValue<'t, 'i>>,
    pub description: Option<JsonValue<'t, 'i>>,
    pub created: Option<JsonValue<'t, 'i>>,
    pub first_activity: Option<JsonValue<'t, 'i>>,
    pub last_activity: Option<JsonValue<'t, 'i>>,
    pub alert_web_url: Option<JsonValue<'t, 'i>>,
    pub alert_policy_id: Option<JsonValue<'t, 'i>>,
    pub evidence: Option<JsonValue<'t, 'i>>,
}

/// What every alert line needs.
pub struct Required<'t, 'i> {
    /// `providerAlertId`, else `id`.
    pub external_id: JsonValue<'t, 'i>,
    /// `firstActivityDateTime`, else `createdDateTime` (epoch ms).
    pub start: i64,
    /// `lastActivityDateTime`, else `start`.
    pub end: i64,
}

/// An ISO 8601 time field: `Ok(None)` when absent, null or empty; an error
/// naming the field when it is there but not a time.
fn time_of(value: Option<JsonValue<'_, '_>>, field: &'static str) -> Result<Option<i64>, RecordError> {
    let Some(value) = present(value) else { return Ok(None) };
    value
        .as_str()
        .and_then(|t| parse_iso8601_ms(t.as_bytes(), MAX_FRACTION_DIGITS))
        .map(Some)
        .ok_or(RecordError::BadIsoTime(field))
}

impl<'t, 'i> AlertFields<'t, 'i> {
    pub fn scan(alert: JsonValue<'t, 'i>) -> Self {
        let mut fields = Self::default();
        let Some(object) = alert.object() else { return fields };
        for (key, value) in object {
            let slot = match key {
                "id" => &mut fields.id,
                "providerAlertId" => &mut fields.provider_alert_id,
                "detectorId" => &mut fields.detector_id,
                "title" => &mut fields.title,
                "severity" => &mut fields.severity,
                "description" => &mut fields.description,
                "createdDateTime" => &mut fields.created,
                "firstActivityDateTime" => &mut fields.first_activity,
                "lastActivityDateTime" => &mut fields.last_activity,
                "alertWebUrl" => &mut fields.alert_web_url,
                "alertPolicyId" => &mut fields.alert_policy_id,
                "evidence" => &mut fields.evidence,
                _ => continue,
            };
            *slot = Some(value);
        }
        fields
    }

    /// `createdDateTime` in epoch ms: the time Graph pages by.
    pub fn created_ms(&self) -> Result<i64, RecordError> {
        time_of(self.created, "createdDateTime")?.ok_or(RecordError::Missing("createdDateTime"))
    }

    /// The id and times, or why the alert cannot be written.
    pub fn required(&self) -> Result<Required<'t, 'i>, RecordError> {
        let external_id = usable_id(self.provider_alert_id).or(usable_id(self.id)).ok_or(RecordError::Missing("id"))?;
        let start = match time_of(self.first_activity, "firstActivityDateTime")? {
            Some(first) => first,
            None => time_of(self.created, "createdDateTime")?.ok_or(RecordError::Missing("createdDateTime"))?,
        };
        let end = time_of(self.last_activity, "lastActivityDateTime")?.unwrap_or(start);
        Ok(Required { external_id, start, end })
    }
}

/// The kinds of evidence the mapping reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum EvidenceType {
    User,
    CloudApplication,
    Ip,
    Other,
}

fn evidence_type(evidence: JsonValue<'_, '_>) -> EvidenceType {
    let Some(name) = evidence.get("@odata.type").and_then(|t| t.as_str()) else { return EvidenceType::Other };
    match name.strip_prefix('#').unwrap_or(name) {
        "microsoft.graph.security.userEvidence" => EvidenceType::User,
        "microsoft.graph.security.cloudApplicationEvidence" => EvidenceType::CloudApplication,
        "microsoft.graph.security.ipEvidence" => EvidenceType::Ip,
        _ => EvidenceType::Other,
    }
}

/// What the line reads from the first evidence of each type.
#[derive(Default)]
struct FirstEvidence<'t, 'i> {
    user: Option<JsonValue<'t, 'i>>,
    application_name: Option<JsonValue<'t, 'i>>,
    ip: Option<&'i str>,
}

impl<'t, 'i> FirstEvidence<'t, 'i> {
    fn scan(evidence: Option<JsonValue<'t, 'i>>) -> Self {
        let mut found = Self::default();
        let Some(list) = evidence.and_then(|e| e.array()) else { return found };
        let (mut seen_user, mut seen_app, mut seen_ip) = (false, false, false);
        for item in list {
            match evidence_type(item) {
                EvidenceType::User if !seen_user => {
                    seen_user = true;
                    let account = item.get("userAccount");
                    let field = |name: &str| account.and_then(|a| a.get(name));
                    found.user =
                        present(field("userPrincipalName")).or(present(field("accountName"))).or(field("displayName"));
                }
                EvidenceType::CloudApplication if !seen_app => {
                    seen_app = true;
                    found.application_name = item.get("displayName");
                }
                EvidenceType::Ip if !seen_ip => {
                    seen_ip = true;
                    found.ip = item.get("ipAddress").and_then(|v| v.as_str());
                }
                _ => {}
            }
        }
        found
    }
}

/// CEF severity for Graph's `severity` (its enum values, as Graph spells
/// them; `low`, `unknownFutureValue`, a missing value and anything else: 3).
fn cef_severity(severity: Option<JsonValue<'_, '_>>) -> &'static [u8] {
    match severity.and_then(|v| v.as_str()) {
        Some("informational") => b"1",
        Some("medium") => b"6",
        Some("high") => b"8",
        _ => b"3",
    }
}

/// Writes everything after `CEF:0|MCAS|SIEM_Agent|<version>|`.
pub fn write(line: &mut CefLine<'_>, a: &AlertFields<'_, '_>, required: &Required<'_, '_>) {
    let evidence = FirstEvidence::scan(a.evidence);
    let alert = AlertLine {
        signature: match present(a.detector_id) {
            Some(detector) => Signature::Value(detector),
            None => Signature::Fixed(b"ALERT_UNKNOWN"),
        },
        name: a.title,
        severity: cef_severity(a.severity),
        id: required.external_id,
        start: required.start,
        end: required.end,
        msg: present(a.description).or(a.title),
        suser: evidence.user,
        service: evidence.application_name,
        risk_score: None,
        portal_url: PortalUrl::Value(a.alert_web_url),
        apps: Joined::Each {
            array: a.evidence,
            keep: |e| evidence_type(e) == EvidenceType::CloudApplication,
            pick: |e| e.get("appId"),
            prefix: b"APPID_",
        },
        audits: Joined::One(None),
        policies: Joined::One(a.alert_policy_id),
        ip: evidence.ip,
    };
    // The alert layout's `<portal>/#/alerts/<id>` link is never used here.
    write_alert(line, &alert, b"");
}
