//! `cefwire backfill --source storage` against real parts: a streaming
//! archive of 200,000 generated `CloudAppEvents` written into Azurite by
//! the emulator's archive writer (append blobs over several hours, late
//! appends to earlier hours, duplicates, records of other tables), sent to
//! a real rsyslogd, every `ReportId` counted at the receiver. And the
//! failures a user meets first: a refused key or SAS, an unreachable
//! account. Skips with a note when azurite-blob or rsyslogd is missing,
//! unless `CEFWIRE_REQUIRE_AZURITE` / `CEFWIRE_REQUIRE_RSYSLOG` is set.

use crate::util::archive::{ArchiveWriter, check_every_id, first_duplicates, received_ids, unique_ids};
use crate::util::rsyslog::Rsyslog;
use crate::util::{Scratch, azurite, cefwire, stderr, wait_until};
use cefwire::azure::shared_key::{AZURITE_KEY, AccountKey, account_sas};
use std::time::Duration;

const RECORDS: u64 = 200_000;
const SEED: u64 = 23;

#[test]
fn backfill_from_storage_delivers_every_report_id_once_to_rsyslog() {
    let Some(endpoint) = azurite::shared() else { return };
    if !Rsyslog::available() {
        return;
    }
    let dir = Scratch::new("storage-backfill");
    let container = "backfill-storage";
    let mut writer = ArchiveWriter::start(endpoint, container, RECORDS, SEED, "5h", "20s");
    writer.wait_done(Duration::from_secs(900));
    writer.stop();
    let rsyslog = Rsyslog::start(&dir.path().join("rsyslog"));
    // A SAS token with read and list rights, from a file.
    let key = AccountKey::new("devstoreaccount1", AZURITE_KEY).unwrap();
    let sas = dir.path().join("sas");
    std::fs::write(&sas, account_sas(&key, "rl", "2099-01-01T00:00:00Z")).unwrap();
    let out = cefwire()
        .args(["backfill", "--source", "storage", "--since", "7h", "--storage-url", endpoint])
        .args(["--container", container, "--sas-file", sas.to_str().unwrap(), "--to", &rsyslog.tcp_url()])
        .args(["--no-progress"])
        .output()
        .unwrap();
    let summary = stderr(&out);
    assert!(out.status.success(), "backfill failed: {summary}");
    assert!(summary.contains(&format!("backfilled {RECORDS} CloudAppEvents records")), "{summary}");
    assert!(summary.contains("sent already (the same ReportId again)"), "the duplicates are said: {summary}");
    assert!(summary.contains("streaming records of other tables"), "{summary}");
    wait_until(Duration::from_secs(300), "every record at rsyslog", || unique_ids(&rsyslog.out) as u64 >= RECORDS);
    Rsyslog::wait_until_quiet(&rsyslog.out, Duration::from_secs(2), Duration::from_secs(120));
    let received = received_ids(&rsyslog.out);
    let duplicates = check_every_id(&received, &writer.report_ids(), "backfill --source storage");
    assert_eq!(duplicates, 0, "each ReportId exactly once; the first repeated: {:?}", first_duplicates(&received));
    eprintln!("backfill --source storage: {RECORDS} ReportIds, each once at rsyslog\n{summary}");
}

