/*-------------------------------------------------------------------------
 *
 * fragments.c
 *		The shard's side of distributed statistics: a fixed table of the
 *		fragments this node ran for coordinators, keyed by (coordinator,
 *		parent queryid, fragment id, database, user, bucket, epoch), which
 *		the sender drains (handoff.c) and sends to each coordinator.
 *
 * A fragment is a statement whose text ends with a coordinator's tag
 * (text.c, pgsm_text_tag).  One fragment call is one remote statement
 * execution: a direct UPDATE/DELETE, one execution of a row-by-row
 * modify, or a whole pushed-down scan, which arrives as
 *		DECLARE c1 CURSOR FOR <query + tag>; FETCH 100 FROM c1; ...; CLOSE c1
 * and counts once, with the rows and time of all its FETCHes: cursor names
 * repeat across parents, so only the DECLARE's tag attributes them (the
 * open tagged cursors of this backend are remembered by name until CLOSE
 * or the end of the transaction).  The fragment id is the statement's
 * text-based id (pgsm_query_id: comments, hence the tag, do not count),
 * the same for every parent and every cursor name.
 *
 * Locking
 *	frag->lock (an LWLock of its own) protects the table's structure, the
 *	texts and frag->epoch.  Recording takes it SHARED to find an entry and
 *	adds under the entry's spinlock; a new entry takes it EXCLUSIVE.  The
 *	sender freezes the current entries by raising frag->epoch (EXCLUSIVE):
 *	later calls make new entries, so what it copies never changes, and it
 *	removes them only when its transaction commits.  One drain at a time in
 *	the whole cluster (frag->drain_pid, until that transaction ends): a
 *	second one, from another database or the same transaction, would copy
 *	the same entries again.  frag->mutex (a
 *	spinlock) protects the dropped-calls counter.
 *
 *-------------------------------------------------------------------------
 */
#include "pgsm.h"

#include "access/xact.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

typedef struct PgsmFragmentShared
{
	LWLock	   *lock;
	int64		epoch;			/* lock: entries of earlier epochs take no writes */
	int64		last_base;		/* lock: the highest wire id base given */
	int			drain_pid;		/* lock: the backend whose drain is not ended yet */
	slock_t		mutex;			/* protects dropped_calls */
	int64		dropped_calls;	/* calls that found no room */
} PgsmFragmentShared;

static PgsmFragmentShared *frag = NULL;
static HTAB *frag_table = NULL;

/* this backend's open tagged cursors */
typedef struct PgsmOpenCursor
{
	char		name[NAMEDATALEN];
	PgsmTag		tag;
	uint64		fragment_queryid;
	char		text[PGSM_FRAGMENT_TEXT_LEN];
	int64		bucket_start;
	PgsmFragmentDelta delta;
	struct PgsmOpenCursor *next;
} PgsmOpenCursor;

static PgsmOpenCursor *pgsm_cursors = NULL;
static bool pgsm_xact_callback = false;
static bool pgsm_draining = false;	/* this transaction froze the table */

/* ---------------------------------------------------------------- shared memory */

Size
pgsm_fragments_memsize(void)
{
	return add_size(MAXALIGN(sizeof(PgsmFragmentShared)),
					hash_estimate_size(pgsm_sdm_max_fragments, sizeof(PgsmFragment)));
}

void
pgsm_fragments_request(void)
{
	RequestNamedLWLockTranche("pg_stat_monitor fragments", 1);
}

#define PGSM_WIRE_SEQ_BITS 20	/* above pgsm_sdm_max_fragments' maximum */

/* the wall clock in centiseconds since 2000: a wire id base is at least this */
static int64
clock_base(void)
{
	return Max((int64) 1, (int64) (GetCurrentTimestamp() / 10000));
}

/* create or attach; caller holds AddinShmemInitLock */
void
pgsm_fragments_startup(void)
{
	HASHCTL		info;
	bool		found;

	frag = ShmemInitStruct("pg_stat_monitor fragments", sizeof(PgsmFragmentShared), &found);
	if (!found)
	{
		frag->lock = &(GetNamedLWLockTranche("pg_stat_monitor fragments"))->lock;
		frag->epoch = 1;
		frag->last_base = 0;
		frag->drain_pid = 0;
		SpinLockInit(&frag->mutex);
		frag->dropped_calls = 0;
	}
	info.keysize = sizeof(PgsmFragmentKey);
	info.entrysize = sizeof(PgsmFragment);
	frag_table = ShmemInitHash("pg_stat_monitor fragment entries",
							   pgsm_sdm_max_fragments, pgsm_sdm_max_fragments,
							   &info, HASH_ELEM | HASH_BLOBS);
}

/* ---------------------------------------------------------------- recording */

