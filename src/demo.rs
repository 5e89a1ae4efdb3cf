//! `normlake demo`: the whole pipeline on one machine with nothing installed. librdkafka's
//! in-process mock cluster stands in for Kafka (it is not durable and keeps only the newest
//! messages, which is fine for a demo and nothing else), the generator fills a topic, and a
//! bounded run writes the lake with the example configuration in `deploy/normlake.toml`.

use std::path::Path;

use anyhow::Context;
use rdkafka::mocking::MockCluster;

use crate::config::Config;
use crate::generate::{self, GenerateOptions};
use crate::pipeline::{self, RunOptions};

/// The example configuration shipped in `deploy/`.
pub const EXAMPLE_CONFIG: &str = include_str!("../deploy/normlake.toml");

pub async fn run(lake: &Path, events: u64) -> anyhow::Result<()> {
    let cluster = MockCluster::new(1).context("start the in-process Kafka mock cluster")?;
    let brokers = cluster.bootstrap_servers();
    cluster
        .create_topic("sensors", 4, 1)
        .context("create topic sensors")?;
    println!("1/3  in-process Kafka mock cluster at {brokers}, topic `sensors` with 4 partitions");

    let opts = GenerateOptions {
        brokers: brokers.clone(),
        topic: "sensors".into(),
        rate: 0,
        keys: 200,
        features: vec!["temp".into(), "hum".into(), "pres".into()],
        count: Some(events),
        duration: None,
        malformed: 0.002,
        late: 0.002,
        seed: 42,
    };
    let sent = generate::generate(opts, Vec::new(), std::future::pending()).await?;
    println!(
        "2/3  generated {} events ({} malformed, {} late on purpose)",
        sent.sent, sent.malformed, sent.late
    );

    let root = lake
        .to_str()
        .context("the lake path must be UTF-8")?
        .to_string();
    let env = vec![
        ("NORMLAKE__KAFKA__BROKERS".to_string(), brokers),
        ("NORMLAKE__LAKE__ROOT".to_string(), root.clone()),
        (
            "NORMLAKE__KAFKA__GROUP_ID".to_string(),
            "normlake-demo".to_string(),
        ),
    ];
    let cfg = Config::from_toml(EXAMPLE_CONFIG, env).map_err(|e| anyhow::anyhow!("{e}"))?;
    let table = cfg.lake.table.clone();
    let opts = RunOptions {
        until_end: true,
        progress_every: std::time::Duration::from_secs(2),
        ..RunOptions::default()
    };
    let summary = pipeline::run(cfg, opts, std::future::pending()).await?;
    println!("3/3  normalized into the lake at {root}/{table}");
    crate::cli::print_summary(&summary);
    let mut parts: Vec<String> = crate::lake::list_parquet(&lake.join(&table))?
        .iter()
        .filter_map(|p| {
            p.parent()?
                .strip_prefix(lake)
                .ok()
                .map(|d| d.display().to_string())
        })
        .collect();
    parts.dedup();
    for p in &parts {
        println!("  {root}/{p}/");
    }
    println!();
    println!("Query it with DuckDB (pip install duckdb):");
    println!(
        "  python3 -c \"import duckdb; print(duckdb.sql(\\\"SELECT dt, hr, key, count(*) AS n, avg(temp_z1m) FROM read_parquet('{root}/{table}/**/*.parquet', hive_partitioning = true) GROUP BY ALL ORDER BY n DESC LIMIT 5\\\"))\""
    );
    Ok(())
}
