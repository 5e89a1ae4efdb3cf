//! Compiling the `[[normalize]]`, `[layer_norm]` and `[time]` sections into a valid
//! `normalize::Plan`, with a reason for every combination that makes no sense.

use std::time::Duration;

use super::{
    Collector, HumanDuration, LayerSection, MethodName, NormalizeSection, TimeSection, WindowName,
    defaults, is_column_name,
};
use crate::decode::{InputSpec, column_name};
use crate::normalize::{LayerSpec, Method, NormSpec, Plan, Slot, Window};
use crate::sink::{Output, Outputs};

/// The columns each normalization writes: the `[[normalize]]` entries in order, then
/// `[layer_norm]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlotOutputs {
    norms: Vec<Outputs>,
    layer: Outputs,
}

impl SlotOutputs {
    pub fn of(&self, slot: &Slot) -> Outputs {
        match slot.norm {
            Some(i) => self.norms.get(i).copied().unwrap_or_default(),
            None => self.layer,
        }
    }

    /// Whether every normalization writes all five outputs (the default).
    pub fn all_default(&self) -> bool {
        self.layer == Outputs::ALL && self.norms.iter().all(|o| *o == Outputs::ALL)
    }
}

/// An `outputs` list: at least one, each once; omitted, all five.
fn build_outputs(chosen: &Option<Vec<Output>>, field: &str, c: &mut Collector) -> Outputs {
    let Some(list) = chosen else {
        return Outputs::ALL;
    };
    if list.is_empty() {
        c.err(
            field,
            "must name at least one output (omit it for all five)",
        );
    }
    for (i, o) in list.iter().enumerate() {
        if list[..i].contains(o) {
            c.err(field, format!("`{}` is named twice", o.name()));
        }
    }
    Outputs::of(list.iter().copied())
}

fn feature_indexes(
    all: &[String],
    chosen: &Option<Vec<String>>,
    field: &str,
    c: &mut Collector,
) -> Vec<usize> {
    match chosen {
        None => (0..all.len()).collect(),
        Some(list) => {
            if list.is_empty() {
                c.err(field, "must name at least one feature (omit it for all)");
            }
            list.iter()
                .filter_map(|f| {
                    let ix = all.iter().position(|a| a == f || column_name(a) == *f);
                    if ix.is_none() {
                        c.err(field, format!("`{f}` is not one of input.features"));
                    }
                    ix
                })
                .collect()
        }
    }
}

