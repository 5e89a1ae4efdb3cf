//! The output table's Arrow schema (spec §5) and the columnar building of record batches from
//! normalized rows.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int32Array, Int64Builder, RecordBatch, StringArray,
    StringBuilder, TimestampMicrosecondArray, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;

use crate::decode::{PassType, PassValue};
use crate::normalize::{Emitted, FeatureValue, Slot};

/// What the sink needs of an event beyond what the engine keeps.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RowMeta {
    pub passthrough: Vec<PassValue>,
    /// When the source first saw the record (Unix ms), for latency figures.
    pub received_ms: i64,
    /// The Kafka record's timestamp (Unix ms), for latency figures.
    pub kafka_ms: Option<i64>,
}

/// Emitted rows as the sink receives them.
pub type OutRows = Emitted<RowMeta>;

/// Column names and types of the table, fixed by the configuration.
#[derive(Debug, Clone)]
pub struct OutputSchema {
    schema: SchemaRef,
    features: Vec<String>,
    /// Pass-through columns of the files: (index among the pass-through fields, name, type).
    /// Fields that partition the table are path segments, not columns.
    passthrough: Vec<(usize, String, PassType)>,
    keep_raw: bool,
    slots: Vec<Slot>,
}

pub const UTC: &str = "UTC";

impl OutputSchema {
    pub fn new(
        features: Vec<String>,
        passthrough: Vec<(usize, String, PassType)>,
        keep_raw: bool,
        slots: Vec<Slot>,
    ) -> Self {
        let mut fields = vec![
            Field::new("key", DataType::Utf8, false),
            Field::new(
                "event_time",
                DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
                false,
            ),
            Field::new("kafka_topic", DataType::Utf8, false),
            Field::new("kafka_partition", DataType::Int32, false),
            Field::new("kafka_offset", DataType::Int64, false),
        ];
        for (_, p, kind) in &passthrough {
            fields.push(Field::new(p, pass_type(*kind), true));
        }
        for (fi, f) in features.iter().enumerate() {
            if keep_raw {
                fields.push(Field::new(f, DataType::Float64, true));
            }
            for s in slots.iter().filter(|s| s.feature == fi) {
                let c = &s.column;
                fields.push(Field::new(c, DataType::Float64, true));
                fields.push(Field::new(format!("{c}_center"), DataType::Float64, true));
                fields.push(Field::new(format!("{c}_scale"), DataType::Float64, true));
                // Nullable although always set: a column a configuration adds is null in the
                // files written before it, and readers merge the schemas as optional.
                fields.push(Field::new(format!("{c}_n"), DataType::Int64, true));
                fields.push(Field::new(format!("{c}_status"), DataType::Utf8, true));
            }
        }
        OutputSchema {
            schema: Arc::new(Schema::new(fields)),
            features,
            passthrough,
            keep_raw,
            slots,
        }
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// `(column, Hive type)` for every column of the files, in file order.
    pub fn hive_columns(&self) -> Vec<(String, &'static str)> {
        self.schema
            .fields()
            .iter()
            .map(|f| {
                let t = match f.data_type() {
                    DataType::Utf8 => "STRING",
                    DataType::Timestamp(..) => "TIMESTAMP",
                    DataType::Int32 => "INT",
                    DataType::Int64 => "BIGINT",
                    DataType::Float64 => "DOUBLE",
                    DataType::Boolean => "BOOLEAN",
                    _ => "BINARY",
                };
                (f.name().clone(), t)
            })
            .collect()
    }

    /// Names of the columns whose values are nearly all distinct, where a dictionary only
    /// costs (hashing every value until the dictionary overflows) and space: the float
    /// feature columns (raw values and normalized outputs), the Kafka offset and the event
    /// time.
    pub fn plain_columns(&self) -> impl Iterator<Item = &str> {
        self.schema
            .fields()
            .iter()
            .filter(|f| {
                f.data_type() == &DataType::Float64
                    || matches!(f.name().as_str(), "kafka_offset" | "event_time")
            })
            .map(|f| f.name().as_str())
    }

    /// Names of the normalized float columns (value, center, scale of every normalization):
    /// nearly incompressible, so they take a codec of their own.
    pub fn normalized_columns(&self) -> impl Iterator<Item = String> + '_ {
        self.slots.iter().flat_map(|s| {
            let c = &s.column;
            [c.clone(), format!("{c}_center"), format!("{c}_scale")]
        })
    }

    /// Whether the files have a column of this name.
    pub fn has_column(&self, name: &str) -> bool {
        self.schema.field_with_name(name).is_ok()
    }

