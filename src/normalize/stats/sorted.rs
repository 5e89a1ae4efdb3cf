//! Values kept sorted for exact order statistics, as a list of small sorted blocks.
//!
//! One sorted vector costs O(W) per insert and eviction (every value after the position
//! moves), and in a job with thousands of keys each window is out of cache when its event
//! comes, so the cost is the memory it touches. Blocks of at most `BLOCK` values, with their
//! last values in one array of their own, touch that array (a binary search), one block (a
//! binary search and a shift of at most `BLOCK` values) and, to find a rank, the block
//! lengths: O(log(W/B) + B + W/B) values, a few dozen cache lines for 1,200 values where one
//! vector moved a hundred and fifty.
//!
//! The order of the values, equal ones included, is the one the single vector had: a value
//! goes before the values equal to it, and a removal takes the first equal one. So every
//! quantile, and every checkpoint (the values in order, as before), is unchanged bit for bit.

use serde::{Deserialize, Serialize};

/// The capacity of a block: a full block splits in halves before an insert, so a block never
/// reallocates once it is one of several. 1 KiB of values.
const BLOCK: usize = 128;
/// A block shorter than this merges with (or takes values from) a neighbour.
const SMALL: usize = BLOCK / 4;

/// Sorted values in blocks; no block is empty, and `lasts[i]` is the last value of block `i`.
#[derive(Debug, Clone, Default)]
pub struct SortedValues {
    blocks: Vec<Vec<f64>>,
    lasts: Vec<f64>,
    len: usize,
}

