/*-------------------------------------------------------------------------
 *
 * arena.h
 *		The text arena (arena.c), used by the store only.  Callers hold the
 *		store's lock: EXCLUSIVE to store or release, SHARED to read.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGSM_ARENA_H
#define PGSM_ARENA_H

#include "pgsm.h"

extern Size pgsm_arena_memsize(long max_texts, Size arena_size);
extern void pgsm_arena_startup(long max_texts, Size arena_size);
extern void pgsm_arena_usage(int64 *size, int64 *used, int64 *max_texts, int64 *texts);
extern bool pgsm_arena_has_room(Size bytes, int ntexts);
extern PgsmTextRef pgsm_text_store(const char *data, Size len);
extern void pgsm_text_release(PgsmTextRef ref);
extern char *pgsm_text_copy(PgsmTextRef ref, int *len);
extern char *pgsm_text_peek(PgsmTextRef ref, int *len);

#endif							/* PGSM_ARENA_H */
