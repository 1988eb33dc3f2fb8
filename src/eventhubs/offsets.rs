//! Which Kafka offsets may be committed: only those whose records syslog
//! has taken.
//!
//! Every message read is noted with the sender's message count after its
//! records were handed over ([`OffsetTracker::consumed`]). When the sender
//! reports that many messages written, the message's next offset becomes
//! *delivered* ([`OffsetTracker::written`]); only delivered offsets are
//! ever offered for a commit, per partition at most once per commit
//! interval ([`OffsetTracker::due`]). A revoked partition is dropped with
//! whatever is still in flight: its records may still be written, but
//! their offsets are never committed by this instance (the next owner
//! reads them again; duplicates, never loss). This module does no I/O.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// Progress of one assigned partition.
#[derive(Clone, Debug, Default)]
pub struct PartitionProgress {
    /// (next offset, sender message count that covers it), oldest first.
    in_flight: VecDeque<(i64, u64)>,
    /// The next offset after the last message fully written to syslog.
    pub delivered: Option<i64>,
    /// The last offset committed (or found committed at assignment).
    pub committed: Option<i64>,
    /// A commit of this offset is on its way.
    pub committing: Option<i64>,
    last_commit: Option<Instant>,
    /// The offset after the last message read: where reading goes on.
    pub next_offset: Option<i64>,
    /// Messages and records read from this partition since it was assigned.
    pub messages: u64,
    pub records: u64,
}

impl PartitionProgress {
    /// Messages read but not yet written to syslog.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Where the consumer reads this partition from: after the last
    /// message read, else the committed offset (`None`: neither known —
    /// the group's start applies).
    pub fn position(&self) -> Option<i64> {
        self.next_offset.or(self.committed)
    }
}

/// The progress of every partition this instance holds.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: BTreeMap<i32, PartitionProgress>,
}

impl OffsetTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// A partition was assigned (again): start afresh.
    pub fn assign(&mut self, partition: i32, committed: Option<i64>) {
        self.partitions.insert(partition, PartitionProgress { committed, ..PartitionProgress::default() });
    }

    /// A partition was taken away: forget it, in-flight messages included
    /// (their offsets are never committed here). Returns what it had.
    pub fn revoke(&mut self, partition: i32) -> Option<PartitionProgress> {
        self.partitions.remove(&partition)
    }

    pub fn get(&self, partition: i32) -> Option<&PartitionProgress> {
        self.partitions.get(&partition)
    }

    pub fn partitions(&self) -> impl Iterator<Item = (i32, &PartitionProgress)> {
        self.partitions.iter().map(|(p, progress)| (*p, progress))
    }

    /// The message at `offset` was read; its records were handed to the
    /// sender, whose count of accepted messages is now `accepted`.
    /// Messages of a partition not assigned (a late one after a revoke)
    /// are ignored: their offsets are not ours to commit.
    pub fn consumed(&mut self, partition: i32, offset: i64, records: u64, accepted: u64) {
        let Some(progress) = self.partitions.get_mut(&partition) else { return };
        progress.messages += 1;
        progress.records += records;
        progress.next_offset = Some(offset + 1);
        progress.in_flight.push_back((offset + 1, accepted));
    }

    /// The sender has written its first `written` messages: every message
    /// they cover is delivered.
    pub fn written(&mut self, written: u64) {
        for progress in self.partitions.values_mut() {
            while let Some(&(next, needed)) = progress.in_flight.front() {
                if needed > written {
                    break;
                }
                progress.delivered = Some(next);
                progress.in_flight.pop_front();
            }
        }
    }

    /// Partitions with a delivered offset beyond the committed one whose
    /// last commit is at least `interval` old (every one with `force`):
    /// `(partition, offset)` to commit now. Marks them as committing.
    pub fn due(&mut self, now: Instant, interval: Duration, force: bool) -> Vec<(i32, i64)> {
        let mut due = Vec::new();
        for (&partition, progress) in &mut self.partitions {
            let Some(delivered) = progress.delivered else { continue };
            let newer = progress.committed.is_none_or(|c| delivered > c) && progress.committing != Some(delivered);
            let rested = progress.last_commit.is_none_or(|t| now.duration_since(t) >= interval);
            if newer && (rested || force) {
                progress.committing = Some(delivered);
                progress.last_commit = Some(now);
                due.push((partition, delivered));
            }
        }
        due
    }

    /// The broker confirmed (or refused) a commit.
    pub fn commit_done(&mut self, partition: i32, offset: i64, ok: bool) {
        let Some(progress) = self.partitions.get_mut(&partition) else { return };
        if progress.committing == Some(offset) {
            progress.committing = None;
        }
        if ok && progress.committed.is_none_or(|c| offset > c) {
            progress.committed = Some(offset);
        }
    }

    /// Messages read but not yet written, over all partitions.
    pub fn in_flight(&self) -> usize {
        self.partitions.values().map(PartitionProgress::in_flight).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_written_messages_become_committable() {
        let mut t = OffsetTracker::new();
        t.assign(0, None);
        t.assign(1, Some(10));
        t.consumed(0, 0, 5, 5);
        t.consumed(1, 10, 3, 8);
        t.consumed(0, 1, 2, 10);
        let now = Instant::now();
        assert!(t.due(now, Duration::ZERO, true).is_empty(), "nothing written yet");
        t.written(7);
        assert_eq!(t.due(now, Duration::ZERO, true), [(0, 1)], "message 0 of partition 0 only");
        t.written(9);
        assert_eq!(t.due(now, Duration::ZERO, true), [(1, 11)]);
        t.written(10);
        assert_eq!(t.due(now, Duration::ZERO, true), [(0, 2)]);
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn commits_wait_for_the_interval_unless_forced() {
        let mut t = OffsetTracker::new();
        t.assign(3, None);
        let start = Instant::now();
        t.consumed(3, 0, 1, 1);
        t.written(1);
        assert_eq!(t.due(start, Duration::from_secs(1), false), [(3, 1)]);
        t.commit_done(3, 1, true);
        t.consumed(3, 1, 1, 2);
        t.written(2);
        assert!(t.due(start + Duration::from_millis(500), Duration::from_secs(1), false).is_empty());
        assert_eq!(t.due(start + Duration::from_millis(500), Duration::from_secs(1), true), [(3, 2)]);
        assert!(t.due(start + Duration::from_secs(5), Duration::from_secs(1), false).is_empty(), "in progress");
        t.commit_done(3, 2, false);
        assert_eq!(t.due(start + Duration::from_secs(5), Duration::from_secs(1), false), [(3, 2)], "retried");
        t.commit_done(3, 2, true);
        assert_eq!(t.get(3).unwrap().committed, Some(2));
        assert!(t.due(start + Duration::from_secs(9), Duration::ZERO, true).is_empty(), "nothing new");
    }

    #[test]
    fn a_revoked_partition_commits_nothing_more() {
        let mut t = OffsetTracker::new();
        t.assign(0, None);
        t.consumed(0, 4, 1, 1);
        let gone = t.revoke(0).unwrap();
        assert_eq!(gone.in_flight(), 1);
        t.consumed(0, 5, 1, 2);
        t.written(2);
        assert!(t.due(Instant::now(), Duration::ZERO, true).is_empty());
        t.assign(0, Some(5));
        assert_eq!(t.get(0).unwrap().committed, Some(5));
        assert_eq!(t.get(0).unwrap().messages, 0);
    }
}
