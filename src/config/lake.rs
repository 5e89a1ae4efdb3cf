//! `[lake]` and its sub-sections: where the table goes and how it is written, partitioned,
//! rolled and marked complete.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

use super::{ByteSize, Collector, HumanDuration, RESERVED_COLUMNS, defaults};
use crate::decode::{InputSpec, PassType, column_name};
use crate::lake::partition::{PartitionSpecError, Partitioning};
use crate::lake::store::S3Options;

/// Parquet compression codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Zstd(i32),
    Snappy,
    Lz4,
    Uncompressed,
}

impl<'de> Deserialize<'de> for Codec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let lower = s.to_ascii_lowercase();
        let bad = || {
            serde::de::Error::custom(format!(
                "`{s}` is not a codec: use zstd, zstd(1..22), snappy, lz4 or none"
            ))
        };
        match lower.as_str() {
            "zstd" => Ok(Codec::Zstd(defaults::ZSTD_LEVEL)),
            "snappy" => Ok(Codec::Snappy),
            "lz4" => Ok(Codec::Lz4),
            "none" | "uncompressed" => Ok(Codec::Uncompressed),
            _ => {
                let level = lower
                    .strip_prefix("zstd(")
                    .and_then(|r| r.strip_suffix(')'))
                    .and_then(|l| l.trim().parse::<i32>().ok())
                    .filter(|l| (1..=22).contains(l))
                    .ok_or_else(bad)?;
                Ok(Codec::Zstd(level))
            }
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollingConfig {
    /// Close a file after this many rows …
    #[serde(default = "defaults::max_rows")]
    pub max_rows: usize,
    /// … or this many bytes …
    #[serde(default = "defaults::max_bytes")]
    pub max_bytes: ByteSize,
    /// … or once its first row is this old (wall clock) …
    #[serde(default = "defaults::max_age")]
    pub max_age: HumanDuration,
    /// … or when no row came for this long.
    #[serde(default = "defaults::inactivity")]
    pub inactivity: HumanDuration,
    /// Files open at once; over it, the oldest file's Kafka partition rolls.
    #[serde(default = "defaults::max_open_files")]
    pub max_open_files: usize,
}

impl Default for RollingConfig {
    fn default() -> Self {
        RollingConfig {
            max_rows: defaults::max_rows(),
            max_bytes: defaults::max_bytes(),
            max_age: defaults::max_age(),
            inactivity: defaults::inactivity(),
            max_open_files: defaults::max_open_files(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LakeConfig {
    /// Directory (or `file://` URI) holding the tables.
    pub root: String,
    pub table: String,
    /// Keep the raw feature values as columns next to the normalized ones.
    #[serde(default = "defaults::yes")]
    pub keep_raw: bool,
    #[serde(default = "defaults::codec")]
    pub compression: Codec,
    #[serde(default)]
    pub rolling: RollingConfig,
    #[serde(default)]
    pub partitioning: PartitioningSection,
    #[serde(default)]
    pub parquet: ParquetSection,
    #[serde(default)]
    pub success_marker: SuccessMarkerSection,
    #[serde(default)]
    pub compaction: CompactionSection,
    /// Connection settings when `root` is `s3://bucket[/prefix]`.
    #[serde(default)]
    pub s3: S3Options,
    /// Register the table and its partitions in a Hive Metastore.
    pub metastore: Option<super::MetastoreSection>,
}

impl LakeConfig {
    /// Where the table lives, opened.
    pub fn layout(&self) -> Result<crate::lake::Layout, crate::lake::LakeError> {
        crate::lake::Layout::open(&self.root, &self.table, &self.s3)
    }
}

/// `[lake.compaction]`: what `normlake compact` aims at.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompactionSection {
    /// Size of a merged file; files under ¾ of it are merged.
    #[serde(default = "defaults::max_bytes")]
    pub target_size: ByteSize,
}

impl Default for CompactionSection {
    fn default() -> Self {
        CompactionSection {
            target_size: defaults::max_bytes(),
        }
    }
}

/// `[lake.success_marker]`: `_SUCCESS` in a partition once the lake's watermark has passed it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuccessMarkerSection {
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    /// How long after a partition's end the watermark must be.
    #[serde(default = "defaults::no_delay")]
    pub delay: HumanDuration,
}

impl Default for SuccessMarkerSection {
    fn default() -> Self {
        SuccessMarkerSection {
            enabled: true,
            delay: defaults::no_delay(),
        }
    }
}

/// `[lake.parquet]`: how files are written beyond the codec.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetSection {
    /// Rows per row group (default: the writer's 1,048,576).
    pub row_group_rows: Option<usize>,
    /// Dictionary encoding per column (default: on, off for float columns).
    #[serde(default)]
    pub dictionary: BTreeMap<String, bool>,
    /// `page` (statistics per page with the page index), `chunk` or `none`.
    #[serde(default)]
    pub statistics: StatisticsLevel,
    /// The codec of the normalized float columns (`<column>`, `_center`, `_scale`): nearly
    /// every value is distinct, zstd shrinks them by 4-7% for a third of the encoding time, so
    /// by default they are not compressed. `lake.compression` covers every other column.
    #[serde(default = "defaults::normalized_codec")]
    pub normalized_codec: Codec,
    /// A codec per column, over both of the above.
    #[serde(default)]
    pub codecs: BTreeMap<String, Codec>,
}

impl Default for ParquetSection {
    fn default() -> Self {
        ParquetSection {
            row_group_rows: None,
            dictionary: BTreeMap::new(),
            statistics: StatisticsLevel::default(),
            normalized_codec: defaults::normalized_codec(),
            codecs: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StatisticsLevel {
    #[default]
    Page,
    Chunk,
    None,
}

/// `[lake.partitioning]`: the Hive partition path of a row.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitioningSection {
    /// `/`-separated `column=strftime` segments of the event time (`%Y %m %d %H %M`); empty
    /// for no time partitions.
    #[serde(default = "defaults::time_partitions")]
    pub time: String,
    /// IANA time zone the time segments are written in.
    #[serde(default = "defaults::time_zone")]
    pub time_zone: String,
    /// Pass-through fields that partition the table after the time segments (`site=…`).
    #[serde(default)]
    pub fields: Vec<String>,
}

impl Default for PartitioningSection {
    fn default() -> Self {
        PartitioningSection {
            time: defaults::time_partitions(),
            time_zone: defaults::time_zone(),
            fields: Vec::new(),
        }
    }
}

/// The table's partitioning; partition fields must be pass-through fields, and the decoder
/// learns which ones they are (their values must fit a path segment).
pub(super) fn build_partitioning(
    p: &PartitioningSection,
    input: &mut InputSpec,
    c: &mut Collector,
) -> Option<Partitioning> {
    let mut fields = Vec::new();
    for f in &p.fields {
        let found = input
            .passthrough
            .iter()
            .position(|x| x.path == *f || x.column() == *f);
        match found.map(|i| (i, &input.passthrough[i])) {
            Some((i, x)) if x.kind == PassType::String => fields.push((x.column(), i)),
            Some((_, x)) => c.err(
                "lake.partitioning.fields",
                format!(
                    "`{f}` is a {} pass-through field; a partition field must be a string",
                    x.kind.as_str()
                ),
            ),
            None => c.err(
                "lake.partitioning.fields",
                format!("`{f}` is not one of input.passthrough"),
            ),
        }
    }
    input.partition_fields = fields.iter().map(|(_, i)| *i).collect();
    // Columns of the files: a time partition column must not share a name with one.
    let columns_in_files: Vec<String> = RESERVED_COLUMNS
        .iter()
        .map(|c| c.to_string())
        .chain(input.features.iter().map(|f| column_name(f)))
        .chain(
            input
                .passthrough
                .iter()
                .enumerate()
                .filter(|(i, _)| !input.partition_fields.contains(i))
                .map(|(_, x)| x.column()),
        )
        .collect();
    // The pattern and the zone are checked apart, so that both mistakes are reported.
    let pattern = Partitioning::new(&p.time, "UTC", Vec::new());
    if p.time_zone.parse::<chrono_tz::Tz>().is_err()
        && let Err(e) = Partitioning::new("", &p.time_zone, Vec::new())
    {
        c.err("lake.partitioning.time_zone", e.to_string());
        if let Err(e) = pattern {
            c.err("lake.partitioning.time", e.to_string());
        }
        return None;
    }
    match Partitioning::new(&p.time, &p.time_zone, fields) {
        Ok(built) => {
            let time_columns = built.columns().len() - p.fields.len().min(built.columns().len());
            for col in built.columns().iter().take(time_columns) {
                if columns_in_files.contains(col) {
                    c.err(
                        "lake.partitioning.time",
                        format!("partition column `{col}` is also a column of the files"),
                    );
                }
            }
            Some(built)
        }
        Err(e) => {
            let field = match e {
                PartitionSpecError::Zone(_) => "lake.partitioning.time_zone",
                PartitionSpecError::Duplicate(_) => "lake.partitioning.fields",
                _ => "lake.partitioning.time",
            };
            c.err(field, e.to_string());
            None
        }
    }
}

pub(super) fn validate_lake(l: &LakeConfig, c: &mut Collector) {
    if l.root.trim().is_empty() {
        c.err("lake.root", "must not be empty");
    }
    validate_s3(l, c);
    if l.compaction.target_size.0 < 1 << 20 {
        c.err("lake.compaction.target_size", "must be at least 1MiB");
    }
    let t = &l.table;
    if t.is_empty() || !t.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_') {
        c.err(
            "lake.table",
            "must be a non-empty name of letters, digits and underscores",
        );
    }
    if l.rolling.max_rows == 0 {
        c.err("lake.rolling.max_rows", "must be at least 1");
    }
    if l.rolling.max_age.0.is_zero() {
        c.err("lake.rolling.max_age", "must be longer than zero");
    }
    if l.rolling.inactivity.0.is_zero() {
        c.err("lake.rolling.inactivity", "must be longer than zero");
    }
    if l.rolling.max_bytes.0 < 1 << 20 {
        c.err("lake.rolling.max_bytes", "must be at least 1MiB");
    }
    if l.parquet.row_group_rows == Some(0) {
        c.err("lake.parquet.row_group_rows", "must be at least 1");
    }
    if l.rolling.max_open_files == 0 {
        c.err("lake.rolling.max_open_files", "must be at least 1");
    }
    super::metastore::validate_metastore(l, c);
}

fn validate_s3(l: &LakeConfig, c: &mut Collector) {
    let s3 = &l.s3;
    let Some(rest) = l.root.strip_prefix("s3://") else {
        let set = s3.endpoint.is_some()
            || s3.access_key_id.is_some()
            || s3.secret_access_key.is_some()
            || s3.ca_certificate.is_some();
        if set {
            c.err("lake.s3", "is set, but lake.root is not an s3:// URI");
        }
        if l.root.contains("://") && !l.root.starts_with("file://") {
            c.err(
                "lake.root",
                "must be a directory, a file:// URI or an s3:// URI",
            );
        }
        return;
    };
    let bucket = rest.split('/').next().unwrap_or("");
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-' || ch == '.');
    if !valid_bucket {
        c.err(
            "lake.root",
            format!("s3:// needs a bucket name of 3-63 lowercase letters, digits, '-' or '.': {bucket:?}"),
        );
    }
    if s3.secret_access_key.is_some() != s3.access_key_id.is_some() {
        c.err(
            "lake.s3.secret_access_key",
            "access_key_id and secret_access_key go together (or both come from the environment)",
        );
    }
    if let Some(e) = &s3.endpoint {
        if e.starts_with("http://") && !s3.allow_http {
            c.err(
                "lake.s3.endpoint",
                "is plain http://: set lake.s3.allow_http = true, or use https://",
            );
        } else if !e.starts_with("http://") && !e.starts_with("https://") {
            c.err(
                "lake.s3.endpoint",
                "must start with https:// (or http:// with allow_http)",
            );
        }
    }
    if let Some(ca) = &s3.ca_certificate
        && !ca.is_file()
    {
        c.err(
            "lake.s3.ca_certificate",
            format!("{} is not a readable file", ca.display()),
        );
    }
}
