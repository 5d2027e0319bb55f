/*-------------------------------------------------------------------------
 *
 * pg_stat_monitor.c
 *		Library entry point: the preload check, settings, shared memory
 *		requests (and the reload of what a clean shutdown saved), hooks and
 *		the background worker, in that order; and the small SQL-callable
 *		functions of the upstream API.
 *
 *-------------------------------------------------------------------------
 */
#include "pgsm.h"

#include "catalog/pg_type_d.h"
#include "commands/extension.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/ipc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "tcop/utility.h"
#include "utils/queryjumble.h"

PG_MODULE_MAGIC;

#ifndef PGSM_VERSION
#error "PGSM_VERSION must be defined by the build"
#endif

bool		pgsm_preloaded = false;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;

void		_PG_init(void);

PG_FUNCTION_INFO_V1(pg_stat_monitor_version);
PG_FUNCTION_INFO_V1(get_histogram_timings);
PG_FUNCTION_INFO_V1(pgsm_range);
PG_FUNCTION_INFO_V1(decode_error_level);
PG_FUNCTION_INFO_V1(get_cmd_type);
PG_FUNCTION_INFO_V1(pg_stat_monitor_reset);

static const char *const cmd_type_names[] = {
	"", "SELECT", "UPDATE", "INSERT", "DELETE", "MERGE", "UTILITY", "NOTHING"
};

const char *
pgsm_cmd_type_name(int cmd_type)
{
	if (cmd_type < 0 || cmd_type >= (int) lengthof(cmd_type_names))
		return "";
	return cmd_type_names[cmd_type];
}

void
pgsm_require_preload(void)
{
	if (!pgsm_preloaded || !pgsm_store_ready())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_stat_monitor must be loaded via shared_preload_libraries"),
				 errhint("Add pg_stat_monitor to shared_preload_libraries in postgresql.conf and restart the server.")));
}

static void
pgsm_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	pgsm_shmem_request();
}

static void
pgsm_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	pgsm_shmem_startup();
	/* the postmaster reloads what a clean shutdown saved, and saves at exit */
	if (!IsUnderPostmaster)
	{
		pgsm_load_dump();
		on_shmem_exit(pgsm_write_dump, (Datum) 0);
	}
}

/*
 * ALTER EXTENSION pg_stat_monitor UPDATE from upstream: the new version
 * requires plpython3u, and ALTER EXTENSION has no CASCADE; say so, with the
 * command that helps, before PostgreSQL refuses without a hint.
 */
static void
check_update_requirements(Node *parsetree)
{
	AlterExtensionStmt *stmt;

	if (!IsA(parsetree, AlterExtensionStmt))
		return;
	stmt = (AlterExtensionStmt *) parsetree;
	if (strcmp(stmt->extname, "pg_stat_monitor") != 0 ||
		!OidIsValid(get_extension_oid("pg_stat_monitor", true)) ||
		OidIsValid(get_extension_oid("plpython3u", true)))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("required extension \"plpython3u\" is not installed"),
			 errdetail("pg_stat_monitor %s runs its history and histogram functions in PL/Python.",
					   PGSM_VERSION),
			 errhint("Run CREATE EXTENSION plpython3u first, then ALTER EXTENSION pg_stat_monitor UPDATE again.")));
}

static void
pgsm_update_check(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
				  ProcessUtilityContext context, ParamListInfo params,
				  QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	check_update_requirements(pstmt->utilityStmt);
	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv,
						  dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);
}

void
_PG_init(void)
{
	/* loaded later (CREATE EXTENSION without preload): functions refuse to run */
	if (!process_shared_preload_libraries_in_progress)
		return;
	pgsm_preloaded = true;

	pgsm_define_gucs();
	EnableQueryId();

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = pgsm_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = pgsm_startup;
	pgsm_install_hooks();
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = pgsm_update_check;
	pgsm_register_worker();
}

Datum
pg_stat_monitor_reset(PG_FUNCTION_ARGS)
{
	pgsm_require_preload();
	pgsm_reset_all();
	PG_RETURN_VOID();
}

Datum
pg_stat_monitor_version(PG_FUNCTION_ARGS)
{
	pgsm_require_preload();
	PG_RETURN_TEXT_P(cstring_to_text(PGSM_VERSION));
}

/* a bound in ms, without trailing zeros */
static char *
format_ms(double ms)
{
	char	   *s = psprintf("%.3f", ms);
	int			len = strlen(s);

	while (len > 0 && s[len - 1] == '0')
		s[--len] = '\0';
	if (len > 0 && s[len - 1] == '.')
		s[--len] = '\0';
	return s;
}

/* the range of each histogram slot, as text */
static Datum *
slot_ranges(void)
{
	Datum	   *ranges = palloc(sizeof(Datum) * pgsm_hist_slots);
	int			i;

	for (i = 0; i < pgsm_hist_slots; i++)
	{
		char	   *lo = format_ms(pgsm_hist_edge(i));
		char	   *hi = (i + 1 < pgsm_hist_slots) ? format_ms(pgsm_hist_edge(i + 1)) : "...";

		ranges[i] = CStringGetTextDatum(psprintf("{%s - %s}", lo, hi));
	}
	return ranges;
}

Datum
pgsm_range(PG_FUNCTION_ARGS)
{
	pgsm_require_preload();
	PG_RETURN_ARRAYTYPE_P(construct_array(slot_ranges(), pgsm_hist_slots, TEXTOID,
										  -1, false, TYPALIGN_INT));
}

Datum
get_histogram_timings(PG_FUNCTION_ARGS)
{
	Datum	   *ranges;
	StringInfoData buf;
	int			i;

	pgsm_require_preload();
	ranges = slot_ranges();
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (i = 0; i < pgsm_hist_slots; i++)
	{
		if (i > 0)
			appendStringInfoString(&buf, ", ");
		appendStringInfoString(&buf, TextDatumGetCString(ranges[i]));
	}
	appendStringInfoChar(&buf, '}');
	PG_RETURN_TEXT_P(cstring_to_text(buf.data));
}

Datum
decode_error_level(PG_FUNCTION_ARGS)
{
	static const char *const names[] = {
		"DEBUG5", "DEBUG4", "DEBUG3", "DEBUG2", "DEBUG1", "LOG", "LOG_SERVER_ONLY",
		"INFO", "NOTICE", "WARNING", "WARNING_CLIENT_ONLY", "ERROR", "FATAL", "PANIC"
	};
	int			level = PG_GETARG_INT32(0);

	pgsm_require_preload();
	if (level < DEBUG5 || level > PANIC)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(names[level - DEBUG5]));
}

Datum
get_cmd_type(PG_FUNCTION_ARGS)
{
	pgsm_require_preload();
	PG_RETURN_TEXT_P(cstring_to_text(pgsm_cmd_type_name(PG_GETARG_INT32(0))));
}
