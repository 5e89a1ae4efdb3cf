use super::*;

fn decoder() -> Decoder {
    Decoder::new(InputSpec {
        format: InputFormat::Json,
        key: KeySource::Field("sensor_id".into()),
        time_field: "ts".into(),
        time_format: TimeFormat::EpochMillis,
        features: vec!["temp".into(), "hum".into(), "pres".into()],
        passthrough: vec!["site".into()],
        max_ahead_ms: None,
        partition_fields: Vec::new(),
    })
}

#[test]
fn decodes_typed_fields_and_feature_states() {
    let d = decoder()
        .decode(
            None,
            br#"{"sensor_id":"s1","ts":1700000000123,"site":"eu","temp":1.5,"hum":null,"pres":"x","extra":{"a":[1]}}"#,
        )
        .unwrap();
    assert_eq!(&*d.key, "s1");
    assert_eq!(d.ts_ms, 1_700_000_000_123);
    assert_eq!(
        d.features,
        vec![
            FeatureValue::Value(1.5),
            FeatureValue::Missing,
            FeatureValue::Invalid
        ]
    );
    assert_eq!(d.passthrough, vec![PassValue::Text("eu".to_string())]);
}

#[test]
fn absent_feature_is_missing_and_objects_or_bools_are_invalid() {
    let d = decoder()
        .decode(
            None,
            br#"{"sensor_id":"s1","ts":1,"temp":true,"hum":{"v":1}}"#,
        )
        .unwrap();
    assert_eq!(
        d.features,
        vec![
            FeatureValue::Invalid,
            FeatureValue::Invalid,
            FeatureValue::Missing
        ]
    );
}

