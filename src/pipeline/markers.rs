//! Partition commit markers: `_SUCCESS` in a Hive partition once the lake's watermark (the
//! smallest of every input partition's, as recorded in the lake by every instance) has passed
//! the partition's end plus the configured delay.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::Processor;
use crate::lake::commit as lake_commit;
use crate::lake::partition::Partitioning;

/// How often the lake's watermark is read while partitions wait for their marker.
const MARKER_CHECK: Duration = Duration::from_secs(1);

/// Partition directories not yet complete, with the end of their time bucket.
pub(super) struct Markers {
    pub partitioning: Partitioning,
    pub delay_ms: i64,
    pub unmarked: BTreeMap<String, i64>,
    pub checked: Instant,
}

impl Processor {
    /// Partition directories with data and no `_SUCCESS` yet (from earlier runs, or written by
    /// other instances): candidates for the marker.
    pub(super) fn find_incomplete_partitions(&mut self) {
        let Some(m) = &mut self.markers else { return };
        let dirs = match self.layout.partition_dirs() {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the table's partitions");
                return;
            }
        };
        for (dir, p) in dirs {
            if p.complete || p.files.is_empty() {
                continue;
            }
            if let Some(end) = m.partitioning.bucket_end_of(&dir) {
                m.unmarked.insert(dir, end);
            }
        }
    }

    /// Write `_SUCCESS` into every partition whose time bucket (plus the delay) the lake's
    /// watermark has passed: the smallest watermark of every input partition, as recorded in
    /// the lake by every instance. Checked at most once a second, and at the end of a run
    /// (`now` is `None`).
    pub(super) fn mark_complete_partitions(&mut self, now: Option<Instant>) {
        let Some(m) = &mut self.markers else { return };
        if m.unmarked.is_empty() {
            return;
        }
        if let Some(now) = now {
            if now.saturating_duration_since(m.checked) < MARKER_CHECK {
                return;
            }
            m.checked = now;
        }
        let watermark = match lake_commit::lake_watermark(&self.layout) {
            Ok(Some(w)) => w,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the lake's watermark");
                return;
            }
        };
        let ready: Vec<String> = m
            .unmarked
            .iter()
            .filter(|(_, end)| end.saturating_add(m.delay_ms) <= watermark)
            .map(|(d, _)| d.clone())
            .collect();
        for dir in ready {
            match crate::lake::marker::mark(&self.layout, &dir) {
                Ok(()) => {
                    m.unmarked.remove(&dir);
                    self.metrics.partitions_complete.inc();
                    tracing::info!(partition = %dir, watermark, "partition complete: _SUCCESS written");
                    if let Some(r) = &self.registrar {
                        r.complete(&dir);
                    }
                }
                Err(e) => tracing::warn!(partition = %dir, error = %e, "cannot write _SUCCESS"),
            }
        }
    }

    /// Note the partition directories (relative to the table) a commit published into.
    pub(super) fn published(&mut self, dirs: &[String]) {
        let Some(m) = &mut self.markers else { return };
        for dir in dirs {
            if let Some(end) = m.partitioning.bucket_end_of(dir) {
                m.unmarked.insert(dir.clone(), end);
            }
        }
    }
}
