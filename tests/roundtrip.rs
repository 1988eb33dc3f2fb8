//! Property: whatever a record carries, its CEF line parses back — with the
//! independent parser in `util::cef_parser` (strict: a duplicate key or a
//! bad escape is an error) and with the Python `cefp` package — to exactly
//! what the contract model (`util::cef_contract`) predicts: every header
//! field (device version, signature, name, severity) and every extension
//! key in order (`start`, `end`, `rt` included), nothing more. Activities
//! and alerts alike, with the fallbacks, the policy-type table, the
//! severities, IPv4/IPv6 and numbers sent as strings.

use crate::util::cef_contract::{
    self, Activity, Alert, DEVICE_VERSION, GraphAlert, POLICY_TYPES, PORTAL, StreamingRecord,
};
use crate::util::{cef_parser, external_part};
use cefwire::cef::{CefFormatter, CefOptions};
use cefwire::json::{INPUT_PADDING, JsonParser};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde_json::json;
use std::process::Command;

fn options() -> CefOptions {
    CefOptions { portal_url: PORTAL.into(), device_version: DEVICE_VERSION.into(), ..CefOptions::default() }
}

fn format_record(record: &serde_json::Value) -> String {
    let mut buf = serde_json::to_vec(record).unwrap();
    let len = buf.len();
    buf.resize(len + INPUT_PADDING, 0);
    let mut formatter = CefFormatter::new(&options());
    let mut out = Vec::new();
    JsonParser::new().parse(&mut buf, len, |v| formatter.format(v, &mut out)).unwrap().expect("record converts");
    String::from_utf8(out).expect("CEF line is UTF-8")
}

/// Strings with a good share of the characters that need escaping.
fn field() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[a-z =|\\\\\r\n\t\u{0}-\u{1f}\u{7f}é日🚀]{0,30}", Just(String::new()),]
}

fn non_empty_field() -> impl Strategy<Value = String> {
    field().prop_filter("non-empty", |s| !s.is_empty())
}

/// A field that may be missing, empty (both mean "take the next source")
/// or set.
fn optional_field() -> impl Strategy<Value = Option<String>> {
    prop_oneof![Just(None), Just(Some(String::new())), non_empty_field().prop_map(Some)]
}

/// Client IPs: IPv4, IPv6 (also IPv4-mapped), and text that is neither.
fn ip() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        any::<std::net::Ipv4Addr>().prop_map(|a| Some(a.to_string())),
        any::<std::net::Ipv6Addr>().prop_map(|a| Some(a.to_string())),
        any::<std::net::Ipv4Addr>().prop_map(|a| Some(format!("::ffff:{a}"))),
        field().prop_map(Some),
    ]
}

fn activity() -> impl Strategy<Value = Activity> {
    (
        (non_empty_field(), 0i64..4_102_444_800_000, any::<bool>()),
        (optional_field(), optional_field(), optional_field(), optional_field()),
        (field(), field(), field(), field(), field()),
        ip(),
        prop::collection::vec(prop::option::weighted(0.8, field()), 0..4),
        prop::collection::vec(prop_oneof![field().prop_map(Ok), field().prop_map(Err)], 0..4),
    )
        .prop_map(
            |(
                (id, timestamp, timestamp_as_string),
                (signature, category, pretty_operation, event_type_value),
                (description, user, app, app_id, agent),
                client_ip,
                objects,
                rules,
            )| Activity {
                id,
                timestamp,
                timestamp_as_string,
                signature,
                category,
                pretty_operation,
                event_type_value,
                description,
                user,
                app,
                app_id,
                client_ip,
                agent,
                objects,
                rules,
            },
        )
}

fn alert() -> impl Strategy<Value = Alert> {
    let policy_type = prop_oneof![
        Just(None),
        prop::sample::select(POLICY_TYPES).prop_map(|(k, _)| Some(k.to_owned())),
        field().prop_map(Some),
    ];
    let alert_type = prop_oneof![Just(None), field().prop_map(Some), field().prop_map(|s| Some(format!("ALERT_{s}")))];
    (
        (non_empty_field(), 0i64..4_102_444_800_000),
        (alert_type, policy_type, optional_field(), field()),
        (field(), optional_field(), prop::option::of(-1i64..6)),
        (field(), field(), prop_oneof![field().prop_map(Ok), field().prop_map(Err)]),
        (any::<i32>(), optional_field(), prop::collection::vec(field(), 0..3), ip()),
    )
        .prop_map(
            |(
                (id, timestamp),
                (alert_type, policy_type, policy_label, policy_id),
                (title, description, severity),
                (service_label, service_id, user),
                (threat_score, url, audits, ip),
            )| Alert {
                id,
                timestamp,
                alert_type,
                policy_type,
                policy_label,
                policy_id,
                title,
                description,
                severity,
                service_label,
                service_id,
                user,
                threat_score: i64::from(threat_score),
                url,
                audits,
                ip,
            },
        )
}

