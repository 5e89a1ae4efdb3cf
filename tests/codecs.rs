//! Every compression codec a producer may use lands every record in the lake: gzip, lz4 and
//! zstd topics on the real broker (tansu), and snappy on librdkafka's mock cluster, because
//! tansu 0.6.0 stores snappy batches but cannot serve them.

mod common;

use common::broker::Broker;
use common::job;
use normlake::pipeline::RunOptions;
use rdkafka::mocking::MockCluster;

const EVENTS: u64 = 3000;

#[tokio::test(flavor = "multi_thread")]
async fn gzip_lz4_and_zstd_topics_land_every_record() {
    let _one = job::exclusive().await;
    let broker = Broker::start();
    for codec in ["gzip", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        broker.create_topic(&topic, 2).await;
        let (addr, t) = (broker.addr(), topic.clone());
        tokio::task::spawn_blocking(move || {
            job::produce_with(&addr, &t, 0, EVENTS, 16, &[("compression.codec", codec)])
        })
        .await
        .expect("produce");
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("lake");
        let text = job::config(&broker.addr(), &topic, &topic, &root, "");
        let cfg = job::write_config(dir.path(), "codec.toml", &text);
        job::run_to_end(&cfg, &dir.path().join("job.log"));
        let seen = job::accounted(&job::content(&root));
        assert_eq!(
            seen.len() as u64,
            EVENTS,
            "{codec}: every record accounted for"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snappy_topic_lands_every_record() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("codec-snappy", 2, 1).expect("topic");
    let b = brokers.clone();
    tokio::task::spawn_blocking(move || {
        job::produce_with(
            &b,
            "codec-snappy",
            0,
            EVENTS,
            16,
            &[("compression.codec", "snappy")],
        )
    })
    .await
    .expect("produce");
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("lake");
    let text = job::config(&brokers, "codec-snappy", "snappy-g", &root, "");
    let cfg = normlake::config::Config::from_toml(&text, Vec::new()).expect("config");
    let opts = RunOptions {
        until_end: true,
        ..RunOptions::default()
    };
    let summary = normlake::pipeline::run(cfg, opts, std::future::pending())
        .await
        .expect("bounded run");
    assert_eq!(summary.consumed, EVENTS);
    let seen = job::accounted(&job::content(&root));
    assert_eq!(seen.len() as u64, EVENTS, "every record accounted for");
}
