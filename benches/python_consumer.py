"""The hand-written Python consumer of issue #7's comparison, run by `cargo bench --bench broker`.

It does what a data engineer would write in an afternoon with confluent-kafka and pyarrow:
consume in batches from the beginning, parse each message with `json.loads`, keep a per-key
`sliding_time(60s)` z-score of every feature (predict, then learn, as normlake's default), and
write the same wide rows (raw value, y, center, scale, n and status per feature) as Parquet
zstd(1) files under Hive `dt=/hr=` directories every 2 seconds, committing the group offsets
after each file is written (at least once: a crash between the two duplicates rows).

Its statistics are the usual shortcut: running sums with the evicted values subtracted and the
variance as E[x^2] - E[x]^2, which normalization-spec.md section 6 forbids because one change
of level leaves large errors. It is a speed reference, not a correct implementation.

With `--vectorized` it is instead the fastest shape such a consumer takes: each batch of up
to 50,000 messages is parsed at once by pyarrow's JSON reader, and the z-score is computed with
pyarrow compute from per-key statistics as they were before the batch (count, mean and M2,
merged by Chan's formulas, over all earlier events: an expanding window, not 60 s), so within
a batch a key's own earlier events do not count. It trades the semantics for vectorization.

Usage: python3 python_consumer.py BROKERS TOPIC PARTITIONS EVENTS OUT_DIR [--vectorized]
Prints one line: rows, files and bytes written.
"""

import io
import json
import os
import sys
import time
from collections import deque

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
import pyarrow.parquet as pq
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

FEATURES = [f"f{i}" for i in range(8)]
WINDOW_MS = 60_000
FLUSH_SECONDS = 2.0


class Key:
    __slots__ = ("window", "sums", "squares")

    def __init__(self):
        self.window = deque()
        self.sums = [0.0] * len(FEATURES)
        self.squares = [0.0] * len(FEATURES)


def consumer_for(brokers, topic, partitions):
    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": "bench-python",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            # As normlake sets them: librdkafka >= 2.4 otherwise backs a partition off for 1 s
            # whenever its fetch queue is full, which stalls a consumer slower than the broker.
            "fetch.queue.backoff.ms": 10,
            "fetch.wait.max.ms": 100,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    return consumer


class Lake:
    """Parquet files under dt=/hr= directories, and the group offsets committed after them."""

    def __init__(self, consumer, topic, out_dir):
        self.consumer, self.topic, self.out_dir = consumer, topic, out_dir
        self.next_offsets = {}
        self.files = self.size = self.written = 0
        self.last = time.monotonic()

    def due(self):
        return time.monotonic() - self.last >= FLUSH_SECONDS

    def write(self, table, ts_ms):
        """Write `table` by the hour of `ts_ms` (int64 ms)."""
        hours = pc.divide(ts_ms, 3_600_000)
        for hour in pc.unique(hours).to_pylist():
            t = time.gmtime(hour * 3600)
            part = os.path.join(self.out_dir, time.strftime("dt=%Y-%m-%d/hr=%H", t))
            os.makedirs(part, exist_ok=True)
            path = os.path.join(part, f"part-{self.files:06d}.parquet")
            rows = table.filter(pc.equal(hours, hour))
            pq.write_table(rows, path, compression="zstd", compression_level=1)
            self.files += 1
            self.size += os.path.getsize(path)
            self.written += rows.num_rows

    def commit(self):
        """Commit the offsets read, once what they cover is written."""
        if self.next_offsets:
            self.consumer.commit(
                offsets=[TopicPartition(self.topic, p, o) for p, o in self.next_offsets.items()],
                asynchronous=False,
            )
        self.last = time.monotonic()

    def close(self, name, seen):
        self.consumer.close()
        print(
            f"{name}: {seen} messages, {self.written} rows in {self.files} files, "
            f"{self.size / 1e6:.1f} MB"
        )


