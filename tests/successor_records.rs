//! The successor sources' records (Defender XDR streaming `CloudAppEvents`,
//! Graph `alerts_v2`) through `convert` and `replay`: detection per record,
//! rejects with file, line and reason, records of other tables skipped and
//! counted, `--kind` forcing, and replay sending the golden lines.

use crate::util::{assert_same_lines, run, stderr, stdout, testdata};
use cefwire::syslog::frame::{Framing, deframe};
use std::io::Read;
use std::net::TcpListener;

const STREAMING: &str = r#"{"category":"AdvancedHunting-CloudAppEvents","properties":{"Timestamp":"2024-05-01T12:00:00Z","ReportId":"ok-1","ActionType":"A"}}"#;
const GRAPH: &str = r#"{"id":"g-ok","createdDateTime":"2024-05-01T12:00:00Z","title":"T"}"#;

#[test]
fn streaming_and_graph_rejects_name_file_line_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let input = [
        STREAMING,
        r#"{"category":"AdvancedHunting-CloudAppEvents","properties":{"Timestamp":"2024-05-01T12:00:00Z"}}"#,
        r#"{"category":"AdvancedHunting-CloudAppEvents","properties":{"ReportId":"r","Timestamp":""}}"#,
        r#"{"properties":{"ReportId":"r","Timestamp":"2024-05-01T12:00:00.12345678Z"}}"#,
        r#"{"properties":{"ReportId":"r","Timestamp":"2024-05-01T12:00:00"}}"#,
        r#"{"category":"AdvancedHunting-EmailEvents","properties":{"ReportId":"skip me"}}"#,
        r#"{"createdDateTime":"2024-05-01T12:00:00Z","title":"no id"}"#,
        r#"{"id":"g","serviceSource":"microsoftDefenderForCloudApps"}"#,
        r#"{"id":"g","createdDateTime":"2024-05-01T12:00:00Z","lastActivityDateTime":"yesterday"}"#,
        r#"{"id":"g","createdDateTime":1714564800000}"#,
        GRAPH,
    ]
    .join("\r\n");
    let file = dir.path().join("mixed.ndjson");
    std::fs::write(&file, &input).unwrap();
    let file = file.to_str().unwrap();
    let rejects = dir.path().join("rejects.ndjson");
    let out = run(&["convert", file, "--rejects", rejects.to_str().unwrap()], b"");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "rejected records give exit code 3\n{err}");
    let lines: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains("|A|A|0|externalId=ok-1 "), "{}", lines[0]);
    assert!(lines[1].contains("|ALERT_UNKNOWN|T|3|externalId=g-ok "), "{}", lines[1]);
    for (line, reason) in [
        (2, "no usable \"ReportId\""),
        (3, "no usable \"Timestamp\""),
        (4, "\"Timestamp\" is not an ISO 8601 time"),
        (5, "\"Timestamp\" is not an ISO 8601 time"),
        (7, "no usable \"id\""),
        (8, "no usable \"createdDateTime\""),
        (9, "\"lastActivityDateTime\" is not an ISO 8601 time"),
        (10, "\"createdDateTime\" is not an ISO 8601 time"),
    ] {
        let prefix = format!("{file}:{line}: ");
        assert!(
            err.lines().any(|l| l.starts_with(&prefix) && l.contains(reason)),
            "expected a message {prefix}…{reason}… in:\n{err}"
        );
    }
    assert!(!err.contains(&format!("{file}:6:")), "a record of another table is not a reject:\n{err}");
    assert!(
        err.contains("converted 2 of 11 records (0 activities, 0 alerts, 1 CloudAppEvents, 1 Graph alerts; skipped 1 streaming records of other tables)"),
        "{err}"
    );
    assert!(err.contains("rejected 8"), "{err}");
    let kept = std::fs::read_to_string(&rejects).unwrap();
    let expected: Vec<&str> =
        input.split("\r\n").enumerate().filter(|(n, _)| ![0, 5, 10].contains(n)).map(|x| x.1).collect();
    assert_eq!(kept.lines().collect::<Vec<_>>(), expected, "rejected lines are kept verbatim");
}

