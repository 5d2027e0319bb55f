/*-------------------------------------------------------------------------
 *
 * persist.c
 *		Keep unexported statistics across a clean restart: the postmaster
 *		writes every live entry with its texts to a file when it exits
 *		normally, and reads them back (then removes the file) when it
 *		creates shared memory.  The worker's first pass exports them.  A
 *		shard's fragments not yet drained go to a file of their own, read
 *		back the same way, for the sender's next pass.
 *
 * After a crash there is no file (it was removed when read), so a crash
 * loses only what was not yet exported, never counts anything twice.
 *
 *-------------------------------------------------------------------------
 */
#include "pgsm.h"

#include <unistd.h>

#include "catalog/pg_control.h"
#include "common/controldata_utils.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/memutils.h"

#define PGSM_DUMP_FILE "pg_stat/pg_stat_monitor.stat"
#define PGSM_DUMP_TMP PGSM_DUMP_FILE ".tmp"
#define PGSM_DUMP_MAGIC 0x50534D32	/* "PSM2" */
#define PGSM_DUMP_FORMAT 5	/* 2: counters moved next to the mutex; 3: encoding;
							 * 4: role and database names; 5: no unscanned
							 * flag, error and warning rows */
#define PGSM_FRAGMENT_FILE "pg_stat/pg_stat_monitor_fragments.stat"
#define PGSM_FRAGMENT_TMP PGSM_FRAGMENT_FILE ".tmp"
#define PGSM_FRAGMENT_MAGIC 0x50534D46	/* "PSMF" */
#define PGSM_FRAGMENT_FORMAT 2		/* 2: with each entry's epoch and wire id */

typedef struct PgsmDumpHeader
{
	uint32		magic;
	uint32		format;
	uint32		entry_size;
	uint32		hist_slots;
} PgsmDumpHeader;

static void write_fragments(void);
static void load_fragments(void);

typedef struct DumpState
{
	FILE	   *file;
	bool		failed;
	int64		count;
} DumpState;

static void
write_or_fail(DumpState *st, const void *data, size_t len)
{
	if (!st->failed && len > 0 && fwrite(data, 1, len, st->file) != len)
		st->failed = true;
}

static void
dump_entry(const PgsmEntry *e, char *const texts[PGSM_NTEXTS],
		   const int lens[PGSM_NTEXTS], void *arg)
{
	DumpState  *st = arg;
	int			i;

	write_or_fail(st, e, pgsm_entry_size());
	for (i = 0; i < PGSM_NTEXTS; i++)
	{
		write_or_fail(st, &lens[i], sizeof(int));
		if (lens[i] > 0)
			write_or_fail(st, texts[i], lens[i]);
	}
	st->count++;
}

/* whether the server wrote its shutdown checkpoint (not after immediate mode) */
static bool
shut_down_cleanly(void)
{
	bool		crc_ok;
	ControlFileData *control = get_controlfile(DataDir, &crc_ok);
	bool		clean = crc_ok && control->state == DB_SHUTDOWNED;

	pfree(control);
	return clean;
}

/* what fills a dump file after its header */
typedef void (*PgsmDumpBody) (DumpState *st);

static void
entries_body(DumpState *st)
{
	pgsm_walk_entries(dump_entry, st);
}

/*
 * Write a header and a body to 'tmp', then rename it to 'path'; a failure
 * is logged and leaves no file.
 */
static void
write_file(const char *tmp, const char *path, const PgsmDumpHeader *hdr, PgsmDumpBody body)
{
	DumpState	st = {NULL, false, 0};

	st.file = AllocateFile(tmp, PG_BINARY_W);
	if (st.file == NULL)
		goto error;
	write_or_fail(&st, hdr, sizeof(*hdr));
	body(&st);
	if (st.failed || FreeFile(st.file) != 0)
	{
		st.file = NULL;
		goto error;
	}
	(void) durable_rename(tmp, path, LOG);
	return;

error:
	ereport(LOG,
			(errcode_for_file_access(),
			 errmsg("could not write file \"%s\": %m", tmp)));
	if (st.file)
		FreeFile(st.file);
	unlink(tmp);
}

/* on_shmem_exit callback of the postmaster: save every live entry and fragment */
void
pgsm_write_dump(int code, Datum arg)
{
	PgsmDumpHeader hdr = {PGSM_DUMP_MAGIC, PGSM_DUMP_FORMAT, 0, 0};

	/*
	 * After a crash or an immediate shutdown, backends may have died in the
	 * middle of an update: save nothing.
	 */
	if (code != 0 || !pgsm_store_ready() || !shut_down_cleanly())
		return;
	write_fragments();
	hdr.entry_size = (uint32) pgsm_entry_size();
	hdr.hist_slots = (uint32) pgsm_hist_slots;
	write_file(PGSM_DUMP_TMP, PGSM_DUMP_FILE, &hdr, entries_body);
}

