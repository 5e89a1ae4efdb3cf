//! One input partition's progress between lake commits, and the rules that let each of its
//! records in exactly once.
//!
//! The processor owns one `PartitionProgress` per assigned input partition (a worker thread
//! will own its partitions' in the same way). It holds the normalization state, the next
//! offset to read, the last commit, and the partition's dealings with the source: the
//! generation of its last assignment or seek, a seek not yet carried out, and the back-off
//! after a failed roll.

use std::time::{Duration, Instant};

use super::checkpoint::Chain;
use crate::normalize::PartitionState;
use crate::sink::RowMeta;

/// The first back-off after a failed roll; it doubles up to `MAX_BACKOFF`.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What to do with a record of the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// The next record: process it.
    Take,
    /// Stale (read before the last assignment or seek), a re-delivery, or the partition is
    /// waiting (failed, or for a seek): drop it; it is read again if it is needed.
    Skip,
    /// Ahead of the position: the consumer is somewhere else. Seek back to this offset; the
    /// partition's records are skipped until the seek is reported done.
    SeekBack(i64),
}

pub struct PartitionProgress {
    pub norm: PartitionState<RowMeta>,
    /// Next offset to read (`None`: nothing read and nothing committed yet).
    pub next: Option<i64>,
    /// Sequence of the last lake commit.
    pub seq: u64,
    /// Offset of the last lake commit.
    pub committed: Option<i64>,
    /// The checkpoint chain of the last lake commit (`None`: the next checkpoint is whole).
    pub chain: Option<Chain>,
    /// Since when there is uncommitted progress.
    pub dirty_since: Option<Instant>,
    /// After a failed roll: when to recover from the lake, and the back-off so far.
    failed: Option<(Instant, Duration)>,
    /// A seek to this position was requested and the source has not reported it done:
    /// every record of the partition is in flight from before it and is dropped.
    seeking: Option<Option<i64>>,
    /// Records of earlier source generations (read before the last assignment or seek) are
    /// stale and dropped.
    min_generation: u64,
    /// The input partition's incarnation (see `CommitRecord::lineage`).
    pub lineage: u32,
    /// When it last had a record (or was taken on).
    active_at: Instant,
    /// It had no record for the idle timeout, and has had none since.
    idle: bool,
    /// Its next record waits for the Schema Registry until then: the partition's records are
    /// dropped meanwhile, and read again from `next` after.
    waiting: Option<Instant>,
}

impl PartitionProgress {
    /// A partition with nothing committed.
    pub fn fresh() -> Self {
        PartitionProgress {
            norm: PartitionState::default(),
            next: None,
            seq: 0,
            committed: None,
            chain: None,
            dirty_since: None,
            failed: None,
            seeking: None,
            min_generation: 0,
            lineage: 0,
            active_at: Instant::now(),
            idle: false,
            waiting: None,
        }
    }

    /// A partition recovered from its commit `seq` at `next`, with its checkpointed state
    /// (and that state's chain, unless the next checkpoint must be whole).
    pub fn recovered(
        norm: PartitionState<RowMeta>,
        next: i64,
        seq: u64,
        lineage: u32,
        chain: Option<Chain>,
    ) -> Self {
        PartitionProgress {
            norm,
            next: Some(next),
            seq,
            committed: Some(next),
            chain,
            lineage,
            ..PartitionProgress::fresh()
        }
    }

    /// A new lineage of the partition (its topic was recreated): nothing read, fresh state,
    /// the commit sequence going on.
    pub fn new_lineage(&self) -> Self {
        PartitionProgress {
            seq: self.seq,
            lineage: self.lineage + 1,
            ..PartitionProgress::fresh()
        }
    }

    /// Records of generations before `generation` are stale (an assignment or a seek).
    pub fn starts_generation(&mut self, generation: u64) {
        self.min_generation = self.min_generation.max(generation);
    }

    /// Take over the source dealings of the progress this one replaces (after a recovery).
    pub fn succeeds(&mut self, old: &PartitionProgress) {
        self.min_generation = old.min_generation;
    }

    /// Decide about one record of the partition, and advance the position if it is taken.
    pub fn admit(&mut self, offset: i64, generation: u64, now: Instant) -> Admit {
        if self.failed.is_some()
            || self.seeking.is_some()
            || self.waiting.is_some()
            || generation < self.min_generation
        {
            return Admit::Skip;
        }
        let expected = *self.next.get_or_insert(offset);
        if offset < expected {
            return Admit::Skip;
        }
        if offset > expected {
            // Never skip ahead.
            self.seeking = Some(Some(expected));
            return Admit::SeekBack(expected);
        }
        self.next = Some(offset + 1);
        self.dirty_since.get_or_insert(now);
        self.active_at = now;
        self.idle = false;
        Admit::Take
    }

