/* Reconciling a set of contacts: lock, load, plan, write B, write A, bookkeeping. */
#include "reconcile.h"
#include "crosswalk.h"
#include "exitcode.h"
#include "http.h"
#include "job.h"
#include "jsonget.h"
#include "log.h"
#include "merge.h"
#include "record.h"
#include "shadow.h"
#include "strbuf.h"
#include "xalloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct reconcile {
	struct db *db;
	struct ml_client *ml;
	const struct cw_config *cfg;
	struct store *store;
	char *program, *run_id;
	struct reconcile_options opts;
	struct merge_spec spec;
	json_t *group_ids;	/* {name: id} of the managed groups */
	bool groups_ready;	/* group_ids resolved for this run */
	json_t *seen;		/* A keys looked at whose shadow does not show it */
	bool todo_ready;	/* pg_temp.cw_a_todo holds A's changes for this run */
	char *load_sql, *changes_sql, *book_sql, *conflict_sql, *unlink_sql;
	char *crosswalk_table;	/* text parameter for pg_get_serial_sequence */
};

/* The shadow side's mark that a move of that side was deferred by the
 * run's direction: the side is not synced, whatever its times say. */
#define DEFERRED_MARK "deferred"

/* One contact while it is being reconciled. */
struct contact {
	char *email;		/* normalized: B's, else A's */
	char *b_id;		/* the subscriber's id, or the crosswalk's */
	json_t *b_snap;		/* B's snapshot; NULL when B does not have it */
	char *a_key;		/* A's key as text; NULL when A has no row */
	json_t *a_snap;
	long long cw_id;	/* 0: not linked */
	char *cw_email;
	json_t *sh_a, *sh_b;	/* the shadow, or NULL */
	const char *skip;	/* why it is left alone (static text), or NULL */
	bool a_quiet;		/* A's updated_at is not after the shadow's synced_at */
	bool quiet;		/* incremental: neither side moved since the last sync */
	bool only_in_b;		/* B has it, A does not, and nothing may be created */
	bool unlink;		/* --repair-missing: drop the stale link first */
	bool planned;
	struct merge_plan plan;
	/* B's side of the outcome */
	char *error;		/* the record-level failure, or NULL */
	json_t *b_read;		/* B's snapshot read back after the writes */
	char *new_b_id;		/* from a create */
	/* A's side */
	bool a_written, a_deferred;
	json_t *a_read;		/* A's snapshot after the write */
	char *new_a_key;	/* from an insert */
};

static void contact_release(struct contact *c)
{
	free(c->email);
	free(c->b_id);
	json_decref(c->b_snap);
	free(c->a_key);
	json_decref(c->a_snap);
	free(c->cw_email);
	json_decref(c->sh_a);
	json_decref(c->sh_b);
	if (c->planned)
		merge_plan_release(&c->plan);
	free(c->error);
	json_decref(c->b_read);
	free(c->new_b_id);
	json_decref(c->a_read);
	free(c->new_a_key);
}

static void set_error(struct contact *c, const char *fmt, ...) CW_PRINTF(2, 3);
static void set_error(struct contact *c, const char *fmt, ...)
{
	va_list ap;
	char buf[1024];

	if (c->error)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	c->error = xstrdup(buf);
}

/* ---- statements ---- */

static char *load_statement(struct reconcile *r)
{
	const char *s = db_schema(r->db);
	struct store *st = r->store;
	char *email = store_email_sql(st, "t");
	char *snap = store_snapshot_sql(st, "t", email, 2, 3);
	char *by_email =
		r->opts.use_lookup
			? xstrdup("SELECT l.a_id, l.n_a FROM pg_temp.cw_a_lookup l"
				  " WHERE l.email = c.e LIMIT 1")
			: store_by_email_sql(st, "c.e");
	/* Lateral LIMIT 1 probes, so that each is an index lookup whatever
	 * the planner guesses about the size of the set (without it, the
	 * planner guessed 100 contacts and hashed every row's snapshot of the
	 * A table for a single one). The search of A by
	 * email (a scan of the table, unless it has an index on the
	 * normalized email) is gated inside its lateral, which OFFSET 0 keeps
	 * from being pulled up: as a join condition the gate would only be
	 * checked after the search, which then ran for every linked contact. */
	char *sql = xasprintf(
		"WITH r AS (SELECT * FROM pg_catalog.jsonb_to_recordset($1::jsonb)"
		"  AS r(x int, i text, e text, k text)),"
		" c AS (SELECT r.x, r.i, r.e, r.k,"
		"   coalesce(cb.id, ck.id) AS cw_id, coalesce(cb.a_id, ck.a_id) AS cw_a,"
		"   coalesce(cb.b_id, ck.b_id) AS cw_b, coalesce(cb.email, ck.email) AS cw_email,"
		"   ce.id AS ce_id"
		"  FROM r"
		"  LEFT JOIN LATERAL (SELECT x.id, x.a_id, x.b_id, x.email"
		"    FROM %s.integration_crosswalk x WHERE x.b_id = r.i LIMIT 1) cb ON r.i IS NOT NULL"
		"  LEFT JOIN LATERAL (SELECT x.id, x.a_id, x.b_id, x.email"
		"    FROM %s.integration_crosswalk x WHERE x.a_id = r.k LIMIT 1) ck"
		"    ON r.k IS NOT NULL AND cb.id IS NULL"
		"  LEFT JOIN LATERAL (SELECT x.id FROM %s.integration_crosswalk x"
		"    WHERE x.email = r.e LIMIT 1) ce ON r.e IS NOT NULL),"
		" m AS (SELECT c.*, coalesce(c.cw_a, c.k, em.a_id) AS a_id, em.n_a"
		"  FROM c LEFT JOIN LATERAL (SELECT * FROM (%s) q"
		"    WHERE c.cw_id IS NULL AND c.k IS NULL AND c.e IS NOT NULL OFFSET 0) em ON true)"
		" SELECT m.x, m.cw_id, m.cw_b, m.cw_email, m.ce_id, m.a_id, m.n_a,"
		"   (SELECT x.b_id FROM %s.integration_crosswalk x WHERE x.a_id = m.a_id LIMIT 1),"
		"   ta.snap, sh.a_snapshot, sh.b_snapshot,"
		"   coalesce(ta.upd::timestamptz <= sh.synced_at, false)"
		" FROM m"
		" LEFT JOIN LATERAL (SELECT %s AS snap, t.%s AS upd FROM %s t"
		"   WHERE t.%s = m.a_id::%s LIMIT 1) ta ON m.a_id IS NOT NULL"
		" LEFT JOIN %s.sync_shadow sh ON sh.crosswalk_id = m.cw_id"
		" ORDER BY m.x",
		s, s, s, by_email, s, snap, store_updated_at(st), store_table(st), store_key(st),
		store_key_type(st), s);
	free(email);
	free(snap);
	free(by_email);
	return sql;
}

/* The A rows needing attention, gathered in one pass over the table into
 * pg_temp.cw_a_todo (a query per slice would scan the table each time). */
/* The A rows that need B's attention (see reconcile_a_changes) whose key
 * passes key_filter, a condition on t.<key> and $1 (and $5); $2, $3 the
 * snapshot's parameters, $4 the email pattern. Columns: key, k, e, b. */
static char *changes_select(struct reconcile *r, const char *key_filter)
{
	const char *s = db_schema(r->db);
	struct store *st = r->store;
	char *email = store_email_sql(st, "t");
	char *snap = store_snapshot_sql(st, "t", email, 2, 3);
	char *d_email = store_email_sql(st, "d");
	char *sql = xasprintf(
		"SELECT t.%s, t.%s::text, %s, x.b_id FROM %s t"
		" LEFT JOIN %s.integration_crosswalk x ON x.a_id = t.%s::text"
		" LEFT JOIN %s.sync_shadow sh ON sh.crosswalk_id = x.id"
		" WHERE %s"
		"   AND (x.id IS NULL OR sh.a_snapshot IS NULL"
		"        OR (%s) - 'updated_at' IS DISTINCT FROM sh.a_snapshot - 'updated_at')"
		"   AND %s ~ $4 AND pg_catalog.length(%s) <= %d"
		"   AND NOT EXISTS (SELECT 1 FROM %s d WHERE %s = %s AND d.%s <> t.%s)",
		store_key(st), store_key(st), email, store_table(st), s, store_key(st), s,
		key_filter, snap, email, email, RECORD_EMAIL_MAX, store_table(st), d_email, email,
		store_key(st), store_key(st));
	free(d_email);
	free(email);
	free(snap);
	return sql;
}

