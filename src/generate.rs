//! Synthetic Defender for Cloud Apps records for benchmarks, the emulator
//! and load tests: real field names (see `api-contract.md`), varied apps,
//! users, IPv4/IPv6 addresses and user agents, nested `rawDataJson`, and
//! now and then values that stress the escaper (`\`, `=`, `|`, CR/LF,
//! control characters, non-ASCII). The same seed always gives the same
//! bytes (a local SplitMix64, no external RNG whose stream could change).
//! The successor sources' records (streaming `CloudAppEvents`, Graph
//! `alerts_v2`) are made by [`successors`] from the same pools.

pub mod successors;

use crate::json::{write_f64, write_json_string};
use crate::output::create_maybe_compressed;
use crate::rng::Rng;
use std::io;
use std::path::Path;

/// Which records to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GenerateKind {
    Activities,
    Alerts,
    /// Activities with an alert every 20 records.
    Mixed,
    /// Defender XDR streaming records of `CloudAppEvents`, one envelope
    /// record each (the Storage archive's lines).
    CloudAppEvents,
    /// Microsoft Graph `alerts_v2` alerts (9 in 10 from Defender for Cloud Apps).
    GraphAlerts,
}

/// Settings of a generated set.
#[derive(Clone, Debug)]
pub struct GenerateConfig {
    pub kind: GenerateKind,
    pub count: u64,
    pub seed: u64,
    /// Fraction of activities stored (`created`) 5–60 minutes after they
    /// happened (`timestamp`); the rest within 30 seconds.
    pub late_ratio: f64,
    /// First record's time (epoch ms).
    pub start_ms: i64,
    /// Records are spread evenly over this many milliseconds.
    pub span_ms: i64,
}

#[derive(Clone, Copy)]
struct App {
    id: u32,
    name: &'static str,
    code: &'static str,
}

const APPS: &[App] = &[
    App { id: 11114, name: "ServiceNow", code: "SERVICENOW" },
    App { id: 11161, name: "Microsoft 365", code: "O365" },
    App { id: 15600, name: "Microsoft OneDrive for Business", code: "ONEDRIVE" },
    App { id: 20892, name: "Microsoft SharePoint Online", code: "SHAREPOINT" },
    App { id: 28375, name: "Microsoft Teams", code: "TEAMS" },
    App { id: 20893, name: "Microsoft Exchange Online", code: "OUTLOOK" },
    App { id: 11770, name: "Google Workspace", code: "GOOGLE" },
    App { id: 10489, name: "Box", code: "BOX" },
    App { id: 11522, name: "Salesforce", code: "SALESFORCE" },
    App { id: 11599, name: "GitHub", code: "GITHUB" },
    App { id: 12260, name: "Microsoft Azure", code: "AZURE" },
    App { id: 26069, name: "Dropbox", code: "DROPBOX" },
];

/// (category suffix, portal label, raw operation, event type number)
const EVENTS: &[(&str, &str, &str, u32)] = &[
    ("LOGIN", "Log on", "UserLoggedIn", 196_608),
    ("LOGOUT", "Log out", "logout", 196_614),
    ("FAILED_LOGIN", "Failed log on", "UserLoginFailed", 196_609),
    ("VIEW_REPORT", "View report", "report_view", 65_544),
    ("DELETE_OBJECT", "Delete object", "record_delete", 65_542),
    ("CREATE_USER", "Create user", "user_create", 131_072),
    ("DELETE_USER", "Delete user", "user_delete", 131_074),
    ("DOWNLOAD_FILE", "Download file", "FileDownloaded", 65_546),
    ("UPLOAD_FILE", "Upload file", "FileUploaded", 65_545),
    ("SHARE_FILE", "Share file", "SharingSet", 65_548),
    ("EDIT_OBJECT", "Edit object", "record_update", 65_543),
    ("RUN_COMMAND", "Run command", "New-InboxRule", 327_680),
];

