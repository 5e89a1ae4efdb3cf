//! Partition commit markers: `_SUCCESS` in a Hive partition once the lake's watermark (the
//! smallest of every input partition's, as recorded in the lake by every instance) has passed
//! the partition's end plus the configured delay.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::Processor;
use crate::lake::Layout;
use crate::lake::commit as lake_commit;
use crate::lake::partition::Partitioning;

/// How often the lake's watermark is read while partitions wait for their marker.
const MARKER_CHECK: Duration = Duration::from_secs(1);

/// Partition directories not yet complete, with the end of their time bucket; one for all the
/// workers.
pub(super) struct Markers {
    partitioning: Partitioning,
    delay_ms: i64,
    unmarked: BTreeMap<String, i64>,
    checked: Instant,
}

impl Markers {
    pub(super) fn new(partitioning: Partitioning, delay_ms: i64) -> Self {
        Markers {
            partitioning,
            delay_ms,
            unmarked: BTreeMap::new(),
            checked: Instant::now(),
        }
    }

    /// Partition directories with data and no `_SUCCESS` yet (from earlier runs, or written
    /// by other instances): candidates for the marker.
    pub(super) fn find_incomplete(&mut self, layout: &Layout) {
        let dirs = match layout.partition_dirs() {
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
            if let Some(end) = self.partitioning.bucket_end_of(&dir) {
                self.unmarked.insert(dir, end);
            }
        }
    }

    /// The directories whose bucket (plus the delay) the lake's watermark has passed.
    /// Checked at most once a second, and at the end of a run (`now` is `None`).
    fn ready(&mut self, layout: &Layout, now: Option<Instant>) -> Vec<String> {
        if self.unmarked.is_empty() {
            return Vec::new();
        }
        if let Some(now) = now {
            if now.saturating_duration_since(self.checked) < MARKER_CHECK {
                return Vec::new();
            }
            self.checked = now;
        }
        let watermark = match lake_commit::lake_watermark(layout) {
            Ok(Some(w)) => w,
            Ok(None) => return Vec::new(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the lake's watermark");
                return Vec::new();
            }
        };
        let delay = self.delay_ms;
        self.unmarked
            .iter()
            .filter(|(_, end)| end.saturating_add(delay) <= watermark)
            .map(|(d, _)| d.clone())
            .collect()
    }
}

impl Processor {
    /// Write `_SUCCESS` into every partition whose time bucket (plus the delay) the lake's
    /// watermark has passed: the smallest watermark of every input partition, as recorded in
    /// the lake by every instance and every worker. One worker at a time does it.
    pub(super) fn mark_complete_partitions(&mut self, now: Option<Instant>) {
        let Some(markers) = &self.markers else { return };
        let mut m = markers.lock().unwrap_or_else(|e| e.into_inner());
        for dir in m.ready(&self.layout, now) {
            match crate::lake::marker::mark(&self.layout, &dir) {
                Ok(()) => {
                    m.unmarked.remove(&dir);
                    self.metrics.partitions_complete.inc();
                    tracing::info!(partition = %dir, "partition complete: _SUCCESS written");
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
        let Some(markers) = &self.markers else { return };
        let mut m = markers.lock().unwrap_or_else(|e| e.into_inner());
        for dir in dirs {
            if let Some(end) = m.partitioning.bucket_end_of(dir) {
                m.unmarked.insert(dir.clone(), end);
            }
        }
    }
}