static char *changes_statement(struct reconcile *r)
{
	struct store *st = r->store;
	char *filter = xasprintf("($1::text IS NULL OR t.%s > $1::%s)", store_key(st),
				 store_key_type(st));
	char *select = changes_select(r, filter);
	char *sql = xasprintf("INSERT INTO pg_temp.cw_a_todo (key, k, e, b) %s", select);
	free(select);
	free(filter);
	return sql;
}

static int gather_changes(struct reconcile *r, const char *after_key, struct cw_error *err)
{
	struct store *st = r->store;
	char *create = xasprintf("CREATE TEMP TABLE cw_a_todo AS SELECT t.%s AS key, NULL::text AS k,"
				 " NULL::text AS e, NULL::text AS b FROM %s t WITH NO DATA",
				 store_key(st), store_table(st));
	const char *params[] = { after_key, store_keys_param(st), store_groups_param(st),
				 RECORD_EMAIL_PATTERN };
	int rc = db_exec(r->db, "DROP TABLE IF EXISTS pg_temp.cw_a_todo", 0, NULL, err);

	if (rc == 0)
		rc = db_exec(r->db, create, 0, NULL, err);
	if (rc == 0) {
		/* Prepared: every parameter is declared, even one the mapping
		 * leaves unused (no managed groups). */
		rc = db_exec_prepared(r->db, "cw_reconcile_changes", r->changes_sql, 4, params, err);
	}
	if (rc == 0)
		rc = db_exec(r->db, "CREATE INDEX ON pg_temp.cw_a_todo (key)", 0, NULL, err);
	if (rc == 0)
		rc = db_exec(r->db, "ANALYZE pg_temp.cw_a_todo", 0, NULL, err);
	free(create);
	if (rc == 0)
		r->todo_ready = true;
	return rc;
}

static char *book_statement(struct reconcile *r)
{
	const char *s = db_schema(r->db);
	return xasprintf(
		"WITH p AS (SELECT * FROM pg_catalog.jsonb_to_recordset($1::jsonb)"
		"  AS p(cw bigint, a text, b text, e text, sa jsonb, sb jsonb)),"
		" n AS (SELECT p.*, CASE WHEN p.cw IS NULL"
		"   THEN pg_catalog.nextval(pg_catalog.pg_get_serial_sequence($2, 'id')) END AS new_id"
		"  FROM p),"
		" ins AS (INSERT INTO %s.integration_crosswalk (id, a_id, b_id, email)"
		"  OVERRIDING SYSTEM VALUE SELECT new_id, a, b, e FROM n WHERE cw IS NULL RETURNING 1),"
		" upd AS (UPDATE %s.integration_crosswalk x SET email = n.e, b_id = n.b,"
		"   updated_at = pg_catalog.now()"
		"  FROM n WHERE x.id = n.cw AND (x.email <> n.e OR x.b_id <> n.b) RETURNING 1),"
		" sh AS (INSERT INTO %s.sync_shadow AS sh (crosswalk_id, a_snapshot, b_snapshot,"
		"   synced_at)"
		"  SELECT coalesce(cw, new_id), sa, sb, pg_catalog.now() FROM n WHERE sa IS NOT NULL"
		"  ON CONFLICT (crosswalk_id) DO UPDATE SET a_snapshot = EXCLUDED.a_snapshot,"
		"   b_snapshot = EXCLUDED.b_snapshot, synced_at = EXCLUDED.synced_at RETURNING 1)"
		" SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM upd),"
		"  (SELECT count(*) FROM sh)",
		s, s, s);
}

/* A conflict settled by a policy is resolved at once; one left alone
 * (skip) stays open, recorded once however many runs see it again. */
static char *conflict_statement(struct reconcile *r)
{
	const char *s = db_schema(r->db);
	return xasprintf(
		"INSERT INTO %s.sync_conflicts (crosswalk_id, email, field, a_value, b_value,"
		"  base_value, policy, applied_value, winner, program, run_id, namespace, resolved_at)"
		" SELECT (SELECT x.id FROM %s.integration_crosswalk x WHERE x.email = p.e),"
		"  p.e, p.f, p.av, p.bv, p.base, p.policy, p.applied, p.winner, $2, $3, $4,"
		"  CASE WHEN p.winner <> 'none' THEN pg_catalog.now() END"
		" FROM pg_catalog.jsonb_to_recordset($1::jsonb) AS p(e text, f text, av jsonb,"
		"  bv jsonb, base jsonb, policy text, applied jsonb, winner text)"
		" WHERE p.winner <> 'none' OR NOT EXISTS (SELECT 1 FROM %s.sync_conflicts o"
		"  WHERE o.email = p.e AND o.field = p.f AND o.resolved_at IS NULL"
		"    AND o.a_value IS NOT DISTINCT FROM p.av AND o.b_value IS NOT DISTINCT FROM p.bv)",
		s, s, s);
}

struct reconcile *reconcile_new(struct db *db, struct ml_client *ml, const struct cw_config *cfg,
				struct store *store, const char *program, const char *run_id,
				const struct reconcile_options *opts)
{
	struct reconcile *r = xcalloc(1, sizeof(*r));

	r->db = db;
	r->ml = ml;
	r->cfg = cfg;
	r->store = store;
	r->program = xstrdup(program);
	r->run_id = xstrdup(run_id ? run_id : "");
	r->opts = *opts;
	r->spec.cfg = cfg;
	r->spec.run_direction = opts->direction;
	r->spec.resubscribe = opts->resubscribe;
	r->group_ids = json_object();
	r->seen = json_array();
	r->load_sql = load_statement(r);
	r->changes_sql = changes_statement(r);
	r->book_sql = book_statement(r);
	r->conflict_sql = conflict_statement(r);
	r->unlink_sql = xasprintf("DELETE FROM %s.integration_crosswalk WHERE id = ANY($1::bigint[])",
				  db_schema(db));
	r->crosswalk_table = xasprintf("%s.integration_crosswalk", db_schema(db));
	return r;
}

void reconcile_free(struct reconcile *r)
{
	if (!r)
		return;
	free(r->program);
	free(r->run_id);
	json_decref(r->group_ids);
	json_decref(r->seen);
	free(r->load_sql);
	free(r->changes_sql);
	free(r->book_sql);
	free(r->conflict_sql);
	free(r->unlink_sql);
	free(r->crosswalk_table);
	free(r);
}

void reconcile_counts_add(struct reconcile_counts *to, const struct reconcile_counts *c)
{
	to->processed += c->processed;
	to->unchanged += c->unchanged;
	to->to_a += c->to_a;
	to->to_b += c->to_b;
	to->created_in_a += c->created_in_a;
	to->created_in_b += c->created_in_b;
	to->linked += c->linked;
	to->conflicts += c->conflicts;
	to->only_in_b += c->only_in_b;
	to->skipped += c->skipped;
	to->errors += c->errors;
	to->deferred += c->deferred;
}

/* ---- groups ---- */

const json_t *reconcile_group_ids(const struct reconcile *r)
{
	return r->groups_ready ? r->group_ids : NULL;
}

void reconcile_use_group_ids(struct reconcile *r, const json_t *ids)
{
	json_decref(r->group_ids);
	r->group_ids = json_deep_copy(ids);
	r->groups_ready = true;
}

