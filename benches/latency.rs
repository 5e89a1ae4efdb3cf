//! Latency to the lake at a steady rate: `normlake generate` produces 50,000 events/s (event
//! time = the wall clock) for 30 s into a 4-partition topic; the `normlake` binary runs in
//! processing-time mode and rolls every second (`max_age = "1s"`). The figures are normlake's
//! own hdrhistogram percentiles of event → committed-in-lake latency over the last minute (the
//! whole run), from its last progress line, with the job's CPU time and peak RSS (from
//! `wait4`).
//!
//! The broker is tansu 0.6.0's memory engine (its SQLite engine serves about 50,000
//! messages/s, which leaves no headroom at this rate). The job reads from the beginning of a
//! fresh topic and then at batch boundaries, which that engine serves correctly.
//!
//! Run: `cargo bench --bench latency` (optionally `-- --rate N --seconds N`).

#[path = "../tests/common/broker.rs"]
#[allow(dead_code)]
mod broker;
mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use common::{arg, reap, terminate};
use std::time::{Duration, Instant};

fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// The latency percentiles of the job's last progress line (JSON logs), in seconds, by
/// (source, percentile).
fn latencies(log: &str) -> BTreeMap<(String, String), f64> {
    let mut out = BTreeMap::new();
    let Some(line) = log
        .lines()
        .rev()
        .find(|l| l.contains("\"received_to_lake_p99_ms\""))
    else {
        return out;
    };
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
    let fields = &v["fields"];
    for (from, key) in [
        ("event_time", "event_to_lake"),
        ("received", "received_to_lake"),
    ] {
        for q in ["p50", "p90", "p99", "p999", "max"] {
            if let Some(ms) = fields[format!("{key}_{q}_ms")].as_f64() {
                out.insert((from.to_string(), q.to_string()), ms / 1000.0);
            }
        }
    }
    out
}

fn main() {
    let rate = arg("--rate", 50_000);
    let seconds = arg("--seconds", 30);
    let broker = broker::Broker::start_memory();
    let brokers = broker.addr();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(broker.create_topic("sensors", 4));
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("latency.toml");
    std::fs::write(
        &cfg,
        format!(
            "[kafka]\nbrokers = \"{brokers}\"\ntopics = [\"sensors\"]\ngroup_id = \"latency\"\n[input]\nkey_field = \"sensor_id\"\nfeatures = [\"temp\", \"hum\", \"pres\"]\npassthrough = [\"site\"]\n[time]\nmode = \"processing_time\"\n[[normalize]]\nname = \"z1m\"\nmethod = \"zscore\"\nwindow = \"sliding_time\"\nsize = \"60s\"\n[lake]\nroot = \"{}\"\ntable = \"sensors\"\n[lake.rolling]\nmax_age = \"1s\"\n",
            dir.path().join("lake").display()
        ),
    )
    .expect("config");
    let port = broker::free_port();
    let log = std::fs::File::create(dir.path().join("normlake.log")).expect("log");
    let job = Command::new(env!("CARGO_BIN_EXE_normlake"))
        .args([
            "run",
            "--progress-every",
            "1s",
            "--log-format",
            "json",
            "--metrics-listen",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--config")
        .arg(&cfg)
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("normlake");
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_get(port, "/readyz").is_none_or(|(s, _)| s != 200) {
        assert!(Instant::now() < deadline, "normlake did not become ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    let t = Instant::now();
    let generated = Command::new(env!("CARGO_BIN_EXE_normlake"))
        .args(["generate", "--brokers", &brokers, "--topic", "sensors"])
        .args(["--rate", &rate.to_string(), "--keys", "1000"])
        .args(["--duration", &format!("{seconds}s")])
        .args(["--malformed", "0", "--late", "0"])
        .output()
        .expect("generate");
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );
    let took = t.elapsed().as_secs_f64();
    // Let the last roll (1 s) commit.
    std::thread::sleep(Duration::from_secs(3));
    let (_, metrics) = http_get(port, "/metrics").expect("scrape");
    terminate(&job);
    let (cpu, rss) = reap(job);
    let rows: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("normlake_rows_written_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as u64;
    println!(
        "latency at a steady rate: normlake generate --rate {rate} for {seconds} s ({:.0} events/s achieved), processing time, 1 s rolls, tansu 0.6.0 memory engine",
        rows as f64 / took
    );
    let l =
        latencies(&std::fs::read_to_string(dir.path().join("normlake.log")).unwrap_or_default());
    for from in ["event_time", "received"] {
        let q = |q: &str| l.get(&(from.to_string(), q.to_string())).copied();
        if let (Some(p50), Some(p90), Some(p99), Some(p999), Some(max)) =
            (q("p50"), q("p90"), q("p99"), q("p999"), q("max"))
        {
            println!(
                "  from {from:<11} p50 {p50:>6.3} s  p90 {p90:>6.3} s  p99 {p99:>6.3} s  p99.9 {p999:>6.3} s  max {max:>6.3} s"
            );
        }
    }
    let p99 = l
        .get(&("event_time".to_string(), "p99".to_string()))
        .copied()
        .unwrap_or(f64::NAN);
    println!(
        "event -> committed p99 {p99:.3} s (target <= 1.5 s); {rows} rows; normlake used {:.2} CPU-s per million events, peak RSS {:.0} MiB",
        cpu / (rows.max(1) as f64 / 1e6),
        rss as f64 / 1048576.0
    );
}
