//! Generated records of the sources that replace the SIEM agent API: Defender
//! XDR streaming `CloudAppEvents` records (one envelope record each, as the
//! Storage archive holds them) and Microsoft Graph `alerts_v2` alerts, with
//! the real column and property names, from the same pools of apps, users,
//! addresses and awkward values as the legacy records.
//!
//! Every `CloudAppEvents` record has a `ReportId` unique for its seed and
//! index (the delivery tests count them at the receiver); every Graph alert
//! an `id` unique the same way.

use super::{AGENTS, APPS, CITIES, EVENTS, RecordGenerator, write_uuid};
use crate::json::write_json_string;
use crate::rng::Rng;
use crate::syslog::header::{CivilTime, TimestampStyle};

/// `Timestamp`-style ISO 8601 time: milliseconds plus `extra` further digits
/// (Defender writes seven fraction digits), `Z`.
pub fn write_iso_time(ms: i64, extra: Option<u16>, out: &mut Vec<u8>) {
    let Ok(time) = CivilTime::from_epoch_ms(ms) else {
        out.extend_from_slice(b"1970-01-01T00:00:00Z");
        return;
    };
    time.write(TimestampStyle::Rfc5424, out);
    if let Some(extra) = extra {
        out.pop();
        out.extend_from_slice(format!("{:04}", extra % 10_000).as_bytes());
        out.push(b'Z');
    }
}

/// The `ReportId` of generated record `index` of `seed`: unique per seed
/// and index, below 2^53 so every JSON reader keeps it exact.
pub fn report_id(seed: u64, index: u64) -> u64 {
    (seed & 0x1FFF) << 40 | (index + 1)
}

/// Appends `"key":"value",`.
fn key_value(key: &str, value: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    write_json_string(value, out);
    out.push(b',');
}

const ACTIVITY_TYPES: &[&str] = &["Login", "Logout", "Download", "Upload", "Share", "Edit", "Delete", "Run command"];
const OTHER_SERVICES: &[&str] =
    &["microsoftDefenderForEndpoint", "microsoftDefenderForOffice365", "azureAdIdentityProtection"];
const SEVERITIES: &[&str] = &["informational", "low", "medium", "high", "unknownFutureValue"];
const DETECTORS: &[&str] = &[
    "IMPOSSIBLE_TRAVEL",
    "MASS_DOWNLOAD",
    "INFREQUENT_COUNTRY",
    "SUSPICIOUS_INBOX_FORWARDING",
    "ALERT_CABINET_EVENT_MATCH_AUDIT",
    "ALERT_CABINET_EVENT_MATCH_FILE",
];

impl RecordGenerator {
    /// The tenant of a seed's records: the same id on every record.
    fn tenant_id(&self, out: &mut Vec<u8>) {
        write_uuid(&mut Rng::new(self.config.seed ^ 0x7E4A_4700), out);
    }

