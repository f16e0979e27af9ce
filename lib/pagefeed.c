/* Fetching the pages of a cursor walk on a thread, a bounded queue ahead of the job. */
#include "pagefeed.h"
#include "exitcode.h"
#include "record.h"
#include "xalloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct pagefeed {
	struct pagefeed_options opts;
	char *start_cursor;
	char *resume_after_id;
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t changed;
	struct feed_page **queue;	/* ring of opts.depth pages */
	size_t head, count;
	bool stop;			/* the consumer is gone */
	bool finished;			/* the walk ended or failed */
	int failed;
	struct cw_error err;
};

void feed_page_free(struct feed_page *page)
{
	if (!page)
		return;
	for (size_t i = 0; i < page->nrows; i++) {
		free(page->rows[i].id);
		free(page->rows[i].text);
	}
	free(page->rows);
	free(page->cursor);
	free(page->next_cursor);
	free(page);
}

static struct feed_page *make_page(struct pagefeed *feed, const char *cursor, const json_t *items,
				   char *next_cursor, bool first)
{
	struct feed_page *page = xcalloc(1, sizeof(*page));
	size_t n = json_array_size(items);

	page->cursor = cursor ? xstrdup(cursor) : NULL;
	page->next_cursor = next_cursor;
	page->rows = xcalloc(n ? n : 1, sizeof(*page->rows));
	for (size_t i = 0; i < n; i++) {
		char *id = NULL;
		char *text = feed->opts.row(feed->opts.row_arg, json_array_get(items, i), &id);
		if (!text) {
			free(id);
			page->unusable++;
			continue;
		}
		/* Pages run newest first (ids descending): on the page an earlier
		 * run stopped in, everything down to its last id is done. */
		if (first && feed->resume_after_id && record_id_cmp(id, feed->resume_after_id) >= 0) {
			free(id);
			free(text);
			page->resumed_past++;
			continue;
		}
		page->rows[page->nrows].id = id;
		page->rows[page->nrows].text = text;
		page->nrows++;
	}
	return page;
}

/*
 * A walk must move forward: each page newer-to-older, below the last id of
 * the page before, and never naming its own cursor as the next one. A
 * server that breaks this would otherwise be walked for ever, and its
 * looping cursor saved for the next run to loop on too.
 */
static int check_progress(const struct feed_page *page, const char *cursor, const char *lowest_id,
			  struct cw_error *err)
{
	if (cursor && page->next_cursor && !strcmp(cursor, page->next_cursor))
		return cw_error_set(err, CW_EXIT_UNAVAILABLE,
				    "the API named a page's own cursor as its next page");
	for (size_t i = 0; i < page->nrows; i++) {
		const char *bound = i ? page->rows[i - 1].id : lowest_id;
		if (bound && record_id_cmp(page->rows[i].id, bound) >= 0) {
			cw_error_set(err, CW_EXIT_UNAVAILABLE,
				     "the API listed id %.24s after id %.24s, out of the newest-first "
				     "order a cursor walk needs",
				     page->rows[i].id, bound);
			return -1;
		}
	}
	return 0;
}

static void feed_fail(struct pagefeed *feed, const struct cw_error *err)
{
	pthread_mutex_lock(&feed->lock);
	feed->failed = 1;
	feed->err = *err;
	feed->finished = true;
	pthread_cond_broadcast(&feed->changed);
	pthread_mutex_unlock(&feed->lock);
}

