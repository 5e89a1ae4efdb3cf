//! How a bounded window is checkpointed: its values as one byte string, its shift and the
//! length of its Two-Stacks front stack. The stacks themselves are not stored;
//! `TwoStacks::restore` recomputes them on load, bit for bit.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::super::stats::{Item, SortedValues, TwoStacks};
use super::{Bounded, WindowAgg};
use crate::varint::{put_varint, take_varint};

/// A window's values as one byte string: per value, the difference of its event time from the
/// one before (zigzag LEB128, a byte or two for steady streams) and its 8 bytes. One string per
/// window, not one serde element per value: a checkpoint is mostly this, and writing it value by
/// value through the serializer cost several times as much.
struct TimeDeltas<'a>(&'a VecDeque<Item>);

thread_local! {
    /// Reused between windows while a checkpoint is written.
    static DELTAS: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Serialize for TimeDeltas<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        DELTAS.with_borrow_mut(|buf| {
            buf.clear();
            buf.reserve(self.0.len() * 11);
            let mut prev = 0i64;
            for it in self.0 {
                put_varint(buf, it.ts.wrapping_sub(prev));
                buf.extend_from_slice(&it.x.to_le_bytes());
                prev = it.ts;
            }
            s.serialize_bytes(buf)
        })
    }
}

/// The values of [`TimeDeltas`] read back.
fn decode_deltas(bytes: &[u8]) -> Result<VecDeque<Item>, String> {
    let mut items = Vec::with_capacity(bytes.len() / 9);
    let (mut at, mut prev) = (0usize, 0i64);
    while at < bytes.len() {
        prev = prev.wrapping_add(take_varint(bytes, &mut at)?);
        items.push(Item {
            ts: prev,
            x: take_f64(bytes, &mut at)?,
        });
    }
    Ok(items.into())
}

/// Read 8 little-endian bytes of a float at `at`, moving `at` past them.
pub(in crate::normalize) fn take_f64(bytes: &[u8], at: &mut usize) -> Result<f64, String> {
    let x: [u8; 8] = bytes
        .get(*at..*at + 8)
        .and_then(|b| b.try_into().ok())
        .ok_or("the values end inside a value")?;
    *at += 8;
    Ok(f64::from_le_bytes(x))
}

/// Owned bytes from any serde format (postcard reads them in one piece).
pub(in crate::normalize) struct Blob(pub Vec<u8>);

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Blob;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Blob, E> {
                Ok(Blob(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(v))
            }
        }
        d.deserialize_byte_buf(V)
    }
}

#[derive(Serialize)]
enum AggOut<'a> {
    Moments,
    Extrema,
    Order(&'a SortedValues),
}

#[derive(Serialize)]
struct BoundedOut<'a> {
    items: TimeDeltas<'a>,
    retired: Option<&'a VecDeque<Item>>,
    agg: AggOut<'a>,
    front_len: u64,
    shift: Option<f64>,
}

/// Variants in the order of `AggOut`.
#[derive(Deserialize)]
enum AggIn {
    Moments,
    Extrema,
    Order(SortedValues),
}

#[derive(Deserialize)]
pub(super) struct BoundedIn {
    items: Blob,
    #[allow(clippy::box_collection)]
    retired: Option<Box<VecDeque<Item>>>,
    agg: AggIn,
    front_len: u64,
    shift: Option<f64>,
}

impl Serialize for Bounded {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (agg, front_len) = match &self.agg {
            WindowAgg::Moments(t) => (AggOut::Moments, t.front_len()),
            WindowAgg::Extrema(t) => (AggOut::Extrema, t.front_len()),
            WindowAgg::Order(v) => (AggOut::Order(v), 0),
        };
        BoundedOut {
            items: TimeDeltas(&self.items),
            retired: self.retired.as_deref(),
            agg,
            front_len: front_len as u64,
            shift: self.shift,
        }
        .serialize(s)
    }
}

impl TryFrom<BoundedIn> for Bounded {
    type Error = String;
    fn try_from(b: BoundedIn) -> Result<Self, String> {
        let items = decode_deltas(&b.items.0)?;
        let shift = b.shift.unwrap_or(0.0);
        let front_len = b.front_len as usize;
        let agg = match b.agg {
            AggIn::Moments => WindowAgg::Moments(TwoStacks::restore(&items, front_len, shift)),
            AggIn::Extrema => WindowAgg::Extrema(TwoStacks::restore(&items, front_len, shift)),
            AggIn::Order(v) => WindowAgg::Order(v),
        };
        Ok(Bounded {
            items,
            retired: b.retired,
            agg,
            shift: b.shift,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_values_survive_their_byte_encoding_exactly() {
        let times = [
            0,
            1,
            -1,
            i64::MAX,
            i64::MIN,
            1_795_000_000_000,
            1_795_000_000_000,
            5,
        ];
        let values = [
            0.0,
            -0.0,
            f64::MIN_POSITIVE,
            1e300,
            -7.25,
            f64::MAX,
            3.5,
            1.0 / 3.0,
        ];
        let items: VecDeque<Item> = times
            .iter()
            .zip(values)
            .map(|(&ts, x)| Item { ts, x })
            .collect();
        let bytes = postcard::to_stdvec(&TimeDeltas(&items)).expect("serialize");
        let blob: Blob = postcard::from_bytes(&bytes).expect("deserialize");
        let back = decode_deltas(&blob.0).expect("decode");
        assert_eq!(back.len(), items.len());
        for (a, b) in back.iter().zip(&items) {
            assert_eq!((a.ts, a.x.to_bits()), (b.ts, b.x.to_bits()));
        }
        // A steady stream costs a byte or two per time.
        let steady: VecDeque<Item> = (0..100)
            .map(|i| Item {
                ts: 1_795_000_000_000 + i * 1_000,
                x: 1.0,
            })
            .collect();
        let bytes = postcard::to_stdvec(&TimeDeltas(&steady)).expect("serialize");
        assert!(bytes.len() < 100 * 10 + 16, "{} bytes", bytes.len());
        // Cut anywhere inside a value or a time: an error, not a wrong window.
        let blob: Blob = postcard::from_bytes(&bytes).expect("deserialize");
        for cut in [1, 5, blob.0.len() - 1] {
            assert!(decode_deltas(&blob.0[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode_deltas(&[0xff; 12]).is_err(), "an overlong time");
    }
}
