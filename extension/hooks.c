/*-------------------------------------------------------------------------
 *
 * hooks.c
 *		The statement hooks: planner, executor start/run/finish/end,
 *		utility and emit_log.  Each measures one execution into a
 *		PgsmExecution and hands it to capture.c.
 *
 * Backend-local state only: the nesting level, the current top-level
 * statement, per-execution start snapshots, and planning time waiting
 * for its execution.
 *
 *-------------------------------------------------------------------------
 */
#include "pgsm.h"

#include <sys/resource.h>

#include "access/parallel.h"
#include "access/xact.h"
#include "commands/explain.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "jit/jit.h"
#include "miscadmin.h"
#include "optimizer/planner.h"
#include "parser/parsetree.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "tcop/utility.h"
#include "utils/memutils.h"
#include "utils/queryjumble.h"

static planner_hook_type prev_planner_hook = NULL;
static ExecutorStart_hook_type prev_ExecutorStart = NULL;
static ExecutorRun_hook_type prev_ExecutorRun = NULL;
static ExecutorFinish_hook_type prev_ExecutorFinish = NULL;
static ExecutorEnd_hook_type prev_ExecutorEnd = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;
static emit_log_hook_type prev_emit_log_hook = NULL;

/* nesting of executor and utility calls; 0 while running a top-level statement */
static int	pgsm_nesting = 0;

/* the current top-level statement, for nested statements' top_queryid/top_query */
static uint64 pgsm_top_queryid = 0;
static uint8 pgsm_top_cmd_type = 0;
static Oid	pgsm_top_userid = InvalidOid;	/* the role it started as */
static const char *pgsm_top_source = NULL;
static bool pgsm_top_explain = false;	/* the top-level statement is an EXPLAIN */
static int	pgsm_top_location = -1;
static int	pgsm_top_len = 0;

/* the current top-level statement was stored already (an error now is a late one) */
static bool pgsm_top_stored = false;
static uint64 pgsm_top_stored_queryid = 0;
static uint8 pgsm_top_stored_cmd_type = 0;

/* planning time of a statement, until its execution ends */
static uint64 pgsm_plan_queryid = 0;
static int	pgsm_plan_nesting = -1;
static double pgsm_plan_ms = 0;

/*
 * An execution that ExecutorStart saw while tracking was on, found again by
 * ExecutorEnd (the level or the settings may differ by then: a cursor opened
 * in a function can end at commit), with its CPU time, role and application
 * name at the start
 */
typedef struct PgsmRun
{
	QueryDesc  *query;
	PgsmWho		who;
	bool		cpu;			/* start is valid */
	struct rusage start;
	MemoryContextCallback unlink;
	struct PgsmRun *prev;
	struct PgsmRun *next;
} PgsmRun;

static PgsmRun *pgsm_runs = NULL;

/*
 * CPU times come from getrusage(RUSAGE_SELF), not RUSAGE_THREAD although a
 * backend has one thread: Linux brings the caller's own run time up to date
 * only for RUSAGE_SELF; RUSAGE_THREAD returns it as of the last scheduler tick
 * or switch, so a statement shorter than a tick mostly reads 0 (measured:
 * 3% of the real CPU time of 50 us statements).  See bench/cputime.
 */
#define PGSM_RUSAGE_WHO RUSAGE_SELF

bool		pgsm_untracked_process = false;

static bool
pgsm_enabled(int level)
{
	if (!pgsm_store_ready() || IsParallelWorker() || pgsm_untracked_process)
		return false;
	return pgsm_track == PGSM_TRACK_ALL ||
		(pgsm_track == PGSM_TRACK_TOP && level == 0);
}

/* ---- per-execution state ---- */

static void
run_unlink(void *arg)
{
	PgsmRun    *run = arg;

	if (run->prev)
		run->prev->next = run->next;
	else
		pgsm_runs = run->next;
	if (run->next)
		run->next->prev = run->prev;
}