int reconcile_resolve_groups(struct reconcile *r, struct cw_error *err)
{
	const struct cw_config *cfg = r->cfg;
	json_t *groups = NULL, *g;
	size_t i;

	if (!cfg->nmanaged_groups || !cfg->a_groups || !*cfg->a_groups) {
		r->groups_ready = true;
		return 0;
	}
	if (ml_list_groups(r->ml, &groups, err) < 0)
		return -1;
	json_array_foreach(groups, i, g) {
		const char *name = jsonget_string(g, "name"), *id = jsonget_string(g, "id");
		for (size_t m = 0; name && id && m < cfg->nmanaged_groups; m++)
			if (!strcmp(name, cfg->managed_groups[m]) &&
			    !json_object_get(r->group_ids, name))
				json_object_set_new(r->group_ids, name, json_string(id));
	}
	json_decref(groups);
	for (size_t m = 0; m < cfg->nmanaged_groups; m++) {
		const char *name = cfg->managed_groups[m];
		struct ml_result res;

		if (json_object_get(r->group_ids, name))
			continue;
		if (!cfg->create_groups || r->opts.dry_run) {
			if (r->opts.dry_run && cfg->create_groups) {
				json_object_set_new(r->group_ids, name, json_string("0"));
				continue;
			}
			cw_error_set(err, CW_EXIT_CONFIG,
				     "managed group \"%s\" does not exist in MailerLite", name);
			cw_error_hint(err, "Create it in MailerLite, or set create_missing = true in "
					   "[groups].");
			return -1;
		}
		if (ml_create_group(r->ml, name, &res, err) < 0)
			return -1;
		const char *id = res.data ? jsonget_string(res.data, "id") : NULL;
		if (!ml_result_ok(&res) || !id || !ml_id_valid(id)) {
			cw_error_set(err, CW_EXIT_UNAVAILABLE,
				     "could not create group \"%s\" in MailerLite: %s (HTTP %ld)", name,
				     res.message ? res.message : "no id in the answer", res.status);
			ml_result_release(&res);
			return -1;
		}
		log_info("created managed group \"%s\" in MailerLite", name);
		json_object_set_new(r->group_ids, name, json_string(id));
		ml_result_release(&res);
	}
	r->groups_ready = true;
	return 0;
}

/* ---- 2. load ---- */

static json_t *parse_json(PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return NULL;
	return json_loads(PQgetvalue(res, row, col), 0, NULL);
}

static char *text_or_null(PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : xstrdup(PQgetvalue(res, row, col));
}

static int load(struct reconcile *r, struct contact *cs, size_t n, struct cw_error *err)
{
	json_t *rows = json_array();

	for (size_t i = 0; i < n; i++) {
		if (cs[i].skip)
			continue;
		json_array_append_new(rows, json_pack("{s:I, s:s?, s:s?, s:s?}", "x", (json_int_t)i,
						      "i", cs[i].b_id, "e", cs[i].email, "k",
						      cs[i].a_key));
	}
	char *rows_text = json_dumps(rows, JSON_COMPACT);
	const char *params[] = { rows_text, store_keys_param(r->store),
				 store_groups_param(r->store) };
	PGresult *res = db_query_prepared(r->db, "cw_reconcile_load", r->load_sql, 3, params, err);

	free(rows_text);
	json_decref(rows);
	if (!res)
		return -1;
	for (int row = 0; row < PQntuples(res); row++) {
		long long x = strtoll(PQgetvalue(res, row, 0), NULL, 10);
		if (x < 0 || (size_t)x >= n)
			continue;
		struct contact *c = &cs[x];
		c->cw_id = PQgetisnull(res, row, 1) ? 0 : strtoll(PQgetvalue(res, row, 1), NULL, 10);
		if (c->cw_id && !c->b_id)
			c->b_id = text_or_null(res, row, 2);
		c->cw_email = text_or_null(res, row, 3);
		bool email_pinned = !PQgetisnull(res, row, 4);
		char *a_id = text_or_null(res, row, 5);
		long long n_a = PQgetisnull(res, row, 6) ? 0 : strtoll(PQgetvalue(res, row, 6), NULL, 10);
		bool a_pinned = !PQgetisnull(res, row, 7);
		c->a_snap = parse_json(res, row, 8);
		c->sh_a = parse_json(res, row, 9);
		c->sh_b = parse_json(res, row, 10);
		c->a_quiet = !strcmp(PQgetvalue(res, row, 11), "t");
		if (!json_is_object(c->sh_a) || !json_is_object(c->sh_b)) {
			/* Half a shadow, or not a document at all: no base to trust. */
			json_decref(c->sh_a);
			json_decref(c->sh_b);
			c->sh_a = c->sh_b = NULL;
		}
		if (!c->a_snap) {
			free(a_id);
			a_id = NULL;
		}
		if (!c->a_key)
			c->a_key = a_id;
		else
			free(a_id);
		if (c->cw_id)
			continue;
		/* Not linked yet: a link by email must not contradict a pin. */
		if (email_pinned)
			c->skip = "email already linked to other ids";
		else if (n_a > 1)
			c->skip = "duplicate email in A";
		else if (c->a_snap && a_pinned)
			c->skip = "A row already linked to another subscriber";
	}
	PQclear(res);
	return 0;
}

/* B's record was read before the locks were taken. When it differs from
 * the shadow yet is no newer than it, another run may have written B and
 * the shadow in between: planning from the old record would pull B's past
 * over A. And when B had no record yet the contact is linked now, another
 * run may have created the subscriber in between: taking it for one B lost
 * would fail the contact (or, with repair_missing, unlink it). Such
 * contacts are read again, now that they are locked. */
static bool b_read_stale(const struct reconcile *r, const struct contact *c)
{
	if (!c->b_snap)
		return c->cw_id && c->b_id;
	if (!c->sh_b || merge_snapshots_agree(&r->spec, c->b_snap, c->sh_b))
		return false;
	const char *read = jsonget_string(c->b_snap, "updated_at");
	const char *synced = jsonget_string(c->sh_b, "updated_at");
	if (!read || !synced)
		return true;
	int order = strcmp(read, synced);
	/* The same second with a deferred move is the move itself, unread. */
	return order < 0 || (order == 0 && !json_object_get(c->sh_b, DEFERRED_MARK));
}

static int refresh_stale(struct reconcile *r, struct contact *cs, size_t n, struct cw_error *err)
{
	size_t *which = xcalloc(n ? n : 1, sizeof(*which)), k = 0;
	int rc = 0;

	for (size_t i = 0; i < n; i++)
		if (!cs[i].skip && cs[i].b_id && b_read_stale(r, &cs[i]))
			which[k++] = i;
	for (size_t start = 0; rc == 0 && start < k; start += ML_BATCH_MAX) {
		size_t end = start + ML_BATCH_MAX < k ? start + ML_BATCH_MAX : k;
		json_t *rows = json_array(), *subs = NULL;
		for (size_t j = start; j < end; j++)
			json_array_append_new(rows, json_pack("{s:s}", "b", cs[which[j]].b_id));
		rc = reconcile_fetch_b(r, rows, &subs, err);
		for (size_t j = start; rc == 0 && j < end; j++) {
			struct contact *c = &cs[which[j]];
			const json_t *sub = json_array_get(subs, j - start);
			const char *raw = json_is_object(sub) ? jsonget_string(sub, "email") : NULL;
			char *email = raw ? record_normalize_email(raw) : NULL;
			json_decref(c->b_snap);
			c->b_snap = NULL;
			if (email && strcmp(email, c->email))
				c->skip = "its email changed in MailerLite while it was being read";
			else if (email)
				c->b_snap = shadow_b_snapshot(sub, r->cfg);
			free(email);
		}
		log_debug("read %zu subscribers again: written by another run since read",
			  end - start);
		json_decref(rows);
		json_decref(subs);
	}
	free(which);
	return rc;
}

/* ---- 3. plan ---- */

static bool may_push(const struct reconcile *r)
{
	return r->opts.direction != CW_DIR_B_TO_A;
}

static bool may_pull(const struct reconcile *r)
{
	return r->opts.direction != CW_DIR_A_TO_B;
}

static bool same_text(const char *x, const char *y)
{
	return x && y && !strcmp(x, y);
}