static void *feed_main(void *arg)
{
	struct pagefeed *feed = arg;
	char *cursor = feed->start_cursor ? xstrdup(feed->start_cursor) : NULL;
	char *lowest_id = NULL;
	bool first = true;

	for (;;) {
		pthread_mutex_lock(&feed->lock);
		while (!feed->stop && feed->count == (size_t)feed->opts.depth)
			pthread_cond_wait(&feed->changed, &feed->lock);
		bool stop = feed->stop;
		pthread_mutex_unlock(&feed->lock);
		if (stop)
			break;

		json_t *root = NULL;
		const json_t *items = NULL;
		char *next = NULL;
		struct cw_error err;
		cw_error_clear(&err);
		if (feed->opts.fetch(feed->opts.fetch_arg, cursor, &root, &items, &next, &err) < 0) {
			feed_fail(feed, &err);
			break;
		}
		/* The page owns next once queued, and the job may free it at
		 * once: keep a copy for the following fetch first. */
		char *following = next ? xstrdup(next) : NULL;
		struct feed_page *page = make_page(feed, cursor, items, next, first);
		json_decref(root);
		first = false;
		if (check_progress(page, cursor, lowest_id, &err) < 0) {
			feed_page_free(page);
			free(following);
			feed_fail(feed, &err);
			break;
		}
		if (page->nrows) {
			free(lowest_id);
			lowest_id = xstrdup(page->rows[page->nrows - 1].id);
		}

		pthread_mutex_lock(&feed->lock);
		feed->queue[(feed->head + feed->count) % (size_t)feed->opts.depth] = page;
		feed->count++;
		if (!next)
			feed->finished = true;
		pthread_cond_broadcast(&feed->changed);
		pthread_mutex_unlock(&feed->lock);

		free(cursor);
		cursor = following;
		if (!cursor)
			break;
	}
	free(cursor);
	free(lowest_id);
	return NULL;
}

struct pagefeed *pagefeed_start(const struct pagefeed_options *opts)
{
	struct pagefeed *feed = xcalloc(1, sizeof(*feed));
	pthread_condattr_t attr;

	feed->opts = *opts;
	if (feed->opts.depth <= 0)
		feed->opts.depth = 2;
	feed->start_cursor = opts->start_cursor ? xstrdup(opts->start_cursor) : NULL;
	feed->resume_after_id = opts->resume_after_id ? xstrdup(opts->resume_after_id) : NULL;
	feed->queue = xcalloc((size_t)feed->opts.depth, sizeof(*feed->queue));
	pthread_mutex_init(&feed->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&feed->changed, &attr);
	pthread_condattr_destroy(&attr);
	feed->started = pthread_create(&feed->thread, NULL, feed_main, feed) == 0;
	if (!feed->started) {
		/* No thread: fail the walk the way a fetch would. */
		feed->failed = 1;
		feed->finished = true;
		cw_error_set(&feed->err, CW_EXIT_SOFTWARE, "could not start the page fetching thread");
	}
	return feed;
}

int pagefeed_next(struct pagefeed *feed, struct feed_page **page, long timeout_ms,
		  struct cw_error *err)
{
	struct timespec deadline;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	*page = NULL;
	pthread_mutex_lock(&feed->lock);
	for (;;) {
		if (feed->count > 0) {
			*page = feed->queue[feed->head];
			feed->queue[feed->head] = NULL;
			feed->head = (feed->head + 1) % (size_t)feed->opts.depth;
			feed->count--;
			pthread_cond_broadcast(&feed->changed);
			rc = 1;
			break;
		}
		if (feed->finished) {
			if (feed->failed && err)
				*err = feed->err;
			rc = feed->failed ? -1 : 0;
			break;
		}
		if (pthread_cond_timedwait(&feed->changed, &feed->lock, &deadline) == ETIMEDOUT &&
		    feed->count == 0 && !feed->finished) {
			rc = 2;
			break;
		}
	}
	pthread_mutex_unlock(&feed->lock);
	return rc;
}

void pagefeed_stop(struct pagefeed *feed)
{
	if (!feed)
		return;
	pthread_mutex_lock(&feed->lock);
	feed->stop = true;
	pthread_cond_broadcast(&feed->changed);
	pthread_mutex_unlock(&feed->lock);
	if (feed->started)
		pthread_join(feed->thread, NULL);
	while (feed->count > 0) {
		feed_page_free(feed->queue[feed->head]);
		feed->head = (feed->head + 1) % (size_t)feed->opts.depth;
		feed->count--;
	}
	pthread_cond_destroy(&feed->changed);
	pthread_mutex_destroy(&feed->lock);
	free(feed->queue);
	free(feed->start_cursor);
	free(feed->resume_after_id);
	free(feed);
}