/* remember the start of an execution; freed with the executor's memory */
static void
run_begin(QueryDesc *query)
{
	MemoryContext cxt = query->estate->es_query_cxt;
	PgsmRun    *run = MemoryContextAlloc(cxt, sizeof(PgsmRun));

	run->query = query;
	pgsm_who_now(&run->who);
	run->cpu = pgsm_track_cpu_time;
	if (run->cpu)
		getrusage(PGSM_RUSAGE_WHO, &run->start);
	run->prev = NULL;
	run->next = pgsm_runs;
	if (pgsm_runs)
		pgsm_runs->prev = run;
	pgsm_runs = run;
	run->unlink.func = run_unlink;
	run->unlink.arg = run;
	MemoryContextRegisterResetCallback(cxt, &run->unlink);
}

static PgsmRun *
run_find(QueryDesc *query)
{
	PgsmRun    *run;

	for (run = pgsm_runs; run != NULL; run = run->next)
		if (run->query == query)
			return run;
	return NULL;
}

static double
tv_ms(const struct timeval *a, const struct timeval *b)
{
	return (b->tv_sec - a->tv_sec) * 1000.0 + (b->tv_usec - a->tv_usec) / 1000.0;
}

static void
add_cpu(PgsmCounters *c, const struct rusage *start)
{
	struct rusage end;

	getrusage(PGSM_RUSAGE_WHO, &end);
	c->cpu_user_time = tv_ms(&start->ru_utime, &end.ru_utime);
	c->cpu_sys_time = tv_ms(&start->ru_stime, &end.ru_stime);
}

/* ---- usage ---- */

static void
add_buffers(PgsmCounters *c, const BufferUsage *b)
{
	c->shared_blks_hit = b->shared_blks_hit;
	c->shared_blks_read = b->shared_blks_read;
	c->shared_blks_dirtied = b->shared_blks_dirtied;
	c->shared_blks_written = b->shared_blks_written;
	c->local_blks_hit = b->local_blks_hit;
	c->local_blks_read = b->local_blks_read;
	c->local_blks_dirtied = b->local_blks_dirtied;
	c->local_blks_written = b->local_blks_written;
	c->temp_blks_read = b->temp_blks_read;
	c->temp_blks_written = b->temp_blks_written;
	c->blk_read_time = INSTR_TIME_GET_MILLISEC(b->blk_read_time);
	c->blk_write_time = INSTR_TIME_GET_MILLISEC(b->blk_write_time);
	c->temp_blk_read_time = INSTR_TIME_GET_MILLISEC(b->temp_blk_read_time);
	c->temp_blk_write_time = INSTR_TIME_GET_MILLISEC(b->temp_blk_write_time);
}

static void
add_wal(PgsmCounters *c, const WalUsage *w)
{
	c->wal_records = w->wal_records;
	c->wal_fpi = w->wal_fpi;
	c->wal_bytes = w->wal_bytes;
}

static void
add_jit(PgsmCounters *c, const JitInstrumentation *j)
{
	c->jit_functions = j->created_functions;
	c->jit_generation_time = INSTR_TIME_GET_MILLISEC(j->generation_counter);
	c->jit_inlining_time = INSTR_TIME_GET_MILLISEC(j->inlining_counter);
	c->jit_inlining_count = c->jit_inlining_time > 0;
	c->jit_optimization_time = INSTR_TIME_GET_MILLISEC(j->optimization_counter);
	c->jit_optimization_count = c->jit_optimization_time > 0;
	c->jit_emission_time = INSTR_TIME_GET_MILLISEC(j->emission_counter);
	c->jit_emission_count = c->jit_emission_time > 0;
}

/* nesting and top statement of an execution about to be stored */
static void
set_context(PgsmExecution *x, uint64 queryid)
{
	x->queryid = queryid;
	x->toplevel = (pgsm_nesting == 0);
	if (!x->toplevel)
	{
		x->top_queryid = pgsm_top_queryid;
		x->top_userid = pgsm_top_userid;
		x->top_source = pgsm_top_source;
		x->top_location = pgsm_top_location;
		x->top_len = pgsm_top_len;
	}
	if (pgsm_plan_queryid == queryid && pgsm_plan_nesting == pgsm_nesting)
	{
		x->delta.plans = 1;
		x->delta.plan.total = pgsm_plan_ms;
		pgsm_plan_queryid = 0;
	}
}

