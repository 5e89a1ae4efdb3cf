//! Exponentially weighted statistics: by event count (`Ewm`) and by event time with a
//! half-life (`EwmTime`), and the decay shared by a key's features.

use serde::{Deserialize, Serialize};

use super::CenterScale;
use crate::normalize::Method;

/// Exponentially weighted moments by event count (Finch, "Incremental calculation of
/// weighted mean and variance", 2009).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Ewm {
    pub(super) n: u64,
    pub(super) mean: f64,
    pub(super) var: f64,
}

/// Exponentially weighted moments on event time with a half-life (West's weighted update).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct EwmTime {
    pub(super) n: u64,
    pub(super) last_ts: i64,
    pub(super) weight: f64,
    pub(super) mean: f64,
    pub(super) s: f64,
}

pub(super) fn ew_cs(n: u64, mean: f64, var: f64, method: &Method) -> CenterScale {
    if n == 0 {
        return CenterScale::empty(0);
    }
    let eps = match method {
        Method::Zscore { eps, .. } => *eps,
        _ => 0.0,
    };
    let s = if eps > 0.0 {
        (var + eps).sqrt()
    } else {
        var.sqrt()
    };
    CenterScale {
        n,
        value: Some((0.0, mean, s)),
    }
}

/// The last time decay computed while processing one event. The features of a key usually
/// share the time since their last value, so one `exp` serves them all.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecayMemo {
    last: Option<(i64, i64, f64)>,
}

impl DecayMemo {
    /// `0.5^(dt/h)`, computed as `exp(dt · ln(0.5)/h)`: the same value, a fraction of powf's cost.
    fn decay(&mut self, dt: i64, halflife_ms: i64) -> f64 {
        match self.last {
            Some((d, h, v)) if d == dt && h == halflife_ms => v,
            _ => {
                let v = (dt as f64 * (-std::f64::consts::LN_2 / halflife_ms as f64)).exp();
                self.last = Some((dt, halflife_ms, v));
                v
            }
        }
    }
}

impl Ewm {
    /// Learn `x` with weight `alpha`.
    pub(super) fn update(&mut self, alpha: f64, x: f64) {
        if self.n == 0 {
            *self = Ewm {
                n: 1,
                mean: x,
                var: 0.0,
            };
        } else {
            let d = x - self.mean;
            self.mean += alpha * d;
            self.var = (1.0 - alpha) * (self.var + d * alpha * d);
            self.n += 1;
        }
    }
}

impl EwmTime {
    /// Learn `x` at time `t`, earlier weights decayed by the half-life `h`.
    pub(super) fn update(&mut self, t: i64, x: f64, h: i64, memo: &mut DecayMemo) {
        if self.n == 0 {
            *self = EwmTime {
                n: 1,
                last_ts: t,
                weight: 1.0,
                mean: x,
                s: 0.0,
            };
            return;
        }
        // Out-of-order timestamps (processing time) count as simultaneous.
        let d = memo.decay((t - self.last_ts).max(0), h);
        self.weight = d * self.weight + 1.0;
        self.s *= d;
        let m_new = self.mean + (x - self.mean) / self.weight;
        self.s += (x - self.mean) * (x - m_new);
        self.mean = m_new;
        self.last_ts = self.last_ts.max(t);
        self.n += 1;
    }

    pub(super) fn variance(&self) -> f64 {
        if self.weight > 0.0 {
            self.s / self.weight
        } else {
            0.0
        }
    }
}
