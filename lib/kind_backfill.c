/* The backfill kind: B's pages in order, linked to A by email. */
#include "kind_backfill.h"
#include "crosswalk.h"
#include "exitcode.h"
#include "job.h"
#include "jsonget.h"
#include "pagecap.h"
#include "result.h"
#include "state.h"
#include "strbuf.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>

static const char *const backfill_keys[] = { NULL };

/* One run id for the whole job, as one backfill-sync run has: its chunks'
 * audit rows go under it, and the last chunk finds through them which A
 * rows no subscriber matched. */
static int backfill_plan(const struct chunk_env *env, json_t *params, long long *total_items,
			 struct cw_error *err)
{
	char *run_id;
	if (chunk_params_only(params, "backfill", backfill_keys, err) < 0 ||
	    ml_count_subscribers(env->ml, NULL, total_items, err) < 0 ||
	    !(run_id = job_new_run_id(env->db, err)))
		return -1;
	json_object_set_new(params, "run_id", json_string(run_id));
	free(run_id);
	return 0;
}

/* Where the chunk before this one stopped: *cursor (new string, NULL for
 * the first page) and whether it reached the end of the list. */
static int start_of(const struct chunk_env *env, const struct queue_chunk *c, char **cursor,
		    bool *walked, struct cw_error *err)
{
	*cursor = NULL;
	*walked = false;
	if (c->chunk_index == 0)
		return 0;
	char parent[24], index[16];
	snprintf(parent, sizeof(parent), "%lld", c->parent_id);
	snprintf(index, sizeof(index), "%d", c->chunk_index - 1);
	const char *p[] = { parent, index };
	char *sql = xasprintf("SELECT status, result FROM %s.chunked_sync_jobs"
			      " WHERE parent_id = $1::bigint AND chunk_index = $2::integer",
			      db_schema(env->db));
	PGresult *res = db_query(env->db, sql, 2, p, err);
	free(sql);
	if (!res)
		return -1;
	json_t *result = PQntuples(res) == 1 && !PQgetisnull(res, 0, 1)
				 ? json_loads(PQgetvalue(res, 0, 1), 0, NULL)
				 : NULL;
	bool completed = PQntuples(res) == 1 && !strcmp(PQgetvalue(res, 0, 0), "completed");
	PQclear(res);
	/* Ordered claiming never gets here before the chunk before completed. */
	if (!completed || !json_is_object(result)) {
		json_decref(result);
		return cw_error_set(err, CW_EXIT_SOFTWARE,
				    "chunk %d of job %lld has no completed chunk before it",
				    c->chunk_index, c->parent_id);
	}
	const char *next = jsonget_string(result, "next");
	*walked = json_is_true(json_object_get(result, "walked"));
	*cursor = next ? xstrdup(next) : NULL;
	json_decref(result);
	return 0;
}

struct gathered {
	struct strbuf rows; /* a JSON array of crosswalk_b_row()s */
	size_t n;
	long long unusable;
	char *next;	    /* the cursor after the last page read */
	bool walked;
};

/* Read pages from cursor until the chunk's share is read (the last chunk:
 * until the end of the list). */
static int read_pages(const struct chunk_env *env, const struct queue_chunk *c, char *cursor,
		      struct gathered *g, struct cw_error *err)
{
	const struct cw_config *cfg = env->cfg;
	const bool groups = cfg->nmanaged_groups > 0 && cfg->a_groups;
	const long long want = c->end_offset - c->start_offset;
	const bool last = c->chunk_index == c->total_chunks - 1;

	strbuf_addch(&g->rows, '[');
	g->next = cursor;
	do {
		struct ml_page page;
		if (env->should_stop(env->stop_arg))
			return cw_error_set(err, CW_EXIT_PARTIAL, "stopped");
		if (ml_list_subscribers(env->ml, g->next, 0, groups, NULL, &page, err) < 0)
			return -1;
		for (size_t i = 0; i < json_array_size(page.data); i++) {
			char *row = crosswalk_b_row(json_array_get(page.data, i), cfg, NULL);
			if (!row) {
				g->unusable++;
				continue;
			}
			strbuf_addstr(&g->rows, g->n++ ? "," : "");
			strbuf_addstr(&g->rows, row);
			free(row);
		}
		free(g->next);
		g->next = page.next_cursor;
		page.next_cursor = NULL;
		ml_page_release(&page);
		g->walked = g->next == NULL;
	} while (!g->walked && (last || (long long)g->n + g->unusable < want));
	strbuf_addch(&g->rows, ']');
	return 0;
}

/* The session's lookup of A by email (pg_temp.cw_a_lookup), built at a
 * worker's first chunk of a job and kept for its later ones, as one
 * backfill-sync run keeps one: a pass over A per chunk would cost a
 * million-row table's backfill hundreds of passes. Built again after a
 * reconnect, or when the chunk that built it rolled back. */
static int lookup_for(const struct chunk_env *env, long long parent_id, struct cw_error *err)
{
	static long long built_for;
	long long rows = 0;

	if (built_for == parent_id) {
		PGresult *res = db_query(env->db,
					 "SELECT pg_catalog.to_regclass('pg_temp.cw_a_lookup') IS NOT NULL",
					 0, NULL, err);
		if (!res)
			return -1;
		bool there = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
		PQclear(res);
		if (there)
			return 0;
	}
	built_for = 0;
	if (store_build_lookup(env->store, env->db, &rows, err) < 0)
		return -1;
	built_for = parent_id;
	return 0;
}