const FIRST_NAMES: &[&str] = &[
    "admin",
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ivan",
    "judy",
    "mallory",
    "niaj",
    "olivia",
    "peggy",
    "rupert",
    "sybil",
    "trent",
    "victor",
    "walter",
    "josé",
    "zoë",
    "søren",
    "łucja",
    "ユーザー",
];
const LAST_NAMES: &[&str] = &["smith", "jones", "garcía", "müller", "nguyen", "kowalski", "o'brien", "tanaka", "ng"];
const DOMAINS: &[&str] =
    &["contoso.com", "fabrikam.com", "box-contoso.com", "test15-adallom.com", "contoso.onmicrosoft.com"];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17531; Pro)",
    "python-requests/2.31.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "curl/8.5.0",
];
const CITIES: &[(&str, &str, f64, f64)] = &[
    ("US", "Redmond", 47.674, -122.121),
    ("IE", "Dublin", 53.349, -6.260),
    ("DE", "München", 48.137, 11.575),
    ("JP", "東京", 35.689, 139.692),
    ("BR", "São Paulo", -23.550, -46.633),
    ("IN", "Bengaluru", 12.971, 77.594),
];
/// Values that exercise every escaping rule.
const AWKWARD: &[&str] = &[
    "C:\\Users\\admin\\Documents\\report.xlsx",
    "query a=b&c=d | sort",
    "first line\nsecond line\r\nthird line",
    "tab\there and bell\u{7} and nul\u{0}",
    "pipe|in|name",
    "trailing backslash \\",
    "ünïcödé ✓ 日本語 🚀",
    "equals == and \\= escaped",
];
const POLICY_TYPES: &[&str] = &["AUDIT", "FILE", "SESSION", "OBJECT", "NEW_SERVICE", "ANOMALY_DETECTION"];
const ALERT_TITLES: &[&str] = &[
    "Impossible travel activity",
    "Mass download by a single user",
    "Activity from infrequent country",
    "Suspicious inbox forwarding",
    "Multiple failed user log on attempts",
    "File containing PII detected in the cloud",
];

/// Appends a random UUID (`8-4-4-4-12` lower-case hex).
fn write_uuid(rng: &mut Rng, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let (a, b) = (rng.next_u64(), rng.next_u64());
    let bytes: [u8; 16] = (u128::from(a) << 64 | u128::from(b)).to_be_bytes();
    for (n, byte) in bytes.iter().enumerate() {
        if matches!(n, 4 | 6 | 8 | 10) {
            out.push(b'-');
        }
        out.push(HEX[usize::from(byte >> 4)]);
        out.push(HEX[usize::from(byte & 15)]);
    }
}

/// Writes records, one JSON object per call, into a caller-owned buffer.
pub struct RecordGenerator {
    config: GenerateConfig,
    rng: Rng,
    index: u64,
}

impl RecordGenerator {
    pub fn new(config: GenerateConfig) -> Self {
        let rng = Rng::new(config.seed);
        Self { config, rng, index: 0 }
    }

    /// Records still to come.
    pub fn remaining(&self) -> u64 {
        self.config.count - self.index
    }

    /// Appends the next record (without a newline); `false` when done.
    pub fn write_next(&mut self, out: &mut Vec<u8>) -> bool {
        if self.index >= self.config.count {
            return false;
        }
        let i = self.index;
        self.index += 1;
        let step = self.config.span_ms as f64 / self.config.count.max(1) as f64;
        let jitter = if step >= 2.0 { self.rng.below(step as u64) as i64 } else { 0 };
        let timestamp = self.config.start_ms + (i as f64 * step) as i64 + jitter;
        let alert = match self.config.kind {
            GenerateKind::Activities => false,
            GenerateKind::Alerts => true,
            GenerateKind::Mixed => i % 20 == 19,
            GenerateKind::CloudAppEvents => {
                self.cloud_app_event(i, timestamp, out);
                return true;
            }
            GenerateKind::GraphAlerts => {
                self.graph_alert(i, timestamp, out);
                return true;
            }
        };
        if alert {
            self.alert(timestamp, out);
        } else {
            self.activity(timestamp, out);
        }
        true
    }

    fn user(&mut self, out: &mut String) {
        out.clear();
        out.push_str(self.rng.pick(FIRST_NAMES));
        if self.rng.chance(0.7) {
            out.push('.');
            out.push_str(self.rng.pick(LAST_NAMES));
        }
        out.push('@');
        out.push_str(self.rng.pick(DOMAINS));
    }

