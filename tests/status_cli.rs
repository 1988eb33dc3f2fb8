//! `cefwire status` in each health state. The health file is written the
//! way the agent writes it; time is injected with `--now`, so the 2 h and
//! 12 h thresholds need no waiting.

use crate::util::{run, stdout};
use cefwire::agent::health::HealthReport;

const HOUR: i64 = 3_600_000;
const T0: i64 = 1_764_000_000_000;

fn status(dir: &std::path::Path, now: i64, json: bool) -> (Option<i32>, String) {
    let now = now.to_string();
    let mut args = vec!["status", "--state-dir", dir.to_str().unwrap(), "--now", &now];
    if json {
        args.push("--json");
    }
    let out = run(&args, b"");
    (out.status.code(), stdout(&out))
}

#[test]
fn each_health_state_with_its_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let mut report =
        HealthReport { version: "test".into(), pid: 1, started_ms: T0, updated_ms: T0, ..Default::default() };
    report.api.success(T0);
    report.syslog.success(T0);
    report.activities.enabled = true;
    report.activities.newest_sent_ms = Some(T0 - 5 * 60_000);
    report.save(dir.path()).unwrap();

    let (code, text) = status(dir.path(), T0, false);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("status:   Connected") && text.contains("lag:      5m 0s"), "{text}");

    // The SIEM goes away; the agent keeps running and updating its file.
    report.syslog.failure(T0 + HOUR, "connection refused by siem:514");
    for (after, code, state) in
        [(HOUR + 1, 9, "Connected"), (3 * HOUR + 1, 6, "Connection error"), (13 * HOUR + 1, 7, "Disconnected")]
    {
        report.updated_ms = T0 + after;
        report.save(dir.path()).unwrap();
        let (got, text) = status(dir.path(), T0 + after, false);
        assert_eq!(got, Some(code), "{text}");
        assert!(text.contains(&format!("status:   {state}")), "{text}");
        assert!(text.contains("syslog failing: connection refused by siem:514"), "{text}");
        let (got, json) = status(dir.path(), T0 + after, true);
        assert_eq!(got, Some(code), "--json: {json}");
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed["state"], state, "{json}");
    }
}

/// `status` said "Connected", exit 0, while the agent was stopped: a
/// monitor could not tell. Exit 8 now, until the 12 h of Disconnected.
#[test]
fn a_stopped_agent_is_told_apart_from_a_running_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut report =
        HealthReport { version: "test".into(), pid: 1, started_ms: T0, updated_ms: T0, ..Default::default() };
    report.api.success(T0);
    report.syslog.success(T0);
    report.stopped = true;
    report.save(dir.path()).unwrap();
    let (code, text) = status(dir.path(), T0 + 60_000, false);
    assert_eq!(code, Some(8), "{text}");
    assert!(text.contains("status:   Connected") && text.contains("agent stopped"), "{text}");
    // Not stopped, but the file is no longer updated (killed, hung).
    report.stopped = false;
    report.save(dir.path()).unwrap();
    let (code, text) = status(dir.path(), T0 + HOUR, false);
    assert_eq!(code, Some(8), "{text}");
    assert!(text.contains("not running"), "{text}");
}

#[test]
fn no_health_file_means_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let (code, text) = status(dir.path(), T0, false);
    assert_eq!(code, Some(7));
    assert!(text.contains("never run"), "{text}");
}
