/*
 * A walk over cursor-paginated pages done ahead by a thread: while the job
 * writes one batch to the database, the next pages are already being
 * fetched, parsed and turned into rows. At most `depth` pages wait in the
 * queue, so memory stays flat however long the walk is.
 *
 * The feed knows nothing of MailerLite: the caller gives a fetch function
 * (one page from a cursor) and a row function (one item to a row), both
 * run on the feed's thread with the objects they close over, which the
 * caller must not touch until pagefeed_stop() returns.
 */
#ifndef CW_PAGEFEED_H
#define CW_PAGEFEED_H

#include <jansson.h>
#include <stddef.h>

#include "error.h"

struct feed_row {
	char *id;	/* the item's id */
	char *text;	/* what the row function made of it */
};

struct feed_page {
	char *cursor;		/* the cursor that fetched this page; NULL for the first */
	char *next_cursor;	/* NULL on the last page */
	struct feed_row *rows;
	size_t nrows;
	size_t unusable;	/* items the row function refused */
	size_t resumed_past;	/* items dropped because an earlier run did them */
};

/* Fetch the page at cursor (NULL: the first). On success *root is a new
 * reference owning the page, *items a borrowed array inside it, and
 * *next_cursor a new string or NULL on the last page. */
typedef int (*feed_fetch_fn)(void *arg, const char *cursor, json_t **root, const json_t **items,
			     char **next_cursor, struct cw_error *err);
/* Make a row of one item (borrowed): a new string, and *id a new string.
 * NULL when the item is unusable. */
typedef char *(*feed_row_fn)(void *arg, const json_t *item, char **id);

struct pagefeed_options {
	const char *start_cursor;	/* NULL: from the beginning (copied) */
	const char *resume_after_id;	/* on the first page, drop ids >= this (copied) */
	int depth;			/* pages fetched ahead; 0 means 2 */
	feed_fetch_fn fetch;
	void *fetch_arg;
	feed_row_fn row;
	void *row_arg;
};

struct pagefeed;

struct pagefeed *pagefeed_start(const struct pagefeed_options *opts);

/* The next page, waiting up to timeout_ms: 1 with *page (the caller frees
 * it with feed_page_free), 0 at the end of the walk, 2 when the time ran
 * out (ask again), -1 when the fetch failed (err is its error). */
int pagefeed_next(struct pagefeed *feed, struct feed_page **page, long timeout_ms,
		  struct cw_error *err);

/* Stop the thread (an in-flight fetch finishes or fails first), drop the
 * queued pages and free the feed. NULL is fine. */
void pagefeed_stop(struct pagefeed *feed);

void feed_page_free(struct feed_page *page);

#endif
