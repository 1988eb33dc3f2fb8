#![allow(dead_code)]
//! The CEF mapping contract (`docs/cef-format.md`, and for the successor
//! sources `docs/successor-sources.md`) as a small model, written from the
//! documents and not from cefwire's code: given the fields of an activity,
//! an alert, a streaming `CloudAppEvents` record or a Graph alert, the JSON
//! record to feed in and the values an independent parser must read back
//! (header fields and every extension key, in order). Shared by the round-trip properties (`roundtrip.rs`),
//! the `cefp` check and the fuzz targets (`fuzz/` includes this file by
//! path), so all three check the same reading of the contract.
//!
//! Only `serde_json` and `std` are used here, so the fuzz crate can build
//! it too.

use serde_json::{Value, json};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Portal URL and device version every model line is rendered with.
pub const PORTAL: &str = "https://p.example";
pub const DEVICE_VERSION: &str = "1|2\\3";

/// An extension value read back: control characters other than TAB, CR
/// and LF become a space (CR and LF survive as `\r` `\n` escapes).
pub fn expected_extension(s: &str) -> String {
    s.chars().map(|c| if (c < ' ' && !matches!(c, '\t' | '\r' | '\n')) || c == '\u{7f}' { ' ' } else { c }).collect()
}

/// A header field read back: every control character but TAB becomes a
/// space (CR and LF included).
pub fn expected_header(s: &str) -> String {
    s.chars().map(|c| if (c < ' ' && c != '\t') || c == '\u{7f}' { ' ' } else { c }).collect()
}

/// "X; else Y" takes Y when X is missing, `null` or the empty string.
fn present(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|v| !v.is_empty())
}

/// What a parser must read back from one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// device version, signature, name, severity (header fields 4–7).
    pub header: [String; 4],
    /// Every extension key in the contract's order with its value.
    pub extension: Vec<(&'static str, String)>,
}

/// The fields of an activity the model varies.
#[derive(Debug, Clone)]
pub struct Activity {
    pub id: String,
    pub timestamp: i64,
    /// Sent as a string (`"timestamp":"1511373004000"`).
    pub timestamp_as_string: bool,
    pub signature: Option<String>,
    pub category: Option<String>,
    pub pretty_operation: Option<String>,
    pub event_type_value: Option<String>,
    pub description: String,
    pub user: String,
    pub app: String,
    pub app_id: String,
    pub client_ip: Option<String>,
    pub agent: String,
    pub objects: Vec<Option<String>>,
    /// `matchingRules` entries: `Ok(id)` as a string, `Err(id)` as `{"id": id}`.
    pub rules: Vec<Result<String, String>>,
}

impl Activity {
    pub fn json(&self) -> Value {
        let mut record = json!({
            "_id": self.id,
            "timestamp": if self.timestamp_as_string { json!(self.timestamp.to_string()) } else { json!(self.timestamp) },
            // Always an activity for `--kind auto`, even without a signature.
            "eventType": 1,
            "description": self.description,
            "user": {"userName": self.user},
            "appName": self.app,
            "appId": self.app_id,
            "device": {"userAgent": self.agent},
            "mainInfo": {
                "eventObjects": self.objects.iter().map(|n| match n {
                    Some(name) => json!({"name": name}),
                    None => json!({"id": 1}),
                }).collect::<Vec<_>>(),
            },
            "matchingRules": self.rules.iter().map(|r| match r {
                Ok(id) => json!(id),
                Err(id) => json!({"id": id}),
            }).collect::<Vec<_>>(),
        });
        if let Some(s) = &self.signature {
            record["eventTypeName"] = json!(s);
        }
        if let Some(c) = &self.category {
            record["description_metadata"] = json!({"event_category": c});
        }
        if let Some(p) = &self.pretty_operation {
            record["mainInfo"]["prettyOperationName"] = json!(p);
        }
        if let Some(v) = &self.event_type_value {
            record["eventTypeValue"] = json!(v);
        }
        if let Some(ip) = &self.client_ip {
            record["device"]["clientIP"] = json!(ip);
        }
        record
    }