static bool
read_exact(FILE *file, void *data, size_t len)
{
	return len == 0 || fread(data, 1, len, file) == len;
}

/* read one saved entry and its texts into palloc'd buffers */
static bool
read_entry(FILE *file, PgsmEntry *e, char *texts[PGSM_NTEXTS], int lens[PGSM_NTEXTS])
{
	int			i;

	if (!read_exact(file, e, pgsm_entry_size()))
		return false;
	for (i = 0; i < PGSM_NTEXTS; i++)
	{
		texts[i] = NULL;
		if (!read_exact(file, &lens[i], sizeof(int)) || (lens[i] > 0 && (Size) lens[i] > MaxAllocSize))
			return false;
		if (lens[i] < 0)
			continue;
		texts[i] = palloc(lens[i] + 1);
		if (!read_exact(file, texts[i], lens[i]))
			return false;
	}
	return true;
}

/* at shared memory creation in the postmaster: restore and remove the dump */
void
pgsm_load_dump(void)
{
	FILE	   *file = AllocateFile(PGSM_DUMP_FILE, PG_BINARY_R);
	PgsmDumpHeader hdr;
	PgsmEntry  *e;
	int64		restored = 0,
				lost_calls = 0;

	load_fragments();
	if (file == NULL)
		return;
	if (!read_exact(file, &hdr, sizeof(hdr)))
	{
		ereport(LOG, (errmsg("ignoring a truncated pg_stat_monitor statistics file")));
		goto done;
	}
	if (hdr.magic == PGSM_DUMP_MAGIC && hdr.format != PGSM_DUMP_FORMAT)
	{
		ereport(LOG,
				(errmsg("ignoring pg_stat_monitor statistics saved by a build with another file format (%u, this build reads %u)",
						hdr.format, PGSM_DUMP_FORMAT)));
		goto done;
	}
	if (hdr.magic != PGSM_DUMP_MAGIC || hdr.entry_size != pgsm_entry_size() ||
		hdr.hist_slots != (uint32) pgsm_hist_slots)
	{
		ereport(LOG,
				(errmsg("ignoring pg_stat_monitor statistics saved with other settings")));
		goto done;
	}
	e = palloc(pgsm_entry_size());
	for (;;)
	{
		char	   *texts[PGSM_NTEXTS];
		int			lens[PGSM_NTEXTS];

		if (!read_entry(file, e, texts, lens))
			break;
		if (pgsm_restore_entry(e, texts, lens))
			restored++;
		else
		{
			lost_calls += e->c.calls;
			pgsm_count_dropped(e->c.calls, e->c.exec.total);
		}
		for (int i = 0; i < PGSM_NTEXTS; i++)
			if (texts[i])
				pfree(texts[i]);
	}
	pfree(e);
	ereport(LOG,
			(errmsg("pg_stat_monitor restored " INT64_FORMAT " statistics entries saved at shutdown", restored),
			 lost_calls > 0 ? errdetail(INT64_FORMAT " calls found no room and were counted as dropped.", lost_calls) : 0));
done:
	FreeFile(file);
	unlink(PGSM_DUMP_FILE);
}

/* ---------------------------------------------------------------- fragments */

static void
dump_fragment(const PgsmFragment *f, void *arg)
{
	DumpState  *st = arg;

	write_or_fail(st, f, sizeof(PgsmFragment));
	st->count++;
}

static void
fragments_body(DumpState *st)
{
	pgsm_fragments_walk(dump_fragment, st);
}

/* at a clean shutdown (the postmaster): save the fragments not yet drained */
static void
write_fragments(void)
{
	PgsmDumpHeader hdr = {PGSM_FRAGMENT_MAGIC, PGSM_FRAGMENT_FORMAT, (uint32) sizeof(PgsmFragment), 0};

	write_file(PGSM_FRAGMENT_TMP, PGSM_FRAGMENT_FILE, &hdr, fragments_body);
}

/* at shared memory creation (the postmaster): restore and remove the saved fragments */
static void
load_fragments(void)
{
	FILE	   *file = AllocateFile(PGSM_FRAGMENT_FILE, PG_BINARY_R);
	PgsmDumpHeader hdr;
	PgsmFragment f;
	int64		restored = 0;

	if (file == NULL)
		return;
	if (!read_exact(file, &hdr, sizeof(hdr)) || hdr.magic != PGSM_FRAGMENT_MAGIC ||
		hdr.format != PGSM_FRAGMENT_FORMAT || hdr.entry_size != sizeof(PgsmFragment))
		ereport(LOG, (errmsg("ignoring an unreadable pg_stat_monitor fragment file")));
	else
	{
		while (read_exact(file, &f, sizeof(f)))
			restored += pgsm_fragment_restore(&f) ? 1 : 0;
		ereport(LOG,
				(errmsg("pg_stat_monitor restored " INT64_FORMAT " fragment entries saved at shutdown",
						restored)));
	}
	FreeFile(file);
	unlink(PGSM_FRAGMENT_FILE);
}