    /// One streaming record: `{"time":…,"tenantId":…,"category":…,"properties":{…}}`.
    pub(super) fn cloud_app_event(&mut self, index: u64, timestamp: i64, out: &mut Vec<u8>) {
        let app = self.rng.pick(APPS);
        let (_, label, raw_op, _) = self.rng.pick(EVENTS);
        let activity_type = self.rng.pick(ACTIVITY_TYPES);
        let late = self.rng.chance(self.config.late_ratio);
        let delay = if late { 300_000 + self.rng.below(3_300_000) as i64 } else { 200 + self.rng.below(30_000) as i64 };
        let mut user = String::new();
        self.user(&mut user);
        let mut ip = String::new();
        self.ip(&mut ip);
        let object_name = format!("{} {:x}", label.to_lowercase(), self.rng.next_u64() >> 20);
        let object_name = self.maybe_awkward(&object_name).to_owned();
        let (country, city, _, _) = self.rng.pick(CITIES);
        let agent = self.rng.pick(AGENTS);
        let fraction = self.rng.below(10_000) as u16;

        out.extend_from_slice(b"{\"time\":\"");
        write_iso_time(timestamp + delay, Some(fraction), out);
        out.extend_from_slice(b"\",\"tenantId\":\"");
        self.tenant_id(out);
        out.extend_from_slice(
            b"\",\"operationName\":\"Publish\",\"category\":\"AdvancedHunting-CloudAppEvents\",\"properties\":{\"Timestamp\":\"",
        );
        write_iso_time(timestamp, Some(fraction), out);
        out.extend_from_slice(b"\",");
        key_value("ActionType", raw_op, out);
        key_value("Application", app.name, out);
        out.extend_from_slice(b"\"ApplicationId\":");
        out.extend_from_slice(itoa::Buffer::new().format(app.id).as_bytes());
        out.extend_from_slice(b",\"AccountObjectId\":\"");
        self.uuid(out);
        out.extend_from_slice(b"\",");
        key_value("AccountId", &user, out);
        let display = user.split('@').next().unwrap_or_default().replace('.', " ");
        key_value("AccountDisplayName", &display, out);
        out.extend_from_slice(b"\"IsAdminOperation\":");
        out.extend_from_slice(if self.rng.chance(0.05) { b"true" } else { b"false" });
        out.extend_from_slice(b",\"DeviceType\":\"Desktop\",\"OSPlatform\":\"Windows 10\",");
        // Live data does not always spell columns as the docs do.
        out.extend_from_slice(if self.rng.chance(0.03) { b"\"IpAddress\":" } else { b"\"IPAddress\":" });
        if self.rng.chance(0.03) {
            out.extend_from_slice(b"null");
        } else {
            write_json_string(&ip, out);
        }
        out.extend_from_slice(b",\"IsAnonymousProxy\":false,");
        key_value("CountryCode", country, out);
        key_value("City", city, out);
        key_value("ISP", "Contoso Telecom", out);
        key_value("UserAgent", agent, out);
        key_value("ActivityType", activity_type, out);
        out.extend_from_slice(b"\"ActivityObjects\":[{\"Type\":\"File\",\"Role\":\"Target object\",\"Name\":");
        write_json_string(&object_name, out);
        out.extend_from_slice(b",\"Id\":\"");
        self.uuid(out);
        out.extend_from_slice(b"\"},{\"Type\":\"User\",\"Role\":\"Actor\",\"Name\":");
        write_json_string(&user, out);
        out.extend_from_slice(b"}],");
        key_value("ObjectName", &object_name, out);
        out.extend_from_slice(b"\"ObjectType\":\"File\",\"ObjectId\":\"");
        self.uuid(out);
        out.extend_from_slice(b"\",\"ReportId\":");
        out.extend_from_slice(itoa::Buffer::new().format(report_id(self.config.seed, index)).as_bytes());
        out.extend_from_slice(
            b",\"AccountType\":\"Regular\",\"IsExternalUser\":false,\"IsImpersonated\":false,\"IPTags\":null,\"IPCategory\":null,\"UserAgentTags\":[],\"RawEventData\":{\"Operation\":",
        );
        write_json_string(raw_op, out);
        out.extend_from_slice(b",\"Workload\":");
        write_json_string(app.code, out);
        out.extend_from_slice(b",\"UserId\":");
        write_json_string(&user, out);
        out.extend_from_slice(b",\"ClientIP\":");
        write_json_string(&ip, out);
        out.extend_from_slice(b"},\"AdditionalFields\":{}}}");
    }