/* Neither side moved since the last sync, by their times alone. */
static bool untouched(const struct reconcile *r, const struct contact *c)
{
	if (!(c->cw_id && c->a_quiet && c->a_snap && c->b_snap && c->sh_a && c->sh_b &&
	      !json_object_get(c->sh_a, DEFERRED_MARK) && !json_object_get(c->sh_b, DEFERRED_MARK) &&
	      same_text(jsonget_string(c->b_snap, "updated_at"), jsonget_string(c->sh_b, "updated_at"))))
		return false;
	/* The times can miss a change: MailerLite's count whole seconds, and
	 * an A row's updated_at is its transaction's start, which may precede
	 * the last sync that did not see it. The values, read already, decide
	 * at no cost. */
	return merge_snapshots_agree(&r->spec, c->a_snap, c->sh_a) &&
	       merge_snapshots_agree(&r->spec, c->b_snap, c->sh_b);
}

static void plan_contact(struct reconcile *r, struct contact *c)
{
	if (c->skip)
		return;
	if (r->opts.incremental && untouched(r, c)) {
		c->quiet = true;
		return;
	}
	if (c->cw_id && !c->a_snap) {
		c->skip = "A row of the link no longer exists";
		return;
	}
	if (!c->b_snap && c->cw_id) {
		if (!r->opts.repair_missing) {
			set_error(c, "subscriber %s is linked but no longer exists in MailerLite",
				  c->b_id ? c->b_id : "?");
			return;
		}
		/* Repair: forget the dead link; the contact is created again. */
		c->unlink = true;
		json_decref(c->sh_a);
		json_decref(c->sh_b);
		c->sh_a = c->sh_b = NULL;
	}
	if (!c->a_snap && !c->b_snap) {
		c->skip = "on neither side";
		return;
	}
	if (!c->a_snap && (!r->opts.import_new || !may_pull(r))) {
		c->only_in_b = true;
		return;
	}
	if (!c->b_snap && !may_push(r)) {
		c->skip = "only in A, and this run does not write to MailerLite";
		return;
	}
	if (merge_plan(&r->spec, c->a_snap, c->b_snap, c->sh_a, c->sh_b, &c->plan) == 0)
		c->planned = true;
}

/* ---- 4. B ---- */

struct outgoing {
	json_t *requests; /* the flat list, in order */
	size_t *owner;	  /* contact of each request */
	char *kind;	  /* 'w' write, 'c' create, 'r' read back, 'b' a write
			   * whose answer is the contact's read-back */
	size_t n, cap;
};

static void out_add(struct outgoing *o, size_t owner, char kind, json_t *request)
{
	if (o->n == o->cap) {
		o->cap = o->cap ? o->cap * 2 : 64;
		o->owner = xrealloc(o->owner, o->cap * sizeof(*o->owner));
		o->kind = xrealloc(o->kind, o->cap);
	}
	o->owner[o->n] = owner;
	o->kind[o->n] = kind;
	o->n++;
	json_array_append_new(o->requests, request);
}

/* The B values a plan pushes: {"fields": {...}, "email"?, "status"?} and the
 * group changes (name → true/false). New references. */
static void pushed_values(const struct merge_plan *p, bool all_values, json_t **body,
			  json_t **groups)
{
	json_t *fields = json_object();

	*body = json_object();
	*groups = json_object();
	for (size_t i = 0; i < p->n; i++) {
		const struct merge_item *it = &p->items[i];
		bool push = it->action == MERGE_PUSH;
		/* A create sends every value B is to hold. */
		if (!push && !(all_values && it->value && it->action != MERGE_KEEP))
			continue;
		json_t *v = json_incref(it->value);
		switch (it->kind) {
		case MERGE_EMAIL:
			json_object_set_new(*body, "email", v);
			break;
		case MERGE_FIELD:
			json_object_set_new(fields, it->name, v);
			break;
		case MERGE_STATUS:
			if (json_is_string(v) && *json_string_value(v))
				json_object_set_new(*body, "status", v);
			else
				json_decref(v);
			break;
		case MERGE_GROUP:
			json_object_set_new(*groups, it->name, v);
			break;
		}
	}
	if (json_object_size(fields))
		json_object_set_new(*body, "fields", fields);
	else
		json_decref(fields);
}

static char *subscriber_path(const char *id_or_email, const char *suffix)
{
	char *e = http_escape(id_or_email);
	char *path = xasprintf("api/subscribers/%s%s", e, suffix ? suffix : "");
	free(e);
	return path;
}

static void queue_b_writes(struct reconcile *r, struct contact *cs, size_t idx,
			   struct outgoing *o)
{
	struct contact *c = &cs[idx];
	json_t *body, *groups, *v;
	const char *name;

	if (!c->planned || c->error)
		return;
	bool create = c->plan.create_b || c->unlink;
	if (!create && !c->plan.pushes)
		return;
	pushed_values(&c->plan, create, &body, &groups);
	if (create) {
		json_t *ids = json_array();
		json_object_foreach(groups, name, v) {
			const char *gid = jsonget_string(r->group_ids, name);
			if (json_is_true(v) && gid)
				json_array_append_new(ids, json_string(gid));
		}
		if (!json_object_get(body, "email"))
			json_object_set_new(body, "email", json_string(c->email));
		if (json_array_size(ids))
			json_object_set_new(body, "groups", ids);
		else
			json_decref(ids);
		out_add(o, idx, 'c', ml_batch_request("POST", "api/subscribers", body));
		/* Read back like any changed contact. It also keeps the batch from
		 * being all creations, which the API would count as an import
		 * (5 a minute) rather than one request of the rate limit. */
		char *path = subscriber_path(c->email, NULL);
		out_add(o, idx, 'r', ml_batch_request("GET", path, NULL));
		free(path);
		json_decref(groups);
		return;
	}
	json_object_foreach(groups, name, v) {
		const char *gid = jsonget_string(r->group_ids, name);
		char suffix[64];
		if (!gid)
			continue;
		snprintf(suffix, sizeof(suffix), "/groups/%s", gid);
		char *path = subscriber_path(c->b_id, suffix);
		out_add(o, idx, 'w',
			ml_batch_request(json_is_true(v) ? "POST" : "DELETE", path, NULL));
		free(path);
	}
	json_decref(groups);
	json_t *status = json_incref(json_object_get(body, "status"));
	if (c->plan.resubscribe && status) {
		/* PUT cannot revive an unsubscribed subscriber; the upsert can. */
		json_object_del(body, "status");
	}
	/* The answer to a PUT or an upsert is the subscriber after it: when
	 * one is the contact's last write, it is the read-back, and a GET is
	 * needed only after group changes alone. */
	char last = 'r';
	if (json_object_size(body)) {
		char *path = subscriber_path(c->b_id, NULL);
		last = c->plan.resubscribe && status ? 'w' : 'b';
		out_add(o, idx, last, ml_batch_request("PUT", path, json_incref(body)));
		free(path);
	}
	if (c->plan.resubscribe && status) {
		const json_t *final_email = json_object_get(c->plan.b_after, "email");
		last = 'b';
		out_add(o, idx, last,
			ml_batch_request("POST", "api/subscribers",
					 json_pack("{s:O, s:b, s:O}", "email", final_email,
						   "resubscribe", 1, "status", status)));
	}
	json_decref(status);
	json_decref(body);
	if (last == 'r') {
		char *path = subscriber_path(c->b_id, NULL);
		out_add(o, idx, 'r', ml_batch_request("GET", path, NULL));
		free(path);
	}
}

/* Whether the contact's writes to B name a managed group by its id. */
static bool needs_group_ids(const struct contact *c)
{
	if (!c->planned || c->error)
		return false;
	bool create = c->plan.create_b || c->unlink;
	for (size_t i = 0; i < c->plan.n; i++) {
		const struct merge_item *it = &c->plan.items[i];
		if (it->kind != MERGE_GROUP)
			continue;
		if (it->action == MERGE_PUSH ||
		    (create && it->action != MERGE_KEEP && json_is_true(it->value)))
			return true;
	}
	return false;
}

