use super::*;
use crate::decode::{KeySource, TimeFormat};
use crate::normalize::Window;

const GOOD: &str = r#"
[kafka]
brokers = "127.0.0.1:9092"
topics = ["sensors"]
[kafka.properties]
"sasl.password" = "hunter2"
"fetch.queue.backoff.ms" = "20"

[input]
key_field = "sensor_id"
features = ["temp", "hum"]
passthrough = ["site"]

[[normalize]]
name = "z"
method = "zscore"
window = "sliding_time"
size = "60s"

[lake]
root = "./lake"
table = "sensors"
"#;

fn no_env() -> Vec<(String, String)> {
    vec![]
}

#[test]
fn a_good_file_loads_with_defaults() {
    let c = Config::from_toml(GOOD, no_env()).unwrap();
    assert_eq!(c.kafka.group_id, "normlake");
    assert_eq!(c.plan.out_of_orderness_ms, 5000);
    assert_eq!(
        c.plan.norms[0].window,
        Window::SlidingTime { size_ms: 60_000 }
    );
    assert_eq!(c.plan.norms[0].min_count, 2);
    assert_eq!(c.plan.norms[0].features, vec![0, 1]);
    assert_eq!(c.lake.compression, Codec::Zstd(1));
    assert_eq!(c.input.key, KeySource::Field("sensor_id".into()));
}

#[test]
fn every_error_is_reported_at_once_with_its_field() {
    let bad = r#"
[kafka]
brokers = ""
topics = []
colour = "blue"

[input]
features = ["temp", "temp"]

[[normalize]]
name = "r"
method = "robust"
window = "expanding"

[[normalize]]
name = "m"
method = "minmax"
window = "ewm"
alpha = 2.0

[[normalize]]
name = "z"
method = "zscore"
window = "sliding_time"
size = "0s"
ddof = 1
min_count = 1

[lake]
root = "./lake"
table = "bad/name"
compression = "gzip"

[extra]
"#;
    let errs = Config::from_toml(bad, no_env()).unwrap_err();
    let fields: Vec<&str> = errs.0.iter().map(|e| e.field.as_str()).collect();
    for want in [
        "extra",
        "kafka.colour",
        "input.features",
        "normalize[0].window",
        "normalize[1].method",
        "normalize[2].size",
        "normalize[2].min_count",
        "lake.compression",
    ] {
        assert!(fields.contains(&want), "missing {want} in {fields:?}");
    }
    let text = errs.to_string();
    assert!(text.contains("robust needs a bounded window"), "{text}");
}

#[test]
fn semantic_errors_across_sections_are_collected_together() {
    let bad = GOOD
        .replace("brokers = \"127.0.0.1:9092\"", "brokers = \" \"")
        .replace("table = \"sensors\"", "table = \"\"");
    let errs = Config::from_toml(&bad, no_env()).unwrap_err();
    let fields: Vec<&str> = errs.0.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, vec!["kafka.brokers", "lake.table"]);
}

#[test]
fn environment_overrides_the_file() {
    let env = vec![
        (
            "NORMLAKE__KAFKA__BROKERS".to_string(),
            "b1:9092,b2:9092".to_string(),
        ),
        (
            "NORMLAKE__LAKE__ROLLING__MAX_ROWS".to_string(),
            "7".to_string(),
        ),
        (
            "NORMLAKE__KAFKA__PROPERTIES__SASL.USERNAME".to_string(),
            "u".to_string(),
        ),
        ("UNRELATED".to_string(), "x".to_string()),
    ];
    let c = Config::from_toml(GOOD, env).unwrap();
    assert_eq!(c.kafka.brokers, "b1:9092,b2:9092");
    assert_eq!(c.lake.rolling.max_rows, 7);
    assert_eq!(c.kafka.properties["sasl.username"].expose(), "u");
}

#[test]
fn secrets_never_print() {
    let c = Config::from_toml(GOOD, no_env()).unwrap();
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("hunter2"), "{dbg}");
    let client = c.kafka.client();
    let shown = client.printable_properties();
    assert_eq!(shown["sasl.password"], "<redacted>");
    assert_eq!(shown["fetch.queue.backoff.ms"], "20");
}

