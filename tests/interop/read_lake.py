"""Read a normlake table with other engines and print what they see as JSON.

usage: read_lake.py TABLE_DIR DDL_FILE WORK_DIR [engine ...]
engines: duckdb, pyarrow, spark (default: all). For each: the total row count, the count per
(dt, hr) partition, and the normalized values of a sample of rows keyed by
"partition/offset".
"""
import json
import os
import sys

table_dir, ddl_file, work = sys.argv[1], sys.argv[2], sys.argv[3]
engines = sys.argv[4:] or ["duckdb", "pyarrow", "spark"]
SAMPLE = "kafka_offset % 97 = 0"
VALUE = "temp_z1m"
out = {}

if "duckdb" in engines:
    import duckdb

    src = f"read_parquet('{table_dir}/**/*.parquet', hive_partitioning = true)"
    con = duckdb.connect()
    total = con.execute(f"SELECT count(*) FROM {src}").fetchone()[0]
    parts = dict(
        (f"dt={dt}/hr={hr}", n)
        for dt, hr, n in con.execute(
            f"SELECT dt::VARCHAR, lpad(hr::VARCHAR, 2, '0'), count(*) FROM {src} GROUP BY ALL"
        ).fetchall()
    )
    sample = dict(
        (f"{p}/{o}", v)
        for p, o, v in con.execute(
            f"SELECT kafka_partition, kafka_offset, {VALUE} FROM {src} WHERE {SAMPLE}"
        ).fetchall()
    )
    out["duckdb"] = {"total": total, "partitions": parts, "sample": sample}

if "pyarrow" in engines:
    import pyarrow.dataset as ds

    t = ds.dataset(table_dir, format="parquet", partitioning="hive").to_table()
    parts = {}
    for dt, hr in zip(t.column("dt").to_pylist(), t.column("hr").to_pylist()):
        k = f"dt={dt}/hr={hr:02d}" if isinstance(hr, int) else f"dt={dt}/hr={hr}"
        parts[k] = parts.get(k, 0) + 1
    offsets = t.column("kafka_offset").to_pylist()
    s = t.filter([o % 97 == 0 for o in offsets])
    sample = {
        f"{p}/{o}": v
        for p, o, v in zip(
            s.column("kafka_partition").to_pylist(),
            s.column("kafka_offset").to_pylist(),
            s.column(VALUE).to_pylist(),
        )
    }
    out["pyarrow"] = {"total": t.num_rows, "partitions": parts, "sample": sample}

if "spark" in engines:
    from pyspark.sql import SparkSession

    os.makedirs(work, exist_ok=True)
    spark = (
        SparkSession.builder.master("local[1]")
        .appName("normlake-interop")
        .config("spark.sql.warehouse.dir", os.path.join(work, "warehouse"))
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        # Derby's log and database go to the work directory, not the current one.
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={work}")
        .config(
            "javax.jdo.option.ConnectionURL",
            f"jdbc:derby:;databaseName={os.path.join(work, 'metastore')};create=true",
        )
        .enableHiveSupport()
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    ddl = open(ddl_file).read()
    # The CREATE statement only: partitions are discovered by MSCK REPAIR TABLE.
    create = [s for s in ddl.split(";") if s.strip().upper().startswith("CREATE")]
    for stmt in create:
        spark.sql(stmt)
    table = create[0].split("`")[1]
    spark.sql(f"MSCK REPAIR TABLE `{table}`")
    total = spark.sql(f"SELECT count(*) FROM `{table}`").collect()[0][0]
    parts = {
        f"dt={r[0]}/hr={r[1]}": r[2]
        for r in spark.sql(f"SELECT dt, hr, count(*) FROM `{table}` GROUP BY dt, hr").collect()
    }
    sample = {
        f"{r[0]}/{r[1]}": r[2]
        for r in spark.sql(
            f"SELECT kafka_partition, kafka_offset, {VALUE} FROM `{table}` WHERE {SAMPLE}"
        ).collect()
    }
    out["spark"] = {"total": total, "partitions": parts, "sample": sample}
    spark.stop()

print(json.dumps(out))
