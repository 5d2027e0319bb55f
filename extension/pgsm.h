/*-------------------------------------------------------------------------
 *
 * pgsm.h
 *		Shared declarations of pg_stat_monitor's C core: settings, the
 *		shared-memory entry layout, and the interfaces between its rooms.
 *
 * Who calls whom: every arrow points down this list, and no two files
 * call each other (tests/unit/test_c_structure.py checks the objects).
 *	upstream.c				upstream 2.0-2.3's readers (before ALTER EXTENSION UPDATE)
 *	readers.c, handoff.c	SQL-callable readers; the commit-time hand-off
 *	pg_stat_monitor.c		entry point; small upstream SQL functions
 *	worker.c, persist.c		background processes; dump and reload
 *	hooks.c					the statement hooks
 *	fdwtag.c, capture.c		remote SQL tags; an execution becomes key and texts
 *	store.c, text.c			the shared table; SQL lexing rules
 *	arena.c, histogram.c, guc.c
 *-------------------------------------------------------------------------
 */
#ifndef PGSM_H
#define PGSM_H

#include "postgres.h"

#include "executor/instrument.h"
#include "nodes/pg_list.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

/* ---- settings (guc.c) ---- */

typedef enum PgsmTrackLevel
{
	PGSM_TRACK_NONE,
	PGSM_TRACK_TOP,
	PGSM_TRACK_ALL
} PgsmTrackLevel;

extern int	pgsm_max_kb;
extern int	pgsm_query_shared_buffer_kb;
extern int	pgsm_max_buckets;
extern int	pgsm_bucket_time;
extern int	pgsm_query_max_len;
extern double pgsm_histogram_min;
extern double pgsm_histogram_max;
extern int	pgsm_histogram_buckets;
extern int	pgsm_track;
extern bool pgsm_track_utility;
extern bool pgsm_track_planning;
extern bool pgsm_normalized_query;
extern bool pgsm_enable_pgsm_query_id;
extern bool pgsm_enable_query_plan;
extern bool pgsm_extract_comments;
extern bool pgsm_enable_overflow;
extern bool pgsm_track_application_names;
extern bool pgsm_track_cpu_time;
extern char *pgsm_worker_database;
extern int	pgsm_export_interval;
extern char *pgsm_node_name;
extern int	pgsm_sdm_max_fragments;
extern int	pgsm_sdm_send_interval;

extern void pgsm_define_gucs(void);
extern bool pgsm_valid_node_name(const char *name);

/* set in the background worker: its own statements are not tracked */
extern bool pgsm_untracked_process;

/* true only when the library was loaded by shared_preload_libraries */
extern bool pgsm_preloaded;

/* fail with SQLSTATE 55000 unless the library was preloaded */
extern void pgsm_require_preload(void);

/* ---- the entry layout (store.c) ---- */

/* what a row stands for */
#define PGSM_KIND_STATEMENT 0
#define PGSM_KIND_OVERFLOW	1	/* counters of statements that found no room */
#define PGSM_KIND_ERROR		2	/* executions of a statement that ended in ERROR */
#define PGSM_KIND_WARNING	3	/* WARNINGs a statement raised */

/* histogram slots: steps plus an outlier slot at each bounded end */
#define PGSM_MAX_HIST_SLOTS 52

/* a reference to a text in the arena: the text's 64-bit key, 0 = none */
typedef uint64 PgsmTextRef;

/* the texts of an entry */
typedef enum PgsmTextKind
{
	PGSM_T_QUERY,
	PGSM_T_TOP_QUERY,
	PGSM_T_APPNAME,
	PGSM_T_COMMENTS,
	PGSM_T_PLAN,
	PGSM_T_RELATIONS,			/* an Oid array */
	PGSM_T_MESSAGE,
	PGSM_T_NAMES,				/* "role\0database": kept after a DROP */
	PGSM_NTEXTS
} PgsmTextKind;

/*
 * The hash key.  Zero-filled before use: it is hashed as raw bytes, so
 * padding must be deterministic.
 */
typedef struct PgsmKey
{
	int64		bucket_start;	/* bucket start, seconds since the Unix epoch */
	uint64		queryid;
	uint64		top_queryid;
	uint64		planid;
	uint64		appname_hash;
	Oid			userid;
	Oid			dbid;
	uint8		client_addr[16];
	uint8		client_family;	/* 0 (Unix socket or none), AF_INET, AF_INET6 */
	bool		toplevel;
	uint8		kind;
	uint8		pad[5];
} PgsmKey;