#[test]
fn dead_letter_destinations_are_checked() {
    let fields = |extra: &str| -> Vec<String> {
        match Config::from_toml(&format!("{GOOD}\n{extra}"), no_env()) {
            Ok(_) => vec![],
            Err(e) => e.0.into_iter().map(|e| e.field).collect(),
        }
    };
    assert!(fields("[dead_letter]\ndestination = \"kafka\"\ntopic = \"dlq\"").is_empty());
    assert_eq!(
        fields("[dead_letter]\ndestination = \"kafka\""),
        ["dead_letter.topic"]
    );
    assert_eq!(
        fields("[dead_letter]\ndestination = \"kafka\"\ntopic = \"sensors\""),
        ["dead_letter.topic"],
        "an input topic is refused"
    );
    assert_eq!(
        fields("[dead_letter]\ntopic = \"dlq\"\nbrokers = \"b:9092\""),
        ["dead_letter.topic", "dead_letter.brokers"],
        "Kafka settings with the lake destination"
    );
    assert_eq!(
        fields("[dead_letter]\ndestination = \"s3\""),
        ["dead_letter.destination"]
    );
}

#[test]
fn partitioning_is_checked_with_field_names() {
    let fields = |extra: &str| -> Vec<String> {
        match Config::from_toml(&format!("{GOOD}\n{extra}"), no_env()) {
            Ok(_) => vec![],
            Err(e) => e.0.into_iter().map(|e| e.field).collect(),
        }
    };
    assert!(fields("[lake.partitioning]\ntime = \"dt=%Y-%m-%d\"\nfields = [\"site\"]").is_empty());
    assert_eq!(
        fields("[lake.partitioning]\nfields = [\"nope\"]"),
        ["lake.partitioning.fields"]
    );
    assert_eq!(
        fields("[lake.partitioning]\ntime_zone = \"Mars/Base\""),
        ["lake.partitioning.time_zone"]
    );
    assert_eq!(
        fields("[lake.partitioning]\ntime = \"dt=%Y/hr=%S\""),
        ["lake.partitioning.time"]
    );
    assert_eq!(
        fields("[lake.partitioning]\ntime = \"dt=%Q\"\ntime_zone = \"Mars/Base\""),
        ["lake.partitioning.time_zone", "lake.partitioning.time"],
        "both mistakes at once"
    );
    assert_eq!(
        fields("[lake.partitioning]\ntime = \"key=%Y\""),
        ["lake.partitioning.time"],
        "a partition column may not shadow a file column"
    );
    let c = Config::from_toml(
        &format!("{GOOD}\n[lake.partitioning]\nfields = [\"site\"]"),
        no_env(),
    )
    .unwrap();
    assert_eq!(c.partitioning.columns(), ["dt", "hr", "site"]);
    assert_eq!(c.input.partition_fields, [0]);
}