/* What B said about one inner request, as a contact's error. */
static void record_b_refusal(struct contact *c, const struct ml_batch_item *item,
			     const json_t *request)
{
	struct strbuf fields = STRBUF_INIT;
	const char *key;
	const json_t *v;

	if (json_is_object(item->errors)) {
		json_object_foreach((json_t *)item->errors, key, v)
			strbuf_addf(&fields, "%s%s", fields.len ? ", " : "", key);
	}
	if (item->code == 404)
		set_error(c, "subscriber %s no longer exists in MailerLite (%s %s: 404)",
			  c->b_id ? c->b_id : c->email, jsonget_string(request, "method"),
			  jsonget_string(request, "path"));
	else
		set_error(c, "MailerLite refused %s %s with %ld: %s%s%s%s",
			  jsonget_string(request, "method"), jsonget_string(request, "path"), item->code,
			  item->message ? item->message : "no message",
			  fields.len ? " (fields: " : "", fields.len ? fields.buf : "",
			  fields.len ? ")" : "");
	strbuf_release(&fields);
}

/* One /batch whose answer lists each request's outcome. A 4xx for the
 * batch as a whole (a malformed batch) is this program's fault. */
static int call_batch(struct reconcile *r, const json_t *requests, struct ml_batch_result *res,
		      struct cw_error *err)
{
	if (r->opts.should_stop && r->opts.should_stop(r->opts.stop_arg)) {
		memset(res, 0, sizeof(*res));
		return cw_error_set(err, CW_EXIT_PARTIAL, "stopped before a batch");
	}
	if (ml_batch(r->ml, requests, res, err) < 0)
		return -1;
	if (res->status == 200)
		return 0;
	cw_error_set(err, CW_EXIT_SOFTWARE, "MailerLite refused a batch with %ld: %s", res->status,
		     res->message ? res->message : "no message");
	ml_batch_result_release(res);
	return -1;
}

static int send_b(struct reconcile *r, struct contact *cs, struct outgoing *o,
		  struct cw_error *err)
{
	size_t per = (size_t)r->cfg->batch_size;

	if (per > ML_BATCH_MAX || per < 1)
		per = ML_BATCH_MAX;
	for (size_t start = 0; start < o->n; start += per) {
		size_t end = start + per < o->n ? start + per : o->n;
		json_t *slice = json_array();
		struct ml_batch_result res;

		for (size_t i = start; i < end; i++)
			json_array_append(slice, json_array_get(o->requests, i));
		int rc = call_batch(r, slice, &res, err);
		json_decref(slice);
		if (rc < 0)
			return -1;
		for (size_t i = start; i < end; i++) {
			const struct ml_batch_item *item = &res.items[i - start];
			struct contact *c = &cs[o->owner[i]];
			bool ok = item->code >= 200 && item->code < 300;

			if (!ok) {
				record_b_refusal(c, item, json_array_get(o->requests, i));
				continue;
			}
			if (o->kind[i] == 'w')
				continue;
			const char *id = item->data ? jsonget_string(item->data, "id") : NULL;
			if (!id || !record_id_valid(id)) {
				set_error(c, "MailerLite answered without a subscriber id");
				continue;
			}
			if (o->kind[i] == 'c') {
				free(c->new_b_id);
				c->new_b_id = xstrdup(id);
			}
			json_decref(c->b_read);
			c->b_read = shadow_b_snapshot(item->data, r->cfg);
		}
		ml_batch_result_release(&res);
	}
	return 0;
}

/* ---- 5. A ---- */

/* The A values a plan pulls, as store_update_rows' "set". */
static json_t *pulled_values(const struct merge_plan *p, bool all)
{
	json_t *set = json_object(), *fields = json_object();
	bool groups = false;

	for (size_t i = 0; i < p->n; i++) {
		const struct merge_item *it = &p->items[i];
		if (it->action != MERGE_PULL && !(all && it->value && it->action != MERGE_KEEP))
			continue;
		switch (it->kind) {
		case MERGE_EMAIL:
			json_object_set(set, "email", it->value);
			break;
		case MERGE_FIELD:
			json_object_set(fields, it->name, it->value);
			break;
		case MERGE_STATUS:
			json_object_set(set, "status", it->value);
			break;
		case MERGE_GROUP:
			groups = true;
			break;
		}
	}
	json_object_set_new(set, "fields", fields);
	if (groups) {
		const json_t *after = json_object_get(p->a_after, "groups");
		json_object_set_new(set, "groups", after ? json_deep_copy(after) : json_array());
	}
	return set;
}

static bool a_write_needed(const struct contact *c)
{
	return c->planned && !c->error && (c->plan.create_a || c->plan.pulls);
}

/* A data error in one row must not sink the others: after the batch
 * statement fails on one, each row is tried alone under a savepoint. */
static bool data_error(struct db *db)
{
	const char *state = db_sqlstate(db);
	return !strncmp(state, "22", 2) || !strncmp(state, "23", 2);
}

static void take_a_rows(struct contact *cs, size_t n, PGresult *res, bool insert)
{
	for (int row = 0; row < PQntuples(res); row++) {
		const char *id = PQgetvalue(res, row, 0);
		for (size_t i = 0; i < n; i++) {
			struct contact *c = &cs[i];
			if (!a_write_needed(c) || c->plan.create_a != insert || c->a_written)
				continue;
			if (insert ? strcmp(c->email, id) : strcmp(c->a_key, id))
				continue;
			c->a_written = true;
			c->a_read = parse_json(res, row, insert ? 2 : 1);
			if (insert)
				c->new_a_key = xstrdup(PQgetvalue(res, row, 1));
			break;
		}
	}
}

static json_t *a_row(const struct contact *c)
{
	json_t *set = pulled_values(&c->plan, c->plan.create_a);

	if (c->plan.create_a) {
		if (!json_object_get(set, "email"))
			json_object_set_new(set, "email", json_string(c->email));
		return json_pack("{s:s, s:o}", "e", c->email, "set", set);
	}
	return json_pack("{s:s, s:O, s:o}", "k", c->a_key, "expect", c->a_snap, "set", set);
}

static PGresult *write_a_rows(struct reconcile *r, bool insert, const json_t *rows,
			      struct cw_error *err)
{
	char *text = json_dumps(rows, JSON_COMPACT);
	PGresult *res = insert ? store_insert_rows(r->store, r->db, text, err)
			       : store_update_rows(r->store, r->db, text, err);
	free(text);
	return res;
}

/* Write rows (consumed) under a savepoint: 1 when written, 0 when a value
 * was refused (rolled back to the savepoint; err says why), -1 on any
 * other failure. */
static int write_a_saved(struct reconcile *r, struct contact *cs, size_t n, bool insert,
			 json_t *rows, struct cw_error *err)
{
	if (db_exec(r->db, "SAVEPOINT cw_rows", 0, NULL, err) < 0) {
		json_decref(rows);
		return -1;
	}
	PGresult *res = write_a_rows(r, insert, rows, err);
	json_decref(rows);
	if (res) {
		take_a_rows(cs, n, res, insert);
		PQclear(res);
		return db_exec(r->db, "RELEASE SAVEPOINT cw_rows", 0, NULL, err) < 0 ? -1 : 1;
	}
	if (!data_error(r->db))
		return -1;
	struct cw_error why = *err;
	if (db_exec(r->db, "ROLLBACK TO SAVEPOINT cw_rows", 0, NULL, err) < 0)
		return -1;
	*err = why;
	return 0;
}

static int write_a_one_by_one(struct reconcile *r, struct contact *cs, size_t n, bool insert,
			      struct cw_error *err)
{
	for (size_t i = 0; i < n; i++) {
		struct contact *c = &cs[i];
		if (!a_write_needed(c) || c->plan.create_a != insert)
			continue;
		json_t *one = json_array();
		json_array_append_new(one, a_row(c));
		int rc = write_a_saved(r, cs, n, insert, one, err);
		if (rc < 0)
			return -1;
		if (rc == 0)
			set_error(c, "the A table refused the value: %s", err->msg);
	}
	return 0;
}

static int write_a(struct reconcile *r, struct contact *cs, size_t n, bool insert,
		   struct cw_error *err)
{
	json_t *rows = json_array();

