//! `cefwire backfill --source graph` as a user runs it: the real binary
//! against the emulator's Graph `alerts_v2` (in process, real HTTP on
//! 127.0.0.1, 20,000 generated alerts, 5 % injected 429 and 5 % 5xx),
//! sending to `cefwire sink` over TCP. The sink's capture is checked alert
//! by alert (`externalId` = `providerAlertId`), the throttle by the
//! emulator's count of Graph requests within any 60 s (a count, not a
//! timing), and the settings' refusals by their exit code and message.

use crate::util::graph::{CLIENT, graph_emulator, graph_store};
use crate::util::sink::SinkProcess;
use crate::util::{Scratch, cefwire, external_id, stderr};
use cefwire::emulate::FaultConfig;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

/// The Graph flags of a backfill against `base`; the secret in a file.
fn graph_args(dir: &Path, base: &str) -> Vec<String> {
    let secret = dir.join("graph-secret");
    std::fs::write(&secret, format!("{}\n", CLIENT.1)).unwrap();
    [
        "backfill",
        "--source",
        "graph",
        "--graph-tenant-id",
        "tenant-1",
        "--graph-client-id",
        CLIENT.0,
        "--graph-client-secret-file",
        secret.to_str().unwrap(),
        "--graph-url",
        base,
        "--graph-token-url",
        &format!("{base}/{{tenant}}/oauth2/v2.0/token"),
        "--no-progress",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// How often each `externalId` is in `file`.
fn external_ids(file: &Path) -> HashMap<String, u32> {
    let text = std::fs::read(file).unwrap();
    let mut seen = HashMap::new();
    for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let id = external_id(line).unwrap_or_else(|| panic!("no externalId in {}", String::from_utf8_lossy(line)));
        *seen.entry(String::from_utf8(id.to_vec()).unwrap()).or_insert(0) += 1;
    }
    seen
}

/// 20,000 alerts through 5 % 429 and 5 % 5xx, in pages of 100 so that the
/// run needs more than 150 requests: every Defender for Cloud Apps alert
/// reaches the sink exactly once, and no 60 s held more than 150 Graph
/// requests (the emulator counts arrivals; its throttle never had to act).
#[test]
fn graph_backfill_of_20000_alerts_through_429_and_5xx_arrives_once_within_150_per_minute() {
    let (store, since, until, expected) = graph_store(20_000, 7);
    let faults = FaultConfig { error_429: 0.05, error_5xx: 0.05, ..FaultConfig::default() };
    let graph = graph_emulator(&store, faults);
    let dir = Scratch::new("graph-backfill");
    let captured = dir.path().join("sink.log");
    let sink = SinkProcess::start(
        "tcp://127.0.0.1:0",
        &["--expect", &expected.len().to_string(), "--timeout", "900s", "--out", captured.to_str().unwrap()],
    );
    let out = cefwire()
        .args(graph_args(dir.path(), &graph.base_url()))
        .args(["--from", &since.to_string(), "--until", &until.to_string(), "--graph-top", "100", "--to", &sink.url])
        .output()
        .unwrap();
    let (sink_status, sink_report) = sink.report(Duration::from_secs(120));
    let stats = graph.stats();
    eprintln!("{}\nemulator: {stats:?}\nsink: {sink_report}", stderr(&out));
    assert!(out.status.success(), "backfill failed ({}): {}", out.status, stderr(&out));
    assert!(sink_status.success(), "the sink did not get all {} messages: {sink_report}", expected.len());
    let seen = external_ids(&captured);
    let twice: Vec<_> = seen.iter().filter(|&(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "alerts received more than once: {} e.g. {:?}", twice.len(), twice.first());
    let got: HashSet<String> = seen.into_keys().collect();
    assert_eq!(got.len(), expected.len(), "missing: {}", expected.difference(&got).count());
    assert_eq!(got, expected, "every Defender for Cloud Apps alert, and no other");
    assert!(stats.injected_429 > 0 && stats.injected_5xx > 0, "the faults happened: {stats:?}");
    assert!(stats.graph_requests > 150, "the run needed more than one minute's requests: {stats:?}");
    assert!(stats.graph_most_per_window <= 150, "at most 150 Graph requests in any 60 s: {stats:?}");
    assert_eq!(stats.graph_throttled, 0, "the client kept the limit, the throttle never acted: {stats:?}");
    let summary = stderr(&out);
    let said = format!("backfilled {} alerts from Graph alerts_v2 ({} fetched", got.len(), stats.graph_alerts_served);
    assert!(summary.contains(&said), "{summary}");
}

/// Settings that cannot work stop the run before any traffic, with exit 2
/// and the flag to fix; the secret is never a flag value.
#[test]
fn graph_backfill_refusals_name_the_flag() {
    let dir = Scratch::new("graph-backfill-refusals");
    let base = "http://127.0.0.1:9";
    let args = graph_args(dir.path(), base);
    let window = ["--since", "1h", "-o", "/dev/null"];
    let run = |extra: &[&str], drop_flag: Option<&str>| {
        let mut args = args.clone();
        if let Some(flag) = drop_flag {
            let at = args.iter().position(|a| a == flag).unwrap();
            args.drain(at..at + 2);
        }
        let out =
            cefwire().args(&args).args(window).args(extra).env_remove("CEFWIRE_GRAPH_CLIENT_SECRET").output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", stderr(&out));
        stderr(&out)
    };
    assert!(run(&[], Some("--graph-client-secret-file")).contains("--graph-client-secret-file: required"));
    assert!(run(&[], Some("--graph-tenant-id")).contains("--graph-tenant-id: required"));
    assert!(run(&["--types", "activities"], None).contains("--source graph reads alerts only"));
    assert!(
        run(&["--graph-url", "http://graph.example"], Some("--graph-url"))
            .contains("--graph-url: \"http://graph.example\" is plain")
    );
    assert!(run(&["--filter", "createdDateTime ge 2020-01-01"], None).contains("--filter: must not filter on"));
    assert!(run(&["--graph-top", "5000"], None).contains("--graph-top: 5000 must be between 1 and 1000"));
    let flag = cefwire().args(&args).args(window).args(["--graph-client-secret", "s"]).output().unwrap();
    assert_eq!(flag.status.code(), Some(2), "there is no flag for the secret itself");
}

/// An alert the mapping cannot write (a `firstActivityDateTime` that is no
/// time) is rejected into `--rejects` as it came, the others are written,
/// and the run exits 3.
#[test]
fn graph_backfill_rejects_a_bad_alert_into_the_rejects_file_and_exits_3() {
    let now = cefwire::time::now_ms();
    let alert = |n: i64, first: &str| {
        format!(
            r#"{{"id":"a{n}","providerAlertId":"p{n}","createdDateTime":"{}","serviceSource":"microsoftDefenderForCloudApps","title":"T{n}"{first}}}"#,
            cefwire::time::format_ms(now - 3_600_000 + n * 1000)
        )
    };
    let page = format!(
        r#"{{"value":[{},{},{}]}}"#,
        alert(1, ""),
        alert(2, r#","firstActivityDateTime":"yesterday""#),
        alert(3, "")
    );
    let mut builder = cefwire::emulate::StoreBuilder::new();
    let mut bytes = page.clone().into_bytes();
    let len = bytes.len();
    bytes.resize(len + cefwire::json::INPUT_PADDING, 0);
    builder.graph_alerts.add_document(&mut bytes, len);
    assert_eq!(builder.graph_alerts.stored, 3);
    let graph = graph_emulator(&std::sync::Arc::new(builder.build()), FaultConfig::default());
    let dir = Scratch::new("graph-backfill-rejects");
    let (out_file, rejects) = (dir.path().join("out.cef"), dir.path().join("rejects.ndjson"));
    let out = cefwire()
        .args(graph_args(dir.path(), &graph.base_url()))
        .args(["--since", "2h", "-o", out_file.to_str().unwrap(), "--rejects", rejects.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let ids: HashSet<String> = external_ids(&out_file).into_keys().collect();
    assert_eq!(ids, HashSet::from(["p1".to_owned(), "p3".to_owned()]));
    let kept = std::fs::read_to_string(&rejects).unwrap();
    assert_eq!(kept.lines().count(), 1, "{kept}");
    assert!(kept.contains(r#""firstActivityDateTime":"yesterday""#) && kept.contains(r#""id":"a2""#), "{kept}");
    assert!(stderr(&out).contains("graph alerts_v2:1: record 2"), "located by page and record: {}", stderr(&out));
    // --dry-run: one request, the first alert as its CEF line, nothing written.
    let requests = graph.stats().graph_requests;
    let dry = cefwire()
        .args(graph_args(dir.path(), &graph.base_url()))
        .args(["--since", "2h", "--dry-run"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&dry.stdout);
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert!(said.contains("first alert as CEF:") && said.contains("externalId=p1 "), "{said}");
    assert_eq!(graph.stats().graph_requests, requests + 1, "{said}");
}

/// The Graph application's secret (a wrong one and the right one) and the
/// bearer token never show in what backfill says, nor does the secret of
/// `CEFWIRE_GRAPH_CLIENT_SECRET`.
#[test]
fn graph_backfill_never_shows_the_secret_or_the_token() {
    let (store, since, until, _) = graph_store(50, 13);
    let graph = graph_emulator(&store, FaultConfig::default());
    let dir = Scratch::new("graph-backfill-secrets");
    let window = ["--from".to_owned(), since.to_string(), "--until".to_owned(), until.to_string()];
    let run = |args: Vec<String>, env_secret: Option<&str>| {
        let mut command = cefwire();
        command.args(args).args(&window).args(["-o", "/dev/null"]).env_remove("CEFWIRE_GRAPH_CLIENT_SECRET");
        if let Some(secret) = env_secret {
            command.env("CEFWIRE_GRAPH_CLIENT_SECRET", secret);
        }
        let out = command.output().unwrap();
        (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out)))
    };
    let mut args = graph_args(dir.path(), &graph.base_url());
    let (code, text) = run(args.clone(), None);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("backfilled") && !text.contains(CLIENT.1) && !text.contains("Bearer "), "{text}");
    // The secret from the environment instead of the file: a wrong one.
    let at = args.iter().position(|a| a == "--graph-client-secret-file").unwrap();
    args.drain(at..at + 2);
    let wrong = "wrong-graph-s3cret";
    let (code, text) = run(args.clone(), Some(wrong));
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("check the tenant id, client id and client secret") && !text.contains(wrong), "{text}");
    let (code, text) = run(args, Some(CLIENT.1));
    assert_eq!(code, Some(0), "the environment's secret works: {text}");
    assert!(!text.contains(CLIENT.1), "{text}");
}

/// `--archive` keeps the raw Graph alerts (`graph-alerts_…ndjson.zst`):
/// `cefwire convert` of the archive gives the backfill's own CEF lines,
/// every alert of the window in it. Through a 5xx, so pages are fetched
/// again; before, the flag was refused with `--source graph`.
#[test]
fn graph_backfill_archive_converts_back_to_the_same_lines() {
    let (store, since, until, expected) = graph_store(1_500, 9);
    let graph = graph_emulator(&store, FaultConfig { error_5xx: 0.05, ..FaultConfig::default() });
    let dir = Scratch::new("graph-backfill-archive");
    let (out_file, archive) = (dir.path().join("out.cef"), dir.path().join("raw"));
    let out = cefwire()
        .args(graph_args(dir.path(), &graph.base_url()))
        .args(["--from", &since.to_string(), "--until", &until.to_string(), "--graph-top", "200"])
        .args(["-o", out_file.to_str().unwrap(), "--archive", archive.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "backfill failed ({}): {}", out.status, stderr(&out));
    let files: Vec<_> = std::fs::read_dir(&archive).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "one archive file: {files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("graph-alerts_") && name.ends_with(".ndjson.zst"), "{name}");
    assert!(stderr(&out).contains(&format!("archived raw records to {}", files[0].display())), "{}", stderr(&out));
    let again = dir.path().join("again.cef");
    let converted = cefwire()
        .args(["convert", "--quiet", files[0].to_str().unwrap(), "-o", again.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(converted.status.success(), "convert of the archive failed: {}", stderr(&converted));
    let lines = |path: &Path| {
        let text = std::fs::read_to_string(path).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines.sort();
        lines.dedup();
        lines
    };
    let (sent, archived) = (lines(&out_file), lines(&again));
    assert_eq!(sent.len(), expected.len(), "every alert of the window was backfilled");
    assert_eq!(archived, sent, "the archive converts to the lines the backfill wrote");
}

/// A page whose `@odata.nextLink` points to another host (a misrouted or
/// hostile answer) is not followed: the run stops with an error naming
/// the link, exit 1, and the other host never sees a connection (it would
/// have received the bearer token). What came before is written.
#[test]
fn graph_backfill_never_follows_a_next_link_to_another_host() {
    let elsewhere = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    elsewhere.set_nonblocking(true).unwrap();
    let (store, since, until, _) = graph_store(600, 5);
    let faults = FaultConfig { graph_next_link_to: Some(elsewhere.local_addr().unwrap()), ..FaultConfig::default() };
    let graph = graph_emulator(&store, faults);
    let dir = Scratch::new("graph-backfill-foreign-link");
    let out_file = dir.path().join("out.cef");
    let out = cefwire()
        .args(graph_args(dir.path(), &graph.base_url()))
        .args(["--from", &since.to_string(), "--until", &until.to_string(), "--graph-top", "100"])
        .args(["-o", out_file.to_str().unwrap()])
        .output()
        .unwrap();
    let said = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    let link = format!("Graph's answer links to http://{}/v1.0/security/alerts_v2?", elsewhere.local_addr().unwrap());
    assert!(said.contains(&link) && said.contains("not followed"), "{said}");
    match elsewhere.accept() {
        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the other host was contacted: {other:?}"),
    }
    let written = std::fs::read_to_string(&out_file).unwrap();
    assert_eq!(written.lines().count(), 100, "the first page is written");
}
