//! Avro writer schemas as the pipeline wires them: fetched from the Schema Registry when a
//! record carries an id the decoder does not have, and, while the registry does not answer,
//! the record's partition waits (its records are read again after the wait) instead of
//! dead-lettering good data.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use super::{PipelineError, Processor};
use crate::config::Config;
use crate::decode::{Decoder, InputFormat, SchemaLookup};
use crate::source::CommitRequest;
use crate::source::registry::Registry;
use crate::telemetry::{Metrics, unix_ms};

/// The registry client and the answers it had, shared by the workers: each schema is fetched
/// once per run, whichever worker meets it first.
pub(super) struct SharedRegistry {
    client: Registry,
    answers: HashMap<u32, SchemaLookup>,
}

/// The registry client, when the input is Avro.
pub(super) fn registry(
    cfg: &Config,
    metrics: &Metrics,
) -> Result<Option<SharedRegistry>, PipelineError> {
    if cfg.input.format != InputFormat::AvroConfluent {
        return Ok(None);
    }
    let Some(section) = &cfg.registry else {
        return Ok(None);
    };
    let opts = section
        .options()
        .map_err(|e| PipelineError::Registry(e.to_string()))?;
    metrics.health.watch_registry();
    let client = Registry::new(opts).map_err(|e| PipelineError::Registry(e.to_string()))?;
    Ok(Some(SharedRegistry {
        client,
        answers: HashMap::new(),
    }))
}

/// Make sure the decoder has the writer schema of `value`. `Err(until)`: the registry did not
/// answer; ask again at `until`.
pub(super) fn ensure(
    decoder: &mut Decoder,
    registry: Option<&Mutex<SharedRegistry>>,
    metrics: &Metrics,
    value: &[u8],
    now: Instant,
) -> Result<(), Instant> {
    let (Some(id), Some(registry)) = (decoder.missing_schema(value), registry) else {
        return Ok(());
    };
    let mut shared = registry.lock().unwrap_or_else(|e| e.into_inner());
    let found = match shared.answers.get(&id) {
        Some(known) => known.clone(),
        None => fetch(&mut shared, id, metrics, now)?,
    };
    if let Err(e) = decoder.add_schema(id, found) {
        tracing::error!(schema_id = id, error = %e, "a writer schema cannot be used: its records go to the dead letters as unknown_schema");
    }
    Ok(())
}

fn fetch(
    shared: &mut SharedRegistry,
    id: u32,
    metrics: &Metrics,
    now: Instant,
) -> Result<SchemaLookup, Instant> {
    match shared.client.fetch(id, now) {
        Ok(found) => {
            metrics.health.set_registry_reachable(true, unix_ms());
            metrics.schemas_fetched.inc();
            shared.answers.insert(id, found.clone());
            Ok(found)
        }
        Err(e) => {
            metrics.health.set_registry_reachable(false, unix_ms());
            metrics.registry_failures.inc();
            tracing::warn!(schema_id = id, error = %e.reason, "the Schema Registry does not answer: the partition waits");
            Err(e.retry_at)
        }
    }
}

impl Processor {
    /// Partitions whose wait for the registry is over read again from their position; the
    /// gauge counts those still waiting.
    pub(super) fn resume_waiting(&mut self, now: Instant) {
        let waiting = self.parts.values().filter(|p| p.is_waiting()).count();
        (self.gauges.waiting).set(&self.metrics.partitions_waiting, waiting as i64);
        for (key, p) in &mut self.parts {
            if let Some(position) = p.resume_due(now) {
                let _ = self
                    .to_source
                    .send(CommitRequest::seek(key.clone(), position));
            }
        }
    }
}