typedef struct PgsmTiming
{
	double		total;
	double		min;
	double		max;
	double		m2;				/* sum of squared deviations (Welford) */
} PgsmTiming;

/* what every statement adds comes first: fewer cache lines to write */
typedef struct PgsmCounters
{
	int64		calls;
	int64		rows;
	PgsmTiming	exec;
	int64		shared_blks_hit;
	int64		shared_blks_read;
	int64		shared_blks_dirtied;
	int64		shared_blks_written;
	int64		plans;
	PgsmTiming	plan;
	int64		local_blks_hit;
	int64		local_blks_read;
	int64		local_blks_dirtied;
	int64		local_blks_written;
	int64		temp_blks_read;
	int64		temp_blks_written;
	double		blk_read_time;
	double		blk_write_time;
	double		temp_blk_read_time;
	double		temp_blk_write_time;
	double		cpu_user_time;
	double		cpu_sys_time;
	int64		wal_records;
	int64		wal_fpi;
	uint64		wal_bytes;
	int64		jit_functions;
	double		jit_generation_time;
	int64		jit_inlining_count;
	double		jit_inlining_time;
	int64		jit_optimization_count;
	double		jit_optimization_time;
	int64		jit_emission_count;
	double		jit_emission_time;
} PgsmCounters;

/*
 * A shared entry.  The key and text references never change once the
 * entry is visible, except under the exclusive lock; counters and the
 * error fields are protected by the entry's mutex.
 */
typedef struct PgsmEntry
{
	PgsmKey		key;			/* hash key, must be first */
	slock_t		mutex;			/* protects everything below but the refs */
	uint8		cmd_type;
	uint8		elevel;
	int32		sqlcode;
	PgsmCounters c;				/* next to the mutex: the lines a statement writes */
	uint64		pgsm_query_id;
	bool		query_cut;		/* the query text was cut at pgsm_query_max_len */
	uint8		encoding;		/* encoding of its texts (its database's) */
	PgsmTextRef text[PGSM_NTEXTS];
	int32		hist[FLEXIBLE_ARRAY_MEMBER];	/* pgsm_hist_slots */
} PgsmEntry;

/* ---- one execution, as the hooks hand it to the store ---- */

/* who runs a statement, taken when it starts (pgsm_who_now()) */
typedef struct PgsmWho
{
	Oid			userid;
	uint64		appname_hash;	/* 0: no application name recorded */
} PgsmWho;

typedef struct PgsmExecution
{
	Oid			userid;			/* the role it counts under; 0: the current one */
	bool		started_known;	/* started_by is valid: count under it */
	PgsmWho		started_by;		/* role and application name when it started */
	Oid			top_userid;		/* the role of the top-level statement */
	uint64		queryid;
	uint64		top_queryid;
	uint64		planid;
	bool		toplevel;
	uint8		cmd_type;
	double		exec_ms;
	PgsmCounters delta;			/* calls, rows and the usage of this run */

	/* used only to create an entry (the slow path) */
	const char *source_text;	/* whole source string */
	int			stmt_location;
	int			stmt_len;
	const char *top_source;		/* the top-level statement's source, NULL if top-level */
	int			top_location;
	int			top_len;
	const List *rtable;			/* range table for relations, or NIL */
	const char *plan_text;		/* captured plan, or NULL */

	/* diagnostics raised by the statement, elevel 0 if none */
	int			elevel;
	int			sqlcode;
	const char *message;
	/*
	 * From an error report: the SQL scanner (which raises errors on text it
	 * cannot read) must not run there, so the text is kept raw
	 */
	bool		in_error_report;
	/* the parser read source_text in this message: the scanner reads it again */
	bool		text_parsed;

	/* a utility statement whose constants may be secrets (a role's password) */
	bool		secret_constants;

	/* DECLARE, FETCH/MOVE or CLOSE of a cursor (a shard's fragments), and its name */
	uint8		portal_op;
	const char *portal_name;	/* NULL with CLOSE: CLOSE ALL */
} PgsmExecution;

#define PGSM_PORTAL_NONE 0
#define PGSM_PORTAL_DECLARE 1
#define PGSM_PORTAL_FETCH 2
#define PGSM_PORTAL_CLOSE 3

/*
 * ---- capture.c: one execution becomes a key and, for a new entry, its
 * texts ----
 */

/* the texts a new entry needs, prepared by capture.c without the lock */
typedef struct PgsmNewTexts
{
	char	   *query;
	int			query_len;
	char	   *top_query;
	int			top_query_len;
	const char *appname;
	char	   *comments;
	char	   *plan;
	int			plan_len;
	char	   *message;
	int			message_len;
	char	   *names;			/* role and database names, NUL between */
	int			names_len;
	Oid		   *relids;
	int			nrelids;
	uint64		pgsm_query_id;
	bool		query_cut;
} PgsmNewTexts;

