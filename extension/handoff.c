/*-------------------------------------------------------------------------
 *
 * handoff.c
 *		The commit-time hand-off between shared memory and tables: "apply
 *		this if, and only if, the current transaction commits".  The export
 *		freezes finished buckets, inserts them into history, then asks for
 *		their release at commit; an error, a rolled-back savepoint or an
 *		exception block takes the release back with the insert, so a bucket
 *		is neither lost nor exported twice.
 *
 * What is pending lives in this backend's memory: one (level, function,
 * argument) per request, the level being the transaction nesting level
 * that asked.  A subtransaction that aborts drops its requests; one that
 * commits hands them to its parent.  PREPARE TRANSACTION is refused when
 * something is pending: a prepared transaction may commit in another
 * backend, where these requests would not be.
 *
 *-------------------------------------------------------------------------
 */
#include "pgsm.h"

#include "access/xact.h"
#include "fmgr.h"

#define PGSM_MAX_PENDING 64

typedef struct PgsmPending
{
	int			level;			/* transaction nest level that asked */
	PgsmCommitFn fn;
	int64		arg;
} PgsmPending;

static PgsmPending pgsm_pending[PGSM_MAX_PENDING];
static int	pgsm_npending = 0;
static bool pgsm_callbacks_registered = false;

PG_FUNCTION_INFO_V1(pgsm_freeze_buckets);
PG_FUNCTION_INFO_V1(pgsm_release_buckets_on_commit);
PG_FUNCTION_INFO_V1(pgsm_release_exported_buckets);

/* the callbacks must not fail at COMMIT: the functions they call do not */
static void
at_xact_end(XactEvent event, void *arg)
{
	int			i;

	if (pgsm_npending == 0)
		return;
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot prepare a transaction that exported pg_stat_monitor statistics")));
			break;
		case XACT_EVENT_COMMIT:
			for (i = 0; i < pgsm_npending; i++)
				pgsm_pending[i].fn(pgsm_pending[i].arg);
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
at_subxact_end(SubXactEvent event, SubTransactionId mySubid,
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
				continue;		/* its work is undone: so is its request */
			pgsm_pending[i].level = level - 1;
		}
		pgsm_pending[kept++] = pgsm_pending[i];
	}
	pgsm_npending = kept;
}

/* call fn(arg) when the current transaction commits; never if it aborts */
void
pgsm_on_commit(PgsmCommitFn fn, int64 arg)
{
	if (!pgsm_callbacks_registered)
	{
		RegisterXactCallback(at_xact_end, NULL);
		RegisterSubXactCallback(at_subxact_end, NULL);
		pgsm_callbacks_registered = true;
	}
	if (pgsm_npending >= PGSM_MAX_PENDING)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many pg_stat_monitor exports in one transaction")));
	pgsm_pending[pgsm_npending].level = GetCurrentTransactionNestLevel();
	pgsm_pending[pgsm_npending].fn = fn;
	pgsm_pending[pgsm_npending].arg = arg;
	pgsm_npending++;
}

/* ---------------------------------------------------------------- the export's pair */

/*
 * pgsm_freeze_buckets(): close finished buckets to writes and return the
 * first open bucket; first let go of exported buckets that left the window.
 */
Datum
pgsm_freeze_buckets(PG_FUNCTION_ARGS)
{
	pgsm_require_preload();
	pgsm_release_exported(pgsm_window_start());
	PG_RETURN_TIMESTAMPTZ(pgsm_unix_to_timestamptz(pgsm_freeze_finished()));
}

/*
 * pgsm_release_buckets_on_commit(below timestamptz): when the current
 * transaction commits, mark the buckets that start before 'below' as in
 * history.  If it (or the subtransaction that asked) aborts, nothing
 * changes, so an export that fails leaves its buckets to the next one.
 */
Datum
pgsm_release_buckets_on_commit(PG_FUNCTION_ARGS)
{
	pgsm_require_preload();
	pgsm_on_commit(pgsm_mark_exported, pgsm_timestamptz_to_unix(PG_GETARG_TIMESTAMPTZ(0)));
	PG_RETURN_VOID();
}

/*
 * pgsm_release_exported(below timestamptz): let exported buckets that start
 * before 'below' leave memory now (the view then reads them from history);
 * returns the entries removed.  Buckets not yet exported stay.
 */
Datum
pgsm_release_exported_buckets(PG_FUNCTION_ARGS)
{
	pgsm_require_preload();
	PG_RETURN_INT64(pgsm_release_exported(pgsm_timestamptz_to_unix(PG_GETARG_TIMESTAMPTZ(0))));
}

/* ---------------------------------------------------------------- the sender's drain */

PG_FUNCTION_INFO_V1(pgsm_freeze_fragments);
PG_FUNCTION_INFO_V1(pgsm_in_transaction_block);

/*
 * pgsm_in_transaction_block(): whether the caller runs inside BEGIN ... COMMIT,
 * where what it drains could be put back by a later rollback.
 */
Datum
pgsm_in_transaction_block(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(IsTransactionBlock());
}
PG_FUNCTION_INFO_V1(pgsm_release_fragments_on_commit);

/*
 * pgsm_freeze_fragments(floor bigint): close the fragment entries to writes,
 * giving each its wire id above 'floor' << 20; returns 'below'
 */
Datum
pgsm_freeze_fragments(PG_FUNCTION_ARGS)
{
	pgsm_require_preload();
	PG_RETURN_INT64(pgsm_fragments_freeze(PG_GETARG_INT64(0)));
}

/*
 * pgsm_release_fragments_on_commit(below bigint): when the current
 * transaction (which copied them into the outbox) commits, remove the
 * fragment entries frozen before 'below'; if it aborts, they stay for the
 * next drain.
 */
Datum
pgsm_release_fragments_on_commit(PG_FUNCTION_ARGS)
{
	pgsm_require_preload();
	pgsm_on_commit(pgsm_fragments_release, PG_GETARG_INT64(0));
	PG_RETURN_VOID();
}
