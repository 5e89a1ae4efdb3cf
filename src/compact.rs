//! `normlake compact`: merge the small files of complete partitions into files near a target
//! size, without losing or repeating a row, safely beside a running job and safe to kill.
//!
//! Which files: only partitions marked complete (`_SUCCESS`: the lake's watermark has passed
//! them), never a file named by the newest commit record of an input partition (the job's
//! recovery may still publish it again), and only files smaller than ¾ of the target. Files of
//! one partition are grouped in name order until a group reaches the target; a group of one
//! file is left alone, so a second run over a compacted lake does nothing.
//!
//! One group is merged like a roll is committed:
//! 1. The merged file is written under a hidden temporary key in the partition
//!    (`.compact-<id>.tmp`) and made durable. Its row count is checked against the inputs'.
//! 2. A compaction record `<table>/_normlake/compact/<id>.json` names the inputs, the temporary
//!    key and the final name. **This is the commit point.**
//! 3. The merged file is published (rename, or copy on S3), the inputs are deleted, then the
//!    record.
//!
//! A run first finishes every record an interrupted run left (publish if still needed, delete
//! the inputs that remain, delete the record) and deletes temporary files no record names.
//! `<id>` is a hash of the partition and the input names, so repeating an interrupted merge
//! produces the same names. Files written before and after a schema change merge under the
//! union of their columns (new columns are nullable, as in the job's own schema evolution).
//!
//! Readers of a plain Hive directory list it: between publishing the merged file and deleting
//! its inputs (one rename and a few deletes) a listing may see both. That window cannot be
//! closed without a table format; it never outlives the run (or the next one, after a kill).

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, new_null_array};
use arrow::datatypes::{Schema, SchemaRef};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::lake::{LakeError, Layout, PendingFile};

/// What to compact.
#[derive(Debug, Clone)]
pub struct CompactOptions {
    /// Merged files aim at this size.
    pub target_bytes: u64,
    /// Partition directories relative to the table (`dt=…/hr=…`); empty: every complete one.
    pub partitions: Vec<String>,
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CompactReport {
    /// Merges an interrupted run had committed and this one finished.
    pub resumed: usize,
    pub partitions: usize,
    pub files_in: usize,
    pub files_out: usize,
    pub rows: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("{0}")]
    Commit(#[from] crate::lake::commit::CommitError),
    #[error("{key}: {source}")]
    Parquet {
        key: String,
        source: parquet::errors::ParquetError,
    },
    #[error("{key}: {source}")]
    Arrow {
        key: String,
        source: arrow::error::ArrowError,
    },
    #[error("compaction record {key} is unreadable: {message}")]
    Record { key: String, message: String },
    #[error(
        "partition {0} is not complete (no _SUCCESS): compaction never touches open partitions"
    )]
    Open(String),
    #[error("partition {0} holds no data files")]
    Unknown(String),
    #[error("merged file {key} holds {got} rows, its inputs {want}: nothing was published")]
    RowCount { key: String, got: u64, want: u64 },
}

/// The commit record of one merge.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct CompactionRecord {
    /// Keys of the merged files (deleted once the output is published).
    inputs: Vec<String>,
    /// The output's temporary and final keys.
    tmp: String,
    output: String,
    rows: u64,
}

fn records_dir(layout: &Layout) -> String {
    format!("{}/_normlake/compact", layout.table_key())
}

