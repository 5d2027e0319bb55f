/*-------------------------------------------------------------------------
 *
 * fdwtag.c
 *		The coordinator's side of distributed statistics: after planning,
 *		append to every remote SQL that postgres_fdw keeps in the plan the
 *		tag that lets the shard attribute it,
 *			 /\*pgsm_coord='<node name>',pgsm_qid='<parent queryid>'*\/
 *		(sqlcommenter form, keys sorted; the parent queryid is the top-level
 *		statement's, signed decimal).
 *
 * Where postgres_fdw keeps its SQL is PostgreSQL 15's private-list layout
 * of contrib/postgres_fdw (a fact of that release, not an API):
 *	- ForeignScan.fdw_private, index 0: the SQL of a scan, a pushed-down
 *	  join or aggregate, or a direct UPDATE/DELETE (a String node);
 *	- ModifyTable.fdwPrivLists, one list per result relation, index 0: the
 *	  SQL of a row-by-row INSERT/UPDATE/DELETE (a String node).
 * The tag is appended, never prepended: a batch INSERT rebuilds its text
 * from the length of the first VALUES clause, counted from the start.
 * Only scans and result relations whose foreign server uses the
 * postgres_fdw wrapper are touched; a plan whose range table holds no
 * foreign table costs one pass over the range table.
 *
 * INSERTs routed into foreign partitions and COPY build their SQL when
 * they execute: they arrive untagged.  A cached plan keeps the tag of the
 * statement that planned it.
 *
 *-------------------------------------------------------------------------
 */
#include "pgsm.h"

#include "catalog/pg_class_d.h"
#include "foreign/foreign.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/plannodes.h"
#include "parser/parsetree.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"

/* the name a tag carries: pgsm_node_name, else cluster_name; NULL if none or unusable */
static const char *
node_name(void)
{
	const char *name = (pgsm_node_name && pgsm_node_name[0]) ? pgsm_node_name : cluster_name;

	if (name == NULL || name[0] == '\0' || !pgsm_valid_node_name(name))
		return NULL;
	return name;
}

static bool
has_foreign_table(const List *rtable)
{
	ListCell   *lc;

	foreach(lc, rtable)
	{
		RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);

		if (rte->rtekind == RTE_RELATION && rte->relkind == RELKIND_FOREIGN_TABLE)
			return true;
	}
	return false;
}

static bool
is_postgres_fdw_server(Oid serverid)
{
	ForeignServer *server;

	if (!OidIsValid(serverid))
		return false;
	server = GetForeignServer(serverid);
	return strcmp(GetForeignDataWrapper(server->fdwid)->fdwname, "postgres_fdw") == 0;
}

/* what a walk does to each remote SQL: append the tag, count stale tags, or replace them */
typedef enum PgsmTagMode
{
	PGSM_TAG_APPEND,
	PGSM_TAG_CHECK,
	PGSM_TAG_REPLACE
} PgsmTagMode;

typedef struct PgsmTagWalk
{
	PgsmTagMode mode;
	const char *tag;
	int			stale;			/* CHECK: remote SQL whose tag is not 'tag' */
} PgsmTagWalk;

/*
 * Where the tag this file appended starts in a remote SQL, or -1: the last
 * " /\*pgsm_coord=" that opens the one comment ending the text (never a
 * look-alike inside a literal of an untagged text).
 */
static int
tag_start(const char *sql)
{
	const char *at = strstr(sql, " /*pgsm_coord=");
	const char *next;
	size_t		n;

	if (at == NULL)
		return -1;
	while ((next = strstr(at + 1, " /*pgsm_coord=")) != NULL)
		at = next;
	n = strlen(at);
	if (n < 4 || strcmp(at + n - 3, "'*/") != 0 || strstr(at, "*/") != at + n - 2)
		return -1;
	return (int) (at - sql);
}

/* do the walk's work on the String node at the head of a private list */
static void
tag_sql(List *private, PgsmTagWalk *w)
{
	Node	   *head;
	String	   *sql;
	int			start;

	if (private == NIL)
		return;
	head = linitial(private);
	if (head == NULL || !IsA(head, String))
		return;
	sql = (String *) head;
	if (w->mode == PGSM_TAG_APPEND)
	{
		sql->sval = psprintf("%s %s", sql->sval, w->tag);
		return;
	}
	start = tag_start(sql->sval);
	if (start < 0)
		return;
	if (w->mode == PGSM_TAG_CHECK)
		w->stale += strcmp(sql->sval + start + 1, w->tag) != 0;
	else
		sql->sval = psprintf("%.*s %s", start, sql->sval, w->tag);
}