    /// Ask for a seek to the position (after a recovery), and skip records until it is done.
    pub fn seek_to_position(&mut self) -> Option<i64> {
        self.seeking = Some(self.next);
        self.next
    }

    /// The source carried out a seek of generation `generation`. `Some(target)`: it failed,
    /// and must be asked again.
    pub fn seek_done(&mut self, generation: u64, ok: bool) -> Option<Option<i64>> {
        let target = self.seeking?;
        if !ok {
            return Some(target);
        }
        self.seeking = None;
        self.starts_generation(generation);
        None
    }

    pub fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    /// A roll failed: back off before recovering (0.5 s, doubling to 30 s). Returns the
    /// back-off.
    pub fn failed(&mut self, now: Instant) -> Duration {
        let backoff = self
            .failed
            .map_or(FIRST_BACKOFF, |(_, b)| (b * 2).min(MAX_BACKOFF));
        self.failed = Some((now + backoff, backoff));
        backoff
    }

    /// The back-off so far, once it has passed.
    pub fn retry_due(&self, now: Instant) -> Option<Duration> {
        self.failed.filter(|(at, _)| *at <= now).map(|(_, b)| b)
    }

    /// Recovery after a back-off failed: back off longer.
    pub fn retry_failed(&mut self, now: Instant, backoff: Duration) -> Duration {
        let next = (backoff * 2).min(MAX_BACKOFF);
        self.failed = Some((now + next, next));
        next
    }

    /// The offset to commit, when there is something to commit: not failed (its uncommitted
    /// work was abandoned), something read, and progress since the last commit.
    pub fn to_commit(&self) -> Option<i64> {
        let next = self.next.filter(|_| self.failed.is_none())?;
        (self.committed != Some(next) || self.dirty_since.is_some()).then_some(next)
    }

    /// Whether uncommitted progress is older than `max_age`.
    pub fn commit_due(&self, now: Instant, max_age: Duration) -> bool {
        self.failed.is_none()
            && self
                .dirty_since
                .is_some_and(|t| now.saturating_duration_since(t) >= max_age)
    }

    /// Whether it has had no record for `timeout` and is not marked idle yet. A partition that
    /// never read anything has no commit to mark.
    pub fn idle_due(&self, now: Instant, timeout: Duration) -> bool {
        !self.idle
            && self.failed.is_none()
            && self.waiting.is_none()
            && self.next.is_some()
            && now.saturating_duration_since(self.active_at) >= timeout
    }

    /// The record at `offset` (just taken) cannot be decoded before the Schema Registry
    /// answers: it is read again, from `offset`, once `until` has passed.
    pub fn wait_for_schema(&mut self, offset: i64, until: Instant) {
        self.next = Some(offset);
        self.waiting = Some(until);
    }

    /// Its wait is over: the position to seek back to (the partition's records are dropped
    /// until the source reports the seek done).
    pub fn resume_due(&mut self, now: Instant) -> Option<Option<i64>> {
        self.waiting.filter(|until| *until <= now)?;
        self.waiting = None;
        self.seeking = Some(self.next);
        Some(self.next)
    }

    /// Waiting for the Schema Registry.
    pub fn is_waiting(&self) -> bool {
        self.waiting.is_some()
    }

    /// Waiting for the registry, or for a seek: its records after `next` are still to come.
    pub fn is_behind(&self) -> bool {
        self.waiting.is_some() || self.seeking.is_some()
    }

    /// Mark it idle; the mark is progress to commit.
    pub fn go_idle(&mut self, now: Instant) {
        self.idle = true;
        self.dirty_since.get_or_insert(now);
    }

    pub fn is_idle(&self) -> bool {
        self.idle
    }

