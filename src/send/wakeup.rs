//! Wake-ups between the producer and the writer thread, without fences.
//!
//! Two places need one thread to sleep until the other has done
//! something: the writer sleeps in `poll` until the producer hands over a
//! batch ([`WriterBell`]), and the producer sleeps until the writer gives
//! a batch back or has written more messages ([`Wakeup`]). Both follow one
//! rule that needs no proof beyond "a mutex orders what it guards": the
//! sleeper marks itself as sleeping **and checks its condition under the
//! lock**; the other side changes the condition first and then looks at the
//! mark under the same lock. Whichever takes the lock first, the other sees
//! its effect, so a wake-up is never lost. The side that wakes pays an
//! uncontended lock and makes a system call only when someone sleeps.
//!
//! This module owns only the sleeping and waking; what is waited for (the
//! channels, the counters) stays with the caller.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Ends the writer's sleep in `poll` when the producer hands it work.
pub(super) struct WriterBell {
    /// The writer is in (or about to enter) `poll`.
    parked: Mutex<bool>,
    waker: mio::Waker,
}

impl WriterBell {
    pub(super) fn new(waker: mio::Waker) -> Self {
        Self { parked: Mutex::new(false), waker }
    }

    /// Writer, before `poll`: parks unless `has_work()` (checked under the
    /// lock). Returns whether it parked; if it did, it calls
    /// [`unpark`](Self::unpark) once `poll` returns.
    pub(super) fn park_unless(&self, has_work: impl FnOnce() -> bool) -> bool {
        let mut parked = lock(&self.parked);
        if has_work() {
            return false;
        }
        *parked = true;
        true
    }

    /// Writer, after `poll` returned.
    pub(super) fn unpark(&self) {
        *lock(&self.parked) = false;
    }

    /// Producer, after handing over work: wakes the writer if it is parked.
    pub(super) fn ring(&self) {
        let mut parked = lock(&self.parked);
        if *parked {
            *parked = false;
            let _ = self.waker.wake();
        }
    }

    /// Wakes the writer whatever it is doing (its next `poll` returns at
    /// once if it is not in one): for the end of input and shutdown, where
    /// the writer's "work" is a change it does not park on.
    pub(super) fn wake_now(&self) {
        let _ = self.waker.wake();
    }
}

/// A condition one thread waits for and another makes true.
#[derive(Default)]
pub(super) struct Wakeup {
    /// How many threads wait right now.
    waiting: Mutex<usize>,
    signal: Condvar,
}

impl Wakeup {
    /// Called after making the condition true (or possibly true).
    pub(super) fn announce(&self) {
        let waiting = lock(&self.waiting);
        if *waiting > 0 {
            self.signal.notify_all();
        }
    }

    /// Waits until `ready()` holds (checked under the lock, so an
    /// announcement cannot slip in between) or `timeout` has passed.
    /// Returns true when `ready()` was seen to hold; false when the time
    /// ran out first (the caller then looks at its condition again).
    pub(super) fn wait_until(&self, timeout: Duration, mut ready: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut waiting = lock(&self.waiting);
        loop {
            if ready() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            *waiting += 1;
            let (guard, waited) = self.signal.wait_timeout(waiting, deadline - now).unwrap_or_else(|p| p.into_inner());
            waiting = guard;
            *waiting -= 1;
            if waited.timed_out() {
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Two threads take turns through two wake-ups many times. A lost
    /// announcement would leave a waiter asleep until its (long) timeout,
    /// and `wait_until` would say so by returning false.
    #[test]
    fn ping_pong_never_loses_an_announcement() {
        const ROUNDS: u64 = 20_000;
        const PATIENCE: Duration = Duration::from_secs(30);
        let turn = Arc::new(AtomicU64::new(0));
        let ping = Arc::new(Wakeup::default());
        let pong = Arc::new(Wakeup::default());
        let other = {
            let (turn, ping, pong) = (Arc::clone(&turn), Arc::clone(&ping), Arc::clone(&pong));
            std::thread::spawn(move || {
                let mut missed = 0;
                for round in 0..ROUNDS {
                    if !ping.wait_until(PATIENCE, || turn.load(Ordering::Acquire) == 2 * round + 1) {
                        missed += 1;
                    }
                    turn.store(2 * round + 2, Ordering::Release);
                    pong.announce();
                }
                missed
            })
        };
        let mut missed = 0;
        for round in 0..ROUNDS {
            turn.store(2 * round + 1, Ordering::Release);
            ping.announce();
            if !pong.wait_until(PATIENCE, || turn.load(Ordering::Acquire) == 2 * round + 2) {
                missed += 1;
            }
        }
        assert_eq!((missed, other.join().unwrap()), (0, 0));
    }

    /// The writer's side: a thread that parks and then sleeps in a real
    /// `poll` must be woken by every ring that follows work it did not see.
    #[test]
    fn a_parked_writer_is_woken_by_the_ring() {
        const ROUNDS: u64 = 5_000;
        let mut poll = mio::Poll::new().unwrap();
        let bell = Arc::new(WriterBell::new(mio::Waker::new(poll.registry(), mio::Token(0)).unwrap()));
        let work = Arc::new(AtomicU64::new(0));
        let producer = {
            let (bell, work) = (Arc::clone(&bell), Arc::clone(&work));
            std::thread::spawn(move || {
                for _ in 0..ROUNDS {
                    work.fetch_add(1, Ordering::Release);
                    bell.ring();
                }
            })
        };
        let mut events = mio::Events::with_capacity(8);
        let mut taken = 0;
        let mut timed_out = 0;
        while taken < ROUNDS {
            taken = work.load(Ordering::Acquire);
            if taken == ROUNDS {
                break;
            }
            if bell.park_unless(|| work.load(Ordering::Acquire) > taken) {
                poll.poll(&mut events, Some(Duration::from_secs(30))).unwrap();
                bell.unpark();
                if events.is_empty() {
                    timed_out += 1;
                }
            }
        }
        producer.join().unwrap();
        assert_eq!(timed_out, 0, "a ring was lost: the writer slept until its timeout");
    }
}
