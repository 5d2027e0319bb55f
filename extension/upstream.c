/*-------------------------------------------------------------------------
 *
 * upstream.c
 *		The C entry points of upstream pg_stat_monitor 2.0 to 2.3, so that a
 *		database still holding upstream's SQL objects (the library replaced,
 *		ALTER EXTENSION ... UPDATE not run yet) reads the live statistics
 *		through upstream's own pg_stat_monitor view.
 *
 * Upstream's pg_stat_monitor_internal() is declared with OUT parameters
 * whose number, names and types changed between releases; each release's
 * SQL names its own symbol (pg_stat_monitor_2_0, _2_1 or _2_3).  The row is
 * taken from readers.c (our row, hidden texts already applied) and each
 * declared column filled from it by name, converted where upstream's type
 * differs.  Columns this fork does not measure are 0.
 *
 *-------------------------------------------------------------------------
 */
#include "pgsm.h"

#include <sys/socket.h>

#include "catalog/pg_type_d.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inet.h"

PG_FUNCTION_INFO_V1(pg_stat_monitor_2_0);
PG_FUNCTION_INFO_V1(pg_stat_monitor_2_1);
PG_FUNCTION_INFO_V1(pg_stat_monitor_2_3);

/* how an upstream column is made from ours */
typedef enum UpstreamConv
{
	UP_SAME,					/* our column as it is */
	UP_IPV4_INT8,				/* our inet as upstream's int8 (IPv4 only) */
	UP_JOINED,					/* our text[] as one comma-separated text */
	UP_ZERO,					/* not measured here: 0 */
} UpstreamConv;

typedef struct UpstreamColumn
{
	const char *name;			/* upstream's OUT parameter */
	int			ours;			/* position in our row (-1: none) */
	UpstreamConv conv;
	Oid			type;			/* the type upstream declares */
} UpstreamColumn;

/*
 * Every column any of upstream 2.0-2.3 declares, with the position of the
 * column of our row (pgsm_internal.pgsm_row, API.md section 2) it comes
 * from.
 */
