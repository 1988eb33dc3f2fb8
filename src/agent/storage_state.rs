//! The Storage source's checkpoint, `storage-state.bin` in the state
//! directory (beside the API streams' `state.json`, which it never
//! touches): the container it is for, per blob the offset up to which
//! every line was written to syslog and the blob's creation time (which
//! blob of that name it was), the `ReportId`s sent recently (the
//! de-duplication window, bounded by count and by the look-back) and the
//! newest record time sent.
//!
//! Layout: a text line naming the format, a little-endian `u32` length
//! and that many bytes of JSON (container, offsets, creation times,
//! counts), then the ids
//! as 16-byte little-endian `(time_ms, hash)` pairs — 8 MB for the 500,000
//! ids the window holds at most, where JSON would take 18. Written
//! atomically (temporary file, fsync, rename, fsync of the directory).
//! The caller decides when: only once syslog has the records it covers.
//!
//! Version 2 added the creation times; a version 1 checkpoint (written by
//! cefwire before them) still loads, its blobs' creation times unknown
//! until the next listing tells them.

use super::state::{SeenIds, StateError, write_atomically};
use crate::azure::archive::BlobPosition;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Name of the checkpoint inside the state directory.
pub const STORAGE_STATE_FILE: &str = "storage-state.bin";

const MAGIC: &[u8] = b"cefwire storage checkpoint 2\n";
/// The format before the blobs' creation times (read, never written).
const MAGIC_V1: &[u8] = b"cefwire storage checkpoint 1\n";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    saved_at_ms: i64,
    container: String,
    positions: BTreeMap<String, u64>,
    /// Per blob its `Creation-Time` (ms), when known (not in version 1).
    #[serde(default)]
    created: BTreeMap<String, i64>,
    newest_sent_ms: Option<i64>,
    ids: u64,
}

/// What a checkpoint holds.
#[derive(Clone, Debug, Default)]
pub struct StorageCheckpoint {
    pub saved_at_ms: i64,
    pub container: String,
    /// Per blob, the offset after the last line written to syslog, and
    /// which blob of that name it was.
    pub positions: BTreeMap<String, BlobPosition>,
    pub seen: SeenIds,
    pub newest_sent_ms: Option<i64>,
}

/// The checkpoint's path in `state_dir`.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(STORAGE_STATE_FILE)
}

/// The bytes of a checkpoint (made when the positions are taken; written
/// later, once syslog has everything before them).
pub fn encode(
    container: &str,
    positions: &BTreeMap<String, BlobPosition>,
    seen: &SeenIds,
    newest_sent_ms: Option<i64>,
    now_ms: i64,
) -> Vec<u8> {
    let header = Header {
        saved_at_ms: now_ms,
        container: container.to_owned(),
        positions: positions.iter().map(|(blob, p)| (blob.clone(), p.offset)).collect(),
        created: positions.iter().filter_map(|(blob, p)| Some((blob.clone(), p.created_ms?))).collect(),
        newest_sent_ms,
        ids: seen.len() as u64,
    };
    let json = serde_json::to_vec(&header).expect("the header serialises");
    let mut bytes = Vec::with_capacity(MAGIC.len() + 4 + json.len() + seen.len() * 16);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(json.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&json);
    for (time, hash) in seen.entries() {
        bytes.extend_from_slice(&time.to_le_bytes());
        bytes.extend_from_slice(&hash.to_le_bytes());
    }
    bytes
}

/// Writes encoded checkpoint bytes atomically.
pub fn save(state_dir: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let path = path(state_dir);
    write_atomically(&path, bytes).map_err(|source| StateError::Write { path, source })
}

/// The saved checkpoint, `None` when there is none yet.
pub fn load(state_dir: &Path) -> Result<Option<StorageCheckpoint>, StateError> {
    let path = path(state_dir);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StateError::Read { path, source }),
    };
    decode(&bytes).map(Some).map_err(|reason| StateError::Corrupt { path, reason })
}

