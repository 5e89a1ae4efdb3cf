//! Rows → Hive-partitioned Parquet files, rolled per input partition.
//!
//! The sink owns the open files of a [`Table`]. Rows of one input partition are routed to
//! their partition directories by the [`Partitioner`] (the event time's segments, then the
//! partition fields; one `take` per directory) and streamed into one open Parquet file per
//! (partition directory, input partition) under a hidden name. `seal` closes every open file
//! of one input partition and returns them for the caller's commit (`lake::commit` publishes
//! them): a roll of one input partition is the unit of durability offsets move by. It knows
//! nothing of Kafka: a "stream" is a name and a partition a number.

mod partitioner;
pub mod rows;
mod table;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{RecordBatch, UInt32Array};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::lake::partition::Partitioning;
use crate::lake::{LakeError, Layout, PartitionId, PendingFile};
use crate::normalize::Event;
pub use partitioner::Partitioner;
pub use rows::{OutRows, Output, OutputSchema, Outputs, RowMeta};
pub use table::Table;

/// Failures of the sink, with the file they concern.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("cannot build a record batch for {stream}/{partition}: {source}")]
    Arrow {
        stream: String,
        partition: i32,
        source: arrow::error::ArrowError,
    },
    #[error("cannot encode Parquet file {path}: {source}")]
    Parquet {
        path: PathBuf,
        source: parquet::errors::ParquetError,
    },
    #[error("the dead-letter destination {destination} failed: {message}")]
    DeadLetter {
        destination: &'static str,
        message: String,
    },
}

/// When an open file is closed. A roll covers the whole input partition the file belongs to
/// (the partition's commit is the unit of durability), so a file that is due closes every open
/// file of its input partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollingPolicy {
    /// Rows in one file.
    pub max_rows: usize,
    /// Bytes of one file (written plus buffered, estimated encoded).
    pub max_bytes: u64,
    /// Since the file's first row.
    pub max_age: Duration,
    /// Since the file's last row: a quiet partition's file closes this long after its last row.
    pub inactivity: Duration,
    /// Open files over all input partitions; over it, the oldest file's partition rolls.
    pub max_open_files: usize,
}

/// What one roll sealed: complete, synced files under temporary names, with the final name
/// each is to be published as (the commit protocol in `lake::commit` renames them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sealed {
    /// (temporary, final) keys.
    pub files: Vec<(String, String)>,
    pub rows: usize,
    pub dead_letters: usize,
    pub bytes: u64,
    /// Rows that went into partitions already marked complete (`_SUCCESS`).
    pub rows_after_complete: usize,
}

struct OpenFile {
    writer: ArrowWriter<File>,
    /// Where it is written (for messages).
    tmp: PathBuf,
    /// Its temporary key, and the key of its directory.
    key: String,
    dir: String,
    first: i64,
    last: i64,
    rows: usize,
    opened_at: Instant,
    written_at: Instant,
    /// The directory was already marked complete when the file opened.
    after_complete: bool,
}

impl OpenFile {
    fn bytes(&self) -> u64 {
        (self.writer.bytes_written() + self.writer.in_progress_size()) as u64
    }

    /// Why this file is due to close at `now`, if it is.
    fn due(&self, p: &RollingPolicy, now: Instant) -> Option<&'static str> {
        if self.rows >= p.max_rows {
            Some("rows")
        } else if self.bytes() >= p.max_bytes {
            Some("bytes")
        } else if now.saturating_duration_since(self.opened_at) >= p.max_age {
            Some("age")
        } else if now.saturating_duration_since(self.written_at) >= p.inactivity {
            Some("inactivity")
        } else {
            None
        }
    }
}

#[derive(Default)]
struct OpenPartition {
    /// By partition directory (relative to the table).
    files: BTreeMap<String, OpenFile>,
    rows: usize,
}

pub struct Sink {
    layout: Layout,
    schema: Arc<OutputSchema>,
    props: WriterProperties,
    policy: RollingPolicy,
    partitioning: Partitioning,
    open: HashMap<PartitionId, OpenPartition>,
}

/// How the Parquet files are written, beyond the codec.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParquetSettings {
    /// Rows per row group (the writer closes a row group at this many rows).
    pub row_group_rows: Option<usize>,
    /// Dictionary encoding per column, over the defaults (on, but off for float columns).
    pub dictionary: Vec<(String, bool)>,
    /// `Page` (with the column and offset indexes readers use to skip pages), `Chunk`, `None`.
    pub statistics: EnabledStatistics,
    /// A codec per column, over the table's.
    pub codecs: Vec<(String, Compression)>,
}

