/*-------------------------------------------------------------------------
 *
 * store.c
 *		The shared memory of pg_stat_monitor: a fixed table of statement
 *		entries, a fixed arena of texts, and the counters of what found no
 *		room.  Allocated once at postmaster start, sized by pgsm_memsize(),
 *		never grown.
 *
 * Layout
 *	"pg_stat_monitor"			the PgsmShared header
 *	"pg_stat_monitor entries"	dynahash of PgsmEntry (pgsm_max)
 *	"pg_stat_monitor texts"		the text arena, arena.c (pgsm_query_shared_buffer)
 *
 * Texts (query, top query, plan, comments, application name, message and
 * the relation OID list) are stored once each, keyed by a 64-bit hash of
 * their bytes and reference-counted, so the same query seen in several
 * buckets costs its text once.
 *
 * Locking: every shared structure and what protects it
 *	pgsm_entries (the table: which keys exist), the text arena and its text
 *	table (arena.c), the text references of entries, their pgsm_query_id,
 *	query_cut and encoding, and the header fields marked "lock":
 *	shared->lock, one LWLock.
 *	The counters, the histogram, cmd_type, elevel and sqlcode of an entry:
 *	the entry's spinlock (e->mutex), taken under the lock in either mode.
 *	The loss counters and the worker's latch and pid: shared->mutex, a
 *	spinlock held for a few instructions.
 *	shared->newest_bucket: an atomic, no lock.
 *
 *	Who takes shared->lock, and how:
 *	- A statement whose entry exists, with no message to record (the fast
 *	  path), takes it SHARED, looks its entry up and adds its counters
 *	  under the entry's spinlock.  It writes only the counter groups it
 *	  used; the always-used ones sit next to the spinlock, so backends
 *	  running the same statement share few cache lines.
 *	- A statement whose entry does not exist yet misses on the fast path, prepares its texts without the lock
 *	  (capture.c), then takes it EXCLUSIVE to insert.  This slow path may
 *	  compact the arena (only when that makes the room asked for) and, when
 *	  the table or the arena lacks that room, let exported buckets go,
 *	  oldest first, until it has it: both scan under the EXCLUSIVE lock.
 *	- Every WARNING or ERROR report of a tracked statement takes the slow
 *	  path, EXCLUSIVE, to record its message.
 *	- Readers (the view, the export, pg_stat_monitor_info) hold it SHARED
 *	  while they copy every entry and its texts: statements on the fast path
 *	  go on, those on the slow path wait for the copy.
 *	- Freezing buckets, marking them exported (in the commit callback of an
 *	  export, a scan that cannot fail), releasing exported buckets (the
 *	  worker, each freeze, pgsm_release_exported()), discarding and reset
 *	  (any backend calling pg_stat_monitor_reset()) take it EXCLUSIVE.
 *
 * Buckets
 *	A bucket is a time slice: its start is the clock rounded down to a
 *	multiple of pgsm_bucket_time, computed while holding the lock, so a new
 *	bucket begins without any rotation work.  An exporter "freezes" the
 *	finished buckets by raising shared->frozen_below under the EXCLUSIVE
 *	lock; statements that finish later land in a bucket at or after it, so
 *	a frozen bucket never changes and is exported exactly once.  When the
 *	export commits, shared->exported_below moves past its buckets.  They
 *	stay in memory, every row of them, so that the view shows them whole;
 *	they go when they have left the view's window (the worker's pass, each
 *	freeze) or, oldest first, when a new entry finds no room.  No other session (an old
 *	snapshot, an open transaction, a replication slot) holds them back: a
 *	reader whose snapshot predates the export's commit may miss a bucket
 *	let go for room, never a call counted.
 *
 *-------------------------------------------------------------------------
 */
#include "pgsm.h"
#include "arena.h"

#include <math.h>

#include "common/hashfn.h"
#include "libpq/libpq-be.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

typedef struct PgsmShared
{
	LWLock	   *lock;
	pg_atomic_uint64 newest_bucket; /* newest bucket start seen, to wake the
									 * worker when a bucket ends */
	int64		frozen_below;	/* lock: buckets before it take no writes */
	int64		exported_below; /* lock: buckets before it are in history */
	int64		exported_entries;	/* lock: entries of those buckets */
	TimestampTz stats_reset;	/* lock */
	slock_t		mutex;			/* protects the fields below */
	int64		overflowed_calls;
	int64		dropped_calls;
	double		dropped_exec_time;
	int64		discarded_calls;	/* calls of buckets discarded unexported */
	Latch	   *worker_latch;	/* of the process doing the worker's job */
	int			worker_pid;
} PgsmShared;