static void
tag_modify(ModifyTable *mt, const List *rtable, PgsmTagWalk *w)
{
	ListCell   *rel,
			   *priv;

	forboth(rel, mt->resultRelations, priv, mt->fdwPrivLists)
	{
		RangeTblEntry *rte = rt_fetch(lfirst_int(rel), rtable);

		if (lfirst(priv) == NIL || rte->relkind != RELKIND_FOREIGN_TABLE)
			continue;
		if (is_postgres_fdw_server(GetForeignTable(rte->relid)->serverid))
			tag_sql(lfirst(priv), w);
	}
}

static void tag_plan(Plan *plan, const List *rtable, PgsmTagWalk *w);

static void
tag_plans(List *plans, const List *rtable, PgsmTagWalk *w)
{
	ListCell   *lc;

	foreach(lc, plans)
		tag_plan(lfirst(lc), rtable, w);
}

/* every node of a plan tree that can hold a foreign scan or a modify */
static void
tag_plan(Plan *plan, const List *rtable, PgsmTagWalk *w)
{
	if (plan == NULL)
		return;
	check_stack_depth();
	switch (nodeTag(plan))
	{
		case T_ForeignScan:
			if (is_postgres_fdw_server(((ForeignScan *) plan)->fs_server))
				tag_sql(((ForeignScan *) plan)->fdw_private, w);
			break;
		case T_ModifyTable:
			tag_modify((ModifyTable *) plan, rtable, w);
			break;
		case T_Append:
			tag_plans(((Append *) plan)->appendplans, rtable, w);
			break;
		case T_MergeAppend:
			tag_plans(((MergeAppend *) plan)->mergeplans, rtable, w);
			break;
		case T_BitmapAnd:
			tag_plans(((BitmapAnd *) plan)->bitmapplans, rtable, w);
			break;
		case T_BitmapOr:
			tag_plans(((BitmapOr *) plan)->bitmapplans, rtable, w);
			break;
		case T_SubqueryScan:
			tag_plan(((SubqueryScan *) plan)->subplan, rtable, w);
			break;
		case T_CustomScan:
			tag_plans(((CustomScan *) plan)->custom_plans, rtable, w);
			break;
		default:
			break;
	}
	tag_plan(plan->lefttree, rtable, w);
	tag_plan(plan->righttree, rtable, w);
}

/* the tag for a plan's remote SQL, or NULL when it has none to carry (no foreign table, no name) */
static char *
tag_for(const PlannedStmt *stmt, uint64 parent)
{
	const char *name;

	if (stmt == NULL || stmt->commandType == CMD_UTILITY || !has_foreign_table(stmt->rtable))
		return NULL;
	name = node_name();
	if (name == NULL || parent == UINT64CONST(0))
		return NULL;
	return psprintf("/*pgsm_coord='%s',pgsm_qid='" INT64_FORMAT "'*/", name, (int64) parent);
}

static void
walk(PlannedStmt *stmt, PgsmTagWalk *w)
{
	tag_plan(stmt->planTree, stmt->rtable, w);
	tag_plans(stmt->subplans, stmt->rtable, w);
}

/* tag the remote SQL of a plan made for a statement whose top-level queryid is 'parent' */
void
pgsm_fdw_tag(PlannedStmt *stmt, uint64 parent)
{
	PgsmTagWalk w = {PGSM_TAG_APPEND, NULL, 0};

	w.tag = tag_for(stmt, parent);
	if (w.tag != NULL)
		walk(stmt, &w);
}

/*
 * A plan about to run for top-level statement 'parent': the same plan if
 * its tags name that statement, else a copy whose tags do.  A nested
 * statement's plan is kept by its function (plpgsql, SQL functions) and
 * runs again for other top-level statements; the copy lives as long as
 * the current memory context, which is the query's.
 */
PlannedStmt *
pgsm_fdw_retag(PlannedStmt *stmt, uint64 parent)
{
	PgsmTagWalk w = {PGSM_TAG_CHECK, NULL, 0};

	w.tag = tag_for(stmt, parent);
	if (w.tag == NULL)
		return stmt;
	walk(stmt, &w);
	if (w.stale == 0)
		return stmt;
	stmt = copyObject(stmt);
	w.mode = PGSM_TAG_REPLACE;
	walk(stmt, &w);
	return stmt;
}
