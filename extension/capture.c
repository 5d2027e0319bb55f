/*-------------------------------------------------------------------------
 *
 * capture.c
 *		Turn one execution, as the hooks measured it, into what the store
 *		keeps: the entry key (bucket aside), and for a new entry its texts
 *		(statement, top-level statement, comments, plan, message,
 *		application name, role and database names, relations) with their
 *		limits applied.
 *
 * The usual case, an entry that exists already, costs one key build and
 * the store's fast path; texts are prepared only when an entry is made.
 *
 * Whose statement is it: an executor statement counts under the role and
 * application name current when it started (inside a SECURITY DEFINER
 * function, the function's owner; a set_config() it runs does not move
 * it), a utility statement under those current when it ends (SET ROLE
 * counts under the role it set, as upstream), and a row made by an error
 * or warning report under the role of the top-level statement the client
 * sent.  A nested row whose role is not the top-level statement's does not
 * keep the top-level text: the owner of a definer function must not read
 * its callers' statements.
 *
 *-------------------------------------------------------------------------
 */
#include "pgsm.h"

#include "access/xact.h"
#include "commands/dbcommands.h"
#include "common/hashfn.h"
#include "libpq/libpq-be.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/guc.h"
#include "utils/memutils.h"

static MemoryContext pgsm_capture_cxt = NULL;

/*
 * Set while this backend makes an entry, the only part of storing that can
 * raise an error: an error report arriving meanwhile is not recorded.
 */
bool		pgsm_in_store = false;

/* ---------------------------------------------------------------- the key */

/*
 * The client's address, for keys; the same for the whole life of a backend.
 * A Unix-socket client, or a process without one (a background worker), is
 * 127.0.0.1 as upstream shows it: its rows merge with loopback TCP ones, and
 * readers that need an address (PMM) always get one.
 */
static void
client_of(PgsmKey *key)
{
	static const uint8 loopback[4] = {127, 0, 0, 1};
	int			family = MyProcPort ? MyProcPort->raddr.addr.ss_family : AF_UNIX;

	if (family == AF_INET6)
	{
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &MyProcPort->raddr.addr;

		key->client_family = AF_INET6;
		memcpy(key->client_addr, &sin6->sin6_addr, 16);
		return;
	}
	key->client_family = AF_INET;
	if (family == AF_INET)
		memcpy(key->client_addr, &((struct sockaddr_in *) &MyProcPort->raddr.addr)->sin_addr, 4);
	else
		memcpy(key->client_addr, loopback, 4);
}

/*
 * The application names this backend ran under lately, each copied with its
 * hash: a statement counts under the name it started with, which a
 * set_config() it runs may have replaced by the time it is stored.  A few
 * are kept, for statements nested in one another that each change it; for a
 * name no longer kept, the current one is used.
 */
#define PGSM_APPNAMES 4

typedef struct PgsmAppName
{
	uint64		hash;			/* never 0, which means none */
	char	   *name;			/* in TopMemoryContext */
} PgsmAppName;

static PgsmAppName pgsm_appnames[PGSM_APPNAMES];
static int	pgsm_appname_current = -1;

/* the current application name, copied again only when it changed */
static const PgsmAppName *
appname_now(void)
{
	const char *app = application_name ? application_name : "";
	PgsmAppName *cur;
	char	   *copy;

	if (pgsm_appname_current >= 0 &&
		strcmp(app, pgsm_appnames[pgsm_appname_current].name) == 0)
		return &pgsm_appnames[pgsm_appname_current];
	copy = MemoryContextStrdup(TopMemoryContext, app);
	pgsm_appname_current = (pgsm_appname_current + 1) % PGSM_APPNAMES;
	cur = &pgsm_appnames[pgsm_appname_current];
	if (cur->name != NULL)
		pfree(cur->name);
	cur->name = copy;
	cur->hash = pgsm_hash_bytes(app, strlen(app));
	if (cur->hash == 0)
		cur->hash = 1;
	return cur;
}

/* the name of a recent hash, NULL if it is no longer kept */
static const char *
appname_of(uint64 hash)
{
	int			i;

	for (i = 0; i < PGSM_APPNAMES; i++)
		if (pgsm_appnames[i].name != NULL && pgsm_appnames[i].hash == hash)
			return pgsm_appnames[i].name;
	return NULL;
}

/*
 * The role and application name a statement starting now counts under.
 * With pgsm_track_application_names off, no name, as upstream 2.3.
 */
void
pgsm_who_now(PgsmWho *who)
{
	who->userid = GetUserId();
	who->appname_hash = pgsm_track_application_names ? appname_now()->hash : 0;
}

