/* A job's circuit breaker: refuse runs for a while after repeated failures, kept in sync_state. */
#include "breaker.h"
#include "exitcode.h"
#include "state.h"
#include "xalloc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The settings as the arithmetic uses them; NaN fails every comparison, so
 * each bound is written to catch it. */
struct limits {
	int max_errors;
	double window, cooldown;
};

static struct limits limits_of(const struct breaker_settings *s)
{
	struct limits l = { s->max_errors, s->window_s, s->cooldown_s };

	if (l.max_errors < 1)
		l.max_errors = 1;
	if (l.max_errors > BREAKER_MAX_ERRORS)
		l.max_errors = BREAKER_MAX_ERRORS;
	if (!(l.window >= 1.0))
		l.window = 1.0;
	if (!(l.cooldown >= 1.0))
		l.cooldown = 1.0;
	return l;
}

static const char *const state_names[] = { "closed", "open", "half-open" };

const char *breaker_state_name(enum breaker_state state)
{
	return (unsigned)state < 3 ? state_names[state] : "closed";
}

void breaker_iso_time(double epoch, char *buf, size_t len)
{
	double whole = floor(epoch);
	time_t t = (time_t)whole;
	int ms = (int)lround((epoch - whole) * 1000.0);
	struct tm tm;

	if (ms > 999) { /* 0.9996 rounds up into the next second */
		t++;
		ms = 0;
	}
	if (!isfinite(epoch) || !gmtime_r(&t, &tm)) {
		snprintf(buf, len, "?");
		return;
	}
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

/* A member that is a finite number, else 0. */
static double number_member(const json_t *doc, const char *name)
{
	const json_t *v = json_object_get(doc, name);
	double d = json_is_number(v) ? json_number_value(v) : 0.0;

	return isfinite(d) ? d : 0.0;
}

/* Copy text into dst (size BREAKER_WHY_MAX + 1), cut on a UTF-8 character
 * boundary; bytes that are not valid UTF-8 become '?' so that the text is
 * always a JSON string. */
static void copy_why(char *dst, const char *text)
{
	size_t n = strlen(text);

	if (n > BREAKER_WHY_MAX) {
		n = BREAKER_WHY_MAX;
		while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
			n--;
	}
	memcpy(dst, text, n);
	dst[n] = '\0';
	json_t *probe = json_stringn(dst, n);
	if (!probe)
		for (char *p = dst; *p; p++)
			if ((unsigned char)*p >= 0x80)
				*p = '?';
	json_decref(probe);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

void breaker_from_json(struct breaker *b, const json_t *doc)
{
	memset(b, 0, sizeof(*b));
	if (!json_is_object(doc))
		return;

	/* Failures are appended, so the newest are last: read only as many
	 * from the end as a breaker can keep, whatever the array's length. */
	const json_t *errors = json_object_get(doc, "errors");
	size_t n = json_array_size(errors);
	for (size_t i = n > BREAKER_MAX_ERRORS ? n - BREAKER_MAX_ERRORS : 0; i < n; i++) {
		const json_t *e = json_array_get(errors, i);
		double t = json_is_number(e) ? json_number_value(e) : 0.0;
		if (isfinite(t) && t > 0)
			b->errors[b->nerrors++] = t;
	}
	qsort(b->errors, (size_t)b->nerrors, sizeof(b->errors[0]), cmp_double);

	const json_t *why = json_object_get(doc, "lastError");
	if (json_is_string(why))
		copy_why(b->last_error, json_string_value(why));

	const json_t *state = json_object_get(doc, "state");
	const char *name = json_is_string(state) ? json_string_value(state) : "";
	double closes = number_member(doc, "closesAtEpoch");
	if (!strcmp(name, "open") && closes > 0)
		b->state = BREAKER_OPEN;
	else if (!strcmp(name, "half-open"))
		b->state = BREAKER_HALF_OPEN;
	else
		return;
	b->closes_at = closes > 0 ? closes : 0;
	const json_t *opened = json_object_get(doc, "openedAt");
	if (json_is_string(opened) && json_string_length(opened) < sizeof(b->opened_at))
		memcpy(b->opened_at, json_string_value(opened), json_string_length(opened) + 1);
}

/* Epoch seconds to the millisecond: enough, and short in the document. */
static json_t *epoch_json(double t)
{
	return json_real(round(t * 1000.0) / 1000.0);
}

json_t *breaker_to_json(const struct breaker *b, double now)
{
	json_t *doc = json_object();
	json_t *errors = json_array();
	char iso[32];

	json_object_set_new(doc, "state", json_string(breaker_state_name(b->state)));
	for (int i = 0; i < b->nerrors; i++)
		json_array_append_new(errors, epoch_json(b->errors[i]));
	json_object_set_new(doc, "errors", errors);
	if (b->state != BREAKER_CLOSED) {
		if (b->opened_at[0])
			json_object_set_new(doc, "openedAt", json_string(b->opened_at));
		if (b->closes_at > 0) {
			breaker_iso_time(b->closes_at, iso, sizeof(iso));
			json_object_set_new(doc, "closesAt", json_string(iso));
			json_object_set_new(doc, "closesAtEpoch", epoch_json(b->closes_at));
		}
	}
	if (b->last_error[0])
		json_object_set_new(doc, "lastError", json_string(b->last_error));
	breaker_iso_time(now, iso, sizeof(iso));
	json_object_set_new(doc, "updatedAt", json_string(iso));
	return doc;
}

/* Keep the failures within (now - window, now]: older ones have expired,
 * later ones cannot be true (the clock stepped back, or a hand edit). */
static void drop_stale(struct breaker *b, double window, double now)
{
	int kept = 0;

	for (int i = 0; i < b->nerrors; i++)
		if (b->errors[i] > now - window && b->errors[i] <= now)
			b->errors[kept++] = b->errors[i];
	b->nerrors = kept;
}

int breaker_recent_errors(const struct breaker *b, const struct breaker_settings *s, double now)
{
	struct limits l = limits_of(s);
	int n = 0;

	for (int i = 0; i < b->nerrors; i++)
		n += b->errors[i] > now - l.window && b->errors[i] <= now;
	return n;
}

static void open_breaker(struct breaker *b, double cooldown, double now)
{
	b->state = BREAKER_OPEN;
	breaker_iso_time(now, b->opened_at, sizeof(b->opened_at));
	b->closes_at = now + cooldown;
}

enum breaker_verdict breaker_decide(struct breaker *b, const struct breaker_settings *s,
				    double now, bool *changed)
{
	struct limits l = limits_of(s);

	*changed = false;
	drop_stale(b, l.window, now);
	if (b->state == BREAKER_CLOSED)
		return BREAKER_GO;
	if (b->state == BREAKER_HALF_OPEN)
		return BREAKER_TRIAL;
	if (b->closes_at > now + l.cooldown) {
		b->closes_at = now + l.cooldown;
		*changed = true;
	}
	if (now < b->closes_at)
		return BREAKER_REFUSE;
	b->state = BREAKER_HALF_OPEN;
	*changed = true;
	return BREAKER_TRIAL;
}

bool breaker_apply(struct breaker *b, const struct breaker_settings *s, double now, bool failed,
		   const char *why)
{
	struct limits l = limits_of(s);

	drop_stale(b, l.window, now);
	if (!failed) {
		if (b->state != BREAKER_HALF_OPEN)
			return false;
		b->state = BREAKER_CLOSED;
		b->nerrors = 0;
		b->opened_at[0] = '\0';
		b->closes_at = 0;
		return true;
	}
	/* Only the newest max_errors can ever open the breaker. */
	while (b->nerrors >= l.max_errors) {
		memmove(b->errors, b->errors + 1, (size_t)(b->nerrors - 1) * sizeof(b->errors[0]));
		b->nerrors--;
	}
	b->errors[b->nerrors++] = now;
	copy_why(b->last_error, why ? why : "");
	if (b->state == BREAKER_HALF_OPEN ||
	    (b->state == BREAKER_CLOSED && b->nerrors >= l.max_errors))
		open_breaker(b, l.cooldown, now);
	/* Already open (a run that did not ask first): the cool-down stands. */
	return true;
}

/* ---- the stored document ---- */

/* "10 minutes", "1 hour", "90 seconds": the largest unit that divides it. */
static void say_duration(double seconds, char *buf, size_t len)
{
	static const struct {
		long long size;
		const char *name;
	} units[] = { { 86400, "day" }, { 3600, "hour" }, { 60, "minute" }, { 1, "second" } };
	long long s = llround(seconds);

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (s % units[i].size || (s == 0 && units[i].size > 1))
			continue;
		long long n = s / units[i].size;
		if (n == 1)
			snprintf(buf, len, "%s", units[i].name);
		else
			snprintf(buf, len, "%lld %ss", n, units[i].name);
		return;
	}
}

/*
 * Begin, take the row (FOR UPDATE: the read-modify-write of another
 * process waits for ours), then read the clock, so that a process that
 * waited for the lock sees the time after its wait. create: insert an empty
 * document first when there is none, so that there is a row to lock and
 * two processes cannot both insert. *present tells whether a row was found.
 */
static int load_locked(struct db *db, const char *key, bool create, struct breaker *b,
		       double *now, bool *present, struct cw_error *err)
{
	const char *params[] = { key };
	PGresult *res;
	char *sql;

	if (db_in_transaction(db))
		return cw_error_set(err, CW_EXIT_SOFTWARE,
				    "the circuit breaker was used inside a transaction");
	if (db_begin(db, err) < 0)
		return -1;
	if (create) {
		sql = xasprintf("INSERT INTO %s.sync_state (key, value) VALUES ($1, '{}') "
				"ON CONFLICT (key) DO NOTHING",
				db_schema(db));
		int rc = db_exec(db, sql, 1, params, err);
		free(sql);
		if (rc < 0)
			goto fail;
	}
	sql = xasprintf("SELECT value::text FROM %s.sync_state WHERE key = $1 FOR UPDATE",
			db_schema(db));
	res = db_query(db, sql, 1, params, err);
	free(sql);
	if (!res)
		goto fail;
	*present = PQntuples(res) == 1;
	/* jsonb prints 1e300 as 301 digits: read integers as doubles so that
	 * only a number beyond a double (1e400) makes the text unreadable,
	 * and unreadable is garbage, a closed breaker like any other. */
	json_t *doc = *present ? json_loads(PQgetvalue(res, 0, 0), JSON_DECODE_INT_AS_REAL, NULL)
			       : NULL;
	PQclear(res);
	breaker_from_json(b, doc);
	json_decref(doc);

	res = db_query(db, "SELECT pg_catalog.date_part('epoch', pg_catalog.clock_timestamp())", 0,
		       NULL, err);
	if (!res)
		goto fail;
	*now = strtod(PQgetvalue(res, 0, 0), NULL);
	PQclear(res);
	return 0;
fail:
	db_rollback(db);
	return -1;
}

/* Write b (its row is locked) when changed, and end the transaction. */
static int store_and_commit(struct db *db, const char *key, const struct breaker *b, double now,
			    bool changed, struct cw_error *err)
{
	if (changed) {
		json_t *doc = breaker_to_json(b, now);
		int rc = state_put(db, key, doc, err);
		json_decref(doc);
		if (rc < 0) {
			db_rollback(db);
			return -1;
		}
	}
	return db_commit(db, err);
}

static void refusal(const struct breaker *b, const struct breaker_settings *s, double now,
		    const char *key, struct cw_error *err)
{
	char recent[96] = "", last[BREAKER_WHY_MAX + 16] = "", window[32], closes[32];
	int count = breaker_recent_errors(b, s, now);

	say_duration(limits_of(s).window, window, sizeof(window));
	if (count > 0)
		snprintf(recent, sizeof(recent), ": %d error%s in the last %s", count,
			 count == 1 ? "" : "s", window);
	if (b->last_error[0])
		snprintf(last, sizeof(last), " (last: %s)", b->last_error);
	breaker_iso_time(b->closes_at, closes, sizeof(closes));
	cw_error_set(err, CW_EXIT_TEMPFAIL, "circuit breaker is open%s%s", recent, last);
	if (b->opened_at[0])
		cw_error_detail(err, "It opened at %s and refuses runs until %s.", b->opened_at,
				closes);
	else
		cw_error_detail(err, "It refuses runs until %s.", closes);
	cw_error_hint(err,
		      "Run again after %s: that run is a trial, and its success closes the "
		      "breaker. Deleting the key \"%s\" from sync_state closes it at once.",
		      closes, key);
}

int breaker_check(struct db *db, const char *key, const struct breaker_settings *s, bool *trial,
		  char **closes_at, struct cw_error *err)
{
	struct breaker *b = xmalloc(sizeof(*b));
	bool present = false, changed = false;
	double now = 0;
	int rc = -1;

	if (trial)
		*trial = false;
	if (closes_at)
		*closes_at = NULL;
	if (load_locked(db, key, false, b, &now, &present, err) < 0)
		goto out;
	enum breaker_verdict verdict = breaker_decide(b, s, now, &changed);
	if (store_and_commit(db, key, b, now, present && changed, err) < 0)
		goto out;
	if (verdict == BREAKER_REFUSE) {
		refusal(b, s, now, key, err);
		if (closes_at) {
			char iso[32];
			breaker_iso_time(b->closes_at, iso, sizeof(iso));
			*closes_at = xstrdup(iso);
		}
		goto out;
	}
	if (trial)
		*trial = verdict == BREAKER_TRIAL;
	rc = 0;
out:
	free(b);
	return rc;
}

int breaker_record(struct db *db, const char *key, const struct breaker_settings *s, bool failed,
		   const char *why, struct cw_error *err)
{
	struct breaker *b = xmalloc(sizeof(*b));
	bool present = false;
	double now = 0;
	int rc = -1;

	/* A success on a breaker never written has nothing to change: no row. */
	if (load_locked(db, key, failed, b, &now, &present, err) == 0) {
		bool changed = breaker_apply(b, s, now, failed, why);
		rc = store_and_commit(db, key, b, now, present && changed, err);
	}
	free(b);
	return rc;
}
