/*-------------------------------------------------------------------------
 *
 * worker.c
 *		The pg_stat_monitor background processes.
 *
 * The launcher ("pg_stat_monitor launcher", registered at preload) is
 * connected to no database.  It checks that the database named by
 * pg_stat_monitor.pgsm_worker_database exists and starts the worker there
 * (a dynamic background worker it watches and starts again when it ends).
 * While that database does not exist, the launcher says so once and keeps
 * shared memory from filling itself: buckets that leave the view's window
 * are discarded and counted.
 *
 * The worker ("pg_stat_monitor worker") waits on its latch (set when a
 * bucket ends or the entry table fills) or a timeout, and on each wake
 * calls the extension's pgsm_worker_tick(): export, partition maintenance.
 * No policy here: the tick decides what to do.  It finds that function
 * through the catalog caches, not SQL, as the zero-argument function of
 * that name that belongs to extension pg_stat_monitor, so nothing a
 * database owner creates (operators, functions) takes part; every setting
 * the database or a role applied when it connected (role, search_path,
 * exit_on_error ...) goes back to the server's value, and a few are pinned.
 * One worker at a time: it claims the worker slot in shared memory, and a
 * launcher that restarted finds a running worker there.  When the extension is not
 * created there, it logs that once and discards like the launcher.
 *
 * Neither busy-loops: passes are at least PGSM_MIN_PASS_GAP_MS apart, however
 * often the latch is set.
 *
 *-------------------------------------------------------------------------
 */
#include "pgsm.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/pg_database.h"
#include "catalog/pg_proc.h"
#include "commands/extension.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/catcache.h"
#include "utils/syscache.h"

PGDLLEXPORT void pgsm_launcher_main(Datum arg);
PGDLLEXPORT void pgsm_worker_main(Datum arg);

#define PGSM_LAUNCHER_NAME "pg_stat_monitor launcher"
#define PGSM_WORKER_NAME "pg_stat_monitor worker"
#define PGSM_MIN_PASS_GAP_MS 200L

static bool pgsm_missing_logged = false;

static void
fill_worker(BackgroundWorker *w, const char *function, const char *name)
{
	memset(w, 0, sizeof(*w));
	w->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w->bgw_start_time = BgWorkerStart_RecoveryFinished;
	snprintf(w->bgw_library_name, BGW_MAXLEN, "pg_stat_monitor");
	snprintf(w->bgw_function_name, BGW_MAXLEN, "%s", function);
	snprintf(w->bgw_name, BGW_MAXLEN, "%s", name);
	snprintf(w->bgw_type, BGW_MAXLEN, "%s", name);
}

void
pgsm_register_worker(void)
{
	BackgroundWorker launcher;

	fill_worker(&launcher, "pgsm_launcher_main", PGSM_LAUNCHER_NAME);
	launcher.bgw_restart_time = 5;
	RegisterBackgroundWorker(&launcher);
}

/* signals, and the settings of a process that runs no client's SQL */
static void
start_process(void)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	pgsm_untracked_process = true;
}

static void
forget_latch(int code, Datum arg)
{
	pgsm_release_worker(MyLatch);
}

/*
 * Sleep until woken or the next pass is due (the export's interval or the
 * sender's, whichever is shorter), but at least the minimum gap.
 */
static void
wait_for_work(void)
{
	long		interval_ms = Min(pgsm_export_interval, pgsm_sdm_send_interval) * 1000L;

	(void) WaitLatch(MyLatch, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, PGSM_MIN_PASS_GAP_MS,
					 PG_WAIT_EXTENSION);
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 Max(interval_ms - PGSM_MIN_PASS_GAP_MS, 1), PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
}

/* buckets that left the view's window, when nobody can export them */
static void
discard_old_buckets(void)
{
	pgsm_freeze_finished();
	pgsm_discard_below(pgsm_window_start());
}

/* ---------------------------------------------------------------- the worker */

/* a setting's entry in the GUC table, by name */
static struct config_generic *
find_option_for_restore(const char *name)
{
	struct config_generic **vars = get_guc_variables();
	int			n = GetNumConfigOptions();
	int			i;

	for (i = 0; i < n; i++)
	{
		if (strcmp(vars[i]->name, name) == 0)
			return vars[i];
	}
	return NULL;
}

/* the server's own value of every setting, read before connecting */
typedef struct PgsmSavedSetting
{
	char	   *name;
	char	   *value;
} PgsmSavedSetting;

static PgsmSavedSetting *pgsm_saved = NULL;
static int	pgsm_nsaved = 0;