	for (size_t i = 0; i < n; i++)
		if (a_write_needed(&cs[i]) && cs[i].plan.create_a == insert)
			json_array_append_new(rows, a_row(&cs[i]));
	if (!json_array_size(rows)) {
		json_decref(rows);
		return 0;
	}
	int rc = write_a_saved(r, cs, n, insert, rows, err);
	if (rc != 0)
		return rc < 0 ? -1 : 0;
	return write_a_one_by_one(r, cs, n, insert, err);
}

/* ---- 6. bookkeeping ---- */

static bool advanced(const struct contact *c)
{
	return c->planned && !c->error && !c->a_deferred;
}

/* The snapshot to keep for a side: the plan's (KEEP items hold the base),
 * with the time the side reported after the writes when what it reported
 * is what the plan meant it to hold, so that an incremental run sees the
 * contact as unchanged. */
static json_t *shadow_side(const json_t *planned, const json_t *read, bool deferred)
{
	json_t *out = json_deep_copy(planned);

	if (deferred)
		json_object_set_new(out, DEFERRED_MARK, json_true());

	if (read) {
		json_t *a = json_deep_copy(planned), *b = json_deep_copy(read);
		json_object_del(a, "updated_at");
		json_object_del(b, "updated_at");
		if (json_equal(a, b))
			json_object_set(out, "updated_at", json_object_get(read, "updated_at"));
		json_decref(a);
		json_decref(b);
	}
	return out;
}

static const char *final_email(const struct contact *c)
{
	const char *e = jsonget_string(c->plan.b_after, "email");
	for (size_t i = 0; i < c->plan.n; i++)
		if (c->plan.items[i].kind == MERGE_EMAIL && c->plan.items[i].action == MERGE_KEEP)
			return c->cw_email ? c->cw_email : c->email;
	return e && *e ? e : c->email;
}

static void log_row(json_t *log, const char *level, const char *action,
		    const struct contact *c, json_t *detail)
{
	const char *a = c->new_a_key ? c->new_a_key : c->a_key;
	const char *b = c->new_b_id ? c->new_b_id : c->b_id;
	json_array_append_new(log, json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:o?}", "level", level,
					     "action", action, "e", c->email, "a", a, "b", b,
					     "detail", detail));
}

static json_t *item_names(const struct merge_plan *p, enum merge_action action)
{
	json_t *names = json_array();
	for (size_t i = 0; i < p->n; i++) {
		const struct merge_item *it = &p->items[i];
		if (it->action != action)
			continue;
		if (it->kind == MERGE_GROUP)
			json_array_append_new(names, json_sprintf("groups:%s", it->name));
		else
			json_array_append_new(names, json_string(it->name));
	}
	return names;
}

/* sync_conflicts.winner: 'a', 'b', or 'none' when nothing was applied. */
static const char *winner_name(char winner)
{
	return winner == 'a' ? "a" : winner == 'b' ? "b" : "none";
}

static json_t *conflict_row(const struct contact *c, const struct merge_item *it)
{
	char field[300];
	if (it->kind == MERGE_GROUP)
		snprintf(field, sizeof(field), "groups:%s", it->name);
	else
		snprintf(field, sizeof(field), "%s", it->name);
	return json_pack("{s:s, s:s, s:O?, s:O?, s:O?, s:s, s:O?, s:s}", "e", final_email(c), "f",
			 field, "av", it->a_value, "bv", it->b_value, "base", it->base_value,
			 "policy", config_policy_name(it->policy), "applied",
			 it->winner == 'n' ? NULL : it->value, "winner", winner_name(it->winner));
}

static int exec_json(struct reconcile *r, const char *name, const char *sql, const json_t *rows,
		     int extra, struct cw_error *err)
{
	if (!json_array_size(rows))
		return 0;
	char *text = json_dumps(rows, JSON_COMPACT);
	const char *params[] = { text, extra ? r->crosswalk_table : r->program, r->run_id,
				 r->cfg->namespace };
	int rc = db_exec_prepared(r->db, name, sql, extra ? 2 : 4, params, err);
	free(text);
	return rc;
}

/* Whether the contact's shadow now shows it as synced, so that the search
 * for A's changes will not find it again in this pass. */
static bool settled(const struct reconcile *r, const struct contact *c)
{
	if (r->opts.dry_run || !c->planned || c->error || c->a_deferred)
		return false;
	for (size_t i = 0; i < c->plan.n; i++)
		if (c->plan.items[i].action == MERGE_KEEP)
			return false;
	return true;
}

static void count_and_log(struct reconcile *r, struct contact *c, struct reconcile_counts *k,
			  json_t *log, json_t *conflicts, json_t *book)
{
	k->processed++;
	if (c->quiet) {
		k->unchanged++;
		return;
	}
	if (c->skip) {
		k->skipped++;
		log_row(log, "warning", "skipped", c, json_pack("{s:s}", "reason", c->skip));
		return;
	}
	if (c->only_in_b) {
		k->only_in_b++;
		return;
	}
	if (c->error) {
		k->errors++;
		log_row(log, "error", "error", c, json_pack("{s:s}", "error", c->error));
		return;
	}
	if (!c->planned)
		return;
	if (c->a_deferred) {
		k->deferred++;
		log_row(log, "warning", "deferred", c,
			json_pack("{s:s}", "reason", "the A row changed while it was being synced"));
		return;
	}
	const struct merge_plan *p = &c->plan;
	const bool create_b = p->create_b || c->unlink, new_link = !c->cw_id || c->unlink;
	for (size_t i = 0; i < p->n; i++)
		if (p->items[i].conflict)
			json_array_append_new(conflicts, conflict_row(c, &p->items[i]));
	k->conflicts += (long long)p->conflicts;
	if (create_b)
		k->created_in_b++;
	else if (p->pushes)
		k->to_b++;
	if (p->create_a)
		k->created_in_a++;
	else if (p->pulls)
		k->to_a++;
	if (new_link)
		k->linked++;
	if (!create_b && !p->create_a && !p->pushes && !p->pulls && !new_link)
		k->unchanged++;

	if (c->unlink)
		log_row(log, "warning", "repaired", c,
			json_pack("{s:s, s:s?}", "reason", "linked subscriber missing in MailerLite",
				  "old_b_id", c->b_id));
	if (create_b)
		log_row(log, "info", "created_in_b", c, NULL);
	else if (p->create_a)
		log_row(log, "info", "created_in_a", c, NULL);
	else if (p->pushes || p->pulls)
		log_row(log, "info", "updated", c,
			json_pack("{s:o, s:o}", "toB", item_names(p, MERGE_PUSH), "toA",
				  item_names(p, MERGE_PULL)));
	else if (new_link)
		log_row(log, "info", "linked", c, NULL);

	/* A move the run's direction kept from the other side marks its side
	 * of the shadow, so that an incremental run does not take the contact
	 * for synced. */
	bool deferred = false;
	for (size_t i = 0; i < p->n; i++)
		deferred = deferred || (p->items[i].action == MERGE_KEEP && p->items[i].deferred);
	bool a_deferred = deferred && r->opts.direction == CW_DIR_B_TO_A;
	bool b_deferred = deferred && r->opts.direction == CW_DIR_A_TO_B;
	json_t *sa = shadow_side(p->a_after, c->a_read, a_deferred);
	json_t *sb = shadow_side(p->b_after, c->b_read, b_deferred);
	if (!new_link && !p->pushes && !p->pulls && c->sh_a && json_equal(sa, c->sh_a) &&
	    json_equal(sb, c->sh_b)) {
		json_decref(sa);
		json_decref(sb);
		return;
	}
	const char *a_key = c->new_a_key ? c->new_a_key : c->a_key;
	const char *b_id = c->new_b_id ? c->new_b_id : c->b_id;
	json_array_append_new(book, json_pack("{s:o, s:s, s:s, s:s, s:o, s:o}", "cw",
					      new_link ? json_null() : json_integer(c->cw_id), "a",
					      a_key, "b", b_id, "e", final_email(c), "sa", sa, "sb",
					      sb));
}

