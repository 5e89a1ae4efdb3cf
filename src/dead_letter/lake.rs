//! Dead letters as Parquet files in the lake, published by the partition's commit.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use super::{DeadLetterSink, Held};
use crate::lake::{Layout, PendingFile};
use crate::sink::{Sealed, SinkError, rows};

/// Dead letters as Parquet files under `<root>/_dead_letter/<table>/`, outside the table so
/// that a `**/*.parquet` glob over the table sees only rows. Published by the partition's
/// commit, so they are exactly-once like the rows.
pub struct LakeDeadLetters {
    layout: Layout,
    props: WriterProperties,
    held: Held,
}

impl LakeDeadLetters {
    pub fn new(layout: Layout, props: WriterProperties) -> Self {
        LakeDeadLetters {
            layout,
            props,
            held: Held::default(),
        }
    }
}

impl DeadLetterSink for LakeDeadLetters {
    fn name(&self) -> &'static str {
        "lake"
    }

    fn held(&mut self) -> &mut Held {
        &mut self.held
    }

    fn seal(
        &mut self,
        stream: &Arc<str>,
        partition: i32,
        lineage: u32,
    ) -> Result<Sealed, SinkError> {
        let dead = self.held.take(stream, partition);
        if dead.is_empty() {
            return Ok(Sealed::default());
        }
        let first = dead.iter().map(|d| d.offset).min().unwrap_or(0);
        let last = dead.iter().map(|d| d.offset).max().unwrap_or(0);
        let dir = self.layout.dead_letter_key();
        let store = self.layout.store();
        let pending =
            PendingFile::create(store, &dir, &format!("part-{stream}-{partition}-{first}"))?;
        let perr = |source| SinkError::Parquet {
            path: pending.path.clone(),
            source,
        };
        let schema = dead_letter_schema();
        let mut key = BinaryBuilder::new();
        let mut value = BinaryBuilder::new();
        for d in &dead {
            key.append_option(d.key.as_deref());
            value.append_value(&d.value);
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                dead.iter().map(|_| &**stream),
            )),
            Arc::new(Int32Array::from(vec![partition; dead.len()])),
            Arc::new(Int64Array::from_iter_values(dead.iter().map(|d| d.offset))),
            Arc::new(StringArray::from_iter_values(dead.iter().map(|d| d.reason))),
            Arc::new(key.finish()),
            Arc::new(value.finish()),
            Arc::new(
                TimestampMillisecondArray::from_iter(dead.iter().map(|d| d.timestamp_ms))
                    .with_timezone(rows::UTC),
            ),
        ];
        let batch =
            RecordBatch::try_new(schema.clone(), cols).map_err(|source| SinkError::Arrow {
                stream: stream.to_string(),
                partition,
                source,
            })?;
        let mut w =
            ArrowWriter::try_new(pending.file, schema, Some(self.props.clone())).map_err(perr)?;
        w.write(&batch).map_err(perr)?;
        let file = w.into_inner().map_err(perr)?;
        let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        let dest = format!(
            "{dir}/{}",
            Layout::file_name(stream, partition, lineage, first, last)
        );
        PendingFile::seal(store, file, &pending.key)?;
        Ok(Sealed {
            files: vec![(pending.key, dest)],
            rows: 0,
            dead_letters: dead.len(),
            bytes,
            rows_after_complete: 0,
        })
    }

    fn held_bytes(&self) -> usize {
        self.held.bytes()
    }
}

/// Columns of a dead-letter file.
pub fn dead_letter_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("kafka_topic", DataType::Utf8, false),
        Field::new("kafka_partition", DataType::Int32, false),
        Field::new("kafka_offset", DataType::Int64, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("key", DataType::Binary, true),
        Field::new("value", DataType::Binary, false),
        Field::new(
            "kafka_timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, Some(rows::UTC.into())),
            true,
        ),
    ]))
}