/* the comments column keeps at most this many bytes (README: pgsm_extract_comments) */
#define PGSM_COMMENTS_MAX_LEN 512

extern void pgsm_capture(PgsmExecution *exec);
extern void pgsm_who_now(PgsmWho *who);
extern bool pgsm_in_store;

/* ---- the store (store.c) ---- */
extern int	pgsm_hist_slots;
extern Size pgsm_memsize(void);
extern void pgsm_shmem_request(void);
extern void pgsm_shmem_startup(void);
extern bool pgsm_store_ready(void);
extern bool pgsm_store_locked_by_me(void);
extern bool pgsm_store_add(PgsmKey *key, const PgsmExecution *x);
extern void pgsm_store_new(PgsmKey *key, const PgsmExecution *x, const PgsmNewTexts *t);
extern void pgsm_count_dropped(int64 calls, double exec_time);
extern void pgsm_init_histogram(void);
extern int	pgsm_hist_slot(double ms);
extern double pgsm_hist_edge(int i);
extern int64 pgsm_bucket_of(TimestampTz ts);
extern int64 pgsm_current_bucket(void);
extern int64 pgsm_window_start(void);
extern void pgsm_reset_all(void);
extern bool pgsm_claim_worker(Latch *latch);
extern bool pgsm_claim_worker_from_dead(Latch *latch);
extern bool pgsm_worker_running(Latch *mine);
extern void pgsm_release_worker(Latch *latch);
extern void pgsm_wake_worker(void);

/* read side, for readers.c: a copy of one entry with its texts */
typedef struct PgsmRow
{
	PgsmEntry  *entry;			/* palloc'd copy, pgsm_hist_slots slots */
	char	   *query;
	char	   *top_query;
	char	   *appname;
	char	   *comments;
	char	   *plan;
	char	   *message;
	char	   *names;			/* role and database names, NUL between */
	int			names_len;
	Oid		   *relids;
	int			nrelids;
} PgsmRow;

typedef struct PgsmInfo
{
	int64		max_entries;
	int64		entries;
	int64		overflow_entries;
	int64		text_bytes;
	int64		text_bytes_used;
	int64		max_texts;
	int64		texts;
	int64		overflowed_calls;
	int64		dropped_calls;
	double		dropped_exec_time;
	int64		discarded_calls;
	int64		exported_entries;
	int64		frozen_below;
	int64		oldest_bucket;
	TimestampTz stats_reset;
} PgsmInfo;

extern List *pgsm_copy_rows(int64 below_bucket);

/* readers.c: the view's row (pgsm_internal.pgsm_row) as values, for upstream.c */
#define PGSM_VIEW_COLS 65
typedef struct PgsmRowValues
{
	Datum		values[PGSM_VIEW_COLS + 1]; /* the 65 columns, then query_cut */
	bool		nulls[PGSM_VIEW_COLS + 1];
} PgsmRowValues;
extern List *pgsm_view_rows(bool showtext);
extern void pgsm_get_info(PgsmInfo *info);

/* the export's side (handoff.c, worker.c) */
extern int64 pgsm_freeze_finished(void);
extern void pgsm_mark_exported(int64 below);
extern int64 pgsm_release_exported(int64 below);
extern int64 pgsm_discard_below(int64 bucket_start);

/* for persist.c, in the postmaster only: walk and restore entries with their texts */
typedef void (*PgsmEntryFn) (const PgsmEntry *e, char *const texts[PGSM_NTEXTS],
							 const int lens[PGSM_NTEXTS], void *arg);
extern Size pgsm_entry_size(void);
extern void pgsm_walk_entries(PgsmEntryFn fn, void *arg);
extern bool pgsm_restore_entry(const PgsmEntry *src, char *const texts[PGSM_NTEXTS],
							   const int lens[PGSM_NTEXTS]);

/* a fragment's tag: the coordinator that sent it and its top-level statement */
typedef struct PgsmTag
{
	char		coordinator[NAMEDATALEN];
	int64		parent_queryid;
	int			tag_start;		/* offset of the tag in the statement's text */
} PgsmTag;

/* ---- fragments.c: the shard's table of fragments run for coordinators ---- */

#define PGSM_FRAGMENT_TEXT_LEN 256	/* bytes kept of a fragment's text */

