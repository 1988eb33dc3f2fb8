//! The streaming-archive reader against a real Azurite: complete lines
//! only (LF and CRLF), a line still being written left for later, growing
//! blobs visited again, the look-back, a too-long line skipped and
//! reported without being held, a blob created again (shorter than the
//! offset read) read from its start, and a reader started from saved
//! positions reading nothing twice; a blob deleted between the listing
//! and its read skipped while the others are read; a blob deleted and
//! created again that grew past the old offset read from its start.

use crate::util::azurite;
use cefwire::azure::archive::{
    ArchiveConfig, ArchiveReader, BlobPosition, Chunk, HOUR_MS, Restarted, blob_hour_ms, blob_name,
};
use cefwire::azure::blob::{BlobClient, BlobConfig, StorageAuth};
use cefwire::azure::shared_key::{AZURITE_ACCOUNT, AZURITE_KEY};
use std::collections::BTreeMap;
use std::time::Duration;

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
            Chunk::Gone(blob) => {
                assert!(buffer.is_empty(), "a deleted blob hands out nothing");
                got.push(format!("gone: {blob}"));
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
    assert_eq!(reader.positions()[&current].offset, 3);
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
    let restart = &refresh.restarted[..];
    assert!(matches!(restart, [r] if r.blob == earlier && (r.read, r.size) == (12, 5)), "{restart:?}");
    assert_eq!(drain(&mut restarted), ["anew"]);
    assert_eq!(restarted.stats().restarted_blobs, 1);

    // A window of hours (backfill): only the earlier hour's blob.
    let mut window = ArchiveReader::new(&config, BTreeMap::new()).unwrap();
    window.refresh(this_hour - HOUR_MS, this_hour).unwrap();
    assert_eq!(drain(&mut window), ["anew"]);
}

fn reader_config(endpoint: &str, container: &str, tenant: &str) -> ArchiveConfig {
    let mut config = ArchiveConfig::new(blob_config(endpoint));
    config.container = container.into();
    config.prefix = format!("tenantId={tenant}/");
    config.read_bytes = 64;
    config.max_line_bytes = 256;
    config
}

/// A blob deleted between the listing and its read (the archive's
/// retention, or someone cleaning up) used to fail the whole poll with a
/// 404: now it is handed out as gone, forgotten, and the blobs listed
/// after it are read.
#[test]
fn a_blob_deleted_between_listing_and_reading_is_skipped_and_the_others_are_read() {
    let Some(endpoint) = azurite::shared() else { return };
    let mut writer = BlobClient::new(&blob_config(endpoint)).unwrap();
    let container = "archive-reader-gone";
    writer.create_container(container).unwrap();
    let now = cefwire::time::now_ms();
    let hour = now - now.rem_euclid(HOUR_MS);
    let blobs: Vec<String> = (0..3).map(|n| blob_name("t1", hour - (2 - n) * HOUR_MS)).collect();
    for (n, blob) in blobs.iter().enumerate() {
        writer.create_append_blob(container, blob).unwrap();
        writer.append_block(container, blob, format!("b{n} 1\nb{n} 2\n").as_bytes()).unwrap();
    }
    let config = reader_config(endpoint, container, "t1");
    let mut reader = ArchiveReader::new(&config, BTreeMap::new()).unwrap();
    assert_eq!(reader.refresh(now - config.look_back_ms, i64::MAX).unwrap().queued, 3);
    writer.delete_blob(container, &blobs[1]).unwrap();
    let gone = format!("gone: {}", blobs[1]);
    assert_eq!(drain(&mut reader), ["b0 1", "b0 2", gone.as_str(), "b2 1", "b2 2"]);
    assert_eq!(reader.stats().gone_blobs, 1);
    assert!(!reader.positions().contains_key(&blobs[1]), "a deleted blob's position is forgotten");
    // The next listing does not show it; nothing more is read or said.
    assert_eq!(reader.refresh(now - config.look_back_ms, i64::MAX).unwrap().queued, 0);
    assert!(drain(&mut reader).is_empty());
}

/// A blob deleted and created again that grew past the offset read before
/// was read on from that offset (mid-line, its first lines never): its
/// `Creation-Time` now tells it apart, also for a reader started from the
/// saved positions; a position without a creation time (a checkpoint of
/// the previous version) learns it without reading anything again.
#[test]
fn a_blob_created_again_and_grown_past_the_old_offset_is_read_from_its_start() {
    let Some(endpoint) = azurite::shared() else { return };
    let mut writer = BlobClient::new(&blob_config(endpoint)).unwrap();
    let container = "archive-reader-recreated";
    writer.create_container(container).unwrap();
    let now = cefwire::time::now_ms();
    let blob = blob_name("t1", now - now.rem_euclid(HOUR_MS));
    writer.create_append_blob(container, &blob).unwrap();
    writer.append_block(container, &blob, b"old 1\nold 2\n").unwrap();
    let config = reader_config(endpoint, container, "t1");
    let since = now - config.look_back_ms;
    let mut reader = ArchiveReader::new(&config, BTreeMap::new()).unwrap();
    reader.refresh(since, i64::MAX).unwrap();
    assert_eq!(drain(&mut reader), ["old 1", "old 2"]);
    let read = reader.positions()[&blob];
    assert_eq!(read.offset, 12);
    let created = read.created_ms.expect("the listing gives the blob's creation time");

    // A checkpoint of the previous version: the offset without a creation time.
    let old_format = BTreeMap::from([(blob.clone(), BlobPosition { offset: 12, created_ms: None })]);
    let mut from_old = ArchiveReader::new(&config, old_format).unwrap();
    let refresh = from_old.refresh(since, i64::MAX).unwrap();
    assert!(refresh.restarted.is_empty() && refresh.queued == 0, "{refresh:?}");
    assert_eq!(from_old.positions()[&blob], read, "the creation time is learnt");

    // Creation times are to the second: create it again in a later one.
    writer.delete_blob(container, &blob).unwrap();
    crate::util::wait_until(Duration::from_secs(10), "the next second", || {
        cefwire::time::now_ms() / 1000 > created / 1000
    });
    writer.create_append_blob(container, &blob).unwrap();
    writer.append_block(container, &blob, b"new 1\nnew 2 is longer\nnew 3\n").unwrap();
    let saved = reader.positions().clone();
    let refresh = reader.refresh(since, i64::MAX).unwrap();
    assert_eq!(refresh.restarted, [Restarted { blob: blob.clone(), read: 12, size: 28, created_again: true }]);
    assert_eq!(drain(&mut reader), ["new 1", "new 2 is longer", "new 3"]);
    assert_eq!(reader.stats().restarted_blobs, 1);
    assert_ne!(reader.positions()[&blob].created_ms, Some(created));
    // The same from a checkpoint taken before the blob was created again.
    let mut restarted = ArchiveReader::new(&config, saved).unwrap();
    assert_eq!(restarted.refresh(since, i64::MAX).unwrap().restarted.len(), 1);
    assert_eq!(drain(&mut restarted), ["new 1", "new 2 is longer", "new 3"]);
}
