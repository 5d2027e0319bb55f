/*-------------------------------------------------------------------------
 *
 * readers.c
 *		SQL-callable functions over shared memory: the rows of the
 *		pg_stat_monitor view, capacity and loss counters, reset, and the
 *		freeze/release pair the export uses.
 *
 *-------------------------------------------------------------------------
 */
#include "pgsm.h"

#include <arpa/inet.h>
#include <math.h>

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "commands/dbcommands.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inet.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#define PGSM_VIEW_COLS 65
#define PGSM_INFO_COLS 17

PG_FUNCTION_INFO_V1(pg_stat_monitor_internal);
PG_FUNCTION_INFO_V1(pg_stat_monitor_info_internal);
PG_FUNCTION_INFO_V1(pg_stat_monitor_reset);
PG_FUNCTION_INFO_V1(pgsm_freeze_buckets);
PG_FUNCTION_INFO_V1(pgsm_release_buckets_on_commit);

static const char *const cmd_type_names[] = {
	"", "SELECT", "UPDATE", "INSERT", "DELETE", "MERGE", "UTILITY", "NOTHING"
};

const char *pgsm_cmd_type_name(int cmd_type);

const char *
pgsm_cmd_type_name(int cmd_type)
{
	if (cmd_type < 0 || cmd_type >= (int) lengthof(cmd_type_names))
		return "";
	return cmd_type_names[cmd_type];
}

