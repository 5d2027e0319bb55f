#!/usr/bin/env bash
# The distributed part of the demo: three nodes of a postgres_fdw cluster under .demo/cluster/
# (ports 55440-55442, Unix sockets only), a hash-partitioned table with one partition per node,
# a workload through the coordinator n1, the shards' sends, and what n1 then shows.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$(pg_config --bindir):$PATH"
DIR="$(pwd)/.demo/cluster"
NODES=(n1 n2 n3)
port_of() { echo $((55440 + ${1#n} - 1)); }
as_pg() { runuser -u postgres -- env PATH="$PATH" "$@"; }
on() { local n=$1; shift; as_pg psql -X -q -h "$DIR" -p "$(port_of "$n")" -d postgres -v ON_ERROR_STOP=1 "$@"; }

stop_all() {
  for n in "${NODES[@]}"; do
    [ -f "$DIR/$n/postmaster.pid" ] && as_pg pg_ctl -D "$DIR/$n" -m fast -w stop >/dev/null || true
  done
}
stop_all
rm -rf "$DIR" && mkdir -p "$DIR" && chown postgres "$DIR"
trap stop_all EXIT

for n in "${NODES[@]}"; do
  as_pg initdb -D "$DIR/$n" -A trust -U postgres >/dev/null
  cat >> "$DIR/$n/postgresql.conf" <<CONF
port = $(port_of "$n")
listen_addresses = ''
unix_socket_directories = '$DIR'
shared_preload_libraries = 'pg_stat_monitor'
pg_stat_monitor.pgsm_node_name = '$n'
pg_stat_monitor.pgsm_bucket_time = 10
pg_stat_monitor.pgsm_sdm_send_interval = 2
CONF
  as_pg pg_ctl -D "$DIR/$n" -l "$DIR/$n.log" -w start >/dev/null
done

echo; echo "== a 3-node postgres_fdw cluster under .demo/cluster: n1 coordinates, n2 and n3 are shards"
for i in 0 1 2; do
  me="n$((i + 1))"
  sql="CREATE EXTENSION pg_stat_monitor CASCADE; CREATE EXTENSION postgres_fdw;
       CREATE TABLE sharded (id int, v int) PARTITION BY HASH (id);"
  for j in 0 1 2; do
    other="n$((j + 1))"
    if [ "$j" = "$i" ]; then
      sql="$sql CREATE TABLE sharded_p$j PARTITION OF sharded FOR VALUES WITH (MODULUS 3, REMAINDER $j);"
    else
      sql="$sql CREATE SERVER $other FOREIGN DATA WRAPPER postgres_fdw
                  OPTIONS (host '$DIR', port '$(port_of "$other")', dbname 'postgres');
                CREATE USER MAPPING FOR postgres SERVER $other;
                CREATE FOREIGN TABLE sharded_p$j PARTITION OF sharded
                  FOR VALUES WITH (MODULUS 3, REMAINDER $j) SERVER $other;"
    fi
  done
  on "$me" -c "$sql" 2>/dev/null
done
on n1 -c "INSERT INTO sharded SELECT g, g FROM generate_series(1, 30000) g"
on n1 -c "SELECT pg_stat_monitor_reset()" >/dev/null
cat > "$DIR/work.sql" <<'SQL'
\set id random(1, 30000)
SELECT v FROM sharded WHERE id = :id;
UPDATE sharded SET v = v + 1 WHERE id = :id;
SQL
echo "== pgbench through n1: 2 clients, 6 seconds (a SELECT and an UPDATE by id)"
as_pg pgbench -n -c 2 -T 6 -f "$DIR/work.sql" -h "$DIR" -p "$(port_of n1)" postgres 2>/dev/null \
  | grep -E "^(tps|number of transactions)"
on n1 -c "SELECT count(*) AS rows_in_the_cluster, sum(v) - 30000 * 30001 / 2 AS updates FROM sharded"

echo "== the shards send what they ran for n1 (the worker does it every pgsm_sdm_send_interval)"
for n in n2 n3; do on "$n" -c "SELECT '$n' AS shard, pg_stat_monitor_sdm_send() AS entries_delivered"; done
on n2 -c "SELECT node, pending, sent, bytes_raw, bytes_sent, dropped, last_error FROM pg_stat_monitor_sdm_outbox"

echo "== on n1: each distributed statement with its fragments (pg_stat_monitor_sdm_statements)"
on n1 -c "SELECT left(query, 44) AS query, calls, shards, fragments, fragment_calls, fragment_rows,
       round(total_exec_time::numeric, 1) AS own_ms, round(fragment_total_exec_time::numeric, 1) AS frag_ms
  FROM pg_stat_monitor_sdm_statements ORDER BY calls DESC LIMIT 4"
echo "== on n1: per shard and fragment (pg_stat_monitor_sdm_fragments)"
on n1 -c "SELECT node, left(fragment_query, 50) AS fragment_query, calls, rows,
       round(mean_exec_time::numeric, 3) AS mean_ms
  FROM pg_stat_monitor_sdm_fragments ORDER BY node, calls DESC LIMIT 6"
echo "== on n1: what each sender delivered (pg_stat_monitor_sdm_stats_updated())"
on n1 -c "SELECT node, entries_received, batches, bytes_received FROM pg_stat_monitor_sdm_stats_updated()"
echo "(logs: .demo/cluster/n*.log; the cluster is stopped when the demo ends)"