    fn ip(&mut self, out: &mut String) {
        use std::fmt::Write;
        out.clear();
        let r = self.rng.next_u64();
        if self.rng.chance(0.2) {
            let _ = write!(out, "2001:db8:{:x}:{:x}::{:x}", r & 0xffff, (r >> 16) & 0xffff, (r >> 32) & 0xffff);
        } else {
            let _ = write!(
                out,
                "{}.{}.{}.{}",
                1 + (r & 0xdf) % 223,
                (r >> 8) & 0xff,
                (r >> 16) & 0xff,
                1 + (r >> 24) % 254
            );
        }
    }

    fn uuid(&mut self, out: &mut Vec<u8>) {
        write_uuid(&mut self.rng, out);
    }

    fn maybe_awkward<'a>(&mut self, normal: &'a str) -> &'a str {
        if self.rng.chance(0.04) { self.rng.pick(AWKWARD) } else { normal }
    }

    fn activity(&mut self, timestamp: i64, out: &mut Vec<u8>) {
        let app = self.rng.pick(APPS);
        let (category, label, raw_op, event_type) = self.rng.pick(EVENTS);
        let late = self.rng.chance(self.config.late_ratio);
        let created = timestamp
            + if late { 300_000 + self.rng.below(3_300_000) as i64 } else { 200 + self.rng.below(30_000) as i64 };
        let mut user = String::new();
        self.user(&mut user);
        let mut ip = String::new();
        self.ip(&mut ip);
        let object_name = format!("{} {:x}", app.code.to_lowercase(), self.rng.next_u64() >> 16);
        let object_name = self.maybe_awkward(&object_name).to_owned();
        let int = |v: i64, out: &mut Vec<u8>| out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());

        out.extend_from_slice(b"{\"_id\":\"");
        int(created, out);
        out.push(b'_');
        self.uuid(out);
        out.extend_from_slice(b"\",\"saasId\":");
        int(i64::from(app.id), out);
        out.extend_from_slice(b",\"timestamp\":");
        int(timestamp, out);
        out.extend_from_slice(b",\"timestampRaw\":");
        int(timestamp, out);
        out.extend_from_slice(b",\"created\":");
        int(created, out);
        out.extend_from_slice(b",\"createdRaw\":");
        int(created, out);
        out.extend_from_slice(b",\"appId\":");
        int(i64::from(app.id), out);
        out.extend_from_slice(b",\"appName\":");
        write_json_string(app.name, out);
        out.extend_from_slice(b",\"eventType\":");
        int(i64::from(event_type), out);
        out.extend_from_slice(b",\"eventTypeValue\":\"EVENT_");
        out.extend_from_slice(app.code.as_bytes());
        out.push(b'_');
        out.extend_from_slice(category.as_bytes());
        out.extend_from_slice(b"\",\"eventTypeName\":\"EVENT_CATEGORY_");
        out.extend_from_slice(category.as_bytes());
        out.extend_from_slice(b"\",\"eventRouting\":{\"scubaUnpacker\":false,\"auditing\":true,\"adminEvent\":false}");
        out.extend_from_slice(b",\"device\":{\"clientIP\":");
        if self.rng.chance(0.05) {
            out.extend_from_slice(b"null");
        } else {
            write_json_string(&ip, out);
        }
        out.extend_from_slice(b",\"userAgent\":");
        let agent = self.rng.pick(AGENTS);
        write_json_string(agent, out);
        let (country, city, lat, lon) = self.rng.pick(CITIES);
        out.extend_from_slice(b",\"countryCode\":");
        write_json_string(country, out);
        out.extend_from_slice(b"},\"location\":{\"countryCode\":");
        write_json_string(country, out);
        out.extend_from_slice(b",\"city\":");
        write_json_string(city, out);
        out.extend_from_slice(b",\"latitude\":");
        write_f64(lat + (self.rng.below(1000) as f64 - 500.0) / 10_000.0, out);
        out.extend_from_slice(b",\"longitude\":");
        write_f64(lon + (self.rng.below(1000) as f64 - 500.0) / 10_000.0, out);
        out.extend_from_slice(b",\"isSatellite\":false,\"anonymousProxy\":false}");
        out.extend_from_slice(b",\"user\":{\"userName\":");
        write_json_string(&user, out);
        out.extend_from_slice(b",\"userTags\":[]}");
        out.extend_from_slice(b",\"mainInfo\":{\"eventObjects\":[");
        let objects = 1 + self.rng.below(4);
        for n in 0..objects {
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"objType\":");
            int(21 + n as i64, out);
            out.extend_from_slice(b",\"role\":");
            int(4 - (n as i64 % 3), out);
            out.extend_from_slice(b",\"tags\":[],");
            if n > 0 && self.rng.chance(0.2) {
                // Objects without a name exist (the seed shows empty cs3 slots).
                out.extend_from_slice(b"\"id\":\"");
                self.uuid(out);
                out.extend_from_slice(b"\"}");
                continue;
            }
            out.extend_from_slice(b"\"name\":");
            write_json_string(if n == 0 { &object_name } else { &user }, out);
            out.extend_from_slice(b",\"instanceId\":0,\"resolved\":true,\"saasId\":");
            int(i64::from(app.id), out);
            out.extend_from_slice(b",\"id\":");
            write_json_string(if n == 0 { &object_name } else { &user }, out);
            out.push(b'}');
        }
        out.extend_from_slice(b"],\"rawOperationName\":");
        write_json_string(raw_op, out);
        out.extend_from_slice(b",\"type\":");
        write_json_string(raw_op, out);
        out.extend_from_slice(b",\"prettyOperationName\":");
        write_json_string(label, out);
        out.extend_from_slice(b"},\"confidenceLevel\":30,\"description_id\":\"EVENT_DESCRIPTION_");
        out.extend_from_slice(category.as_bytes());
        out.extend_from_slice(b"\",\"description_metadata\":{\"target_object\":");
        write_json_string(&object_name, out);
        out.extend_from_slice(b",\"event_category\":");
        write_json_string(label, out);
        out.extend_from_slice(b",\"activity_result_prefix\":\"successfully\",\"parameter_name\":null}");
        out.extend_from_slice(b",\"description\":");
        let description = format!("{label}: {} {object_name}", app.name);
        write_json_string(&description, out);
        out.extend_from_slice(b",\"severity\":\"INFO\",\"genericEventType\":\"ENUM_ACTIVITY_GENERIC_TYPE_");
        out.extend_from_slice(category.as_bytes());
        out.extend_from_slice(b"\",\"matchingRules\":[");
        if self.rng.chance(0.1) {
            out.extend_from_slice(b"\"5f");
            out.extend_from_slice(format!("{:022x}", self.rng.next_u64()).as_bytes());
            out.push(b'"');
        }
        out.extend_from_slice(b"],\"rawDataJson\":");
        self.raw_data(timestamp, &user, &ip, agent, raw_op, out);
        out.extend_from_slice(b",\"entityData\":{\"0\":{\"displayName\":");
        write_json_string(&user, out);
        out.extend_from_slice(b",\"id\":{\"id\":");
        write_json_string(&user, out);
        out.extend_from_slice(b",\"saas\":");
        int(i64::from(app.id), out);
        out.extend_from_slice(b",\"inst\":0},\"resolved\":true},\"1\":null}}");
    }

    /// Vendor JSON of varying size; 3 % carry a large blob.
    fn raw_data(&mut self, timestamp: i64, user: &str, ip: &str, agent: &str, op: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"CreationTime\":");
        out.extend_from_slice(itoa::Buffer::new().format(timestamp).as_bytes());
        out.extend_from_slice(b",\"Id\":\"");
        self.uuid(out);
        out.extend_from_slice(b"\",\"Operation\":");
        write_json_string(op, out);
        out.extend_from_slice(b",\"RecordType\":15,\"ResultStatus\":\"Succeeded\",\"UserId\":");
        write_json_string(user, out);
        out.extend_from_slice(b",\"userid\":");
        write_json_string(user, out);
        out.extend_from_slice(b",\"ClientIP\":");
        write_json_string(ip, out);
        out.extend_from_slice(b",\"ExtendedProperties\":[{\"Name\":\"UserAgent\",\"Value\":");
        write_json_string(agent, out);
        out.extend_from_slice(b"},{\"Name\":\"RequestType\",\"Value\":\"Login:login\"}],\"Actor\":[{\"ID\":\"");
        self.uuid(out);
        out.extend_from_slice(b"\",\"Type\":0}]");
        if self.rng.chance(0.03) {
            out.extend_from_slice(b",\"Details\":\"");
            let size = 4096 + self.rng.below(16_384) as usize;
            for n in 0..size {
                out.push(b"abcdefghijklmnopqrstuvwxyz0123456789 "[(n * 7 + size) % 37]);
            }
            out.push(b'"');
        }
        out.push(b'}');
    }

    fn alert(&mut self, timestamp: i64, out: &mut Vec<u8>) {
        let app = self.rng.pick(APPS);
        let policy_type = self.rng.pick(POLICY_TYPES);
        let title = self.rng.pick(ALERT_TITLES);
        let mut user = String::new();
        self.user(&mut user);
        let mut ip = String::new();
        self.ip(&mut ip);
        let policy_name = format!("{title} ({})", self.rng.below(50));
        let policy_name = self.maybe_awkward(&policy_name).to_owned();
        let int = |v: i64, out: &mut Vec<u8>| out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
        let mut id = Vec::with_capacity(24);
        id.extend_from_slice(format!("{:08x}{:016x}", (timestamp / 1000) as u32, self.rng.next_u64()).as_bytes());

        out.extend_from_slice(b"{\"_id\":\"");
        out.extend_from_slice(&id);
        out.extend_from_slice(b"\",\"timestamp\":");
        int(timestamp, out);
        out.extend_from_slice(b",\"entities\":[{\"id\":\"");
        out.extend_from_slice(format!("{:024x}", u128::from(self.rng.next_u64())).as_bytes());
        out.extend_from_slice(b"\",\"label\":");
        write_json_string(&policy_name, out);
        out.extend_from_slice(b",\"policyType\":");
        write_json_string(policy_type, out);
        out.extend_from_slice(b",\"type\":\"policyRule\"},{\"id\":");
        int(i64::from(app.id), out);
        out.extend_from_slice(b",\"label\":");
        write_json_string(app.name, out);
        out.extend_from_slice(b",\"type\":\"service\"},{\"id\":");
        write_json_string(&user, out);
        out.extend_from_slice(b",\"label\":");
        write_json_string(&user, out);
        out.extend_from_slice(b",\"pa\":");
        write_json_string(&user, out);
        out.extend_from_slice(b",\"inst\":0,\"saas\":");
        int(i64::from(app.id), out);
        out.extend_from_slice(b",\"type\":\"account\"}");
        if self.rng.chance(0.8) {
            out.extend_from_slice(b",{\"id\":");
            write_json_string(&ip, out);
            out.extend_from_slice(b",\"label\":");
            write_json_string(&ip, out);
            out.extend_from_slice(b",\"type\":\"ip\"}");
        }
        out.extend_from_slice(b"],\"title\":");
        write_json_string(title, out);
        out.extend_from_slice(b",\"description\":");
        let description = format!("Activity policy ''{policy_name}'' was triggered by ''{user}''");
        write_json_string(&description, out);
        out.extend_from_slice(b",\"stories\":[0],\"threatScore\":");
        if self.rng.chance(0.3) {
            out.extend_from_slice(b"null");
        } else {
            int(self.rng.below(100) as i64, out);
        }
        out.extend_from_slice(b",\"isSystemAlert\":false,\"statusValue\":");
        int(self.rng.below(3) as i64, out);
        out.extend_from_slice(b",\"severityValue\":");
        int(self.rng.below(4) as i64, out);
        out.extend_from_slice(b",\"resolutionStatusValue\":0,\"handledByUser\":null,\"comment\":null");
        out.extend_from_slice(b",\"URL\":\"https://contoso.portal.cloudappsecurity.com/#/alerts/");
        out.extend_from_slice(&id);
        out.extend_from_slice(b"\",\"audits\":[");
        for n in 0..1 + self.rng.below(3) {
            if n > 0 {
                out.push(b',');
            }
            out.push(b'"');
            int(timestamp - 60_000 * n as i64, out);
            out.push(b'_');
            self.uuid(out);
            out.push(b'"');
        }
        out.extend_from_slice(b"]}");
    }
}