/// Compact the configured table.
pub fn compact(
    cfg: &Config,
    opts: &CompactOptions,
    mut progress: impl FnMut(&str),
) -> Result<CompactReport, CompactError> {
    let layout = cfg.lake.layout()?;
    let mut report = CompactReport {
        resumed: finish_interrupted(&layout)?,
        ..CompactReport::default()
    };
    if report.resumed > 0 {
        progress(&format!(
            "finished {} merges an interrupted run had committed",
            report.resumed
        ));
    }
    let dirs = layout.partition_dirs()?;
    for p in &opts.partitions {
        let p = p.trim_matches('/');
        match dirs.get(p) {
            Some(d) if !d.files.is_empty() => {
                if !d.complete {
                    return Err(CompactError::Open(p.to_string()));
                }
            }
            _ => return Err(CompactError::Unknown(p.to_string())),
        }
    }
    let protected = newest_committed_files(&layout)?;
    let wanted: BTreeSet<&str> = opts
        .partitions
        .iter()
        .map(|p| p.trim_matches('/'))
        .collect();
    let small = opts.target_bytes.saturating_mul(3) / 4;
    let props = cfg.table().props;
    for (dir, partition) in &dirs {
        if !partition.complete || (!wanted.is_empty() && !wanted.contains(dir.as_str())) {
            continue;
        }
        let candidates: Vec<&(String, u64)> = partition
            .files
            .iter()
            .filter(|(k, size)| *size < small && !protected.contains(k))
            .collect();
        let mut groups: Vec<Vec<&(String, u64)>> = Vec::new();
        let mut current: Vec<&(String, u64)> = Vec::new();
        let mut current_bytes = 0u64;
        for c in candidates {
            current_bytes += c.1;
            current.push(c);
            if current_bytes >= opts.target_bytes {
                groups.push(std::mem::take(&mut current));
                current_bytes = 0;
            }
        }
        groups.push(current);
        groups.retain(|g| g.len() >= 2);
        if groups.is_empty() {
            continue;
        }
        report.partitions += 1;
        for g in groups {
            let inputs: Vec<String> = g.iter().map(|(k, _)| k.clone()).collect();
            let (rows, bytes_out) = merge(&layout, dir, &inputs, &props)?;
            report.files_in += inputs.len();
            report.files_out += 1;
            report.rows += rows;
            report.bytes_in += g.iter().map(|(_, s)| s).sum::<u64>();
            report.bytes_out += bytes_out;
            progress(&format!(
                "{dir}: {} files merged into 1 ({rows} rows)",
                inputs.len()
            ));
        }
    }
    Ok(report)
}

/// Every file the newest commit record of some input partition names: recovery may publish
/// it again, so it must stay where the record says.
fn newest_committed_files(layout: &Layout) -> Result<BTreeSet<String>, CompactError> {
    Ok(crate::lake::commit::newest_records(layout)?
        .into_iter()
        .flat_map(|r| r.files.into_iter().map(|f| f.dest))
        .collect())
}

/// Finish what an interrupted run committed; delete what it had not. Returns the merges
/// finished.
fn finish_interrupted(layout: &Layout) -> Result<usize, CompactError> {
    let store = layout.store();
    let mut named = BTreeSet::new();
    let mut finished = 0;
    for key in store.list(&records_dir(layout))? {
        if !key.ends_with(".json") {
            continue;
        }
        let Some(bytes) = store.get(&key)? else {
            continue;
        };
        let rec: CompactionRecord =
            serde_json::from_slice(&bytes).map_err(|e| CompactError::Record {
                key: key.clone(),
                message: e.to_string(),
            })?;
        if store.exists(&rec.tmp)? {
            store.publish(&rec.tmp, &rec.output)?;
        }
        if !store.exists(&rec.output)? {
            return Err(CompactError::Record {
                key,
                message: format!("its output {} is neither published nor pending", rec.output),
            });
        }
        for input in &rec.inputs {
            store.delete(input)?;
        }
        named.insert(rec.tmp);
        store.delete(&key)?;
        finished += 1;
    }
    // Merged files written before their record: uncommitted, so deleted.
    for key in store.list(layout.table_key())? {
        let name = key.rsplit_once('/').map_or(key.as_str(), |(_, n)| n);
        if name.starts_with(".compact-") && name.ends_with(".tmp") && !named.contains(&key) {
            store.delete(&key)?;
            store.discard(&key)?;
        }
    }
    Ok(finished)
}

