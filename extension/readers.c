/*-------------------------------------------------------------------------
 *
 * readers.c
 *		SQL-callable readers of shared memory, read only: the rows of the
 *		pg_stat_monitor view (and of the export), capacity and loss
 *		counters.
 *
 * Texts come from every database, each in its database's encoding: they
 * are converted to the reading database's encoding, a character it cannot
 * represent (or bytes not valid in their own encoding) shown as '?'.
 *
 *-------------------------------------------------------------------------
 */
#include "pgsm.h"

#include <arpa/inet.h>
#include <math.h>

#include "catalog/pg_authid.h"
#include "catalog/namespace.h"
#include "catalog/pg_conversion.h"
#include "catalog/pg_namespace_d.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type_d.h"
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
#include "utils/typcache.h"

#define PGSM_INFO_COLS 18

PG_FUNCTION_INFO_V1(pg_stat_monitor_internal);
PG_FUNCTION_INFO_V1(pg_stat_monitor_info_internal);

/*
 * The client's address.  Never NULL for a reader allowed to see it (PMM scans
 * it into a non-nullable string): a row of many clients (the overflow row)
 * shows 0.0.0.0.
 */
static Datum
client_ip_datum(const PgsmKey *key)
{
	char		buf[INET6_ADDRSTRLEN];
	int			family = key->client_family == AF_INET6 ? AF_INET6 : AF_INET;

	if (key->client_family == 0 ||
		inet_ntop(family, key->client_addr, buf, sizeof(buf)) == NULL)
		strlcpy(buf, "0.0.0.0", sizeof(buf));
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

/* bytes not valid in 'encoding' shown as '?', the rest kept */
static char *
valid_text(const char *s, int encoding)
{
	int			left = strlen(s);
	StringInfoData buf;

	if (pg_verify_mbstr(encoding, s, left, true))
		return (char *) s;
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

/* a text no conversion can read: its ASCII kept, every other byte '?' */
static char *
ascii_only(const char *s)
{
	char	   *out = pstrdup(s);
	char	   *c;

	for (c = out; *c; c++)
	{
		if (IS_HIGHBIT_SET(*c))
			*c = '?';
	}
	return out;
}

/* the function of the built-in (pg_catalog) default conversion between two encodings */
static Oid
conversion_proc(int from, int to)
{
	static int	cached_from = -1,
				cached_to = -1;
	static Oid	cached_proc = InvalidOid;

	if (from != cached_from || to != cached_to)
	{
		cached_proc = FindDefaultConversion(PG_CATALOG_NAMESPACE, from, to);
		cached_from = from;
		cached_to = to;
	}
	return cached_proc;
}

/*
 * A text of another database's encoding in this one's: converted as far as
 * it goes, each character that has no equivalent shown as '?'.
 */
static char *
converted_text(const char *s, int from)
{
	int			to = GetDatabaseEncoding();
	Oid			proc;
	StringInfoData buf;
	const unsigned char *src;
	int			left;

	if (from == to || to == PG_SQL_ASCII)
		return valid_text(s, to);
	s = valid_text(s, from);
	if (from == PG_SQL_ASCII || !OidIsValid(proc = conversion_proc(from, to)))
		return ascii_only(s);
	initStringInfo(&buf);
	src = (const unsigned char *) s;
	left = strlen(s);
	while (left > 0)
	{
		int			room = left * MAX_CONVERSION_GROWTH + 1;
		int			done;

		enlargeStringInfo(&buf, room);
		done = pg_do_encoding_conversion_buf(proc, from, to, (unsigned char *) src, left,
											 (unsigned char *) buf.data + buf.len, room, true);
		buf.len += strlen(buf.data + buf.len);
		src += done;
		left -= done;
		if (left > 0)
		{
			int			skip = Min(Max(pg_encoding_mblen(from, (const char *) src), 1), left);

			appendStringInfoChar(&buf, '?');
			src += skip;
			left -= skip;
		}
	}
	return buf.data;
}

/* the encoding of the texts of the row being filled */
static int	pgsm_row_encoding = PG_SQL_ASCII;

static Datum
text_or_null(const char *s, bool *isnull)
{
	*isnull = (s == NULL);
	return s ? CStringGetTextDatum(converted_text(s, pgsm_row_encoding)) : (Datum) 0;
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

/*
 * The role (0) or database (1) name kept with an entry when it was made:
 * the name of a role or database dropped since.  NULL if none was kept.
 */
static char *
kept_name(const PgsmRow *row, int which)
{
	char	   *name = row->names;
	int			len;

	if (name == NULL)
		return NULL;
	len = strlen(name);
	if (which == 1)
	{
		if (len + 1 > row->names_len)
			return NULL;
		name += len + 1;
	}
	return *name != '\0' ? name : NULL;
}

static int
fill_identity(Datum *v, bool *n, PgsmRow *row, bool showtext, bool allowed)
{
	PgsmEntry  *e = row->entry;
	PgsmKey    *k = &e->key;
	int			i = 0;
	char	   *name;

	/* role and database names are in every database's encoding already */
	pgsm_row_encoding = GetDatabaseEncoding();
	v[i++] = Int64GetDatum((k->bucket_start / pgsm_bucket_time) % pgsm_max_buckets);
	v[i++] = TimestampTzGetDatum(pgsm_unix_to_timestamptz(k->bucket_start));
	v[i++] = ObjectIdGetDatum(k->userid);
	name = OidIsValid(k->userid) ? GetUserNameFromId(k->userid, true) : NULL;
	v[i] = text_or_null(name ? name : kept_name(row, 0), &n[i]);
	i++;
	v[i++] = ObjectIdGetDatum(k->dbid);
	name = OidIsValid(k->dbid) ? get_database_name(k->dbid) : NULL;
	v[i] = text_or_null(name ? name : kept_name(row, 1), &n[i]);
	i++;
	n[i] = !allowed;
	v[i] = allowed ? client_ip_datum(k) : (Datum) 0;
	i++;
	v[i] = uint64_or_null(e->pgsm_query_id, &n[i]);
	i++;
	v[i++] = Int64GetDatum((int64) k->queryid);
	v[i++] = BoolGetDatum(k->toplevel);
	v[i] = uint64_or_null(k->top_queryid, &n[i]);
	i++;
	pgsm_row_encoding = e->encoding;
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

/* the values of one row: the view's 65 columns and query_cut */
static void
fill_row(Datum *values, bool *nulls, PgsmRow *row, bool showtext, bool allowed,
		 int64 current)
{
	int			i;

	memset(nulls, 0, sizeof(bool) * (PGSM_VIEW_COLS + 1));
	if (!allowed)
		hide_texts(row);
	i = fill_identity(values, nulls, row, showtext, allowed);
	i = fill_counters(values, nulls, row, i, current);
	Assert(i == PGSM_VIEW_COLS);
	values[i] = BoolGetDatum(row->entry->query_cut);
}

/*
 * The shape asked for: the 65 columns flat (the view), flat with query_cut,
 * or two columns, the row as a composite and query_cut (the export).  Returns the composite's
 * descriptor for the latter, NULL for the former.
 */
static TupleDesc
row_shape(TupleDesc result)
{
	if (result->natts == PGSM_VIEW_COLS || result->natts == PGSM_VIEW_COLS + 1)
		return NULL;
	if (result->natts == 2 && TupleDescAttr(result, 1)->atttypid == BOOLOID)
	{
		TupleDesc	inner = lookup_rowtype_tupdesc_copy(TupleDescAttr(result, 0)->atttypid,
														TupleDescAttr(result, 0)->atttypmod);

		if (inner->natts == PGSM_VIEW_COLS)
			return BlessTupleDesc(inner);
	}
	elog(ERROR, "incorrect number of output arguments");
	return NULL;
}

static void
put_row(ReturnSetInfo *rsinfo, TupleDesc inner, Datum *values, bool *nulls)
{
	Datum		outer[2];
	bool		outer_nulls[2] = {false, false};

	if (inner == NULL)
	{
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		return;
	}
	outer[0] = HeapTupleGetDatum(heap_form_tuple(inner, values, nulls));
	outer[1] = values[PGSM_VIEW_COLS];
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, outer, outer_nulls);
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
	TupleDesc	inner;
	List	   *rows;
	ListCell   *lc;

	pgsm_require_preload();
	if (PG_NARGS() > 1 && !PG_ARGISNULL(1))
		below = pgsm_timestamptz_to_unix(PG_GETARG_TIMESTAMPTZ(1));
	InitMaterializedSRF(fcinfo, 0);
	inner = row_shape(rsinfo->setDesc);
	allowed = has_privs_of_role(me, ROLE_PG_READ_ALL_STATS);
	current = pgsm_current_bucket();
	rows = pgsm_copy_rows(below);
	foreach(lc, rows)
	{
		PgsmRow    *row = lfirst(lc);
		Datum		values[PGSM_VIEW_COLS + 1];
		bool		nulls[PGSM_VIEW_COLS + 1];

		fill_row(values, nulls, row, showtext, allowed || row->entry->key.userid == me, current);
		put_row(rsinfo, inner, values, nulls);
	}
	return (Datum) 0;
}

/*
 * The live rows as the view shows them to the current role (texts of other
 * roles' rows hidden as above): each a palloc'd PgsmRowValues.  For readers
 * of another row shape (upstream.c).
 */
List *
pgsm_view_rows(bool showtext)
{
	Oid			me = GetUserId();
	bool		allowed;
	int64		current;
	List	   *rows;
	List	   *out = NIL;
	ListCell   *lc;

	pgsm_require_preload();
	allowed = has_privs_of_role(me, ROLE_PG_READ_ALL_STATS);
	current = pgsm_current_bucket();
	rows = pgsm_copy_rows(0);
	foreach(lc, rows)
	{
		PgsmRow    *row = lfirst(lc);
		PgsmRowValues *rv = palloc(sizeof(PgsmRowValues));

		fill_row(rv->values, rv->nulls, row, showtext,
				 allowed || row->entry->key.userid == me, current);
		out = lappend(out, rv);
	}
	return out;
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
	if (tupdesc->natts != PGSM_INFO_COLS)
		elog(ERROR, "incorrect number of output arguments");
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
	v[i++] = TimestampTzGetDatum(pgsm_unix_to_timestamptz(current));
	v[i++] = TimestampTzGetDatum(pgsm_unix_to_timestamptz(pgsm_window_start()));
	v[i] = TimestampTzGetDatum(pgsm_unix_to_timestamptz(info.oldest_bucket));
	n[i++] = (info.oldest_bucket == 0);
	v[i++] = Int64GetDatum((int64) pgsm_memsize());
	v[i++] = TimestampTzGetDatum(info.stats_reset);
	v[i++] = Int64GetDatum(info.exported_entries);
	Assert(i == PGSM_INFO_COLS);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, v, n)));
}