fn streaming_record() -> impl Strategy<Value = StreamingRecord> {
    (
        (non_empty_field(), 0i64..4_102_444_800_000, any::<u16>(), any::<u64>()),
        (optional_field(), optional_field(), optional_field()),
        (optional_field(), optional_field(), optional_field()),
        (field(), optional_field(), ip(), field()),
        prop::collection::vec(prop::option::weighted(0.8, field()), 0..4),
    )
        .prop_map(
            |(
                (report_id, timestamp, extra_ticks, case_mask),
                (action_type, activity_type, object_name),
                (account_id, account_object_id, account_display_name),
                (application, application_id, ip, user_agent),
                objects,
            )| StreamingRecord {
                report_id,
                timestamp,
                extra_ticks,
                action_type,
                activity_type,
                object_name,
                account_id,
                account_object_id,
                account_display_name,
                application,
                application_id,
                ip,
                user_agent,
                objects,
                case_mask,
            },
        )
}

fn graph_alert() -> impl Strategy<Value = GraphAlert> {
    let severity = prop_oneof![
        Just(None),
        prop::sample::select(&["informational", "low", "medium", "high", "unknownFutureValue", "High"][..])
            .prop_map(|s| Some(s.to_owned())),
        field().prop_map(Some),
    ];
    let time = 0i64..4_102_444_800_000;
    let user = prop::option::of((optional_field(), optional_field(), optional_field()));
    (
        (non_empty_field(), optional_field(), optional_field()),
        (field(), optional_field(), severity),
        (time.clone(), prop::option::of(time.clone()), prop::option::of(time)),
        (optional_field(), optional_field(), user),
        (prop::collection::vec((field(), field()), 0..3), ip()),
    )
        .prop_map(
            |(
                (id, provider_alert_id, detector_id),
                (title, description, severity),
                (created, first_activity, last_activity),
                (web_url, policy_id, user),
                (apps, ip),
            )| GraphAlert {
                id,
                provider_alert_id,
                detector_id,
                title,
                description,
                severity,
                created,
                first_activity,
                last_activity,
                web_url,
                policy_id,
                user,
                apps,
                ip,
            },
        )
}

fn check_with_own_parser(line: &str, expected: &cef_contract::Expected) -> Result<(), TestCaseError> {
    prop_assert!(!line.contains('\n') && !line.contains('\r'), "one physical line: {:?}", line);
    let event = cef_parser::parse(line).map_err(|e| TestCaseError::fail(format!("{e}: {line}")))?;
    cef_contract::check(&event, expected).map_err(|e| TestCaseError::fail(format!("{e}\n  line: {line}")))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn activity_lines_parse_back(a in activity()) {
        check_with_own_parser(&format_record(&a.json()), &a.expected())?;
    }

    #[test]
    fn alert_lines_parse_back(a in alert()) {
        check_with_own_parser(&format_record(&a.json()), &a.expected())?;
    }

    #[test]
    fn streaming_lines_parse_back(r in streaming_record()) {
        check_with_own_parser(&format_record(&r.json()), &r.expected())?;
    }

    #[test]
    fn graph_alert_lines_parse_back(a in graph_alert()) {
        check_with_own_parser(&format_record(&a.json()), &a.expected())?;
    }
}

/// The strict reader refuses what a lenient one would paper over: the
/// round trip above would catch a writer that repeats a key.
#[test]
fn the_round_trip_rejects_a_repeated_key() {
    let line = format_record(&json!({"_id": "x", "timestamp": 1, "eventTypeName": "S"}));
    let doubled = format!("{line} msg=again");
    let err = cef_parser::parse(&doubled).unwrap_err();
    assert!(err.contains("duplicate key \"msg\""), "{err}");
}

/// The same property checked by a third-party parser (Python `cefp`,
/// installed by `.ci/run` into a venv named by `CEFWIRE_PYTHON`), for
/// activities, alerts, streaming records and Graph alerts: device version, signature, name, severity and
/// every extension key. Skipped with a note when it is not installed,
/// unless `CEFWIRE_REQUIRE_CEFP` is set.
#[test]
fn cefp_reads_back_what_we_write() {
    let python = std::env::var("CEFWIRE_PYTHON").unwrap_or_else(|_| "python3".into());
    let available = Command::new(&python).args(["-c", "import cefp"]).output().is_ok_and(|o| o.status.success());
    if !external_part(
        available,
        "the Python package cefp",
        "CEFWIRE_REQUIRE_CEFP",
        "set CEFWIRE_PYTHON to a venv with cefp",
    ) {
        return;
    }
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut cases = Vec::new();
    for n in 0..600 {
        let (record, expected) = match n % 4 {
            0 => {
                let a = activity().new_tree(&mut runner).unwrap().current();
                (a.json(), a.expected())
            }
            1 => {
                let a = alert().new_tree(&mut runner).unwrap().current();
                (a.json(), a.expected())
            }
            2 => {
                let r = streaming_record().new_tree(&mut runner).unwrap().current();
                (r.json(), r.expected())
            }
            _ => {
                let a = graph_alert().new_tree(&mut runner).unwrap().current();
                (a.json(), a.expected())
            }
        };
        let ext: serde_json::Map<String, serde_json::Value> =
            expected.extension.into_iter().map(|(k, v)| (k.to_owned(), serde_json::Value::String(v))).collect();
        let [version, signature, name, severity] = expected.header;
        cases.push(json!({
            "line": format_record(&record), "version": version, "signature": signature, "name": name,
            "severity": severity, "extension": ext,
        }));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cases.json");
    std::fs::write(&path, serde_json::to_vec(&cases).unwrap()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cefp_check.py");
    let out = Command::new(&python).arg(script).arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "cefp disagrees:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("600 lines ok"), "{}", String::from_utf8_lossy(&out.stdout));
}
