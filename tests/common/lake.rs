//! Reading a lake back: every Parquet file of the table, and the dead letters.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::golden::{DeadLetters, Row, Rows};

pub fn batches(dir: &Path) -> Vec<(std::path::PathBuf, RecordBatch)> {
    let mut out = Vec::new();
    for path in normlake::lake::list_parquet(dir).expect("list lake") {
        let f = File::open(&path).expect("open parquet");
        for b in ParquetRecordBatchReaderBuilder::try_new(f)
            .expect("parquet")
            .build()
            .expect("reader")
        {
            out.push((path.clone(), b.expect("batch")));
        }
    }
    out
}

fn f64s(b: &RecordBatch, name: &str) -> Vec<Option<f64>> {
    let a = b
        .column_by_name(name)
        .unwrap_or_else(|| panic!("column {name}"))
        .as_primitive::<Float64Type>();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i)))
        .collect()
}

fn i32s(b: &RecordBatch, name: &str) -> arrow::array::Int32Array {
    b.column_by_name(name)
        .unwrap_or_else(|| panic!("column {name}"))
        .as_primitive::<Int32Type>()
        .clone()
}

fn i64s(b: &RecordBatch, name: &str) -> arrow::array::Int64Array {
    b.column_by_name(name)
        .unwrap_or_else(|| panic!("column {name}"))
        .as_primitive::<Int64Type>()
        .clone()
}

fn strings(b: &RecordBatch, name: &str) -> arrow::array::StringArray {
    b.column_by_name(name)
        .unwrap_or_else(|| panic!("column {name}"))
        .as_string::<i32>()
        .clone()
}

/// Rows of normalization `norm` for `features`, keyed like the golden files. Panics on a
/// duplicated (partition, offset, feature): the lake must hold every row once.
pub fn rows(table_dir: &Path, features: &[String], norm: &str) -> Rows {
    let mut rows = Rows::new();
    for (path, b) in batches(table_dir) {
        let part = i32s(&b, "kafka_partition");
        let off = i64s(&b, "kafka_offset");
        let key = strings(&b, "key");
        let ts = b
            .column_by_name("event_time")
            .expect("event_time")
            .as_primitive::<TimestampMicrosecondType>()
            .clone();
        for f in features {
            let c = format!("{f}_{norm}");
            let y = f64s(&b, &c);
            let center = f64s(&b, &format!("{c}_center"));
            let scale = f64s(&b, &format!("{c}_scale"));
            let n = i64s(&b, &format!("{c}_n"));
            let st = strings(&b, &format!("{c}_status"));
            for i in 0..b.num_rows() {
                let k = (part.value(i), off.value(i), f.clone());
                let row = Row {
                    key: key.value(i).to_string(),
                    ts_ms: ts.value(i) / 1000,
                    y: y[i],
                    center: center[i],
                    scale: scale[i],
                    n: n.value(i) as u64,
                    status: st.value(i).to_string(),
                };
                if rows.insert(k.clone(), row).is_some() {
                    panic!("duplicate row {k:?} (again in {})", path.display());
                }
            }
        }
    }
    rows
}

/// Dead letters: (partition, offset) → reason.
pub fn dead_letters(dir: &Path) -> DeadLetters {
    let mut out = DeadLetters::new();
    for (_, b) in batches(dir) {
        let part = i32s(&b, "kafka_partition");
        let off = i64s(&b, "kafka_offset");
        let reason = strings(&b, "reason");
        for i in 0..b.num_rows() {
            let k = (part.value(i), off.value(i));
            assert!(
                out.insert(k, reason.value(i).to_string()).is_none(),
                "duplicate dead letter {k:?}"
            );
        }
    }
    out
}

/// Row count per file path (to see that nothing new was written).
pub fn file_rows(dir: &Path) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (p, b) in batches(dir) {
        *out.entry(p.display().to_string()).or_default() += b.num_rows();
    }
    out
}