/* a top-level statement begins (source NULL: it ended) */
static void
set_top(uint64 queryid, uint8 cmd_type, const char *source, int location, int len)
{
	pgsm_top_queryid = queryid;
	pgsm_top_cmd_type = cmd_type;
	/* the role outside any SECURITY DEFINER function: the one that sent it */
	pgsm_top_userid = source ? GetOuterUserId() : InvalidOid;
	pgsm_top_source = source;
	pgsm_top_location = location;
	pgsm_top_len = len;
	/* statements that run at nesting 0 on the client statement's behalf (deferred
	 * triggers at commit) are not a new client statement */
	if (source == NULL || queryid == pgstat_get_my_query_id())
		pgsm_top_stored = false;
}

/* the top-level statement's text is freed after it: never keep pointing at it */
static void
forget_top_at_abort(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		set_top(0, 0, NULL, -1, 0);
}

/* store, noting a top-level statement as stored */
static void
store_noting_top(PgsmExecution *x)
{
	pgsm_capture(x);
	if (x->toplevel && x->delta.calls > 0 && x->queryid == pgstat_get_my_query_id())
	{
		pgsm_top_stored = true;
		pgsm_top_stored_queryid = x->queryid;
		pgsm_top_stored_cmd_type = x->cmd_type;
	}
}

/* ---- plan capture ---- */

static char *
plan_text(QueryDesc *query)
{
	ExplainState *es = NewExplainState();

	es->costs = false;
	es->format = EXPLAIN_FORMAT_TEXT;
	ExplainBeginOutput(es);
	ExplainPrintPlan(es, query);
	ExplainEndOutput(es);
	while (es->str->len > 0 && es->str->data[es->str->len - 1] == '\n')
		es->str->data[--es->str->len] = '\0';
	return es->str->data;
}

/* ---- the hooks ---- */

static PlannedStmt *
pgsm_planner(Query *parse, const char *query_string, int cursorOptions,
			 ParamListInfo boundParams)
{
	PlannedStmt *result;
	instr_time	start,
				duration;
	bool		measure = pgsm_track_planning && query_string &&
		parse->queryId != UINT64CONST(0) && pgsm_enabled(pgsm_nesting);

	/* functions run while planning (constant folding) are nested in this statement */
	if (pgsm_nesting == 0)
	{
		set_top(parse->queryId, (uint8) parse->commandType, query_string,
				parse->stmt_location, parse->stmt_len);
		pgsm_top_explain = false;
	}
	if (measure)
		INSTR_TIME_SET_CURRENT(start);
	pgsm_nesting++;
	PG_TRY();
	{
		if (prev_planner_hook)
			result = prev_planner_hook(parse, query_string, cursorOptions, boundParams);
		else
			result = standard_planner(parse, query_string, cursorOptions, boundParams);
	}
	PG_FINALLY();
	{
		pgsm_nesting--;
	}
	PG_END_TRY();
	/* remote SQL carries the top-level statement's id; under EXPLAIN, the explained one's */
	pgsm_fdw_tag(result, (pgsm_nesting == 0 || (pgsm_nesting == 1 && pgsm_top_explain)) ?
				 parse->queryId : pgsm_top_queryid);
	if (measure)
	{
		INSTR_TIME_SET_CURRENT(duration);
		INSTR_TIME_SUBTRACT(duration, start);
		pgsm_plan_queryid = parse->queryId;
		pgsm_plan_nesting = pgsm_nesting;
		pgsm_plan_ms = INSTR_TIME_GET_MILLISEC(duration);
	}
	return result;
}

static void
pgsm_ExecutorStart(QueryDesc *query, int eflags)
{
	/* a nested plan kept by its function: its remote SQL names this top-level statement */
	if (pgsm_nesting > 0 && !(pgsm_nesting == 1 && pgsm_top_explain))
		query->plannedstmt = pgsm_fdw_retag(query->plannedstmt, pgsm_top_queryid);
	if (prev_ExecutorStart)
		prev_ExecutorStart(query, eflags);
	else
		standard_ExecutorStart(query, eflags);

	if (pgsm_nesting == 0)
		set_top(query->plannedstmt->queryId, (uint8) query->operation, query->sourceText,
				query->plannedstmt->stmt_location, query->plannedstmt->stmt_len);
	if (query->plannedstmt->queryId == UINT64CONST(0) || !pgsm_enabled(pgsm_nesting))
		return;
	if (query->totaltime == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(query->estate->es_query_cxt);

		query->totaltime = InstrAlloc(1, INSTRUMENT_ALL, false);
		MemoryContextSwitchTo(old);
	}
	run_begin(query);
}

