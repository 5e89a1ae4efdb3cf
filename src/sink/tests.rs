use super::*;
use crate::dead_letter::{DeadLetter, DeadLetterSink, LakeDeadLetters};
use crate::decode::{PassType, PassValue};
use crate::normalize::{Event, FeatureValue};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

fn schema() -> Arc<OutputSchema> {
    let slots = vec![crate::normalize::Slot {
        feature: 0,
        norm: Some(0),
        column: "v_z".into(),
    }];
    Arc::new(OutputSchema::new(
        vec!["v".into()],
        vec![(0, "site".into(), PassType::String)],
        true,
        slots.into_iter().map(|s| (s, Outputs::ALL)).collect(),
    ))
}

fn rows(rows: &[(i64, i64)]) -> OutRows {
    // Build through a real engine so the batch layout is the engine's own.
    let plan = crate::normalize::Plan {
        features: vec!["v".into()],
        norms: vec![crate::normalize::NormSpec {
            name: "z".into(),
            method: crate::normalize::Method::Zscore { ddof: 0, eps: 0.0 },
            window: crate::normalize::Window::Expanding,
            include_current: false,
            min_count: 1,
            degenerate: crate::normalize::Degenerate::Unit,
            features: vec![0],
        }],
        layer: None,
        time_mode: crate::normalize::TimeMode::ProcessingTime,
        out_of_orderness_ms: 0,
        late: crate::normalize::LatePolicy::DeadLetter,
        max_disorder_ms: 0,
        idle_ttl_ms: None,
    };
    let engine = crate::normalize::Engine::new(plan);
    let mut st = crate::normalize::PartitionState::default();
    let mut out = engine.emitted();
    for &(offset, ts_ms) in rows {
        let ev = Event {
            key: "k".into(),
            ts_ms,
            seq: offset,
            features: vec![FeatureValue::Value(offset as f64)],
            payload: RowMeta {
                passthrough: vec![PassValue::Text("eu".into())],
                received_ms: 0,
                kafka_ms: None,
            },
        };
        assert!(st.push(&engine, ev, &mut out).is_none());
    }
    out
}

fn zstd3() -> Compression {
    Compression::ZSTD(parquet::basic::ZstdLevel::try_new(3).unwrap())
}

fn table(schema: Arc<OutputSchema>, props: WriterProperties, rolling: RollingPolicy) -> Table {
    Table {
        name: "t".into(),
        schema,
        props,
        partitioning: crate::lake::partition::Partitioning::default(),
        rolling,
    }
}

fn sink(dir: &std::path::Path, max_rows: usize) -> Sink {
    let s = schema();
    let plain: Vec<&str> = s.plain_columns().collect();
    let props = writer_properties(zstd3(), &plain, "h", &ParquetSettings::default());
    Sink::new(
        Layout::new(dir.to_str().unwrap(), "t"),
        &table(
            s.clone(),
            props,
            RollingPolicy {
                max_rows,
                max_bytes: 1 << 30,
                max_age: Duration::from_secs(60),
                inactivity: Duration::from_secs(10),
                max_open_files: 3,
            },
        ),
    )
}

const H: i64 = 3_600_000;

#[test]
fn rows_split_by_hour_and_roll_into_named_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = sink(dir.path(), 1000);
    let stream: Arc<str> = "topic".into();
    let now = Instant::now();
    let rows = rows(&[(10, 5 * H + 1), (11, 6 * H + 2), (12, 5 * H + 3)]);
    s.append(&stream, 1, &rows, now).unwrap();
    let layout = Layout::new(dir.path().to_str().unwrap(), "t");
    let mut dead = LakeDeadLetters::new(
        layout,
        writer_properties(zstd3(), &[], "h", &ParquetSettings::default()),
    );
    let letter = DeadLetter {
        offset: 9,
        key: None,
        value: b"{".to_vec(),
        reason: "malformed_json",
        timestamp_ms: Some(1),
    };
    let footprint = letter.footprint();
    dead.push(&stream, 1, letter);
    assert_eq!(dead.held_bytes(), footprint);
    let mut report = s.seal(&stream, 1, 0).unwrap();
    let sealed_dead = dead.seal(&stream, 1, 0).unwrap();
    assert_eq!(dead.held_bytes(), 0);
    report.files.extend(sealed_dead.files);
    assert_eq!(
        (report.rows, sealed_dead.dead_letters, report.files.len()),
        (3, 1, 3)
    );
    assert!(
        crate::lake::list_parquet(dir.path()).unwrap().is_empty(),
        "nothing visible before the commit renames"
    );
    let store = crate::lake::Store::local(dir.path().to_str().unwrap());
    for (tmp, dest) in &report.files {
        store.publish(tmp, dest).unwrap();
    }
    let files = crate::lake::list_parquet(&dir.path().join("t")).unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
        .collect();
    assert_eq!(
        names,
        vec![
            "t/dt=1970-01-01/hr=05/part-topic-1-10-12.parquet",
            "t/dt=1970-01-01/hr=06/part-topic-1-11-11.parquet",
        ]
    );
    let f = File::open(&files[0]).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap();
    let total: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(total, 2);
    assert!(
        dir.path()
            .join("_dead_letter/t/part-topic-1-9-9.parquet")
            .exists()
    );
}

