/*-------------------------------------------------------------------------
 *
 * worker.c
 *		The pg_stat_monitor background worker.  It waits on its latch
 *		(set when a bucket ends or the entry table fills) or a timeout, and
 *		on each wake calls the extension's SQL function pgsm_worker_tick()
 *		in pg_stat_monitor.pgsm_worker_database: export, partition
 *		maintenance.  No policy here: the tick decides what to do.
 *
 * When the extension is not created in that database, the worker logs it
 * once and keeps shared memory from filling by discarding buckets that
 * have left the view's window, counting what it discards.
 *
 *-------------------------------------------------------------------------
 */
#include "pgsm.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

PGDLLEXPORT void pgsm_worker_main(Datum arg);
void		pgsm_register_worker(void);

#define PGSM_WORKER_NAME "pg_stat_monitor worker"

static bool pgsm_missing_logged = false;

void
pgsm_register_worker(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "pg_stat_monitor");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "pgsm_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, PGSM_WORKER_NAME);
	snprintf(worker.bgw_type, BGW_MAXLEN, PGSM_WORKER_NAME);
	RegisterBackgroundWorker(&worker);
}

/* the OID of the extension's tick function, or InvalidOid if not created */
static Oid
find_tick_function(void)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum("pg_stat_monitor")};
	bool		isnull;
	Oid			fn = InvalidOid;

	if (SPI_execute_with_args("SELECT p.oid FROM pg_catalog.pg_proc p"
							  " JOIN pg_catalog.pg_extension e ON e.extnamespace = p.pronamespace"
							  " WHERE e.extname = $1 AND p.proname = 'pgsm_worker_tick'"
							  " AND p.pronargs = 0",
							  1, argtypes, args, NULL, true, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
		fn = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
											SPI_tuptable->tupdesc, 1, &isnull));
	return fn;
}

/* buckets that left the view's window, when nobody can export them */
static void
discard_old_buckets(void)
{
	int64		window_start = pgsm_current_bucket() -
		(int64) (pgsm_max_buckets - 1) * pgsm_bucket_time;

	pgsm_freeze_finished();
	pgsm_discard_below(window_start);
}

static void
run_pass(void)
{
	Oid			tick;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "pg_stat_monitor worker pass");

	tick = find_tick_function();
	if (!OidIsValid(tick))
	{
		if (!pgsm_missing_logged)
			ereport(LOG,
					(errmsg("pg_stat_monitor worker found no pg_stat_monitor extension in database \"%s\"",
							pgsm_worker_database),
					 errdetail("Finished buckets are discarded once they leave the view's window, and counted in pg_stat_monitor_info."),
					 errhint("Run CREATE EXTENSION pg_stat_monitor in that database, or set pg_stat_monitor.pgsm_worker_database.")));
		pgsm_missing_logged = true;
		discard_old_buckets();
	}
	else
	{
		pgsm_missing_logged = false;
		if (pgsm_export_auto)
			OidFunctionCall0(tick);
	}

	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();

	/* with the export committed, memory can let go of what it moved */
	if (OidIsValid(tick))
	{
		StartTransactionCommand();
		pgsm_remove_exported();
		CommitTransactionCommand();
	}
	pgstat_report_stat(true);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* one pass; an error is logged and the worker goes on */
static void
run_pass_guarded(MemoryContext pass_cxt)
{
	MemoryContextSwitchTo(pass_cxt);
	PG_TRY();
	{
		run_pass();
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
}

static void
forget_latch(int code, Datum arg)
{
	pgsm_set_worker_latch(NULL);
}

void
pgsm_worker_main(Datum arg)
{
	MemoryContext pass_cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	pgsm_untracked_process = true;

	BackgroundWorkerInitializeConnection(pgsm_worker_database, NULL, 0);
	pgstat_report_appname(PGSM_WORKER_NAME);
	pgsm_set_worker_latch(MyLatch);
	before_shmem_exit(forget_latch, (Datum) 0);
	pass_cxt = AllocSetContextCreate(TopMemoryContext, "pg_stat_monitor worker pass",
									 ALLOCSET_DEFAULT_SIZES);

	/* a pass at start exports what a previous life left behind */
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		run_pass_guarded(pass_cxt);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 pgsm_export_interval * 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