static void
count_dropped(int64 calls)
{
	SpinLockAcquire(&frag->mutex);
	frag->dropped_calls += calls;
	SpinLockRelease(&frag->mutex);
}

static void
add_delta(PgsmFragment *f, const PgsmFragmentDelta *d)
{
	SpinLockAcquire(&f->mutex);
	if (f->c.calls == 0 || d->min_exec_time < f->c.min_exec_time)
		f->c.min_exec_time = d->min_exec_time;
	if (f->c.calls == 0 || d->max_exec_time > f->c.max_exec_time)
		f->c.max_exec_time = d->max_exec_time;
	f->c.calls += d->calls;
	f->c.rows += d->rows;
	f->c.total_exec_time += d->total_exec_time;
	f->c.shared_blks_hit += d->shared_blks_hit;
	f->c.shared_blks_read += d->shared_blks_read;
	f->c.temp_blks_written += d->temp_blks_written;
	f->c.wal_bytes += d->wal_bytes;
	SpinLockRelease(&f->mutex);
}

/* a new entry; caller holds the lock EXCLUSIVE.  NULL when the table is full. */
static PgsmFragment *
insert_fragment(const PgsmFragmentKey *key, const char *coordinator, const char *text)
{
	PgsmFragment *f;
	bool		found;
	int			len;

	if (hash_get_num_entries(frag_table) >= pgsm_sdm_max_fragments)
		return NULL;
	f = hash_search(frag_table, key, HASH_ENTER_NULL, &found);
	if (f == NULL || found)
		return f;
	memset((char *) f + sizeof(PgsmFragmentKey), 0, sizeof(PgsmFragment) - sizeof(PgsmFragmentKey));
	SpinLockInit(&f->mutex);
	strlcpy(f->coordinator, coordinator, NAMEDATALEN);
	len = pg_mbcliplen(text, strlen(text), PGSM_FRAGMENT_TEXT_LEN - 1);
	memcpy(f->query, text, len);
	f->query[len] = '\0';
	f->encoding = (uint8) GetDatabaseEncoding();
	return f;
}

/*
 * Add one fragment call.  Returns true when the table is about 90% full,
 * so that the caller wakes the worker to send.
 */
static bool
record(const PgsmTag *tag, uint64 fragment_queryid, int64 bucket_start, const char *text,
	   const PgsmFragmentDelta *d)
{
	PgsmFragmentKey key;
	PgsmFragment *f;
	long		used;

	memset(&key, 0, sizeof(key));
	key.coord_hash = pgsm_hash_bytes(tag->coordinator, strlen(tag->coordinator));
	key.parent_queryid = tag->parent_queryid;
	key.fragment_queryid = (int64) fragment_queryid;
	key.bucket_start = bucket_start;
	key.dbid = MyDatabaseId;
	key.userid = GetUserId();

	LWLockAcquire(frag->lock, LW_SHARED);
	key.epoch = frag->epoch;
	f = hash_search(frag_table, &key, HASH_FIND, NULL);
	if (f != NULL)
		add_delta(f, d);
	LWLockRelease(frag->lock);
	if (f == NULL)
	{
		LWLockAcquire(frag->lock, LW_EXCLUSIVE);
		key.epoch = frag->epoch;
		f = insert_fragment(&key, tag->coordinator, text);
		if (f != NULL)
			add_delta(f, d);
		LWLockRelease(frag->lock);
		if (f == NULL)
			count_dropped(d->calls);
	}
	used = hash_get_num_entries(frag_table);
	return f == NULL || used * 10 >= (long) pgsm_sdm_max_fragments * 9;
}

/* a fragment's text: the statement's own, the tag left out */
static void
fragment_text(char *out, const char *stmt, const PgsmTag *tag)
{
	int			len = tag->tag_start;

	while (len > 0 && (stmt[len - 1] == ' ' || stmt[len - 1] == '\n'))
		len--;
	len = pg_mbcliplen(stmt, len, PGSM_FRAGMENT_TEXT_LEN - 1);
	memcpy(out, stmt, len);
	out[len] = '\0';
}

/* a statement that is a fragment by itself: one call */
bool
pgsm_fragment_statement(const PgsmTag *tag, const char *stmt, int len, int64 bucket_start,
						const PgsmFragmentDelta *d)
{
	char		text[PGSM_FRAGMENT_TEXT_LEN];

	fragment_text(text, stmt, tag);
	return record(tag, pgsm_text_query_id(stmt, len), bucket_start, text, d);
}

/* ---------------------------------------------------------------- cursors */

static PgsmOpenCursor **
find_cursor(const char *name)
{
	PgsmOpenCursor **c;

	for (c = &pgsm_cursors; *c != NULL; c = &(*c)->next)
		if (strcmp((*c)->name, name) == 0)
			return c;
	return NULL;
}

