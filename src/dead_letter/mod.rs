//! Records that cannot become rows, and where they go: the one home of dead letters.
//!
//! `DeadLetterSink` is the one interface the pipeline uses; a destination keeps each input
//! partition's dead letters until that partition's roll, then makes them durable (`seal`)
//! before the lake commit, so no offset moves past a dead letter that is not safely stored.
//! Two destinations exist, chosen by [`open`] from the configuration: `lake` (Parquet files
//! published with the commit, exactly once) and `kafka` (a topic, at least once).

mod kafka;
mod lake;

use std::collections::HashMap;
use std::sync::Arc;

use parquet::file::properties::WriterProperties;

use crate::config::{Config, DeadLetterDestination};
use crate::lake::{Layout, PartitionId};
use crate::sink::{Sealed, SinkError};
use crate::source::SourceError;
use crate::telemetry::Metrics;

pub use kafka::KafkaDeadLetters;
pub use lake::{LakeDeadLetters, dead_letter_schema};

/// The configured destination. Lake dead letters are written with the table's Parquet
/// properties.
pub fn open(
    cfg: &Config,
    layout: &Layout,
    props: &WriterProperties,
    metrics: &Metrics,
) -> Result<Box<dyn DeadLetterSink>, SourceError> {
    Ok(match cfg.dead_letter.destination {
        DeadLetterDestination::Lake => {
            Box::new(LakeDeadLetters::new(layout.clone(), props.clone()))
        }
        DeadLetterDestination::Kafka => Box::new(KafkaDeadLetters::new(
            cfg.dead_letter.topic.as_deref().unwrap_or_default(),
            &cfg.dead_letter_client(),
            metrics.clone(),
        )?),
    })
}

/// A record that cannot become a row, kept untouched with its origin and reason.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub reason: &'static str,
    /// The record's timestamp from the source, if it had one (Unix ms).
    pub timestamp_ms: Option<i64>,
}

impl DeadLetter {
    /// Bytes held in memory for this letter.
    pub fn footprint(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.value.capacity()
            + self.key.as_ref().map_or(0, Vec::capacity)
    }
}

/// A dead-letter destination.
pub trait DeadLetterSink: Send {
    /// The destination's name, for logs and errors.
    fn name(&self) -> &'static str;
    /// The letters held until their partitions' rolls.
    fn held(&mut self) -> &mut Held;
    /// Bytes held for letters not sealed yet.
    fn held_bytes(&self) -> usize;
    /// Keep a dead letter of an input partition until its next roll.
    fn push(&mut self, stream: &Arc<str>, partition: i32, letter: DeadLetter) {
        self.held().push(stream, partition, letter);
    }
    /// Make every dead letter of the partition durable. Returned files are published by the
    /// partition's commit; `dead_letters` counts the letters sealed. `lineage` names the
    /// partition's incarnation (see `Layout::file_name`).
    fn seal(
        &mut self,
        stream: &Arc<str>,
        partition: i32,
        lineage: u32,
    ) -> Result<Sealed, SinkError>;
    /// Forget the unsealed letters of these partitions (they are read again).
    fn abandon(&mut self, parts: &[PartitionId]) {
        self.held().abandon(parts);
    }
}

/// Letters held per input partition until its roll: what both destinations share.
#[derive(Default)]
pub struct Held {
    letters: HashMap<PartitionId, Vec<DeadLetter>>,
    bytes: usize,
}

impl Held {
    pub fn push(&mut self, stream: &Arc<str>, partition: i32, letter: DeadLetter) {
        self.bytes += letter.footprint();
        self.letters
            .entry((stream.clone(), partition))
            .or_default()
            .push(letter);
    }

    pub fn take(&mut self, stream: &Arc<str>, partition: i32) -> Vec<DeadLetter> {
        let taken = self
            .letters
            .remove(&(stream.clone(), partition))
            .unwrap_or_default();
        self.bytes -= taken.iter().map(DeadLetter::footprint).sum::<usize>();
        taken
    }

    pub fn abandon(&mut self, parts: &[PartitionId]) {
        for (stream, partition) in parts {
            self.take(stream, *partition);
        }
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}
