/*
 * The kinds of chunked job, in one table: a later kind is one struct
 * chunk_kind and its functions, added to the table in chunkkind.c.
 *
 * A kind sizes a job when it is enqueued (plan) and works one chunk at a
 * time (run). run() leaves the chunk's database writes uncommitted in the
 * work connection's transaction: the worker commits them together with the
 * chunk's completion, so a chunk is written whole or not at all, and a
 * worker whose lease was lost writes nothing. Record-level problems go in
 * the result and the chunk completes; anything that makes the chunk's
 * outcome unknown (the API or the database unavailable) is an error of
 * run(): the worker rolls back and the chunk is retried with backoff.
 */
#ifndef CW_CHUNKKIND_H
#define CW_CHUNKKIND_H

#include <jansson.h>
#include <stdbool.h>

#include "config.h"
#include "db.h"
#include "error.h"
#include "mailerlite.h"
#include "queue.h"
#include "ratelimit.h"
#include "store.h"

/* What a kind works with; everything borrowed from the worker. */
struct chunk_env {
	const struct cw_config *cfg;
	struct db *db;		/* the work connection */
	struct ml_client *ml;	/* for kinds that need the API, else NULL */
	struct store *store;	/* for kinds that need the A table, else NULL */
	const char *program;	/* for sync_log */
	const char *run_id;	/* this worker's run, for sync_log */
	/* True once the chunk should be given up: the lease was lost (the job
	 * cancelled, the chunk rescued) or the worker is being stopped. A
	 * kind asks between its steps and returns -1 (any error) when it is. */
	bool (*should_stop)(void *arg);
	void *stop_arg;
};

struct chunk_kind {
	const char *name;
	const char *purpose;		/* one line, for --help and status */
	bool needs_api;			/* an API client is required */
	bool needs_table;		/* the A table's mapping is required */
	bool ordered;			/* its jobs are always ordered */
	long long default_chunk_size;	/* items per chunk when none is given */
	long long max_chunk_size;	/* 0: no limit */
	const char *params_help;	/* the --param keys it takes, for --help */
	/* At enqueue: check params (the kind's options, an object it may add
	 * to) and count the job's items. CW_EXIT_USAGE for a bad option. */
	int (*plan)(const struct chunk_env *env, json_t *params, long long *total_items,
		    struct cw_error *err);
	/* Optional, at enqueue after plan: fix what each chunk covers, for a
	 * job of total items in chunks of chunk_size (the last one may be
	 * short), in params (the key bounds of a push). */
	int (*split)(const struct chunk_env *env, json_t *params, long long total,
		     long long chunk_size, struct cw_error *err);
	/* Work one chunk: 0 with *result (a new object), or -1 with err. */
	int (*run)(const struct chunk_env *env, const struct queue_chunk *chunk, json_t **result,
		   struct cw_error *err);
};

/* The clients kinds need, opened for a set of kinds: an API client (with
 * the shared bucket on a connection of its own when a rate limit is set)
 * and the A table's store (on db, borrowed). chunk_tools_close() frees
 * what was opened; a zeroed struct is closed harmlessly. */
struct chunk_tools {
	struct db *bucket_db;
	struct ratelimit *bucket;
	struct ml_client *ml;
	struct store *store;
};
int chunk_tools_open(struct chunk_tools *t, const struct cw_config *cfg, struct db *db,
		     bool api, bool table, const char *appname, struct cw_error *err);
void chunk_tools_close(struct chunk_tools *t);

/* The kind of that name, or NULL. */
const struct chunk_kind *chunk_kind_find(const char *name);
/* Every kind, in table order: *n of them. */
const struct chunk_kind *const *chunk_kinds(size_t *n);
/* The kinds' names, comma-separated (a static string). */
const char *chunk_kind_names(void);

/* A chunk's params member: an integer in [min, max] (def when absent), or
 * -1 with CW_EXIT_USAGE naming it. For plan() and run(). */
int chunk_param_int(const json_t *params, const char *key, long long min, long long max,
		    long long def, long long *value, struct cw_error *err);
/* Refuse members of params other than those in keys (NULL-terminated). */
int chunk_params_only(const json_t *params, const char *kind, const char *const *keys,
		      struct cw_error *err);

#endif
