use super::*;

#[test]
fn escapes_as_hive_does_and_round_trips() {
    assert_eq!(escape(Some("eu-west-1a")), "eu-west-1a");
    assert_eq!(escape(Some("a/b")), "a%2Fb");
    assert_eq!(escape(Some("../..")), "..%2F..");
    assert_eq!(escape(Some("x=1")), "x%3D1");
    assert_eq!(escape(Some("50%")), "50%25");
    assert_eq!(escape(Some("a\nb\u{0}")), "a%0Ab%00");
    assert_eq!(escape(Some("ünï cödé 日本")), "ünï cödé 日本");
    assert_eq!(escape(Some("")), DEFAULT_PARTITION);
    assert_eq!(escape(None), DEFAULT_PARTITION);
    for v in [
        "a/b",
        "../..",
        "x=1",
        "50%",
        "a\nb\u{0}",
        "ünï cödé 日本",
        "#'*:?\\{[]^\"\u{7f}",
    ] {
        assert_eq!(unescape(&escape(Some(v))), v);
        assert!(!escape(Some(v)).contains('/'));
    }
    assert!(crate::partition_value::fits(&"x".repeat(MAX_VALUE_BYTES)));
    assert!(!crate::partition_value::fits(
        &"/".repeat(MAX_VALUE_BYTES / 3 + 1)
    ));
}

#[test]
fn time_buckets_follow_the_pattern_and_the_zone() {
    let ts = 1_795_000_000_000; // 2026-11-18T11:06:40Z
    let utc = Partitioning::default();
    let (s, e, p) = utc.time_bucket(ts);
    assert_eq!(p, "dt=2026-11-18/hr=11");
    assert_eq!((s, e), (1_794_999_600_000, 1_795_003_200_000));
    let daily = Partitioning::new("dt=%Y-%m-%d", "Asia/Tokyo", vec![]).unwrap();
    assert_eq!(daily.time_bucket(ts).2, "dt=2026-11-18");
    // 2026-11-18T15:30Z is already the 19th in Tokyo.
    assert_eq!(daily.time_bucket(1_795_015_800_000).2, "dt=2026-11-19");
    assert_eq!(utc.time_bucket(1_795_015_800_000).2, "dt=2026-11-18/hr=15");
    let minute = Partitioning::new("dt=%Y-%m-%d/hr=%H/min=%M", "UTC", vec![]).unwrap();
    let (s, e, p) = minute.time_bucket(ts);
    assert_eq!(p, "dt=2026-11-18/hr=11/min=06");
    assert_eq!(e - s, 60_000);
    // Before 1970.
    assert_eq!(utc.time_bucket(-1).2, "dt=1969-12-31/hr=23");
    // A day in Berlin at the end of daylight saving time has 25 hours.
    let berlin = Partitioning::new("dt=%Y-%m-%d", "Europe/Berlin", vec![]).unwrap();
    let (s, e, p) = berlin.time_bucket(1_792_900_800_000); // 2026-10-25T04:00Z
    assert_eq!(p, "dt=2026-10-25");
    assert_eq!(e - s, 25 * 3_600_000);
}

#[test]
fn a_directory_tells_the_end_of_its_bucket() {
    let utc = Partitioning::default();
    for ts in [1_795_000_000_000, -1, 0, 1_792_900_800_000] {
        let (_, end, path) = utc.time_bucket(ts);
        assert_eq!(utc.bucket_end_of(&path), Some(end), "{path}");
    }
    let berlin =
        Partitioning::new("dt=%Y-%m-%d", "Europe/Berlin", vec![("site".into(), 0)]).unwrap();
    let (_, end, path) = berlin.time_bucket(1_792_900_800_000);
    assert_eq!(berlin.bucket_end_of(&format!("{path}/site=x")), Some(end));
    let minute = Partitioning::new("dt=%Y-%m-%d/hr=%H/min=%M", "UTC", vec![]).unwrap();
    let (_, end, path) = minute.time_bucket(1_795_000_000_000);
    assert_eq!(minute.bucket_end_of(&path), Some(end));
    assert_eq!(utc.bucket_end_of("dt=2026-11-18"), None, "too few segments");
    assert_eq!(
        utc.bucket_end_of("dt=__HIVE_DEFAULT_PARTITION__/hr=__HIVE_DEFAULT_PARTITION__"),
        None
    );
}

#[test]
fn bad_patterns_say_why() {
    assert!(matches!(
        Partitioning::new("dt", "UTC", vec![]),
        Err(PartitionSpecError::Segment(_))
    ));
    assert!(matches!(
        Partitioning::new("d t=%Y", "UTC", vec![]),
        Err(PartitionSpecError::Name(_))
    ));
    assert!(matches!(
        Partitioning::new("dt=%Y-%S", "UTC", vec![]),
        Err(PartitionSpecError::Specifier(_))
    ));
    assert!(matches!(
        Partitioning::new("dt=fixed", "UTC", vec![]),
        Err(PartitionSpecError::Specifier(_))
    ));
    assert!(matches!(
        Partitioning::new("dt=%Y", "Mars/Olympus", vec![]),
        Err(PartitionSpecError::Zone(_))
    ));
    assert!(matches!(
        Partitioning::new("dt=%Y", "UTC", vec![("dt".into(), 0)]),
        Err(PartitionSpecError::Duplicate(_))
    ));
    let fields = Partitioning::new("", "UTC", vec![("site".into(), 0)]).unwrap();
    assert_eq!(fields.time_bucket(5).2, "");
    assert_eq!(fields.field_path(&[Some("a/b")]), "site=a%2Fb");
}