static void
pgsm_ExecutorRun(QueryDesc *query, ScanDirection direction, uint64 count,
				 bool execute_once)
{
	pgsm_nesting++;
	PG_TRY();
	{
		if (prev_ExecutorRun)
			prev_ExecutorRun(query, direction, count, execute_once);
		else
			standard_ExecutorRun(query, direction, count, execute_once);
	}
	PG_FINALLY();
	{
		pgsm_nesting--;
	}
	PG_END_TRY();
}

static void
pgsm_ExecutorFinish(QueryDesc *query)
{
	pgsm_nesting++;
	PG_TRY();
	{
		if (prev_ExecutorFinish)
			prev_ExecutorFinish(query);
		else
			standard_ExecutorFinish(query);
	}
	PG_FINALLY();
	{
		pgsm_nesting--;
	}
	PG_END_TRY();
}

static void
store_execution(QueryDesc *query, PgsmRun *run)
{
	PgsmExecution x;
	PlannedStmt *stmt = query->plannedstmt;

	memset(&x, 0, sizeof(x));
	InstrEndLoop(query->totaltime);
	set_context(&x, stmt->queryId);
	x.started_known = true;
	x.started_by = run->who;
	x.cmd_type = (uint8) query->operation;
	x.exec_ms = query->totaltime->total * 1000.0;
	x.delta.calls = 1;
	x.delta.rows = query->estate->es_processed;
	add_buffers(&x.delta, &query->totaltime->bufusage);
	add_wal(&x.delta, &query->totaltime->walusage);
	if (query->estate->es_jit)
		add_jit(&x.delta, &query->estate->es_jit->instr);
	if (run->cpu)
		add_cpu(&x.delta, &run->start);
	x.source_text = query->sourceText;
	x.stmt_location = stmt->stmt_location;
	x.stmt_len = stmt->stmt_len;
	x.rtable = stmt->rtable;
	if (pgsm_enable_query_plan && query->operation == CMD_SELECT)
	{
		MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "pg_stat_monitor plan",
												  ALLOCSET_DEFAULT_SIZES);
		MemoryContext old = MemoryContextSwitchTo(cxt);

		x.plan_text = plan_text(query);
		x.planid = pgsm_hash_bytes(x.plan_text, strlen(x.plan_text));
		MemoryContextSwitchTo(old);
		store_noting_top(&x);
		MemoryContextDelete(cxt);
		return;
	}
	store_noting_top(&x);
}

static void
pgsm_ExecutorEnd(QueryDesc *query)
{
	PgsmRun    *run = run_find(query);

	if (run && query->totaltime && pgsm_enabled(pgsm_nesting))
		store_execution(query, run);
	if (prev_ExecutorEnd)
		prev_ExecutorEnd(query);
	else
		standard_ExecutorEnd(query);
	if (pgsm_nesting == 0)
		pgsm_top_source = NULL; /* its text may go away now */
}

/* statements that are not rows of their own: their prepared statement gets the cost */
static bool
is_prepare_family(Node *parsetree)
{
	return IsA(parsetree, ExecuteStmt) || IsA(parsetree, PrepareStmt) ||
		IsA(parsetree, DeallocateStmt);
}

/*
 * Statements that may carry a password or a connection string among their
 * constants: a role's, a user mapping's or a server's options, a
 * subscription's conninfo.  Their constants are never stored.
 */
static bool
has_secret_constants(Node *parsetree)
{
	switch (nodeTag(parsetree))
	{
		case T_CreateRoleStmt:
		case T_AlterRoleStmt:
		case T_CreateUserMappingStmt:
		case T_AlterUserMappingStmt:
		case T_CreateForeignServerStmt:
		case T_AlterForeignServerStmt:
		case T_CreateSubscriptionStmt:
		case T_AlterSubscriptionStmt:
			return true;
		default:
			return false;
	}
}

