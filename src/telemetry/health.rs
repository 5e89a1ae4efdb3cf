//! Readiness: what `/readyz` answers. The job is ready while it has partitions assigned, the
//! lake is writable, no input batch was undecodable lately, and the services it depends on
//! (the metastore, the Schema Registry) answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use super::unix_ms;

/// Readiness: partitions assigned, the lake writable, no undecodable input lately, and the
/// metastore and the Schema Registry (if any) answering.
#[derive(Debug, Clone, Default)]
pub struct Health {
    assigned: Arc<AtomicUsize>,
    lake_writable: Arc<AtomicBool>,
    /// Unix ms of the last batch the consumer could not decode (0: never).
    undecodable_at: Arc<AtomicI64>,
    metastore: Outage,
    /// The Schema Registry: records wait for it while it does not answer.
    registry: Outage,
}

/// A service the job depends on that may stop answering.
#[derive(Debug, Clone, Default)]
struct Outage {
    /// Unix ms since when it has not answered (0: it answers, or there is none).
    down_since: Arc<AtomicI64>,
    /// How long it may not answer before the job is not ready (0: not watched).
    unready_after_ms: Arc<AtomicI64>,
}

impl Outage {
    fn watch(&self, after: Duration) {
        let ms = i64::try_from(after.as_millis()).unwrap_or(i64::MAX).max(1);
        self.unready_after_ms.store(ms, Ordering::Relaxed);
    }

    fn set_reachable(&self, ok: bool, now_ms: i64) {
        if ok {
            self.down_since.store(0, Ordering::Relaxed);
        } else {
            let _ =
                self.down_since
                    .compare_exchange(0, now_ms, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    fn down_too_long(&self, now_ms: i64) -> bool {
        let since = self.down_since.load(Ordering::Relaxed);
        let after = self.unready_after_ms.load(Ordering::Relaxed);
        after > 0 && since > 0 && now_ms.saturating_sub(since) >= after
    }
}

/// How long an undecodable batch keeps the job not ready. librdkafka fetches the batch again
/// and again, so a partition that stays stuck keeps it not ready.
const UNDECODABLE_FOR_MS: i64 = 60_000;

impl Health {
    pub fn set_assigned(&self, n: usize) {
        self.assigned.store(n, Ordering::Relaxed);
    }

    pub fn set_lake_writable(&self, ok: bool) {
        self.lake_writable.store(ok, Ordering::Relaxed);
    }

    pub fn set_input_undecodable(&self, now_ms: i64) {
        self.undecodable_at.store(now_ms, Ordering::Relaxed);
    }

    /// The job registers into a metastore: readiness fails once it has not answered for
    /// `after`.
    pub fn watch_metastore(&self, after: Duration) {
        self.metastore.watch(after);
    }

    /// Whether the metastore answered the last attempt, at `now_ms`.
    pub fn set_metastore_reachable(&self, ok: bool, now_ms: i64) {
        self.metastore.set_reachable(ok, now_ms);
    }

    /// The job reads Avro: readiness fails while a record waits for the Schema Registry.
    pub fn watch_registry(&self) {
        self.registry.watch(Duration::from_millis(1));
    }

    /// Whether the Schema Registry answered the last request, at `now_ms`.
    pub fn set_registry_reachable(&self, ok: bool, now_ms: i64) {
        self.registry.set_reachable(ok, now_ms);
    }

    /// Why the job is not ready, if it is not.
    pub fn not_ready(&self) -> Option<&'static str> {
        let undecodable_at = self.undecodable_at.load(Ordering::Relaxed);
        let now = unix_ms();
        if self.assigned.load(Ordering::Relaxed) == 0 {
            Some("no input partitions assigned")
        } else if !self.lake_writable.load(Ordering::Relaxed) {
            Some("the lake is not writable")
        } else if undecodable_at > 0 && now - undecodable_at < UNDECODABLE_FOR_MS {
            Some("an input batch cannot be decoded")
        } else if self.metastore.down_too_long(now) {
            Some("the metastore has not answered for longer than lake.metastore.unready_after")
        } else if self.registry.down_too_long(now) {
            Some("records wait for the Schema Registry, which does not answer")
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_undecodable_batch_fails_readiness_for_a_while() {
        let h = Health::default();
        h.set_assigned(1);
        h.set_lake_writable(true);
        assert_eq!(h.not_ready(), None);
        let now = crate::telemetry::unix_ms();
        h.set_input_undecodable(now);
        assert_eq!(h.not_ready(), Some("an input batch cannot be decoded"));
        h.set_input_undecodable(now - UNDECODABLE_FOR_MS - 1);
        assert_eq!(h.not_ready(), None);
    }

    #[test]
    fn a_metastore_down_for_long_fails_readiness_until_it_answers() {
        let h = Health::default();
        h.set_assigned(1);
        h.set_lake_writable(true);
        let now = crate::telemetry::unix_ms();
        // Without a metastore to watch, nothing is reported.
        h.set_metastore_reachable(false, now - 3_600_000);
        assert_eq!(h.not_ready(), None);
        h.watch_metastore(Duration::from_secs(300));
        assert!(h.not_ready().is_some_and(|r| r.contains("metastore")));
        h.set_metastore_reachable(true, now);
        assert_eq!(h.not_ready(), None);
        // Down since just now: not yet too long.
        h.set_metastore_reachable(false, now);
        assert_eq!(h.not_ready(), None);
    }
}
