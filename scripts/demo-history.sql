-- the history part of the demo: export what has finished, then read it back
\echo == export finished buckets into history (the worker also does it on its own)
SELECT pg_stat_monitor_export() AS rows_written;
\echo == top statements from history (pg_stat_monitor_top_statements, by total execution time)
SELECT left(query, 60) AS query, calls, round(total_exec_time::numeric, 1) AS total_ms,
       round(mean_exec_time::numeric, 3) AS mean_ms
  FROM pg_stat_monitor_top_statements(now() - interval '1 hour', now() + interval '1 minute')
 LIMIT 8;
\echo == history per bucket (pg_stat_monitor_bucket_totals)
SELECT bucket_start_time, statements, calls, round(total_exec_time::numeric, 1) AS total_ms
  FROM pg_stat_monitor_bucket_totals ORDER BY 1 DESC LIMIT 6;
\echo == history partitions
SELECT c.relname AS partition, pg_size_pretty(pg_total_relation_size(c.oid)) AS size,
       (SELECT count(*) FROM pg_stat_monitor_history h WHERE h.tableoid = c.oid) AS rows
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent = 'pg_stat_monitor_history'::regclass ORDER BY 1;
