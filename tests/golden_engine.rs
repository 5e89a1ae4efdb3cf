//! Every golden case through decode + normalize in process (no broker): the fast check of the
//! semantics. The end-to-end tests run the same cases through Kafka and Parquet.

mod common;

use common::golden::{self, DeadLetters, Row, Rows};
use normlake::config::Config;
use normlake::decode::Decoder;
use normlake::normalize::{Engine, Event, PartitionState};

fn run_case(case: &golden::Case) -> (Rows, DeadLetters) {
    let toml = format!(
        "[kafka]\nbrokers = \"unused:9092\"\ntopics = [\"t\"]\n\n{}\n[lake]\nroot = \"unused\"\ntable = \"t\"\n",
        case.toml_sections()
    );
    let cfg = Config::from_toml(&toml, Vec::new()).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let decoder = Decoder::new(cfg.input.clone());
    let engine = Engine::new(cfg.plan.clone());
    let slots = engine.slots().to_vec();
    let mut rows = Rows::new();
    let mut dl = DeadLetters::new();
    let mut states: [PartitionState<i32>; 2] = Default::default();
    let mut out = engine.emitted();
    let records = golden::records();
    for r in &records {
        match decoder.decode(Some(r.key.as_bytes()), r.value.as_bytes()) {
            Err(reason) => {
                dl.insert((r.partition, r.offset), reason.to_string());
            }
            Ok(d) => {
                let ev = Event {
                    key: d.key,
                    ts_ms: d.ts_ms,
                    seq: r.offset,
                    features: d.features,
                    payload: r.partition,
                };
                if let Some(late) = states[r.partition as usize].push(&engine, ev, &mut out) {
                    dl.insert((late.payload, late.seq), "late_event".into());
                }
            }
        }
    }
    for st in &mut states {
        st.finish(&engine, &mut out);
    }
    for (ev, results) in out.rows() {
        for (slot, res) in slots.iter().zip(results) {
            rows.insert(
                (ev.payload, ev.seq, cfg.plan.features[slot.feature].clone()),
                Row {
                    key: ev.key.to_string(),
                    ts_ms: ev.ts_ms,
                    y: res.y(),
                    center: res.center(),
                    scale: res.scale(),
                    n: res.n,
                    status: res.status.as_str().to_string(),
                },
            );
        }
    }
    (rows, dl)
}

#[test]
fn every_golden_case_matches_in_process() {
    let mut failures = Vec::new();
    let cases = golden::cases();
    assert_eq!(cases.len(), 11, "the golden set has 11 cases");
    for case in &cases {
        let (rows, dl) = run_case(case);
        let (want, want_dl) = golden::expected(&case.name);
        let diffs = golden::compare(&rows, &dl, &want, &want_dl);
        if !diffs.is_empty() {
            failures.push(format!(
                "{}: {} differences, first: {}",
                case.name,
                diffs.len(),
                diffs
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" | ")
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
