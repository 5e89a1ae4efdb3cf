//! The validated, typed description of what to compute. `config` builds a `Plan` from the
//! TOML file (reporting every mistake at once); the engine only ever sees a valid `Plan`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Method {
    /// Center: mean; scale: `sqrt(M2 / (n − ddof))`, or `sqrt(var + eps)` when `eps > 0`.
    Zscore {
        ddof: u32,
        eps: f64,
    },
    /// Maps `[min, max]` onto the target range `[a, b]`.
    Minmax {
        a: f64,
        b: f64,
        clip: bool,
    },
    Maxabs,
    /// Center: median; scale: `Q(hi) − Q(lo)`.
    Robust {
        q_lo: f64,
        q_hi: f64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Window {
    Expanding,
    SlidingTime { size_ms: i64 },
    SlidingCount { count: usize },
    Tumbling { size_ms: i64 },
    TumblingPrevious { size_ms: i64 },
    Ewm { alpha: f64 },
    EwmTime { halflife_ms: i64 },
}

/// What to do when the scale is exactly zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Degenerate {
    /// Scale 1, as scikit-learn does.
    #[default]
    Unit,
    /// y = 0.
    Zero,
    /// y = null.
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LatePolicy {
    #[default]
    DeadLetter,
    EmitUnchanged,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TimeMode {
    #[default]
    EventTime,
    ProcessingTime,
}

/// One named normalization applied to some features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NormSpec {
    pub name: String,
    pub method: Method,
    pub window: Window,
    pub include_current: bool,
    pub min_count: u64,
    pub degenerate: Degenerate,
    /// Indexes into `Plan::features`.
    pub features: Vec<usize>,
}

/// Per-event layer normalization across the valid features of one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerSpec {
    pub name: String,
    pub eps: f64,
    pub min_count: u64,
    pub features: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub features: Vec<String>,
    pub norms: Vec<NormSpec>,
    pub layer: Option<LayerSpec>,
    pub time_mode: TimeMode,
    pub out_of_orderness_ms: i64,
    pub late: LatePolicy,
    /// Processing-time mode only: how far behind the newest event time of a key a value is
    /// still kept for events that arrive with older timestamps.
    pub max_disorder_ms: i64,
    /// Keys idle longer than this (event time) are evicted; `None` derives it from windows.
    pub idle_ttl_ms: Option<i64>,
}

/// One output column group: feature `feature` normalized by `norm` (or by layer norm).
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    pub feature: usize,
    /// Index into `Plan::norms`, or `None` for the layer normalization.
    pub norm: Option<usize>,
    pub column: String,
}

impl Plan {
    /// Output slots in column order: per feature, each normalization that covers it, then the
    /// layer normalization.
    pub fn slots(&self) -> Vec<Slot> {
        let mut out = Vec::new();
        for (fi, fname) in self.features.iter().enumerate() {
            for (ni, n) in self.norms.iter().enumerate() {
                if n.features.contains(&fi) {
                    out.push(Slot {
                        feature: fi,
                        norm: Some(ni),
                        column: format!("{fname}_{}", n.name),
                    });
                }
            }
            if let Some(l) = &self.layer
                && l.features.contains(&fi)
            {
                out.push(Slot {
                    feature: fi,
                    norm: None,
                    column: format!("{fname}_{}", l.name),
                });
            }
        }
        out
    }

    /// How long a key may stay idle (in event time) before its state is dropped: the longest
    /// window, plus the retention for out-of-order values in processing-time mode.
    pub fn effective_idle_ttl_ms(&self) -> i64 {
        if let Some(t) = self.idle_ttl_ms {
            return t;
        }
        let disorder = match self.time_mode {
            TimeMode::ProcessingTime => self.max_disorder_ms,
            TimeMode::EventTime => 0,
        };
        self.norms
            .iter()
            .map(|n| match n.window {
                Window::SlidingTime { size_ms } | Window::Tumbling { size_ms } => {
                    size_ms.saturating_add(disorder)
                }
                Window::TumblingPrevious { size_ms } => {
                    size_ms.saturating_mul(2).saturating_add(disorder)
                }
                _ => i64::MAX,
            })
            .max()
            .unwrap_or(i64::MAX)
    }
}
