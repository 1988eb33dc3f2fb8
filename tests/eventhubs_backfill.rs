//! `cefwire backfill --source eventhubs` against a real Kafka-protocol
//! broker (tansu, one per test) holding streaming `CloudAppEvents`
//! envelopes, produced one message per batch (see `util::tansu`), into a
//! real `cefwire sink` or a file. Each test skips with a note when tansu is
//! missing, unless `CEFWIRE_REQUIRE_TANSU` is set (as `.ci/run` does).

use crate::util::rsyslog::Rsyslog;
use crate::util::sink::SinkProcess;
use crate::util::tansu::{Tansu, produce_round_robin};
use crate::util::{Scratch, cefwire, external_id, signal, wait_or_kill, wait_until};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

const TOPIC: &str = "insights-logs-advancedhunting-cloudappevents";
const PARTITIONS: i32 = 4;
/// The agent's consumer group in the configuration file.
const GROUP: &str = "cefwire-agents";
const LONG: Duration = Duration::from_secs(600);

/// One streaming `CloudAppEvents` record with `ReportId` `id`.
fn record(id: &str, n: u64) -> String {
    format!(
        concat!(
            r#"{{"time":"2026-11-01T10:00:00.0000000Z","tenantId":"4d8f5a1c-0000-4000-8000-000000000001","#,
            r#""operationName":"Publish","category":"AdvancedHunting-CloudAppEvents","properties":{{"#,
            r#""Timestamp":"2026-11-01T{:02}:{:02}:{:02}.{:03}Z","ActionType":"FileDownloaded","#,
            r#""ActivityType":"Download","Application":"Microsoft SharePoint Online","ApplicationId":20892,"#,
            r#""AccountId":"user{}@contoso.com","IPAddress":"10.1.{}.{}","UserAgent":"Mozilla/5.0","#,
            r#""ObjectName":"report-{}.docx","ActivityObjects":[{{"Name":"report-{}.docx"}}],"ReportId":"{}"}}}}"#
        ),
        (n / 3600) % 24,
        (n / 60) % 60,
        n % 60,
        n % 1000,
        n % 97,
        n % 250,
        n % 97,
        n,
        n,
        id
    )
}

/// A record of another table: counted and skipped.
fn other_table(n: u64) -> String {
    format!(
        r#"{{"category":"AdvancedHunting-IdentityLogonEvents","properties":{{"Timestamp":"2026-11-01T10:00:00Z","ReportId":"o-{n}"}}}}"#
    )
}

/// Message `m`: records `r-4m` … `r-4m+3`, plus extras where `extras` says.
fn message(m: u64, extras: &[String]) -> Vec<u8> {
    let mut records: Vec<String> = (4 * m..4 * m + 4).map(|n| record(&format!("r-{n}"), n)).collect();
    records.extend_from_slice(extras);
    format!("{{\"records\":[{}]}}", records.join(",")).into_bytes()
}

/// Messages `first..last` with their records only.
fn plain_messages(first: u64, last: u64) -> Vec<Vec<u8>> {
    (first..last).map(|m| message(m, &[])).collect()
}

/// The agent's file, with only what the backfill reads from it.
fn config_file(dir: &Path, bootstrap: &str) -> PathBuf {
    let path = dir.join("cefwire.toml");
    fs::write(
        &path,
        format!(
            "[activities]\nsource = \"eventhubs\"\n[alerts]\nenabled = false\n[eventhubs]\n\
             bootstrap_servers = \"{bootstrap}\"\nauth = \"none\"\nevent_hub = \"{TOPIC}\"\nconsumer_group = \"{GROUP}\"\n"
        ),
    )
    .unwrap();
    path
}

/// Runs `cefwire backfill --source eventhubs --config CONFIG ARGS…`: exit
/// status and stderr.
fn backfill(config: &Path, args: &[&str]) -> (ExitStatus, String) {
    let mut child = cefwire()
        .args(["backfill", "--source", "eventhubs", "--no-progress", "--config"])
        .arg(config)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cefwire backfill starts");
    let mut pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    });
    let status = wait_or_kill(&mut child, LONG, "cefwire backfill");
    (status, reader.join().unwrap())
}

/// How often each `externalId` is in `file` (CEF or syslog lines).
fn ids_in(file: &Path) -> HashMap<String, u32> {
    let bytes = fs::read(file).unwrap_or_default();
    let mut seen = HashMap::new();
    for line in bytes.split(|&b| b == b'\n') {
        if let Some(id) = external_id(line) {
            *seen.entry(String::from_utf8_lossy(id).into_owned()).or_insert(0) += 1;
        }
    }
    seen
}