/* cursor statements, for a shard's fragments */
static void
set_portal(PgsmExecution *x, Node *parsetree)
{
	if (IsA(parsetree, DeclareCursorStmt))
	{
		x->portal_op = PGSM_PORTAL_DECLARE;
		x->portal_name = ((DeclareCursorStmt *) parsetree)->portalname;
	}
	else if (IsA(parsetree, FetchStmt))
	{
		x->portal_op = PGSM_PORTAL_FETCH;
		x->portal_name = ((FetchStmt *) parsetree)->portalname;
	}
	else if (IsA(parsetree, ClosePortalStmt))
	{
		x->portal_op = PGSM_PORTAL_CLOSE;
		x->portal_name = ((ClosePortalStmt *) parsetree)->portalname;
	}
}

/*
 * A utility statement's id when it arrives without one: a SQL-language
 * function's (functions.c does not copy the id its parse computed into the
 * statement it runs).  The core's id of a utility statement is a hash of its
 * text; this is the same hash, so the statement has one id everywhere.
 * Subcommands (those a CREATE TABLE or ALTER TABLE runs for itself) stay
 * without: they are part of their statement, not rows of their own.
 */
static uint64
utility_queryid(PlannedStmt *pstmt, const char *queryString,
				ProcessUtilityContext context)
{
	int			location = pstmt->stmt_location;
	int			len = pstmt->stmt_len;
	const char *sql;
	uint64		id;

	if (context == PROCESS_UTILITY_SUBCOMMAND || queryString == NULL || !IsQueryIdEnabled())
		return UINT64CONST(0);
	sql = CleanQuerytext(queryString, &location, &len);
	id = DatumGetUInt64(hash_any_extended((const unsigned char *) sql, len, 0));
	return id != UINT64CONST(0) ? id : UINT64CONST(2);
}

static uint64
utility_rows(QueryCompletion *qc)
{
	if (qc == NULL)
		return 0;
	switch (qc->commandTag)
	{
		case CMDTAG_COPY:
		case CMDTAG_FETCH:
		case CMDTAG_SELECT:
		case CMDTAG_REFRESH_MATERIALIZED_VIEW:
			return qc->nprocessed;
		default:
			return 0;
	}
}

static void
run_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
			ProcessUtilityContext context, ParamListInfo params,
			QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc,
			bool nest)
{
	if (nest)
		pgsm_nesting++;
	PG_TRY();
	{
		if (prev_ProcessUtility)
			prev_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
									queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		if (nest)
			pgsm_nesting--;
	}
	PG_END_TRY();
}

static void
pgsm_ProcessUtility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
					ProcessUtilityContext context, ParamListInfo params,
					QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;
	uint64		queryid = pstmt->queryId;
	bool		prepare_family = is_prepare_family(parsetree);
	instr_time	start,
				duration;
	BufferUsage bufusage_start = pgBufferUsage,
				bufusage;
	WalUsage	walusage_start = pgWalUsage,
				walusage;
	struct rusage ru_start;
	bool		cpu = pgsm_track_cpu_time;
	PgsmExecution x;

	if (pgsm_nesting == 0 && !prepare_family)
	{
		set_top(queryid, CMD_UTILITY, queryString, pstmt->stmt_location, pstmt->stmt_len);
		pgsm_top_explain = IsA(parsetree, ExplainStmt);
	}
	if (pgsm_track_utility && !prepare_family && queryid == UINT64CONST(0) &&
		pgsm_enabled(pgsm_nesting))
		queryid = utility_queryid(pstmt, queryString, context);
	if (!pgsm_track_utility || prepare_family || queryid == UINT64CONST(0) ||
		!pgsm_enabled(pgsm_nesting))
	{
		run_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv,
					dest, qc, !prepare_family);
		return;
	}

	if (cpu)
		getrusage(PGSM_RUSAGE_WHO, &ru_start);
	INSTR_TIME_SET_CURRENT(start);
	run_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv,
				dest, qc, true);
	INSTR_TIME_SET_CURRENT(duration);
	INSTR_TIME_SUBTRACT(duration, start);

	memset(&x, 0, sizeof(x));
	set_context(&x, queryid);
	x.cmd_type = CMD_UTILITY;
	x.exec_ms = INSTR_TIME_GET_MILLISEC(duration);
	x.delta.calls = 1;
	x.delta.rows = utility_rows(qc);
	memset(&bufusage, 0, sizeof(bufusage));
	BufferUsageAccumDiff(&bufusage, &pgBufferUsage, &bufusage_start);
	add_buffers(&x.delta, &bufusage);
	memset(&walusage, 0, sizeof(walusage));
	WalUsageAccumDiff(&walusage, &pgWalUsage, &walusage_start);
	add_wal(&x.delta, &walusage);
	if (cpu)
		add_cpu(&x.delta, &ru_start);
	x.source_text = queryString;
	x.stmt_location = pstmt->stmt_location;
	x.stmt_len = pstmt->stmt_len;
	x.secret_constants = has_secret_constants(parsetree);
	set_portal(&x, parsetree);
	store_noting_top(&x);
	if (pgsm_nesting == 0)
		pgsm_top_source = NULL; /* its text may go away now */
}