/* In a dry run: what would be done to the contact. */
static json_t *change_entry(const struct contact *c)
{
	const struct merge_plan *p = &c->plan;
	json_t *e = json_pack("{s:s, s:s?, s:s?}", "email", c->email, "a_id", c->a_key, "b_id",
			      c->b_id);
	const char *action = p->create_b || c->unlink ? "create_in_b"
			     : p->create_a	      ? "create_in_a"
			     : p->pushes || p->pulls  ? "update"
			     : !c->cw_id	      ? "link"
						      : NULL;
	if (!action && !p->conflicts) {
		json_decref(e);
		return NULL;
	}
	json_object_set_new(e, "action", json_string(action ? action : "conflict"));
	json_t *to_b = json_object(), *to_a = json_object(), *conflicts = json_array();
	for (size_t i = 0; i < p->n; i++) {
		const struct merge_item *it = &p->items[i];
		char name[300];
		snprintf(name, sizeof(name), "%s%s", it->kind == MERGE_GROUP ? "groups:" : "",
			 it->name);
		if (it->action == MERGE_PUSH)
			json_object_set(to_b, name, it->value);
		else if (it->action == MERGE_PULL)
			json_object_set(to_a, name, it->value);
		if (it->conflict)
			json_array_append_new(conflicts,
					      json_pack("{s:s, s:O?, s:O?, s:s, s:s}", "field", name,
							"a", it->a_value, "b", it->b_value, "policy",
							config_policy_name(it->policy), "winner",
							winner_name(it->winner)));
	}
	json_object_set_new(e, "toB", to_b);
	json_object_set_new(e, "toA", to_a);
	json_object_set_new(e, "conflicts", conflicts);
	return e;
}

static void report_add(json_t *report, const char *name, json_t *entry)
{
	json_t *list;

	if (!report || !entry) {
		json_decref(entry);
		return;
	}
	list = json_object_get(report, name);
	if (!list) {
		list = json_array();
		json_object_set_new(report, name, list);
	}
	if (json_array_size(list) < RECONCILE_REPORT_MAX)
		json_array_append_new(list, entry);
	else
		json_decref(entry);
}

void reconcile_report_merge(json_t *into, const json_t *from)
{
	const char *name;
	const json_t *list, *entry;
	size_t i;

	json_object_foreach((json_t *)from, name, list)
		json_array_foreach(list, i, entry)
			report_add(into, name, json_incref((json_t *)entry));
}

/* ---- the whole set ---- */

static void contacts_from_refs(struct reconcile *r, const struct contact_ref *refs, size_t n,
			       struct contact *cs)
{
	for (size_t i = 0; i < n; i++) {
		const struct contact_ref *ref = &refs[i];
		struct contact *c = &cs[i];

		if (ref->subscriber) {
			const char *id = jsonget_string(ref->subscriber, "id");
			const char *raw = jsonget_string(ref->subscriber, "email");
			c->email = record_normalize_email(raw ? raw : "");
			if (!id || !record_id_valid(id)) {
				c->skip = "subscriber without a usable id";
				continue;
			}
			c->b_id = xstrdup(id);
			if (record_email_problem(c->email)) {
				c->skip = record_email_problem(c->email);
				continue;
			}
			c->b_snap = shadow_b_snapshot(ref->subscriber, r->cfg);
		} else if (ref->email) {
			c->email = xstrdup(ref->email);
		}
		if (ref->a_key)
			c->a_key = xstrdup(ref->a_key);
		if (!c->email)
			c->skip = "no email";
	}
}

static json_t *email_list(const struct contact *cs, size_t n, bool pinned)
{
	json_t *emails = json_array();
	for (size_t i = 0; i < n; i++) {
		if (cs[i].skip)
			continue;
		if (!pinned && cs[i].email)
			json_array_append_new(emails, json_string(cs[i].email));
		if (pinned && cs[i].cw_email && strcmp(cs[i].cw_email, cs[i].email))
			json_array_append_new(emails, json_string(cs[i].cw_email));
	}
	return emails;
}

static int lock_set(struct reconcile *r, struct contact *cs, size_t n, bool pinned,
		    struct cw_error *err)
{
	json_t *emails = email_list(cs, n, pinned);
	int rc = json_array_size(emails) ? crosswalk_lock_emails(r->db, emails, err) : 0;
	json_decref(emails);
	return rc;
}

void reconcile_outcome_release(struct reconcile_outcome *o)
{
	free(o->error);
	free(o->b_id);
	memset(o, 0, sizeof(*o));
}

static void fill_outcome(const struct contact *c, struct reconcile_outcome *o)
{
	const struct merge_plan *p = &c->plan;
	const char *b_id = c->new_b_id ? c->new_b_id : c->b_id;

	reconcile_outcome_release(o);
	o->b_id = b_id && (c->b_snap || c->new_b_id) ? xstrdup(b_id) : NULL;
	o->result = RECONCILE_SKIPPED;
	if (c->quiet)
		o->reason = RECONCILE_NO_CHANGES;
	else if (c->skip)
		o->reason = c->skip;
	else if (c->only_in_b)
		o->reason = "only in MailerLite, and this run does not create contacts in A";
	else if (c->error) {
		o->result = RECONCILE_FAILED;
		o->error = xstrdup(c->error);
	} else if (c->a_deferred)
		o->reason = "the A row changed while it was being synced";
	else if (!c->planned)
		o->reason = "could not be planned";
	else if (p->create_a || p->create_b || c->unlink || p->pushes || p->pulls || !c->cw_id)
		o->result = RECONCILE_CHANGED;
	else
		o->result = RECONCILE_UNCHANGED;
}

static int bookkeeping(struct reconcile *r, struct contact *cs, size_t n,
		       struct reconcile_counts *counts, json_t *report,
		       struct reconcile_outcome *outcomes, struct cw_error *err)
{
	json_t *log = json_array(), *conflicts = json_array(), *book = json_array();
	struct strbuf unlink = STRBUF_INIT;
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		struct contact *c = &cs[i];
		count_and_log(r, c, counts, log, conflicts, book);
		if (outcomes)
			fill_outcome(c, &outcomes[i]);
		if (c->a_key && !settled(r, c))
			json_array_append_new(r->seen, json_string(c->a_key));
		if (c->error)
			report_add(report, "errors",
				   json_pack("{s:s?, s:s?, s:s?, s:s}", "email", c->email, "a_id",
					     c->a_key, "b_id", c->b_id, "error", c->error));
		if (r->opts.dry_run && c->planned && !c->error)
			report_add(report, "changes", change_entry(c));
		if (c->unlink && advanced(c))
			strbuf_addf(&unlink, "%s%lld", unlink.len ? "," : "{", c->cw_id);
	}
	if (!r->opts.dry_run) {
		if (unlink.len) {
			strbuf_addch(&unlink, '}');
			const char *params[] = { unlink.buf };
			rc = db_exec(r->db, r->unlink_sql, 1, params, err);
		}
		if (rc == 0)
			rc = exec_json(r, "cw_reconcile_book", r->book_sql, book, 1, err);
		if (rc == 0)
			rc = exec_json(r, "cw_reconcile_conflicts", r->conflict_sql, conflicts, 0, err);
		if (rc == 0)
			rc = job_log_records(r->db, r->program, r->run_id, r->cfg->namespace, log,
					     err);
	}
	strbuf_release(&unlink);
	json_decref(log);
	json_decref(conflicts);
	json_decref(book);
	return rc;
}

/* Group ids are looked up once, and only by a run that writes a group. */
static int resolve_groups_if_needed(struct reconcile *r, const struct contact *cs, size_t n,
				    struct cw_error *err)
{
	if (r->groups_ready || r->opts.dry_run)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (needs_group_ids(&cs[i]))
			return reconcile_resolve_groups(r, err);
	return 0;
}

int reconcile_contacts(struct reconcile *r, const struct contact_ref *refs, size_t n,
		       struct reconcile_counts *counts, json_t *report,
		       struct reconcile_outcome *outcomes, struct cw_error *err)
{
	struct contact *cs = xcalloc(n ? n : 1, sizeof(*cs));
	struct outgoing out = { json_array(), NULL, NULL, 0, 0 };
	struct reconcile_counts got = { 0 };
	int rc = -1;

