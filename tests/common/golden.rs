//! The golden cases in `tests/golden`: configuration per case, expected rows, comparison
//! with the tolerances of the golden README.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// The golden data set, kept in the repository.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

#[derive(Debug, Clone, Deserialize)]
pub struct Case {
    pub name: String,
    pub method: String,
    pub window: String,
    pub size_ms: i64,
    pub count: usize,
    pub alpha: f64,
    pub halflife_ms: i64,
    pub include_current: bool,
    pub min_count: u64,
    pub ddof: u32,
    pub eps: f64,
    pub range_ab: [f64; 2],
    pub quantiles: [f64; 2],
    pub degenerate: String,
    pub event_time: bool,
    pub out_of_orderness_ms: i64,
    pub late: String,
    pub features: Vec<String>,
}

/// The name the golden normalization gets in configs (columns `temp_g`, …).
pub const NORM: &str = "g";

pub fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(dir().join("cases.json")).expect("read cases.json");
    serde_json::from_str(&text).expect("parse cases.json")
}

pub fn case(name: &str) -> Case {
    cases()
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no golden case {name}"))
}

#[derive(Debug, Clone, Deserialize)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    pub value: String,
}

/// Records in offset order per partition.
pub fn records() -> Vec<Record> {
    let text = std::fs::read_to_string(dir().join("records.jsonl")).expect("read records.jsonl");
    let mut v: Vec<Record> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("record"))
        .collect();
    v.sort_by_key(|r| (r.partition, r.offset));
    v
}

impl Case {
    /// The normalization part of a normlake config for this case.
    pub fn toml_sections(&self) -> String {
        let features = self
            .features
            .iter()
            .map(|f| format!("{f:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut s = format!(
            "[input]\nkey_field = \"sensor_id\"\ntime_field = \"ts\"\nfeatures = [{features}]\npassthrough = [\"site\"]\n\n[time]\nmode = \"{}\"\nout_of_orderness = \"{}ms\"\nlate = \"{}\"\n\n",
            if self.event_time {
                "event_time"
            } else {
                "processing_time"
            },
            self.out_of_orderness_ms,
            self.late,
        );
        if self.method == "layer" {
            s += &format!(
                "[layer_norm]\nname = \"{NORM}\"\neps = {:?}\nmin_count = {}\n",
                self.eps, self.min_count
            );
            return s;
        }
        s += &format!(
            "[[normalize]]\nname = \"{NORM}\"\nmethod = \"{}\"\nwindow = \"{}\"\ninclude_current = {}\nmin_count = {}\nddof = {}\neps = {:?}\nrange = [{:?}, {:?}]\nquantiles = [{:?}, {:?}]\ndegenerate = \"{}\"\n",
            self.method,
            self.window,
            self.include_current,
            self.min_count,
            self.ddof,
            self.eps,
            self.range_ab[0],
            self.range_ab[1],
            self.quantiles[0],
            self.quantiles[1],
            self.degenerate,
        );
        match self.window.as_str() {
            "sliding_time" | "tumbling" | "tumbling_previous" => {
                s += &format!("size = \"{}ms\"\n", self.size_ms)
            }
            "sliding_count" => s += &format!("count = {}\n", self.count),
            "ewm" => s += &format!("alpha = {:?}\n", self.alpha),
            "ewm_time" => s += &format!("halflife = \"{}ms\"\n", self.halflife_ms),
            _ => {}
        }
        s
    }
}

/// One expected or actual (row, feature) result.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub key: String,
    pub ts_ms: i64,
    pub y: Option<f64>,
    pub center: Option<f64>,
    pub scale: Option<f64>,
    pub n: u64,
    pub status: String,
}

/// (partition, offset, feature) → row.
pub type Rows = BTreeMap<(i32, i64, String), Row>;
/// (partition, offset) → reason.
pub type DeadLetters = BTreeMap<(i32, i64), String>;

fn opt(s: &str) -> Option<f64> {
    if s.is_empty() {
        None
    } else {
        Some(s.parse().expect("float"))
    }
}

pub fn expected(case: &str) -> (Rows, DeadLetters) {
    let d = dir().join("expected");
    let mut rows = Rows::new();
    let text = std::fs::read_to_string(d.join(format!("{case}.csv"))).expect("expected csv");
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        rows.insert(
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[4].to_string(),
            ),
            Row {
                key: f[2].to_string(),
                ts_ms: f[3].parse().unwrap(),
                y: opt(f[5]),
                center: opt(f[6]),
                scale: opt(f[7]),
                n: f[8].parse().unwrap(),
                status: f[9].to_string(),
            },
        );
    }
    let mut dl = DeadLetters::new();
    let text = std::fs::read_to_string(d.join(format!("{case}.dead_letter.csv")))
        .expect("dead letter csv");
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        dl.insert(
            (f[0].parse().unwrap(), f[1].parse().unwrap()),
            f[2].to_string(),
        );
    }
    (rows, dl)
}

fn close(got: Option<f64>, want: Option<f64>, tol: impl Fn(f64) -> f64) -> bool {
    match (got, want) {
        (None, None) => true,
        (Some(g), Some(w)) => (g - w).abs() <= tol(w),
        _ => false,
    }
}

/// Every difference between actual and expected, as readable lines (empty when they match).
pub fn compare(
    got: &Rows,
    got_dl: &DeadLetters,
    want: &Rows,
    want_dl: &DeadLetters,
) -> Vec<String> {
    let mut diffs = Vec::new();
    for (k, w) in want {
        let Some(g) = got.get(k) else {
            diffs.push(format!("{k:?}: missing row"));
            continue;
        };
        let y_ok = close(g.y, w.y, |e| 1e-9 * e.abs().max(1.0));
        let rel = |e: f64| 1e-12 * e.abs().max(f64::MIN_POSITIVE);
        let c_ok = close(g.center, w.center, rel);
        let s_ok = close(g.scale, w.scale, rel);
        if !(y_ok
            && c_ok
            && s_ok
            && g.n == w.n
            && g.status == w.status
            && g.key == w.key
            && g.ts_ms == w.ts_ms)
        {
            diffs.push(format!("{k:?}: got {g:?}, want {w:?}"));
        }
    }
    for k in got.keys() {
        if !want.contains_key(k) {
            diffs.push(format!("{k:?}: unexpected row"));
        }
    }
    if got_dl != want_dl {
        diffs.push(format!(
            "dead letters differ: got {got_dl:?}, want {want_dl:?}"
        ));
    }
    diffs
}
