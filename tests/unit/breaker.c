/* The circuit breaker's decisions: threshold, window, cool-down, trial, and hostile documents. */
#include "breaker.h"
#include "tap.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define T 1795000000.0 /* some moment of the database's clock */

static const struct breaker_settings S = { 3, 600, 300 }; /* 3 in 10 min, 5 min open */

static struct breaker b;

static void fresh(void)
{
	breaker_from_json(&b, NULL);
}

/* The breaker a JSON text describes. */
static void from_text(const char *text)
{
	json_t *doc = json_loads(text, JSON_DECODE_ANY, NULL);

	breaker_from_json(&b, doc);
	json_decref(doc);
}

static enum breaker_verdict decide(double now, bool *changed)
{
	bool dummy;

	return breaker_decide(&b, &S, now, changed ? changed : &dummy);
}

static void threshold(void)
{
	fresh();
	ok(b.state == BREAKER_CLOSED && b.nerrors == 0, "no document: closed, no errors");
	is_int(decide(T, NULL), BREAKER_GO, "a closed breaker lets the run go");

	ok(breaker_apply(&b, &S, T, true, "boom 1"), "a failure is written");
	ok(breaker_apply(&b, &S, T + 10, true, "boom 2"), "a second failure is written");
	is_int(b.state, BREAKER_CLOSED, "two failures of three: still closed");
	is_int(b.nerrors, 2, "two errors kept");
	is_int(decide(T + 11, NULL), BREAKER_GO, "and runs go");

	ok(breaker_apply(&b, &S, T + 20, true, "boom 3"), "a third failure is written");
	is_int(b.state, BREAKER_OPEN, "the third failure within the window opens it");
	is_double(b.closes_at, T + 320, 1e-9, "for one cool-down from the third failure");
	is_str(b.last_error, "boom 3", "lastError is the latest why");
	char iso[32];
	breaker_iso_time(T + 20, iso, sizeof(iso));
	is_str(b.opened_at, iso, "openedAt is the time of the third failure");
	is_int(breaker_recent_errors(&b, &S, T + 20), 3, "three recent errors");

	/* max_errors 1: the first failure opens. */
	const struct breaker_settings one = { 1, 600, 300 };
	fresh();
	breaker_apply(&b, &one, T, true, NULL);
	is_int(b.state, BREAKER_OPEN, "max_errors 1: one failure opens it");
	is_str(b.last_error, "", "why NULL: no lastError");
}

static void window(void)
{
	fresh();
	breaker_apply(&b, &S, T, true, "old");
	breaker_apply(&b, &S, T + 10, true, "old");
	breaker_apply(&b, &S, T + 700, true, "new");
	is_int(b.state, BREAKER_CLOSED, "failures older than the window do not count");
	is_int(b.nerrors, 1, "and are dropped when the document is written");
	is_double(b.errors[0], T + 700, 0, "the new failure stays");

	/* Exactly one window old is out: the window is (now - window, now]. */
	fresh();
	breaker_apply(&b, &S, T, true, NULL);
	breaker_apply(&b, &S, T + 300, true, NULL);
	breaker_apply(&b, &S, T + 600, true, NULL);
	is_int(b.state, BREAKER_CLOSED, "a failure exactly one window old has expired");
	breaker_apply(&b, &S, T + 600.5, true, NULL);
	is_int(b.state, BREAKER_OPEN, "three within the window open it");
	is_int(b.nerrors, 3, "only max_errors are kept");

	/* A success on a closed breaker changes nothing. */
	fresh();
	breaker_apply(&b, &S, T, true, "x");
	breaker_apply(&b, &S, T + 1, true, "y");
	ok(!breaker_apply(&b, &S, T + 2, false, NULL), "a success while closed writes nothing");
	is_int(b.state, BREAKER_CLOSED, "still closed");
	is_int(b.nerrors, 2, "the errors stay, to expire by the window");
}

