/* Repairing a contact's crosswalk row and shadow from what both sides hold now. */
#include "repair.h"
#include "crosswalk.h"
#include "job.h"
#include "strbuf.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>

#define MAX_CLAIMS 3

/* One crosswalk row that claims a contact, as the check query gives it. */
struct claim {
	long long id;
	const char *a_id, *b_id, *email; /* borrowed from the result */
	bool has_shadow, shadow_ok, a_alive;
};

static char *check_statement(struct db *db, struct store *store)
{
	const char *s = db_schema(db);
	/* FOR UPDATE: a concurrent link of the same rows waits for this
	 * transaction instead of racing the removal. */
	return xasprintf(
		"WITH r AS (SELECT * FROM pg_catalog.jsonb_to_recordset($1::jsonb)"
		"  AS r(x int, e text, k text, b text))"
		" SELECT r.x, x.id, x.a_id, x.b_id, x.email, sh.crosswalk_id IS NOT NULL,"
		"   coalesce(pg_catalog.jsonb_typeof(sh.a_snapshot) = 'object'"
		"     AND pg_catalog.jsonb_typeof(sh.a_snapshot -> 'fields') = 'object'"
		"     AND pg_catalog.jsonb_typeof(sh.b_snapshot) = 'object'"
		"     AND pg_catalog.jsonb_typeof(sh.b_snapshot -> 'fields') = 'object', false),"
		"   EXISTS (SELECT 1 FROM %s t WHERE t.%s = x.a_id::%s)"
		" FROM r JOIN %s.integration_crosswalk x"
		"   ON x.email = r.e OR x.a_id = r.k OR x.b_id = r.b"
		" LEFT JOIN %s.sync_shadow sh ON sh.crosswalk_id = x.id"
		" ORDER BY r.x, x.id FOR UPDATE OF x",
		store_table(store), store_key(store), store_key_type(store), s, s);
}

static json_t *claim_json(const struct claim *c)
{
	return json_pack("{s:I, s:s, s:s, s:s}", "id", (json_int_t)c->id, "a_id", c->a_id, "b_id",
			 c->b_id, "email", c->email);
}

static void log_repair(json_t *log, const struct repair_contact *rc, const char *reason,
		       json_t *detail)
{
	if (!detail)
		detail = json_object();
	json_object_set_new(detail, "reason", json_string(reason));
	json_array_append_new(log, json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:o}", "level", "warning",
					     "action", "repaired", "e", rc->email, "a", rc->a_key,
					     "b", rc->b_id, "detail", detail));
}

static void add_id(struct strbuf *ids, long long id)
{
	strbuf_addf(ids, "%s%lld", ids->len ? "," : "{", id);
}

/* Decide what to repair for one contact, given the rows that claim it. */
static void judge(struct repair_contact *rc, const struct claim *claims, size_t n,
		  struct strbuf *unlink, struct strbuf *unshadow, json_t *log)
{
	if (n == 0)
		return;
	if (n > 1) {
		json_t *rows = json_array();
		for (size_t i = 0; i < n; i++) {
			json_array_append_new(rows, claim_json(&claims[i]));
			add_id(unlink, claims[i].id);
		}
		log_repair(log, rc, "several crosswalk rows claimed the contact",
			   json_pack("{s:o}", "removed", rows));
		rc->unlinked = true;
		rc->repairs++;
		return;
	}
	const struct claim *c = &claims[0];
	const char *why = NULL;
	if (!rc->b_id)
		why = "the linked subscriber no longer exists in MailerLite";
	else if (strcmp(c->b_id, rc->b_id))
		why = "the subscriber's id in MailerLite changed";
	else if (!c->a_alive)
		why = "the linked A row no longer exists";
	else if (rc->a_key && strcmp(c->a_id, rc->a_key))
		why = "the email's A row is not the linked one";
	if (why) {
		log_repair(log, rc, why, json_pack("{s:o}", "removed", claim_json(c)));
		add_id(unlink, c->id);
		rc->unlinked = true;
		rc->repairs++;
		return;
	}
	if (!c->has_shadow) {
		log_repair(log, rc, "the shadow was missing", NULL);
		rc->repairs++;
	} else if (!c->shadow_ok) {
		log_repair(log, rc, "the shadow was not a pair of snapshots", NULL);
		add_id(unshadow, c->id);
		rc->repairs++;
	}
}