#[test]
fn record_level_rejections_follow_the_spec() {
    let dec = decoder();
    let cases: [(&[u8], Reject); 8] = [
        (br#"{"sensor_id":"s001","ts":"#, Reject::MalformedJson),
        (b"not json at all", Reject::MalformedJson),
        (b"[1,2,3]", Reject::NotAnObject),
        (br#""just a string""#, Reject::NotAnObject),
        (br#"{"ts":1795737600000,"temp":1.0}"#, Reject::MissingKey),
        (
            br#"{"sensor_id":"","ts":1795737600000}"#,
            Reject::MissingKey,
        ),
        (
            br#"{"sensor_id":"s002","ts":"yesterday","temp":1.0}"#,
            Reject::MissingOrInvalidTime,
        ),
        (
            br#"{"sensor_id":"s001","ts":null,"temp":2.0}"#,
            Reject::MissingOrInvalidTime,
        ),
    ];
    for (input, want) in cases {
        assert_eq!(
            dec.decode(None, input),
            Err(want),
            "{}",
            String::from_utf8_lossy(input)
        );
    }
    assert_eq!(
        dec.decode(None, br#"{"sensor_id":"a","ts":1} x"#),
        Err(Reject::MalformedJson)
    );
}

/// Feature values are parsed correctly rounded (serde_json's `float_roundtrip`), the same
/// as Rust's own parser, so no input value is off by an ulp before any statistic.
#[test]
fn numbers_are_parsed_correctly_rounded() {
    let dec = decoder();
    for text in [
        "-1.5820324406753945",
        "2.5409529286441446",
        "18.702",
        "1e-300",
        "0.1",
    ] {
        let v = format!(r#"{{"sensor_id":"a","ts":1,"temp":{text}}}"#);
        let want: f64 = text.parse().unwrap();
        assert_eq!(
            dec.decode(None, v.as_bytes()).unwrap().features[0],
            FeatureValue::Value(want),
            "{text}"
        );
    }
}

/// Every class of hostile input has one defined outcome.
#[test]
fn hostile_inputs_have_defined_outcomes() {
    let dec = decoder();
    let ok = |v: &[u8]| dec.decode(None, v);
    // Empty values and tombstones.
    assert_eq!(ok(b""), Err(Reject::EmptyMessage));
    assert_eq!(ok(b" \n\t"), Err(Reject::EmptyMessage));
    assert_eq!(ok(b"{}"), Err(Reject::MissingKey));
    // Non-UTF-8 bytes: in a field normlake reads, or outside strings, the record is
    // malformed; inside a string of a field it ignores, they are skipped unread.
    assert_eq!(
        ok(b"{\"sensor_id\":\"a\",\"ts\":1,\"site\":\"\xff\xfe\"}"),
        Err(Reject::MalformedJson)
    );
    assert!(ok(b"{\"sensor_id\":\"a\",\"ts\":1,\"note\":\"\xff\xfe\"}").is_ok());
    assert_eq!(ok(b"\xff{}"), Err(Reject::MalformedJson));
    // Deep nesting (100,000 levels) never recurses: serde_json skips what the visitor
    // ignores iteratively. Ignored: the record decodes; as a feature: invalid; at the top
    // level: not an object; unclosed: malformed.
    let n = 100_000;
    let (open, close) = ("[".repeat(n), "]".repeat(n));
    let deep = format!(r#"{{"sensor_id":"a","ts":1,"x":{open}{close}}}"#);
    assert!(ok(deep.as_bytes()).is_ok());
    let deep = format!(r#"{{"sensor_id":"a","ts":1,"temp":{open}{close}}}"#);
    assert_eq!(
        ok(deep.as_bytes()).unwrap().features[0],
        FeatureValue::Invalid
    );
    let objs = format!(
        r#"{{"sensor_id":"a","ts":1,"temp":{}1{}}}"#,
        r#"{"a":"#.repeat(n),
        "}".repeat(n)
    );
    assert_eq!(
        ok(objs.as_bytes()).unwrap().features[0],
        FeatureValue::Invalid
    );
    assert_eq!(
        ok(format!("{open}{close}").as_bytes()),
        Err(Reject::NotAnObject)
    );
    assert_eq!(ok(open.as_bytes()), Err(Reject::MalformedJson));
    // Numbers out of range: beyond f64 is refused; beyond i64 becomes a float.
    assert_eq!(
        ok(br#"{"sensor_id":"a","ts":1,"temp":1e400}"#),
        Err(Reject::NumberOutOfRange)
    );
    let big = ok(br#"{"sensor_id":"a","ts":1,"temp":123456789012345678901234567890}"#).unwrap();
    assert_eq!(big.features[0], FeatureValue::Value(1.2345678901234568e29));
    assert_eq!(
        ok(br#"{"sensor_id":"a","ts":1,"temp":-1e308}"#)
            .unwrap()
            .features[0],
        FeatureValue::Value(-1e308)
    );
    // Duplicate fields: the last occurrence wins, as in JavaScript's JSON.parse.
    let dup = ok(br#"{"sensor_id":"a","ts":1,"temp":1,"temp":2,"sensor_id":"b"}"#).unwrap();
    assert_eq!(
        (&*dup.key, &dup.features[0]),
        ("b", &FeatureValue::Value(2.0))
    );
    // Empty strings: an empty key is missing, an empty feature invalid, a pass-through kept.
    let e = ok(br#"{"sensor_id":"a","ts":1,"temp":"","site":""}"#).unwrap();
    assert_eq!(e.features[0], FeatureValue::Invalid);
    assert_eq!(e.passthrough[0].as_str(), Some(""));
    // Keys with control characters are kept byte for byte (they never become paths).
    let k = ok(b"{\"sensor_id\":\"a\\u0000b\\n\\u001b[31m\",\"ts\":1}").unwrap();
    assert_eq!(&*k.key, "a\u{0}b\n\u{1b}[31m");
    // Times before 1970 are valid; beyond years 0001-9999 they are out of range.
    assert_eq!(
        ok(br#"{"sensor_id":"a","ts":-86400000}"#).unwrap().ts_ms,
        -86_400_000
    );
    for ts in [
        "-62135596800001",
        "253402300800000",
        "9223372036854775807",
        "1e300",
    ] {
        let v = format!("{{\"sensor_id\":\"a\",\"ts\":{ts}}}");
        let want = if ts == "1e300" {
            Reject::MissingOrInvalidTime
        } else {
            Reject::TimeOutOfRange
        };
        assert_eq!(ok(v.as_bytes()), Err(want), "{ts}");
    }
    // A time far ahead of the record's Kafka timestamp is refused (when configured).
    let mut spec = dec.spec().clone();
    spec.max_ahead_ms = Some(3_600_000);
    let bounded = Decoder::new(spec);
    let v = br#"{"sensor_id":"a","ts":7200001}"#;
    assert_eq!(
        bounded.decode_at(None, v, Some(3_600_000)),
        Err(Reject::TimeOutOfRange)
    );
    assert!(bounded.decode_at(None, v, Some(3_600_001)).is_ok());
    assert!(
        bounded.decode_at(None, v, None).is_ok(),
        "no Kafka time: no bound"
    );
    // A huge value decodes (librdkafka's limit is the only size limit).
    let mut huge = br#"{"sensor_id":"a","ts":1,"pad":""#.to_vec();
    huge.extend(std::iter::repeat_n(b'x', 64 << 20));
    huge.extend(br#"","temp":3.5}"#);
    assert_eq!(ok(&huge).unwrap().features[0], FeatureValue::Value(3.5));
}

#[test]
fn kafka_key_and_rfc3339_time() {
    let dec = Decoder::new(InputSpec {
        format: InputFormat::Json,
        key: KeySource::KafkaKey,
        time_field: "at".into(),
        time_format: TimeFormat::Rfc3339,
        features: vec!["v".into()],
        passthrough: vec![],
        max_ahead_ms: None,
        partition_fields: Vec::new(),
    });
    let d = dec
        .decode(Some(b"k9"), br#"{"at":"2026-11-26T02:00:00.5Z","v":3}"#)
        .unwrap();
    assert_eq!(&*d.key, "k9");
    assert_eq!(d.ts_ms, 1_795_658_400_500);
    assert_eq!(d.features, vec![FeatureValue::Value(3.0)]);
    assert_eq!(
        dec.decode(None, br#"{"at":"2026-11-26T02:00:00Z"}"#),
        Err(Reject::MissingKey)
    );
}

#[test]
fn integer_keys_are_rendered_in_decimal() {
    let d = decoder()
        .decode(None, br#"{"sensor_id":42,"ts":5}"#)
        .unwrap();
    assert_eq!(&*d.key, "42");
}

fn timed(time_field: &str, fmt: &str) -> Decoder {
    Decoder::new(InputSpec {
        format: InputFormat::Json,
        key: KeySource::KafkaKey,
        time_field: time_field.into(),
        time_format: TimeFormat::try_from(fmt.to_string()).unwrap(),
        features: vec!["v".into()],
        passthrough: vec![],
        max_ahead_ms: None,
        partition_fields: Vec::new(),
    })
}

#[test]
fn micro_and_nanosecond_times_round_down_to_milliseconds() {
    let micros = timed("t", "epoch_micros");
    let at = |d: &Decoder, v: &str| {
        d.decode(Some(b"k"), format!(r#"{{"t":{v},"v":1}}"#).as_bytes())
            .map(|d| d.ts_ms)
    };
    assert_eq!(at(&micros, "1795658400500999"), Ok(1_795_658_400_500));
    assert_eq!(at(&micros, "-1500"), Ok(-2), "before 1970, rounded down");
    assert_eq!(at(&micros, "1795658400500999.5"), Ok(1_795_658_400_500));
    let nanos = timed("t", "epoch_nanos");
    assert_eq!(at(&nanos, "1795658400500999999"), Ok(1_795_658_400_500));
    assert_eq!(
        at(&nanos, "\"1795658400500999999\""),
        Err(Reject::MissingOrInvalidTime)
    );
}

#[test]
fn a_strftime_pattern_reads_local_times_as_utc_and_offsets_when_given() {
    let utc = timed("t", "%Y-%m-%d %H:%M:%S%.f");
    let d = utc
        .decode(Some(b"k"), br#"{"t":"2026-11-26 02:00:00.250","v":1}"#)
        .unwrap();
    assert_eq!(d.ts_ms, 1_795_658_400_250);
    let zoned = timed("t", "%d/%m/%Y %H:%M %z");
    let d = zoned
        .decode(Some(b"k"), br#"{"t":"26/11/2026 03:00 +0100","v":1}"#)
        .unwrap();
    assert_eq!(d.ts_ms, 1_795_658_400_000);
    assert_eq!(
        utc.decode(Some(b"k"), br#"{"t":"yesterday","v":1}"#),
        Err(Reject::MissingOrInvalidTime)
    );
    assert!(TimeFormat::try_from("epoch_milis".to_string()).is_err());
    assert!(TimeFormat::try_from("%Y-%Q".to_string()).is_err());
    assert_eq!(
        String::from(TimeFormat::try_from("%Y".to_string()).unwrap()),
        "%Y"
    );
}

#[test]
fn the_kafka_timestamp_can_be_the_event_time() {
    let d = timed(KAFKA_TIMESTAMP, "epoch_millis");
    let got = d
        .decode_at(
            Some(b"k"),
            br#"{"v":1,"@kafka_timestamp":5}"#,
            Some(1_795_658_400_000),
        )
        .unwrap();
    assert_eq!(
        got.ts_ms, 1_795_658_400_000,
        "the record's field is not read"
    );
    assert_eq!(
        d.decode_at(Some(b"k"), br#"{"v":1}"#, None),
        Err(Reject::MissingOrInvalidTime)
    );
    assert_eq!(
        d.decode_at(Some(b"k"), br#"{"v":1}"#, Some(-1)),
        Err(Reject::MissingOrInvalidTime)
    );
}

fn nested_spec(format: InputFormat) -> InputSpec {
    InputSpec {
        format,
        key: KeySource::Field("meta.id".into()),
        time_field: "meta.ts".into(),
        time_format: TimeFormat::EpochMillis,
        features: vec!["payload.temp".into(), "hum".into()],
        passthrough: vec![
            PassField::string("meta.site"),
            PassField {
                path: "payload.count".into(),
                kind: PassType::Int64,
            },
            PassField {
                path: "payload.ratio".into(),
                kind: PassType::Float64,
            },
            PassField {
                path: "ok".into(),
                kind: PassType::Bool,
            },
            PassField {
                path: "seen".into(),
                kind: PassType::Timestamp,
            },
        ],
        max_ahead_ms: None,
        partition_fields: Vec::new(),
    }
}

#[test]
fn nested_paths_reach_into_objects_and_become_underscored_columns() {
    let dec = Decoder::new(nested_spec(InputFormat::Json));
    let d = dec
        .decode(
            None,
            br#"{"meta":{"id":"s1","ts":1000,"site":"eu","x":{"deep":[1]}},"hum":2,
                "payload":{"temp":1.5,"count":7,"ratio":3,"other":{"a":1}},"ok":true,"seen":2000}"#,
        )
        .unwrap();
    assert_eq!((&*d.key, d.ts_ms), ("s1", 1000));
    assert_eq!(
        d.features,
        vec![FeatureValue::Value(1.5), FeatureValue::Value(2.0)]
    );
    assert_eq!(
        d.passthrough,
        vec![
            PassValue::Text("eu".into()),
            PassValue::Int(7),
            PassValue::Float(3.0),
            PassValue::Bool(true),
            PassValue::Micros(2_000_000),
        ]
    );
    assert_eq!(column_name("payload.temp"), "payload_temp");
    // A path whose parent is not an object is absent, not an error.
    let d = dec
        .decode(None, br#"{"meta":{"id":"s1","ts":1},"payload":5}"#)
        .unwrap();
    assert_eq!(d.features[0], FeatureValue::Missing);
    assert_eq!(
        dec.decode(None, br#"{"meta":"s1","ts":1}"#),
        Err(Reject::MissingKey)
    );
}

#[test]
fn typed_pass_through_values_of_the_wrong_type_are_invalid_and_the_row_is_kept() {
    let dec = Decoder::new(nested_spec(InputFormat::Json));
    let d = dec
        .decode(
            None,
            br#"{"meta":{"id":"s1","ts":1,"site":{"n":1}},"payload":{"count":"7","ratio":true},
                "ok":"yes","seen":"yesterday"}"#,
        )
        .unwrap();
    assert_eq!(d.passthrough, vec![PassValue::Invalid; 5]);
    // Nulls are null, not invalid; whole floats are integers; numbers and booleans are text.
    let d = dec
        .decode(
            None,
            br#"{"meta":{"id":"s1","ts":1,"site":12},"payload":{"count":7.0,"ratio":null},"ok":null}"#,
        )
        .unwrap();
    assert_eq!(
        d.passthrough,
        vec![
            PassValue::Text("12".into()),
            PassValue::Int(7),
            PassValue::Null,
            PassValue::Null,
            PassValue::Null,
        ]
    );
}

#[test]
fn pass_values_read_from_checkpoints_written_as_optional_strings() {
    let old: Vec<Option<String>> = vec![Some("eu".into()), None];
    let bytes = postcard::to_allocvec(&old).unwrap();
    let now: Vec<PassValue> = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(now, vec![PassValue::Text("eu".into()), PassValue::Null]);
}

mod avro {
    use super::*;
    use apache_avro::Schema;
    use apache_avro::types::Value;

    const V1: &str = r#"{"type":"record","name":"Reading","namespace":"t","fields":[
        {"name":"meta","type":{"type":"record","name":"Meta","fields":[
            {"name":"id","type":"string"},{"name":"ts","type":"long"},
            {"name":"site","type":["null","string"],"default":null}]}},
        {"name":"tags","type":{"type":"map","values":{"type":"array","items":"string"}}},
        {"name":"payload","type":{"type":"record","name":"Payload","fields":[
            {"name":"temp","type":["null","double"]},
            {"name":"count","type":"int"},
            {"name":"ratio","type":"float"}]}},
        {"name":"hum","type":"double"},
        {"name":"ok","type":"boolean"},
        {"name":"seen","type":{"type":"long","logicalType":"timestamp-millis"}}]}"#;

    /// Version 2 reorders fields, drops some and adds others.
    const V2: &str = r#"{"type":"record","name":"Reading","namespace":"t","fields":[
        {"name":"hum","type":["null","long"]},
        {"name":"extra","type":{"type":"array","items":"t.Extra2"}},
        {"name":"meta","type":{"type":"record","name":"Meta","fields":[
            {"name":"ts","type":"long"},{"name":"id","type":"string"}]}}]}"#;

    fn datum(schema: &Schema, value: Value) -> Vec<u8> {
        apache_avro::writer::datum::GenericDatumWriter::builder(schema)
            .build()
            .unwrap()
            .write_value_to_vec(value)
            .unwrap()
    }

    fn header(id: u32, body: Vec<u8>) -> Vec<u8> {
        let mut out = vec![0];
        out.extend_from_slice(&id.to_be_bytes());
        out.extend(body);
        out
    }

    fn v1_record() -> Vec<u8> {
        let schema = Schema::parse_str(V1).unwrap();
        let value = Value::Record(vec![
            (
                "meta".into(),
                Value::Record(vec![
                    ("id".into(), Value::String("s1".into())),
                    ("ts".into(), Value::Long(1000)),
                    (
                        "site".into(),
                        Value::Union(1, Box::new(Value::String("eu".into()))),
                    ),
                ]),
            ),
            (
                "tags".into(),
                Value::Map(
                    [(
                        "a".to_string(),
                        Value::Array(vec![Value::String("x".into())]),
                    )]
                    .into(),
                ),
            ),
            (
                "payload".into(),
                Value::Record(vec![
                    ("temp".into(), Value::Union(1, Box::new(Value::Double(1.5)))),
                    ("count".into(), Value::Int(7)),
                    ("ratio".into(), Value::Float(0.5)),
                ]),
            ),
            ("hum".into(), Value::Double(2.0)),
            ("ok".into(), Value::Boolean(true)),
            ("seen".into(), Value::TimestampMillis(2000)),
        ]);
        header(1, datum(&schema, value))
    }

    fn decoder() -> Decoder {
        let mut dec = Decoder::new(nested_spec(InputFormat::AvroConfluent));
        dec.add_schema(1, SchemaLookup::Found(V1.into())).unwrap();
        dec
    }

    #[test]
    fn records_decode_by_name_with_their_writer_schema() {
        let dec = decoder();
        let d = dec.decode(None, &v1_record()).unwrap();
        assert_eq!((&*d.key, d.ts_ms), ("s1", 1000));
        assert_eq!(
            d.features,
            vec![FeatureValue::Value(1.5), FeatureValue::Value(2.0)]
        );
        assert_eq!(
            d.passthrough,
            vec![
                PassValue::Text("eu".into()),
                PassValue::Int(7),
                PassValue::Float(0.5),
                PassValue::Bool(true),
                PassValue::Micros(2_000_000),
            ]
        );
    }

    #[test]
    fn a_second_schema_version_is_followed_record_by_record() {
        let mut dec = decoder();
        let v2 = V2.replace(
            "\"t.Extra2\"",
            r#"{"type":"record","name":"Extra2","fields":[{"name":"n","type":"int"}]}"#,
        );
        assert_eq!(dec.missing_schema(&header(2, vec![])), Some(2));
        dec.add_schema(2, SchemaLookup::Found(v2.clone())).unwrap();
        assert_eq!(dec.missing_schema(&header(2, vec![])), None);
        let schema = Schema::parse_str(&v2).unwrap();
        let value = Value::Record(vec![
            ("hum".into(), Value::Union(0, Box::new(Value::Null))),
            (
                "extra".into(),
                Value::Array(vec![Value::Record(vec![("n".into(), Value::Int(3))])]),
            ),
            (
                "meta".into(),
                Value::Record(vec![
                    ("ts".into(), Value::Long(5)),
                    ("id".into(), Value::String("s2".into())),
                ]),
            ),
        ]);
        let second = header(2, datum(&schema, value));
        let d = dec.decode(None, &second).unwrap();
        assert_eq!((&*d.key, d.ts_ms), ("s2", 5));
        assert_eq!(d.features, vec![FeatureValue::Missing; 2]);
        assert_eq!(d.passthrough, vec![PassValue::Null; 5]);
        // The first version still decodes.
        assert_eq!(&*dec.decode(None, &v1_record()).unwrap().key, "s1");
    }

    #[test]
    fn bad_records_have_their_own_reasons() {
        let mut dec = decoder();
        dec.add_schema(9, SchemaLookup::NotFound).unwrap();
        let good = v1_record();
        assert_eq!(dec.decode(None, b"{\"a\":1}"), Err(Reject::NotAvro));
        assert_eq!(dec.decode(None, &[0, 0, 0]), Err(Reject::NotAvro));
        assert_eq!(dec.decode(None, b""), Err(Reject::EmptyMessage));
        let mut unknown = good.clone();
        unknown[4] = 9;
        assert_eq!(dec.decode(None, &unknown), Err(Reject::UnknownSchema));
        for cut in [6, good.len() / 2, good.len() - 1] {
            assert_eq!(
                dec.decode(None, &good[..cut]),
                Err(Reject::MalformedAvro),
                "cut at {cut}"
            );
        }
        let mut longer = good.clone();
        longer.push(0);
        assert_eq!(dec.decode(None, &longer), Err(Reject::MalformedAvro));
        // A huge block count of empty items is bounded, not a loop.
        let empty: &str = r#"{"type":"record","name":"E","fields":[
            {"name":"xs","type":{"type":"array","items":"null"}}]}"#;
        dec.add_schema(3, SchemaLookup::Found(empty.into()))
            .unwrap();
        let mut hostile = header(
            3,
            vec![0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
        );
        hostile.push(0);
        assert_eq!(dec.decode(None, &hostile), Err(Reject::MalformedAvro));
        // A schema that does not parse is unknown, and says why.
        assert!(dec.add_schema(4, SchemaLookup::Found("{".into())).is_err());
        let mut four = good;
        four[4] = 4;
        assert_eq!(dec.decode(None, &four), Err(Reject::UnknownSchema));
    }

    #[test]
    fn recursive_types_are_skipped() {
        let list = r#"{"type":"record","name":"R","fields":[
            {"name":"next","type":["null","R"]},
            {"name":"meta","type":{"type":"record","name":"M","fields":[
                {"name":"id","type":"string"},{"name":"ts","type":"long"}]}}]}"#;
        let mut dec = Decoder::new(nested_spec(InputFormat::AvroConfluent));
        dec.add_schema(5, SchemaLookup::Found(list.into())).unwrap();
        let schema = Schema::parse_str(list).unwrap();
        let meta = |id: &str| {
            Value::Record(vec![
                ("id".into(), Value::String(id.into())),
                ("ts".into(), Value::Long(9)),
            ])
        };
        let inner = Value::Record(vec![
            ("next".into(), Value::Union(0, Box::new(Value::Null))),
            ("meta".into(), meta("inner")),
        ]);
        let outer = Value::Record(vec![
            ("next".into(), Value::Union(1, Box::new(inner))),
            ("meta".into(), meta("outer")),
        ]);
        let bytes = header(5, datum(&schema, outer));
        assert_eq!(&*dec.decode(None, &bytes).unwrap().key, "outer");
    }
}

#[test]
fn field_lookup_with_a_place_hint_finds_what_the_map_finds() {
    use super::fields::{FieldTree, Role};
    let mut tree = FieldTree::default();
    tree.insert("id", Role::Key);
    tree.insert("ts", Role::Time);
    tree.insert("a.b", Role::Feature(0));
    tree.insert("c", Role::Feature(1));
    tree.insert("a.d", Role::Feature(2));
    let roles = |n: Option<&super::fields::Node>| n.map(|n| n.roles.clone());
    // In the configured order, out of it, with unknown names between, and repeated.
    for names in [
        &["id", "ts", "a", "c"][..],
        &["c", "a", "ts", "id"],
        &["x", "id", "y", "ts", "ts", "c", "zz", "a"],
    ] {
        let mut next = 0;
        for name in names {
            assert_eq!(
                roles(tree.find(name, &mut next)),
                roles(tree.get(name)),
                "{name} in {names:?}"
            );
        }
    }
    let mut next = 0;
    assert_eq!(roles(tree.find("id", &mut next)), Some(vec![Role::Key]));
    assert_eq!(next, 1, "moves past the name found");
    assert!(tree.find("b", &mut next).is_none(), "only the top level");
    assert_eq!(next, 1, "an unknown name leaves the place");
    let below = tree.get("a").map(|n| &n.below).expect("a has names below");
    assert_eq!(roles(below.get("d")), Some(vec![Role::Feature(2)]));
}
