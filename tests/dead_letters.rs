//! Dead letters to a Kafka topic on a second real broker, which is down when the job starts:
//! the job retries and holds its commits (back-pressure) instead of losing or skipping
//! anything, and once the topic is back every rejected record arrives there with its raw key
//! and value and its origin headers, while the lake's rows equal those of an undisturbed run.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::broker::{self, Broker, free_port};
use common::job::{self, Job};
use common::scrape;

const EVENTS: u64 = 6_000;

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_letter_topic_that_is_down_holds_commits_and_loses_nothing() {
    let _one_at_a_time = job::exclusive().await;
    let input = Broker::start();
    input.create_topic("dlq-in", 2).await;
    let mut dlq = Broker::start();
    dlq.create_topic("dead", 1).await;
    dlq.stop();

    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("lake");
    let extra = format!(
        "\n[dead_letter]\ndestination = \"kafka\"\ntopic = \"dead\"\nbrokers = \"{}\"\n[dead_letter.properties]\n\"message.timeout.ms\" = \"1500\"\n",
        dlq.addr()
    );
    let text = job::config(&input.addr(), "dlq-in", "dlq-g", &root, "") + &extra;
    let cfg = job::write_config(dir.path(), "dlq.toml", &text);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let log = dir.path().join("job.log");
    let mut job = Job::start_with(&cfg, false, &log, &["--metrics-listen", &listen]);

    let addr = input.addr();
    tokio::task::spawn_blocking(move || job::produce(&addr, "dlq-in", EVENTS))
        .await
        .expect("produce");
    let ends = broker::end_offsets(&input.addr(), "dlq-in", 2);

    // While the dead-letter topic is down, the job retries and the lake does not reach the end.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let retries = scrape::get(port, "/metrics")
            .map(|(_, t)| scrape::value(&scrape::samples(&t), "normlake_dead_letter_retries_total"))
            .unwrap_or(0.0);
        if retries >= 2.0 {
            break;
        }
        assert!(Instant::now() < deadline, "no dead-letter retries seen");
        std::thread::sleep(Duration::from_millis(200));
    }
    let layout = normlake::lake::Layout::new(root.to_str().expect("utf-8"), "t");
    let at_end = ends.iter().all(|(p, end)| {
        normlake::lake::commit::latest(&layout, "dlq-in", *p)
            .ok()
            .flatten()
            .is_some_and(|(_, r)| r.next_offset >= *end)
    });
    assert!(!at_end, "commits must wait for the dead-letter topic");

    dlq.restart();
    job::wait_committed(&root, "dlq-in", &ends, Duration::from_secs(120));
    job.terminate();
    assert_eq!(job.wait(Duration::from_secs(60)), Some(true));
    // Emit the events still waiting for the watermark (the reference run is bounded too).
    job::run_to_end(&cfg, &dir.path().join("finish.log"));

    // The reference: the same input, bounded, dead letters in the lake.
    let ref_root = dir.path().join("reference");
    let ref_cfg = job::write_config(
        dir.path(),
        "ref.toml",
        &job::config(&input.addr(), "dlq-in", "ref-g", &ref_root, ""),
    );
    job::run_to_end(&ref_cfg, &dir.path().join("ref.log"));
    let want = job::content(&ref_root);
    let got = job::content(&root);
    assert!(got.dead.is_empty(), "no dead letters in the lake");
    job::assert_same(
        &got,
        &job::LakeContent {
            rows: want.rows.clone(),
            dead: Default::default(),
        },
    );

    // Every dead letter arrived on the topic, with its raw record and origin.
    let originals = broker::read_all(&input.addr(), "dlq-in", 2);
    let letters = broker::read_all(&dlq.addr(), "dead", 1);
    let mut seen = BTreeMap::new();
    for letter in letters.values() {
        let headers = &letter.headers;
        let p: i32 = headers["normlake.source.partition"]
            .parse()
            .expect("partition");
        let o: i64 = headers["normlake.source.offset"].parse().expect("offset");
        assert_eq!(headers["normlake.source.topic"], "dlq-in");
        assert!(headers.contains_key("normlake.source.timestamp"));
        let original = &originals[&(p, o)];
        assert_eq!(
            (&letter.key, &letter.value),
            (&original.key, &original.value),
            "raw record of {p}/{o}"
        );
        seen.insert((p, o), headers["normlake.reason"].clone());
    }
    assert_eq!(seen, want.dead, "each rejected record, with its reason");
    let reasons: BTreeSet<&str> = seen.values().map(String::as_str).collect();
    assert!(reasons.contains("malformed_json") && reasons.contains("late_event"));
    eprintln!(
        "{} dead letters, {} messages on the topic",
        seen.len(),
        letters.len()
    );
}