static void
build_key(PgsmKey *key, const PgsmExecution *x)
{
	static PgsmKey client;
	static bool client_known = false;
	PgsmWho		who;

	if (!client_known)
	{
		memset(&client, 0, sizeof(client));
		client_of(&client);
		client_known = true;
	}
	memcpy(key, &client, sizeof(*key));
	key->queryid = x->queryid;
	key->top_queryid = x->top_queryid;
	key->planid = x->planid;
	key->toplevel = x->toplevel;
	if (x->started_known)
		who = x->started_by;
	else
		pgsm_who_now(&who);
	key->userid = OidIsValid(x->userid) ? x->userid : who.userid;
	key->dbid = MyDatabaseId;
	key->appname_hash = who.appname_hash;
	/* an error or a warning has a row of its own, apart from the statement's runs */
	key->kind = x->elevel >= ERROR ? PGSM_KIND_ERROR :
		x->elevel > 0 ? PGSM_KIND_WARNING : PGSM_KIND_STATEMENT;
}

/*
 * The application name of a new entry, NULL for none.  A name changed too
 * often since the statement started is no longer kept: the key takes the
 * current one.
 */
static const char *
key_appname(PgsmKey *key)
{
	const PgsmAppName *now;
	const char *name;

	if (key->appname_hash == 0)
		return NULL;
	name = appname_of(key->appname_hash);
	if (name != NULL)
		return name;
	now = appname_now();
	key->appname_hash = now->hash;
	return now->name;
}

/* ---------------------------------------------------------------- texts */

/* the distinct relations of a range table */
static void
collect_relids(const List *rtable, Oid **relids, int *nrelids)
{
	ListCell   *lc;
	int			n = 0;
	Oid		   *ids;

	*relids = NULL;
	*nrelids = 0;
	if (rtable == NIL)
		return;
	ids = palloc(sizeof(Oid) * list_length(rtable));
	foreach(lc, rtable)
	{
		RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);
		int			i;

		if (rte->rtekind != RTE_RELATION || !OidIsValid(rte->relid))
			continue;
		for (i = 0; i < n && ids[i] != rte->relid; i++)
			;
		if (i == n)
			ids[n++] = rte->relid;
	}
	*relids = ids;
	*nrelids = n;
}

/* the statement's comments, at most PGSM_COMMENTS_MAX_LEN bytes */
static char *
bounded_comments(const char *stmt, int len)
{
	char	   *comments = pgsm_extract_comments_of(stmt, len);
	int			cut_len;

	if (comments == NULL)
		return NULL;
	return pgsm_cut_text(comments, strlen(comments), PGSM_COMMENTS_MAX_LEN, &cut_len);
}

/*
 * The top-level statement's text, for a nested row: only when the nested
 * statement runs as the role that sent it.
 */
static void
prepare_top_text(PgsmNewTexts *t, const PgsmExecution *x, Oid userid)
{
	int			top_len;
	char	   *top;

	if (x->top_source == NULL || x->top_userid != userid)
		return;
	top = pgsm_statement_text(x->top_source, x->top_location, x->top_len, &top_len);
	if (top)
		t->top_query = pgsm_cut_text(top, top_len, pgsm_query_max_len, &t->top_query_len);
}

/*
 * One name, remembered for the last OID asked: entries are made often for
 * the same role and database, and the catalog is read only in a transaction
 * that can read it, never in an error report.  NULL when unknown.
 */
typedef char *(*PgsmNameFn) (Oid oid);

typedef struct PgsmNameMemo
{
	Oid			oid;
	char		name[NAMEDATALEN];
} PgsmNameMemo;

static const char *
memo_name(PgsmNameMemo *memo, Oid oid, PgsmNameFn lookup, bool can_read)
{
	char	   *name;

	if (!OidIsValid(oid))
		return NULL;
	if (memo->oid == oid)
		return memo->name;
	if (!can_read || (name = lookup(oid)) == NULL)
		return NULL;
	strlcpy(memo->name, name, NAMEDATALEN);
	memo->oid = oid;
	return memo->name;
}

static char *
role_name(Oid oid)
{
	return GetUserNameFromId(oid, true);
}

/*
 * The names of a new entry's role and database, "role\0database", kept with
 * its texts so that its row keeps them after a DROP ROLE or DROP DATABASE
 * (the view reads the catalog first: a rename shows).
 */