#[test]
fn s3_roots_and_their_settings_are_checked_together() {
    let with_root = |root: &str, extra: &str| -> Result<Config, Vec<String>> {
        let text = GOOD.replace("root = \"./lake\"", &format!("root = \"{root}\"")) + extra;
        Config::from_toml(&text, no_env()).map_err(|e| e.0.into_iter().map(|e| e.field).collect())
    };
    let c = with_root(
        "s3://lake-bucket/warehouse",
        "[lake.s3]\nendpoint = \"http://127.0.0.1:9000\"\nallow_http = true\naccess_key_id = \"k\"\nsecret_access_key = \"s3-hunter2\"\n",
    )
    .unwrap();
    assert!(
        !format!("{c:?}").contains("s3-hunter2"),
        "the S3 secret never prints"
    );
    assert!(
        with_root("s3://lake-bucket", "").is_ok(),
        "credentials may come from the environment"
    );
    assert_eq!(
        with_root(
            "s3://Bad_Bucket",
            "[lake.s3]\nendpoint = \"http://minio:9000\"\nsecret_access_key = \"x\"\n"
        )
        .unwrap_err(),
        ["lake.root", "lake.s3.secret_access_key", "lake.s3.endpoint"],
        "every mistake at once"
    );
    assert_eq!(
        with_root("./lake", "[lake.s3]\nendpoint = \"https://s3\"\n").unwrap_err(),
        ["lake.s3"],
        "S3 settings for a local lake are a mistake"
    );
    assert_eq!(with_root("hdfs://nn/lake", "").unwrap_err(), ["lake.root"]);
    assert_eq!(
        with_root(
            "s3://bucket",
            "[lake.s3]\nca_certificate = \"/nonexistent/ca.pem\"\n"
        )
        .unwrap_err(),
        ["lake.s3.ca_certificate"]
    );
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn strings_refer_to_the_environment_with_defaults() {
    let vars: HashMap<String, String> = env(&[("HOST", "kafka:9092"), ("EMPTY", "")])
        .into_iter()
        .collect();
    let cases = [
        ("${HOST}", "kafka:9092"),
        ("x-${HOST}-y", "x-kafka:9092-y"),
        ("${MISSING:-d}", "d"),
        ("${EMPTY:-d}", "d"),
        ("${EMPTY-d}", ""),
        ("${MISSING-d}", "d"),
        ("${HOST:-d}", "kafka:9092"),
        ("$$HOST costs $5", "$HOST costs $5"),
    ];
    for (input, want) in cases {
        assert_eq!(interpolate(input, &vars).as_deref(), Ok(want), "{input}");
    }
    assert!(
        interpolate("${MISSING}", &vars)
            .unwrap_err()
            .contains("MISSING")
    );
    assert!(interpolate("${1X}", &vars).is_err());
    assert!(interpolate("${HOST", &vars).is_err());
}

#[test]
fn interpolation_fills_any_string_and_reports_every_missing_variable() {
    let text = GOOD
        .replace("127.0.0.1:9092", "${KAFKA_BROKERS}")
        .replace("hunter2", "${KAFKA_PASSWORD}")
        .replace("./lake", "${LAKE_ROOT:-./lake}");
    let c = Config::from_toml(
        &text,
        env(&[("KAFKA_BROKERS", "b:1"), ("KAFKA_PASSWORD", "s3cr3t")]),
    )
    .unwrap();
    assert_eq!(c.kafka.brokers, "b:1");
    assert_eq!(c.kafka.properties["sasl.password"].expose(), "s3cr3t");
    assert_eq!(c.lake.root, "./lake");
    assert!(!format!("{c:?}").contains("s3cr3t"));

    let e = Config::from_toml(&text, no_env()).unwrap_err();
    let fields: Vec<&str> = e.0.iter().map(|f| f.field.as_str()).collect();
    assert!(fields.contains(&"kafka.brokers"), "{e}");
    assert!(fields.contains(&"kafka.properties.sasl.password"), "{e}");
}

#[test]
fn secrets_are_read_from_files_and_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("password");
    std::fs::write(&file, "from-a-file\n").unwrap();
    let text = GOOD.replace(
        r#""sasl.password" = "hunter2""#,
        &format!(r#""sasl.password_file" = "{}""#, file.display()),
    );
    let c = Config::from_toml(&text, no_env()).unwrap();
    assert_eq!(c.kafka.properties["sasl.password"].expose(), "from-a-file");
    assert!(!c.kafka.properties.contains_key("sasl.password_file"));
    assert!(!format!("{c:?}").contains("from-a-file"));

    let both = text.replace(
        "[kafka.properties]",
        "[kafka.properties]\n\"sasl.password\" = \"x\"",
    );
    let e = Config::from_toml(&both, no_env()).unwrap_err();
    assert_eq!(e.0[0].field, "kafka.properties.sasl.password_file", "{e}");

    let missing = GOOD.replace(
        r#""sasl.password" = "hunter2""#,
        r#""sasl.password_file" = "/no/such/file""#,
    );
    let e = Config::from_toml(&missing, no_env()).unwrap_err();
    assert!(e.to_string().contains("/no/such/file"), "{e}");
}

#[test]
fn kafka_properties_come_from_bash_valid_variable_names() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, "filed").unwrap();
    let c = Config::from_toml(
        GOOD,
        env(&[
            ("NORMLAKE__KAFKA__PROPERTIES__SASL_USERNAME", "alice"),
            ("NORMLAKE__KAFKA__PROPERTIES__SASL.MECHANISM", "PLAIN"),
            (
                "NORMLAKE__KAFKA__PROPERTIES__SASL_PASSWORD_FILE",
                file.to_str().unwrap(),
            ),
        ]),
    );
    // The file's `sasl.password` and the variable's `sasl.password_file` collide.
    let e = c.unwrap_err();
    assert_eq!(e.0[0].field, "kafka.properties.sasl.password_file", "{e}");
    let text = GOOD.replace(r#""sasl.password" = "hunter2""#, "");
    let c = Config::from_toml(
        &text,
        env(&[
            ("NORMLAKE__KAFKA__PROPERTIES__SASL_USERNAME", "alice"),
            ("NORMLAKE__KAFKA__PROPERTIES__SASL.MECHANISM", "PLAIN"),
            (
                "NORMLAKE__KAFKA__PROPERTIES__SASL_PASSWORD_FILE",
                file.to_str().unwrap(),
            ),
        ]),
    )
    .unwrap();
    let p = &c.kafka.properties;
    assert_eq!(p["sasl.username"].expose(), "alice");
    assert_eq!(p["sasl.mechanism"].expose(), "PLAIN");
    assert_eq!(p["sasl.password"].expose(), "filed");
}