    /// The lake commit `seq` made everything below `next` durable.
    pub fn committed(&mut self, seq: u64, next: i64) {
        self.seq = seq;
        self.committed = Some(next);
        self.dirty_since = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_waiting_for_its_schema_is_read_again_after_the_wait() {
        let now = Instant::now();
        let mut p = at(10);
        assert_eq!(p.admit(10, 0, now), Admit::Take);
        p.wait_for_schema(10, now + Duration::from_secs(1));
        // Meanwhile nothing is taken, nothing beyond 10 is committed, and it is not idle.
        assert_eq!(p.admit(11, 0, now), Admit::Skip);
        assert_eq!(p.to_commit(), Some(10));
        assert!(!p.idle_due(now + Duration::from_secs(3600), Duration::from_secs(1)));
        assert_eq!(p.resume_due(now), None);
        assert_eq!(p.resume_due(now + Duration::from_secs(1)), Some(Some(10)));
        assert!(p.is_behind());
        assert_eq!(p.seek_done(1, true), None);
        assert_eq!(p.admit(10, 1, now), Admit::Take);
        assert!(!p.is_behind());
    }

    fn at(next: i64) -> PartitionProgress {
        PartitionProgress::recovered(PartitionState::default(), next, 3, 0, None)
    }

    #[test]
    fn the_next_offset_is_taken_and_advances_the_position() {
        let now = Instant::now();
        let mut p = at(10);
        assert_eq!(p.admit(10, 0, now), Admit::Take);
        assert_eq!(p.admit(11, 0, now), Admit::Take);
        assert_eq!((p.next, p.dirty_since), (Some(12), Some(now)));
        assert_eq!(p.to_commit(), Some(12));
    }

    #[test]
    fn a_fresh_partition_starts_at_its_first_record() {
        let mut p = PartitionProgress::fresh();
        assert_eq!(p.to_commit(), None, "nothing read, nothing to commit");
        assert_eq!(p.admit(40, 0, Instant::now()), Admit::Take);
        assert_eq!(p.next, Some(41));
    }

    #[test]
    fn re_deliveries_and_stale_generations_are_skipped() {
        let now = Instant::now();
        let mut p = at(10);
        p.starts_generation(2);
        assert_eq!(p.admit(10, 1, now), Admit::Skip, "stale generation");
        assert_eq!(p.admit(9, 2, now), Admit::Skip, "re-delivery");
        assert_eq!(p.next, Some(10));
        assert_eq!(p.to_commit(), None, "nothing new");
    }

    #[test]
    fn a_record_ahead_seeks_back_and_waits_for_the_seek() {
        let now = Instant::now();
        let mut p = at(10);
        assert_eq!(p.admit(15, 0, now), Admit::SeekBack(10));
        assert_eq!(
            p.admit(10, 0, now),
            Admit::Skip,
            "in flight from before the seek"
        );
        assert_eq!(
            p.seek_done(1, false),
            Some(Some(10)),
            "a failed seek is asked again"
        );
        assert_eq!(p.admit(10, 1, now), Admit::Skip);
        assert_eq!(p.seek_done(1, true), None);
        assert_eq!(p.admit(10, 0, now), Admit::Skip, "older than the seek");
        assert_eq!(p.admit(10, 1, now), Admit::Take);
    }

    #[test]
    fn a_failed_partition_skips_backs_off_and_recovers() {
        let t0 = Instant::now();
        let mut p = at(10);
        assert_eq!(p.admit(10, 0, t0), Admit::Take);
        assert_eq!(p.failed(t0), FIRST_BACKOFF);
        assert_eq!(p.failed(t0), FIRST_BACKOFF * 2, "doubles");
        assert_eq!(p.admit(11, 0, t0), Admit::Skip);
        assert_eq!(p.to_commit(), None, "its work was abandoned");
        assert!(!p.commit_due(t0 + Duration::from_secs(99), Duration::ZERO));
        assert_eq!(p.retry_due(t0), None);
        let later = t0 + Duration::from_secs(1);
        assert_eq!(p.retry_due(later), Some(FIRST_BACKOFF * 2));
        assert_eq!(p.retry_failed(later, MAX_BACKOFF), MAX_BACKOFF, "capped");

        let mut again = at(10);
        again.succeeds(&p);
        assert_eq!(again.seek_to_position(), Some(10));
        assert_eq!(
            again.admit(10, 0, later),
            Admit::Skip,
            "until the seek is done"
        );
        assert_eq!(again.seek_done(5, true), None);
        assert_eq!(again.admit(10, 5, later), Admit::Take);
    }

    #[test]
    fn a_commit_clears_the_progress_and_age_decides_when_it_is_due() {
        let t0 = Instant::now();
        let mut p = at(10);
        p.admit(10, 0, t0);
        let age = Duration::from_secs(60);
        assert!(!p.commit_due(t0, age));
        assert!(p.commit_due(t0 + age, age));
        p.committed(4, 11);
        assert_eq!((p.seq, p.committed, p.to_commit()), (4, Some(11), None));
        assert!(!p.commit_due(t0 + age, age));
    }

    #[test]
    fn a_partition_without_records_goes_idle_once_and_a_record_wakes_it() {
        let t0 = Instant::now();
        let timeout = Duration::from_secs(5);
        let mut p = at(10);
        p.active_at = t0;
        assert!(!p.idle_due(t0 + Duration::from_secs(4), timeout));
        assert!(p.idle_due(t0 + timeout, timeout));
        p.go_idle(t0 + timeout);
        assert!(p.is_idle());
        assert_eq!(p.to_commit(), Some(10), "the idle mark is committed");
        p.committed(4, 10);
        assert!(!p.idle_due(t0 + timeout * 3, timeout), "idle once");
        assert_eq!(p.admit(10, 0, t0 + timeout * 3), Admit::Take);
        assert!(!p.is_idle());
        assert!(!p.idle_due(t0 + timeout * 3, timeout));
        assert!(!PartitionProgress::fresh().idle_due(Instant::now() + timeout, timeout));
    }
}