/// Rolling with an injected clock (no sleeps): by rows, by age, by inactivity of a quiet
/// partition, and by the cap on open files.
#[test]
fn rolling_is_due_by_rows_age_inactivity_and_the_open_file_cap() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = sink(dir.path(), 2);
    let stream: Arc<str> = "t".into();
    let key = |p: i32| (stream.clone(), p);
    let t0 = Instant::now();
    let at = |secs: u64| t0 + Duration::from_secs(secs);
    s.append(&stream, 0, &rows(&[(0, 0)]), t0).unwrap();
    s.append(&stream, 1, &rows(&[(0, 0), (1, 1)]), t0).unwrap();
    assert_eq!(s.due(t0), vec![(key(1), "rows")]);
    let mut s = sink(dir.path(), 1000);
    s.append(&stream, 0, &rows(&[(0, 0)]), t0).unwrap();
    // Partition 0 keeps getting rows every 5 s: never inactive, due by age at 60 s.
    let mut due = Vec::new();
    for t in (5..=60).step_by(5) {
        s.append(&stream, 0, &rows(&[(t as i64, 0)]), at(t))
            .unwrap();
        due = s.due(at(t));
        due.retain(|(k, _)| *k == key(0));
        if !due.is_empty() {
            assert_eq!((t, due[0].1), (60, "age"));
            break;
        }
    }
    assert!(!due.is_empty());
    // A quiet partition closes its file 10 s after its last row, to the millisecond.
    s.append(&stream, 2, &rows(&[(0, 0)]), at(100)).unwrap();
    let quiet = |d: Duration| {
        s.due(at(100) + d)
            .into_iter()
            .filter(|(k, _)| *k == key(2))
            .collect::<Vec<_>>()
    };
    assert!(quiet(Duration::from_millis(9_999)).is_empty());
    assert_eq!(quiet(Duration::from_secs(10)), vec![(key(2), "inactivity")]);
}

#[test]
fn the_oldest_files_partition_rolls_over_the_open_file_cap() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = sink(dir.path(), 1000);
    let stream: Arc<str> = "t".into();
    let t0 = Instant::now();
    // Four hours of partition 0 opened first, then one file of partition 1: five files, cap 3.
    for h in 0..4 {
        s.append(&stream, 0, &rows(&[(h, h * H)]), t0).unwrap();
    }
    s.append(&stream, 1, &rows(&[(9, 0)]), t0 + Duration::from_millis(1))
        .unwrap();
    assert_eq!(s.open_files(), 5);
    assert_eq!(
        s.due(t0 + Duration::from_millis(2)),
        vec![((stream.clone(), 0), "open_files")]
    );
}

#[test]
fn several_normalizations_of_a_feature_get_their_own_columns() {
    let slot = |norm, column: &str| crate::normalize::Slot {
        feature: 0,
        norm: Some(norm),
        column: column.into(),
    };
    let schema = OutputSchema::new(
        vec!["temp".into()],
        vec![],
        true,
        vec![
            (slot(0, "temp_z5m"), Outputs::ALL),
            (slot(1, "temp_mm1h"), Outputs::ALL),
        ],
    );
    let names: Vec<String> = schema
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        &names[5..],
        &[
            "temp",
            "temp_z5m",
            "temp_z5m_center",
            "temp_z5m_scale",
            "temp_z5m_n",
            "temp_z5m_status",
            "temp_mm1h",
            "temp_mm1h_center",
            "temp_mm1h_scale",
            "temp_mm1h_n",
            "temp_mm1h_status"
        ]
    );
}

