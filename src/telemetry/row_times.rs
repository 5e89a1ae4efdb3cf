//! The latency sources and the times of rows not yet committed, from which the metrics record
//! each row's latency when its file is committed.

use crate::varint;

/// Where an end-to-end latency is measured from (to the lake commit of the row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatencySource {
    /// The event's own timestamp.
    EventTime,
    /// The Kafka record's timestamp (append or create time, as the topic is configured).
    KafkaTime,
    /// When normlake received the record.
    Received,
}

impl LatencySource {
    pub const ALL: [LatencySource; 3] = [
        LatencySource::EventTime,
        LatencySource::KafkaTime,
        LatencySource::Received,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LatencySource::EventTime => "event_time",
            LatencySource::KafkaTime => "kafka_time",
            LatencySource::Received => "received",
        }
    }
}

/// The times of rows written but not committed yet, from which their latencies are recorded
/// when they are: per latency source, each row's time (Unix ms, `i64::MIN` where unknown) as
/// the zigzag LEB128 difference from the row before. Rows of one millisecond take a byte, a
/// steady stream two or three: a few bytes a row, where three times took 24 and, held for
/// every row of a long roll, filled the rows' memory share and made row groups small.
#[derive(Debug, Default)]
pub struct RowTimes {
    deltas: [Vec<u8>; 3],
    last: [i64; 3],
}

impl RowTimes {
    /// Add a row's (event time, Kafka time, received).
    pub fn push(&mut self, times: [i64; 3]) {
        for ((buf, last), t) in self.deltas.iter_mut().zip(&mut self.last).zip(times) {
            varint::put_varint(buf, t.wrapping_sub(*last));
            *last = t;
        }
    }

    /// The bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.deltas.iter().map(Vec::capacity).sum()
    }

    /// One source's times in row order, a run of equal times as (time, rows).
    pub(super) fn runs(&self, source: LatencySource) -> impl Iterator<Item = (i64, u64)> + '_ {
        let bytes = &self.deltas[source as usize];
        let (mut at, mut t) = (0usize, 0i64);
        let mut times = std::iter::from_fn(move || {
            let d = varint::take_varint(bytes, &mut at).ok()?;
            t = t.wrapping_add(d);
            Some(t)
        })
        .peekable();
        std::iter::from_fn(move || {
            let t = times.next()?;
            let mut rows = 1;
            while times.next_if_eq(&t).is_some() {
                rows += 1;
            }
            Some((t, rows))
        })
    }
}

/// Rows with repeated, falling, extreme and unknown times, for the tests of `RowTimes` and of
/// recording them.
#[cfg(test)]
pub(super) const SAMPLE: [[i64; 3]; 5] = [
    [1_000, i64::MIN, 5_000],
    [1_000, i64::MIN, 5_000],
    [900, 1_100, 5_000],
    [i64::MAX, 1_100, 5_000],
    [1_000, 1_200, 5_001],
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_times_read_back_in_runs() {
        let rows = SAMPLE;
        let mut times = RowTimes::default();
        rows.iter().for_each(|r| times.push(*r));
        let runs = |s| times.runs(s).collect::<Vec<_>>();
        assert_eq!(
            runs(LatencySource::EventTime),
            [(1_000, 2), (900, 1), (i64::MAX, 1), (1_000, 1)]
        );
        assert_eq!(
            runs(LatencySource::KafkaTime),
            [(i64::MIN, 2), (1_100, 2), (1_200, 1)]
        );
        assert_eq!(runs(LatencySource::Received), [(5_000, 4), (5_001, 1)]);
        assert!(times.heap_bytes() < rows.len() * 24);
    }
}