#[test]
fn time_formats_and_the_metastore_are_checked_with_the_rest() {
    let text = GOOD.replace(
        "passthrough = [\"site\"]",
        "passthrough = [\"site\"]\ntime_format = \"epoch_milis\"",
    ) + "[lake.metastore]\nuri = \"hms:9083\"\nadd_partitions = \"on_complete\"\n[lake.success_marker]\nenabled = false\n[time]\nidle_timeout = \"0s\"\n";
    let errs = Config::from_toml(&text, no_env()).unwrap_err().0;
    let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    assert!(fields.contains(&"input.time_format"), "{errs:?}");
    assert!(fields.contains(&"lake.metastore.uri"), "{errs:?}");
    assert!(
        fields.contains(&"lake.metastore.add_partitions"),
        "{errs:?}"
    );
    assert!(fields.contains(&"time.idle_timeout"), "{errs:?}");

    let text = GOOD.replace(
        "passthrough = [\"site\"]",
        "passthrough = [\"site\"]\ntime_field = \"@kafka_timestamp\"\ntime_format = \"epoch_nanos\"",
    ) + "[lake.metastore]\nuri = \"thrift://a:9083,thrift://b:9083\"\n";
    let c = Config::from_toml(&text, no_env()).unwrap();
    assert_eq!(c.input.time_format, TimeFormat::EpochNanos);
    let m = c.lake.metastore.unwrap().options();
    assert_eq!(m.uris, ["thrift://a:9083", "thrift://b:9083"]);
    assert_eq!(m.database, "default");
}

