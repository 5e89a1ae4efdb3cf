//! The operator's view of a running job: `/metrics`, `/healthz` and `/readyz` scraped during
//! an end-to-end run against the real broker, checked against what was produced and what the
//! lake holds.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::broker::{Broker, free_port};
use common::job::{self, Job};
use common::{scrape, wait_for};

const EVENTS: u64 = 20_000;

#[tokio::test(flavor = "multi_thread")]
async fn metrics_match_what_was_produced_written_and_dead_lettered() {
    let _one_at_a_time = job::exclusive().await;
    let broker = Broker::start();
    broker.create_topic("obs", 2).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("lake");
    let cfg = job::write_config(
        dir.path(),
        "obs.toml",
        &job::config(&broker.addr(), "obs", "obs-g", &root, ""),
    );
    let port = free_port();
    let log = dir.path().join("job.log");
    let port_arg = format!("127.0.0.1:{port}");
    let mut job = Job::start_with(
        &cfg,
        false,
        &log,
        &["--metrics-listen", &port_arg, "--progress-every", "200ms"],
    );

    // Live as soon as it serves; ready only once partitions are assigned and the lake writable.
    let (status, body) = wait_for("/healthz", Duration::from_secs(30), || {
        scrape::get(port, "/healthz")
    });
    assert_eq!((status, body.trim()), (200, "ok"));
    wait_for("/readyz to be 200", Duration::from_secs(60), || {
        scrape::get(port, "/readyz").filter(|(s, _)| *s == 200)
    });

    let addr = broker.addr();
    tokio::task::spawn_blocking(move || job::produce(&addr, "obs", EVENTS))
        .await
        .expect("produce");
    // Every record is accounted for in the metrics: written, dead-lettered or buffered for the
    // watermark (gauges refresh with the progress line).
    let samples = wait_for(
        "every record to be accounted for",
        Duration::from_secs(120),
        || {
            let (_, text) = scrape::get(port, "/metrics")?;
            let s = scrape::samples(&text);
            let consumed = scrape::value(&s, "normlake_records_consumed_total");
            let written = scrape::value(&s, "normlake_rows_written_total");
            let dead = scrape::sum(&s, "normlake_dead_letters_total", &[]);
            let buffered = scrape::value(&s, "normlake_buffered_events");
            (consumed == EVENTS as f64 && written + dead + buffered == consumed && dead > 0.0)
                .then_some(s)
        },
    );
    eprintln!("{samples:#?}");

    // The lake holds exactly what the counters say was committed.
    let content = job::content(&root);
    // Rows are keyed by (partition, offset, feature).
    let lake_rows = content.rows["z1m"]
        .keys()
        .map(|(p, o, _)| (*p, *o))
        .collect::<std::collections::BTreeSet<_>>()
        .len() as f64;
    assert_eq!(
        scrape::value(&samples, "normlake_rows_written_total"),
        lake_rows,
        "rows written"
    );
    let mut by_reason: BTreeMap<&str, f64> = BTreeMap::new();
    for reason in content.dead.values() {
        *by_reason.entry(reason.as_str()).or_default() += 1.0;
    }
    assert!(by_reason.contains_key("malformed_json") && by_reason.contains_key("late_event"));
    for (reason, n) in &by_reason {
        let label = format!("reason=\"{reason}\"");
        assert_eq!(
            scrape::sum(&samples, "normlake_dead_letters_total", &[&label]),
            *n,
            "dead letters of reason {reason}"
        );
    }
    assert_eq!(
        scrape::value(&samples, "normlake_late_events_total"),
        by_reason["late_event"]
    );
    let files = job::lake_files(&root);
    assert_eq!(
        scrape::value(&samples, "normlake_files_committed_total"),
        files.len() as f64
    );
    let bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    assert_eq!(
        scrape::value(&samples, "normlake_committed_bytes_total"),
        bytes as f64
    );
    assert!(scrape::value(&samples, "normlake_commits_total") >= 2.0);
    assert!(scrape::value(&samples, "normlake_commit_duration_seconds_count") >= 2.0);
    assert_eq!(scrape::value(&samples, "normlake_assigned_partitions"), 2.0);
    assert_eq!(scrape::value(&samples, "normlake_state_keys"), 64.0);
    assert!(scrape::value(&samples, "normlake_state_bytes") > 0.0);

    // Latency histograms from every source: every committed row counted, buckets cumulative.
    for from in ["event_time", "kafka_time", "received"] {
        let count = scrape::value(
            &samples,
            &format!("normlake_latency_seconds_count{{from=\"{from}\"}}"),
        );
        assert_eq!(count, lake_rows, "{from}: every committed row is measured");
        let label = format!("from=\"{from}\"");
        let buckets: Vec<(f64, f64)> = samples
            .iter()
            .filter(|(k, _)| {
                k.starts_with("normlake_latency_seconds_bucket{") && k.contains(&label)
            })
            .map(|(k, v)| {
                let le = k.split("le=\"").nth(1).and_then(|r| r.split('"').next());
                let le = le.map_or(f64::NAN, |l| l.parse().unwrap_or(f64::INFINITY));
                (le, *v)
            })
            .collect();
        let mut sorted = buckets.clone();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert_eq!(sorted.len(), 18, "{from}: 17 buckets and +Inf");
        assert!(
            sorted.windows(2).all(|w| w[0].1 <= w[1].1),
            "{from}: {sorted:?}"
        );
        assert_eq!(sorted.last().map(|b| b.1), Some(lake_rows));
    }
    // Every dead-letter reason has a series from the start; the build and the process too.
    assert_eq!(
        scrape::sum(
            &samples,
            "normlake_dead_letters_total",
            &["reason=\"empty_message\""]
        ),
        0.0
    );
    assert!(samples.contains_key("normlake_dead_letters_total{reason=\"number_out_of_range\"}"));
    assert!(
        samples
            .keys()
            .any(|k| k.starts_with("normlake_build_info{"))
    );
    assert!(scrape::value(&samples, "process_resident_memory_bytes") > 0.0);
    assert!(scrape::value(&samples, "process_open_fds") > 0.0);
    assert!(scrape::value(&samples, "normlake_last_commit_timestamp_seconds") > 1.7e9);
    for p in 0..2 {
        let owned = format!("normlake_partition_owned{{topic=\"obs\",partition=\"{p}\"}}");
        assert_eq!(scrape::value(&samples, &owned), 1.0, "{owned}");
        let lag = format!("normlake_watermark_lag_seconds{{topic=\"obs\",partition=\"{p}\"}}");
        assert!(scrape::value(&samples, &lag) > 0.0, "{lag}");
    }

    // Consumer lag per partition from librdkafka's statistics: present, and 0 once committed.
    wait_for(
        "consumer lag of both partitions at 0",
        Duration::from_secs(30),
        || {
            let (_, text) = scrape::get(port, "/metrics")?;
            let s = scrape::samples(&text);
            let series: Vec<f64> = (0..2)
                .filter_map(|p| {
                    s.get(&format!(
                        "normlake_consumer_lag_messages{{topic=\"obs\",partition=\"{p}\"}}"
                    ))
                    .copied()
                })
                .collect();
            (series == [0.0, 0.0]).then_some(())
        },
    );

    // No high-cardinality label: no key, no Hive partition value.
    let (_, text) = scrape::get(port, "/metrics").expect("scrape");
    assert!(!text.contains("\"s000") && !text.contains("dt="), "{text}");

    job.terminate();
    assert_eq!(job.wait(Duration::from_secs(60)), Some(true));
}