/// Parquet settings: the codec, statistics and page indexes on, dictionaries off for the
/// `plain_columns` (floats, offsets, times: nearly every value distinct, so a dictionary only
/// costs) unless configured, and the writer's version and
/// configuration hash in the key-value metadata.
pub fn writer_properties(
    compression: Compression,
    plain_columns: &[&str],
    config_hash: &str,
    settings: &ParquetSettings,
) -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(compression)
        .set_statistics_enabled(settings.statistics)
        .set_key_value_metadata(Some(vec![
            KeyValue::new(
                "normlake.version".into(),
                env!("CARGO_PKG_VERSION").to_string(),
            ),
            KeyValue::new("normlake.config_hash".into(), config_hash.to_string()),
        ]));
    if let Some(rows) = settings.row_group_rows {
        b = b.set_max_row_group_row_count(Some(rows.max(1)));
    }
    for c in plain_columns {
        b = b.set_column_dictionary_enabled(ColumnPath::from(*c), false);
    }
    for (c, on) in &settings.dictionary {
        b = b.set_column_dictionary_enabled(ColumnPath::from(c.as_str()), *on);
    }
    for (c, codec) in &settings.codecs {
        b = b.set_column_compression(ColumnPath::from(c.as_str()), *codec);
    }
    b.build()
}

impl Sink {
    /// A sink writing `table` into `layout`.
    pub fn new(layout: Layout, table: &Table) -> Sink {
        Sink {
            layout,
            schema: table.schema.clone(),
            props: table.props.clone(),
            policy: table.rolling,
            partitioning: table.partitioning.clone(),
            open: HashMap::new(),
        }
    }

    /// Append rows of one input partition, split into hour partitions.
    pub fn append(
        &mut self,
        stream: &Arc<str>,
        partition: i32,
        out: &OutRows,
        now: Instant,
    ) -> Result<(), SinkError> {
        let rows = out.events();
        if rows.is_empty() {
            return Ok(());
        }
        let arrow_err = |source| SinkError::Arrow {
            stream: stream.to_string(),
            partition,
            source,
        };
        let batch = self
            .schema
            .build(stream, partition, out)
            .map_err(arrow_err)?;
        let routed = Partitioner(&self.partitioning).route(rows);
        let mut open = self
            .open
            .remove(&(stream.clone(), partition))
            .unwrap_or_default();
        let written =
            self.write_routed((stream, partition), (&batch, rows), routed, &mut open, now);
        if written.is_ok() {
            open.rows += rows.len();
        }
        self.open.insert((stream.clone(), partition), open);
        written
    }