/// A short, stable id of a merge: its partition and inputs.
fn merge_id(dir: &str, inputs: &[String]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(dir.as_bytes());
    for i in inputs {
        h.update([0]);
        h.update(i.as_bytes());
    }
    h.finalize()
        .iter()
        .take(10)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Merge `inputs` (keys in the partition `dir`) into one published file. Returns its rows and
/// bytes.
fn merge(
    layout: &Layout,
    dir: &str,
    inputs: &[String],
    props: &parquet::file::properties::WriterProperties,
) -> Result<(u64, u64), CompactError> {
    let store = layout.store();
    let id = merge_id(dir, inputs);
    let dir_key = format!("{}/{dir}", layout.table_key());
    let (bodies, want_rows, merged) = read_inputs(layout, &dir_key, inputs)?;
    let pending = PendingFile::create(store, &dir_key, &format!("compact-{id}"))?;
    let tmp = pending.key.clone();
    let mut w = ArrowWriter::try_new(pending.file, merged.clone(), Some(props.clone()))
        .map_err(parquet_err(&tmp))?;
    let mut rows = 0u64;
    for (key, body) in inputs.iter().zip(bodies) {
        rows += copy_into(&mut w, &merged, key, body, &tmp)?;
    }
    let file = w.into_inner().map_err(parquet_err(&tmp))?;
    let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    if rows != want_rows {
        drop(file);
        store.discard(&tmp)?;
        return Err(CompactError::RowCount {
            key: tmp,
            got: rows,
            want: want_rows,
        });
    }
    PendingFile::seal(store, file, &tmp)?;
    let rec = CompactionRecord {
        inputs: inputs.to_vec(),
        tmp: tmp.clone(),
        output: format!("{dir_key}/part-compacted-{id}.parquet"),
        rows,
    };
    commit_merge(layout, &id, &rec)?;
    Ok((rows, bytes))
}

fn parquet_err(key: &str) -> impl Fn(parquet::errors::ParquetError) -> CompactError {
    let key = key.to_string();
    move |source| CompactError::Parquet {
        key: key.clone(),
        source,
    }
}

/// Every input's bytes, their rows, and the union of their columns (the merged schema).
fn read_inputs(
    layout: &Layout,
    dir_key: &str,
    inputs: &[String],
) -> Result<(Vec<Bytes>, u64, SchemaRef), CompactError> {
    let mut bodies = Vec::with_capacity(inputs.len());
    let mut want_rows = 0u64;
    let mut schemas = Vec::with_capacity(inputs.len());
    for key in inputs {
        let body = Bytes::from(
            layout
                .store()
                .get(key)?
                .ok_or_else(|| CompactError::Record {
                    key: key.clone(),
                    message: "listed, then gone: is another compaction running?".into(),
                })?,
        );
        let b = ParquetRecordBatchReaderBuilder::try_new(body.clone()).map_err(parquet_err(key))?;
        want_rows += b.metadata().file_metadata().num_rows() as u64;
        schemas.push(
            b.schema()
                .as_ref()
                .clone()
                .with_metadata(std::collections::HashMap::new()),
        );
        bodies.push(body);
    }
    let merged = Schema::try_merge(schemas).map_err(|source| CompactError::Arrow {
        key: dir_key.to_string(),
        source,
    })?;
    Ok((bodies, want_rows, Arc::new(merged)))
}

/// Copy one input's rows into the merged file, null-filling the columns it lacks.
fn copy_into(
    w: &mut ArrowWriter<std::fs::File>,
    merged: &SchemaRef,
    key: &str,
    body: Bytes,
    tmp: &str,
) -> Result<u64, CompactError> {
    let arrow_err = |source| CompactError::Arrow {
        key: key.to_string(),
        source,
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(body)
        .and_then(|b| b.build())
        .map_err(parquet_err(key))?;
    let mut rows = 0u64;
    for batch in reader {
        let batch = batch.map_err(arrow_err)?;
        let cols: Vec<ArrayRef> = merged
            .fields()
            .iter()
            .map(|f| {
                batch
                    .column_by_name(f.name())
                    .cloned()
                    .unwrap_or_else(|| new_null_array(f.data_type(), batch.num_rows()))
            })
            .collect();
        let out = RecordBatch::try_new(merged.clone(), cols).map_err(arrow_err)?;
        rows += out.num_rows() as u64;
        w.write(&out).map_err(parquet_err(tmp))?;
    }
    Ok(rows)
}

/// Write the merge's record (the commit point), then publish the merged file, delete the
/// inputs and the record.
fn commit_merge(layout: &Layout, id: &str, rec: &CompactionRecord) -> Result<(), CompactError> {
    let store = layout.store();
    let rec_key = format!("{}/{id}.json", records_dir(layout));
    let body = serde_json::to_vec_pretty(rec).map_err(|e| CompactError::Record {
        key: rec_key.clone(),
        message: e.to_string(),
    })?;
    store.put(&rec_key, body)?;
    // Committed: from here on an interruption is finished by the next run.
    store.publish(&rec.tmp, &rec.output)?;
    for input in &rec.inputs {
        store.delete(input)?;
    }
    store.delete(&rec_key)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::marker::SUCCESS;
    use arrow::array::{Array, AsArray, Float64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Float64Type};

    fn write(path: &std::path::Path, batch: &RecordBatch) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let f = std::fs::File::create(path).unwrap();
        let mut w = ArrowWriter::try_new(f, batch.schema(), None).unwrap();
        w.write(batch).unwrap();
        w.close().unwrap();
    }

    #[test]
    fn files_from_before_and_after_a_new_column_merge_under_the_union() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("t/dt=2026-11-26/hr=02");
        let old = Schema::new(vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("a", DataType::Float64, true),
        ]);
        let new = Schema::new(vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("a", DataType::Float64, true),
            Field::new("b", DataType::Float64, true),
        ]);
        let b1 = RecordBatch::try_new(
            Arc::new(old),
            vec![
                Arc::new(StringArray::from(vec!["k1", "k2"])),
                Arc::new(Float64Array::from(vec![1.0, 2.0])),
            ],
        )
        .unwrap();
        let b2 = RecordBatch::try_new(
            Arc::new(new),
            vec![
                Arc::new(StringArray::from(vec!["k3"])),
                Arc::new(Float64Array::from(vec![3.0])),
                Arc::new(Float64Array::from(vec![30.0])),
            ],
        )
        .unwrap();
        write(&part.join("part-s-0-0-1.parquet"), &b1);
        write(&part.join("part-s-0-2-2.parquet"), &b2);
        std::fs::write(part.join(SUCCESS), b"").unwrap();
        let text = format!(
            "[kafka]\nbrokers = \"b:9092\"\ntopics = [\"s\"]\n[input]\nkey_field = \"key\"\nfeatures = [\"a\"]\n[[normalize]]\nname = \"z\"\nmethod = \"zscore\"\nwindow = \"expanding\"\n[lake]\nroot = \"{}\"\ntable = \"t\"\n",
            dir.path().display()
        );
        let cfg = Config::from_toml(&text, vec![]).unwrap();
        let opts = CompactOptions {
            target_bytes: 1 << 20,
            partitions: vec![],
        };
        let r = compact(&cfg, &opts, |_| {}).unwrap();
        assert_eq!((r.files_in, r.files_out, r.rows), (2, 1, 3));
        let layout = Layout::new(dir.path().to_str().unwrap(), "t");
        let files = layout.table_files().unwrap();
        assert_eq!(files.len(), 1, "{files:?}");
        let f = std::fs::File::open(dir.path().join("t").join(&files[0])).unwrap();
        let batches: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(f)
            .unwrap()
            .build()
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let all = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        let b = all
            .column_by_name("b")
            .unwrap()
            .as_primitive::<Float64Type>();
        assert_eq!(b.null_count(), 2);
        assert_eq!(b.value(2), 30.0);
        let a = all
            .column_by_name("a")
            .unwrap()
            .as_primitive::<Float64Type>();
        assert_eq!(a.values().to_vec(), vec![1.0, 2.0, 3.0]);
        // A second run finds one file per partition: nothing to do.
        assert_eq!(
            compact(&cfg, &opts, |_| {}).unwrap(),
            CompactReport::default()
        );
    }
}