/// `r-N` for every record of messages `m` of `messages`.
fn ids_of(messages: impl IntoIterator<Item = u64>) -> BTreeSet<String> {
    messages.into_iter().flat_map(|m| (4 * m..4 * m + 4).map(|n| format!("r-{n}"))).collect()
}

/// Each id of `expected` exactly once in `file`, nothing else.
fn assert_exactly(file: &Path, expected: &BTreeSet<String>, context: &str) {
    let seen = ids_in(file);
    let missing: Vec<&String> = expected.iter().filter(|id| !seen.contains_key(*id)).take(10).collect();
    let twice: Vec<(&String, &u32)> = seen.iter().filter(|(_, n)| **n > 1).take(10).collect();
    let unexpected: Vec<&String> = seen.keys().filter(|id| !expected.contains(*id)).take(10).collect();
    assert!(
        missing.is_empty() && twice.is_empty() && unexpected.is_empty(),
        "{context}: {} ids expected, {} arrived; missing (first 10) {missing:?}, more than once {twice:?}, \
         not expected {unexpected:?}",
        expected.len(),
        seen.len()
    );
}

fn offsets_text(offsets: &[(i32, i64)]) -> String {
    offsets.iter().map(|(p, o)| format!("{p}:{o}")).collect::<Vec<_>>().join(",")
}

