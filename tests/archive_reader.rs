//! The streaming-archive reader against a real Azurite: complete lines
//! only (LF and CRLF), a line still being written left for later, growing
//! blobs visited again, the look-back, a too-long line skipped and
//! reported without being held, a blob created again (shorter than the
//! offset read) read from its start, and a reader started from saved
//! positions reading nothing twice.

use crate::util::azurite;
use cefwire::azure::archive::{ArchiveConfig, ArchiveReader, Chunk, HOUR_MS, blob_hour_ms, blob_name};
use cefwire::azure::blob::{BlobClient, BlobConfig, StorageAuth};
use cefwire::azure::shared_key::{AZURITE_ACCOUNT, AZURITE_KEY};
use std::collections::BTreeMap;

fn blob_config(endpoint: &str) -> BlobConfig {
    let mut config = BlobConfig::new(endpoint, AZURITE_ACCOUNT, StorageAuth::AccountKey(AZURITE_KEY.into()));
    config.retry.max_attempts = 3;
    config
}

/// Every chunk's lines (or a marker for a skipped line) until none is left.
fn drain(reader: &mut ArchiveReader) -> Vec<String> {
    let mut buffer = Vec::new();
    let mut got = Vec::new();
    while let Some(chunk) = reader.next_chunk(&mut buffer).unwrap() {
        match chunk {
            Chunk::Lines(position) => {
                assert_eq!(buffer.len() as u64, position.end - position.start);
                assert!(buffer.ends_with(b"\n"), "a chunk ends with a complete line");
                got.extend(String::from_utf8(buffer.clone()).unwrap().lines().map(str::to_owned));
            }
            Chunk::TooLong(position) => {
                assert!(buffer.is_empty(), "a skipped line is not handed out");
                got.push(format!("too long: {}..{}", position.start, position.end));
            }
        }
        assert!(buffer.capacity() <= 1024, "the buffer stays within the line limit: {}", buffer.capacity());
    }
    got
}

#[test]
fn reads_complete_lines_of_growing_blobs_within_the_look_back() {
    let Some(endpoint) = azurite::shared() else { return };
    let mut writer = BlobClient::new(&blob_config(endpoint)).unwrap();
    let container = "archive-reader-test";
    writer.create_container(container).unwrap();
    let now = cefwire::time::now_ms();
    let this_hour = now - now.rem_euclid(HOUR_MS);
    let (old, earlier, current) =
        (blob_name("t1", this_hour - 72 * HOUR_MS), blob_name("t1", this_hour - HOUR_MS), blob_name("t1", this_hour));
    assert_eq!(blob_hour_ms(&current), Some(this_hour));
    for blob in [&old, &earlier, &current] {
        writer.create_append_blob(container, blob).unwrap();
    }
    writer.append_block(container, &old, b"old 1\n").unwrap();
    writer.append_block(container, &earlier, b"e1\r\ne2\n").unwrap();
    writer.append_block(container, &current, b"c1\nc2 still being wri").unwrap();

    let mut config = ArchiveConfig::new(blob_config(endpoint));
    config.container = container.into();
    config.prefix = "tenantId=t1/".into();
    config.read_bytes = 16;
    config.max_line_bytes = 64;
    let since = now - config.look_back_ms;
    let mut reader = ArchiveReader::new(&config, BTreeMap::new()).unwrap();
    let refresh = reader.refresh(since, i64::MAX).unwrap();
    assert_eq!(refresh.queued, 2, "the 72 h old blob is outside the 48 h look-back");
    assert_eq!(drain(&mut reader), ["e1", "e2", "c1"], "only complete lines");
    assert_eq!(reader.positions()[&current], 3);
    assert_eq!(reader.stats().unfinished_tails, 1);

    // The line is finished, the earlier hour gets a late append, a line
    // longer than 64 bytes comes and goes.
    writer.append_block(container, &current, b"tten\n").unwrap();
    writer.append_block(container, &earlier, b"late\n").unwrap();
    let long = format!("{}\nafter\n", "x".repeat(100));
    writer.append_block(container, &current, long.as_bytes()).unwrap();
    assert_eq!(reader.refresh(since, i64::MAX).unwrap().queued, 2);
    assert_eq!(drain(&mut reader), ["late", "c2 still being written", "too long: 26..127", "after"]);
    assert_eq!(reader.stats().too_long, 1);

    // A long line still being written: nothing of it is handed out until
    // its newline comes, and then only the skip.
    writer.append_block(container, &current, "y".repeat(200).as_bytes()).unwrap();
    reader.refresh(since, i64::MAX).unwrap();
    assert!(drain(&mut reader).is_empty());
    writer.append_block(container, &current, b"yyy\nnext\n").unwrap();
    reader.refresh(since, i64::MAX).unwrap();
    assert_eq!(drain(&mut reader), ["too long: 133..337", "next"]);

    // Nothing new: nothing read. A reader from the saved positions reads
    // only what comes after them.
    assert_eq!(reader.refresh(since, i64::MAX).unwrap().queued, 0);
    assert!(drain(&mut reader).is_empty());
    writer.append_block(container, &current, b"after restart\n").unwrap();
    let mut restarted = ArchiveReader::new(&config, reader.positions().clone()).unwrap();
    restarted.refresh(since, i64::MAX).unwrap();
    assert_eq!(drain(&mut restarted), ["after restart"]);

    // The blob created again (shorter than the offset read): read from 0.
    writer.create_append_blob(container, &earlier).unwrap();
    writer.append_block(container, &earlier, b"anew\n").unwrap();
    let refresh = restarted.refresh(since, i64::MAX).unwrap();
    assert_eq!(refresh.restarted, [(earlier.clone(), 12, 5)]);
    assert_eq!(drain(&mut restarted), ["anew"]);
    assert_eq!(restarted.stats().restarted_blobs, 1);

    // A window of hours (backfill): only the earlier hour's blob.
    let mut window = ArchiveReader::new(&config, BTreeMap::new()).unwrap();
    window.refresh(this_hour - HOUR_MS, this_hour).unwrap();
    assert_eq!(drain(&mut window), ["anew"]);
}