    /// Write each directory's rows of `batch` into the partition's open file there, opening
    /// it if needed.
    fn write_routed(
        &self,
        (stream, partition): (&Arc<str>, i32),
        (batch, rows): (&RecordBatch, &[Event<RowMeta>]),
        routed: Vec<(String, Vec<u32>)>,
        open: &mut OpenPartition,
        now: Instant,
    ) -> Result<(), SinkError> {
        let arrow_err = |source| SinkError::Arrow {
            stream: stream.to_string(),
            partition,
            source,
        };
        let total = batch.num_rows();
        for (dir_name, idx) in routed {
            let part = if idx.len() == total {
                batch.clone()
            } else {
                let indices = UInt32Array::from(idx.clone());
                let cols = batch
                    .columns()
                    .iter()
                    .map(|c| arrow::compute::take(c, &indices, None))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(arrow_err)?;
                RecordBatch::try_new(batch.schema(), cols).map_err(arrow_err)?
            };
            let (first, last) = idx.iter().fold((i64::MAX, i64::MIN), |(lo, hi), &i| {
                let o = rows.get(i as usize).map_or(0, |e| e.seq);
                (lo.min(o), hi.max(o))
            });
            let file = match open.files.entry(dir_name) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => {
                    let f = self.open_file(stream, partition, v.key(), first, now)?;
                    v.insert(f)
                }
            };
            file.first = file.first.min(first);
            file.last = file.last.max(last);
            file.rows += idx.len();
            file.written_at = now;
            file.writer
                .write(&part)
                .map_err(|source| SinkError::Parquet {
                    path: file.tmp.clone(),
                    source,
                })?;
        }
        Ok(())
    }

    /// A new file of the input partition in a partition directory, under a hidden name.
    fn open_file(
        &self,
        stream: &Arc<str>,
        partition: i32,
        rel_dir: &str,
        first: i64,
        now: Instant,
    ) -> Result<OpenFile, SinkError> {
        let dir = format!("{}/{rel_dir}", self.layout.table_key());
        let after_complete = crate::lake::marker::is_marked(&self.layout, rel_dir)?;
        let name = format!("part-{stream}-{partition}-{first}");
        let pending = PendingFile::create(self.layout.store(), &dir, &name)?;
        let writer = ArrowWriter::try_new(
            pending.file,
            self.schema.schema().clone(),
            Some(self.props.clone()),
        )
        .map_err(|source| SinkError::Parquet {
            path: pending.path.clone(),
            source,
        })?;
        Ok(OpenFile {
            writer,
            tmp: pending.path,
            key: pending.key,
            dir,
            first,
            last: first,
            rows: 0,
            opened_at: now,
            written_at: now,
            after_complete,
        })
    }

    /// Estimated bytes buffered in the open writers: the in-progress row groups, encoded and
    /// not (`ArrowWriter::memory_size`, which already counts the encoded pages that
    /// `in_progress_size` estimates; adding both counted them twice).
    pub fn buffered_bytes(&self) -> usize {
        self.open
            .values()
            .flat_map(|o| o.files.values())
            .map(|f| f.writer.memory_size())
            .sum()
    }

    /// Under memory pressure: close the in-progress row group of every open file, writing it to
    /// the (still temporary) file. The files stay open; they only get smaller row groups.
    /// Returns the input partition that failed, with its error.
    pub fn flush_row_groups(&mut self) -> Result<(), (PartitionId, SinkError)> {
        for (key, open) in &mut self.open {
            for f in open.files.values_mut() {
                if f.writer.in_progress_rows() > 0 {
                    f.writer.flush().map_err(|source| {
                        (
                            key.clone(),
                            SinkError::Parquet {
                                path: f.tmp.clone(),
                                source,
                            },
                        )
                    })?;
                }
            }
        }
        Ok(())
    }

    /// Input partitions whose files are due to roll at `now`, with the reason. The caller
    /// passes the time (a timer tick when no data comes), so tests drive it with their own.
    pub fn due(&self, now: Instant) -> Vec<(PartitionId, &'static str)> {
        let mut due: Vec<(PartitionId, &'static str)> = self
            .open
            .iter()
            .filter_map(|(k, o)| {
                o.files
                    .values()
                    .find_map(|f| f.due(&self.policy, now))
                    .map(|why| (k.clone(), why))
            })
            .collect();
        // Over the cap: the partitions holding the oldest files roll until it is met.
        let open: usize = self.open.values().map(|o| o.files.len()).sum();
        if open > self.policy.max_open_files {
            let mut by_age: Vec<(Instant, &PartitionId, usize)> = self
                .open
                .iter()
                .map(|(k, o)| {
                    let oldest = o.files.values().map(|f| f.opened_at).min();
                    (oldest.unwrap_or(now), k, o.files.len())
                })
                .collect();
            by_age.sort_by_key(|(t, _, _)| *t);
            let mut closing: usize = due
                .iter()
                .filter_map(|(k, _)| self.open.get(k).map(|o| o.files.len()))
                .sum();
            for (_, k, n) in by_age {
                if open - closing <= self.policy.max_open_files {
                    break;
                }
                if !due.iter().any(|(d, _)| d == k) {
                    due.push((k.clone(), "open_files"));
                    closing += n;
                }
            }
        }
        due
    }

    /// Files open over every input partition.
    pub fn open_files(&self) -> usize {
        self.open.values().map(|o| o.files.len()).sum()
    }

    /// Drop the unpublished work of these input partitions (their temporary files too).
    pub fn abandon(&mut self, parts: &[PartitionId]) {
        for key in parts {
            if let Some(open) = self.open.remove(key) {
                for (_, f) in open.files {
                    drop(f.writer);
                    if let Err(e) = self.layout.store().discard(&f.key) {
                        tracing::warn!(path = %f.tmp.display(), error = %e, "cannot remove an abandoned temporary file");
                    }
                }
            }
        }
    }

    /// Close and seal every open file of one input partition, named for its `lineage`.
    pub fn seal(
        &mut self,
        stream: &Arc<str>,
        partition: i32,
        lineage: u32,
    ) -> Result<Sealed, SinkError> {
        let Some(open) = self.open.remove(&(stream.clone(), partition)) else {
            return Ok(Sealed::default());
        };
        let mut report = Sealed {
            rows: open.rows,
            ..Sealed::default()
        };
        for (_, f) in open.files {
            if f.after_complete {
                report.rows_after_complete += f.rows;
            }
            let dest = format!(
                "{}/{}",
                f.dir,
                Layout::file_name(stream, partition, lineage, f.first, f.last)
            );
            let file = f.writer.into_inner().map_err(|source| SinkError::Parquet {
                path: f.tmp.clone(),
                source,
            })?;
            report.bytes += file.metadata().map(|m| m.len()).unwrap_or(0);
            PendingFile::seal(self.layout.store(), file, &f.key)?;
            report.files.push((f.key, dest));
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests;
