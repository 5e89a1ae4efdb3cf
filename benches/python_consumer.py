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

Usage: python3 python_consumer.py BROKERS TOPIC PARTITIONS EVENTS OUT_DIR
Prints one line: rows, files and bytes written.
"""

import json
import os
import sys
import time
from collections import deque

import pyarrow as pa
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


def main():
    brokers, topic, partitions, events, out_dir = sys.argv[1:6]
    partitions, events = int(partitions), int(events)
    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": "bench-python",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])

    names = ["key", "event_time", "kafka_partition", "kafka_offset"]
    for f in FEATURES:
        names += [f, f + "_z", f + "_z_center", f + "_z_scale", f + "_z_n", f + "_z_status"]
    width = len(names)

    keys = {}
    rows = {}  # hour -> list of columns
    next_offsets = {}
    seen = written = files = size = 0
    last_flush = time.monotonic()
    nfeat = len(FEATURES)

    def flush():
        nonlocal rows, files, size, written
        for hour, cols in rows.items():
            table = pa.table(
                [
                    pa.array(cols[0], pa.string()),
                    pa.array(cols[1], pa.timestamp("ms", tz="UTC")),
                    pa.array(cols[2], pa.int32()),
                    pa.array(cols[3], pa.int64()),
                ]
                + [
                    pa.array(c, pa.int64() if names[i].endswith("_n") else None)
                    for i, c in enumerate(cols[4:], start=4)
                ],
                names=names,
            )
            t = time.gmtime(hour * 3600)
            part = os.path.join(out_dir, time.strftime("dt=%Y-%m-%d/hr=%H", t))
            os.makedirs(part, exist_ok=True)
            path = os.path.join(part, f"part-{files:06d}.parquet")
            pq.write_table(table, path, compression="zstd", compression_level=1)
            files += 1
            size += os.path.getsize(path)
            written += table.num_rows
        rows = {}
        if next_offsets:
            consumer.commit(
                offsets=[TopicPartition(topic, p, o) for p, o in next_offsets.items()],
                asynchronous=False,
            )

    loads = json.loads
    while seen < events:
        batch = consumer.consume(num_messages=10_000, timeout=0.1)
        for m in batch:
            if m.error():
                continue
            seen += 1
            next_offsets[m.partition()] = m.offset() + 1
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
            hour = ts // 3_600_000
            cols = rows.get(hour)
            if cols is None:
                cols = rows[hour] = [[] for _ in range(width)]
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
        if time.monotonic() - last_flush >= FLUSH_SECONDS:
            flush()
            last_flush = time.monotonic()
    flush()
    consumer.close()
    print(f"python consumer: {seen} messages, {written} rows in {files} files, {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
