/*
 * The backfill kind: backfill-sync's work in chunks. B's list is paged by
 * cursor, so no chunk can know where its pages begin until the chunk
 * before it has read them: the job is ordered, and chunk i starts at the
 * cursor chunk i-1 ended at (kept in its result). Each chunk reads about
 * its share of subscribers (the last one reads to the end of the list)
 * and links them by email exactly as backfill-sync does: crosswalk rows
 * and shadows, committed with the chunk's completion. Workers on any
 * number of machines take turns, under the one shared API bucket.
 */
#ifndef CW_KIND_BACKFILL_H
#define CW_KIND_BACKFILL_H

#include "chunkkind.h"

extern const struct chunk_kind kind_backfill;

#endif