typedef struct PgsmFragmentKey
{
	uint64		coord_hash;		/* hash of the coordinator's name */
	int64		parent_queryid;
	int64		fragment_queryid;
	int64		bucket_start;
	int64		epoch;			/* the sender's freeze generation */
	Oid			dbid;
	Oid			userid;
} PgsmFragmentKey;

typedef struct PgsmFragmentDelta
{
	int64		calls;
	int64		rows;
	double		total_exec_time;
	double		min_exec_time;
	double		max_exec_time;
	int64		shared_blks_hit;
	int64		shared_blks_read;
	int64		temp_blks_written;
	uint64		wal_bytes;
} PgsmFragmentDelta;

typedef struct PgsmFragment
{
	PgsmFragmentKey key;		/* hash key, must be first */
	slock_t		mutex;			/* protects c */
	PgsmFragmentDelta c;		/* the counters, summed */
	int64		wire_id;		/* 0 until frozen, then the id it is sent with */
	uint8		encoding;		/* of the text */
	char		coordinator[NAMEDATALEN];
	char		query[PGSM_FRAGMENT_TEXT_LEN];
} PgsmFragment;

extern Size pgsm_fragments_memsize(void);
extern void pgsm_fragments_request(void);
extern void pgsm_fragments_startup(void);
extern bool pgsm_fragment_statement(const PgsmTag *tag, const char *stmt, int len,
									int64 bucket_start, const PgsmFragmentDelta *d);
extern void pgsm_fragment_declare(const char *name, const PgsmTag *tag, const char *stmt,
								  int len, int64 bucket_start, const PgsmFragmentDelta *d);
extern void pgsm_fragment_fetch(const char *name, const PgsmFragmentDelta *d);
extern bool pgsm_fragment_close(const char *name);
extern int64 pgsm_fragments_freeze(int64 floor);
extern List *pgsm_fragments_copy(int64 below);
extern void pgsm_fragments_release(int64 below);
extern void pgsm_fragments_info(int64 *max, int64 *used, int64 *dropped);
extern void pgsm_fragments_walk(void (*fn) (const PgsmFragment *f, void *arg), void *arg);
extern bool pgsm_fragment_restore(const PgsmFragment *saved);

/* ---- handoff.c: apply something only if the current transaction commits ---- */
typedef void (*PgsmCommitFn) (int64 arg);
extern void pgsm_on_commit(PgsmCommitFn fn, int64 arg);

/* ---- persist.c: keep unexported statistics across a clean restart ---- */
extern void pgsm_load_dump(void);
extern void pgsm_write_dump(int code, Datum arg);

/* ---- pg_stat_monitor.c ---- */
extern const char *pgsm_cmd_type_name(int cmd_type);

/* bucket starts are kept in seconds since the Unix epoch */
#define PGSM_UNIX_EPOCH_SECS \
	((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY)

static inline TimestampTz
pgsm_unix_to_timestamptz(int64 secs)
{
	return (TimestampTz) (secs - PGSM_UNIX_EPOCH_SECS) * USECS_PER_SEC;
}

static inline int64
pgsm_timestamptz_to_unix(TimestampTz ts)
{
	return ts / USECS_PER_SEC + PGSM_UNIX_EPOCH_SECS;
}

/* ---- text helpers (text.c) ---- */
extern char *pgsm_statement_text(const char *source, int location, int len,
								 int *out_len);
extern char *pgsm_cut_text(const char *text, int len, int max_len, int *out_len);
extern char *pgsm_normalize(const char *text, int len, int *out_len);
extern uint64 pgsm_text_query_id(const char *text, int len);
extern uint64 pgsm_utility_query_id(const char *text, int len);
extern char *pgsm_extract_comments_of(const char *text, int len);
extern bool pgsm_scanning;

extern bool pgsm_text_tag(const char *text, int len, PgsmTag *tag);
extern int	pgsm_cursor_query_offset(const char *text, int len);

/* ---- arena.c ---- */
extern uint64 pgsm_hash_bytes(const char *data, Size len);

/* ---- fdwtag.c: the coordinator tags postgres_fdw's remote SQL ---- */
struct PlannedStmt;
extern void pgsm_fdw_tag(struct PlannedStmt *stmt, uint64 parent_queryid);
extern struct PlannedStmt *pgsm_fdw_retag(struct PlannedStmt *stmt, uint64 parent_queryid);

/* ---- hooks (hooks.c) ---- */
extern void pgsm_install_hooks(void);

/* ---- worker.c ---- */
extern void pgsm_register_worker(void);

#endif							/* PGSM_H */