def vectorized(brokers, topic, partitions, events, out_dir):
    consumer = consumer_for(brokers, topic, partitions)
    schema = pa.schema([("id", pa.string()), ("ts", pa.int64())] + [(f, pa.float64()) for f in FEATURES])
    options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    stats = ["id"] + [f"{f}_{s}" for f in FEATURES for s in ("n", "mean", "m2")]
    state = pa.table({c: pa.array([], pa.string() if c == "id" else pa.float64()) for c in stats})
    lake = Lake(consumer, topic, out_dir)
    pending = []
    seen = 0

    def flush():
        nonlocal pending
        if pending:
            table = pa.concat_tables(pending)
            lake.write(table, table["event_time"].cast(pa.int64()))
            pending = []
        lake.commit()

    while seen < events:
        batch = [m for m in consumer.consume(num_messages=50_000, timeout=0.1) if not m.error()]
        if batch:
            seen += len(batch)
            for m in batch:
                lake.next_offsets[m.partition()] = m.offset() + 1
            t = pj.read_json(io.BytesIO(b"\n".join(m.value() for m in batch)), parse_options=options)
            t = t.append_column("kafka_partition", pa.array([m.partition() for m in batch], pa.int32()))
            t = t.append_column("kafka_offset", pa.array([m.offset() for m in batch], pa.int64()))
            joined = t.join(state, "id", join_type="left outer")
            cols = {
                "key": joined["id"],
                "event_time": joined["ts"].cast(pa.timestamp("ms", tz="UTC")),
                "kafka_partition": joined["kafka_partition"],
                "kafka_offset": joined["kafka_offset"],
            }
            for f in FEATURES:
                n = pc.fill_null(joined[f"{f}_n"], 0.0)
                mean = joined[f"{f}_mean"]
                scale = pc.sqrt(pc.divide(joined[f"{f}_m2"], n))
                usable = pc.and_(pc.greater_equal(n, 2.0), pc.greater(scale, 0.0))
                y = pc.if_else(usable, pc.divide(pc.subtract(joined[f], mean), scale), None)
                cols[f] = joined[f]
                cols[f + "_z"] = y
                cols[f + "_z_center"] = pc.if_else(usable, mean, None)
                cols[f + "_z_scale"] = pc.if_else(usable, scale, None)
                cols[f + "_z_n"] = n.cast(pa.int64())
                cols[f + "_z_status"] = pc.if_else(usable, "ok", "warmup")
            pending.append(pa.table(cols))
            # Merge the batch's per-key count, mean and M2 into the state (Chan et al.).
            aggs = [(f, a) for f in FEATURES for a in ("count", "mean")]
            aggs += [(f, "variance", pc.VarianceOptions(ddof=0)) for f in FEATURES]
            g = t.group_by("id").aggregate(aggs)
            merged = g.join(state, "id", join_type="full outer", left_suffix="_b", right_suffix="_s")
            new = {"id": merged["id"]}
            for f in FEATURES:
                nb = pc.fill_null(merged[f"{f}_count"].cast(pa.float64()), 0.0)
                mb = pc.fill_null(merged[f"{f}_mean_b"], 0.0)
                m2b = pc.multiply(pc.fill_null(merged[f"{f}_variance"], 0.0), nb)
                na = pc.fill_null(merged[f"{f}_n"], 0.0)
                ma = pc.fill_null(merged[f"{f}_mean_s"], 0.0)
                m2a = pc.fill_null(merged[f"{f}_m2"], 0.0)
                n = pc.add(na, nb)
                safe = pc.if_else(pc.greater(n, 0.0), n, 1.0)
                delta = pc.subtract(mb, ma)
                new[f"{f}_n"] = n
                new[f"{f}_mean"] = pc.add(ma, pc.divide(pc.multiply(delta, nb), safe))
                new[f"{f}_m2"] = pc.add(
                    pc.add(m2a, m2b),
                    pc.divide(pc.multiply(pc.multiply(delta, delta), pc.multiply(na, nb)), safe),
                )
            state = pa.table(new)
        if lake.due():
            flush()
    flush()
    lake.close("python consumer (vectorized)", seen)


def main():
    brokers, topic, partitions, events, out_dir = sys.argv[1:6]
    partitions, events = int(partitions), int(events)
    if "--vectorized" in sys.argv[6:]:
        vectorized(brokers, topic, partitions, events, out_dir)
        return
    consumer = consumer_for(brokers, topic, partitions)

    names = ["key", "event_time", "kafka_partition", "kafka_offset"]
    for f in FEATURES:
        names += [f, f + "_z", f + "_z_center", f + "_z_scale", f + "_z_n", f + "_z_status"]
    width = len(names)

    keys = {}
    lake = Lake(consumer, topic, out_dir)
    cols = [[] for _ in range(width)]
    seen = 0
    nfeat = len(FEATURES)

    def flush():
        nonlocal cols
        ts_ms = pa.array(cols[1], pa.int64())
        table = pa.table(
            [
                pa.array(cols[0], pa.string()),
                ts_ms.cast(pa.timestamp("ms", tz="UTC")),
                pa.array(cols[2], pa.int32()),
                pa.array(cols[3], pa.int64()),
            ]
            + [
                pa.array(c, pa.int64() if names[i].endswith("_n") else None)
                for i, c in enumerate(cols[4:], start=4)
            ],
            names=names,
        )
        if table.num_rows:
            lake.write(table, ts_ms)
        lake.commit()
        cols = [[] for _ in range(width)]

    loads = json.loads
    while seen < events:
        batch = consumer.consume(num_messages=10_000, timeout=0.1)
        for m in batch:
            if m.error():
                continue
            seen += 1
            lake.next_offsets[m.partition()] = m.offset() + 1
            try:
                ev = loads(m.value())
                key = ev["id"]
                ts = int(ev["ts"])
            except (ValueError, KeyError, TypeError):
                continue
            state = keys.get(key)
            if state is None:
                state = keys[key] = Key()
            window, sums, squares = state.window, state.sums, state.squares
            lo = ts - WINDOW_MS
            while window and window[0][0] <= lo:
                _, old = window.popleft()
                for i, x in enumerate(old):
                    if x is not None:
                        sums[i] -= x
                        squares[i] -= x * x
            cols[0].append(key)
            cols[1].append(ts)
            cols[2].append(m.partition())
            cols[3].append(m.offset())
            n = len(window)
            values = []
            c = 4
            for i in range(nfeat):
                x = ev.get(FEATURES[i])
                if not isinstance(x, (int, float)) or x != x:
                    x = None
                values.append(x)
                if x is None:
                    y = center = scale = None
                    status = "missing"
                elif n < 2:
                    y = center = scale = None
                    status = "warmup"
                else:
                    center = sums[i] / n
                    var = squares[i] / n - center * center
                    scale = var**0.5 if var > 0 else 0.0
                    if scale == 0.0:
                        scale, status = 1.0, "degenerate"
                    else:
                        status = "ok"
                    y = (x - center) / scale
                cols[c].append(x)
                cols[c + 1].append(y)
                cols[c + 2].append(center)
                cols[c + 3].append(scale)
                cols[c + 4].append(n)
                cols[c + 5].append(status)
                c += 6
            for i, x in enumerate(values):
                if x is not None:
                    sums[i] += x
                    squares[i] += x * x
            window.append((ts, values))
        if lake.due():
            flush()
    flush()
    lake.close("python consumer", seen)


if __name__ == "__main__":
    main()
