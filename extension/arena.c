/*-------------------------------------------------------------------------
 *
 * arena.c
 *		The text arena of pg_stat_monitor: query texts, plans, comments,
 *		application names, messages and relation lists, each stored once,
 *		keyed by a 64-bit hash of its bytes and reference-counted.
 *
 * A fixed area handed out from the front; texts whose last reference goes
 * become garbage, and the area is compacted when a new text would not fit
 * otherwise.  When neither the area nor the text table has room, storing
 * fails and the caller counts the statement in its bucket's overflow row.
 *
 * Locking: every function here is called with the store's lock held
 * (store.c): EXCLUSIVE to store, release or compact, at least SHARED to
 * read.  The arena has no lock of its own.
 *
 *-------------------------------------------------------------------------
 */
#include "pgsm.h"
#include "arena.h"

#include "common/hashfn.h"
#include "storage/shmem.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

typedef struct PgsmText
{
	uint64		key;			/* hash key */
	uint32		off;			/* offset in the arena */
	uint32		len;
	int32		refs;
} PgsmText;

typedef struct PgsmArena
{
	Size		size;			/* bytes of data */
	Size		used;			/* bytes handed out */
	Size		garbage;		/* bytes of released texts among them */
	long		max_texts;
	char		data[FLEXIBLE_ARRAY_MEMBER];
} PgsmArena;

static HTAB *pgsm_texts = NULL;
static PgsmArena *arena = NULL;

/* shared memory for max_texts texts in arena_size bytes */
Size
pgsm_arena_memsize(long max_texts, Size arena_size)
{
	return add_size(hash_estimate_size(max_texts, sizeof(PgsmText)),
					add_size(offsetof(PgsmArena, data), arena_size));
}

/* create or attach; caller holds AddinShmemInitLock */
void
pgsm_arena_startup(long max_texts, Size arena_size)
{
	HASHCTL		info;
	bool		found;

	info.keysize = sizeof(uint64);
	info.entrysize = sizeof(PgsmText);
	pgsm_texts = ShmemInitHash("pg_stat_monitor texts", max_texts, max_texts,
							   &info, HASH_ELEM | HASH_BLOBS);
	arena = ShmemInitStruct("pg_stat_monitor arena",
							offsetof(PgsmArena, data) + arena_size, &found);
	if (!found)
	{
		arena->size = arena_size;
		arena->used = 0;
		arena->garbage = 0;
		arena->max_texts = max_texts;
	}
}

void
pgsm_arena_usage(int64 *size, int64 *used, int64 *max_texts, int64 *texts)
{
	*size = arena->size;
	*used = arena->used - arena->garbage;
	*max_texts = arena->max_texts;
	*texts = hash_get_num_entries(pgsm_texts);
}

/* the bytes of a text in place, or NULL (len -1) for none */
char *
pgsm_text_peek(PgsmTextRef ref, int *len)
{
	PgsmText   *t = ref ? hash_search(pgsm_texts, &ref, HASH_FIND, NULL) : NULL;

	*len = t ? (int) t->len : -1;
	return t ? arena->data + t->off : NULL;
}


uint64
pgsm_hash_bytes(const char *data, Size len)
{
	return hash_bytes_extended((const unsigned char *) data, (int) len, 0x5053);
}

/*
 * Copy live texts to the front of the arena; caller holds the store's lock
 * EXCLUSIVE.  Runs on a statement's slow path, only when the room it makes
 * is the room the statement needs.
 */
static void
compact_arena(void)
{
	HASH_SEQ_STATUS scan;
	PgsmText   *t;
	char	   *scratch;
	Size		used = 0;

	scratch = palloc_extended(Max(arena->used, 1), MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM);
	if (scratch == NULL)
		return;					/* no memory: the text goes to the overflow row */
	hash_seq_init(&scan, pgsm_texts);
	while ((t = hash_seq_search(&scan)) != NULL)
	{
		memcpy(scratch + used, arena->data + t->off, t->len);
		t->off = (uint32) used;
		used += t->len;
	}
	memcpy(arena->data, scratch, used);
	arena->used = used;
	arena->garbage = 0;
	pfree(scratch);
}

/*
 * Store a text, or take one more reference to the same bytes.  Returns 0
 * when there is no room.  Caller holds the lock EXCLUSIVE.
 */
PgsmTextRef
pgsm_text_store(const char *data, Size len)
{
	uint64		key = pgsm_hash_bytes(data, len);
	int			probe;

	for (probe = 0; probe < 4; probe++, key++)
	{
		PgsmText   *t;
		bool		found;

		if (key == 0)
			key = 1;
		t = hash_search(pgsm_texts, &key, HASH_FIND, NULL);
		if (t != NULL)
		{
			if (t->len == len && memcmp(arena->data + t->off, data, len) == 0)
			{
				t->refs++;
				return key;
			}
			continue;			/* a different text with the same hash */
		}
		if (hash_get_num_entries(pgsm_texts) >= arena->max_texts)
			return 0;
		/* compact only when that makes the room asked for */
		if (arena->used + len > arena->size &&
			arena->used - arena->garbage + len <= arena->size)
			compact_arena();
		if (arena->used + len > arena->size)
			return 0;
		t = hash_search(pgsm_texts, &key, HASH_ENTER_NULL, &found);
		if (t == NULL)
			return 0;
		t->off = (uint32) arena->used;
		t->len = (uint32) len;
		t->refs = 1;
		memcpy(arena->data + t->off, data, len);
		arena->used += len;
		return key;
	}
	return 0;
}

/* drop one reference; caller holds the lock EXCLUSIVE */
void
pgsm_text_release(PgsmTextRef ref)
{
	PgsmText   *t;

	if (ref == 0)
		return;
	t = hash_search(pgsm_texts, &ref, HASH_FIND, NULL);
	if (t == NULL || --t->refs > 0)
		return;
	arena->garbage += t->len;
	hash_search(pgsm_texts, &ref, HASH_REMOVE, NULL);
}

/* a palloc'd, NUL-terminated copy of a text; caller holds the lock */
char *
pgsm_text_copy(PgsmTextRef ref, int *len)
{
	PgsmText   *t;
	char	   *s;

	if (ref == 0)
		return NULL;
	t = hash_search(pgsm_texts, &ref, HASH_FIND, NULL);
	if (t == NULL)
		return NULL;
	s = palloc(t->len + 1);
	memcpy(s, arena->data + t->off, t->len);
	s[t->len] = '\0';
	if (len)
		*len = (int) t->len;
	return s;
}
