//! What the table looks like for a configuration: its columns, its Parquet settings and the
//! fingerprint recorded in every file.

use parquet::file::properties::EnabledStatistics;

use crate::config::{Config, StatisticsLevel};
use crate::sink::{OutputSchema, ParquetSettings};

/// The configured Parquet settings, checked against the table's columns.
pub fn parquet_settings(cfg: &Config) -> ParquetSettings {
    let p = &cfg.lake.parquet;
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
    }
}

/// The table's columns for a configuration.
pub fn output_schema(cfg: &Config) -> OutputSchema {
    let partition_fields: Vec<usize> = cfg.partitioning.field_indexes().collect();
    OutputSchema::new(
        cfg.plan.features.clone(),
        cfg.input
            .passthrough
            .iter()
            .enumerate()
            .filter(|(i, _)| !partition_fields.contains(i))
            .map(|(i, p)| (i, p.clone()))
            .collect(),
        cfg.lake.keep_raw,
        cfg.plan.slots(),
    )
}

/// A short, stable fingerprint of what shapes the output (recorded in every Parquet file).
pub fn config_hash(cfg: &Config) -> String {
    use sha2::Digest;
    let text = format!(
        "{:?}|{:?}|{}|{:?}",
        cfg.input, cfg.plan, cfg.lake.keep_raw, cfg.partitioning
    );
    let digest = sha2::Sha256::digest(text.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}