/* record and forget one open cursor */
static bool
close_cursor(PgsmOpenCursor **link)
{
	PgsmOpenCursor *c = *link;
	bool		full;

	*link = c->next;
	c->delta.calls = 1;
	c->delta.min_exec_time = c->delta.max_exec_time = c->delta.total_exec_time;
	full = record(&c->tag, c->fragment_queryid, c->bucket_start, c->text, &c->delta);
	pfree(c);
	return full;
}

/* this backend's drain, if any, has ended with its transaction */
static void
end_drain(void)
{
	LWLockAcquire(frag->lock, LW_EXCLUSIVE);
	if (frag->drain_pid == MyProcPid)
		frag->drain_pid = 0;
	LWLockRelease(frag->lock);
}

/*
 * At the end of a transaction: cursors still open count as closed, and a
 * drain it made is over (released at commit, left for the next at abort).
 */
static void
at_xact_end(XactEvent event, void *arg)
{
	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PARALLEL_COMMIT && event != XACT_EVENT_PARALLEL_ABORT &&
		event != XACT_EVENT_PREPARE)
		return;
	while (pgsm_cursors != NULL)
		(void) close_cursor(&pgsm_cursors);
	if (pgsm_draining)
	{
		end_drain();
		pgsm_draining = false;
	}
}

static void
register_callback(void)
{
	if (!pgsm_xact_callback)
	{
		RegisterXactCallback(at_xact_end, NULL);
		pgsm_xact_callback = true;
	}
}

/* DECLARE of a tagged cursor: remember it by name, with the DECLARE's own cost */
void
pgsm_fragment_declare(const char *name, const PgsmTag *tag, const char *stmt, int len,
					  int64 bucket_start, const PgsmFragmentDelta *d)
{
	PgsmOpenCursor **old = find_cursor(name);
	PgsmOpenCursor *c;
	int			query = pgsm_cursor_query_offset(stmt, len);
	PgsmTag		shifted = *tag;

	if (old != NULL)
		(void) close_cursor(old);
	if (query < 0 || query > tag->tag_start)
		query = 0;
	register_callback();
	c = MemoryContextAllocZero(TopMemoryContext, sizeof(PgsmOpenCursor));
	strlcpy(c->name, name, NAMEDATALEN);
	c->tag = *tag;
	shifted.tag_start = tag->tag_start - query;
	fragment_text(c->text, stmt + query, &shifted);
	c->fragment_queryid = pgsm_text_query_id(stmt + query, len - query);
	c->bucket_start = bucket_start;
	c->delta = *d;
	c->delta.calls = 0;
	c->next = pgsm_cursors;
	pgsm_cursors = c;
}

/* FETCH or MOVE on a cursor: its rows and time, if it is a tagged one */
void
pgsm_fragment_fetch(const char *name, const PgsmFragmentDelta *d)
{
	PgsmOpenCursor **link = find_cursor(name);
	PgsmFragmentDelta *acc;

	if (link == NULL)
		return;
	acc = &(*link)->delta;
	acc->rows += d->rows;
	acc->total_exec_time += d->total_exec_time;
	acc->shared_blks_hit += d->shared_blks_hit;
	acc->shared_blks_read += d->shared_blks_read;
	acc->temp_blks_written += d->temp_blks_written;
	acc->wal_bytes += d->wal_bytes;
}

/* CLOSE of a cursor (NULL: CLOSE ALL): the tagged ones count their call */
bool
pgsm_fragment_close(const char *name)
{
	PgsmOpenCursor **link;
	bool		full = false;

	if (name == NULL)
	{
		while (pgsm_cursors != NULL)
			full |= close_cursor(&pgsm_cursors);
		return full;
	}
	link = find_cursor(name);
	return link != NULL && close_cursor(link);
}

/* ---------------------------------------------------------------- the sender's side */

/* give every entry not frozen before its wire id; caller holds the lock EXCLUSIVE */
static void
number_entries(int64 floor)
{
	HASH_SEQ_STATUS scan;
	PgsmFragment *f;
	int64		base = Max(Max(frag->last_base, floor) + 1, clock_base());
	int64		seq = 0;

	hash_seq_init(&scan, frag_table);
	while ((f = hash_seq_search(&scan)) != NULL)
	{
		if (f->wire_id == 0)
			f->wire_id = (base << PGSM_WIRE_SEQ_BITS) | seq++;
	}
	Assert(seq < ((int64) 1 << PGSM_WIRE_SEQ_BITS));
	frag->last_base = base;
}

/*
 * Close the current entries to writes, each with its wire id above 'floor'
 * (the highest base a drain ever committed, kept by the caller); returns the
 * epoch below which they are.  Waits while another backend's drain has not
 * ended, and refuses a second drain in one transaction: either would copy
 * the same entries.
 */