    pub fn expected(&self) -> Expected {
        let ext = expected_extension;
        let signature = present(&self.signature).unwrap_or("EVENT_CATEGORY_UNSPECIFIED").to_owned();
        let name = present(&self.category)
            .or(present(&self.pretty_operation))
            .or(present(&self.event_type_value))
            .unwrap_or(&signature)
            .to_owned();
        let ip = self.client_ip.as_deref().unwrap_or("");
        let (dvc, v6) = ip_fields(ip);
        let ts = self.timestamp.to_string();
        let objects: Vec<&str> = self.objects.iter().map(|n| n.as_deref().unwrap_or("")).collect();
        let rules: Vec<&str> = self.rules.iter().map(|r| r.as_deref().unwrap_or_else(|id| id.as_str())).collect();
        Expected {
            header: [expected_header(DEVICE_VERSION), expected_header(&signature), expected_header(&name), "0".into()],
            extension: vec![
                ("externalId", ext(&self.id)),
                ("rt", ts.clone()),
                ("start", ts.clone()),
                ("end", ts),
                ("msg", ext(&self.description)),
                ("suser", ext(&self.user)),
                ("destinationServiceName", ext(&self.app)),
                ("dvc", if dvc { ip.to_owned() } else { String::new() }),
                ("requestClientApplication", ext(&self.agent)),
                ("cs1Label", "portalURL".into()),
                ("cs1", format!("{PORTAL}/#/audits?activity.id=eq({},)", ext(&self.id))),
                ("cs2Label", "uniqueServiceAppIds".into()),
                // An empty `appId` is an empty value ("empty values are
                // written as `key=`"), not a bare prefix.
                ("cs2", if self.app_id.is_empty() { String::new() } else { format!("APPID_{}", ext(&self.app_id)) }),
                ("cs3Label", "targetObjects".into()),
                ("cs3", ext(&objects.join(","))),
                ("cs4Label", "policyIDs".into()),
                ("cs4", ext(&rules.join(","))),
                ("c6a1Label", "\"Device IPv6 Address\"".into()),
                ("c6a1", if v6 { ip.to_owned() } else { String::new() }),
            ],
        }
    }
}

/// (is IPv4, is IPv6) as Rust's `std::net` parsers judge the text.
pub fn ip_fields(text: &str) -> (bool, bool) {
    (text.parse::<Ipv4Addr>().is_ok(), text.parse::<Ipv6Addr>().is_ok())
}

/// The contract's policy-type table.
pub const POLICY_TYPES: &[(&str, &str)] = &[
    ("AUDIT", "ALERT_CABINET_EVENT_MATCH_AUDIT"),
    ("FILE", "ALERT_CABINET_EVENT_MATCH_FILE"),
    ("SESSION", "ALERT_CABINET_INLINE_EVENT_MATCH"),
    ("INLINE", "ALERT_CABINET_INLINE_EVENT_MATCH"),
    ("OBJECT", "ALERT_CABINET_EVENT_MATCH_OBJECT"),
    ("NEW_SERVICE", "ALERT_CABINET_DISCOVERY_NEW_SERVICE"),
    ("ANOMALY_DETECTION", "ALERT_SUSPICIOUS_ACTIVITY"),
];

/// The fields of an alert the model varies.
#[derive(Debug, Clone)]
pub struct Alert {
    pub id: String,
    pub timestamp: i64,
    pub alert_type: Option<String>,
    pub policy_type: Option<String>,
    pub policy_label: Option<String>,
    pub policy_id: String,
    pub title: String,
    pub description: Option<String>,
    /// `severityValue`: `None` leaves it out.
    pub severity: Option<i64>,
    pub service_label: String,
    pub service_id: String,
    /// `Ok(id)`: a `user` entity; `Err(pa)`: an `account` entity with `pa`
    /// (both with the label `not this`).
    pub user: Result<String, String>,
    pub threat_score: i64,
    pub url: Option<String>,
    pub audits: Vec<String>,
    /// The `id` of an `ip` entity (its `label` is `10.9.9.9`).
    pub ip: Option<String>,
}