    /// One Graph `alerts_v2` alert.
    pub(super) fn graph_alert(&mut self, index: u64, timestamp: i64, out: &mut Vec<u8>) {
        let app = self.rng.pick(APPS);
        let title = self.rng.pick(super::ALERT_TITLES);
        let title = self.maybe_awkward(title);
        let mut user = String::new();
        self.user(&mut user);
        let mut ip = String::new();
        self.ip(&mut ip);
        let service =
            if self.rng.chance(0.9) { "microsoftDefenderForCloudApps" } else { self.rng.pick(OTHER_SERVICES) };
        let created = timestamp + self.rng.below(120_000) as i64;
        let first = timestamp - self.rng.below(3_600_000) as i64;
        let id =
            format!("da{:018}_{}", timestamp.rem_euclid(1_000_000_000_000_000_000), report_id(self.config.seed, index));

        out.extend_from_slice(b"{\"@odata.type\":\"#microsoft.graph.security.alert\",");
        key_value("id", &id, out);
        out.extend_from_slice(b"\"providerAlertId\":\"");
        self.uuid(out);
        out.extend_from_slice(b"\",\"incidentId\":\"");
        out.extend_from_slice(itoa::Buffer::new().format(1000 + index / 3).as_bytes());
        out.extend_from_slice(b"\",\"status\":\"new\",");
        let severity = self.rng.pick(SEVERITIES);
        key_value("severity", severity, out);
        out.extend_from_slice(b"\"classification\":null,\"determination\":null,");
        key_value("serviceSource", service, out);
        key_value("detectionSource", service, out);
        if self.rng.chance(0.9) {
            let detector = self.rng.pick(DETECTORS);
            key_value("detectorId", detector, out);
        }
        out.extend_from_slice(b"\"tenantId\":\"");
        self.tenant_id(out);
        out.extend_from_slice(b"\",");
        key_value("title", title, out);
        let description = format!("{title} by {user} in {}", app.name);
        key_value("description", &description, out);
        out.extend_from_slice(b"\"recommendedActions\":\"\",\"category\":\"InitialAccess\",\"assignedTo\":null,");
        key_value("alertWebUrl", &format!("https://security.microsoft.com/alerts/{id}?tid=contoso"), out);
        out.extend_from_slice(b"\"mitreTechniques\":[\"T1078\"],\"createdDateTime\":\"");
        write_iso_time(created, Some(self.rng.below(10_000) as u16), out);
        out.extend_from_slice(b"\",\"lastUpdateDateTime\":\"");
        write_iso_time(created + 60_000, None, out);
        out.extend_from_slice(b"\",\"resolvedDateTime\":null,\"firstActivityDateTime\":\"");
        write_iso_time(first, None, out);
        out.extend_from_slice(b"\",\"lastActivityDateTime\":\"");
        write_iso_time(timestamp, None, out);
        out.extend_from_slice(b"\",\"comments\":[],\"evidence\":[{\"@odata.type\":\"#microsoft.graph.security.userEvidence\",\"verdict\":\"suspicious\",\"userAccount\":{\"accountName\":");
        write_json_string(user.split('@').next().unwrap_or_default(), out);
        out.extend_from_slice(b",\"userPrincipalName\":");
        write_json_string(&user, out);
        out.extend_from_slice(b",\"displayName\":null}},{\"@odata.type\":\"#microsoft.graph.security.cloudApplicationEvidence\",\"appId\":");
        out.extend_from_slice(itoa::Buffer::new().format(app.id).as_bytes());
        out.extend_from_slice(b",\"displayName\":");
        write_json_string(app.name, out);
        out.push(b'}');
        if self.rng.chance(0.8) {
            out.extend_from_slice(b",{\"@odata.type\":\"#microsoft.graph.security.ipEvidence\",\"ipAddress\":");
            write_json_string(&ip, out);
            out.push(b'}');
        }
        out.extend_from_slice(b"],\"systemTags\":[],\"alertPolicyId\":\"");
        out.extend_from_slice(format!("{:024x}", u128::from(self.rng.next_u64())).as_bytes());
        out.extend_from_slice(b"\"}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cef::{CefFormatter, CefOptions, RecordKind};
    use crate::generate::{GenerateConfig, GenerateKind};
    use crate::json::{INPUT_PADDING, JsonParser};

    fn generate(kind: GenerateKind, count: u64, seed: u64) -> Vec<Vec<u8>> {
        let config =
            GenerateConfig { kind, count, seed, late_ratio: 0.1, start_ms: 1_700_000_000_000, span_ms: 3_600_000 };
        super::super::tests::generate(config)
    }

    #[test]
    fn deterministic_and_every_record_converts_with_a_unique_id() {
        for (kind, expected) in [
            (GenerateKind::CloudAppEvents, RecordKind::CloudAppEvent),
            (GenerateKind::GraphAlerts, RecordKind::GraphAlert),
        ] {
            let records = generate(kind, 2000, 5);
            assert_eq!(records, generate(kind, 2000, 5));
            assert_ne!(records, generate(kind, 2000, 6));
            let mut parser = JsonParser::new();
            let mut formatter = CefFormatter::new(&CefOptions::default());
            let mut ids = std::collections::HashSet::new();
            for mut record in records {
                let len = record.len();
                record.resize(len + INPUT_PADDING, 0);
                let mut out = Vec::new();
                let got = parser.parse(&mut record, len, |v| formatter.format(v, &mut out)).unwrap();
                assert_eq!(got, Ok(expected), "{}", String::from_utf8_lossy(&record[..len]));
                let line = String::from_utf8(out).unwrap();
                let id = line.split("externalId=").nth(1).unwrap().split(' ').next().unwrap().to_owned();
                assert!(ids.insert(id), "{line}");
            }
        }
    }

    #[test]
    fn iso_times_carry_seven_digits() {
        let mut out = Vec::new();
        write_iso_time(1_511_373_004_123, Some(45), &mut out);
        assert_eq!(out, b"2017-11-22T17:50:04.1230045Z");
        out.clear();
        write_iso_time(1_511_373_004_123, None, &mut out);
        assert_eq!(out, b"2017-11-22T17:50:04.123Z");
    }
}