/* ---------------------------------------------------------------- fragments */

#define PGSM_FRAGMENT_COLS 17
#define PGSM_FRAGMENT_INFO_COLS 3

PG_FUNCTION_INFO_V1(pgsm_fragment_rows);
PG_FUNCTION_INFO_V1(pgsm_fragment_info);

static void
fill_fragment(Datum *v, bool *n, const PgsmFragment *f)
{
	char		buf[32];
	int			i = 0;

	memset(n, 0, sizeof(bool) * PGSM_FRAGMENT_COLS);
	v[i++] = CStringGetTextDatum(f->coordinator);
	v[i++] = Int64GetDatum(f->key.parent_queryid);
	v[i++] = Int64GetDatum(f->key.fragment_queryid);
	v[i++] = ObjectIdGetDatum(f->key.dbid);
	v[i++] = ObjectIdGetDatum(f->key.userid);
	v[i++] = TimestampTzGetDatum(pgsm_unix_to_timestamptz(f->key.bucket_start));
	v[i++] = CStringGetTextDatum(converted_text(f->query, f->encoding));
	v[i++] = Int64GetDatum(f->c.calls);
	v[i++] = Int64GetDatum(f->c.rows);
	v[i++] = Float8GetDatum(f->c.total_exec_time);
	v[i++] = Float8GetDatum(f->c.min_exec_time);
	v[i++] = Float8GetDatum(f->c.max_exec_time);
	v[i++] = Int64GetDatum(f->c.shared_blks_hit);
	v[i++] = Int64GetDatum(f->c.shared_blks_read);
	v[i++] = Int64GetDatum(f->c.temp_blks_written);
	snprintf(buf, sizeof(buf), UINT64_FORMAT, f->c.wal_bytes);
	v[i++] = DirectFunctionCall3(numeric_in, CStringGetDatum(buf),
								 ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
	v[i++] = Int64GetDatum(f->wire_id);
	Assert(i == PGSM_FRAGMENT_COLS);
}

/* pgsm_fragment_rows(below bigint): the fragment entries frozen before 'below' */
Datum
pgsm_fragment_rows(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	List	   *rows;
	ListCell   *lc;

	pgsm_require_preload();
	InitMaterializedSRF(fcinfo, 0);
	if (rsinfo->setDesc->natts != PGSM_FRAGMENT_COLS)
		elog(ERROR, "incorrect number of output arguments");
	rows = pgsm_fragments_copy(PG_GETARG_INT64(0));
	foreach(lc, rows)
	{
		Datum		v[PGSM_FRAGMENT_COLS];
		bool		n[PGSM_FRAGMENT_COLS];

		fill_fragment(v, n, lfirst(lc));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
	}
	return (Datum) 0;
}

/* pgsm_fragment_info(): capacity, use and losses of the fragment table */
Datum
pgsm_fragment_info(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		v[PGSM_FRAGMENT_INFO_COLS];
	bool		n[PGSM_FRAGMENT_INFO_COLS] = {false, false, false};
	int64		max,
				used,
				dropped;

	pgsm_require_preload();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE ||
		tupdesc->natts != PGSM_FRAGMENT_INFO_COLS)
		elog(ERROR, "incorrect number of output arguments");
	pgsm_fragments_info(&max, &used, &dropped);
	v[0] = Int64GetDatum(max);
	v[1] = Int64GetDatum(used);
	v[2] = Int64GetDatum(dropped);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), v, n)));
}
