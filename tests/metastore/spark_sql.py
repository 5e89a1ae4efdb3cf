"""Spark SQL connected to a Hive Metastore reads a table registered there, with no repair.

Usage: spark_sql.py METASTORE_URI DATABASE TABLE WORK_DIR

Prints JSON: "partitions" (SHOW PARTITIONS, as the metastore names them), "counts" (the
partition columns' raw values and the row count of each partition, from a GROUP BY over the
data), "total" (rows) and "columns" (DESCRIBE: name and type of every column, partition
columns included).
"""
import json
import os
import sys

uri, database, table, work = sys.argv[1:5]
os.makedirs(work, exist_ok=True)

from pyspark.sql import SparkSession

spark = (
    SparkSession.builder.master("local[1]")
    .appName("normlake-metastore")
    .config("spark.sql.catalogImplementation", "hive")
    .config("spark.hadoop.hive.metastore.uris", uri)
    .config("spark.sql.warehouse.dir", os.path.join(work, "warehouse"))
    .config("spark.ui.enabled", "false")
    .config("spark.sql.session.timeZone", "UTC")
    .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={work}")
    .enableHiveSupport()
    .getOrCreate()
)
spark.sparkContext.setLogLevel("ERROR")
name = f"`{database}`.`{table}`"
described = spark.sql(f"DESCRIBE {name}").collect()
columns = []
for r in described:
    if r.col_name.startswith("#"):
        break
    if r.col_name:
        columns.append([r.col_name, r.data_type])
part_info = spark.sql(f"DESCRIBE {name}").collect()
partition_columns = []
seen_header = False
for r in part_info:
    if r.col_name.startswith("# Partition Information"):
        seen_header = True
        continue
    if seen_header and r.col_name and not r.col_name.startswith("#"):
        partition_columns.append(r.col_name)
partitions = [r[0] for r in spark.sql(f"SHOW PARTITIONS {name}").collect()] if partition_columns else []
total = spark.sql(f"SELECT count(*) FROM {name}").collect()[0][0]
counts = []
if partition_columns:
    cols = ", ".join(f"`{c}`" for c in partition_columns)
    for r in spark.sql(f"SELECT {cols}, count(*) AS n FROM {name} GROUP BY {cols}").collect():
        counts.append([list(r)[:-1], r.n])
print(json.dumps({"partitions": partitions, "counts": counts, "total": total, "columns": columns}))