impl Alert {
    pub fn json(&self) -> Value {
        let mut policy = json!({"type": "policyRule", "id": self.policy_id});
        if let Some(t) = &self.policy_type {
            policy["policyType"] = json!(t);
        }
        if let Some(l) = &self.policy_label {
            policy["label"] = json!(l);
        }
        let user = match &self.user {
            Ok(id) => json!({"type": "user", "id": id, "label": "not this"}),
            Err(pa) => json!({"type": "account", "pa": pa, "label": "not this"}),
        };
        let mut entities =
            vec![policy, json!({"type": "service", "label": self.service_label, "id": self.service_id}), user];
        if let Some(ip) = &self.ip {
            entities.push(json!({"type": "ip", "id": ip, "label": "10.9.9.9"}));
        }
        let mut record = json!({
            "_id": self.id, "timestamp": self.timestamp, "title": self.title,
            "threatScore": self.threat_score, "audits": self.audits, "entities": entities,
        });
        if let Some(t) = &self.alert_type {
            record["alertType"] = json!(t);
        }
        if let Some(d) = &self.description {
            record["description"] = json!(d);
        }
        if let Some(s) = self.severity {
            record["severityValue"] = json!(s);
        }
        if let Some(u) = &self.url {
            record["URL"] = json!(u);
        }
        record
    }

    pub fn expected(&self) -> Expected {
        let ext = expected_extension;
        let signature = match self.alert_type.as_deref().filter(|t| t.starts_with("ALERT_")) {
            Some(t) => t.to_owned(),
            None => self
                .policy_type
                .as_deref()
                .and_then(|p| POLICY_TYPES.iter().find(|(k, _)| *k == p))
                .map_or("ALERT_UNKNOWN", |(_, s)| s)
                .to_owned(),
        };
        let name = present(&self.policy_label).unwrap_or(&self.title).to_owned();
        let severity = match self.severity {
            Some(1) => "6",
            Some(2) => "8",
            Some(3) => "1",
            _ => "3",
        };
        let ts = self.timestamp.to_string();
        // The first `user` entity's `id`; else the first `account`
        // entity's `pa`, else its `label`.
        let user = match &self.user {
            Ok(id) => ext(id),
            Err(pa) if pa.is_empty() => "not this".to_owned(),
            Err(pa) => ext(pa),
        };
        let link = match present(&self.url) {
            Some(url) => ext(url),
            None => format!("{PORTAL}/#/alerts/{}", ext(&self.id)),
        };
        let mut extension = vec![
            ("externalId", ext(&self.id)),
            ("start", ts.clone()),
            ("end", ts),
            ("msg", ext(present(&self.description).unwrap_or(&self.title))),
            ("suser", user),
            ("destinationServiceName", ext(&self.service_label)),
            ("cn1Label", "riskScore".into()),
            ("cn1", self.threat_score.to_string()),
            ("cs1Label", "portalURL".into()),
            ("cs1", link),
            ("cs2Label", "uniqueServiceAppIds".into()),
            ("cs2", format!("APPID_{}", ext(&self.service_id))),
            ("cs3Label", "relatedAudits".into()),
            ("cs3", ext(&self.audits.join(","))),
            ("cs4Label", "policyIDs".into()),
            ("cs4", ext(&self.policy_id)),
        ];
        // The first `ip` entity's `id`, else its `label`.
        let ip = match self.ip.as_deref() {
            Some("") => "10.9.9.9",
            Some(id) => id,
            None => "",
        };
        match ip_fields(ip) {
            (true, _) => extension.push(("src", ip.to_owned())),
            (_, true) => {
                extension.push(("c6a1Label", "\"Device IPv6 Address\"".into()));
                extension.push(("c6a1", ip.to_owned()));
            }
            _ => {}
        }
        Expected {
            header: [
                expected_header(DEVICE_VERSION),
                expected_header(&signature),
                expected_header(&name),
                severity.into(),
            ],
            extension,
        }
    }
}

