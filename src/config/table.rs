//! The output table a configuration describes (`sink::Table`): its columns, its Parquet
//! settings with the fingerprint recorded in every file, its partitioning and rolling.

use std::sync::Arc;

use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::EnabledStatistics;

use super::{Codec, Collector, Config, StatisticsLevel};
use crate::sink::{OutputSchema, ParquetSettings, RollingPolicy, Table, writer_properties};

impl Config {
    /// The table this configuration writes.
    pub fn table(&self) -> Table {
        let schema = Arc::new(output_schema(self));
        let plain: Vec<&str> = schema.plain_columns().collect();
        let props = writer_properties(
            compression(self.lake.compression),
            &plain,
            &config_hash(self),
            &parquet_settings(self, &schema),
        );
        let r = &self.lake.rolling;
        Table {
            name: self.lake.table.clone(),
            props,
            schema,
            partitioning: self.partitioning.clone(),
            rolling: RollingPolicy {
                max_rows: r.max_rows,
                max_bytes: r.max_bytes.0,
                max_age: r.max_age.0,
                inactivity: r.inactivity.0,
                max_open_files: r.max_open_files,
            },
        }
    }
}

fn compression(codec: Codec) -> Compression {
    match codec {
        Codec::Zstd(l) => Compression::ZSTD(ZstdLevel::try_new(l).unwrap_or_default()),
        Codec::Snappy => Compression::SNAPPY,
        Codec::Lz4 => Compression::LZ4_RAW,
        Codec::Uncompressed => Compression::UNCOMPRESSED,
    }
}

/// Every column named in `[lake.parquet]` must be a column of the table.
pub(super) fn check_parquet_columns(cfg: &Config, c: &mut Collector) {
    let schema = output_schema(cfg);
    let p = &cfg.lake.parquet;
    let named = (p.dictionary.keys().map(|k| ("dictionary", k)))
        .chain(p.codecs.keys().map(|k| ("codecs", k)));
    for (section, column) in named {
        if !schema.has_column(column) {
            c.err(
                format!("lake.parquet.{section}.{column}"),
                "is not a column of the table",
            );
        }
    }
}

/// The configured Parquet settings: the codec of each normalized float column, then the
/// columns configured one by one.
fn parquet_settings(cfg: &Config, schema: &OutputSchema) -> ParquetSettings {
    let p = &cfg.lake.parquet;
    let normalized = compression(p.normalized_codec);
    let codecs = (schema.normalized_columns().map(|c| (c, normalized)))
        .chain(p.codecs.iter().map(|(c, k)| (c.clone(), compression(*k))))
        .collect();
    ParquetSettings {
        row_group_rows: p.row_group_rows,
        dictionary: p
            .dictionary
            .iter()
            .map(|(c, on)| (c.clone(), *on))
            .collect(),
        statistics: match p.statistics {
            StatisticsLevel::Page => EnabledStatistics::Page,
            StatisticsLevel::Chunk => EnabledStatistics::Chunk,
            StatisticsLevel::None => EnabledStatistics::None,
        },
        codecs,
    }
}

/// The table's columns for a configuration.
fn output_schema(cfg: &Config) -> OutputSchema {
    let partition_fields: Vec<usize> = cfg.partitioning.field_indexes().collect();
    OutputSchema::new(
        cfg.plan.features.clone(),
        cfg.input
            .passthrough
            .iter()
            .enumerate()
            .filter(|(i, _)| !partition_fields.contains(i))
            .map(|(i, p)| (i, p.column(), p.kind))
            .collect(),
        cfg.lake.keep_raw,
        (cfg.plan.slots().into_iter())
            .map(|s| {
                let outputs = cfg.outputs.of(&s);
                (s, outputs)
            })
            .collect(),
    )
}

/// A short, stable fingerprint of what shapes the output (recorded in every Parquet file).
fn config_hash(cfg: &Config) -> String {
    use sha2::Digest;
    // Every output by default hashes as before `outputs` existed.
    let outputs = match cfg.outputs.all_default() {
        true => String::new(),
        false => format!("|{:?}", cfg.outputs),
    };
    let text = format!(
        "{:?}|{:?}|{}|{:?}{outputs}",
        cfg.input, cfg.plan, cfg.lake.keep_raw, cfg.partitioning
    );
    let digest = sha2::Sha256::digest(text.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}
