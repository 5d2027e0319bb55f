/*-------------------------------------------------------------------------
 *
 * guc.c
 *		The settings of pg_stat_monitor: one table of definitions.
 *
 * Sizes that shape shared memory need a restart; the rest are per user or
 * reloadable.  The README's settings table mirrors this file.
 *
 *-------------------------------------------------------------------------
 */
#include "pgsm.h"

#include <float.h>

#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"

int			pgsm_max_kb = 2048;
int			pgsm_query_shared_buffer_kb = 1024;
int			pgsm_max_buckets = 2;
int			pgsm_bucket_time = 60;
int			pgsm_query_max_len = 1536;
double		pgsm_histogram_min = 1.0;
double		pgsm_histogram_max = 100000.0;
int			pgsm_histogram_buckets = 20;
int			pgsm_track = PGSM_TRACK_TOP;
bool		pgsm_track_utility = true;
bool		pgsm_track_planning = false;
bool		pgsm_normalized_query = false;
bool		pgsm_enable_pgsm_query_id = true;
bool		pgsm_enable_query_plan = false;
bool		pgsm_extract_comments = false;
bool		pgsm_enable_overflow = true;
bool		pgsm_track_application_names = true;
bool		pgsm_track_cpu_time = false;
char	   *pgsm_worker_database = NULL;
static bool pgsm_export_auto = true;
int			pgsm_export_interval = 10;
char	   *pgsm_node_name = NULL;
int			pgsm_sdm_max_fragments = 512;
int			pgsm_sdm_send_interval = 5;

/* read by the PL/Python sender only */
static int	pgsm_transport_compression = 2;
static int	pgsm_sdm_outbox_max = 100000;

static const struct config_enum_entry compression_options[] = {
	{"none", 0, false},
	{"zlib", 1, false},
	{"zstd", 2, false},
	{NULL, 0, false}
};

/* settings read by the PL/Python side only; defined here so they are typed */
static int	pgsm_export_top_n = 300;
static int	pgsm_history_retention = 30;
static int	pgsm_history_days_ahead = 2;

static const struct config_enum_entry track_options[] = {
	{"none", PGSM_TRACK_NONE, false},
	{"top", PGSM_TRACK_TOP, false},
	{"all", PGSM_TRACK_ALL, false},
	{NULL, 0, false}
};

#define PGSM_GUC(name) ("pg_stat_monitor." name)

/* digits only, blanks around them allowed: a value without a unit */
static bool
is_unitless_number(const char *s)
{
	bool		digits = false;

	while (*s == ' ' || *s == '\t')
		s++;
	while (*s >= '0' && *s <= '9')
	{
		digits = true;
		s++;
	}
	while (*s == ' ' || *s == '\t')
		s++;
	return digits && *s == '\0';
}

/* the placeholder of a custom setting not defined yet, or NULL */
static struct config_generic *
placeholder(const char *name)
{
	struct config_generic **vars = get_guc_variables();
	int			n = GetNumConfigOptions();
	int			i;

	for (i = 0; i < n; i++)
	{
		if ((vars[i]->flags & GUC_CUSTOM_PLACEHOLDER) && strcmp(vars[i]->name, name) == 0)
			return vars[i];
	}
	return NULL;
}

/*
 * Upstream's memory settings are in MB: a value configured without a unit
 * (a postgresql.conf written for upstream, "pgsm_max = 100") keeps that
 * meaning.  At preload the configured text is still the placeholder's, read
 * before the setting (in kB here) is defined; it is given the unit "MB" at
 * the source it came from.
 */
static void
unitless_means_mb(const char *name)
{
	struct config_generic *ph;
	const char *val;

	if (!process_shared_preload_libraries_in_progress)
		return;
	val = GetConfigOption(name, true, false);
	if (val == NULL || !is_unitless_number(val) || (ph = placeholder(name)) == NULL)
		return;
	(void) set_config_option(name, psprintf("%sMB", val), ph->scontext, ph->source,
							 GUC_ACTION_SET, true, WARNING, false);
}