/// Writes `config.count` records as NDJSON to `output` (stdout when
/// `None`; `.gz`/`.zst` names are compressed). Errors name the output.
pub fn write_ndjson(config: GenerateConfig, output: Option<&Path>) -> io::Result<()> {
    let name = output.map_or("<stdout>".to_owned(), |p| p.display().to_string());
    let named = |e: io::Error| io::Error::new(e.kind(), format!("writing {name}: {e}"));
    let mut out = create_maybe_compressed(output).map_err(named)?;
    let mut generator = RecordGenerator::new(config);
    let mut buf = Vec::with_capacity(1 << 20);
    while generator.write_next(&mut buf) {
        buf.push(b'\n');
        if buf.len() >= 1 << 20 {
            out.write_all(&buf).map_err(named)?;
            buf.clear();
        }
    }
    out.write_all(&buf).map_err(named)?;
    out.finish().map_err(named)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cef::{CefFormatter, CefOptions, RecordKind};
    use crate::json::{INPUT_PADDING, JsonParser};

    fn config(kind: GenerateKind, count: u64, seed: u64) -> GenerateConfig {
        GenerateConfig { kind, count, seed, late_ratio: 0.1, start_ms: 1_700_000_000_000, span_ms: 172_800_000 }
    }

    /// Every record of `config`, one buffer each.
    pub(super) fn generate(config: GenerateConfig) -> Vec<Vec<u8>> {
        let mut generator = RecordGenerator::new(config);
        let mut records = Vec::new();
        let mut buf = Vec::new();
        while generator.write_next(&mut buf) {
            records.push(std::mem::take(&mut buf));
        }
        records
    }

    #[test]
    fn deterministic_for_a_seed() {
        let a = generate(config(GenerateKind::Mixed, 200, 7));
        assert_eq!(a, generate(config(GenerateKind::Mixed, 200, 7)));
        assert_ne!(a, generate(config(GenerateKind::Mixed, 200, 8)));
    }

    #[test]
    fn every_record_is_valid_json_that_converts() {
        let mut parser = JsonParser::new();
        let mut formatter = CefFormatter::new(&CefOptions::default());
        let (mut activities, mut alerts, mut late, mut awkward) = (0, 0, 0, 0);
        for mut record in generate(config(GenerateKind::Mixed, 3000, 1)) {
            let len = record.len();
            awkward += usize::from(record.windows(2).any(|w| w == b"\\n" || w == b"\\\\"));
            record.resize(len + INPUT_PADDING, 0);
            let mut out = Vec::new();
            let kind = parser
                .parse(&mut record, len, |v| {
                    if let (Some(t), Some(c)) = (v.get("timestamp"), v.get("created")) {
                        late += usize::from(c.as_i64_lenient().unwrap() - t.as_i64_lenient().unwrap() > 300_000);
                    }
                    formatter.format(v, &mut out)
                })
                .expect("generated JSON parses")
                .expect("generated record converts");
            match kind {
                RecordKind::Activity => activities += 1,
                RecordKind::Alert => alerts += 1,
                other => panic!("generated {other:?}"),
            }
        }
        assert_eq!((activities, alerts), (2850, 150));
        assert!((200..400).contains(&late), "about 10% late: {late}");
        assert!(awkward > 20, "some awkward values: {awkward}");
    }

    #[test]
    fn timestamps_ascend_within_the_span() {
        let cfg = config(GenerateKind::Activities, 500, 3);
        let (start, end) = (cfg.start_ms, cfg.start_ms + cfg.span_ms);
        let mut parser = JsonParser::new();
        let mut last = i64::MIN;
        for mut record in generate(cfg) {
            let len = record.len();
            record.resize(len + INPUT_PADDING, 0);
            let t = parser.parse(&mut record, len, |v| v.get("timestamp").unwrap().as_i64_lenient().unwrap()).unwrap();
            assert!(t >= last && (start..end).contains(&t));
            last = t;
        }
    }
}