static TimestampTz
unix_to_timestamptz(int64 secs)
{
	return (TimestampTz) (secs - (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY) * USECS_PER_SEC;
}

static int64
timestamptz_to_unix(TimestampTz ts)
{
	return ts / USECS_PER_SEC + (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY;
}

static Datum
client_ip_datum(const PgsmKey *key, bool *isnull)
{
	char		buf[INET6_ADDRSTRLEN];
	int			family = key->client_family == AF_INET6 ? AF_INET6 : AF_INET;

	*isnull = (key->client_family == 0);
	if (*isnull)
		return (Datum) 0;
	if (inet_ntop(family, key->client_addr, buf, sizeof(buf)) == NULL)
	{
		*isnull = true;
		return (Datum) 0;
	}
	return DirectFunctionCall1(inet_in, CStringGetDatum(buf));
}

/* schema.name of each relation, a view marked with '*' */
static Datum
relations_datum(const PgsmRow *row, bool *isnull)
{
	Datum	   *names;
	int			i;

	*isnull = (row->nrelids == 0);
	if (*isnull)
		return (Datum) 0;
	names = palloc(sizeof(Datum) * row->nrelids);
	for (i = 0; i < row->nrelids; i++)
	{
		Oid			relid = row->relids[i];
		char	   *rel = NULL;
		char	   *nsp = NULL;

		if (row->entry->key.dbid == MyDatabaseId)
		{
			rel = get_rel_name(relid);
			if (rel)
				nsp = get_namespace_name(get_rel_namespace(relid));
		}
		if (rel && nsp)
			names[i] = CStringGetTextDatum(psprintf("%s.%s%s", nsp, rel,
													get_rel_relkind(relid) == RELKIND_VIEW ? "*" : ""));
		else
			names[i] = CStringGetTextDatum(psprintf("%u", relid));
	}
	return PointerGetDatum(construct_array(names, row->nrelids, TEXTOID, -1, false, TYPALIGN_INT));
}

static Datum
histogram_datum(const PgsmEntry *e)
{
	Datum	   *slots = palloc(sizeof(Datum) * pgsm_hist_slots);
	int			i;

	for (i = 0; i < pgsm_hist_slots; i++)
		slots[i] = CStringGetTextDatum(psprintf("%d", e->hist[i]));
	return PointerGetDatum(construct_array(slots, pgsm_hist_slots, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * Texts come from every database, whatever its encoding: bytes that are not
 * valid in this database's encoding (from a SQL_ASCII database, say) are
 * shown as '?', so that no invalid text leaves the reader.
 */
static const char *
valid_text(const char *s)
{
	int			left = strlen(s);
	int			encoding = GetDatabaseEncoding();
	StringInfoData buf;

	if (pg_verifymbstr(s, left, true))
		return s;
	initStringInfo(&buf);
	while (left > 0)
	{
		int			len = pg_encoding_verifymbchar(encoding, s, left);

		if (len <= 0)
		{
			appendStringInfoChar(&buf, '?');
			len = 1;
		}
		else
			appendBinaryStringInfo(&buf, s, len);
		s += len;
		left -= len;
	}
	return buf.data;
}

static Datum
text_or_null(const char *s, bool *isnull)
{
	*isnull = (s == NULL);
	return s ? CStringGetTextDatum(valid_text(s)) : (Datum) 0;
}

static Datum
uint64_or_null(uint64 v, bool *isnull)
{
	*isnull = (v == 0);
	return Int64GetDatum((int64) v);
}

static double
stddev(const PgsmTiming *t, int64 n)
{
	return n > 1 ? sqrt(t->m2 / n) : 0.0;
}

/* hide the texts of other roles' rows from roles without pg_read_all_stats */
static void
hide_texts(PgsmRow *row)
{
	static char hidden[] = "<insufficient privilege>";

	row->query = hidden;
	row->top_query = row->top_query ? hidden : NULL;
	row->plan = row->plan ? hidden : NULL;
	row->comments = NULL;
	row->message = row->message ? hidden : NULL;
}

static int
fill_identity(Datum *v, bool *n, PgsmRow *row, bool showtext, bool allowed)
{
	PgsmEntry  *e = row->entry;
	PgsmKey    *k = &e->key;
	int			i = 0;
	char	   *name;

	v[i++] = Int64GetDatum((k->bucket_start / pgsm_bucket_time) % pgsm_max_buckets);
	v[i++] = TimestampTzGetDatum(unix_to_timestamptz(k->bucket_start));
	v[i++] = ObjectIdGetDatum(k->userid);
	name = OidIsValid(k->userid) ? GetUserNameFromId(k->userid, true) : NULL;
	v[i] = text_or_null(name, &n[i]);
	i++;
	v[i++] = ObjectIdGetDatum(k->dbid);
	name = OidIsValid(k->dbid) ? get_database_name(k->dbid) : NULL;
	v[i] = text_or_null(name, &n[i]);
	i++;
	v[i] = client_ip_datum(k, &n[i]);
	if (!allowed)
		n[i] = true;
	i++;
	v[i] = uint64_or_null(e->pgsm_query_id, &n[i]);
	i++;
	v[i++] = Int64GetDatum((int64) k->queryid);
	v[i++] = BoolGetDatum(k->toplevel);
	v[i] = uint64_or_null(k->top_queryid, &n[i]);
	i++;
	if (k->kind == PGSM_KIND_OVERFLOW)
		row->query = "<overflow>";
	if (!showtext)
		row->query = row->top_query = row->plan = NULL;
	v[i] = text_or_null(row->query, &n[i]);
	i++;
	v[i] = text_or_null(row->comments, &n[i]);
	i++;
	v[i] = uint64_or_null(k->planid, &n[i]);
	i++;
	v[i] = text_or_null(row->plan, &n[i]);
	i++;
	v[i] = text_or_null(row->top_query, &n[i]);
	i++;
	v[i] = text_or_null(row->appname, &n[i]);
	i++;
	v[i] = relations_datum(row, &n[i]);
	i++;
	v[i++] = Int32GetDatum(e->cmd_type);
	v[i++] = CStringGetTextDatum(pgsm_cmd_type_name(e->cmd_type));
	v[i++] = Int32GetDatum(e->elevel);
	v[i] = text_or_null(e->elevel ? unpack_sql_state(e->sqlcode) : NULL, &n[i]);
	i++;
	v[i] = text_or_null(row->message, &n[i]);
	i++;
	return i;
}

static int
fill_counters(Datum *v, bool *n, PgsmRow *row, int i, int64 current)
{
	PgsmEntry  *e = row->entry;
	PgsmCounters *c = &e->c;
	char		buf[32];

	v[i++] = Int64GetDatum(c->calls);
	v[i++] = Float8GetDatum(c->exec.total);
	v[i++] = Float8GetDatum(c->exec.min);
	v[i++] = Float8GetDatum(c->exec.max);
	v[i++] = Float8GetDatum(c->calls > 0 ? c->exec.total / c->calls : 0);
	v[i++] = Float8GetDatum(stddev(&c->exec, c->calls));
	v[i++] = Int64GetDatum(c->rows);
	v[i++] = Int64GetDatum(c->shared_blks_hit);
	v[i++] = Int64GetDatum(c->shared_blks_read);
	v[i++] = Int64GetDatum(c->shared_blks_dirtied);
	v[i++] = Int64GetDatum(c->shared_blks_written);
	v[i++] = Int64GetDatum(c->local_blks_hit);
	v[i++] = Int64GetDatum(c->local_blks_read);
	v[i++] = Int64GetDatum(c->local_blks_dirtied);
	v[i++] = Int64GetDatum(c->local_blks_written);
	v[i++] = Int64GetDatum(c->temp_blks_read);
	v[i++] = Int64GetDatum(c->temp_blks_written);
	v[i++] = Float8GetDatum(c->blk_read_time);
	v[i++] = Float8GetDatum(c->blk_write_time);
	v[i++] = Float8GetDatum(c->temp_blk_read_time);
	v[i++] = Float8GetDatum(c->temp_blk_write_time);
	v[i++] = histogram_datum(e);
	v[i++] = Float8GetDatum(c->cpu_user_time);
	v[i++] = Float8GetDatum(c->cpu_sys_time);
	v[i++] = Int64GetDatum(c->wal_records);
	v[i++] = Int64GetDatum(c->wal_fpi);
	snprintf(buf, sizeof(buf), UINT64_FORMAT, c->wal_bytes);
	v[i++] = DirectFunctionCall3(numeric_in, CStringGetDatum(buf),
								 ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
	v[i++] = BoolGetDatum(e->key.bucket_start < current);
	v[i++] = Int64GetDatum(c->plans);
	v[i++] = Float8GetDatum(c->plan.total);
	v[i++] = Float8GetDatum(c->plan.min);
	v[i++] = Float8GetDatum(c->plan.max);
	v[i++] = Float8GetDatum(c->plans > 0 ? c->plan.total / c->plans : 0);
	v[i++] = Float8GetDatum(stddev(&c->plan, c->plans));
	v[i++] = Int64GetDatum(c->jit_functions);
	v[i++] = Float8GetDatum(c->jit_generation_time);
	v[i++] = Int64GetDatum(c->jit_inlining_count);
	v[i++] = Float8GetDatum(c->jit_inlining_time);
	v[i++] = Int64GetDatum(c->jit_optimization_count);
	v[i++] = Float8GetDatum(c->jit_optimization_time);
	v[i++] = Int64GetDatum(c->jit_emission_count);
	v[i++] = Float8GetDatum(c->jit_emission_time);
	return i;
}

/*
 * pg_stat_monitor_internal(showtext boolean [, below timestamptz])
 *		The live rows; with 'below', only those of buckets starting before it.
 */
Datum
pg_stat_monitor_internal(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	bool		showtext = PG_GETARG_BOOL(0);
	int64		below = 0;
	Oid			me = GetUserId();
	bool		allowed;
	int64		current;
	List	   *rows;
	ListCell   *lc;

	pgsm_require_preload();
	if (PG_NARGS() > 1 && !PG_ARGISNULL(1))
		below = timestamptz_to_unix(PG_GETARG_TIMESTAMPTZ(1));
	InitMaterializedSRF(fcinfo, 0);
	/* the export's variant adds query_cut */
	if (rsinfo->setDesc->natts != PGSM_VIEW_COLS && rsinfo->setDesc->natts != PGSM_VIEW_COLS + 1)
		elog(ERROR, "incorrect number of output arguments");
	allowed = has_privs_of_role(me, ROLE_PG_READ_ALL_STATS);
	current = pgsm_current_bucket();
	rows = pgsm_copy_rows(below);
	foreach(lc, rows)
	{
		PgsmRow    *row = lfirst(lc);
		Datum		values[PGSM_VIEW_COLS + 1];
		bool		nulls[PGSM_VIEW_COLS + 1];
		bool		row_allowed = allowed || row->entry->key.userid == me;
		int			i;

		memset(nulls, 0, sizeof(nulls));
		if (!row_allowed)
			hide_texts(row);
		i = fill_identity(values, nulls, row, showtext, row_allowed);
		i = fill_counters(values, nulls, row, i, current);
		Assert(i == PGSM_VIEW_COLS);
		values[i] = BoolGetDatum(row->entry->query_cut);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

Datum
pg_stat_monitor_info_internal(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		v[PGSM_INFO_COLS];
	bool		n[PGSM_INFO_COLS];
	PgsmInfo	info;
	int64		current;
	int			i = 0;

	pgsm_require_preload();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	pgsm_get_info(&info);
	current = pgsm_current_bucket();
	memset(n, 0, sizeof(n));
	v[i++] = Int64GetDatum(info.max_entries);
	v[i++] = Int64GetDatum(info.entries);
	v[i++] = Int64GetDatum(info.overflow_entries);
	v[i++] = Int64GetDatum(info.text_bytes);
	v[i++] = Int64GetDatum(info.text_bytes_used);
	v[i++] = Int64GetDatum(info.max_texts);
	v[i++] = Int64GetDatum(info.texts);
	v[i++] = Int64GetDatum(info.overflowed_calls);
	v[i++] = Int64GetDatum(info.dropped_calls);
	v[i++] = Float8GetDatum(info.dropped_exec_time);
	v[i++] = Int64GetDatum(info.discarded_calls);
	v[i++] = Int64GetDatum((current / pgsm_bucket_time) % pgsm_max_buckets);
	v[i++] = TimestampTzGetDatum(unix_to_timestamptz(current));
	v[i++] = TimestampTzGetDatum(unix_to_timestamptz(current - (int64) (pgsm_max_buckets - 1) * pgsm_bucket_time));
	v[i] = TimestampTzGetDatum(unix_to_timestamptz(info.oldest_bucket));
	n[i++] = (info.oldest_bucket == 0);
	v[i++] = Int64GetDatum((int64) pgsm_memsize());
	v[i++] = TimestampTzGetDatum(info.stats_reset);
	Assert(i == PGSM_INFO_COLS);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, v, n)));
}

Datum
pg_stat_monitor_reset(PG_FUNCTION_ARGS)
{
	pgsm_require_preload();
	pgsm_reset_all();
	PG_RETURN_VOID();
}

/*
 * pgsm_freeze_buckets(): close finished buckets to writes and return the
 * first open bucket; first drop buckets an earlier export already moved.
 */
Datum
pgsm_freeze_buckets(PG_FUNCTION_ARGS)
{
	pgsm_require_preload();
	pgsm_remove_exported();
	PG_RETURN_TIMESTAMPTZ(unix_to_timestamptz(pgsm_freeze_finished()));
}

/*
 * What the current transaction will release if it commits: one (level,
 * below) pair per export, so that a subtransaction that rolls back (a
 * savepoint, an exception block) takes its export's release back with it.
 */
#define PGSM_MAX_PENDING 64

typedef struct PgsmPending
{
	int			level;			/* transaction nest level of the export */
	int64		below;
	TransactionId xid;
} PgsmPending;

static PgsmPending pgsm_pending[PGSM_MAX_PENDING];
static int	pgsm_npending = 0;
static bool pgsm_callbacks_registered = false;

static int64
pending_below(void)
{
	int64		below = 0;
	int			i;

	for (i = 0; i < pgsm_npending; i++)
		below = Max(below, pgsm_pending[i].below);
	return below;
}

static void
release_at_commit(XactEvent event, void *arg)
{
	int64		below = pending_below();

	if (below == 0)
		return;
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot prepare a transaction that exported pg_stat_monitor buckets")));
			break;
		case XACT_EVENT_COMMIT:
			pgsm_mark_exported(below, pgsm_pending[0].xid);
			pgsm_npending = 0;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			pgsm_npending = 0;
			break;
		default:
			break;
	}
}

static void
release_at_subcommit(SubXactEvent event, SubTransactionId mySubid,
					 SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();
	int			i,
				kept = 0;

	if (event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB)
		return;
	for (i = 0; i < pgsm_npending; i++)
	{
		if (pgsm_pending[i].level >= level)
		{
			if (event == SUBXACT_EVENT_ABORT_SUB)
				continue;		/* its insert is undone: so is its release */
			pgsm_pending[i].level = level - 1;
		}
		pgsm_pending[kept++] = pgsm_pending[i];
	}
	pgsm_npending = kept;
}

/*
 * pgsm_release_buckets_on_commit(below timestamptz): when the current
 * transaction commits, remove the live entries of buckets starting before
 * 'below'.  If it (or the subtransaction that asked) aborts, nothing is
 * removed, so an export that fails leaves its buckets to the next one.
 */
Datum
pgsm_release_buckets_on_commit(PG_FUNCTION_ARGS)
{
	int64		below = timestamptz_to_unix(PG_GETARG_TIMESTAMPTZ(0));

	pgsm_require_preload();
	if (!pgsm_callbacks_registered)
	{
		RegisterXactCallback(release_at_commit, NULL);
		RegisterSubXactCallback(release_at_subcommit, NULL);
		pgsm_callbacks_registered = true;
	}
	if (pgsm_npending >= PGSM_MAX_PENDING)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many pg_stat_monitor exports in one transaction")));
	pgsm_pending[pgsm_npending].level = GetCurrentTransactionNestLevel();
	pgsm_pending[pgsm_npending].below = below;
	pgsm_pending[pgsm_npending].xid = GetTopTransactionId();
	pgsm_npending++;
	PG_RETURN_VOID();
}
