//! The stop signal: "finish what you are doing and end", asked for by
//! SIGINT/SIGTERM or by the program itself, seen by every thread that
//! works for a run (producers, the sender, the agent's helpers).
//!
//! [`Stop`] is cheap to clone (one shared flag), can be checked at any time
//! and waited on with a timeout. A job that must leave a loop it does not
//! own (the record loop calls a sink that returns `io::Result`) returns
//! [`Stop::error`]; [`is_stop`] recognises it. That keeps a stop apart from
//! `ErrorKind::Interrupted`, which the standard library retries (`write_all`)
//! and which a real `EINTR` also produces.
//!
//! This module knows nothing about what is stopped; it must not import any
//! job's module.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How often a waiter looks at the flag: a signal handler can only set the
/// flag (it cannot notify a condition variable), so waits end at most this
/// long after a signal. A stop asked for in-process ends them at once.
const SIGNAL_CHECK_EVERY: Duration = Duration::from_millis(50);

/// A stop that can be asked for once and seen by every clone.
#[derive(Clone, Debug, Default)]
pub struct Stop {
    /// Set by [`request`](Self::request) and by the signal handlers
    /// (`signal_hook` takes an `Arc<AtomicBool>`).
    flag: Arc<AtomicBool>,
    wake: Arc<(Mutex<()>, Condvar)>,
}

/// The error a job returns through an `io::Result` when it ends because of
/// a stop (or its own deadline) rather than a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("stopped")]
pub struct Stopped;

impl Stop {
    /// A stop nobody has asked for yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A stop set by SIGINT or SIGTERM; a second signal exits at once
    /// (status 130) for a run that does not end quickly enough.
    pub fn on_signals() -> io::Result<Self> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let stop = Self::new();
        for signal in [SIGINT, SIGTERM] {
            // Registered first, so it sees the flag as the previous signal left it.
            signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&stop.flag))?;
            signal_hook::flag::register(signal, Arc::clone(&stop.flag))?;
        }
        Ok(stop)
    }

    /// Asks every holder to stop, and ends their waits.
    pub fn request(&self) {
        self.flag.store(true, Ordering::Release);
        let (lock, signal) = &*self.wake;
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        signal.notify_all();
    }

    /// Whether a stop was asked for.
    pub fn is_requested(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// Sleeps for `timeout` or until a stop is asked for, whichever comes
    /// first. Returns whether a stop was asked for.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (lock, signal) = &*self.wake;
        let mut guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if self.is_requested() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let step = (deadline - now).min(SIGNAL_CHECK_EVERY);
            guard = signal.wait_timeout(guard, step).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Waits until a stop is asked for.
    pub fn wait(&self) {
        while !self.wait_timeout(Duration::from_secs(3600)) {}
    }

    /// The error that carries a stop through an `io::Result`.
    #[cold]
    pub fn error() -> io::Error {
        io::Error::other(Stopped)
    }
}

/// Whether `err` is a stop ([`Stop::error`]) rather than a failure.
pub fn is_stop(err: &io::Error) -> bool {
    err.get_ref().is_some_and(|inner| inner.is::<Stopped>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_seen_by_every_clone_and_ends_their_waits() {
        let stop = Stop::new();
        assert!(!stop.is_requested());
        assert!(!stop.wait_timeout(Duration::from_millis(1)));
        let waiter = {
            let stop = stop.clone();
            // Far longer than any test run: only the request can end it.
            std::thread::spawn(move || stop.wait_timeout(Duration::from_secs(3600)))
        };
        stop.request();
        assert!(waiter.join().unwrap());
        assert!(stop.clone().is_requested());
        stop.wait();
    }

    #[test]
    fn a_flag_set_without_notifying_is_still_seen_by_a_waiter() {
        // What a signal handler does: set the flag, notify nobody.
        let stop = Stop::new();
        let waiter = {
            let stop = stop.clone();
            std::thread::spawn(move || stop.wait_timeout(Duration::from_secs(3600)))
        };
        stop.flag.store(true, Ordering::Release);
        assert!(waiter.join().unwrap());
    }

    #[test]
    fn the_stop_error_is_told_apart_from_interrupted_and_others() {
        assert!(is_stop(&Stop::error()));
        assert!(!is_stop(&io::Error::new(io::ErrorKind::Interrupted, "EINTR")));
        assert!(!is_stop(&io::Error::other("stopped")));
        assert_eq!(Stop::error().to_string(), "stopped");
    }
}