static const UpstreamColumn upstream_columns[] = {
	{"bucket", 0, UP_SAME, INT8OID},
	{"bucket_start_time", 1, UP_SAME, TIMESTAMPTZOID},
	{"userid", 2, UP_SAME, OIDOID},
	{"username", 3, UP_SAME, TEXTOID},
	{"dbid", 4, UP_SAME, OIDOID},
	{"datname", 5, UP_SAME, TEXTOID},
	{"client_ip", 6, UP_IPV4_INT8, INT8OID},
	{"pgsm_query_id", 7, UP_SAME, INT8OID},
	{"queryid", 8, UP_SAME, INT8OID},
	{"toplevel", 9, UP_SAME, BOOLOID},
	{"top_queryid", 10, UP_SAME, INT8OID},
	{"query", 11, UP_SAME, TEXTOID},
	{"comments", 12, UP_SAME, TEXTOID},
	{"planid", 13, UP_SAME, INT8OID},
	{"query_plan", 14, UP_SAME, TEXTOID},
	{"top_query", 15, UP_SAME, TEXTOID},
	{"application_name", 16, UP_SAME, TEXTOID},
	{"relations", 17, UP_JOINED, TEXTOID},
	{"cmd_type", 18, UP_SAME, INT4OID},
	{"elevel", 20, UP_SAME, INT4OID},
	{"sqlcode", 21, UP_SAME, TEXTOID},
	{"message", 22, UP_SAME, TEXTOID},
	{"calls", 23, UP_SAME, INT8OID},
	{"total_exec_time", 24, UP_SAME, FLOAT8OID},
	{"min_exec_time", 25, UP_SAME, FLOAT8OID},
	{"max_exec_time", 26, UP_SAME, FLOAT8OID},
	{"mean_exec_time", 27, UP_SAME, FLOAT8OID},
	{"stddev_exec_time", 28, UP_SAME, FLOAT8OID},
	{"rows", 29, UP_SAME, INT8OID},
	{"shared_blks_hit", 30, UP_SAME, INT8OID},
	{"shared_blks_read", 31, UP_SAME, INT8OID},
	{"shared_blks_dirtied", 32, UP_SAME, INT8OID},
	{"shared_blks_written", 33, UP_SAME, INT8OID},
	{"local_blks_hit", 34, UP_SAME, INT8OID},
	{"local_blks_read", 35, UP_SAME, INT8OID},
	{"local_blks_dirtied", 36, UP_SAME, INT8OID},
	{"local_blks_written", 37, UP_SAME, INT8OID},
	{"temp_blks_read", 38, UP_SAME, INT8OID},
	{"temp_blks_written", 39, UP_SAME, INT8OID},
	{"blk_read_time", 40, UP_SAME, FLOAT8OID},
	{"blk_write_time", 41, UP_SAME, FLOAT8OID},
	{"shared_blk_read_time", 40, UP_SAME, FLOAT8OID},	/* 2.1's name */
	{"shared_blk_write_time", 41, UP_SAME, FLOAT8OID},
	{"local_blk_read_time", -1, UP_ZERO, FLOAT8OID},
	{"local_blk_write_time", -1, UP_ZERO, FLOAT8OID},
	{"temp_blk_read_time", 42, UP_SAME, FLOAT8OID},
	{"temp_blk_write_time", 43, UP_SAME, FLOAT8OID},
	{"resp_calls", 44, UP_JOINED, TEXTOID},
	{"cpu_user_time", 45, UP_SAME, FLOAT8OID},
	{"cpu_sys_time", 46, UP_SAME, FLOAT8OID},
	{"wal_records", 47, UP_SAME, INT8OID},
	{"wal_fpi", 48, UP_SAME, INT8OID},
	{"wal_bytes", 49, UP_SAME, NUMERICOID},
	{"wal_buffers_full", -1, UP_ZERO, INT8OID},
	{"bucket_done", 50, UP_SAME, BOOLOID},
	{"plans", 51, UP_SAME, INT8OID},
	{"total_plan_time", 52, UP_SAME, FLOAT8OID},
	{"min_plan_time", 53, UP_SAME, FLOAT8OID},
	{"max_plan_time", 54, UP_SAME, FLOAT8OID},
	{"mean_plan_time", 55, UP_SAME, FLOAT8OID},
	{"stddev_plan_time", 56, UP_SAME, FLOAT8OID},
	{"jit_functions", 57, UP_SAME, INT8OID},
	{"jit_generation_time", 58, UP_SAME, FLOAT8OID},
	{"jit_inlining_count", 59, UP_SAME, INT8OID},
	{"jit_inlining_time", 60, UP_SAME, FLOAT8OID},
	{"jit_optimization_count", 61, UP_SAME, INT8OID},
	{"jit_optimization_time", 62, UP_SAME, FLOAT8OID},
	{"jit_emission_count", 63, UP_SAME, INT8OID},
	{"jit_emission_time", 64, UP_SAME, FLOAT8OID},
	{"jit_deform_count", -1, UP_ZERO, INT8OID},
	{"jit_deform_time", -1, UP_ZERO, FLOAT8OID},
	{"parallel_workers_to_launch", -1, UP_ZERO, INT4OID},
	{"parallel_workers_launched", -1, UP_ZERO, INT4OID},
	/* an entry's counters start with its bucket */
	{"stats_since", 1, UP_SAME, TIMESTAMPTZOID},
	{"minmax_stats_since", 1, UP_SAME, TIMESTAMPTZOID},
};

static const UpstreamColumn *
upstream_column(Form_pg_attribute att)
{
	int			i;

	for (i = 0; i < (int) lengthof(upstream_columns); i++)
	{
		const UpstreamColumn *col = &upstream_columns[i];

		if (strcmp(NameStr(att->attname), col->name) != 0)
			continue;
		if (att->atttypid != col->type)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("pg_stat_monitor_internal() output column \"%s\" has type %s, expected %s",
							col->name, format_type_be(att->atttypid), format_type_be(col->type))));
		return col;
	}
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("pg_stat_monitor_internal() output column \"%s\" is unknown",
					NameStr(att->attname))));
	return NULL;
}

/*
 * upstream's client_ip: an IPv4 address as a number ('0.0.0.0'::inet plus
 * it, in upstream's view).  ::1 is 127.0.0.1 and an IPv4-mapped address its
 * IPv4 one; another IPv6 address is 255.255.255.255, as upstream shows it
 * (PMM reads no NULL here).
 */