	contacts_from_refs(r, refs, n, cs);
	if (lock_set(r, cs, n, false, err) < 0 || load(r, cs, n, err) < 0 ||
	    lock_set(r, cs, n, true, err) < 0 || refresh_stale(r, cs, n, err) < 0)
		goto out;
	for (size_t i = 0; i < n; i++)
		plan_contact(r, &cs[i]);
	if (resolve_groups_if_needed(r, cs, n, err) < 0)
		goto out;
	for (size_t i = 0; i < n && !r->opts.dry_run; i++)
		queue_b_writes(r, cs, i, &out);
	if (out.n && send_b(r, cs, &out, err) < 0)
		goto out;
	if (!r->opts.dry_run) {
		if (write_a(r, cs, n, false, err) < 0 || write_a(r, cs, n, true, err) < 0)
			goto out;
		for (size_t i = 0; i < n; i++)
			if (a_write_needed(&cs[i]) && !cs[i].a_written && !cs[i].error)
				cs[i].a_deferred = true;
	}
	if (bookkeeping(r, cs, n, &got, report, outcomes, err) < 0)
		goto out;
	reconcile_counts_add(counts, &got);
	rc = 0;
out:
	for (size_t i = 0; i < n; i++)
		contact_release(&cs[i]);
	free(cs);
	json_decref(out.requests);
	free(out.owner);
	free(out.kind);
	return rc;
}

/* ---- the A side's changes ---- */

/* Rows of (k, e, b) as the array reconcile_a_changes gives; clears res. */
static json_t *todo_rows(PGresult *res)
{
	json_t *rows = json_array();
	for (int i = 0; i < PQntuples(res); i++)
		json_array_append_new(rows,
				      json_pack("{s:s, s:s, s:s?}", "k", PQgetvalue(res, i, 0), "e",
						PQgetvalue(res, i, 1), "b",
						PQgetisnull(res, i, 2) ? NULL : PQgetvalue(res, i, 2)));
	PQclear(res);
	return rows;
}

int reconcile_a_changes(struct reconcile *r, const char *after_key, int limit, json_t **rows,
			struct cw_error *err)
{
	if (!r->todo_ready && gather_changes(r, after_key, err) < 0)
		return -1;
	char *seen_text = json_dumps(r->seen, JSON_COMPACT);
	char *sql = xasprintf("SELECT k, e, b FROM pg_temp.cw_a_todo"
			      " WHERE ($1::text IS NULL OR key > $1::%s)"
			      "   AND k <> ALL (ARRAY(SELECT pg_catalog.jsonb_array_elements_text($3::jsonb)))"
			      " ORDER BY key LIMIT $2::int",
			      store_key_type(r->store));
	char limit_text[24];
	snprintf(limit_text, sizeof(limit_text), "%d", limit);
	const char *params[] = { after_key, limit_text, seen_text };
	PGresult *res = db_query(r->db, sql, 3, params, err);

	free(sql);
	free(seen_text);
	if (!res)
		return -1;
	*rows = todo_rows(res);
	return 0;
}

int reconcile_a_range(struct reconcile *r, const char *from_key, const char *to_key,
		      json_t **rows, struct cw_error *err)
{
	struct store *st = r->store;
	char *filter = xasprintf("($1::text IS NULL OR t.%s >= $1::%s)"
				 " AND ($5::text IS NULL OR t.%s < $5::%s)",
				 store_key(st), store_key_type(st), store_key(st),
				 store_key_type(st));
	char *select = changes_select(r, filter);
	char *sql = xasprintf("SELECT k, e, b FROM (%s) c(key, k, e, b) ORDER BY key", select);
	const char *params[] = { from_key, store_keys_param(st), store_groups_param(st),
				 RECORD_EMAIL_PATTERN, to_key };
	PGresult *res = db_query_prepared(r->db, "cw_reconcile_range", sql, 5, params, err);

	free(sql);
	free(select);
	free(filter);
	if (!res)
		return -1;
	*rows = todo_rows(res);
	return 0;
}

int reconcile_find(struct reconcile *r, const json_t *emails, json_t **rows, struct cw_error *err)
{
	const char *s = db_schema(r->db);
	char *by_email = store_by_email_sql(r->store, "r.e");
	/* A is searched by email only for an email the crosswalk does not
	 * know, gated as in load_statement(). */
	char *sql = xasprintf(
		"WITH r AS (SELECT r.e, r.n FROM pg_catalog.jsonb_array_elements_text($1::jsonb)"
		"  WITH ORDINALITY AS r(e, n))"
		" SELECT r.e, coalesce(xe.a_id, CASE WHEN ta.n_a = 1 THEN ta.a_id END),"
		"   coalesce(xe.b_id, xa.b_id)"
		" FROM r"
		" LEFT JOIN LATERAL (SELECT x.a_id, x.b_id FROM %s.integration_crosswalk x"
		"   WHERE x.email = r.e) xe ON true"
		" LEFT JOIN LATERAL (SELECT * FROM (%s) q WHERE xe.a_id IS NULL OFFSET 0) ta ON true"
		" LEFT JOIN LATERAL (SELECT x.b_id FROM %s.integration_crosswalk x"
		"   WHERE x.a_id = ta.a_id) xa ON ta.n_a = 1"
		" ORDER BY r.n",
		s, by_email, s);
	char *text = json_dumps(emails, JSON_COMPACT);
	const char *params[] = { text };
	PGresult *res = db_query_prepared(r->db, "cw_reconcile_find", sql, 1, params, err);

	free(text);
	free(sql);
	free(by_email);
	if (!res)
		return -1;
	*rows = json_array();
	for (int i = 0; i < PQntuples(res); i++)
		json_array_append_new(*rows, json_pack("{s:s, s:s?, s:s?}", "e", PQgetvalue(res, i, 0),
						       "k", PQgetisnull(res, i, 1) ? NULL : PQgetvalue(res, i, 1),
						       "b", PQgetisnull(res, i, 2) ? NULL : PQgetvalue(res, i, 2)));
	PQclear(res);
	return 0;
}

/* One /batch of GETs for rows[start, end), their answers appended to
 * subscribers. */
static int fetch_b_slice(struct reconcile *r, const json_t *rows, size_t start, size_t end,
			 json_t *subscribers, struct cw_error *err)
{
	json_t *requests = json_array();
	struct ml_batch_result res;

	for (size_t i = start; i < end; i++) {
		const json_t *row = json_array_get(rows, i);
		const char *b = jsonget_string(row, "b");
		char *path = subscriber_path(b ? b : jsonget_string(row, "e"), NULL);
		json_array_append_new(requests, ml_batch_request("GET", path, NULL));
		free(path);
	}
	int rc = call_batch(r, requests, &res, err);
	json_decref(requests);
	if (rc < 0)
		return -1;
	for (size_t i = 0; i < res.n; i++) {
		const struct ml_batch_item *item = &res.items[i];
		const char *id = item->data ? jsonget_string(item->data, "id") : NULL;
		const char *email = item->data ? jsonget_string(item->data, "email") : NULL;
		if (item->code == 200 && id && record_id_valid(id) && email) {
			json_array_append(subscribers, (json_t *)item->data);
		} else if (item->code == 404) {
			json_array_append_new(subscribers, json_null());
		} else {
			cw_error_set(err, CW_EXIT_UNAVAILABLE,
				     "MailerLite answered %ld to reading a subscriber%s%s", item->code,
				     item->message ? ": " : "", item->message ? item->message : "");
			ml_batch_result_release(&res);
			return -1;
		}
	}
	ml_batch_result_release(&res);
	return 0;
}

int reconcile_fetch_b(struct reconcile *r, const json_t *rows, json_t **subscribers,
		      struct cw_error *err)
{
	size_t n = json_array_size(rows);

	*subscribers = json_array();
	for (size_t start = 0; start < n; start += ML_BATCH_MAX) {
		size_t end = n - start > ML_BATCH_MAX ? start + ML_BATCH_MAX : n;
		if (fetch_b_slice(r, rows, start, end, *subscribers, err) < 0) {
			json_decref(*subscribers);
			*subscribers = NULL;
			return -1;
		}
	}
	return 0;
}
