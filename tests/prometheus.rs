//! The job's metrics as an operator reads them, checked with Prometheus's own tools (Debian's
//! `prometheus` package: Prometheus 2.42 and `promtool`, which `scripts/test` installs):
//! - `promtool check config` and `check rules` on the stack's configuration and alerts;
//! - `promtool check metrics` on a live scrape of a running job;
//! - a real Prometheus on loopback scrapes the job under load for about 30 s, then evaluates
//!   every Grafana dashboard query (each must return series) and every alert expression
//!   (each must parse) through its HTTP API;
//! - the latency histogram's p99 over the last minute agrees with the hdrhistogram's p99 of
//!   the last minute (from the progress line) within one bucket.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::broker::{Broker, free_port};
use common::job::{self, Job};
use common::scrape;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool; scripts/test installs Debian's prometheus package");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write");
    }
    let out = child.wait_with_output().expect("promtool");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn the_stack_configuration_and_the_alerts_pass_promtool() {
    let config = deploy().join("prometheus/prometheus.yml");
    let (ok, text) = promtool(&["check", "config", config.to_str().expect("utf-8")], None);
    assert!(ok, "{text}");
    let rules = deploy().join("prometheus/alerts.yml");
    let (ok, text) = promtool(&["check", "rules", rules.to_str().expect("utf-8")], None);
    assert!(ok && text.contains("7 rules found"), "{text}");
}

/// A Prometheus server on loopback, stopped when dropped.
struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(job_port: u16) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: normlake\n    static_configs:\n      - targets: [\"127.0.0.1:{job_port}\"]\n"
            ),
        )
        .expect("config");
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus; scripts/test installs Debian's prometheus package");
        let p = Prometheus {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while scrape::get(port, "/-/ready").is_none_or(|(s, _)| s != 200) {
            assert!(Instant::now() < deadline, "Prometheus did not become ready");
            std::thread::sleep(Duration::from_millis(200));
        }
        p
    }

    /// An instant query through the HTTP API: (whether it parsed and ran, the result series).
    fn query(&self, expr: &str) -> (bool, Vec<serde_json::Value>) {
        let encoded: String = expr
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let Some((_, body)) = scrape::get(self.port, &format!("/api/v1/query?query={encoded}"))
        else {
            return (false, Vec::new());
        };
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let result = v["data"]["result"].as_array().cloned().unwrap_or_default();
        (v["status"] == "success", result)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every query of the Grafana dashboard, with the instance variable set to all.
fn dashboard_queries() -> Vec<(String, String)> {
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(deploy().join("grafana/dashboards/normlake.json"))
            .expect("dashboard"),
    )
    .expect("JSON");
    let mut out = Vec::new();
    for p in dash["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().expect("targets") {
            let expr = t["expr"].as_str().expect("expr").replace("$instance", ".*");
            out.push((p["title"].as_str().unwrap_or("").to_string(), expr));
        }
    }
    out
}

/// Every alert expression in the stack's rules.
fn alert_expressions() -> Vec<(String, String)> {
    let rules: serde_norway::Value = serde_norway::from_str(
        &std::fs::read_to_string(deploy().join("prometheus/alerts.yml")).expect("alerts"),
    )
    .expect("YAML");
    let mut out = Vec::new();
    for g in rules["groups"].as_sequence().expect("groups") {
        for r in g["rules"].as_sequence().expect("rules") {
            let name = r["alert"].as_str().unwrap_or("").to_string();
            out.push((name, r["expr"].as_str().expect("expr").to_string()));
        }
    }
    out
}

/// The newest `received_to_lake_p99_ms` of the job's progress lines, in seconds.
fn progress_p99(log: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().rev().find_map(|l| {
        let rest = l.split("\"received_to_lake_p99_ms\":").nth(1)?;
        let v: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        v.parse::<f64>().ok().map(|ms| ms / 1000.0)
    })
}

/// The width of the latency bucket (10 ms doubling) holding `v` seconds.
fn bucket_width(v: f64) -> f64 {
    let mut upper = 0.01;
    while upper < v {
        upper *= 2.0;
    }
    if upper <= 0.01 { 0.01 } else { upper / 2.0 }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_prometheus_evaluates_every_dashboard_and_alert_query_on_a_running_job() {
    let _one = job::exclusive().await;
    let broker = Broker::start();
    broker.create_topic("prom", 2).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("lake");
    let cfg = job::write_config(
        dir.path(),
        "prom.toml",
        &job::config(&broker.addr(), "prom", "prom-g", &root, ""),
    );
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let log = dir.path().join("job.log");
    let mut run = Job::start_with(
        &cfg,
        false,
        &log,
        &[
            "--metrics-listen",
            &listen,
            "--progress-every",
            "1s",
            "--log-format",
            "json",
        ],
    );
    let prometheus = Prometheus::start(port);

    // A steady load: 2,000 events a second for the whole test.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (addr, stop) = (broker.addr(), stop.clone());
        std::thread::spawn(move || {
            let mut start = 0;
            while !stop.load(Ordering::Relaxed) {
                job::produce_from(&addr, "prom", start, 1_000, 64);
                start += 1_000;
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(35));

    // promtool on a live scrape.
    let (_, text) = scrape::get(port, "/metrics").expect("scrape");
    let (ok, problems) = promtool(&["check", "metrics"], Some(&text));
    assert!(
        ok && problems.trim().is_empty(),
        "promtool check metrics: {problems}"
    );

    for (title, expr) in dashboard_queries() {
        let (ok, result) = prometheus.query(&expr);
        assert!(ok, "dashboard panel {title}: `{expr}` does not run");
        assert!(
            !result.is_empty(),
            "dashboard panel {title}: `{expr}` returns no data"
        );
    }
    for (name, expr) in alert_expressions() {
        let (ok, _) = prometheus.query(&expr);
        assert!(ok, "alert {name}: `{expr}` does not run");
    }

    // The histogram's p99 over the last minute against the hdrhistogram's.
    let (ok, result) = prometheus.query(
        "histogram_quantile(0.99, sum by (le) (rate(normlake_latency_seconds_bucket{from=\"received\"}[1m])))",
    );
    assert!(ok && !result.is_empty());
    let from_histogram: f64 = result[0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("a value");
    let from_hdr = progress_p99(&log).expect("a progress line with the p99");
    let width = bucket_width(from_hdr);
    eprintln!(
        "p99: histogram {from_histogram:.3} s, hdrhistogram {from_hdr:.3} s, bucket width {width:.3} s"
    );
    assert!(
        (from_histogram - from_hdr).abs() <= width,
        "p99 {from_histogram} s from the histogram, {from_hdr} s from the hdrhistogram"
    );

    stop.store(true, Ordering::Relaxed);
    load.join().expect("load");
    run.terminate();
    assert_eq!(run.wait(Duration::from_secs(60)), Some(true));
}