int64
pgsm_fragments_freeze(int64 floor)
{
	int64		below;
	int			owner;

	register_callback();
	for (;;)
	{
		LWLockAcquire(frag->lock, LW_EXCLUSIVE);
		owner = frag->drain_pid;
		if (owner == 0 || (owner != MyProcPid && BackendPidGetProc(owner) == NULL))
			break;
		LWLockRelease(frag->lock);
		if (owner == MyProcPid)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("the pg_stat_monitor fragment table was drained in this transaction already"),
					 errhint("Commit first: a second drain would read the same entries again.")));
		/* another transaction drains: wait for its end (a short one) */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10L,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	frag->drain_pid = MyProcPid;
	pgsm_draining = true;
	number_entries(floor);
	below = ++frag->epoch;
	LWLockRelease(frag->lock);
	return below;
}

/* copies of the entries of epochs before 'below' */
List *
pgsm_fragments_copy(int64 below)
{
	HASH_SEQ_STATUS scan;
	PgsmFragment *f;
	List	   *out = NIL;

	LWLockAcquire(frag->lock, LW_SHARED);
	hash_seq_init(&scan, frag_table);
	while ((f = hash_seq_search(&scan)) != NULL)
	{
		PgsmFragment *copy;

		if (f->key.epoch >= below)
			continue;
		copy = palloc(sizeof(PgsmFragment));
		SpinLockAcquire(&f->mutex);
		memcpy(copy, f, sizeof(PgsmFragment));
		SpinLockRelease(&f->mutex);
		out = lappend(out, copy);
	}
	LWLockRelease(frag->lock);
	return out;
}

/* at the commit of a drain: remove what it copied.  Must not fail: no allocation. */
void
pgsm_fragments_release(int64 below)
{
	HASH_SEQ_STATUS scan;
	PgsmFragment *f;

	LWLockAcquire(frag->lock, LW_EXCLUSIVE);
	hash_seq_init(&scan, frag_table);
	while ((f = hash_seq_search(&scan)) != NULL)
	{
		if (f->key.epoch < below)
			hash_search(frag_table, &f->key, HASH_REMOVE, NULL);
	}
	LWLockRelease(frag->lock);
}

void
pgsm_fragments_info(int64 *max, int64 *used, int64 *dropped)
{
	*max = pgsm_sdm_max_fragments;
	LWLockAcquire(frag->lock, LW_SHARED);
	*used = hash_get_num_entries(frag_table);
	LWLockRelease(frag->lock);
	SpinLockAcquire(&frag->mutex);
	*dropped = frag->dropped_calls;
	SpinLockRelease(&frag->mutex);
}

/* ---------------------------------------------------------------- persistence */

/* call fn for every entry; the postmaster only, at shutdown */
void
pgsm_fragments_walk(void (*fn) (const PgsmFragment *f, void *arg), void *arg)
{
	HASH_SEQ_STATUS scan;
	PgsmFragment *f;

	hash_seq_init(&scan, frag_table);
	while ((f = hash_seq_search(&scan)) != NULL)
		fn(f, arg);
}

/*
 * Add a saved entry back, in its own epoch (an entry frozen before the
 * shutdown, with its wire id, stays apart from a later one of the same
 * fragment), the current epoch kept above it; false when there is no room.
 * Postmaster only, before any backend records.
 */
bool
pgsm_fragment_restore(const PgsmFragment *saved)
{
	PgsmFragment *f;
	PgsmFragmentKey key = saved->key;
	char		coordinator[NAMEDATALEN];
	char		query[PGSM_FRAGMENT_TEXT_LEN];

	/* a file is not trusted to end its strings */
	memcpy(coordinator, saved->coordinator, sizeof(coordinator));
	coordinator[sizeof(coordinator) - 1] = '\0';
	memcpy(query, saved->query, sizeof(query));
	query[sizeof(query) - 1] = '\0';
	if (key.epoch < 1 || saved->wire_id < 0)
	{
		count_dropped(saved->c.calls);	/* not one this build wrote */
		return false;
	}
	frag->epoch = Max(frag->epoch, key.epoch + 1);
	f = insert_fragment(&key, coordinator, query);
	if (f == NULL)
	{
		count_dropped(saved->c.calls);
		return false;
	}
	if (f->c.calls == 0)
	{
		f->encoding = saved->encoding;
		/* frozen before the shutdown: sent (maybe) under this id already */
		f->wire_id = saved->wire_id;
		frag->last_base = Max(frag->last_base, saved->wire_id >> PGSM_WIRE_SEQ_BITS);
	}
	add_delta(f, &saved->c);
	return true;
}
