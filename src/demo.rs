//! `normlake demo`: the whole pipeline on one machine with nothing installed. librdkafka's
//! in-process mock cluster stands in for Kafka (it is not durable and keeps only the newest
//! messages, which is fine for a demo and nothing else), the generator fills a topic, and a
//! bounded run writes the lake with the example configuration in `deploy/normlake.toml`.
//!
//! The demo owns its lake directory. Each run starts from a fresh mock cluster (offset 0), so a
//! lake left by an earlier run would be ahead of the topic; the demo therefore replaces the
//! directory it made before (it leaves a [`DEMO_MARKER`] file in it) and refuses to touch a
//! non-empty directory that it did not make.

use std::path::Path;

use anyhow::Context;
use rdkafka::mocking::MockCluster;

use crate::config::Config;
use crate::generate::{self, GenerateOptions};
use crate::pipeline::{self, RunOptions};
use crate::telemetry::RunSummary;

/// The example configuration shipped in `deploy/`.
pub const EXAMPLE_CONFIG: &str = include_str!("../deploy/normlake.toml");

/// The file that marks a directory as the demo's own lake.
pub const DEMO_MARKER: &str = ".normlake-demo";

/// Run the demo into `lake`, replacing an earlier demo's lake there.
pub async fn run(lake: &Path, events: u64) -> anyhow::Result<RunSummary> {
    claim_lake_dir(lake)?;
    let cluster = MockCluster::new(1).context("start the in-process Kafka mock cluster")?;
    let brokers = cluster.bootstrap_servers();
    cluster
        .create_topic("sensors", 4, 1)
        .context("create topic sensors")?;
    println!("1/3  in-process Kafka mock cluster at {brokers}, topic `sensors` with 4 partitions");

    let sent = generate::generate(generator(&brokers, events), std::future::pending()).await?;
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
    print!("{summary}");
    print_partitions(lake, &root, &table)?;
    println!();
    println!("Query it with DuckDB (pip install duckdb):");
    println!(
        "  python3 -c \"import duckdb; print(duckdb.sql(\\\"SELECT dt, hr, key, count(*) AS n, avg(temp_z1m) FROM read_parquet('{root}/{table}/**/*.parquet', hive_partitioning = true) GROUP BY ALL ORDER BY n DESC LIMIT 5\\\"))\""
    );
    Ok(summary)
}

fn generator(brokers: &str, events: u64) -> GenerateOptions {
    GenerateOptions {
        brokers: brokers.to_string(),
        topic: "sensors".into(),
        rate: 0,
        keys: 200,
        features: vec!["temp".into(), "hum".into(), "pres".into()],
        count: Some(events),
        duration: None,
        malformed: 0.002,
        late: 0.002,
        seed: 42,
        format: crate::generate::Format::Json,
        schema_registry: String::new(),
    }
}

/// Make `lake` an empty directory owned by the demo: replace an earlier demo's lake, create a
/// missing directory, and refuse a non-empty directory the demo did not make.
pub fn claim_lake_dir(lake: &Path) -> anyhow::Result<()> {
    let marker = lake.join(DEMO_MARKER);
    if marker.exists() {
        println!(
            "0/3  replacing the earlier demo's lake in {}",
            lake.display()
        );
        std::fs::remove_dir_all(lake)
            .with_context(|| format!("remove the earlier demo lake {}", lake.display()))?;
    } else if std::fs::read_dir(lake).is_ok_and(|mut d| d.next().is_some()) {
        anyhow::bail!(
            "{} is not empty and was not made by `normlake demo`; the demo replaces its lake on \
             every run, so give it a new directory with --lake DIR (or remove this one)",
            lake.display()
        );
    }
    std::fs::create_dir_all(lake).with_context(|| format!("create {}", lake.display()))?;
    std::fs::write(
        &marker,
        b"made by `normlake demo`, which replaces this directory\n",
    )
    .with_context(|| format!("write {}", marker.display()))
}

fn print_partitions(lake: &Path, root: &str, table: &str) -> anyhow::Result<()> {
    let mut parts: Vec<String> = crate::lake::list_parquet(&lake.join(table))?
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
    Ok(())
}
