//! Property: whatever strings a record carries, its CEF line parses back —
//! with the independent parser in `util::cef_parser` and with the Python
//! `cefp` package — to the original values, modulo the documented
//! replacement of control characters.

use crate::util::cef_parser;
use cefwire::cef::{CefFormatter, CefOptions};
use cefwire::json::{INPUT_PADDING, JsonParser};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde_json::json;
use std::process::Command;

/// Extension values: control characters other than TAB, CR and LF become
/// a space (CR and LF survive as `\r` `\n` escapes).
fn expected_extension(s: &str) -> String {
    s.chars().map(|c| if (c < ' ' && !matches!(c, '\t' | '\r' | '\n')) || c == '\u{7f}' { ' ' } else { c }).collect()
}

/// Header fields: every control character but TAB becomes a space.
fn expected_header(s: &str) -> String {
    s.chars().map(|c| if (c < ' ' && c != '\t') || c == '\u{7f}' { ' ' } else { c }).collect()
}

fn format_record(record: &serde_json::Value, options: &CefOptions) -> String {
    let mut buf = serde_json::to_vec(record).unwrap();
    let len = buf.len();
    buf.resize(len + INPUT_PADDING, 0);
    let mut formatter = CefFormatter::new(options);
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

#[derive(Debug, Clone)]
struct Activity {
    id: String,
    signature: String,
    category: String,
    description: String,
    user: String,
    app: String,
    agent: String,
    app_id: String,
    objects: Vec<String>,
}

fn activity() -> impl Strategy<Value = Activity> {
    (
        non_empty_field(),
        non_empty_field(),
        non_empty_field(),
        (field(), field(), field(), field(), non_empty_field()),
        prop::collection::vec(field(), 0..4),
    )
        .prop_map(|(id, signature, category, (description, user, app, agent, app_id), objects)| Activity {
            id,
            signature,
            category,
            description,
            user,
            app,
            agent,
            app_id,
            objects,
        })
}

impl Activity {
    fn json(&self) -> serde_json::Value {
        json!({
            "_id": self.id, "timestamp": 1_511_373_004_000i64, "eventTypeName": self.signature,
            "description_metadata": {"event_category": self.category}, "description": self.description,
            "user": {"userName": self.user}, "appName": self.app, "appId": self.app_id,
            "device": {"userAgent": self.agent},
            "mainInfo": {"eventObjects": self.objects.iter().map(|n| json!({"name": n})).collect::<Vec<_>>()},
        })
    }

    /// (header fields 4 and 5, extension key → value) expected back.
    fn expected(&self) -> ([String; 2], Vec<(&'static str, String)>) {
        let ext = |s: &str| expected_extension(s);
        (
            [expected_header(&self.signature), expected_header(&self.category)],
            vec![
                ("externalId", ext(&self.id)),
                ("rt", "1511373004000".into()),
                ("msg", ext(&self.description)),
                ("suser", ext(&self.user)),
                ("destinationServiceName", ext(&self.app)),
                ("dvc", String::new()),
                ("requestClientApplication", ext(&self.agent)),
                ("cs1", format!("https://p.example/#/audits?activity.id=eq({},)", ext(&self.id))),
                ("cs2", format!("APPID_{}", ext(&self.app_id))),
                ("cs3", ext(&self.objects.join(","))),
                ("cs4", String::new()),
                ("c6a1Label", "\"Device IPv6 Address\"".into()),
                ("c6a1", String::new()),
            ],
        )
    }
}

fn options() -> CefOptions {
    CefOptions { portal_url: "https://p.example".into(), device_version: "1|2\\3".into(), ..CefOptions::default() }
}

fn check_with_own_parser(line: &str, header: &[String; 2], ext: &[(&str, String)]) -> Result<(), TestCaseError> {
    let event = cef_parser::parse(line).map_err(|e| TestCaseError::fail(format!("{e}: {line}")))?;
    prop_assert_eq!(&event.header[..4], &["0", "MCAS", "SIEM_Agent", "1|2\\3"][..]);
    prop_assert_eq!(&event.header[4], &header[0]);
    prop_assert_eq!(&event.header[5], &header[1]);
    for (key, value) in ext {
        prop_assert_eq!(event.get(key), Some(value.as_str()), "key {} in {}", key, line);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn activity_lines_parse_back(a in activity()) {
        let line = format_record(&a.json(), &options());
        prop_assert!(!line.contains('\n') && !line.contains('\r'), "one physical line: {:?}", line);
        let (header, ext) = a.expected();
        check_with_own_parser(&line, &header, &ext)?;
    }

    #[test]
    fn alert_lines_parse_back(
        id in non_empty_field(), label in non_empty_field(), description in non_empty_field(),
        service in field(), account in non_empty_field(), audit in field(), score in any::<i32>(),
    ) {
        let record = json!({
            "_id": id, "timestamp": 1_500_151_350_531i64, "severityValue": 2, "description": description,
            "threatScore": score, "audits": [audit],
            "entities": [
                {"type": "policyRule", "label": label, "policyType": "FILE", "id": "p1"},
                {"type": "service", "label": service, "id": 7},
                {"type": "account", "pa": account},
            ],
        });
        let line = format_record(&record, &options());
        let ext = |s: &str| expected_extension(s);
        let event = cef_parser::parse(&line).map_err(|e| TestCaseError::fail(format!("{e}: {line}")))?;
        prop_assert_eq!(&event.header[4], "ALERT_CABINET_EVENT_MATCH_FILE");
        prop_assert_eq!(&event.header[5], &expected_header(&label));
        prop_assert_eq!(&event.header[6], "8");
        let expected = [
            ("externalId", ext(&id)), ("msg", ext(&description)), ("suser", ext(&account)),
            ("destinationServiceName", ext(&service)), ("cn1", score.to_string()),
            ("cs1", format!("https://p.example/#/alerts/{}", ext(&id))), ("cs2", "APPID_7".into()),
            ("cs3", ext(&audit)), ("cs4", "p1".into()),
        ];
        for (key, value) in &expected {
            prop_assert_eq!(event.get(key), Some(value.as_str()), "key {}", key);
        }
    }
}

/// The same property checked by a third-party parser (Python `cefp`,
/// installed by `.ci/run` into a venv named by `CEFWIRE_PYTHON`). Skipped
/// with a note when it is not installed, unless `CEFWIRE_REQUIRE_CEFP=1`.
#[test]
fn cefp_reads_back_what_we_write() {
    let python = std::env::var("CEFWIRE_PYTHON").unwrap_or_else(|_| "python3".into());
    let available = Command::new(&python).args(["-c", "import cefp"]).output().is_ok_and(|o| o.status.success());
    if !available {
        assert!(
            std::env::var("CEFWIRE_REQUIRE_CEFP").is_err(),
            "cefp is required but `{python} -c 'import cefp'` failed"
        );
        eprintln!(
            "note: skipping the cefp check: `{python} -c 'import cefp'` failed (set CEFWIRE_PYTHON to a venv with cefp)"
        );
        return;
    }
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut cases = Vec::new();
    for _ in 0..300 {
        let a = activity().new_tree(&mut runner).unwrap().current();
        let line = format_record(&a.json(), &options());
        let (header, ext) = a.expected();
        let ext: serde_json::Map<String, serde_json::Value> =
            ext.into_iter().map(|(k, v)| (k.to_owned(), serde_json::Value::String(v))).collect();
        cases.push(json!({"line": line, "signature": header[0], "name": header[1], "extension": ext}));
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
    assert!(String::from_utf8_lossy(&out.stdout).contains("300 lines ok"), "{}", String::from_utf8_lossy(&out.stdout));
}
