//! Test-only fault hooks: behaviour the agent's fault tests switch on with
//! environment variables, to fake what they cannot cause for real (a full
//! disk where no tmpfs can be mounted; a local clock hours off; an Event Hubs
//! consumer that fetches nothing while records wait).
//!
//! The hooks exist only in builds with the `fault-hooks` cargo feature,
//! which `cargo test` turns on (the crate's dev-dependency on itself) and
//! `cargo build --release` / `cargo install` leave off: in those builds
//! every function here is a constant no-op and the variables are ignored.
//! This module owns the hooks and nothing else; callers ask it, it never
//! reaches into them.

use std::io;

/// While the file named by this variable exists, every
/// [`crate::agent::state::write_atomically`] (the state and the health
/// file) fails with `ENOSPC`, as on a full disk.
#[cfg(feature = "fault-hooks")]
pub const DISK_FULL_ENV: &str = "CEFWIRE_FAULT_DISK_FULL";

/// `CEFWIRE_CLOCK_OFFSET_MS=-21600000` makes [`crate::time::now_ms`] run six
/// hours behind the system clock in this process (read once, at the first
/// call); an unparsable value is ignored. Shows that a jump of the local
/// clock does not move the agent's query windows, which follow the API
/// server's `Date` header.
#[cfg(feature = "fault-hooks")]
pub const CLOCK_OFFSET_ENV: &str = "CEFWIRE_CLOCK_OFFSET_MS";

/// `Err(ENOSPC)` while the disk-full flag file exists; always `Ok` without
/// the feature.
#[inline]
pub fn injected_disk_full() -> io::Result<()> {
    #[cfg(feature = "fault-hooks")]
    {
        use std::path::PathBuf;
        static FLAG: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
        let flag = FLAG.get_or_init(|| std::env::var_os(DISK_FULL_ENV).filter(|v| !v.is_empty()).map(PathBuf::from));
        if flag.as_ref().is_some_and(|f| f.exists()) {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
    }
    Ok(())
}

/// Milliseconds to add to the system clock; always 0 without the feature.
#[inline]
pub fn clock_offset_ms() -> i64 {
    #[cfg(feature = "fault-hooks")]
    {
        static OFFSET: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
        return *OFFSET.get_or_init(|| {
            std::env::var(CLOCK_OFFSET_ENV).ok().and_then(|v| v.trim().parse::<i64>().ok()).unwrap_or(0)
        });
    }
    #[allow(unreachable_code)]
    0
}

/// `CEFWIRE_FAULT_WORKER_PANIC_LINE=N` makes the worker of the parallel
/// loop ([`crate::parallel`]) that converts line N of an input panic after
/// converting its chunk, to show what a failing worker does to the output.
#[cfg(feature = "fault-hooks")]
pub const WORKER_PANIC_ENV: &str = "CEFWIRE_FAULT_WORKER_PANIC_LINE";

/// Panics when the configured line is in `first_line..end_line`; nothing
/// without the feature.
#[inline]
pub fn injected_worker_panic(first_line: u64, end_line: u64) {
    #[cfg(feature = "fault-hooks")]
    {
        static LINE: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
        let line = LINE.get_or_init(|| std::env::var(WORKER_PANIC_ENV).ok().and_then(|v| v.trim().parse().ok()));
        if let Some(line) = *line
            && (first_line..end_line).contains(&line)
        {
            panic!("injected fault: a worker fails on line {line}");
        }
    }
    let _ = (first_line, end_line);
}

/// While the file named by this variable exists, the agent's Event Hubs
/// consumer fetches nothing: it pauses every partition it holds (and each
/// one given to it), staying in the group, as when a broker or a group
/// coordinator stops delivering. Removing the file resumes fetching.
#[cfg(feature = "fault-hooks")]
pub const EVENTHUBS_NO_FETCH_ENV: &str = "CEFWIRE_FAULT_EVENTHUBS_NO_FETCH";

/// True while the no-fetch flag file exists; always false without the
/// feature.
#[inline]
pub fn injected_eventhubs_no_fetch() -> bool {
    #[cfg(feature = "fault-hooks")]
    {
        use std::path::PathBuf;
        static FLAG: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
        let flag =
            FLAG.get_or_init(|| std::env::var_os(EVENTHUBS_NO_FETCH_ENV).filter(|v| !v.is_empty()).map(PathBuf::from));
        return flag.as_ref().is_some_and(|f| f.exists());
    }
    #[allow(unreachable_code)]
    false
}