#[test]
fn eventhubs_backfill_from_beginning_delivers_every_report_id_once_and_moves_no_group_offset() {
    if !Tansu::available() {
        return;
    }
    const MESSAGES: u64 = 5_000;
    let dir = Scratch::new("eventhubs-backfill");
    let tansu = Tansu::start(&dir.join("tansu"));
    tansu.create_topic(TOPIC, PARTITIONS as u32);
    // 20,000 records in 5,000 messages; every 25th message also carries a
    // record of another table, every 10th one again a record of the
    // message 5 before it (in another partition), message 77 one record
    // without a ReportId.
    let bodies: Vec<Vec<u8>> = (0..MESSAGES)
        .map(|m| {
            let mut extras = Vec::new();
            if m % 25 == 0 {
                extras.push(other_table(m));
            }
            if m % 10 == 0 && m >= 5 {
                let n = 4 * (m - 5);
                extras.push(record(&format!("r-{n}"), n));
            }
            if m == 77 {
                extras.push(record("", 77).replace(r#","ReportId":"""#, ""));
            }
            message(m, &extras)
        })
        .collect();
    produce_round_robin(&tansu.producer(), TOPIC, PARTITIONS, bodies);

    // The agent's group has offsets of its own; the backfill must leave them.
    let observer = tansu.observer(GROUP);
    let mut list = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        list.add_partition_offset(TOPIC, p, Offset::Offset(i64::from(p) + 3)).unwrap();
    }
    observer.commit(&list, CommitMode::Sync).expect("the agent's group commits");
    let before = Tansu::committed(&observer, TOPIC, PARTITIONS);
    assert_eq!(before, [Some(3), Some(4), Some(5), Some(6)], "the group's offsets before the backfill");

    let received = dir.join("received.log");
    let sink = SinkProcess::start("tcp://127.0.0.1:0", &["--out", received.to_str().unwrap()]);
    let config = config_file(&dir, &tansu.bootstrap());
    let (status, stderr) = backfill(&config, &["--from-beginning", "--to", &sink.url]);
    assert_eq!(status.code(), Some(3), "one record rejected: exit 3\n{stderr}");
    wait_until(LONG, "20,000 messages at the sink", || ids_in(&received).len() >= 20_000);
    Rsyslog::wait_until_quiet(&received, Duration::from_secs(2), LONG);
    sink.stop();
    assert_exactly(&received, &ids_of(0..MESSAGES), "backfill --from-beginning into cefwire sink");

    for line in [
        "backfilled 20000 records from event hub insights-logs-advancedhunting-cloudappevents (20700 read in 5000 messages)",
        "partition 0: offsets 0..1250 read up to 1250: 1250 messages",
        "partition 3: offsets 0..1250 read up to 1250: 1250 messages",
        "skipped 200 records of other tables",
        "skipped 499 records sent already (the same ReportId again)",
        "rejected 1 records",
    ] {
        assert!(stderr.contains(line), "the summary lacks {line:?}:\n{stderr}");
    }
    assert!(stderr.contains("insights-logs-advancedhunting-cloudappevents/1@19"), "the reject's place:\n{stderr}");
    assert!(!stderr.contains("INCOMPLETE"), "{stderr}");

    assert_eq!(Tansu::committed(&observer, TOPIC, PARTITIONS), before, "the agent's group moved");
    let reader_group = tansu.observer(&format!("{GROUP}.backfill"));
    assert_eq!(Tansu::committed(&reader_group, TOPIC, PARTITIONS), [None; 4], "the reader committed offsets");
}

#[test]
fn eventhubs_backfill_starts_at_given_offsets_or_time_and_ends_at_until() {
    if !Tansu::available() {
        return;
    }
    const FIRST: u64 = 400;
    const ALL: u64 = 800;
    let dir = Scratch::new("eventhubs-backfill-start");
    let tansu = Tansu::start(&dir.join("tansu"));
    tansu.create_topic(TOPIC, PARTITIONS as u32);
    let producer = tansu.producer();
    // Message m goes to partition m % 4 (round robin, in order).
    produce_round_robin(&producer, TOPIC, PARTITIONS, plain_messages(0, FIRST));
    let observer = tansu.observer(GROUP);
    let middle = Tansu::ends(&observer, TOPIC, PARTITIONS);
    assert_eq!(middle, [100; 4], "the first part's ends");
    std::thread::sleep(Duration::from_secs(2));
    let between = cefwire::time::now_ms();
    std::thread::sleep(Duration::from_secs(2));
    produce_round_robin(&producer, TOPIC, PARTITIONS, plain_messages(FIRST, ALL));
    let config = config_file(&dir, &tansu.bootstrap());
    let second_part = ids_of(FIRST..ALL);

    let out = dir.join("offsets.cef");
    let offsets: Vec<(i32, i64)> = (0..PARTITIONS).map(|p| (p, middle[p as usize])).collect();
    let (status, stderr) = backfill(&config, &["--offsets", &offsets_text(&offsets), "-o", out.to_str().unwrap()]);
    assert!(status.success(), "{status}\n{stderr}");
    assert_exactly(&out, &second_part, "--offsets at the first part's ends");

    let out = dir.join("two-partitions.cef");
    let (status, stderr) = backfill(&config, &["--offsets", "1:100,3:150", "-o", out.to_str().unwrap()]);
    assert!(status.success(), "{status}\n{stderr}");
    let expected = ids_of((FIRST..ALL).filter(|m| m % 4 == 1).chain((600..ALL).filter(|m| m % 4 == 3)));
    assert_exactly(&out, &expected, "--offsets 1:100,3:150");
    assert!(stderr.contains("partition 3: offsets 150..200 read up to 200: 50 messages"), "{stderr}");
    assert!(!stderr.contains("partition 0:"), "a partition not asked for was read:\n{stderr}");

    let out = dir.join("at.cef");
    let (status, stderr) = backfill(&config, &["--at", &between.to_string(), "-o", out.to_str().unwrap()]);
    assert!(status.success(), "{status}\n{stderr}");
    assert_exactly(&out, &second_part, "--at a time between the two parts");

    let out = dir.join("until.cef");
    let (status, stderr) =
        backfill(&config, &["--from-beginning", "--until", &between.to_string(), "-o", out.to_str().unwrap()]);
    assert!(status.success(), "{status}\n{stderr}");
    assert_exactly(&out, &ids_of(0..FIRST), "--from-beginning --until a time between the two parts");

    let out = dir.join("missing.cef");
    let (status, stderr) = backfill(&config, &["--offsets", "0:0,9:0", "-o", out.to_str().unwrap()]);
    assert_eq!(status.code(), Some(2), "a partition the hub does not have is a usage error\n{stderr}");
    assert!(
        stderr.contains(
            "--offsets: event hub insights-logs-advancedhunting-cloudappevents has no partition 9 (it has 4: 0-3)"
        ),
        "{stderr}"
    );
    assert!(!out.exists(), "an output of a run that read nothing is left behind");
    assert_eq!(Tansu::committed(&observer, TOPIC, PARTITIONS), [None; 4], "a backfill committed offsets");
}

#[test]
fn eventhubs_backfill_sigterm_mid_run_finishes_and_reports_incomplete() {
    if !Tansu::available() {
        return;
    }
    let dir = Scratch::new("eventhubs-backfill-sigterm");
    let tansu = Tansu::start(&dir.join("tansu"));
    tansu.create_topic(TOPIC, PARTITIONS as u32);
    // About 9 MB of CEF: far more than the sender's pool (8 KiB here) and
    // the socket buffers of a receiver that stops reading hold.
    produce_round_robin(&tansu.producer(), TOPIC, PARTITIONS, plain_messages(0, 5_000));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("tcp://{}", listener.local_addr().unwrap());
    let config = config_file(&dir, &tansu.bootstrap());
    let rejects = dir.join("rejects.ndjson");
    let mut child = cefwire()
        .args(["backfill", "--source", "eventhubs", "--no-progress", "--from-beginning", "--config"])
        .arg(&config)
        .args(["--to", &url, "--batches", "2", "--batch-kib", "4", "--give-up-after", "never"])
        .args(["--drain-timeout", "1s", "--rejects", rejects.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cefwire backfill starts");
    // The receiver reads the first 64 KiB, then nothing more: the run is
    // under way and cannot end by itself.
    let (mut socket, _) = listener.accept().unwrap();
    let mut first = vec![0u8; 64 << 10];
    socket.read_exact(&mut first).unwrap();
    signal(&child, libc::SIGTERM);
    let mut pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    });
    let status = wait_or_kill(&mut child, Duration::from_secs(120), "cefwire backfill after SIGTERM");
    let stderr = reader.join().unwrap();
    drop(socket);
    assert_eq!(status.code(), Some(1), "a stopped run exits 1\n{stderr}");
    for text in ["backfill INCOMPLETE", "stopped by a signal", "partition 0: offsets 0..1250 read up to"] {
        assert!(stderr.contains(text), "stderr lacks {text:?}:\n{stderr}");
    }
    assert!(rejects.exists(), "the rejects file was not finished");
    let observer = tansu.observer(GROUP);
    assert_eq!(Tansu::committed(&observer, TOPIC, PARTITIONS), [None; 4], "a stopped backfill committed offsets");
}

#[test]
fn eventhubs_backfill_with_the_broker_unreachable_fails_naming_it() {
    let dir = Scratch::new("eventhubs-backfill-unreachable");
    // Reserved, and nobody listens on it.
    let port = crate::util::ports::reserve();
    let config = config_file(&dir, &format!("127.0.0.1:{}", port.port()));
    let out = dir.join("out.cef");
    let (status, stderr) = backfill(&config, &["--from-beginning", "-o", out.to_str().unwrap()]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with(&format!("cefwire: reading event hub {TOPIC} at 127.0.0.1:")), "{stderr}");
    assert!(stderr.contains(&format!("the broker at 127.0.0.1:{} did not answer within", port.port())), "{stderr}");
    assert!(stderr.contains("backfill INCOMPLETE"), "{stderr}");
    assert!(!out.exists(), "an output of a run that read nothing is left behind");

    // A signal while it waits for the broker ends the wait: the run says
    // it was stopped, not that the broker did not answer.
    let mut child = cefwire()
        .args(["backfill", "--source", "eventhubs", "--no-progress", "--from-beginning", "--config"])
        .arg(&config)
        .args(["-o", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cefwire backfill starts");
    let (lines, arrived) = std::sync::mpsc::channel();
    let pipe = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    // Its first line (where it reads from) comes after the signal
    // handlers are in place.
    let first = arrived.recv_timeout(LONG).expect("a first line on stderr");
    signal(&child, libc::SIGTERM);
    let status = wait_or_kill(&mut child, LONG, "cefwire backfill after SIGTERM while connecting");
    let stderr: Vec<String> = std::iter::once(first).chain(arrived.try_iter()).collect();
    let stderr = stderr.join("\n");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cefwire: error: stopped by a signal"), "{stderr}");
    assert!(!stderr.contains("did not answer"), "{stderr}");
    assert!(!out.exists(), "an output of a run that read nothing is left behind");
}

#[test]
fn eventhubs_backfill_refuses_the_flags_of_the_other_source() {
    let dir = Scratch::new("eventhubs-backfill-flags");
    let config = config_file(&dir, "127.0.0.1:9");
    let config = config.to_str().unwrap();
    let out = dir.join("out.cef");
    let out = out.to_str().unwrap();
    let cases: [(&[&str], &str); 7] = [
        (
            &["--source", "eventhubs", "--config", config, "--since", "1h", "-o", out],
            "--since is for --source mda or graph",
        ),
        (&["--source", "eventhubs", "--config", config, "-o", out], "say where to start"),
        (&["--source", "eventhubs", "--from-beginning", "-o", out], "needs --config FILE"),
        (
            &["--source", "eventhubs", "--config", config, "--from-beginning", "--at", "now", "-o", out],
            "exclude each other",
        ),
        (
            &["--source", "eventhubs", "--config", config, "--at", "now", "--until", "2020-01-01", "-o", out],
            "--until must be after --at",
        ),
        (
            &["--source", "eventhubs", "--config", config, "--offsets", "0:x", "-o", out],
            "--offsets: \"0:x\" is not PARTITION:OFFSET",
        ),
        (
            &["--from-beginning", "--portal-url", "https://x", "--token", "t", "-o", out],
            "--from-beginning is for --source eventhubs",
        ),
    ];
    for (args, expected) in cases {
        let run = cefwire().arg("backfill").args(args).stdin(Stdio::null()).output().unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: expected {expected:?} in {stderr}");
    }
    assert!(!Path::new(out).exists(), "a refused command line wrote an output");
}
