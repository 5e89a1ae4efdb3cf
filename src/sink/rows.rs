//! The output table's Arrow schema (spec §5) and the columnar building of record batches from
//! normalized rows.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int32Array, Int64Array, Int64Builder, RecordBatch,
    StringArray, StringBuilder, TimestampMicrosecondArray, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;

use crate::decode::{PassType, PassValue};
use crate::normalize::{Emitted, FeatureValue, Slot, SlotResult};

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

/// One of the five columns a normalization writes per feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Output {
    /// The normalized value, in the column named after the slot.
    Y,
    Center,
    Scale,
    N,
    Status,
}

impl Output {
    /// All five, in file order.
    pub const ALL: [Output; 5] = [
        Output::Y,
        Output::Center,
        Output::Scale,
        Output::N,
        Output::Status,
    ];

    /// Its name in `outputs = [...]`.
    pub fn name(self) -> &'static str {
        match self {
            Output::Y => "y",
            Output::Center => "center",
            Output::Scale => "scale",
            Output::N => "n",
            Output::Status => "status",
        }
    }

    /// The column of this output for the slot column `c`.
    pub fn column(self, c: &str) -> String {
        match self {
            Output::Y => c.to_string(),
            Output::Center => format!("{c}_center"),
            Output::Scale => format!("{c}_scale"),
            Output::N => format!("{c}_n"),
            Output::Status => format!("{c}_status"),
        }
    }

    fn data_type(self) -> DataType {
        match self {
            Output::Y | Output::Center | Output::Scale => DataType::Float64,
            Output::N => DataType::Int64,
            Output::Status => DataType::Utf8,
        }
    }
}

/// The outputs a normalization writes (`outputs = [...]`), always in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Outputs(u8);

impl Outputs {
    pub const ALL: Outputs = Outputs(0b1_1111);

    pub fn of(chosen: impl IntoIterator<Item = Output>) -> Self {
        Outputs(chosen.into_iter().fold(0, |m, o| m | Self::bit(o)))
    }

    fn bit(o: Output) -> u8 {
        1 << Output::ALL.iter().position(|a| *a == o).unwrap_or(0)
    }

    pub fn iter(self) -> impl Iterator<Item = Output> {
        Output::ALL
            .into_iter()
            .filter(move |o| self.0 & Self::bit(*o) != 0)
    }
}

impl Default for Outputs {
    fn default() -> Self {
        Outputs::ALL
    }
}

/// Column names and types of the table, fixed by the configuration.
#[derive(Debug, Clone)]
pub struct OutputSchema {
    schema: SchemaRef,
    features: Vec<String>,
    /// Pass-through columns of the files: (index among the pass-through fields, name, type).
    /// Fields that partition the table are path segments, not columns.
    passthrough: Vec<(usize, String, PassType)>,
    keep_raw: bool,
    /// Every normalization slot with the outputs it writes.
    slots: Vec<(Slot, Outputs)>,
}

pub const UTC: &str = "UTC";

impl OutputSchema {
    pub fn new(
        features: Vec<String>,
        passthrough: Vec<(usize, String, PassType)>,
        keep_raw: bool,
        slots: Vec<(Slot, Outputs)>,
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
            for (s, outputs) in slots.iter().filter(|(s, _)| s.feature == fi) {
                // Nullable, `n` and `status` too although always set: a column a configuration
                // adds is null in the files written before it, and readers merge the schemas
                // as optional.
                fields.extend(
                    outputs
                        .iter()
                        .map(|o| Field::new(o.column(&s.column), o.data_type(), true)),
                );
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
        self.slots.iter().flat_map(|(s, outputs)| {
            (outputs.iter())
                .filter(|o| o.data_type() == DataType::Float64)
                .map(|o| o.column(&s.column))
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
            for (si, (_, outputs)) in self
                .slots
                .iter()
                .enumerate()
                .filter(|(_, (s, _))| s.feature == fi)
            {
                cols.extend(outputs.iter().map(|o| result_column(out, si, o)));
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

/// One output column of normalization slot `si`. A row without a result for the slot (not
/// expected; kept total) reads as missing.
fn result_column(out: &OutRows, si: usize, output: Output) -> ArrayRef {
    let n = out.events().len();
    let results = (0..n).map(|i| out.results(i).get(si));
    let floats = |value: fn(&SlotResult) -> Option<f64>| -> ArrayRef {
        let mut b = Float64Builder::with_capacity(n);
        results
            .clone()
            .for_each(|r| b.append_option(r.and_then(value)));
        Arc::new(b.finish())
    };
    match output {
        Output::Y => floats(SlotResult::y),
        Output::Center => floats(SlotResult::center),
        Output::Scale => floats(SlotResult::scale),
        Output::N => {
            Arc::new(Int64Array::from_iter_values(results.clone().map(|r| {
                r.map_or(0, |r| i64::try_from(r.n).unwrap_or(i64::MAX))
            })))
        }
        Output::Status => {
            let mut b = StringBuilder::with_capacity(n, n * 2);
            results.for_each(|r| b.append_value(r.map_or("missing", |r| r.status.as_str())));
            Arc::new(b.finish())
        }
    }
}
