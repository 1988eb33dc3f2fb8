//! The Storage source's checkpoint, `storage-state.bin` in the state
//! directory (beside the API streams' `state.json`, which it never
//! touches): the container it is for, per blob the offset up to which
//! every line was written to syslog, the `ReportId`s sent recently (the
//! de-duplication window, bounded by count and by the look-back) and the
//! newest record time sent.
//!
//! Layout: a text line naming the format, a little-endian `u32` length
//! and that many bytes of JSON (container, offsets, counts), then the ids
//! as 16-byte little-endian `(time_ms, hash)` pairs — 8 MB for the 500,000
//! ids the window holds at most, where JSON would take 18. Written
//! atomically (temporary file, fsync, rename, fsync of the directory).
//! The caller decides when: only once syslog has the records it covers.

use super::state::{SeenIds, StateError, write_atomically};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Name of the checkpoint inside the state directory.
pub const STORAGE_STATE_FILE: &str = "storage-state.bin";

const MAGIC: &[u8] = b"cefwire storage checkpoint 1\n";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    saved_at_ms: i64,
    container: String,
    positions: BTreeMap<String, u64>,
    newest_sent_ms: Option<i64>,
    ids: u64,
}

/// What a checkpoint holds.
#[derive(Clone, Debug, Default)]
pub struct StorageCheckpoint {
    pub saved_at_ms: i64,
    pub container: String,
    /// Per blob, the offset after the last line written to syslog.
    pub positions: BTreeMap<String, u64>,
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
    positions: &BTreeMap<String, u64>,
    seen: &SeenIds,
    newest_sent_ms: Option<i64>,
    now_ms: i64,
) -> Vec<u8> {
    let header = Header {
        saved_at_ms: now_ms,
        container: container.to_owned(),
        positions: positions.clone(),
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
    let rest = bytes.strip_prefix(MAGIC).ok_or("not a storage checkpoint of this version")?;
    let (len, rest) = rest.split_first_chunk::<4>().ok_or("cut off in its header")?;
    let len = u32::from_le_bytes(*len) as usize;
    if rest.len() < len {
        return Err("cut off in its header".to_owned());
    }
    let (json, ids) = rest.split_at(len);
    let header: Header = serde_json::from_slice(json).map_err(|e| format!("header: {e}"))?;
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
    Ok(StorageCheckpoint {
        saved_at_ms: header.saved_at_ms,
        container: header.container,
        positions: header.positions,
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
        positions.insert("tenantId=t/y=2024/m=05/d=01/h=12/m=00/PT1H.json".to_owned(), 1234u64);
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
}
