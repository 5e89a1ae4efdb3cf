//! The shipped contracts stay true: the example configuration validates, the Hive DDL in
//! `schemas/` is what `normlake ddl` prints for it, and the input JSON Schema names the
//! fields the configuration reads.

use normlake::config::Config;
use normlake::decode::KeySource;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn example() -> Config {
    let text = std::fs::read_to_string(format!("{ROOT}/deploy/normlake.toml"))
        .expect("read example config");
    Config::from_toml(&text, Vec::new())
        .unwrap_or_else(|e| panic!("the example config must validate: {e}"))
}

#[test]
fn schemas_hive_ddl_matches_the_generated_ddl() {
    let cfg = example();
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg_empty = cfg.clone();
    cfg_empty.lake.root = dir.path().display().to_string();
    let generated = normlake::cli::ddl(&cfg_empty, Some("s3a://lake/sensors".into())).expect("ddl");
    let shipped = std::fs::read_to_string(format!("{ROOT}/schemas/sensors.hive.sql"))
        .expect("read schemas/sensors.hive.sql");
    assert_eq!(
        shipped, generated,
        "regenerate with: normlake ddl --config deploy/normlake.toml --location 's3a://lake/sensors'"
    );
    for col in [
        "`temp_z1m` DOUBLE",
        "`temp_z1m_n` BIGINT",
        "`temp_z1m_status` STRING",
        "`event_time` TIMESTAMP",
    ] {
        assert!(generated.contains(col), "{col} missing from\n{generated}");
    }
}

#[test]
fn input_schema_names_the_configured_fields() {
    let cfg = example();
    let text = std::fs::read_to_string(format!("{ROOT}/schemas/sensor-event.schema.json"))
        .expect("read input schema");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let props = schema["properties"].as_object().expect("properties");
    let KeySource::Field(key) = &cfg.input.key else {
        panic!("the example keys by a field")
    };
    let required: Vec<&str> = schema["required"]
        .as_array()
        .expect("required")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(required.contains(&key.as_str()) && required.contains(&cfg.input.time_field.as_str()));
    let pass = cfg.input.passthrough.iter().map(|p| &p.path);
    for f in cfg.input.features.iter().chain(pass) {
        assert!(
            props.contains_key(f),
            "{f} is not described in the input schema"
        );
    }
}

#[test]
fn ddl_lists_partitions_present_in_the_lake() {
    let dir = tempfile::tempdir().expect("tmp");
    let part = dir.path().join("t/dt=2026-11-26/hr=02");
    std::fs::create_dir_all(&part).expect("mkdir");
    std::fs::write(part.join("part-x-0-1-2.parquet"), b"PAR1").expect("write");
    std::fs::write(part.join(".part-x-0-3.tmp"), b"partial").expect("write");
    let layout = normlake::lake::Layout::new(dir.path().to_str().expect("utf-8"), "t");
    let files = layout.table_files().expect("list");
    let table = normlake::lake::HiveTable {
        name: "t".into(),
        columns: vec![("key".into(), "STRING".into())],
        partition_columns: vec!["dt".into(), "hr".into()],
        location: "file:///l".into(),
    };
    let text = table.add_partitions_sql(&files);
    assert_eq!(
        text,
        "ALTER TABLE `t` ADD IF NOT EXISTS PARTITION (`dt`='2026-11-26', `hr`='02');\n"
    );
}