/*
 * Errors and warnings, each kind in a row of its own beside the statement's
 * (capture.c keys it).  An ERROR ends the statement: it counts as a call of
 * the error row.  A WARNING counts as a call of the warning row, as
 * upstream; the statement's own call is counted in its row when it ends.
 */
static void
pgsm_emit_log(ErrorData *edata)
{
	PgsmExecution x;
	uint64		queryid;

	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
	/* the SQL scanner, run again by text.c, repeats what the parser said already */
	if (pgsm_scanning)
	{
		edata->output_to_client = false;
		edata->output_to_server = false;
		return;
	}

	if (pgsm_in_store || edata->elevel < WARNING || edata->elevel > ERROR ||
		debug_query_string == NULL || MyProc == NULL || !IsUnderPostmaster ||
		!IsNormalProcessingMode() || !pgsm_enabled(0) || proc_exit_inprogress)
		return;
	queryid = pgstat_get_my_query_id();
	memset(&x, 0, sizeof(x));
	/* parse analysis set a query id: the parser read the whole text of this message */
	x.text_parsed = queryid != UINT64CONST(0);
	if (queryid == UINT64CONST(0))
		queryid = pgsm_hash_bytes(debug_query_string, strlen(debug_query_string));

	x.queryid = queryid;
	x.toplevel = true;
	/* the role that sent the statement, also inside a SECURITY DEFINER function */
	x.userid = GetOuterUserId();
	if (pgsm_top_stored && pgsm_top_stored_queryid == queryid)
	{
		/* an error after the statement was stored (at commit, say) is not another call */
		x.cmd_type = pgsm_top_stored_cmd_type;
		x.delta.calls = edata->elevel < ERROR ? 1 : 0;
	}
	else
	{
		x.cmd_type = queryid == pgsm_top_queryid ? pgsm_top_cmd_type : 0;
		x.delta.calls = 1;
	}
	x.source_text = debug_query_string;
	x.stmt_location = -1;
	x.elevel = edata->elevel;
	x.sqlcode = edata->sqlerrcode;
	x.message = edata->message;

	x.in_error_report = true;
	pgsm_capture(&x);
}

void
pgsm_install_hooks(void)
{
	prev_planner_hook = planner_hook;
	planner_hook = pgsm_planner;
	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = pgsm_ExecutorStart;
	prev_ExecutorRun = ExecutorRun_hook;
	ExecutorRun_hook = pgsm_ExecutorRun;
	prev_ExecutorFinish = ExecutorFinish_hook;
	ExecutorFinish_hook = pgsm_ExecutorFinish;
	prev_ExecutorEnd = ExecutorEnd_hook;
	ExecutorEnd_hook = pgsm_ExecutorEnd;
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = pgsm_ProcessUtility;
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = pgsm_emit_log;
	RegisterXactCallback(forget_top_at_abort, NULL);
}
