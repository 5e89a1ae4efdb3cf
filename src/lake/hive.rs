//! The table as Hive sees it: one description (`HiveTable`) from which the DDL that
//! `normlake ddl` prints, the Trino DDL and the metastore's table and partitions are all made,
//! so there is one definition of the table, not several.

use crate::partition_value;

/// An external Parquet table: its file columns with their Hive types, its partition columns
/// (all `STRING`, in path order) and its location.
#[derive(Debug, Clone, PartialEq)]
pub struct HiveTable {
    pub name: String,
    pub columns: Vec<(String, String)>,
    pub partition_columns: Vec<String>,
    pub location: String,
}

/// A partition directory of the table as the metastore names it: its path relative to the
/// table (`dt=2026-11-18/site=a%2Fb`, escaped, which is also the metastore's partition name)
/// and its raw values (`["2026-11-18", "a/b"]`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HivePartition {
    pub dir: String,
    pub values: Vec<String>,
}

impl HiveTable {
    /// The partition a directory (relative to the table) stands for, when it is one of the
    /// table's: one `column=value` segment per partition column, in order.
    pub fn partition_of(&self, rel_dir: &str) -> Option<HivePartition> {
        if self.partition_columns.is_empty() {
            return None;
        }
        let segs: Vec<&str> = rel_dir.split('/').collect();
        if segs.len() != self.partition_columns.len() {
            return None;
        }
        let values = segs
            .iter()
            .zip(&self.partition_columns)
            .map(|(seg, col)| {
                let v = seg.strip_prefix(col.as_str())?.strip_prefix('=')?;
                Some(partition_value::unescape(v))
            })
            .collect::<Option<Vec<String>>>()?;
        Some(HivePartition {
            dir: rel_dir.to_string(),
            values,
        })
    }

    /// `CREATE EXTERNAL TABLE IF NOT EXISTS`, as Hive and Spark SQL take it.
    pub fn ddl(&self) -> String {
        let cols: Vec<String> = self
            .columns
            .iter()
            .map(|(n, t)| format!("  `{n}` {t}"))
            .collect();
        let parts: Vec<String> = self
            .partition_columns
            .iter()
            .map(|n| format!("`{n}` STRING"))
            .collect();
        let partitioned = if parts.is_empty() {
            String::new()
        } else {
            format!("PARTITIONED BY ({})\n", parts.join(", "))
        };
        format!(
            "CREATE EXTERNAL TABLE IF NOT EXISTS `{}` (\n{}\n)\n{partitioned}STORED AS PARQUET\nLOCATION '{}';\n",
            self.name,
            cols.join(",\n"),
            self.location
        )
    }

    /// The same table for Trino's Hive connector: `CREATE TABLE … WITH (external_location …)`,
    /// partition columns last (Trino's rule), then a partition sync that registers every
    /// partition directory present (run it again to pick up new ones).
    pub fn trino_ddl(&self, schema: &str) -> String {
        let table = &self.name;
        let mut cols: Vec<String> = self
            .columns
            .iter()
            .map(|(n, t)| format!("  \"{n}\" {}", trino_type(t)))
            .collect();
        cols.extend(
            self.partition_columns
                .iter()
                .map(|n| format!("  \"{n}\" varchar")),
        );
        let mut with = vec![
            format!(
                "  external_location = '{}'",
                self.location.replace('\'', "''")
            ),
            "  format = 'PARQUET'".to_string(),
        ];
        if !self.partition_columns.is_empty() {
            let names: Vec<String> = self
                .partition_columns
                .iter()
                .map(|n| format!("'{n}'"))
                .collect();
            with.push(format!("  partitioned_by = ARRAY[{}]", names.join(", ")));
        }
        let mut text = format!(
            "CREATE SCHEMA IF NOT EXISTS \"{schema}\";\nCREATE TABLE IF NOT EXISTS \"{schema}\".\"{table}\" (\n{}\n)\nWITH (\n{}\n);\n",
            cols.join(",\n"),
            with.join(",\n")
        );
        if !self.partition_columns.is_empty() {
            text +=
                &format!("CALL system.sync_partition_metadata('{schema}', '{table}', 'FULL');\n");
        }
        text
    }

    /// `ALTER TABLE … ADD IF NOT EXISTS PARTITION` for every partition directory holding data
    /// (`files` are relative to the table's directory), with raw values (Hive escapes them
    /// again for the path) and quotes doubled for SQL.
    pub fn add_partitions_sql(&self, files: &[String]) -> String {
        let mut parts: Vec<HivePartition> = files
            .iter()
            .filter_map(|f| self.partition_of(f.rsplit_once('/')?.0))
            .collect();
        parts.sort();
        parts.dedup();
        parts
            .iter()
            .map(|p| {
                let spec: Vec<String> = self
                    .partition_columns
                    .iter()
                    .zip(&p.values)
                    .map(|(c, v)| format!("`{c}`='{}'", v.replace('\'', "''")))
                    .collect();
                format!(
                    "ALTER TABLE `{}` ADD IF NOT EXISTS PARTITION ({});\n",
                    self.name,
                    spec.join(", ")
                )
            })
            .collect()
    }
}

fn trino_type(hive: &str) -> &'static str {
    match hive {
        "STRING" => "varchar",
        "TIMESTAMP" => "timestamp(3)",
        "INT" => "integer",
        "BIGINT" => "bigint",
        "DOUBLE" => "double",
        "BOOLEAN" => "boolean",
        _ => "varbinary",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(partition_columns: &[&str]) -> HiveTable {
        HiveTable {
            name: "t".into(),
            columns: vec![("key".into(), "STRING".into())],
            partition_columns: partition_columns.iter().map(|c| c.to_string()).collect(),
            location: "file:///l".into(),
        }
    }

    #[test]
    fn ddl_lists_partitions_unescaped_and_quoted() {
        let files: Vec<String> = [
            "dt=2026-11-27/site=a%2Fb/part-t-0-0-0.parquet",
            "dt=2026-11-27/site=a%2Fb/part-t-0-1-1.parquet",
            "dt=2026-11-27/site=o'k/part-t-0-0-0.parquet",
            "dt=2026-11-28/site=x/part-t-0-0-0.parquet",
            "dt=2026-11-28/part-t-0-0-0.parquet",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let t = table(&["dt", "site"]);
        assert_eq!(
            t.add_partitions_sql(&files),
            "ALTER TABLE `t` ADD IF NOT EXISTS PARTITION (`dt`='2026-11-27', `site`='a/b');\n\
             ALTER TABLE `t` ADD IF NOT EXISTS PARTITION (`dt`='2026-11-27', `site`='o''k');\n\
             ALTER TABLE `t` ADD IF NOT EXISTS PARTITION (`dt`='2026-11-28', `site`='x');\n"
        );
        assert!(
            t.ddl()
                .contains("PARTITIONED BY (`dt` STRING, `site` STRING)")
        );
        assert!(!table(&[]).ddl().contains("PARTITIONED"));
    }

    #[test]
    fn a_directory_maps_to_its_raw_values_or_to_none() {
        let t = table(&["dt", "site"]);
        let raw = "a/b=50% 日本";
        let dir = format!("dt=2026-11-27/site={}", partition_value::escape(Some(raw)));
        let p = t.partition_of(&dir).unwrap();
        assert_eq!(p.values, vec!["2026-11-27", raw]);
        assert_eq!(p.dir, dir);
        assert_eq!(t.partition_of("dt=2026-11-27"), None);
        assert_eq!(t.partition_of("dt=2026-11-27/other=x"), None);
        assert_eq!(table(&[]).partition_of(""), None);
    }
}