impl SortedValues {
    fn from_sorted(values: Vec<f64>) -> Self {
        let len = values.len();
        if len <= BLOCK {
            let lasts = values.last().copied().into_iter().collect();
            let blocks = if len == 0 { Vec::new() } else { vec![values] };
            return SortedValues { blocks, lasts, len };
        }
        let blocks: Vec<Vec<f64>> = values
            .chunks(BLOCK * 3 / 4)
            .map(|c| {
                let mut b = Vec::with_capacity(BLOCK);
                b.extend_from_slice(c);
                b
            })
            .collect();
        let lasts = blocks.iter().filter_map(|b| b.last().copied()).collect();
        SortedValues { blocks, lasts, len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn first(&self) -> Option<f64> {
        self.blocks.first().and_then(|b| b.first()).copied()
    }

    /// The values in order.
    pub fn iter(&self) -> impl Iterator<Item = f64> + '_ {
        self.blocks.iter().flatten().copied()
    }

    /// The block holding the first value not below `x`, or the last block.
    fn block_of(&self, x: f64) -> usize {
        let b = below(&self.lasts, x);
        b.min(self.blocks.len().saturating_sub(1))
    }

    pub fn insert(&mut self, x: f64) {
        if self.blocks.is_empty() {
            self.blocks.push(Vec::with_capacity(4));
            self.lasts.push(x);
        }
        let mut b = self.block_of(x);
        if self.blocks[b].len() >= BLOCK {
            self.make_room(b);
            b = self.block_of(x);
        }
        let block = &mut self.blocks[b];
        let at = below(block, x);
        if at == block.len() {
            self.lasts[b] = x;
        }
        block.insert(at, x);
        self.len += 1;
    }

    /// Make room in the full block `b`: pass a share of its values to a neighbour with room
    /// (which keeps the blocks fuller than halves would: less memory per value), or split it.
    fn make_room(&mut self, b: usize) {
        const ROOM: usize = BLOCK / 4;
        let has_room = |i: usize| self.blocks.get(i).is_some_and(|n| n.len() <= BLOCK - ROOM);
        if has_room(b + 1) {
            let [full, next] = self
                .blocks
                .get_disjoint_mut([b, b + 1])
                .expect("two blocks"); // ok: b + 1 exists (it has room) and differs from b
            let keep = full.len() - (BLOCK - next.len()) / 2;
            next.splice(0..0, full.drain(keep..));
            self.lasts[b] = full[keep - 1];
        } else if b > 0 && has_room(b - 1) {
            let [prev, full] = self
                .blocks
                .get_disjoint_mut([b - 1, b])
                .expect("two blocks"); // ok: b > 0, and b is the full block
            let moved = (BLOCK - prev.len()) / 2;
            prev.extend(full.drain(..moved));
            self.lasts[b - 1] = prev[prev.len() - 1];
        } else {
            self.split(b);
        }
    }

    /// Split block `b` in halves, each with room for `BLOCK` values.
    fn split(&mut self, b: usize) {
        let block = &mut self.blocks[b];
        let half = block.len() / 2;
        let mut tail = Vec::with_capacity(BLOCK);
        tail.extend_from_slice(&block[half..]);
        block.truncate(half);
        block.reserve_exact(BLOCK - half);
        let head_last = block[half - 1];
        self.blocks.insert(b + 1, tail);
        self.lasts.insert(b, head_last);
    }

    /// Remove the first value equal to `x`, if there is one.
    pub fn remove(&mut self, x: f64) {
        if self.blocks.is_empty() {
            return;
        }
        let b = self.block_of(x);
        let block = &mut self.blocks[b];
        let at = below(block, x);
        if at < block.len() && block[at] == x {
            block.remove(at);
            self.len -= 1;
            if let (true, Some(last)) = (at == block.len(), block.last()) {
                self.lasts[b] = *last;
            }
            if block.len() < SMALL {
                self.merge_around(b);
            }
        }
    }

    /// Merge the short block `b` with a neighbour, or even the two out when together they
    /// would not fit one block; drop it if it is the only one and empty.
    fn merge_around(&mut self, b: usize) {
        if self.blocks.len() == 1 {
            if self.blocks[0].is_empty() {
                self.blocks.clear();
                self.lasts.clear();
            }
            return;
        }
        let l = if b + 1 < self.blocks.len() { b } else { b - 1 };
        let [left, right] = self
            .blocks
            .get_disjoint_mut([l, l + 1])
            .expect("two distinct blocks"); // ok: there are at least two blocks, l + 1 the last at most
        let total = left.len() + right.len();
        if total <= BLOCK {
            left.extend_from_slice(right);
            let last = left[total - 1];
            self.blocks.remove(l + 1);
            self.lasts.remove(l + 1);
            self.lasts[l] = last;
            return;
        }
        let half = total / 2;
        if left.len() < half {
            left.extend(right.drain(..half - left.len()));
        } else {
            right.splice(0..0, left.drain(half..));
        }
        self.lasts[l] = left[half - 1];
    }

    /// Shrink capacity when `over(capacity, len)` says it is too large. Only a window of one
    /// block is trimmed (the many small windows); the blocks of a larger one hold `BLOCK`
    /// values each and are at least a quarter full.
    pub fn trim(&mut self, over: fn(usize, usize) -> bool, room: fn(usize) -> usize) {
        if let [b] = self.blocks.as_mut_slice()
            && over(b.capacity(), b.len())
        {
            b.shrink_to(room(b.len()));
        }
    }

    pub fn heap_bytes(&self) -> usize {
        let values: usize = self.blocks.iter().map(Vec::capacity).sum();
        (values + self.lasts.capacity()) * std::mem::size_of::<f64>()
            + self.blocks.capacity() * std::mem::size_of::<Vec<f64>>()
    }
}

/// How many of the sorted `values` are below `x`: the position of the first one that is not.
/// A scan rather than a binary search: every load is independent of the others, so the cache
/// misses of a window that is cold (the usual case, among thousands of keys) overlap instead
/// of following one another, and the comparisons vectorize.
fn below(values: &[f64], x: f64) -> usize {
    values.iter().filter(|v| **v < x).count()
}

/// Sorted values addressed by rank, for the quantiles.
pub trait Ranked {
    fn count(&self) -> usize;
    /// The value of rank `i` and the next one, if any.
    fn pair(&self, i: usize) -> Option<(f64, Option<f64>)>;
}

impl Ranked for [f64] {
    fn count(&self) -> usize {
        self.len()
    }

    fn pair(&self, i: usize) -> Option<(f64, Option<f64>)> {
        Some((*self.get(i)?, self.get(i + 1).copied()))
    }
}

impl Ranked for SortedValues {
    fn count(&self) -> usize {
        self.len
    }