static void
save_settings(void)
{
	struct config_generic **vars = get_guc_variables();
	int			n = GetNumConfigOptions();
	int			i;

	pgsm_saved = MemoryContextAlloc(TopMemoryContext, sizeof(PgsmSavedSetting) * n);
	for (i = 0; i < n; i++)
	{
		const char *value = GetConfigOption(vars[i]->name, true, false);

		if (value == NULL)
			continue;
		pgsm_saved[pgsm_nsaved].name = MemoryContextStrdup(TopMemoryContext, vars[i]->name);
		pgsm_saved[pgsm_nsaved].value = MemoryContextStrdup(TopMemoryContext, value);
		pgsm_nsaved++;
	}
}

/*
 * Undo what the database's owner (ALTER DATABASE ... SET) or a role setting
 * applied to this session when it connected: role, exit_on_error,
 * search_path, DateStyle ... all go back to the server's values, then a few
 * are pinned.  Nothing set for the database decides how the worker runs.
 */
static void
restore_settings(void)
{
	int			i;

	for (i = 0; i < pgsm_nsaved; i++)
	{
		struct config_generic *var = find_option_for_restore(pgsm_saved[i].name);

		if (var == NULL || (var->source != PGC_S_DATABASE && var->source != PGC_S_USER &&
							var->source != PGC_S_DATABASE_USER))
			continue;
		(void) set_config_option(pgsm_saved[i].name, pgsm_saved[i].value, PGC_SUSET,
								 PGC_S_OVERRIDE, GUC_ACTION_SET, true, DEBUG1, false);
	}
	SetConfigOption("role", "none", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("exit_on_error", "off", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("statement_timeout", "0", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("idle_in_transaction_session_timeout", "0", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("default_transaction_read_only", "off", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("default_transaction_isolation", "read committed", PGC_SUSET,
					PGC_S_OVERRIDE);
}

/*
 * The OID of the extension's zero-argument function 'name' (the tick, the
 * send), or InvalidOid if the extension is not created: the catalog caches,
 * no SQL.  Call inside a transaction.
 */
static Oid
find_worker_function(const char *name)
{
	Oid			ext = get_extension_oid("pg_stat_monitor", true);
	Oid			fn = InvalidOid;
	CatCList   *procs;
	int			i;

	if (!OidIsValid(ext))
		return InvalidOid;
	procs = SearchSysCacheList1(PROCNAMEARGSNSP, CStringGetDatum(name));
	for (i = 0; i < procs->n_members; i++)
	{
		Form_pg_proc proc = (Form_pg_proc) GETSTRUCT(&procs->members[i]->tuple);

		if (proc->pronargs == 0 &&
			getExtensionOfObject(ProcedureRelationId, proc->oid) == ext)
			fn = proc->oid;
	}
	ReleaseSysCacheList(procs);
	return fn;
}

static void
log_missing_extension(void)
{
	if (!pgsm_missing_logged)
		ereport(LOG,
				(errmsg("pg_stat_monitor worker found no pg_stat_monitor extension in database \"%s\"",
						pgsm_worker_database),
				 errdetail("Finished buckets are discarded once they leave the view's window, and counted in pg_stat_monitor_info."),
				 errhint("Run CREATE EXTENSION pg_stat_monitor in that database, or set pg_stat_monitor.pgsm_worker_database.")));
	pgsm_missing_logged = true;
}

/* a transaction that calls the extension's function 'name'; false if there is none */
static bool
run_in_transaction(const char *name, const char *activity, bool is_tick)
{
	Oid			fn;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);

	fn = find_worker_function(name);
	if (OidIsValid(fn))
		OidFunctionCall0(fn);
	if (is_tick && !OidIsValid(fn))
		discard_old_buckets();
	else if (is_tick)
	{
		/* exported buckets that left the window, even when pg_cron exports */
		pgsm_release_exported(pgsm_window_start());
	}

	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(true);
	pgstat_report_activity(STATE_IDLE, NULL);
	return OidIsValid(fn);
}

/*
 * run_in_transaction(), an error logged (and its transaction aborted)
 * instead of raised; false if the function is not there
 */
static bool
run_guarded(const char *name, const char *activity, bool is_tick, MemoryContext pass_cxt)
{
	volatile bool found = true;

	MemoryContextSwitchTo(pass_cxt);
	PG_TRY();
	{
		found = run_in_transaction(name, activity, is_tick);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(pass_cxt);
		EmitErrorReport();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		pgstat_report_activity(STATE_IDLE, NULL);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(TopMemoryContext);
	MemoryContextReset(pass_cxt);
	return found;
}

/*
 * A pass, in three transactions, each failing alone: the tick (the export,
 * unless pg_cron does it), the drain of the fragment table when it is due,
 * then the send of what is pending, so that a coordinator that is down holds
 * up nothing the others did, and a failing export holds up no send.
 */
static void
run_pass(MemoryContext pass_cxt)
{
	if (!run_guarded("pgsm_worker_tick", "pg_stat_monitor worker pass", true, pass_cxt))
	{
		log_missing_extension();
		return;
	}
	pgsm_missing_logged = false;
	(void) run_guarded("pgsm_worker_drain", "pg_stat_monitor worker drain", false, pass_cxt);
	(void) run_guarded("pgsm_worker_send", "pg_stat_monitor worker send", false, pass_cxt);
}

void
pgsm_worker_main(Datum arg)
{
	MemoryContext pass_cxt;

	start_process();
	save_settings();
	BackgroundWorkerInitializeConnectionByOid(DatumGetObjectId(arg), InvalidOid, 0);
	pgstat_report_appname(PGSM_WORKER_NAME);
	restore_settings();
	/* one worker at a time: a launcher that restarted may not know this one */
	if (!pgsm_claim_worker(MyLatch))
		proc_exit(0);
	before_shmem_exit(forget_latch, (Datum) 0);
	pass_cxt = AllocSetContextCreate(TopMemoryContext, "pg_stat_monitor worker pass",
									 ALLOCSET_DEFAULT_SIZES);

	/* a pass at start exports what a previous life left behind */
	for (;;)
	{
		run_pass(pass_cxt);
		wait_for_work();
	}
}

/* ---------------------------------------------------------------- the launcher */

/*
 * The OID of the worker's database, or InvalidOid if there is none (or it
 * takes no connections).  A heap scan of pg_database: with no database
 * selected, the catalog's indexes cannot be used.
 */
static Oid
worker_database(void)
{
	Oid			db = InvalidOid;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database d = (Form_pg_database) GETSTRUCT(tup);

		if (strcmp(NameStr(d->datname), pgsm_worker_database) == 0 && d->datallowconn)
			db = d->oid;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return db;
}

/* start the worker in its database; NULL if no slot is free */
static BackgroundWorkerHandle *
start_worker(Oid db)
{
	BackgroundWorker w;
	BackgroundWorkerHandle *handle;

	fill_worker(&w, "pgsm_worker_main", PGSM_WORKER_NAME);
	w.bgw_restart_time = BGW_NEVER_RESTART;
	w.bgw_main_arg = ObjectIdGetDatum(db);
	w.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&w, &handle))
	{
		ereport(LOG,
				(errmsg("pg_stat_monitor could not start its worker: no background worker slot is free"),
				 errhint("Raise max_worker_processes.")));
		return NULL;
	}
	return handle;
}

static void
log_missing_database(void)
{
	if (!pgsm_missing_logged)
		ereport(LOG,
				(errmsg("pg_stat_monitor worker database \"%s\" does not exist", pgsm_worker_database),
				 errdetail("Finished buckets are discarded once they leave the view's window, and counted in pg_stat_monitor_info."),
				 errhint("Create that database and the extension in it, or set pg_stat_monitor.pgsm_worker_database.")));
	pgsm_missing_logged = true;
}

/* one look: is the worker running, and if not, can it be started */
static BackgroundWorkerHandle *
launcher_pass(BackgroundWorkerHandle *worker)
{
	pid_t		pid;
	Oid			db;

	if (worker != NULL && GetBackgroundWorkerPid(worker, &pid) != BGWH_STOPPED)
		return worker;
	if (worker != NULL)
		pfree(worker);
	/* a worker started before this launcher restarted is still at work */
	if (pgsm_worker_running(MyLatch))
		return NULL;
	db = worker_database();
	if (OidIsValid(db))
	{
		pgsm_missing_logged = false;
		pgsm_release_worker(MyLatch);
		return start_worker(db);
	}
	log_missing_database();
	(void) pgsm_claim_worker(MyLatch);
	discard_old_buckets();
	return NULL;
}

void
pgsm_launcher_main(Datum arg)
{
	BackgroundWorkerHandle *worker = NULL;

	start_process();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname(PGSM_LAUNCHER_NAME);
	before_shmem_exit(forget_latch, (Datum) 0);
	for (;;)
	{
		worker = launcher_pass(worker);
		wait_for_work();
	}
}
