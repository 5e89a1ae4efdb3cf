"""The columns of a normlake table, and some of its rows, as DuckDB and Spark SQL see them.

usage: column_types.py TABLE_DIR DDL_FILE WORK_DIR COLUMN [COLUMN ...]
Prints JSON: for "duckdb" and "spark", "types" (column -> type name as the engine prints it)
and "rows" (the given columns of every row, ordered by partition and offset, as strings).
"""
import json
import os
import sys

table_dir, ddl_file, work = sys.argv[1:4]
columns = sys.argv[4:]
select = ", ".join(f"CAST({c} AS STRING)" for c in columns)
order = "ORDER BY kafka_partition, kafka_offset"
out = {}

import duckdb

src = f"read_parquet('{table_dir}/**/*.parquet', hive_partitioning = true)"
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
types = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}
rows = con.execute(
    f"SELECT {select.replace('AS STRING', 'AS VARCHAR')} FROM {src} {order}"
).fetchall()
out["duckdb"] = {"types": types, "rows": [list(r) for r in rows]}

from pyspark.sql import SparkSession

os.makedirs(work, exist_ok=True)
spark = (
    SparkSession.builder.master("local[1]")
    .appName("normlake-types")
    .config("spark.sql.warehouse.dir", os.path.join(work, "warehouse"))
    .config("spark.ui.enabled", "false")
    .config("spark.sql.session.timeZone", "UTC")
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
create = [s for s in ddl.split(";") if s.strip().upper().startswith("CREATE")]
for stmt in create:
    spark.sql(stmt)
table = create[0].split("`")[1]
spark.sql(f"MSCK REPAIR TABLE `{table}`")
types = {}
for r in spark.sql(f"DESCRIBE `{table}`").collect():
    if r.col_name.startswith("#"):
        break
    types[r.col_name] = r.data_type
rows = spark.sql(f"SELECT {select} FROM `{table}` {order}").collect()
out["spark"] = {"types": types, "rows": [list(r) for r in rows]}
spark.stop()

print(json.dumps(out))