pub(super) fn build_plan(
    input: &InputSpec,
    t: TimeSection,
    norms: Vec<NormalizeSection>,
    layer: Option<LayerSection>,
    c: &mut Collector,
) -> Option<(Plan, SlotOutputs)> {
    if norms.is_empty() && layer.is_none() {
        c.err(
            "normalize",
            "configure at least one [[normalize]] entry or [layer_norm]",
        );
    }
    let mut names = std::collections::HashSet::new();
    let mut specs = Vec::new();
    let mut outputs = SlotOutputs::default();
    for (i, n) in norms.iter().enumerate() {
        let at = |f: &str| format!("normalize[{i}].{f}");
        if !is_column_name(&n.name) {
            c.err(
                at("name"),
                "must be a non-empty name of letters, digits and underscores",
            );
        }
        if !names.insert(n.name.clone()) {
            c.err(at("name"), format!("`{}` is used twice", n.name));
        }
        if let Some(s) = build_norm(n, input, &at, c) {
            specs.push(s);
        }
        outputs
            .norms
            .push(build_outputs(&n.outputs, &at("outputs"), c));
    }
    if let Some(l) = &layer {
        outputs.layer = build_outputs(&l.outputs, "layer_norm.outputs", c);
    }
    let layer = layer.map(|l| build_layer(l, input, &mut names, c));
    if t.out_of_orderness.0 > Duration::from_secs(7 * 24 * 3600) {
        c.err(
            "time.out_of_orderness",
            "is longer than a week; events would wait that long",
        );
    }
    let largest_window = specs
        .iter()
        .filter_map(|s| match s.window {
            Window::SlidingTime { size_ms }
            | Window::Tumbling { size_ms }
            | Window::TumblingPrevious { size_ms } => Some(size_ms),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let plan = Plan {
        features: input.features.iter().map(|f| column_name(f)).collect(),
        norms: specs,
        layer,
        time_mode: t.mode,
        out_of_orderness_ms: t.out_of_orderness.millis(),
        late: t.late,
        max_disorder_ms: t.max_disorder.map_or(largest_window, HumanDuration::millis),
        idle_ttl_ms: t.idle_ttl.map(HumanDuration::millis),
    };
    c.0.is_empty().then_some((plan, outputs))
}

/// `[layer_norm]`: per-event normalization across the features.
fn build_layer(
    l: LayerSection,
    input: &InputSpec,
    names: &mut std::collections::HashSet<String>,
    c: &mut Collector,
) -> LayerSpec {
    if !names.insert(l.name.clone()) {
        c.err(
            "layer_norm.name",
            format!("`{}` is also a [[normalize]] name", l.name),
        );
    }
    if !is_column_name(&l.name) {
        c.err(
            "layer_norm.name",
            "must be a non-empty name of letters, digits and underscores",
        );
    }
    if !(l.eps >= 0.0 && l.eps.is_finite()) {
        c.err("layer_norm.eps", "must be a finite number ≥ 0");
    }
    if l.min_count == 0 {
        c.err("layer_norm.min_count", "must be at least 1");
    }
    LayerSpec {
        features: feature_indexes(&input.features, &l.features, "layer_norm.features", c),
        name: l.name,
        eps: l.eps,
        min_count: l.min_count,
    }
}

fn build_norm(
    n: &NormalizeSection,
    input: &InputSpec,
    at: &dyn Fn(&str) -> String,
    c: &mut Collector,
) -> Option<NormSpec> {
    let features = feature_indexes(&input.features, &n.features, &at("features"), c);
    let window = build_window(n, at, c);
    let method = build_method(n, at, c);
    let min_count = n.min_count.unwrap_or_else(|| defaults::min_count(n.ddof));
    if min_count < n.ddof as u64 + 1 || min_count == 0 {
        c.err(
            at("min_count"),
            format!("must be at least ddof + 1 = {}", n.ddof + 1),
        );
    }
    check_window_fits_method(n, &method, at, c);
    Some(NormSpec {
        name: n.name.clone(),
        method,
        window: window?,
        include_current: n.include_current,
        min_count,
        degenerate: n.degenerate,
        features,
    })
}

/// A window's parameter: the value when `valid`, else "must …", else "is required for …".
fn parameter<T: Copy>(
    value: Option<T>,
    valid: impl Fn(T) -> bool,
    (field, must, window): (String, &str, &str),
    c: &mut Collector,
) -> Option<T> {
    match value {
        Some(v) if valid(v) => Some(v),
        Some(_) => {
            c.err(field, must);
            None
        }
        None => {
            c.err(field, format!("is required for window {window}"));
            None
        }
    }
}

fn build_window(
    n: &NormalizeSection,
    at: &dyn Fn(&str) -> String,
    c: &mut Collector,
) -> Option<Window> {
    let name = format!("{:?}", n.window);
    let size = |c: &mut Collector| {
        let must = (at("size"), "must be longer than zero", name.as_str());
        parameter(n.size.map(|d| d.millis()), |ms| ms > 0, must, c)
    };
    match n.window {
        WindowName::Expanding => Some(Window::Expanding),
        WindowName::SlidingTime => size(c).map(|size_ms| Window::SlidingTime { size_ms }),
        WindowName::Tumbling => size(c).map(|size_ms| Window::Tumbling { size_ms }),
        WindowName::TumblingPrevious => size(c).map(|size_ms| Window::TumblingPrevious { size_ms }),
        WindowName::SlidingCount => {
            let must = (at("count"), "must be at least 1", "sliding_count");
            parameter(n.count, |count| count > 0, must, c)
                .map(|count| Window::SlidingCount { count })
        }
        WindowName::Ewm => {
            let must = (at("alpha"), "must be in (0, 1]", "ewm");
            parameter(n.alpha, |a| a > 0.0 && a <= 1.0, must, c).map(|alpha| Window::Ewm { alpha })
        }
        WindowName::EwmTime => {
            let must = (at("halflife"), "must be longer than zero", "ewm_time");
            parameter(n.halflife.map(|h| h.millis()), |ms| ms > 0, must, c)
                .map(|halflife_ms| Window::EwmTime { halflife_ms })
        }
    }
}

fn build_method(n: &NormalizeSection, at: &dyn Fn(&str) -> String, c: &mut Collector) -> Method {
    let method = match n.method {
        MethodName::Zscore => {
            if !(n.eps >= 0.0 && n.eps.is_finite()) {
                c.err(at("eps"), "must be a finite number ≥ 0");
            }
            if n.ddof > 1 {
                c.err(at("ddof"), "must be 0 or 1");
            }
            Method::Zscore {
                ddof: n.ddof,
                eps: n.eps,
            }
        }
        MethodName::Minmax => {
            let [a, b] = n.range;
            if !(a.is_finite() && b.is_finite() && a < b) {
                c.err(at("range"), "must be [a, b] with finite a < b");
            }
            Method::Minmax { a, b, clip: n.clip }
        }
        MethodName::Maxabs => Method::Maxabs,
        MethodName::Robust => {
            let [lo, hi] = n.quantiles;
            if !(0.0 <= lo && lo < hi && hi <= 1.0) {
                c.err(at("quantiles"), "must be [lo, hi] with 0 ≤ lo < hi ≤ 1");
            }
            Method::Robust { q_lo: lo, q_hi: hi }
        }
    };
    if n.method != MethodName::Zscore && (n.ddof != 0 || n.eps != 0.0) {
        c.err(at("method"), "ddof and eps apply to zscore only");
    }
    method
}

/// Compatibility is judged on the window's kind, so it is reported even when its size or
/// parameter is also wrong.
fn check_window_fits_method(
    n: &NormalizeSection,
    method: &Method,
    at: &dyn Fn(&str) -> String,
    c: &mut Collector,
) {
    let ew = matches!(n.window, WindowName::Ewm | WindowName::EwmTime);
    let bounded = matches!(
        n.window,
        WindowName::SlidingTime
            | WindowName::SlidingCount
            | WindowName::Tumbling
            | WindowName::TumblingPrevious
    );
    if matches!(method, Method::Robust { .. }) && !bounded {
        c.err(at("window"), "robust needs a bounded window (sliding_time, sliding_count, tumbling, tumbling_previous): quantiles over an unbounded stream cannot be exact");
    }
    if ew && !matches!(method, Method::Zscore { .. }) {
        c.err(at("method"), "exponentially weighted windows have a mean and variance but no min, max or quantiles: use zscore");
    }
    if ew && n.ddof != 0 {
        c.err(
            at("ddof"),
            "exponentially weighted windows use the weighted population variance (ddof 0)",
        );
    }
    if n.window == WindowName::TumblingPrevious && n.include_current {
        c.err(
            at("include_current"),
            "does not apply to tumbling_previous (it sees the previous bucket only)",
        );
    }
}