/* The job's figures so far: its completed chunks' and this one's. */
static int job_totals(const struct chunk_env *env, const struct queue_chunk *c,
		      const json_t *mine, json_t **totals, struct cw_error *err)
{
	static const char *const keys[] = { "rows",	"matched", "crosswalkCreated",
					    "shadowsWritten", "onlyInB", "skipped" };
	json_t *done = NULL;
	if (queue_totals(env->db, c->parent_id, &done, err) < 0)
		return -1;
	*totals = json_object();
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const json_t *a = json_object_get(done, keys[i]), *b = json_object_get(mine, keys[i]);
		json_int_t sum = (json_is_number(a) ? (json_int_t)json_number_value(a) : 0) +
				 (json_is_integer(b) ? json_integer_value(b) : 0);
		json_object_set_new(*totals, keys[i], json_integer(sum));
	}
	json_decref(done);
	return 0;
}

/* sync_status.backfill, as backfill-sync keeps it, so that the operators'
 * queries (and backfill-sync's own refusal to run over a live backfill)
 * see the chunked one too. In the chunk's transaction. */
static int save_status(const struct chunk_env *env, const struct queue_chunk *c,
		       const json_t *result, bool final, const char *run_id, struct cw_error *err)
{
	static const char *const stamp_start[] = { "startedAt", "lastUpdatedAt", NULL };
	static const char *const stamp_update[] = { "lastUpdatedAt", NULL };
	static const char *const stamp_done[] = { "lastUpdatedAt", "completedAt", NULL };
	json_t *t = NULL;

	if (job_totals(env, c, result, &t, err) < 0)
		return -1;
	char runner[64];
	snprintf(runner, sizeof(runner), "chunk-worker job %lld", c->parent_id);
	json_t *patch = json_pack(
		"{s:s, s:s, s:i, s:i, s:O, s:O, s:O, s:O, s:O, s:i, s:O, s:b, s:s, s:s}", "status",
		final ? "completed" : "running", "phase", final ? "done" : "linking", "currentBatch",
		c->chunk_index + 1, "totalBatches", c->total_chunks, "shadowsCreated",
		json_object_get(t, "shadowsWritten"), "crosswalkCreated",
		json_object_get(t, "crosswalkCreated"), "matched", json_object_get(t, "matched"),
		"onlyInB", json_object_get(t, "onlyInB"), "skipped", json_object_get(t, "skipped"),
		"errors", 0, "recordsDone", json_object_get(t, "rows"), "paused", 0, "runId", run_id,
		"runner", runner);
	const json_t *only_in_a = json_object_get(result, "onlyInA");
	json_object_set_new(patch, "onlyInA", final ? json_deep_copy(only_in_a) : json_null());
	if (!final)
		json_object_set_new(patch, "completedAt", json_null());
	char *key = state_key("sync_status", env->cfg->namespace);
	int rc = state_merge_section(env->db, key, "backfill", patch,
				     final		     ? stamp_done
				     : c->chunk_index == 0 ? stamp_start
							   : stamp_update,
				     err);
	free(key);
	json_decref(patch);
	json_decref(t);
	return rc;
}

static int backfill_run(const struct chunk_env *env, const struct queue_chunk *chunk,
			json_t **result, struct cw_error *err)
{
	struct gathered g = { .rows = STRBUF_INIT };
	struct link_counts counts = { 0 };
	struct linker *linker = NULL;
	char *cursor = NULL;
	bool walked = false;
	long long only_in_a = 0, skipped_in_a = 0;
	int rc = -1;

	if (start_of(env, chunk, &cursor, &walked, err) < 0)
		return -1;
	if (walked) {
		/* The list ended in an earlier chunk (B shrank since enqueue). */
		*result = json_pack("{s:i, s:n, s:b}", "rows", 0, "next", "walked", 1);
		return 0;
	}
	if ((ml_page_cap(env->ml) == 0 && pagecap_restore(env->db, env->ml, err) < 0) ||
	    read_pages(env, chunk, cursor, &g, err) < 0)
		goto out;
	const char *run_id = jsonget_string(chunk->params, "run_id");
	linker = linker_new(env->db, env->cfg, env->program, run_id ? run_id : env->run_id);
	/* Left open: the worker commits it with the completion. */
	if (db_begin(env->db, err) < 0 || lookup_for(env, chunk->parent_id, err) < 0 ||
	    (g.n && linker_link_batch(linker, g.rows.buf, &counts, err) < 0) ||
	    (g.walked && linker_finish(linker, &only_in_a, &skipped_in_a, err) < 0))
		goto out;
	pagecap_save(env->db, env->ml);
	*result = json_pack("{s:I, s:s?, s:b, s:I, s:I, s:I, s:I, s:I}", "rows", (json_int_t)g.n,
			    "next", g.next, "walked", g.walked, "matched", (json_int_t)counts.matched,
			    "crosswalkCreated", (json_int_t)counts.crosswalk_created,
			    "shadowsWritten", (json_int_t)counts.shadows_written, "onlyInB",
			    (json_int_t)counts.only_in_b, "skipped",
			    (json_int_t)(counts.skipped + g.unusable));
	if (g.walked) {
		/* The A rows no subscriber matched, known once the list is read. */
		json_object_set_new(*result, "onlyInA", json_integer(only_in_a));
		json_object_set_new(*result, "skippedInA", json_integer(skipped_in_a));
	}
	if (save_status(env, chunk, *result, g.walked, run_id ? run_id : env->run_id, err) < 0) {
		json_decref(*result);
		*result = NULL;
		goto out;
	}
	rc = 0;
out:
	linker_free(linker);
	strbuf_release(&g.rows);
	free(g.next);
	return rc;
}

const struct chunk_kind kind_backfill = {
	.name = "backfill",
	.purpose = "backfill-sync in chunks: B's subscribers linked to A by email, in order",
	.needs_api = true,
	.needs_table = true,
	.ordered = true,
	.default_chunk_size = 5000,
	.params_help = "none",
	.plan = backfill_plan,
	.run = backfill_run,
};
