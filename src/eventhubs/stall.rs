//! Whether the consumer stopped fetching while records wait for it: the
//! failure no client error shows (a group coordinator that never ends a
//! dead member's session left the survivor's partitions fetching nothing
//! for 10 minutes while every link looked fine).
//!
//! [`StallWatch`] is told when a message of a partition arrives
//! ([`StallWatch::fetched`]) and, every few seconds, each held partition's
//! lag — the partition's end minus the position the consumer reads from
//! ([`StallWatch::observe`]). A partition is *stalled* once its lag has
//! stayed above zero for `stall_after` with nothing fetched from it; the
//! stall ends when a message of it arrives or its lag is gone. While the
//! consumer pauses on purpose (syslog not taking records) nothing counts.
//! The watch answers with the changes the caller must log — the beginning
//! and the end of a stall, once each — and the current stall for the
//! health report. It does no I/O and reads no clock: times come in.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Partitions that fetched nothing for at least `stall_after` while
/// records waited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stall {
    /// The stalled partitions, in order.
    pub partitions: Vec<i32>,
    /// Their messages waiting past the position read, together.
    pub lag: i64,
    /// How long the stalled partitions have fetched nothing (the shortest
    /// of them: every one of them idled at least this long).
    pub idle: Duration,
}

/// What changed at an observation: to be logged once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StallChange {
    /// No partition was stalled; now these are.
    Began(Stall),
    /// The stall is over (the partitions fetch again, their lag is gone or
    /// consumption was paused on purpose) after lasting `lasted`.
    Ended { partitions: Vec<i32>, lasted: Duration },
}

#[derive(Clone, Copy, Debug)]
struct Watch {
    last_fetch: Instant,
    /// Since when the lag has been above zero with nothing fetched.
    behind_since: Option<Instant>,
    lag: i64,
}

/// The stall detector of one consumer.
#[derive(Clone, Debug)]
pub struct StallWatch {
    after: Duration,
    partitions: BTreeMap<i32, Watch>,
    /// When the current stall began, and its partitions.
    stalled: Option<(Instant, Vec<i32>)>,
}

impl StallWatch {
    /// A partition is stalled after `after` with lag and no fetch.
    pub fn new(after: Duration) -> Self {
        Self { after, partitions: BTreeMap::new(), stalled: None }
    }

    /// `partition` was given to the consumer at `now`: watched from now.
    pub fn assigned(&mut self, partition: i32, now: Instant) {
        self.partitions.insert(partition, Watch { last_fetch: now, behind_since: None, lag: 0 });
    }

    /// `partition` was taken away: no longer watched.
    pub fn revoked(&mut self, partition: i32) {
        self.partitions.remove(&partition);
    }

    /// A message of `partition` arrived at `now`.
    pub fn fetched(&mut self, partition: i32, now: Instant) {
        if let Some(watch) = self.partitions.get_mut(&partition) {
            watch.last_fetch = now;
            watch.behind_since = None;
        }
    }

    /// How long `partition` has fetched nothing (`None`: not watched).
    pub fn idle_for(&self, partition: i32, now: Instant) -> Option<Duration> {
        self.partitions.get(&partition).map(|w| now.saturating_duration_since(w.last_fetch))
    }

    /// Each held partition's lag at `now` (`None`: not known); `paused`:
    /// the consumer does not fetch on purpose. Returns the change, if any.
    pub fn observe(&mut self, now: Instant, paused: bool, lags: &[(i32, Option<i64>)]) -> Option<StallChange> {
        self.partitions.retain(|p, _| lags.iter().any(|(q, _)| q == p));
        for &(partition, lag) in lags {
            let watch =
                self.partitions.entry(partition).or_insert(Watch { last_fetch: now, behind_since: None, lag: 0 });
            watch.lag = lag.unwrap_or(0).max(0);
            if paused || watch.lag == 0 {
                watch.behind_since = None;
            } else {
                watch.behind_since.get_or_insert(now);
            }
        }
        let stalled = self.stalled_partitions(now);
        match (&self.stalled, stalled.is_empty()) {
            (None, false) => {
                self.stalled = Some((now, stalled));
                self.stall(now).map(StallChange::Began)
            }
            (Some((began, partitions)), true) => {
                let change = StallChange::Ended { partitions: partitions.clone(), lasted: now - *began };
                self.stalled = None;
                Some(change)
            }
            (Some(_), false) => {
                // The set may grow or shrink within one stall: no new line.
                if let Some((_, partitions)) = self.stalled.as_mut() {
                    *partitions = stalled;
                }
                None
            }
            (None, true) => None,
        }
    }

    /// The stall as of the last observation, seen at `now`.
    pub fn stall(&self, now: Instant) -> Option<Stall> {
        let (_, partitions) = self.stalled.as_ref()?;
        let watches = partitions.iter().filter_map(|p| self.partitions.get(p));
        let lag = watches.clone().map(|w| w.lag).sum();
        let idle = watches.map(|w| now.saturating_duration_since(w.last_fetch)).min().unwrap_or_default();
        Some(Stall { partitions: partitions.clone(), lag, idle })
    }