    /// Build one record batch from rows of one stream partition.
    pub fn build(
        &self,
        stream: &str,
        partition: i32,
        out: &OutRows,
    ) -> Result<RecordBatch, ArrowError> {
        let rows = out.events();
        let n = rows.len();
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        let key_bytes: usize = rows.iter().map(|r| r.key.len()).sum();
        let mut keys = StringBuilder::with_capacity(n, key_bytes);
        for r in rows {
            keys.append_value(&r.key);
        }
        cols.push(Arc::new(keys.finish()));
        let times: TimestampMicrosecondArray = rows
            .iter()
            .map(|r| Some(r.ts_ms.saturating_mul(1000)))
            .collect();
        cols.push(Arc::new(times.with_timezone(UTC)));
        cols.push(Arc::new(StringArray::from_iter_values(
            std::iter::repeat_n(stream, n),
        )));
        cols.push(Arc::new(Int32Array::from(vec![partition; n])));
        let mut offsets = Int64Builder::with_capacity(n);
        offsets.extend(rows.iter().map(|r| Some(r.seq)));
        cols.push(Arc::new(offsets.finish()));
        for &(pi, _, kind) in &self.passthrough {
            let values = rows.iter().map(|r| r.payload.passthrough.get(pi));
            cols.push(pass_column(kind, values, n));
        }
        for fi in 0..self.features.len() {
            if self.keep_raw {
                let mut b = Float64Builder::with_capacity(n);
                for r in rows {
                    b.append_option(match r.features.get(fi) {
                        Some(FeatureValue::Value(x)) => Some(*x),
                        _ => None,
                    });
                }
                cols.push(Arc::new(b.finish()));
            }
            for (si, _) in self
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.feature == fi)
            {
                result_columns(out, si, &mut cols);
            }
        }
        RecordBatch::try_new(self.schema.clone(), cols)
    }
}

/// The Arrow type of a pass-through column.
fn pass_type(kind: PassType) -> DataType {
    match kind {
        PassType::String => DataType::Utf8,
        PassType::Int64 => DataType::Int64,
        PassType::Float64 => DataType::Float64,
        PassType::Bool => DataType::Boolean,
        PassType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
    }
}

/// One pass-through column. A value of another type than the column's (`Invalid`, or one a
/// checkpoint kept from before the column's type changed) is null.
fn pass_column<'a>(
    kind: PassType,
    values: impl Iterator<Item = Option<&'a PassValue>>,
    n: usize,
) -> ArrayRef {
    match kind {
        PassType::String => {
            let mut b = StringBuilder::with_capacity(n, n * 8);
            values.for_each(|v| b.append_option(v.and_then(PassValue::as_str)));
            Arc::new(b.finish())
        }
        PassType::Int64 => {
            let mut b = Int64Builder::with_capacity(n);
            values.for_each(|v| b.append_option(v.and_then(as_int)));
            Arc::new(b.finish())
        }
        PassType::Float64 => {
            let mut b = Float64Builder::with_capacity(n);
            values.for_each(|v| b.append_option(v.and_then(as_float)));
            Arc::new(b.finish())
        }
        PassType::Bool => {
            let mut b = BooleanBuilder::with_capacity(n);
            values.for_each(|v| b.append_option(v.and_then(as_bool)));
            Arc::new(b.finish())
        }
        PassType::Timestamp => {
            let mut b = TimestampMicrosecondBuilder::with_capacity(n).with_timezone(UTC);
            values.for_each(|v| b.append_option(v.and_then(as_micros)));
            Arc::new(b.finish())
        }
    }
}

fn as_int(v: &PassValue) -> Option<i64> {
    match v {
        PassValue::Int(i) => Some(*i),
        _ => None,
    }
}

fn as_float(v: &PassValue) -> Option<f64> {
    match v {
        PassValue::Float(f) => Some(*f),
        _ => None,
    }
}

fn as_bool(v: &PassValue) -> Option<bool> {
    match v {
        PassValue::Bool(b) => Some(*b),
        _ => None,
    }
}

fn as_micros(v: &PassValue) -> Option<i64> {
    match v {
        PassValue::Micros(t) => Some(*t),
        _ => None,
    }
}

/// The five columns of one normalization slot: y, center, scale, n and status.
fn result_columns(out: &OutRows, si: usize, cols: &mut Vec<ArrayRef>) {
    let n = out.events().len();
    let mut y = Float64Builder::with_capacity(n);
    let mut c = Float64Builder::with_capacity(n);
    let mut s = Float64Builder::with_capacity(n);
    let mut cnt = Int64Builder::with_capacity(n);
    let mut st = StringBuilder::with_capacity(n, n * 2);
    for i in 0..n {
        match out.results(i).get(si) {
            Some(res) => {
                y.append_option(res.y());
                c.append_option(res.center());
                s.append_option(res.scale());
                cnt.append_value(i64::try_from(res.n).unwrap_or(i64::MAX));
                st.append_value(res.status.as_str());
            }
            None => {
                y.append_null();
                c.append_null();
                s.append_null();
                cnt.append_value(0);
                st.append_value("missing");
            }
        }
    }
    cols.push(Arc::new(y.finish()));
    cols.push(Arc::new(c.finish()));
    cols.push(Arc::new(s.finish()));
    cols.push(Arc::new(cnt.finish()));
    cols.push(Arc::new(st.finish()));
}