#[test]
fn only_skipped_records_is_success() {
    let out = run(&["convert"], br#"{"records":[{"category":"AdvancedHunting-DeviceEvents","properties":{}}]}"#);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    assert!(stderr(&out).contains("skipped 1 streaming records"), "{}", stderr(&out));
}

#[test]
fn forced_kinds() {
    // A bare CloudAppEvents row (as advanced hunting exports it) needs --kind.
    let row = br#"{"Timestamp":"2024-05-01T12:00:00Z","ReportId":7,"ActivityType":"Upload"}"#;
    let out = run(&["convert", "-q"], row);
    assert_eq!(out.status.code(), Some(3), "auto cannot place a bare row");
    let out = run(&["convert", "-q", "--kind", "cloudappevents"], row);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("|Upload|Upload|0|externalId=7 rt=1714564800000 "), "{}", stdout(&out));
    // Forced, a record of another table is still skipped.
    let out = run(&["convert", "--kind", "cloudappevents"], br#"{"category":"X","properties":{"ReportId":1}}"#);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), "");
    // A Graph alert with none of the keys auto-detection looks for.
    let alert = br#"{"id":"only-id","firstActivityDateTime":"2024-05-01T12:00:00Z","severity":"high"}"#;
    assert_eq!(run(&["convert", "-q"], alert).status.code(), Some(3));
    let out = run(&["convert", "-q", "--kind", "graph-alerts"], alert);
    assert!(stdout(&out).contains("|ALERT_UNKNOWN||8|externalId=only-id start=1714564800000 "), "{}", stdout(&out));
}

#[test]
fn event_hubs_bodies_one_per_line() {
    let body = |id: u32| {
        format!(
            r#"{{"records":[{{"category":"AdvancedHunting-CloudAppEvents","properties":{{"Timestamp":"2024-05-01T12:00:00Z","ReportId":{id}}}}},{{"category":"AdvancedHunting-CloudAppEvents","properties":{{"Timestamp":"2024-05-01T12:00:01Z","ReportId":{}}}}}]}}"#,
            id + 1
        )
    };
    let input = format!("{}\n{}\n", body(1), body(3));
    let out = run(&["convert"], input.as_bytes());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let ids: Vec<&str> =
        text.lines().map(|l| l.split("externalId=").nth(1).unwrap().split(' ').next().unwrap()).collect();
    assert_eq!(ids, ["1", "2", "3", "4"]);
}

/// `replay` converts streaming and Graph inputs on the fly: what a real
/// TCP receiver gets is the golden lines, in order. Without a PRI the lines
/// go octet-counted (a leading digit would pass for a count), so the
/// receiver splits the stream by RFC 6587 counts.
#[test]
fn replay_sends_the_golden_lines() {
    for stem in ["cloudappevents_lines_1.0.0", "graph_alerts_page_1.0.0"] {
        let golden = testdata().join("golden");
        let input = ["ndjson", "json"].iter().map(|e| golden.join(format!("{stem}.{e}"))).find(|p| p.exists()).unwrap();
        let expected = std::fs::read_to_string(golden.join(format!("{stem}.cef"))).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let to = format!("tcp://{}", listener.local_addr().unwrap());
        let receiver = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut bytes = Vec::new();
            stream.read_to_end(&mut bytes).unwrap();
            let mut got = String::new();
            let used = deframe(&bytes, Some(Framing::OctetCounting), 1 << 20, |m| {
                got.push_str(std::str::from_utf8(m).unwrap());
                got.push('\n');
            })
            .unwrap();
            assert_eq!(used, bytes.len(), "a partial frame at the end");
            got
        });
        let args = [
            "replay",
            input.to_str().unwrap(),
            "--to",
            &to,
            "--no-pri",
            "--no-hostname",
            "--device-version",
            "1.0.0",
            "--portal-url",
            "https://contoso.portal.cloudappsecurity.com",
            "--no-progress",
        ];
        let out = run(&args, b"");
        assert!(out.status.success(), "{stem}: {}", stderr(&out));
        let got = receiver.join().unwrap();
        assert_same_lines(&format!("{stem} (replay)"), &expected, &got);
    }
}
