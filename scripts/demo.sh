#!/usr/bin/env bash
# A throwaway cluster under .demo/, a short pgbench workload, and what a DBA
# would look at: top statements, history, memory use.  Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$(pg_config --bindir):$PATH"
PORT=${PGSM_DEMO_PORT:-55439}
DIR="$(pwd)/.demo"
as_pg() { runuser -u postgres -- env PATH="$PATH" "$@"; }
psql_demo() { as_pg psql -X -q -h "$DIR" -p "$PORT" -d postgres -v ON_ERROR_STOP=1 "$@"; }

if [ -f "$DIR/data/postmaster.pid" ]; then
  as_pg pg_ctl -D "$DIR/data" -m fast -w stop >/dev/null || true
fi
rm -rf "$DIR" && mkdir -p "$DIR" && chown postgres "$DIR"
as_pg initdb -D "$DIR/data" -A trust -U postgres >/dev/null
cat >> "$DIR/data/postgresql.conf" <<CONF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$DIR'
shared_preload_libraries = 'pg_stat_monitor'
pg_stat_monitor.pgsm_bucket_time = 5
pg_stat_monitor.pgsm_export_interval = 2
CONF
as_pg pg_ctl -D "$DIR/data" -l "$DIR/server.log" -w start >/dev/null
trap 'as_pg pg_ctl -D "$DIR/data" -m fast -w stop >/dev/null' EXIT

echo "== a demo cluster on port $PORT under .demo/"
psql_demo -c "CREATE EXTENSION pg_stat_monitor CASCADE"
as_pg pgbench -q -i -s 2 -h "$DIR" -p "$PORT" postgres >/dev/null 2>&1
echo "== pgbench: 2 clients, 12 seconds"
as_pg pgbench -n -c 2 -T 12 -h "$DIR" -p "$PORT" postgres 2>/dev/null | grep -E "^(tps|number of transactions)"
psql_demo -c "SELECT pg_stat_monitor_reset()" >/dev/null
as_pg pgbench -n -c 2 -T 3 -h "$DIR" -p "$PORT" postgres >/dev/null 2>&1

echo; echo "== top statements by total execution time (pg_stat_monitor)"
psql_demo -c "SELECT left((array_agg(query))[1], 60) AS query, sum(calls) AS calls,
       round(sum(total_exec_time)::numeric, 1) AS total_ms,
       round((sum(total_exec_time) / nullif(sum(calls), 0))::numeric, 3) AS mean_ms, sum(rows) AS rows
  FROM pg_stat_monitor GROUP BY queryid ORDER BY 3 DESC LIMIT 8"

echo "== shared memory of the extension (pg_stat_monitor_info)"
psql_demo -c "SELECT max_entries, entries, overflowed_calls, dropped_calls,
       pg_size_pretty(shared_memory_bytes) AS shared_memory,
       pg_size_pretty(text_bytes_used) AS text_used, pg_size_pretty(text_bytes) AS text_room
  FROM pg_stat_monitor_info"
psql_demo -c "SELECT pg_size_pretty(shared_memory_bytes) AS this_extension,
       pg_size_pretty((256 + 20) * 1024 * 1024::bigint) AS upstream_at_its_defaults,
       max_entries AS room_for_entries
  FROM pg_stat_monitor_info"
if [ -f scripts/demo-history.sql ]; then
  psql_demo -f scripts/demo-history.sql
fi
echo "(server log: .demo/server.log; the cluster is stopped when the demo ends)"
bash scripts/demo-cluster.sh