    fn stalled_partitions(&self, now: Instant) -> Vec<i32> {
        let after = self.after;
        self.partitions
            .iter()
            .filter(|(_, w)| w.behind_since.is_some_and(|since| now.saturating_duration_since(since) >= after))
            .map(|(p, _)| *p)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AFTER: Duration = Duration::from_secs(300);

    fn at(t0: Instant, secs: u64) -> Instant {
        t0 + Duration::from_secs(secs)
    }

    /// Lag that stands still with nothing fetched is a stall once it lasted
    /// `stall_after`; said once; over when the partition fetches again.
    #[test]
    fn lag_without_fetches_for_stall_after_is_a_stall_said_once() {
        let t0 = Instant::now();
        let mut w = StallWatch::new(AFTER);
        w.assigned(0, t0);
        w.assigned(1, t0);
        // Partition 1 keeps fetching; partition 0 has 40 messages waiting.
        for s in (10..300).step_by(10) {
            w.fetched(1, at(t0, s));
            assert_eq!(w.observe(at(t0, s), false, &[(0, Some(40)), (1, Some(5))]), None, "at {s} s");
        }
        assert_eq!(w.stall(at(t0, 299)), None);
        let began = w.observe(at(t0, 310), false, &[(0, Some(40)), (1, Some(5))]);
        let expected = Stall { partitions: vec![0], lag: 40, idle: Duration::from_secs(310) };
        assert_eq!(began, Some(StallChange::Began(expected)));
        for s in (320..900).step_by(10) {
            w.fetched(1, at(t0, s));
            assert_eq!(w.observe(at(t0, s), false, &[(0, Some(41)), (1, Some(0))]), None, "said once, at {s} s");
        }
        let now = w.stall(at(t0, 900)).expect("still stalled");
        assert_eq!((now.partitions, now.lag, now.idle), (vec![0], 41, Duration::from_secs(900)));
        w.fetched(0, at(t0, 905));
        assert_eq!(
            w.observe(at(t0, 910), false, &[(0, Some(30)), (1, Some(0))]),
            Some(StallChange::Ended { partitions: vec![0], lasted: Duration::from_secs(600) })
        );
        assert_eq!(w.stall(at(t0, 910)), None);
        // The lag left after that fetch starts the clock again at 910 s.
        assert_eq!(w.observe(at(t0, 1200), false, &[(0, Some(30)), (1, Some(0))]), None);
        assert!(matches!(w.observe(at(t0, 1210), false, &[(0, Some(30))]), Some(StallChange::Began(_))));
    }

    /// Neither an idle partition with nothing to read, nor one paused on
    /// purpose, nor one whose lag is unknown is stalled; lag appearing
    /// after a long idle time starts the clock then.
    #[test]
    fn no_lag_unknown_lag_or_a_pause_is_no_stall() {
        let t0 = Instant::now();
        let mut w = StallWatch::new(AFTER);
        w.assigned(3, t0);
        assert_eq!(w.observe(at(t0, 3600), false, &[(3, Some(0))]), None, "an hour with nothing to read");
        assert_eq!(w.observe(at(t0, 3601), false, &[(3, Some(7))]), None, "records just arrived");
        assert_eq!(w.observe(at(t0, 3800), false, &[(3, Some(7))]), None, "waited 199 s");
        assert_eq!(w.observe(at(t0, 3900), true, &[(3, Some(7))]), None, "paused for syslog: not counted");
        assert_eq!(w.observe(at(t0, 4100), false, &[(3, Some(7))]), None, "the clock restarted after the pause");
        assert_eq!(w.observe(at(t0, 4300), false, &[(3, None)]), None, "lag unknown");
        assert_eq!(w.observe(at(t0, 4500), false, &[(3, Some(9))]), None);
        assert!(matches!(w.observe(at(t0, 4800), false, &[(3, Some(9))]), Some(StallChange::Began(_))));
        // A pause on purpose ends the stall (syslog's failure is reported on its own).
        assert!(matches!(w.observe(at(t0, 4810), true, &[(3, Some(9))]), Some(StallChange::Ended { .. })));
    }

    /// A partition taken away is no longer stalled; the stall's set follows
    /// the partitions without a new log line; the last one gone ends it.
    #[test]
    fn revoked_partitions_leave_the_stall() {
        let t0 = Instant::now();
        let mut w = StallWatch::new(AFTER);
        w.assigned(0, t0);
        w.assigned(1, t0);
        assert_eq!(w.observe(at(t0, 1), false, &[(0, Some(3)), (1, None)]), None);
        assert_eq!(w.observe(at(t0, 100), false, &[(0, Some(3)), (1, Some(4))]), None);
        assert!(
            matches!(w.observe(at(t0, 301), false, &[(0, Some(3)), (1, Some(4))]), Some(StallChange::Began(s)) if s.partitions == [0])
        );
        assert_eq!(w.observe(at(t0, 400), false, &[(0, Some(3)), (1, Some(4))]), None, "1 joins silently");
        assert_eq!(w.stall(at(t0, 400)).unwrap().partitions, [0, 1]);
        assert_eq!(w.stall(at(t0, 400)).unwrap().lag, 7);
        w.revoked(0);
        assert_eq!(w.observe(at(t0, 410), false, &[(1, Some(4))]), None);
        assert_eq!(w.stall(at(t0, 410)).unwrap().partitions, [1]);
        assert_eq!(w.idle_for(0, at(t0, 410)), None);
        assert_eq!(
            w.observe(at(t0, 420), false, &[]),
            Some(StallChange::Ended { partitions: vec![1], lasted: Duration::from_secs(119) })
        );
    }
}
