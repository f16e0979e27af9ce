/* The push kind: A rows in key ranges, created or updated in B. */
#include "kind_push.h"
#include "exitcode.h"
#include "jsonget.h"
#include "reconcile.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>

static const char *const push_keys[] = { "resubscribe", "bounds", NULL };

/* Text "true"/"false" (from --param) or a JSON boolean. */
static int param_bool(const json_t *params, const char *key, bool *value, struct cw_error *err)
{
	const json_t *v = json_object_get(params, key);
	*value = false;
	if (!v || json_is_false(v))
		return 0;
	if (json_is_true(v) || (json_is_string(v) && !strcmp(json_string_value(v), "true"))) {
		*value = true;
		return 0;
	}
	if (json_is_string(v) && !strcmp(json_string_value(v), "false"))
		return 0;
	return cw_error_set(err, CW_EXIT_USAGE, "%s must be true or false", key);
}

static int push_plan(const struct chunk_env *env, json_t *params, long long *total_items,
		     struct cw_error *err)
{
	bool resubscribe;
	if (chunk_params_only(params, "push", push_keys, err) < 0 ||
	    param_bool(params, "resubscribe", &resubscribe, err) < 0)
		return -1;
	if (json_object_get(params, "bounds"))
		return cw_error_set(err, CW_EXIT_USAGE, "bounds are set by enqueue, not given");
	json_object_set_new(params, "resubscribe", json_boolean(resubscribe));
	char *sql = xasprintf("SELECT count(*) FROM %s", store_table(env->store));
	PGresult *res = db_query(env->db, sql, 0, NULL, err);
	free(sql);
	if (!res)
		return -1;
	*total_items = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}

/* The key at every chunk_size-th row: chunk i runs from bound i-1 to bound i. */
static int push_split(const struct chunk_env *env, json_t *params, long long total,
		      long long chunk_size, struct cw_error *err)
{
	const struct store *st = env->store;
	char size[24];
	snprintf(size, sizeof(size), "%lld", chunk_size);
	const char *p[] = { size };
	char *sql = xasprintf("SELECT coalesce(pg_catalog.jsonb_agg(k ORDER BY n), '[]') FROM"
			      " (SELECT t.%s::text AS k, pg_catalog.row_number() OVER (ORDER BY t.%s) - 1"
			      "  AS n FROM %s t) r WHERE n > 0 AND n %% $1::bigint = 0",
			      store_key(st), store_key(st), store_table(st));
	PGresult *res = db_query(env->db, sql, 1, p, err);
	free(sql);
	if (!res)
		return -1;
	json_t *bounds = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
	PQclear(res);
	if (!json_is_array(bounds)) {
		json_decref(bounds);
		return cw_error_set(err, CW_EXIT_SOFTWARE, "could not read the key bounds");
	}
	json_object_set_new(params, "bounds", bounds);
	return 0;
}

/* The chunk's key range: *from NULL from the start, *to NULL to the end;
 * false when the chunk lies past the last bound (the table shrank). */
static bool chunk_range(const struct queue_chunk *c, const char **from, const char **to)
{
	const json_t *bounds = json_object_get(c->params, "bounds");
	size_t n = json_array_size(bounds), i = (size_t)c->chunk_index;

	*from = *to = NULL;
	if (i > 0) {
		if (i - 1 >= n)
			return false;
		*from = json_string_value(json_array_get(bounds, i - 1));
	}
	if (i < n)
		*to = json_string_value(json_array_get(bounds, i));
	return true;
}

static json_t *result_of(const struct reconcile_counts *k, size_t rows, json_t *report)
{
	json_t *errors = json_object_get(report, "errors");
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:O?}", "rows",
			 (json_int_t)rows, "unchanged", (json_int_t)k->unchanged, "createdInB",
			 (json_int_t)k->created_in_b, "updatedInB", (json_int_t)k->to_b, "linked",
			 (json_int_t)k->linked, "conflicts", (json_int_t)k->conflicts, "skipped",
			 (json_int_t)k->skipped, "deferred", (json_int_t)k->deferred, "errors",
			 (json_int_t)k->errors, "errorList", json_array_size(errors) ? errors : NULL);
}

/* The managed groups' ids a worker resolved for a job, kept for its later
 * chunks of that job: a run asks B for them once, as enterprise-sync's
 * does, not once per chunk. */
static struct {
	long long parent_id;
	json_t *ids;
} groups_seen;

static void groups_reuse(struct reconcile *rec, long long parent_id)
{
	if (groups_seen.ids && groups_seen.parent_id == parent_id)
		reconcile_use_group_ids(rec, groups_seen.ids);
}

static void groups_keep(const struct reconcile *rec, long long parent_id)
{
	const json_t *ids = reconcile_group_ids(rec);
	if (!ids)
		return;
	json_decref(groups_seen.ids);
	groups_seen.ids = json_deep_copy(ids);
	groups_seen.parent_id = parent_id;
}

static int push_run(const struct chunk_env *env, const struct queue_chunk *chunk, json_t **result,
		    struct cw_error *err)
{
	const char *from, *to;
	bool resubscribe = false;
	struct reconcile_counts counts = { 0 };

	if (param_bool(chunk->params, "resubscribe", &resubscribe, err) < 0)
		return -1;
	if (!chunk_range(chunk, &from, &to)) {
		*result = result_of(&counts, 0, NULL);
		return 0;
	}
	struct reconcile_options ro = { .direction = CW_DIR_A_TO_B,
					.resubscribe = resubscribe,
					.should_stop = env->should_stop,
					.stop_arg = env->stop_arg };
	struct reconcile *rec = reconcile_new(env->db, env->ml, env->cfg, env->store, env->program,
					      env->run_id, &ro);
	groups_reuse(rec, chunk->parent_id);
	json_t *rows = NULL, *subs = NULL, *report = json_object();
	struct contact_ref *refs = NULL;
	size_t n = 0;
	int rc = -1;

	/* The reads, like the writes, stop at the first /batch after a lost
	 * lease (reconcile_options.should_stop). */
	if (reconcile_a_range(rec, from, to, &rows, err) < 0 ||
	    reconcile_fetch_b(rec, rows, &subs, err) < 0)
		goto out;
	n = json_array_size(rows);
	refs = xcalloc(n ? n : 1, sizeof(*refs));
	for (size_t i = 0; i < n; i++) {
		const json_t *row = json_array_get(rows, i), *sub = json_array_get(subs, i);
		refs[i].subscriber = json_is_object(sub) ? sub : NULL;
		refs[i].a_key = jsonget_string(row, "k");
		refs[i].email = jsonget_string(row, "e");
	}
	if (env->should_stop(env->stop_arg)) {
		cw_error_set(err, CW_EXIT_PARTIAL, "stopped");
		goto out;
	}
	/* Left open: the worker commits it with the completion. */
	if (db_begin(env->db, err) < 0 ||
	    reconcile_contacts(rec, refs, n, &counts, report, NULL, err) < 0)
		goto out;
	*result = result_of(&counts, n, report);
	groups_keep(rec, chunk->parent_id);
	rc = 0;
out:
	free(refs);
	json_decref(rows);
	json_decref(subs);
	json_decref(report);
	reconcile_free(rec);
	return rc;
}

const struct chunk_kind kind_push = {
	.name = "push",
	.purpose = "A rows in key ranges, created or updated in MailerLite through /batch",
	.needs_api = true,
	.needs_table = true,
	.default_chunk_size = 500,
	.max_chunk_size = 1000,
	.params_help = "resubscribe=true|false",
	.plan = push_plan,
	.split = push_split,
	.run = push_run,
};