fn decode(bytes: &[u8]) -> Result<StorageCheckpoint, String> {
    let (rest, version) = match (bytes.strip_prefix(MAGIC), bytes.strip_prefix(MAGIC_V1)) {
        (Some(rest), _) => (rest, 2),
        (None, Some(rest)) => (rest, 1),
        (None, None) => return Err("not a storage checkpoint of this version".to_owned()),
    };
    let (len, rest) = rest.split_first_chunk::<4>().ok_or("cut off in its header")?;
    let len = u32::from_le_bytes(*len) as usize;
    if rest.len() < len {
        return Err("cut off in its header".to_owned());
    }
    let (json, ids) = rest.split_at(len);
    let header: Header = serde_json::from_slice(json).map_err(|e| format!("header: {e}"))?;
    if version == 1 && !header.created.is_empty() {
        return Err("header: creation times in a version 1 checkpoint".to_owned());
    }
    if ids.len() as u64 != header.ids * 16 {
        return Err(format!("{} bytes of ids where {} ids take {}", ids.len(), header.ids, header.ids * 16));
    }
    let mut seen = SeenIds::default();
    for pair in ids.chunks_exact(16) {
        let (time, hash) = pair.split_at(8);
        seen.insert(
            i64::from_le_bytes(time.try_into().expect("8 bytes")),
            u64::from_le_bytes(hash.try_into().expect("8 bytes")),
        );
    }
    let created = header.created;
    let positions = header
        .positions
        .into_iter()
        .map(|(blob, offset)| {
            let created_ms = created.get(&blob).copied();
            (blob, BlobPosition { offset, created_ms })
        })
        .collect();
    Ok(StorageCheckpoint {
        saved_at_ms: header.saved_at_ms,
        container: header.container,
        positions,
        seen,
        newest_sent_ms: header.newest_sent_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_anything_else_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        let mut positions = BTreeMap::new();
        let position = BlobPosition { offset: 1234, created_ms: Some(1_714_564_801_000) };
        positions.insert("tenantId=t/y=2024/m=05/d=01/h=12/m=00/PT1H.json".to_owned(), position);
        positions.insert("tenantId=t/y=2024/m=05/d=01/h=13/m=00/PT1H.json".to_owned(), BlobPosition::default());
        let mut seen = SeenIds::default();
        for n in 0..1000 {
            seen.insert(n, n as u64 * 7919);
        }
        let bytes = encode("c", &positions, &seen, Some(99), 42);
        save(dir.path(), &bytes).unwrap();
        let back = load(dir.path()).unwrap().unwrap();
        assert_eq!((back.saved_at_ms, back.container.as_str(), back.newest_sent_ms), (42, "c", Some(99)));
        assert_eq!(back.positions, positions);
        assert_eq!(back.seen.entries().collect::<Vec<_>>(), seen.entries().collect::<Vec<_>>());
        for cut in [0, 10, MAGIC.len() + 2, bytes.len() - 1] {
            std::fs::write(path(dir.path()), &bytes[..cut]).unwrap();
            let err = load(dir.path()).unwrap_err().to_string();
            assert!(err.contains("is corrupt"), "cut at {cut}: {err}");
        }
    }

    /// A checkpoint as cefwire wrote it before the creation times (format
    /// 1, byte for byte as that version's `encode`): it loads, offsets and
    /// ids kept, creation times unknown.
    #[test]
    fn a_checkpoint_of_the_previous_version_loads() {
        let json = br#"{"saved_at_ms":42,"container":"c","positions":{"tenantId=t/y=2024/m=05/d=01/h=12/m=00/PT1H.json":1234},"newest_sent_ms":99,"ids":2}"#;
        let mut bytes = MAGIC_V1.to_vec();
        bytes.extend_from_slice(&(json.len() as u32).to_le_bytes());
        bytes.extend_from_slice(json);
        for (time, hash) in [(7i64, 11u64), (8, 12)] {
            bytes.extend_from_slice(&time.to_le_bytes());
            bytes.extend_from_slice(&hash.to_le_bytes());
        }
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &bytes).unwrap();
        let back = load(dir.path()).unwrap().expect("a version 1 checkpoint loads");
        assert_eq!((back.saved_at_ms, back.container.as_str(), back.newest_sent_ms), (42, "c", Some(99)));
        let blob = "tenantId=t/y=2024/m=05/d=01/h=12/m=00/PT1H.json";
        assert_eq!(back.positions[blob], BlobPosition { offset: 1234, created_ms: None });
        assert_eq!(back.seen.len(), 2);
        // Saved again, it is a version 2 checkpoint.
        let again = encode(&back.container, &back.positions, &back.seen, back.newest_sent_ms, 43);
        assert!(again.starts_with(MAGIC));
    }
}
