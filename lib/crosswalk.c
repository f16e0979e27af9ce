/* Linking B subscribers to A rows by email, a batch per statement. */
#include "crosswalk.h"
#include "exitcode.h"
#include "record.h"
#include "shadow.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>

struct linker {
	struct db *db;
	const struct cw_config *cfg;
	const char *program;
	char *run_id;
	char *link_sql;
	char *finish_sql;
	char *crosswalk_table; /* text parameter: the quoted table that owns the id sequence */
};

int crosswalk_lock_emails(struct db *db, const json_t *emails, struct cw_error *err)
{
	char *text = json_dumps(emails, JSON_COMPACT);
	const char *params[] = { text };
	/* Sorted, so that two sessions locking overlapping sets cannot
	 * deadlock each other within one call. */
	int rc = db_exec_prepared(
		db, "cw_lock_emails",
		"SELECT pg_catalog.count(pg_catalog.pg_advisory_xact_lock("
		"  pg_catalog.hashtextextended('crosswalk-email:' || e, 0)))"
		" FROM (SELECT DISTINCT e FROM pg_catalog.jsonb_array_elements_text($1::jsonb) e"
		"  ORDER BY e) q",
		1, params, err);

	free(text);
	return rc;
}

char *crosswalk_b_row(const json_t *subscriber, const struct cw_config *cfg, char **id_out)
{
	const json_t *id = json_object_get(subscriber, "id");
	const json_t *email = json_object_get(subscriber, "email");

	if (!json_is_string(id) || !record_id_valid(json_string_value(id)))
		return NULL;
	const char *raw = json_is_string(email) ? json_string_value(email) : "";
	char *normalized = record_normalize_email(raw);
	const char *problem = record_email_problem(normalized);
	json_t *row = json_object();

	json_object_set_new(row, "i", json_string(json_string_value(id)));
	if (problem) {
		json_object_set_new(row, "e", json_null());
		/* Keep the raw text for the log, bounded and valid UTF-8 (jansson
		 * strings are), so one bad address cannot bloat sync_log. */
		json_object_set_new(row, "r", json_stringn(raw, strnlen(raw, 320)));
		json_object_set_new(row, "why", json_string(problem));
		if (!json_object_get(row, "r"))
			json_object_set_new(row, "r", json_string(""));
	} else {
		json_object_set_new(row, "e", json_string(normalized));
		json_object_set_new(row, "s", shadow_b_snapshot(subscriber, cfg));
	}
	free(normalized);
	char *text = json_dumps(row, JSON_COMPACT);
	json_decref(row);
	if (id_out)
		*id_out = xstrdup(json_string_value(id));
	return text;
}

/*
 * One statement per batch. The steps, as CTEs:
 *   b     the batch, with how often each email occurs in it
 *   ma    from the session's lookup of A (store_build_lookup): how many A
 *         rows share the email, and the row and its snapshot when just one
 *   o     the outcome per subscriber against existing crosswalk pins
 *         (lateral lookups: the planner guesses 100 rows for the batch and
 *         would otherwise hash the whole crosswalk once per batch;
 *         LIMIT 1 keeps them from being flattened into joins)
 *   c     a crosswalk id drawn for each new link, so that its shadow needs
 *         no join back to the inserted rows (the planner guesses one row
 *         for a CTE and would compare every pair)
 *   ins_cw, ins_sh, ins_log  the writes; the shadows' foreign key is
 *         checked at the end of the statement, after every CTE ran
 * Every link made is logged ("linked"); a subscriber already linked the
 * same way is left alone, unlogged. A pin is never moved here: a subscriber whose email, A row or B id is
 * already linked differently is skipped and logged, for enterprise-sync or
 * a repair to settle. An existing shadow is never rewritten either: it is
 * the base of the next 3-way decision, and overwriting it with today's
 * values would silently drop the changes made since the last sync.
 */