/// `outputs = ["status", "y"]`: the slot's columns are those two, in file order, with the
/// values the full five have; the others are absent, also from the normalized codec's list.
#[test]
fn a_normalization_writes_only_its_chosen_outputs() {
    let slot = crate::normalize::Slot {
        feature: 0,
        norm: Some(0),
        column: "v_z".into(),
    };
    let chosen = Outputs::of([Output::Status, Output::Y]);
    let some = OutputSchema::new(
        vec!["v".into()],
        vec![(0, "site".into(), PassType::String)],
        true,
        vec![(slot, chosen)],
    );
    let names: Vec<&str> = some
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(&names[5..], &["site", "v", "v_z", "v_z_status"]);
    assert_eq!(some.normalized_columns().collect::<Vec<_>>(), vec!["v_z"]);
    let out = rows(&[(0, 1_000), (1, 2_000), (2, 3_000), (3, 4_000)]);
    let all = schema().build("s", 0, &out).unwrap();
    let part = some.build("s", 0, &out).unwrap();
    assert_eq!(part.num_columns(), 9);
    for name in ["key", "v", "v_z", "v_z_status"] {
        let (a, b) = (all.column_by_name(name), part.column_by_name(name));
        assert_eq!(a.unwrap().as_ref(), b.unwrap().as_ref(), "{name}");
    }
    assert!(part.column_by_name("v_z_center").is_none());
    let y = part.column_by_name("v_z").unwrap();
    assert!(y.null_count() < y.len(), "some normalized values");
}

#[test]
fn parquet_settings_reach_the_file() {
    use parquet::basic::Encoding;
    let dir = tempfile::tempdir().unwrap();
    let s = schema();
    let plain: Vec<&str> = s.plain_columns().collect();
    let settings = ParquetSettings {
        row_group_rows: Some(2),
        dictionary: vec![("key".into(), false), ("v".into(), true)],
        statistics: EnabledStatistics::Page,
        codecs: vec![("v_z".into(), Compression::UNCOMPRESSED)],
    };
    let props = writer_properties(Compression::SNAPPY, &plain, "cafe", &settings);
    let mut sink = Sink::new(
        Layout::new(dir.path().to_str().unwrap(), "t"),
        &table(
            s.clone(),
            props,
            RollingPolicy {
                max_rows: 1000,
                max_bytes: 1 << 30,
                max_age: Duration::from_secs(60),
                inactivity: Duration::from_secs(60),
                max_open_files: 10,
            },
        ),
    );
    let stream: Arc<str> = "t".into();
    sink.append(
        &stream,
        0,
        &rows(&[(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]),
        Instant::now(),
    )
    .unwrap();
    let sealed = sink.seal(&stream, 0, 0).unwrap();
    let (tmp, _) = &sealed.files[0];
    let b = ParquetRecordBatchReaderBuilder::try_new(File::open(dir.path().join(tmp)).unwrap())
        .unwrap();
    let meta = b.metadata();
    assert_eq!(meta.num_row_groups(), 3, "row groups of 2 rows");
    let col = |name: &str| {
        meta.row_group(0)
            .columns()
            .iter()
            .find(|c| c.column_path().string() == name)
            .unwrap()
            .encodings()
            .collect::<Vec<_>>()
    };
    let dict = |e: &Vec<Encoding>| {
        e.contains(&Encoding::RLE_DICTIONARY) || e.contains(&Encoding::PLAIN_DICTIONARY)
    };
    assert!(!dict(&col("key")), "dictionary off by configuration");
    let codec = |name: &str| {
        let mut chunks = meta.row_group(0).columns().iter();
        chunks
            .find(|c| c.column_path().string() == name)
            .unwrap()
            .compression()
    };
    assert_eq!(
        codec("v_z"),
        Compression::UNCOMPRESSED,
        "a column's own codec"
    );
    assert_eq!(
        codec("v"),
        Compression::SNAPPY,
        "the table's codec elsewhere"
    );
    assert!(
        dict(&col("v")),
        "dictionary on by configuration for a float column"
    );
    assert!(!dict(&col("v_z")), "float columns default to no dictionary");
    assert!(
        !dict(&col("kafka_offset")) && !dict(&col("event_time")),
        "nor do the offset and the event time"
    );
    assert!(
        dict(&col("v_z_n")),
        "other integer columns default to a dictionary"
    );
    assert!(
        dict(&col("v_z_status")),
        "string columns default to a dictionary"
    );
    let chunk = meta.row_group(0).column(0);
    assert!(
        chunk.column_index_offset().is_some() && chunk.offset_index_offset().is_some(),
        "page index written"
    );
    assert_eq!(
        meta.row_group(0).column(0).compression(),
        parquet::basic::Compression::SNAPPY
    );
    let kv = meta.file_metadata().key_value_metadata().unwrap();
    assert!(
        kv.iter()
            .any(|k| k.key == "normlake.config_hash" && k.value.as_deref() == Some("cafe"))
    );
    assert!(kv.iter().any(|k| k.key == "normlake.version"));
}