#[test]
fn nested_paths_name_their_columns_and_collisions_are_errors() {
    let text = GOOD
        .replace(
            "features = [\"temp\", \"hum\"]",
            "features = [\"payload.temp\", \"hum\"]",
        )
        .replace(
            "passthrough = [\"site\"]",
            "passthrough = [\"meta.site\", { field = \"payload.count\", type = \"int64\" }, { field = \"seen\", type = \"timestamp\" }]",
        )
        + "[lake.partitioning]\nfields = [\"meta_site\"]\n";
    let c = Config::from_toml(&text, no_env()).unwrap();
    assert_eq!(c.plan.features, ["payload_temp", "hum"]);
    assert_eq!(c.input.features, ["payload.temp", "hum"]);
    assert_eq!(c.input.passthrough[1].kind, crate::decode::PassType::Int64);
    assert_eq!(c.input.partition_fields, [0]);
    let names: Vec<String> = c
        .table()
        .schema
        .hive_columns()
        .into_iter()
        .map(|(n, t)| format!("{n} {t}"))
        .collect();
    assert!(
        names.contains(&"payload_count BIGINT".to_string()),
        "{names:?}"
    );
    assert!(names.contains(&"seen TIMESTAMP".to_string()), "{names:?}");
    assert!(
        names.contains(&"payload_temp_z DOUBLE".to_string()),
        "{names:?}"
    );

    let text = GOOD
        .replace(
            "features = [\"temp\", \"hum\"]",
            "features = [\"payload.temp\", \"payload_temp\", \"a..b\"]",
        )
        .replace(
            "passthrough = [\"site\"]",
            "passthrough = [{ field = \"key\", type = \"string\" }, { field = \"n\", type = \"int32\" }, { field = \"count\", type = \"int64\" }]",
        )
        + "[lake.partitioning]\nfields = [\"count\"]\n";
    let errs = Config::from_toml(&text, no_env()).unwrap_err().0;
    let text_of = |f: &str| -> Vec<String> {
        errs.iter()
            .filter(|e| e.field == f)
            .map(|e| e.message.clone())
            .collect()
    };
    let features = text_of("input.features");
    assert!(
        features.iter().any(|m| m
            .contains("`payload_temp` is written to column `payload_temp`, as is `payload.temp`")),
        "{errs:?}"
    );
    assert!(
        features
            .iter()
            .any(|m| m.contains("`a..b` is not a field path")),
        "{errs:?}"
    );
    let pass = text_of("input.passthrough");
    assert!(
        pass.iter().any(|m| m.contains("a column normlake writes")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.field.starts_with("input") && e.message.contains("int32")),
        "{errs:?}"
    );
    assert!(
        text_of("lake.partitioning.fields")
            .iter()
            .any(|m| m.contains("a partition field must be a string")),
        "{errs:?}"
    );
}

#[test]
fn avro_input_needs_a_registry_whose_settings_are_checked() {
    let avro = GOOD.replace(
        "passthrough = [\"site\"]",
        "passthrough = [\"site\"]\nformat = \"avro_confluent\"",
    );
    let errs = Config::from_toml(&avro, no_env()).unwrap_err().0;
    assert!(
        errs.iter().any(|e| e.field == "input.schema_registry"),
        "{errs:?}"
    );
    let text = avro.clone()
        + "[input.schema_registry]\nurl = \"registry:8081\"\nusername = \"u\"\ntimeout = \"0s\"\nca_certificate = \"/nonexistent.pem\"\n";
    let errs = Config::from_toml(&text, no_env()).unwrap_err().0;
    let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    for f in [
        "input.schema_registry.url",
        "input.schema_registry",
        "input.schema_registry.timeout",
        "input.schema_registry.ca_certificate",
    ] {
        assert!(fields.contains(&f), "{f}: {errs:?}");
    }
    let text = avro
        + "[input.schema_registry]\nurl = \"http://a:8081, http://b:8081\"\nusername = \"u\"\npassword = \"s3cret\"\n";
    let c = Config::from_toml(&text, no_env()).unwrap();
    let r = c.registry.as_ref().unwrap();
    assert_eq!(r.url.list(), ["http://a:8081", "http://b:8081"]);
    assert!(!format!("{c:?}").contains("s3cret"));
}

