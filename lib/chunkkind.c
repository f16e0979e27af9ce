/* The table of chunked job kinds, their shared parameter checks, and the
 * noop kind. */
#include "chunkkind.h"
#include "cli.h"
#include "exitcode.h"
#include "kind_backfill.h"
#include "kind_push.h"
#include "strbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- noop: a job that does nothing, for smoke tests and benchmarks ---- */

static const char *const noop_keys[] = { "items", "sleep_ms", "fail_chunk", "fail_attempts", NULL };

/* What a noop chunk does, from the job's params. */
struct noop {
	long long sleep_ms;	 /* how long each chunk takes */
	long long fail_chunk;	 /* the chunk that fails, -1 every chunk, -2 none */
	long long fail_attempts; /* the attempts of it that fail */
};

static int noop_params(const json_t *params, struct noop *n, struct cw_error *err)
{
	if (chunk_param_int(params, "sleep_ms", 0, 3600000, 0, &n->sleep_ms, err) < 0 ||
	    chunk_param_int(params, "fail_chunk", -1, 1000000, -2, &n->fail_chunk, err) < 0)
		return -1;
	return chunk_param_int(params, "fail_attempts", 1, 1000, 1000, &n->fail_attempts, err);
}

static int noop_plan(const struct chunk_env *env, json_t *params, long long *total_items,
		     struct cw_error *err)
{
	struct noop n;
	if (chunk_params_only(params, "noop", noop_keys, err) < 0 ||
	    noop_params(params, &n, err) < 0 ||
	    chunk_param_int(params, "items", 0, 1000000000000LL, 100, total_items, err) < 0)
		return -1;
	json_object_del(params, "items");
	return 0;
}

/* Sleeps sleep_ms (waking to look at should_stop), then fails when this is
 * chunk fail_chunk (-1: any) and attempt fail_attempts or earlier. */
static int noop_run(const struct chunk_env *env, const struct queue_chunk *chunk, json_t **result,
		    struct cw_error *err)
{
	struct noop n;

	if (noop_params(chunk->params, &n, err) < 0)
		return -1;
	for (long long slept = 0; slept < n.sleep_ms; slept += 50) {
		if (env->should_stop(env->stop_arg))
			return cw_error_set(err, CW_EXIT_PARTIAL, "stopped after %lld ms", slept);
		cli_sleep_ms(n.sleep_ms - slept < 50 ? (long)(n.sleep_ms - slept) : 50);
	}
	if ((n.fail_chunk == -1 || n.fail_chunk == chunk->chunk_index) &&
	    chunk->attempts <= n.fail_attempts)
		return cw_error_set(err, CW_EXIT_UNAVAILABLE, "chunk %d failed on purpose (attempt %d)",
				    chunk->chunk_index, chunk->attempts);
	*result = json_pack("{s:I}", "items", (json_int_t)(chunk->end_offset - chunk->start_offset));
	return 0;
}

static const struct chunk_kind kind_noop = {
	.name = "noop",
	.purpose = "does nothing (sleep_ms each chunk, failing on request): smoke tests, benchmarks",
	.default_chunk_size = 1,
	.params_help = "items=N sleep_ms=MS fail_chunk=I|-1 fail_attempts=N",
	.plan = noop_plan,
	.run = noop_run,
};

/* ---- the table ---- */

static const struct chunk_kind *const kinds[] = { &kind_backfill, &kind_push, &kind_noop };

const struct chunk_kind *chunk_kind_find(const char *name)
{
	for (size_t i = 0; name && i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(kinds[i]->name, name) == 0)
			return kinds[i];
	return NULL;
}

const struct chunk_kind *const *chunk_kinds(size_t *n)
{
	*n = sizeof(kinds) / sizeof(kinds[0]);
	return kinds;
}

const char *chunk_kind_names(void)
{
	static char names[256];
	if (!names[0]) {
		for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
			if (i)
				strcat(names, ", ");
			strcat(names, kinds[i]->name);
		}
	}
	return names;
}

/* ---- the clients ---- */

int chunk_tools_open(struct chunk_tools *t, const struct cw_config *cfg, struct db *db,
		     bool api, bool table, const char *appname, struct cw_error *err)
{
	memset(t, 0, sizeof(*t));
	if (api) {
		/* The bucket's row lock must never wait on a chunk's transaction. */
		if (cfg->rate_limit > 0 && !(t->bucket_db = db_connect(cfg, appname, err)))
			return -1;
		if (!(t->bucket = ratelimit_new(t->bucket_db, cfg->rate_limit, cfg->import_rate_limit,
						err)) ||
		    !(t->ml = ml_client_new(cfg, t->bucket, err)))
			return -1;
	}
	if (table && !(t->store = store_open(db, cfg, err)))
		return -1;
	return 0;
}

void chunk_tools_close(struct chunk_tools *t)
{
	store_free(t->store);
	ml_client_free(t->ml);
	ratelimit_free(t->bucket);
	db_close(t->bucket_db);
	memset(t, 0, sizeof(*t));
}

/* ---- parameters ---- */

int chunk_param_int(const json_t *params, const char *key, long long min, long long max,
		    long long def, long long *value, struct cw_error *err)
{
	const json_t *v = json_object_get(params, key);

	if (!v || json_is_null(v)) {
		*value = def;
		return 0;
	}
	/* "--param n=5" arrives as text. */
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		char *end;
		errno = 0;
		long long n = strtoll(s, &end, 10);
		if (*s && !*end && errno == 0 && n >= min && n <= max) {
			*value = n;
			return 0;
		}
	} else if (json_is_integer(v) && json_integer_value(v) >= min &&
		   json_integer_value(v) <= max) {
		*value = json_integer_value(v);
		return 0;
	}
	return cw_error_set(err, CW_EXIT_USAGE, "%s must be a whole number from %lld to %lld", key,
			    min, max);
}

int chunk_params_only(const json_t *params, const char *kind, const char *const *keys,
		      struct cw_error *err)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)params, key, v) {
		bool known = false;
		for (size_t i = 0; keys[i] && !known; i++)
			known = strcmp(keys[i], key) == 0;
		if (!known) {
			struct strbuf list;
			strbuf_init(&list, 64);
			for (size_t i = 0; keys[i]; i++)
				strbuf_addf(&list, "%s%s", i ? ", " : "", keys[i]);
			cw_error_set(err, CW_EXIT_USAGE, "the %s kind has no parameter \"%s\"", kind,
				     key);
			cw_error_hint(err, "its parameters: %s", list.len ? list.buf : "none");
			strbuf_release(&list);
			return -1;
		}
	}
	return 0;
}
