//! The metastore's objects for the table and its partitions, made from `lake::HiveTable`: an
//! external Parquet table whose columns and partition keys are exactly those `normlake ddl`
//! prints.

use pilota::{AHashMap, FastStr};

use hive_metastore::{FieldSchema, Partition, SerDeInfo, SkewedInfo, StorageDescriptor, Table};

use crate::lake::{HivePartition, HiveTable};

const INPUT_FORMAT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat";
const OUTPUT_FORMAT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat";
const SERDE: &str = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe";

/// A partition's figures that engines plan with (Hive's "basic statistics").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PartitionStats {
    pub files: u64,
    pub bytes: u64,
    /// `None` when not every file's row count is known.
    pub rows: Option<u64>,
}

fn s(v: &str) -> FastStr {
    FastStr::new(v)
}

fn map(pairs: &[(&str, String)]) -> AHashMap<FastStr, FastStr> {
    pairs.iter().map(|(k, v)| (s(k), s(v))).collect()
}

/// A column as the metastore holds it (types in lower case, as Hive writes them).
pub fn field(name: &str, hive_type: &str) -> FieldSchema {
    FieldSchema {
        name: Some(s(name)),
        r#type: Some(s(&hive_type.to_ascii_lowercase())),
        comment: None,
    }
}

fn storage(columns: &[FieldSchema], location: &str) -> StorageDescriptor {
    StorageDescriptor {
        cols: Some(columns.to_vec()),
        location: Some(s(location)),
        input_format: Some(s(INPUT_FORMAT)),
        output_format: Some(s(OUTPUT_FORMAT)),
        compressed: Some(false),
        num_buckets: Some(-1),
        serde_info: Some(SerDeInfo {
            name: None,
            serialization_lib: Some(s(SERDE)),
            parameters: Some(map(&[("serialization.format", "1".into())])),
        }),
        bucket_cols: Some(Vec::new()),
        sort_cols: Some(Vec::new()),
        parameters: Some(AHashMap::default()),
        skewed_info: Some(SkewedInfo {
            skewed_col_names: Some(Vec::new()),
            skewed_col_values: Some(Vec::new()),
            skewed_col_value_location_maps: Some(AHashMap::default()),
        }),
        stored_as_sub_directories: Some(false),
    }
}

/// The file columns of the table.
pub fn columns(t: &HiveTable) -> Vec<FieldSchema> {
    t.columns.iter().map(|(n, ty)| field(n, ty)).collect()
}

/// The external table in `database`.
pub fn table(database: &str, t: &HiveTable, now_s: i32) -> Table {
    Table {
        table_name: Some(s(&t.name)),
        db_name: Some(s(database)),
        owner: Some(s("normlake")),
        create_time: Some(now_s),
        last_access_time: Some(0),
        retention: Some(0),
        sd: Some(storage(&columns(t), &t.location)),
        partition_keys: Some(
            t.partition_columns
                .iter()
                .map(|c| field(c, "string"))
                .collect(),
        ),
        parameters: Some(map(&[
            ("EXTERNAL", "TRUE".into()),
            ("created_by", "normlake".into()),
        ])),
        table_type: Some(s("EXTERNAL_TABLE")),
        ..Table::default()
    }
}

/// One partition of the table, at its directory under the table's location, with its figures.
pub fn partition(
    database: &str,
    t: &HiveTable,
    p: &HivePartition,
    stats: Option<PartitionStats>,
    now_s: i32,
) -> Partition {
    let location = format!("{}/{}", t.location.trim_end_matches('/'), p.dir);
    let mut params = Vec::new();
    if let Some(st) = stats {
        params.push(("numFiles", st.files.to_string()));
        params.push(("totalSize", st.bytes.to_string()));
        if let Some(rows) = st.rows {
            params.push(("numRows", rows.to_string()));
        }
    }
    Partition {
        values: Some(p.values.iter().map(|v| s(v)).collect()),
        db_name: Some(s(database)),
        table_name: Some(s(&t.name)),
        create_time: Some(now_s),
        last_access_time: Some(0),
        sd: Some(storage(&columns(t), &location)),
        parameters: Some(map(&params)),
        ..Partition::default()
    }
}

/// The table's columns missing from the metastore's table (by name, case-insensitively), in
/// the table's order; and the columns whose type differs there.
pub fn column_changes(t: &HiveTable, existing: &[FieldSchema]) -> (Vec<FieldSchema>, Vec<String>) {
    let mut missing = Vec::new();
    let mut differing = Vec::new();
    for want in columns(t) {
        let name = want.name.as_deref().unwrap_or_default();
        let found = existing.iter().find(|f| {
            f.name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        });
        match found {
            None => missing.push(want),
            Some(f) if f.r#type.as_deref() != want.r#type.as_deref() => {
                differing.push(format!(
                    "{name}: {} in the metastore, {} in the lake",
                    f.r#type.as_deref().unwrap_or("?"),
                    want.r#type.as_deref().unwrap_or("?")
                ));
            }
            Some(_) => {}
        }
    }
    (missing, differing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hive() -> HiveTable {
        HiveTable {
            name: "t".into(),
            columns: vec![
                ("key".into(), "STRING".into()),
                ("temp_y".into(), "DOUBLE".into()),
            ],
            partition_columns: vec!["dt".into(), "site".into()],
            location: "file:///lake/t".into(),
        }
    }

    #[test]
    fn the_table_is_external_parquet_with_string_partition_keys() {
        let t = table("db", &hive(), 7);
        assert_eq!(t.table_type.as_deref(), Some("EXTERNAL_TABLE"));
        let sd = t.sd.unwrap();
        assert_eq!(sd.location.as_deref(), Some("file:///lake/t"));
        assert_eq!(sd.cols.unwrap()[1].r#type.as_deref(), Some("double"));
        assert_eq!(
            sd.serde_info.unwrap().serialization_lib.as_deref(),
            Some(SERDE)
        );
        let keys: Vec<_> = t.partition_keys.unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[1].name.as_deref(), Some("site"));
    }

    #[test]
    fn a_partition_has_raw_values_and_the_escaped_directory_as_location() {
        let p = HivePartition {
            dir: "dt=2026-11-18/site=a%2Fb".into(),
            values: vec!["2026-11-18".into(), "a/b".into()],
        };
        let stats = PartitionStats {
            files: 2,
            bytes: 10,
            rows: Some(5),
        };
        let part = partition("db", &hive(), &p, Some(stats), 7);
        let values: Vec<&str> = part.values.iter().flatten().map(|v| &**v).collect();
        assert_eq!(values, ["2026-11-18", "a/b"]);
        assert_eq!(
            part.sd.unwrap().location.as_deref(),
            Some("file:///lake/t/dt=2026-11-18/site=a%2Fb")
        );
        let params = part.parameters.unwrap();
        assert_eq!(params.get("numRows").map(|v| &**v), Some("5"));
        assert_eq!(params.get("totalSize").map(|v| &**v), Some("10"));
    }

    #[test]
    fn new_columns_are_found_and_changed_types_reported() {
        let existing = vec![field("KEY", "string"), field("temp_y", "bigint")];
        let (missing, differing) = column_changes(&hive(), &existing);
        assert!(missing.is_empty());
        assert_eq!(differing.len(), 1);
        let (missing, _) = column_changes(&hive(), &existing[..1]);
        assert_eq!(missing[0].name.as_deref(), Some("temp_y"));
    }
}