#[test]
fn normalized_columns_are_uncompressed_by_default_and_codecs_name_columns() {
    use parquet::basic::Compression;
    use parquet::schema::types::ColumnPath;
    let props = Config::from_toml(GOOD, no_env()).unwrap().table().props;
    let codec = |c: &str| props.compression(&ColumnPath::from(c));
    assert_eq!(codec("temp_z"), Compression::UNCOMPRESSED);
    assert_eq!(codec("hum_z_scale"), Compression::UNCOMPRESSED);
    assert!(matches!(codec("temp_z_n"), Compression::ZSTD(_)));
    assert!(matches!(codec("key"), Compression::ZSTD(_)));

    let custom = format!(
        "{GOOD}[lake.parquet]\nnormalized_codec = \"lz4\"\ncodecs = {{ key = \"snappy\", temp_z_center = \"zstd(3)\" }}\n"
    );
    let props = Config::from_toml(&custom, no_env()).unwrap().table().props;
    let codec = |c: &str| props.compression(&ColumnPath::from(c));
    assert_eq!(codec("temp_z"), Compression::LZ4_RAW);
    assert_eq!(codec("key"), Compression::SNAPPY);
    assert!(matches!(codec("temp_z_center"), Compression::ZSTD(l) if l.compression_level() == 3));

    let bad = format!(
        "{GOOD}[lake.parquet]\ncodecs = {{ tmp_z = \"none\" }}\ndictionary = {{ nope = true }}\n"
    );
    let fields: Vec<String> = Config::from_toml(&bad, no_env())
        .unwrap_err()
        .0
        .into_iter()
        .map(|e| e.field)
        .collect();
    assert_eq!(
        fields,
        ["lake.parquet.dictionary.nope", "lake.parquet.codecs.tmp_z"]
    );
}

/// `outputs` chooses a normalization's columns (all five by default, and the fingerprint of
/// such a table is the one it had before `outputs` existed); a codec for a column a
/// normalization does not write is an error, as are an empty list, a repeated and an unknown
/// output, each with its field.
#[test]
fn outputs_choose_the_columns_of_a_normalization() {
    let columns = |cfg: &Config| -> Vec<String> {
        let table = cfg.table();
        let names = table
            .schema
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone());
        names.filter(|n| n.starts_with("temp_")).collect()
    };
    let all = Config::from_toml(GOOD, no_env()).unwrap();
    assert!(all.outputs.all_default());
    assert_eq!(
        columns(&all),
        [
            "temp_z",
            "temp_z_center",
            "temp_z_scale",
            "temp_z_n",
            "temp_z_status"
        ]
    );
    let with = |line: &str| GOOD.replace("size = \"60s\"\n", &format!("size = \"60s\"\n{line}\n"));
    let some = Config::from_toml(&with("outputs = [\"status\", \"y\"]"), no_env()).unwrap();
    assert_eq!(columns(&some), ["temp_z", "temp_z_status"]);
    let fingerprint = |cfg: &Config| cfg.table().props.key_value_metadata().cloned();
    assert_ne!(fingerprint(&all), fingerprint(&some));
    let five = "outputs = [\"y\", \"center\", \"scale\", \"n\", \"status\"]";
    let explicit = Config::from_toml(&with(five), no_env()).unwrap();
    assert_eq!(fingerprint(&all), fingerprint(&explicit));

    let errors = |text: &str| -> Vec<(String, String)> {
        let e = Config::from_toml(text, no_env()).unwrap_err().0;
        e.into_iter().map(|e| (e.field, e.message)).collect()
    };
    let bad = errors(&format!(
        "{}[lake.parquet]\ncodecs = {{ temp_z_scale = \"none\" }}\n",
        with("outputs = [\"y\", \"y\"]")
    ));
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(
        bad[0],
        ("normalize[0].outputs".into(), "`y` is named twice".into())
    );
    let bad = errors(&format!(
        "{}[lake.parquet]\ncodecs = {{ temp_z_scale = \"none\" }}\n",
        with("outputs = [\"y\"]")
    ));
    assert_eq!(bad[0].0, "lake.parquet.codecs.temp_z_scale", "{bad:?}");
    let bad = errors(&with("outputs = []"));
    assert_eq!(bad[0].0, "normalize[0].outputs", "{bad:?}");
    let bad = errors(&with("outputs = [\"mean\"]"));
    assert!(bad[0].0.starts_with("normalize"), "{bad:?}");
    assert!(bad[0].1.contains("mean"), "{bad:?}");
}