    fn pair(&self, mut i: usize) -> Option<(f64, Option<f64>)> {
        for (k, b) in self.blocks.iter().enumerate() {
            if i < b.len() {
                let next = b.get(i + 1).or_else(|| self.blocks.get(k + 1)?.first());
                return Some((b[i], next.copied()));
            }
            i -= b.len();
        }
        None
    }
}

/// The stored form is the one of the single sorted vector: `{ values: [...] }`.
#[derive(Deserialize)]
#[serde(rename = "SortedValues")]
struct Stored {
    values: Vec<f64>,
}

struct Flat<'a>(&'a SortedValues);

impl Serialize for Flat<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.0.len))?;
        for x in self.0.iter() {
            seq.serialize_element(&x)?;
        }
        seq.end()
    }
}

impl Serialize for SortedValues {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("SortedValues", 1)?;
        st.serialize_field("values", &Flat(self))?;
        st.end()
    }
}

impl<'de> Deserialize<'de> for SortedValues {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let stored = Stored::deserialize(d)?;
        if stored.values.is_sorted_by(|a, b| a <= b) {
            Ok(SortedValues::from_sorted(stored.values))
        } else {
            Err(serde::de::Error::custom(
                "the sorted values are out of order",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The single sorted vector these blocks replace, as the reference.
    #[derive(Default)]
    struct Reference(Vec<f64>);

    impl Reference {
        fn insert(&mut self, x: f64) {
            let at = self.0.partition_point(|v| *v < x);
            self.0.insert(at, x);
        }
        fn remove(&mut self, x: f64) {
            let at = self.0.partition_point(|v| *v < x);
            if at < self.0.len() && self.0[at] == x {
                self.0.remove(at);
            }
        }
    }

    fn bits(v: impl Iterator<Item = f64>) -> Vec<u64> {
        v.map(f64::to_bits).collect()
    }

    /// A sliding window of random values with ties and signed zeros: the blocks hold the same
    /// bits in the same order as one sorted vector after every step, and every rank answers.
    #[test]
    fn blocks_match_one_sorted_vector() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut blocks = SortedValues::default();
        let mut reference = Reference::default();
        let mut window = std::collections::VecDeque::new();
        for step in 0..20_000 {
            let r = next();
            let x = match r % 7 {
                0 => 0.0,
                1 => -0.0,
                _ => (r % 301) as f64 - 150.0,
            };
            let width = if step < 10_000 { 6_000 } else { 40 };
            window.push_back(x);
            blocks.insert(x);
            reference.insert(x);
            while window.len() > width {
                let old = window.pop_front().unwrap();
                blocks.remove(old);
                reference.remove(old);
            }
            if step % 97 == 0 {
                assert_eq!(bits(blocks.iter()), bits(reference.0.iter().copied()));
                let lasts = blocks.blocks.iter().filter_map(|b| b.last().copied());
                assert_eq!(bits(blocks.lasts.iter().copied()), bits(lasts));
                for i in 0..reference.0.len() {
                    assert_eq!(blocks.pair(i), reference.0.as_slice().pair(i), "rank {i}");
                }
            }
        }
        assert_eq!(blocks.len(), reference.0.len());
        assert!(
            blocks
                .blocks
                .iter()
                .all(|b| !b.is_empty() && b.len() <= BLOCK)
        );
    }

    #[test]
    fn stored_form_is_the_sorted_vector() {
        let mut v = SortedValues::default();
        for x in (0..300).map(|i| ((i * 37) % 101) as f64) {
            v.insert(x);
        }
        #[derive(Serialize)]
        struct Old {
            values: Vec<f64>,
        }
        let old = postcard::to_allocvec(&Old {
            values: v.iter().collect(),
        })
        .unwrap();
        assert_eq!(postcard::to_allocvec(&v).unwrap(), old);
        let back: SortedValues = postcard::from_bytes(&old).unwrap();
        assert_eq!(bits(back.iter()), bits(v.iter()));
        let unsorted = postcard::to_allocvec(&Old {
            values: vec![2.0, 1.0],
        })
        .unwrap();
        assert!(postcard::from_bytes::<SortedValues>(&unsorted).is_err());
    }

    #[test]
    fn removing_everything_leaves_no_block() {
        let mut v = SortedValues::default();
        for i in 0..6_000 {
            v.insert(i as f64);
        }
        for i in 0..6_000 {
            v.remove(i as f64);
        }
        assert!(v.is_empty() && v.blocks.is_empty() && v.first().is_none());
        v.remove(1.0);
        assert_eq!(v.pair(0), None);
    }
}