/// A Defender XDR streaming `CloudAppEvents` record (the activity layout).
#[derive(Debug, Clone)]
pub struct StreamingRecord {
    pub report_id: String,
    /// Epoch ms; written with seven fraction digits, `extra_ticks` after the ms.
    pub timestamp: i64,
    pub extra_ticks: u16,
    pub action_type: Option<String>,
    pub activity_type: Option<String>,
    pub object_name: Option<String>,
    pub account_id: Option<String>,
    pub account_object_id: Option<String>,
    pub account_display_name: Option<String>,
    pub application: String,
    pub application_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: String,
    /// `ActivityObjects` entries: `Some(name)`, or `None` for one without `Name`.
    pub objects: Vec<Option<String>>,
    /// Which letters of the column names are upper case (they are matched
    /// case-insensitively).
    pub case_mask: u64,
}

/// `name` with its letters upper- or lower-cased by the bits of `mask`.
fn recase(name: &str, mask: u64) -> String {
    name.chars()
        .enumerate()
        .map(|(n, c)| if mask >> (n % 64) & 1 == 1 { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
        .collect()
}

/// Epoch ms as `YYYY-MM-DDTHH:MM:SS.mmmTTTTZ` (civil date by H. Hinnant's
/// algorithm, written out here so the model owns it).
pub fn iso_ticks(ms: i64, extra_ticks: u16) -> String {
    let (days, rest) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}{:04}Z",
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000,
        extra_ticks % 10_000
    )
}

impl StreamingRecord {
    pub fn json(&self) -> Value {
        let m = self.case_mask;
        let mut properties = serde_json::Map::new();
        let mut put = |column: &str, value: Value| {
            properties.insert(recase(column, m), value);
        };
        put("ReportId", json!(self.report_id));
        put("Timestamp", json!(iso_ticks(self.timestamp, self.extra_ticks)));
        for (column, value) in [
            ("ActionType", &self.action_type),
            ("ActivityType", &self.activity_type),
            ("ObjectName", &self.object_name),
            ("AccountId", &self.account_id),
            ("AccountObjectId", &self.account_object_id),
            ("AccountDisplayName", &self.account_display_name),
            ("ApplicationId", &self.application_id),
            ("IPAddress", &self.ip),
        ] {
            if let Some(v) = value {
                put(column, json!(v));
            }
        }
        put("Application", json!(self.application));
        put("UserAgent", json!(self.user_agent));
        put(
            "ActivityObjects",
            Value::Array(
                self.objects
                    .iter()
                    .map(|o| match o {
                        Some(name) => json!({"Type": "File", "Name": name}),
                        None => json!({"Type": "Folder"}),
                    })
                    .collect(),
            ),
        );
        json!({"time": "2030-01-01T00:00:00Z", "category": "AdvancedHunting-CloudAppEvents", "properties": properties})
    }

