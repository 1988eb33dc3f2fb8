//! The state directory belongs to one agent at a time: an exclusive
//! `flock` on `agent.lock` inside it, held for the life of the process
//! (the kernel drops it when the process ends, however it ends). A second
//! agent on the same directory would read the same checkpoint and send
//! every record a second time; it is refused before it does anything.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Name of the lock file inside the state directory.
pub const LOCK_FILE: &str = "agent.lock";

/// Held while the agent runs; dropping it (or exiting) releases the lock.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

/// Why the state directory could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum StateLockError {
    #[error(
        "state directory {dir} is in use by another cefwire agent{holder}; two agents on one state directory would send every record twice (stop the other one, or give this one its own --state-dir)"
    )]
    InUse { dir: PathBuf, holder: String },
    #[error("cannot lock {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

impl StateLock {
    /// Takes the state directory `dir` (which exists), or says who has it.
    pub fn acquire(dir: &Path) -> Result<Self, StateLockError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| StateLockError::Io { path: path.clone(), source };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                let holder = if pid.is_empty() { String::new() } else { format!(" (pid {pid})") };
                return Err(StateLockError::InUse { dir: dir.to_owned(), holder });
            }
            Err(TryLockError::Error(err)) => return Err(io(err)),
        }
        // Who holds it, for the message a second agent prints.
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_and_told_the_first_ones_pid() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateLock::acquire(dir.path()).unwrap();
        let err = StateLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(err.contains("in use by another cefwire agent"), "{err}");
        assert!(err.contains(&format!("(pid {})", std::process::id())), "{err}");
        drop(first);
        StateLock::acquire(dir.path()).expect("free again once the first is gone");
    }
}