static Datum
ipv4_int8(Datum ip)
{
	static const unsigned char loopback6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
	static const unsigned char mapped6[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	inet	   *addr = DatumGetInetPP(ip);
	const unsigned char *b = ip_addr(addr);

	if (ip_family(addr) != PGSQL_AF_INET)
	{
		if (memcmp(b, loopback6, sizeof(loopback6)) == 0)
			return Int64GetDatum((int64) 0x7F000001);
		if (memcmp(b, mapped6, sizeof(mapped6)) != 0)
			return Int64GetDatum((int64) 0xFFFFFFFF);
		b += sizeof(mapped6);
	}
	return Int64GetDatum((int64) ((uint32) b[0] << 24 | (uint32) b[1] << 16 |
								  (uint32) b[2] << 8 | (uint32) b[3]));
}

/* a text[] as its elements joined by ',' (upstream splits them again) */
static Datum
joined_text(Datum arr)
{
	Datum	   *elems;
	bool	   *elem_nulls;
	int			n;
	int			i;
	StringInfoData buf;

	deconstruct_array(DatumGetArrayTypeP(arr), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &elem_nulls, &n);
	initStringInfo(&buf);
	for (i = 0; i < n; i++)
	{
		if (i > 0)
			appendStringInfoChar(&buf, ',');
		if (!elem_nulls[i])
			appendStringInfoString(&buf, TextDatumGetCString(elems[i]));
	}
	return CStringGetTextDatum(buf.data);
}

static Datum
zero_of(Oid type)
{
	switch (type)
	{
		case INT4OID:
			return Int32GetDatum(0);
		case FLOAT8OID:
			return Float8GetDatum(0.0);
		default:
			return Int64GetDatum(0);
	}
}

/* one upstream column of a row */
static Datum
upstream_value(const UpstreamColumn *col, const PgsmRowValues *rv, bool *isnull)
{
	*isnull = false;
	if (col->conv == UP_ZERO)
		return zero_of(col->type);
	*isnull = rv->nulls[col->ours];
	if (*isnull)
		return (Datum) 0;
	switch (col->conv)
	{
		case UP_IPV4_INT8:
			return ipv4_int8(rv->values[col->ours]);
		case UP_JOINED:
			return joined_text(rv->values[col->ours]);
		default:
			return rv->values[col->ours];
	}
}

/*
 * The live rows in the shape the calling upstream release declares; 'natts'
 * is that release's column count (as upstream, another count is an error).
 */
static Datum
upstream_rows(FunctionCallInfo fcinfo, int natts)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TupleDesc	desc;
	const UpstreamColumn **cols;
	List	   *rows;
	ListCell   *lc;
	int			i;

	rows = pgsm_view_rows(PG_GETARG_BOOL(0));
	InitMaterializedSRF(fcinfo, 0);
	desc = rsinfo->setDesc;
	if (desc->natts != natts)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("incorrect number of output arguments: %d, expected %d",
						desc->natts, natts)));
	cols = palloc(sizeof(UpstreamColumn *) * natts);
	for (i = 0; i < natts; i++)
		cols[i] = upstream_column(TupleDescAttr(desc, i));
	foreach(lc, rows)
	{
		Datum	   *values = palloc(sizeof(Datum) * natts);
		bool	   *nulls = palloc(sizeof(bool) * natts);

		for (i = 0; i < natts; i++)
			values[i] = upstream_value(cols[i], lfirst(lc), &nulls[i]);
		tuplestore_putvalues(rsinfo->setResult, desc, values, nulls);
	}
	return (Datum) 0;
}

/* upstream 2.0's pg_stat_monitor_internal(showtext): 64 columns */
Datum
pg_stat_monitor_2_0(PG_FUNCTION_ARGS)
{
	return upstream_rows(fcinfo, 64);
}

/* upstream 2.1 and 2.2's: 70 columns */
Datum
pg_stat_monitor_2_1(PG_FUNCTION_ARGS)
{
	return upstream_rows(fcinfo, 70);
}

/* upstream 2.3's: 73 columns */
Datum
pg_stat_monitor_2_3(PG_FUNCTION_ARGS)
{
	return upstream_rows(fcinfo, 73);
}
