//! `cefwire emulate --archive-to` against a real Azurite: the streaming
//! archive is written as append blobs per hour that grow while they are
//! read, an earlier hour's blob is appended to after later ones exist,
//! some records come twice and some are of other tables — and the archive,
//! read back and converted, holds every generated `ReportId`.

use crate::util::azurite;
use crate::util::{Scratch, cefwire, first_line, json_u64, signal, wait_or_kill};
use cefwire::azure::blob::{BlobClient, BlobConfig, StorageAuth};
use cefwire::azure::shared_key::{AZURITE_ACCOUNT, AZURITE_KEY};
use cefwire::generate::successors::report_id;
use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::time::{Duration, Instant};

const RECORDS: u64 = 6000;
const SEED: u64 = 11;

#[test]
fn emulate_writes_a_growing_archive_with_late_appends_and_duplicates() {
    let Some(endpoint) = azurite::shared() else { return };
    let container = "archive-writer-test";
    let dir = Scratch::new("streaming-archive");
    let mut emulator = cefwire()
        .args(["emulate", "--listen", "127.0.0.1:0", "--seed", &SEED.to_string()])
        .args(["--archive-to", endpoint, "--archive-container", container, "--archive-records", &RECORDS.to_string()])
        .args(["--archive-span", "4h", "--archive-duration", "6s", "--archive-block", "100"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let base = first_line(emulator.stdout.take().unwrap(), Duration::from_secs(60), "emulator URL");
    let stats = || ureq::get(&format!("{base}/stats")).call().unwrap().into_body().read_to_string().unwrap();

    // While it writes: the sizes of the blobs, listed again and again.
    let mut config = BlobConfig::new(endpoint, AZURITE_ACCOUNT, StorageAuth::AccountKey(AZURITE_KEY.into()));
    config.retry.max_attempts = 3;
    let mut blobs = BlobClient::new(&config).unwrap();
    let mut sizes: HashMap<String, u64> = HashMap::new();
    let mut earlier_hour_grew = false;
    let deadline = Instant::now() + Duration::from_secs(180);
    while !stats().contains("\"archiveDone\":true") {
        assert!(Instant::now() < deadline, "the archive was not written within 180 s: {}", stats());
        if let Ok(list) = blobs.list_blobs(container, "tenantId=", None, 5000) {
            let newest = list.blobs.iter().map(|b| b.name.clone()).max();
            for blob in &list.blobs {
                let before = sizes.insert(blob.name.clone(), blob.size);
                if before.is_some_and(|b| b < blob.size) && newest.as_ref().is_some_and(|n| *n > blob.name) {
                    earlier_hour_grew = true;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    assert!(earlier_hour_grew, "an earlier hour's blob was appended to after a later hour's blob existed: {sizes:?}");
    let done = stats();
    assert_eq!(json_u64(&done, "archiveRecords"), RECORDS);

    // Read it all back; convert it with cefwire.
    let list = blobs.list_blobs(container, "tenantId=", None, 5000).unwrap();
    assert!(list.blobs.len() >= 4, "4 hours, one blob each: {:?}", list.blobs);
    let mut archive = Vec::new();
    let mut buf = Vec::new();
    for blob in &list.blobs {
        assert!(blob.name.ends_with("/m=00/PT1H.json") && blob.blob_type == "AppendBlob", "{blob:?}");
        let read = blobs.get_range(container, &blob.name, 0, 64 << 20, &mut buf).unwrap();
        assert_eq!(read.len as u64, read.blob_size);
        assert!(buf.ends_with(b"\n"), "every append ends with a complete line");
        archive.extend_from_slice(&buf);
    }
    let file = dir.path().join("archive.ndjson");
    std::fs::write(&file, &archive).unwrap();
    let out = cefwire().args(["convert", file.to_str().unwrap()]).output().unwrap();
    let summary = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{summary}");
    let mut counts: HashMap<u64, u32> = HashMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let id = line.split("externalId=").nth(1).unwrap().split(' ').next().unwrap();
        *counts.entry(id.parse().unwrap()).or_default() += 1;
    }
    let expected: HashSet<u64> = (0..RECORDS).map(|i| report_id(SEED, i)).collect();
    assert_eq!(counts.keys().copied().collect::<HashSet<_>>(), expected, "every ReportId is in the archive");
    let twice = counts.values().filter(|n| **n == 2).count();
    assert!(twice > 0 && counts.values().all(|n| *n <= 2), "some records twice, none more: {twice}");
    assert!(summary.contains("skipped") && summary.contains("streaming records of other tables"), "{summary}");

    signal(&emulator, libc::SIGTERM);
    let status = wait_or_kill(&mut emulator, Duration::from_secs(30), "emulate after SIGTERM");
    assert!(status.success(), "emulate exits 0 after SIGTERM");
}
