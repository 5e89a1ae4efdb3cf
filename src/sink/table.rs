//! The output table as one description: its columns, how its files are written, how rows are
//! routed to its partition directories, and when files roll. The processor writes by it,
//! `compact` merges by it, and `ddl` and the metastore registration describe it to Hive
//! (`Table::hive`).

use std::sync::Arc;

use parquet::file::properties::WriterProperties;

use super::{OutputSchema, RollingPolicy};
use crate::lake::HiveTable;
use crate::lake::partition::Partitioning;

#[derive(Debug, Clone)]
pub struct Table {
    /// The table's name: its directory under the lake's root.
    pub name: String,
    pub schema: Arc<OutputSchema>,
    /// Parquet settings of every file (data, dead letters, merged).
    pub props: WriterProperties,
    pub partitioning: Partitioning,
    pub rolling: RollingPolicy,
}

impl Table {
    /// The file columns with their Hive types (partition columns are not in the files).
    pub fn hive_columns(&self) -> Vec<(String, &'static str)> {
        self.schema.hive_columns()
    }

    /// The partition columns, in path order.
    pub fn partition_columns(&self) -> Vec<String> {
        self.partitioning.columns()
    }

    /// The table as Hive sees it, at `location`: what `ddl` prints and the metastore holds.
    pub fn hive(&self, location: &str) -> HiveTable {
        HiveTable {
            name: self.name.clone(),
            columns: self
                .hive_columns()
                .into_iter()
                .map(|(n, t)| (n, t.to_string()))
                .collect(),
            partition_columns: self.partition_columns(),
            location: location.to_string(),
        }
    }
}