/* DELETE FROM <schema>.table WHERE column = ANY(ids). */
static int delete_ids(struct db *db, const char *table, const char *column, struct strbuf *ids,
		      struct cw_error *err)
{
	if (!ids->len)
		return 0;
	strbuf_addch(ids, '}');
	char *sql = xasprintf("DELETE FROM %s.%s WHERE %s = ANY($1::bigint[])", db_schema(db), table,
			      column);
	const char *params[] = { ids->buf };
	int rc = db_exec(db, sql, 1, params, err);
	free(sql);
	return rc;
}

static int lock_contacts(struct db *db, const struct repair_contact *contacts, size_t n,
			 struct cw_error *err)
{
	json_t *emails = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(emails, json_string(contacts[i].email));
	int rc = crosswalk_lock_emails(db, emails, err);
	json_decref(emails);
	return rc;
}

int repair_contacts(struct db *db, const struct cw_config *cfg, struct store *store,
		    const char *program, const char *run_id, struct repair_contact *contacts,
		    size_t n, long long *repaired, struct cw_error *err)
{
	json_t *rows = json_array(), *log = json_array();
	struct strbuf unlink = STRBUF_INIT, unshadow = STRBUF_INIT;
	struct claim claims[MAX_CLAIMS];
	PGresult *res = NULL;
	int rc = -1;

	*repaired = 0;
	for (size_t i = 0; i < n; i++)
		json_array_append_new(rows, json_pack("{s:I, s:s, s:s?, s:s?}", "x", (json_int_t)i,
						      "e", contacts[i].email, "k", contacts[i].a_key,
						      "b", contacts[i].b_id));
	if (lock_contacts(db, contacts, n, err) < 0)
		goto out;
	char *sql = check_statement(db, store);
	char *text = json_dumps(rows, JSON_COMPACT);
	const char *params[] = { text };
	res = db_query(db, sql, 1, params, err);
	free(sql);
	free(text);
	if (!res)
		goto out;

	/* The rows come grouped by contact (at most three rows each: email,
	 * A key and B id are each unique): judge each group as it ends. */
	int nrows = PQntuples(res);
	size_t nclaims = 0;
	long long current = -1;
	for (int row = 0; row <= nrows; row++) {
		long long x = row < nrows ? strtoll(PQgetvalue(res, row, 0), NULL, 10) : -1;
		if (x != current) {
			if (nclaims && current >= 0 && (size_t)current < n)
				judge(&contacts[current], claims, nclaims, &unlink, &unshadow, log);
			nclaims = 0;
			current = x;
		}
		if (row == nrows || nclaims == MAX_CLAIMS)
			continue;
		claims[nclaims++] = (struct claim){
			.id = strtoll(PQgetvalue(res, row, 1), NULL, 10),
			.a_id = PQgetvalue(res, row, 2),
			.b_id = PQgetvalue(res, row, 3),
			.email = PQgetvalue(res, row, 4),
			.has_shadow = !strcmp(PQgetvalue(res, row, 5), "t"),
			.shadow_ok = !strcmp(PQgetvalue(res, row, 6), "t"),
			.a_alive = !strcmp(PQgetvalue(res, row, 7), "t"),
		};
	}
	for (size_t i = 0; i < n; i++)
		*repaired += contacts[i].repairs > 0;
	if (delete_ids(db, "integration_crosswalk", "id", &unlink, err) < 0 ||
	    delete_ids(db, "sync_shadow", "crosswalk_id", &unshadow, err) < 0 ||
	    job_log_records(db, program, run_id, cfg->namespace, log, err) < 0)
		goto out;
	rc = 0;
out:
	PQclear(res);
	strbuf_release(&unlink);
	strbuf_release(&unshadow);
	json_decref(rows);
	json_decref(log);
	return rc;
}