/* sizes, derived from the settings by pgsm_sizes() */
typedef struct PgsmSizes
{
	Size		entry_size;
	long		max_entries;
	long		reserve;		/* entries kept for overflow rows */
	long		max_texts;
	Size		arena_size;
} PgsmSizes;


static PgsmShared *pgsm_shared = NULL;
static HTAB *pgsm_entries = NULL;
static PgsmSizes pgsm_size;


#define PGSM_TEXTS_PER_MB 4096
#define PGSM_SLACK 4096			/* room for allocation alignment */

/* ---------------------------------------------------------------- sizes */

static Size
entry_size(void)
{
	int			slots = pgsm_histogram_buckets + 1 + (pgsm_histogram_min > 0 ? 1 : 0);

	return MAXALIGN(offsetof(PgsmEntry, hist) + slots * sizeof(int32));
}

/* the most entries whose hash table fits in 'bytes' */
static long
entries_fitting(Size bytes, Size esize)
{
	long		lo = 16,
				hi = (long) (bytes / esize) + 1;

	while (lo < hi)
	{
		long		mid = (lo + hi + 1) / 2;

		if (hash_estimate_size(mid, esize) <= bytes)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

static void
pgsm_sizes(PgsmSizes *s)
{
	Size		budget = (Size) pgsm_max_kb * 1024 - MAXALIGN(sizeof(PgsmShared)) - PGSM_SLACK;
	Size		fragments = pgsm_fragments_memsize();

	/* the fragment table is taken from pgsm_max's share, up to half of it */
	Size		entry_bytes = budget > 2 * fragments ? budget - fragments : budget / 2;
	Size		text_bytes = (Size) pgsm_query_shared_buffer_kb * 1024 - PGSM_SLACK;

	s->entry_size = entry_size();
	s->max_entries = entries_fitting(entry_bytes, s->entry_size);
	s->reserve = Min(pgsm_max_buckets + 8, s->max_entries / 4);
	s->max_texts = Max(256, (long) (text_bytes / (1024 * 1024.0) * PGSM_TEXTS_PER_MB));
	s->arena_size = text_bytes - pgsm_arena_memsize(s->max_texts, 0);
}

/* the one function that sizes shared memory */
Size
pgsm_memsize(void)
{
	PgsmSizes	s;
	Size		size;

	pgsm_sizes(&s);
	size = MAXALIGN(sizeof(PgsmShared));
	size = add_size(size, hash_estimate_size(s.max_entries, s.entry_size));
	size = add_size(size, pgsm_arena_memsize(s.max_texts, s.arena_size));
	size = add_size(size, pgsm_fragments_memsize());
	return size;
}

/* ---------------------------------------------------------------- startup */

/* the key's hash: a few multiplies instead of hashing its 72 bytes */
static uint32
key_hash(const void *data, Size keysize)
{
	const PgsmKey *k = data;
	uint64		addr[2];
	uint64		h;

	memcpy(addr, k->client_addr, sizeof(addr));
	h = hash_combine64(k->queryid, (uint64) k->bucket_start);
	h = hash_combine64(h, ((uint64) k->userid << 32) | k->dbid);
	h = hash_combine64(h, k->top_queryid ^ (k->planid * UINT64CONST(0x9E3779B97F4A7C15)));
	h = hash_combine64(h, k->appname_hash);
	h = hash_combine64(h, addr[0] ^ (addr[1] * UINT64CONST(0x9E3779B97F4A7C15)));
	h = hash_combine64(h, (uint64) k->toplevel | ((uint64) k->kind << 8) |
					   ((uint64) k->client_family << 16));
	/* a 64-bit finalizer, so every input bit reaches the low 32 bits */
	h ^= h >> 33;
	h *= UINT64CONST(0xff51afd7ed558ccd);
	h ^= h >> 33;
	h *= UINT64CONST(0xc4ceb9fe1a85ec53);
	h ^= h >> 33;
	return (uint32) h;
}

void
pgsm_shmem_request(void)
{
	RequestAddinShmemSpace(pgsm_memsize());
	RequestNamedLWLockTranche("pg_stat_monitor", 1);
	pgsm_fragments_request();
}

static void
init_header(PgsmShared *sh)
{
	sh->lock = &(GetNamedLWLockTranche("pg_stat_monitor"))->lock;
	pg_atomic_init_u64(&sh->newest_bucket, 0);
	sh->frozen_below = 0;
	sh->exported_below = 0;
	sh->exported_entries = 0;
	sh->stats_reset = GetCurrentTimestamp();
	SpinLockInit(&sh->mutex);
	sh->overflowed_calls = 0;
	sh->dropped_calls = 0;
	sh->dropped_exec_time = 0;
	sh->discarded_calls = 0;
	sh->worker_latch = NULL;
	sh->worker_pid = 0;
}

void
pgsm_shmem_startup(void)
{
	HASHCTL		info;
	bool		found;

	pgsm_sizes(&pgsm_size);
	pgsm_init_histogram();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	pgsm_shared = ShmemInitStruct("pg_stat_monitor", sizeof(PgsmShared), &found);
	if (!found)
		init_header(pgsm_shared);

	info.keysize = sizeof(PgsmKey);
	info.entrysize = pgsm_size.entry_size;
	info.hash = key_hash;
	pgsm_entries = ShmemInitHash("pg_stat_monitor entries",
								 pgsm_size.max_entries, pgsm_size.max_entries,
								 &info, HASH_ELEM | HASH_FUNCTION);

	pgsm_arena_startup(pgsm_size.max_texts, pgsm_size.arena_size);
	pgsm_fragments_startup();
	LWLockRelease(AddinShmemInitLock);
}

bool
pgsm_store_ready(void)
{
	return pgsm_shared != NULL;
}

/* ---------------------------------------------------------------- buckets */

int64
pgsm_bucket_of(TimestampTz ts)
{
	int64		secs = ts / USECS_PER_SEC;
	int64		r;

	if (ts < 0 && ts % USECS_PER_SEC != 0)
		secs--;					/* floor, as the cached bounds are */
	secs += PGSM_UNIX_EPOCH_SECS;
	r = secs % pgsm_bucket_time;

	if (r < 0)
		r += pgsm_bucket_time;
	return secs - r;
}

/*
 * The bucket of now.  The bounds of the last bucket computed are kept, so
 * most statements compare one timestamp instead of dividing (the bucket
 * length is fixed at start).
 */
int64
pgsm_current_bucket(void)
{
	static TimestampTz from = 0;
	static TimestampTz until = 0;
	static int64 bucket = 0;
	TimestampTz now = GetCurrentTimestamp();

	if (now < from || now >= until)
	{
		bucket = pgsm_bucket_of(now);
		from = (bucket - PGSM_UNIX_EPOCH_SECS) * USECS_PER_SEC;
		until = from + (int64) pgsm_bucket_time * USECS_PER_SEC;
	}
	return bucket;
}

/* the start of the oldest bucket the view shows */
int64
pgsm_window_start(void)
{
	return pgsm_current_bucket() - (int64) (pgsm_max_buckets - 1) * pgsm_bucket_time;
}

/* the bucket a statement ending now writes to; caller holds the lock */
static int64
writable_bucket(void)
{
	return Max(pgsm_current_bucket(), pgsm_shared->frozen_below);
}

/*
 * Take the worker's job (its latch is the one statements set); false if a
 * live process other than this one has it.
 */
bool
pgsm_claim_worker(Latch *latch)
{
	bool		taken;

	SpinLockAcquire(&pgsm_shared->mutex);
	taken = pgsm_shared->worker_latch != NULL && pgsm_shared->worker_latch != latch;
	if (!taken)
	{
		pgsm_shared->worker_latch = latch;
		pgsm_shared->worker_pid = MyProcPid;
	}
	SpinLockRelease(&pgsm_shared->mutex);
	if (taken && !pgsm_worker_running(latch))
		return pgsm_claim_worker_from_dead(latch);
	return !taken;
}

/* whether another live process has the worker's job */
bool
pgsm_worker_running(Latch *mine)
{
	Latch	   *latch;
	int			pid;

	SpinLockAcquire(&pgsm_shared->mutex);
	latch = pgsm_shared->worker_latch;
	pid = pgsm_shared->worker_pid;
	SpinLockRelease(&pgsm_shared->mutex);
	return latch != NULL && latch != mine && BackendPidGetProc(pid) != NULL;
}

/* the job of a process that died without giving it back */
bool
pgsm_claim_worker_from_dead(Latch *latch)
{
	SpinLockAcquire(&pgsm_shared->mutex);
	pgsm_shared->worker_latch = latch;
	pgsm_shared->worker_pid = MyProcPid;
	SpinLockRelease(&pgsm_shared->mutex);
	return true;
}

/* give the worker's job back, if this process has it */
void
pgsm_release_worker(Latch *latch)
{
	SpinLockAcquire(&pgsm_shared->mutex);
	if (pgsm_shared->worker_latch == latch)
	{
		pgsm_shared->worker_latch = NULL;
		pgsm_shared->worker_pid = 0;
	}
	SpinLockRelease(&pgsm_shared->mutex);
}

void
pgsm_wake_worker(void)
{
	Latch	   *latch;

	SpinLockAcquire(&pgsm_shared->mutex);
	latch = pgsm_shared->worker_latch;
	SpinLockRelease(&pgsm_shared->mutex);
	if (latch)
		SetLatch(latch);
}

/* wake the worker once when the first statement of a new bucket is seen */
static void
note_bucket(int64 bucket)
{
	uint64		seen = pg_atomic_read_u64(&pgsm_shared->newest_bucket);

	if ((int64) seen >= bucket)
		return;
	if (pg_atomic_compare_exchange_u64(&pgsm_shared->newest_bucket, &seen, (uint64) bucket))
		pgsm_wake_worker();
}

/* ---------------------------------------------------------------- entries */

static void
release_refs(PgsmEntry *e)
{
	int			i;

	for (i = 0; i < PGSM_NTEXTS; i++)
		pgsm_text_release(e->text[i]);
}

/* store a text if present; false when there was no room */
static bool
store_ref(PgsmTextRef *ref, const char *data, Size len)
{
	if (data == NULL)
		return true;
	*ref = pgsm_text_store(data, len);
	return *ref != 0;
}

static bool
store_texts(PgsmEntry *e, const PgsmNewTexts *t)
{
	return store_ref(&e->text[PGSM_T_QUERY], t->query, t->query_len) &&
		store_ref(&e->text[PGSM_T_TOP_QUERY], t->top_query, t->top_query_len) &&
		store_ref(&e->text[PGSM_T_APPNAME], t->appname,
				  t->appname ? strlen(t->appname) : 0) &&
		store_ref(&e->text[PGSM_T_COMMENTS], t->comments,
				  t->comments ? strlen(t->comments) : 0) &&
		store_ref(&e->text[PGSM_T_PLAN], t->plan, t->plan_len) &&
		store_ref(&e->text[PGSM_T_NAMES], t->names, t->names_len) &&
		store_ref(&e->text[PGSM_T_RELATIONS],
				  t->nrelids ? (const char *) t->relids : NULL,
				  t->nrelids * sizeof(Oid));
}

static void
init_entry(PgsmEntry *e)
{
	memset((char *) e + sizeof(PgsmKey), 0, pgsm_size.entry_size - sizeof(PgsmKey));
	SpinLockInit(&e->mutex);
	e->encoding = (uint8) GetDatabaseEncoding();
}

/* replace one text of an entry, keeping the old one if there is no room */
static bool
replace_ref(PgsmEntry *e, PgsmTextKind kind, const char *data, Size len)
{
	PgsmTextRef ref = data ? pgsm_text_store(data, len) : 0;

	if (data && ref == 0)
		return false;
	pgsm_text_release(e->text[kind]);
	e->text[kind] = ref;
	return true;
}

/* remove one entry; caller holds the lock EXCLUSIVE */
static void
remove_entry(PgsmEntry *e)
{
	if (e->key.bucket_start < pgsm_shared->exported_below)
		pgsm_shared->exported_entries--;
	release_refs(e);
	hash_search(pgsm_entries, &e->key, HASH_REMOVE, NULL);
}

/*
 * Remove the entries of buckets before 'below' that are in history already;
 * returns how many.  Caller holds the lock EXCLUSIVE.  Does not allocate.
 */
static int64
remove_exported_below(int64 below)
{
	HASH_SEQ_STATUS scan;
	PgsmEntry  *e;
	int64		n = 0;

	below = Min(below, pgsm_shared->exported_below);
	if (pgsm_shared->exported_entries == 0)
		return 0;
	hash_seq_init(&scan, pgsm_entries);
	while ((e = hash_seq_search(&scan)) != NULL)
	{
		if (e->key.bucket_start >= below)
			continue;
		remove_entry(e);
		n++;
	}
	return n;
}

/*
 * Make room by letting the oldest exported bucket go (its rows are in
 * history); false if there is none.  Caller holds the lock EXCLUSIVE.
 */
static bool
evict_oldest_exported(void)
{
	HASH_SEQ_STATUS scan;
	PgsmEntry  *e;
	int64		oldest = PG_INT64_MAX;

	if (pgsm_shared->exported_entries == 0)
		return false;
	hash_seq_init(&scan, pgsm_entries);
	while ((e = hash_seq_search(&scan)) != NULL)
	{
		if (e->key.bucket_start < pgsm_shared->exported_below)
			oldest = Min(oldest, e->key.bucket_start);
	}
	return oldest != PG_INT64_MAX && remove_exported_below(oldest + 1) > 0;
}

/* whether an entry with these texts lacks room that letting buckets go can give */
static bool
room_short(const PgsmNewTexts *t)
{
	Size		bytes = t->query_len + t->top_query_len +
		(t->appname ? strlen(t->appname) : 0) +
		(t->comments ? strlen(t->comments) : 0) + t->plan_len + t->names_len +
		t->nrelids * sizeof(Oid);

	return hash_get_num_entries(pgsm_entries) >= pgsm_size.max_entries - pgsm_size.reserve ||
		!pgsm_arena_has_room(bytes, PGSM_NTEXTS);
}

/* a new entry for a key; NULL when the table or the arena is full */
static PgsmEntry *
insert_entry(const PgsmKey *key, const PgsmExecution *x, const PgsmNewTexts *t)
{
	PgsmEntry  *e;
	bool		found;

	if (hash_get_num_entries(pgsm_entries) >= pgsm_size.max_entries - pgsm_size.reserve)
		return NULL;
	e = hash_search(pgsm_entries, key, HASH_ENTER_NULL, &found);
	if (e == NULL)
		return NULL;
	init_entry(e);
	if (!store_texts(e, t))
	{
		release_refs(e);
		hash_search(pgsm_entries, key, HASH_REMOVE, NULL);
		return NULL;
	}
	e->cmd_type = x->cmd_type;
	e->pgsm_query_id = t->pgsm_query_id;
	e->query_cut = t->query_cut;
	return e;
}

/*
 * Find or make the entry for a key, letting exported buckets go, oldest
 * first, while there is no room; NULL when there is still none.  Caller
 * holds the lock EXCLUSIVE.
 */
static PgsmEntry *
create_entry(const PgsmKey *key, const PgsmExecution *x, const PgsmNewTexts *t)
{
	PgsmEntry  *e = hash_search(pgsm_entries, key, HASH_FIND, NULL);

	if (e != NULL)
		return e;
	while ((e = insert_entry(key, x, t)) == NULL)
	{
		if (!room_short(t) || !evict_oldest_exported())
			return NULL;
	}
	return e;
}

/* the overflow row of a bucket, from the reserve; caller holds it EXCLUSIVE */
static PgsmEntry *
overflow_entry(int64 bucket)
{
	PgsmKey		key;
	PgsmEntry  *e;
	bool		found;

	memset(&key, 0, sizeof(key));
	key.bucket_start = bucket;
	key.kind = PGSM_KIND_OVERFLOW;
	key.toplevel = true;
	e = hash_search(pgsm_entries, &key, HASH_FIND, NULL);
	if (e != NULL)
		return e;
	if (hash_get_num_entries(pgsm_entries) >= pgsm_size.max_entries)
		return NULL;
	e = hash_search(pgsm_entries, &key, HASH_ENTER_NULL, &found);
	if (e != NULL)
		init_entry(e);
	return e;
}

static inline void
add_timing(PgsmTiming *t, int64 n_before, double v)
{
	double		old_mean = n_before > 0 ? t->total / n_before : 0;
	double		new_mean;

	if (n_before == 0 || v < t->min)
		t->min = v;
	if (n_before == 0 || v > t->max)
		t->max = v;
	t->total += v;
	new_mean = t->total / (n_before + 1);
	t->m2 += (v - old_mean) * (v - new_mean);
}

static inline void
add_shared_blocks(PgsmCounters *c, const PgsmCounters *d)
{
	if (d->shared_blks_hit | d->shared_blks_read | d->shared_blks_dirtied |
		d->shared_blks_written)
	{
		c->shared_blks_hit += d->shared_blks_hit;
		c->shared_blks_read += d->shared_blks_read;
		c->shared_blks_dirtied += d->shared_blks_dirtied;
		c->shared_blks_written += d->shared_blks_written;
	}
}

/* counters that most statements leave at zero, in groups */
static inline void
add_rare_counters(PgsmCounters *c, const PgsmCounters *d)
{
	if (d->local_blks_hit | d->local_blks_read | d->local_blks_dirtied |
		d->local_blks_written | d->temp_blks_read | d->temp_blks_written)
	{
		c->local_blks_hit += d->local_blks_hit;
		c->local_blks_read += d->local_blks_read;
		c->local_blks_dirtied += d->local_blks_dirtied;
		c->local_blks_written += d->local_blks_written;
		c->temp_blks_read += d->temp_blks_read;
		c->temp_blks_written += d->temp_blks_written;
	}
	if (d->blk_read_time != 0 || d->blk_write_time != 0 ||
		d->temp_blk_read_time != 0 || d->temp_blk_write_time != 0 ||
		d->cpu_user_time != 0 || d->cpu_sys_time != 0)
	{
		c->blk_read_time += d->blk_read_time;
		c->blk_write_time += d->blk_write_time;
		c->temp_blk_read_time += d->temp_blk_read_time;
		c->temp_blk_write_time += d->temp_blk_write_time;
		c->cpu_user_time += d->cpu_user_time;
		c->cpu_sys_time += d->cpu_sys_time;
	}
	if (d->wal_records | d->wal_fpi | d->wal_bytes)
	{
		c->wal_records += d->wal_records;
		c->wal_fpi += d->wal_fpi;
		c->wal_bytes += d->wal_bytes;
	}
	if (d->jit_functions | d->jit_inlining_count | d->jit_optimization_count |
		d->jit_emission_count || d->jit_generation_time != 0 ||
		d->jit_inlining_time != 0 || d->jit_optimization_time != 0 ||
		d->jit_emission_time != 0)
	{
		c->jit_functions += d->jit_functions;
		c->jit_generation_time += d->jit_generation_time;
		c->jit_inlining_count += d->jit_inlining_count;
		c->jit_inlining_time += d->jit_inlining_time;
		c->jit_optimization_count += d->jit_optimization_count;
		c->jit_optimization_time += d->jit_optimization_time;
		c->jit_emission_count += d->jit_emission_count;
		c->jit_emission_time += d->jit_emission_time;
	}
}

/*
 * Add one execution's counters; takes the entry's spinlock.  Groups of
 * counters that this execution left at zero are not touched, so that a
 * statement writes few of the entry's cache lines (they move between CPUs
 * when several backends run the same statement).
 */
static void
accumulate(PgsmEntry *e, const PgsmExecution *x)
{
	const PgsmCounters *d = &x->delta;
	PgsmCounters *c = &e->c;
	int			slot = pgsm_hist_slot(x->exec_ms);

	SpinLockAcquire(&e->mutex);
	if (d->calls > 0)
	{
		add_timing(&c->exec, c->calls, x->exec_ms);
		c->calls += d->calls;
		e->hist[slot]++;
	}
	c->rows += d->rows;
	add_shared_blocks(c, d);
	if (d->plans > 0)
	{
		add_timing(&c->plan, c->plans, d->plan.total);
		c->plans += d->plans;
	}
	add_rare_counters(c, d);
	if (x->elevel > 0)
	{
		e->elevel = (uint8) x->elevel;
		e->sqlcode = x->sqlcode;
	}
	SpinLockRelease(&e->mutex);
}

/* replace the entry's message; caller holds the lock EXCLUSIVE */
static void
set_message(PgsmEntry *e, const PgsmNewTexts *t)
{
	if (t->message != NULL)
		(void) replace_ref(e, PGSM_T_MESSAGE, t->message, t->message_len);
}

void
pgsm_count_dropped(int64 calls, double exec_time)
{
	SpinLockAcquire(&pgsm_shared->mutex);
	pgsm_shared->dropped_calls += calls;
	pgsm_shared->dropped_exec_time += exec_time;
	SpinLockRelease(&pgsm_shared->mutex);
}

static void
count_loss(const PgsmExecution *x, bool dropped)
{
	if (dropped)
	{
		pgsm_count_dropped(x->delta.calls, x->exec_ms);
		return;
	}
	SpinLockAcquire(&pgsm_shared->mutex);
	pgsm_shared->overflowed_calls += x->delta.calls;
	SpinLockRelease(&pgsm_shared->mutex);
}

/* whether this backend holds the store's lock (an error report while it reads) */
bool
pgsm_store_locked_by_me(void)
{
	return LWLockHeldByMe(pgsm_shared->lock);
}

/*
 * The fast path: add an execution to its entry if the entry exists.  Holds the lock SHARED for one lookup and one
 * spinlocked update.  Sets key->bucket_start.
 */
bool
pgsm_store_add(PgsmKey *key, const PgsmExecution *x)
{
	PgsmEntry  *e;

	LWLockAcquire(pgsm_shared->lock, LW_SHARED);
	key->bucket_start = writable_bucket();
	e = hash_search(pgsm_entries, key, HASH_FIND, NULL);
	if (e != NULL)
		accumulate(e, x);
	LWLockRelease(pgsm_shared->lock);
	if (e != NULL)
		note_bucket(key->bucket_start);
	return e != NULL;
}

/*
 * The slow path: make the entry (or use its bucket's overflow row) under
 * the EXCLUSIVE lock, and record a message.  The worker is woken when a
 * statement finds no room; may raise an error (out of memory) only before
 * anything is changed.
 */
void
pgsm_store_new(PgsmKey *key, const PgsmExecution *x, const PgsmNewTexts *t)
{
	PgsmEntry  *e;
	bool		wake = false;

	LWLockAcquire(pgsm_shared->lock, LW_EXCLUSIVE);
	key->bucket_start = writable_bucket();
	e = create_entry(key, x, t);
	if (e == NULL)
	{
		e = overflow_entry(key->bucket_start);
		count_loss(x, e == NULL);
		wake = true;
	}
	if (e != NULL)
	{
		accumulate(e, x);
		if (x->elevel > 0 && e->key.kind != PGSM_KIND_OVERFLOW)
			set_message(e, t);
	}
	LWLockRelease(pgsm_shared->lock);
	note_bucket(key->bucket_start);
	if (wake)
		pgsm_wake_worker();
}

/* ---------------------------------------------------------------- readers */

static PgsmRow *
copy_row(PgsmEntry *e)
{
	PgsmRow    *r = palloc0(sizeof(PgsmRow));
	int			len = 0;

	r->entry = palloc(pgsm_size.entry_size);
	SpinLockAcquire(&e->mutex);
	memcpy(r->entry, e, pgsm_size.entry_size);
	SpinLockRelease(&e->mutex);
	r->query = pgsm_text_copy(e->text[PGSM_T_QUERY], NULL);
	r->top_query = pgsm_text_copy(e->text[PGSM_T_TOP_QUERY], NULL);
	r->appname = pgsm_text_copy(e->text[PGSM_T_APPNAME], NULL);
	r->comments = pgsm_text_copy(e->text[PGSM_T_COMMENTS], NULL);
	r->plan = pgsm_text_copy(e->text[PGSM_T_PLAN], NULL);
	r->message = pgsm_text_copy(e->text[PGSM_T_MESSAGE], NULL);
	r->names = pgsm_text_copy(e->text[PGSM_T_NAMES], &r->names_len);
	r->relids = (Oid *) pgsm_text_copy(e->text[PGSM_T_RELATIONS], &len);
	r->nrelids = r->relids ? len / (int) sizeof(Oid) : 0;
	return r;
}

/* copies of the entries of buckets before 'below' (all when 0) */
List *
pgsm_copy_rows(int64 below)
{
	HASH_SEQ_STATUS scan;
	PgsmEntry  *e;
	List	   *rows = NIL;

	LWLockAcquire(pgsm_shared->lock, LW_SHARED);
	hash_seq_init(&scan, pgsm_entries);
	while ((e = hash_seq_search(&scan)) != NULL)
	{
		if (below == 0 || e->key.bucket_start < below)
			rows = lappend(rows, copy_row(e));
	}
	LWLockRelease(pgsm_shared->lock);
	return rows;
}

void
pgsm_get_info(PgsmInfo *info)
{
	HASH_SEQ_STATUS scan;
	PgsmEntry  *e;

	memset(info, 0, sizeof(*info));
	LWLockAcquire(pgsm_shared->lock, LW_SHARED);
	info->max_entries = pgsm_size.max_entries;
	info->entries = hash_get_num_entries(pgsm_entries);
	pgsm_arena_usage(&info->text_bytes, &info->text_bytes_used, &info->max_texts, &info->texts);
	info->frozen_below = pgsm_shared->frozen_below;
	info->stats_reset = pgsm_shared->stats_reset;
	info->exported_entries = pgsm_shared->exported_entries;
	hash_seq_init(&scan, pgsm_entries);
	while ((e = hash_seq_search(&scan)) != NULL)
	{
		if (e->key.kind == PGSM_KIND_OVERFLOW)
			info->overflow_entries++;
		if (e->key.bucket_start < pgsm_shared->exported_below)
			continue;			/* exported, kept for the view */
		if (info->oldest_bucket == 0 || e->key.bucket_start < info->oldest_bucket)
			info->oldest_bucket = e->key.bucket_start;
	}
	LWLockRelease(pgsm_shared->lock);
	SpinLockAcquire(&pgsm_shared->mutex);
	info->overflowed_calls = pgsm_shared->overflowed_calls;
	info->dropped_calls = pgsm_shared->dropped_calls;
	info->dropped_exec_time = pgsm_shared->dropped_exec_time;
	info->discarded_calls = pgsm_shared->discarded_calls;
	SpinLockRelease(&pgsm_shared->mutex);
}

/* ---------------------------------------------------------------- release */

/* close the finished buckets to writes; returns the first open bucket */
int64
pgsm_freeze_finished(void)
{
	int64		now = pgsm_current_bucket();
	int64		frozen;

	LWLockAcquire(pgsm_shared->lock, LW_EXCLUSIVE);
	if (now > pgsm_shared->frozen_below)
		pgsm_shared->frozen_below = now;
	frozen = pgsm_shared->frozen_below;
	LWLockRelease(pgsm_shared->lock);
	return frozen;
}

/*
 * Remove the entries of buckets before 'below' (all when below is
 * PG_INT64_MAX), exported or not; returns the calls they held.
 */
static int64
remove_below(int64 below)
{
	HASH_SEQ_STATUS scan;
	PgsmEntry  *e;
	int64		calls = 0;

	LWLockAcquire(pgsm_shared->lock, LW_EXCLUSIVE);
	/* a bucket still open to writes is never removed, except by reset */
	if (below != PG_INT64_MAX)
		below = Min(below, pgsm_shared->frozen_below);
	hash_seq_init(&scan, pgsm_entries);
	while ((e = hash_seq_search(&scan)) != NULL)
	{
		if (e->key.bucket_start >= below)
			continue;
		if (e->key.bucket_start >= pgsm_shared->exported_below)
			calls += e->c.calls;	/* not in history: lost */
		remove_entry(e);
	}
	LWLockRelease(pgsm_shared->lock);
	return calls;
}

/*
 * At the commit of an export (handoff.c): the buckets before 'below' are in
 * history now.  They stay in memory, whole, for the view until room is
 * needed or they leave the window.  Runs in a commit callback, so it must
 * not fail: it takes a lock and scans, but does not allocate.
 */
void
pgsm_mark_exported(int64 below)
{
	HASH_SEQ_STATUS scan;
	PgsmEntry  *e;
	int64		from;

	LWLockAcquire(pgsm_shared->lock, LW_EXCLUSIVE);
	below = Min(below, pgsm_shared->frozen_below);
	from = pgsm_shared->exported_below;
	if (below > from)
	{
		hash_seq_init(&scan, pgsm_entries);
		while ((e = hash_seq_search(&scan)) != NULL)
		{
			if (e->key.bucket_start >= from && e->key.bucket_start < below)
				pgsm_shared->exported_entries++;
		}
		pgsm_shared->exported_below = below;
	}
	LWLockRelease(pgsm_shared->lock);
}

/* let exported buckets before 'below' go (they left the window); returns entries removed */
int64
pgsm_release_exported(int64 below)
{
	int64		n;

	LWLockAcquire(pgsm_shared->lock, LW_EXCLUSIVE);
	n = remove_exported_below(below);
	LWLockRelease(pgsm_shared->lock);
	return n;
}

/* drop buckets nobody can export, counting what is lost */
int64
pgsm_discard_below(int64 below)
{
	int64		calls = remove_below(below);

	SpinLockAcquire(&pgsm_shared->mutex);
	pgsm_shared->discarded_calls += calls;
	SpinLockRelease(&pgsm_shared->mutex);
	return calls;
}

void
pgsm_reset_all(void)
{
	remove_below(PG_INT64_MAX);
	LWLockAcquire(pgsm_shared->lock, LW_EXCLUSIVE);
	pgsm_shared->stats_reset = GetCurrentTimestamp();
	LWLockRelease(pgsm_shared->lock);
	SpinLockAcquire(&pgsm_shared->mutex);
	pgsm_shared->overflowed_calls = 0;
	pgsm_shared->dropped_calls = 0;
	pgsm_shared->dropped_exec_time = 0;
	pgsm_shared->discarded_calls = 0;
	SpinLockRelease(&pgsm_shared->mutex);
}

/* ---------------------------------------------------------------- persistence */

Size
pgsm_entry_size(void)
{
	return pgsm_size.entry_size;
}

/* call fn for every entry with its texts; no other process may run */
void
pgsm_walk_entries(PgsmEntryFn fn, void *arg)
{
	HASH_SEQ_STATUS scan;
	PgsmEntry  *e;

	hash_seq_init(&scan, pgsm_entries);
	while ((e = hash_seq_search(&scan)) != NULL)
	{
		char	   *texts[PGSM_NTEXTS];
		int			lens[PGSM_NTEXTS];
		int			i;

		if (e->key.bucket_start < pgsm_shared->exported_below)
			continue;			/* already in history */

		for (i = 0; i < PGSM_NTEXTS; i++)
			texts[i] = pgsm_text_peek(e->text[i], &lens[i]);
		fn(e, texts, lens, arg);
	}
}

/* add a saved entry back; false when there is no room.  Postmaster only. */
bool
pgsm_restore_entry(const PgsmEntry *src, char *const texts[PGSM_NTEXTS],
				   const int lens[PGSM_NTEXTS])
{
	PgsmEntry  *e;
	bool		found;
	int			i;

	if (hash_get_num_entries(pgsm_entries) >= pgsm_size.max_entries)
		return false;
	e = hash_search(pgsm_entries, &src->key, HASH_ENTER_NULL, &found);
	if (e == NULL || found)
		return e != NULL;
	memcpy(e, src, pgsm_size.entry_size);
	SpinLockInit(&e->mutex);
	for (i = 0; i < PGSM_NTEXTS; i++)
	{
		e->text[i] = 0;
		if (lens[i] >= 0 && !store_ref(&e->text[i], texts[i], lens[i]))
		{
			release_refs(e);
			hash_search(pgsm_entries, &src->key, HASH_REMOVE, NULL);
			return false;
		}
	}
	return true;
}