    /// The activity table of `successor-sources.md`.
    pub fn expected(&self) -> Expected {
        let ext = expected_extension;
        let (action, activity) = (present(&self.action_type), present(&self.activity_type));
        let signature = action.or(activity).unwrap_or("EVENT_CATEGORY_UNSPECIFIED");
        let name = activity.or(action).unwrap_or(signature);
        let msg: Vec<&str> = [action, present(&self.object_name)].into_iter().flatten().collect();
        let suser = present(&self.account_id)
            .or(present(&self.account_object_id))
            .or(self.account_display_name.as_deref())
            .unwrap_or("");
        let ip = self.ip.as_deref().unwrap_or("");
        let (v4, v6) = ip_fields(ip);
        let ts = self.timestamp.to_string();
        let objects: Vec<&str> = self.objects.iter().map(|o| o.as_deref().unwrap_or("")).collect();
        Expected {
            header: [expected_header(DEVICE_VERSION), expected_header(signature), expected_header(name), "0".into()],
            extension: vec![
                ("externalId", ext(&self.report_id)),
                ("rt", ts.clone()),
                ("start", ts.clone()),
                ("end", ts),
                ("msg", ext(&msg.join(": "))),
                ("suser", ext(suser)),
                ("destinationServiceName", ext(&self.application)),
                ("dvc", if v4 { ip.to_owned() } else { String::new() }),
                ("requestClientApplication", ext(&self.user_agent)),
                ("cs1Label", "portalURL".into()),
                ("cs1", format!("{PORTAL}/#/audits?activity.id=eq({},)", ext(&self.report_id))),
                ("cs2Label", "uniqueServiceAppIds".into()),
                ("cs2", present(&self.application_id).map_or(String::new(), |a| format!("APPID_{}", ext(a)))),
                ("cs3Label", "targetObjects".into()),
                ("cs3", ext(&objects.join(","))),
                ("cs4Label", "policyIDs".into()),
                ("cs4", String::new()),
                ("c6a1Label", "\"Device IPv6 Address\"".into()),
                ("c6a1", if v6 { ip.to_owned() } else { String::new() }),
            ],
        }
    }
}

/// A Microsoft Graph `alerts_v2` alert (the alert layout).
#[derive(Debug, Clone)]
pub struct GraphAlert {
    pub id: String,
    pub provider_alert_id: Option<String>,
    pub detector_id: Option<String>,
    pub title: String,
    pub description: Option<String>,
    pub severity: Option<String>,
    pub created: i64,
    pub first_activity: Option<i64>,
    pub last_activity: Option<i64>,
    pub web_url: Option<String>,
    pub policy_id: Option<String>,
    /// The first `userEvidence`'s `userAccount`: (`userPrincipalName`,
    /// `accountName`, `displayName`).
    pub user: Option<(Option<String>, Option<String>, Option<String>)>,
    /// `cloudApplicationEvidence` entries: (`appId`, `displayName`).
    pub apps: Vec<(String, String)>,
    /// The first `ipEvidence`'s `ipAddress`.
    pub ip: Option<String>,
}

const EVIDENCE: &str = "#microsoft.graph.security.";

impl GraphAlert {
    pub fn json(&self) -> Value {
        let mut evidence = Vec::new();
        if let Some((upn, account, display)) = &self.user {
            evidence.push(json!({"@odata.type": format!("{EVIDENCE}userEvidence"), "userAccount": {
                "userPrincipalName": upn, "accountName": account, "displayName": display,
            }}));
            // A later user evidence is never read.
            evidence.push(json!({"@odata.type": format!("{EVIDENCE}userEvidence"), "userAccount": {"userPrincipalName": "second"}}));
        }
        for (app_id, name) in &self.apps {
            evidence.push(json!({"@odata.type": format!("{EVIDENCE}cloudApplicationEvidence"), "appId": app_id, "displayName": name}));
        }
        if let Some(ip) = &self.ip {
            evidence.push(json!({"@odata.type": format!("{EVIDENCE}ipEvidence"), "ipAddress": ip}));
            evidence.push(json!({"@odata.type": format!("{EVIDENCE}ipEvidence"), "ipAddress": "10.9.9.9"}));
        }
        evidence.push(json!({"@odata.type": format!("{EVIDENCE}mailboxEvidence"), "displayName": "not read"}));
        let mut alert = json!({
            "id": self.id, "title": self.title, "serviceSource": "microsoftDefenderForCloudApps",
            "createdDateTime": iso_ticks(self.created, 1234), "evidence": evidence,
        });
        let optional = [
            ("providerAlertId", &self.provider_alert_id),
            ("detectorId", &self.detector_id),
            ("description", &self.description),
            ("severity", &self.severity),
            ("alertWebUrl", &self.web_url),
            ("alertPolicyId", &self.policy_id),
        ];
        for (key, value) in optional {
            if let Some(v) = value {
                alert[key] = json!(v);
            }
        }
        if let Some(first) = self.first_activity {
            alert["firstActivityDateTime"] = json!(iso_ticks(first, 9999));
        }
        if let Some(last) = self.last_activity {
            alert["lastActivityDateTime"] = json!(iso_ticks(last, 0));
        }
        alert
    }

