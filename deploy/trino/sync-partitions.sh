#!/bin/sh
# Registers the normlake table in the metastore through Trino once, then keeps Trino's view
# of its partitions current: every 30 s a partition sync adds the partitions normlake has
# published since. (`normlake ddl --dialect trino` generated sensors.sql; a test keeps it in
# sync with the job's configuration.)
set -eu
SERVER=http://trino:8080
until trino --server "$SERVER" --execute 'SELECT 1' >/dev/null 2>&1; do
  echo "waiting for Trino"; sleep 3
done
until trino --server "$SERVER" --catalog lake --file /sql/sensors.sql; do
  echo "registering the table failed (is the metastore up?); retrying"; sleep 5
done
while true; do
  trino --server "$SERVER" --catalog lake \
    --execute "CALL system.sync_partition_metadata('default', 'sensors', 'ADD')" || true
  sleep 30
done