#[test]
fn a_refused_key_or_sas_and_an_unreachable_account_fail_with_what_to_check() {
    let Some(endpoint) = azurite::shared() else { return };
    let dir = Scratch::new("storage-refusals");
    let container = "refusals";
    let mut writer = ArchiveWriter::start(endpoint, container, 100, 5, "1h", "1s");
    writer.wait_done(Duration::from_secs(300));
    writer.stop();
    let backfill = |extra: &[&str]| {
        cefwire()
            .args(["backfill", "--source", "storage", "--since", "3h", "--container", container])
            .args(["-o", dir.path().join("out.cef").to_str().unwrap(), "--no-progress"])
            .args(["--retries", "2", "--retry-delay", "100ms"])
            .args(extra)
            .output()
            .unwrap()
    };
    // A wrong account key (valid base64, another key).
    let wrong_key = dir.path().join("wrong-key");
    std::fs::write(&wrong_key, "c2VjcmV0LWJ1dC13cm9uZy1rZXk=\n").unwrap();
    let out = backfill(&["--storage-url", endpoint, "--account-key-file", wrong_key.to_str().unwrap()]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("refused the request (403"), "{text}");
    assert!(!text.contains("c2VjcmV0"), "the key is never shown: {text}");
    // A SAS without the list right.
    let key = AccountKey::new("devstoreaccount1", AZURITE_KEY).unwrap();
    let read_only = dir.path().join("read-only-sas");
    std::fs::write(&read_only, account_sas(&key, "r", "2099-01-01T00:00:00Z")).unwrap();
    let out = backfill(&["--storage-url", endpoint, "--sas-file", read_only.to_str().unwrap()]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("refused the request (403") && text.contains("permissions"), "{text}");
    // Another source's flags, or storage flags with another source: refused.
    let out = backfill(&["--storage-url", endpoint, "--config", "x.toml"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--config is for --source eventhubs"), "{}", stderr(&out));
    let out = cefwire()
        .args(["backfill", "--since", "1h", "--portal-url", "https://contoso.portal.cloudappsecurity.com"])
        .args(["--token", "t", "-o", "-", "--sas-file", "sas"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--sas-file is for --source storage"), "{}", stderr(&out));
    // No secret given at all: a usage error naming the flags, before any traffic.
    let out = backfill(&["--storage-url", endpoint]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--storage-auth: say how to authenticate"), "{}", stderr(&out));
    // Nobody listening: the attempts, then the error naming the listing.
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, format!("{AZURITE_KEY}\n")).unwrap();
    let port = crate::util::ports::reserve();
    let nowhere = format!("http://127.0.0.1:{}/devstoreaccount1", port.port());
    let out = backfill(&["--storage-url", &nowhere, "--account-key-file", key_file.to_str().unwrap()]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("giving up on the listing of container refusals after 2 attempts"), "{text}");
    assert!(!dir.path().join("out.cef").exists() || std::fs::read(dir.path().join("out.cef")).unwrap().is_empty());
}

/// SIGINT while the receiver has stopped reading (the sender full, the
/// reader blocked behind it): the run ends within the deadline, exit 1,
/// the summary says INCOMPLETE and how many messages were not sent; no
/// hang, no panic. Then SIGINT while writing to a file: every line in the
/// file is whole.
#[test]
fn sigint_during_a_storage_backfill_ends_it_incomplete_and_clean() {
    let Some(endpoint) = azurite::shared() else { return };
    let dir = Scratch::new("storage-sigint");
    let container = "sigint-storage";
    let mut writer = ArchiveWriter::start(endpoint, container, 60_000, 31, "2h", "5s");
    writer.wait_done(Duration::from_secs(600));
    writer.stop();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, format!("{AZURITE_KEY}\n")).unwrap();
    let backfill = |extra: &[&str], stderr_file: &std::path::Path| {
        cefwire()
            .args(["backfill", "--source", "storage", "--since", "4h", "--storage-url", endpoint])
            .args(["--container", container, "--account-key-file", key_file.to_str().unwrap(), "--no-progress"])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(stderr_file).unwrap())
            .spawn()
            .unwrap()
    };
    // A receiver that accepts and never reads.
    let receiver = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let to = format!("tcp://{}", receiver.local_addr().unwrap());
    let log = dir.path().join("stalled.log");
    let mut child = backfill(&["--to", &to], &log);
    let (socket, _) = receiver.accept().unwrap();
    let mut byte = [0u8; 1];
    wait_until(Duration::from_secs(300), "the first message at the receiver", || {
        socket.peek(&mut byte).is_ok_and(|n| n > 0)
    });
    // 60,000 records are far more than the socket buffers hold: the run
    // cannot finish while nothing is read.
    std::thread::sleep(Duration::from_millis(500));
    assert!(child.try_wait().unwrap().is_none(), "{}", std::fs::read_to_string(&log).unwrap());
    crate::util::signal(&child, libc::SIGINT);
    let status = crate::util::wait_child(&mut child, Duration::from_secs(60)).expect("SIGINT ends the stalled run");
    let said = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(1), "{said}");
    assert!(said.contains("backfill INCOMPLETE") && said.contains("NOT sent"), "{said}");
    assert!(!said.contains("panicked"), "{said}");
    drop(socket);

    // Into a file: SIGINT once lines are being written; the file ends with a whole line.
    let out_file = dir.path().join("out.cef");
    let log = dir.path().join("file.log");
    let mut child = backfill(&["-o", out_file.to_str().unwrap()], &log);
    wait_until(Duration::from_secs(300), "lines in the output", || {
        std::fs::metadata(&out_file).is_ok_and(|m| m.len() > 0) || child.try_wait().unwrap().is_some()
    });
    crate::util::signal(&child, libc::SIGINT);
    let status = crate::util::wait_child(&mut child, Duration::from_secs(60)).expect("SIGINT ends the run");
    let said = std::fs::read_to_string(&log).unwrap();
    // Finished before the signal came (a fast machine) or stopped by it.
    assert!(matches!(status.code(), Some(0 | 1)), "{status}: {said}");
    let text = std::fs::read(&out_file).unwrap();
    assert!(text.is_empty() || text.ends_with(b"\n"), "the output ends with a whole line");
    for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let cef = line.windows(6).position(|w| w == b"CEF:0|").map(|at| &line[at..]);
        let fields = cef.map_or(0, |cef| cef.split(|&b| b == b'|').count());
        assert!(fields >= 8, "a whole CEF line: {}", String::from_utf8_lossy(line));
    }
    if status.code() == Some(1) {
        assert!(said.contains("backfill INCOMPLETE"), "{said}");
    }
}
