//! The agent's checkpoint: for each stream (activities by `created`, alerts
//! by `date`) a cursor and the ids already sent close to it, so that the
//! overlap re-read after a restart sends nothing twice.
//!
//! The state is written atomically — a temporary file, fsync, rename, fsync
//! of the directory — so a crash or a full disk leaves either the old or
//! the new state, never a torn one. The caller decides *when* to save:
//! only after the records up to the cursor were written to syslog.

use serde::{Deserialize, Serialize};
use std::collections::{HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Name of the state file inside the state directory.
pub const STATE_FILE: &str = "state.json";

/// Format version written into the file.
const STATE_VERSION: u32 = 1;

/// Ids remembered per stream at most (oldest forgotten first).
pub const MAX_REMEMBERED_IDS: usize = 500_000;

pub use crate::cef::id_hash;

/// Ids sent recently, with the cursor-field time of each record.
#[derive(Clone, Debug, Default)]
pub struct SeenIds {
    set: HashSet<u64>,
    /// (time, hash) in insertion order, for pruning.
    order: VecDeque<(i64, u64)>,
}

impl SeenIds {
    /// True if the id was sent already.
    pub fn contains(&self, hash: u64) -> bool {
        self.set.contains(&hash)
    }

    /// Remembers an id sent for a record whose cursor field is `time_ms`.
    pub fn insert(&mut self, time_ms: i64, hash: u64) {
        if self.set.insert(hash) {
            self.order.push_back((time_ms, hash));
            if self.order.len() > MAX_REMEMBERED_IDS
                && let Some((_, old)) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }

    /// Forgets ids of records older than `before_ms` (they are outside
    /// any future query window).
    pub fn prune(&mut self, before_ms: i64) {
        self.order.retain(|&(t, _)| t >= before_ms);
        self.set.clear();
        self.set.extend(self.order.iter().map(|&(_, h)| h));
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// `(time, hash)` in the order remembered, oldest first (a checkpoint).
    pub fn entries(&self) -> impl Iterator<Item = (i64, u64)> + '_ {
        self.order.iter().copied()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// One stream's checkpoint.
#[derive(Clone, Debug, Default)]
pub struct StreamCursor {
    /// The newest cursor-field time (ms) of a record written to syslog;
    /// `None` before the first record.
    pub position_ms: Option<i64>,
    pub seen: SeenIds,
}

/// Both streams' checkpoints plus when they were saved.
#[derive(Clone, Debug, Default)]
pub struct AgentState {
    pub saved_at_ms: i64,
    pub activities: StreamCursor,
    pub alerts: StreamCursor,
}

#[derive(Serialize, Deserialize)]
struct StreamFile {
    position_ms: Option<i64>,
    /// `[time_ms, id_hash]` pairs.
    seen: Vec<(i64, u64)>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    version: u32,
    saved_at_ms: i64,
    activities: StreamFile,
    alerts: StreamFile,
}

impl From<&StreamCursor> for StreamFile {
    fn from(cursor: &StreamCursor) -> Self {
        Self { position_ms: cursor.position_ms, seen: cursor.seen.order.iter().copied().collect() }
    }
}

impl From<StreamFile> for StreamCursor {
    fn from(file: StreamFile) -> Self {
        let mut seen = SeenIds::default();
        for (time, hash) in file.seen {
            seen.insert(time, hash);
        }
        Self { position_ms: file.position_ms, seen }
    }
}

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot write state file {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot read state file {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("state file {path} is corrupt ({reason}); move it away to start from the window")]
    Corrupt { path: PathBuf, reason: String },
}

/// Reads and writes the state file in one directory.
#[derive(Clone, Debug)]
pub struct StateStore {
    dir: PathBuf,
    file: &'static str,
}

impl StateStore {
    pub fn new(dir: &Path) -> Self {
        Self::named(dir, STATE_FILE)
    }

    /// A store in another file of the directory (a source with its own
    /// loop keeps its own checkpoint, e.g. the Graph alerts stream).
    pub fn named(dir: &Path, file: &'static str) -> Self {
        Self { dir: dir.to_owned(), file }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(self.file)
    }

    /// The saved state, or `None` when there is none yet.
    pub fn load(&self) -> Result<Option<AgentState>, StateError> {
        let path = self.path();
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StateError::Read { path, source }),
        };
        let file: StateFile = serde_json::from_slice(&text)
            .map_err(|e| StateError::Corrupt { path: path.clone(), reason: e.to_string() })?;
        if file.version != STATE_VERSION {
            return Err(StateError::Corrupt { path, reason: format!("unknown version {}", file.version) });
        }
        Ok(Some(AgentState {
            saved_at_ms: file.saved_at_ms,
            activities: file.activities.into(),
            alerts: file.alerts.into(),
        }))
    }

    /// Saves `state` atomically.
    pub fn save(&self, state: &AgentState) -> Result<(), StateError> {
        let file = StateFile {
            version: STATE_VERSION,
            saved_at_ms: state.saved_at_ms,
            activities: (&state.activities).into(),
            alerts: (&state.alerts).into(),
        };
        let bytes = serde_json::to_vec(&file).expect("state serialises");
        write_atomically(&self.path(), &bytes).map_err(|source| StateError::Write { path: self.path(), source })
    }
}

/// Writes `bytes` to `path` via a temporary file, fsync and rename, then
/// fsyncs the directory so the rename itself is durable. On error the
/// temporary file is removed and `path` is untouched. The file is readable
/// by its owner only (0600).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomically_with_mode(path, bytes, 0o600)
}

/// [`write_atomically`] with the file's permission bits (`mode`, not
/// widened by the umask).
pub fn write_atomically_with_mode(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp_name = path.file_name().unwrap_or_default().to_owned();
    temp_name.push(".tmp");
    let temp = dir.join(temp_name);
    let result = (|| {
        // By default readable by the agent's user only, whatever the umask:
        // the state holds the tenant's record ids and times.
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&temp)?;
        crate::fault_hooks::injected_disk_full()?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// State files got whatever the umask allowed (0666 with umask 000).
    #[test]
    fn state_files_are_readable_by_the_agent_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        write_atomically(&path, b"{}").unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn id_hash_is_fnv1a() {
        assert_eq!(id_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(id_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn seen_ids_prune_and_cap() {
        let mut seen = SeenIds::default();
        for t in 0..100 {
            seen.insert(t, id_hash(&t.to_le_bytes()));
        }
        seen.insert(5, id_hash(&5i64.to_le_bytes()));
        assert_eq!(seen.len(), 100, "no duplicates");
        seen.prune(50);
        assert_eq!(seen.len(), 50);
        assert!(!seen.contains(id_hash(&10i64.to_le_bytes())));
        assert!(seen.contains(id_hash(&60i64.to_le_bytes())));
    }

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path());
        assert!(store.load().unwrap().is_none());
        let mut state = AgentState { saved_at_ms: 42, ..Default::default() };
        state.activities.position_ms = Some(1000);
        state.activities.seen.insert(990, 7);
        state.alerts.position_ms = Some(2000);
        store.save(&state).unwrap();
        let back = store.load().unwrap().unwrap();
        assert_eq!(back.saved_at_ms, 42);
        assert_eq!(back.activities.position_ms, Some(1000));
        assert!(back.activities.seen.contains(7));
        assert_eq!(back.alerts.position_ms, Some(2000));
        assert!(!dir.path().join("state.json.tmp").exists());
    }

    #[test]
    fn corrupt_state_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(STATE_FILE), b"{\"version\":1,").unwrap();
        let err = StateStore::new(dir.path()).load().unwrap_err().to_string();
        assert!(err.contains("is corrupt") && err.contains("state.json"), "{err}");
    }

    #[test]
    fn failed_write_keeps_the_old_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path());
        let state = AgentState { saved_at_ms: 1, ..Default::default() };
        store.save(&state).unwrap();
        // A directory where the temporary file should go makes the write fail.
        fs::create_dir(dir.path().join("state.json.tmp")).unwrap();
        let newer = AgentState { saved_at_ms: 2, ..Default::default() };
        assert!(matches!(store.save(&newer), Err(StateError::Write { .. })));
        assert_eq!(store.load().unwrap().unwrap().saved_at_ms, 1);
    }
}
