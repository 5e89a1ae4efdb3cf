//! The memory budget under load: many keys through the real broker with a small budget. The
//! job's peak RSS (which it reports from the kernel's `VmHWM`) stays within 1.25× the budget,
//! the budget acts (least recently updated keys are evicted and counted) and every record is
//! still accounted for.

mod common;

use std::process::Command;

use common::broker::Broker;
use common::job;

const EVENTS: u64 = 600_000;
const KEYS: usize = 200_000;

fn run(cfg: &std::path::Path) -> (u64, u64, u64, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_normlake"))
        .args(["run", "--until-end", "--metrics-listen", "off", "--config"])
        .arg(cfg)
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let number = |prefix: &str| -> u64 {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let evicted = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("evicted keys: "))
        .and_then(|r| r.split_once('(').map(|(_, b)| b.to_string()))
        .and_then(|b| b.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    (number("peak RSS: "), evicted, number("consumed "), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn peak_rss_stays_within_the_budget() {
    let _one_at_a_time = job::exclusive().await;
    let broker = Broker::start();
    broker.create_topic("mem", 2).await;
    let addr = broker.addr();
    tokio::task::spawn_blocking(move || job::produce_keys(&addr, "mem", EVENTS, KEYS))
        .await
        .expect("produce");
    let dir = tempfile::tempdir().expect("temp dir");
    let budget_mib = 256u64;
    let mut results = Vec::new();
    for (name, budget) in [("unbounded", "4GiB"), ("budget", "256MiB")] {
        let root = dir.path().join(name);
        let text = job::config(&broker.addr(), "mem", name, &root, "").replace(
            "max_rows = 4000\nmax_age = \"300ms\"",
            "max_rows = 500000\nmax_age = \"60s\"",
        ) + &format!("\n[memory]\nbudget = \"{budget}\"\n");
        let cfg = job::write_config(dir.path(), &format!("{name}.toml"), &text);
        let (rss, evicted, consumed, summary) = run(&cfg);
        eprintln!(
            "{name}: peak RSS {:.1} MiB, {evicted} keys evicted over budget\n{summary}",
            rss as f64 / 1048576.0
        );
        assert_eq!(consumed, EVENTS);
        results.push((rss, evicted));
    }
    let (free_rss, free_evicted) = results[0];
    let (rss, evicted) = results[1];
    assert_eq!(free_evicted, 0);
    assert!(
        free_rss > budget_mib << 20,
        "the load must need more than the budget for the test to mean anything ({free_rss} bytes)"
    );
    assert!(evicted > 0, "the budget evicted keys");
    assert!(
        rss as f64 <= 1.25 * (budget_mib << 20) as f64,
        "peak RSS {rss} bytes over 1.25 × {budget_mib} MiB"
    );
}