static void open_and_half_open(void)
{
	bool changed;

	fresh();
	for (int i = 0; i < 3; i++)
		breaker_apply(&b, &S, T + i, true, "down");
	is_int(b.state, BREAKER_OPEN, "open");

	is_int(decide(T + 3, &changed), BREAKER_REFUSE, "refused just after opening");
	ok(!changed, "a refusal writes nothing");
	is_int(decide(T + 2 + 299.999, &changed), BREAKER_REFUSE, "refused until closesAt");
	ok(!breaker_apply(&b, &S, T + 5, false, NULL), "a success while open changes nothing");
	is_int(b.state, BREAKER_OPEN, "still open");

	is_int(decide(T + 302, &changed), BREAKER_TRIAL, "at closesAt: a trial run");
	ok(changed, "the move to half-open is written");
	is_int(b.state, BREAKER_HALF_OPEN, "half-open");
	is_int(decide(T + 303, &changed), BREAKER_TRIAL,
	       "half-open again (the trial never recorded): another trial");
	ok(!changed, "nothing to write for that");

	ok(breaker_apply(&b, &S, T + 310, false, NULL), "the trial's success is written");
	is_int(b.state, BREAKER_CLOSED, "and closes the breaker");
	is_int(b.nerrors, 0, "with its errors cleared");
	is_double(b.closes_at, 0, 0, "and no closesAt");
	is_str(b.opened_at, "", "nor openedAt");
	is_str(b.last_error, "down", "lastError stays for the operator");
	is_int(decide(T + 311, NULL), BREAKER_GO, "runs go again");

	/* A failed trial opens it again for a whole cool-down. */
	fresh();
	for (int i = 0; i < 3; i++)
		breaker_apply(&b, &S, T + i, true, "down");
	decide(T + 302, NULL);
	ok(breaker_apply(&b, &S, T + 400, true, "still down"), "the trial's failure is written");
	is_int(b.state, BREAKER_OPEN, "a failed trial opens the breaker again");
	is_double(b.closes_at, T + 700, 1e-9, "for another cool-down");
	is_int(decide(T + 699, NULL), BREAKER_REFUSE, "refused during it");
	is_int(decide(T + 700, NULL), BREAKER_TRIAL, "then another trial");

	/* A failure recorded while open (a run that did not ask) keeps the cool-down. */
	fresh();
	for (int i = 0; i < 3; i++)
		breaker_apply(&b, &S, T + i, true, "down");
	breaker_apply(&b, &S, T + 100, true, "again");
	is_double(b.closes_at, T + 302, 1e-9, "a failure while open does not extend it");
	is_str(b.last_error, "again", "but is the last error");

	/* A closesAt beyond one cool-down is brought back. */
	from_text("{\"state\":\"open\",\"closesAtEpoch\":1e300}");
	is_int(b.state, BREAKER_OPEN, "open with a closesAt centuries away");
	is_int(decide(T, &changed), BREAKER_REFUSE, "is refused now");
	ok(changed, "and the closer closesAt is written");
	is_double(b.closes_at, T + 300, 1e-9, "one cool-down from now");
	is_int(decide(T + 300, NULL), BREAKER_TRIAL, "so it does close");
}

/* Every hostile document reads as closed without errors, and a run goes. */
static void garbage(void)
{
	static const char *docs[] = {
		"42",
		"null",
		"\"open\"",
		"[\"open\"]",
		"{}",
		"{\"state\":42}",
		"{\"state\":\"OPEN\",\"closesAtEpoch\":1795000300}",
		"{\"state\":null,\"errors\":null}",
		"{\"state\":\"open\"}",
		"{\"state\":\"open\",\"closesAtEpoch\":\"soon\"}",
		"{\"state\":\"open\",\"closesAtEpoch\":-5}",
		"{\"state\":\"open\",\"closesAtEpoch\":0}",
		"{\"state\":\"open\",\"closesAtEpoch\":[1795000300]}",
		"{\"errors\":\"many\"}",
		"{\"errors\":{\"0\":1795000000}}",
		"{\"errors\":[\"1795000000\",null,true,{},[],-1,0]}",
		"{\"errors\":[1e300,1e308,1795009999]}",
		"{\"lastError\":5,\"openedAt\":[],\"updatedAt\":7}",
	};
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		bool changed = true;
		from_text(docs[i]);
		enum breaker_verdict v = decide(T, &changed);
		ok(b.state == BREAKER_CLOSED && b.nerrors == 0 && v == BREAKER_GO && !changed,
		   "%s: closed, no errors, the run goes", docs[i]);
		if (b.state != BREAKER_CLOSED || b.nerrors)
			diag("    state %d, %d errors", (int)b.state, b.nerrors);
	}
	/* Text jansson cannot read (the database can store 1e400) arrives as NULL. */
	json_t *big = json_loads("{\"state\":\"open\",\"closesAtEpoch\":1e400}", 0, NULL);
	ok(big == NULL, "a number beyond a double does not parse");
	breaker_from_json(&b, big);
	ok(b.state == BREAKER_CLOSED, "and reads as closed");

	/* Good members are used even next to bad ones. */
	from_text("{\"errors\":[1794999999,\"x\",1794999990,null],\"state\":7}");
	is_int(b.nerrors, 2, "the two numbers among the errors are kept");
	ok(b.nerrors == 2 && b.errors[0] < b.errors[1], "sorted, oldest first");

	/* A huge array: only the newest BREAKER_MAX_ERRORS are read. */
	json_t *errors = json_array();
	for (int i = 0; i < 5000; i++)
		json_array_append_new(errors, json_real(T - 5000 + i));
	json_t *doc = json_pack("{s:o}", "errors", errors);
	breaker_from_json(&b, doc);
	json_decref(doc);
	is_int(b.nerrors, BREAKER_MAX_ERRORS, "5000 errors: the newest %d kept", BREAKER_MAX_ERRORS);
	is_double(b.errors[b.nerrors - 1], T - 1, 0, "the newest is last");
	is_int(decide(T, NULL), BREAKER_GO, "a closed breaker with many old errors: go");

	/* Settings out of range are clamped, never divide or loop. */
	const struct breaker_settings bad = { -4, NAN, -1 };
	fresh();
	breaker_apply(&b, &bad, T, true, "x");
	is_int(b.state, BREAKER_OPEN, "max_errors below 1 counts as 1");
	is_double(b.closes_at, T + 1, 1e-9, "a NaN or negative cool-down counts as 1 s");
	bool changed;
	is_int(breaker_decide(&b, &bad, T + 1, &changed), BREAKER_TRIAL, "and so it reopens");
}