static char *link_statement(struct db *db)
{
	const char *s = db_schema(db);
	char *sql = xasprintf(
		"WITH b AS ("
		"  SELECT r.i AS b_id, r.e AS email, r.r AS raw, r.s AS snap, r.why,"
		"         count(*) OVER (PARTITION BY r.e) AS n_b"
		"  FROM pg_catalog.jsonb_to_recordset($1::jsonb)"
		"       AS r(i text, e text, r text, s jsonb, why text)),"
		" ma AS ("
		"  SELECT b.b_id, b.email, b.raw, b.snap, b.why, b.n_b, la.n_a,"
		"         CASE WHEN la.n_a = 1 THEN la.a_id END AS a_id,"
		"         CASE WHEN la.n_a = 1 THEN la.a_snap END AS a_snap"
		"  FROM b LEFT JOIN LATERAL (SELECT l.n_a, l.a_id, l.a_snap FROM pg_temp.cw_a_lookup l"
		"    WHERE l.email = b.email LIMIT 1) la ON b.email IS NOT NULL),"
		" o AS ("
		"  SELECT ma.*, ce.id AS ce_id,"
		"    CASE"
		"      WHEN ma.email IS NULL THEN coalesce(ma.why, 'invalid email')"
		"      WHEN ma.n_b > 1 THEN 'duplicate email in B'"
		"      WHEN ma.n_a > 1 THEN 'duplicate email in A'"
		"      WHEN ma.a_id IS NULL THEN 'only_in_b'"
		"      WHEN ce.id IS NOT NULL AND ce.a_id = ma.a_id AND ce.b_id = ma.b_id THEN 'linked'"
		"      WHEN ce.id IS NOT NULL THEN 'email already linked to other ids'"
		"      WHEN ca.id IS NOT NULL THEN 'A row already linked to another email'"
		"      WHEN cb.id IS NOT NULL THEN 'B subscriber already linked to another email'"
		"      ELSE 'new'"
		"    END AS outcome,"
		"    coalesce(ce.a_id, ca.a_id, cb.a_id) AS pinned_a,"
		"    coalesce(ce.b_id, ca.b_id, cb.b_id) AS pinned_b"
		"  FROM ma"
		"  LEFT JOIN LATERAL (SELECT x.id, x.a_id, x.b_id FROM %s.integration_crosswalk x"
		"    WHERE x.email = ma.email LIMIT 1) ce ON true"
		"  LEFT JOIN LATERAL (SELECT x.id, x.a_id, x.b_id FROM %s.integration_crosswalk x"
		"    WHERE x.a_id = ma.a_id LIMIT 1) ca ON true"
		"  LEFT JOIN LATERAL (SELECT x.id, x.a_id, x.b_id FROM %s.integration_crosswalk x"
		"    WHERE x.b_id = ma.b_id LIMIT 1) cb ON true),"
		" c AS ("
		"  SELECT o.*, CASE WHEN o.outcome = 'new'"
		"    THEN pg_catalog.nextval(pg_catalog.pg_get_serial_sequence($5, 'id')) END AS new_id"
		"  FROM o),"
		" ins_cw AS ("
		"  INSERT INTO %s.integration_crosswalk (id, a_id, b_id, email) OVERRIDING SYSTEM VALUE"
		"  SELECT new_id, a_id, b_id, email FROM c WHERE outcome = 'new'"
		"  RETURNING 1),"
		" links AS ("
		"  SELECT coalesce(c.new_id, c.ce_id) AS crosswalk_id, c.a_snap, c.snap FROM c"
		"  WHERE c.outcome IN ('new', 'linked')),"
		" ins_sh AS ("
		"  INSERT INTO %s.sync_shadow AS sh (crosswalk_id, a_snapshot, b_snapshot, synced_at)"
		"  SELECT crosswalk_id, a_snap, snap, pg_catalog.now() FROM links"
		"  ON CONFLICT (crosswalk_id) DO NOTHING"
		"  RETURNING 1),"
		" ins_log AS ("
		"  INSERT INTO %s.sync_log (program, run_id, namespace, level, action, email, a_id,"
		"                           b_id, detail)"
		"  SELECT $2, $3, $4,"
		"    CASE WHEN outcome IN ('new', 'only_in_b') THEN 'info' ELSE 'warning' END,"
		"    CASE outcome WHEN 'new' THEN 'linked' WHEN 'only_in_b' THEN 'only_in_b'"
		"      ELSE 'skipped' END,"
		"    coalesce(email, raw), a_id, b_id,"
		"    CASE WHEN outcome IN ('new', 'only_in_b') THEN NULL"
		"    ELSE pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('side', 'b',"
		"      'reason', outcome, 'linked_a_id', pinned_a, 'linked_b_id', pinned_b)) END"
		"  FROM c WHERE outcome <> 'linked'"
		"  RETURNING 1)"
		" SELECT (SELECT count(*) FROM ins_cw), (SELECT count(*) FROM ins_sh),"
		"   count(*) FILTER (WHERE outcome IN ('new', 'linked')),"
		"   count(*) FILTER (WHERE outcome = 'only_in_b'),"
		"   count(*) FILTER (WHERE outcome NOT IN ('new', 'linked', 'only_in_b')),"
		"   (SELECT count(*) FROM ins_log)"
		" FROM c",
		s, s, s, s, s, s);
	return sql;
}