static void
define_memory_gucs(void)
{
	unitless_means_mb(PGSM_GUC("pgsm_max"));
	unitless_means_mb(PGSM_GUC("pgsm_query_shared_buffer"));
	DefineCustomIntVariable(PGSM_GUC("pgsm_max"),
							"Sets the shared memory for statement entries.",
							NULL, &pgsm_max_kb, 2048, 256, 1048576,
							PGC_POSTMASTER, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomIntVariable(PGSM_GUC("pgsm_query_shared_buffer"),
							"Sets the shared memory for query texts, plans, comments and relation lists.",
							NULL, &pgsm_query_shared_buffer_kb, 1024, 128, 1048576,
							PGC_POSTMASTER, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomIntVariable(PGSM_GUC("pgsm_max_buckets"),
							"Sets the number of buckets shown by the pg_stat_monitor view.",
							NULL, &pgsm_max_buckets, 2, 1, 20000,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable(PGSM_GUC("pgsm_bucket_time"),
							"Sets the length of a bucket.",
							NULL, &pgsm_bucket_time, 60, 1, 86400,
							PGC_POSTMASTER, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable(PGSM_GUC("pgsm_query_max_len"),
							"Sets the length in bytes at which query texts are cut.",
							NULL, &pgsm_query_max_len, 1536, 1024, 1048576,
							PGC_POSTMASTER, GUC_UNIT_BYTE, NULL, NULL, NULL);
	DefineCustomRealVariable(PGSM_GUC("pgsm_histogram_min"),
							 "Sets the lower bound of the execution time histogram.",
							 NULL, &pgsm_histogram_min, 1.0, 0.0, 1e9,
							 PGC_POSTMASTER, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomRealVariable(PGSM_GUC("pgsm_histogram_max"),
							 "Sets the upper bound of the execution time histogram.",
							 NULL, &pgsm_histogram_max, 100000.0, 1.0, 1e10,
							 PGC_POSTMASTER, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable(PGSM_GUC("pgsm_histogram_buckets"),
							"Sets the number of steps of the execution time histogram.",
							NULL, &pgsm_histogram_buckets, 20, 2, PGSM_MAX_HIST_SLOTS - 2,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable(PGSM_GUC("pgsm_enable_overflow"),
							 "Accepted for compatibility: the text area has a fixed size, and statements that find no room are counted in an overflow row.",
							 NULL, &pgsm_enable_overflow, true,
							 PGC_POSTMASTER, 0, NULL, NULL, NULL);
}

static void
define_tracking_gucs(void)
{
	DefineCustomEnumVariable(PGSM_GUC("pgsm_track"),
							 "Selects which statements are tracked: none, top-level ones, or all including nested ones.",
							 NULL, &pgsm_track, PGSM_TRACK_TOP, track_options,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable(PGSM_GUC("pgsm_track_utility"),
							 "Selects whether utility commands are tracked.",
							 NULL, &pgsm_track_utility, true,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable(PGSM_GUC("pgsm_track_planning"),
							 "Selects whether planning statistics are tracked.",
							 NULL, &pgsm_track_planning, false,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable(PGSM_GUC("pgsm_normalized_query"),
							 "Selects whether query texts show placeholders instead of constants.",
							 NULL, &pgsm_normalized_query, false,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable(PGSM_GUC("pgsm_enable_pgsm_query_id"),
							 "Selects whether pgsm_query_id, an id of the normalized text, is computed.",
							 NULL, &pgsm_enable_pgsm_query_id, true,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable(PGSM_GUC("pgsm_enable_query_plan"),
							 "Selects whether the plans of SELECT statements are captured.",
							 NULL, &pgsm_enable_query_plan, false,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable(PGSM_GUC("pgsm_extract_comments"),
							 "Selects whether the comments of statements are extracted.",
							 NULL, &pgsm_extract_comments, false,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable(PGSM_GUC("pgsm_track_cpu_time"),
							 "Selects whether cpu_user_time and cpu_sys_time are measured.",
							 "Off by default: measuring takes two getrusage() calls per statement, "
							 "more than all the rest of the extension's per-statement work.",
							 &pgsm_track_cpu_time, false,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable(PGSM_GUC("pgsm_track_application_names"),
							 "Records the application name of each statement (off: none, as upstream 2.3).",
							 NULL, &pgsm_track_application_names, true,
							 PGC_USERSET, 0, NULL, NULL, NULL);
}

static void
define_history_gucs(void)
{
	DefineCustomStringVariable(PGSM_GUC("pgsm_worker_database"),
							   "Sets the database the background worker connects to.",
							   NULL, &pgsm_worker_database, "postgres",
							   PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable(PGSM_GUC("pgsm_export_auto"),
							 "Selects whether the background worker exports finished buckets.",
							 "Turn it off when pg_cron or another scheduler calls pg_stat_monitor_export().",
							 &pgsm_export_auto, true,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable(PGSM_GUC("pgsm_export_interval"),
							"Sets the longest time the background worker sleeps between passes.",
							NULL, &pgsm_export_interval, 10, 1, 3600,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable(PGSM_GUC("pgsm_export_top_n"),
							"Sets how many statements of each bucket the export keeps; the rest are summed into one row.",
							NULL, &pgsm_export_top_n, 300, 1, 1000000,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable(PGSM_GUC("pgsm_history_retention"),
							"Sets how many days of history are kept.",
							NULL, &pgsm_history_retention, 30, 1, 36500,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable(PGSM_GUC("pgsm_history_days_ahead"),
							"Sets how many daily history partitions are created ahead.",
							NULL, &pgsm_history_days_ahead, 2, 1, 366,
							PGC_SUSET, 0, NULL, NULL, NULL);
}

/* a node name is safe inside a quoted SQL comment: letters, digits, _ . - only */
bool
pgsm_valid_node_name(const char *name)
{
	const char *c;

	if (strlen(name) >= NAMEDATALEN)
		return false;
	for (c = name; *c; c++)
	{
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
			  (*c >= '0' && *c <= '9') || *c == '_' || *c == '.' || *c == '-'))
			return false;
	}
	return true;
}

static bool
check_node_name(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || pgsm_valid_node_name(*newval))
		return true;
	GUC_check_errdetail("A node name has at most %d characters among letters, digits, \"_\", \".\" and \"-\".",
						NAMEDATALEN - 1);
	return false;
}

static void
define_cluster_gucs(void)
{
	DefineCustomStringVariable(PGSM_GUC("pgsm_node_name"),
							   "Sets this node's name in a postgres_fdw cluster (empty: cluster_name).",
							   "Coordinators tag the remote SQL they send with it; names must be unique in the cluster.",
							   &pgsm_node_name, "",
							   PGC_SIGHUP, 0, check_node_name, NULL, NULL);
	DefineCustomIntVariable(PGSM_GUC("pgsm_sdm_max_fragments"),
							"Sets how many fragment entries a shard keeps until they are sent.",
							"Taken from pgsm_max's shared memory.",
							&pgsm_sdm_max_fragments, 512, 16, 65536,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomEnumVariable(PGSM_GUC("pgsm_transport_compression"),
							 "Selects how fragment batches are compressed on the wire: none, zlib or zstd.",
							 NULL, &pgsm_transport_compression, 2, compression_options,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable(PGSM_GUC("pgsm_sdm_send_interval"),
							"Sets how often a shard sends its fragments to their coordinators.",
							"The worker also sends when the fragment table is about 90% full.",
							&pgsm_sdm_send_interval, 5, 1, 3600,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable(PGSM_GUC("pgsm_sdm_outbox_max"),
							"Sets how many rows the outbox keeps per coordinator; what it must drop is counted.",
							NULL, &pgsm_sdm_outbox_max, 100000, 1, INT_MAX,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
}

void
pgsm_define_gucs(void)
{
	define_memory_gucs();
	define_tracking_gucs();
	define_history_gucs();
	define_cluster_gucs();
	MarkGUCPrefixReserved("pg_stat_monitor");
}