static void document(void)
{
	char iso[32];

	fresh();
	for (int i = 0; i < 3; i++)
		breaker_apply(&b, &S, T + i + 0.25, true, "it \"broke\"");
	json_t *doc = breaker_to_json(&b, T + 5);
	is_str(json_string_value(json_object_get(doc, "state")), "open", "state \"open\"");
	is_int((long long)json_array_size(json_object_get(doc, "errors")), 3, "three errors");
	is_double(json_number_value(json_array_get(json_object_get(doc, "errors"), 0)), T + 0.25,
		  1e-6, "errors are epoch seconds");
	breaker_iso_time(T + 302.25, iso, sizeof(iso));
	is_str(json_string_value(json_object_get(doc, "closesAt")), iso, "closesAt as ISO text");
	is_str(iso, "2026-11-18T11:11:42.250Z", "ISO text: UTC with milliseconds");
	is_double(json_number_value(json_object_get(doc, "closesAtEpoch")), T + 302.25, 1e-6,
		  "closesAtEpoch");
	breaker_iso_time(T + 2.25, iso, sizeof(iso));
	is_str(json_string_value(json_object_get(doc, "openedAt")), iso, "openedAt");
	is_str(json_string_value(json_object_get(doc, "lastError")), "it \"broke\"", "lastError");
	breaker_iso_time(T + 5, iso, sizeof(iso));
	is_str(json_string_value(json_object_get(doc, "updatedAt")), iso, "updatedAt is now");

	/* What is written reads back the same. */
	struct breaker again;
	breaker_from_json(&again, doc);
	ok(again.state == b.state && again.nerrors == b.nerrors &&
		   fabs(again.closes_at - b.closes_at) < 1e-6 &&
		   !strcmp(again.opened_at, b.opened_at) && !strcmp(again.last_error, b.last_error),
	   "the document reads back as the same breaker");
	json_decref(doc);

	fresh();
	doc = breaker_to_json(&b, T);
	ok(!json_object_get(doc, "closesAt") && !json_object_get(doc, "openedAt") &&
		   !json_object_get(doc, "lastError"),
	   "a fresh closed breaker has no closesAt, openedAt or lastError");
	json_decref(doc);

	breaker_iso_time(0, iso, sizeof(iso));
	is_str(iso, "1970-01-01T00:00:00.000Z", "ISO of epoch 0");
	breaker_iso_time(T + 0.9996, iso, sizeof(iso));
	is_str(iso, "2026-11-18T11:06:41.000Z", "milliseconds that round up carry the second");

	/* lastError: cut to BREAKER_WHY_MAX bytes on a character boundary, and
	 * always valid UTF-8. */
	char why[400];
	memset(why, 'a', BREAKER_WHY_MAX - 1);
	strcpy(why + BREAKER_WHY_MAX - 1, "\xc3\xa9 and more"); /* é straddles the cut */
	fresh();
	breaker_apply(&b, &S, T, true, why);
	is_int((long long)strlen(b.last_error), BREAKER_WHY_MAX - 1,
	       "a long why is cut before a split character");
	breaker_apply(&b, &S, T + 1, true, "bad \xff\xfe bytes");
	is_str(b.last_error, "bad ?? bytes", "bytes that are not UTF-8 become ?");
	doc = breaker_to_json(&b, T + 1);
	is_str(json_string_value(json_object_get(doc, "lastError")), "bad ?? bytes",
	       "and the document holds it");
	json_decref(doc);
	is_str(breaker_state_name(BREAKER_HALF_OPEN), "half-open", "state name half-open");
	is_str(breaker_state_name((enum breaker_state)9), "closed", "an unknown state: closed");
}

int main(void)
{
	threshold();
	window();
	open_and_half_open();
	garbage();
	document();
	return done_testing();
}