/*
 * After the walk: A rows nobody linked. An A row whose email B had (this
 * run logged it as only_in_b's opposite: skipped or linked elsewhere) is not
 * "only in A"; one with an unusable or repeated email is skipped.
 */
static char *finish_statement(struct db *db)
{
	const char *s = db_schema(db);

	return xasprintf(
		"WITH a AS ("
		"  SELECT l.a_id, l.email,"
		"    CASE WHEN coalesce(l.email, '') = '' THEN 'empty email'"
		"         WHEN pg_catalog.length(l.email) > %d THEN 'email longer than 254 characters'"
		"         WHEN l.email !~ $4 THEN 'invalid email'"
		"         WHEN l.n_a > 1 THEN 'duplicate email in A'"
		"    END AS problem"
		"  FROM pg_temp.cw_a_lookup l),"
		" unlinked AS ("
		"  SELECT a.* FROM a"
		"  WHERE NOT EXISTS (SELECT 1 FROM %s.integration_crosswalk c WHERE c.a_id = a.a_id)"
		"    AND (a.problem IS NOT NULL OR NOT EXISTS (SELECT 1 FROM %s.sync_log g"
		"      WHERE g.run_id = $2 AND g.action = 'skipped' AND g.email = a.email))),"
		" ins AS ("
		"  INSERT INTO %s.sync_log (program, run_id, namespace, level, action, email, a_id,"
		"                           detail)"
		"  SELECT $1, $2, $3,"
		"    CASE WHEN problem IS NULL THEN 'info' ELSE 'warning' END,"
		"    CASE WHEN problem IS NULL THEN 'only_in_a' ELSE 'skipped' END,"
		"    email, a_id,"
		"    CASE WHEN problem IS NULL THEN NULL"
		"    ELSE pg_catalog.jsonb_build_object('side', 'a', 'reason', problem) END"
		"  FROM unlinked"
		"  RETURNING action)"
		" SELECT count(*) FILTER (WHERE action = 'only_in_a'),"
		"        count(*) FILTER (WHERE action = 'skipped') FROM ins",
		RECORD_EMAIL_MAX, s, s, s);
}

struct linker *linker_new(struct db *db, const struct cw_config *cfg,
			  const char *program, const char *run_id)
{
	struct linker *linker = xcalloc(1, sizeof(*linker));

	linker->db = db;
	linker->cfg = cfg;
	linker->program = program;
	linker->run_id = xstrdup(run_id);
	linker->link_sql = link_statement(db);
	linker->finish_sql = finish_statement(db);
	linker->crosswalk_table = xasprintf("%s.integration_crosswalk", db_schema(db));
	return linker;
}

void linker_free(struct linker *linker)
{
	if (!linker)
		return;
	free(linker->link_sql);
	free(linker->finish_sql);
	free(linker->crosswalk_table);
	free(linker->run_id);
	free(linker);
}

static long long column_ll(PGresult *res, int col)
{
	return strtoll(PQgetvalue(res, 0, col), NULL, 10);
}

int linker_link_batch(struct linker *linker, const char *rows_json, struct link_counts *counts,
		      struct cw_error *err)
{
	const char *params[] = { rows_json, linker->program, linker->run_id, linker->cfg->namespace,
				 linker->crosswalk_table };
	PGresult *res = db_query_prepared(linker->db, "cw_link_batch", linker->link_sql, 5, params,
					  err);

	if (!res)
		return -1;
	counts->crosswalk_created += column_ll(res, 0);
	counts->shadows_written += column_ll(res, 1);
	counts->matched += column_ll(res, 2);
	counts->only_in_b += column_ll(res, 3);
	counts->skipped += column_ll(res, 4);
	PQclear(res);
	return 0;
}

int linker_finish(struct linker *linker, long long *only_in_a, long long *skipped_in_a,
		  struct cw_error *err)
{
	const char *params[] = { linker->program, linker->run_id, linker->cfg->namespace,
				 RECORD_EMAIL_PATTERN };
	PGresult *res = db_query(linker->db, linker->finish_sql, 4, params, err);

	if (!res)
		return -1;
	*only_in_a = column_ll(res, 0);
	*skipped_in_a = column_ll(res, 1);
	PQclear(res);
	return 0;
}