    /// The alert table of `successor-sources.md`.
    pub fn expected(&self) -> Expected {
        let ext = expected_extension;
        let signature = present(&self.detector_id).unwrap_or("ALERT_UNKNOWN");
        let severity = match self.severity.as_deref() {
            Some("informational") => "1",
            Some("medium") => "6",
            Some("high") => "8",
            _ => "3",
        };
        let start = self.first_activity.unwrap_or(self.created);
        let end = self.last_activity.unwrap_or(start);
        let user = self
            .user
            .as_ref()
            .map(|(upn, account, display)| present(upn).or(present(account)).or(display.as_deref()).unwrap_or(""))
            .unwrap_or("");
        let apps: Vec<String> = self.apps.iter().map(|(id, _)| format!("APPID_{}", ext(id))).collect();
        let mut extension = vec![
            ("externalId", ext(present(&self.provider_alert_id).unwrap_or(&self.id))),
            ("start", start.to_string()),
            ("end", end.to_string()),
            ("msg", ext(present(&self.description).unwrap_or(&self.title))),
            ("suser", ext(user)),
            ("destinationServiceName", ext(self.apps.first().map_or("", |(_, name)| name.as_str()))),
            ("cn1Label", "riskScore".into()),
            ("cn1", String::new()),
            ("cs1Label", "portalURL".into()),
            ("cs1", ext(self.web_url.as_deref().unwrap_or(""))),
            ("cs2Label", "uniqueServiceAppIds".into()),
            ("cs2", apps.join(",")),
            ("cs3Label", "relatedAudits".into()),
            ("cs3", String::new()),
            ("cs4Label", "policyIDs".into()),
            ("cs4", ext(self.policy_id.as_deref().unwrap_or(""))),
        ];
        let ip = self.ip.as_deref().unwrap_or("");
        match ip_fields(ip) {
            (true, _) => extension.push(("src", ip.to_owned())),
            (_, true) => {
                extension.push(("c6a1Label", "\"Device IPv6 Address\"".into()));
                extension.push(("c6a1", ip.to_owned()));
            }
            _ => {}
        }
        Expected {
            header: [
                expected_header(DEVICE_VERSION),
                expected_header(signature),
                expected_header(&self.title),
                severity.into(),
            ],
            extension,
        }
    }
}

/// Compares a parsed line with the model: the fixed header fields, the
/// four the model predicts, and the extension keys — all of them, in
/// order, nothing more. Returns the first difference.
pub fn check(event: &super::cef_parser::CefEvent, expected: &Expected) -> Result<(), String> {
    if event.header[..3] != ["0", "MCAS", "SIEM_Agent"] {
        return Err(format!("header starts {:?}", &event.header[..3]));
    }
    if event.header[3..] != expected.header {
        return Err(format!("header {:?}, expected {:?}", &event.header[3..], expected.header));
    }
    let keys: Vec<&str> = event.extension.iter().map(|(k, _)| k.as_str()).collect();
    let want: Vec<&str> = expected.extension.iter().map(|(k, _)| *k).collect();
    if keys != want {
        return Err(format!("extension keys {keys:?}, expected {want:?}"));
    }
    for ((key, got), (_, want)) in event.extension.iter().zip(&expected.extension) {
        if got != want {
            return Err(format!("{key}={got:?}, expected {want:?}"));
        }
    }
    Ok(())
}