static void
prepare_names(PgsmNewTexts *t, const PgsmExecution *x, Oid userid)
{
	static PgsmNameMemo role = {InvalidOid};
	static PgsmNameMemo database = {InvalidOid};
	bool		can_read = !x->in_error_report && IsTransactionState();
	const char *r = memo_name(&role, userid, role_name, can_read);
	const char *d = memo_name(&database, MyDatabaseId, get_database_name, can_read);
	int			rlen;

	if (r == NULL && d == NULL)
		return;
	r = r ? r : "";
	d = d ? d : "";
	rlen = strlen(r);
	t->names_len = rlen + 1 + strlen(d);
	t->names = palloc(t->names_len + 1);
	memcpy(t->names, r, rlen + 1);
	strcpy(t->names + rlen + 1, d);
}

/*
 * Whether the SQL scanner may run on a statement's text.  Inside an error
 * report it must not raise an error (it could not be caught there): it is
 * run only on a text the parser read already in this message, which it
 * reads again without error unless its settings changed since
 * (standard_conforming_strings, backslash_quote), and those matter only
 * for a text with a backslash.
 */
static bool
scannable(const PgsmExecution *x, const char *stmt, int len)
{
	if (stmt == NULL)
		return false;
	if (!x->in_error_report)
		return true;
	return x->text_parsed && memchr(stmt, '\\', len) == NULL;
}

/*
 * The pgsm_query_id of a row.  An error's or a warning's row has its own,
 * derived from its text's and its kind, so that readers keeping one row per
 * pgsm_query_id (PMM) see it apart from the statement's successful runs.  A
 * text the scanner may not read is hashed as it is.
 */
static uint64
row_query_id(const PgsmExecution *x, const char *stmt, int len, bool scan, uint8 kind)
{
	uint64		id;

	if (!pgsm_enable_pgsm_query_id || stmt == NULL)
		return 0;
	if (!scan)
		id = pgsm_hash_bytes(stmt, len);
	else if (x->cmd_type == CMD_UTILITY && !x->secret_constants)
		id = pgsm_utility_query_id(stmt, len);
	else
		id = pgsm_text_query_id(stmt, len);
	if (kind != PGSM_KIND_STATEMENT)
		id = hash_combine64(id, kind);
	return id;
}

/*
 * Everything a new entry stores.  An error report's text is scanned only
 * when that cannot raise an error (scannable()); otherwise it is kept raw.
 */
static void
prepare_texts(PgsmNewTexts *t, const PgsmExecution *x, PgsmKey *key)
{
	int			len;
	char	   *stmt = pgsm_statement_text(x->source_text, x->stmt_location,
										   x->stmt_len, &len);
	bool		scan = scannable(x, stmt, len);
	bool		utility = x->cmd_type == CMD_UTILITY;

	memset(t, 0, sizeof(*t));
	t->pgsm_query_id = row_query_id(x, stmt, len, scan, key->kind);
	if (pgsm_extract_comments && scan)
		t->comments = bounded_comments(stmt, len);
	/*
	 * A utility statement's constants are its meaning (a DO block's body):
	 * never normalized, unless they may be secrets (a password): then always
	 */
	if (scan && (x->secret_constants || (pgsm_normalized_query && !utility)))
		stmt = pgsm_normalize(stmt, len, &len);
	if (stmt)
	{
		t->query_cut = len > pgsm_query_max_len;
		t->query = pgsm_cut_text(stmt, len, pgsm_query_max_len, &t->query_len);
	}
	prepare_top_text(t, x, key->userid);
	if (x->plan_text)
		t->plan = pgsm_cut_text(x->plan_text, strlen(x->plan_text),
								pgsm_query_max_len, &t->plan_len);
	if (x->elevel > 0 && x->message)
		t->message = pgsm_cut_text(x->message, strlen(x->message),
								   pgsm_query_max_len, &t->message_len);
	t->appname = key_appname(key);
	prepare_names(t, x, key->userid);
	collect_relids(x->rtable, &t->relids, &t->nrelids);
}

/* ---------------------------------------------------------------- fragments */

/*
 * Whether a statement text is a fragment, remembered for the last text
 * seen: a row-by-row modify runs the same text once per row.
 */
static bool
tag_of(const char *stmt, int len, PgsmTag *tag)
{
	static char *last = NULL;
	static int	last_len = -1;
	static bool last_is = false;
	static PgsmTag last_tag;
	char	   *copy;

	if (len == last_len && last != NULL && memcmp(stmt, last, len) == 0)
	{
		*tag = last_tag;
		return last_is;
	}
	copy = MemoryContextAlloc(TopMemoryContext, len + 1);
	memcpy(copy, stmt, len);
	last_is = pgsm_text_tag(stmt, len, &last_tag);
	if (last != NULL)
		pfree(last);
	last = copy;
	last_len = len;
	*tag = last_tag;
	return last_is;
}

static void
fragment_delta(PgsmFragmentDelta *d, const PgsmExecution *x)
{
	d->calls = x->delta.calls;
	d->rows = x->delta.rows;
	d->total_exec_time = d->min_exec_time = d->max_exec_time = x->exec_ms;
	d->shared_blks_hit = x->delta.shared_blks_hit;
	d->shared_blks_read = x->delta.shared_blks_read;
	d->temp_blks_written = x->delta.temp_blks_written;
	d->wal_bytes = x->delta.wal_bytes;
}

/*
 * Whether a statement's text ends with a comment, the first sign of a tag:
 * a look at its last bytes, the one cost every statement pays here.
 */
static bool
ends_with_comment(const PgsmExecution *x)
{
	const char *s = x->source_text;
	size_t		n;

	if (s == NULL)
		return false;
	n = (x->stmt_location >= 0 && x->stmt_len > 0) ?
		(size_t) (x->stmt_location + x->stmt_len) : strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == ';' ||
					 s[n - 1] == '\t' || s[n - 1] == '\r'))
		n--;
	return n >= 32 && s[n - 1] == '/' && s[n - 2] == '*';
}

/*
 * A shard's part: an execution whose statement ends with a coordinator's
 * tag (or that fetches from or closes a tagged cursor) is also a fragment.
 * The usual statement costs a look at its last bytes.
 */
static void
capture_fragment(const PgsmExecution *x, int64 bucket_start)
{
	PgsmFragmentDelta d;
	PgsmTag		tag;
	char	   *stmt;
	int			len;
	bool		full = false;

	if (x->in_error_report || x->elevel > 0 || x->delta.calls == 0 ||
		(x->portal_op == PGSM_PORTAL_NONE && !ends_with_comment(x)))
		return;
	fragment_delta(&d, x);
	if (x->portal_op == PGSM_PORTAL_FETCH)
	{
		pgsm_fragment_fetch(x->portal_name, &d);
		return;
	}
	if (x->portal_op == PGSM_PORTAL_CLOSE)
		full = pgsm_fragment_close(x->portal_name);
	else
	{
		stmt = pgsm_statement_text(x->source_text, x->stmt_location, x->stmt_len, &len);
		if (stmt == NULL || len < 32 || !tag_of(stmt, len, &tag))
			return;
		if (x->portal_op == PGSM_PORTAL_DECLARE)
			pgsm_fragment_declare(x->portal_name, &tag, stmt, len, bucket_start, &d);
		else
			full = pgsm_fragment_statement(&tag, stmt, len, bucket_start, &d);
	}
	if (full)
		pgsm_wake_worker();
}

/* ---------------------------------------------------------------- capture */

static MemoryContext
capture_context(void)
{
	if (pgsm_capture_cxt == NULL)
		pgsm_capture_cxt = AllocSetContextCreate(TopMemoryContext, "pg_stat_monitor capture",
												 ALLOCSET_DEFAULT_SIZES);
	return pgsm_capture_cxt;
}

/* the slow path: prepare the texts, then let the store make the entry */
static void
capture_new(PgsmKey *key, PgsmExecution *x)
{
	MemoryContext old = MemoryContextSwitchTo(capture_context());
	PgsmNewTexts t;

	prepare_texts(&t, x, key);
	pgsm_store_new(key, x, &t);
	MemoryContextSwitchTo(old);
	MemoryContextReset(capture_context());
}

/*
 * Record one execution.  The usual case (the entry exists, no message to
 * record) is the store's fast path: one lookup and one spinlocked update.
 */
void
pgsm_capture(PgsmExecution *x)
{
	PgsmKey		key;

	if (!pgsm_store_ready())
		return;
	/* an error raised while this backend reads the store must not wait on it */
	if (pgsm_store_locked_by_me())
	{
		pgsm_count_dropped(x->delta.calls, x->exec_ms);
		return;
	}
	build_key(&key, x);
	if (x->elevel == 0 && pgsm_store_add(&key, x))
	{
		capture_fragment(x, key.bucket_start);
		return;
	}
	pgsm_in_store = true;
	PG_TRY();
	{
		capture_new(&key, x);
	}
	PG_CATCH();
	{
		/* out of memory preparing the texts: the store is unchanged, count the call */
		pgsm_in_store = false;
		pgsm_count_dropped(x->delta.calls, x->exec_ms);
		PG_RE_THROW();
	}
	PG_END_TRY();
	pgsm_in_store = false;
	capture_fragment(x, key.bucket_start);
}
